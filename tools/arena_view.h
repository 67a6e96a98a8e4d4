/*
 * arena_view.h - what the CLI learns from a cache's arena by itself, with or
 * without mcached: the header (read with pread, no mapping), residency of
 * versions (attached read-only through libmcache, as a worker would), and
 * the reader table (who is attached and what they hold).
 */
#ifndef MCACHE_TOOLS_ARENA_VIEW_H
#define MCACHE_TOOLS_ARENA_VIEW_H

#include <jansson.h>

#include "mcache.h"
#include "shm/arena.h"
#include "tools/cli.h"

/*
 * Read the header of the cache's arena file into *h (path, if given, gets
 * the file's path). MC_ENOENT if there is no arena (with a message naming
 * the file and how to create it), MC_EBADARENA if it is not one.
 */
int cli_arena_header(const struct cli *c, struct mc_arena_hdr *h, char *path, size_t len);

struct cli_arena {
    mc_cache *mc; /* NULL: not attached */
    struct mc_arena_hdr hdr;
    struct mc_cache_info info;
    char path[512];
};

/*
 * Who may read the arena at path, from its mode and group as mcached's
 * `status` says it ("any local user" if others may read it; "owner+group G"
 * if G is its owner's primary group, as mcached's default; else "group G"),
 * into buf; "?" if it cannot be stat'ed.
 */
void cli_arena_access(const char *path, char *buf, size_t len);

/* Attach read-only. On failure a->mc stays NULL and the code is returned. */
int cli_arena_attach(const struct cli *c, struct cli_arena *a);
void cli_arena_detach(struct cli_arena *a);

/*
 * Where name@version stands in the arena: "resident", "not-resident"
 * (registered with the arena but not loaded, or unknown to it), "failed"
 * (its last load failed) or, with no arena attached, "unknown".
 */
const char *cli_arena_residency(struct cli_arena *a, const char *name, const char *version);

/*
 * The live reader slots, as mcached's `readers` operation reports them:
 * [{"slot", "pid", "tid", "since_ns", "in_lookup", "holds": ["name@version"...]}],
 * leaving out this process. NULL with an error if the table cannot be read.
 */
json_t *cli_arena_readers(const struct cli *c, struct cli_arena *a);

#endif
