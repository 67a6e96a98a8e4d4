/*
 * files.c - fsyncing directories for the registry's file-backed parts, and
 * the crash points (see files.h).
 */
#include "registry/files.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int mc_fsync_dir(int dirfd, const char *rel)
{
    int fd = rel ? openat(dirfd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : dirfd;
    int rc = 0;

    if (fd < 0)
        return -errno;
    if (fsync(fd) != 0)
        rc = -errno;
    if (rel)
        close(fd);
    return rc;
}

#ifdef MC_REGISTRY_CRASHPOINTS
void mc_crashpoint(const char *point)
{
    const char *at = getenv("MCACHE_CRASH_AT");

    if (at && strcmp(at, point) == 0)
        kill(getpid(), SIGKILL);
}
#endif
