/*
 * testutil.c - the ARENAS and PROCESSES sections of the tests' helpers (see
 * testutil.h).
 */
#include "tests/helpers/testutil.h"

#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/synth.h"
#include "common/err.h"
#include "shm/slab.h"

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * Test directories are /dev/shm/mctest.<pid>.<random>. A test that died
 * (crash, timeout, failed assertion outside setup/teardown) leaves its
 * directory, arenas and all; the next test sweeps those of dead pids.
 */
static void sweep_dead(void)
{
    DIR *d = opendir("/dev/shm");
    struct dirent *e;
    char p[512];

    while (d && (e = readdir(d))) {
        int pid;

        if (sscanf(e->d_name, "mctest.%d.", &pid) != 1 || pid <= 0)
            continue;
        if (kill(pid, 0) == 0 || errno != ESRCH)
            continue;
        snprintf(p, sizeof(p), "/dev/shm/%s", e->d_name);
        rm_tree(p);
    }
    if (d)
        closedir(d);
}

void tdir_make(char *buf, size_t len)
{
    sweep_dead();
    snprintf(buf, len, "/dev/shm/mctest.%d.XXXXXX", (int)getpid());
    if (!mkdtemp(buf)) {
        perror("mkdtemp");
        abort();
    }
}

void tdir_remove(const char *dir)
{
    rm_tree(dir);
}

int tw_create_arena(struct tw *t, uint64_t size, uint64_t base)
{
    struct mc_arena_opts o = {0};
    int rc;

    memset(t, 0, sizeof(*t));
    tdir_make(t->dir, sizeof(t->dir));
    t->cache = "test";
    o.dir = t->dir;
    o.cache = t->cache;
    o.size = size;
    o.base = base;
    rc = mc_arena_create(&o, &t->a);
    if (rc)
        return rc;
    rc = mc_readers_create(t->dir, t->cache, 64, 0666, t->a.hdr->created_ns, &t->r);
    if (rc)
        return rc;
    return mc_reclaim_init(&t->rc, &t->a, &t->r, mc_table_free_record, &t->w);
}

int tw_create(struct tw *t, uint64_t size, uint64_t base)
{
    int rc = tw_create_arena(t, size, base);

    if (rc)
        return rc;
    rc = mc_table_create(&t->w, &t->a, &t->rc);
    if (rc)
        return rc;
    t->a.hdr->state = MC_ARENA_READY;
    return 0;
}

void tw_destroy(struct tw *t)
{
    mc_reclaim_destroy(&t->rc);
    mc_readers_close(&t->r);
    mc_arena_close(&t->a);
    tdir_remove(t->dir);
}

int tw_publish(struct tw *t, const char *name, const char *version, uint64_t size,
               uint32_t seed)
{
    uint64_t off;
    char meta[64];
    int rc;

    rc = mc_extent_alloc(&t->a, &t->a.hdr->data_ext, size, 0, &off);
    if (rc)
        return rc;
    for (uint64_t i = 0; i < size; i++)
        ((uint8_t *)t->a.base)[off + i] = pattern_byte(seed, i);
    snprintf(meta, sizeof(meta), "{\"seed\":%u}", seed);
    rc = synth_version(&t->w, &t->a, name, version, meta, off, size, off);
    if (rc)
        mc_extent_free(&t->a, &t->a.hdr->data_ext, off, size);
    return rc;
}

const char *helper_path(const char *name, char *buf, size_t len)
{
    const char *bin = getenv("MC_TEST_BIN");

    snprintf(buf, len, "%s/%s", bin ? bin : ".", name);
    return buf;
}

pid_t spawn(const char *prog, char *const argv[])
{
    pid_t pid = fork();

    if (pid == 0) {
        execv(prog, argv);
        _exit(127);
    }
    return pid;
}

int wait_status(pid_t pid)
{
    int st = 0;

    while (waitpid(pid, &st, 0) < 0)
        ;
    return st;
}
