/*
 * reg_util.h - what the registry tests share: the backend they run against,
 * scratch directories, files, a canonical dump of a registry's state, a
 * warning collector, and running the reg_helper program as a separate
 * process.
 */
#ifndef MCACHE_TESTS_REG_UTIL_H
#define MCACHE_TESTS_REG_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "registry/registry.h"

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
 * it to every open. tests/registry.cmake runs registry_api once per backend
 * it lists. A test of one backend's own files asks tu_backend_is() first.
 */
const char *tu_backend(void);
bool tu_backend_is(const char *name);

/* Open on tu_backend(), with warnings collected into w (flags as mc_registry_opts). */
int tu_open(const char *dir, unsigned flags, struct tu_warnings *w, struct mc_registry **out);

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
