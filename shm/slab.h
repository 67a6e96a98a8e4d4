/*
 * slab.h - small objects in the arena's index region (records, small maps).
 *
 * Objects of up to MC_SLAB_MAX bytes come from 64 KiB chunks, one size class
 * (64 B .. 2 KiB, powers of two) per chunk; each chunk keeps its own free
 * list, linked by arena offsets stored in the free objects. Larger objects
 * are extents of the index region. Both are reached through mc_index_alloc()
 * and mc_index_free(), the index region's allocator.
 *
 * Single writer (the loader). Freed objects are written (free-list links), so
 * callers free only what no reader can still see (see shm/reclaim.h).
 */
#ifndef MCACHE_SHM_SLAB_H
#define MCACHE_SHM_SLAB_H

#include <stddef.h>
#include <stdint.h>

#include "shm/extent.h"

struct mc_arena;

#define MC_SLAB_CHUNK   (64u << 10)
#define MC_SLAB_MIN     64u
#define MC_SLAB_MAX     2048u
#define MC_SLAB_CLASSES 6u /* 64 128 256 512 1024 2048 */
#define MC_SLAB_MAGIC   0x42414c53u /* "SLAB" */

struct mc_slab {
    uint64_t partial[MC_SLAB_CLASSES]; /* first chunk with a free object, 0: none */
    uint64_t chunks;
    uint64_t objects; /* live objects */
    uint64_t bytes;   /* bytes in live objects (class sizes) */
};

struct mc_slab_chunk {
    uint32_t magic;
    uint32_t cls;
    uint32_t nobj;
    uint32_t nfree;
    uint64_t free_head; /* arena offset of the first free object, 0: none */
    uint64_t next;      /* next chunk in this class's partial list */
    uint64_t prev;
    uint64_t pad[3];
};

/*
 * Allocate `size` bytes from the index region, 64-byte aligned, zeroed.
 * Returns 0 and the arena offset, or MC_ENOSPC with a message.
 */
int mc_index_alloc(struct mc_arena *a, size_t size, uint64_t *off);

/* Free an object from mc_index_alloc(); size as passed to it. */
void mc_index_free(struct mc_arena *a, uint64_t off, size_t size);

/* Bytes of index region in use (slab chunks and large objects). */
uint64_t mc_index_used(const struct mc_arena *a);

/*
 * Rebuild the index region's allocator (extents and slab free lists) from the
 * complete set of live objects (offset, size as passed to mc_index_alloc()).
 * The array is reordered. Returns MC_ECORRUPT on overlap.
 */
int mc_index_rebuild(struct mc_arena *a, struct mc_extent_span *live, size_t n);

#endif
