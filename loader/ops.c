/*
 * ops.c - what mcached does for each control request (docs/protocol.md),
 * and the JSON it answers with.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef MC_HAVE_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "common/clock.h"
#include "common/err.h"
#include "loader/daemon.h"
#include "loader/log.h"
#include "loader/stats.h"
#include "loader/alerts.h"
#include "loader/deploy.h"
#include "loader/gate.h"

static void reply_json(struct daemon *d, struct mc_conn *c, json_t *j)
{
    char *s = json_dumps(j, JSON_COMPACT);

    json_decref(j);
    if (!s) {
        mc_ctl_reply(&d->ctl, c, MC_ENOMEM, "out of memory", 13);
        return;
    }
    mc_ctl_reply(&d->ctl, c, 0, s, strlen(s));
    free(s);
}

static void reply_err(struct daemon *d, struct mc_conn *c, int code, const char *msg)
{
    mc_ctl_reply(&d->ctl, c, code, msg, strlen(msg));
}

static const char *state_name(enum dstate s)
{
    switch (s) {
    case D_REGISTERED:
        return "registered";
    case D_LOADING:
        return "loading";
    case D_READY:
        return "resident";
    default:
        return "failed";
    }
}

/* Resolve NAME REF against the registry to a version the daemon mirrors. */
static struct dver *resolve(struct daemon *d, struct mc_conn *c, const char *name,
                            const char *ref)
{
    const struct mc_reg_version *rv;
    struct dver *v;
    char msg[700];

    /* Answer from the registry as it is now, mirrored into the arena. */
    daemon_sync(d, false);
    if (mc_registry_resolve(d->reg, name, ref, &rv) != 0) {
        reply_err(d, c, MC_ENOENT, mc_last_error());
        return NULL;
    }
    v = daemon_find(d, rv->name, rv->version);
    if (!v) {
        snprintf(msg, sizeof(msg), "%s@%s is %s in the registry; only ready versions are served",
                 rv->name, rv->version, mc_reg_status_name(rv->status));
        reply_err(d, c, MC_ENOENT, msg);
    }
    return v;
}

static json_t *version_json(const struct dver *v)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:I}", "name", v->name, "version", v->version,
                          "state", state_name(v->st), "size", (json_int_t)v->size);

    if (j && v->st == D_FAILED)
        json_object_set_new(j, "error", json_string(v->error));
    return j;
}

static void op_load(struct daemon *d, struct mc_conn *c, const struct mc_request *rq)
{
    long long timeout_ms = -1;
    struct dver *v;
    struct waiter *w;
    char *end;

    if (rq->nargs > 2) {
        timeout_ms = strtoll(rq->args[2], &end, 10);
        if (end == rq->args[2] || *end || timeout_ms > 86400000LL * 365) {
            reply_err(d, c, MC_EINVAL,
                      "load: TIMEOUT_MS must be a number of milliseconds (negative: no limit)");
            return;
        }
    }
    v = resolve(d, c, rq->args[0], rq->args[1]);
    if (!v)
        return;
    d->requests_load++;
    v->last_used_ns = mc_mono_ns();
    if (v->st == D_READY) {
        json_t *j = version_json(v);
        json_object_set_new(j, "already", json_true());
        reply_json(d, c, j);
        return;
    }
    if (v->st == D_FAILED) /* asked explicitly: try again */
        v->st = D_REGISTERED;
    w = calloc(1, sizeof(*w));
    if (!w) {
        reply_err(d, c, MC_ENOMEM, "out of memory");
        return;
    }
    /* Concurrent requests for one version wait on one load. */
    w->conn = c;
    w->deadline_ns = timeout_ms >= 0 ? mc_mono_ns() + (uint64_t)timeout_ms * 1000000ull : 0;
    w->next = v->waiters;
    v->waiters = w;
    c->parked = true;
    c->park_ctx = v;
    daemon_want_load(d, v);
    daemon_schedule(d);
}

static void op_evict(struct daemon *d, struct mc_conn *c, const struct mc_request *rq)
{
    struct dver *v = resolve(d, c, rq->args[0], rq->args[1]);

    if (!v)
        return;
    if (v->aliased) {
        char msg[600];
        snprintf(msg, sizeof(msg),
                 "%s@%s is the target of %u alias(es), or the version a running rollout "
                 "started from, and would be loaded again; move the alias (or end the rollout: "
                 "mcache deploy --abort) first",
                 v->name, v->version, v->aliased);
        reply_err(d, c, MC_EBUSY, msg);
        return;
    }
    if (daemon_arena_target(d, v)) {
        char msg[600];
        snprintf(msg, sizeof(msg),
                 "%s@%s still serves an alias while the version it moved to loads; evict it "
                 "once the switch is done",
                 v->name, v->version);
        reply_err(d, c, MC_EBUSY, msg);
        return;
    }
    if (daemon_evict(d, v) != 0) {
        reply_err(d, c, v->st == D_READY ? MC_EBUSY : MC_ENOTRESIDENT, mc_last_error());
        return;
    }
    mc_reclaim_poll(&d->own.rc);
    reply_json(d, c, version_json(v));
}

void daemon_actor_set(struct daemon *d, uid_t uid, const char *who, const char *from)
{
    char via[200];

    if (who == NULL || *who == '\0') {
        mc_registry_set_uid(d->reg, (uint32_t)uid);
        return;
    }
    if (uid != getuid() && uid != 0) {
        snprintf(via, sizeof(via), "%.120s via uid:%u", who, (unsigned)uid);
        who = via;
    }
    mc_registry_set_actor(d->reg, who, from && *from ? from : "local");
}

void daemon_actor_reset(struct daemon *d)
{
    mc_registry_set_uid(d->reg, (uint32_t)getuid());
}

/* pin|unpin NAME REF [WHO [FROM]] */
static void op_pin(struct daemon *d, struct mc_conn *c, const struct mc_request *rq, bool pin)
{
    struct dver *v = resolve(d, c, rq->args[0], rq->args[1]);
    int rc;

    if (!v)
        return;
    /* The pin lives in the registry, so it survives restarts. */
    daemon_actor_set(d, c->uid, rq->nargs > 2 ? rq->args[2] : NULL,
                     rq->nargs > 3 ? rq->args[3] : NULL);
    rc = mc_registry_set_flags(d->reg, v->name, v->version, -1, pin, NULL);
    daemon_actor_reset(d);
    if (rc != 0) {
        reply_err(d, c, MC_EIO, mc_last_error());
        return;
    }
    v->pinned = pin;
    if (pin) {
        daemon_want_load(d, v);
        daemon_schedule(d);
    }
    log_info("%s %s@%s", pin ? "pinned" : "unpinned", v->name, v->version);
    reply_json(d, c, version_json(v));
}

static json_t *heap_json(void)
{
#ifdef MC_HAVE_JEMALLOC
    uint64_t epoch = 1;
    size_t sz = sizeof(epoch), v;
    json_t *j = json_pack("{s:s}", "allocator", "jemalloc");
    static const char *keys[] = {"allocated", "active", "resident", "mapped", "metadata",
                                 "retained"};

    mallctl("epoch", &epoch, &sz, &epoch, sz);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        char name[64];
        snprintf(name, sizeof(name), "stats.%s", keys[i]);
        sz = sizeof(v);
        if (mallctl(name, &v, &sz, NULL, 0) == 0)
            json_object_set_new(j, keys[i], json_integer((json_int_t)v));
    }
    return j;
#else
    return json_pack("{s:s}", "allocator", "libc (sanitizer build)");
#endif
}

static json_t *arena_json(struct daemon *d)
{
    struct mc_arena_hdr *h = d->own.a.hdr;
    struct mc_table *t = d->own.w.t;
    char base[32];

    snprintf(base, sizeof(base), "0x%llx", (unsigned long long)h->base);
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
        "s:I, s:I}",
        "path", d->own.a.path, "access", d->access.label, "base", base, "size", (json_int_t)h->size,
        "page_size", (json_int_t)h->page_size, "backing", mc_backing_name(h->backing), "data_size",
        (json_int_t)h->data_size, "data_used", (json_int_t)h->data_ext.used, "data_free",
        (json_int_t)(h->data_size - h->data_ext.used), "largest_free",
        (json_int_t)h->data_ext.largest_free, "index_size", (json_int_t)h->index_size, "index_used",
        (json_int_t)h->index_ext.used, "models_resident", (json_int_t)t->resident, "versions",
        (json_int_t)t->versions, "aliases", (json_int_t)t->aliases, "generation",
        (json_int_t)h->generation, "epoch", (json_int_t)h->epoch, "manifest_generation",
        (json_int_t)h->manifest_gen, "created_ns", (json_int_t)h->created_ns);
}

static json_t *reclaim_json(struct daemon *d)
{
    struct mc_stall st[16];
    size_t n = mc_reclaim_stalls(&d->own.rc, 1000000000ull, st, 16);
    json_t *stalls = json_array();
    uint64_t now = mc_mono_ns();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(stalls, json_pack("{s:i, s:i, s:f}", "pid", (int)st[i].pid, "slot",
                                                (int)st[i].slot, "pinned_s",
                                                (double)(now - st[i].since_ns) / 1e9));
    return json_pack("{s:I, s:I, s:I, s:I, s:o}", "pending_items", (json_int_t)d->own.rc.n,
                     "pending_bytes", (json_int_t)d->own.rc.pending_bytes, "retired_total",
                     (json_int_t)d->own.rc.retired_total, "freed_total",
                     (json_int_t)d->own.rc.freed_total, "stalls", stalls);
}

static json_t *loads_json(struct daemon *d)
{
    double secs = (double)d->io.busy_ns / 1e9;
    unsigned queued = daemon_queued(d);

    return json_pack("{s:I, s:I, s:I, s:f, s:f, s:i, s:i, s:I, s:s, s:b, s:i, s:I}", "ok",
                     (json_int_t)d->io.loads_ok, "failed", (json_int_t)d->io.loads_failed,
                     "bytes", (json_int_t)d->io.bytes_total, "seconds", secs, "gbps",
                     secs > 0 ? (double)d->io.bytes_total / secs / 1e9 : 0.0, "in_flight",
                     (int)d->loading, "queued", (int)queued, "evictions",
                     (json_int_t)d->evictions, "engine", d->io.have_ring ? "io_uring" : "pread",
                     "fixed_buffers", __atomic_load_n(&d->io.fixed, __ATOMIC_ACQUIRE), "queue_depth", (int)d->io.qd, "chunk_size",
                     (json_int_t)d->io.chunk);
}

static json_t *models_json(struct daemon *d)
{
    json_t *a = json_array();
    uint64_t now = mc_mono_ns();

    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next) {
            json_t *m = version_json(v);
            json_object_set_new(m, "pinned", json_boolean(v->pinned));
            json_object_set_new(m, "preload", json_boolean(v->preload));
            json_object_set_new(m, "aliases", json_integer(v->aliased));
            if (v->st == D_READY) {
                json_object_set_new(m, "loaded_ns", json_integer((json_int_t)v->loaded_at));
                json_object_set_new(m, "load_s", json_real((double)v->load_ns / 1e9));
                json_object_set_new(m, "idle_s",
                                    json_real((double)(now - v->last_used_ns) / 1e9));
            }
            if (v->st == D_LOADING && v->cl)
                json_object_set_new(m, "loaded_bytes", json_integer((json_int_t)v->cl->hashed));
            if (v->st == D_FAILED)
                json_object_set_new(m, "error", json_string(v->error));
            json_array_append_new(a, m);
        }
    return a;
}

static json_t *failures_json(struct daemon *d)
{
    json_t *a = json_array();
    unsigned n = d->nfailures < MC_FAILURES_KEPT ? d->nfailures : MC_FAILURES_KEPT;

    for (unsigned i = 0; i < n; i++) {
        const struct failure *f = &d->failures[(d->nfailures - 1 - i) % MC_FAILURES_KEPT];
        json_array_append_new(a, json_pack("{s:I, s:s, s:s}", "at_ns", (json_int_t)f->at,
                                           "what", f->what, "why", f->why));
    }
    return a;
}

/* Readers attached now: slot, pid, since, whether pinned, what they hold. */
static json_t *readers_json(struct daemon *d)
{
    struct mc_readers *r = &d->own.r;
    uint8_t *live = calloc(r->nslots, 1);
    json_t *a = json_array();

    if (!live || mc_readers_live(r, live) < 0) {
        free(live);
        return a;
    }
    for (uint32_t i = 0; i < r->nslots; i++) {
        struct mc_slot *s = &r->slots[i];
        json_t *holds;

        if (!live[i])
            continue;
        holds = json_array();
        for (unsigned j = 0; j < MC_SLOT_HOLDS; j++) {
            struct mc_rec_version *rv =
                daemon_record_at(d, __atomic_load_n(&s->held[j], __ATOMIC_ACQUIRE));

            if (rv)
                json_array_append_new(holds, json_string(mc_rec_key(&rv->h)));
        }
        json_array_append_new(
            a, json_pack("{s:i, s:i, s:i, s:I, s:b, s:o}", "slot", (int)i, "pid", (int)s->pid,
                         "tid", (int)s->tid, "since_ns", (json_int_t)s->since_ns, "in_lookup",
                         __atomic_load_n(&s->pin, __ATOMIC_ACQUIRE) != 0, "holds", holds));
    }
    free(live);
    return a;
}

static json_t *daemon_json(struct daemon *d)
{
    char version[32];

    snprintf(version, sizeof(version), "%d.%d.%d", MCACHE_VERSION_MAJOR, MCACHE_VERSION_MINOR,
             MCACHE_VERSION_PATCH);
    return json_pack("{s:i, s:s, s:f, s:I, s:s, s:s, s:s, s:s, s:b, s:f, s:I, s:I, s:{s:I, s:I, "
                     "s:I}}",
                     "pid",
                     (int)getpid(), "version", version, "uptime_s",
                     (double)(mc_mono_ns() - d->started_ns) / 1e9, "started_ns",
                     (json_int_t)d->started_wall, "store", mc_registry_dir(d->reg), "cache",
                     d->cfg.cache, "socket", d->socket_path, "config", d->cfg.config,
                     "adopted", d->own.adopted, "adopt_ms", (double)d->own.adopt_ns / 1e6,
                     "registry_generation", (json_int_t)mc_registry_generation(d->reg),
                     "registry_syncs", (json_int_t)d->syncs, "connections", "open", (json_int_t)d->ctl.nconns, "requests",
                     (json_int_t)d->ctl.requests, "refused", (json_int_t)d->ctl.rejected);
}

static void op_status(struct daemon *d, struct mc_conn *c)
{
    json_t *j = json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "daemon", daemon_json(d), "arena",
                          arena_json(d), "loads", loads_json(d), "reclaim", reclaim_json(d),
                          "heap", heap_json(), "models", models_json(d), "failures",
                          failures_json(d));

    json_object_set_new(j, "readers", readers_json(d));
    json_object_set_new(j, "serving", stats_counters_json(d));
    json_object_set_new(j, "alerts", alerts_json(d));
    reply_json(d, c, j);
}

struct op {
    const char *name;
    bool admin;
    unsigned min_args, max_args;
    const char *usage;
};

static const struct op ops[] = {
    {"ping", false, 0, 0, "ping"},
    {"status", false, 0, 0, "status"},
    {"readers", false, 0, 0, "readers"},
    {"stats", false, 0, 3, "stats [NAME REF [SECONDS]]"},
    {"compare", false, 3, 3, "compare NAME REF1 REF2"},
    {"load", false, 2, 3, "load NAME REF [TIMEOUT_MS]"},
    {"evict", true, 2, 2, "evict NAME REF"},
    {"pin", true, 2, 4, "pin NAME REF [WHO [FROM]]"},
    {"unpin", true, 2, 4, "unpin NAME REF [WHO [FROM]]"},
    {"reload", true, 0, 0, "reload"},
    {"alias", true, 3, 6, "alias NAME ALIAS TARGETS [WHY [WHO [FROM]]]"},
    {"deploy", true, 1, 3, "deploy JSON [WHO [FROM]]"},
    {"deploy-ctl", true, 2, 5, "deploy-ctl pause|resume|abort NAME [ALIAS [WHO [FROM]]]"},
    {"shutdown", true, 0, 0, "shutdown"},
};

void daemon_request(void *ctx, struct mc_conn *c, const struct mc_request *rq)
{
    struct daemon *d = ctx;
    const struct op *op = NULL;
    char msg[512];

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (strcmp(ops[i].name, rq->op) == 0)
            op = &ops[i];
    if (!op) {
        snprintf(msg, sizeof(msg),
                 "unknown operation \"%.40s\"; mcached knows ping, status, readers, stats, compare, "
                 "load, evict, pin, unpin, reload, alias, deploy, deploy-ctl, shutdown",
                 rq->op);
        reply_err(d, c, MC_EINVAL, msg);
        return;
    }
    if (rq->nargs < op->min_args || rq->nargs > op->max_args) {
        snprintf(msg, sizeof(msg), "%s takes %u to %u arguments: %s", op->name, op->min_args,
                 op->max_args, op->usage);
        reply_err(d, c, MC_EINVAL, msg);
        return;
    }
    if (op->admin && !c->admin) {
        snprintf(msg, sizeof(msg),
                 "uid %u may not %s: changes are allowed only to mcached's own uid, root and "
                 "the admin group",
                 (unsigned)c->uid, op->name);
        log_warn("refused %s from uid %u (pid %d)", op->name, (unsigned)c->uid, (int)c->pid);
        reply_err(d, c, MC_EPERM, msg);
        return;
    }
    if (!strcmp(op->name, "ping")) {
        reply_json(d, c, json_pack("{s:b, s:i}", "ok", 1, "pid", (int)getpid()));
    } else if (!strcmp(op->name, "status")) {
        op_status(d, c);
    } else if (!strcmp(op->name, "readers")) {
        reply_json(d, c, json_pack("{s:o}", "readers", readers_json(d)));
    } else if (!strcmp(op->name, "stats") && rq->nargs == 1) {
        reply_err(d, c, MC_EINVAL,
                  "stats takes no arguments (mcached's counters) or NAME REF (a version's "
                  "serving statistics)");
    } else if (!strcmp(op->name, "stats") && rq->nargs >= 2) {
        stats_op(d, c, rq);
    } else if (!strcmp(op->name, "compare")) {
        stats_op_compare(d, c, rq);
    } else if (!strcmp(op->name, "stats")) {
        reply_json(d, c, json_pack("{s:o, s:o, s:o, s:o, s:o}", "daemon", daemon_json(d),
                                   "loads", loads_json(d), "reclaim", reclaim_json(d), "heap",
                                   heap_json(), "serving", stats_counters_json(d)));
    } else if (!strcmp(op->name, "load")) {
        op_load(d, c, rq);
    } else if (!strcmp(op->name, "evict")) {
        op_evict(d, c, rq);
    } else if (!strcmp(op->name, "pin") || !strcmp(op->name, "unpin")) {
        op_pin(d, c, rq, op->name[0] == 'p');
    } else if (!strcmp(op->name, "reload")) {
        int rc = daemon_sync(d, true);
        if (rc)
            reply_err(d, c, rc, mc_last_error());
        else
            reply_json(d, c, json_pack("{s:I}", "generation",
                                       (json_int_t)mc_registry_generation(d->reg)));
    } else if (!strcmp(op->name, "alias")) {
        gate_op_alias(d, c, rq);
    } else if (!strcmp(op->name, "deploy")) {
        deploy_op_begin(d, c, rq);
    } else if (!strcmp(op->name, "deploy-ctl")) {
        deploy_op_ctl(d, c, rq);
    } else if (!strcmp(op->name, "shutdown")) {
        log_info("shutdown requested by uid %u (pid %d)", (unsigned)c->uid, (int)c->pid);
        d->stop = true;
        reply_json(d, c, json_pack("{s:b}", "ok", 1));
    }
}

void daemon_conn_closed(void *ctx, struct mc_conn *c)
{
    struct daemon *d = ctx;
    struct dver *v = c->park_ctx;

    if (!v || gate_conn_closed(d, c) || deploy_conn_closed(d, c))
        return; /* a gated alias move or a rollout's client (gate.c, deploy.c) */
    for (struct waiter **pp = &v->waiters; *pp; pp = &(*pp)->next)
        if ((*pp)->conn == c) {
            struct waiter *w = *pp;
            *pp = w->next;
            free(w);
            break;
        }
    c->park_ctx = NULL;
}
