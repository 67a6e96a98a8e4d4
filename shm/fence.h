/*
 * fence.h - the store-load fence of the reader protocol, made asymmetric.
 *
 * A reader must make its pin visible before it reads the table, and the
 * loader must make its unlinks visible before it reads the pins (see
 * reclaim.h). Done symmetrically, every mc_get() pays a locked instruction
 * (xchg, ~20 cycles). With membarrier(2), the rare side pays instead: the
 * loader issues MEMBARRIER_CMD_GLOBAL_EXPEDITED before it reads pins, which
 * runs a full barrier on every CPU currently running a registered reader
 * (and a reader that is not running passes one when it is scheduled), so a
 * reader can pin with a plain store and a compiler barrier. This is how
 * liburcu's membarrier flavour works.
 *
 * The arena header says which protocol its loader follows (hdr->fence,
 * next to the epoch, read on every get). A loader that cannot issue the
 * barrier creates arenas in MC_FENCE_XCHG mode, and never adopts an arena
 * in MC_FENCE_MEMBARRIER mode. A reader uses the plain store only if the
 * arena says MEMBARRIER and its own registration succeeded; otherwise it
 * uses xchg, which is always safe.
 */
#ifndef MCACHE_SHM_FENCE_H
#define MCACHE_SHM_FENCE_H

#include <stdbool.h>

enum mc_fence {
    MC_FENCE_XCHG = 0,       /* readers fence themselves */
    MC_FENCE_MEMBARRIER = 1, /* the loader fences the readers (membarrier) */
};

/* Loader: can this process issue global expedited barriers? */
bool mc_fence_loader_supported(void);

/* Loader: a full barrier on every CPU running a registered reader. */
int mc_fence_readers(void);

struct mc_arena_hdr;

/*
 * Loader: before reading readers' pins, make every reader's earlier pin
 * store visible and order our earlier unlinks before its later loads, as
 * the arena's mode requires. 0, or a code if the barrier failed (then
 * nothing may be freed on the strength of this read).
 */
int mc_fence_before_pins(const struct mc_arena_hdr *h);

/* Reader: register this process for the loader's barriers (once). */
bool mc_fence_reader_register(void);

#endif
