/*
 * err.c - the per-thread error message behind mc_last_error().
 */
#include "common/err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char err_msg[1024];

int mc_err(int code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err_msg, sizeof(err_msg), fmt, ap);
    va_end(ap);
    return code;
}

int mc_err_prefix(int code, const char *fmt, ...)
{
    char prev[sizeof(err_msg)];
    char pre[256];
    va_list ap;

    memcpy(prev, err_msg, sizeof(prev));
    va_start(ap, fmt);
    vsnprintf(pre, sizeof(pre), fmt, ap);
    va_end(ap);
    if (prev[0])
        snprintf(err_msg, sizeof(err_msg), "%.255s: %.760s", pre, prev);
    else
        snprintf(err_msg, sizeof(err_msg), "%s: %s", pre, mc_strerror(code));
    return code;
}

void mc_err_clear(void)
{
    err_msg[0] = '\0';
}

const char *mc_last_error(void)
{
    return err_msg;
}

int mc_err_from_errno(int e)
{
    switch (e) {
    case 0:
        return MC_OK;
    case ENOENT:
        return MC_ENOENT;
    case ENOMEM:
        return MC_ENOMEM;
    case ENOSPC:
    case EDQUOT:
        return MC_ENOSPC;
    case EACCES:
    case EPERM:
    case EROFS:
        return MC_EPERM;
    case EEXIST:
        return MC_EEXIST;
    case EAGAIN:
    case EBUSY:
        return MC_EBUSY;
    case ETIMEDOUT:
        return MC_ETIMEDOUT;
    case EINVAL:
    case ENAMETOOLONG:
        return MC_EINVAL;
    case ENOTSUP:
        return MC_ENOTSUP;
    default:
        return MC_EIO;
    }
}
