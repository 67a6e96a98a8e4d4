/*
 * coldload.h - the cold path: read model files straight into their arena
 * extents with io_uring and O_DIRECT, verifying the checksum as the bytes
 * arrive.
 *
 * Each file is read in aligned chunks (chunk_size, 1-4 MiB) with up to
 * queue_depth requests in flight across all files being loaded, so several
 * files load at once. There is no staging copy: the kernel DMAs into the
 * extent. As chunks complete (in any order), the contiguous prefix is fed
 * to XXH3-128 on this thread while later chunks are still in flight, so
 * hashing overlaps I/O. A load finishes with status 0 only if every byte
 * arrived and the digest matches; the caller publishes only then.
 *
 * Registered buffers: pinning the data region takes ~190 ms/GiB and holds
 * the ring's lock (submissions wait), so mc_io_register() has a thread do
 * it when the daemon is idle; until then loads use plain buffers, and reads
 * prepared after it finishes use the fixed ones.
 *
 * Fallbacks, each said once in the log: no io_uring (seccomp,
 * io_uring_disabled, or config) -> pread; a file system without O_DIRECT ->
 * buffered reads; registered buffers refused (RLIMIT_MEMLOCK) -> plain ones.
 *
 * Single-threaded: only the loader's event loop calls these. (A remote
 * load's thread, remote.c, touches only its own mc_coldload and extent.)
 */
#ifndef MCACHE_LOADER_COLDLOAD_H
#define MCACHE_LOADER_COLDLOAD_H

#include <stdbool.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define XXH_STATIC_LINKING_ONLY
#include <liburing.h>
#include <xxhash.h>

struct mc_arena;

struct mc_coldload {
    /* Set by the caller before mc_io_start(). */
    char path[1024];
    uint64_t size;    /* expected file size */
    uint8_t *dst;     /* where byte 0 goes (4 KiB-aligned) */
    uint64_t dst_cap; /* bytes available at dst (>= size rounded up to 4 KiB) */
    uint8_t want[16]; /* expected XXH3-128, canonical (big-endian) bytes */
    void *ctx;
    /* A remote load's version (its node-local copy's place); kept by the caller until done(). */
    const char *name, *version;

    /* Progress (read-only for the caller). */
    uint64_t hashed;  /* bytes verified so far, a prefix */
    uint64_t t_start; /* monotonic ns */
    uint64_t t_end;
    bool direct;      /* O_DIRECT was used */
    int status;       /* 0 ok, MC_E* when failed */
    char error[512];

    /* Private. */
    int fd;
    uint64_t next;      /* next file offset to submit */
    uint32_t inflight;  /* requests in flight */
    uint64_t nchunks;
    uint32_t *chunk_left; /* bytes still to arrive per chunk */
    uint64_t hash_chunk;  /* next chunk to hash */
    XXH3_state_t *xs;
    bool failed;
    struct mc_coldload *next_active;

    /* A remote load (path s3://..., remote.c): its thread and how it ends. */
    bool remote, thread_started;
    bool local_copy; /* it loaded from its node-local copy, not the object store */
    bool keep_local; /* io->keep_local when it started (the loop may change that one) */
    pthread_t thread;
    atomic_bool remote_done; /* set by the thread when status, error and t_end are final */
    atomic_bool cancel;
    struct mc_io *io;
};

typedef void (*mc_load_done_fn)(void *ctx, struct mc_coldload *l);

struct mc_io {
    struct io_uring ring;
    bool have_ring;
    bool fixed; /* data region registered as fixed buffers (set by reg_thread) */
    bool reg_wanted, reg_started;
    pthread_t reg_thread;
    uint32_t reg_backing;
    int efd;    /* eventfd signalled on completions (-1 without a ring) */
    unsigned qd, inflight;
    uint64_t chunk;
    uint8_t *fixed_base;
    uint64_t fixed_len;
    struct mc_coldload *active;
    struct mc_coldload *remote; /* remote loads, each on its thread (remote.c) */
    const char *store_dir;      /* the store: remote loads keep node-local copies in it */
    const char *artifacts_creds; /* remote loads' S3 credentials file (NULL: AWS_*) */
    bool keep_local;             /* remote loads keep a node-local copy (the loop's to change) */
    mc_load_done_fn done;
    uint64_t bytes_total, loads_ok, loads_failed, busy_ns;
    bool direct_io; /* try O_DIRECT */
    bool noted_buffered;
};

struct mc_io_opts {
    unsigned queue_depth;
    uint64_t chunk_size; /* 0: 1 MiB on 4 KiB pages, 4 MiB on huge pages */
    bool try_uring;
    bool try_fixed;
    bool try_direct;
};

/* Set up the ring (or the pread fallback) for arena a. Logs what it chose. */
int mc_io_init(struct mc_io *io, struct mc_arena *a, const struct mc_io_opts *o,
               mc_load_done_fn done);
void mc_io_destroy(struct mc_io *io);

/* Start registering the data region as fixed buffers (once; on a thread). */
void mc_io_register(struct mc_io *io);

/* Begin loading l. Errors opening the file are reported through done(). */
void mc_io_start(struct mc_io *io, struct mc_coldload *l);

/* Abandon a load in flight (e.g. the version was removed); waits for its I/O. */
void mc_io_cancel(struct mc_io *io, struct mc_coldload *l);

/*
 * Make progress: reap completions, hash, submit more; with no ring, do some
 * preads. Calls done() for each load that finished. wait: block until at
 * least one completion when loads are in flight.
 */
void mc_io_poll(struct mc_io *io, bool wait);

/* Is anything loading? */
static inline bool mc_io_busy(const struct mc_io *io)
{
    return io->active != 0 || io->remote != 0;
}

/*
 * remote.c: loads whose path is s3://... (the s3 artifact store), each on a
 * thread that fills the extent by parallel ranged GETs and verifies it.
 * mc_io_start/poll/cancel call these; the caller sees only done().
 */
void mc_remote_start(struct mc_io *io, struct mc_coldload *l);
void mc_remote_poll(struct mc_io *io);
bool mc_remote_cancel(struct mc_io *io, struct mc_coldload *l); /* false: not a remote load */

/*
 * A version left the registry: remove its node-local copy, if path is s3:// (a local
 * artifact is the registry's, never touched). Call it once its load, if any, has ended
 * (mc_io_cancel).
 */
void mc_remote_forget(const struct mc_io *io, const char *path, const char *name,
                      const char *version);

/* At start: remove the temporary files of node-local copies that dead writers left. */
void mc_remote_sweep(const struct mc_io *io);

/* Parse "xxh3-128:<32 hex>" into canonical bytes; 0 or MC_EINVAL. */
int mc_checksum_parse(const char *s, uint8_t out[16]);

/* Format canonical bytes as "xxh3-128:<32 hex>". */
void mc_checksum_format(const uint8_t in[16], char out[48]);

#endif
