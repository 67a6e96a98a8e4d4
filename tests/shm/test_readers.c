/*
 * test_readers.c - the reader table and reclamation against real, exec'd
 * reader processes: a holder killed with SIGKILL stops holding; a reader
 * stopped with SIGSTOP while pinned holds reclamation back (and is
 * reported) until it continues; a dead slot whose pid is reused stays dead.
 */
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

#include "common/err.h"
#include "shm/slab.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

static struct tw T;

static int setup(void **state)
{
    (void)state;
    mc_poison_freed = 1;
    return tw_create(&T, 32ull << 20, 0) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tw_destroy(&T);
    return 0;
}

/* Start mp_reader with a pipe on its stdout (and stdin); read its first line. */
struct child {
    pid_t pid;
    FILE *out;
    FILE *in;
};

static void child_start(struct child *c, char *const argv[], char *line, size_t len)
{
    int o[2], i[2];
    char prog[512];

    assert_int_equal(pipe(o), 0);
    assert_int_equal(pipe(i), 0);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        dup2(o[1], 1);
        dup2(i[0], 0);
        close(o[0]);
        close(i[1]);
        execv(helper_path("mp_reader", prog, sizeof(prog)), argv);
        _exit(127);
    }
    close(o[1]);
    close(i[0]);
    c->out = fdopen(o[0], "r");
    c->in = fdopen(i[1], "w");
    assert_non_null(fgets(line, (int)len, c->out));
}

static void child_end(struct child *c)
{
    fclose(c->out);
    fclose(c->in);
}

static int count_live(void)
{
    uint8_t live[MC_READER_SLOTS_MAX];

    return mc_readers_live(&T.r, live);
}

static void test_slot_claim_release(void **state)
{
    struct mc_readers r2;
    uint32_t a, b;

    (void)state;
    /* A second open file description, as a worker has. */
    assert_int_equal(mc_readers_open(T.dir, T.cache, T.a.hdr->created_ns, &r2), 0);
    assert_int_equal(count_live(), 0);
    assert_int_equal(mc_slot_claim(&r2, &a), 0);
    assert_int_equal(mc_slot_claim(&r2, &b), 0);
    assert_int_not_equal(a, b);
    assert_int_equal(r2.slots[a].pid, (uint32_t)getpid());
    assert_int_equal(count_live(), 2);
    mc_slot_release(&r2, a);
    assert_int_equal(count_live(), 1);
    /* Exhaustion is a clear error. */
    uint32_t idx, n = 1;
    while (mc_slot_claim(&r2, &idx) == 0)
        n++;
    assert_int_equal(n, T.r.nslots);
    assert_non_null(strstr(mc_last_error(), "reader slots"));
    mc_readers_close(&r2); /* closing drops every lock */
    assert_int_equal(count_live(), 0);
    /* A table from another arena is refused. */
    assert_int_equal(mc_readers_open(T.dir, T.cache, 12345, &r2), MC_ESTALE);
}

static void test_killed_holder_releases(void **state)
{
    struct child c;
    char line[128];
    uint64_t used0;

    (void)state;
    used0 = T.a.hdr->data_ext.used;
    assert_int_equal(tw_publish(&T, "m", "1.0.0", 1 << 20, seed_of("m", "1.0.0")), 0);
    char *argv[] = {"mp_reader", "hold", T.dir, (char *)T.cache, "m", "1.0.0", NULL};
    child_start(&c, argv, line, sizeof(line));
    assert_string_equal(line, "held 1048576\n");
    assert_int_equal(mc_table_remove_version(&T.w, "m", "1.0.0"), 0);
    /* Held: not freed, however often we poll. */
    for (int i = 0; i < 5; i++)
        mc_reclaim_poll(&T.rc);
    assert_true(T.a.hdr->data_ext.used > used0);
    assert_int_equal(T.rc.n, 1);
    /* SIGKILL: the kernel drops its lock, so its holds stop counting. */
    kill(c.pid, SIGKILL);
    int st = wait_status(c.pid);
    assert_true(WIFSIGNALED(st));
    mc_reclaim_poll(&T.rc);
    assert_int_equal(T.rc.n, 0);
    assert_int_equal(T.a.hdr->data_ext.used, used0);
    child_end(&c);
}

static void test_stopped_pinned_reader_stalls(void **state)
{
    struct child c;
    char line[128];
    struct mc_stall stalls[4];
    uint64_t used0;

    (void)state;
    assert_int_equal(tw_publish(&T, "s", "1.0.0", 65536, 1), 0);
    mc_reclaim_poll(&T.rc);
    used0 = T.a.hdr->data_ext.used;
    char *argv[] = {"mp_reader", "pin", T.dir, (char *)T.cache, NULL};
    child_start(&c, argv, line, sizeof(line));
    assert_int_equal(strncmp(line, "pinned ", 7), 0);
    kill(c.pid, SIGSTOP);
    /* Retire while it is stopped mid-lookup: nothing may be freed. */
    assert_int_equal(mc_table_remove_version(&T.w, "s", "1.0.0"), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(mc_reclaim_poll(&T.rc), 0);
    assert_int_equal(T.a.hdr->data_ext.used, used0);
    /* ... and the stall is reported, naming the process. */
    size_t n = mc_reclaim_stalls(&T.rc, 0, stalls, 4);
    assert_int_equal(n, 1);
    assert_int_equal(stalls[0].pid, (uint32_t)c.pid);
    /* Continued, it unpins; then everything is freed. */
    kill(c.pid, SIGCONT);
    fputs("go\n", c.in);
    fflush(c.in);
    assert_non_null(fgets(line, sizeof(line), c.out));
    assert_string_equal(line, "unpinned\n");
    mc_reclaim_poll(&T.rc);
    assert_int_equal(T.rc.n, 0);
    assert_true(T.a.hdr->data_ext.used < used0);
    assert_int_equal(mc_reclaim_stalls(&T.rc, 0, stalls, 4), 0);
    fputs("bye\n", c.in);
    fflush(c.in);
    wait_status(c.pid);
    child_end(&c);
}

static void test_dead_slot_with_reused_pid(void **state)
{
    struct child c;
    char line[128];

    (void)state;
    assert_int_equal(tw_publish(&T, "r", "1.0.0", 65536, seed_of("r", "1.0.0")), 0);
    char *argv[] = {"mp_reader", "hold", T.dir, (char *)T.cache, "r", "1.0.0", NULL};
    child_start(&c, argv, line, sizeof(line));
    kill(c.pid, SIGKILL);
    wait_status(c.pid);
    /* Its slot still names its pid and its hold. Make that pid "reused":
     * point the slot at a live process (this one). */
    int found = 0;
    for (uint32_t i = 0; i < T.r.nslots; i++)
        if (T.r.slots[i].pid == (uint32_t)c.pid) {
            T.r.slots[i].pid = (uint32_t)getpid();
            found = 1;
        }
    assert_true(found);
    assert_int_equal(count_live(), 0);
    assert_int_equal(mc_table_remove_version(&T.w, "r", "1.0.0"), 0);
    mc_reclaim_poll(&T.rc);
    assert_int_equal(T.rc.n, 0);
    child_end(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slot_claim_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_killed_holder_releases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stopped_pinned_reader_stalls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dead_slot_with_reused_pid, setup, teardown),
    };
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
