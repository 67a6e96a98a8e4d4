/*
 * cmd_audit.c - `mcache audit`: who changed what in the store, from where,
 * and what was refused (the registry's audit log, the newest 10,000).
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/jsonout.h"
#include "tools/output.h"

static const struct opt_spec audit_opts[] = {
    {"limit", 'n', OPT_VALUE, "N", "only the newest N"},
    {"model", 'm', OPT_VALUE, "NAME", "only entries naming model NAME"},
    {0},
};

static int run_audit(struct cli *c, struct args *a)
{
    const char *model = args_value(a, "model");
    struct mc_registry *r;
    uint64_t limit = 0;
    json_t *arr;
    size_t n, first = 0;
    struct table t;
    static const char *const head[] = {"WHEN", "WHO", "FROM", "WHAT", "RESULT", NULL};
    int rc;

    if (args_value(a, "limit") &&
        (rc = cli_parse_range("limit", args_value(a, "limit"), 1, MC_REG_AUDIT_MAX, &limit)))
        return cli_error(rc);
    if ((rc = cli_open_store(c, false, false, &r)))
        return cli_error(rc);
    n = mc_registry_audit_count(r);
    /* --limit counts the entries that match, from the newest */
    if (limit) {
        size_t m = 0;

        for (first = n; first > 0 && m < limit; first--)
            m += !model || cli_audit_names(mc_registry_audit_at(r, first - 1)->what, model);
    }
    arr = json_array();
    table_init(&t, 0, head);
    for (size_t i = first; i < n; i++) {
        const struct mc_reg_audit *x = mc_registry_audit_at(r, i);
        char when[64];

        if (model && !cli_audit_names(x->what, model))
            continue;
        if (c->json)
            json_array_append_new(arr, jv_audit(x));
        else
            table_add(&t, (const char *const[]){fmt_time(x->at_ns, when), x->who, x->from,
                                                x->what, x->result, NULL});
    }
    if (c->json)
        jv_print(json_pack("{s:o}", "audit", arr));
    else {
        json_decref(arr);
        if (t.nrows)
            table_print(&t, stdout, 0);
        else if (!c->quiet)
            fprintf(stderr, "mcache: no audit entries%s%s\n", model ? " naming " : "",
                    model ? model : "");
    }
    table_free(&t);
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_audit = {
    .name = "audit",
    .synopsis = "[--model NAME] [--limit N]",
    .summary = "who changed what, from where, and what was refused",
    .help = "Lists the store's audit log, oldest first: one entry per change (push, alias,\n"
            "rm, gc, token ...) with when, who (uid:N(user) for the CLI and mcached,\n"
            "token:NAME or anonymous for mcache-serve), from where (local, or the client's\n"
            "address), what, and the result; and one per refused attempt, its result the\n"
            "error. The registry keeps the newest 10,000. --model keeps the entries that\n"
            "name the model; --limit the newest N of those.\n"
            "\n"
            "Examples:\n"
            "  mcache audit\n"
            "  mcache audit --model resnet --limit 20\n"
            "  mcache audit --json",
    .opts = audit_opts,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_audit,
};
