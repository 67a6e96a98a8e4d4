/*
 * testutil.h - shared by the tests: a private arena directory per test
 * process, arena + reader table + writer setup, and exec'ing helpers.
 */
#ifndef MCACHE_TESTS_TESTUTIL_H
#define MCACHE_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "index/table.h"
#include "shm/arena.h"
#include "shm/readers.h"
#include "shm/reclaim.h"

/* A writer's whole world: arena, reader table, reclamation, table. */
struct tw {
    char dir[256];
    const char *cache;
    struct mc_arena a;
    struct mc_readers r;
    struct mc_reclaim rc;
    struct mc_writer w;
};

/* A fresh directory under /dev/shm for this test (removed by tdir_remove). */
void tdir_make(char *buf, size_t len);
void tdir_remove(const char *dir);

/* Create arena + readers + reclamation (no table) in a fresh directory. */
int tw_create_arena(struct tw *t, uint64_t size, uint64_t base);

/* ... and the table, and mark the arena READY. base 0: default. */
int tw_create(struct tw *t, uint64_t size, uint64_t base);
void tw_destroy(struct tw *t);

/* Publish name@version READY with `size` bytes filled by a pattern of seed. */
int tw_publish(struct tw *t, const char *name, const char *version, uint64_t size,
               uint32_t seed);

/* The pattern: byte i of a blob with seed s. */
static inline uint8_t pattern_byte(uint32_t s, uint64_t i)
{
    uint64_t x = (i >> 3) * 0x9e3779b97f4a7c15ull ^ s;
    return (uint8_t)(x >> (8 * (i & 7)));
}

/* The pattern seed the multi-process tests use for name@version. */
static inline uint32_t seed_of(const char *name, const char *version)
{
    char key[256];
    size_t n = mc_key_version(key, sizeof(key), name, __builtin_strlen(name), version,
                              __builtin_strlen(version));
    return (uint32_t)mc_key_hash(key, n, 42);
}

/* Path of a helper program built beside the tests. */
const char *helper_path(const char *name, char *buf, size_t len);

/* fork + exec a helper with argv (NULL-terminated); returns the pid. */
pid_t spawn(const char *prog, char *const argv[]);

/* Wait for pid; returns its wait status. */
int wait_status(pid_t pid);

#endif
