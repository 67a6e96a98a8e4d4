/*
 * cmd_alias.c - `mcache alias` (set, move, remove), `mcache rollback` and
 * `mcache history`: aliases are names for versions that move atomically,
 * with every move kept.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/jsonout.h"
#include "tools/views.h"

/* The alias's current target version (NULL if none), looked up in r's current state. */
static const char *target_of(struct mc_registry *r, const char *name, const char *alias)
{
    const struct mc_reg_model *m = mc_registry_model(r, name);

    for (size_t i = 0; m && i < m->naliases; i++)
        if (!strcmp(m->aliases[i].alias, alias))
            return m->aliases[i].target ? m->aliases[i].target->version : NULL;
    return NULL;
}

/* Report an alias change from `from` (copied before the change) to where it points now. */
static int report(const struct cli *c, struct mc_registry *r, const char *name, const char *alias,
                  const char *from, const char *action, uint64_t gen)
{
    const char *to = target_of(r, name, alias);

    if (from && to && !strcmp(from, to) && strcmp(action, "rollback"))
        action = "none";
    if (c->json) {
        jv_print(json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "name", name, "alias", alias, "action",
                           action, "from", jv_str(from), "to", jv_str(to), "generation",
                           (json_int_t)gen));
    } else if (!c->quiet) {
        if (!strcmp(action, "none"))
            printf("%s: %s already points at %s\n", name, alias, to);
        else if (!to)
            printf("%s: removed alias %s (it pointed at %s)\n", name, alias, from ? from : "-");
        else if (!from)
            printf("%s: %s -> %s (new alias)\n", name, alias, to);
        else
            printf("%s: %s -> %s (was %s)%s\n", name, alias, to, from,
                   !strcmp(action, "rollback") ? ", rolled back" : "");
    }
    return EXIT_OK;
}

/* Run one alias change: set (ref != NULL), remove or rollback. */
static int change(const struct cli *c, const char *name, const char *alias, const char *ref,
                  const char *action)
{
    struct mc_registry *r;
    char from[512] = "";
    const char *f;
    uint64_t gen = 0;
    int rc = cli_open_store(c, true, false, &r);

    if (rc)
        return cli_error(rc);
    if (!cli_model(r, name, &rc)) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    if ((f = target_of(r, name, alias)))
        snprintf(from, sizeof(from), "%s", f);
    if (!strcmp(action, "rollback"))
        rc = mc_registry_alias_rollback(r, name, alias, &gen);
    else if (ref)
        rc = mc_registry_alias_set(r, name, alias, ref, &gen);
    else
        rc = mc_registry_alias_remove(r, name, alias, &gen);
    if (rc) {
        rc = cli_error(rc);
    } else {
        rc = report(c, r, name, alias, *from ? from : NULL,
                    !strcmp(action, "rollback") ? "rollback"
                    : !ref                      ? "remove"
                    : *from                     ? "move"
                                                : "create",
                    gen);
    }
    mc_registry_close(r);
    return rc;
}

static int run_alias(struct cli *c, struct args *a)
{
    const char *first = a->pos[0];

    if (!strcmp(first, "rm")) {
        if (a->npos != 3)
            return cli_usage(c, "alias rm needs NAME ALIAS");
        return change(c, a->pos[1], a->pos[2], NULL, "remove");
    }
    if (!strcmp(first, "set")) {
        if (a->npos != 4)
            return cli_usage(c, "alias set needs NAME ALIAS REF");
        return change(c, a->pos[1], a->pos[2], a->pos[3], "set");
    }
    if (a->npos != 3)
        return cli_usage(c, "alias needs NAME ALIAS REF (or: alias rm NAME ALIAS)");
    return change(c, a->pos[0], a->pos[1], a->pos[2], "set");
}

const struct cli_cmd cmd_alias = {
    .name = "alias",
    .synopsis = "NAME ALIAS REF | alias rm NAME ALIAS",
    .summary = "point an alias at a version (or remove it)",
    .help = "Creates ALIAS or moves it to the version REF resolves to now (an exact version,\n"
            "latest, a range, or another alias); the version must be ready. The move is one\n"
            "atomic record: workers see the old target or the new one, and a running mcached\n"
            "loads the new version before the alias moves in the arena. `alias rm` removes\n"
            "it (kept in the history; `mcache rollback` brings it back). `alias set NAME\n"
            "ALIAS REF` is the same as the first form, for a model named \"rm\" or \"set\".\n"
            "\n"
            "Examples:\n"
            "  mcache alias resnet production 1.2.0\n"
            "  mcache alias resnet canary '^2'\n"
            "  mcache alias rm resnet canary",
    .min_pos = 3,
    .max_pos = 4,
    .run = run_alias,
};

static int run_rollback(struct cli *c, struct args *a)
{
    return change(c, a->pos[0], a->pos[1], NULL, "rollback");
}

const struct cli_cmd cmd_rollback = {
    .name = "rollback",
    .synopsis = "NAME ALIAS",
    .summary = "return an alias to its previous target",
    .help = "Undoes the alias's most recent move that has not been undone: after A -> B -> C,\n"
            "a rollback returns it to B, another to A. A removed alias comes back. Refused\n"
            "if there is no earlier target or that version is gone or not ready.\n"
            "\n"
            "Examples:\n"
            "  mcache rollback resnet production\n"
            "  mcache history resnet production   # to see where it will go",
    .min_pos = 2,
    .max_pos = 2,
    .run = run_rollback,
};

static int run_history(struct cli *c, struct args *a)
{
    const char *name = a->pos[0], *alias = a->npos > 1 ? a->pos[1] : NULL;
    const struct mc_reg_model *m;
    struct mc_registry *r;
    json_t *moves;
    int rc = cli_open_store(c, false, false, &r);

    if (rc)
        return cli_error(rc);
    m = cli_model(r, name, &rc);
    if (!m) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    if (alias) {
        size_t i;
        for (i = 0; i < m->naliases && strcmp(m->aliases[i].alias, alias); i++)
            ;
        if (i == m->naliases) {
            rc = cli_error(mc_err(MC_ENOENT,
                                  "model \"%s\" has no alias \"%s\" and never had one (see "
                                  "`mcache show %s`)",
                                  name, alias, name));
            mc_registry_close(r);
            return rc;
        }
    }
    moves = jv_moves(m, alias, NULL);
    if (c->json)
        jv_print(
            json_pack("{s:s, s:o, s:o}", "name", name, "alias", jv_str(alias), "moves", moves));
    else if (json_array_size(moves)) {
        view_history(moves, 0);
        json_decref(moves);
    } else {
        if (!c->quiet)
            fprintf(stderr, "mcache: model \"%s\" has never had an alias\n", name);
        json_decref(moves);
    }
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_history = {
    .name = "history",
    .synopsis = "NAME [ALIAS]",
    .summary = "every move of a model's aliases: who, when, from, to",
    .help = "Lists the moves of every alias of NAME (or only ALIAS), oldest first: when,\n"
            "which alias, what happened (create, move, remove, rollback), from and to which\n"
            "version, by whom, and the registry generation of the change.\n"
            "\n"
            "Examples:\n"
            "  mcache history resnet\n"
            "  mcache history resnet production --json",
    .min_pos = 1,
    .max_pos = 2,
    .run = run_history,
};
