/*
 * arena.c - create, adopt and attach the shared-memory arena (see arena.h).
 *
 * The creation protocol: build the whole arena under a temporary name
 * (header, allocators, table), then rename it into place without replacing
 * anything (RENAME_NOREPLACE). A worker can therefore only ever open a fully
 * initialised arena, and two loaders racing to create the same cache cannot
 * both win.
 *
 * Where an arena goes: at its header's base in every process. Unless given
 * one, a new arena takes its cache name's slot of the default range
 * (mc_arena_default_base, the one place that computes it) and must fit
 * there, so one worker can attach several caches.
 */
#include "shm/arena.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "shm/fence.h"

/* Inlined: libmcache must not need libxxhash at run time for one hash. */
#define XXH_INLINE_ALL
#include <xxhash.h>

#ifndef HUGETLBFS_MAGIC
#define HUGETLBFS_MAGIC 0x958458f6
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25 /* Linux 6.1 */
#endif

static uint64_t round_up(uint64_t v, uint64_t g)
{
    return (v + g - 1) / g * g;
}

static int cache_name_check(const char *cache)
{
    size_t n = strlen(cache);

    if (n == 0 || n > 63) /* cut: a long name would crowd out the reason */
        return mc_err(MC_EINVAL, "cache name \"%.63s%s\" (%zu bytes) must be 1 to 63 characters",
                      cache, n > 63 ? "..." : "", n);
    for (size_t i = 0; i < n; i++) {
        char c = cache[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            /* No '.': a cache's files are mcache.NAME plus .lock, .readers,
             * .sock and .tmp.PID, so cache "x.lock" would be cache x's lock. */
            return mc_err(MC_EINVAL,
                          "cache name \"%s\" has '%c' at %zu; use letters, digits, '-' and '_' "
                          "(a '.' could name another cache's files)",
                          cache, (c >= 0x20 && c < 0x7f) ? c : '?', i);
    }
    return 0;
}

uint64_t mc_arena_slot_base(unsigned i)
{
    return MC_BASE_RANGE + (uint64_t)(i % MC_BASE_SLOTS) * MC_BASE_SLOT;
}

uint64_t mc_arena_default_base(const char *cache)
{
    uint64_t h;

    if (!cache)
        cache = "default";
    /* The top bits pick the slot (XXH3's low five bits happen to agree for
     * "a" and "b"). */
    h = XXH3_64bits(cache, strlen(cache));
    return mc_arena_slot_base((unsigned)(h >> (64 - MC_BASE_SLOT_BITS)));
}

int mc_arena_path(const char *dir, const char *cache, char *buf, size_t len)
{
    int rc;

    if (!dir)
        dir = MC_DEFAULT_SHM_DIR;
    if (!cache)
        cache = "default";
    rc = cache_name_check(cache);
    if (rc)
        return rc;
    if ((size_t)snprintf(buf, len, "%s/mcache.%s", dir, cache) >= len)
        return mc_err(MC_EINVAL, "arena directory \"%.80s...\" (%zu bytes) is too long", dir,
                      strlen(dir));
    return 0;
}

const char *mc_backing_name(uint32_t backing)
{
    switch (backing) {
    case MC_BACKING_SHM4K:
        return "4 KiB pages (tmpfs)";
    case MC_BACKING_HUGETLB:
        return "huge pages (hugetlbfs)";
    case MC_BACKING_THP:
        return "2 MiB transparent huge pages (tmpfs huge=always)";
    case MC_BACKING_SHM_COLLAPSED:
        return "2 MiB pages (tmpfs, collapsed by mcached at creation)";
    default:
        return "4 KiB pages (not tmpfs: not recommended)";
    }
}

/* Does the tmpfs mount holding dir have huge=always? (from /proc/self/mountinfo) */
static bool tmpfs_huge_always(const char *dir)
{
    char real[PATH_MAX], line[4096], best[PATH_MAX] = "";
    bool huge = false;
    FILE *f;

    if (!realpath(dir, real))
        return false;
    f = fopen("/proc/self/mountinfo", "r");
    if (!f)
        return false;
    while (fgets(line, sizeof(line), f)) {
        char mnt[PATH_MAX];
        char *sep = strstr(line, " - ");
        size_t ml;

        if (!sep || sscanf(line, "%*s %*s %*s %*s %4095s", mnt) != 1)
            continue;
        ml = strlen(mnt);
        if (strncmp(real, mnt, ml) != 0 || (real[ml] != '/' && real[ml] != '\0' && ml > 1))
            continue;
        if (ml >= strlen(best)) { /* the longest matching mount point wins */
            snprintf(best, sizeof(best), "%s", mnt);
            huge = strstr(sep, "huge=always") != NULL;
        }
    }
    fclose(f);
    return huge;
}

int mc_backing_detect(const char *dir, uint64_t *page_size, uint32_t *backing)
{
    struct statfs sf;

    if (statfs(dir, &sf) != 0)
        return mc_err(mc_err_from_errno(errno), "arena directory \"%s\": %s", dir,
                      strerror(errno));
    if ((unsigned long)sf.f_type == HUGETLBFS_MAGIC) {
        *page_size = (uint64_t)sf.f_bsize;
        *backing = MC_BACKING_HUGETLB;
    } else if ((unsigned long)sf.f_type == TMPFS_MAGIC) {
        if (tmpfs_huge_always(dir)) {
            *page_size = MC_HUGE_PAGE;
            *backing = MC_BACKING_THP;
        } else {
            *page_size = 4096;
            *backing = MC_BACKING_SHM4K;
        }
    } else {
        *page_size = 4096;
        *backing = MC_BACKING_OTHER;
    }
    return 0;
}

uint64_t mc_arena_default_size(void)
{
    char line[256];
    uint64_t avail_kb = 0, size;
    FILE *f = fopen("/proc/meminfo", "r");

    if (f) {
        while (fgets(line, sizeof(line), f))
            if (sscanf(line, "MemAvailable: %" SCNu64 " kB", &avail_kb) == 1)
                break;
        fclose(f);
    }
    size = avail_kb * 1024 / 4;
    if (size < (256ull << 20))
        size = 256ull << 20;
    if (size > (4ull << 30))
        size = 4ull << 30;
    return size & ~((64ull << 20) - 1);
}

/*
 * A slot of the default range that is free in this process for size bytes
 * (probed with a PROT_NONE mapping, removed at once), other than want; 0 if
 * none is.
 */
static uint64_t free_slot(uint64_t want, uint64_t size)
{
    for (unsigned i = 0; i < MC_BASE_SLOTS && size <= MC_BASE_SLOT; i++) {
        uint64_t b = mc_arena_slot_base(i);
        void *p;

        if (b == want)
            continue;
        p = mmap((void *)(uintptr_t)b, size, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
        if (p == MAP_FAILED)
            continue;
        munmap(p, size);
        if (p == (void *)(uintptr_t)b)
            return b;
    }
    return 0;
}

static int map_error(const struct mc_arena *a)
{
    char alt[80] = "a free, 2 MiB-aligned address";
    uint64_t free_b;

    if (errno != EEXIST)
        return mc_err(mc_err_from_errno(errno), "mapping arena %s at 0x%" PRIx64 ": %s", a->path,
                      a->want, strerror(errno));
    free_b = free_slot(a->want, a->size);
    if (free_b)
        snprintf(alt, sizeof(alt), "e.g. 0x%" PRIx64 ", free in this process", free_b);
    return mc_err(MC_EADDRINUSE,
                  "arena %s needs the addresses 0x%" PRIx64 "-0x%" PRIx64 ", already in use in "
                  "this process: another cache attached here may sit there (a cache's default "
                  "address is one of %u slots picked by a hash of its name, and two names can "
                  "share one); restart mcached for one of them with --base ADDR (%s) and "
                  "--recreate, then restart the workers",
                  a->path, a->want, a->want + a->size, MC_BASE_SLOTS, alt);
}

static int map_at(struct mc_arena *a, uint64_t base, uint64_t size, bool writable)
{
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    int flags = MAP_SHARED | MAP_FIXED_NOREPLACE;
    void *want = (void *)(uintptr_t)base;
    void *p;

    a->want = base;
    a->size = size;
    p = mmap(want, size, prot, flags, a->fd, 0);
    if (p == MAP_FAILED)
        return map_error(a);
    if (p != want) { /* a kernel without MAP_FIXED_NOREPLACE treats it as a hint */
        munmap(p, size);
        errno = EEXIST;
        return map_error(a);
    }
    a->base = p;
    a->hdr = p;
    a->writable = writable;
    return 0;
}

/* The smallest index region: the table and a few hundred records. */
#define MC_INDEX_MIN (1u << 20)

/* Where everything of a new arena goes (mc_arena_create). */
struct layout {
    const char *dir, *cache;
    uint64_t base, page_size, size, index_off, index_size, data_off;
    uint32_t backing;
};

#define MC_USER_TOP 0x800000000000ull /* end of x86-64 user space (47 bits) */

/*
 * Does the arena fit where it goes: below the top of user space at a given
 * base, and in its slot (not the next cache's) at its cache's default one?
 */
static int place_check(const struct layout *l, bool given)
{
    if (given && (l->base >= MC_USER_TOP || l->size > MC_USER_TOP - l->base))
        return mc_err(MC_EINVAL,
                      "an arena of %" PRIu64 " bytes at base 0x%" PRIx64 " would end past the "
                      "top of user space (0x%llx); choose a lower --base or a smaller --size",
                      l->size, l->base, MC_USER_TOP);
    if (given || l->size <= MC_BASE_SLOT)
        return 0;
    return mc_err(MC_EINVAL,
                  "an arena of %" PRIu64 " bytes does not fit the %llu GiB address slot "
                  "0x%" PRIx64 "-0x%" PRIx64 " that cache \"%s\" has by default; give it "
                  "--base ADDR, a 2 MiB-aligned address with the whole arena free above it, "
                  "outside 0x%llx-0x%llx (see docs/arena.md), or a --size of at most %lluG",
                  l->size, MC_BASE_SLOT >> 30, l->base, (uint64_t)(l->base + MC_BASE_SLOT),
                  l->cache, MC_BASE_RANGE, MC_BASE_RANGE_END, MC_BASE_SLOT >> 30);
}

/*
 * Plan a new arena from o, its file's path into path: the checks
 * mc_arena_create makes before it writes anything.
 */
static int plan(const struct mc_arena_opts *o, struct layout *l, char *path, size_t len)
{
    uint64_t meta_end;
    int rc;

    l->dir = o->dir ? o->dir : MC_DEFAULT_SHM_DIR;
    l->cache = o->cache ? o->cache : "default";
    l->base = o->base ? o->base : mc_arena_default_base(l->cache);
    rc = mc_arena_path(l->dir, l->cache, path, len);
    if (rc)
        return rc;
    rc = mc_backing_detect(l->dir, &l->page_size, &l->backing);
    if (rc)
        return rc;
    if (l->base % MC_HUGE_PAGE)
        return mc_err(MC_EINVAL, "base address 0x%" PRIx64 " must be a multiple of 2 MiB",
                      l->base);

    /* Layout: header, the two free arrays, index region, data region. */
    meta_end = MC_ARENA_HDR_SIZE + (uint64_t)(MC_DATA_EXTENTS + MC_INDEX_EXTENTS) *
                                       sizeof(struct mc_extent_span);
    l->index_off = round_up(meta_end, 64 << 10);
    l->size = round_up(o->size, l->page_size > (64 << 10) ? l->page_size : (64 << 10));
    l->index_size = o->index_size;
    if (!l->index_size) {
        l->index_size = l->size / 16;
        if (l->index_size < (4u << 20))
            l->index_size = 4u << 20;
        if (l->index_size > (1ull << 30))
            l->index_size = 1ull << 30;
    }
    l->index_size = round_up(l->index_size, 64 << 10);
    if (l->index_size < MC_INDEX_MIN)
        return mc_err(MC_EINVAL,
                      "index size %" PRIu64 " bytes is below the minimum of %u (it holds the "
                      "table and every record); give --index-size 1M or more, or leave it out "
                      "(size/16)",
                      l->index_size, MC_INDEX_MIN);
    l->data_off = round_up(l->index_off + l->index_size, l->page_size);
    if (l->data_off + l->page_size > l->size)
        return mc_err(MC_EINVAL,
                      "arena size %" PRIu64 " bytes leaves no room for model data after the "
                      "%" PRIu64 "-byte index; give --size %" PRIu64
                      " bytes or more (room for 16 MiB of models), or a smaller --index-size",
                      l->size, l->index_size, l->data_off + (uint64_t)(16 << 20));
    return place_check(l, o->base != 0);
}

/*
 * Bytes free in the file system holding dir into *avail; false if it sets no
 * limit it reports (hugetlbfs without size=: the free huge pages decide).
 */
static bool dir_free(const char *dir, uint64_t *avail)
{
    struct statfs sf;

    if (statfs(dir, &sf) != 0 || sf.f_blocks == 0)
        return false;
    *avail = (uint64_t)sf.f_bavail * (uint64_t)sf.f_bsize;
    return true;
}

int mc_arena_check(const struct mc_arena_opts *o, uint64_t reclaimable)
{
    struct layout l;
    uint64_t avail;
    char path[600];
    int rc = plan(o, &l, path, sizeof(path));

    if (rc)
        return rc;
    if (dir_free(l.dir, &avail) && l.size > avail + reclaimable)
        return mc_err(MC_ENOSPC,
                      "an arena of %" PRIu64 " bytes does not fit in %s (%" PRIu64
                      " bytes free); choose a smaller --size or free memory",
                      l.size, l.dir, avail + reclaimable);
    return 0;
}

/*
 * Huge pages on a tmpfs that is not mounted huge (/dev/shm by default).
 * Such a tmpfs hands out 4 KiB pages, and that costs twice: a worker maps
 * each with its own page-table entry (16 per fault with the kernel's 64 KiB
 * fault-around: ~16,000 faults and ~130 ms per GiB of a first read, against
 * ~4,000 for a page-cached file, whose large folios the kernel maps whole),
 * and the pages lie scattered in physical memory, so the disk writes a load
 * into runs of a few pages. MADV_COLLAPSE (Linux 6.1) replaces the pages of
 * a 2 MiB-aligned block of the file with one 2 MiB folio, whatever
 * shmem_enabled says unless it is "deny", and from then on every process
 * that maps the block at a 2 MiB-aligned address (the arena's base is)
 * maps it with one PMD entry. It is done here, block by block in address
 * order, before the arena has a name: no other process maps it yet, so it
 * touches nothing a reader could see. A block that cannot be collapsed (no
 * free 2 MiB of physical memory) stays on 4 KiB pages; mcached logs how
 * much was collapsed (a->huge_bytes) and why not (a->huge_errno).
 *
 * Each block is given one committed page first (fallocate: ENOSPC, never
 * SIGBUS, when the tmpfs is full): the kernel collapses only a block that
 * has a page; it fills the rest of the folio with zeroes without
 * allocating the 511 small pages it would then copy and free.
 */
#define COLLAPSE_MAX_MISSES 64 /* in a row: memory too fragmented, stop compacting for it */

static void arena_collapse(struct mc_arena *a)
{
    unsigned misses = 0;

    a->huge_errno = 0;
    for (uint64_t off = 0; off + MC_HUGE_PAGE <= a->size; off += MC_HUGE_PAGE) {
        if (fallocate(a->fd, 0, (off_t)off, 4096) != 0) {
            a->huge_errno = errno;
            return; /* full: arena_commit() says so */
        }
        if (madvise(a->base + off, MC_HUGE_PAGE, MADV_COLLAPSE) == 0) {
            a->huge_bytes += MC_HUGE_PAGE;
            misses = 0;
            continue;
        }
        a->huge_errno = errno;
        /* Refused outright at the first block (a kernel before 6.1,
         * shmem_enabled=deny): no more tries. Later, EINVAL can be transient. */
        if (!a->huge_bytes && (errno == EINVAL || errno == EPERM || errno == ENOSYS))
            return;
        /* Each miss is a round of direct compaction: bound the start-up time. */
        if (++misses == COLLAPSE_MAX_MISSES)
            return;
    }
}

/*
 * Commit every page of the arena now and fill the loader's page tables:
 * no SIGBUS when the tmpfs fills later, no faults on loads. One pass in
 * address order (MADV_POPULATE_WRITE, Linux 5.14; where it is refused the
 * loads fault the pages in).
 */
static int arena_commit(struct mc_arena *a, const struct layout *l)
{
    uint64_t avail = 0;
    int e;

    if (fallocate(a->fd, 0, 0, (off_t)a->size) == 0 || errno == EOPNOTSUPP) {
        (void)madvise(a->base, a->size, MADV_POPULATE_WRITE);
        return 0;
    }
    e = errno;
    dir_free(l->dir, &avail);
    avail += a->huge_bytes; /* the blocks collapsed so far are freed with the file */
    return mc_err(mc_err_from_errno(e),
                  "committing %" PRIu64 " bytes for arena %s: %s (%" PRIu64
                  " bytes free in %s); choose a smaller --size or free memory",
                  a->size, a->path, strerror(e), avail, l->dir);
}

/*
 * The arena file, unnamed until it is complete: O_TMPFILE in the directory
 * (tmpfs has it), so that a creator killed while it collapses and commits
 * (seconds for gigabytes, and the OOM killer's likeliest moment) leaves no
 * file holding that memory. Where the filesystem lacks O_TMPFILE, a name of
 * its own, mcache.CACHE.tmp.PID (tmp[0] says which). 0600 until fchmod.
 */
static int arena_file_open(const char *dir, const char *path, char *tmp, size_t tmplen)
{
    int fd;

    tmp[0] = '\0';
    fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    snprintf(tmp, tmplen, "%s.tmp.%d", path, (int)getpid());
    unlink(tmp);
    return open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
}

/* Give the complete arena its name; fails with EEXIST if the name exists. */
static int arena_file_publish(int fd, const char *tmp, const char *path)
{
    char proc[64];

    if (tmp[0])
        return renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
    /* Linking an O_TMPFILE through /proc needs no capability (AT_EMPTY_PATH does). */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW);
}

int mc_arena_create(const struct mc_arena_opts *o, struct mc_arena *a)
{
    struct layout l;
    char tmp[600];
    struct stat st;
    int rc, e;

    memset(a, 0, sizeof(*a));
    a->fd = -1;
    rc = plan(o, &l, a->path, sizeof(a->path));
    if (rc)
        return rc;
    if (stat(a->path, &st) == 0)
        return mc_err(MC_EEXIST, "arena %s already exists", a->path);
    a->fd = arena_file_open(l.dir, a->path, tmp, sizeof(tmp));
    if (a->fd < 0)
        return mc_err(mc_err_from_errno(errno), "creating arena %s: %s", a->path,
                      strerror(errno));
    if (fchmod(a->fd, o->mode ? o->mode : 0640) != 0 || ftruncate(a->fd, (off_t)l.size) != 0) {
        rc = mc_err(mc_err_from_errno(errno), "sizing arena %s to %" PRIu64 " bytes: %s",
                    a->path, l.size, strerror(errno));
        goto fail;
    }
    rc = map_at(a, l.base, l.size, true);
    if (rc)
        goto fail;
    if (l.backing == MC_BACKING_SHM4K && !o->small_pages)
        arena_collapse(a);
    rc = arena_commit(a, &l);
    if (rc) {
        munmap(a->base, a->size);
        a->base = NULL;
        goto fail;
    }

    struct mc_arena_hdr *h = a->hdr;
    memset(h, 0, MC_ARENA_HDR_SIZE);
    h->format = MC_ARENA_FORMAT;
    h->hdr_size = MC_ARENA_HDR_SIZE;
    h->base = l.base;
    h->size = l.size;
    h->page_size = l.page_size;
    h->backing = a->huge_bytes ? MC_BACKING_SHM_COLLAPSED : l.backing;
    h->state = MC_ARENA_INIT;
    h->created_ns = mc_wall_ns();
    if (getrandom(&h->hash_seed, sizeof(h->hash_seed), 0) != sizeof(h->hash_seed))
        h->hash_seed = h->created_ns ^ ((uint64_t)getpid() << 32);
    h->index_off = l.index_off;
    h->index_size = l.index_size;
    h->data_off = l.data_off;
    h->data_size = l.size - l.data_off;
    h->epoch = 1;
    h->fence = mc_fence_loader_supported() ? MC_FENCE_MEMBARRIER : MC_FENCE_XCHG;
    h->generation = 1;
    snprintf(h->cache, sizeof(h->cache), "%s", l.cache);
    snprintf(h->dir, sizeof(h->dir), "%s", l.dir);
    mc_extent_init(a, &h->data_ext, l.data_off, h->data_size, l.page_size, MC_ARENA_HDR_SIZE,
                   MC_DATA_EXTENTS);
    mc_extent_init(a, &h->index_ext, l.index_off, l.index_size, 4096,
                   MC_ARENA_HDR_SIZE + MC_DATA_EXTENTS * sizeof(struct mc_extent_span),
                   MC_INDEX_EXTENTS);
    h->magic = MC_ARENA_MAGIC;
    if (arena_file_publish(a->fd, tmp, a->path) != 0) {
        e = errno;
        if (e == EEXIST)
            rc = mc_err(MC_EEXIST, "arena %s was created by another process meanwhile", a->path);
        else
            rc = mc_err(mc_err_from_errno(e), "publishing arena %s: %s", a->path, strerror(e));
        munmap(a->base, a->size);
        a->base = NULL;
        goto fail;
    }
    return 0;

fail:
    if (a->fd >= 0)
        close(a->fd);
    if (tmp[0])
        unlink(tmp);
    a->fd = -1;
    return rc;
}

static int hdr_check(const struct mc_arena_hdr *h, const char *path, uint64_t file_size)
{
    if (h->magic != MC_ARENA_MAGIC)
        return mc_err(MC_EBADARENA,
                      "%s is not an mcache arena (bad magic 0x%016" PRIx64 "); remove it or "
                      "choose another --cache",
                      path, h->magic);
    if (h->format != MC_ARENA_FORMAT)
        return mc_err(MC_EFORMAT,
                      "arena %s has layout format %u but this build reads format %u; restart "
                      "mcached from this build (it rebuilds the arena) or use the matching "
                      "libmcache",
                      path, h->format, MC_ARENA_FORMAT);
    if (h->size != file_size)
        return mc_err(MC_EBADARENA,
                      "arena %s is %" PRIu64 " bytes but its header says %" PRIu64
                      "; it is damaged: stop mcached, remove it and restart",
                      path, file_size, h->size);
    if (h->hdr_size != MC_ARENA_HDR_SIZE || h->base % MC_HUGE_PAGE || h->data_off >= h->size ||
        h->index_size > h->size || h->index_off > h->size - h->index_size ||
        h->index_off + h->index_size > h->data_off || h->data_size > h->size - h->data_off ||
        h->base > MC_USER_TOP || h->size > MC_USER_TOP - h->base)
        return mc_err(MC_EBADARENA, "arena %s has an inconsistent header; it is damaged", path);
    return 0;
}

int mc_access_denied(const char *what, const char *path)
{
    char name[64], buf[4096];
    struct group g, *gp = NULL;
    struct stat st;
    int uid = (int)geteuid();

    if (stat(path, &st) != 0) /* a directory on the way refuses us */
        return mc_err(MC_EPERM,
                      "%s %s cannot be reached by uid %d (%s); ask the operator for access to "
                      "its directory, or to start mcached with --reader-group naming a group "
                      "of yours",
                      what, path, uid, strerror(errno));
    if (getgrgid_r(st.st_gid, &g, buf, sizeof(buf), &gp) == 0 && gp)
        snprintf(name, sizeof(name), "%s", gp->gr_name);
    else
        snprintf(name, sizeof(name), "%u", (unsigned)st.st_gid);
    if (st.st_gid == 0) /* nobody should be told to join root's group */
        return mc_err(MC_EPERM,
                      "%s %s (mode %04o, group %s) does not admit uid %d; ask the operator to "
                      "start mcached with --reader-group naming a group of yours",
                      what, path, (unsigned)(st.st_mode & 07777), name, uid);
    return mc_err(MC_EPERM,
                  "%s %s (mode %04o, group %s) does not admit uid %d; ask the operator to add "
                  "uid %d to group %s, or to start mcached with --reader-group naming a group "
                  "of yours",
                  what, path, (unsigned)(st.st_mode & 07777), name, uid, uid, name);
}

int mc_arena_open(const char *dir, const char *cache, bool writable, struct mc_arena *a)
{
    struct mc_arena_hdr h;
    struct stat st;
    ssize_t n;
    int rc;

    memset(a, 0, sizeof(*a));
    a->fd = -1;
    rc = mc_arena_path(dir, cache, a->path, sizeof(a->path));
    if (rc)
        return rc;
    /* O_NONBLOCK: a FIFO put at the path must not hang the open. */
    a->fd = open(a->path, (writable ? O_RDWR : O_RDONLY) | O_CLOEXEC | O_NONBLOCK);
    if (a->fd < 0) {
        int e = errno;
        if (e == ENOENT)
            return mc_err(MC_ENOENT,
                          "no arena for cache \"%s\" at %s; is mcached running with --cache %s?",
                          cache ? cache : "default", a->path, cache ? cache : "default");
        if (e == EACCES)
            return mc_access_denied("arena", a->path);
        return mc_err(mc_err_from_errno(e), "opening arena %s: %s", a->path, strerror(e));
    }
    if (fstat(a->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = mc_err(MC_EBADARENA, "%s is not a regular file, so not an mcache arena", a->path);
        goto fail;
    }
    n = pread(a->fd, &h, sizeof(h), 0);
    if (n < 0) {
        rc = mc_err(MC_EIO, "reading arena %s: %s", a->path, strerror(errno));
        goto fail;
    }
    if ((size_t)n < sizeof(h)) {
        rc = mc_err(MC_EBADARENA, "%s is %zd bytes, too short to be an mcache arena", a->path, n);
        goto fail;
    }
    rc = hdr_check(&h, a->path, (uint64_t)st.st_size);
    if (rc)
        goto fail;
    /* Not populated when adopting: page tables for a large arena take
     * ~70 ms/GiB to fill; the loader fills an extent's just before loading. */
    rc = map_at(a, h.base, h.size, writable);
    if (rc)
        goto fail;
    rc = hdr_check(a->hdr, a->path, (uint64_t)st.st_size);
    if (rc) {
        mc_arena_close(a);
        return rc;
    }
    return 0;

fail:
    close(a->fd);
    a->fd = -1;
    return rc;
}

void mc_arena_close(struct mc_arena *a)
{
    if (a->base)
        munmap(a->base, a->size);
    if (a->fd >= 0)
        close(a->fd);
    a->base = NULL;
    a->hdr = NULL;
    a->fd = -1;
}

int mc_arena_retire(const char *dir, const char *cache)
{
    char path[512];
    uint64_t magic = 0;
    uint32_t state = MC_ARENA_SUPERSEDED;
    int fd, rc = mc_arena_path(dir, cache, path, sizeof(path));

    if (rc)
        return rc;
    fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
        if (pread(fd, &magic, sizeof(magic), 0) == (ssize_t)sizeof(magic) &&
            magic == MC_ARENA_MAGIC)
            /* A plain store through the file: the pages are the shared ones. */
            (void)!pwrite(fd, &state, sizeof(state), offsetof(struct mc_arena_hdr, state));
        close(fd);
    }
    rc = mc_arena_unlink(dir, cache);
    if (!rc) {
        char rpath[600];
        snprintf(rpath, sizeof(rpath), "%s.readers", path);
        unlink(rpath);
    }
    return rc;
}

int mc_arena_unlink(const char *dir, const char *cache)
{
    char path[512];
    int rc = mc_arena_path(dir, cache, path, sizeof(path));

    if (rc)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT)
        return mc_err(mc_err_from_errno(errno), "removing arena %s: %s", path, strerror(errno));
    return 0;
}
