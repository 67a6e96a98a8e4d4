/*
 * test_api.c - the registry's semantics through its API: push and
 * format detection, what is refused and how it is explained, references,
 * aliases with history and rollback, removal, status, flags and metadata,
 * retention, search, two handles on one store, check and repair.
 */
#include <ctype.h>
#include <dirent.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "registry/registry.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

struct fx {
    char *dir, *store, *files;
    struct mc_registry *r;
    struct tu_warnings w;
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    f->dir = tu_tempdir(NULL);
    if (asprintf(&f->store, "%s/store", f->dir) < 0 || asprintf(&f->files, "%s/files", f->dir) < 0)
        return -1;
    mkdir(f->files, 0755);
    if (tu_open(f->store, MC_REGISTRY_CREATE, &f->w, &f->r) != 0) {
        fprintf(stderr, "open: %s\n", mc_last_error());
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    mc_registry_close(f->r);
    tu_rm_rf(f->dir);
    free(f->dir);
    free(f->store);
    free(f->files);
    free(f);
    return 0;
}

/* A file of size bytes under files/ (its path is static per call site use). */
static const char *mkfile(struct fx *f, const char *name, size_t size, unsigned seed)
{
    static char path[8][512];
    static int slot;
    char *p = path[slot++ % 8];

    snprintf(p, 512, "%s/%s", f->files, name);
    tu_make_file(p, size, seed);
    return p;
}

static void push_ok(struct fx *f, const char *name, const char *version)
{
    int rc = mc_registry_push(f->r, name, version, mkfile(f, "a.bin", 1000, 1), NULL, NULL);

    if (rc)
        fail_msg("push %s@%s: %s", name, version, mc_last_error());
}

#define assert_msg(s)                                                                              \
    do {                                                                                           \
        if (!strstr(mc_last_error(), (s)))                                                         \
            fail_msg("message \"%s\" lacks \"%s\"", mc_last_error(), (s));                         \
    } while (0)

#define WHY_TEST_LEN 1100 /* past the 1024 bytes a reason may have */

static int tmp_files(struct fx *f)
{
    char p[512];

    snprintf(p, sizeof(p), "%s/tmp", f->store);
    return tu_count_entries(p, "push-");
}

static void test_push_basic(void **state)
{
    struct fx *f = *state;
    struct mc_reg_metric metrics[] = {{"accuracy", 0.93}, {"latency_ms", 12.5}};
    struct mc_reg_kv tags[] = {{"env", "prod"}, {"team", "vision"}};
    struct mc_reg_kv params[] = {{"lr", "0.001"}};
    struct mc_reg_meta meta = {.description = "ResNet-50\nfine-tuned",
                               .framework = "pytorch",
                               .precision = "fp16",
                               .device = "cuda",
                               .parent = "resnet@0.9.0",
                               .source = "s3://bucket/resnet.pt",
                               .metrics = metrics,
                               .nmetrics = 2,
                               .params = params,
                               .nparams = 1,
                               .tags = tags,
                               .ntags = 2};
    struct mc_push_opts o = {.meta = &meta, .pinned = true};
    const char *src = mkfile(f, "m.bin", 3 << 20, 7);
    const struct mc_reg_version *v;
    uint64_t gen = 0;
    char want[64], *data, *js;
    size_t len;
    struct stat st;

    assert_int_equal(mc_registry_push(f->r, "resnet", "1.0.0", src, &o, &gen), 0);
    assert_int_equal(gen, 1);
    assert_int_equal(mc_registry_generation(f->r), 1);
    assert_int_equal(mc_registry_resolve(f->r, "resnet", "1.0.0", &v), 0);
    assert_string_equal(v->name, "resnet");
    assert_int_equal(v->size, 3 << 20);
    assert_int_equal(v->status, MC_STATUS_READY);
    assert_true(v->pinned && !v->preload);
    assert_int_equal(v->created_by, getuid());
    assert_string_equal(v->framework, "pytorch");
    assert_string_equal(v->parent, "resnet@0.9.0");
    assert_int_equal(v->nmetrics, 2);
    assert_string_equal(v->metrics[0].key, "accuracy");
    assert_true(v->metrics[0].value == 0.93);
    assert_string_equal(v->tags[1].value, "vision");
    /* the checksum is XXH3-128 of the bytes, computed independently here */
    data = tu_read(src, &len);
    {
        XXH128_canonical_t c;
        XXH128_hash_t h = XXH3_128bits(data, len);

        XXH128_canonicalFromHash(&c, h);
        strcpy(want, "xxh3-128:");
        for (int i = 0; i < 16; i++)
            sprintf(want + 9 + 2 * i, "%02x", c.digest[i]);
    }
    assert_string_equal(v->checksum, want);
    free(data);
    /* the artifact is in place, complete and read-only */
    assert_int_equal(stat(v->path, &st), 0);
    assert_int_equal(st.st_size, 3 << 20);
    assert_int_equal(st.st_mode & 0222, 0);
    assert_non_null(strstr(v->path, "/store/models/resnet/1.0.0/artifact"));
    assert_int_equal(tmp_files(f), 0);
    js = mc_reg_version_json(v);
    assert_non_null(strstr(js, "\"framework\":\"pytorch\""));
    assert_non_null(strstr(js, "\"metrics\":{\"accuracy\":0.93"));
    assert_non_null(strstr(js, "\"checksum\":\"xxh3-128:"));
    assert_non_null(strstr(js, "\"description\":\"ResNet-50\\nfine-tuned\""));
    free(js);
}

static void test_push_formats(void **state)
{
    /* safetensors: a little-endian u64 header length, then its JSON */
    static const unsigned char st[24] = {14,  0,   0,   0,   0,   0,   0,   0,
                                         '{', '"', 'a', '"', ':', '{', '}', '}'};
    static const unsigned char st_long[24] = {200, 0, 0, 0, 0, 0, 0, 0, '{'}; /* past the end */
    static const unsigned char onnx[16] = {0x08, 0x07, 0x12, 0x07, 'p', 'y',
                                           't',  'o',  'r',  'c',  'h'};
    static const struct {
        const void *bytes;
        size_t len;
        enum mc_reg_format want;
    } cases[] = {
        {st, sizeof(st), MC_FORMAT_SAFETENSORS},
        {st_long, sizeof(st_long), MC_FORMAT_OTHER},
        {"GGUF\x03\0\0\0rest", 12, MC_FORMAT_GGUF},
        {"GGU", 3, MC_FORMAT_OTHER},
        {onnx, sizeof(onnx), MC_FORMAT_ONNX},
        {"\x08\x07\x99", 3, MC_FORMAT_OTHER},
    };
    struct fx *f = *state;
    const struct mc_reg_version *v;
    char p[512], ver[16];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(p, sizeof(p), "%s/c%zu", f->files, i);
        snprintf(ver, sizeof(ver), "%zu.0.0", i + 1);
        tu_write(p, cases[i].bytes, cases[i].len);
        assert_int_equal(mc_registry_push(f->r, "m", ver, p, NULL, NULL), 0);
        assert_int_equal(mc_registry_resolve(f->r, "m", ver, &v), 0);
        if (v->format != cases[i].want || v->size != cases[i].len)
            fail_msg("case %zu: format %s, size %llu", i, mc_reg_format_name(v->format),
                     (unsigned long long)v->size);
    }
    assert_string_equal(mc_reg_format_name(MC_FORMAT_GGUF), "gguf");
    /* An empty file could never be loaded: refused, nothing registered. */
    snprintf(p, sizeof(p), "%s/empty", f->files);
    tu_write(p, "", 0);
    assert_int_equal(mc_registry_push(f->r, "m", "99.0.0", p, NULL, NULL), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "is empty"));
    assert_int_equal(mc_registry_resolve(f->r, "m", "99.0.0", &v), MC_ENOENT);
}

/*
 * A refusal changes nothing but the audit log: since generation g0, at most
 * the one "audit" record the registry appends for a change the state
 * refused, whose result is the error (holding want).
 */
static void refusal_logged(struct fx *f, uint64_t g0, const char *want)
{
    uint64_t g = mc_registry_generation(f->r);
    const struct mc_reg_audit *a;

    if (g == g0)
        return;
    assert_int_equal(g, g0 + 1);
    a = mc_registry_audit_at(f->r, mc_registry_audit_count(f->r) - 1);
    assert_non_null(a);
    assert_int_equal(a->generation, g);
    if (strncmp(a->result, "error: ", 7) != 0 || !strstr(a->result, want))
        fail_msg("the refusal's audit entry says \"%s\", not an error with \"%s\"", a->result,
                 want);
}

/* Refused, with a message holding want, and nothing changed (but the log of it). */
#define refused(f, call, code, want)                                                               \
    do {                                                                                           \
        uint64_t g_ = mc_registry_generation((f)->r);                                              \
        assert_int_equal((call), (code));                                                          \
        assert_msg(want);                                                                          \
        refusal_logged((f), g_, (want));                                                           \
        assert_int_equal(tmp_files(f), 0);                                                         \
    } while (0)

static void test_push_refusals(void **state)
{
    struct fx *f = *state;
    const char *src = mkfile(f, "x.bin", 100, 3);
    char longdesc[5000], p[512];
    struct mc_reg_meta meta = {0};
    struct mc_push_opts o = {.meta = &meta};
    struct mc_reg_metric badm[] = {{"acc uracy", 1.0}};
    struct mc_reg_metric nanm[] = {{"acc", 0.0 / 0.0}};
    struct mc_reg_kv badt[] = {{"env", "a\x01"
                                       "b"}};

    static const struct {
        const char *name, *version;
        int code;
        const char *says;
    } bad[] = {
        {"../etc", "1.0.0", MC_EINVAL, "contains \"..\""},
        {"/abs", "1.0.0", MC_EINVAL, "starts with '/'"},
        {"a/b/c", "1.0.0", MC_EINVAL, "only one namespace level"},
        {"bad\nname", "1.0.0", MC_EINVAL, "control byte"},
        {"resnet", "1.x", MC_EINVAL, "model \"resnet\": version \"1.x\" is not a semantic version"},
        {"resnet", "v1.0.0", MC_EINVAL, "starts with 'v'"},
        {"resnet", "1.0", MC_EINVAL, "expected MAJOR.MINOR.PATCH"},
        {"good", "1.0.0", MC_EEXIST, "good@1.0.0 is already registered"},
        {"good", "1.0.0+build.2", MC_EEXIST, "differ only in build metadata"},
    };

    push_ok(f, "good", "1.0.0");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        refused(f, mc_registry_push(f->r, bad[i].name, bad[i].version, src, NULL, NULL),
                bad[i].code, bad[i].says);
    snprintf(p, sizeof(p), "%s/nope", f->files);
    refused(f, mc_registry_push(f->r, "x", "1.0.0", p, NULL, NULL), MC_ENOENT, p);
    refused(f, mc_registry_push(f->r, "x", "1.0.0", f->files, NULL, NULL), MC_EINVAL,
            "is not a regular file");
    memset(longdesc, 'd', sizeof(longdesc) - 1);
    longdesc[sizeof(longdesc) - 1] = '\0';
    meta.description = longdesc;
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL, "description \"ddd");
    assert_msg("at most 4096");
    meta.description = NULL;
    meta.framework = "py\ttorch";
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL,
            "framework \"py\\x09torch\" contains control characters");
    meta.framework = NULL;
    meta.parent = "resnet";
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL,
            "is not NAME@VERSION");
    meta.parent = "resnet@1.x";
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL,
            "not a semantic version");
    meta.parent = NULL;
    meta.source = "s3://a b";
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL, "contains a space");
    meta.source = NULL;
    meta.metrics = badm;
    meta.nmetrics = 1;
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL,
            "metric key \"acc uracy\" contains \" \"");
    meta.metrics = nanm;
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL,
            "metric \"acc\" is not a finite number");
    meta.metrics = NULL;
    meta.nmetrics = 0;
    meta.tags = badt;
    meta.ntags = 1;
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL,
            "tag \"env\" = \"a\\x01b\" contains control characters");
    meta.tags = NULL;
    meta.ntags = 0;
    meta.device = "\xff\xfe";
    refused(f, mc_registry_push(f->r, "x", "1.0.0", src, &o, NULL), MC_EINVAL, "UTF-8");
    assert_null(mc_registry_model(f->r, "x"));
}

static int stop_at_half(void *arg, uint64_t done, uint64_t total)
{
    (void)arg;
    return done * 2 >= total ? MC_EBUSY : 0;
}

static void test_push_cancel(void **state)
{
    struct fx *f = *state;
    struct mc_push_opts o = {.progress = stop_at_half};

    refused(f, mc_registry_push(f->r, "big", "1.0.0", mkfile(f, "big", 12 << 20, 2), &o, NULL),
            MC_EBUSY, "stopped by its progress callback");
    assert_null(mc_registry_model(f->r, "big"));
}

/* Upload data as m@version in pieces of the sizes given (cycled), then commit. */
static int upload_pieces(struct fx *f, const char *version, const char *data, size_t len,
                         const size_t *sizes, size_t nsizes, const char *expect)
{
    struct mc_reg_upload *u;
    int rc = mc_registry_upload_begin(f->r, "m", version, NULL, len, &u);

    if (rc)
        return rc;
    for (size_t off = 0, i = 0; off < len; i++) {
        size_t n = sizes[i % nsizes] < len - off ? sizes[i % nsizes] : len - off;

        assert_int_equal(mc_registry_upload_write(u, data + off, n), 0);
        off += n;
        assert_int_equal(mc_registry_upload_size(u), off);
    }
    return mc_registry_upload_commit(f->r, u, expect, NULL);
}

static void test_upload(void **state)
{
    static const unsigned char st[24] = {14,  0,   0,   0,   0,   0,   0,   0,
                                         '{', '"', 'a', '"', ':', '{', '}', '}'};
    static const size_t odd[] = {1, 7, 63, 64, 65, 4099, 1 << 20, 3};
    static const size_t ones[] = {1};
    struct fx *f = *state;
    const char *src = mkfile(f, "m.bin", (5 << 20) + 13, 9);
    const struct mc_reg_version *v1, *v2;
    struct mc_reg_upload *u;
    char *data, *got, sum[48], *wrong;
    size_t len, glen;
    uint64_t g;

    /* pieces of odd sizes: the same checksum, format and bytes as a file push */
    data = tu_read(src, &len);
    assert_int_equal(mc_registry_push(f->r, "m", "1.0.0", src, NULL, NULL), 0);
    assert_int_equal(upload_pieces(f, "2.0.0", data, len, odd, 8, NULL), 0);
    assert_int_equal(mc_registry_resolve(f->r, "m", "1.0.0", &v1), 0);
    assert_int_equal(mc_registry_resolve(f->r, "m", "2.0.0", &v2), 0);
    assert_string_equal(v1->checksum, v2->checksum);
    assert_int_equal(v1->size, v2->size);
    assert_int_equal(v1->format, v2->format);
    assert_int_equal(v2->status, MC_STATUS_READY);
    got = tu_read(v2->path, &glen);
    assert_int_equal(glen, len);
    assert_memory_equal(got, data, len);
    free(got);
    snprintf(sum, sizeof(sum), "%s", v1->checksum);
    /* the format is detected from the first bytes even when they come one by one */
    assert_int_equal(upload_pieces(f, "3.0.0", (const char *)st, sizeof(st), ones, 1, NULL), 0);
    assert_int_equal(mc_registry_resolve(f->r, "m", "3.0.0", &v2), 0);
    assert_int_equal(v2->format, MC_FORMAT_SAFETENSORS);
    /* expect matching (either case of hex) registers */
    for (char *p = sum + 9; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    assert_int_equal(upload_pieces(f, "4.0.0", data, len, odd + 5, 2, sum), 0);

    /* a checksum mismatch: refused naming both, nothing registered, nothing left */
    g = mc_registry_generation(f->r);
    wrong = strdup("xxh3-128:0123456789abcdef0123456789abcdef");
    assert_int_equal(upload_pieces(f, "5.0.0", data, 1000, odd, 8, wrong), MC_ECORRUPT);
    assert_msg(wrong);
    assert_msg("arrived with checksum xxh3-128:");
    assert_msg("nothing was registered");
    free(wrong);
    assert_int_equal(mc_registry_generation(f->r), g);
    assert_int_equal(tmp_files(f), 0);
    assert_int_equal(mc_registry_resolve(f->r, "m", "5.0.0", &v2), MC_ENOENT);
    refused(f, upload_pieces(f, "5.0.0", data, 1000, odd, 8, "xxh3:12"), MC_EINVAL,
            "is not \"xxh3-128:\" and 32 hex digits");

    /* abort leaves nothing */
    assert_int_equal(mc_registry_upload_begin(f->r, "m", "5.0.0", NULL, 0, &u), 0);
    assert_int_equal(tmp_files(f), 1);
    assert_int_equal(mc_registry_upload_write(u, data, 4096), 0);
    mc_registry_upload_abort(f->r, u);
    assert_int_equal(tmp_files(f), 0);
    assert_int_equal(mc_registry_generation(f->r), g);

    /* 0 bytes: refused at commit */
    assert_int_equal(mc_registry_upload_begin(f->r, "m", "5.0.0", NULL, 0, &u), 0);
    refused(f, mc_registry_upload_commit(f->r, u, NULL, NULL), MC_EINVAL, "is empty (0 bytes");

    /* refused at begin, before any byte: an existing version, bad input, no room */
    refused(f, mc_registry_upload_begin(f->r, "m", "1.0.0", NULL, 100, &u), MC_EEXIST,
            "m@1.0.0 is already registered");
    assert_null(u);
    refused(f, mc_registry_upload_begin(f->r, "m", "1.x", NULL, 100, &u), MC_EINVAL,
            "not a semantic version");
    refused(f, mc_registry_upload_begin(f->r, "../m", "1.0.0", NULL, 100, &u), MC_EINVAL, "..");
    refused(f, mc_registry_upload_begin(f->r, "m", "6.0.0", NULL, 1ull << 62, &u), MC_ENOSPC,
            "the upload of m@6.0.0 is 4611686018427387904 bytes");
    free(data);
}

/* The mode of the one staged upload in the store's tmp (-1 if none). */
static int staged_mode(struct fx *f)
{
    char p[512];
    DIR *d;
    struct dirent *e;
    struct stat st;
    int mode = -1;

    snprintf(p, sizeof(p), "%s/tmp", f->store);
    d = opendir(p);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "push-", 5) != 0)
            continue;
        snprintf(p, sizeof(p), "%s/tmp/%s", f->store, e->d_name);
        assert_int_equal(stat(p, &st), 0);
        mode = (int)(st.st_mode & 07777);
    }
    closedir(d);
    return mode;
}

static void *finish_thread(void *u)
{
    return (void *)(intptr_t)mc_registry_upload_finish(u);
}

/*
 * finish syncs, protects and sums the staged file touching only the upload,
 * so it runs on another thread while r is busy with a push (mcache-serve
 * calls it without its lock); commit then only registers.
 */
static void test_upload_finish(void **state)
{
    struct fx *f = *state;
    const char *src = mkfile(f, "m.bin", (1 << 20) + 5, 3);
    const struct mc_reg_version *v1, *v2;
    struct mc_reg_upload *u;
    pthread_t t;
    void *ret;
    char *data;
    size_t len;

    data = tu_read(src, &len);
    assert_int_equal(mc_registry_upload_begin(f->r, "m", "2.0.0", NULL, len, &u), 0);
    assert_int_equal(mc_registry_upload_write(u, data, len), 0);
    assert_int_equal(staged_mode(f) & 0222, 0200); /* still writable */
    assert_int_equal(pthread_create(&t, NULL, finish_thread, u), 0);
    assert_int_equal(mc_registry_push(f->r, "m", "1.0.0", src, NULL, NULL), 0); /* meanwhile */
    assert_int_equal(pthread_join(t, &ret), 0);
    assert_int_equal((intptr_t)ret, 0);
    assert_int_equal(staged_mode(f), 0444);
    assert_int_equal(mc_registry_upload_finish(u), 0); /* again: nothing more */
    assert_int_equal(mc_registry_upload_write(u, data, 1), MC_EINVAL);
    assert_msg("is already finished");
    assert_int_equal(mc_registry_resolve(f->r, "m", "1.0.0", &v1), 0);
    assert_int_equal(mc_registry_upload_commit(f->r, u, v1->checksum, NULL), 0);
    assert_int_equal(mc_registry_resolve(f->r, "m", "1.0.0", &v1), 0);
    assert_int_equal(mc_registry_resolve(f->r, "m", "2.0.0", &v2), 0);
    assert_string_equal(v1->checksum, v2->checksum);
    assert_int_equal(v2->size, len);
    assert_int_equal(tmp_files(f), 0);

    /* an empty upload: finish refuses it, and so does commit after it */
    assert_int_equal(mc_registry_upload_begin(f->r, "m", "3.0.0", NULL, 0, &u), 0);
    assert_int_equal(mc_registry_upload_finish(u), MC_EINVAL);
    assert_msg("is empty (0 bytes");
    refused(f, mc_registry_upload_commit(f->r, u, NULL, NULL), MC_EINVAL, "is empty (0 bytes");
    assert_int_equal(tmp_files(f), 0);
    free(data);
}

/* A process that dies mid-upload leaves a temp file the next writer removes, as a push's. */
static void test_upload_dead(void **state)
{
    struct fx *f = *state;
    struct mc_registry *r2;
    struct tu_warnings w = {0};
    pid_t pid = fork();

    assert_true(pid >= 0);
    if (pid == 0) {
        struct mc_reg_upload *u;

        if (mc_registry_upload_begin(f->r, "m", "1.0.0", NULL, 0, &u) != 0 ||
            mc_registry_upload_write(u, "partial", 7) != 0)
            _exit(1);
        _exit(0); /* dies with the upload open */
    }
    assert_int_equal(tu_wait(pid), 0);
    assert_int_equal(tmp_files(f), 1);
    assert_int_equal(tu_open(f->store, 0, &w, &r2), 0);
    assert_int_equal(tmp_files(f), 0);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "removed 1 temp file"));
    assert_int_equal(mc_registry_resolve(r2, "m", "1.0.0", &(const struct mc_reg_version *){0}),
                     MC_ENOENT);
    mc_registry_close(r2);
}

/* The newest audit entry. */
static const struct mc_reg_audit *audit_last(struct fx *f)
{
    size_t n = mc_registry_audit_count(f->r);

    assert_true(n > 0);
    return mc_registry_audit_at(f->r, n - 1);
}

static void audit_is(const struct mc_reg_audit *a, const char *what, const char *result)
{
    assert_non_null(a);
    if (strcmp(a->what, what) != 0 || strncmp(a->result, result, strlen(result)) != 0)
        fail_msg("audit entry \"%s\" / \"%s\", want \"%s\" / \"%s...\"", a->what, a->result, what,
                 result);
}

static void test_audit(void **state)
{
    struct fx *f = *state;
    struct mc_reg_weight t[2] = {{"1.0.0", 90}, {"2.0.0", 10}};
    struct mc_gc_opts gc = {.keep = 1};
    struct mc_registry *r2;
    struct tu_warnings w = {0};
    const struct mc_reg_audit *a;
    char uidp[32], report[700];
    size_t n;

    /* the default actor: the uid with its user name, local */
    push_ok(f, "m", "1.0.0");
    a = audit_last(f);
    audit_is(a, "push m@1.0.0", "ok");
    snprintf(uidp, sizeof(uidp), "uid:%u", (unsigned)getuid());
    assert_true(strncmp(a->who, uidp, strlen(uidp)) == 0);
    assert_string_equal(a->from, "local");
    assert_int_equal(a->generation, mc_registry_generation(f->r));
    assert_int_equal(a->id, a->generation);
    assert_true(a->at_ns > 0);

    /* one entry per change, with the actor set for it */
    mc_registry_set_actor(f->r, "token:ci", "10.0.0.7");
    push_ok(f, "m", "2.0.0");
    audit_is(audit_last(f), "push m@2.0.0", "ok");
    assert_string_equal(audit_last(f)->who, "token:ci");
    assert_string_equal(audit_last(f)->from, "10.0.0.7");
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL), 0);
    audit_is(audit_last(f), "alias m production 1.0.0=90 2.0.0=10", "ok");
    assert_int_equal(mc_registry_set_status(f->r, "m", "2.0.0", MC_STATUS_READY, NULL, NULL), 0);
    audit_is(audit_last(f), "status m@2.0.0 ready", "ok");
    /* untrusted text from a peer is kept printable */
    mc_registry_set_actor(f->r, "token:x\n\x01y", NULL);
    assert_int_equal(mc_registry_alias_remove(f->r, "m", "production", NULL), 0);
    audit_is(audit_last(f), "alias rm m production", "ok");
    assert_string_equal(audit_last(f)->who, "token:x??y");
    assert_string_equal(audit_last(f)->from, "local");
    mc_registry_set_actor(f->r, "anonymous", "127.0.0.1");
    push_ok(f, "m", "3.0.0");
    assert_int_equal(mc_registry_gc(f->r, &gc, NULL, NULL), 0);
    audit_is(audit_last(f), "gc (2 versions)", "ok");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "3.0.0", NULL), 0);

    /* a change the state refuses is recorded, with its message; the caller's answer is kept */
    n = mc_registry_audit_count(f->r);
    assert_int_equal(mc_registry_remove_version(f->r, "m", "3.0.0", false, NULL), MC_EBUSY);
    assert_msg("production");
    assert_int_equal(mc_registry_audit_count(f->r), n + 1);
    audit_is(audit_last(f), "rm m@3.0.0", "error: ");
    assert_non_null(strstr(audit_last(f)->result, "production"));
    assert_string_equal(audit_last(f)->who, "anonymous");
    /*
     * ... and a caller reporting the same failure (the same actor and
     * message, its text cut or not), even after other calls, does not
     * record it twice; once only.
     */
    snprintf(report, sizeof(report), "error: %.600s", mc_last_error());
    assert_int_equal(mc_registry_alias_set(f->r, "m", "staging", "3.0.0", NULL), 0);
    n = mc_registry_audit_count(f->r);
    assert_int_equal(mc_registry_audit_add(f->r, "DELETE m@3.0.0", report, NULL), 0);
    assert_int_equal(mc_registry_audit_count(f->r), n);
    assert_int_equal(mc_registry_audit_add(f->r, "DELETE m@3.0.0", report, NULL), 0);
    assert_int_equal(mc_registry_audit_count(f->r), n + 1);
    audit_is(audit_last(f), "DELETE m@3.0.0", "error: ");
    /* an attempt refused before the registry (a bad token) is the caller's to record */
    assert_int_equal(mc_registry_audit_add(f->r, "push m@9.0.0", "error: unauthorized", NULL), 0);
    audit_is(audit_last(f), "push m@9.0.0", "error: unauthorized");
    assert_int_equal(mc_registry_audit_count(f->r), n + 2);
    assert_int_equal(mc_registry_audit_add(f->r, "", "ok", NULL), MC_EINVAL);
    assert_int_equal(mc_registry_push(f->r, "m", "3.0.0", mkfile(f, "a.bin", 10, 1), NULL, NULL),
                     MC_EEXIST);
    audit_is(audit_last(f), "push m@3.0.0", "error: m@3.0.0 is already registered");

    /* the log survives compaction and reopening, entry for entry */
    n = mc_registry_audit_count(f->r);
    assert_int_equal(mc_registry_compact(f->r), 0);
    assert_int_equal(tu_open(f->store, 0, &w, &r2), 0);
    assert_int_equal(mc_registry_audit_count(r2), n);
    for (size_t i = 0; i < n; i++) {
        const struct mc_reg_audit *x = mc_registry_audit_at(f->r, i), *y = mc_registry_audit_at(r2, i);

        assert_int_equal(x->id, y->id);
        assert_int_equal(x->at_ns, y->at_ns);
        assert_int_equal(x->generation, y->generation);
        assert_string_equal(x->who, y->who);
        assert_string_equal(x->from, y->from);
        assert_string_equal(x->what, y->what);
        assert_string_equal(x->result, y->result);
    }
    assert_null(mc_registry_audit_at(r2, n));
    /* and another handle sees a change's entry on refresh */
    mc_registry_set_actor(r2, "token:other", "::1");
    assert_int_equal(mc_registry_alias_remove(r2, "m", "production", NULL), 0);
    assert_int_equal(mc_registry_refresh(f->r, NULL), 0);
    assert_string_equal(audit_last(f)->who, "token:other");
    mc_registry_close(r2);
}

/*
 * Text others chose reaches terminals (`mcache audit`, `mcache show`): a
 * reason with control bytes is refused as a description's is, and an audit
 * entry's what and result keep theirs only as \xNN.
 */
static void test_control_bytes(void **state)
{
    struct fx *f = *state;
    const struct mc_reg_audit *a;

    push_ok(f, "m", "1.0.0");
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "prod",
                                                    (struct mc_reg_weight[]){{"1.0.0", 100}}, 1,
                                                    "\x1b[31mred", NULL),
                     MC_EINVAL);
    assert_msg("contains control characters");
    assert_msg("\\x1b[31mred");
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "prod",
                                                    (struct mc_reg_weight[]){{"1.0.0", 100}}, 1,
                                                    "one\nline", NULL),
                     MC_EINVAL);
    assert_int_equal(mc_registry_audit_add(f->r, "snapshot create \x1b]0;PWNED\x07",
                                           "error: \x1b[2J\x7f\tno", NULL),
                     0);
    a = audit_last(f);
    assert_string_equal(a->what, "snapshot create \\x1b]0;PWNED\\x07");
    assert_string_equal(a->result, "error: \\x1b[2J\\x7f\\x09no");
    /* the registry's own record of a refusal: its intent escaped too */
    assert_int_equal(mc_registry_alias_set(f->r, "m", "prod", "1.0.0\x1b[31m", NULL), MC_EINVAL);
    a = audit_last(f);
    assert_string_equal(a->what, "alias m prod 1.0.0\\x1b[31m");
    assert_null(strchr(a->result, '\x1b'));
    /* a reason of plain text still goes */
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "prod",
                                                    (struct mc_reg_weight[]){{"1.0.0", 100}}, 1,
                                                    "canary by hand, ü", NULL),
                     0);
}

/* The newest MC_REG_AUDIT_MAX entries are kept, through compactions and a reopen. */
static void test_audit_bounded(void **state)
{
    char *dir = tu_tempdir(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL), what[64];
    struct mc_registry *r, *r2;
    struct tu_warnings w = {0};
    const size_t extra = 7;

    (void)state;
    assert_int_equal(tu_open(dir, MC_REGISTRY_CREATE, &w, &r), 0);
    for (size_t i = 0; i < MC_REG_AUDIT_MAX + extra; i++) {
        snprintf(what, sizeof(what), "attempt %zu", i);
        assert_int_equal(mc_registry_audit_add(r, what, "error: refused", NULL), 0);
    }
    assert_int_equal(mc_registry_audit_count(r), MC_REG_AUDIT_MAX);
    assert_string_equal(mc_registry_audit_at(r, 0)->what, "attempt 7");
    snprintf(what, sizeof(what), "attempt %zu", (size_t)MC_REG_AUDIT_MAX + extra - 1);
    assert_string_equal(mc_registry_audit_at(r, MC_REG_AUDIT_MAX - 1)->what, what);
    assert_null(mc_registry_audit_at(r, MC_REG_AUDIT_MAX));
    assert_int_equal(tu_open(dir, 0, &w, &r2), 0);
    assert_int_equal(mc_registry_audit_count(r2), MC_REG_AUDIT_MAX);
    assert_string_equal(mc_registry_audit_at(r2, 0)->what, "attempt 7");
    assert_int_equal(mc_registry_audit_at(r2, 0)->id, mc_registry_audit_at(r, 0)->id);
    mc_registry_close(r2);
    mc_registry_close(r);
    tu_rm_rf(dir);
    free(dir);
}

static bool file_has(const char *path, const char *needle)
{
    size_t len;
    char *text = tu_read(path, &len);
    bool has = text && memmem(text, len, needle, strlen(needle)) != NULL;

    free(text);
    return has;
}

static void test_tokens(void **state)
{
    struct fx *f = *state;
    char sec[MC_TOKEN_LEN + 1], sec2[MC_TOKEN_LEN + 1], p[512], wrong[MC_TOKEN_LEN + 1];
    const struct mc_reg_token *t;
    struct mc_registry *r2;
    struct tu_warnings w = {0};

    mc_registry_set_actor(f->r, "uid:0(root)", "local");
    assert_int_equal(mc_registry_token_add(f->r, "ci", "publisher", sec, NULL), 0);
    assert_int_equal(strlen(sec), MC_TOKEN_LEN);
    assert_true(strncmp(sec, "mct_", 4) == 0);
    assert_int_equal(strspn(sec + 4, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     MC_TOKEN_LEN - 4);
    audit_is(audit_last(f), "token add ci (publisher)", "ok");
    assert_int_equal(mc_registry_token_add(f->r, "admin-1", "admin", sec2, NULL), 0);
    assert_string_not_equal(sec, sec2);
    assert_int_equal(mc_registry_token_count(f->r), 2);
    t = mc_registry_token_at(f->r, 0); /* by name */
    assert_string_equal(t->name, "admin-1");
    t = mc_registry_token_at(f->r, 1);
    assert_string_equal(t->name, "ci");
    assert_string_equal(t->role, "publisher");
    assert_string_equal(t->created_by, "uid:0(root)");
    assert_true(strncmp(t->hash, "sha256:", 7) == 0 && strlen(t->hash) == 71);
    assert_true(t->created_ns > 0);
    assert_null(mc_registry_token_at(f->r, 2));

    /* checking */
    assert_ptr_equal(mc_registry_token_check(f->r, sec), t);
    assert_string_equal(mc_registry_token_check(f->r, sec2)->name, "admin-1");
    memcpy(wrong, sec, sizeof(wrong));
    wrong[10] = wrong[10] == 'A' ? 'B' : 'A';
    assert_null(mc_registry_token_check(f->r, wrong));
    assert_msg("the token is not valid");
    assert_null(mc_registry_token_check(f->r, ""));
    assert_null(mc_registry_token_check(f->r, NULL));

    /* refusals */
    refused(f, mc_registry_token_add(f->r, "ci", "reader", sec2, NULL), MC_EEXIST,
            "token \"ci\" exists");
    audit_is(audit_last(f), "token add ci (reader)", "error: token \"ci\" exists");
    refused(f, mc_registry_token_add(f->r, "c i", "reader", sec2, NULL), MC_EINVAL, "contains ' '");
    refused(f, mc_registry_token_add(f->r, "x", "root", sec2, NULL), MC_EINVAL,
            "role \"root\" is not one of reader, publisher, admin");
    refused(f, mc_registry_token_remove(f->r, "nope", NULL), MC_ENOENT, "no token \"nope\"");

    /* the secret is in no file of the store, before or after compaction */
    snprintf(p, sizeof(p), "%s/journal", f->store);
    assert_true(file_has(p, "sha256:"));
    assert_false(file_has(p, sec));
    assert_false(file_has(p, sec + 4));
    assert_int_equal(mc_registry_compact(f->r), 0);
    snprintf(p, sizeof(p), "%s/manifest", f->store);
    assert_true(file_has(p, "\"op\":\"token\""));
    assert_false(file_has(p, sec));
    assert_false(file_has(p, sec + 4));
    assert_false(file_has(p, sec2 + 4));

    /* they survive reopening; removal */
    assert_int_equal(tu_open(f->store, 0, &w, &r2), 0);
    assert_int_equal(mc_registry_token_count(r2), 2);
    assert_string_equal(mc_registry_token_check(r2, sec)->name, "ci");
    assert_string_equal(mc_registry_token_at(r2, 1)->created_by, "uid:0(root)");
    assert_int_equal(mc_registry_token_remove(r2, "ci", NULL), 0);
    assert_null(mc_registry_token_check(r2, sec));
    assert_int_equal(mc_registry_refresh(f->r, NULL), 0);
    assert_int_equal(mc_registry_token_count(f->r), 1);
    assert_null(mc_registry_token_check(f->r, sec));
    audit_is(audit_last(f), "token rm ci", "ok");
    mc_registry_close(r2);
}

static void resolves(struct fx *f, const char *ref, const char *want)
{
    const struct mc_reg_version *v;
    int rc = mc_registry_resolve(f->r, "m", ref, &v);

    if (want == NULL) {
        if (rc != MC_ENOENT)
            fail_msg("%s resolved (%d) to %s", ref, rc, rc ? "?" : v->version);
        return;
    }
    if (rc != 0)
        fail_msg("%s: want %s, got an error: %s", ref, want, mc_last_error());
    else if (strcmp(v->version, want) != 0)
        fail_msg("%s: want %s, got %s", ref, want, v->version);
}

static void test_resolve(void **state)
{
    struct fx *f = *state;
    static const char *const vs[] = {"0.9.0",      "1.0.0",          "1.2.0",        "1.2.5",
                                     "1.3.0-rc.1", "1.10.0+build.3", "2.0.0-beta.1", "2.1.0"};

    for (size_t i = 0; i < sizeof(vs) / sizeof(vs[0]); i++)
        push_ok(f, "m", vs[i]);
    assert_int_equal(mc_registry_set_status(f->r, "m", "2.1.0", MC_STATUS_ARCHIVED, "old", NULL),
                     0);
    resolves(f, "latest", "1.10.0+build.3"); /* 2.1.0 is archived */
    resolves(f, NULL, "1.10.0+build.3");
    resolves(f, "1.2.0", "1.2.0");
    resolves(f, "1.10.0", "1.10.0+build.3"); /* build metadata optional */
    resolves(f, "1.10.0+build.3", "1.10.0+build.3");
    resolves(f, "1.10.0+build.4", NULL); /* but must match if given */
    resolves(f, "2.1.0", "2.1.0");       /* exact reaches archived */
    resolves(f, "^1.2", "1.10.0+build.3");
    resolves(f, "~1.2", "1.2.5");
    resolves(f, "1.2.x", "1.2.5");
    resolves(f, ">=1.0.0 <1.2.0", "1.0.0");
    resolves(f, "^0.9 || ^3", "0.9.0");
    resolves(f, "1.0.0 - 1.2.0", "1.2.0");
    resolves(f, ">=1.3.0-rc.0 <1.4", "1.3.0-rc.1"); /* prerelease named on the same tuple */
    resolves(f, "^1.3.0", "1.10.0+build.3");
    resolves(f, "~1.3", NULL); /* 1.3.0-rc.1 is not in ~1.3 for npm */
    resolves(f, "^2", NULL);   /* 2.0.0-beta.1 prerelease, 2.1.0 archived */
    resolves(f, "2.0.0-beta.1", "2.0.0-beta.1");
    resolves(f, "1.5.0", NULL);
    assert_msg("model \"m\" has no version 1.5.0 (it has 2.1.0, 2.0.0-beta.1, 1.10.0+build.3");
    resolves(f, "^3", NULL);
    assert_msg("no ready version of \"m\" matches the range \"^3\"");
    {
        const struct mc_reg_version *v;

        assert_int_equal(mc_registry_resolve(f->r, "nope", "latest", &v), MC_ENOENT);
        assert_msg("there is no model \"nope\"");
        assert_int_equal(mc_registry_resolve(f->r, "m", ">=banana", &v), MC_EINVAL);
        assert_msg("is not a version");
        assert_int_equal(mc_registry_resolve(f->r, "m", "production", &v), MC_ENOENT);
        assert_msg("has no alias \"production\"");
    }
}

static void test_aliases(void **state)
{
    struct fx *f = *state;
    const struct mc_reg_model *m;
    const struct mc_reg_alias *a;
    const struct mc_reg_version *v;
    uint64_t gen, g0;

    push_ok(f, "m", "1.0.0");
    push_ok(f, "m", "1.1.0");
    push_ok(f, "m", "2.0.0");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "1.0.0", &gen), 0);
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "^1", NULL), 0); /* 1.1.0 */
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "latest", NULL), 0);
    g0 = mc_registry_generation(f->r);
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "2.0.0", &gen), 0);
    assert_int_equal(gen, g0); /* already there: no record */
    assert_int_equal(mc_registry_alias_set(f->r, "m", "canary", "production", NULL), 0);
    assert_int_equal(mc_registry_resolve(f->r, "m", "canary", &v), 0);
    assert_string_equal(v->version, "2.0.0");
    m = mc_registry_model(f->r, "m");
    assert_int_equal(m->naliases, 2);
    a = &m->aliases[1];
    assert_string_equal(a->alias, "production");
    assert_int_equal(a->nhistory, 3);
    assert_null(a->history[0].from);
    assert_string_equal(a->history[0].to, "1.0.0");
    assert_string_equal(a->history[1].from, "1.0.0");
    assert_string_equal(a->history[1].to, "1.1.0");
    assert_string_equal(a->history[2].to, "2.0.0");
    assert_int_equal(a->history[2].uid, getuid());
    assert_true(a->history[2].at_ns > a->history[0].at_ns);
    assert_true(a->history[2].generation > a->history[1].generation);
    /* rollback walks back one move at a time */
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), 0);
    resolves(f, "production", "1.1.0");
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), 0);
    resolves(f, "production", "1.0.0");
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), MC_EBUSY);
    assert_msg("has no earlier target to roll back to");
    m = mc_registry_model(f->r, "m");
    assert_true(m->aliases[1].history[4].rollback);
    /* a new move after rollbacks is what the next rollback undoes */
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "2.0.0", NULL), 0);
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), 0);
    resolves(f, "production", "1.0.0");
    /* removal is a move too, and can be rolled back */
    assert_int_equal(mc_registry_alias_remove(f->r, "m", "production", NULL), 0);
    resolves(f, "production", NULL);
    assert_msg("it was removed");
    assert_int_equal(mc_registry_alias_remove(f->r, "m", "production", NULL), MC_ENOENT);
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), 0);
    resolves(f, "production", "1.0.0");
    /* rollback to a version that is gone */
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "1.1.0", NULL), 0);
    assert_int_equal(mc_registry_remove_version(f->r, "m", "1.0.0", false, NULL), 0);
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), MC_ENOENT);
    assert_msg("pointed at 1.0.0 before, which has been removed");
    /* refusals */
    refused(f, mc_registry_alias_set(f->r, "m", "latest", "1.1.0", NULL), MC_EINVAL, "reserved");
    refused(f, mc_registry_alias_set(f->r, "m", "v2", "1.1.0", NULL), MC_EINVAL,
            "would read as a version range");
    refused(f, mc_registry_alias_set(f->r, "m", "prod", "9.9.9", NULL), MC_ENOENT,
            "has no version 9.9.9");
    refused(f, mc_registry_alias_set(f->r, "nope", "prod", "1.1.0", NULL), MC_ENOENT,
            "no model \"nope\"");
    assert_int_equal(mc_registry_set_status(f->r, "m", "2.0.0", MC_STATUS_FAILED, "bad sum", NULL),
                     0);
    refused(f, mc_registry_alias_set(f->r, "m", "prod", "2.0.0", NULL), MC_EBUSY,
            "is failed; alias \"prod\" can only point at a ready version");
}

static void test_remove(void **state)
{
    struct fx *f = *state;
    const struct mc_reg_model *m;
    char p[512];

    push_ok(f, "m", "1.0.0");
    push_ok(f, "m", "2.0.0");
    push_ok(f, "org/m", "1.0.0");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "1.0.0", NULL), 0);
    refused(f, mc_registry_remove_version(f->r, "m", "1.0.0", false, NULL), MC_EBUSY,
            "is the target of alias \"production\"");
    assert_int_equal(mc_registry_set_flags(f->r, "m", "2.0.0", -1, 1, NULL), 0);
    refused(f, mc_registry_remove_version(f->r, "m", "2.0.0", false, NULL), MC_EBUSY, "is pinned");
    refused(f, mc_registry_remove_model(f->r, "m", false, NULL), MC_EBUSY, "alias");
    refused(f, mc_registry_remove_version(f->r, "m", "3.0.0", false, NULL), MC_ENOENT,
            "has no version 3.0.0");
    assert_int_equal(mc_registry_remove_version(f->r, "m", "1.0.0", true, NULL), 0);
    snprintf(p, sizeof(p), "%s/models/m/1.0.0", f->store);
    assert_int_not_equal(access(p, F_OK), 0);
    m = mc_registry_model(f->r, "m");
    assert_int_equal(m->nversions, 1);
    assert_null(m->aliases[0].target); /* forced: the alias went, in its history */
    assert_null(m->aliases[0].history[1].to);
    assert_int_equal(mc_registry_remove_model(f->r, "m", true, NULL), 0);
    assert_null(mc_registry_model(f->r, "m"));
    snprintf(p, sizeof(p), "%s/models/m", f->store);
    assert_int_not_equal(access(p, F_OK), 0);
    /* the namespaced model is untouched */
    snprintf(p, sizeof(p), "%s/models/org/m/1.0.0/artifact", f->store);
    assert_int_equal(access(p, F_OK), 0);
    assert_int_equal(mc_registry_remove_model(f->r, "org/m", false, NULL), 0);
    snprintf(p, sizeof(p), "%s/models/org", f->store);
    assert_int_not_equal(access(p, F_OK), 0);
    assert_int_equal(mc_registry_model_count(f->r), 0);
}

static void test_status_flags_meta(void **state)
{
    struct fx *f = *state;
    const struct mc_reg_version *v;
    struct mc_reg_metric mt[] = {{"accuracy", 0.95}, {"f1", 0.0 / 0.0}};
    struct mc_reg_kv tg[] = {{"env", "staging"}, {"team", NULL}};
    struct mc_reg_kv t0[] = {{"team", "a"}};
    struct mc_reg_metric m0[] = {{"f1", 0.5}};
    struct mc_reg_meta meta0 = {
        .metrics = m0, .nmetrics = 1, .tags = t0, .ntags = 1, .framework = "jax"};
    struct mc_push_opts o = {.meta = &meta0};
    struct mc_reg_meta patch = {.metrics = mt,
                                .nmetrics = 2,
                                .tags = tg,
                                .ntags = 2,
                                .framework = "",
                                .description = "now described"};
    uint64_t gen;

    assert_int_equal(mc_registry_push(f->r, "m", "1.0.0", mkfile(f, "a", 10, 1), &o, NULL), 0);
    assert_int_equal(mc_registry_set_meta(f->r, "m", "1.0.0", &patch, &gen), 0);
    mc_registry_resolve(f->r, "m", "1.0.0", &v);
    assert_int_equal(v->generation, gen);
    assert_null(v->framework);
    assert_string_equal(v->description, "now described");
    assert_int_equal(v->nmetrics, 1);
    assert_true(v->metrics[0].value == 0.95);
    assert_int_equal(v->ntags, 1);
    assert_string_equal(v->tags[0].key, "env");
    assert_int_equal(mc_registry_set_flags(f->r, "m", "1.0.0", 1, -1, NULL), 0);
    mc_registry_resolve(f->r, "m", "1.0.0", &v);
    assert_true(v->preload && !v->pinned);
    assert_int_equal(mc_registry_set_status(f->r, "m", "1.0.0", MC_STATUS_FAILED, "checksum", NULL),
                     0);
    mc_registry_resolve(f->r, "m", "1.0.0", &v);
    assert_int_equal(v->status, MC_STATUS_FAILED);
    assert_string_equal(v->status_reason, "checksum");
    resolves(f, "latest", NULL);
    refused(f, mc_registry_set_status(f->r, "m", "1.0.0", (enum mc_reg_status)9, NULL, NULL),
            MC_EINVAL, "is not one of");
    patch = (struct mc_reg_meta){.precision = "a\nb"};
    refused(f, mc_registry_set_meta(f->r, "m", "1.0.0", &patch, NULL), MC_EINVAL,
            "control characters");
    refused(f, mc_registry_set_flags(f->r, "m", "7.0.0", 1, 1, NULL), MC_ENOENT,
            "has no version 7.0.0");
    {
        enum mc_reg_status s;

        assert_int_equal(mc_reg_status_parse("archived", &s), 0);
        assert_int_equal(s, MC_STATUS_ARCHIVED);
        assert_int_equal(mc_reg_status_parse("gone", &s), MC_EINVAL);
    }
}

static void gc_each(void *arg, const struct mc_reg_version *v)
{
    char *list = arg;

    strcat(list, v->version);
    strcat(list, " ");
}

static void test_gc(void **state)
{
    struct fx *f = *state;
    char list[1024] = "";
    struct mc_gc_opts o = {.keep = 2, .dry_run = true, .each = gc_each, .arg = list};
    const struct mc_reg_version *v;
    size_t n;

    for (int i = 1; i <= 6; i++) {
        char ver[16];

        snprintf(ver, sizeof(ver), "1.%d.0", i);
        push_ok(f, "m", ver);
    }
    push_ok(f, "other", "1.0.0");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "1.1.0", NULL), 0);
    assert_int_equal(mc_registry_set_flags(f->r, "m", "1.2.0", -1, 1, NULL), 0);
    /* dry run: 1.6.0 and 1.5.0 are newest, 1.1.0 aliased, 1.2.0 pinned */
    assert_int_equal(mc_registry_gc(f->r, &o, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(list, "1.4.0 1.3.0 ");
    assert_non_null(mc_registry_resolve(f->r, "m", "1.3.0", &v) == 0 ? v : NULL);
    o.dry_run = false;
    list[0] = '\0';
    assert_int_equal(mc_registry_gc(f->r, &o, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_int_equal(mc_registry_model(f->r, "m")->nversions, 4);
    resolves(f, "1.3.0", NULL);
    assert_int_equal(mc_registry_model(f->r, "other")->nversions, 1);
    /* the age rule: nothing is a day old yet; "now" a week ahead keeps none by age */
    o = (struct mc_gc_opts){.days = 1, .name = "m"};
    assert_int_equal(mc_registry_gc(f->r, &o, &n, NULL), 0);
    assert_int_equal(n, 0);
    o.now_ns = mc_registry_model(f->r, "m")->versions[3]->created_ns + 7 * 86400ull * 1000000000;
    o.keep = 1;
    assert_int_equal(mc_registry_gc(f->r, &o, &n, NULL), 0);
    assert_int_equal(n, 1); /* 1.5.0; 1.6.0 is newest, 1.1.0 aliased, 1.2.0 pinned */
    assert_int_equal(mc_registry_model(f->r, "m")->nversions, 3);
    o = (struct mc_gc_opts){0};
    refused(f, mc_registry_gc(f->r, &o, &n, NULL), MC_EINVAL, "retention needs a rule");
}

static void search(struct fx *f, struct mc_search *q, const char *want)
{
    const struct mc_reg_version **res;
    size_t n;
    char got[1024] = "";

    if (mc_registry_search(f->r, q, &res, &n) != 0)
        fail_msg("search: %s", mc_last_error());
    for (size_t i = 0; i < n; i++) {
        strcat(got, res[i]->name);
        strcat(got, "@");
        strcat(got, res[i]->version);
        strcat(got, " ");
    }
    free(res);
    if (strcmp(got, want) != 0)
        fail_msg("search gave \"%s\", want \"%s\"", got, want);
}

static void push_meta(struct fx *f, const char *name, const char *ver, double acc, const char *env)
{
    struct mc_reg_metric m[] = {{"accuracy", acc}};
    struct mc_reg_kv t[] = {{"env", env}};
    struct mc_reg_meta meta = {.metrics = m, .nmetrics = 1, .tags = t, .ntags = 1};
    struct mc_push_opts o = {.meta = &meta};

    if (mc_registry_push(f->r, name, ver, mkfile(f, "s", 10, 1), &o, NULL) != 0)
        fail_msg("%s", mc_last_error());
}

static void test_search(void **state)
{
    struct fx *f = *state;
    const char *hi[] = {"accuracy>=0.9"}, *ne[] = {"accuracy!=0.9"}, *lt[] = {"accuracy<0.85"};
    const char *prod[] = {"env=prod*"}, *two[] = {"accuracy>0.8", "accuracy<=0.9"};
    const char *bad1[] = {"accuracy>>0.9"}, *bad2[] = {"accuracy"}, *bad3[] = {">=0.9"};
    const char *bad4[] = {"accuracy>=high"}, *badt[] = {"envprod"};
    struct mc_search q = {0};

    push_meta(f, "vision/resnet", "1.0.0", 0.80, "dev");
    push_meta(f, "vision/resnet", "1.1.0", 0.90, "prod-eu");
    push_meta(f, "vision/vit", "2.0.0", 0.95, "prod");
    push_meta(f, "llama", "3.0.0", 0.70, "prod");
    search(f, &q, "llama@3.0.0 vision/resnet@1.1.0 vision/resnet@1.0.0 vision/vit@2.0.0 ");
    q.order = MC_ORDER_VERSION_ASC;
    search(f, &q, "llama@3.0.0 vision/resnet@1.0.0 vision/resnet@1.1.0 vision/vit@2.0.0 ");
    q.order = MC_ORDER_TIME;
    search(f, &q, "llama@3.0.0 vision/vit@2.0.0 vision/resnet@1.1.0 vision/resnet@1.0.0 ");
    q.order = MC_ORDER_TIME_ASC;
    q.limit = 2;
    search(f, &q, "vision/resnet@1.0.0 vision/resnet@1.1.0 ");
    q = (struct mc_search){.pattern = "vision/*"};
    search(f, &q, "vision/resnet@1.1.0 vision/resnet@1.0.0 vision/vit@2.0.0 ");
    q.metrics = hi;
    q.nmetrics = 1;
    search(f, &q, "vision/resnet@1.1.0 vision/vit@2.0.0 ");
    q.metrics = ne;
    search(f, &q, "vision/resnet@1.0.0 vision/vit@2.0.0 ");
    q = (struct mc_search){.metrics = lt, .nmetrics = 1};
    search(f, &q, "llama@3.0.0 vision/resnet@1.0.0 ");
    q = (struct mc_search){.metrics = two, .nmetrics = 2};
    search(f, &q, "vision/resnet@1.1.0 ");
    q = (struct mc_search){.tags = prod, .ntags = 1, .order = MC_ORDER_TIME};
    search(f, &q, "llama@3.0.0 vision/vit@2.0.0 vision/resnet@1.1.0 ");
    q = (struct mc_search){.ref = "latest"};
    search(f, &q, "llama@3.0.0 vision/resnet@1.1.0 vision/vit@2.0.0 ");
    q = (struct mc_search){.ref = "^1.0", .pattern = "*resnet"};
    search(f, &q, "vision/resnet@1.1.0 vision/resnet@1.0.0 ");
    q = (struct mc_search){.status_mask = 1u << MC_STATUS_ARCHIVED};
    search(f, &q, "");
    q = (struct mc_search){.metrics = bad1, .nmetrics = 1};
    refused(f, mc_registry_search(f->r, &q, &(const struct mc_reg_version **){0}, &(size_t){0}),
            MC_EINVAL, "does not end in a number; write NAME OP NUMBER");
    q.metrics = bad2;
    refused(f, mc_registry_search(f->r, &q, &(const struct mc_reg_version **){0}, &(size_t){0}),
            MC_EINVAL, "has no name and operator");
    q.metrics = bad3;
    refused(f, mc_registry_search(f->r, &q, &(const struct mc_reg_version **){0}, &(size_t){0}),
            MC_EINVAL, "metric condition \">=0.9\"");
    q.metrics = bad4;
    refused(f, mc_registry_search(f->r, &q, &(const struct mc_reg_version **){0}, &(size_t){0}),
            MC_EINVAL, "e.g. accuracy>=0.9");
    q = (struct mc_search){.tags = badt, .ntags = 1};
    refused(f, mc_registry_search(f->r, &q, &(const struct mc_reg_version **){0}, &(size_t){0}),
            MC_EINVAL, "is not KEY=VALUE");
}

static void test_two_handles(void **state)
{
    struct fx *f = *state;
    struct mc_registry *b;
    struct tu_warnings w = {0};
    bool changed;
    char *da, *db;

    assert_int_equal(tu_open(f->store, 0, &w, &b), 0);
    assert_int_equal(mc_registry_refresh(b, &changed), 0);
    assert_false(changed);
    push_ok(f, "m", "1.0.0");
    assert_int_equal(mc_registry_refresh(b, &changed), 0);
    assert_true(changed);
    assert_int_equal(mc_registry_generation(b), mc_registry_generation(f->r));
    assert_non_null(mc_registry_model(b, "m"));
    /* b writes: it catches up first, so generations stay one sequence */
    assert_int_equal(mc_registry_alias_set(b, "m", "prod", "1.0.0", NULL), 0);
    push_ok(f, "m", "2.0.0");
    assert_int_equal(mc_registry_generation(f->r), 3);
    /* after a compaction by a, b reloads from the new files */
    assert_int_equal(mc_registry_compact(f->r), 0);
    push_ok(f, "m", "3.0.0");
    assert_int_equal(mc_registry_refresh(b, &changed), 0);
    assert_true(changed);
    da = tu_dump(f->r);
    db = tu_dump(b);
    assert_string_equal(da, db);
    free(da);
    free(db);
    assert_int_equal(w.count, 0);
    mc_registry_close(b);
    /* a read-only handle reads but never writes */
    assert_int_equal(tu_open(f->store, MC_REGISTRY_READONLY, &w, &b), 0);
    assert_non_null(mc_registry_model(b, "m"));
    assert_int_equal(mc_registry_push(b, "m", "9.0.0", mkfile(f, "r", 1, 1), NULL, NULL), MC_EPERM);
    assert_int_equal(mc_registry_alias_remove(b, "m", "prod", NULL), MC_EPERM);
    assert_msg("read-only");
    mc_registry_close(b);
}

static void test_open_errors(void **state)
{
    struct fx *f = *state;
    struct mc_registry *b;
    struct tu_warnings w = {0};
    char p[512];

    snprintf(p, sizeof(p), "%s/none", f->dir);
    assert_int_equal(tu_open(p, 0, &w, &b), MC_ENOENT);
    assert_msg("there is no store at");
    assert_int_equal(tu_open(f->files, 0, &w, &b), MC_ENOENT);
    assert_msg("is not an mcache store");
    tu_make_file(mkfile(f, "junk", 1, 1), 1, 1);
    assert_int_equal(tu_open(f->files, MC_REGISTRY_CREATE, &w, &b), MC_EEXIST);
    assert_msg("is not empty and is not an mcache store");
    assert_int_equal(tu_open("", 0, &w, &b), MC_EINVAL);
}

static void report_collect(void *arg, const char *msg)
{
    struct tu_warnings *w = arg;

    tu_warn(w, msg);
}

static void test_check_repair(void **state)
{
    struct fx *f = *state;
    struct tu_warnings w = {0};
    size_t problems, len;
    char p[512], *buf, *before;
    struct mc_registry *b;
    long off;

    if (!tu_backend_is("journal"))
        skip(); /* it damages STORE/journal itself, and check and repair open the default */
    push_ok(f, "m", "1.0.0");
    push_ok(f, "m", "2.0.0");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "prod", "1.0.0", NULL), 0);
    before = tu_dump(f->r);
    push_ok(f, "m", "3.0.0");
    push_ok(f, "m", "4.0.0");
    assert_int_equal(mc_registry_check(f->store, MC_CHECK_CHECKSUMS, report_collect, &w, &problems),
                     0);
    assert_int_equal(problems, 0);
    /* an orphan directory and a changed artifact are found */
    snprintf(p, sizeof(p), "%s/models/m/9.9.9", f->store);
    mkdir(p, 0755);
    snprintf(p, sizeof(p), "%s/models/m/2.0.0/artifact", f->store);
    chmod(p, 0644);
    tu_make_file(p, 1000, 99);
    assert_int_equal(mc_registry_check(f->store, MC_CHECK_CHECKSUMS, report_collect, &w, &problems),
                     MC_EIO);
    assert_int_equal(problems, 2);
    /* damage the journal inside the record of 3.0.0 */
    snprintf(p, sizeof(p), "%s/journal", f->store);
    buf = tu_read(p, &len);
    off = strstr(buf, "\"version\":\"3.0.0\"") - buf;
    buf[off + 3] ^= 0x20;
    tu_write(p, buf, len);
    free(buf);
    mc_registry_close(f->r);
    f->r = NULL;
    assert_int_equal(tu_open(f->store, 0, &w, &b), MC_ECORRUPT);
    assert_msg("journal is damaged at byte");
    assert_msg("checksum mismatch");
    assert_msg("mcache fsck --repair");
    assert_int_equal(mc_registry_check(f->store, 0, report_collect, &w, &problems), MC_ECORRUPT);
    assert_true(problems >= 1);
    w.count = 0;
    assert_int_equal(mc_registry_repair(f->store, report_collect, &w), 0);
    assert_non_null(strstr(w.last, "wrote a new snapshot"));
    snprintf(p, sizeof(p), "%s/damaged", f->store);
    assert_int_equal(tu_count_entries(p, "journal."), 1);
    assert_int_equal(tu_open(f->store, 0, &w, &f->r), 0);
    buf = tu_dump(f->r);
    assert_string_equal(buf, before);
    free(buf);
    free(before);
    /* the artifacts of the records lost (3.0.0, 4.0.0) and the stray 9.9.9
     * went to damaged/ with the journal; only the changed artifact remains */
    assert_int_equal(tu_count_entries(p, "m@"), 3);
    assert_int_equal(mc_registry_check(f->store, MC_CHECK_ARTIFACTS, report_collect, &w, &problems),
                     0);
    assert_int_equal(problems, 0);
    assert_int_equal(mc_registry_check(f->store, MC_CHECK_CHECKSUMS, report_collect, &w, &problems),
                     MC_EIO);
    assert_int_equal(problems, 1);
    assert_non_null(strstr(w.last, "2.0.0"));
    assert_int_equal(mc_registry_repair(f->store, report_collect, &w), 0);
    assert_non_null(strstr(w.last, "nothing to repair"));
}

/* ---- issue 13: weighted aliases, health checks, snapshots, deployments, alerts ---- */

/* Refused with code and a message holding want, and nothing changed at all. */
#define unchanged(f, call, code, want)                                                             \
    do {                                                                                           \
        char *before_ = tu_dump((f)->r);                                                           \
        uint64_t g_ = mc_registry_generation((f)->r);                                              \
        int rc_ = (call);                                                                          \
        char *after_;                                                                              \
        if (rc_ != (code))                                                                         \
            fail_msg("%s: want %d, got %d (%s)", #call, (code), rc_, mc_last_error());             \
        assert_msg(want);                                                                          \
        refusal_logged((f), g_, (want));                                                           \
        after_ = tu_dump((f)->r);                                                                  \
        assert_string_equal(before_, after_);                                                      \
        free(before_);                                                                             \
        free(after_);                                                                              \
    } while (0)

static const struct mc_reg_alias *alias_of(struct fx *f, const char *name, const char *alias)
{
    const struct mc_reg_model *m = mc_registry_model(f->r, name);

    for (size_t i = 0; m && i < m->naliases; i++)
        if (strcmp(m->aliases[i].alias, alias) == 0)
            return &m->aliases[i];
    fail_msg("%s has no alias %s", name, alias);
    return NULL;
}

static void targets_are(struct fx *f, const char *name, const char *alias, const char *want)
{
    char text[2048];

    assert_int_equal(mc_reg_targets_format(alias_of(f, name, alias), text, sizeof(text)), 0);
    if (strcmp(text, want) != 0)
        fail_msg("alias %s of %s: want \"%s\", got \"%s\"", alias, name, want, text);
}

/* The state after a compaction, and as a fresh handle reads it, is the state. */
static void survives_reopen(struct fx *f)
{
    struct mc_registry *b;
    struct tu_warnings w = {0};
    char *before = tu_dump(f->r), *other, *after;

    /* replayed from the journal */
    assert_int_equal(tu_open(f->store, 0, &w, &b), 0);
    other = tu_dump(b);
    assert_string_equal(before, other);
    free(other);
    mc_registry_close(b);
    /* and from a snapshot */
    assert_int_equal(mc_registry_compact(f->r), 0);
    after = tu_dump(f->r);
    assert_string_equal(before, after);
    assert_int_equal(tu_open(f->store, 0, &w, &b), 0);
    other = tu_dump(b);
    assert_string_equal(before, other);
    assert_int_equal(w.count, 0);
    free(other);
    free(after);
    free(before);
    mc_registry_close(b);
    /* and the checker finds every record and entry sound */
    if (mc_registry_check(f->store, MC_CHECK_ARTIFACTS, NULL, NULL, NULL) != 0)
        fail_msg("check: %s", mc_last_error());
}

static void parse_refused(const char *const *words, size_t n, const char *want)
{
    struct mc_reg_weight t[MC_ALIAS_TARGETS_MAX];
    size_t nt = 99;

    assert_int_equal(mc_reg_targets_parse(words, n, t, &nt), MC_EINVAL);
    assert_msg(want);
    assert_int_equal(nt, 0);
}

static void test_targets_parse(void **state)
{
    struct mc_reg_weight t[MC_ALIAS_TARGETS_MAX];
    size_t n;

    (void)state;
    assert_int_equal(mc_reg_targets_parse((const char *[]){"1.0.0=90", "2.0.0=10"}, 2, t, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(t[0].ref, "1.0.0");
    assert_int_equal(t[0].weight, 90);
    assert_string_equal(t[1].ref, "2.0.0");
    assert_int_equal(t[1].weight, 10);
    /* one word without a weight: 100; a range's '=' is not a weight */
    assert_int_equal(mc_reg_targets_parse((const char *[]){"^2"}, 1, t, &n), 0);
    assert_string_equal(t[0].ref, "^2");
    assert_int_equal(t[0].weight, 100);
    assert_int_equal(mc_reg_targets_parse((const char *[]){">=1.2.0"}, 1, t, &n), 0);
    assert_string_equal(t[0].ref, ">=1.2.0");
    assert_int_equal(mc_reg_targets_parse((const char *[]){">=1.2.0=40", "stable=60"}, 2, t, &n),
                     0);
    assert_string_equal(t[0].ref, ">=1.2.0");
    assert_int_equal(t[0].weight, 40);
    assert_string_equal(t[1].ref, "stable");
    assert_int_equal(mc_reg_targets_parse((const char *[]){"1.0.0=100"}, 1, t, &n), 0);
    assert_int_equal(t[0].weight, 100);
    /* bad input, each with its message */
    parse_refused((const char *[]){"1.0.0=90", "2.0.0=20"}, 2, "sum to 110; they must sum to 100");
    parse_refused((const char *[]){"1.0.0=50"}, 1, "sum to 50");
    parse_refused((const char *[]){"a=20", "b=20", "c=20", "d=20", "e=20"}, 5,
                  "5 targets given; an alias points at 1 to 4 versions");
    parse_refused((const char *[]){"1.0.0=0", "2.0.0=100"}, 2,
                  "weight \"0\" of target \"1.0.0=0\" is not a whole number from 1 to 100 (to "
                  "drop a version, leave it out)");
    parse_refused((const char *[]){"1.0.0=-5", "2.0.0=105"}, 2, "weight \"-5\"");
    parse_refused((const char *[]){"1.0.0=ten", "2.0.0=90"}, 2, "weight \"ten\"");
    parse_refused((const char *[]){"1.0.0=9.5", "2.0.0=90.5"}, 2, "weight \"9.5\"");
    parse_refused((const char *[]){"1.0.0=", "2.0.0=100"}, 2, "weight \"\"");
    parse_refused((const char *[]){"1.0.0=90", "2.0.0"}, 2,
                  "target \"2.0.0\" has no weight; with several targets write each as "
                  "VERSION=WEIGHT");
    parse_refused((const char *[]){""}, 1, "target 1 is empty");
    parse_refused(NULL, 0, "no target given");
}

static void test_weighted_aliases(void **state)
{
    struct fx *f = *state;
    const struct mc_reg_alias *a;
    struct mc_reg_weight t[MC_ALIAS_TARGETS_MAX];
    const struct mc_reg_version *v;
    uint64_t g0, gen;
    size_t n;
    char small[8];

    push_ok(f, "m", "1.0.0");
    push_ok(f, "m", "2.0.0");
    push_ok(f, "m", "3.0.0");
    push_ok(f, "m", "4.0.0");
    push_ok(f, "m", "5.0.0");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "1.0.0", NULL), 0);
    a = alias_of(f, "m", "production");
    assert_int_equal(a->ntargets, 1);
    assert_ptr_equal(a->targets[0].version, a->target);
    assert_int_equal(a->targets[0].weight, 100);
    assert_null(a->history[0].why);
    /* a canary: one record, one history entry with from, to and why */
    assert_int_equal(mc_reg_targets_parse((const char *[]){"2.0.0=10", "1.0.0=90"}, 2, t, &n), 0);
    g0 = mc_registry_generation(f->r);
    assert_int_equal(
        mc_registry_alias_set_weighted(f->r, "m", "production", t, n, "canary of 2.0.0", &gen), 0);
    assert_int_equal(gen, g0 + 1);
    a = alias_of(f, "m", "production");
    assert_int_equal(a->ntargets, 2);
    assert_string_equal(a->targets[0].version->version, "1.0.0"); /* ascending precedence */
    assert_int_equal(a->targets[0].weight, 90);
    assert_string_equal(a->targets[1].version->version, "2.0.0");
    assert_int_equal(a->targets[1].weight, 10);
    assert_string_equal(a->target->version, "1.0.0"); /* the heaviest */
    assert_int_equal(a->nhistory, 2);
    assert_string_equal(a->history[1].from, "1.0.0");
    assert_string_equal(a->history[1].to, "1.0.0=90 2.0.0=10");
    assert_string_equal(a->history[1].why, "canary of 2.0.0");
    assert_int_equal(a->history[1].uid, getuid());
    targets_are(f, "m", "production", "1.0.0=90 2.0.0=10");
    assert_int_equal(mc_reg_targets_format(a, small, sizeof(small)), MC_EINVAL);
    assert_string_equal(small, "");
    resolves(f, "production", "1.0.0");
    /* the same set in another order: no-op */
    t[0] = (struct mc_reg_weight){"1.0.0", 90};
    t[1] = (struct mc_reg_weight){"2.0.0", 10};
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, "x", &gen), 0);
    assert_int_equal(gen, g0 + 1);
    assert_int_equal(alias_of(f, "m", "production")->nhistory, 2);
    /* 50/50: the main target is the first in precedence; refs may be ranges or aliases */
    t[0] = (struct mc_reg_weight){"^2", 50};
    t[1] = (struct mc_reg_weight){"1.0.0", 50};
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL), 0);
    targets_are(f, "m", "production", "1.0.0=50 2.0.0=50");
    resolves(f, "production", "1.0.0");
    {
        const struct mc_reg_version **found;
        struct mc_search q = {.ref = "production"};

        assert_int_equal(mc_registry_search(f->r, &q, &found, &n), 0);
        assert_int_equal(n, 2); /* every target of a weighted alias */
        assert_string_equal(found[0]->version, "2.0.0");
        assert_string_equal(found[1]->version, "1.0.0");
        free(found);
    }
    /* four targets */
    t[0] = (struct mc_reg_weight){"4.0.0", 10};
    t[1] = (struct mc_reg_weight){"3.0.0", 20};
    t[2] = (struct mc_reg_weight){"2.0.0", 30};
    t[3] = (struct mc_reg_weight){"1.0.0", 40};
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "staging", t, 4, NULL, NULL), 0);
    targets_are(f, "m", "staging", "1.0.0=40 2.0.0=30 3.0.0=20 4.0.0=10");
    /* bad input changes nothing */
    t[0] = (struct mc_reg_weight){"1.0.0", 90};
    t[1] = (struct mc_reg_weight){"2.0.0", 20};
    unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL),
              MC_EINVAL, "sum to 110; they must sum to 100");
    t[0] = (struct mc_reg_weight){"1.0.0", 20};
    t[1] = (struct mc_reg_weight){"2.0.0", 20};
    t[2] = (struct mc_reg_weight){"3.0.0", 20};
    t[3] = (struct mc_reg_weight){"4.0.0", 20};
    {
        struct mc_reg_weight five[5] = {t[0], t[1], t[2], t[3], {"5.0.0", 20}};

        unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", five, 5, NULL, NULL),
                  MC_EINVAL, "5 targets given for alias \"production\" of \"m\"; an alias points "
                             "at 1 to 4 versions");
    }
    t[0] = (struct mc_reg_weight){"1.0.0", 50};
    t[1] = (struct mc_reg_weight){"1.0.0", 50};
    unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL),
              MC_EINVAL, "are both m@1.0.0; name each version once");
    t[0] = (struct mc_reg_weight){"5.0.0", 50};
    t[1] = (struct mc_reg_weight){"latest", 50};
    unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL),
              MC_EINVAL, "targets \"5.0.0\" and \"latest\" of alias \"production\" are both m@5.0.0");
    t[0] = (struct mc_reg_weight){"9.9.9", 50};
    t[1] = (struct mc_reg_weight){"1.0.0", 50};
    unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL),
              MC_ENOENT, "has no version 9.9.9");
    t[0] = (struct mc_reg_weight){"1.0.0", 0};
    t[1] = (struct mc_reg_weight){"2.0.0", 100};
    unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL),
              MC_EINVAL, "the weight 0 of target \"1.0.0\" is not a whole number from 1 to 100");
    t[0] = (struct mc_reg_weight){"1.0.0", 101};
    unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 1, NULL, NULL),
              MC_EINVAL, "the weight 101 of target \"1.0.0\"");
    unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 0, NULL, NULL),
              MC_EINVAL, "no target given");
    assert_int_equal(mc_registry_set_status(f->r, "m", "3.0.0", MC_STATUS_FAILED, "bad", NULL), 0);
    t[0] = (struct mc_reg_weight){"1.0.0", 90};
    t[1] = (struct mc_reg_weight){"3.0.0", 10};
    unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL),
              MC_EBUSY, "version 3.0.0 of \"m\" is failed; alias \"production\" can only point at "
                        "a ready version");
    {
        char big[WHY_TEST_LEN];

        memset(big, 'x', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        t[1] = (struct mc_reg_weight){"2.0.0", 10};
        unchanged(f, mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, big, NULL),
                  MC_EINVAL, "the reason given is");
    }
    assert_int_equal(mc_registry_set_status(f->r, "m", "3.0.0", MC_STATUS_READY, NULL, NULL), 0);
    /* rollback goes back to the previous set, weights included */
    t[0] = (struct mc_reg_weight){"1.0.0", 90};
    t[1] = (struct mc_reg_weight){"2.0.0", 10};
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL), 0);
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), 0);
    targets_are(f, "m", "production", "1.0.0=50 2.0.0=50");
    a = alias_of(f, "m", "production");
    assert_true(a->history[a->nhistory - 1].rollback);
    assert_string_equal(a->history[a->nhistory - 1].from, "1.0.0=90 2.0.0=10");
    assert_string_equal(a->history[a->nhistory - 1].to, "1.0.0=50 2.0.0=50");
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), 0);
    targets_are(f, "m", "production", "1.0.0=90 2.0.0=10");
    assert_int_equal(mc_registry_alias_rollback(f->r, "m", "production", NULL), 0);
    targets_are(f, "m", "production", "1.0.0");
    assert_int_equal(mc_registry_resolve(f->r, "m", "production", &v), 0);
    assert_string_equal(v->version, "1.0.0");
    /* every target holds its version: retention keeps it, removal needs force */
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL), 0);
    unchanged(f, mc_registry_remove_version(f->r, "m", "4.0.0", false, NULL), MC_EBUSY,
              "m@4.0.0 is the target of alias \"staging\"");
    {
        struct mc_gc_opts o = {.name = "m", .keep = 1};
        size_t removed;

        assert_int_equal(mc_registry_gc(f->r, &o, &removed, NULL), 0);
        assert_int_equal(removed, 0); /* 5.0.0 is the newest, the rest are aliased */
    }
    unchanged(f, mc_registry_remove_version(f->r, "m", "4.0.0", false, NULL), MC_EBUSY,
              "the alias's other targets take its weight");
    /*
     * forced: the weighted alias keeps its other targets, which take the
     * removed weight in proportion (40 30 20 of 90: 44.4 33.3 22.2, the
     * largest remainder gets the point left), in the same record, with why
     */
    g0 = mc_registry_generation(f->r);
    assert_int_equal(mc_registry_remove_version(f->r, "m", "4.0.0", true, &gen), 0);
    assert_int_equal(gen, g0 + 1);
    a = alias_of(f, "m", "staging");
    targets_are(f, "m", "staging", "1.0.0=45 2.0.0=33 3.0.0=22");
    assert_string_equal(a->target->version, "1.0.0");
    assert_string_equal(a->history[a->nhistory - 1].from, "1.0.0=40 2.0.0=30 3.0.0=20 4.0.0=10");
    assert_string_equal(a->history[a->nhistory - 1].to, "1.0.0=45 2.0.0=33 3.0.0=22");
    assert_string_equal(a->history[a->nhistory - 1].why,
                        "m@4.0.0 removed: its 10% goes to the other targets "
                        "(1.0.0=45 2.0.0=33 3.0.0=22)");
    assert_int_equal(a->history[a->nhistory - 1].generation, gen);
    assert_false(a->history[a->nhistory - 1].rollback);
    /* a rollback cannot bring back a set with a version that is gone */
    unchanged(f, mc_registry_alias_rollback(f->r, "m", "staging", NULL), MC_ENOENT,
              "alias \"staging\" of \"m\" pointed at 4.0.0 before, which has been removed");
    survives_reopen(f);
    /* one target left: a plain alias at 100 (production is 1.0.0=90 2.0.0=10) */
    targets_are(f, "m", "production", "1.0.0=90 2.0.0=10");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "plain", "2.0.0", NULL), 0);
    assert_int_equal(mc_registry_remove_version(f->r, "m", "2.0.0", true, &gen), 0);
    targets_are(f, "m", "production", "1.0.0");
    a = alias_of(f, "m", "production");
    assert_int_equal(a->ntargets, 1);
    assert_int_equal(a->targets[0].weight, 100);
    assert_string_equal(a->history[a->nhistory - 1].why, "m@2.0.0 removed: its 10% goes to 1.0.0");
    assert_int_equal(a->history[a->nhistory - 1].generation, gen);
    assert_int_equal(mc_registry_resolve(f->r, "m", "production", &v), 0);
    assert_string_equal(v->version, "1.0.0");
    /* staging: 33 of 67 goes to 1.0.0=45 3.0.0=22 -> 67.2 32.8 */
    targets_are(f, "m", "staging", "1.0.0=67 3.0.0=33");
    /* a plain alias on the removed version goes with it, as before */
    a = alias_of(f, "m", "plain");
    assert_null(a->target);
    assert_null(a->history[a->nhistory - 1].to);
    assert_null(a->history[a->nhistory - 1].why);
    survives_reopen(f);
    /* retention still never removes a target */
    {
        struct mc_gc_opts o = {.name = "m", .keep = 1};
        size_t removed;

        assert_int_equal(mc_registry_gc(f->r, &o, &removed, NULL), 0);
        assert_int_equal(removed, 0); /* 5.0.0 is the newest, 1.0.0 and 3.0.0 are aliased */
    }
}

/* Largest remainder: ties go to the first in precedence; the weights sum to 100. */
static void test_weighted_remove_rounding(void **state)
{
    struct fx *f = *state;
    struct mc_reg_weight t[MC_ALIAS_TARGETS_MAX] = {
        {"1.0.0", 25}, {"2.0.0", 25}, {"3.0.0", 25}, {"4.0.0", 25}};

    push_ok(f, "m", "1.0.0");
    push_ok(f, "m", "2.0.0");
    push_ok(f, "m", "3.0.0");
    push_ok(f, "m", "4.0.0");
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "a", t, 4, NULL, NULL), 0);
    t[0].weight = 1, t[1].weight = 1, t[2].weight = 1, t[3].weight = 97;
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "b", t, 4, NULL, NULL), 0);
    assert_int_equal(mc_registry_remove_version(f->r, "m", "2.0.0", true, NULL), 0);
    targets_are(f, "m", "a", "1.0.0=34 3.0.0=33 4.0.0=33");
    targets_are(f, "m", "b", "1.0.0=1 3.0.0=1 4.0.0=98"); /* 1.0101 1.0101 97.9798 */
    assert_int_equal(mc_registry_remove_version(f->r, "m", "4.0.0", true, NULL), 0);
    targets_are(f, "m", "a", "1.0.0=51 3.0.0=49"); /* 50.746 49.254 */
    targets_are(f, "m", "b", "1.0.0=50 3.0.0=50");
    survives_reopen(f);
    assert_int_equal(mc_registry_remove_version(f->r, "m", "1.0.0", true, NULL), 0);
    targets_are(f, "m", "a", "3.0.0");
    targets_are(f, "m", "b", "3.0.0");
    survives_reopen(f);
}

static void test_health(void **state)
{
    struct fx *f = *state;
    const char *argv[] = {"python3", "smoke.py", "--quick"};
    const struct mc_reg_model *m;
    uint64_t gen, g;

    push_ok(f, "m", "1.0.0");
    assert_null(mc_registry_model(f->r, "m")->health);
    assert_int_equal(mc_registry_health_set(f->r, "m", argv, 3, 5000, &gen), 0);
    m = mc_registry_model(f->r, "m");
    assert_non_null(m->health);
    assert_int_equal(m->health->argc, 3);
    assert_string_equal(m->health->argv[0], "python3");
    assert_string_equal(m->health->argv[2], "--quick");
    assert_int_equal(m->health->timeout_ms, 5000);
    survives_reopen(f);
    unchanged(f, mc_registry_health_set(f->r, "m", argv, 3, 0, NULL), MC_EINVAL,
              "the health check of \"m\" has a timeout of 0 ms; give one from 1 ms");
    unchanged(f, mc_registry_health_set(f->r, "m", (const char *[]){""}, 1, 100, NULL), MC_EINVAL,
              "the health check of \"m\" has no command");
    unchanged(f, mc_registry_health_set(f->r, "m", argv, 3, 3600001, NULL), MC_EINVAL,
              "has a timeout of 3600001 ms");
    unchanged(f, mc_registry_health_set(f->r, "nope", argv, 3, 100, NULL), MC_ENOENT,
              "no model \"nope\"");
    unchanged(f, mc_registry_health_set(f->r, "m", argv, MC_HEALTH_ARGS_MAX + 1, 100, NULL),
              MC_EINVAL, "at most 64");
    /* argc 0 removes it; removing none is a no-op */
    assert_int_equal(mc_registry_health_set(f->r, "m", NULL, 0, 0, NULL), 0);
    assert_null(mc_registry_model(f->r, "m")->health);
    g = mc_registry_generation(f->r);
    assert_int_equal(mc_registry_health_set(f->r, "m", NULL, 0, 0, &gen), 0);
    assert_int_equal(gen, g);
    assert_int_equal(mc_registry_health_set(f->r, "m", argv, 1, 250, NULL), 0);
    survives_reopen(f);
}

static void test_snapshots(void **state)
{
    struct fx *f = *state;
    const struct mc_reg_snapshot *s;
    const struct mc_reg_alias *a;
    struct mc_reg_weight t[2] = {{"1.0.0", 90}, {"2.0.0", 10}};
    uint64_t g, gen;

    push_ok(f, "m", "1.0.0");
    push_ok(f, "m", "2.0.0");
    push_ok(f, "m", "3.0.0");
    push_ok(f, "n", "1.0.0");
    push_ok(f, "n", "1.1.0");
    assert_int_equal(mc_registry_alias_set_weighted(f->r, "m", "production", t, 2, NULL, NULL), 0);
    assert_int_equal(mc_registry_alias_set(f->r, "m", "staging", "3.0.0", NULL), 0);
    assert_int_equal(mc_registry_alias_set(f->r, "m", "old", "1.0.0", NULL), 0);
    assert_int_equal(mc_registry_alias_remove(f->r, "m", "old", NULL), 0);
    assert_int_equal(mc_registry_alias_set(f->r, "n", "production", "1.0.0", NULL), 0);
    assert_int_equal(mc_registry_snapshot_create(f->r, "before-release", &gen), 0);
    assert_int_equal(mc_registry_snapshot_count(f->r), 1);
    s = mc_registry_snapshot_at(f->r, 0);
    assert_string_equal(s->name, "before-release");
    assert_int_equal(s->uid, getuid());
    assert_true(s->created_ns > 0);
    assert_int_equal(s->nentries, 3); /* a removed alias is not recorded */
    assert_string_equal(s->entries[0].model, "m");
    assert_string_equal(s->entries[0].alias, "production");
    assert_string_equal(s->entries[0].targets, "1.0.0=90 2.0.0=10");
    assert_string_equal(s->entries[1].alias, "staging");
    assert_string_equal(s->entries[1].targets, "3.0.0");
    assert_string_equal(s->entries[2].model, "n");
    assert_string_equal(s->entries[2].targets, "1.0.0");
    assert_null(mc_registry_snapshot_at(f->r, 1));
    unchanged(f, mc_registry_snapshot_create(f->r, "before-release", NULL), MC_EEXIST,
              "snapshot \"before-release\" exists");
    unchanged(f, mc_registry_snapshot_create(f->r, "../x", NULL), MC_EINVAL,
              "snapshot name \"../x\" may hold only letters, digits");
    unchanged(f, mc_registry_snapshot_create(f->r, "", NULL), MC_EINVAL, "1 to 64 characters");
    /* everything moves; a new alias appears */
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "2.0.0", NULL), 0);
    assert_int_equal(mc_registry_alias_remove(f->r, "m", "staging", NULL), 0);
    assert_int_equal(mc_registry_alias_set(f->r, "n", "production", "1.1.0", NULL), 0);
    assert_int_equal(mc_registry_alias_set(f->r, "n", "fresh", "1.1.0", NULL), 0);
    assert_int_equal(mc_registry_snapshot_create(f->r, "after", NULL), 0);
    assert_string_equal(mc_registry_snapshot_at(f->r, 0)->name, "after"); /* by name */
    /* restore: all back in one record, each move with its reason */
    g = mc_registry_generation(f->r);
    assert_int_equal(mc_registry_snapshot_restore(f->r, "before-release", &gen), 0);
    assert_int_equal(gen, g + 1);
    targets_are(f, "m", "production", "1.0.0=90 2.0.0=10");
    targets_are(f, "m", "staging", "3.0.0");
    targets_are(f, "n", "production", "1.0.0");
    targets_are(f, "n", "fresh", "1.1.0"); /* created after the snapshot: left alone */
    targets_are(f, "m", "old", "");        /* removed before it: left alone */
    a = alias_of(f, "m", "staging");
    assert_null(a->history[a->nhistory - 1].from);
    assert_string_equal(a->history[a->nhistory - 1].to, "3.0.0");
    assert_string_equal(a->history[a->nhistory - 1].why, "snapshot restore before-release");
    assert_int_equal(a->history[a->nhistory - 1].generation, gen);
    a = alias_of(f, "n", "production");
    assert_string_equal(a->history[a->nhistory - 1].why, "snapshot restore before-release");
    /* again: nothing moves, nothing is written */
    assert_int_equal(mc_registry_snapshot_restore(f->r, "before-release", &gen), 0);
    assert_int_equal(gen, g + 1);
    survives_reopen(f);
    /* all or none: a target that is gone or not ready refuses the whole restore */
    assert_int_equal(mc_registry_set_status(f->r, "n", "1.1.0", MC_STATUS_ARCHIVED, NULL, NULL), 0);
    unchanged(f, mc_registry_snapshot_restore(f->r, "after", NULL), MC_EBUSY,
              "snapshot \"after\" sets alias \"fresh\" of \"n\" to 1.1.0, but n@1.1.0 is "
              "archived (an alias points only at ready versions); nothing was restored");
    assert_int_equal(mc_registry_set_status(f->r, "n", "1.1.0", MC_STATUS_READY, NULL, NULL), 0);
    assert_int_equal(mc_registry_alias_set(f->r, "m", "staging", "1.0.0", NULL), 0);
    assert_int_equal(mc_registry_remove_version(f->r, "m", "3.0.0", false, NULL), 0);
    unchanged(f, mc_registry_snapshot_restore(f->r, "before-release", NULL), MC_ENOENT,
              "snapshot \"before-release\" sets alias \"staging\" of \"m\" to 3.0.0, but m@3.0.0 "
              "has been removed; nothing was restored");
    unchanged(f, mc_registry_snapshot_restore(f->r, "nope", NULL), MC_ENOENT,
              "there is no snapshot \"nope\"");
    /* remove */
    assert_int_equal(mc_registry_snapshot_remove(f->r, "before-release", NULL), 0);
    assert_int_equal(mc_registry_snapshot_count(f->r), 1);
    unchanged(f, mc_registry_snapshot_remove(f->r, "before-release", NULL), MC_ENOENT,
              "there is no snapshot \"before-release\"");
    survives_reopen(f);
}

static struct mc_reg_deploy canary(const uint32_t *steps, size_t n)
{
    return (struct mc_reg_deploy){.name = "m",
                                  .version = "2.0.0",
                                  .alias = "production",
                                  .strategy = MC_DEPLOY_CANARY,
                                  .steps = steps,
                                  .nsteps = n,
                                  .interval_ms = 5000,
                                  .max_error_rate = 0.02,
                                  .max_p99_ratio = 1.5,
                                  .min_requests = 200};
}

static void deploy_refused(struct fx *f, struct mc_reg_deploy d, int code, const char *want)
{
    size_t n = mc_registry_deploy_count(f->r);

    unchanged(f, mc_registry_deploy_begin(f->r, &d, &(uint64_t){0}, NULL), code, want);
    assert_int_equal(mc_registry_deploy_count(f->r), n);
}

static void test_deploys(void **state)
{
    struct fx *f = *state;
    static const uint32_t steps[] = {10, 50, 100};
    const struct mc_reg_deploy *d;
    const struct mc_reg_alias *a;
    struct mc_reg_deploy spec;
    struct mc_reg_weight t[2] = {{"1.0.0", 90}, {"2.0.0", 10}};
    const char *hargv[] = {"./smoke", "--fast"};
    uint64_t id, id2, gen, g;

    push_ok(f, "m", "1.0.0");
    push_ok(f, "m", "2.0.0");
    push_ok(f, "m", "3.0.0");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "1.0.0", NULL), 0);
    /* bad input: a clear error, nothing changed */
    spec = canary(steps, 3);
    spec.interval_ms = 0;
    deploy_refused(f, spec, MC_EINVAL, "the interval is 0 ms; give one from 1 ms");
    deploy_refused(f, canary((const uint32_t[]){50, 10, 100}, 3), MC_EINVAL,
                   "the steps must increase strictly (step 2 is 10%, after 50%)");
    deploy_refused(f, canary((const uint32_t[]){10, 10, 100}, 3), MC_EINVAL,
                   "must increase strictly");
    deploy_refused(f, canary((const uint32_t[]){10, 50}, 2), MC_EINVAL,
                   "the last step is 50%; the steps must end at 100");
    deploy_refused(f, canary((const uint32_t[]){0, 100}, 2), MC_EINVAL,
                   "step 1 is 0%; each step is a weight from 1 to 100");
    deploy_refused(f, canary((const uint32_t[]){10, 120}, 2), MC_EINVAL, "step 2 is 120%");
    spec = canary(steps, 3);
    spec.max_error_rate = 1.5;
    deploy_refused(f, spec, MC_EINVAL, "the maximum error rate is 1.5; give a fraction from 0 to 1");
    spec.max_error_rate = -0.01;
    deploy_refused(f, spec, MC_EINVAL, "the maximum error rate is -0.01");
    spec.max_error_rate = 0.0 / 0.0;
    deploy_refused(f, spec, MC_EINVAL, "the maximum error rate is");
    spec = canary(steps, 3);
    spec.max_p99_ratio = 0.5;
    deploy_refused(f, spec, MC_EINVAL, "the maximum p99 ratio is 0.5; give 1 or more");
    spec = canary(steps, 3);
    spec.version = "9.9.9";
    deploy_refused(f, spec, MC_ENOENT, "has no version 9.9.9");
    spec = canary(steps, 3);
    spec.version = "1.0.0";
    deploy_refused(f, spec, MC_EINVAL, "alias \"production\" of \"m\" already points at 1.0.0");
    spec = canary(steps, 3);
    spec.alias = "staging";
    deploy_refused(f, spec, MC_ENOENT, "has no alias \"staging\" for a canary to split");
    spec = canary(steps, 3);
    spec.name = "nope";
    deploy_refused(f, spec, MC_ENOENT, "no model \"nope\"");
    spec = canary(steps, 3);
    spec.strategy = (enum mc_deploy_strategy)7;
    deploy_refused(f, spec, MC_EINVAL, "has strategy 7, not one of direct, blue-green, canary");
    spec = canary((const uint32_t[]){10, 100}, 2);
    spec.strategy = MC_DEPLOY_DIRECT;
    deploy_refused(f, spec, MC_EINVAL, "a direct deployment has no steps");
    spec = canary(steps, 3);
    spec.health_argv = hargv;
    spec.health_argc = 2;
    deploy_refused(f, spec, MC_EINVAL, "has a timeout of 0 ms");
    assert_int_equal(mc_registry_set_status(f->r, "m", "3.0.0", MC_STATUS_FAILED, NULL, NULL), 0);
    spec = canary(steps, 3);
    spec.version = "3.0.0";
    deploy_refused(f, spec, MC_EBUSY, "version 3.0.0 of \"m\" is failed");
    /* a canary begins: running, at step 0, nothing moved yet */
    spec = canary(steps, 3);
    spec.health_argv = hargv;
    spec.health_argc = 2;
    spec.health_timeout_ms = 3000;
    assert_int_equal(mc_registry_deploy_begin(f->r, &spec, &id, &gen), 0);
    assert_int_equal(id, gen); /* its id is its record's generation */
    assert_int_equal(mc_registry_deploy_count(f->r), 1);
    d = mc_registry_deploy_at(f->r, 0);
    assert_int_equal(d->id, id);
    assert_string_equal(d->name, "m");
    assert_string_equal(d->version, "2.0.0");
    assert_string_equal(d->alias, "production");
    assert_int_equal(d->strategy, MC_DEPLOY_CANARY);
    assert_int_equal(d->nsteps, 3);
    assert_int_equal(d->steps[1], 50);
    assert_int_equal(d->interval_ms, 5000);
    assert_true(d->max_error_rate == 0.02);
    assert_true(d->max_p99_ratio == 1.5);
    assert_int_equal(d->min_requests, 200);
    assert_int_equal(d->health_argc, 2);
    assert_string_equal(d->health_argv[1], "--fast");
    assert_int_equal(d->health_timeout_ms, 3000);
    assert_string_equal(d->from, "1.0.0");
    assert_int_equal(d->step, 0);
    assert_int_equal(d->state, MC_DEPLOY_RUNNING);
    assert_true(d->started_ns > 0 && d->step_started_ns == d->started_ns);
    assert_int_equal(d->ended_ns, 0);
    assert_int_equal(d->uid, getuid());
    assert_null(d->reason);
    targets_are(f, "m", "production", "1.0.0");
    /* one running deploy per alias */
    deploy_refused(f, canary(steps, 3), MC_EBUSY, "is running; pause, resume or abort it");
    survives_reopen(f);
    /* a step and its alias move: one record */
    g = mc_registry_generation(f->r);
    assert_int_equal(mc_registry_deploy_update(f->r, id, 0, MC_DEPLOY_RUNNING, 111,
                                               "step 1 of 3: 10%", t, 2, &gen),
                     0);
    assert_int_equal(gen, g + 1);
    targets_are(f, "m", "production", "1.0.0=90 2.0.0=10");
    a = alias_of(f, "m", "production");
    assert_string_equal(a->history[a->nhistory - 1].why, "step 1 of 3: 10%");
    assert_int_equal(a->history[a->nhistory - 1].generation, gen);
    d = mc_registry_deploy_at(f->r, 0);
    assert_int_equal(d->step_started_ns, 111);
    assert_string_equal(d->reason, "step 1 of 3: 10%");
    /* paused: no move */
    assert_int_equal(mc_registry_deploy_update(f->r, id, 0, MC_DEPLOY_PAUSED, 111, "paused by ops",
                                               NULL, 0, NULL),
                     0);
    assert_int_equal(mc_registry_deploy_at(f->r, 0)->state, MC_DEPLOY_PAUSED);
    deploy_refused(f, canary(steps, 3), MC_EBUSY, "is paused");
    /* bad updates change nothing */
    unchanged(f, mc_registry_deploy_update(f->r, 999, 0, MC_DEPLOY_RUNNING, 1, NULL, NULL, 0, NULL),
              MC_ENOENT, "there is no deployment 999");
    unchanged(f, mc_registry_deploy_update(f->r, id, 3, MC_DEPLOY_RUNNING, 1, NULL, NULL, 0, NULL),
              MC_EINVAL, "has 3 steps; step 3 does not exist");
    unchanged(f,
              mc_registry_deploy_update(f->r, id, 1, (enum mc_deploy_state)9, 1, NULL, NULL, 0,
                                        NULL),
              MC_EINVAL, "deployment state 9 is not one of");
    {
        struct mc_reg_weight bad[2] = {{"1.0.0", 60}, {"2.0.0", 60}};

        unchanged(f,
                  mc_registry_deploy_update(f->r, id, 1, MC_DEPLOY_RUNNING, 1, "50%", bad, 2, NULL),
                  MC_EINVAL, "sum to 120");
    }
    /* the automatic rollback: weights back to where it began, the reason in history */
    assert_int_equal(
        mc_registry_deploy_update(f->r, id, 1, MC_DEPLOY_ROLLED_BACK, 222,
                                  "auto-rollback: error rate 4.1% > 2.0% over 1,210 requests",
                                  &(struct mc_reg_weight){"1.0.0", 100}, 1, NULL),
        0);
    targets_are(f, "m", "production", "1.0.0");
    a = alias_of(f, "m", "production");
    assert_string_equal(a->history[a->nhistory - 1].from, "1.0.0=90 2.0.0=10");
    assert_string_equal(a->history[a->nhistory - 1].why,
                        "auto-rollback: error rate 4.1% > 2.0% over 1,210 requests");
    d = mc_registry_deploy_at(f->r, 0);
    assert_int_equal(d->state, MC_DEPLOY_ROLLED_BACK);
    assert_true(d->ended_ns >= d->started_ns);
    assert_string_equal(mc_deploy_state_name(d->state), "rolled-back");
    unchanged(f, mc_registry_deploy_update(f->r, id, 1, MC_DEPLOY_RUNNING, 1, NULL, NULL, 0, NULL),
              MC_EINVAL, "has ended (rolled-back)");
    /* a new one may begin; direct and blue-green need no alias and take one step */
    spec = canary(NULL, 0);
    spec.strategy = MC_DEPLOY_BLUE_GREEN;
    spec.alias = "staging";
    assert_int_equal(mc_registry_deploy_begin(f->r, &spec, &id2, NULL), 0);
    d = mc_registry_deploy_at(f->r, 1);
    assert_int_equal(d->nsteps, 1);
    assert_int_equal(d->steps[0], 100);
    assert_null(d->from);
    assert_int_equal(mc_registry_deploy_update(f->r, id2, 0, MC_DEPLOY_SUCCEEDED, 333, "done",
                                               &(struct mc_reg_weight){"2.0.0", 0}, 1, NULL),
                     0);
    targets_are(f, "m", "staging", "2.0.0");
    assert_int_equal(mc_registry_deploy_at(f->r, 1)->state, MC_DEPLOY_SUCCEEDED);
    spec = canary(NULL, 0); /* a canary's default steps */
    assert_int_equal(mc_registry_deploy_begin(f->r, &spec, &id2, NULL), 0);
    assert_int_equal(mc_registry_deploy_at(f->r, 2)->nsteps, 3);
    survives_reopen(f);
    /* names and parsing */
    {
        enum mc_deploy_strategy s;

        assert_int_equal(mc_deploy_strategy_parse("blue-green", &s), 0);
        assert_int_equal(s, MC_DEPLOY_BLUE_GREEN);
        assert_int_equal(mc_deploy_strategy_parse("yolo", &s), MC_EINVAL);
        assert_msg("strategy \"yolo\" is not one of direct, blue-green, canary");
        assert_string_equal(mc_deploy_strategy_name(MC_DEPLOY_CANARY), "canary");
        assert_string_equal(mc_deploy_state_name(MC_DEPLOY_ABORTED), "aborted");
    }
}

/* Every running or paused deployment is kept, and the newest 256 that ended. */
static void test_deploys_bounded(void **state)
{
    struct fx *f = *state;
    struct mc_reg_deploy spec = canary(NULL, 0);
    uint64_t first_kept = 0, running, id;

    push_ok(f, "m", "1.0.0");
    push_ok(f, "m", "2.0.0");
    assert_int_equal(mc_registry_alias_set(f->r, "m", "production", "1.0.0", NULL), 0);
    spec.alias = "staging";
    spec.strategy = MC_DEPLOY_DIRECT;
    assert_int_equal(mc_registry_deploy_begin(f->r, &spec, &running, NULL), 0); /* stays */
    spec = canary(NULL, 0);
    for (int i = 0; i < 260; i++) {
        assert_int_equal(mc_registry_deploy_begin(f->r, &spec, &id, NULL), 0);
        assert_int_equal(mc_registry_deploy_update(f->r, id, 0, MC_DEPLOY_ABORTED, 1, "aborted",
                                                   NULL, 0, NULL),
                         0);
        if (i == 4)
            first_kept = id;
    }
    assert_int_equal(mc_registry_deploy_count(f->r), 257);
    assert_int_equal(mc_registry_deploy_at(f->r, 0)->id, running);
    assert_int_equal(mc_registry_deploy_at(f->r, 0)->state, MC_DEPLOY_RUNNING);
    assert_int_equal(mc_registry_deploy_at(f->r, 1)->id, first_kept);
    assert_int_equal(mc_registry_deploy_at(f->r, 256)->id, id);
    survives_reopen(f);
}

static void test_alerts(void **state)
{
    struct fx *f = *state;
    const struct mc_reg_alert *a;
    uint64_t first = 0, gen;
    char msg[64];

    for (int i = 0; i < MC_REG_ALERTS_MAX + 44; i++) {
        snprintf(msg, sizeof(msg), "alert %d", i);
        assert_int_equal(mc_registry_alert_add(f->r, i % 2 ? "rollback" : "health", "m", "2.0.0",
                                               i % 3 ? "production" : NULL, msg, &gen),
                         0);
        if (i == 44)
            first = gen;
    }
    /* the newest 256 are kept, oldest first; ids are their records' generations */
    assert_int_equal(mc_registry_alert_count(f->r), MC_REG_ALERTS_MAX);
    a = mc_registry_alert_at(f->r, 0);
    assert_string_equal(a->message, "alert 44");
    assert_int_equal(a->id, first);
    assert_string_equal(a->kind, "health");
    assert_string_equal(a->model, "m");
    assert_string_equal(a->version, "2.0.0");
    a = mc_registry_alert_at(f->r, MC_REG_ALERTS_MAX - 1);
    assert_string_equal(a->message, "alert 299");
    assert_int_equal(a->id, gen);
    assert_true(a->at_ns > 0);
    assert_null(mc_registry_alert_at(f->r, MC_REG_ALERTS_MAX));
    survives_reopen(f);
    unchanged(f, mc_registry_alert_add(f->r, "pager", NULL, NULL, NULL, "x", NULL), MC_EINVAL,
              "alert kind \"pager\" is not one of rollback, health, threshold");
    unchanged(f, mc_registry_alert_add(f->r, "threshold", NULL, NULL, NULL, "", NULL), MC_EINVAL,
              "an alert needs a message");
    assert_int_equal(mc_registry_alert_add(f->r, "threshold", NULL, NULL, NULL, "p99", NULL), 0);
    a = mc_registry_alert_at(f->r, MC_REG_ALERTS_MAX - 1);
    assert_null(a->model);
    assert_string_equal(mc_registry_alert_at(f->r, 0)->message, "alert 45");
    survives_reopen(f);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_basic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_formats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_finish, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upload_dead, setup, teardown),
        cmocka_unit_test_setup_teardown(test_audit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
        cmocka_unit_test(test_audit_bounded),
        cmocka_unit_test_setup_teardown(test_resolve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_aliases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_flags_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc, setup, teardown),
        cmocka_unit_test_setup_teardown(test_search, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_repair, setup, teardown),
        cmocka_unit_test(test_targets_parse),
        cmocka_unit_test_setup_teardown(test_weighted_aliases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_weighted_remove_rounding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_health, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshots, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deploys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deploys_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alerts, setup, teardown),
    };

    (void)argc;
    (void)argv;
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
