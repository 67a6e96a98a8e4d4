/*
 * cmd_verify.c - `mcache verify`: re-hash artifacts on disk, and with
 * --resident the bytes resident in the arena, and compare them with the
 * manifest's checksums (XXH3-128, "xxh3-128:<32 lowercase hex>").
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "tools/arena_view.h"
#include "tools/cli.h"
#include "tools/jsonout.h"
#include "tools/output.h"
#include "tools/progress.h"
#include "tools/verify_core.h"

#define CHUNK (4u << 20)

static const struct opt_spec verify_opts[] = {
    {"all", 'a', OPT_FLAG, NULL, "every version in the store (the default with no NAME)"},
    {"resident", 0, OPT_FLAG, NULL, "also hash the bytes resident in the cache's arena"},
    {0},
};

struct run {
    const struct cli *c;
    struct progress bar;
    uint64_t done; /* bytes hashed so far, for the bar */
    json_t *results;
    unsigned failed;
    struct mc_registry *reg;
};

/* Record one check's outcome; problems also go to stderr, as a full sentence. */
static void result(struct run *r, const struct mc_reg_version *v, const char *where,
                   const char *res, const char *actual, double secs, const char *msg)
{
    bool bad = strcmp(res, "ok") && strcmp(res, "not-resident");

    json_array_append_new(r->results,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:I, s:f, s:o}", "name",
                                    v->name, "version", v->version, "where", where, "result", res,
                                    "expected", v->checksum, "actual", jv_str(actual), "size",
                                    (json_int_t)v->size, "seconds", secs, "message", jv_str(msg)));
    if (bad) {
        r->failed++;
        progress_clear(&r->bar);
        fprintf(stderr, "mcache: %s\n", msg);
    }
}

static void hash_chunk(struct run *r, XXH3_state_t *st, const void *p, size_t n)
{
    XXH3_128bits_update(st, p, n);
    r->done += n;
    progress_update(&r->bar, r->done);
}

/* Hash len bytes of memory at mem into out. 0, or an MC code. */
static int hash(struct run *r, const unsigned char *mem, uint64_t len, char *out)
{
    XXH3_state_t *st = XXH3_createState();
    int rc = 0;

    if (!st)
        return mc_err(MC_ENOMEM, "out of memory");
    XXH3_128bits_reset(st);
    for (uint64_t off = 0; off < len && !rc; off += CHUNK) {
        hash_chunk(r, st, mem + off, len - off < CHUNK ? (size_t)(len - off) : CHUNK);
        if (cli_interrupted)
            rc = mc_err(MC_EIO, "interrupted");
    }
    if (!rc)
        cli_xxh3_checksum(st, out);
    XXH3_freeState(st);
    return rc;
}

static void verify_progress(void *arg, size_t n)
{
    struct run *r = arg;

    r->done += n;
    progress_update(&r->bar, r->done);
}

static bool verify_stop(void *arg)
{
    (void)arg;
    return cli_interrupted;
}

/* The artifact, local or in the object store (verify_core.c, shared with mcache-serve). */
static void check_disk(struct run *r, const struct mc_reg_version *v)
{
    struct cli_verify o = {.progress = verify_progress, .stop = verify_stop, .arg = r};

    cli_verify_artifact(r->reg, v, &o);
    result(r, v, "disk", o.result, o.actual[0] ? o.actual : NULL, o.seconds,
           o.message[0] ? o.message : NULL);
}

static void check_resident(struct run *r, struct cli_arena *ar, const struct mc_reg_version *v)
{
    char got[64], msg[2048];
    double t0 = cli_mono_s();
    mc_model *m;
    int rc = mc_get(ar->mc, v->name, v->version, &m);

    if (rc == MC_ENOTRESIDENT || rc == MC_ENOENT) {
        r->done += v->size;
        result(r, v, "arena", "not-resident", NULL, 0, NULL);
        return;
    }
    if (rc) {
        snprintf(msg, sizeof(msg), "%s@%s in the arena: %s", v->name, v->version, mc_last_error());
        r->done += v->size;
        result(r, v, "arena", rc == MC_EFAILED ? "failed" : "error", NULL, 0, msg);
        return;
    }
    rc = hash(r, mc_model_data(m), mc_model_size(m), got);
    if (rc) {
        snprintf(msg, sizeof(msg), "%s@%s in the arena: %s", v->name, v->version, mc_last_error());
        result(r, v, "arena", "error", NULL, cli_mono_s() - t0, msg);
    } else if (strcmp(got, v->checksum) || strcmp(mc_model_checksum(m), v->checksum)) {
        snprintf(msg, sizeof(msg),
                 "%s@%s: the resident bytes hash to %s (the arena's record says %s) but the "
                 "manifest says %s; evict it (`mcache evict %s@%s`) and load it again",
                 v->name, v->version, got, mc_model_checksum(m), v->checksum, v->name, v->version);
        result(r, v, "arena", "mismatch", got, cli_mono_s() - t0, msg);
    } else {
        result(r, v, "arena", "ok", got, cli_mono_s() - t0, NULL);
    }
    mc_release(m);
}

/* The versions to check, in the registry's order; *n their count. */
static int targets(const struct cli *c, struct mc_registry *reg, const struct args *a,
                   const struct mc_reg_version ***out, size_t *n)
{
    struct mc_search q = {.order = MC_ORDER_VERSION_ASC};
    const char *name, *ref;
    char buf[1024];
    int rc;

    (void)c;
    if (!a->npos)
        return mc_registry_search(reg, &q, out, n);
    rc = cli_split_ref(a->pos[0], buf, sizeof(buf), &name, &ref);
    if (rc)
        return rc;
    if (!cli_model(reg, name, &rc))
        return rc;
    if (!ref) {
        q.pattern = name; /* names hold no glob characters: this model only */
        return mc_registry_search(reg, &q, out, n);
    }
    *out = calloc(1, sizeof(**out));
    if (!*out)
        return mc_err(MC_ENOMEM, "out of memory");
    *n = 1;
    rc = mc_registry_resolve(reg, name, ref, &(*out)[0]);
    if (rc) {
        free(*out);
        *out = NULL;
    }
    return rc;
}

static int run_verify(struct cli *c, struct args *a)
{
    bool resident = args_flag(a, "resident");
    const struct mc_reg_version **vs = NULL;
    struct run r = {.c = c, .results = json_array()};
    struct mc_registry *reg = NULL;
    struct cli_arena ar = {0};
    uint64_t total = 0;
    size_t n = 0;
    double t0 = cli_mono_s();
    char label[80], sz[FMT_LEN], du[FMT_LEN];
    int rc;

    if (a->npos && args_flag(a, "all")) {
        json_decref(r.results);
        return cli_usage(c, "give NAME[@REF] or --all, not both");
    }
    rc = cli_open_store(c, false, false, &reg);
    r.reg = reg;
    if (!rc)
        rc = targets(c, reg, a, &vs, &n);
    if (!rc && resident)
        rc = cli_arena_attach(c, &ar);
    if (rc) {
        rc = cli_error(rc);
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        total += vs[i]->size * (resident ? 2 : 1);
    snprintf(label, sizeof(label), "verify %zu version%s", n, n == 1 ? "" : "s");
    cli_catch_signals();
    progress_start(&r.bar, c, label, total);
    for (size_t i = 0; i < n && !cli_interrupted; i++) {
        check_disk(&r, vs[i]);
        if (resident)
            check_resident(&r, &ar, vs[i]);
    }
    progress_end(&r.bar);
    if (cli_interrupted) {
        rc = cli_error(
            mc_err(MC_EIO, "verify interrupted after %zu checks", json_array_size(r.results)));
        goto out;
    }
    if (c->json) {
        jv_print(json_pack("{s:b, s:I, s:I, s:I, s:f, s:O}", "ok", r.failed == 0, "checked",
                           (json_int_t)json_array_size(r.results), "failed", (json_int_t)r.failed,
                           "bytes", (json_int_t)r.done, "seconds", cli_mono_s() - t0, "results",
                           r.results));
    } else if (!c->quiet) {
        static const char *head[] = {"VERSION", "WHERE", "RESULT", "SIZE", NULL};
        struct table t;
        json_t *e;
        size_t i;

        table_init(&t, 1u << 3, head);
        json_array_foreach(r.results, i, e)
        {
            char ver[1024], s1[FMT_LEN];
            const char *row[4] = {ver, jstr(e, "where"), jstr(e, "result"),
                                  fmt_size((uint64_t)jint(e, "size"), s1)};
            snprintf(ver, sizeof(ver), "%s@%s", jstr(e, "name"), jstr(e, "version"));
            table_add(&t, row);
        }
        if (t.nrows)
            table_print(&t, stdout, 0);
        table_free(&t);
        printf("%zu check(s) of %zu version(s), %s in %s: %s\n", json_array_size(r.results), n,
               fmt_size(r.done, sz), fmt_duration(cli_mono_s() - t0, du),
               r.failed ? "FAILED" : "all ok");
    }
    rc = r.failed ? EXIT_FAIL : EXIT_OK;
out:
    json_decref(r.results);
    free(vs);
    cli_arena_detach(&ar);
    mc_registry_close(reg);
    return rc;
}

const struct cli_cmd cmd_verify = {
    .name = "verify",
    .synopsis = "[NAME[@REF] | --all] [--resident]",
    .summary = "re-hash artifacts (and resident bytes) against the manifest",
    .help = "Reads every artifact checked and compares its XXH3-128 checksum with the one\n"
            "recorded when it was pushed; with --resident, also hashes the bytes resident in\n"
            "the cache's arena (the arena must exist; versions not resident are listed as\n"
            "such, not as failures). NAME checks every version of a model, NAME@REF one\n"
            "version, nothing or --all the whole store. Each problem is described on stderr;\n"
            "the exit status is 1 if any check failed. A progress bar shows on a terminal.\n"
            "\n"
            "Examples:\n"
            "  mcache verify\n"
            "  mcache verify resnet@production --resident\n"
            "  mcache verify --all --json",
    .opts = verify_opts,
    .min_pos = 0,
    .max_pos = 1,
    .run = run_verify,
};
