/*
 * arena.h - the shared-memory arena: one file in /dev/shm (or a hugetlbfs or
 * huge=always tmpfs directory) mapped at the same virtual address by every
 * process, holding model bytes and the index that finds them.
 *
 * Layout (offsets from the base; every region page-aligned):
 *
 *   [0, 4 KiB)            struct mc_arena_hdr
 *   [4 KiB, index_off)    free-extent arrays of the two extent allocators
 *   [index_off, +index_size)  index region: ck_ht maps, records (slab + extents)
 *   [data_off, +data_size)    data region: model bytes (extents, O_DIRECT- and,
 *                             on huge pages, huge-page-aligned)
 *
 * Only the loader writes the arena; it maps it PROT_READ|PROT_WRITE. Workers
 * map it PROT_READ. The header's `format` word changes whenever any struct
 * that lives in shared memory changes (this header, extent/slab state,
 * records, the reader table); attach refuses any other format.
 */
#ifndef MCACHE_SHM_ARENA_H
#define MCACHE_SHM_ARENA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm/extent.h"
#include "shm/slab.h"

#define MC_ARENA_MAGIC  0x314145524143434dULL /* "MCCAREA1" little-endian */
#define MC_ARENA_FORMAT 4u                    /* bump on ANY shared layout change */
#define MC_ARENA_HDR_SIZE 4096u
#define MC_DEFAULT_SHM_DIR "/dev/shm"
#define MC_HUGE_PAGE (2u << 20)

/*
 * Default base addresses. The index holds absolute pointers, so an arena is
 * mapped at one address (its header's `base`) in every process, and two
 * arenas one process attaches must not overlap. Each cache's default base is
 * therefore its own: one of MC_BASE_SLOTS slots of MC_BASE_SLOT bytes from
 * MC_BASE_RANGE, the top MC_BASE_SLOT_BITS bits of XXH3-64 of its name
 * (seed 0, a fixed function: a name's slot never changes). The whole range,
 * [0x7e8000000000, 0x7ec000000000), is application memory for both
 * AddressSanitizer and ThreadSanitizer on x86-64 and lies below where Linux
 * places ordinary mappings (docs/arena.md). Two names can share a slot; an
 * explicit base (--base) moves one of them. An arena larger than a slot
 * needs an explicit base.
 */
#define MC_BASE_RANGE     0x7e8000000000ULL
#define MC_BASE_SLOT_BITS 4
#define MC_BASE_SLOTS     (1u << MC_BASE_SLOT_BITS)
#define MC_BASE_SLOT      (16ULL << 30) /* 16 GiB: four times the largest default size */
#define MC_BASE_RANGE_END (MC_BASE_RANGE + MC_BASE_SLOTS * MC_BASE_SLOT)

/* Free-extent array capacities (live allocations are capped one below). */
#define MC_DATA_EXTENTS  4096u
#define MC_INDEX_EXTENTS 16384u

enum mc_arena_state {
    MC_ARENA_INIT = 0,       /* being created; never visible under the final name */
    MC_ARENA_READY = 1,      /* serving */
    MC_ARENA_SUPERSEDED = 2, /* a newer arena replaced this one: re-attach */
};

enum mc_backing {
    MC_BACKING_SHM4K = 0, /* tmpfs with 4 KiB pages */
    MC_BACKING_HUGETLB = 1,
    MC_BACKING_THP = 2, /* tmpfs mounted huge=always */
    MC_BACKING_OTHER = 3,
    MC_BACKING_SHM_COLLAPSED = 4, /* tmpfs not mounted huge, 2 MiB folios by MADV_COLLAPSE */
};

/*
 * The fields up to and including `state` keep their offsets in every future
 * format, so any mcached can recognise an arena of another format and mark
 * it superseded before replacing it.
 */
struct mc_arena_hdr {
    uint64_t magic;
    uint32_t format;
    uint32_t hdr_size;
    uint64_t base;       /* virtual address every process maps at */
    uint64_t size;       /* file and mapping size */
    uint64_t page_size;  /* page size of the backing */
    uint32_t backing;    /* enum mc_backing */
    uint32_t state;      /* enum mc_arena_state */
    uint64_t created_ns; /* CLOCK_REALTIME */
    uint64_t hash_seed;  /* XXH3 seed for table keys */
    uint64_t index_off, index_size;
    uint64_t data_off, data_size;
    uint64_t table_off; /* struct mc_table (index/table.h); 0 until created */
    uint32_t loader_pid;
    uint32_t pad0;
    uint64_t loader_since_ns; /* when the current loader created or adopted it */
    uint64_t manifest_gen;    /* registry generation last applied */
    char cache[64];
    char dir[256];
    char socket[108]; /* mcached's control socket ("" if none) */

    /* Written by the loader only; read by every reader on every get. */
    _Alignas(64) uint64_t epoch;
    uint32_t fence; /* enum mc_fence: how readers pin (shm/fence.h); never changes */

    _Alignas(64) uint64_t generation; /* bumped per publish, move, removal */

    _Alignas(64) struct mc_extents data_ext;
    struct mc_extents index_ext;
    struct mc_slab slab;
};

_Static_assert(sizeof(struct mc_arena_hdr) <= MC_ARENA_HDR_SIZE, "header must fit its page");

/* A process's view of an arena (private memory). */
struct mc_arena {
    struct mc_arena_hdr *hdr; /* == (void *)base */
    uint8_t *base;
    uint64_t size;
    uint64_t want; /* the address it is mapped at or was to be: after MC_EADDRINUSE,
                    * [want, want + size) is the range that was taken */
    int fd;
    bool writable;
    char path[512];
    uint64_t huge_bytes; /* mc_arena_create on plain tmpfs: bytes collapsed to 2 MiB pages */
    int huge_errno;      /* ... and why the rest was not (0: all of it was) */
};

struct mc_arena_opts {
    const char *dir;    /* NULL: MC_DEFAULT_SHM_DIR */
    const char *cache;  /* NULL: "default" */
    uint64_t size;      /* total bytes (rounded up to the page size) */
    uint64_t index_size; /* 0: size/16 clamped to [4 MiB, 1 GiB] */
    uint64_t base;      /* 0: mc_arena_default_base(cache), and size must fit a slot */
    unsigned mode;      /* file mode; 0: 0640 (mcached sets it: loader/access.h) */
    bool small_pages;   /* plain tmpfs: keep 4 KiB pages (no MADV_COLLAPSE; tests, bench) */
};

/* The default base address of cache's arena (NULL: "default"); see MC_BASE_RANGE. */
uint64_t mc_arena_default_base(const char *cache);

/* The base address of slot i (taken modulo MC_BASE_SLOTS) of the default range. */
uint64_t mc_arena_slot_base(unsigned i);

/* Path of the arena file for (dir, cache) into buf. */
int mc_arena_path(const char *dir, const char *cache, char *buf, size_t len);

/*
 * Create a new arena (the loader). On a tmpfs not mounted huge, first turns
 * each 2 MiB block into one 2 MiB page where the kernel can (MADV_COLLAPSE;
 * a->huge_bytes and a->huge_errno say how much and why not; see arena.c),
 * unless o->small_pages. Commits its memory (fallocate) and maps it
 * read-write with page tables filled, so later loads never fault or SIGBUS.
 * Built under a temporary name and renamed into place, so no process can
 * attach to a half-initialised arena. Fails with MC_EEXIST if one exists.
 */
int mc_arena_create(const struct mc_arena_opts *o, struct mc_arena *a);

/*
 * Would mc_arena_create(o) find its options sound and its directory with
 * room for the arena (counting `reclaimable` bytes an old arena will free)?
 * Creates nothing. 0, or the error mc_arena_create would meet (MC_EINVAL,
 * MC_ENOSPC, ...), message set.
 */
int mc_arena_check(const struct mc_arena_opts *o, uint64_t reclaimable);

/*
 * Open an existing arena. writable: the loader adopting it after a restart
 * (read-write); otherwise a worker (PROT_READ). Verifies magic,
 * format, size and base; maps at the stored base with MAP_FIXED_NOREPLACE.
 */
int mc_arena_open(const char *dir, const char *cache, bool writable, struct mc_arena *a);

/* Unmap and close. */
void mc_arena_close(struct mc_arena *a);

/*
 * MC_EPERM for a cache's file (what: "arena", "reader table", "control
 * socket") that this process may not open, with a message naming the file,
 * its mode and group, and what to ask the operator for.
 */
int mc_access_denied(const char *what, const char *path);

/*
 * Mark the arena file for (dir, cache) superseded (whatever its format, if it
 * has our magic), so attached workers get MC_ESTALE, then unlink it and its
 * reader table. Its memory lives on while workers map it.
 */
int mc_arena_retire(const char *dir, const char *cache);

/* Unlink the arena file for (dir, cache); its memory lives on while mapped. */
int mc_arena_unlink(const char *dir, const char *cache);

/* Pointer for an arena offset, and back. */
static inline void *mc_arena_ptr(const struct mc_arena *a, uint64_t off)
{
    return a->base + off;
}

static inline uint64_t mc_arena_off(const struct mc_arena *a, const void *p)
{
    return (uint64_t)((const uint8_t *)p - a->base);
}

/* Describe the backing ("4 KiB pages (tmpfs)", ...). */
const char *mc_backing_name(uint32_t backing);

/* Detect the page size backing files in dir. */
int mc_backing_detect(const char *dir, uint64_t *page_size, uint32_t *backing);

/* Default arena size for this machine: a quarter of MemAvailable, 256 MiB..4 GiB. */
uint64_t mc_arena_default_size(void);

#endif
