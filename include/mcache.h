/*
 * mcache.h - libmcache, the reader API of mcache.
 *
 * mcache keeps model weights in one POSIX shared-memory arena per host.
 * A single loader daemon (mcached) reads each model once, verifies its
 * checksum and publishes it; worker processes attach read-only and get
 * zero-copy pointers to the bytes.
 *
 * THE WARM PATH
 *   mc_get() and mc_release() make no system call, take no lock and do not
 *   allocate once the calling thread has done its first mc_get() on a cache
 *   (a thread holding more than 5 models at once claims another reader slot,
 *   one system call). Each thread remembers, per cache, what the references
 *   it used resolved to, for as long as the cache's table is unchanged: a
 *   repeated get compares two strings and reads one word of the table. A
 *   new one is a hash of "name@ref" and a probe of a lock-free table in
 *   shared memory; "latest" is kept by mcached in each model's version
 *   list; a range is compiled once per thread and matched against the
 *   model's version list. The memory for this is private to the thread
 *   (about 1 MiB of address space per thread and cache, committed only as
 *   gets fill it).
 *
 * CAVEATS AND RESTRICTIONS (read these)
 *   - Address. The arena is mapped at the same virtual address in every
 *     process (the table in it holds absolute pointers). Each cache name
 *     has its own default address (one of 16 slots, by a hash of the name),
 *     so a process can attach several caches; but two names can share a
 *     slot. mc_attach() fails with MC_EADDRINUSE if the range is already
 *     taken in the calling process, naming the range and the attached
 *     cache that sits there, if one does; start mcached for one of them
 *     with another --base (and --recreate) to move it.
 *   - Read-only. The arena is mapped PROT_READ. Writing through a pointer
 *     from mc_model_data() faults (SIGSEGV). Copy if you need to modify.
 *   - Lifetimes. A pointer returned by any mc_model_*() accessor is valid
 *     until mc_release() of that model; after that, the memory may be
 *     reused by another model. The mc_model handle itself is invalid after
 *     mc_release(). Strings from mc_last_error() and mc_strerror() are valid
 *     until the next mcache call on the same thread.
 *   - Holding. A model you hold (between mc_get() and mc_release()) is never
 *     evicted or freed, even if its alias moves or it is removed from the
 *     registry. Holding many models for hours is fine; holding models you no
 *     longer use wastes arena space that could serve other models.
 *   - Crashes. If a worker dies (even by SIGKILL) its holds vanish with it:
 *     liveness is an OFD lock per reader slot that the kernel drops, so a
 *     reused pid can never keep memory alive.
 *   - Threads. Everything here is safe to call from any thread at once. Each
 *     thread that calls mc_get() claims its own reader slot on first use (one
 *     lock and a few system calls, once), and gives it back when it exits. A
 *     model may be released by a thread other than the one that got it.
 *     mc_detach() must not race with other calls on the same mc_cache.
 *   - fork(). A cache attached before fork() is unusable in the child:
 *     mc_get() fails with MC_EINVAL, mc_release() of a model the parent got
 *     does nothing (the hold stays the parent's), and mc_detach() unmaps it
 *     without touching the parent's reader slots. The inherited mapping
 *     occupies the arena's address, so in the child mc_detach() the
 *     inherited cache first, then mc_attach() again. The parent is
 *     unaffected.
 *   - Staleness. If mcached rebuilds the arena (after an incompatible
 *     upgrade), models you hold stay valid, and mc_get() returns MC_ESTALE:
 *     release what you hold, mc_detach() and mc_attach() again.
 *
 * ERRORS
 *   Every function that can fail returns 0 or a negative MC_E* code, and
 *   lists them under "Returns" (as lmdb.h does) with when each comes back.
 *   mc_strerror() names the code; mc_last_error() gives this thread's last
 *   detailed message (what was wrong, the value, what to do). A system call
 *   that fails in a way not listed gives the nearest code for its errno
 *   (MC_EIO if none is near), and the message names the call.
 */
#ifndef MCACHE_H
#define MCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define MC_API __attribute__((visibility("default")))
#else
#define MC_API
#endif

#define MCACHE_VERSION_MAJOR 0
#define MCACHE_VERSION_MINOR 4
#define MCACHE_VERSION_PATCH 0

/* Result codes: 0 or one of these (all negative). */
#define MC_OK           0
#define MC_EINVAL       (-1)  /* an argument is malformed */
#define MC_ENOENT       (-2)  /* no such cache, model, version or alias */
#define MC_ENOTRESIDENT (-3)  /* registered, but not loaded in the arena */
#define MC_ENOMEM       (-4)  /* out of process memory */
#define MC_ENOSPC       (-5)  /* out of arena, disk or table space */
#define MC_EFORMAT      (-6)  /* arena or manifest written by an incompatible format */
#define MC_EBADARENA    (-7)  /* arena header is not an mcache arena, or damaged */
#define MC_EADDRINUSE   (-8)  /* the arena's base address is taken in this process */
#define MC_EIO          (-9)  /* an I/O or system call failed */
#define MC_ETOOMANY     (-10) /* reader slots exhausted */
#define MC_ESTALE       (-11) /* the arena was superseded; re-attach */
#define MC_EPERM        (-12) /* permission denied */
#define MC_EBUSY        (-13) /* in use, or held back by a reader; try later */
#define MC_ETIMEDOUT    (-14) /* a wait timed out */
#define MC_ENODAEMON    (-15) /* mcached is not running or not reachable */
#define MC_EEXIST       (-16) /* already exists */
#define MC_ECORRUPT     (-17) /* checksum mismatch or damaged data */
#define MC_ENOTSUP      (-18) /* not supported here */
#define MC_EFAILED      (-19) /* the model failed to load; see status */
#define MC_ECODE_MIN    (-19)

/* An attached cache (one arena). Opaque. */
typedef struct mc_cache mc_cache;

/* A model version held by this process. Opaque. */
typedef struct mc_model mc_model;

/*
 * Attach to the cache named `cache` (NULL or "": $MCACHE_CACHE, else "default"),
 * whose arena lives in `dir` (NULL or "": $MCACHE_SHM_DIR, else /dev/shm).
 * Maps the arena read-only at its base address and opens the reader table.
 *
 * Returns 0 (and *out), or:
 *   MC_EINVAL      out is NULL; the cache name is not 1 to 63 letters, digits,
 *                  '-' or '_'; the directory's path is too long
 *   MC_EBUSY       this cache is already attached in this process (use that
 *                  mc_cache from every thread, or mc_detach() it first)
 *   MC_ENOENT      no arena (or no reader table beside it): mcached does not
 *                  serve this cache in this directory
 *   MC_EPERM       the arena is not readable, or the reader table not writable,
 *                  by this user: by default only mcached's uid and its primary
 *                  group may attach (mcached --reader-group names another
 *                  group; docs/security.md); the message names the file and
 *                  the group to ask for
 *   MC_EBADARENA   the file at the arena's path is not an mcache arena (not a
 *                  regular file, too short, wrong magic, size or header), or the
 *                  reader table beside it is not one
 *   MC_EFORMAT     the arena was written with another layout format: use the
 *                  libmcache that matches the running mcached
 *   MC_EADDRINUSE  the arena's base address is already mapped in this process,
 *                  usually by another cache whose name shares the default
 *                  address slot (restart one mcached with --base ADDR --recreate)
 *   MC_ESTALE      the arena is not serving yet, or is being replaced (its
 *                  reader table belongs to another arena): try again
 *   MC_ENOMEM      out of memory (this process's, or for the mapping)
 *   MC_EIO         reading the arena's header failed
 */
MC_API int mc_attach(const char *cache, mc_cache **out);
MC_API int mc_attach_dir(const char *dir, const char *cache, mc_cache **out);

/*
 * Detach. Models still held are released first: their pointers and handles
 * become invalid (do not use or release them afterwards), except in a
 * fork()ed child, where releasing an inherited model after detaching its
 * cache stays the no-op it was. Safe on NULL.
 */
MC_API void mc_detach(mc_cache *c);

/*
 * Get model `name` at reference `ref` and hold it until mc_release().
 * `ref` is an exact version ("1.2.3", "2.0.0-rc.1"), an alias
 * ("production"), "latest" (the highest version that is not a prerelease),
 * or a range ("^1.2", "~1.2.3", ">=1.0.0 <2.0.0", "1.x", "^1 || ^2").
 * NULL means "latest".
 *
 * Returns 0 (and *out), or:
 *   MC_ENOENT        nothing registered matches: no such model, version or
 *                    alias, no version in the range, or only prereleases for
 *                    "latest"
 *   MC_ENOTRESIDENT  the matching version is registered but not loaded
 *                    (mc_get_load() asks mcached to load it)
 *   MC_EFAILED       the matching version's last load failed (the message
 *                    says why)
 *   MC_EINVAL        c, name or out is NULL; `ref` is none of the forms above
 *                    (empty, or a malformed range: the message gives the
 *                    parser's reason); "name@ref" exceeds 511 bytes; or c was
 *                    attached before a fork() and this is the child
 *   MC_ESTALE        the arena was superseded by a new one: release, detach,
 *                    attach again
 *   MC_ETOOMANY      this thread already holds 320 models, or every reader slot
 *                    of the cache is taken (the first get of a thread, or of
 *                    its 6th, 11th... model held, claims a slot)
 *   MC_ENOMEM        out of memory for this thread's state, model handles or
 *                    a long range (cold path only)
 */
MC_API int mc_get(mc_cache *c, const char *name, const char *ref, mc_model **out);

/*
 * Like mc_get(), but if the version is registered and not resident (or its
 * last load failed), ask mcached to load it and wait up to timeout_ms (-1:
 * no limit) for it to be published. A name, alias or version the arena does
 * not know (yet) is asked of mcached too, which answers from a fresh read of
 * the registry: a version pushed a moment ago by another process is found.
 * Concurrent requests for one version become one load. This path makes
 * system calls (mcached's control socket, found in the arena header).
 *
 * An mcached that is starting (it listens only once it has mirrored the
 * registry) is waited for, within timeout_ms and at most 30 s.
 *
 * Returns 0 (and *out), any code of mc_get() other than MC_ENOTRESIDENT,
 * MC_EFAILED and MC_ENOENT as mc_get() returns it (MC_ENOENT too when the
 * arena names no mcached at all), or, when mcached was asked:
 *   MC_ENODAEMON  no mcached serves the arena, nothing listens on its
 *                 socket, the connection was lost, or mcached is shutting down
 *   MC_ETIMEDOUT  the version was not published within timeout_ms
 *   MC_EPERM      this user may not use mcached (the socket's permissions,
 *                 or not in its reader group), or mcached may not open the
 *                 artifact
 *   MC_EBUSY      mcached has as many connections open as it allows
 *   MC_ENOENT     the registry has no ready version matching (name, ref), it
 *                 was removed while loading, or its artifact file is gone
 *   MC_EFAILED    the load failed because of the artifact (the message says
 *                 why: empty, unreadable tensors, ...)
 *   MC_ECORRUPT   the artifact's bytes do not match its checksum, or the file
 *                 is shorter than registered
 *   MC_ENOSPC     the arena has no room for it (its bytes, even after evicting,
 *                 or its record or tensor table in the index)
 *   MC_ENOMEM     out of memory, in this process or in mcached
 *   MC_EIO        reading the artifact failed, or a socket call failed
 *   MC_EINVAL     mcached's answer was not a valid response frame
 * A load that succeeded is followed by mc_get(), with its codes (the
 * version may have been evicted again meanwhile: MC_ENOTRESIDENT). Through
 * a weighted alias, mcached is asked for the version the get picked, and a
 * get that picks another version not resident asks again, at most once per
 * target, all within the one timeout_ms.
 */
MC_API int mc_get_load(mc_cache *c, const char *name, const char *ref, int timeout_ms,
                       mc_model **out);

/*
 * Like mc_get(), but a weighted alias (one that splits traffic between up
 * to 4 versions, `mcache alias NAME ALIAS 1.0.0=90 2.0.0=10`) picks the
 * same version for the same key (a user or session id: any key_len bytes)
 * for as long as its targets and weights stay. With two targets (a canary),
 * when one's weight grows the keys it had stay with it (10 -> 50: the first
 * 10% stay where they were); with three or four, that holds for the first
 * and the last target only. See docs/deployments.md. mc_get() through a weighted alias picks by weight at
 * every call instead, with a private generator (no system call). Any other
 * reference resolves as in mc_get(), and the key is ignored.
 * Returns what mc_get() returns, or MC_EINVAL if key is NULL with key_len > 0.
 */
MC_API int mc_get_keyed(mc_cache *c, const char *name, const char *ref, const void *key,
                        size_t key_len, mc_model **out);

/*
 * Release a model from mc_get(). Cheap; no system call. Safe on NULL; a
 * second release of the same handle (before another mc_get()) is ignored.
 */
MC_API void mc_release(mc_model *m);

/*
 * Record one request served with m: its latency in nanoseconds, whether it
 * succeeded (ok != 0) and optional work units (tokens, images; 0: none).
 * mcached sums what every worker reports per version (`mcache stats`,
 * `mcache compare`) and its rollouts compare versions with it. No system
 * call, no lock, no cache line shared with another thread: a few stores to
 * this thread's counters in shared memory (the first report of a thread
 * that never called mc_get() on the cache claims it a reader slot). Counts
 * survive the worker's death. Call it before mc_release(m).
 * Returns 0, or:
 *   MC_EINVAL   m is NULL or released, or its cache was attached before a
 *               fork() and this is the child
 *   MC_ENOTSUP  the version is not tracked: every statistics index of the
 *               cache (63) is taken by other resident versions; the report
 *               is dropped
 *   MC_ETOOMANY, MC_ENOMEM  claiming this thread's reader slot failed
 */
MC_API int mc_report(mc_model *m, uint64_t latency_ns, int ok, uint64_t units);

/* Accessors. Pointers are valid until mc_release(m). */
MC_API const void *mc_model_data(const mc_model *m);     /* the artifact's bytes */
MC_API size_t mc_model_size(const mc_model *m);          /* in bytes */
MC_API const char *mc_model_name(const mc_model *m);     /* "resnet" or "org/model" */
MC_API const char *mc_model_version(const mc_model *m);  /* "1.2.3" */
MC_API const char *mc_model_format(const mc_model *m);   /* safetensors|gguf|onnx|other */
MC_API const char *mc_model_checksum(const mc_model *m); /* "xxh3-128:<32 hex digits>" */
MC_API const char *mc_model_metadata(const mc_model *m); /* JSON object text */
MC_API uint64_t mc_model_generation(const mc_model *m);  /* arena generation when published */

/*
 * Tensors of a safetensors model, validated by mcached when it loaded the
 * model. Every pointer points into the arena (zero-copy, read-only) and is
 * valid until mc_release(m). Other formats have no tensors.
 */
struct mc_tensor {
    const char *name;      /* as in the file */
    const char *dtype;     /* "F32", "F16", "BF16", "I64", "U8", "BOOL", ... */
    unsigned elem_size;    /* bytes per element */
    unsigned ndim;
    const uint64_t *shape; /* ndim dimensions */
    const void *data;      /* the tensor's bytes */
    uint64_t size;         /* bytes (product of shape times elem_size) */
    int aligned;           /* data is aligned to elem_size */
};

/* Number of tensors (0 if the model is not safetensors). */
MC_API size_t mc_model_tensor_count(const mc_model *m);

/*
 * The i-th tensor, in name order.
 *
 * Returns 0 (and *out), or:
 *   MC_EINVAL  m or out is NULL, or m was released
 *   MC_ENOENT  i >= mc_model_tensor_count(m) (always, for other formats)
 */
MC_API int mc_model_tensor_at(const mc_model *m, size_t i, struct mc_tensor *out);

/*
 * The tensor called name.
 *
 * Returns 0 (and *out), or:
 *   MC_EINVAL  m, name or out is NULL, or m was released
 *   MC_ENOENT  the model has no tensor of that name (or is not safetensors)
 */
MC_API int mc_model_tensor_find(const mc_model *m, const char *name, struct mc_tensor *out);

/* The safetensors __metadata__ object as JSON text, or NULL if none. */
MC_API const char *mc_model_tensor_metadata(const mc_model *m);

/* What the arena looks like now (a snapshot; no locks). */
struct mc_cache_info {
    uint64_t base;          /* virtual address of the mapping */
    uint64_t size;          /* total arena bytes */
    uint64_t page_size;     /* page size backing it (4096, 2097152) */
    uint64_t data_size;     /* bytes for model data */
    uint64_t data_used;     /* bytes of model data allocated */
    uint64_t data_largest_free; /* largest free extent */
    uint64_t index_size;    /* bytes for the index (table, records) */
    uint64_t index_used;
    uint64_t models;        /* resident model versions */
    uint64_t entries;       /* table entries (versions, aliases, models) */
    uint64_t generation;    /* bumped on every publish, move and removal */
    uint64_t epoch;         /* reclamation epoch */
    uint64_t created_ns;    /* CLOCK_REALTIME at creation */
    uint32_t loader_pid;    /* pid of the mcached that owns it (0: none) */
    uint32_t format;        /* arena layout format */
};

/*
 * Fill *out from the arena's header and table. Returns 0, or MC_EINVAL if c
 * or out is NULL.
 */
MC_API int mc_cache_info(mc_cache *c, struct mc_cache_info *out);

/* Text for a code; never NULL. */
MC_API const char *mc_strerror(int code);

/* This thread's last detailed error message ("" if none). */
MC_API const char *mc_last_error(void);

/*
 * The version of the libmcache actually loaded, "MAJOR.MINOR.PATCH" (the
 * MCACHE_VERSION_* it was built with, which may differ from this header's).
 * A static string; never NULL.
 */
MC_API const char *mc_version(void);

#ifdef __cplusplus
}
#endif
#endif /* MCACHE_H */
