/*
 * reclaim.h - epoch-based deferred reclamation across processes (loader side).
 *
 * Readers never take locks, so memory the loader unlinks from the index may
 * still be read for a moment by a lookup in flight, and for hours by a worker
 * that holds a model. The loader therefore never frees at once; it retires:
 *
 *   loader: unlink (stores); mc_retire(item) tags it with the current epoch E;
 *           mc_reclaim_advance() stores epoch = E + 1; before reading pins, a
 *           full fence on this CPU and on every reader's (shm/fence.h).
 *   reader: pin = epoch (xchg, or a plain store the loader's membarrier
 *           orders); lookup; hold; pin = 0 (release).
 *
 * An item tagged E is freed once every live reader slot has pin == 0 or
 * pin > E, and (for version records) no live slot holds it. Why that is
 * enough: a reader whose pin store the loader did not see pinned after the
 * loader's fence, so its lookup (after its own fence) sees the unlink; a
 * reader that read epoch > E did so after the unlink (stores are seen in
 * order). The loader reads each slot's pin before its holds, and a reader
 * stores its hold before clearing its pin, so a hold taken by a lookup that
 * just ended is never missed.
 *
 * A slot is live only while its process holds its OFD lock, so a reader
 * that died (even by SIGKILL) never holds anything back, and a reader that
 * is stopped while pinned holds reclamation back (reported, never freed
 * under). Retired items live in the loader's private memory; after a loader
 * crash the next loader rebuilds the allocators from what is reachable and
 * waits one grace period before reusing anything (loader/adopt).
 *
 * Single-threaded: only the loader's main thread calls these.
 */
#ifndef MCACHE_SHM_RECLAIM_H
#define MCACHE_SHM_RECLAIM_H

#include <stddef.h>
#include <stdint.h>

struct mc_arena;
struct mc_readers;

enum mc_retire_kind {
    MC_RETIRE_INDEX = 1, /* an index-region object: (off, size) */
    MC_RETIRE_DATA = 2,  /* a data-region extent: (off, size) */
    MC_RETIRE_RECORD = 3 /* a version record: freed by the callback once unheld */
};

struct mc_retired {
    uint64_t epoch;
    uint64_t off;
    uint64_t size;
    uint32_t kind;
    uint32_t pad;
};

/* A reader slot that holds reclamation back. */
struct mc_stall {
    uint32_t slot;
    uint32_t pid;
    uint64_t pin;
    uint64_t since_ns; /* monotonic time the loader first saw this pin */
};

struct mc_reclaim {
    struct mc_arena *arena;
    struct mc_readers *readers;
    /* Frees a retired version record and what it owns (index layer). */
    void (*free_record)(void *ctx, uint64_t rec_off);
    void *ctx;
    struct mc_retired *items;
    size_t n, cap;
    uint8_t *live;       /* per slot, from the last poll */
    uint64_t *seen_pin;  /* per slot: pin value last seen ... */
    uint64_t *seen_since; /* ... and since when */
    uint64_t *held;       /* sorted holds from the last poll */
    size_t nheld, held_cap;
    uint64_t retired_total, freed_total;
    uint64_t pending_bytes;
};

int mc_reclaim_init(struct mc_reclaim *rc, struct mc_arena *a, struct mc_readers *r,
                    void (*free_record)(void *, uint64_t), void *ctx);
void mc_reclaim_destroy(struct mc_reclaim *rc);

/* Retire an item, tagged with the current epoch. MC_ENOMEM on failure. */
int mc_retire(struct mc_reclaim *rc, enum mc_retire_kind kind, uint64_t off, uint64_t size);

/* Advance the epoch after a batch of unlinks and retirements. */
void mc_reclaim_advance(struct mc_reclaim *rc);

/*
 * Free every retired item no live reader can see. Returns the number freed,
 * or a negative code if the reader table could not be read.
 */
int mc_reclaim_poll(struct mc_reclaim *rc);

/* Wait (polling, up to timeout_ms; -1 forever) until nothing is pending. */
int mc_reclaim_drain(struct mc_reclaim *rc, int timeout_ms);

/*
 * Read the reader table now: which slots are live, their pins and holds.
 * Done by every poll; call it directly before a series of
 * mc_reclaim_is_held() questions.
 */
int mc_reclaim_scan(struct mc_reclaim *rc);

/* Is a version record held by a live reader, as of the last scan or poll? */
int mc_reclaim_is_held(const struct mc_reclaim *rc, uint64_t rec_off);

/* Slots pinned at or before the oldest pending epoch for >= min_ns. */
size_t mc_reclaim_stalls(struct mc_reclaim *rc, uint64_t min_ns, struct mc_stall *out,
                         size_t max);

#endif
