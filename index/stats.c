/*
 * stats.c - the arithmetic of serving statistics (see stats.h).
 */
#include "index/stats.h"

#include "shm/atomic.h"

uint64_t mc_stats_bucket_value(unsigned bucket)
{
    unsigned e, s;
    uint64_t low, width;

    if (bucket == 0)
        return 1ull << MC_STATS_MIN_EXP;
    if (bucket >= MC_STATS_BUCKETS - 1)
        return 1ull << MC_STATS_MAX_EXP;
    e = MC_STATS_MIN_EXP + (bucket - 1) / MC_STATS_SUB;
    s = (bucket - 1) % MC_STATS_SUB;
    width = 1ull << (e - MC_STATS_SUB_BITS);
    low = (1ull << e) + s * width;
    return low + width / 2;
}

void mc_stats_add_block(struct mc_stats_sum *sum, const struct mc_stats_block *b)
{
    sum->requests += mc_load_relaxed(&b->requests);
    sum->errors += mc_load_relaxed(&b->errors);
    sum->units += mc_load_relaxed(&b->units);
    for (unsigned i = 0; i < MC_STATS_BUCKETS; i++)
        sum->hist[i] += mc_load_relaxed(&b->hist[i]);
}

void mc_stats_diff(const struct mc_stats_sum *now, const struct mc_stats_sum *then,
                   struct mc_stats_sum *out)
{
    /* Counts only grow while a version stays loaded; fewer now than then
     * means they restarted from zero (the version was loaded again, with a
     * new index): what came since is all of now (a review find: the
     * subtraction wrapped to ~1.8e19 and a rollout judged on it). */
    if (now->requests < then->requests || now->errors < then->errors ||
        now->units < then->units) {
        *out = *now;
        return;
    }
    for (unsigned i = 0; i < MC_STATS_BUCKETS; i++)
        if (now->hist[i] < then->hist[i]) {
            *out = *now;
            return;
        }
    out->requests = now->requests - then->requests;
    out->errors = now->errors - then->errors;
    out->units = now->units - then->units;
    for (unsigned i = 0; i < MC_STATS_BUCKETS; i++)
        out->hist[i] = now->hist[i] - then->hist[i];
}

uint64_t mc_stats_quantile(const struct mc_stats_sum *s, double q)
{
    uint64_t total = 0, seen = 0, rank;

    for (unsigned i = 0; i < MC_STATS_BUCKETS; i++)
        total += s->hist[i];
    if (total == 0)
        return 0;
    if (q <= 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* The smallest value with at least q of the requests at or below it. */
    rank = (uint64_t)(q * (double)total + 0.999999);
    if (rank == 0)
        rank = 1;
    for (unsigned i = 0; i < MC_STATS_BUCKETS; i++) {
        seen += s->hist[i];
        if (seen >= rank)
            return mc_stats_bucket_value(i);
    }
    return mc_stats_bucket_value(MC_STATS_BUCKETS - 1);
}
