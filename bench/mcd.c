/*
 * mcd.c - starting, asking and stopping a real mcached (see mcd.h).
 */
#include "bench/mcd.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/model.h"
#include "common/clock.h"
#include "index/proto.h"
#include "mcache.h"
#include "shm/arena.h"

int mcd_find(struct bench *b, char *bin, size_t len)
{
    const char *env = getenv("MCACHED");
    char dir[PATH_MAX];
    char *slash;

    if (env && *env) {
        snprintf(bin, len, "%s", env);
        if (access(bin, X_OK) == 0)
            return 0;
        return bench_error("$MCACHED is %s, which is not an executable file", env);
    }
    snprintf(dir, sizeof(dir), "%s", b->self);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    /* The build tree, beside it, and installed (PREFIX/bin/mcache-bench, PREFIX/sbin/mcached). */
    static const char *const where[] = {"../loader/mcached", "mcached", "../sbin/mcached"};

    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        snprintf(bin, len, "%s/%s", dir, where[i]);
        if (access(bin, X_OK) == 0)
            return 0;
    }
    if (find_on_path("mcached", bin, len))
        return 0;
    return bench_error("cannot find mcached (looked at $MCACHED, %s/../loader/mcached, "
                       "%s/mcached, %s/../sbin/mcached and $PATH): build it (make -C BUILD "
                       "mcached) or set MCACHED=/path/to/mcached",
                       dir, dir, dir);
}

int mcd_init(struct bench *b, struct mcd *d, const char *tag, const char *store, uint64_t size,
             uint64_t index_size, const char *const *extra)
{
    uint64_t base;
    int n = 0;

    memset(d, 0, sizeof(*d));
    d->fd = -1;
    if (mcd_find(b, d->bin, sizeof(d->bin)))
        return -1;
    snprintf(d->store, sizeof(d->store), "%s", store);
    snprintf(d->cache, sizeof(d->cache), "bench-%d-%s", (int)getpid(), tag);
    snprintf(d->sock, sizeof(d->sock), "%s/%s.sock", b->shm_work, tag);
    snprintf(d->log, sizeof(d->log), "%s/mcached-%s.log", b->tmp_work, tag);
    if (mc_arena_path(b->shm_work, d->cache, d->arena, sizeof(d->arena)) != 0)
        return bench_error("arena path for cache %s in %s is too long", d->cache, b->shm_work);
    snprintf(d->opt[0], sizeof(d->opt[0]), "%llu", (unsigned long long)size);
    if (bench_next_base(b, size, &base))
        return -1;
    snprintf(d->opt[1], sizeof(d->opt[1]), "0x%llx", (unsigned long long)base);
    snprintf(d->opt[2], sizeof(d->opt[2]), "%llu", (unsigned long long)index_size);
    d->argv[n++] = d->bin;
    d->argv[n++] = "--store";
    d->argv[n++] = d->store;
    d->argv[n++] = "--cache";
    d->argv[n++] = d->cache;
    d->argv[n++] = "--shm-dir";
    d->argv[n++] = b->shm_work;
    d->argv[n++] = "--socket";
    d->argv[n++] = d->sock;
    d->argv[n++] = "--size";
    d->argv[n++] = d->opt[0];
    d->argv[n++] = "--base";
    d->argv[n++] = d->opt[1];
    if (index_size) {
        d->argv[n++] = "--index-size";
        d->argv[n++] = d->opt[2];
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        if (n >= MCD_MAX_ARGS - 2)
            return bench_error("too many mcached options");
        d->argv[n++] = extra[i];
    }
    d->argc = n;
    return 0;
}

int mcd_start(struct mcd *d, bool recreate, const char *const *more)
{
    const char *argv[MCD_MAX_ARGS + 8];
    pid_t parent = getpid();
    int log, n = d->argc;

    memcpy(argv, d->argv, (size_t)n * sizeof(argv[0]));
    if (recreate)
        argv[n++] = "--recreate";
    for (size_t i = 0; more && more[i] && n < MCD_MAX_ARGS + 6; i++)
        argv[n++] = more[i];
    argv[n] = NULL;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    log = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0)
        return bench_error("cannot open mcached's log %s: %s", d->log, strerror(errno));
    fflush(NULL);
    d->pid = fork();
    if (d->pid < 0) {
        close(log);
        return bench_error("fork: %s", strerror(errno));
    }
    if (d->pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);

        child_init(parent);
        dup2(null, 0);
        dup2(null, 1);
        dup2(log, 2);
        execv(d->bin, (char *const *)argv);
        fprintf(stderr, "mcache-bench: cannot run %s: %s\n", d->bin, strerror(errno));
        _exit(127);
    }
    close(log);
    cleanup_add_pid(d->pid);
    return 0;
}

static void reap(struct mcd *d, int st)
{
    cleanup_del_pid(d->pid);
    d->pid = 0;
    d->exit_status = st;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
}

/* Has the daemon exited? (reaps it if so) */
static bool exited(struct mcd *d)
{
    int st;

    if (d->pid <= 0)
        return true;
    if (waitpid(d->pid, &st, WNOHANG) == d->pid) {
        reap(d, st);
        return true;
    }
    return false;
}

static int died(struct mcd *d)
{
    int st = d->exit_status;

    mcd_log_tail(d, 15);
    if (WIFSIGNALED(st))
        return bench_error("mcached (cache %s) was killed by signal %d; its log is above (%s)",
                           d->cache, WTERMSIG(st), d->log);
    return bench_error("mcached (cache %s) exited with status %d; its log is above (%s)", d->cache,
                       WEXITSTATUS(st), d->log);
}

int mcd_wait_ping(struct mcd *d, int timeout_ms)
{
    uint64_t t0 = mc_mono_ns(), limit = (uint64_t)timeout_ms * 1000000ull;
    struct timespec nap = {0, 100000}; /* 0.1 ms: the resolution of a restart figure */

    for (;;) {
        int status = 0, fd = -1;
        char *body = NULL;

        if (mc_ctl_connect(d->sock, &fd) == 0) {
            int rc = mc_ctl_call(fd, "ping", 0, NULL, 5000, &status, &body);

            free(body);
            if (rc == 0 && status == 0) {
                if (d->fd >= 0)
                    close(d->fd);
                d->fd = fd;
                return 0;
            }
            close(fd);
        }
        if (exited(d))
            return died(d);
        if (mc_mono_ns() - t0 > limit) {
            mcd_log_tail(d, 15);
            return bench_error("mcached (cache %s) did not answer ping on %s within %d ms; its "
                               "log is above",
                               d->cache, d->sock, timeout_ms);
        }
        nanosleep(&nap, NULL);
    }
}

int mcd_call(struct mcd *d, const char *op, unsigned nargs, const char *const *args, int timeout_ms,
             json_t **out)
{
    int status = 0, rc;
    char *body = NULL;

    if (out)
        *out = NULL;
    if (d->fd < 0 && mc_ctl_connect(d->sock, &d->fd) != 0) {
        d->fd = -1;
        if (exited(d))
            return died(d);
        return bench_error("connecting to mcached at %s: %s", d->sock, mc_last_error());
    }
    rc = mc_ctl_call(d->fd, op, nargs, args, timeout_ms, &status, &body);
    if (rc) {
        close(d->fd);
        d->fd = -1;
        free(body);
        if (exited(d))
            return died(d);
        return bench_error("mcached request \"%s\" failed: %s", op, mc_last_error());
    }
    if (status) {
        bench_error("mcached refused \"%s%s%s\": %s (%s)", op, nargs ? " " : "",
                    nargs ? args[0] : "", body ? body : "", mc_strerror(status));
        free(body);
        return status;
    }
    if (out) {
        json_error_t je;

        *out = json_loads(body ? body : "", 0, &je);
        if (!*out) {
            free(body);
            return bench_error("mcached's answer to \"%s\" is not JSON: %s", op, je.text);
        }
    }
    free(body);
    return 0;
}

long long mcd_json_int(json_t *j, const char *obj, const char *key)
{
    json_t *v = json_object_get(obj ? json_object_get(j, obj) : j, key);

    if (json_is_integer(v))
        return (long long)json_integer_value(v);
    if (json_is_true(v))
        return 1;
    if (json_is_false(v))
        return 0;
    return -1;
}

double mcd_json_real(json_t *j, const char *obj, const char *key)
{
    json_t *v = json_object_get(obj ? json_object_get(j, obj) : j, key);

    return json_is_number(v) ? json_number_value(v) : -1;
}

int mcd_stop(struct mcd *d)
{
    uint64_t t0 = mc_mono_ns();
    struct timespec nap = {0, 1000000};

    if (d->pid <= 0)
        return 0;
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    kill(d->pid, SIGTERM);
    while (!exited(d)) {
        if (mc_mono_ns() - t0 > 30000000000ull) {
            mcd_kill(d);
            mcd_log_tail(d, 15);
            return bench_error("mcached (cache %s) did not stop within 30 s of SIGTERM; killed "
                               "it",
                               d->cache);
        }
        nanosleep(&nap, NULL);
    }
    if (!WIFEXITED(d->exit_status) || WEXITSTATUS(d->exit_status) != 0)
        return died(d);
    return 0;
}

void mcd_kill(struct mcd *d)
{
    int st = 0;

    if (d->pid <= 0)
        return;
    kill(d->pid, SIGKILL);
    while (waitpid(d->pid, &st, 0) < 0 && errno == EINTR)
        ;
    reap(d, st);
}

void mcd_drop(struct mcd *d)
{
    char path[800];

    if (!d->cache[0])
        return;
    if (d->pid > 0 && mcd_stop(d) != 0)
        mcd_kill(d);
    if (d->fd >= 0)
        close(d->fd);
    d->fd = -1;
    unlink(d->arena);
    snprintf(path, sizeof(path), "%s.readers", d->arena);
    unlink(path);
    snprintf(path, sizeof(path), "%s.lock", d->arena);
    unlink(path);
    unlink(d->sock);
}

void mcd_log_tail(const struct mcd *d, int lines)
{
    char buf[8192];
    int fd = open(d->log, O_RDONLY | O_CLOEXEC);
    off_t end;
    ssize_t n;
    int seen = 0;
    char *p;

    if (fd < 0)
        return;
    end = lseek(fd, 0, SEEK_END);
    n = pread(fd, buf, sizeof(buf) - 1,
              end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    for (p = buf + n; p > buf; p--)
        if (p[-1] == '\n' && p != buf + n && ++seen > lines)
            break;
    fprintf(stderr, "---- last lines of %s ----\n%s---- end of log ----\n", d->log, p);
}
