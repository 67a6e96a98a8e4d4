/*
 * alerts.h - the events an operator must hear about: an automatic rollback,
 * a failed health gate, a threshold breach. Each is logged (warning),
 * stored in the registry (mc_registry_alert_add: the newest 256 are kept,
 * `mcache alerts`), counted (`mcache stat`), and, with --alert-cmd, passed
 * as one JSON object on the standard input of `/bin/sh -c CMD` run by
 * mcached (not waited for in the loop; killed after MC_ALERT_HOOK_S s).
 *
 * The JSON: {"id", "at_ns", "kind", "model", "version", "alias",
 * "message", "cache", "store"} (version and alias null when not known).
 */
#ifndef MCACHE_LOADER_ALERTS_H
#define MCACHE_LOADER_ALERTS_H

#include <jansson.h>

#define MC_ALERT_HOOK_S 30

struct daemon;

/* Raise an alert; kind is "rollback", "health" or "threshold". */
void alert_raise(struct daemon *d, const char *kind, const char *model, const char *version,
                 const char *alias, const char *message);

/* The counters, for `status` (shown by `mcache stat`): {total, rollback, health, threshold,
 * hook_failed, hook}. */
json_t *alerts_json(struct daemon *d);

/* Reap finished hooks, kill overdue ones (the tick). */
void alert_tick(struct daemon *d);

/* Wait for the hooks still running (shutdown), at most a second, then kill them. */
void alert_stop_all(struct daemon *d);

#endif
