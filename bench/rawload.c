/*
 * rawload.c - cold-load baselines and page-cache eviction (see rawload.h).
 */
#include "bench/rawload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/model.h"
#include "common/clock.h"

#define DIO_ALIGN 4096u

static uint64_t round_up(uint64_t v, uint64_t a)
{
    return (v + a - 1) / a * a;
}

int shmbuf_make(const char *dir, const char *name, uint64_t size, struct shmbuf *s)
{
    int fd;

    memset(s, 0, sizeof(*s));
    s->size = round_up(size, DIO_ALIGN);
    snprintf(s->path, sizeof(s->path), "%s/%s", dir, name);
    fd = open(s->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return bench_error("creating %s: %s", s->path, strerror(errno));
    if (ftruncate(fd, (off_t)s->size) != 0 ||
        (fallocate(fd, 0, 0, (off_t)s->size) != 0 && errno != EOPNOTSUPP)) {
        int e = errno;

        close(fd);
        unlink(s->path);
        return bench_error("committing %s for %s: %s (%s free there)",
                           fmt_bytes(s->size, (char[32]){0}, 32), s->path, strerror(e),
                           fmt_bytes(fs_avail(dir), (char[32]){0}, 32));
    }
    s->p = mmap(NULL, s->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    close(fd);
    if (s->p == MAP_FAILED) {
        s->p = NULL;
        unlink(s->path);
        return bench_error("mapping %s: %s", s->path, strerror(errno));
    }
    return 0;
}

void shmbuf_drop(struct shmbuf *s)
{
    if (s->p)
        munmap(s->p, s->size);
    if (s->path[0])
        unlink(s->path);
    memset(s, 0, sizeof(*s));
}

int rawring_init(struct rawring *r, unsigned qd, uint64_t chunk)
{
    int rc;

    memset(r, 0, sizeof(*r));
    r->qd = qd;
    r->chunk = chunk;
    rc = io_uring_queue_init(qd * 2, &r->ring, IORING_SETUP_SINGLE_ISSUER);
    if (rc == -EINVAL)
        rc = io_uring_queue_init(qd * 2, &r->ring, 0);
    if (rc < 0)
        return rc;
    r->up = true;
    return 0;
}

void rawring_exit(struct rawring *r)
{
    if (r->up)
        io_uring_queue_exit(&r->ring);
    r->up = false;
}

int raw_uring_read(struct rawring *r, const char *path, uint8_t *dst, uint64_t size, uint64_t *ns)
{
    uint64_t t0 = mc_mono_ns(), next = 0, done = 0;
    unsigned inflight = 0;
    int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC), rc = 0;

    if (fd < 0 && errno == EINVAL)
        return 1;
    if (fd < 0)
        return bench_error("opening %s with O_DIRECT: %s", path, strerror(errno));
    while (done < size && !rc) {
        struct io_uring_cqe *cqe;
        unsigned queued = 0;

        while (inflight < r->qd && next < size) {
            struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
            uint64_t len = size - next < r->chunk ? size - next : r->chunk;

            if (!sqe)
                break;
            io_uring_prep_read(sqe, fd, dst + next, (unsigned)round_up(len, DIO_ALIGN), next);
            io_uring_sqe_set_data64(sqe, len);
            next += len;
            inflight++;
            queued++;
        }
        if (queued && io_uring_submit(&r->ring) < 0)
            rc = bench_error("io_uring_submit failed reading %s", path);
        if (!rc && (rc = io_uring_wait_cqe(&r->ring, &cqe)) < 0) {
            rc = bench_error("io_uring_wait_cqe: %s", strerror(-rc));
            break;
        }
        /* Reap everything that is complete. */
        while (!rc && io_uring_peek_cqe(&r->ring, &cqe) == 0) {
            uint64_t want = io_uring_cqe_get_data64(cqe);

            if (cqe->res < 0 || (uint64_t)cqe->res != want)
                rc = bench_error("O_DIRECT read of %s returned %d (wanted %llu bytes): %s", path,
                                 cqe->res, (unsigned long long)want,
                                 cqe->res < 0 ? strerror(-cqe->res) : "short read");
            else
                done += want;
            io_uring_cqe_seen(&r->ring, cqe);
            inflight--;
        }
    }
    while (inflight) { /* after an error: wait for the kernel to stop writing */
        struct io_uring_cqe *cqe;

        if (io_uring_wait_cqe(&r->ring, &cqe) != 0)
            break;
        io_uring_cqe_seen(&r->ring, cqe);
        inflight--;
    }
    close(fd);
    *ns = mc_mono_ns() - t0;
    return rc;
}

int buffered_read(const char *path, uint8_t *dst, uint64_t size, uint64_t *ns)
{
    uint64_t t0 = mc_mono_ns(), done = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return bench_error("opening %s: %s", path, strerror(errno));
    while (done < size) {
        /* As large as read() takes: the kernel's readahead does the rest. */
        size_t want = size - done > (1u << 30) ? (1u << 30) : (size_t)(size - done);
        ssize_t n = read(fd, dst + done, want);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int e = errno;

            close(fd);
            return bench_error("reading %s: %s", path, n ? strerror(e) : "file ended early");
        }
        done += (uint64_t)n;
    }
    close(fd);
    *ns = mc_mono_ns() - t0;
    return 0;
}

double phys_run_pages(const void *p, uint64_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t first = (uint64_t)(uintptr_t)p / (uint64_t)page, n = len / (uint64_t)page;
    uint64_t runs = 0, prev = 0, e[512];
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

    if (fd < 0 || n == 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (uint64_t i = 0; i < n; i += 512) {
        uint64_t k = n - i < 512 ? n - i : 512;

        if (pread(fd, e, k * 8, (off_t)((first + i) * 8)) != (ssize_t)(k * 8)) {
            close(fd);
            return -1;
        }
        for (uint64_t j = 0; j < k; j++) {
            uint64_t pfn = e[j] & ((1ull << 55) - 1); /* bits 0-54; 0 when hidden */

            if (!(e[j] >> 63) || pfn == 0) {
                close(fd);
                return -1;
            }
            if (i + j == 0 || pfn != prev + 1)
                runs++;
            prev = pfn;
        }
    }
    close(fd);
    return (double)n / (double)runs;
}

double file_evict(const char *path)
{
    double res = 0;

    for (int attempt = 0; attempt < 3; attempt++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0)
            return -1;
        /* Dirty pages cannot be dropped: write them first. */
        if (fsync(fd) != 0 || posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
            close(fd);
            return -1;
        }
        close(fd);
        res = file_residency(path);
        if (res == 0)
            break;
    }
    return res;
}
