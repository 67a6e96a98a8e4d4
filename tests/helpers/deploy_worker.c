/*
 * deploy_worker.c - a worker for the rollout tests (tests/loader/test_deploy.c):
 * serves requests through an alias and reports each one with mc_report(),
 * failing a given share of the requests that one version serves.
 *
 *   deploy_worker SHM_DIR CACHE NAME REF BAD_VERSION ERR_PERMILLE [RATE [BAD_LAT_US]]
 *
 * Each request: mc_get(NAME, REF), report latency 100 us (BAD_LAT_US for
 * BAD_VERSION) and ok, or an error for ERR_PERMILLE per thousand of
 * BAD_VERSION's requests, mc_release.
 * About RATE requests per second (default 2000). Prints "ready" once its
 * first request was served, and on exit "served N bad B" (B: versions seen
 * that are not NAME's). Runs until its stdin closes (or 300 s).
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mcache.h"

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int stdin_closed(void)
{
    struct pollfd p = {.fd = 0, .events = POLLIN};
    char buf[64];

    if (poll(&p, 1, 0) <= 0)
        return 0;
    return read(0, buf, sizeof(buf)) <= 0;
}

int main(int argc, char **argv)
{
    const char *dir, *cache, *name, *ref, *bad;
    long permille, rate = 2000, bad_lat_us = 100;
    uint64_t served = 0, errs = 0, start = now_ns(), tick;
    mc_cache *c = NULL;
    int said = 0, rc;

    if (argc < 7) {
        fprintf(stderr, "usage: deploy_worker SHM_DIR CACHE NAME REF BAD_VERSION ERR_PERMILLE "
                        "[RATE]\n");
        return 2;
    }
    dir = argv[1], cache = argv[2], name = argv[3], ref = argv[4], bad = argv[5];
    permille = atol(argv[6]);
    if (argc > 7)
        rate = atol(argv[7]);
    if (argc > 8)
        bad_lat_us = atol(argv[8]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    while ((rc = mc_attach_dir(dir, cache, &c)) != 0) {
        if (now_ns() - start > 10000000000ull) {
            printf("attach failed: %s\n", mc_strerror(rc));
            return 1;
        }
        usleep(10000);
    }
    tick = now_ns();
    while (now_ns() - start < 300000000000ull) {
        mc_model *m;
        /* A batch of rate/100 requests each 10 ms. */
        for (long i = 0; i < rate / 100; i++) {
            rc = mc_get(c, name, ref, &m);
            if (rc == MC_ESTALE) { /* the arena was replaced: attach again */
                mc_detach(c);
                c = NULL;
                while (mc_attach_dir(dir, cache, &c) != 0)
                    usleep(10000);
                break;
            }
            if (rc)
                break;
            int is_bad = !strcmp(mc_model_version(m), bad);
            /* Errors spread evenly: the n-th bad request fails when n * permille / 1000 steps. */
            int ok = !is_bad || (served * (uint64_t)permille) / 1000 ==
                                    ((served + 1) * (uint64_t)permille) / 1000;
            served += is_bad;
            errs += !ok;
            mc_report(m, is_bad ? (uint64_t)bad_lat_us * 1000 : 100000, ok, 1);
            mc_release(m);
            if (!said) {
                printf("ready\n");
                said = 1;
            }
        }
        if (stdin_closed())
            break;
        tick += 10000000ull;
        uint64_t t = now_ns();
        if (tick > t)
            usleep((useconds_t)((tick - t) / 1000));
        else
            tick = t;
    }
    printf("served-bad %llu errors %llu\n", (unsigned long long)served, (unsigned long long)errs);
    mc_detach(c);
    return 0;
}
