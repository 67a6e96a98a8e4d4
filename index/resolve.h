/*
 * resolve.h - resolve a model reference against the arena's records.
 */
#ifndef MCACHE_INDEX_RESOLVE_H
#define MCACHE_INDEX_RESOLVE_H

#include "index/table.h"

/*
 * Resolve `ref` (exact version, alias, "latest" or NULL, or a range) of
 * model `name` to its version record, in any state. The caller must be
 * pinned (reader) or be the writer. MC_ENOENT (with a message) if nothing
 * matches.
 */
int mc_resolve(struct mc_table *t, uint64_t seed, const char *name, const char *ref,
               struct mc_rec_version **out);

#endif
