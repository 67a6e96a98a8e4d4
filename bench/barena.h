/*
 * barena.h - arenas the benchmark fills itself, as the loader would.
 *
 * Until mcached exists, the bench plays the loader: it creates an arena, its
 * reader table and the index table, publishes models (READY, as after a
 * verified load), then closes its writable mapping. The arena stays in
 * shared memory for workers (and for this process, attaching as a reader
 * with mc_attach_dir(): the fixed-address mapping may exist only once per
 * process, hence the close first). Each arena gets a unique cache name and
 * its own base address, so several can be mapped by one process.
 */
#ifndef MCACHE_BENCH_BARENA_H
#define MCACHE_BENCH_BARENA_H

#include <stdbool.h>
#include <stdint.h>

#include "index/table.h"
#include "shm/arena.h"
#include "shm/readers.h"
#include "shm/reclaim.h"

struct bench;

struct barena {
    char dir[512];
    char cache[64];
    char path[600]; /* the arena file */
    uint64_t base;
    uint64_t page_size;
    bool writing; /* the writable mapping is open */
    struct mc_arena a;
    struct mc_readers r;
    struct mc_reclaim rc;
    struct mc_writer w;
};

/*
 * Create an arena in dir with room for data_size bytes of models and an
 * index of index_size bytes (0: the arena's default). tag names it
 * ("get100" -> cache "bench-<pid>-get100").
 */
int barena_create(struct bench *b, struct barena *ba, const char *dir, const char *tag,
                  uint64_t data_size, uint64_t index_size);

/* Publish name@version READY with size bytes of the model pattern; *sum of them. */
int barena_put_model(struct barena *ba, const char *name, const char *version, uint64_t size,
                     uint64_t *sum);

/* Publish name@version READY pointing at bytes it does not own (data_off). */
int barena_put_shared(struct barena *ba, const char *name, const char *version, uint64_t data_off,
                      uint64_t size);

/* Allocate an extent (for barena_put_shared); *off its arena offset. */
int barena_alloc(struct barena *ba, uint64_t size, uint64_t *off);

/* Point name#alias at name@version. */
int barena_alias(struct barena *ba, const char *name, const char *alias, const char *version);
/* alias -> v1 (w1 percent) and v2 (the rest): a weighted alias. */
/*
 * Give name@version's record the serving-statistics index idx (1-63), as
 * mcached does when it publishes a version, so mc_report() counts for it.
 * Before barena_seal() only.
 */
int barena_track(struct barena *ba, const char *name, const char *version, unsigned idx);

int barena_split(struct barena *ba, const char *name, const char *alias, const char *v1,
                 uint32_t w1, const char *v2);

/* Close the writable mapping; the arena stays for readers. */
void barena_seal(struct barena *ba);

/* Seal if needed and remove the arena and its reader table. */
void barena_destroy(struct barena *ba);

/* The bytes an arena of data_size takes in its file system (for space checks). */
uint64_t barena_footprint(uint64_t data_size, uint64_t index_size);

#endif
