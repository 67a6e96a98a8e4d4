/*
 * extent.h - an offset-based extent allocator whose state lives in the arena.
 *
 * A region [region_off, region_off + region_size) of the arena is handed out
 * in extents that are multiples of `granule` and aligned as asked. Free space
 * is a sorted array of (offset, length) pairs, kept in the arena itself so a
 * restarted loader can read it, and merged on free so that between any two
 * free extents there is at least one allocation. Hence free extents never
 * outnumber live allocations + 1: capping live allocations at cap - 1 means a
 * free can never fail for want of room.
 *
 * Only the loader calls the mutating functions (single writer). Readers may
 * read `used`, `largest_free` and the counters at any time; each is a single
 * aligned word.
 */
#ifndef MCACHE_SHM_EXTENT_H
#define MCACHE_SHM_EXTENT_H

#include <stddef.h>
#include <stdint.h>

struct mc_arena;

struct mc_extent_span {
    uint64_t off; /* arena offset */
    uint64_t len;
};

struct mc_extents {
    uint64_t region_off;
    uint64_t region_size;
    uint64_t granule;   /* allocation unit, power of two */
    uint64_t array_off; /* arena offset of struct mc_extent_span[cap] */
    uint32_t cap;       /* capacity of the free array */
    uint32_t nfree;     /* free extents in the array */
    uint64_t nalloc;    /* live allocations */
    uint64_t used;      /* bytes in live allocations */
    uint64_t largest_free;
};

/*
 * Tests set this to overwrite freed memory (extents and index objects) with
 * 0xdb, so that a reader touching freed memory sees garbage, not old data.
 */
extern int mc_poison_freed;

void mc_extent_init(struct mc_arena *a, struct mc_extents *e, uint64_t region_off,
                    uint64_t region_size, uint64_t granule, uint64_t array_off, uint32_t cap);

/*
 * Allocate `size` bytes (rounded up to the granule) at an offset that is a
 * multiple of `align` (0: the granule). Best fit. Returns 0 and the arena
 * offset, or MC_ENOSPC (no free extent fits, or the allocation cap is
 * reached) with a message naming the sizes.
 */
int mc_extent_alloc(struct mc_arena *a, struct mc_extents *e, uint64_t size, uint64_t align,
                    uint64_t *off);

/* Free an extent from mc_extent_alloc(); size as passed to it. */
void mc_extent_free(struct mc_arena *a, struct mc_extents *e, uint64_t off, uint64_t size);

/* Allocation size for a request (the granule-rounded size). */
uint64_t mc_extent_round(const struct mc_extents *e, uint64_t size);

/*
 * Rebuild the free array from the complete set of live allocations
 * (offsets and rounded lengths, in any order; may be modified). Used when a
 * loader adopts an arena whose previous owner may have died mid-update.
 * Returns MC_ECORRUPT if live spans overlap or leave the region.
 */
int mc_extent_rebuild(struct mc_arena *a, struct mc_extents *e, struct mc_extent_span *live,
                      size_t n);

/* Check the free array's invariants (sorted, merged, in region); 0 or MC_ECORRUPT. */
int mc_extent_check(const struct mc_arena *a, const struct mc_extents *e);

#endif
