/*
 * report.c - the output folder: results.json, results.csv and plots.
 *
 * results.json accumulates: rows of the scenarios run now replace that
 * scenario's earlier rows, the others are kept, so `mcache-bench get` then
 * `mcache-bench start` leave one file holding both. The CSV and the plots
 * are redrawn from the merged rows every time.
 *
 *   {"machine": {...}, "scenarios": {"get": {"date", "options"}, ...},
 *    "results": [{"scenario", "system", "metric", "unit", "median", "min",
 *                 "max", "runs": [...], "statistic", "baseline", "ratio"}],
 *    "targets": [{"scenario", "target", "value", "limit", "at_most", "pass"}]}
 *
 * "median" holds the row's statistic: the median, or for rows whose
 * "statistic" is "p99" the 99th percentile. "ratio" is the row's value over
 * its baseline's (a system's row of the same metric, or a fixed value).
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/model.h"

static json_t *num_or_null(double v)
{
    return isnan(v) || isinf(v) ? json_null() : json_real(v);
}

static json_t *row_json(struct bench *b, const struct bench_row *r)
{
    json_t *runs = json_array(), *o;

    for (size_t i = 0; i < r->n; i++)
        json_array_append_new(runs, json_real(r->runs[i]));
    o = json_pack("{s:s, s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s}", "scenario", r->scenario,
                  "system", r->system, "metric", r->metric, "unit", r->unit, "median",
                  num_or_null(row_value(r)), "min", num_or_null(row_min(r)), "max",
                  num_or_null(row_max(r)), "runs", runs, "statistic",
                  r->pctl == 50 ? "median" : "p99");
    if (r->base_system || r->base_label) {
        json_object_set_new(o, "baseline",
                            json_string(r->base_system ? r->base_system : r->base_label));
        json_object_set_new(o, "ratio", num_or_null(row_ratio(b, r)));
    }
    return o;
}

static json_t *machine_obj(struct bench *b, const struct machine *m)
{
    return json_pack("{s:s, s:i, s:I, s:s, s:s, s:I, s:s, s:s, s:I, s:I, s:b, s:s}", "cpu", m->cpu,
                     "cores", (int)m->cores, "memory_bytes", (json_int_t)m->memory, "kernel",
                     m->kernel, "os", m->os, "arena_page_size", (json_int_t)m->page_size,
                     "arena_backing", m->backing, "shm_dir", b->o.shm_dir, "huge_page_size",
                     (json_int_t)m->huge_page_size, "huge_pages_free",
                     (json_int_t)m->huge_pages_free, "free_page_reporting",
                     m->free_page_reporting, "date", m->date);
}

static bool ran_now(struct bench *b, const char *scenario)
{
    for (size_t i = 0; i < b->nran; i++)
        if (!strcmp(b->ran[i], scenario))
            return true;
    return false;
}

/* Keep the earlier entries of arr whose scenario was not run now. */
static json_t *kept(struct bench *b, json_t *old)
{
    json_t *arr = json_array(), *e;
    size_t i;

    json_array_foreach(old, i, e)
    {
        const char *sc = json_string_value(json_object_get(e, "scenario"));

        if (sc && !ran_now(b, sc))
            json_array_append(arr, e);
    }
    return arr;
}

static json_t *merged(struct bench *b, json_t *old, const struct machine *m)
{
    json_t *results = kept(b, json_object_get(old, "results"));
    json_t *targets = kept(b, json_object_get(old, "targets"));
    json_t *scen = json_object_get(old, "scenarios");
    char opts[256];

    scen = json_is_object(scen) ? json_deep_copy(scen) : json_object();
    snprintf(opts, sizeof(opts), "%s--runs %u --size %llu", b->o.quick ? "--quick " : "", b->o.runs,
             (unsigned long long)b->o.size);
    for (size_t i = 0; i < b->nrows; i++)
        json_array_append_new(results, row_json(b, &b->rows[i]));
    for (size_t i = 0; i < b->ntargets; i++) {
        struct bench_target *t = &b->targets[i];

        json_array_append_new(targets,
                              json_pack("{s:s, s:s, s:o, s:f, s:b, s:b}", "scenario", t->scenario,
                                        "target", t->what, "value", num_or_null(t->value), "limit",
                                        t->limit, "at_most", t->at_most, "pass", t->pass));
    }
    for (size_t i = 0; i < b->nran; i++)
        json_object_set_new(scen, b->ran[i],
                            json_pack("{s:s, s:s}", "date", m->date, "options", opts));
    return json_pack("{s:o, s:o, s:o, s:o}", "machine", machine_obj(b, m), "scenarios", scen,
                     "results", results, "targets", targets);
}

/* ---- CSV ---- */

static void csv_field(FILE *f, const char *s, bool last)
{
    if (strpbrk(s, ",\"\n")) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"')
                fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
    fputc(last ? '\n' : ',', f);
}

static void num_text(json_t *v, char *buf, size_t len)
{
    if (json_is_number(v))
        snprintf(buf, len, "%.6g", json_number_value(v));
    else
        buf[0] = '\0';
}

static int write_csv(const char *path, json_t *results)
{
    static const char *const cols[] = {"scenario", "system", "metric",    "unit",     "median",
                                       "min",      "max",    "statistic", "baseline", "ratio"};
    const size_t ncols = sizeof(cols) / sizeof(cols[0]);
    FILE *f = fopen(path, "w");
    json_t *r;
    size_t i;

    if (!f)
        return bench_error("writing %s: %s", path, strerror(errno));
    for (size_t c = 0; c < ncols; c++)
        fprintf(f, "%s,", cols[c]);
    fputs("runs\n", f);
    json_array_foreach(results, i, r)
    {
        char buf[4096] = "", num[64];
        size_t n = 0, k;
        json_t *v;

        for (size_t c = 0; c < ncols; c++) {
            v = json_object_get(r, cols[c]);
            if (json_is_string(v))
                csv_field(f, json_string_value(v), false);
            else {
                num_text(v, num, sizeof(num));
                csv_field(f, num, false);
            }
        }
        json_array_foreach(json_object_get(r, "runs"), k, v)
        {
            num_text(v, num, sizeof(num));
            n += (size_t)snprintf(buf + n, n < sizeof(buf) ? sizeof(buf) - n : 0, "%s%s",
                                  k ? ";" : "", num);
        }
        csv_field(f, buf, true);
    }
    return fclose(f) == 0 ? 0 : bench_error("writing %s: %s", path, strerror(errno));
}

/* ---- plots ---- */

static void slug(const char *s, char *out, size_t len)
{
    size_t n = 0;

    for (; *s && n + 4 < len; s++)
        if (*s == '%')
            n += (size_t)snprintf(out + n, len - n, "pct");
        else
            out[n++] = (char)((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                                      (*s >= '0' && *s <= '9') || *s == '-'
                                  ? *s
                                  : '_');
    out[n] = '\0';
}

static const char *str_of(json_t *row, const char *key)
{
    const char *s = json_string_value(json_object_get(row, key));

    return s ? s : "";
}

/* Distinct values of key among rows of (scenario, unit), in first-seen order. */
static size_t distinct(json_t *results, const char *sc, const char *unit, const char *key,
                       const char **out, size_t max)
{
    size_t n = 0, i;
    json_t *r;

    json_array_foreach(results, i, r)
    {
        const char *v = str_of(r, key);
        bool seen = false;

        if (strcmp(str_of(r, "scenario"), sc) || strcmp(str_of(r, "unit"), unit))
            continue;
        for (size_t k = 0; k < n && !seen; k++)
            seen = !strcmp(out[k], v);
        if (!seen && n < max)
            out[n++] = v;
    }
    return n;
}

static json_t *find_row(json_t *results, const char *sc, const char *unit, const char *metric,
                        const char *system)
{
    size_t i;
    json_t *r;

    json_array_foreach(results, i, r) if (!strcmp(str_of(r, "scenario"), sc) &&
                                          !strcmp(str_of(r, "unit"), unit) &&
                                          !strcmp(str_of(r, "metric"), metric) &&
                                          !strcmp(str_of(r, "system"), system)) return r;
    return NULL;
}

static void gp_quote(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

/* One clustered bar chart (metrics x systems) of a scenario's rows in one unit. */
static int plot_group(struct bench *b, const char *gnuplot, const char *dir, json_t *results,
                      const char *sc, const char *unit, const char *mline)
{
    const char *metrics[32], *systems[16];
    size_t nm = distinct(results, sc, unit, "metric", metrics, 32);
    size_t ns = distinct(results, sc, unit, "system", systems, 16);
    double lo = INFINITY, hi = 0, top = 0;
    char name[128], base[256], dat[1024], gp[1024];
    FILE *f;

    (void)b;
    snprintf(base, sizeof(base), "%s-%s", sc, unit);
    slug(base, name, sizeof(name));
    snprintf(dat, sizeof(dat), "%s/plot-data/%s.dat", dir, name);
    snprintf(gp, sizeof(gp), "%s/plot-data/%s.gp", dir, name);
    if (!(f = fopen(dat, "w")))
        return bench_error("writing %s: %s", dat, strerror(errno));
    for (size_t m = 0; m < nm; m++) {
        fprintf(f, "%s", metrics[m]);
        for (size_t s = 0; s < ns; s++) {
            json_t *r = find_row(results, sc, unit, metrics[m], systems[s]);
            double v = r ? json_number_value(json_object_get(r, "median")) : NAN;

            if (r && json_is_number(json_object_get(r, "median"))) {
                fprintf(f, "\t%g\t%g\t%g", v, json_number_value(json_object_get(r, "min")),
                        json_number_value(json_object_get(r, "max")));
                lo = v > 0 && v < lo ? v : lo;
                hi = v > hi ? v : hi;
                if (json_number_value(json_object_get(r, "max")) > top)
                    top = json_number_value(json_object_get(r, "max"));
            } else {
                fprintf(f, "\tNaN\tNaN\tNaN");
            }
        }
        fputc('\n', f);
    }
    fclose(f);
    if (top <= 0) /* every value is 0 (e.g. no page cached): a plot of nothing says nothing */
        return 0;
    if (!(f = fopen(gp, "w")))
        return bench_error("writing %s: %s", gp, strerror(errno));
    fprintf(f, "# mcache-bench: %s, %s (edit and run `gnuplot %s.gp` here to redraw)\n", sc, unit,
            name);
    fprintf(f, "set datafile separator \"\\t\"\nset style data histogram\n"
               "set style histogram errorbars gap 2 lw 1\nset style fill solid 0.85 border -1\n"
               "set boxwidth 0.9\nset grid ytics\nset key outside right top\n"
               "set xtics rotate by -25 nomirror\nset yrange [0:*]\n");
    fprintf(f, "set xrange [-0.6:%.1f]\n", (double)nm - 0.4); /* cluster i is centred on i */
    if (hi > 0 && lo < INFINITY && hi / lo > 50)
        fprintf(f, "set logscale y\nset yrange [*:*]\n");
    fprintf(f, "set ylabel ");
    gp_quote(f, unit);
    /* "\\n" reaches gnuplot as \n: a line break in a double-quoted string. */
    fprintf(f, "\nset title \"mcache-bench %s (median; bars: min-max)\\n%s\"\nplot ", sc, mline);
    for (size_t s = 0; s < ns; s++) {
        fprintf(f, "%s'%s.dat' using %zu:%zu:%zu%s title ", s ? ", " : "", name, 2 + 3 * s,
                3 + 3 * s, 4 + 3 * s, s ? "" : ":xtic(1)");
        gp_quote(f, systems[s]);
    }
    fputc('\n', f);
    fclose(f);

    /* gnuplot runs in plot-data/ (the script names its .dat there), so it is
     * given the script's name relative to it: --out may be a relative path. */
    char gp_here[160];
    snprintf(gp_here, sizeof(gp_here), "%s.gp", name);
    for (int svg = 0; svg < 2; svg++) {
        char cmd[2048];
        const char *argv[] = {gnuplot, "-e", cmd, gp_here, NULL};
        struct worker w;

        snprintf(cmd, sizeof(cmd),
                 "cd '%s/plot-data'; set terminal %s size 1100,600 font 'sans,10' noenhanced; "
                 "set output '../%s.%s'",
                 dir, svg ? "svg dynamic" : "pngcairo", name, svg ? "svg" : "png");
        if (bench_spawn(&w, gnuplot, argv, false) || worker_finish(&w))
            return bench_error("gnuplot failed on %s", gp);
    }
    return 0;
}

static int write_plots(struct bench *b, json_t *results, const struct machine *m)
{
    char gnuplot[1024], dir[1024], mline[512];
    const char *scen[32];
    size_t nsc = 0, i;
    json_t *r;
    int rc = 0;

    if (b->o.no_plots)
        return 0;
    if (!find_on_path("gnuplot", gnuplot, sizeof(gnuplot))) {
        bench_note("gnuplot is not on PATH: plots skipped (apt-get install gnuplot-nox)");
        return 0;
    }
    machine_line(m, mline, sizeof(mline));
    snprintf(dir, sizeof(dir), "%s/plot-data", b->o.out_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return bench_error("mkdir %s: %s", dir, strerror(errno));
    /* One plot per (scenario, unit). */
    json_array_foreach(results, i, r)
    {
        const char *sc = str_of(r, "scenario");
        bool seen = false;

        for (size_t k = 0; k < nsc && !seen; k++)
            seen = !strcmp(scen[k], sc);
        if (!seen && nsc < 32)
            scen[nsc++] = sc;
    }
    for (size_t s = 0; s < nsc && !rc; s++) {
        const char *units[16];
        size_t nu = 0;

        json_array_foreach(results, i, r)
        {
            const char *u = str_of(r, "unit");
            bool seen = false;

            if (strcmp(str_of(r, "scenario"), scen[s]))
                continue;
            for (size_t k = 0; k < nu && !seen; k++)
                seen = !strcmp(units[k], u);
            if (!seen && nu < 16)
                units[nu++] = u;
        }
        for (size_t u = 0; u < nu && !rc; u++)
            rc = plot_group(b, gnuplot, b->o.out_dir, results, scen[s], units[u], mline);
    }
    return rc;
}

int report_write(struct bench *b)
{
    char path[1024], tmp[1100];
    json_t *old = NULL, *root;
    struct machine m;
    json_error_t err;
    int rc;

    if (mkdir(b->o.out_dir, 0755) != 0 && errno != EEXIST)
        return bench_error("cannot create the output folder %s: %s", b->o.out_dir, strerror(errno));
    snprintf(path, sizeof(path), "%s/results.json", b->o.out_dir);
    if (access(path, F_OK) == 0) {
        old = json_load_file(path, 0, &err);
        if (!old)
            bench_note("%s is not valid JSON (%s, line %d); starting it afresh", path, err.text,
                       err.line);
    }
    if (!old)
        old = json_object();
    machine_get(b, &m);
    root = merged(b, old, &m);
    json_decref(old);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(root, tmp, JSON_INDENT(1) | JSON_REAL_PRECISION(8)) != 0 ||
        rename(tmp, path) != 0) {
        json_decref(root);
        unlink(tmp);
        return bench_error("writing %s: %s", path, strerror(errno));
    }
    snprintf(path, sizeof(path), "%s/results.csv", b->o.out_dir);
    rc = write_csv(path, json_object_get(root, "results"));
    if (!rc)
        rc = write_plots(b, json_object_get(root, "results"), &m);
    json_decref(root);
    if (!rc)
        printf("\nresults: %s/results.json, results.csv%s\n", b->o.out_dir,
               b->o.no_plots ? "" : " and plots (*.png, *.svg)");
    return rc;
}
