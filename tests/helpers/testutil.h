/*
 * testutil.h - what the tests share, in one static library (mc_testutil,
 * tests/helpers/CMakeLists.txt):
 *
 *   ARENAS     testutil.c      a private arena directory per test process;
 *                              arena, reader table, reclamation and table set
 *                              up as the writer has them; models published
 *                              with a byte pattern
 *   PROCESSES  testutil.c      helper programs built beside the tests,
 *                              spawned and reaped
 *   REGISTRY   testutil_reg.c  the metadata backend the registry tests run
 *                              against, scratch stores and files, a canonical
 *                              dump of a registry's state, a warning
 *                              collector, and the reg_helper program run as a
 *                              separate process
 *
 * The REGISTRY section calls the registry library; a test that uses it links
 * one after mc_testutil, the one it means (mcache_registry_crash for crash
 * points, mcache_registry otherwise). Its functions live in their own object
 * so that a test that does not use them needs no registry at all.
 */
#ifndef MCACHE_TESTS_TESTUTIL_H
#define MCACHE_TESTS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "index/table.h"
#include "registry/registry.h"
#include "shm/arena.h"
#include "shm/readers.h"
#include "shm/reclaim.h"

/* ---- ARENAS ---------------------------------------------------------------- */

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

/* ---- PROCESSES ------------------------------------------------------------- */

/* Path of a helper program built beside the tests ($MC_TEST_BIN, else "."). */
const char *helper_path(const char *name, char *buf, size_t len);

/* fork + exec a helper with argv (NULL-terminated); returns the pid. */
pid_t spawn(const char *prog, char *const argv[]);

/* Wait for pid; returns its wait status. */
int wait_status(pid_t pid);

/* ---- REGISTRY -------------------------------------------------------------- */

/* A new empty directory under $MC_TEST_TMP (or base, or /tmp); malloc'd path. */
char *tu_tempdir(const char *base);

/* rm -rf */
void tu_rm_rf(const char *path);

/* Write len bytes; a file of size bytes of seeded pseudo-random data. */
void tu_write(const char *path, const void *data, size_t len);
void tu_make_file(const char *path, size_t size, unsigned seed);

/* Whole file into a malloc'd buffer (NUL-terminated); *len may be NULL. */
char *tu_read(const char *path, size_t *len);

/* Copy a file; copy the manifest files (lock, manifest, journal) of a store. */
void tu_copy(const char *from, const char *to);
void tu_copy_manifest(const char *from_store, const char *to_store);

/* Every model, version (with its metadata JSON) and alias (with history), as text. */
char *tu_dump(struct mc_registry *r);

/* Entries in a directory whose names start with prefix (-1 if it cannot be read). */
int tu_count_entries(const char *dir, const char *prefix);

/* Collects warnings. */
struct tu_warnings {
    int count;
    char last[1024];
};
void tu_warn(void *arg, const char *msg);

/*
 * The metadata backend the tests run against (mc_registry_opts.backend):
 * $MC_TEST_BACKEND, "journal" if unset. Each backend is one case here, which
 * also prepares what it needs beyond the store directory; tu_open() passes
 * it to every open. tests/registry/CMakeLists.txt runs registry_api once per
 * backend it lists. A test of one backend's own files asks tu_backend_is()
 * first.
 */
const char *tu_backend(void);
bool tu_backend_is(const char *name);

/*
 * The postgres backend's tests: $MCACHE_TEST_PG_URL (set by tests/fleet/pg.sh
 * run), or NULL; and the URL of dir's own registry in that database (a
 * schema of its own, made and migrated on first use; valid until the next call).
 */
const char *tu_pg_url(void);
const char *tu_pg_store_url(const char *dir);

/*
 * What tu_backend() persisted of a store, for tests that look for what must
 * (not) be written: path is STORE/journal (the log) or STORE/manifest (the
 * snapshot); the journal reads that file, postgres the matching table's rows
 * (one per line). malloc'd; NULL if there is none.
 */
char *tu_persisted(const char *path, size_t *len);

/* Open on tu_backend(), with warnings collected into w (flags as mc_registry_opts). */
int tu_open(const char *dir, unsigned flags, struct tu_warnings *w, struct mc_registry **out);

/* mc_registry_check() and mc_registry_repair() on tu_backend(). */
int tu_check(const char *dir, unsigned flags, void (*report)(void *, const char *), void *arg,
             size_t *problems);
int tu_repair(const char *dir, void (*report)(void *, const char *), void *arg);

/* The reg_helper program beside this test binary. */
const char *tu_helper(void);

/*
 * Run reg_helper with args (NULL-terminated) and, if crash_at is not NULL,
 * MCACHE_CRASH_AT=crash_at; stdout goes to out_path if not NULL. Returns
 * the pid; tu_wait() returns the raw wait status.
 */
pid_t tu_spawn(const char *crash_at, const char *out_path, const char *const *args);
int tu_wait(pid_t pid);

#endif
