/*
 * reg_deploy.c - the mutations of deployments: health checks per model,
 * named snapshots of every alias (create, restore all or none, remove),
 * deployments' rollout state (begin, update with its alias move in the same
 * record) and alerts; and reading them.
 *
 * The shape of reg_ops.c: check the input, reg_write_begin() (lock, catch
 * up), check against the state, one record, reg_commit(), reg_write_end().
 * What the records mean is reg_deploy_apply.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "index/name.h"
#include "registry/reg_int.h"

static int oom(void)
{
    return mc_err(MC_ENOMEM, "out of memory building a manifest record");
}

static int readonly(const struct mc_registry *r)
{
    if (r->flags & MC_REGISTRY_READONLY)
        return mc_err(MC_EPERM, "%s was opened read-only; nothing was changed", r->dir);
    return 0;
}

/* Commit rec (taking it) and end the write. */
static int commit_end(struct mc_registry *r, json_t *rec, uint64_t *gen)
{
    int rc = rec ? reg_commit(r, rec, gen) : oom();

    json_decref(rec);
    return reg_write_end(r, rc);
}

static json_t *argv_json(const char *const *argv, size_t argc)
{
    json_t *a = json_array();

    for (size_t i = 0; a && i < argc; i++) {
        json_t *s = json_string(argv[i]);

        if (s == NULL || json_array_append_new(a, s)) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* ---- health checks ---------------------------------------------------- */

int mc_registry_health_set(struct mc_registry *r, const char *name, const char *const *argv,
                           size_t argc, uint32_t timeout_ms, uint64_t *gen)
{
    char what[128];
    struct reg_model *m;
    json_t *rec, *a;
    int rc;

    reg_intent(r, "health%s %s", argc ? "" : " rm", name ? name : "");
    rc = readonly(r);
    if (rc)
        return rc;
    if (mc_name_check(name) != 0)
        return MC_EINVAL;
    snprintf(what, sizeof(what), "\"%s\"", name);
    rc = health_check_args(what, argv, argc, timeout_ms, MC_EINVAL);
    if (rc)
        return rc;
    a = argv_json(argv, argc);
    if (a == NULL)
        return mc_err(MC_EINVAL, "the health command of \"%s\" is not UTF-8 text", name);
    rc = reg_write_begin(r);
    if (rc) {
        json_decref(a);
        return rc;
    }
    m = reg_need_model(r, name);
    if (m == NULL) {
        json_decref(a);
        return reg_write_end(r, MC_ENOENT);
    }
    if (argc == 0 && m->health == NULL) {
        json_decref(a);
        if (gen)
            *gen = mc_registry_generation(r);
        return reg_write_end(r, 0);
    }
    rec = version_record(r->uid, "health", name, NULL);
    if (rec && (json_object_set_new(rec, "argv", a) ||
                (argc && json_object_set_new(rec, "timeout_ms", json_integer(timeout_ms))))) {
        json_decref(rec);
        rec = NULL;
    } else if (rec == NULL) {
        json_decref(a);
    }
    return commit_end(r, rec, gen);
}

/* ---- snapshots of aliases --------------------------------------------- */

int mc_registry_snapshot_create(struct mc_registry *r, const char *sname, uint64_t *gen)
{
    json_t *rec, *list;
    int rc;

    reg_intent(r, "snapshot create %s", sname ? sname : "");
    rc = readonly(r);
    if (rc == 0)
        rc = snap_name_check(sname, MC_EINVAL);
    if (rc == 0)
        rc = reg_write_begin(r);
    if (rc)
        return rc;
    if (snap_find(r->st, sname, NULL))
        return reg_write_end(r, mc_err(MC_EEXIST,
                                       "snapshot \"%s\" exists; remove it first or pick another "
                                       "name",
                                       sname));
    rec = rec_new("snap-create", r->uid);
    list = json_array();
    if (rec == NULL || list == NULL || json_object_set_new(rec, "snapshot", json_string(sname)) ||
        json_object_set(rec, "entries", list)) {
        json_decref(list);
        json_decref(rec);
        return reg_write_end(r, oom());
    }
    state_sort(r->st);
    for (size_t i = 0; rc == 0 && i < r->st->count; i++) {
        const struct reg_model *m = r->st->sorted[i];

        for (size_t k = 0; rc == 0 && k < m->naliases; k++) {
            char text[TSET_TEXT_MAX];

            if (m->aliases[k].ntg == 0)
                continue; /* removed: not recorded */
            alias_text(&m->aliases[k], text, sizeof(text));
            if (json_array_append_new(list, json_pack("{s:s,s:s,s:s}", "name", m->name, "alias",
                                                      m->aliases[k].alias, "targets", text)))
                rc = oom();
        }
    }
    json_decref(list);
    if (rc) {
        json_decref(rec);
        return reg_write_end(r, rc);
    }
    return commit_end(r, rec, gen);
}

int mc_registry_snapshot_restore(struct mc_registry *r, const char *sname, uint64_t *gen)
{
    const struct reg_snap *s;
    json_t *rec, *moves;
    size_t n = 0;
    int rc;

    reg_intent(r, "snapshot restore %s", sname ? sname : "");
    rc = readonly(r);
    if (rc == 0)
        rc = snap_name_check(sname, MC_EINVAL);
    if (rc == 0)
        rc = reg_write_begin(r);
    if (rc)
        return rc;
    s = snap_find(r->st, sname, NULL);
    if (s == NULL)
        return reg_write_end(r, mc_err(MC_ENOENT, "there is no snapshot \"%s\"", sname));
    rec = rec_new("snap-restore", r->uid);
    moves = json_array();
    if (rec == NULL || moves == NULL || json_object_set_new(rec, "snapshot", json_string(sname)) ||
        json_object_set(rec, "moves", moves)) {
        json_decref(moves);
        json_decref(rec);
        return reg_write_end(r, oom());
    }
    /* every entry checked before anything is written: all or none */
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        const struct mc_reg_snap_entry *e = &s->e[i];
        struct reg_model *m = state_model(r->st, e->model);
        char cur[TSET_TEXT_MAX], missing[300];
        struct tset ts;

        if (m == NULL) {
            rc = mc_err(MC_ENOENT,
                        "snapshot \"%s\" sets alias \"%s\" of \"%s\", which no longer exists; "
                        "nothing was restored",
                        sname, e->alias, e->model);
            break;
        }
        if (tset_parse(m, e->targets, &ts, MC_EINVAL, "the snapshot's target", missing,
                       sizeof(missing))) {
            rc = mc_err(MC_ENOENT,
                        "snapshot \"%s\" sets alias \"%s\" of \"%s\" to %s, but %s@%s has been "
                        "removed; nothing was restored",
                        sname, e->alias, e->model, e->targets, e->model,
                        missing[0] ? missing : e->targets);
            break;
        }
        for (size_t k = 0; rc == 0 && k < ts.n; k++)
            if (ts.v[k]->v.status != MC_STATUS_READY)
                rc = mc_err(MC_EBUSY,
                            "snapshot \"%s\" sets alias \"%s\" of \"%s\" to %s, but %s@%s is %s "
                            "(an alias points only at ready versions); nothing was restored",
                            sname, e->alias, e->model, e->targets, e->model, ts.v[k]->v.version,
                            mc_reg_status_name(ts.v[k]->v.status));
        if (rc)
            break;
        alias_text(model_alias(m, e->alias), cur, sizeof(cur));
        if (strcmp(cur, e->targets) == 0)
            continue;
        if (json_array_append_new(
                moves, json_pack("{s:s,s:s,s:o,s:s}", "name", e->model, "alias", e->alias, "from",
                                 cur[0] ? json_string(cur) : json_null(), "to", e->targets)))
            rc = oom();
        n++;
    }
    json_decref(moves);
    if (rc == 0 && n == 0) {
        json_decref(rec);
        if (gen)
            *gen = mc_registry_generation(r); /* everything is where it was: nothing to record */
        return reg_write_end(r, 0);
    }
    if (rc) {
        json_decref(rec);
        return reg_write_end(r, rc);
    }
    return commit_end(r, rec, gen);
}

int mc_registry_snapshot_remove(struct mc_registry *r, const char *sname, uint64_t *gen)
{
    json_t *rec;
    int rc;

    reg_intent(r, "snapshot rm %s", sname ? sname : "");
    rc = readonly(r);
    if (rc == 0)
        rc = snap_name_check(sname, MC_EINVAL);
    if (rc == 0)
        rc = reg_write_begin(r);
    if (rc)
        return rc;
    if (snap_find(r->st, sname, NULL) == NULL)
        return reg_write_end(r, mc_err(MC_ENOENT, "there is no snapshot \"%s\"", sname));
    rec = rec_new("snap-rm", r->uid);
    if (rec && json_object_set_new(rec, "snapshot", json_string(sname))) {
        json_decref(rec);
        rec = NULL;
    }
    return commit_end(r, rec, gen);
}

size_t mc_registry_snapshot_count(const struct mc_registry *r)
{
    return r->st->nsnaps;
}

const struct mc_reg_snapshot *mc_registry_snapshot_at(const struct mc_registry *r, size_t i)
{
    return i < r->st->nsnaps ? &r->st->snaps[i].pub : NULL;
}

/* ---- deployments ------------------------------------------------------ */

static const uint32_t one_step[1] = {100};
static const uint32_t canary_steps[3] = {10, 50, 100};

int mc_registry_deploy_begin(struct mc_registry *r, const struct mc_reg_deploy *spec, uint64_t *id,
                             uint64_t *gen)
{
    struct mc_reg_deploy d;
    const struct mc_reg_version *v;
    struct reg_model *m;
    struct reg_alias *a;
    char from[TSET_TEXT_MAX];
    json_t *rec, *steps, *h = NULL;
    int rc;

    reg_intent(r, "deploy %s@%s to %s (%s)", spec->name ? spec->name : "",
               spec->version ? spec->version : "", spec->alias ? spec->alias : "",
               mc_deploy_strategy_name(spec->strategy));
    rc = readonly(r);
    if (rc)
        return rc;
    d = *spec;
    /* direct and blue-green move all traffic in one step; a canary defaults to 10,50,100 */
    if (d.nsteps == 0 && d.steps == NULL) {
        d.steps = d.strategy == MC_DEPLOY_CANARY ? canary_steps : one_step;
        d.nsteps = d.strategy == MC_DEPLOY_CANARY ? 3 : 1;
    }
    rc = deploy_spec_check(&d, MC_EINVAL);
    if (rc)
        return rc;
    rc = alias_begin(r, d.name, d.alias, &m, &a);
    if (rc)
        return rc;
    rc = mc_registry_resolve(r, d.name, d.version, &v);
    if (rc == 0)
        rc = need_ready(v, d.alias);
    if (rc)
        return reg_write_end(r, rc);
    alias_text(a, from, sizeof(from));
    if (from[0] == '\0' && d.strategy == MC_DEPLOY_CANARY)
        return reg_write_end(
            r, mc_err(MC_ENOENT,
                      "model \"%s\" has no alias \"%s\" for a canary to split; create it first "
                      "(mcache alias %s %s VERSION) or deploy with strategy direct or blue-green",
                      d.name, d.alias, d.name, d.alias));
    if (strcmp(from, v->version) == 0)
        return reg_write_end(r, mc_err(MC_EINVAL,
                                       "alias \"%s\" of \"%s\" already points at %s; nothing to "
                                       "deploy",
                                       d.alias, d.name, v->version));
    {
        const struct reg_deploy *o = deploy_active(r->st, d.name, d.alias);

        if (o)
            return reg_write_end(
                r, mc_err(MC_EBUSY,
                          "deployment %llu of %s@%s to alias \"%s\" is %s; pause, resume or abort "
                          "it before starting another",
                          (unsigned long long)o->pub.id, o->pub.name, o->pub.version, d.alias,
                          mc_deploy_state_name(o->pub.state)));
    }
    rec = version_record(r->uid, "deploy", d.name, v->version);
    steps = json_array();
    for (size_t i = 0; steps && i < d.nsteps; i++)
        if (json_array_append_new(steps, json_integer(d.steps[i]))) {
            json_decref(steps);
            steps = NULL;
        }
    if (d.health_argc) {
        json_t *argv = argv_json(d.health_argv, d.health_argc);

        h = argv ? json_pack("{s:o,s:I}", "argv", argv, "timeout_ms",
                             (json_int_t)d.health_timeout_ms)
                 : NULL;
        if (h == NULL) {
            json_decref(steps);
            json_decref(rec);
            return reg_write_end(r, mc_err(MC_EINVAL, "the health command of the deployment is "
                                                      "not UTF-8 text"));
        }
    }
    if (rec == NULL || steps == NULL) {
        json_decref(steps);
        json_decref(h);
        json_decref(rec);
        return reg_write_end(r, oom());
    }
    if (json_object_set_new(rec, "alias", json_string(d.alias)) ||
        json_object_set_new(rec, "strategy", json_string(mc_deploy_strategy_name(d.strategy))) ||
        json_object_set_new(rec, "steps", steps) ||
        json_object_set_new(rec, "interval_ms", json_integer((json_int_t)d.interval_ms)) ||
        json_object_set_new(rec, "max_error_rate", json_real(d.max_error_rate)) ||
        json_object_set_new(rec, "max_p99_ratio", json_real(d.max_p99_ratio)) ||
        json_object_set_new(rec, "min_requests", json_integer((json_int_t)d.min_requests)) ||
        (h && json_object_set_new(rec, "health", h)) ||
        json_object_set_new(rec, "from", from[0] ? json_string(from) : json_null())) {
        json_decref(rec);
        return reg_write_end(r, oom());
    }
    rc = reg_commit(r, rec, gen);
    json_decref(rec);
    if (rc == 0 && id)
        *id = mc_registry_generation(r); /* a deployment's id is its record's generation */
    return reg_write_end(r, rc);
}

int mc_registry_deploy_update(struct mc_registry *r, uint64_t id, size_t step,
                              enum mc_deploy_state state, uint64_t step_started_ns,
                              const char *reason, const struct mc_reg_weight *t, size_t n,
                              uint64_t *gen)
{
    const struct reg_deploy *d;
    json_t *rec;
    int rc;

    reg_intent(r, NULL); /* the daemon's: nothing a user attempted */
    rc = readonly(r);
    if (rc == 0)
        rc = reason_check(reason);
    if (rc)
        return rc;
    if ((unsigned)state > MC_DEPLOY_FAILED)
        return mc_err(MC_EINVAL,
                      "deployment state %d is not one of running, paused, succeeded, "
                      "rolled-back, aborted, failed",
                      (int)state);
    if (step_started_ns > INT64_MAX)
        return mc_err(MC_EINVAL, "step start %llu ns is past the clock's range",
                      (unsigned long long)step_started_ns);
    rc = reg_write_begin(r);
    if (rc)
        return rc;
    d = deploy_find(r->st, id);
    if (d == NULL)
        return reg_write_end(
            r, mc_err(MC_ENOENT, "there is no deployment %llu", (unsigned long long)id));
    if (deploy_ended(d->pub.state))
        return reg_write_end(r, mc_err(MC_EINVAL, "deployment %llu of %s@%s has ended (%s)",
                                       (unsigned long long)id, d->pub.name, d->pub.version,
                                       mc_deploy_state_name(d->pub.state)));
    if (step >= d->pub.nsteps)
        return reg_write_end(r, mc_err(MC_EINVAL,
                                       "deployment %llu has %zu steps; step %zu does not exist",
                                       (unsigned long long)id, d->pub.nsteps, step));
    rec = rec_new("deploy-update", r->uid);
    if (rec == NULL || json_object_set_new(rec, "id", json_integer((json_int_t)id)) ||
        json_object_set_new(rec, "step", json_integer((json_int_t)step)) ||
        json_object_set_new(rec, "state", json_string(mc_deploy_state_name(state))) ||
        json_object_set_new(rec, "step_started_ns", json_integer((json_int_t)step_started_ns)) ||
        (reason && json_object_set_new(rec, "reason", json_string(reason)))) {
        json_decref(rec);
        return reg_write_end(r, reason ? mc_err(MC_EINVAL, "the reason is not UTF-8 text") : oom());
    }
    if (t != NULL) {
        char from[TSET_TEXT_MAX], to[TSET_TEXT_MAX];
        struct reg_model *m = reg_need_model(r, d->pub.name);
        struct tset ts;

        rc = m ? targets_resolve(r, d->pub.name, d->pub.alias, t, n, &ts) : MC_ENOENT;
        if (rc == 0) {
            alias_text(model_alias(m, d->pub.alias), from, sizeof(from));
            tset_format(&ts, to, sizeof(to));
            /* the same targets: the step's state changes, the alias does not */
            if (strcmp(from, to) != 0 &&
                json_object_set_new(rec, "move",
                                    json_pack("{s:o,s:s}", "from",
                                              from[0] ? json_string(from) : json_null(), "to", to)))
                rc = oom();
        }
        if (rc) {
            json_decref(rec);
            return reg_write_end(r, rc);
        }
    }
    return commit_end(r, rec, gen);
}

size_t mc_registry_deploy_count(const struct mc_registry *r)
{
    return r->st->ndeploys;
}

const struct mc_reg_deploy *mc_registry_deploy_at(const struct mc_registry *r, size_t i)
{
    return i < r->st->ndeploys ? &r->st->deploys[i].pub : NULL;
}

/* ---- alerts ----------------------------------------------------------- */

int mc_registry_alert_add(struct mc_registry *r, const char *kind, const char *model,
                          const char *version, const char *alias, const char *message,
                          uint64_t *gen)
{
    json_t *rec;
    int rc;

    reg_intent(r, NULL); /* the daemon's: nothing a user attempted */
    rc = readonly(r);
    if (rc == 0)
        rc = alert_kind_check(kind, MC_EINVAL);
    if (rc)
        return rc;
    if (message == NULL || message[0] == '\0' || strlen(message) > ALERT_MESSAGE_MAX)
        return mc_err(MC_EINVAL, "an alert needs a message of 1 to %d bytes", ALERT_MESSAGE_MAX);
    rec = rec_new("alert", r->uid);
    if (rec == NULL)
        return oom();
    if (json_object_set_new(rec, "kind", json_string(kind)) ||
        json_object_set_new(rec, "message", json_string(message)) ||
        (model && json_object_set_new(rec, "model", json_string(model))) ||
        (version && json_object_set_new(rec, "version", json_string(version))) ||
        (alias && json_object_set_new(rec, "alias", json_string(alias)))) {
        json_decref(rec);
        return mc_err(MC_EINVAL, "an alert's message, model, version and alias must be UTF-8 "
                                 "text");
    }
    rc = reg_write_begin(r);
    if (rc) {
        json_decref(rec);
        return rc;
    }
    return commit_end(r, rec, gen);
}

size_t mc_registry_alert_count(const struct mc_registry *r)
{
    return r->st->nalerts;
}

const struct mc_reg_alert *mc_registry_alert_at(const struct mc_registry *r, size_t i)
{
    if (i >= r->st->nalerts)
        return NULL;
    return &r->st->alerts[(r->st->alert_head + i) % MC_REG_ALERTS_MAX];
}
