/*
 * sc_torch.c - the `torch` scenario: N fresh Python worker processes each
 * need the same safetensors model as a dict of torch tensors, ready to
 * serve. The figures a PyTorch user decides by.
 *
 * The model is transformer-shaped (embeddings, per-layer attention and MLP
 * weights in fp32, norms in fp16), made with torch by bench/torch_worker.py,
 * which is also every worker. Routes, each in the same run, over the same
 * weights:
 *
 *   mcache       a real mcached serves the model (pushed to its store,
 *                loaded into its arena); the worker attaches, gets it and
 *                takes Model.torch(): tensors over the arena, zero-copy.
 *   torch.load   of the same weights saved with torch.save (private copies).
 *   mmap         the safetensors file through numpy.memmap + torch.from_numpy.
 *   read         the safetensors file read into a bytearray, tensors over it.
 *   none         python + import torch only: the floor every route stands on.
 *
 * Every route reads from memory where it can: the files are in the page
 * cache before every run (read back in if the host dropped any page), and
 * nothing is dropped on purpose. For 1, 4 and 16 workers (--quick: 1 and
 * 4) started together, each worker reports, from a start time the bench
 * takes just before its exec: import torch done, ready (the dict exists),
 * and the end of a first full pass (a sum of every tensor, so that lazy
 * mappings pay their faults). Medians and p99 over the workers; the total
 * PSS of the workers while they all hold their dicts. Each route runs once
 * with one worker as a warm-up before the measured runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/mcd.h"
#include "bench/model.h"
#include "common/clock.h"
#include "registry/registry.h"

#define MAX_WORKERS 16
#define MODEL       "bench-torch"
#define SUM_TOL     1e-4 /* relative: fp32 sums in another order differ in the last bits */

enum route { R_NONE, R_MCACHE, R_LOAD, R_MMAP, R_READ, R_N };

static const char *const route_arg[R_N] = {"none", "mcache", "torch.load", "mmap", "read"};
static const char *const route_name[R_N] = {
    "python + import torch, no weights", "mcache (attach + get + torch())",
    "torch.load (torch.save file)", "mmap (numpy.memmap + from_numpy)",
    "read() into a bytearray"};

struct torch_run {
    char py[PATH_MAX];     /* the Python with torch */
    char script[PATH_MAX + 64]; /* bench/torch_worker.py */
    char dir[600];         /* where the model is made */
    char pt[700];          /* the torch.save file */
    char st[700];          /* the safetensors file: the artifact in mcached's store */
    char store[600];
    struct mcd d;
    uint64_t size; /* the safetensors file's bytes */
    unsigned tensors;
    double sum;
    unsigned counts[3], ncounts;
    double none_pss[3]; /* total PSS of the `none` workers, per count */
};

/* What one worker reported, in ns since its exec. */
struct sample {
    uint64_t import_ns, ready_ns, pass_ns;
};

/* Run argv with its output thrown away; its exit status (or -1). */
static int run_quiet(const char *const *argv)
{
    pid_t parent = getpid(), pid;
    int st = 0;

    fflush(NULL);
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

        child_init(parent);
        dup2(null, 1);
        dup2(null, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    cleanup_add_pid(pid);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    cleanup_del_pid(pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* $MCACHE_BENCH_PYTHON, else Debian's /usr/bin/python3, else python3 on PATH. */
static bool find_python(char *py, size_t len)
{
    const char *env = getenv("MCACHE_BENCH_PYTHON");

    if (env && *env) {
        snprintf(py, len, "%s", env);
        return true;
    }
    snprintf(py, len, "/usr/bin/python3");
    return access(py, X_OK) == 0 || find_on_path("python3", py, len);
}

/*
 * torch_worker.py: $MCACHE_TORCH_WORKER, else bench/torch_worker.py in the
 * source tree above this program's build folder, else installed beside it
 * (<bindir>/../share/mcache/); out is "" if there is none.
 */
static int find_script(struct bench *b, char *out, size_t len)
{
    const char *env = getenv("MCACHE_TORCH_WORKER");
    char dir[PATH_MAX], *slash;

    if (env && *env) {
        snprintf(out, len, "%s", env);
        return access(out, R_OK) == 0
                   ? 0
                   : bench_error("$MCACHE_TORCH_WORKER is %s, which cannot be read", env);
    }
    snprintf(dir, sizeof(dir), "%s", b->self);
    for (int up = 0; up < 5 && (slash = strrchr(dir, '/')); up++) {
        *slash = '\0';
        snprintf(out, len, "%s/bench/torch_worker.py", dir);
        if (access(out, R_OK) == 0)
            return 0;
        if (up == 0) {
            snprintf(out, len, "%s/../share/mcache/torch_worker.py", dir);
            if (access(out, R_OK) == 0)
                return 0;
        }
    }
    out[0] = '\0';
    return 0;
}

/*
 * Workers import the mcache package of the source tree torch_worker.py is
 * in (its ../python), if it is in one, before any installed one.
 */
static void point_at_package(const struct torch_run *t)
{
    char dir[PATH_MAX + 64], probe[PATH_MAX + 96], path[2 * PATH_MAX], *slash;
    const char *old = getenv("PYTHONPATH");

    snprintf(dir, sizeof(dir), "%s", t->script);
    for (int up = 0; up < 2 && (slash = strrchr(dir, '/')); up++)
        *slash = '\0';
    snprintf(probe, sizeof(probe), "%s/python/mcache/__init__.py", dir);
    if (access(probe, R_OK) != 0)
        return;
    snprintf(path, sizeof(path), "%s/python%s%s", dir, old && *old ? ":" : "", old ? old : "");
    setenv("PYTHONPATH", path, 1);
}

/* Workers load the libmcache of this build, unless $MCACHE_LIB says otherwise. */
static void point_at_libmcache(struct bench *b)
{
    char lib[PATH_MAX + 32], *slash;

    if (getenv("MCACHE_LIB"))
        return;
    snprintf(lib, sizeof(lib), "%s", b->self);
    slash = strrchr(lib, '/');
    if (!slash)
        return;
    snprintf(slash, sizeof(lib) - (size_t)(slash - lib), "/../index/libmcache.so");
    if (access(lib, R_OK) == 0)
        setenv("MCACHE_LIB", lib, 1);
}

/*
 * The model size: --size, halved until there is room for torch.load's
 * private copies, mcached's arena, the .pt file in the page cache while they
 * load it and ~100 MiB per interpreter, in four fifths of what is available
 * (the rest is left to whatever else runs on the host).
 */
static uint64_t fitting_size(uint64_t size, unsigned most)
{
    char what[64];

    snprintf(what, sizeof(what), "%u torch.load copies", most);
    return size_fitting_memory("torch", what, size, most + 2, most * 100 * MiB + 512 * MiB, 80);
}

/* Make the model (both files) with torch; the line it prints gives size, count and sum. */
static int make_model(struct bench *b, struct torch_run *t, uint64_t size)
{
    char sz[32], line[256];
    const char *argv[] = {t->py, t->script, "make", t->dir, sz, NULL};
    const char *p;
    struct worker w;
    uint64_t v = 0;
    int rc;

    snprintf(t->dir, sizeof(t->dir), "%s/torch-model", b->tmp_work);
    snprintf(sz, sizeof(sz), "%" PRIu64, size);
    if (mkdir(t->dir, 0700) != 0)
        return bench_error("cannot create %s: %s", t->dir, strerror(errno));
    if (fs_require(b->o.tmp_dir, 3 * size + 64 * MiB, "the torch model's files and store copy"))
        return -1;
    bench_progress("torch: making a %s transformer-shaped model with torch",
                   fmt_bytes(size, line, sizeof(line)));
    if (bench_spawn(&w, t->py, argv, true))
        return -1;
    rc = worker_line(&w, line, sizeof(line));
    if (worker_finish(&w) || rc)
        return bench_error("torch_worker.py make %s %s failed (its message is above)", t->dir, sz);
    p = strstr(line, " sum=");
    if (!line_u64(line, "bytes", &t->size) || !line_u64(line, "tensors", &v) || !p)
        return bench_error("torch_worker.py make answered \"%s\"", line);
    t->tensors = (unsigned)v;
    t->sum = strtod(p + 5, NULL);
    snprintf(t->pt, sizeof(t->pt), "%s/model.pt", t->dir);
    return 0;
}

/*
 * Start mcached on its own store, push the safetensors file and have it
 * loaded. The routes that read the file read the store's copy (the push's);
 * the original is removed.
 */
static int serve_model(struct bench *b, struct torch_run *t)
{
    const struct mc_registry_opts ro = {0};
    const char *args[] = {MODEL, "1.0.0", "600000"};
    const struct mc_reg_version *v;
    struct mc_registry *reg = NULL;
    char src[700];
    int rc;

    snprintf(t->store, sizeof(t->store), "%s/store-torch", b->tmp_work);
    snprintf(src, sizeof(src), "%s/model.safetensors", t->dir);
    /* An arena just big enough: its committed pages are counted in mcached's PSS. */
    if (mcd_init(b, &t->d, "torch", t->store, t->size + 16 * MiB, 4 * MiB, NULL) ||
        mcd_start(&t->d, false, NULL) || mcd_wait_ping(&t->d, 300000))
        return -1;
    if (mc_registry_open(t->store, &ro, &reg))
        return bench_error("opening the store %s: %s", t->store, mc_last_error());
    rc = mc_registry_push(reg, MODEL, "1.0.0", src, NULL, NULL);
    if (rc)
        bench_error("pushing %s to %s: %s", src, t->store, mc_last_error());
    else if ((rc = mc_registry_resolve(reg, MODEL, "1.0.0", &v)))
        bench_error("%s@1.0.0 is not in %s after its push: %s", MODEL, t->store, mc_last_error());
    else
        snprintf(t->st, sizeof(t->st), "%s", v->path);
    mc_registry_close(reg);
    unlink(src);
    if (rc || mcd_call(&t->d, "load", 3, args, 610000, NULL))
        return -1;
    return 0;
}

/* Read the files back into the page cache if the host dropped any page of them. */
static int rewarm(const struct torch_run *t)
{
    const char *files[] = {t->pt, t->st};

    for (size_t i = 0; i < 2; i++)
        if (file_residency(files[i]) < 0.999 && file_warm(files[i]))
            return -1;
    return 0;
}

/* Start one worker of route r, its start time taken just before its exec. */
static int start_worker(struct bench *b, const struct torch_run *t, enum route r,
                        struct worker *w)
{
    char t0[32];
    const char *argv[12] = {t->py, t->script, "serve", t0, route_arg[r]};
    size_t n = 5;

    switch (r) {
    case R_MCACHE:
        argv[n++] = t->d.cache;
        argv[n++] = b->shm_work; /* mcached's --shm-dir */
        argv[n++] = MODEL;
        argv[n++] = "1.0.0";
        break;
    case R_LOAD:
        argv[n++] = t->pt;
        break;
    case R_MMAP:
    case R_READ:
        argv[n++] = t->st;
        break;
    default:
        break;
    }
    argv[n] = NULL;
    snprintf(t0, sizeof(t0), "%" PRIu64, mc_mono_ns());
    return bench_spawn(w, t->py, argv, true);
}

/* Parse and check one worker's line. */
static int read_sample(const struct torch_run *t, enum route r, struct worker *w, struct sample *s)
{
    char line[512];
    const char *p;
    uint64_t n = 0;
    double sum;

    if (worker_line(w, line, sizeof(line)))
        return bench_error("a %s worker died before it was ready (its message is above)",
                           route_name[r]);
    p = strstr(line, " sum=");
    if (!line_u64(line, "import_ns", &s->import_ns) || !line_u64(line, "ready_ns", &s->ready_ns) ||
        !line_u64(line, "pass_ns", &s->pass_ns) || !line_u64(line, "tensors", &n) || !p)
        return bench_error("a %s worker answered \"%s\"", route_name[r], line);
    if (r == R_NONE)
        return 0;
    sum = strtod(p + 5, NULL);
    if (n != t->tensors || fabs(sum - t->sum) > SUM_TOL * fabs(t->sum))
        return bench_error("a %s worker found %" PRIu64 " tensors summing to %.9g; the model has "
                           "%u summing to %.9g (it read the wrong bytes)",
                           route_name[r], n, sum, t->tensors, t->sum);
    return 0;
}

static void add_ms(struct bench *b, enum route r, const char *metric, unsigned n, int pctl,
                   double ns)
{
    char m[96];

    snprintf(m, sizeof(m), "%s, %u worker%s%s", metric, n, n > 1 ? "s" : "",
             pctl == 99 ? ", p99" : "");
    bench_row(b, route_name[r], m, "ms")->pctl = pctl;
    bench_add(b, route_name[r], m, "ms", ns / 1e6);
}

static void record(struct bench *b, enum route r, unsigned n, const struct sample *s)
{
    for (unsigned i = 0; i < n; i++) {
        add_ms(b, r, "import torch", n, 50, (double)s[i].import_ns);
        if (r == R_NONE)
            continue;
        for (int pctl = 50; pctl <= 99; pctl += 49) {
            add_ms(b, r, "exec to ready", n, pctl, (double)s[i].ready_ns);
            add_ms(b, r, "exec to first full pass", n, pctl, (double)s[i].pass_ns);
        }
        add_ms(b, r, "import done to ready", n, 50, (double)(s[i].ready_ns - s[i].import_ns));
        add_ms(b, r, "import done to full pass", n, 50, (double)(s[i].pass_ns - s[i].import_ns));
    }
}

/*
 * Can n private copies be made now? Others may have taken memory since the
 * size was chosen; the OOM killer would pick a bystander as readily as us.
 */
static bool copies_fit(const struct torch_run *t, enum route r, unsigned n)
{
    uint64_t need = n * (t->size + 100 * MiB) + 256 * MiB, avail = meminfo("MemAvailable");
    char a[32], w[32];

    if ((r != R_LOAD && r != R_READ) || avail / 5 * 4 >= need)
        return true;
    bench_note("torch: %s, %u workers: not run, only %s of memory is available now and their "
               "private copies need %s (its figures are N/A)",
               route_name[r], n, fmt_bytes(avail, a, sizeof(a)), fmt_bytes(need, w, sizeof(w)));
    return false;
}

/* n workers of route r at once; record = false for the warm-up. */
static int run_route(struct bench *b, struct torch_run *t, enum route r, unsigned n, size_t ci,
                     bool rec)
{
    struct worker w[MAX_WORKERS];
    struct sample s[MAX_WORKERS];
    uint64_t pss = 0;
    char metric[64];
    int rc = 0;
    unsigned i;

    if (!copies_fit(t, r, n))
        return 0;
    if (rewarm(t))
        return -1;
    for (i = 0; i < n && !rc; i++)
        rc = start_worker(b, t, r, &w[i]);
    if (rc)
        return workers_end(w, i - 1, rc);
    for (i = 0; i < n && !rc; i++)
        rc = read_sample(t, r, &w[i], &s[i]);
    for (i = 0; i < n && !rc; i++) /* every worker holds its dict now */
        pss += proc_pss(w[i].pid);
    if (r == R_MCACHE) /* mcached maps the arena too: its share of the pages is mcache's */
        pss += proc_pss(t->d.pid);
    rc = workers_end(w, n, rc);
    if (rc || !rec)
        return rc;
    if ((r == R_LOAD || r == R_MMAP || r == R_READ) &&
        file_residency(r == R_LOAD ? t->pt : t->st) < 0.99)
        bench_note("torch: %s, %u workers: the host dropped part of the file from the page cache "
                   "during the run, so some of it was read from the disk (memory was short)",
                   route_name[r], n);
    record(b, r, n, s);
    snprintf(metric, sizeof(metric), "total PSS, %u worker%s", n, n > 1 ? "s" : "");
    bench_add(b, route_name[r], metric, "MiB", (double)pss / MiB);
    if (r == R_NONE) {
        t->none_pss[ci] = (double)pss / MiB;
    } else {
        snprintf(metric, sizeof(metric), "PSS above the bare interpreters, %u worker%s", n,
                 n > 1 ? "s" : "");
        bench_add(b, route_name[r], metric, "MiB", (double)pss / MiB - t->none_pss[ci]);
    }
    return 0;
}

static int measure(struct bench *b, struct torch_run *t)
{
    char metric[96];

    for (enum route r = R_NONE; r < R_N; r++) {
        bench_progress("torch: warm-up, %s", route_name[r]);
        if (run_route(b, t, r, 1, 0, false))
            return -1;
    }
    for (size_t c = 0; c < t->ncounts; c++)
        for (enum route r = R_NONE; r < R_N; r++) {
            bench_progress("torch: %s, %u worker%s", route_name[r], t->counts[c],
                           t->counts[c] > 1 ? "s" : "");
            if (run_route(b, t, r, t->counts[c], c, true))
                return -1;
        }
    for (size_t c = 0; c < t->ncounts; c++) {
        const char *m[] = {"exec to ready", "exec to first full pass", "import done to ready",
                           "import done to full pass"};
        unsigned n = t->counts[c];

        for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
            snprintf(metric, sizeof(metric), "%s, %u worker%s", m[i], n, n > 1 ? "s" : "");
            bench_base_system(b, metric, route_name[R_LOAD]);
            if (i < 2) {
                snprintf(metric, sizeof(metric), "%s, %u worker%s, p99", m[i], n, n > 1 ? "s" : "");
                bench_base_system(b, metric, route_name[R_LOAD]);
            }
        }
    }
    bench_base_value(b, NULL, "total PSS", (double)t->size / MiB, "one model");
    bench_base_value(b, NULL, "PSS above", (double)t->size / MiB, "one model");
    return 0;
}

static double value_n(struct bench *b, enum route r, const char *metric, unsigned n)
{
    char m[96];

    snprintf(m, sizeof(m), "%s, %u worker%s", metric, n, n > 1 ? "s" : "");
    return bench_value(b, route_name[r], m);
}

/* Where the mmap route is ahead of mcache, say so and why (one note). */
static void note_mmap_wins(struct bench *b, const struct torch_run *t)
{
    const char *m[] = {"import done to ready", "import done to full pass"};
    char wins[512] = "";
    size_t len = 0;

    for (size_t c = 0; c < t->ncounts; c++)
        for (size_t i = 0; i < 2; i++) {
            double mc = value_n(b, R_MCACHE, m[i], t->counts[c]);
            double mm = value_n(b, R_MMAP, m[i], t->counts[c]);

            if (mm < mc && len < sizeof(wins))
                len += (size_t)snprintf(wins + len, sizeof(wins) - len, "%s%s, %u: %.1f vs %.1f ms",
                                        len ? "; " : "", m[i], t->counts[c], mm, mc);
        }
    if (len)
        bench_note("torch: the mmap route wins (%s, mmap vs mcache): it loads no library and "
                   "attaches nothing, and a page-cached file is mapped in large folios, where "
                   "mcache's arena is as fast only in 2 MiB pages (`start` shows its first read); "
                   "the file keeps that lead only while the host keeps it cached (`pressure`)",
                   wins);
}

static void targets(struct bench *b, const struct torch_run *t)
{
    unsigned most = t->counts[t->ncounts - 1];
    char metric[64];

    for (size_t c = 0; c < t->ncounts; c++) {
        unsigned n = t->counts[c];
        const char *s = n > 1 ? "s" : "";

        bench_target(b,
                     value_n(b, R_LOAD, "import done to ready", n) /
                         value_n(b, R_MCACHE, "import done to ready", n),
                     false, 50, "mcache, %u worker%s: to ready (import torch excluded) x faster "
                                "than torch.load", n, s);
        bench_target(b,
                     value_n(b, R_LOAD, "import done to full pass", n) /
                         value_n(b, R_MCACHE, "import done to full pass", n),
                     false, 2, "mcache, %u worker%s: to a first full pass (import torch "
                               "excluded) x faster than torch.load", n, s);
        bench_note("torch: %u worker%s, with import torch included (every route pays it: median "
                   "%.0f ms): mcache is %.2fx faster to ready and %.2fx to a first full pass "
                   "than torch.load",
                   n, s, value_n(b, R_NONE, "import torch", n),
                   value_n(b, R_LOAD, "exec to ready", n) / value_n(b, R_MCACHE, "exec to ready", n),
                   value_n(b, R_LOAD, "exec to first full pass", n) /
                       value_n(b, R_MCACHE, "exec to first full pass", n));
    }
    snprintf(metric, sizeof(metric), "PSS above the bare interpreters, %u workers", most);
    bench_target(b, bench_value(b, route_name[R_MCACHE], metric) * MiB / (double)t->size, true, 1.1,
                 "mcache, %u workers: total PSS less %u bare python + torch workers / one model",
                 most, most);
    bench_note("torch: mcache's PSS includes mcached's: it maps the arena too (each model page "
               "counts 1/(workers + 1) to a worker), and the arena's index and free space, "
               "committed up front, count to it alone");
    bench_note("torch: torch.load, %u workers: PSS above the bare interpreters is %.1fx one model; "
               "total PSS with the interpreters: mcache %.0f MiB, torch.load %.0f MiB",
               most, bench_value(b, route_name[R_LOAD], metric) * MiB / (double)t->size,
               value_n(b, R_MCACHE, "total PSS", most), value_n(b, R_LOAD, "total PSS", most));
    note_mmap_wins(b, t);
}

/* Python, torch and the worker script, or a note saying why the scenario is skipped. */
static int prerequisites(struct bench *b, struct torch_run *t, bool *skip)
{
    const char *argv[] = {t->py, "-c", "import torch, numpy", NULL};

    *skip = true;
    if (!find_python(t->py, sizeof(t->py))) {
        bench_note("torch: skipped: no /usr/bin/python3 or python3 on PATH (set "
                   "MCACHE_BENCH_PYTHON to a Python with torch and numpy)");
        return 0;
    }
    if (access(t->py, X_OK) != 0) {
        bench_note("torch: skipped: MCACHE_BENCH_PYTHON=%s is not an executable (give the path "
                   "of a Python with torch and numpy, e.g. /usr/bin/python3)",
                   t->py);
        return 0;
    }
    if (run_quiet(argv) != 0) {
        bench_note("torch: skipped: %s cannot import torch and numpy (Debian: apt install "
                   "python3-torch python3-numpy; or set MCACHE_BENCH_PYTHON)",
                   t->py);
        return 0;
    }
    if (find_script(b, t->script, sizeof(t->script)))
        return -1;
    if (!t->script[0]) {
        bench_note("torch: skipped: cannot find torch_worker.py (looked in the source tree above "
                   "%s and in its ../share/mcache/); set MCACHE_TORCH_WORKER to its path",
                   b->self);
        return 0;
    }
    *skip = false;
    point_at_package(t);
    point_at_libmcache(b);
    if (getenv("PYTHONDONTWRITEBYTECODE")) {
        /* Else every worker compiles the mcache package from source, as no deployed one does. */
        unsetenv("PYTHONDONTWRITEBYTECODE");
        bench_note("torch: PYTHONDONTWRITEBYTECODE is set here; it is unset for the workers, so "
                   "that they import the mcache package's cached bytecode as a deployed worker "
                   "would (torch's comes with Debian's package)");
    }
    return 0;
}

int sc_torch(struct bench *b)
{
    static const unsigned full[] = {1, 4, MAX_WORKERS}, quick[] = {1, 4};
    struct torch_run t;
    char title[128], sz[32];
    bool skip;
    int rc;

    memset(&t, 0, sizeof(t));
    t.d.fd = -1;
    t.ncounts = b->o.quick ? 2 : 3;
    memcpy(t.counts, b->o.quick ? quick : full, t.ncounts * sizeof(unsigned));
    if (prerequisites(b, &t, &skip) || skip)
        return skip ? 0 : -1;
    rc = make_model(b, &t, fitting_size(b->o.size, t.counts[t.ncounts - 1]));
    if (!rc)
        rc = serve_model(b, &t);
    if (!rc) {
        bench_note("torch: %u tensors, %s; every route reads from memory: the files stay in "
                   "the page cache (read back in before a run if the host dropped a page), "
                   "mcache's model in its arena; nothing is dropped",
                   t.tensors, fmt_bytes(t.size, sz, sizeof(sz)));
        rc = measure(b, &t);
    }
    if (!rc) {
        snprintf(title, sizeof(title), "fresh PyTorch workers need a %s model as tensors",
                 fmt_bytes(t.size, sz, sizeof(sz)));
        bench_print_table(b, title);
        targets(b, &t);
    }
    mcd_drop(&t.d);
    return rc;
}
