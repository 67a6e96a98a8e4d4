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
 * THE NODE-LOCAL COPY. With MCACHE_KEEP_LOCAL (default on; "0" turns it
 * off), a download whose checksum passed is also written to
 * STORE/models/<name>/<version>/artifact (a temp file, fsync, rename: a
 * crash leaves either nothing or the whole file), and a later load uses
 * that file first, so a restarted node needs no network. The copy is
 * still verified like every local load (its bytes are hashed again into
 * the extent), so a damaged copy is reported, not served; it is then
 * removed, and the next load goes back to the object store.
 * (An environment variable until mcached's config file has the switch.)
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
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "loader/coldload.h"
#include "loader/log.h"
#include "registry/s3.h"

#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h>
#define hash_all XXH3_128bits_dispatch
#else
#define hash_all XXH3_128bits
#endif

/* Where an s3:// version path points: bucket, key of its bytes, name and version. */
struct where {
    char bucket[256];
    char key[PATH_MAX];
    char name[256];
    char version[256];
};

/*
 * s3://BUCKET/PREFIXversions/NAME/VERSION, with the checksum, gives the
 * object PREFIXxxh3-128/<hex> (artifacts_s3.c's layout: content-addressed).
 */
static int parse(const struct mc_coldload *l, struct where *w)
{
    char p[sizeof(l->path)], ck[48];
    char *b = p + 5, *slash, *rest, *v, *n, *end;
    size_t len;

    snprintf(p, sizeof(p), "%s", l->path);
    len = strlen(p);
    /* <root>/<name>/<version>/artifact, root = s3://BUCKET/PREFIXversions */
    if (len < 9 || strcmp(p + len - 9, "/artifact") != 0)
        return mc_err(MC_EINVAL, "artifact path %s does not end in /artifact", l->path);
    p[len - 9] = '\0';
    slash = strchr(b, '/');
    if (!slash || (size_t)(slash - b) >= sizeof(w->bucket))
        return mc_err(MC_EINVAL, "artifact path %s is not s3://BUCKET/...", l->path);
    memcpy(w->bucket, b, (size_t)(slash - b));
    w->bucket[slash - b] = '\0';
    rest = slash + 1;
    v = strrchr(rest, '/');
    if (!v || v == rest)
        return mc_err(MC_EINVAL, "artifact path %s has no name/version", l->path);
    for (n = v; n > rest && n[-1] != '/'; n--)
        ;
    end = n; /* just past "versions/" */
    if (end - rest < 9 || strncmp(end - 9, "versions/", 9) != 0)
        return mc_err(MC_EINVAL, "artifact path %s is not under versions/", l->path);
    snprintf(w->name, sizeof(w->name), "%.*s", (int)(v - n), n);
    snprintf(w->version, sizeof(w->version), "%s", v + 1);
    mc_checksum_format(l->want, ck);
    snprintf(w->key, sizeof(w->key), "%.*sxxh3-128/%s", (int)(end - 9 - rest), rest, ck + 9);
    return 0;
}

static bool keep_local(void)
{
    const char *e = getenv("MCACHE_KEEP_LOCAL");
    return !e || strcmp(e, "0") != 0;
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

static int local_path(const struct mc_io *io, const struct where *w, char *out, size_t n)
{
    if (!io->store_dir)
        return -1;
    return snprintf(out, n, "%s/models/%s/%s/artifact", io->store_dir, w->name, w->version) < (int)n
               ? 0
               : -1;
}

/* Read the node-local copy into the extent; 0, or -1 if there is none usable. */
static int read_local(struct mc_coldload *l, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    uint64_t off = 0;

    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size != l->size) {
        close(fd);
        return -1;
    }
    while (off < l->size) {
        ssize_t r = pread(fd, l->dst + off, l->size - off > (1u << 26) ? (1u << 26) : l->size - off,
                          (off_t)off);
        if (r <= 0) {
            close(fd);
            return -1;
        }
        off += (uint64_t)r;
    }
    close(fd);
    return 0;
}

/* Make the node-local copy: temp file, fsync, rename, fsync the directory. */
static void write_local(struct mc_coldload *l, const char *path)
{
    char dir[PATH_MAX], tmp[PATH_MAX + 32];
    char *slash;
    int fd, dfd;
    uint64_t off = 0;

    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            goto fail;
        *p = '/';
    }
    slash = strrchr(dir, '/');
    *slash = '\0';
    snprintf(tmp, sizeof(tmp), "%s/.artifact.%ld.tmp", dir, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0444);
    if (fd < 0)
        goto fail;
    while (off < l->size) {
        ssize_t r =
            write(fd, l->dst + off, l->size - off > (1u << 26) ? (1u << 26) : l->size - off);
        if (r <= 0) {
            close(fd);
            unlink(tmp);
            goto fail;
        }
        off += (uint64_t)r;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        goto fail;
    }
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return;
fail:
    /* Only a cache: the load itself succeeded, the next one downloads again. */
    log_warn("could not keep a node-local copy of %s at %s: %s (the next load downloads it "
             "again; check the store's free space and permissions)",
             l->path, path, strerror(errno));
}

static bool digest_ok(struct mc_coldload *l, char got[48])
{
    XXH128_canonical_t c;

    XXH128_canonicalFromHash(&c, hash_all(l->dst, l->size));
    mc_checksum_format(c.digest, got);
    return memcmp(c.digest, l->want, 16) == 0;
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

static void *remote_main(void *arg)
{
    struct mc_coldload *l = arg;
    struct mc_io *io = l->io;
    struct where w;
    char local[PATH_MAX], got[48], want[48], msg[600];
    bool have_local = false;
    struct mc_s3 *s3 = NULL;
    int rc;

    l->status = 0;
    if (parse(l, &w) != 0) {
        fail(l, MC_EINVAL, "%s", mc_last_error());
        goto out;
    }
    have_local = local_path(io, &w, local, sizeof(local)) == 0;
    mc_checksum_format(l->want, want);
    if (have_local && read_local(l, local) == 0) {
        if (digest_ok(l, got)) {
            l->local_copy = true;
            goto out;
        }
        log_warn("the node-local copy %s of %s hashes to %s, not %s: removed, downloading "
                 "again",
                 local, l->path, got, want);
        unlink(local);
    }
    rc = mc_s3_open(w.bucket, getenv("MCACHE_ARTIFACTS_CREDS"), &s3);
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
    if (atomic_load(&l->cancel)) {
        fail(l, MC_ENOENT, "load of %s cancelled", l->path);
        goto out;
    }
    if (!digest_ok(l, got)) {
        fail(l, MC_ECORRUPT,
             "checksum mismatch for s3://%s/%s (%s): the registry says %s but the object "
             "hashes to %s; the object was changed or damaged in the store, push the "
             "version again",
             w.bucket, w.key, l->path, want, got);
        goto out;
    }
    if (have_local && keep_local())
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
     * download stops within a second of the flag, mc_s3_set_cancel). */
    atomic_store(&l->cancel, true);
    if (l->thread_started)
        pthread_join(l->thread, NULL);
    l->thread_started = false;
    if (!l->status)
        fail(l, MC_ENOENT, "load of %s cancelled", l->path);
    finish(io, l);
    return true;
}
