/*
 * load_queue.c - getting models into the arena: the load queue, making room
 * by eviction, starting a load on the cold path (coldload.c), and
 * publishing it when it completes and verifies (or recording why not).
 *
 * LRU. Readers never write on the warm path, so the daemon cannot see every
 * get. A model's recency is the latest of: when it was loaded, when a client
 * asked for it, and when the daemon last saw it held in the reader table
 * (sampled every second). Eviction takes the least recent model that is not
 * aliased, not pinned, not held and not loading.
 *
 * A load that completes for an aliased version may finish a blue-green
 * switch: daemon_load_done() then lets the aliases move (mirror.c).
 */
#include "common/clock.h"
#include "loader/daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "index/safetensors.h"
#include "loader/log.h"
#include "common/err.h"
#include "common/vec.h"
#include "shm/slab.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

int daemon_evict(struct daemon *d, struct dver *v)
{
    int rc;

    if (v->st != D_READY)
        return mc_err(MC_EINVAL, "%s@%s is not resident", v->name, v->version);
    if (v->pinned)
        return mc_err(MC_EBUSY, "%s@%s is pinned; unpin it first", v->name, v->version);
    /* The old record keeps its extent until no reader holds it. */
    rc = daemon_put_record(d, v, MC_STATE_REGISTERED);
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

void daemon_unqueue(struct daemon *d, struct dver *v)
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

unsigned daemon_queued(const struct daemon *d)
{
    unsigned n = 0;

    for (const struct dver *v = d->qhead; v; v = v->qnext)
        n++;
    return n;
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
    if (daemon_put_record(d, v, MC_STATE_FAILED) != 0)
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
    struct mc_rec_version *vs[MC_SPLIT_MAX] = {0};
    unsigned n;

    if (r->kind != MC_REC_ALIAS)
        return 0;
    n = mc_target_versions(((struct mc_rec_alias *)r)->target, vs); /* all of a weighted one's */
    if (MC_VEC_RESERVE(t->v, t->cap, t->n + n, 64))
        return mc_err(MC_ENOMEM, "listing the arena's alias targets: out of memory");
    for (unsigned i = 0; i < n; i++)
        t->v[t->n++] = (uint64_t)(uintptr_t)vs[i];
    return 0;
}

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
 * not one fault per page under it. A created arena was populated whole
 * at creation; an adopted one fills as it is used: 2 MiB units already
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
    v->cl->name = v->name;
    v->cl->version = v->version;
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
        rc = daemon_put_record(d, v, MC_STATE_READY);
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
             secs > 0 ? (double)v->size / secs / 1e9 : 0.0,
             cl->remote ? (cl->local_copy ? ", from its node-local copy" : ", from the object store")
             : cl->direct ? "" : ", buffered");
    daemon_wake(d, v, 0, NULL);
    if (v->aliased)
        daemon_apply_aliases(d);
}
