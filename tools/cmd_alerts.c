/*
 * cmd_alerts.c - `mcache alerts`: the events mcached raised (automatic
 * rollbacks, failed health gates, threshold breaches), newest last, as
 * kept in the registry (the newest 256; loader/alerts.h).
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/jsonout.h"
#include "tools/output.h"

static const struct opt_spec alerts_opts[] = {
    {"limit", 'n', OPT_VALUE, "N", "only the newest N"},
    {"kind", 0, OPT_VALUE, "KIND", "only rollback, health or threshold"},
    {0},
};

/*
 * A message in the table: its first line, then (a health check's output) at most the last
 * TAIL_LINES lines of the rest, indented under it; --json has all of it.
 */
#define TAIL_LINES 4
static void print_message(const char *msg)
{
    const char *nl = strchr(msg, '\n'), *p;
    size_t lines = 0, skip;

    if (!nl) {
        printf("%s\n", msg);
        return;
    }
    printf("%.*s\n", (int)(nl - msg), msg);
    for (p = nl + 1; *p; p++) /* lines after the first (a last one without '\n' counts) */
        if (*p == '\n' || !p[1])
            lines++;
    skip = lines > TAIL_LINES ? lines - TAIL_LINES : 0;
    if (skip)
        printf("    ... (%zu more line%s; --json has them)\n", skip, skip == 1 ? "" : "s");
    for (p = nl + 1; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (skip)
            skip--;
        else
            printf("    %.*s\n", (int)len, p);
        p += len + (e ? 1 : 0);
    }
}

static int run_alerts(struct cli *c, struct args *a)
{
    const char *name = a->npos ? a->pos[0] : NULL, *kind = args_value(a, "kind");
    struct mc_registry *r;
    uint64_t limit = 0;
    json_t *arr;
    size_t n, first = 0, shown = 0;
    int rc;

    if (kind && strcmp(kind, "rollback") && strcmp(kind, "health") && strcmp(kind, "threshold"))
        return cli_usage(c, "--kind must be rollback, health or threshold, not \"%s\"", kind);
    if (args_value(a, "limit") &&
        (rc = cli_parse_range("limit", args_value(a, "limit"), 1, MC_REG_ALERTS_MAX, &limit)))
        return cli_error(rc);
    if ((rc = cli_open_store(c, false, false, &r)))
        return cli_error(rc);
    if (name && !cli_model(r, name, &rc)) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    arr = json_array(); /* after every early return */
    n = mc_registry_alert_count(r);
    /* --limit counts the alerts that match, from the newest. */
    if (limit) {
        size_t m = 0;
        for (first = n; first > 0 && m < limit; first--) {
            const struct mc_reg_alert *x = mc_registry_alert_at(r, first - 1);
            m += (!name || !strcmp(x->model, name)) && (!kind || !strcmp(x->kind, kind));
        }
    }
    for (size_t i = first; i < n; i++) {
        const struct mc_reg_alert *x = mc_registry_alert_at(r, i);
        char when[64];
        if ((name && strcmp(x->model, name)) || (kind && strcmp(x->kind, kind)))
            continue;
        shown++;
        if (c->json) {
            json_array_append_new(arr, jv_alert(x));
            continue;
        }
        printf("%s  %-9s %s%s%s%s%s: ", fmt_time(x->at_ns, when), x->kind, x->model,
               x->version ? "@" : "", x->version ? x->version : "", x->alias ? " " : "",
               x->alias ? x->alias : "");
        print_message(x->message);
    }
    if (c->json)
        jv_print(json_pack("{s:o}", "alerts", arr));
    else {
        json_decref(arr);
        if (!shown && !c->quiet)
            printf("no alerts\n");
    }
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_alerts = {
    .name = "alerts",
    .synopsis = "[NAME] [--kind KIND] [--limit N]",
    .summary = "automatic rollbacks, failed health gates, threshold breaches",
    .help = "Lists the alerts mcached raised, oldest first (the registry keeps the newest\n"
            "256): when, kind (rollback, health, threshold), model, version and alias, and\n"
            "the message. mcached also logs each one, counts them (`mcache stat`) and passes\n"
            "each as JSON to the command of its alert-cmd setting, if any (mcached(8)).\n"
            "\n"
            "Examples:\n"
            "  mcache alerts\n"
            "  mcache alerts resnet --kind rollback --limit 5 --json",
    .opts = alerts_opts,
    .min_pos = 0,
    .max_pos = 1,
    .run = run_alerts,
};
