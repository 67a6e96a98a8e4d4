/*
 * lookups.c - key sets and the per-system warm lookup loops (see lookups.h).
 *
 * Each system has its own loop, so no loop pays for an indirect call the
 * others do not; lk_run() picks the loop once per batch.
 */
#include "bench/lookups.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "bench/barena.h"
#include "bench/bench.h"
#include "bench/model.h"
#include "bench/redis.h"

#define ORDER_MASK (ORDER_LEN - 1)
#define CKHT_SEED  0x6d63616368652121ull

int keyset_make(struct keyset *k, unsigned n)
{
    uint64_t x = 0x853c49e6748fea9bull; /* fixed seed: every process gets the same order */

    memset(k, 0, sizeof(*k));
    k->n = n;
    k->name = xrealloc(NULL, n * sizeof(*k->name));
    k->vkey = xrealloc(NULL, n * sizeof(*k->vkey));
    k->akey = xrealloc(NULL, n * sizeof(*k->akey));
    k->nlen = xrealloc(NULL, n * sizeof(*k->nlen));
    k->vlen = xrealloc(NULL, n * sizeof(*k->vlen));
    k->alen = xrealloc(NULL, n * sizeof(*k->alen));
    k->order = xrealloc(NULL, ORDER_LEN * sizeof(*k->order));
    for (unsigned i = 0; i < n; i++) {
        k->nlen[i] = (uint16_t)snprintf(k->name[i], sizeof(k->name[i]), "model-%05u", i);
        k->vlen[i] =
            (uint16_t)snprintf(k->vkey[i], sizeof(k->vkey[i]), "%s@%s", k->name[i], GET_VERSION);
        k->alen[i] =
            (uint16_t)snprintf(k->akey[i], sizeof(k->akey[i]), "%s#%s", k->name[i], GET_ALIAS);
    }
    /* Every key appears equally often, in a shuffled order (Fisher-Yates, xorshift64). */
    for (unsigned i = 0; i < ORDER_LEN; i++)
        k->order[i] = i % n;
    for (unsigned i = ORDER_LEN - 1; i > 0; i--) {
        uint32_t j, t;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        j = (uint32_t)(x % (i + 1));
        t = k->order[i];
        k->order[i] = k->order[j];
        k->order[j] = t;
    }
    return 0;
}

void keyset_free(struct keyset *k)
{
    free(k->name);
    free(k->vkey);
    free(k->akey);
    free(k->nlen);
    free(k->vlen);
    free(k->alen);
    free(k->order);
    memset(k, 0, sizeof(*k));
}

int keyset_arena(struct bench *b, struct barena *ba, const struct keyset *k, const char *tag,
                 mc_cache **c)
{
    uint64_t off;

    if (barena_create(b, ba, b->shm_work, tag, 4096, k->n > 100 ? 32 * MiB : 4 * MiB) ||
        barena_alloc(ba, 4096, &off))
        return -1;
    model_fill(mc_arena_ptr(&ba->a, off), 0, 4096);
    for (unsigned i = 0; i < k->n; i++)
        if (barena_put_shared(ba, k->name[i], GET_VERSION, off, GET_VALUE_SIZE) ||
            barena_put_shared(ba, k->name[i], GET_VERSION2, off, GET_VALUE_SIZE) ||
            barena_alias(ba, k->name[i], GET_ALIAS, GET_VERSION) ||
            barena_split(ba, k->name[i], GET_CANARY, GET_VERSION, 90, GET_VERSION2))
            return -1;
    if (barena_track(ba, k->name[0], GET_VERSION, 1)) /* for mc_report() */
        return -1;
    barena_seal(ba);
    if (mc_attach_dir(ba->dir, ba->cache, c))
        return bench_error("attaching to %s: %s", ba->path, mc_last_error());
    return 0;
}

/* ---- opening ---- */

static void lk_init(struct lk *l, enum lk_sys sys, const struct keyset *k)
{
    memset(l, 0, sizeof(*l));
    l->sys = sys;
    l->k = k;
}

int lk_open_mcache_ref(struct lk *l, const struct keyset *k, mc_cache *c, enum lk_sys sys)
{
    lk_init(l, sys, k);
    l->mc = c;
    return 0;
}

int lk_open_mcache(struct lk *l, const struct keyset *k, mc_cache *c, bool alias)
{
    return lk_open_mcache_ref(l, k, c, alias ? LK_MCACHE_ALIAS : LK_MCACHE);
}

static void *ck_malloc_cb(size_t n)
{
    return malloc(n);
}

static void ck_free_cb(void *p, size_t n, bool defer)
{
    (void)n;
    (void)defer; /* single-threaded here: nothing reads a freed map */
    free(p);
}

static void ck_hash_cb(ck_ht_hash_t *h, const void *key, size_t len, uint64_t seed)
{
    h->value = XXH3_64bits_withSeed(key, len, seed);
}

static int ckht_put(struct lk *l, const char *key, uint16_t len, void *value)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    h.value = XXH3_64bits_withSeed(key, len, l->seed);
    ck_ht_entry_set(&e, h, key, len, value);
    return ck_ht_put_spmc(&l->ht, h, &e) ? 0 : bench_error("ck_ht_put_spmc failed");
}

int lk_open_ckht(struct lk *l, const struct keyset *k)
{
    lk_init(l, LK_CKHT, k);
    l->seed = CKHT_SEED;
    l->alloc.malloc = ck_malloc_cb;
    l->alloc.free = ck_free_cb;
    /* Same mode, initial size and hash as mcache's table (index/table.c). */
    if (!ck_ht_init(&l->ht, CK_HT_MODE_BYTESTRING | CK_HT_WORKLOAD_DELETE, ck_hash_cb, &l->alloc,
                    64, l->seed))
        return bench_error("ck_ht_init failed");
    l->recs = xrealloc(NULL, k->n * sizeof(*l->recs));
    for (unsigned i = 0; i < k->n; i++) {
        l->recs[i] = GET_VALUE_SIZE;
        if (ckht_put(l, k->vkey[i], k->vlen[i], &l->recs[i]) ||
            ckht_put(l, k->akey[i], k->alen[i], &l->recs[i]) ||
            ckht_put(l, k->name[i], k->nlen[i], &l->recs[i]))
            return -1;
    }
    return 0;
}

static int lmdb_fail(const char *what, const char *dir, int rc)
{
    return bench_error("LMDB %s (%s): %s", what, dir, mdb_strerror(rc));
}

int lmdb_env_make(const char *dir, uint64_t mapsize, MDB_env **env)
{
    int rc;

    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return bench_error("mkdir %s: %s", dir, strerror(errno));
    if ((rc = mdb_env_create(env)) || (rc = mdb_env_set_mapsize(*env, mapsize / MiB * MiB)) ||
        (rc = mdb_env_open(*env, dir, MDB_NOSYNC, 0600)))
        return lmdb_fail("creating an environment", dir, rc);
    return 0;
}

int lmdb_put_keys(const char *dir, const struct keyset *k)
{
    char value[GET_VALUE_SIZE];
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc;

    memset(value, 0x5a, sizeof(value));
    if (lmdb_env_make(dir, 64 * MiB, &env))
        return -1;
    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) || (rc = mdb_dbi_open(txn, NULL, 0, &dbi)))
        goto fail;
    for (unsigned i = 0; i < k->n; i++) {
        MDB_val kv = {k->vlen[i], (void *)k->vkey[i]}, vv = {sizeof(value), value};

        if ((rc = mdb_put(txn, dbi, &kv, &vv, 0)))
            goto fail;
    }
    if ((rc = mdb_txn_commit(txn)))
        goto fail_env;
    mdb_env_close(env);
    return 0;
fail:
    mdb_txn_abort(txn);
fail_env:
    mdb_env_close(env);
    return lmdb_fail("writing keys", dir, rc);
}

int lk_open_lmdb(struct lk *l, const struct keyset *k, const char *dir)
{
    int rc;

    lk_init(l, LK_LMDB, k);
    if ((rc = mdb_env_create(&l->env)) || (rc = mdb_env_open(l->env, dir, MDB_RDONLY, 0600)) ||
        (rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, &l->txn)) ||
        (rc = mdb_dbi_open(l->txn, NULL, 0, &l->dbi)))
        return lmdb_fail("opening read-only", dir, rc);
    mdb_txn_reset(l->txn); /* the loop renews it per lookup */
    return 0;
}

int lk_open_redis(struct lk *l, const struct keyset *k, struct resp *rd)
{
    lk_init(l, LK_REDIS, k);
    l->rd = rd;
    return 0;
}

void lk_close(struct lk *l)
{
    if (l->sys == LK_CKHT && l->recs) {
        ck_ht_destroy(&l->ht);
        free(l->recs);
    }
    if (l->txn)
        mdb_txn_abort(l->txn);
    if (l->env)
        mdb_env_close(l->env);
    memset(l, 0, sizeof(*l));
}

/* ---- the loops ---- */

static int miss(const struct lk *l, uint32_t j, const char *how)
{
    return bench_error("lookup of %s failed in the %s loop: %s", l->k->vkey[j],
                       l->sys == LK_CKHT   ? "ck_ht"
                       : l->sys == LK_LMDB ? "LMDB"
                                           : "mcache",
                       how);
}

static int run_mcache(struct lk *l, uint64_t first, uint64_t ops)
{
    const struct keyset *k = l->k;
    const char *ref = l->sys == LK_MCACHE_ALIAS    ? GET_ALIAS
                      : l->sys == LK_MCACHE_LATEST ? "latest"
                      : l->sys == LK_MCACHE_RANGE  ? GET_RANGE
                      : l->sys >= LK_MCACHE_WEIGHTED ? GET_CANARY
                                                   : GET_VERSION;
    bool keyed = l->sys == LK_MCACHE_KEYED;
    uint64_t sink = 0;

    for (uint64_t i = first; i < first + ops; i++) {
        uint32_t j = k->order[i & ORDER_MASK];
        mc_model *m;
        /* keyed: a request key per get, as a server's user id would be */
        int rc = keyed ? mc_get_keyed(l->mc, k->name[j], ref, &i, sizeof(i), &m)
                       : mc_get(l->mc, k->name[j], ref, &m);

        if (__builtin_expect(rc != 0, 0))
            return miss(l, j, mc_last_error());
        sink += mc_model_size(m);
        mc_release(m);
    }
    l->sink += sink;
    return 0;
}

static int run_ckht(struct lk *l, uint64_t first, uint64_t ops)
{
    const struct keyset *k = l->k;
    uint64_t sink = 0;

    for (uint64_t i = first; i < first + ops; i++) {
        uint32_t j = k->order[i & ORDER_MASK];
        ck_ht_entry_t e;
        ck_ht_hash_t h;

        h.value = XXH3_64bits_withSeed(k->vkey[j], k->vlen[j], l->seed);
        ck_ht_entry_key_set(&e, k->vkey[j], k->vlen[j]);
        if (__builtin_expect(!ck_ht_get_spmc(&l->ht, h, &e), 0))
            return miss(l, j, "not found");
        sink += *(const uint64_t *)ck_ht_entry_value(&e);
    }
    l->sink += sink;
    return 0;
}

static int run_lmdb(struct lk *l, uint64_t first, uint64_t ops)
{
    const struct keyset *k = l->k;
    uint64_t sink = 0;

    for (uint64_t i = first; i < first + ops; i++) {
        uint32_t j = k->order[i & ORDER_MASK];
        MDB_val kv = {k->vlen[j], (void *)k->vkey[j]}, vv;
        int rc = mdb_txn_renew(l->txn);

        if (!rc)
            rc = mdb_get(l->txn, l->dbi, &kv, &vv);
        if (__builtin_expect(rc != 0, 0))
            return miss(l, j, mdb_strerror(rc));
        sink += vv.mv_size + *(const uint8_t *)vv.mv_data;
        mdb_txn_reset(l->txn);
    }
    l->sink += sink;
    return 0;
}

static int run_redis(struct lk *l, uint64_t first, uint64_t ops)
{
    const struct keyset *k = l->k;
    char val[GET_VALUE_SIZE * 2];
    uint64_t sink = 0;

    for (uint64_t i = first; i < first + ops; i++) {
        uint32_t j = k->order[i & ORDER_MASK];
        const char *argv[] = {"GET", k->vkey[j]};
        size_t lens[] = {3, k->vlen[j]};
        long n;

        if (resp_send(l->rd, 2, argv, lens) || (n = resp_reply(l->rd, val, sizeof(val))) < 0)
            return miss(l, j, "Redis GET failed");
        sink += (uint64_t)n + (uint8_t)val[0];
    }
    l->sink += sink;
    return 0;
}

int lk_run(struct lk *l, uint64_t first, uint64_t ops)
{
    switch (l->sys) {
    case LK_MCACHE:
    case LK_MCACHE_ALIAS:
    case LK_MCACHE_LATEST:
    case LK_MCACHE_RANGE:
    case LK_MCACHE_WEIGHTED:
    case LK_MCACHE_KEYED:
        return run_mcache(l, first, ops);
    case LK_CKHT:
        return run_ckht(l, first, ops);
    case LK_LMDB:
        return run_lmdb(l, first, ops);
    case LK_REDIS:
        return run_redis(l, first, ops);
    case LK_NSYS:
        break;
    }
    return -1;
}
