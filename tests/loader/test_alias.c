/*
 * test_alias.c - aliases served while they move: an alias flipped under 4
 * reading workers; blue-green, where the version an alias still points at is
 * kept (not evicted for room, not evicted by an operator) until the new one
 * serves.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"
#include "tests/loader/daemon_fixture.h"

static void test_alias_flip_under_readers(void **state)
{
    enum { WORKERS = 4 };
    FILE *w[WORKERS];
    char prog[512], cmd[1024], line[512];
    int saw_both = 0;

    (void)state;
    push("a", "1.0.0", 1u << 20, 1);
    push("a", "2.0.0", (1u << 20) + 4096, 2);
    assert_int_equal(mc_registry_alias_set(D.reg, "a", "prod", "1.0.0", NULL), 0);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 3, "a", "1.0.0", "10000"), 0);
    assert_int_equal(ctl(NULL, "load", 3, "a", "2.0.0", "10000"), 0);
    for (int i = 0; i < WORKERS; i++) {
        snprintf(cmd, sizeof(cmd), "%s watch %s t a prod 3000",
                 helper_path("mp_reader", prog, sizeof(prog)), D.shm);
        w[i] = popen(cmd, "r");
        assert_non_null(w[i]);
    }
    for (int k = 0; k < 40; k++) {
        assert_int_equal(mc_registry_alias_set(D.reg, "a", "prod", k % 2 ? "1.0.0" : "2.0.0",
                                               NULL),
                         0);
        sleep_ms(50);
    }
    for (int i = 0; i < WORKERS; i++) {
        long bad = -1;
        assert_non_null(fgets(line, sizeof(line), w[i]));
        printf("# worker %d: %s", i, line);
        assert_int_equal(pclose(w[i]), 0);
        char *b = strstr(line, " bad ");
        assert_non_null(b);
        bad = atol(b + 5);
        assert_int_equal(bad, 0);
        saw_both += strstr(line, "1.0.0=") && strstr(line, "2.0.0=");
    }
    assert_true(saw_both > 0); /* the alias really moved under them */
    daemon_stop_clean();
}


/* The versions one `mp_reader watch` of a#prod saw for ms: counts of 1.0.0 and 2.0.0. */
static void watch_counts(long ms, long *n1, long *n2)
{
    char prog[512], cmd[1024], line[512];
    const char *p;
    FILE *w;

    snprintf(cmd, sizeof(cmd), "%s watch %s t a prod %ld",
             helper_path("mp_reader", prog, sizeof(prog)), D.shm, ms);
    assert_non_null(w = popen(cmd, "r"));
    assert_non_null(fgets(line, sizeof(line), w));
    printf("# %s", line);
    assert_int_equal(pclose(w), 0);
    assert_non_null(strstr(line, " bad 0"));
    *n1 = (p = strstr(line, "1.0.0=")) ? atol(p + 6) : 0;
    *n2 = (p = strstr(line, "2.0.0=")) ? atol(p + 6) : 0;
}

/*
 * A weighted alias set in the registry reaches the arena as one split, and
 * every get of an exec'd worker picks by its weights; moved to one target,
 * the other version is never served again.
 */
static void test_weighted_alias_splits_every_workers_gets(void **state)
{
    const struct mc_reg_weight canary[] = {{"1.0.0", 90}, {"2.0.0", 10}};
    long n1, n2;

    (void)state;
    push("a", "1.0.0", 1u << 16, 1);
    push("a", "2.0.0", (1u << 16) + 4096, 2);
    assert_int_equal(mc_registry_alias_set(D.reg, "a", "prod", "1.0.0", NULL), 0);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 3, "a", "1.0.0", "10000"), 0);
    assert_int_equal(ctl(NULL, "load", 3, "a", "2.0.0", "10000"), 0);
    assert_int_equal(mc_registry_alias_set_weighted(D.reg, "a", "prod", canary, 2, "canary 10%",
                                                    NULL),
                     0);
    log_wait("alias prod of a -> 1.0.0=90 2.0.0=10");
    watch_counts(1500, &n1, &n2);
    assert_true(n1 + n2 > 5000);
    /* 10% within 3 points: more than 7 standard deviations at 5,000 gets. */
    assert_true(n2 * 100 > (n1 + n2) * 7 && n2 * 100 < (n1 + n2) * 13);
    assert_int_equal(mc_registry_alias_set(D.reg, "a", "prod", "2.0.0", NULL), 0);
    log_wait("alias prod of a -> 2.0.0\n");
    watch_counts(300, &n1, &n2);
    assert_true(n2 > 0);
    assert_int_equal(n1, 0);
    daemon_stop_clean();
}


/*
 * mc_get_load() through a weighted alias whose light target is not
 * resident asks mcached for the version the get picked (it used to ask for
 * the alias, which mcached resolves to its heaviest target, already
 * resident: about one get in ten kept failing, and the light target never
 * loaded; a review find).
 */
static void test_get_load_through_a_weighted_alias_loads_the_pick(void **state)
{
    const struct mc_reg_weight canary[] = {{"1.0.0", 70}, {"2.0.0", 30}};
    const char *off[] = {"--preload", "off", NULL};
    char out[512];

    (void)state;
    push("a", "1.0.0", 1u << 16, 1);
    push("a", "2.0.0", (1u << 16) + 4096, 2);
    assert_int_equal(mc_registry_alias_set_weighted(D.reg, "a", "prod", canary, 2, NULL, NULL), 0);
    daemon_start_args(off);
    assert_int_equal(ctl(NULL, "load", 3, "a", "1.0.0", "10000"), 0);
    log_wait("alias prod of a -> 1.0.0=70 2.0.0=30");
    assert_string_equal(model_state("a", "2.0.0"), "registered");
    for (int i = 0; i < 40; i++) {
        assert_int_equal(reader(out, sizeof(out), "getload", "a", "prod", "10000"), 0);
        assert_non_null(strstr(out, "ok "));
    }
    assert_string_equal(model_state("a", "2.0.0"), "resident");
    daemon_stop_clean();
}

/* Moving an alias to a version that needs room must not evict the version
 * the alias still points at (review find: only registry aliases were
 * protected, so the old target could go mid-switch). */
static void test_blue_green_keeps_old_target(void **state)
{
    const char *small[] = {"--size", "64M", "--index-size", "4M", NULL};
    const uint64_t MB = 1u << 20;
    char out[256];

    (void)state;
    push("A", "1.0.0", 20 * MB, 1);
    push("A", "2.0.0", 20 * MB, 2);
    push("C", "1.0.0", 20 * MB, 3);
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "1.0.0", NULL), 0);
    daemon_start_args(small);
    assert_int_equal(ctl(NULL, "load", 2, "A", "prod"), 0);
    sleep_ms(20);
    assert_int_equal(ctl(NULL, "load", 2, "C", "1.0.0"), 0); /* C is newer than A@1 */
    /* A@2 needs 20 MiB: one of A@1 and C must go. A@1 is the least recently
     * used, but prod points at it until A@2 is ready: C goes. */
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "2.0.0", NULL), 0);
    for (int i = 0; i < 500 && strcmp(model_state("A", "2.0.0"), "resident"); i++)
        sleep_ms(10);
    assert_string_equal(model_state("A", "2.0.0"), "resident");
    assert_string_equal(model_state("C", "1.0.0"), "registered");
    assert_string_equal(model_state("A", "1.0.0"), "resident");
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "prod", NULL), 0);
    assert_string_equal(out, "ok 2.0.0 20971520\n");
    daemon_stop_clean();
}

/*
 * While the version an alias moved to cannot load, the arena alias keeps
 * serving the old one: an operator's evict of the old one is refused (it
 * used to succeed, leaving workers of the alias with nothing to serve).
 */
static void test_evict_refused_while_alias_serves_old(void **state)
{
    const uint64_t MB = 1u << 20;
    char path[600], out[256], *body = NULL;
    FILE *f;

    (void)state;
    push("A", "1.0.0", MB, 1);
    push("A", "2.0.0", MB, 2);
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "1.0.0", NULL), 0);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 2, "A", "prod"), 0);
    artifact_path("A", "2.0.0", path, sizeof(path));
    chmod(path, 0644);
    f = fopen(path, "r+");
    assert_non_null(f);
    fseek(f, 4096, SEEK_SET);
    fputc(0x5a ^ fgetc(f), f); /* a bit flip: A@2 can never verify */
    fclose(f);
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "2.0.0", NULL), 0);
    for (int i = 0; i < 500 && strcmp(model_state("A", "2.0.0"), "failed"); i++)
        sleep_ms(10);
    assert_string_equal(model_state("A", "2.0.0"), "failed");
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "prod", NULL), 0);
    assert_string_equal(out, "ok 1.0.0 1048576\n"); /* the old one still serves */
    assert_int_equal(ctl(&body, "evict", 2, "A", "1.0.0"), MC_EBUSY);
    assert_non_null(strstr(body, "still serves an alias"));
    free(body);
    assert_string_equal(model_state("A", "1.0.0"), "resident");
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "prod", NULL), 0);
    /* Removing it from the registry (as gc would) waits for the switch too:
     * the alias keeps serving it (it used to be dropped, and prod with it). */
    assert_int_equal(mc_registry_remove_version(D.reg, "A", "1.0.0", false, NULL), 0);
    assert_int_equal(ctl(NULL, "reload", 0), 0);
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "prod", NULL), 0);
    assert_string_equal(out, "ok 1.0.0 1048576\n");
    /* Once no alias serves it, it goes. */
    assert_int_equal(mc_registry_alias_remove(D.reg, "A", "prod", NULL), 0);
    assert_int_equal(ctl(NULL, "reload", 0), 0);
    assert_string_equal(model_state("A", "1.0.0"), "");
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "1.0.0", NULL), 3);
    daemon_stop_clean();
}

/* mcached's status: the registry generation it applied and how often it resynced. */
static void sync_state(uint64_t *gen, uint64_t *syncs)
{
    char *body = NULL;
    json_t *j, *dm;

    assert_int_equal(ctl(&body, "status", 0), 0);
    j = json_loads(body, 0, NULL);
    assert_non_null(j);
    dm = json_object_get(j, "daemon");
    assert_true(json_is_integer(json_object_get(dm, "registry_syncs")));
    *gen = (uint64_t)json_integer_value(json_object_get(dm, "registry_generation"));
    *syncs = (uint64_t)json_integer_value(json_object_get(dm, "registry_syncs"));
    json_decref(j);
    free(body);
}

/* Wait (5 s at most) until mcached has applied generation want. */
static uint64_t syncs_at(uint64_t want)
{
    uint64_t gen = 0, syncs = 0;

    for (int i = 0; i < 500; i++) {
        sync_state(&gen, &syncs);
        if (gen >= want)
            return syncs;
        sleep_ms(10);
    }
    fail_msg("mcached did not apply generation %llu (it is at %llu)", (unsigned long long)want,
             (unsigned long long)gen);
    return 0;
}

/*
 * A refused change is an "audit" record only: it moves the generation but
 * changes nothing mcached mirrors, so mcached does not resync for it (else
 * anyone who can get a request refused keeps it resyncing); a real change
 * still resyncs.
 */
static void test_refusals_do_not_resync(void **state)
{
    uint64_t s0, s1, g;

    (void)state;
    push("a", "1.0.0", 4096, 1);
    daemon_start_args(NULL);
    s0 = syncs_at(mc_registry_generation(D.reg));
    for (int i = 0; i < 5; i++) /* refused: no such version; each one an audit record */
        assert_int_equal(mc_registry_alias_set(D.reg, "a", "prod", "9.0.0", NULL), MC_ENOENT);
    g = mc_registry_generation(D.reg);
    s1 = syncs_at(g);
    sleep_ms(200); /* a late wake-up would still be counted */
    s1 = syncs_at(g);
    assert_int_equal(s1, s0);
    assert_int_equal(mc_registry_audit_add(D.reg, "DELETE a@1.0.0", "error: unauthorized", NULL),
                     0);
    assert_int_equal(syncs_at(mc_registry_generation(D.reg)), s0);
    /* a real change: resynced, and the alias is mirrored */
    assert_int_equal(mc_registry_alias_set(D.reg, "a", "prod", "1.0.0", NULL), 0);
    assert_true(syncs_at(mc_registry_generation(D.reg)) > s0);
}

/* The newest audit entry of the registry, as D.reg sees it now. */
static const struct mc_reg_audit *last_audit(void)
{
    assert_int_equal(mc_registry_refresh(D.reg, NULL), 0);
    return mc_registry_audit_at(D.reg, mc_registry_audit_count(D.reg) - 1);
}

/*
 * The actor of a change mcached makes for a caller: WHO FROM when given (the
 * caller here is root or mcached's own uid, so trusted as given), else the
 * caller's uid, from local.
 */
static void test_actor_of_pin_and_alias(void **state)
{
    const struct mc_reg_audit *a;
    char want[64];

    (void)state;
    push("a", "1.0.0", 4096, 1);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "pin", 4, "a", "1.0.0", "token:ci", "10.0.0.7:4242"), 0);
    a = last_audit();
    assert_non_null(strstr(a->what, "pinned=true"));
    assert_string_equal(a->who, "token:ci");
    assert_string_equal(a->from, "10.0.0.7:4242");
    assert_int_equal(ctl(NULL, "unpin", 2, "a", "1.0.0"), 0);
    a = last_audit();
    assert_non_null(strstr(a->what, "pinned=false"));
    snprintf(want, sizeof(want), "uid:%u", (unsigned)getuid());
    assert_true(strncmp(a->who, want, strlen(want)) == 0);
    assert_string_equal(a->from, "local");
    assert_int_equal(ctl(NULL, "alias", 6, "a", "prod", "1.0.0", "", "token:pub", "[::1]:99"), 0);
    a = last_audit();
    assert_string_equal(a->who, "token:pub");
    assert_string_equal(a->from, "[::1]:99");
    /* and mcached's own changes afterwards are its own again */
    assert_int_equal(ctl(NULL, "alias", 3, "a", "prod2", "1.0.0"), 0);
    a = last_audit();
    assert_true(strncmp(a->who, want, strlen(want)) == 0);
    assert_string_equal(a->from, "local");
    assert_int_equal(ctl(NULL, "pin", 5, "a", "1.0.0", "x", "y", "z"), MC_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DAEMON_TEST(test_alias_flip_under_readers),
        DAEMON_TEST(test_weighted_alias_splits_every_workers_gets),
        DAEMON_TEST(test_get_load_through_a_weighted_alias_loads_the_pick),
        DAEMON_TEST(test_blue_green_keeps_old_target),
        DAEMON_TEST(test_evict_refused_while_alias_serves_old),
        DAEMON_TEST(test_refusals_do_not_resync),
        DAEMON_TEST(test_actor_of_pin_and_alias),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
