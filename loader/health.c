/*
 * health.c - running health checks as children of mcached (health.h): the
 * spawn, the pipe and pidfd watched by the event loop, the timeout, the
 * output tail.
 */

#include "loader/health.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "loader/daemon.h"
#include "loader/log.h"

extern char **environ;

static int pidfd_open_(pid_t pid)
{
#ifdef SYS_pidfd_open
    return (int)syscall(SYS_pidfd_open, pid, 0);
#else
    (void)pid;
    errno = ENOSYS;
    return -1;
#endif
}

/* Keep the last MC_HEALTH_TAIL bytes of the output. */
static void tail_add(struct health_run *h, const char *buf, size_t n)
{
    char *t = h->res.tail;

    if (n >= MC_HEALTH_TAIL) {
        memcpy(t, buf + n - MC_HEALTH_TAIL, MC_HEALTH_TAIL);
        h->tlen = MC_HEALTH_TAIL;
    } else {
        if (h->tlen + n > MC_HEALTH_TAIL) {
            size_t drop = h->tlen + n - MC_HEALTH_TAIL;
            memmove(t, t + drop, h->tlen - drop);
            h->tlen -= drop;
        }
        memcpy(t + h->tlen, buf, n);
        h->tlen += n;
    }
    t[h->tlen] = '\0';
}

static void fd_close(struct daemon *d, int *fd)
{
    if (*fd < 0)
        return;
    epoll_ctl(d->epfd, EPOLL_CTL_DEL, *fd, NULL);
    close(*fd);
    *fd = -1;
}

/* Read what the pipe holds now; closes it at EOF. */
static void drain(struct daemon *d, struct health_run *h)
{
    char buf[4096];
    ssize_t n;

    while (h->pipefd >= 0) {
        n = read(h->pipefd, buf, sizeof(buf));
        if (n > 0) {
            tail_add(h, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        fd_close(d, &h->pipefd); /* EOF or error */
    }
}

static void unlink_run(struct daemon *d, struct health_run *h)
{
    for (struct health_run **pp = &d->health; *pp; pp = &(*pp)->next)
        if (*pp == h) {
            *pp = h->next;
            return;
        }
}

/*
 * A finished run is freed at the next tick, not now: epoll_wait may have returned events for
 * both of its fds in one batch, and the second one's tag (the address of its fd field) must
 * still be recognised as a check's then (health_event), not taken for a control connection.
 */
static struct health_run *dead;

static void graveyard(struct health_run *h)
{
    h->next = dead;
    dead = h;
}

static void bury(void)
{
    while (dead) {
        struct health_run *h = dead;
        dead = h->next;
        free(h);
    }
}

static void finish(struct daemon *d, struct health_run *h)
{
    char how[128];

    drain(d, h);
    /* A grandchild may still hold the pipe: reap() killed the group; stop reading. */
    fd_close(d, &h->pipefd);
    fd_close(d, &h->pidfd);
    h->res.ms = (mc_mono_ns() - h->started_ns) / 1000000ull;
    unlink_run(d, h);
    log_info("health check of %s@%s: %s after %llu ms", h->model, h->version,
             health_outcome(&h->res, how, sizeof(how)), (unsigned long long)h->res.ms);
    if (h->done)
        h->done(d, h->ctx, &h->res);
    graveyard(h);
}

/* Reap the child if it has exited; true if it was (and the run is finished). */
static bool reap(struct daemon *d, struct health_run *h)
{
    int st;
    pid_t p = waitpid(h->pid, &st, WNOHANG);

    if (p == 0 || (p < 0 && errno == EINTR))
        return false;
    if (p == h->pid) {
        if (WIFEXITED(st)) {
            h->res.status = WEXITSTATUS(st);
        } else {
            h->res.status = -1;
            h->res.signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        }
    } else {
        h->res.status = -1; /* reaped by someone else: cannot happen in mcached */
    }
    kill(-h->pid, SIGKILL); /* the rest of its group, if any (ESRCH otherwise) */
    h->pid = 0;
    finish(d, h);
    return true;
}

static int watch(struct daemon *d, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

    return epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
}

/* Build the child's environment: ours, minus the MCACHE_* we set, plus them. */
static char **child_env(struct daemon *d, const char *name, const char *version, char **own,
                        size_t nown)
{
    static const char *const keys[] = {"MCACHE_MODEL=",   "MCACHE_VERSION=", "MCACHE_CACHE=",
                                       "MCACHE_SHM_DIR=", "MCACHE_STORE=",   "MCACHE_SOCKET="};
    const char *vals[] = {
        name, version, d->cfg.cache, d->cfg.shm_dir, mc_registry_dir(d->reg), d->socket_path};
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + nown + 1, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool ours = false;
        for (size_t j = 0; j < nown; j++)
            if (!strncmp(environ[i], keys[j], strlen(keys[j])))
                ours = true;
        if (!ours)
            env[k++] = environ[i];
    }
    for (size_t j = 0; j < nown; j++) {
        size_t len = strlen(keys[j]) + strlen(vals[j]) + 1;
        own[j] = malloc(len);
        if (!own[j]) {
            free(env);
            return NULL;
        }
        snprintf(own[j], len, "%s%s", keys[j], vals[j]);
        env[k++] = own[j];
    }
    env[k] = NULL;
    return env;
}

/*
 * Run argv with its output into wfd, in its own process group, with default signals and an
 * empty mask (mcached blocks signals for its signalfd), stdin /dev/null. fork, not
 * posix_spawn: the child asks for SIGKILL when mcached dies (PR_SET_PDEATHSIG), so a check
 * does not outlive a kill -9 of mcached. An exec that fails reports its errno through a
 * close-on-exec pipe, so a missing command is an error here, not an exit status.
 */
static int spawn(struct daemon *d, struct health_run *h, const char *const *argv, size_t argc,
                 int wfd)
{
    char *own[6] = {0}, **env, **av;
    pid_t parent = getpid(), pid;
    int ep[2] = {-1, -1}, rc = 0, err = 0;
    sigset_t none;

    av = calloc(argc + 1, sizeof(*av));
    env = child_env(d, h->model, h->version, own, 6);
    if (!av || !env || pipe2(ep, O_CLOEXEC) != 0) {
        rc = !av || !env ? ENOMEM : errno;
        goto out;
    }
    for (size_t i = 0; i < argc; i++)
        av[i] = (char *)argv[i];
    sigemptyset(&none);
    pid = fork();
    if (pid == 0) { /* only async-signal-safe calls until exec */
        struct sigaction dfl;
        int nul;
        memset(&dfl, 0, sizeof(dfl));
        dfl.sa_handler = SIG_DFL;
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent) /* mcached died before the line above */
            _exit(127);
        for (int s = 1; s < NSIG; s++)
            sigaction(s, &dfl, NULL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        nul = open("/dev/null", O_RDONLY);
        if (nul < 0 || dup2(nul, 0) < 0 || dup2(wfd, 1) < 0 || dup2(wfd, 2) < 0)
            err = errno;
        else {
            execvpe(av[0], av, env);
            err = errno;
        }
        if (write(ep[1], &err, sizeof(err)) < 0)
            _exit(127);
        _exit(127);
    }
    if (pid < 0) {
        rc = errno;
        goto out;
    }
    setpgid(pid, pid); /* also here: kill(-pid) works before the child gets to it */
    close(ep[1]);
    ep[1] = -1;
    while (read(ep[0], &err, sizeof(err)) < 0 && errno == EINTR)
        ;
    if (err) { /* it never ran: reap it, report why */
        waitpid(pid, NULL, 0);
        rc = err;
        goto out;
    }
    h->pid = pid;
out:
    if (ep[0] >= 0)
        close(ep[0]);
    if (ep[1] >= 0)
        close(ep[1]);
    free(av);
    free(env);
    for (int i = 0; i < 6; i++)
        free(own[i]);
    return rc;
}

struct health_run *health_start(struct daemon *d, const char *name, const char *version,
                                const char *const *argv, size_t argc, uint32_t timeout_ms,
                                health_done_fn done, void *ctx, struct health_result *fail)
{
    struct health_run *h = calloc(1, sizeof(*h));
    int p[2] = {-1, -1}, rc;

    memset(fail, 0, sizeof(*fail));
    if (!h) {
        fail->status = 127;
        fail->spawn_failed = true;
        snprintf(fail->tail, sizeof(fail->tail), "out of memory starting the health check");
        return NULL;
    }
    h->pipefd = h->pidfd = -1;
    h->done = done;
    h->ctx = ctx;
    snprintf(h->model, sizeof(h->model), "%s", name);
    snprintf(h->version, sizeof(h->version), "%s", version);
    h->started_ns = mc_mono_ns();
    h->deadline_ns =
        h->started_ns + (uint64_t)(timeout_ms ? timeout_ms : MC_HEALTH_TIMEOUT_MS) * 1000000ull;
    rc = argc ? 0 : EINVAL;
    if (!rc && pipe2(p, O_CLOEXEC) != 0)
        rc = errno;
    if (!rc)
        rc = spawn(d, h, argv, argc, p[1]);
    if (p[1] >= 0)
        close(p[1]);
    if (rc) {
        if (p[0] >= 0)
            close(p[0]);
        h->res.status = 127;
        h->res.spawn_failed = true;
        snprintf(h->res.tail, sizeof(h->res.tail), "could not run \"%s\": %s", argc ? argv[0] : "",
                 strerror(rc));
        log_warn("health check of %s@%s: %s", name, version, h->res.tail);
        *fail = h->res;
        free(h);
        return NULL;
    }
    h->pipefd = p[0];
    fcntl(h->pipefd, F_SETFL, O_NONBLOCK);
    watch(d, h->pipefd, &h->pipefd);
    h->pidfd = pidfd_open_(h->pid);
    if (h->pidfd >= 0 && watch(d, h->pidfd, &h->pidfd) != 0) {
        close(h->pidfd);
        h->pidfd = -1;
    }
    h->next = d->health;
    d->health = h;
    log_info("health check of %s@%s started: %s (pid %d, timeout %u ms)", name, version, argv[0],
             (int)h->pid, timeout_ms ? timeout_ms : MC_HEALTH_TIMEOUT_MS);
    return h;
}

bool health_event(struct daemon *d, void *tag, uint32_t events)
{
    (void)events;
    for (struct health_run *h = dead; h; h = h->next)
        if (tag == &h->pipefd || tag == &h->pidfd)
            return true; /* finished earlier in this batch of events */
    for (struct health_run *h = d->health; h; h = h->next) {
        if (tag == &h->pipefd) {
            drain(d, h);
            return true;
        }
        if (tag == &h->pidfd) {
            fd_close(d, &h->pidfd);
            reap(d, h);
            return true;
        }
    }
    return false;
}

void health_tick(struct daemon *d)
{
    uint64_t now = mc_mono_ns();

    bury(); /* after the batch of events that may still name them */
    for (struct health_run *h = d->health, *next; h; h = next) {
        next = h->next;
        if (reap(d, h))
            continue;
        if (now >= h->deadline_ns && !h->res.timed_out) {
            log_warn("health check of %s@%s ran past its timeout (%.1f s): killing pid %d and "
                     "its process group",
                     h->model, h->version, (double)(now - h->started_ns) / 1e9, (int)h->pid);
            h->res.timed_out = true;
            kill(-h->pid, SIGKILL);
        }
    }
}

static void kill_run(struct daemon *d, struct health_run *h)
{
    if (h->pid > 0) {
        kill(-h->pid, SIGKILL);
        waitpid(h->pid, NULL, 0); /* SIGKILL: at once */
    }
    fd_close(d, &h->pipefd);
    fd_close(d, &h->pidfd);
    unlink_run(d, h);
    graveyard(h);
}

void health_cancel(struct daemon *d, struct health_run *h)
{
    if (h)
        kill_run(d, h);
}

void health_stop_all(struct daemon *d)
{
    while (d->health)
        kill_run(d, d->health);
    bury();
}

const char *health_outcome(const struct health_result *r, char *buf, size_t len)
{
    if (r->timed_out)
        snprintf(buf, len, "timed out after %.1f s", (double)r->ms / 1000);
    else if (r->spawn_failed)
        snprintf(buf, len, "could not be started");
    else if (r->status >= 0)
        snprintf(buf, len, "exit status %d", r->status);
    else
        snprintf(buf, len, "killed by signal %d (%s)", r->signal, strsignal(r->signal));
    return buf;
}
