/*
 * daemon.c - what mcached's parts share: the failures kept for `status`,
 * the clients waiting for a load, publishing a version's record in the
 * arena, and the periodic tick (reclamation, waiter timeouts, recency
 * sampling, stalled readers).
 *
 * The state is struct daemon (daemon.h, which maps the files); the load
 * queue and eviction are load_queue.c, the registry mirror mirror.c,
 * start-up and shutdown lifecycle.c, control requests ops.c.
 */
#include "common/clock.h"
#include "loader/daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/log.h"
#include "loader/stats.h"
#include "common/err.h"

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

int daemon_put_record(struct daemon *d, struct dver *v, uint32_t state)
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
        desc.stats = stats_index_take(d);
        if (!desc.stats)
            log_warn("%s@%s is resident but untracked: all %u serving statistics indices are "
                     "in use by other resident versions; its mc_report() calls are not counted",
                     v->name, v->version, MC_STATS_VERSIONS - 1);
        desc.data_off = v->extent_off;
        desc.extent_off = v->extent_off;
        desc.extent_size = v->extent_size;
        desc.tensors_off = v->tensors_off;
        desc.tensors_size = v->tensors_size;
    }
    rc = mc_table_put_version(&d->own.w, &desc, &rec);
    if (rc == 0)
        v->rec_off = mc_arena_off(&d->own.a, rec);
    if (rc == 0 && desc.stats)
        stats_index_bind(d, desc.stats, v->rec_off);
    else if (desc.stats)
        stats_index_untake(d, desc.stats);
    return rc;
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
    stats_tick(d);
    daemon_schedule(d);
    /* Idle a second after start: now register the arena with io_uring. */
    if (!d->loading && !d->qhead && now - d->started_ns > 1000000000ull)
        mc_io_register(&d->io);
}
