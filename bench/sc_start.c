/*
 * sc_start.c - the `start` scenario: a new worker process attaches and reads
 * every byte of a model, as an inference worker does when it starts.
 *
 * Per run and system, one fresh exec'd worker reports: attach (mcache:
 * mc_attach; mmap: open + mmap; LMDB: environment open to mdb_get), the
 * first full read (from before attach until every byte has been summed: for
 * read() that includes copying the file into a private buffer) and a second
 * full read of the same bytes in the same process (no faults left: the
 * memory-bandwidth bound). The page-cached files are read back in before a
 * run if the host dropped any of their pages (DESIGN.md fact 10).
 */
#include <stdio.h>

#include "bench/bench.h"
#include "bench/model.h"
#include "bench/stores.h"

#define FIRST  "first full read, fresh process"
#define SECOND "second full read, same process"
#define ATTACH "attach (pointer to the bytes)"
#define GET    "attach + first get"

static const enum msys order[] = {MS_READ, MS_MCACHE, MS_MCACHE_HUGE, MS_MMAP, MS_LMDB};

static int measure(struct bench *b, struct stores *s)
{
    for (unsigned run = 0; run < b->o.runs; run++) {
        bench_progress("start: run %u/%u", run + 1, b->o.runs);
        for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
            enum msys m = order[i];
            const char *name = msys_name(m);
            struct read_run r;

            if (!s->have[m])
                continue;
            if (stores_rewarm(s) || stores_read(b, s, m, &r))
                return -1;
            bench_add(b, name, FIRST, "GB/s", (double)s->size / (double)r.first_ns);
            bench_add(b, name, SECOND, "GB/s", (double)s->size / (double)r.second_ns);
            if (m != MS_READ)
                bench_add(b, name, ATTACH, "us", (double)r.attach_ns / 1e3);
            if (m == MS_MCACHE || m == MS_MCACHE_HUGE)
                bench_add(b, name, GET, "us", (double)r.ready_ns / 1e3);
        }
    }
    bench_base_system(b, FIRST, msys_name(MS_READ));
    bench_base_system(b, SECOND, msys_name(MS_READ));
    bench_base_system(b, ATTACH, msys_name(MS_MMAP));
    return 0;
}

/* What backs ba's arena, from its header (the bench closed its writable mapping). */
static const char *backing_of(const struct barena *ba)
{
    struct mc_arena a;
    uint32_t backing;

    if (mc_arena_open(ba->dir, ba->cache, false, &a) != 0)
        return "an arena the bench cannot open again";
    backing = a.hdr->backing;
    mc_arena_close(&a);
    return mc_backing_name(backing);
}

/* The first-read targets: against the page-cached file's mmap, and no fault penalty. */
static void targets(struct bench *b, const struct stores *s)
{
    double file = bench_value(b, msys_name(MS_MMAP), FIRST);

    for (enum msys m = MS_MCACHE; m <= MS_MCACHE_HUGE; m++) {
        const char *name = msys_name(m);
        const struct barena *ba = m == MS_MCACHE ? &s->arena : &s->huge;
        double first = bench_value(b, name, FIRST), second = bench_value(b, name, SECOND);

        if (!s->have[m])
            continue;
        bench_target(b, bench_value(b, name, ATTACH), true, 100, "%s attach, us", name);
        if (s->have[MS_MMAP]) {
            bench_target(b, bench_value(b, name, ATTACH) /
                                bench_value(b, msys_name(MS_MMAP), ATTACH),
                         true, 2, "%s attach / file open + mmap", name);
            bench_target(b, first / file, false, 0.9,
                         "%s first full read / mmap of the page-cached file's, same run", name);
        }
        bench_target(b, first / second, false, 0.9,
                     "%s first full read / second read (no page-fault penalty)", name);
        bench_note("%s: the arena is on %s", name, backing_of(ba));
    }
}

int sc_start(struct bench *b)
{
    struct stores s;
    char title[128], sz[32];
    int rc = stores_make(b, &s, "start", b->o.size, ST_ARENA | ST_HUGE | ST_FILE | ST_LMDB);

    if (!rc && !s.have[MS_MCACHE_HUGE])
        bench_note("huge pages were not available, so mcache ran on 4 KiB pages only: %s",
                   s.why_no_huge);
    if (!rc)
        rc = measure(b, &s);
    if (!rc) {
        snprintf(title, sizeof(title), "a fresh worker attaches and reads a %s model",
                 fmt_bytes(s.size, sz, sizeof(sz)));
        bench_print_table(b, title);
        targets(b, &s);
    }
    stores_drop(&s);
    return rc;
}
