/*
 * table.h - the lock-free index in the arena: a Concurrency Kit ck_ht
 * (single writer, many readers) whose maps, keys and records all live in the
 * arena's index region.
 *
 * Readers (any process, PROT_READ) call mc_table_lookup(): it hashes the key
 * with XXH3 and the seed from the arena header, and calls ck_ht_get_spmc(),
 * which follows only absolute pointers into the arena and calls no function
 * pointer. They never call ck_ht_hash(), whose `table->h` is a pointer into
 * the writer's address space (DESIGN.md fact 2).
 *
 * The writer (the loader; struct mc_writer) allocates through a struct
 * ck_malloc whose hooks allocate from the index region; maps replaced by a
 * grow are retired (defer=true) and freed only after every reader has moved
 * past them (shm/reclaim.h). A record is inserted only when complete and
 * verified, so publishing is one ck_ht store (publish = seal).
 */
#ifndef MCACHE_INDEX_TABLE_H
#define MCACHE_INDEX_TABLE_H

#include <ck_ht.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/record.h"

struct mc_arena;
struct mc_reclaim;

#define MC_TABLE_MAGIC 0x4c424154u /* "TABL" */
#define MC_KEY_MAX     512u

struct mc_table {
    uint32_t magic;
    uint32_t pad;
    /* ht.m and ht.h point into the writer's address space: readers must not
     * use them; a loader adopting the arena re-points them. */
    struct ck_ht ht;
    uint64_t versions; /* version records (any state) */
    uint64_t resident; /* version records READY */
    uint64_t aliases;
    uint64_t models;
    uint64_t verlist_gen; /* the last generation given to a version list (record.h) */
    /*
     * A sequence count around every change to what a key maps to (a ck_ht
     * insert, replace or removal, an alias's target): odd while one is in
     * progress, and never the same even value twice (starts at 2). A reader
     * that finds the same even value before and after a probe may remember
     * the answer until the value changes (index/resolve.h).
     */
    uint64_t seq;
};

/* XXH3-64 of a key with the arena's seed: the one hash readers and writer share. */
uint64_t mc_key_hash(const void *key, size_t len, uint64_t seed);

/*
 * Find the record for a key (reader or writer). NULL if absent. No system
 * call, no lock, no allocation. The caller must be pinned (reader) for the
 * record to stay valid while it looks at it.
 */
struct mc_rec *mc_table_lookup(struct mc_table *t, uint64_t seed, const char *key, size_t len);

/* Build "name@version" / "name#alias" into buf; returns the length, or 0 if too long. */
size_t mc_key_version(char *buf, size_t cap, const char *name, size_t nlen, const char *ver,
                      size_t vlen);
size_t mc_key_alias(char *buf, size_t cap, const char *name, size_t nlen, const char *alias,
                    size_t alen);

/* ---- Writer (the loader only; table.c) ---- */

struct mc_writer {
    struct mc_arena *arena;
    struct mc_reclaim *reclaim;
    struct mc_table *t;
    struct ck_malloc alloc;
    /* Called by mc_table_free_record() for a version record about to be
     * freed (no reader holds it): the loader frees its stats index. NULL: none. */
    void (*on_free)(void *ctx, const struct mc_rec_version *v);
    void *on_free_ctx;
};

/* What a version record says. */
struct mc_version_desc {
    const char *name;
    const char *version;
    const char *meta;     /* JSON object text, NULL: "{}" */
    const char *checksum; /* "xxh3-128:..." */
    uint32_t format;
    uint32_t state;       /* MC_STATE_* */
    uint64_t data_size;
    uint64_t data_off;    /* arena offset of byte 0 when READY */
    uint64_t extent_off;  /* owned extent when READY (0: none) */
    uint64_t extent_size;
    uint64_t tensors_off; /* owned tensor table (0: none) */
    uint64_t tensors_size;
    uint8_t stats;        /* stats index (index/stats.h) for rec->h.stats; 0: not tracked */
};

/* Create the table in a fresh arena (hdr->table_off set). */
int mc_table_create(struct mc_writer *w, struct mc_arena *a, struct mc_reclaim *rc);

/* Take over the table of an adopted arena (re-points the writer hooks). */
int mc_table_adopt(struct mc_writer *w, struct mc_arena *a, struct mc_reclaim *rc);

/*
 * Publish a version record for (name, version), replacing any record for it
 * (which is retired, with the extent it owns). Aliases that pointed at the
 * old record follow to the new one. The model record and its version list
 * are created or updated. The record owns the extent and tensor table given.
 */
int mc_table_put_version(struct mc_writer *w, const struct mc_version_desc *d,
                         struct mc_rec_version **out);

/* Remove a version (and aliases pointing at it; the model when it was the last). */
int mc_table_remove_version(struct mc_writer *w, const char *name, const char *version);

/* Point alias at an existing version record (one atomic store if it exists). */
int mc_table_set_alias(struct mc_writer *w, const char *name, const char *alias,
                       const char *version);
int mc_table_remove_alias(struct mc_writer *w, const char *name, const char *alias);

/*
 * Point alias at n (1 to MC_SPLIT_MAX) existing versions with weights
 * (percent, 1 to 100 each, summing to 100), in the order given: one atomic
 * store of the alias's target word (n == 1: a plain alias). The old split,
 * if any, is retired. MC_EINVAL for a bad count, weight or sum, or a version
 * given twice; MC_ENOENT for a version not in the arena.
 */
int mc_table_set_alias_split(struct mc_writer *w, const char *name, const char *alias,
                             const char *const *versions, const uint32_t *weights, size_t n);

/* Find a version record by name and exact version (writer or reader). */
struct mc_rec_version *mc_table_find_version(struct mc_table *t, uint64_t seed, const char *name,
                                             const char *version);

/* Iterate every record (writer only; no concurrent mutation). */
typedef int (*mc_table_visit_fn)(void *ctx, struct mc_rec *r);
int mc_table_foreach(struct mc_writer *w, mc_table_visit_fn fn, void *ctx);

/* Frees a retired version record and what it owns (mc_reclaim callback). */
void mc_table_free_record(void *writer, uint64_t rec_off);

/* ---- After a loader crash (table_rebuild.c) ---- */

/*
 * After a loader crash: collect every index object and data extent reachable
 * from the table (plus records readers hold), rebuild both allocators from
 * them, and retire held-but-unreachable records. Call only after a grace
 * period (no reader pinned before the crash is still pinned).
 */
int mc_table_rebuild_allocators(struct mc_writer *w, const uint64_t *held, size_t nheld);

/* Check the table against the allocators (tests and fsck); 0 or MC_ECORRUPT. */
int mc_table_check(struct mc_writer *w);

#endif
