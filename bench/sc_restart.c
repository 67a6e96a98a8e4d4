/*
 * sc_restart.c - the `restart` scenario: how long a cache is unmanaged when
 * mcached restarts with 1,000 models resident (--quick: 100).
 *
 * A real mcached with its own store: 1,000 small models (64 KiB, distinct
 * bytes) are pushed with the registry library, marked for preloading, and
 * loaded by the daemon at start, into an arena sized to them (twice their
 * bytes + 48 MiB). Then, per run, in this order:
 *
 *   cold start    SIGTERM, then `mcached --recreate`: a new arena is
 *                 committed and every model read and verified again; timed
 *                 from exec until its `stats` say every load finished (and
 *                 `status` confirms all resident). The baseline.
 *   warm restart  SIGTERM, then `mcached`: it adopts the arena the last one
 *                 left; timed from exec until the control socket answers
 *                 `ping`, then `status` must show every model resident and
 *                 the arena adopted. Its own `adopt_ms` is recorded too.
 *   after a crash SIGKILL instead of SIGTERM, then the same as warm.
 *
 * The socket answers only once the daemon has replayed the manifest,
 * adopted or created the arena, set up its cold path and mirrored the
 * registry, so "exec to serving" is the whole time the cache is unmanaged.
 *
 * Then (not with --quick) the same models in a large arena, mcached's
 * default size on this machine (a quarter of MemAvailable, at most 4 GiB):
 * warm restarts with registered buffers (the default: mcached registers the
 * arena with io_uring on a thread once it is idle, after it serves) and with
 * --fixed-buffers off, alternately, on the same arena.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/mcd.h"
#include "bench/model.h"
#include "common/clock.h"
#include "registry/registry.h"
#include "shm/arena.h"

#define MODEL_SIZE (64 * KiB)
#define COLD       "cold start (--recreate, reload all)"
#define WARM       "warm restart after SIGTERM (adopt)"
#define CRASH      "restart after kill -9 (adopt)"
#define ADOPT      "adoption (daemon's own adopt_ms)"
#define FIXED      "registered buffers (default)"
#define PLAIN      "--fixed-buffers off"
#define UNREG      "defaults (buffers not registered here)"

static const char *const plain_opts[] = {"--fixed-buffers", "off", NULL};

/* Push n models of MODEL_SIZE, each marked for preloading. */
static int push_models(struct bench *b, const char *store, unsigned n)
{
    const struct mc_registry_opts ro = {.flags = MC_REGISTRY_CREATE};
    const struct mc_push_opts po = {.preload = true};
    struct mc_registry *reg;
    uint8_t *buf = xrealloc(NULL, MODEL_SIZE);
    char src[700];
    uint64_t t0 = mc_mono_ns();
    int rc = 0;

    snprintf(src, sizeof(src), "%s/restart-model.src", b->tmp_work);
    if (mc_registry_open(store, &ro, &reg)) {
        free(buf);
        return bench_error("creating the store %s: %s", store, mc_last_error());
    }
    for (unsigned i = 0; i < n && !rc; i++) {
        char name[32];
        FILE *f = fopen(src, "w");

        if (i % 250 == 0)
            bench_progress("restart: pushing models %u..%u of %u", i + 1, i + 250 < n ? i + 250 : n,
                           n);
        model_fill(buf, (uint64_t)i << 20, MODEL_SIZE); /* every model its own bytes */
        if (!f || fwrite(buf, 1, MODEL_SIZE, f) != MODEL_SIZE || fclose(f) != 0) {
            rc = bench_error("writing %s failed", src);
            break;
        }
        snprintf(name, sizeof(name), "restart-%04u", i);
        if (mc_registry_push(reg, name, "1.0.0", src, &po, NULL))
            rc = bench_error("pushing %s: %s", name, mc_last_error());
    }
    unlink(src);
    mc_registry_close(reg);
    free(buf);
    if (!rc)
        bench_note("restart: pushed %u models of %s in %.1f s", n,
                   fmt_bytes(MODEL_SIZE, (char[32]){0}, 32), (double)(mc_mono_ns() - t0) / 1e9);
    return rc;
}

/* Wait until the daemon's loads of n models are done; *ns when it saw that (since t0). */
static int wait_loaded(struct mcd *d, unsigned n, uint64_t t0, uint64_t *ns)
{
    struct timespec nap = {0, 1000000};

    for (;;) {
        json_t *j;
        long long ok, failed, busy;

        if (mcd_call(d, "stats", 0, NULL, 10000, &j))
            return -1;
        ok = mcd_json_int(j, "loads", "ok");
        failed = mcd_json_int(j, "loads", "failed");
        busy = mcd_json_int(j, "loads", "in_flight") + mcd_json_int(j, "loads", "queued");
        json_decref(j);
        if (failed > 0)
            return bench_error("mcached failed %lld loads (see %s)", failed, d->log);
        if (ok >= (long long)n && busy == 0) {
            *ns = mc_mono_ns() - t0;
            return 0;
        }
        if (mc_mono_ns() - t0 > 600000000000ull)
            return bench_error("mcached loaded %lld of %u models in 10 minutes", ok, n);
        nanosleep(&nap, NULL);
    }
}

/* status: all n models resident (and, after a restart, the arena adopted); *adopt_ms. */
static int check_resident(struct mcd *d, unsigned n, bool adopted, double *adopt_ms)
{
    json_t *j;
    long long res, ad;

    if (mcd_call(d, "status", 0, NULL, 10000, &j))
        return -1;
    res = mcd_json_int(j, "arena", "models_resident");
    ad = mcd_json_int(j, "daemon", "adopted");
    if (adopt_ms)
        *adopt_ms = mcd_json_real(j, "daemon", "adopt_ms");
    json_decref(j);
    if (res != (long long)n)
        return bench_error("after the %s, mcached has %lld of %u models resident",
                           adopted ? "restart" : "cold start", res, n);
    if (adopted && ad != 1)
        return bench_error("after the restart, mcached did not adopt the arena (it made a new "
                           "one; see %s)",
                           d->log);
    return 0;
}

/* Start (recreating the arena if asked) and wait until all n are loaded; *ns exec to that. */
static int start_loaded(struct mcd *d, unsigned n, bool recreate, uint64_t *ns)
{
    uint64_t t0 = mc_mono_ns();

    if (mcd_start(d, recreate, NULL) || mcd_wait_ping(d, 300000) || wait_loaded(d, n, t0, ns) ||
        check_resident(d, n, false, NULL))
        return -1;
    return 0;
}

/* Stop (or kill) and start again adopting: *ms exec to ping, *adopt_ms the daemon's own. */
static int restart(struct mcd *d, unsigned n, bool crash, const char *const *more, double *ms,
                   double *adopt_ms)
{
    uint64_t t0;

    if (crash)
        mcd_kill(d);
    else if (mcd_stop(d))
        return -1;
    t0 = mc_mono_ns();
    if (mcd_start(d, false, more) || mcd_wait_ping(d, 300000))
        return -1;
    *ms = (double)(mc_mono_ns() - t0) / 1e6;
    return check_resident(d, n, true, adopt_ms);
}

static int fit_part(struct bench *b, const char *store, unsigned n, const char *metric)
{
    uint64_t size = 2 * (uint64_t)n * MODEL_SIZE + 48 * MiB, ns;
    struct mcd d;
    int rc;

    d.cache[0] = '\0';
    if (fs_require(b->o.shm_dir, size + 16 * MiB, "the restart scenario (an arena)") ||
        mcd_init(b, &d, "restart", store, size, 16 * MiB, NULL))
        return -1;
    bench_progress("restart: first start of mcached (creates the arena, loads %u models)", n);
    rc = start_loaded(&d, n, false, &ns);
    for (unsigned run = 0; run < b->o.runs && !rc; run++) {
        double ms, adopt;

        bench_progress("restart: run %u/%u (cold start, warm restart, restart after kill -9)",
                       run + 1, b->o.runs);
        rc = mcd_stop(&d) || start_loaded(&d, n, true, &ns);
        if (!rc)
            bench_add(b, COLD, metric, "ms", (double)ns / 1e6);
        for (int crash = 0; crash < 2 && !rc; crash++) {
            rc = restart(&d, n, crash, NULL, &ms, &adopt);
            if (!rc) {
                bench_add(b, crash ? CRASH : WARM, metric, "ms", ms);
                bench_add(b, crash ? CRASH : WARM, ADOPT, "ms", adopt);
            }
        }
    }
    if (!rc)
        bench_base_system(b, metric, COLD);
    mcd_drop(&d);
    return rc ? -1 : 0;
}

/* The size of mcached's default arena here, if it fits beside everything else. */
static uint64_t big_size(struct bench *b, char *why, size_t len)
{
    uint64_t size = mc_arena_default_size(), room = fs_avail(b->o.shm_dir);
    char a[32], f[32];

    if (b->o.quick) {
        snprintf(why, len, "--quick");
        return 0;
    }
    if (size + 64 * MiB > room || size + GiB > meminfo("MemAvailable")) {
        snprintf(why, len, "its default arena (%s) does not fit: %s free in %s",
                 fmt_bytes(size, a, sizeof(a)), fmt_bytes(room, f, sizeof(f)), b->o.shm_dir);
        return 0;
    }
    return size;
}

/* *dflt: the name of the row at mcached's defaults (for the target). */
static int big_part(struct bench *b, const char *store, unsigned n, uint64_t size, char *metric,
                    size_t len, const char **dflt)
{
    struct mcd d;
    json_t *j = NULL;
    uint64_t ns;
    char sz[32];
    int rc;

    snprintf(metric, len, "warm restart, %s arena (default size)", fmt_bytes(size, sz, sizeof(sz)));
    if (mcd_init(b, &d, "restart-big", store, size, 0, NULL))
        return -1;
    bench_progress("restart: mcached with a %s arena (commits it, loads %u models)", sz, n);
    rc = start_loaded(&d, n, false, &ns);
    /* Registration starts once the daemon is idle a second after start. */
    for (int i = 0; !rc && i < 50; i++) {
        json_decref(j);
        j = NULL;
        rc = mcd_call(&d, "stats", 0, NULL, 10000, &j);
        if (rc || mcd_json_int(j, "loads", "fixed_buffers") == 1)
            break;
        nanosleep(&(struct timespec){.tv_nsec = 100000000}, NULL);
    }
    *dflt = FIXED;
    if (!rc && mcd_json_int(j, "loads", "fixed_buffers") != 1) {
        *dflt = UNREG;
        bench_note("restart: mcached could not register its %s arena with io_uring here "
                   "(memlock limit?): its defaults are plain buffers, so there is no "
                   "registered-buffer row",
                   sz);
    }
    json_decref(j);
    for (unsigned run = 0; run < b->o.runs && !rc; run++) {
        bench_progress("restart: %s arena, run %u/%u", sz, run + 1, b->o.runs);
        for (int plain = 0; plain < 2 && !rc; plain++) {
            double ms, adopt;

            if (plain && !strcmp(*dflt, UNREG))
                break;
            rc = restart(&d, n, false, plain ? plain_opts : NULL, &ms, &adopt);
            if (!rc)
                bench_add(b, plain ? PLAIN : *dflt, metric, "ms", ms);
        }
    }
    if (!rc)
        bench_base_system(b, metric, PLAIN);
    mcd_drop(&d);
    return rc ? -1 : 0;
}

int sc_restart(struct bench *b)
{
    unsigned n = b->o.quick ? 100 : 1000;
    char store[600], metric[96], big_metric[128] = "", why[256] = "", title[128];
    const char *dflt = FIXED;
    uint64_t big = big_size(b, why, sizeof(why));
    int rc;

    snprintf(store, sizeof(store), "%s/store-restart", b->tmp_work);
    snprintf(metric, sizeof(metric), "exec to serving, %u resident", n);
    rc = push_models(b, store, n);
    if (!rc)
        rc = fit_part(b, store, n, metric);
    if (!rc && big)
        rc = big_part(b, store, n, big, big_metric, sizeof(big_metric), &dflt);
    rm_tree(store);
    if (rc)
        return -1;
    snprintf(title, sizeof(title), "mcached restarts with %u models of %s resident", n,
             fmt_bytes(MODEL_SIZE, (char[32]){0}, 32));
    bench_print_table(b, title);
    bench_target(b, bench_value(b, WARM, metric), true, 50,
                 "warm restart (adopt) with %u resident models, arena sized to them, ms", n);
    if (big)
        bench_target(b, bench_value(b, dflt, big_metric), true, 50,
                     "warm restart (adopt) with %u resident models, %s arena (mcached's "
                     "default size), ms",
                     n, fmt_bytes(big, (char[32]){0}, 32));
    else
        bench_note("restart: the run with mcached's default arena size was left out: %s", why);
    bench_note("restart: after kill -9 the restart took %.1f ms (median), adoption %.1f ms; "
               "the cold start %.0f ms",
               bench_value(b, CRASH, metric), bench_value(b, CRASH, ADOPT),
               bench_value(b, COLD, metric));
    return 0;
}
