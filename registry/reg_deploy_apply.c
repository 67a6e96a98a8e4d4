/*
 * reg_deploy_apply.c - what the records of deployments mean to the state:
 * health checks (per model), named snapshots of every alias, deployments
 * (their rollout state) and alerts, as journal records and as snapshot
 * entries, and the snapshot entries written back from the state.
 *
 * As everywhere in reg_apply.c: every field is checked as strictly as the
 * API checks its arguments (deploy_spec_check() is the API's own check),
 * and a record that does not fit the state is damage (MC_ECORRUPT). Ids of
 * deployments and alerts are the generation of the record that made them.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/vec.h"
#include "index/name.h"
#include "registry/reg_int.h"

static const char *const state_names[] = {"running",     "paused",  "succeeded",
                                          "rolled-back", "aborted", "failed"};
static const char *const strategy_names[] = {"direct", "blue-green", "canary"};
static const char *const alert_kinds[] = {"rollback", "health", "threshold"};

const char *mc_deploy_state_name(enum mc_deploy_state s)
{
    return (unsigned)s <= MC_DEPLOY_FAILED ? state_names[s] : "unknown";
}

const char *mc_deploy_strategy_name(enum mc_deploy_strategy s)
{
    return (unsigned)s <= MC_DEPLOY_CANARY ? strategy_names[s] : "unknown";
}

int mc_deploy_strategy_parse(const char *s, enum mc_deploy_strategy *out)
{
    for (int i = 0; i < 3; i++) {
        if (s && strcmp(s, strategy_names[i]) == 0) {
            *out = (enum mc_deploy_strategy)i;
            return 0;
        }
    }
    return mc_err(MC_EINVAL, "strategy \"%s\" is not one of direct, blue-green, canary",
                  s ? s : "");
}

int deploy_state_parse(const char *s, enum mc_deploy_state *out)
{
    for (int i = 0; i <= MC_DEPLOY_FAILED; i++) {
        if (s && strcmp(s, state_names[i]) == 0) {
            *out = (enum mc_deploy_state)i;
            return 0;
        }
    }
    return -1;
}

bool deploy_ended(enum mc_deploy_state s)
{
    return s != MC_DEPLOY_RUNNING && s != MC_DEPLOY_PAUSED;
}

int alert_kind_check(const char *kind, int code)
{
    for (int i = 0; i < 3; i++)
        if (kind && strcmp(kind, alert_kinds[i]) == 0)
            return 0;
    return mc_err(code, "alert kind \"%s\" is not one of rollback, health, threshold",
                  kind ? kind : "");
}

int snap_name_check(const char *s, int code)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 64)
        return mc_err(code, "snapshot name \"%s\" must have 1 to 64 characters", s ? s : "");
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');

        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return mc_err(code,
                          "snapshot name \"%s\" may hold only letters, digits, '.', '_' and '-', "
                          "and starts with a letter or digit",
                          s);
    }
    return 0;
}

int health_check_args(const char *what, const char *const *argv, size_t argc, uint32_t timeout_ms,
                      int code)
{
    if (argc > MC_HEALTH_ARGS_MAX)
        return mc_err(code, "the health check of %s has %zu arguments; at most %d", what, argc,
                      MC_HEALTH_ARGS_MAX);
    if (argc == 0)
        return 0;
    if (argv == NULL || argv[0] == NULL || argv[0][0] == '\0')
        return mc_err(code, "the health check of %s has no command", what);
    for (size_t i = 0; i < argc; i++)
        if (argv[i] == NULL || strlen(argv[i]) > 4096)
            return mc_err(code, "argument %zu of the health check of %s is %s", i, what,
                          argv[i] ? "longer than 4096 bytes" : "missing");
    if (timeout_ms == 0 || timeout_ms > HEALTH_TIMEOUT_MAX_MS)
        return mc_err(code,
                      "the health check of %s has a timeout of %u ms; give one from 1 ms to %u ms "
                      "(1 hour)",
                      what, timeout_ms, HEALTH_TIMEOUT_MAX_MS);
    return 0;
}

int deploy_spec_check(const struct mc_reg_deploy *s, int code)
{
    char what[400];

    if (mc_name_check(s->name) != 0 || mc_alias_check(s->alias) != 0)
        return mc_err(code, "%s", mc_last_error());
    if (s->version == NULL || s->version[0] == '\0')
        return mc_err(code, "a deployment of \"%s\" names no version", s->name);
    snprintf(what, sizeof(what), "the deployment of %s@%s to alias \"%s\"", s->name, s->version,
             s->alias);
    if ((unsigned)s->strategy > MC_DEPLOY_CANARY)
        return mc_err(code, "%s has strategy %d, not one of direct, blue-green, canary", what,
                      (int)s->strategy);
    if (s->nsteps == 0 || s->nsteps > MC_DEPLOY_STEPS_MAX || s->steps == NULL)
        return mc_err(code, "%s has %zu steps; give 1 to %d weights, the last 100 (e.g. 10,50,100)",
                      what, s->nsteps, MC_DEPLOY_STEPS_MAX);
    for (size_t i = 0; i < s->nsteps; i++) {
        if (s->steps[i] < 1 || s->steps[i] > 100)
            return mc_err(code, "%s: step %zu is %u%%; each step is a weight from 1 to 100", what,
                          i + 1, s->steps[i]);
        if (i && s->steps[i] <= s->steps[i - 1])
            return mc_err(code,
                          "%s: the steps must increase strictly (step %zu is %u%%, after %u%%)",
                          what, i + 1, s->steps[i], s->steps[i - 1]);
    }
    if (s->steps[s->nsteps - 1] != 100)
        return mc_err(code, "%s: the last step is %u%%; the steps must end at 100", what,
                      s->steps[s->nsteps - 1]);
    if (s->strategy != MC_DEPLOY_CANARY && s->nsteps != 1)
        return mc_err(code, "%s: a %s deployment has no steps (it moves all traffic at once)", what,
                      mc_deploy_strategy_name(s->strategy));
    if (s->interval_ms == 0 || s->interval_ms > DEPLOY_INTERVAL_MAX_MS)
        return mc_err(code, "%s: the interval is %llu ms; give one from 1 ms to %llu ms (30 days)",
                      what, (unsigned long long)s->interval_ms,
                      (unsigned long long)DEPLOY_INTERVAL_MAX_MS);
    if (!isfinite(s->max_error_rate) || s->max_error_rate < 0 || s->max_error_rate > 1)
        return mc_err(code,
                      "%s: the maximum error rate is %g; give a fraction from 0 to 1 (0.02 = 2%%)",
                      what, s->max_error_rate);
    if (!isfinite(s->max_p99_ratio) || (s->max_p99_ratio != 0 && s->max_p99_ratio < 1))
        return mc_err(code,
                      "%s: the maximum p99 ratio is %g; give 1 or more (1.5 = the new version's "
                      "p99 may be 1.5x the current one's), or 0 not to check it",
                      what, s->max_p99_ratio);
    return health_check_args(what, s->health_argv, s->health_argc, s->health_timeout_ms, code);
}

/* ---- reading records -------------------------------------------------- */

/* An array of strings (argv), pointing into the record, in out[cap]. */
static int str_array(struct rec *r, const struct mc_jval *x, const char *key, const char **out,
                     size_t cap, size_t *n)
{
    *n = 0;
    if (x == NULL || x->type == MC_JNULL)
        return 0;
    if (x->type != MC_JARR || x->n > cap)
        return rec_fail(r, MC_ECORRUPT,
                        "\"%s\" of a \"%s\" record is not a list of at most %zu "
                        "strings",
                        key, r->op, cap);
    for (uint32_t i = 0; i < x->n; i++) {
        if (x->u.a[i].type != MC_JSTR)
            return rec_fail(r, MC_ECORRUPT, "\"%s\" of a \"%s\" record holds a non-string", key,
                            r->op);
        out[i] = x->u.a[i].u.s;
    }
    *n = x->n;
    return 0;
}

static int rec_num(struct rec *r, const char *key, double *out)
{
    const struct mc_jval *x = mc_jval_get(r->j, key);

    if (!mc_jval_is_num(x))
        return rec_fail(r, MC_ECORRUPT, "\"%s\" of a \"%s\" record is not a number", key, r->op);
    *out = mc_jval_num(x);
    return 0;
}

static char **strv_dup(const char *const *v, size_t n)
{
    char **out = calloc(n ? n : 1, sizeof(*out));

    for (size_t i = 0; out && i < n; i++) {
        out[i] = strdup(v[i]);
        if (out[i] == NULL) {
            while (i-- > 0)
                free(out[i]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *d = s ? strdup(s) : NULL;

    if (s && d == NULL)
        *oom = true;
    return d;
}

/* ---- health checks ---------------------------------------------------- */

static int apply_health(struct reg_state *st, struct rec *r, bool snapshot)
{
    const char *name, *argv[MC_HEALTH_ARGS_MAX];
    struct reg_model *m = rec_model(st, r, &name);
    struct reg_health *h;
    uint64_t timeout;
    size_t argc;

    if (m == NULL)
        return r->err;
    if (str_array(r, mc_jval_get(r->j, "argv"), "argv", argv, MC_HEALTH_ARGS_MAX, &argc) ||
        rec_uint(r, "timeout_ms", argc > 0, HEALTH_TIMEOUT_MAX_MS, &timeout))
        return r->err;
    if (health_check_args(name, argv, argc, (uint32_t)timeout, MC_ECORRUPT))
        return r->err = MC_ECORRUPT;
    if (argc == 0) {
        if (snapshot)
            return rec_fail(r, MC_ECORRUPT, "the health entry of \"%s\" has no command", name);
        health_free(m->health);
        m->health = NULL;
        return model_sync_view(m) ? rec_fail(r, MC_ENOMEM, "out of memory") : 0;
    }
    h = calloc(1, sizeof(*h));
    if (h == NULL || (h->argv = strv_dup(argv, argc)) == NULL) {
        free(h);
        return rec_fail(r, MC_ENOMEM, "out of memory");
    }
    h->pub.argv = (const char *const *)h->argv;
    h->pub.argc = argc;
    h->pub.timeout_ms = (uint32_t)timeout;
    health_free(m->health);
    m->health = h;
    return model_sync_view(m) ? rec_fail(r, MC_ENOMEM, "out of memory") : 0;
}

json_t *health_entry(const struct reg_model *m)
{
    json_t *o = json_pack("{s:s,s:s,s:[],s:I}", "op", "health", "name", m->name, "argv",
                          "timeout_ms", (json_int_t)m->health->pub.timeout_ms);
    json_t *argv = o ? json_object_get(o, "argv") : NULL;

    for (size_t i = 0; argv && i < m->health->pub.argc; i++) {
        if (json_array_append_new(argv, json_string(m->health->argv[i]))) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* ---- snapshots of aliases --------------------------------------------- */

struct reg_snap *snap_find(const struct reg_state *st, const char *name, size_t *at)
{
    size_t i = 0;

    for (; i < st->nsnaps; i++) {
        int c = strcmp(st->snaps[i].name, name);

        if (c == 0) {
            if (at)
                *at = i;
            return &st->snaps[i];
        }
        if (c > 0)
            break;
    }
    if (at)
        *at = i;
    return NULL;
}

static void snaps_sync(struct reg_state *st)
{
    for (size_t i = 0; i < st->nsnaps; i++) {
        struct reg_snap *s = &st->snaps[i];

        s->pub.name = s->name;
        s->pub.entries = s->e;
        s->pub.nentries = s->n;
    }
}

static int apply_snap_create(struct reg_state *st, struct rec *r, bool snapshot)
{
    const char *name;
    const struct mc_jval *list = mc_jval_get(r->j, "entries");
    uint64_t t, uid;
    struct reg_snap s = {0};
    size_t at;
    bool oom = false;

    if (rec_str(r, "snapshot", true, &name) || rec_uint(r, "t", true, INT64_MAX, &t) ||
        rec_uint(r, "uid", true, UINT32_MAX, &uid))
        return r->err;
    if (snap_name_check(name, MC_ECORRUPT))
        return r->err = MC_ECORRUPT;
    if (snap_find(st, name, &at))
        return rec_fail(r, MC_ECORRUPT, "snapshot \"%s\" is created twice", name);
    if (list == NULL || list->type != MC_JARR)
        return rec_fail(r, MC_ECORRUPT, "snapshot \"%s\" has no \"entries\" list", name);
    /* check every entry first */
    for (uint32_t i = 0; i < list->n; i++) {
        struct rec re = {.j = &list->u.a[i], .op = r->op};
        const char *model, *alias, *text;
        struct reg_model *m;
        struct tset ts;

        if (re.j->type != MC_JOBJ || rec_str(&re, "name", true, &model) ||
            rec_str(&re, "alias", true, &alias) || rec_str(&re, "targets", true, &text))
            return r->err = re.err ? re.err : rec_fail(r, MC_ECORRUPT, "bad snapshot entry");
        if (mc_alias_check(alias) != 0 || text[0] == '\0')
            return rec_fail(r, MC_ECORRUPT, "snapshot \"%s\" has a bad entry for \"%s\"", name,
                            model);
        /* when it was taken, every target existed; later, some may have gone */
        if (!snapshot && ((m = state_model(st, model)) == NULL ||
                          tset_parse(m, text, &ts, MC_ECORRUPT, "a snapshot entry", NULL, 0)))
            return rec_fail(r, MC_ECORRUPT,
                            "snapshot \"%s\" records alias \"%s\" of \"%s\" at \"%s\", which does "
                            "not exist",
                            name, alias, model, text);
    }
    s.name = strdup(name);
    s.e = calloc(list->n ? list->n : 1, sizeof(*s.e));
    oom = s.name == NULL || s.e == NULL;
    for (uint32_t i = 0; !oom && i < list->n; i++) {
        const struct mc_jval *e = &list->u.a[i];

        s.e[i].model = dup_or_null(mc_jval_get(e, "name")->u.s, &oom);
        s.e[i].alias = dup_or_null(mc_jval_get(e, "alias")->u.s, &oom);
        s.e[i].targets = dup_or_null(mc_jval_get(e, "targets")->u.s, &oom);
        s.n = i + 1;
    }
    if (oom || MC_VEC_RESERVE(st->snaps, st->capsnaps, st->nsnaps + 1, 4)) {
        snap_fini(&s);
        return rec_fail(r, MC_ENOMEM, "out of memory");
    }
    s.pub.created_ns = t;
    s.pub.uid = (uint32_t)uid;
    memmove(&st->snaps[at + 1], &st->snaps[at], (st->nsnaps - at) * sizeof(*st->snaps));
    st->snaps[at] = s;
    st->nsnaps++;
    snaps_sync(st);
    return 0;
}

static int apply_snap_rm(struct reg_state *st, struct rec *r)
{
    const char *name;
    size_t at;
    struct reg_snap *s;

    if (rec_str(r, "snapshot", true, &name))
        return r->err;
    s = snap_find(st, name, &at);
    if (s == NULL)
        return rec_fail(r, MC_ECORRUPT,
                        "a \"%s\" record names snapshot \"%s\", which does not "
                        "exist",
                        r->op, name);
    snap_fini(s);
    memmove(&st->snaps[at], &st->snaps[at + 1], (st->nsnaps - at - 1) * sizeof(*st->snaps));
    st->nsnaps--;
    snaps_sync(st);
    return 0;
}

/* "snap-restore": the moves it names, all checked before any is made. */
static int apply_snap_restore(struct reg_state *st, struct rec *r, uint64_t gen)
{
    const char *name;
    const struct mc_jval *list = mc_jval_get(r->j, "moves");
    uint64_t t, uid;
    char why[128];

    if (rec_str(r, "snapshot", true, &name) || rec_uint(r, "t", true, INT64_MAX, &t) ||
        rec_uint(r, "uid", true, UINT32_MAX, &uid))
        return r->err;
    if (snap_find(st, name, NULL) == NULL)
        return rec_fail(r, MC_ECORRUPT,
                        "a \"%s\" record names snapshot \"%s\", which does not "
                        "exist",
                        r->op, name);
    if (list == NULL || list->type != MC_JARR)
        return rec_fail(r, MC_ECORRUPT, "a \"%s\" record has no \"moves\" list", r->op);
    for (uint32_t i = 0; i < list->n; i++) {
        struct rec re = {.j = &list->u.a[i], .op = r->op};
        const char *model, *alias, *from, *to;
        char cur[TSET_TEXT_MAX];
        struct reg_model *m;
        struct reg_alias *a;
        struct tset ts;

        if (re.j->type != MC_JOBJ || (m = rec_model(st, &re, &model)) == NULL ||
            rec_str(&re, "alias", true, &alias) || rec_str(&re, "from", false, &from) ||
            rec_str(&re, "to", true, &to))
            return r->err = re.err ? re.err : rec_fail(r, MC_ECORRUPT, "bad restore move");
        if (mc_alias_check(alias) != 0)
            return r->err = MC_ECORRUPT;
        if (tset_parse(m, to, &ts, MC_ECORRUPT, "a restored target", NULL, 0) || ts.n == 0)
            return r->err = MC_ECORRUPT;
        a = model_alias(m, alias);
        cur[0] = '\0';
        if (a) {
            struct tset now;

            alias_tset(a, &now);
            tset_format(&now, cur, sizeof(cur));
        }
        if ((from == NULL) != (cur[0] == '\0') || (from && strcmp(from, cur) != 0))
            return rec_fail(r, MC_ECORRUPT,
                            "restoring snapshot \"%s\" moves alias \"%s\" of \"%s\" from \"%s\" "
                            "but it points at \"%s\"",
                            name, alias, model, from ? from : "(nothing)",
                            cur[0] ? cur : "(nothing)");
        for (uint32_t k = 0; k < i; k++) {
            const struct mc_jval *p = &list->u.a[k];

            if (!strcmp(mc_jval_get(p, "name")->u.s, model) &&
                !strcmp(mc_jval_get(p, "alias")->u.s, alias))
                return rec_fail(r, MC_ECORRUPT,
                                "restoring snapshot \"%s\" moves alias \"%s\" of \"%s\" twice",
                                name, alias, model);
        }
    }
    snprintf(why, sizeof(why), "snapshot restore %s", name);
    for (uint32_t i = 0; i < list->n; i++) {
        struct rec re = {.j = &list->u.a[i], .op = r->op};
        const char *model, *alias, *from, *to;
        struct reg_model *m = rec_model(st, &re, &model);
        int rc;

        rec_str(&re, "alias", true, &alias);
        rec_str(&re, "from", false, &from);
        rec_str(&re, "to", true, &to);
        rc = alias_apply_move(st, &re, m, alias, from, to, t, uid, gen, false, why);
        if (rc)
            return r->err = rc;
    }
    return 0;
}

static json_t *snap_entry(const struct reg_snap *s)
{
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:[]}", "op", "snap", "snapshot", s->name, "t",
                          (json_int_t)s->pub.created_ns, "uid", (json_int_t)s->pub.uid, "entries");
    json_t *list = o ? json_object_get(o, "entries") : NULL;

    for (size_t i = 0; list && i < s->n; i++) {
        if (json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "name", s->e[i].model, "alias",
                                                  s->e[i].alias, "targets", s->e[i].targets))) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* ---- deployments ------------------------------------------------------ */

struct reg_deploy *deploy_find(const struct reg_state *st, uint64_t id)
{
    for (size_t i = 0; i < st->ndeploys; i++)
        if (st->deploys[i].pub.id == id)
            return &st->deploys[i];
    return NULL;
}

const struct reg_deploy *deploy_active(const struct reg_state *st, const char *name,
                                       const char *alias)
{
    for (size_t i = 0; i < st->ndeploys; i++) {
        const struct mc_reg_deploy *d = &st->deploys[i].pub;

        if (!deploy_ended(d->state) && !strcmp(d->name, name) && !strcmp(d->alias, alias))
            return &st->deploys[i];
    }
    return NULL;
}

/* Keep the newest REG_DEPLOYS_ENDED_KEPT ended deployments. */
static void deploys_prune(struct reg_state *st)
{
    size_t ended = 0;

    for (size_t i = 0; i < st->ndeploys; i++)
        ended += deploy_ended(st->deploys[i].pub.state);
    for (size_t i = 0; ended > REG_DEPLOYS_ENDED_KEPT && i < st->ndeploys;) {
        if (deploy_ended(st->deploys[i].pub.state)) {
            deploy_fini(&st->deploys[i]);
            memmove(&st->deploys[i], &st->deploys[i + 1],
                    (st->ndeploys - i - 1) * sizeof(*st->deploys));
            st->ndeploys--;
            ended--;
        } else {
            i++;
        }
    }
}

/* Read a deployment's spec from r (strings point into it); checked. */
static int deploy_read(struct rec *r, struct mc_reg_deploy *d, uint32_t *steps, const char **argv)
{
    const struct mc_jval *x = mc_jval_get(r->j, "steps"), *h = mc_jval_get(r->j, "health");
    const char *strategy;
    uint64_t timeout = 0;

    memset(d, 0, sizeof(*d));
    if (rec_str(r, "name", true, &d->name) || rec_str(r, "version", true, &d->version) ||
        rec_str(r, "alias", true, &d->alias) || rec_str(r, "strategy", true, &strategy) ||
        rec_uint(r, "interval_ms", true, UINT64_MAX >> 1, &d->interval_ms) ||
        rec_num(r, "max_error_rate", &d->max_error_rate) ||
        rec_num(r, "max_p99_ratio", &d->max_p99_ratio) ||
        rec_uint(r, "min_requests", true, INT64_MAX, &d->min_requests) ||
        rec_str(r, "from", false, &d->from))
        return r->err;
    if (mc_deploy_strategy_parse(strategy, &d->strategy))
        return r->err = mc_err(MC_ECORRUPT, "%s", mc_last_error());
    if (x == NULL || x->type != MC_JARR || x->n == 0 || x->n > MC_DEPLOY_STEPS_MAX)
        return rec_fail(r, MC_ECORRUPT, "a \"%s\" record has no \"steps\" list", r->op);
    for (uint32_t i = 0; i < x->n; i++) {
        if (x->u.a[i].type != MC_JINT || x->u.a[i].u.i < 0 || x->u.a[i].u.i > 100)
            return rec_fail(r, MC_ECORRUPT, "a step of a \"%s\" record is not 0 to 100", r->op);
        steps[i] = (uint32_t)x->u.a[i].u.i;
    }
    d->steps = steps;
    d->nsteps = x->n;
    if (h && h->type != MC_JNULL) {
        struct rec rh = {.j = h, .op = r->op};

        if (h->type != MC_JOBJ ||
            str_array(&rh, mc_jval_get(h, "argv"), "argv", argv, MC_HEALTH_ARGS_MAX,
                      &d->health_argc) ||
            rec_uint(&rh, "timeout_ms", d->health_argc > 0, HEALTH_TIMEOUT_MAX_MS, &timeout))
            return r->err = rh.err ? rh.err : rec_fail(r, MC_ECORRUPT, "bad \"health\"");
        d->health_argv = argv;
        d->health_timeout_ms = (uint32_t)timeout;
    }
    if (deploy_spec_check(d, MC_ECORRUPT))
        return r->err = MC_ECORRUPT;
    return 0;
}

/* A copy of d that owns its strings; false: out of memory (out is then empty). */
static bool deploy_copy(const struct mc_reg_deploy *d, struct reg_deploy *out)
{
    struct mc_reg_deploy *p = &out->pub;
    bool oom = false;
    uint32_t *steps = malloc(d->nsteps * sizeof(*steps));

    *p = *d;
    p->name = dup_or_null(d->name, &oom);
    p->version = dup_or_null(d->version, &oom);
    p->alias = dup_or_null(d->alias, &oom);
    p->from = dup_or_null(d->from, &oom);
    p->reason = dup_or_null(d->reason, &oom);
    p->steps = steps;
    p->health_argv = NULL;
    if (steps)
        memcpy(steps, d->steps, d->nsteps * sizeof(*steps));
    if (d->health_argc) {
        p->health_argv = (const char *const *)strv_dup(d->health_argv, d->health_argc);
        oom |= p->health_argv == NULL;
    }
    if (oom || steps == NULL) {
        if (p->health_argv == NULL)
            p->health_argc = 0;
        deploy_fini(out);
        return false;
    }
    return true;
}

static int deploy_add(struct reg_state *st, struct rec *r, const struct mc_reg_deploy *d)
{
    struct reg_deploy nd;
    size_t at = st->ndeploys;

    if (MC_VEC_RESERVE(st->deploys, st->capdeploys, st->ndeploys + 1, 8) || !deploy_copy(d, &nd))
        return rec_fail(r, MC_ENOMEM, "out of memory");
    /* oldest (lowest id) first */
    while (at > 0 && st->deploys[at - 1].pub.id > d->id)
        at--;
    memmove(&st->deploys[at + 1], &st->deploys[at], (st->ndeploys - at) * sizeof(*st->deploys));
    st->deploys[at] = nd;
    st->ndeploys++;
    deploys_prune(st);
    return 0;
}

static int apply_deploy(struct reg_state *st, struct rec *r, bool snapshot, uint64_t gen)
{
    struct mc_reg_deploy d;
    uint32_t steps[MC_DEPLOY_STEPS_MAX];
    const char *argv[MC_HEALTH_ARGS_MAX];
    uint64_t t, uid;

    if (deploy_read(r, &d, steps, argv) || rec_uint(r, "t", true, INT64_MAX, &t) ||
        rec_uint(r, "uid", true, UINT32_MAX, &uid))
        return r->err;
    d.uid = (uint32_t)uid;
    if (snapshot) {
        const char *state;
        uint64_t step;

        if (rec_uint(r, "id", true, INT64_MAX, &d.id) || rec_str(r, "state", true, &state) ||
            rec_uint(r, "step", true, MC_DEPLOY_STEPS_MAX - 1, &step) ||
            rec_uint(r, "step_started_ns", true, INT64_MAX, &d.step_started_ns) ||
            rec_uint(r, "ended_ns", false, INT64_MAX, &d.ended_ns) ||
            rec_str(r, "reason", false, &d.reason))
            return r->err;
        if (deploy_state_parse(state, &d.state) || step >= d.nsteps)
            return rec_fail(r, MC_ECORRUPT, "deployment %llu has state \"%s\" at step %llu",
                            (unsigned long long)d.id, state, (unsigned long long)step);
        if (deploy_find(st, d.id))
            return rec_fail(r, MC_ECORRUPT, "deployment %llu appears twice",
                            (unsigned long long)d.id);
        d.step = (size_t)step;
        d.started_ns = t;
    } else {
        struct reg_model *m = state_model(st, d.name);
        struct reg_alias *a = m ? model_alias(m, d.alias) : NULL;
        char cur[TSET_TEXT_MAX] = "";

        if (m == NULL || ver_exact(m, d.version) == NULL)
            return rec_fail(r, MC_ECORRUPT, "a \"deploy\" record names %s@%s, which does not exist",
                            d.name, d.version);
        if (deploy_active(st, d.name, d.alias))
            return rec_fail(r, MC_ECORRUPT,
                            "a \"deploy\" record begins a second deployment to alias \"%s\" of "
                            "\"%s\"",
                            d.alias, d.name);
        if (a && a->ntg) {
            struct tset now;

            alias_tset(a, &now);
            tset_format(&now, cur, sizeof(cur));
        }
        if ((d.from == NULL) != (cur[0] == '\0') || (d.from && strcmp(d.from, cur)))
            return rec_fail(r, MC_ECORRUPT,
                            "a \"deploy\" record says alias \"%s\" of \"%s\" was at \"%s\"; it is "
                            "at \"%s\"",
                            d.alias, d.name, d.from ? d.from : "(nothing)",
                            cur[0] ? cur : "(nothing)");
        d.id = gen;
        d.state = MC_DEPLOY_RUNNING;
        d.step = 0;
        d.started_ns = d.step_started_ns = t;
        d.reason = NULL;
    }
    return deploy_add(st, r, &d);
}

static int apply_deploy_update(struct reg_state *st, struct rec *r, uint64_t gen)
{
    const char *state, *reason, *from = NULL, *to = NULL;
    const struct mc_jval *mv = mc_jval_get(r->j, "move");
    uint64_t id, step, started, t, uid;
    enum mc_deploy_state s;
    struct reg_deploy *d;
    char *why = NULL;

    if (rec_uint(r, "id", true, INT64_MAX, &id) || rec_str(r, "state", true, &state) ||
        rec_uint(r, "step", true, MC_DEPLOY_STEPS_MAX - 1, &step) ||
        rec_uint(r, "step_started_ns", true, INT64_MAX, &started) ||
        rec_str(r, "reason", false, &reason) || rec_uint(r, "t", true, INT64_MAX, &t) ||
        rec_uint(r, "uid", true, UINT32_MAX, &uid))
        return r->err;
    d = deploy_find(st, id);
    if (d == NULL)
        return rec_fail(r, MC_ECORRUPT,
                        "a \"%s\" record names deployment %llu, which does not "
                        "exist",
                        r->op, (unsigned long long)id);
    if (deploy_state_parse(state, &s) || step >= d->pub.nsteps)
        return rec_fail(r, MC_ECORRUPT, "a \"%s\" record sets state \"%s\" at step %llu", r->op,
                        state, (unsigned long long)step);
    if (deploy_ended(d->pub.state))
        return rec_fail(r, MC_ECORRUPT, "a \"%s\" record changes deployment %llu, which has ended",
                        r->op, (unsigned long long)id);
    if (reason && (why = strdup(reason)) == NULL)
        return rec_fail(r, MC_ENOMEM, "out of memory");
    if (mv && mv->type != MC_JNULL) {
        struct rec rm = {.j = mv, .op = r->op};
        struct reg_model *m = state_model(st, d->pub.name);
        int rc;

        if (mv->type != MC_JOBJ || rec_str(&rm, "from", false, &from) ||
            rec_str(&rm, "to", true, &to)) {
            free(why);
            return r->err = rm.err ? rm.err : rec_fail(r, MC_ECORRUPT, "bad \"move\"");
        }
        if (m == NULL) {
            free(why);
            return rec_fail(r, MC_ECORRUPT,
                            "deployment %llu moves alias \"%s\" of \"%s\", which "
                            "does not exist",
                            (unsigned long long)id, d->pub.alias, d->pub.name);
        }
        rc = alias_apply_move(st, r, m, d->pub.alias, from, to, t, uid, gen, false, reason);
        if (rc) {
            free(why);
            return rc;
        }
    }
    free((char *)d->pub.reason);
    d->pub.reason = why;
    d->pub.state = s;
    d->pub.step = (size_t)step;
    d->pub.step_started_ns = started;
    if (deploy_ended(s)) {
        d->pub.ended_ns = t;
        deploys_prune(st);
    }
    return 0;
}

static json_t *deploy_entry(const struct mc_reg_deploy *d)
{
    json_t *o = json_object(), *steps = json_array(), *h = NULL;
    int rc = o == NULL || steps == NULL;

    for (size_t i = 0; !rc && i < d->nsteps; i++)
        rc |= json_array_append_new(steps, json_integer(d->steps[i]));
    if (!rc && d->health_argc) {
        json_t *argv = json_array();

        h = json_pack("{s:o,s:I}", "argv", argv, "timeout_ms", (json_int_t)d->health_timeout_ms);
        for (size_t i = 0; h && i < d->health_argc; i++)
            rc |= json_array_append_new(argv, json_string(d->health_argv[i]));
        rc |= h == NULL;
    }
    if (!rc)
        rc =
            json_object_set_new(o, "op", json_string("deploy")) ||
            json_object_set_new(o, "id", json_integer((json_int_t)d->id)) ||
            json_object_set_new(o, "name", json_string(d->name)) ||
            json_object_set_new(o, "version", json_string(d->version)) ||
            json_object_set_new(o, "alias", json_string(d->alias)) ||
            json_object_set_new(o, "strategy", json_string(mc_deploy_strategy_name(d->strategy))) ||
            json_object_set(o, "steps", steps) ||
            json_object_set_new(o, "interval_ms", json_integer((json_int_t)d->interval_ms)) ||
            json_object_set_new(o, "max_error_rate", json_real(d->max_error_rate)) ||
            json_object_set_new(o, "max_p99_ratio", json_real(d->max_p99_ratio)) ||
            json_object_set_new(o, "min_requests", json_integer((json_int_t)d->min_requests)) ||
            (h && json_object_set(o, "health", h)) ||
            json_object_set_new(o, "from", d->from ? json_string(d->from) : json_null()) ||
            json_object_set_new(o, "step", json_integer((json_int_t)d->step)) ||
            json_object_set_new(o, "state", json_string(mc_deploy_state_name(d->state))) ||
            json_object_set_new(o, "step_started_ns",
                                json_integer((json_int_t)d->step_started_ns)) ||
            json_object_set_new(o, "t", json_integer((json_int_t)d->started_ns)) ||
            json_object_set_new(o, "ended_ns", json_integer((json_int_t)d->ended_ns)) ||
            json_object_set_new(o, "uid", json_integer(d->uid)) ||
            (d->reason && json_object_set_new(o, "reason", json_string(d->reason)));
    json_decref(steps);
    json_decref(h);
    if (rc) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- alerts ----------------------------------------------------------- */

static int apply_alert(struct reg_state *st, struct rec *r, bool snapshot, uint64_t gen)
{
    const char *kind, *model, *version, *alias, *message;
    struct mc_reg_alert a = {0}, *slot;
    uint64_t t, id = gen;
    bool oom = false;

    if (rec_str(r, "kind", true, &kind) || rec_str(r, "model", false, &model) ||
        rec_str(r, "version", false, &version) || rec_str(r, "alias", false, &alias) ||
        rec_str(r, "message", true, &message) || rec_uint(r, "t", true, INT64_MAX, &t) ||
        (snapshot && rec_uint(r, "id", true, INT64_MAX, &id)))
        return r->err;
    if (alert_kind_check(kind, MC_ECORRUPT))
        return r->err = MC_ECORRUPT;
    if (strlen(message) > ALERT_MESSAGE_MAX)
        return rec_fail(r, MC_ECORRUPT, "an alert's message is longer than %d bytes",
                        ALERT_MESSAGE_MAX);
    a.id = id;
    a.at_ns = t;
    a.kind = dup_or_null(kind, &oom);
    a.model = dup_or_null(model, &oom);
    a.version = dup_or_null(version, &oom);
    a.alias = dup_or_null(alias, &oom);
    a.message = dup_or_null(message, &oom);
    if (oom) {
        alert_fini(&a);
        return rec_fail(r, MC_ENOMEM, "out of memory");
    }
    if (st->nalerts == MC_REG_ALERTS_MAX) {
        /* the oldest goes */
        alert_fini(&st->alerts[st->alert_head]);
        st->alert_head = (st->alert_head + 1) % MC_REG_ALERTS_MAX;
        st->nalerts--;
    }
    slot = &st->alerts[(st->alert_head + st->nalerts) % MC_REG_ALERTS_MAX];
    *slot = a;
    st->nalerts++;
    return 0;
}

static json_t *alert_entry(const struct mc_reg_alert *a)
{
    json_t *o = json_pack("{s:s,s:I,s:s,s:s,s:I}", "op", "alert", "id", (json_int_t)a->id, "kind",
                          a->kind, "message", a->message, "t", (json_int_t)a->at_ns);

    if (o && ((a->model && json_object_set_new(o, "model", json_string(a->model))) ||
              (a->version && json_object_set_new(o, "version", json_string(a->version))) ||
              (a->alias && json_object_set_new(o, "alias", json_string(a->alias))))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- dispatch and emit ------------------------------------------------ */

int apply_deploy_record(struct reg_state *st, struct rec *r, bool snapshot, uint64_t gen)
{
    const char *op = r->op;

    if (!strcmp(op, "health"))
        return apply_health(st, r, snapshot);
    if (!strcmp(op, "deploy"))
        return apply_deploy(st, r, snapshot, gen);
    if (!strcmp(op, "alert"))
        return apply_alert(st, r, snapshot, gen);
    if (snapshot && !strcmp(op, "snap"))
        return apply_snap_create(st, r, true);
    if (snapshot)
        return 1;
    if (!strcmp(op, "snap-create"))
        return apply_snap_create(st, r, false);
    if (!strcmp(op, "snap-restore"))
        return apply_snap_restore(st, r, gen);
    if (!strcmp(op, "snap-rm"))
        return apply_snap_rm(st, r);
    if (!strcmp(op, "deploy-update"))
        return apply_deploy_update(st, r, gen);
    return 1;
}

int state_emit_deploys(struct reg_state *st, mc_reg_put_fn put, void *ctx)
{
    int rc;

    for (size_t i = 0; i < st->nsnaps; i++)
        if ((rc = put(ctx, snap_entry(&st->snaps[i]))))
            return rc;
    for (size_t i = 0; i < st->ndeploys; i++)
        if ((rc = put(ctx, deploy_entry(&st->deploys[i].pub))))
            return rc;
    for (size_t i = 0; i < st->nalerts; i++)
        if ((rc = put(ctx, alert_entry(&st->alerts[(st->alert_head + i) % MC_REG_ALERTS_MAX]))))
            return rc;
    return 0;
}
