/*
 * cmd_token.c - `mcache token add|ls|rm`: the bearer tokens mcache-serve
 * accepts (docs/http.md). A token's secret is printed once, when it is
 * made, on stdout alone so that a script can capture it; the store keeps
 * only its SHA-256, and nothing lists it again.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/jsonout.h"
#include "tools/output.h"

static int add(const struct cli *c, struct mc_registry *r, const char *name, const char *role)
{
    char secret[MC_TOKEN_LEN + 1];
    int rc = mc_registry_token_add(r, name, role, secret, NULL);

    if (rc)
        return cli_error(rc);
    if (c->json) {
        jv_print(json_pack("{s:s, s:s, s:s}", "name", name, "role", role, "token", secret));
    } else {
        printf("%s\n", secret);
        if (!c->quiet)
            fprintf(stderr,
                    "mcache: token \"%s\" (%s) added; the secret above is shown only this once: "
                    "keep it, or remove the token with `mcache token rm %s`\n",
                    name, role, name);
    }
    memset(secret, 0, sizeof(secret));
    return EXIT_OK;
}

static int list(const struct cli *c, struct mc_registry *r)
{
    size_t n = mc_registry_token_count(r);

    if (c->json) {
        json_t *a = json_array();

        for (size_t i = 0; i < n; i++) {
            const struct mc_reg_token *t = mc_registry_token_at(r, i);

            json_array_append_new(a, jv_token(t));
        }
        jv_print(json_pack("{s:o}", "tokens", a));
        return EXIT_OK;
    }
    if (n == 0) {
        if (!c->quiet)
            fprintf(stderr, "mcache: no tokens (add one with `mcache token add --role ROLE NAME`)\n");
        return EXIT_OK;
    }
    {
        static const char *const head[] = {"NAME", "ROLE", "CREATED", "BY", NULL};
        struct table t;

        table_init(&t, 0, head);
        for (size_t i = 0; i < n; i++) {
            const struct mc_reg_token *k = mc_registry_token_at(r, i);
            char when[64];

            table_add(&t, (const char *const[]){k->name, k->role, fmt_time(k->created_ns, when),
                                                k->created_by, NULL});
        }
        table_print(&t, stdout, 0);
        table_free(&t);
    }
    return EXIT_OK;
}

static int removal(const struct cli *c, struct mc_registry *r, const char *name)
{
    uint64_t gen = 0;
    int rc = mc_registry_token_remove(r, name, &gen);

    if (rc)
        return cli_error(rc);
    if (c->json)
        jv_print(json_pack("{s:s, s:s, s:I}", "name", name, "action", "remove", "generation",
                           (json_int_t)gen));
    else if (!c->quiet)
        printf("token %s: removed\n", name);
    return EXIT_OK;
}

static int run_token(struct cli *c, struct args *a)
{
    const char *sub = a->pos[0], *name = a->npos > 1 ? a->pos[1] : NULL;
    const char *role = args_value(a, "role");
    bool ls = !strcmp(sub, "ls");
    struct mc_registry *r;
    int rc;

    if (!ls && strcmp(sub, "add") && strcmp(sub, "rm"))
        return cli_usage(c, "token needs add, ls or rm (not \"%s\")", sub);
    if (role && strcmp(sub, "add"))
        return cli_usage(c, "--role is for token add");
    if (ls && name)
        return cli_usage(c, "token ls takes no NAME");
    if (!ls && name == NULL)
        return cli_usage(c, "token %s needs a NAME", sub);
    if (!strcmp(sub, "add") && role == NULL)
        return cli_usage(c, "token add needs --role reader, publisher or admin");
    if (role && strcmp(role, "reader") && strcmp(role, "publisher") && strcmp(role, "admin"))
        return cli_usage(c, "--role must be reader, publisher or admin, not \"%s\"", role);
    rc = cli_open_store(c, !ls, false, &r);
    if (rc)
        return cli_error(rc);
    if (!strcmp(sub, "add"))
        rc = add(c, r, name, role);
    else if (!strcmp(sub, "rm"))
        rc = removal(c, r, name);
    else
        rc = list(c, r);
    mc_registry_close(r);
    return rc;
}

static const struct opt_spec token_opts[] = {
    {"role", 'r', OPT_VALUE, "ROLE", "add: reader, publisher or admin"},
    {0},
};

const struct cli_cmd cmd_token = {
    .name = "token",
    .synopsis = "add --role ROLE NAME | token ls | token rm NAME",
    .summary = "bearer tokens for mcache-serve: add, list, remove",
    .help = "Manages the bearer tokens mcache-serve accepts (Authorization: Bearer ...).\n"
            "add makes a token with a fresh random secret and prints the secret once, alone\n"
            "on stdout (the store keeps only its SHA-256: it cannot be shown again). A role\n"
            "is what the token may do: reader (GET), publisher (also push, alias, deploy),\n"
            "admin (also remove, gc, tokens). ls lists name, role, when and by whom; rm\n"
            "removes one, at once for every server on the store. Each change is in\n"
            "`mcache audit`.\n"
            "\n"
            "Examples:\n"
            "  mcache token add --role publisher ci\n"
            "  TOKEN=$(mcache token add --role reader dashboards)\n"
            "  mcache token ls\n"
            "  mcache token rm ci",
    .opts = token_opts,
    .min_pos = 1,
    .max_pos = 2,
    .run = run_token,
};
