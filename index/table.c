/*
 * table.c - the writer of the ck_ht index in the arena (the loader only):
 * ck's allocation hooks into the index region, creating and adopting the
 * table, publishing and removing versions, moving and removing aliases,
 * and freeing retired records. Lookups are lookup.c; the rebuild after a
 * crash and the check are table_rebuild.c. See table.h and record.h.
 */
#include "common/clock.h"
#include "index/table.h"

#include <stdio.h>
#include <string.h>

#include "index/semver.h"
#include "index/table_int.h"
#include "shm/arena.h"
#include "shm/atomic.h"
#include "shm/fence.h"
#include "common/err.h"
#include "shm/reclaim.h"
#include "shm/slab.h"

/*
 * ck_ht allocates through struct ck_malloc, whose hooks take no context: the
 * writer in use is this thread's current one. Every writer entry point sets
 * it before calling into ck.
 */
static _Thread_local struct mc_writer *cur_writer;

static void *ck_hook_malloc(size_t size)
{
    struct mc_writer *w = cur_writer;
    uint64_t off;

    if (mc_index_alloc(w->arena, size + CK_ALLOC_HDR, &off) != 0)
        return NULL;
    struct ck_alloc_hdr *h = mc_arena_ptr(w->arena, off);
    h->magic = CK_ALLOC_MAGIC;
    h->size = size + CK_ALLOC_HDR;
    return (uint8_t *)h + CK_ALLOC_HDR;
}

static void ck_hook_free(void *p, size_t size, bool defer)
{
    struct mc_writer *w = cur_writer;
    uint64_t off = mc_arena_off(w->arena, p) - CK_ALLOC_HDR;

    (void)size;
    size = ((struct ck_alloc_hdr *)mc_arena_ptr(w->arena, off))->size;
    if (defer) /* readers may still probe it: free after a grace period */
        mc_retire(w->reclaim, MC_RETIRE_INDEX, off, size);
    else
        mc_index_free(w->arena, off, size);
}

static void ck_hook_hash(ck_ht_hash_t *h, const void *key, size_t len, uint64_t seed)
{
    h->value = mc_key_hash(key, len, seed);
}

static void writer_bind(struct mc_writer *w, struct mc_arena *a, struct mc_reclaim *rc)
{
    w->arena = a;
    w->reclaim = rc;
    w->alloc.malloc = ck_hook_malloc;
    w->alloc.realloc = NULL;
    w->alloc.free = ck_hook_free;
    cur_writer = w;
}

int mc_table_create(struct mc_writer *w, struct mc_arena *a, struct mc_reclaim *rc)
{
    uint64_t off;
    int err;

    writer_bind(w, a, rc);
    err = mc_index_alloc(a, sizeof(struct mc_table), &off);
    if (err)
        return err;
    w->t = mc_arena_ptr(a, off);
    if (!ck_ht_init(&w->t->ht, CK_HT_MODE_BYTESTRING | CK_HT_WORKLOAD_DELETE, ck_hook_hash,
                    &w->alloc, 64, a->hdr->hash_seed)) {
        mc_index_free(a, off, sizeof(struct mc_table));
        return mc_err(MC_ENOSPC, "creating the index table: index region full");
    }
    w->t->magic = MC_TABLE_MAGIC;
    w->t->verlist_gen = 0;
    w->t->seq = 2; /* 0 marks an empty memo entry */
    /* The table is whole before its offset is (pairs with mc_attach_dir()'s
     * acquire load of the state, which the loader stores READY after this). */
    mc_store_release(&a->hdr->table_off, off);
    return 0;
}

int mc_table_adopt(struct mc_writer *w, struct mc_arena *a, struct mc_reclaim *rc)
{
    uint64_t off = a->hdr->table_off;

    writer_bind(w, a, rc);
    if (!off || off < a->hdr->index_off || off >= a->hdr->index_off + a->hdr->index_size)
        return mc_err(MC_EBADARENA, "arena %s has no valid table (offset %llu)", a->path,
                      (unsigned long long)off);
    w->t = mc_arena_ptr(a, off);
    if (w->t->magic != MC_TABLE_MAGIC)
        return mc_err(MC_EBADARENA, "arena %s: table magic 0x%x is wrong", a->path,
                      w->t->magic);
    /* Re-point the writer-private hooks at this process. */
    w->t->ht.m = &w->alloc;
    w->t->ht.h = ck_hook_hash;
    return 0;
}

static uint64_t next_generation(struct mc_writer *w)
{
    uint64_t g = w->arena->hdr->generation + 1;

    /* After the change it counts (pairs with mc_cache_info()'s acquire load). */
    mc_store_release(&w->arena->hdr->generation, g);
    return g;
}

/* Allocate a record with room for `extra` bytes of strings after `fixed`. */
static int rec_alloc(struct mc_writer *w, size_t fixed, size_t extra, uint16_t kind,
                     const char *key, size_t key_len, struct mc_rec **out)
{
    size_t size = fixed + key_len + 1 + extra;
    uint64_t off;
    struct mc_rec *r;
    int err;

    if (size > UINT32_MAX)
        return mc_err(MC_EINVAL, "record for \"%.*s\" is too large (%zu bytes)", (int)key_len,
                      key, size);
    err = mc_index_alloc(w->arena, size, &off);
    if (err)
        return err;
    r = mc_arena_ptr(w->arena, off);
    r->magic = MC_REC_MAGIC;
    r->kind = kind;
    r->stats = 0; /* versions: set by the caller */
    r->key_len = (uint16_t)key_len;
    r->alloc_size = (uint32_t)size;
    r->key_off = (uint32_t)fixed;
    memcpy((char *)r + fixed, key, key_len);
    *out = r;
    return 0;
}

static void rec_free_now(struct mc_writer *w, struct mc_rec *r)
{
    mc_index_free(w->arena, mc_arena_off(w->arena, r), r->alloc_size);
}

void rec_retire(struct mc_writer *w, struct mc_rec *r)
{
    uint64_t off = mc_arena_off(w->arena, r);

    if (r->kind == MC_REC_VERSION)
        mc_retire(w->reclaim, MC_RETIRE_RECORD, off, r->alloc_size);
    else
        mc_retire(w->reclaim, MC_RETIRE_INDEX, off, r->alloc_size);
}

void table_change_begin(struct mc_writer *w)
{
    uint64_t s = w->t->seq;

    /* Already odd: a change is open (there is no nesting: a crash inside a
     * change left it so), and readers neither hit nor fill their memos. */
    if (!(s & 1)) {
        mc_store_relaxed(&w->t->seq, s + 1);
        mc_fence_full(); /* pairs with mc_fence_acquire() in mc_resolve_ref() */
    }
}

void table_change_end(struct mc_writer *w)
{
    /* The change before the even value (pairs with the reader's acquire loads of seq). */
    mc_store_release(&w->t->seq, (w->t->seq | 1) + 1);
}

/* Insert or replace the entry for r's key; *old gets the replaced record. */
static int table_set(struct mc_writer *w, struct mc_rec *r, struct mc_rec **old)
{
    const char *key = mc_rec_key(r);
    ck_ht_entry_t e;
    ck_ht_hash_t h;
    bool ok;

    cur_writer = w;
    h.value = mc_key_hash(key, r->key_len, w->arena->hdr->hash_seed);
    ck_ht_entry_set(&e, h, key, r->key_len, r);
    table_change_begin(w);
    ok = ck_ht_set_spmc(&w->t->ht, h, &e);
    table_change_end(w);
    if (!ok)
        return mc_err(MC_ENOSPC, "index table is full for \"%s\": the index region cannot "
                                 "grow the table; recreate the arena with a larger --index-size",
                      key);
    *old = ck_ht_entry_empty(&e) ? NULL : ck_ht_entry_value(&e);
    return 0;
}

void table_unset(struct mc_writer *w, struct mc_rec *r)
{
    const char *key = mc_rec_key(r);
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    cur_writer = w;
    h.value = mc_key_hash(key, r->key_len, w->arena->hdr->hash_seed);
    ck_ht_entry_key_set(&e, key, r->key_len);
    table_change_begin(w);
    ck_ht_remove_spmc(&w->t->ht, h, &e);
    table_change_end(w);
}

static struct mc_rec *lookup_w(struct mc_writer *w, const char *key, size_t len)
{
    return mc_table_lookup(w->t, w->arena->hdr->hash_seed, key, len);
}

int version_cmp(const struct mc_rec_version *a, const struct mc_rec_version *b)
{
    struct mc_semver sa, sb;

    if (mc_semver_parse(mc_rec_version_str(a), mc_rec_cold(a)->version_len, &sa) != 0 ||
        mc_semver_parse(mc_rec_version_str(b), mc_rec_cold(b)->version_len, &sb) != 0)
        return strcmp(mc_rec_version_str(a), mc_rec_version_str(b));
    return mc_semver_cmp(&sa, &sb);
}

int verlist_new(struct mc_writer *w, size_t room, struct mc_verlist **out)
{
    size_t size = sizeof(struct mc_verlist) + sizeof(uint64_t) * room;
    struct mc_verlist *nl;
    uint64_t off;
    int err;

    err = mc_index_alloc(w->arena, size, &off);
    if (err)
        return err;
    nl = mc_arena_ptr(w->arena, off);
    nl->magic = MC_VERLIST_MAGIC;
    nl->count = 0;
    nl->alloc_size = size;
    nl->gen = 0; /* both set by verlist_install() */
    nl->latest = 0;
    *out = nl;
    return 0;
}

/*
 * Build the version list model m will have once `old` is replaced by `add`
 * (either may be NULL); install it with verlist_install().
 */
static int verlist_build(struct mc_writer *w, struct mc_rec_model *m, struct mc_rec_version *old,
                         struct mc_rec_version *add, struct mc_verlist **out)
{
    struct mc_verlist *cur = (struct mc_verlist *)(uintptr_t)m->versions;
    uint32_t n = cur ? cur->count : 0, k = 0;
    struct mc_verlist *nl;
    int err;

    err = verlist_new(w, n + 1, &nl);
    if (err)
        return err;
    for (uint32_t i = 0; i < n; i++) {
        struct mc_rec_version *v = (struct mc_rec_version *)(uintptr_t)cur->recs[i];

        if (v == old)
            continue;
        if (add && version_cmp(add, v) > 0) {
            nl->recs[k++] = (uintptr_t)add;
            add = NULL;
        }
        nl->recs[k++] = (uintptr_t)v;
    }
    if (add)
        nl->recs[k++] = (uintptr_t)add;
    nl->count = k;
    *out = nl;
    return 0;
}

/* The highest version of a list that has no prerelease tag, or NULL. */
static struct mc_rec_version *verlist_latest(const struct mc_verlist *vl)
{
    for (uint32_t i = 0; i < vl->count; i++) {
        struct mc_rec_version *v = (struct mc_rec_version *)(uintptr_t)vl->recs[i];
        struct mc_semver sv;

        if (mc_semver_parse(mc_rec_version_str(v), mc_rec_cold(v)->version_len, &sv) == 0 &&
            !mc_semver_is_prerelease(&sv))
            return v;
    }
    return NULL;
}

/*
 * Make nl model m's list (one atomic store) and retire the old list. First
 * nl gets what readers take from it without searching: its `latest` and a
 * generation no list of this arena has had (the counter lives in the arena,
 * so it survives a loader crash and an adopt).
 */
void verlist_install(struct mc_writer *w, struct mc_rec_model *m, struct mc_verlist *nl)
{
    struct mc_verlist *cur = (struct mc_verlist *)(uintptr_t)m->versions;

    nl->gen = ++w->t->verlist_gen;
    nl->latest = (uintptr_t)verlist_latest(nl);
    /* The list is complete before it becomes reachable (pairs with the
     * reader's acquire load of m->versions in mc_resolve_list()). A change
     * of what "latest" and ranges resolve to: inside the table's seq. */
    table_change_begin(w);
    mc_store_release_ptr(&m->versions, nl);
    table_change_end(w);
    if (cur)
        mc_retire(w->reclaim, MC_RETIRE_INDEX, mc_arena_off(w->arena, cur), cur->alloc_size);
}

static void verlist_free_now(struct mc_writer *w, struct mc_verlist *nl)
{
    mc_index_free(w->arena, mc_arena_off(w->arena, nl), nl->alloc_size);
}

int model_get(struct mc_writer *w, const char *name, bool create, struct mc_rec_model **out)
{
    size_t nlen = strlen(name);
    struct mc_rec *r = lookup_w(w, name, nlen), *old;
    int err;

    if (r && r->kind == MC_REC_MODEL) {
        *out = (struct mc_rec_model *)r;
        return 0;
    }
    if (!create)
        return mc_err(MC_ENOENT, "model \"%s\" is not in the arena", name);
    err = rec_alloc(w, sizeof(struct mc_rec_model), 0, MC_REC_MODEL, name, nlen, &r);
    if (err)
        return err;
    err = table_set(w, r, &old);
    if (err) {
        rec_free_now(w, r);
        return err;
    }
    w->t->models++;
    *out = (struct mc_rec_model *)r;
    return 0;
}

/* Retire what a replaced alias target word owns (a weighted alias's split). */
void target_retire(struct mc_writer *w, uint64_t target)
{
    struct mc_split *sp = mc_target_split(target);

    if (sp)
        mc_retire(w->reclaim, MC_RETIRE_INDEX, mc_arena_off(w->arena, sp), sp->alloc_size);
}

/*
 * The target word for versions v[0..n) with weights (percent, summing to
 * 100): v[0] itself when n == 1, else a new split (tagged), complete before
 * the caller publishes it.
 */
static int target_build(struct mc_writer *w, struct mc_rec_version *const *v,
                        const uint32_t *weights, size_t n, uint64_t *out)
{
    struct mc_split *sp;
    uint64_t off, sum = 0;
    int err;

    if (n == 1) {
        *out = (uint64_t)(uintptr_t)v[0];
        return 0;
    }
    err = mc_index_alloc(w->arena, sizeof(*sp), &off);
    if (err)
        return err;
    sp = mc_arena_ptr(w->arena, off);
    memset(sp, 0, sizeof(*sp));
    for (unsigned i = 0; i < MC_SPLIT_MAX; i++)
        sp->cum[i] = UINT32_MAX;
    sp->magic = MC_SPLIT_MAGIC;
    sp->n = (uint32_t)n;
    sp->alloc_size = sizeof(*sp);
    for (size_t i = 0; i < n; i++) {
        sum += weights[i];
        sp->weight[i] = (uint8_t)weights[i];
        sp->cum[i] = i + 1 < n ? (uint32_t)((sum << 32) / 100) : UINT32_MAX;
        sp->recs[i] = (uint64_t)(uintptr_t)v[i];
    }
    *out = (uint64_t)(uintptr_t)sp | 1;
    return 0;
}

/* Install a target word in an existing alias (one store) and retire the old one. */
static void alias_store_target(struct mc_writer *w, struct mc_rec_alias *al, uint64_t target)
{
    uint64_t old = al->target;

    al->moved_ns = mc_wall_ns();
    /* The move: one atomic store; readers see the old or the new targets,
     * each complete (pairs with mc_resolve_ref()'s acquire load). */
    table_change_begin(w);
    mc_store_release(&al->target, target);
    table_change_end(w);
    if (old != target)
        target_retire(w, old);
}

static void aliases_retarget_scan(struct mc_writer *w, const char *name,
                                  struct mc_rec_version *from, struct mc_rec_version *to);

/* Point the aliases of model `name` that target `from` at `to` (or drop them). */
static void aliases_retarget(struct mc_writer *w, const char *name, struct mc_rec_version *from,
                             struct mc_rec_version *to)
{
    if (w->t->aliases == 0)
        return; /* nothing to scan for */
    aliases_retarget_scan(w, name, from, to);
}

static void aliases_retarget_scan(struct mc_writer *w, const char *name,
                                  struct mc_rec_version *from, struct mc_rec_version *to)
{
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    size_t nlen = strlen(name);
    struct mc_rec *drop[64];
    size_t ndrop = 0;

    while (ck_ht_next(&w->t->ht, &it, &e)) {
        struct mc_rec *r = ck_ht_entry_value(e);
        struct mc_rec_alias *al = (struct mc_rec_alias *)r;
        struct mc_rec_version *vs[MC_SPLIT_MAX] = {0};
        uint32_t ws[MC_SPLIT_MAX];
        unsigned n, hit = MC_SPLIT_MAX;
        uint64_t t;

        if (r->kind != MC_REC_ALIAS)
            continue;
        n = mc_target_versions(al->target, vs);
        for (unsigned i = 0; i < n; i++)
            if (vs[i] == from)
                hit = i;
        if (hit == MC_SPLIT_MAX)
            continue;
        if (r->key_len <= nlen || memcmp(mc_rec_key(r), name, nlen) || mc_rec_key(r)[nlen] != '#')
            continue;
        vs[hit] = to;
        for (unsigned i = 0; i < n; i++)
            ws[i] = n == 1 ? 100 : mc_target_split(al->target)->weight[i];
        /* A target that goes takes the alias with it (the registry refuses
         * that unless forced); so does a split that cannot be rebuilt for
         * want of index space, which must not keep pointing at `from`. */
        if (to && target_build(w, vs, ws, n, &t) == 0)
            alias_store_target(w, al, t);
        else if (ndrop < sizeof(drop) / sizeof(drop[0]))
            drop[ndrop++] = r;
    }
    /* Remove after iterating: removal must not race the iterator. */
    for (size_t i = 0; i < ndrop; i++) {
        table_unset(w, drop[i]);
        target_retire(w, ((struct mc_rec_alias *)drop[i])->target);
        rec_retire(w, drop[i]);
        w->t->aliases--;
    }
    if (ndrop == sizeof(drop) / sizeof(drop[0]))
        aliases_retarget_scan(w, name, from, to); /* more than one batch */
}

/* A model record left with no version list (its first put failed) goes again. */
static void model_drop_if_empty(struct mc_writer *w, struct mc_rec_model *m)
{
    if (m->versions)
        return;
    table_unset(w, &m->h);
    rec_retire(w, &m->h);
    w->t->models--;
    mc_reclaim_advance(w->reclaim);
}

int mc_table_put_version(struct mc_writer *w, const struct mc_version_desc *d,
                         struct mc_rec_version **out)
{
    const char *meta = d->meta ? d->meta : "{}";
    size_t nlen = strlen(d->name), vlen = strlen(d->version), mlen = strlen(meta);
    char key[MC_KEY_MAX];
    size_t klen = mc_key_version(key, sizeof(key), d->name, nlen, d->version, vlen);
    struct mc_rec *r = NULL, *old_r;
    struct mc_rec_version *v, *old;
    struct mc_rec_model *m;
    struct mc_verlist *nl;
    uint64_t gen;
    int err;

    cur_writer = w;
    if (!klen)
        return mc_err(MC_EINVAL, "key \"%s@%s\" is longer than %u bytes", d->name, d->version,
                      MC_KEY_MAX - 1);
    err = model_get(w, d->name, true, &m);
    if (err)
        return err;
    /* strings, then the cold part 8-byte aligned */
    size_t strings = klen + 1 + nlen + 1 + vlen + 1 + mlen + 1;
    size_t cold_at = (sizeof(struct mc_rec_version) + strings + 7) & ~(size_t)7;
    err = rec_alloc(w, sizeof(struct mc_rec_version),
                    cold_at - sizeof(struct mc_rec_version) - klen - 1 +
                        sizeof(struct mc_rec_vcold),
                    MC_REC_VERSION, key, klen, &r);
    if (err) {
        model_drop_if_empty(w, m);
        return err;
    }
    v = (struct mc_rec_version *)r;
    r->cold_off = (uint32_t)cold_at;
    struct mc_rec_vcold *cold = mc_rec_cold(v);
    char *s = v->strings + klen + 1;
    cold->name_off = (uint32_t)(s - (char *)v);
    cold->name_len = (uint32_t)nlen;
    memcpy(s, d->name, nlen + 1);
    s += nlen + 1;
    cold->version_off = (uint32_t)(s - (char *)v);
    cold->version_len = (uint32_t)vlen;
    memcpy(s, d->version, vlen + 1);
    s += vlen + 1;
    cold->meta_off = (uint32_t)(s - (char *)v);
    cold->meta_len = (uint32_t)mlen;
    memcpy(s, meta, mlen + 1);
    snprintf(cold->checksum, sizeof(cold->checksum), "%s", d->checksum ? d->checksum : "");
    cold->format = d->format;
    v->data_size = d->data_size;
    r->state = d->state;
    r->stats = d->stats;
    if (d->state == MC_STATE_READY) {
        v->data = (uint64_t)(uintptr_t)mc_arena_ptr(w->arena, d->data_off);
        cold->extent_off = d->extent_off;
        cold->extent_size = d->extent_size;
        cold->loaded_ns = mc_wall_ns();
    }
    cold->tensors_off = d->tensors_off;
    cold->tensors_size = d->tensors_size;
    gen = w->arena->hdr->generation + 1;
    cold->generation = gen;

    old = mc_table_find_version(w->t, w->arena->hdr->hash_seed, d->name, d->version);
    err = verlist_build(w, m, old, v, &nl);
    if (err) {
        rec_free_now(w, r);
        model_drop_if_empty(w, m);
        return err;
    }
    /* Publish: one ck_ht store makes the complete record visible. */
    err = table_set(w, r, &old_r);
    if (err) {
        /* Never published: the caller still owns extent and tensors. */
        verlist_free_now(w, nl);
        rec_free_now(w, r);
        model_drop_if_empty(w, m);
        return err;
    }
    verlist_install(w, m, nl);
    if (old) {
        aliases_retarget(w, d->name, old, v);
        if (old->h.state == MC_STATE_READY)
            w->t->resident--;
        rec_retire(w, &old->h);
    } else {
        w->t->versions++;
    }
    if (d->state == MC_STATE_READY)
        w->t->resident++;
    next_generation(w);
    mc_reclaim_advance(w->reclaim);
    if (out)
        *out = v;
    return 0;
}

int mc_table_remove_version(struct mc_writer *w, const char *name, const char *version)
{
    struct mc_rec_version *v = mc_table_find_version(w->t, w->arena->hdr->hash_seed, name, version);
    struct mc_rec_model *m;
    struct mc_verlist *vl;
    int err;

    cur_writer = w;
    if (!v)
        return mc_err(MC_ENOENT, "version %s@%s is not in the arena", name, version);
    err = model_get(w, name, false, &m);
    if (err)
        return err;
    vl = (struct mc_verlist *)(uintptr_t)m->versions;
    if (vl && vl->count == 1) {
        /* Last version: the model goes too. */
        table_unset(w, &m->h);
        mc_retire(w->reclaim, MC_RETIRE_INDEX, mc_arena_off(w->arena, vl), vl->alloc_size);
        rec_retire(w, &m->h);
        w->t->models--;
    } else {
        struct mc_verlist *nl;

        err = verlist_build(w, m, v, NULL, &nl);
        if (err)
            return err;
        verlist_install(w, m, nl);
    }
    table_unset(w, &v->h);
    aliases_retarget(w, name, v, NULL);
    if (v->h.state == MC_STATE_READY)
        w->t->resident--;
    w->t->versions--;
    rec_retire(w, &v->h);
    next_generation(w);
    mc_reclaim_advance(w->reclaim);
    return 0;
}

int mc_table_set_alias(struct mc_writer *w, const char *name, const char *alias,
                       const char *version)
{
    static const uint32_t all = 100;

    return mc_table_set_alias_split(w, name, alias, &version, &all, 1);
}

int mc_table_set_alias_split(struct mc_writer *w, const char *name, const char *alias,
                             const char *const *versions, const uint32_t *weights, size_t n)
{
    struct mc_rec_version *vs[MC_SPLIT_MAX] = {0};
    char key[MC_KEY_MAX];
    size_t klen = mc_key_alias(key, sizeof(key), name, strlen(name), alias, strlen(alias));
    struct mc_rec *r, *old;
    uint32_t sum = 0;
    uint64_t t;
    int err;

    cur_writer = w;
    if (!klen)
        return mc_err(MC_EINVAL, "alias key \"%s#%s\" is too long", name, alias);
    if (n < 1 || n > MC_SPLIT_MAX)
        return mc_err(MC_EINVAL, "alias \"%s\" of \"%s\": %zu targets; give 1 to %u", alias,
                      name, n, MC_SPLIT_MAX);
    for (size_t i = 0; i < n; i++) {
        vs[i] = mc_table_find_version(w->t, w->arena->hdr->hash_seed, name, versions[i]);
        if (!vs[i])
            return mc_err(MC_ENOENT, "cannot point alias \"%s\" of \"%s\" at %s: no such version",
                          alias, name, versions[i]);
        for (size_t j = 0; j < i; j++)
            if (vs[j] == vs[i])
                return mc_err(MC_EINVAL, "alias \"%s\" of \"%s\": version %s is given twice",
                              alias, name, versions[i]);
        if (weights[i] < 1 || weights[i] > 100)
            return mc_err(MC_EINVAL, "alias \"%s\" of \"%s\": weight %u of %s is not 1 to 100",
                          alias, name, weights[i], versions[i]);
        sum += weights[i];
    }
    if (sum != 100)
        return mc_err(MC_EINVAL, "alias \"%s\" of \"%s\": weights sum to %u, not 100", alias,
                      name, sum);
    err = target_build(w, vs, weights, n, &t);
    if (err)
        return err;
    r = lookup_w(w, key, klen);
    if (r && r->kind == MC_REC_ALIAS) {
        alias_store_target(w, (struct mc_rec_alias *)r, t);
        next_generation(w);
        mc_reclaim_advance(w->reclaim);
        return 0;
    }
    err = rec_alloc(w, sizeof(struct mc_rec_alias), 0, MC_REC_ALIAS, key, klen, &r);
    if (err) {
        struct mc_split *sp = mc_target_split(t);

        if (sp)
            mc_index_free(w->arena, mc_arena_off(w->arena, sp), sp->alloc_size);
        return err;
    }
    ((struct mc_rec_alias *)r)->target = t;
    ((struct mc_rec_alias *)r)->moved_ns = mc_wall_ns();
    /* Counted before it is published: a count too high costs a scan, one too
     * low (a loader killed in between) would skip aliases_retarget()'s scan
     * and leave this alias on a retired record (a review find). Adoption
     * recounts anyway (table_repair()). */
    w->t->aliases++;
    err = table_set(w, r, &old);
    if (err) {
        struct mc_split *sp = mc_target_split(t);

        w->t->aliases--;
        if (sp)
            mc_index_free(w->arena, mc_arena_off(w->arena, sp), sp->alloc_size);
        rec_free_now(w, r);
        return err;
    }
    next_generation(w);
    return 0;
}

int mc_table_remove_alias(struct mc_writer *w, const char *name, const char *alias)
{
    char key[MC_KEY_MAX];
    size_t klen = mc_key_alias(key, sizeof(key), name, strlen(name), alias, strlen(alias));
    struct mc_rec *r = klen ? lookup_w(w, key, klen) : NULL;

    cur_writer = w;
    if (!r || r->kind != MC_REC_ALIAS)
        return mc_err(MC_ENOENT, "model \"%s\" has no alias \"%s\" in the arena", name, alias);
    table_unset(w, r);
    target_retire(w, ((struct mc_rec_alias *)r)->target);
    rec_retire(w, r);
    w->t->aliases--;
    next_generation(w);
    mc_reclaim_advance(w->reclaim);
    return 0;
}

int mc_table_foreach(struct mc_writer *w, mc_table_visit_fn fn, void *ctx)
{
    ck_ht_iterator_t it = CK_HT_ITERATOR_INITIALIZER;
    ck_ht_entry_t *e;
    int rc;

    while (ck_ht_next(&w->t->ht, &it, &e)) {
        rc = fn(ctx, ck_ht_entry_value(e));
        if (rc)
            return rc;
    }
    return 0;
}

void mc_table_free_record(void *writer, uint64_t rec_off)
{
    struct mc_writer *w = writer;
    struct mc_rec *r = mc_arena_ptr(w->arena, rec_off);

    if (r->kind == MC_REC_VERSION) {
        struct mc_rec_vcold *c = mc_rec_cold((struct mc_rec_version *)r);

        if (w->on_free)
            w->on_free(w->on_free_ctx, (const struct mc_rec_version *)r);
        if (c->extent_off)
            mc_extent_free(w->arena, &w->arena->hdr->data_ext, c->extent_off, c->extent_size);
        if (c->tensors_off)
            mc_index_free(w->arena, c->tensors_off, c->tensors_size);
    }
    r->magic = 0;
    mc_index_free(w->arena, rec_off, r->alloc_size);
}
