/*
 * sc_deploy.c - the `deploy` scenario: the time from mcached's decision to
 * roll a canary back until every worker's next get sees the old version.
 *
 * A real mcached with its own store: model m at 1.0.0 and 2.0.0 (64 KiB
 * each, preloaded), alias prod -> 1.0.0. W exec'd workers (4; --quick 2),
 * each pinned to a CPU as the other scenarios pin (cpu_nth), serve in a
 * loop: mc_get_keyed(m, prod, KEY), mc_report (3 us; ok=0 for 2.0.0, ok=1
 * for 1.0.0), release, then a 0.1 ms pause (10,000 requests a second each,
 * leaving the CPUs to mcached). KEY is one that a 50/50 split of prod gives
 * to 2.0.0 (found once, before the runs, by the bench itself through that
 * split), so while the canary is at its first step every worker gets 2.0.0
 * and every one of those requests is an error. Each worker notes
 * CLOCK_REALTIME as its first get of 1.0.0 after 2.0.0 returns.
 *
 * Per run, in this order:
 *
 *   auto-rollback   `deploy` (the ctl op behind `mcache deploy`): canary of
 *                   2.0.0 on prod, steps 50,100, interval 1 s, max error
 *                   rate 2%, at least 50 requests. mcached moves prod to
 *                   50/50, judges the interval, finds 100% errors and rolls
 *                   back by itself. The decision's time is the rollback's
 *                   entry in prod's history (at_ns: the record's time, set
 *                   as mcached makes the record, before it is written,
 *                   fsync'd, read back and published to the arena), read
 *                   with the registry library.
 *   operator move   the baseline: `alias m prod 2.0.0` (ctl, gated as
 *                   `mcache alias` is), every worker sees 2.0.0, then
 *                   `alias m prod 1.0.0`: the decision is that move's
 *                   history entry, measured the same way.
 *
 * After each run, a control: a 1 KiB append + fdatasync to a file beside
 * the store (what the disk charges for a registry record now).
 *
 * A sample is one worker's first-old-get time minus the decision's time;
 * "every worker" is the slowest worker of a run. Runs: 20 (--quick 5, or
 * --runs). Then (not with --quick) the same with busy workers: no pause
 * between requests, so W workers spin on the CPUs mcached needs too.
 * Every wait has a deadline and says what did not happen.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/mcd.h"
#include "bench/model.h"
#include "common/clock.h"
#include "mcache.h"
#include "registry/registry.h"

#define MODEL_SIZE  (64 * KiB)
#define MAX_WORKERS 4
#define PACE_NS     "100000" /* a request every 0.1 ms per worker */
#define NEW         "2.0.0"
#define OLD         "1.0.0"
#define ROLLBACK    "auto-rollback (mcached decides)"
#define OPERATOR    "operator's alias move (ctl alias)"
#define ONE         "decision to a worker's next get"
#define ALL         "decision to every worker's next get"
#define BUSY        ", busy workers"
#define CONTROL     "control: 1 KiB append + fdatasync"
#define SYNC        "fdatasync"
#define BACK_WHY    "mcache-bench deploy: the operator moves prod back"
#define SPEC                                                                                       \
    "{\"name\":\"m\",\"version\":\"" NEW "\",\"alias\":\"prod\",\"strategy\":\"canary\","          \
    "\"steps\":[50,100],\"interval_ms\":1000,\"max_error_rate\":0.02,\"max_p99_ratio\":0,"         \
    "\"min_requests\":50}"

/* A worker's stdout, read line by line with a deadline (never through stdio). */
struct feed {
    struct worker w;
    char buf[1024];
    size_t n;
};

struct dep {
    struct bench *b;
    struct mcd d;
    char store[600];
    char key[32];
    struct mc_registry *reg;
    struct feed f[MAX_WORKERS];
    unsigned nw;
    const char *pace;   /* PACE_NS, or "0" (busy) */
    int probe;          /* the control's file beside the store, -1 if not open */
    char metric[6][96]; /* the part's: ONE, its p99, ALL, its p99, SYNC, its p99 */
};

static int push_models(struct dep *x)
{
    const struct mc_registry_opts ro = {.flags = MC_REGISTRY_CREATE};
    const struct mc_push_opts po = {.preload = true};
    const char *const versions[] = {OLD, NEW};
    struct mc_registry *reg;
    uint8_t *buf = xrealloc(NULL, MODEL_SIZE);
    char src[700];
    int rc = 0;

    snprintf(src, sizeof(src), "%s/deploy-model.src", x->b->tmp_work);
    if (mc_registry_open(x->store, &ro, &reg)) {
        free(buf);
        return bench_error("creating the store %s: %s", x->store, mc_last_error());
    }
    for (unsigned i = 0; i < 2 && !rc; i++) {
        FILE *f = fopen(src, "w");
        bool wrote;

        model_fill(buf, (uint64_t)(i + 1) << 20, MODEL_SIZE);
        wrote = f && fwrite(buf, 1, MODEL_SIZE, f) == MODEL_SIZE;
        if ((f && fclose(f) != 0) || !wrote)
            rc = bench_error("writing %s failed", src);
        else if (mc_registry_push(reg, "m", versions[i], src, &po, NULL))
            rc = bench_error("pushing m@%s: %s", versions[i], mc_last_error());
    }
    if (!rc && mc_registry_alias_set(reg, "m", "prod", OLD, NULL))
        rc = bench_error("setting alias prod of m to %s: %s", OLD, mc_last_error());
    unlink(src);
    mc_registry_close(reg);
    free(buf);
    return rc;
}

/* Wait until mcached has both versions resident. */
static int wait_resident(struct mcd *d)
{
    uint64_t t0 = mc_mono_ns();

    for (;;) {
        json_t *j;
        long long n;

        if (mcd_call(d, "status", 0, NULL, 10000, &j))
            return -1;
        n = mcd_json_int(j, "arena", "models_resident");
        json_decref(j);
        if (n >= 2)
            return 0;
        if (mc_mono_ns() - t0 > 60000000000ull) {
            mcd_log_tail(d, 15);
            return bench_error("deploy: mcached has %lld of m's 2 versions resident after 60 s "
                               "(its log is above)",
                               n);
        }
        usleep(5000);
    }
}

/* A key that the 50/50 split of prod (the canary's first step) gives to NEW. */
static int find_key(struct dep *x)
{
    const char *const to_split[] = {"m", "prod", (OLD "=50 " NEW "=50"),
                                    "mcache-bench deploy: finding a key"};
    const char *const to_old[] = {"m", "prod", OLD, "mcache-bench deploy: key found"};
    mc_cache *c = NULL;
    int rc;

    if (mcd_call(&x->d, "alias", 4, to_split, 30000, NULL))
        return -1;
    rc = mc_attach_dir(x->b->shm_work, x->d.cache, &c);
    if (rc)
        return bench_error("deploy: attaching cache %s: %s", x->d.cache, mc_last_error());
    x->key[0] = '\0';
    for (unsigned i = 0; i < 10000 && !x->key[0] && !rc; i++) {
        char k[32];
        mc_model *m;

        snprintf(k, sizeof(k), "user-%u", i);
        rc = mc_get_keyed(c, "m", "prod", k, strlen(k), &m);
        if (rc) {
            rc = bench_error("deploy: get m@prod with key %s: %s", k, mc_last_error());
            break;
        }
        if (!strcmp(mc_model_version(m), NEW))
            snprintf(x->key, sizeof(x->key), "%s", k);
        mc_release(m);
    }
    mc_detach(c);
    if (!rc && !x->key[0])
        rc = bench_error("deploy: no key of user-0..user-9999 got m@%s from a 50/50 split of "
                         "prod (is the split served?)",
                         NEW);
    if (mcd_call(&x->d, "alias", 4, to_old, 30000, NULL))
        rc = -1;
    return rc;
}

/* The next line of worker i into line (newline removed), waiting until deadline (mono ns). */
static int feed_line(struct dep *x, unsigned i, uint64_t deadline, const char *waiting_for,
                     char *line, size_t len)
{
    struct feed *f = &x->f[i];
    int fd = fileno(f->w.out);

    for (;;) {
        char *nl = memchr(f->buf, '\n', f->n);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        uint64_t now = mc_mono_ns();
        ssize_t got;
        int pr;

        if (nl) {
            size_t l = (size_t)(nl - f->buf);

            snprintf(line, len, "%.*s", (int)l, f->buf);
            memmove(f->buf, nl + 1, f->n - l - 1);
            f->n -= l + 1;
            return 0;
        }
        if (f->n == sizeof(f->buf))
            return bench_error("deploy: worker %d wrote a line longer than %zu bytes",
                               (int)f->w.pid, sizeof(f->buf));
        if (now >= deadline) {
            mcd_log_tail(&x->d, 15);
            return bench_error("deploy: worker %u (pid %d) did not report %s in time (mcached's "
                               "log is above)",
                               i, (int)f->w.pid, waiting_for);
        }
        pr = poll(&p, 1, (int)((deadline - now) / 1000000 + 1));
        if (pr < 0 && errno != EINTR)
            return bench_error("deploy: poll: %s", strerror(errno));
        if (pr <= 0)
            continue;
        got = read(fd, f->buf + f->n, sizeof(f->buf) - f->n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            return bench_error("deploy: worker %u (pid %d) exited while the bench waited for %s "
                               "(its message, if any, is above)",
                               i, (int)f->w.pid, waiting_for);
        f->n += (size_t)got;
    }
}

/* Every worker's next line must start with word; its at_ns= into at[] (if at). */
static int await_all(struct dep *x, const char *word, uint64_t ms, const char *what, uint64_t *at)
{
    uint64_t deadline = mc_mono_ns() + ms * 1000000ull;
    char line[1024];

    for (unsigned i = 0; i < x->nw; i++) {
        uint64_t t = 0;

        if (feed_line(x, i, deadline, what, line, sizeof(line)))
            return -1;
        if (strncmp(line, word, strlen(word)) || !line_u64(line, "at_ns", &t))
            return bench_error("deploy: worker %u said \"%s\" while the bench waited for %s", i,
                               line, what);
        if (at)
            at[i] = t;
    }
    return 0;
}

static int start_workers(struct dep *x)
{
    char cpu[MAX_WORKERS][16], line[1024];
    uint64_t deadline = mc_mono_ns() + 30000000000ull;

    for (unsigned i = 0; i < x->nw; i++) {
        const char *args[] = {"serve", x->b->shm_work, x->d.cache, "m", "prod", x->key, NEW,
                              OLD,     cpu[i],         x->pace,    NULL};

        snprintf(cpu[i], sizeof(cpu[i]), "%d", cpu_nth(i));
        if (bench_worker(x->b, &x->f[i].w, args))
            return -1;
        x->f[i].n = 0;
    }
    for (unsigned i = 0; i < x->nw; i++) {
        if (feed_line(x, i, deadline, "its first get", line, sizeof(line)))
            return -1;
        if (strcmp(line, "ready version=" OLD))
            return bench_error("deploy: worker %u's first get: \"%s\" (expected m@prod to be %s)",
                               i, line, OLD);
    }
    return 0;
}

/* End every worker: on success, close its stdin and read its last line ("gets=N"). */
static int stop_workers(struct dep *x, int rc)
{
    uint64_t deadline = mc_mono_ns() + 10000000000ull;
    char line[1024];

    for (unsigned i = 0; i < x->nw; i++) {
        if (!x->f[i].w.pid)
            continue;
        if (!rc) {
            fclose(x->f[i].w.in);
            x->f[i].w.in = NULL;
            rc = feed_line(x, i, deadline, "its count of gets as it ends", line, sizeof(line));
            if (!rc && strncmp(line, "gets=", 5))
                rc = bench_error("deploy: worker %u ended with \"%s\"", i, line);
        }
        if (rc)
            worker_kill(&x->f[i].w);
        else
            rc = worker_finish(&x->f[i].w);
    }
    return rc;
}

/* prod's newest history entry made at or after since whose why starts with prefix. */
static int decision(struct dep *x, const char *prefix, uint64_t since, uint64_t *at)
{
    const struct mc_reg_model *m;

    if (mc_registry_refresh(x->reg, NULL))
        return bench_error("deploy: reading the store %s: %s", x->store, mc_last_error());
    m = mc_registry_model(x->reg, "m");
    for (size_t i = 0; m && i < m->naliases; i++) {
        const struct mc_reg_alias *a = &m->aliases[i];

        if (strcmp(a->alias, "prod"))
            continue;
        for (size_t h = a->nhistory; h-- > 0;) {
            const struct mc_reg_move *mv = &a->history[h];

            if (mv->at_ns < since)
                break;
            if (mv->why && !strncmp(mv->why, prefix, strlen(prefix))) {
                *at = mv->at_ns;
                return 0;
            }
        }
    }
    return bench_error("deploy: prod of m has no history entry \"%s...\" since the run began",
                       prefix);
}

/* The last rollout must have been rolled back (else its state and reason say why not). */
static int check_rolled_back(struct dep *x)
{
    size_t n = mc_registry_deploy_count(x->reg);
    const struct mc_reg_deploy *r = n ? mc_registry_deploy_at(x->reg, n - 1) : NULL;

    if (r && r->state == MC_DEPLOY_ROLLED_BACK)
        return 0;
    mcd_log_tail(&x->d, 15);
    return bench_error("deploy: the canary ended %s (%s), not rolled back; mcached's log is above",
                       r ? mc_deploy_state_name(r->state) : "absent",
                       r && r->reason ? r->reason : "no reason");
}

static void record(struct dep *x, const char *system, uint64_t at, const uint64_t *seen)
{
    double worst = 0;

    for (unsigned i = 0; i < x->nw; i++) {
        double ms = ((double)seen[i] - (double)at) / 1e6;

        bench_add(x->b, system, x->metric[0], "ms", ms);
        bench_add(x->b, system, x->metric[1], "ms", ms);
        worst = ms > worst ? ms : worst;
    }
    bench_add(x->b, system, x->metric[2], "ms", worst);
    bench_add(x->b, system, x->metric[3], "ms", worst);
}

/* A worker saw the old version before the decision was made: something else moved prod. */
static int check_order(struct dep *x, const char *what, uint64_t at, const uint64_t *seen)
{
    for (unsigned i = 0; i < x->nw; i++)
        if (seen[i] < at)
            return bench_error("deploy: worker %u got m@%s %.3f ms before the %s was recorded; "
                               "is something else moving prod?",
                               i, OLD, (double)(at - seen[i]) / 1e6, what);
    return 0;
}

/* The control: what an append + fdatasync costs in the store's file system now. */
static int probe_sync(struct dep *x)
{
    char buf[1024];
    uint64_t t0;

    memset(buf, 'x', sizeof(buf));
    t0 = mc_mono_ns();
    if (write(x->probe, buf, sizeof(buf)) != (ssize_t)sizeof(buf) || fdatasync(x->probe) != 0)
        return bench_error("deploy: writing the control's file beside the store %s: %s", x->store,
                           strerror(errno));
    bench_add(x->b, CONTROL, x->metric[4], "ms", (double)(mc_mono_ns() - t0) / 1e6);
    bench_add(x->b, CONTROL, x->metric[5], "ms", (double)(mc_mono_ns() - t0) / 1e6);
    return 0;
}

static int one_run(struct dep *x)
{
    const char *const spec[] = {SPEC};
    const char *const fwd[] = {"m", "prod", NEW, "mcache-bench deploy: the operator moves prod"};
    const char *const back[] = {"m", "prod", OLD, BACK_WHY};
    uint64_t seen[MAX_WORKERS], at, t0 = mc_wall_ns();

    /* The canary: mcached moves prod to 50/50, judges 1 s of errors, rolls back. */
    if (mcd_call(&x->d, "deploy", 1, spec, 30000, NULL) ||
        await_all(x, "new", 10000, "its first get of " NEW " (the canary's first step)", NULL) ||
        await_all(x, "old", 30000, "its first get of " OLD " after the rollback", seen) ||
        decision(x, "auto-rollback", t0, &at) || check_rolled_back(x) ||
        check_order(x, "rollback", at, seen))
        return -1;
    record(x, ROLLBACK, at, seen);

    /* The baseline: an operator's plain moves, gated by mcached as `mcache alias` is. */
    t0 = mc_wall_ns();
    if (mcd_call(&x->d, "alias", 4, fwd, 30000, NULL) ||
        await_all(x, "new", 10000, "its first get of " NEW " (the operator's move)", NULL) ||
        mcd_call(&x->d, "alias", 4, back, 30000, NULL) ||
        await_all(x, "old", 10000, "its first get of " OLD " (the operator's move back)", seen) ||
        decision(x, BACK_WHY, t0, &at) || check_order(x, "operator's move", at, seen))
        return -1;
    record(x, OPERATOR, at, seen);
    return probe_sync(x);
}

/* One part: workers at x->pace serve; runs of a rollback and an operator's move. */
static int part(struct dep *x, unsigned runs, bool busy)
{
    int rc;

    x->pace = busy ? "0" : PACE_NS;
    snprintf(x->metric[0], sizeof(x->metric[0]), "%s%s", ONE, busy ? BUSY : "");
    snprintf(x->metric[1], sizeof(x->metric[1]), "%s%s, p99", ONE, busy ? BUSY : "");
    snprintf(x->metric[2], sizeof(x->metric[2]), "%s%s", ALL, busy ? BUSY : "");
    snprintf(x->metric[3], sizeof(x->metric[3]), "%s%s, p99", ALL, busy ? BUSY : "");
    snprintf(x->metric[4], sizeof(x->metric[4]), "%s%s", SYNC, busy ? BUSY : "");
    snprintf(x->metric[5], sizeof(x->metric[5]), "%s%s, p99", SYNC, busy ? BUSY : "");
    bench_progress("deploy: %u workers, %s, serve m@prod with key %s (a 50/50 split gives it %s)",
                   x->nw, busy ? "never idle" : "each a request every 0.1 ms", x->key, NEW);
    rc = start_workers(x);
    /* Rows in this order: the p50 rows, then the p99 ones. */
    for (int s = 0; s < 2 && !rc; s++) {
        const char *sys = s ? OPERATOR : ROLLBACK;

        for (int m = 0; m < 4; m++)
            bench_row(x->b, sys, x->metric[m], "ms")->pctl = m % 2 ? 99 : 50;
    }
    if (!rc) {
        bench_row(x->b, CONTROL, x->metric[4], "ms");
        bench_row(x->b, CONTROL, x->metric[5], "ms")->pctl = 99;
    }
    for (unsigned run = 0; run < runs && !rc; run++) {
        bench_progress("deploy: %srun %u/%u (a canary rolled back by mcached, then an operator's "
                       "move)",
                       busy ? "busy workers, " : "", run + 1, runs);
        rc = one_run(x);
    }
    rc = stop_workers(x, rc);
    if (!rc)
        for (int m = 0; m < 4; m++)
            bench_base_system(x->b, x->metric[m], OPERATOR);
    return rc;
}

static int measure(struct dep *x, unsigned runs)
{
    const struct mc_registry_opts ro = {.flags = MC_REGISTRY_READONLY};
    char probe[700];
    int rc;

    snprintf(probe, sizeof(probe), "%s/deploy-control", x->b->tmp_work);
    x->probe = open(probe, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
    if (x->probe < 0)
        return bench_error("deploy: creating %s: %s", probe, strerror(errno));
    rc = mcd_init(x->b, &x->d, "deploy", x->store, 48 * MiB, 16 * MiB, NULL) ||
         mcd_start(&x->d, false, NULL) || mcd_wait_ping(&x->d, 60000) || wait_resident(&x->d) ||
         find_key(x);
    if (!rc && mc_registry_open(x->store, &ro, &x->reg))
        rc = bench_error("deploy: opening the store %s: %s", x->store, mc_last_error());
    if (!rc)
        rc = part(x, runs, false);
    if (!rc && !x->b->o.quick)
        rc = part(x, runs, true);
    if (x->reg)
        mc_registry_close(x->reg);
    x->reg = NULL;
    mcd_drop(&x->d);
    close(x->probe);
    unlink(probe);
    return rc ? -1 : 0;
}

int sc_deploy(struct bench *b)
{
    static struct dep x; /* the feeds' buffers */
    unsigned runs = b->o.runs_given ? b->o.runs : b->o.quick ? 5 : 20;
    char title[160], one99[96], all99[96];
    int rc;

    memset(&x, 0, sizeof(x));
    x.b = b;
    x.nw = b->o.quick ? 2 : 4;
    x.d.cache[0] = '\0';
    snprintf(x.store, sizeof(x.store), "%s/store-deploy", b->tmp_work);
    rc = push_models(&x);
    if (!rc)
        rc = measure(&x, runs);
    rm_tree(x.store);
    if (rc)
        return -1;
    snprintf(title, sizeof(title),
             "a canary's rollback reaches %u serving workers (%u runs; key pinned to the canary)",
             x.nw, runs);
    bench_print_table(b, title);
    snprintf(one99, sizeof(one99), "%s, p99", ONE);
    snprintf(all99, sizeof(all99), "%s, p99", ALL);
    bench_target(b, bench_value(b, ROLLBACK, all99), true, 10,
                 "rollback decision to every worker's next get of the old version, p99, ms "
                 "(our target)");
    bench_note("deploy: from the rollback's record to a worker's next get of %s: p50 %.3f ms, "
               "p99 %.3f ms; from an operator's move: p50 %.3f ms, p99 %.3f ms",
               OLD, bench_value(b, ROLLBACK, ONE), bench_value(b, ROLLBACK, one99),
               bench_value(b, OPERATOR, ONE), bench_value(b, OPERATOR, one99));
    if (b->o.quick)
        bench_note("deploy: the part with busy workers (never idle) was left out: --quick");
    return 0;
}
