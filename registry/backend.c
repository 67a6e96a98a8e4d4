/*
 * backend.c - what the seam itself provides to both sides of it (see
 * backend.h): formatting a message for a warn or report callback.
 */
#include "registry/backend.h"

#include <stdarg.h>
#include <stdio.h>

void mc_reg_reportf(mc_reg_report_fn fn, void *arg, const char *fmt, ...)
{
    char msg[1400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fn(arg, msg);
}
