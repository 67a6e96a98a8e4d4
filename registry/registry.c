/*
 * registry.c - opening a store, keeping a handle in step with the manifest,
 * the lock protocol, reading and resolving references.
 *
 * Locking: STORE/lock is flock'd shared while a handle reads the manifest
 * and exclusive while it changes anything; the exclusive holder is the only
 * process that appends, cuts a torn tail, compacts or cleans up. Every
 * mutation runs reg_write_begin() (lock, catch up with what others wrote,
 * finish what a dead process left half done), validates, reg_commit()s one
 * record and ends with reg_write_end() (maybe compact, unlock).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "index/name.h"
#include "registry/reg_int.h"

#define LOCK_FILE "lock"

/* Compact once the journal is past both of these. */
#define COMPACT_MIN_BYTES (64u << 10)
#define COMPACT_RATIO     2

static void default_warn(void *arg, const char *msg)
{
    (void)arg;
    fprintf(stderr, "mcache: warning: %s\n", msg);
}

void reg_warn(struct mc_registry *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    r->warn(r->warn_arg, msg);
}

int reg_lock(struct mc_registry *r, int mode)
{
    while (flock(r->lockfd, mode) != 0) {
        if (errno != EINTR)
            return mc_err(mc_err_from_errno(errno), "locking %s/" LOCK_FILE " failed: %s", r->dir,
                          strerror(errno));
    }
    r->lock_mode = mode;
    return 0;
}

void reg_unlock(struct mc_registry *r)
{
    if (r->lock_mode)
        flock(r->lockfd, LOCK_UN);
    r->lock_mode = 0;
}

static bool writable(const struct mc_registry *r)
{
    return !(r->flags & MC_REGISTRY_READONLY);
}

/* Replay everything into a fresh state; keep the old one on failure. */
static int reload(struct mc_registry *r)
{
    struct reg_state *st = state_new(r->dir);
    int rc;

    if (st == NULL)
        return mc_err(MC_ENOMEM, "out of memory loading %s", r->dir);
    rc = mc_manifest_load(&r->man, state_apply, st, r->lock_mode == LOCK_EX && writable(r));
    if (rc) {
        state_free(st);
        return rc;
    }
    state_free(r->st);
    r->st = st;
    return 0;
}

int reg_sync(struct mc_registry *r, bool *changed)
{
    bool ch = false;
    int rc;

    if (r->st == NULL || mc_manifest_replaced(&r->man)) {
        rc = reload(r);
        ch = rc == 0;
    } else {
        rc = mc_manifest_follow(&r->man, state_apply, r->st, r->lock_mode == LOCK_EX && writable(r),
                                &ch);
    }
    if (changed)
        *changed = ch;
    return rc;
}

/* Leftovers of an interrupted compaction. */
static void clean_compaction(struct mc_registry *r)
{
    unlinkat(r->dirfd, MC_SNAPSHOT_FILE ".tmp", 0);
    unlinkat(r->dirfd, MC_JOURNAL_FILE ".tmp", 0);
}

int reg_write_begin(struct mc_registry *r)
{
    int rc;

    if (!writable(r))
        return mc_err(MC_EPERM, "%s was opened read-only; nothing was changed", r->dir);
    rc = reg_lock(r, LOCK_EX);
    if (rc)
        return rc;
    rc = reg_sync(r, NULL);
    if (rc == 0)
        rc = store_marker_recover(r);
    if (rc == 0)
        rc = mc_manifest_ensure(&r->man);
    /* a journal from an older format, or left by an interrupted compaction */
    if (rc == 0 && mc_manifest_needs_rewrite(&r->man))
        rc = mc_manifest_compact(&r->man, state_emit, r->st);
    if (rc)
        reg_unlock(r);
    return rc;
}

int reg_write_end(struct mc_registry *r, int rc)
{
    uint64_t s = r->man.sid.exists ? r->man.sid.size : 0, j = r->man.jpos;

    if (rc == 0 && j > COMPACT_MIN_BYTES && j > COMPACT_RATIO * s) {
        int c = mc_manifest_compact(&r->man, state_emit, r->st);

        if (c)
            reg_warn(r, "compacting the manifest of %s failed (the change itself is saved): %s",
                     r->dir, mc_last_error());
    }
    reg_unlock(r);
    return rc;
}

int reg_commit(struct mc_registry *r, json_t *rec, uint64_t *gen)
{
    int rc = mc_manifest_append(&r->man, rec);

    if (rc)
        return rc;
    rc = state_apply_json(r->st, rec, false, r->man.gen);
    if (rc) {
        /* validated before it was written, so this is a bug; stay truthful */
        char msg[1024];

        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        reload(r);
        return mc_err(rc, "the change was saved but could not be applied here: %s", msg);
    }
    if (gen)
        *gen = r->man.gen;
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

static bool dir_is_empty(int dirfd)
{
    int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    bool empty = true;

    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return false;
    }
    while (empty && (e = readdir(d)) != NULL)
        empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(d);
    return empty;
}

static int open_store(struct mc_registry *r)
{
    bool create = r->flags & MC_REGISTRY_CREATE;
    int e;

    r->dirfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (r->dirfd < 0 && errno == ENOENT && create && writable(r)) {
        if (mkdir(r->dir, 0755) != 0 && errno != EEXIST)
            return mc_err(mc_err_from_errno(errno), "cannot create the store %s: %s", r->dir,
                          strerror(errno));
        r->dirfd = open(r->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (r->dirfd < 0) {
        e = errno;
        if (e == ENOENT)
            return mc_err(MC_ENOENT, "there is no store at %s (create one with `mcache init`)",
                          r->dir);
        return mc_err(mc_err_from_errno(e), "cannot open the store %s: %s", r->dir, strerror(e));
    }
    r->lockfd = openat(r->dirfd, LOCK_FILE, (writable(r) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (r->lockfd < 0 && errno == ENOENT && create && writable(r)) {
        if (!dir_is_empty(r->dirfd))
            return mc_err(MC_EEXIST,
                          "%s exists, is not empty and is not an mcache store; choose "
                          "a new or empty directory",
                          r->dir);
        r->lockfd = openat(r->dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (r->lockfd >= 0) {
            mkdirat(r->dirfd, MC_MODELS_DIR, 0755);
            mkdirat(r->dirfd, MC_TMP_DIR, 0755);
            mc_fsync_dir(r->dirfd, NULL);
        } else if (errno == EEXIST) {
            /* another process is creating it too */
            r->lockfd = openat(r->dirfd, LOCK_FILE, O_RDWR | O_CLOEXEC);
        }
    }
    if (r->lockfd < 0) {
        e = errno;
        if (e == ENOENT)
            return mc_err(MC_ENOENT,
                          "%s is not an mcache store (it has no lock file); create a "
                          "store with `mcache init`",
                          r->dir);
        return mc_err(mc_err_from_errno(e), "cannot open %s/" LOCK_FILE ": %s%s", r->dir,
                      strerror(e), e == EACCES ? " (open it read-only to only read)" : "");
    }
    return 0;
}

int reg_open_noload(const char *dir, unsigned flags, void (*warn)(void *, const char *),
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
    r->dirfd = r->lockfd = -1;
    r->flags = flags;
    r->warn = warn ? warn : default_warn;
    r->warn_arg = warn_arg;
    r->uid = (uint32_t)getuid();
    rc = open_store(r);
    if (rc) {
        mc_registry_close(r);
        return rc;
    }
    mc_manifest_init(&r->man, r->dirfd, r->dir, writable(r), r->warn, r->warn_arg);
    *out = r;
    return 0;
}

/* Under the exclusive lock: what dead processes left behind. */
int reg_cleanup(struct mc_registry *r)
{
    size_t dead = 0;
    int rc = mc_manifest_ensure(&r->man);

    if (rc == 0)
        rc = store_marker_recover(r);
    if (rc == 0)
        rc = store_clean_temps(r, true, &dead);
    if (rc == 0 && dead)
        reg_warn(r, "removed %zu temp file%s of pushes whose process died, from %s/" MC_TMP_DIR,
                 dead, dead == 1 ? "" : "s", r->dir);
    clean_compaction(r);
    return rc;
}

int mc_registry_open(const char *dir, const struct mc_registry_opts *opts, struct mc_registry **out)
{
    struct mc_registry *r;
    int rc;

    rc = reg_open_noload(dir, opts ? opts->flags : 0, opts ? opts->warn : NULL,
                         opts ? opts->warn_arg : NULL, &r);
    if (rc)
        return rc;
    rc = reg_lock(r, writable(r) ? LOCK_EX : LOCK_SH);
    if (rc == 0)
        rc = reload(r);
    if (rc == 0 && writable(r))
        rc = reg_cleanup(r);
    reg_unlock(r);
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
    mc_manifest_fini(&r->man);
    state_free(r->st);
    if (r->lockfd >= 0)
        close(r->lockfd);
    if (r->dirfd >= 0)
        close(r->dirfd);
    free(r->dir);
    free(r);
}

const char *mc_registry_dir(const struct mc_registry *r)
{
    return r->dir;
}

uint64_t mc_registry_generation(const struct mc_registry *r)
{
    return r->man.gen;
}

void mc_registry_set_uid(struct mc_registry *r, uint32_t uid)
{
    r->uid = uid;
}

int mc_registry_refresh(struct mc_registry *r, bool *changed)
{
    int rc = reg_lock(r, LOCK_SH);

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
    if (snapshot)
        *snapshot = r->man.sid.exists ? r->man.sid.size : 0;
    if (journal)
        *journal = r->man.jpos;
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
