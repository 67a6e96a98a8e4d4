/*
 * log.h - mcached's log: one line per event on stderr, with a timestamp and
 * a level, e.g.
 *   2026-11-22T18:49:37.123Z info  loaded resnet@1.2.0 (512 MiB in 0.21 s, 2.5 GB/s)
 * Under systemd, when stderr is journald's stream ($JOURNAL_STREAM names
 * stderr's device and inode), no timestamp (journald keeps its own) and the
 * level as a syslog priority prefix, which journald turns into the entry's
 * priority:
 *   <6>loaded resnet@1.2.0 (512 MiB in 0.21 s, 2.5 GB/s)
 * debug, info, warn and error are <7>, <6>, <4> and <3>.
 */
#ifndef MCACHE_LOADER_LOG_H
#define MCACHE_LOADER_LOG_H

enum mc_log_level { MC_LOG_DEBUG, MC_LOG_INFO, MC_LOG_WARN, MC_LOG_ERROR };

/* Lines below lvl are dropped. Any thread may log while the main thread
 * changes the level (SIGHUP), so it is kept atomically. */
void mc_log_set_level(enum mc_log_level lvl);

void mc_log(enum mc_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Parse "debug", "info", "warn", "error"; -1 if none. */
int mc_log_level_parse(const char *s);

#define log_debug(...) mc_log(MC_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  mc_log(MC_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  mc_log(MC_LOG_WARN, __VA_ARGS__)
#define log_error(...) mc_log(MC_LOG_ERROR, __VA_ARGS__)

#endif
