/*
 * test_deploy.c - rollouts run by mcached, with exec'd workers that serve
 * through the alias and report every request with mc_report(): a canary
 * whose new version fails 10% of its requests is rolled back within one
 * interval; a healthy one reaches 100%; kill -9 of mcached mid-rollout and
 * a restart continue from the step it had reached; pause, resume, abort;
 * too few requests hold; bad input changes nothing; every alert reaches the
 * --alert-cmd hook as JSON.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "index/stats.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"
#include "tests/loader/daemon_fixture.h"

/* ---- workers ---- */

struct worker {
    pid_t pid;
    FILE *in, *out;
};

/* The worker a test started, killed by the teardown if the test failed before stopping it. */
static pid_t running_worker;

static int deploy_teardown(void **state)
{
    if (running_worker > 0) {
        kill(running_worker, SIGKILL);
        waitpid(running_worker, NULL, 0);
        running_worker = 0;
    }
    return daemon_teardown(state);
}

#define DEPLOY_TEST(f) cmocka_unit_test_setup_teardown(f, daemon_setup, deploy_teardown)

/* A deploy_worker serving m@prod, failing `permille` of bad's requests, which take lat_us. */
static void worker_start_lat(struct worker *w, const char *bad, int permille, int lat_us)
{
    char prog[512], pm[16], lat[16], line[128];
    int wr[2], rd[2];

    snprintf(pm, sizeof(pm), "%d", permille);
    snprintf(lat, sizeof(lat), "%d", lat_us);
    assert_int_equal(pipe2(wr, O_CLOEXEC), 0);
    assert_int_equal(pipe2(rd, O_CLOEXEC), 0);
    w->pid = fork();
    if (w->pid == 0) {
        dup2(wr[0], 0);
        dup2(rd[1], 1);
        execl(helper_path("deploy_worker", prog, sizeof(prog)), "deploy_worker", D.shm, "t", "m",
              "prod", bad, pm, "2000", lat, NULL);
        _exit(127);
    }
    running_worker = w->pid;
    close(wr[0]);
    close(rd[1]);
    w->in = fdopen(wr[1], "w");
    w->out = fdopen(rd[0], "r");
    assert_non_null(fgets(line, sizeof(line), w->out));
    assert_string_equal(line, "ready\n");
}

static void worker_start(struct worker *w, const char *bad, int permille)
{
    worker_start_lat(w, bad, permille, 100);
}

static void worker_stop(struct worker *w)
{
    char line[128] = "";
    int st;

    fclose(w->in);
    if (fgets(line, sizeof(line), w->out))
        printf("# worker: %s", line);
    fclose(w->out);
    assert_int_equal(waitpid(w->pid, &st, 0), w->pid);
    running_worker = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ---- the registry's view ---- */

static const struct mc_reg_deploy *last_deploy(void)
{
    size_t n;

    assert_int_equal(mc_registry_refresh(D.reg, NULL), 0);
    n = mc_registry_deploy_count(D.reg);
    return n ? mc_registry_deploy_at(D.reg, n - 1) : NULL;
}

/* prod's targets in the registry now. */
static const char *targets(char *buf, size_t len)
{
    return alias_targets("m", "prod", buf, len);
}

/* Wait (at most ms) until the last rollout is in state st; its reason. */
static const struct mc_reg_deploy *await_state(enum mc_deploy_state st, uint64_t ms)
{
    uint64_t until = mono_ms() + ms;
    const struct mc_reg_deploy *x;

    for (;;) {
        x = last_deploy();
        if (x && x->state == st)
            return x;
        if (mono_ms() > until) {
            fprintf(stderr, "rollout is %s (%s), not %s after %llu ms\n",
                    x ? mc_deploy_state_name(x->state) : "absent", x && x->reason ? x->reason : "-",
                    mc_deploy_state_name(st), (unsigned long long)ms);
            dump_log();
            fail();
        }
        sleep_ms(20);
    }
}

/* Wait (at most ms) until the last rollout reached step index i. */
static void await_step(size_t i, uint64_t ms)
{
    uint64_t until = mono_ms() + ms;
    const struct mc_reg_deploy *x;

    while ((x = last_deploy()) && x->step < i && x->state == MC_DEPLOY_RUNNING) {
        if (mono_ms() > until) {
            dump_log();
            fail_msg("rollout still at step %zu after %llu ms", x->step, (unsigned long long)ms);
        }
        sleep_ms(20);
    }
    assert_non_null(x);
    assert_true(x->step >= i);
}

static void setup_two(void)
{
    push("m", "1.0.0", 1u << 20, 1);
    push("m", "2.0.0", 1u << 20, 2);
    assert_int_equal(mc_registry_alias_set(D.reg, "m", "prod", "1.0.0", NULL), 0);
}

/* Begin a canary of m@2.0.0 on prod; the answer's status, body in *body. */
static int begin(const char *extra_json, char **body)
{
    char spec[1024];

    snprintf(spec, sizeof(spec),
             "{\"name\":\"m\",\"version\":\"2.0.0\",\"alias\":\"prod\",\"strategy\":\"canary\","
             "\"steps\":[10,50,100],\"interval_ms\":1500,\"max_error_rate\":0.02,"
             "\"max_p99_ratio\":0,\"min_requests\":50%s}",
             extra_json ? extra_json : "");
    return ctl(body, "deploy", 1, spec);
}

/* ---- tests ---- */

static void test_canary_with_errors_is_rolled_back_within_one_interval(void **state)
{
    char alerts[400], hook[600], t[256], *body = NULL, buf[4096] = "";
    const char *extra[3] = {"--alert-cmd", hook, NULL};
    const struct mc_reg_deploy *x;
    const struct mc_reg_model *m;
    struct worker w;
    uint64_t t0, took;
    FILE *f;

    (void)state;
    setup_two();
    snprintf(alerts, sizeof(alerts), "%s/alerts.json", D.root);
    snprintf(hook, sizeof(hook), "cat >> %s", alerts);
    daemon_start_args(extra);
    worker_start(&w, "2.0.0", 100); /* 10% of 2.0.0's requests fail */
    t0 = mono_ms();
    assert_int_equal(begin(NULL, &body), 0);
    printf("# %s\n", body);
    assert_non_null(strstr(body, "\"targets\":\"1.0.0=90 2.0.0=10\""));
    free(body);
    x = await_state(MC_DEPLOY_ROLLED_BACK, 1500 + 2500);
    took = mono_ms() - t0;
    printf("# rolled back after %llu ms: %s\n", (unsigned long long)took, x->reason);
    assert_true(took < 1500 + 2500);
    assert_non_null(strstr(x->reason, "auto-rollback: error rate"));
    assert_int_equal(x->step, 0); /* it never advanced */
    assert_string_equal(targets(t, sizeof(t)), "1.0.0");
    m = mc_registry_model(D.reg, "m");
    assert_non_null(m->aliases[0].history[m->aliases[0].nhistory - 1].why);
    assert_non_null(strstr(m->aliases[0].history[m->aliases[0].nhistory - 1].why, "auto-rollback"));
    /* The alert is stored right after the rollback's record. */
    for (uint64_t until = mono_ms() + 2000; mc_registry_alert_count(D.reg) == 0;) {
        if (mono_ms() > until)
            fail_msg("no alert stored");
        sleep_ms(20);
        assert_int_equal(mc_registry_refresh(D.reg, NULL), 0);
    }
    assert_string_equal(mc_registry_alert_at(D.reg, mc_registry_alert_count(D.reg) - 1)->kind,
                        "rollback");
    assert_true(log_has("ALERT rollback"));
    worker_stop(&w);
    /* The hook got the alert as JSON on its stdin. */
    for (uint64_t until = mono_ms() + 3000; !strstr(buf, "\"kind\":\"rollback\"");) {
        if ((f = fopen(alerts, "r"))) {
            size_t n = fread(buf, 1, sizeof(buf) - 1, f);
            buf[n] = '\0';
            fclose(f);
        }
        if (mono_ms() > until)
            fail_msg("the alert hook wrote \"%s\"", buf);
        sleep_ms(20);
    }
    printf("# hook: %s", buf);
    assert_non_null(strstr(buf, "\"model\":\"m\""));
    assert_non_null(strstr(buf, "auto-rollback: error rate"));
    {
        char *st = NULL;
        assert_int_equal(ctl(&st, "status", 0), 0);
        assert_non_null(strstr(st, "\"rollback\":1"));
        free(st);
    }
    daemon_stop_clean();
}

static void test_healthy_canary_reaches_100(void **state)
{
    const struct mc_reg_deploy *x;
    struct worker w;
    char t[256], *body = NULL;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    worker_start(&w, "2.0.0", 0);
    assert_int_equal(begin(",\"interval_ms\":1000,\"min_requests\":20", &body), 0);
    free(body);
    x = await_state(MC_DEPLOY_SUCCEEDED, 3 * 1000 + 4000);
    printf("# %s\n", x->reason);
    assert_int_equal(x->step, 2);
    assert_string_equal(targets(t, sizeof(t)), "2.0.0");
    worker_stop(&w);
    daemon_stop_clean();
}

static void test_blue_green_slower_p99_is_rolled_back(void **state)
{
    const struct mc_reg_deploy *x;
    struct worker w;
    char t[256], *body = NULL;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    worker_start_lat(&w, "2.0.0", 0, 2000); /* 2.0.0 takes 2 ms, 1.0.0 0.1 ms */
    assert_int_equal(begin(",\"strategy\":\"blue-green\",\"steps\":[],\"interval_ms\":1000,"
                           "\"min_requests\":20,\"max_p99_ratio\":1.5",
                           &body),
                     0);
    assert_non_null(strstr(body, "\"targets\":\"2.0.0\"")); /* all traffic at once */
    free(body);
    x = await_state(MC_DEPLOY_ROLLED_BACK, 1000 + 3000);
    printf("# %s\n", x->reason);
    assert_non_null(strstr(x->reason, "auto-rollback: p99"));
    assert_string_equal(targets(t, sizeof(t)), "1.0.0");
    worker_stop(&w);
    daemon_stop_clean();
}

static void test_healthy_blue_green_succeeds_after_one_interval(void **state)
{
    const struct mc_reg_deploy *x;
    struct worker w;
    char t[256], *body = NULL;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    worker_start(&w, "2.0.0", 0);
    assert_int_equal(begin(",\"strategy\":\"blue-green\",\"steps\":[],\"interval_ms\":1000,"
                           "\"min_requests\":20,\"max_p99_ratio\":3",
                           &body),
                     0);
    assert_non_null(strstr(body, "\"state\":\"running\""));
    free(body);
    x = await_state(MC_DEPLOY_SUCCEEDED, 1000 + 3000);
    printf("# %s\n", x->reason);
    assert_string_equal(targets(t, sizeof(t)), "2.0.0");
    worker_stop(&w);
    daemon_stop_clean();
}


/*
 * During a blue-green watch the version switched from stays loaded: it
 * cannot be evicted, so a rollback needs no cold load (after the switch it
 * was neither aliased nor pinned; a review find).
 */
static void test_blue_green_keeps_the_old_version_loaded(void **state)
{
    char t[256], *body = NULL;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    assert_int_equal(begin(",\"strategy\":\"blue-green\",\"steps\":[],\"interval_ms\":60000,"
                           "\"min_requests\":20",
                           &body),
                     0);
    free(body);
    assert_string_equal(targets(t, sizeof(t)), "2.0.0");
    assert_string_equal(model_state("m", "1.0.0"), "resident");
    assert_int_equal(ctl(&body, "evict", 2, "m", "1.0.0"), MC_EBUSY);
    printf("# %s\n", body);
    assert_non_null(strstr(body, "rollout"));
    free(body);
    assert_int_equal(ctl(&body, "deploy-ctl", 2, "abort", "m"), 0);
    free(body);
    assert_string_equal(targets(t, sizeof(t)), "1.0.0");
    assert_string_equal(model_state("m", "1.0.0"), "resident");
    daemon_stop_clean();
}

/* The old version served nothing, before the switch or since: p99 cannot be compared, and the
 * outcome says so instead of "healthy". */
static void test_blue_green_without_old_counts_says_p99_was_not_compared(void **state)
{
    const struct mc_reg_deploy *x;
    struct worker w;
    char t[256], *body = NULL;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    assert_int_equal(begin(",\"strategy\":\"blue-green\",\"steps\":[],\"interval_ms\":1000,"
                           "\"min_requests\":20,\"max_p99_ratio\":1.5",
                           &body),
                     0);
    free(body);
    worker_start_lat(&w, "2.0.0", 0, 2000); /* only after the switch: 1.0.0 serves nothing */
    x = await_state(MC_DEPLOY_SUCCEEDED, 1000 + 4000);
    printf("# %s\n", x->reason);
    assert_non_null(strstr(x->reason, "p99 not compared"));
    assert_null(strstr(x->reason, "healthy"));
    assert_string_equal(targets(t, sizeof(t)), "2.0.0");
    worker_stop(&w);
    daemon_stop_clean();
}

static void test_too_few_requests_hold_the_step(void **state)
{
    const struct mc_reg_deploy *x;
    char *body = NULL, t[256];
    uint64_t until;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    /* No worker: nothing is served, so every interval holds. */
    assert_int_equal(begin(",\"interval_ms\":1000", &body), 0);
    free(body);
    until = mono_ms() + 4000;
    while ((x = last_deploy()) && (!x->reason || !strstr(x->reason, "hold")))
        if (mono_ms() > until)
            fail_msg("no hold: %s", x->reason ? x->reason : "-");
        else
            sleep_ms(20);
    printf("# %s\n", x->reason);
    assert_int_equal(x->state, MC_DEPLOY_RUNNING);
    assert_int_equal(x->step, 0);
    assert_string_equal(targets(t, sizeof(t)), "1.0.0=90 2.0.0=10");
    daemon_stop_clean();
}

static void test_kill9_mid_rollout_then_restart_continues_from_its_step(void **state)
{
    const struct mc_reg_deploy *x;
    const struct mc_reg_model *m;
    struct worker w;
    char *body = NULL, t[256];
    size_t tens = 0;
    int st;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    worker_start(&w, "2.0.0", 0);
    assert_int_equal(begin(",\"interval_ms\":1500,\"min_requests\":20", &body), 0);
    free(body);
    await_step(1, 1500 + 3000); /* at 50% */
    assert_string_equal(targets(t, sizeof(t)), "1.0.0=50 2.0.0=50");
    kill(D.pid, SIGKILL);
    assert_int_equal(waitpid(D.pid, &st, 0), D.pid);
    D.pid = 0;
    x = last_deploy();
    assert_int_equal(x->state, MC_DEPLOY_RUNNING);
    assert_int_equal(x->step, 1);
    daemon_start_args(NULL);
    log_wait("it continues");
    x = await_state(MC_DEPLOY_SUCCEEDED, 1500 + 5000);
    assert_int_equal(x->step, 2);
    assert_string_equal(targets(t, sizeof(t)), "2.0.0");
    /* It went on from 50%: the alias was at 90/10 once only. */
    m = mc_registry_model(D.reg, "m");
    for (size_t i = 0; i < m->aliases[0].nhistory; i++) {
        const struct mc_reg_move *mv = &m->aliases[0].history[i];
        printf("# %s -> %s (%s)\n", mv->from ? mv->from : "-", mv->to ? mv->to : "-",
               mv->why ? mv->why : "");
        tens += mv->to && !strcmp(mv->to, "1.0.0=90 2.0.0=10");
    }
    assert_int_equal(tens, 1);
    worker_stop(&w);
    daemon_stop_clean();
}

static void test_pause_resume_and_abort(void **state)
{
    const struct mc_reg_deploy *x;
    char *body = NULL, t[256];

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    assert_int_equal(begin(",\"interval_ms\":60000", &body), 0);
    free(body);
    assert_int_equal(ctl(&body, "deploy-ctl", 2, "pause", "m"), 0);
    free(body);
    assert_int_equal(last_deploy()->state, MC_DEPLOY_PAUSED);
    assert_int_not_equal(ctl(&body, "deploy-ctl", 2, "pause", "m"), 0); /* already */
    assert_non_null(strstr(body, "paused already"));
    free(body);
    assert_int_equal(ctl(&body, "deploy-ctl", 2, "resume", "m"), 0);
    free(body);
    assert_int_equal(last_deploy()->state, MC_DEPLOY_RUNNING);
    assert_string_equal(targets(t, sizeof(t)), "1.0.0=90 2.0.0=10");
    assert_int_equal(ctl(&body, "deploy-ctl", 3, "abort", "m", "prod"), 0);
    free(body);
    x = last_deploy();
    assert_int_equal(x->state, MC_DEPLOY_ABORTED);
    assert_non_null(strstr(x->reason, "aborted by uid"));
    assert_string_equal(targets(t, sizeof(t)), "1.0.0");
    assert_int_not_equal(ctl(&body, "deploy-ctl", 2, "abort", "m"), 0); /* none left */
    free(body);
    daemon_stop_clean();
}


/*
 * Paused while its first step's health check runs, then resumed: the
 * rollout applies its first step (resume used to abort it as "moved outside
 * the rollout", taking the reason pause writes for a decision; a review find).
 */
static void test_pause_during_the_first_gate_then_resume_continues(void **state)
{
    char prog[512], cmd[2048], line[4096], *body = NULL, t[256];
    uint64_t until;
    FILE *f;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    /* The begin waits for its first step: run it in another process. */
    snprintf(cmd, sizeof(cmd),
             "%s %s deploy '{\"name\":\"m\",\"version\":\"2.0.0\",\"alias\":\"prod\","
             "\"strategy\":\"canary\",\"steps\":[10,50,100],\"interval_ms\":60000,"
             "\"max_error_rate\":0.02,\"max_p99_ratio\":0,\"min_requests\":50,"
             "\"health\":[\"/bin/sh\",\"-c\",\"sleep 1\"],\"health_timeout_ms\":9000}'",
             helper_path("ctl_client", prog, sizeof(prog)), D.sock);
    assert_non_null(f = popen(cmd, "r"));
    until = mono_ms() + 6000;
    while (!log_has("applying step 1/3"))
        if (mono_ms() > until)
            fail_msg("step 1 was never gated");
        else
            sleep_ms(10);
    assert_int_equal(ctl(&body, "deploy-ctl", 2, "pause", "m"), 0);
    free(body);
    if (!fgets(line, sizeof(line), f))
        line[0] = '\0';
    pclose(f);
    printf("# begin answered: %s", line);
    assert_int_equal(last_deploy()->state, MC_DEPLOY_PAUSED);
    assert_string_equal(targets(t, sizeof(t)), "1.0.0"); /* the step never happened */
    assert_int_equal(ctl(&body, "deploy-ctl", 2, "resume", "m"), 0);
    free(body);
    /* The resumed rollout gates and applies its first step. */
    until = mono_ms() + 8000;
    while (strcmp(targets(t, sizeof(t)), "1.0.0=90 2.0.0=10") != 0 &&
           last_deploy()->state == MC_DEPLOY_RUNNING)
        if (mono_ms() > until)
            fail_msg("the resumed rollout never applied its first step (prod at %s)", t);
        else
            sleep_ms(20);
    printf("# %s\n", last_deploy()->reason ? last_deploy()->reason : "");
    assert_int_equal(last_deploy()->state, MC_DEPLOY_RUNNING);
    assert_string_equal(targets(t, sizeof(t)), "1.0.0=90 2.0.0=10");
    daemon_stop_clean();
}

static void test_an_untracked_version_holds_with_one_alert(void **state)
{
    const struct mc_reg_deploy *x;
    char *body = NULL, t[256], v[32];
    size_t alerts = 0;
    uint64_t until;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 3, "m", "1.0.0", "10000"), 0);
    /* Every other statistics index taken by resident versions: 2.0.0 loads untracked. */
    for (int i = 1; i < (int)MC_STATS_VERSIONS - 1; i++) {
        snprintf(v, sizeof(v), "0.%d.0", i);
        push("filler", v, 4096, (uint32_t)i);
        assert_int_equal(ctl(NULL, "load", 3, "filler", v, "10000"), 0);
    }
    assert_int_equal(begin(",\"interval_ms\":1000", &body), 0);
    free(body);
    until = mono_ms() + 4000;
    while ((x = last_deploy()) && (!x->reason || !strstr(x->reason, "cannot judge")))
        if (mono_ms() > until)
            fail_msg("no hold: %s", x->reason ? x->reason : "-");
        else
            sleep_ms(20);
    printf("# %s\n", x->reason);
    assert_int_equal(x->state, MC_DEPLOY_RUNNING);
    sleep_ms(2500); /* two more intervals: still one alert */
    assert_int_equal(mc_registry_refresh(D.reg, NULL), 0);
    for (size_t i = 0; i < mc_registry_alert_count(D.reg); i++)
        alerts += !strcmp(mc_registry_alert_at(D.reg, i)->kind, "threshold");
    assert_int_equal(alerts, 1);
    assert_string_equal(targets(t, sizeof(t)), "1.0.0=90 2.0.0=10");
    daemon_stop_clean();
}

static void test_moving_the_alias_by_hand_aborts_the_rollout(void **state)
{
    const struct mc_reg_deploy *x;
    char *body = NULL, t[256];

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    assert_int_equal(begin(",\"interval_ms\":60000", &body), 0);
    free(body);
    assert_int_equal(ctl(&body, "alias", 4, "m", "prod", "1.0.0", "operator override"), 0);
    free(body);
    x = await_state(MC_DEPLOY_ABORTED, 2000);
    printf("# %s\n", x->reason);
    assert_non_null(strstr(x->reason, "moved outside the rollout"));
    assert_string_equal(targets(t, sizeof(t)), "1.0.0");
    log_wait("ALERT threshold");
    daemon_stop_clean();
}

/* A move made while a step's health check runs is not overwritten by that step. */
static void test_moving_the_alias_during_a_gated_step_aborts_the_rollout(void **state)
{
    const struct mc_reg_deploy *x;
    struct worker w;
    char *body = NULL, t[256];
    uint64_t until;

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    worker_start(&w, "2.0.0", 0);
    assert_int_equal(begin(",\"interval_ms\":1000,\"min_requests\":20,"
                           "\"health\":[\"/bin/sh\",\"-c\",\"sleep 1\"],\"health_timeout_ms\":9000",
                           &body),
                     0);
    free(body);
    /* Step 2's gate: its check runs for a second; the operator moves the alias meanwhile. */
    until = mono_ms() + 6000;
    while (!log_has("applying step 2/3"))
        if (mono_ms() > until)
            fail_msg("step 2 was never gated");
        else
            sleep_ms(10);
    assert_int_equal(ctl(&body, "alias", 4, "m", "prod", "1.0.0", "operator override"), 0);
    free(body);
    x = await_state(MC_DEPLOY_ABORTED, 4000);
    printf("# %s\n", x->reason);
    assert_non_null(strstr(x->reason, "moved outside the rollout"));
    assert_string_equal(targets(t, sizeof(t)), "1.0.0");
    worker_stop(&w);
    daemon_stop_clean();
}

static void test_failing_health_gate_fails_the_rollout_before_any_move(void **state)
{
    const struct mc_reg_deploy *x;
    char *body = NULL, t[256];

    (void)state;
    setup_two();
    daemon_start_args(NULL);
    assert_int_not_equal(begin(",\"health\":[\"/bin/sh\",\"-c\",\"echo broken; exit 7\"],"
                               "\"health_timeout_ms\":5000",
                               &body),
                         0);
    printf("# %s\n", body);
    assert_non_null(strstr(body, "exit status 7"));
    assert_non_null(strstr(body, "broken"));
    free(body);
    x = await_state(MC_DEPLOY_FAILED, 2000);
    assert_string_equal(targets(t, sizeof(t)), "1.0.0");
    assert_non_null(x->reason);
    daemon_stop_clean();
}

static void test_bad_input_is_refused_and_changes_nothing(void **state)
{
    static const char *const bad[][2] = {
        {",\"interval_ms\":0", "interval"},
        {",\"interval_ms\":-5", "interval"},
        {",\"interval_ms\":999", "shorter than 1 s"},
        {",\"min_requests\":0", "min_requests must be at least 1"},
        {",\"steps\":[10,5,100]", "step"},
        {",\"steps\":[10,50]", "100"},
        {",\"steps\":[10,50,150]", "step"},
        {",\"max_error_rate\":1.5", "error"},
        {",\"max_error_rate\":-0.1", "error"},
        {",\"max_p99_ratio\":0.5", "p99"},
        {",\"version\":\"9.9.9\"", "9.9.9"},
        {",\"strategy\":\"yolo\"", "yolo"},
        {",\"alias\":\"nosuch\"", "nosuch"},
        {",\"version\":\"3.0.0\"", "3.0.0"}, /* archived: not ready */
    };
    char t[256];
    size_t n;
    uint64_t gen;

    (void)state;
    setup_two();
    push("m", "3.0.0", 1u << 20, 3);
    assert_int_equal(mc_registry_set_status(D.reg, "m", "3.0.0", MC_STATUS_ARCHIVED, "old", NULL),
                     0);
    daemon_start_args(NULL);
    assert_int_equal(mc_registry_refresh(D.reg, NULL), 0);
    n = mc_registry_deploy_count(D.reg);
    gen = mc_registry_generation(D.reg);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char *body = NULL;
        assert_int_not_equal(begin(bad[i][0], &body), 0);
        printf("# %s: %s\n", bad[i][0], body);
        assert_non_null(strstr(body, bad[i][1]));
        free(body);
    }
    assert_int_equal(mc_registry_refresh(D.reg, NULL), 0);
    assert_int_equal(mc_registry_deploy_count(D.reg), n);
    /* nothing written but the audit log's records of refusals the state made */
    for (size_t i = 0; i < mc_registry_audit_count(D.reg); i++) {
        const struct mc_reg_audit *a = mc_registry_audit_at(D.reg, i);

        if (a->generation > gen && strncmp(a->result, "error: ", 7) != 0)
            fail_msg("generation %llu: %s (%s)", (unsigned long long)a->generation, a->what,
                     a->result);
    }
    assert_string_equal(targets(t, sizeof(t)), "1.0.0");
    daemon_stop_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DEPLOY_TEST(test_canary_with_errors_is_rolled_back_within_one_interval),
        DEPLOY_TEST(test_healthy_canary_reaches_100),
        DEPLOY_TEST(test_blue_green_slower_p99_is_rolled_back),
        DEPLOY_TEST(test_healthy_blue_green_succeeds_after_one_interval),
        DEPLOY_TEST(test_blue_green_without_old_counts_says_p99_was_not_compared),
        DEPLOY_TEST(test_too_few_requests_hold_the_step),
        DEPLOY_TEST(test_kill9_mid_rollout_then_restart_continues_from_its_step),
        DEPLOY_TEST(test_pause_resume_and_abort),
        DEPLOY_TEST(test_blue_green_keeps_the_old_version_loaded),
        DEPLOY_TEST(test_pause_during_the_first_gate_then_resume_continues),
        DEPLOY_TEST(test_an_untracked_version_holds_with_one_alert),
        DEPLOY_TEST(test_moving_the_alias_by_hand_aborts_the_rollout),
        DEPLOY_TEST(test_moving_the_alias_during_a_gated_step_aborts_the_rollout),
        DEPLOY_TEST(test_failing_health_gate_fails_the_rollout_before_any_move),
        DEPLOY_TEST(test_bad_input_is_refused_and_changes_nothing),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
