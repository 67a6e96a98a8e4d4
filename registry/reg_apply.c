/*
 * reg_apply.c - what every manifest record means to the registry's state.
 *
 * state_apply() is the only way the state changes: replaying the manifest
 * at open, following other processes' appends, and applying this process's
 * own records after they are durable all go through it, so a record means
 * the same thing everywhere. It trusts nothing it reads: every field is
 * checked (reg_record.c) as strictly as the API checks its arguments, and a
 * record that does not fit the state is damage (MC_ECORRUPT) - or, while
 * repairing, reported and skipped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/vec.h"
#include "index/name.h"
#include "registry/reg_int.h"

/* ---- versions --------------------------------------------------------- */

/* name@version collides with o, registered with the same precedence. */
static int clash(struct rec *r, int code, const struct mc_reg_version *o, const char *version)
{
    bool same = strcmp(o->version, version) == 0;

    return rec_fail(r, code,
                    "%s@%s is already registered%s%s; a version is immutable: push it under a new "
                    "version number%s",
                    o->name, version, same ? "" : " as ", same ? "" : o->version,
                    same ? ""
                         : " (versions that differ only in build metadata have the same "
                           "precedence, so every range would treat them as one)");
}

static int ver_insert(struct reg_state *st, struct rec *r, struct reg_ver *rv, int code)
{
    struct reg_model *m = state_model(st, rv->v.name);
    bool found;
    size_t i;

    if (m == NULL) {
        m = calloc(1, sizeof(*m));
        if (m == NULL || (m->name = strdup(rv->v.name)) == NULL || state_insert(st, m) != 0) {
            if (m)
                free(m->name);
            free(m);
            return rec_fail(r, MC_ENOMEM, "out of memory");
        }
    }
    i = model_version_index(m, &rv->v.sv, &found);
    if (found)
        return clash(r, code == MC_EINVAL ? MC_EEXIST : code, m->vers[i], rv->v.version);
    if (MC_VEC_RESERVE(m->vers, m->capvers, m->nvers + 1, 4))
        return rec_fail(r, MC_ENOMEM, "out of memory");
    memmove(&m->vers[i + 1], &m->vers[i], (m->nvers - i) * sizeof(*m->vers));
    m->vers[i] = &rv->v;
    m->nvers++;
    return model_sync_view(m) ? rec_fail(r, MC_ENOMEM, "out of memory") : 0;
}

static int apply_version(struct reg_state *st, struct rec *r, uint64_t gen)
{
    struct vfields f;
    struct reg_ver *rv;
    int rc = vfields_read(r, MC_ECORRUPT, &f);

    if (rc)
        return rc;
    rv = ver_build(&f, st->art_root, gen);
    if (rv == NULL)
        return rec_fail(r, MC_ENOMEM, "out of memory");
    rc = ver_insert(st, r, rv, MC_ECORRUPT);
    if (rc)
        ver_free(rv);
    return rc;
}

int record_check_version(const struct reg_state *st, json_t *j)
{
    struct mc_jarena a = {0};
    struct rec r = {.j = mc_jval_from_json(&a, j), .op = "push"};
    struct vfields f;
    struct reg_model *m;
    struct mc_semver sv;
    struct reg_ver *o;
    int rc = r.j ? vfields_read(&r, MC_EINVAL, &f) : mc_err(MC_ENOMEM, "out of memory");

    if (rc == 0 && st) {
        m = state_model(st, f.name);
        mc_semver_parse(f.version, strlen(f.version), &sv);
        if (m && (o = model_version(m, &sv)) != NULL)
            rc = clash(&r, MC_EEXIST, &o->v, f.version);
    }
    mc_jarena_free(&a);
    return rc;
}

/* ---- applying records ------------------------------------------------- */

struct reg_model *rec_model(struct reg_state *st, struct rec *r, const char **name)
{
    struct reg_model *m;

    if (rec_str(r, "name", true, name))
        return NULL;
    m = state_model(st, *name);
    if (m == NULL)
        rec_fail(r, MC_ECORRUPT, "a \"%s\" record names model \"%s\", which does not exist", r->op,
                 *name);
    return m;
}

static struct reg_ver *rec_version(struct reg_state *st, struct rec *r, struct reg_model **mp)
{
    const char *name, *version;
    struct reg_model *m = rec_model(st, r, &name);
    struct mc_semver sv;
    struct reg_ver *rv;

    if (m == NULL || rec_str(r, "version", true, &version))
        return NULL;
    if (mc_semver_parse(version, strlen(version), &sv) != 0 ||
        (rv = model_version(m, &sv)) == NULL || strcmp(rv->v.version, version) != 0) {
        rec_fail(r, MC_ECORRUPT, "a \"%s\" record names %s@%s, which does not exist", r->op, name,
                 version);
        return NULL;
    }
    if (mp)
        *mp = m;
    return rv;
}

/* Rebuild rv from r2 (its fields, changed), keeping its address. */
static int ver_rebuild(struct reg_state *st, struct rec *r, struct reg_ver *rv, struct rec *r2,
                       uint64_t gen)
{
    struct vfields f;
    struct reg_ver *n;
    int rc;

    rc = vfields_read(r2, MC_ECORRUPT, &f);
    if (rc)
        return r->err = rc;
    n = ver_build(&f, st->art_root, gen);
    if (n == NULL)
        return rec_fail(r, MC_ENOMEM, "out of memory");
    /* rv stays where aliases point; its strings now live in n's block */
    free(rv->blob);
    rv->v = n->v;
    rv->blob = n;
    return 0;
}

/* Merge a patch object into dst: null deletes. */
static void merge_map(json_t *dst, const char *key, const struct mc_jval *patch)
{
    json_t *m = json_object_get(dst, key);

    if (patch->type != MC_JOBJ)
        return;
    if (m == NULL) {
        m = json_object();
        json_object_set_new(dst, key, m);
    }
    for (uint32_t i = 0; i < patch->n; i++) {
        const struct mc_jmember *e = &patch->u.m[i];

        if (e->v.type == MC_JNULL)
            json_object_del(m, e->key);
        else
            json_object_set_new(m, e->key, mc_jval_to_json(&e->v));
    }
    if (json_object_size(m) == 0)
        json_object_del(dst, key);
}

/*
 * "status", "flags" and "meta": change fields of one version. With dry,
 * only check that the result would be valid, as the API must (MC_EINVAL).
 */
static int apply_change(struct reg_state *st, struct rec *r, uint64_t gen, bool dry)
{
    struct reg_ver *rv = rec_version(st, r, NULL);
    struct rec r2 = {.op = r->op};
    struct mc_jarena a = {0};
    const struct mc_jval *x;
    json_t *obj;
    int rc;

    if (rv == NULL)
        return r->err;
    obj = json_object();
    if (obj == NULL || version_to_json(&rv->v, obj, true) != 0) {
        json_decref(obj);
        return rec_fail(r, MC_ENOMEM, "out of memory");
    }
    if (!strcmp(r->op, "status")) {
        const char *s, *reason;

        if (rec_str(r, "status", true, &s) || rec_str(r, "reason", false, &reason)) {
            json_decref(obj);
            return r->err;
        }
        json_object_set_new(obj, "status", json_string(s));
        json_object_del(obj, "reason");
        if (reason)
            json_object_set_new(obj, "reason", json_string(reason));
    } else if (!strcmp(r->op, "flags")) {
        const char *keys[2] = {"preload", "pinned"};

        for (int k = 0; k < 2; k++) {
            x = mc_jval_get(r->j, keys[k]);
            if (x && x->type != MC_JTRUE && x->type != MC_JFALSE) {
                json_decref(obj);
                return rec_fail(r, MC_ECORRUPT, "\"%s\" of a \"flags\" record is not true or false",
                                keys[k]);
            }
            if (x)
                json_object_set_new(obj, keys[k], json_boolean(x->type == MC_JTRUE));
        }
    } else {
        const struct mc_jval *set = mc_jval_get(r->j, "set");
        struct rec rs = {.j = set, .op = "meta"};

        int code = dry ? MC_EINVAL : MC_ECORRUPT;

        if (set == NULL || set->type != MC_JOBJ ||
            rec_map_check(&rs, code, "metric", mc_jval_get(set, "metrics"), true, true) ||
            rec_map_check(&rs, code, "param", mc_jval_get(set, "params"), false, true) ||
            rec_map_check(&rs, code, "tag", mc_jval_get(set, "tags"), false, true)) {
            json_decref(obj);
            return rs.err ? (r->err = rs.err)
                          : rec_fail(r, MC_ECORRUPT, "a \"meta\" record has no \"set\" object");
        }
        for (uint32_t e = 0; e < set->n; e++) {
            const char *k = set->u.m[e].key;
            bool map = !strcmp(k, "metrics") || !strcmp(k, "params") || !strcmp(k, "tags");
            bool known = map;

            for (int i = 0; i < 6 && !known; i++)
                known = !strcmp(k, rec_meta_keys[i]);
            if (!known) {
                json_decref(obj);
                return rec_fail(r, MC_ECORRUPT,
                                "a \"meta\" record sets \"%s\", which is not "
                                "metadata",
                                k);
            }
            x = &set->u.m[e].v;
            if (map)
                merge_map(obj, k, x);
            else if (x->type == MC_JNULL)
                json_object_del(obj, k);
            else
                json_object_set_new(obj, k, mc_jval_to_json(x));
        }
    }
    /* the merged version, read back as any record is */
    json_object_del(obj, "changed");
    r2.j = mc_jval_from_json(&a, obj);
    if (r2.j == NULL) {
        rc = rec_fail(r, MC_ENOMEM, "out of memory");
    } else if (dry) {
        struct vfields f;

        rc = vfields_read(&r2, MC_EINVAL, &f);
    } else {
        rc = ver_rebuild(st, r, rv, &r2, gen);
    }
    json_decref(obj);
    mc_jarena_free(&a);
    return rc;
}

int record_check_change(struct reg_state *st, json_t *j)
{
    struct mc_jarena a = {0};
    struct rec r = {.j = mc_jval_from_json(&a, j)};
    int rc;

    if (r.j == NULL)
        rc = mc_err(MC_ENOMEM, "out of memory");
    else if (rec_op(&r))
        rc = r.err;
    else
        rc = apply_change(st, &r, 0, true);
    mc_jarena_free(&a);
    return rc;
}

/*
 * mc_alias_check(), remembering the last name that passed: the check
 * compiles the name as a version range (to refuse one that reads as a
 * range), and replay meets the same few alias names over and over.
 */
static int alias_name_check(struct reg_state *st, const char *alias)
{
    size_t n;

    if (st->alias_ok[0] != '\0' && strcmp(st->alias_ok, alias) == 0)
        return 0;
    if (mc_alias_check(alias) != 0)
        return MC_EINVAL;
    n = strlen(alias);
    if (n < sizeof(st->alias_ok))
        memcpy(st->alias_ok, alias, n + 1);
    return 0;
}

int alias_apply_move(struct reg_state *st, struct rec *r, struct reg_model *m, const char *alias,
                     const char *from, const char *to, uint64_t t, uint64_t uid, uint64_t gen,
                     bool rollback, const char *why)
{
    char cur[TSET_TEXT_MAX];
    struct tset ts, now;
    struct reg_alias *a;

    if (alias_name_check(st, alias) != 0)
        return r->err = MC_ECORRUPT; /* with the message the check set */
    if (to && tset_parse(m, to, &ts, MC_ECORRUPT, "the target of an alias move", NULL, 0))
        return r->err = MC_ECORRUPT;
    if (to && ts.n == 0)
        return rec_fail(r, MC_ECORRUPT, "alias \"%s\" of \"%s\" moves to an empty target", alias,
                        m->name);
    a = model_alias_get(m, alias, true);
    if (a == NULL)
        return rec_fail(r, MC_ENOMEM, "out of memory");
    alias_tset(a, &now);
    tset_format(&now, cur, sizeof(cur));
    if ((a->ntg == 0) != (from == NULL) || (from && strcmp(cur, from)))
        return rec_fail(r, MC_ECORRUPT,
                        "alias \"%s\" of \"%s\" moves from \"%s\" but it points at "
                        "\"%s\"",
                        alias, m->name, from ? from : "(nothing)", a->ntg ? cur : "(nothing)");
    if (alias_hist_add(a, from, to, t, uid, gen, rollback, why))
        return rec_fail(r, MC_ENOMEM, "out of memory");
    alias_set_targets(a, to ? &ts : NULL);
    return model_sync_view(m) ? rec_fail(r, MC_ENOMEM, "out of memory") : 0;
}

static int apply_alias(struct reg_state *st, struct rec *r, uint64_t gen)
{
    const char *name, *alias, *to, *from, *why;
    struct reg_model *m = rec_model(st, r, &name);
    uint64_t t, uid;
    int rb = 0;

    if (m == NULL)
        return r->err;
    if (rec_str(r, "alias", true, &alias) || rec_str(r, "to", false, &to) ||
        rec_str(r, "from", false, &from) || rec_uint(r, "t", true, INT64_MAX, &t) ||
        rec_uint(r, "uid", true, UINT32_MAX, &uid) || rec_bool(r, "rollback", &rb) ||
        rec_str(r, "why", false, &why))
        return r->err;
    return alias_apply_move(st, r, m, alias, from, to, t, uid, gen, rb, why);
}

/* A snapshot's alias entry: its target and whole history. */
static int apply_alias_entry(struct reg_state *st, struct rec *r)
{
    const char *name, *alias, *target;
    struct reg_model *m = rec_model(st, r, &name);
    const struct mc_jval *hist;
    struct reg_alias *a;

    if (m == NULL)
        return r->err;
    if (rec_str(r, "alias", true, &alias) || rec_str(r, "target", false, &target))
        return r->err;
    if (alias_name_check(st, alias) != 0)
        return r->err = MC_ECORRUPT; /* with the message the check set */
    if (model_alias(m, alias))
        return rec_fail(r, MC_ECORRUPT, "alias \"%s\" of \"%s\" appears twice", alias, name);
    a = model_alias_get(m, alias, true);
    if (a == NULL)
        return rec_fail(r, MC_ENOMEM, "out of memory");
    if (target) {
        struct tset ts;

        if (tset_parse(m, target, &ts, MC_ECORRUPT, "the target of an alias", NULL, 0))
            return r->err = MC_ECORRUPT;
        alias_set_targets(a, &ts);
    }
    hist = mc_jval_get(r->j, "history");
    if (hist == NULL || hist->type != MC_JARR)
        return rec_fail(r, MC_ECORRUPT, "alias \"%s\" of \"%s\" has no history", alias, name);
    for (uint32_t i = 0; i < hist->n; i++) {
        const struct mc_jval *h = &hist->u.a[i];
        struct rec rh = {.j = h, .op = "alias history"};
        const char *from, *to, *why;
        uint64_t t, uid, g;
        int rb = 0;

        if (h->type != MC_JOBJ || rec_str(&rh, "from", false, &from) ||
            rec_str(&rh, "to", false, &to) || rec_uint(&rh, "t", true, INT64_MAX, &t) ||
            rec_uint(&rh, "uid", true, UINT32_MAX, &uid) ||
            rec_uint(&rh, "g", true, INT64_MAX, &g) || rec_bool(&rh, "rollback", &rb) ||
            rec_str(&rh, "why", false, &why))
            return r->err = rh.err ? rh.err : rec_fail(r, MC_ECORRUPT, "bad alias history");
        if (alias_hist_add(a, from, to, t, uid, g, rb, why))
            return rec_fail(r, MC_ENOMEM, "out of memory");
    }
    return model_sync_view(m) ? rec_fail(r, MC_ENOMEM, "out of memory") : 0;
}

/* The version a "gc" entry names, or NULL with r->err set. */
static struct reg_ver *gc_entry(struct reg_state *st, struct rec *r, const struct mc_jval *e,
                                struct reg_model **m)
{
    struct rec re = {.j = e, .op = "gc"};
    struct reg_ver *rv = e->type == MC_JOBJ ? rec_version(st, &re, m) : NULL;

    if (rv == NULL)
        r->err = re.err ? re.err : rec_fail(r, MC_ECORRUPT, "bad \"gc\" entry");
    return rv;
}

/*
 * Check every entry of a "gc" record before any is removed, so that it
 * applies whole or not at all: each must name a version that exists, and
 * none twice (the second would fail after the first was removed).
 */
static int gc_check(struct reg_state *st, struct rec *r, const struct mc_jval *list)
{
    uint32_t marked = 0;
    int rc = 0;

    for (; marked < list->n; marked++) {
        struct reg_model *m;
        struct reg_ver *rv = gc_entry(st, r, &list->u.a[marked], &m);

        if (rv == NULL) {
            rc = r->err;
            break;
        }
        if (rv->listed) {
            rc = rec_fail(r, MC_ECORRUPT, "the \"gc\" record names %s@%s twice", m->name,
                          rv->v.version);
            break;
        }
        rv->listed = true;
    }
    for (uint32_t i = 0; i < marked; i++) {
        struct reg_model *m;

        gc_entry(st, r, &list->u.a[i], &m)->listed = false;
    }
    return rc;
}

/*
 * The alias moves of a forced removal of rv ("moves": the weighted aliases
 * that keep their other targets), checked whole before any is made: each
 * alias must hold rv now and move to a set without it. What the record does
 * not move and still points at rv goes with it (model_remove_version).
 */
static int rm_apply_moves(struct reg_state *st, struct rec *r, struct reg_model *m,
                          struct reg_ver *rv, uint64_t t, uint64_t uid, uint64_t gen)
{
    const struct mc_jval *moves = mc_jval_get(r->j, "moves");

    if (moves == NULL || moves->type == MC_JNULL)
        return 0;
    if (moves->type != MC_JARR)
        return rec_fail(r, MC_ECORRUPT, "the \"moves\" of an \"rm\" record are not a list");
    for (int pass = 0; pass < 2; pass++) {
        for (uint32_t i = 0; i < moves->n; i++) {
            struct rec rm = {.j = &moves->u.a[i], .op = "rm move"};
            const char *alias, *from, *to, *why;
            const struct reg_alias *a;
            struct tset ts;
            bool held = false;
            int rc;

            if (rm.j->type != MC_JOBJ || rec_str(&rm, "alias", true, &alias) ||
                rec_str(&rm, "from", true, &from) || rec_str(&rm, "to", true, &to) ||
                rec_str(&rm, "why", false, &why))
                return r->err = rm.err ? rm.err : rec_fail(r, MC_ECORRUPT, "bad \"rm\" move");
            if (pass == 1) {
                rc = alias_apply_move(st, r, m, alias, from, to, t, uid, gen, false, why);
                if (rc)
                    return rc;
                continue;
            }
            for (uint32_t k = 0; k < i; k++) {
                const struct mc_jval *o = mc_jval_get(&moves->u.a[k], "alias");

                if (o && o->type == MC_JSTR && !strcmp(o->u.s, alias))
                    return rec_fail(r, MC_ECORRUPT, "the removal of %s@%s moves alias \"%s\" twice",
                                    m->name, rv->v.version, alias);
            }
            a = model_alias(m, alias);
            for (size_t j = 0; a && j < a->ntg; j++)
                held |= a->tg[j].version == &rv->v;
            if (held) {
                char cur[TSET_TEXT_MAX];
                struct tset now;

                alias_tset(a, &now);
                tset_format(&now, cur, sizeof(cur));
                held = !strcmp(cur, from);
            }
            if (!held)
                return rec_fail(r, MC_ECORRUPT,
                                "the removal of %s@%s moves alias \"%s\" from \"%s\", but it "
                                "does not point there",
                                m->name, rv->v.version, alias, from);
            if (tset_parse(m, to, &ts, MC_ECORRUPT, "the target of an alias move", NULL, 0))
                return r->err = MC_ECORRUPT;
            for (size_t j = 0; j < ts.n; j++)
                if (ts.v[j] == rv)
                    return rec_fail(r, MC_ECORRUPT,
                                    "the removal of %s@%s moves alias \"%s\" to \"%s\", "
                                    "which still holds it",
                                    m->name, rv->v.version, alias, to);
        }
    }
    return 0;
}

static int apply_rm(struct reg_state *st, struct rec *r, uint64_t gen)
{
    const char *name;
    const struct mc_jval *list;
    uint64_t t, uid;
    int rc;

    if (rec_uint(r, "t", true, INT64_MAX, &t) || rec_uint(r, "uid", true, UINT32_MAX, &uid))
        return r->err;
    if (!strcmp(r->op, "gc")) {
        list = mc_jval_get(r->j, "removed");
        if (list == NULL || list->type != MC_JARR)
            return rec_fail(r, MC_ECORRUPT, "a \"gc\" record has no \"removed\" list");
        rc = gc_check(st, r, list);
        for (uint32_t i = 0; i < list->n && rc == 0; i++) {
            struct reg_model *m;
            struct reg_ver *rv = gc_entry(st, r, &list->u.a[i], &m);

            if (rv == NULL)
                rc = r->err;
            else if (model_remove_version(st, m, rv, t, uid, gen))
                rc = rec_fail(r, MC_ENOMEM, "out of memory");
        }
        return rc;
    }
    if (mc_jval_get(r->j, "version")) {
        struct reg_model *m;
        struct reg_ver *rv = rec_version(st, r, &m);

        if (rv == NULL)
            return r->err;
        rc = rm_apply_moves(st, r, m, rv, t, uid, gen);
        if (rc)
            return rc;
        return model_remove_version(st, m, rv, t, uid, gen)
                   ? rec_fail(r, MC_ENOMEM, "out of memory")
                   : 0;
    }
    {
        struct reg_model *m = rec_model(st, r, &name);

        if (m == NULL)
            return r->err;
        state_remove(st, m);
    }
    return 0;
}

int state_apply(void *arg, const struct mc_jval *j, bool snapshot, uint64_t gen)
{
    struct reg_state *st = arg;
    struct rec r = {.j = j};
    int rc;

    if (rec_op(&r))
        rc = r.err;
    else if (snapshot && !strcmp(r.op, "version"))
        rc = apply_version(st, &r, gen);
    else if (snapshot && !strcmp(r.op, "alias"))
        rc = apply_alias_entry(st, &r);
    else if ((rc = apply_deploy_record(st, &r, snapshot, gen)) != 1)
        ; /* health, snapshots, deployments, alerts */
    else if ((rc = apply_audit_record(st, &r, snapshot)) != 1)
        ; /* tokens, audit entries */
    else if (snapshot)
        rc =
            rec_fail(&r, MC_ECORRUPT, "the snapshot holds an entry \"%s\", which is unknown", r.op);
    else if (!strcmp(r.op, "push"))
        rc = apply_version(st, &r, gen);
    else if (!strcmp(r.op, "status") || !strcmp(r.op, "flags") || !strcmp(r.op, "meta"))
        rc = apply_change(st, &r, gen, false);
    else if (!strcmp(r.op, "alias"))
        rc = apply_alias(st, &r, gen);
    else if (!strcmp(r.op, "rm") || !strcmp(r.op, "gc"))
        rc = apply_rm(st, &r, gen);
    else
        rc = rec_fail(&r, MC_ECORRUPT, "the journal holds a record \"%s\", which is unknown", r.op);
    /* every change the journal holds has its entry in the audit log */
    if (rc == 0 && !snapshot)
        rc = audit_note(st, &r, gen);
    if (rc == 0) {
        st->gen = gen;
        if (snapshot || strcmp(r.op, "audit") != 0)
            st->state_gen = gen;
        return 0;
    }
    if (st->lenient && rc != MC_ENOMEM) {
        char msg[1100];

        snprintf(msg, sizeof(msg), "skipped a %s record of generation %llu: %s",
                 snapshot ? "snapshot" : "journal", (unsigned long long)gen, mc_last_error());
        if (st->report)
            st->report(st->report_arg, msg);
        st->skipped++;
        return 0;
    }
    return rc;
}

int state_apply_json(struct reg_state *st, json_t *rec, bool snapshot, uint64_t gen)
{
    struct mc_jarena a = {0};
    const struct mc_jval *j = mc_jval_from_json(&a, rec);
    int rc = j ? state_apply(st, j, snapshot, gen) : mc_err(MC_ENOMEM, "out of memory");

    mc_jarena_free(&a);
    return rc;
}
