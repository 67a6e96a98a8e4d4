/*
 * cleanup.c - nothing the bench creates outlives it.
 *
 * Every directory it makes (arenas, LMDB environments, model files, the
 * Redis working directory) and every process it starts (workers, the hog,
 * redis-server) is registered here. cleanup_run() kills and reaps the
 * processes and removes the directories; it runs at exit, on errors, and
 * from the SIGINT/SIGTERM/SIGHUP handler, so it uses only async-signal-safe
 * calls (kill, waitpid, open, getdents64, unlinkat, close). Children also get
 * PR_SET_PDEATHSIG (proc.c), so even a SIGKILLed bench takes its workers
 * with it; its directories are named mcache-bench.<pid>.* so the next run
 * can remove them (cleanup_stale()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"

#define MAX_PIDS 512
#define MAX_DIRS 16

static pid_t pids[MAX_PIDS];
static char dirs[MAX_DIRS][512];
static int ndirs;

void cleanup_add_pid(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (__atomic_load_n(&pids[i], __ATOMIC_RELAXED) == 0) {
            __atomic_store_n(&pids[i], pid, __ATOMIC_RELEASE);
            return;
        }
}

void cleanup_del_pid(pid_t pid)
{
    for (int i = 0; i < MAX_PIDS; i++)
        if (__atomic_load_n(&pids[i], __ATOMIC_RELAXED) == pid)
            __atomic_store_n(&pids[i], 0, __ATOMIC_RELEASE);
}

void cleanup_add_dir(const char *path)
{
    int n = __atomic_load_n(&ndirs, __ATOMIC_RELAXED);

    if (n == MAX_DIRS)
        return;
    snprintf(dirs[n], sizeof(dirs[n]), "%s", path);
    /* The path is complete before the handler can see the new count. */
    __atomic_store_n(&ndirs, n + 1, __ATOMIC_RELEASE);
}

struct dirent64_raw {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Empty the directory open at fd (depth-limited recursion). */
static void rm_contents(int fd, int depth)
{
    char buf[4096];
    int removed;

    do {
        long n;

        removed = 0;
        lseek(fd, 0, SEEK_SET);
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof(buf))) > 0) {
            for (long off = 0; off < n;) {
                struct dirent64_raw *d = (struct dirent64_raw *)(buf + off);
                const char *name = d->d_name;

                off += d->d_reclen;
                if (!strcmp(name, ".") || !strcmp(name, ".."))
                    continue;
                if (unlinkat(fd, name, 0) == 0) {
                    removed++;
                    continue;
                }
                if ((errno == EISDIR || errno == EPERM) && depth < 8) {
                    int sub = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

                    if (sub >= 0) {
                        rm_contents(sub, depth + 1);
                        close(sub);
                    }
                    if (unlinkat(fd, name, AT_REMOVEDIR) == 0)
                        removed++;
                }
            }
        }
    } while (removed);
}

void rm_tree(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0) {
        unlink(path);
        return;
    }
    rm_contents(fd, 0);
    close(fd);
    rmdir(path);
}

void cleanup_run(void)
{
    int n = __atomic_load_n(&ndirs, __ATOMIC_ACQUIRE);

    for (int i = 0; i < MAX_PIDS; i++) {
        pid_t p = __atomic_exchange_n(&pids[i], 0, __ATOMIC_ACQ_REL);

        if (p > 0) {
            kill(p, SIGKILL);
            while (waitpid(p, NULL, 0) < 0 && errno == EINTR)
                ;
        }
    }
    for (int i = n - 1; i >= 0; i--)
        if (dirs[i][0])
            rm_tree(dirs[i]);
    __atomic_store_n(&ndirs, 0, __ATOMIC_RELEASE);
}

static void on_signal(int sig)
{
    static const char msg[] = "\nmcache-bench: interrupted; removing what this run created\n";

    if (write(2, msg, sizeof(msg) - 1) < 0) {
        /* nothing to do about it */
    }
    cleanup_run();
    signal(sig, SIG_DFL);
    raise(sig);
}

void cleanup_install(void)
{
    struct sigaction sa;
    int sigs[] = {SIGINT, SIGTERM, SIGHUP};

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a dead worker is an error we report, not a crash */
}

/* Is pid a live mcache-bench (not a zombie, not a reused pid)? */
static bool bench_alive(int pid)
{
    char path[64], stat[256];
    FILE *f;
    bool alive = false;

    snprintf(path, sizeof(path), "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return kill(pid, 0) == 0 || errno != ESRCH; /* no /proc: trust kill */
    if (fgets(stat, sizeof(stat), f)) {
        char *close = strrchr(stat, ')');

        /* "pid (comm) S ...": comm is at most 15 characters. */
        alive = strstr(stat, "(mcache-bench)") && close && close[1] == ' ' && close[2] != 'Z';
    }
    fclose(f);
    return alive;
}

void cleanup_stale(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[1024];
        int pid;

        if (sscanf(e->d_name, "mcache-bench.%d.", &pid) != 1 || pid <= 0 || pid == getpid())
            continue;
        if (bench_alive(pid))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        rm_tree(path);
        bench_note("removed %s, left by an earlier mcache-bench (pid %d) that was killed", path,
                   pid);
    }
    closedir(d);
}
