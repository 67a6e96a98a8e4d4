/*
 * clock.h - the clocks mcache reads, one name per clock.
 *
 *   mc_mono_ns()  CLOCK_MONOTONIC: durations, deadlines, timeouts, LRU ages.
 *                 Never jumps; meaningless across boots and between hosts.
 *   mc_wall_ns()  CLOCK_REALTIME: when something happened, as stored in the
 *                 arena header, the reader table and the registry's manifest
 *                 ("created_ns", "t", "at_ns"). Can jump when the clock is set.
 *
 * Both in nanoseconds. Measure durations only with mc_mono_ns(); its values
 * mean nothing on another host or after a reboot.
 */
#ifndef MCACHE_COMMON_CLOCK_H
#define MCACHE_COMMON_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline uint64_t mc_mono_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline uint64_t mc_wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#endif
