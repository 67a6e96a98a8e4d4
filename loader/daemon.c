/*
 * daemon.c - mcached's state machine: mirroring the registry into the
 * arena, the load queue, publishing, eviction, blue-green alias moves.
 *
 * LRU. Readers never write on the warm path, so the daemon cannot see every
 * get. A model's recency is the latest of: when it was loaded, when a client
 * asked for it, and when the daemon last saw it held in the reader table
 * (sampled every second). Eviction takes the least recent model that is not
 * aliased, not pinned, not held and not loading.
 *
 * BLUE-GREEN. When the registry moves an alias to a version that is not
 * resident while the alias's current target is, the new version is loaded
 * and verified first, and only then does the alias move (one atomic store
 * in the arena). If the load fails, the alias stays where it was and the
 * failure is logged and shown in status.
 */
#include "loader/daemon.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "index/resolve.h"
#include "index/safetensors.h"
#include "loader/log.h"
#include "common/clock.h"
#include "common/err.h"
#include "shm/slab.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

/* ---- the version map ---- */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static int map_grow(struct daemon *d)
{
    size_t cap = d->htcap ? d->htcap * 2 : 1024;
    struct dver **ht = calloc(cap, sizeof(*ht));

    if (!ht)
        return mc_err(MC_ENOMEM, "version map: out of memory");
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i], *next; v; v = next) {
            next = v->next;
            size_t b = str_hash(v->key) & (cap - 1);
            v->next = ht[b];
            ht[b] = v;
        }
    free(d->ht);
    d->ht = ht;
    d->htcap = cap;
    return 0;
}

struct dver *daemon_find(struct daemon *d, const char *name, const char *version)
{
    char key[MC_KEY_MAX];

    if (!d->htcap || !mc_key_version(key, sizeof(key), name, strlen(name), version,
                                     strlen(version)))
        return NULL;
    for (struct dver *v = d->ht[str_hash(key) & (d->htcap - 1)]; v; v = v->next)
        if (strcmp(v->key, key) == 0)
            return v;
    return NULL;
}

static void map_remove(struct daemon *d, struct dver *v)
{
    struct dver **pp = &d->ht[str_hash(v->key) & (d->htcap - 1)];

    while (*pp && *pp != v)
        pp = &(*pp)->next;
    if (*pp)
        *pp = v->next;
    d->nver--;
}

void dver_free(struct dver *v)
{
    free(v->name);
    free(v->version);
    free(v->path);
    free(v->meta);
    free(v->cl);
    free(v);
}

/* ---- failures, waiters ---- */

void daemon_failure(struct daemon *d, const char *what, const char *why)
{
    struct failure *f = &d->failures[d->nfailures++ % MC_FAILURES_KEPT];

    f->at = mc_wall_ns();
    snprintf(f->what, sizeof(f->what), "%s", what);
    snprintf(f->why, sizeof(f->why), "%s", why);
}

static void waiter_reply(struct daemon *d, struct dver *v, struct waiter *w, int status,
                         const char *msg)
{
    char body[1024];

    if (status == 0)
        snprintf(body, sizeof(body),
                 "{\"name\":\"%s\",\"version\":\"%s\",\"size\":%llu,\"state\":\"resident\","
                 "\"already\":false}",
                 v->name, v->version, (unsigned long long)v->size);
    else
        snprintf(body, sizeof(body), "%s", msg);
    w->conn->park_ctx = NULL;
    mc_ctl_reply(&d->ctl, w->conn, status, body, strlen(body));
}

void daemon_wake(struct daemon *d, struct dver *v, int status, const char *msg)
{
    while (v->waiters) {
        struct waiter *w = v->waiters;
        v->waiters = w->next;
        waiter_reply(d, v, w, status, msg);
        free(w);
    }
}

/* ---- arena records ---- */

static int put_record(struct daemon *d, struct dver *v, uint32_t state)
{
    struct mc_version_desc desc = {
        .name = v->name,
        .version = v->version,
        .meta = v->meta,
        .checksum = v->checksum,
        .format = v->format,
        .state = state,
        .data_size = v->size,
    };
    struct mc_rec_version *rec;
    int rc;

    if (state == MC_STATE_READY) {
        desc.data_off = v->extent_off;
        desc.extent_off = v->extent_off;
        desc.extent_size = v->extent_size;
        desc.tensors_off = v->tensors_off;
        desc.tensors_size = v->tensors_size;
    }
    rc = mc_table_put_version(&d->own.w, &desc, &rec);
    if (rc == 0)
        v->rec_off = mc_arena_off(&d->own.a, rec);
    return rc;
}

int daemon_evict(struct daemon *d, struct dver *v)
{
    int rc;

    if (v->st != D_READY)
        return mc_err(MC_EINVAL, "%s@%s is not resident", v->name, v->version);
    if (v->pinned)
        return mc_err(MC_EBUSY, "%s@%s is pinned; unpin it first", v->name, v->version);
    /* The old record keeps its extent until no reader holds it. */
    rc = put_record(d, v, MC_STATE_REGISTERED);
    if (rc)
        return rc;
    v->st = D_REGISTERED;
    v->extent_off = v->extent_size = 0;
    v->tensors_off = v->tensors_size = 0;
    d->evictions++;
    log_info("evicted %s@%s (%llu bytes)", v->name, v->version, (unsigned long long)v->size);
    return 0;
}

/* ---- the load queue ---- */

void daemon_want_load(struct daemon *d, struct dver *v)
{
    if (v->st == D_READY || v->st == D_LOADING || v->queued)
        return;
    v->queued = true;
    v->qnext = NULL;
    if (d->qtail)
        d->qtail->qnext = v;
    else
        d->qhead = v;
    d->qtail = v;
}

static void queue_remove(struct daemon *d, struct dver *v)
{
    struct dver **pp = &d->qhead, *prev = NULL;

    while (*pp && *pp != v) {
        prev = *pp;
        pp = &(*pp)->qnext;
    }
    if (!*pp)
        return;
    *pp = v->qnext;
    if (d->qtail == v)
        d->qtail = prev;
    v->queued = false;
}

static void load_failed(struct daemon *d, struct dver *v, int code, const char *why)
{
    char what[300];

    if (d->stopping) { /* cancelled by the shutdown: nothing failed */
        daemon_wake(d, v, MC_ENODAEMON, "mcached is shutting down");
        return;
    }
    v->st = D_FAILED;
    /* Copy first: `why` is often mc_last_error(), which the calls below reuse. */
    snprintf(v->error, sizeof(v->error), "%s", why);
    snprintf(what, sizeof(what), "load %s@%s", v->name, v->version);
    daemon_failure(d, what, v->error);
    log_error("loading %s@%s failed: %s", v->name, v->version, v->error);
    /* Workers asking for it get MC_EFAILED with the cause, not a stale miss. */
    if (put_record(d, v, MC_STATE_FAILED) != 0)
        log_warn("cannot mark %s@%s failed in the arena: %s", v->name, v->version,
                 mc_last_error());
    /* Waiters get the model named, and MC_EFAILED where the artifact is at
     * fault (MC_EINVAL would blame their request); no room, no memory and
     * a checksum mismatch keep their own codes. */
    {
        char msg[sizeof(v->error) + 300];

        snprintf(msg, sizeof(msg), "%s@%s failed to load: %s", v->name, v->version, v->error);
        daemon_wake(d, v, code == MC_EINVAL ? MC_EFAILED : code, msg);
    }
}

struct targets {
    uint64_t *v;
    size_t n, cap;
};

static int target_visit(void *arg, struct mc_rec *r)
{
    struct targets *t = arg;

    if (r->kind != MC_REC_ALIAS)
        return 0;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        uint64_t *q = realloc(t->v, cap * sizeof(*q));
        if (!q)
            return MC_ENOMEM;
        t->v = q;
        t->cap = cap;
    }
    t->v[t->n++] = ((struct mc_rec_alias *)r)->target;
    return 0;
}

/*
 * Least recently used evictable version, or NULL: not pinned, not aliased in
 * the registry, not the current target of an alias in the arena (during a
 * blue-green switch that is the old version, still serving), not held.
 */
/* Is v's record the target of an alias in the arena (t from target_visit)? */
static bool in_targets(struct daemon *d, const struct targets *t, const struct dver *v)
{
    uint64_t addr = (uint64_t)(uintptr_t)mc_arena_ptr(&d->own.a, v->rec_off);

    for (size_t k = 0; k < t->n; k++)
        if (t->v[k] == addr)
            return true;
    return false;
}

bool daemon_arena_target(struct daemon *d, const struct dver *v)
{
    struct targets t = {0};
    bool target = v->st == D_READY &&
                  (mc_table_foreach(&d->own.w, target_visit, &t) != 0 || in_targets(d, &t, v));

    free(t.v);
    return target;
}

/*
 * The least recently used model that may go: resident, neither pinned nor
 * aliased in the registry, not the target of an alias in the arena (during
 * a blue-green switch the arena alias still serves the old version), and
 * held by no reader. *evictable (may be NULL) gets the bytes of all such.
 */
static struct dver *lru_victim(struct daemon *d, const struct dver *exclude, uint64_t *evictable)
{
    struct mc_extents *e = &d->own.a.hdr->data_ext;
    struct targets t = {0};
    struct dver *best = NULL;

    if (evictable)
        *evictable = 0;
    if (mc_reclaim_scan(&d->own.rc) != 0 || mc_table_foreach(&d->own.w, target_visit, &t) != 0) {
        free(t.v);
        return NULL; /* cannot tell who needs what: evict nothing */
    }
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next) {
            if (v == exclude || v->st != D_READY || v->pinned || v->aliased)
                continue;
            if (!evictable && best && v->last_used_ns >= best->last_used_ns)
                continue;
            if (in_targets(d, &t, v) || mc_reclaim_is_held(&d->own.rc, v->rec_off))
                continue;
            if (evictable)
                *evictable += mc_extent_round(e, v->size);
            if (!best || v->last_used_ns < best->last_used_ns)
                best = v;
        }
    free(t.v);
    return best;
}

/* Model bytes that retired records and extents will give back once readers let go. */
static uint64_t pending_data(struct daemon *d)
{
    uint64_t sum = 0;

    for (size_t i = 0; i < d->own.rc.n; i++) {
        const struct mc_retired *it = &d->own.rc.items[i];
        const struct mc_rec_version *rv;

        if (it->kind == MC_RETIRE_DATA)
            sum += it->size;
        else if (it->kind == MC_RETIRE_RECORD && (rv = daemon_record_at(d, it->off)))
            sum += mc_rec_cold(rv)->extent_size;
    }
    return sum;
}

/*
 * Allocate room for v, evicting LRU models if needed. MC_EBUSY: evicted
 * bytes that would make room are still held by readers; try again later.
 */
static int make_room(struct daemon *d, struct dver *v, uint64_t *off)
{
    struct mc_extents *e = &d->own.a.hdr->data_ext;
    uint64_t align = d->own.a.hdr->page_size, need = mc_extent_round(e, v->size), evictable = 0;
    bool checked = false;
    int rc;

    if (need > e->region_size)
        return mc_err(MC_ENOSPC,
                      "%s@%s (%llu bytes) is larger than the arena's whole data region (%llu "
                      "bytes); restart mcached with a larger --size (--recreate)",
                      v->name, v->version, (unsigned long long)v->size,
                      (unsigned long long)e->region_size);
    for (;;) {
        rc = mc_extent_alloc(&d->own.a, e, v->size, align, off);
        if (rc != MC_ENOSPC)
            return rc;
        /* Something retired may be free now. */
        if (mc_reclaim_poll(&d->own.rc) > 0)
            continue;
        uint64_t free_bytes = e->region_size - e->used, pending = pending_data(d);
        struct dver *victim = lru_victim(d, v, checked ? NULL : &evictable);
        /* Evict nothing when evicting everything allowed could not make room. */
        if (victim && !checked && free_bytes + pending + evictable < need)
            victim = NULL;
        checked = true;
        if (!victim) {
            /* Wait only for bytes readers will give back; else nothing changes
             * until an operator acts (a fragmented arena included). */
            if (pending && free_bytes + pending >= need)
                return MC_EBUSY;
            lru_victim(d, v, &evictable); /* for the message: what may go now */
            return mc_err(MC_ENOSPC,
                          "no room for %s@%s (%llu bytes): the arena has %llu of %llu bytes "
                          "free (largest free extent %llu, %llu more waiting for readers to "
                          "let go), and the models that may be evicted hold %llu (the rest are "
                          "aliased, pinned, held by a worker or loading); evict or unpin "
                          "something, or restart mcached with a larger --size",
                          v->name, v->version, (unsigned long long)v->size,
                          (unsigned long long)free_bytes, (unsigned long long)e->region_size,
                          (unsigned long long)e->largest_free, (unsigned long long)pending,
                          (unsigned long long)evictable);
        }
        rc = daemon_evict(d, victim);
        if (rc)
            return rc;
        mc_reclaim_poll(&d->own.rc);
    }
}

/*
 * Page tables for [off, off+len) of the data region before the DMA into it,
 * not one fault per page under it. A created arena was mapped with
 * MAP_POPULATE; an adopted one fills as it is used: 2 MiB units already
 * populated are remembered, since even a walk over present page tables
 * costs ~40 ms/GiB.
 */
#define POP_UNIT (2ull << 20)

static void populate(struct daemon *d, uint64_t off, uint64_t len)
{
    struct mc_arena_hdr *h = d->own.a.hdr;
    uint64_t first = (off - h->data_off) / POP_UNIT, last = (off + len - 1 - h->data_off) / POP_UNIT;

    if (!d->populated)
        return; /* created with MAP_POPULATE, or no memory to remember: nothing to do */
    for (uint64_t u = first; u <= last; u++) {
        if (d->populated[u / 8] & (1u << (u % 8)))
            continue;
        uint64_t start = h->data_off + u * POP_UNIT;
        uint64_t end = start + POP_UNIT > h->data_off + h->data_size ? h->data_off + h->data_size
                                                                     : start + POP_UNIT;
        madvise(mc_arena_ptr(&d->own.a, start), end - start, MADV_POPULATE_WRITE);
        d->populated[u / 8] |= (uint8_t)(1u << (u % 8));
    }
}

/* Start loading v. Returns false if it must wait for room (stays queued). */
static bool start_load(struct daemon *d, struct dver *v)
{
    uint64_t off;
    int rc;

    if (v->size == 0) {
        load_failed(d, v, MC_EINVAL, "the artifact is empty");
        return true;
    }
    rc = make_room(d, v, &off);
    if (rc == MC_EBUSY)
        return false;
    if (rc) {
        load_failed(d, v, rc, mc_last_error());
        return true;
    }
    v->extent_off = off;
    v->extent_size = mc_extent_round(&d->own.a.hdr->data_ext, v->size);
    if (!v->cl && !(v->cl = calloc(1, sizeof(*v->cl)))) {
        mc_extent_free(&d->own.a, &d->own.a.hdr->data_ext, off, v->size);
        load_failed(d, v, MC_ENOMEM, "out of memory");
        return true;
    }
    populate(d, off, v->extent_size);
    memset(v->cl, 0, sizeof(*v->cl));
    snprintf(v->cl->path, sizeof(v->cl->path), "%s", v->path);
    v->cl->size = v->size;
    v->cl->dst = mc_arena_ptr(&d->own.a, off);
    v->cl->dst_cap = v->extent_size;
    v->cl->ctx = d;
    if (mc_checksum_parse(v->checksum, v->cl->want) != 0) {
        mc_extent_free(&d->own.a, &d->own.a.hdr->data_ext, off, v->size);
        load_failed(d, v, MC_ECORRUPT, mc_last_error());
        return true;
    }
    v->st = D_LOADING;
    v->error[0] = '\0';
    d->loading++;
    log_debug("loading %s@%s (%llu bytes) from %s", v->name, v->version,
              (unsigned long long)v->size, v->path);
    mc_io_start(&d->io, v->cl);
    return true;
}

void daemon_schedule(struct daemon *d)
{
    struct dver *wfirst = NULL, *wlast = NULL;

    /* In order; a load that must wait for room does not hold up the rest. */
    while (d->qhead && d->loading < d->cfg.max_loads) {
        struct dver *v = d->qhead;

        d->qhead = v->qnext;
        if (!d->qhead)
            d->qtail = NULL;
        v->qnext = NULL;
        if (v->st != D_READY && v->st != D_LOADING && !start_load(d, v)) {
            if (wlast) /* still queued: keep it, in order */
                wlast->qnext = v;
            else
                wfirst = v;
            wlast = v;
            continue;
        }
        v->queued = false;
    }
    if (wfirst) { /* the waiting ones go back in front */
        wlast->qnext = d->qhead;
        if (!d->qhead)
            d->qtail = wlast;
        d->qhead = wfirst;
    }
}

static void apply_aliases(struct daemon *d);

/* Find the dver whose coldload this is. */
static struct dver *dver_of_load(struct daemon *d, struct mc_coldload *cl)
{
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next)
            if (v->cl == cl)
                return v;
    return NULL;
}

/* Validate the safetensors header in the loaded bytes; store the tensor table. */
static int tensors_build(struct daemon *d, struct dver *v)
{
    struct mc_tensor_table *t;
    uint64_t off;
    int rc;

    rc = mc_safetensors_parse(mc_arena_ptr(&d->own.a, v->extent_off), v->size, &t);
    if (rc)
        return rc;
    rc = mc_index_alloc(&d->own.a, t->size, &off);
    if (rc == 0) {
        memcpy(mc_arena_ptr(&d->own.a, off), t, t->size);
        v->tensors_off = off;
        v->tensors_size = t->size;
    }
    free(t);
    return rc;
}

void daemon_load_done(void *ctx, struct mc_coldload *cl)
{
    struct daemon *d = ctx;
    struct dver *v = dver_of_load(d, cl);
    double secs;
    int rc;

    d->loading--;
    if (!v || v->dropping) /* removed while loading (mc_io_cancel): dver_drop cleans up */
        return;
    if (cl->status != 0) {
        /* Never published, and the kernel is done with it: free at once. */
        mc_extent_free(&d->own.a, &d->own.a.hdr->data_ext, v->extent_off, v->extent_size);
        v->extent_off = v->extent_size = 0;
        load_failed(d, v, cl->status, cl->error);
        return;
    }
    /* A safetensors model gets its tensor table, or is refused. */
    rc = v->format == MC_RECFMT_SAFETENSORS ? tensors_build(d, v) : 0;
    /* Publish = seal: the bytes are complete and verified. */
    if (!rc)
        rc = put_record(d, v, MC_STATE_READY);
    if (rc) {
        mc_extent_free(&d->own.a, &d->own.a.hdr->data_ext, v->extent_off, v->extent_size);
        v->extent_off = v->extent_size = 0;
        if (v->tensors_off)
            mc_index_free(&d->own.a, v->tensors_off, v->tensors_size);
        v->tensors_off = v->tensors_size = 0;
        load_failed(d, v, rc, mc_last_error());
        return;
    }
    v->st = D_READY;
    v->load_ns = cl->t_end - cl->t_start;
    v->loaded_at = mc_wall_ns();
    v->last_used_ns = mc_mono_ns();
    secs = (double)v->load_ns / 1e9;
    log_info("loaded %s@%s: %.1f MiB in %.3f s (%.2f GB/s%s), checksum verified", v->name,
             v->version, (double)v->size / (1 << 20), secs,
             secs > 0 ? (double)v->size / secs / 1e9 : 0.0, cl->direct ? "" : ", buffered");
    daemon_wake(d, v, 0, NULL);
    if (v->aliased)
        apply_aliases(d);
}

/* ---- mirroring the registry ---- */

static int dver_update(struct daemon *d, const struct mc_reg_version *rv, struct dver **out)
{
    struct dver *v = daemon_find(d, rv->name, rv->version);
    char *meta;

    if (v && strcmp(v->checksum, rv->checksum) == 0 && v->size == rv->size) {
        v->preload = rv->preload;
        v->pinned = rv->pinned;
        if (v->reg_gen != rv->generation && (meta = mc_reg_version_json(rv))) {
            /* Metadata edited: the next record published for it carries it. */
            free(v->meta);
            v->meta = meta;
            v->reg_gen = rv->generation;
        }
        *out = v;
        return 0;
    }
    if (v) /* same version, other bytes: removed and pushed again */
        return MC_EEXIST;
    if (d->nver * 2 >= d->htcap && map_grow(d) != 0)
        return MC_ENOMEM;
    v = calloc(1, sizeof(*v));
    meta = mc_reg_version_json(rv);
    if (!v || !meta) {
        free(v);
        free(meta);
        return mc_err(MC_ENOMEM, "out of memory");
    }
    v->name = strdup(rv->name);
    v->version = strdup(rv->version);
    v->path = strdup(rv->path);
    v->meta = meta;
    mc_key_version(v->key, sizeof(v->key), rv->name, strlen(rv->name), rv->version,
                   strlen(rv->version));
    v->size = rv->size;
    snprintf(v->checksum, sizeof(v->checksum), "%s", rv->checksum);
    v->format = (uint32_t)rv->format;
    v->preload = rv->preload;
    v->pinned = rv->pinned;
    v->reg_gen = rv->generation;
    v->st = D_REGISTERED;
    if (!v->name || !v->version || !v->path) {
        dver_free(v);
        return mc_err(MC_ENOMEM, "out of memory");
    }
    size_t b = str_hash(v->key) & (d->htcap - 1);
    v->next = d->ht[b];
    d->ht[b] = v;
    d->nver++;
    *out = v;
    return 1;
}

/* A version that is new to the daemon: adopt its READY record if it matches. */
static void dver_attach_record(struct daemon *d, struct dver *v)
{
    struct mc_rec_version *r = mc_table_find_version(d->own.w.t, d->own.a.hdr->hash_seed,
                                                     v->name, v->version);

    const struct mc_rec_vcold *c = r ? mc_rec_cold(r) : NULL;

    if (r && r->h.state == MC_STATE_READY && r->data_size == v->size &&
        strcmp(c->checksum, v->checksum) == 0) {
        v->st = D_READY;
        v->rec_off = mc_arena_off(&d->own.a, r);
        v->extent_off = c->extent_off;
        v->extent_size = c->extent_size;
        v->tensors_off = c->tensors_off;
        v->tensors_size = c->tensors_size;
        v->loaded_at = c->loaded_ns;
        v->last_used_ns = mc_mono_ns();
        return;
    }
    if (r && r->h.state == MC_STATE_REGISTERED && r->data_size == v->size &&
        strcmp(c->checksum, v->checksum) == 0) {
        v->rec_off = mc_arena_off(&d->own.a, r); /* as it should be: keep it */
        return;
    }
    if (put_record(d, v, MC_STATE_REGISTERED) != 0)
        log_error("cannot register %s@%s in the arena: %s", v->name, v->version,
                  mc_last_error());
}

static void dver_drop(struct daemon *d, struct dver *v)
{
    char msg[600];

    queue_remove(d, v);
    v->dropping = true;
    if (v->st == D_LOADING) {
        mc_io_cancel(&d->io, v->cl); /* waits for the kernel to finish with the extent */
        mc_extent_free(&d->own.a, &d->own.a.hdr->data_ext, v->extent_off, v->extent_size);
    }
    snprintf(msg, sizeof(msg), "%s@%s was removed from the registry", v->name, v->version);
    daemon_wake(d, v, MC_ENOENT, msg);
    if (mc_table_find_version(d->own.w.t, d->own.a.hdr->hash_seed, v->name, v->version))
        mc_table_remove_version(&d->own.w, v->name, v->version);
    map_remove(d, v);
    dver_free(v);
}

struct stale_ctx {
    struct daemon *d;
    char (*keys)[MC_KEY_MAX];
    size_t n, cap;
};

/* Collect arena records the registry no longer has (table iteration forbids removal). */
static int stale_visit(void *arg, struct mc_rec *r)
{
    struct stale_ctx *sc = arg;
    const char *key = mc_rec_key(r);
    bool stale = false;

    if (r->kind == MC_REC_VERSION) {
        struct mc_rec_version *rv = (struct mc_rec_version *)r;
        stale = !daemon_find(sc->d, mc_rec_version_name(rv), mc_rec_version_str(rv));
    } else if (r->kind == MC_REC_ALIAS) {
        const char *hash = strchr(key, '#');
        char name[MC_KEY_MAX];
        const struct mc_reg_model *m;
        bool found = false;

        snprintf(name, sizeof(name), "%.*s", (int)(hash - key), key);
        m = mc_registry_model(sc->d->reg, name);
        for (size_t i = 0; m && i < m->naliases; i++)
            found |= m->aliases[i].target && strcmp(m->aliases[i].alias, hash + 1) == 0;
        stale = !found;
    }
    if (!stale)
        return 0;
    if (sc->n == sc->cap) {
        size_t cap = sc->cap ? sc->cap * 2 : 64;
        void *p = realloc(sc->keys, cap * sizeof(*sc->keys));
        if (!p)
            return MC_ENOMEM;
        sc->keys = p;
        sc->cap = cap;
    }
    snprintf(sc->keys[sc->n++], MC_KEY_MAX, "%s", key);
    return 0;
}

static void remove_stale_records(struct daemon *d)
{
    struct stale_ctx sc = {.d = d};

    mc_table_foreach(&d->own.w, stale_visit, &sc);
    for (size_t i = 0; i < sc.n; i++) {
        char *k = sc.keys[i], *at = strchr(k, '@'), *hash = strchr(k, '#');

        if (at) {
            *at = '\0';
            mc_table_remove_version(&d->own.w, k, at + 1);
        } else if (hash) {
            *hash = '\0';
            mc_table_remove_alias(&d->own.w, k, hash + 1);
        }
    }
    free(sc.keys);
}

/*
 * Point every arena alias where the registry says, loading first when that
 * would otherwise take a resident alias to a non-resident version.
 */
static void apply_aliases(struct daemon *d)
{
    size_t nm = mc_registry_model_count(d->reg);

    for (size_t i = 0; i < nm; i++) {
        const struct mc_reg_model *m = mc_registry_model_at(d->reg, i);

        for (size_t j = 0; j < m->naliases; j++) {
            const struct mc_reg_alias *a = &m->aliases[j];
            char key[MC_KEY_MAX];
            size_t klen;
            struct mc_rec *cur;
            struct dver *t;

            if (!a->target)
                continue;
            t = daemon_find(d, m->name, a->target->version);
            if (!t)
                continue; /* not READY in the registry: not mirrored */
            klen = mc_key_alias(key, sizeof(key), m->name, strlen(m->name), a->alias,
                                strlen(a->alias));
            cur = klen ? mc_table_lookup(d->own.w.t, d->own.a.hdr->hash_seed, key, klen) : NULL;
            if (cur && cur->kind == MC_REC_ALIAS) {
                struct mc_rec_version *cv =
                    (struct mc_rec_version *)(uintptr_t)((struct mc_rec_alias *)cur)->target;
                if (strcmp(mc_rec_version_str(cv), t->version) == 0)
                    continue; /* already there */
                if (cv->h.state == MC_STATE_READY && t->st != D_READY) {
                    /* Blue-green: load the new target first; move when it is ready. */
                    if (t->st != D_FAILED)
                        daemon_want_load(d, t);
                    continue;
                }
            }
            if (mc_table_set_alias(&d->own.w, m->name, a->alias, t->version) != 0) {
                log_error("cannot point alias %s of %s at %s: %s", a->alias, m->name,
                          t->version, mc_last_error());
                continue;
            }
            log_info("alias %s of %s -> %s", a->alias, m->name, t->version);
            if (d->cfg.preload)
                daemon_want_load(d, t);
        }
    }
    /* Versions removed from the registry that no alias serves any more go now. */
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i], *next; v; v = next) {
            next = v->next;
            if (v->draining && !daemon_arena_target(d, v))
                dver_drop(d, v);
        }
}

int daemon_sync(struct daemon *d, bool force)
{
    size_t nm;
    int rc;

    rc = mc_registry_refresh(d->reg, NULL);
    if (rc) {
        log_error("reading the registry: %s", mc_last_error());
        return rc;
    }
    /* Compare generations, not `changed`: someone else (a request that
     * needed fresh registry data) may have refreshed since our last sync. */
    if (!force && mc_registry_generation(d->reg) == d->synced_gen && d->synced)
        return 0;
    d->syncs++;
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next) {
            v->seen = false;
            v->aliased = 0;
        }
    nm = mc_registry_model_count(d->reg);
    for (size_t i = 0; i < nm; i++) {
        const struct mc_reg_model *m = mc_registry_model_at(d->reg, i);

        for (size_t j = 0; j < m->nversions; j++) {
            const struct mc_reg_version *rv = m->versions[j];
            struct dver *v;

            if (rv->status != MC_STATUS_READY)
                continue;
            rc = dver_update(d, rv, &v);
            if (rc == MC_EEXIST) { /* the bytes changed under the same version */
                dver_drop(d, daemon_find(d, rv->name, rv->version));
                rc = dver_update(d, rv, &v);
            }
            if (rc < 0) {
                log_error("mirroring %s@%s: %s", rv->name, rv->version, mc_last_error());
                continue;
            }
            if (rc == 1)
                dver_attach_record(d, v);
            v->seen = true;
            v->draining = false; /* pushed again meanwhile */
        }
        for (size_t j = 0; j < m->naliases; j++) {
            struct dver *t = m->aliases[j].target
                                 ? daemon_find(d, m->name, m->aliases[j].target->version)
                                 : NULL;
            if (t)
                t->aliased++;
        }
    }
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i], *next; v; v = next) {
            next = v->next;
            if (v->seen)
                continue;
            /* Blue-green holds for removals too: a version an alias still
             * serves while its new target loads stays until the alias moves
             * (apply_aliases drops it then). */
            if (v->st == D_READY && daemon_arena_target(d, v)) {
                if (!v->draining)
                    log_info("%s@%s was removed from the registry; it keeps serving its "
                             "alias until the alias's new target is loaded",
                             v->name, v->version);
                v->draining = true;
                continue;
            }
            dver_drop(d, v);
        }
    remove_stale_records(d);
    apply_aliases(d);
    /* Preload: pinned and marked versions (aliased ones were queued above). */
    for (size_t i = 0; d->cfg.preload && i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next)
            if ((v->preload || v->pinned || v->aliased) && v->st == D_REGISTERED)
                daemon_want_load(d, v);
    d->synced_gen = mc_registry_generation(d->reg);
    d->synced = true;
    d->own.a.hdr->manifest_gen = d->synced_gen;
    mc_reclaim_poll(&d->own.rc);
    daemon_schedule(d);
    return 0;
}

/* ---- periodic work ---- */

struct mc_rec_version *daemon_record_at(struct daemon *d, uint64_t off)
{
    struct mc_arena_hdr *h = d->own.a.hdr;
    struct mc_rec_version *rv;

    if (!off || off % 64 || off < h->index_off || off >= h->index_off + h->index_size)
        return NULL;
    rv = mc_arena_ptr(&d->own.a, off);
    return rv->h.magic == MC_REC_MAGIC && rv->h.kind == MC_REC_VERSION &&
                   (uint64_t)rv->h.cold_off + sizeof(struct mc_rec_vcold) <= rv->h.alloc_size
               ? rv
               : NULL;
}

/* Versions readers hold count as used now (from the last reader scan). */
static void sample_holds(struct daemon *d)
{
    uint64_t now = mc_mono_ns();

    for (size_t i = 0; i < d->own.rc.nheld; i++) {
        struct mc_rec_version *rv = daemon_record_at(d, d->own.rc.held[i]);
        struct dver *v = rv ? daemon_find(d, mc_rec_version_name(rv), mc_rec_version_str(rv))
                            : NULL;

        if (v)
            v->last_used_ns = now;
    }
}

void daemon_tick(struct daemon *d)
{
    uint64_t now = mc_mono_ns();

    mc_ctl_expire(&d->ctl);
    if (d->own.rc.n)
        mc_reclaim_poll(&d->own.rc);
    /* Waiters past their deadline. */
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next)
            for (struct waiter **pp = &v->waiters; *pp;) {
                struct waiter *w = *pp;
                if (w->deadline_ns && now >= w->deadline_ns) {
                    char msg[400];
                    *pp = w->next;
                    snprintf(msg, sizeof(msg), "timed out waiting for %s@%s to load", v->name,
                             v->version);
                    waiter_reply(d, v, w, MC_ETIMEDOUT, msg);
                    free(w);
                } else {
                    pp = &w->next;
                }
            }
    if (now - d->last_holds_ns > 1000000000ull) {
        d->last_holds_ns = now;
        if (mc_reclaim_scan(&d->own.rc) == 0)
            sample_holds(d);
    }
    if (d->own.rc.n && now - d->last_stall_log_ns > 10000000000ull) {
        struct mc_stall st[4];
        size_t n = mc_reclaim_stalls(&d->own.rc, 5000000000ull, st, 4);
        for (size_t i = 0; i < n; i++)
            log_warn("reader pid %u (slot %u) has been pinned for %.0f s: %zu retired items "
                     "(%llu bytes) wait for it; is the worker stopped?",
                     st[i].pid, st[i].slot, (double)(now - st[i].since_ns) / 1e9, d->own.rc.n,
                     (unsigned long long)d->own.rc.pending_bytes);
        if (n)
            d->last_stall_log_ns = now;
    }
    daemon_schedule(d);
    /* Idle a second after start: now register the arena with io_uring. */
    if (!d->loading && !d->qhead && now - d->started_ns > 1000000000ull)
        mc_io_register(&d->io);
}
