/*
 * context.c - the invocation's shared helpers: exit statuses for MC_E*
 * codes, error and usage messages, opening the store, splitting NAME@REF.
 */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "index/name.h"
#include "tools/cli.h"

volatile sig_atomic_t cli_interrupted;

int cli_exit_code(int rc)
{
    switch (rc) {
    case 0:
        return EXIT_OK;
    case MC_EINVAL:
        return EXIT_USAGE;
    case MC_ENOENT:
        return EXIT_NOTFOUND;
    case MC_ENODAEMON:
        return EXIT_NODAEMON;
    default:
        return EXIT_FAIL;
    }
}

int cli_error(int rc)
{
    const char *m = mc_last_error();

    fprintf(stderr, "mcache: %s\n", m && *m ? m : mc_strerror(rc));
    return cli_exit_code(rc);
}

int cli_usage(const struct cli *c, const char *fmt, ...)
{
    va_list ap;

    fputs("mcache: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (c->cmd)
        fprintf(stderr, "\nusage: mcache %s %s (see `mcache %s --help`)\n", c->cmd->name,
                c->cmd->synopsis, c->cmd->name);
    else
        fputs(" (see `mcache --help`)\n", stderr);
    return EXIT_USAGE;
}

struct mc_registry_opts cli_registry_opts(const struct cli *c, unsigned flags)
{
    struct mc_registry_opts o = {.flags = flags,
                                 .registry = c->registry,
                                 .artifacts = c->artifacts,
                                 .artifacts_creds = c->artifacts_creds};
    return o;
}

int cli_open_store(const struct cli *c, bool write, bool create, struct mc_registry **out)
{
    struct mc_registry_opts o = cli_registry_opts(
        c, (create ? MC_REGISTRY_CREATE : 0) | (write ? 0 : MC_REGISTRY_READONLY));
    char cwd[4096] = "";
    struct stat st;
    int rc;

    if (!create && stat(c->store, &st) != 0 && errno == ENOENT) {
        if (c->store[0] != '/' && getcwd(cwd, sizeof(cwd) - 1))
            strcat(cwd, "/");
        return mc_err(MC_ENOENT,
                      "there is no store at \"%s%s\" (from %s); pass --store DIR or set "
                      "MCACHE_STORE, or create it with `mcache init` or a first `mcache push`",
                      cwd, c->store, c->store_from);
    }
    rc = mc_registry_open(c->store, &o, out);
    if (rc)
        return rc;
    return 0;
}

const struct mc_reg_model *cli_model(struct mc_registry *r, const char *name, int *rc)
{
    const struct mc_reg_model *m;

    if ((*rc = mc_name_check(name)) != 0)
        return NULL;
    m = mc_registry_model(r, name);
    *rc = m ? 0 : MC_ENOENT;
    return m;
}

int cli_split_ref(const char *arg, char *buf, size_t len, const char **name, const char **ref)
{
    char *at;

    if (strlen(arg) >= len)
        return mc_err(MC_EINVAL, "\"%.40s...\" is too long for NAME@REF (at most %zu bytes)", arg,
                      len - 1);
    memcpy(buf, arg, strlen(arg) + 1);
    at = strchr(buf, '@');
    *name = buf;
    *ref = NULL;
    if (at) {
        *at = '\0';
        *ref = at + 1;
        if (!**ref)
            return mc_err(MC_EINVAL,
                          "\"%s\" has an empty reference after '@' (write NAME@VERSION, "
                          "NAME@ALIAS, NAME@latest or NAME@RANGE)",
                          arg);
    }
    if (!**name)
        return mc_err(MC_EINVAL, "\"%s\" has no model name before '@' (write NAME@REF)", arg);
    return 0;
}

int cli_parse_uint(const char *opt, const char *v, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long x;

    errno = 0;
    x = strtoull(v, &end, 10);
    if (!*v || *end || errno || *v == '-' || *v == '+' || x > max)
        return mc_err(MC_EINVAL, "--%s \"%s\" is not a whole number from 0 to %llu", opt, v,
                      (unsigned long long)max);
    *out = x;
    return 0;
}

int cli_parse_range(const char *opt, const char *v, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long x;

    errno = 0;
    x = strtoull(v, &end, 10);
    if (!*v || *end || errno || *v == '-' || *v == '+' || x < min || x > max)
        return mc_err(MC_EINVAL, "--%s \"%s\" is not a whole number from %llu to %llu", opt, v,
                      (unsigned long long)min, (unsigned long long)max);
    *out = x;
    return 0;
}

const char *cli_user_name(uint32_t uid, char *buf, size_t len)
{
    struct passwd pw, *res = NULL;
    char tmp[1024];

    if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 && res)
        snprintf(buf, len, "%s", res->pw_name);
    else
        snprintf(buf, len, "uid %u", uid);
    return buf;
}

static void on_signal(int sig)
{
    if (cli_interrupted) { /* a second ^C: stop now */
        signal(sig, SIG_DFL);
        raise(sig);
    }
    cli_interrupted = 1;
}

void cli_catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

double cli_mono_s(void)
{
    return (double)mc_mono_ns() / 1e9;
}

const char *cli_alias_targets(struct mc_registry *r, const char *name, const char *alias, char *buf,
                              size_t len)
{
    const struct mc_reg_model *m = mc_registry_model(r, name);

    *buf = '\0';
    for (size_t i = 0; m && i < m->naliases; i++)
        if (!strcmp(m->aliases[i].alias, alias))
            mc_reg_targets_format(&m->aliases[i], buf, len);
    return *buf ? buf : NULL;
}

const struct mc_reg_snapshot *cli_snapshot_find(struct mc_registry *r, const char *sname)
{
    for (size_t i = 0; i < mc_registry_snapshot_count(r); i++) {
        const struct mc_reg_snapshot *s = mc_registry_snapshot_at(r, i);

        if (!strcmp(s->name, sname))
            return s;
    }
    return NULL;
}

int cli_snapshot_gate(struct mc_registry *r, const struct mc_reg_snapshot *s, const char *sname)
{
    char now[2048];

    for (size_t i = 0; i < s->nentries; i++) {
        const struct mc_reg_model *m = mc_registry_model(r, s->entries[i].model);
        if (!m || !m->health)
            continue;
        cli_alias_targets(r, s->entries[i].model, s->entries[i].alias, now, sizeof(now));
        if (strcmp(now, s->entries[i].targets))
            return mc_err(MC_EINVAL,
                          "snapshot restore %s would move %s of %s (%s -> %s), and %s has a "
                          "health check, which a restore does not run (it moves every alias in "
                          "one record); nothing was restored: move that alias with `mcache "
                          "alias` (gated), or restore with --no-gate if you mean it",
                          sname, s->entries[i].alias, s->entries[i].model, *now ? now : "none",
                          s->entries[i].targets, s->entries[i].model);
    }
    return 0;
}

bool cli_audit_names(const char *what, const char *model)
{
    size_t n = strlen(model);

    if (!strncmp(what, "token ", 6))
        return false;
    for (const char *p = what; *p;) {
        size_t len = strcspn(p, " ");

        if ((len == n || (len > n && p[n] == '@')) && !strncmp(p, model, n))
            return true;
        p += len;
        p += strspn(p, " ");
    }
    return false;
}
