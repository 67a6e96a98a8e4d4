/*
 * h_admin.c - rm, gc, fsck, verify, snapshots, tokens, audit (api helper).
 *
 * Answers are the CLI's --json objects (rm, gc, fsck, verify, snapshot).
 * Long reads (fsck, verify: they hash artifacts) run without the registry
 * lock, on copies of what they check.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/clock.h"
#include "common/err.h"
#include "serve/h_api.h"
#include "tools/jsonout.h"
#include "tools/verify_core.h"

/* ---- rm ------------------------------------------------------------------- */

/* DELETE /v1/models/{name}/versions/{version} and /v1/models/{name}: as `mcache rm --json`. */
static int rm(struct req *rq, bool whole)
{
    struct srv *s = rq->srv;
    const char *name = req_param(rq, "name"), *ver = whole ? NULL : req_param(rq, "version");
    const struct mc_reg_model *m;
    const struct mc_reg_version *v;
    json_t *removed;
    uint64_t gen = 0, bytes = 0;
    int ret = 0, rc, force = api_query_bool(rq, "force", false, &ret);

    if (force < 0)
        return ret;
    if (!api_lock_actor(rq, &ret))
        return ret;
    if (!(m = api_model(rq, name, &ret))) {
        srv_unlock(s);
        return ret;
    }
    /* note what goes before it goes (the pointers die with the change) */
    removed = json_array();
    for (size_t i = 0; whole && i < m->nversions; i++) {
        json_array_append_new(removed, jv_removed(m->versions[i]));
        bytes += m->versions[i]->size;
    }
    if (!whole && mc_registry_resolve(s->reg, name, ver, &v) == 0) {
        json_array_append_new(removed, jv_removed(v));
        bytes += v->size;
    }
    rc = whole ? mc_registry_remove_model(s->reg, name, force, &gen)
               : mc_registry_remove_version(s->reg, name, ver, force, &gen);
    srv_unlock(s);
    if (rc) {
        json_decref(removed);
        return reply_mc_error(rq, rc);
    }
    return reply_json(rq, 200,
                      json_pack("{s:s, s:o, s:I, s:I}", "name", name, "removed", removed, "bytes",
                                (json_int_t)bytes, "generation", (json_int_t)gen));
}

static int rm_version(struct req *rq)
{
    return rm(rq, false);
}

static int rm_model(struct req *rq)
{
    return rm(rq, true);
}

/* ---- gc, fsck ---------------------------------------------------------------- */

struct gc_list {
    json_t *arr;
    uint64_t bytes;
};

static void gc_each(void *arg, const struct mc_reg_version *v)
{
    struct gc_list *l = arg;

    json_array_append_new(l->arr, jv_removed(v));
    l->bytes += v->size;
}

/* A whole number field of the body, 1..max, or absent. false (after replying) if bad. */
static bool count_field(struct req *rq, const char *key, uint64_t max, uint64_t *out, int *ret)
{
    json_t *v = json_object_get(rq->body, key);

    *out = 0;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || (uint64_t)json_integer_value(v) > max) {
        *ret = reply_error(rq, 400, "bad_request",
                           "\"%s\" must be a whole number from 1 to %llu (aliased and pinned "
                           "versions are always kept); nothing was changed",
                           key, (unsigned long long)max);
        return false;
    }
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* POST /v1/gc {name, keep, days, dry_run}: as `mcache gc --json`. */
static int gc(struct req *rq)
{
    static const char *const fields[] = {"name", "keep", "days", "dry_run", NULL};
    struct srv *s = rq->srv;
    struct gc_list l = {0};
    json_t *b = rq->body, *name = json_object_get(b, "name"), *dry = json_object_get(b, "dry_run");
    struct mc_gc_opts o = {.each = gc_each, .arg = &l};
    uint64_t keep, days, gen = 0;
    size_t n = 0;
    int ret = 0, rc;

    if (b && api_unknown_fields(rq, b, fields, &ret))
        return ret;
    if (name && !json_is_null(name) && !json_is_string(name))
        return api_bad_type(rq, "name", "a model's name (or null: every model)");
    if (dry && !json_is_boolean(dry))
        return api_bad_type(rq, "dry_run", "true or false");
    if (!count_field(rq, "keep", 1u << 30, &keep, &ret) ||
        !count_field(rq, "days", 1u << 30, &days, &ret))
        return ret;
    if (!keep && !days)
        return reply_error(rq, 400, "bad_request",
                           "gc needs a rule: \"keep\" (the N most recently pushed versions of "
                           "each model) and/or \"days\" (versions younger than D days)");
    o.name = json_string_value(name);
    o.keep = (size_t)keep;
    o.days = (uint32_t)days;
    o.dry_run = json_is_true(dry);
    if (!api_lock_actor(rq, &ret))
        return ret;
    l.arr = json_array();
    rc = mc_registry_gc(s->reg, &o, &n, &gen);
    if (!gen)
        gen = mc_registry_generation(s->reg);
    srv_unlock(s);
    if (rc) {
        json_decref(l.arr);
        return reply_mc_error(rq, rc);
    }
    return reply_json(rq, 200,
                      json_pack("{s:b, s:o, s:I, s:I, s:I}", "dry_run", o.dry_run, "removed", l.arr,
                                "count", (json_int_t)n, "bytes", (json_int_t)l.bytes,
                                "generation", (json_int_t)gen));
}

static void collect(void *arg, const char *msg)
{
    json_array_append_new(arg, json_string(msg));
}

/* POST /v1/fsck {checksums}: as `mcache fsck --json` (no repair over HTTP: run it on the host). */
static int fsck(struct req *rq)
{
    static const char *const fields[] = {"checksums", NULL};
    json_t *b = rq->body, *sums = json_object_get(b, "checksums"), *problems;
    char dir[PATH_MAX];
    size_t n = 0;
    int ret = 0, rc;

    if (b && api_unknown_fields(rq, b, fields, &ret))
        return ret;
    if (sums && !json_is_boolean(sums))
        return api_bad_type(rq, "checksums", "true or false");
    if ((rc = srv_lock(rq->srv)))
        return reply_mc_error(rq, rc);
    snprintf(dir, sizeof(dir), "%s", mc_registry_dir(rq->srv->reg));
    srv_unlock(rq->srv);
    problems = json_array();
    {
        /* the registry this server opened: a shared one's records are in its database */
        struct mc_registry_opts ro = cli_registry_opts(&rq->srv->cli, 0);

        rc = mc_registry_check_opts(
            dir, &ro, MC_CHECK_ARTIFACTS | (json_is_true(sums) ? MC_CHECK_CHECKSUMS : 0), collect,
            problems, &n);
    }
    if (rc && rc != MC_ECORRUPT && rc != MC_EIO) {
        json_decref(problems);
        return reply_mc_error(rq, rc);
    }
    return reply_json(rq, 200,
                      json_pack("{s:s, s:b, s:o, s:b, s:[]}", "store", dir, "clean", rc == 0,
                                "problems", problems, "repaired", 0, "repair"));
}

/* ---- verify ---------------------------------------------------------------- */

struct check {
    char name[512], version[512], path[4096], checksum[64];
    uint64_t size;
};

static json_t *result(const struct check *c, const char *where, const char *res,
                      const char *actual, double secs, const char *msg)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:f, s:o}", "name", c->name, "version",
                     c->version, "where", where, "result", res, "expected", c->checksum, "actual",
                     jv_str(actual), "size", (json_int_t)c->size, "seconds", secs, "message",
                     jv_str(msg));
}

/* The artifact's hash against the manifest, by `mcache verify`'s own check (local or remote). */
static json_t *check_disk(struct srv *s, const struct check *c, uint64_t *bytes)
{
    struct mc_reg_version v = {.name = c->name,
                               .version = c->version,
                               .path = c->path,
                               .checksum = c->checksum,
                               .size = c->size};
    struct cli_verify o = {0};
    struct mc_registry *r = srv_reg_hold(s); /* without the lock: reads only (http.h) */

    cli_verify_artifact(r, &v, &o);
    srv_reg_put(s, r);
    if (!strcmp(o.result, "ok") || !strcmp(o.result, "mismatch"))
        srv_artifact_mark(c->checksum, o.result[0] == 'm');
    if (o.actual[0])
        *bytes += c->size;
    return result(c, "disk", o.result, o.actual[0] ? o.actual : NULL, o.seconds,
                  o.message[0] ? o.message : NULL);
}

/* The resident bytes' hash against the manifest, in the held cache mc (or NULL). */
static json_t *check_in_arena(mc_cache *mc, const struct check *c, uint64_t *bytes)
{
    uint64_t t0 = mc_mono_ns();
    char got[64], msg[2048];
    XXH3_state_t *st;
    mc_model *m;
    json_t *r;
    int rc = mc ? mc_get(mc, c->name, c->version, &m) : MC_ENOENT;

    if (rc == MC_ENOTRESIDENT || rc == MC_ENOENT)
        return result(c, "arena", "not-resident", NULL, 0, NULL);
    if (rc) {
        snprintf(msg, sizeof(msg), "%s@%s in the arena: %s", c->name, c->version, mc_last_error());
        return result(c, "arena", rc == MC_EFAILED ? "failed" : "error", NULL, 0, msg);
    }
    st = XXH3_createState();
    if (!st) {
        mc_release(m);
        return result(c, "arena", "error", NULL, 0, "out of memory");
    }
    XXH3_128bits_reset(st);
    XXH3_128bits_update(st, mc_model_data(m), mc_model_size(m));
    *bytes += mc_model_size(m);
    cli_xxh3_checksum(st, got);
    XXH3_freeState(st);
    if (strcmp(got, c->checksum) || strcmp(mc_model_checksum(m), c->checksum)) {
        snprintf(msg, sizeof(msg),
                 "%s@%s: the resident bytes hash to %s (the arena's record says %s) but the "
                 "manifest says %s; evict it and load it again",
                 c->name, c->version, got, mc_model_checksum(m), c->checksum);
        r = result(c, "arena", "mismatch", got, (double)(mc_mono_ns() - t0) / 1e9, msg);
    } else {
        r = result(c, "arena", "ok", got, (double)(mc_mono_ns() - t0) / 1e9, NULL);
    }
    mc_release(m);
    return r;
}

static json_t *check_resident(struct srv *s, const struct check *c, uint64_t *bytes)
{
    mc_cache *mc = srv_cache_hold(s);
    json_t *r = check_in_arena(mc, c, bytes);

    srv_cache_put(s, mc);
    return r;
}

/* POST /v1/models/{name}/versions/{ref}/verify?resident=: as `mcache verify NAME@REF --json`. */
static int verify(struct req *rq)
{
    struct srv *s = rq->srv;
    const struct mc_reg_version *v;
    struct check c;
    uint64_t t0 = mc_mono_ns(), bytes = 0;
    json_t *results;
    size_t failed = 0, i;
    json_t *e;
    int ret = 0, rc, resident = api_query_bool(rq, "resident", false, &ret);

    if (resident < 0)
        return ret;
    if ((rc = srv_lock(s)))
        return reply_mc_error(rq, rc);
    if (!api_model(rq, req_param(rq, "name"), &ret)) {
        srv_unlock(s);
        return ret;
    }
    if ((rc = mc_registry_resolve(s->reg, req_param(rq, "name"), req_param(rq, "ref"), &v))) {
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    snprintf(c.name, sizeof(c.name), "%s", v->name);
    snprintf(c.version, sizeof(c.version), "%s", v->version);
    snprintf(c.path, sizeof(c.path), "%s", v->path);
    snprintf(c.checksum, sizeof(c.checksum), "%s", v->checksum);
    c.size = v->size;
    srv_unlock(s);
    results = json_array();
    json_array_append_new(results, check_disk(s, &c, &bytes));
    if (resident)
        json_array_append_new(results, check_resident(s, &c, &bytes));
    json_array_foreach(results, i, e)
    {
        const char *r = jstr_or(e, "result", "");
        failed += strcmp(r, "ok") && strcmp(r, "not-resident");
    }
    return reply_json(rq, 200,
                      json_pack("{s:b, s:I, s:I, s:I, s:f, s:o}", "ok", failed == 0, "checked",
                                (json_int_t)json_array_size(results), "failed", (json_int_t)failed,
                                "bytes", (json_int_t)bytes, "seconds",
                                (double)(mc_mono_ns() - t0) / 1e9, "results", results));
}

/* ---- snapshots -------------------------------------------------------------- */

/* GET /v1/snapshots: every snapshot with what it records. */
static int snapshots(struct req *rq)
{
    struct srv *s = rq->srv;
    json_t *arr;
    int rc;

    if ((rc = srv_lock(s)))
        return reply_mc_error(rq, rc);
    arr = json_array();
    for (size_t i = 0; i < mc_registry_snapshot_count(s->reg); i++)
        json_array_append_new(arr, jv_snapshot(mc_registry_snapshot_at(s->reg, i), true));
    srv_unlock(s);
    return reply_json(rq, 200, json_pack("{s:o}", "snapshots", arr));
}

/* POST /v1/snapshots {"name"}: as `mcache snapshot create NAME --json`. */
static int snapshot_create(struct req *rq)
{
    static const char *const fields[] = {"name", NULL};
    struct srv *s = rq->srv;
    json_t *name = json_object_get(rq->body, "name"), *o;
    uint64_t gen = 0;
    int ret = 0, rc;

    if (!rq->body)
        return reply_error(rq, 400, "bad_request",
                           "a snapshot needs a JSON body: {\"name\": \"before-release\"}");
    if (api_unknown_fields(rq, rq->body, fields, &ret))
        return ret;
    if (!json_is_string(name))
        return api_bad_type(rq, "name", "a string (the snapshot's name)");
    if (!api_lock_actor(rq, &ret))
        return ret;
    rc = mc_registry_snapshot_create(s->reg, json_string_value(name), &gen);
    if (rc) {
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    o = jv_snapshot(cli_snapshot_find(s->reg, json_string_value(name)), true);
    srv_unlock(s);
    json_object_set_new(o, "action", json_string("create"));
    json_object_set_new(o, "generation", json_integer((json_int_t)gen));
    return reply_json(rq, 201, o);
}

/* POST /v1/snapshots/{snap}/restore?no_gate=: as `mcache snapshot restore NAME --json`. */
static int snapshot_restore(struct req *rq)
{
    struct srv *s = rq->srv;
    json_t *res;
    int ret = 0, rc, no_gate = api_query_bool(rq, "no_gate", false, &ret);

    if (no_gate < 0)
        return ret;
    if (!api_lock_actor(rq, &ret))
        return ret;
    rc = cli_snapshot_restore(s->reg, req_param(rq, "snap"), no_gate, &res);
    srv_unlock(s);
    if (rc)
        return reply_mc_error(rq, rc);
    return reply_json(rq, 200, res);
}

/*
 * A removal by the name in path parameter param (a snapshot, a token): one
 * registry call under the lock, answered as the CLI's --json answers it.
 */
static int remove_named(struct req *rq, const char *param,
                        int (*remove)(struct mc_registry *, const char *, uint64_t *))
{
    struct srv *s = rq->srv;
    const char *name = req_param(rq, param);
    uint64_t gen = 0;
    int ret = 0, rc;

    if (!api_lock_actor(rq, &ret))
        return ret;
    rc = remove(s->reg, name, &gen);
    srv_unlock(s);
    if (rc)
        return reply_mc_error(rq, rc);
    return reply_json(rq, 200, json_pack("{s:s, s:s, s:I}", "name", name, "action", "remove",
                                         "generation", (json_int_t)gen));
}

/* DELETE /v1/snapshots/{snap}. */
static int snapshot_remove(struct req *rq)
{
    return remove_named(rq, "snap", mc_registry_snapshot_remove);
}

/* ---- tokens ------------------------------------------------------------------- */

/* GET /v1/tokens: names and roles, never the secrets (only their hashes are stored). */
static int tokens(struct req *rq)
{
    struct srv *s = rq->srv;
    json_t *arr;
    int rc;

    if ((rc = srv_lock(s)))
        return reply_mc_error(rq, rc);
    arr = json_array();
    for (size_t i = 0; i < mc_registry_token_count(s->reg); i++)
        json_array_append_new(arr, jv_token(mc_registry_token_at(s->reg, i)));
    srv_unlock(s);
    return reply_json(rq, 200, json_pack("{s:o}", "tokens", arr));
}

/* POST /v1/tokens {"name", "role"} -> 201 {"name", "role", "token"}: the secret, shown once. */
static int token_add(struct req *rq)
{
    static const char *const fields[] = {"name", "role", NULL};
    struct srv *s = rq->srv;
    json_t *name = json_object_get(rq->body, "name"), *role = json_object_get(rq->body, "role");
    char secret[MC_TOKEN_LEN + 1];
    uint64_t gen = 0;
    int ret = 0, rc;

    if (!rq->body)
        return reply_error(rq, 400, "bad_request",
                           "a token needs a JSON body: {\"name\": \"ci\", \"role\": \"publisher\"}");
    if (api_unknown_fields(rq, rq->body, fields, &ret))
        return ret;
    if (!json_is_string(name))
        return api_bad_type(rq, "name", "a string");
    if (!json_is_string(role))
        return api_bad_type(rq, "role", "\"reader\", \"publisher\" or \"admin\"");
    if (!api_lock_actor(rq, &ret))
        return ret;
    rc = mc_registry_token_add(s->reg, json_string_value(name), json_string_value(role), secret,
                               &gen);
    srv_unlock(s);
    if (rc)
        return reply_mc_error(rq, rc);
    json_t *j = json_pack("{s:O, s:O, s:s, s:I}", "name", name, "role", role, "token", secret,
                          "generation", (json_int_t)gen);
    memset(secret, 0, sizeof(secret));
    return reply_json(rq, 201, j);
}

static int token_remove(struct req *rq)
{
    return remove_named(rq, "tname", mc_registry_token_remove);
}

/* ---- audit -------------------------------------------------------------------- */

/* GET /v1/audit?limit=&model=: the newest entries, oldest first. */
static int audit(struct req *rq)
{
    struct srv *s = rq->srv;
    const char *model = req_query(rq, "model");
    uint64_t limit = 100;
    size_t n, first, m = 0;
    json_t *arr;
    int ret = 0, rc;

    if (!api_query_uint(rq, "limit", 1, MC_REG_AUDIT_MAX, &limit, &ret))
        return ret;
    if ((rc = srv_lock(s)))
        return reply_mc_error(rq, rc);
    n = mc_registry_audit_count(s->reg);
    for (first = n; first > 0 && m < limit; first--) {
        const struct mc_reg_audit *a = mc_registry_audit_at(s->reg, first - 1);
        m += !model || cli_audit_names(a->what, model);
    }
    arr = json_array();
    for (size_t i = first; i < n; i++) {
        const struct mc_reg_audit *a = mc_registry_audit_at(s->reg, i);
        if (model && !cli_audit_names(a->what, model))
            continue;
        json_array_append_new(arr, jv_audit(a));
    }
    srv_unlock(s);
    return reply_json(rq, 200, json_pack("{s:o}", "audit", arr));
}

const struct route h_admin_routes[] = {
    {"DELETE", "/v1/models/{name}/versions/{version}", ROLE_ADMIN, ROUTE_AUDIT, rm_version, NULL,
     NULL, "remove a version and its artifact (?force=true: even if aliased or pinned)"},
    {"DELETE", "/v1/models/{name}", ROLE_ADMIN, ROUTE_AUDIT, rm_model, NULL, NULL,
     "remove a model with every version (?force=true)"},
    {"POST", "/v1/gc", ROLE_ADMIN, ROUTE_JSON | ROUTE_AUDIT | ROUTE_SLOW, gc, NULL, NULL,
     "retention: remove old versions (never aliased or pinned ones); dry_run to see"},
    {"POST", "/v1/fsck", ROLE_ADMIN, ROUTE_JSON | ROUTE_SLOW, fsck, NULL, NULL,
     "check the store's manifest and artifacts"},
    {"POST", "/v1/models/{name}/versions/{ref}/verify", ROLE_ADMIN, ROUTE_SLOW, verify, NULL, NULL,
     "re-hash a version's artifact (?resident=true: and its resident bytes)"},
    {"GET", "/v1/snapshots", ROLE_READER, 0, snapshots, NULL, NULL,
     "alias snapshots and what each records"},
    {"POST", "/v1/snapshots", ROLE_PUBLISHER, ROUTE_JSON | ROUTE_AUDIT, snapshot_create, NULL, NULL,
     "record every alias's targets under a name"},
    {"POST", "/v1/snapshots/{snap}/restore", ROLE_PUBLISHER, ROUTE_AUDIT, snapshot_restore, NULL,
     NULL, "move every recorded alias back, all or none (?no_gate=true)"},
    {"DELETE", "/v1/snapshots/{snap}", ROLE_ADMIN, ROUTE_AUDIT, snapshot_remove, NULL, NULL,
     "remove a snapshot"},
    {"GET", "/v1/tokens", ROLE_ADMIN, 0, tokens, NULL, NULL, "the tokens' names and roles"},
    {"POST", "/v1/tokens", ROLE_ADMIN, ROUTE_JSON | ROUTE_AUDIT, token_add, NULL, NULL,
     "add a token; its secret is in the answer, once"},
    {"DELETE", "/v1/tokens/{tname}", ROLE_ADMIN, ROUTE_AUDIT, token_remove, NULL, NULL,
     "remove a token"},
    {"GET", "/v1/audit", ROLE_READER, 0, audit, NULL, NULL,
     "the audit log: every change and refused attempt (?limit=&model=)"},
    {0},
};
