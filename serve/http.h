/*
 * http.h - mcache-serve's insides: the server every handler shares, one
 * request as a handler sees it, the route table, and the replies.
 *
 * mcache-serve is a process of its own beside mcached (docs/http.md says
 * why): registry operations go through the registry library as the CLI's
 * do, cache operations through mcached's control socket. HTTP traffic can
 * never slow or crash the arena's one writer.
 *
 * THREADS. libmicrohttpd runs a pool of threads (epoll). The registry
 * handle is not thread-safe: every use of srv->reg is between srv_lock()
 * and srv_unlock() (srv_lock() also refreshes it, so answers are current);
 * srv->reg itself may be replaced between two (a replica's handle, once the
 * database answers: server.c, THE REPLICA). A use that outlives the lock
 * (an artifact read from the object store) holds the handle it read through
 * (srv_reg_hold). An upload's bytes are written without the lock
 * (mc_registry_upload_*; an upload begins only on a writable handle, never
 * the replica's, so it never spans a swap).
 * libmcache's cache handle (srv->mc) is safe from any thread, but only
 * while held: every use is between srv_cache_hold() and srv_cache_put(),
 * so that a superseded arena is detached only once nothing uses it.
 *
 * A REQUEST. The core (server.c) accepts it, matches a route (router.c),
 * authenticates (bearer token, or open access on loopback), checks the
 * route's role, reads a JSON body (ROUTE_JSON, at most srv->max_json bytes)
 * or streams one to the route's body() (ROUTE_STREAM), then calls the
 * route's handler, which queues exactly one reply with reply_*(). Every
 * reply is counted for /metrics; every request whose route has ROUTE_AUDIT
 * is in the audit log with its result (reply_* records it).
 */
#ifndef MCACHE_SERVE_HTTP_H
#define MCACHE_SERVE_HTTP_H

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mcache.h"
#include "registry/registry.h"
#include "tools/cli.h"

struct MHD_Connection;
struct MHD_Daemon;
struct MHD_Response;

/* Who may do what (docs/http.md): each role may do what the ones below it may. */
enum role {
    ROLE_NONE,      /* unauthenticated: only the open routes */
    ROLE_READER,    /* GET */
    ROLE_PUBLISHER, /* push, alias, deploy, load, snapshots */
    ROLE_ADMIN,     /* rm, gc, fsck, verify, evict, pin, unpin, tokens */
};
const char *role_name(enum role r); /* "reader" ... ("none") */
int role_parse(const char *s, enum role *out); /* 0 or MC_EINVAL naming the roles */

/* ---- the server ------------------------------------------------------- */

struct srv_metrics; /* metrics.c: HTTP requests by route and status, latencies */

struct srv {
    struct cli cli; /* store, cache, shm dir, socket: as the CLI's, for clicore's helpers */
    struct mc_registry *reg; /* read and replaced only under reg_lock (THREADS) */
    pthread_mutex_t reg_lock;
    mc_cache *mc; /* attached read-only, or NULL (no arena yet: retried on use) */
    pthread_mutex_t mc_lock; /* guards mc, mc_holds, mc_stale */
    unsigned mc_holds;       /* users of mc now (srv_cache_hold) */
    bool mc_stale;           /* mc's arena is superseded: detached once mc_holds is 0 */

    bool open_access;  /* no token needed (loopback without --require-tokens, or --insecure-open) */
    size_t max_json;   /* bytes of a JSON body (default 1 MiB) */
    uint64_t max_upload; /* bytes of an artifact upload (0: no limit but the disk) */
    unsigned timeout_s;  /* idle this long, or headers not in this long: closed */
    unsigned max_conns;
    unsigned max_conns_per_ip; /* connections at once from one address (0: no limit) */
    unsigned workers;    /* ROUTE_SLOW handlers running at once, at most (--workers) */

    struct MHD_Daemon *mhd;
    struct srv_metrics *metrics;
    uint64_t started_ns; /* CLOCK_MONOTONIC */
};

/* Lock the registry and bring it up to date (a stat, a read of what is new). */
int srv_lock(struct srv *s);
void srv_unlock(struct srv *s);

/*
 * s->reg (taken under reg_lock, or within the caller's srv_lock()), kept
 * open for the caller until srv_reg_put(),
 * even once the server has swapped in another handle. Without the lock
 * only mc_registry_artifact_local() and mc_registry_artifact_read() may be
 * called on it (safe on several threads at once: registry.h).
 */
struct mc_registry *srv_reg_hold(struct srv *s);
/* Give back a hold (NULL: nothing); the last on a replaced handle closes it. */
void srv_reg_put(struct srv *s, struct mc_registry *r);

struct req;

/*
 * From a handler on its connection's thread: finish rq on a thread of its
 * own, as a ROUTE_SLOW handler runs (server.c, SLOW HANDLERS): the
 * connection is suspended, fn(rq, arg) replies (kept, queued once it
 * resumes). Counted against --workers: when they are all busy (or no
 * thread starts), a 503 is the reply, fn never runs and *started is false
 * (arg stays the caller's). The handler returns what this returns and
 * touches rq no more.
 */
int srv_defer(struct req *rq, void (*fn)(struct req *rq, void *arg), void *arg, bool *started);

/*
 * Downloads from the object store (h_artifacts.c): srv_remote_stop() cuts
 * those whose next window is still being read (their connections resumed,
 * so that the daemon can stop); srv_remote_reads() counts the window reads
 * still blocked in the store (threads that keep their registry handle).
 */
void srv_remote_stop(void);
unsigned srv_remote_reads(void);

/*
 * The cache, attached read-only on first use, held for the caller: give it
 * back with srv_cache_put() once done with it and with every model got
 * from it (a download: when its response is freed). NULL, with mc_err set,
 * if there is no arena, or (MC_ESTALE) while mcached's new arena waits for
 * the holds on the superseded one to end: answer without it then (from the
 * store, residency "unknown"). The last put of a superseded attachment
 * detaches it; the next hold attaches the new arena (server.c: THE
 * ATTACHMENT).
 */
mc_cache *srv_cache_hold(struct srv *s);
/* Give back a hold from srv_cache_hold() (NULL: nothing). */
void srv_cache_put(struct srv *s, mc_cache *c);

/* ---- a request -------------------------------------------------------- */

#define REQ_PARAMS_MAX 4

struct req {
    struct srv *srv;
    struct MHD_Connection *conn;
    const struct route *route;
    const char *method; /* "GET", "HEAD", "PUT", "POST", "DELETE" */
    const char *path;   /* as sent, not decoded */
    /* {name}-style path parameters in pattern order, percent-decoded, checked for NUL/controls */
    char *params[REQ_PARAMS_MAX];
    size_t nparams;
    enum role role;  /* what the caller may do */
    char who[80];    /* "token:NAME", "anonymous" (open access) */
    char from[64];   /* the peer: "127.0.0.1:51234", "[::1]:4321" */
    json_t *body;    /* ROUTE_JSON: the parsed object (NULL for an empty body) */
    void *state;     /* ROUTE_STREAM: the route's own, freed by its done() */
    uint64_t body_bytes;  /* what has arrived so far */
    uint64_t start_ns;    /* CLOCK_MONOTONIC, when its headers arrived */
    unsigned status;      /* the reply's, once queued */
    bool replied;
};

/* A path parameter by its name in the route's pattern ("name", "ref"...), or NULL. */
const char *req_param(const struct req *rq, const char *name);
/* A query argument (decoded) or header, or NULL. */
const char *req_query(const struct req *rq, const char *key);
const char *req_header(const struct req *rq, const char *key);
/* A boolean query argument: absent → def; "true", "1" → true; "false", "0" → false; else (empty, "yes", "TRUE") -1. */
int req_query_bool(const struct req *rq, const char *key, bool def);

/* ---- replies (each queues the one reply; returns what MHD's handler must return) ---- */

/* JSON with status; consumes j. */
int reply_json(struct req *rq, unsigned status, json_t *j);

/*
 * An error: {"error": {"code": CODE, "message": MESSAGE, "status": STATUS}}.
 * code is stable (docs/http.md lists them): "bad_request", "unauthorized",
 * "forbidden", "not_found", "conflict", "too_large", "unprocessable",
 * "unavailable", "busy", "internal", ...
 */
int reply_error(struct req *rq, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * An MC_E* code with mc_last_error()'s message, as the CLI would print it:
 * EINVAL 400 bad_request, ENOENT/ENOTRESIDENT 404 not_found, EEXIST 409 conflict,
 * EBUSY 409 busy, EPERM 403 forbidden, ENOSPC 507 no_space, ECORRUPT 422 corrupt,
 * ENODAEMON 503 no_daemon, ETIMEDOUT 504 timeout, EFAILED 422 load_failed,
 * ENOTSUP 501, anything else 500 internal.
 */
int reply_mc_error(struct req *rq, int rc);

/* A response built by the handler (downloads): headers set, status given; takes resp. */
int reply_response(struct req *rq, unsigned status, struct MHD_Response *resp);

/* ---- routes ----------------------------------------------------------- */

#define ROUTE_JSON   0x1 /* the body is a JSON object (Content-Type application/json) */
#define ROUTE_STREAM 0x2 /* the body goes to body() as it arrives */
#define ROUTE_AUDIT  0x4 /* a state change: recorded in the audit log with its result */
#define ROUTE_OPEN   0x8 /* no token needed, even when tokens are required */
/*
 * The handler may wait (on mcached, a health gate, hashing a whole artifact):
 * the core suspends the connection and runs the handler on a worker thread of
 * its own (at most --workers at once; 503 busy beyond), so the other
 * connections of its libmicrohttpd thread go on. reply_*() work the same.
 */
#define ROUTE_SLOW   0x10

struct route {
    const char *method;  /* "GET" also answers HEAD */
    const char *pattern; /* "/v1/models/{name}/versions/{ref}": {x} is one path segment */
    enum role role;      /* the least role that may call it */
    unsigned flags;
    int (*handler)(struct req *rq);
    /*
     * ROUTE_STREAM: each piece of the body; 0 or an MC_E* code. The core calls
     * body(rq, NULL, 0) once first, when the headers are in and the caller is
     * authorized, before any byte is read (begin the upload there: an error
     * then, e.g. MC_EEXIST, is replied at once with reply_mc_error, the body
     * never sent). An error from a later piece: the rest of the body is read
     * and dropped, and the core replies reply_mc_error(rc) with the message
     * mc_last_error() had then; the handler is not called. The core enforces
     * --max-upload (413) itself; the handler runs when the whole body is in.
     */
    int (*body)(struct req *rq, const char *data, size_t n);
    /* ROUTE_STREAM: always called once at the end (free rq->state; abort what did not finish) */
    void (*done)(struct req *rq);
    const char *summary; /* one line, also in the OpenAPI document */
};

/*
 * Each h_*.c has its routes in an array ending with a zero entry;
 * routes.c lists the arrays, ending with NULL.
 */
extern const struct route h_core_routes[], h_registry_routes[], h_artifact_routes[], h_cache_routes[],
    h_admin_routes[], h_status_routes[];
extern const struct route *const srv_route_groups[];

/*
 * Match method and raw path against the groups' routes: the route, with its parameters
 * decoded into params (malloc'd strings, freed by route_params_free).
 * Returns 0, MC_ENOENT (no such path: 404), or MC_EINVAL (a path that is
 * malformed: bad percent-encoding, NUL or control bytes, a ".." segment;
 * 400), and *allowed gets the methods the path has when only the method
 * is wrong (405, "GET, PUT").
 */
int route_match(const struct route *const *groups, const char *method, const char *path,
                const struct route **out, char **params, size_t *nparams, char *allowed,
                size_t allowed_len);
void route_params_free(char **params, size_t n);

/* The longest path accepted, in bytes (a longer one is refused, not truncated: 414). */
#define ROUTE_PATH_MAX 4096

#endif
