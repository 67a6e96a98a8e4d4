/*
 * reg_record.c - the record codec: a manifest record's fields read and
 * checked as strictly as the API checks its arguments, a version built from
 * them in one block, and the way back: versions, metadata and the whole
 * state as records and snapshot entries.
 *
 * Whether a record fits the state, and what it does to it, is reg_apply.c's
 * business; this file says whether its fields are well formed and turns
 * them into values.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/hex.h"
#include "index/name.h"
#include "registry/reg_int.h"

#define DESC_MAX        4096
#define SHORT_MAX       64
#define SOURCE_MAX      2048
#define VALUE_MAX       1024
#define MAP_MAX         256
#define VERSION_DIR_MAX 255 /* a version names a directory */

static const char *const format_names[] = {"other", "safetensors", "gguf", "onnx"};
static const char *const status_names[] = {"registering", "ready", "failed", "archived"};

const char *mc_reg_format_name(enum mc_reg_format f)
{
    return (unsigned)f < 4 ? format_names[f] : "other";
}

const char *mc_reg_status_name(enum mc_reg_status s)
{
    return (unsigned)s < 4 ? status_names[s] : "unknown";
}

int mc_reg_status_parse(const char *s, enum mc_reg_status *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, status_names[i]) == 0) {
            *out = (enum mc_reg_status)i;
            return 0;
        }
    }
    return mc_err(MC_EINVAL, "status \"%s\" is not one of registering, ready, failed, archived",
                  s ? s : "");
}

static int format_parse(const char *s, enum mc_reg_format *out)
{
    for (int i = 0; i < 4; i++) {
        if (s && strcmp(s, format_names[i]) == 0) {
            *out = (enum mc_reg_format)i;
            return 0;
        }
    }
    return -1;
}

/* ---- reading fields --------------------------------------------------- */

int rec_fail(struct rec *r, int code, const char *fmt, ...)
{
    char msg[900];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->err = mc_err(code, "%s", msg);
    return r->err;
}

static bool has_ctl(const char *s, bool allow_newline)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if ((c < 0x20 && !(allow_newline && (c == '\n' || c == '\t'))) || c == 0x7f)
            return true;
    }
    return false;
}

/*
 * A string member x (looked up under key): required or optional (NULL if
 * absent or null).
 */
static int str_of(struct rec *r, const char *key, const struct mc_jval *x, bool required,
                  const char **out)
{
    *out = NULL;
    if (x == NULL || x->type == MC_JNULL) {
        if (required)
            return rec_fail(r, MC_ECORRUPT, "a \"%s\" record lacks \"%s\"", r->op, key);
        return 0;
    }
    if (x->type != MC_JSTR)
        return rec_fail(r, MC_ECORRUPT, "\"%s\" of a \"%s\" record is not a string", key, r->op);
    *out = x->u.s;
    return 0;
}

static int uint_of(struct rec *r, const char *key, const struct mc_jval *x, bool required,
                   uint64_t max, uint64_t *out)
{
    *out = 0;
    if (x == NULL && !required)
        return 0;
    if (x == NULL || x->type != MC_JINT || x->u.i < 0 || (uint64_t)x->u.i > max)
        return rec_fail(r, MC_ECORRUPT, "\"%s\" of a \"%s\" record is not a number from 0 to %llu",
                        key, r->op, (unsigned long long)max);
    *out = (uint64_t)x->u.i;
    return 0;
}

static int bool_of(struct rec *r, const char *key, const struct mc_jval *x, int *out)
{
    if (x == NULL)
        return 0; /* keep *out */
    if (x->type != MC_JTRUE && x->type != MC_JFALSE)
        return rec_fail(r, MC_ECORRUPT, "\"%s\" of a \"%s\" record is not true or false", key,
                        r->op);
    *out = x->type == MC_JTRUE;
    return 0;
}

int rec_str(struct rec *r, const char *key, bool required, const char **out)
{
    return str_of(r, key, mc_jval_get(r->j, key), required, out);
}

int rec_uint(struct rec *r, const char *key, bool required, uint64_t max, uint64_t *out)
{
    return uint_of(r, key, mc_jval_get(r->j, key), required, max, out);
}

int rec_bool(struct rec *r, const char *key, int *out)
{
    return bool_of(r, key, mc_jval_get(r->j, key), out);
}

/* ---- versions from records -------------------------------------------- */

const char *const rec_meta_keys[6] = {"description", "framework", "precision",
                                      "device",      "parent",    "source"};

/* A version's members, in the order version_to_json() writes them. */
enum {
    VF_NAME,
    VF_VERSION,
    VF_T,
    VF_UID,
    VF_SIZE,
    VF_FORMAT,
    VF_CHECKSUM,
    VF_STATUS,
    VF_REASON,
    VF_PRELOAD,
    VF_PINNED,
    VF_STR, /* the six of rec_meta_keys */
    VF_METRICS = VF_STR + 6,
    VF_PARAMS,
    VF_TAGS,
    VF_CHANGED,
    VF_COUNT
};

/* a key and its length */
#define VF_KEY(s) s, sizeof(s) - 1
static const struct {
    const char *key;
    size_t len;
} vf_keys[VF_COUNT] = {
    {VF_KEY("name")},      {VF_KEY("version")},   {VF_KEY("t")},        {VF_KEY("uid")},
    {VF_KEY("size")},      {VF_KEY("format")},    {VF_KEY("checksum")}, {VF_KEY("status")},
    {VF_KEY("reason")},    {VF_KEY("preload")},   {VF_KEY("pinned")},   {VF_KEY("description")},
    {VF_KEY("framework")}, {VF_KEY("precision")}, {VF_KEY("device")},   {VF_KEY("parent")},
    {VF_KEY("source")},    {VF_KEY("metrics")},   {VF_KEY("params")},   {VF_KEY("tags")},
    {VF_KEY("changed")},
};

/* Check the metadata strings: what the API refuses, replay refuses too. */
static int meta_str_check(struct rec *r, int code, int k, const char *s)
{
    char q[MC_QUOTE_MAX];
    size_t n = strlen(s);
    size_t max = k == 0   ? DESC_MAX
                 : k == 5 ? SOURCE_MAX
                 : k == 4 ? MC_NAME_MAX + 1 + 256
                          : SHORT_MAX;

#define q mc_quote(q, sizeof(q), s, n)
    if (n > max)
        return rec_fail(r, code, "the %s %s is %zu bytes long; at most %zu are allowed",
                        rec_meta_keys[k], q, n, max);
    if (has_ctl(s, k == 0))
        return rec_fail(r, code, "the %s %s contains control characters%s", rec_meta_keys[k], q,
                        k == 0 ? " (only newlines and tabs are allowed)" : "");
    if (k == 5 && strchr(s, ' '))
        return rec_fail(r, code,
                        "the source %s contains a space; give a URI (escape spaces as "
                        "%%20)",
                        q);
    if (k == 4) {
        const char *at = strrchr(s, '@');
        struct mc_semver sv;
        char name[MC_NAME_MAX + 2];

        if (at == NULL || (size_t)(at - s) > MC_NAME_MAX)
            return rec_fail(r, code, "the parent %s is not NAME@VERSION, e.g. resnet@1.2.0", q);
        memcpy(name, s, (size_t)(at - s));
        name[at - s] = '\0';
        if (mc_name_check(name) != 0 || mc_semver_parse(at + 1, strlen(at + 1), &sv) != 0)
            return r->err = mc_err_prefix(code, "the parent %s is not NAME@VERSION", q);
    }
#undef q
    return 0;
}

int rec_map_check(struct rec *r, int code, const char *what, const struct mc_jval *obj,
                  bool numbers, bool patch)
{
    if (obj == NULL || obj->type == MC_JNULL)
        return 0;
    if (obj->type != MC_JOBJ)
        return rec_fail(r, code, "the %ss are not an object", what);
    if (obj->n > MAP_MAX)
        return rec_fail(r, code, "there are %zu %ss; at most %d are allowed", (size_t)obj->n, what,
                        MAP_MAX);
    for (uint32_t i = 0; i < obj->n; i++) {
        const char *key = obj->u.m[i].key;
        const struct mc_jval *val = &obj->u.m[i].v;
        char q[MC_QUOTE_MAX];

        if (mc_key_check(what, key) != 0)
            return r->err = code; /* with the message the check set */
        if (patch && val->type == MC_JNULL)
            continue;
        if (numbers) {
            if (!mc_jval_is_num(val) || !isfinite(mc_jval_num(val)))
                return rec_fail(r, code, "metric \"%s\" is not a finite number", key);
            continue;
        }
        if (val->type != MC_JSTR)
            return rec_fail(r, code, "%s \"%s\" is not a string", what, key);
        if (val->n > VALUE_MAX)
            return rec_fail(r, code, "%s \"%s\" is %zu bytes long; at most %d are allowed", what,
                            key, (size_t)val->n, VALUE_MAX);
        if (has_ctl(val->u.s, false))
            return rec_fail(r, code, "%s \"%s\" = %s contains control characters", what, key,
                            mc_quote(q, sizeof(q), val->u.s, val->n));
    }
    return 0;
}

/* The record's "op", read before r->op can name it in messages. */
int rec_op(struct rec *r)
{
    const char *op;

    r->op = "unnamed";
    if (rec_str(r, "op", true, &op))
        return r->err;
    r->op = op;
    return 0;
}

/* Read and check a version's fields. code: MC_EINVAL for API input, else MC_ECORRUPT. */
int vfields_read(struct rec *r, int code, struct vfields *f)
{
    char q[MC_QUOTE_MAX];
    struct mc_semver sv;
    enum mc_reg_format fmt;
    enum mc_reg_status st;
    const struct mc_jval *x[VF_COUNT];
    int rc;

    memset(f, 0, sizeof(*f));
    /* look the members up in the order they are written: one comparison each */
    for (int k = 0; k < VF_COUNT; k++)
        x[k] = mc_jval_getn(r->j, vf_keys[k].key, vf_keys[k].len);
    if ((rc = str_of(r, "name", x[VF_NAME], true, &f->name)) ||
        (rc = str_of(r, "version", x[VF_VERSION], true, &f->version)) ||
        (rc = str_of(r, "checksum", x[VF_CHECKSUM], true, &f->checksum)) ||
        (rc = str_of(r, "format", x[VF_FORMAT], true, &f->format)) ||
        (rc = str_of(r, "status", x[VF_STATUS], false, &f->status)) ||
        (rc = str_of(r, "reason", x[VF_REASON], false, &f->reason)) ||
        (rc = uint_of(r, "size", x[VF_SIZE], true, INT64_MAX, &f->size)) ||
        (rc = uint_of(r, "t", x[VF_T], true, INT64_MAX, &f->t)) ||
        (rc = uint_of(r, "uid", x[VF_UID], true, UINT32_MAX, &f->uid)) ||
        (rc = uint_of(r, "changed", x[VF_CHANGED], false, INT64_MAX, &f->changed)) ||
        (rc = bool_of(r, "preload", x[VF_PRELOAD], &f->preload)) ||
        (rc = bool_of(r, "pinned", x[VF_PINNED], &f->pinned)))
        return rc;
    f->name_len = x[VF_NAME]->n;
    f->version_len = x[VF_VERSION]->n;
    f->checksum_len = x[VF_CHECKSUM]->n;
    f->reason_len = f->reason ? x[VF_REASON]->n : 0;
    if (mc_name_check(f->name) != 0)
        return r->err = code; /* with the message the check set */
    if (mc_semver_parse(f->version, f->version_len, &sv) != 0)
        return r->err = mc_err_prefix(code, "model \"%s\"", f->name);
    if (f->version_len > VERSION_DIR_MAX)
        return rec_fail(r, code,
                        "version %s of \"%s\" is %zu bytes long; at most %d are allowed "
                        "(it names a directory)",
                        mc_quote(q, sizeof(q), f->version, f->version_len), f->name, f->version_len,
                        VERSION_DIR_MAX);
    if (!mc_checksum_valid(f->checksum, false))
        return rec_fail(r, code, "checksum %s of %s@%s is not xxh3-128:<32 lowercase hex digits>",
                        mc_quote(q, sizeof(q), f->checksum, f->checksum_len), f->name, f->version);
    if (format_parse(f->format, &fmt) != 0)
        return rec_fail(r, code,
                        "format \"%s\" of %s@%s is not one of other, safetensors, gguf, "
                        "onnx",
                        f->format, f->name, f->version);
    if (f->status && mc_reg_status_parse(f->status, &st) != 0)
        return r->err = code; /* with the message the check set */
    if (f->reason && (f->reason_len > VALUE_MAX || has_ctl(f->reason, false)))
        return rec_fail(r, code,
                        "the status reason of %s@%s is longer than %d bytes or has "
                        "control characters",
                        f->name, f->version, VALUE_MAX);
    for (int k = 0; k < 6; k++) {
        if ((rc = str_of(r, rec_meta_keys[k], x[VF_STR + k], false, &f->str[k])))
            return rc;
        f->str_len[k] = f->str[k] ? x[VF_STR + k]->n : 0;
        if (f->str[k] && (rc = meta_str_check(r, code, k, f->str[k])))
            return rc;
    }
    f->metrics = x[VF_METRICS];
    f->params = x[VF_PARAMS];
    f->tags = x[VF_TAGS];
    if ((rc = rec_map_check(r, code, "metric", f->metrics, true, false)) ||
        (rc = rec_map_check(r, code, "param", f->params, false, false)) ||
        (rc = rec_map_check(r, code, "tag", f->tags, false, false)))
        return rc;
    return 0;
}

/* The block a version's strings and arrays live in: sized, then filled. */
struct blob {
    char *base;
    size_t used, size;
};

static void *blob_take(struct blob *b, size_t n, size_t align)
{
    size_t at = (b->used + align - 1) & ~(align - 1);

    b->used = at + n;
    return b->base ? b->base + at : NULL;
}

/* s (n bytes) and a NUL; NULL stays NULL. */
static const char *blob_str(struct blob *b, const char *s, size_t n)
{
    char *p;

    if (s == NULL)
        return NULL;
    p = blob_take(b, n + 1, 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

static int metric_cmp(const void *a, const void *b)
{
    return strcmp(((const struct mc_reg_metric *)a)->key, ((const struct mc_reg_metric *)b)->key);
}

static int kv_cmp(const void *a, const void *b)
{
    return strcmp(((const struct mc_reg_kv *)a)->key, ((const struct mc_reg_kv *)b)->key);
}

/* qsort(), but a few items (the usual map) by insertion, without its overhead. */
static void sort_small(void *arr, size_t n, size_t each, int (*cmp)(const void *, const void *))
{
    unsigned char *a = arr, tmp[sizeof(struct mc_reg_kv) > sizeof(struct mc_reg_metric)
                                    ? sizeof(struct mc_reg_kv)
                                    : sizeof(struct mc_reg_metric)];

    if (n > 16 || each > sizeof(tmp)) {
        qsort(arr, n, each, cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        size_t k = i;

        memcpy(tmp, a + i * each, each);
        for (; k > 0 && cmp(a + (k - 1) * each, tmp) > 0; k--)
            memcpy(a + k * each, a + (k - 1) * each, each);
        memcpy(a + k * each, tmp, each);
    }
}

static void *blob_map(struct blob *b, const struct mc_jval *obj, bool numbers, size_t *count)
{
    size_t n = obj && obj->type == MC_JOBJ ? obj->n : 0;
    size_t each = numbers ? sizeof(struct mc_reg_metric) : sizeof(struct mc_reg_kv);
    void *arr = blob_take(b, n * each, 8);

    *count = n;
    if (n == 0)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        const struct mc_jval *val = &obj->u.m[i].v;
        const char *k = blob_str(b, obj->u.m[i].key, obj->u.m[i].klen);

        if (numbers) {
            if (arr)
                ((struct mc_reg_metric *)arr)[i] = (struct mc_reg_metric){k, mc_jval_num(val)};
        } else {
            const char *v = blob_str(b, val->u.s, val->n);

            if (arr)
                ((struct mc_reg_kv *)arr)[i] = (struct mc_reg_kv){k, v};
        }
    }
    if (arr)
        sort_small(arr, n, each, numbers ? metric_cmp : kv_cmp);
    return arr;
}

static void blob_fill(struct blob *b, struct mc_reg_version *v, const struct vfields *f,
                      const char *root, size_t root_len)
{
    const char **dst[6] = {&v->description, &v->framework, &v->precision,
                           &v->device,      &v->parent,    &v->source};
    size_t plen = root_len + f->name_len + f->version_len + 32;
    char *path;

    v->name = blob_str(b, f->name, f->name_len);
    v->version = blob_str(b, f->version, f->version_len);
    v->checksum = blob_str(b, f->checksum, f->checksum_len);
    v->status_reason = blob_str(b, f->reason, f->reason_len);
    for (int k = 0; k < 6; k++)
        *dst[k] = blob_str(b, f->str[k], f->str_len[k]);
    path = blob_take(b, plen, 1);
    if (path) {
        /* root/name/version/artifact (backend.h: mc_art_store_ops.root) */
        const struct {
            const char *s;
            size_t n;
        } parts[] = {{root, root_len},
                     {"/", 1},
                     {f->name, f->name_len},
                     {"/", 1},
                     {f->version, f->version_len},
                     {"/artifact", 9}};
        char *p = path;

        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
            memcpy(p, parts[i].s, parts[i].n);
            p += parts[i].n;
        }
        *p = '\0';
    }
    v->path = path;
    v->metrics = blob_map(b, f->metrics, true, &v->nmetrics);
    v->params = blob_map(b, f->params, false, &v->nparams);
    v->tags = blob_map(b, f->tags, false, &v->ntags);
}

/* Build a version from checked fields: one block, the struct then its strings and arrays. */
struct reg_ver *ver_build(const struct vfields *f, const char *art_root, uint64_t gen)
{
    size_t head = (sizeof(struct reg_ver) + 15) & ~(size_t)15, root_len = strlen(art_root);
    struct mc_reg_version sizing;
    struct blob b = {0};
    struct mc_reg_version *v;
    struct reg_ver *rv;

    blob_fill(&b, &sizing, f, art_root, root_len); /* sizing pass */
    rv = malloc(head + b.used);
    if (rv == NULL)
        return NULL;
    memset(rv, 0, sizeof(*rv));
    v = &rv->v;
    b.base = (char *)rv + head;
    b.size = b.used;
    b.used = 0;
    blob_fill(&b, v, f, art_root, root_len);
    rv->blob = NULL; /* the strings are in rv's own block */
    mc_semver_parse(v->version, f->version_len, &v->sv);
    v->size = f->size;
    format_parse(f->format, &v->format);
    v->status = MC_STATUS_READY;
    if (f->status)
        mc_reg_status_parse(f->status, &v->status);
    v->created_ns = f->t;
    v->created_by = (uint32_t)f->uid;
    v->preload = f->preload;
    v->pinned = f->pinned;
    v->generation = f->changed ? f->changed : gen;
    return rv;
}

/* ---- versions to records ---------------------------------------------- */

json_t *rec_new(const char *op, uint32_t uid)
{
    json_t *r = json_object();

    if (r == NULL)
        return NULL;
    if (json_object_set_new(r, "g", json_integer(0)) ||
        json_object_set_new(r, "op", json_string(op)) ||
        json_object_set_new(r, "t", json_integer((json_int_t)mc_wall_ns())) ||
        json_object_set_new(r, "uid", json_integer(uid))) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    return v ? json_object_set_new(o, k, json_string(v)) : 0;
}

/* A record naming one version (version NULL: a model): {"g","op","t","uid","name","version"}. */
json_t *version_record(uint32_t uid, const char *op, const char *name, const char *version)
{
    json_t *rec = rec_new(op, uid);

    if (rec && (json_object_set_new(rec, "name", json_string(name)) ||
                (version && json_object_set_new(rec, "version", json_string(version))))) {
        json_decref(rec);
        rec = NULL;
    }
    return rec;
}

/*
 * v's fields into obj: as a record (full: "t"/"uid"/"changed") or as the
 * metadata JSON the daemon hands to workers ("created_ns"/"created_by").
 */
int version_to_json(const struct mc_reg_version *v, json_t *obj, bool record)
{
    json_t *metrics = NULL, *params = NULL, *tags = NULL;
    int rc = 0;

    rc |= json_object_set_new(obj, "name", json_string(v->name));
    rc |= json_object_set_new(obj, "version", json_string(v->version));
    rc |= json_object_set_new(obj, record ? "t" : "created_ns",
                              json_integer((json_int_t)v->created_ns));
    rc |= json_object_set_new(obj, record ? "uid" : "created_by", json_integer(v->created_by));
    rc |= json_object_set_new(obj, "size", json_integer((json_int_t)v->size));
    rc |= json_object_set_new(obj, "format", json_string(mc_reg_format_name(v->format)));
    rc |= json_object_set_new(obj, "checksum", json_string(v->checksum));
    rc |= json_object_set_new(obj, "status", json_string(mc_reg_status_name(v->status)));
    rc |= set_str(obj, "reason", v->status_reason);
    rc |= json_object_set_new(obj, "preload", json_boolean(v->preload));
    rc |= json_object_set_new(obj, "pinned", json_boolean(v->pinned));
    for (int k = 0; k < 6; k++) {
        const char *const vals[6] = {v->description, v->framework, v->precision,
                                     v->device,      v->parent,    v->source};

        rc |= set_str(obj, rec_meta_keys[k], vals[k]);
    }
    if (v->nmetrics) {
        metrics = json_object();
        for (size_t i = 0; metrics && i < v->nmetrics; i++)
            rc |= json_object_set_new(metrics, v->metrics[i].key, json_real(v->metrics[i].value));
        rc |= json_object_set_new(obj, "metrics", metrics);
    }
    if (v->nparams) {
        params = json_object();
        for (size_t i = 0; params && i < v->nparams; i++)
            rc |= json_object_set_new(params, v->params[i].key, json_string(v->params[i].value));
        rc |= json_object_set_new(obj, "params", params);
    }
    if (v->ntags) {
        tags = json_object();
        for (size_t i = 0; tags && i < v->ntags; i++)
            rc |= json_object_set_new(tags, v->tags[i].key, json_string(v->tags[i].value));
        rc |= json_object_set_new(obj, "tags", tags);
    }
    if (record)
        rc |= json_object_set_new(obj, "changed", json_integer((json_int_t)v->generation));
    return rc ? MC_ENOMEM : 0;
}

char *mc_reg_version_json(const struct mc_reg_version *v)
{
    json_t *o = json_object();
    char *s = NULL;

    if (o && version_to_json(v, o, false) == 0)
        s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (s == NULL)
        mc_err(MC_ENOMEM, "out of memory writing the metadata of %s@%s", v->name, v->version);
    return s;
}

/* The C metadata into a record; with patch, NULL values and NaN metrics become null. */
int meta_to_json(const struct mc_reg_meta *meta, json_t *obj, bool patch)
{
    const char *const vals[6] = {meta->description, meta->framework, meta->precision,
                                 meta->device,      meta->parent,    meta->source};
    json_t *m;
    int rc = 0;

    for (int k = 0; k < 6; k++)
        if (vals[k])
            rc |= json_object_set_new(obj, rec_meta_keys[k],
                                      patch && !vals[k][0] ? json_null() : json_string(vals[k]));
    if (meta->nmetrics) {
        /* attached first, so an error below leaves nothing to free */
        m = json_object();
        if (json_object_set_new(obj, "metrics", m))
            return mc_err(MC_ENOMEM, "out of memory");
        for (size_t i = 0; i < meta->nmetrics; i++) {
            double x = meta->metrics[i].value;

            if (!meta->metrics[i].key)
                return mc_err(MC_EINVAL, "metric %zu has no name", i);
            if (!patch && !isfinite(x))
                return mc_err(MC_EINVAL, "metric \"%s\" is not a finite number",
                              meta->metrics[i].key);
            rc |= json_object_set_new(m, meta->metrics[i].key,
                                      patch && isnan(x) ? json_null() : json_real(x));
        }
    }
    for (int t = 0; t < 2; t++) {
        const struct mc_reg_kv *kv = t ? meta->tags : meta->params;
        size_t n = t ? meta->ntags : meta->nparams;

        if (n == 0)
            continue;
        m = json_object();
        if (json_object_set_new(obj, t ? "tags" : "params", m))
            return mc_err(MC_ENOMEM, "out of memory");
        for (size_t i = 0; i < n; i++) {
            if (!kv[i].key)
                return mc_err(MC_EINVAL, "%s %zu has no name", t ? "tag" : "param", i);
            if (!kv[i].value && !patch)
                return mc_err(MC_EINVAL, "%s \"%s\" has no value", t ? "tag" : "param", kv[i].key);
            rc |= json_object_set_new(m, kv[i].key,
                                      kv[i].value ? json_string(kv[i].value) : json_null());
        }
    }
    /* a string that is not UTF-8 makes json_string() return NULL */
    return rc ? mc_err(MC_EINVAL, "metadata must be UTF-8 text") : 0;
}

/* ---- the state as snapshot entries ------------------------------------ */

static json_t *alias_entry(const struct reg_model *m, const struct reg_alias *a)
{
    json_t *o = json_object(), *hist = json_array();
    char text[TSET_TEXT_MAX];
    struct tset ts;

    alias_tset(a, &ts);
    tset_format(&ts, text, sizeof(text));
    if (o == NULL || hist == NULL)
        goto fail;
    if (json_object_set_new(o, "op", json_string("alias")) ||
        json_object_set_new(o, "name", json_string(m->name)) ||
        json_object_set_new(o, "alias", json_string(a->alias)) ||
        json_object_set_new(o, "target", a->ntg ? json_string(text) : json_null()))
        goto fail;
    for (size_t i = 0; i < a->nhist; i++) {
        const struct mc_reg_move *mv = &a->hist[i];
        json_t *h = json_pack(
            "{s:o,s:o,s:I,s:I,s:I,s:b}", "from", mv->from ? json_string(mv->from) : json_null(),
            "to", mv->to ? json_string(mv->to) : json_null(), "t", (json_int_t)mv->at_ns, "uid",
            (json_int_t)mv->uid, "g", (json_int_t)mv->generation, "rollback", mv->rollback);

        if (h == NULL || (mv->why && json_object_set_new(h, "why", json_string(mv->why))) ||
            json_array_append_new(hist, h))
            goto fail;
    }
    json_object_set_new(o, "history", hist);
    return o;
fail:
    json_decref(hist);
    json_decref(o);
    return NULL;
}

int state_emit(void *arg, mc_reg_put_fn put, void *ctx)
{
    struct reg_state *st = arg;
    int rc;

    state_sort(st);
    if (st->count && st->sorted == NULL)
        return mc_err(MC_ENOMEM, "out of memory writing a snapshot");
    for (size_t i = 0; i < st->count; i++) {
        const struct reg_model *m = st->sorted[i];

        for (size_t k = 0; k < m->nvers; k++) {
            json_t *o = json_object();

            if (o && (json_object_set_new(o, "op", json_string("version")) ||
                      version_to_json(m->vers[k], o, true))) {
                json_decref(o);
                o = NULL;
            }
            if ((rc = put(ctx, o)))
                return rc;
        }
        for (size_t k = 0; k < m->naliases; k++)
            if ((rc = put(ctx, alias_entry(m, &m->aliases[k]))))
                return rc;
        if (m->health && (rc = put(ctx, health_entry(m))))
            return rc;
    }
    rc = state_emit_deploys(st, put, ctx);
    return rc ? rc : state_emit_audit(st, put, ctx);
}
