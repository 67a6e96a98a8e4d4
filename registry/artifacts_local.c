/*
 * artifacts_local.c - the local artifact store (struct mc_art_store_ops in
 * backend.h): each version's bytes in STORE/models/<name>/<version>/artifact,
 * read-only and immutable once committed; the temp files of puts in
 * STORE/tmp/; the commit marker that brackets a change to both the metadata
 * and these files.
 *
 * Temp files. A push copies into STORE/tmp/push-<pid>-<n> without the store
 * lock, holding an flock on the temp file itself for as long as it lives.
 * The file is created and locked while the store lock is held shared, so a
 * process holding the store lock exclusive that finds a temp file whose
 * flock it can take knows its pusher died (the kernel drops flocks with the
 * process; pid reuse cannot fool it) and removes it.
 *
 * The commit marker. A change that touches both the manifest and artifact
 * directories (push: rename the artifact into place, then append; removal:
 * append, then delete) first writes STORE/tmp/commit naming the directories
 * (temp file, fsync, rename), and removes it when done, all under the store
 * lock. Whoever next takes the lock and finds a marker knows its writer died
 * in between, and reconciles each named directory with the manifest: a
 * version directory the manifest does not hold goes. So the manifest never
 * names an artifact that is not there, and no orphan stays behind.
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
#include <sys/statvfs.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/clock.h"
#include "common/err.h"
#include "index/name.h"
#include "index/semver.h"
#include "registry/backend.h"
#include "registry/files.h"

#define MC_TMP_DIR     "tmp"
#define MC_MODELS_DIR  "models"
#define MC_COMMIT_FILE "tmp/commit"

struct local {
    struct mc_art_store s;
    const char *dir; /* the registry's, which outlives this */
    char *root;      /* dir/models */
    int dirfd;
    struct mc_art_conf conf;
};

static struct local *local_of(struct mc_art_store *s)
{
    return (struct local *)s;
}

static int sys_err(int e, const char *what, const char *dir, const char *rel)
{
    if (e == ENOSPC || e == EDQUOT)
        return mc_err(MC_ENOSPC,
                      "the disk holding %s is full: %s %s/%s failed; nothing was "
                      "changed; free some space and retry",
                      dir, what, dir, rel);
    return mc_err(mc_err_from_errno(e), "%s %s/%s failed: %s", what, dir, rel, strerror(e));
}

/* ---- directories ------------------------------------------------------ */

static int store_mkdirs(int dirfd, const char *rel)
{
    char path[PATH_MAX];
    bool made = false;

    snprintf(path, sizeof(path), "%s", rel);
    for (char *p = path;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;

        *p = '\0';
        if (mkdirat(dirfd, path, 0755) == 0)
            made = true;
        else if (errno != EEXIST)
            return -errno;
        *p = c;
        if (c == '\0')
            break;
    }
    /* make each new entry durable: fsync every directory on the way */
    if (made) {
        for (char *p = path + strlen(path); p > path; p--) {
            if (*p == '/') {
                *p = '\0';
                mc_fsync_dir(dirfd, path);
            }
        }
        mc_fsync_dir(dirfd, NULL);
    }
    return 0;
}

/* Remove rel (a file or a directory tree) below dirfd. */
static int store_rm_tree(int dirfd, const char *rel)
{
    int fd = openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct dirent *e;
    DIR *d;
    int rc = 0;

    if (fd < 0) {
        if (errno == ENOENT)
            return 0;
        if (errno == ENOTDIR || errno == ELOOP)
            return unlinkat(dirfd, rel, 0) == 0 ? 0 : -errno;
        return -errno;
    }
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return -errno;
    }
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(fd, e->d_name, 0) != 0) {
            if (errno == EISDIR || errno == EPERM)
                rc = store_rm_tree(fd, e->d_name);
            else if (errno != ENOENT)
                rc = -errno;
        }
    }
    closedir(d);
    if (unlinkat(dirfd, rel, AT_REMOVEDIR) != 0 && errno != ENOENT && rc == 0)
        rc = -errno;
    return rc;
}

/* rmdir rel and its parents below models/ while they are empty, then fsync. */
static void rmdir_up(struct local *l, char *rel)
{
    char *slash;

    while (strcmp(rel, MC_MODELS_DIR) != 0 && unlinkat(l->dirfd, rel, AT_REMOVEDIR) == 0 &&
           (slash = strrchr(rel, '/')) != NULL)
        *slash = '\0';
    mc_fsync_dir(l->dirfd, rel);
}

static void local_remove_version(struct mc_art_store *s, const char *name, const char *version)
{
    struct local *l = local_of(s);
    char rel[PATH_MAX];

    snprintf(rel, sizeof(rel), MC_MODELS_DIR "/%s/%s", name, version);
    store_rm_tree(l->dirfd, rel);
    *strrchr(rel, '/') = '\0';
    rmdir_up(l, rel);
}

/* A removed model's version directories; namespaced models below it stay. */
static void local_remove_model(struct mc_art_store *s, const char *name)
{
    struct local *l = local_of(s);
    char rel[PATH_MAX];
    struct dirent *e;
    int fd;
    DIR *d;

    snprintf(rel, sizeof(rel), MC_MODELS_DIR "/%s", name);
    fd = openat(l->dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d)) != NULL)
        if (mc_semver_valid(e->d_name, strlen(e->d_name)))
            store_rm_tree(fd, e->d_name);
    closedir(d);
    rmdir_up(l, rel);
}

/* ---- the commit marker ------------------------------------------------ */

/*
 * One line per ref: "name" (a whole model) or "name version". Written whole
 * (temp, fsync, rename) so a reader never sees half a marker.
 */
static int local_intent_write(struct mc_art_store *s, const struct mc_art_ref *refs, size_t n)
{
    struct local *l = local_of(s);
    int fd, rc = 0;

    mkdirat(l->dirfd, MC_TMP_DIR, 0755);
    fd = openat(l->dirfd, MC_COMMIT_FILE ".new", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sys_err(errno, "creating", l->dir, MC_COMMIT_FILE ".new");
    for (size_t i = 0; i < n && rc == 0; i++)
        if (dprintf(fd, "%s%s%s\n", refs[i].name, refs[i].version ? " " : "",
                    refs[i].version ? refs[i].version : "") < 0)
            rc = -errno;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && renameat(l->dirfd, MC_COMMIT_FILE ".new", l->dirfd, MC_COMMIT_FILE) != 0)
        rc = -errno;
    if (rc == 0)
        mc_fsync_dir(l->dirfd, MC_TMP_DIR);
    if (rc) {
        unlinkat(l->dirfd, MC_COMMIT_FILE ".new", 0);
        return sys_err(-rc, "writing", l->dir, MC_COMMIT_FILE);
    }
    mc_crashpoint("marker-written");
    return 0;
}

static void local_intent_clear(struct mc_art_store *s)
{
    unlinkat(local_of(s)->dirfd, MC_COMMIT_FILE, 0);
}

/* Reconcile one marker line with the metadata. Returns 1 if it removed something. */
static int reconcile(struct local *l, char *line, mc_art_holds_fn holds, void *arg)
{
    char *version = strchr(line, ' ');
    char rel[PATH_MAX];
    struct mc_semver sv;

    if (version)
        *version++ = '\0';
    if (mc_name_check(line) != 0)
        return 0; /* not ours to touch */
    if (version == NULL) {
        if (holds(arg, line, NULL))
            return 0;
        snprintf(rel, sizeof(rel), MC_MODELS_DIR "/%s", line);
        if (faccessat(l->dirfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
            return 0;
        local_remove_model(&l->s, line);
        return 1;
    }
    if (mc_semver_parse(version, strlen(version), &sv) != 0)
        return 0;
    if (holds(arg, line, version))
        return 0;
    snprintf(rel, sizeof(rel), MC_MODELS_DIR "/%s/%s", line, version);
    if (faccessat(l->dirfd, rel, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
        return 0;
    local_remove_version(&l->s, line, version);
    return 1;
}

static int local_intent_recover(struct mc_art_store *s, mc_art_holds_fn holds, void *arg)
{
    struct local *l = local_of(s);
    char buf[8192], *line, *save;
    ssize_t n;
    int fd = openat(l->dirfd, MC_COMMIT_FILE, O_RDONLY | O_CLOEXEC);
    int removed = 0;

    /* a marker never renamed into effect: its change had not started */
    unlinkat(l->dirfd, MC_COMMIT_FILE ".new", 0);
    if (fd < 0)
        return errno == ENOENT ? 0 : sys_err(errno, "reading", l->dir, MC_COMMIT_FILE);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n < 0)
        return sys_err(errno, "reading", l->dir, MC_COMMIT_FILE);
    buf[n] = '\0';
    for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
        removed += reconcile(l, line, holds, arg);
    local_intent_clear(s);
    mc_fsync_dir(l->dirfd, MC_TMP_DIR);
    if (removed)
        mc_reg_reportf(l->conf.warn, l->conf.warn_arg,
                       "finished a change a dead process left half done in %s: removed %d artifact "
                       "director%s the manifest does not hold",
                       l->dir, removed, removed == 1 ? "y" : "ies");
    return 0;
}

static void local_discard(struct mc_art_store *s, struct mc_art_put *p);

/* ---- temp files ------------------------------------------------------- */

/* Temp files of puts whose process died: counted, and with remove removed. */
static int clean_temps(struct local *l, bool remove, size_t *found)
{
    int fd = openat(l->dirfd, MC_TMP_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct dirent *e;
    DIR *d;

    *found = 0;
    if (fd < 0)
        return errno == ENOENT ? 0 : sys_err(errno, "opening", l->dir, MC_TMP_DIR);
    d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return sys_err(errno, "reading", l->dir, MC_TMP_DIR);
    }
    while ((e = readdir(d)) != NULL) {
        int tfd;

        if (strncmp(e->d_name, "push-", 5) != 0)
            continue;
        tfd = openat(fd, e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (tfd < 0)
            continue;
        /* a live pusher holds its flock; a dead one's went with it */
        if (flock(tfd, LOCK_EX | LOCK_NB) == 0) {
            (*found)++;
            if (remove)
                unlinkat(fd, e->d_name, 0);
        }
        close(tfd);
    }
    closedir(d);
    if (*found && remove)
        mc_fsync_dir(l->dirfd, MC_TMP_DIR);
    return 0;
}

static int local_clean(struct mc_art_store *s)
{
    struct local *l = local_of(s);
    size_t dead = 0;
    int rc = clean_temps(l, true, &dead);

    if (rc == 0 && dead)
        mc_reg_reportf(l->conf.warn, l->conf.warn_arg,
                       "removed %zu temp file%s of pushes whose process died, from %s/" MC_TMP_DIR,
                       dead, dead == 1 ? "" : "s", l->dir);
    return rc;
}

/* Create and flock a temp file (the caller holds the store lock, shared at least). */
static int temp_create(struct local *l, char *name, size_t size, int *out)
{
    static unsigned counter;
    int fd;

    mkdirat(l->dirfd, MC_TMP_DIR, 0755);
    for (int tries = 0; tries < 100; tries++) {
        snprintf(name, size, MC_TMP_DIR "/push-%d-%u-%llu", (int)getpid(),
                 __atomic_fetch_add(&counter, 1, __ATOMIC_RELAXED),
                 (unsigned long long)(mc_wall_ns() % 1000000));
        fd = openat(l->dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0 && errno == EEXIST)
            continue;
        if (fd < 0)
            return sys_err(errno, "creating", l->dir, name);
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            int e = errno;

            close(fd);
            unlinkat(l->dirfd, name, 0);
            return sys_err(e, "locking", l->dir, name);
        }
        *out = fd;
        mc_crashpoint("temp-created");
        return 0;
    }
    return mc_err(MC_EIO, "could not find a free temp file name in %s/" MC_TMP_DIR, l->dir);
}

/* ---- content ---------------------------------------------------------- */

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;

    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/*
 * Detect the format from the first bytes: GGUF has a magic; safetensors
 * starts with the little-endian length of its JSON header, then '{'; ONNX
 * is a protobuf ModelProto, which starts with ir_version (field 1, varint)
 * followed by another ModelProto field.
 */
static enum mc_reg_format detect_format(const unsigned char *h, size_t n, uint64_t size)
{
    if (n >= 4 && memcmp(h, "GGUF", 4) == 0)
        return MC_FORMAT_GGUF;
    if (n >= 9 && size >= 10) {
        uint64_t hl = le64(h);

        if (hl >= 2 && hl <= size - 8 && hl <= (100u << 20) && h[8] == '{')
            return MC_FORMAT_SAFETENSORS;
    }
    if (n >= 3 && h[0] == 0x08 && h[1] >= 1 && h[1] <= 100) {
        static const unsigned char next[] = {0x12, 0x1a, 0x22, 0x28, 0x32, 0x3a, 0x42, 0x72, 0x7a};

        if (memchr(next, h[2], sizeof(next)))
            return MC_FORMAT_ONNX;
    }
    return MC_FORMAT_OTHER;
}

static void checksum_text(XXH128_hash_t h, char *out)
{
    static const char hex[] = "0123456789abcdef";
    XXH128_canonical_t c;

    XXH128_canonicalFromHash(&c, h);
    memcpy(out, "xxh3-128:", 9);
    for (int i = 0; i < 16; i++) {
        out[9 + 2 * i] = hex[c.digest[i] >> 4];
        out[10 + 2 * i] = hex[c.digest[i] & 15];
    }
    out[41] = '\0';
}

static int hash_chunk(void *arg, const void *buf, size_t n)
{
    XXH3_128bits_update(arg, buf, n);
    return 0;
}

static int hash_file(const char *path, char *checksum)
{
    XXH3_state_t *xs = XXH3_createState();
    int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

    if (fd < 0) {
        rc = mc_err(mc_err_from_errno(errno), "cannot open %s: %s", path, strerror(errno));
    } else if (xs == NULL) {
        rc = mc_err(MC_ENOMEM, "out of memory hashing %s", path);
    } else {
        XXH3_128bits_reset(xs);
        rc = mc_art_read_chunks(fd, path, hash_chunk, xs);
        if (rc == 0)
            checksum_text(XXH3_128bits_digest(xs), checksum);
    }
    if (fd >= 0)
        close(fd);
    XXH3_freeState(xs);
    return rc;
}

/* ---- put --------------------------------------------------------------- */

/*
 * Create and lock the temp file (briefly under the shared store lock, which
 * the caller does not hold) with a fresh checksum state; refuse at once a
 * size_hint the disk cannot hold. On failure nothing is left.
 */
static int local_begin(struct mc_art_store *s, uint64_t size_hint, struct mc_art_put *p)
{
    struct local *l = local_of(s);
    struct statvfs vfs;
    int rc;

    p->fd = -1;
    p->tmpname[0] = '\0';
    p->committed = false;
    p->size = 0;
    p->format = MC_FORMAT_OTHER;
    p->checksum[0] = '\0';
    p->headn = 0;
    p->hash = XXH3_createState();
    if (p->hash == NULL)
        return mc_err(MC_ENOMEM, "out of memory staging %s", p->what);
    XXH3_128bits_reset(p->hash);
    rc = l->conf.lock_shared(l->conf.lock_arg);
    if (rc == 0) {
        rc = temp_create(l, p->tmpname, sizeof(p->tmpname), &p->fd);
        l->conf.unlock(l->conf.lock_arg);
    }
    /* fail fast rather than after copying most of a large file */
    if (rc == 0 && size_hint && fstatvfs(p->fd, &vfs) == 0 &&
        (uint64_t)vfs.f_bavail * vfs.f_frsize < size_hint + (64u << 10))
        rc = mc_err(MC_ENOSPC,
                    "%s has %llu bytes free but %s is %llu bytes; nothing was "
                    "registered; free some space and push again",
                    l->dir, (unsigned long long)vfs.f_bavail * vfs.f_frsize, p->what,
                    (unsigned long long)size_hint);
    if (rc) {
        p->committed = false;
        local_discard(s, p);
        return rc;
    }
    return 0;
}

/* Append to the staged copy, hashing and keeping the first bytes. */
static int local_write(struct mc_art_put *p, const void *data, size_t n)
{
    const char *buf = data;

    if (p->headn < sizeof(p->head)) {
        size_t take = n < sizeof(p->head) - p->headn ? n : sizeof(p->head) - p->headn;

        memcpy(p->head + p->headn, buf, take);
        p->headn += take;
    }
    XXH3_128bits_update(p->hash, buf, n);
    for (size_t w = 0; w < n;) {
        ssize_t x = write(p->fd, buf + w, n - w);

        if (x < 0 && errno == EINTR)
            continue;
        if (x < 0) {
            int e = errno;
            char of[48] = "";

            if (p->total)
                snprintf(of, sizeof(of), " of %llu", (unsigned long long)p->total);
            return e == ENOSPC || e == EDQUOT
                       ? mc_err(MC_ENOSPC,
                                "the disk is full after copying %llu%s bytes of %s; nothing was "
                                "registered; free some space and push again",
                                (unsigned long long)(p->size + w), of, p->what)
                       : mc_err(mc_err_from_errno(e), "writing the copy of %s failed: %s", p->what,
                                strerror(e));
        }
        w += (size_t)x;
    }
    p->size += n;
    mc_crashpoint("copy-chunk");
    return 0;
}

/* Make the staged copy durable and read-only; its size, format and checksum. */
static int local_finish(struct mc_art_store *s, struct mc_art_put *p)
{
    struct local *l = local_of(s);

    if (fsync(p->fd) != 0)
        return sys_err(errno, "syncing", l->dir, p->tmpname);
    if (fchmod(p->fd, 0444) != 0)
        return sys_err(errno, "protecting", l->dir, p->tmpname);
    checksum_text(XXH3_128bits_digest(p->hash), p->checksum);
    p->format = detect_format(p->head, p->headn, p->size);
    mc_crashpoint("copied");
    return 0;
}

/*
 * Make the staged copy name@version's artifact: a directory the metadata
 * does not hold (an orphan of a crash) is replaced; the rename and both
 * directories are fsync'd.
 */
static int local_commit(struct mc_art_store *s, struct mc_art_put *p, const char *name,
                        const char *version)
{
    struct local *l = local_of(s);
    char rel[PATH_MAX];
    int rc;

    snprintf(rel, sizeof(rel), MC_MODELS_DIR "/%s/%s", name, version);
    store_rm_tree(l->dirfd, rel);
    rc = store_mkdirs(l->dirfd, rel);
    if (rc == 0) {
        char art[PATH_MAX + 16];

        snprintf(art, sizeof(art), "%s/artifact", rel);
        if (renameat(l->dirfd, p->tmpname, l->dirfd, art) != 0) {
            rc = -errno;
        } else {
            p->committed = true;
            if (mc_fsync_dir(l->dirfd, rel) != 0 || mc_fsync_dir(l->dirfd, MC_TMP_DIR) != 0)
                rc = -errno;
        }
    }
    if (rc)
        return mc_err(rc == -ENOSPC ? MC_ENOSPC : mc_err_from_errno(-rc),
                      "moving the artifact of %s@%s into %s/%s failed: %s; nothing was registered",
                      name, version, l->dir, rel, strerror(-rc));
    mc_crashpoint("renamed");
    return 0;
}

static void local_discard(struct mc_art_store *s, struct mc_art_put *p)
{
    if (!p->committed && p->tmpname[0])
        unlinkat(local_of(s)->dirfd, p->tmpname, 0);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
    XXH3_freeState(p->hash);
    p->hash = NULL;
}

/* ---- orphans (check) -------------------------------------------------- */

struct orphans {
    struct local *l;
    mc_art_holds_fn holds;
    void *harg;
    mc_reg_report_fn each;
    void *arg;
    size_t found;
    bool move; /* move orphan version directories to STORE/damaged/ */
};

static void orphan(struct orphans *o, const char *rel, const char *why, bool version_dir)
{
    char msg[3 * PATH_MAX + 160], to[PATH_MAX + 64];

    o->found++;
    if (o->move && version_dir) {
        /* damaged/<name with / as %>@<version>.<time>: the bytes stay for inspection */
        snprintf(to, sizeof(to), MC_DAMAGED_DIR "/%s.%lld", rel + sizeof(MC_MODELS_DIR),
                 (long long)time(NULL));
        for (char *p = to + sizeof(MC_DAMAGED_DIR); *p; p++)
            if (*p == '/')
                *p = '@';
        mkdirat(o->l->dirfd, MC_DAMAGED_DIR, 0755);
        if (renameat(o->l->dirfd, rel, o->l->dirfd, to) == 0) {
            snprintf(msg, sizeof(msg), "%s/%s: %s; moved to %s/%s", o->l->dir, rel, why, o->l->dir,
                     to);
            if (o->each)
                o->each(o->arg, msg);
            return;
        }
    }
    snprintf(msg, sizeof(msg), "%s/%s: %s", o->l->dir, rel, why);
    if (o->each)
        o->each(o->arg, msg);
}

/* Walk one model directory: version directories, or (depth 0) namespaced models. */
static void walk_model(struct orphans *o, const char *name, int depth)
{
    char rel[PATH_MAX];
    struct dirent *e;
    int fd;
    DIR *d;

    snprintf(rel, sizeof(rel), MC_MODELS_DIR "/%s", name);
    fd = openat(o->l->dirfd, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0)
            close(fd);
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char child[PATH_MAX + 260];
        struct mc_semver sv;

        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(child, sizeof(child), "%s/%s", rel, e->d_name);
        if (mc_semver_parse(e->d_name, strlen(e->d_name), &sv) == 0) {
            if (!o->holds(o->harg, name, e->d_name))
                orphan(o, child, "a version directory the manifest does not hold", true);
        } else if (depth == 0 && e->d_type == DT_DIR) {
            char ns[PATH_MAX + 260];

            snprintf(ns, sizeof(ns), "%s/%s", name, e->d_name);
            walk_model(o, ns, 1);
        } else {
            orphan(o, child, "not part of the store's layout", false);
        }
    }
    closedir(d);
}

static void local_orphans(struct mc_art_store *s, mc_art_holds_fn holds, void *harg, bool move,
                          mc_reg_report_fn each, void *arg, size_t *found)
{
    struct local *l = local_of(s);
    struct orphans o = {
        .l = l, .holds = holds, .harg = harg, .each = each, .arg = arg, .move = move};
    int fd = openat(l->dirfd, MC_MODELS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    struct dirent *e;
    size_t temps = 0;

    if (d == NULL && fd >= 0)
        close(fd);
    while (d && (e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        walk_model(&o, e->d_name, 0);
    }
    if (d)
        closedir(d);
    if (clean_temps(l, false, &temps) == 0 && temps) {
        char msg[PATH_MAX];

        snprintf(msg, sizeof(msg),
                 "%s/" MC_TMP_DIR ": %zu temp file%s of dead pushes (the next "
                 "writer removes them)",
                 l->dir, temps, temps == 1 ? "" : "s");
        o.found++;
        if (each)
            each(arg, msg);
    }
    *found = o.found;
}

/* ---- verify ------------------------------------------------------------ */

static void local_verify(struct mc_art_store *s, const struct mc_reg_version *v, bool checksum,
                         mc_reg_report_fn report, void *arg)
{
    char msg[1400], sum[48];
    struct stat st;

    (void)s;
    if (stat(v->path, &st) != 0) {
        snprintf(msg, sizeof(msg), "%s@%s: its artifact %s is missing (%s)", v->name, v->version,
                 v->path, strerror(errno));
    } else if ((uint64_t)st.st_size != v->size) {
        snprintf(msg, sizeof(msg), "%s@%s: its artifact is %llu bytes, the manifest says %llu",
                 v->name, v->version, (unsigned long long)st.st_size, (unsigned long long)v->size);
    } else if (!checksum) {
        return;
    } else if (hash_file(v->path, sum) != 0) {
        snprintf(msg, sizeof(msg), "%s@%s: %s", v->name, v->version, mc_last_error());
    } else if (strcmp(sum, v->checksum) != 0) {
        snprintf(msg, sizeof(msg), "%s@%s: its artifact's checksum is %s, the manifest says %s",
                 v->name, v->version, sum, v->checksum);
    } else {
        return;
    }
    report(arg, msg);
}

/* ---- the store ---------------------------------------------------------- */

static void local_close(struct mc_art_store *s)
{
    struct local *l = local_of(s);

    if (l == NULL)
        return;
    if (l->dirfd >= 0)
        close(l->dirfd);
    free(l->root);
    free(l);
}

/* A new store gets models/ and tmp/ (made durable with the directory). */
static int local_open(const struct mc_art_conf *conf, struct mc_art_store **out)
{
    struct local *l = calloc(1, sizeof(*l));

    *out = NULL;
    if (l == NULL || asprintf(&l->root, "%s/" MC_MODELS_DIR, conf->dir) < 0) {
        free(l);
        return mc_err(MC_ENOMEM, "out of memory opening %s", conf->dir);
    }
    l->s.ops = &mc_art_local_ops;
    l->dir = conf->dir;
    l->conf = *conf;
    l->dirfd = open(conf->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->dirfd < 0) {
        int e = errno;

        local_close(&l->s);
        return mc_err(mc_err_from_errno(e), "cannot open the store %s: %s", conf->dir, strerror(e));
    }
    if (conf->created && conf->writable) {
        mkdirat(l->dirfd, MC_MODELS_DIR, 0755);
        mkdirat(l->dirfd, MC_TMP_DIR, 0755);
        mc_fsync_dir(l->dirfd, NULL);
    }
    *out = &l->s;
    return 0;
}

static bool local_locate(struct mc_art_store *s, const struct mc_reg_version *v)
{
    (void)s;
    (void)v;
    return true;
}

static int local_read(struct mc_art_store *s, const struct mc_reg_version *v, uint64_t off,
                      void *buf, size_t n)
{
    int fd = open(v->path, O_RDONLY | O_CLOEXEC);
    size_t got = 0;

    (void)s;
    if (fd < 0)
        return mc_err(mc_err_from_errno(errno), "opening %s (%s@%s's artifact): %s", v->path,
                      v->name, v->version, strerror(errno));
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            if (r == 0)
                return mc_err(MC_ECORRUPT, "%s (%s@%s's artifact) ended at %llu bytes, expected "
                              "%llu; run `mcache fsck`", v->path, v->name, v->version,
                              (unsigned long long)(off + got), (unsigned long long)(off + n));
            return mc_err(MC_EIO, "reading %s at %llu: %s", v->path,
                          (unsigned long long)(off + got), strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    return 0;
}

static const char *local_root(const struct mc_art_store *s)
{
    return ((const struct local *)s)->root;
}

const struct mc_art_store_ops mc_art_local_ops = {
    .name = "local",
    .open = local_open,
    .close = local_close,
    .root = local_root,
    .begin = local_begin,
    .write = local_write,
    .finish = local_finish,
    .commit = local_commit,
    .discard = local_discard,
    .remove_version = local_remove_version,
    .remove_model = local_remove_model,
    .locate = local_locate,
    .read = local_read,
    .verify = local_verify,
    .intent_write = local_intent_write,
    .intent_clear = local_intent_clear,
    .intent_recover = local_intent_recover,
    .clean = local_clean,
    .orphans = local_orphans,
};
