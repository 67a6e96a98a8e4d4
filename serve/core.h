/*
 * core.h - what the server's core files share and handlers need not see:
 * authentication (auth.c), the request counters (metrics.c), and the
 * server's start and stop (server.c, for main.c).
 */
#ifndef MCACHE_SERVE_CORE_H
#define MCACHE_SERVE_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "serve/http.h"

/*
 * The registry helper's tokens and audit log (registry/reg_token.c...) are
 * linked when MCACHE_SERVE_TOKENS is 1. TODO(issue 14): drop the switch
 * once the branch "reg" is merged; until then a bearer token is refused
 * and failed requests are only logged.
 */
#ifndef MCACHE_SERVE_TOKENS
#define MCACHE_SERVE_TOKENS 0
#endif

/* ---- auth.c ------------------------------------------------------------ */

/* Is this a loopback address (127.0.0.0/8, ::1, ::ffff:127.x)? */
bool addr_is_loopback(const struct sockaddr *sa);
/* "127.0.0.1:5123", "[::1]:80" into buf. */
void addr_format(const struct sockaddr *sa, char *buf, size_t len);

/*
 * Who is asking and what they may do: sets rq->role and rq->who from the
 * Authorization header (a bearer token) or open access. 0, or the HTTP
 * status to refuse with (401) and a message in mc_last_error().
 */
unsigned auth_identify(struct req *rq);

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

/* Log one line on stderr: "mcache-serve: ...". */
void srv_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
