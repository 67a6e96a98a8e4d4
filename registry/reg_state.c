/*
 * reg_state.c - the registry's state in memory: models in an
 * open-addressing hash table keyed by name, each model's versions sorted by
 * precedence and its aliases by name, every alias with its history, and the
 * primitive changes reg_apply.c makes to them.
 *
 * Nothing here reads records or checks input; reg_apply.c decides what a
 * record means and calls these. A version's strings and arrays live in one
 * block (built by reg_record.c), rebuilt whole when anything about the
 * version changes (which is rare), so the struct stays where aliases point
 * at it.
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "common/vec.h"
#include "registry/reg_int.h"

/* ---- the hash table of models ---------------------------------------- */

static uint64_t name_hash(const char *s)
{
    return XXH3_64bits(s, strlen(s));
}

struct reg_state *state_new(const char *art_root)
{
    struct reg_state *st = calloc(1, sizeof(*st));

    if (st == NULL)
        return NULL;
    st->nslots = 64;
    st->slots = calloc(st->nslots, sizeof(*st->slots));
    if (st->slots == NULL) {
        free(st);
        return NULL;
    }
    st->art_root = art_root;
    return st;
}

void ver_free(struct reg_ver *rv)
{
    if (rv) {
        free(rv->blob);
        free(rv);
    }
}

static void alias_fini(struct reg_alias *a)
{
    for (size_t i = 0; i < a->nhist; i++) {
        free((char *)a->hist[i].from);
        free((char *)a->hist[i].to);
        free((char *)a->hist[i].why);
    }
    free(a->hist);
    free(a->alias);
}

void health_free(struct reg_health *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->pub.argc; i++)
        free(h->argv[i]);
    free(h->argv);
    free(h);
}

void snap_fini(struct reg_snap *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free((char *)s->e[i].model);
        free((char *)s->e[i].alias);
        free((char *)s->e[i].targets);
    }
    free(s->e);
    free(s->name);
    memset(s, 0, sizeof(*s));
}

void deploy_fini(struct reg_deploy *d)
{
    struct mc_reg_deploy *p = &d->pub;

    free((char *)p->name);
    free((char *)p->version);
    free((char *)p->alias);
    free((char *)p->from);
    free((char *)p->reason);
    free((void *)p->steps);
    for (size_t i = 0; i < p->health_argc; i++)
        free((char *)p->health_argv[i]);
    free((void *)p->health_argv);
    memset(d, 0, sizeof(*d));
}

void alert_fini(struct mc_reg_alert *a)
{
    free((char *)a->kind);
    free((char *)a->model);
    free((char *)a->version);
    free((char *)a->alias);
    free((char *)a->message);
    memset(a, 0, sizeof(*a));
}

static void model_free(struct reg_model *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nvers; i++)
        ver_free(ver_of(m->vers[i]));
    for (size_t i = 0; i < m->naliases; i++)
        alias_fini(&m->aliases[i]);
    free(m->vers);
    free(m->aliases);
    free(m->views);
    free(m->name);
    health_free(m->health);
    free(m);
}

void state_free(struct reg_state *st)
{
    if (st == NULL)
        return;
    for (size_t i = 0; i < st->nslots; i++)
        model_free(st->slots[i]);
    free(st->slots);
    free(st->sorted);
    for (size_t i = 0; i < st->nsnaps; i++)
        snap_fini(&st->snaps[i]);
    free(st->snaps);
    for (size_t i = 0; i < st->ndeploys; i++)
        deploy_fini(&st->deploys[i]);
    free(st->deploys);
    for (size_t i = 0; i < MC_REG_ALERTS_MAX; i++)
        alert_fini(&st->alerts[i]);
    audit_free(st);
    tokens_free(st);
    free(st);
}

struct reg_model *state_model(const struct reg_state *st, const char *name)
{
    size_t mask = st->nslots - 1, i = name_hash(name) & mask;

    for (; st->slots[i]; i = (i + 1) & mask)
        if (strcmp(st->slots[i]->name, name) == 0)
            return st->slots[i];
    return NULL;
}

static int state_grow(struct reg_state *st)
{
    size_t n = st->nslots * 2, mask = n - 1;
    struct reg_model **s = calloc(n, sizeof(*s));

    if (s == NULL)
        return MC_ENOMEM;
    for (size_t i = 0; i < st->nslots; i++) {
        struct reg_model *m = st->slots[i];
        size_t j;

        if (m == NULL)
            continue;
        for (j = name_hash(m->name) & mask; s[j]; j = (j + 1) & mask)
            ;
        s[j] = m;
    }
    free(st->slots);
    st->slots = s;
    st->nslots = n;
    return 0;
}

int state_insert(struct reg_state *st, struct reg_model *m)
{
    size_t mask, i;

    if ((st->count + 1) * 4 > st->nslots * 3 && state_grow(st) != 0)
        return MC_ENOMEM;
    mask = st->nslots - 1;
    for (i = name_hash(m->name) & mask; st->slots[i]; i = (i + 1) & mask)
        ;
    st->slots[i] = m;
    st->count++;
    st->sorted_dirty = true;
    return 0;
}

/* Remove with backward shifting, so lookups never need tombstones. */
void state_remove(struct reg_state *st, struct reg_model *m)
{
    size_t mask = st->nslots - 1, i = name_hash(m->name) & mask, j;

    while (st->slots[i] != m)
        i = (i + 1) & mask;
    st->slots[i] = NULL;
    for (j = (i + 1) & mask; st->slots[j]; j = (j + 1) & mask) {
        size_t home = name_hash(st->slots[j]->name) & mask;

        /* move j back into the hole at i unless its home lies in (i, j] */
        if ((j > i && (home <= i || home > j)) || (j < i && home <= i && home > j)) {
            st->slots[i] = st->slots[j];
            st->slots[j] = NULL;
            i = j;
        }
    }
    st->count--;
    st->sorted_dirty = true;
    model_free(m);
}

static int model_cmp(const void *a, const void *b)
{
    return strcmp((*(struct reg_model *const *)a)->name, (*(struct reg_model *const *)b)->name);
}

void state_sort(struct reg_state *st)
{
    size_t k = 0;

    if (!st->sorted_dirty && (st->sorted || st->count == 0))
        return;
    free(st->sorted);
    st->sorted = malloc((st->count + 1) * sizeof(*st->sorted));
    if (st->sorted == NULL)
        return;
    for (size_t i = 0; i < st->nslots; i++)
        if (st->slots[i])
            st->sorted[k++] = st->slots[i];
    qsort(st->sorted, k, sizeof(*st->sorted), model_cmp);
    st->sorted_dirty = false;
}

/* ---- versions and aliases of a model ---------------------------------- */

/* Binary search of n sorted items; cmp(ctx, i) compares item i with the key. */
static size_t sorted_index(size_t n, int (*cmp)(const void *ctx, size_t i), const void *ctx,
                           bool *found)
{
    size_t lo = 0, hi = n;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = cmp(ctx, mid);

        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

struct ver_key {
    const struct reg_model *m;
    const struct mc_semver *sv;
};

static int ver_key_cmp(const void *ctx, size_t i)
{
    const struct ver_key *k = ctx;

    return mc_semver_cmp(&k->m->vers[i]->sv, k->sv);
}

size_t model_version_index(const struct reg_model *m, const struct mc_semver *sv, bool *found)
{
    struct ver_key k = {m, sv};

    return sorted_index(m->nvers, ver_key_cmp, &k, found);
}

struct reg_ver *model_version(const struct reg_model *m, const struct mc_semver *sv)
{
    bool found;
    size_t i = model_version_index(m, sv, &found);

    return found ? ver_of(m->vers[i]) : NULL;
}

struct alias_key {
    const struct reg_model *m;
    const char *alias;
};

static int alias_key_cmp(const void *ctx, size_t i)
{
    const struct alias_key *k = ctx;

    return strcmp(k->m->aliases[i].alias, k->alias);
}

static size_t alias_index(const struct reg_model *m, const char *alias, bool *found)
{
    struct alias_key k = {m, alias};

    return sorted_index(m->naliases, alias_key_cmp, &k, found);
}

struct reg_alias *model_alias(const struct reg_model *m, const char *alias)
{
    bool found;
    size_t i = alias_index(m, alias, &found);

    return found ? &m->aliases[i] : NULL;
}

/* Refresh the public views after versions or aliases changed. */
int model_sync_view(struct reg_model *m)
{
    struct mc_reg_alias *v = NULL;

    if (m->naliases) {
        v = realloc(m->views, m->naliases * sizeof(*v));
        if (v == NULL)
            return MC_ENOMEM;
        for (size_t i = 0; i < m->naliases; i++) {
            v[i].alias = m->aliases[i].alias;
            v[i].target = m->aliases[i].target ? &m->aliases[i].target->v : NULL;
            v[i].history = m->aliases[i].hist;
            v[i].nhistory = m->aliases[i].nhist;
            v[i].targets = m->aliases[i].ntg ? m->aliases[i].tg : NULL;
            v[i].ntargets = m->aliases[i].ntg;
        }
        m->views = v;
    }
    m->pub.name = m->name;
    m->pub.versions = m->vers;
    m->pub.nversions = m->nvers;
    m->pub.aliases = m->views;
    m->pub.naliases = m->naliases;
    m->pub.health = m->health ? &m->health->pub : NULL;
    return 0;
}

bool state_holds(void *arg, const char *name, const char *version)
{
    struct reg_model *m = state_model(arg, name);

    if (version == NULL || m == NULL)
        return m != NULL;
    return ver_exact(m, version) != NULL;
}

/* ---- changing a model ------------------------------------------------- */

int alias_hist_add(struct reg_alias *a, const char *from, const char *to, uint64_t t, uint64_t uid,
                   uint64_t gen, bool rollback, const char *why)
{
    struct mc_reg_move *mv;

    if (MC_VEC_RESERVE(a->hist, a->caphist, a->nhist + 1, 4))
        return MC_ENOMEM;
    mv = &a->hist[a->nhist];
    memset(mv, 0, sizeof(*mv));
    mv->from = from ? strdup(from) : NULL;
    mv->to = to ? strdup(to) : NULL;
    mv->why = why ? strdup(why) : NULL;
    if ((from && !mv->from) || (to && !mv->to) || (why && !mv->why)) {
        free((char *)mv->from);
        free((char *)mv->to);
        free((char *)mv->why);
        return MC_ENOMEM;
    }
    mv->at_ns = t;
    mv->uid = (uint32_t)uid;
    mv->generation = gen;
    mv->rollback = rollback;
    a->nhist++;
    return 0;
}

struct reg_alias *model_alias_get(struct reg_model *m, const char *alias, bool create)
{
    bool found;
    size_t i = alias_index(m, alias, &found);
    struct reg_alias *a;

    if (found || !create)
        return found ? &m->aliases[i] : NULL;
    if (MC_VEC_RESERVE(m->aliases, m->capaliases, m->naliases + 1, 4))
        return NULL;
    memmove(&m->aliases[i + 1], &m->aliases[i], (m->naliases - i) * sizeof(*m->aliases));
    a = &m->aliases[i];
    memset(a, 0, sizeof(*a));
    a->alias = strdup(alias);
    if (a->alias == NULL) {
        memmove(&m->aliases[i], &m->aliases[i + 1], (m->naliases - i) * sizeof(*m->aliases));
        return NULL;
    }
    m->naliases++;
    return a;
}

/* The version named by an exact version string, or NULL. */
struct reg_ver *ver_exact(const struct reg_model *m, const char *version)
{
    struct mc_semver sv;
    struct reg_ver *rv;

    if (version == NULL || mc_semver_parse(version, strlen(version), &sv) != 0)
        return NULL;
    rv = model_version(m, &sv);
    return rv && strcmp(rv->v.version, version) == 0 ? rv : NULL;
}

/*
 * Remove one version; aliases still pointing at it are removed, in their
 * history (a forced rm moves the weighted ones to their other targets
 * first, in the same record: rm_apply_moves()).
 */
int model_remove_version(struct reg_state *st, struct reg_model *m, struct reg_ver *rv, uint64_t t,
                         uint64_t uid, uint64_t gen)
{
    bool found;
    size_t i = model_version_index(m, &rv->v.sv, &found);

    for (size_t k = 0; k < m->naliases; k++) {
        struct reg_alias *a = &m->aliases[k];
        bool hit = false;

        for (size_t j = 0; j < a->ntg; j++)
            hit |= a->tg[j].version == &rv->v;
        if (hit) {
            char from[TSET_TEXT_MAX];
            struct tset ts;

            /* a record without "moves" (a plain alias, or written before them): it goes whole */
            alias_tset(a, &ts);
            tset_format(&ts, from, sizeof(from));
            if (alias_hist_add(a, from, NULL, t, uid, gen, false, NULL))
                return MC_ENOMEM;
            alias_set_targets(a, NULL);
        }
    }
    memmove(&m->vers[i], &m->vers[i + 1], (m->nvers - i - 1) * sizeof(*m->vers));
    m->nvers--;
    ver_free(rv);
    if (m->nvers == 0 && m->naliases == 0) {
        state_remove(st, m);
        return 0;
    }
    return model_sync_view(m);
}

const char *alias_rollback_text(const struct reg_alias *a)
{
    size_t skip = 0;

    for (size_t i = a->nhist; i-- > 0;) {
        if (a->hist[i].rollback)
            skip++;
        else if (skip > 0)
            skip--;
        else
            return a->hist[i].from;
    }
    return NULL;
}

void alias_set_targets(struct reg_alias *a, const struct tset *t)
{
    size_t best = 0;

    a->ntg = t ? t->n : 0;
    for (size_t i = 0; i < a->ntg; i++) {
        a->tg[i].version = &t->v[i]->v;
        a->tg[i].weight = t->w[i];
        if (t->w[i] > t->w[best])
            best = i;
    }
    a->target = a->ntg ? t->v[best] : NULL;
}

void alias_tset(const struct reg_alias *a, struct tset *t)
{
    t->n = a->ntg;
    for (size_t i = 0; i < a->ntg; i++) {
        t->v[i] = ver_of(a->tg[i].version);
        t->w[i] = a->tg[i].weight;
    }
}

const struct reg_alias *model_alias_holding(const struct reg_model *m,
                                            const struct mc_reg_version *v)
{
    for (size_t i = 0; i < m->naliases; i++)
        for (size_t j = 0; j < m->aliases[i].ntg; j++)
            if (m->aliases[i].tg[j].version == v)
                return &m->aliases[i];
    return NULL;
}
