/*
 * sc_fleet.c - the `fleet` scenario (issue 15): the registry in PostgreSQL,
 * the artifacts in an S3-compatible object store, several hosts, against
 * what the object store itself does on this machine, in one run.
 *
 * The bench starts neither server: it takes the registry's URL from
 * --registry or MCACHE_BENCH_REGISTRY (a migrated database: `mcache db
 * migrate`), the store's endpoint and keys from AWS_ENDPOINT_URL,
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION (default
 * us-east-1), and a bucket from MCACHE_BENCH_BUCKET (default mcache-bench;
 * created if missing). scripts/bench-fleet.sh starts a throwaway PostgreSQL
 * and Ceph RGW (tests/fleet/pg.sh, rgw.sh), migrates, runs this, and stops
 * both. Without them the scenario says what it needs: an error when named,
 * a note and a skip inside `all`. Everything it writes goes under a prefix
 * of its own (mcache-bench-<pid>-<time>/) and models named for it, removed
 * at the end.
 *
 *   load          a model of S bytes (512 MiB; --quick 64 MiB) pushed to
 *                 s3://; per run, in alternating order: curl with N parallel
 *                 ranged GETs of its object to /dev/null for N = 4, 8 and
 *                 mcached's own parallelism (the store's best = the fastest
 *                 N of that run), curl's single GET, and a real mcached
 *                 (MCACHE_KEEP_LOCAL=0: no node-local copy) loading the
 *                 version into its arena, from the load request to resident
 *                 (checksum verified), then evicted. Targets: the load at
 *                 least 0.9x the store's best and 1x the single stream.
 *   push          per run, fresh bytes of S: `mcache push` (the CLI, exec'd:
 *                 multipart with parallel parts, content-addressed copy,
 *                 the version registered in PostgreSQL) vs boto3's
 *                 upload_file of the same file with a multipart
 *                 TransferConfig of the same part size and concurrency (a
 *                 Python worker started once, timing the call itself).
 *                 The ratio is reported; no target.
 *   propagation   three mcached on the same registry (own stores, caches,
 *                 sockets), both versions of a small model resident in
 *                 each, a separately exec'd reader per host getting the
 *                 alias in a loop (`__worker serve`, paced 0.2 ms); M alias
 *                 moves (100; --quick 20) made by this process through the
 *                 registry library; latency from just before the move's
 *                 call (its commit lies inside it) to each reader's first
 *                 get of the new target. p50, p99 per host and over all;
 *                 target p99 <= 1 s.
 *
 * Credentials travel to curl in a 0600 config file (-K), never in argv,
 * and are printed nowhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/mcd.h"
#include "bench/model.h"
#include "common/clock.h"
#include "mcache.h"
#include "registry/registry.h"
#include "registry/s3.h"

#define HOSTS      3
#define MAX_PAR    3     /* curl parallelism values */
#define MOVE_LIMIT 10000 /* ms: a reader that has not seen a move by then is an error */

#define LOAD_SYS "mcached load into the arena (s3, verified)"
#define BEST_SYS "curl, the store's best parallel GETs"
#define ONE_SYS  "curl, single GET"
#define PUSH_SYS "mcache push (s3 multipart, postgres)"
#define BOTO_SYS "boto3 upload_file (multipart)"
#define PROP_ALL "all hosts"

/* boto3's multipart upload, timed around the call; one "PATH KEY" per line on stdin. */
static const char boto_script[] =
    "import os, sys, time\n"
    "import boto3\n"
    "from boto3.s3.transfer import TransferConfig\n"
    "from botocore.config import Config\n"
    "bucket, part, conc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])\n"
    "c = boto3.client('s3', endpoint_url=os.environ['AWS_ENDPOINT_URL'],\n"
    "                 region_name=os.environ.get('AWS_REGION') or 'us-east-1',\n"
    "                 config=Config(s3={'addressing_style': 'path'}))\n"
    "tc = TransferConfig(multipart_threshold=part, multipart_chunksize=part,\n"
    "                    max_concurrency=conc, use_threads=True)\n"
    "print('ready', flush=True)\n"
    "for line in sys.stdin:\n"
    "    path, key = line.split()\n"
    "    t0 = time.monotonic()\n"
    "    c.upload_file(path, bucket, key, Config=tc)\n"
    "    print('s=%.6f' % (time.monotonic() - t0), flush=True)\n";

struct reader {
    struct worker w;
    char buf[512];
    size_t len;
};

struct fx {
    struct bench *b;
    const char *registry, *endpoint, *region, *bucket;
    char dir[600], prefix[96], s3url[400], curlcfg[700], obj_url[1400];
    char name[64], pname[64]; /* the load/push model, the propagation model */
    char curl_bin[1024], mcache_bin[1024], py_bin[256];
    uint64_t size, part_push;
    unsigned runs, moves, par[MAX_PAR], npar, conc_push;
    struct mc_s3 *s3;
    struct mc_registry *reg;
    struct mcd d[HOSTS];
    struct reader rd[HOSTS];
    struct worker boto;
    bool boto_up;
    char m_load[96], m_push[96], m_prop[96], m_prop99[96];
    char par_sys[MAX_PAR][64];
    const char *extra[8];
};

/* ---- what the scenario needs ---- */

static const char *env(const char *name)
{
    const char *v = getenv(name);

    return v && *v ? v : NULL;
}

/* NULL if all is there, else what is missing (for the note or the error). */
static const char *missing(struct fx *x)
{
    x->registry = env("MCACHE_BENCH_REGISTRY");
    x->endpoint = env("AWS_ENDPOINT_URL");
    x->region = env("AWS_REGION") ? env("AWS_REGION") : "us-east-1";
    x->bucket = env("MCACHE_BENCH_BUCKET") ? env("MCACHE_BENCH_BUCKET") : "mcache-bench";
    if (!x->registry)
        return "a PostgreSQL registry (MCACHE_BENCH_REGISTRY=postgres://..., migrated with "
               "`mcache db migrate`)";
    if (!x->endpoint || !env("AWS_ACCESS_KEY_ID") || !env("AWS_SECRET_ACCESS_KEY"))
        return "an S3-compatible object store (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
               "AWS_SECRET_ACCESS_KEY; AWS_REGION and MCACHE_BENCH_BUCKET optional)";
    return NULL;
}

/* The CLI: $MCACHE_CLI, else the build tree's (<dir>/../tools/mcache), beside us, $PATH. */
static int cli_find(struct bench *b, char *bin, size_t len)
{
    static const char *const where[] = {"../tools/mcache", "mcache", NULL};
    int rc = find_program(b->self, "MCACHE_CLI", where, "mcache", bin, len);

    if (rc > 0)
        return bench_error("fleet: cannot find the mcache CLI (looked at $MCACHE_CLI, "
                           "../tools/mcache and mcache beside %s, and $PATH): build it or set "
                           "MCACHE_CLI",
                           b->self);
    return rc;
}

/* Does /usr/bin/python3 import boto3? (a note says how to get it if not) */
static bool boto_found(struct fx *x)
{
    const char *py = env("MCACHE_BENCH_PYTHON") ? env("MCACHE_BENCH_PYTHON") : "/usr/bin/python3";
    const char *argv[] = {py, "-c", "import boto3", NULL};
    struct worker w;

    snprintf(x->py_bin, sizeof(x->py_bin), "%s", py);
    if (access(py, X_OK) != 0 || bench_spawn(&w, py, argv, false) || worker_finish(&w)) {
        bench_note("fleet: %s cannot import boto3: the push is measured without the store's own "
                   "multipart upload beside it (apt-get install python3-boto3, or "
                   "scripts/deps.sh --fleet)",
                   py);
        return false;
    }
    return true;
}

/* ---- files ---- */

/* A curl config of the store's keys, 0600: curl reads it with -K; argv never holds a secret. */
static int curl_config(struct fx *x)
{
    int fd = open(x->curlcfg, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    const char *vals[] = {env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")};
    bool bad = false;

    for (int i = 0; i < 2; i++)
        bad = bad || strpbrk(vals[i], "\"\\\n") != NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return bench_error("fleet: creating %s: %s", x->curlcfg, strerror(errno));
    }
    if (bad) {
        fclose(f);
        return bench_error("fleet: AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY holds a quote, "
                           "backslash or newline, which curl's config cannot carry here");
    }
    fprintf(f,
            "user = \"%s:%s\"\naws-sigv4 = \"aws:amz:%s:s3\"\n"
            "header = \"x-amz-content-sha256: UNSIGNED-PAYLOAD\"\n",
            vals[0], vals[1], x->region);
    if (fclose(f) != 0)
        return bench_error("fleet: writing %s: %s", x->curlcfg, strerror(errno));
    return 0;
}

/* ---- the load: curl's GETs and mcached's ---- */

/*
 * n curl processes, each a ranged GET of its share of the object to
 * /dev/null (n == 1: one plain GET); from the first fork to the last exit.
 * Every byte must arrive (curl's size_download summed).
 */
static int curl_get(struct fx *x, unsigned n, double *secs)
{
    struct worker w[32];
    uint64_t part = (x->size + n - 1) / n, got = 0, t0;
    char range[32][48];
    int rc = 0;
    unsigned i, started = 0;

    t0 = mc_mono_ns();
    for (i = 0; i < n && !rc; i++) {
        uint64_t a = i * part, e = a + part > x->size ? x->size : a + part;
        const char *argv[] = {
            x->curl_bin,           "-sS", "--fail", "-K",       x->curlcfg, "-o", "/dev/null", "-w",
            "%{size_download}\\n", "-r",  range[i], x->obj_url, NULL};

        snprintf(range[i], sizeof(range[i]), "%" PRIu64 "-%" PRIu64, a, e - 1);
        if (n == 1) /* no -r: the whole object in one GET */
            argv[9] = x->obj_url, argv[10] = NULL;
        rc = bench_spawn(&w[i], x->curl_bin, argv, true);
        started += !rc;
    }
    for (i = 0; i < started; i++) {
        char line[64];

        if (worker_line(&w[i], line, sizeof(line)) == 0)
            got += strtoull(line, NULL, 10);
        if (worker_finish(&w[i]) && !rc)
            rc = bench_error("fleet: curl's GET of %s failed (its message is above)", x->obj_url);
    }
    *secs = (double)(mc_mono_ns() - t0) / 1e9;
    if (!rc && got != x->size)
        rc = bench_error("fleet: curl received %" PRIu64 " bytes of %s in %u GETs; the object has "
                         "%" PRIu64,
                         got, x->obj_url, n, x->size);
    return rc;
}

/* mcached (host 0) loads NAME@1.0.0 from s3, from the request to resident; then evicts it. */
static int mcd_load(struct fx *x, double *secs)
{
    const char *args[] = {x->name, "1.0.0", "600000"};
    char local[1000];
    json_t *j = NULL;
    uint64_t t0 = mc_mono_ns();
    int rc = mcd_call(&x->d[0], "load", 3, args, 610000, &j);
    const char *state = j ? json_string_value(json_object_get(j, "state")) : NULL;
    struct stat st;

    *secs = (double)(mc_mono_ns() - t0) / 1e9;
    if (!rc && (mcd_json_int(j, NULL, "already") == 1 || !state || strcmp(state, "resident")))
        rc = bench_error("fleet: mcached answered the load of %s@1.0.0 without a load from the "
                         "store (already resident, or not resident)",
                         x->name);
    json_decref(j);
    snprintf(local, sizeof(local), "%s/models/%s/1.0.0/artifact", x->d[0].store, x->name);
    if (!rc && stat(local, &st) == 0)
        rc = bench_error("fleet: mcached kept a node-local copy at %s with MCACHE_KEEP_LOCAL=0: "
                         "the next load would not come from the store",
                         local);
    if (!rc)
        rc = mcd_call(&x->d[0], "evict", 2, args, 60000, NULL);
    return rc ? -1 : 0;
}

static int load_run(struct fx *x, unsigned run)
{
    unsigned nsys = x->npar + 2;
    double v, best = 0;

    for (unsigned i = 0; i < nsys; i++) {
        unsigned k = run % 2 ? nsys - 1 - i : i; /* alternate the order run by run */

        if (k < x->npar) {
            bench_progress("fleet: run %u/%u, curl %u parallel GETs", run + 1, x->runs, x->par[k]);
            if (curl_get(x, x->par[k], &v))
                return -1;
            bench_add(x->b, x->par_sys[k], x->m_load, "MiB/s", (double)x->size / MiB / v);
            best = (double)x->size / MiB / v > best ? (double)x->size / MiB / v : best;
        } else if (k == x->npar) {
            bench_progress("fleet: run %u/%u, curl single GET", run + 1, x->runs);
            if (curl_get(x, 1, &v))
                return -1;
            bench_add(x->b, ONE_SYS, x->m_load, "MiB/s", (double)x->size / MiB / v);
        } else {
            bench_progress("fleet: run %u/%u, mcached loads from s3", run + 1, x->runs);
            if (mcd_load(x, &v))
                return -1;
            bench_add(x->b, LOAD_SYS, x->m_load, "MiB/s", (double)x->size / MiB / v);
        }
    }
    bench_add(x->b, BEST_SYS, x->m_load, "MiB/s", best);
    return 0;
}

/* The version's object (content-addressed): PREFIX/versions/NAME/VERSION names it. */
static int object_url(struct fx *x)
{
    char key[400], *body = NULL;
    size_t n = 0;

    snprintf(key, sizeof(key), "%sversions/%s/1.0.0", x->prefix, x->name);
    if (mc_s3_get(x->s3, key, &body, &n))
        return bench_error("fleet: reading %s from the bucket %s: %s", key, x->bucket,
                           mc_last_error());
    while (n && (body[n - 1] == '\n' || body[n - 1] == ' '))
        n--;
    if (n != 41 || strncmp(body, "xxh3-128:", 9)) {
        free(body);
        return bench_error("fleet: %s does not name an object (\"xxh3-128:<hex>\")", key);
    }
    snprintf(x->obj_url, sizeof(x->obj_url), "%s%s/%s/%sxxh3-128/%.32s", x->endpoint,
             x->endpoint[strlen(x->endpoint) - 1] == '/' ? "" : "", x->bucket, x->prefix, body + 9);
    free(body);
    return 0;
}

/* ---- the push ---- */

static int cli_push(struct fx *x, const char *file, unsigned run, double *secs)
{
    char store[700], version[32];
    /* the registry through MCACHE_REGISTRY (set by run_fleet), never on a command line: its
     * URL may carry a password */
    const char *argv[] = {x->mcache_bin, "--artifacts", x->s3url, "--store", store, "push",
                          x->name,       version,       file,     NULL};
    struct worker w;
    uint64_t t0;
    int rc;

    snprintf(store, sizeof(store), "%s/cli-store", x->dir);
    snprintf(version, sizeof(version), "2.0.%u", run);
    t0 = mc_mono_ns();
    rc = bench_spawn(&w, x->mcache_bin, argv, false) || worker_finish(&w);
    *secs = (double)(mc_mono_ns() - t0) / 1e9;
    return rc ? bench_error("fleet: `mcache push %s %s` to %s failed (its message is above)",
                            x->name, version, x->s3url)
              : 0;
}

static int boto_start(struct fx *x)
{
    char part[32], conc[16], line[64];
    const char *argv[] = {x->py_bin, "-c", boto_script, x->bucket, part, conc, NULL};

    snprintf(part, sizeof(part), "%" PRIu64, x->part_push);
    snprintf(conc, sizeof(conc), "%u", x->conc_push);
    if (bench_spawn(&x->boto, x->py_bin, argv, true))
        return -1;
    if (worker_line(&x->boto, line, sizeof(line)) || strcmp(line, "ready")) {
        worker_kill(&x->boto);
        return bench_error("fleet: the boto3 uploader did not start (its message is above)");
    }
    x->boto_up = true;
    return 0;
}

static int boto_push(struct fx *x, const char *file, unsigned run, double *secs)
{
    char key[200], line[64], k2[200];

    snprintf(key, sizeof(key), "%sboto3/%u", x->prefix, run);
    if (worker_send(&x->boto, "%s %s\n", file, key) || worker_line(&x->boto, line, sizeof(line)) ||
        strncmp(line, "s=", 2))
        return bench_error("fleet: boto3's upload_file of %s to %s failed (its message is above)",
                           file, key);
    *secs = strtod(line + 2, NULL);
    snprintf(k2, sizeof(k2), "%s", key);
    if (mc_s3_delete(x->s3, k2)) /* room for the next runs */
        bench_note("fleet: could not delete %s: %s", k2, mc_last_error());
    return 0;
}

static int push_run(struct fx *x, unsigned run)
{
    char file[700];
    uint64_t sum;
    double v = 0;
    int rc;

    snprintf(file, sizeof(file), "%s/push-%u", x->dir, run);
    /* Fresh bytes per run: the store is content-addressed, the same bytes would be a dedup hit. */
    if (model_file_write_at(file, ((uint64_t)run + 2) << 40 ^ (uint64_t)getpid() << 20, x->size,
                            &sum))
        return -1;
    rc = 0;
    for (int i = 0; i < 2 && !rc; i++) {
        bool cli = (i == 0) == (run % 2 == 0);

        if (!cli && !x->boto_up)
            continue;
        bench_progress("fleet: run %u/%u, %s", run + 1, x->runs, cli ? "mcache push" : "boto3");
        rc = cli ? cli_push(x, file, run, &v) : boto_push(x, file, run, &v);
        if (!rc)
            bench_add(x->b, cli ? PUSH_SYS : BOTO_SYS, x->m_push, "MiB/s",
                      (double)x->size / MiB / v);
    }
    unlink(file);
    return rc;
}

/* ---- propagation ---- */

/* A line from reader r within ms milliseconds (1: none by then, -1: it ended). */
static int reader_line(struct reader *r, char *out, size_t len, int ms)
{
    uint64_t end = mc_mono_ns() + (uint64_t)ms * 1000000ull;
    int fd = fileno(r->w.out);

    for (;;) {
        char *nl = memchr(r->buf, '\n', r->len);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t now = mc_mono_ns();
        ssize_t n;

        if (nl) {
            size_t k = (size_t)(nl - r->buf);

            snprintf(out, len, "%.*s", (int)k, r->buf);
            memmove(r->buf, nl + 1, r->len - k - 1);
            r->len -= k + 1;
            return 0;
        }
        if (now >= end)
            return 1;
        if (poll(&p, 1, (int)((end - now) / 1000000 + 1)) <= 0)
            continue;
        n = read(fd, r->buf + r->len, sizeof(r->buf) - 1 - r->len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        r->len += (size_t)n;
    }
}

static int hosts_start(struct fx *x)
{
    char tag[16], store[700];

    for (unsigned h = 0; h < HOSTS; h++) {
        snprintf(tag, sizeof(tag), "fleet%u", h);
        snprintf(store, sizeof(store), "%s/host%u", x->dir, h);
        if (mcd_init(x->b, &x->d[h], tag, store, h ? 64 * MiB : x->size + 64 * MiB, 0, x->extra) ||
            mcd_start(&x->d[h], false, NULL))
            return -1;
    }
    for (unsigned h = 0; h < HOSTS; h++)
        if (mcd_wait_ping(&x->d[h], 60000))
            return -1;
    return 0;
}

/* Both versions resident on every host, a reader per host serving the alias. */
static int readers_start(struct fx *x)
{
    /* A control connection idle for 2 minutes (the pushes) is closed by mcached: connect anew. */
    for (unsigned h = 0; h < HOSTS; h++)
        if (x->d[h].fd >= 0) {
            close(x->d[h].fd);
            x->d[h].fd = -1;
        }
    for (unsigned h = 0; h < HOSTS; h++)
        for (int v = 0; v < 2; v++) {
            const char *args[] = {x->pname, v ? "2.0.0" : "1.0.0", "60000"};

            if (mcd_call(&x->d[h], "load", 3, args, 70000, NULL))
                return bench_error("fleet: host %u could not load %s@%s", h, x->pname, args[1]);
        }
    for (unsigned h = 0; h < HOSTS; h++) {
        const char *args[] = {"serve", x->b->shm_work, x->d[h].cache, x->pname, "prod", "k",
                              "2.0.0", "1.0.0",        "-1",          "200000", NULL};
        char line[128];

        if (bench_worker(x->b, &x->rd[h].w, args))
            return -1;
        if (reader_line(&x->rd[h], line, sizeof(line), 30000) ||
            strcmp(line, "ready version=1.0.0"))
            return bench_error("fleet: host %u's reader did not start serving %s@prod at 1.0.0 "
                               "(it said \"%s\")",
                               h, x->pname, line);
    }
    return 0;
}

static int propagation(struct fx *x)
{
    char sys[HOSTS][32];
    int rc = 0;

    for (unsigned h = 0; h < HOSTS; h++)
        snprintf(sys[h], sizeof(sys[h]), "host %u", h + 1);
    for (unsigned m = 0; m < x->moves && !rc; m++) {
        const char *to = m % 2 ? "1.0.0" : "2.0.0", *want = m % 2 ? "old" : "new";
        uint64_t t0 = mc_wall_ns(), gen;

        if (m % 10 == 0)
            bench_progress("fleet: alias moves %u-%u of %u", m + 1,
                           m + 10 < x->moves ? m + 10 : x->moves, x->moves);
        if (mc_registry_alias_set(x->reg, x->pname, "prod", to, &gen))
            return bench_error("fleet: moving %s@prod to %s: %s", x->pname, to, mc_last_error());
        for (unsigned h = 0; h < HOSTS && !rc; h++) {
            char line[128];
            uint64_t at;
            int r = reader_line(&x->rd[h], line, sizeof(line), MOVE_LIMIT);

            if (r || strncmp(line, want, 3) || !line_u64(line, "at_ns", &at))
                rc = bench_error("fleet: host %u's reader did not see %s@prod move to %s within "
                                 "%d ms (%s)",
                                 h + 1, x->pname, to, MOVE_LIMIT, r ? "no answer" : line);
            else {
                double ms = at > t0 ? (double)(at - t0) / 1e6 : 0;

                bench_add(x->b, sys[h], x->m_prop, "ms", ms);
                bench_add(x->b, sys[h], x->m_prop99, "ms", ms);
                bench_add(x->b, PROP_ALL, x->m_prop, "ms", ms);
                bench_add(x->b, PROP_ALL, x->m_prop99, "ms", ms);
            }
        }
    }
    return rc;
}

/* Stop the readers: stdin closed, each says "gets=N" and exits (read, so it gets no SIGPIPE). */
static int readers_stop(struct fx *x)
{
    int rc = 0;

    for (unsigned h = 0; h < HOSTS; h++)
        if (x->rd[h].w.in) {
            fclose(x->rd[h].w.in);
            x->rd[h].w.in = NULL;
        }
    for (unsigned h = 0; h < HOSTS; h++) {
        char line[128];
        int r;

        if (x->rd[h].w.pid <= 0)
            continue;
        while ((r = reader_line(&x->rd[h], line, sizeof(line), 10000)) == 0 &&
               strncmp(line, "gets=", 5))
            ;
        if (r > 0)
            worker_kill(&x->rd[h].w);
        if ((r > 0 || worker_finish(&x->rd[h].w)) && !rc)
            rc = bench_error("fleet: host %u's reader did not end cleanly", h + 1);
    }
    return rc;
}

/* ---- setup and teardown ---- */

static int setup(struct fx *x)
{
    const struct mc_registry_opts ro = {
        .flags = MC_REGISTRY_CREATE, .registry = x->registry, .artifacts = x->s3url};
    const struct mc_push_opts cold = {.preload = false}, hot = {.preload = true};
    char store[700], file[700];
    uint64_t sum;
    int rc;

    if (mc_s3_open(x->bucket, NULL, &x->s3) || mc_s3_create_bucket(x->s3))
        return bench_error("fleet: the bucket %s at %s: %s", x->bucket, x->endpoint,
                           mc_last_error());
    snprintf(store, sizeof(store), "%s/bench-store", x->dir);
    if (mc_registry_open(store, &ro, &x->reg))
        return bench_error("fleet: opening the registry (MCACHE_BENCH_REGISTRY) with artifacts "
                           "in %s: %s",
                           x->s3url, mc_last_error());
    bench_progress("fleet: pushing %s@1.0.0 (%llu MiB) to %s", x->name,
                   (unsigned long long)(x->size / MiB), x->s3url);
    snprintf(file, sizeof(file), "%s/model", x->dir);
    rc = model_file_write_at(file, (uint64_t)getpid() << 24, x->size, &sum);
    if (!rc && mc_registry_push(x->reg, x->name, "1.0.0", file, &cold, NULL))
        rc = bench_error("fleet: pushing %s@1.0.0: %s", x->name, mc_last_error());
    unlink(file);
    for (int v = 0; v < 2 && !rc; v++) {
        rc = model_file_write_at(file, (uint64_t)getpid() << 24 ^ (9ull + (uint64_t)v) << 50, MiB,
                                 &sum);
        if (!rc && mc_registry_push(x->reg, x->pname, v ? "2.0.0" : "1.0.0", file, &hot, NULL))
            rc = bench_error("fleet: pushing %s: %s", x->pname, mc_last_error());
        unlink(file);
    }
    if (!rc && mc_registry_alias_set(x->reg, x->pname, "prod", "1.0.0", NULL))
        rc = bench_error("fleet: setting %s@prod: %s", x->pname, mc_last_error());
    return rc ? -1 : object_url(x);
}

/* Remove what the run registered: the models (force: the alias too), their objects with them. */
static void teardown(struct fx *x)
{
    if (x->reg) {
        if (mc_registry_remove_model(x->reg, x->name, true, NULL))
            bench_note("fleet: removing %s from the registry: %s", x->name, mc_last_error());
        if (mc_registry_remove_model(x->reg, x->pname, true, NULL))
            bench_note("fleet: removing %s from the registry: %s", x->pname, mc_last_error());
        mc_registry_close(x->reg);
        x->reg = NULL;
    }
    mc_s3_close(x->s3);
    x->s3 = NULL;
}

static int measure(struct fx *x)
{
    int rc = setup(x) || curl_config(x);

    if (!rc)
        rc = hosts_start(x);
    for (unsigned run = 0; run < x->runs && !rc; run++)
        rc = load_run(x, run);
    if (!rc && boto_found(x))
        rc = boto_start(x);
    for (unsigned run = 0; run < x->runs && !rc; run++)
        rc = push_run(x, run);
    if (x->boto_up)
        worker_finish(&x->boto);
    if (!rc)
        rc = readers_start(x);
    if (!rc)
        rc = propagation(x);
    if (readers_stop(x))
        rc = -1;
    for (unsigned h = 0; h < HOSTS; h++)
        if (x->d[h].pid > 0 || x->d[h].bin[0])
            mcd_drop(&x->d[h]);
    teardown(x);
    return rc ? -1 : 0;
}

static double paired(struct bench *b, const char *sys, const char *base, const char *metric)
{
    const struct bench_row *r = bench_row(b, sys, metric, "MiB/s"),
                           *q = bench_row(b, base, metric, "MiB/s");
    size_t n = r->n < q->n ? r->n : q->n;
    double v[64], m;

    n = n > 64 ? 64 : n;
    for (size_t i = 0; i < n; i++)
        v[i] = r->runs[i] / q->runs[i];
    m = n ? stat_median(v, n) : 0;
    return m;
}

static void report(struct fx *x)
{
    struct bench *b = x->b;
    char title[200], sz[32];
    double lb = bench_value(b, LOAD_SYS, x->m_load), best = bench_value(b, BEST_SYS, x->m_load),
           one = bench_value(b, ONE_SYS, x->m_load);

    bench_base_system(b, x->m_load, BEST_SYS);
    bench_base_system(b, x->m_push, BOTO_SYS);
    bench_base_value(b, NULL, "alias move", 1000, "1 s");
    fmt_bytes(x->size, sz, sizeof(sz));
    snprintf(title, sizeof(title),
             "the registry in PostgreSQL, artifacts in S3 (%u runs, %s model, %u alias moves to %u "
             "hosts)",
             x->runs, sz, x->moves, HOSTS);
    bench_print_table(b, title);
    bench_target(b, lb / best, false, 0.9,
                 "load from s3 into the arena / the store's best parallel GETs (x, medians)");
    bench_target(b, lb / one, false, 1.0,
                 "load from s3 into the arena / a single-stream GET (x, medians)");
    bench_target(b, bench_value(b, PROP_ALL, x->m_prop99), true, 1000,
                 "alias move visible to the readers of %u hosts, p99 (ms)", HOSTS);
    bench_note("fleet: run by run (each pair measured seconds apart), median over the runs: the "
               "load is %.2fx the store's best parallel GETs, %.2fx its single GET; "
               "`mcache push` is %.2fx boto3's multipart upload (%u MiB parts, %u in flight)",
               paired(b, LOAD_SYS, BEST_SYS, x->m_load), paired(b, LOAD_SYS, ONE_SYS, x->m_load),
               x->boto_up ? paired(b, PUSH_SYS, BOTO_SYS, x->m_push) : 0.0,
               (unsigned)(x->part_push / MiB), x->conc_push);
}

int sc_fleet(struct bench *b)
{
    static struct fx x; /* paths and buffers */
    const char *need, *keep = getenv("MCACHE_KEEP_LOCAL"), *reg = getenv("MCACHE_REGISTRY");
    char keep_saved[16] = "", reg_saved[4096] = "";
    char sz[32];
    int rc;

    memset(&x, 0, sizeof(x));
    x.b = b;
    if (b->o.registry)
        setenv("MCACHE_BENCH_REGISTRY", b->o.registry, 1);
    if ((need = missing(&x))) {
        if (!b->asked) {
            bench_note("fleet: skipped: it needs %s. scripts/bench-fleet.sh starts a throwaway "
                       "PostgreSQL and Ceph RGW and runs it",
                       need);
            return 0;
        }
        return bench_error("fleet: needs %s. scripts/bench-fleet.sh [--quick] starts a throwaway "
                           "PostgreSQL and Ceph RGW, runs this scenario and stops them "
                           "(docs/fleet.md)",
                           need);
    }
    if (!find_on_path("curl", x.curl_bin, sizeof(x.curl_bin))) {
        bench_note("fleet: curl is not installed: the scenario is skipped (apt-get install curl)");
        return 0;
    }
    if (cli_find(b, x.mcache_bin, sizeof(x.mcache_bin)))
        return -1;
    x.size = b->o.quick ? 64 * MiB : 512 * MiB;
    x.runs = b->o.runs;
    x.moves = b->o.quick ? 20 : 100;
    x.part_push =
        env("MCACHE_S3_PART_MB") ? (uint64_t)atol(env("MCACHE_S3_PART_MB")) * MiB : 16 * MiB;
    x.conc_push = env("MCACHE_S3_PARALLEL") ? (unsigned)atoi(env("MCACHE_S3_PARALLEL")) : 4;
    x.par[0] = 4, x.par[1] = 8;
    x.par[2] = env("MCACHE_S3_CONC") ? (unsigned)atoi(env("MCACHE_S3_CONC")) : 16;
    x.par[2] = x.par[2] < 1 ? 1 : x.par[2] > 32 ? 32 : x.par[2];
    x.npar = x.par[2] == 4 || x.par[2] == 8 ? 2 : 3;
    for (unsigned i = 0; i < x.npar; i++)
        snprintf(x.par_sys[i], sizeof(x.par_sys[i]), "curl, %u parallel ranged GETs", x.par[i]);
    snprintf(x.dir, sizeof(x.dir), "%s/fleet", b->tmp_work);
    snprintf(x.curlcfg, sizeof(x.curlcfg), "%s/curl.conf", x.dir);
    snprintf(x.prefix, sizeof(x.prefix), "mcache-bench-%d-%lld/", (int)getpid(),
             (long long)time(NULL));
    snprintf(x.s3url, sizeof(x.s3url), "s3://%s/%s", x.bucket, x.prefix);
    snprintf(x.name, sizeof(x.name), "fleet-%d", (int)getpid());
    snprintf(x.pname, sizeof(x.pname), "fleet-alias-%d", (int)getpid());
    fmt_bytes(x.size, sz, sizeof(sz));
    snprintf(x.m_load, sizeof(x.m_load), "load of %s from s3", sz);
    snprintf(x.m_push, sizeof(x.m_push), "push of %s to s3", sz);
    snprintf(x.m_prop, sizeof(x.m_prop), "alias move to a host's reader, p50");
    snprintf(x.m_prop99, sizeof(x.m_prop99), "alias move to a host's reader, p99");
    x.extra[0] = "--artifacts", x.extra[1] = x.s3url, x.extra[2] = NULL;
    if (mkdir(x.dir, 0700) != 0)
        return bench_error("fleet: creating %s: %s", x.dir, strerror(errno));
    if (fs_require(x.dir, 2 * x.size + 64 * MiB, "the fleet scenario (a model and a push)") ||
        fs_require(b->shm_work, x.size + 4 * 64 * MiB, "the fleet scenario (4 arenas)"))
        return -1;
    /* Rows in this order. */
    bench_row(b, LOAD_SYS, x.m_load, "MiB/s");
    bench_row(b, BEST_SYS, x.m_load, "MiB/s");
    for (unsigned i = 0; i < x.npar; i++)
        bench_row(b, x.par_sys[i], x.m_load, "MiB/s");
    bench_row(b, ONE_SYS, x.m_load, "MiB/s");
    bench_row(b, PUSH_SYS, x.m_push, "MiB/s");
    bench_row(b, BOTO_SYS, x.m_push, "MiB/s");
    for (unsigned h = 0; h <= HOSTS; h++) {
        char s[32];

        snprintf(s, sizeof(s), "host %u", h + 1);
        bench_row(b, h < HOSTS ? s : PROP_ALL, x.m_prop, "ms")->pctl = 50;
        bench_row(b, h < HOSTS ? s : PROP_ALL, x.m_prop99, "ms")->pctl = 99;
    }
    /* No node-local copy: every load comes from the object store. */
    if (keep)
        snprintf(keep_saved, sizeof(keep_saved), "%s", keep);
    setenv("MCACHE_KEEP_LOCAL", "0", 1);
    /* The children (mcache, mcached) take the registry from the environment: a URL with a
     * password stays out of /proc/PID/cmdline. */
    if (reg)
        snprintf(reg_saved, sizeof(reg_saved), "%s", reg);
    setenv("MCACHE_REGISTRY", x.registry, 1);
    rc = measure(&x);
    if (keep)
        setenv("MCACHE_KEEP_LOCAL", keep_saved, 1);
    else
        unsetenv("MCACHE_KEEP_LOCAL");
    if (reg)
        setenv("MCACHE_REGISTRY", reg_saved, 1);
    else
        unsetenv("MCACHE_REGISTRY");
    rm_tree(x.dir);
    if (rc)
        return -1;
    report(&x);
    return 0;
}
