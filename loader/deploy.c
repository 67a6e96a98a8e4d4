/*
 * deploy.c - the rollout engine (deploy.h): each tick, every rollout the
 * registry says is running is brought to its step (a gated move), and
 * after each interval judged: hold, advance, or roll back. Also the
 * control ops that begin, pause, resume and abort rollouts.
 */
#include "loader/deploy.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "index/stats.h"
#include "loader/alerts.h"
#include "loader/daemon.h"
#include "loader/gate.h"
#include "loader/health.h"
#include "loader/log.h"
#include "loader/stats.h"

#define DEPLOY_TICK_NS         100000000ull /* how often rollouts are looked at */
#define DEPLOY_INTERVAL_MIN_MS 1000ull      /* the shortest interval judged */

/* What this process knows of one running rollout (rebuilt after a restart). */
struct deploy_run {
    uint64_t id;
    size_t step; /* the step the baseline belongs to */
    bool have_base;
    bool blind; /* the new version's counters could not be read (alerted once) */
    struct mc_stats_sum base_new, base_old; /* counters when the interval began */
    uint64_t base_ns;                       /* CLOCK_MONOTONIC: when the counts began */
    uint64_t eval_ns;                       /* when the current interval began (holds move it) */
    struct gate *gate;                      /* a step being applied */
    char note[400]; /* what the judgement that led to the step being applied could not check */
    struct mc_conn *conn; /* the client that began it, waiting for the first step */
    struct deploy_run *next;
};

/* ---- looking things up ---- */

static const struct mc_reg_deploy *deploy_by_id(struct daemon *d, uint64_t id)
{
    for (size_t i = mc_registry_deploy_count(d->reg); i-- > 0;) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(d->reg, i);
        if (x->id == id)
            return x;
    }
    return NULL;
}

static const struct mc_reg_alias *alias_of(struct daemon *d, const char *name, const char *alias)
{
    const struct mc_reg_model *m = mc_registry_model(d->reg, name);

    for (size_t i = 0; m && i < m->naliases; i++)
        if (!strcmp(m->aliases[i].alias, alias))
            return &m->aliases[i];
    return NULL;
}

static struct deploy_run *run_of(struct daemon *d, uint64_t id, bool create)
{
    struct deploy_run *r;

    for (r = d->deploys; r; r = r->next)
        if (r->id == id)
            return r;
    if (!create || !(r = calloc(1, sizeof(*r))))
        return NULL;
    r->id = id;
    r->next = d->deploys;
    d->deploys = r;
    return r;
}

static void run_free(struct daemon *d, struct deploy_run *r)
{
    for (struct deploy_run **pp = &d->deploys; *pp; pp = &(*pp)->next)
        if (*pp == r) {
            *pp = r->next;
            break;
        }
    free(r);
}

/* The version with the highest weight in canonical text "a=90 b=10" (or "a"), into buf. */
static const char *primary_of(const char *text, char *buf, size_t len)
{
    uint32_t best = 0;
    char tmp[1024], *save = NULL;

    *buf = '\0';
    snprintf(tmp, sizeof(tmp), "%s", text ? text : "");
    for (char *w = strtok_r(tmp, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        uint32_t wt = eq ? (uint32_t)strtoul(eq + 1, NULL, 10) : 100;
        if (eq)
            *eq = '\0';
        if (wt > best) {
            best = wt;
            snprintf(buf, len, "%s", w);
        }
    }
    return *buf ? buf : NULL;
}

/* ---- targets of a step ---- */

struct targets {
    char words[MC_ALIAS_TARGETS_MAX][300];
    struct mc_reg_weight w[MC_ALIAS_TARGETS_MAX];
    size_t n;
};

/* Parse canonical text into t (refs point into t). */
static int targets_from_text(const char *text, struct targets *t)
{
    const char *wp[MC_ALIAS_TARGETS_MAX];
    char tmp[1024], *save = NULL;
    size_t n = 0;

    t->n = 0;
    snprintf(tmp, sizeof(tmp), "%s", text ? text : "");
    for (char *w = strtok_r(tmp, " ", &save); w && n < MC_ALIAS_TARGETS_MAX;
         w = strtok_r(NULL, " ", &save)) {
        snprintf(t->words[n], sizeof(t->words[n]), "%s", w);
        wp[n] = t->words[n];
        n++;
    }
    if (!n)
        return 0;
    return mc_reg_targets_parse(wp, n, t->w, &t->n);
}

/* The alias's targets at step i of x: the old primary keeps 100 - w. */
static void targets_of_step(const struct mc_reg_deploy *x, size_t i, struct targets *t)
{
    uint32_t w = x->steps[i];
    char old[300];

    t->n = 0;
    if (w < 100 && primary_of(x->from, old, sizeof(old))) {
        snprintf(t->words[t->n], sizeof(t->words[0]), "%s", old);
        t->w[t->n] = (struct mc_reg_weight){t->words[t->n], 100 - w};
        t->n++;
    }
    snprintf(t->words[t->n], sizeof(t->words[0]), "%s", x->version);
    t->w[t->n] = (struct mc_reg_weight){t->words[t->n], w};
    t->n++;
}

/* Does the alias point exactly at t now? */
static bool alias_is(const struct mc_reg_alias *a, const struct targets *t)
{
    if (!a || a->ntargets != t->n)
        return false;
    for (size_t i = 0; i < t->n; i++) {
        bool found = false;
        for (size_t j = 0; j < a->ntargets; j++)
            found |= !strcmp(a->targets[j].version->version, t->w[i].ref) &&
                     a->targets[j].weight == t->w[i].weight;
        if (!found)
            return false;
    }
    return true;
}

/* ---- answering the client that began a rollout ---- */

static void answer(struct daemon *d, struct deploy_run *r, int rc, const char *msg, json_t *checks)
{
    const struct mc_reg_deploy *x;
    const struct mc_reg_alias *a;
    char to[512] = "";
    json_t *j, *steps;
    char *body;

    if (!r->conn)
        return;
    r->conn->park_ctx = NULL;
    if (rc) {
        mc_ctl_reply(&d->ctl, r->conn, rc, msg, strlen(msg));
        r->conn = NULL;
        return;
    }
    x = deploy_by_id(d, r->id);
    a = x ? alias_of(d, x->name, x->alias) : NULL;
    if (a)
        mc_reg_targets_format(a, to, sizeof(to));
    steps = json_array(); /* as `deploy --status --json` has them: the percentages */
    for (size_t i = 0; x && i < x->nsteps; i++)
        json_array_append_new(steps, json_integer(x->steps[i]));
    j = json_pack(
        "{s:I, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:I, s:I, s:s, s:o, s:O}", "id",
        (json_int_t)r->id, "name", x ? x->name : "", "version", x ? x->version : "", "alias",
        x ? x->alias : "", "strategy", x ? mc_deploy_strategy_name(x->strategy) : "", "state",
        x ? mc_deploy_state_name(x->state) : "", "step", (json_int_t)(x ? x->step + 1 : 0), "steps",
        steps, "weight", (json_int_t)(x ? x->steps[x->step] : 0), "interval_ms",
        (json_int_t)(x ? x->interval_ms : 0), "targets", to, "reason",
        x && x->reason ? json_string(x->reason) : json_null(), "checks",
        checks ? checks : json_null());
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    mc_ctl_reply(&d->ctl, r->conn, body ? 0 : MC_ENOMEM, body ? body : "out of memory",
                 body ? strlen(body) : 13);
    free(body);
    r->conn = NULL;
}

/* ---- decisions, each one registry record ---- */

static int update(struct daemon *d, uint64_t id, size_t step, enum mc_deploy_state st,
                  const char *reason, const struct targets *t)
{
    int rc = mc_registry_deploy_update(d->reg, id, step, st, mc_wall_ns(), reason,
                                       t && t->n ? t->w : NULL, t ? t->n : 0, NULL);

    if (rc)
        log_error("rollout %llu: could not record \"%s\": %s", (unsigned long long)id, reason,
                  mc_last_error());
    else
        daemon_sync(d, false); /* the arena follows now, not at the next inotify event */
    return rc;
}

/* Roll back to `from` (state ROLLED_BACK, or FAILED when there is nothing to go back to). */
static void roll_back(struct daemon *d, struct deploy_run *r, const char *reason, const char *kind)
{
    const struct mc_reg_deploy *x = deploy_by_id(d, r->id);
    char name[256], version[256], alias[256];
    struct targets t;
    bool back;

    if (!x)
        return;
    snprintf(name, sizeof(name), "%s", x->name);
    snprintf(version, sizeof(version), "%s", x->version);
    snprintf(alias, sizeof(alias), "%s", x->alias);
    back = x->from && *x->from && targets_from_text(x->from, &t) == 0 && t.n;
    if (update(d, r->id, x->step, back ? MC_DEPLOY_ROLLED_BACK : MC_DEPLOY_FAILED, reason,
               back ? &t : NULL) != 0 &&
        back) {
        /* The move back was refused (its version gone?): the rollout ends
         * FAILED where it is, and the alert says the rollback did not happen
         * (it used to be reported as done, every interval; a review find). */
        char msg[1400];

        snprintf(msg, sizeof(msg), "%s; the rollback to %s could not be done (%s): %s stays "
                                   "where it was, fix it by hand",
                 reason, x->from, mc_last_error(), alias);
        update(d, r->id, x->step, MC_DEPLOY_FAILED, msg, NULL);
        log_error("rollout %llu of %s@%s (%s): %s", (unsigned long long)r->id, name, version,
                  alias, msg);
        alert_raise(d, "threshold", name, version, alias, msg);
        return;
    }
    log_warn("rollout %llu of %s@%s (%s): %s", (unsigned long long)r->id, name, version, alias,
             reason);
    alert_raise(d, back ? "rollback" : kind, name, version, alias, reason);
}

/* ---- an operator's move outside the rollout ---- */

/*
 * Is the alias still where the rollout left it before applying step `step` (the targets it
 * began from for step 0, else step - 1's)? True if so; else false with the abort reason.
 */
static bool moved_outside(struct daemon *d, const struct mc_reg_deploy *x, size_t step, char *msg,
                          size_t len)
{
    const struct mc_reg_alias *a = alias_of(d, x->name, x->alias);
    struct targets t;
    char now[512] = "";
    bool same;

    if (step == 0)
        same = targets_from_text(x->from, &t) == 0 && (t.n ? alias_is(a, &t) : !a || !a->ntargets);
    else {
        targets_of_step(x, step - 1, &t);
        same = alias_is(a, &t);
    }
    if (same)
        return true;
    if (a)
        mc_reg_targets_format(a, now, sizeof(now));
    if ((size_t)snprintf(msg, len,
                         "aborted: %s was moved outside the rollout (to \"%s\") while step "
                         "%zu/%zu was gated; the operator's move stands",
                         x->alias, *now ? now : "nothing", step + 1, x->nsteps) >= len)
        msg[len - 1] = '\0'; /* cut (the alias and targets are bounded; never in practice) */
    return false;
}

/* End the rollout as aborted by a move outside it (the alias stays where it was moved). */
static void abort_moved(struct daemon *d, struct deploy_run *r, const struct mc_reg_deploy *x,
                        const char *msg)
{
    char name[256], version[256], alias[256];

    snprintf(name, sizeof(name), "%s", x->name); /* x does not outlive the update */
    snprintf(version, sizeof(version), "%s", x->version);
    snprintf(alias, sizeof(alias), "%s", x->alias);
    update(d, r->id, x->step, MC_DEPLOY_ABORTED, msg, NULL);
    log_warn("rollout %llu of %s@%s (%s): %s", (unsigned long long)r->id, name, version, alias,
             msg);
    alert_raise(d, "threshold", name, version, alias, msg); /* the registry knows 3 kinds */
}

/* ---- applying a step (gated) ---- */

static void step_applied(struct daemon *d, void *ctx, int rc, const char *msg, json_t *checks)
{
    struct deploy_run *r = ctx; /* runs are freed only once their gate is gone */
    const struct mc_reg_deploy *x;
    struct targets t;
    size_t step;
    char reason[600];
    bool last;

    r->gate = NULL;
    /* See what the store says now, not what mcached last mirrored: an
     * operator's `rollback` or `snapshot restore` writes it directly, maybe
     * while this step's check ran, and that move must stand (a review find;
     * what is left is the instant between this read and the update's lock). */
    if (mc_registry_refresh(d->reg, NULL) != 0)
        log_warn("reading the registry before applying a step: %s", mc_last_error());
    x = deploy_by_id(d, r->id);
    if (!x || x->state != MC_DEPLOY_RUNNING) { /* paused or aborted meanwhile */
        answer(d, r, MC_EBUSY, "the rollout was paused or ended while its step was gated", NULL);
        return;
    }
    step = r->step;
    if (!moved_outside(d, x, step, reason, sizeof(reason))) {
        /* The operator moved the alias while the step was gated: their move stands. */
        answer(d, r, MC_EBUSY, reason, NULL);
        abort_moved(d, r, x, reason);
        return;
    }
    if (rc) {
        snprintf(reason, sizeof(reason), "step %zu/%zu (%u%%) refused: %s", step + 1, x->nsteps,
                 x->steps[step], msg);
        answer(d, r, rc, msg, NULL);
        if (step == 0) /* the alias never moved: nothing to roll back */
            update(d, r->id, step, MC_DEPLOY_FAILED, reason, NULL);
        else
            roll_back(d, r, reason, "health");
        return;
    }
    targets_of_step(x, step, &t);
    last = step + 1 == x->nsteps && x->strategy != MC_DEPLOY_BLUE_GREEN;
    if (last)
        snprintf(reason, sizeof(reason), "%s: %s at 100%%, done",
                 mc_deploy_strategy_name(x->strategy), x->version);
    else
        snprintf(reason, sizeof(reason), "step %zu/%zu: %s at %u%%", step + 1, x->nsteps,
                 x->version, x->steps[step]);
    if (*r->note) /* the judgement that advanced it left a threshold unchecked: say so */
        snprintf(reason + strlen(reason), sizeof(reason) - strlen(reason), " (%s)", r->note);
    *r->note = '\0';
    if (update(d, r->id, step, last ? MC_DEPLOY_SUCCEEDED : MC_DEPLOY_RUNNING, reason, &t)) {
        answer(d, r, MC_EIO, mc_last_error(), NULL);
        return;
    }
    log_info("rollout %llu: %s", (unsigned long long)r->id, reason);
    r->have_base = false; /* a new interval begins with the next tick */
    answer(d, r, 0, NULL, checks);
}

static void apply_step(struct daemon *d, struct deploy_run *r, const struct mc_reg_deploy *x,
                       size_t step)
{
    struct gate_spec s = {0};
    struct targets t;

    targets_of_step(x, step, &t);
    snprintf(s.name, sizeof(s.name), "%s", x->name);
    snprintf(s.alias, sizeof(s.alias), "%s", x->alias);
    for (size_t i = 0; i < t.n; i++) {
        snprintf(s.t[i].version, sizeof(s.t[i].version), "%s", t.w[i].ref);
        s.t[i].weight = t.w[i].weight;
    }
    s.n = t.n;
    s.health_argv = (char **)x->health_argv;
    s.health_argc = x->health_argc;
    s.health_timeout_ms = x->health_timeout_ms;
    gate_mark_growing(d, &s);
    r->step = step;
    log_info("rollout %llu of %s@%s (%s): applying step %zu/%zu (%u%%)", (unsigned long long)r->id,
             x->name, x->version, x->alias, step + 1, x->nsteps, x->steps[step]);
    r->gate = gate_start(d, &s, NULL, step_applied, r);
}

/* ---- judging an interval ---- */

static void fmt_count(uint64_t n, char *buf, size_t len)
{
    char tmp[32];
    int l = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)n), o = 0;

    for (int i = 0; i < l && o + 2 < (int)len; i++) {
        if (i && (l - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
}

/* Counters of name@version now; false (reason in why) if they cannot be read. */
static bool counters(struct daemon *d, const char *name, const char *version,
                     struct mc_stats_sum *out, char *why, size_t len)
{
    int rc = stats_version_sum(d, name, version, out);

    if (rc == 0)
        return true;
    snprintf(why, len, "no serving statistics for %s@%s (%s)", name, version,
             rc == MC_ENOENT ? "not resident" : mc_last_error());
    return false;
}

static void judge(struct daemon *d, struct deploy_run *r, const struct mc_reg_deploy *x)
{
    struct mc_stats_sum *now_new = calloc(4, sizeof(*now_new)), *dn = now_new + 1,
                        *now_old = now_new + 2, *dold = now_new + 3;
    char old[300], why[1024], n1[32];
    bool have_old, old_named;
    char old_why[1024] = "";
    double err;

    if (!now_new)
        return;
    have_old = old_named = primary_of(x->from, old, sizeof(old)) && strcmp(old, x->version);
    if (!counters(d, x->name, x->version, now_new, why, sizeof(why))) {
        /* It cannot be judged: it holds, and the operator hears of it once. */
        snprintf(why + strlen(why), sizeof(why) - strlen(why), "; hold: cannot judge it");
        if (!r->blind) {
            char name[256], version[256], alias[256];
            snprintf(name, sizeof(name), "%s", x->name);
            snprintf(version, sizeof(version), "%s", x->version);
            snprintf(alias, sizeof(alias), "%s", x->alias);
            r->blind = true;
            alert_raise(d, "threshold", name, version, alias, why);
            x = deploy_by_id(d, r->id); /* the alert was a registry record */
            if (!x) {
                free(now_new);
                return;
            }
        }
        goto hold;
    }
    r->blind = false;
    mc_stats_diff(now_new, &r->base_new, dn);
    if (have_old && counters(d, x->name, old, now_old, old_why, sizeof(old_why))) {
        mc_stats_diff(now_old, &r->base_old, dold);
        if (!dold->requests) /* blue-green: the old one served nothing since: its history */
            *dold = *now_old;
    } else {
        have_old = false;
    }
    fmt_count(dn->requests, n1, sizeof(n1));
    if (dn->requests < x->min_requests || !dn->requests) {
        snprintf(why, sizeof(why),
                 "hold: %s requests to %s over %.1f s, fewer than the %llu needed", n1, x->version,
                 (double)(mc_mono_ns() - r->base_ns) / 1e9, (unsigned long long)x->min_requests);
        goto hold;
    }
    err = (double)dn->errors / (double)dn->requests;
    if (err > x->max_error_rate) {
        snprintf(why, sizeof(why), "auto-rollback: error rate %.1f%% > %.1f%% over %s requests",
                 err * 100, x->max_error_rate * 100, n1);
        roll_back(d, r, why, "threshold");
        free(now_new);
        return;
    }
    *r->note = '\0';
    if (x->max_p99_ratio > 0 && !(have_old && dold->requests)) {
        /* Nothing to compare with: say so, never "healthy" as if p99 had been checked. */
        if (old_named && !have_old)
            snprintf(r->note, sizeof(r->note), "p99 not compared: %.300s", old_why);
        else if (have_old)
            snprintf(r->note, sizeof(r->note),
                     "p99 not compared: %s served no requests to compare with, not even before "
                     "the switch",
                     old);
        else
            snprintf(r->note, sizeof(r->note), "p99 not compared: no old version to compare with");
        log_warn("rollout %llu of %s@%s: %s", (unsigned long long)r->id, x->name, x->version,
                 r->note);
    }
    if (x->max_p99_ratio > 0 && have_old && dold->requests) {
        double pn = (double)mc_stats_quantile(dn, 0.99), po = (double)mc_stats_quantile(dold, 0.99);
        if (po > 0 && pn > x->max_p99_ratio * po) {
            snprintf(why, sizeof(why),
                     "auto-rollback: p99 %.3f ms > %.2f x %.3f ms (%s) over %s requests", pn / 1e6,
                     x->max_p99_ratio, po / 1e6, old, n1);
            roll_back(d, r, why, "threshold");
            free(now_new);
            return;
        }
    }
    free(now_new);
    log_info("rollout %llu: %s@%s within its thresholds over %s requests (error rate %.2f%%%s%s)",
             (unsigned long long)r->id, x->name, x->version, n1, err * 100, *r->note ? "; " : "",
             r->note);
    if (x->step + 1 < x->nsteps) {
        apply_step(d, r, x, x->step + 1);
    } else { /* blue-green: watched for one interval */
        char reason[600];
        if (*r->note)
            snprintf(reason, sizeof(reason),
                     "%s: %s at 100%% over %s requests, error rate %.2f%%, done (%s)",
                     mc_deploy_strategy_name(x->strategy), x->version, n1, err * 100, r->note);
        else
            snprintf(reason, sizeof(reason), "%s: %s healthy at 100%% over %s requests, done",
                     mc_deploy_strategy_name(x->strategy), x->version, n1);
        *r->note = '\0';
        update(d, r->id, x->step, MC_DEPLOY_SUCCEEDED, reason, NULL);
    }
    return;
hold:
    free(now_new);
    log_info("rollout %llu of %s@%s: %s", (unsigned long long)r->id, x->name, x->version, why);
    if (!x->reason || strcmp(x->reason, why))
        update(d, r->id, x->step, MC_DEPLOY_RUNNING, why, NULL);
    r->eval_ns = mc_mono_ns(); /* the counts keep accumulating from the step's start */
}

/* Take the counters at the start of an interval. */
static void baseline(struct daemon *d, struct deploy_run *r, const struct mc_reg_deploy *x)
{
    char old[300], why[1024];

    memset(&r->base_new, 0, sizeof(r->base_new));
    memset(&r->base_old, 0, sizeof(r->base_old));
    counters(d, x->name, x->version, &r->base_new, why, sizeof(why));
    if (primary_of(x->from, old, sizeof(old)))
        counters(d, x->name, old, &r->base_old, why, sizeof(why));
    r->base_ns = r->eval_ns = mc_mono_ns();
    r->step = x->step;
    r->have_base = true;
}

/* Has the alias moved (any history entry) at or after ns (CLOCK_REALTIME)? */
static bool moved_since(const struct mc_reg_alias *a, uint64_t ns)
{
    for (size_t i = 0; a && i < a->nhistory; i++)
        if (a->history[i].at_ns >= ns)
            return true;
    return false;
}

/* One running rollout: bring it to its step, or judge its interval. */
static void drive(struct daemon *d, struct deploy_run *r, const struct mc_reg_deploy *x)
{
    const struct mc_reg_alias *a = alias_of(d, x->name, x->alias);
    struct targets want, from;
    char now[512] = "", msg[800];

    if (r->gate)
        return;
    targets_of_step(x, x->step, &want);
    if (!alias_is(a, &want)) {
        bool at_from = targets_from_text(x->from, &from) == 0 &&
                       (from.n ? alias_is(a, &from) : !a || !a->ntargets);
        /* Begun (or restarted, paused or resumed before its first step was
         * applied): the alias has not moved since the rollout began. A move
         * since (the step, then the operator's back to where it was) is the
         * operator's, below. The reason cannot tell: pause and resume write
         * one (a review find). */
        if (x->step == 0 && at_from && !moved_since(a, x->started_ns)) {
            apply_step(d, r, x, 0);
            return;
        }
        if (a)
            mc_reg_targets_format(a, now, sizeof(now));
        snprintf(msg, sizeof(msg),
                 "aborted: %s was moved outside the rollout (to \"%s\"; step %zu expects it at "
                 "%u%%); the operator's move stands",
                 x->alias, *now ? now : "nothing", x->step + 1, x->steps[x->step]);
        abort_moved(d, r, x, msg);
        return;
    }
    if (!r->have_base || r->step != x->step) {
        baseline(d, r, x);
        return;
    }
    if (mc_mono_ns() - r->eval_ns >= x->interval_ms * 1000000ull)
        judge(d, r, x);
}

static void engine(struct daemon *d)
{
    uint64_t ids[64];
    size_t n = 0;

    for (size_t i = 0; i < mc_registry_deploy_count(d->reg) && n < 64; i++) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(d->reg, i);
        if (x->state == MC_DEPLOY_RUNNING)
            ids[n++] = x->id;
    }
    /* Each step can change the registry: look every rollout up afresh. */
    for (size_t i = 0; i < n; i++) {
        const struct mc_reg_deploy *x = deploy_by_id(d, ids[i]);
        struct deploy_run *r = run_of(d, ids[i], true);
        if (x && r && x->state == MC_DEPLOY_RUNNING)
            drive(d, r, x);
    }
    /* Forget rollouts that ended (and answer a client still waiting). */
    for (struct deploy_run *r = d->deploys, *next; r; r = next) {
        const struct mc_reg_deploy *x = deploy_by_id(d, r->id);
        next = r->next;
        if (r->gate)
            continue;
        if (!x || x->state != MC_DEPLOY_RUNNING) {
            if (r->conn)
                answer(d, r, x && x->state == MC_DEPLOY_SUCCEEDED ? 0 : MC_EBUSY,
                       x && x->reason ? x->reason : "the rollout ended", NULL);
            if (!x || x->state != MC_DEPLOY_PAUSED)
                run_free(d, r);
            else
                r->have_base = false;
        }
    }
}

void deploy_start(struct daemon *d)
{
    for (size_t i = 0; i < mc_registry_deploy_count(d->reg); i++) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(d->reg, i);
        if (x->state == MC_DEPLOY_RUNNING || x->state == MC_DEPLOY_PAUSED)
            log_info("rollout %llu of %s@%s (%s, %s) is %s at step %zu/%zu (%u%%): it continues",
                     (unsigned long long)x->id, x->name, x->version, x->alias,
                     mc_deploy_strategy_name(x->strategy), mc_deploy_state_name(x->state),
                     x->step + 1, x->nsteps, x->steps[x->step]);
    }
}

void deploy_tick(struct daemon *d)
{
    uint64_t now = mc_mono_ns();

    health_tick(d);
    gate_tick(d);
    alert_tick(d);
    if (now - d->last_deploy_ns < DEPLOY_TICK_NS)
        return;
    d->last_deploy_ns = now;
    engine(d);
}

void deploy_stop(struct daemon *d)
{
    for (struct deploy_run *r = d->deploys; r; r = r->next)
        if (r->conn) {
            const char *m = "mcached is stopping; the rollout continues when it starts again";
            mc_ctl_reply(&d->ctl, r->conn, MC_EBUSY, m, strlen(m));
            r->conn->park_ctx = NULL;
            r->conn = NULL;
        }
    gate_stop_all(d);
    health_stop_all(d);
    while (d->deploys)
        run_free(d, d->deploys);
    alert_stop_all(d);
}

bool deploy_conn_closed(struct daemon *d, struct mc_conn *c)
{
    for (struct deploy_run *r = d->deploys; r; r = r->next)
        if (r->conn == c) {
            r->conn = NULL; /* the rollout goes on without its client */
            c->park_ctx = NULL;
            return true;
        }
    return false;
}

/* ---- the control ops ---- */

static void reply_err(struct daemon *d, struct mc_conn *c, int code, const char *msg)
{
    mc_ctl_reply(&d->ctl, c, code, msg, strlen(msg));
}

static int spec_from_json(struct daemon *d, json_t *j, struct mc_reg_deploy *s, uint32_t *steps,
                          const char **argv, char *from, size_t fromlen, char *version, size_t vlen)
{
    const struct mc_reg_version *rv;
    const struct mc_reg_alias *a;
    json_t *v;
    size_t i;

    memset(s, 0, sizeof(*s));
    s->name = json_string_value(json_object_get(j, "name"));
    s->alias = json_string_value(json_object_get(j, "alias"));
    if (!s->name || !s->alias || !json_string_value(json_object_get(j, "version")))
        return mc_err(MC_EINVAL, "deploy: name, version and alias are required");
    if (mc_deploy_strategy_parse(json_string_value(json_object_get(j, "strategy")), &s->strategy) !=
        0)
        return MC_EINVAL;
    if (mc_registry_resolve(d->reg, s->name, json_string_value(json_object_get(j, "version")),
                            &rv) != 0)
        return MC_ENOENT;
    snprintf(version, vlen, "%s", rv->version);
    s->version = version;
    if (json_array_size(json_object_get(j, "steps")) > 100)
        return mc_err(MC_EINVAL, "deploy: at most 100 steps");
    json_array_foreach(json_object_get(j, "steps"), i, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100)
            return mc_err(MC_EINVAL, "deploy: step %zu must be a percentage 1..100", i + 1);
        steps[i] = (uint32_t)json_integer_value(v);
    }
    s->steps = steps;
    s->nsteps = json_array_size(json_object_get(j, "steps"));
    if (!s->nsteps || s->strategy != MC_DEPLOY_CANARY) {
        steps[0] = 100;
        s->nsteps = 1;
    }
    s->interval_ms = (uint64_t)json_integer_value(json_object_get(j, "interval_ms"));
    s->max_error_rate = json_number_value(json_object_get(j, "max_error_rate"));
    s->max_p99_ratio = json_number_value(json_object_get(j, "max_p99_ratio"));
    s->min_requests = (uint64_t)json_integer_value(json_object_get(j, "min_requests"));
    if (json_integer_value(json_object_get(j, "interval_ms")) <= 0)
        return mc_err(MC_EINVAL, "deploy: the interval must be more than 0 (e.g. 30s, 5m)");
    if (s->strategy != MC_DEPLOY_DIRECT && s->interval_ms < DEPLOY_INTERVAL_MIN_MS)
        return mc_err(MC_EINVAL,
                      "deploy: interval_ms %llu is shorter than 1 s, the shortest interval "
                      "mcached judges (each judgement is a registry record)",
                      (unsigned long long)s->interval_ms);
    if (!s->min_requests)
        return mc_err(MC_EINVAL, "deploy: min_requests must be at least 1 (a version that served "
                                 "nothing cannot be judged)");
    if (json_array_size(json_object_get(j, "health")) > 64)
        return mc_err(MC_EINVAL, "deploy: the health command has more than 64 words");
    json_array_foreach(json_object_get(j, "health"), i, v) argv[i] = json_string_value(v);
    s->health_argv = argv;
    s->health_argc = json_array_size(json_object_get(j, "health"));
    s->health_timeout_ms = (uint32_t)json_integer_value(json_object_get(j, "health_timeout_ms"));
    if (s->health_argc && !s->health_timeout_ms)
        s->health_timeout_ms = MC_HEALTH_TIMEOUT_MS;
    a = alias_of(d, s->name, s->alias);
    if (a && a->ntargets)
        mc_reg_targets_format(a, from, fromlen);
    s->from = *from ? from : NULL;
    if (s->strategy == MC_DEPLOY_CANARY && a && a->ntargets > 1)
        return mc_err(MC_EINVAL,
                      "deploy: %s of %s is split already (%s); a canary starts from an alias "
                      "with one target (finish or abort what split it, or move it first)",
                      s->alias, s->name, from);
    if (a && a->ntargets == 1 && !strcmp(a->targets[0].version->version, version))
        return mc_err(MC_EINVAL, "deploy: %s of %s already points at %s; nothing to deploy",
                      s->alias, s->name, version);
    return 0;
}

static const struct mc_reg_deploy *active(struct daemon *d, const char *name, const char *alias,
                                          char *msg, size_t len);

void deploy_op_begin(struct daemon *d, struct mc_conn *c, const struct mc_request *rq)
{
    uint32_t steps[100];
    const char *argv[64];
    char from[512] = "", version[256], msg[800];
    struct mc_reg_deploy s;
    struct deploy_run *r;
    json_error_t je;
    json_t *j = json_loads(rq->args[0], 0, &je);
    uint64_t id = 0;
    int rc;

    if (!j || !json_is_object(j)) {
        reply_err(d, c, MC_EINVAL,
                  "deploy: the argument must be a JSON object (see "
                  "docs/protocol.md)");
        json_decref(j);
        return;
    }
    daemon_sync(d, false);
    {
        const char *n = json_string_value(json_object_get(j, "name"));
        const char *al = json_string_value(json_object_get(j, "alias"));
        const struct mc_reg_deploy *x = n && al ? active(d, n, al, msg, sizeof(msg)) : NULL;
        if (x) {
            snprintf(msg, sizeof(msg),
                     "rollout %llu of %s@%s on alias %s is %s (step %zu/%zu); let it finish or "
                     "abort it first (mcache deploy --abort %s --alias %s)",
                     (unsigned long long)x->id, x->name, x->version, x->alias,
                     mc_deploy_state_name(x->state), x->step + 1, x->nsteps, x->name, x->alias);
            reply_err(d, c, MC_EBUSY, msg);
            json_decref(j);
            return;
        }
    }
    daemon_actor_set(d, c->uid, rq->nargs > 1 ? rq->args[1] : NULL,
                     rq->nargs > 2 ? rq->args[2] : NULL);
    rc = spec_from_json(d, j, &s, steps, argv, from, sizeof(from), version, sizeof(version));
    if (!rc)
        rc = mc_registry_deploy_begin(d->reg, &s, &id, NULL);
    daemon_actor_reset(d);
    if (rc) {
        reply_err(d, c, rc, mc_last_error());
        json_decref(j);
        return;
    }
    log_info("rollout %llu of %s@%s begun by uid %u: %s on %s from %s", (unsigned long long)id,
             s.name, version, (unsigned)c->uid, mc_deploy_strategy_name(s.strategy), s.alias,
             *from ? from : "nothing");
    json_decref(j);
    r = run_of(d, id, true);
    if (!r) {
        reply_err(d, c, MC_ENOMEM, "out of memory");
        return;
    }
    r->conn = c;
    c->parked = true;
    c->park_ctx = r;
    d->last_deploy_ns = 0;
    engine(d); /* the first step starts now */
}

/* The RUNNING or PAUSED rollout of name (and alias, if given). */
static const struct mc_reg_deploy *active(struct daemon *d, const char *name, const char *alias,
                                          char *msg, size_t len)
{
    const struct mc_reg_deploy *found = NULL;
    unsigned n = 0;

    for (size_t i = 0; i < mc_registry_deploy_count(d->reg); i++) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(d->reg, i);
        if (strcmp(x->name, name) || (alias && strcmp(x->alias, alias)) ||
            (x->state != MC_DEPLOY_RUNNING && x->state != MC_DEPLOY_PAUSED))
            continue;
        found = x;
        n++;
    }
    if (!n)
        snprintf(msg, len, "%s has no rollout running or paused%s%s (see `mcache deployments %s`)",
                 name, alias ? " on alias " : "", alias ? alias : "", name);
    else if (n > 1)
        snprintf(msg, len, "%s has %u rollouts in progress; name the alias (--alias)", name, n);
    return n == 1 ? found : NULL;
}

void deploy_op_ctl(struct daemon *d, struct mc_conn *c, const struct mc_request *rq)
{
    const char *act = rq->args[0], *name = rq->args[1];
    const char *alias = rq->nargs > 2 && *rq->args[2] ? rq->args[2] : NULL;
    const struct mc_reg_deploy *x;
    struct deploy_run *r;
    struct targets t;
    char msg[700], reason[300];
    enum mc_deploy_state st;
    uint64_t id;
    int rc;

    if (strcmp(act, "pause") && strcmp(act, "resume") && strcmp(act, "abort")) {
        snprintf(msg, sizeof(msg), "deploy-ctl: unknown action \"%.40s\" (pause, resume or abort)",
                 act);
        reply_err(d, c, MC_EINVAL, msg);
        return;
    }
    daemon_sync(d, false);
    if (!mc_registry_model(d->reg, name)) {
        snprintf(msg, sizeof(msg), "there is no model \"%.200s\" (see `mcache ls`)", name);
        reply_err(d, c, MC_ENOENT, msg);
        return;
    }
    if (!(x = active(d, name, alias, msg, sizeof(msg)))) {
        reply_err(d, c, MC_ENOENT, msg);
        return;
    }
    id = x->id;
    r = run_of(d, id, false);
    snprintf(reason, sizeof(reason), "%s by uid %u",
             !strcmp(act, "pause")    ? "paused"
             : !strcmp(act, "resume") ? "resumed"
                                      : "aborted",
             (unsigned)c->uid);
    st = !strcmp(act, "pause")    ? MC_DEPLOY_PAUSED
         : !strcmp(act, "resume") ? MC_DEPLOY_RUNNING
                                  : MC_DEPLOY_ABORTED;
    if ((st == MC_DEPLOY_PAUSED && x->state == MC_DEPLOY_PAUSED) ||
        (st == MC_DEPLOY_RUNNING && x->state == MC_DEPLOY_RUNNING)) {
        snprintf(msg, sizeof(msg), "rollout %llu of %s is %s already", (unsigned long long)id, name,
                 mc_deploy_state_name(x->state));
        reply_err(d, c, MC_EBUSY, msg);
        return;
    }
    if (r && r->gate) { /* a step being gated: it does not happen */
        gate_cancel(d, r->gate);
        r->gate = NULL;
        answer(d, r, MC_EBUSY, "the rollout was paused or aborted before its step", NULL);
    }
    if (r)
        r->have_base = false;
    daemon_actor_set(d, c->uid, rq->nargs > 3 ? rq->args[3] : NULL,
                     rq->nargs > 4 ? rq->args[4] : NULL);
    rc = st == MC_DEPLOY_ABORTED && targets_from_text(x->from, &t) == 0 && t.n
             ? update(d, id, x->step, st, reason, &t)
             : update(d, id, x->step, st, reason, NULL);
    daemon_actor_reset(d);
    if (rc) {
        reply_err(d, c, rc, mc_last_error());
        return;
    }
    log_info("rollout %llu of %s: %s", (unsigned long long)id, name, reason);
    x = deploy_by_id(d, id);
    {
        json_t *j = json_pack("{s:I, s:s, s:s, s:s, s:s}", "id", (json_int_t)id, "name", name,
                              "alias", x ? x->alias : "", "state",
                              x ? mc_deploy_state_name(x->state) : "", "reason", reason);
        char *body = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (body)
            mc_ctl_reply(&d->ctl, c, 0, body, strlen(body));
        else
            reply_err(d, c, MC_ENOMEM, "out of memory");
        free(body);
    }
}
