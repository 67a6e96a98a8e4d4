/*
 * cmd_stat.c - `mcache stat`: the arena (and who may read it), its readers
 * and the daemon. With mcached running everything comes from its `status`;
 * without it, what the arena and the reader table tell by themselves (no
 * loads, heap or reclamation backlog: those live in the daemon; who may read
 * is read off the arena file's mode and group).
 *
 * The JSON is built here field by field from a fixed list of keys, so that
 * the CLI's schema (docs/cli.md) does not change when mcached adds fields.
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tools/arena_view.h"
#include "tools/cli.h"
#include "tools/ctl_client.h"
#include "tools/jsonout.h"
#include "tools/output.h"

static const char *const arena_keys[] = {
    "path",            "access",    "base",      "size",         "page_size",  "backing",
    "data_size",       "data_used", "data_free", "largest_free", "index_size", "index_used",
    "models_resident", "versions",  "aliases",   "generation",   "epoch",      "created_ns",
    NULL};
static const char *const reclaim_keys[] = {"pending_items", "pending_bytes", "retired_total",
                                           "freed_total",   "stalls",        NULL};
static const char *const daemon_keys[] = {
    "pid",    "version", "uptime_s", "started_ns",          "store", "cache",
    "socket", "adopted", "adopt_ms", "registry_generation", NULL};
static const char *const loads_keys[] = {
    "ok",        "failed", "bytes",         "seconds",     "gbps",       "in_flight", "queued",
    "evictions", "engine", "fixed_buffers", "queue_depth", "chunk_size", NULL};
static const char *const heap_keys[] = {"allocator", "allocated", "active",   "resident",
                                        "mapped",    "metadata",  "retained", NULL};
static const char *const model_keys[] = {"name",         "version", "state",     "size",   "pinned",
                                         "preload",      "aliases", "loaded_ns", "load_s", "idle_s",
                                         "loaded_bytes", "error",   NULL};
static const char *const reader_keys[] = {"slot",      "pid",   "tid", "since_ns",
                                          "in_lookup", "holds", NULL};
static const char *const failure_keys[] = {"at_ns", "what", "why", NULL};

/* A new object with exactly `keys` from src (null where src lacks one). */
static json_t *pick(const json_t *src, const char *const *keys)
{
    json_t *o = json_object();

    for (; *keys; keys++)
        json_object_set(o, *keys, jget(src, *keys));
    return o;
}

static json_t *pick_all(const json_t *arr, const char *const *keys)
{
    json_t *out = json_array(), *e;
    size_t i;

    json_array_foreach(arr, i, e)
    {
        json_array_append_new(out, pick(e, keys));
    }
    return out;
}

/* The stat document from mcached's status answer. */
static json_t *from_daemon(const struct cli *c, json_t *st)
{
    json_t *arena = pick(json_object_get(st, "arena"), arena_keys);
    json_t *d = pick(json_object_get(st, "daemon"), daemon_keys);

    json_object_set_new(arena, "created_at", jv_time((uint64_t)jint(arena, "created_ns")));
    json_object_set_new(arena, "loader_pid", json_integer(jint(d, "pid")));
    json_object_set_new(d, "loads", pick(json_object_get(st, "loads"), loads_keys));
    json_object_set_new(d, "heap", pick(json_object_get(st, "heap"), heap_keys));
    json_object_set_new(d, "failures", pick_all(json_object_get(st, "failures"), failure_keys));
    if (json_is_object(json_object_get(st, "alerts"))) /* deployments' alerts (loader/alerts.h) */
        json_object_set(d, "alerts", json_object_get(st, "alerts"));
    return json_pack("{s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:n}", "source", "mcached", "cache",
                     c->cache, "arena", arena, "reclaim",
                     pick(json_object_get(st, "reclaim"), reclaim_keys), "readers",
                     pick_all(json_object_get(st, "readers"), reader_keys), "daemon", d, "models",
                     pick_all(json_object_get(st, "models"), model_keys), "note");
}

/* The stat document from the arena alone; why_no_daemon says why mcached did not answer. */
static json_t *from_arena(const struct cli *c, struct cli_arena *ar, const char *why_no_daemon)
{
    const struct mc_cache_info *in = &ar->info;
    json_t *readers = cli_arena_readers(c, ar), *arena;
    char base[32], access[96];

    snprintf(base, sizeof(base), "0x%llx", (unsigned long long)in->base);
    cli_arena_access(ar->path, access, sizeof(access));
    arena = json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:n, s:n, "
        "s:I, s:I, s:I}",
        "path", ar->path, "access", access, "base", base, "size", (json_int_t)in->size, "page_size",
        (json_int_t)in->page_size, "backing", mc_backing_name(ar->hdr.backing), "data_size",
        (json_int_t)in->data_size, "data_used", (json_int_t)in->data_used, "data_free",
        (json_int_t)(in->data_size - in->data_used), "largest_free",
        (json_int_t)in->data_largest_free, "index_size", (json_int_t)in->index_size, "index_used",
        (json_int_t)in->index_used, "models_resident", (json_int_t)in->models, "versions",
        "aliases", "generation", (json_int_t)in->generation, "epoch", (json_int_t)in->epoch,
        "created_ns", (json_int_t)in->created_ns);
    json_object_set_new(arena, "created_at", jv_time(in->created_ns));
    json_object_set_new(arena, "loader_pid", json_integer(in->loader_pid));
    return json_pack("{s:s, s:s, s:o, s:n, s:o, s:n, s:n, s:s}", "source", "arena", "cache",
                     c->cache, "arena", arena, "reclaim", "readers",
                     readers ? readers : json_null(), "daemon", "models", "note", why_no_daemon);
}

/* ---- human output --------------------------------------------------------- */

#define W 13 /* label width inside sections */

/* Who may read the models: said loudly when it is every local user. */
static void print_access(const json_t *a)
{
    const char *who = jstr_or(a, "access", "?"), *group = strchr(who, ' ');

    printf("  ");
    if (!strcmp(who, "any local user"))
        kv(stdout, W, "access", "ANY LOCAL USER can read every model and hold memory (mcached "
                                "--reader-group '*')");
    else if (group)
        kv(stdout, W, "access", "%s: only mcached's uid, group %s and root can read models",
           who, group + 1);
    else
        kv(stdout, W, "access", "%s", who);
}

static void print_arena(const struct cli *c, const json_t *a, const json_t *rc)
{
    char b1[FMT_LEN], b2[FMT_LEN], b3[FMT_LEN], b4[FMT_LEN];

    printf("arena      %s (%s)\n", jstr_or(a, "path", "?"), jstr_or(a, "backing", "?"));
    printf("  ");
    kv(stdout, W, "size", "%s at %s, created %s (%s)", fmt_size(jint(a, "size"), b1),
       jstr_or(a, "base", "?"), fmt_time(jint(a, "created_ns"), b2),
       fmt_age(jint(a, "created_ns"), c->now_ns, b3));
    print_access(a);
    printf("  ");
    kv(stdout, W, "page size", "%s", fmt_size(jint(a, "page_size"), b1));
    printf("  ");
    kv(stdout, W, "data", "%s used of %s; %s free, largest free extent %s",
       fmt_size(jint(a, "data_used"), b1), fmt_size(jint(a, "data_size"), b2),
       fmt_size(jint(a, "data_free"), b3), fmt_size(jint(a, "largest_free"), b4));
    printf("  ");
    kv(stdout, W, "index", "%s used of %s", fmt_size(jint(a, "index_used"), b1),
       fmt_size(jint(a, "index_size"), b2));
    printf("  ");
    if (json_is_integer(json_object_get(a, "versions")))
        kv(stdout, W, "models", "%lld resident (%lld versions, %lld aliases known)",
           jint(a, "models_resident"), jint(a, "versions"), jint(a, "aliases"));
    else
        kv(stdout, W, "models", "%lld resident", jint(a, "models_resident"));
    printf("  ");
    kv(stdout, W, "generation", "%lld (reclamation epoch %lld)", jint(a, "generation"),
       jint(a, "epoch"));
    if (json_is_object(rc)) {
        printf("  ");
        kv(stdout, W, "reclamation", "%lld pending (%s); %lld retired, %lld freed in all%s",
           jint(rc, "pending_items"), fmt_size(jint(rc, "pending_bytes"), b1),
           jint(rc, "retired_total"), jint(rc, "freed_total"),
           json_array_size(json_object_get(rc, "stalls")) ? "; held back by pinned readers" : "");
    }
}

static void print_readers(const struct cli *c, json_t *rd)
{
    static const char *head[] = {"SLOT", "PID", "SINCE", "HOLDS", NULL};
    struct table t;
    json_t *e;
    size_t i;

    if (!json_is_array(rd)) {
        printf("\nreaders    ? (the reader table cannot be read: %s)\n", mc_last_error());
        return;
    }
    printf("\nreaders    %zu attached\n", json_array_size(rd));
    if (!json_array_size(rd))
        return;
    table_init(&t, 3, head);
    json_array_foreach(rd, i, e)
    {
        char slot[16], pid[16], since[FMT_LEN], holds[1024];
        const char *row[4] = {slot, pid, fmt_age(jint(e, "since_ns"), c->now_ns, since),
                              jv_join(json_object_get(e, "holds"), ", ", holds, sizeof(holds))};

        snprintf(slot, sizeof(slot), "%lld", jint(e, "slot"));
        snprintf(pid, sizeof(pid), "%lld", jint(e, "pid"));
        table_add(&t, row);
    }
    table_print(&t, stdout, 2);
    table_free(&t);
}

static void print_daemon(const struct cli *c, const json_t *d)
{
    const json_t *l = json_object_get(d, "loads"), *h = json_object_get(d, "heap");
    char b1[FMT_LEN], b2[FMT_LEN], b3[FMT_LEN], b4[FMT_LEN];
    json_t *f;
    size_t i;

    printf("\nmcached    pid %lld, version %s, up %s%s\n", jint(d, "pid"),
           jstr_or(d, "version", "?"), fmt_duration(jnum(d, "uptime_s"), b1),
           json_is_true(json_object_get(d, "adopted")) ? ", adopted the arena" : "");
    printf("  ");
    kv(stdout, W, "store", "%s (generation %lld)", jstr_or(d, "store", "?"),
       jint(d, "registry_generation"));
    printf("  ");
    kv(stdout, W, "socket", "%s", jstr_or(d, "socket", "?"));
    printf("  ");
    kv(stdout, W, "loads", "%lld ok, %lld failed, %lld in flight, %lld queued, %lld evictions",
       jint(l, "ok"), jint(l, "failed"), jint(l, "in_flight"), jint(l, "queued"),
       jint(l, "evictions"));
    printf("  ");
    kv(stdout, W, "read", "%s in %s (%s), %s, queue depth %lld, %s chunks",
       fmt_size(jint(l, "bytes"), b1), fmt_duration(jnum(l, "seconds"), b2),
       fmt_rate(jnum(l, "gbps") * 1e9, b3), jstr_or(l, "engine", "?"), jint(l, "queue_depth"),
       fmt_size(jint(l, "chunk_size"), b4));
    printf("  ");
    if (json_is_integer(json_object_get(h, "allocated")))
        kv(stdout, W, "heap", "%s: %s allocated, %s active, %s resident, %s mapped",
           jstr_or(h, "allocator", "?"), fmt_size(jint(h, "allocated"), b1),
           fmt_size(jint(h, "active"), b2), fmt_size(jint(h, "resident"), b3),
           fmt_size(jint(h, "mapped"), b4));
    else
        kv(stdout, W, "heap", "%s (no statistics)", jstr_or(h, "allocator", "?"));
    if (json_is_object(json_object_get(d, "alerts"))) {
        const json_t *al = json_object_get(d, "alerts");
        printf("  ");
        kv(stdout, W, "alerts", "%lld (%lld rollback, %lld health, %lld threshold; `mcache alerts`)%s",
           jint(al, "total"), jint(al, "rollback"), jint(al, "health"), jint(al, "threshold"),
           jint(al, "hook_failed") ? ", the alert hook failed" : "");
    }
    if (!json_array_size(json_object_get(d, "failures")))
        return;
    printf("\nfailures (most recent first)\n");
    json_array_foreach(json_object_get(d, "failures"), i, f)
    {
        printf("  %s  %s: %s\n", fmt_age(jint(f, "at_ns"), c->now_ns, b1), jstr_or(f, "what", "?"),
               jstr_or(f, "why", "?"));
    }
}

static void print_stat(const struct cli *c, json_t *s)
{
    json_t *d = json_object_get(s, "daemon");

    print_arena(c, json_object_get(s, "arena"), json_object_get(s, "reclaim"));
    print_readers(c, json_object_get(s, "readers"));
    if (json_is_object(d)) {
        print_daemon(c, d);
    } else {
        printf("\nmcached    not running: %s\n", jstr_or(s, "note", "?"));
        printf("  (loads, heap and reclamation backlog are known only to mcached)\n");
    }
}

static int run_stat(struct cli *c, struct args *a)
{
    struct cli_arena ar;
    json_t *st, *out;
    char why[1024];
    int rc, arc;

    (void)a;
    rc = cli_ctl_call(c, "status", 0, NULL, CLI_CTL_TIMEOUT_MS, &st);
    if (rc == 0) {
        out = from_daemon(c, st);
        json_decref(st);
    } else {
        snprintf(why, sizeof(why), "%s", mc_last_error());
        arc = cli_arena_attach(c, &ar);
        if (arc) {
            /* Neither: say both, and exit as "not reachable". */
            char arena_why[1024];
            snprintf(arena_why, sizeof(arena_why), "%s", mc_last_error());
            cli_arena_detach(&ar);
            if (rc != MC_ENODAEMON)
                return cli_error(rc);
            return cli_error(mc_err(MC_ENODAEMON, "%s; and %s", why, arena_why));
        }
        if (ar.info.loader_pid && kill((pid_t)ar.info.loader_pid, 0) == 0)
            snprintf(why + strlen(why), sizeof(why) - strlen(why),
                     " (the arena's loader, pid %u, is alive: is --socket right?)",
                     ar.info.loader_pid);
        out = from_arena(c, &ar, why);
        cli_arena_detach(&ar);
    }
    if (c->json)
        jv_print(out);
    else {
        print_stat(c, out);
        json_decref(out);
    }
    return EXIT_OK;
}

const struct cli_cmd cmd_stat = {
    .name = "stat",
    .synopsis = "",
    .summary = "the arena, its readers and mcached: sizes, loads, throughput, heap",
    .help = "Shows the cache's arena (size, used, free, largest free extent, the page size\n"
            "backing it, models resident, reclamation backlog, and who may read it: the\n"
            "owner and group, or ANY LOCAL USER), the readers attached (pid,\n"
            "since when, what they hold) and mcached (uptime, loads, bytes read and GB/s,\n"
            "failures, heap statistics). With mcached down it shows what the arena and its\n"
            "reader table tell by themselves, and says so; with neither, it fails with exit\n"
            "status 4.\n"
            "\n"
            "Examples:\n"
            "  mcache stat\n"
            "  mcache --cache gpu0 stat --json",
    .min_pos = 0,
    .max_pos = 0,
    .run = run_stat,
};
