/*
 * coldload.c - io_uring O_DIRECT reads into arena extents, verified as they
 * arrive (see coldload.h).
 */
#include "loader/coldload.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "loader/log.h"
#include "shm/arena.h"

/* The checksum at the widest vector unit this CPU has: libxxhash picks
 * AVX-512, AVX2 or SSE2 at run time (the plain call is built for SSE2);
 * the same hash, ~1.2-2x faster, and the hash is the loader's one CPU cost. */
#if defined(__x86_64__) || defined(__i386__)
#include <xxh_x86dispatch.h>
#define hash_update XXH3_128bits_update_dispatch
#else
#define hash_update XXH3_128bits_update
#endif

#define DIO_ALIGN   4096u
#define FIXED_PIECE (1ull << 30) /* a registered buffer is at most 1 GiB */

/* One read in flight. */
struct req {
    struct mc_coldload *l;
    uint64_t off; /* file offset */
    uint32_t len; /* bytes of the file it covers */
    struct req *next_free;
};

static struct req *req_pool, *req_free;

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

int mc_checksum_parse(const char *s, uint8_t out[16])
{
    static const char pre[] = "xxh3-128:";

    if (strncmp(s, pre, sizeof(pre) - 1) != 0 || strlen(s) != sizeof(pre) - 1 + 32)
        return mc_err(MC_EINVAL, "checksum \"%s\" is not xxh3-128:<32 hex digits>", s);
    s += sizeof(pre) - 1;
    for (int i = 0; i < 16; i++) {
        unsigned v;
        if (sscanf(s + 2 * i, "%2x", &v) != 1)
            return mc_err(MC_EINVAL, "checksum has a non-hex digit near \"%.2s\"", s + 2 * i);
        out[i] = (uint8_t)v;
    }
    return 0;
}

void mc_checksum_format(const uint8_t in[16], char out[48])
{
    int n = snprintf(out, 48, "xxh3-128:");

    for (int i = 0; i < 16; i++)
        n += snprintf(out + n, (size_t)(48 - n), "%02x", in[i]);
}

/* The registration thread: pin the data region as fixed buffers. */
static void *register_buffers(void *arg)
{
    struct mc_io *io = arg;
    uint64_t len = io->fixed_len, n = (len + FIXED_PIECE - 1) / FIXED_PIECE;
    struct iovec *iov = calloc(n, sizeof(*iov));
    uint64_t t0 = mc_mono_ns();
    int rc;

    for (uint64_t i = 0; iov && i < n; i++) {
        iov[i].iov_base = io->fixed_base + i * FIXED_PIECE;
        iov[i].iov_len = i + 1 < n ? FIXED_PIECE : len - i * FIXED_PIECE;
    }
    rc = iov ? io_uring_register_buffers(&io->ring, iov, (unsigned)n) : -ENOMEM;
    free(iov);
    if (rc == 0) {
        /* Reads prepared from now on use them (pairs with next_request). */
        __atomic_store_n(&io->fixed, true, __ATOMIC_RELEASE);
        log_info("registered the arena's %llu MiB with io_uring in %.0f ms",
                 (unsigned long long)(len >> 20), (double)(mc_mono_ns() - t0) / 1e6);
    } else if (rc == -ENOMEM || rc == -EPERM) {
        struct rlimit rl = {0};
        getrlimit(RLIMIT_MEMLOCK, &rl);
        log_info("registered buffers refused (%s; RLIMIT_MEMLOCK %llu bytes, need %llu): "
                 "using plain buffers (same throughput here, a little more CPU); give mcached "
                 "CAP_IPC_LOCK or a higher memlock limit to use them",
                 strerror(-rc), (unsigned long long)rl.rlim_cur, (unsigned long long)len);
    } else {
        log_info("registered buffers refused (%s): the arena's file system (%s) does not "
                 "allow them; using plain buffers",
                 strerror(-rc), mc_backing_name(io->reg_backing));
    }
    return NULL;
}

int mc_io_init(struct mc_io *io, struct mc_arena *a, const struct mc_io_opts *o,
               mc_load_done_fn done)
{
    int rc;

    memset(io, 0, sizeof(*io));
    io->efd = -1;
    io->done = done;
    io->direct_io = o->try_direct;
    if (!o->try_direct)
        log_info("O_DIRECT disabled by configuration: reading through the page cache");
    io->qd = o->queue_depth ? o->queue_depth : 8;
    /* 4 MiB reads into 2 MiB pages (hugetlbfs, huge=always, or collapsed tmpfs). */
    io->chunk = o->chunk_size ? o->chunk_size
                              : (a->hdr->page_size > 4096 || a->hdr->backing == MC_BACKING_SHM_COLLAPSED
                                     ? 4ull << 20
                                     : 1ull << 20);
    req_pool = calloc(io->qd, sizeof(*req_pool));
    if (!req_pool)
        return mc_err(MC_ENOMEM, "io requests: out of memory");
    req_free = NULL;
    for (unsigned i = 0; i < io->qd; i++) {
        req_pool[i].next_free = req_free;
        req_free = &req_pool[i];
    }
    if (!o->try_uring) {
        log_info("io_uring disabled by configuration: loading with pread");
        return 0;
    }
    /* Not SINGLE_ISSUER: the buffers are registered from another thread. */
    rc = io_uring_queue_init(io->qd * 2, &io->ring, 0);
    if (rc < 0) {
        log_warn("io_uring is not available (%s): loading with pread, which is slower; "
                 "check /proc/sys/kernel/io_uring_disabled and seccomp",
                 strerror(-rc));
        return 0;
    }
    io->have_ring = true;
    io->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (io->efd < 0 || io_uring_register_eventfd(&io->ring, io->efd) < 0) {
        io_uring_queue_exit(&io->ring);
        io->have_ring = false;
        log_warn("io_uring eventfd registration failed: loading with pread");
        return 0;
    }
    if (o->try_fixed) { /* mc_io_register() does it, when the daemon is idle */
        io->reg_wanted = true;
        io->reg_backing = a->hdr->backing;
        io->fixed_base = a->base + a->hdr->data_off;
        io->fixed_len = a->hdr->data_size;
    }
    log_info("cold path: io_uring, queue depth %u, %llu KiB reads%s", io->qd,
             (unsigned long long)(io->chunk >> 10),
             io->reg_wanted ? "; registered buffers once idle" : "");
    return 0;
}

void mc_io_register(struct mc_io *io)
{
    sigset_t all, old;

    if (!io->reg_wanted || io->reg_started || !io->have_ring)
        return;
    /* The thread takes no signals: they are the main loop's (signalfd). */
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    if (pthread_create(&io->reg_thread, NULL, register_buffers, io) == 0)
        io->reg_started = true;
    else
        io->reg_wanted = false;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

void mc_io_destroy(struct mc_io *io)
{
    while (io->active)
        mc_io_cancel(io, io->active);
    while (io->remote) /* downloads stop (mc_s3_set_cancel) before the arena goes */
        mc_remote_cancel(io, io->remote);
    if (io->reg_started)
        pthread_join(io->reg_thread, NULL);
    if (io->have_ring)
        io_uring_queue_exit(&io->ring);
    if (io->efd >= 0)
        close(io->efd);
    free(req_pool);
    req_pool = req_free = NULL;
    memset(io, 0, sizeof(*io));
    io->efd = -1;
}

static void load_fail(struct mc_coldload *l, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void load_fail(struct mc_coldload *l, int code, const char *fmt, ...)
{
    va_list ap;

    if (l->failed)
        return;
    l->failed = true;
    l->status = code;
    va_start(ap, fmt);
    vsnprintf(l->error, sizeof(l->error), fmt, ap);
    va_end(ap);
}

/* Called when a load has nothing in flight and is complete or failed. */
static void load_finish(struct mc_io *io, struct mc_coldload *l)
{
    struct mc_coldload **pp;

    for (pp = &io->active; *pp && *pp != l; pp = &(*pp)->next_active)
        ;
    if (*pp)
        *pp = l->next_active;
    l->t_end = mc_mono_ns();
    if (!l->failed) {
        XXH128_hash_t h = XXH3_128bits_digest(l->xs);
        XXH128_canonical_t c;

        XXH128_canonicalFromHash(&c, h);
        if (memcmp(c.digest, l->want, 16) != 0) {
            char got[48], want[48];

            mc_checksum_format(c.digest, got);
            mc_checksum_format(l->want, want);
            load_fail(l, MC_ECORRUPT,
                      "checksum mismatch for %s: the registry says %s but the file hashes to "
                      "%s; the artifact is damaged on disk, push it again",
                      l->path, want, got);
        }
    }
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    free(l->chunk_left);
    l->chunk_left = NULL;
    if (l->xs)
        XXH3_freeState(l->xs);
    l->xs = NULL;
    if (l->failed) {
        io->loads_failed++;
    } else {
        l->status = 0;
        io->loads_ok++;
        io->bytes_total += l->size;
        io->busy_ns += l->t_end - l->t_start;
    }
    io->done(l->ctx, l);
}

/* Has l's next chunk, in file order, arrived and not been hashed yet? */
static bool hash_ready(const struct mc_coldload *l)
{
    return !l->failed && l->chunk_left && l->hash_chunk < l->nchunks &&
           l->chunk_left[l->hash_chunk] == 0;
}

/* Feed l's next chunk to the hash. */
static void hash_chunk(struct mc_io *io, struct mc_coldload *l)
{
    uint64_t off = l->hash_chunk * io->chunk;
    uint64_t len = l->size - off < io->chunk ? l->size - off : io->chunk;

    hash_update(l->xs, l->dst + off, len);
    l->hashed = off + len;
    l->hash_chunk++;
}

/* Feed completed chunks, in order, to the hash. */
static void hash_advance(struct mc_io *io, struct mc_coldload *l)
{
    while (hash_ready(l))
        hash_chunk(io, l);
}

/* Hash one arrived chunk of the first load that has one; false if none has. */
static bool hash_one(struct mc_io *io)
{
    for (struct mc_coldload *l = io->active; l; l = l->next_active)
        if (hash_ready(l)) {
            hash_chunk(io, l);
            return true;
        }
    return false;
}

static void maybe_finish(struct mc_io *io, struct mc_coldload *l)
{
    if (l->inflight == 0 && (l->failed || l->hashed == l->size))
        load_finish(io, l);
}

void mc_io_start(struct mc_io *io, struct mc_coldload *l)
{
    struct stat st;

    l->t_start = mc_mono_ns();
    l->fd = -1;
    l->next = l->hashed = l->hash_chunk = 0;
    l->inflight = 0;
    l->failed = false;
    l->status = 0;
    l->error[0] = '\0';
    if (strncmp(l->path, "s3://", 5) == 0) { /* in the object store: remote.c */
        mc_remote_start(io, l);
        return;
    }
    l->next_active = io->active;
    io->active = l;
    if ((uintptr_t)l->dst % DIO_ALIGN || l->dst_cap < round_up(l->size, DIO_ALIGN)) {
        load_fail(l, MC_EINVAL, "internal: destination for %s is misaligned or too small",
                  l->path);
        goto out;
    }
    l->direct = io->direct_io;
    /* O_NONBLOCK: a FIFO put in the store must not block the event loop in
     * open() (it froze the daemon); it has no effect on regular files. */
    l->fd = open(l->path, O_RDONLY | (l->direct ? O_DIRECT : 0) | O_CLOEXEC | O_NONBLOCK);
    if (l->fd < 0 && l->direct && errno == EINVAL) {
        l->direct = false;
        l->fd = open(l->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        if (!io->noted_buffered) {
            log_info("the store's file system does not support O_DIRECT: reading %s and "
                     "others through the page cache",
                     l->path);
            io->noted_buffered = true;
        }
    }
    if (l->fd < 0) {
        load_fail(l, mc_err_from_errno(errno), "opening %s: %s", l->path, strerror(errno));
        goto out;
    }
    if (fstat(l->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        load_fail(l, MC_ECORRUPT,
                  "%s is not a regular file; the store was changed behind mcache's back "
                  "(`mcache fsck` finds such damage)",
                  l->path);
        goto out;
    }
    /* A regular file: back to blocking, or io_uring answers EAGAIN instead
     * of waiting for the device. */
    fcntl(l->fd, F_SETFL, fcntl(l->fd, F_GETFL) & ~O_NONBLOCK);
    if ((uint64_t)st.st_size != l->size) {
        load_fail(l, MC_ECORRUPT,
                  "%s is %lld bytes but the registry says %llu; the store was changed behind "
                  "mcache's back",
                  l->path, (long long)st.st_size, (unsigned long long)l->size);
        goto out;
    }
    l->nchunks = (l->size + io->chunk - 1) / io->chunk;
    l->chunk_left = calloc(l->nchunks ? l->nchunks : 1, sizeof(uint32_t));
    l->xs = XXH3_createState();
    if (!l->chunk_left || !l->xs) {
        load_fail(l, MC_ENOMEM, "loading %s: out of memory", l->path);
        goto out;
    }
    XXH3_128bits_reset(l->xs);
    for (uint64_t i = 0; i < l->nchunks; i++)
        l->chunk_left[i] = (uint32_t)(i + 1 < l->nchunks ? io->chunk
                                                          : l->size - i * io->chunk);
out:
    maybe_finish(io, l);
}

/* The bytes [off, off+len) of l arrived (got bytes of them); hashed later. */
static void account(struct mc_io *io, struct mc_coldload *l, uint64_t off, uint64_t got)
{
    l->chunk_left[off / io->chunk] -= (uint32_t)got;
}

/* Hash what arrived, and finish loads that are done or failed. */
static void hash_and_finish(struct mc_io *io)
{
    for (struct mc_coldload *l = io->active, *next; l; l = next) {
        next = l->next_active;
        hash_advance(io, l);
        maybe_finish(io, l);
    }
}

/* Synchronous pread of [off, off+len) into l, through any fd. */
static int read_sync(struct mc_coldload *l, int fd, uint64_t off, uint64_t len, uint64_t rlen)
{
    uint64_t done = 0;

    while (done < len) {
        ssize_t n = pread(fd, l->dst + off + done, rlen - done, (off_t)(off + done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            load_fail(l, MC_EIO, "reading %s at offset %llu: %s", l->path,
                      (unsigned long long)(off + done), strerror(errno));
            return -1;
        }
        if (n == 0) {
            load_fail(l, MC_ECORRUPT, "%s ended at %llu bytes, expected %llu", l->path,
                      (unsigned long long)(off + done), (unsigned long long)l->size);
            return -1;
        }
        done += (uint64_t)n;
    }
    return 0;
}

/* Finish a short read's remainder without O_DIRECT alignment rules. */
static void read_rest_buffered(struct mc_coldload *l, uint64_t off, uint64_t len)
{
    int fd = open(l->path, O_RDONLY | O_CLOEXEC); /* checked a regular file at start */

    if (fd < 0) {
        load_fail(l, MC_EIO, "reopening %s: %s", l->path, strerror(errno));
        return;
    }
    read_sync(l, fd, off, len, len);
    close(fd);
}

/* Next request for l: [off, off+len) of the file, read length rlen. */
static bool next_request(struct mc_io *io, struct mc_coldload *l, uint64_t *off, uint64_t *len,
                         uint64_t *rlen, bool *fixed)
{
    if (l->failed || l->fd < 0 || l->next >= l->size)
        return false;
    *off = l->next;
    *len = io->chunk - *off % io->chunk;
    if (*len > l->size - *off)
        *len = l->size - *off;
    *rlen = l->direct ? round_up(*len, DIO_ALIGN) : *len;
    /* Registered in the background: decide once per read (pairs with
     * register_buffers()), and keep the decision for its submission. */
    *fixed = __atomic_load_n(&io->fixed, __ATOMIC_ACQUIRE);
    if (*fixed) { /* a fixed read must not cross two registered buffers */
        uint64_t rel = (uint64_t)(l->dst + *off - io->fixed_base);
        uint64_t to_edge = FIXED_PIECE - rel % FIXED_PIECE;
        if (*rlen > to_edge) {
            *rlen = to_edge;
            *len = to_edge;
        }
    }
    l->next = *off + *len;
    return true;
}

static void submit_more(struct mc_io *io)
{
    bool progress = true;
    unsigned queued = 0;

    while (io->inflight < io->qd && progress) {
        progress = false;
        /* Round robin: one request per load per pass, so files load together. */
        for (struct mc_coldload *l = io->active; l && io->inflight < io->qd; l = l->next_active) {
            uint64_t off, len, rlen;
            struct io_uring_sqe *sqe;
            struct req *r;
            bool fixed;

            if (!next_request(io, l, &off, &len, &rlen, &fixed))
                continue;
            sqe = io_uring_get_sqe(&io->ring);
            if (!sqe) {
                l->next = off; /* take it back */
                progress = false;
                break;
            }
            r = req_free;
            req_free = r->next_free;
            r->l = l;
            r->off = off;
            r->len = (uint32_t)len;
            if (fixed)
                io_uring_prep_read_fixed(sqe, l->fd, l->dst + off, (unsigned)rlen, off,
                                         (int)((uint64_t)(l->dst + off - io->fixed_base) /
                                               FIXED_PIECE));
            else
                io_uring_prep_read(sqe, l->fd, l->dst + off, (unsigned)rlen, off);
            io_uring_sqe_set_data(sqe, r);
            l->inflight++;
            io->inflight++;
            queued++;
            progress = true;
        }
    }
    if (queued)
        io_uring_submit(&io->ring);
}

static void complete(struct mc_io *io, struct req *r, int res)
{
    struct mc_coldload *l = r->l;
    uint64_t off = r->off, len = r->len;

    r->next_free = req_free;
    req_free = r;
    l->inflight--;
    io->inflight--;
    if (res < 0) {
        load_fail(l, mc_err_from_errno(-res), "reading %s at offset %llu: %s", l->path,
                  (unsigned long long)off, strerror(-res));
    } else if (!l->failed) {
        uint64_t got = (uint64_t)res < len ? (uint64_t)res : len;

        if (got == 0)
            load_fail(l, MC_ECORRUPT, "%s ended at %llu bytes, expected %llu", l->path,
                      (unsigned long long)off, (unsigned long long)l->size);
        else if (got < len) /* short read: finish this piece synchronously */
            read_rest_buffered(l, off + got, len - got);
        if (!l->failed)
            account(io, l, off, len);
    }
}

/* Complete every read the ring has answered (none waited for). */
static void reap(struct mc_io *io)
{
    struct io_uring_cqe *cqe;

    while (io_uring_peek_cqe(&io->ring, &cqe) == 0) {
        struct req *r = io_uring_cqe_get_data(cqe);
        int res = cqe->res;
        io_uring_cqe_seen(&io->ring, cqe);
        complete(io, r, res);
    }
}

static void poll_ring(struct mc_io *io, bool wait)
{
    struct io_uring_cqe *cqe;
    uint64_t junk;

    if (wait && io->inflight) {
        if (io_uring_wait_cqe(&io->ring, &cqe) == 0) {
            struct req *r = io_uring_cqe_get_data(cqe);
            int res = cqe->res;
            io_uring_cqe_seen(&io->ring, cqe);
            complete(io, r, res);
        }
    }
    reap(io);
    if (io->efd >= 0)
        while (read(io->efd, &junk, sizeof(junk)) > 0)
            ;
    /* Reads go out first, so the device works while this thread hashes; and
     * one chunk at a time, refilling the queue between chunks, so the device
     * never waits for the hash of a backlog (it did, and the load ran at
     * 0.5-0.8x the same read without a hash when this thread lost its CPU). */
    submit_more(io);
    while (hash_one(io)) {
        reap(io);
        submit_more(io);
    }
    hash_and_finish(io);
}

/* Without a ring: a few chunks per call, so the event loop stays responsive. */
static void poll_pread(struct mc_io *io)
{
    unsigned budget = io->qd;

    while (budget && io->active) {
        bool any = false;

        for (struct mc_coldload *l = io->active, *next; l && budget; l = next) {
            uint64_t off, len, rlen;
            bool fixed;

            next = l->next_active;
            if (next_request(io, l, &off, &len, &rlen, &fixed)) {
                any = true;
                budget--;
                if (read_sync(l, l->fd, off, len, rlen) == 0)
                    account(io, l, off, len);
            }
        }
        hash_and_finish(io);
        if (!any)
            break;
    }
}

void mc_io_poll(struct mc_io *io, bool wait)
{
    if (io->remote)
        mc_remote_poll(io);
    if (io->have_ring) {
        submit_more(io);
        poll_ring(io, wait);
    } else {
        poll_pread(io);
    }
}

static bool is_active(const struct mc_io *io, const struct mc_coldload *l)
{
    for (const struct mc_coldload *p = io->active; p; p = p->next_active)
        if (p == l)
            return true;
    return false;
}

void mc_io_cancel(struct mc_io *io, struct mc_coldload *l)
{
    if (mc_remote_cancel(io, l))
        return;
    if (!is_active(io, l))
        return;
    load_fail(l, MC_ENOENT, "load of %s cancelled", l->path);
    /* The kernel may still be writing into the extent: wait for it. The
     * poll finishes the load (once) when its last read is back. */
    while (l->inflight)
        poll_ring(io, true);
    if (is_active(io, l))
        maybe_finish(io, l);
}
