/*
 * h_registry.c - the registry's routes: models, versions, aliases, search (api helper).
 *
 * Every answer is the object `mcache --json` prints for the same question
 * (tools/jsonout.h, docs/cli.md), so a script can move between the CLI and
 * the API without a second schema. Reads hold the registry lock only while
 * they build the answer; an alias move through mcached's gate (which loads
 * and runs health checks, seconds or minutes) holds no lock at all.
 */
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "index/name.h"
#include "serve/h_api.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"

/* ---- shared by the handlers (h_api.h) ------------------------------------ */

bool api_unknown_fields(struct req *rq, const json_t *obj, const char *const *allowed, int *ret)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        size_t i;
        char list[512] = "";

        for (i = 0; allowed[i] && strcmp(allowed[i], key); i++)
            ;
        if (allowed[i])
            continue;
        for (i = 0; allowed[i]; i++)
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                     allowed[i]);
        *ret = reply_error(rq, 400, "unknown_field",
                    "%s %s: unknown field \"%.64s\" (the fields are: %s); nothing was changed",
                    rq->method, rq->route->pattern, key, list);
        return true;
    }
    return false;
}

int api_bad_type(struct req *rq, const char *field, const char *want)
{
    return reply_error(rq, 400, "bad_request",
                       "%s %s: field \"%s\" must be %s; nothing was changed", rq->method,
                       rq->route->pattern, field, want);
}

const struct mc_reg_model *api_model(struct req *rq, const char *name, int *ret)
{
    int rc;
    const struct mc_reg_model *m = cli_model(rq->srv->reg, name, &rc);

    if (!m)
        *ret = reply_mc_error(rq, rc);
    return m;
}

const struct mc_reg_model *api_lock_model(struct req *rq, int *ret)
{
    const struct mc_reg_model *m;
    int rc = srv_lock(rq->srv);

    if (rc) {
        *ret = reply_mc_error(rq, rc);
        return NULL;
    }
    if (!(m = api_model(rq, req_param(rq, "name"), ret)))
        srv_unlock(rq->srv);
    return m;
}

const char *api_residency(struct srv *s, const char *name, const char *version)
{
    mc_cache *mc = srv_cache_hold(s);
    const char *res = "unknown";
    mc_model *m;

    switch (mc ? mc_get(mc, name, version, &m) : MC_ENOENT) {
    case 0:
        mc_release(m);
        res = "resident";
        break;
    case MC_EFAILED:
        res = "failed";
        break;
    case MC_ENOTRESIDENT:
    case MC_ENOENT:
        res = mc ? "not-resident" : "unknown";
        break;
    default:
        break;
    }
    srv_cache_put(s, mc);
    return res;
}

json_t *api_version(struct srv *s, const struct mc_reg_model *m, const struct mc_reg_version *v)
{
    return jv_version(m, v, api_residency(s, v->name, v->version));
}

int api_gated_timeout_ms(struct srv *s, const char *name, size_t checks)
{
    const struct mc_reg_model *m;
    uint32_t health = 0;

    if (srv_lock(s) == 0) {
        m = mc_registry_model(s->reg, name);
        if (m && m->health)
            health = m->health->timeout_ms;
        srv_unlock(s);
    }
    if (checks > MC_ALIAS_TARGETS_MAX)
        checks = MC_ALIAS_TARGETS_MAX;
    return API_LOAD_WAIT_MS + (int)(checks * health) + API_CTL_MARGIN_MS;
}

bool api_ctl(struct req *rq, const char *op, unsigned nargs, const char *const *args, int timeout_ms,
             json_t **out, int *ret)
{
    int rc = cli_ctl_call(&rq->srv->cli, op, nargs, args, timeout_ms, out);

    if (rc)
        *ret = reply_mc_error(rq, rc);
    return rc == 0;
}

bool api_lock_actor(struct req *rq, int *ret)
{
    int rc = srv_lock(rq->srv);

    if (rc) {
        *ret = reply_mc_error(rq, rc);
        return false;
    }
    mc_registry_set_actor(rq->srv->reg, rq->who, rq->from);
    return true;
}

size_t api_split(const char *s, char *buf, size_t len, const char **out, size_t max)
{
    size_t n = 0;
    char *save = NULL;

    if (!s)
        return 0;
    snprintf(buf, len, "%s", s);
    for (char *t = strtok_r(buf, ",", &save); t && n < max; t = strtok_r(NULL, ",", &save))
        out[n++] = t;
    return n;
}

bool api_query_uint(struct req *rq, const char *key, uint64_t min, uint64_t max, uint64_t *out,
                    int *ret)
{
    const char *v = req_query(rq, key);
    char *end;
    unsigned long long x;

    if (!v)
        return true;
    errno = 0;
    x = strtoull(v, &end, 10);
    if (!*v || *end || errno || *v == '-' || *v == '+' || x < min || x > max) {
        *ret = reply_error(rq, 400, "bad_request",
                           "query argument %s=\"%.64s\" is not a whole number from %llu to %llu",
                           key, v, (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = x;
    return true;
}

int api_query_bool(struct req *rq, const char *key, bool def, int *ret)
{
    int b = req_query_bool(rq, key, def);

    if (b < 0)
        *ret = reply_error(rq, 400, "bad_request",
                           "query argument %s=\"%.64s\" is not a boolean: use true or false", key,
                           req_query(rq, key));
    return b;
}

/* ---- models and versions --------------------------------------------------- */

#define COND_MAX 16

/* GET /v1/models: models (no version filter) or versions (ref, tag, metric, status). */
static int list_models(struct req *rq)
{
    struct srv *s = rq->srv;
    const char *tags[COND_MAX], *metrics[COND_MAX], *st[8];
    char tbuf[2048], mbuf[2048], sbuf[256];
    const char *order = req_query(rq, "order");
    struct mc_search q = {.pattern = req_query(rq, "pattern"), .ref = req_query(rq, "ref")};
    size_t nst = api_split(req_query(rq, "status"), sbuf, sizeof(sbuf), st, 8);
    const struct mc_reg_version **vs = NULL;
    uint64_t limit = 0;
    size_t n = 0;
    json_t *arr;
    int ret = 0, rc;

    q.tags = tags;
    q.ntags = api_split(req_query(rq, "tag"), tbuf, sizeof(tbuf), tags, COND_MAX);
    q.metrics = metrics;
    q.nmetrics = api_split(req_query(rq, "metric"), mbuf, sizeof(mbuf), metrics, COND_MAX);
    if (!order || !strcmp(order, "version"))
        q.order = MC_ORDER_VERSION;
    else if (!strcmp(order, "time"))
        q.order = MC_ORDER_TIME;
    else if (!strcmp(order, "version-asc"))
        q.order = MC_ORDER_VERSION_ASC;
    else if (!strcmp(order, "time-asc"))
        q.order = MC_ORDER_TIME_ASC;
    else
        return reply_error(rq, 400, "bad_request",
                           "order=\"%.64s\" is not an order: use version, time, version-asc or "
                           "time-asc",
                           order);
    for (size_t i = 0; i < nst; i++) {
        enum mc_reg_status x;
        if (mc_reg_status_parse(st[i], &x) != 0)
            return reply_error(rq, 400, "bad_request",
                               "status=\"%.64s\" is not a status: use ready, failed, archived or "
                               "registering (several separated by commas)",
                               st[i]);
        q.status_mask |= 1u << x;
    }
    if (!api_query_uint(rq, "limit", 0, 1u << 30, &limit, &ret))
        return ret;
    q.limit = (size_t)limit;
    if ((rc = srv_lock(s)))
        return reply_mc_error(rq, rc);
    if (q.ref || q.ntags || q.nmetrics || q.status_mask) { /* versions, as `mcache ls --json` */
        rc = mc_registry_search(s->reg, &q, &vs, &n);
        if (rc) {
            srv_unlock(s);
            return reply_mc_error(rq, rc);
        }
        arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, api_version(s, mc_registry_model(s->reg, vs[i]->name), vs[i]));
        free(vs);
        srv_unlock(s);
        return reply_json(rq, 200, json_pack("{s:o}", "versions", arr));
    }
    /* models: a pattern alone goes through the search too, so the glob is the CLI's */
    q.order = MC_ORDER_VERSION;
    q.limit = 0;
    rc = mc_registry_search(s->reg, &q, &vs, &n);
    if (rc) {
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    arr = json_array();
    for (size_t i = 0; i < n && (!limit || json_array_size(arr) < limit); i++) {
        const struct mc_reg_model *m;
        const struct mc_reg_version *latest = NULL;
        json_t *aliases;

        if (i > 0 && !strcmp(vs[i - 1]->name, vs[i]->name))
            continue; /* one entry per model: the search lists each version */
        m = mc_registry_model(s->reg, vs[i]->name);
        if (!m)
            continue;
        mc_registry_resolve(s->reg, m->name, "latest", &latest);
        aliases = json_object();
        for (size_t k = 0; k < m->naliases; k++) {
            char t[1100];
            if (m->aliases[k].ntargets && mc_reg_targets_format(&m->aliases[k], t, sizeof(t)) == 0)
                json_object_set_new(aliases, m->aliases[k].alias, json_string(t));
        }
        json_array_append_new(arr, json_pack("{s:s, s:I, s:o, s:o}", "name", m->name, "versions",
                                             (json_int_t)m->nversions, "latest",
                                             jv_str(latest ? latest->version : NULL), "aliases",
                                             aliases));
    }
    free(vs);
    srv_unlock(s);
    return reply_json(rq, 200, json_pack("{s:o}", "models", arr));
}

/* GET /v1/models/{name}: as `mcache show NAME --json`. */
static int show_model(struct req *rq)
{
    struct srv *s = rq->srv;
    const struct mc_reg_model *m;
    const struct mc_reg_version *latest = NULL;
    uint64_t total = 0;
    json_t *arr;
    int ret = 0;

    if (!(m = api_lock_model(rq, &ret)))
        return ret;
    mc_registry_resolve(s->reg, m->name, "latest", &latest);
    arr = json_array();
    for (size_t i = m->nversions; i-- > 0;) { /* newest version first */
        total += m->versions[i]->size;
        json_array_append_new(arr, api_version(s, m, m->versions[i]));
    }
    json_t *j = json_pack("{s:s, s:s, s:o, s:I, s:o, s:o, s:o}", "kind", "model", "name", m->name,
                          "latest", jv_str(latest ? latest->version : NULL), "size",
                          (json_int_t)total, "versions", arr, "aliases", jv_aliases(m), "history",
                          jv_moves(m, NULL, NULL));
    srv_unlock(s);
    return reply_json(rq, 200, j);
}

/* GET /v1/models/{name}/versions: newest first, as `mcache show NAME --json` lists them. */
static int list_versions(struct req *rq)
{
    struct srv *s = rq->srv;
    const struct mc_reg_model *m;
    json_t *arr;
    int ret = 0;

    if (!(m = api_lock_model(rq, &ret)))
        return ret;
    arr = json_array();
    for (size_t i = m->nversions; i-- > 0;)
        json_array_append_new(arr, api_version(s, m, m->versions[i]));
    srv_unlock(s);
    return reply_json(rq, 200, json_pack("{s:o}", "versions", arr));
}

/* GET /v1/models/{name}/versions/{ref}: the version a reference picks now. */
static int show_version(struct req *rq)
{
    struct srv *s = rq->srv;
    const struct mc_reg_model *m;
    const struct mc_reg_version *v;
    json_t *j;
    int ret = 0, rc;

    if (!(m = api_lock_model(rq, &ret)))
        return ret;
    if ((rc = mc_registry_resolve(s->reg, m->name, req_param(rq, "ref"), &v))) {
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    j = api_version(s, m, v);
    srv_unlock(s);
    return reply_json(rq, 200, j);
}

/* ---- aliases ---------------------------------------------------------------- */

static int list_aliases(struct req *rq)
{
    struct srv *s = rq->srv;
    const struct mc_reg_model *m;
    json_t *j;
    int ret = 0;

    if (!(m = api_lock_model(rq, &ret)))
        return ret;
    j = json_pack("{s:s, s:o}", "name", m->name, "aliases", jv_aliases(m));
    srv_unlock(s);
    return reply_json(rq, 200, j);
}

/* GET .../aliases/{alias}/history: as `mcache history NAME ALIAS --json`. */
static int alias_history(struct req *rq)
{
    struct srv *s = rq->srv;
    const char *alias = req_param(rq, "alias");
    const struct mc_reg_model *m;
    json_t *j;
    size_t i;
    int ret = 0, rc;

    if (!(m = api_lock_model(rq, &ret)))
        return ret;
    for (i = 0; i < m->naliases && strcmp(m->aliases[i].alias, alias); i++)
        ;
    if (i == m->naliases) {
        rc = mc_err(MC_ENOENT, "model \"%s\" has no alias \"%s\" and never had one", m->name,
                    alias);
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    j = json_pack("{s:s, s:s, s:o}", "name", m->name, "alias", alias, "moves",
                  jv_moves(m, alias, NULL));
    srv_unlock(s);
    return reply_json(rq, 200, j);
}

/*
 * An alias change's answer, as `mcache alias --json` prints it. Not inlined:
 * GCC's -Wstring-compare then sees a constant action and calls the
 * rollback test always true.
 */
static __attribute__((noinline)) json_t *alias_report(const char *name, const char *alias, const char *from, const char *to,
                            const char *action, uint64_t gen, json_t *checks)
{
    json_t *j;

    if (from && to && !strcmp(from, to) && strcmp(action, "rollback"))
        action = "none";
    j = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "name", name, "alias", alias, "action", action,
                  "from", jv_str(from), "to", jv_str(to), "generation", (json_int_t)gen);
    if (checks)
        json_object_set(j, "checks", checks);
    return j;
}

/*
 * PUT .../aliases/{alias} {"targets", "why", "no_gate"}: set or move it in
 * one record. Through mcached's gate when mcached serves the store (as
 * `mcache alias`): every target loaded and verified, the model's health check
 * passed, then the registry written with this request's actor.
 */
static int put_alias(struct req *rq)
{
    static const char *const fields[] = {"targets", "why", "no_gate", NULL};
    struct srv *s = rq->srv;
    const char *name = req_param(rq, "name"), *alias = req_param(rq, "alias");
    json_t *b = rq->body, *t = json_object_get(b, "targets"), *res = NULL;
    json_t *jwhy = json_object_get(b, "why"), *jng = json_object_get(b, "no_gate");
    const char *words[MC_ALIAS_TARGETS_MAX + 1], *why = NULL;
    char text[1024] = "", wbuf[MC_ALIAS_TARGETS_MAX + 1][600], from[512], to[512],
        nodaemon[512] = "";
    struct mc_reg_weight w[MC_ALIAS_TARGETS_MAX];
    const struct mc_reg_model *m;
    const char *f;
    size_t n = 0, nw = 0;
    uint64_t gen = 0;
    bool no_gate = false;
    int ret = 0, rc;

    if (!b)
        return reply_error(rq, 400, "bad_request",
                           "PUT an alias needs a JSON body: {\"targets\": \"1.0.0\"} or "
                           "{\"targets\": {\"1.0.0\": 90, \"2.0.0\": 10}}");
    if (api_unknown_fields(rq, b, fields, &ret))
        return ret;
    if (jwhy && !json_is_null(jwhy) && !json_is_string(jwhy))
        return api_bad_type(rq, "why", "a string");
    if (jng && !json_is_boolean(jng))
        return api_bad_type(rq, "no_gate", "true or false");
    why = json_is_string(jwhy) ? json_string_value(jwhy) : NULL;
    no_gate = json_is_true(jng);
    if (json_is_string(t)) { /* "1.0.0=90 2.0.0=10": the CLI's words */
        char copy[1024], *save = NULL;
        snprintf(copy, sizeof(copy), "%s", json_string_value(t));
        for (char *x = strtok_r(copy, " \t", &save); x && n <= MC_ALIAS_TARGETS_MAX;
             x = strtok_r(NULL, " \t", &save)) {
            snprintf(wbuf[n], sizeof(wbuf[n]), "%s", x);
            words[n] = wbuf[n];
            n++;
        }
    } else if (json_is_object(t)) { /* {"1.0.0": 90, "2.0.0": 10} */
        const char *k;
        json_t *v;
        json_object_foreach(t, k, v)
        {
            if (n > MC_ALIAS_TARGETS_MAX)
                break;
            if (!json_is_integer(v))
                return api_bad_type(rq, "targets", "an object of versions to integer weights");
            snprintf(wbuf[n], sizeof(wbuf[n]), "%s=%lld", k, (long long)json_integer_value(v));
            words[n] = wbuf[n];
            n++;
        }
    } else {
        return api_bad_type(rq, "targets",
                            "a string (\"1.0.0\", \"1.0.0=90 2.0.0=10\") or an object "
                            "({\"1.0.0\": 90, \"2.0.0\": 10})");
    }
    if (n == 0)
        return reply_error(rq, 400, "bad_request", "\"targets\" names no version");
    if (n > MC_ALIAS_TARGETS_MAX)
        return reply_mc_error(rq, mc_err(MC_EINVAL, "alias: more than %d targets given; an alias "
                                                    "has at most %d",
                                         MC_ALIAS_TARGETS_MAX, MC_ALIAS_TARGETS_MAX));
    if ((rc = mc_name_check(name)) || (rc = mc_alias_check(alias)) ||
        (rc = mc_reg_targets_parse(words, n, w, &nw)))
        return reply_mc_error(rq, rc);
    for (size_t i = 0; i < n; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%s", i ? " " : "", words[i]);
    if (!no_gate && (rc = cli_ctl_serves_store(&s->cli)) == 0) {
        /* WHO and FROM reach the registry's record (docs/protocol.md) */
        const char *args[6] = {name, alias, text, why ? why : "", rq->who, rq->from};
        rc = cli_ctl_call(&s->cli, "alias", 6, args, api_gated_timeout_ms(s, name, n), &res);
        if (rc == 0) {
            json_t *j = alias_report(name, alias, jstr(res, "from"), jstr(res, "to"),
                                     jstr(res, "from") ? "move" : "create",
                                     (uint64_t)jint(res, "generation"), jget(res, "checks"));
            json_decref(res);
            return reply_json(rq, 200, j);
        }
    }
    if (!no_gate && rc != MC_ENODAEMON)
        return reply_mc_error(rq, rc);
    if (!no_gate) /* why mcached did not make the move; mc_err() below reuses its buffer */
        snprintf(nodaemon, sizeof(nodaemon), "%s", mc_last_error());
    if (!api_lock_actor(rq, &ret))
        return ret;
    if (!(m = api_model(rq, name, &ret))) {
        srv_unlock(s);
        return ret;
    }
    if (m->health && !no_gate) {
        rc = mc_err(MC_ENODAEMON,
                    "%s has a health check, which mcached runs before an alias moves, and no "
                    "mcached serves this store (%s); start one, or move the alias without the "
                    "check with \"no_gate\": true",
                    name, nodaemon);
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    f = cli_alias_targets(s->reg, name, alias, from, sizeof(from));
    rc = mc_registry_alias_set_weighted(s->reg, name, alias, w, nw, why, &gen);
    if (rc) {
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    json_t *j = alias_report(name, alias, f, cli_alias_targets(s->reg, name, alias, to, sizeof(to)),
                             f ? "move" : "create", gen, NULL);
    srv_unlock(s);
    return reply_json(rq, 200, j);
}

/* DELETE .../aliases/{alias} and POST .../rollback: the registry only (mcached follows). */
static int change_alias(struct req *rq, bool rollback)
{
    struct srv *s = rq->srv;
    const char *name = req_param(rq, "name"), *alias = req_param(rq, "alias");
    char from[512], to[512];
    const char *f;
    uint64_t gen = 0;
    json_t *j;
    int ret = 0, rc;

    if (!api_lock_actor(rq, &ret))
        return ret;
    if (!api_model(rq, name, &ret)) {
        srv_unlock(s);
        return ret;
    }
    f = cli_alias_targets(s->reg, name, alias, from, sizeof(from));
    rc = rollback ? mc_registry_alias_rollback(s->reg, name, alias, &gen)
                  : mc_registry_alias_remove(s->reg, name, alias, &gen);
    if (rc) {
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    j = alias_report(name, alias, f, cli_alias_targets(s->reg, name, alias, to, sizeof(to)),
                     rollback ? "rollback" : "remove", gen, NULL);
    srv_unlock(s);
    return reply_json(rq, 200, j);
}

static int delete_alias(struct req *rq)
{
    return change_alias(rq, false);
}

static int rollback_alias(struct req *rq)
{
    return change_alias(rq, true);
}

/* ---- the OpenAPI document ---------------------------------------------------- */

extern const unsigned char openapi_json[]; /* serve/openapi.json, by embed.cmake */
extern const size_t openapi_json_len;

static pthread_once_t openapi_once = PTHREAD_ONCE_INIT;
static char *openapi_text;

/*
 * The document as written, plus "x-mcache-routes": the server's own route
 * table (method, path, role, summary), so that a test can hold the two
 * against each other: every route documented, nothing documented that the
 * server does not route.
 */
static void openapi_build(void)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)openapi_json, openapi_json_len, 0, &je), *routes;

    if (!doc)
        return;
    routes = json_array();
    for (const struct route *const *g = srv_route_groups; *g; g++)
        for (const struct route *r = *g; r->method; r++)
            json_array_append_new(routes, json_pack("{s:s, s:s, s:s, s:s}", "method", r->method,
                                                    "path", r->pattern, "role", role_name(r->role),
                                                    "summary", r->summary ? r->summary : ""));
    json_object_set_new(doc, "x-mcache-routes", routes);
    /* the document describes this server: its version is the binary's */
    json_object_set_new(json_object_get(doc, "info"), "version", json_string(mc_version()));
    openapi_text = json_dumps(doc, JSON_INDENT(1));
    json_decref(doc);
}

static int openapi(struct req *rq)
{
    struct MHD_Response *resp;

    pthread_once(&openapi_once, openapi_build);
    if (!openapi_text)
        return reply_error(rq, 500, "internal", "the embedded OpenAPI document does not parse");
    resp = MHD_create_response_from_buffer(strlen(openapi_text), openapi_text,
                                           MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return reply_error(rq, 500, "internal", "out of memory");
    MHD_add_response_header(resp, "Content-Type", "application/json");
    return reply_response(rq, 200, resp);
}

const struct route h_registry_routes[] = {
    {"GET", "/v1/openapi.json", ROLE_NONE, ROUTE_OPEN, openapi, NULL, NULL,
     "this document (OpenAPI 3; x-mcache-routes is the server's route table)"},
    {"GET", "/v1/models", ROLE_READER, 0, list_models, NULL, NULL,
     "list models, or search versions (pattern, ref, tag, metric, status)"},
    {"GET", "/v1/models/{name}", ROLE_READER, 0, show_model, NULL, NULL,
     "a model: its versions, aliases and their history"},
    {"GET", "/v1/models/{name}/versions", ROLE_READER, 0, list_versions, NULL, NULL,
     "a model's versions, newest first"},
    {"GET", "/v1/models/{name}/versions/{ref}", ROLE_READER, 0, show_version, NULL, NULL,
     "the version a reference picks: exact version, alias, latest or range"},
    {"GET", "/v1/models/{name}/aliases", ROLE_READER, 0, list_aliases, NULL, NULL,
     "a model's aliases with their targets and weights"},
    {"GET", "/v1/models/{name}/aliases/{alias}/history", ROLE_READER, 0, alias_history, NULL, NULL,
     "every move of an alias, oldest first"},
    {"PUT", "/v1/models/{name}/aliases/{alias}", ROLE_PUBLISHER,
     ROUTE_JSON | ROUTE_AUDIT | ROUTE_SLOW, put_alias, NULL, NULL,
     "set or move an alias (gated through mcached when it runs)"},
    {"DELETE", "/v1/models/{name}/aliases/{alias}", ROLE_PUBLISHER, ROUTE_AUDIT, delete_alias, NULL,
     NULL, "remove an alias (kept in its history)"},
    {"POST", "/v1/models/{name}/aliases/{alias}/rollback", ROLE_PUBLISHER, ROUTE_AUDIT | ROUTE_SLOW,
     rollback_alias, NULL, NULL, "undo an alias's last move"},
    {0},
};
