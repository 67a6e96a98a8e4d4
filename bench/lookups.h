/*
 * lookups.h - the warm lookup loops of the `get` scenario, one per system,
 * over the same keys in the same pre-shuffled order.
 *
 * Keys: N models "model-00000".."model-NNNNN", each with version 1.0.0 and
 * alias "production", so every table holds the same 3N keys mcache's index
 * holds ("name@1.0.0", "name#production", "name"). Every loop does the
 * whole lookup a user's code would do and reads the value's size (mcache:
 * the record; ck_ht: a private record; LMDB and Redis: the value bytes).
 */
#ifndef MCACHE_BENCH_LOOKUPS_H
#define MCACHE_BENCH_LOOKUPS_H

#include <ck_ht.h>
#include <lmdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "mcache.h"

#define ORDER_LEN      (1u << 16)
#define GET_VERSION    "1.0.0"
#define GET_ALIAS      "production"
#define GET_RANGE      "^1"
#define GET_CANARY     "canary"   /* GET_VERSION=90 GET_VERSION2=10 */
#define GET_VERSION2   "1.0.1"
#define GET_VALUE_SIZE 64u /* bytes of the value LMDB and Redis hold per key */

struct keyset {
    unsigned n;
    char (*name)[16]; /* "model-00042" */
    char (*vkey)[32]; /* "model-00042@1.0.0" */
    char (*akey)[32]; /* "model-00042#production" */
    uint16_t *nlen, *vlen, *alen;
    uint32_t *order; /* ORDER_LEN indices, shuffled (the same for every system) */
};

int keyset_make(struct keyset *k, unsigned n);
void keyset_free(struct keyset *k);

struct bench;
struct barena;

/*
 * An arena holding the key set's models (each version published READY, all
 * sharing one small extent that lookups never read) with their aliases
 * (GET_ALIAS: GET_VERSION; GET_CANARY: GET_VERSION 90%, GET_VERSION2 10%),
 * sealed and attached by this process as a reader (*c). tag names it
 * ("get100"). Detach *c, then barena_destroy() it.
 */
int keyset_arena(struct bench *b, struct barena *ba, const struct keyset *k, const char *tag,
                 mc_cache **c);

enum lk_sys {
    LK_MCACHE,        /* by exact version */
    LK_MCACHE_ALIAS,  /* by alias */
    LK_MCACHE_LATEST, /* "latest" */
    LK_MCACHE_RANGE,  /* the range GET_RANGE */
    LK_MCACHE_WEIGHTED, /* the weighted alias GET_CANARY, a pick per get */
    LK_MCACHE_KEYED,    /* the same by a request key (mc_get_keyed) */
    LK_CKHT,
    LK_LMDB,
    LK_REDIS,
    LK_NSYS
};

struct resp;

/* One system, ready to look keys up. */
struct lk {
    enum lk_sys sys;
    const struct keyset *k;
    mc_cache *mc;
    struct ck_ht ht; /* LK_CKHT: a private table, malloc'd */
    struct ck_malloc alloc;
    uint64_t seed;
    uint64_t *recs; /* LK_CKHT: one "record" (its size) per model */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    struct resp *rd;
    uint64_t sink; /* sum of sizes read, so no loop is optimised away */
};

/* mcache on an attached cache (the caller keeps it attached; alias: by alias). */
int lk_open_mcache(struct lk *l, const struct keyset *k, mc_cache *c, bool alias);
/* The same by the reference sys names (LK_MCACHE .. LK_MCACHE_RANGE). */
int lk_open_mcache_ref(struct lk *l, const struct keyset *k, mc_cache *c, enum lk_sys sys);
/* A private ck_ht with the same keys, hash (XXH3) and mode as mcache's index. */
int lk_open_ckht(struct lk *l, const struct keyset *k);
/* LMDB environment at dir (made by lmdb_put_keys), read-only. */
int lk_open_lmdb(struct lk *l, const struct keyset *k, const char *dir);
/* Redis over an open connection whose current database holds the keys. */
int lk_open_redis(struct lk *l, const struct keyset *k, struct resp *rd);

/* Look up ops keys, from position first of the order. 0, or -1 on any miss. */
int lk_run(struct lk *l, uint64_t first, uint64_t ops);

void lk_close(struct lk *l);

/* Make directory dir and an LMDB environment in it (MDB_NOSYNC: the bench rebuilds it). */
int lmdb_env_make(const char *dir, uint64_t mapsize, MDB_env **env);

/* Create an LMDB environment at dir holding the version keys (GET_VALUE_SIZE values). */
int lmdb_put_keys(const char *dir, const struct keyset *k);

#endif
