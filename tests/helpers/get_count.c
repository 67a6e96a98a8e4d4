/*
 * get_count.c - a fixed number of warm mc_get + mc_release, for counting
 * instructions with callgrind (never run by ctest):
 *
 *   get_count N [alias]
 *
 * Publishes 100 models (model-00..99 @1.0.0, each with alias "production")
 * in a fresh arena, closes the writable mapping (one process may map an
 * arena's fixed address only once), attaches as a worker and does one warm
 * get+release per model, then N more round-robin by exact version (or by
 * alias). The instructions per get+release are (Ir(2N) - Ir(N)) / N:
 *
 *   valgrind --tool=callgrind --callgrind-out-file=/dev/null get_count 100000
 *
 * Exit 0, or 2 with a message on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mcache.h"
#include "tests/helpers/testutil.h"

#define NMODELS 100

static int fail(const char *what, int rc)
{
    fprintf(stderr, "get_count: %s: %s (%s)\n", what, mc_strerror(rc), mc_last_error());
    return 2;
}

/* Publish the models and their aliases, then drop the writer's mapping. */
static int arena_fill(struct tw *t, char names[NMODELS][16])
{
    int rc = tw_create(t, 64u << 20, 0);

    for (int i = 0; !rc && i < NMODELS; i++) {
        snprintf(names[i], sizeof(names[i]), "model-%02d", i);
        rc = tw_publish(t, names[i], "1.0.0", 64, (uint32_t)i);
        if (!rc)
            rc = mc_table_set_alias(&t->w, names[i], "production", "1.0.0");
    }
    mc_reclaim_destroy(&t->rc);
    mc_readers_close(&t->r);
    mc_arena_close(&t->a);
    return rc;
}

static int get_release(mc_cache *c, const char *name, const char *ref, uint64_t *sink)
{
    mc_model *m;
    int rc = mc_get(c, name, ref, &m);

    if (rc)
        return rc;
    *sink += mc_model_size(m);
    mc_release(m);
    return 0;
}

int main(int argc, char **argv)
{
    static char names[NMODELS][16];
    const char *ref = argc > 2 && strcmp(argv[2], "alias") == 0 ? "production" : "1.0.0";
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 0;
    uint64_t sink = 0;
    struct tw t;
    mc_cache *c;
    int rc;

    if (argc < 2 || argc > 3 || n == 0) {
        fprintf(stderr, "usage: get_count N [alias]\n");
        return 2;
    }
    rc = arena_fill(&t, names);
    if (!rc)
        rc = mc_attach_dir(t.dir, t.cache, &c);
    if (rc) {
        tdir_remove(t.dir);
        return fail("setting up the arena", rc);
    }
    for (unsigned long i = 0; !rc && i < NMODELS + n; i++)
        rc = get_release(c, names[i % NMODELS], ref, &sink);
    mc_detach(c);
    tdir_remove(t.dir);
    if (rc)
        return fail("mc_get", rc);
    printf("%lu gets, %llu bytes\n", n, (unsigned long long)sink);
    return 0;
}
