/*
 * cmd_health.c - `mcache health set|show|rm`: a model's health check, the
 * command mcached runs before any alias of the model moves to a version
 * (loader/health.h). Kept in the registry; works without mcached.
 */
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/jsonout.h"

#define HEALTH_TIMEOUT_MAX_S 3600

static json_t *health_json(const char *name, const struct mc_reg_health *h)
{
    json_t *argv = json_array();

    for (size_t i = 0; h && i < h->argc; i++)
        json_array_append_new(argv, json_string(h->argv[i]));
    return json_pack("{s:s, s:o, s:o}", "name", name, "command", h ? argv : json_null(),
                     "timeout_ms", h ? json_integer(h->timeout_ms) : json_null());
}

/* " word", quoted for a POSIX shell when it needs it, so the line can be pasted back. */
static void print_word(const char *w)
{
    bool plain = *w != '\0';

    for (const char *p = w; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_@%+=:,./-",
                       *p) != NULL;
    if (plain) {
        printf(" %s", w);
        return;
    }
    printf(" '");
    for (const char *p = w; *p; p++)
        if (*p == '\'')
            printf("'\\''");
        else
            putchar(*p);
    putchar('\'');
}

static void print_health(const char *name, const struct mc_reg_health *h)
{
    if (!h) {
        printf("%s: no health check\n", name);
        return;
    }
    printf("%s: health check (timeout %.1f s):", name, (double)h->timeout_ms / 1000);
    for (size_t i = 0; i < h->argc; i++)
        print_word(h->argv[i]);
    printf("\n");
}

static const struct opt_spec health_opts[] = {
    {"timeout", 0, OPT_VALUE, "SECONDS", "kill the check after SECONDS, 1..3600 (default 30)"},
    {0},
};

static int run_health(struct cli *c, struct args *a)
{
    const char *sub = a->pos[0], *name = a->npos > 1 ? a->pos[1] : NULL, *tmo;
    const struct mc_reg_model *m;
    struct mc_registry *r;
    uint64_t secs = 30, gen = 0;
    bool write;
    int rc;

    if (strcmp(sub, "set") && strcmp(sub, "show") && strcmp(sub, "rm"))
        return cli_usage(c, "unknown health action \"%s\" (set, show or rm)", sub);
    if (!name || a->dashdash < 2)
        return cli_usage(c, "health %s needs NAME", sub);
    if (!strcmp(sub, "set") && (a->dashdash != 2 || a->npos < 3))
        return cli_usage(c, "health set needs NAME -- COMMAND [ARGS...] (the command after "
                            "\"--\")");
    if (strcmp(sub, "set") && a->npos != 2)
        return cli_usage(c, "health %s takes only NAME", sub);
    tmo = args_value(a, "timeout");
    if (tmo && (rc = cli_parse_range("timeout", tmo, 1, HEALTH_TIMEOUT_MAX_S, &secs)))
        return cli_error(rc);
    write = strcmp(sub, "show") != 0;
    if ((rc = cli_open_store(c, write, false, &r)))
        return cli_error(rc);
    if (!cli_model(r, name, &rc)) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    if (!strcmp(sub, "set"))
        rc = mc_registry_health_set(r, name, a->pos + 2, a->npos - 2, (uint32_t)secs * 1000, &gen);
    else if (!strcmp(sub, "rm"))
        rc = mc_registry_health_set(r, name, NULL, 0, 0, &gen);
    if (rc) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    m = mc_registry_model(r, name);
    if (c->json)
        jv_print(health_json(name, m ? m->health : NULL));
    else if (!c->quiet || !strcmp(sub, "show"))
        print_health(name, m ? m->health : NULL);
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_health = {
    .name = "health",
    .synopsis = "set NAME [--timeout S] -- COMMAND [ARGS...] | show NAME | rm NAME",
    .summary = "a model's health check, run by mcached before an alias moves",
    .help = "Sets, shows or removes NAME's health check: a command mcached runs before any\n"
            "alias of NAME moves to a version (`mcache alias`, each step of `mcache deploy`).\n"
            "It runs as mcached's child with MCACHE_MODEL, MCACHE_VERSION, MCACHE_CACHE,\n"
            "MCACHE_SHM_DIR, MCACHE_STORE and MCACHE_SOCKET in its environment, so it can\n"
            "attach to the cache and run a smoke inference on exactly that version. Exit\n"
            "status 0 passes; anything else, or running past --timeout (its process group\n"
            "is killed), refuses the move, and the answer shows the exit status and the end\n"
            "of its output. Kept in the registry; works without mcached.\n"
            "\n"
            "Examples:\n"
            "  mcache health set resnet --timeout 60 -- python3 /srv/smoke.py\n"
            "  mcache health show resnet\n"
            "  mcache health rm resnet",
    .opts = health_opts,
    .min_pos = 2,
    .max_pos = ARGS_MAX_POS,
    .run = run_health,
};
