/*
 * log.c - timestamped, levelled log lines on stderr (see log.h).
 */
#include "loader/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static atomic_int min_level = MC_LOG_INFO;

static const char *names[] = {"debug", "info", "warn", "error"};

void mc_log(enum mc_log_level lvl, const char *fmt, ...)
{
    char line[2048], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    if ((int)lvl < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof(line), "%s.%03ldZ %-5s ", ts, now.tv_nsec / 1000000, names[lvl]);
    va_start(ap, fmt);
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One write per line, so lines from a crash-restart loop never interleave. */
    fprintf(stderr, "%s\n", line);
}

void mc_log_set_level(enum mc_log_level lvl)
{
    atomic_store_explicit(&min_level, (int)lvl, memory_order_relaxed);
}

int mc_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}
