/*
 * readers.c - the reader table (see readers.h).
 */
#include "common/clock.h"
#include "shm/readers.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "shm/arena.h"
#include "shm/atomic.h"
#include "common/err.h"

static int readers_path(const char *dir, const char *cache, char *buf, size_t len)
{
    char ap[512];
    int rc = mc_arena_path(dir, cache, ap, sizeof(ap));

    if (rc)
        return rc;
    if ((size_t)snprintf(buf, len, "%s.readers", ap) >= len)
        return mc_err(MC_EINVAL, "reader table path for %s is too long", ap);
    return 0;
}

/* Bytes the table needs, rounded up to the page size backing dir: a
 * hugetlbfs file can only be sized in whole huge pages. */
static size_t rows_off(uint32_t nslots)
{
    size_t end = MC_READERS_HDR + (size_t)nslots * (sizeof(struct mc_slot) +
                                                    sizeof(struct mc_row_used));

    return (end + MC_ROW_BLOCK - 1) / MC_ROW_BLOCK * MC_ROW_BLOCK;
}

static size_t readers_need(uint32_t nslots)
{
    return rows_off(nslots) + (size_t)nslots * MC_ROW_BLOCKS * MC_ROW_BLOCK;
}

static size_t readers_size(const char *dir, uint32_t nslots)
{
    size_t need = readers_need(nslots);
    uint64_t page = 4096;
    uint32_t backing;

    if (mc_backing_detect(dir ? dir : MC_DEFAULT_SHM_DIR, &page, &backing) != 0)
        page = 4096;
    return (need + page - 1) / page * page;
}

static int readers_map(struct mc_readers *r, const char *path, size_t size)
{
    r->map_size = size;
    void *p = mmap(NULL, r->map_size, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd, 0);

    if (p == MAP_FAILED)
        return mc_err(mc_err_from_errno(errno), "mapping reader table %s: %s", path,
                      strerror(errno));
    r->hdr = p;
    r->slots = (struct mc_slot *)((uint8_t *)p + MC_READERS_HDR);
    r->used = (struct mc_row_used *)(r->slots + r->nslots);
    r->rows = (uint8_t *)p + rows_off(r->nslots);
    r->owned = calloc(r->nslots, 1);
    if (!r->owned) {
        munmap(p, r->map_size);
        return mc_err(MC_ENOMEM, "reader table: out of memory");
    }
    pthread_mutex_init(&r->mu, NULL);
    return 0;
}

int mc_readers_create(const char *dir, const char *cache, uint32_t nslots, unsigned mode,
                      uint64_t arena_created_ns, struct mc_readers *r)
{
    char path[600], tmp[640];
    struct mc_readers_hdr *h;
    int rc;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    if (nslots == 0)
        nslots = MC_READER_SLOTS;
    if (nslots > MC_READER_SLOTS_MAX)
        return mc_err(MC_EINVAL, "reader slots %u exceed the maximum of %u", nslots,
                      MC_READER_SLOTS_MAX);
    rc = readers_path(dir, cache, path, sizeof(path));
    if (rc)
        return rc;
    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    r->fd = open(tmp, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (r->fd < 0)
        return mc_err(mc_err_from_errno(errno), "creating reader table %s: %s", tmp,
                      strerror(errno));
    r->nslots = nslots;
    size_t size = readers_size(dir, nslots);
    if (fchmod(r->fd, mode ? mode : 0660) != 0 || ftruncate(r->fd, (off_t)size) != 0) {
        rc = mc_err(mc_err_from_errno(errno), "sizing reader table %s to %zu bytes: %s", tmp,
                    size, strerror(errno));
        goto fail;
    }
    rc = readers_map(r, tmp, size);
    if (rc)
        goto fail;
    h = r->hdr;
    h->format = MC_ARENA_FORMAT;
    h->nslots = nslots;
    h->arena_created_ns = arena_created_ns;
    h->magic = MC_READERS_MAGIC;
    if (rename(tmp, path) != 0) {
        rc = mc_err(mc_err_from_errno(errno), "publishing reader table %s: %s", path,
                    strerror(errno));
        mc_readers_close(r);
        unlink(tmp);
        return rc;
    }
    return 0;
fail:
    close(r->fd);
    r->fd = -1;
    unlink(tmp);
    return rc;
}

int mc_readers_open(const char *dir, const char *cache, uint64_t arena_created_ns,
                    struct mc_readers *r)
{
    struct mc_readers_hdr h;
    char path[600];
    struct stat st;
    int rc;

    memset(r, 0, sizeof(*r));
    r->fd = -1;
    rc = readers_path(dir, cache, path, sizeof(path));
    if (rc)
        return rc;
    r->fd = open(path, O_RDWR | O_CLOEXEC | O_NONBLOCK); /* a FIFO must not hang it */
    if (r->fd < 0) {
        int e = errno;
        if (e == EACCES)
            return mc_access_denied("reader table", path);
        return mc_err(mc_err_from_errno(e), "opening reader table %s: %s", path, strerror(e));
    }
    if (fstat(r->fd, &st) != 0 || !S_ISREG(st.st_mode) ||
        pread(r->fd, &h, sizeof(h), 0) != (ssize_t)sizeof(h)) {
        rc = mc_err(MC_EBADARENA, "reader table %s is too short or not a regular file", path);
        goto fail;
    }
    if (h.magic != MC_READERS_MAGIC || h.format != MC_ARENA_FORMAT || h.nslots == 0 ||
        h.nslots > MC_READER_SLOTS_MAX ||
        (uint64_t)st.st_size < readers_need(h.nslots)) {
        rc = mc_err(MC_EBADARENA, "%s is not a reader table of format %u", path,
                    MC_ARENA_FORMAT);
        goto fail;
    }
    if (h.arena_created_ns != arena_created_ns) {
        rc = mc_err(MC_ESTALE, "reader table %s belongs to another arena; mcached is replacing "
                               "it, try again",
                    path);
        goto fail;
    }
    r->nslots = h.nslots;
    rc = readers_map(r, path, (size_t)st.st_size);
    if (rc)
        goto fail;
    return 0;
fail:
    close(r->fd);
    r->fd = -1;
    return rc;
}

void mc_readers_close(struct mc_readers *r)
{
    if (r->hdr) {
        munmap(r->hdr, r->map_size);
        free(r->owned);
        pthread_mutex_destroy(&r->mu);
    }
    if (r->fd >= 0)
        close(r->fd); /* drops every OFD lock of this description */
    memset(r, 0, sizeof(*r));
    r->fd = -1;
}

static int slot_lock(int fd, uint32_t idx, short type, int cmd)
{
    struct flock fl = {
        .l_type = type,
        .l_whence = SEEK_SET,
        .l_start = idx,
        .l_len = 1,
    };

    return fcntl(fd, cmd, &fl);
}

int mc_slot_claim(struct mc_readers *r, uint32_t *idx)
{
    pthread_mutex_lock(&r->mu);
    for (uint32_t i = 0; i < r->nslots; i++) {
        if (r->owned[i])
            continue;
        if (slot_lock(r->fd, i, F_WRLCK, F_OFD_SETLK) != 0)
            continue; /* owned by a live process */
        r->owned[i] = 1;
        pthread_mutex_unlock(&r->mu);

        struct mc_slot *s = &r->slots[i];
        /* A dead owner may have left a pin or holds: clear them before use
         * (pairs with the loader's acquire loads of pin and held[] in scan()). */
        mc_store_release(&s->pin, 0);
        for (unsigned j = 0; j < MC_SLOT_HOLDS; j++)
            mc_store_release(&s->held[j], 0);
        /* The pid last: pairs with mc_readers_live()'s acquire load of it. */
        mc_store_release_u32(&s->pid, (uint32_t)getpid());
        s->tid = (uint32_t)gettid();
        s->since_ns = mc_wall_ns();
        *idx = i;
        return 0;
    }
    pthread_mutex_unlock(&r->mu);
    return mc_err(MC_ETOOMANY,
                  "all %u reader slots of this cache are in use; restart mcached with more "
                  "--reader-slots or use fewer reading threads",
                  r->nslots);
}

void mc_slot_release(struct mc_readers *r, uint32_t idx)
{
    struct mc_slot *s = &r->slots[idx];

    /* This thread's reads of what it held come first (pairs with the
     * loader's acquire loads of pin and held[] in scan()). */
    mc_store_release(&s->pin, 0);
    for (unsigned j = 0; j < MC_SLOT_HOLDS; j++)
        mc_store_release(&s->held[j], 0);
    s->pid = 0;
    s->tid = 0;
    pthread_mutex_lock(&r->mu);
    slot_lock(r->fd, idx, F_UNLCK, F_OFD_SETLK);
    r->owned[idx] = 0;
    pthread_mutex_unlock(&r->mu);
}

int mc_readers_live(struct mc_readers *r, uint8_t *live)
{
    int count = 0;

    /*
     * A slot with pid 0 was never used or was released cleanly (its pin and
     * holds are zero). A claimer sets pid only after clearing them, so a slot
     * read as pid 0 here protects nothing, and a reader that claims it after
     * this read pins only after our unlink was visible (see reclaim.h).
     */
    for (uint32_t i = 0; i < r->nslots; i++) {
        struct flock fl = {
            .l_type = F_WRLCK,
            .l_whence = SEEK_SET,
            .l_start = i,
            .l_len = 1,
        };

        live[i] = 0;
        /* Pairs with mc_slot_claim()'s release store of the pid. */
        if (mc_load_acquire_u32(&r->slots[i].pid) == 0)
            continue;
        if (fcntl(r->fd, F_OFD_GETLK, &fl) != 0)
            return mc_err(mc_err_from_errno(errno), "checking reader slot %u: %s", i,
                          strerror(errno));
        if (fl.l_type != F_UNLCK) {
            live[i] = 1;
            count++;
        }
    }
    return count;
}
