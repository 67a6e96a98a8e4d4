/*
 * sc_registry.c - the `registry` scenario: the registry at scale, 10,000
 * models x 3 versions (--quick: 1,000 x 3).
 *
 *   replay        synth_registry() writes the store as a journal
 *                 of one record per push and alias (as if pushed one by
 *                 one); each run times mc_registry_open() + close (read,
 *                 verify every record's CRC, apply). Then the same after
 *                 mc_registry_compact() (one snapshot). Beside each, in the
 *                 same run, the replay with every line parsed by jansson
 *                 (mc_jline_jansson_only: the replay as it was before the
 *                 fast line reader). The manifest files are in the page
 *                 cache (the first open reads them in, untimed).
 *   daemon start  a real mcached on that store (--preload off: the
 *                 synthetic artifacts are not on disk), timed from exec
 *                 until its socket answers `ping` (manifest replayed, every
 *                 version mirrored into the arena): adopting the arena the
 *                 last one left (warm restart) vs --recreate (a new arena,
 *                 the index built from scratch). No run begins that would
 *                 take this part past DAEMON_BUDGET_S (a pathologically
 *                 slow start is measured fewer times; a note says so).
 *   get latency   the `get` scenario's loop (same keys, same shuffled
 *                 order, pinned to one CPU) on arenas of 100 and 10,000
 *                 models: mcache's get+release vs a raw ck_ht lookup.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "bench/barena.h"
#include "bench/bench.h"
#include "bench/lookups.h"
#include "bench/mcd.h"
#include "bench/model.h"
#include "bench/synth.h"
#include "common/clock.h"
#include "registry/reg_json.h"
#include "registry/registry.h"

#define FAST    "mcache (fast line reader)"
#define JANSSON "jansson only"
#define WARM    "warm restart (adopt)"
#define COLD    "cold start (--recreate)"
#define CKHT    "ck_ht (private)"
#define MCACHE  "mcache"

#define DAEMON_BUDGET_S 30 /* seconds of daemon starts a further run may not go past */

static const unsigned get_sets[2] = {100, 10000};

/* Time open + close of the store; jansson: every line through jansson. */
static int replay(const char *dir, bool jansson, double *ms)
{
    struct mc_registry *r;
    uint64_t t0;
    int rc;

    mc_jline_jansson_only = jansson;
    t0 = mc_mono_ns();
    rc = mc_registry_open(dir, NULL, &r);
    if (!rc)
        mc_registry_close(r);
    *ms = (double)(mc_mono_ns() - t0) / 1e6;
    mc_jline_jansson_only = false;
    return rc ? bench_error("replaying %s: %s", dir, mc_last_error()) : 0;
}

static int replays(struct bench *b, const char *dir, const char *metric)
{
    double ms;

    if (replay(dir, false, &ms)) /* reads the files into the page cache */
        return -1;
    for (unsigned run = 0; run < b->o.runs; run++) {
        if (replay(dir, false, &ms))
            return -1;
        bench_add(b, FAST, metric, "ms", ms);
        if (replay(dir, true, &ms))
            return -1;
        bench_add(b, JANSSON, metric, "ms", ms);
    }
    bench_base_system(b, metric, JANSSON);
    return 0;
}

static int manifest_part(struct bench *b, const char *dir, unsigned models, char *journal,
                         char *snapshot, size_t len)
{
    struct mc_registry *r;
    uint64_t t0 = mc_mono_ns(), sj = 0, ss = 0;
    char a[32], c[32];

    bench_progress("registry: synthesizing %u models x 3 versions", models);
    if (synth_registry(dir, models, 3))
        return bench_error("synthesizing a store in %s: %s", dir, mc_last_error());
    if (mc_registry_open(dir, NULL, &r))
        return bench_error("opening %s: %s", dir, mc_last_error());
    mc_registry_sizes(r, NULL, &sj);
    mc_registry_close(r);
    bench_note("registry: %u models x 3 versions synthesized in %.1f s (journal %s)", models,
               (double)(mc_mono_ns() - t0) / 1e9, fmt_bytes(sj, a, sizeof(a)));
    snprintf(journal, len, "replay, journal of %u x 3 records", models);
    snprintf(snapshot, len, "replay, snapshot of %u x 3 (compacted)", models);
    bench_progress("registry: replaying the journal");
    if (replays(b, dir, journal))
        return -1;
    if (mc_registry_open(dir, NULL, &r))
        return bench_error("opening %s: %s", dir, mc_last_error());
    if (mc_registry_compact(r)) {
        mc_registry_close(r);
        return bench_error("compacting %s: %s", dir, mc_last_error());
    }
    mc_registry_sizes(r, &ss, &sj);
    mc_registry_close(r);
    bench_note("registry: after compaction: snapshot %s, journal %s", fmt_bytes(ss, a, sizeof(a)),
               fmt_bytes(sj, c, sizeof(c)));
    bench_progress("registry: replaying the snapshot");
    return replays(b, dir, snapshot);
}

/* mcached on the store: exec to ping, adopting (warm) or with --recreate. */
static int daemon_part(struct bench *b, const char *dir, unsigned models, char *metric, size_t len)
{
    const char *extra[] = {"--preload", "off", NULL};
    struct mcd d;
    json_t *j = NULL;
    long long versions;
    uint64_t t_part = 0;
    int rc;

    snprintf(metric, len, "daemon start, %u x 3 registered, exec to ping", models);
    if (fs_require(b->o.shm_dir, 160 * MiB, "the registry scenario (an arena)") ||
        mcd_init(b, &d, "registry", dir, 128 * MiB, 64 * MiB, extra))
        return -1;
    bench_progress("registry: first start of mcached (replays, creates the arena, mirrors)");
    rc = mcd_start(&d, false, NULL) || mcd_wait_ping(&d, 120000) ||
         mcd_call(&d, "status", 0, NULL, 10000, &j);
    versions = j ? mcd_json_int(j, "arena", "versions") : -1;
    t_part = mc_mono_ns();
    json_decref(j);
    if (!rc && versions != 3 * (long long)models)
        rc = bench_error("mcached mirrored %lld versions of the %u in the store", versions,
                         3 * models);
    for (unsigned run = 0; run < b->o.runs && !rc; run++) {
        /* A pathologically slow start is measured fewer times, so `all` keeps its budget:
         * no run begins that would end past it (at the pace of the runs so far). */
        if (run && (mc_mono_ns() - t_part) / run * (run + 1) > DAEMON_BUDGET_S * 1000000000ull) {
            bench_note("registry: the daemon starts took %.0f s for %u run%s; another would end "
                       "past this part's budget of %u s: measured %u time%s instead of %u",
                       (double)(mc_mono_ns() - t_part) / 1e9, run, run > 1 ? "s" : "",
                       DAEMON_BUDGET_S, run, run > 1 ? "s" : "", b->o.runs);
            break;
        }
        bench_progress("registry: daemon starts, run %u/%u", run + 1, b->o.runs);
        for (int warm = 1; warm >= 0 && !rc; warm--) {
            uint64_t t0;

            rc = mcd_stop(&d);
            t0 = mc_mono_ns();
            if (!rc)
                rc = mcd_start(&d, !warm, NULL) || mcd_wait_ping(&d, 120000);
            if (!rc)
                bench_add(b, warm ? WARM : COLD, metric, "ms", (double)(mc_mono_ns() - t0) / 1e6);
        }
    }
    if (!rc)
        bench_base_system(b, metric, COLD);
    mcd_drop(&d);
    return rc ? -1 : 0;
}

/* The get scenario's latency loop, mcache vs ck_ht, on 100 and 10,000 models. */
static int get_part(struct bench *b)
{
    struct keyset k[2];
    struct barena ba[2];
    mc_cache *c[2] = {NULL, NULL};
    struct lk lk[2][2];
    char metric[2][64];
    int rc = 0, opened = 0;

    memset(ba, 0, sizeof(ba));
    memset(k, 0, sizeof(k));
    for (int i = 0; i < 2 && !rc; i++) {
        char tag[32];

        snprintf(tag, sizeof(tag), "reg%u", get_sets[i]);
        snprintf(metric[i], sizeof(metric[i]), "get latency, %u models", get_sets[i]);
        keyset_make(&k[i], get_sets[i]);
        rc = keyset_arena(b, &ba[i], &k[i], tag, &c[i]);
        if (!rc)
            rc = lk_open_ckht(&lk[i][0], &k[i]);
        if (!rc) {
            lk_open_mcache(&lk[i][1], &k[i], c[i], false);
            opened = i + 1;
            for (int s = 0; s < 2 && !rc; s++) /* warm: every key */
                rc = lk_run(&lk[i][s], 0, ORDER_LEN);
        }
    }
    cpu_pin(cpu_nth(0));
    for (unsigned run = 0; run < b->o.runs && !rc; run++) {
        bench_progress("registry: get latency run %u/%u", run + 1, b->o.runs);
        for (int i = 0; i < 2 && !rc; i++)
            for (int s = 0; s < 2 && !rc; s++) {
                uint64_t t0 = mc_mono_ns();

                rc = lk_run(&lk[i][s], (uint64_t)run * 7919, b->o.ops);
                bench_add(b, s ? MCACHE : CKHT, metric[i], "ns/op",
                          (double)(mc_mono_ns() - t0) / (double)b->o.ops);
            }
    }
    cpu_pin(-1);
    for (int i = 0; i < 2; i++) {
        if (i < opened) {
            lk_close(&lk[i][0]);
            lk_close(&lk[i][1]);
        }
        if (c[i])
            mc_detach(c[i]);
        barena_destroy(&ba[i]);
        keyset_free(&k[i]);
        bench_base_system(b, metric[i], CKHT);
    }
    return rc ? -1 : 0;
}

int sc_registry(struct bench *b)
{
    unsigned models = b->o.quick ? 1000 : 10000;
    char dir[600], journal[96], snapshot[96], start[96], title[96];
    int rc;

    snprintf(dir, sizeof(dir), "%s/store-registry", b->tmp_work);
    rc = manifest_part(b, dir, models, journal, snapshot, sizeof(journal));
    if (!rc)
        rc = daemon_part(b, dir, models, start, sizeof(start));
    if (!rc)
        rc = get_part(b);
    rm_tree(dir);
    if (rc)
        return -1;
    snprintf(title, sizeof(title), "the registry at %u models x 3 versions", models);
    bench_print_table(b, title);
    bench_target(b, bench_value(b, FAST, journal), true, 100, "replay of the %u x 3 journal, ms",
                 models);
    bench_target(b, bench_value(b, FAST, snapshot), true, 100, "replay of the %u x 3 snapshot, ms",
                 models);
    bench_note("registry: get+release at 10,000 models is %.2fx its time at 100 models",
               bench_value(b, MCACHE, "get latency, 10000 models") /
                   bench_value(b, MCACHE, "get latency, 100 models"));
    return 0;
}
