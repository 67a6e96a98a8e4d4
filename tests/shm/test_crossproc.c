/*
 * test_crossproc.c - the reader protocol under fire. Exec'd reader processes
 * resolve and verify models while this process (the writer) publishes,
 * evicts, reloads, removes, moves aliases, grows the table and reclaims,
 * overwriting everything it frees with poison. Any read of freed or partial
 * memory shows up as a bad byte, name, version or metadata.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "shm/slab.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

#define READERS     3
#define LOOKUPS     350000 /* per reader: > 1,000,000 in all */
#define NMODELS     48
#define MAX_FILLERS 12000

static const char *versions[] = {"1.0.0", "1.1.0", "2.0.0"};

static uint64_t rnd_state = 88172645463325252ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

static int publish(struct tw *t, const char *name, const char *ver)
{
    uint64_t size = 4096 + rnd() % (60 * 1024);

    return tw_publish(t, name, ver, size, seed_of(name, ver));
}

static void churn_once(struct tw *t, int *fillers)
{
    char name[32];
    const char *ver = versions[rnd() % 3];
    struct mc_version_desc d = {.checksum = "x", .state = MC_STATE_REGISTERED,
                                .data_size = 1};
    int op = (int)(rnd() % 100);

    snprintf(name, sizeof(name), "m%d", (int)(rnd() % NMODELS));
    if (op < 35) { /* load (replaces any record) */
        if (publish(t, name, ver) == MC_ENOSPC)
            mc_reclaim_poll(&t->rc);
    } else if (op < 50) { /* evict */
        char meta[64];
        snprintf(meta, sizeof(meta), "{\"seed\":%u}", seed_of(name, ver));
        d.name = name;
        d.version = ver;
        d.meta = meta;
        mc_table_put_version(&t->w, &d, NULL);
    } else if (op < 62) { /* remove */
        mc_table_remove_version(&t->w, name, ver);
    } else if (op < 72) { /* move the alias */
        mc_table_set_alias(&t->w, name, "prod", ver);
    } else if (op < 80) { /* make it weighted: two or three versions */
        const char *vs[] = {"1.0.0", "1.1.0", "2.0.0"};
        uint32_t w1 = 1 + (uint32_t)(rnd() % 98), w2 = 1 + (uint32_t)(rnd() % (99 - w1));
        uint32_t ws3[] = {w1, w2, 100 - w1 - w2}, ws2[] = {w1, 100 - w1};
        bool three = rnd() % 2;

        mc_table_set_alias_split(&t->w, name, "prod", vs, three ? ws3 : ws2, three ? 3 : 2);
    } else if (op < 85) {
        mc_table_remove_alias(&t->w, name, "prod");
    } else if (*fillers < MAX_FILLERS) { /* grow the table */
        for (int i = 0; i < 16; i++) {
            snprintf(name, sizeof(name), "filler%d", (*fillers)++);
            d.name = name;
            d.version = "1.0.0";
            d.meta = "{}";
            assert_int_equal(mc_table_put_version(&t->w, &d, NULL), 0);
        }
    }
}

/* Exec mp_reader with args, its stdout on a pipe: the pid, and the pipe's read end in *out. */
static pid_t reader_start(char *const *args, int *out)
{
    char prog[512];
    int p[2];
    pid_t pid;

    helper_path("mp_reader", prog, sizeof(prog));
    assert_int_equal(pipe(p), 0);
    pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        execv(prog, args);
        _exit(127);
    }
    close(p[1]);
    *out = p[0];
    return pid;
}

/* Run exec'd readers (argv after "mp_reader") while this process churns. */
static void churn_under_readers(struct tw *t, int nreaders, char *const *args, long *total,
                                long *ok_total, const char *fmt, char *last, size_t lastlen)
{
    pid_t pids[8];
    int outs[8], running = nreaders, fillers = 0;
    uint64_t ops = 0;

    for (int i = 0; i < nreaders; i++)
        pids[i] = reader_start(args, &outs[i]);
    /* Churn until every reader is done. */
    while (running > 0) {
        /* Reclaim after every operation: freed memory is reused (and
         * poisoned) as soon as the protocol allows, which is what makes a
         * protocol bug visible. */
        for (int k = 0; k < 50; k++, ops++) {
            churn_once(t, &fillers);
            mc_reclaim_poll(&t->rc);
        }
        for (int i = 0; i < nreaders; i++) {
            int st;
            if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                char buf[256] = {0};
                long n = 0, ok = 0, bad = -1;
                ssize_t len = read(outs[i], buf, sizeof(buf) - 1);
                assert_true(len > 0);
                printf("# reader %d: %s", i, buf);
                if (last)
                    snprintf(last, lastlen, "%s", buf);
                assert_int_equal(sscanf(buf, fmt, &n, &ok, &bad), 3);
                assert_true(WIFEXITED(st));
                assert_int_equal(WEXITSTATUS(st), 0);
                assert_int_equal(bad, 0);
                *total += n;
                *ok_total += ok;
                pids[i] = 0;
                close(outs[i]);
                running--;
            }
        }
    }
    printf("# writer: %llu operations, %d fillers, %llu freed\n", (unsigned long long)ops,
           fillers, (unsigned long long)t->rc.freed_total);
}

static void populate(struct tw *t)
{
    for (int i = 0; i < NMODELS; i++) {
        char name[32];
        snprintf(name, sizeof(name), "m%d", i);
        for (int v = 0; v < 3; v++)
            assert_int_equal(publish(t, name, versions[v]), 0);
        assert_int_equal(mc_table_set_alias(&t->w, name, "prod", "1.1.0"), 0);
    }
}

/* One process, many threads: slots per thread, releases from other threads,
 * threads exiting while their models are still held. */
static void test_threads_share_a_cache(void **state)
{
    struct tw t;
    char m_str[32];
    long total = 0, ok = 0;

    (void)state;
    mc_poison_freed = 1;
    assert_int_equal(tw_create(&t, 256ull << 20, 0), 0);
    populate(&t);
    snprintf(m_str, sizeof(m_str), "%d", NMODELS);
    char *args[] = {"mp_reader", "threads", t.dir, (char *)t.cache, "4", "100000", m_str, NULL};
    char line[256];
    churn_under_readers(&t, 1, args, &total, &ok, "threads %ld ok %ld bad %ld", line,
                        sizeof(line));
    assert_true(ok > 10000);
    /* Slots of exited threads are reused once their models are released. */
    int slots = atoi(strstr(line, "slots ") + 6);
    assert_true(slots <= 32);
    /* Every slot the process claimed was given back. */
    uint8_t live[MC_READER_SLOTS_MAX];
    assert_int_equal(mc_readers_live(&t.r, live), 0);
    mc_reclaim_poll(&t.rc);
    assert_int_equal(t.rc.n, 0);
    assert_int_equal(mc_table_check(&t.w), 0);
    tw_destroy(&t);
}

/* A cache attached before fork() is harmless and unusable in the child. */
static void test_fork(void **state)
{
    struct tw t;
    char prog[512];

    (void)state;
    assert_int_equal(tw_create(&t, 64ull << 20, 0), 0);
    assert_int_equal(tw_publish(&t, "m0", "1.0.0", 100000, seed_of("m0", "1.0.0")), 0);
    char *argv[] = {"mp_reader", "fork", t.dir, (char *)t.cache, "m0", "1.0.0", NULL};
    int st = wait_status(spawn(helper_path("mp_reader", prog, sizeof(prog)), argv));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    tw_destroy(&t);
}

static void test_readers_never_see_freed_memory(void **state)
{
    struct tw t;
    char n_str[32], m_str[32];
    long total = 0, ok_total = 0, missing = 0;

    (void)state;
    (void)missing;
    mc_poison_freed = 1;
    assert_int_equal(tw_create(&t, 256ull << 20, 0), 0);
    populate(&t);
    snprintf(n_str, sizeof(n_str), "%d", LOOKUPS);
    snprintf(m_str, sizeof(m_str), "%d", NMODELS);
    char *args[] = {"mp_reader", "stress", t.dir, (char *)t.cache, n_str, m_str, NULL};
    churn_under_readers(&t, READERS, args, &total, &ok_total,
                        "lookups %ld ok %ld missing %*d bad %ld", NULL, 0);
    assert_true(total >= 1000000);
    assert_true(ok_total > total / 10); /* most lookups found and verified a model */
    assert_true(t.rc.freed_total > 1000); /* and the writer really freed under them */
    mc_reclaim_poll(&t.rc);
    assert_int_equal(t.rc.n, 0);
    assert_int_equal(mc_table_check(&t.w), 0);
    tw_destroy(&t);
}

/*
 * A weighted alias moved along a chain of target sets {k.0.0, (k+1).0.0}
 * while exec'd readers get through it (by draw and by key) and the writer
 * churns the other versions. A reader that saw (j).0.0 may later see only
 * versions of a set at least as new: never below j - 1. The decoys k.5.0,
 * published and resident but never a target, must never come back.
 */
#define CHAIN 200

static void test_weighted_alias_serves_only_its_targets(void **state)
{
    struct tw t;
    pid_t pids[READERS];
    int outs[READERS], running = READERS, k = 1;

    (void)state;
    mc_poison_freed = 1;
    assert_int_equal(tw_create(&t, 256ull << 20, 0), 0);
    for (int i = 1; i <= CHAIN; i++) {
        char v[16], d[16];
        snprintf(v, sizeof(v), "%d.0.0", i);
        snprintf(d, sizeof(d), "%d.5.0", i);
        assert_int_equal(tw_publish(&t, "c", v, 4096 + (uint64_t)i * 64, seed_of("c", v)), 0);
        assert_int_equal(tw_publish(&t, "c", d, 4096, seed_of("c", d)), 0);
    }
    const char *first[] = {"1.0.0", "2.0.0"};
    assert_int_equal(mc_table_set_alias_split(&t.w, "c", "w", first, (uint32_t[]){50, 50}, 2), 0);
    /* Gets per reader: fewer under a sanitizer (CMakeLists.txt sets it). */
    const char *ngets = getenv("MC_CANARY_GETS") ? getenv("MC_CANARY_GETS") : "150000";

    for (int i = 0; i < READERS; i++) {
        char *args[] = {"mp_reader", "canary", t.dir, (char *)t.cache, "c", "w", (char *)ngets,
                        i == 0 ? "keyed" : "draw", NULL};

        pids[i] = reader_start(args, &outs[i]);
    }
    while (running > 0) {
        for (int n = 0; n < 20; n++) {
            char v[16], v2[16];
            uint32_t w1 = 1 + (uint32_t)(rnd() % 99);
            int j = 1 + (int)(rnd() % CHAIN);

            /* Reload a version (a new record: splits holding it are rebuilt)
             * or a decoy, and reclaim at once, poisoning what is freed. */
            snprintf(v, sizeof(v), rnd() % 2 ? "%d.0.0" : "%d.5.0", j);
            assert_int_equal(tw_publish(&t, "c", v, 4096 + (uint64_t)j * 64, seed_of("c", v)), 0);
            if (k < CHAIN - 1 && n == 0) { /* one step along the chain */
                k++;
                snprintf(v, sizeof(v), "%d.0.0", k);
                snprintf(v2, sizeof(v2), "%d.0.0", k + 1);
                const char *vs[] = {v, v2};
                assert_int_equal(mc_table_set_alias_split(&t.w, "c", "w", vs,
                                                          (uint32_t[]){w1, 100 - w1}, 2),
                                 0);
            }
            mc_reclaim_poll(&t.rc);
        }
        for (int i = 0; i < READERS; i++) {
            int st;
            if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i]) {
                char buf[256] = {0};
                long gets = 0, bad = -1, maxj = 0;
                assert_true(read(outs[i], buf, sizeof(buf) - 1) > 0);
                printf("# reader %d: %s", i, buf);
                assert_int_equal(sscanf(buf, "gets %ld highest %ld bad %ld", &gets, &maxj, &bad),
                                 3);
                assert_true(WIFEXITED(st));
                assert_int_equal(WEXITSTATUS(st), 0);
                assert_int_equal(bad, 0);
                assert_true(maxj > 2); /* the alias really moved under it */
                pids[i] = 0;
                close(outs[i]);
                running--;
            }
        }
    }
    mc_reclaim_poll(&t.rc);
    assert_int_equal(t.rc.n, 0);
    assert_int_equal(mc_table_check(&t.w), 0);
    tw_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readers_never_see_freed_memory),
        cmocka_unit_test(test_threads_share_a_cache),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_weighted_alias_serves_only_its_targets),
    };
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
