/*
 * stores.h - one model, served by every system the start, memory and
 * pressure scenarios compare, with the same bytes:
 *
 *   mcache            an arena in --shm-dir (4 KiB pages), and one in
 *                     --huge-dir when huge pages are available
 *   read() / mmap     a model file in --tmp-dir (a disk: the page cache)
 *   LMDB              an environment in --tmp-dir holding the model as one
 *                     value, read zero-copy
 *
 * and the fresh-worker runs over them.
 */
#ifndef MCACHE_BENCH_STORES_H
#define MCACHE_BENCH_STORES_H

#include <stdbool.h>
#include <stdint.h>

#include "bench/barena.h"
#include "bench/bench.h"

#define MODEL_NAME    "bench-model"
#define MODEL_VERSION "1.0.0"
#define MODEL_KEY     "bench-model@1.0.0"

enum msys { MS_MCACHE = 0, MS_MCACHE_HUGE, MS_READ, MS_MMAP, MS_LMDB, MS_COUNT };

enum {
    ST_ARENA = 1 << 0,
    ST_HUGE = 1 << 1, /* if huge pages are available */
    ST_FILE = 1 << 2,
    ST_LMDB = 1 << 3,
};

struct stores {
    uint64_t size;
    uint64_t sum; /* of the model's words: what every reader must find */
    bool have[MS_COUNT];
    struct barena arena, huge;
    char file[600];
    char lmdb[600];      /* environment directory */
    char lmdb_data[700]; /* its data.mdb */
    char why_no_huge[512];
};

/* Display name of a system ("mcache (4 KiB pages)"). */
const char *msys_name(enum msys m);

/*
 * Make the stores asked for (ST_*) of a size-byte model, checking space
 * first (a clear error naming what is needed and where). tag makes names
 * unique. ST_HUGE is skipped with s->why_no_huge set when not available.
 */
int stores_make(struct bench *b, struct stores *s, const char *tag, uint64_t size, unsigned what);

/* Remove everything stores_make() made. */
void stores_drop(struct stores *s);

/* Worker arguments for a system (NULL-terminated, into args[8]). */
void stores_args(const struct stores *s, enum msys m, const char **args);

/* Read the page-cached files back in if the page cache dropped any of them. */
int stores_rewarm(const struct stores *s);

/* What a `read` worker measured. */
struct read_run {
    uint64_t attach_ns, ready_ns, first_ns, second_ns;
};

/* Run one fresh `read` worker over system m and check the sum. */
int stores_read(struct bench *b, const struct stores *s, enum msys m, struct read_run *r);

/* Check a worker's "sum=" against the model's. */
int stores_check_sum(const struct stores *s, enum msys m, const char *line);

/* Is huge-page backing usable for an arena of this data size? why gets the reason if not. */
bool huge_available(struct bench *b, uint64_t data_size, char *why, size_t len);

#endif
