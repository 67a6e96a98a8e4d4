/*
 * test_manifest_json.c - the fast reader of manifest lines (registry/reg_json.c)
 * against jansson, the reference: on every line of real stores, on edge
 * cases, on tens of thousands of mutated lines, and through whole replays
 * (the state loaded through the fast reader equals, field by field, the
 * state loaded through jansson alone, also for damaged records whose
 * checksums were made to match).
 *
 *   registry_manifest_json      (MCACHE_FUZZ_ITERS=<n> scales the fuzzing)
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "bench/synth.h"
#include "registry/crc32c.h"
#include "registry/manifest.h"
#include "registry/reg_json.h"
#include "registry/registry.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

static const char *scratch_base(void)
{
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

static int iters(int dflt)
{
    const char *s = getenv("MCACHE_FUZZ_ITERS");

    return s && atoi(s) > 0 ? atoi(s) : dflt;
}

static void ok(int rc)
{
    if (rc)
        fail_msg("%s", mc_last_error());
}

/* ---- trees ------------------------------------------------------------- */

/* Equal in type, value (reals bit for bit), string bytes, member order. */
static bool jv_equal(const struct mc_jval *a, const struct mc_jval *b)
{
    if (a->type != b->type)
        return false;
    switch (a->type) {
    case MC_JINT:
        return a->u.i == b->u.i;
    case MC_JREAL:
        return memcmp(&a->u.d, &b->u.d, sizeof(double)) == 0;
    case MC_JSTR:
        return a->n == b->n && memcmp(a->u.s, b->u.s, a->n) == 0 && a->u.s[a->n] == '\0';
    case MC_JOBJ:
        if (a->n != b->n)
            return false;
        for (uint32_t i = 0; i < a->n; i++)
            if (a->u.m[i].klen != b->u.m[i].klen ||
                memcmp(a->u.m[i].key, b->u.m[i].key, a->u.m[i].klen) != 0 ||
                !jv_equal(&a->u.m[i].v, &b->u.m[i].v))
                return false;
        return true;
    case MC_JARR:
        if (a->n != b->n)
            return false;
        for (uint32_t i = 0; i < a->n; i++)
            if (!jv_equal(&a->u.a[i], &b->u.a[i]))
                return false;
        return true;
    default:
        return true;
    }
}

struct tally {
    size_t both, declined_ok, refused;
};

/* The one property: what the fast reader accepts, jansson reads the same. */
static int check_line(struct mc_jreader *jr, const char *line, size_t n, struct tally *t)
{
    const struct mc_jval *fast, *ref;
    struct mc_jarena a = {0};
    json_error_t e;
    json_t *j;
    int rc = mc_jline_fast(jr, line, n, &fast);

    assert_true(rc == 0 || rc == 1);
    j = json_loadb(line, n, JSON_REJECT_DUPLICATES, &e);
    if (rc == 0) {
        if (j == NULL || !json_is_object(j))
            fail_msg("the fast reader accepted a line jansson refuses (%s): %.*s",
                     j ? "not an object" : e.text, (int)n, line);
        ref = mc_jval_from_json(&a, j);
        assert_non_null(ref);
        if (!jv_equal(fast, ref))
            fail_msg("the fast reader read this line differently from jansson: %.*s", (int)n, line);
        t->both++;
    } else if (j && json_is_object(j)) {
        t->declined_ok++;
    } else {
        t->refused++;
    }
    json_decref(j);
    mc_jarena_free(&a);
    return rc;
}

/* ---- a store with every kind of record, and unusual text --------------- */

struct store {
    char *dir, *path;
    struct mc_registry *r;
};

static void push_meta(struct store *s, const char *name, const char *version,
                      const struct mc_reg_meta *meta)
{
    char p[512];
    struct mc_push_opts o = {.meta = meta};

    snprintf(p, sizeof(p), "%s/src", s->dir);
    tu_make_file(p, 100 + strlen(version), (unsigned)strlen(name));
    if (mc_registry_push(s->r, name, version, p, &o, NULL) != 0)
        fail_msg("push %s@%s: %s", name, version, mc_last_error());
}

/* Records of every kind, with escapes, UTF-8 and numbers of every shape; a snapshot and a journal.
 */
/*
 * The records of deployments (format 2), with strings and numbers that test
 * the readers: weighted targets, reasons, health commands, alias snapshots,
 * a deployment with fractional thresholds, alerts. tag names the model.
 */
static void deploy_records(struct store *s, const char *tag)
{
    char name[32], why[128];
    const char *argv[] = {"sh", "-c", "echo \"caf\xc3\xa9\" \\ $MCACHE_MODEL\n\tdone"};
    const uint32_t steps[] = {1, 33, 67, 100};
    struct mc_reg_weight w[3] = {{"1.0.0", 33}, {"1.1.0", 33}, {"2.0.0", 34}};
    struct mc_reg_deploy d = {.version = "2.0.0", .alias = "prod", .strategy = MC_DEPLOY_CANARY,
                              .steps = steps, .nsteps = 4, .interval_ms = 1,
                              .max_error_rate = 1.0 / 3.0, .max_p99_ratio = 1.0000000000000002,
                              .min_requests = 9007199254740993ull, .health_argv = argv,
                              .health_argc = 3, .health_timeout_ms = 3600000};
    uint64_t id;

    snprintf(name, sizeof(name), "dep/%s", tag);
    d.name = name;
    push_meta(s, name, "1.0.0", NULL);
    push_meta(s, name, "1.1.0", NULL);
    push_meta(s, name, "2.0.0", NULL);
    ok(mc_registry_alias_set_weighted(s->r, name, "prod", w, 2, NULL, NULL) == MC_EINVAL ? 0 : -1);
    w[1].weight = 67;
    ok(mc_registry_alias_set_weighted(s->r, name, "prod", w, 2,
                                      "\xe2\x80\x94 \"quoted\" \\ reason", NULL));
    w[1].weight = 33;
    ok(mc_registry_alias_set_weighted(s->r, name, "prod", w, 3, NULL, NULL));
    ok(mc_registry_health_set(s->r, name, argv, 3, 1, NULL));
    ok(mc_registry_snapshot_create(s->r, tag, NULL));
    ok(mc_registry_alias_set(s->r, name, "prod", "1.0.0", NULL));
    ok(mc_registry_deploy_begin(s->r, &d, &id, NULL));
    snprintf(why, sizeof(why), "step 2 of 4: 33%% \xe2\x86\x92 %s", tag);
    ok(mc_registry_deploy_update(s->r, id, 1, MC_DEPLOY_RUNNING, 12345, why, w, 2, NULL) ==
               MC_EINVAL
           ? 0
           : -1); /* 33 + 33 */
    w[0].weight = 67;
    ok(mc_registry_deploy_update(s->r, id, 1, MC_DEPLOY_RUNNING, 12345, why, w, 2, NULL));
    ok(mc_registry_alert_add(s->r, "threshold", name, "2.0.0", NULL,
                             "p99 1.7\xc3\x97 > 1.5\xc3\x97 \"slow\"\n", NULL));
    ok(mc_registry_snapshot_restore(s->r, tag, NULL));
}

static void rich_store(struct store *s)
{
    struct tu_warnings w = {0};
    struct mc_reg_metric m1[] = {{"accuracy", 0.931},   {"loss", -0.0},
                                 {"tiny", 1e-300},      {"huge", 1.5e300},
                                 {"third", 1.0 / 3.0},  {"int.like", 1e15},
                                 {"neg", -123456.789},  {"big", 9007199254740993.0},
                                 {"exp:small", 2.5e-7}, {"zero", 0.0}};
    struct mc_reg_kv p1[] = {{"lr", "0.001"},
                             {"quote", "say \"hi\" \\ back/slash"},
                             {"utf8", "caf\xc3\xa9 \xe2\x80\x94 \xf0\x9f\x9a\x80"},
                             {"empty", ""}};
    struct mc_reg_kv t1[] = {{"env", "prod"}, {"team/x", "vision-\xce\xbb"}};
    struct mc_reg_meta meta1 = {.description =
                                    "line one\nline \"two\"\twith a tab, a \\ and caf\xc3\xa9",
                                .framework = "pytorch",
                                .precision = "fp16",
                                .device = "cuda:0",
                                .source = "s3://bucket/a%20b/m\xc3\xb6"
                                          "del.safetensors",
                                .metrics = m1,
                                .nmetrics = sizeof(m1) / sizeof(m1[0]),
                                .params = p1,
                                .nparams = sizeof(p1) / sizeof(p1[0]),
                                .tags = t1,
                                .ntags = 2};
    struct mc_reg_metric m2[] = {{"accuracy", NAN}, {"f1", 0.5}};
    struct mc_reg_kv t2[] = {{"env", NULL}, {"owner", "\xe5\xbc\xa0\xe4\xb8\x89"}};
    struct mc_reg_meta patch = {.description = "",
                                .metrics = m2,
                                .nmetrics = 2,
                                .tags = t2,
                                .ntags = 2,
                                .parent = "org/base@1.0.0-rc.1+b.7"};
    struct mc_gc_opts gc = {.keep = 1, .name = "b"};

    s->dir = tu_tempdir(scratch_base());
    if (asprintf(&s->path, "%s/store", s->dir) < 0)
        abort();
    ok(tu_open(s->path, MC_REGISTRY_CREATE, &w, &s->r));
    push_meta(s, "org/base", "1.0.0-rc.1+b.7", NULL);
    push_meta(s, "a", "1.0.0", &meta1);
    push_meta(s, "a", "1.1.0-beta.2", &meta1);
    push_meta(s, "a", "2.0.0", NULL);
    push_meta(s, "b", "0.0.1", NULL);
    push_meta(s, "b", "0.0.2", NULL);
    ok(mc_registry_alias_set(s->r, "a", "production", "1.0.0", NULL));
    ok(mc_registry_alias_set(s->r, "a", "production", "2.0.0", NULL));
    ok(mc_registry_alias_set(s->r, "a", "canary", "^1.0", NULL));
    ok(mc_registry_alias_rollback(s->r, "a", "production", NULL));
    ok(mc_registry_set_meta(s->r, "a", "1.0.0", &patch, NULL));
    ok(mc_registry_set_status(s->r, "a", "2.0.0", MC_STATUS_ARCHIVED,
                              "superseded \xe2\x80\x94 see \"1.0.0\"", NULL));
    ok(mc_registry_set_flags(s->r, "a", "1.0.0", 1, 1, NULL));
    ok(mc_registry_gc(s->r, &gc, NULL, NULL));
    deploy_records(s, "pre");
    ok(mc_registry_compact(s->r));
    /* and a journal after the snapshot */
    push_meta(s, "c", "3.0.0", &meta1);
    ok(mc_registry_alias_set(s->r, "c", "live", "3.0.0", NULL));
    ok(mc_registry_alias_remove(s->r, "a", "canary", NULL));
    ok(mc_registry_remove_version(s->r, "org/base", "1.0.0-rc.1+b.7", false, NULL));
    ok(mc_registry_set_meta(s->r, "c", "3.0.0", &patch, NULL));
    deploy_records(s, "post");
    mc_registry_close(s->r);
    s->r = NULL;
}

static void store_free(struct store *s)
{
    mc_registry_close(s->r);
    tu_rm_rf(s->dir);
    free(s->dir);
    free(s->path);
}

/* The lines of STORE/file (without their '\n'). */
struct lines {
    char *buf;
    size_t size, n, *at, *len;
};

static void lines_read(const char *store, const char *file, struct lines *l)
{
    char p[1024];
    size_t size;

    snprintf(p, sizeof(p), "%s/%s", store, file);
    l->buf = tu_read(p, &size);
    l->size = size;
    l->at = malloc((size + 1) * sizeof(size_t));
    l->len = malloc((size + 1) * sizeof(size_t));
    l->n = 0;
    for (size_t i = 0, start = 0; i < size; i++) {
        if (l->buf[i] == '\n') {
            l->at[l->n] = start;
            l->len[l->n++] = i - start;
            start = i + 1;
        }
    }
}

static void lines_free(struct lines *l)
{
    free(l->buf);
    free(l->at);
    free(l->len);
}

/* ---- the reader on real lines ----------------------------------------- */

static void all_lines_fast(struct mc_jreader *jr, const char *store, const char *file)
{
    struct tally t = {0};
    struct lines l;

    lines_read(store, file, &l);
    assert_true(l.n > 1);
    for (size_t i = 0; i < l.n; i++)
        if (check_line(jr, l.buf + l.at[i], l.len[i], &t) != 0)
            fail_msg("the fast reader declined a line mcache wrote (%s line %zu): %.*s", file, i,
                     (int)l.len[i], l.buf + l.at[i]);
    lines_free(&l);
}

static void test_real_lines(void **state)
{
    struct mc_jreader jr;
    struct store s;
    char *syn;

    (void)state;
    mc_jreader_init(&jr);
    rich_store(&s);
    /* every line mcache writes takes the fast path, and reads as jansson reads it */
    all_lines_fast(&jr, s.path, "manifest");
    all_lines_fast(&jr, s.path, "journal");
    if (asprintf(&syn, "%s/syn", s.dir) < 0)
        abort();
    ok(synth_registry(syn, 50, 3));
    all_lines_fast(&jr, syn, "journal");
    free(syn);
    mc_jreader_fini(&jr);
    store_free(&s);
}

/* ---- edge cases ------------------------------------------------------- */

static void test_edge_cases(void **state)
{
    /* fast: 1 the fast reader must take it, 0 it must leave it to jansson, -1 either */
    static const struct {
        const char *line;
        int fast;
    } cases[] = {
        {"{}", 1},
        {"{\"a\":0}", 1},
        {"{\"a\":-0}", 1},
        {"{\"a\":-0.0}", 1},
        {"{\"a\":0.5,\"b\":10.0,\"c\":-1.25}", 1},
        {"{\"a\":0.93100000000000005}", 1},
        {"{\"a\":123456789012345.6}", 1},
        {"{\"a\":1234567890123456.7}", 1},
        {"{\"a\":1e3,\"b\":1E3,\"c\":1e+3,\"d\":1e-3,\"e\":-2.5E-7}", 1},
        {"{\"a\":1.7976931348623157e308}", 1},
        {"{\"a\":1e309}", 0},
        {"{\"a\":-1e309}", 0},
        {"{\"a\":1e-400}", 0},
        {"{\"a\":4.9e-324}", -1},
        {"{\"a\":9223372036854775807}", 1},
        {"{\"a\":-9223372036854775808}", 1},
        {"{\"a\":9223372036854775808}", 0},
        {"{\"a\":-9223372036854775809}", 0},
        {"{\"a\":12345678901234567890}", 0},
        {"{\"a\":1795376458636025626}", 1},
        {"{\"a\":01}", 0},
        {"{\"a\":1.}", 0},
        {"{\"a\":.5}", 0},
        {"{\"a\":-}", 0},
        {"{\"a\":+1}", 0},
        {"{\"a\":1e}", 0},
        {"{\"a\":1e+}", 0},
        {"{\"a\":0x10}", 0},
        {"{\"a\":Infinity}", 0},
        {"{\"a\":NaN}", 0},
        {"{\"a\":1", 0},
        {"{\"a\":true,\"b\":false,\"c\":null}", 1},
        {"{\"a\":tru}", 0},
        {"{\"a\":truex}", 0},
        {"{\"a\":nul}", 0},
        {"{\"a\":\"\"}", 1},
        {"{\"\":1}", 1},
        {"{\"a\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}", 1},
        {"{\"a\":\"\\u00e9\"}", 0},
        {"{\"a\":\"\\u0000\"}", 0},
        {"{\"a\\u0000\":1}", 0},
        {"{\"a\":\"\\x\"}", 0},
        {"{\"a\":\"\\\"}", 0},
        {"{\"a\":\"tab\there\"}", 0},
        {"{\"a\":\"del\x7f\"}", 1},
        {"{\"a\":\"caf\xc3\xa9\"}", 1},
        {"{\"a\":\"\xe2\x82\xac \xf0\x9f\x9a\x80 \xef\xbf\xbf \xf4\x8f\xbf\xbf\"}", 1},
        {"{\"a\":\"\xc0\x80\"}", 0},
        {"{\"a\":\"\xc1\xbf\"}", 0},
        {"{\"a\":\"\xe0\x80\x80\"}", 0},
        {"{\"a\":\"\xed\xa0\x80\"}", 0},
        {"{\"a\":\"\xf0\x80\x80\x80\"}", 0},
        {"{\"a\":\"\xf4\x90\x80\x80\"}", 0},
        {"{\"a\":\"\xf5\x80\x80\x80\"}", 0},
        {"{\"a\":\"\x80\"}", 0},
        {"{\"a\":\"\xc3\"}", 0},
        {"{\"a\":\"\xe2\x82\"}", 0},
        {"{\"\xc3\xa9\":1}", 1},
        {"{\"a\":1,\"a\":2}", 0},
        {"{\"a\":1,\"b\":{\"a\":2},\"c\":[{\"a\":1},{\"a\":1}]}", 1},
        {"{\"abc\":1,\"cba\":2,\"acb\":3,\"bca\":4,\"bac\":5,\"cab\":6,\"abc\":7}", 0},
        {"{\"a\":[]}", 1},
        {"{\"a\":[1,\"x\",null,[true,{}]]}", 1},
        {"{\"a\":[1,]}", 0},
        {"{\"a\":[,1]}", 0},
        {"{\"a\":1,}", 0},
        {"{,\"a\":1}", 0},
        {"{\"a\" :1}", 0},
        {"{\"a\": 1}", 0},
        {" {\"a\":1}", 0},
        {"{\"a\":1} ", 0},
        {"{\"a\":1}x", 0},
        {"{\"a\":1}{}", 0},
        {"{\"a\"}", 0},
        {"{\"a\":}", 0},
        {"{a:1}", 0},
        {"[1]", 0},
        {"\"a\"", 0},
        {"{\"a\":[[[[[[[1]]]]]]]}", 1},
        {"{\"a\":[[[[[[[[1]]]]]]]]}", 0},
        {"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{}}}}}}}}", 1},
        {"{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":{\"f\":{\"g\":{\"h\":{}}}}}}}}}", 0},
    };
    struct mc_jreader jr;
    struct tally t = {0};

    (void)state;
    mc_jreader_init(&jr);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = check_line(&jr, cases[i].line, strlen(cases[i].line), &t);

        if (cases[i].fast >= 0 && rc != (cases[i].fast ? 0 : 1))
            fail_msg("case %zu (%s): the fast reader %s it", i, cases[i].line,
                     rc ? "declined" : "took");
    }
    /* a NUL byte in a line (the length says where the line ends, not the NUL) */
    check_line(&jr, "{\"a\":\"x\0y\"}", 11, &t);
    check_line(&jr, "{\"a\":1\0}", 8, &t);
    mc_jreader_fini(&jr);
}

/* ---- mutated lines ---------------------------------------------------- */

static uint64_t rng_state;

static uint32_t rnd(uint32_t n)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state % n);
}

/* Bytes that matter to a JSON reader, and pieces of UTF-8, good and bad. */
static const char *const pieces[] = {
    "\"",
    "\\",
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "0",
    "1",
    "9",
    "-",
    "+",
    ".",
    "e",
    "E",
    " ",
    "\t",
    "\n",
    "\r",
    "t",
    "n",
    "u",
    "/",
    "\x7f",
    "\x80",
    "\xbf",
    "\xc0",
    "\xc2",
    "\xe0",
    "\xed",
    "\xf0",
    "\xf4",
    "\xf5",
    "\xff",
    "\xc3\xa9",
    "\\u00e9",
    "\\n",
    "\\\"",
    "\\\\",
    "null",
    "true",
    "false",
    "1e309",
    "-0",
    "0.1",
    "1e-400",
    "\"a\":1,",
    "[1,2]",
    "{}",
    "[]",
    "\xe2\x82",
    "\xed\xa0\x80",
    "\xf0\x9f\x9a\x80",
    "9223372036854775808",
    "12345678901234567",
    "0.12345678901234567",
    "00",
};

static size_t mutate(const char *src, size_t n, char *dst, size_t cap)
{
    size_t len = n, at;

    memcpy(dst, src, n);
    for (int k = 1 + (int)rnd(3); k > 0; k--) {
        at = len ? rnd((uint32_t)len) : 0;
        switch (rnd(6)) {
        case 0: /* flip bits of a byte */
            if (len)
                dst[at] ^= (char)(1 + rnd(255));
            break;
        case 1: { /* replace a byte with a piece */
            const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);

            if (len && len - 1 + pl < cap) {
                memmove(dst + at + pl, dst + at + 1, len - at - 1);
                memcpy(dst + at, p, pl);
                len = len - 1 + pl;
            }
            break;
        }
        case 2: { /* insert a piece */
            const char *p = pieces[rnd(sizeof(pieces) / sizeof(pieces[0]))];
            size_t pl = strlen(p);

            if (len + pl < cap) {
                memmove(dst + at + pl, dst + at, len - at);
                memcpy(dst + at, p, pl);
                len += pl;
            }
            break;
        }
        case 3: { /* delete a few bytes */
            size_t d = 1 + rnd(8);

            if (at + d > len)
                d = len - at;
            memmove(dst + at, dst + at + d, len - at - d);
            len -= d;
            break;
        }
        case 4: { /* copy a span elsewhere (duplicate members, nesting) */
            size_t from = len ? rnd((uint32_t)len) : 0, d = 1 + rnd(40);

            if (from + d > len)
                d = len - from;
            if (len + d < cap) {
                char tmp[64];

                memcpy(tmp, dst + from, d);
                memmove(dst + at + d, dst + at, len - at);
                memcpy(dst + at, tmp, d);
                len += d;
            }
            break;
        }
        default: /* cut */
            len = at;
            break;
        }
    }
    return len;
}

static void test_mutated_lines(void **state)
{
    unsigned seed = (unsigned)time(NULL);
    int n = iters(40000);
    struct tally t = {0};
    struct mc_jreader jr;
    struct store s;
    struct lines l[2];
    char *dst;

    (void)state;
    printf("mutated lines: seed %u\n", seed);
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    rich_store(&s);
    lines_read(s.path, "manifest", &l[0]);
    lines_read(s.path, "journal", &l[1]);
    mc_jreader_init(&jr);
    dst = malloc(1 << 16);
    for (int i = 0; i < n; i++) {
        struct lines *f = &l[i % 2];
        size_t k = rnd((uint32_t)f->n), len;

        len = mutate(f->buf + f->at[k], f->len[k], dst, 1 << 16);
        check_line(&jr, dst, len, &t);
    }
    printf("mutated lines: %d: %zu read alike by both, %zu left to jansson (which took them), "
           "%zu refused by both\n",
           n, t.both, t.declined_ok, t.refused);
    /* the test means something only if all three outcomes happened */
    assert_true(t.both > 0 && t.declined_ok > 0 && t.refused > 0);
    free(dst);
    mc_jreader_fini(&jr);
    lines_free(&l[0]);
    lines_free(&l[1]);
    store_free(&s);
}

/* ---- whole replays ---------------------------------------------------- */

static bool str_same(const char *a, const char *b)
{
    return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

#define SAME(cond, ...)                                                                            \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            snprintf(why, wsz, __VA_ARGS__);                                                       \
            return false;                                                                          \
        }                                                                                          \
    } while (0)

static bool version_same(const struct mc_reg_version *a, const struct mc_reg_version *b, char *why,
                         size_t wsz)
{
    const char *sa[] = {a->name,          a->version,     a->path,      a->checksum,
                        a->status_reason, a->description, a->framework, a->precision,
                        a->device,        a->parent,      a->source};
    const char *sb[] = {b->name,          b->version,     b->path,      b->checksum,
                        b->status_reason, b->description, b->framework, b->precision,
                        b->device,        b->parent,      b->source};

    for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++)
        SAME(str_same(sa[i], sb[i]), "%s@%s: string field %zu differs (%s / %s)", a->name,
             a->version, i, sa[i] ? sa[i] : "NULL", sb[i] ? sb[i] : "NULL");
    SAME(mc_semver_cmp(&a->sv, &b->sv) == 0, "%s@%s: parsed version differs", a->name, a->version);
    SAME(a->size == b->size && a->format == b->format && a->status == b->status &&
             a->created_ns == b->created_ns && a->created_by == b->created_by &&
             a->preload == b->preload && a->pinned == b->pinned && a->generation == b->generation,
         "%s@%s: a number, flag, status or generation differs", a->name, a->version);
    SAME(a->nmetrics == b->nmetrics && a->nparams == b->nparams && a->ntags == b->ntags,
         "%s@%s: map sizes differ", a->name, a->version);
    for (size_t i = 0; i < a->nmetrics; i++)
        SAME(!strcmp(a->metrics[i].key, b->metrics[i].key) &&
                 memcmp(&a->metrics[i].value, &b->metrics[i].value, sizeof(double)) == 0,
             "%s@%s: metric %s differs", a->name, a->version, a->metrics[i].key);
    for (size_t i = 0; i < a->nparams; i++)
        SAME(!strcmp(a->params[i].key, b->params[i].key) &&
                 !strcmp(a->params[i].value, b->params[i].value),
             "%s@%s: param %s differs", a->name, a->version, a->params[i].key);
    for (size_t i = 0; i < a->ntags; i++)
        SAME(!strcmp(a->tags[i].key, b->tags[i].key) && !strcmp(a->tags[i].value, b->tags[i].value),
             "%s@%s: tag %s differs", a->name, a->version, a->tags[i].key);
    return true;
}

/* Every model, version (every field) and alias (with its history) alike. */
static bool registry_same(struct mc_registry *x, struct mc_registry *y, char *why, size_t wsz)
{
    SAME(mc_registry_generation(x) == mc_registry_generation(y), "generations differ");
    SAME(mc_registry_model_count(x) == mc_registry_model_count(y), "model counts differ");
    for (size_t i = 0; i < mc_registry_model_count(x); i++) {
        const struct mc_reg_model *a = mc_registry_model_at(x, i), *b = mc_registry_model_at(y, i);

        SAME(!strcmp(a->name, b->name), "model %zu: %s / %s", i, a->name, b->name);
        SAME(a->nversions == b->nversions && a->naliases == b->naliases,
             "%s: version or alias counts differ", a->name);
        for (size_t k = 0; k < a->nversions; k++)
            if (!version_same(a->versions[k], b->versions[k], why, wsz))
                return false;
        for (size_t k = 0; k < a->naliases; k++) {
            const struct mc_reg_alias *p = &a->aliases[k], *q = &b->aliases[k];

            SAME(!strcmp(p->alias, q->alias) && p->nhistory == q->nhistory &&
                     str_same(p->target ? p->target->version : NULL,
                              q->target ? q->target->version : NULL),
                 "%s: alias %s differs", a->name, p->alias);
            for (size_t h = 0; h < p->nhistory; h++) {
                const struct mc_reg_move *u = &p->history[h], *v = &q->history[h];

                SAME(str_same(u->from, v->from) && str_same(u->to, v->to) && u->at_ns == v->at_ns &&
                         u->generation == v->generation && u->uid == v->uid &&
                         u->rollback == v->rollback,
                     "%s: move %zu of alias %s differs", a->name, h, p->alias);
            }
        }
    }
    return true;
}

/* Open store read-only through the fast reader or through jansson alone. */
static int open_via(const char *store, bool jansson, struct tu_warnings *w, struct mc_registry **r)
{
    int rc;

    mc_jline_jansson_only = jansson;
    memset(w, 0, sizeof(*w));
    rc = tu_open(store, MC_REGISTRY_READONLY, w, r);
    mc_jline_jansson_only = false;
    return rc;
}

static void replay_same(const char *store, size_t *fast_lines)
{
    struct tu_warnings w1, w2;
    struct mc_registry *a, *b;
    uint64_t f0, s0, f1, s1, f2, s2;
    char why[512];

    mc_jline_counts(&f0, &s0);
    ok(open_via(store, false, &w1, &a));
    mc_jline_counts(&f1, &s1);
    ok(open_via(store, true, &w2, &b));
    mc_jline_counts(&f2, &s2);
    /* the fast path took every line, then jansson every line */
    assert_int_equal(s1 - s0, 0);
    assert_true(f1 - f0 > 0);
    assert_int_equal(f2 - f1, 0);
    assert_int_equal(s2 - s1, f1 - f0);
    if (!registry_same(a, b, why, sizeof(why)))
        fail_msg("%s: the state read through the fast reader differs: %s", store, why);
    {
        char *da = tu_dump(a), *db = tu_dump(b);

        assert_string_equal(da, db);
        free(da);
        free(db);
    }
    *fast_lines = (size_t)(f1 - f0);
    mc_registry_close(a);
    mc_registry_close(b);
}

static void test_replay_same_state(void **state)
{
    struct store s;
    size_t lines;
    char *syn;

    (void)state;
    rich_store(&s);
    replay_same(s.path, &lines);
    printf("replay: rich store: %zu lines alike\n", lines);
    if (asprintf(&syn, "%s/syn", s.dir) < 0)
        abort();
    ok(synth_registry(syn, 500, 3));
    replay_same(syn, &lines);
    printf("replay: synthesized journal: %zu lines alike\n", lines);
    {
        struct mc_registry *r;
        struct tu_warnings w;

        ok(tu_open(syn, 0, &w, &r));
        ok(mc_registry_compact(r));
        mc_registry_close(r);
    }
    replay_same(syn, &lines);
    printf("replay: synthesized snapshot: %zu lines alike\n", lines);
    free(syn);
    store_free(&s);
}

/*
 * Damage with matching checksums (what a buggy writer would leave): the
 * outcome (state, or error and message, and warnings) must not depend on
 * which reader read the line.
 */
static void replay_fuzz_case(const char *scratch, const char *file, const char *src, size_t size,
                             size_t at, size_t n, char *line, size_t cap, struct tally *t)
{
    char p[1024], *buf, hex[9];
    struct tu_warnings w1, w2;
    struct mc_registry *a = NULL, *b = NULL;
    size_t len, body;
    int rc1, rc2;
    char msg1[1024];

    /* mutate the body of one line, then give it a matching checksum */
    len = mutate(src + at, n - 18, line, cap - 32);
    body = len;
    snprintf(hex, sizeof(hex), "%08x", mc_crc32c(0, line, body));
    len += (size_t)snprintf(line + len, cap - len, ",\"crc\":\"%s\"}", hex);
    buf = malloc(size + len + 1);
    memcpy(buf, src, at);
    memcpy(buf + at, line, len);
    memcpy(buf + at + len, src + at + n, size - at - n);
    snprintf(p, sizeof(p), "%s/%s", scratch, file);
    tu_write(p, buf, size - n + len);
    free(buf);
    rc1 = open_via(scratch, false, &w1, &a);
    snprintf(msg1, sizeof(msg1), "%s", rc1 ? mc_last_error() : "");
    rc2 = open_via(scratch, true, &w2, &b);
    if (rc1 != rc2)
        fail_msg("%s: %d through the fast reader, %d through jansson (%s / %s)", file, rc1, rc2,
                 msg1, rc2 ? mc_last_error() : "");
    if (rc1) {
        if (strcmp(msg1, mc_last_error()) != 0)
            fail_msg("%s: the messages differ:\n  %s\n  %s", file, msg1, mc_last_error());
        t->refused++;
    } else {
        char why[512];

        if (!registry_same(a, b, why, sizeof(why)))
            fail_msg("%s: the states differ: %s", file, why);
        assert_int_equal(w1.count, w2.count);
        assert_string_equal(w1.last, w2.last);
        t->both++;
    }
    mc_registry_close(a);
    mc_registry_close(b);
}

static void test_replay_fuzz(void **state)
{
    unsigned seed = (unsigned)time(NULL) ^ 0x5a5a;
    int n = iters(40000) / 100;
    struct tally t = {0};
    struct store s;
    char scratch[512], *line;
    struct lines l[2];
    static const char *const files[2] = {"manifest", "journal"};

    (void)state;
    printf("replay fuzz: seed %u\n", seed);
    rng_state = seed * 0x9e3779b97f4a7c15ull + 1;
    rich_store(&s);
    snprintf(scratch, sizeof(scratch), "%s/fuzz", s.dir);
    tu_copy_manifest(s.path, scratch);
    lines_read(s.path, "manifest", &l[0]);
    lines_read(s.path, "journal", &l[1]);
    line = malloc(1 << 16);
    for (int i = 0; i < n; i++) {
        int f = i % 2;
        size_t k = rnd((uint32_t)l[f].n);
        char p[1024];

        replay_fuzz_case(scratch, files[f], l[f].buf, l[f].size, l[f].at[k], l[f].len[k], line,
                         1 << 16, &t);
        /* put the file back */
        snprintf(p, sizeof(p), "%s/%s", scratch, files[f]);
        tu_write(p, l[f].buf, l[f].size);
    }
    printf("replay fuzz: %d damaged stores: %zu loaded alike, %zu refused alike\n", n, t.both,
           t.refused);
    assert_true(t.both > 0 && t.refused > 0);
    free(line);
    lines_free(&l[0]);
    lines_free(&l[1]);
    store_free(&s);
}

/* Append one line to STORE/journal: a "flags" record padded with an unknown member. */
static void append_padded(const char *store, uint64_t g, size_t pad, bool newline)
{
    char p[1024], *fill = malloc(pad + 1);
    json_t *rec = json_pack("{s:I,s:s,s:I,s:i,s:s,s:s,s:b}", "g", (json_int_t)g, "op", "flags", "t",
                            (json_int_t)1, "uid", 0, "name", "c", "version", "3.0.0", "preload", 1);
    size_t len, size;
    char *line, *old;

    memset(fill, 'x', pad);
    fill[pad] = '\0';
    json_object_set_new(rec, "pad", json_string(fill));
    line = mc_manifest_encode(rec, &len);
    snprintf(p, sizeof(p), "%s/journal", store);
    old = tu_read(p, &size);
    old = realloc(old, size + len);
    memcpy(old + size, line, newline ? len : len - 1);
    tu_write(p, old, size + (newline ? len : len - 1));
    free(old);
    free(line);
    free(fill);
    json_decref(rec);
}

/*
 * Lines longer than the reader's arena chunk (64 KiB) and than the read
 * buffer (1 MiB): read alike; longer than 4 MiB: refused as before; a
 * torn tail of megabytes: still a torn tail.
 */
static void test_big_lines(void **state)
{
    struct tu_warnings w;
    struct mc_registry *r;
    struct store s;
    uint64_t g;
    size_t lines;

    (void)state;
    rich_store(&s);
    ok(tu_open(s.path, MC_REGISTRY_READONLY, &w, &r));
    g = mc_registry_generation(r);
    mc_registry_close(r);
    append_padded(s.path, g + 1, 100 << 10, true);
    append_padded(s.path, g + 2, 3 << 20, true);
    replay_same(s.path, &lines);
    ok(tu_open(s.path, MC_REGISTRY_READONLY, &w, &r));
    assert_int_equal(mc_registry_generation(r), g + 2);
    mc_registry_close(r);
    /* a torn tail of 2 MiB: ignored by a reader, with its offset */
    append_padded(s.path, g + 3, 2 << 20, false);
    for (int j = 0; j < 2; j++) {
        assert_int_equal(open_via(s.path, j, &w, &r), 0);
        assert_int_equal(mc_registry_generation(r), g + 2);
        assert_int_equal(w.count, 1);
        assert_non_null(strstr(w.last, "incomplete record"));
        mc_registry_close(r);
    }
    /* a whole line over 4 MiB is damage, through either reader */
    append_padded(s.path, g + 3, 5 << 20, true);
    for (int j = 0; j < 2; j++) {
        assert_int_equal(open_via(s.path, j, &w, &r), MC_ECORRUPT);
        if (!strstr(mc_last_error(), "longer than 4 MiB"))
            fail_msg("%s", mc_last_error());
    }
    store_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_lines),    cmocka_unit_test(test_edge_cases),
        cmocka_unit_test(test_mutated_lines), cmocka_unit_test(test_replay_same_state),
        cmocka_unit_test(test_replay_fuzz),   cmocka_unit_test(test_big_lines),
    };

    setvbuf(stdout, NULL, _IONBF, 0);
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests_name("manifest_json", tests, NULL, NULL);
}
