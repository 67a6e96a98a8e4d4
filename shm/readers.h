/*
 * readers.h - the reader table: who is reading the arena, what they pin and
 * what they hold.
 *
 * A small read-write file beside the arena (mcache.<cache>.readers) holds an
 * array of 64-byte slots, one per reading thread. A thread owns slot i while
 * its process holds an OFD write lock on byte i of the file; the kernel drops
 * the lock when the process dies (even by SIGKILL), so liveness never depends
 * on pids, which get reused. This is LMDB's reader table with a lock per slot
 * instead of a pid check.
 *
 * A slot says:
 *   pin     - the arena epoch the reader saw when it began a lookup, or 0.
 *             While pinned, nothing retired at that epoch or later is freed.
 *   held[]  - arena offsets of version records the reader holds (models in
 *             use between mc_get and mc_release). Never freed while held.
 *
 * The loader reads slots without locking them: see shm/reclaim.h for the
 * ordering that makes that safe.
 *
 * After the slots, each slot owns a row of counters (MC_ROW_BLOCKS pages
 * of MC_ROW_BLOCK bytes) and a 64-byte line with a bitmap of the pages its
 * owners have used: the serving statistics of index/stats.h, opaque here.
 * Rows are sparse: a page is committed only once written. They outlive
 * their owners (a slot's next owner adds to them).
 *
 * File layout: header (4 KiB) | slots (nslots x 64) | used lines
 * (nslots x 64) | padding to 4 KiB | rows (nslots x MC_ROW_BLOCKS x 4 KiB).
 */
#ifndef MCACHE_SHM_READERS_H
#define MCACHE_SHM_READERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define MC_READERS_MAGIC  0x3144524541455243ULL /* "CREAERD1" */
#define MC_READERS_HDR    4096u
#define MC_READER_SLOTS   1024u /* default slot count */
#define MC_READER_SLOTS_MAX 4096u
#define MC_SLOT_HOLDS     5u
#define MC_ROW_BLOCKS     64u   /* counter pages per slot: bits of mc_row_used.used */
#define MC_ROW_BLOCK      4096u

struct mc_readers_hdr {
    uint64_t magic;
    uint32_t format; /* == MC_ARENA_FORMAT */
    uint32_t nslots;
    uint64_t arena_created_ns; /* pairs the table with its arena */
};

struct mc_slot {
    uint32_t pid;
    uint32_t tid;
    uint64_t since_ns; /* CLOCK_REALTIME when claimed */
    uint64_t pin;
    uint64_t held[MC_SLOT_HOLDS];
};

_Static_assert(sizeof(struct mc_slot) == 64, "a slot is one cache line");

/* Which of a row's pages have been written (bit i: page i), set by owners. */
struct mc_row_used {
    uint64_t used;
    uint64_t pad[7];
};

struct mc_readers {
    int fd;
    uint32_t nslots;
    struct mc_readers_hdr *hdr;
    struct mc_slot *slots;
    struct mc_row_used *used; /* nslots lines */
    uint8_t *rows;            /* nslots rows of MC_ROW_BLOCKS pages */
    size_t map_size;
    /* Reader side: slots this process owns (OFD locks from one file
     * description never conflict with each other, so we must track them). */
    uint8_t *owned;
    pthread_mutex_t mu;
};

/*
 * Loader: create (or replace) the table for an arena created at created_ns,
 * with file mode `mode` (0: 0660; whoever may write it may attach).
 */
int mc_readers_create(const char *dir, const char *cache, uint32_t nslots, unsigned mode,
                      uint64_t arena_created_ns, struct mc_readers *r);

/* Open an existing table read-write (workers, and a loader adopting). */
int mc_readers_open(const char *dir, const char *cache, uint64_t arena_created_ns,
                    struct mc_readers *r);

void mc_readers_close(struct mc_readers *r);

/* Reader: claim a free slot for the calling thread. MC_ETOOMANY if none. */
int mc_slot_claim(struct mc_readers *r, uint32_t *idx);

/* Reader: give a slot back (clears it, drops the lock). */
void mc_slot_release(struct mc_readers *r, uint32_t idx);

/*
 * Loader: mark live[i] = 1 for every slot whose lock is held by some process,
 * 0 otherwise. Returns the number of
 * live slots, or a negative code. One F_OFD_GETLK per slot that has a pid.
 */
int mc_readers_live(struct mc_readers *r, uint8_t *live);

/* Page `block` of slot `slot`'s row, and the bitmap of the row's used pages. */
static inline void *mc_row_block(const struct mc_readers *r, uint32_t slot, unsigned block)
{
    return r->rows + ((size_t)slot * MC_ROW_BLOCKS + block) * MC_ROW_BLOCK;
}

static inline uint64_t *mc_row_used(const struct mc_readers *r, uint32_t slot)
{
    return &r->used[slot].used;
}

#endif
