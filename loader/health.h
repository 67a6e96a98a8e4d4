/*
 * health.h - health checks run by mcached: a command per model (registry,
 * `mcache health set`) or per deploy, run as a child before an alias moves
 * to a version, with a timeout, never blocking the event loop.
 *
 * The child gets stdin from /dev/null, stdout and stderr into one pipe
 * (the last MC_HEALTH_TAIL bytes are kept), its own process group (a
 * timeout kills the whole group), an empty signal mask, and the daemon's
 * environment plus MCACHE_MODEL, MCACHE_VERSION, MCACHE_CACHE,
 * MCACHE_SHM_DIR, MCACHE_STORE and MCACHE_SOCKET, so that it can attach to
 * the arena and run a smoke inference on exactly the version named.
 *
 * The loop watches two fds per check: the pipe (output) and a pidfd (exit).
 * Where pidfd_open(2) is missing (Linux < 5.3) the 100 ms tick reaps it
 * with waitpid(WNOHANG). A check is done when it was reaped; output still
 * unread then is read, and a grandchild that kept the pipe open is killed
 * with the group.
 */
#ifndef MCACHE_LOADER_HEALTH_H
#define MCACHE_LOADER_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MC_HEALTH_TAIL       2048   /* bytes of output kept */
#define MC_HEALTH_TIMEOUT_MS 30000u /* default when none is given */

struct daemon;

struct health_result {
    int status;                    /* exit status; -1 if killed by a signal or a timeout */
    int signal;                    /* the signal that ended it, 0 if it exited */
    bool timed_out;                /* killed after timeout_ms */
    bool spawn_failed;             /* could not be started (status 127, tail says why) */
    uint64_t ms;                   /* how long it ran */
    char tail[MC_HEALTH_TAIL + 1]; /* the end of its output, NUL-terminated */
};

typedef void (*health_done_fn)(struct daemon *d, void *ctx, const struct health_result *res);

struct health_run {
    int pipefd, pidfd; /* -1 when closed */
    pid_t pid;         /* 0 once reaped */
    uint64_t started_ns, deadline_ns;
    char model[256], version[256];
    struct health_result res;
    size_t tlen; /* bytes in res.tail */
    health_done_fn done;
    void *ctx;
    struct health_run *next;
};

/*
 * Start argv (argc >= 1, looked up in PATH) for name@version with a
 * timeout (0: MC_HEALTH_TIMEOUT_MS). done(d, ctx, result) is called once
 * from the loop when it ends. Returns the run (for health_cancel), or NULL
 * if it could not be started: then *fail says why (status 127, never
 * calling done).
 */
struct health_run *health_start(struct daemon *d, const char *name, const char *version,
                                const char *const *argv, size_t argc, uint32_t timeout_ms,
                                health_done_fn done, void *ctx, struct health_result *fail);

/* An epoll event whose tag may be a check's fd: true if it was one (and was handled). */
bool health_event(struct daemon *d, void *tag, uint32_t events);

/* Timeouts and reaping without pidfd (the tick). */
void health_tick(struct daemon *d);

/* Kill a check; done is not called. */
void health_cancel(struct daemon *d, struct health_run *h);

/* Kill every check (shutdown); done is not called. */
void health_stop_all(struct daemon *d);

/* "exit status 3", "killed by signal 9", "timed out after 2.0 s" into buf. */
const char *health_outcome(const struct health_result *r, char *buf, size_t len);

#endif
