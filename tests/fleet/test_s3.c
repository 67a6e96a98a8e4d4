/*
 * test_s3.c - the S3 client (registry/s3.c) and the s3 artifact store
 * (registry/artifacts_s3.c) against a real Ceph RADOS Gateway, started by
 * tests/fleet/rgw.sh (ctest runs "rgw.sh run test_s3"; rgw.sh exits 77 when
 * the ceph packages are absent). Each case says what it shows.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "registry/registry.h"
#include "registry/s3.h"

static int failures;
static pid_t restarted_gateway = -1; /* ours to kill at the end */
static char bucket[64];
static char tmpdir[256];

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: FAILED: %s (last error: %s)\n", __FILE__, __LINE__, #cond,     \
                    mc_last_error());                                                              \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)
#define OK(expr) CHECK((expr) == 0)

static void fill(void *buf, size_t n, unsigned seed)
{
    uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
    unsigned char *p = buf;

    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

static struct mc_s3 *client(void)
{
    struct mc_s3 *s = NULL;

    if (mc_s3_open(bucket, NULL, &s) != 0) {
        fprintf(stderr, "mc_s3_open: %s\n", mc_last_error());
        exit(1);
    }
    return s;
}

static int count_fn(void *arg, const char *key, uint64_t size, const char *mod)
{
    (void)key, (void)size, (void)mod;
    (*(size_t *)arg)++;
    return 0;
}

static size_t count(struct mc_s3 *s, const char *prefix)
{
    size_t n = 0;

    CHECK(mc_s3_list(s, prefix, count_fn, &n) == 0);
    return n;
}

static int count_up(void *arg, const char *key, const char *id, const char *init)
{
    (void)key, (void)id, (void)init;
    (*(size_t *)arg)++;
    return 0;
}

static size_t uploads(struct mc_s3 *s, const char *prefix)
{
    size_t n = 0;

    CHECK(mc_s3_list_uploads(s, prefix, count_up, &n) == 0);
    return n;
}

/* PUT, HEAD, GET and DELETE of a small object; a missing one is MC_ENOENT. */
static void put_head_get_delete(void)
{
    struct mc_s3 *s = client();
    uint64_t size = 0;
    char *body = NULL;
    size_t n = 0;

    OK(mc_s3_put(s, "small/hello.txt", "hello", 5));
    OK(mc_s3_head(s, "small/hello.txt", &size));
    CHECK(size == 5);
    OK(mc_s3_get(s, "small/hello.txt", &body, &n));
    CHECK(n == 5 && body && !memcmp(body, "hello", 5));
    free(body);
    CHECK(count(s, "small/") == 1);
    OK(mc_s3_delete(s, "small/hello.txt"));
    CHECK(mc_s3_head(s, "small/hello.txt", &size) == MC_ENOENT);
    CHECK(strstr(mc_last_error(), "small/hello.txt") && strstr(mc_last_error(), "404"));
    mc_s3_close(s);
}

/* Parallel ranged GETs land each range in its place in the caller's buffer. */
static void ranged_reads(void)
{
    struct mc_s3 *s = client();
    size_t n = (3u << 20) + 123;
    char *src = malloc(n), *dst = malloc(n);

    fill(src, n, 1);
    OK(mc_s3_put(s, "ranged/obj", src, n));
    memset(dst, 0, n);
    OK(mc_s3_read(s, "ranged/obj", 1000, dst, 2u << 20, 256u << 10, 4));
    CHECK(!memcmp(dst, src + 1000, 2u << 20));
    memset(dst, 0, n);
    OK(mc_s3_read(s, "ranged/obj", 0, dst, n, 1u << 20, 3));
    CHECK(!memcmp(dst, src, n));
    /* past the end: a clear error, not a short buffer passed as whole */
    CHECK(mc_s3_read(s, "ranged/obj", n - 10, dst, 100, 0, 0) != 0);
    mc_s3_delete(s, "ranged/obj");
    free(src);
    free(dst);
    mc_s3_close(s);
}

/* A reader over a buffer, in odd-sized pieces. */
struct mem {
    const char *p;
    size_t left;
};

static long mem_read(void *arg, void *buf, size_t cap)
{
    struct mem *m = arg;
    size_t k = cap < 333333 ? cap : 333333;

    if (k > m->left)
        k = m->left;
    memcpy(buf, m->p, k);
    m->p += k;
    m->left -= k;
    return (long)k;
}

/* A multipart upload in parallel parts, read back whole and checked by checksum. */
static void multipart(void)
{
    struct mc_s3 *s = client();
    size_t n = (23u << 20) + 4567, step = (1u << 20) + 7;
    char *src = malloc(n), *dst = malloc(n);
    struct mc_s3_upload *u = NULL;
    uint64_t size = 0;

    fill(src, n, 2);
    OK(mc_s3_upload_begin(s, "mp/big", 5u << 20, 4, &u));
    for (size_t off = 0; u && off < n; off += step)
        OK(mc_s3_upload_write(u, src + off, off + step > n ? n - off : step));
    OK(mc_s3_upload_complete(u));
    OK(mc_s3_head(s, "mp/big", &size));
    CHECK(size == n);
    OK(mc_s3_read(s, "mp/big", 0, dst, n, 4u << 20, 6));
    CHECK(XXH3_128bits(dst, n).low64 == XXH3_128bits(src, n).low64 &&
          XXH3_128bits(dst, n).high64 == XXH3_128bits(src, n).high64);
    CHECK(uploads(s, "mp/") == 0);
    /* the same from a reader callback */
    struct mem m = {src, n};

    OK(mc_s3_upload_from(s, "mp/fromreader", 6u << 20, 3, mem_read, &m));
    memset(dst, 0, n);
    OK(mc_s3_read(s, "mp/fromreader", 0, dst, n, 0, 0));
    CHECK(!memcmp(dst, src, n));
    mc_s3_delete(s, "mp/fromreader");
    /* an aborted upload leaves nothing */
    OK(mc_s3_upload_begin(s, "mp/aborted", 5u << 20, 2, &u));
    OK(mc_s3_upload_write(u, src, 11u << 20));
    mc_s3_upload_abort(u);
    CHECK(uploads(s, "mp/") == 0);
    CHECK(mc_s3_head(s, "mp/aborted", NULL) == MC_ENOENT);
    mc_s3_delete(s, "mp/big");
    free(src);
    free(dst);
    mc_s3_close(s);
}

/* Kill the gateway (RGW_GATEWAY_PID, from rgw.sh); start a new one, our child. */
static pid_t restart_gateway(void)
{
    const char *gp = getenv("RGW_GATEWAY_PID"), *conf = getenv("RGW_CONF");
    pid_t old, pid;

    if (gp == NULL || conf == NULL) {
        fprintf(stderr, "  no RGW_GATEWAY_PID or RGW_CONF from rgw.sh\n");
        return -1;
    }
    old = (pid_t)atol(gp);
    CHECK(old > 1 && kill(old, SIGKILL) == 0);
    pid = fork();
    if (pid == 0) {
        /* dies with this test, whatever happens to it */
        execlp("setpriv", "setpriv", "--pdeathsig", "KILL", "radosgw", "--conf", conf, "-n",
               "client.rgw", "-f", (char *)NULL);
        _exit(127);
    }
    return pid;
}

/*
 * The gateway killed in the middle of a multipart upload and of a ranged
 * read, then started again: the failed parts and ranges are retried (with
 * pauses) and both finish whole.
 */
static void gateway_restart(void)
{
    struct mc_s3 *s = client();
    size_t n = (30u << 20) + 77;
    char *src = malloc(n), *dst = malloc(n);
    struct mc_s3_upload *u = NULL;
    pid_t gw;

    fill(src, n, 6);
    OK(mc_s3_upload_begin(s, "restart/big", 5u << 20, 2, &u));
    OK(mc_s3_upload_write(u, src, 12u << 20));
    uint64_t before = mc_s3_retries();

    gw = restart_gateway();
    CHECK(gw > 0);
    OK(mc_s3_upload_write(u, src + (12u << 20), n - (12u << 20)));
    OK(mc_s3_upload_complete(u));
    fprintf(stderr, "  %llu retries across the restart\n",
            (unsigned long long)(mc_s3_retries() - before));
    CHECK(mc_s3_retries() > before);
    OK(mc_s3_read(s, "restart/big", 0, dst, n, 4u << 20, 4));
    CHECK(!memcmp(dst, src, n));
    /* and a read across another restart (this one's gateway is ours to kill) */
    if (gw > 0) {
        CHECK(kill(gw, SIGKILL) == 0);
        waitpid(gw, NULL, 0);
        gw = fork();
        if (gw == 0) {
            execlp("setpriv", "setpriv", "--pdeathsig", "KILL", "radosgw", "--conf",
                   getenv("RGW_CONF"), "-n", "client.rgw", "-f", (char *)NULL);
            _exit(127);
        }
        memset(dst, 0, n);
        before = mc_s3_retries();
        OK(mc_s3_read(s, "restart/big", 0, dst, n, 4u << 20, 4));
        CHECK(!memcmp(dst, src, n));
        fprintf(stderr, "  %llu retries of ranges across the restart\n",
                (unsigned long long)(mc_s3_retries() - before));
        CHECK(mc_s3_retries() > before);
    }
    /* the rest of the tests use this gateway; rgw.sh's stop kills only the first */
    restarted_gateway = gw;
    free(src);
    free(dst);
    mc_s3_close(s);
}

/* A wrong secret: 403 with S3's code and the bucket/key named, the secret never. */
static void wrong_secret(void)
{
    char *good = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    struct mc_s3 *s;

    setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-xyzzy", 1);
    s = client();
    CHECK(mc_s3_put(s, "denied/key", "x", 1) == MC_EPERM);
    fprintf(stderr, "  (the error: %s)\n", mc_last_error());
    CHECK(strstr(mc_last_error(), "403") != NULL);
    CHECK(strstr(mc_last_error(), "SignatureDoesNotMatch") != NULL);
    CHECK(strstr(mc_last_error(), "denied/key") != NULL);
    CHECK(strstr(mc_last_error(), bucket) != NULL);
    CHECK(strstr(mc_last_error(), "xyzzy") == NULL);
    mc_s3_close(s);
    setenv("AWS_SECRET_ACCESS_KEY", good, 1);
    free(good);
}

/* mc_s3_open(creds_file) fails with MC_EPERM (or code), naming the file and hint, not the secret. */
static void creds_refused(const char *path, int code, const char *hint)
{
    struct mc_s3 *s = NULL;

    CHECK(mc_s3_open(bucket, path, &s) == code);
    CHECK(s == NULL);
    fprintf(stderr, "  (refused: %s)\n", mc_last_error());
    CHECK(strstr(mc_last_error(), path) != NULL);
    CHECK(strstr(mc_last_error(), hint) != NULL);
    CHECK(strstr(mc_last_error(), getenv("AWS_SECRET_ACCESS_KEY")) == NULL);
    CHECK(mc_s3_creds_check(path) == code);
}

/*
 * A credentials file is refused unless it is a regular file (a FIFO does not
 * block), not a symbolic link, owned by this user or root, and private to its
 * owner (0644 and 0660 are refused); a 0600 one works with the keys and the
 * endpoint in it alone.
 */
static void credentials_file(void)
{
    char path[300], other[300];
    struct mc_s3 *s = NULL;
    FILE *f;

    snprintf(path, sizeof(path), "%s/creds", tmpdir);
    f = fopen(path, "w");
    fprintf(f, "AWS_ENDPOINT_URL=%s\nAWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n",
            getenv("AWS_ENDPOINT_URL"), getenv("AWS_ACCESS_KEY_ID"),
            getenv("AWS_SECRET_ACCESS_KEY"));
    fclose(f);
    chmod(path, 0644);
    creds_refused(path, MC_EPERM, "chmod 600");
    chmod(path, 0660);
    creds_refused(path, MC_EPERM, "chmod 600");
    chmod(path, 0600);
    snprintf(other, sizeof(other), "%s/creds-link", tmpdir);
    CHECK(symlink(path, other) == 0);
    creds_refused(other, MC_EPERM, "symbolic link");
    snprintf(other, sizeof(other), "%s/creds-fifo", tmpdir);
    CHECK(mkfifo(other, 0600) == 0);
    creds_refused(other, MC_EPERM, "not a regular file"); /* and did not block in open() */
    snprintf(other, sizeof(other), "%s/creds-dir", tmpdir);
    CHECK(mkdir(other, 0700) == 0);
    creds_refused(other, MC_EPERM, "not a regular file");
    snprintf(other, sizeof(other), "%s/creds-missing", tmpdir);
    creds_refused(other, MC_ENOENT, "cannot open");
    if (geteuid() == 0) { /* a file of another user's (only root can make one) */
        snprintf(other, sizeof(other), "%s/creds-nobody", tmpdir);
        f = fopen(other, "w");
        fputs("AWS_ACCESS_KEY_ID=x\n", f);
        fclose(f);
        chmod(other, 0600);
        CHECK(chown(other, 65534, 65534) == 0);
        creds_refused(other, MC_EPERM, "belongs to uid 65534");
    }
    char *id = strdup(getenv("AWS_ACCESS_KEY_ID"));
    char *secret = strdup(getenv("AWS_SECRET_ACCESS_KEY"));
    char *endpoint = strdup(getenv("AWS_ENDPOINT_URL"));

    unsetenv("AWS_ACCESS_KEY_ID"); /* from the file only */
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("AWS_ENDPOINT_URL");
    /* F6: a file that was read but holds no AWS_...= lines (~/.aws/credentials' INI) says so */
    snprintf(other, sizeof(other), "%s/creds-ini", tmpdir);
    f = fopen(other, "w");
    fprintf(f, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", id, secret);
    fclose(f);
    chmod(other, 0600);
    CHECK(mc_s3_open(bucket, other, &s) == MC_EINVAL);
    fprintf(stderr, "  (refused: %s)\n", mc_last_error());
    CHECK(strstr(mc_last_error(), other) != NULL);
    CHECK(strstr(mc_last_error(), "was read and holds no AWS_ACCESS_KEY_ID= line nor "
                                  "AWS_SECRET_ACCESS_KEY=") != NULL);
    CHECK(strstr(mc_last_error(), "INI") != NULL);
    CHECK(strstr(mc_last_error(), secret) == NULL);
    f = fopen(other, "w");
    fprintf(f, "AWS_ACCESS_KEY_ID=%s\n", id);
    fclose(f);
    CHECK(mc_s3_open(bucket, other, &s) == MC_EINVAL);
    CHECK(strstr(mc_last_error(), "holds no AWS_SECRET_ACCESS_KEY= line") != NULL);
    CHECK(strstr(mc_last_error(), "INI") == NULL);
    OK(mc_s3_open(bucket, path, &s));
    if (s)
        OK(mc_s3_put(s, "creds/ok", "x", 1));
    mc_s3_close(s);
    setenv("AWS_ACCESS_KEY_ID", id, 1);
    setenv("AWS_SECRET_ACCESS_KEY", secret, 1);
    setenv("AWS_ENDPOINT_URL", endpoint, 1);
    free(id);
    free(secret);
    free(endpoint);
}

/* ---- the artifact store through the registry ------------------------------------ */

static char store[300];

static void write_file(const char *path, size_t n, unsigned seed)
{
    char *buf = malloc(n);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

    fill(buf, n, seed);
    CHECK(fd >= 0 && write(fd, buf, n) == (ssize_t)n);
    close(fd);
    free(buf);
}

static struct mc_registry *reg_open(void)
{
    struct mc_registry_opts o = {.flags = MC_REGISTRY_CREATE};
    struct mc_registry *r = NULL;

    if (mc_registry_open(store, &o, &r) != 0) {
        fprintf(stderr, "mc_registry_open: %s\n", mc_last_error());
        exit(1);
    }
    return r;
}

static void report_fn(void *arg, const char *msg)
{
    (void)arg;
    fprintf(stderr, "  check: %s\n", msg);
}

/* Identical pushes are stored once; an object goes only with its last version. */
static void dedup_and_gc(void)
{
    struct mc_s3 *s = client();
    struct mc_registry *r = reg_open();
    char f1[300], f2[300];
    const struct mc_reg_version *v = NULL;
    size_t problems = 99;

    snprintf(f1, sizeof(f1), "%s/a.bin", tmpdir);
    snprintf(f2, sizeof(f2), "%s/b.bin", tmpdir);
    write_file(f1, (7u << 20) + 5, 3);
    write_file(f2, 1000, 4);
    OK(mc_registry_push(r, "m", "1.0.0", f1, NULL, NULL));
    OK(mc_registry_push(r, "n", "1.0.0", f1, NULL, NULL));
    CHECK(count(s, "reg/xxh3-128/") == 1);
    OK(mc_registry_push(r, "m", "2.0.0", f2, NULL, NULL));
    CHECK(count(s, "reg/xxh3-128/") == 2);
    /* a copy in parts (UploadPartCopy), as objects over 5 GiB take: 3 parts here */
    char f3[300];

    snprintf(f3, sizeof(f3), "%s/big.bin", tmpdir);
    write_file(f3, (12u << 20) + 9, 7);
    setenv("MCACHE_S3_COPY_MAX_MB", "5", 1);
    setenv("MCACHE_S3_COPY_PART_MB", "5", 1);
    OK(mc_registry_push(r, "big", "1.0.0", f3, NULL, NULL));
    unsetenv("MCACHE_S3_COPY_MAX_MB");
    unsetenv("MCACHE_S3_COPY_PART_MB");
    CHECK(count(s, "reg/xxh3-128/") == 3);
    OK(mc_registry_resolve(r, "n", "1.0.0", &v));
    CHECK(v && v->size == (7u << 20) + 5 && !strncmp(v->checksum, "xxh3-128:", 9));
    OK(mc_registry_check(store, MC_CHECK_ARTIFACTS | MC_CHECK_CHECKSUMS, report_fn, NULL,
                         &problems));
    CHECK(problems == 0);
    OK(mc_registry_remove_version(r, "big", "1.0.0", false, NULL));
    /* m@1.0.0 goes, n@1.0.0 still refers to the same bytes: they stay */
    OK(mc_registry_remove_version(r, "m", "1.0.0", false, NULL));
    CHECK(count(s, "reg/xxh3-128/") == 2);
    OK(mc_registry_remove_version(r, "n", "1.0.0", false, NULL));
    CHECK(count(s, "reg/xxh3-128/") == 1);
    CHECK(count(s, "reg/tmp/") == 0);
    CHECK(uploads(s, "reg/") == 0);
    mc_registry_close(r);
    mc_s3_close(s);
}

/*
 * A push killed at each step (its multipart upload begun; staged whole;
 * copied under its checksum but not registered) leaves nothing registered,
 * and the next writer's sweep removes what it left.
 */
static void killed_push(const char *point, size_t objects_after)
{
    struct mc_s3 *s = client();
    char f[300];
    const struct mc_reg_version *v = NULL;
    pid_t pid;
    int st = 0;

    fprintf(stderr, "  a push killed at %s\n", point);
    snprintf(f, sizeof(f), "%s/c.bin", tmpdir);
    write_file(f, (11u << 20) + 3, 5);
    pid = fork();
    if (pid == 0) {
        struct mc_registry *r = reg_open();

        setenv("MCACHE_CRASH_AT", point, 1);
        mc_registry_push(r, "k", "3.0.0", f, NULL, NULL);
        _exit(3); /* not reached: the crash point kills it */
    }
    CHECK(waitpid(pid, &st, 0) == pid && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    CHECK(count(s, "reg/tmp/") + uploads(s, "reg/tmp/") > 0);
    struct mc_registry *r = reg_open(); /* the next writer: recovers and sweeps */

    CHECK(mc_registry_resolve(r, "k", "3.0.0", &v) == MC_ENOENT);
    CHECK(count(s, "reg/tmp/") == 0);
    CHECK(uploads(s, "reg/tmp/") == 0);
    CHECK(count(s, "reg/xxh3-128/") == objects_after);
    CHECK(count(s, "reg/versions/k/") == 0);
    mc_registry_close(r);
    mc_s3_close(s);
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

/*
 * A push killed between place (its bytes copied to xxh3-128/<hex>, outside
 * the writer lock) and commit leaves an object nothing refers to: fsck does
 * not count it and gc keeps it while it is younger than MCACHE_S3_STALE_S
 * (a live push's would look the same); once older, gc deletes it.
 */
static void placed_orphan_gc(void)
{
    struct mc_s3 *s = client();
    struct mc_registry *r = reg_open();
    struct mc_gc_opts o = {.keep = 100};
    size_t problems = 99, n = 0;
    double t0;

    CHECK(count(s, "reg/xxh3-128/") == 2); /* killed_push("placed", 2) left one */
    OK(mc_registry_check(store, MC_CHECK_ARTIFACTS, report_fn, NULL, &problems));
    CHECK(problems == 0);
    OK(mc_registry_gc(r, &o, &n, NULL));
    CHECK(count(s, "reg/xxh3-128/") == 2);
    setenv("MCACHE_S3_STALE_S", "0", 1); /* older than 0 s: from the next second on */
    t0 = now_ms();
    while (count(s, "reg/xxh3-128/") == 2 && now_ms() - t0 < 30000)
        OK(mc_registry_gc(r, &o, &n, NULL));
    unsetenv("MCACHE_S3_STALE_S");
    fprintf(stderr, "  gc deleted the orphan after %.0f ms\n", now_ms() - t0);
    CHECK(count(s, "reg/xxh3-128/") == 1);
    /* what is still registered kept its bytes */
    OK(mc_registry_check(store, MC_CHECK_ARTIFACTS | MC_CHECK_CHECKSUMS, report_fn, NULL,
                         &problems));
    CHECK(problems == 0);
    mc_registry_close(r);
    mc_s3_close(s);
}

/*
 * Another writer is not held up by a push's copy (registry in PostgreSQL,
 * under pg.sh; MCACHE_TEST_PG_URL): a big push copies its object in 5 MiB
 * parts (UploadPartCopy: long); while that multipart copy to xxh3-128/ is in
 * progress, `mcache alias` on the same registry completes, and the copy is
 * still in progress after it (it used to run under the writer lock, so the
 * alias waited for it). Then the push succeeds and fsck is clean.
 */
static void place_outside_lock(void)
{
    const char *bin = getenv("MCACHE_BIN"), *url = getenv("MCACHE_TEST_PG_URL");
    struct mc_s3 *s = client();
    char cmd[4096], big[300], small[300], base[1024], out[300];
    size_t size = (size_t)400 << 20;
    pid_t push;
    int st = -1;
    double t0, t_copy, t_alias;

    if (bin == NULL || url == NULL) {
        fprintf(stderr, "  skipped: needs MCACHE_BIN and MCACHE_TEST_PG_URL (pg.sh run)\n");
        mc_s3_close(s);
        return;
    }
    snprintf(big, sizeof(big), "%s/big.bin", tmpdir);
    snprintf(small, sizeof(small), "%s/small.bin", tmpdir);
    snprintf(out, sizeof(out), "%s/push.out", tmpdir);
    write_file(big, size, 11);
    write_file(small, 4096, 12);
    snprintf(base, sizeof(base), "%s -q --store %s/pgstore --registry '%s' --artifacts s3://%s/pl",
             bin, tmpdir, url, bucket);
    snprintf(cmd, sizeof(cmd), "%s --registry '%s' db migrate >/dev/null", bin, url);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof(cmd), "%s init && %s push a 1.0.0 %s", base, base, small);
    CHECK(system(cmd) == 0);
    snprintf(cmd, sizeof(cmd),
             "MCACHE_S3_COPY_MAX_MB=5 MCACHE_S3_COPY_PART_MB=5 exec %s push big 1.0.0 %s >%s 2>&1",
             base, big, out);
    t0 = now_ms();
    push = fork();
    if (push == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    /* the copy has begun: its multipart upload to the content address is listed */
    while (uploads(s, "pl/xxh3-128/") == 0 && waitpid(push, &st, WNOHANG) == 0 &&
           now_ms() - t0 < 180000)
        ;
    t_copy = now_ms();
    CHECK(uploads(s, "pl/xxh3-128/") == 1);
    snprintf(cmd, sizeof(cmd), "%s alias a prod 1.0.0", base);
    CHECK(system(cmd) == 0);
    t_alias = now_ms();
    /* done while the copy still runs, the push not yet registered */
    CHECK(uploads(s, "pl/xxh3-128/") == 1);
    CHECK(waitpid(push, &st, WNOHANG) == 0);
    CHECK(count(s, "pl/versions/big/") == 0);
    CHECK(waitpid(push, &st, 0) == push && WIFEXITED(st) && WEXITSTATUS(st) == 0);
    fprintf(stderr, "  upload %.0f ms; the alias took %.0f ms during the copy, which took %.0f ms "
                    "more\n", t_copy - t0, t_alias - t_copy, now_ms() - t_alias);
    if (st != 0) {
        snprintf(cmd, sizeof(cmd), "cat %s >&2", out);
        CHECK(system(cmd) == 0);
    }
    CHECK(count(s, "pl/versions/big/") == 1);
    CHECK(count(s, "pl/xxh3-128/") == 2);
    CHECK(uploads(s, "pl/") == 0);
    snprintf(cmd, sizeof(cmd), "%s fsck", base);
    CHECK(system(cmd) == 0);
    mc_s3_close(s);
}

/*
 * The CLI with --artifacts s3://...: push the same file twice (one object),
 * fsck --checksums clean (the bytes read back from the object store), rm
 * keeps the object until its last version goes. Skipped when the CLI is not
 * built (MCACHE_BIN). (`mcache verify` still opens v->path as a file.)
 */
static void cli_artifacts(void)
{
    const char *bin = getenv("MCACHE_BIN");
    struct mc_s3 *s = client();
    char cmd[2048], f[300];
    char *saved = strdup(getenv("MCACHE_ARTIFACTS"));

    if (bin == NULL || access(bin, X_OK) != 0) {
        fprintf(stderr, "  skipped: no mcache CLI at MCACHE_BIN\n");
        mc_s3_close(s);
        free(saved);
        return;
    }
    unsetenv("MCACHE_ARTIFACTS"); /* the flag alone says where */
    snprintf(f, sizeof(f), "%s/cli.bin", tmpdir);
    write_file(f, (6u << 20) + 1, 9);
#define CLI(args) \
    (snprintf(cmd, sizeof(cmd), "%s --store %s/clistore --artifacts s3://%s/cli " args, bin, \
              tmpdir, bucket, f),                                                           \
     system(cmd))
    CHECK(CLI("push cm 1.0.0 %s -q") == 0);
    CHECK(CLI("push cn 1.0.0 %s -q") == 0);
    CHECK(count(s, "cli/xxh3-128/") == 1);
    CHECK(CLI("fsck --checksums # %s") == 0);
    CHECK(CLI("rm cm@1.0.0 # %s") == 0);
    CHECK(count(s, "cli/xxh3-128/") == 1);
    CHECK(CLI("rm cn@1.0.0 # %s") == 0);
    CHECK(count(s, "cli/xxh3-128/") == 0);
#undef CLI
    setenv("MCACHE_ARTIFACTS", saved, 1);
    free(saved);
    mc_s3_close(s);
}

/*
 * F14, F4: an --artifacts value whose path curl would normalise (. and ..
 * segments: requests, DELETEs among them, would go to other keys or another
 * bucket), with an empty segment (another spelling of other keys), ?, #, %,
 * a control byte, a bucket that is no bucket name, or credentials in it, is
 * refused before anything is made: the store directory is not created, and
 * a value with credentials is never shown.
 */
static void bad_urls(void)
{
    static const struct {
        const char *url, *says;
    } bad[] = {
        {"s3://%s/../victim/p", ". or .. segment"},
        {"s3://%s/p/..", ". or .. segment"},
        {"s3://%s/./p", ". or .. segment"},
        {"s3://%s//p", "empty segment"},
        {"s3://%s/a//b", "empty segment"},
        {"s3://%s/p?x=1", "character \"?\""},
        {"s3://%s/p#x", "character \"#\""},
        {"s3://%s/p%%2e%%2e", "character \"%\""},
        {"s3://%s/p\tq", "character \"\\x09\""},
        {"s3://UPPER-%s/p", "not an S3 bucket name"},
        {"s3://ab/p%s", "not an S3 bucket name"},
        {"s3://-%s/p", "not an S3 bucket name"},
        {"s3://%s..x/p", "not an S3 bucket name"},
        {"s3://KEYIDSECRETX:SECRETINURL@%s/p", "s3:// takes no credentials"},
        {"s3://SECRETINURL@%s/p", "s3:// takes no credentials"},
        {"s3://%s:9000/p", "s3:// takes no credentials"},
    };
    char dir[300], url[300];
    struct stat st;

    snprintf(dir, sizeof(dir), "%s/badurl-store", tmpdir);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct mc_registry_opts o = {.flags = MC_REGISTRY_CREATE, .artifacts = url};
        struct mc_registry *r = NULL;
        const char *want = bad[i].says;

        snprintf(url, sizeof(url), bad[i].url, bucket);
        CHECK(mc_registry_open(dir, &o, &r) == MC_EINVAL);
        CHECK(r == NULL);
        fprintf(stderr, "  (refused: %.150s...)\n", mc_last_error());
        CHECK(strstr(mc_last_error(), want) != NULL);
        CHECK(strstr(mc_last_error(), "nothing was changed") != NULL);
        CHECK(strstr(mc_last_error(), "SECRETINURL") == NULL);
        CHECK(strstr(mc_last_error(), "KEYIDSECRETX") == NULL);
        CHECK(stat(dir, &st) != 0 && errno == ENOENT); /* nothing was created */
    }
    /* the good spellings: a trailing '/' is the same prefix; none at all is the bucket's root */
    const char *good[] = {"s3://%s/reg/", "s3://%s", "s3://%s/", "s3://%s/a.b/c-d_e/x:y"};

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        char b[64];
        const char *p;
        size_t pl;

        snprintf(url, sizeof(url), good[i], bucket);
        OK(mc_s3_url_parse(url, b, &p, &pl));
        CHECK(strcmp(b, bucket) == 0);
        CHECK(i != 0 || (pl == 3 && !strncmp(p, "reg", 3)));
        CHECK(i == 0 || i == 3 || pl == 0);
    }
}

/* F3: a bucket that does not exist is said so, with the endpoint and what to do. */
static void missing_bucket(void)
{
    struct mc_s3 *s = NULL;
    char name[96], *data = NULL;
    size_t n = 0;

    snprintf(name, sizeof(name), "%s-absent", bucket);
    OK(mc_s3_open(name, NULL, &s));
    CHECK(mc_s3_get(s, "x", &data, &n) == MC_ENOENT);
    free(data);
    fprintf(stderr, "  (refused: %s)\n", mc_last_error());
    CHECK(strstr(mc_last_error(), "the bucket") != NULL);
    CHECK(strstr(mc_last_error(), name) != NULL);
    CHECK(strstr(mc_last_error(), "does not exist at") != NULL);
    CHECK(strstr(mc_last_error(), getenv("AWS_ENDPOINT_URL")) != NULL);
    CHECK(strstr(mc_last_error(), "create it") != NULL);
    mc_s3_close(s);
}

/*
 * With the gateway dead, a change fails within seconds: its look for the
 * commit marker (under the writer lock) gives up after 5 s, retries
 * included, instead of holding the lock through them all (~7 s, and 10 s a
 * try where connections hang).
 */
static void dead_store_fails_fast(pid_t gw)
{
    struct mc_registry *r;
    double t0;
    int rc;

    CHECK(kill(gw, SIGKILL) == 0);
    waitpid(gw, NULL, 0);
    r = reg_open(); /* opens, with a warning: changes wait until the store answers */
    t0 = now_ms();
    rc = mc_registry_set_flags(r, "m", "2.0.0", 1, -1, NULL);
    fprintf(stderr, "  a change with the gateway dead failed after %.0f ms: %s\n",
            now_ms() - t0, mc_last_error());
    CHECK(rc == MC_EIO);
    CHECK(now_ms() - t0 < 6000);
    CHECK(strstr(mc_last_error(), "given 5 s") != NULL);
    mc_registry_close(r);
}

int main(int argc, char **argv)
{
    struct mc_s3 *s;
    bool place = argc > 1 && !strcmp(argv[1], "place");

    if (getenv("AWS_ENDPOINT_URL") == NULL) {
        fprintf(stderr, "test_s3: skipped: no AWS_ENDPOINT_URL (run it as tests/fleet/rgw.sh run "
                        "test_s3)\n");
        return 77;
    }
    snprintf(bucket, sizeof(bucket), "mctest-%d", (int)getpid());
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/mc-s3test.XXXXXX");
    if (mkdtemp(tmpdir) == NULL)
        return 1;
    snprintf(store, sizeof(store), "%s/store", tmpdir);
    s = client();
    if (mc_s3_create_bucket(s) != 0) {
        fprintf(stderr, "creating the bucket: %s\n", mc_last_error());
        return 1;
    }
    mc_s3_close(s);
    char url[128];

    snprintf(url, sizeof(url), "s3://%s/reg", bucket);
    setenv("MCACHE_ARTIFACTS", url, 1);

    if (place) { /* fleet_s3_place: pg.sh run rgw.sh run fleet_s3 place */
        fprintf(stderr, "place_outside_lock\n");
        place_outside_lock();
        goto out;
    }
    fprintf(stderr, "put_head_get_delete\n");
    put_head_get_delete();
    fprintf(stderr, "ranged_reads\n");
    ranged_reads();
    fprintf(stderr, "multipart\n");
    multipart();
    fprintf(stderr, "wrong_secret\n");
    wrong_secret();
    fprintf(stderr, "credentials_file\n");
    credentials_file();
    fprintf(stderr, "dedup_and_gc\n");
    dedup_and_gc();
    fprintf(stderr, "killed_push\n");
    killed_push("temp-created", 1);
    killed_push("copied", 1);
    killed_push("renamed", 1);
    killed_push("placed", 2);
    fprintf(stderr, "placed_orphan_gc\n");
    placed_orphan_gc();
    fprintf(stderr, "cli_artifacts\n");
    cli_artifacts();
    fprintf(stderr, "bad_urls\n");
    bad_urls();
    fprintf(stderr, "missing_bucket\n");
    missing_bucket();
    fprintf(stderr, "gateway_restart\n");
    gateway_restart();
    if (restarted_gateway > 0) {
        fprintf(stderr, "dead_store_fails_fast\n");
        dead_store_fails_fast(restarted_gateway);
    }

out:;
    char cmd[300];

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        failures++;
    fprintf(stderr, failures ? "test_s3: %d FAILED\n" : "test_s3: all passed\n", failures);
    return failures ? 1 : 0;
}
