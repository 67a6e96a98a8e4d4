/*
 * journal.c - the journal metadata backend (struct mc_reg_backend_ops in
 * backend.h): the registry's records kept in the store directory as
 * STORE/manifest (a snapshot of the whole state) and STORE/journal (every
 * record since), framed, read and written by manifest*.c. STORE/lock is the
 * store lock, and what makes a directory a store.
 *
 * This file adds what the manifest itself does not know: opening and
 * creating the store directory, the lock, when to compact, and how check
 * and repair report and set aside damaged files.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "registry/backend.h"
#include "registry/files.h"
#include "registry/manifest.h"

#define LOCK_FILE "lock"

/* Compact once the journal is past both of these. */
#define COMPACT_MIN_BYTES (64u << 10)
#define COMPACT_RATIO     2

struct journal {
    struct mc_reg_backend be;
    const char *dir; /* the registry's, which outlives this */
    unsigned flags;
    int dirfd;
    int lockfd;
    struct mc_manifest man;
    struct mc_salvage found; /* what the last salvage found, for repair */
};

static struct journal *journal_of(const struct mc_reg_backend *b)
{
    return (struct journal *)b;
}

static bool writable(const struct journal *j)
{
    return !(j->flags & MC_REGISTRY_READONLY);
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

/* The store directory and its lock file, created if asked (and allowed). */
static int open_store(struct journal *j, bool *created)
{
    bool create = j->flags & MC_REGISTRY_CREATE;
    int e;

    j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (j->dirfd < 0 && errno == ENOENT && create && writable(j)) {
        if (mkdir(j->dir, 0755) != 0 && errno != EEXIST)
            return mc_err(mc_err_from_errno(errno), "cannot create the store %s: %s", j->dir,
                          strerror(errno));
        j->dirfd = open(j->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    }
    if (j->dirfd < 0) {
        e = errno;
        if (e == ENOENT)
            return mc_err(MC_ENOENT, "there is no store at %s (create one with `mcache init`)",
                          j->dir);
        return mc_err(mc_err_from_errno(e), "cannot open the store %s: %s", j->dir, strerror(e));
    }
    j->lockfd = openat(j->dirfd, LOCK_FILE, (writable(j) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (j->lockfd < 0 && errno == ENOENT && create && writable(j)) {
        if (!dir_is_empty(j->dirfd))
            return mc_err(MC_EEXIST,
                          "%s exists, is not empty and is not an mcache store; choose "
                          "a new or empty directory",
                          j->dir);
        j->lockfd = openat(j->dirfd, LOCK_FILE, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (j->lockfd >= 0) {
            *created = true;
            mc_fsync_dir(j->dirfd, NULL);
        } else if (errno == EEXIST) {
            /* another process is creating it too */
            j->lockfd = openat(j->dirfd, LOCK_FILE, O_RDWR | O_CLOEXEC);
        }
    }
    if (j->lockfd < 0) {
        e = errno;
        if (e == ENOENT)
            return mc_err(MC_ENOENT,
                          "%s is not an mcache store (it has no lock file); create a "
                          "store with `mcache init`",
                          j->dir);
        return mc_err(mc_err_from_errno(e), "cannot open %s/" LOCK_FILE ": %s%s", j->dir,
                      strerror(e), e == EACCES ? " (open it read-only to only read)" : "");
    }
    return 0;
}

static void journal_close(struct mc_reg_backend *b)
{
    struct journal *j = journal_of(b);

    if (j == NULL)
        return;
    mc_manifest_fini(&j->man);
    if (j->lockfd >= 0)
        close(j->lockfd);
    if (j->dirfd >= 0)
        close(j->dirfd);
    free(j);
}

static int journal_open(const struct mc_reg_backend_conf *conf, struct mc_reg_backend **out,
                        bool *created)
{
    struct journal *j = calloc(1, sizeof(*j));
    int rc;

    *out = NULL;
    *created = false;
    if (j == NULL)
        return mc_err(MC_ENOMEM, "out of memory opening %s", conf->dir);
    j->be.ops = &mc_reg_journal_ops;
    j->dir = conf->dir;
    j->flags = conf->flags;
    j->dirfd = j->lockfd = -1;
    rc = open_store(j, created);
    if (rc) {
        journal_close(&j->be);
        return rc;
    }
    mc_manifest_init(&j->man, j->dirfd, j->dir, writable(j), conf->warn, conf->warn_arg);
    *out = &j->be;
    return 0;
}

static int journal_lock(struct mc_reg_backend *b, enum mc_reg_lock mode)
{
    struct journal *j = journal_of(b);

    while (flock(j->lockfd, mode == MC_REG_EXCLUSIVE ? LOCK_EX : LOCK_SH) != 0) {
        if (errno != EINTR)
            return mc_err(mc_err_from_errno(errno), "locking %s/" LOCK_FILE " failed: %s", j->dir,
                          strerror(errno));
    }
    return 0;
}

static void journal_unlock(struct mc_reg_backend *b)
{
    flock(journal_of(b)->lockfd, LOCK_UN);
}

static int journal_load(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg, bool cut)
{
    return mc_manifest_load(&journal_of(b)->man, fn, arg, cut);
}

static int journal_follow(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg, bool cut,
                          bool *changed)
{
    struct journal *j = journal_of(b);

    *changed = false;
    if (mc_manifest_replaced(&j->man))
        return MC_REG_RELOAD;
    return mc_manifest_follow(&j->man, fn, arg, cut, changed);
}

static int journal_prepare(struct mc_reg_backend *b, mc_reg_emit_fn emit, void *arg)
{
    struct journal *j = journal_of(b);
    int rc = mc_manifest_ensure(&j->man);

    /* a journal from an older format, or left by an interrupted compaction */
    if (rc == 0 && mc_manifest_needs_rewrite(&j->man))
        rc = mc_manifest_compact(&j->man, emit, arg);
    return rc;
}

static int journal_append(struct mc_reg_backend *b, json_t *rec, bool sync)
{
    struct journal *j = journal_of(b);

    return sync ? mc_manifest_append(&j->man, rec) : mc_manifest_append_nosync(&j->man, rec);
}

static int journal_sync(struct mc_reg_backend *b)
{
    return mc_manifest_sync(&journal_of(b)->man);
}

static void journal_sizes(const struct mc_reg_backend *b, uint64_t *snapshot, uint64_t *log)
{
    const struct journal *j = journal_of(b);

    if (snapshot)
        *snapshot = j->man.sid.exists ? j->man.sid.size : 0;
    if (log)
        *log = j->man.jpos;
}

static bool journal_wants_compact(const struct mc_reg_backend *b)
{
    uint64_t s, l;

    journal_sizes(b, &s, &l);
    return l > COMPACT_MIN_BYTES && l > COMPACT_RATIO * s;
}

static int journal_compact(struct mc_reg_backend *b, mc_reg_emit_fn emit, void *arg)
{
    return mc_manifest_compact(&journal_of(b)->man, emit, arg);
}

static int journal_cleanup(struct mc_reg_backend *b)
{
    struct journal *j = journal_of(b);
    int rc = mc_manifest_ensure(&j->man);

    /* leftovers of an interrupted compaction */
    unlinkat(j->dirfd, MC_SNAPSHOT_FILE ".tmp", 0);
    unlinkat(j->dirfd, MC_JOURNAL_FILE ".tmp", 0);
    return rc;
}

static uint64_t journal_generation(const struct mc_reg_backend *b)
{
    return journal_of(b)->man.gen;
}

static int journal_salvage(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg,
                           mc_reg_report_fn report, void *rarg, struct mc_reg_damage *d)
{
    struct journal *j = journal_of(b);
    struct mc_salvage *s = &j->found;
    int rc = mc_manifest_salvage(&j->man, fn, arg, s);

    memset(d, 0, sizeof(*d));
    if (rc)
        return rc;
    if (s->snap_damaged)
        mc_reg_reportf(report, rarg, "%s/" MC_SNAPSHOT_FILE " is damaged at byte %llu: %s", j->dir,
                       (unsigned long long)s->snap_off, s->snap_why);
    if (s->journal_damaged)
        mc_reg_reportf(report, rarg, "%s/" MC_JOURNAL_FILE " is damaged at byte %llu: %s", j->dir,
                       (unsigned long long)s->journal_off, s->journal_why);
    if (s->torn_tail)
        mc_reg_reportf(report, rarg,
                       "%s/" MC_JOURNAL_FILE " ends with a torn record at byte %llu (%llu bytes of "
                       "an interrupted change; the next writer cuts it)",
                       j->dir, (unsigned long long)s->tail_off, (unsigned long long)s->tail_len);
    d->damaged = s->snap_damaged || s->journal_damaged;
    d->torn_tail = s->torn_tail;
    return 0;
}

static int journal_repair(struct mc_reg_backend *b, size_t skipped, mc_reg_emit_fn emit, void *arg,
                          mc_reg_report_fn report, void *rarg)
{
    struct journal *j = journal_of(b);
    const struct mc_salvage *s = &j->found;
    char where[PATH_MAX];
    int rc = 0;

    if (s->snap_damaged) {
        rc = mc_manifest_move_aside(j->dirfd, j->dir, MC_SNAPSHOT_FILE, where, sizeof(where));
        if (rc == 0)
            mc_reg_reportf(report, rarg,
                           "kept the %llu sound entries of the snapshot before byte %llu; the "
                           "damaged file is now %s",
                           (unsigned long long)s->snap_entries, (unsigned long long)s->snap_off,
                           where);
    }
    if (rc == 0 && (s->journal_damaged || s->snap_damaged || skipped)) {
        rc = mc_manifest_move_aside(j->dirfd, j->dir, MC_JOURNAL_FILE, where, sizeof(where));
        if (rc == 0)
            mc_reg_reportf(report, rarg,
                           "kept the %llu sound journal records%s%s; the old journal is now %s",
                           (unsigned long long)s->journal_records,
                           s->journal_damaged ? " before the damage" : "",
                           skipped ? " that still applied" : "", where);
    }
    if (rc == 0)
        rc = mc_manifest_compact(&j->man, emit, arg);
    return rc;
}

int mc_reg_replica_write(const char *dir, uint64_t gen, mc_reg_emit_fn emit, void *arg)
{
    struct mc_reg_backend_conf c = {.dir = dir, .flags = MC_REGISTRY_CREATE};
    struct mc_reg_backend *b;
    bool created;
    int rc = journal_open(&c, &b, &created);

    if (rc)
        return rc;
    rc = journal_lock(b, MC_REG_EXCLUSIVE);
    if (rc == 0) {
        struct journal *j = journal_of(b);

        rc = mc_manifest_ensure(&j->man);
        /* the snapshot is the shared registry's state at its generation, not the replica's own */
        j->man.gen = gen;
        if (rc == 0)
            rc = mc_manifest_compact(&j->man, emit, arg);
        journal_unlock(b);
    }
    journal_close(b);
    return rc;
}

const struct mc_reg_backend_ops mc_reg_journal_ops = {
    .name = "journal",
    .open = journal_open,
    .close = journal_close,
    .lock = journal_lock,
    .unlock = journal_unlock,
    .load = journal_load,
    .follow = journal_follow,
    .prepare = journal_prepare,
    .append = journal_append,
    .sync = journal_sync,
    .wants_compact = journal_wants_compact,
    .compact = journal_compact,
    .cleanup = journal_cleanup,
    .generation = journal_generation,
    .sizes = journal_sizes,
    .salvage = journal_salvage,
    .repair = journal_repair,
};
