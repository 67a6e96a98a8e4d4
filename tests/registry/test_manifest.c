/*
 * test_manifest.c - the manifest survives what it must: truncation at every
 * byte of its last records, flipped bytes, newer formats, torn tails, crashes
 * at each step of every change (real processes killed at crash points and at
 * random moments), two processes writing at once, a full disk; and replay at
 * scale.
 *
 *   registry_manifest [unit|crash|concurrency|fulldisk|scale]   (default: unit)
 *
 * fulldisk mounts a 2 MiB tmpfs in a private mount namespace; it exits 77
 * (skip) saying why if the system refuses.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

uint32_t mc_crc32c_soft(uint32_t crc, const void *buf, size_t len);

/* Fast scratch space for the many-reopen tests: fsync is free on tmpfs. */
static const char *scratch_base(void)
{
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#define assert_msg(s)                                                                              \
    do {                                                                                           \
        if (!strstr(mc_last_error(), (s)))                                                         \
            fail_msg("message \"%s\" lacks \"%s\"", mc_last_error(), (s));                         \
    } while (0)

/* ---- CRC-32C ---------------------------------------------------------- */

static void test_crc32c(void **state)
{
    unsigned char buf[4096 + 16];
    uint32_t x = 1;

    (void)state;
    /* the check value, and RFC 3720 B.4's vectors */
    assert_int_equal(mc_crc32c(0, "123456789", 9), 0xe3069283);
    memset(buf, 0, 32);
    assert_int_equal(mc_crc32c(0, buf, 32), 0x8a9136aa);
    memset(buf, 0xff, 32);
    assert_int_equal(mc_crc32c(0, buf, 32), 0x62a8ab43);
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    assert_int_equal(mc_crc32c(0, buf, 32), 0x46dd794e);
    /* incremental = whole; hardware = table, at every alignment and length */
    assert_int_equal(mc_crc32c(mc_crc32c(0, "1234", 4), "56789", 5), 0xe3069283);
    for (size_t i = 0; i < sizeof(buf); i++) {
        x = x * 1103515245 + 12345;
        buf[i] = (unsigned char)(x >> 16);
    }
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 300; len += 7)
            assert_int_equal(mc_crc32c(0, buf + off, len), mc_crc32c_soft(0, buf + off, len));
    assert_int_equal(mc_crc32c(0, buf, 4096), mc_crc32c_soft(0, buf, 4096));
}

static void test_line_format(void **state)
{
    json_t *o = json_pack("{s:i,s:s}", "g", 7, "op", "push");
    size_t len;
    char *line = mc_manifest_encode(o, &len);
    json_t *back;

    (void)state;
    assert_non_null(line);
    assert_int_equal(line[len - 1], '\n');
    /* {"g":7,"op":"push","crc":"<crc of the bytes before ,"crc">"} */
    assert_memory_equal(line, "{\"g\":7,\"op\":\"push\",\"crc\":\"", 26);
    {
        char want[9];

        snprintf(want, sizeof(want), "%08x", mc_crc32c(0, line, 18));
        assert_memory_equal(line + 26, want, 8);
    }
    back = json_loadb(line, len, 0, NULL); /* any JSON reader can read it */
    assert_non_null(back);
    assert_int_equal(json_integer_value(json_object_get(back, "g")), 7);
    json_decref(back);
    json_decref(o);
    free(line);
}

/* ---- a store with every kind of record -------------------------------- */

struct store {
    char *dir, *path, *files;
    struct mc_registry *r;
};

static void store_open(struct store *s)
{
    struct tu_warnings w = {0};

    if (tu_open(s->path, MC_REGISTRY_CREATE, &w, &s->r) != 0)
        fail_msg("open %s: %s", s->path, mc_last_error());
}

static void store_new(struct store *s, const char *base)
{
    s->dir = tu_tempdir(base);
    if (asprintf(&s->path, "%s/store", s->dir) < 0 || asprintf(&s->files, "%s/f", s->dir) < 0)
        abort();
    mkdir(s->files, 0755);
    store_open(s);
}

static void store_free(struct store *s)
{
    mc_registry_close(s->r);
    tu_rm_rf(s->dir);
    free(s->dir);
    free(s->path);
    free(s->files);
}

static void push(struct store *s, const char *name, const char *version, size_t size)
{
    char p[512];
    struct mc_reg_metric m[] = {{"accuracy", 0.5 + (double)size / 1e6}};
    struct mc_reg_kv t[] = {{"env", "dev"}};
    struct mc_reg_meta meta = {
        .metrics = m, .nmetrics = 1, .tags = t, .ntags = 1, .description = "a model"};
    struct mc_push_opts o = {.meta = &meta};

    snprintf(p, sizeof(p), "%s/src", s->files);
    tu_make_file(p, size, (unsigned)size);
    if (mc_registry_push(s->r, name, version, p, &o, NULL) != 0)
        fail_msg("push %s@%s: %s", name, version, mc_last_error());
}

static void ok(int rc)
{
    if (rc)
        fail_msg("%s", mc_last_error());
}

/*
 * Records of every kind: push, alias, status, flags, meta, rm, gc; and those
 * of deployments (format 2): weighted alias moves with a reason, health,
 * snap-create, snap-restore, snap-rm, deploy, deploy-update (with and
 * without a move), alert.
 */
static void fill(struct store *s)
{
    struct mc_reg_kv t[] = {{"env", "prod"}};
    struct mc_reg_meta meta = {.tags = t, .ntags = 1};
    struct mc_gc_opts gc = {.keep = 2, .name = "b"};
    const char *argv[] = {"python3", "smoke.py", "--model=d"};
    static const uint32_t steps[] = {10, 50, 100};
    struct mc_reg_deploy d = {.name = "d", .version = "2.0.0", .alias = "prod",
                              .strategy = MC_DEPLOY_CANARY, .steps = steps, .nsteps = 3,
                              .interval_ms = 5000, .max_error_rate = 0.02, .max_p99_ratio = 1.5,
                              .min_requests = 200, .health_argv = argv, .health_argc = 2,
                              .health_timeout_ms = 1000};
    struct mc_reg_weight w[2] = {{"1.0.0", 90}, {"2.0.0", 10}};
    uint64_t id;

    push(s, "a", "1.0.0", 10);
    push(s, "a", "1.1.0", 20);
    push(s, "org/b", "0.1.0-rc.1", 30);
    ok(mc_registry_alias_set(s->r, "a", "production", "1.0.0", NULL));
    push(s, "b", "1.0.0", 1);
    push(s, "b", "2.0.0", 2);
    push(s, "b", "3.0.0", 3);
    ok(mc_registry_alias_set(s->r, "a", "production", "1.1.0", NULL));
    ok(mc_registry_alias_rollback(s->r, "a", "production", NULL));
    ok(mc_registry_set_status(s->r, "a", "1.1.0", MC_STATUS_ARCHIVED, "superseded", NULL));
    ok(mc_registry_gc(s->r, &gc, NULL, NULL));
    ok(mc_registry_set_flags(s->r, "org/b", "0.1.0-rc.1", 1, 1, NULL));
    ok(mc_registry_set_meta(s->r, "a", "1.1.0", &meta, NULL));
    ok(mc_registry_remove_version(s->r, "b", "3.0.0", false, NULL));
    ok(mc_registry_alias_set(s->r, "b", "canary", "2.0.0", NULL));
    push(s, "d", "1.0.0", 4);
    push(s, "d", "2.0.0", 5);
    ok(mc_registry_alias_set(s->r, "d", "prod", "1.0.0", NULL));
    ok(mc_registry_health_set(s->r, "d", argv, 3, 2500, NULL));
    ok(mc_registry_snapshot_create(s->r, "s1", NULL));
    ok(mc_registry_deploy_begin(s->r, &d, &id, NULL));
    ok(mc_registry_deploy_update(s->r, id, 0, MC_DEPLOY_RUNNING, 7, "step 1 of 3: 10%", w, 2,
                                 NULL));
    ok(mc_registry_deploy_update(s->r, id, 0, MC_DEPLOY_PAUSED, 7, "paused", NULL, 0, NULL));
    ok(mc_registry_alert_add(s->r, "rollback", "d", "2.0.0", "prod",
                             "auto-rollback: error rate 4.1% > 2.0% over 1,210 requests", NULL));
    ok(mc_registry_deploy_update(s->r, id, 0, MC_DEPLOY_ROLLED_BACK, 8, "auto-rollback",
                                 &(struct mc_reg_weight){"1.0.0", 100}, 1, NULL));
    w[0].weight = 50;
    w[1].weight = 50;
    ok(mc_registry_alias_set_weighted(s->r, "d", "prod", w, 2, "half", NULL));
    ok(mc_registry_snapshot_restore(s->r, "s1", NULL));
    ok(mc_registry_snapshot_create(s->r, "s2", NULL));
    ok(mc_registry_snapshot_remove(s->r, "s1", NULL));
}

/* Offsets where the journal's lines start (and its end). */
static size_t line_starts(const char *path, size_t **out)
{
    size_t len, n = 0;
    char *buf = tu_read(path, &len);
    size_t *at = malloc((len + 2) * sizeof(*at));

    at[n++] = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\n')
            at[n++] = i + 1;
    free(buf);
    *out = at;
    return n; /* at[n-1] == len */
}

/* Open a copy of src's manifest cut to len bytes of journal; return its dump. */
static char *open_cut(const char *src, const char *scratch, size_t len, struct tu_warnings *w,
                      int *rc, size_t *after)
{
    char j[512];
    struct mc_registry *r;
    struct stat st;
    char *d = NULL;

    tu_rm_rf(scratch);
    tu_copy_manifest(src, scratch);
    snprintf(j, sizeof(j), "%s/journal", scratch);
    if (truncate(j, (off_t)len) != 0)
        fail_msg("truncate: %s", strerror(errno));
    memset(w, 0, sizeof(*w));
    *rc = tu_open(scratch, 0, w, &r);
    if (*rc == 0) {
        d = tu_dump(r);
        mc_registry_close(r);
    }
    stat(j, &st);
    *after = (size_t)st.st_size;
    return d;
}

/* fill()'s last records cut at every byte: those of deployments and a few before */
#define TRUNCATED_RECORDS 20

static void test_truncate_every_byte(void **state)
{
    struct store s;
    char jpath[512], scratch[512];
    size_t *at, n, first, after;
    char **expect;
    int rc, opened = 0;

    (void)state;
    store_new(&s, scratch_base());
    fill(&s);
    snprintf(jpath, sizeof(jpath), "%s/journal", s.path);
    snprintf(scratch, sizeof(scratch), "%s/cut", s.dir);
    n = line_starts(jpath, &at);
    if (n < TRUNCATED_RECORDS + 2) {
        fail_msg("the journal has %zu records, fewer than %d", n, TRUNCATED_RECORDS + 2);
        return;
    }
    /* the state after each of the last records (all of deployments' kinds), and before them */
    first = n - 1 - TRUNCATED_RECORDS;
    expect = calloc(n, sizeof(*expect));
    for (size_t i = first; i < n; i++) {
        struct tu_warnings w;

        expect[i] = open_cut(s.path, scratch, at[i], &w, &rc, &after);
        assert_int_equal(rc, 0);
        assert_int_equal(w.count, 0);
    }
    for (size_t i = first + 1; i < n; i++)
        assert_string_not_equal(expect[i], expect[i - 1]);
    /* every byte offset across them: exactly one of those states */
    for (size_t off = at[first]; off <= at[n - 1]; off++) {
        struct tu_warnings w;
        size_t i = first;
        char *d;

        while (i + 1 < n && at[i + 1] <= off)
            i++;
        d = open_cut(s.path, scratch, off, &w, &rc, &after);
        opened++;
        if (rc != 0)
            fail_msg("cut at %zu: %s", off, mc_last_error());
        if (strcmp(d, expect[i]) != 0)
            fail_msg("cut at %zu: the state is not the one after record %zu", off, i);
        /* a cut inside a record is a torn tail: said, saved and cut off */
        if (off != at[i]) {
            char want[64];

            snprintf(want, sizeof(want), "at byte %zu", at[i]);
            assert_int_equal(w.count, 1);
            assert_non_null(strstr(w.last, "cut a torn record"));
            assert_non_null(strstr(w.last, want));
            assert_int_equal(after, at[i]);
        } else {
            assert_int_equal(w.count, 0);
        }
        free(d);
    }
    printf("truncation: %d reopens across the last %d records (%zu bytes)\n", opened,
           TRUNCATED_RECORDS,
           at[n - 1] - at[first]);
    for (size_t i = first; i < n; i++)
        free(expect[i]);
    free(expect);
    free(at);
    store_free(&s);
}

/* Add "pad":"xxx..." (m x's, 9 + m bytes in all) to line i of a journal. */
static void pad_line(const char *path, size_t i, size_t m)
{
    size_t *at, n, len, newlen;
    char *buf = tu_read(path, &len), *line, *fill = malloc(m + 1 + 65536), *out;
    json_t *rec;

    n = line_starts(path, &at);
    assert_true(i + 1 < n);
    /* the line without its ,"crc":"..." (18 bytes before the '\n'), closed again */
    memcpy(fill, buf + at[i], at[i + 1] - at[i] - 1 - 18);
    fill[at[i + 1] - at[i] - 1 - 18] = '}';
    rec = json_loadb(fill, at[i + 1] - at[i] - 18, 0, NULL);
    assert_non_null(rec);
    memset(fill, 'x', m);
    fill[m] = '\0';
    json_object_set_new(rec, "pad", json_string(fill));
    line = mc_manifest_encode(rec, &newlen);
    assert_int_equal(newlen, at[i + 1] - at[i] + 9 + m);
    out = malloc(len + newlen);
    memcpy(out, buf, at[i]);
    memcpy(out + at[i], line, newlen);
    memcpy(out + at[i] + newlen, buf + at[i + 1], len - at[i + 1]);
    tu_write(path, out, len - (at[i + 1] - at[i]) + newlen);
    json_decref(rec);
    free(out);
    free(line);
    free(fill);
    free(buf);
    free(at);
}

/*
 * Replay reads files in 1 MiB pieces: cut and damage the journal right
 * around that boundary, with one line ending exactly on it. A cut is a
 * torn tail (the state before its record, said with the record's
 * offset); damage that is not at the end of the file is damage, even in
 * the line that ends a piece.
 */
static void test_read_boundary(void **state)
{
    const size_t piece = 1u << 20;
    char *dir = tu_tempdir(scratch_base()), src[512], cut[512], j[600];
    size_t *at, n, k, e, len, after;
    uint64_t g;

    (void)state;
    snprintf(src, sizeof(src), "%s/store", dir);
    snprintf(cut, sizeof(cut), "%s/cut", dir);
    snprintf(j, sizeof(j), "%s/journal", src);
    ok(synth_registry(src, 1000, 3)); /* ~1.7 MB of journal */
    n = line_starts(j, &at);
    for (k = 0; at[k + 1] <= piece; k++)
        ; /* line k holds the piece's last byte: at[k] < piece <= at[k+1] */
    assert_true(k >= 2 && k + 2 < n);
    /* pad a line before it so that line e ends exactly at the boundary */
    e = piece - at[k] >= 9 ? k - 1 : k - 2;
    pad_line(j, e, piece - at[e + 1] - 9);
    free(at);
    n = line_starts(j, &at);
    assert_int_equal(at[e + 1], piece);
    /* line i (i >= 1) holds the record of generation i */
    for (size_t off = at[e - 1]; off <= at[e + 3]; off++) {
        struct tu_warnings w;
        struct mc_registry *r;
        size_t line = e - 1;
        int rc;

        if (off % 13 != 0 && (off + 3 < piece || off > piece + 3) && off != at[e + 2])
            continue;
        while (at[line + 1] <= off)
            line++;
        tu_rm_rf(cut);
        tu_copy_manifest(src, cut);
        snprintf(j, sizeof(j), "%s/journal", cut);
        if (truncate(j, (off_t)off) != 0)
            fail_msg("truncate: %s", strerror(errno));
        memset(&w, 0, sizeof(w));
        rc = tu_open(cut, 0, &w, &r);
        if (rc)
            fail_msg("cut at %zu: %s", off, mc_last_error());
        g = mc_registry_generation(r);
        mc_registry_close(r);
        free(tu_read(j, &after));
        assert_int_equal(g, line - 1);
        if (off == at[line]) {
            assert_int_equal(w.count, 0);
        } else {
            char want[64];

            assert_int_equal(w.count, 1);
            snprintf(want, sizeof(want), "at byte %zu", at[line]);
            if (!strstr(w.last, want))
                fail_msg("cut at %zu: \"%s\" lacks \"%s\"", off, w.last, want);
            assert_int_equal(after, at[line]);
        }
    }
    /* damage in the line that ends the first piece, and around it: not a torn tail */
    for (size_t d = e - 1; d <= e + 2; d++) {
        struct tu_warnings w = {0};
        struct mc_registry *r;
        char want[64], *buf;

        tu_rm_rf(cut);
        tu_copy_manifest(src, cut);
        snprintf(j, sizeof(j), "%s/journal", cut);
        buf = tu_read(j, &len);
        buf[at[d] + 10] ^= 0x01;
        tu_write(j, buf, len);
        free(buf);
        assert_int_equal(tu_open(cut, 0, &w, &r), MC_ECORRUPT);
        snprintf(want, sizeof(want), "damaged at byte %zu", at[d]);
        assert_msg(want);
    }
    /* and the whole journal reads, padding and all */
    {
        struct tu_warnings w = {0};
        struct mc_registry *r;

        ok(tu_open(src, MC_REGISTRY_READONLY, &w, &r));
        assert_int_equal(mc_registry_generation(r), n - 2);
        assert_int_equal(w.count, 0);
        mc_registry_close(r);
    }
    printf("read boundary: line %zu ends at byte %zu of the journal\n", e, piece);
    free(at);
    tu_rm_rf(dir);
    free(dir);
}

/* Flip one byte of file (journal or snapshot) at off; what does open say? */
static void flip_case(struct store *s, const char *file, const char *scratch, size_t off,
                      unsigned char x, size_t *at, size_t n, char **expect)
{
    char p[512], want[64];
    struct tu_warnings w = {0};
    struct mc_registry *r;
    size_t len, line = 0, k;
    char *buf;
    int rc;

    tu_rm_rf(scratch);
    tu_copy_manifest(s->path, scratch);
    snprintf(p, sizeof(p), "%s/%s", scratch, file);
    buf = tu_read(p, &len);
    buf[off] ^= x;
    tu_write(p, buf, len);
    free(buf);
    for (k = 0; k + 1 < n && at[k + 1] <= off; k++)
        ;
    line = at[k];
    snprintf(want, sizeof(want), "at byte %zu", line);
    rc = tu_open(scratch, 0, &w, &r);
    if (rc == MC_ECORRUPT) {
        if (!strstr(mc_last_error(), want) || !strstr(mc_last_error(), file))
            fail_msg("flip at %zu of %s: \"%s\" should name %s", off, file, mc_last_error(), want);
        return;
    }
    /* only a damaged last journal line may be taken for a torn tail */
    if (rc != 0 || strcmp(file, "journal") != 0 || k != n - 2)
        fail_msg("flip at %zu of %s (line at %zu) was %s: %s", off, file, line,
                 rc ? "refused the wrong way" : "loaded", rc ? mc_last_error() : w.last);
    if (w.count != 1 || !strstr(w.last, want))
        fail_msg("flip at %zu: the torn tail was not reported with its offset (%s)", off, w.last);
    buf = tu_dump(r);
    if (strcmp(buf, expect[0]) != 0)
        fail_msg("flip at %zu: the damaged record was loaded", off);
    free(buf);
    mc_registry_close(r);
}

static void test_flip_bytes(void **state)
{
    struct store s;
    char scratch[512], p[512];
    size_t *jat, jn, *sat, sn;
    char *before_last[1];
    unsigned seed = (unsigned)time(NULL);
    int rc;

    (void)state;
    printf("flip: seed %u\n", seed);
    srand(seed);
    store_new(&s, scratch_base());
    fill(&s);
    ok(mc_registry_compact(s.r)); /* a snapshot to damage too */
    push(&s, "c", "1.0.0", 5);
    push(&s, "c", "1.1.0", 6);
    ok(mc_registry_alias_set(s.r, "c", "live", "1.0.0", NULL));
    snprintf(scratch, sizeof(scratch), "%s/flip", s.dir);
    snprintf(p, sizeof(p), "%s/journal", s.path);
    jn = line_starts(p, &jat);
    {
        struct tu_warnings w;
        size_t after;

        before_last[0] = open_cut(s.path, scratch, jat[jn - 2], &w, &rc, &after);
        assert_int_equal(rc, 0);
    }
    snprintf(p, sizeof(p), "%s/manifest", s.path);
    sn = line_starts(p, &sat);
    /* every newline lost: two lines merge, which is damage even at the end */
    for (size_t k = 1; k < jn; k++)
        flip_case(&s, "journal", scratch, jat[k] - 1, 0x20, jat, jn, before_last);
    for (size_t k = 1; k < sn; k++)
        flip_case(&s, "manifest", scratch, sat[k] - 1, 0x20, sat, sn, before_last);
    for (int i = 0; i < 400; i++) {
        bool journal = i % 2 == 0;
        size_t size = journal ? jat[jn - 1] : sat[sn - 1];
        size_t off = (size_t)rand() % size;
        unsigned char x = (unsigned char)(1 + rand() % 255);

        if (journal)
            flip_case(&s, "journal", scratch, off, x, jat, jn, before_last);
        else
            flip_case(&s, "manifest", scratch, off, x, sat, sn, before_last);
    }
    free(before_last[0]);
    free(jat);
    free(sat);
    store_free(&s);
}

static void write_lines(const char *path, json_t **objs, size_t n)
{
    FILE *fp = fopen(path, "w");

    for (size_t i = 0; i < n; i++) {
        size_t len;
        char *line = mc_manifest_encode(objs[i], &len);

        fwrite(line, 1, len, fp);
        free(line);
        json_decref(objs[i]);
    }
    fclose(fp);
}

static void test_formats_and_gaps(void **state)
{
    struct store s;
    struct tu_warnings w = {0};
    struct mc_registry *r;
    char p[512], q[512];
    json_t *lines[3];

    (void)state;
    store_new(&s, scratch_base());
    push(&s, "a", "1.0.0", 10);
    mc_registry_close(s.r);
    s.r = NULL;
    snprintf(p, sizeof(p), "%s/journal", s.path);
    snprintf(q, sizeof(q), "%s/journal.good", s.dir);
    tu_copy(p, q);
    /* a journal from a newer mcache is refused, naming both formats */
    lines[0] = json_pack("{s:s,s:i,s:i}", "mcache", "journal", "format", 4, "base", 0);
    write_lines(p, lines, 1);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_EFORMAT);
    assert_msg("manifest format 4 by a newer mcache; this one reads formats 1 to 3: upgrade");
    /* a header that is not a header */
    lines[0] = json_pack("{s:s,s:i}", "mcache", "something", "format", 1);
    write_lines(p, lines, 1);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("damaged at byte 0: it does not start with a journal header");
    /* a generation out of sequence */
    lines[0] = json_pack("{s:s,s:i,s:i}", "mcache", "journal", "format", 1, "base", 0);
    lines[1] =
        json_pack("{s:i,s:s,s:s,s:i,s:i}", "g", 1, "op", "rm", "name", "x", "t", 1, "uid", 0);
    lines[2] = json_pack("{s:i,s:s}", "g", 3, "op", "rm");
    write_lines(p, lines, 2);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("names model \"x\", which does not exist");
    lines[0] = json_pack("{s:s,s:i,s:i}", "mcache", "journal", "format", 1, "base", 0);
    lines[1] = json_pack("{s:i,s:s}", "g", 2, "op", "rm");
    write_lines(p, lines, 2);
    json_decref(lines[2]);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("generation out of order where 1 was expected");
    /* a record of an unknown kind */
    lines[0] = json_pack("{s:s,s:i,s:i}", "mcache", "journal", "format", 1, "base", 0);
    lines[1] = json_pack("{s:i,s:s}", "g", 1, "op", "teleport");
    write_lines(p, lines, 2);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("a record \"teleport\", which is unknown");
    /* a journal that starts after the snapshot it needs */
    lines[0] = json_pack("{s:s,s:i,s:i}", "mcache", "journal", "format", 1, "base", 5);
    write_lines(p, lines, 1);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("the journal starts after generation 5");
    tu_copy(q, p);
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    assert_int_equal(mc_registry_generation(s.r), 1);
    store_free(&s);
}

/*
 * A store written in format 1 (before deployments) reads as it was, and the
 * first change rewrites it in format 3 before appending. Its records carry
 * no actor: their audit entries say who "uid:N", from "local".
 */
static void test_format1_store(void **state)
{
    struct store s;
    struct tu_warnings w = {0};
    struct mc_registry *r;
    char p[512], *before, *after, *text, *line, *save = NULL;
    json_t *lines[16];
    size_t n = 0;

    (void)state;
    store_new(&s, scratch_base());
    push(&s, "a", "1.0.0", 10);
    push(&s, "a", "2.0.0", 20);
    ok(mc_registry_alias_set(s.r, "a", "production", "1.0.0", NULL));
    ok(mc_registry_alias_set(s.r, "a", "production", "2.0.0", NULL));
    before = tu_dump(s.r);
    mc_registry_close(s.r);
    s.r = NULL;
    /* the same journal, as format 1 wrote it */
    snprintf(p, sizeof(p), "%s/journal", s.path);
    text = tu_read(p, NULL);
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        json_t *j = json_loads(line, 0, NULL);

        assert_non_null(j);
        assert_true(n < 16);
        json_object_del(j, "crc");
        json_object_del(j, "who"); /* format 3's actor */
        json_object_del(j, "where");
        if (json_object_get(j, "mcache")) /* the header */
            json_object_set_new(j, "format", json_integer(1));
        lines[n++] = j;
    }
    free(text);
    write_lines(p, lines, n);
    ok(tu_open(s.path, 0, &w, &r));
    after = tu_dump(r);
    assert_string_equal(before, after);
    free(after);
    text = tu_read(p, NULL);
    assert_non_null(strstr(text, "\"format\":1,"));
    free(text);
    assert_int_equal(mc_registry_audit_count(r), 4);
    assert_string_equal(mc_registry_audit_at(r, 0)->what, "push a@1.0.0");
    assert_string_equal(mc_registry_audit_at(r, 3)->what, "alias a production 2.0.0");
    assert_true(strncmp(mc_registry_audit_at(r, 0)->who, "uid:", 4) == 0);
    assert_null(strchr(mc_registry_audit_at(r, 0)->who, '('));
    assert_string_equal(mc_registry_audit_at(r, 0)->from, "local");
    /* the first change: rewritten in format 3, then appended */
    ok(mc_registry_alias_set(r, "a", "production", "1.0.0", NULL));
    text = tu_read(p, NULL);
    assert_non_null(strstr(text, "\"format\":3,"));
    assert_null(strstr(text, "\"format\":1,"));
    free(text);
    mc_registry_close(r);
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    assert_int_equal(w.count, 0);
    free(before);
    store_free(&s);
}

/*
 * A "gc" record that names a version twice is damage: refused on open, and
 * skipped whole by a repair (it used to remove the first and then fail on
 * the second, so a repair kept half of it).
 */
static void test_gc_record_whole_or_nothing(void **state)
{
    struct store s;
    struct tu_warnings w = {0};
    struct mc_registry *r;
    const struct mc_reg_model *m;
    char p[512], *line;
    size_t len;
    json_t *rec;
    FILE *f;

    (void)state;
    store_new(&s, scratch_base());
    push(&s, "a", "1.0.0", 10);
    push(&s, "a", "1.1.0", 11);
    push(&s, "a", "1.2.0", 12);
    assert_int_equal(mc_registry_generation(s.r), 3);
    mc_registry_close(s.r);
    s.r = NULL;
    rec = json_pack("{s:i,s:s,s:i,s:i,s:[{s:s,s:s},{s:s,s:s}]}", "g", 4, "op", "gc", "t", 1,
                    "uid", 0, "removed", "name", "a", "version", "1.1.0", "name", "a",
                    "version", "1.1.0");
    line = mc_manifest_encode(rec, &len);
    assert_non_null(line);
    snprintf(p, sizeof(p), "%s/journal", s.path);
    f = fopen(p, "a");
    assert_non_null(f);
    assert_int_equal(fwrite(line, 1, len, f), len);
    fclose(f);
    free(line);
    json_decref(rec);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("the \"gc\" record names a@1.1.0 twice");
    assert_int_equal(mc_registry_repair(s.path, tu_warn, &w), 0);
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    m = mc_registry_model(s.r, "a");
    assert_non_null(m);
    assert_int_equal(m->nversions, 3); /* nothing of the record applied */
    store_free(&s);
}

/* The generation the next record appended to the store's journal must have. */
static int next_gen(const char *store)
{
    struct tu_warnings w = {0};
    struct mc_registry *r;
    int g;

    assert_int_equal(tu_open(store, 0, &w, &r), 0);
    g = (int)mc_registry_generation(r) + 1;
    mc_registry_close(r);
    return g;
}

/* Append rec to the store's journal as the next line. */
static void append_record(const char *store, json_t *rec)
{
    char p[512], *line;
    size_t len;
    FILE *f;

    line = mc_manifest_encode(rec, &len);
    assert_non_null(line);
    snprintf(p, sizeof(p), "%s/journal", store);
    f = fopen(p, "a");
    assert_non_null(f);
    assert_int_equal(fwrite(line, 1, len, f), len);
    fclose(f);
    free(line);
    json_decref(rec);
}

/*
 * The alias moves of a forced "rm" are checked whole before any is made: a
 * record whose second move still holds the removed version changes nothing
 * (not the first alias, not the version).
 */
static void test_rm_moves_whole_or_nothing(void **state)
{
    struct store s;
    struct tu_warnings w = {0};
    struct mc_registry *r;
    const struct mc_reg_model *m;
    struct mc_reg_weight t[2] = {{"1.0.0", 50}, {"2.0.0", 50}};
    char text[256];
    json_t *rec;

    (void)state;
    store_new(&s, scratch_base());
    push(&s, "a", "1.0.0", 10);
    push(&s, "a", "2.0.0", 11);
    push(&s, "a", "3.0.0", 12);
    ok(mc_registry_alias_set_weighted(s.r, "a", "west", t, 2, NULL, NULL));
    t[0].ref = "3.0.0";
    ok(mc_registry_alias_set_weighted(s.r, "a", "east", t, 2, NULL, NULL));
    assert_int_equal(mc_registry_generation(s.r), 5);
    mc_registry_close(s.r);
    s.r = NULL;
    rec = json_pack("{s:i,s:s,s:i,s:i,s:s,s:s,s:b,s:[{s:s,s:s,s:s},{s:s,s:s,s:s}]}", "g", 6, "op",
                    "rm", "t", 1, "uid", 0, "name", "a", "version", "2.0.0", "force", 1, "moves",
                    "alias", "west", "from", "1.0.0=50 2.0.0=50", "to", "1.0.0", "alias", "east",
                    "from", "2.0.0=50 3.0.0=50", "to", "2.0.0");
    append_record(s.path, rec);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("moves alias \"east\" to \"2.0.0\", which still holds it");
    assert_int_equal(mc_registry_repair(s.path, tu_warn, &w), 0);
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    m = mc_registry_model(s.r, "a");
    assert_non_null(m);
    assert_int_equal(m->nversions, 3); /* nothing of the record applied */
    /* aliases in name order: east, west */
    assert_int_equal(mc_reg_targets_format(&m->aliases[1], text, sizeof(text)), 0);
    assert_string_equal(text, "1.0.0=50 2.0.0=50");
    assert_int_equal(m->aliases[1].nhistory, 1);
    /* a move from targets the alias does not have now, or the same alias twice */
    mc_registry_close(s.r);
    s.r = NULL;
    rec = json_pack("{s:i,s:s,s:i,s:i,s:s,s:s,s:b,s:[{s:s,s:s,s:s}]}", "g", next_gen(s.path), "op",
                    "rm", "t", 1, "uid", 0, "name", "a", "version", "2.0.0", "force", 1, "moves",
                    "alias", "west", "from", "1.0.0=60 2.0.0=40", "to", "1.0.0");
    append_record(s.path, rec);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("moves alias \"west\" from \"1.0.0=60 2.0.0=40\", but it does not point there");
    assert_int_equal(mc_registry_repair(s.path, tu_warn, &w), 0);
    rec = json_pack("{s:i,s:s,s:i,s:i,s:s,s:s,s:b,s:[{s:s,s:s,s:s},{s:s,s:s,s:s}]}", "g",
                    next_gen(s.path), "op", "rm", "t", 1, "uid", 0, "name", "a", "version", "2.0.0",
                    "force", 1, "moves", "alias", "west", "from", "1.0.0=50 2.0.0=50", "to",
                    "1.0.0", "alias", "west", "from", "1.0.0=50 2.0.0=50", "to", "1.0.0");
    append_record(s.path, rec);
    assert_int_equal(tu_open(s.path, 0, &w, &r), MC_ECORRUPT);
    assert_msg("moves alias \"west\" twice");
    assert_int_equal(mc_registry_repair(s.path, tu_warn, &w), 0);
    /* the record the API writes replays */
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    ok(mc_registry_remove_version(s.r, "a", "2.0.0", true, NULL));
    mc_registry_close(s.r);
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    m = mc_registry_model(s.r, "a");
    assert_int_equal(mc_reg_targets_format(&m->aliases[1], text, sizeof(text)), 0);
    assert_string_equal(text, "1.0.0");
    assert_int_equal(mc_reg_targets_format(&m->aliases[0], text, sizeof(text)), 0);
    assert_string_equal(text, "3.0.0");
    store_free(&s);
}

static void test_torn_tail_readers(void **state)
{
    static const char half[] = "{\"g\":2,\"op\":\"alias\",\"t\":1,\"ui";
    struct store s;
    struct tu_warnings w = {0};
    struct mc_registry *r;
    char p[512], d[512], *before, *after;
    size_t len0, len;
    FILE *fp;

    (void)state;
    store_new(&s, scratch_base());
    push(&s, "a", "1.0.0", 10);
    before = tu_dump(s.r);
    mc_registry_close(s.r);
    snprintf(p, sizeof(p), "%s/journal", s.path);
    free(tu_read(p, &len0));
    fp = fopen(p, "a");
    fputs(half, fp);
    fclose(fp);
    /* a reader ignores it, says so, and leaves the file alone */
    assert_int_equal(tu_open(s.path, MC_REGISTRY_READONLY, &w, &r), 0);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "incomplete record"));
    after = tu_dump(r);
    assert_string_equal(before, after);
    free(after);
    free(tu_read(p, &len));
    assert_int_equal(len, len0 + strlen(half));
    mc_registry_close(r);
    /* a writer cuts it and keeps its bytes */
    w.count = 0;
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    assert_int_equal(w.count, 1);
    assert_non_null(strstr(w.last, "cut a torn record"));
    free(tu_read(p, &len));
    assert_int_equal(len, len0);
    snprintf(d, sizeof(d), "%s/damaged", s.path);
    assert_int_equal(tu_count_entries(d, "journal-tail."), 1);
    after = tu_dump(s.r);
    assert_string_equal(before, after);
    free(after);
    free(before);
    /* and the next change follows on */
    push(&s, "a", "1.1.0", 11);
    assert_int_equal(mc_registry_generation(s.r), 2);
    store_free(&s);
}

static void test_compaction(void **state)
{
    struct store s;
    struct mc_registry *r;
    struct tu_warnings w = {0};
    uint64_t snap, journal, gen;
    char *a, *b, p[512], *head;

    (void)state;
    store_new(&s, scratch_base());
    fill(&s);
    gen = mc_registry_generation(s.r);
    a = tu_dump(s.r);
    ok(mc_registry_compact(s.r));
    mc_registry_sizes(s.r, &snap, &journal);
    assert_true(snap > 0 && journal < 200); /* just its header */
    assert_int_equal(mc_registry_generation(s.r), gen);
    snprintf(p, sizeof(p), "%s/journal", s.path);
    head = tu_read(p, NULL);
    assert_non_null(strstr(head, "\"base\":"));
    free(head);
    assert_int_equal(tu_open(s.path, 0, &w, &r), 0);
    b = tu_dump(r);
    assert_string_equal(a, b);
    free(b);
    assert_int_equal(mc_registry_generation(r), gen);
    mc_registry_close(r);
    /* generations go on from the snapshot */
    push(&s, "z", "1.0.0", 1);
    assert_int_equal(mc_registry_generation(s.r), gen + 1);
    /* automatic compaction keeps the journal within twice the snapshot (and 64 KiB) */
    for (int i = 0; i < 400; i++) {
        uint64_t before = mc_registry_generation(s.r);

        ok(mc_registry_set_flags(s.r, "z", "1.0.0", i % 2, -1, NULL));
        assert_int_equal(mc_registry_generation(s.r), before + 1);
        mc_registry_sizes(s.r, &snap, &journal);
        assert_true(journal <= 2 * snap || journal <= (64u << 10) + 1024);
    }
    free(a);
    store_free(&s);
}

/* ---- crashes ---------------------------------------------------------- */

/* Run reg_helper; expect it killed by SIGKILL if crash_at, else exit 0. */
static void helper(const char *crash_at, const char *const *args)
{
    int st = tu_wait(tu_spawn(crash_at, NULL, args));

    if (crash_at ? !(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL)
                 : !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
        fail_msg("reg_helper %s at %s: status %#x", args[0], crash_at ? crash_at : "-", st);
}

/* Nothing half done: every version has its complete artifact, no strays. */
static void consistent(const char *store)
{
    struct tu_warnings w = {0};
    size_t problems;
    char tmp[512];

    if (mc_registry_check(store, MC_CHECK_CHECKSUMS, tu_warn, &w, &problems) != 0)
        fail_msg("check: %s (%s)", mc_last_error(), w.last);
    snprintf(tmp, sizeof(tmp), "%s/tmp", store);
    assert_int_equal(tu_count_entries(tmp, "push-"), 0);
    assert_int_equal(tu_count_entries(tmp, "commit"), 0);
}

static void test_crash_points(void **state)
{
    /* each point in a push, and whether the version exists after a crash there */
    static const struct {
        const char *point;
        bool after;
    } push_points[] = {
        {"temp-created", false},   {"copy-chunk", false},   {"copied", false},
        {"marker-written", false}, {"renamed", false},      {"append-torn", false},
        {"append-written", true},  {"append-synced", true},
    };
    struct store s;
    char src[512], ver[32];
    struct tu_warnings w = {0};

    (void)state;
    store_new(&s, NULL);
    push(&s, "m", "0.1.0", 100);
    mc_registry_close(s.r);
    s.r = NULL;
    snprintf(src, sizeof(src), "%s/big", s.files);
    tu_make_file(src, 9 << 20, 5);
    for (size_t i = 0; i < sizeof(push_points) / sizeof(push_points[0]); i++) {
        const struct mc_reg_version *v;
        int rc;

        snprintf(ver, sizeof(ver), "1.%zu.0", i);
        helper(push_points[i].point, (const char *[]){"push", s.path, "m", ver, src, NULL});
        w.count = 0;
        assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
        rc = mc_registry_resolve(s.r, "m", ver, &v);
        if (push_points[i].after ? rc != 0 : rc != MC_ENOENT)
            fail_msg("crash at %s: version %s", push_points[i].point, rc ? "missing" : "present");
        if (push_points[i].after)
            assert_int_equal(v->size, 9 << 20);
        mc_registry_close(s.r);
        s.r = NULL;
        consistent(s.path);
    }
    /* removal: after its record, the artifact goes whoever finishes it */
    helper("removed", (const char *[]){"rm", s.path, "m", "1.6.0", NULL});
    helper("removed", (const char *[]){"rmmodel", s.path, "m", NULL});
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    assert_null(mc_registry_model(s.r, "m"));
    assert_non_null(strstr(w.last, "finished a change a dead process left half done"));
    mc_registry_close(s.r);
    s.r = NULL;
    consistent(s.path);
    /* compaction interrupted before and after its snapshot's rename */
    store_open(&s);
    push(&s, "n", "1.0.0", 1);
    mc_registry_close(s.r);
    s.r = NULL;
    helper("compact-written", (const char *[]){"compact", s.path, NULL});
    helper("compact-snapshot-renamed", (const char *[]){"compact", s.path, NULL});
    w.count = 0;
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    assert_non_null(mc_registry_model(s.r, "n"));
    assert_int_equal(w.count, 0);
    push(&s, "n", "1.1.0", 2); /* the writer finishes the compaction first */
    mc_registry_close(s.r);
    s.r = NULL;
    {
        char p[512], *j;

        snprintf(p, sizeof(p), "%s/journal", s.path);
        j = tu_read(p, NULL);
        assert_non_null(strstr(j, "\"base\":"));
        assert_null(strstr(j, "\"version\":\"1.0.0\"")); /* it is in the snapshot */
        free(j);
    }
    consistent(s.path);
    store_open(&s);
    store_free(&s);
}

static void test_kill_random(void **state)
{
    struct store s;
    char src[512], ver[32];
    unsigned seed = (unsigned)time(NULL);
    int present = 0, absent = 0;

    (void)state;
    printf("kill: seed %u\n", seed);
    srand(seed);
    store_new(&s, NULL);
    mc_registry_close(s.r);
    s.r = NULL;
    snprintf(src, sizeof(src), "%s/big", s.files);
    tu_make_file(src, 16 << 20, 9);
    for (int i = 0; i < 24; i++) {
        const struct mc_reg_version *v;
        struct tu_warnings w = {0};
        pid_t pid;
        int rc;

        snprintf(ver, sizeof(ver), "2.%d.0", i);
        pid = tu_spawn(NULL, NULL, (const char *[]){"push", s.path, "m", ver, src, "slow", NULL});
        usleep((useconds_t)(rand() % 60000));
        kill(pid, SIGKILL);
        tu_wait(pid);
        assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
        rc = mc_registry_resolve(s.r, "m", ver, &v);
        if (rc == 0) {
            present++;
            assert_int_equal(v->size, 16 << 20);
        } else {
            absent++;
            assert_int_equal(rc, MC_ENOENT);
        }
        mc_registry_close(s.r);
        s.r = NULL;
        consistent(s.path);
    }
    printf("kill: %d pushes killed before their commit, %d after\n", absent, present);
    store_open(&s);
    store_free(&s);
}

static void test_concurrent_pushes(void **state)
{
    struct store s;
    char src[512], out[2][512];
    pid_t pid[2];
    uint64_t *gens = calloc(401, sizeof(*gens));
    size_t n = 0;
    const struct mc_reg_model *m;

    (void)state;
    store_new(&s, NULL);
    snprintf(src, sizeof(src), "%s/small", s.files);
    tu_make_file(src, 4096, 3);
    for (int k = 0; k < 2; k++) {
        snprintf(out[k], sizeof(out[k]), "%s/gens%d", s.dir, k);
        pid[k] =
            tu_spawn(NULL, out[k],
                     (const char *[]){"pushmany", s.path, k ? "two" : "one", "200", src, NULL});
    }
    for (int k = 0; k < 2; k++) {
        int st = tu_wait(pid[k]);
        char *txt, *line, *save;

        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
            fail_msg("pusher %d: status %#x", k, st);
        txt = tu_read(out[k], NULL);
        for (line = strtok_r(txt, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
            gens[n++] = strtoull(line, NULL, 10);
        free(txt);
    }
    assert_int_equal(n, 400);
    /* each push got its own generation: 1..400 */
    for (size_t i = 0; i < n; i++)
        for (size_t k = i + 1; k < n; k++)
            if (gens[i] == gens[k])
                fail_msg("generation %llu given twice", (unsigned long long)gens[i]);
    ok(mc_registry_refresh(s.r, NULL));
    assert_int_equal(mc_registry_generation(s.r), 400);
    m = mc_registry_model(s.r, "one");
    assert_int_equal(m ? m->nversions : 0, 200);
    m = mc_registry_model(s.r, "two");
    assert_int_equal(m ? m->nversions : 0, 200);
    mc_registry_close(s.r);
    s.r = NULL;
    consistent(s.path);
    store_open(&s);
    free(gens);
    store_free(&s);
}

/* ---- a full disk ------------------------------------------------------ */

static char fulldisk_dir[512];

static void test_full_disk(void **state)
{
    struct store s = {0};
    char src[512], fill_path[512], *before, *after;
    struct tu_warnings w = {0};
    int rc;

    (void)state;
    s.dir = strdup(fulldisk_dir);
    if (asprintf(&s.path, "%s/store", s.dir) < 0)
        abort();
    s.files = tu_tempdir(NULL); /* sources live on a real disk */
    store_open(&s);
    push(&s, "m", "1.0.0", 100 << 10);
    ok(mc_registry_alias_set(s.r, "m", "prod", "1.0.0", NULL));
    before = tu_dump(s.r);
    /* an artifact bigger than the disk: refused before or during the copy */
    snprintf(src, sizeof(src), "%s/big", s.files);
    tu_make_file(src, 3 << 20, 1);
    rc = mc_registry_push(s.r, "m", "2.0.0", src, NULL, NULL);
    assert_int_equal(rc, MC_ENOSPC);
    assert_msg("free some space");
    printf("full disk, big push: %s\n", mc_last_error());
    after = tu_dump(s.r);
    assert_string_equal(before, after);
    free(after);
    /* fill the disk to the last byte: a journal append fails cleanly */
    snprintf(fill_path, sizeof(fill_path), "%s/filler", s.dir);
    {
        int fd = open(fill_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        char buf[4096] = {0};

        while (write(fd, buf, sizeof(buf)) > 0)
            ;
        while (write(fd, buf, 1) > 0)
            ;
        close(fd);
    }
    for (int i = 0; i < 50; i++) {
        rc = mc_registry_set_flags(s.r, "m", "1.0.0", i % 2, -1, NULL);
        if (rc == MC_ENOSPC)
            break;
        ok(rc);
    }
    assert_int_equal(rc, MC_ENOSPC);
    printf("full disk, journal append: %s\n", mc_last_error());
    assert_msg("is full");
    rc = mc_registry_push(s.r, "m", "2.0.0", src, NULL, NULL);
    assert_int_equal(rc, MC_ENOSPC);
    mc_registry_close(s.r);
    /* the store still opens, and holds exactly what was acknowledged */
    assert_int_equal(tu_open(s.path, 0, &w, &s.r), 0);
    assert_int_equal(w.count, 0);
    assert_non_null(mc_registry_model(s.r, "m"));
    assert_int_equal(mc_registry_model(s.r, "m")->nversions, 1);
    unlink(fill_path);
    ok(mc_registry_alias_remove(s.r, "m", "prod", NULL));
    mc_registry_close(s.r);
    s.r = NULL;
    consistent(s.path);
    store_open(&s);
    free(before);
    mc_registry_close(s.r);
    tu_rm_rf(s.files);
    tu_rm_rf(s.path);
    free(s.dir);
    free(s.path);
    free(s.files);
}

/* A private 2 MiB tmpfs, or a reason why not. */
static const char *mount_small_tmpfs(void)
{
    char *d = tu_tempdir(NULL);

    snprintf(fulldisk_dir, sizeof(fulldisk_dir), "%s", d);
    free(d);
    if (unshare(CLONE_NEWNS) != 0)
        return "unshare(CLONE_NEWNS) was refused (not root, or in a restricted container)";
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0)
        return "making / private in the new mount namespace was refused";
    if (mount("tmpfs", fulldisk_dir, "tmpfs", 0, "size=2m") != 0)
        return "mounting a tmpfs was refused";
    return NULL;
}

/* ---- scale ------------------------------------------------------------ */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/*
 * Open path `runs` times through the fast reader and `runs` times through
 * jansson alone (the replay as it was), alternately so that both see the
 * same machine; the medians in ms. Each open is checked.
 */
static void time_replays(const char *path, int runs, double *fast_ms, double *jansson_ms)
{
    double t[2][16];

    assert_true(runs <= 16);
    for (int i = 0; i < runs; i++) {
        for (int j = 0; j < 2; j++) {
            struct tu_warnings w = {0};
            struct mc_registry *r;
            double t0;

            mc_jline_jansson_only = j == 1;
            t0 = now_s();
            ok(tu_open(path, 0, &w, &r));
            t[j][i] = (now_s() - t0) * 1e3;
            mc_jline_jansson_only = false;
            assert_int_equal(mc_registry_model_count(r), 10000);
            assert_int_equal(mc_registry_generation(r), 40000);
            mc_registry_close(r);
        }
    }
    qsort(t[0], (size_t)runs, sizeof(double), cmp_double);
    qsort(t[1], (size_t)runs, sizeof(double), cmp_double);
    *fast_ms = t[0][runs / 2];
    *jansson_ms = t[1][runs / 2];
}

static void test_scale(void **state)
{
    struct store s = {0};
    struct mc_registry *r;
    struct tu_warnings w = {0};
    uint64_t snap, journal;
    const struct mc_reg_version *v;
    double t0, t_synth, fast[2], slow[2];
    const char *runs_env = getenv("MCACHE_SCALE_RUNS");
    int runs = runs_env && atoi(runs_env) > 0 && atoi(runs_env) <= 16 ? atoi(runs_env) : 5;

    (void)state;
    s.dir = tu_tempdir(NULL);
    if (asprintf(&s.path, "%s/store", s.dir) < 0)
        abort();
    t0 = now_s();
    ok(synth_registry(s.path, 10000, 3));
    t_synth = now_s() - t0;
    ok(tu_open(s.path, 0, &w, &r));
    assert_int_equal(mc_registry_model_count(r), 10000);
    assert_int_equal(mc_registry_generation(r), 40000);
    ok(mc_registry_resolve(r, "team10/model-000010", "production", &v));
    assert_string_equal(v->version, "1.2.0");
    ok(mc_registry_resolve(r, "model-009999", "^1.1", &v));
    mc_registry_sizes(r, NULL, &journal);
    mc_registry_close(r);
    time_replays(s.path, runs, &fast[0], &slow[0]);
    ok(tu_open(s.path, 0, &w, &r));
    ok(mc_registry_compact(r));
    mc_registry_sizes(r, &snap, NULL);
    mc_registry_close(r);
    time_replays(s.path, runs, &fast[1], &slow[1]);
    ok(tu_open(s.path, 0, &w, &r));
    assert_int_equal(mc_registry_model_count(r), 10000);
    {
        uint64_t j2;

        mc_registry_sizes(r, NULL, &j2);
        printf("scale: 10,000 models x 3 versions (+1 alias each): synthesized in %.0f ms\n",
               t_synth * 1e3);
        printf("scale: replay (open), median of %d, alternating with jansson alone:\n", runs);
        printf("scale:   journal  (%.1f MB): %.0f ms; jansson alone %.0f ms (%.2fx)\n",
               (double)journal / 1e6, fast[0], slow[0], fast[0] / slow[0]);
        printf("scale:   snapshot (%.1f MB): %.0f ms; jansson alone %.0f ms (%.2fx)\n",
               (double)snap / 1e6, fast[1], slow[1], fast[1] / slow[1]);
        printf("scale: journal/snapshot after compaction: %llu / %llu bytes (%.6f)\n",
               (unsigned long long)j2, (unsigned long long)snap, (double)j2 / (double)snap);
    }
    mc_registry_close(r);
    tu_rm_rf(s.dir);
    free(s.dir);
    free(s.path);
}

int main(int argc, char **argv)
{
    const char *group = argc > 1 ? argv[1] : "unit";
    const struct CMUnitTest unit[] = {
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_line_format),
        cmocka_unit_test(test_truncate_every_byte),
        cmocka_unit_test(test_flip_bytes),
        cmocka_unit_test(test_formats_and_gaps),
        cmocka_unit_test(test_format1_store),
        cmocka_unit_test(test_gc_record_whole_or_nothing),
        cmocka_unit_test(test_rm_moves_whole_or_nothing),
        cmocka_unit_test(test_torn_tail_readers),
        cmocka_unit_test(test_compaction),
        cmocka_unit_test(test_read_boundary),
    };
    const struct CMUnitTest crash[] = {
        cmocka_unit_test(test_crash_points),
        cmocka_unit_test(test_kill_random),
    };
    const struct CMUnitTest concurrency[] = {cmocka_unit_test(test_concurrent_pushes)};
    const struct CMUnitTest fulldisk[] = {cmocka_unit_test(test_full_disk)};
    const struct CMUnitTest scale[] = {cmocka_unit_test(test_scale)};

    setvbuf(stdout, NULL, _IONBF, 0);
    MC_TEST_FILTER_FROM_ENV();
    if (!strcmp(group, "unit"))
        return cmocka_run_group_tests_name("manifest", unit, NULL, NULL);
    if (!strcmp(group, "crash"))
        return cmocka_run_group_tests_name("crash", crash, NULL, NULL);
    if (!strcmp(group, "concurrency"))
        return cmocka_run_group_tests_name("concurrency", concurrency, NULL, NULL);
    if (!strcmp(group, "scale"))
        return cmocka_run_group_tests_name("scale", scale, NULL, NULL);
    if (!strcmp(group, "fulldisk")) {
        const char *why = mount_small_tmpfs();
        int rc;

        if (why) {
            printf("SKIP: the full-disk test needs a small tmpfs: %s\n", why);
            rmdir(fulldisk_dir);
            return 77;
        }
        rc = cmocka_run_group_tests_name("fulldisk", fulldisk, NULL, NULL);
        umount2(fulldisk_dir, MNT_DETACH);
        rmdir(fulldisk_dir);
        return rc;
    }
    fprintf(stderr, "usage: registry_manifest [unit|crash|concurrency|fulldisk|scale]\n");
    return 2;
}
