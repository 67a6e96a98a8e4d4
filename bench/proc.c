/*
 * proc.c - starting and talking to workers.
 *
 * A worker is this program exec'd again (`mcache-bench __worker ...`), so it
 * starts with a fresh address space and finds the arena only through what is
 * in shared memory, as a real inference worker would. We talk to it over two
 * pipes: commands on its stdin, one result line per answer on its stdout; its
 * stderr is ours. Every child gets PR_SET_PDEATHSIG so it dies with us, and
 * is registered with cleanup.c until reaped.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"

void child_init(pid_t parent)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the bench died before the prctl */
        _exit(127);
    signal(SIGPIPE, SIG_DFL);
}

int bench_spawn(struct worker *w, const char *prog, const char *const *argv, bool capture)
{
    int in[2], out[2] = {-1, -1};
    pid_t parent = getpid();

    memset(w, 0, sizeof(*w));
    if (pipe2(in, O_CLOEXEC) != 0 || (capture && pipe2(out, O_CLOEXEC) != 0))
        return bench_error("pipe: %s", strerror(errno));
    fflush(NULL);
    w->pid = fork();
    if (w->pid < 0)
        return bench_error("fork: %s", strerror(errno));
    if (w->pid == 0) {
        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);

        child_init(parent);
        dup2(in[0], 0);
        dup2(capture ? out[1] : null, 1);
        execv(prog, (char *const *)argv);
        fprintf(stderr, "mcache-bench: cannot run %s: %s\n", prog, strerror(errno));
        _exit(127);
    }
    cleanup_add_pid(w->pid);
    close(in[0]);
    w->in = fdopen(in[1], "w");
    if (capture) {
        close(out[1]);
        w->out = fdopen(out[0], "r");
    }
    if (!w->in || (capture && !w->out)) {
        worker_kill(w);
        return bench_error("fdopen: %s", strerror(errno));
    }
    return 0;
}

int bench_worker(struct bench *b, struct worker *w, const char *const *args)
{
    const char *argv[32];
    size_t n = 0;

    argv[n++] = b->self;
    argv[n++] = "__worker";
    for (size_t i = 0; args[i] && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return bench_spawn(w, b->self, argv, true);
}

int workers_start(struct bench *b, struct worker *w, size_t n, const char *const *args)
{
    for (size_t i = 0; i < n; i++)
        if (bench_worker(b, &w[i], args))
            return workers_end(w, i, -1);
    return 0;
}

int workers_end(struct worker *w, size_t n, int rc)
{
    for (size_t i = 0; i < n; i++) {
        if (rc)
            worker_kill(&w[i]);
        else
            rc = worker_finish(&w[i]);
    }
    return rc;
}

int worker_line(struct worker *w, char *buf, size_t len)
{
    size_t n;

    if (!w->out || !fgets(buf, (int)len, w->out))
        return -1;
    n = strlen(buf);
    if (n && buf[n - 1] == '\n')
        buf[n - 1] = '\0';
    return 0;
}

int worker_send(struct worker *w, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = vfprintf(w->in, fmt, ap);
    va_end(ap);
    if (rc < 0 || fflush(w->in) != 0)
        return bench_error("worker %d is gone (writing to it failed)", (int)w->pid);
    return 0;
}

static int reap(struct worker *w)
{
    int st = 0;

    if (w->in)
        fclose(w->in);
    if (w->out)
        fclose(w->out);
    w->in = w->out = NULL;
    if (w->pid <= 0)
        return 0;
    cleanup_del_pid(w->pid);
    while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR)
        ;
    w->pid = 0;
    return st;
}

int worker_finish(struct worker *w)
{
    pid_t pid = w->pid;
    int st = reap(w);

    if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
        return 0;
    if (WIFSIGNALED(st))
        return bench_error("worker %d was killed by signal %d (%s)", (int)pid, WTERMSIG(st),
                           strsignal(WTERMSIG(st)));
    return bench_error("worker %d exited with status %d (its message is above)", (int)pid,
                       WEXITSTATUS(st));
}

void worker_kill(struct worker *w)
{
    if (w->pid > 0)
        kill(w->pid, SIGKILL);
    reap(w);
}

int loopback_free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;

    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

bool line_u64(const char *line, const char *key, uint64_t *v)
{
    size_t kl = strlen(key);

    for (const char *p = line; (p = strstr(p, key)); p += kl)
        if ((p == line || p[-1] == ' ') && p[kl] == '=') {
            *v = strtoull(p + kl + 1, NULL, 0);
            return true;
        }
    return false;
}

/* The CPUs this process was allowed at its first call (restored by cpu_pin(-1)). */
static cpu_set_t *allowed_cpus(void)
{
    static cpu_set_t set;
    static bool got;

    if (!got) {
        CPU_ZERO(&set);
        if (sched_getaffinity(0, sizeof(set), &set) != 0)
            CPU_SET(0, &set);
        got = true;
    }
    return &set;
}

int cpu_nth(unsigned i)
{
    cpu_set_t *set = allowed_cpus();
    int n = CPU_COUNT(set);

    if (n <= 0)
        return -1;
    i %= (unsigned)n;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, set) && i-- == 0)
            return c;
    return -1;
}

int cpu_pin(int cpu)
{
    cpu_set_t one, *set = allowed_cpus();

    if (cpu < 0)
        return sched_setaffinity(0, sizeof(*set), set);
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    return sched_setaffinity(0, sizeof(one), &one);
}
