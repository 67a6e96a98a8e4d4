/*
 * stats.h - serving statistics in mcached: which version is counted where,
 * what the workers have counted, and over which windows.
 *
 * Workers count the requests they serve with mc_report() into their own
 * rows beside the reader table (index/stats.h, shm/readers.h). mcached
 *
 *   - gives every version record it publishes READY a stats index
 *     1..MC_STATS_VERSIONS-1 (stats_index_take, before the publish), or 0
 *     when all are taken: that version is "untracked" and its reports are
 *     dropped. Memory is bounded by the 63 indices whatever the number of
 *     versions: more than 63 resident versions leave the extra untracked;
 *   - frees the index when the record is freed (the writer's on_free hook:
 *     no reader holds the record, so no report can reach the index any
 *     more), zeroing its block in every row whose `used` bit is set and
 *     clearing those bits, so the next version given it starts from zero;
 *   - sums an index over every row whose `used` bit is set, live or dead
 *     slots alike: a worker that exited or was killed keeps its counts in
 *     the totals until the version leaves the arena;
 *   - every STATS_SNAP_NS (10 s) keeps the sum of every index in a ring of
 *     STATS_RING snapshots (10 min), from which the windows are differences.
 *
 * After a crash (adoption) the indices in use are those of the version
 * records in the table and of the retired records still waiting to be
 * freed; every other index is cleaned before it is given out.
 *
 * Single-threaded, like the rest of mcached (daemon.h).
 */
#ifndef MCACHE_LOADER_STATS_H
#define MCACHE_LOADER_STATS_H

#include <jansson.h>
#include <stdint.h>

#include "index/stats.h"

struct daemon;
struct mc_conn;
struct mc_request;
struct mc_rec_version;

#define STATS_SNAP_NS    (10ull * 1000000000ull) /* one snapshot of every index each 10 s */
#define STATS_RING       61u                     /* 10 min of snapshots, and the one before */
#define STATS_WINDOW_MAX 600u                    /* longest window, in seconds */

/* Set up after the arena is owned (created or adopted): indices in use, the hook. */
int stats_init(struct daemon *d);

/* Free what stats_init() allocated (after mc_own_release). */
void stats_destroy(struct daemon *d);

/* A free index for a record about to be published READY, or 0 (untracked). */
uint8_t stats_index_take(struct daemon *d);

/* The record at rec_off was published with index idx (from stats_index_take). */
void stats_index_bind(struct daemon *d, uint8_t idx, uint64_t rec_off);

/* The publish failed: idx was never seen by a reader; give it back. */
void stats_index_untake(struct daemon *d, uint8_t idx);

/* The writer's on_free hook (struct mc_writer): ctx is the daemon. */
void stats_on_free(void *ctx, const struct mc_rec_version *v);

/* Called from the tick: a snapshot of every index in use each STATS_SNAP_NS. */
void stats_tick(struct daemon *d);

/*
 * Counts of name@version since its record was published READY ("since
 * loaded"). MC_ENOENT if the version is not resident, MC_ENOTSUP if it is
 * resident but untracked; the message says which and what to do.
 */
int stats_version_sum(struct daemon *d, const char *name, const char *version,
                      struct mc_stats_sum *out);

/*
 * Counts of name@version over the last `seconds` (1..STATS_WINDOW_MAX):
 * now minus the newest snapshot taken at least `seconds` ago, so on the 10 s
 * grid a window covers between `seconds` and `seconds` + 10 s; a version
 * loaded within the window counts from its load. Errors as stats_version_sum,
 * and MC_EINVAL for seconds out of range. For exact intervals (a rollout
 * step) keep a stats_version_sum() and subtract it later (mc_stats_diff).
 */
int stats_version_window(struct daemon *d, const char *name, const char *version, unsigned seconds,
                         struct mc_stats_sum *out);

/* What stats_version_window() answers, with the span of time it covers. */
struct stats_window {
    struct mc_stats_sum sum;
    double covered_s; /* seconds the counts cover */
};

/* seconds 0: since loaded. Errors as stats_version_window(). */
int stats_version_window_ex(struct daemon *d, const char *name, const char *version,
                            unsigned seconds, struct stats_window *out);

/* The index of name@version's record (0: untracked); MC_ENOENT if not resident. */
int stats_version_index(struct daemon *d, const char *name, const char *version, unsigned *idx);

/* How many indices are in use (1..63), and how many READY records went untracked. */
unsigned stats_indices_used(const struct daemon *d);
uint64_t stats_untracked_total(const struct daemon *d);

/* {"indices","tracked","untracked_total","snapshots"}: `serving` in `status` and `stats`. */
json_t *stats_counters_json(struct daemon *d);

/* ctl `stats NAME REF [SECONDS]` and `compare NAME REF1 REF2` (docs/protocol.md). */
void stats_op(struct daemon *d, struct mc_conn *c, const struct mc_request *rq);
void stats_op_compare(struct daemon *d, struct mc_conn *c, const struct mc_request *rq);

#endif
