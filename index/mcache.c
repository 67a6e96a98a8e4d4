/*
 * mcache.c - libmcache: attach, get, release (include/mcache.h).
 *
 * Per thread and cache, a `struct tslot` holds the thread's reader slot(s)
 * and a free list of model handles, so the warm path touches only memory
 * this thread owns plus the arena: no lock, no system call, no malloc.
 *
 *   get:     pin = epoch (shm/fence.h) -> resolve -> hold -> pin = 0
 *   release: hold = 0 (release store) -> handle back to this thread's list
 *
 * Cold paths (first get of a thread, more holds than a slot has, thread
 * exit, detach) take `registry_mu`, which guards every cache's list of
 * tslots and the handle blocks.
 */
#include "mcache.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "index/proto.h"
#include "index/resolve.h"
#include "index/safetensors.h"
#include "index/stats.h"
#include "index/table.h"
#include "shm/arena.h"
#include "common/clock.h"
#include "common/err.h"
#include "shm/fence.h"
#include "shm/readers.h"

#define TSLOT_MAX_SLOTS 64 /* at most 64 * MC_SLOT_HOLDS models held per thread */
#define HANDLE_BLOCK    64

struct mc_model {
    const struct mc_rec_version *rec;
    uint64_t *hold; /* the held[] word recording this model */
    mc_cache *cache;
    mc_model *next_free;
};

struct tslot {
    mc_cache *cache; /* NULL once the cache is detached */
    uint32_t nslots;
    uint32_t idx[TSLOT_MAX_SLOTS];
    struct mc_slot *slot[TSLOT_MAX_SLOTS];
    mc_model *free;
    struct tslot *next_in_thread;
    struct tslot *next_in_cache, *prev_in_cache;
    /* What references resolved to for this thread in this cache
     * (index/resolve.h); NULL if it could not be allocated (gets then
     * resolve every time). Its pages are touched only as it fills. */
    struct mc_memo *memo;
    /* This thread's row of serving counters (index/stats.h): its first
     * slot's; NULL until it has a slot. */
    uint8_t *row;
    uint64_t *row_used;
    /* Weighted aliases' per-call picks (index/resolve.h): a private
     * generator, seeded from the clock, the thread id and this struct's
     * address when the thread first uses the cache. */
    uint64_t rng;
};

struct orphan {
    uint32_t idx;
    struct orphan *next;
};

struct mc_cache {
    struct mc_arena arena;
    struct mc_readers readers;
    bool forked;          /* this is a fork()ed child's inherited copy: unusable */
    bool plain_pin;       /* the loader's membarrier fences our pins (shm/fence.h) */
    mc_cache *next_cache; /* every attached cache (for fork handling) */
    struct mc_table *table;
    uint64_t seed;
    struct tslot *tslots;    /* every thread's tslot for this cache */
    struct orphan *orphans;  /* slots of exited threads that still hold models */
    mc_model *free;          /* handles returned by exited threads */
    void **blocks;
    size_t nblocks;
};

static pthread_mutex_t registry_mu = PTHREAD_MUTEX_INITIALIZER;
static mc_cache *caches; /* attached caches, under registry_mu */
static mc_cache *forked_detached; /* detached in a fork()ed child: kept for late releases */
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static __thread struct tslot *tls_head __attribute__((tls_model("initial-exec")));

const char *mc_strerror(int code)
{
    switch (code) {
    case MC_OK:
        return "success";
    case MC_EINVAL:
        return "invalid argument";
    case MC_ENOENT:
        return "not found";
    case MC_ENOTRESIDENT:
        return "registered but not resident in the arena";
    case MC_ENOMEM:
        return "out of memory";
    case MC_ENOSPC:
        return "out of space";
    case MC_EFORMAT:
        return "incompatible format";
    case MC_EBADARENA:
        return "not a valid mcache arena";
    case MC_EADDRINUSE:
        return "arena address already in use in this process";
    case MC_EIO:
        return "I/O error";
    case MC_ETOOMANY:
        return "too many readers or holds";
    case MC_ESTALE:
        return "arena superseded; re-attach";
    case MC_EPERM:
        return "permission denied";
    case MC_EBUSY:
        return "busy; try again";
    case MC_ETIMEDOUT:
        return "timed out";
    case MC_ENODAEMON:
        return "mcached is not running or not reachable";
    case MC_EEXIST:
        return "already exists";
    case MC_ECORRUPT:
        return "corrupt data or checksum mismatch";
    case MC_ENOTSUP:
        return "not supported";
    case MC_EFAILED:
        return "the model failed to load";
    default:
        return "unknown error";
    }
}

#define MC_STR_(x) #x
#define MC_STR(x)  MC_STR_(x)

/* The version this library was built as (the header a caller used may differ). */
const char *mc_version(void)
{
    return MC_STR(MCACHE_VERSION_MAJOR) "." MC_STR(MCACHE_VERSION_MINOR) "." MC_STR(
        MCACHE_VERSION_PATCH);
}

/* ---- thread state ---- */

static void tslot_unlink_cache(struct tslot *ts)
{
    mc_cache *c = ts->cache;

    if (ts->prev_in_cache)
        ts->prev_in_cache->next_in_cache = ts->next_in_cache;
    else
        c->tslots = ts->next_in_cache;
    if (ts->next_in_cache)
        ts->next_in_cache->prev_in_cache = ts->prev_in_cache;
}

static bool slot_has_holds(const struct mc_slot *s)
{
    /* Pairs with mc_release()'s release store: a hold seen cleared is one
     * whose model its thread no longer reads. */
    for (unsigned j = 0; j < MC_SLOT_HOLDS; j++)
        if (mc_load_acquire(&s->held[j]))
            return true;
    return false;
}

/* Thread exit: give back slots (or park those still holding models). */
static void thread_exit(void *arg)
{
    struct tslot *ts = arg, *next;

    pthread_mutex_lock(&registry_mu);
    for (; ts; ts = next) {
        mc_cache *c = ts->cache;

        next = ts->next_in_thread;
        if (c) {
            for (uint32_t i = 0; i < ts->nslots; i++) {
                struct orphan *o;

                if (!slot_has_holds(ts->slot[i])) {
                    mc_slot_release(&c->readers, ts->idx[i]);
                    continue;
                }
                /* Still holding models other threads may release: park the slot
                 * (reused once empty). Without memory to park it, keep it
                 * claimed until mc_detach(): never drop a slot that holds. */
                if ((o = malloc(sizeof(*o)))) {
                    o->idx = ts->idx[i];
                    o->next = c->orphans;
                    c->orphans = o;
                }
            }
            while (ts->free) {
                mc_model *m = ts->free;
                ts->free = m->next_free;
                m->next_free = c->free;
                c->free = m;
            }
            tslot_unlink_cache(ts);
        }
        free(ts->memo);
        free(ts);
    }
    pthread_mutex_unlock(&registry_mu);
    tls_head = NULL;
}

static void thread_key_init(void)
{
    pthread_key_create(&thread_key, thread_exit);
}

static struct tslot *tslot_get(mc_cache *c)
{
    struct tslot *ts, *dead = NULL;

    if (c->forked) {
        mc_err(MC_EINVAL, "this cache was attached by the parent of a fork(); attach again in "
                          "the child (mc_attach)");
        return NULL;
    }
    for (ts = tls_head; ts; ts = ts->next_in_thread) {
        if (ts->cache == c)
            return ts;
        if (!ts->cache)
            dead = ts;
    }
    if (dead) { /* left by a detached (or fork-inherited) cache: reuse it */
        pthread_mutex_lock(&registry_mu);
        memset(dead->idx, 0, sizeof(dead->idx));
        memset(dead->slot, 0, sizeof(dead->slot));
        free(dead->memo); /* seqs and generations of another arena */
        dead->memo = calloc(1, sizeof(*dead->memo));
        dead->nslots = 0;
        dead->row = NULL;
        dead->row_used = NULL;
        dead->free = NULL;
        dead->cache = c;
        dead->prev_in_cache = NULL;
        dead->next_in_cache = c->tslots;
        if (c->tslots)
            c->tslots->prev_in_cache = dead;
        c->tslots = dead;
        pthread_mutex_unlock(&registry_mu);
        return dead;
    }
    pthread_once(&thread_key_once, thread_key_init);
    ts = calloc(1, sizeof(*ts));
    if (!ts) {
        mc_err(MC_ENOMEM, "reader thread state: out of memory");
        return NULL;
    }
    ts->memo = calloc(1, sizeof(*ts->memo));
    ts->rng = mc_wall_ns() ^ ((uint64_t)gettid() << 32) ^ (uint64_t)(uintptr_t)ts;
    ts->cache = c;
    pthread_mutex_lock(&registry_mu);
    ts->next_in_cache = c->tslots;
    if (c->tslots)
        c->tslots->prev_in_cache = ts;
    c->tslots = ts;
    pthread_mutex_unlock(&registry_mu);
    ts->next_in_thread = tls_head;
    tls_head = ts;
    pthread_setspecific(thread_key, tls_head);
    return ts;
}

static int tslot_add_slot(mc_cache *c, struct tslot *ts)
{
    uint32_t idx;
    int rc;

    if (ts->nslots == TSLOT_MAX_SLOTS)
        return mc_err(MC_ETOOMANY, "this thread already holds %u models; release some",
                      TSLOT_MAX_SLOTS * MC_SLOT_HOLDS);
    /* A slot parked by an exited thread whose models have all been released
     * since is ours already: take it instead of claiming another. */
    pthread_mutex_lock(&registry_mu);
    for (struct orphan **pp = &c->orphans; *pp; pp = &(*pp)->next) {
        struct orphan *o = *pp;

        if (slot_has_holds(&c->readers.slots[o->idx]))
            continue;
        *pp = o->next;
        idx = o->idx;
        free(o);
        pthread_mutex_unlock(&registry_mu);
        c->readers.slots[idx].tid = (uint32_t)gettid();
        goto got;
    }
    pthread_mutex_unlock(&registry_mu);
    rc = mc_slot_claim(&c->readers, &idx);
    if (rc)
        return rc;
got:
    if (ts->nslots == 0) {
        ts->row = mc_row_block(&c->readers, idx, 0);
        ts->row_used = mc_row_used(&c->readers, idx);
    }
    ts->idx[ts->nslots] = idx;
    ts->slot[ts->nslots] = &c->readers.slots[idx];
    ts->nslots++;
    return 0;
}

static int handles_refill(mc_cache *c, struct tslot *ts)
{
    mc_model *block;
    void **blocks;

    pthread_mutex_lock(&registry_mu);
    for (int i = 0; i < HANDLE_BLOCK && c->free; i++) {
        mc_model *m = c->free;
        c->free = m->next_free;
        m->next_free = ts->free;
        ts->free = m;
    }
    if (ts->free) {
        pthread_mutex_unlock(&registry_mu);
        return 0;
    }
    block = calloc(HANDLE_BLOCK, sizeof(*block));
    blocks = realloc(c->blocks, (c->nblocks + 1) * sizeof(*blocks));
    if (!block || !blocks) {
        free(block);
        if (blocks)
            c->blocks = blocks;
        pthread_mutex_unlock(&registry_mu);
        return mc_err(MC_ENOMEM, "model handles: out of memory");
    }
    c->blocks = blocks;
    c->blocks[c->nblocks++] = block;
    for (int i = 0; i < HANDLE_BLOCK; i++) {
        block[i].next_free = ts->free;
        ts->free = &block[i];
    }
    pthread_mutex_unlock(&registry_mu);
    return 0;
}

/*
 * A free held[] word in this thread's slots (claiming a new slot if all are
 * full), and its slot in *slot. mc_get() pins that same slot: the loader
 * relies on a slot's hold being stored before that slot's pin is cleared.
 */
__attribute__((always_inline)) static inline uint64_t *hold_word(mc_cache *c, struct tslot *ts,
                                                               struct mc_slot **slot)
{
    for (uint32_t i = 0; i < ts->nslots; i++)
        for (unsigned j = 0; j < MC_SLOT_HOLDS; j++)
            if (!mc_load_relaxed(&ts->slot[i]->held[j])) {
                *slot = ts->slot[i];
                return &ts->slot[i]->held[j];
            }
    if (tslot_add_slot(c, ts) != 0)
        return NULL;
    *slot = ts->slot[ts->nslots - 1];
    return &(*slot)->held[0];
}

/* ---- fork ---- */

/*
 * A fork()ed child shares the parent's reader-table file description, so it
 * would share the parent's OFD locks, and its memory holds the parent's
 * slot pointers. In the child, every inherited cache becomes unusable: its
 * copy of the description is closed (so a parent that dies releases its
 * slots), gets fail with a message, releases and detaches leave the
 * parent's slots alone.
 */
static void atfork_prepare(void)
{
    pthread_mutex_lock(&registry_mu);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&registry_mu);
}

static void atfork_child(void)
{
    for (mc_cache *c = caches; c; c = c->next_cache) {
        c->forked = true;
        if (c->readers.fd >= 0)
            close(c->readers.fd);
        c->readers.fd = -1;
    }
    for (struct tslot *ts = tls_head; ts; ts = ts->next_in_thread)
        ts->cache = NULL; /* off the fast path */
    pthread_mutex_unlock(&registry_mu);
}

static void atfork_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* ---- attach / detach ---- */

int mc_attach(const char *cache, mc_cache **out)
{
    return mc_attach_dir(NULL, cache, out);
}

/*
 * The same arena twice in one process cannot be: both would need its fixed
 * address (the mapping error would blame --base).
 */
static int attached_check(const char *dir, const char *cache)
{
    char path[sizeof(((mc_cache *)0)->arena.path)];
    bool attached = false;
    int rc = mc_arena_path(dir, cache, path, sizeof(path));

    if (rc)
        return rc;
    pthread_mutex_lock(&registry_mu);
    for (mc_cache *o = caches; o && !attached; o = o->next_cache)
        attached = !o->forked && strcmp(o->arena.path, path) == 0;
    pthread_mutex_unlock(&registry_mu);
    if (attached)
        return mc_err(MC_EBUSY,
                      "cache \"%s\" (%s) is already attached in this process; use that "
                      "mc_cache from every thread (it is thread-safe), or mc_detach() it first",
                      cache, path);
    return 0;
}

/*
 * The arena `a` could not be mapped (MC_EADDRINUSE): if a cache this process
 * attached sits in the range it needed, say which before the mapping's
 * message (two cache names can share a default address slot).
 */
static int address_owner(const struct mc_arena *a)
{
    uint64_t lo = a->want, hi = a->want + a->size;

    pthread_mutex_lock(&registry_mu);
    for (mc_cache *o = caches; o; o = o->next_cache)
        if (o->arena.want < hi && lo < o->arena.want + o->arena.size) {
            mc_err_prefix(MC_EADDRINUSE,
                          "arena %.200s, attached in this process, sits at 0x%" PRIx64
                          "-0x%" PRIx64,
                          o->arena.path, o->arena.want, o->arena.want + o->arena.size);
            break;
        }
    pthread_mutex_unlock(&registry_mu);
    return MC_EADDRINUSE;
}

int mc_attach_dir(const char *dir, const char *cache, mc_cache **out)
{
    mc_cache *c;
    int rc;

    mc_err_clear();
    if (!out)
        return mc_err(MC_EINVAL, "mc_attach: out is NULL");
    /* NULL or "": the environment, then the default (as the Python module does) */
    if (!cache || !*cache)
        cache = getenv("MCACHE_CACHE");
    if (!cache || !*cache)
        cache = "default";
    if (!dir || !*dir)
        dir = getenv("MCACHE_SHM_DIR");
    if (!dir || !*dir)
        dir = MC_DEFAULT_SHM_DIR;
    rc = attached_check(dir, cache);
    if (rc)
        return rc;
    c = calloc(1, sizeof(*c));
    if (!c)
        return mc_err(MC_ENOMEM, "mc_attach: out of memory");
    rc = mc_arena_open(dir, cache, false, &c->arena);
    if (rc == MC_EADDRINUSE)
        rc = address_owner(&c->arena);
    if (rc)
        goto fail;
    /* Pairs with the release store of READY in mc_own_arena() (loader/adopt.c):
     * the table, its offset and the seed are in place before it. */
    uint32_t st = mc_load_acquire_u32(&c->arena.hdr->state);
    if (st != MC_ARENA_READY || !c->arena.hdr->table_off) {
        /* The message before the close: it reads the header and the path. */
        rc = mc_err(MC_ESTALE, "arena %s is %s; try again", c->arena.path,
                    st == MC_ARENA_SUPERSEDED ? "superseded by a new one (mcached replaced it)"
                                              : "not serving yet (mcached is still creating it)");
        mc_arena_close(&c->arena);
        goto fail;
    }
    rc = mc_readers_open(dir, cache, c->arena.hdr->created_ns, &c->readers);
    if (rc) {
        mc_arena_close(&c->arena);
        goto fail;
    }
    c->table = mc_arena_ptr(&c->arena, c->arena.hdr->table_off);
    c->seed = c->arena.hdr->hash_seed;
    c->plain_pin = mc_fence_reader_plain(c->arena.hdr);
    pthread_once(&atfork_once, atfork_init);
    pthread_mutex_lock(&registry_mu);
    c->next_cache = caches;
    caches = c;
    pthread_mutex_unlock(&registry_mu);
    *out = c;
    return 0;
fail:
    free(c);
    return rc;
}

void mc_detach(mc_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&registry_mu);
    for (mc_cache **pp = &caches; *pp; pp = &(*pp)->next_cache)
        if (*pp == c) {
            *pp = c->next_cache;
            break;
        }
    /* In a fork()ed child the slots are the parent's: leave them be. */
    for (struct tslot *ts = c->tslots; ts; ts = ts->next_in_cache) {
        for (uint32_t i = 0; i < ts->nslots && !c->forked; i++)
            mc_slot_release(&c->readers, ts->idx[i]);
        ts->nslots = 0;
        ts->free = NULL;
        ts->cache = NULL; /* the thread frees it when it exits */
    }
    while (c->orphans) {
        struct orphan *o = c->orphans;
        c->orphans = o->next;
        if (!c->forked)
            mc_slot_release(&c->readers, o->idx);
        free(o);
    }
    if (c->forked) {
        /* A fork()ed child may still release models the parent got after
         * detaching (as the header advises): keep the cache and its handles,
         * reachable, so that release stays the no-op it is in a child. */
        c->next_cache = forked_detached;
        forked_detached = c;
    } else {
        for (size_t i = 0; i < c->nblocks; i++)
            free(c->blocks[i]);
        free(c->blocks);
    }
    pthread_mutex_unlock(&registry_mu);
    mc_readers_close(&c->readers);
    mc_arena_close(&c->arena);
    if (!c->forked)
        free(c);
}

/* ---- the warm path ---- */

/*
 * mc_get() and mc_get_keyed(). missed (NULL, or room for MC_KEY_MAX bytes):
 * where a get that resolved to a version not resident (or failed) names that
 * version, so mc_get_load() asks for the very one a weighted alias picked.
 */
__attribute__((always_inline)) static inline int get_impl(mc_cache *c, const char *name,
                                                         const char *ref, const void *key,
                                                         size_t key_len, char *missed,
                                                         mc_model **out)
{
    struct tslot *ts = tls_head;
    struct mc_rec_version *v;
    struct mc_slot *s;
    uint64_t *hold;
    mc_model *m;
    int rc;

    if (__builtin_expect(!c || !name || !out, 0))
        return mc_err(MC_EINVAL, "mc_get: %s is NULL", !c ? "the cache" : !name ? "name" : "out");
    if (__builtin_expect(!ts || ts->cache != c, 0) && !(ts = tslot_get(c)))
        return c->forked ? MC_EINVAL : MC_ENOMEM;
    if (__builtin_expect(!ts->free, 0) && (rc = handles_refill(c, ts)) != 0)
        return rc;
    /* Where the hold will go, before pinning: claiming a slot is a syscall. */
    hold = hold_word(c, ts, &s);
    if (__builtin_expect(!hold, 0))
        return MC_ETOOMANY;

    /* Pin, visible to the loader before any load of the table below (the
     * reader half of shm/fence.h; the loader's barrier is the other). */
    const struct mc_arena_hdr *h = c->arena.hdr;
    mc_fence_reader_pin(h, c->plain_pin, &s->pin);
    if (__builtin_expect(mc_load_relaxed_u32(&h->state) != MC_ARENA_READY, 0)) {
        mc_fence_reader_unpin(&s->pin);
        return mc_err(MC_ESTALE, "arena %s was superseded by a new one; release your models, "
                                 "mc_detach() and mc_attach() again",
                      c->arena.path);
    }
    rc = mc_resolve_ref(c->table, c->seed, name, ref, ts->memo, key, key_len, &ts->rng, &v);
    if (__builtin_expect(rc != 0, 0))
        goto unpin;
    if (__builtin_expect(v->h.state != MC_STATE_READY, 0)) {
        if (missed)
            snprintf(missed, MC_KEY_MAX, "%s", mc_rec_version_str(v));
        rc = v->h.state == MC_STATE_FAILED
                 ? mc_err(MC_EFAILED, "%s@%s failed to load; see `mcache stat` and the mcached log",
                          mc_rec_version_name(v), mc_rec_version_str(v))
                 : mc_err(MC_ENOTRESIDENT,
                          "%s@%s is registered but not loaded; run `mcache load %s@%s`",
                          mc_rec_version_name(v), mc_rec_version_str(v), mc_rec_version_name(v),
                          mc_rec_version_str(v));
        goto unpin;
    }
    /* Relaxed: the unpin's release orders it (the loader reads the pin
     * first, then the holds). */
    mc_store_relaxed(hold, (uint64_t)((const uint8_t *)v - c->arena.base));
    mc_fence_reader_unpin(&s->pin);

    m = ts->free;
    ts->free = m->next_free;
    m->rec = v;
    m->hold = hold;
    m->cache = c;
    *out = m;
    return 0;
unpin:
    mc_fence_reader_unpin(&s->pin);
    return rc;
}

int mc_get(mc_cache *c, const char *name, const char *ref, mc_model **out)
{
    return get_impl(c, name, ref, NULL, 0, NULL, out);
}

int mc_get_keyed(mc_cache *c, const char *name, const char *ref, const void *key,
                 size_t key_len, mc_model **out)
{
    if (__builtin_expect(!key, 0)) {
        if (key_len)
            return mc_err(MC_EINVAL, "mc_get_keyed: key is NULL with key_len %zu", key_len);
        key = ""; /* the empty key: sticky too */
    }
    return get_impl(c, name, ref, key, key_len, NULL, out);
}

/* How long mc_get_load() waits for a starting mcached to listen, at most. */
#define LOADER_START_WAIT_NS (30ull * 1000000000ull)

/*
 * Connect to the mcached named in the header. One that is starting (its pid
 * is there and alive) listens only once it has mirrored the registry
 * (docs/loader.md, "Ready"): retry every 10 ms, within timeout_ms and at most
 * LOADER_START_WAIT_NS (a reused pid must not keep us waiting forever). A
 * dead pid (kill -9) answers at once.
 */
static int loader_connect(const mc_cache *c, const char *sock, int timeout_ms, int *fd)
{
    uint64_t wait = timeout_ms < 0 ? LOADER_START_WAIT_NS : (uint64_t)timeout_ms * 1000000ull;
    uint64_t deadline = mc_mono_ns() + (wait < LOADER_START_WAIT_NS ? wait : LOADER_START_WAIT_NS);

    for (;;) {
        int rc = mc_ctl_connect(sock, fd);
        pid_t pid = (pid_t)c->arena.hdr->loader_pid;

        if (rc != MC_ENODAEMON || pid <= 0 || (kill(pid, 0) != 0 && errno == ESRCH) ||
            mc_mono_ns() >= deadline)
            return rc;
        nanosleep(&(struct timespec){.tv_nsec = 10000000L}, NULL);
    }
}

int mc_get_load(mc_cache *c, const char *name, const char *ref, int timeout_ms, mc_model **out)
{
    char sock[sizeof(c->arena.hdr->socket)], tmo[24], *body = NULL, missed[MC_KEY_MAX];
    const char *args[3] = {name, ref ? ref : "latest", tmo};
    int rc, fd, status;

    /* One deadline for every load asked for below (-1: none). */
    const uint64_t until = timeout_ms < 0 ? 0 : mc_mono_ns() + (uint64_t)timeout_ms * 1000000ull;

    /* A weighted alias picks again at every get: ask for the very version
     * the get picked, and get again, at most once per target. */
    for (unsigned tries = 0;; tries++) {
        missed[0] = '\0';
        rc = get_impl(c, name, ref, NULL, 0, missed, out);
        /* The registry is the authority, not the arena: a name or version the
         * arena does not know (MC_ENOENT) may have been pushed a moment ago,
         * so mcached is asked; it answers from a fresh read of the registry. */
        if ((rc != MC_ENOTRESIDENT && rc != MC_EFAILED && rc != MC_ENOENT) ||
            tries == MC_SPLIT_MAX)
            return rc;
        memcpy(sock, c->arena.hdr->socket, sizeof(sock));
        sock[sizeof(sock) - 1] = '\0';
        if (!sock[0] || !c->arena.hdr->loader_pid) {
            if (rc == MC_ENOENT)
                return rc; /* mc_get's message stands: there is no one to ask */
            return mc_err(MC_ENODAEMON, "%s@%s is not loaded and no mcached serves this cache",
                          name, ref ? ref : "latest");
        }
        if (missed[0])
            args[1] = missed; /* the exact version picked */
        if (timeout_ms >= 0) { /* what is left of it */
            uint64_t now = mc_mono_ns();
            timeout_ms = now >= until ? 0 : (int)((until - now) / 1000000ull);
        }
        snprintf(tmo, sizeof(tmo), "%d", timeout_ms);
        rc = loader_connect(c, sock, timeout_ms, &fd);
        if (rc)
            return rc;
        /* The daemon enforces the timeout; give the socket a little longer. */
        rc = mc_ctl_call(fd, "load", 3, args,
                         timeout_ms < 0 || timeout_ms > INT_MAX - 2000 ? -1 : timeout_ms + 2000,
                         &status, &body);
        close(fd);
        if (rc)
            return rc;
        if (status) {
            rc = mc_err(status, "%s", body);
            free(body);
            return rc;
        }
        free(body);
        body = NULL;
        args[1] = ref ? ref : "latest";
    }
}

void mc_release(mc_model *m)
{
    struct tslot *ts = tls_head;

    /* rec is NULL once released: a second release of the same handle is
     * ignored (it used to put the handle on the free list twice, so later
     * gets on this thread shared one handle). */
    if (!m || !m->rec)
        return;
    if (__builtin_expect(m->cache->forked, 0))
        return; /* a fork()ed child: the hold is the parent's to drop */
    /* After this store the loader may free the model: touch it no more.
     * Pairs with the loader's acquire load of held[] in scan() (reclaim.c). */
    mc_store_release(m->hold, 0);
    m->rec = NULL;
    if (__builtin_expect(!ts || ts->cache != m->cache, 0)) {
        ts = tslot_get(m->cache);
        if (!ts) { /* out of memory: park the handle on the cache */
            pthread_mutex_lock(&registry_mu);
            m->next_free = m->cache->free;
            m->cache->free = m;
            pthread_mutex_unlock(&registry_mu);
            return;
        }
    }
    m->next_free = ts->free;
    ts->free = m;
}

/*
 * This thread's row for m's cache: claiming a slot the first time (a thread
 * may report on a model another thread got). NULL (with the message) if
 * that fails.
 */
static __attribute__((noinline)) int report_row_slow(mc_cache *c, struct tslot **tsp)
{
    struct tslot *ts = tslot_get(c);
    int rc;

    if (!ts)
        return MC_ENOMEM;
    if (!ts->row && (rc = tslot_add_slot(c, ts)) != 0)
        return rc;
    *tsp = ts;
    return 0;
}

int mc_report(mc_model *m, uint64_t latency_ns, int ok, uint64_t units)
{
    struct tslot *ts = tls_head;
    const struct mc_rec_version *v;
    struct mc_stats_block *b;
    uint8_t *row;
    uint64_t bit;
    unsigned idx;

    if (__builtin_expect(!m || !(v = m->rec), 0))
        return mc_err(MC_EINVAL, "mc_report: %s", m ? "the model was released" : "m is NULL");
    idx = v->h.stats;
    if (__builtin_expect(idx == 0, 0))
        return mc_err(MC_ENOTSUP, "%s@%s is not tracked (every statistics index of the cache is "
                                  "in use by other resident versions); the report is dropped",
                      mc_rec_version_name(v), mc_rec_version_str(v));
    if (__builtin_expect(m->cache->forked, 0))
        return mc_err(MC_EINVAL, "mc_report: this model's cache was attached by the parent of a "
                                 "fork()");
    if (__builtin_expect(!ts || ts->cache != m->cache || !ts->row, 0)) {
        int rc = report_row_slow(m->cache, &ts);

        if (rc)
            return rc;
    }
    row = ts->row;
    b = (struct mc_stats_block *)(row + (size_t)idx * MC_ROW_BLOCK);
    bit = 1ull << idx;
    /* mcached sums only the blocks whose bit is set, and clears bits when it
     * zeroes an index for reuse: test the shared word every time. */
    if (__builtin_expect(!(mc_load_relaxed(ts->row_used) & bit), 0))
        __atomic_fetch_or(ts->row_used, bit, __ATOMIC_RELEASE);
    /* One writer per row (this thread): plain increments, atomic only so
     * that mcached's concurrent reads are defined. */
    mc_store_relaxed(&b->requests, mc_load_relaxed(&b->requests) + 1);
    if (!ok)
        mc_store_relaxed(&b->errors, mc_load_relaxed(&b->errors) + 1);
    if (units)
        mc_store_relaxed(&b->units, mc_load_relaxed(&b->units) + units);
    uint64_t *h = &b->hist[mc_stats_bucket(latency_ns)];
    mc_store_relaxed(h, mc_load_relaxed(h) + 1);
    return 0;
}

const void *mc_model_data(const mc_model *m)
{
    return (const void *)(uintptr_t)m->rec->data;
}

size_t mc_model_size(const mc_model *m)
{
    return (size_t)m->rec->data_size;
}

const char *mc_model_name(const mc_model *m)
{
    return mc_rec_version_name(m->rec);
}

const char *mc_model_version(const mc_model *m)
{
    return mc_rec_version_str(m->rec);
}

const char *mc_model_format(const mc_model *m)
{
    return mc_format_name(mc_rec_cold(m->rec)->format);
}

const char *mc_model_checksum(const mc_model *m)
{
    return mc_rec_cold(m->rec)->checksum;
}

const char *mc_model_metadata(const mc_model *m)
{
    return mc_rec_version_meta(m->rec);
}

uint64_t mc_model_generation(const mc_model *m)
{
    return mc_rec_cold(m->rec)->generation;
}

static const struct mc_tensor_table *tensor_table(const mc_model *m)
{
    uint64_t off = mc_rec_cold(m->rec)->tensors_off;

    return off ? (const struct mc_tensor_table *)(m->cache->arena.base + off) : NULL;
}

static void tensor_fill(const mc_model *m, const struct mc_tensor_table *t,
                        const struct mc_tensor_entry *e, struct mc_tensor *out)
{
    const uint8_t *base = (const uint8_t *)(uintptr_t)m->rec->data + t->data_start;

    out->name = (const char *)t + e->name_off;
    out->dtype = mc_dtype_name(e->dtype);
    out->elem_size = mc_dtype_size(e->dtype);
    out->ndim = e->ndim;
    out->shape = (const uint64_t *)((const char *)t + e->shape_off);
    out->data = base + e->begin;
    out->size = e->end - e->begin;
    out->aligned = ((uintptr_t)out->data % out->elem_size) == 0;
}

size_t mc_model_tensor_count(const mc_model *m)
{
    const struct mc_tensor_table *t = tensor_table(m);

    return t ? t->count : 0;
}

int mc_model_tensor_at(const mc_model *m, size_t i, struct mc_tensor *out)
{
    const struct mc_tensor_table *t;

    if (!m || !m->rec || !out)
        return mc_err(MC_EINVAL, "mc_model_tensor_at: %s", !out ? "out is NULL" : "no model held");
    t = tensor_table(m);
    if (!t || i >= t->count)
        return mc_err(MC_ENOENT, "%s@%s has %zu tensors; there is no tensor %zu",
                      mc_model_name(m), mc_model_version(m), t ? (size_t)t->count : 0, i);
    tensor_fill(m, t, &t->e[i], out);
    return 0;
}

int mc_model_tensor_find(const mc_model *m, const char *name, struct mc_tensor *out)
{
    const struct mc_tensor_table *t;
    const struct mc_tensor_entry *e;

    if (!m || !m->rec || !name || !out)
        return mc_err(MC_EINVAL, "mc_model_tensor_find: %s",
                      !name ? "name is NULL" : !out ? "out is NULL" : "no model held");
    t = tensor_table(m);
    e = t ? mc_tensor_table_find(t, name) : NULL;
    if (!e)
        return mc_err(MC_ENOENT, "%s@%s has no tensor \"%.200s%s\"%s", mc_model_name(m),
                      mc_model_version(m), name, strlen(name) > 200 ? "..." : "",
                      t ? "" : " (it is not a safetensors model)");
    tensor_fill(m, t, e, out);
    return 0;
}

const char *mc_model_tensor_metadata(const mc_model *m)
{
    const struct mc_tensor_table *t = tensor_table(m);

    return t && t->meta_off ? (const char *)t + t->meta_off : NULL;
}

int mc_cache_info(mc_cache *c, struct mc_cache_info *out)
{
    const struct mc_arena_hdr *h;

    if (!c || !out)
        return mc_err(MC_EINVAL, "mc_cache_info: cache and out must not be NULL");
    h = c->arena.hdr;
    memset(out, 0, sizeof(*out));
    out->base = h->base;
    out->size = h->size;
    out->page_size = h->page_size;
    out->data_size = h->data_size;
    out->data_used = mc_load_relaxed(&h->data_ext.used);
    out->data_largest_free = mc_load_relaxed(&h->data_ext.largest_free);
    out->index_size = h->index_size;
    out->index_used = mc_load_relaxed(&h->index_ext.used);
    out->models = mc_load_relaxed(&c->table->resident);
    out->entries = mc_load_relaxed(&c->table->versions) + mc_load_relaxed(&c->table->aliases) +
                   mc_load_relaxed(&c->table->models);
    /* Pair with next_generation() (index/table.c) and mc_reclaim_advance(). */
    out->generation = mc_load_acquire(&h->generation);
    out->epoch = mc_load_acquire(&h->epoch);
    out->created_ns = h->created_ns;
    out->loader_pid = h->loader_pid;
    out->format = h->format;
    return 0;
}
