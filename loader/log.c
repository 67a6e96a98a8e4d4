/*
 * log.c - timestamped, levelled log lines on stderr (see log.h).
 */
#include "loader/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum mc_log_level mc_log_min = MC_LOG_INFO;

static const char *names[] = {"debug", "info", "warn", "error"};

void mc_log(enum mc_log_level lvl, const char *fmt, ...)
{
    char line[2048], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    if (lvl < mc_log_min)
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

int mc_log_level_parse(const char *s)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}
