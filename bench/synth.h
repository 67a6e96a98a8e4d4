/*
 * synth.h - synthetic fixtures the benchmark and the tests share (target
 * mcache_synth): made-up models where a measurement or a test needs many
 * of them quickly and the bytes or the history do not matter.
 *
 *   synth_version()   one version published READY in an arena's table, as
 *                     mcached would after a verified load (bench/barena.c,
 *                     tests/helpers/testutil.c).
 *   synth_registry()  a registry store of many models, written as its
 *                     journal would be by pushes one at a time (bench's
 *                     "registry" scenario; the manifest tests' scale runs).
 *
 * A program that calls synth_registry() links a registry library after
 * mcache_synth (mcache_registry, or mcache_registry_crash in the tests).
 */
#ifndef MCACHE_BENCH_SYNTH_H
#define MCACHE_BENCH_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "index/table.h"
#include "shm/arena.h"

/*
 * Publish name@version READY through w: size bytes at arena offset data_off,
 * in the extent at extent_off that it owns (0: it owns none, its bytes
 * belong to another version). meta: its metadata JSON (NULL: "{}"). Its
 * checksum is a well-formed made-up one. 0 or an MC_E* code (as
 * mc_table_put_version()).
 */
int synth_version(struct mc_writer *w, struct mc_arena *a, const char *name, const char *version,
                  const char *meta, uint64_t data_off, uint64_t size, uint64_t extent_off);

/*
 * Fill a new store at dir with `models` models of `versions` versions each
 * (made-up metadata, sizes and checksums; no artifact files) and one alias
 * per model, appended as journal records with one sync at the end, as if
 * pushed one by one. Every tenth model is in a namespace. Replaying it is
 * what mcache-bench's "registry" scenario times.
 */
int synth_registry(const char *dir, size_t models, size_t versions);

#endif
