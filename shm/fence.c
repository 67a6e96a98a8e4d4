/*
 * fence.c - the membarrier(2) system calls of the asymmetric fence; the
 * fences themselves are inline in fence.h.
 */
#include "shm/fence.h"

#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/err.h"

static int membarrier(int cmd, unsigned flags)
{
    return (int)syscall(__NR_membarrier, cmd, flags, 0);
}

bool mc_fence_loader_supported(void)
{
    int cmds = membarrier(MEMBARRIER_CMD_QUERY, 0);

    return cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
           (cmds & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED);
}

int mc_fence_loader_membarrier(void)
{
    if (membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0) != 0)
        return mc_err(MC_EIO, "membarrier(GLOBAL_EXPEDITED): %s", strerror(errno));
    return 0;
}

static pthread_once_t reg_once = PTHREAD_ONCE_INIT;
static bool registered;

static void reg(void)
{
    registered = membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0) == 0;
}

bool mc_fence_reader_register(void)
{
    pthread_once(&reg_once, reg);
    return registered;
}
