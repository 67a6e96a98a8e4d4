/*
 * remote.c - the cold path for an artifact in an object store: a version
 * whose path is s3://BUCKET/PREFIXversions/<name>/<version>/artifact (the s3
 * artifact store's root, artifacts_s3.c) is read straight into its arena
 * extent by parallel ranged GETs (mc_s3_read), on a thread of its own.
 *
 * WHY A THREAD. A download takes seconds to minutes and libcurl's multi
 * interface blocks its caller between transfers; the event loop must keep
 * answering readers and the control socket meanwhile, so each remote load
 * runs on a loader thread that owns its S3 handle (s3.h: one handle per
 * thread). The thread only writes into the extent it was given (nothing
 * else of the arena) and hashes it; publishing stays the event loop's
 * (daemon_load_done), which it learns of through the same eventfd and
 * done() callback as a local load, so load_queue.c cannot tell them apart.
 *
 * NEVER A BAD BYTE. The checksum is computed over the extent after the last
 * range arrived and compared with the registry's before done() reports
 * success; any failed range (after mc_s3_read's retries), a short object or
 * a mismatch reports a failure naming the object and what S3 said, and
 * load_queue.c then frees the extent without publishing. A daemon killed
 * mid-download never published the extent, so after a restart the version
 * is simply loaded again.
 *
 * CANCELLING. mc_remote_cancel (a removal, a shutdown) sets the flag and
 * joins the thread on the event loop, so the thread looks at it often: the
 * download within a second (mc_s3_set_cancel), reading, hashing and writing
 * the node-local copy every STEP (64 MiB; the digest is streamed).
 *
 * THE NODE-LOCAL COPY. With keep-local (mcached's config, default on), a
 * download whose checksum passed is also written to
 * STORE/models/<name>/<version>/artifact: an unnamed temporary file
 * (O_TMPFILE), fsync, then linkat, so a crash or a cancel leaves nothing;
 * where the file system has no O_TMPFILE, a named temporary that holds an
 * flock while its writer lives, and mc_remote_sweep removes dead writers'
 * at start. A later load uses that file first, so a restarted node needs
 * no network. The copy is still verified like every local load (its bytes
 * are hashed again into the extent), so a damaged copy is reported, not
 * served; it is then removed, and the next load goes back to the object
 * store. Something not a regular file in its place (a FIFO) fails the load,
 * opened O_NONBLOCK so that it cannot hang the thread. A version that left
 * the registry loses its copy (mc_remote_forget).
 *
 * TUNING. MCACHE_S3_PART (bytes per range, default 8 MiB) and
 * MCACHE_S3_CONC (ranges in flight, default 16): measured against curl's
 * parallel ranged GETs by tests/fleet/remote_load.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "loader/coldload.h"
#include "loader/log.h"
#include "registry/s3.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h>
#define hash_update XXH3_128bits_update_dispatch
#else
#define hash_update XXH3_128bits_update
#endif

/* Bytes between two looks at the cancel flag: reading, hashing and writing many GB must not
 * hold up mc_remote_cancel (a removal, a shutdown), which waits for the thread on the loop. */
#define STEP (64u << 20)

/* Where a version's bytes are in the object store. */
struct where {
    char bucket[256];
    char key[PATH_MAX];
};

/*
 * The version's path is <root>/<name>/<version>/artifact with root
 * s3://BUCKET/PREFIXversions (artifacts_s3.c); its bytes are the object
 * PREFIXxxh3-128/<hex of the registry's checksum> (content-addressed). Name
 * and version are the registry's, not read off the path: a namespaced name
 * ("ns/m") holds a '/' of its own.
 */
static int parse(const struct mc_coldload *l, struct where *w)
{
    char tail[PATH_MAX], ck[48];
    const char *b = l->path + 5, *end, *slash;
    size_t len = strlen(l->path), tl;

    if (!l->name || !l->version)
        return mc_err(MC_EINVAL, "internal: the load of %s has no name and version", l->path);
    tl = (size_t)snprintf(tail, sizeof(tail), "/%s/%s/artifact", l->name, l->version);
    if (tl >= sizeof(tail) || len < 5 + tl || strcmp(l->path + len - tl, tail) != 0)
        return mc_err(MC_EINVAL, "artifact path %s is not s3://BUCKET/PREFIXversions%s", l->path,
                      tail);
    end = l->path + len - tl; /* the end of the root */
    slash = memchr(b, '/', (size_t)(end - b));
    if (!slash || slash == b || (size_t)(slash - b) >= sizeof(w->bucket))
        return mc_err(MC_EINVAL, "artifact path %s is not s3://BUCKET/...", l->path);
    snprintf(w->bucket, sizeof(w->bucket), "%.*s", (int)(slash - b), b);
    /* slash+1 .. end is PREFIXversions, PREFIX "" or ending in '/' */
    if (end - (slash + 1) < 8 || strncmp(end - 8, "versions", 8) != 0 ||
        (end - 8 > slash + 1 && end[-9] != '/'))
        return mc_err(MC_EINVAL, "artifact path %s is not under PREFIXversions/", l->path);
    mc_checksum_format(l->want, ck);
    snprintf(w->key, sizeof(w->key), "%.*sxxh3-128/%s", (int)(end - 8 - (slash + 1)), slash + 1,
             ck + 9);
    return 0;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
    const char *e = getenv(name);
    char *end;
    unsigned long long v;

    if (!e || !*e)
        return dflt;
    v = strtoull(e, &end, 10);
    return *end || v == 0 ? dflt : v;
}

static int local_path(const struct mc_io *io, const char *name, const char *version, char *out,
                      size_t n)
{
    if (!io->store_dir || !name || !version)
        return -1;
    return snprintf(out, n, "%s/models/%s/%s/artifact", io->store_dir, name, version) < (int)n
               ? 0
               : -1;
}

static void fail(struct mc_coldload *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The message is cut at sizeof(l->error): it names the object first. */
static void fail(struct mc_coldload *l, int code, const char *fmt, ...)
{
    va_list ap;

    l->status = code;
    va_start(ap, fmt);
    vsnprintf(l->error, sizeof(l->error), fmt, ap);
    va_end(ap);
}

/* Was the load cancelled? Then it fails (once) saying so. */
static bool cancelled(struct mc_coldload *l)
{
    if (!atomic_load(&l->cancel))
        return false;
    if (!l->status)
        fail(l, MC_ENOENT, "load of %s cancelled", l->path);
    return true;
}

static size_t step_at(const struct mc_coldload *l, uint64_t off)
{
    return l->size - off > STEP ? STEP : (size_t)(l->size - off);
}

/* The XXH3-128 of the extent so far: streamed a step at a time. */
static void digest_add(XXH3_state_t *st, const void *p, size_t n)
{
    (void)hash_update(st, p, n);
}

/* Does the digest match the registry's checksum? got gets it as text. */
static bool digest_ok(const struct mc_coldload *l, XXH3_state_t *st, char got[48])
{
    XXH128_canonical_t c;

    XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
    mc_checksum_format(c.digest, got);
    return memcmp(c.digest, l->want, 16) == 0;
}

/* Hash the whole extent (a download), a step at a time; false if cancelled. */
static bool digest_extent(struct mc_coldload *l, XXH3_state_t *st)
{
    for (uint64_t off = 0; off < l->size; off += step_at(l, off)) {
        if (cancelled(l))
            return false;
        digest_add(st, l->dst + off, step_at(l, off));
    }
    return true;
}

enum local { LOCAL_READ, LOCAL_NONE, LOCAL_FAILED };

static const char *file_kind(mode_t m)
{
    return S_ISFIFO(m)   ? "a FIFO"
           : S_ISDIR(m)  ? "a directory"
           : S_ISCHR(m)  ? "a character device"
           : S_ISBLK(m)  ? "a block device"
           : S_ISSOCK(m) ? "a socket"
                         : "not a regular file";
}

/*
 * Read the node-local copy into the extent, hashing as it goes: LOCAL_READ
 * (st holds the digest), LOCAL_NONE (none usable: download), LOCAL_FAILED
 * (l failed: cancelled, or something not a regular file is in its place).
 * O_NONBLOCK: a FIFO there must not block the thread in open(), where no
 * cancel reaches it (it held up removal and shutdown).
 */
static enum local read_local(struct mc_coldload *l, const char *path, XXH3_state_t *st)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    struct stat sb = {0};
    enum local res = LOCAL_READ;

    if (fd < 0) {
        if (errno != ENOENT)
            log_warn("cannot open the node-local copy %s of %s: %s; downloading it", path,
                     l->path, strerror(errno));
        return LOCAL_NONE;
    }
    if (fstat(fd, &sb) != 0)
        sb.st_mode = 0; /* "not a regular file" */
    if (!S_ISREG(sb.st_mode)) {
        fail(l, MC_EINVAL,
             "the node-local copy %s of %s is %s, not a regular file: mcached neither reads "
             "nor replaces it; remove it (rm %s) and load again",
             path, l->path, file_kind(sb.st_mode), path);
        close(fd);
        return LOCAL_FAILED;
    }
    if ((uint64_t)sb.st_size != l->size) {
        log_warn("the node-local copy %s of %s has %llu bytes, not %llu: removed, downloading "
                 "again",
                 path, l->path, (unsigned long long)sb.st_size, (unsigned long long)l->size);
        close(fd);
        unlink(path);
        return LOCAL_NONE;
    }
    for (uint64_t off = 0; off < l->size && res == LOCAL_READ;) {
        ssize_t r = pread(fd, l->dst + off, step_at(l, off), (off_t)off);

        if (cancelled(l)) {
            res = LOCAL_FAILED;
        } else if (r <= 0) {
            log_warn("reading the node-local copy %s of %s: %s; removed, downloading again",
                     path, l->path, r < 0 ? strerror(errno) : "it is shorter than it was");
            unlink(path);
            res = LOCAL_NONE;
        } else {
            digest_add(st, l->dst + off, (size_t)r);
            off += (uint64_t)r;
        }
    }
    close(fd);
    return res;
}

/* Make the directories above path (its last component is the file's). */
static int make_dirs(const char *path, char *dir, size_t n)
{
    snprintf(dir, n, "%s", path);
    for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    *strrchr(dir, '/') = '\0';
    return 0;
}

/*
 * A temporary file beside path: an unnamed one (O_TMPFILE, which a crash
 * cannot leave behind), else, where the file system has no O_TMPFILE, a
 * named one that holds an flock(2) while its writer lives, so that
 * mc_remote_sweep tells a dead writer's (removed) from a live one's (kept).
 * *tmp is "" for the unnamed kind.
 */
static int tmp_open(const char *dir, char *tmp, size_t n)
{
    static atomic_uint seq;
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0444);

    *tmp = '\0';
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    snprintf(tmp, n, "%s/.artifact.%ld.%u.tmp", dir, (long)getpid(), atomic_fetch_add(&seq, 1));
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
    if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        unlink(tmp);
        fd = -1;
    }
    return fd;
}

/* Give the written temporary file its name (replacing a stale one). */
static int tmp_publish(int fd, const char *tmp, const char *path)
{
    char proc[64];

    if (*tmp)
        return rename(tmp, path);
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    for (int tries = 0; tries < 2; tries++) {
        /* AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; /proc/self/fd does not */
        if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0 ||
            linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) == 0)
            return 0;
        if (errno != EEXIST || unlink(path) != 0)
            return -1;
    }
    return -1;
}

/*
 * Make the node-local copy: a temporary file, written a step at a time (the
 * cancel flag is looked at between steps, and write-back starts on each),
 * fsync, then named, and the directory fsynced. A crash or a cancel leaves
 * no copy, never part of one.
 */
static void write_local(struct mc_coldload *l, const char *path)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 48] = "";
    int fd = -1, dfd, err = 0;
    uint64_t off = 0;

    if (make_dirs(path, dir, sizeof(dir)) != 0 || (fd = tmp_open(dir, tmp, sizeof(tmp))) < 0)
        goto fail;
    while (off < l->size && !cancelled(l)) {
        ssize_t r = write(fd, l->dst + off, step_at(l, off));

        if (r <= 0)
            goto fail;
        (void)sync_file_range(fd, (off_t)off, r, SYNC_FILE_RANGE_WRITE);
        off += (uint64_t)r;
    }
    if (off < l->size) /* cancelled: the copy is never published */
        goto drop;
    if (fsync(fd) != 0 || tmp_publish(fd, tmp, path) != 0)
        goto fail;
    close(fd);
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return;
fail:
    err = errno;
    /* Only a cache: the load itself succeeded, the next one downloads again. */
    log_warn("could not keep a node-local copy of %s at %s: %s (the next load downloads it "
             "again; check the store's free space and permissions)",
             l->path, path, strerror(err));
drop:
    if (fd >= 0)
        close(fd);
    if (*tmp)
        unlink(tmp);
}

static void *remote_main(void *arg)
{
    struct mc_coldload *l = arg;
    struct mc_io *io = l->io;
    struct where w;
    char local[PATH_MAX], got[48], want[48], msg[600];
    bool have_local = false;
    struct mc_s3 *s3 = NULL;
    XXH3_state_t st;
    int rc;

    l->status = 0;
    if (parse(l, &w) != 0) {
        fail(l, MC_EINVAL, "%s", mc_last_error());
        goto out;
    }
    have_local = local_path(io, l->name, l->version, local, sizeof(local)) == 0;
    mc_checksum_format(l->want, want);
    XXH3_128bits_reset(&st);
    switch (have_local ? read_local(l, local, &st) : LOCAL_NONE) {
    case LOCAL_FAILED:
        goto out;
    case LOCAL_READ:
        if (digest_ok(l, &st, got)) {
            l->local_copy = true;
            goto out;
        }
        log_warn("the node-local copy %s of %s hashes to %s, not %s: removed, downloading "
                 "again",
                 local, l->path, got, want);
        unlink(local);
        XXH3_128bits_reset(&st);
        break;
    case LOCAL_NONE:
        break;
    }
    rc = mc_s3_open(w.bucket, io->artifacts_creds, &s3);
    if (!rc)
        mc_s3_set_cancel(s3, &l->cancel);
    if (!rc)
        rc = mc_s3_read(s3, w.key, 0, l->dst, l->size, (size_t)env_u64("MCACHE_S3_PART", 8u << 20),
                        (unsigned)env_u64("MCACHE_S3_CONC", 16));
    if (rc) {
        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        fail(l, rc, "downloading the artifact %s: %s", l->path, msg);
        goto out;
    }
    if (!digest_extent(l, &st))
        goto out;
    if (!digest_ok(l, &st, got)) {
        fail(l, MC_ECORRUPT,
             "checksum mismatch for s3://%s/%s (%s): the registry says %s but the object "
             "hashes to %s; the object was changed or damaged in the store, push the "
             "version again",
             w.bucket, w.key, l->path, want, got);
        goto out;
    }
    if (have_local && l->keep_local)
        write_local(l, local);
out:
    if (s3)
        mc_s3_close(s3);
    l->t_end = mc_mono_ns();
    atomic_store(&l->remote_done, true);
    if (io->efd >= 0) {
        uint64_t one = 1;
        (void)!write(io->efd, &one, sizeof(one));
    }
    return NULL;
}

void mc_remote_start(struct mc_io *io, struct mc_coldload *l)
{
    int rc;

    l->io = io;
    l->fd = -1;
    l->remote = true;
    l->local_copy = false;
    l->keep_local = io->keep_local;
    atomic_store(&l->remote_done, false);
    atomic_store(&l->cancel, false);
    l->t_start = mc_mono_ns();
    l->next_active = io->remote;
    io->remote = l;
    rc = pthread_create(&l->thread, NULL, remote_main, l);
    if (rc) {
        fail(l, MC_ENOMEM, "starting the download of %s: %s", l->path, strerror(rc));
        l->t_end = mc_mono_ns();
        l->thread_started = false;
        atomic_store(&l->remote_done, true);
        return;
    }
    l->thread_started = true;
}

static void finish(struct mc_io *io, struct mc_coldload *l)
{
    struct mc_coldload **pp;

    for (pp = &io->remote; *pp && *pp != l; pp = &(*pp)->next_active)
        ;
    if (*pp)
        *pp = l->next_active;
    if (l->thread_started)
        pthread_join(l->thread, NULL);
    l->thread_started = false;
    if (l->status) {
        l->failed = true;
        io->loads_failed++;
    } else {
        l->hashed = l->size;
        io->loads_ok++;
        io->bytes_total += l->size;
        io->busy_ns += l->t_end - l->t_start;
    }
    io->done(l->ctx, l);
}

void mc_remote_poll(struct mc_io *io)
{
    struct mc_coldload *l = io->remote, *next;

    for (; l; l = next) {
        next = l->next_active;
        if (atomic_load(&l->remote_done))
            finish(io, l);
    }
}

bool mc_remote_cancel(struct mc_io *io, struct mc_coldload *l)
{
    bool found = false;

    for (struct mc_coldload *p = io->remote; p; p = p->next_active)
        found |= p == l;
    if (!found)
        return false;
    /* The thread may still be writing into the extent: wait for it (the
     * download stops within a second of the flag, mc_s3_set_cancel; reading,
     * hashing and writing the node-local copy within a step, STEP). */
    atomic_store(&l->cancel, true);
    if (l->thread_started)
        pthread_join(l->thread, NULL);
    l->thread_started = false;
    if (!l->status)
        fail(l, MC_ENOENT, "load of %s cancelled", l->path);
    finish(io, l);
    return true;
}

void mc_remote_forget(const struct mc_io *io, const char *path, const char *name,
                      const char *version)
{
    char local[PATH_MAX], *slash;
    struct stat sb;
    size_t top;

    if (strncmp(path, "s3://", 5) != 0 || local_path(io, name, version, local, sizeof(local)))
        return;
    /* Only what mcached would have written: a regular file (a FIFO put there stays). */
    if (lstat(local, &sb) != 0 || !S_ISREG(sb.st_mode))
        return;
    if (unlink(local) != 0) {
        log_warn("cannot remove the node-local copy %s of %s@%s, which left the registry: %s",
                 local, name, version, strerror(errno));
        return;
    }
    log_info("removed the node-local copy %s of %s@%s, which left the registry", local, name,
             version);
    /* and the directories it leaves empty below models/ (rmdir keeps any that is not) */
    top = strlen(io->store_dir) + strlen("/models");
    while ((slash = strrchr(local, '/')) && (size_t)(slash - local) > top) {
        *slash = '\0';
        if (rmdir(local) != 0)
            break;
    }
}

static unsigned swept;

/* A named temporary file (tmp_open's fallback) whose writer is gone: nobody holds its flock. */
static int sweep_one(const char *path, const struct stat *sb, int type, struct FTW *f)
{
    const char *base = path + f->base;
    size_t n = strlen(base);
    int fd;

    (void)sb;
    if (type != FTW_F || strncmp(base, ".artifact.", 10) != 0 || n < 14 ||
        strcmp(base + n - 4, ".tmp") != 0)
        return 0;
    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return 0;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0 && unlink(path) == 0)
        swept++;
    close(fd);
    return 0;
}

void mc_remote_sweep(const struct mc_io *io)
{
    char models[PATH_MAX];

    if (!io->store_dir ||
        snprintf(models, sizeof(models), "%s/models", io->store_dir) >= (int)sizeof(models))
        return;
    swept = 0;
    if (nftw(models, sweep_one, 16, FTW_PHYS) != 0 && errno != ENOENT)
        log_warn("sweeping %s for the temporary files of dead writers: %s", models,
                 strerror(errno));
    if (swept)
        log_info("removed %u temporary file(s) of node-local copies under %s that a stopped "
                 "mcached was writing",
                 swept, models);
}
