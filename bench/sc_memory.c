/*
 * sc_memory.c - the `memory` scenario: what N workers using the same model
 * cost the host.
 *
 * 1, 4 and 16 exec'd workers each acquire the model, read every byte once
 * (so every page is really mapped or copied) and hold it; then the total of
 * their proportional set sizes (Pss in /proc/PID/smaps_rollup: a shared page
 * counts 1/N to each of its N mappers) is taken. With mcache and file mmap
 * the workers share one copy; with read() each has its own. (The page cache
 * that read() copies from is not in anyone's PSS; it is reclaimable.)
 */
#include <stdio.h>

#include "bench/bench.h"
#include "bench/model.h"
#include "bench/stores.h"

#define MAX_WORKERS 16

static const unsigned counts[] = {1, 4, MAX_WORKERS};
static const enum msys order[] = {MS_MCACHE, MS_READ, MS_MMAP};

/* n workers hold system m's model; *pss gets the sum of their PSS. */
static int hold_run(struct bench *b, const struct stores *s, enum msys m, unsigned n, uint64_t *pss)
{
    struct worker w[MAX_WORKERS];
    const char *args[10] = {"hold"};
    char line[256];
    int rc = 0;

    stores_args(s, m, args + 1);
    *pss = 0;
    if (workers_start(b, w, n, args))
        return -1;
    for (unsigned i = 0; i < n && !rc; i++) {
        if (worker_line(&w[i], line, sizeof(line)))
            rc = bench_error("a %s worker died before holding the model", msys_name(m));
        else
            rc = stores_check_sum(s, m, line);
    }
    for (unsigned i = 0; i < n && !rc; i++)
        *pss += proc_pss(w[i].pid);
    return workers_end(w, n, rc);
}

static int measure(struct bench *b, struct stores *s)
{
    char metric[sizeof(counts) / sizeof(counts[0])][64];

    for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
        snprintf(metric[c], sizeof(metric[c]), "total PSS, %u worker%s", counts[c],
                 counts[c] > 1 ? "s" : "");
    for (unsigned run = 0; run < b->o.runs; run++) {
        bench_progress("memory: run %u/%u", run + 1, b->o.runs);
        for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
            for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
                uint64_t pss;

                if (stores_rewarm(s) || hold_run(b, s, order[i], counts[c], &pss))
                    return -1;
                bench_add(b, msys_name(order[i]), metric[c], "MiB", (double)pss / MiB);
            }
    }
    bench_base_value(b, NULL, NULL, (double)s->size / MiB, "one model");
    return 0;
}

int sc_memory(struct bench *b)
{
    struct stores s;
    char title[128], sz[32], metric[64];
    int rc = stores_make(b, &s, "memory",
                         size_fitting_memory("memory", "16 private copies", b->o.size,
                                             MAX_WORKERS + 2, GiB, 90),
                         ST_ARENA | ST_FILE);

    if (!rc)
        rc = measure(b, &s);
    if (!rc) {
        snprintf(title, sizeof(title), "workers sharing one %s model (PSS)",
                 fmt_bytes(s.size, sz, sizeof(sz)));
        bench_print_table(b, title);
        snprintf(metric, sizeof(metric), "total PSS, %u workers", MAX_WORKERS);
        bench_target(b, bench_value(b, msys_name(MS_MCACHE), metric) * MiB / (double)s.size, true,
                     1.1, "mcache, %u workers: total PSS / one model", MAX_WORKERS);
        bench_note("private copies, %u workers: total PSS is %.1fx one model (expected ~%u)",
                   MAX_WORKERS, bench_value(b, msys_name(MS_READ), metric) * MiB / (double)s.size,
                   MAX_WORKERS);
    }
    stores_drop(&s);
    return rc;
}
