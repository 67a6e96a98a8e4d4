/*
 * cmd_deploy.c - `mcache deploy` (begin a rollout, or --status, --pause,
 * --resume, --abort one) and `mcache deployments` (every rollout of a
 * model, with its outcome). mcached runs rollouts (loader/deploy.h): the
 * CLI begins one and returns once its first step is applied.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"
#include "tools/output.h"

#define INTERVAL_MAX_MS (7ull * 24 * 3600 * 1000) /* a week */
#define INTERVAL_MIN_MS 1000ull                   /* each judgement is a registry record */

/* "90s", "5m", "1h", "1500ms", "30" (seconds) -> milliseconds; MC_EINVAL naming the option. */
static int parse_duration(const char *opt, const char *s, uint64_t *ms)
{
    char *end;
    double v;
    double mult = 1000;

    errno = 0;
    v = strtod(s, &end);
    if (end == s || errno || !isfinite(v))
        goto bad;
    if (!strcmp(end, "ms"))
        mult = 1;
    else if (!strcmp(end, "s") || !*end)
        mult = 1000;
    else if (!strcmp(end, "m"))
        mult = 60000;
    else if (!strcmp(end, "h"))
        mult = 3600000;
    else
        goto bad;
    if (v <= 0 || v * mult < 1)
        return mc_err(MC_EINVAL, "--%s %s must be more than 0 (e.g. 30s, 5m)", opt, s);
    if (v * mult > (double)INTERVAL_MAX_MS)
        return mc_err(MC_EINVAL, "--%s %s is longer than a week", opt, s);
    if (v * mult < (double)INTERVAL_MIN_MS)
        return mc_err(MC_EINVAL,
                      "--%s %s is shorter than 1 s, the shortest interval mcached judges", opt, s);
    *ms = (uint64_t)(v * mult);
    return 0;
bad:
    return mc_err(MC_EINVAL, "--%s \"%s\" is not a duration (e.g. 1500ms, 30s, 5m, 1h)", opt, s);
}

/* "10,50,100" -> steps: percentages 1..100, strictly increasing, the last 100. */
static int parse_steps(const char *s, json_t *out)
{
    long prev = 0;
    const char *p = s;

    while (*p) {
        char *end;
        long v;
        errno = 0;
        v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ','))
            return mc_err(MC_EINVAL,
                          "--steps \"%s\": expected percentages separated by commas, "
                          "e.g. 10,50,100",
                          s);
        if (v < 1 || v > 100)
            return mc_err(MC_EINVAL, "--steps \"%s\": %ld is not a percentage 1..100", s, v);
        if (v <= prev)
            return mc_err(MC_EINVAL, "--steps \"%s\": steps must increase (%ld after %ld)", s, v,
                          prev);
        json_array_append_new(out, json_integer(v));
        prev = v;
        p = *end ? end + 1 : end;
        if (*end && !*p)
            return mc_err(MC_EINVAL, "--steps \"%s\" ends with a comma", s);
    }
    if (prev != 100)
        return mc_err(MC_EINVAL, "--steps \"%s\": the last step must be 100 (all traffic)", s);
    return 0;
}

static int parse_ratio(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;

    errno = 0;
    *out = strtod(s, &end);
    if (end == s || *end || errno || !isfinite(*out) || *out < lo || *out > hi)
        return mc_err(MC_EINVAL, "--%s \"%s\" must be a number from %g to %g", opt, s, lo, hi);
    return 0;
}

static const struct opt_spec deploy_opts[] = {
    {"alias", 'a', OPT_VALUE, "ALIAS", "the alias to move (required to begin)"},
    {"strategy", 0, OPT_VALUE, "S", "direct, blue-green or canary (default canary)"},
    {"steps", 0, OPT_VALUE, "P,P,..", "canary: percentages to go through (default 10,50,100)"},
    {"interval", 0, OPT_VALUE, "DURATION", "time per step, 1s or more, e.g. 5m (default 5m)"},
    {"max-error-rate", 0, OPT_VALUE, "R", "roll back above this error rate, 0..1 (0.02)"},
    {"max-p99-ratio", 0, OPT_VALUE, "X", "roll back if p99 > X times the old one's (off)"},
    {"min-requests", 0, OPT_VALUE, "N", "hold until the new version served N >= 1 (100)"},
    {"health-timeout", 0, OPT_VALUE, "SECONDS", "for the command after \"--\" (default 30)"},
    {"status", 0, OPT_FLAG, NULL, "show rollouts in progress (of NAME, or all)"},
    {"pause", 0, OPT_FLAG, NULL, "pause NAME's rollout (its alias stays where it is)"},
    {"resume", 0, OPT_FLAG, NULL, "resume it (the interval starts over)"},
    {"abort", 0, OPT_FLAG, NULL, "abort it: the alias goes back to where it was"},
    {0},
};

static void print_deploy(const struct mc_reg_deploy *x, uint64_t now)
{
    char age[64], dur[64], p99[32] = "off";

    if (x->max_p99_ratio > 0)
        snprintf(p99, sizeof(p99), "%.2fx the old one's", x->max_p99_ratio);
    printf("%s %s -> %s (rollout %llu, %s): %s, step %zu/%zu (%u%%), every %s\n", x->name, x->alias,
           x->version, (unsigned long long)x->id, mc_deploy_strategy_name(x->strategy),
           mc_deploy_state_name(x->state), x->step + 1, x->nsteps, x->steps[x->step],
           fmt_duration((double)x->interval_ms / 1000, dur));
    printf("  from %s, begun %s; rolls back above error rate %.2f%% or p99 %s; holds under "
           "%llu requests\n",
           x->from ? x->from : "(none)", fmt_age(x->started_ns, now, age), x->max_error_rate * 100,
           p99, (unsigned long long)x->min_requests);
    if (x->reason)
        printf("  last: %s\n", x->reason);
}

/* --status: every rollout in progress (of name, or all). */
static int status(const struct cli *c, const char *name)
{
    struct mc_registry *r;
    json_t *arr;
    size_t n = 0;
    int rc = cli_open_store(c, false, false, &r);

    if (rc)
        return cli_error(rc);
    if (name && !cli_model(r, name, &rc)) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    arr = json_array(); /* after every early return */
    for (size_t i = 0; i < mc_registry_deploy_count(r); i++) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(r, i);
        if ((name && strcmp(x->name, name)) ||
            (x->state != MC_DEPLOY_RUNNING && x->state != MC_DEPLOY_PAUSED))
            continue;
        n++;
        if (c->json)
            json_array_append_new(arr, jv_deploy(x));
        else
            print_deploy(x, c->now_ns);
    }
    if (c->json)
        jv_print(json_pack("{s:o}", "deployments", arr));
    else {
        json_decref(arr);
        if (!n && !c->quiet)
            printf("no rollout in progress%s%s\n", name ? " for " : "", name ? name : "");
    }
    mc_registry_close(r);
    return EXIT_OK;
}

/* pause|resume|abort without mcached: the registry directly (nothing drives it now). */
static int control_offline(const struct cli *c, const char *act, const char *name,
                           const char *alias)
{
    const struct mc_reg_deploy *x = NULL;
    struct mc_reg_weight w[MC_ALIAS_TARGETS_MAX];
    const char *words[MC_ALIAS_TARGETS_MAX];
    char from[1024], *save = NULL, reason[128];
    struct mc_registry *r;
    size_t nw = 0, nt = 0;
    enum mc_deploy_state st = !strcmp(act, "pause")    ? MC_DEPLOY_PAUSED
                              : !strcmp(act, "resume") ? MC_DEPLOY_RUNNING
                                                       : MC_DEPLOY_ABORTED;
    int rc = cli_open_store(c, true, false, &r);

    if (rc)
        return cli_error(rc);
    if (!cli_model(r, name, &rc)) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    for (size_t i = 0; i < mc_registry_deploy_count(r); i++) {
        const struct mc_reg_deploy *y = mc_registry_deploy_at(r, i);
        if (!strcmp(y->name, name) && (!alias || !strcmp(y->alias, alias)) &&
            (y->state == MC_DEPLOY_RUNNING || y->state == MC_DEPLOY_PAUSED))
            x = y;
    }
    if (!x) {
        mc_registry_close(r);
        return cli_error(mc_err(MC_ENOENT, "%s has no rollout running or paused%s%s", name,
                                alias ? " on alias " : "", alias ? alias : ""));
    }
    if (st == x->state) {
        mc_registry_close(r);
        return cli_error(mc_err(MC_EBUSY, "rollout %llu of %s is %s already",
                                (unsigned long long)x->id, name, mc_deploy_state_name(x->state)));
    }
    snprintf(from, sizeof(from), "%s", x->from ? x->from : "");
    for (char *t = strtok_r(from, " ", &save); t && nw < MC_ALIAS_TARGETS_MAX;
         t = strtok_r(NULL, " ", &save))
        words[nw++] = t;
    if (st == MC_DEPLOY_ABORTED && nw && mc_reg_targets_parse(words, nw, w, &nt) != 0)
        nt = 0;
    snprintf(reason, sizeof(reason), "%s by uid %u (mcached not running)",
             st == MC_DEPLOY_PAUSED    ? "paused"
             : st == MC_DEPLOY_RUNNING ? "resumed"
                                       : "aborted",
             (unsigned)getuid());
    rc = mc_registry_deploy_update(r, x->id, x->step, st, c->now_ns, reason,
                                   st == MC_DEPLOY_ABORTED && nt ? w : NULL,
                                   st == MC_DEPLOY_ABORTED ? nt : 0, NULL);
    if (rc) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    if (c->json)
        jv_print(json_pack("{s:I, s:s, s:s, s:s}", "id", (json_int_t)x->id, "name", name, "state",
                           mc_deploy_state_name(st), "reason", reason));
    else if (!c->quiet)
        printf("%s: rollout %llu %s\n", name, (unsigned long long)x->id, reason);
    mc_registry_close(r);
    return EXIT_OK;
}

static int control(const struct cli *c, const char *act, const char *name, const char *alias)
{
    const char *args[3] = {act, name, alias ? alias : ""};
    json_t *res;
    int rc = cli_ctl_serves_store(c);

    if (rc == 0)
        rc = cli_ctl_call(c, "deploy-ctl", alias ? 3 : 2, args, CLI_CTL_TIMEOUT_MS, &res);

    if (rc == MC_ENODAEMON)
        return control_offline(c, act, name, alias);
    if (rc)
        return cli_error(rc);
    if (c->json)
        jv_print(res);
    else {
        if (!c->quiet)
            printf("%s: rollout %lld on %s %s\n", name, jint(res, "id"), jstr_or(res, "alias", "?"),
                   jstr_or(res, "reason", "?"));
        json_decref(res);
    }
    return EXIT_OK;
}

/* Build the begin request from the options (bad input: exit 2, nothing sent). */
static int begin_spec(const struct args *a, json_t *j)
{
    const char *v, *strategy = args_value(a, "strategy") ? args_value(a, "strategy") : "canary";
    enum mc_deploy_strategy st;
    json_t *steps = json_array(), *health = json_array();
    uint64_t interval = 300000, minreq = 100, hto = 30;
    double err = 0.02, p99 = 0;
    int rc;

    json_object_set_new(j, "steps", steps);
    json_object_set_new(j, "health", health);
    if ((rc = mc_deploy_strategy_parse(strategy, &st)))
        return rc;
    json_object_set_new(j, "strategy", json_string(strategy));
    if ((v = args_value(a, "steps")) && st != MC_DEPLOY_CANARY)
        return mc_err(MC_EINVAL,
                      "--steps is for a canary; a %s deploy switches all traffic at "
                      "once",
                      strategy);
    if ((rc = parse_steps(v ? v : "10,50,100", steps)))
        return rc;
    if ((v = args_value(a, "interval")) && st == MC_DEPLOY_DIRECT)
        return mc_err(MC_EINVAL,
                      "--interval is for canary and blue-green; a direct deploy is done once "
                      "its move is applied");
    if (v && (rc = parse_duration("interval", v, &interval)))
        return rc;
    if ((v = args_value(a, "max-error-rate")) &&
        (rc = parse_ratio("max-error-rate", v, 0, 1, &err)))
        return rc;
    if ((v = args_value(a, "max-p99-ratio")) &&
        (rc = parse_ratio("max-p99-ratio", v, 1, 1000, &p99)))
        return rc;
    if ((v = args_value(a, "min-requests")) &&
        (rc = cli_parse_range("min-requests", v, 1, 1000000000ull, &minreq)))
        return rc;
    if ((v = args_value(a, "health-timeout")) &&
        (rc = cli_parse_range("health-timeout", v, 1, 3600, &hto)))
        return rc;
    for (size_t i = a->dashdash; i < a->npos; i++)
        json_array_append_new(health, json_string(a->pos[i]));
    json_object_set_new(j, "interval_ms", json_integer((json_int_t)interval));
    json_object_set_new(j, "max_error_rate", json_real(err));
    json_object_set_new(j, "max_p99_ratio", json_real(p99));
    json_object_set_new(j, "min_requests", json_integer((json_int_t)minreq));
    json_object_set_new(j, "health_timeout_ms", json_integer((json_int_t)hto * 1000));
    return 0;
}

static int begin(const struct cli *c, const struct args *a)
{
    const char *alias = args_value(a, "alias");
    size_t before = a->dashdash < a->npos ? a->dashdash : a->npos; /* words before "--" */
    json_t *j, *res;
    char *s;
    char dur[64];
    int rc;

    if (before != 2)
        return cli_usage(c, "deploy needs NAME VERSION (a health command follows \"--\")");
    if (!alias)
        return cli_usage(c, "deploy needs --alias ALIAS (the alias to move)");
    if (!(j = json_object()))
        return cli_error(mc_err(MC_ENOMEM, "out of memory"));
    json_object_set_new(j, "name", json_string(a->pos[0]));
    json_object_set_new(j, "version", json_string(a->pos[1]));
    json_object_set_new(j, "alias", json_string(alias));
    if ((rc = begin_spec(a, j))) {
        json_decref(j);
        return cli_error(rc);
    }
    s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    rc = cli_ctl_serves_store(c);
    if (rc == 0)
        rc = cli_ctl_call(c, "deploy", 1, (const char *const *)&s, -1, &res);
    free(s);
    if (rc == MC_ENODAEMON) {
        char why[512]; /* mc_err() writes where mc_last_error() points */
        snprintf(why, sizeof(why), "%s", mc_last_error());
        return cli_error(mc_err(MC_ENODAEMON, "mcached runs rollouts, and: %s", why));
    }
    if (rc)
        return cli_error(rc);
    if (c->json) {
        jv_print(res);
        return EXIT_OK;
    }
    if (!c->quiet) {
        printf("%s: %s -> %s (rollout %lld, %s, step %lld/%lld): %s\n", jstr_or(res, "name", "?"),
               jstr_or(res, "alias", "?"), jstr_or(res, "targets", "?"), jint(res, "id"),
               jstr_or(res, "strategy", "?"), jint(res, "step"),
               (long long)json_array_size(jget(res, "steps")), jstr_or(res, "state", "?"));
        if (!strcmp(jstr_or(res, "state", ""), "running"))
            printf("mcached judges it every %s; see `mcache deploy --status %s`\n",
                   fmt_duration((double)jint(res, "interval_ms") / 1000, dur),
                   jstr_or(res, "name", "?"));
    }
    json_decref(res);
    return EXIT_OK;
}

static int run_deploy(struct cli *c, struct args *a)
{
    const char *acts[] = {"pause", "resume", "abort"}, *act = NULL;
    unsigned n = args_flag(a, "status");

    for (size_t i = 0; i < 3; i++)
        if (args_flag(a, acts[i])) {
            act = acts[i];
            n++;
        }
    if (n > 1)
        return cli_usage(c, "give one of --status, --pause, --resume, --abort");
    if (args_flag(a, "status")) {
        if (a->npos > 1)
            return cli_usage(c, "deploy --status takes at most NAME");
        return status(c, a->npos ? a->pos[0] : NULL);
    }
    if (act) {
        if (a->npos != 1)
            return cli_usage(c, "deploy --%s needs NAME (and --alias if it has several)", act);
        return control(c, act, a->pos[0], args_value(a, "alias"));
    }
    return begin(c, a);
}

const struct cli_cmd cmd_deploy = {
    .name = "deploy",
    .synopsis = "NAME VERSION --alias ALIAS [OPTIONS] [-- HEALTH-COMMAND...] | --status [NAME] "
                "| --pause|--resume|--abort NAME [--alias ALIAS]",
    .summary =
        "roll a version out on an alias: direct, blue-green or canary, rolled back on errors",
    .help =
        "Begins a rollout of NAME@VERSION on ALIAS, run by mcached (no CLI process stays):\n"
        "  direct      the alias moves at once (after the gate) and the rollout is done;\n"
        "  blue-green  the alias moves at once, then is watched for one interval and\n"
        "              moved back if the new version breaks a threshold;\n"
        "  canary      the alias is split: VERSION gets each of --steps in turn (the old\n"
        "              version the rest), one --interval each.\n"
        "Every step is gated: VERSION is loaded and verified and passes the health check\n"
        "(the command after \"--\", else the model's, `mcache health`). After each interval\n"
        "mcached compares VERSION with the version it replaces over that interval, from\n"
        "what the workers report (mc_report): fewer than --min-requests: hold; error rate\n"
        "above --max-error-rate or p99 above --max-p99-ratio times the old one's: roll\n"
        "back (the alias returns to where it was, in one record; an alert); else advance.\n"
        "When the old version has no counts to compare with (blue-green: none from\n"
        "before the switch either), p99 is not compared and the decision says so.\n"
        "Moving the alias by hand (alias, rollback) aborts the rollout; the move stands.\n"
        "The rollout lives in the registry: a restarted mcached continues it. The command\n"
        "returns once the first step is applied (or refused).\n"
        "\n"
        "Examples:\n"
        "  mcache deploy resnet 2.0.0 --alias production --strategy canary --steps 10,50,100 \\\n"
        "      --interval 5m --max-error-rate 0.02 --max-p99-ratio 1.5 --min-requests 200\n"
        "  mcache deploy resnet 2.0.0 --alias production --strategy blue-green -- ./smoke.sh\n"
        "  mcache deploy --status resnet\n"
        "  mcache deploy --abort resnet",
    .opts = deploy_opts,
    .min_pos = 0,
    .max_pos = ARGS_MAX_POS,
    .run = run_deploy,
};

static int run_deployments(struct cli *c, struct args *a)
{
    const char *name = a->pos[0];
    struct mc_registry *r;
    json_t *arr;
    int rc = cli_open_store(c, false, false, &r);

    if (rc)
        return cli_error(rc);
    if (!cli_model(r, name, &rc)) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    arr = json_array(); /* after every early return */
    if (!c->json && !c->quiet)
        printf("%-4s %-12s %-12s %-10s %-11s %-7s %-20s %s\n", "ID", "ALIAS", "VERSION", "STRATEGY",
               "OUTCOME", "STEP", "STARTED", "REASON");
    for (size_t i = 0; i < mc_registry_deploy_count(r); i++) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(r, i);
        char when[64], step[16];
        if (strcmp(x->name, name))
            continue;
        if (c->json) {
            json_array_append_new(arr, jv_deploy(x));
            continue;
        }
        snprintf(step, sizeof(step), "%zu/%zu", x->step + 1, x->nsteps);
        printf("%-4llu %-12s %-12s %-10s %-11s %-7s %-20s %s\n", (unsigned long long)x->id,
               x->alias, x->version, mc_deploy_strategy_name(x->strategy),
               mc_deploy_state_name(x->state), step, fmt_time(x->started_ns, when),
               x->reason ? x->reason : "");
    }
    if (c->json)
        jv_print(json_pack("{s:s, s:o}", "name", name, "deployments", arr));
    else
        json_decref(arr);
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_deployments = {
    .name = "deployments",
    .synopsis = "NAME",
    .summary = "every rollout of a model, oldest first, with its outcome",
    .help = "Lists NAME's rollouts (`mcache deploy`), oldest first: id, alias, version,\n"
            "strategy, outcome (running, paused, succeeded, rolled-back, aborted, failed),\n"
            "the step it reached, when it began, and the last decision or its reason.\n"
            "\n"
            "Examples:\n"
            "  mcache deployments resnet\n"
            "  mcache deployments resnet --json",
    .min_pos = 1,
    .max_pos = 1,
    .run = run_deployments,
};
