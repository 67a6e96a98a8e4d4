/*
 * rawload.h - the cold-load baselines of the `load` scenario, without
 * mcache: a raw O_DIRECT io_uring read (this machine's limit), a buffered
 * read() into malloc'd memory, the shared-memory buffer they read into, and
 * evicting a file from the page cache.
 */
#ifndef MCACHE_BENCH_RAWLOAD_H
#define MCACHE_BENCH_RAWLOAD_H

#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>

/* A prefaulted MAP_SHARED mapping of a file in a tmpfs: the kind of memory an arena is. */
struct shmbuf {
    char path[700];
    uint8_t *p;
    uint64_t size; /* mapped bytes (a multiple of 4 KiB) */
};

/* Create dir/name of size bytes (fallocate'd) and map it populated. */
int shmbuf_make(const char *dir, const char *name, uint64_t size, struct shmbuf *s);
void shmbuf_drop(struct shmbuf *s);

/* An io_uring for reads of chunk bytes, qd in flight (set up once, as mcached's is). */
struct rawring {
    struct io_uring ring;
    bool up;
    unsigned qd;
    uint64_t chunk;
};

/* 0, or -errno from io_uring_queue_init (io_uring refused: seccomp, io_uring_disabled). */
int rawring_init(struct rawring *r, unsigned qd, uint64_t chunk);
void rawring_exit(struct rawring *r);

/*
 * Read all size bytes of path into dst with O_DIRECT (open included in *ns,
 * through the last completion). dst must be 4 KiB-aligned with room for
 * size rounded up to 4 KiB. 0, 1 if the file system refuses O_DIRECT (no
 * message), or -1 with an error printed.
 */
int raw_uring_read(struct rawring *r, const char *path, uint8_t *dst, uint64_t size, uint64_t *ns);

/* open + read() of the whole file into dst (large reads, through the page cache) + close. */
int buffered_read(const char *path, uint8_t *dst, uint64_t size, uint64_t *ns);

/*
 * Average length, in pages, of the runs of physically consecutive pages
 * backing [p, p + len) (/proc/self/pagemap; the pages must be present), or
 * -1 when page frame numbers are hidden (without CAP_SYS_ADMIN).
 */
double phys_run_pages(const void *p, uint64_t len);

/*
 * Drop path's pages from the page cache (fsync, then POSIX_FADV_DONTNEED,
 * once more if pages stayed) and return the fraction still resident, seen
 * with mincore; -1 on error.
 */
double file_evict(const char *path);

#endif
