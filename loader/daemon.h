/*
 * daemon.h - mcached's state: the registry it mirrors, the arena it owns,
 * the loads in flight, and the clients waiting for them.
 *
 * Single-threaded: one event loop (main.c) drives everything, so nothing
 * here takes a lock. The registry on disk is the truth; the daemon mirrors
 * every READY version into the arena as a record (REGISTERED until loaded),
 * loads what is aliased, pinned or marked for preloading as capacity
 * allows, loads anything else on request, and evicts the least recently
 * used model that is neither aliased, pinned nor held when it needs room.
 *
 *   main.c        options, the SIGHUP re-read, the event loop, main()
 *   lifecycle.c   daemon_start, daemon_stop
 *   mirror.c      the version map; mirroring the registry (daemon_sync),
 *                 the arena's aliases and blue-green moves
 *   load_queue.c  the load queue, eviction for room, starting loads and
 *                 publishing them (daemon_load_done)
 *   daemon.c      failures, waiters, a version's arena record, the tick
 *   ops.c         the control requests
 *   notify.c      telling systemd (readiness, status, watchdog)
 *   stats.c       serving statistics: stats indices, the workers' counts, windows
 *   health.c      health checks run as children (health.h)
 *   gate.c        gated alias moves: load, verify, check, then write (gate.h)
 *   deploy.c      rollouts: the engine on the tick, the deploy ops (deploy.h)
 *   alerts.c      alerts: log, registry, counters, the --alert-cmd hook (alerts.h)
 */
#ifndef MCACHE_LOADER_DAEMON_H
#define MCACHE_LOADER_DAEMON_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "registry/registry.h"
#include "loader/adopt.h"
#include "loader/coldload.h"
#include "loader/config.h"
#include "loader/ctl.h"
#include "loader/notify.h"

enum dstate {
    D_REGISTERED, /* known, not resident */
    D_LOADING,
    D_READY,
    D_FAILED, /* last load failed; retried on request */
};

struct waiter {
    struct mc_conn *conn;
    uint64_t deadline_ns; /* 0: none */
    struct waiter *next;
};

/* One registry version, as the daemon tracks it. */
struct dver {
    char *name, *version, *path, *meta;
    char key[MC_KEY_MAX];
    uint64_t size;
    char checksum[48];
    uint32_t format;
    bool preload, pinned; /* registry flags */
    uint64_t reg_gen;     /* registry generation of the metadata in `meta` */
    unsigned aliased;     /* registry aliases pointing here */
    enum dstate st;
    uint64_t extent_off, extent_size;
    uint64_t tensors_off, tensors_size; /* safetensors: the table in the index region */
    struct mc_coldload *cl;
    uint64_t last_used_ns; /* CLOCK_MONOTONIC; see the LRU note in load_queue.c */
    uint64_t loaded_at;    /* CLOCK_REALTIME */
    uint64_t load_ns;      /* how long the last load took */
    uint64_t rec_off;      /* its record in the arena */
    char error[512];
    struct waiter *waiters;
    bool seen, queued, dropping;
    bool draining; /* gone from the registry, kept while an arena alias still serves it */
    struct dver *next;  /* hash chain */
    struct dver *qnext; /* load queue */
};

#define MC_FAILURES_KEPT 32

struct failure {
    uint64_t at;
    char what[300];
    char why[512];
};

struct health_run;
struct gate;
struct deploy_run;

struct daemon {
    struct mc_config cfg;
    struct mc_access access; /* who may read, attach, connect (from cfg's groups) */
    struct mc_own own;
    struct mc_io io;
    struct mc_ctl ctl;
    struct mc_registry *reg;
    struct mc_notify notify; /* the service manager, if any (notify.h) */
    /* The loop's own event sources carry the address of the field holding
     * their fd as epoll tag (&sfd, &ifd, &io.efd, &wfd); every other tag is ctl's. */
    int epfd, sfd, ifd;
    /* A shared registry's watch fd (mc_registry_watch_fd: postgres LISTEN), -1 none; and when
     * its generation was last checked (registry_check, main.c) */
    int wfd;
    uint64_t last_regcheck_ns;
    /* Started from the replica: the shared registry opened again on a thread of its own
     * (registry_reopen, main.c), which can wait seconds on the database; it hands the handle
     * back through efd, an eventfd in the loop's epoll set (tag &reopen.efd). */
    struct {
        pthread_t thread;
        bool busy;                  /* the thread runs; only the loop reads or writes this */
        int efd;                    /* -1 until the first attempt */
        struct mc_registry_opts ro; /* the thread's: read there, written before it starts */
        struct mc_registry *opened; /* the thread's result (NULL: still unreachable) */
    } reopen;
    struct dver **ht;
    size_t htcap, nver;
    struct dver *qhead, *qtail;
    unsigned loading;
    bool stopping; /* daemon_stop(): loads cancelled now are abandoned, not failed */
    uint64_t started_ns, started_wall;
    uint64_t syncs, evictions, requests_load;
    struct failure failures[MC_FAILURES_KEPT];
    unsigned nfailures;
    bool stop, want_sync, want_config;
    bool synced;         /* the arena mirrors the registry at synced_gen */
    uint64_t synced_gen;
    uint64_t last_tick_ns, last_stall_log_ns, last_holds_ns;
    char socket_path[256];
    uint8_t *populated; /* adopted arena: 2 MiB data units with page tables (load_queue.c) */
    struct stats *stats; /* serving statistics (stats.c) */
    /* Deployments (health.c, gate.c, deploy.c, alerts.c). */
    struct health_run *health; /* health checks running */
    struct gate *gates;        /* alias moves waiting for loads and checks */
    struct deploy_run *deploys; /* what this process knows of the running rollouts */
    uint64_t alerts_total, alerts_rollback, alerts_health, alerts_threshold, alerts_hook_failed;
    uint64_t last_deploy_ns;
};

/* Bring the daemon up: registry, arena (adopt or create), cold path, mirror, socket
 * (lifecycle.c). */
int daemon_start(struct daemon *d);

/* Stop cleanly: finish or cancel loads, reply to waiters, leave the arena for adoption
 * (lifecycle.c). */
void daemon_stop(struct daemon *d);
/* Make reg mcached's own: warnings to the log, short waits on the database (lifecycle.c). */
void daemon_registry_adopt(struct mc_registry *reg);

/* Mirror the registry into the arena (after inotify or "reload"). */
int daemon_sync(struct daemon *d, bool force);

/* Point every arena alias where the registry says; a move to a version not yet resident
 * waits for its load (blue-green). Drops removed versions no alias serves any more. */
void daemon_apply_aliases(struct daemon *d);

/* How many versions wait in the load queue. */
unsigned daemon_queued(const struct daemon *d);

/* Start queued loads while there is room and capacity. */
void daemon_schedule(struct daemon *d);

/* Periodic work: reclamation, stalls, waiter timeouts, recency sampling. */
void daemon_tick(struct daemon *d);

/* Find a version by "name@version". */
struct dver *daemon_find(struct daemon *d, const char *name, const char *version);

/* The version record at arena offset off (a reader's hold), or NULL if it is not one. */
struct mc_rec_version *daemon_record_at(struct daemon *d, uint64_t off);

/* Free a version's private memory (not its arena record). */
void dver_free(struct dver *v);

/* Queue a load (no-op if resident or loading). */
void daemon_want_load(struct daemon *d, struct dver *v);

/* Take v off the load queue (no-op if it is not queued). */
void daemon_unqueue(struct daemon *d, struct dver *v);

/* Publish v's record in the arena in state MC_STATE_* (READY: with its extent and tensors);
 * the record it replaces is retired. Sets v->rec_off. */
int daemon_put_record(struct daemon *d, struct dver *v, uint32_t state);

/* Evict a resident version (refused if pinned or loading). */
int daemon_evict(struct daemon *d, struct dver *v);
/* Does an alias in the arena still point at v (a blue-green switch in progress)? */
bool daemon_arena_target(struct daemon *d, const struct dver *v);

/* Record a failure for status. */
void daemon_failure(struct daemon *d, const char *what, const char *why);

/* The control-socket handler (ops.c). */
void daemon_request(void *ctx, struct mc_conn *c, const struct mc_request *rq);

/*
 * The actor of the registry records a request of peer uid makes (ops.c):
 * without who, "uid:N(user)" of the peer; who (mcache-serve's "token:NAME")
 * as given when the peer is mcached's own uid or root, else "WHO via
 * uid:N" (an admin of the socket cannot pass for another); from: where
 * (the HTTP peer), "local" if NULL or empty. daemon_actor_reset() puts
 * mcached's own back: call it after the change.
 */
void daemon_actor_set(struct daemon *d, uid_t uid, const char *who, const char *from);
void daemon_actor_reset(struct daemon *d);
void daemon_conn_closed(void *ctx, struct mc_conn *c);

/* The cold path's completion callback: publish or record the failure. */
void daemon_load_done(void *ctx, struct mc_coldload *cl);

/* Reply to and drop every waiter of v. */
void daemon_wake(struct daemon *d, struct dver *v, int status, const char *msg);

#endif
