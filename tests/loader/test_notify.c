/*
 * test_notify.c - mcached under systemd, without systemd: its notify
 * messages on a test socket given as NOTIFY_SOCKET (READY=1 only once a
 * model pushed before the start is in the arena, STATUS= lines, WATCHDOG=1
 * at half of WATCHDOG_USEC and only for its own WATCHDOG_PID, STOPPING=1 on
 * SIGTERM; a socket that is not there or not valid is said in the log and
 * changes nothing else), and its log's format when stderr is journald's
 * stream (JOURNAL_STREAM naming stderr's device and inode) and when not.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "mcache.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"
#include "tests/loader/daemon_fixture.h"

/* ---- a service manager's end of the protocol ---- */

/* The environment mcached reads; every test starts without it. */
static const char *const notify_env[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID",
                                         "JOURNAL_STREAM"};

static int notify_setup(void **state)
{
    for (size_t i = 0; i < sizeof(notify_env) / sizeof(notify_env[0]); i++)
        unsetenv(notify_env[i]);
    return daemon_setup(state);
}

static int notify_teardown(void **state)
{
    for (size_t i = 0; i < sizeof(notify_env) / sizeof(notify_env[0]); i++)
        unsetenv(notify_env[i]);
    return daemon_teardown(state);
}

#define NOTIFY_TEST(f) cmocka_unit_test_setup_teardown(f, notify_setup, notify_teardown)

/* A datagram socket at D.root/notify.sock, named by NOTIFY_SOCKET for mcached. */
static int manager_socket(void)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd >= 0);
    assert_true(strlen(D.root) + sizeof("/notify.sock") <= sizeof(a.sun_path));
    memcpy(a.sun_path, D.root, strlen(D.root));
    strcat(a.sun_path, "/notify.sock");
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    setenv("NOTIFY_SOCKET", a.sun_path, 1);
    return fd;
}

/* The next message (NUL-terminated) within ms milliseconds; its length, or -1 if none came. */
static int manager_recv(int fd, char *msg, size_t len, long ms)
{
    uint64_t deadline = mc_mono_ns() + (uint64_t)ms * 1000000;

    for (;;) {
        uint64_t now = mc_mono_ns();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;

        if (now >= deadline)
            return -1;
        if (poll(&p, 1, (int)((deadline - now) / 1000000) + 1) <= 0)
            continue;
        n = recv(fd, msg, len - 1, 0);
        if (n < 0)
            continue;
        msg[n] = '\0';
        return (int)n;
    }
}

/* Does the message hold the line `line` (e.g. "READY=1")? */
static bool msg_has_line(const char *msg, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = msg; p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, line, n) == 0 && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

/* Receive until a message holding `line` (at most 30 s); fail, showing the log, if none. */
static void manager_await(int fd, const char *line, char *msg, size_t len)
{
    uint64_t deadline = mc_mono_ns() + 30000000000ull;

    while (mc_mono_ns() < deadline)
        if (manager_recv(fd, msg, len, 1000) >= 0 && msg_has_line(msg, line))
            return;
    dump_log();
    fail_msg("no %s from mcached within 30 s", line);
}

/* mcached's command line: cache "t" as daemon_start_args() starts it, 64M, then
 * --preload `preload` unless NULL. */
static void daemon_argv(const char *argv[16], const char *preload)
{
    const char *a[] = {"mcached",  "--store", D.store,       "--shm-dir", D.shm,    "--cache", "t",
                       "--socket", D.sock,    "--log-level", "debug",     "--size", "64M"};
    int n = (int)(sizeof(a) / sizeof(a[0]));

    memcpy(argv, a, sizeof(a));
    if (preload) {
        argv[n++] = "--preload";
        argv[n++] = preload;
    }
    argv[n] = NULL;
}

/* Start daemon_argv()'s mcached; not waited for. */
static pid_t spawn_daemon(const char *preload)
{
    const char *argv[16];

    daemon_argv(argv, preload);
    return mcached_spawn(argv, true);
}

/*
 * READY=1 only once the registry is mirrored: a model pushed before the
 * start (last of many, so that the mirror takes a while) resolves in the
 * arena the moment READY=1 arrives (mcached is stopped on arrival, so it
 * cannot catch up meanwhile), and nothing said READY before. STATUS= lines
 * say what it does; SIGHUP is RELOADING=1 then READY=1; STOPPING=1 comes on
 * SIGTERM; no WATCHDOG=1 without WATCHDOG_USEC.
 */
static void test_ready_only_once_the_registry_is_mirrored(void **state)
{
    char msg[1024], name[32];
    bool mirroring = false, pinged = false;
    mc_cache *c;
    mc_model *m;
    int fd, st;

    (void)state;
    for (int i = 0; i < 200; i++) {
        snprintf(name, sizeof(name), "m%d", i);
        push(name, "1.0.0", 4096, (uint32_t)i);
    }
    push("late", "1.0.0", 4096, 7);
    fd = manager_socket();
    D.pid = spawn_daemon("off"); /* nothing loads: "late" stays registered */
    for (;;) {
        if (manager_recv(fd, msg, sizeof(msg), 30000) < 0) {
            dump_log();
            fail_msg("mcached said nothing for 30 s");
        }
        if (msg_has_line(msg, "READY=1"))
            break;
        assert_true(strncmp(msg, "STATUS=", 7) == 0); /* only STATUS= before READY=1 */
        if (strstr(msg, "mirroring the registry"))
            mirroring = true;
    }
    kill(D.pid, SIGSTOP);
    assert_int_equal(mc_attach_dir(D.shm, "t", &c), 0);
    /* Registered (not loaded: preload off), so known: MC_ENOTRESIDENT, not MC_ENOENT. */
    assert_int_equal(mc_get(c, "late", "1.0.0", &m), MC_ENOTRESIDENT);
    mc_detach(c);
    kill(D.pid, SIGCONT);
    assert_true(mirroring);
    manager_await(fd, "STATUS=serving 201 versions, 0 resident", msg, sizeof(msg));
    /* SIGHUP: RELOADING=1 (with the time, as systemd 253 wants it), then READY=1 again. */
    kill(D.pid, SIGHUP);
    manager_await(fd, "RELOADING=1", msg, sizeof(msg));
    assert_non_null(strstr(msg, "\nMONOTONIC_USEC="));
    assert_true(manager_recv(fd, msg, sizeof(msg), 30000) >= 0);
    assert_string_equal(msg, "READY=1");
    kill(D.pid, SIGTERM);
    for (;;) {
        if (manager_recv(fd, msg, sizeof(msg), 30000) < 0) {
            dump_log();
            fail_msg("no STOPPING=1 within 30 s of SIGTERM");
        }
        pinged |= msg_has_line(msg, "WATCHDOG=1");
        assert_false(msg_has_line(msg, "READY=1"));
        if (msg_has_line(msg, "STOPPING=1"))
            break;
    }
    manager_await(fd, "STATUS=stopping: abandoning 0 loads in progress, keeping the arena", msg,
                  sizeof(msg));
    st = wait_status(D.pid);
    D.pid = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_false(pinged);
    close(fd);
}

/*
 * daemon_argv()'s mcached, with WATCHDOG_PID its own pid, as
 * systemd sets it: the pid is known only in the child, between fork and exec.
 */
static pid_t spawn_watched(void)
{
    const char *argv[16];
    pid_t pid;

    daemon_argv(argv, NULL);
    pid = fork();

    if (pid == 0) {
        const char *bin = getenv("MC_MCACHED") ? getenv("MC_MCACHED") : "../loader/mcached";
        int log = open(D.log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        char self[24];

        snprintf(self, sizeof(self), "%d", (int)getpid());
        setenv("WATCHDOG_PID", self, 1);
        dup2(log, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* The gaps between the next `n` WATCHDOG=1 messages, in ms, into gaps[]. */
static void watchdog_gaps(int fd, double *gaps, int n)
{
    char msg[1024];
    uint64_t last = 0;

    for (int i = 0; i <= n;) {
        if (manager_recv(fd, msg, sizeof(msg), 30000) < 0) {
            dump_log();
            fail_msg("no WATCHDOG=1 within 30 s");
        }
        if (!msg_has_line(msg, "WATCHDOG=1"))
            continue;
        uint64_t now = mc_mono_ns();
        if (i > 0)
            gaps[i - 1] = (double)(now - last) / 1e6;
        last = now;
        i++;
    }
}

/*
 * WATCHDOG_USEC=1 s with WATCHDOG_PID mcached's own: WATCHDOG=1 every half
 * second (systemd kills a service whose pings are more than WATCHDOG_USEC
 * apart, and asks for them at half of it), not once per pass of the loop. With WATCHDOG_PID another
 * process's, no pings: the watchdog is not mcached's.
 */
static void test_watchdog_pings_at_half_the_interval(void **state)
{
    char msg[1024], self[24];
    double gaps[4];
    int fd;

    (void)state;
    fd = manager_socket();
    setenv("WATCHDOG_USEC", "1000000", 1);
    D.pid = spawn_watched();
    manager_await(fd, "READY=1", msg, sizeof(msg));
    watchdog_gaps(fd, gaps, 4);
    for (int i = 0; i < 4; i++) {
        fprintf(stderr, "watchdog gap %d: %.1f ms\n", i, gaps[i]);
        /* At most WATCHDOG_USEC apart, or systemd would kill mcached; at least half of
         * the interval (timed on arrival here, so late arrivals shorten the next gap). */
        assert_true(gaps[i] >= 250 && gaps[i] <= 1000);
    }
    assert_true(log_has("watchdog: pinging every 0.500 s (WatchdogSec=1.000 s)"));
    daemon_stop_clean();

    /* Another process's watchdog: not a ping from READY=1 to STOPPING=1. */
    snprintf(self, sizeof(self), "%d", (int)getpid());
    setenv("WATCHDOG_PID", self, 1);
    D.pid = spawn_daemon(NULL);
    manager_await(fd, "READY=1", msg, sizeof(msg));
    kill(D.pid, SIGTERM);
    do {
        assert_true(manager_recv(fd, msg, sizeof(msg), 30000) >= 0);
        assert_false(msg_has_line(msg, "WATCHDOG=1"));
    } while (!msg_has_line(msg, "STOPPING=1"));
    assert_int_equal(wait_status(D.pid), 0);
    D.pid = 0;
    assert_true(log_has("is not mcached's pid"));
    close(fd);
}

/*
 * A NOTIFY_SOCKET nobody listens on, or one that is not a valid address, is
 * said in the log (naming it) and mcached serves as without one.
 */
static void test_bad_notify_socket_is_said_and_changes_nothing(void **state)
{
    char path[400];

    (void)state;
    snprintf(path, sizeof(path), "%s/nobody.sock", D.root);
    setenv("NOTIFY_SOCKET", path, 1);
    daemon_start_args(NULL);
    log_wait("over NOTIFY_SOCKET");
    assert_true(log_has(path));
    daemon_stop_clean();

    setenv("NOTIFY_SOCKET", "relative/notify.sock", 1);
    daemon_start_args(NULL);
    assert_true(log_has("NOTIFY_SOCKET \"relative/notify.sock\" is not an absolute path"));
    daemon_stop_clean();
}

/* ---- the log under journald ---- */

/*
 * Start and stop mcached with its stderr on a fresh D.log, JOURNAL_STREAM
 * naming D.log's device and inode (plus ino_delta); its log's lines into
 * lines[] (at most max), their count returned.
 */
static int run_with_journal_stream(long ino_delta, char lines[][512], int max)
{
    char stream[64];
    struct stat st;
    FILE *f;
    int n = 0;

    unlink(D.log);
    f = fopen(D.log, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(stat(D.log, &st), 0);
    snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
             (unsigned long long)st.st_ino + (unsigned long long)ino_delta);
    setenv("JOURNAL_STREAM", stream, 1);
    /* A line of each level: "*" is a warning, a load a debug line. */
    daemon_start_args((const char *const[]){"--reader-group", "*", NULL});
    assert_int_equal(ctl(NULL, "load", 2, "m", "1.0.0"), 0);
    daemon_stop_clean();
    unsetenv("JOURNAL_STREAM");
    f = fopen(D.log, "r");
    assert_non_null(f);
    while (n < max && fgets(lines[n], 512, f))
        n++;
    fclose(f);
    return n;
}

/* Does the line start with a timestamp, "2026-12-03T07:15:46.567Z "? */
static bool has_timestamp(const char *line)
{
    int y, mo, d, h, mi, s, ms;
    char z;

    return sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3d%c ", &y, &mo, &d, &h, &mi, &s, &ms, &z) == 8 &&
           z == 'Z';
}

/*
 * stderr is journald's stream: every line starts with its syslog priority
 * (<7> debug, <6> info, <4> warn, <3> error) and has no timestamp. A
 * JOURNAL_STREAM that names another file (an inherited variable): the usual
 * timestamped lines.
 */
static void test_journal_stream_gets_priorities_and_no_timestamps(void **state)
{
    static char lines[400][512];
    bool seen[8] = {false};
    int n;

    (void)state;
    push("m", "1.0.0", 4096, 1);
    n = run_with_journal_stream(0, lines, 400);
    assert_true(n > 3);
    for (int i = 0; i < n; i++) {
        if (!(lines[i][0] == '<' && strchr("3467", lines[i][1]) && lines[i][2] == '>') ||
            has_timestamp(lines[i] + 3) || strstr(lines[i], "Z info ")) {
            dump_log();
            fail_msg("line %d is not \"<N>message\": %s", i + 1, lines[i]);
        }
        seen[lines[i][1] - '0'] = true;
    }
    assert_true(seen[7] && seen[6] && seen[4]);
    assert_true(log_has("<6>mcached "));
    assert_true(log_has("<7>loading m@1.0.0"));
    assert_true(log_has("<4>reader-group \"*\": ANY LOCAL USER"));

    n = run_with_journal_stream(1, lines, 400);
    assert_true(n > 3);
    for (int i = 0; i < n; i++)
        if (!has_timestamp(lines[i]) || lines[i][0] == '<') {
            dump_log();
            fail_msg("line %d has no timestamp: %s", i + 1, lines[i]);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        NOTIFY_TEST(test_ready_only_once_the_registry_is_mirrored),
        NOTIFY_TEST(test_watchdog_pings_at_half_the_interval),
        NOTIFY_TEST(test_bad_notify_socket_is_said_and_changes_nothing),
        NOTIFY_TEST(test_journal_stream_gets_priorities_and_no_timestamps),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
