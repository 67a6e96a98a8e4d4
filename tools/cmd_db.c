/*
 * cmd_db.c - `mcache db migrate|status`: the schema of a registry kept in
 * PostgreSQL (the postgres backend, registry/backend_pg.c). Migrations are
 * applied only when asked (every host checks the version at open and
 * refuses a schema too old or too new), so an operator upgrades the
 * database once, on purpose, and not as a side effect of the first host to
 * start.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/jsonout.h"

static int run_db(struct cli *c, struct args *a)
{
    const char *sub = a->pos[0];
    int have = 0, want = 0, rc;

    if (strcmp(sub, "migrate") && strcmp(sub, "status"))
        return cli_usage(c, "db needs migrate or status (not \"%s\")", sub);
    if (c->registry == NULL)
        return cli_usage(c,
                         "db %s needs the registry database: pass --registry "
                         "postgres://USER@HOST:PORT/DB or set MCACHE_REGISTRY",
                         sub);
    if (!strcmp(sub, "migrate"))
        rc = mc_registry_db_migrate(c->registry, &have, &want);
    else
        rc = mc_registry_db_status(c->registry, &have, &want);
    if (rc)
        return cli_error(rc);
    /* the URL may carry a password: it is in neither output */
    if (c->json) {
        if (!strcmp(sub, "migrate"))
            jv_print(json_pack("{s:s, s:i, s:i}", "action", "migrate", "from", have, "to", want));
        else
            jv_print(json_pack("{s:i, s:i, s:b}", "schema_version", have, "wanted", want, "current",
                               have == want));
    } else if (!strcmp(sub, "migrate")) {
        if (!c->quiet)
            printf(have == want ? "schema version %d: up to date, nothing to do\n"
                                : "schema version %d -> %d: migrated\n",
                   have, want);
    } else {
        printf("schema version %d; this mcache needs %d: %s\n", have, want,
               have == want  ? "up to date"
               : have < want ? "run `mcache db migrate`"
                             : "the database is newer: upgrade mcache");
    }
    /* status: a schema that needs work is a failure, so scripts can test for it */
    return !strcmp(sub, "status") && have != want ? EXIT_FAIL : EXIT_OK;
}

const struct cli_cmd cmd_db = {
    .name = "db",
    .synopsis = "migrate | db status",
    .summary = "the registry database's schema: migrate, status",
    .help = "For a registry kept in PostgreSQL (--registry postgres://...,\n"
            "MCACHE_REGISTRY). migrate applies the schema migrations the database lacks, in\n"
            "one transaction (running it again does nothing; two hosts migrating at once\n"
            "queue). status prints the database's schema version and the one this mcache\n"
            "needs, and fails (exit 1) when they differ. Every mcache and mcached checks the\n"
            "version when it opens the registry and refuses one too old (run migrate) or\n"
            "too new (upgrade mcache). The journal (a store directory) has no schema.\n"
            "\n"
            "Examples:\n"
            "  mcache --registry postgres://mcache@db1/mcache db migrate\n"
            "  MCACHE_REGISTRY=postgres://mcache@db1/mcache mcache db status --json",
    .opts = NULL,
    .min_pos = 1,
    .max_pos = 1,
    .run = run_db,
};
