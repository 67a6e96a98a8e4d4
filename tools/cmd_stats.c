/*
 * cmd_stats.c - `mcache stats NAME[@REF]` and `mcache compare NAME V1 V2`:
 * the serving statistics that workers report with mc_report() and mcached
 * sums per version (docs/stats.md), over the last minute, the last ten
 * minutes and since the version was loaded. Both ask mcached (ctl ops
 * `stats` and `compare`, docs/protocol.md).
 *
 * The JSON (jv_stats_version) is built from a fixed list of keys, so the
 * CLI's schema does not change when mcached adds fields.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"
#include "tools/output.h"

/* ---- human output --------------------------------------------------------- */

static const char *window_label(const json_t *w, char *buf)
{
    const char *s = jstr_or(w, "window", "?");

    if (!strcmp(s, "1m") || !strcmp(s, "10m") || !strcmp(s, "loaded"))
        return !strcmp(s, "1m") ? "last 1 min" : !strcmp(s, "10m") ? "last 10 min" : "since loaded";
    snprintf(buf, FMT_LEN, "last %lld s", jint(w, "seconds"));
    return buf;
}

/* A latency in ns as "850 ns", "12.3 us", "4.56 ms", "1.20 s"; "-" without requests. */
static const char *fmt_latency(const json_t *w, const char *key, char *buf)
{
    double ns = (double)jint(w, key);

    if (jint(w, "requests") == 0)
        snprintf(buf, FMT_LEN, "-");
    else if (ns < 1e3)
        snprintf(buf, FMT_LEN, "%.0f ns", ns);
    else if (ns < 1e6)
        snprintf(buf, FMT_LEN, "%.1f us", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, FMT_LEN, "%.2f ms", ns / 1e6);
    else
        snprintf(buf, FMT_LEN, "%.2f s", ns / 1e9);
    return buf;
}

/* A row of the table: LEAD cells, then the window's figures. */
static void add_row(struct table *t, const char *lead0, const char *lead1, const json_t *w)
{
    char req[FMT_LEN], rate[FMT_LEN], err[FMT_LEN], erate[FMT_LEN], p50[FMT_LEN], p95[FMT_LEN],
        p99[FMT_LEN], upr[FMT_LEN];
    bool any = jint(w, "requests") > 0;

    snprintf(req, sizeof(req), "%lld", jint(w, "requests"));
    snprintf(rate, sizeof(rate), "%.1f", jnum(w, "requests_per_s"));
    snprintf(err, sizeof(err), "%lld", jint(w, "errors"));
    snprintf(erate, sizeof(erate), any ? "%.2f%%" : "-", jnum(w, "error_rate") * 100);
    snprintf(upr, sizeof(upr), any ? "%.2f" : "-", jnum(w, "units_per_request"));
    /* Without a version column (stats): the window, then the figures. */
    const char *row[] = {lead0,
                         lead1 ? lead1 : req,
                         req,
                         rate,
                         err,
                         erate,
                         fmt_latency(w, "p50_ns", p50),
                         fmt_latency(w, "p95_ns", p95),
                         fmt_latency(w, "p99_ns", p99),
                         upr};

    if (!lead1)
        memmove(&row[1], &row[2], 8 * sizeof(row[0]));
    table_add(t, row);
}

static const char *const head_stats[] = {"window", "requests", "req/s", "errors",    "error rate",
                                         "p50",    "p95",      "p99",   "units/req", NULL};
static const char *const head_compare[] = {"window", "version",    "requests", "req/s",
                                           "errors", "error rate", "p50",      "p95",
                                           "p99",    "units/req",  NULL};

static void print_stats(const struct cli *c, const json_t *v)
{
    char age[FMT_LEN], lab[FMT_LEN];
    struct table t;
    const json_t *w;
    size_t i;

    printf("%s@%s: serving statistics (loaded %s, stats index %lld)\n", jstr_or(v, "name", "?"),
           jstr_or(v, "version", "?"), fmt_age((uint64_t)jint(v, "loaded_ns"), c->now_ns, age),
           jint(v, "index"));
    table_init(&t, 0x3feu, head_stats);
    json_array_foreach(json_object_get(v, "windows"), i, w)
    {
        add_row(&t, window_label(w, lab), NULL, w);
    }
    table_print(&t, stdout, 2);
    table_free(&t);
    if (jstr(v, "split"))
        printf("%s is split %s: shown is its heaviest target; `mcache compare %s V1 V2` puts "
               "two side by side\n",
               jstr_or(v, "ref", "the alias"), jstr(v, "split"), jstr_or(v, "name", "NAME"));
}

/* b's figure over a's as "1.25x"; "-" when a has none. */
static const char *ratio(const json_t *a, const json_t *b, const char *key, char *buf)
{
    double x = jnum(a, key), y = jnum(b, key);

    if (jint(a, "requests") == 0 || jint(b, "requests") == 0 || x == 0)
        snprintf(buf, FMT_LEN, "-");
    else
        snprintf(buf, FMT_LEN, "%.2fx", y / x);
    return buf;
}

static void print_compare(const json_t *ans)
{
    const json_t *a = json_array_get(json_object_get(ans, "versions"), 0);
    const json_t *b = json_array_get(json_object_get(ans, "versions"), 1);
    const json_t *wa, *wb;
    const char *va = jstr_or(a, "version", "?"), *vb = jstr_or(b, "version", "?");
    char lab[FMT_LEN], wl[FMT_LEN];
    struct table t;
    size_t i;

    printf("%s: %s against %s (ratios are %s over %s)\n", jstr_or(ans, "name", "?"), vb, va, vb,
           va);
    table_init(&t, 0x3fcu, head_compare);
    json_array_foreach(json_object_get(a, "windows"), i, wa)
    {
        char r[6][FMT_LEN];
        wb = json_array_get(json_object_get(b, "windows"), i);
        add_row(&t, window_label(wa, wl), va, wa);
        add_row(&t, " ", vb, wb);
        snprintf(lab, sizeof(lab), "ratio");
        const char *row[] = {" ",
                             lab,
                             "-",
                             ratio(wa, wb, "requests_per_s", r[0]),
                             "-",
                             ratio(wa, wb, "error_rate", r[1]),
                             ratio(wa, wb, "p50_ns", r[2]),
                             ratio(wa, wb, "p95_ns", r[3]),
                             ratio(wa, wb, "p99_ns", r[4]),
                             ratio(wa, wb, "units_per_request", r[5])};
        table_add(&t, row);
    }
    table_print(&t, stdout, 2);
    table_free(&t);
}

/* ---- the commands --------------------------------------------------------- */

static const struct opt_spec stats_opts[] = {
    {"window", 0, OPT_VALUE, "SECONDS",
     "also the last SECONDS, 1..600 (cut on the 10 s grid: may cover up to 10 s more)"},
    {0},
};

static int run_stats(struct cli *c, struct args *a)
{
    const char *name, *ref, *win = args_value(a, "window");
    char buf[1024], secs[24];
    uint64_t s = 0;
    json_t *res;
    int rc = cli_split_ref(a->pos[0], buf, sizeof(buf), &name, &ref);

    if (!rc && win)
        rc = cli_parse_range("window", win, 1, 600, &s);
    if (!rc) {
        const char *args[3] = {name, ref ? ref : "latest", secs};
        snprintf(secs, sizeof(secs), "%llu", (unsigned long long)s);
        rc = cli_ctl_call(c, "stats", win ? 3 : 2, args, CLI_CTL_TIMEOUT_MS, &res);
    }
    if (rc)
        return cli_error(rc);
    if (c->json)
        jv_print(jv_stats_version(res));
    else
        print_stats(c, res);
    json_decref(res);
    return EXIT_OK;
}

static int run_compare(struct cli *c, struct args *a)
{
    const char *args[3] = {a->pos[0], a->pos[1], a->pos[2]};
    json_t *res, *vs;
    int rc = cli_ctl_call(c, "compare", 3, args, CLI_CTL_TIMEOUT_MS, &res);

    if (rc)
        return cli_error(rc);
    if (c->json) {
        vs = json_array();
        json_array_append_new(vs,
                              jv_stats_version(json_array_get(json_object_get(res, "versions"), 0)));
        json_array_append_new(vs,
                              jv_stats_version(json_array_get(json_object_get(res, "versions"), 1)));
        jv_print(json_pack("{s:O, s:o}", "name", jget(res, "name"), "versions", vs));
    } else {
        print_compare(res);
    }
    json_decref(res);
    return EXIT_OK;
}

const struct cli_cmd cmd_stats = {
    .name = "stats",
    .synopsis = "NAME[@REF] [--window SECONDS]",
    .summary = "serving statistics workers reported for a version (needs mcached)",
    .help = "Shows what workers reported with mc_report() for the resident version REF\n"
            "resolves to (default: latest): requests, requests per second, errors and the\n"
            "error rate, latency percentiles p50/p95/p99 (within 3%) and work units per\n"
            "request, over the last minute, the last ten minutes and since the version\n"
            "was loaded. Counts of workers that exited or were killed stay in. Windows\n"
            "are cut every 10 s, so a window may cover up to 10 s more than its name\n"
            "(`covered_s` in --json). mcached tracks 63 resident versions at a time; one\n"
            "loaded while all 63 are tracked is \"untracked\" (exit status 1). A version\n"
            "that is not resident has no statistics (exit status 3). See docs/stats.md.\n"
            "\n"
            "Examples:\n"
            "  mcache stats resnet@production\n"
            "  mcache stats resnet@2.0.0 --window 30 --json",
    .opts = stats_opts,
    .min_pos = 1,
    .max_pos = 1,
    .run = run_stats,
};

const struct cli_cmd cmd_compare = {
    .name = "compare",
    .synopsis = "NAME V1 V2",
    .summary = "two versions' serving statistics side by side (needs mcached)",
    .help = "Puts the serving statistics of two resident versions of NAME side by side,\n"
            "window by window (last 1 min, last 10 min, since loaded), with V2's figures\n"
            "over V1's as ratios. V1 and V2 are any references: versions, aliases,\n"
            "latest, ranges. Errors as for `mcache stats`.\n"
            "\n"
            "Examples:\n"
            "  mcache compare resnet 1.0.0 2.0.0\n"
            "  mcache compare resnet production canary --json",
    .min_pos = 3,
    .max_pos = 3,
    .run = run_compare,
};
