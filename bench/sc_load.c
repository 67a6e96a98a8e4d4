/*
 * sc_load.c - the `load` scenario: a cold load of a model file, evicted
 * from the page cache before every run, into memory a worker can use.
 *
 *   mcache        a real mcached at its defaults (io_uring, O_DIRECT, its
 *                 chunk size and queue depth) with its own store: the file
 *                 is pushed with the registry library, then each run times
 *                 the control-socket `load NAME 1.0.0` from send to reply
 *                 (the model read into its arena extent, its XXH3-128
 *                 verified, published), and an `evict` makes the next run
 *                 cold again (the extent is kept, as mcached never gives
 *                 arena memory back).
 *   raw           the baseline: the same file read with O_DIRECT io_uring,
 *                 at mcached's chunk size and queue depth, into the very
 *                 pages mcached loads it into: the bench maps mcached's
 *                 arena file and reads into the model's extent while the
 *                 model is evicted (mcached never touches a free extent).
 *                 No checksum, no index, no socket: the limit of this
 *                 machine, in this run. Why the same pages: on this VM how
 *                 fast a device writes into guest memory depends on the
 *                 memory (the same read runs at 1.1 or 2.4 GB/s into two
 *                 buffers of one process, their CPU speed equal), so a
 *                 baseline into other memory would compare memory, not
 *                 loaders. The same read into a new shm mapping (the "same
 *                 kind of memory") is shown beside it, to make that visible.
 *   read()        open + read() of the whole file into a malloc'd buffer
 *                 (prefaulted once, reused: only the read is timed).
 *   cp            `cp FILE SHM_DIR/` exec'd and waited for; the copy is
 *                 removed after each run.
 *
 * Every system reads the same file: the artifact in mcached's store (the
 * push copied it there). Before every run of every system the file is
 * fsync'd and dropped with POSIX_FADV_DONTNEED, and mincore must show it
 * absent; a run that starts with pages still cached is not recorded (a
 * note says so), never reported as cold.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/mcd.h"
#include "bench/model.h"
#include "bench/rawload.h"
#include "common/clock.h"
#include "registry/registry.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

#define ARENA_SLACK (48 * MiB) /* beyond the largest model: 16 MiB index, header, alignment */
#define MAX_CACHED  0.01       /* a run is cold if at most 1% of the file is cached */

enum lsys { L_RAW, L_MCACHE, L_RAWNEW, L_READ, L_CP, L_N };

struct load {
    struct mcd d;
    struct mc_registry *reg;
    struct rawring ring;
    struct shmbuf shm; /* a new shm mapping, for the second raw row */
    uint8_t *arena;    /* mcached's arena file, mapped read-write by the bench */
    uint64_t arena_len;
    uint64_t base;   /* the arena's base address in mcached and its readers */
    uint64_t extent; /* offset of the model's bytes in the arena (this size) */
    unsigned moved;  /* runs where mcached loaded the model elsewhere */
    uint8_t *buf;    /* read()'s destination */
    char cp[1024];
    char store[600];
    char names[L_N][96];
    bool no_raw;         /* no io_uring or no O_DIRECT here: no raw rows */
    unsigned not_cold;   /* runs dropped because eviction failed */
    double worst_cached; /* highest residency seen before a recorded run */
};

static void fmt_size(uint64_t v, char *buf, size_t len)
{
    if (v >= GiB && v % GiB == 0)
        snprintf(buf, len, "%llu GiB", (unsigned long long)(v / GiB));
    else
        snprintf(buf, len, "%llu MiB", (unsigned long long)(v / MiB));
}

/* Map mcached's arena file read-write (anywhere: only model bytes are written). */
static int map_arena(struct load *l)
{
    struct stat st;
    int fd = open(l->d.arena, O_RDWR | O_CLOEXEC);
    void *p;

    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0)
            close(fd);
        return bench_error("opening mcached's arena %s: %s", l->d.arena, strerror(errno));
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return bench_error("mapping mcached's arena %s: %s", l->d.arena, strerror(errno));
    l->arena = p;
    l->arena_len = (uint64_t)st.st_size;
    return 0;
}

/* Start mcached, note how it loads, and set up the raw baseline to match it. */
static int setup(struct bench *b, struct load *l, uint64_t largest)
{
    const struct mc_registry_opts ro = {0};
    char a[32], c[32], sz[32];
    json_t *st = NULL;
    long long qd, chunk;
    const char *base;
    int rc;

    snprintf(l->store, sizeof(l->store), "%s/store-load", b->tmp_work);
    if (mcd_init(b, &l->d, "load", l->store, largest + ARENA_SLACK, 16 * MiB, NULL))
        return -1;
    if (!find_on_path("cp", l->cp, sizeof(l->cp)))
        return bench_error("cp is not on PATH");
    bench_progress("load: starting mcached with a %s arena (committed and prefaulted up front)",
                   fmt_bytes(largest + ARENA_SLACK, sz, sizeof(sz)));
    if (mcd_start(&l->d, false, NULL) || mcd_wait_ping(&l->d, 300000) ||
        mcd_call(&l->d, "status", 0, NULL, 10000, &st))
        return -1;
    qd = mcd_json_int(st, "loads", "queue_depth");
    chunk = mcd_json_int(st, "loads", "chunk_size");
    base = json_string_value(json_object_get(json_object_get(st, "arena"), "base"));
    l->base = base ? strtoull(base, NULL, 0) : 0;
    bench_note("load: mcached reads with %s, queue depth %lld, %s reads, %s, arena on %s",
               json_string_value(json_object_get(json_object_get(st, "loads"), "engine")), qd,
               fmt_bytes((uint64_t)chunk, c, sizeof(c)),
               mcd_json_int(st, "loads", "fixed_buffers") == 1 ? "registered buffers"
                                                               : "plain buffers",
               json_string_value(json_object_get(json_object_get(st, "arena"), "backing")));
    json_decref(st);
    if (qd <= 0 || chunk <= 0 || !l->base)
        return bench_error("mcached's status has no queue_depth, chunk_size or base");
    if (mc_registry_open(l->store, &ro, &l->reg))
        return bench_error("opening the store %s: %s", l->store, mc_last_error());
    if (map_arena(l) || shmbuf_make(b->shm_work, "raw-read", largest, &l->shm))
        return -1;
    if ((rc = rawring_init(&l->ring, (unsigned)qd, (uint64_t)chunk)) < 0) {
        bench_note("load: io_uring is refused here (%s; seccomp or "
                   "/proc/sys/kernel/io_uring_disabled): no raw O_DIRECT io_uring baseline, "
                   "its ratios are N/A",
                   strerror(-rc));
        l->no_raw = true;
    }
    l->buf = malloc(largest);
    if (!l->buf)
        return bench_error("cannot allocate %s for the read() baseline",
                           fmt_bytes(largest, a, sizeof(a)));
    memset(l->buf, 0, largest); /* prefault: only the read is timed */
    snprintf(l->names[L_RAW], sizeof(l->names[L_RAW]), "raw O_DIRECT io_uring (%s x %lld)",
             fmt_bytes((uint64_t)chunk, c, sizeof(c)), qd);
    snprintf(l->names[L_MCACHE], sizeof(l->names[L_MCACHE]), "mcache (mcached load)");
    snprintf(l->names[L_RAWNEW], sizeof(l->names[L_RAWNEW]), "raw, into a new shm mapping");
    snprintf(l->names[L_READ], sizeof(l->names[L_READ]), "read() into malloc");
    snprintf(l->names[L_CP], sizeof(l->names[L_CP]), "cp to %s", b->o.shm_dir);
    return 0;
}

/* Write a model file of size bytes, push it, and find the store's copy. */
static int make_model(struct bench *b, struct load *l, const char *name, uint64_t size,
                      uint64_t *sum, char *artifact, size_t len)
{
    const struct mc_reg_version *v;
    char src[700];
    int rc;

    snprintf(src, sizeof(src), "%s/%s.src", b->tmp_work, name);
    if (model_file_write(src, size, sum))
        return -1;
    rc = mc_registry_push(l->reg, name, "1.0.0", src, NULL, NULL);
    unlink(src);
    if (rc)
        return bench_error("pushing %s to %s: %s", name, l->store, mc_last_error());
    if (mc_registry_resolve(l->reg, name, "1.0.0", &v))
        return bench_error("%s@1.0.0 is not in the store after its push: %s", name,
                           mc_last_error());
    snprintf(artifact, len, "%s", v->path);
    return 0;
}

/*
 * Where mcached put name@1.0.0 (offset in the arena), asking as a worker
 * would; with check, also that its bytes are the pattern's.
 */
static int find_extent(struct bench *b, struct load *l, const char *name, uint64_t size,
                       uint64_t sum, bool check, uint64_t *off)
{
    mc_cache *c;
    mc_model *m;
    int rc = mc_attach_dir(b->shm_work, l->d.cache, &c);

    if (rc)
        return bench_error("attaching to mcached's cache %s: %s", l->d.cache, mc_last_error());
    rc = mc_get(c, name, "1.0.0", &m);
    if (rc) {
        mc_detach(c);
        return bench_error("%s@1.0.0 is not in mcached's arena after its load: %s", name,
                           mc_last_error());
    }
    *off = (uint64_t)(uintptr_t)mc_model_data(m) - l->base;
    if (mc_model_size(m) != size || *off % 4096 || *off + size > l->arena_len)
        rc = bench_error("%s@1.0.0 in the arena: %zu bytes at offset %llu, not %llu bytes in "
                         "the arena's %llu",
                         name, mc_model_size(m), (unsigned long long)*off, (unsigned long long)size,
                         (unsigned long long)l->arena_len);
    else if (check && model_sum(mc_model_data(m), size) != sum)
        rc = bench_error("the bytes mcached serves for %s@1.0.0 are not the file's", name);
    mc_release(m);
    mc_detach(c);
    return rc ? -1 : 0;
}

static int run_cp(struct bench *b, struct load *l, const char *file, uint64_t size, uint64_t *ns)
{
    char dst[700];
    const char *argv[] = {"cp", file, dst, NULL};
    struct worker w;
    struct stat st;
    uint64_t t0;
    int rc;

    snprintf(dst, sizeof(dst), "%s/cp-copy", b->shm_work);
    t0 = mc_mono_ns();
    rc = bench_spawn(&w, l->cp, argv, false);
    if (!rc)
        rc = worker_finish(&w);
    *ns = mc_mono_ns() - t0;
    if (!rc && (stat(dst, &st) != 0 || (uint64_t)st.st_size != size))
        rc = bench_error("cp made no full copy at %s", dst);
    unlink(dst);
    return rc;
}

/* The timed load request, then (untimed) where it went, then the evict. */
static int run_mcache(struct bench *b, struct load *l, const char *name, uint64_t size,
                      uint64_t sum, uint64_t *ns)
{
    const char *args[] = {name, "1.0.0", "600000"};
    json_t *j = NULL;
    uint64_t t0 = mc_mono_ns(), off;
    int rc = mcd_call(&l->d, "load", 3, args, 610000, &j);
    const char *state = j ? json_string_value(json_object_get(j, "state")) : NULL;

    *ns = mc_mono_ns() - t0;
    if (!rc && (mcd_json_int(j, NULL, "already") == 1 || !state || strcmp(state, "resident")))
        rc = bench_error("mcached answered the load of %s without a cold load (already resident "
                         "or not resident)",
                         name);
    json_decref(j);
    if (!rc && !(rc = find_extent(b, l, name, size, sum, false, &off)) && off != l->extent)
        l->moved++;
    if (!rc)
        rc = mcd_call(&l->d, "evict", 2, args, 60000, NULL);
    return rc ? -1 : 0;
}

/* One cold run of system s; *ns 0 if it was not cold. */
static int run_one(struct bench *b, struct load *l, enum lsys s, const char *name, const char *file,
                   uint64_t size, uint64_t sum, uint64_t *ns)
{
    double cached;
    uint8_t *dst;
    int rc = 0;

    *ns = 0;
    if ((s == L_RAW || s == L_RAWNEW) && l->no_raw)
        return 0;
    cached = file_evict(file);
    if (cached < 0)
        return bench_error("cannot evict %s from the page cache: %s", file, strerror(errno));
    if (cached > MAX_CACHED) {
        bench_note("load: %s: %.1f%% of the file was still in the page cache after "
                   "POSIX_FADV_DONTNEED; this run is not cold and is not recorded",
                   l->names[s], 100 * cached);
        l->not_cold++;
        return 0;
    }
    if (cached > l->worst_cached)
        l->worst_cached = cached;
    bench_add(b, "artifact file", "page cache before a run", "% cached", 100 * cached);
    switch (s) {
    case L_RAW:
    case L_RAWNEW:
        /* The model is evicted: its extent is free, and mcached does not touch it. */
        dst = s == L_RAW ? l->arena + l->extent : l->shm.p;
        rc = raw_uring_read(&l->ring, file, dst, size, ns);
        if (rc == 1) {
            bench_note("load: the file system of --tmp-dir refuses O_DIRECT: no raw O_DIRECT "
                       "io_uring baseline, its ratios are N/A (mcached reads through the page "
                       "cache there too)");
            l->no_raw = true;
            *ns = 0;
            return 0;
        }
        if (!rc && model_sum(dst, size) != sum)
            rc = bench_error("the raw O_DIRECT read of %s gave the wrong bytes", file);
        break;
    case L_MCACHE:
        rc = run_mcache(b, l, name, size, sum, ns);
        break;
    case L_READ:
        rc = buffered_read(file, l->buf, size, ns);
        if (!rc && model_sum(l->buf, size) != sum)
            rc = bench_error("read() of %s gave the wrong bytes", file);
        break;
    default:
        rc = run_cp(b, l, file, size, ns);
    }
    return rc;
}

/* Runs at a size: --runs, but 3 at 2 GiB unless --runs was given (the time budget of `all`). */
static unsigned runs_at(struct bench *b, uint64_t size)
{
    return size >= 2 * GiB && !b->o.runs_given ? 3 : b->o.runs;
}

static int measure(struct bench *b, struct load *l, uint64_t size)
{
    const char *args[] = {NULL, "1.0.0", "600000"};
    char sz[32], name[32], metric[64], artifact[1024];
    unsigned runs = runs_at(b, size);
    uint64_t sum;
    int rc;

    fmt_size(size, sz, sizeof(sz));
    snprintf(name, sizeof(name), "load-%llum", (unsigned long long)(size / MiB));
    snprintf(metric, sizeof(metric), "cold load, %s", sz);
    args[0] = name;
    bench_progress("load: writing and pushing a %s model", sz);
    if (make_model(b, l, name, size, &sum, artifact, sizeof(artifact)))
        return -1;
    /* An untimed load: where mcached puts it (and that it serves the right bytes). */
    if (mcd_call(&l->d, "load", 3, args, 610000, NULL) ||
        find_extent(b, l, name, size, sum, true, &l->extent) ||
        mcd_call(&l->d, "evict", 2, args, 60000, NULL))
        return -1;
    madvise(l->arena + l->extent, size, MADV_POPULATE_WRITE); /* as mcached does per load */
    {
        double ext = phys_run_pages(l->arena + l->extent, size),
               fresh = phys_run_pages(l->shm.p, size);

        if (ext > 0 && fresh > 0)
            bench_note("load: %s: the destination pages come in physically contiguous runs of "
                       "%.1f pages on average in mcached's extent, %.1f in the new shm mapping "
                       "(on this VM a device writes faster into longer runs)",
                       sz, ext, fresh);
    }
    for (unsigned run = 0; run < runs; run++) {
        bench_progress("load: %s, run %u/%u", sz, run + 1, runs);
        for (enum lsys s = 0; s < L_N; s++) {
            uint64_t ns;

            if (run_one(b, l, s, name, artifact, size, sum, &ns))
                return -1;
            if (ns)
                bench_add(b, l->names[s], metric, "GB/s", (double)size / (double)ns);
        }
    }
    bench_base_system(b, metric, l->names[L_RAW]);
    rc = mc_registry_remove_version(l->reg, name, "1.0.0", true, NULL);
    if (rc)
        return bench_error("removing %s from the store: %s", name, mc_last_error());
    return 0;
}

static void targets(struct bench *b, struct load *l, const uint64_t *sizes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char sz[32], metric[64];
        double m, raw, cp;

        fmt_size(sizes[i], sz, sizeof(sz));
        snprintf(metric, sizeof(metric), "cold load, %s", sz);
        m = bench_value(b, l->names[L_MCACHE], metric);
        raw = bench_value(b, l->names[L_RAW], metric);
        if (bench_value(b, l->names[L_RAWNEW], metric) > raw)
            raw = bench_value(b, l->names[L_RAWNEW], metric);
        cp = bench_value(b, l->names[L_CP], metric);
        bench_target(b, m / raw, false, 0.9,
                     "mcache cold load / the fastest raw O_DIRECT read (either memory), %s", sz);
        bench_target(b, m / cp, false, 2, "mcache cold load / cp to shm, %s", sz);
    }
}

/* The sizes to load: 64 MiB..2 GiB, or what fits this host. */
static size_t pick_sizes(struct bench *b, uint64_t *sizes)
{
    static const uint64_t all[] = {64 * MiB, 512 * MiB, 2 * GiB};
    size_t n = 0;

    for (size_t i = 0; i < (b->o.quick ? 1 : 3); i++) {
        /* the arena + a new mapping + cp's copy in shm, read()'s buffer, and room to spare */
        uint64_t mem = 4 * all[i] + ARENA_SLACK + GiB;
        uint64_t shm = 3 * all[i] + ARENA_SLACK + 64 * MiB;
        char a[32], m[32];

        if (meminfo("MemAvailable") < mem || fs_avail(b->o.shm_dir) < shm ||
            fs_avail(b->o.tmp_dir) < 2 * all[i] + 64 * MiB) {
            bench_note("load: skipping %s: it needs %s of memory (%s available), %s free in %s "
                       "and %s in %s",
                       fmt_bytes(all[i], a, sizeof(a)), fmt_bytes(mem, m, sizeof(m)),
                       fmt_bytes(meminfo("MemAvailable"), (char[32]){0}, 32),
                       fmt_bytes(shm, (char[32]){0}, 32), b->o.shm_dir,
                       fmt_bytes(2 * all[i] + 64 * MiB, (char[32]){0}, 32), b->o.tmp_dir);
            continue;
        }
        sizes[n++] = all[i];
    }
    return n;
}

int sc_load(struct bench *b)
{
    struct load l;
    uint64_t sizes[3];
    size_t n = pick_sizes(b, sizes);
    int rc = 0;

    memset(&l, 0, sizeof(l));
    l.d.fd = -1;
    if (!n)
        return bench_error("load: no model size fits this host (see the notes above)");
    rc = setup(b, &l, sizes[n - 1]);
    for (size_t i = 0; i < n && !rc; i++)
        rc = measure(b, &l, sizes[i]);
    if (!rc) {
        bench_print_table(b, "a cold load (file evicted from the page cache before every run)");
        if (n == 3 && runs_at(b, sizes[2]) < b->o.runs)
            bench_note("load: 2 GiB ran %u times (not --runs %u), to keep `all` in its time "
                       "budget; give --runs for more",
                       runs_at(b, sizes[2]), b->o.runs);
        if (l.not_cold)
            bench_note("load: %u runs were dropped because the file stayed in the page cache "
                       "after POSIX_FADV_DONTNEED",
                       l.not_cold);
        if (l.moved)
            bench_note("load: in %u runs mcached loaded the model into another extent than the "
                       "raw read used (the comparison then is not on the same pages)",
                       l.moved);
        bench_note("load: page-cache residency of the file before the recorded runs (mincore): "
                   "at most %.2f%%",
                   100 * l.worst_cached);
        if (vm_free_page_reporting())
            bench_note("load: this VM hands free memory back to its host (virtio-balloon free "
                       "page reporting): cp and read() copy into fresh memory and run fast when "
                       "it was freed a moment before, slow when the host took it back (the "
                       "spread of their min and max); mcached's arena was committed once, up "
                       "front");
        targets(b, &l, sizes, n);
    }
    mcd_drop(&l.d);
    mc_registry_close(l.reg);
    rawring_exit(&l.ring);
    shmbuf_drop(&l.shm);
    if (l.arena)
        munmap(l.arena, l.arena_len);
    free(l.buf);
    return rc;
}
