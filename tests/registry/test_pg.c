/*
 * test_pg.c - the postgres registry backend's own behaviour, against the
 * PostgreSQL that tests/fleet/pg.sh runs: schema migrations (too old, too
 * new, migrating twice does nothing), a change on one handle seen by
 * another's refresh, and the NOTIFY a LISTENing session gets for each
 * change, a damaged row reported once and followed past, the local replica
 * whole after a kill -9 mid-rewrite and the newest at close, a writer whose
 * session dies under the lock stopping instead of going on without it. The registry's semantics over this backend
 * are test_api.c's (registry_api_postgres).
 */
#include <libpq-fe.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "registry/registry.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

#define assert_msg(s)                                                                              \
    do {                                                                                           \
        if (!strstr(mc_last_error(), (s)))                                                         \
            fail_msg("message \"%s\" lacks \"%s\"", mc_last_error(), (s));                         \
    } while (0)

struct fx {
    char *dir, *store, *file;
    char url[1024]; /* the store's registry: a schema of its own */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof(*f));

    f->dir = tu_tempdir(NULL);
    if (asprintf(&f->store, "%s/store", f->dir) < 0 || asprintf(&f->file, "%s/a.bin", f->dir) < 0)
        return -1;
    tu_make_file(f->file, 4096, 1);
    snprintf(f->url, sizeof(f->url), "%s", tu_pg_store_url(f->store));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;

    tu_rm_rf(f->dir);
    free(f->dir);
    free(f->store);
    free(f->file);
    free(f);
    return 0;
}

static int open_store(struct fx *f, unsigned flags, struct mc_registry **r)
{
    struct mc_registry_opts o = {.flags = flags, .registry = f->url};

    return mc_registry_open(f->store, &o, r);
}

/* Run sql on the store's schema. */
static void sql(struct fx *f, const char *q)
{
    PGconn *c = PQconnectdb(f->url);
    PGresult *res = PQexec(c, q);

    if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", q, PQerrorMessage(c));
    PQclear(res);
    PQfinish(c);
}

static void test_migrate_twice_is_a_noop(void **state)
{
    struct fx *f = *state;
    int from = -1, to = -1, have = -1, want = -1;

    /* setup migrated once already */
    assert_int_equal(mc_registry_db_migrate(f->url, &from, &to), 0);
    assert_int_equal(from, to);
    assert_int_equal(mc_registry_db_status(f->url, &have, &want), 0);
    assert_int_equal(have, want);
    assert_true(want >= 1);
}

static void test_schema_too_old(void **state)
{
    struct fx *f = *state;
    struct mc_registry *r = NULL;
    int from = -1, to = -1, have = -1, want = -1;

    /* a database nobody migrated: version 0 */
    sql(f, "DROP TABLE registry_records, registry_snapshot, registry_state, schema_version");
    assert_int_equal(mc_registry_db_status(f->url, &have, &want), 0);
    assert_int_equal(have, 0);
    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &r), MC_EFORMAT);
    assert_null(r);
    assert_msg("has schema version 0 and this mcache needs");
    assert_msg("run `mcache db migrate");
    assert_int_equal(mc_registry_db_migrate(f->url, &from, &to), 0);
    assert_int_equal(from, 0);
    assert_int_equal(to, want);
    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &r), 0);
    assert_int_equal(mc_registry_push(r, "m", "1.0.0", f->file, NULL, NULL), 0);
    mc_registry_close(r);
}

static void test_schema_too_new(void **state)
{
    struct fx *f = *state;
    struct mc_registry *r = NULL;
    int from, to;

    sql(f, "INSERT INTO schema_version (version) VALUES (9999)");
    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &r), MC_EFORMAT);
    assert_msg("has schema version 9999, newer than this mcache knows");
    assert_int_equal(mc_registry_db_migrate(f->url, &from, &to), MC_EFORMAT);
    assert_msg("upgrade mcache");
}

static void test_unreachable(void **state)
{
    struct fx *f = *state;
    struct mc_registry *r = NULL;
    /* port 1 on loopback: nothing listens there */
    struct mc_registry_opts o = {.flags = MC_REGISTRY_CREATE,
                                 .registry = "postgresql://u:secret@127.0.0.1:1/x"};

    assert_int_equal(mc_registry_open(f->store, &o, &r), MC_EIO);
    assert_msg("cannot connect to the registry database postgresql://u@127.0.0.1:1/x");
    if (strstr(mc_last_error(), "secret"))
        fail_msg("the password is in the message: %s", mc_last_error());
}

static void test_registry_not_a_url(void **state)
{
    struct fx *f = *state;
    struct mc_registry *r = NULL;
    struct mc_registry_opts o = {.flags = MC_REGISTRY_CREATE, .registry = "/srv/mcache"};

    assert_int_equal(mc_registry_open(f->store, &o, &r), MC_EINVAL);
    assert_msg("is not a postgres:// or postgresql:// URL");
    /* the value is never echoed: another scheme or a conninfo may carry a password */
    static const char *const secretive[] = {"PG://u:hunter2@h/db", "host=/x password=hunter2",
                                            "host=/x password = hunter2"};
    for (size_t i = 0; i < sizeof(secretive) / sizeof(*secretive); i++) {
        o.registry = secretive[i];
        assert_int_equal(mc_registry_open(f->store, &o, &r), MC_EINVAL);
        assert_msg("is not a postgres:// or postgresql:// URL");
        if (strstr(mc_last_error(), "hunter2"))
            fail_msg("the password is in the message: %s", mc_last_error());
    }
    o.backend = "postgres";
    o.registry = NULL;
    assert_int_equal(mc_registry_open(f->store, &o, &r), MC_EINVAL);
    assert_msg("the postgres registry backend needs a URL");
    assert_null(r);
}

static void test_two_handles_follow(void **state)
{
    struct fx *f = *state;
    struct mc_registry *a, *b;
    const struct mc_reg_version *v;
    bool changed;

    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &a), 0);
    assert_int_equal(open_store(f, 0, &b), 0);
    assert_int_equal(mc_registry_push(a, "m", "1.0.0", f->file, NULL, NULL), 0);
    assert_int_equal(mc_registry_push(a, "m", "2.0.0", f->file, NULL, NULL), 0);
    assert_int_equal(mc_registry_alias_set(a, "m", "prod", "1.0.0", NULL), 0);
    assert_int_equal(mc_registry_refresh(b, &changed), 0);
    assert_true(changed);
    assert_int_equal(mc_registry_generation(b), 3);
    assert_int_equal(mc_registry_resolve(b, "m", "prod", &v), 0);
    assert_string_equal(v->version, "1.0.0");
    /* the move, made by b, reaches a */
    assert_int_equal(mc_registry_alias_set(b, "m", "prod", "2.0.0", NULL), 0);
    assert_int_equal(mc_registry_refresh(a, &changed), 0);
    assert_true(changed);
    assert_int_equal(mc_registry_resolve(a, "m", "prod", &v), 0);
    assert_string_equal(v->version, "2.0.0");
    assert_int_equal(mc_registry_refresh(a, &changed), 0);
    assert_false(changed);
    mc_registry_close(a);
    mc_registry_close(b);
}

/* Wait (up to 10 s) for a notification on c; NULL if none came. */
static PGnotify *wait_notify(PGconn *c)
{
    struct timespec t0, t;
    PGnotify *n;

    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct pollfd p = {.fd = PQsocket(c), .events = POLLIN};

        PQconsumeInput(c);
        if ((n = PQnotifies(c)) != NULL)
            return n;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (t.tv_sec - t0.tv_sec > 10)
            return NULL;
        poll(&p, 1, 1000);
    }
}

/*
 * Notifications on channel mcache_registry until the one for generation
 * gen; each names a generation past the one before (a refusal is an audit
 * record, so a generation of its own).
 */
static void expect_notify(PGconn *l, uint64_t *last, uint64_t gen)
{
    for (;;) {
        PGnotify *n = wait_notify(l);
        uint64_t g;

        if (n == NULL)
            fail_msg("no notification for generation %llu within 10 s", (unsigned long long)gen);
        assert_string_equal(n->relname, "mcache_registry");
        g = strtoull(n->extra, NULL, 10);
        PQfreemem(n);
        assert_true(g == *last + 1);
        *last = g;
        if (g == gen)
            return;
        assert_true(g < gen);
    }
}

static void test_notify(void **state)
{
    struct fx *f = *state;
    struct mc_registry *r;
    PGconn *l = PQconnectdb(f->url);
    PGresult *res = PQexec(l, "LISTEN mcache_registry");
    uint64_t gen = 0, last = 0;

    assert_int_equal(PQresultStatus(res), PGRES_COMMAND_OK);
    PQclear(res);
    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &r), 0);
    assert_int_equal(mc_registry_push(r, "m", "1.0.0", f->file, NULL, &gen), 0);
    expect_notify(l, &last, gen);
    assert_int_equal(mc_registry_push(r, "m", "1.0.0", f->file, NULL, NULL), MC_EEXIST);
    assert_int_equal(mc_registry_alias_set(r, "m", "prod", "1.0.0", &gen), 0);
    expect_notify(l, &last, gen);
    assert_int_equal(last, mc_registry_generation(r));
    mc_registry_close(r);
    PQfinish(l);
}

/*
 * A handle whose session the server ended (as a restart or a cut would)
 * starts a new one at its next call, with nothing lost or held.
 */
static void test_session_lost(void **state)
{
    struct fx *f = *state;
    struct mc_registry *a, *b;
    bool changed;

    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &a), 0);
    assert_int_equal(open_store(f, 0, &b), 0);
    /* every client session but this one: a's and b's */
    sql(f, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> "
           "pg_backend_pid() AND backend_type = 'client backend'");
    assert_int_equal(mc_registry_push(a, "m", "1.0.0", f->file, NULL, NULL), 0);
    assert_int_equal(mc_registry_refresh(b, &changed), 0);
    assert_true(changed);
    assert_non_null(mc_registry_model(b, "m"));
    assert_int_equal(mc_registry_alias_set(b, "m", "prod", "1.0.0", NULL), 0);
    mc_registry_close(a);
    mc_registry_close(b);
}

/*
 * The writer's session dies just after it took the lock: the change must
 * fail, saying nothing was changed, not go on on a new session without the
 * lock (it used to: the read that follows the lock reconnected silently).
 */
static void test_lock_lost_stops_the_writer(void **state)
{
    struct fx *f = *state;
    struct mc_registry *a, *b;

    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &a), 0);
    assert_int_equal(mc_registry_push(a, "m", "1.0.0", f->file, NULL, NULL), 0);
    setenv("MCACHE_TEST_PG_TERMINATE_AT", "after-lock", 1);
    assert_int_not_equal(mc_registry_alias_set(a, "m", "prod", "1.0.0", NULL), 0);
    unsetenv("MCACHE_TEST_PG_TERMINATE_AT");
    assert_msg("the registry lock with it");
    assert_msg("nothing was changed");
    assert_int_equal(open_store(f, 0, &b), 0);
    {
        const struct mc_reg_version *v;

        assert_int_not_equal(mc_registry_resolve(b, "m", "prod", &v), 0);
    }
    mc_registry_close(b);
    /* the handle goes on once the lock is taken again, on a new session */
    assert_int_equal(mc_registry_alias_set(a, "m", "prod", "1.0.0", NULL), 0);
    mc_registry_close(a);
}

/*
 * Writers in several processes, each with its own session: the advisory
 * lock serializes them, so the generations stay one gapless sequence (a gap
 * or a duplicate fails the load) and every change is there.
 */
static void test_concurrent_writers(void **state)
{
    struct fx *f = *state;
    struct mc_registry *r;
    enum { WRITERS = 3, EACH = 8 };
    pid_t pids[WRITERS];

    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &r), 0);
    mc_registry_close(r);
    for (int w = 0; w < WRITERS; w++) {
        pids[w] = fork();
        assert_true(pids[w] >= 0);
        if (pids[w] == 0) {
            char name[16], version[16];
            int bad = 0;

            snprintf(name, sizeof(name), "w%d", w);
            if (open_store(f, 0, &r) != 0)
                _exit(2);
            for (int i = 0; i < EACH; i++) {
                snprintf(version, sizeof(version), "1.0.%d", i);
                bad |= mc_registry_push(r, name, version, f->file, NULL, NULL) != 0;
                bad |= mc_registry_alias_set(r, name, "prod", version, NULL) != 0;
            }
            if (bad)
                fprintf(stderr, "writer %d: %s\n", w, mc_last_error());
            mc_registry_close(r);
            _exit(bad);
        }
    }
    for (int w = 0; w < WRITERS; w++)
        assert_int_equal(tu_wait(pids[w]), 0);
    assert_int_equal(open_store(f, MC_REGISTRY_READONLY, &r), 0);
    assert_int_equal(mc_registry_generation(r), WRITERS * EACH * 2);
    for (int w = 0; w < WRITERS; w++) {
        char name[16];
        const struct mc_reg_version *v;

        snprintf(name, sizeof(name), "w%d", w);
        assert_int_equal(mc_registry_model(r, name)->nversions, EACH);
        assert_int_equal(mc_registry_resolve(r, name, "prod", &v), 0);
        assert_string_equal(v->version, "1.0.7");
    }
    mc_registry_close(r);
}

/*
 * A row that cannot be applied (damaged by hand) is reported once, and the
 * follower goes on past it: the rows delivered before it in the same read
 * are not delivered again (that made every later refresh fail with "exists"),
 * and rows written after it arrive.
 */
static void test_damaged_row_followed_past(void **state)
{
    struct fx *f = *state;
    struct mc_registry *a, *b;
    bool changed;

    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &a), 0);
    assert_int_equal(open_store(f, 0, &b), 0);
    assert_int_equal(mc_registry_push(a, "m", "1.0.0", f->file, NULL, NULL), 0);
    assert_int_equal(mc_registry_refresh(b, &changed), 0);
    assert_int_equal(mc_registry_push(a, "m", "2.0.0", f->file, NULL, NULL), 0);
    sql(f, "INSERT INTO registry_records VALUES (3, '{\"op\": \"push\", damaged')");
    /* 2 applies, 3 is reported */
    assert_int_equal(mc_registry_refresh(b, &changed), MC_ECORRUPT);
    assert_msg("registry_records row 3");
    assert_msg("run `mcache repair`");
    /* once: the next refresh neither re-applies 2 nor reports 3 again */
    assert_int_equal(mc_registry_refresh(b, &changed), 0);
    assert_false(changed);
    assert_int_equal(mc_registry_generation(b), 3);
    assert_int_equal(mc_registry_model(b, "m")->nversions, 2);
    /* the writer meets the row once too, then writes past it */
    assert_int_equal(mc_registry_push(a, "m", "3.0.0", f->file, NULL, NULL), MC_ECORRUPT);
    assert_int_equal(mc_registry_push(a, "m", "3.0.0", f->file, NULL, NULL), 0);
    assert_int_equal(mc_registry_refresh(b, &changed), 0);
    assert_true(changed);
    assert_int_equal(mc_registry_model(b, "m")->nversions, 3);
    mc_registry_close(a);
    mc_registry_close(b);
}

/* The replica in f->store as a journal store: its generation and m's version count. */
static void replica_has(struct fx *f, uint64_t *gen, size_t *nversions)
{
    char dir[4096];
    struct mc_registry_opts o = {.flags = MC_REGISTRY_READONLY, .backend = "journal"};
    struct mc_registry *r;

    snprintf(dir, sizeof(dir), "%s/replica", f->store);
    assert_int_equal(mc_registry_open(dir, &o, &r), 0);
    *gen = mc_registry_generation(r);
    *nversions = mc_registry_model(r, "m") ? mc_registry_model(r, "m")->nversions : 0;
    mc_registry_close(r);
}

/*
 * The replica is rewritten on a thread of the handle's; a process killed
 * (SIGKILL, at a crash point) in the middle of that rewrite leaves the
 * previous replica whole, and one killed after its rename the new one.
 */
static void test_replica_survives_a_kill(void **state)
{
    struct fx *f = *state;
    static const char *const points[] = {"compact-written", "compact-snapshot-renamed"};
    struct mc_registry *a;
    uint64_t gen1, gen;
    size_t n;

    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &a), 0);
    assert_int_equal(mc_registry_push(a, "m", "1.0.0", f->file, NULL, NULL), 0);
    mc_registry_keep_replica(a);
    gen1 = mc_registry_generation(a);
    mc_registry_close(a); /* waits for the rewrite */
    replica_has(f, &gen, &n);
    assert_int_equal(gen, gen1);
    assert_int_equal(n, 1);
    for (size_t i = 0; i < sizeof(points) / sizeof(points[0]); i++) {
        char version[16];
        pid_t pid = fork();

        snprintf(version, sizeof(version), "%zu.0.0", i + 2);
        assert_true(pid >= 0);
        if (pid == 0) {
            setenv("MCACHE_CRASH_AT", points[i], 1);
            if (open_store(f, 0, &a) != 0 || mc_registry_push(a, "m", version, f->file, NULL, NULL))
                _exit(2);
            mc_registry_keep_replica(a);
            mc_registry_close(a); /* killed in the rewrite it waits for */
            _exit(3);
        }
        {
            int st = tu_wait(pid);

            if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
                fail_msg("the writer at crash point %s was not killed (status %#x)", points[i], st);
        }
        replica_has(f, &gen, &n);
        if (i == 0) { /* killed before the rename: the previous replica */
            assert_int_equal(gen, gen1);
            assert_int_equal(n, 1);
        } else { /* after: the new one, whole */
            assert_true(gen > gen1);
            assert_int_equal(n, 3);
        }
    }
}

/* The replica left at close is the newest, even with no request after the last change. */
static void test_replica_newest_at_close(void **state)
{
    struct fx *f = *state;
    struct mc_registry *a;
    uint64_t gen2, gen;
    size_t n;

    assert_int_equal(open_store(f, MC_REGISTRY_CREATE, &a), 0);
    assert_int_equal(mc_registry_push(a, "m", "1.0.0", f->file, NULL, NULL), 0);
    mc_registry_keep_replica(a);
    assert_int_equal(mc_registry_push(a, "m", "2.0.0", f->file, NULL, NULL), 0);
    gen2 = mc_registry_generation(a);
    mc_registry_close(a);
    replica_has(f, &gen, &n);
    assert_int_equal(gen, gen2);
    assert_int_equal(n, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_migrate_twice_is_a_noop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_too_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_too_new, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_registry_not_a_url, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_handles_follow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_lost, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_row_followed_past, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_survives_a_kill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_lost_stops_the_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replica_newest_at_close, setup, teardown),
    };

    if (tu_pg_url() == NULL) {
        fprintf(stderr, "registry_pg: skipped: MCACHE_TEST_PG_URL is not set (run it under "
                        "tests/fleet/pg.sh run)\n");
        return 77;
    }
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
