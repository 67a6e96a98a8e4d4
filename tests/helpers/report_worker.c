/*
 * report_worker.c - a worker that serves requests and reports them with
 * mc_report(), for the serving-statistics tests (tests/loader/test_stats.c,
 * tests/cli/test_stats.py). Exec'd, so it is a process of its own.
 *
 *   report_worker DIR CACHE NAME REF THREADS COUNT BASE_NS ERR_PERMILLE UNITS MODE
 *
 * Each of THREADS threads gets NAME@REF and reports COUNT requests on it:
 * request i took BASE_NS * (1 + i % 100) ns (so p50, p95 and p99 of a
 * multiple of 100 requests are 50, 95 and 99 x BASE_NS), failed when
 * i % 1000 < ERR_PERMILLE (ERR_PERMILLE of each 1000, counted per thread), and did UNITS work
 * units. Then it prints "reported N VERSION" (N over all threads) and, in MODE "exit", releases and
 * exits 0; in MODE "hold" it keeps holding the models until killed. A failed call prints "error
 * CODE MESSAGE" and exits 3.
 *
 * Exit codes: 0 ok, 2 usage or setup error, 3 a call failed.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mcache.h"

struct job {
    mc_cache *c;
    const char *name, *ref;
    unsigned long long count, base_ns, err_permille, units;
    bool hold;
    char version[128];
    int rc;
    char msg[512];
    mc_model *m;
};

static void *serve(void *arg)
{
    struct job *j = arg;

    j->rc = mc_get(j->c, j->name, j->ref, &j->m);
    if (j->rc) {
        snprintf(j->msg, sizeof(j->msg), "%s", mc_last_error());
        j->m = NULL;
        return NULL;
    }
    snprintf(j->version, sizeof(j->version), "%s", mc_model_version(j->m));
    for (unsigned long long i = 0; i < j->count && !j->rc; i++) {
        j->rc = mc_report(j->m, j->base_ns * (1 + i % 100), i % 1000 >= j->err_permille, j->units);
        if (j->rc)
            snprintf(j->msg, sizeof(j->msg), "%s", mc_last_error());
    }
    if (!j->hold) {
        mc_release(j->m);
        j->m = NULL;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    unsigned long long total = 0;
    struct job *jobs;
    pthread_t *th;
    mc_cache *c;
    unsigned n;
    int rc;

    if (argc != 11) {
        fprintf(stderr, "usage: report_worker DIR CACHE NAME REF THREADS COUNT BASE_NS "
                        "ERR_PERMILLE UNITS exit|hold\n");
        return 2;
    }
    n = (unsigned)strtoul(argv[5], NULL, 10);
    if (n == 0 || n > 64)
        return 2;
    rc = mc_attach_dir(argv[1], argv[2], &c);
    if (rc) {
        printf("error %d %s\n", rc, mc_last_error());
        return 3;
    }
    jobs = calloc(n, sizeof(*jobs));
    th = calloc(n, sizeof(*th));
    if (!jobs || !th)
        return 2;
    for (unsigned i = 0; i < n; i++) {
        jobs[i] = (struct job){.c = c,
                               .name = argv[3],
                               .ref = argv[4],
                               .count = strtoull(argv[6], NULL, 10),
                               .base_ns = strtoull(argv[7], NULL, 10),
                               .err_permille = strtoull(argv[8], NULL, 10),
                               .units = strtoull(argv[9], NULL, 10),
                               .hold = !strcmp(argv[10], "hold")};
        if (pthread_create(&th[i], NULL, serve, &jobs[i]) != 0)
            return 2;
    }
    for (unsigned i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    for (unsigned i = 0; i < n; i++) {
        if (jobs[i].rc) {
            printf("error %d %s\n", jobs[i].rc, jobs[i].msg);
            for (unsigned k = 0; k < n; k++)
                if (jobs[k].m)
                    mc_release(jobs[k].m);
            mc_detach(c);
            free(jobs);
            free(th);
            return 3;
        }
        total += jobs[i].count;
    }
    printf("reported %llu %s\n", total, jobs[0].version);
    fflush(stdout);
    if (!strcmp(argv[10], "hold"))
        for (;;)
            pause();
    mc_detach(c);
    free(jobs);
    free(th);
    return 0;
}
