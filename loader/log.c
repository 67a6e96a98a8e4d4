/*
 * log.c - levelled log lines on stderr: timestamped, or with syslog
 * priority prefixes when stderr is journald's stream (see log.h).
 */
#include "loader/log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static atomic_int min_level = MC_LOG_INFO;

static const char *names[] = {"debug", "info", "warn", "error"};
/* syslog(3) priorities: LOG_DEBUG, LOG_INFO, LOG_WARNING, LOG_ERR. */
static const int priorities[] = {7, 6, 4, 3};

/*
 * Is stderr the stream systemd connected to journald? systemd sets
 * JOURNAL_STREAM to "DEV:INODE" of that stream; the variable alone is not
 * enough, since a child of the service may have inherited it while its
 * stderr goes elsewhere (a file, a pipe): the device and inode must be
 * stderr's own.
 */
static bool stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    int end = 0;

    if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &end) != 2 || e[end] != '\0')
        return false;
    return fstat(2, &st) == 0 && (unsigned long long)st.st_dev == dev &&
           (unsigned long long)st.st_ino == ino;
}

void mc_log(enum mc_log_level lvl, const char *fmt, ...)
{
    /* Checked at the first line (stderr does not change); atomic, since any thread may log. */
    static atomic_int journal = -1;
    char line[2048], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n, j;

    if ((int)lvl < atomic_load_explicit(&min_level, memory_order_relaxed))
        return;
    j = atomic_load_explicit(&journal, memory_order_relaxed);
    if (j < 0) {
        j = stderr_is_journal();
        atomic_store_explicit(&journal, j, memory_order_relaxed);
    }
    if (j) {
        /* journald reads the priority from "<N>" and keeps its own timestamp. */
        n = snprintf(line, sizeof(line), "<%d>", priorities[lvl]);
    } else {
        clock_gettime(CLOCK_REALTIME, &now);
        gmtime_r(&now.tv_sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        n = snprintf(line, sizeof(line), "%s.%03ldZ %-5s ", ts, now.tv_nsec / 1000000, names[lvl]);
    }
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
