/*
 * barena.c - the bench as its own loader: create, fill, seal (see barena.h).
 */
#include "bench/barena.h"

#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/model.h"
#include "bench/synth.h"
#include "common/err.h"

/* Header, free arrays and alignment slack around the two regions. */
#define ARENA_OVERHEAD (4 * MiB)
#define BASE_STRIDE    (1ull << 36) /* with --base: 64 GiB between the arenas' bases */

static uint64_t round_up(uint64_t v, uint64_t g)
{
    return (v + g - 1) / g * g;
}

static uint64_t index_default(uint64_t data_size)
{
    uint64_t ix = data_size / 16;

    return ix < 4 * MiB ? 4 * MiB : ix > GiB ? GiB : ix;
}

uint64_t barena_footprint(uint64_t data_size, uint64_t index_size)
{
    if (!index_size)
        index_size = index_default(data_size);
    return ARENA_OVERHEAD + round_up(index_size, MC_HUGE_PAGE) + round_up(data_size, MC_HUGE_PAGE);
}

int bench_next_base(struct bench *b, uint64_t size, uint64_t *base)
{
    if (b->o.base) {
        *base = b->o.base + b->placed++ * BASE_STRIDE;
        return 0;
    }
    if (size > MC_BASE_SLOT)
        return bench_error("an arena of %llu bytes does not fit a %llu GiB slot of the default "
                           "address range; give --base ADDR (arenas then go 64 GiB apart)",
                           (unsigned long long)size, MC_BASE_SLOT >> 30);
    *base = mc_arena_slot_base(b->placed++);
    return 0;
}

static int mc_fail(const char *what, const struct barena *ba, int rc)
{
    return bench_error("%s (arena %s): %s", what, ba->path[0] ? ba->path : ba->cache,
                       *mc_last_error() ? mc_last_error() : mc_strerror(rc));
}

int barena_create(struct bench *b, struct barena *ba, const char *dir, const char *tag,
                  uint64_t data_size, uint64_t index_size)
{
    struct mc_arena_opts o = {0};
    int rc;

    memset(ba, 0, sizeof(*ba));
    if (!index_size)
        index_size = index_default(data_size);
    snprintf(ba->dir, sizeof(ba->dir), "%s", dir);
    snprintf(ba->cache, sizeof(ba->cache), "bench-%d-%s", (int)getpid(), tag);
    o.dir = ba->dir;
    o.cache = ba->cache;
    o.size = barena_footprint(data_size, index_size);
    if (bench_next_base(b, o.size, &ba->base))
        return -1;
    o.index_size = index_size;
    o.base = ba->base;
    o.mode = 0600;
    rc = mc_arena_create(&o, &ba->a);
    if (rc)
        return mc_fail("creating an arena", ba, rc);
    snprintf(ba->path, sizeof(ba->path), "%s", ba->a.path);
    ba->writing = true;
    ba->page_size = ba->a.hdr->page_size;
    rc =
        mc_readers_create(ba->dir, ba->cache, MC_READER_SLOTS, 0600, ba->a.hdr->created_ns, &ba->r);
    if (rc) {
        mc_arena_close(&ba->a);
        ba->writing = false;
        return mc_fail("creating the reader table", ba, rc);
    }
    rc = mc_reclaim_init(&ba->rc, &ba->a, &ba->r, mc_table_free_record, &ba->w);
    if (!rc)
        rc = mc_table_create(&ba->w, &ba->a, &ba->rc);
    if (rc) {
        barena_destroy(ba);
        return mc_fail("creating the index table", ba, rc);
    }
    ba->a.hdr->state = MC_ARENA_READY;
    return 0;
}

int barena_alloc(struct barena *ba, uint64_t size, uint64_t *off)
{
    int rc = mc_extent_alloc(&ba->a, &ba->a.hdr->data_ext, size, 0, off);

    return rc ? mc_fail("allocating model bytes", ba, rc) : 0;
}

static int put(struct barena *ba, const char *name, const char *version, uint64_t data_off,
               uint64_t size, uint64_t extent_off)
{
    int rc = synth_version(&ba->w, &ba->a, name, version, NULL, data_off, size, extent_off);

    return rc ? mc_fail("publishing a model", ba, rc) : 0;
}

int barena_put_model(struct barena *ba, const char *name, const char *version, uint64_t size,
                     uint64_t *sum)
{
    uint64_t off;
    int rc = barena_alloc(ba, size, &off);

    if (rc)
        return rc;
    *sum = model_fill(mc_arena_ptr(&ba->a, off), 0, size);
    return put(ba, name, version, off, size, off);
}

int barena_put_shared(struct barena *ba, const char *name, const char *version, uint64_t data_off,
                      uint64_t size)
{
    return put(ba, name, version, data_off, size, 0);
}

int barena_track(struct barena *ba, const char *name, const char *version, unsigned idx)
{
    struct mc_rec_version *v = mc_table_find_version(ba->w.t, ba->a.hdr->hash_seed, name, version);

    if (!v)
        return bench_error("barena_track: %s@%s is not in the arena", name, version);
    v->h.stats = (uint8_t)idx; /* before the seal: no reader yet */
    return 0;
}

int barena_split(struct barena *ba, const char *name, const char *alias, const char *v1,
                 uint32_t w1, const char *v2)
{
    const char *vs[] = {v1, v2};
    uint32_t ws[] = {w1, 100 - w1};
    int rc = mc_table_set_alias_split(&ba->w, name, alias, vs, ws, 2);

    return rc ? mc_fail("setting a weighted alias", ba, rc) : 0;
}

int barena_alias(struct barena *ba, const char *name, const char *alias, const char *version)
{
    int rc = mc_table_set_alias(&ba->w, name, alias, version);

    return rc ? mc_fail("setting an alias", ba, rc) : 0;
}

void barena_seal(struct barena *ba)
{
    if (!ba->writing)
        return;
    mc_reclaim_destroy(&ba->rc);
    mc_readers_close(&ba->r);
    mc_arena_close(&ba->a);
    ba->writing = false;
}

void barena_destroy(struct barena *ba)
{
    char readers[700];

    barena_seal(ba);
    if (!ba->path[0])
        return;
    mc_arena_unlink(ba->dir, ba->cache);
    snprintf(readers, sizeof(readers), "%s.readers", ba->path);
    unlink(readers);
    ba->path[0] = '\0';
}
