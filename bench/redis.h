/*
 * redis.h - a private redis-server for the `get` scenario, and a minimal
 * RESP2 client (blocking TCP over loopback, TCP_NODELAY): enough to SET,
 * SELECT and GET, as any client library would do per request.
 */
#ifndef MCACHE_BENCH_REDIS_H
#define MCACHE_BENCH_REDIS_H

#include <stddef.h>
#include <sys/types.h>

#include "bench/bench.h"

struct resp {
    int fd;
    size_t len, pos;
    char buf[16384];
};

struct redis {
    struct worker srv;
    int port;
};

/*
 * Start redis-server on 127.0.0.1 at a free port, without persistence, in
 * dir. Returns 0, 1 if redis-server is not installed (a note says so), or
 * -1 on error.
 */
int redis_start(struct redis *r, const char *dir);
void redis_stop(struct redis *r);

int resp_connect(struct resp *c, int port);
void resp_close(struct resp *c);

/* Send one command (no reply read). */
int resp_send(struct resp *c, int argc, const char *const *argv, const size_t *lens);

/*
 * Read one reply. A bulk string is copied to val (up to cap bytes) and its
 * length returned; a status or integer returns 0; nil returns -2; an error
 * reply or a broken connection returns -1 (with a message).
 */
long resp_reply(struct resp *c, char *val, size_t cap);

/* A command and its reply in one call; 0 unless an error reply. */
int resp_cmd(struct resp *c, int argc, const char *const *argv);

#endif
