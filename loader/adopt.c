/*
 * adopt.c - create or adopt the loader's arena (see adopt.h).
 */
#include "common/clock.h"
#include "loader/adopt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "loader/config.h"
#include "loader/log.h"
#include "common/err.h"
#include "shm/fence.h"

/*
 * Open (create: make if missing) and lock the cache's lock file into *fd;
 * MC_EBUSY naming the pid if another mcached holds it, MC_ENOENT if it does
 * not exist and create is false. The file is mcached's alone (0600): flock
 * needs no more than read access, so any user who could open it could keep
 * every mcached from serving the cache.
 */
static int lock_open(const struct mc_config *cfg, bool create, int *fd, char *path, size_t len)
{
    char pid[32] = "";

    snprintf(path, len, "%s/mcache.%s.lock", cfg->shm_dir, cfg->cache);
    *fd = open(path, O_RDWR | (create ? O_CREAT : 0) | O_CLOEXEC, 0600);
    if (*fd < 0)
        return mc_err(mc_err_from_errno(errno), "lock file %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
        ssize_t n = pread(*fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        close(*fd);
        *fd = -1;
        return mc_err(MC_EBUSY,
                      "another mcached (pid %s) already serves cache \"%s\" (%s); stop it, or "
                      "choose another --cache",
                      *pid ? pid : "?", cfg->cache, path);
    }
    return 0;
}

int mc_own_check_free(const struct mc_config *cfg)
{
    char path[600];
    int fd, rc = lock_open(cfg, false, &fd, path, sizeof(path));

    if (rc == MC_ENOENT)
        return 0; /* never served: nobody holds it */
    if (rc == 0)
        close(fd); /* drops the lock: the real one is taken later */
    return rc;
}

/*
 * A file mcached adopts must be its own: one another user made (before this
 * mcached ever ran) could still be open for writing in that user's process,
 * and what it writes there would be served unverified. Refused, not
 * repaired: the operator decides what to do with another user's file.
 */
static int own_file(int fd, const char *what, const char *path)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return mc_err(MC_EIO, "%s %s: %s", what, path, strerror(errno));
    if (st.st_uid == geteuid())
        return 0;
    return mc_err(MC_EPERM,
                  "%s %s belongs to uid %u, not to mcached's uid %u: another user made it and "
                  "may still write to it; remove it (with everything named %s.*) or choose "
                  "another --cache or a private --shm-dir",
                  what, path, (unsigned)st.st_uid, (unsigned)geteuid(), path);
}

static int take_lock(struct mc_own *o, const struct mc_config *cfg)
{
    char path[600], pid[32];
    int fd, rc = lock_open(cfg, true, &fd, path, sizeof(path));

    if (rc)
        return rc;
    if ((rc = own_file(fd, "lock file", path)) != 0) {
        close(fd);
        return rc;
    }
    if (fchmod(fd, 0600) != 0) /* one an older mcached left 0644 */
        log_warn("cannot make %s private (mode 0600): %s", path, strerror(errno));
    snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    /* hugetlbfs files cannot be written: the pid is only a courtesy there. */
    if ((ftruncate(fd, 0) != 0 || pwrite(fd, pid, strlen(pid), 0) < 0) && errno != EINVAL)
        log_warn("cannot write pid to %s: %s", path, strerror(errno));
    o->lock_fd = fd;
    return 0;
}

/*
 * Who may read the arena and claim reader slots: the modes and group of
 * loader/access.h, applied to a new arena as much as to an adopted one (a
 * warm restart takes the current options, not the last run's). A reader
 * can stall reclamation (pin and never unpin) but cannot change a model's
 * bytes: the arena is never writable by readers.
 */
int mc_own_set_access(struct mc_own *o, const struct mc_access *a)
{
    char table[sizeof(o->a.path) + 16];
    int rc;

    snprintf(table, sizeof(table), "%s.readers", o->a.path);
    rc = mc_access_apply_fd(o->a.fd, o->a.path, a->file_gid, a->arena_mode);
    if (!rc)
        rc = mc_access_apply_fd(o->r.fd, table, a->file_gid, a->table_mode);
    return rc;
}

static int create(struct mc_own *o, const struct mc_config *cfg)
{
    struct mc_arena_opts ao = {
        .dir = cfg->shm_dir,
        .cache = cfg->cache,
        .size = cfg->size ? cfg->size : mc_arena_default_size(),
        .index_size = cfg->index_size,
        .base = cfg->base,
        .mode = 0600, /* mc_own_set_access() opens it up as configured */
    };
    int rc;

    rc = mc_arena_create(&ao, &o->a);
    if (rc)
        return rc;
    rc = mc_readers_create(cfg->shm_dir, cfg->cache, cfg->reader_slots, 0600,
                           o->a.hdr->created_ns, &o->r);
    if (!rc)
        rc = mc_reclaim_init(&o->rc, &o->a, &o->r, mc_table_free_record, &o->w);
    if (!rc)
        rc = mc_table_create(&o->w, &o->a, &o->rc);
    if (rc) {
        mc_reclaim_destroy(&o->rc);
        mc_readers_close(&o->r);
        mc_arena_close(&o->a);
        mc_arena_retire(cfg->shm_dir, cfg->cache);
        return rc;
    }
    return 0;
}

/* Wait until no live reader is pinned at or before epoch e. */
static int grace(struct mc_own *o, uint64_t e)
{
    uint8_t *live = calloc(o->r.nslots, 1);
    uint64_t start = mc_mono_ns(), warned = start;

    if (!live)
        return mc_err(MC_ENOMEM, "adopt: out of memory");
    for (;;) {
        int blocking = -1, n = mc_fence_loader_barrier(o->a.hdr);

        if (n == 0)
            n = mc_readers_live(&o->r, live);
        if (n < 0) {
            free(live);
            return n;
        }
        for (uint32_t i = 0; i < o->r.nslots && blocking < 0; i++) {
            /* Pairs with mc_fence_reader_unpin()'s release. */
            uint64_t pin = live[i] ? mc_load_acquire(&o->r.slots[i].pin) : 0;
            if (pin && pin <= e)
                blocking = (int)i;
        }
        if (blocking < 0)
            break;
        if (mc_mono_ns() - start > MC_ADOPT_GRACE_NS) {
            uint32_t pid = o->r.slots[blocking].pid;
            free(live);
            return mc_err(MC_EBUSY,
                          "reader pid %u (slot %d) has been inside a lookup since before the "
                          "restart for %llu s (stopped?); not adopting an arena it may still "
                          "be reading",
                          pid, blocking, (unsigned long long)(MC_ADOPT_GRACE_NS / 1000000000ull));
        }
        if (mc_mono_ns() - warned > 2000000000ull) {
            warned = mc_mono_ns();
            log_warn("adopting the arena waits for reader pid %u (slot %d), pinned since before "
                     "the restart; a stopped worker holds the loader back until it continues "
                     "or dies",
                     o->r.slots[blocking].pid, blocking);
        }
        nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL);
    }
    free(live);
    return 0;
}

static int adopt(struct mc_own *o, const struct mc_config *cfg)
{
    uint8_t *live;
    uint64_t *held, e;
    size_t nheld = 0;
    int rc;

    rc = mc_readers_open(cfg->shm_dir, cfg->cache, o->a.hdr->created_ns, &o->r);
    if (rc == 0) { /* another user's table is replaced with the arena (mc_own_arena) */
        char path[sizeof(o->a.path) + 16];

        snprintf(path, sizeof(path), "%s.readers", o->a.path);
        if ((rc = own_file(o->r.fd, "reader table", path)) != 0) {
            mc_readers_close(&o->r);
            return rc;
        }
    }
    if (rc && rc != MC_ENOENT && rc != MC_EBADARENA && rc != MC_ESTALE)
        return rc; /* live workers may be using it: never replace it on a passing error */
    if (rc) {
        log_warn("reader table unusable (%s): recreating it", mc_last_error());
        rc = mc_readers_create(cfg->shm_dir, cfg->cache, cfg->reader_slots, 0600,
                               o->a.hdr->created_ns, &o->r);
        if (rc)
            return rc;
    }
    rc = mc_reclaim_init(&o->rc, &o->a, &o->r, mc_table_free_record, &o->w);
    if (!rc)
        rc = mc_table_adopt(&o->w, &o->a, &o->rc);
    if (rc)
        return rc;
    if (mc_load_relaxed_u32(&o->a.hdr->fence) == MC_FENCE_MEMBARRIER &&
        !mc_fence_loader_supported())
        return mc_err(MC_ENOTSUP, "the arena's readers rely on membarrier(2), which this "
                                  "process cannot issue (seccomp?)");
    /* One grace period, then rebuild the allocators from what is reachable. */
    e = o->a.hdr->epoch;
    mc_reclaim_advance(&o->rc);
    rc = grace(o, e);
    if (rc)
        return rc;
    live = calloc(o->r.nslots, 1);
    held = calloc((size_t)o->r.nslots * MC_SLOT_HOLDS, sizeof(uint64_t));
    if (!live || !held) {
        free(live);
        free(held);
        return mc_err(MC_ENOMEM, "adopt: out of memory");
    }
    rc = mc_readers_live(&o->r, live);
    for (uint32_t i = 0; rc >= 0 && i < o->r.nslots; i++)
        for (unsigned j = 0; live[i] && j < MC_SLOT_HOLDS; j++) {
            /* Pairs with mc_release()'s release (and the unpin's after a hold). */
            uint64_t h = mc_load_acquire(&o->r.slots[i].held[j]);
            if (h)
                held[nheld++] = h;
        }
    if (rc >= 0)
        rc = mc_table_rebuild_allocators(&o->w, held, nheld);
    free(live);
    free(held);
    return rc;
}

/* An adopted arena keeps its size and address: say so if cfg asked for others. */
static void warn_kept(const struct mc_arena_hdr *h, const struct mc_config *cfg)
{
    if (cfg->size && cfg->size != h->size)
        log_warn("the existing arena is %llu bytes; --size %llu takes effect only with "
                 "--recreate",
                 (unsigned long long)h->size, (unsigned long long)cfg->size);
    if (cfg->base && cfg->base != h->base)
        log_warn("the existing arena is at 0x%llx; --base 0x%llx takes effect only with "
                 "--recreate",
                 (unsigned long long)h->base, (unsigned long long)cfg->base);
}

int mc_own_arena(struct mc_own *o, const struct mc_config *cfg, const struct mc_access *acc)
{
    uint64_t t0 = mc_mono_ns();
    int rc;

    memset(o, 0, sizeof(*o));
    o->lock_fd = -1;
    o->a.fd = -1;
    rc = take_lock(o, cfg);
    if (rc)
        return rc;
    if (cfg->recreate)
        mc_arena_retire(cfg->shm_dir, cfg->cache);
    rc = mc_arena_open(cfg->shm_dir, cfg->cache, true, &o->a);
    if (rc == MC_EFORMAT || rc == MC_EBADARENA) {
        log_warn("%s; replacing it with a new arena (workers attached to the old one keep what "
                 "they hold and must re-attach)",
                 mc_last_error());
        mc_arena_retire(cfg->shm_dir, cfg->cache);
        rc = MC_ENOENT;
    }
    if (rc == MC_ENOENT) {
        rc = create(o, cfg);
    } else if (rc == 0 && (rc = own_file(o->a.fd, "arena", o->a.path)) != 0) {
        mc_arena_close(&o->a);
    } else if (rc == 0) {
        o->adopted = true;
        warn_kept(o->a.hdr, cfg);
        rc = adopt(o, cfg);
        if (rc) {
            log_error("cannot adopt the existing arena (%s); replacing it", mc_last_error());
            mc_reclaim_destroy(&o->rc);
            mc_readers_close(&o->r);
            mc_arena_close(&o->a);
            mc_arena_retire(cfg->shm_dir, cfg->cache);
            o->adopted = false;
            rc = create(o, cfg);
        }
    }
    if (rc) {
        close(o->lock_fd);
        o->lock_fd = -1;
        return rc;
    }
    /* Serving with other modes than asked for could open it to more users than meant. */
    rc = mc_own_set_access(o, acc);
    if (rc) {
        mc_own_release(o);
        return rc;
    }
    o->a.hdr->loader_pid = (uint32_t)getpid();
    o->a.hdr->loader_since_ns = mc_wall_ns();
    o->adopt_ns = mc_mono_ns() - t0;
    /* Serving: pairs with mc_attach_dir()'s acquire load of the state. */
    mc_store_release_u32(&o->a.hdr->state, MC_ARENA_READY);
    return 0;
}

void mc_own_release(struct mc_own *o)
{
    if (o->a.hdr) {
        /* Free what no reader holds any more; the rest the next loader finds. */
        mc_reclaim_poll(&o->rc);
        o->a.hdr->loader_pid = 0;
    }
    mc_reclaim_destroy(&o->rc);
    mc_readers_close(&o->r);
    mc_arena_close(&o->a);
    if (o->lock_fd >= 0)
        close(o->lock_fd);
    o->lock_fd = -1;
}
