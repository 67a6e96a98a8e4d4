/*
 * h_artifacts.c - push (streaming upload) and download (api helper).
 *
 * PUSH. PUT /v1/models/{name}/versions/{version} streams the body into the
 * store with mc_registry_upload_*: begun (name, version, metadata checked;
 * 409 if the version exists) at the first piece, before the rest is read;
 * each piece written and hashed as it arrives without the registry lock,
 * so the memory used does not grow with the upload; committed (checksum
 * compared with Mcache-Checksum: 422 and nothing registered on a
 * mismatch) in one registry record, as `mcache push`. libmicrohttpd hands
 * the body over in pieces no larger than a connection's read buffer (a
 * part of its small memory pool, server.c): the pieces are gathered into
 * one buffer of UPLOAD_GATHER bytes per upload, allocated at its first
 * piece, and written when it is full and at the end, so the store sees
 * large writes and an upload's memory stays one buffer whatever its size.
 * With --artifacts s3://... the registry's upload is a multipart upload to
 * the object store (content-addressed, registered only once complete); a
 * store that fails meanwhile makes the push 503, nothing registered.
 *
 * DOWNLOAD. GET|HEAD .../versions/{ref}/artifact resolves the reference to
 * an exact version under the lock, then serves the bytes without it: from
 * the arena when the version is resident (the model is held until
 * libmicrohttpd frees the response, so an alias move or an eviction while
 * it is sent changes nothing: the arena never reuses held memory), else
 * from the store's artifact file (sendfile), else from the object store
 * (remote_response: streamed in bounded windows). ETag is the checksum; a single
 * Range is honoured (206), an unsatisfiable one is 416, several ranges get
 * the whole body (200, as RFC 9110 allows).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/hex.h"
#include "index/name.h"
#include "serve/core.h"
#include "serve/h_api.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"
#include "tools/verify_core.h"

/* Build a JSON response with extra headers (pairs, NULL-terminated); consumes j. */
static int reply_json_with(struct req *rq, unsigned status, json_t *j, ...)
{
    char *body = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(15));
    struct MHD_Response *resp;
    const char *k, *v;
    va_list ap;

    json_decref(j);
    if (!body)
        return reply_error(rq, 500, "internal", "out of memory");
    resp = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return reply_error(rq, 500, "internal", "out of memory");
    }
    MHD_add_response_header(resp, "Content-Type", "application/json");
    va_start(ap, j);
    while ((k = va_arg(ap, const char *)) && (v = va_arg(ap, const char *)))
        MHD_add_response_header(resp, k, v);
    va_end(ap);
    return reply_response(rq, status, resp);
}

/* Percent-encode a path segment ("org/llama" -> "org%2Fllama"). */
static void encode_segment(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;

    for (; *s && n + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            strchr("-._~+", c)) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
}

/* ---- push ---------------------------------------------------------------- */

#define META_MAX 64 /* metrics, params, tags each */
#define PUSH_ALIASES_MAX 8
#define UPLOAD_GATHER (1u << 20) /* bytes gathered per write to the store */

struct upload {
    struct mc_reg_upload *u;
    char *gather; /* UPLOAD_GATHER bytes, from the first piece; NULL before */
    size_t gathered;
    /* a refusal found while the body streams, answered by the handler */
    unsigned status; /* 0: none */
    int rc;          /* an MC_E* code (status 0 then means: as reply_mc_error maps it) */
    const char *code;
    char msg[2048];
    /* what begin needs to stay alive: the parsed Mcache-Meta and arrays into it */
    json_t *meta_json;
    struct mc_reg_meta meta;
    struct mc_push_opts opts;
    struct mc_reg_metric metrics[META_MAX];
    struct mc_reg_kv params[META_MAX], tags[META_MAX];
    const char *aliases[PUSH_ALIASES_MAX];
    size_t naliases;
    bool gated; /* the aliases move through mcached's gate (the model has a health check) */
    char expect[80];
    bool has_expect;
};

static int up_fail(struct upload *st, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int up_fail(struct upload *st, unsigned status, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(st->msg, sizeof(st->msg), fmt, ap);
    va_end(ap);
    st->status = status;
    st->code = code;
    st->rc = MC_EINVAL;
    return MC_EINVAL;
}

/* An MC_E* refusal with mc_last_error()'s message, answered as reply_mc_error() would. */
static int up_fail_rc(struct upload *st, int rc)
{
    snprintf(st->msg, sizeof(st->msg), "%s", mc_last_error());
    st->status = 0;
    st->rc = rc;
    return rc;
}

static int up_reply(struct req *rq, struct upload *st)
{
    if (st->status)
        return reply_error(rq, st->status, st->code, "%s", st->msg);
    return reply_mc_error(rq, mc_err(st->rc, "%s", st->msg));
}

static const char *const meta_fields[] = {"description", "framework", "precision", "device",
                                          "parent",      "source",    "metrics",   "params",
                                          "tags",        "preload",   "pin",       "aliases",
                                          NULL};

/* Mcache-Meta, strictly: JSON, known fields, the right types. */
static int parse_meta(struct upload *st, const char *text)
{
    json_error_t je;
    const char *key;
    json_t *v;
    const char **strs[] = {&st->meta.description, &st->meta.framework, &st->meta.precision,
                           &st->meta.device,      &st->meta.parent,    &st->meta.source};

    st->meta_json = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!st->meta_json)
        return up_fail(st, 400, "bad_json",
                       "the Mcache-Meta header is not JSON: %s (at character %d); send an object "
                       "such as {\"framework\": \"pytorch\", \"tags\": {\"env\": \"prod\"}}",
                       je.text, je.position);
    if (!json_is_object(st->meta_json))
        return up_fail(st, 400, "bad_json", "the Mcache-Meta header must be a JSON object");
    json_object_foreach(st->meta_json, key, v)
    {
        size_t i;
        char list[400] = "";

        for (i = 0; meta_fields[i] && strcmp(meta_fields[i], key); i++)
            ;
        if (!meta_fields[i]) {
            for (i = 0; meta_fields[i]; i++)
                snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                         meta_fields[i]);
            return up_fail(st, 400, "unknown_field",
                           "Mcache-Meta: unknown field \"%.64s\" (the fields are: %s); nothing "
                           "was pushed",
                           key, list);
        }
        if (i < 6) { /* the strings */
            if (!json_is_string(v) && !json_is_null(v))
                return up_fail(st, 400, "bad_request", "Mcache-Meta: \"%s\" must be a string",
                               key);
            *strs[i] = json_string_value(v);
        } else if (!strcmp(key, "metrics") || !strcmp(key, "params") || !strcmp(key, "tags")) {
            bool num = key[0] == 'm';
            size_t *n = num ? &st->meta.nmetrics : key[0] == 'p' ? &st->meta.nparams
                                                                : &st->meta.ntags;
            struct mc_reg_kv *kv = key[0] == 'p' ? st->params : st->tags;
            const char *k;
            json_t *x;

            if (!json_is_object(v))
                return up_fail(st, 400, "bad_request",
                               "Mcache-Meta: \"%s\" must be an object of %s", key,
                               num ? "names to numbers" : "names to strings");
            json_object_foreach(v, k, x)
            {
                if (*n == META_MAX)
                    return up_fail(st, 400, "bad_request", "Mcache-Meta: more than %d %s",
                                   META_MAX, key);
                if (num && !json_is_number(x))
                    return up_fail(st, 400, "bad_request",
                                   "Mcache-Meta: metric \"%.64s\" must be a number", k);
                if (!num && !json_is_string(x))
                    return up_fail(st, 400, "bad_request",
                                   "Mcache-Meta: %s \"%.64s\" must be a string", key, k);
                if (num)
                    st->metrics[*n] = (struct mc_reg_metric){k, json_number_value(x)};
                else
                    kv[*n] = (struct mc_reg_kv){k, json_string_value(x)};
                (*n)++;
            }
        } else if (!strcmp(key, "preload") || !strcmp(key, "pin")) {
            if (!json_is_boolean(v))
                return up_fail(st, 400, "bad_request", "Mcache-Meta: \"%s\" must be true or false",
                               key);
            if (key[1] == 'r')
                st->opts.preload = json_is_true(v);
            else
                st->opts.pinned = json_is_true(v);
        } else { /* aliases */
            size_t k;
            json_t *x;
            if (!json_is_array(v) || json_array_size(v) > PUSH_ALIASES_MAX)
                return up_fail(st, 400, "bad_request",
                               "Mcache-Meta: \"aliases\" must be an array of at most %d alias "
                               "names",
                               PUSH_ALIASES_MAX);
            json_array_foreach(v, k, x)
            {
                int rc;
                if (!json_is_string(x))
                    return up_fail(st, 400, "bad_request",
                                   "Mcache-Meta: \"aliases\" must hold strings");
                if ((rc = mc_alias_check(json_string_value(x))))
                    return up_fail_rc(st, rc);
                st->aliases[st->naliases++] = json_string_value(x);
            }
        }
    }
    st->meta.metrics = st->metrics;
    st->meta.params = st->params;
    st->meta.tags = st->tags;
    return 0;
}

/* Everything that can be refused before a byte is stored; then the upload begins. */
static int push_begin(struct req *rq, struct upload *st)
{
    struct srv *s = rq->srv;
    const char *name = req_param(rq, "name"), *version = req_param(rq, "version");
    const char *ct = req_header(rq, "Content-Type"), *meta = req_header(rq, "Mcache-Meta");
    const char *sum = req_header(rq, "Mcache-Checksum"), *len = req_header(rq, "Content-Length");
    const struct mc_reg_model *m;
    uint64_t hint = 0;
    int rc;

    st->opts.meta = &st->meta;
    if (ct && !http_is_type(ct, "application/octet-stream"))
        return up_fail(st, 415, "unsupported_media_type",
                       "a push's body is the artifact's bytes: send it as "
                       "Content-Type: application/octet-stream, not \"%.80s\"",
                       ct);
    if (meta && (rc = parse_meta(st, meta)))
        return rc;
    {
        char down[1536];
        if (srv_registry_down(s, down, sizeof(down)))
            return up_fail(st, 503, "unavailable", "%s; nothing was pushed", down);
    }
    if (sum) {
        if (!mc_checksum_valid(sum, true)) /* either case, as the registry takes it */
            return up_fail(st, 400, "bad_request",
                           "Mcache-Checksum \"%.80s\" is not a checksum: write xxh3-128: and 32 "
                           "hex digits",
                           sum);
        snprintf(st->expect, sizeof(st->expect), "%s", sum);
        st->has_expect = true;
    }
    if (len) {
        char *end;
        errno = 0;
        hint = strtoull(len, &end, 10);
        if (errno || *end)
            hint = 0;
    }
    if (s->max_upload && hint > s->max_upload)
        return up_fail(st, 413, "too_large",
                       "%s@%s is %" PRIu64 " bytes; this server takes uploads of at most %" PRIu64
                       " bytes (mcache-serve --max-upload)",
                       name, version, hint, s->max_upload);
    if ((rc = mc_registry_push_check(name, version, &st->opts)))
        return up_fail_rc(st, rc);
    if ((rc = srv_lock(s)))
        return up_fail_rc(st, rc);
    m = mc_registry_model(s->reg, name);
    st->gated = st->naliases && m && m->health;
    srv_unlock(s);
    /* A model with a health check: its aliases move through mcached's gate, as `mcache push --alias`. */
    if (st->gated && (rc = cli_ctl_serves_store(&s->cli)) != 0) {
        char why[512];
        snprintf(why, sizeof(why), "%s", mc_last_error());
        return up_fail_rc(st, mc_err(rc == MC_ENODAEMON ? MC_ENODAEMON : rc,
                                     "%s has a health check, which mcached runs before an alias "
                                     "moves, and no mcached serves this store (%s); nothing was "
                                     "pushed: start mcached, or push without \"aliases\"",
                                     name, why));
    }
    if ((rc = srv_lock(s)))
        return up_fail_rc(st, rc);
    rc = mc_registry_upload_begin(s->reg, name, version, &st->opts, hint, &st->u);
    srv_unlock(s);
    if (rc) {
        st->u = NULL;
        return up_fail_rc(st, rc);
    }
    return 0;
}

static struct upload *upload_state(struct req *rq)
{
    if (!rq->state) {
        struct upload *st = calloc(1, sizeof(*st));
        if (!st)
            return NULL;
        rq->state = st;
        push_begin(rq, st);
    }
    return rq->state;
}

/*
 * Drop a begun upload (the staged file goes). Under the registry's mutex but
 * without srv_lock()'s refresh: abort reads no state, and must happen even
 * when the store cannot be read.
 */
static void upload_drop(struct req *rq, struct upload *st)
{
    if (!st->u)
        return;
    pthread_mutex_lock(&rq->srv->reg_lock);
    mc_registry_upload_abort(rq->srv->reg, st->u);
    pthread_mutex_unlock(&rq->srv->reg_lock);
    st->u = NULL;
}

/* A write or finish that failed: its message says the push stopped and nothing was registered. */
static int push_stopped(struct req *rq, int rc)
{
    char m[1536]; /* a copy: mc_err() writes where mc_last_error() points */

    snprintf(m, sizeof(m), "%s", mc_last_error());
    if (strstr(m, "nothing was registered"))
        return rc;
    return mc_err(rc, "the push of %s@%s stopped: %s; nothing was registered",
                  req_param(rq, "name"), req_param(rq, "version"), m);
}

/* Write bytes to the store; 0, or the MC_E* code with the upload dropped (its message kept). */
static int upload_write(struct req *rq, struct upload *st, const char *data, size_t n)
{
    int rc = mc_registry_upload_write(st->u, data, n);

    if (rc) {
        up_fail_rc(st, push_stopped(rq, rc));
        upload_drop(rq, st);
        mc_err(rc, "%s", st->msg);
    }
    return rc;
}

/* Write what is gathered (a full buffer, or the rest at the end). */
static int upload_flush(struct req *rq, struct upload *st)
{
    size_t n = st->gathered;

    st->gathered = 0;
    return n ? upload_write(rq, st, st->gather, n) : 0;
}

/* A piece of the body: gathered, written once the buffer is full (a piece as large, directly). */
static int upload_piece(struct req *rq, struct upload *st, const char *data, size_t n)
{
    int rc;

    if (!st->gathered && n >= UPLOAD_GATHER)
        return upload_write(rq, st, data, n);
    if (!st->gather && !(st->gather = malloc(UPLOAD_GATHER)))
        return up_fail_rc(st, mc_err(MC_ENOMEM, "out of memory for an upload's buffer (%u bytes)",
                                     UPLOAD_GATHER));
    while (n) {
        size_t k = UPLOAD_GATHER - st->gathered < n ? UPLOAD_GATHER - st->gathered : n;

        memcpy(st->gather + st->gathered, data, k);
        st->gathered += k;
        data += k;
        n -= k;
        if (st->gathered == UPLOAD_GATHER && (rc = upload_flush(rq, st)))
            return rc;
    }
    return 0;
}

/*
 * The core calls this first with no data, once the caller is authorized and
 * before the body is read: everything that can refuse the push is checked
 * and the upload begun then, so a refusal (409 exists, 400 bad metadata,
 * 415) is the answer before a byte of the body is sent. Later calls gather
 * each piece and write, without the registry lock.
 */
static int push_body(struct req *rq, const char *data, size_t n)
{
    struct upload *st = upload_state(rq);

    if (!st)
        return mc_err(MC_ENOMEM, "out of memory");
    if (st->rc) {
        if (!data && !rq->replied)
            up_reply(rq, st);
        return st->rc;
    }
    if (!data)
        return 0;
    return upload_piece(rq, st, data, n); /* an error: the core replies with its message */
}

/* Move the new version's aliases: gated through mcached, or the registry directly. */
static int push_aliases(struct req *rq, struct upload *st, uint64_t *gen)
{
    struct srv *s = rq->srv;
    const char *name = req_param(rq, "name"), *version = req_param(rq, "version");

    for (size_t i = 0; i < st->naliases; i++) {
        int rc;
        if (st->gated) {
            const char *args[6] = {name, st->aliases[i], version, "push", rq->who, rq->from};
            json_t *res = NULL;
            rc = cli_ctl_call(&s->cli, "alias", 6, args, api_gated_timeout_ms(s, name, 1), &res);
            if (!rc)
                *gen = (uint64_t)jint(res, "generation");
            json_decref(res);
        } else if ((rc = srv_lock(s)) == 0) {
            mc_registry_set_actor(s->reg, rq->who, rq->from);
            rc = mc_registry_alias_set(s->reg, name, st->aliases[i], version, gen);
            srv_unlock(s);
        }
        if (rc)
            return mc_err_prefix(rc, "pushed %s@%s, but setting alias \"%s\" failed", name,
                                 version, st->aliases[i]);
    }
    return 0;
}

static int push(struct req *rq)
{
    struct srv *s = rq->srv;
    struct upload *st = upload_state(rq); /* an empty body never called push_body */
    const char *name = req_param(rq, "name"), *version = req_param(rq, "version");
    const struct mc_reg_version *v;
    const struct mc_reg_model *m;
    char loc[1600], en[700], ev[700];
    uint64_t gen = 0;
    json_t *j;
    int rc;

    if (!st)
        return reply_error(rq, 500, "internal", "out of memory");
    if (st->rc) /* refused before the body (the core has replied then) */
        return up_reply(rq, st);
    if ((rc = upload_flush(rq, st)))
        return reply_mc_error(rq, rc);
    /* The fsync and the checksum of a big upload, without the lock that every request takes. */
    if ((rc = mc_registry_upload_finish(st->u))) {
        rc = push_stopped(rq, rc);
        upload_drop(rq, st);
        return reply_mc_error(rq, rc);
    }
    if ((rc = srv_lock(s))) {
        upload_drop(rq, st);
        return reply_mc_error(rq, rc);
    }
    mc_registry_set_actor(s->reg, rq->who, rq->from);
    rc = mc_registry_upload_commit(s->reg, st->u, st->has_expect ? st->expect : NULL, &gen);
    st->u = NULL; /* commit frees it, whatever it returns */
    srv_unlock(s);
    if (rc == MC_ECORRUPT && st->has_expect)
        return reply_error(rq, 422, "checksum_mismatch", "%s; nothing was registered",
                           mc_last_error());
    if (rc)
        return reply_mc_error(rq, rc);
    if ((rc = push_aliases(rq, st, &gen)))
        return reply_mc_error(rq, rc);
    if ((rc = srv_lock(s)))
        return reply_mc_error(rq, rc);
    m = mc_registry_model(s->reg, name);
    if (!m || mc_registry_resolve(s->reg, name, version, &v) != 0) {
        rc = mc_err(MC_ENOENT, "%s@%s was pushed but is gone already (removed meanwhile)", name,
                    version);
        srv_unlock(s);
        return reply_mc_error(rq, rc);
    }
    j = api_version(s, m, v);
    srv_unlock(s);
    encode_segment(name, en, sizeof(en));
    encode_segment(version, ev, sizeof(ev));
    snprintf(loc, sizeof(loc), "/v1/models/%s/versions/%s", en, ev);
    return reply_json_with(rq, 201, j, "Location", loc, NULL);
}

static void push_done(struct req *rq)
{
    struct upload *st = rq->state;

    if (!st)
        return;
    upload_drop(rq, st);
    json_decref(st->meta_json);
    free(st->gather);
    free(st);
    rq->state = NULL;
}

/* ---- download -------------------------------------------------------------- */

/* Does an If-None-Match list hold etag (or "*")? Weak tags compare equal (RFC 9110 8.8.3.2). */
static bool etag_matches(const char *list, const char *etag)
{
    size_t elen = strlen(etag);

    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t')
            p++;
        if (*p == '*')
            return true;
        if (!strncmp(p, "W/", 2))
            p += 2;
        if (!strncmp(p, etag, elen) && (p[elen] == '\0' || p[elen] == ',' || p[elen] == ' '))
            return true;
        p += strcspn(p, ",");
    }
    return false;
}

/* A download from the arena: the model and the cache's hold, kept until its response is freed. */
struct arena_body {
    struct srv *srv;
    mc_cache *mc;
    mc_model *m;
};

static void arena_body_free(void *cls)
{
    struct arena_body *b = cls;

    mc_release(b->m);
    srv_cache_put(b->srv, b->mc);
    free(b);
}

/* A response sending [off, off+len) of name@version from the arena, or NULL (then: the store). */
static struct MHD_Response *arena_response(struct srv *s, const char *name, const char *version,
                                           const char *etag, uint64_t size, uint64_t off,
                                           uint64_t len)
{
    struct arena_body *b = calloc(1, sizeof(*b));
    struct MHD_Response *resp = NULL;

    if (!b)
        return NULL;
    b->srv = s;
    b->mc = srv_cache_hold(s);
    if (b->mc && mc_get(b->mc, name, version, &b->m) == 0) {
        /* the same bytes the registry names (not another artifact under this version) */
        if (mc_model_size(b->m) == size &&
            !strncmp(mc_model_checksum(b->m), etag + 1, strlen(etag) - 2))
            resp = MHD_create_response_from_buffer_with_free_callback_cls(
                (size_t)len, (void *)((uintptr_t)mc_model_data(b->m) + off), arena_body_free, b);
        if (resp)
            return resp;
        mc_release(b->m);
    }
    srv_cache_put(s, b->mc);
    free(b);
    return NULL;
}

/*
 * A download from the object store (the artifact is neither resident nor a
 * local file): a callback response reading REMOTE_WINDOW bytes at a time
 * with mc_registry_artifact_read (one ranged GET; an artifact read touches
 * only the store's fixed settings, each call with its own transfers, so it
 * needs no registry lock), copied out in the pieces libmicrohttpd asks for.
 * Memory: one window per download. The read never runs on the
 * connection's thread (below, at remote_body): one window's GET per
 * REMOTE_WINDOW bytes sent, milliseconds to a nearby store, minutes to one
 * that stalls (s3.c's tries).
 *
 * A whole-body download is hashed as it is read, and its last window is
 * held back until the whole artifact hashed to the checksum: bytes changed
 * in the store never arrive as a complete response (the connection is cut
 * short of Content-Length instead). A Range cannot be checked: its bytes
 * are as the store has them. A store that fails mid-stream cuts the
 * connection too: the client sees fewer bytes than Content-Length, never
 * wrong ones in their place.
 */
/*
 * Objects seen to be bad: a whole download that hashed wrong, or verify's
 * mismatch, marks the checksum for BAD_TTL_NS; meanwhile every download of
 * it from the store, a Range included, is refused (422 corrupt). Without
 * this, a client that resumes the download that was cut short (curl -C -,
 * mcache.remote) would get the unchecked rest of the bad bytes as a Range.
 * A verify that passes clears the mark (the object was pushed again).
 */
#define BAD_MAX    32
#define BAD_TTL_NS (600ull * 1000000000ull)
static struct {
    char checksum[80];
    uint64_t until_ns;
} bad_objs[BAD_MAX];
static pthread_mutex_t bad_lock = PTHREAD_MUTEX_INITIALIZER;

void srv_artifact_mark(const char *checksum, bool bad)
{
    uint64_t now = mc_mono_ns();
    int slot = -1;

    pthread_mutex_lock(&bad_lock);
    for (int i = 0; i < BAD_MAX; i++) {
        if (!strcmp(bad_objs[i].checksum, checksum)) {
            slot = i;
            break;
        }
        if (slot < 0 && bad_objs[i].until_ns <= now)
            slot = i; /* a free or expired slot */
    }
    if (slot < 0) /* all taken: the one that expires first */
        for (int i = slot = 0; i < BAD_MAX; i++)
            if (bad_objs[i].until_ns < bad_objs[slot].until_ns)
                slot = i;
    if (bad) {
        snprintf(bad_objs[slot].checksum, sizeof(bad_objs[slot].checksum), "%s", checksum);
        bad_objs[slot].until_ns = now + BAD_TTL_NS;
    } else if (!strcmp(bad_objs[slot].checksum, checksum)) {
        bad_objs[slot].checksum[0] = '\0';
        bad_objs[slot].until_ns = 0;
    }
    pthread_mutex_unlock(&bad_lock);
}

/* Seconds since checksum was marked bad, or -1 if it is not (or no longer). */
static double artifact_bad(const char *checksum)
{
    uint64_t now = mc_mono_ns();
    double ago = -1;

    pthread_mutex_lock(&bad_lock);
    for (int i = 0; i < BAD_MAX; i++)
        if (bad_objs[i].until_ns > now && !strcmp(bad_objs[i].checksum, checksum))
            ago = (double)(now + BAD_TTL_NS - bad_objs[i].until_ns) / 1e9;
    pthread_mutex_unlock(&bad_lock);
    return ago;
}

#define REMOTE_WINDOW (1u << 20)
#define REMOTE_BLOCK  (32u * 1024) /* libmicrohttpd's piece: within CONN_MEMORY */

/*
 * A window is read on a thread of its own, never on libmicrohttpd's: a store
 * that stalls (a gateway stopped or black-holed answers nothing, and each
 * try may wait a minute) would hold that thread, and every other connection
 * it serves (/healthz, metadata) and the server's stop with it. The content
 * reader, finding the next window not read yet, starts its read, suspends
 * the connection and returns 0 (microhttpd.h's "no data yet"); the reader
 * thread resumes it once the window is in (or failed), and libmicrohttpd
 * calls the reader again. The first window is read by a worker before the
 * headers (srv_defer), so that a store that fails is an error status.
 * srv_remote_stop() resumes every connection still waiting and makes the
 * reader cut them. remote_lock guards state, suspended, refs and the list.
 */
enum remote_state { WIN_IDLE, WIN_FILLING, WIN_FAILED };

struct remote_body {
    struct srv *srv;
    struct mc_registry *reg; /* held (srv_reg_hold): read through without the lock */
    struct mc_reg_version v; /* name, version, checksum, size: copies below */
    char name[512], version[512], checksum[80];
    uint64_t off, len;  /* the range sent, in the artifact */
    uint64_t win_pos;   /* the window's first byte, as a position in the body */
    size_t win_len;     /* bytes in the window */
    bool verify;        /* a whole body, read in order: hashed as it goes */
    XXH3_state_t *hash; /* verify's */
    char *win;          /* REMOTE_WINDOW bytes */
    struct MHD_Connection *conn;
    enum remote_state state;
    bool suspended;                  /* by the reader, for a window being read */
    uint64_t fill_pos;               /* the window being read */
    unsigned refs;                   /* the response's, and a reader thread's */
    char err[1024];                  /* WIN_FAILED's message */
    struct remote_body *prev, *next; /* in remote_waiting while suspended */
};

static pthread_mutex_t remote_lock = PTHREAD_MUTEX_INITIALIZER;
static struct remote_body *remote_waiting; /* suspended for a window */
static bool remote_stopping;
static unsigned remote_reading; /* reader threads in a window's read */

static void remote_body_unref(struct remote_body *b)
{
    bool last;

    pthread_mutex_lock(&remote_lock);
    last = --b->refs == 0;
    pthread_mutex_unlock(&remote_lock);
    if (!last)
        return;
    if (b->hash)
        XXH3_freeState(b->hash);
    srv_reg_put(b->srv, b->reg);
    free(b->win);
    free(b);
}

static void remote_body_free(void *cls)
{
    remote_body_unref(cls);
}

/*
 * Read the window that holds body position pos (the next REMOTE_WINDOW
 * bytes), hashing a whole body read in order; at its last window, compare.
 * 0, or an MC_E* code with a message (the log's line, by the caller).
 */
static int remote_fill(struct remote_body *b, uint64_t pos)
{
    size_t want = b->len - pos < REMOTE_WINDOW ? (size_t)(b->len - pos) : REMOTE_WINDOW;
    char got[64];
    int rc;

    if (pos != b->win_pos + b->win_len) /* not in order (never seen; cannot hash): as stored */
        b->verify = false;
    b->win_len = 0;
    b->win_pos = pos;
    rc = mc_registry_artifact_read(b->reg, &b->v, b->off + pos, b->win, want);
    if (rc)
        return mc_err_prefix(rc,
                             "%s@%s: reading its artifact from the object store at byte "
                             "%" PRIu64 ": ",
                             b->name, b->version, b->off + pos);
    b->win_len = want;
    if (!b->verify)
        return 0;
    XXH3_128bits_update(b->hash, b->win, want);
    if (pos + want < b->len)
        return 0;
    cli_xxh3_checksum(b->hash, got);
    if (strcmp(got, b->checksum)) {
        srv_artifact_mark(b->checksum, true);
        return mc_err(MC_ECORRUPT,
                      "%s@%s: its artifact in the object store hashes to %s but the registry "
                      "says %s (changed or damaged in the store); the download was cut short "
                      "before its last %zu bytes: run verify, remove the version and push it "
                      "again",
                      b->name, b->version, got, b->checksum, want);
    }
    return 0;
}

static void remote_unlist(struct remote_body *b) /* under remote_lock */
{
    if (b->prev)
        b->prev->next = b->next;
    else
        remote_waiting = b->next;
    if (b->next)
        b->next->prev = b->prev;
    b->prev = b->next = NULL;
    b->suspended = false;
}

static void *remote_reader(void *arg)
{
    struct remote_body *b = arg;
    int rc = remote_fill(b, b->fill_pos);

    pthread_mutex_lock(&remote_lock);
    remote_reading--;
    if (rc) {
        snprintf(b->err, sizeof(b->err), "%s", mc_last_error());
        b->state = WIN_FAILED;
    } else {
        b->state = WIN_IDLE;
    }
    if (b->suspended) { /* else srv_remote_stop() resumed it: the connection is not ours */
        remote_unlist(b);
        MHD_resume_connection(b->conn);
    }
    pthread_mutex_unlock(&remote_lock);
    remote_body_unref(b);
    return NULL;
}

/* Under remote_lock: read the window at pos on a thread of its own, b's connection suspended. */
static int remote_fill_async(struct remote_body *b, uint64_t pos)
{
    pthread_attr_t attr;
    pthread_t t;
    int err;

    b->state = WIN_FILLING;
    b->fill_pos = pos;
    b->refs++;
    remote_reading++;
    b->suspended = true;
    b->next = remote_waiting;
    if (remote_waiting)
        remote_waiting->prev = b;
    remote_waiting = b;
    MHD_suspend_connection(b->conn);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&t, &attr, remote_reader, b);
    pthread_attr_destroy(&attr);
    if (!err)
        return 0;
    remote_unlist(b);
    MHD_resume_connection(b->conn);
    b->refs--;
    remote_reading--;
    b->state = WIN_IDLE;
    return mc_err(MC_ENOMEM, "%s@%s: could not start a thread to read the object store: %s",
                  b->name, b->version, strerror(err));
}

static ssize_t remote_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct remote_body *b = cls;
    size_t n;

    if (pos >= b->len)
        return MHD_CONTENT_READER_END_OF_STREAM;
    pthread_mutex_lock(&remote_lock);
    if (remote_stopping) {
        pthread_mutex_unlock(&remote_lock);
        srv_log("%s@%s: the server is stopping; the download from the object store was cut "
                "short at byte %" PRIu64,
                b->name, b->version, b->off + pos);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (b->state == WIN_FAILED) {
        pthread_mutex_unlock(&remote_lock);
        srv_log("%s; the download was cut short", b->err);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (b->state == WIN_FILLING) { /* called again before the reader resumed it */
        pthread_mutex_unlock(&remote_lock);
        return 0;
    }
    if (pos < b->win_pos || pos >= b->win_pos + b->win_len) {
        int rc = remote_fill_async(b, pos);

        pthread_mutex_unlock(&remote_lock);
        if (!rc)
            return 0; /* suspended until the window is in */
        srv_log("%s; the download was cut short", mc_last_error());
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    pthread_mutex_unlock(&remote_lock);
    n = (size_t)(b->win_pos + b->win_len - pos);
    if (n > max)
        n = max;
    memcpy(buf, b->win + (pos - b->win_pos), n);
    return (ssize_t)n;
}

void srv_remote_stop(void)
{
    pthread_mutex_lock(&remote_lock);
    remote_stopping = true;
    while (remote_waiting) {
        struct MHD_Connection *conn = remote_waiting->conn;

        remote_unlist(remote_waiting);
        MHD_resume_connection(conn);
    }
    pthread_mutex_unlock(&remote_lock);
}

unsigned srv_remote_reads(void)
{
    unsigned n;

    pthread_mutex_lock(&remote_lock);
    n = remote_reading;
    pthread_mutex_unlock(&remote_lock);
    return n;
}

/*
 * A response streaming [off, off+len) of v from the object store, into *out
 * and *body (its first window not read yet: remote_first); 0, or an MC_E* code.
 */
static int remote_response(struct srv *s, struct MHD_Connection *conn, const char *name,
                           const char *version, const char *checksum, uint64_t size,
                           uint64_t off, uint64_t len, struct MHD_Response **out,
                           struct remote_body **body)
{
    struct remote_body *b = calloc(1, sizeof(*b));

    *out = NULL;
    if (!b || !(b->win = malloc(REMOTE_WINDOW)))
        goto fail;
    b->srv = s;
    b->reg = srv_reg_hold(s);
    b->conn = conn;
    b->refs = 1;
    snprintf(b->name, sizeof(b->name), "%s", name);
    snprintf(b->version, sizeof(b->version), "%s", version);
    snprintf(b->checksum, sizeof(b->checksum), "%s", checksum);
    b->v.name = b->name;
    b->v.version = b->version;
    b->v.checksum = b->checksum;
    b->v.size = size;
    b->off = off;
    b->len = len;
    b->verify = off == 0 && len == size;
    if (b->verify) {
        if (!(b->hash = XXH3_createState()))
            goto fail;
        XXH3_128bits_reset(b->hash);
    }
    *out =
        MHD_create_response_from_callback(len, REMOTE_BLOCK, remote_body_read, b, remote_body_free);
    if (*out) {
        *body = b;
        return 0;
    }
fail:
    if (b)
        remote_body_unref(b);
    return mc_err(MC_ENOMEM, "out of memory for a download from the object store");
}

/* A download's reply, once its body is ready: the headers, 200 or 206. */
struct artifact_reply {
    struct MHD_Response *resp;
    struct remote_body *remote; /* its first window to read first (srv_defer), or NULL */
    const char *source;
    char version[512], etag[96];
    uint64_t size, off, len;
    bool range;
};

static int artifact_send(struct req *rq, struct artifact_reply *a)
{
    struct MHD_Response *resp = a->resp;
    char crange[128], sz[32];

    MHD_add_response_header(resp, "Content-Type", "application/octet-stream");
    MHD_add_response_header(resp, "ETag", a->etag);
    MHD_add_response_header(resp, "Accept-Ranges", "bytes");
    MHD_add_response_header(resp, "Mcache-Source", a->source);
    MHD_add_response_header(resp, "Mcache-Version", a->version);
    snprintf(sz, sizeof(sz), "%" PRIu64, a->size);
    MHD_add_response_header(resp, "Mcache-Size", sz);
    if (a->range) {
        snprintf(crange, sizeof(crange), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, a->off,
                 a->off + a->len - 1, a->size);
        MHD_add_response_header(resp, "Content-Range", crange);
        return reply_response(rq, 206, resp);
    }
    return reply_response(rq, 200, resp);
}

/*
 * On a worker (srv_defer): the first window, before the headers, so that a
 * store that does not answer is an error status, not a connection cut after 200.
 */
static void remote_first(struct req *rq, void *arg)
{
    struct artifact_reply *a = arg;
    int rc = remote_fill(a->remote, 0);

    if (rc) {
        srv_log("%s", mc_last_error());
        MHD_destroy_response(a->resp); /* frees the body */
        reply_mc_error(rq, rc);
    } else {
        artifact_send(rq, a);
    }
    free(a);
}

static int download(struct req *rq)
{
    struct srv *s = rq->srv;
    const struct mc_reg_version *v;
    char name[512], version[512], path[4096], checksum[80], etag[96], crange[128];
    const char *inm = req_header(rq, "If-None-Match"), *ir, *source = "store";
    struct MHD_Response *resp = NULL;
    struct remote_body *body = NULL;
    struct artifact_reply *a;
    uint64_t size, off = 0, len;
    enum http_range rk;
    int ret = 0, rc, fd;
    bool local;

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
    /* copies: the registry's pointers die with the lock */
    snprintf(name, sizeof(name), "%s", v->name);
    snprintf(version, sizeof(version), "%s", v->version);
    snprintf(path, sizeof(path), "%s", v->path);
    snprintf(checksum, sizeof(checksum), "%s", v->checksum);
    snprintf(etag, sizeof(etag), "\"%s\"", v->checksum);
    size = v->size;
    local = mc_registry_artifact_local(s->reg, v);
    srv_unlock(s);

    if (inm && etag_matches(inm, etag)) {
        resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp)
            return reply_error(rq, 500, "internal", "out of memory");
        MHD_add_response_header(resp, "ETag", etag);
        MHD_add_response_header(resp, "Mcache-Version", version);
        return reply_response(rq, 304, resp);
    }
    /*
     * If-Range (RFC 9110 13.1.5): the Range holds only while the bytes are the
     * ones the client has (a resume through an alias that moved must not
     * splice in another version's bytes); else the whole body, 200. A date,
     * or a weak tag, never matches: the ETag is the checksum, compared strongly.
     */
    ir = req_header(rq, "If-Range");
    if (ir && strcmp(ir, etag) != 0)
        rk = RANGE_NONE;
    else
        rk = http_range(req_header(rq, "Range"), size, &off, &len);
    if (rk == RANGE_BAD) {
        snprintf(crange, sizeof(crange), "bytes */%" PRIu64, size);
        return reply_json_with(
            rq, 416,
            json_pack("{s:{s:s, s:s, s:i}}", "error", "code", "range_not_satisfiable", "message",
                      "the Range asked for starts past the end of the artifact; see "
                      "Content-Range for its size",
                      "status", 416),
            "Content-Range", crange, NULL);
    }
    if (rk == RANGE_NONE) {
        off = 0;
        len = size;
    }
    resp = arena_response(s, name, version, etag, size, off, len);
    if (resp) {
        source = "arena";
    } else if (!local) {
        double ago = artifact_bad(checksum);
        if (ago >= 0)
            return reply_error(rq, 422, "corrupt",
                               "%s@%s: its artifact in the object store failed its checksum "
                               "%.0f s ago (a download or verify hashed it to something else); "
                               "nothing is sent from it, a Range included: run verify, then "
                               "remove the version and push it again",
                               name, version, ago);
        source = "remote";
        rc = remote_response(s, rq->conn, name, version, checksum, size, off, len, &resp, &body);
        if (rc)
            return reply_mc_error(rq, rc);
        if (!strcmp(rq->method, "HEAD"))
            body = NULL; /* reads nothing from the store */
    } else {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = errno == ENOENT
                     ? mc_err(MC_ENOENT, "%s@%s was removed while it was asked for", name, version)
                     : mc_err(MC_EIO, "cannot open the artifact of %s@%s: %s", name, version,
                              strerror(errno));
            return reply_mc_error(rq, rc);
        }
        resp = MHD_create_response_from_fd_at_offset64(len, fd, off); /* closes fd when freed */
        if (!resp) {
            close(fd);
            return reply_error(rq, 500, "internal", "out of memory");
        }
    }
    if (!(a = calloc(1, sizeof(*a)))) {
        MHD_destroy_response(resp);
        return reply_error(rq, 500, "internal", "out of memory");
    }
    a->resp = resp;
    a->remote = body;
    a->source = source;
    snprintf(a->version, sizeof(a->version), "%s", version);
    snprintf(a->etag, sizeof(a->etag), "%s", etag);
    a->size = size;
    a->off = off;
    a->len = len;
    a->range = rk == RANGE_ONE;
    if (body) {
        bool started;

        rc = srv_defer(rq, remote_first, a, &started);
        if (!started) {
            MHD_destroy_response(resp);
            free(a);
        }
        return rc;
    }
    rc = artifact_send(rq, a);
    free(a);
    return rc;
}

const struct route h_artifact_routes[] = {
    {"PUT", "/v1/models/{name}/versions/{version}", ROLE_PUBLISHER,
     ROUTE_STREAM | ROUTE_AUDIT | ROUTE_SLOW, push, push_body, push_done,
     "push a version: the body is the artifact, Mcache-Meta its metadata, Mcache-Checksum its "
     "checksum"},
    {"GET", "/v1/models/{name}/versions/{ref}/artifact", ROLE_READER, 0, download, NULL, NULL,
     "download a version's bytes (Range, If-None-Match; from the arena when resident)"},
    {0},
};
