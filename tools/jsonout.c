/*
 * jsonout.c - JSON objects for --json output (see jsonout.h, docs/cli.md).
 */
#include "tools/jsonout.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/err.h"

json_t *jv_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *jv_time(uint64_t ns)
{
    time_t t = (time_t)(ns / 1000000000ull);
    struct tm tm;
    char buf[64];

    if (!gmtime_r(&t, &tm))
        return json_null();
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + strlen(buf), sizeof(buf) - strlen(buf), ".%03uZ",
             (unsigned)(ns % 1000000000ull / 1000000));
    return json_string(buf);
}

void jv_print(json_t *j)
{
    json_dumpf(j, stdout, JSON_INDENT(2) | JSON_REAL_PRECISION(15));
    fputc('\n', stdout);
    json_decref(j);
}

const char *aliases_of(const struct mc_reg_model *m, const struct mc_reg_version *v, char *buf,
                       size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; m && i < m->naliases; i++) {
        const struct mc_reg_alias *a = &m->aliases[i];

        for (size_t j = 0; j < a->ntargets && n < len; j++) {
            if (a->targets[j].version != v)
                continue;
            if (a->ntargets > 1) /* weighted: its share of the requests */
                n += (size_t)snprintf(buf + n, len - n, "%s%s (%u%%)", n ? "," : "", a->alias,
                                      a->targets[j].weight);
            else
                n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? "," : "", a->alias);
        }
    }
    return buf;
}

const char *jv_join(const json_t *arr, const char *sep, char *buf, size_t len)
{
    size_t i, n = 0;
    json_t *e;

    buf[0] = '\0';
    json_array_foreach(arr, i, e)
    {
        if (json_is_string(e) && n < len)
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n ? sep : "", json_string_value(e));
    }
    return buf;
}

const char *move_action(const struct mc_reg_move *mv)
{
    if (mv->rollback)
        return "rollback";
    if (!mv->from)
        return "create";
    if (!mv->to)
        return "remove";
    return "move";
}

json_t *jv_version(const struct mc_reg_model *m, const struct mc_reg_version *v,
                   const char *residency)
{
    json_t *metrics = json_object(), *params = json_object(), *tags = json_object();
    json_t *aliases = json_array(), *weights = json_object();
    json_t *o;

    for (size_t i = 0; i < v->nmetrics; i++)
        json_object_set_new(metrics, v->metrics[i].key, json_real(v->metrics[i].value));
    for (size_t i = 0; i < v->nparams; i++)
        json_object_set_new(params, v->params[i].key, json_string(v->params[i].value));
    for (size_t i = 0; i < v->ntags; i++)
        json_object_set_new(tags, v->tags[i].key, json_string(v->tags[i].value));
    for (size_t i = 0; m && i < m->naliases; i++) /* every alias with v among its targets */
        for (size_t j = 0; j < m->aliases[i].ntargets; j++)
            if (m->aliases[i].targets[j].version == v) {
                json_array_append_new(aliases, json_string(m->aliases[i].alias));
                json_object_set_new(weights, m->aliases[i].alias,
                                    json_integer(m->aliases[i].targets[j].weight));
            }
    o = json_object();
    json_object_set_new(o, "name", json_string(v->name));
    json_object_set_new(o, "version", json_string(v->version));
    json_object_set_new(o, "status", json_string(mc_reg_status_name(v->status)));
    json_object_set_new(o, "status_reason", jv_str(v->status_reason));
    json_object_set_new(o, "size", json_integer((json_int_t)v->size));
    json_object_set_new(o, "format", json_string(mc_reg_format_name(v->format)));
    json_object_set_new(o, "checksum", json_string(v->checksum));
    json_object_set_new(o, "path", json_string(v->path));
    json_object_set_new(o, "created_ns", json_integer((json_int_t)v->created_ns));
    json_object_set_new(o, "created_at", jv_time(v->created_ns));
    json_object_set_new(o, "created_by", json_integer(v->created_by));
    json_object_set_new(o, "description", jv_str(v->description));
    json_object_set_new(o, "framework", jv_str(v->framework));
    json_object_set_new(o, "precision", jv_str(v->precision));
    json_object_set_new(o, "device", jv_str(v->device));
    json_object_set_new(o, "parent", jv_str(v->parent));
    json_object_set_new(o, "source", jv_str(v->source));
    json_object_set_new(o, "metrics", metrics);
    json_object_set_new(o, "params", params);
    json_object_set_new(o, "tags", tags);
    json_object_set_new(o, "preload", json_boolean(v->preload));
    json_object_set_new(o, "pinned", json_boolean(v->pinned));
    json_object_set_new(o, "aliases", aliases);
    json_object_set_new(o, "alias_weights", weights);
    json_object_set_new(o, "generation", json_integer((json_int_t)v->generation));
    json_object_set_new(o, "residency", jv_str(residency));
    return o;
}

struct move_ref {
    const char *alias;
    const struct mc_reg_move *mv;
};

static int by_generation(const void *a, const void *b)
{
    const struct move_ref *x = a, *y = b;

    return x->mv->generation < y->mv->generation ? -1 : x->mv->generation > y->mv->generation;
}

/* Whether a history text ("1.0.0", "1.0.0=90 2.0.0=10", NULL) names version. */
static bool names_version(const char *text, const char *version)
{
    size_t len = strlen(version);

    for (const char *p = text; p && *p;) {
        size_t n = strcspn(p, " =");

        if (n == len && !memcmp(p, version, len))
            return true;
        p += strcspn(p, " ");
        p += *p == ' ';
    }
    return false;
}

json_t *jv_moves(const struct mc_reg_model *m, const char *alias, const char *version)
{
    struct move_ref *refs;
    size_t n = 0, cap = 0;
    json_t *a = json_array();

    for (size_t i = 0; i < m->naliases; i++)
        cap += m->aliases[i].nhistory;
    refs = calloc(cap ? cap : 1, sizeof(*refs));
    if (!refs)
        return a;
    for (size_t i = 0; i < m->naliases; i++) {
        const struct mc_reg_alias *al = &m->aliases[i];
        if (alias && strcmp(al->alias, alias) != 0)
            continue;
        for (size_t k = 0; k < al->nhistory; k++) {
            const struct mc_reg_move *mv = &al->history[k];
            if (version && !names_version(mv->from, version) && !names_version(mv->to, version))
                continue;
            refs[n].alias = al->alias;
            refs[n++].mv = mv;
        }
    }
    qsort(refs, n, sizeof(*refs), by_generation);
    for (size_t i = 0; i < n; i++) {
        const struct mc_reg_move *mv = refs[i].mv;
        json_t *o = json_pack("{s:s, s:s, s:o, s:o, s:I, s:o, s:i, s:I}", "alias",
                              refs[i].alias, "action", move_action(mv), "from", jv_str(mv->from),
                              "to", jv_str(mv->to), "at_ns", (json_int_t)mv->at_ns, "at",
                              jv_time(mv->at_ns), "uid", (int)mv->uid, "generation",
                              (json_int_t)mv->generation);
        if (mv->why) /* the reason given (--why, a rollout's decision) */
            json_object_set_new(o, "why", json_string(mv->why));
        json_array_append_new(a, o);
    }
    free(refs);
    return a;
}

/* ---- reading members -------------------------------------------------- */

long long jint(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    if (json_is_integer(v))
        return json_integer_value(v);
    return json_is_real(v) ? (long long)json_real_value(v) : 0;
}

const char *jstr(const json_t *o, const char *key)
{
    return jstr_or(o, key, NULL);
}

const char *jstr_or(const json_t *o, const char *key, const char *def)
{
    json_t *v = json_object_get(o, key);

    return json_is_string(v) ? json_string_value(v) : def;
}

double jnum(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return json_is_number(v) ? json_number_value(v) : 0;
}

json_t *jget(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);

    return v ? v : json_null();
}

/* ---- objects shared by several commands and mcache-serve ----------------- */

json_t *jv_aliases(const struct mc_reg_model *m)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < m->naliases; i++) {
        const struct mc_reg_alias *al = &m->aliases[i];
        const struct mc_reg_move *last = al->nhistory ? &al->history[al->nhistory - 1] : NULL;
        json_t *targets = json_array();

        /* target: the heaviest, as before weights; targets: every one with its weight */
        for (size_t j = 0; j < al->ntargets; j++)
            json_array_append_new(targets, json_pack("{s:s, s:i}", "version",
                                                     al->targets[j].version->version, "weight",
                                                     (int)al->targets[j].weight));
        json_array_append_new(arr,
                              json_pack("{s:s, s:o, s:o, s:i, s:o, s:o}", "alias", al->alias,
                                        "target", jv_str(al->target ? al->target->version : NULL),
                                        "targets", targets, "moves", (int)al->nhistory, "moved_ns",
                                        last ? json_integer((json_int_t)last->at_ns) : json_null(),
                                        "moved_at", last ? jv_time(last->at_ns) : json_null()));
    }
    return arr;
}

json_t *jv_removed(const struct mc_reg_version *v)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:o}", "name", v->name, "version", v->version, "size",
                     (json_int_t)v->size, "created_ns", (json_int_t)v->created_ns, "created_at",
                     jv_time(v->created_ns));
}

json_t *jv_deploy(const struct mc_reg_deploy *x)
{
    json_t *steps = json_array(), *h = json_array();

    for (size_t i = 0; i < x->nsteps; i++)
        json_array_append_new(steps, json_integer(x->steps[i]));
    for (size_t i = 0; i < x->health_argc; i++)
        json_array_append_new(h, json_string(x->health_argv[i]));
    return json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:I, s:I, s:f, s:f, s:I, s:o, "
        "s:o, s:o, s:o, s:o, s:i, s:o}",
        "id", (json_int_t)x->id, "name", x->name, "version", x->version, "alias", x->alias,
        "strategy", mc_deploy_strategy_name(x->strategy), "state", mc_deploy_state_name(x->state),
        "steps", steps, "step", (json_int_t)x->step + 1, "weight", (json_int_t)x->steps[x->step],
        "interval_ms", (json_int_t)x->interval_ms, "max_error_rate", x->max_error_rate,
        "max_p99_ratio", x->max_p99_ratio, "min_requests", (json_int_t)x->min_requests, "from",
        jv_str(x->from), "reason", jv_str(x->reason), "started_at", jv_time(x->started_ns),
        "ended_at", x->ended_ns ? jv_time(x->ended_ns) : json_null(), "health", h, "uid",
        (int)x->uid, "step_started_at", jv_time(x->step_started_ns));
}

json_t *jv_snapshot(const struct mc_reg_snapshot *s, bool entries)
{
    json_t *o = json_pack("{s:s, s:I, s:o, s:i, s:I}", "name", s->name, "created_ns",
                          (json_int_t)s->created_ns, "created_at", jv_time(s->created_ns), "uid",
                          (int)s->uid, "aliases", (json_int_t)s->nentries);

    if (o && entries) {
        json_t *list = json_array();

        for (size_t i = 0; i < s->nentries; i++)
            json_array_append_new(list,
                                  json_pack("{s:s, s:s, s:s}", "name", s->entries[i].model, "alias",
                                            s->entries[i].alias, "targets", s->entries[i].targets));
        json_object_set_new(o, "entries", list);
    }
    return o;
}

json_t *jv_alert(const struct mc_reg_alert *x)
{
    return json_pack("{s:I, s:o, s:s, s:s, s:o, s:o, s:s}", "id", (json_int_t)x->id, "at",
                     jv_time(x->at_ns), "kind", x->kind, "model", x->model, "version",
                     jv_str(x->version), "alias", jv_str(x->alias), "message", x->message);
}

/* The JSON is built from a fixed list of keys, so the schema does not change when mcached adds fields. */
static const char *const window_keys[] = {
    "window", "seconds",           "covered_s",  "requests", "errors",
    "units",  "requests_per_s",    "error_rate", "p50_ns",   "p95_ns",
    "p99_ns", "units_per_request", NULL};

json_t *jv_stats_version(const json_t *v)
{
    json_t *out = json_pack("{s:O, s:O, s:O, s:O, s:O}", "name", jget(v, "name"), "version",
                            jget(v, "version"), "split", jget(v, "split"), "index",
                            jget(v, "index"), "loaded_ns", jget(v, "loaded_ns"));
    json_t *wins = json_array(), *w;
    size_t i;

    json_array_foreach(json_object_get(v, "windows"), i, w)
    {
        json_t *o = json_object();
        for (const char *const *k = window_keys; *k; k++)
            json_object_set(o, *k, jget(w, *k));
        json_array_append_new(wins, o);
    }
    json_object_set_new(out, "windows", wins);
    return out;
}

int cli_snapshot_restore(struct mc_registry *r, const char *sname, bool no_gate, json_t **out)
{
    const struct mc_reg_snapshot *s = cli_snapshot_find(r, sname);
    char(*before)[2048] = NULL;
    json_t *moves;
    uint64_t gen = 0;
    size_t n;
    int rc;

    *out = NULL;
    if (s == NULL)
        return mc_err(MC_ENOENT, "there is no snapshot \"%s\" (see `mcache snapshot ls`)", sname);
    if (!no_gate && (rc = cli_snapshot_gate(r, s, sname)))
        return rc;
    /* where each alias is before, to say what moved */
    n = s->nentries;
    before = calloc(n ? n : 1, sizeof(*before));
    if (before == NULL)
        return mc_err(MC_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++)
        cli_alias_targets(r, s->entries[i].model, s->entries[i].alias, before[i], sizeof(before[i]));
    rc = mc_registry_snapshot_restore(r, sname, &gen);
    if (rc) {
        free(before);
        return rc;
    }
    s = cli_snapshot_find(r, sname);
    moves = json_array();
    for (size_t i = 0; s && i < s->nentries && i < n; i++) {
        char now[2048];

        cli_alias_targets(r, s->entries[i].model, s->entries[i].alias, now, sizeof(now));
        if (strcmp(now, before[i]) != 0)
            json_array_append_new(moves,
                                  json_pack("{s:s, s:s, s:o, s:s}", "name", s->entries[i].model,
                                            "alias", s->entries[i].alias, "from",
                                            jv_str(before[i][0] ? before[i] : NULL), "to", now));
    }
    free(before);
    *out = json_pack("{s:s, s:s, s:o, s:I}", "name", sname, "action", "restore", "moves", moves,
                     "generation", (json_int_t)gen);
    return 0;
}

json_t *jv_audit(const struct mc_reg_audit *x)
{
    return json_pack("{s:I, s:o, s:I, s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)x->id, "at",
                     jv_time(x->at_ns), "at_ns", (json_int_t)x->at_ns, "generation",
                     (json_int_t)x->generation, "who", x->who, "from", x->from, "what", x->what,
                     "result", x->result);
}

/* never the hash: it is the store's, to check secrets against */
json_t *jv_token(const struct mc_reg_token *t)
{
    return json_pack("{s:s, s:s, s:o, s:I, s:s}", "name", t->name, "role", t->role, "created_at",
                     jv_time(t->created_ns), "created_ns", (json_int_t)t->created_ns, "created_by",
                     t->created_by);
}
