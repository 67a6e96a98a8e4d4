/*
 * stats.h - serving statistics that workers write and mcached reads.
 *
 * A worker that serves a request with a model it holds calls mc_report()
 * (include/mcache.h): one request, its latency, success or failure and
 * optional work units (tokens, images). The counts go to shared memory
 * beside the reader table (shm/readers.h): every reader slot (one per
 * thread) has a row of MC_STATS_VERSIONS blocks, one per tracked version,
 * so a report writes only its own thread's cache lines: no system call, no
 * lock, no atomic read-modify-write, no line shared with another thread.
 *
 * WHICH VERSION. mcached gives every version record it publishes READY a
 * stats index (struct mc_rec.stats, 1..MC_STATS_VERSIONS-1; 0: not tracked,
 * when every index is taken) and frees it when the record is freed, that is
 * once no reader holds it, so no report can reach a freed index. Before it
 * gives the index out again it zeroes that block in every row. "Since
 * loaded" is therefore since the record was published.
 *
 * NOTHING LOST. Counters stay in the row when a thread exits or its process
 * dies (even by SIGKILL); the slot's next owner adds to them. mcached sums
 * every row whose `used` bit for the index is set, live or dead, so a dead
 * worker's counts stay in the totals. A report interrupted by SIGKILL half
 * way may lose that one request's histogram count.
 *
 * MEMORY. Each block is one 4 KiB page, touched (committed) only when a
 * thread first reports on that version: at most slots x versions pages,
 * whatever the number of versions registered or threads that come and go.
 *
 * LATENCY. A log-linear histogram: 16 linear sub-buckets per power of two
 * from 64 ns to 2^37 ns (137 s), so a bucket's midpoint is within 3.1% of
 * any value in it; below 64 ns is bucket 0, from 137 s on the last one.
 */
#ifndef MCACHE_INDEX_STATS_H
#define MCACHE_INDEX_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MC_STATS_VERSIONS 64u /* indices per cache, 0 (untracked) included */
#define MC_STATS_SUB_BITS 4u
#define MC_STATS_SUB      (1u << MC_STATS_SUB_BITS)
#define MC_STATS_MIN_EXP  6u  /* 64 ns */
#define MC_STATS_MAX_EXP  37u /* 137 s */
#define MC_STATS_BUCKETS  (2u + (MC_STATS_MAX_EXP - MC_STATS_MIN_EXP) * MC_STATS_SUB)
#define MC_STATS_BLOCK    4096u

/* One thread's counts for one version (a page of the row; single writer). */
struct mc_stats_block {
    uint64_t requests;
    uint64_t errors;
    uint64_t units;
    uint64_t reserved;
    uint64_t hist[MC_STATS_BUCKETS];
};

_Static_assert(sizeof(struct mc_stats_block) <= MC_STATS_BLOCK, "a block fits its page");

/* The bucket a latency falls in. */
static inline unsigned mc_stats_bucket(uint64_t ns)
{
    unsigned e;

    if (ns < (1ull << MC_STATS_MIN_EXP))
        return 0;
    e = 63u - (unsigned)__builtin_clzll(ns);
    if (e >= MC_STATS_MAX_EXP)
        return MC_STATS_BUCKETS - 1;
    return 1u + (e - MC_STATS_MIN_EXP) * MC_STATS_SUB +
           (unsigned)((ns >> (e - MC_STATS_SUB_BITS)) & (MC_STATS_SUB - 1));
}

/* The value a bucket stands for: its midpoint (0 and the last: their bounds). */
uint64_t mc_stats_bucket_value(unsigned bucket);

/*
 * Counts summed over rows (or a difference of two sums): what mcached
 * keeps per version, and what a window is.
 */
struct mc_stats_sum {
    uint64_t requests;
    uint64_t errors;
    uint64_t units;
    uint64_t hist[MC_STATS_BUCKETS];
};

/* sum += block, read with relaxed loads while its owner may be writing. */
void mc_stats_add_block(struct mc_stats_sum *sum, const struct mc_stats_block *b);

/*
 * out = now - then, per counter (then was summed earlier from the same
 * rows); if any counter went down, the counts restarted (a reload): out = now.
 */
void mc_stats_diff(const struct mc_stats_sum *now, const struct mc_stats_sum *then,
                   struct mc_stats_sum *out);

/* The latency at quantile q (0 < q <= 1) in ns; 0 when there are no requests. */
uint64_t mc_stats_quantile(const struct mc_stats_sum *s, double q);

#endif
