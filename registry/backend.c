/*
 * backend.c - what the seam itself provides to both sides of it (see
 * backend.h): formatting a message for a warn or report callback; reading a
 * file in chunks (a push's source, an artifact being verified).
 */
#include "registry/backend.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"

#define COPY_CHUNK (4u << 20)

void mc_reg_reportf(mc_reg_report_fn fn, void *arg, const char *fmt, ...)
{
    char msg[1400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fn(arg, msg);
}

int mc_art_read_chunks(int fd, const char *what, int (*fn)(void *arg, const void *buf, size_t n),
                       void *arg)
{
    char *buf = malloc(COPY_CHUNK);
    int rc = 0;

    if (buf == NULL)
        return mc_err(MC_ENOMEM, "out of memory reading %s", what);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (;;) {
        ssize_t k = read(fd, buf, COPY_CHUNK);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            rc = mc_err(mc_err_from_errno(errno), "reading %s failed: %s", what, strerror(errno));
            break;
        }
        if (k == 0)
            break;
        rc = fn(arg, buf, (size_t)k);
        if (rc)
            break;
    }
    free(buf);
    return rc;
}
