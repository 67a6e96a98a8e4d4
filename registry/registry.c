/*
 * registry.c - opening a store, keeping a handle in step with its
 * metadata, the lock protocol, reading and resolving references.
 *
 * Locking: the store lock (backend.h) is held shared while a handle reads
 * the metadata and exclusive while it changes anything; the exclusive holder
 * is the only process that appends, cuts a torn tail, compacts or cleans up.
 * Every mutation runs reg_write_begin() (lock, catch up with what others
 * wrote, finish what a dead process left half done), validates,
 * reg_commit()s one record and ends with reg_write_end() (maybe compact,
 * unlock).
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "index/name.h"
#include "registry/reg_int.h"
#include "registry/s3.h"

/* The metadata backends this build has; the first is the default. */
static const struct mc_reg_backend_ops *const backends[] = {
    &mc_reg_journal_ops,
#ifdef MCACHE_HAVE_POSTGRES
    &mc_reg_postgres_ops,
#endif
};

#ifndef MCACHE_HAVE_POSTGRES
static int no_postgres(void)
{
    return mc_err(MC_EINVAL, "this mcache was built without PostgreSQL support (libpq); "
                             "rebuild it with libpq-dev installed");
}

int mc_registry_db_migrate(const char *url, int *from, int *to)
{
    (void)url, (void)from, (void)to;
    return no_postgres();
}

int mc_registry_db_status(const char *url, int *have, int *want)
{
    (void)url, (void)have, (void)want;
    return no_postgres();
}
#endif

/* The backend opts names, or the one its registry URL implies (NULL: the default). */
static const char *backend_named(const char *backend, const char *url)
{
    if (backend != NULL || url == NULL)
        return backend;
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return "postgres";
    return NULL;
}

const struct mc_reg_backend_ops *mc_reg_backend_find(const char *name)
{
    char have[256];
    size_t n = 0;

    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++) {
        if (name == NULL || strcmp(name, backends[i]->name) == 0)
            return backends[i];
        n += (size_t)snprintf(have + n, n < sizeof(have) ? sizeof(have) - n : 0, "%s%s",
                              i ? ", " : "", backends[i]->name);
    }
    mc_err(MC_EINVAL, "there is no registry backend \"%s\" (this mcache has: %s)", name, have);
    return NULL;
}

static void default_warn(void *arg, const char *msg)
{
    (void)arg;
    fprintf(stderr, "mcache: warning: %s\n", msg);
}

int reg_lock(struct mc_registry *r, enum mc_reg_lock mode)
{
    int rc = r->be->ops->lock(r->be, mode);

    if (rc == 0)
        r->lock_mode = mode;
    return rc;
}

void reg_unlock(struct mc_registry *r)
{
    if (r->lock_mode)
        r->be->ops->unlock(r->be);
    r->lock_mode = MC_REG_UNLOCKED;
}

/* The artifact store takes the store lock shared to create a temp file. */
static int lock_shared(void *r)
{
    return reg_lock(r, MC_REG_SHARED);
}

static void unlock(void *r)
{
    reg_unlock(r);
}

static bool writable(const struct mc_registry *r)
{
    return !(r->flags & MC_REGISTRY_READONLY);
}

/* A torn tail may be cut only by the exclusive holder of a writable handle. */
static bool may_cut(const struct mc_registry *r)
{
    return r->lock_mode == MC_REG_EXCLUSIVE && writable(r);
}

/* Replay everything into a fresh state; keep the old one on failure. */
static int reload(struct mc_registry *r)
{
    struct reg_state *st = state_new(r->art->ops->root(r->art));
    int rc;

    if (st == NULL)
        return mc_err(MC_ENOMEM, "out of memory loading %s", r->dir);
    rc = r->be->ops->load(r->be, state_apply, st, may_cut(r));
    if (rc) {
        state_free(st);
        return rc;
    }
    state_free(r->st);
    r->st = st;
    return 0;
}

/*
 * A shared registry (a backend with a watch fd: postgres) is kept in STORE/replica when a
 * writable handle's owner asks (mc_registry_keep_replica: mcached, at start, every 2 s and at
 * stop; not every change: a rewrite with fsyncs each time made bulk writers crawl), so that a
 * host cut off from the database can still start and serve what it last saw
 * (mc_registry_open). Best effort: a failure warns.
 *
 * The caller's thread (mcached's loop) only serializes the state, which is cheap; the
 * rewrite, fsyncs included, runs on a thread of the handle's, one at a time: a request while
 * one runs waits for the next. The rewrite is the journal's compaction (a temp file, fsync,
 * rename, fsync of the directory), so a crash mid-write leaves the previous replica whole.
 * mc_registry_close() waits for a rewrite in flight, then (once a replica was asked for)
 * writes what moved since, so the replica left at stop is the newest.
 */
struct replica_job {
    pthread_t thread;
    char path[PATH_MAX];
    uint64_t gen;
    char **entries; /* the state's entries as JSON text, taken on the caller's thread */
    size_t n, cap;
    int rc;         /* the thread's result, with msg; read after pthread_join() */
    char msg[1024];
    atomic_bool done; /* set last by the thread (release), polled by the owner (acquire) */
};

static int job_take(void *ctx, json_t *entry)
{
    struct replica_job *j = ctx;
    char *text = json_dumps(entry, JSON_COMPACT | JSON_PRESERVE_ORDER);

    json_decref(entry);
    if (text != NULL && j->n == j->cap) {
        size_t cap = j->cap ? 2 * j->cap : 256;
        char **e = realloc(j->entries, cap * sizeof(*e));

        if (e == NULL) {
            free(text);
            text = NULL;
        } else {
            j->entries = e;
            j->cap = cap;
        }
    }
    if (text == NULL)
        return mc_err(MC_ENOMEM, "out of memory copying the registry for its replica");
    j->entries[j->n++] = text;
    return 0;
}

/* emit for mc_reg_replica_write(), on the job's thread: the entries taken, parsed again. */
static int job_emit(void *arg, mc_reg_put_fn put, void *ctx)
{
    struct replica_job *j = arg;

    for (size_t i = 0; i < j->n; i++) {
        json_t *e = json_loads(j->entries[i], 0, NULL);
        int rc = e ? put(ctx, e) : mc_err(MC_ENOMEM, "out of memory writing the replica");

        if (rc)
            return rc;
    }
    return 0;
}

static void *job_run(void *arg)
{
    struct replica_job *j = arg;

    j->rc = mc_reg_replica_write(j->path, j->gen, job_emit, j);
    if (j->rc)
        snprintf(j->msg, sizeof(j->msg), "%s", mc_last_error());
    atomic_store_explicit(&j->done, true, memory_order_release); /* pairs with replica_reap's */
    return NULL;
}

static void job_free(struct replica_job *j)
{
    for (size_t i = 0; i < j->n; i++)
        free(j->entries[i]);
    free(j->entries);
    free(j);
}

/* The rewrite in flight, if it is done (or wait for it): its outcome. true: none in flight. */
static bool replica_reap(struct mc_registry *r, bool wait)
{
    struct replica_job *j = r->replica_job;

    if (j == NULL)
        return true;
    /* pairs with job_run's release: rc and msg are the thread's final ones */
    if (!wait && !atomic_load_explicit(&j->done, memory_order_acquire))
        return false;
    pthread_join(j->thread, NULL);
    if (j->rc == 0)
        r->replica_gen = j->gen;
    else
        mc_reg_reportf(r->warn, r->warn_arg,
                       "could not keep this host's replica of the registry in %s: %s", j->path,
                       j->msg);
    job_free(j);
    r->replica_job = NULL;
    return true;
}

static void replica_save(struct mc_registry *r)
{
    struct replica_job *j;
    uint64_t gen;
    int rc;

    if (r->be->ops->watch_fd == NULL || !writable(r) || r->offline[0] || r->st == NULL)
        return;
    if (!replica_reap(r, false))
        return; /* one at a time: the next request writes what this one would have */
    gen = r->be->ops->generation(r->be);
    if (gen == r->replica_gen)
        return;
    j = calloc(1, sizeof(*j));
    if (j == NULL)
        return;
    snprintf(j->path, sizeof(j->path), "%s/replica", r->dir);
    j->gen = gen;
    rc = state_emit(r->st, job_take, j);
    if (rc == 0)
        rc = pthread_create(&j->thread, NULL, job_run, j) == 0
                 ? 0
                 : mc_err(MC_ENOMEM, "cannot start a thread to write the replica");
    if (rc) {
        mc_reg_reportf(r->warn, r->warn_arg,
                       "could not keep this host's replica of the registry in %s: %s", j->path,
                       mc_last_error());
        job_free(j);
        return;
    }
    r->replica_job = j;
}

int reg_sync(struct mc_registry *r, bool *changed)
{
    bool ch = false;
    int rc = MC_REG_RELOAD;

    if (r->st != NULL)
        rc = r->be->ops->follow(r->be, state_apply, r->st, may_cut(r), &ch);
    if (rc == MC_REG_RELOAD) {
        rc = reload(r);
        ch = rc == 0;
    }
    if (changed)
        *changed = ch;
    return rc;
}

int reg_write_begin(struct mc_registry *r)
{
    int rc;

    if (r->offline[0])
        return mc_err(MC_EIO,
                      "the registry at %s is unreachable: %s; nothing was changed; this host "
                      "serves its replica of generation %llu",
                      r->where, r->offline, (unsigned long long)mc_registry_generation(r));
    if (!writable(r))
        return mc_err(MC_EPERM, "%s was opened read-only; nothing was changed", r->dir);
    rc = reg_lock(r, MC_REG_EXCLUSIVE);
    if (rc)
        return rc;
    rc = reg_sync(r, NULL);
    if (rc == 0)
        rc = r->art->ops->intent_recover(r->art, state_holds, r->st);
    if (rc == 0)
        rc = r->be->ops->prepare(r->be, state_emit, r->st);
    if (rc)
        reg_unlock(r);
    return rc;
}

int reg_write_end(struct mc_registry *r, int rc)
{
    if (rc)
        reg_record_refusal(r, rc);
    r->intent[0] = '\0';
    if (rc == 0 && r->be->ops->wants_compact(r->be)) {
        int c = r->be->ops->compact(r->be, state_emit, r->st);

        if (c)
            mc_reg_reportf(r->warn, r->warn_arg,
                           "compacting the manifest of %s failed (the change itself is saved): %s",
                           r->dir, mc_last_error());
    }
    reg_unlock(r);
    return rc;
}

int reg_commit(struct mc_registry *r, json_t *rec, uint64_t *gen)
{
    int rc = reg_stamp(r, rec);

    r->commit_kept = false;
    if (rc == 0)
        rc = r->be->ops->append(r->be, rec, true);
    if (rc == MC_REG_UNKNOWN) {
        r->commit_kept = true; /* maybe saved: its artifacts stay for intent_recover */
        return MC_EIO;
    }
    if (rc)
        return rc;
    r->commit_kept = true;
    rc = state_apply_json(r->st, rec, false, r->be->ops->generation(r->be));
    if (rc) {
        /*
         * Validated before it was written, so this is a bug. The change is
         * saved, so it counts as made: the state is read again from the store.
         */
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        rc = reload(r);
        mc_reg_reportf(r->warn, r->warn_arg,
                       "the change was saved but could not be applied here (%s); %s", msg,
                       rc ? "reading the registry again failed too" : "read the registry again");
        if (rc)
            return mc_err(rc, "the change was saved but could not be applied here: %s", msg);
    }
    if (gen)
        *gen = r->be->ops->generation(r->be);
    return 0;
}

/* An absolute path for dir without resolving symlinks; trailing '/' dropped. */
static char *abs_dir(const char *dir)
{
    char cwd[PATH_MAX], *p;
    size_t n;

    while (dir[0] == '.' && dir[1] == '/') /* "./mcache-data" is cwd/mcache-data */
        for (dir += 2; *dir == '/'; dir++)
            ;
    if (dir[0] == '/') {
        p = strdup(dir);
    } else {
        if (getcwd(cwd, sizeof(cwd)) == NULL)
            return NULL;
        if (asprintf(&p, "%s/%s", cwd, *dir ? dir : ".") < 0)
            p = NULL;
    }
    for (n = p ? strlen(p) : 0; n > 1 && p[n - 1] == '/'; n--)
        p[n - 1] = '\0';
    return p;
}

/* Is path the store's own models/ directory (dir is absolute; path may not exist yet)? */
static bool is_models_dir(const char *dir, const char *path)
{
    char want[PATH_MAX], a[PATH_MAX], b[PATH_MAX];

    snprintf(want, sizeof(want), "%s/models", dir);
    if (realpath(want, a) && realpath(path, b))
        return strcmp(a, b) == 0;
    snprintf(a, sizeof(a), "%s", path);
    for (size_t n = strlen(a); n > 1 && a[n - 1] == '/'; n--)
        a[n - 1] = '\0';
    return strcmp(a, want) == 0;
}

/* Open the metadata backend (which makes or finds the store), then the artifact store. */
/*
 * The artifact store: artifacts (else MCACHE_ARTIFACTS) as s3://BUCKET/PREFIX
 * for the object store, or nothing (or the store's own models/) for local.
 */
static const struct mc_art_store_ops *art_ops(const char **artifacts)
{
    if (*artifacts == NULL || **artifacts == '\0')
        *artifacts = getenv("MCACHE_ARTIFACTS");
    if (*artifacts && !strncmp(*artifacts, "s3://", 5))
        return &mc_art_s3_ops;
    return &mc_art_local_ops;
}

/* The backends warn through the handle, so that mc_registry_set_warn() reaches them too. */
static void warn_via(void *arg, const char *msg)
{
    struct mc_registry *r = arg;

    r->warn(r->warn_arg, msg);
}

void mc_registry_set_warn(struct mc_registry *r, void (*warn)(void *arg, const char *msg),
                          void *arg)
{
    r->warn = warn ? warn : default_warn;
    r->warn_arg = arg;
}

static int open_backends(struct mc_registry *r, const char *backend, const char *url,
                         const char *artifacts, const char *creds, const char *meta_dir)
{
    const struct mc_art_store_ops *aops = art_ops(&artifacts);
    const struct mc_reg_backend_ops *ops = mc_reg_backend_find(backend_named(backend, url));
    struct mc_reg_backend_conf bc = {
        .dir = meta_dir ? meta_dir : r->dir,
        .url = url,
        .flags = r->flags,
        .warn = warn_via,
        .warn_arg = r};
    struct mc_art_conf ac = {.dir = r->dir,
                             .url = artifacts,
                             .creds_file = creds,
                             .writable = writable(r),
                             .lock_shared = lock_shared,
                             .unlock = unlock,
                             .lock_arg = r,
                             .warn = warn_via,
                             .warn_arg = r};
    int rc;

    if (ops == NULL)
        return MC_EINVAL;
    /*
     * Artifacts are in the object store or in the store's own models/: any other value (a typo
     * such as s3:/b/p or S3://b/p, a directory elsewhere) is refused, never silently replaced
     * by models/ (with a shared registry, other hosts could not read what was pushed there).
     */
    if (aops == &mc_art_local_ops && artifacts && *artifacts && !is_models_dir(r->dir, artifacts))
        return mc_err(MC_EINVAL,
                      "the artifacts given (--artifacts or MCACHE_ARTIFACTS: \"%.200s\") are "
                      "neither an s3://BUCKET/PREFIX URL nor this store's own %s/models; write "
                      "s3://BUCKET/PREFIX (lower-case s3, two slashes), or leave it unset for the "
                      "store's models/; nothing was changed",
                      strstr(artifacts, "@") ? "(a value with credentials, not shown)" : artifacts,
                      r->dir);
    if (aops == &mc_art_s3_ops) { /* a bad s3:// value is refused before the store is made */
        char bucket[64];
        const char *prefix;
        size_t prefix_len;

        if ((rc = mc_s3_url_parse(artifacts, bucket, &prefix, &prefix_len)) != 0)
            return rc;
    }
    /* the journal lives in the store directory: a URL given to it would be silently unused */
    if (url != NULL && ops == &mc_reg_journal_ops) {
        /* never the value itself: a conninfo or another scheme may carry a password */
        const char *sep = strstr(url, "://");
        int scheme = sep && sep - url <= 16 ? (int)(sep - url) : 0;

        return mc_err(MC_EINVAL,
                      "the registry given (--registry or MCACHE_REGISTRY%s%.*s%s) is not a "
                      "postgres:// or postgresql:// URL; write it as postgres://USER@HOST:PORT/DB "
                      "(a store directory is given as the store, not as the registry)",
                      scheme ? ", scheme \"" : "", scheme, url, scheme ? "\"" : "");
    }
    char id[256] = ""; /* the registry an object-store prefix is bound to (artifacts_s3.c) */

    rc = ops->open(&bc, &r->be, &ac.created);
    if (rc == 0 && aops == &mc_art_s3_ops && ac.writable && ops->identity)
        rc = ops->identity(r->be, id, sizeof(id));
    ac.registry_id = id;
    if (rc == 0)
        rc = aops->open(&ac, &r->art);
    return rc;
}

/* url without a password, for messages (as backend_pg.c's). */
static void where_of(const char *url, char *out, size_t n)
{
    const char *s = strstr(url, "://"), *at = s ? strchr(s + 3, '@') : NULL;
    const char *colon = at ? memchr(s + 3, ':', (size_t)(at - (s + 3))) : NULL;

    if (colon == NULL)
        snprintf(out, n, "%s", url);
    else
        snprintf(out, n, "%.*s%s", (int)(colon - url), url, at);
    if ((s = strstr(out, "password=")) != NULL)
        out[s - out] = '\0';
}

int reg_open_noload(const char *dir, const char *backend, const char *url, const char *artifacts,
                    const char *creds, unsigned flags, void (*warn)(void *, const char *),
                    void *warn_arg, struct mc_registry **out)
{
    struct mc_registry *r;
    int rc;

    *out = NULL;
    if (dir == NULL || dir[0] == '\0')
        return mc_err(MC_EINVAL, "no store directory given");
    r = calloc(1, sizeof(*r));
    if (r == NULL || (r->dir = abs_dir(dir)) == NULL) {
        free(r);
        return mc_err(MC_ENOMEM, "out of memory opening %s", dir);
    }
    r->flags = flags;
    r->warn = warn ? warn : default_warn;
    r->warn_arg = warn_arg;
    r->uid = (uint32_t)getuid();
    reg_actor_default(r);
    rc = open_backends(r, backend, url, artifacts, creds, NULL);
    /*
     * A shared registry that cannot be reached: its replica, read-only, if this host has one
     * (kept by replica_save). Writes are refused (reg_write_begin) naming the database.
     */
    if (rc == MC_EIO && url != NULL && r->be == NULL) {
        char replica[PATH_MAX], lock[PATH_MAX + 8];

        snprintf(replica, sizeof(replica), "%s/replica", r->dir);
        snprintf(lock, sizeof(lock), "%s/lock", replica);
        if (access(lock, F_OK) == 0) {
            char why[1024], *p;

            snprintf(why, sizeof(why), "%s", mc_last_error());
            if ((p = strstr(why, "; nothing was changed")) != NULL) /* said once, below */
                *p = '\0';
            if (r->art) {
                r->art->ops->close(r->art);
                r->art = NULL;
            }
            r->flags = (flags & ~MC_REGISTRY_CREATE) | MC_REGISTRY_READONLY;
            rc = open_backends(r, "journal", NULL, artifacts, creds, replica);
            if (rc == 0) {
                snprintf(r->offline, sizeof(r->offline), "%s", why);
                where_of(url, r->where, sizeof(r->where));
            }
        }
    }
    if (rc) {
        mc_registry_close(r);
        return rc;
    }
    if (url != NULL)
        where_of(url, r->where, sizeof(r->where));
    *out = r;
    return 0;
}

void mc_registry_keep_replica(struct mc_registry *r)
{
    r->replica_kept = true;
    replica_save(r);
}

const char *mc_registry_offline(const struct mc_registry *r)
{
    return r->offline[0] ? r->offline : NULL;
}

/*
 * Under the exclusive lock: what dead processes left behind. An artifact
 * store that cannot be reached now (MC_EIO: an object store down) is a
 * warning, not a refusal to open: every change runs intent_recover again
 * before it writes (reg_write_begin), and clean() only frees space, so
 * nothing is lost by waiting, while a node must be able to start and serve
 * its node-local copies (loader/remote.c) with the object store down.
 */
int reg_cleanup(struct mc_registry *r)
{
    int rc = r->be->ops->cleanup(r->be);

    if (rc == 0)
        rc = r->art->ops->intent_recover(r->art, state_holds, r->st);
    if (rc == 0)
        rc = r->art->ops->clean(r->art);
    if (rc == MC_EIO && strcmp(r->art->ops->name, "local") != 0) {
        mc_reg_reportf(r->warn, r->warn_arg,
                       "the artifact store cannot be reached (%s); opened anyway: changes "
                       "wait until it answers, versions with a node-local copy still load",
                       mc_last_error());
        rc = 0;
    }
    return rc;
}

int mc_registry_open(const char *dir, const struct mc_registry_opts *opts, struct mc_registry **out)
{
    struct mc_registry *r;
    int rc;

    rc = reg_open_noload(dir, opts ? opts->backend : NULL, opts ? opts->registry : NULL,
                         opts ? opts->artifacts : NULL, opts ? opts->artifacts_creds : NULL,
                         opts ? opts->flags : 0,
                         opts ? opts->warn : NULL, opts ? opts->warn_arg : NULL, &r);
    if (rc)
        return rc;
    /* a backend that reads a state some writer left needs no lock to read (backend.h) */
    if (writable(r) || !r->be->ops->follow_unlocked)
        rc = reg_lock(r, writable(r) ? MC_REG_EXCLUSIVE : MC_REG_SHARED);
    if (rc == 0)
        rc = reload(r);
    if (rc == 0 && writable(r))
        rc = reg_cleanup(r);
    reg_unlock(r);
    if (rc == 0 && r->offline[0])
        mc_reg_reportf(r->warn, r->warn_arg,
                       "the registry at %s is unreachable (%s); serving this host's replica of "
                       "generation %llu, read-only, from %s/replica",
                       r->where, r->offline, (unsigned long long)mc_registry_generation(r),
                       r->dir);
    if (rc) {
        mc_registry_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void mc_registry_close(struct mc_registry *r)
{
    if (r == NULL)
        return;
    replica_reap(r, true);
    /* a replica kept: the newest, even if the last request found a rewrite in flight */
    if (r->replica_kept) {
        replica_save(r);
        replica_reap(r, true);
    }
    if (r->art)
        r->art->ops->close(r->art);
    if (r->be)
        r->be->ops->close(r->be);
    state_free(r->st);
    free(r->dir);
    free(r);
}

const char *mc_registry_dir(const struct mc_registry *r)
{
    return r->dir;
}

bool mc_registry_artifact_local(struct mc_registry *r, const struct mc_reg_version *v)
{
    return r->art->ops->locate(r->art, v);
}

int mc_registry_artifact_read(struct mc_registry *r, const struct mc_reg_version *v, uint64_t off,
                              void *buf, size_t n)
{
    return r->art->ops->read(r->art, v, off, buf, n);
}

uint64_t mc_registry_generation(const struct mc_registry *r)
{
    return r->be->ops->generation(r->be);
}

uint64_t mc_registry_state_generation(const struct mc_registry *r)
{
    return r->st->state_gen;
}

int mc_registry_watch_fd(struct mc_registry *r)
{
    return r->be->ops->watch_fd ? r->be->ops->watch_fd(r->be) : -1;
}

int mc_registry_watch_drain(struct mc_registry *r)
{
    return r->be->ops->watch_drain ? r->be->ops->watch_drain(r->be) : 0;
}

void mc_registry_set_uid(struct mc_registry *r, uint32_t uid)
{
    r->uid = uid;
    reg_actor_default(r);
}

void mc_registry_set_deadlines(struct mc_registry *r, int lock_wait_ms, int stmt_ms)
{
    if (r->be->ops->set_deadlines)
        r->be->ops->set_deadlines(r->be, lock_wait_ms, stmt_ms);
}

int mc_registry_refresh(struct mc_registry *r, bool *changed)
{
    int rc;

    if (r->be->ops->follow_unlocked && r->lock_mode == MC_REG_UNLOCKED) {
        if (changed)
            *changed = false;
        return reg_sync(r, changed);
    }
    rc = reg_lock(r, MC_REG_SHARED);

    if (changed)
        *changed = false;
    if (rc)
        return rc;
    rc = reg_sync(r, changed);
    reg_unlock(r);
    return rc;
}

void mc_registry_sizes(const struct mc_registry *r, uint64_t *snapshot, uint64_t *journal)
{
    r->be->ops->sizes(r->be, snapshot, journal);
}

/* ---- reading ---------------------------------------------------------- */

size_t mc_registry_model_count(const struct mc_registry *r)
{
    return r->st->count;
}

const struct mc_reg_model *mc_registry_model_at(struct mc_registry *r, size_t i)
{
    state_sort(r->st);
    if (i >= r->st->count || r->st->sorted == NULL)
        return NULL;
    return &r->st->sorted[i]->pub;
}

struct reg_model *reg_need_model(const struct mc_registry *r, const char *name)
{
    struct reg_model *m;

    if (mc_name_check(name) != 0)
        return NULL;
    m = state_model(r->st, name);
    if (m == NULL)
        mc_err(MC_ENOENT, "there is no model \"%s\" in %s", name, r->dir);
    return m;
}

const struct mc_reg_model *mc_registry_model(const struct mc_registry *r, const char *name)
{
    struct reg_model *m = reg_need_model(r, name);

    return m ? &m->pub : NULL;
}

/* "1.0.0, 1.1.0, ... (7 in all)" for messages: the highest few. */
static const char *versions_list(const struct reg_model *m, char *buf, size_t size)
{
    size_t n = 0, shown = 0;

    buf[0] = '\0';
    for (size_t i = m->nvers; i-- > 0 && shown < 5; shown++)
        n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s", shown ? ", " : "",
                              m->vers[i]->version);
    if (m->nvers > shown && n < size)
        snprintf(buf + n, size - n, ", ... (%zu in all)", m->nvers);
    if (m->nvers == 0)
        snprintf(buf, size, "none");
    return buf;
}

struct reg_ver *reg_need_version(const struct mc_registry *r, const char *name, const char *version)
{
    struct reg_model *m = reg_need_model(r, name);
    struct mc_semver sv;
    struct reg_ver *rv;
    char list[256];

    if (m == NULL)
        return NULL;
    if (mc_semver_parse(version, version ? strlen(version) : 0, &sv) != 0) {
        mc_err_prefix(MC_EINVAL, "model \"%s\"", name);
        return NULL;
    }
    rv = model_version(m, &sv);
    if (rv == NULL || (sv.build_len && strcmp(rv->v.version, version) != 0)) {
        mc_err(MC_ENOENT, "model \"%s\" has no version %s (it has %s)", name, version,
               versions_list(m, list, sizeof(list)));
        return NULL;
    }
    return rv;
}

int mc_registry_resolve(const struct mc_registry *r, const char *name, const char *ref,
                        const struct mc_reg_version **out)
{
    struct reg_model *m;
    struct mc_range *range = NULL;
    const struct mc_reg_version *best = NULL;
    char list[256];
    int kind;

    *out = NULL;
    m = reg_need_model(r, name);
    if (m == NULL)
        return mc_name_check(name) ? MC_EINVAL : MC_ENOENT;
    kind = mc_ref_classify(ref);
    if (kind < 0)
        return kind;
    if (kind == MC_REF_EXACT) {
        struct reg_ver *rv = reg_need_version(r, name, ref);

        if (rv == NULL)
            return MC_ENOENT;
        *out = &rv->v;
        return 0;
    }
    if (kind == MC_REF_ALIAS) {
        struct reg_alias *a = model_alias(m, ref);

        if (a == NULL || a->target == NULL)
            return mc_err(MC_ENOENT, "model \"%s\" has no alias \"%s\"%s", name, ref,
                          a ? " (it was removed)" : "");
        *out = &a->target->v;
        return 0;
    }
    if (kind == MC_REF_RANGE && mc_range_parse(ref, &range) != 0)
        return MC_EINVAL;
    for (size_t i = 0; i < m->nvers; i++) {
        const struct mc_reg_version *v = m->vers[i];

        if (v->status == MC_STATUS_READY && mc_ref_better(range, &v->sv, best ? &best->sv : NULL))
            best = v;
    }
    mc_range_free(range);
    if (best == NULL)
        return mc_err(MC_ENOENT, "no ready version of \"%s\" matches %s%s%s (it has %s)", name,
                      kind == MC_REF_LATEST ? "\"latest\" (a release without a prerelease tag)"
                                            : "the range \"",
                      kind == MC_REF_LATEST ? "" : ref, kind == MC_REF_LATEST ? "" : "\"",
                      versions_list(m, list, sizeof(list)));
    *out = best;
    return 0;
}
