/*
 * ctl.h - mcached's control socket: a Unix stream socket speaking the framed
 * protocol of index/proto.h, authorised by SO_PEERCRED.
 *
 * Every peer is classified when it connects: admin (our uid, root, or the
 * admin group) may change state; reader (an admin, a member of the readers'
 * group: mcached's primary group by default, reader-group when set, or
 * anyone when it is "*") may read status and ask for loads; anyone else may
 * do nothing. The socket's mode and group follow (loader/access.h): 0660
 * with the readers' group (the admin group's when only that is set), 0666
 * for "*".
 *
 * Defences: a frame must arrive whole within 5 s of its first byte; frames
 * are size-capped; one request at a time per connection (no reading while
 * a reply is unsent, so a client that does not read cannot grow our
 * memory); idle connections close after 2 minutes; at most 256
 * connections, plus 16 kept for admins; a peer that may do nothing gets
 * one refusal and is closed; a malformed frame gets an error reply and the
 * connection is closed. Nothing a client sends can make the daemon block or
 * crash (tests/fuzz/fuzz_proto.c feeds the decoder garbage).
 */
#ifndef MCACHE_LOADER_CTL_H
#define MCACHE_LOADER_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "index/proto.h"
#include "loader/access.h"

#define MC_CTL_MAX_CONNS     256
#define MC_CTL_ADMIN_RESERVE 16                        /* more places for admins only */
#define MC_CTL_FRAME_NS      (5ull * 1000000000ull)    /* a frame must arrive within */
#define MC_CTL_IDLE_NS       (120ull * 1000000000ull)  /* idle connections are closed */

struct mc_conn {
    int fd;
    pid_t pid;
    uid_t uid;
    bool admin, reader;
    struct mc_frame hdr;
    size_t hdr_got;
    char *payload;
    size_t payload_got;
    uint64_t frame_start_ns; /* 0: no frame in progress */
    uint64_t active_ns;      /* last reply or connection */
    uint32_t events;         /* what epoll waits for */
    char *out;
    size_t out_len, out_sent;
    bool parked; /* waiting for a load; replied to later */
    bool closing;
    void *park_ctx;
    struct mc_conn *next;
};

struct mc_ctl;
typedef void (*mc_ctl_handler)(void *ctx, struct mc_conn *c, const struct mc_request *rq);
typedef void (*mc_ctl_closed)(void *ctx, struct mc_conn *c);

struct mc_ctl {
    int lfd;
    int epfd;
    char path[256];
    struct mc_conn *conns;
    unsigned nconns;
    struct mc_access access; /* who is admin, who is reader; the socket's mode */
    mc_ctl_handler handle;
    mc_ctl_closed closed;
    void *ctx;
    uint64_t requests, rejected;
    uint64_t rejected_logged_ns; /* last "refused a connection" log line */
};

/*
 * Listen on path (replacing a stale socket, refusing a live one), with
 * access a (mc_access_resolve). Registers with epfd; the daemon dispatches
 * epoll events with data.ptr == ctl (listener) or conn.
 */
int mc_ctl_listen(struct mc_ctl *ctl, int epfd, const char *path, const struct mc_access *a,
                  mc_ctl_handler h, mc_ctl_closed closed, void *ctx);

/*
 * Classify peers connecting from now on by a (SIGHUP); the socket's mode and
 * group follow. Connections already open keep their class.
 */
int mc_ctl_set_access(struct mc_ctl *ctl, const struct mc_access *a);

void mc_ctl_close(struct mc_ctl *ctl);

/* Handle an epoll event for the listener (conn == NULL) or a connection. */
void mc_ctl_event(struct mc_ctl *ctl, struct mc_conn *conn, uint32_t events);

/* Queue a response on c (status 0: body is JSON; else a message). Unparks c. */
void mc_ctl_reply(struct mc_ctl *ctl, struct mc_conn *c, int status, const char *body,
                  size_t len);

/* Close connections whose frame is overdue. */
void mc_ctl_expire(struct mc_ctl *ctl);

#endif
