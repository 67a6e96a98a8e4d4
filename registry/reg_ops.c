/*
 * reg_ops.c - the registry's mutations: push, metadata, status and flags,
 * aliases, removal, retention, compaction, check and repair.
 *
 * Each follows one shape: validate what can be validated without the lock,
 * reg_write_begin() (exclusive lock, catch up), validate against the
 * current state, build one record, let reg_apply.c check it as replay
 * would, reg_commit() it (append + sync + apply), reg_write_end(). Work on
 * artifacts that belongs to a change is bracketed by the artifact store's
 * intent (backend.h; locally the commit marker of artifacts_local.c), so a
 * crash between the metadata and the artifacts is undone by whoever takes
 * the lock next.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/hex.h"
#include "common/vec.h"
#include "index/name.h"
#include "registry/reg_int.h"

#define NS_PER_DAY (86400ull * 1000000000ull)
#define GC_BATCH   10000

static int oom(void)
{
    return mc_err(MC_ENOMEM, "out of memory building a manifest record");
}

/* ---- push ------------------------------------------------------------- */

/* Between the intent's writing and clearing: the artifact into place, then the record. */
static int push_commit(struct mc_registry *r, json_t *rec, const char *name, const char *version,
                       struct mc_art_put *put, uint64_t *gen)
{
    const struct mc_art_ref ref = {name, version};
    int rc;

    /* someone may have pushed it while we copied */
    rc = record_check_version(r->st, rec);
    if (rc)
        return rc;
    rc = r->art->ops->intent_write(r->art, &ref, 1);
    if (rc)
        return rc;
    r->commit_kept = false;
    rc = r->art->ops->commit(r->art, put, name, version);
    if (rc == 0)
        rc = reg_commit(r, rec, gen);
    /*
     * A record whose commit may have happened (the database's answer was
     * lost) keeps its artifact and the intent: the next writer's
     * intent_recover() removes the artifact only if the record is not there.
     */
    if (rc && r->commit_kept)
        return rc;
    if (rc)
        r->art->ops->remove_version(r->art, name, version);
    r->art->ops->intent_clear(r->art);
    return rc;
}

/*
 * The "push" record of name@version into *out, with o's flags and metadata
 * and placeholders for what the copy finds (checked like the real thing).
 * 0, or MC_EINVAL / MC_ENOMEM with *out NULL.
 */
static int push_record(uint32_t uid, const char *name, const char *version,
                       const struct mc_push_opts *o, json_t **out)
{
    struct mc_semver sv;
    json_t *rec;
    int rc;

    *out = NULL;
    if (mc_name_check(name) != 0)
        return MC_EINVAL;
    if (mc_semver_parse(version, version ? strlen(version) : 0, &sv) != 0)
        return mc_err_prefix(MC_EINVAL, "model \"%s\"", name);
    rec = version_record(uid, "push", name, version);
    if (rec == NULL)
        return oom();
    json_object_set_new(rec, "size", json_integer(0));
    json_object_set_new(rec, "format", json_string("other"));
    json_object_set_new(rec, "checksum", json_string("xxh3-128:00000000000000000000000000000000"));
    json_object_set_new(rec, "status", json_string("ready"));
    json_object_set_new(rec, "preload", json_boolean(o->preload));
    json_object_set_new(rec, "pinned", json_boolean(o->pinned));
    rc = o->meta ? meta_to_json(o->meta, rec, false) : 0;
    if (rc) {
        json_decref(rec);
        return rc;
    }
    *out = rec;
    return 0;
}

int mc_registry_push_check(const char *name, const char *version, const struct mc_push_opts *o)
{
    static const struct mc_push_opts none;
    json_t *rec;
    int rc = push_record((uint32_t)geteuid(), name, version, o ? o : &none, &rec);

    if (rc == 0)
        rc = record_check_version(NULL, rec);
    json_decref(rec);
    return rc;
}

/* A push's source, chunk by chunk, into the staged copy (with progress). */
struct feed {
    struct mc_registry *r;
    struct mc_art_put *put;
    const struct mc_push_opts *o;
};

static int feed_chunk(void *arg, const void *buf, size_t n)
{
    struct feed *f = arg;
    struct mc_art_put *p = f->put;
    int rc = f->r->art->ops->write(p, buf, n);

    if (rc == 0 && f->o->progress) {
        rc = f->o->progress(f->o->progress_arg, p->size, p->total > p->size ? p->total : p->size);
        if (rc) {
            if (rc > 0)
                rc = MC_EINVAL;
            mc_err(rc, "the push of %s was stopped by its progress callback", p->what);
        }
    }
    return rc;
}

/*
 * The copy phase of a push of the file src: the artifact store's begin,
 * write per chunk read, finish (an upload is the same pieces fed by its
 * caller). On success put is staged (discard it after the commit); on
 * failure nothing is left.
 */
static int stage_file(struct mc_registry *r, const char *src, const struct mc_push_opts *o,
                      struct mc_art_put *put)
{
    struct feed feed = {r, put, o};
    struct stat st;
    int sfd, rc;

    sfd = open(src, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not block it */
    if (sfd < 0)
        return mc_err(mc_err_from_errno(errno), "cannot open the file to push, %s: %s", src,
                      strerror(errno));
    if (fstat(sfd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(sfd);
        return mc_err(MC_EINVAL, "%s is not a regular file; push a model file", src);
    }
    if (st.st_size == 0) { /* it could never be loaded */
        close(sfd);
        return mc_err(MC_EINVAL, "%s is empty; push a model file", src);
    }
    put->what = src;
    put->total = (uint64_t)st.st_size;
    rc = r->art->ops->begin(r->art, (uint64_t)st.st_size, put);
    if (rc) {
        close(sfd);
        return rc;
    }
    rc = mc_art_read_chunks(sfd, src, feed_chunk, &feed);
    close(sfd);
    if (rc == 0)
        rc = r->art->ops->finish(r->art, put);
    if (rc)
        r->art->ops->discard(r->art, put);
    return rc;
}

/*
 * Register what put staged: its size, format and checksum into rec; the
 * store's place (the object store's copy to the content address: long)
 * before the writer lock, so other writers do not wait on it; then commit.
 */
static int push_staged(struct mc_registry *r, json_t *rec, const char *name, const char *version,
                       struct mc_art_put *put, uint64_t *gen)
{
    int rc;

    reg_intent(r, "push %s@%s", name, version);
    json_object_set_new(rec, "size", json_integer((json_int_t)put->size));
    json_object_set_new(rec, "format", json_string(mc_reg_format_name(put->format)));
    json_object_set_new(rec, "checksum", json_string(put->checksum));
    rc = r->art->ops->place ? r->art->ops->place(r->art, put) : 0;
    if (rc == 0)
        rc = reg_write_begin(r);
    if (rc == 0)
        rc = reg_write_end(r, push_commit(r, rec, name, version, put, gen));
    return rc;
}

/* The push record, once it is known it can be registered now (refusing before any copy). */
static int push_prepare(struct mc_registry *r, const char *name, const char *version,
                        const struct mc_push_opts *o, json_t **rec)
{
    int rc;

    *rec = NULL;
    reg_intent(r, "push %s@%s", name ? name : "", version ? version : "");
    if (r->flags & MC_REGISTRY_READONLY)
        return mc_err(MC_EPERM, "%s was opened read-only; nothing was pushed", r->dir);
    rc = push_record(r->uid, name, version, o, rec);
    /* fail before copying gigabytes if it can never be registered */
    if (rc == 0)
        rc = mc_registry_refresh(r, NULL);
    if (rc == 0 && (rc = record_check_version(r->st, *rec)) != 0)
        rc = reg_refused(r, rc); /* the state refused it (it exists): logged */
    if (rc) {
        json_decref(*rec);
        *rec = NULL;
    }
    return rc;
}

int mc_registry_push(struct mc_registry *r, const char *name, const char *version, const char *src,
                     const struct mc_push_opts *o, uint64_t *gen)
{
    static const struct mc_push_opts none;
    struct mc_art_put put = {.fd = -1};
    json_t *rec;
    int rc;

    if (o == NULL)
        o = &none;
    if (src == NULL && !(r->flags & MC_REGISTRY_READONLY))
        return mc_err(MC_EINVAL, "no file given to push as %s@%s", name, version);
    rc = push_prepare(r, name, version, o, &rec);
    if (rc == 0)
        rc = stage_file(r, src, o, &put);
    if (rc == 0) {
        rc = push_staged(r, rec, name, version, &put, gen);
        r->art->ops->discard(r->art, &put);
    }
    json_decref(rec);
    return rc;
}

/* ---- uploads: a push fed from a stream -------------------------------- */

struct mc_reg_upload {
    json_t *rec; /* the push record, checked at begin */
    char *name, *version;
    char *what; /* "the upload of NAME@VERSION" */
    const struct mc_art_store_ops *ops; /* the store's, for write and finish */
    struct mc_art_store *art;           /* the store, for finish (its messages) */
    struct mc_art_put put;
    int err;       /* a write or finish failed (its code): only abort is left */
    bool finished; /* mc_registry_upload_finish() succeeded */
};

static void upload_free(struct mc_reg_upload *u)
{
    json_decref(u->rec);
    free(u->name);
    free(u->version);
    free(u->what);
    free(u);
}

int mc_registry_upload_begin(struct mc_registry *r, const char *name, const char *version,
                             const struct mc_push_opts *o, uint64_t size_hint,
                             struct mc_reg_upload **out)
{
    static const struct mc_push_opts none;
    struct mc_reg_upload *u;
    int rc;

    *out = NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return mc_err(MC_ENOMEM, "out of memory beginning an upload");
    u->put.fd = -1;
    rc = push_prepare(r, name, version, o ? o : &none, &u->rec);
    if (rc == 0 && ((u->name = strdup(name)) == NULL || (u->version = strdup(version)) == NULL ||
                    asprintf(&u->what, "the upload of %s@%s", name, version) < 0)) {
        u->what = NULL;
        rc = mc_err(MC_ENOMEM, "out of memory beginning the upload of %s@%s", name, version);
    }
    if (rc == 0) {
        u->put.what = u->what;
        u->put.total = size_hint;
        u->ops = r->art->ops;
        u->art = r->art;
        rc = r->art->ops->begin(r->art, size_hint, &u->put);
    }
    if (rc) {
        upload_free(u);
        return rc;
    }
    *out = u;
    return 0;
}

int mc_registry_upload_write(struct mc_reg_upload *u, const void *buf, size_t n)
{
    int rc;

    if (u->err)
        return mc_err(u->err, "an earlier write to %s failed; abort it and upload again", u->what);
    if (u->finished)
        return mc_err(MC_EINVAL, "%s is already finished; nothing more can be written", u->what);
    if (n == 0)
        return 0;
    /* the store's write needs only the put: no registry state is touched */
    rc = u->ops->write(&u->put, buf, n);
    if (rc)
        u->err = rc;
    return rc;
}
uint64_t mc_registry_upload_size(const struct mc_reg_upload *u)
{
    return u->put.size;
}

/*
 * Refuse a failed or empty upload, then sync the staged file, make it
 * read-only and compute its checksum and format. Touches only u (and the
 * store's read-only directory name, for messages), so it runs without
 * whatever serializes r.
 */
int mc_registry_upload_finish(struct mc_reg_upload *u)
{
    int rc;

    if (u->finished)
        return 0;
    if (u->err)
        return mc_err(u->err, "an earlier write to %s failed; nothing was registered; upload it "
                              "again", u->what);
    if (u->put.size == 0) /* it could never be loaded */
        return mc_err(MC_EINVAL, "%s is empty (0 bytes arrived); nothing was registered; send "
                                 "the model's bytes", u->what);
    rc = u->ops->finish(u->art, &u->put);
    if (rc)
        u->err = rc;
    else
        u->finished = true;
    return rc;
}

int mc_registry_upload_commit(struct mc_registry *r, struct mc_reg_upload *u, const char *expect,
                              uint64_t *gen)
{
    int rc = 0;

    if (expect && !mc_checksum_valid(expect, true))
        rc = mc_err(MC_EINVAL, "the expected checksum \"%s\" of %s is not \"xxh3-128:\" and 32 "
                               "hex digits; nothing was registered", expect, u->what);
    if (rc == 0)
        rc = mc_registry_upload_finish(u);
    if (rc == 0 && expect && strcasecmp(expect, u->put.checksum) != 0)
        rc = mc_err(MC_ECORRUPT, "%s arrived with checksum %s but %s was expected; nothing was "
                                 "registered; upload it again", u->what, u->put.checksum, expect);
    if (rc == 0)
        rc = push_staged(r, u->rec, u->name, u->version, &u->put, gen);
    r->art->ops->discard(r->art, &u->put);
    upload_free(u);
    return rc;
}

void mc_registry_upload_abort(struct mc_registry *r, struct mc_reg_upload *u)
{
    if (u == NULL)
        return;
    r->art->ops->discard(r->art, &u->put);
    upload_free(u);
}

/* ---- changes to one version ------------------------------------------- */

/* Begin, find the version, check rec as replay would, commit, end. */
static int change(struct mc_registry *r, json_t *rec, const char *name, const char *version,
                  uint64_t *gen)
{
    int rc;

    if (rec == NULL)
        return oom();
    reg_intent(r, "%s %s@%s", json_string_value(json_object_get(rec, "op")), name ? name : "",
               version ? version : "");
    rc = reg_write_begin(r);
    if (rc == 0) {
        struct reg_ver *rv = reg_need_version(r, name, version);

        rc = rv == NULL ? (mc_name_check(name) ? MC_EINVAL : MC_ENOENT) : 0;
        /* the record names the version exactly as registered */
        if (rc == 0)
            json_object_set_new(rec, "version", json_string(rv->v.version));
        if (rc == 0)
            rc = record_check_change(r->st, rec);
        if (rc == 0)
            rc = reg_commit(r, rec, gen);
        rc = reg_write_end(r, rc);
    }
    json_decref(rec);
    return rc;
}

int mc_registry_set_meta(struct mc_registry *r, const char *name, const char *version,
                         const struct mc_reg_meta *meta, uint64_t *gen)
{
    json_t *rec = version_record(r->uid, "meta", name, version), *set = json_object();

    if (rec == NULL || set == NULL || json_object_set_new(rec, "set", set)) {
        json_decref(rec);
        return oom();
    }
    if (meta && meta_to_json(meta, set, true) != 0) {
        json_decref(rec);
        return MC_EINVAL;
    }
    return change(r, rec, name, version, gen);
}

int mc_registry_set_status(struct mc_registry *r, const char *name, const char *version,
                           enum mc_reg_status status, const char *reason, uint64_t *gen)
{
    json_t *rec = version_record(r->uid, "status", name, version);

    if ((unsigned)status > MC_STATUS_ARCHIVED) {
        json_decref(rec);
        return mc_err(MC_EINVAL, "status %d is not one of registering, ready, failed, archived",
                      (int)status);
    }
    if (rec) {
        json_object_set_new(rec, "status", json_string(mc_reg_status_name(status)));
        if (reason)
            json_object_set_new(rec, "reason", json_string(reason));
    }
    return change(r, rec, name, version, gen);
}

int mc_registry_set_flags(struct mc_registry *r, const char *name, const char *version, int preload,
                          int pinned, uint64_t *gen)
{
    json_t *rec = version_record(r->uid, "flags", name, version);

    if (rec && preload >= 0)
        json_object_set_new(rec, "preload", json_boolean(preload));
    if (rec && pinned >= 0)
        json_object_set_new(rec, "pinned", json_boolean(pinned));
    return change(r, rec, name, version, gen);
}

/* ---- aliases ---------------------------------------------------------- */

int alias_move(struct mc_registry *r, struct reg_model *m, const char *alias, const char *from,
               const char *to, bool rollback, const char *why, uint64_t *gen)
{
    json_t *rec = version_record(r->uid, "alias", m->name, NULL);

    if (rec == NULL || json_object_set_new(rec, "alias", json_string(alias)) ||
        json_object_set_new(rec, "from", from ? json_string(from) : json_null()) ||
        json_object_set_new(rec, "to", to ? json_string(to) : json_null()) ||
        (rollback && json_object_set_new(rec, "rollback", json_true())) ||
        (why && json_object_set_new(rec, "why", json_string(why)))) {
        json_decref(rec);
        return why ? mc_err(MC_EINVAL, "the reason for moving alias \"%s\" is not UTF-8 text",
                            alias)
                   : oom();
    }
    {
        int rc = reg_commit(r, rec, gen);

        json_decref(rec);
        return rc;
    }
}

int need_ready(const struct mc_reg_version *v, const char *alias)
{
    if (v->status == MC_STATUS_READY)
        return 0;
    return mc_err(MC_EBUSY,
                  "version %s of \"%s\" is %s; alias \"%s\" can only point at a ready "
                  "version (set its status to ready first)",
                  v->version, v->name, mc_reg_status_name(v->status), alias);
}

int reason_check(const char *why)
{
    if (why && strlen(why) > WHY_MAX)
        return mc_err(MC_EINVAL, "the reason given is %zu bytes; at most %d", strlen(why),
                      WHY_MAX);
    return 0;
}

int why_check(const char *why)
{
    char q[MC_QUOTE_MAX];

    if (reason_check(why))
        return MC_EINVAL;
    /* it is printed on terminals (`mcache show`): no escape sequences */
    for (const char *p = why; p && *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return mc_err(MC_EINVAL, "the reason given %s contains control characters; give "
                                     "one line of text",
                          mc_quote(q, sizeof(q), why, strlen(why)));
    return 0;
}

int alias_begin(struct mc_registry *r, const char *name, const char *alias, struct reg_model **m,
                struct reg_alias **a)
{
    int rc;

    *m = NULL; /* defined on every path, also when the checks refuse */
    *a = NULL;
    if (mc_name_check(name) != 0 || mc_alias_check(alias) != 0)
        return MC_EINVAL;
    rc = reg_write_begin(r);
    if (rc)
        return rc;
    *m = reg_need_model(r, name);
    if (*m == NULL)
        return reg_write_end(r, MC_ENOENT);
    *a = model_alias(*m, alias);
    return 0;
}

void alias_text(const struct reg_alias *a, char *buf, size_t cap)
{
    struct tset t = {.n = 0};

    if (a)
        alias_tset(a, &t);
    tset_format(&t, buf, cap);
}

int targets_resolve(struct mc_registry *r, const char *name, const char *alias,
                    const struct mc_reg_weight *t, size_t n, struct tset *out)
{
    uint32_t sum = 0;

    out->n = 0;
    if (n == 0 || t == NULL)
        return mc_err(MC_EINVAL, "no target given for alias \"%s\" of \"%s\"", alias, name);
    if (n > MC_ALIAS_TARGETS_MAX)
        return mc_err(MC_EINVAL,
                      "%zu targets given for alias \"%s\" of \"%s\"; an alias points at 1 to %d "
                      "versions",
                      n, alias, name, MC_ALIAS_TARGETS_MAX);
    for (size_t i = 0; i < n; i++) {
        uint32_t w = n == 1 && t[i].weight == 0 ? 100 : t[i].weight;

        if (w < 1 || w > 100)
            return mc_err(MC_EINVAL,
                          "the weight %u of target \"%s\" is not a whole number from 1 to 100",
                          t[i].weight, t[i].ref ? t[i].ref : "");
        sum += w;
    }
    if (sum != 100)
        return mc_err(MC_EINVAL,
                      "the weights of the %zu targets of alias \"%s\" sum to %u; they must sum "
                      "to 100",
                      n, alias, sum);
    for (size_t i = 0; i < n; i++) {
        const struct mc_reg_version *v;
        int rc = mc_registry_resolve(r, name, t[i].ref, &v);

        if (rc == 0)
            rc = need_ready(v, alias);
        if (rc)
            return rc;
        for (size_t k = 0; k < i; k++)
            if (out->v[k] == ver_of(v))
                return mc_err(MC_EINVAL,
                              "targets \"%s\" and \"%s\" of alias \"%s\" are both %s@%s; "
                              "name each version once",
                              t[k].ref, t[i].ref, alias, name, v->version);
        out->v[i] = ver_of(v);
        out->w[i] = n == 1 ? 100 : t[i].weight;
        out->n = i + 1;
    }
    tset_sort(out);
    return 0;
}

int mc_registry_alias_set_weighted(struct mc_registry *r, const char *name, const char *alias,
                                   const struct mc_reg_weight *t, size_t n, const char *why,
                                   uint64_t *gen)
{
    char from[TSET_TEXT_MAX], to[TSET_TEXT_MAX];
    struct reg_model *m;
    struct reg_alias *a;
    struct tset ts;
    char tx[512];
    size_t k = 0;
    int rc;

    tx[0] = '\0';
    for (size_t i = 0; i < n && t && k < sizeof(tx); i++)
        k += (size_t)snprintf(tx + k, sizeof(tx) - k, n > 1 ? "%s%s=%u" : "%s%s", i ? " " : "",
                              t[i].ref ? t[i].ref : "?", t[i].weight);
    reg_intent(r, "alias %s %s %s", name ? name : "", alias ? alias : "", tx);
    rc = why_check(why);
    if (rc == 0)
        rc = alias_begin(r, name, alias, &m, &a);
    if (rc)
        return rc;
    rc = targets_resolve(r, name, alias, t, n, &ts);
    if (rc == 0) {
        alias_text(a, from, sizeof(from));
        tset_format(&ts, to, sizeof(to));
        if (strcmp(from, to) == 0) {
            if (gen)
                *gen = mc_registry_generation(r); /* already there: nothing to record */
        } else {
            rc = alias_move(r, m, alias, from[0] ? from : NULL, to, false, why, gen);
        }
    }
    return reg_write_end(r, rc);
}

int mc_registry_alias_set(struct mc_registry *r, const char *name, const char *alias,
                          const char *ref, uint64_t *gen)
{
    const struct mc_reg_weight w = {ref, 100};

    return mc_registry_alias_set_weighted(r, name, alias, &w, 1, NULL, gen);
}

int mc_registry_alias_remove(struct mc_registry *r, const char *name, const char *alias,
                             uint64_t *gen)
{
    char from[TSET_TEXT_MAX];
    struct reg_model *m;
    struct reg_alias *a;
    int rc;

    reg_intent(r, "alias rm %s %s", name ? name : "", alias ? alias : "");
    rc = alias_begin(r, name, alias, &m, &a);
    if (rc)
        return rc;
    if (a == NULL || a->ntg == 0) {
        rc = mc_err(MC_ENOENT, "model \"%s\" has no alias \"%s\"%s", name, alias,
                    a ? " (it was already removed)" : "");
    } else {
        alias_text(a, from, sizeof(from));
        rc = alias_move(r, m, alias, from, NULL, false, NULL, gen);
    }
    return reg_write_end(r, rc);
}

int mc_registry_alias_rollback(struct mc_registry *r, const char *name, const char *alias,
                               uint64_t *gen)
{
    char from[TSET_TEXT_MAX], missing[300];
    const char *to;
    struct reg_model *m;
    struct reg_alias *a;
    struct tset ts;
    int rc;

    reg_intent(r, "alias rollback %s %s", name ? name : "", alias ? alias : "");
    rc = alias_begin(r, name, alias, &m, &a);
    if (rc)
        return rc;
    if (a == NULL) {
        rc = mc_err(MC_ENOENT, "model \"%s\" has no alias \"%s\"", name, alias);
        return reg_write_end(r, rc);
    }
    to = alias_rollback_text(a);
    if (to == NULL)
        rc = mc_err(MC_EBUSY,
                    "alias \"%s\" of \"%s\" has no earlier target to roll back to; "
                    "set it explicitly",
                    alias, name);
    else if (tset_parse(m, to, &ts, MC_EINVAL, "the earlier target", missing, sizeof(missing)))
        rc = mc_err(MC_ENOENT,
                    "alias \"%s\" of \"%s\" pointed at %s before, which has been "
                    "removed; set it explicitly",
                    alias, name, missing[0] ? missing : to);
    for (size_t i = 0; rc == 0 && i < ts.n; i++)
        rc = need_ready(&ts.v[i]->v, alias);
    if (rc == 0) {
        alias_text(a, from, sizeof(from));
        rc = alias_move(r, m, alias, from[0] ? from : NULL, to, true, NULL, gen);
    }
    return reg_write_end(r, rc);
}

/* ---- removal ---------------------------------------------------------- */

/* Why v cannot go without force, or 0. */
static int held(const struct reg_model *m, const struct mc_reg_version *v)
{
    const struct reg_alias *a = model_alias_holding(m, v);

    if (a)
        return mc_err(MC_EBUSY,
                      "%s@%s is the target of alias \"%s\"; move the alias first, "
                      "or force the removal (%s)",
                      v->name, v->version, a->alias,
                      a->ntg > 1 ? "the alias's other targets take its weight"
                                 : "which removes the alias too");
    if (v->pinned)
        return mc_err(MC_EBUSY, "%s@%s is pinned; unpin it first, or force the removal", v->name,
                      v->version);
    return 0;
}

/*
 * The moves a forced removal of version rv makes in the same record: every
 * weighted alias holding it keeps its other targets, which take its weight
 * (tset_without), with a history entry saying so. A plain alias on rv is
 * removed with it, as replay does for any alias the record does not move.
 */
static int rm_moves(const struct reg_model *m, const struct reg_ver *rv, json_t *rec)
{
    json_t *moves = NULL;

    for (size_t k = 0; k < m->naliases; k++) {
        const struct reg_alias *a = &m->aliases[k];
        char from[TSET_TEXT_MAX], to[TSET_TEXT_MAX], why[TSET_TEXT_MAX + 600];
        struct tset now, left;
        uint32_t w = 0;
        json_t *mv;

        alias_tset(a, &now);
        for (size_t j = 0; j < now.n; j++)
            if (now.v[j] == rv)
                w = now.w[j];
        if (w == 0 || now.n < 2)
            continue;
        tset_without(&now, rv, &left);
        tset_format(&now, from, sizeof(from));
        tset_format(&left, to, sizeof(to));
        if (left.n == 1)
            snprintf(why, sizeof(why), "%s@%s removed: its %u%% goes to %s", m->name, rv->v.version,
                     w, to);
        else
            snprintf(why, sizeof(why), "%s@%s removed: its %u%% goes to the other targets (%s)",
                     m->name, rv->v.version, w, to);
        if (moves == NULL && (moves = json_array()) == NULL)
            return oom();
        mv = json_pack("{s:s,s:s,s:s,s:s}", "alias", a->alias, "from", from, "to", to, "why", why);
        if (mv == NULL || json_array_append_new(moves, mv)) {
            json_decref(moves);
            return oom();
        }
    }
    if (moves && json_object_set_new(rec, "moves", moves))
        return oom();
    return 0;
}

/*
 * The record of a removal (version NULL: the whole model), between the
 * commit marker's writing and clearing, then the artifacts go.
 */
static int rm_commit(struct mc_registry *r, const char *name, const char *version, bool force,
                     uint64_t *gen)
{
    const struct mc_art_ref ref = {name, version};
    json_t *rec = version_record(r->uid, "rm", name, version);
    int rc = rec ? 0 : oom();

    if (rc == 0 && force)
        json_object_set_new(rec, "force", json_true());
    if (rc == 0 && force && version) {
        const struct reg_model *m = state_model(r->st, name);
        const struct reg_ver *rv = m ? ver_exact(m, version) : NULL;

        if (rv)
            rc = rm_moves(m, rv, rec);
    }
    if (rc == 0)
        rc = r->art->ops->intent_write(r->art, &ref, 1);
    if (rc == 0) {
        rc = reg_commit(r, rec, gen);
        if (rc == 0) {
            mc_crashpoint("removed");
            if (version)
                r->art->ops->remove_version(r->art, name, version);
            else
                r->art->ops->remove_model(r->art, name);
        }
        r->art->ops->intent_clear(r->art);
    }
    json_decref(rec);
    return rc;
}

int mc_registry_remove_version(struct mc_registry *r, const char *name, const char *version,
                               bool force, uint64_t *gen)
{
    char exact[300];
    struct reg_ver *rv;
    int rc;

    reg_intent(r, "rm %s@%s%s", name ? name : "", version ? version : "", force ? " (force)" : "");
    rc = reg_write_begin(r);
    if (rc)
        return rc;
    rv = reg_need_version(r, name, version);
    if (rv == NULL)
        return reg_write_end(r, mc_name_check(name) ? MC_EINVAL : MC_ENOENT);
    rc = force ? 0 : held(state_model(r->st, name), &rv->v);
    snprintf(exact, sizeof(exact), "%s", rv->v.version); /* as registered */
    if (rc == 0)
        rc = rm_commit(r, name, exact, force, gen);
    return reg_write_end(r, rc);
}

int mc_registry_remove_model(struct mc_registry *r, const char *name, bool force, uint64_t *gen)
{
    struct reg_model *m;
    int rc;

    reg_intent(r, "rm %s%s", name ? name : "", force ? " (force)" : "");
    rc = reg_write_begin(r);
    if (rc)
        return rc;
    m = reg_need_model(r, name);
    if (m == NULL)
        return reg_write_end(r, mc_name_check(name) ? MC_EINVAL : MC_ENOENT);
    for (size_t i = 0; !force && rc == 0 && i < m->nvers; i++)
        rc = held(m, m->vers[i]);
    if (rc == 0)
        rc = rm_commit(r, name, NULL, force, gen);
    return reg_write_end(r, rc);
}

/* ---- retention -------------------------------------------------------- */

static int newest_first(const void *a, const void *b)
{
    const struct mc_reg_version *x = *(const struct mc_reg_version *const *)a;
    const struct mc_reg_version *y = *(const struct mc_reg_version *const *)b;

    if (x->created_ns != y->created_ns)
        return x->created_ns > y->created_ns ? -1 : 1;
    return -mc_semver_cmp(&x->sv, &y->sv);
}

static bool aliased(const struct reg_model *m, const struct mc_reg_version *v)
{
    return model_alias_holding(m, v) != NULL;
}

/* Append to *out the versions of m that retention lets go. */
static int gc_model(const struct reg_model *m, const struct mc_gc_opts *o, uint64_t now,
                    const struct mc_reg_version ***out, size_t *n, size_t *cap)
{
    const struct mc_reg_version **by_age = malloc((m->nvers + 1) * sizeof(*by_age));

    if (by_age == NULL)
        return MC_ENOMEM;
    memcpy(by_age, m->vers, m->nvers * sizeof(*by_age));
    qsort(by_age, m->nvers, sizeof(*by_age), newest_first);
    for (size_t i = 0; i < m->nvers; i++) {
        const struct mc_reg_version *v = by_age[i];
        bool keep = (o->keep && i < o->keep) ||
                    (o->days && v->created_ns + (uint64_t)o->days * NS_PER_DAY > now) ||
                    aliased(m, v) || v->pinned;

        if (keep)
            continue;
        if (mc_vec_reserve(out, cap, *n + 1, sizeof(**out), 64)) {
            free(by_age);
            return MC_ENOMEM;
        }
        (*out)[(*n)++] = v;
    }
    free(by_age);
    return 0;
}

static int gc_commit(struct mc_registry *r, const struct mc_reg_version **go, size_t n,
                     uint64_t *gen)
{
    struct mc_art_ref *refs = calloc(n, sizeof(*refs));
    json_t *rec = rec_new("gc", r->uid), *list = json_array();
    char(*keys)[2][300] = malloc(n * sizeof(*keys));
    int rc = 0;

    if (refs == NULL || rec == NULL || list == NULL || keys == NULL ||
        json_object_set(rec, "removed", list)) {
        rc = oom();
        goto out;
    }
    /* the versions go with the record: keep their names for the artifacts */
    for (size_t i = 0; i < n && rc == 0; i++) {
        snprintf(keys[i][0], sizeof(keys[i][0]), "%s", go[i]->name);
        snprintf(keys[i][1], sizeof(keys[i][1]), "%s", go[i]->version);
        refs[i] = (struct mc_art_ref){keys[i][0], keys[i][1]};
        if (json_array_append_new(
                list, json_pack("{s:s,s:s}", "name", go[i]->name, "version", go[i]->version)))
            rc = oom();
    }
    if (rc == 0)
        rc = r->art->ops->intent_write(r->art, refs, n);
    if (rc == 0) {
        rc = reg_commit(r, rec, gen);
        for (size_t i = 0; rc == 0 && i < n; i++)
            r->art->ops->remove_version(r->art, keys[i][0], keys[i][1]);
        r->art->ops->intent_clear(r->art);
    }
out:
    free(refs);
    free(keys);
    json_decref(list);
    json_decref(rec);
    return rc;
}

int mc_registry_gc(struct mc_registry *r, const struct mc_gc_opts *o, size_t *removed,
                   uint64_t *gen)
{
    const struct mc_reg_version **go = NULL;
    size_t n = 0, cap = 0;
    uint64_t now = o->now_ns ? o->now_ns : mc_wall_ns();
    int rc;

    if (removed)
        *removed = 0;
    reg_intent(r, o->dry_run ? NULL : "gc%s%s", o->name ? " " : "", o->name ? o->name : "");
    if (o->keep == 0 && o->days == 0)
        return mc_err(MC_EINVAL, "retention needs a rule: keep the newest N versions, keep "
                                 "those younger than D days, or both");
    if (o->name && mc_name_check(o->name) != 0)
        return MC_EINVAL;
    /*
     * Content no version refers to (a push that died between its store's
     * place and commit): listed now, without the lock; deleted under it.
     */
    bool sweep = !o->dry_run && r->art->ops->sweep && r->art->ops->sweep(r->art, false) == 0;

    if (!o->dry_run && r->art->ops->sweep && !sweep)
        mc_reg_reportf(r->warn, r->warn_arg, "gc could not list the artifact store's "
                       "unreferenced content (%s); it stays until the next gc", mc_last_error());
    rc = o->dry_run ? mc_registry_refresh(r, NULL) : reg_write_begin(r);
    if (rc)
        return rc;
    if (o->name) {
        struct reg_model *m = reg_need_model(r, o->name);

        rc = m ? gc_model(m, o, now, &go, &n, &cap) : MC_ENOENT;
    } else {
        state_sort(r->st);
        for (size_t i = 0; rc == 0 && i < r->st->count; i++)
            rc = gc_model(r->st->sorted[i], o, now, &go, &n, &cap);
    }
    if (rc == MC_ENOMEM)
        mc_err(rc, "out of memory planning retention");
    for (size_t i = 0; rc == 0 && o->each && i < n; i++)
        o->each(o->arg, go[i]);
    if (removed && rc == 0)
        *removed = n;
    if (o->dry_run) {
        free(go);
        return rc;
    }
    /* in batches, so that no record outgrows its limit */
    for (size_t i = 0; rc == 0 && i < n; i += GC_BATCH)
        rc = gc_commit(r, go + i, n - i < GC_BATCH ? n - i : GC_BATCH, gen);
    if (rc == 0 && sweep && r->art->ops->sweep(r->art, true) != 0)
        mc_reg_reportf(r->warn, r->warn_arg, "gc could not delete the artifact store's "
                       "unreferenced content (%s); it stays until the next gc", mc_last_error());
    if (rc == 0 && n == 0 && gen)
        *gen = mc_registry_generation(r);
    free(go);
    return reg_write_end(r, rc);
}

/* ---- maintenance ------------------------------------------------------ */

int mc_registry_compact(struct mc_registry *r)
{
    int rc;

    reg_intent(r, NULL);
    rc = reg_write_begin(r);

    if (rc)
        return rc;
    return reg_write_end(r, r->be->ops->compact(r->be, state_emit, r->st));
}

struct checker {
    void (*report)(void *, const char *);
    void *arg;
    size_t problems;
};

static void check_report(void *arg, const char *msg)
{
    struct checker *c = arg;

    c->problems++;
    if (c->report)
        c->report(c->arg, msg);
}

/* Open dir without replaying and salvage what its metadata holds. */
static int salvage(const char *dir, const struct mc_registry_opts *o, unsigned flags,
                   struct checker *c, struct mc_registry **out, struct mc_reg_damage *d)
{
    struct mc_registry *r;
    struct reg_state *st;
    int rc = reg_open_noload(dir, o ? o->backend : NULL, o ? o->registry : NULL,
                             o ? o->artifacts : NULL, o ? o->artifacts_creds : NULL, flags,
                             check_report, c, &r);

    if (rc)
        return rc;
    rc = reg_lock(r, flags & MC_REGISTRY_READONLY ? MC_REG_SHARED : MC_REG_EXCLUSIVE);
    st = rc ? NULL : state_new(r->art->ops->root(r->art));
    if (rc == 0 && st == NULL)
        rc = mc_err(MC_ENOMEM, "out of memory");
    if (rc == 0) {
        st->lenient = true;
        st->report = check_report;
        st->report_arg = c;
        rc = r->be->ops->salvage(r->be, state_apply, st, check_report, c, d);
    }
    if (rc) {
        state_free(st);
        mc_registry_close(r);
        return rc;
    }
    r->st = st;
    *out = r;
    return 0;
}

int mc_registry_check(const char *dir, unsigned flags, void (*report)(void *, const char *),
                      void *arg, size_t *problems)
{
    return mc_registry_check_opts(dir, NULL, flags, report, arg, problems);
}

int mc_registry_check_opts(const char *dir, const struct mc_registry_opts *o, unsigned flags,
                           void (*report)(void *, const char *), void *arg, size_t *problems)
{
    struct checker c = {.report = report, .arg = arg};
    struct mc_registry *r;
    struct mc_reg_damage d;
    size_t manifest_problems, strays = 0;
    int rc = salvage(dir, o, MC_REGISTRY_READONLY, &c, &r, &d);

    if (problems)
        *problems = 0;
    if (rc)
        return rc;
    manifest_problems = c.problems;
    state_sort(r->st);
    for (size_t i = 0; (flags & (MC_CHECK_ARTIFACTS | MC_CHECK_CHECKSUMS)) && i < r->st->count;
         i++) {
        const struct reg_model *m = r->st->sorted[i];

        for (size_t k = 0; k < m->nvers; k++)
            r->art->ops->verify(r->art, m->vers[k], flags & MC_CHECK_CHECKSUMS, check_report, &c);
    }
    /* each orphan is counted by check_report */
    if (flags & (MC_CHECK_ARTIFACTS | MC_CHECK_CHECKSUMS))
        r->art->ops->orphans(r->art, state_holds, r->st, false, check_report, &c, &strays);
    mc_registry_close(r);
    if (problems)
        *problems = c.problems;
    if (manifest_problems)
        return mc_err(MC_ECORRUPT,
                      "%s: the manifest has %zu problem%s; `mcache fsck --repair` "
                      "keeps what is sound and moves damaged files aside",
                      dir, manifest_problems, manifest_problems == 1 ? "" : "s");
    if (c.problems)
        return mc_err(MC_EIO, "%s: %zu problem%s with artifacts or stray files", dir, c.problems,
                      c.problems == 1 ? "" : "s");
    return 0;
}

int mc_registry_repair(const char *dir, void (*report)(void *, const char *), void *arg)
{
    return mc_registry_repair_opts(dir, NULL, report, arg);
}

int mc_registry_repair_opts(const char *dir, const struct mc_registry_opts *o,
                            void (*report)(void *, const char *), void *arg)
{
    struct checker c = {.report = report, .arg = arg};
    struct mc_registry *r;
    struct mc_reg_damage d;
    int rc = salvage(dir, o, 0, &c, &r, &d);

    if (rc)
        return rc;
    if (!d.damaged && r->st->skipped == 0) {
        /* at most a torn tail: the ordinary open cuts it */
        reg_unlock(r);
        mc_registry_close(r);
        if (d.torn_tail) {
            struct mc_registry_opts oo = {.warn = report,
                                          .warn_arg = arg,
                                          .backend = o ? o->backend : NULL,
                                          .registry = o ? o->registry : NULL};

            rc = mc_registry_open(dir, &oo, &r);
            mc_registry_close(r);
            return rc;
        }
        if (report)
            report(arg, "the manifest is sound; nothing to repair");
        return 0;
    }
    r->st->lenient = false;
    rc = r->be->ops->repair(r->be, r->st->skipped, state_emit, r->st, check_report, &c);
    if (rc == 0)
        rc = reg_cleanup(r);
    if (rc == 0) {
        size_t moved = 0;
        /* Artifacts of the records that were lost go aside with them. */
        r->art->ops->orphans(r->art, state_holds, r->st, true, report, arg, &moved);
        mc_reg_reportf(check_report, &c, "wrote a new snapshot of %s at generation %llu", r->dir,
                       (unsigned long long)mc_registry_generation(r));
    }
    reg_unlock(r);
    mc_registry_close(r);
    return rc;
}
