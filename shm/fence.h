/*
 * fence.h - the store-load fence of the reader protocol, made asymmetric:
 * both halves of the pin, side by side (see reclaim.h for the protocol).
 *
 * A reader must make its pin visible before it reads the table, and the
 * loader must make its unlinks visible before it reads the pins. Done
 * symmetrically, every mc_get() pays a locked instruction (xchg, ~20
 * cycles). With membarrier(2), the rare side pays instead: the loader issues
 * MEMBARRIER_CMD_GLOBAL_EXPEDITED before it reads pins, which runs a full
 * barrier on every CPU currently running a registered reader (and a reader
 * that is not running passes one when it is scheduled), so a reader can pin
 * with a plain store and a compiler barrier. This is how liburcu's
 * membarrier flavour works, and as there each fence is named by the side it
 * serves:
 *
 *   reader                               loader
 *   mc_fence_reader_pin()    <- pairs -> mc_fence_loader_barrier()
 *     plain store (MEMBARRIER mode)        membarrier on every reader's CPU
 *     or xchg (XCHG mode)                  or a full fence here
 *   ... lookup, hold ...
 *   mc_fence_reader_unpin()  <- pairs -> the acquire load of the pin in
 *     (release)                            reclaim.c's scan(), then the holds
 *
 * The arena header says which protocol its loader follows (hdr->fence: set
 * when the arena is created and never changed, so a reader reads it once,
 * at attach). A loader that cannot issue the barrier creates arenas in
 * MC_FENCE_XCHG mode, and never adopts an arena in MC_FENCE_MEMBARRIER
 * mode. A reader uses the plain store only if the arena says MEMBARRIER and
 * its own registration succeeded; otherwise it uses xchg, which is always
 * safe.
 */
#ifndef MCACHE_SHM_FENCE_H
#define MCACHE_SHM_FENCE_H

#include <stdbool.h>
#include <stdint.h>

#include "shm/arena.h"
#include "shm/atomic.h"

enum mc_fence {
    MC_FENCE_XCHG = 0,       /* readers fence themselves */
    MC_FENCE_MEMBARRIER = 1, /* the loader fences the readers (membarrier) */
};

/* A full (store-load) fence on this CPU. */
static inline void mc_fence_full(void)
{
#if defined(__SANITIZE_THREAD__)
    /* GCC's ThreadSanitizer does not support fences: a locked RMW instead. */
    static uint64_t word;
    __atomic_fetch_add(&word, 0, __ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}

/*
 * An acquire fence: loads before it are done before any load or store after
 * it (a compiler barrier on x86). Used by the table's sequence check
 * (index/resolve.h), not by the pin.
 */
static inline void mc_fence_acquire(void)
{
#if defined(__SANITIZE_THREAD__)
    mc_fence_full(); /* GCC's ThreadSanitizer does not support fences */
#else
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
#endif
}

/* ---- Reader side ---- */

/* Reader: register this process for the loader's barriers (once). */
bool mc_fence_reader_register(void);

/*
 * Reader, at attach: may this process pin with a plain store on this arena
 * (its loader fences readers with membarrier, and we registered for it)?
 */
static inline bool mc_fence_reader_plain(const struct mc_arena_hdr *h)
{
    bool registered = mc_fence_reader_register();

    return registered && mc_load_relaxed_u32(&h->fence) == MC_FENCE_MEMBARRIER;
}

/*
 * Reader, before a lookup: *pin = the current epoch, visible to the loader
 * before any load of the table that follows. `plain`: what
 * mc_fence_reader_plain() said for this arena.
 */
static inline void mc_fence_reader_pin(const struct mc_arena_hdr *h, bool plain, uint64_t *pin)
{
    /* Pairs with mc_reclaim_advance()'s release: the unlinks came first. */
    uint64_t epoch = mc_load_acquire(&h->epoch);

    if (__builtin_expect(plain, 1)) {
        /* Pairs with mc_fence_loader_barrier()'s membarrier, which fences
         * this CPU; the compiler barrier keeps the table loads after it. */
        mc_store_relaxed(pin, epoch);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
    } else {
        /* A full fence (xchg); pairs with mc_fence_loader_barrier()'s. */
        __atomic_exchange_n(pin, epoch, __ATOMIC_SEQ_CST);
    }
}

/*
 * Reader, after a lookup (and after storing its hold, if any): *pin = 0.
 * The release keeps the lookup's loads and the hold's store before it;
 * pairs with the loader's acquire load of the pin in scan() (reclaim.c),
 * which reads the holds after the pin.
 */
static inline void mc_fence_reader_unpin(uint64_t *pin)
{
    mc_store_release(pin, 0);
}

/* ---- Loader side ---- */

/* Loader: can this process issue global expedited barriers? */
bool mc_fence_loader_supported(void);

/* Loader: a full barrier on every CPU running a registered reader, and here. */
int mc_fence_loader_membarrier(void);

/*
 * Loader, after its unlinks and epoch store, before it reads any pin: every
 * reader's earlier pin is visible here, and the unlinks to every reader's
 * later loads, as the arena's mode requires. 0, or a code if the barrier
 * failed (then nothing may be freed on the strength of the pins read).
 */
static inline int mc_fence_loader_barrier(const struct mc_arena_hdr *h)
{
    /* Pairs with mc_fence_reader_pin()'s plain store. */
    if (mc_load_relaxed_u32(&h->fence) == MC_FENCE_MEMBARRIER)
        return mc_fence_loader_membarrier();
    /* Pairs with mc_fence_reader_pin()'s xchg. */
    mc_fence_full();
    return 0;
}

#endif
