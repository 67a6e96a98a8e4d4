/*
 * gate.c - gated alias moves (gate.h): loading every target, verifying it,
 * running the health checks one after another, and the `alias` control op
 * that writes the registry once a move passed.
 */
#include "index/name.h"
#include "loader/gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "loader/alerts.h"
#include "loader/daemon.h"
#include "loader/log.h"

static const struct mc_reg_alias *find_alias(struct daemon *d, const char *name, const char *alias)
{
    const struct mc_reg_model *m = mc_registry_model(d->reg, name);

    for (size_t i = 0; m && i < m->naliases; i++)
        if (!strcmp(m->aliases[i].alias, alias))
            return &m->aliases[i];
    return NULL;
}

void gate_mark_growing(struct daemon *d, struct gate_spec *s)
{
    const struct mc_reg_alias *a = find_alias(d, s->name, s->alias);

    for (size_t i = 0; i < s->n; i++) {
        uint32_t was = 0;
        for (size_t j = 0; a && j < a->ntargets; j++)
            if (!strcmp(a->targets[j].version->version, s->t[i].version))
                was = a->targets[j].weight;
        s->t[i].check = s->t[i].weight > was;
    }
}

void gate_spec_free(struct gate_spec *s)
{
    for (size_t i = 0; i < s->health_argc; i++)
        free(s->health_argv[i]);
    free(s->health_argv);
    s->health_argv = NULL;
    s->health_argc = 0;
}

static void unlink_gate(struct daemon *d, struct gate *g)
{
    for (struct gate **pp = &d->gates; *pp; pp = &(*pp)->next)
        if (*pp == g) {
            *pp = g->next;
            return;
        }
}

static void gate_free(struct gate *g)
{
    gate_spec_free(&g->s);
    json_decref(g->checks);
    free(g->why);
    free(g);
}

/* End the gate: unlink first (done may start another gate), then tell the caller. */
static void gate_end(struct daemon *d, struct gate *g, int rc, const char *msg)
{
    unlink_gate(d, g);
    if (rc)
        log_warn("%s: %s refused: %s", g->s.name, g->s.alias, msg);
    g->done(d, g->ctx, rc, msg, g->checks);
    gate_free(g);
}

static void next_check(struct daemon *d, struct gate *g);

static void check_done(struct daemon *d, void *ctx, const struct health_result *r)
{
    struct gate *g = ctx;
    struct gate_target *t = &g->s.t[g->next_check];
    char how[128], msg[MC_HEALTH_TAIL + 1024];

    g->run = NULL;
    health_outcome(r, how, sizeof(how));
    json_array_append_new(g->checks,
                          json_pack("{s:s, s:s, s:i, s:b, s:I, s:s}", "version", t->version,
                                    "outcome", how, "status", r->status, "timed_out", r->timed_out,
                                    "ms", (json_int_t)r->ms, "output", r->tail));
    if (r->status == 0 && !r->timed_out) {
        g->next_check++;
        next_check(d, g);
        return;
    }
    snprintf(msg, sizeof(msg), "health check of %s@%s failed (%s); the alias stays where it is%s%s",
             g->s.name, t->version, how, *r->tail ? "; its output ends:\n" : "", r->tail);
    alert_raise(d, "health", g->s.name, t->version, g->s.alias, msg);
    gate_end(d, g, MC_EBUSY, msg);
}

/* Start the next check, or pass the gate when none is left. */
static void next_check(struct daemon *d, struct gate *g)
{
    const struct mc_reg_model *m;

    for (; g->next_check < g->s.n; g->next_check++) {
        struct gate_target *t = &g->s.t[g->next_check];
        const char *const *argv = (const char *const *)g->s.health_argv;
        size_t argc = g->s.health_argc;
        uint32_t tmo = g->s.health_timeout_ms;

        if (!t->check)
            continue;
        if (!argc) {
            m = mc_registry_model(d->reg, g->s.name);
            if (!m || !m->health || !m->health->argc)
                continue;
            argv = m->health->argv;
            argc = m->health->argc;
            tmo = m->health->timeout_ms;
        }
        {
            struct health_result fail;
            g->run = health_start(d, g->s.name, t->version, argv, argc, tmo, check_done, g, &fail);
            if (!g->run)
                check_done(d, g, &fail); /* may end g */
        }
        return;
    }
    gate_end(d, g, 0, "passed");
}

/* Are all targets loaded? 1 yes, 0 not yet, <0 failed (message in msg). */
static int targets_ready(struct daemon *d, struct gate *g, char *msg, size_t len)
{
    int ready = 1;

    for (size_t i = 0; i < g->s.n; i++) {
        struct dver *v = daemon_find(d, g->s.name, g->s.t[i].version);

        if (!v) {
            snprintf(msg, len, "%s@%s is no longer a ready version in the registry", g->s.name,
                     g->s.t[i].version);
            return MC_ENOENT;
        }
        if (v->st == D_FAILED) {
            snprintf(msg, len, "%s@%s could not be loaded and verified: %s", g->s.name,
                     g->s.t[i].version, v->error);
            return MC_EIO;
        }
        if (v->st != D_READY) {
            daemon_want_load(d, v);
            ready = 0;
        }
    }
    return ready;
}

static void gate_poll(struct daemon *d, struct gate *g)
{
    char msg[1024];
    int rc;

    if (g->run)
        return;
    rc = targets_ready(d, g, msg, sizeof(msg));
    if (rc < 0) {
        alert_raise(d, "health", g->s.name, NULL, g->s.alias, msg);
        gate_end(d, g, rc, msg);
    } else if (rc == 1) {
        next_check(d, g);
    }
}

struct gate *gate_start(struct daemon *d, const struct gate_spec *s, struct mc_conn *conn,
                        gate_done_fn done, void *ctx)
{
    struct gate *g = calloc(1, sizeof(*g));

    if (!g || !(g->checks = json_array())) {
        free(g);
        done(d, ctx, MC_ENOMEM, "out of memory", NULL);
        return NULL;
    }
    g->s = *s;
    g->s.health_argv = NULL;
    g->s.health_argc = 0;
    if (s->health_argc) {
        g->s.health_argv = calloc(s->health_argc, sizeof(char *));
        for (size_t i = 0; g->s.health_argv && i < s->health_argc; i++) {
            g->s.health_argv[i] = strdup(s->health_argv[i]);
            g->s.health_argc = g->s.health_argv[i] ? i + 1 : g->s.health_argc;
        }
    }
    g->done = done;
    g->ctx = ctx;
    g->conn = conn;
    g->next = d->gates;
    d->gates = g;
    /* Its first look at the targets is the next tick's (gate_tick): done is never called
     * from here, so the caller may keep g. */
    return g;
}

void gate_tick(struct daemon *d)
{
    for (struct gate *g = d->gates, *next; g; g = next) {
        next = g->next;
        gate_poll(d, g);
    }
}

void gate_cancel(struct daemon *d, struct gate *g)
{
    unlink_gate(d, g);
    if (g->run)
        health_cancel(d, g->run);
    gate_free(g);
}

bool gate_conn_closed(struct daemon *d, struct mc_conn *c)
{
    bool had = false;

    for (struct gate *g = d->gates, *next; g; g = next) {
        next = g->next;
        if (g->conn == c) {
            log_info("%s: move of %s cancelled: the client closed its connection", g->s.name,
                     g->s.alias);
            free(g->ctx);
            gate_cancel(d, g);
            had = true;
        }
    }
    return had;
}

void gate_stop_all(struct daemon *d)
{
    while (d->gates) {
        struct gate *g = d->gates;
        if (g->conn) {
            const char *m = "mcached is stopping; the alias did not move";
            mc_ctl_reply(&d->ctl, g->conn, MC_EBUSY, m, strlen(m));
            g->conn->park_ctx = NULL;
            free(g->ctx);
        }
        gate_cancel(d, g);
    }
}

/* ---- the `alias` op ---- */

struct alias_req {
    struct mc_conn *conn;
    char from[512];
    char why[512];
    /* the actor the caller names (mcache-serve: "token:NAME" and the peer), or "" */
    char who_actor[128], from_actor[128];
    uid_t uid; /* the caller's (daemon_actor_set) */
};

static void reply_err(struct daemon *d, struct mc_conn *c, int code, const char *msg)
{
    c->park_ctx = NULL;
    mc_ctl_reply(&d->ctl, c, code, msg, strlen(msg));
}

static void alias_passed(struct daemon *d, struct gate_spec *s, struct alias_req *q, json_t *checks)
{
    struct mc_reg_weight w[MC_ALIAS_TARGETS_MAX];
    const struct mc_reg_alias *a;
    char to[512] = "";
    uint64_t gen = 0;
    json_t *j;
    char *body;
    int rc;

    for (size_t i = 0; i < s->n; i++)
        w[i] = (struct mc_reg_weight){s->t[i].version, s->t[i].weight};
    /* The caller's actor for this record only (the peer's uid, or WHO as daemon_actor_set
     * trusts it); then the handle's own again. */
    daemon_actor_set(d, q->uid, q->who_actor, q->from_actor);
    rc = mc_registry_alias_set_weighted(d->reg, s->name, s->alias, w, s->n, *q->why ? q->why : NULL,
                                        &gen);
    daemon_actor_reset(d);
    if (rc) {
        reply_err(d, q->conn, rc, mc_last_error());
        return;
    }
    a = find_alias(d, s->name, s->alias);
    if (a)
        mc_reg_targets_format(a, to, sizeof(to));
    log_info("%s: %s -> %s (was %s)%s%s", s->name, s->alias, to, *q->from ? q->from : "none",
             *q->why ? ": " : "", q->why);
    daemon_sync(d, false); /* the arena follows (loaded already) */
    j = json_pack("{s:s, s:s, s:o, s:s, s:I, s:O}", "name", s->name, "alias", s->alias, "from",
                  *q->from ? json_string(q->from) : json_null(), "to", to, "generation",
                  (json_int_t)gen, "checks", checks);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    q->conn->park_ctx = NULL;
    mc_ctl_reply(&d->ctl, q->conn, body ? 0 : MC_ENOMEM, body ? body : "out of memory",
                 body ? strlen(body) : 13);
    free(body);
}

struct alias_ctx {
    struct alias_req q;
    struct gate_spec s;
};

static void alias_done(struct daemon *d, void *ctx, int rc, const char *msg, json_t *checks)
{
    struct alias_ctx *x = ctx;

    if (rc)
        reply_err(d, x->q.conn, rc, msg);
    else
        alias_passed(d, &x->s, &x->q, checks);
    free(x);
}

/* Split "1.0.0=90 2.0.0=10" into words, resolve each ref to an exact READY version. */
static int parse_targets(struct daemon *d, const char *name, char *text, struct gate_spec *s)
{
    const char *words[MC_ALIAS_TARGETS_MAX + 1];
    struct mc_reg_weight w[MC_ALIAS_TARGETS_MAX];
    size_t nw = 0, n = 0;
    uint32_t sum = 0;
    char *save = NULL;

    for (char *t = strtok_r(text, " \t", &save); t && nw <= MC_ALIAS_TARGETS_MAX;
         t = strtok_r(NULL, " \t", &save))
        words[nw++] = t; /* one more than allowed is refused below */
    if (nw == 0)
        return mc_err(MC_EINVAL, "alias: no target given (expected VERSION or VERSION=WEIGHT "
                                 "words, e.g. \"1.0.0=90 2.0.0=10\")");
    if (nw > MC_ALIAS_TARGETS_MAX)
        return mc_err(MC_EINVAL,
                      "alias: more than %d targets given; an alias has at most %d "
                      "(give 1 to %d VERSION=WEIGHT words)",
                      MC_ALIAS_TARGETS_MAX, MC_ALIAS_TARGETS_MAX, MC_ALIAS_TARGETS_MAX);
    if (mc_reg_targets_parse(words, nw, w, &n) != 0)
        return MC_EINVAL;
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        const struct mc_reg_version *rv;
        if (mc_registry_resolve(d->reg, name, w[i].ref, &rv) != 0)
            return MC_ENOENT;
        if (rv->status != MC_STATUS_READY)
            return mc_err(MC_EINVAL, "%s@%s is %s; only a ready version can be an alias's target",
                          name, rv->version, mc_reg_status_name(rv->status));
        for (size_t j = 0; j < i; j++)
            if (!strcmp(s->t[j].version, rv->version))
                return mc_err(MC_EINVAL,
                              "alias: %s@%s is given twice (as \"%s\" too); give each "
                              "version once",
                              name, rv->version, w[i].ref);
        snprintf(s->t[i].version, sizeof(s->t[i].version), "%s", rv->version);
        s->t[i].weight = w[i].weight;
        sum += w[i].weight;
    }
    if (sum != 100)
        return mc_err(MC_EINVAL,
                      "alias: the weights of \"%s\" add up to %u; they must add up to 100", name,
                      sum);
    return 0;
}

void gate_op_alias(struct daemon *d, struct mc_conn *c, const struct mc_request *rq)
{
    struct alias_ctx *x = calloc(1, sizeof(*x));
    const struct mc_reg_alias *a;
    char text[1024];
    int rc;

    if (!x) {
        reply_err(d, c, MC_ENOMEM, "out of memory");
        return;
    }
    /* Names first: a bad one must not cost loads and checks before the
     * registry refuses it (a review find). */
    if ((rc = mc_name_check(rq->args[0])) != 0 || (rc = mc_alias_check(rq->args[1])) != 0) {
        free(x);
        reply_err(d, c, rc, mc_last_error());
        return;
    }
    daemon_sync(d, false);
    snprintf(x->s.name, sizeof(x->s.name), "%s", rq->args[0]);
    snprintf(x->s.alias, sizeof(x->s.alias), "%s", rq->args[1]);
    snprintf(text, sizeof(text), "%s", rq->args[2]);
    if (rq->nargs > 3)
        snprintf(x->q.why, sizeof(x->q.why), "%s", rq->args[3]);
    if (rq->nargs > 4) /* WHO [FROM]: who asked for the move, for the registry's record */
        snprintf(x->q.who_actor, sizeof(x->q.who_actor), "%s", rq->args[4]);
    if (rq->nargs > 5)
        snprintf(x->q.from_actor, sizeof(x->q.from_actor), "%s", rq->args[5]);
    x->q.uid = c->uid;
    rc =
        mc_registry_model(d->reg, x->s.name) ? parse_targets(d, x->s.name, text, &x->s) : MC_ENOENT;
    if (rc) {
        reply_err(d, c, rc, mc_last_error());
        free(x);
        return;
    }
    a = find_alias(d, x->s.name, x->s.alias);
    if (a)
        mc_reg_targets_format(a, x->q.from, sizeof(x->q.from));
    gate_mark_growing(d, &x->s);
    x->q.conn = c;
    c->parked = true;
    c->park_ctx = x; /* daemon_conn_closed asks gate_conn_closed first */
    gate_start(d, &x->s, c, alias_done, x);
}
