/*
 * redis.c - a private redis-server and a minimal RESP2 client (see redis.h).
 */
#include "bench/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/model.h"
#include "common/clock.h"

int resp_connect(struct resp *c, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int one = 1;

    c->len = c->pos = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

void resp_close(struct resp *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return bench_error("redis: send: %s", strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int resp_send(struct resp *c, int argc, const char *const *argv, const size_t *lens)
{
    char out[1024];
    size_t n = (size_t)snprintf(out, sizeof(out), "*%d\r\n", argc);

    for (int i = 0; i < argc; i++) {
        size_t l = lens ? lens[i] : strlen(argv[i]);

        if (n + l + 32 > sizeof(out))
            return bench_error("redis: command too long");
        n += (size_t)snprintf(out + n, sizeof(out) - n, "$%zu\r\n", l);
        memcpy(out + n, argv[i], l);
        n += l;
        out[n++] = '\r';
        out[n++] = '\n';
    }
    return send_all(c->fd, out, n);
}

/* Make at least `need` unread bytes available (compacting the buffer). */
static int fill(struct resp *c, size_t need)
{
    if (c->len - c->pos >= need)
        return 0;
    if (c->pos) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    if (need > sizeof(c->buf))
        return bench_error("redis: reply larger than %zu bytes", sizeof(c->buf));
    while (c->len < need) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return bench_error("redis: connection lost: %s", r ? strerror(errno) : "EOF");
        c->len += (size_t)r;
    }
    return 0;
}

/* The next line (without CRLF), NUL-terminated in place. */
static char *line(struct resp *c)
{
    for (size_t want = 1;; want = c->len - c->pos + 1) {
        char *s, *e;

        if (fill(c, want))
            return NULL;
        s = c->buf + c->pos;
        e = memchr(s, '\n', c->len - c->pos);
        if (e && e > s && e[-1] == '\r') {
            e[-1] = '\0';
            c->pos = (size_t)(e + 1 - c->buf);
            return s;
        }
    }
}

long resp_reply(struct resp *c, char *val, size_t cap)
{
    char *l = line(c);
    long n;

    if (!l)
        return -1;
    switch (l[0]) {
    case '+':
    case ':':
        return 0;
    case '-':
        bench_error("redis: %s", l + 1);
        return -1;
    case '$':
        n = strtol(l + 1, NULL, 10);
        if (n < 0)
            return -2;
        if (fill(c, (size_t)n + 2))
            return -1;
        memcpy(val, c->buf + c->pos, (size_t)n < cap ? (size_t)n : cap);
        c->pos += (size_t)n + 2;
        return n;
    default:
        bench_error("redis: unexpected reply \"%.40s\"", l);
        return -1;
    }
}

int resp_cmd(struct resp *c, int argc, const char *const *argv)
{
    char v[256];

    if (resp_send(c, argc, argv, NULL))
        return -1;
    return resp_reply(c, v, sizeof(v)) == -1 ? -1 : 0;
}

static bool server_up(struct redis *r)
{
    struct resp c;
    const char *ping[] = {"PING"};
    bool ok;

    if (resp_connect(&c, r->port))
        return false;
    ok = resp_cmd(&c, 1, ping) == 0;
    resp_close(&c);
    return ok;
}

int redis_start(struct redis *r, const char *dir)
{
    char prog[1024], port[16];

    memset(r, 0, sizeof(*r));
    if (!find_on_path("redis-server", prog, sizeof(prog))) {
        bench_note("redis-server is not installed: the Redis GET peer is skipped "
                   "(apt-get install redis-server to include it)");
        return 1;
    }
    for (int attempt = 0; attempt < 3; attempt++) {
        const char *argv[] = {
            prog, "--port",       port, "--bind",     "127.0.0.1", "--save",
            "",   "--appendonly", "no", "--dir",      dir,         "--protected-mode",
            "no", "--daemonize",  "no", "--loglevel", "warning",   NULL};
        int st;

        r->port = loopback_free_port();
        if (r->port < 0)
            return bench_error("redis: no free port on 127.0.0.1");
        snprintf(port, sizeof(port), "%d", r->port);
        if (bench_spawn(&r->srv, prog, argv, false))
            return -1;
        for (uint64_t t0 = mc_mono_ns(); mc_mono_ns() - t0 < 5000000000ull;) {
            if (server_up(r))
                return 0;
            if (waitpid(r->srv.pid, &st, WNOHANG) == r->srv.pid) {
                cleanup_del_pid(r->srv.pid);
                r->srv.pid = 0;
                break;
            }
            usleep(10000);
        }
        worker_kill(&r->srv);
    }
    return bench_error("redis-server did not start on 127.0.0.1 (tried 3 ports); its messages "
                       "are above");
}

void redis_stop(struct redis *r)
{
    if (r->srv.pid > 0)
        worker_kill(&r->srv);
}
