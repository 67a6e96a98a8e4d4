/*
 * fence.c - membarrier(2) for the asymmetric fence (see fence.h).
 */
#include "shm/fence.h"

#include <errno.h>
#include <stdint.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/err.h"
#include "shm/arena.h"

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

int mc_fence_readers(void)
{
    if (membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0) != 0)
        return mc_err(MC_EIO, "membarrier(GLOBAL_EXPEDITED): %s", strerror(errno));
    return 0;
}

int mc_fence_before_pins(const struct mc_arena_hdr *h)
{
    if (__atomic_load_n(&h->fence, __ATOMIC_RELAXED) == MC_FENCE_MEMBARRIER)
        return mc_fence_readers(); /* also a full barrier here */
#if defined(__SANITIZE_THREAD__)
    /* GCC's ThreadSanitizer does not support fences: a locked RMW instead. */
    static uint64_t word;
    __atomic_fetch_add(&word, 0, __ATOMIC_SEQ_CST);
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
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
