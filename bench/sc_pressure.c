/*
 * sc_pressure.c - the `pressure` scenario: does warm stay warm?
 *
 * (a) Idle. Every system's model is read once (warm), then nothing touches
 *     anything for --idle seconds; just before a fresh worker reads every
 *     byte, the page-cache residency of each file (mincore, which touches
 *     nothing) is recorded. All systems idle together, so one wait serves
 *     them all; --rounds rounds. The reference is the same fresh-worker read
 *     while warm (--runs runs before the first idle). A control sits beside
 *     them: the bench's own anonymous memory, touched while warm and read
 *     first after each idle. On a VM whose host reclaims or ages idle guest
 *     memory, it slows too, and that is the host's doing, not shm's.
 * (b) Hog. Two workers (mcache, file mmap) hold the model and make full
 *     passes: --passes while warm, then a hog process fills anonymous memory
 *     until MemAvailable falls to half a model + 256 MiB (or --hog-max), and
 *     --passes again while it holds it. p50 and p99 per pass. With no swap
 *     the kernel can only reclaim file pages: shared memory stays.
 *     (The floor is under one model, so file mmap thrashes on every pass.)
 *
 * Every row's ratio is against the same system's own warm median.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/model.h"
#include "bench/stores.h"
#include "common/clock.h"

#define WARM_READ  "full read by a fresh process, warm"
#define IDLE_READ  "full read by a fresh process, after idle"
#define WARM_AGAIN "second full read, warm"
#define IDLE_AGAIN "second full read after idle"
#define RESIDENCY  "page-cache residency after idle"
#define WARM_PASS  "full pass, warm"
#define HOG_PASS   "full pass under the hog"
#define HOG_P99    "full pass under the hog, p99"
#define CONTROL    "control: anonymous memory"
#define CTRL_WARM  "full read of memory in use, warm"
#define CTRL_IDLE  "full read of memory idle"

static const enum msys idle_order[] = {MS_MCACHE, MS_MMAP, MS_LMDB};
static const enum msys hog_order[] = {MS_MCACHE, MS_MMAP};

/* Residency of the bytes a system reads (the arena's shm pages for mcache). */
static double residency(const struct stores *s, enum msys m)
{
    return file_residency(m == MS_MCACHE ? s->arena.path : m == MS_LMDB ? s->lmdb_data : s->file);
}

/* One timed full read of the control buffer, recorded under metric. */
static void control_read(struct bench *b, const void *p, uint64_t size, uint64_t want,
                         const char *metric)
{
    uint64_t t0 = mc_mono_ns(), sum = model_sum(p, size);

    bench_add(b, CONTROL, metric, "ms", (double)(mc_mono_ns() - t0) / 1e6);
    if (sum != want)
        bench_note("pressure: the control buffer's sum changed (memory error?)");
}

static int idle_part(struct bench *b, struct stores *s)
{
    char metric[96], again[96], ctrl[96];
    struct read_run r;
    uint64_t want;
    void *control = malloc(s->size);

    if (!control)
        return bench_error("pressure: no memory for the %llu-byte control buffer",
                           (unsigned long long)s->size);
    want = model_fill(control, 0, s->size);
    for (unsigned run = 0; run < b->o.runs; run++) {
        bench_progress("pressure: warm reads %u/%u", run + 1, b->o.runs);
        for (size_t i = 0; i < sizeof(idle_order) / sizeof(idle_order[0]); i++) {
            if (stores_rewarm(s) || stores_read(b, s, idle_order[i], &r)) {
                free(control);
                return -1;
            }
            bench_add(b, msys_name(idle_order[i]), WARM_READ, "ms", (double)r.first_ns / 1e6);
            bench_add(b, msys_name(idle_order[i]), WARM_AGAIN, "ms", (double)r.second_ns / 1e6);
        }
        control_read(b, control, s->size, want, CTRL_WARM);
    }
    snprintf(metric, sizeof(metric), "%s %u s", IDLE_READ, b->o.idle_s);
    snprintf(again, sizeof(again), "%s %u s", IDLE_AGAIN, b->o.idle_s);
    snprintf(ctrl, sizeof(ctrl), "%s %u s", CTRL_IDLE, b->o.idle_s);
    for (unsigned round = 0; round < b->o.rounds; round++) {
        double res[sizeof(idle_order) / sizeof(idle_order[0])];

        bench_progress("pressure: round %u/%u: idle for %u s (nothing touches the models)",
                       round + 1, b->o.rounds, b->o.idle_s);
        for (unsigned t = 0; t < b->o.idle_s; t++)
            sleep(1);
        /* All residencies first: reading one model must not disturb another's figure. */
        for (size_t i = 0; i < sizeof(idle_order) / sizeof(idle_order[0]); i++)
            res[i] = residency(s, idle_order[i]);
        /* First, so that nothing the systems do warms the host for it. */
        control_read(b, control, s->size, want, ctrl);
        for (size_t i = 0; i < sizeof(idle_order) / sizeof(idle_order[0]); i++) {
            const char *name = msys_name(idle_order[i]);

            if (stores_read(b, s, idle_order[i], &r)) {
                free(control);
                return -1;
            }
            bench_add(b, name, RESIDENCY, "%", 100 * res[i]);
            bench_add(b, name, metric, "ms", (double)r.first_ns / 1e6);
            /* Slow here too means the host was slow, not the first touch. */
            bench_add(b, name, again, "ms", (double)r.second_ns / 1e6);
        }
    }
    free(control);
    return 0;
}

/* Ask a hold worker for n passes; record them under metric (and a p99 row). */
static int passes(struct bench *b, struct worker *w, enum msys m, const struct stores *s,
                  const char *metric, const char *p99)
{
    char line[256];

    if (worker_send(w, "pass %u\n", b->o.passes))
        return -1;
    for (;;) {
        uint64_t ns;

        if (worker_line(w, line, sizeof(line)))
            return bench_error("the %s hold worker died", msys_name(m));
        if (!strcmp(line, "done"))
            return 0;
        if (!line_u64(line, "pass_ns", &ns) || stores_check_sum(s, m, line))
            return -1;
        bench_add(b, msys_name(m), metric, "ms", (double)ns / 1e6);
        if (p99)
            bench_add(b, msys_name(m), p99, "ms", (double)ns / 1e6);
    }
}

/*
 * Start the hog and wait until it holds its memory. It stops when
 * MemAvailable falls to half a model + 256 MiB (at least 512 MiB): less than
 * the model, so the file cannot come back into the page cache whole and
 * every pass of file mmap must read from the disk again. Returns 0, 1 if the
 * hog died first (the OOM killer prefers it: not an error of the bench), or
 * -1.
 */
static int hog_start(struct bench *b, const struct stores *s, struct worker *hog)
{
    uint64_t floor = s->size / 2 + 256 * MiB, bytes = 0, ns = 0;
    char fl[32], mx[32], line[256], a[32], h[32];
    const char *args[] = {"hog", fl, mx, NULL};

    floor = floor < 512 * MiB ? 512 * MiB : floor;
    snprintf(fl, sizeof(fl), "%llu", (unsigned long long)floor);
    snprintf(mx, sizeof(mx), "%llu", (unsigned long long)b->o.hog_max);
    bench_progress("pressure: the hog fills memory down to %s available%s (%s available now)",
                   fmt_bytes(floor, a, sizeof(a)), b->o.hog_max ? " or its --hog-max" : "",
                   fmt_bytes(meminfo("MemAvailable"), h, sizeof(h)));
    if (bench_worker(b, hog, args))
        return -1;
    if (worker_line(hog, line, sizeof(line)) || !line_u64(line, "bytes", &bytes) ||
        !line_u64(line, "ns", &ns)) {
        worker_kill(hog);
        bench_note("pressure: the hog died before holding its memory (the OOM killer picks it "
                   "first); no figures under the hog this time");
        return 1;
    }
    bench_note("pressure: the hog took %s in %.1f s; %s available now; file page-cache "
               "residency %.0f%%",
               fmt_bytes(bytes, a, sizeof(a)), (double)ns / 1e9,
               fmt_bytes(meminfo("MemAvailable"), h, sizeof(h)), 100 * file_residency(s->file));
    if (b->o.hog_max && meminfo("MemAvailable") > floor + s->size)
        bench_note("pressure: the hog was capped by --hog-max%s, so the page cache was not "
                   "pushed out: the \"under the hog\" figures are warm figures",
                   b->o.quick ? " (--quick)" : "");
    return 0;
}

static int hog_part(struct bench *b, const struct stores *s)
{
    enum { N = sizeof(hog_order) / sizeof(hog_order[0]) };
    struct worker w[N], hog = {0};
    const char *args[10] = {"hold"};
    char line[256];
    size_t started = 0;
    int rc = 0, hog_up = -1;

    for (; started < N && !rc; started++) {
        stores_args(s, hog_order[started], args + 1);
        rc = bench_worker(b, &w[started], args);
        if (!rc && (worker_line(&w[started], line, sizeof(line)) ||
                    stores_check_sum(s, hog_order[started], line)))
            rc = bench_error("a %s hold worker failed", msys_name(hog_order[started]));
    }
    if (rc && !w[started - 1].pid)
        started--;
    bench_progress("pressure: warm passes");
    for (size_t i = 0; i < started && !rc; i++)
        rc = passes(b, &w[i], hog_order[i], s, WARM_PASS, NULL);
    if (!rc && (hog_up = hog_start(b, s, &hog)) < 0)
        rc = -1;
    if (hog_up == 0)
        bench_progress("pressure: passes under the hog");
    for (size_t i = 0; i < started && !rc && hog_up == 0; i++) {
        bench_row(b, msys_name(hog_order[i]), HOG_PASS, "ms"); /* p50 row first */
        bench_row(b, msys_name(hog_order[i]), HOG_P99, "ms")->pctl = 99;
        rc = passes(b, &w[i], hog_order[i], s, HOG_PASS, HOG_P99);
    }
    if (hog.pid)
        worker_kill(&hog);
    return workers_end(w, started, rc);
}

static void baselines(struct bench *b)
{
    for (size_t i = 0; i < sizeof(idle_order) / sizeof(idle_order[0]); i++) {
        const char *name = msys_name(idle_order[i]);

        bench_base_value(b, name, "full read", bench_value(b, name, WARM_READ), "own warm p50");
        bench_base_value(b, name, "second full read", bench_value(b, name, WARM_AGAIN),
                         "own warm p50");
        bench_base_value(b, name, "full pass", bench_value(b, name, WARM_PASS), "own warm p50");
    }
    bench_base_value(b, CONTROL, NULL, bench_value(b, CONTROL, CTRL_WARM), "own warm p50");
}

static void targets(struct bench *b)
{
    const char *mc = msys_name(MS_MCACHE);
    char metric[96];

    double ctrl;

    snprintf(metric, sizeof(metric), "%s %u s", IDLE_READ, b->o.idle_s);
    bench_target(b, bench_value(b, mc, metric) / bench_value(b, mc, WARM_READ), true, 1.2,
                 "mcache full read after %u s idle / its warm p50", b->o.idle_s);
    snprintf(metric, sizeof(metric), "%s %u s", CTRL_IDLE, b->o.idle_s);
    ctrl = bench_value(b, CONTROL, metric) / bench_value(b, CONTROL, CTRL_WARM);
    if (ctrl > 1.2)
        bench_note("pressure: the host slows memory left idle: the bench's own anonymous memory "
                   "read %.2gx slower after %u s idle than in use (shm stays resident in this "
                   "machine; the time lost is the host's, below it)",
                   ctrl, b->o.idle_s);
    bench_target(b, bench_value(b, mc, HOG_PASS) / bench_value(b, mc, WARM_PASS), true, 1.2,
                 "mcache full pass under the hog (p50) / its warm p50");
    bench_target(b, bench_value(b, mc, HOG_P99) / bench_value(b, mc, WARM_PASS), true, 1.2,
                 "mcache full pass under the hog (p99) / its warm p50");
}

int sc_pressure(struct bench *b)
{
    struct stores s;
    char title[160], sz[32];
    int rc = stores_make(b, &s, "pressure", b->o.size, ST_ARENA | ST_FILE | ST_LMDB);

    if (!rc)
        rc = idle_part(b, &s);
    if (!rc)
        rc = hog_part(b, &s);
    if (!rc) {
        baselines(b);
        snprintf(title, sizeof(title),
                 "a %s model after %u s idle (%u rounds) and under a memory hog (%u passes)",
                 fmt_bytes(s.size, sz, sizeof(sz)), b->o.idle_s, b->o.rounds, b->o.passes);
        bench_print_table(b, title);
        targets(b);
    }
    stores_drop(&s);
    return rc;
}
