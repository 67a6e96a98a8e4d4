/*
 * extent.c - the offset-based extent allocator (see extent.h).
 */
#include "shm/extent.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shm/arena.h"
#include "shm/atomic.h"
#include "common/err.h"

int mc_poison_freed;

static struct mc_extent_span *spans(const struct mc_arena *a, const struct mc_extents *e)
{
    return (struct mc_extent_span *)(a->base + e->array_off);
}

static uint64_t round_up(uint64_t v, uint64_t g)
{
    return (v + g - 1) & ~(g - 1);
}

uint64_t mc_extent_round(const struct mc_extents *e, uint64_t size)
{
    return round_up(size ? size : 1, e->granule);
}

static void update_largest(const struct mc_arena *a, struct mc_extents *e)
{
    const struct mc_extent_span *s = spans(a, e);
    uint64_t big = 0;

    for (uint32_t i = 0; i < e->nfree; i++)
        if (s[i].len > big)
            big = s[i].len;
    mc_store_relaxed(&e->largest_free, big);
}

void mc_extent_init(struct mc_arena *a, struct mc_extents *e, uint64_t region_off,
                    uint64_t region_size, uint64_t granule, uint64_t array_off, uint32_t cap)
{
    struct mc_extent_span *s;

    e->region_off = region_off;
    e->region_size = region_size;
    e->granule = granule;
    e->array_off = array_off;
    e->cap = cap;
    e->nalloc = 0;
    e->used = 0;
    s = spans(a, e);
    memset(s, 0, sizeof(*s) * cap);
    s[0].off = region_off;
    s[0].len = region_size;
    e->nfree = region_size ? 1 : 0;
    update_largest(a, e);
}

static void remove_at(struct mc_extent_span *s, uint32_t *n, uint32_t i)
{
    memmove(&s[i], &s[i + 1], sizeof(*s) * (*n - i - 1));
    (*n)--;
}

static void insert_at(struct mc_extent_span *s, uint32_t *n, uint32_t i, uint64_t off, uint64_t len)
{
    memmove(&s[i + 1], &s[i], sizeof(*s) * (*n - i));
    s[i].off = off;
    s[i].len = len;
    (*n)++;
}

int mc_extent_alloc(struct mc_arena *a, struct mc_extents *e, uint64_t size, uint64_t align,
                    uint64_t *off)
{
    struct mc_extent_span *s = spans(a, e);
    uint64_t need = mc_extent_round(e, size);
    uint64_t best_waste = UINT64_MAX, best_start = 0;
    uint32_t best = UINT32_MAX;

    if (align < e->granule)
        align = e->granule;
    if (e->nalloc + 1 >= e->cap)
        return mc_err(MC_ENOSPC,
                      "arena region at offset %llu holds its maximum of %u extents; evict or "
                      "remove models, or recreate the arena with a larger index",
                      (unsigned long long)e->region_off, e->cap - 1);
    for (uint32_t i = 0; i < e->nfree; i++) {
        uint64_t start = round_up(s[i].off, align);
        uint64_t end = s[i].off + s[i].len;

        if (start >= end || end - start < need)
            continue;
        uint64_t waste = s[i].len - need;
        if (waste < best_waste) {
            best_waste = waste;
            best = i;
            best_start = start;
            if (waste == 0)
                break;
        }
    }
    if (best == UINT32_MAX)
        return mc_err(MC_ENOSPC,
                      "no free extent of %llu bytes (aligned to %llu): %llu of %llu bytes free, "
                      "largest free extent %llu bytes",
                      (unsigned long long)need, (unsigned long long)align,
                      (unsigned long long)(e->region_size - e->used),
                      (unsigned long long)e->region_size, (unsigned long long)e->largest_free);

    uint64_t f_off = s[best].off, f_end = s[best].off + s[best].len;
    uint64_t tail_off = best_start + need;

    remove_at(s, &e->nfree, best);
    if (tail_off < f_end)
        insert_at(s, &e->nfree, best, tail_off, f_end - tail_off);
    if (best_start > f_off)
        insert_at(s, &e->nfree, best, f_off, best_start - f_off);
    e->nalloc++;
    mc_store_relaxed(&e->used, e->used + need);
    update_largest(a, e);
    *off = best_start;
    return 0;
}

void mc_extent_free(struct mc_arena *a, struct mc_extents *e, uint64_t off, uint64_t size)
{
    struct mc_extent_span *s = spans(a, e);
    uint64_t len = mc_extent_round(e, size);
    uint32_t lo = 0, hi = e->nfree;

    if (mc_poison_freed)
        memset(a->base + off, 0xdb, len);
    while (lo < hi) { /* first span with s.off > off */
        uint32_t mid = (lo + hi) / 2;
        if (s[mid].off > off)
            hi = mid;
        else
            lo = mid + 1;
    }
    int prev_adj = lo > 0 && s[lo - 1].off + s[lo - 1].len == off;
    int next_adj = lo < e->nfree && off + len == s[lo].off;

    if (prev_adj && next_adj) {
        s[lo - 1].len += len + s[lo].len;
        remove_at(s, &e->nfree, lo);
    } else if (prev_adj) {
        s[lo - 1].len += len;
    } else if (next_adj) {
        s[lo].off = off;
        s[lo].len += len;
    } else {
        insert_at(s, &e->nfree, lo, off, len);
    }
    e->nalloc--;
    mc_store_relaxed(&e->used, e->used - len);
    update_largest(a, e);
}

static int span_cmp(const void *x, const void *y)
{
    const struct mc_extent_span *p = x, *q = y;

    return p->off < q->off ? -1 : p->off > q->off;
}

int mc_extent_rebuild(struct mc_arena *a, struct mc_extents *e, struct mc_extent_span *live,
                      size_t n)
{
    struct mc_extent_span *s = spans(a, e);
    uint64_t cur = e->region_off, end = e->region_off + e->region_size, used = 0;
    uint32_t nfree = 0;

    if (n + 1 >= e->cap)
        return mc_err(MC_ECORRUPT, "%zu live extents exceed the allocator's capacity of %u", n,
                      e->cap - 1);
    if (n > 1) /* qsort(NULL, 0) is undefined */
        qsort(live, n, sizeof(*live), span_cmp);
    for (size_t i = 0; i < n; i++) {
        uint64_t len = mc_extent_round(e, live[i].len);

        if (live[i].off < cur || live[i].off + len > end)
            return mc_err(MC_ECORRUPT,
                          "live extent at offset %llu (%llu bytes) overlaps another or leaves "
                          "its region [%llu, %llu)",
                          (unsigned long long)live[i].off, (unsigned long long)len,
                          (unsigned long long)e->region_off, (unsigned long long)end);
        if (live[i].off > cur) {
            s[nfree].off = cur;
            s[nfree].len = live[i].off - cur;
            nfree++;
        }
        cur = live[i].off + len;
        used += len;
    }
    if (cur < end) {
        s[nfree].off = cur;
        s[nfree].len = end - cur;
        nfree++;
    }
    e->nfree = nfree;
    e->nalloc = n;
    mc_store_relaxed(&e->used, used);
    update_largest(a, e);
    return 0;
}

int mc_extent_check(const struct mc_arena *a, const struct mc_extents *e)
{
    const struct mc_extent_span *s = spans(a, e);
    uint64_t free_bytes = 0;

    if (e->nfree > e->cap)
        return mc_err(MC_ECORRUPT, "free array count %u exceeds capacity %u", e->nfree, e->cap);
    for (uint32_t i = 0; i < e->nfree; i++) {
        if (s[i].len == 0 || s[i].off < e->region_off ||
            s[i].off + s[i].len > e->region_off + e->region_size)
            return mc_err(MC_ECORRUPT, "free extent %u [%llu, +%llu) is empty or out of region", i,
                          (unsigned long long)s[i].off, (unsigned long long)s[i].len);
        if (i > 0 && s[i - 1].off + s[i - 1].len >= s[i].off)
            return mc_err(MC_ECORRUPT, "free extents %u and %u overlap or are unmerged", i - 1, i);
        free_bytes += s[i].len;
    }
    if (free_bytes + e->used != e->region_size)
        return mc_err(MC_ECORRUPT, "free %llu + used %llu != region size %llu",
                      (unsigned long long)free_bytes, (unsigned long long)e->used,
                      (unsigned long long)e->region_size);
    return 0;
}
