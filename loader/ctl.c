/*
 * ctl.c - the control socket (see ctl.h).
 */
#include "loader/ctl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "loader/log.h"
#include "shm/arena.h"

int mc_ctl_set_access(struct mc_ctl *ctl, const struct mc_access *a)
{
    ctl->access = *a;
    return mc_access_apply_path(ctl->path, a->socket_gid, a->socket_mode);
}

int mc_ctl_listen(struct mc_ctl *ctl, int epfd, const char *path, const struct mc_access *a,
                  mc_ctl_handler h, mc_ctl_closed closed, void *ctx)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct epoll_event ev = {.events = EPOLLIN};
    int fd, probe, rc;

    memset(ctl, 0, sizeof(*ctl));
    ctl->lfd = -1;
    ctl->epfd = epfd;
    ctl->handle = h;
    ctl->closed = closed;
    ctl->ctx = ctx;
    _Static_assert(sizeof(ctl->path) >= sizeof(sa.sun_path), "ctl->path holds any socket path");
    if ((rc = mc_ctl_path_check(path)) != 0)
        return rc;
    snprintf(ctl->path, sizeof(ctl->path), "%s", path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    /* A socket file nobody listens on is stale: a crashed daemon left it.
     * Anything else at that path is not ours to remove. */
    struct stat st;
    if (lstat(path, &st) == 0 && !S_ISSOCK(st.st_mode))
        return mc_err(MC_EEXIST, "%s exists and is not a socket; choose another --socket", path);
    if (mc_ctl_connect(path, &probe) == 0) {
        close(probe);
        return mc_err(MC_EEXIST, "another mcached is listening on %s", path);
    }
    unlink(path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return mc_err(MC_EIO, "socket: %s", strerror(errno));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0) {
        rc = mc_err(mc_err_from_errno(errno), "listening on %s: %s", path, strerror(errno));
        close(fd);
        return rc;
    }
    ctl->lfd = fd;
    rc = mc_ctl_set_access(ctl, a);
    if (rc) {
        mc_ctl_close(ctl);
        return rc;
    }
    ev.data.ptr = NULL;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        rc = mc_err(MC_EIO, "epoll: %s", strerror(errno));
        mc_ctl_close(ctl);
        return rc;
    }
    return 0;
}

static void conn_free(struct mc_ctl *ctl, struct mc_conn *c)
{
    struct mc_conn **pp;

    for (pp = &ctl->conns; *pp && *pp != c; pp = &(*pp)->next)
        ;
    if (*pp)
        *pp = c->next;
    if (ctl->closed)
        ctl->closed(ctl->ctx, c);
    epoll_ctl(ctl->epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->payload);
    free(c->out);
    free(c);
    ctl->nconns--;
}

void mc_ctl_close(struct mc_ctl *ctl)
{
    while (ctl->conns)
        conn_free(ctl, ctl->conns);
    if (ctl->lfd >= 0) {
        close(ctl->lfd);
        unlink(ctl->path);
    }
    ctl->lfd = -1;
}

static bool in_group(int fd, gid_t primary, gid_t want)
{
    gid_t groups[256];
    socklen_t len = sizeof(groups);

    if (primary == want)
        return true;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) != 0)
        return false;
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (groups[i] == want)
            return true;
    return false;
}

/*
 * Too many connections: say so in one response frame before closing (a
 * client that finds its request refused reads it), and log it at most every
 * 10 s with the count, so that a crowd is visible to the operator.
 */
static void refuse(struct mc_ctl *ctl, int fd, pid_t pid)
{
    char msg[200];
    struct mc_frame f = {.magic = MC_PROTO_MAGIC, .version = MC_PROTO_VERSION,
                         .type = MC_FRAME_RESPONSE, .status = MC_EBUSY};
    struct iovec iov[2];
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = 2};
    uint64_t now = mc_mono_ns();

    ctl->rejected++;
    snprintf(msg, sizeof(msg),
             "mcached has %u connections open, its limit; close idle ones or try again",
             ctl->nconns);
    f.length = (uint32_t)strlen(msg);
    iov[0] = (struct iovec){&f, sizeof(f)};
    iov[1] = (struct iovec){msg, f.length};
    (void)!sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
    close(fd);
    if (now - ctl->rejected_logged_ns > 10000000000ull) {
        log_warn("refused a connection from pid %d: %u connections open (%llu refused so far)",
                 (int)pid, ctl->nconns, (unsigned long long)ctl->rejected);
        ctl->rejected_logged_ns = now;
    }
}

static void accept_one(struct mc_ctl *ctl)
{
    struct ucred cred;
    socklen_t len = sizeof(cred);
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
    struct mc_conn *c;
    bool admin;
    int fd = accept4(ctl->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
        close(fd);
        return;
    }
    admin = cred.uid == 0 || cred.uid == geteuid() ||
            (ctl->access.admin_group && in_group(fd, cred.gid, ctl->access.admin_gid));
    /* The last MC_CTL_ADMIN_RESERVE places are kept for admins, so a crowd of
     * readers cannot lock the operator out. */
    if (ctl->nconns >= MC_CTL_MAX_CONNS + (admin ? MC_CTL_ADMIN_RESERVE : 0)) {
        refuse(ctl, fd, cred.pid);
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->pid = cred.pid;
    c->uid = cred.uid;
    c->admin = admin;
    c->reader = c->admin || ctl->access.kind == MC_ACCESS_ANY ||
                in_group(fd, cred.gid, ctl->access.reader_gid);
    c->events = ev.events;
    c->active_ns = mc_mono_ns();
    ev.data.ptr = c;
    if (epoll_ctl(ctl->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        free(c);
        return;
    }
    c->next = ctl->conns;
    ctl->conns = c;
    ctl->nconns++;
}

/*
 * What to wait for on c: to write while a reply is pending; to read only
 * when nothing is pending and no load is awaited (one request at a time, so
 * a client that never reads its answers cannot make the daemon buffer more
 * than one); hang-ups always.
 */
static void conn_events(struct mc_ctl *ctl, struct mc_conn *c)
{
    uint32_t want = EPOLLRDHUP;
    struct epoll_event ev;

    if (c->out)
        want |= EPOLLOUT;
    else if (!c->parked && !c->closing)
        want |= EPOLLIN;
    if (want == c->events)
        return;
    c->events = want;
    ev.events = want;
    ev.data.ptr = c;
    epoll_ctl(ctl->epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void flush_out(struct mc_ctl *ctl, struct mc_conn *c)
{
    while (c->out && c->out_sent < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            conn_events(ctl, c);
            return;
        }
        if (n <= 0) { /* the peer is gone: drop what is unsent */
            c->closing = true;
            break;
        }
        c->out_sent += (size_t)n;
    }
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_sent = 0;
    c->active_ns = mc_mono_ns();
    conn_events(ctl, c);
}

void mc_ctl_reply(struct mc_ctl *ctl, struct mc_conn *c, int status, const char *body,
                  size_t len)
{
    struct mc_frame f = {.magic = MC_PROTO_MAGIC, .version = MC_PROTO_VERSION,
                         .type = MC_FRAME_RESPONSE, .status = status};

    c->parked = false;
    if (c->out) { /* cannot happen: we read no request while a reply is pending */
        c->closing = true;
        return;
    }
    if (len > MC_PROTO_MAX_RESPONSE) {
        body = "response too large";
        len = strlen(body);
        f.status = MC_ENOSPC;
    }
    f.length = (uint32_t)len;
    c->out = malloc(sizeof(f) + len);
    if (!c->out) {
        c->closing = true;
        conn_events(ctl, c);
        return;
    }
    memcpy(c->out, &f, sizeof(f));
    memcpy(c->out + sizeof(f), body, len);
    c->out_len = sizeof(f) + len;
    c->out_sent = 0;
    flush_out(ctl, c);
}

static void reply_err(struct mc_ctl *ctl, struct mc_conn *c, int code, const char *msg)
{
    mc_ctl_reply(ctl, c, code, msg, strlen(msg));
}

/*
 * Read up to want bytes into buf; *got grows. Returns 1 when they are all
 * there, 0 to wait for more, -1 when the connection is done for.
 */
static int recv_into(struct mc_conn *c, void *buf, size_t want, size_t *got)
{
    ssize_t n = recv(c->fd, (char *)buf + *got, want - *got, MSG_DONTWAIT);

    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        c->closing = true;
        return -1;
    }
    if (n < 0)
        return 0;
    if (!c->frame_start_ns)
        c->frame_start_ns = mc_mono_ns();
    *got += (size_t)n;
    return *got == want;
}

/* Read what is available; dispatch each complete frame. */
static void read_frames(struct mc_ctl *ctl, struct mc_conn *c)
{
    for (;;) {
        int r;

        if (c->parked || c->closing || c->out)
            return; /* one request at a time per connection */
        if (c->hdr_got < sizeof(c->hdr)) {
            r = recv_into(c, &c->hdr, sizeof(c->hdr), &c->hdr_got);
            if (r <= 0)
                return;
            if (mc_frame_check(&c->hdr, MC_FRAME_REQUEST, MC_PROTO_MAX_REQUEST) != 0) {
                ctl->rejected++;
                reply_err(ctl, c, MC_EINVAL, mc_last_error());
                c->closing = true;
                return;
            }
            c->payload = malloc(c->hdr.length ? c->hdr.length : 1);
            c->payload_got = 0;
            if (!c->payload) {
                c->closing = true;
                return;
            }
        }
        if (c->payload_got < c->hdr.length) {
            r = recv_into(c, c->payload, c->hdr.length, &c->payload_got);
            if (r <= 0)
                return;
        }
        /* A whole frame. */
        struct mc_request rq;
        char *payload = c->payload;
        size_t plen = c->hdr.length;

        c->payload = NULL;
        c->hdr_got = 0;
        c->frame_start_ns = 0;
        ctl->requests++;
        if (mc_request_decode(payload, plen, &rq) != 0) {
            ctl->rejected++;
            reply_err(ctl, c, MC_EINVAL, mc_last_error());
            c->closing = true;
        } else if (!c->reader) {
            char msg[800];
            ctl->rejected++;
            snprintf(msg, sizeof(msg),
                     "uid %u may not use mcached at %s (readers: %s); ask the operator to "
                     "add it to group %s, or to set --reader-group to a group of its own",
                     (unsigned)c->uid, ctl->path, ctl->access.label, ctl->access.reader_name);
            reply_err(ctl, c, MC_EPERM, msg);
            c->closing = true; /* nothing more for it here: free the place */
        } else {
            ctl->handle(ctl->ctx, c, &rq);
        }
        free(payload);
    }
}

void mc_ctl_event(struct mc_ctl *ctl, struct mc_conn *c, uint32_t events)
{
    if (!c) {
        for (int i = 0; i < 16; i++)
            accept_one(ctl);
        return;
    }
    if (events & EPOLLOUT)
        flush_out(ctl, c);
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        read_frames(ctl, c);
    conn_events(ctl, c);
    if (events & (EPOLLHUP | EPOLLERR))
        c->closing = true;
    /* A client that hangs up while waiting for a load stops waiting. */
    if (c->parked && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        c->closing = true;
    /* Close once a closing connection's reply is out (or it cannot be sent). */
    if (c->closing && (!c->out || (events & (EPOLLHUP | EPOLLERR))))
        conn_free(ctl, c);
}

void mc_ctl_expire(struct mc_ctl *ctl)
{
    uint64_t now = mc_mono_ns();

    for (struct mc_conn *c = ctl->conns, *next; c; c = next) {
        next = c->next;
        bool idle = !c->parked && !c->out && !c->frame_start_ns &&
                    now - c->active_ns > MC_CTL_IDLE_NS;
        if ((c->frame_start_ns && now - c->frame_start_ns > MC_CTL_FRAME_NS) || idle ||
            (c->closing && !c->out)) {
            ctl->rejected += c->frame_start_ns != 0;
            conn_free(ctl, c);
        }
    }
}
