/*
 * cmd_alias.c - `mcache alias` (set, move, remove), `mcache rollback` and
 * `mcache history`: aliases are names for versions that move atomically,
 * with every move kept.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"
#include "tools/views.h"

/* Report an alias change from `from` to `to` (canonical texts; NULL: none). */
static int report(const struct cli *c, const char *name, const char *alias, const char *from,
                  const char *to, const char *action, uint64_t gen, json_t *checks)
{
    if (from && to && !strcmp(from, to) && strcmp(action, "rollback"))
        action = "none";
    if (c->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "name", name, "alias", alias,
                              "action", action, "from", jv_str(from), "to", jv_str(to),
                              "generation", (json_int_t)gen);
        if (checks) /* the health checks mcached ran (a move through mcached) */
            json_object_set(j, "checks", checks);
        jv_print(j);
        return EXIT_OK;
    }
    if (c->quiet)
        return EXIT_OK;
    for (size_t i = 0; checks && i < json_array_size(checks); i++) {
        json_t *k = json_array_get(checks, i);
        printf("%s: health check of %s passed (%s, %lld ms)\n", name, jstr_or(k, "version", "?"),
               jstr_or(k, "outcome", "?"), jint(k, "ms"));
    }
    if (!strcmp(action, "none"))
        printf("%s: %s already points at %s\n", name, alias, to);
    else if (!to)
        printf("%s: removed alias %s (it pointed at %s)\n", name, alias, from ? from : "-");
    else if (!from)
        printf("%s: %s -> %s (new alias)\n", name, alias, to);
    else
        printf("%s: %s -> %s (was %s)%s\n", name, alias, to, from,
               !strcmp(action, "rollback") ? ", rolled back" : "");
    return EXIT_OK;
}

/* A move outside a rollout aborts it (mcached does, loader/deploy.c): say so on stderr. */
static void rollout_note(const struct cli *c, struct mc_registry *r, const char *name,
                         const char *alias)
{
    for (size_t i = 0; !c->quiet && i < mc_registry_deploy_count(r); i++) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(r, i);
        if (!strcmp(x->name, name) && !strcmp(x->alias, alias) &&
            (x->state == MC_DEPLOY_RUNNING || x->state == MC_DEPLOY_PAUSED))
            fprintf(stderr,
                    "mcache: note: rollout %llu of %s@%s on %s was %s; this move aborts it "
                    "(mcached records why: `mcache deployments %s`)\n",
                    (unsigned long long)x->id, name, x->version, alias,
                    mc_deploy_state_name(x->state), name);
    }
}

/* Remove or roll back an alias: registry only (mcached follows). */
static int change(const struct cli *c, const char *name, const char *alias, const char *action)
{
    struct mc_registry *r;
    char from[512], to[512];
    const char *f;
    uint64_t gen = 0;
    int rc = cli_open_store(c, true, false, &r);

    if (rc)
        return cli_error(rc);
    if (!cli_model(r, name, &rc)) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    f = cli_alias_targets(r, name, alias, from, sizeof(from));
    if (!strcmp(action, "rollback"))
        rc = mc_registry_alias_rollback(r, name, alias, &gen);
    else
        rc = mc_registry_alias_remove(r, name, alias, &gen);
    if (rc)
        rc = cli_error(rc);
    else {
        rc = report(c, name, alias, f, cli_alias_targets(r, name, alias, to, sizeof(to)), action, gen,
                    NULL);
        rollout_note(c, r, name, alias);
    }
    mc_registry_close(r);
    return rc;
}

/*
 * Set an alias to targets (words "1.0.0" or "1.0.0=90" "2.0.0=10"). Through mcached when it
 * serves the store: it loads and verifies every target and runs the model's health check
 * before the registry is written. Without it: the registry only, refused for a model with a
 * health check unless no_gate.
 */
static int set(const struct cli *c, const char *name, const char *alias, const char *const *words,
               size_t n, const char *why, bool no_gate)
{
    struct mc_reg_weight w[MC_ALIAS_TARGETS_MAX];
    const struct mc_reg_model *m;
    struct mc_registry *r;
    char text[1024] = "", from[512], to[512], nodaemon[512] = "";
    const char *f;
    size_t nw = 0;
    uint64_t gen = 0;
    json_t *res;
    int rc;

    if (n > MC_ALIAS_TARGETS_MAX)
        return cli_error(mc_err(MC_EINVAL, "alias: %zu targets given; an alias has at most %d", n,
                                MC_ALIAS_TARGETS_MAX));
    if ((rc = mc_reg_targets_parse(words, n, w, &nw)))
        return cli_error(rc);
    for (size_t i = 0; i < n; i++)
        snprintf(text + strlen(text), sizeof(text) - strlen(text), "%s%s", i ? " " : "", words[i]);
    if (!no_gate && (rc = cli_ctl_serves_store(c)) == 0) {
        const char *args[4] = {name, alias, text, why ? why : ""};
        rc = cli_ctl_call(c, "alias", why ? 4 : 3, args, -1, &res);
        if (rc == 0) {
            rc = report(c, name, alias, jstr(res, "from"), jstr(res, "to"),
                        jstr(res, "from") ? "move" : "create", (uint64_t)jint(res, "generation"),
                        jget(res, "checks"));
            json_decref(res);
            return rc;
        }
    }
    if (!no_gate && rc != MC_ENODAEMON)
        return cli_error(rc);
    if (!no_gate) /* why mcached did not make the move; mc_err() below reuses its buffer */
        snprintf(nodaemon, sizeof(nodaemon), "%s", mc_last_error());
    if ((rc = cli_open_store(c, true, false, &r)))
        return cli_error(rc);
    if (!(m = cli_model(r, name, &rc))) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    if (m->health && !no_gate) {
        mc_registry_close(r);
        return cli_error(mc_err(MC_ENODAEMON,
                                "%s has a health check, which mcached runs before an alias "
                                "moves, and no mcached serves this store (%s); start one, or "
                                "move the alias without the check with --no-gate",
                                name, nodaemon));
    }
    f = cli_alias_targets(r, name, alias, from, sizeof(from));
    rc = mc_registry_alias_set_weighted(r, name, alias, w, nw, why, &gen);
    if (rc)
        rc = cli_error(rc);
    else
        rc = report(c, name, alias, f, cli_alias_targets(r, name, alias, to, sizeof(to)),
                    f ? "move" : "create", gen, NULL);
    mc_registry_close(r);
    return rc;
}

static const struct opt_spec alias_opts[] = {
    {"why", 0, OPT_VALUE, "TEXT", "the reason, kept in the alias's history"},
    {"no-gate", 0, OPT_FLAG, NULL,
     "write the registry directly: no load, no verify, no health check first"},
    {0},
};

static int run_alias(struct cli *c, struct args *a)
{
    const char *first = a->pos[0], *why = args_value(a, "why");
    bool no_gate = args_flag(a, "no-gate");

    if (!strcmp(first, "rm")) {
        if (a->npos != 3)
            return cli_usage(c, "alias rm needs NAME ALIAS");
        return change(c, a->pos[1], a->pos[2], "remove");
    }
    if (!strcmp(first, "set")) {
        if (a->npos < 4)
            return cli_usage(c, "alias set needs NAME ALIAS TARGET...");
        return set(c, a->pos[1], a->pos[2], a->pos + 3, a->npos - 3, why, no_gate);
    }
    if (a->npos < 3)
        return cli_usage(c, "alias needs NAME ALIAS TARGET... (or: alias rm NAME ALIAS)");
    return set(c, a->pos[0], a->pos[1], a->pos + 2, a->npos - 2, why, no_gate);
}

const struct cli_cmd cmd_alias = {
    .name = "alias",
    .synopsis = "NAME ALIAS REF[=WEIGHT]... [--why TEXT] [--no-gate] | alias rm NAME ALIAS",
    .summary = "point an alias at a version, or split it over up to 4 (or remove it)",
    .help = "Creates ALIAS or moves it to the version REF resolves to now (an exact version,\n"
            "latest, a range, or another alias); the version must be ready. With several\n"
            "REF=WEIGHT words (up to 4, weights 1..100 adding up to 100) the alias is split:\n"
            "every get through it picks a version by weight (a canary). The move is one\n"
            "atomic record with one history entry (--why is kept in it): workers see the old\n"
            "targets or the new ones.\n"
            "\n"
            "When mcached serves the store the move goes through it: every target is loaded\n"
            "and verified, and each version whose weight grows passes the model's health\n"
            "check (`mcache health`) before the registry is written; a failing check\n"
            "refuses the move with its exit status and the end of its output. Without\n"
            "mcached the registry is written directly, which is refused for a model with a\n"
            "health check unless --no-gate. `alias rm` removes the alias (kept in the\n"
            "history; `mcache rollback` brings it back). `alias set NAME ALIAS REF` is the\n"
            "same as the first form, for a model named \"rm\" or \"set\".\n"
            "\n"
            "Examples:\n"
            "  mcache alias resnet production 1.2.0\n"
            "  mcache alias resnet production 1.2.0=90 2.0.0=10 --why \"canary by hand\"\n"
            "  mcache alias resnet canary '^2'\n"
            "  mcache alias rm resnet canary",
    .opts = alias_opts,
    .min_pos = 3,
    .max_pos = 7,
    .run = run_alias,
};

static int run_rollback(struct cli *c, struct args *a)
{
    return change(c, a->pos[0], a->pos[1], "rollback");
}

const struct cli_cmd cmd_rollback = {
    .name = "rollback",
    .synopsis = "NAME ALIAS",
    .summary = "return an alias to its previous target",
    .help = "Undoes the alias's most recent move that has not been undone: after A -> B -> C,\n"
            "a rollback returns it to B, another to A. A removed alias comes back. Refused\n"
            "if there is no earlier target or that version is gone or not ready.\n"
            "A rollback is not gated: it writes the registry directly and runs no health\n"
            "check, even when mcached runs, because going back to a known-good target must\n"
            "not be blockable by the check that may itself be what fails. On an alias with a\n"
            "rollout in progress it aborts the rollout (`mcache deployments` says why).\n"
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
