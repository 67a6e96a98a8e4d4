/*
 * backend_pg.c - the postgres metadata backend (struct mc_reg_backend_ops in
 * backend.h): the registry's records kept in a PostgreSQL database over
 * libpq, so that many hosts share one registry. The store directory still
 * holds what is local (the artifacts, today).
 *
 * THE TABLES (created by mc_registry_db_migrate(), never by open)
 *   schema_version      the migrations applied: one row per version
 *   registry_state      one row: the snapshot's generation, an epoch that
 *                       grows at every compaction, the snapshot's bytes
 *   registry_snapshot   the snapshot's entries, in order (seq)
 *   registry_records    one row per generation past the snapshot: the record
 *                       as the journal writes it (compact JSON with its "g",
 *                       without the line's checksum: the database keeps rows
 *                       whole, so there is no torn tail to find)
 * They live in the connection's current schema, so one database can hold
 * several registries (the tests give each its own schema via search_path).
 *
 * THE LOCK is a pair of session-level advisory locks keyed by the schema:
 * exclusive for writers, shared for readers, as the journal's flock. A
 * session that dies drops its locks with it, as a process's flock does.
 *
 * CHANGES are appended in one transaction each (the row and a NOTIFY on
 * channel mcache_registry with the new generation as payload, delivered at
 * commit), so a LISTENing host hears of a change exactly when it is visible.
 * follow() reads the rows past the last generation seen; a compaction bumps
 * the epoch, which tells followers to load everything again.
 */
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "registry/backend.h"
#include "registry/registry.h"

/*
 * DEADLINES. Nothing here waits on the database without one, so that a
 * frozen or blackholed server (a SIGSTOPped postmaster, a cut link that drops
 * packets) cannot hold up mcached's loop: a statement is sent, then its answer
 * awaited with poll() until the deadline; past it the session is dropped (the
 * server rolls back what it had and frees its locks once it notices) and the
 * database counts as unreachable until a reconnection works. Reads and
 * reconnections get QUICK_MS: they are small, and mcached makes them on its
 * loop. Writes get SLOW_MS. The exclusive lock is tried (QUICK_MS each time)
 * until it is free, for at most LOCK_WAIT_MS: a writer waits for another
 * writer, never for a server that does not answer. MCACHE_PG_TIMEOUT_MS
 * replaces QUICK_MS (a distant database).
 */
#define QUICK_MS 1000
#define SLOW_MS  30000
#define OPEN_MS      5000  /* the first connection of a handle */
#define RETRY_MS     1000  /* after a failed reconnection or a drop, fail fast for this long */
#define LOCK_WAIT_MS 60000 /* the longest wait for another writer's exclusive lock */

/* Compact once the records are past both of these (as the journal). */
#define COMPACT_MIN_BYTES (64u << 10)
#define COMPACT_RATIO     2

/*
 * The advisory locks' first keys ("mc", "md"); the second is the schema's
 * hash. One for the store lock, one that serializes migrations.
 */
#define LOCK_CLASS    "27747"
#define MIGRATE_CLASS "27748"

struct pgb {
    struct mc_reg_backend be;
    const char *dir;
    char where[256]; /* the URL without its password, for messages */
    unsigned flags;
    PGconn *conn;
    char *url;      /* for the LISTEN session, made on demand (watch_fd) */
    PGconn *listen; /* that session, or NULL */
    char lockkey[16]; /* hashtext(current_schema()) as text */
    enum mc_reg_lock held; /* as registry.c believes: kept when the session goes */
    int lock_wait_ms;      /* LOCK_WAIT_MS, or less (set_deadlines) */
    int slow_ms;           /* SLOW_MS, or less (set_deadlines) */
    int64_t retry_at; /* no reconnection before this (now_ms()) */
    uint64_t gen;  /* last generation delivered or appended */
    int64_t epoch; /* registry_state.epoch as last seen */
    uint64_t snap_bytes, log_bytes;
    struct mc_jreader jr;
};

static struct pgb *pgb_of(const struct mc_reg_backend *b)
{
    return (struct pgb *)b;
}

/* ---- connections and schema versions ---------------------------------- */

/*
 * The migrations, in order: migration i takes the schema from version i to
 * i + 1. Never edit one that has shipped; add the next.
 */
static const char *const migrations[] = {
    /* 1: the registry's records, snapshot and state */
    "CREATE TABLE registry_state (id int PRIMARY KEY CHECK (id = 1),"
    " snapshot_gen bigint NOT NULL, epoch bigint NOT NULL, snapshot_bytes bigint NOT NULL);"
    "INSERT INTO registry_state VALUES (1, 0, 1, 0);"
    "CREATE TABLE registry_snapshot (seq int PRIMARY KEY, entry text NOT NULL);"
    "CREATE TABLE registry_records (gen bigint PRIMARY KEY, rec text NOT NULL);",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

int mc_registry_db_schema_version(void)
{
    return SCHEMA_VERSION;
}

/* url without a password ("postgres://user:secret@h/db" -> "postgres://user@h/db"). */
static void url_for_messages(const char *url, char *out, size_t n)
{
    const char *s = strstr(url, "://"), *at = s ? strchr(s + 3, '@') : NULL;
    const char *colon = at ? memchr(s + 3, ':', (size_t)(at - (s + 3))) : NULL;

    if (colon == NULL)
        snprintf(out, n, "%s", url);
    else
        snprintf(out, n, "%.*s%s", (int)(colon - url), url, at);
    /* a password may also come as ?password=...: cut the parameters */
    if ((s = strstr(out, "password=")) != NULL)
        out[s - out] = '\0';
}

/* libpq's message without its trailing newline. */
static const char *pq_msg(PGconn *c)
{
    static __thread char msg[512];
    size_t n;

    snprintf(msg, sizeof(msg), "%s", c ? PQerrorMessage(c) : "out of memory");
    n = strlen(msg);
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
        msg[--n] = '\0';
    for (char *nl = msg; (nl = strpbrk(nl, "\n\t")) != NULL;) /* libpq's lines, as one */
        *nl = ' ';
    return msg;
}

/* Notices ("relation ... already exists, skipping") are not for our users. */
static void quiet(void *arg, const char *msg)
{
    (void)arg, (void)msg;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int quick_ms(void)
{
    const char *e = getenv("MCACHE_PG_TIMEOUT_MS");

    return e && atoi(e) > 0 ? atoi(e) : QUICK_MS;
}

/* Wait for c's socket to be readable (or writable): 0, or -1 at the deadline. */
static int pq_wait(PGconn *c, bool write, int64_t deadline)
{
    struct pollfd pfd = {.fd = PQsocket(c), .events = write ? POLLOUT : POLLIN};

    for (;;) {
        int64_t left = deadline - now_ms();
        int n;

        if (left <= 0)
            return -1;
        n = poll(&pfd, 1, (int)left);
        if (n > 0 || (n < 0 && errno != EINTR))
            return 0; /* ready, or an error libpq will find and name */
    }
}

/*
 * Every session is made with TCP keepalives and a TCP user timeout (unless
 * the URL sets its own, which come later and win): a session whose flow was
 * dropped without a word (a NAT's or load balancer's idle timeout, a link
 * blackholed) fails within about 25 s instead of the system's 2 h, which
 * matters most for the LISTEN session, which only ever reads.
 */
static PGconn *pq_start(const char *url)
{
    const char *const keys[] = {"keepalives",       "keepalives_idle",  "keepalives_interval",
                                "keepalives_count", "tcp_user_timeout", "dbname",
                                NULL};
    const char *const vals[] = {"1", "10", "5", "3", "15000", url, NULL};

    return PQconnectStartParams(keys, vals, 1);
}

static int pq_connect(const char *url, const char *where, int ms, PGconn **out)
{
    PGconn *c = pq_start(url);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    int64_t deadline = now_ms() + ms;
    bool late = false;

    *out = NULL;
    while (c != NULL && PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        if (pq_wait(c, st == PGRES_POLLING_WRITING, deadline) != 0) {
            late = true;
            break;
        }
        st = PQconnectPoll(c);
    }
    if (c != NULL)
        PQsetNoticeProcessor(c, quiet, NULL);
    if (late) {
        PQfinish(c);
        return mc_err(MC_EIO,
                      "cannot connect to the registry database %s: no answer within %d ms (is "
                      "PostgreSQL running, not frozen, and the network up?)",
                      where, ms);
    }
    if (c == NULL || PQstatus(c) != CONNECTION_OK) {
        int rc = mc_err(MC_EIO,
                        "cannot connect to the registry database %s: %s (is PostgreSQL running "
                        "and the URL right?)",
                        where, pq_msg(c));
        PQfinish(c);
        return rc;
    }
    *out = c;
    return 0;
}

/*
 * The result of what was sent on c, awaited until the deadline: the last
 * one (a migration's several statements give several). NULL at the deadline
 * (*late set; c must then be dropped: the answer may still come) or when the
 * connection failed.
 */
static PGresult *pq_await(PGconn *c, int64_t deadline, bool *late)
{
    PGresult *last = NULL, *r;

    for (;;) {
        while (PQisBusy(c)) {
            if (pq_wait(c, false, deadline) != 0) {
                *late = true;
                PQclear(last);
                return NULL;
            }
            if (!PQconsumeInput(c))
                break; /* PQgetResult then reports the failure */
        }
        r = PQgetResult(c);
        if (r == NULL)
            return last;
        PQclear(last);
        last = r;
        /* COPY FROM STDIN: the caller feeds it; the rest comes after */
        if (PQresultStatus(r) == PGRES_COPY_IN)
            return last;
    }
}

/* Run sql (with params as text) within ms; *res (may be NULL) gets the result on success. */
static int pq_run_within(PGconn *c, int ms, const char *where, const char *what, const char *sql,
                         int n, const char *const *params, PGresult **res, bool *late)
{
    /* without parameters, the simple protocol: a migration is several statements */
    int sent = c == NULL ? 0
               : n       ? PQsendQueryParams(c, sql, n, NULL, params, NULL, NULL, 0)
                         : PQsendQuery(c, sql);
    PGresult *r = sent ? pq_await(c, now_ms() + ms, late) : NULL;
    ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_COPY_IN) {
        char msg[512];
        size_t k;

        if (*late)
            snprintf(msg, sizeof(msg),
                     "no answer within %d ms (is PostgreSQL frozen or the "
                     "network down?)",
                     ms);
        else if (c == NULL)
            snprintf(msg, sizeof(msg), "not connected");
        else
            snprintf(msg, sizeof(msg), "%s", r ? PQresultErrorMessage(r) : pq_msg(c));
        for (k = strlen(msg); k > 0 && (msg[k - 1] == '\n' || msg[k - 1] == ' ');)
            msg[--k] = '\0';
        for (char *nl = msg; (nl = strpbrk(nl, "\n\t")) != NULL;) /* libpq's lines, as one */
            *nl = ' ';
        int rc = mc_err(MC_EIO, "%s in the registry database %s failed: %s", what, where, msg);
        PQclear(r);
        return rc;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

/* A connection of its own (migrations, status): the slow deadline, never dropped midway. */
static int pq_run(PGconn *c, const char *where, const char *what, const char *sql, int n,
                  const char *const *params, PGresult **res)
{
    bool late = false;

    return pq_run_within(c, SLOW_MS, where, what, sql, n, params, res, &late);
}

/* The schema version in the database (0: none yet). */
static int schema_version_of(PGconn *c, const char *where, int *have)
{
    PGresult *r;
    int rc;

    *have = 0;
    rc = pq_run(c, where, "reading the schema version",
                "SELECT to_regclass('schema_version') IS NOT NULL", 0, NULL, &r);
    if (rc)
        return rc;
    if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        PQclear(r);
        return 0;
    }
    PQclear(r);
    rc = pq_run(c, where, "reading the schema version",
                "SELECT coalesce(max(version), 0) FROM schema_version", 0, NULL, &r);
    if (rc)
        return rc;
    *have = atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    return 0;
}

static int too_new(const char *where, int have)
{
    return mc_err(MC_EFORMAT,
                  "the registry database %s has schema version %d, newer than this mcache "
                  "knows (%d); upgrade mcache",
                  where, have, SCHEMA_VERSION);
}

int mc_registry_db_status(const char *url, int *have, int *want)
{
    char where[256];
    PGconn *c;
    int rc;

    url_for_messages(url, where, sizeof(where));
    *want = SCHEMA_VERSION;
    rc = pq_connect(url, where, OPEN_MS, &c);
    if (rc == 0)
        rc = schema_version_of(c, where, have);
    PQfinish(c);
    return rc;
}

int mc_registry_db_migrate(const char *url, int *from, int *to)
{
    char where[256], v[16];
    const char *p[1] = {v};
    PGconn *c;
    int rc, have = 0;

    url_for_messages(url, where, sizeof(where));
    rc = pq_connect(url, where, OPEN_MS, &c);
    if (rc)
        return rc;
    /* One transaction: two migrating hosts queue on the lock; the second finds nothing to do. */
    rc = pq_run(c, where, "starting the migration", "BEGIN", 0, NULL, NULL);
    if (rc == 0)
        rc = pq_run(c, where, "locking for the migration",
                    "SELECT pg_advisory_xact_lock(" MIGRATE_CLASS ", hashtext(current_schema()))",
                    0, NULL, NULL);
    if (rc == 0)
        rc = pq_run(c, where, "creating schema_version",
                    "CREATE TABLE IF NOT EXISTS schema_version (version int PRIMARY KEY,"
                    " applied_at timestamptz NOT NULL DEFAULT now())",
                    0, NULL, NULL);
    if (rc == 0)
        rc = schema_version_of(c, where, &have);
    if (rc == 0 && have > SCHEMA_VERSION)
        rc = too_new(where, have);
    for (int i = have; rc == 0 && i < SCHEMA_VERSION; i++) {
        char what[64];

        snprintf(what, sizeof(what), "migration %d", i + 1);
        snprintf(v, sizeof(v), "%d", i + 1);
        rc = pq_run(c, where, what, migrations[i], 0, NULL, NULL);
        if (rc == 0)
            rc = pq_run(c, where, what, "INSERT INTO schema_version (version) VALUES ($1::int)", 1,
                        p, NULL);
    }
    if (rc == 0)
        rc = pq_run(c, where, "committing the migration", "COMMIT", 0, NULL, NULL);
    PQfinish(c);
    if (from)
        *from = have;
    if (to)
        *to = rc == 0 && have < SCHEMA_VERSION ? SCHEMA_VERSION : have;
    return rc;
}

/* ---- statements on a handle's session --------------------------------- */

/*
 * The session gave no answer in time: drop it (its locks go with it, on the
 * server). p->held stays as it was until pg_unlock(): a handle that held the
 * lock must not go on, on a new session, as if it still did (reconnect()).
 */
static void drop(struct pgb *p)
{
    PQfinish(p->conn);
    p->conn = NULL;
    p->retry_at = now_ms() + RETRY_MS;
}

static int run_within(struct pgb *p, int ms, const char *what, const char *sql, int n,
                      const char *const *params, PGresult **res)
{
    bool late = false;
    int rc = pq_run_within(p->conn, ms, p->where, what, sql, n, params, res, &late);

    if (late)
        drop(p);
    return rc;
}

/* A read, the shared lock, anything small: QUICK_MS. */
static int run(struct pgb *p, const char *what, const char *sql, int n, const char *const *params,
               PGresult **res)
{
    return run_within(p, quick_ms(), what, sql, n, params, res);
}

/* A write: p->slow_ms (SLOW_MS unless mc_reg_pg_set_deadlines() made it shorter). */
static int run_slow(struct pgb *p, const char *what, const char *sql, int n,
                    const char *const *params, PGresult **res)
{
    return run_within(p, p->slow_ms, what, sql, n, params, res);
}

/* ---- opening and the lock ---------------------------------------------- */

static bool writable(const struct pgb *p)
{
    return !(p->flags & MC_REGISTRY_READONLY);
}

static void pg_close(struct mc_reg_backend *b)
{
    struct pgb *p = pgb_of(b);

    if (p == NULL)
        return;
    PQfinish(p->conn);
    PQfinish(p->listen);
    free(p->url);
    mc_jreader_fini(&p->jr);
    free(p);
}

/*
 * The local store directory (artifacts), with the journal's rules and
 * messages: what makes a directory a store here is its models/; CREATE
 * makes one in a new or empty directory (*created: the artifact store then
 * makes models/ and tmp/).
 */
static int local_dir(struct pgb *p, bool *created)
{
    bool create = (p->flags & MC_REGISTRY_CREATE) && writable(p);
    char models[4096];
    struct stat st;
    DIR *d;

    if (create && mkdir(p->dir, 0755) == 0) {
        *created = true;
        return 0;
    }
    if (stat(p->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        int e = errno;

        if (e == ENOENT)
            return mc_err(MC_ENOENT, "there is no store at %s (create one with `mcache init`)",
                          p->dir);
        return mc_err(mc_err_from_errno(e), "cannot open the store %s: %s", p->dir, strerror(e));
    }
    snprintf(models, sizeof(models), "%s/models", p->dir);
    if (stat(models, &st) == 0)
        return 0;
    if (!create)
        return mc_err(MC_ENOENT,
                      "%s is not an mcache store (it has no models/); create a store with "
                      "`mcache init`",
                      p->dir);
    d = opendir(p->dir);
    for (struct dirent *e; d && (e = readdir(d)) != NULL;) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            closedir(d);
            return mc_err(MC_EEXIST,
                          "%s exists, is not empty and is not an mcache store; choose a new or "
                          "empty directory",
                          p->dir);
        }
    }
    if (d)
        closedir(d);
    *created = true;
    return 0;
}

static int pg_open(const struct mc_reg_backend_conf *conf, struct mc_reg_backend **out,
                   bool *created)
{
    struct pgb *p = calloc(1, sizeof(*p));
    PGresult *r;
    int rc, have;

    *out = NULL;
    *created = false;
    if (p == NULL)
        return mc_err(MC_ENOMEM, "out of memory opening %s", conf->dir);
    p->be.ops = &mc_reg_postgres_ops;
    p->dir = conf->dir;
    p->lock_wait_ms = LOCK_WAIT_MS;
    p->slow_ms = SLOW_MS;
    p->flags = conf->flags;
    mc_jreader_init(&p->jr);
    if (conf->url == NULL || conf->url[0] == '\0') {
        pg_close(&p->be);
        return mc_err(MC_EINVAL, "the postgres registry backend needs a URL "
                                 "(--registry postgres://USER@HOST/DB or MCACHE_REGISTRY)");
    }
    url_for_messages(conf->url, p->where, sizeof(p->where));
    p->url = strdup(conf->url);
    if (p->url == NULL) {
        pg_close(&p->be);
        return mc_err(MC_ENOMEM, "out of memory opening %s", conf->dir);
    }
    rc = pq_connect(conf->url, p->where, OPEN_MS, &p->conn);
    if (rc && writable(p)) { /* a write refused at open: say that it did nothing */
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        rc = mc_err(rc, "%s; nothing was changed", msg);
    }
    if (rc == 0)
        rc = schema_version_of(p->conn, p->where, &have);
    if (rc == 0 && have > SCHEMA_VERSION)
        rc = too_new(p->where, have);
    if (rc == 0 && have < SCHEMA_VERSION)
        rc = mc_err(MC_EFORMAT,
                    "the registry database %s has schema version %d and this mcache needs %d; "
                    "run `mcache db migrate --registry %s`",
                    p->where, have, SCHEMA_VERSION, p->where);
    if (rc == 0)
        rc = run(p, "finding the lock key", "SELECT hashtext(current_schema())", 0, NULL, &r);
    if (rc == 0) {
        snprintf(p->lockkey, sizeof(p->lockkey), "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        rc = local_dir(p, created);
    }
    if (rc) {
        pg_close(&p->be);
        return rc;
    }
    *out = &p->be;
    return 0;
}

/*
 * A session the server ended (a restart, a network cut, an administrator's
 * pg_terminate_backend) or that we dropped (no answer in time) took its
 * locks with it, so nothing is held: start a new one, within QUICK_MS. After
 * a failed attempt, others fail at once for RETRY_MS, so that a loop that
 * reads every few seconds spends at most QUICK_MS per RETRY_MS on a database
 * that does not answer. Called before every read and lock, so a long-lived
 * handle (mcached's) outlives the session it began with. Never while the
 * lock is held: the session that held it is gone, and the lock with it, so
 * whatever the holder was doing must stop (pg_unlock() then forgets it).
 */
static int reconnect(struct pgb *p)
{
    char msg[1024];
    int rc;

    if (p->conn != NULL && PQstatus(p->conn) == CONNECTION_OK)
        return 0;
    if (p->held != MC_REG_UNLOCKED)
        return mc_err(MC_EIO,
                      "lost the connection to the registry database %s, and the registry lock "
                      "with it; nothing was changed; try again",
                      p->where);
    if (now_ms() < p->retry_at)
        return mc_err(MC_EIO,
                      "the registry database %s is unreachable (it did not answer a moment "
                      "ago); nothing was read or changed; try again once it answers",
                      p->where);
    drop(p);
    rc = pq_connect(p->url, p->where, quick_ms(), &p->conn);
    if (rc) {
        p->retry_at = now_ms() + RETRY_MS;
        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        return mc_err(rc, "lost the connection to the registry database; %s", msg);
    }
    p->retry_at = 0;
    return 0;
}

/* The session is gone (libpq learns it only when a call fails): worth one more try. */
static bool lost(const struct pgb *p)
{
    return p->conn == NULL || PQstatus(p->conn) != CONNECTION_OK;
}

/*
 * The lock, exclusive or shared: tried until free (a writer holds it for one
 * change), within p->lock_wait_ms. Each try is a quick statement, so a busy
 * lock is never mistaken for a server that does not answer.
 */
static int lock_once(struct pgb *p, enum mc_reg_lock mode)
{
    const char *params[1] = {p->lockkey};
    int64_t deadline = now_ms() + p->lock_wait_ms;
    const char *sql = mode == MC_REG_EXCLUSIVE
                          ? "SELECT pg_try_advisory_lock(" LOCK_CLASS ", $1::int)"
                          : "SELECT pg_try_advisory_lock_shared(" LOCK_CLASS ", $1::int)";

    for (int wait = 1;; wait = wait < 64 ? 2 * wait : wait) {
        PGresult *r;
        bool got;
        int rc = run(p, "taking the registry lock", sql, 1, params, &r);

        if (rc)
            return rc;
        got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
        PQclear(r);
        if (got)
            return 0;
        if (now_ms() >= deadline)
            return p->lock_wait_ms < LOCK_WAIT_MS
                       ? mc_err(MC_EBUSY,
                                "the registry database %s is busy (another writer holds its "
                                "lock); nothing was changed; try again",
                                p->where)
                       : mc_err(MC_EBUSY,
                                "another writer has held the registry database %s locked for "
                                "over %d s; nothing was changed; try again (a writer that died "
                                "frees it at once)",
                                p->where, p->lock_wait_ms / 1000);
        poll(NULL, 0, (int)(wait < deadline - now_ms() ? wait : deadline - now_ms() + 1));
    }
}

static int pg_lock(struct mc_reg_backend *b, enum mc_reg_lock mode)
{
    struct pgb *p = pgb_of(b);
    int rc = reconnect(p);

    if (rc == 0)
        rc = lock_once(p, mode);
    if (rc && lost(p) && p->conn != NULL) { /* found dead now (not dropped): once more */
        rc = reconnect(p);
        if (rc == 0)
            rc = lock_once(p, mode);
    }
    if (rc == 0)
        p->held = mode;
    /* test_pg.c: the session dies just after the lock was taken (its own backend ends) */
    if (rc == 0 && mode == MC_REG_EXCLUSIVE && getenv("MCACHE_TEST_PG_TERMINATE_AT") &&
        strcmp(getenv("MCACHE_TEST_PG_TERMINATE_AT"), "after-lock") == 0) {
        run(p, "(test) ending the session", "SELECT pg_terminate_backend(pg_backend_pid())", 0,
            NULL, NULL);
    }
    return rc;
}

static void pg_unlock(struct mc_reg_backend *b)
{
    struct pgb *p = pgb_of(b);
    const char *params[1] = {p->lockkey};

    char msg[1024];

    /* a session gone took its locks with it */
    if (p->held == MC_REG_UNLOCKED || lost(p)) {
        p->held = MC_REG_UNLOCKED;
        return;
    }
    /* a failure means the session is gone, and its locks with it; the error before stays */
    snprintf(msg, sizeof(msg), "%s", mc_last_error());
    run(p, "releasing the registry lock",
        p->held == MC_REG_EXCLUSIVE ? "SELECT pg_advisory_unlock(" LOCK_CLASS ", $1::int)"
                                    : "SELECT pg_advisory_unlock_shared(" LOCK_CLASS ", $1::int)",
        1, params, NULL);
    mc_err(MC_EIO, "%s", msg);
    p->held = MC_REG_UNLOCKED;
}

/* ---- reading ---------------------------------------------------------- */

/* Deliver row i of r (column 0 its generation for records, column 1 the JSON). */
static int deliver(struct pgb *p, PGresult *r, int i, bool snapshot, uint64_t gen,
                   mc_reg_record_fn fn, void *arg, mc_reg_report_fn report, void *rarg,
                   bool *damaged)
{
    const char *text = PQgetvalue(r, i, 1);
    const char *table = snapshot ? "registry_snapshot" : "registry_records";
    const struct mc_jval *j;
    char why[256];
    int rc = mc_jline_read(&p->jr, text, (size_t)PQgetlength(r, i, 1), &j, why, sizeof(why));

    if (rc == 0)
        return fn(arg, j, snapshot, gen);
    if (rc != MC_ECORRUPT)
        return rc;
    if (report) {
        mc_reg_reportf(report, rarg, "%s row %s of %s is damaged: %s", table, PQgetvalue(r, i, 0),
                       p->where, why);
        *damaged = true;
        return 0;
    }
    return mc_err(MC_ECORRUPT,
                  "%s row %s of the registry database %s is damaged: %s (run "
                  "`mcache repair`)",
                  table, PQgetvalue(r, i, 0), p->where, why);
}

/* Deliver the records past gen in r, checking that they follow on one by one. */
static int deliver_records(struct pgb *p, PGresult *r, uint64_t *gen, uint64_t *bytes,
                           mc_reg_record_fn fn, void *arg, mc_reg_report_fn report, void *rarg,
                           bool *damaged)
{
    for (int i = 0; i < PQntuples(r); i++) {
        uint64_t g = strtoull(PQgetvalue(r, i, 0), NULL, 10);
        int rc;

        if (g != *gen + 1)
            return mc_err(MC_ECORRUPT,
                          "registry_records of %s jumps from generation %llu to %llu (a row "
                          "was deleted by hand?); run `mcache repair`",
                          p->where, (unsigned long long)*gen, (unsigned long long)g);
        rc = deliver(p, r, i, false, g, fn, arg, report, rarg, damaged);
        /* delivered, even if refused: a follower must not be given it again */
        *gen = g;
        *bytes += (uint64_t)PQgetlength(r, i, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/*
 * Reads are one REPEATABLE READ transaction each, without the advisory lock:
 * every change is one transaction, so a snapshot of the database is a state
 * some writer left, and a reader never waits behind a writer (one copying a
 * large artifact, or stuck). On a session found dead, one more try.
 */
static int read_begin(struct pgb *p)
{
    const char *q = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";
    int rc = reconnect(p);

    if (rc == 0)
        rc = run(p, "starting a read", q, 0, NULL, NULL);
    if (rc && lost(p) && p->conn != NULL) { /* found dead now (not dropped): once more */
        rc = reconnect(p);
        if (rc == 0)
            rc = run(p, "starting a read", q, 0, NULL, NULL);
    }
    return rc;
}

/* End the read begun by read_begin; rc's message is kept. */
static void read_end(struct pgb *p, int rc)
{
    char msg[1024];

    snprintf(msg, sizeof(msg), "%s", mc_last_error());
    if (p->conn != NULL && PQtransactionStatus(p->conn) != PQTRANS_IDLE)
        run(p, "ending a read", rc ? "ROLLBACK" : "COMMIT", 0, NULL, NULL);
    if (rc < 0)
        mc_err(rc, "%s", msg);
}

/* Everything, of one moment even without the lock (salvage: report). */
static int load_all(struct pgb *p, mc_reg_record_fn fn, void *arg, mc_reg_report_fn report,
                    void *rarg, bool *damaged)
{
    PGresult *st = NULL, *snap = NULL, *recs = NULL;
    uint64_t gen = 0, bytes = 0;
    int64_t epoch = 0;
    int rc;

    rc = read_begin(p);
    if (rc)
        return rc;
    rc = run(p, "reading registry_state",
             "SELECT snapshot_gen, epoch, snapshot_bytes FROM registry_state", 0, NULL, &st);
    if (rc == 0 && PQntuples(st) != 1)
        rc = mc_err(MC_ECORRUPT, "registry_state of %s has %d rows, not 1; run `mcache repair`",
                    p->where, PQntuples(st));
    if (rc == 0)
        rc = run(p, "reading registry_snapshot",
                 "SELECT seq, entry FROM registry_snapshot ORDER BY seq", 0, NULL, &snap);
    if (rc == 0)
        rc = run(p, "reading registry_records",
                 "SELECT gen, rec FROM registry_records WHERE gen > "
                 "(SELECT snapshot_gen FROM registry_state) ORDER BY gen",
                 0, NULL, &recs);
    read_end(p, rc);
    if (rc == 0) {
        gen = strtoull(PQgetvalue(st, 0, 0), NULL, 10);
        epoch = strtoll(PQgetvalue(st, 0, 1), NULL, 10);
        for (int i = 0; rc == 0 && i < PQntuples(snap); i++)
            rc = deliver(p, snap, i, true, gen, fn, arg, report, rarg, damaged);
    }
    if (rc == 0)
        rc = deliver_records(p, recs, &gen, &bytes, fn, arg, report, rarg, damaged);
    if (rc == 0) {
        p->gen = gen;
        p->epoch = epoch;
        p->snap_bytes = strtoull(PQgetvalue(st, 0, 2), NULL, 10);
        p->log_bytes = bytes;
    }
    PQclear(st);
    PQclear(snap);
    PQclear(recs);
    return rc;
}

static int pg_load(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg, bool cut)
{
    bool damaged = false;

    (void)cut; /* a transaction leaves no torn tail to cut */
    return load_all(pgb_of(b), fn, arg, NULL, NULL, &damaged);
}

static int pg_follow(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg, bool cut,
                     bool *changed)
{
    struct pgb *p = pgb_of(b);
    char gen[24];
    const char *params[1] = {gen};
    PGresult *r = NULL;
    uint64_t g = p->gen, bytes = p->log_bytes;
    bool damaged = false;
    int rc;

    (void)cut;
    *changed = false;
    rc = read_begin(p);
    if (rc)
        return rc;
    rc = run(p, "reading registry_state", "SELECT epoch FROM registry_state", 0, NULL, &r);
    if (rc == 0 && (PQntuples(r) != 1 || strtoll(PQgetvalue(r, 0, 0), NULL, 10) != p->epoch))
        rc = MC_REG_RELOAD; /* compacted or repaired elsewhere */
    PQclear(r);
    r = NULL;
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)p->gen);
    /* the same transaction: the epoch read above holds for these rows */
    if (rc == 0)
        rc = run(p, "reading registry_records",
                 "SELECT gen, rec FROM registry_records WHERE gen > $1::bigint ORDER BY gen", 1,
                 params, &r);
    read_end(p, rc);
    if (rc)
        return rc;
    rc = deliver_records(p, r, &g, &bytes, fn, arg, NULL, NULL, &damaged);
    PQclear(r);
    /* what was delivered stays delivered, even if a row was refused (as manifest_read.c) */
    *changed = g != p->gen;
    p->gen = g;
    p->log_bytes = bytes;
    return rc;
}

/* ---- writing ---------------------------------------------------------- */

static int need_writable(const struct pgb *p)
{
    if (!writable(p))
        return mc_err(MC_EPERM, "%s is open read-only; nothing was changed", p->dir);
    return 0;
}

static int pg_prepare(struct mc_reg_backend *b, mc_reg_emit_fn emit, void *arg)
{
    (void)emit;
    (void)arg;
    /* the tables are the migrations' to make; open checked that they are there */
    return need_writable(pgb_of(b));
}

/*
 * The COMMIT of generation gen got no answer: the session broke, after the
 * server may have committed. The old session held the exclusive lock until
 * its server process ended, which settled its transaction one way or the
 * other; so a new session takes the lock (which waits for that) and looks.
 * But the lock was free in between, and another writer may have changed the
 * registry in that gap (pushed the same name@version, compacted away our
 * row): only our own row, or a registry that nobody touched since (no row
 * past ours, the same epoch), settles it. 0: committed (the lock is held
 * again, as the caller expects); MC_EIO: it was not ("nothing was
 * changed"); MC_REG_UNKNOWN: it cannot be told (the message says what to
 * do; the artifacts stay for intent_recover(), which removes them only if
 * the registry does not hold the version).
 */
static int commit_outcome(struct pgb *p, const char *gen, const char *text, const char *why)
{
    const char *params[2] = {gen, NULL};
    char reason[512], epoch[24];
    PGresult *r;
    int rc;

    snprintf(epoch, sizeof(epoch), "%lld", (long long)p->epoch);
    params[1] = epoch;
    p->held = MC_REG_UNLOCKED; /* gone with the session */
    p->retry_at = 0;
    rc = pg_lock(&p->be, MC_REG_EXCLUSIVE);
    if (rc == 0)
        rc = run(p, "checking a commit",
                 "SELECT (SELECT rec FROM registry_records WHERE gen = $1::bigint),"
                 " (SELECT epoch = $2::bigint FROM registry_state)"
                 "   AND NOT EXISTS (SELECT 1 FROM registry_records WHERE gen > $1::bigint)",
                 2, params, &r);
    if (rc == 0) {
        bool ours = !PQgetisnull(r, 0, 0) && strcmp(PQgetvalue(r, 0, 0), text) == 0;
        bool untouched = strcmp(PQgetvalue(r, 0, 1), "t") == 0 && PQgetisnull(r, 0, 0);

        PQclear(r);
        if (ours)
            return 0;
        if (untouched)
            return mc_err(MC_EIO, "%s", why);
        snprintf(reason, sizeof(reason),
                 "another writer changed the registry while the connection was down");
    } else {
        snprintf(reason, sizeof(reason), "%s", mc_last_error());
    }
    mc_err(MC_EIO,
           "the connection to the registry database broke at the commit of generation %s, and "
           "whether the commit happened cannot be told now; the artifacts were kept: once the "
           "database answers, `mcache ls` shows whether the change was made, and the next "
           "change (or `mcache gc`) removes the artifacts of one that was not (%s)",
           gen, reason);
    return MC_REG_UNKNOWN;
}

static int pg_append(struct mc_reg_backend *b, json_t *rec, bool sync)
{
    struct pgb *p = pgb_of(b);
    char gen[24];
    const char *params[2] = {gen, NULL};
    char *text;
    size_t len;
    int rc = need_writable(p);

    if (rc == 0 && p->held != MC_REG_EXCLUSIVE)
        rc = mc_err(MC_EIO, "a record for %s was about to be written without the registry lock "
                            "(a bug); nothing was changed",
                    p->where);
    if (rc)
        return rc;
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)(p->gen + 1));
    if (json_object_set_new(rec, "g", json_integer((json_int_t)(p->gen + 1))) != 0)
        return mc_err(MC_ENOMEM, "out of memory building a registry record");
    text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL)
        return mc_err(MC_ENOMEM, "out of memory encoding a registry record");
    len = strlen(text);
    params[1] = text;
    rc = run_slow(p, "starting a change", "BEGIN", 0, NULL, NULL);
    /* bulk loads (sync false) need not wait for the WAL flush of each row; sync() orders them */
    if (rc == 0 && !sync)
        rc = run_slow(p, "starting a change", "SET LOCAL synchronous_commit = off", 0, NULL, NULL);
    if (rc == 0)
        rc = run_slow(p, "appending a record",
                      "INSERT INTO registry_records (gen, rec) VALUES ($1::bigint, $2)", 2, params,
                      NULL);
    /* delivered at commit, to every session LISTENing on mcache_registry */
    if (rc == 0)
        rc = run_slow(p, "announcing a record", "SELECT pg_notify('mcache_registry', $1)", 1,
                      params, NULL);
    if (rc == 0) {
        rc = run_slow(p, "committing a record", "COMMIT", 0, NULL, NULL);
        /* a COMMIT refused on a live session changed nothing; on a broken one, it may have */
        if (rc && lost(p)) {
            char why[1024];

            snprintf(why, sizeof(why), "%s", mc_last_error());
            rc = commit_outcome(p, gen, text, why);
        }
    }
    free(text);
    if (rc == MC_REG_UNKNOWN)
        return rc;
    if (rc && lost(p) && p->held != MC_REG_UNLOCKED) {
        char msg[1024];

        /* not committed, but the lock is gone: another writer may be at work already */
        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        mc_err(MC_EIO,
               "%s; nothing was changed; the connection went, and the registry lock with it, so "
               "the artifacts were kept: the next change (or `mcache gc`) removes them unless the "
               "registry holds their version",
               msg);
        return MC_REG_UNKNOWN;
    }
    if (rc) {
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        if (p->conn != NULL && PQtransactionStatus(p->conn) != PQTRANS_IDLE)
            run(p, "rolling back", "ROLLBACK", 0, NULL, NULL);
        return mc_err(rc, "%s; nothing was changed", msg);
    }
    p->gen++;
    p->log_bytes += len;
    return 0;
}

static int pg_sync(struct mc_reg_backend *b)
{
    struct pgb *p = pgb_of(b);
    /*
     * A synchronous commit waits for the WAL up to its own commit record,
     * which covers every earlier commit; only a transaction that wrote
     * something has one, hence the no-op update.
     */
    int rc = run_slow(p, "syncing", "BEGIN", 0, NULL, NULL);

    if (rc == 0)
        rc = run_slow(p, "syncing", "UPDATE registry_state SET epoch = epoch WHERE id = 1", 0, NULL,
                      NULL);
    if (rc == 0)
        rc = run_slow(p, "syncing", "COMMIT", 0, NULL, NULL);
    if (rc)
        run_slow(p, "rolling back", "ROLLBACK", 0, NULL, NULL);
    return rc;
}

static void pg_sizes(const struct mc_reg_backend *b, uint64_t *snapshot, uint64_t *log)
{
    const struct pgb *p = pgb_of(b);

    if (snapshot)
        *snapshot = p->snap_bytes;
    if (log)
        *log = p->log_bytes;
}

static bool pg_wants_compact(const struct mc_reg_backend *b)
{
    const struct pgb *p = pgb_of(b);

    return p->log_bytes > COMPACT_MIN_BYTES && p->log_bytes > COMPACT_RATIO * p->snap_bytes;
}

/* COPY text format: backslash, newline, carriage return and tab escaped. */
struct copy_ctx {
    struct pgb *p;
    int64_t deadline; /* for the whole COPY */
    bool late;
    int seq;
    uint64_t bytes;
    int rc;
};

/*
 * Send a COPY's data (buf; NULL: its end, with error err) on the session,
 * nonblocking, within c->deadline: a server that stops reading cannot hold
 * the writer (mcached's loop) past it.
 */
static int copy_send(struct copy_ctx *c, const char *buf, int n)
{
    PGconn *conn = c->p->conn;

    for (;;) {
        int r = buf ? PQputCopyData(conn, buf, n) : PQputCopyEnd(conn, n ? "the snapshot could not be made" : NULL);

        if (r < 0)
            break;
        if (r == 1) {
            int f;

            while ((f = PQflush(conn)) == 1 && !(c->late = pq_wait(conn, true, c->deadline) != 0))
                ;
            if (f == 0)
                return 0;
            if (c->late)
                return mc_err(MC_EIO,
                              "writing the snapshot to %s failed: no answer within %d ms (is "
                              "PostgreSQL frozen or the network down?)",
                              c->p->where, c->p->slow_ms);
            break;
        }
        if ((c->late = pq_wait(conn, true, c->deadline) != 0))
            return mc_err(MC_EIO,
                          "writing the snapshot to %s failed: no answer within %d ms (is "
                          "PostgreSQL frozen or the network down?)",
                          c->p->where, c->p->slow_ms);
        if (PQflush(conn) < 0)
            break;
    }
    return mc_err(MC_EIO, "writing the snapshot to %s failed: %s", c->p->where, pq_msg(conn));
}

static int copy_put(void *ctx, json_t *entry)
{
    struct copy_ctx *c = ctx;
    char *text = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER), *buf, *o;
    size_t n;

    json_decref(entry);
    if (text == NULL)
        return c->rc = mc_err(MC_ENOMEM, "out of memory writing a snapshot");
    n = strlen(text);
    buf = malloc(2 * n + 24);
    if (buf == NULL) {
        free(text);
        return c->rc = mc_err(MC_ENOMEM, "out of memory writing a snapshot");
    }
    o = buf + sprintf(buf, "%d\t", ++c->seq);
    for (const char *s = text; *s; s++) {
        if (*s == '\\' || *s == '\n' || *s == '\r' || *s == '\t') {
            *o++ = '\\';
            *o++ = *s == '\n' ? 'n' : *s == '\r' ? 'r' : *s == '\t' ? 't' : '\\';
        } else {
            *o++ = *s;
        }
    }
    *o++ = '\n';
    c->bytes += n;
    c->rc = copy_send(c, buf, (int)(o - buf));
    free(buf);
    free(text);
    return c->rc;
}

/* Under an open transaction: replace the snapshot by emit's state at p->gen, within p->slow_ms. */
static int write_snapshot(struct pgb *p, mc_reg_emit_fn emit, void *arg, uint64_t *bytes)
{
    struct copy_ctx c = {.p = p};
    PGresult *r;
    int rc = run_slow(p, "replacing the snapshot", "DELETE FROM registry_snapshot", 0, NULL, NULL);

    if (rc == 0)
        rc = run_slow(p, "writing the snapshot", "COPY registry_snapshot (seq, entry) FROM STDIN",
                      0, NULL, NULL);
    if (rc)
        return rc;
    if (PQsetnonblocking(p->conn, 1) != 0)
        return mc_err(MC_EIO, "writing the snapshot to %s failed: %s", p->where, pq_msg(p->conn));
    c.deadline = now_ms() + p->slow_ms;
    rc = emit(arg, copy_put, &c);
    if (rc == 0)
        rc = c.rc;
    if (!c.late) {
        int end = copy_send(&c, NULL, rc != 0);

        rc = rc ? rc : end;
    }
    if (!c.late) {
        r = pq_await(p->conn, c.deadline, &c.late);
        if (r == NULL && !c.late && rc == 0)
            rc = mc_err(MC_EIO, "writing the snapshot to %s failed: %s", p->where, pq_msg(p->conn));
        if (r != NULL && PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0)
            rc = mc_err(MC_EIO, "writing the snapshot to %s failed: %s", p->where,
                        PQresultErrorMessage(r));
        PQclear(r);
        if (c.late && rc == 0)
            rc = mc_err(MC_EIO,
                        "writing the snapshot to %s failed: no answer within %d ms (is "
                        "PostgreSQL frozen or the network down?)",
                        p->where, p->slow_ms);
    }
    if (c.late)
        drop(p); /* the answer may still come: the session cannot be used again */
    else
        PQsetnonblocking(p->conn, 0);
    *bytes = c.bytes;
    return rc;
}

static int pg_compact(struct mc_reg_backend *b, mc_reg_emit_fn emit, void *arg)
{
    struct pgb *p = pgb_of(b);
    char gen[24], sbytes[24];
    const char *params[2] = {gen, sbytes};
    uint64_t bytes = 0;
    PGresult *r = NULL;
    int rc = need_writable(p);

    if (rc == 0)
        rc = run_slow(p, "starting a compaction", "BEGIN", 0, NULL, NULL);
    if (rc == 0)
        rc = write_snapshot(p, emit, arg, &bytes);
    snprintf(gen, sizeof(gen), "%llu", (unsigned long long)p->gen);
    snprintf(sbytes, sizeof(sbytes), "%llu", (unsigned long long)bytes);
    if (rc == 0)
        rc = run_slow(p, "compacting", "DELETE FROM registry_records WHERE gen <= $1", 1, params,
                      NULL);
    /* a new epoch: followers that saw the old snapshot load everything again */
    if (rc == 0)
        rc = run_slow(p, "compacting",
                      "UPDATE registry_state SET snapshot_gen = $1::bigint, epoch = epoch + 1,"
                      " snapshot_bytes = $2::bigint RETURNING epoch",
                      2, params, &r);
    if (rc == 0)
        rc = run_slow(p, "committing a compaction", "COMMIT", 0, NULL, NULL);
    if (rc) {
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        run_slow(p, "rolling back", "ROLLBACK", 0, NULL, NULL);
        PQclear(r);
        return mc_err(rc, "%s; the registry is as it was", msg);
    }
    p->epoch = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    p->snap_bytes = bytes;
    p->log_bytes = 0;
    PQclear(r);
    return 0;
}

static int pg_cleanup(struct mc_reg_backend *b)
{
    (void)b; /* a dead writer's transaction was rolled back by the server */
    return 0;
}

static uint64_t pg_generation(const struct mc_reg_backend *b)
{
    return pgb_of(b)->gen;
}

static int pg_salvage(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg,
                      mc_reg_report_fn report, void *rarg, struct mc_reg_damage *d)
{
    bool damaged = false;
    int rc = load_all(pgb_of(b), fn, arg, report, rarg, &damaged);

    memset(d, 0, sizeof(*d));
    d->damaged = damaged;
    return rc;
}

static int pg_repair(struct mc_reg_backend *b, size_t skipped, mc_reg_emit_fn emit, void *arg,
                     mc_reg_report_fn report, void *rarg)
{
    struct pgb *p = pgb_of(b);

    mc_reg_reportf(report, rarg,
                   "rewriting the snapshot of %s from what is sound (%zu records no longer "
                   "applied); the damaged rows are dropped",
                   p->where, skipped);
    return pg_compact(b, emit, arg);
}

/* ---- watching ---------------------------------------------------------- */

/*
 * A session of its own, so that notifications wait in its socket whatever
 * the main one is doing (a notification arriving during a query on the main
 * session would be read by libpq there, and the fd polled would never wake).
 */
static int pg_watch_fd(struct mc_reg_backend *b)
{
    struct pgb *p = pgb_of(b);

    if (p->listen != NULL && PQstatus(p->listen) != CONNECTION_OK) {
        PQfinish(p->listen);
        p->listen = NULL;
    }
    if (p->listen == NULL) {
        PGconn *c = NULL;

        bool late = false;

        if (now_ms() < p->retry_at)
            return -1;
        if (pq_connect(p->url, p->where, quick_ms(), &c) != 0) {
            p->retry_at = now_ms() + RETRY_MS;
            return -1;
        }
        if (pq_run_within(c, quick_ms(), p->where, "listening for changes",
                          "LISTEN mcache_registry", 0, NULL, NULL, &late) != 0 ||
            PQsetnonblocking(c, 1) != 0) {
            PQfinish(c);
            return -1;
        }
        p->listen = c;
    }
    return PQsocket(p->listen);
}

static int pg_watch_drain(struct mc_reg_backend *b)
{
    struct pgb *p = pgb_of(b);
    PGnotify *n;
    int got = 0;

    if (p->listen == NULL)
        return -1;
    /* a closed socket reads as ready; consuming then fails and the status says why */
    if (!PQconsumeInput(p->listen) || PQstatus(p->listen) != CONNECTION_OK) {
        PQfinish(p->listen);
        p->listen = NULL;
        return -1;
    }
    while ((n = PQnotifies(p->listen)) != NULL) {
        got = 1;
        PQfreemem(n);
    }
    return got;
}

static void pg_set_deadlines(struct mc_reg_backend *b, int lock_wait_ms, int stmt_ms)
{
    struct pgb *p = pgb_of(b);

    p->lock_wait_ms = lock_wait_ms > 0 && lock_wait_ms < LOCK_WAIT_MS ? lock_wait_ms : LOCK_WAIT_MS;
    p->slow_ms = stmt_ms > 0 && stmt_ms < SLOW_MS ? stmt_ms : SLOW_MS;
}

/*
 * Who this registry is: the cluster's system identifier (pg_control_system(),
 * which every role may call unless an administrator revoked it: then without
 * it), the database and the schema.
 */
static int pg_identity(struct mc_reg_backend *b, char *out, size_t n)
{
    struct pgb *p = pgb_of(b);
    PGresult *r = NULL;
    int rc = run(p, "reading the registry's identity",
                 "SELECT 'postgres system ' || (SELECT system_identifier FROM pg_control_system())"
                 " || ' database ' || current_database() || ' schema ' || current_schema()",
                 0, NULL, &r);

    if (rc != 0)
        rc = run(p, "reading the registry's identity",
                 "SELECT 'postgres database ' || current_database() || ' schema ' ||"
                 " current_schema()",
                 0, NULL, &r);
    if (rc == 0)
        snprintf(out, n, "%s", PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return rc;
}

const struct mc_reg_backend_ops mc_reg_postgres_ops = {
    .name = "postgres",
    .open = pg_open,
    .close = pg_close,
    .lock = pg_lock,
    .unlock = pg_unlock,
    .load = pg_load,
    .follow = pg_follow,
    .follow_unlocked = true,
    .prepare = pg_prepare,
    .append = pg_append,
    .sync = pg_sync,
    .wants_compact = pg_wants_compact,
    .compact = pg_compact,
    .cleanup = pg_cleanup,
    .generation = pg_generation,
    .sizes = pg_sizes,
    .salvage = pg_salvage,
    .repair = pg_repair,
    .watch_fd = pg_watch_fd,
    .watch_drain = pg_watch_drain,
    .set_deadlines = pg_set_deadlines,
    .identity = pg_identity,
};
