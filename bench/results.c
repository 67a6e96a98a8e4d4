/*
 * results.c - what a run measured: rows of raw values, their medians and
 * ratios, targets, and the table printed on stdout (see bench.h).
 */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "common/vec.h"

/* The run cannot go on without memory: clean up what it started and exit. */
static _Noreturn void out_of_memory(void)
{
    fprintf(stderr, "mcache-bench: out of memory\n");
    cleanup_run();
    exit(1);
}

void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);

    if (!q)
        out_of_memory();
    return q;
}

char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;

    return memcpy(xrealloc(NULL, n), s, n);
}

/* ---- statistics ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double *sorted_copy(const double *v, size_t n)
{
    double *s = xrealloc(NULL, n * sizeof(*s));

    memcpy(s, v, n * sizeof(*s));
    qsort(s, n, sizeof(*s), cmp_double);
    return s;
}

double stat_median(const double *v, size_t n)
{
    double *s, m;

    if (!n)
        return NAN;
    s = sorted_copy(v, n);
    m = n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
    free(s);
    return m;
}

/* Nearest-rank percentile (p99 of 10 values is the largest). */
double stat_pctl(const double *v, size_t n, int pctl)
{
    double *s, m;
    size_t rank;

    if (!n)
        return NAN;
    if (pctl == 50)
        return stat_median(v, n);
    s = sorted_copy(v, n);
    rank = (size_t)ceil(pctl / 100.0 * (double)n);
    m = s[rank ? rank - 1 : 0];
    free(s);
    return m;
}

double row_value(const struct bench_row *r)
{
    return stat_pctl(r->runs, r->n, r->pctl);
}

double row_min(const struct bench_row *r)
{
    double m = INFINITY;

    for (size_t i = 0; i < r->n; i++)
        m = r->runs[i] < m ? r->runs[i] : m;
    return r->n ? m : NAN;
}

double row_max(const struct bench_row *r)
{
    double m = -INFINITY;

    for (size_t i = 0; i < r->n; i++)
        m = r->runs[i] > m ? r->runs[i] : m;
    return r->n ? m : NAN;
}

/* ---- rows ---- */

static struct bench_row *row_find(struct bench *b, const char *scenario, const char *system,
                                  const char *metric)
{
    for (size_t i = 0; i < b->nrows; i++) {
        struct bench_row *r = &b->rows[i];

        if (!strcmp(r->scenario, scenario) && !strcmp(r->system, system) &&
            !strcmp(r->metric, metric))
            return r;
    }
    return NULL;
}

struct bench_row *bench_row(struct bench *b, const char *system, const char *metric,
                            const char *unit)
{
    struct bench_row *r = row_find(b, b->scenario, system, metric);

    if (r)
        return r;
    if (MC_VEC_RESERVE(b->rows, b->rows_cap, b->nrows + 1, 32))
        out_of_memory();
    r = &b->rows[b->nrows++];
    memset(r, 0, sizeof(*r));
    r->scenario = xstrdup(b->scenario);
    r->system = xstrdup(system);
    r->metric = xstrdup(metric);
    r->unit = xstrdup(unit);
    r->pctl = 50;
    r->base_value = NAN;
    return r;
}

void bench_add(struct bench *b, const char *system, const char *metric, const char *unit, double v)
{
    struct bench_row *r = bench_row(b, system, metric, unit);

    if (MC_VEC_RESERVE(r->runs, r->cap, r->n + 1, 8))
        out_of_memory();
    r->runs[r->n++] = v;
}

void bench_base_system(struct bench *b, const char *metric, const char *system)
{
    for (size_t i = 0; i < b->nrows; i++) {
        struct bench_row *r = &b->rows[i];

        if (!strcmp(r->scenario, b->scenario) && !strcmp(r->metric, metric)) {
            free(r->base_system);
            r->base_system = xstrdup(system);
        }
    }
}

void bench_base_value(struct bench *b, const char *system, const char *metric_prefix, double v,
                      const char *label)
{
    for (size_t i = 0; i < b->nrows; i++) {
        struct bench_row *r = &b->rows[i];

        if (strcmp(r->scenario, b->scenario) || (system && strcmp(r->system, system)) ||
            (metric_prefix && strncmp(r->metric, metric_prefix, strlen(metric_prefix))))
            continue;
        free(r->base_label);
        r->base_value = v;
        r->base_label = xstrdup(label);
    }
}

double bench_value(struct bench *b, const char *system, const char *metric)
{
    struct bench_row *r = row_find(b, b->scenario, system, metric);

    return r ? row_value(r) : NAN;
}

double row_ratio(struct bench *b, const struct bench_row *r)
{
    if (r->base_system) {
        struct bench_row *base = row_find(b, r->scenario, r->base_system, r->metric);

        return base ? row_value(r) / row_value(base) : NAN;
    }
    if (r->base_label)
        return row_value(r) / r->base_value;
    return NAN;
}

/* ---- targets ---- */

void bench_target(struct bench *b, double value, bool at_most, double limit, const char *fmt, ...)
{
    struct bench_target *t;
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (MC_VEC_RESERVE(b->targets, b->targets_cap, b->ntargets + 1, 16))
        out_of_memory();
    t = &b->targets[b->ntargets++];
    t->scenario = xstrdup(b->scenario);
    t->what = xstrdup(what);
    t->value = value;
    t->limit = limit;
    t->at_most = at_most;
    t->pass = !isnan(value) && (at_most ? value <= limit : value >= limit);
    printf("%s  %s: %s: %.3g (target %s %g)\n",
           isnan(value) ? "N/A "
           : t->pass    ? "PASS"
                        : "MISS",
           b->scenario, what, value, at_most ? "<=" : ">=", limit);
    fflush(stdout);
}

/* ---- the table ---- */

static void fmt_num(char *buf, size_t len, double v)
{
    double a = fabs(v);

    if (isnan(v))
        snprintf(buf, len, "-");
    else if (a >= 1e6)
        snprintf(buf, len, "%.4g", v);
    else if (a >= 100)
        snprintf(buf, len, "%.0f", v);
    else if (a >= 10)
        snprintf(buf, len, "%.1f", v);
    else
        snprintf(buf, len, "%.3g", v);
}

void bench_print_table(struct bench *b, const char *title)
{
    const char *last_metric = "";
    size_t wm = 6, ws = 6;

    for (size_t i = 0; i < b->nrows; i++) {
        struct bench_row *r = &b->rows[i];

        if (strcmp(r->scenario, b->scenario))
            continue;
        wm = strlen(r->metric) > wm ? strlen(r->metric) : wm;
        ws = strlen(r->system) > ws ? strlen(r->system) : ws;
    }
    printf("\n== %s: %s ==\n", b->scenario, title);
    printf("%-*s  %-*s %10s %10s %10s  %-8s %5s  %s\n", (int)wm, "metric", (int)ws, "system",
           "median", "min", "max", "unit", "runs", "ratio");
    /* Rows of a metric are printed together, in the order first recorded. */
    for (size_t i = 0; i < b->nrows; i++) {
        struct bench_row *m = &b->rows[i];
        bool seen = false;

        if (strcmp(m->scenario, b->scenario))
            continue;
        for (size_t k = 0; k < i && !seen; k++)
            seen =
                !strcmp(b->rows[k].scenario, b->scenario) && !strcmp(b->rows[k].metric, m->metric);
        if (seen)
            continue;
        for (size_t j = i; j < b->nrows; j++) {
            struct bench_row *r = &b->rows[j];
            char med[32], mn[32], mx[32], ratio[96] = "";
            double q = row_ratio(b, r);

            if (strcmp(r->scenario, b->scenario) || strcmp(r->metric, m->metric))
                continue;
            fmt_num(med, sizeof(med), row_value(r));
            fmt_num(mn, sizeof(mn), row_min(r));
            fmt_num(mx, sizeof(mx), row_max(r));
            if (r->base_system && !strcmp(r->base_system, r->system))
                snprintf(ratio, sizeof(ratio), "1 (baseline)");
            else if (!isnan(q))
                snprintf(ratio, sizeof(ratio), "%.3gx %s", q,
                         r->base_system ? r->base_system : r->base_label);
            printf("%-*s  %-*s %10s %10s %10s  %-8s %5zu  %s\n", (int)wm,
                   strcmp(last_metric, r->metric) ? r->metric : "", (int)ws, r->system, med, mn, mx,
                   r->unit, r->n, ratio);
            last_metric = r->metric;
        }
    }
    printf("(median of the runs; rows marked p99 show the 99th percentile; ratio = this row / "
           "the named baseline)\n");
    fflush(stdout);
}

/* ---- messages ---- */

static void message(FILE *f, const char *prefix, const char *fmt, va_list ap)
{
    fputs(prefix, f);
    vfprintf(f, fmt, ap);
    fputc('\n', f);
    fflush(f);
}

void bench_note(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    message(stdout, "note: ", fmt, ap);
    va_end(ap);
}

void bench_progress(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    message(stderr, "mcache-bench: ", fmt, ap);
    va_end(ap);
}

int bench_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    message(stderr, "mcache-bench: error: ", fmt, ap);
    va_end(ap);
    return -1;
}
