/*
 * slow_fsync.c - an LD_PRELOAD shim for tests/serve: fsync() of a staged
 * push (a path with "/tmp/push-" in it, see registry/artifacts_local.c)
 * takes MCACHE_TEST_SLOW_FSYNC_MS longer, as a big upload's fsync does on
 * a real disk. Every other fsync is libc's, untouched.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((visibility("default"))) int fsync(int fd)
{
    static int (*real)(int);
    const char *ms = getenv("MCACHE_TEST_SLOW_FSYNC_MS");
    char link[64], path[4096];
    ssize_t n;

    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, path, sizeof(path) - 1);
    if (ms && n > 0) {
        path[n] = '\0';
        if (strstr(path, "/tmp/push-")) {
            long v = atol(ms);
            struct timespec ts = {v / 1000, (v % 1000) * 1000000L};

            nanosleep(&ts, NULL);
        }
    }
    return real(fd);
}
