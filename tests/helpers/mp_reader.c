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
 *   mp_reader verify DIR CACHE NAME REF   get, hash every byte, compare with the record's
 *                                         checksum; print "ok VERSION SIZE"
 *   mp_reader watch DIR CACHE NAME REF MS  get/verify/release in a loop for MS milliseconds;
 *                                         print "seen V=N ... bad B"; exit 0 iff B == 0
 *   mp_reader holdwatch DIR CACHE NAME REF  get once, print "held", re-verify the held bytes
 *                                         until stdin closes; print "verified N bad B"
 *   mp_reader threads DIR CACHE T N NMODELS  T threads, N gets each, models released by other
 *                                         threads and kept across thread exits; threads come
 *                                         and go; exit 0 iff no bad read
 *   mp_reader getload DIR CACHE NAME REF MS  mc_get_load (asks mcached to load it), then
 *                                         verify as `verify` does; "error CODE MSG" on failure
 *   mp_reader fork DIR CACHE NAME REF     get, fork; the child must find the inherited cache
 *                                         unusable (and harmless) and attach anew; print "ok"
 *   mp_reader meta DIR CACHE NAME REF     print the model's metadata JSON
 *   mp_reader getloads DIR CACHE MS      attach, print "ready"; then for each line "NAME REF"
 *                                         on stdin mc_get_load it (MS timeout), check its bytes
 *                                         against its checksum, print "ok NAME VERSION" or
 *                                         "error CODE MSG"; exit 0 at the end of stdin
 *   mp_reader follow DIR CACHE NAME REF   attach, print "ready"; then for each line
 *                                         "VERSION T0 T1" on stdin get NAME@REF until it is
 *                                         VERSION (10 s at most) and print "saw VERSION D0 D1"
 *                                         (D = CLOCK_MONOTONIC ns now minus T) or "timeout"
 *   mp_reader tensor DIR CACHE NAME REF TENSOR  print "TENSORS n DTYPE d0xd1.. aligned A sum S"
 *                                         (S: sum of the tensor's F32 values)
 *   mp_reader several DIR MS CACHE...     attach every CACHE first (all mapped at once), then
 *                                         from each mc_get_load its model CACHE@1.0.0 and
 *                                         check every byte; print "ok CACHE@BASE ..." while
 *                                         holding all, or "error CACHE CODE MSG" (exit 3)
 *   mp_reader canary DIR CACHE NAME ALIAS N draw|keyed  N gets through a weighted alias
 *                                         moving along {k.0.0, (k+1).0.0} (k rising), by draw
 *                                         or by a key per get; every byte checked; a decoy
 *                                         (x.5.0) or a version below the highest seen minus
 *                                         one is bad; print "gets N highest J bad B"
 *
 * Exit codes: 0 ok, 1 a check failed, 2 usage or setup error.
 */
#include <pthread.h>
#include <stdbool.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "index/table.h"
#include "mcache.h"
#include "shm/arena.h"
#include "shm/readers.h"
#include "tests/helpers/testutil.h"

#include <xxhash.h>

/* Do the bytes hash to the checksum the record carries? */
static bool bytes_match(const mc_model *m)
{
    XXH128_hash_t h = XXH3_128bits(mc_model_data(m), mc_model_size(m));
    XXH128_canonical_t c;
    char hex[48];
    int n = snprintf(hex, sizeof(hex), "xxh3-128:");

    XXH128_canonicalFromHash(&c, h);
    for (int i = 0; i < 16; i++)
        n += snprintf(hex + n, sizeof(hex) - (size_t)n, "%02x", c.digest[i]);
    return strcmp(hex, mc_model_checksum(m)) == 0;
}

static int cmd_verify(char **av, bool load)
{
    mc_cache *c;
    mc_model *m;
    int rc;

    if (mc_attach_dir(av[2], av[3], &c)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    rc = load ? mc_get_load(c, av[4], av[5], atoi(av[6]), &m) : mc_get(c, av[4], av[5], &m);
    if (rc) {
        printf("error %d %s\n", rc, mc_last_error());
        return 3;
    }
    if (!bytes_match(m)) {
        printf("BAD %s %zu\n", mc_model_version(m), mc_model_size(m));
        return 1;
    }
    printf("ok %s %zu\n", mc_model_version(m), mc_model_size(m));
    mc_release(m);
    mc_detach(c);
    return 0;
}

/* Is every byte of m the pattern of seed_of(name, version), and its checksum right? */
static bool pattern_match(const mc_model *m)
{
    const uint8_t *p = mc_model_data(m);
    uint32_t seed = seed_of(mc_model_name(m), mc_model_version(m));

    for (size_t i = 0; i < mc_model_size(m); i++)
        if (p[i] != pattern_byte(seed, i))
            return false;
    return bytes_match(m);
}

/* Check what `several` got (n caches c, models m); print "ok CACHE@BASE ...". 0 or 1. */
static int several_report(int n, char **caches, mc_cache **c, mc_model **m)
{
    struct mc_cache_info in;

    for (int i = 0; i < n; i++)
        if (!pattern_match(m[i])) {
            printf("BAD %s@%s from cache %s\n", mc_model_name(m[i]), mc_model_version(m[i]),
                   caches[i]);
            return 1;
        }
    printf("ok");
    for (int i = 0; i < n && mc_cache_info(c[i], &in) == 0; i++)
        printf(" %s@0x%llx", caches[i], (unsigned long long)in.base);
    printf("\n");
    return 0;
}

/* Several caches in one process: attach all, then get and check from each. */
static int cmd_several(int ac, char **av)
{
    enum { MAX = 8 };
    mc_cache *c[MAX] = {0};
    mc_model *m[MAX] = {0};
    char **caches = av + 4;
    int n = ac - 4, i = 0, rc = 0;

    if (n > MAX)
        return 2;
    /* Every cache is mapped before the first get: their ranges must not overlap. */
    for (; i < n && !rc; i += !rc)
        rc = mc_attach_dir(av[2], caches[i], &c[i]);
    if (!rc)
        for (i = 0; i < n && !rc; i += !rc)
            rc = mc_get_load(c[i], caches[i], "1.0.0", atoi(av[3]), &m[i]);
    if (rc)
        printf("error %s %d %s\n", caches[i], rc, mc_last_error());
    else
        rc = several_report(n, caches, c, m);
    for (i = 0; i < n; i++) {
        mc_release(m[i]);
        mc_detach(c[i]);
    }
    return rc == 0 ? 0 : rc == 1 ? 1 : 3;
}

static int cmd_watch(char **av)
{
    char seen_v[8][64] = {{0}};
    long seen_n[8] = {0}, bad = 0, errors = 0;
    uint64_t end;
    mc_cache *c;

    if (mc_attach_dir(av[2], av[3], &c)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    end = mc_mono_ns() + (uint64_t)atol(av[6]) * 1000000ull;
    while (mc_mono_ns() < end) {
        mc_model *m;
        int i;

        if (mc_get(c, av[4], av[5], &m) != 0) {
            errors++;
            continue;
        }
        if (!bytes_match(m)) {
            fprintf(stderr, "BAD: %s@%s bytes do not match its checksum\n", mc_model_name(m),
                    mc_model_version(m));
            bad++;
        }
        for (i = 0; i < 8 && seen_v[i][0] && strcmp(seen_v[i], mc_model_version(m)); i++)
            ;
        if (i < 8) {
            snprintf(seen_v[i], sizeof(seen_v[i]), "%s", mc_model_version(m));
            seen_n[i]++;
        }
        mc_release(m);
    }
    printf("seen");
    for (int i = 0; i < 8 && seen_v[i][0]; i++)
        printf(" %s=%ld", seen_v[i], seen_n[i]);
    printf(" errors %ld bad %ld\n", errors, bad);
    mc_detach(c);
    return bad ? 1 : 0;
}

static int verify(const mc_model *m, const char *name, const char *ref, uint64_t *rnd,
                  bool full);

/* Models handed from the thread that got them to another that releases them. */
static struct {
    pthread_mutex_t mu;
    mc_model *q[256];
    const char *names[256];
    int n;
} handoff = {.mu = PTHREAD_MUTEX_INITIALIZER};

struct tctx {
    mc_cache *c;
    long n, nmodels, bad, ok;
    uint64_t rnd;
};

static void *thread_main(void *arg)
{
    static const char *refs[] = {"1.0.0", "1.1.0", "2.0.0", "prod", "latest", "^1"};
    struct tctx *t = arg;

    mc_model *hoard[12] = {0}; /* up to 12 held at once: holds spill into 3 slots */
    unsigned nh = 0;

    for (long i = 0; i < t->n; i++) {
        char name[32];
        const char *ref;
        mc_model *m;

        if (nh == 12 || (nh && i % 3 == 0)) { /* release the oldest after re-checking it */
            t->bad += verify(hoard[0], mc_model_name(hoard[0]), "x", &t->rnd, false);
            mc_release(hoard[0]);
            memmove(hoard, hoard + 1, sizeof(hoard[0]) * --nh);
        }

        t->rnd = t->rnd * 6364136223846793005ull + 1442695040888963407ull;
        snprintf(name, sizeof(name), "m%ld", (long)((t->rnd >> 33) % (uint64_t)t->nmodels));
        ref = refs[(t->rnd >> 20) % 6];
        if (mc_get(t->c, name, ref, &m) != 0)
            continue;
        t->bad += verify(m, name, ref, &t->rnd, false);
        t->ok++;
        if (i % 7 == 0) { /* someone else releases it, maybe after we exit */
            pthread_mutex_lock(&handoff.mu);
            if (handoff.n < 256) {
                handoff.q[handoff.n++] = m;
                m = NULL;
            }
            pthread_mutex_unlock(&handoff.mu);
        }
        if (m && i % 11 == 0 && nh < 12) { /* keep this one a while */
            hoard[nh++] = m;
            m = NULL;
        }
        if (i % 5 == 0) { /* release one handed over by another thread */
            mc_model *o = NULL;
            pthread_mutex_lock(&handoff.mu);
            if (handoff.n)
                o = handoff.q[--handoff.n];
            pthread_mutex_unlock(&handoff.mu);
            if (o) {
                t->bad += verify(o, mc_model_name(o), "x", &t->rnd, false);
                mc_release(o);
            }
        }
        mc_release(m);
    }
    /* Exit while still holding some: they go to the handoff queue. */
    pthread_mutex_lock(&handoff.mu);
    while (nh && handoff.n < 256)
        handoff.q[handoff.n++] = hoard[--nh];
    pthread_mutex_unlock(&handoff.mu);
    while (nh)
        mc_release(hoard[--nh]);
    return NULL;
}

static int cmd_threads(char **av)
{
    int nt = atoi(av[4]);
    long n = atol(av[5]), nmodels = atol(av[6]), bad = 0, ok = 0;
    struct tctx *ctx = calloc((size_t)nt, sizeof(*ctx));
    pthread_t *th = calloc((size_t)nt, sizeof(*th));
    mc_cache *c;
    struct mc_readers rt;
    int max_owned = 0;

    if (mc_attach_dir(av[2], av[3], &c)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    /* A second view of the reader table, to count our slots (the arena is
     * mapped once per process, so read its creation time from our cache). */
    struct mc_cache_info ci;
    mc_cache_info(c, &ci);
    if (mc_readers_open(av[2], av[3], ci.created_ns, &rt)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    /* Rounds of threads that start, work and exit, some still holding models. */
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < nt; i++) {
            ctx[i] = (struct tctx){.c = c, .n = n / 8, .nmodels = nmodels,
                                   .rnd = (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull + (uint64_t)round};
            pthread_create(&th[i], NULL, thread_main, &ctx[i]);
        }
        for (int i = 0; i < nt; i++) {
            pthread_join(th[i], NULL);
            bad += ctx[i].bad;
            ok += ctx[i].ok;
        }
        /* Slots parked by exited threads are reused once released, so the
         * process's share of the reader table does not grow round by round. */
        int owned = 0;
        for (uint32_t i = 0; i < rt.nslots; i++)
            owned += rt.slots[i].pid == (uint32_t)getpid();
        if (owned > max_owned)
            max_owned = owned;
    }
    while (handoff.n) { /* what exited threads still held */
        mc_model *m = handoff.q[--handoff.n];
        bad += verify(m, mc_model_name(m), "x", &ctx[0].rnd, true);
        mc_release(m);
    }
    printf("threads %d ok %ld bad %ld slots %d\n", nt, ok, bad, max_owned);
    mc_readers_close(&rt);
    mc_detach(c);
    free(ctx);
    free(th);
    return bad ? 1 : 0;
}

static int cmd_fork(char **av)
{
    mc_cache *c;
    mc_model *m, *m2;
    pid_t pid;
    int st;

    if (mc_attach_dir(av[2], av[3], &c) || mc_get(c, av[4], av[5], &m)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    /* The same cache twice in one process: refused, saying why (not --base). */
    mc_cache *again;
    if (mc_attach_dir(av[2], av[3], &again) != MC_EBUSY ||
        !strstr(mc_last_error(), "already attached in this process")) {
        printf("a second attach: %s\n", mc_last_error());
        return 1;
    }
    pid = fork();
    if (pid == 0) {
        mc_cache *c2;
        /* The inherited cache refuses politely ... */
        if (mc_get(c, av[4], av[5], &m2) != MC_EINVAL || !strstr(mc_last_error(), "fork"))
            _exit(10);
        /* ... releasing the parent's model leaves the parent's hold alone ... */
        mc_release(m);
        mc_detach(c);
        /* ... also after detaching (the header's advice: detach, then attach
         * again; the inherited handle must not touch freed memory) ... */
        mc_release(m);
        /* ... and a fresh attach works. */
        uint64_t rnd = 1;
        if (mc_attach_dir(av[2], av[3], &c2) || mc_get(c2, av[4], av[5], &m2) ||
            verify(m2, av[4], av[5], &rnd, true)) {
            fprintf(stderr, "child: %s\n", mc_last_error());
            _exit(11);
        }
        mc_release(m2);
        mc_detach(c2);
        _exit(0);
    }
    waitpid(pid, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        printf("child failed: status %d\n", st);
        return 1;
    }
    /* The parent still holds its model: a hold in one of its slots ... */
    struct mc_cache_info ci;
    struct mc_readers rt;
    int holds = 0;
    mc_cache_info(c, &ci);
    if (mc_readers_open(av[2], av[3], ci.created_ns, &rt) == 0) {
        for (uint32_t i = 0; i < rt.nslots; i++)
            for (unsigned j = 0; j < MC_SLOT_HOLDS; j++)
                holds += rt.slots[i].pid == (uint32_t)getpid() && rt.slots[i].held[j];
        mc_readers_close(&rt);
    }
    if (holds != 1) {
        printf("the parent's hold is gone (%d holds)\n", holds);
        return 1;
    }
    /* ... and the bytes are intact. */
    uint64_t rnd = 1;
    if (verify(m, av[4], av[5], &rnd, true)) {
        printf("BAD after fork\n");
        return 1;
    }
    /* A second release of the same handle is ignored: later gets on this
     * thread still get handles of their own, each holding its model. */
    mc_model *a, *b;
    mc_release(m);
    mc_release(m);
    if (mc_get(c, av[4], av[5], &a) || mc_get(c, av[4], av[5], &b) || a == b) {
        printf("after a double release two gets share handle %p\n", (void *)a);
        return 1;
    }
    mc_release(a);
    mc_release(b);
    printf("ok\n");
    mc_detach(c);
    return 0;
}

static int cmd_meta(char **av)
{
    mc_cache *c;
    mc_model *m;

    if (mc_attach_dir(av[2], av[3], &c) || mc_get(c, av[4], av[5], &m)) {
        printf("error %s\n", mc_last_error());
        return 3;
    }
    printf("%s\n", mc_model_metadata(m));
    mc_release(m);
    mc_detach(c);
    return 0;
}

static int cmd_tensor(char **av)
{
    struct mc_tensor t;
    mc_cache *c;
    mc_model *m;
    double sum = 0;

    if (mc_attach_dir(av[2], av[3], &c) || mc_get(c, av[4], av[5], &m)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    if (mc_model_tensor_find(m, av[6], &t) != 0) {
        printf("error %s\n", mc_last_error());
        return 3;
    }
    if (strcmp(t.dtype, "F32") == 0)
        for (uint64_t i = 0; i < t.size / 4; i++)
            sum += ((const float *)t.data)[i];
    printf("%zu %s ", mc_model_tensor_count(m), t.dtype);
    for (unsigned d = 0; d < t.ndim; d++)
        printf("%s%llu", d ? "x" : "", (unsigned long long)t.shape[d]);
    printf(" aligned %d sum %g\n", t.aligned, sum);
    mc_release(m);
    mc_detach(c);
    return 0;
}

static int cmd_holdwatch(char **av)
{
    long n = 0, bad = 0;
    mc_cache *c;
    mc_model *m;
    char line[16];

    if (mc_attach_dir(av[2], av[3], &c) || mc_get(c, av[4], av[5], &m)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    printf("held %s %zu\n", mc_model_version(m), mc_model_size(m));
    fflush(stdout);
    /* stdin: one line per verification request, EOF to stop. */
    while (fgets(line, sizeof(line), stdin)) {
        n++;
        bad += !bytes_match(m);
        printf("verified %ld bad %ld\n", n, bad);
        fflush(stdout);
    }
    mc_release(m);
    return bad ? 1 : 0;
}

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
        line[0] = '\0';
    mc_slot_release(&r, idx);
    mc_readers_close(&r);
    mc_arena_close(&a);
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

static int cmd_getloads(char **av)
{
    char line[512], name[256], ref[256];
    int ms = atoi(av[4]);
    mc_cache *c;

    if (mc_attach_dir(av[2], av[3], &c)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin)) {
        mc_model *m;
        int rc;

        if (sscanf(line, "%255s %255s", name, ref) != 2)
            return 2;
        rc = mc_get_load(c, name, ref, ms, &m);
        if (rc)
            printf("error %d %s\n", rc, mc_last_error());
        else
            printf("%s %s %s\n", bytes_match(m) ? "ok" : "BAD", mc_model_name(m),
                   mc_model_version(m));
        if (!rc)
            mc_release(m);
        fflush(stdout);
    }
    mc_detach(c);
    return 0;
}

/* An alias's move reaching this worker: the fleet test's propagation latency (see above). */
static int cmd_follow(char **av)
{
    char line[512], want[128];
    unsigned long long t0, t1;
    mc_cache *c;

    if (mc_attach_dir(av[2], av[3], &c)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    printf("ready\n");
    fflush(stdout);
    while (fgets(line, sizeof(line), stdin)) {
        uint64_t end;
        bool seen = false;

        if (sscanf(line, "%127s %llu %llu", want, &t0, &t1) != 3)
            return 2;
        end = mc_mono_ns() + 10000000000ull;
        while (!seen && mc_mono_ns() < end) {
            mc_model *m;

            if (mc_get(c, av[4], av[5], &m) != 0)
                continue;
            seen = strcmp(mc_model_version(m), want) == 0;
            mc_release(m);
        }
        if (seen) {
            uint64_t now = mc_mono_ns();

            printf("saw %s %llu %llu\n", want, (unsigned long long)(now - t0),
                   (unsigned long long)(now - t1));
        } else {
            printf("timeout\n");
        }
        fflush(stdout);
    }
    mc_detach(c);
    return 0;
}

static int cmd_canary(char **av)
{
    long n = atol(av[6]), bad = 0, highest = 0, gets = 0;
    bool keyed = strcmp(av[7], "keyed") == 0;
    uint64_t rnd = 0x9e3779b97f4a7c15ull;
    mc_cache *c;

    if (mc_attach_dir(av[2], av[3], &c)) {
        fprintf(stderr, "mp_reader: %s\n", mc_last_error());
        return 2;
    }
    for (long i = 0; i < n; i++) {
        mc_model *m;
        long major, minor;
        int rc = keyed ? mc_get_keyed(c, av[4], av[5], &i, sizeof(i), &m)
                       : mc_get(c, av[4], av[5], &m);

        if (rc) {
            fprintf(stderr, "BAD: get %s#%s: %s\n", av[4], av[5], mc_last_error());
            bad++;
            continue;
        }
        gets++;
        if (sscanf(mc_model_version(m), "%ld.%ld", &major, &minor) != 2 || minor != 0 ||
            major < highest - 1 || verify(m, av[4], av[5], &rnd, true)) {
            fprintf(stderr, "BAD: got %s after %ld.0.0 (a decoy, an old set, or bad bytes)\n",
                    mc_model_version(m), highest);
            bad++;
        }
        if (major > highest)
            highest = major;
        mc_release(m);
    }
    printf("gets %ld highest %ld bad %ld\n", gets, highest, bad);
    mc_detach(c);
    return bad ? 1 : 0;
}

int main(int ac, char **av)
{
    if (ac >= 8 && strcmp(av[1], "canary") == 0)
        return cmd_canary(av);
    if (ac >= 6 && strcmp(av[1], "write") == 0)
        return cmd_write(av);
    if (ac >= 6 && strcmp(av[1], "hold") == 0)
        return cmd_hold(av);
    if (ac >= 4 && strcmp(av[1], "pin") == 0)
        return cmd_pin(av);
    if (ac >= 6 && strcmp(av[1], "stress") == 0)
        return cmd_stress(av);
    if (ac >= 6 && strcmp(av[1], "verify") == 0)
        return cmd_verify(av, false);
    if (ac >= 7 && strcmp(av[1], "getload") == 0)
        return cmd_verify(av, true);
    if (ac >= 7 && strcmp(av[1], "watch") == 0)
        return cmd_watch(av);
    if (ac >= 6 && strcmp(av[1], "holdwatch") == 0)
        return cmd_holdwatch(av);
    if (ac >= 7 && strcmp(av[1], "tensor") == 0)
        return cmd_tensor(av);
    if (ac >= 7 && strcmp(av[1], "threads") == 0)
        return cmd_threads(av);
    if (ac >= 6 && strcmp(av[1], "fork") == 0)
        return cmd_fork(av);
    if (ac >= 6 && strcmp(av[1], "meta") == 0)
        return cmd_meta(av);
    if (ac >= 6 && strcmp(av[1], "follow") == 0)
        return cmd_follow(av);
    if (ac >= 5 && strcmp(av[1], "getloads") == 0)
        return cmd_getloads(av);
    if (ac >= 5 && strcmp(av[1], "several") == 0)
        return cmd_several(ac, av);
    fprintf(stderr, "usage: mp_reader write|hold|pin|stress|verify|watch|holdwatch|threads|getload|"
                    "fork|meta|tensor|getloads DIR CACHE ...; mp_reader several DIR MS CACHE... "
                    "(see the comment at the top of mp_reader.c)\n");
    return 2;
}
