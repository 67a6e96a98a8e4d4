/*
 * table_rebuild.c - the table after a loader crash: what it reaches, and the
 * allocators rebuilt from that (the loader, at adoption only), or checked
 * against it (the tests).
 *
 * A loader can die between any two steps of an update, so the allocators'
 * state and a few pointers in the arena may be half-changed. Reachability
 * is the truth: every index object and data extent the table reaches (plus
 * the records readers still hold) is live, and nothing else is. From that
 * set mc_table_rebuild_allocators() rebuilds both allocators, then mends
 * the pointers (version lists, aliases, empty models) and retires the
 * records only a reader's hold still reaches. mc_table_check() compares the
 * same set with the allocators without changing anything. See table.h.
 */
#include "index/table.h"

#include <stdlib.h>
#include <string.h>

#include "index/table_int.h"
#include "shm/arena.h"
#include "shm/atomic.h"
#include "common/err.h"
#include "common/vec.h"
#include "shm/reclaim.h"
#include "shm/slab.h"

struct spans {
    struct mc_extent_span *v;
    size_t n, cap;
};

static int spans_add(struct spans *s, uint64_t off, uint64_t len)
{
    if (MC_VEC_RESERVE(s->v, s->cap, s->n + 1, 256))
        return mc_err(MC_ENOMEM, "scanning the arena: out of memory");
    s->v[s->n++] = (struct mc_extent_span){off, len};
    return 0;
}

struct reach {
    struct mc_writer *w;
    struct spans index, data;
    /* Version records something points at (a version list, an alias, a
     * reader's hold) that are not the table's current record for their key:
     * left by a loader that died between two steps of an update. */
    struct mc_rec_version **stray;
    size_t nstray, cap_stray;
};

static int reach_version(struct reach *st, struct mc_rec_version *v)
{
    struct mc_arena *a = st->w->arena;
    const struct mc_rec_vcold *c = mc_rec_cold(v);
    int err = spans_add(&st->index, mc_arena_off(a, v), v->h.alloc_size);

    if (!err && c->extent_off)
        err = spans_add(&st->data, c->extent_off, c->extent_size);
    if (!err && c->tensors_off)
        err = spans_add(&st->index, c->tensors_off, c->tensors_size);
    return err;
}

/* A valid version record at address p in the index region, or NULL. */
static struct mc_rec_version *version_at(struct mc_arena *a, uint64_t p)
{
    uint64_t off = p - (uint64_t)(uintptr_t)a->base;
    struct mc_rec_version *v;

    if (p < (uint64_t)(uintptr_t)a->base || off % 64 || off < a->hdr->index_off ||
        off >= a->hdr->index_off + a->hdr->index_size)
        return NULL;
    v = (struct mc_rec_version *)(uintptr_t)p;
    return v->h.magic == MC_REC_MAGIC && v->h.kind == MC_REC_VERSION &&
                   (uint64_t)v->h.cold_off + sizeof(struct mc_rec_vcold) <= v->h.alloc_size
               ? v
               : NULL;
}

/* A complete split object (weighted alias) in the index region? */
static bool split_valid(struct mc_arena *a, const struct mc_split *sp)
{
    uint64_t off = (uint64_t)(uintptr_t)sp - (uint64_t)(uintptr_t)a->base;

    uint64_t sum = 0;

    if (!((uintptr_t)sp >= (uintptr_t)a->base && off >= a->hdr->index_off &&
          off + sizeof(*sp) <= a->hdr->index_off + a->hdr->index_size &&
          sp->magic == MC_SPLIT_MAGIC && sp->n >= 2 && sp->n <= MC_SPLIT_MAX &&
          sp->alloc_size == sizeof(*sp)))
        return false;
    /* The thresholds mc_split_pick() relies on: those of the weights, the
     * last and unused ones UINT32_MAX (a review find). */
    for (uint32_t i = 0; i < MC_SPLIT_MAX; i++) {
        sum += i < sp->n ? sp->weight[i] : 0;
        if (i < sp->n && (sp->weight[i] < 1 || sp->weight[i] > 100))
            return false;
        if (sp->cum[i] != (i + 1 < sp->n ? (uint32_t)((sum << 32) / 100) : UINT32_MAX))
            return false;
    }
    return sum == 100;
}

/* Is v the record the table has for its key? */
static bool is_current(struct mc_writer *w, struct mc_rec_version *v)
{
    return (struct mc_rec *)v == mc_table_lookup(w->t, w->arena->hdr->hash_seed,
                                                 mc_rec_key(&v->h), v->h.key_len);
}

/* Note a record reached other than through the table (once). */
static int reach_pointer(struct reach *st, uint64_t p)
{
    struct mc_rec_version *v = version_at(st->w->arena, p);

    if (!v || is_current(st->w, v))
        return 0;
    for (size_t i = 0; i < st->nstray; i++)
        if (st->stray[i] == v)
            return 0;
    if (MC_VEC_RESERVE(st->stray, st->cap_stray, st->nstray + 1, 16))
        return mc_err(MC_ENOMEM, "scanning the arena: out of memory");
    st->stray[st->nstray++] = v;
    return reach_version(st, v);
}

static int reach_visit(void *ctx, struct mc_rec *r)
{
    struct reach *st = ctx;
    struct mc_arena *a = st->w->arena;
    int err;

    if (r->magic != MC_REC_MAGIC)
        return mc_err(MC_ECORRUPT, "record at offset %llu has a bad magic",
                      (unsigned long long)mc_arena_off(a, r));
    switch (r->kind) {
    case MC_REC_VERSION:
        return reach_version(st, (struct mc_rec_version *)r);
    case MC_REC_MODEL: {
        struct mc_verlist *vl = (struct mc_verlist *)(uintptr_t)((struct mc_rec_model *)r)->versions;
        err = spans_add(&st->index, mc_arena_off(a, r), r->alloc_size);
        if (!err && vl)
            err = spans_add(&st->index, mc_arena_off(a, vl), vl->alloc_size);
        for (uint32_t i = 0; !err && vl && i < vl->count; i++)
            err = reach_pointer(st, vl->recs[i]);
        return err;
    }
    case MC_REC_ALIAS: {
        uint64_t t = ((struct mc_rec_alias *)r)->target;
        struct mc_split *sp = mc_target_split(t);

        err = spans_add(&st->index, mc_arena_off(a, r), r->alloc_size);
        if (err || !sp)
            return err ? err : reach_pointer(st, t);
        if (!split_valid(a, sp))
            return mc_err(MC_ECORRUPT, "alias record at offset %llu has a bad split",
                          (unsigned long long)mc_arena_off(a, r));
        err = spans_add(&st->index, mc_arena_off(a, sp), sp->alloc_size);
        for (uint32_t i = 0; !err && i < sp->n; i++)
            err = reach_pointer(st, sp->recs[i]);
        return err;
    }
    default:
        return spans_add(&st->index, mc_arena_off(a, r), r->alloc_size);
    }
}

static int reach_collect(struct mc_writer *w, struct reach *st)
{
    struct mc_arena *a = w->arena;
    void *map = w->t->ht.map;
    uint64_t map_off;
    int err;

    memset(st, 0, sizeof(*st));
    st->w = w;
    err = spans_add(&st->index, mc_arena_off(a, w->t), sizeof(struct mc_table));
    if (err)
        return err;
    map_off = mc_arena_off(a, map) - CK_ALLOC_HDR;
    struct ck_alloc_hdr *mh = mc_arena_ptr(a, map_off);
    if (mh->magic != CK_ALLOC_MAGIC)
        return mc_err(MC_ECORRUPT, "the table's map at offset %llu has no allocation header",
                      (unsigned long long)map_off);
    err = spans_add(&st->index, map_off, mh->size);
    if (err)
        return err;
    return mc_table_foreach(w, reach_visit, st);
}

static void reach_free(struct reach *st)
{
    free(st->index.v);
    free(st->data.v);
    free(st->stray);
}

static int off_cmp(const void *x, const void *y)
{
    const struct mc_extent_span *p = x, *q = y;

    return p->off < q->off ? -1 : p->off > q->off;
}

/* Sort spans and drop exact duplicates (one object reached twice). */
static void spans_unique(struct spans *s)
{
    size_t k = 0;

    if (s->n > 1) /* qsort(NULL, 0) is undefined */
        qsort(s->v, s->n, sizeof(*s->v), off_cmp);
    for (size_t i = 0; i < s->n; i++)
        if (k == 0 || s->v[k - 1].off != s->v[i].off || s->v[k - 1].len != s->v[i].len)
            s->v[k++] = s->v[i];
    s->n = k;
}

struct by_name {
    struct mc_rec_version **v;
    size_t n, cap;
};

static int collect_versions(void *ctx, struct mc_rec *r)
{
    struct by_name *bn = ctx;

    if (r->kind != MC_REC_VERSION)
        return 0;
    if (MC_VEC_RESERVE(bn->v, bn->cap, bn->n + 1, 256))
        return mc_err(MC_ENOMEM, "repairing the arena: out of memory");
    bn->v[bn->n++] = (struct mc_rec_version *)r;
    return 0;
}

static int by_name_cmp(const void *x, const void *y)
{
    struct mc_rec_version *a = *(struct mc_rec_version *const *)x;
    struct mc_rec_version *b = *(struct mc_rec_version *const *)y;
    int c = strcmp(mc_rec_version_name(a), mc_rec_version_name(b));

    return c ? c : -version_cmp(a, b); /* highest precedence first */
}

static int name_key_cmp(const void *key, const void *elem)
{
    return strcmp(key, mc_rec_version_name(*(struct mc_rec_version *const *)elem));
}

struct alias_fix {
    struct mc_writer *w;
    uint64_t aliases; /* alias records seen (the table's count is recounted) */
    struct mc_rec *drop[64];
    size_t ndrop;
    bool more;
};

/* Point aliases at current records (or drop them); give models exact lists. */
static int repair_visit(void *ctx, struct mc_rec *r)
{
    struct alias_fix *af = ctx;
    struct mc_writer *w = af->w;
    struct mc_rec_alias *al = (struct mc_rec_alias *)r;
    struct mc_rec_version *vs[MC_SPLIT_MAX] = {0};
    const char *names[MC_SPLIT_MAX];
    uint32_t ws[MC_SPLIT_MAX];
    unsigned n, current = 0;
    bool ok;

    if (r->kind != MC_REC_ALIAS)
        return 0;
    af->aliases++;
    n = mc_target_versions(al->target, vs);
    ok = n > 0;
    for (unsigned i = 0; i < n; i++) {
        struct mc_rec_version *t = version_at(w->arena, (uint64_t)(uintptr_t)vs[i]);

        ws[i] = n == 1 ? 100 : mc_target_split(al->target)->weight[i];
        names[i] = t ? mc_rec_version_str(t) : NULL;
        ok &= t != NULL;
        current += t && is_current(w, t);
    }
    if (ok && current == n)
        return 0;
    /* Point it at the table's records for the same versions (one store, via
     * the writer's own alias setter), or drop it. */
    if (ok && mc_table_set_alias_split(w, mc_rec_version_name(vs[0]),
                                       mc_rec_key(r) + strlen(mc_rec_version_name(vs[0])) + 1,
                                       names, ws, n) == 0)
        return 0;
    if (af->ndrop < 64)
        af->drop[af->ndrop++] = r;
    else
        af->more = true;
    return 0;
}

/*
 * After a loader crash: make every version list list exactly the table's
 * version records of its model, in order, and every alias point at the
 * table's record for its version (or go); drop models left without
 * versions. Replaced lists and dropped records are retired.
 */
static int table_repair(struct mc_writer *w)
{
    struct by_name bn = {0};
    struct alias_fix af;
    int err;

    do {
        memset(&af, 0, sizeof(af));
        af.w = w;
        err = mc_table_foreach(w, repair_visit, &af);
        for (size_t i = 0; i < af.ndrop; i++) {
            table_unset(w, af.drop[i]);
            target_retire(w, ((struct mc_rec_alias *)af.drop[i])->target);
            rec_retire(w, af.drop[i]);
        }
        /* Recounted: a loader killed between a publish and its count may
         * have left it wrong, and a count too low skips alias scans. */
        if (!err)
            w->t->aliases = af.aliases - af.ndrop;
    } while (!err && af.more);
    if (!err)
        err = mc_table_foreach(w, collect_versions, &bn);
    if (err)
        goto out;
    if (bn.n > 1)
        qsort(bn.v, bn.n, sizeof(*bn.v), by_name_cmp);
    for (size_t i = 0; i < bn.n;) {
        const char *name = mc_rec_version_name(bn.v[i]);
        size_t j = i;
        struct mc_rec_model *m;
        struct mc_verlist *cur, *nl;

        while (j < bn.n && strcmp(mc_rec_version_name(bn.v[j]), name) == 0)
            j++;
        err = model_get(w, name, true, &m);
        if (err)
            goto out;
        cur = (struct mc_verlist *)(uintptr_t)m->versions;
        bool same = cur && cur->count == j - i;
        for (size_t k = 0; same && k < j - i; k++)
            same = cur->recs[k] == (uintptr_t)bn.v[i + k];
        if (!same) {
            err = verlist_new(w, j - i, &nl);
            if (err)
                goto out;
            for (size_t k = 0; k < j - i; k++)
                nl->recs[k] = (uintptr_t)bn.v[i + k];
            nl->count = (uint32_t)(j - i);
            verlist_install(w, m, nl);
        }
        i = j;
    }
    /* Models with no version left go (bn is sorted by name). */
    struct mc_rec *empty[64];
    size_t nempty;
    do {
        ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
        ck_ht_entry_t *e;

        nempty = 0;
        while (nempty < 64 && ck_ht_next(&w->t->ht, &it, &e)) {
            struct mc_rec *r = ck_ht_entry_value(e);

            if (r->kind == MC_REC_MODEL &&
                (!bn.n || !bsearch(mc_rec_key(r), bn.v, bn.n, sizeof(*bn.v), name_key_cmp)))
                empty[nempty++] = r;
        }
        for (size_t k = 0; k < nempty; k++) {
            struct mc_verlist *vl =
                (struct mc_verlist *)(uintptr_t)((struct mc_rec_model *)empty[k])->versions;
            if (vl)
                mc_retire(w->reclaim, MC_RETIRE_INDEX, mc_arena_off(w->arena, vl),
                          vl->alloc_size);
            table_unset(w, empty[k]);
            rec_retire(w, empty[k]);
            w->t->models--;
        }
    } while (nempty == 64);
out:
    free(bn.v);
    /* A loader killed inside a change left seq odd, which turns every reader's
     * memo off; the table is consistent now, so end that change (on an even
     * value no memo entry holds) even when nothing needed mending. */
    if (!err && (w->t->seq & 1))
        table_change_end(w);
    if (!err)
        mc_reclaim_advance(w->reclaim);
    return err;
}

int mc_table_rebuild_allocators(struct mc_writer *w, const uint64_t *held, size_t nheld)
{
    struct mc_arena *a = w->arena;
    struct reach st;
    int err;

    err = reach_collect(w, &st);
    /* Records readers hold that the table no longer reaches (removed or
     * replaced before the crash) stay allocated, and are retired below. */
    for (size_t i = 0; !err && i < nheld; i++)
        err = reach_pointer(&st, (uint64_t)(uintptr_t)a->base + held[i]);
    if (err)
        goto out;
    spans_unique(&st.index);
    spans_unique(&st.data);
    err = mc_index_rebuild(a, st.index.v, st.index.n);
    if (!err)
        err = mc_extent_rebuild(a, &a->hdr->data_ext, st.data.v, st.data.n);
    /* Now the allocators are sound: mend the pointers a crash left behind. */
    if (!err)
        err = table_repair(w);
    for (size_t i = 0; !err && i < st.nstray; i++)
        err = mc_retire(w->reclaim, MC_RETIRE_RECORD, mc_arena_off(a, st.stray[i]),
                        st.stray[i]->h.alloc_size);
out:
    reach_free(&st);
    return err;
}

int mc_table_check(struct mc_writer *w)
{
    struct mc_arena *a = w->arena;
    struct reach st;
    uint64_t data_bytes = 0;
    int err;

    err = reach_collect(w, &st);
    if (!err && st.nstray)
        err = mc_err(MC_ECORRUPT,
                     "%zu version record(s) are reached through a version list or alias but "
                     "are not in the table (first: %s)",
                     st.nstray, mc_rec_key(&st.stray[0]->h));
    if (!err)
        err = mc_extent_check(a, &a->hdr->data_ext);
    if (!err)
        err = mc_extent_check(a, &a->hdr->index_ext);
    for (size_t i = 0; !err && i < st.data.n; i++)
        data_bytes += mc_extent_round(&a->hdr->data_ext, st.data.v[i].len);
    /* Retired-but-unfreed extents are allocated but unreachable. */
    if (!err && data_bytes > a->hdr->data_ext.used)
        err = mc_err(MC_ECORRUPT, "reachable model data %llu bytes exceeds allocated %llu",
                     (unsigned long long)data_bytes, (unsigned long long)a->hdr->data_ext.used);
    reach_free(&st);
    return err;
}
