/*
 * daemon_fixture.h - what the tests of mcached (tests/loader/test_*.c) share:
 * a private store, arena directory and socket per test; mcached started,
 * asked and stopped as an operator would; its log; pushes into the store;
 * exec'd workers (mp_reader) that read what mcached loaded. Each test runs
 * between daemon_setup() and daemon_teardown() (DAEMON_TEST(f) in a cmocka
 * table), which leave nothing behind, killed runs included: a test that dies
 * leaves its directories to the next test's sweep (dead pids only).
 */
#ifndef MCACHE_TESTS_LOADER_DAEMON_FIXTURE_H
#define MCACHE_TESTS_LOADER_DAEMON_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "registry/registry.h"

/* ---- THE FIXTURE ------------------------------------------------------------ */

/* A store, an arena directory and a socket per test, and the mcached processes it started. */
struct dt {
    char root[256];  /* on disk: store and files */
    char store[300];
    char shm[256];   /* arena directory */
    char sock[320];
    char log[320];
    pid_t pid;
    struct mc_registry *reg;
    pid_t more[4]; /* further mcached processes, one per cache (daemon_teardown kills them) */
};

/* The running test's fixture. */
extern struct dt D;

/* cmocka setup: a fresh fixture in D (an empty store opened in D.reg). */
int daemon_setup(void **state);

/* cmocka teardown: kill what is still running, remove every file. */
int daemon_teardown(void **state);

/* A test run between daemon_setup() and daemon_teardown(), in a CMUnitTest table. */
#define DAEMON_TEST(f) cmocka_unit_test_setup_teardown(f, daemon_setup, daemon_teardown)

/* ---- MCACHED ---------------------------------------------------------------- */

/* Start mcached with argv (argv[0] "mcached"), its stderr appended to D.log or replacing it. */
pid_t mcached_spawn(const char *const *argv, bool append);

/* Run mcached with its arena in D.shm, 64M, then args (later options win); its exit status. */
int mcached_run(const char *const *args);

/*
 * Wait until the mcached *pid answers a ping on sock (0 in *pid if it exits
 * first: the test fails, showing the log).
 */
void await_up(const char *sock, pid_t *pid);

/*
 * Start the test's own mcached (D.pid): cache "t", store D.store, arena in
 * D.shm, socket D.sock, log level debug, 512M, then extra (NULL-ended, may
 * be NULL; later options win); wait until it answers.
 */
void daemon_start_args(const char *const *extra);

/* SIGTERM the mcached *pid; it must exit 0. */
void mcached_stop_clean(pid_t *pid);

/* mcached_stop_clean() the test's own mcached. */
void daemon_stop_clean(void);

/* ---- ITS LOG ---------------------------------------------------------------- */

/* Print mcached's log on stderr (after a message saying why). */
void dump_log(void);

/* Does mcached's log hold s? */
bool log_has(const char *s);

/* Wait (at most 2 s) until mcached's log holds s. */
void log_wait(const char *s);

/* ---- REQUESTS ON THE CONTROL SOCKET ----------------------------------------- */

/* Send one request to the mcached at sock; its status; *body (may be NULL) the answer. */
int ctl_at(const char *sock, char **body, const char *op, unsigned n,
           const char *const *args);

/* ctl_at() the test's own mcached (D.sock) with n string arguments. */
int ctl(char **body, const char *op, unsigned n, ...);

/* The state of name@version in `status`. */
const char *model_state(const char *name, const char *version);

/* name's alias's targets in the registry now, as text ("1.0.0=90 2.0.0=10"; "" if none). */
const char *alias_targets(const char *name, const char *alias, char *buf, size_t len);

/* CLOCK_MONOTONIC in milliseconds, for deadlines. */
uint64_t mono_ms(void);

/* ---- THE STORE -------------------------------------------------------------- */

/* Push `size` bytes of pattern `seed` as name@version into the store of reg. */
void push_to(struct mc_registry *reg, const char *name, const char *version, uint64_t size,
             uint32_t seed);

/* push_to() the test's own store (D.reg). */
void push(const char *name, const char *version, uint64_t size, uint32_t seed);

/* The path of name@version's artifact in D.store (read-only: chmod before changing it). */
void artifact_path(const char *name, const char *version, char *path, size_t len);

/* ---- WORKERS: EXEC'D mp_reader PROCESSES ----------------------------------- */

/* Run `mp_reader ARGS`; its first output line into out. Returns exit status. */
int helper_run(char *out, size_t len, const char *args);

/* Run mp_reader MODE on cache "t" with args; its first output line into out. Exit status. */
int reader(char *out, size_t len, const char *mode, const char *name, const char *ref,
           const char *extra);

/*
 * Start `mp_reader MODE D.shm t [NAME REF]` with pipes for its stdin and
 * stdout (NAME NULL: no more arguments); its first line into first.
 */
pid_t helper_start(const char *mode, const char *name, const char *ref, FILE **in,
                   FILE **out, char *first, size_t len);

/* A worker that holds name@ref and re-verifies it until its stdin closes. */
pid_t holder_start(const char *name, const char *ref, FILE **in, FILE **out);

/* ---- TIME ------------------------------------------------------------------- */

/* Sleep ms milliseconds. */
void sleep_ms(long ms);

#endif
