/*
 * cmd_list.c - `mcache ls` (search the registry) and `mcache show` (all
 * about a model or one version: metadata, lineage, aliases and their
 * history, residency, and which readers hold it).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "tools/arena_view.h"
#include "tools/cli.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"
#include "tools/output.h"
#include "tools/views.h"

/* ---- ls --------------------------------------------------------------- */

static const struct opt_spec ls_opts[] = {
    {"tag", 0, OPT_LIST, "KEY=VALUE", "only versions with this tag (VALUE may be a glob)"},
    {"where", 0, OPT_LIST, "COND", "only versions whose metric satisfies COND, e.g. 'acc>=0.9'"},
    {"ref", 0, OPT_VALUE, "REF", "only versions REF picks (a range, alias, latest, version)"},
    {"status", 0, OPT_LIST, "STATUS", "only this status: ready, failed, archived, registering"},
    {"sort", 0, OPT_VALUE, "ORDER", "version (by name, newest version first) or time"},
    {"limit", 0, OPT_VALUE, "N", "at most N versions"},
    {"short", 0, OPT_FLAG, NULL, "print NAME@VERSION only, one per line"},
    {0},
};

static int run_ls(struct cli *c, struct args *a)
{
    struct mc_search q = {.pattern = a->npos ? a->pos[0] : NULL, .ref = args_value(a, "ref")};
    const char *sort = args_value(a, "sort");
    size_t nst, n = 0;
    const char *const *st = args_list(a, "status", &nst);
    const struct mc_reg_version **vs = NULL;
    struct mc_registry *r = NULL;
    struct cli_arena ar = {0};
    uint64_t limit = 0;
    int rc;

    q.tags = args_list(a, "tag", &q.ntags);
    q.metrics = args_list(a, "where", &q.nmetrics);
    if (!sort || !strcmp(sort, "version"))
        q.order = MC_ORDER_VERSION;
    else if (!strcmp(sort, "time"))
        q.order = MC_ORDER_TIME;
    else
        return cli_usage(c, "--sort \"%s\" is not an order: use version or time", sort);
    for (size_t i = 0; i < nst; i++) {
        enum mc_reg_status s;
        if (mc_reg_status_parse(st[i], &s) != 0)
            return cli_usage(c,
                             "--status \"%s\" is not a status: use ready, failed, archived "
                             "or registering",
                             st[i]);
        q.status_mask |= 1u << s;
    }
    if (args_value(a, "limit") &&
        (rc = cli_parse_uint("limit", args_value(a, "limit"), 1u << 30, &limit)))
        return cli_error(rc);
    q.limit = (size_t)limit;
    rc = cli_open_store(c, false, false, &r);
    if (!rc)
        rc = mc_registry_search(r, &q, &vs, &n);
    if (rc) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    if (!args_flag(a, "short"))
        cli_arena_attach(c, &ar); /* residency; without an arena it shows as unknown */
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(
                arr, jv_version(mc_registry_model(r, vs[i]->name), vs[i],
                                cli_arena_residency(&ar, vs[i]->name, vs[i]->version)));
        jv_print(json_pack("{s:s, s:s, s:o}", "store", mc_registry_dir(r), "cache", c->cache,
                           "versions", arr));
    } else if (args_flag(a, "short")) {
        for (size_t i = 0; i < n; i++)
            printf("%s@%s\n", vs[i]->name, vs[i]->version);
    } else if (n) {
        view_versions(c, r, vs, n, &ar, true, 0);
    } else if (!c->quiet) {
        fprintf(stderr, "mcache: no versions in %s match\n", mc_registry_dir(r));
    }
    cli_arena_detach(&ar);
    free(vs);
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_ls = {
    .name = "ls",
    .synopsis = "[PATTERN] [OPTIONS]",
    .summary = "list versions: aliases, size, format, status, residency",
    .help = "Lists registered versions, one row each, with their aliases, size, format,\n"
            "status, whether they are resident in the cache's arena (yes, no, failed; ? when\n"
            "there is no arena) and how long ago they were pushed. PATTERN is a glob on\n"
            "model names ('*' also crosses '/'). Conditions combine with \"and\". A weighted\n"
            "alias is listed beside each of its versions with its share: c2 (50%).\n"
            "\n"
            "Examples:\n"
            "  mcache ls\n"
            "  mcache ls 'vision/*' --tag env=prod --where 'accuracy>=0.9' --sort time\n"
            "  mcache ls resnet --ref '^1.2'\n"
            "  mcache ls --status failed --json",
    .opts = ls_opts,
    .min_pos = 0,
    .max_pos = 1,
    .run = run_ls,
};

/* ---- show: a model ------------------------------------------------------ */

static int show_model(const struct cli *c, struct mc_registry *r, const struct mc_reg_model *m)
{
    const struct mc_reg_version *latest = NULL;
    const struct mc_reg_version **vs = calloc(m->nversions + 1, sizeof(*vs));
    struct cli_arena ar;
    uint64_t total = 0;
    json_t *moves = jv_moves(m, NULL, NULL);

    if (!vs)
        return cli_error(mc_err(MC_ENOMEM, "out of memory"));
    mc_registry_resolve(r, m->name, "latest", &latest);
    cli_arena_attach(c, &ar);
    for (size_t i = 0; i < m->nversions; i++) { /* newest version first */
        vs[i] = m->versions[m->nversions - 1 - i];
        total += vs[i]->size;
    }
    if (c->json) {
        json_t *arr = json_array();
        for (size_t i = 0; i < m->nversions; i++)
            json_array_append_new(
                arr, jv_version(m, vs[i], cli_arena_residency(&ar, vs[i]->name, vs[i]->version)));
        jv_print(json_pack("{s:s, s:s, s:o, s:I, s:o, s:o, s:o}", "kind", "model", "name", m->name,
                           "latest", jv_str(latest ? latest->version : NULL), "size",
                           (json_int_t)total, "versions", arr, "aliases", jv_aliases(m),
                           "history", moves));
    } else {
        char sz[FMT_LEN];
        kv(stdout, 8, "model", "%s", m->name);
        kv(stdout, 8, "versions", "%zu, %s in all", m->nversions, fmt_size(total, sz));
        kv(stdout, 8, "latest", "%s", latest ? latest->version : "- (no ready release)");
        fputs("\n", stdout);
        view_versions(c, r, vs, m->nversions, &ar, false, 0);
        if (m->naliases) {
            static const char *head[] = {"ALIAS", "TARGET", "MOVES", "LAST MOVED", NULL};
            json_t *al = jv_aliases(m), *e;
            struct table t;
            size_t i;

            table_init(&t, 1u << 2, head);
            json_array_foreach(al, i, e)
            {
                char n[16], age[FMT_LEN], tg[1100];
                const char *row[4] = {jstr(e, "alias"), tg, n,
                                      fmt_age((uint64_t)jint(e, "moved_ns"), c->now_ns, age)};
                /* the targets' text: "2.0.0", or "2.0.0=50 5.0.0=50" for a weighted alias */
                if (mc_reg_targets_format(&m->aliases[i], tg, sizeof(tg)) != 0)
                    snprintf(tg, sizeof(tg), "%s", jstr(e, "target"));
                snprintf(n, sizeof(n), "%lld", jint(e, "moves"));
                table_add(&t, row);
            }
            fputs("\n", stdout);
            table_print(&t, stdout, 0);
            table_free(&t);
            json_decref(al);
            fputs("\nalias history:\n", stdout);
            view_history(moves, 2);
        }
        json_decref(moves);
    }
    cli_arena_detach(&ar);
    free(vs);
    return EXIT_OK;
}

/* ---- show: a version ----------------------------------------------------- */

/* Where the version stands in the cache, from mcached or else the arena. */
struct standing {
    bool daemon;     /* mcached answered */
    const char *res; /* residency word for JSON */
    json_t *model;   /* mcached's entry for it (borrowed from status), or NULL */
    json_t *holders; /* readers holding it, or NULL if unknown */
    json_t *status;  /* owns model */
};

static json_t *holders_of(json_t *readers, const char *key)
{
    json_t *out = json_array(), *rd, *h;
    size_t i, j;

    json_array_foreach(readers, i, rd)
    {
        json_array_foreach(json_object_get(rd, "holds"), j, h)
        {
            if (json_is_string(h) && !strcmp(json_string_value(h), key)) {
                json_array_append_new(out, json_pack("{s:O, s:O, s:O, s:O, s:o}", "slot",
                                                     json_object_get(rd, "slot"), "pid",
                                                     json_object_get(rd, "pid"), "tid",
                                                     json_object_get(rd, "tid"), "since_ns",
                                                     json_object_get(rd, "since_ns"), "since_at",
                                                     jv_time((uint64_t)jint(rd, "since_ns"))));
                break;
            }
        }
    }
    return out;
}

static void find_standing(const struct cli *c, const struct mc_reg_version *v, struct standing *s)
{
    char key[1024];
    json_t *m;
    size_t i;

    memset(s, 0, sizeof(*s));
    s->res = "unknown";
    snprintf(key, sizeof(key), "%s@%s", v->name, v->version);
    if (cli_ctl_call(c, "status", 0, NULL, CLI_CTL_TIMEOUT_MS, &s->status) == 0) {
        s->daemon = true;
        s->res = "not-resident";
        json_array_foreach(json_object_get(s->status, "models"), i, m)
        {
            const char *st = jstr(m, "state");
            if (!jstr(m, "name") || strcmp(jstr(m, "name"), v->name) || !jstr(m, "version") ||
                strcmp(jstr(m, "version"), v->version) || !st)
                continue;
            s->model = m;
            s->res = !strcmp(st, "registered") ? "not-resident" : st;
        }
        s->holders = holders_of(json_object_get(s->status, "readers"), key);
        return;
    }
    struct cli_arena ar;
    if (cli_arena_attach(c, &ar) == 0) {
        json_t *rd = cli_arena_readers(c, &ar);
        s->res = cli_arena_residency(&ar, v->name, v->version);
        if (rd)
            s->holders = holders_of(rd, key);
        json_decref(rd);
    }
    cli_arena_detach(&ar);
}

static json_t *derived_json(struct mc_registry *r, const struct mc_reg_version *v)
{
    char key[1024];
    json_t *arr = json_array();

    snprintf(key, sizeof(key), "%s@%s", v->name, v->version);
    for (size_t i = 0; i < mc_registry_model_count(r); i++) {
        const struct mc_reg_model *m = mc_registry_model_at(r, i);
        for (size_t k = 0; m && k < m->nversions; k++)
            if (m->versions[k]->parent && !strcmp(m->versions[k]->parent, key)) {
                char d[1024];
                snprintf(d, sizeof(d), "%s@%s", m->name, m->versions[k]->version);
                json_array_append_new(arr, json_string(d));
            }
    }
    return arr;
}

static void print_kvs(const char *title, const struct mc_reg_kv *kvs, size_t n)
{
    int w = 0;

    if (!n)
        return;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(kvs[i].key) > w)
            w = (int)strlen(kvs[i].key);
    printf("\n%s:\n", title);
    for (size_t i = 0; i < n; i++)
        printf("  %-*s  %s\n", w, kvs[i].key, kvs[i].value);
}

static void print_version(const struct cli *c, const struct mc_reg_model *m,
                          const struct mc_reg_version *v, const char *ref, const struct standing *s,
                          json_t *derived, json_t *moves)
{
    char b1[FMT_LEN], b2[FMT_LEN], user[64], al[512], list[2048];
    json_t *e;
    size_t i;
    int w = 11;

    kv(stdout, w, "name", "%s", v->name);
    kv(stdout, w, "version", "%s", v->version);
    if (ref && strcmp(ref, v->version))
        kv(stdout, w, "reference", "%s -> %s", ref, v->version);
    if (v->status_reason)
        kv(stdout, w, "status", "%s (%s)", mc_reg_status_name(v->status), v->status_reason);
    else
        kv(stdout, w, "status", "%s", mc_reg_status_name(v->status));
    kv(stdout, w, "aliases", "%s", *aliases_of(m, v, al, sizeof(al)) ? al : "-");
    kv(stdout, w, "size", "%s (%llu bytes)", fmt_size(v->size, b1), (unsigned long long)v->size);
    kv(stdout, w, "format", "%s", mc_reg_format_name(v->format));
    kv(stdout, w, "checksum", "%s", v->checksum);
    kv(stdout, w, "path", "%s", v->path);
    kv(stdout, w, "pushed", "%s (%s) by %s", fmt_time(v->created_ns, b1),
       fmt_age(v->created_ns, c->now_ns, b2), cli_user_name(v->created_by, user, sizeof(user)));
    const struct {
        const char *label, *value; /* shown only if set */
    } opt[] = {
        {"description", v->description},
        {"framework", v->framework},
        {"precision", v->precision},
        {"device", v->device},
        {"parent", v->parent},
        {"source", v->source},
        {"derived", *jv_join(derived, ", ", list, sizeof(list)) ? list : NULL},
    };
    for (i = 0; i < sizeof(opt) / sizeof(opt[0]); i++)
        if (opt[i].value)
            kv(stdout, w, opt[i].label, "%s", opt[i].value);
    kv(stdout, w, "preload", "%s", v->preload ? "yes" : "no");
    kv(stdout, w, "pinned", "%s", v->pinned ? "yes" : "no");
    if (s->model && !strcmp(s->res, "resident") && jint(s->model, "loaded_ns"))
        kv(stdout, w, "resident", "yes, loaded %s in %s", fmt_time(jint(s->model, "loaded_ns"), b1),
           fmt_duration(jnum(s->model, "load_s"), b2));
    else if (s->model && !strcmp(s->res, "failed") && jstr(s->model, "error"))
        kv(stdout, w, "resident", "no, its last load failed: %s", jstr(s->model, "error"));
    else if (!strcmp(s->res, "unknown"))
        kv(stdout, w, "resident", "? (no arena for cache \"%s\" and mcached is not running)",
           c->cache);
    else
        kv(stdout, w, "resident", "%s", residency_word(s->res));
    if (v->nmetrics) {
        int mw = 0;
        for (i = 0; i < v->nmetrics; i++)
            if ((int)strlen(v->metrics[i].key) > mw)
                mw = (int)strlen(v->metrics[i].key);
        printf("\nmetrics:\n");
        for (i = 0; i < v->nmetrics; i++)
            printf("  %-*s  %.15g\n", mw, v->metrics[i].key, v->metrics[i].value);
    }
    print_kvs("params", v->params, v->nparams);
    print_kvs("tags", v->tags, v->ntags);
    if (s->holders && json_array_size(s->holders)) {
        static const char *head[] = {"SLOT", "PID", "SINCE", NULL};
        struct table t;

        table_init(&t, 3, head);
        json_array_foreach(s->holders, i, e)
        {
            char slot[16], pid[16];
            const char *row[3] = {slot, pid, fmt_age((uint64_t)jint(e, "since_ns"), c->now_ns, b1)};
            snprintf(slot, sizeof(slot), "%lld", jint(e, "slot"));
            snprintf(pid, sizeof(pid), "%lld", jint(e, "pid"));
            table_add(&t, row);
        }
        printf("\nheld by %zu reader(s):\n", json_array_size(s->holders));
        table_print(&t, stdout, 2);
        table_free(&t);
    }
    if (json_array_size(moves)) {
        printf("\nalias history:\n");
        view_history(moves, 2);
    }
}

static int show_version(const struct cli *c, struct mc_registry *r, const struct mc_reg_model *m,
                        const struct mc_reg_version *v, const char *ref)
{
    struct standing s;
    json_t *derived = derived_json(r, v), *moves = jv_moves(m, NULL, v->version);

    find_standing(c, v, &s);
    if (c->json) {
        json_t *load = json_null();
        if (s.model)
            load = json_pack("{s:O, s:O, s:O, s:O}", "loaded_ns", jget(s.model, "loaded_ns"),
                             "load_s", jget(s.model, "load_s"), "idle_s", jget(s.model, "idle_s"),
                             "error", jget(s.model, "error"));
        jv_print(json_pack("{s:s, s:s, s:o, s:o, s:o, s:b, s:o, s:O}", "kind", "version", "ref",
                           ref, "version", jv_version(m, v, s.res), "derived", derived, "history",
                           moves, "daemon", s.daemon, "load", load, "readers",
                           s.holders ? s.holders : json_null()));
    } else {
        print_version(c, m, v, ref, &s, derived, moves);
        json_decref(derived);
        json_decref(moves);
    }
    json_decref(s.holders);
    json_decref(s.status);
    return EXIT_OK;
}

static int run_show(struct cli *c, struct args *a)
{
    const struct mc_reg_version *v;
    const struct mc_reg_model *m;
    struct mc_registry *r;
    const char *name, *ref;
    char buf[1024];
    int rc;

    rc = cli_split_ref(a->pos[0], buf, sizeof(buf), &name, &ref);
    if (!rc)
        rc = cli_open_store(c, false, false, &r);
    if (rc)
        return cli_error(rc);
    m = cli_model(r, name, &rc);
    if (!m) {
        rc = cli_error(rc);
    } else if (!ref) {
        rc = show_model(c, r, m);
    } else if ((rc = mc_registry_resolve(r, name, ref, &v)) != 0) {
        rc = cli_error(rc);
    } else {
        rc = show_version(c, r, m, v, ref);
    }
    mc_registry_close(r);
    return rc;
}

const struct cli_cmd cmd_show = {
    .name = "show",
    .synopsis = "NAME[@REF]",
    .summary = "everything about a model or a version",
    .help = "NAME alone: the model's versions, its aliases (a weighted one with every\n"
            "target and weight: 2.0.0=50 5.0.0=50) and their history, a move's reason on a\n"
            "why: line under it.\n"
            "NAME@REF (a version, alias, latest or range): that version's metadata, lineage\n"
            "(parent, source, versions derived from it), aliases and their moves, whether\n"
            "it is resident (and when mcached loaded it, or why loading failed), and which\n"
            "readers hold it now. Residency and readers come from mcached when it runs,\n"
            "else from the arena itself.\n"
            "\n"
            "Examples:\n"
            "  mcache show resnet\n"
            "  mcache show resnet@production\n"
            "  mcache show 'resnet@^1.2' --json",
    .opts = NULL,
    .min_pos = 1,
    .max_pos = 1,
    .run = run_show,
};
