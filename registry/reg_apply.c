/*
 * reg_apply.c - the registry's state in memory and what every manifest
 * record means to it.
 *
 * state_apply() is the only way the state changes: replaying the manifest
 * at open, following other processes' appends, and applying this process's
 * own records after they are durable all go through it, so a record means
 * the same thing everywhere. It trusts nothing it reads: every field is
 * checked as strictly as the API checks its arguments, and a record that
 * does not fit the state is damage (MC_ECORRUPT) - or, while repairing,
 * reported and skipped.
 *
 * Models live in an open-addressing hash table keyed by name; a model's
 * versions are kept sorted by precedence, its aliases by name. Each
 * version's strings and arrays live in one block, rebuilt whole when
 * anything about the version changes (which is rare), so the struct stays
 * where aliases point at it.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/err.h"
#include "common/vec.h"
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

/* ---- the hash table of models ---------------------------------------- */

static uint64_t name_hash(const char *s)
{
    return XXH3_64bits(s, strlen(s));
}

struct reg_state *state_new(const char *dir)
{
    struct reg_state *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    st->nslots = 64;
    st->slots = calloc(st->nslots, sizeof(*st->slots));
    if (st->slots == NULL) {
        free(st);
        return NULL;
    }
    st->dir = dir;
    return st;
}

static void ver_free(struct reg_ver *rv)
{
    if (rv) {
        free(rv->blob);
        free(rv);
    }
}

static void alias_fini(struct reg_alias *a)
{
    for (size_t i = 0; i < a->nhist; i++) {
        free((char *)a->hist[i].from);
        free((char *)a->hist[i].to);
    }
    free(a->hist);
    free(a->alias);
}

static void model_free(struct reg_model *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nvers; i++)
        ver_free(ver_of(m->vers[i]));
    for (size_t i = 0; i < m->naliases; i++)
        alias_fini(&m->aliases[i]);
    free(m->vers);
    free(m->aliases);
    free(m->views);
    free(m->name);
    free(m);
}

void state_free(struct reg_state *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nslots; i++)
        model_free(st->slots[i]);
    free(st->slots);
    free(st->sorted);
    free(st);
}

struct reg_model *state_model(const struct reg_state *st, const char *name)
{
    size_t mask = st->nslots - 1, i = name_hash(name) & mask;

    for (; st->slots[i]; i = (i + 1) & mask)
        if (strcmp(st->slots[i]->name, name) == 0)
            return st->slots[i];
    return NULL;
}

static int state_grow(struct reg_state *st)
{
    size_t n = st->nslots * 2, mask = n - 1;
    struct reg_model **s = calloc(n, sizeof(*s));

    if (s == NULL)
        return MC_ENOMEM;
    for (size_t i = 0; i < st->nslots; i++) {
        struct reg_model *m = st->slots[i];
        size_t j;

        if (m == NULL)
            continue;
        for (j = name_hash(m->name) & mask; s[j]; j = (j + 1) & mask)
            ;
        s[j] = m;
    }
    free(st->slots);
    st->slots = s;
    st->nslots = n;
    return 0;
}

static int state_insert(struct reg_state *st, struct reg_model *m)
{
    size_t mask, i;

    if ((st->count + 1) * 4 > st->nslots * 3 && state_grow(st) != 0)
        return MC_ENOMEM;
    mask = st->nslots - 1;
    for (i = name_hash(m->name) & mask; st->slots[i]; i = (i + 1) & mask)
        ;
    st->slots[i] = m;
    st->count++;
    st->sorted_dirty = true;
    return 0;
}

/* Remove with backward shifting, so lookups never need tombstones. */
static void state_remove(struct reg_state *st, struct reg_model *m)
{
    size_t mask = st->nslots - 1, i = name_hash(m->name) & mask, j;

    while (st->slots[i] != m)
        i = (i + 1) & mask;
    st->slots[i] = NULL;
    for (j = (i + 1) & mask; st->slots[j]; j = (j + 1) & mask) {
        size_t home = name_hash(st->slots[j]->name) & mask;

        /* move j back into the hole at i unless its home lies in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            st->slots[i] = st->slots[j];
            st->slots[j] = NULL;
            i = j;
        }
    }
    st->count--;
    st->sorted_dirty = true;
    model_free(m);
}

static int model_cmp(const void *a, const void *b)
{
    return strcmp((*(struct reg_model *const *)a)->name, (*(struct reg_model *const *)b)->name);
}

void state_sort(struct reg_state *st)
{
    size_t k = 0;

    if (!st->sorted_dirty && (st->sorted || st->count == 0))
        return;
    free(st->sorted);
    st->sorted = malloc((st->count + 1) * sizeof(*st->sorted));
    if (st->sorted == NULL)
        return;
    for (size_t i = 0; i < st->nslots; i++)
        if (st->slots[i])
            st->sorted[k++] = st->slots[i];
    qsort(st->sorted, k, sizeof(*st->sorted), model_cmp);
    st->sorted_dirty = false;
}

/* ---- versions and aliases of a model ---------------------------------- */

/* Binary search of n sorted items; cmp(ctx, i) compares item i with the key. */
static size_t sorted_index(size_t n, int (*cmp)(const void *ctx, size_t i), const void *ctx,
                           bool *found)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp(ctx, mid);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

struct ver_key {
    const struct reg_model *m;
    const struct mc_semver *sv;
};

static int ver_key_cmp(const void *ctx, size_t i)
{
    const struct ver_key *k = ctx;

    return mc_semver_cmp(&k->m->vers[i]->sv, k->sv);
}

static size_t ver_index(const struct reg_model *m, const struct mc_semver *sv, bool *found)
{
    struct ver_key k = {m, sv};

    return sorted_index(m->nvers, ver_key_cmp, &k, found);
}

struct reg_ver *model_version(const struct reg_model *m, const struct mc_semver *sv)
{
    bool found;
    size_t i = ver_index(m, sv, &found);

    return found ? ver_of(m->vers[i]) : NULL;
}

struct alias_key {
    const struct reg_model *m;
    const char *alias;
};

static int alias_key_cmp(const void *ctx, size_t i)
{
    const struct alias_key *k = ctx;

    return strcmp(k->m->aliases[i].alias, k->alias);
}

static size_t alias_index(const struct reg_model *m, const char *alias, bool *found)
{
    struct alias_key k = {m, alias};

    return sorted_index(m->naliases, alias_key_cmp, &k, found);
}

struct reg_alias *model_alias(const struct reg_model *m, const char *alias)
{
    bool found;
    size_t i = alias_index(m, alias, &found);

    return found ? &m->aliases[i] : NULL;
}

/* Refresh the public views after versions or aliases changed. */
static int model_sync_view(struct reg_model *m)
{
    struct mc_reg_alias *v = NULL;

    if (m->naliases) {
        v = realloc(m->views, m->naliases * sizeof(*v));
        if (v == NULL)
            return MC_ENOMEM;
        for (size_t i = 0; i < m->naliases; i++) {
            v[i].alias = m->aliases[i].alias;
            v[i].target = m->aliases[i].target ? &m->aliases[i].target->v : NULL;
            v[i].history = m->aliases[i].hist;
            v[i].nhistory = m->aliases[i].nhist;
        }
        m->views = v;
    }
    m->pub.name = m->name;
    m->pub.versions = m->vers;
    m->pub.nversions = m->nvers;
    m->pub.aliases = m->views;
    m->pub.naliases = m->naliases;
    return 0;
}

/* ---- reading fields --------------------------------------------------- */

/* One record being applied: its fields and where to say what went wrong. */
struct rec {
    const struct mc_jval *j;
    const char *op;
    int err;
};

static int rfail(struct rec *r, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int rfail(struct rec *r, int code, const char *fmt, ...)
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
            return rfail(r, MC_ECORRUPT, "a \"%s\" record lacks \"%s\"", r->op, key);
        return 0;
    }
    if (x->type != MC_JSTR)
        return rfail(r, MC_ECORRUPT, "\"%s\" of a \"%s\" record is not a string", key, r->op);
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
        return rfail(r, MC_ECORRUPT, "\"%s\" of a \"%s\" record is not a number from 0 to %llu",
                     key, r->op, (unsigned long long)max);
    *out = (uint64_t)x->u.i;
    return 0;
}

static int bool_of(struct rec *r, const char *key, const struct mc_jval *x, int *out)
{
    if (x == NULL)
        return 0; /* keep *out */
    if (x->type != MC_JTRUE && x->type != MC_JFALSE)
        return rfail(r, MC_ECORRUPT, "\"%s\" of a \"%s\" record is not true or false", key, r->op);
    *out = x->type == MC_JTRUE;
    return 0;
}

static int str_field(struct rec *r, const char *key, bool required, const char **out)
{
    return str_of(r, key, mc_jval_get(r->j, key), required, out);
}

static int uint_field(struct rec *r, const char *key, bool required, uint64_t max, uint64_t *out)
{
    return uint_of(r, key, mc_jval_get(r->j, key), required, max, out);
}

static int bool_field(struct rec *r, const char *key, int *out)
{
    return bool_of(r, key, mc_jval_get(r->j, key), out);
}

/* ---- versions from records -------------------------------------------- */

/* The fields of a version, pointing into the record they came from. */
struct vfields {
    const char *name, *version, *checksum, *status, *reason, *format;
    const char *str[6]; /* description, framework, precision, device, parent, source */
    size_t name_len, version_len, checksum_len, reason_len, str_len[6];
    uint64_t size, t, uid, changed;
    int preload, pinned;
    const struct mc_jval *metrics, *params, *tags;
};

static const char *const str_keys[6] = {"description", "framework", "precision",
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
    VF_STR, /* the six of str_keys */
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

static bool checksum_valid(const char *s)
{
    if (s == NULL || strncmp(s, "xxh3-128:", 9) != 0 || strlen(s) != 9 + 32)
        return false;
    for (s += 9; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return false;
    return true;
}

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
        return rfail(r, code, "the %s %s is %zu bytes long; at most %zu are allowed", str_keys[k],
                     q, n, max);
    if (has_ctl(s, k == 0))
        return rfail(r, code, "the %s %s contains control characters%s", str_keys[k], q,
                     k == 0 ? " (only newlines and tabs are allowed)" : "");
    if (k == 5 && strchr(s, ' '))
        return rfail(r, code,
                     "the source %s contains a space; give a URI (escape spaces as "
                     "%%20)",
                     q);
    if (k == 4) {
        const char *at = strrchr(s, '@');
        struct mc_semver sv;
        char name[MC_NAME_MAX + 2];

        if (at == NULL || (size_t)(at - s) > MC_NAME_MAX)
            return rfail(r, code, "the parent %s is not NAME@VERSION, e.g. resnet@1.2.0", q);
        memcpy(name, s, (size_t)(at - s));
        name[at - s] = '\0';
        if (mc_name_check(name) != 0 || mc_semver_parse(at + 1, strlen(at + 1), &sv) != 0)
            return r->err = mc_err_prefix(code, "the parent %s is not NAME@VERSION", q);
    }
#undef q
    return 0;
}

static int map_check(struct rec *r, int code, const char *what, const struct mc_jval *obj,
                     bool numbers, bool patch)
{
    if (obj == NULL || obj->type == MC_JNULL)
        return 0;
    if (obj->type != MC_JOBJ)
        return rfail(r, code, "the %ss are not an object", what);
    if (obj->n > MAP_MAX)
        return rfail(r, code, "there are %zu %ss; at most %d are allowed", (size_t)obj->n, what,
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
                return rfail(r, code, "metric \"%s\" is not a finite number", key);
            continue;
        }
        if (val->type != MC_JSTR)
            return rfail(r, code, "%s \"%s\" is not a string", what, key);
        if (val->n > VALUE_MAX)
            return rfail(r, code, "%s \"%s\" is %zu bytes long; at most %d are allowed", what, key,
                         (size_t)val->n, VALUE_MAX);
        if (has_ctl(val->u.s, false))
            return rfail(r, code, "%s \"%s\" = %s contains control characters", what, key,
                         mc_quote(q, sizeof(q), val->u.s, val->n));
    }
    return 0;
}

/* The record's "op", read before r->op can name it in messages. */
static int rec_op(struct rec *r)
{
    const char *op;

    r->op = "unnamed";
    if (str_field(r, "op", true, &op))
        return r->err;
    r->op = op;
    return 0;
}

/* Read and check a version's fields. code: MC_EINVAL for API input, else MC_ECORRUPT. */
static int vfields_read(struct rec *r, int code, struct vfields *f)
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
        return rfail(r, code,
                     "version %s of \"%s\" is %zu bytes long; at most %d are allowed "
                     "(it names a directory)",
                     mc_quote(q, sizeof(q), f->version, f->version_len), f->name, f->version_len,
                     VERSION_DIR_MAX);
    if (!checksum_valid(f->checksum))
        return rfail(r, code, "checksum %s of %s@%s is not xxh3-128:<32 lowercase hex digits>",
                     mc_quote(q, sizeof(q), f->checksum, f->checksum_len), f->name, f->version);
    if (format_parse(f->format, &fmt) != 0)
        return rfail(r, code,
                     "format \"%s\" of %s@%s is not one of other, safetensors, gguf, "
                     "onnx",
                     f->format, f->name, f->version);
    if (f->status && mc_reg_status_parse(f->status, &st) != 0)
        return r->err = code; /* with the message the check set */
    if (f->reason && (f->reason_len > VALUE_MAX || has_ctl(f->reason, false)))
        return rfail(r, code,
                     "the status reason of %s@%s is longer than %d bytes or has "
                     "control characters",
                     f->name, f->version, VALUE_MAX);
    for (int k = 0; k < 6; k++) {
        if ((rc = str_of(r, str_keys[k], x[VF_STR + k], false, &f->str[k])))
            return rc;
        f->str_len[k] = f->str[k] ? x[VF_STR + k]->n : 0;
        if (f->str[k] && (rc = meta_str_check(r, code, k, f->str[k])))
            return rc;
    }
    f->metrics = x[VF_METRICS];
    f->params = x[VF_PARAMS];
    f->tags = x[VF_TAGS];
    if ((rc = map_check(r, code, "metric", f->metrics, true, false)) ||
        (rc = map_check(r, code, "param", f->params, false, false)) ||
        (rc = map_check(r, code, "tag", f->tags, false, false)))
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
                      const char *dir, size_t dir_len)
{
    const char **dst[6] = {&v->description, &v->framework, &v->precision,
                           &v->device,      &v->parent,    &v->source};
    size_t plen = dir_len + f->name_len + f->version_len + 32;
    char *path;

    v->name = blob_str(b, f->name, f->name_len);
    v->version = blob_str(b, f->version, f->version_len);
    v->checksum = blob_str(b, f->checksum, f->checksum_len);
    v->status_reason = blob_str(b, f->reason, f->reason_len);
    for (int k = 0; k < 6; k++)
        *dst[k] = blob_str(b, f->str[k], f->str_len[k]);
    path = blob_take(b, plen, 1);
    if (path) {
        /* dir/models/name/version/artifact */
        const struct {
            const char *s;
            size_t n;
        } parts[] = {{dir, dir_len},
                     {"/" MC_MODELS_DIR "/", sizeof(MC_MODELS_DIR) + 1},
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
static struct reg_ver *ver_build(const struct vfields *f, const char *dir, uint64_t gen)
{
    size_t head = (sizeof(struct reg_ver) + 15) & ~(size_t)15, dir_len = strlen(dir);
    struct mc_reg_version sizing;
    struct blob b = {0};
    struct mc_reg_version *v;
    struct reg_ver *rv;

    blob_fill(&b, &sizing, f, dir, dir_len); /* sizing pass */
    rv = malloc(head + b.used);
    if (rv == NULL)
        return NULL;
    memset(rv, 0, sizeof(*rv));
    v = &rv->v;
    b.base = (char *)rv + head;
    b.size = b.used;
    b.used = 0;
    blob_fill(&b, v, f, dir, dir_len);
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

/* name@version collides with o, registered with the same precedence. */
static int clash(struct rec *r, int code, const struct mc_reg_version *o, const char *version)
{
    bool same = strcmp(o->version, version) == 0;

    return rfail(r, code,
                 "%s@%s is already registered%s%s; a version is immutable: push it under a new "
                 "version number%s",
                 o->name, version, same ? "" : " as ", same ? "" : o->version,
                 same ? ""
                      : " (versions that differ only in build metadata have the same "
                        "precedence, so every range would treat them as one)");
}

static int ver_insert(struct reg_state *st, struct rec *r, struct reg_ver *rv, int code)
{
    struct reg_model *m = state_model(st, rv->v.name);
    bool found;
    size_t i;

    if (m == NULL) {
        m = calloc(1, sizeof(*m));
        if (m == NULL || (m->name = strdup(rv->v.name)) == NULL || state_insert(st, m) != 0) {
            if (m)
                free(m->name);
            free(m);
            return rfail(r, MC_ENOMEM, "out of memory");
        }
    }
    i = ver_index(m, &rv->v.sv, &found);
    if (found)
        return clash(r, code == MC_EINVAL ? MC_EEXIST : code, m->vers[i], rv->v.version);
    if (MC_VEC_RESERVE(m->vers, m->capvers, m->nvers + 1, 4))
        return rfail(r, MC_ENOMEM, "out of memory");
    memmove(&m->vers[i + 1], &m->vers[i], (m->nvers - i) * sizeof(*m->vers));
    m->vers[i] = &rv->v;
    m->nvers++;
    return model_sync_view(m) ? rfail(r, MC_ENOMEM, "out of memory") : 0;
}

static int apply_version(struct reg_state *st, struct rec *r, uint64_t gen)
{
    struct vfields f;
    struct reg_ver *rv;
    int rc = vfields_read(r, MC_ECORRUPT, &f);

    if (rc)
        return rc;
    rv = ver_build(&f, st->dir, gen);
    if (rv == NULL)
        return rfail(r, MC_ENOMEM, "out of memory");
    rc = ver_insert(st, r, rv, MC_ECORRUPT);
    if (rc)
        ver_free(rv);
    return rc;
}

int record_check_version(const struct reg_state *st, json_t *j)
{
    struct mc_jarena a = {0};
    struct rec r = {.j = mc_jval_from_json(&a, j), .op = "push"};
    struct vfields f;
    struct reg_model *m;
    struct mc_semver sv;
    struct reg_ver *o;
    int rc = r.j ? vfields_read(&r, MC_EINVAL, &f) : mc_err(MC_ENOMEM, "out of memory");

    if (rc == 0 && st) {
        m = state_model(st, f.name);
        mc_semver_parse(f.version, strlen(f.version), &sv);
        if (m && (o = model_version(m, &sv)) != NULL)
            rc = clash(&r, MC_EEXIST, &o->v, f.version);
    }
    mc_jarena_free(&a);
    return rc;
}

/* ---- versions to records ---------------------------------------------- */

static int set_str(json_t *o, const char *k, const char *v)
{
    return v ? json_object_set_new(o, k, json_string(v)) : 0;
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

        rc |= set_str(obj, str_keys[k], vals[k]);
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
            rc |= json_object_set_new(obj, str_keys[k],
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

/* ---- applying records ------------------------------------------------- */

static struct reg_model *rec_model(struct reg_state *st, struct rec *r, const char **name)
{
    struct reg_model *m;

    if (str_field(r, "name", true, name))
        return NULL;
    m = state_model(st, *name);
    if (m == NULL)
        rfail(r, MC_ECORRUPT, "a \"%s\" record names model \"%s\", which does not exist", r->op,
              *name);
    return m;
}

static struct reg_ver *rec_version(struct reg_state *st, struct rec *r, struct reg_model **mp)
{
    const char *name, *version;
    struct reg_model *m = rec_model(st, r, &name);
    struct mc_semver sv;
    struct reg_ver *rv;

    if (m == NULL || str_field(r, "version", true, &version))
        return NULL;
    if (mc_semver_parse(version, strlen(version), &sv) != 0 ||
        (rv = model_version(m, &sv)) == NULL || strcmp(rv->v.version, version) != 0) {
        rfail(r, MC_ECORRUPT, "a \"%s\" record names %s@%s, which does not exist", r->op, name,
              version);
        return NULL;
    }
    if (mp)
        *mp = m;
    return rv;
}

/* Rebuild rv from r2 (its fields, changed), keeping its address. */
static int ver_rebuild(struct reg_state *st, struct rec *r, struct reg_ver *rv, struct rec *r2,
                       uint64_t gen)
{
    struct vfields f;
    struct reg_ver *n;
    int rc;

    rc = vfields_read(r2, MC_ECORRUPT, &f);
    if (rc)
        return r->err = rc;
    n = ver_build(&f, st->dir, gen);
    if (n == NULL)
        return rfail(r, MC_ENOMEM, "out of memory");
    /* rv stays where aliases point; its strings now live in n's block */
    free(rv->blob);
    rv->v = n->v;
    rv->blob = n;
    return 0;
}

/* Merge a patch object into dst: null deletes. */
static void merge_map(json_t *dst, const char *key, const struct mc_jval *patch)
{
    json_t *m = json_object_get(dst, key);

    if (patch->type != MC_JOBJ)
        return;
    if (m == NULL) {
        m = json_object();
        json_object_set_new(dst, key, m);
    }
    for (uint32_t i = 0; i < patch->n; i++) {
        const struct mc_jmember *e = &patch->u.m[i];

        if (e->v.type == MC_JNULL)
            json_object_del(m, e->key);
        else
            json_object_set_new(m, e->key, mc_jval_to_json(&e->v));
    }
    if (json_object_size(m) == 0)
        json_object_del(dst, key);
}

/*
 * "status", "flags" and "meta": change fields of one version. With dry,
 * only check that the result would be valid, as the API must (MC_EINVAL).
 */
static int apply_change(struct reg_state *st, struct rec *r, uint64_t gen, bool dry)
{
    struct reg_ver *rv = rec_version(st, r, NULL);
    struct rec r2 = {.op = r->op};
    struct mc_jarena a = {0};
    const struct mc_jval *x;
    json_t *obj;
    int rc;

    if (rv == NULL)
        return r->err;
    obj = json_object();
    if (obj == NULL || version_to_json(&rv->v, obj, true) != 0) {
        json_decref(obj);
        return rfail(r, MC_ENOMEM, "out of memory");
    }
    if (!strcmp(r->op, "status")) {
        const char *s, *reason;

        if (str_field(r, "status", true, &s) || str_field(r, "reason", false, &reason)) {
            json_decref(obj);
            return r->err;
        }
        json_object_set_new(obj, "status", json_string(s));
        json_object_del(obj, "reason");
        if (reason)
            json_object_set_new(obj, "reason", json_string(reason));
    } else if (!strcmp(r->op, "flags")) {
        const char *keys[2] = {"preload", "pinned"};

        for (int k = 0; k < 2; k++) {
            x = mc_jval_get(r->j, keys[k]);
            if (x && x->type != MC_JTRUE && x->type != MC_JFALSE) {
                json_decref(obj);
                return rfail(r, MC_ECORRUPT, "\"%s\" of a \"flags\" record is not true or false",
                             keys[k]);
            }
            if (x)
                json_object_set_new(obj, keys[k], json_boolean(x->type == MC_JTRUE));
        }
    } else {
        const struct mc_jval *set = mc_jval_get(r->j, "set");
        struct rec rs = {.j = set, .op = "meta"};

        int code = dry ? MC_EINVAL : MC_ECORRUPT;

        if (set == NULL || set->type != MC_JOBJ ||
            map_check(&rs, code, "metric", mc_jval_get(set, "metrics"), true, true) ||
            map_check(&rs, code, "param", mc_jval_get(set, "params"), false, true) ||
            map_check(&rs, code, "tag", mc_jval_get(set, "tags"), false, true)) {
            json_decref(obj);
            return rs.err ? (r->err = rs.err)
                          : rfail(r, MC_ECORRUPT, "a \"meta\" record has no \"set\" object");
        }
        for (uint32_t e = 0; e < set->n; e++) {
            const char *k = set->u.m[e].key;
            bool map = !strcmp(k, "metrics") || !strcmp(k, "params") || !strcmp(k, "tags");
            bool known = map;

            for (int i = 0; i < 6 && !known; i++)
                known = !strcmp(k, str_keys[i]);
            if (!known) {
                json_decref(obj);
                return rfail(r, MC_ECORRUPT,
                             "a \"meta\" record sets \"%s\", which is not "
                             "metadata",
                             k);
            }
            x = &set->u.m[e].v;
            if (map)
                merge_map(obj, k, x);
            else if (x->type == MC_JNULL)
                json_object_del(obj, k);
            else
                json_object_set_new(obj, k, mc_jval_to_json(x));
        }
    }
    /* the merged version, read back as any record is */
    json_object_del(obj, "changed");
    r2.j = mc_jval_from_json(&a, obj);
    if (r2.j == NULL) {
        rc = rfail(r, MC_ENOMEM, "out of memory");
    } else if (dry) {
        struct vfields f;

        rc = vfields_read(&r2, MC_EINVAL, &f);
    } else {
        rc = ver_rebuild(st, r, rv, &r2, gen);
    }
    json_decref(obj);
    mc_jarena_free(&a);
    return rc;
}

int record_check_change(struct reg_state *st, json_t *j)
{
    struct mc_jarena a = {0};
    struct rec r = {.j = mc_jval_from_json(&a, j)};
    int rc;

    if (r.j == NULL)
        rc = mc_err(MC_ENOMEM, "out of memory");
    else if (rec_op(&r))
        rc = r.err;
    else
        rc = apply_change(st, &r, 0, true);
    mc_jarena_free(&a);
    return rc;
}

static int hist_add(struct reg_alias *a, const char *from, const char *to, uint64_t t, uint64_t uid,
                    uint64_t gen, bool rollback)
{
    struct mc_reg_move *mv;

    if (MC_VEC_RESERVE(a->hist, a->caphist, a->nhist + 1, 4))
        return MC_ENOMEM;
    mv = &a->hist[a->nhist];
    memset(mv, 0, sizeof(*mv));
    mv->from = from ? strdup(from) : NULL;
    mv->to = to ? strdup(to) : NULL;
    if ((from && !mv->from) || (to && !mv->to)) {
        free((char *)mv->from);
        free((char *)mv->to);
        return MC_ENOMEM;
    }
    mv->at_ns = t;
    mv->uid = (uint32_t)uid;
    mv->generation = gen;
    mv->rollback = rollback;
    a->nhist++;
    return 0;
}

static struct reg_alias *alias_get(struct reg_model *m, const char *alias, bool create)
{
    bool found;
    size_t i = alias_index(m, alias, &found);
    struct reg_alias *a;

    if (found || !create)
        return found ? &m->aliases[i] : NULL;
    if (MC_VEC_RESERVE(m->aliases, m->capaliases, m->naliases + 1, 4))
        return NULL;
    memmove(&m->aliases[i + 1], &m->aliases[i], (m->naliases - i) * sizeof(*m->aliases));
    a = &m->aliases[i];
    memset(a, 0, sizeof(*a));
    a->alias = strdup(alias);
    if (a->alias == NULL) {
        memmove(&m->aliases[i], &m->aliases[i + 1], (m->naliases - i) * sizeof(*m->aliases));
        return NULL;
    }
    m->naliases++;
    return a;
}

/*
 * mc_alias_check(), remembering the last name that passed: the check
 * compiles the name as a version range (to refuse one that reads as a
 * range), and replay meets the same few alias names over and over.
 */
static int alias_name_check(struct reg_state *st, const char *alias)
{
    size_t n;

    if (st->alias_ok[0] != '\0' && strcmp(st->alias_ok, alias) == 0)
        return 0;
    if (mc_alias_check(alias) != 0)
        return MC_EINVAL;
    n = strlen(alias);
    if (n < sizeof(st->alias_ok))
        memcpy(st->alias_ok, alias, n + 1);
    return 0;
}

/* The version named by an exact version string, or NULL. */
static struct reg_ver *ver_exact(const struct reg_model *m, const char *version)
{
    struct mc_semver sv;
    struct reg_ver *rv;

    if (version == NULL || mc_semver_parse(version, strlen(version), &sv) != 0)
        return NULL;
    rv = model_version(m, &sv);
    return rv && strcmp(rv->v.version, version) == 0 ? rv : NULL;
}

static int apply_alias(struct reg_state *st, struct rec *r, uint64_t gen)
{
    const char *name, *alias, *to, *from;
    struct reg_model *m = rec_model(st, r, &name);
    struct reg_ver *target = NULL;
    struct reg_alias *a;
    uint64_t t, uid;
    int rb = 0;

    if (m == NULL)
        return r->err;
    if (str_field(r, "alias", true, &alias) || str_field(r, "to", false, &to) ||
        str_field(r, "from", false, &from) || uint_field(r, "t", true, INT64_MAX, &t) ||
        uint_field(r, "uid", true, UINT32_MAX, &uid) || bool_field(r, "rollback", &rb))
        return r->err;
    if (alias_name_check(st, alias) != 0)
        return r->err = MC_ECORRUPT; /* with the message the check set */
    if (to && (target = ver_exact(m, to)) == NULL)
        return rfail(r, MC_ECORRUPT,
                     "alias \"%s\" of \"%s\" moves to version \"%s\", which "
                     "does not exist",
                     alias, name, to);
    a = alias_get(m, alias, true);
    if (a == NULL)
        return rfail(r, MC_ENOMEM, "out of memory");
    if ((a->target == NULL) != (from == NULL) || (from && strcmp(a->target->v.version, from)))
        return rfail(r, MC_ECORRUPT,
                     "alias \"%s\" of \"%s\" moves from \"%s\" but it points at "
                     "\"%s\"",
                     alias, name, from ? from : "(nothing)",
                     a->target ? a->target->v.version : "(nothing)");
    if (hist_add(a, from, to, t, uid, gen, rb))
        return rfail(r, MC_ENOMEM, "out of memory");
    a->target = target;
    return model_sync_view(m) ? rfail(r, MC_ENOMEM, "out of memory") : 0;
}

/* A snapshot's alias entry: its target and whole history. */
static int apply_alias_entry(struct reg_state *st, struct rec *r)
{
    const char *name, *alias, *target;
    struct reg_model *m = rec_model(st, r, &name);
    const struct mc_jval *hist;
    struct reg_alias *a;

    if (m == NULL)
        return r->err;
    if (str_field(r, "alias", true, &alias) || str_field(r, "target", false, &target))
        return r->err;
    if (alias_name_check(st, alias) != 0)
        return r->err = MC_ECORRUPT; /* with the message the check set */
    if (model_alias(m, alias))
        return rfail(r, MC_ECORRUPT, "alias \"%s\" of \"%s\" appears twice", alias, name);
    a = alias_get(m, alias, true);
    if (a == NULL)
        return rfail(r, MC_ENOMEM, "out of memory");
    if (target && (a->target = ver_exact(m, target)) == NULL)
        return rfail(r, MC_ECORRUPT,
                     "alias \"%s\" of \"%s\" points at version \"%s\", which "
                     "does not exist",
                     alias, name, target);
    hist = mc_jval_get(r->j, "history");
    if (hist == NULL || hist->type != MC_JARR)
        return rfail(r, MC_ECORRUPT, "alias \"%s\" of \"%s\" has no history", alias, name);
    for (uint32_t i = 0; i < hist->n; i++) {
        const struct mc_jval *h = &hist->u.a[i];
        struct rec rh = {.j = h, .op = "alias history"};
        const char *from, *to;
        uint64_t t, uid, g;
        int rb = 0;

        if (h->type != MC_JOBJ || str_field(&rh, "from", false, &from) ||
            str_field(&rh, "to", false, &to) || uint_field(&rh, "t", true, INT64_MAX, &t) ||
            uint_field(&rh, "uid", true, UINT32_MAX, &uid) ||
            uint_field(&rh, "g", true, INT64_MAX, &g) || bool_field(&rh, "rollback", &rb))
            return r->err = rh.err ? rh.err : rfail(r, MC_ECORRUPT, "bad alias history");
        if (hist_add(a, from, to, t, uid, g, rb))
            return rfail(r, MC_ENOMEM, "out of memory");
    }
    return model_sync_view(m) ? rfail(r, MC_ENOMEM, "out of memory") : 0;
}

/* Remove one version; aliases pointing at it are removed, in their history. */
static int remove_version(struct reg_state *st, struct reg_model *m, struct reg_ver *rv, uint64_t t,
                          uint64_t uid, uint64_t gen)
{
    bool found;
    size_t i = ver_index(m, &rv->v.sv, &found);

    for (size_t k = 0; k < m->naliases; k++) {
        struct reg_alias *a = &m->aliases[k];

        if (a->target == rv) {
            if (hist_add(a, rv->v.version, NULL, t, uid, gen, false))
                return MC_ENOMEM;
            a->target = NULL;
        }
    }
    memmove(&m->vers[i], &m->vers[i + 1], (m->nvers - i - 1) * sizeof(*m->vers));
    m->nvers--;
    ver_free(rv);
    if (m->nvers == 0 && m->naliases == 0) {
        state_remove(st, m);
        return 0;
    }
    return model_sync_view(m);
}

/* The version a "gc" entry names, or NULL with r->err set. */
static struct reg_ver *gc_entry(struct reg_state *st, struct rec *r, const struct mc_jval *e,
                                struct reg_model **m)
{
    struct rec re = {.j = e, .op = "gc"};
    struct reg_ver *rv = e->type == MC_JOBJ ? rec_version(st, &re, m) : NULL;

    if (rv == NULL)
        r->err = re.err ? re.err : rfail(r, MC_ECORRUPT, "bad \"gc\" entry");
    return rv;
}

/*
 * Check every entry of a "gc" record before any is removed, so that it
 * applies whole or not at all: each must name a version that exists, and
 * none twice (the second would fail after the first was removed).
 */
static int gc_check(struct reg_state *st, struct rec *r, const struct mc_jval *list)
{
    uint32_t marked = 0;
    int rc = 0;

    for (; marked < list->n; marked++) {
        struct reg_model *m;
        struct reg_ver *rv = gc_entry(st, r, &list->u.a[marked], &m);

        if (rv == NULL) {
            rc = r->err;
            break;
        }
        if (rv->listed) {
            rc = rfail(r, MC_ECORRUPT, "the \"gc\" record names %s@%s twice", m->name,
                       rv->v.version);
            break;
        }
        rv->listed = true;
    }
    for (uint32_t i = 0; i < marked; i++) {
        struct reg_model *m;

        gc_entry(st, r, &list->u.a[i], &m)->listed = false;
    }
    return rc;
}

static int apply_rm(struct reg_state *st, struct rec *r, uint64_t gen)
{
    const char *name;
    const struct mc_jval *list;
    uint64_t t, uid;
    int rc;

    if (uint_field(r, "t", true, INT64_MAX, &t) || uint_field(r, "uid", true, UINT32_MAX, &uid))
        return r->err;
    if (!strcmp(r->op, "gc")) {
        list = mc_jval_get(r->j, "removed");
        if (list == NULL || list->type != MC_JARR)
            return rfail(r, MC_ECORRUPT, "a \"gc\" record has no \"removed\" list");
        rc = gc_check(st, r, list);
        for (uint32_t i = 0; i < list->n && rc == 0; i++) {
            struct reg_model *m;
            struct reg_ver *rv = gc_entry(st, r, &list->u.a[i], &m);

            if (rv == NULL)
                rc = r->err;
            else if (remove_version(st, m, rv, t, uid, gen))
                rc = rfail(r, MC_ENOMEM, "out of memory");
        }
        return rc;
    }
    if (mc_jval_get(r->j, "version")) {
        struct reg_model *m;
        struct reg_ver *rv = rec_version(st, r, &m);

        if (rv == NULL)
            return r->err;
        return remove_version(st, m, rv, t, uid, gen) ? rfail(r, MC_ENOMEM, "out of memory") : 0;
    }
    {
        struct reg_model *m = rec_model(st, r, &name);

        if (m == NULL)
            return r->err;
        state_remove(st, m);
    }
    return 0;
}

int state_apply(void *arg, const struct mc_jval *j, bool snapshot, uint64_t gen)
{
    struct reg_state *st = arg;
    struct rec r = {.j = j};
    int rc;

    if (rec_op(&r))
        rc = r.err;
    else if (snapshot && !strcmp(r.op, "version"))
        rc = apply_version(st, &r, gen);
    else if (snapshot && !strcmp(r.op, "alias"))
        rc = apply_alias_entry(st, &r);
    else if (snapshot)
        rc = rfail(&r, MC_ECORRUPT, "the snapshot holds an entry \"%s\", which is unknown", r.op);
    else if (!strcmp(r.op, "push"))
        rc = apply_version(st, &r, gen);
    else if (!strcmp(r.op, "status") || !strcmp(r.op, "flags") || !strcmp(r.op, "meta"))
        rc = apply_change(st, &r, gen, false);
    else if (!strcmp(r.op, "alias"))
        rc = apply_alias(st, &r, gen);
    else if (!strcmp(r.op, "rm") || !strcmp(r.op, "gc"))
        rc = apply_rm(st, &r, gen);
    else
        rc = rfail(&r, MC_ECORRUPT, "the journal holds a record \"%s\", which is unknown", r.op);
    if (rc == 0) {
        st->gen = gen;
        return 0;
    }
    if (st->lenient && rc != MC_ENOMEM) {
        char msg[1100];

        snprintf(msg, sizeof(msg), "skipped a %s record of generation %llu: %s",
                 snapshot ? "snapshot" : "journal", (unsigned long long)gen, mc_last_error());
        if (st->report)
            st->report(st->report_arg, msg);
        st->skipped++;
        return 0;
    }
    return rc;
}

int state_apply_json(struct reg_state *st, json_t *rec, bool snapshot, uint64_t gen)
{
    struct mc_jarena a = {0};
    const struct mc_jval *j = mc_jval_from_json(&a, rec);
    int rc = j ? state_apply(st, j, snapshot, gen) : mc_err(MC_ENOMEM, "out of memory");

    mc_jarena_free(&a);
    return rc;
}

/* ---- the state as snapshot entries ------------------------------------ */

static json_t *alias_entry(const struct reg_model *m, const struct reg_alias *a)
{
    json_t *o = json_object(), *hist = json_array();

    if (o == NULL || hist == NULL)
        goto fail;
    if (json_object_set_new(o, "op", json_string("alias")) ||
        json_object_set_new(o, "name", json_string(m->name)) ||
        json_object_set_new(o, "alias", json_string(a->alias)) ||
        json_object_set_new(o, "target",
                            a->target ? json_string(a->target->v.version) : json_null()))
        goto fail;
    for (size_t i = 0; i < a->nhist; i++) {
        const struct mc_reg_move *mv = &a->hist[i];
        json_t *h = json_pack(
            "{s:o,s:o,s:I,s:I,s:I,s:b}", "from", mv->from ? json_string(mv->from) : json_null(),
            "to", mv->to ? json_string(mv->to) : json_null(), "t", (json_int_t)mv->at_ns, "uid",
            (json_int_t)mv->uid, "g", (json_int_t)mv->generation, "rollback", mv->rollback);

        if (h == NULL || json_array_append_new(hist, h))
            goto fail;
    }
    json_object_set_new(o, "history", hist);
    return o;
fail:
    json_decref(hist);
    json_decref(o);
    return NULL;
}

int state_emit(void *arg, mc_manifest_put_fn put, void *ctx)
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
    }
    return 0;
}

const struct mc_reg_version *alias_rollback_target(const struct reg_model *m,
                                                   const struct reg_alias *a, const char **to)
{
    size_t skip = 0;

    (void)m;
    *to = NULL;
    for (size_t i = a->nhist; i-- > 0;) {
        if (a->hist[i].rollback) {
            skip++;
        } else if (skip > 0) {
            skip--;
        } else {
            struct reg_ver *rv;

            *to = a->hist[i].from;
            rv = ver_exact(m, a->hist[i].from);
            return rv ? &rv->v : NULL;
        }
    }
    return NULL;
}
