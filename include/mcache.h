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
 *   one system call). A lookup is a hash of "name@ref" and a probe of a
 *   lock-free table in shared memory; "latest" and ranges also scan the
 *   model's version list.
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
 *   Every function that can fail returns 0 or a negative MC_E* code.
 *   mc_strerror() names the code; mc_last_error() gives this thread's last
 *   detailed message (what was wrong, the value, what to do).
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
#define MCACHE_VERSION_MINOR 1
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
 * MC_EPERM if their modes do not admit this process: by default only
 * mcached's uid and its primary group may attach (mcached --reader-group
 * names another group; docs/security.md). The message names the file and
 * the group to ask for.
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
 * Returns MC_ENOENT if nothing registered matches (an alias the model does
 * not have included), MC_EINVAL if `ref` is none of these forms (empty, or
 * a malformed range: the message gives the parser's reason),
 * MC_ENOTRESIDENT if the matching version is registered but not loaded,
 * MC_EFAILED if its last load failed.
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
 * MC_ENODAEMON if mcached is not running.
 */
MC_API int mc_get_load(mc_cache *c, const char *name, const char *ref, int timeout_ms,
                       mc_model **out);

/*
 * Release a model from mc_get(). Cheap; no system call. Safe on NULL; a
 * second release of the same handle (before another mc_get()) is ignored.
 */
MC_API void mc_release(mc_model *m);

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

/* The i-th tensor, in name order. MC_ENOENT past the end. */
MC_API int mc_model_tensor_at(const mc_model *m, size_t i, struct mc_tensor *out);

/* The tensor called name. MC_ENOENT (with a message) if there is none. */
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
MC_API int mc_cache_info(mc_cache *c, struct mc_cache_info *out);

/* Text for a code; never NULL. */
MC_API const char *mc_strerror(int code);

/* This thread's last detailed error message ("" if none). */
MC_API const char *mc_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* MCACHE_H */
