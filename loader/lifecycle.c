/*
 * lifecycle.c - bringing mcached up and down (daemon_start, daemon_stop).
 *
 * Start, in this order (docs/loader.md, "Life cycle"): check every option
 * that can be checked without touching anything; block the signals the
 * loop reads from its signalfd; open the registry; adopt or create the
 * arena; the cold path; the event sources; mirror the registry into the
 * arena; and only then listen on the control socket. Ready means a client
 * that can connect sees the registry mirrored, so the mirror comes first.
 *
 * Stop: waiting clients are told, loads in flight abandoned, and the arena
 * left for the next mcached to adopt.
 *
 * A service manager hears each step as a STATUS= line (notify.c); main.c
 * says READY=1 once daemon_start() has returned, and STOPPING=1.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "index/proto.h"
#include "loader/daemon.h"
#include "loader/log.h"
#include "loader/stats.h"
#include "common/err.h"
#include "registry/s3.h"

static void reg_warn(void *arg, const char *msg)
{
    (void)arg;
    log_warn("registry: %s", msg);
}

/*
 * mcached's own registry handle: its warnings go to the log, and its changes (pin and unpin
 * from the control socket, rollouts' alias moves, deploys, alerts: all made on the loop)
 * wait at most LOOP_LOCK_WAIT_MS for another writer's lock and LOOP_STMT_MS for a statement,
 * then fail "busy" (the caller is told; the loop's own writers retry at their next tick).
 */
#define LOOP_LOCK_WAIT_MS 1000
#define LOOP_STMT_MS      2000

void daemon_registry_adopt(struct mc_registry *reg)
{
    mc_registry_set_warn(reg, reg_warn, NULL);
    mc_registry_set_deadlines(reg, LOOP_LOCK_WAIT_MS, LOOP_STMT_MS);
}

static int epoll_add(int epfd, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

/*
 * Bad options change nothing: everything that can be checked without
 * touching the store or the arena is checked first (a misspelt group or
 * cache name, a missing --shm-dir, a socket path too long, an arena too
 * small or too large used to leave a new store and arena behind, after
 * committing the arena's memory). Sets d->socket_path and d->access.
 */
static int preflight(struct daemon *d)
{
    const struct mc_config *c = &d->cfg;
    struct mc_arena_opts ao = {.dir = c->shm_dir, .cache = c->cache, .index_size = c->index_size,
                               .base = c->base};
    char arena[600];
    struct stat st;
    bool exists;
    int rc, probe;

    rc = mc_access_resolve(c->admin_group, c->reader_group, &d->access);
    if (rc)
        return rc;
    if (*c->artifacts_creds && (rc = mc_s3_creds_check(c->artifacts_creds)) != 0)
        return mc_err_prefix(MC_EINVAL, "artifacts-creds"); /* a bad option: exit 2 */
    if (stat(c->shm_dir, &st) != 0)
        return mc_err(MC_EINVAL,
                      "shm-dir \"%s\": %s; create it (on a tmpfs or hugetlbfs mount) or choose "
                      "another",
                      c->shm_dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return mc_err(MC_EINVAL,
                      "shm-dir \"%s\" is not a directory; choose one on a tmpfs or hugetlbfs "
                      "mount",
                      c->shm_dir);
    rc = mc_arena_path(c->shm_dir, c->cache, arena, sizeof(arena)); /* checks the cache name */
    if (rc)
        return rc;
    if (*c->socket)
        snprintf(d->socket_path, sizeof(d->socket_path), "%s", c->socket);
    else if ((rc = mc_ctl_default_path(c->shm_dir, c->cache, d->socket_path,
                                       sizeof(d->socket_path))))
        return rc;
    rc = mc_ctl_path_check(d->socket_path);
    if (rc)
        return rc;
    /* Another mcached on this cache, or on this socket: nothing to create. */
    rc = mc_own_check_free(c);
    if (rc)
        return rc;
    if (mc_ctl_connect(d->socket_path, &probe) == 0) {
        close(probe);
        return mc_err(MC_EEXIST,
                      "another mcached is listening on %s; stop it, or choose another --socket",
                      d->socket_path);
    }
    /* A new arena is made unless one is there to adopt (--recreate frees the old one's room). */
    exists = stat(arena, &st) == 0;
    if (c->recreate || !exists) {
        ao.size = c->size ? c->size : mc_arena_default_size();
        rc = mc_arena_check(&ao, exists ? (uint64_t)st.st_blocks * 512 : 0);
        if (rc)
            return rc; /* the message names --size or --index-size */
    }
    return 0;
}

int daemon_start(struct daemon *d)
{
    struct mc_registry_opts ro = {.flags = MC_REGISTRY_CREATE, .warn = reg_warn};
    struct mc_io_opts io = {
        .queue_depth = d->cfg.queue_depth,
        .chunk_size = d->cfg.chunk_size,
        .try_uring = d->cfg.io_uring,
        .try_fixed = d->cfg.fixed_buffers,
        .try_direct = d->cfg.direct_io,
    };
    sigset_t sigs;
    int rc;

    rc = preflight(d);
    if (rc)
        return rc;
    d->started_ns = mc_mono_ns();
    d->started_wall = mc_wall_ns();
    /* Signals wait in the signalfd from the start: SIGTERM during a long
     * arena creation stops the daemon cleanly once it is up, not midway. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (d->cfg.registry[0])
        ro.registry = d->cfg.registry;
    if (d->cfg.artifacts[0])
        ro.artifacts = d->cfg.artifacts;
    if (d->cfg.artifacts_creds[0])
        ro.artifacts_creds = d->cfg.artifacts_creds;
    mc_notify_status(&d->notify, "starting: opening the store %s", d->cfg.store);
    rc = mc_registry_open(d->cfg.store, &ro, &d->reg);
    if (rc)
        return mc_err_prefix(rc, "opening the store %s", d->cfg.store);
    daemon_registry_adopt(d->reg);
    mc_notify_status(&d->notify, "starting: adopting or creating the arena of cache \"%s\" in %s",
                     d->cfg.cache, d->cfg.shm_dir);
    rc = mc_own_arena(&d->own, &d->cfg, &d->access);
    if (rc)
        return rc;
    rc = stats_init(d);
    if (rc)
        return rc;
    if (d->own.adopted) /* mapped without MAP_POPULATE: remember what gets populated */
        d->populated = calloc(d->own.a.hdr->data_size / (2u << 20) / 8 + 1, 1);
    rc = mc_io_init(&d->io, &d->own.a, &io, daemon_load_done);
    d->io.store_dir = d->cfg.store;
    d->io.artifacts_creds = d->cfg.artifacts_creds[0] ? d->cfg.artifacts_creds : NULL;
    d->io.keep_local = d->cfg.keep_local;
    if (rc)
        return rc;
    mc_remote_sweep(&d->io);
    d->epfd = epoll_create1(EPOLL_CLOEXEC);
    d->sfd = signalfd(-1, &sigs, SFD_NONBLOCK | SFD_CLOEXEC);
    d->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (d->epfd < 0 || d->sfd < 0 || d->ifd < 0)
        return mc_err(MC_EIO, "setting up the event loop: %s", strerror(errno));
    if (inotify_add_watch(d->ifd, mc_registry_dir(d->reg),
                          IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE) < 0)
        log_warn("cannot watch %s (%s): registry changes reach mcached only via `mcache "
                 "reload`",
                 mc_registry_dir(d->reg), strerror(errno));
    epoll_add(d->epfd, d->sfd, &d->sfd);
    epoll_add(d->epfd, d->ifd, &d->ifd);
    if (d->io.efd >= 0)
        epoll_add(d->epfd, d->io.efd, &d->io.efd);
    /* A shared registry announces changes made on other hosts, which inotify cannot see. Its
     * fd can be -1 now (the database unreachable) and change later: registry_check re-adds. */
    d->wfd = mc_registry_watch_fd(d->reg);
    if (d->wfd >= 0)
        epoll_add(d->epfd, d->wfd, &d->wfd);
    d->last_regcheck_ns = mc_mono_ns();
    /* preflight() checked that it fits a sockaddr_un (108 bytes). Published
     * before the mirror: a worker's mc_get_load() finds it and waits for the
     * listen (it retries while this pid lives). */
    snprintf(d->own.a.hdr->socket, sizeof(d->own.a.hdr->socket), "%.107s", d->socket_path);
    /*
     * Ready means: a client that can connect sees the registry mirrored in
     * the arena. So mirror first, then listen (a version pushed before the
     * start used to be unknown to a worker that connected in between).
     */
    mc_notify_status(&d->notify, "starting: mirroring the registry in %s into the arena",
                     mc_registry_dir(d->reg));
    rc = daemon_sync(d, true);
    if (rc)
        log_error("initial sync failed: %s; serving what the arena holds", mc_last_error());
    mc_registry_keep_replica(d->reg); /* a shared registry's, for a start without the database */
    return mc_ctl_listen(&d->ctl, d->epfd, d->socket_path, &d->access, daemon_request,
                         daemon_conn_closed, d);
}

void daemon_stop(struct daemon *d)
{
    /* Loads in flight are abandoned (their extents are freed on adoption);
     * their records stay "registered", not "failed", for the next mcached. */
    d->stopping = true;
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next)
            daemon_wake(d, v, MC_ENODAEMON, "mcached is shutting down");
    if (d->ctl.lfd >= 0)
        mc_ctl_close(&d->ctl);
    mc_io_destroy(&d->io);
    if (d->own.a.hdr)
        mc_own_release(&d->own);
    stats_destroy(d);
    if (d->reg)
        mc_registry_keep_replica(d->reg); /* the newest, for a start without the database */
    mc_registry_close(d->reg);
    d->reg = NULL;
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i], *next; v; v = next) {
            next = v->next;
            dver_free(v);
        }
    free(d->ht);
    d->ht = NULL;
    d->htcap = 0;
    free(d->populated);
    d->populated = NULL;
    if (d->epfd >= 0)
        close(d->epfd);
    if (d->sfd >= 0)
        close(d->sfd);
    if (d->ifd >= 0)
        close(d->ifd);
}
