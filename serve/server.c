/*
 * server.c - mcache-serve's HTTP core: libmicrohttpd's daemon (an epoll
 * thread pool, TLS, connection and memory limits, idle timeouts), one
 * request's life from its headers to its completion, and the replies.
 *
 * A REQUEST'S LIFE. libmicrohttpd calls on_request() several times per
 * request: once when the headers are in (begin(): route, authenticate,
 * check the role, check the body's type and size), then once per piece of
 * the body (consume()), then once at the end (finish(): parse the JSON,
 * call the handler). A reply can be queued only in the first or the last
 * call (libmicrohttpd refuses one in between), so a refusal decided while
 * the body arrives (too large, the upload failed) is kept and sent at the
 * end, the rest of the body read and dropped. A failed or refused state
 * change (ROUTE_AUDIT) is recorded in the audit log as its error reply is
 * queued, unless it is a 401 (see audited()). on_completed() runs once the reply is sent or the connection
 * dies: it counts the request for /metrics, calls the route's done() and
 * frees everything.
 *
 * THE PATH. Our unescape callback leaves the path as sent (router.c splits
 * it before decoding). libmicrohttpd uses the same callback for the query
 * string, so req_query() decodes arguments itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "serve/core.h"

/* Bytes of a connection's memory pool (srv_start says why this much). */
#define CONN_MEMORY (64 * 1024)

struct alloc {
    struct alloc *next;
    char s[];
};

/* One request: what handlers see (rq, first so a struct req * is one of these) and the rest. */
struct rstate {
    struct req rq;
    int phase;         /* 0: headers not yet seen, 1: reading the body */
    bool has_body;     /* Content-Length > 0 or chunked */
    bool drop;         /* read the rest of the body and drop it (a reply is decided) */
    bool stream_begun; /* ROUTE_STREAM: body(rq, NULL, 0) was called */
    char *buf;         /* ROUTE_JSON: the body so far */
    size_t len, cap;
    unsigned defer_status; /* a refusal decided while the body arrived, sent at the end */
    char defer_code[32];
    int defer_rc; /* ...or an MC_E* code from the route's body(), for reply_mc_error */
    char *defer_msg;
    char *errmsg;         /* the error reply's message, for the log and the audit log */
    struct alloc *allocs; /* decoded query arguments */
    bool audited;         /* this failure is in the audit log */
    char *path, *method;  /* rq->path, rq->method: our copies, valid until on_completed's end */
    const char *metric_route; /* a 405's route pattern, for /metrics (rq->route is NULL then) */
    bool slow;            /* ROUTE_SLOW: handed to a worker thread, the connection suspended */
    bool in_worker;       /* replies are kept in held, queued once the connection resumes */
    struct MHD_Response *held;
    unsigned held_status;
    void (*slow_fn)(struct req *rq, void *arg); /* what the worker runs (srv_defer) */
    void *slow_arg;
};

void srv_log(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    /* A client's bytes (a path, a name in a message) never forge a log line or a terminal code. */
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    fprintf(stderr, "mcache-serve: %s\n", buf);
}

/*
 * Listening on an address that is not loopback (with --insecure-open when
 * access is open): a Host or Origin that is any IP literal is this
 * server's too (see site_refused()).
 */
static bool listen_any_ip;

/* ---- the registry and the cache ------------------------------------------ */

/* Does this thread hold the registry (between srv_lock and srv_unlock)? */
static __thread bool reg_held;

/*
 * A SHARED REGISTRY THAT STOPS ANSWERING. With --registry postgres://...,
 * a refresh that cannot reach the database (MC_EIO) does not fail every
 * request: the handle keeps the state it last applied, so reads are
 * answered from it, while every change still refuses (the registry syncs
 * with the database before it writes: 503, naming the database). While it
 * is down a request retries the database at most once per REG_RETRY_NS,
 * so an unreachable database costs one failed connection per second, not
 * one per request. reg_down holds why (under reg_lock; "" when up);
 * srv_registry_down() copies it for /readyz and the handlers.
 */
#define REG_RETRY_NS 1000000000ull
#define REOPEN_NS    2000000000ull /* THE REPLICA, below: a reopening attempt at most this often */
static char reg_down[1024];
static uint64_t reg_down_since_ns, reg_down_tried_ns;

static int refresh(struct srv *s)
{
    uint64_t now = mc_mono_ns();
    int rc;

    if (reg_down[0] && now - reg_down_tried_ns < REG_RETRY_NS)
        return 0; /* still down: the last state, as below */
    rc = mc_registry_refresh(s->reg, NULL);
    if (rc == MC_EIO && s->cli.registry) {
        if (!reg_down[0]) {
            reg_down_since_ns = now;
            srv_log("the registry database cannot be reached: %s; answering reads from "
                    "generation %llu as last seen, refusing changes until it answers",
                    mc_last_error(), (unsigned long long)mc_registry_generation(s->reg));
        }
        snprintf(reg_down, sizeof(reg_down), "%s", mc_last_error());
        reg_down_tried_ns = now;
        return 0;
    }
    if (rc == 0 && reg_down[0]) {
        srv_log("the registry database answers again (after %.1f s); at generation %llu",
                (double)(now - reg_down_since_ns) / 1e9,
                (unsigned long long)mc_registry_generation(s->reg));
        reg_down[0] = '\0';
    }
    return rc;
}

int srv_registry_down(struct srv *s, char *buf, size_t len)
{
    bool held = reg_held; /* the caller's srv_lock() covers what is read below already */
    const char *off;
    int down = 1;

    buf[0] = '\0';
    if (!held)
        pthread_mutex_lock(&s->reg_lock);
    off = mc_registry_offline(s->reg); /* until the replica's handle is replaced (below) */
    if (off)
        snprintf(buf, len,
                 "the registry database was unreachable when mcache-serve started (%s): it "
                 "answers reads from this host's replica of generation %llu, read-only, and "
                 "refuses changes; it tries the database again every %u s and serves it once "
                 "it answers: bring the database back or check the network to it",
                 off, (unsigned long long)mc_registry_generation(s->reg),
                 (unsigned)(REOPEN_NS / 1000000000ull));
    else if (reg_down[0])
        snprintf(buf, len,
                 "the registry database has not answered for %.0f s (%s): reads are answered "
                 "from generation %llu as last seen, changes are refused until it answers "
                 "(retried every second); bring the database back or check the network to it",
                 (double)(mc_mono_ns() - reg_down_since_ns) / 1e9, reg_down,
                 (unsigned long long)mc_registry_generation(s->reg));
    else
        down = 0;
    if (!held)
        pthread_mutex_unlock(&s->reg_lock);
    return down;
}

/*
 * HOLDS. A use of the registry without srv_lock() (a download streaming
 * from the object store, verify hashing an artifact) takes a hold (briefly
 * under reg_lock) and reads through the handle it got, without the lock: only
 * mc_registry_artifact_local() and mc_registry_artifact_read(), which may
 * run on several threads at once (registry.h). The handle may be replaced
 * meanwhile (THE REPLICA, below): one that still has holds is retired, and
 * the last srv_reg_put() closes it. hold_lock guards the counts and the
 * retired handle; s->reg itself changes only under reg_lock.
 */
static pthread_mutex_t hold_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned reg_holds;              /* on s->reg */
static struct mc_registry *reg_retired; /* a replaced handle still held, or NULL */
static unsigned reg_retired_holds;

struct mc_registry *srv_reg_hold(struct srv *s)
{
    bool held = reg_held; /* within the caller's srv_lock() already */
    struct mc_registry *r;

    if (!held)
        pthread_mutex_lock(&s->reg_lock); /* s->reg does not move while it is held */
    pthread_mutex_lock(&hold_lock);
    reg_holds++;
    r = s->reg;
    pthread_mutex_unlock(&hold_lock);
    if (!held)
        pthread_mutex_unlock(&s->reg_lock);
    return r;
}

void srv_reg_put(struct srv *s, struct mc_registry *r)
{
    struct mc_registry *last = NULL;

    (void)s;
    if (!r)
        return;
    pthread_mutex_lock(&hold_lock);
    if (r == reg_retired) {
        if (--reg_retired_holds == 0) {
            last = reg_retired;
            reg_retired = NULL;
        }
    } else {
        reg_holds--;
    }
    pthread_mutex_unlock(&hold_lock);
    if (last) {
        mc_registry_close(last);
        srv_log("the replaced registry handle is closed: the last read through it ended");
    }
}

/*
 * THE REPLICA. With --registry postgres://... and the database unreachable
 * at the start, the handle serves this host's replica, read-only
 * (mc_registry_offline()). As mcached does (loader/main.c,
 * registry_reopen), a thread of its own, off the request threads, opens the
 * registry again every REOPEN_NS (an attempt waits on a database that does
 * not answer for its connect timeout: never a request's time) and, once the
 * database answers, swaps the new handle in under reg_lock, which every
 * user of s->reg holds; a handle still held (HOLDS) is closed by its last
 * put. Then writes work and /readyz is 200 again, without a restart. It
 * ends at the swap, or at srv_stop() (which waits for an attempt under way).
 */
static struct {
    pthread_t thread;
    bool running;
    bool stop; /* under lock; read under reg_lock too before a swap */
    pthread_mutex_t lock;
    pthread_cond_t cond;
} reopen = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void quiet_warn(void *arg, const char *msg)
{
    (void)arg, (void)msg; /* each attempt would warn that it fell back to the replica again */
}

/* Wait REOPEN_NS, or until srv_stop(); true to stop. */
static bool reopen_wait(void)
{
    struct timespec ts;
    bool stop;

    clock_gettime(CLOCK_REALTIME, &ts); /* the condition variable's clock */
    ts.tv_sec += (time_t)(REOPEN_NS / 1000000000ull);
    pthread_mutex_lock(&reopen.lock);
    while (!reopen.stop && pthread_cond_timedwait(&reopen.cond, &reopen.lock, &ts) == 0)
        ;
    stop = reopen.stop;
    pthread_mutex_unlock(&reopen.lock);
    return stop;
}

static void *reopen_main(void *arg)
{
    struct srv *s = arg;
    struct mc_registry_opts ro = cli_registry_opts(&s->cli, MC_REGISTRY_CREATE);
    struct mc_registry *n, *old;
    uint64_t t0 = mc_mono_ns(), gen;
    unsigned tries = 0, held = 0;
    bool stop;

    ro.warn = quiet_warn;
    while (!reopen_wait()) {
        n = NULL;
        tries++;
        if (mc_registry_open(s->cli.store, &ro, &n) != 0)
            continue; /* unreachable without a replica now, or another failure: next time */
        if (mc_registry_offline(n)) {
            mc_registry_close(n);
            continue;
        }
        pthread_mutex_lock(&s->reg_lock);
        pthread_mutex_lock(&reopen.lock);
        stop = reopen.stop;
        pthread_mutex_unlock(&reopen.lock);
        if (stop) {
            pthread_mutex_unlock(&s->reg_lock);
            mc_registry_close(n);
            break;
        }
        pthread_mutex_lock(&hold_lock);
        old = s->reg;
        s->reg = n;
        if (reg_holds) { /* downloads still read through it: their last put closes it */
            held = reg_holds;
            reg_retired = old;
            reg_retired_holds = reg_holds;
            reg_holds = 0;
            old = NULL;
        }
        pthread_mutex_unlock(&hold_lock);
        gen = mc_registry_generation(n);
        reg_down[0] = '\0';
        pthread_mutex_unlock(&s->reg_lock);
        mc_registry_close(old);
        srv_log("the registry database answers (after %.1f s, %u tries): serving it at "
                "generation %llu instead of this host's replica; changes are accepted again",
                (double)(mc_mono_ns() - t0) / 1e9, tries, (unsigned long long)gen);
        if (held)
            srv_log("reads from the object store still going through the replica's handle "
                    "(downloads, verify): %u; it is closed after the last",
                    held);
        break;
    }
    return NULL;
}

/* From the start on a replica: try the database again in the background (THE REPLICA). */
static void reopen_start(struct srv *s)
{
    reopen.stop = false;
    if (!s->cli.registry || !mc_registry_offline(s->reg))
        return;
    if (pthread_create(&reopen.thread, NULL, reopen_main, s) != 0) {
        srv_log("cannot start the thread that reopens the registry: %s; restart mcache-serve "
                "once the database answers",
                strerror(errno));
        return;
    }
    reopen.running = true;
}

static void reopen_end(void)
{
    if (!reopen.running)
        return;
    pthread_mutex_lock(&reopen.lock);
    reopen.stop = true;
    pthread_cond_signal(&reopen.cond);
    pthread_mutex_unlock(&reopen.lock);
    pthread_join(reopen.thread, NULL); /* an attempt under way: its connect timeout at most */
    reopen.running = false;
}

int srv_lock(struct srv *s)
{
    int rc;

    /* An error-checking mutex: a handler that locks twice gets an error, not a hang. */
    if (pthread_mutex_lock(&s->reg_lock) != 0) {
        srv_log("a request locked the registry twice (a bug); refused");
        return mc_err(MC_EBUSY, "the registry is already locked by this request (a bug in "
                                "mcache-serve; please report it)");
    }
    /* Other processes (the CLI, mcached, other hosts) change the registry: answer its current
     * state. */
    rc = refresh(s);
    if (rc) {
        pthread_mutex_unlock(&s->reg_lock);
        return rc;
    }
    reg_held = true;
    return 0;
}

void srv_unlock(struct srv *s)
{
    reg_held = false;
    pthread_mutex_unlock(&s->reg_lock);
}

/*
 * THE ATTACHMENT. srv->mc is one read-only attachment of the cache's arena
 * (libmcache allows one per cache per process: a second would need the
 * same fixed address). When mcached makes a new arena (--recreate, an
 * upgrade), the old one is superseded: its memory stays valid and its
 * versions immutable, but mc_get() answers MC_ESTALE and the new arena can
 * be attached only once the old attachment is detached. mc_detach() unmaps
 * the arena and frees the handles and reader slots of every thread, so it
 * must not run while any thread still uses it: a download sending from it
 * until libmicrohttpd frees its response, a status page walking its reader
 * table, a residency lookup.
 *
 * So every use is a counted hold, taken and given back under mc_lock
 * (srv_cache_hold, srv_cache_put). Once the attachment is found stale it is
 * no longer handed out: new users get NULL (downloads come from the store,
 * residency is "unknown", /readyz is 503 saying why) while the holds drain;
 * the put that gives back the last hold detaches it, and the next hold
 * attaches the new arena. The mutex orders the detach before any use of the
 * next attachment, and after every use of the old one (each ends with its
 * put): no thread touches an mc_cache, or a thread state libmcache keeps for
 * it, while another detaches it.
 */

/*
 * Is the attached arena superseded? mc_get() checks the arena's state
 * before it looks a name up, so asking for a name that cannot exist costs a
 * pin and an unpin, no system call, and answers MC_ESTALE exactly then.
 */
static bool cache_stale(mc_cache *c)
{
    mc_model *m = NULL;
    int rc = mc_get(c, "mcache-serve-probe", "0.0.0", &m);

    if (rc == 0)
        mc_release(m);
    return rc == MC_ESTALE;
}

/* Under mc_lock, with no hold left: detach the superseded attachment. */
static void cache_detach_stale(struct srv *s)
{
    mc_detach(s->mc);
    s->mc = NULL;
    s->mc_stale = false;
    srv_log("the arena of cache \"%s\" was replaced (mcached made a new one): detached the old "
            "one, attaching the new one",
            s->cli.cache);
}

mc_cache *srv_cache_hold(struct srv *s)
{
    mc_cache *c;
    unsigned holds;
    int rc;

    pthread_mutex_lock(&s->mc_lock);
    if (s->mc && !s->mc_stale && cache_stale(s->mc)) {
        s->mc_stale = true;
        if (s->mc_holds)
            srv_log("the arena of cache \"%s\" was replaced (mcached made a new one); attaching "
                    "to the new one once the requests still using the old one (%u now) are done; "
                    "until then artifacts come from the store",
                    s->cli.cache, s->mc_holds);
    }
    if (s->mc_stale && s->mc_holds == 0)
        cache_detach_stale(s);
    if (s->mc_stale) {
        holds = s->mc_holds;
        pthread_mutex_unlock(&s->mc_lock);
        mc_err(MC_ESTALE,
               "the arena of cache \"%s\" was replaced by a new mcached; mcache-serve attaches "
               "to the new one once the requests still using the old one (%u now: downloads from "
               "it) are done; until then artifacts come from the store",
               s->cli.cache, holds);
        return NULL;
    }
    if (!s->mc) {
        rc = mc_attach_dir(s->cli.shm_dir, s->cli.cache, &s->mc);
        if (rc)
            s->mc = NULL; /* mc_attach's message names the cache, the directory and mcached */
    }
    c = s->mc;
    if (c)
        s->mc_holds++;
    pthread_mutex_unlock(&s->mc_lock);
    return c;
}

void srv_cache_put(struct srv *s, mc_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&s->mc_lock);
    if (c == s->mc && s->mc_holds > 0 && --s->mc_holds == 0 && s->mc_stale)
        cache_detach_stale(s);
    pthread_mutex_unlock(&s->mc_lock);
}

/* ---- a request's inputs --------------------------------------------------- */

static struct rstate *state_of(const struct req *rq)
{
    return (struct rstate *)rq;
}

const char *req_param(const struct req *rq, const char *name)
{
    const char *p;
    size_t i = 0, nl = strlen(name);

    if (!rq->route)
        return NULL;
    for (p = rq->route->pattern; (p = strchr(p, '{')); p++, i++) {
        const char *e = strchr(p, '}');

        if (!e)
            break;
        if ((size_t)(e - p - 1) == nl && !memcmp(p + 1, name, nl))
            return i < rq->nparams ? rq->params[i] : NULL;
    }
    return NULL;
}

const char *req_query(const struct req *rq, const char *key)
{
    struct rstate *st = state_of(rq);
    const char *v = MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, key);
    struct alloc *a;
    size_t n;

    if (!v)
        return NULL;
    n = strlen(v);
    a = malloc(sizeof(*a) + n + 1);
    if (!a)
        return NULL;
    http_query_decode(v, a->s);
    a->next = st->allocs;
    st->allocs = a;
    return a->s;
}

const char *req_header(const struct req *rq, const char *key)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, key);
}

int req_query_bool(const struct req *rq, const char *key, bool def)
{
    const char *v = req_query(rq, key);

    if (!v)
        return def;
    /* Strict: a script that leaves ?force= empty, or writes "yes", must not delete by surprise. */
    if (!strcmp(v, "1") || !strcmp(v, "true"))
        return 1;
    if (!strcmp(v, "0") || !strcmp(v, "false"))
        return 0;
    return -1;
}

/* ---- replies --------------------------------------------------------------- */

static int hold_reply(struct rstate *st, unsigned status, struct MHD_Response *resp);

static int queue(struct req *rq, unsigned status, struct MHD_Response *resp)
{
    enum MHD_Result r;

    if (!resp)
        return MHD_NO;
    if (state_of(rq)->in_worker)
        return hold_reply(state_of(rq), status, resp);
    if (rq->replied) {
        /* A handler bug: the first reply stands. */
        srv_log("%s %s: a second reply (%u) after %u was dropped", rq->method, rq->path, status,
                rq->status);
        MHD_destroy_response(resp);
        return MHD_YES;
    }
    r = MHD_queue_response(rq->conn, status, resp);
    MHD_destroy_response(resp);
    rq->replied = true;
    rq->status = status;
    return r;
}

int reply_response(struct req *rq, unsigned status, struct MHD_Response *resp)
{
    return queue(rq, status, resp);
}

static struct MHD_Response *json_response(json_t *j)
{
    char *text = json_dumps(j, JSON_COMPACT);
    struct MHD_Response *resp;
    size_t n;

    json_decref(j);
    if (!text)
        return NULL;
    n = strlen(text);
    text[n] = '\n'; /* the terminator becomes a final newline: curl output ends its line */
    resp = MHD_create_response_from_buffer(n + 1, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    return resp;
}

int reply_json(struct req *rq, unsigned status, json_t *j)
{
    if (!j)
        return reply_error(rq, 500, "internal", "out of memory building the reply");
    return queue(rq, status, json_response(j));
}

/*
 * A state change that failed or was refused goes to the audit log: who
 * tried what, from where, and the error. Recorded as the reply is queued, so
 * a client that has its answer finds the entry; unless this thread holds
 * the registry (a handler replying under srv_lock(): recording then would
 * change the state under its feet), when on_completed() records it.
 */
static void audit_failure(struct rstate *st)
{
    struct req *rq = &st->rq;
    struct srv *s = rq->srv;
    char what[600], result[1100];

    st->audited = true;
    snprintf(what, sizeof(what), "%s %.500s", rq->method, rq->path);
    snprintf(result, sizeof(result), "error: %.1000s",
             st->errmsg ? st->errmsg : "the request failed");
    if (srv_lock(s) != 0) {
        srv_log("could not record \"%s\" in the audit log: %s", what, mc_last_error());
        return;
    }
    mc_registry_set_actor(s->reg, rq->who, rq->from);
    if (mc_registry_audit_add(s->reg, what, result, NULL) != 0)
        srv_log("could not record \"%s\" in the audit log: %s", what, mc_last_error());
    srv_unlock(s);
}

/*
 * Which failures go to the audit log: those of a state change (ROUTE_AUDIT)
 * by a caller we know, a token's 403 included. Not a 401: anyone can send
 * one, and each record is an fsync'd journal entry that also wakes mcached
 * (a flood of them would fill the audit ring and keep mcached resyncing).
 * 401s are counted in /metrics (mcache_http_requests_total{code="401"})
 * and logged, at most a line a second.
 */
static bool audited(const struct req *rq, unsigned status)
{
    return rq->route && (rq->route->flags & ROUTE_AUDIT) && status >= 400 && status != 401;
}

static uint64_t unauth_logged_ns;
static unsigned unauth_unlogged;

static void log_unauthorized(const struct req *rq, const char *msg)
{
    uint64_t now = mc_mono_ns(), last = __atomic_load_n(&unauth_logged_ns, __ATOMIC_RELAXED);
    unsigned more;

    if ((last && now - last < 1000000000ull) ||
        !__atomic_compare_exchange_n(&unauth_logged_ns, &last, now, false, __ATOMIC_RELAXED,
                                     __ATOMIC_RELAXED)) {
        __atomic_add_fetch(&unauth_unlogged, 1, __ATOMIC_RELAXED);
        return;
    }
    more = __atomic_exchange_n(&unauth_unlogged, 0, __ATOMIC_RELAXED);
    if (more)
        srv_log("401 %s %s from %s: %s (and %u more 401s not logged in the last second or more; "
                "see mcache_http_requests_total{code=\"401\"} in /metrics)",
                rq->method, rq->path, rq->from, msg, more);
    else
        srv_log("401 %s %s from %s: %s", rq->method, rq->path, rq->from, msg);
}

/* An error reply, with one extra header (Allow, WWW-Authenticate) when name is set. */
static int error_reply(struct req *rq, unsigned status, const char *code, const char *msg,
                       const char *hname, const char *hvalue)
{
    struct rstate *st = state_of(rq);
    struct MHD_Response *resp;

    if (rq->replied)
        return MHD_YES;
    free(st->errmsg);
    st->errmsg = strdup(msg);
    if (status == 401)
        log_unauthorized(rq, msg);
    else
        srv_log("%u %s %s from %s (%s): %s", status, rq->method, rq->path, rq->from, rq->who,
                msg);
    resp = json_response(json_pack("{s:{s:s, s:s, s:i}}", "error", "code", code, "message", msg,
                                   "status", (int)status));
    if (resp && hname)
        MHD_add_response_header(resp, hname, hvalue);
    if (audited(rq, status) && !reg_held)
        audit_failure(st);
    return queue(rq, status, resp);
}

int reply_error(struct req *rq, unsigned status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return error_reply(rq, status, code, msg, NULL, NULL);
}

int reply_mc_error(struct req *rq, int rc)
{
    const char *m = mc_last_error();
    unsigned status = 500;
    const char *code = "internal";

    switch (rc) {
    case MC_EINVAL:
        status = 400, code = "bad_request";
        break;
    case MC_ENOENT:
    case MC_ENOTRESIDENT:
        status = 404, code = "not_found";
        break;
    case MC_EEXIST:
        status = 409, code = "conflict";
        break;
    case MC_EBUSY:
        status = 409, code = "busy";
        break;
    case MC_EPERM:
        status = 403, code = "forbidden";
        break;
    case MC_ENOSPC:
        status = 507, code = "no_space";
        break;
    case MC_ECORRUPT:
        status = 422, code = "corrupt";
        break;
    case MC_ENODAEMON:
        status = 503, code = "no_daemon";
        break;
    case MC_ETIMEDOUT:
        status = 504, code = "timeout";
        break;
    case MC_EFAILED:
        status = 422, code = "load_failed";
        break;
    case MC_ENOTSUP:
        status = 501, code = "not_supported";
        break;
    case MC_EIO:
        /* a database or an object store that did not answer: try again later */
        if (rq->srv->cli.registry || rq->srv->cli.artifacts)
            status = 503, code = "unavailable";
        break;
    default:
        break;
    }
    return error_reply(rq, status, code, m && *m ? m : mc_strerror(rc), NULL, NULL);
}

/* ---- a request's life -------------------------------------------------------- */

/* Keep a refusal for the end of the body; drop what is still to come. */
static void defer(struct rstate *st, unsigned status, const char *code, const char *msg)
{
    if (st->defer_status)
        return;
    st->defer_status = status;
    snprintf(st->defer_code, sizeof(st->defer_code), "%s", code);
    st->defer_msg = strdup(msg);
    st->drop = true;
    free(st->buf);
    st->buf = NULL;
    st->len = st->cap = 0;
}

static bool method_is_safe(const char *m)
{
    return !strcmp(m, "GET") || !strcmp(m, "HEAD");
}

/*
 * Is the request from where it may be? With open access, anything that
 * reaches the port is admin, web pages included: a page can point its own
 * DNS name at 127.0.0.1 (DNS rebinding) or post a form across sites. So a
 * Host that is not this machine's loopback (localhost, 127.x, [::1]) is
 * refused (421), and so is a state change sent by another site's page (an
 * Origin that is neither the Host nor loopback: 403). 0 to go on, else what
 * on_request returns.
 */
static bool site_refused(struct req *rq, int *ret)
{
    const char *host = req_header(rq, MHD_HTTP_HEADER_HOST);
    const char *origin = req_header(rq, "Origin");

    if (rq->srv->open_access && host && !http_host_is_local(host, listen_any_ip)) {
        *ret = reply_error(rq, 421, "misdirected_request",
                           "mcache-serve has open access (no token needed), so it answers only "
                           "requests addressed to localhost, 127.0.0.1 or [::1], not to \"%.100s\" "
                           "(else a web page could reach it through a DNS name of its own); use "
                           "http://127.0.0.1:PORT, or run mcache-serve with --require-tokens",
                           host);
        return true;
    }
    if (!method_is_safe(rq->method) && !http_origin_allowed(origin, host, listen_any_ip)) {
        *ret = reply_error(rq, 403, "cross_origin",
                           "%s %s comes from a web page of another site (Origin \"%.100s\"); "
                           "state changes are taken only from the server's own pages and from "
                           "clients that are not browsers",
                           rq->method, rq->path, origin);
        return true;
    }
    return false;
}

/*
 * THE BODY'S FRAMING (RFC 9112 6.3). libmicrohttpd 0.9.75 takes the first
 * Content-Length and ignores the others; ignores Content-Length when
 * Transfer-Encoding is there; and, for a Transfer-Encoding other than
 * exactly "chunked" ("gzip, chunked"), reads a body of unknown length that
 * never ends, so the client got no answer at all. A request whose framing
 * two parties could read differently (a proxy in front, us) is refused
 * before any byte of its body is read; libmicrohttpd closes the connection
 * after the reply (a reply queued before the body discards the rest).
 */
struct framing {
    unsigned nlen, nenc;
    const char *len; /* the first Content-Length */
    bool differ;     /* another Content-Length says something else */
};

static enum MHD_Result framing_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      const char *value)
{
    struct framing *f = cls;

    (void)kind;
    if (key && value && !strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH)) {
        if (f->nlen++ == 0)
            f->len = value;
        else if (strcmp(f->len, value) != 0)
            f->differ = true;
    } else if (key && !strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING)) {
        f->nenc++;
    }
    return MHD_YES;
}

/*
 * The pattern of the route a 405's path has under another method (the
 * first one allowed lists), so /metrics counts the 405 under it; NULL if
 * none (then "unmatched").
 */
static const char *pattern_of_path(const char *path, const char *allowed)
{
    char method[16], *params[REQ_PARAMS_MAX];
    const struct route *r = NULL;
    size_t n = strcspn(allowed, ", "), np = 0;

    if (n == 0 || n >= sizeof(method))
        return NULL;
    memcpy(method, allowed, n);
    method[n] = '\0';
    if (route_match(srv_route_groups, method, path, &r, params, &np, NULL, 0) != 0)
        return NULL;
    route_params_free(params, np);
    return r->pattern;
}

/* Refuse a request with ambiguous framing: true, and *r what on_request returns. */
static bool framing_refused(struct req *rq, int *r)
{
    struct framing f = {0};
    const char *te = req_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING);

    MHD_get_connection_values(rq->conn, MHD_HEADER_KIND, framing_header, &f);
    if (f.differ)
        *r = reply_error(rq, 400, "bad_request",
                         "the request has several Content-Length headers that differ; send one");
    else if (f.nenc > 1)
        *r = reply_error(rq, 400, "bad_request",
                         "the request has several Transfer-Encoding headers; send one");
    else if (te && f.nlen)
        *r = reply_error(rq, 400, "bad_request",
                         "the request has both Content-Length and Transfer-Encoding; send one "
                         "(Transfer-Encoding: chunked, or Content-Length)");
    else if (te && strcasecmp(te, "chunked") != 0)
        *r = reply_error(rq, 501, "not_implemented",
                         "Transfer-Encoding \"%.100s\" is not supported: only \"chunked\" (send "
                         "the body as it is, compressed or not, with Content-Length or chunked)",
                         te);
    else
        return false;
    return true;
}

/* The headers are in: route, identify, authorize, check the body's type and size. */
static int begin(struct rstate *st)
{
    struct req *rq = &st->rq;
    struct srv *s = rq->srv;
    const union MHD_ConnectionInfo *ci;
    char allowed[64];
    const char *cl, *te;
    uint64_t clen = 0;
    int refuse;
    int rc;

    ci = MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    addr_format(ci ? ci->client_addr : NULL, rq->from, sizeof(rq->from));
    snprintf(rq->who, sizeof(rq->who), "anonymous");

    if (site_refused(rq, &rc))
        return rc;
    if (framing_refused(rq, &rc))
        return rc;
    if (strlen(rq->path) > ROUTE_PATH_MAX)
        return reply_error(rq, 414, "uri_too_long",
                           "the path is %zu bytes long; at most %d are accepted",
                           strlen(rq->path), ROUTE_PATH_MAX);
    rc = route_match(srv_route_groups, rq->method, rq->path, &rq->route, rq->params, &rq->nparams,
                     allowed, sizeof(allowed));
    if (rc == MC_ENOENT && allowed[0]) {
        char msg[512];

        snprintf(msg, sizeof(msg), "%s", mc_last_error());
        st->metric_route = pattern_of_path(rq->path, allowed);
        return error_reply(rq, 405, "method_not_allowed", msg, MHD_HTTP_HEADER_ALLOW, allowed);
    }
    if (rc == MC_ENOENT)
        return reply_mc_error(rq, rc);
    if (rc)
        return reply_mc_error(rq, rc);

    if ((refuse = auth_identify(rq)) != 0) {
        if (refuse == 401)
            return error_reply(rq, 401, "unauthorized", mc_last_error(),
                               MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"mcache\"");
        return reply_mc_error(rq, refuse);
    }
    if (!(rq->route->flags & ROUTE_OPEN) && rq->role < rq->route->role) {
        if (rq->role == ROLE_NONE)
            return error_reply(rq, 401, "unauthorized",
                               "this needs a token (Authorization: Bearer mct_...); ask an admin "
                               "for one made with `mcache token add`",
                               MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"mcache\"");
        return reply_error(rq, 403, "forbidden", "%s has role %s; %s %s needs %s", rq->who,
                           role_name(rq->role), rq->route->method, rq->route->pattern,
                           role_name(rq->route->role));
    }

    cl = req_header(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
    te = req_header(rq, MHD_HTTP_HEADER_TRANSFER_ENCODING);
    if (cl)
        clen = strtoull(cl, NULL, 10);
    st->has_body = clen > 0 || (te && strcasestr(te, "chunked"));

    if (!method_is_safe(rq->method) && !(rq->route->flags & ROUTE_STREAM)) {
        const char *ct = req_header(rq, MHD_HTTP_HEADER_CONTENT_TYPE);

        /* Even without a body: a web page's form or simple request cannot send this type. */
        if (!http_is_json_type(ct))
            return reply_error(rq, 415, "unsupported_media_type",
                               "%s %s needs Content-Type: application/json, even without a body "
                               "(it was %.100s; with curl: -H 'Content-Type: application/json')",
                               rq->method, rq->route->pattern, ct ? ct : "not given");
    }
    if ((rq->route->flags & ROUTE_JSON) && st->has_body) {
        if (clen > s->max_json)
            return reply_error(rq, 413, "too_large",
                               "the JSON body is %llu bytes; at most %zu are accepted "
                               "(mcache-serve --max-json)",
                               (unsigned long long)clen, s->max_json);
    }
    if (rq->route->flags & ROUTE_STREAM) {
        if (!cl && !(te && strcasestr(te, "chunked")))
            return reply_error(rq, 411, "length_required",
                               "an upload needs Content-Length or Transfer-Encoding: chunked");
        if (s->max_upload && clen > s->max_upload)
            return reply_error(rq, 413, "too_large",
                               "the upload is %llu bytes; at most %llu are accepted "
                               "(mcache-serve --max-upload)",
                               (unsigned long long)clen, (unsigned long long)s->max_upload);
        /* Let the route refuse before the body is sent (a version that exists: 409). */
        st->stream_begun = true;
        if ((rc = rq->route->body(rq, NULL, 0)) != 0)
            return rq->replied ? MHD_YES : reply_mc_error(rq, rc);
    }
    st->phase = 1;
    return MHD_YES;
}

/* A piece of the body. */
static void consume(struct rstate *st, const char *data, size_t n)
{
    struct req *rq = &st->rq;
    struct srv *s = rq->srv;
    char msg[256];
    int rc;

    rq->body_bytes += n;
    if (st->drop || rq->replied)
        return;
    if (rq->route->flags & ROUTE_JSON) {
        if (st->len + n > s->max_json) {
            snprintf(msg, sizeof(msg),
                     "the JSON body is over %zu bytes, the most accepted (mcache-serve "
                     "--max-json)",
                     s->max_json);
            defer(st, 413, "too_large", msg);
            return;
        }
        if (st->len + n > st->cap) {
            size_t cap = st->cap ? st->cap : 4096;
            char *b;

            while (cap < st->len + n)
                cap *= 2;
            if (!(b = realloc(st->buf, cap))) {
                defer(st, 500, "internal", "out of memory reading the body");
                return;
            }
            st->buf = b;
            st->cap = cap;
        }
        memcpy(st->buf + st->len, data, n);
        st->len += n;
    } else if (rq->route->flags & ROUTE_STREAM) {
        if (s->max_upload && rq->body_bytes > s->max_upload) {
            snprintf(msg, sizeof(msg),
                     "the upload is over %llu bytes, the most accepted (mcache-serve "
                     "--max-upload)",
                     (unsigned long long)s->max_upload);
            defer(st, 413, "too_large", msg);
            return;
        }
        if ((rc = rq->route->body(rq, data, n)) != 0) {
            const char *m = mc_last_error();

            /* Replied at the end through reply_mc_error(), with this message. */
            defer(st, 1, "", m && *m ? m : mc_strerror(rc));
            st->defer_rc = rc;
        }
    }
}

static int slow_dispatch(struct rstate *st);
static void track_headers_due(struct MHD_Connection *c, bool due);
static enum MHD_Result slow_queue_held(struct rstate *st);

/* The whole request is in: reply what was decided, or parse the JSON and run the handler. */
static int finish(struct rstate *st)
{
    struct req *rq = &st->rq;
    json_error_t jerr;
    int r;

    if (rq->replied)
        return MHD_YES;
    if (st->defer_rc) {
        mc_err(st->defer_rc, "%s", st->defer_msg ? st->defer_msg : mc_strerror(st->defer_rc));
        return reply_mc_error(rq, st->defer_rc);
    }
    if (st->defer_status)
        return reply_error(rq, st->defer_status, st->defer_code, "%s",
                           st->defer_msg ? st->defer_msg : "refused");
    if ((rq->route->flags & ROUTE_JSON) && st->len) {
        rq->body = json_loadb(st->buf, st->len, JSON_REJECT_DUPLICATES, &jerr);
        if (!rq->body)
            return reply_error(rq, 400, "bad_json",
                               "the body is not valid JSON: %s (line %d, column %d)", jerr.text,
                               jerr.line, jerr.column);
        if (!json_is_object(rq->body))
            return reply_error(rq, 400, "bad_json", "the body must be a JSON object {...}");
    }
    if (rq->route->flags & ROUTE_SLOW)
        return slow_dispatch(st);
    r = rq->route->handler(rq);
    if (st->slow) /* it went on on a worker (srv_defer), which replies: rq is the worker's */
        return r;
    if (!rq->replied) {
        srv_log("%s %s: the handler gave no reply", rq->method, rq->route->pattern);
        return reply_error(rq, 500, "internal", "the server gave no reply to %s %s", rq->method,
                           rq->route->pattern);
    }
    return r;
}

/*
 * SLOW HANDLERS (ROUTE_SLOW). A handler that may wait (on mcached, a health
 * gate, hashing a whole artifact) must not hold its libmicrohttpd thread:
 * every other connection of that thread would wait with it, and be cut off
 * by --timeout. finish() suspends the connection and runs the handler on a
 * thread of its own; its reply is kept in the request (hold_reply) instead
 * of being queued, since a suspended connection takes none; the worker then
 * resumes the connection, and libmicrohttpd calls on_request() again, which
 * queues the kept reply (slow_queue_held). At most --workers such handlers
 * run at once; one more is refused with 503 busy. A handler may also hand
 * the rest of its work to a worker itself (srv_defer: a download's first
 * window from the object store). The worker never touches
 * the request after MHD_resume_connection(): from then on it is the
 * connection thread's again.
 */
static unsigned slow_running;

static int hold_reply(struct rstate *st, unsigned status, struct MHD_Response *resp)
{
    if (st->rq.replied) {
        srv_log("%s %s: a second reply (%u) after %u was dropped", st->rq.method, st->rq.path,
                status, st->rq.status);
        MHD_destroy_response(resp);
        return MHD_YES;
    }
    st->held = resp;
    st->held_status = status;
    st->rq.replied = true;
    st->rq.status = status;
    return MHD_YES;
}

static void *slow_main(void *arg)
{
    struct rstate *st = arg;
    struct req *rq = &st->rq;
    struct MHD_Connection *conn = rq->conn;

    st->slow_fn(rq, st->slow_arg);
    if (!rq->replied) {
        srv_log("%s %s: the handler gave no reply", rq->method, rq->route->pattern);
        reply_error(rq, 500, "internal", "the server gave no reply to %s %s", rq->method,
                    rq->route->pattern);
    }
    __atomic_sub_fetch(&slow_running, 1, __ATOMIC_ACQ_REL);
    MHD_resume_connection(conn);
    return NULL;
}

static void run_handler(struct req *rq, void *arg)
{
    (void)arg;
    rq->route->handler(rq);
}

/* Suspend st's connection and run fn(rq, arg) on a worker; a 503 now if --workers are busy. */
static int slow_start(struct rstate *st, void (*fn)(struct req *rq, void *arg), void *arg,
                      bool *started)
{
    struct req *rq = &st->rq;
    pthread_attr_t attr;
    pthread_t t;
    int err;

    *started = false;
    if (__atomic_add_fetch(&slow_running, 1, __ATOMIC_ACQ_REL) > rq->srv->workers) {
        __atomic_sub_fetch(&slow_running, 1, __ATOMIC_ACQ_REL);
        return reply_error(rq, 503, "busy",
                           "%u long operations (loads, deployments, gated alias moves, checks) "
                           "are running, the most at once (mcache-serve --workers); try again "
                           "shortly",
                           rq->srv->workers);
    }
    st->slow = true;
    st->in_worker = true;
    st->slow_fn = fn;
    st->slow_arg = arg;
    MHD_suspend_connection(rq->conn);
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    err = pthread_create(&t, &attr, slow_main, st);
    pthread_attr_destroy(&attr);
    *started = !err;
    if (err) {
        __atomic_sub_fetch(&slow_running, 1, __ATOMIC_ACQ_REL);
        reply_error(rq, 503, "busy", "could not start a thread for %s %s: %s", rq->method,
                    rq->route->pattern, strerror(err));
        MHD_resume_connection(rq->conn); /* the kept reply is queued on the next call */
    }
    return MHD_YES;
}

/* finish() for a ROUTE_SLOW route: suspend the connection, run the handler on a worker. */
static int slow_dispatch(struct rstate *st)
{
    bool started;

    return slow_start(st, run_handler, NULL, &started);
}

int srv_defer(struct req *rq, void (*fn)(struct req *rq, void *arg), void *arg, bool *started)
{
    return slow_start(state_of(rq), fn, arg, started);
}

/* on_request() once a slow handler's connection resumed: queue the reply it kept. */
static enum MHD_Result slow_queue_held(struct rstate *st)
{
    struct MHD_Response *resp = st->held;
    enum MHD_Result r;

    if (!resp)
        return MHD_YES; /* queued already */
    st->held = NULL;
    r = MHD_queue_response(st->rq.conn, st->held_status, resp);
    MHD_destroy_response(resp);
    return r;
}

/* Slow handlers still running (srv_stop waits for them). */
static unsigned slow_count(void)
{
    return __atomic_load_n(&slow_running, __ATOMIC_ACQUIRE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct rstate *st = *con_cls;
    int r;

    (void)version;
    if (!st) {
        if (!(st = calloc(1, sizeof(*st))))
            return MHD_NO;
        *con_cls = st;
        st->rq.srv = cls;
        st->rq.conn = conn;
        st->method = strdup(method);
        /* Kept for on_completed's audit entry, after libmicrohttpd may have reused its copy. */
        st->path = strdup(url);
        if (!st->path || !st->method) {
            free(st->path);
            free(st->method);
            free(st);
            *con_cls = NULL;
            return MHD_NO;
        }
        st->rq.path = st->path;
        st->rq.method = st->method;
        st->rq.start_ns = mc_mono_ns();
        track_headers_due(conn, false);
        r = begin(st);
        return r == MHD_YES ? MHD_YES : MHD_NO;
    }
    if (st->slow)
        return slow_queue_held(st);
    if (*upload_data_size) {
        consume(st, upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (st->rq.replied)
        return MHD_YES;
    r = finish(st);
    return r == MHD_YES ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct srv *s = cls;
    struct rstate *st = *con_cls;
    struct req *rq;

    (void)toe;
    track_headers_due(conn, true); /* the next request's headers are due within --timeout */
    if (!st)
        return;
    rq = &st->rq;
    if (rq->status)
        metrics_observe(s->metrics,
                        rq->route          ? rq->route->pattern
                        : st->metric_route ? st->metric_route
                                           : "unmatched",
                        rq->method,
                        rq->status, (double)(mc_mono_ns() - rq->start_ns) / 1e9);
    /* A refusal the reply did not record (its handler held the registry then). */
    if (audited(rq, rq->status) && !st->audited)
        audit_failure(st);
    if (rq->route && (rq->route->flags & ROUTE_STREAM) && rq->route->done)
        rq->route->done(rq);
    route_params_free(rq->params, rq->nparams);
    json_decref(rq->body);
    free(st->buf);
    free(st->defer_msg);
    free(st->errmsg);
    free(st->path);
    free(st->method);
    if (st->held)
        MHD_destroy_response(st->held);
    while (st->allocs) {
        struct alloc *a = st->allocs;

        st->allocs = a->next;
        free(a);
    }
    free(st);
    *con_cls = NULL;
}

/*
 * THE CONNECTION LIMIT. libmicrohttpd's own limit splits --max-conns among
 * the pool's threads and, once reached, stops accepting: a client over it
 * waits in the kernel's backlog, unanswered, until its own timeout. We
 * count open connections ourselves and close one over the limit as soon as
 * it is accepted, so the client knows at once. The count is exact (opened
 * and closed notifications); accepts racing in two threads may let the
 * pool's thread count minus one more in for a moment.
 */
static unsigned conns_open, conns_max, conns_refused;
static uint64_t refused_logged_ns;

/*
 * THE HEADER DEADLINE. libmicrohttpd's --timeout is an idle timer that
 * every byte resets: a client sending a header byte a second would hold its
 * connection for ever (slowloris). So each connection is tracked here (its
 * socket, from the started notification) with a deadline: its request's
 * headers must be complete within --timeout of its start, or of the end of
 * its previous request. The access handler's first call clears the
 * deadline (the headers are in; the body and the reply have the idle
 * timeout), on_completed() sets the next one. A sweeper thread shuts down
 * (shutdown(2), both ways) a connection past its deadline; libmicrohttpd
 * then sees the end of its stream and closes it as any other.
 *
 * The fd cannot be closed and reused between the sweeper's look-up and its
 * shutdown: libmicrohttpd 0.9.75 calls the closed notification before it
 * closes the socket (MHD_cleanup_connections, and new_connection_process_'s
 * failure path), and that notification removes the entry under the same
 * mutex the sweeper holds while it shuts sockets down.
 */
struct conn_track {
    struct conn_track *prev, *next;
    int fd;
    uint64_t deadline_ns; /* the headers are due by then; 0: none due (atomic) */
};

static pthread_mutex_t track_lock = PTHREAD_MUTEX_INITIALIZER;
static struct conn_track *track_head;
static uint64_t header_timeout_ns;
static unsigned headers_overdue; /* connections shut for their headers' deadline */
static pthread_t sweeper;
static bool sweeper_on, sweeper_stop;

static void track_started(struct MHD_Connection *c, void **socket_ctx)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct conn_track *t = calloc(1, sizeof(*t));

    *socket_ctx = t;
    if (!t || !ci)
        return; /* untracked: only the idle timeout holds for it */
    t->fd = ci->connect_fd;
    t->deadline_ns = mc_mono_ns() + header_timeout_ns;
    pthread_mutex_lock(&track_lock);
    t->next = track_head;
    if (track_head)
        track_head->prev = t;
    track_head = t;
    pthread_mutex_unlock(&track_lock);
}

static void track_closed(void **socket_ctx)
{
    struct conn_track *t = *socket_ctx;

    if (!t)
        return;
    pthread_mutex_lock(&track_lock);
    if (t->prev)
        t->prev->next = t->next;
    else if (track_head == t)
        track_head = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&track_lock);
    free(t);
    *socket_ctx = NULL;
}

/* The headers of the connection's current request are in (0), or the next are due (now + timeout). */
static void track_headers_due(struct MHD_Connection *c, bool due)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct conn_track *t = ci ? ci->socket_context : NULL;

    if (t)
        __atomic_store_n(&t->deadline_ns, due ? mc_mono_ns() + header_timeout_ns : 0,
                         __ATOMIC_RELAXED);
}

static void *sweep_main(void *arg)
{
    uint64_t logged = 0;

    (void)arg;
    while (!__atomic_load_n(&sweeper_stop, __ATOMIC_ACQUIRE)) {
        uint64_t now = mc_mono_ns();
        unsigned n = 0;

        pthread_mutex_lock(&track_lock);
        for (struct conn_track *t = track_head; t; t = t->next) {
            uint64_t d = __atomic_load_n(&t->deadline_ns, __ATOMIC_RELAXED);

            if (d && now > d) {
                /* Counted before the client can see the close (and read /metrics). */
                __atomic_add_fetch(&headers_overdue, 1, __ATOMIC_RELAXED);
                shutdown(t->fd, SHUT_RDWR);
                __atomic_store_n(&t->deadline_ns, 0, __ATOMIC_RELAXED);
                n++;
            }
        }
        pthread_mutex_unlock(&track_lock);
        if (n) {
            unsigned total = __atomic_load_n(&headers_overdue, __ATOMIC_RELAXED);

            if (now - logged > 1000000000ull) { /* one line a second at most */
                logged = now;
                srv_log("closed %u connection(s) that did not send a request's headers within "
                        "--timeout (%llu s); %u so far",
                        n, (unsigned long long)(header_timeout_ns / 1000000000ull), total);
            }
        }
        nanosleep(&(struct timespec){0, 200 * 1000 * 1000}, NULL);
    }
    return NULL;
}

unsigned srv_conns_overdue(void)
{
    return __atomic_load_n(&headers_overdue, __ATOMIC_RELAXED);
}

static int sweeper_start(unsigned timeout_s)
{
    header_timeout_ns = (uint64_t)timeout_s * 1000000000ull;
    sweeper_stop = false;
    if (pthread_create(&sweeper, NULL, sweep_main, NULL) != 0)
        return mc_err(MC_EIO, "could not start the thread that enforces --timeout on headers");
    sweeper_on = true;
    return 0;
}

static void sweeper_end(void)
{
    if (!sweeper_on)
        return;
    __atomic_store_n(&sweeper_stop, true, __ATOMIC_RELEASE);
    pthread_join(sweeper, NULL);
    sweeper_on = false;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        __atomic_add_fetch(&conns_open, 1, __ATOMIC_ACQ_REL);
        track_started(c, socket_ctx);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        track_closed(socket_ctx);
        __atomic_sub_fetch(&conns_open, 1, __ATOMIC_ACQ_REL);
    }
}

static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    uint64_t now, last;
    char from[64];

    (void)cls;
    (void)len;
    if (__atomic_load_n(&conns_open, __ATOMIC_RELAXED) < conns_max)
        return MHD_YES;
    __atomic_add_fetch(&conns_refused, 1, __ATOMIC_RELAXED);
    /* One log line a second at most: a flood must not become a flood of log lines. */
    now = mc_mono_ns();
    last = __atomic_load_n(&refused_logged_ns, __ATOMIC_RELAXED);
    if (now - last > 1000000000ull &&
        __atomic_compare_exchange_n(&refused_logged_ns, &last, now, false, __ATOMIC_RELAXED,
                                    __ATOMIC_RELAXED)) {
        addr_format(addr, from, sizeof(from));
        srv_log("refused a connection from %s: %u open, the most allowed (--max-conns); %u "
                "refused so far",
                from, conns_max, __atomic_load_n(&conns_refused, __ATOMIC_RELAXED));
    }
    return MHD_NO;
}

unsigned srv_conns_refused(void)
{
    return __atomic_load_n(&conns_refused, __ATOMIC_RELAXED);
}

unsigned srv_conns_open(void)
{
    return __atomic_load_n(&conns_open, __ATOMIC_RELAXED);
}

/* Leave the path raw (router.c decodes per segment); see the top of this file. */
static size_t keep_raw(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n;

    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n && buf[n - 1] == '\n')
        buf[--n] = '\0';
    srv_log("%s", buf);
}

int srv_start(struct srv *s, const struct srv_listen *l, unsigned *port)
{
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    struct MHD_OptionItem opts[16];
    size_t n = 0;
    const union MHD_DaemonInfo *di;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);

    if (l->addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (l->tls_cert)
        flags |= MHD_USE_TLS;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, (void *)&l->addr};
    if (l->threads > 1) /* one thread is the daemon's own, without a pool */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, l->threads, NULL};
    /* A backstop above ours (see on_accept): each thread may take its share and some. */
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, s->max_conns + 4 * l->threads, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_NOTIFY_CONNECTION, (intptr_t)on_connection, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, s->timeout_s, NULL};
    /*
     * Each connection's memory pool: its read buffer and the request's
     * headers (Mcache-Meta holds a version's metadata: up to about 60 KiB
     * fit; more is refused with 431). libmicrohttpd clears the whole pool
     * before each request on a keep-alive connection, so its size is paid on
     * every request: at 256 KiB that was 14% of a metadata GET's cycles. An
     * upload's pieces are as small as the read buffer; h_artifacts.c gathers
     * them into 1 MiB writes.
     */
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_MEMORY_LIMIT, CONN_MEMORY, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)on_completed, s};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_UNESCAPE_CALLBACK, (intptr_t)keep_raw, NULL};
    if (l->tls_cert) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, l->tls_cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, l->tls_key};
        /* TLS 1.2 and 1.3 only: GnuTLS's NORMAL still offers 1.0 and 1.1. */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                            (void *)"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"};
    }
    if (s->max_conns_per_ip)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT,
                                            s->max_conns_per_ip, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};

    conns_max = s->max_conns;
    listen_any_ip = !addr_is_loopback((const struct sockaddr *)&l->addr);
    if (sweeper_start(s->timeout_s))
        return MC_EIO;
    reopen_start(s);
    s->mhd = MHD_start_daemon(flags, 0, on_accept, NULL, on_request, s,
                              /* first: it reports problems with the options after it */
                              MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_ARRAY, opts,
                              MHD_OPTION_END);
    if (!s->mhd) {
        reopen_end();
        sweeper_end();
        return mc_err(MC_EIO,
                      "could not listen (the address is in use, not this machine's, or the "
                      "TLS certificate or key is not valid PEM; the line above says which)");
    }
    di = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_LISTEN_FD);
    *port = 0;
    if (di && getsockname(di->listen_fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        else if (ss.ss_family == AF_INET6)
            *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return 0;
}

void srv_stop(struct srv *s)
{
    unsigned reads;

    srv_remote_stop(); /* downloads waiting on the object store: cut now */
    /* A suspended connection cannot be closed: let the slow handlers end first (30 s at most). */
    for (int i = 0; i < 3000 && slow_count(); i++)
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    if (slow_count())
        srv_log("stopping with %u long operations still running", slow_count());
    if (s->mhd)
        MHD_stop_daemon(s->mhd);
    s->mhd = NULL;
    sweeper_end();
    reopen_end();
    if ((reads = srv_remote_reads()) != 0) {
        /* still blocked in the store: they keep the handle open; the process exits under them */
        srv_log("stopping with %u object store reads still waiting for the store", reads);
        if (pthread_mutex_trylock(&s->reg_lock) == 0) { /* else a long operation still has it */
            s->reg = NULL;
            pthread_mutex_unlock(&s->reg_lock);
        }
    }
}
