/*
 * test_access.c - who may use a cache: another uid refused changes, and
 * refused everything unless --reader-group '*' says otherwise; file modes
 * that follow the groups at start, on warm restart and on SIGHUP; a lock file
 * only mcached can open.
 */
#include <fcntl.h>
#include <grp.h>
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
#include <unistd.h>

#include <cmocka.h>

#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"
#include "tests/loader/daemon_fixture.h"

/* Can this test act as uid nobody (root, setpriv, user nobody, group nogroup)? */
static bool can_be_nobody(void)
{
    return getuid() == 0 && getgrnam("nogroup") &&
           system("command -v setpriv >/dev/null && id nobody >/dev/null 2>&1") == 0;
}

/*
 * Run helper PROG with args as uid nobody, group nogroup and no other
 * groups; the first line of its stdout and stderr into out. Its exit status.
 */
static int as_nobody(char *out, size_t len, const char *prog, const char *args)
{
    char path[512], cmd[1400];
    FILE *p;
    size_t n;
    int st;

    snprintf(cmd, sizeof(cmd), "setpriv --reuid=nobody --regid=nogroup --clear-groups %s %s 2>&1",
             helper_path(prog, path, sizeof(path)), args);
    p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(out, (int)len, p))
        out[0] = '\0';
    st = pclose(p);
    n = strcspn(out, "\n");
    printf("# nobody: %s %.60s: %.*s\n", prog, args, n > 160 ? 160 : (int)n, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_other_uid_cannot_change(void **state)
{
    const char *anyone[] = {"--reader-group", "*", NULL};
    char args[600], out[512];

    (void)state;
    if (!can_be_nobody()) {
        printf("# not run: needs root and setpriv to act as uid nobody\n");
        skip();
    }
    push("u", "1.0.0", 65536, 3);
    daemon_start_args(anyone);
    chmod(D.root, 0755);
    const char *ops[][2] = {{"evict", "u 1.0.0"}, {"pin", "u 1.0.0"}, {"shutdown", ""},
                            {"reload", ""},     {"status", ""},      {"load", "u 1.0.0"}};
    for (int i = 0; i < 6; i++) {
        bool change = i < 4;
        int st;

        snprintf(args, sizeof(args), "%s %s %s", D.sock, ops[i][0], ops[i][1]);
        st = as_nobody(out, sizeof(out), "ctl_client", args);
        if (change) {
            assert_int_equal(st, 1);
            assert_int_equal(atoi(out), MC_EPERM);
            assert_non_null(strstr(out, "may not"));
        } else {
            assert_int_equal(st, 0);
        }
    }
    /* Still running, nothing pinned. */
    assert_int_equal(ctl(NULL, "ping", 0), 0);
    const struct mc_reg_version *rv;
    mc_registry_refresh(D.reg, NULL);
    assert_int_equal(mc_registry_resolve(D.reg, "u", "1.0.0", &rv), 0);
    assert_false(rv->pinned);
    daemon_stop_clean();
}

/* The mode (and, unless -1, the owner and group) of the cache's file with suffix. */
static void assert_file(const char *suffix, unsigned mode, uid_t uid, gid_t gid)
{
    char path[400];
    struct stat st;

    if (!strcmp(suffix, ".sock"))
        snprintf(path, sizeof(path), "%s", D.sock);
    else
        snprintf(path, sizeof(path), "%s/mcache.t%s", D.shm, suffix);
    assert_int_equal(stat(path, &st), 0);
    if ((st.st_mode & 0777) != mode)
        fail_msg("%s has mode %04o, expected %04o", path, st.st_mode & 0777, mode);
    if (uid != (uid_t)-1)
        assert_int_equal(st.st_uid, uid);
    if (gid != (gid_t)-1)
        assert_int_equal(st.st_gid, gid);
}

/* The arena, its reader table and the socket: modes, and with uid/gid their owner. */
static void assert_files(unsigned arena, unsigned other, uid_t uid, gid_t gid)
{
    assert_file("", arena, uid, gid);
    assert_file(".readers", other, uid, gid);
    assert_file(".sock", other, uid, gid);
}

/* Can uid nobody attach and verify m@1.0.0? Checked against what mcached allows. */
static void assert_nobody_reads(bool allowed)
{
    char args[400], out[1024], arena[400];
    int st;

    snprintf(args, sizeof(args), "verify %s t m 1.0.0", D.shm);
    snprintf(arena, sizeof(arena), "%s/mcache.t", D.shm);
    st = as_nobody(out, sizeof(out), "mp_reader", args);
    if (allowed) {
        assert_int_equal(st, 0);
        assert_string_equal(out, "ok 1.0.0 65536\n");
        return;
    }
    /* Refused at the arena, with the file named and what to ask for. */
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, arena));
    assert_non_null(strstr(out, "does not admit uid 65534"));
    assert_non_null(strstr(out, "--reader-group"));
}

/*
 * Safe by default: without --reader-group the arena is 0640, the reader
 * table and the socket 0660, all mcached's uid and primary group; another
 * uid can neither attach nor talk to mcached (review find: the arena was
 * 0644 and the table 0666, so every local user could read every model and
 * pin memory forever).
 */
static void test_default_admits_only_owner_and_group(void **state)
{
    char args[400], out[1024];

    (void)state;
    push("m", "1.0.0", 65536, 4);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 2, "m", "1.0.0"), 0);
    assert_files(0640, 0660, geteuid(), getegid());
    assert_true(log_has("access: owner+group "));
    assert_false(log_has("ANY LOCAL USER"));
    if (!can_be_nobody()) {
        printf("# other-uid part not run: needs root and setpriv to act as uid nobody\n");
        daemon_stop_clean();
        return;
    }
    assert_nobody_reads(false);
    snprintf(args, sizeof(args), "%s status", D.sock);
    assert_int_equal(as_nobody(out, sizeof(out), "ctl_client", args), 2);
    assert_non_null(strstr(out, D.sock));
    assert_non_null(strstr(out, "does not admit uid 65534"));
    daemon_stop_clean();
}

/* --reader-group '*' opens the cache to every local user, and says so. */
static void test_reader_group_any_is_explicit_and_loud(void **state)
{
    const char *anyone[] = {"--reader-group", "*", NULL};

    (void)state;
    push("m", "1.0.0", 65536, 4);
    daemon_start_args(anyone);
    assert_int_equal(ctl(NULL, "load", 2, "m", "1.0.0"), 0);
    assert_files(0644, 0666, geteuid(), (gid_t)-1);
    assert_true(log_has("reader-group \"*\": ANY LOCAL USER can read every model"));
    if (can_be_nobody())
        assert_nobody_reads(true);
    daemon_stop_clean();
}

/*
 * A warm restart gives the adopted arena the modes of the options it starts
 * with, whatever the last run gave it: "*", then a group, then the default.
 */
static void test_arena_permissions_follow_reader_group(void **state)
{
    const char *anyone[] = {"--reader-group", "*", NULL};
    const char *grp[] = {"--reader-group", "nogroup", NULL};
    struct group *g = getgrnam("nogroup");

    (void)state;
    daemon_start_args(anyone);
    assert_files(0644, 0666, (uid_t)-1, (gid_t)-1);
    daemon_stop_clean();
    if (g) {
        daemon_start_args(grp); /* adopts the arena and tightens it */
        assert_true(log_has("(adopted in"));
        assert_files(0640, 0660, geteuid(), g->gr_gid);
        daemon_stop_clean();
    } else {
        printf("# group part not run: no group \"nogroup\" on this machine\n");
    }
    daemon_start_args(NULL);
    assert_files(0640, 0660, geteuid(), getegid());
    daemon_stop_clean();
}

/*
 * SIGHUP re-applies the groups to the files at once: from "*" to the
 * default the arena closes to other users (new attaches are refused), and
 * back to "*" it opens again, with the warning logged again.
 */
static void test_sighup_applies_access_to_files(void **state)
{
    char conf[400];
    FILE *f;

    (void)state;
    push("m", "1.0.0", 65536, 4);
    snprintf(conf, sizeof(conf), "%s/mcached.conf", D.root);
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("reader-group = *\n", f);
    fclose(f);
    daemon_start_args((const char *const[]){"--config", conf, NULL});
    assert_int_equal(ctl(NULL, "load", 2, "m", "1.0.0"), 0);
    assert_files(0644, 0666, (uid_t)-1, (gid_t)-1);
    f = fopen(conf, "w");
    assert_non_null(f);
    fclose(f);
    kill(D.pid, SIGHUP);
    log_wait("SIGHUP: access changed from any local user to owner+group ");
    assert_files(0640, 0660, geteuid(), getegid());
    if (can_be_nobody())
        assert_nobody_reads(false);
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("reader-group = *\n", f);
    fclose(f);
    kill(D.pid, SIGHUP);
    log_wait("SIGHUP: reader-group \"*\": ANY LOCAL USER can read every model");
    assert_files(0644, 0666, (uid_t)-1, (gid_t)-1);
    if (can_be_nobody())
        assert_nobody_reads(true);
    daemon_stop_clean();
}

/*
 * The lock file is mcached's alone, whatever the groups (review find: it was
 * 0644, and flock needs only read access, so any local user could hold it
 * and keep every later mcached from serving the cache, with exit 75 blaming
 * "another mcached"). One an older mcached left 0644 is made private too.
 */
static void test_lock_file_is_mcacheds_alone(void **state)
{
    const char *anyone[] = {"--reader-group", "*", NULL};
    char lock[400], cmd[600];
    int fd;

    (void)state;
    snprintf(lock, sizeof(lock), "%s/mcache.t.lock", D.shm);
    fd = open(lock, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0644), 0);
    close(fd);
    daemon_start_args(anyone);
    assert_file(".lock", 0600, geteuid(), (gid_t)-1);
    daemon_stop_clean();
    if (!can_be_nobody()) {
        printf("# other-uid part not run: needs root and setpriv to act as uid nobody\n");
        return;
    }
    /* Stopped: nobody could take the lock now if it could open the file. */
    snprintf(cmd, sizeof(cmd),
             "setpriv --reuid=nobody --regid=nogroup --clear-groups flock -n %s true 2>&1", lock);
    FILE *p = popen(cmd, "r");
    char out[512] = "";
    assert_non_null(p);
    if (!fgets(out, sizeof(out), p))
        out[0] = '\0';
    assert_true(pclose(p) != 0);
    assert_non_null(strstr(out, "Permission denied")); /* refused at open, not missing */
}

/*
 * A lock file or arena that another user owns is refused, and a reader table
 * another user owns is replaced with the arena, never adopted: its owner may
 * still hold it open for writing and change what mcached would serve or
 * free. (They were adopted and re-moded.)
 */
static void test_files_of_another_user_are_refused(void **state)
{
    static const char *const suffixes[] = {"", ".lock", ".readers"};
    struct stat st;
    const char *argv[] = {"mcached", "--store", D.store, "--shm-dir", D.shm, "--cache", "t",
                          "--socket", D.sock, "--size", "64M", NULL};
    char path[400], want[64];

    (void)state;
    daemon_start_args(NULL);
    daemon_stop_clean();
    for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
        snprintf(path, sizeof(path), "%s/mcache.t%s", D.shm, suffixes[i]);
        assert_int_equal(chown(path, 65534, (gid_t)-1), 0);
        D.pid = mcached_spawn(argv, true);
        if (i == 2) { /* the table: replaced, with the arena, by files of mcached's own */
            await_up(D.sock, &D.pid);
            assert_int_equal(stat(path, &st), 0);
            assert_int_equal(st.st_uid, geteuid());
            assert_true(log_has("replacing it"));
            daemon_stop_clean();
        } else {
            int ws = wait_status(D.pid);
            D.pid = 0;
            assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) != 0);
        }
        snprintf(want, sizeof(want), "belongs to uid 65534, not to mcached's uid %u",
                 (unsigned)geteuid());
        if (!log_has(want)) {
            dump_log();
            fail_msg("mcached adopted %s of another user", path);
        }
        if (i < 2)
            assert_int_equal(chown(path, geteuid(), (gid_t)-1), 0);
    }
    daemon_start_args(NULL); /* its own files again: adopted */
    daemon_stop_clean();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        DAEMON_TEST(test_other_uid_cannot_change),
        DAEMON_TEST(test_default_admits_only_owner_and_group),
        DAEMON_TEST(test_reader_group_any_is_explicit_and_loud),
        DAEMON_TEST(test_arena_permissions_follow_reader_group),
        DAEMON_TEST(test_sighup_applies_access_to_files),
        DAEMON_TEST(test_lock_file_is_mcacheds_alone),
        DAEMON_TEST(test_files_of_another_user_are_refused),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
