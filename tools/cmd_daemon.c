/*
 * cmd_daemon.c - asking mcached to change the cache: `mcache load`,
 * `evict`, `pin` and `unpin`. A load shows progress by polling mcached's
 * status from a second thread while the first waits for the answer.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"
#include "tools/output.h"
#include "tools/progress.h"

/* Longest --timeout: its milliseconds and 2 s of slack must fit an int. */
#define MAX_TIMEOUT_S 2000000

/* NAME@REF -> name, ref ("latest" if none). */
static int target(const char *arg, char *buf, size_t len, const char **name, const char **ref)
{
    int rc = cli_split_ref(arg, buf, len, name, ref);

    if (!rc && !*ref)
        *ref = "latest";
    return rc;
}

/* ---- load ----------------------------------------------------------------- */

struct watch {
    const struct cli *c;
    struct progress bar;
    char name[512], version[512];
    volatile int stop;
};

/* Poll mcached's status for the version's loaded bytes until told to stop. */
static void *watch_load(void *arg)
{
    struct watch *w = arg;
    struct timespec tick = {0, 100 * 1000000L};

    while (!__atomic_load_n(&w->stop, __ATOMIC_ACQUIRE)) {
        json_t *st, *m;
        size_t i;

        if (cli_ctl_call(w->c, "status", 0, NULL, 2000, &st) == 0) {
            json_array_foreach(json_object_get(st, "models"), i, m)
            {
                if (jstr(m, "name") && !strcmp(jstr(m, "name"), w->name) && jstr(m, "version") &&
                    !strcmp(jstr(m, "version"), w->version))
                    progress_update(&w->bar, (uint64_t)jint(m, "loaded_bytes"));
            }
            json_decref(st);
        }
        nanosleep(&tick, NULL);
    }
    return NULL;
}

static const struct opt_spec load_opts[] = {
    {"timeout", 0, OPT_VALUE, "SECONDS",
     "give up after SECONDS, at most 2000000 (default: wait until done)"},
    {0},
};

static int run_load(struct cli *c, struct args *a)
{
    const char *name, *ref, *tmo = args_value(a, "timeout");
    const struct mc_reg_version *v;
    struct mc_registry *r = NULL;
    struct watch w = {.c = c};
    pthread_t th;
    bool watching = false;
    char buf[1024], ms[32], sz[FMT_LEN], du[FMT_LEN];
    uint64_t secs = 0;
    json_t *res;
    double t0;
    int rc;

    rc = target(a->pos[0], buf, sizeof(buf), &name, &ref);
    if (!rc && tmo)
        rc = cli_parse_uint("timeout", tmo, MAX_TIMEOUT_S, &secs);
    if (rc)
        return cli_error(rc);
    snprintf(ms, sizeof(ms), "%llu", tmo ? (unsigned long long)secs * 1000 : 0ull);
    /* Progress: find the version and its size in the registry (mcached resolves the same). */
    if (cli_open_store(c, false, false, &r) == 0 && mc_registry_resolve(r, name, ref, &v) == 0) {
        char label[80];
        snprintf(w.name, sizeof(w.name), "%s", v->name);
        snprintf(w.version, sizeof(w.version), "%s", v->version);
        snprintf(label, sizeof(label), "load %s@%s", v->name, v->version);
        progress_start(&w.bar, c, label, v->size);
        watching = w.bar.on && pthread_create(&th, NULL, watch_load, &w) == 0;
    }
    mc_registry_close(r);
    t0 = cli_mono_s();
    {
        const char *args[3] = {name, ref, ms};
        rc = cli_ctl_call(c, "load", tmo ? 3 : 2, args, tmo ? (int)(secs * 1000 + 2000) : -1, &res);
    }
    if (watching) {
        __atomic_store_n(&w.stop, 1, __ATOMIC_RELEASE);
        pthread_join(th, NULL);
    }
    progress_end(&w.bar);
    if (rc)
        return cli_error(rc);
    bool already = json_is_true(json_object_get(res, "already"));
    if (c->json)
        jv_print(json_pack("{s:O, s:O, s:O, s:O, s:f, s:b}", "name", jget(res, "name"), "version",
                           jget(res, "version"), "state", jget(res, "state"), "size",
                           jget(res, "size"), "seconds", cli_mono_s() - t0, "already", already));
    else if (!c->quiet && already)
        printf("%s@%s is already resident (%s)\n", jstr_or(res, "name", name),
               jstr_or(res, "version", ref), fmt_size((uint64_t)jint(res, "size"), sz));
    else if (!c->quiet)
        printf("loaded %s@%s: %s in %s\n", jstr_or(res, "name", name), jstr_or(res, "version", ref),
               fmt_size((uint64_t)jint(res, "size"), sz), fmt_duration(cli_mono_s() - t0, du));
    json_decref(res);
    return EXIT_OK;
}

const struct cli_cmd cmd_load = {
    .name = "load",
    .synopsis = "NAME[@REF] [--timeout SECONDS]",
    .summary = "have mcached load a version into the arena (needs mcached)",
    .help = "Asks mcached to load the version REF resolves to (default: latest) and waits\n"
            "until it is resident and verified, showing progress on a terminal. Returns at\n"
            "once if it is already resident. Fails with the reason (checksum mismatch, no\n"
            "room in the arena...) if the load fails.\n"
            "\n"
            "Examples:\n"
            "  mcache load resnet@production\n"
            "  mcache load 'org/llama@^3' --timeout 120",
    .opts = load_opts,
    .min_pos = 1,
    .max_pos = 1,
    .run = run_load,
};

/* ---- evict, pin, unpin -------------------------------------------------- */

static int print_result(const struct cli *c, json_t *res, const char *verb, const char *name,
                        const char *ref, bool daemon, int pinned)
{
    /* A pin whose load failed at once (no room, a bad artifact) is not done. */
    const char *state = jstr_or(res, "state", "");
    int status = daemon && pinned == 1 && !strcmp(state, "failed") ? EXIT_FAIL : EXIT_OK;

    if (status != EXIT_OK && !c->json)
        fprintf(stderr,
                "mcache: pinned %s@%s in the registry, but mcached cannot load it: %s\n",
                jstr_or(res, "name", name), jstr_or(res, "version", ref),
                jstr_or(res, "error", "see `mcache stat`"));
    if (c->json) {
        json_t *o = json_pack("{s:O, s:O, s:O, s:O, s:b}", "name", jget(res, "name"), "version",
                              jget(res, "version"), "state", jget(res, "state"), "size",
                              jget(res, "size"), "daemon", daemon);
        if (pinned >= 0)
            json_object_set_new(o, "pinned", json_boolean(pinned));
        if (json_object_get(res, "error"))
            json_object_set(o, "error", json_object_get(res, "error"));
        jv_print(o);
    } else if (!c->quiet && status == EXIT_OK) {
        printf("%s %s@%s%s\n", verb, jstr_or(res, "name", name), jstr_or(res, "version", ref),
               daemon   ? ""
               : pinned ? " in the registry (mcached is not running; it loads the version and "
                          "keeps it when it starts)"
                        : " in the registry (mcached is not running)");
    }
    json_decref(res);
    return status;
}

static int run_evict(struct cli *c, struct args *a)
{
    const char *name, *ref;
    char buf[1024];
    json_t *res;
    int rc = target(a->pos[0], buf, sizeof(buf), &name, &ref);

    if (!rc) {
        const char *args[2] = {name, ref};
        rc = cli_ctl_call(c, "evict", 2, args, CLI_CTL_TIMEOUT_MS, &res);
    }
    if (rc)
        return cli_error(rc);
    return print_result(c, res, "evicted", name, ref, true, -1);
}

const struct cli_cmd cmd_evict = {
    .name = "evict",
    .synopsis = "NAME[@REF]",
    .summary = "have mcached drop a version from the arena (needs mcached)",
    .help = "Removes the version from the arena; its memory is reused once no worker holds\n"
            "it. Refused for an aliased version (it would be loaded again: move the alias\n"
            "first) and for a pinned one (unpin it first). The registry is not changed.\n"
            "\n"
            "Examples:\n"
            "  mcache evict resnet@1.0.0\n"
            "  mcache evict resnet@1.0.0 --json",
    .min_pos = 1,
    .max_pos = 1,
    .run = run_evict,
};

/*
 * Pins live in the registry, so with mcached down they are set there and
 * take effect when it starts. With it up, mcached sets them (and loads).
 */
static int pin(struct cli *c, struct args *a, bool on)
{
    const char *name, *ref;
    const struct mc_reg_version *v;
    struct mc_registry *r;
    char buf[1024];
    json_t *res;
    int rc = target(a->pos[0], buf, sizeof(buf), &name, &ref);

    if (!rc) {
        const char *args[2] = {name, ref};
        rc = cli_ctl_call(c, on ? "pin" : "unpin", 2, args, CLI_CTL_TIMEOUT_MS, &res);
        if (rc == 0)
            return print_result(c, res, on ? "pinned" : "unpinned", name, ref, true, on);
    }
    if (rc != MC_ENODAEMON)
        return cli_error(rc);
    rc = cli_open_store(c, true, false, &r);
    if (!rc)
        rc = mc_registry_resolve(r, name, ref, &v);
    if (!rc) {
        res = json_pack("{s:s, s:s, s:n, s:I}", "name", v->name, "version", v->version, "state",
                        "size", (json_int_t)v->size);
        rc = mc_registry_set_flags(r, v->name, v->version, -1, on, NULL);
        if (rc)
            json_decref(res);
    }
    if (rc) {
        mc_registry_close(r);
        return cli_error(rc);
    }
    rc = print_result(c, res, on ? "pinned" : "unpinned", name, ref, false, on);
    mc_registry_close(r);
    return rc;
}

static int run_pin(struct cli *c, struct args *a)
{
    return pin(c, a, true);
}

static int run_unpin(struct cli *c, struct args *a)
{
    return pin(c, a, false);
}

const struct cli_cmd cmd_pin = {
    .name = "pin",
    .synopsis = "NAME[@REF]",
    .summary = "keep a version resident: never evicted, never removed by gc",
    .help = "Marks the version pinned in the registry, so it survives restarts: mcached\n"
            "loads it and never evicts it, and gc never removes it. With mcached running,\n"
            "it does both at once; with mcached down, the registry is changed and mcached\n"
            "acts on it when it starts.\n"
            "\n"
            "Examples:\n"
            "  mcache pin resnet@production\n"
            "  mcache unpin resnet@1.0.0",
    .min_pos = 1,
    .max_pos = 1,
    .run = run_pin,
};

const struct cli_cmd cmd_unpin = {
    .name = "unpin",
    .synopsis = "NAME[@REF]",
    .summary = "undo pin: the version may be evicted and removed again",
    .help = "Clears the version's pin in the registry (through mcached when it runs). The\n"
            "version stays resident until mcached needs the room.\n"
            "\n"
            "Examples:\n"
            "  mcache unpin resnet@1.0.0",
    .min_pos = 1,
    .max_pos = 1,
    .run = run_unpin,
};
