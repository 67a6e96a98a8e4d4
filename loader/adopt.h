/*
 * adopt.h - the loader's arena: create it, or adopt the one a previous
 * mcached left (warm restart), whether it stopped cleanly or was killed at
 * any instruction.
 *
 * Adopting never trusts the allocators' state, which a killed loader may
 * have left half-updated. It bumps the epoch, waits until no reader is still
 * pinned from before (one grace period: nobody can then be looking at
 * memory the dead loader was about to free or had just unlinked), and then
 * rebuilds both allocators from what the table reaches plus the records
 * readers hold, and mends version lists and aliases a crash left pointing
 * at replaced records. Everything else, including a load that was in
 * flight, is free again. Models already resident stay resident. A reader
 * stopped inside a lookup from before the restart holds adoption back for
 * at most MC_ADOPT_GRACE_NS; then the arena is replaced instead (its
 * readers keep what they map).
 */
#ifndef MCACHE_LOADER_ADOPT_H
#define MCACHE_LOADER_ADOPT_H

#include <stdbool.h>

#include "index/table.h"
#include "loader/access.h"
#include "shm/arena.h"
#include "shm/readers.h"
#include "shm/reclaim.h"

struct mc_config;

/* Longest wait for readers pinned before a restart; then the arena is replaced. */
#define MC_ADOPT_GRACE_NS (10ull * 1000000000ull)

struct mc_own {
    struct mc_arena a;
    struct mc_readers r;
    struct mc_reclaim rc;
    struct mc_writer w;
    int lock_fd;
    bool adopted;         /* true: an existing arena was adopted */
    uint64_t adopt_ns;    /* how long create/adopt took */
};

/*
 * Take the per-cache lock, then adopt or create the arena for cfg, and give
 * it and its reader table the modes and group of acc (an adopted arena's
 * old ones are replaced). A format mismatch or damaged arena is replaced
 * (workers on the old one keep what they hold and get MC_ESTALE). Returns 0
 * or a code with a message.
 */
int mc_own_arena(struct mc_own *o, const struct mc_config *cfg, const struct mc_access *acc);

/*
 * Give the arena and its reader table acc's modes and group (at start and
 * on SIGHUP). Workers attached already keep the files they have open. 0, or
 * the first error (logged; the rest is not tried).
 */
int mc_own_set_access(struct mc_own *o, const struct mc_access *acc);

/* 0 if no other mcached serves cfg's cache now, else MC_EBUSY naming its pid. Takes nothing. */
int mc_own_check_free(const struct mc_config *cfg);

/* Leave the arena consistent for the next loader and release everything. */
void mc_own_release(struct mc_own *o);

#endif
