/*
 * test_options.c - mcached's options and config: bad options refused before
 * anything is created; a second mcached creates nothing; SIGHUP keeps the
 * command line's precedence; one worker reading from three caches, each
 * served by its own mcached at its name's default address, and two cache
 * names that share an address slot.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "index/proto.h"
#include "shm/arena.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"
#include "tests/loader/daemon_fixture.h"

/*
 * Bad options are refused before anything is created: no store, no arena
 * (whose memory would be committed first), no socket. Each error names the
 * option or the value and says what is wrong.
 */
static void test_bad_options_change_nothing(void **state)
{
    static const char *const no_group[2] = {"group", "\"mc-no-such-group\" does not exist"};
    char longsock[420], conf_long[400], conf_unknown[400], conf_dup[400];
    const struct {
        const char *opt, *value;
        int status;
        const char *const *says;
    } cases[] = {
        {"--reader-group", "mc-no-such-group", 2, no_group},
        {"--admin-group", "mc-no-such-group", 2, no_group},
        {"--shm-dir", "/nonexistent-mc", 2,
         (const char *const[]){"shm-dir \"/nonexistent-mc\"", "No such file"}},
        {"--cache", "bad/name", 2, (const char *const[]){"cache name \"bad/name\"", "use letters"}},
        /* cache "x.lock" would be cache x's lock file (and .readers, .sock, .tmp.PID
         * its other files): a second cache took a first one's lock (found in review) */
        {"--cache", "x.lock", 2, (const char *const[]){"cache name \"x.lock\"", "another cache's files"}},
        {"--size", "1K", 2, (const char *const[]){"arena size 65536", "give --size"}},
        /* larger than the cache name's default address slot: say --base */
        {"--size", "1000T", 2, (const char *const[]){"16 GiB address slot", "--base ADDR"}},
        {"--index-size", "64K", 2, (const char *const[]){"index size 65536", "--index-size 1M"}},
        {"--socket", longsock, 2, (const char *const[]){"socket path", "longer than 107 bytes"}},
        /* a line longer than the reader's buffer: its tail was read as a line of its own */
        {"--config", conf_long, 2, (const char *const[]){"long.conf:2: the line is longer", "shorten"}},
        {"--config", conf_unknown, 2, (const char *const[]){"unknown.conf:1:", "colour"}},
        {"--config", conf_dup, 2,
         (const char *const[]){"dup.conf:2: max-loads is given twice", "first at line 1"}},
        {"--size", "0", 2, (const char *const[]){"size must not be 0", "leave it out"}},
        /* decimal only: 0x10 was 16 and 010 was 8 */
        {"--max-loads", "0x10", 2, (const char *const[]){"max-loads must be a number", "\"0x10\""}},
    };
    char store[400], arena[400];
    struct stat st;

    (void)state;
    snprintf(longsock, sizeof(longsock), "%s/%0150d", D.root, 0);
    snprintf(conf_long, sizeof(conf_long), "%s/long.conf", D.root);
    snprintf(conf_unknown, sizeof(conf_unknown), "%s/unknown.conf", D.root);
    FILE *f = fopen(conf_long, "w");
    assert_non_null(f);
    fprintf(f, "# fine\nsize = 64M%1100s log-level = error\n", "");
    fclose(f);
    f = fopen(conf_unknown, "w");
    assert_non_null(f);
    fprintf(f, "colour = blue\n");
    fclose(f);
    snprintf(conf_dup, sizeof(conf_dup), "%s/dup.conf", D.root);
    f = fopen(conf_dup, "w");
    assert_non_null(f);
    fprintf(f, "max-loads = 2\nmax-loads = 3\n");
    fclose(f);
    snprintf(store, sizeof(store), "%s/new-store", D.root);
    snprintf(arena, sizeof(arena), "%s/mcache.t", D.shm);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status = mcached_run((const char *const[]){"--store", store, "--cache", "t",
                                                       "--socket", D.sock, cases[i].opt,
                                                       cases[i].value, NULL});

        if (!WIFEXITED(status) || WEXITSTATUS(status) != cases[i].status ||
            !log_has(cases[i].says[0]) || !log_has(cases[i].says[1])) {
            dump_log();
            fail_msg("%s %s: status %d, want exit %d saying \"%s\" and \"%s\"", cases[i].opt,
                     cases[i].value, status, cases[i].status, cases[i].says[0], cases[i].says[1]);
        }
        assert_int_equal(stat(store, &st), -1);    /* no store made */
        assert_int_equal(stat(arena, &st), -1);    /* no arena made */
        assert_int_equal(stat(D.sock, &st), -1);   /* no socket left */
        assert_int_equal(stat(longsock, &st), -1);
    }
    /* With --base the slot does not bind, but the top of user space and the
     * directory's free space do. */
    static const struct {
        const char *base, *size;
        int status;
        const char *says;
    } given[] = {
        {"0x700000000000", "2000T", 2, "past the top of user space"},
        {"0x100000000000", "100T", 1, "does not fit in"},
    };
    for (size_t i = 0; i < sizeof(given) / sizeof(given[0]); i++) {
        int status = mcached_run((const char *const[]){"--store", store, "--cache", "t",
                                                       "--socket", D.sock, "--base", given[i].base,
                                                       "--size", given[i].size, NULL});

        if (!WIFEXITED(status) || WEXITSTATUS(status) != given[i].status ||
            !log_has(given[i].says)) {
            dump_log();
            fail_msg("--base %s --size %s: status %d, want exit %d saying \"%s\"", given[i].base,
                     given[i].size, status, given[i].status, given[i].says);
        }
        assert_int_equal(stat(store, &st), -1);
        assert_int_equal(stat(arena, &st), -1);
    }
}

/* A second mcached, on the same cache or the same socket, creates nothing. */
static void test_second_daemon_creates_nothing(void **state)
{
    char store[400], path[400];
    struct stat st;
    int status;

    (void)state;
    daemon_start_args(NULL);
    snprintf(store, sizeof(store), "%s/other-store", D.root);
    status = mcached_run((const char *const[]){"--store", store, "--cache", "t", "--socket",
                                              D.sock, NULL});
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 75);
    assert_true(log_has("already serves cache \"t\""));
    assert_int_equal(stat(store, &st), -1); /* no store made */
    status = mcached_run((const char *const[]){"--store", store, "--cache", "t2", "--socket",
                                              D.sock, NULL});
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_true(log_has("another mcached is listening on"));
    assert_int_equal(stat(store, &st), -1);
    snprintf(path, sizeof(path), "%s/mcache.t2", D.shm);
    assert_int_equal(stat(path, &st), -1); /* no arena committed */
    assert_int_equal(ctl(NULL, "ping", 0), 0); /* the first one is untouched */
    daemon_stop_clean();
}

/*
 * SIGHUP re-reads the config file under the command line, as at start (the
 * file's log-level used to override --log-level), and names every changed
 * key that needs a restart.
 */
static void test_sighup_keeps_command_line_precedence(void **state)
{
    char conf[400], arg[420];
    FILE *f;

    (void)state;
    snprintf(conf, sizeof(conf), "%s/mcached.conf", D.root);
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("log-level = error\n", f);
    fclose(f);
    snprintf(arg, sizeof(arg), "%s", conf);
    daemon_start_args((const char *const[]){"--config", arg, NULL}); /* --log-level debug wins */
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("log-level = error\nio-uring = off\nreader-slots = 64\n", f);
    fclose(f);
    kill(D.pid, SIGHUP);
    for (int i = 0; i < 200 && !log_has("SIGHUP: re-read"); i++)
        sleep_ms(10);
    assert_true(log_has("SIGHUP: re-read")); /* an info line: still at debug */
    assert_true(log_has("SIGHUP: reader-slots, io-uring changed; that takes effect only after a "
                        "restart"));
    assert_int_equal(ctl(NULL, "ping", 0), 0);
    daemon_stop_clean();
}

/* Push CACHE@1.0.0 (pattern seed_of) into a store of its own, D.root/store-CACHE. */
static void cache_push(const char *cache)
{
    struct mc_registry_opts o = {.flags = MC_REGISTRY_CREATE};
    struct mc_registry *reg;
    char store[400];

    snprintf(store, sizeof(store), "%s/store-%s", D.root, cache);
    assert_int_equal(mc_registry_open(store, &o, &reg), 0);
    push_to(reg, cache, "1.0.0", (1u << 20) + 4099, seed_of(cache, "1.0.0"));
    mc_registry_close(reg);
}

/*
 * Start mcached on cache with default options but its own store (see
 * cache_push), the arena in D.shm and --size 64M, then extra (NULL-ended,
 * may be NULL); wait until it answers on its default socket.
 */
static void cache_start(const char *cache, const char *const *extra, pid_t *pid)
{
    char store[400], sock[400];
    const char *argv[16] = {"mcached", "--store", store,    "--shm-dir", D.shm,
                            "--cache", cache,     "--size", "64M"};
    int n = 9;

    snprintf(store, sizeof(store), "%s/store-%s", D.root, cache);
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    *pid = mcached_spawn(argv, true);
    assert_int_equal(mc_ctl_default_path(D.shm, cache, sock, sizeof(sock)), 0);
    await_up(sock, pid);
}

/* `mp_reader several` over caches (space-separated); its first line into out. */
static int several(char *out, size_t len, const char *caches)
{
    char args[600];

    snprintf(args, sizeof(args), "several %s 30000 %s", D.shm, caches);
    return helper_run(out, len, args);
}

/*
 * One worker, three caches (a 4 KiB-page cache and a huge-page one, say),
 * each served by its own mcached started without --base. Every arena used
 * to default to one address, so the worker's second attach failed with
 * MC_EADDRINUSE; now each cache name has its own default address slot.
 */
static void test_one_worker_reads_three_caches(void **state)
{
    static const char *const caches[] = {"default", "huge", "a"};
    char out[512], want[64];

    (void)state;
    for (int i = 0; i < 3; i++) {
        cache_push(caches[i]);
        cache_start(caches[i], NULL, &D.more[i]);
    }
    /* One exec'd process attaches all three, then gets and checks every byte of each. */
    if (several(out, sizeof(out), "default huge a") != 0) {
        dump_log();
        fail_msg("a worker attaching three caches: %s", out);
    }
    for (int i = 0; i < 3; i++) { /* each at its name's default address */
        snprintf(want, sizeof(want), " %s@0x%llx", caches[i],
                 (unsigned long long)mc_arena_default_base(caches[i]));
        assert_non_null(strstr(out, want));
    }
    for (int i = 0; i < 3; i++)
        mcached_stop_clean(&D.more[i]);
}

/*
 * Two cache names can share a default address slot. A worker attaching
 * both is told where, which arena sits there, and to give one --base; for
 * an existing arena that takes --recreate (mcached says so when it adopts
 * one elsewhere). Then the worker reads both.
 */
static void test_caches_sharing_a_slot(void **state)
{
    uint64_t at = mc_arena_default_base("a"), alt = mc_arena_slot_base(0);
    char twin[32] = "", out[1200], want[400], base[32], names[64];

    (void)state;
    for (int i = 0; i < 1000 && !*twin; i++) {
        snprintf(twin, sizeof(twin), "twin%d", i);
        if (mc_arena_default_base(twin) != at)
            twin[0] = '\0';
    }
    assert_true(*twin);
    if (alt == at)
        alt = mc_arena_slot_base(1);
    snprintf(base, sizeof(base), "0x%llx", (unsigned long long)alt);
    snprintf(names, sizeof(names), "a %s", twin);
    cache_push("a");
    cache_push(twin);
    cache_start("a", NULL, &D.more[0]);
    cache_start(twin, NULL, &D.more[1]);
    assert_int_equal(several(out, sizeof(out), names), 3);
    snprintf(want, sizeof(want),
             "error %s %d arena %s/mcache.a, attached in this process, sits at 0x%llx-", twin,
             MC_EADDRINUSE, D.shm, (unsigned long long)at);
    if (strncmp(out, want, strlen(want)) != 0)
        fail_msg("want \"%s...\", got: %s", want, out);
    assert_non_null(strstr(out, "another cache attached here may sit there"));
    assert_non_null(strstr(out, "--base ADDR"));
    assert_non_null(strstr(out, "--recreate"));
    /* --base alone: the existing arena is adopted where it is, and the log says so. */
    mcached_stop_clean(&D.more[1]);
    cache_start(twin, (const char *const[]){"--base", base, NULL}, &D.more[1]);
    assert_true(log_has("takes effect only with --recreate"));
    mcached_stop_clean(&D.more[1]);
    cache_start(twin, (const char *const[]){"--base", base, "--recreate", NULL}, &D.more[1]);
    if (several(out, sizeof(out), names) != 0) {
        dump_log();
        fail_msg("after --base %s --recreate: %s", base, out);
    }
    snprintf(want, sizeof(want), " %s@%s", twin, base);
    assert_non_null(strstr(out, want));
    mcached_stop_clean(&D.more[0]);
    mcached_stop_clean(&D.more[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DAEMON_TEST(test_bad_options_change_nothing),
        DAEMON_TEST(test_second_daemon_creates_nothing),
        DAEMON_TEST(test_sighup_keeps_command_line_precedence),
        DAEMON_TEST(test_one_worker_reads_three_caches),
        DAEMON_TEST(test_caches_sharing_a_slot),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
