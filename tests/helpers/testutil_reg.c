/*
 * testutil_reg.c - the REGISTRY section of the tests' helpers (see
 * testutil.h): what the registry tests share. Formerly tests/reg_util.c.
 */
#include "tests/helpers/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef MCACHE_HAVE_POSTGRES
#include <libpq-fe.h>
#endif

static void die(const char *what, const char *path)
{
    fprintf(stderr, "test setup: %s %s: %s\n", what, path, strerror(errno));
    abort();
}

char *tu_tempdir(const char *base)
{
    const char *b = getenv("MC_TEST_TMP");
    char *p;

    if (b == NULL)
        b = base ? base : "/tmp";
    if (asprintf(&p, "%s/mcache-reg-XXXXXX", b) < 0 || mkdtemp(p) == NULL)
        die("mkdtemp in", b);
    return p;
}

void tu_rm_rf(const char *path)
{
    struct stat st;
    DIR *d;
    struct dirent *e;

    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode) && (d = opendir(path)) != NULL) {
        while ((e = readdir(d)) != NULL) {
            char *c;

            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            if (asprintf(&c, "%s/%s", path, e->d_name) < 0)
                abort();
            tu_rm_rf(c);
            free(c);
        }
        closedir(d);
        rmdir(path);
        return;
    }
    unlink(path);
}

void tu_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    const char *p = data;

    if (fd < 0)
        die("create", path);
    while (len > 0) {
        ssize_t k = write(fd, p, len);

        if (k <= 0)
            die("write", path);
        p += k;
        len -= (size_t)k;
    }
    close(fd);
}

void tu_make_file(const char *path, size_t size, unsigned seed)
{
    char *buf = malloc(size ? size : 1);
    uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;

    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (char)x;
    }
    tu_write(path, buf, size);
    free(buf);
}

char *tu_read(const char *path, size_t *len)
{
    struct stat st;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    size_t got = 0;

    if (fd < 0 || fstat(fd, &st) != 0)
        die("read", path);
    buf = malloc((size_t)st.st_size + 1);
    while (got < (size_t)st.st_size) {
        ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);

        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    buf[got] = '\0';
    if (len)
        *len = got;
    return buf;
}

void tu_copy(const char *from, const char *to)
{
    size_t len;
    char *buf = tu_read(from, &len);

    tu_write(to, buf, len);
    free(buf);
}

void tu_copy_manifest(const char *from, const char *to)
{
    static const char *const files[] = {"lock", "manifest", "journal"};

    mkdir(to, 0755);
    for (int i = 0; i < 3; i++) {
        char a[PATH_MAX], b[PATH_MAX];

        snprintf(a, sizeof(a), "%s/%s", from, files[i]);
        snprintf(b, sizeof(b), "%s/%s", to, files[i]);
        unlink(b);
        if (access(a, F_OK) == 0)
            tu_copy(a, b);
    }
}

static void cat(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void cat(char **buf, size_t *len, size_t *cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        va_start(ap, fmt);
        n = vsnprintf(*buf + *len, *cap - *len, fmt, ap);
        va_end(ap);
        if ((size_t)n < *cap - *len)
            break;
        *cap = *cap * 2 + (size_t)n;
        *buf = realloc(*buf, *cap);
    }
    *len += (size_t)n;
}

char *tu_dump(struct mc_registry *r)
{
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);

    buf[0] = '\0';
    for (size_t i = 0;; i++) {
        const struct mc_reg_model *m = mc_registry_model_at(r, i);

        if (m == NULL)
            break;
        cat(&buf, &len, &cap, "model %s\n", m->name);
        for (size_t k = 0; k < m->nversions; k++) {
            char *js = mc_reg_version_json(m->versions[k]);

            cat(&buf, &len, &cap, "  %s gen=%llu %s\n", m->versions[k]->version,
                (unsigned long long)m->versions[k]->generation, js);
            free(js);
        }
        for (size_t k = 0; k < m->naliases; k++) {
            const struct mc_reg_alias *a = &m->aliases[k];
            char text[2048];

            mc_reg_targets_format(a, text, sizeof(text));
            cat(&buf, &len, &cap, "  alias %s -> %s [%s]\n", a->alias,
                a->target ? a->target->version : "(none)", text);
            for (size_t h = 0; h < a->nhistory; h++)
                cat(&buf, &len, &cap, "    %s -> %s by %u at %llu gen %llu%s%s%s\n",
                    a->history[h].from ? a->history[h].from : "-",
                    a->history[h].to ? a->history[h].to : "-", a->history[h].uid,
                    (unsigned long long)a->history[h].at_ns,
                    (unsigned long long)a->history[h].generation,
                    a->history[h].rollback ? " rollback" : "", a->history[h].why ? " why " : "",
                    a->history[h].why ? a->history[h].why : "");
        }
        if (m->health) {
            cat(&buf, &len, &cap, "  health %ums:", m->health->timeout_ms);
            for (size_t k = 0; k < m->health->argc; k++)
                cat(&buf, &len, &cap, " %s", m->health->argv[k]);
            cat(&buf, &len, &cap, "\n");
        }
    }
    /* what issue 13 added: alias snapshots, deployments, alerts */
    for (size_t i = 0; i < mc_registry_snapshot_count(r); i++) {
        const struct mc_reg_snapshot *s = mc_registry_snapshot_at(r, i);

        cat(&buf, &len, &cap, "snapshot %s by %u at %llu\n", s->name, s->uid,
            (unsigned long long)s->created_ns);
        for (size_t k = 0; k < s->nentries; k++)
            cat(&buf, &len, &cap, "  %s %s = %s\n", s->entries[k].model, s->entries[k].alias,
                s->entries[k].targets);
    }
    for (size_t i = 0; i < mc_registry_deploy_count(r); i++) {
        const struct mc_reg_deploy *d = mc_registry_deploy_at(r, i);

        cat(&buf, &len, &cap,
            "deploy %llu %s@%s -> %s %s steps", (unsigned long long)d->id, d->name, d->version,
            d->alias, mc_deploy_strategy_name(d->strategy));
        for (size_t k = 0; k < d->nsteps; k++)
            cat(&buf, &len, &cap, "%s%u", k ? "," : " ", d->steps[k]);
        cat(&buf, &len, &cap,
            " every %llums err<=%g p99x<=%g min %llu from %s step %zu %s since %llu started %llu "
            "ended %llu by %u reason %s health",
            (unsigned long long)d->interval_ms, d->max_error_rate, d->max_p99_ratio,
            (unsigned long long)d->min_requests, d->from ? d->from : "-", d->step,
            mc_deploy_state_name(d->state), (unsigned long long)d->step_started_ns,
            (unsigned long long)d->started_ns, (unsigned long long)d->ended_ns, d->uid,
            d->reason ? d->reason : "-");
        for (size_t k = 0; k < d->health_argc; k++)
            cat(&buf, &len, &cap, " %s", d->health_argv[k]);
        cat(&buf, &len, &cap, " %ums\n", d->health_timeout_ms);
    }
    for (size_t i = 0; i < mc_registry_alert_count(r); i++) {
        const struct mc_reg_alert *a = mc_registry_alert_at(r, i);

        cat(&buf, &len, &cap, "alert %llu at %llu %s %s@%s %s: %s\n", (unsigned long long)a->id,
            (unsigned long long)a->at_ns, a->kind, a->model ? a->model : "-",
            a->version ? a->version : "-", a->alias ? a->alias : "-", a->message);
    }
    return buf;
}

int tu_count_entries(const char *dir, const char *prefix)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, prefix, strlen(prefix)) == 0 && strcmp(e->d_name, ".") &&
            strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

void tu_warn(void *arg, const char *msg)
{
    struct tu_warnings *w = arg;

    w->count++;
    snprintf(w->last, sizeof(w->last), "%s", msg);
}

const char *tu_backend(void)
{
    const char *b = getenv("MC_TEST_BACKEND");

    /* the journal keeps everything in the store directory: nothing to prepare */
    if (b == NULL || *b == '\0' || strcmp(b, "journal") == 0)
        return "journal";
#ifdef MCACHE_HAVE_POSTGRES
    if (strcmp(b, "postgres") == 0) {
        if (tu_pg_url() == NULL) {
            fprintf(stderr, "test setup: MC_TEST_BACKEND=postgres needs MCACHE_TEST_PG_URL "
                            "(run the test under tests/fleet/pg.sh run)\n");
            exit(1);
        }
        return "postgres";
    }
#endif
    fprintf(stderr, "test setup: MC_TEST_BACKEND=%s is not a backend these tests know\n", b);
    exit(1);
}

bool tu_backend_is(const char *name)
{
    return strcmp(tu_backend(), name) == 0;
}

const char *tu_pg_url(void)
{
    const char *u = getenv("MCACHE_TEST_PG_URL");

    return u && *u ? u : NULL;
}

#ifdef MCACHE_HAVE_POSTGRES
static void quiet(void *arg, const char *msg)
{
    (void)arg, (void)msg; /* "schema ... already exists, skipping" */
}

/*
 * Each store directory gets a registry of its own in the test database: a
 * schema named for the directory, put first on the search_path by the URL.
 * Made (and migrated) on first use; migrating again is a no-op.
 */
const char *tu_pg_store_url(const char *dir)
{
    static char url[1024], last[32];
    char schema[32], sql[128];
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    PGconn *c;
    PGresult *res;

    for (const char *s = dir; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    snprintf(schema, sizeof(schema), "t_%016llx", (unsigned long long)h);
    /* a test reopens its store many times: made and migrated once is enough */
    if (strcmp(schema, last) == 0)
        return url;
    c = PQconnectdb(tu_pg_url());
    PQsetNoticeProcessor(c, quiet, NULL);
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "test setup: cannot connect to %s: %s", tu_pg_url(), PQerrorMessage(c));
        abort();
    }
    snprintf(sql, sizeof(sql), "CREATE SCHEMA IF NOT EXISTS %s", schema);
    res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "test setup: %s: %s", sql, PQerrorMessage(c));
        abort();
    }
    PQclear(res);
    PQfinish(c);
    snprintf(url, sizeof(url), "%s%coptions=-csearch_path%%3D%s", tu_pg_url(),
             strchr(tu_pg_url(), '?') ? '&' : '?', schema);
    if (mc_registry_db_migrate(url, NULL, NULL) != 0) {
        fprintf(stderr, "test setup: migrating %s: %s\n", url, mc_last_error());
        abort();
    }
    snprintf(last, sizeof(last), "%s", schema);
    return url;
}
#endif

static struct mc_registry_opts tu_opts(const char *dir);

char *tu_persisted(const char *path, size_t *len)
{
#ifdef MCACHE_HAVE_POSTGRES
    if (tu_backend_is("postgres")) {
        char store[PATH_MAX], *slash, *out;
        const char *q;
        PGconn *c;
        PGresult *res;

        snprintf(store, sizeof(store), "%s", path);
        slash = strrchr(store, '/');
        if (slash == NULL)
            return NULL;
        *slash = '\0';
        q = strcmp(slash + 1, "journal") == 0
                ? "SELECT coalesce(string_agg(rec, E'\\n' ORDER BY gen), '') FROM registry_records"
                : "SELECT coalesce(string_agg(entry, E'\\n' ORDER BY seq), '') FROM "
                  "registry_snapshot";
        c = PQconnectdb(tu_pg_store_url(store));
        res = PQexec(c, q);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            fprintf(stderr, "test setup: %s: %s", q, PQerrorMessage(c));
            abort();
        }
        out = strdup(PQgetvalue(res, 0, 0));
        *len = strlen(out);
        PQclear(res);
        PQfinish(c);
        return out;
    }
#endif
    return tu_read(path, len);
}

int tu_open(const char *dir, unsigned flags, struct tu_warnings *w, struct mc_registry **out)
{
    struct mc_registry_opts o = tu_opts(dir);

    o.flags = flags;
    o.warn = tu_warn;
    o.warn_arg = w;
    return mc_registry_open(dir, &o, out);
}

/* The backend and registry URL tu_open() would pass for dir. */
static struct mc_registry_opts tu_opts(const char *dir)
{
    struct mc_registry_opts o = {.backend = tu_backend()};

#ifdef MCACHE_HAVE_POSTGRES
    if (tu_backend_is("postgres") && dir[0] != '\0')
        o.registry = tu_pg_store_url(dir);
#else
    (void)dir;
#endif
    return o;
}

int tu_check(const char *dir, unsigned flags, void (*report)(void *, const char *), void *arg,
             size_t *problems)
{
    struct mc_registry_opts o = tu_opts(dir);

    return mc_registry_check_opts(dir, &o, flags, report, arg, problems);
}

int tu_repair(const char *dir, void (*report)(void *, const char *), void *arg)
{
    struct mc_registry_opts o = tu_opts(dir);

    return mc_registry_repair_opts(dir, &o, report, arg);
}

const char *tu_helper(void)
{
    static char path[PATH_MAX];

    if (path[0] == '\0') {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

        if (n <= 0)
            die("readlink", "/proc/self/exe");
        self[n] = '\0';
        snprintf(path, sizeof(path), "%s/reg_helper", dirname(self));
    }
    return path;
}

pid_t tu_spawn(const char *crash_at, const char *out_path, const char *const *args)
{
    const char *argv[32];
    size_t n = 0;
    pid_t pid;

    argv[n++] = "reg_helper";
    while (args[n - 1] && n < 31) {
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    pid = fork();
    if (pid < 0)
        die("fork", "reg_helper");
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        if (crash_at)
            setenv("MCACHE_CRASH_AT", crash_at, 1);
        else
            unsetenv("MCACHE_CRASH_AT");
        if (out_path) {
            int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

            if (fd < 0 || dup2(fd, 1) < 0)
                _exit(126);
        }
        execv(tu_helper(), (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int tu_wait(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            die("waitpid", "reg_helper");
    return status;
}
