/*
 * core.h - what the server's core files share and handlers need not see:
 * authentication (auth.c), the request counters (metrics.c), and the
 * server's start and stop (server.c, for main.c).
 */
#ifndef MCACHE_SERVE_CORE_H
#define MCACHE_SERVE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "serve/http.h"

/* ---- auth.c ------------------------------------------------------------ */

/* Is this a loopback address (127.0.0.0/8, ::1, ::ffff:127.x)? */
bool addr_is_loopback(const struct sockaddr *sa);
/* "127.0.0.1:5123", "[::1]:80" into buf. */
void addr_format(const struct sockaddr *sa, char *buf, size_t len);

/*
 * Who is asking and what they may do: sets rq->role and rq->who from the
 * Authorization header (a bearer token) or open access. 0; 401 to refuse
 * with, a message in mc_last_error(); or the MC_E* code (negative) of a
 * registry that could not be read, for reply_mc_error() as any handler's.
 */
int auth_identify(struct req *rq);

/* ---- router.c: the parts of a request's text that are ours (the fuzz target's) ---- */

/* Decode a query value (%XX, '+' for a space) into out (room for strlen(in) + 1), one pass. */
void http_query_decode(const char *in, char *out);
/* Is this Content-Type type (any case, parameters after ';'; "application/jsonx" is not)? */
bool http_is_type(const char *ct, const char *type);
/* Is this Content-Type JSON ("application/json", any case, parameters after ';')? */
bool http_is_json_type(const char *ct);
/*
 * Does a Host header (or an Origin's host[:port]) name this machine's
 * loopback: localhost, 127.x.y.z, [::1], any port? any_ip: any IP literal
 * too (listening on another address with --insecure-open). A DNS name
 * never is (DNS rebinding: a web page's own name pointed at 127.0.0.1).
 */
bool http_host_is_local(const char *authority, bool any_ip);
/*
 * May a state-changing request carry this Origin header? Yes when absent,
 * when it is the request's own Host (same origin), or when its host is
 * local as above; no for another site's page or "null".
 */
bool http_origin_allowed(const char *origin, const char *host, bool any_ip);
/*
 * A Range header against a body of size bytes: RANGE_NONE (absent,
 * malformed, several ranges or another unit: send the whole body),
 * RANGE_ONE (*off, *len), or RANGE_BAD (unsatisfiable: 416; any suffix
 * range of an empty body).
 */
enum http_range { RANGE_NONE, RANGE_ONE, RANGE_BAD };
enum http_range http_range(const char *h, uint64_t size, uint64_t *off, uint64_t *len);
/* The secret of "Bearer SECRET" (scheme in any case), or NULL for any other header. */
const char *http_bearer(const char *h);

/* ---- metrics.c --------------------------------------------------------- */

struct srv_metrics *metrics_new(void);
void metrics_free(struct srv_metrics *m);
/* One finished request: its route's pattern (or "unmatched"), method, status, seconds. */
void metrics_observe(struct srv_metrics *m, const char *route, const char *method, unsigned code,
                     double seconds);
/* The exposition text (Prometheus text format 0.0.4), malloc'd; NULL when out of memory. */
char *metrics_render(struct srv *s, size_t *len);

/* ---- server.c ---------------------------------------------------------- */

struct srv_listen {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    unsigned threads;
    char *tls_cert, *tls_key; /* PEM text, or NULL for plain HTTP */
};

/* Start listening; 0 or an MC_E* code with a message. *port gets the bound port. */
int srv_start(struct srv *s, const struct srv_listen *l, unsigned *port);
void srv_stop(struct srv *s);
/* Connections open now, and refused since the start for --max-conns. */
unsigned srv_conns_open(void);
unsigned srv_conns_refused(void);
/* Connections closed since the start for not sending a request's headers within --timeout. */
unsigned srv_conns_overdue(void);

/* Log one line on stderr: "mcache-serve: ...". */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
