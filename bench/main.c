/*
 * main.c - mcache-bench: options, the scenario table, and a run.
 *
 * To add a scenario: write `int sc_NAME(struct bench *b)` in bench/sc_NAME.c
 * (declared in bench.h; sources are picked up by bench/CMakeLists.txt), and
 * point its entry in `scenarios` below at it. `all` runs every entry that has
 * a function, in table order.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/model.h"
#include "common/clock.h"
#include "mcache.h"
#include "shm/arena.h"

struct scenario {
    const char *name;
    int (*run)(struct bench *b); /* NULL: not built yet (needs names what) */
    const char *needs;
    const char *help;
};

static const struct scenario scenarios[] = {
    {"load", sc_load, NULL,
     "cold load of 64 MiB, 512 MiB and 2 GiB files (--quick: 64 MiB), evicted from the page "
     "cache before every run: a real mcached (load request to published, checksum verified) vs "
     "a raw O_DIRECT io_uring read into a prefaulted shm mapping (this machine's limit) vs "
     "buffered read() into malloc'd memory vs cp to /dev/shm (GB/s)"},
    {"get", sc_get, NULL,
     "warm get+release latency (ns/op) with 100 and 10,000 models, by exact version (the "
     "headline), by alias, by \"latest\" and by the range ^1, and lookups/s with 1 and 2 "
     "reader processes, and instructions per get+release (callgrind, when installed); beside "
     "it, on the "
     "same keys in the same order: a raw ck_ht lookup in private memory, LMDB "
     "(mdb_txn_renew + mdb_get + mdb_txn_reset, environment in --shm-dir) and a Redis GET "
     "over loopback (its own redis-server on 127.0.0.1, random port, no persistence)"},
    {"start", sc_start, NULL,
     "a fresh worker process attaches and reads every byte of a --size model: mcache "
     "(attach time, first and second full read) vs read() into a private buffer vs mmap of "
     "the page-cached file vs LMDB (the model as one value, read zero-copy); on 4 KiB pages "
     "and, when hugetlbfs pages are free, on huge pages"},
    {"memory", sc_memory, NULL,
     "1, 4 and 16 workers each reading the same --size model: total PSS "
     "(/proc/PID/smaps_rollup) with mcache vs private copies (read()) vs file mmap"},
    {"pressure", sc_pressure, NULL,
     "does warm stay warm? (a) everything sits idle --idle seconds, then a fresh worker "
     "reads every byte: mcache vs file mmap vs LMDB, with the page-cache residency (mincore) "
     "just before; --rounds rounds. (b) a memory hog fills memory while workers make full "
     "passes: p50/p99 per pass, mcache vs file mmap"},
    {"restart", sc_restart, NULL,
     "mcached with 1,000 resident models (--quick: 100), exec until it serves again: warm "
     "restart after SIGTERM (adopts the arena), after kill -9, vs a cold start that recreates "
     "the arena and loads every model (ms)"},
    {"registry", sc_registry, NULL,
     "10,000 models x 3 versions (--quick: 1,000): manifest replay of the journal and of the "
     "compacted snapshot (vs jansson alone), mcached start on that store (adopt vs recreate), "
     "get latency at 100 vs 10,000 models"},
    {"deploy", sc_deploy, NULL,
     "a real mcached rolls a canary back by itself (steps 50,100, 1 s interval, max error "
     "rate 2%) while 4 exec'd workers (--quick: 2) serve through the alias with a key the "
     "canary gets and report every request: from the rollback's record (its history entry) to "
     "each worker's next get of the old version, p50 and p99, 20 runs (--quick: 5); beside it, "
     "the same after an operator's plain alias move; then (not --quick) with busy workers (ms)"},
    {"http", sc_http, NULL,
     "mcache-serve (the HTTP face; a real mcached behind it) beside nginx on loopback, with the "
     "same number of workers: a version's metadata GET vs nginx serving the same JSON as a "
     "file (wrk: requests/s, p99); a 64 MiB artifact download (--quick: 16 MiB), resident in "
     "the arena and from the store, vs nginx's sendfile of the same bytes (GB/s); a streamed "
     "push (PUT) vs the disk's write + fsync of the same bytes. Skipped, with a note, where "
     "nginx or wrk is not installed"},
    {"torch", sc_torch, NULL,
     "1, 4 and 16 fresh Python workers (--quick: 1 and 4) each need the same --size "
     "transformer-shaped safetensors model as a dict of torch tensors: mcache (a real mcached; "
     "attach + get + torch(), zero-copy) vs torch.load of a torch.save file vs numpy.memmap + "
     "torch.from_numpy of the file vs the file read into a bytearray: exec to ready and to a "
     "first full pass (median, p99; also without import torch), total PSS. Skipped, with a "
     "note, where /usr/bin/python3 (or $MCACHE_BENCH_PYTHON) cannot import torch and numpy"},
    {"fleet", sc_fleet, NULL,
     "the registry in PostgreSQL, artifacts in an S3-compatible store (--registry or "
     "$MCACHE_BENCH_REGISTRY, AWS_ENDPOINT_URL and keys, $MCACHE_BENCH_BUCKET): a 512 MiB model "
     "(--quick: 64 MiB) loaded from s3 into a real mcached's arena vs curl's parallel ranged "
     "GETs (the store's best of 4, 8, 16) and a single GET of its object; `mcache push` vs "
     "boto3's multipart upload of the same bytes (MiB/s); an alias move seen by the readers of "
     "3 mcached on the same registry (p50, p99 ms). scripts/bench-fleet.sh starts throwaway "
     "servers and runs it; without them it is skipped in `all`"},
};
#define NSCENARIOS (sizeof(scenarios) / sizeof(scenarios[0]))

/* Print text word-wrapped to width columns, continuation lines indented. */
static void wrap(FILE *f, const char *text, int indent, int width)
{
    int col = indent;

    while (*text) {
        int n = (int)strcspn(text, " ");

        if (col > indent && col + 1 + n > width) {
            fprintf(f, "\n%*s", indent, "");
            col = indent;
        }
        col += fprintf(f, "%s%.*s", col > indent ? " " : "", n, text);
        text += n;
        text += *text == ' ';
    }
    fputc('\n', f);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mcache-bench [OPTIONS] SCENARIO...\n"
               "\n"
               "Measures mcache against the baselines and peers a user would pick, in one run,\n"
               "side by side. Each scenario prints a table (median, min, max of the runs and\n"
               "the ratio to its baseline) and PASS/MISS lines for its targets, and merges its\n"
               "rows into OUT/results.json, OUT/results.csv and plots (OUT/*.png, *.svg).\n"
               "Missed targets never fail the program; errors do (exit 1).\n"
               "\n"
               "Scenarios (`all` runs every one that is built, in this order):\n");
    for (size_t i = 0; i < NSCENARIOS; i++) {
        fprintf(f, "  %-9s ", scenarios[i].name);
        wrap(f, scenarios[i].help, 12, 80);
        if (!scenarios[i].run)
            fprintf(f, "%12s(not built yet: needs %s)\n", "", scenarios[i].needs);
    }
    fprintf(f,
            "\n"
            "Options:\n"
            "  --out DIR        output folder (default ./bench-out)\n"
            "  --quick          every scenario small: 64 MiB models, 200,000 lookups per run,\n"
            "                   5 s idle, a capped hog, 1 and 4 torch workers; `--quick all`\n"
            "                   takes 1-2 minutes (most of it torch's Python workers)\n"
            "  --runs N         runs per measurement, at least 5 (default 5); pressure's\n"
            "                   idle part uses --rounds instead; without it, load's 2 GiB\n"
            "                   size runs 3 times (time budget of `all`), and deploy\n"
            "                   makes 20 rollbacks (--quick 5)\n"
            "  --size BYTES     model size for start, memory, pressure and torch (default\n"
            "                   1G; --quick 64M); suffixes K, M, G. memory and torch halve\n"
            "                   it by themselves when 16 private copies would not fit in\n"
            "                   MemAvailable\n"
            "  --ops N          get: lookups per latency run (default 5,000,000)\n"
            "  --redis-ops N    get: Redis GETs per run (default 20,000)\n"
            "  --tput-ms MS     get: length of one lookups/s run (default 500)\n"
            "  --idle SECONDS   pressure: idle wait per round (default 150; --quick 5)\n"
            "  --rounds N       pressure: idle rounds (default 3)\n"
            "  --passes N       pressure: full passes per phase under the hog (default 10)\n"
            "  --hog-max BYTES  pressure: most the hog may take (default: until MemAvailable\n"
            "                   falls to half the model + 256 MiB; --quick 512M)\n"
            "  --shm-dir DIR    where arenas live (default /dev/shm)\n"
            "  --huge-dir DIR   hugetlbfs mount for huge-page arenas (default /dev/hugepages)\n"
            "  --tmp-dir DIR    disk directory for model files and LMDB (default $TMPDIR, else\n"
            "                   /var/tmp); must not be tmpfs for page-cache figures to mean it\n"
            "  --base ADDR      base address of the first arena, each further one 64 GiB\n"
            "                   higher (default: one %llu GiB slot each, from 0x%llx up)\n"
            "  --registry URL   fleet: the PostgreSQL registry (default $MCACHE_BENCH_REGISTRY)\n"
            "  --no-redis       leave Redis out of `get`\n"
            "  --no-plots       do not draw plots\n"
            "  -h, --help       this text\n"
            "  --version        print the version\n"
            "\n"
            "Everything the bench creates (private directories named mcache-bench.<pid>.* in\n"
            "--shm-dir, --tmp-dir and --huge-dir, its redis-server, workers and hog) is removed\n"
            "when it ends, also on SIGINT/SIGTERM. It never changes system settings.\n"
            "See docs/benchmark.md for what each figure means.\n",
            MC_BASE_SLOT >> 30, MC_BASE_RANGE);
}

static int parse_u64(const char *opt, const char *v, bool size, uint64_t min, uint64_t *out)
{
    char *end;

    if (size ? parse_size(v, out) != 0 : (errno = 0, *out = strtoull(v, &end, 0), errno || *end))
        return bench_error("--%s \"%s\" is not a %s", opt, v,
                           size ? "size (like 64M or 1G)" : "number");
    if (*out < min)
        return bench_error("--%s %s is too small (at least %llu)", opt, v, (unsigned long long)min);
    return 0;
}

static int parse_opts(struct bench *b, int argc, char **argv, int *first)
{
    enum {
        O_OUT = 256,
        O_QUICK,
        O_RUNS,
        O_SIZE,
        O_OPS,
        O_ROPS,
        O_TPUT,
        O_IDLE,
        O_ROUNDS,
        O_PASSES,
        O_HOG,
        O_SHM,
        O_HUGE,
        O_TMP,
        O_BASE,
        O_NOREDIS,
        O_NOPLOTS,
        O_REGISTRY
    };
    static const struct option longs[] = {{"out", 1, 0, O_OUT},
                                          {"quick", 0, 0, O_QUICK},
                                          {"runs", 1, 0, O_RUNS},
                                          {"size", 1, 0, O_SIZE},
                                          {"ops", 1, 0, O_OPS},
                                          {"redis-ops", 1, 0, O_ROPS},
                                          {"tput-ms", 1, 0, O_TPUT},
                                          {"idle", 1, 0, O_IDLE},
                                          {"rounds", 1, 0, O_ROUNDS},
                                          {"passes", 1, 0, O_PASSES},
                                          {"hog-max", 1, 0, O_HOG},
                                          {"shm-dir", 1, 0, O_SHM},
                                          {"huge-dir", 1, 0, O_HUGE},
                                          {"tmp-dir", 1, 0, O_TMP},
                                          {"base", 1, 0, O_BASE},
                                          {"no-redis", 0, 0, O_NOREDIS},
                                          {"no-plots", 0, 0, O_NOPLOTS},
                                          {"registry", 1, 0, O_REGISTRY},
                                          {"help", 0, 0, 'h'},
                                          {"version", 0, 0, 'V'},
                                          {0, 0, 0, 0}};
    uint64_t v, set[O_NOPLOTS + 1] = {0}, val[O_NOPLOTS + 1] = {0};
    int c, li = 0;

    b->o.out_dir = "./bench-out";
    b->o.shm_dir = MC_DEFAULT_SHM_DIR;
    b->o.huge_dir = "/dev/hugepages";
    b->o.tmp_dir = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/var/tmp";
    while ((c = getopt_long(argc, argv, "h", longs, &li)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            exit(0);
        case 'V':
            printf("mcache-bench %d.%d.%d (arena format %u)\n", MCACHE_VERSION_MAJOR,
                   MCACHE_VERSION_MINOR, MCACHE_VERSION_PATCH, MC_ARENA_FORMAT);
            exit(0);
        case O_OUT:
            b->o.out_dir = optarg;
            break;
        case O_SHM:
            b->o.shm_dir = optarg;
            break;
        case O_HUGE:
            b->o.huge_dir = optarg;
            break;
        case O_TMP:
            b->o.tmp_dir = optarg;
            break;
        case O_QUICK:
            b->o.quick = true;
            break;
        case O_NOREDIS:
            b->o.no_redis = true;
            break;
        case O_NOPLOTS:
            b->o.no_plots = true;
            break;
        case O_REGISTRY:
            b->o.registry = optarg;
            break;
        case O_RUNS:
        case O_OPS:
        case O_ROPS:
        case O_TPUT:
        case O_IDLE:
        case O_ROUNDS:
        case O_PASSES:
        case O_BASE:
            if (parse_u64(longs[li].name, optarg, false, c == O_RUNS ? 5 : c == O_IDLE ? 0 : 1, &v))
                return -1;
            set[c] = 1, val[c] = v;
            break;
        case O_SIZE:
        case O_HOG:
            if (parse_u64(longs[li].name, optarg, true, c == O_SIZE ? 1 * MiB : 0, &v))
                return -1;
            set[c] = 1, val[c] = v;
            break;
        default:
            fprintf(stderr, "mcache-bench: see --help\n");
            return -1;
        }
    }
    /* Defaults, then --quick's, then what was given. */
    b->o.runs = 5;
    b->o.size = b->o.quick ? 64 * MiB : GiB;
    b->o.ops = b->o.quick ? 200000 : 5000000;
    b->o.redis_ops = b->o.quick ? 2000 : 20000;
    b->o.tput_ms = b->o.quick ? 100 : 500;
    b->o.idle_s = b->o.quick ? 5 : 150;
    b->o.rounds = 3;
    b->o.passes = b->o.quick ? 5 : 10;
    b->o.hog_max = b->o.quick ? 512 * MiB : 0;
    b->o.base = 0; /* bench_next_base: slots of the default range */
#define GIVEN(opt, field, type)                                                                    \
    if (set[opt])                                                                                  \
    b->o.field = (type)val[opt]
    GIVEN(O_RUNS, runs, unsigned);
    b->o.runs_given = set[O_RUNS] != 0;
    GIVEN(O_SIZE, size, uint64_t);
    GIVEN(O_OPS, ops, uint64_t);
    GIVEN(O_ROPS, redis_ops, uint64_t);
    GIVEN(O_TPUT, tput_ms, unsigned);
    GIVEN(O_IDLE, idle_s, unsigned);
    GIVEN(O_ROUNDS, rounds, unsigned);
    GIVEN(O_PASSES, passes, unsigned);
    GIVEN(O_HOG, hog_max, uint64_t);
    GIVEN(O_BASE, base, uint64_t);
#undef GIVEN
    b->o.size = (b->o.size + 2 * MiB - 1) / (2 * MiB) * (2 * MiB);
    if (b->o.base % MC_HUGE_PAGE)
        return bench_error("--base 0x%llx must be a multiple of 2 MiB",
                           (unsigned long long)b->o.base);
    *first = optind;
    return 0;
}

static int make_private_dir(const char *parent, const char *what, char *out, size_t len)
{
    struct stat st;

    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode))
        return bench_error("%s %s is not a directory", what, parent);
    snprintf(out, len, "%s/mcache-bench.%d.XXXXXX", parent, (int)getpid());
    if (!mkdtemp(out)) {
        int e = errno;

        out[0] = '\0';
        errno = e;
        return bench_error("cannot create a directory in %s (%s): %s", parent, what, strerror(e));
    }
    cleanup_add_dir(out);
    return 0;
}

int bench_dirs_make(struct bench *b)
{
    cleanup_stale(b->o.shm_dir);
    cleanup_stale(b->o.tmp_dir);
    if (fs_is_hugetlbfs(b->o.huge_dir))
        cleanup_stale(b->o.huge_dir);
    if (make_private_dir(b->o.shm_dir, "--shm-dir", b->shm_work, sizeof(b->shm_work)) ||
        make_private_dir(b->o.tmp_dir, "--tmp-dir", b->tmp_work, sizeof(b->tmp_work)))
        return -1;
    if (fs_is_memory(b->o.tmp_dir))
        bench_note("--tmp-dir %s is in memory (tmpfs), not on a disk: the read()/mmap/LMDB "
                   "figures are then shared memory too. Give a disk directory with --tmp-dir",
                   b->o.tmp_dir);
    return 0;
}

const char *bench_huge_dir(struct bench *b)
{
    if (!b->huge_work[0] &&
        make_private_dir(b->o.huge_dir, "--huge-dir", b->huge_work, sizeof(b->huge_work)))
        return NULL;
    return b->huge_work;
}

static const struct scenario *scenario_find(const char *name)
{
    for (size_t i = 0; i < NSCENARIOS; i++)
        if (!strcmp(scenarios[i].name, name))
            return &scenarios[i];
    return NULL;
}

static char self_path[PATH_MAX];

/* Add s to the list unless it is there already (`all get` runs get once). */
static void todo_add(const struct scenario **todo, size_t *n, const struct scenario *s)
{
    for (size_t i = 0; i < *n; i++)
        if (todo[i] == s)
            return;
    todo[(*n)++] = s;
}

int main(int argc, char **argv)
{
    const struct scenario *todo[NSCENARIOS];
    bool asked[NSCENARIOS] = {false};
    size_t ntodo = 0;
    struct bench b;
    uint64_t t0 = mc_mono_ns();
    int first = 0, rc = 0;

    if (argc > 1 && !strcmp(argv[1], "__worker"))
        return worker_main(argc, argv);
    memset(&b, 0, sizeof(b));
    if (parse_opts(&b, argc, argv, &first))
        return 2;
    if (first == argc) {
        usage(stderr);
        return 2;
    }
    for (int i = first; i < argc; i++) {
        const struct scenario *s = scenario_find(argv[i]);

        if (!strcmp(argv[i], "all")) {
            for (size_t k = 0; k < NSCENARIOS; k++)
                if (scenarios[k].run)
                    todo_add(todo, &ntodo, &scenarios[k]);
            continue;
        }
        if (!s) {
            bench_error("unknown scenario \"%s\" (see --help)", argv[i]);
            return 2;
        }
        if (!s->run) {
            bench_error("scenario \"%s\" is not built yet: it needs %s", s->name, s->needs);
            return 2;
        }
        todo_add(todo, &ntodo, s);
        asked[s - scenarios] = true;
    }
    ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
    if (n <= 0) {
        bench_error("cannot find this program's path (/proc/self/exe)");
        return 1;
    }
    self_path[n] = '\0';
    b.self = self_path;

    cleanup_install();
    atexit(cleanup_run);
    if (bench_dirs_make(&b)) {
        cleanup_run();
        return 1;
    }
    for (size_t i = 0; i < ntodo && !rc; i++) {
        uint64_t ts = mc_mono_ns();

        b.scenario = todo[i]->name;
        b.asked = asked[todo[i] - scenarios];
        b.ran = xrealloc(b.ran, (b.nran + 1) * sizeof(*b.ran));
        b.ran[b.nran++] = (char *)todo[i]->name;
        bench_progress("scenario %s%s", b.scenario, b.o.quick ? " (--quick)" : "");
        rc = todo[i]->run(&b);
        if (rc)
            bench_error("scenario %s failed; its rows so far are kept", b.scenario);
        printf("(%s took %.1f s)\n", b.scenario, (double)(mc_mono_ns() - ts) / 1e9);
        fflush(stdout);
    }
    cleanup_run();
    if (report_write(&b))
        rc = -1;
    printf("total %.1f s\n", (double)(mc_mono_ns() - t0) / 1e9);
    return rc ? 1 : 0;
}
