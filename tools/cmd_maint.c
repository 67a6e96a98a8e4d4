/*
 * cmd_maint.c - looking after the store: `mcache init`, `mcache rm`,
 * `mcache gc` (retention) and `mcache fsck` (check and repair the
 * manifest).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/err.h"
#include "tools/cli.h"
#include "tools/jsonout.h"
#include "tools/output.h"

/* ---- init --------------------------------------------------------------- */

static int run_init(struct cli *c, struct args *a)
{
    struct mc_registry *r;
    struct stat st;
    bool existed = stat(c->store, &st) == 0;
    int rc;

    (void)a;
    rc = cli_open_store(c, true, true, &r);
    if (rc)
        return cli_error(rc);
    if (c->json)
        jv_print(json_pack("{s:s, s:b, s:I, s:I}", "store", mc_registry_dir(r), "created", !existed,
                           "generation", (json_int_t)mc_registry_generation(r), "models",
                           (json_int_t)mc_registry_model_count(r)));
    else if (!c->quiet)
        printf(existed ? "store %s already exists (%zu models, generation %llu)\n"
                       : "created store %s\n",
               mc_registry_dir(r), mc_registry_model_count(r),
               (unsigned long long)mc_registry_generation(r));
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_init = {
    .name = "init",
    .synopsis = "",
    .summary = "create an empty store (push also creates one)",
    .help = "Creates the store directory with an empty manifest, or reports on the one that\n"
            "is there. The store is --store DIR, else $MCACHE_STORE, else ./mcache-data.\n"
            "\n"
            "Examples:\n"
            "  mcache --store /srv/models init\n"
            "  MCACHE_STORE=/srv/models mcache init --json",
    .min_pos = 0,
    .max_pos = 0,
    .run = run_init,
};

/* ---- rm ----------------------------------------------------------------- */

static const struct opt_spec rm_opts[] = {
    {"force", 'f', OPT_FLAG, NULL, "remove even if aliased or pinned (the aliases go too)"},
    {0},
};

static int run_rm(struct cli *c, struct args *a)
{
    const struct mc_reg_model *m;
    const struct mc_reg_version *v;
    struct mc_registry *r;
    const char *name, *ver;
    json_t *removed = json_array();
    bool force = args_flag(a, "force");
    uint64_t gen = 0, bytes = 0;
    char buf[1024], sz[FMT_LEN];
    int rc;

    rc = cli_split_ref(a->pos[0], buf, sizeof(buf), &name, &ver);
    if (!rc)
        rc = cli_open_store(c, true, false, &r);
    if (rc) {
        json_decref(removed);
        return cli_error(rc);
    }
    /* Note what goes before it goes (the pointers die with the change). */
    m = mc_registry_model(r, name);
    for (size_t i = 0; m && !ver && i < m->nversions; i++) {
        json_array_append_new(removed, jv_removed(m->versions[i]));
        bytes += m->versions[i]->size;
    }
    if (m && ver && mc_registry_resolve(r, name, ver, &v) == 0) {
        json_array_append_new(removed, jv_removed(v));
        bytes += v->size;
    }
    rc = ver ? mc_registry_remove_version(r, name, ver, force, &gen)
             : mc_registry_remove_model(r, name, force, &gen);
    if (rc) {
        json_decref(removed);
        mc_registry_close(r);
        return cli_error(rc);
    }
    if (c->json)
        jv_print(json_pack("{s:s, s:o, s:I, s:I}", "name", name, "removed", removed, "bytes",
                           (json_int_t)bytes, "generation", (json_int_t)gen));
    else {
        if (!c->quiet && ver)
            printf("removed %s@%s (%s)\n", name,
                   jstr_or(json_array_get(removed, 0), "version", ver), fmt_size(bytes, sz));
        else if (!c->quiet)
            printf("removed model %s: %zu version(s), %s\n", name, json_array_size(removed),
                   fmt_size(bytes, sz));
        json_decref(removed);
    }
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_rm = {
    .name = "rm",
    .synopsis = "NAME[@VERSION] [--force]",
    .summary = "remove a version or a whole model, artifacts included",
    .help = "Removes NAME@VERSION (an exact version), or with NAME alone the model with all\n"
            "its versions and aliases, and deletes the artifacts. Refused while an alias\n"
            "points at a version or it is pinned, unless --force, which removes the plain\n"
            "aliases on it and gives a weighted alias's share of the version to its other\n"
            "targets (in proportion, summing to 100), each recorded in the alias's history.\n"
            "Workers holding the version in the arena keep it until they release it.\n"
            "\n"
            "Examples:\n"
            "  mcache rm resnet@1.0.0\n"
            "  mcache rm resnet --force",
    .opts = rm_opts,
    .min_pos = 1,
    .max_pos = 1,
    .run = run_rm,
};

/* ---- gc ----------------------------------------------------------------- */

static const struct opt_spec gc_opts[] = {
    {"keep", 0, OPT_VALUE, "N", "keep the N most recently pushed versions of each model"},
    {"max-age", 0, OPT_VALUE, "DAYS", "keep versions pushed less than DAYS days ago"},
    {"dry-run", 'n', OPT_FLAG, NULL, "list what would go; change nothing"},
    {0},
};

struct gc_list {
    json_t *arr;
    uint64_t bytes;
};

static void gc_each(void *arg, const struct mc_reg_version *v)
{
    struct gc_list *l = arg;

    json_array_append_new(l->arr, jv_removed(v));
    l->bytes += v->size;
}

static int run_gc(struct cli *c, struct args *a)
{
    struct gc_list l = {.arr = json_array()};
    struct mc_gc_opts o = {.name = a->npos ? a->pos[0] : NULL,
                           .dry_run = args_flag(a, "dry-run"),
                           .now_ns = c->now_ns,
                           .each = gc_each,
                           .arg = &l};
    const char *keep = args_value(a, "keep"), *age = args_value(a, "max-age");
    struct mc_registry *r = NULL;
    uint64_t x, gen = 0;
    size_t n = 0;
    int rc = 0;

    if (!keep && !age) {
        json_decref(l.arr);
        return cli_usage(c, "gc needs a rule: --keep N and/or --max-age DAYS");
    }
    if (keep && !(rc = cli_parse_uint("keep", keep, 1u << 30, &x)))
        o.keep = (size_t)x;
    if (!rc && age && !(rc = cli_parse_uint("max-age", age, 1u << 30, &x)))
        o.days = (uint32_t)x;
    if (!rc && keep && !o.keep)
        rc = mc_err(MC_EINVAL, "--keep 0 would keep nothing; give at least 1 (aliased and "
                               "pinned versions are always kept)");
    if (!rc && age && !o.days)
        rc = mc_err(MC_EINVAL, "--max-age 0 would keep nothing; give at least 1 day");
    if (!rc)
        rc = cli_open_store(c, !o.dry_run, false, &r);
    if (!rc)
        rc = mc_registry_gc(r, &o, &n, &gen);
    if (rc) {
        json_decref(l.arr);
        mc_registry_close(r);
        return cli_error(rc);
    }
    if (c->json) {
        jv_print(json_pack("{s:b, s:o, s:I, s:I, s:I}", "dry_run", o.dry_run, "removed", l.arr,
                           "count", (json_int_t)n, "bytes", (json_int_t)l.bytes, "generation",
                           (json_int_t)(gen ? gen : mc_registry_generation(r))));
    } else {
        static const char *head[] = {"MODEL", "VERSION", "SIZE", "PUSHED", NULL};
        char sz[FMT_LEN];
        struct table t;
        json_t *e;
        size_t i;

        table_init(&t, 1u << 2, head);
        json_array_foreach(l.arr, i, e)
        {
            char s1[FMT_LEN], s2[FMT_LEN];
            const char *row[4] = {jstr_or(e, "name", ""), jstr_or(e, "version", ""),
                                  fmt_size((uint64_t)jint(e, "size"), s1),
                                  fmt_age((uint64_t)jint(e, "created_ns"), c->now_ns, s2)};
            table_add(&t, row);
        }
        if (n)
            table_print(&t, stdout, 0);
        table_free(&t);
        if (!c->quiet)
            printf("%s %zu version(s), %s\n", o.dry_run ? "would remove" : "removed", n,
                   fmt_size(l.bytes, sz));
        json_decref(l.arr);
    }
    mc_registry_close(r);
    return EXIT_OK;
}

const struct cli_cmd cmd_gc = {
    .name = "gc",
    .synopsis = "[NAME] [--keep N] [--max-age DAYS] [--dry-run]",
    .summary = "retention: remove old versions (never aliased or pinned ones)",
    .help = "Keeps, per model (or only model NAME), every version that one of the rules\n"
            "keeps: one of the N most recently pushed (--keep), or pushed less than DAYS\n"
            "days ago (--max-age). Aliased and pinned versions are always kept. Everything\n"
            "else is removed, artifacts included, in one change. --dry-run lists what would\n"
            "go. \"Now\" is the clock, or $MCACHE_NOW (seconds since the epoch).\n"
            "\n"
            "Examples:\n"
            "  mcache gc --keep 3 --dry-run\n"
            "  mcache gc resnet --keep 5 --max-age 30",
    .opts = gc_opts,
    .min_pos = 0,
    .max_pos = 1,
    .run = run_gc,
};

/* ---- fsck --------------------------------------------------------------- */

static const struct opt_spec fsck_opts[] = {
    {"repair", 0, OPT_FLAG, NULL,
     "repair a damaged manifest (keeps every record before the damage)"},
    {"checksums", 0, OPT_FLAG, NULL, "also re-hash every artifact (reads everything)"},
    {0},
};

static void collect(void *arg, const char *msg)
{
    json_array_append_new(arg, json_string(msg));
}

static int run_fsck(struct cli *c, struct args *a)
{
    unsigned flags = MC_CHECK_ARTIFACTS | (args_flag(a, "checksums") ? MC_CHECK_CHECKSUMS : 0);
    json_t *problems = json_array(), *repair = json_array();
    struct mc_registry_opts o = cli_registry_opts(c, 0);
    char dir[PATH_MAX];
    bool repaired = false;
    size_t n = 0;
    json_t *e;
    size_t i;
    int rc;

    if (!realpath(c->store, dir)) {
        struct mc_registry *none;
        json_decref(problems);
        json_decref(repair);
        return cli_error(cli_open_store(c, false, false, &none));
    }
    rc = mc_registry_check_opts(dir, &o, flags, collect, problems, &n);
    if (rc == MC_ECORRUPT && args_flag(a, "repair")) {
        int rrc = mc_registry_repair_opts(dir, &o, collect, repair);
        if (rrc) {
            json_decref(problems);
            json_decref(repair);
            return cli_error(rrc);
        }
        repaired = true;
        json_array_clear(problems);
        rc = mc_registry_check_opts(dir, &o, flags, collect, problems, &n);
    }
    if (rc && rc != MC_ECORRUPT && rc != MC_EIO) {
        json_decref(problems);
        json_decref(repair);
        return cli_error(rc);
    }
    if (c->json) {
        jv_print(json_pack("{s:s, s:b, s:o, s:b, s:o}", "store", dir, "clean", rc == 0, "problems",
                           problems, "repaired", repaired, "repair", repair));
    } else {
        json_array_foreach(repair, i, e)
        {
            printf("repair: %s\n", json_string_value(e));
        }
        json_array_foreach(problems, i, e)
        {
            printf("problem: %s\n", json_string_value(e));
        }
        if (rc == 0 && !c->quiet)
            printf("store %s is clean%s\n", dir, repaired ? " after repair" : "");
        else if (rc)
            printf("store %s: %zu problem(s)%s\n", dir, n,
                   rc == MC_ECORRUPT ? "; the manifest is damaged: run `mcache fsck --repair`"
                                     : "");
        json_decref(problems);
        json_decref(repair);
    }
    return rc ? EXIT_FAIL : EXIT_OK;
}

const struct cli_cmd cmd_fsck = {
    .name = "fsck",
    .synopsis = "[--repair] [--checksums]",
    .summary = "check the store's manifest and artifacts; repair the manifest",
    .help = "Checks the manifest (every line's checksum, the format, generations, and the\n"
            "meaning of every record), that every artifact exists with its size (with\n"
            "--checksums: its checksum too), and reports stray files. Changes nothing unless\n"
            "--repair: then a damaged manifest keeps every record before the damage and the\n"
            "damaged files move to STORE/damaged/. Exit status 0 if clean, 1 if not.\n"
            "\n"
            "Examples:\n"
            "  mcache fsck\n"
            "  mcache fsck --repair\n"
            "  mcache fsck --checksums --json",
    .opts = fsck_opts,
    .min_pos = 0,
    .max_pos = 0,
    .run = run_fsck,
};
