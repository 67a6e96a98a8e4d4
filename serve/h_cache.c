/*
 * h_cache.c - mcached's operations: load, evict, pin, stats, deployments (api helper).
 *
 * What the cache does is mcached's to do: these routes are requests on its
 * control socket (cli_ctl_call, as the CLI's load, evict, pin, stats,
 * compare, deploy) answered with the CLI's --json objects. No registry lock
 * is held while mcached works. When no mcached runs, the answer is 503
 * no_daemon with the CLI's message (how to start it), except where the
 * CLI also works without it: pin and unpin (the registry's flag), and the
 * readers (read from the arena itself).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "serve/h_api.h"
#include "tools/arena_view.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"

#define MAX_TIMEOUT_S 2000000 /* as `mcache load --timeout`: its ms and slack fit an int */

/* GET /v1/models/{name}/stats?ref=&window=: as `mcache stats NAME@REF --json`. */
static int stats(struct req *rq)
{
    const char *ref = req_query(rq, "ref"), *win = req_query(rq, "window");
    char secs[24];
    uint64_t w = 0;
    json_t *res, *j;
    int ret = 0;

    if (!api_query_uint(rq, "window", 1, 600, &w, &ret))
        return ret;
    snprintf(secs, sizeof(secs), "%llu", (unsigned long long)w);
    const char *args[3] = {req_param(rq, "name"), ref ? ref : "latest", secs};
    if (!api_ctl(rq, "stats", win ? 3 : 2, args, CLI_CTL_TIMEOUT_MS, &res, &ret))
        return ret;
    j = jv_stats_version(res);
    json_decref(res);
    return reply_json(rq, 200, j);
}

/* GET /v1/models/{name}/compare?a=&b=: as `mcache compare NAME A B --json`. */
static int compare(struct req *rq)
{
    const char *a = req_query(rq, "a"), *b = req_query(rq, "b");
    json_t *res, *vs;
    int ret = 0;

    if (!a || !b)
        return reply_error(rq, 400, "bad_request",
                           "compare needs two references: ?a=1.0.0&b=2.0.0 (versions, aliases, "
                           "latest or ranges)");
    const char *args[3] = {req_param(rq, "name"), a, b};
    if (!api_ctl(rq, "compare", 3, args, CLI_CTL_TIMEOUT_MS, &res, &ret))
        return ret;
    vs = json_array();
    json_array_append_new(vs, jv_stats_version(json_array_get(json_object_get(res, "versions"), 0)));
    json_array_append_new(vs, jv_stats_version(json_array_get(json_object_get(res, "versions"), 1)));
    json_t *j = json_pack("{s:O, s:o}", "name", jget(res, "name"), "versions", vs);
    json_decref(res);
    return reply_json(rq, 200, j);
}

/* GET /v1/models/{name}/deployments: as `mcache deployments NAME --json`. */
static int deployments(struct req *rq)
{
    struct srv *s = rq->srv;
    const struct mc_reg_model *m;
    json_t *arr;
    int ret = 0;

    if (!(m = api_lock_model(rq, &ret)))
        return ret;
    arr = json_array();
    for (size_t i = 0; i < mc_registry_deploy_count(s->reg); i++) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(s->reg, i);
        if (!strcmp(x->name, m->name))
            json_array_append_new(arr, jv_deploy(x));
    }
    json_t *j = json_pack("{s:s, s:o}", "name", m->name, "deployments", arr);
    srv_unlock(s);
    return reply_json(rq, 200, j);
}

/*
 * POST /v1/models/{name}/deployments: begin a rollout (mcached runs it, as
 * `mcache deploy`). The body is mcached's `deploy` JSON less the name and
 * less the health command (refused: mcached would run it; the model's own
 * check, `mcache health set` on the host, gates the steps); the CLI's
 * defaults fill what is not given; mcached checks the values.
 */
static int deploy(struct req *rq)
{
    static const char *const fields[] = {"version",        "alias",        "strategy",
                                         "steps",          "interval_ms",  "max_error_rate",
                                         "max_p99_ratio",  "min_requests", NULL};
    json_t *b = rq->body, *spec, *res;
    char *text;
    int ret = 0, rc;

    if (!b)
        return reply_error(rq, 400, "bad_request",
                           "a deploy needs a JSON body: {\"version\": \"2.0.0\", \"alias\": "
                           "\"production\", \"strategy\": \"canary\"}");
    /*
     * A health command is run by mcached (root, or the cache's owner): a
     * publisher over HTTP may not name one. Rollouts use the model's own
     * check, set on the host.
     */
    if (json_object_get(b, "health") || json_object_get(b, "health_timeout_ms"))
        return reply_error(rq, 400, "bad_request",
                           "a deployment over HTTP cannot name a health command (\"health\", "
                           "\"health_timeout_ms\"): mcached would run it; the rollout uses the "
                           "model's own check: set it on the host with `mcache health set "
                           "NAME -- COMMAND...`");
    if (api_unknown_fields(rq, b, fields, &ret))
        return ret;
    if (!json_is_string(json_object_get(b, "version")))
        return api_bad_type(rq, "version", "a string (the version to roll out)");
    if (!json_is_string(json_object_get(b, "alias")))
        return api_bad_type(rq, "alias", "a string (the alias to move)");
    spec = json_pack("{s:s, s:s, s:[iii], s:i, s:f, s:f, s:i, s:[], s:i}", "name",
                     req_param(rq, "name"), "strategy", "canary", "steps", 10, 50, 100,
                     "interval_ms", 300000, "max_error_rate", 0.02, "max_p99_ratio", 0.0,
                     "min_requests", 100, "health", "health_timeout_ms", 30000);
    if (json_is_string(json_object_get(b, "strategy")) &&
        strcmp(json_string_value(json_object_get(b, "strategy")), "canary") &&
        !json_object_get(b, "steps"))
        json_object_set_new(spec, "steps", json_pack("[i]", 100)); /* one step: all at once */
    json_object_update(spec, b);
    text = json_dumps(spec, JSON_COMPACT);
    json_decref(spec);
    if (!text)
        return reply_error(rq, 500, "internal", "out of memory");
    rc = cli_ctl_serves_store(&rq->srv->cli);
    if (rc) {
        free(text);
        return reply_mc_error(rq, rc);
    }
    const char *args[3] = {text, rq->who, rq->from}; /* WHO FROM: the registry's record */
    if (!api_ctl(rq, "deploy", 3, args, api_gated_timeout_ms(rq->srv, req_param(rq, "name"), 1),
                 &res, &ret)) {
        free(text);
        return ret;
    }
    free(text);
    return reply_json(rq, 201, res);
}

/* POST .../deployments/{alias}/pause|resume|abort (mcached's deploy-ctl). */
static int deploy_ctl(struct req *rq, const char *act)
{
    const char *args[5] = {act, req_param(rq, "name"), req_param(rq, "alias"), rq->who, rq->from};
    json_t *res;
    int ret = 0, rc = cli_ctl_serves_store(&rq->srv->cli);

    if (rc)
        return reply_mc_error(rq, rc);
    if (!api_ctl(rq, "deploy-ctl", 5, args, CLI_CTL_TIMEOUT_MS, &res, &ret))
        return ret;
    return reply_json(rq, 200, res);
}

static int deploy_pause(struct req *rq)
{
    return deploy_ctl(rq, "pause");
}

static int deploy_resume(struct req *rq)
{
    return deploy_ctl(rq, "resume");
}

static int deploy_abort(struct req *rq)
{
    return deploy_ctl(rq, "abort");
}

/*
 * A load or evict that succeeded changed the cache, not the registry, so no
 * registry record says who did it: record it in the audit log ("ok"), as
 * the core records a failed one.
 */
static void audit_ok(struct req *rq, const char *op, json_t *res)
{
    char what[300];

    snprintf(what, sizeof(what), "%s %.128s@%.64s", op, jstr_or(res, "name", req_param(rq, "name")),
             jstr_or(res, "version", req_param(rq, "ref")));
    if (srv_lock(rq->srv) != 0) /* the change stands; only its entry is lost */
        return;
    mc_registry_set_actor(rq->srv->reg, rq->who, rq->from);
    (void)mc_registry_audit_add(rq->srv->reg, what, "ok", NULL);
    srv_unlock(rq->srv);
}

/* POST .../versions/{ref}/load?timeout_s=: as `mcache load --json`. */
static int load(struct req *rq)
{
    const char *tmo = req_query(rq, "timeout_s");
    uint64_t secs = 0;
    char ms[32];
    json_t *res;
    int ret = 0;
    uint64_t t0 = 0;

    if (!api_query_uint(rq, "timeout_s", 0, MAX_TIMEOUT_S, &secs, &ret))
        return ret;
    snprintf(ms, sizeof(ms), "%llu", (unsigned long long)secs * 1000);
    const char *args[3] = {req_param(rq, "name"), req_param(rq, "ref"), ms};
    t0 = (uint64_t)(cli_mono_s() * 1e9);
    if (!api_ctl(rq, "load", tmo ? 3 : 2, args,
                 tmo ? (int)(secs * 1000 + 2000) : API_LOAD_WAIT_MS + API_CTL_MARGIN_MS, &res,
                 &ret))
        return ret;
    json_t *j = json_pack("{s:O, s:O, s:O, s:O, s:f, s:b}", "name", jget(res, "name"), "version",
                          jget(res, "version"), "state", jget(res, "state"), "size",
                          jget(res, "size"), "seconds", cli_mono_s() - (double)t0 / 1e9, "already",
                          json_is_true(json_object_get(res, "already")));
    if (!json_is_true(json_object_get(res, "already")))
        audit_ok(rq, "load", res);
    json_decref(res);
    return reply_json(rq, 200, j);
}

/* The answer of evict, pin and unpin, as the CLI's --json. */
static json_t *cache_result(json_t *res, bool daemon, int pinned)
{
    json_t *o = json_pack("{s:O, s:O, s:O, s:O, s:b}", "name", jget(res, "name"), "version",
                          jget(res, "version"), "state", jget(res, "state"), "size",
                          jget(res, "size"), "daemon", daemon);

    if (pinned >= 0)
        json_object_set_new(o, "pinned", json_boolean(pinned));
    if (json_object_get(res, "error"))
        json_object_set(o, "error", json_object_get(res, "error"));
    return o;
}

static int evict(struct req *rq)
{
    const char *args[2] = {req_param(rq, "name"), req_param(rq, "ref")};
    json_t *res, *j;
    int ret = 0;

    if (!api_ctl(rq, "evict", 2, args, CLI_CTL_TIMEOUT_MS, &res, &ret))
        return ret;
    j = cache_result(res, true, -1);
    audit_ok(rq, "evict", res);
    json_decref(res);
    return reply_json(rq, 200, j);
}

/* Pins live in the registry: with mcached down they are set there (it acts on them when it starts). */
static int pin(struct req *rq, bool on)
{
    struct srv *s = rq->srv;
    const char *name = req_param(rq, "name"), *ref = req_param(rq, "ref");
    const char *args[4] = {name, ref, rq->who, rq->from}; /* WHO FROM: the registry's record */
    const struct mc_reg_version *v;
    json_t *res, *j;
    int ret = 0, rc = cli_ctl_call(&s->cli, on ? "pin" : "unpin", 4, args, CLI_CTL_TIMEOUT_MS, &res);

    if (rc == 0) {
        j = cache_result(res, true, on);
        /* a pin whose load failed at once (no room, a bad artifact) is not done */
        bool failed = on && !strcmp(jstr_or(res, "state", ""), "failed");
        json_decref(res);
        if (failed) {
            ret = reply_error(rq, 422, "load_failed",
                              "pinned %s@%s in the registry, but mcached cannot load it: %s",
                              jstr_or(j, "name", name), jstr_or(j, "version", ref),
                              jstr_or(j, "error", "see GET /v1/cache"));
            json_decref(j);
            return ret;
        }
        return reply_json(rq, 200, j);
    }
    if (rc != MC_ENODAEMON)
        return reply_mc_error(rq, rc);
    if (!api_lock_actor(rq, &ret))
        return ret;
    rc = mc_registry_resolve(s->reg, name, ref, &v);
    if (!rc) {
        res = json_pack("{s:s, s:s, s:n, s:I}", "name", v->name, "version", v->version, "state",
                        "size", (json_int_t)v->size);
        rc = mc_registry_set_flags(s->reg, v->name, v->version, -1, on, NULL);
        if (rc)
            json_decref(res);
    }
    srv_unlock(s);
    if (rc)
        return reply_mc_error(rq, rc);
    j = cache_result(res, false, on);
    json_decref(res);
    return reply_json(rq, 200, j);
}

static int do_pin(struct req *rq)
{
    return pin(rq, true);
}

static int do_unpin(struct req *rq)
{
    return pin(rq, false);
}

/* GET /v1/cache: mcached's status, as its `status` op answers (docs/protocol.md). */
static int cache_status(struct req *rq)
{
    json_t *res;
    int ret = 0;

    if (!api_ctl(rq, "status", 0, NULL, CLI_CTL_TIMEOUT_MS, &res, &ret))
        return ret;
    return reply_json(rq, 200, res);
}

/*
 * GET /v1/readers: from mcached, else from the arena's reader table itself,
 * through the server's own read-only attachment (a second one in the same
 * process would want the same base address).
 */
static int readers(struct req *rq)
{
    struct cli_arena ar = {0};
    json_t *res, *rd;
    int rc = cli_ctl_call(&rq->srv->cli, "readers", 0, NULL, CLI_CTL_TIMEOUT_MS, &res);

    if (rc == 0)
        return reply_json(rq, 200, res);
    if (rc != MC_ENODAEMON)
        return reply_mc_error(rq, rc);
    if ((rc = cli_arena_header(&rq->srv->cli, &ar.hdr, ar.path, sizeof(ar.path))))
        return reply_mc_error(rq, rc);
    if (!(ar.mc = srv_cache_hold(rq->srv)))
        return reply_mc_error(rq, MC_ENOENT);
    rd = cli_arena_readers(&rq->srv->cli, &ar);
    srv_cache_put(rq->srv, ar.mc);
    if (!rd)
        return reply_mc_error(rq, MC_EIO);
    return reply_json(rq, 200, json_pack("{s:o}", "readers", rd));
}

/* GET /v1/alerts?model=&kind=&limit=: as `mcache alerts --json`. */
static int alerts(struct req *rq)
{
    struct srv *s = rq->srv;
    const char *name = req_query(rq, "model"), *kind = req_query(rq, "kind");
    uint64_t limit = 0;
    size_t n, first = 0;
    json_t *arr;
    int ret = 0, rc;

    if (kind && strcmp(kind, "rollback") && strcmp(kind, "health") && strcmp(kind, "threshold"))
        return reply_error(rq, 400, "bad_request",
                           "kind=\"%.64s\" is not a kind of alert: use rollback, health or "
                           "threshold",
                           kind);
    if (!api_query_uint(rq, "limit", 1, MC_REG_ALERTS_MAX, &limit, &ret))
        return ret;
    if ((rc = srv_lock(s)))
        return reply_mc_error(rq, rc);
    if (name && !api_model(rq, name, &ret)) {
        srv_unlock(s);
        return ret;
    }
    n = mc_registry_alert_count(s->reg);
    if (limit) { /* the newest `limit` that match */
        size_t m = 0;
        for (first = n; first > 0 && m < limit; first--) {
            const struct mc_reg_alert *x = mc_registry_alert_at(s->reg, first - 1);
            m += (!name || !strcmp(x->model, name)) && (!kind || !strcmp(x->kind, kind));
        }
    }
    arr = json_array();
    for (size_t i = first; i < n; i++) {
        const struct mc_reg_alert *x = mc_registry_alert_at(s->reg, i);
        if ((!name || !strcmp(x->model, name)) && (!kind || !strcmp(x->kind, kind)))
            json_array_append_new(arr, jv_alert(x));
    }
    srv_unlock(s);
    return reply_json(rq, 200, json_pack("{s:o}", "alerts", arr));
}

const struct route h_cache_routes[] = {
    {"GET", "/v1/models/{name}/stats", ROLE_READER, 0, stats, NULL, NULL,
     "a resident version's serving statistics (mcached; ?ref=&window=)"},
    {"GET", "/v1/models/{name}/compare", ROLE_READER, 0, compare, NULL, NULL,
     "two versions' serving statistics side by side (mcached; ?a=&b=)"},
    {"GET", "/v1/models/{name}/deployments", ROLE_READER, 0, deployments, NULL, NULL,
     "every rollout of a model, oldest first"},
    {"POST", "/v1/models/{name}/deployments", ROLE_PUBLISHER, ROUTE_JSON | ROUTE_AUDIT | ROUTE_SLOW,
     deploy, NULL, NULL, "begin a rollout on an alias (mcached runs it)"},
    {"POST", "/v1/models/{name}/deployments/{alias}/pause", ROLE_PUBLISHER,
     ROUTE_AUDIT | ROUTE_SLOW, deploy_pause, NULL, NULL, "pause a rollout"},
    {"POST", "/v1/models/{name}/deployments/{alias}/resume", ROLE_PUBLISHER,
     ROUTE_AUDIT | ROUTE_SLOW, deploy_resume, NULL, NULL, "resume a paused rollout"},
    {"POST", "/v1/models/{name}/deployments/{alias}/abort", ROLE_PUBLISHER,
     ROUTE_AUDIT | ROUTE_SLOW, deploy_abort, NULL, NULL, "abort a rollout: its alias goes back"},
    {"POST", "/v1/models/{name}/versions/{ref}/load", ROLE_PUBLISHER, ROUTE_AUDIT | ROUTE_SLOW,
     load, NULL, NULL, "have mcached load a version into the arena (?timeout_s=)"},
    {"POST", "/v1/models/{name}/versions/{ref}/evict", ROLE_ADMIN, ROUTE_AUDIT | ROUTE_SLOW, evict,
     NULL, NULL, "have mcached drop a version from the arena"},
    {"POST", "/v1/models/{name}/versions/{ref}/pin", ROLE_ADMIN, ROUTE_AUDIT | ROUTE_SLOW, do_pin,
     NULL, NULL, "keep a version resident: never evicted, never removed by gc"},
    {"POST", "/v1/models/{name}/versions/{ref}/unpin", ROLE_ADMIN, ROUTE_AUDIT | ROUTE_SLOW,
     do_unpin, NULL, NULL, "undo pin"},
    {"GET", "/v1/cache", ROLE_READER, 0, cache_status, NULL, NULL,
     "mcached's status: arena, loads, models, readers"},
    {"GET", "/v1/readers", ROLE_READER, 0, readers, NULL, NULL,
     "the processes attached to the arena and what they hold"},
    {"GET", "/v1/alerts", ROLE_READER, 0, alerts, NULL, NULL,
     "rollbacks, failed health gates, threshold breaches (?model=&kind=&limit=)"},
    {0},
};
