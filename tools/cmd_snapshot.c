/*
 * cmd_snapshot.c - `mcache snapshot create|restore|ls|rm`: named snapshots
 * of every alias of every model (targets and weights), restored all or
 * none in one registry record.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/jsonout.h"
#include "tools/output.h"

static int create(const struct cli *c, struct mc_registry *r, const char *sname)
{
    const struct mc_reg_snapshot *s;
    uint64_t gen = 0;
    int rc = mc_registry_snapshot_create(r, sname, &gen);

    if (rc)
        return cli_error(rc);
    s = cli_snapshot_find(r, sname);
    if (c->json) {
        json_t *o = jv_snapshot(s, true);

        json_object_set_new(o, "action", json_string("create"));
        json_object_set_new(o, "generation", json_integer((json_int_t)gen));
        jv_print(o);
    } else if (!c->quiet) {
        printf("snapshot %s: recorded %zu alias%s\n", sname, s->nentries,
               s->nentries == 1 ? "" : "es");
    }
    return EXIT_OK;
}

static int restore(const struct cli *c, struct mc_registry *r, const char *sname, bool no_gate)
{
    json_t *res, *moves;
    int rc = cli_snapshot_restore(r, sname, no_gate, &res);

    if (rc)
        return cli_error(rc);
    moves = json_object_get(res, "moves");
    if (c->json) {
        jv_print(res);
    } else {
        size_t i;
        json_t *mv;

        json_array_foreach(moves, i, mv)
        {
            if (c->quiet)
                break;
            if (json_is_null(jget(mv, "from")))
                printf("%s: %s -> %s (restored; it was removed)\n", jstr(mv, "name"),
                       jstr(mv, "alias"), jstr(mv, "to"));
            else
                printf("%s: %s -> %s (was %s)\n", jstr(mv, "name"), jstr(mv, "alias"),
                       jstr(mv, "to"), jstr(mv, "from"));
        }
        if (!c->quiet) {
            if (json_array_size(moves))
                printf("snapshot %s: restored %zu alias%s\n", sname, json_array_size(moves),
                       json_array_size(moves) == 1 ? "" : "es");
            else
                printf("snapshot %s: every alias is already where it records\n", sname);
        }
        json_decref(res);
    }
    return EXIT_OK;
}

static int list(const struct cli *c, struct mc_registry *r, const char *sname)
{
    size_t n = mc_registry_snapshot_count(r);

    if (sname) {
        const struct mc_reg_snapshot *s = cli_snapshot_find(r, sname);
        char when[64], who[64];

        if (s == NULL)
            return cli_error(
                mc_err(MC_ENOENT, "there is no snapshot \"%s\" (see `mcache snapshot ls`)", sname));
        if (c->json) {
            jv_print(jv_snapshot(s, true));
            return EXIT_OK;
        }
        printf("snapshot %s, taken %s by %s: %zu alias%s\n", s->name, fmt_time(s->created_ns, when),
               cli_user_name(s->uid, who, sizeof(who)), s->nentries, s->nentries == 1 ? "" : "es");
        if (s->nentries) {
            static const char *const head[] = {"MODEL", "ALIAS", "TARGETS", NULL};
            struct table t;

            table_init(&t, 0, head);
            for (size_t i = 0; i < s->nentries; i++)
                table_add(&t, (const char *const[]){s->entries[i].model, s->entries[i].alias,
                                                    s->entries[i].targets, NULL});
            table_print(&t, stdout, 2);
            table_free(&t);
        }
        return EXIT_OK;
    }
    if (c->json) {
        json_t *a = json_array();

        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, jv_snapshot(mc_registry_snapshot_at(r, i), true));
        jv_print(a);
        return EXIT_OK;
    }
    if (n == 0) {
        if (!c->quiet)
            fprintf(stderr, "mcache: no snapshots (take one with `mcache snapshot create NAME`)\n");
        return EXIT_OK;
    }
    {
        static const char *const head[] = {"NAME", "ALIASES", "TAKEN", "BY", NULL};
        struct table t;

        table_init(&t, 1u << 1, head);
        for (size_t i = 0; i < n; i++) {
            const struct mc_reg_snapshot *s = mc_registry_snapshot_at(r, i);
            char count[32], when[64], who[64];

            snprintf(count, sizeof(count), "%zu", s->nentries);
            table_add(&t, (const char *const[]){s->name, count, fmt_time(s->created_ns, when),
                                                cli_user_name(s->uid, who, sizeof(who)), NULL});
        }
        table_print(&t, stdout, 0);
        table_free(&t);
    }
    return EXIT_OK;
}

static int removal(const struct cli *c, struct mc_registry *r, const char *sname)
{
    uint64_t gen = 0;
    int rc = mc_registry_snapshot_remove(r, sname, &gen);

    if (rc)
        return cli_error(rc);
    if (c->json)
        jv_print(json_pack("{s:s, s:s, s:I}", "name", sname, "action", "remove", "generation",
                           (json_int_t)gen));
    else if (!c->quiet)
        printf("snapshot %s: removed\n", sname);
    return EXIT_OK;
}

static int run_snapshot(struct cli *c, struct args *a)
{
    const char *sub = a->pos[0], *sname = a->npos > 1 ? a->pos[1] : NULL;
    bool ls = !strcmp(sub, "ls");
    struct mc_registry *r;
    int rc;

    if (!ls && strcmp(sub, "create") && strcmp(sub, "restore") && strcmp(sub, "rm"))
        return cli_usage(c, "snapshot needs create, restore, ls or rm (not \"%s\")", sub);
    if (args_flag(a, "no-gate") && strcmp(sub, "restore"))
        return cli_usage(c, "--no-gate is for snapshot restore");
    if (!ls && sname == NULL)
        return cli_usage(c, "snapshot %s needs a NAME", sub);
    rc = cli_open_store(c, !ls, false, &r);
    if (rc)
        return cli_error(rc);
    if (!strcmp(sub, "create"))
        rc = create(c, r, sname);
    else if (!strcmp(sub, "restore"))
        rc = restore(c, r, sname, args_flag(a, "no-gate"));
    else if (!strcmp(sub, "rm"))
        rc = removal(c, r, sname);
    else
        rc = list(c, r, sname);
    mc_registry_close(r);
    return rc;
}

static const struct opt_spec snapshot_opts[] = {
    {"no-gate", 0, OPT_FLAG, NULL, "restore: move aliases of models with a health check too"},
    {0},
};

const struct cli_cmd cmd_snapshot = {
    .name = "snapshot",
    .synopsis = "create|restore|rm NAME [--no-gate] | snapshot ls [NAME]",
    .summary = "record every alias's targets; put them all back at once",
    .help = "`snapshot create NAME` records where every alias of every model points now,\n"
            "weights included (removed aliases are not recorded). `snapshot restore NAME`\n"
            "moves every recorded alias back in one registry record, all or none: it is\n"
            "refused, changing nothing, if a recorded version has been removed or is not\n"
            "ready. Each alias that moves gets a history entry \"snapshot restore NAME\";\n"
            "aliases created after the snapshot are left alone. A restore runs no health\n"
            "check (`mcache health`): one that would move an alias of a model with a check\n"
            "is refused unless --no-gate (move that alias with `mcache alias`, which is\n"
            "gated). `snapshot ls` lists the\n"
            "snapshots, `snapshot ls NAME` what one records; `snapshot rm NAME` removes one.\n"
            "\n"
            "Examples:\n"
            "  mcache snapshot create before-release\n"
            "  mcache snapshot ls before-release\n"
            "  mcache snapshot restore before-release\n"
            "  mcache snapshot rm before-release",
    .opts = snapshot_opts,
    .min_pos = 1,
    .max_pos = 2,
    .run = run_snapshot,
};
