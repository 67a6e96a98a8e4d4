/*
 * err.h - error reporting shared by every mcache module.
 *
 * Functions return 0 or a negative MC_E* code (include/mcache.h). Where the
 * caller deserves more than the code, the function also records a message
 * for the calling thread with mc_err(), which names the thing, the value and
 * what to do. mc_last_error() (public) returns it. The message buffer is
 * thread-local, so no function's result depends on another thread.
 */
#ifndef MCACHE_COMMON_ERR_H
#define MCACHE_COMMON_ERR_H

#include "mcache.h"

/* Record a message for this thread and return code (always negative). */
int mc_err(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Like mc_err(), but prefix the message with context; keeps the code. */
int mc_err_prefix(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Clear this thread's message. */
void mc_err_clear(void);

/* Map an errno value to the closest MC_E* code. */
int mc_err_from_errno(int e);

#endif
