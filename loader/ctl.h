/*
 * ctl.h - mcached's control socket: a Unix stream socket speaking the framed
 * protocol of index/proto.h, authorised by SO_PEERCRED.
 *
 * Every peer is classified when it connects: admin (our uid, root, or the
 * admin group) may change state; reader (the reader group, or anyone when
 * the reader group is "*") may read status and ask for loads; anyone else
 * may do nothing. The socket's mode follows: 0600 without groups, 0660 with
 * its group set to the reader group, 0666 for "*".
 *
 * Defences: a frame must arrive whole within 5 s of its first byte; frames
 * are size-capped; one request at a time per connection (no reading while
 * a reply is unsent, so a client that does not read cannot grow our
 * memory); idle connections close after 2 minutes; at most 256
 * connections, plus 16 kept for admins; a peer that may do nothing gets
 * one refusal and is closed; a malformed frame gets an error reply and the
 * connection is closed. Nothing a client sends can make the daemon block or
 * crash (tests/fuzz_proto.c feeds the decoder garbage).
 */
#ifndef MCACHE_LOADER_CTL_H
#define MCACHE_LOADER_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "index/proto.h"

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
    gid_t admin_gid, reader_gid;
    bool admin_group, reader_group, reader_any;
    mc_ctl_handler handle;
    mc_ctl_closed closed;
    void *ctx;
    uint64_t requests, rejected;
    uint64_t rejected_logged_ns; /* last "refused a connection" log line */
};

/*
 * Listen on path (replacing a stale socket, refusing a live one). Groups
 * by name ("" none, "*" for reader: anyone). Registers with epfd; the
 * daemon dispatches epoll events with data.ptr == ctl (listener) or conn.
 */
int mc_ctl_listen(struct mc_ctl *ctl, int epfd, const char *path, const char *admin_group,
                  const char *reader_group, mc_ctl_handler h, mc_ctl_closed closed, void *ctx);

/* The gids of the groups named ("" or "*": 0); an error naming the option if one does not exist. */
int mc_ctl_resolve_groups(const char *admin_group, const char *reader_group, gid_t *ag, gid_t *rg);

/* Re-read the groups (SIGHUP); the socket's mode and group follow. */
int mc_ctl_set_groups(struct mc_ctl *ctl, const char *admin_group, const char *reader_group);

void mc_ctl_close(struct mc_ctl *ctl);

/* Handle an epoll event for the listener (conn == NULL) or a connection. */
void mc_ctl_event(struct mc_ctl *ctl, struct mc_conn *conn, uint32_t events);

/* Queue a response on c (status 0: body is JSON; else a message). Unparks c. */
void mc_ctl_reply(struct mc_ctl *ctl, struct mc_conn *c, int status, const char *body,
                  size_t len);

/* Close connections whose frame is overdue. */
void mc_ctl_expire(struct mc_ctl *ctl);

#endif
