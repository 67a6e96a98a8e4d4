/*
 * mp_reader.c - a worker process for the multi-process tests, exec'd (not
 * just forked) so it has its own address-space layout and finds the arena
 * only through what is in shared memory.
 *
 *   mp_reader write  DIR CACHE NAME REF   get a model and write into it (must SIGSEGV)
 *   mp_reader hold   DIR CACHE NAME REF   get, print "held <size>", sleep until killed
 *   mp_reader pin    DIR CACHE            claim a slot, pin the current epoch, print
 *                                         "pinned <epoch>", wait for a line on stdin, unpin
 *   mp_reader stress DIR CACHE N NMODELS  N random gets over models m0..m<NMODELS-1>,
 *                                         verifying every byte sampled; exit 0 iff no bad read
 *
 * Exit codes: 0 ok, 1 a check failed, 2 usage or setup error.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "index/table.h"
#include "mcache.h"
#include "shm/arena.h"
#include "shm/readers.h"
#include "tests/testutil.h"

static int cmd_write(char **av)
{
    mc_cache *c;
    mc_model *m;

    if (mc_attach_dir(av[2], av[3], &c) || mc_get(c, av[4], av[5], &m)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    signal(SIGSEGV, SIG_DFL);
    ((volatile uint8_t *)mc_model_data(m))[0] = 1; /* must fault: mapped PROT_READ */
    fprintf(stderr, "mp_reader: wrote into the arena without faulting\n");
    return 0;
}

static int cmd_hold(char **av)
{
    mc_cache *c;
    mc_model *m;

    if (mc_attach_dir(av[2], av[3], &c) || mc_get(c, av[4], av[5], &m)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    printf("held %zu\n", mc_model_size(m));
    fflush(stdout);
    for (;;)
        pause();
}

static int cmd_pin(char **av)
{
    struct mc_arena a;
    struct mc_readers r;
    uint32_t idx;
    char line[16];

    if (mc_arena_open(av[2], av[3], false, &a) ||
        mc_readers_open(av[2], av[3], a.hdr->created_ns, &r) || mc_slot_claim(&r, &idx)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    /* As mc_get() does, then stop in the middle of the "lookup". */
    uint64_t e = __atomic_load_n(&a.hdr->epoch, __ATOMIC_ACQUIRE);
    __atomic_exchange_n(&r.slots[idx].pin, e, __ATOMIC_SEQ_CST);
    printf("pinned %llu\n", (unsigned long long)e);
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 2;
    __atomic_store_n(&r.slots[idx].pin, 0, __ATOMIC_RELEASE);
    printf("unpinned\n");
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 0;
    return 0;
}

/* Check a model's bytes: size, name/version, metadata seed, sampled bytes. */
static int verify(const mc_model *m, const char *name, const char *ref, uint64_t *rnd,
                  bool full)
{
    const char *n = mc_model_name(m), *v = mc_model_version(m), *meta = mc_model_metadata(m);
    const uint8_t *p = mc_model_data(m);
    size_t size = mc_model_size(m);
    uint32_t seed = seed_of(n, v);
    char want_meta[64];

    if (strcmp(n, name) != 0) {
        fprintf(stderr, "BAD: asked %s@%s, got name %s\n", name, ref, n);
        return 1;
    }
    if (ref[0] >= '0' && ref[0] <= '9' && strcmp(v, ref) != 0) {
        fprintf(stderr, "BAD: asked %s@%s, got version %s\n", name, ref, v);
        return 1;
    }
    snprintf(want_meta, sizeof(want_meta), "{\"seed\":%u}", seed);
    if (strcmp(meta, want_meta) != 0) {
        fprintf(stderr, "BAD: %s@%s metadata %.60s, want %s\n", n, v, meta, want_meta);
        return 1;
    }
    if (size == 0 || size > (64u << 20)) {
        fprintf(stderr, "BAD: %s@%s size %zu\n", n, v, size);
        return 1;
    }
    if (full) {
        for (size_t i = 0; i < size; i++)
            if (p[i] != pattern_byte(seed, i)) {
                fprintf(stderr, "BAD: %s@%s byte %zu is %02x, want %02x\n", n, v, i, p[i],
                        pattern_byte(seed, i));
                return 1;
            }
        return 0;
    }
    for (int k = 0; k < 64; k++) {
        size_t i;
        *rnd = *rnd * 6364136223846793005ull + 1442695040888963407ull;
        i = k == 0 ? 0 : k == 1 ? size - 1 : (size_t)(*rnd >> 33) % size;
        if (p[i] != pattern_byte(seed, i)) {
            fprintf(stderr, "BAD: %s@%s byte %zu is %02x, want %02x\n", n, v, i, p[i],
                    pattern_byte(seed, i));
            return 1;
        }
    }
    return 0;
}

static int cmd_stress(char **av)
{
    static const char *refs[] = {"1.0.0", "1.1.0", "2.0.0", "prod", "latest", "^1", "~1.1"};
    long n = atol(av[4]), nmodels = atol(av[5]);
    uint64_t rnd = (uint64_t)getpid() * 2654435761u;
    long ok = 0, missing = 0, bad = 0;
    mc_cache *c;

    if (mc_attach_dir(av[2], av[3], &c)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    for (long i = 0; i < n; i++) {
        char name[32];
        const char *ref;
        mc_model *m;
        int rc;

        rnd = rnd * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(name, sizeof(name), "m%ld", (long)((rnd >> 33) % (uint64_t)nmodels));
        ref = refs[(rnd >> 20) % (sizeof(refs) / sizeof(refs[0]))];
        rc = mc_get(c, name, ref, &m);
        if (rc == MC_ENOENT || rc == MC_ENOTRESIDENT) {
            missing++;
            continue;
        }
        if (rc) {
            fprintf(stderr, "BAD: get %s@%s: %s\n", name, ref, mc_last_error());
            bad++;
            continue;
        }
        bad += verify(m, name, ref, &rnd, i % 4096 == 0);
        mc_release(m);
        ok++;
    }
    printf("lookups %ld ok %ld missing %ld bad %ld\n", n, ok, missing, bad);
    mc_detach(c);
    return bad ? 1 : 0;
}

int main(int ac, char **av)
{
    if (ac >= 6 && strcmp(av[1], "write") == 0)
        return cmd_write(av);
    if (ac >= 6 && strcmp(av[1], "hold") == 0)
        return cmd_hold(av);
    if (ac >= 4 && strcmp(av[1], "pin") == 0)
        return cmd_pin(av);
    if (ac >= 6 && strcmp(av[1], "stress") == 0)
        return cmd_stress(av);
    fprintf(stderr, "usage: mp_reader write|hold|pin|stress DIR CACHE ...\n");
    return 2;
}
