/*
 * get_count.c - a fixed number of warm mc_get + mc_release, for counting
 * instructions with callgrind (run by tests/perf/test_instructions.sh):
 *
 *   get_count N [exact|alias|latest|range|weighted|keyed|ckht] [MODELS]
 *
 * Publishes MODELS models, 100 by default (model-00..99 @1.0.0, each with
 * alias "production"; for weighted and keyed also @1.0.1 and the weighted
 * alias "canary", 1.0.0=90 1.0.1=10, got by a draw per get or by a key)
 * in a fresh arena, closes the writable mapping (one process may map an
 * arena's fixed address only once), attaches as a worker and does one warm
 * get+release per model, then N more round-robin by exact version "1.0.0"
 * (the default), alias "production", "latest" or the range "^1". `ckht`
 * does the same loop over a raw ck_ht in private memory holding the same
 * 300 keys with the same hash and mode as the arena's table (the
 * benchmark's baseline, bench/lookups.c): a lookup of "name@1.0.0", hash
 * included. The instructions per operation are (Ir(2N) - Ir(N)) / N:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null get_count 100000 range
 *
 * Exit 0, or 2 with a message on stderr.
 */
#include <ck_ht.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "mcache.h"
#include "tests/helpers/testutil.h"

#define MAX_MODELS 4000 /* one data extent each; an arena holds 4,095 */

static unsigned nmodels = 100;
static bool weighted; /* the arena has 1.0.1 and "canary" too */
static bool keyed;    /* gets through "canary" by key (mc_get_keyed) */

static int fail(const char *what, int rc)
{
    fprintf(stderr, "get_count: %s: %s (%s)\n", what, mc_strerror(rc), mc_last_error());
    return 2;
}

/*
 * Publish the models and their aliases, then drop the writer's mapping. The
 * table's hash seed is fixed (an arena's is random), so that every run
 * probes the same chains and counts the same instructions.
 */
static int arena_fill(struct tw *t, char names[][24])
{
    int rc = tw_create_arena(t, nmodels > 100 ? 512u << 20 : 64u << 20, 0);

    if (!rc) {
        t->a.hdr->hash_seed = 0x6765745f636f756eull;
        rc = mc_table_create(&t->w, &t->a, &t->rc);
    }
    if (!rc)
        t->a.hdr->state = MC_ARENA_READY;

    for (unsigned i = 0; !rc && i < nmodels; i++) {
        rc = tw_publish(t, names[i], "1.0.0", 64, (uint32_t)i);
        if (!rc)
            rc = mc_table_set_alias(&t->w, names[i], "production", "1.0.0");
        if (!rc && weighted)
            rc = tw_publish(t, names[i], "1.0.1", 64, (uint32_t)i);
        if (!rc && weighted)
            rc = mc_table_set_alias_split(&t->w, names[i], "canary",
                                          (const char *const[]){"1.0.0", "1.0.1"},
                                          (const uint32_t[]){90, 10}, 2);
    }
    mc_reclaim_destroy(&t->rc);
    mc_readers_close(&t->r);
    mc_arena_close(&t->a);
    return rc;
}

/* ---- mcache ---- */

static int run_mcache(char names[][24], const char *ref, unsigned long n, uint64_t *sink)
{
    struct tw t;
    mc_cache *c;
    int rc = arena_fill(&t, names);

    if (!rc)
        rc = mc_attach_dir(t.dir, t.cache, &c);
    if (rc) {
        tdir_remove(t.dir);
        return fail("setting up the arena", rc);
    }
    for (unsigned long i = 0, j = 0; !rc && i < nmodels + n; i++, j = j + 1 < nmodels ? j + 1 : 0) {
        mc_model *m;

        if (keyed) {
            uint64_t key = i; /* a request key per get (i itself stays in a register) */
            rc = mc_get_keyed(c, names[j], ref, &key, sizeof(key), &m);
        } else {
            rc = mc_get(c, names[j], ref, &m);
        }
        if (!rc) {
            *sink += mc_model_size(m);
            mc_release(m);
        }
    }
    mc_detach(c);
    tdir_remove(t.dir);
    return rc ? fail("mc_get", rc) : 0;
}

/* ---- the raw private ck_ht ---- */

static void *ck_malloc_cb(size_t n)
{
    return malloc(n);
}

static void ck_free_cb(void *p, size_t n, bool defer)
{
    (void)n;
    (void)defer;
    free(p);
}

static void ck_hash_cb(ck_ht_hash_t *h, const void *key, size_t len, uint64_t seed)
{
    h->value = XXH3_64bits_withSeed(key, len, seed);
}

static int run_ckht(char names[][24], unsigned long n, uint64_t *sink)
{
    static char keys[3 * MAX_MODELS][32];
    static uint16_t lens[3 * MAX_MODELS];
    static uint64_t size = 64;
    struct ck_malloc alloc = {.malloc = ck_malloc_cb, .free = ck_free_cb};
    const uint64_t seed = 42;
    struct ck_ht ht;

    if (!ck_ht_init(&ht, CK_HT_MODE_BYTESTRING | CK_HT_WORKLOAD_DELETE, ck_hash_cb, &alloc, 64,
                    seed))
        return fail("ck_ht_init", MC_ENOMEM);
    for (unsigned i = 0; i < 3 * nmodels; i++) {
        static const char *const fmt[3] = {"%s@1.0.0", "%s#production", "%s"};
        ck_ht_entry_t e;
        ck_ht_hash_t h;

        lens[i] = (uint16_t)snprintf(keys[i], sizeof(keys[i]), fmt[i / nmodels], names[i % nmodels]);
        h.value = XXH3_64bits_withSeed(keys[i], lens[i], seed);
        ck_ht_entry_set(&e, h, keys[i], lens[i], &size);
        if (!ck_ht_put_spmc(&ht, h, &e))
            return fail("ck_ht_put_spmc", MC_ENOMEM);
    }
    for (unsigned long i = 0, j = 0; i < nmodels + n; i++, j = j + 1 < nmodels ? j + 1 : 0) {
        ck_ht_entry_t e;
        ck_ht_hash_t h;

        h.value = XXH3_64bits_withSeed(keys[j], lens[j], seed);
        ck_ht_entry_key_set(&e, keys[j], lens[j]);
        if (!ck_ht_get_spmc(&ht, h, &e))
            return fail("ck_ht_get_spmc", MC_ENOENT);
        *sink += *(const uint64_t *)ck_ht_entry_value(&e);
    }
    ck_ht_destroy(&ht);
    return 0;
}

int main(int argc, char **argv)
{
    static const char *const modes[][2] = {
        {"exact", "1.0.0"}, {"alias", "production"}, {"latest", "latest"}, {"range", "^1"},
        {"weighted", "canary"}, {"keyed", "canary"}, {"ckht", NULL}};
    static char names[MAX_MODELS][24];
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    const char *mode = argc > 2 ? argv[2] : "exact";
    size_t k = 0, nmodes = sizeof(modes) / sizeof(modes[0]);
    uint64_t sink = 0;
    int rc;

    while (k < nmodes && strcmp(mode, modes[k][0]) != 0)
        k++;
    if (argc > 3)
        nmodels = (unsigned)strtoul(argv[3], NULL, 10);
    if (argc < 2 || argc > 4 || n == 0 || k == nmodes || nmodels == 0 || nmodels > MAX_MODELS) {
        fprintf(stderr, "usage: get_count N [exact|alias|latest|range|weighted|keyed|ckht] "
                        "[MODELS (1-%u)]\n",
                MAX_MODELS);
        return 2;
    }
    weighted = strcmp(mode, "weighted") == 0 || strcmp(mode, "keyed") == 0;
    keyed = strcmp(mode, "keyed") == 0;
    for (unsigned i = 0; i < nmodels; i++)
        snprintf(names[i], sizeof(names[i]), nmodels > 100 ? "model-%05u" : "model-%02u", i);
    rc = modes[k][1] ? run_mcache(names, modes[k][1], n, &sink) : run_ckht(names, n, &sink);
    if (rc)
        return rc;
    printf("%lu %s gets, %llu bytes\n", n, mode, (unsigned long long)sink);
    return 0;
}
