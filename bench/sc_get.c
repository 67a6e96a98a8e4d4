/*
 * sc_get.c - the `get` scenario: warm lookups, mcache against a raw ck_ht
 * lookup in private memory (the floor for a hash-table lookup), LMDB (the
 * zero-copy peer) and Redis over loopback (the networked peer).
 *
 * Latency: this process attaches to two arenas (100 and 10,000 models) and
 * runs each system's loop for --ops lookups per run, systems interleaved
 * within a run so that drift on a noisy host hits all of them alike, pinned
 * to one CPU (a migration mid-loop costs the loop its warm caches and TLB).
 * Throughput: 1 and 2 exec'd worker processes per system, each pinned to its
 * own CPU, run for --tput-ms after a common "go"; the figure is the sum of
 * their rates.
 *
 * mcache is measured by exact version, alias, "latest" and the range "^1",
 * each against the raw ck_ht lookup of the same run, and through a weighted
 * alias (90/10, a pick per get, and by a request key) against the plain
 * alias. Instructions per
 * get+release: when valgrind is installed and the build's
 * tests/get_count sits beside this program's folder, the bench counts them
 * with callgrind as ctest perf_instructions does (tests/perf/), and says
 * so when it cannot.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/barena.h"
#include "bench/bench.h"
#include "bench/lookups.h"
#include "bench/model.h"
#include "bench/redis.h"
#include "common/clock.h"

#define NSETS    2
#define BASELINE "ck_ht (private)"

static const unsigned set_models[NSETS] = {100, 10000};

struct get_set {
    struct keyset k;
    struct barena ba;
    mc_cache *c;
    char lmdb[600];
    struct resp rd;
    struct lk lk[LK_NSYS];
    bool have[LK_NSYS];
};

/* Display order: the baseline first. */
static const enum lk_sys order[] = {LK_CKHT,          LK_MCACHE,          LK_MCACHE_ALIAS,
                                    LK_MCACHE_LATEST, LK_MCACHE_RANGE,    LK_MCACHE_WEIGHTED,
                                    LK_MCACHE_KEYED,  LK_LMDB,            LK_REDIS};

/* Weighted aliases against a plain alias of the same run (issue 13's targets). */
static const struct {
    enum lk_sys sys;
    double ratio;
} split_goals[] = {{LK_MCACHE_WEIGHTED, 1.15}, {LK_MCACHE_KEYED, 1.3}};

/* mcache's targets: get+release / raw ck_ht lookup, and instructions per get+release. */
static const struct {
    enum lk_sys sys;
    const char *mode; /* get_count's */
    double ratio;
    double instructions;
} goals[] = {{LK_MCACHE, "exact", 1.6, 350},
             {LK_MCACHE_ALIAS, "alias", 1.6, 350},
             {LK_MCACHE_LATEST, "latest", 1.8, 450},
             {LK_MCACHE_RANGE, "range", 3, 800}};

static const char *sys_name(struct bench *b, enum lk_sys s)
{
    static char lmdb[64];

    switch (s) {
    case LK_CKHT:
        return BASELINE;
    case LK_MCACHE:
        return "mcache";
    case LK_MCACHE_ALIAS:
        return "mcache (alias)";
    case LK_MCACHE_LATEST:
        return "mcache (latest)";
    case LK_MCACHE_RANGE:
        return "mcache (range " GET_RANGE ")";
    case LK_MCACHE_WEIGHTED:
        return "mcache (weighted alias)";
    case LK_MCACHE_KEYED:
        return "mcache (weighted, keyed)";
    case LK_LMDB:
        snprintf(lmdb, sizeof(lmdb), "LMDB (%s)", fs_is_memory(b->o.shm_dir) ? "tmpfs" : "disk");
        return lmdb;
    default:
        return "Redis (loopback)";
    }
}

static int redis_fill(struct resp *rd, unsigned db, const struct keyset *k)
{
    char dbs[8], value[GET_VALUE_SIZE];
    const char *sel[] = {"SELECT", dbs};

    memset(value, 0x5a, sizeof(value));
    snprintf(dbs, sizeof(dbs), "%u", db);
    if (resp_cmd(rd, 2, sel))
        return -1;
    for (unsigned i = 0; i < k->n; i += 500) {
        unsigned end = i + 500 < k->n ? i + 500 : k->n;

        for (unsigned j = i; j < end; j++) { /* pipelined */
            const char *argv[] = {"SET", k->vkey[j], value};
            size_t lens[] = {3, k->vlen[j], sizeof(value)};

            if (resp_send(rd, 3, argv, lens))
                return -1;
        }
        for (unsigned j = i; j < end; j++)
            if (resp_reply(rd, value, 0) == -1)
                return -1;
    }
    return 0;
}

static int setup(struct bench *b, struct get_set *sets, struct redis *rs)
{
    uint64_t need = barena_footprint(4096, 4 * MiB) + barena_footprint(4096, 32 * MiB) + 16 * MiB;
    int redis;

    if (fs_require(b->o.shm_dir, need, "the get scenario (two arenas, two LMDB environments)"))
        return -1;
    redis = b->o.no_redis ? 1 : redis_start(rs, b->tmp_work);
    if (redis < 0)
        return -1;
    for (int i = 0; i < NSETS; i++) {
        struct get_set *s = &sets[i];
        unsigned n = set_models[i];
        char tag[32];

        bench_progress("get: preparing %u models in an arena, a private ck_ht, LMDB%s", n,
                       redis == 0 ? " and Redis" : "");
        keyset_make(&s->k, n);
        snprintf(tag, sizeof(tag), "get%u", n);
        if (keyset_arena(b, &s->ba, &s->k, tag, &s->c))
            return -1;
        snprintf(s->lmdb, sizeof(s->lmdb), "%s/lmdb-%u", b->shm_work, n);
        if (lmdb_put_keys(s->lmdb, &s->k) || lk_open_lmdb(&s->lk[LK_LMDB], &s->k, s->lmdb) ||
            lk_open_ckht(&s->lk[LK_CKHT], &s->k))
            return -1;
        for (enum lk_sys m = LK_MCACHE; m <= LK_MCACHE_KEYED; m++) {
            lk_open_mcache_ref(&s->lk[m], &s->k, s->c, m);
            s->have[m] = true;
        }
        s->have[LK_CKHT] = true;
        s->have[LK_LMDB] = true;
        s->rd.fd = -1;
        if (redis == 0) {
            if (resp_connect(&s->rd, rs->port) || redis_fill(&s->rd, (unsigned)i, &s->k))
                return bench_error("filling Redis on port %d failed", rs->port);
            lk_open_redis(&s->lk[LK_REDIS], &s->k, &s->rd);
            s->have[LK_REDIS] = true;
        }
    }
    return 0;
}

static int latency(struct bench *b, struct get_set *sets)
{
    char metric[NSETS][64];

    for (int i = 0; i < NSETS; i++) {
        snprintf(metric[i], sizeof(metric[i]), "get latency, %u models", set_models[i]);
        for (int s = 0; s < LK_NSYS; s++) /* warm: every key, every system */
            if (sets[i].have[s] && lk_run(&sets[i].lk[s], 0, s == LK_REDIS ? 2000 : ORDER_LEN))
                return -1;
    }
    cpu_pin(cpu_nth(0)); /* no migration mid-loop; undone below */
    for (unsigned run = 0; run < b->o.runs; run++) {
        bench_progress("get: latency run %u/%u", run + 1, b->o.runs);
        for (int i = 0; i < NSETS; i++)
            for (size_t j = 0; j < sizeof(order) / sizeof(order[0]); j++) {
                enum lk_sys s = order[j];
                uint64_t ops = s == LK_REDIS ? b->o.redis_ops : b->o.ops, t0;

                if (!sets[i].have[s])
                    continue;
                t0 = mc_mono_ns();
                if (lk_run(&sets[i].lk[s], (uint64_t)run * 7919, ops)) {
                    cpu_pin(-1);
                    return -1;
                }
                bench_add(b, sys_name(b, s), metric[i], "ns/op",
                          (double)(mc_mono_ns() - t0) / (double)ops);
            }
    }
    cpu_pin(-1);
    for (int i = 0; i < NSETS; i++)
        bench_base_system(b, metric[i], BASELINE);
    return 0;
}

#define REPORT_METRIC "mc_report per request, 100 models"

/*
 * mc_report() on a held model, --ops times per run: the cost a worker pays
 * per request for serving statistics (issue 13's target: 15 ns).
 */
static int report_cost(struct bench *b, struct get_set *s)
{
    mc_model *m;

    if (mc_get(s->c, s->k.name[0], GET_VERSION, &m))
        return bench_error("get %s@%s: %s", s->k.name[0], GET_VERSION, mc_last_error());
    cpu_pin(cpu_nth(0));
    for (unsigned run = 0; run < b->o.runs; run++) {
        uint64_t t0 = mc_mono_ns();

        for (uint64_t i = 0; i < b->o.ops; i++)
            if (__builtin_expect(mc_report(m, 20000 + (i & 4095) * 97, (i & 63) != 0, i & 7), 0)) {
                cpu_pin(-1);
                mc_release(m);
                return bench_error("mc_report: %s", mc_last_error());
            }
        bench_add(b, "mcache", REPORT_METRIC, "ns/op",
                  (double)(mc_mono_ns() - t0) / (double)b->o.ops);
    }
    cpu_pin(-1);
    mc_release(m);
    return 0;
}

/* One throughput run: nproc workers of one system, started together. */
static int tput_run(struct bench *b, struct get_set *s, const char *sys, unsigned nproc,
                    double *rate)
{
    struct worker w[2];
    char n[16], ms[16], cpu[2][16], line[256];
    const char *args[] = {"lookups", sys, n, ms, cpu[0], s->ba.dir, s->ba.cache, NULL};
    int rc = 0;

    snprintf(n, sizeof(n), "%u", s->k.n);
    snprintf(ms, sizeof(ms), "%u", b->o.tput_ms);
    if (!strcmp(sys, "lmdb"))
        args[5] = s->lmdb, args[6] = NULL;
    *rate = 0;
    for (unsigned p = 0; p < nproc; p++) { /* each worker on its own CPU */
        snprintf(cpu[p], sizeof(cpu[p]), "%d", cpu_nth(p));
        args[4] = cpu[p];
        if (bench_worker(b, &w[p], args))
            return workers_end(w, p, -1);
    }
    for (unsigned p = 0; p < nproc && !rc; p++)
        if (worker_line(&w[p], line, sizeof(line)) || strcmp(line, "ready"))
            rc = bench_error("a %s lookups worker failed to start", sys);
    for (unsigned p = 0; p < nproc && !rc; p++)
        rc = worker_send(&w[p], "go\n");
    for (unsigned p = 0; p < nproc && !rc; p++) {
        uint64_t ops, ns;

        if (worker_line(&w[p], line, sizeof(line)) || !line_u64(line, "ops", &ops) ||
            !line_u64(line, "ns", &ns) || !ns)
            rc = bench_error("a %s lookups worker did not report", sys);
        else
            *rate += (double)ops * 1e9 / (double)ns;
    }
    return workers_end(w, nproc, rc);
}

static int throughput(struct bench *b, struct get_set *s)
{
    static const struct {
        const char *arg;
        enum lk_sys sys;
    } systems[] = {{"ckht", LK_CKHT}, {"mcache", LK_MCACHE}, {"lmdb", LK_LMDB}};
    char metric[2][64];

    for (unsigned p = 1; p <= 2; p++)
        snprintf(metric[p - 1], sizeof(metric[p - 1]), "lookups/s, %u models, %u process%s", s->k.n,
                 p, p > 1 ? "es" : "");
    for (unsigned run = 0; run < b->o.runs; run++) {
        bench_progress("get: lookups/s run %u/%u", run + 1, b->o.runs);
        for (unsigned p = 1; p <= 2; p++)
            for (size_t i = 0; i < sizeof(systems) / sizeof(systems[0]); i++) {
                double rate;

                if (tput_run(b, s, systems[i].arg, p, &rate))
                    return -1;
                bench_add(b, sys_name(b, systems[i].sys), metric[p - 1], "lookups/s", rate);
            }
    }
    for (unsigned p = 0; p < 2; p++)
        bench_base_system(b, metric[p], BASELINE);
    return 0;
}

static void targets(struct bench *b)
{
    for (int i = 0; i < NSETS; i++) {
        char metric[64];
        double m, c, l, r;

        snprintf(metric, sizeof(metric), "get latency, %u models", set_models[i]);
        m = bench_value(b, "mcache", metric);
        c = bench_value(b, BASELINE, metric);
        l = bench_value(b, sys_name(b, LK_LMDB), metric);
        r = bench_value(b, sys_name(b, LK_REDIS), metric);
        for (size_t g = 0; g < sizeof(goals) / sizeof(goals[0]); g++)
            bench_target(b, bench_value(b, sys_name(b, goals[g].sys), metric) / c, true,
                         goals[g].ratio, "%s get+release / raw ck_ht lookup, %u models",
                         sys_name(b, goals[g].sys), set_models[i]);
        for (size_t g = 0; g < sizeof(split_goals) / sizeof(split_goals[0]); g++)
            bench_target(b,
                         bench_value(b, sys_name(b, split_goals[g].sys), metric) /
                             bench_value(b, sys_name(b, LK_MCACHE_ALIAS), metric),
                         true, split_goals[g].ratio, "%s / plain alias get+release, %u models",
                         sys_name(b, split_goals[g].sys), set_models[i]);
        bench_target(b, l / m, false, 2, "LMDB read / mcache get+release, %u models",
                     set_models[i]);
        if (r == r)
            bench_target(b, r / m, false, 1000, "Redis GET / mcache get+release, %u models",
                         set_models[i]);
    }
}

/* Instructions of `get_count n mode` under callgrind, or -1. */
static double callgrind_ir(const char *get_count, unsigned long n, const char *mode)
{
    char cmd[PATH_MAX + 128], line[512];
    double ir = -1;
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "valgrind --tool=callgrind --callgrind-out-file=/dev/null '%s' %lu %s 2>&1", get_count,
             n, mode);
    if (!(p = popen(cmd, "r")))
        return -1;
    while (fgets(line, sizeof(line), p)) {
        const char *c = strstr(line, "Collected : ");

        if (c)
            ir = strtod(c + 12, NULL);
    }
    return pclose(p) == 0 ? ir : -1;
}

#define IR_METRIC "instructions per get+release, 100 models (callgrind)"

/*
 * Instructions per get+release, counted with callgrind on the build's
 * tests/get_count (100 models) as ctest perf_instructions counts them, with
 * the raw ck_ht lookup counted the same way. False if not counted (a note
 * says why).
 */
static bool instructions(struct bench *b)
{
    const char *metric = IR_METRIC;
    char exe[PATH_MAX], get_count[PATH_MAX + 32];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    const unsigned long ops = 20000;
    char *slash;

    if (n <= 0)
        return false;
    exe[n] = '\0';
    if ((slash = strrchr(exe, '/')))
        *slash = '\0';
    snprintf(get_count, sizeof(get_count), "%s/../tests/get_count", exe);
    if (access(get_count, X_OK) != 0 || system("valgrind --version >/dev/null 2>&1") != 0) {
        bench_note("instructions per get+release not counted: needs valgrind and the build's "
                   "tests/get_count (%s); ctest -R perf_instructions counts them",
                   get_count);
        return false;
    }
    for (size_t g = 0; g <= sizeof(goals) / sizeof(goals[0]); g++) {
        bool raw = g == sizeof(goals) / sizeof(goals[0]);
        const char *mode = raw ? "ckht" : goals[g].mode;
        double a, c;

        bench_progress("get: counting instructions (%s) with callgrind", mode);
        a = callgrind_ir(get_count, ops, mode);
        c = callgrind_ir(get_count, 2 * ops, mode);
        if (a < 0 || c < 0) {
            bench_note("callgrind could not count %s (%s)", mode, get_count);
            return false;
        }
        bench_add(b, raw ? BASELINE : sys_name(b, goals[g].sys), metric, "instructions",
                  (c - a) / (double)ops);
    }
    bench_base_system(b, metric, BASELINE);
    return true;
}

static void instruction_targets(struct bench *b)
{
    for (size_t g = 0; g < sizeof(goals) / sizeof(goals[0]); g++)
        bench_target(b, bench_value(b, sys_name(b, goals[g].sys), IR_METRIC), true,
                     goals[g].instructions, "%s instructions per get+release (callgrind)",
                     sys_name(b, goals[g].sys));
}

int sc_get(struct bench *b)
{
    struct get_set sets[NSETS];
    struct redis rs = {0};
    char title[256];
    int rc;

    memset(sets, 0, sizeof(sets));
    for (int i = 0; i < NSETS; i++)
        sets[i].rd.fd = -1;
    rc = setup(b, sets, &rs);
    if (!rc)
        rc = latency(b, sets);
    if (!rc)
        rc = report_cost(b, &sets[0]);
    if (!rc)
        rc = throughput(b, &sets[NSETS - 1]);
    if (!rc) {
        bool counted = instructions(b);

        snprintf(title, sizeof(title),
                 "warm lookups, %llu per latency run (Redis %llu), lookups/s over %u ms",
                 (unsigned long long)b->o.ops, (unsigned long long)b->o.redis_ops, b->o.tput_ms);
        bench_print_table(b, title);
        targets(b);
        bench_target(b, bench_value(b, "mcache", REPORT_METRIC), true, 15,
                     "mc_report per request (ns)");
        if (counted)
            instruction_targets(b);
    }
    for (int i = 0; i < NSETS; i++) {
        struct get_set *s = &sets[i];

        for (int k = 0; k < LK_NSYS; k++)
            if (s->have[k])
                lk_close(&s->lk[k]);
        resp_close(&s->rd);
        mc_detach(s->c);
        barena_destroy(&s->ba);
        if (s->lmdb[0])
            rm_tree(s->lmdb);
        keyset_free(&s->k);
    }
    redis_stop(&rs);
    return rc;
}
