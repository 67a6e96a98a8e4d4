/*
 * test_stats.c - serving statistics: what exec'd workers report with
 * mc_report() is summed per version by mcached (counts, errors, units,
 * latency quantiles within the histogram's 3%), kept when a worker is
 * killed with SIGKILL and across a crash of mcached, started from zero when
 * an index is reused after an eviction, and bounded: past 63 resident
 * versions the extra are untracked, and said so.
 */
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"
#include "tests/loader/daemon_fixture.h"

/* ---- workers ------------------------------------------------------------- */

/* Workers that hold models until killed: killed by the teardown if a test fails first. */
static pid_t holders[4];

static void holder_kill(pid_t pid)
{
    kill(pid, SIGKILL);
    assert_int_equal(waitpid(pid, NULL, 0), pid);
    for (size_t i = 0; i < sizeof(holders) / sizeof(holders[0]); i++)
        if (holders[i] == pid)
            holders[i] = 0;
}

static int stats_teardown(void **state)
{
    for (size_t i = 0; i < sizeof(holders) / sizeof(holders[0]); i++)
        if (holders[i] > 0) {
            kill(holders[i], SIGKILL);
            waitpid(holders[i], NULL, 0);
            holders[i] = 0;
        }
    return daemon_teardown(state);
}

#define STATS_TEST(f) cmocka_unit_test_setup_teardown(f, daemon_setup, stats_teardown)

/*
 * Start report_worker on cache "t" (see report_worker.c); its first line in
 * line. Returns its pid; *out is its stdout.
 */
static pid_t worker_start(const char *name, const char *ref, unsigned threads,
                          unsigned long long count, unsigned long long base_ns,
                          unsigned err_permille, unsigned units, const char *mode, char *line,
                          size_t len)
{
    char prog[512], a[5][32];
    int fds[2];
    pid_t pid;
    FILE *out;

    snprintf(a[0], sizeof(a[0]), "%u", threads);
    snprintf(a[1], sizeof(a[1]), "%llu", count);
    snprintf(a[2], sizeof(a[2]), "%llu", base_ns);
    snprintf(a[3], sizeof(a[3]), "%u", err_permille);
    snprintf(a[4], sizeof(a[4]), "%u", units);
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(helper_path("report_worker", prog, sizeof(prog)), "report_worker", D.shm, "t", name,
              ref, a[0], a[1], a[2], a[3], a[4], mode, NULL);
        _exit(127);
    }
    close(fds[1]);
    for (size_t i = 0; !strcmp(mode, "hold") && i < sizeof(holders) / sizeof(holders[0]); i++)
        if (!holders[i]) {
            holders[i] = pid;
            break;
        }
    out = fdopen(fds[0], "r");
    assert_non_null(out);
    line[0] = '\0';
    if (!fgets(line, (int)len, out))
        line[0] = '\0';
    fclose(out);
    return pid;
}

/* Run a worker to its end (mode exit): it must report count x threads. */
static void work(const char *name, const char *ref, unsigned threads, unsigned long long count,
                 unsigned long long base_ns, unsigned err_permille, unsigned units)
{
    char line[600], want[64];
    pid_t pid = worker_start(name, ref, threads, count, base_ns, err_permille, units, "exit", line,
                             sizeof(line));

    snprintf(want, sizeof(want), "reported %llu ", count * threads);
    if (strncmp(line, want, strlen(want)))
        fail_msg("worker said \"%s\", expected \"%s...\"", line, want);
    assert_int_equal(WEXITSTATUS(wait_status(pid)), 0);
}

/* ---- answers ------------------------------------------------------------- */

/* `stats name ref`: status; *j the parsed answer (NULL on error), *msg the error text. */
static int stats_of(const char *name, const char *ref, json_t **j, char **msg)
{
    char *body = NULL;
    int rc = ctl(&body, "stats", 2, name, ref);

    *j = NULL;
    if (rc == 0) {
        *j = json_loads(body, 0, NULL);
        assert_non_null(*j);
        free(body);
    } else if (msg) {
        *msg = body;
    } else {
        free(body);
    }
    return rc;
}

/* Window `label` ("1m", "10m", "loaded") of a stats answer. */
static json_t *window(json_t *j, const char *label)
{
    json_t *w;
    size_t i;

    json_array_foreach(json_object_get(j, "windows"), i, w)
    {
        if (!strcmp(json_string_value(json_object_get(w, "window")), label))
            return w;
    }
    fail_msg("no window %s", label);
    return NULL;
}

static long long num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    assert_non_null(v);
    return json_integer_value(v);
}

/* One of the daemon's `serving` counters ("tracked": indices in use, "snapshots"). */
static long long serving(const char *key)
{
    char *body = NULL;
    json_t *j;
    long long n;

    assert_int_equal(ctl(&body, "stats", 0), 0);
    j = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(j);
    n = num(json_object_get(j, "serving"), key);
    json_decref(j);
    return n;
}

static long long tracked_now(void)
{
    return serving("tracked");
}

/* Wait (at most 5 s) until `tracked` indices are in use. */
static void await_tracked(long long want)
{
    uint64_t until = mc_mono_ns() + 5000000000ull;

    while (tracked_now() != want && mc_mono_ns() < until)
        sleep_ms(20);
    assert_int_equal(tracked_now(), want);
}

/* v within 3.2% of want (the histogram's bucket width). */
static void assert_near(long long v, double want)
{
    if (v < want * 0.968 || v > want * 1.032)
        fail_msg("%lld is not within 3.2%% of %.0f", v, want);
}

static void load(const char *name, const char *ref)
{
    char *body = NULL;

    if (ctl(&body, "load", 2, name, ref) != 0)
        fail_msg("load %s@%s: %s", name, ref, body);
    free(body);
}

/* ---- tests --------------------------------------------------------------- */

/*
 * Two workers of 4 threads each on one version, one on another: every
 * request, error and unit counted for its own version, and the quantiles of
 * a known spread of latencies within the histogram's 3%.
 */
static void test_reports_are_summed_per_version_with_quantiles(void **state)
{
    json_t *j, *w, *c;
    char *body = NULL;

    (void)state;
    push("m", "1.0.0", 65536, 1);
    push("m", "2.0.0", 65536, 2);
    daemon_start_args(NULL);
    load("m", "1.0.0");
    load("m", "2.0.0");
    work("m", "1.0.0", 4, 1000, 10000, 50, 7); /* 10..1000 us; 5% errors; 7 units each */
    work("m", "1.0.0", 4, 1000, 10000, 50, 7);
    work("m", "2.0.0", 1, 1000, 1000000, 100, 0); /* 1..100 ms; 10% errors */
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "version")), "1.0.0");
    assert_true(num(j, "index") >= 1 && num(j, "index") <= 63);
    w = window(j, "loaded");
    assert_int_equal(num(w, "requests"), 8000);
    assert_int_equal(num(w, "errors"), 400);
    assert_int_equal(num(w, "units"), 56000);
    assert_near(num(w, "p50_ns"), 500000);
    assert_near(num(w, "p95_ns"), 950000);
    assert_near(num(w, "p99_ns"), 990000);
    assert_true(json_real_value(json_object_get(w, "error_rate")) == 0.05);
    assert_true(json_real_value(json_object_get(w, "units_per_request")) == 7.0);
    /* Loaded within the last minute: the 1 min window is everything since. */
    assert_int_equal(num(window(j, "1m"), "requests"), 8000);
    assert_int_equal(num(window(j, "10m"), "requests"), 8000);
    json_decref(j);
    /* Any reference resolves: an alias. */
    assert_int_equal(mc_registry_alias_set(D.reg, "m", "canary", "2.0.0", NULL), 0);
    assert_int_equal(ctl(&body, "compare", 3, "m", "1.0.0", "canary"), 0);
    c = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(c);
    w = window(json_array_get(json_object_get(c, "versions"), 1), "loaded");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(c, "versions"), 1), "version")),
                        "2.0.0");
    assert_int_equal(num(w, "requests"), 1000);
    assert_int_equal(num(w, "errors"), 100);
    assert_int_equal(num(w, "units"), 0);
    assert_near(num(w, "p50_ns"), 50000000);
    assert_near(num(w, "p99_ns"), 99000000);
    assert_int_equal(
        num(window(json_array_get(json_object_get(c, "versions"), 0), "loaded"), "requests"), 8000);
    json_decref(c);
    /* A weighted alias: the heaviest target, and the split said. */
    const struct mc_reg_weight split[] = {{"1.0.0", 90}, {"2.0.0", 10}};
    assert_int_equal(mc_registry_alias_set_weighted(D.reg, "m", "prod", split, 2, NULL, NULL), 0);
    assert_int_equal(stats_of("m", "prod", &j, NULL), 0);
    assert_string_equal(json_string_value(json_object_get(j, "version")), "1.0.0");
    assert_string_equal(json_string_value(json_object_get(j, "split")), "1.0.0=90 2.0.0=10");
    json_decref(j);
    assert_int_equal(stats_of("m", "canary", &j, NULL), 0);
    assert_true(json_is_null(json_object_get(j, "split")));
    json_decref(j);
    daemon_stop_clean();
}

/* Unknown model or version, not resident, bad arguments: clear errors. */
static void test_bad_requests_say_what_is_wrong(void **state)
{
    json_t *j;
    char *msg = NULL;

    (void)state;
    push("m", "1.0.0", 65536, 1);
    push("m", "2.0.0", 65536, 2);
    daemon_start_args(NULL);
    load("m", "1.0.0");
    assert_int_equal(stats_of("nosuch", "1.0.0", &j, &msg), MC_ENOENT);
    assert_non_null(strstr(msg, "nosuch"));
    free(msg);
    assert_int_equal(stats_of("m", "9.9.9", &j, &msg), MC_ENOENT);
    assert_non_null(strstr(msg, "9.9.9"));
    free(msg);
    assert_int_equal(stats_of("m", "2.0.0", &j, &msg), MC_ENOENT);
    assert_non_null(strstr(msg, "m@2.0.0 is not resident"));
    assert_non_null(strstr(msg, "mcache load m@2.0.0"));
    free(msg);
    assert_int_equal(ctl(&msg, "compare", 3, "m", "1.0.0", "2.0.0"), MC_ENOENT);
    assert_non_null(strstr(msg, "m@2.0.0 is not resident"));
    free(msg);
    assert_int_equal(ctl(&msg, "stats", 1, "m"), MC_EINVAL);
    assert_non_null(strstr(msg, "NAME REF"));
    free(msg);
    assert_int_equal(ctl(&msg, "compare", 2, "m", "1.0.0"), MC_EINVAL);
    assert_non_null(strstr(msg, "compare NAME REF1 REF2"));
    free(msg);
    /* Nothing changed: 1.0.0 still answers, from zero. */
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    assert_int_equal(num(window(j, "loaded"), "requests"), 0);
    json_decref(j);
    daemon_stop_clean();
}

/*
 * A worker that reported and still holds the model is killed with SIGKILL:
 * its counts stay in the totals, and the next owner of its slot adds to them.
 */
static void test_sigkilled_worker_counts_are_kept(void **state)
{
    char line[600];
    json_t *j;
    pid_t pid;

    (void)state;
    push("m", "1.0.0", 65536, 1);
    daemon_start_args(NULL);
    load("m", "1.0.0");
    pid = worker_start("m", "1.0.0", 2, 700, 20000, 10, 3, "hold", line, sizeof(line));
    assert_string_equal(line, "reported 1400 1.0.0\n");
    holder_kill(pid);
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    assert_int_equal(num(window(j, "loaded"), "requests"), 1400);
    assert_int_equal(num(window(j, "loaded"), "errors"), 20); /* 10 of each 700 */
    assert_int_equal(num(window(j, "loaded"), "units"), 4200);
    json_decref(j);
    /* Slots of the dead worker are free again: the next worker may take them. */
    work("m", "1.0.0", 2, 100, 20000, 0, 0);
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    assert_int_equal(num(window(j, "loaded"), "requests"), 1600);
    assert_near(num(window(j, "loaded"), "p50_ns"), 1000000);
    json_decref(j);
    daemon_stop_clean();
}

/*
 * Evicted, the version's record is freed and its index with it; loaded
 * again it gets an index that counts from zero, though the old counts were
 * in the same rows.
 */
static void test_index_reused_after_eviction_starts_from_zero(void **state)
{
    json_t *j;
    long long idx;
    char *msg = NULL;

    (void)state;
    push("m", "1.0.0", 65536, 1);
    daemon_start_args(NULL);
    load("m", "1.0.0");
    work("m", "1.0.0", 3, 500, 5000, 0, 1);
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    idx = num(j, "index");
    assert_int_equal(num(window(j, "loaded"), "requests"), 1500);
    json_decref(j);
    assert_int_equal(ctl(NULL, "evict", 2, "m", "1.0.0"), 0);
    await_tracked(0); /* the record is freed once no reader holds it */
    assert_int_equal(stats_of("m", "1.0.0", &j, &msg), MC_ENOENT);
    free(msg);
    load("m", "1.0.0");
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    assert_int_equal(num(j, "index"), idx); /* the lowest free index: the same one */
    assert_int_equal(num(window(j, "loaded"), "requests"), 0);
    assert_int_equal(num(window(j, "loaded"), "units"), 0);
    json_decref(j);
    work("m", "1.0.0", 1, 10, 5000, 0, 1);
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    assert_int_equal(num(window(j, "loaded"), "requests"), 10);
    json_decref(j);
    daemon_stop_clean();
}

/*
 * Bounded: with 65 versions resident, 63 are tracked and 2 are not; the
 * untracked ones say so (mcached and mc_report alike), and one becomes
 * tracked once an index is free and it is loaded again.
 */
static void test_more_than_63_resident_versions_are_untracked(void **state)
{
    char ver[32], line[600], *msg = NULL;
    json_t *j;
    pid_t pid;

    (void)state;
    for (int i = 0; i < 65; i++) {
        snprintf(ver, sizeof(ver), "1.0.%d", i);
        push("m", ver, 4096, (uint32_t)i + 1);
    }
    daemon_start_args(NULL);
    for (int i = 0; i < 65; i++) {
        snprintf(ver, sizeof(ver), "1.0.%d", i);
        load("m", ver);
    }
    assert_int_equal(tracked_now(), 63);
    assert_int_equal(stats_of("m", "1.0.64", &j, &msg), MC_ENOTSUP);
    assert_non_null(strstr(msg, "m@1.0.64 is resident but untracked"));
    free(msg);
    assert_true(log_has("m@1.0.64 is resident but untracked"));
    pid = worker_start("m", "1.0.64", 1, 10, 1000, 0, 0, "exit", line, sizeof(line));
    assert_int_equal(WEXITSTATUS(wait_status(pid)), 3);
    assert_non_null(strstr(line, "not tracked"));
    /* A tracked one still counts. */
    work("m", "1.0.3", 1, 10, 1000, 0, 0);
    assert_int_equal(stats_of("m", "1.0.3", &j, NULL), 0);
    assert_int_equal(num(window(j, "loaded"), "requests"), 10);
    json_decref(j);
    /* Free an index, reload an untracked version: tracked now. */
    assert_int_equal(ctl(NULL, "evict", 2, "m", "1.0.0"), 0);
    await_tracked(62);
    assert_int_equal(ctl(NULL, "evict", 2, "m", "1.0.64"), 0);
    load("m", "1.0.64");
    assert_int_equal(tracked_now(), 63);
    work("m", "1.0.64", 1, 10, 1000, 0, 0);
    assert_int_equal(stats_of("m", "1.0.64", &j, NULL), 0);
    assert_int_equal(num(window(j, "loaded"), "requests"), 10);
    json_decref(j);
    daemon_stop_clean();
}

/*
 * A version evicted while a worker still holds it keeps its index until the
 * worker lets go, across a crash of mcached too: adopted, the retired record
 * the worker holds keeps its index out of reuse, and once the worker dies the
 * index is freed.
 */
static void test_held_retired_record_keeps_its_index_across_a_crash(void **state)
{
    char line[600];
    json_t *j;
    pid_t pid;

    (void)state;
    push("m", "1.0.0", 65536, 1);
    push("m", "2.0.0", 65536, 2);
    daemon_start_args(NULL);
    load("m", "1.0.0");
    pid = worker_start("m", "1.0.0", 1, 100, 1000, 0, 0, "hold", line, sizeof(line));
    assert_string_equal(line, "reported 100 1.0.0\n");
    assert_int_equal(ctl(NULL, "evict", 2, "m", "1.0.0"), 0);
    assert_int_equal(tracked_now(), 1); /* held: not freed */
    kill(D.pid, SIGKILL);
    wait_status(D.pid);
    D.pid = 0;
    daemon_start_args(NULL);
    assert_int_equal(tracked_now(), 1); /* the held record's index, from the retired list */
    load("m", "2.0.0");
    assert_int_equal(tracked_now(), 2);
    assert_int_equal(stats_of("m", "2.0.0", &j, NULL), 0);
    assert_int_equal(num(j, "index"), 2); /* 1 is still the held record's */
    json_decref(j);
    holder_kill(pid);
    await_tracked(1); /* the record is freed, and its index */
    load("m", "1.0.0");
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    assert_int_equal(num(j, "index"), 1);
    assert_int_equal(num(window(j, "loaded"), "requests"), 0);
    json_decref(j);
    daemon_stop_clean();
}

/*
 * A window is now minus a snapshot: after a round of snapshots, what is
 * reported next is all a 1 s window holds once that snapshot is 1 s old
 * (and before the next round, 10 s later); "since loaded" holds everything.
 */
static void test_window_counts_only_what_came_after_its_snapshot(void **state)
{
    uint64_t until;
    long long snaps;
    json_t *j = NULL, *w;
    char *msg = NULL;

    (void)state;
    push("m", "1.0.0", 65536, 1);
    daemon_start_args(NULL);
    load("m", "1.0.0");
    work("m", "1.0.0", 1, 100, 1000, 0, 0);
    snaps = serving("snapshots");
    until = mc_mono_ns() + 15000000000ull; /* a round every 10 s */
    while (serving("snapshots") == snaps && mc_mono_ns() < until)
        sleep_ms(50);
    assert_true(serving("snapshots") > snaps);
    work("m", "1.0.0", 1, 50, 1000, 0, 0);
    until = mc_mono_ns() + 5000000000ull;
    do {
        json_decref(j);
        assert_int_equal(ctl(&msg, "stats", 3, "m", "1.0.0", "1"), 0);
        j = json_loads(msg, 0, NULL);
        free(msg);
        assert_non_null(j);
        w = window(j, "1s");
        if (json_real_value(json_object_get(w, "covered_s")) >= 1.0)
            break;
        sleep_ms(50);
    } while (mc_mono_ns() < until);
    assert_true(json_real_value(json_object_get(w, "covered_s")) >= 1.0);
    assert_true(json_real_value(json_object_get(w, "covered_s")) < 10.0);
    assert_int_equal(num(w, "seconds"), 1);
    assert_int_equal(num(w, "requests"), 50);
    assert_int_equal(num(window(j, "loaded"), "requests"), 150);
    json_decref(j);
    /* Out of range: refused, naming the value. */
    assert_int_equal(ctl(&msg, "stats", 3, "m", "1.0.0", "601"), MC_EINVAL);
    assert_non_null(strstr(msg, "\"601\""));
    free(msg);
    assert_int_equal(ctl(&msg, "stats", 3, "m", "1.0.0", "0"), MC_EINVAL);
    free(msg);
    assert_int_equal(ctl(&msg, "stats", 3, "m", "1.0.0", "x"), MC_EINVAL);
    free(msg);
    daemon_stop_clean();
}

/*
 * mcached killed with SIGKILL and started again adopts the arena: the
 * counts are still there under the same index, and a version loaded after
 * the restart gets an index no resident version has.
 */
static void test_crash_of_mcached_keeps_indices_and_counts(void **state)
{
    json_t *j;
    long long idx;

    (void)state;
    push("m", "1.0.0", 65536, 1);
    push("m", "2.0.0", 65536, 2);
    daemon_start_args(NULL);
    load("m", "1.0.0");
    work("m", "1.0.0", 2, 250, 3000, 100, 2);
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    idx = num(j, "index");
    json_decref(j);
    kill(D.pid, SIGKILL);
    wait_status(D.pid);
    D.pid = 0;
    daemon_start_args(NULL);
    assert_int_equal(tracked_now(), 1);
    assert_int_equal(stats_of("m", "1.0.0", &j, NULL), 0);
    assert_int_equal(num(j, "index"), idx);
    assert_int_equal(num(window(j, "loaded"), "requests"), 500);
    assert_int_equal(num(window(j, "loaded"), "errors"), 200);
    assert_int_equal(num(window(j, "1m"), "requests"), 500);
    json_decref(j);
    load("m", "2.0.0");
    assert_int_equal(stats_of("m", "2.0.0", &j, NULL), 0);
    assert_true(num(j, "index") != idx);
    assert_int_equal(num(window(j, "loaded"), "requests"), 0);
    json_decref(j);
    daemon_stop_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        STATS_TEST(test_reports_are_summed_per_version_with_quantiles),
        STATS_TEST(test_bad_requests_say_what_is_wrong),
        STATS_TEST(test_sigkilled_worker_counts_are_kept),
        STATS_TEST(test_index_reused_after_eviction_starts_from_zero),
        STATS_TEST(test_more_than_63_resident_versions_are_untracked),
        STATS_TEST(test_crash_of_mcached_keeps_indices_and_counts),
        STATS_TEST(test_held_retired_record_keeps_its_index_across_a_crash),
        STATS_TEST(test_window_counts_only_what_came_after_its_snapshot),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
