/*
 * atomic.h - named loads and stores of words that another process or thread
 * reads or writes concurrently: arena header fields, the two moving pointers
 * of records (alias targets, version lists), reader-slot pins and holds, and
 * allocator statistics. As liburing's barrier.h, one name per ordering, so a
 * call says what it orders and the casts live here once.
 *
 *   acquire  - later loads and stores stay after it; pairs with a release
 *              store of the same word (a call site names which one).
 *   release  - earlier loads and stores stay before it.
 *   relaxed  - atomic (no torn or repeated access) and ordered with nothing:
 *              statistics, and values ordered by a fence (shm/fence.h).
 *
 * Pointers in shared memory are stored as uint64_t (absolute addresses; every
 * process maps the arena at the same base): the _ptr forms convert. On x86-64
 * each of these is one plain mov; they cost nothing but compiler ordering.
 * Full fences and the reader pin are in shm/fence.h.
 */
#ifndef MCACHE_SHM_ATOMIC_H
#define MCACHE_SHM_ATOMIC_H

#include <stdint.h>

static inline uint64_t mc_load_relaxed(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline uint64_t mc_load_acquire(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void mc_store_relaxed(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELAXED);
}

static inline void mc_store_release(uint64_t *p, uint64_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* 32-bit header and slot fields (the arena's state and fence mode, a slot's pid). */
static inline uint32_t mc_load_relaxed_u32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

static inline uint32_t mc_load_acquire_u32(const uint32_t *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void mc_store_release_u32(uint32_t *p, uint32_t v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* A pointer kept in a uint64_t word of shared memory. */
static inline void *mc_load_acquire_ptr(const uint64_t *p)
{
    return (void *)(uintptr_t)mc_load_acquire(p);
}

static inline void mc_store_release_ptr(uint64_t *p, const void *v)
{
    mc_store_release(p, (uint64_t)(uintptr_t)v);
}

#endif
