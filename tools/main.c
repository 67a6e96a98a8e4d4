/*
 * main.c - mcache, the operator CLI: global options, finding the command,
 * help, and resolving which store, cache and socket to use.
 *
 *   mcache [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]
 *
 * Global options may also follow the command. Each command lives in a
 * cmd_*.c file as a struct cli_cmd (cli.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/clock.h"
#include "common/err.h"
#include "shm/arena.h"
#include "tools/cli.h"

static const struct opt_spec global_opts[] = {
    {"store", 0, OPT_VALUE, "DIR", "registry store (default $MCACHE_STORE, else ./mcache-data)"},
    {"registry", 0, OPT_VALUE, "URL",
     "shared registry database, postgres://USER@HOST:PORT/DB (default $MCACHE_REGISTRY, "
     "else the store's journal)"},
    {"cache", 0, OPT_VALUE, "NAME", "cache name (default $MCACHE_CACHE, else \"default\")"},
    {"shm-dir", 0, OPT_VALUE, "DIR", "where the arena lives (default $MCACHE_SHM_DIR, /dev/shm)"},
    {"socket", 0, OPT_VALUE, "PATH", "mcached's control socket (default: the arena's)"},
    {"artifacts", 0, OPT_VALUE, "URL",
     "where artifacts are: s3://BUCKET/PREFIX (default $MCACHE_ARTIFACTS, else the store's)"},
    {"artifacts-creds", 0, OPT_VALUE, "FILE",
     "the object store's endpoint and keys as AWS_*=VALUE lines, mode 0600 (default "
     "$MCACHE_ARTIFACTS_CREDS, else the AWS_* variables)"},
    {"json", 0, OPT_FLAG, NULL, "print JSON on stdout (schemas in docs/cli.md)"},
    {"quiet", 'q', OPT_FLAG, NULL, "no progress bar, no messages but errors"},
    {"help", 'h', OPT_FLAG, NULL, "show help (also: mcache help COMMAND)"},
    {"version", 0, OPT_FLAG, NULL, "print mcache's version"},
    {0},
};

static const struct cli_cmd *const commands[] = {
    &cmd_init,    &cmd_push, &cmd_ls,    &cmd_show, &cmd_alias,  &cmd_rollback,
    &cmd_history, &cmd_rm,   &cmd_gc,    &cmd_fsck, &cmd_verify, &cmd_load,
    &cmd_evict,   &cmd_pin,  &cmd_unpin, &cmd_stat, &cmd_stats, &cmd_compare, &cmd_snapshot,
    &cmd_health,  &cmd_deploy, &cmd_deployments, &cmd_alerts, &cmd_token, &cmd_audit, &cmd_db,
    NULL,
};

static void top_help(FILE *f)
{
    fputs("usage: mcache [GLOBAL OPTIONS] COMMAND [ARGS] [OPTIONS]\n"
          "\n"
          "The operator CLI of mcache, the shared-memory model cache: the registry of\n"
          "models and versions (works without mcached) and the daemon's cache (needs it).\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; commands[i]; i++)
        fprintf(f, "  %-9s %s\n", commands[i]->name, commands[i]->summary);
    fputs("\nGlobal options (before or after the command):\n", f);
    args_print_options(f, global_opts);
    fputs("\n"
          "Environment: MCACHE_STORE, MCACHE_REGISTRY, MCACHE_CACHE, MCACHE_SHM_DIR,\n"
          "  MCACHE_ARTIFACTS, MCACHE_ARTIFACTS_CREDS as above; for s3:// artifacts\n"
          "  AWS_ENDPOINT_URL, AWS_REGION, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\n"
          "  (each also from the --artifacts-creds file, which wins);\n"
          "  MCACHE_NOW=SECONDS fixes \"now\" (ages, gc --max-age);\n"
          "  MCACHE_PROGRESS_DELAY=MS shows the progress bar after MS (default 250).\n"
          "Exit status: 0 ok, 1 failed, 2 usage or malformed argument, 3 not found,\n"
          "  4 mcached not reachable.\n"
          "\n"
          "Run `mcache COMMAND --help` for a command's options and examples; man mcache.\n",
          f);
}

static void cmd_help(const struct cli_cmd *c)
{
    printf("usage: mcache %s %s\n\n%s\n", c->name, c->synopsis, c->help);
    if (c->opts && c->opts[0].name) {
        fputs("\nOptions:\n", stdout);
        args_print_options(stdout, c->opts);
    }
    fputs("\nGlobal options: --store DIR, --registry URL, --artifacts URL, --artifacts-creds FILE,\n"
          "  --cache NAME, --shm-dir DIR, --socket PATH, --json, -q/--quiet, -h/--help\n"
          "  (see `mcache --help`).\n",
          stdout);
}

static const struct cli_cmd *find_cmd(const char *name)
{
    for (size_t i = 0; commands[i]; i++)
        if (!strcmp(commands[i]->name, name))
            return commands[i];
    return NULL;
}

/*
 * The value of --opt: given after the command, else before it, else the
 * environment variable env, else def. *from (may be NULL) says which.
 */
static const char *pick(const struct args *before, const struct args *after, const char *opt,
                        const char *flag, const char *env, const char *def, const char **from)
{
    const char *v = args_value(after, opt), *e = env ? getenv(env) : NULL;
    const char *src = flag;

    if (!v)
        v = args_value(before, opt);
    if (!v && e && *e)
        v = e, src = env;
    if (!v)
        v = def, src = "the default";
    if (from)
        *from = src;
    return v;
}

static uint64_t now_ns(void)
{
    const char *e = getenv("MCACHE_NOW");

    if (e && *e)
        return (uint64_t)(strtod(e, NULL) * 1e9);
    return mc_wall_ns();
}

int main(int argc, char **argv)
{
    struct args before, after;
    struct cli c = {0};
    const struct cli_cmd *cmd;
    int next, rc;

    if (args_parse(&before, global_opts, NULL, argc - 1, argv + 1, true, &next) != 0) {
        rc = cli_usage(&c, "%s", mc_last_error());
        args_free(&before);
        return rc;
    }
    next++; /* index into argv */
    if (args_flag(&before, "version")) {
        printf("mcache %d.%d.%d (arena format %u)\n", MCACHE_VERSION_MAJOR, MCACHE_VERSION_MINOR,
               MCACHE_VERSION_PATCH, MC_ARENA_FORMAT);
        return EXIT_OK;
    }
    if (next >= argc || !strcmp(argv[next], "help")) {
        const char *topic = next + 1 < argc ? argv[next + 1] : NULL;
        bool asked = args_flag(&before, "help") || next < argc;

        args_free(&before);
        if (topic && (cmd = find_cmd(topic))) {
            cmd_help(cmd);
            return EXIT_OK;
        }
        if (topic)
            return cli_usage(&c, "there is no command \"%s\"", topic);
        top_help(asked ? stdout : stderr);
        return asked ? EXIT_OK : EXIT_USAGE;
    }
    cmd = find_cmd(argv[next]);
    if (!cmd) {
        rc = cli_usage(&c, "there is no command \"%s\"", argv[next]);
        args_free(&before);
        return rc;
    }
    c.cmd = cmd;
    if (args_parse(&after, cmd->opts, global_opts, argc - next - 1, argv + next + 1, false, NULL) !=
        0) {
        rc = cli_usage(&c, "%s", mc_last_error());
        goto out;
    }
    if (args_flag(&before, "help") || args_flag(&after, "help")) {
        cmd_help(cmd);
        rc = EXIT_OK;
        goto out;
    }
    if (after.npos < cmd->min_pos || after.npos > cmd->max_pos) {
        rc = cli_usage(&c,
                       after.npos < cmd->min_pos ? "%s needs more arguments"
                                                 : "%s was given too many arguments",
                       cmd->name);
        goto out;
    }
    c.store =
        pick(&before, &after, "store", "--store", "MCACHE_STORE", "./mcache-data", &c.store_from);
    while (c.store[0] == '.' && c.store[1] == '/' && c.store[2]) /* "./x" is "x" */
        c.store += 2;
    c.registry = pick(&before, &after, "registry", "--registry", "MCACHE_REGISTRY", NULL, NULL);
    c.cache = pick(&before, &after, "cache", "--cache", "MCACHE_CACHE", "default", &c.cache_from);
    c.shm_dir =
        pick(&before, &after, "shm-dir", "--shm-dir", "MCACHE_SHM_DIR", MC_DEFAULT_SHM_DIR, NULL);
    c.socket = pick(&before, &after, "socket", "--socket", NULL, NULL, NULL);
    c.artifacts = pick(&before, &after, "artifacts", "--artifacts", "MCACHE_ARTIFACTS", NULL, NULL);
    c.artifacts_creds = pick(&before, &after, "artifacts-creds", "--artifacts-creds",
                             "MCACHE_ARTIFACTS_CREDS", NULL, NULL);
    /* every registry open (fsck's included) reads it from there: one source */
    if (c.artifacts)
        setenv("MCACHE_ARTIFACTS", c.artifacts, 1);
    c.json = args_flag(&before, "json") || args_flag(&after, "json");
    c.quiet = args_flag(&before, "quiet") || args_flag(&after, "quiet");
    c.now_ns = now_ns();
    rc = cmd->run(&c, &after);
out:
    args_free(&before);
    args_free(&after);
    return rc;
}
