/*
 * cmd_push.c - `mcache push`: register a file as a model version, with
 * metadata, aliases and mcached's flags, showing progress while it copies.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"
#include "tools/output.h"
#include "tools/progress.h"

static const struct opt_spec push_opts[] = {
    {"metric", 0, OPT_LIST, "NAME=NUMBER", "a metric, e.g. accuracy=0.931 (repeatable)"},
    {"param", 0, OPT_LIST, "KEY=VALUE", "a parameter, e.g. batch_size=32 (repeatable)"},
    {"tag", 0, OPT_LIST, "KEY=VALUE", "a tag, e.g. env=prod (repeatable)"},
    {"desc", 0, OPT_VALUE, "TEXT", "a description"},
    {"framework", 0, OPT_VALUE, "F", "framework, e.g. pytorch, llama.cpp"},
    {"precision", 0, OPT_VALUE, "P", "precision, e.g. fp16, q4_k_m"},
    {"device", 0, OPT_VALUE, "D", "target device, e.g. cuda, cpu"},
    {"parent", 0, OPT_VALUE, "NAME@VERSION", "lineage: the version this one derives from"},
    {"source", 0, OPT_VALUE, "URI", "lineage: where it came from"},
    {"alias", 0, OPT_LIST, "ALIAS", "point ALIAS at the new version (repeatable)"},
    {"no-gate", 0, OPT_FLAG, NULL, "--alias without the model's health check (see `alias`)"},
    {"preload", 0, OPT_FLAG, NULL, "mcached loads it at start and after changes"},
    {"pin", 0, OPT_FLAG, NULL, "mcached never evicts it; gc never removes it"},
    {0},
};

/* Split each "KEY=VALUE" of option opt into kv[i] (strings point into copies kept in keep). */
static int parse_kvs(const char *opt, const char *const *in, size_t n, struct mc_reg_kv *kv,
                     char **keep)
{
    for (size_t i = 0; i < n; i++) {
        char *eq;

        keep[i] = strdup(in[i]);
        if (!keep[i])
            return mc_err(MC_ENOMEM, "out of memory");
        eq = strchr(keep[i], '=');
        if (!eq || eq == keep[i])
            return mc_err(MC_EINVAL, "--%s \"%s\" is not KEY=VALUE (e.g. --%s %s)", opt, in[i], opt,
                          !strcmp(opt, "tag") ? "env=prod" : "batch_size=32");
        *eq = '\0';
        kv[i].key = keep[i];
        kv[i].value = eq + 1;
    }
    return 0;
}

static int parse_metrics(const char *const *in, size_t n, struct mc_reg_metric *m, char **keep)
{
    for (size_t i = 0; i < n; i++) {
        char *eq, *end;

        keep[i] = strdup(in[i]);
        if (!keep[i])
            return mc_err(MC_ENOMEM, "out of memory");
        eq = strchr(keep[i], '=');
        if (!eq || eq == keep[i])
            return mc_err(MC_EINVAL,
                          "--metric \"%s\" is not NAME=NUMBER (e.g. --metric accuracy=0.931)",
                          in[i]);
        *eq = '\0';
        m[i].key = keep[i];
        m[i].value = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || !isfinite(m[i].value))
            return mc_err(MC_EINVAL,
                          "metric \"%s\" has value \"%s\", which is not a finite number (e.g. "
                          "--metric accuracy=0.931)",
                          keep[i], eq + 1);
    }
    return 0;
}

static int on_progress(void *arg, uint64_t done, uint64_t total)
{
    struct progress *p = arg;

    (void)total;
    if (cli_interrupted)
        return mc_err(MC_EIO, "interrupted; nothing was registered");
    progress_update(p, done);
    return 0;
}

/* Print what was pushed. */
static void report(const struct cli *c, struct mc_registry *r, const char *name,
                   const char *version, uint64_t gen, double secs)
{
    const struct mc_reg_model *m = mc_registry_model(r, name);
    const struct mc_reg_version *v = NULL;
    char sz[FMT_LEN], du[FMT_LEN], al[512];

    if (mc_registry_resolve(r, name, version, &v) != 0)
        return;
    if (c->json) {
        jv_print(json_pack("{s:o, s:I, s:f}", "version", jv_version(m, v, NULL), "generation",
                           (json_int_t)gen, "seconds", secs));
        return;
    }
    if (c->quiet)
        return;
    printf("pushed %s@%s: %s, %s, %s in %s\n", v->name, v->version, fmt_size(v->size, sz),
           mc_reg_format_name(v->format), v->checksum, fmt_duration(secs, du));
    if (*aliases_of(m, v, al, sizeof(al)))
        printf("aliases: %s\n", al);
}

static int run_push(struct cli *c, struct args *a)
{
    size_t nm, np, nt, nal;
    const char *const *metrics = args_list(a, "metric", &nm);
    const char *const *params = args_list(a, "param", &np);
    const char *const *tags = args_list(a, "tag", &nt);
    const char *const *aliases = args_list(a, "alias", &nal);
    const char *name, *version, *file, *ver_in;
    struct mc_reg_metric *mv = calloc(nm + 1, sizeof(*mv));
    struct mc_reg_kv *pv = calloc(np + 1, sizeof(*pv)), *tv = calloc(nt + 1, sizeof(*tv));
    char **keep = calloc(nm + np + nt + 1, sizeof(*keep)), label[80], nbuf[512];
    struct mc_reg_meta meta = {0};
    struct mc_push_opts po = {.meta = &meta};
    struct mc_registry *r = NULL;
    struct progress prog;
    struct stat st;
    uint64_t gen = 0;
    double t0;
    bool gated = false; /* the aliases move through mcached's gate (the model has a check) */
    int rc;

    if (!mv || !pv || !tv || !keep) {
        rc = cli_error(mc_err(MC_ENOMEM, "out of memory"));
        goto out;
    }
    /* NAME VERSION FILE, or NAME@VERSION FILE */
    if (a->npos == 2) {
        rc = cli_split_ref(a->pos[0], nbuf, sizeof(nbuf), &name, &ver_in);
        if (!rc && !ver_in)
            rc = mc_err(MC_EINVAL,
                        "\"%s\" names no version: write NAME VERSION FILE or "
                        "NAME@VERSION FILE",
                        a->pos[0]);
        if (rc) {
            rc = cli_error(rc);
            goto out;
        }
        version = ver_in;
        file = a->pos[1];
    } else if (a->npos == 3) {
        name = a->pos[0], version = a->pos[1], file = a->pos[2];
    } else {
        rc = cli_usage(c, "push needs NAME VERSION FILE");
        goto out;
    }
    rc = parse_metrics(metrics, nm, mv, keep);
    if (!rc)
        rc = parse_kvs("param", params, np, pv, keep + nm);
    if (!rc)
        rc = parse_kvs("tag", tags, nt, tv, keep + nm + np);
    if (rc) {
        rc = cli_error(rc);
        goto out;
    }
    meta = (struct mc_reg_meta){
        .description = args_value(a, "desc"),
        .framework = args_value(a, "framework"),
        .precision = args_value(a, "precision"),
        .device = args_value(a, "device"),
        .parent = args_value(a, "parent"),
        .source = args_value(a, "source"),
        .metrics = mv,
        .nmetrics = nm,
        .params = pv,
        .nparams = np,
        .tags = tv,
        .ntags = nt,
    };
    po.preload = args_flag(a, "preload");
    po.pinned = args_flag(a, "pin");
    /* Bad input changes nothing: refused before a missing store is created. */
    rc = mc_registry_push_check(name, version, &po);
    if (rc) {
        rc = cli_error(rc);
        goto out;
    }
    if (stat(file, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cli_error(mc_err(MC_ENOENT, "cannot push %s@%s: \"%s\" is not a readable file", name,
                              version, file));
        goto out;
    }
    rc = cli_open_store(c, true, true, &r);
    if (rc) {
        rc = cli_error(rc);
        goto out;
    }
    /* A model with a health check: --alias moves go through mcached's gate, as `alias` does. */
    if (nal && !args_flag(a, "no-gate") && mc_registry_model(r, name) &&
        mc_registry_model(r, name)->health) {
        char why[512];
        if ((rc = cli_ctl_serves_store(c)) != 0) {
            snprintf(why, sizeof(why), "%s", mc_last_error()); /* mc_err() reuses its buffer */
            rc = cli_error(mc_err(rc == MC_ENODAEMON ? MC_ENODAEMON : rc,
                                  "%s has a health check, which mcached runs before an alias "
                                  "moves, and no mcached serves this store (%s); nothing was "
                                  "pushed: start mcached, push without --alias, or give --no-gate",
                                  name, why));
            goto out;
        }
        gated = true;
    }
    snprintf(label, sizeof(label), "push %s@%s", name, version);
    cli_catch_signals();
    progress_start(&prog, c, label, (uint64_t)st.st_size);
    po.progress = on_progress;
    po.progress_arg = &prog;
    t0 = cli_mono_s();
    rc = mc_registry_push(r, name, version, file, &po, &gen);
    progress_end(&prog);
    if (rc) {
        rc = cli_error(rc);
        goto out;
    }
    for (size_t i = 0; i < nal; i++) {
        int arc;
        if (gated) {
            const char *args[4] = {name, aliases[i], version, "push"};
            json_t *res = NULL;
            arc = cli_ctl_call(c, "alias", 4, args, -1, &res);
            if (!arc)
                gen = (uint64_t)jint(res, "generation");
            json_decref(res);
        } else {
            arc = mc_registry_alias_set(r, name, aliases[i], version, &gen);
        }
        if (arc) {
            mc_err_prefix(arc, "pushed %s@%s, but setting alias \"%s\" failed", name, version,
                          aliases[i]);
            rc = cli_error(arc);
            goto out;
        }
    }
    report(c, r, name, version, gen, cli_mono_s() - t0);
    rc = EXIT_OK;
out:
    for (size_t i = 0; keep && i < nm + np + nt; i++)
        free(keep[i]);
    free(keep);
    free(mv);
    free(pv);
    free(tv);
    mc_registry_close(r);
    return rc;
}

const struct cli_cmd cmd_push = {
    .name = "push",
    .synopsis = "NAME VERSION FILE [OPTIONS]",
    .summary = "register FILE as version VERSION of model NAME",
    .help = "Copies FILE into the store (atomically, computing its XXH3-128 checksum while\n"
            "copying), detects its format (safetensors, gguf, onnx, other) and records the\n"
            "version with its metadata. VERSION is a semantic version (MAJOR.MINOR.PATCH,\n"
            "optional -prerelease and +build). NAME@VERSION FILE is accepted too. A running\n"
            "mcached sees the new version at once and loads it if it is preloaded, pinned\n"
            "or aliased. A progress bar shows on a terminal for long copies.\n"
            "--alias moves each alias after the push. For a model with a health check\n"
            "(`mcache health`) the move goes through mcached, which loads, verifies and\n"
            "checks the new version first (a refusal leaves the version pushed and the\n"
            "alias where it was); without mcached such a push is refused unless --no-gate.\n"
            "\n"
            "Examples:\n"
            "  mcache push resnet 1.2.0 ./resnet50.safetensors --framework pytorch \\\n"
            "      --precision fp16 --metric accuracy=0.931 --tag env=prod --alias production\n"
            "  mcache push org/llama 3.1.0-rc.1 llama.gguf --parent org/llama@3.0.0 --preload\n"
            "  mcache --store /srv/models push bert 2.0.0 bert.onnx --json",
    .opts = push_opts,
    .min_pos = 2,
    .max_pos = 3,
    .run = run_push,
};
