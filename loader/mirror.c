/*
 * mirror.c - the registry mirrored in mcached and its arena: the version
 * map (every READY registry version, as a struct dver), bringing it and the
 * arena's records in step with the registry (daemon_sync), and pointing
 * the arena's aliases where the registry says.
 *
 * BLUE-GREEN. When the registry moves an alias to a version that is not
 * resident while the alias's current target is, the new version is loaded
 * and verified first, and only then does the alias move (one atomic store
 * in the arena). If the load fails, the alias stays where it was and the
 * failure is logged and shown in status.
 */
#include "common/clock.h"
#include "loader/daemon.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loader/log.h"
#include "common/err.h"
#include "common/vec.h"

/* ---- the version map ---- */

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;

    while (*s)
        h = (h ^ (uint8_t)*s++) * 1099511628211ull;
    return h;
}

static int map_grow(struct daemon *d)
{
    size_t cap = d->htcap ? d->htcap * 2 : 1024;
    struct dver **ht = calloc(cap, sizeof(*ht));

    if (!ht)
        return mc_err(MC_ENOMEM, "version map: out of memory");
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i], *next; v; v = next) {
            next = v->next;
            size_t b = str_hash(v->key) & (cap - 1);
            v->next = ht[b];
            ht[b] = v;
        }
    free(d->ht);
    d->ht = ht;
    d->htcap = cap;
    return 0;
}

struct dver *daemon_find(struct daemon *d, const char *name, const char *version)
{
    char key[MC_KEY_MAX];

    if (!d->htcap || !mc_key_version(key, sizeof(key), name, strlen(name), version,
                                     strlen(version)))
        return NULL;
    for (struct dver *v = d->ht[str_hash(key) & (d->htcap - 1)]; v; v = v->next)
        if (strcmp(v->key, key) == 0)
            return v;
    return NULL;
}

static void map_remove(struct daemon *d, struct dver *v)
{
    struct dver **pp = &d->ht[str_hash(v->key) & (d->htcap - 1)];

    while (*pp && *pp != v)
        pp = &(*pp)->next;
    if (*pp)
        *pp = v->next;
    d->nver--;
}

void dver_free(struct dver *v)
{
    free(v->name);
    free(v->version);
    free(v->path);
    free(v->meta);
    free(v->cl);
    free(v);
}

/* ---- mirroring the registry ---- */

static int dver_update(struct daemon *d, const struct mc_reg_version *rv, struct dver **out)
{
    struct dver *v = daemon_find(d, rv->name, rv->version);
    char *meta;

    if (v && strcmp(v->checksum, rv->checksum) == 0 && v->size == rv->size) {
        v->preload = rv->preload;
        v->pinned = rv->pinned;
        if (v->reg_gen != rv->generation && (meta = mc_reg_version_json(rv))) {
            /* Metadata edited: the next record published for it carries it. */
            free(v->meta);
            v->meta = meta;
            v->reg_gen = rv->generation;
        }
        *out = v;
        return 0;
    }
    if (v) /* same version, other bytes: removed and pushed again */
        return MC_EEXIST;
    if (d->nver * 2 >= d->htcap && map_grow(d) != 0)
        return MC_ENOMEM;
    v = calloc(1, sizeof(*v));
    meta = mc_reg_version_json(rv);
    if (!v || !meta) {
        free(v);
        free(meta);
        return mc_err(MC_ENOMEM, "out of memory");
    }
    v->name = strdup(rv->name);
    v->version = strdup(rv->version);
    v->path = strdup(rv->path);
    v->meta = meta;
    mc_key_version(v->key, sizeof(v->key), rv->name, strlen(rv->name), rv->version,
                   strlen(rv->version));
    v->size = rv->size;
    snprintf(v->checksum, sizeof(v->checksum), "%s", rv->checksum);
    v->format = (uint32_t)rv->format;
    v->preload = rv->preload;
    v->pinned = rv->pinned;
    v->reg_gen = rv->generation;
    v->st = D_REGISTERED;
    if (!v->name || !v->version || !v->path) {
        dver_free(v);
        return mc_err(MC_ENOMEM, "out of memory");
    }
    size_t b = str_hash(v->key) & (d->htcap - 1);
    v->next = d->ht[b];
    d->ht[b] = v;
    d->nver++;
    *out = v;
    return 1;
}

/* A version that is new to the daemon: adopt its READY record if it matches. */
static void dver_attach_record(struct daemon *d, struct dver *v)
{
    struct mc_rec_version *r = mc_table_find_version(d->own.w.t, d->own.a.hdr->hash_seed,
                                                     v->name, v->version);

    const struct mc_rec_vcold *c = r ? mc_rec_cold(r) : NULL;

    if (r && r->h.state == MC_STATE_READY && r->data_size == v->size &&
        strcmp(c->checksum, v->checksum) == 0) {
        v->st = D_READY;
        v->rec_off = mc_arena_off(&d->own.a, r);
        v->extent_off = c->extent_off;
        v->extent_size = c->extent_size;
        v->tensors_off = c->tensors_off;
        v->tensors_size = c->tensors_size;
        v->loaded_at = c->loaded_ns;
        v->last_used_ns = mc_mono_ns();
        return;
    }
    if (r && r->h.state == MC_STATE_REGISTERED && r->data_size == v->size &&
        strcmp(c->checksum, v->checksum) == 0) {
        v->rec_off = mc_arena_off(&d->own.a, r); /* as it should be: keep it */
        return;
    }
    if (daemon_put_record(d, v, MC_STATE_REGISTERED) != 0)
        log_error("cannot register %s@%s in the arena: %s", v->name, v->version,
                  mc_last_error());
}

static void dver_drop(struct daemon *d, struct dver *v)
{
    char msg[600];

    daemon_unqueue(d, v);
    v->dropping = true;
    if (v->st == D_LOADING) {
        mc_io_cancel(&d->io, v->cl); /* waits for the kernel to finish with the extent */
        mc_extent_free(&d->own.a, &d->own.a.hdr->data_ext, v->extent_off, v->extent_size);
    }
    mc_remote_forget(&d->io, v->path, v->name, v->version); /* its load, if any, has ended */
    snprintf(msg, sizeof(msg), "%s@%s was removed from the registry", v->name, v->version);
    daemon_wake(d, v, MC_ENOENT, msg);
    if (mc_table_find_version(d->own.w.t, d->own.a.hdr->hash_seed, v->name, v->version))
        mc_table_remove_version(&d->own.w, v->name, v->version);
    map_remove(d, v);
    dver_free(v);
}

struct stale_ctx {
    struct daemon *d;
    char (*keys)[MC_KEY_MAX];
    size_t n, cap;
};

/* Collect arena records the registry no longer has (table iteration forbids removal). */
static int stale_visit(void *arg, struct mc_rec *r)
{
    struct stale_ctx *sc = arg;
    const char *key = mc_rec_key(r);
    bool stale = false;

    if (r->kind == MC_REC_VERSION) {
        struct mc_rec_version *rv = (struct mc_rec_version *)r;
        stale = !daemon_find(sc->d, mc_rec_version_name(rv), mc_rec_version_str(rv));
    } else if (r->kind == MC_REC_ALIAS) {
        const char *hash = strchr(key, '#');
        char name[MC_KEY_MAX];
        const struct mc_reg_model *m;
        bool found = false;

        snprintf(name, sizeof(name), "%.*s", (int)(hash - key), key);
        m = mc_registry_model(sc->d->reg, name);
        for (size_t i = 0; m && i < m->naliases; i++)
            found |= m->aliases[i].target && strcmp(m->aliases[i].alias, hash + 1) == 0;
        stale = !found;
    }
    if (!stale)
        return 0;
    if (MC_VEC_RESERVE(sc->keys, sc->cap, sc->n + 1, 64))
        return mc_err(MC_ENOMEM, "listing stale arena records: out of memory");
    snprintf(sc->keys[sc->n++], MC_KEY_MAX, "%s", key);
    return 0;
}

static void remove_stale_records(struct daemon *d)
{
    struct stale_ctx sc = {.d = d};

    mc_table_foreach(&d->own.w, stale_visit, &sc);
    for (size_t i = 0; i < sc.n; i++) {
        char *k = sc.keys[i], *at = strchr(k, '@'), *hash = strchr(k, '#');

        if (at) {
            *at = '\0';
            mc_table_remove_version(&d->own.w, k, at + 1);
        } else if (hash) {
            *hash = '\0';
            mc_table_remove_alias(&d->own.w, k, hash + 1);
        }
    }
    free(sc.keys);
}

/*
 * The registry alias's targets as dvers, with their weights; how many (0: a
 * removed alias, or a target mcached does not mirror: not READY).
 */
static size_t alias_targets(struct daemon *d, const struct mc_reg_model *m,
                            const struct mc_reg_alias *a, struct dver **t, uint32_t *w)
{
    size_t n = a->ntargets;

    if (n == 0 && a->target) { /* a plain alias */
        t[0] = daemon_find(d, m->name, a->target->version);
        w[0] = 100;
        return t[0] ? 1 : 0;
    }
    for (size_t i = 0; i < n && i < MC_SPLIT_MAX; i++) {
        t[i] = daemon_find(d, m->name, a->targets[i].version->version);
        w[i] = a->targets[i].weight;
        if (!t[i])
            return 0;
    }
    return n <= MC_SPLIT_MAX ? n : 0;
}

/* Does the arena alias `cur` already point at t[0..n) with weights w, in that order? */
static bool alias_same(const struct mc_rec_alias *cur, struct dver *const *t, const uint32_t *w,
                       size_t n)
{
    struct mc_rec_version *vs[MC_SPLIT_MAX] = {0};
    const struct mc_split *sp = mc_target_split(cur->target);

    if (mc_target_versions(cur->target, vs) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (strcmp(mc_rec_version_str(vs[i]), t[i]->version) || (sp && sp->weight[i] != w[i]))
            return false;
    return true;
}

/* Is any version the arena alias points at resident? */
static bool alias_serves(const struct mc_rec_alias *cur)
{
    struct mc_rec_version *vs[MC_SPLIT_MAX] = {0};
    unsigned n = mc_target_versions(cur->target, vs);

    for (unsigned i = 0; i < n; i++)
        if (vs[i]->h.state == MC_STATE_READY)
            return true;
    return false;
}

/*
 * Point every arena alias where the registry says (its targets and weights),
 * loading first when that would otherwise take a serving alias to a version
 * that is not resident: a weighted alias moves only once all its targets are.
 */
void daemon_apply_aliases(struct daemon *d)
{
    size_t nm = mc_registry_model_count(d->reg);

    for (size_t i = 0; i < nm; i++) {
        const struct mc_reg_model *m = mc_registry_model_at(d->reg, i);

        for (size_t j = 0; j < m->naliases; j++) {
            const struct mc_reg_alias *a = &m->aliases[j];
            struct dver *t[MC_SPLIT_MAX];
            const char *names[MC_SPLIT_MAX];
            uint32_t w[MC_SPLIT_MAX];
            char key[MC_KEY_MAX], desc[256];
            size_t klen, n, len = 0;
            struct mc_rec *cur;
            bool wait = false;

            n = alias_targets(d, m, a, t, w);
            if (n == 0)
                continue; /* removed, or not READY in the registry: not mirrored */
            klen = mc_key_alias(key, sizeof(key), m->name, strlen(m->name), a->alias,
                                strlen(a->alias));
            cur = klen ? mc_table_lookup(d->own.w.t, d->own.a.hdr->hash_seed, key, klen) : NULL;
            if (cur && cur->kind == MC_REC_ALIAS) {
                struct mc_rec_alias *ca = (struct mc_rec_alias *)cur;

                if (alias_same(ca, t, w, n))
                    continue; /* already there */
                /* Blue-green: load the new targets first; move when all are ready. */
                for (size_t k = 0; k < n; k++)
                    if (t[k]->st != D_READY && alias_serves(ca)) {
                        if (t[k]->st != D_FAILED)
                            daemon_want_load(d, t[k]);
                        wait = true;
                    }
                if (wait)
                    continue;
            }
            desc[0] = '\0';
            for (size_t k = 0; k < n; k++) {
                names[k] = t[k]->version;
                if (len < sizeof(desc))
                    len += (size_t)(n == 1 ? snprintf(desc, sizeof(desc), "%s", names[k])
                                           : snprintf(desc + len, sizeof(desc) - len, "%s%s=%u",
                                                      k ? " " : "", names[k], w[k]));
            }
            if (mc_table_set_alias_split(&d->own.w, m->name, a->alias, names, w, n) != 0) {
                log_error("cannot point alias %s of %s at %s: %s", a->alias, m->name, desc,
                          mc_last_error());
                continue;
            }
            log_info("alias %s of %s -> %s", a->alias, m->name, desc);
            for (size_t k = 0; d->cfg.preload && k < n; k++)
                daemon_want_load(d, t[k]);
        }
    }
    /* Versions removed from the registry that no alias serves any more go now. */
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i], *next; v; v = next) {
            next = v->next;
            if (v->draining && !daemon_arena_target(d, v))
                dver_drop(d, v);
        }
}

/*
 * The versions a running or paused rollout started from count as aliased:
 * kept loaded (not evicted for room, preloaded at start), so a rollback
 * needs no cold load while the new version serves (a blue-green switch
 * leaves the old version unaliased; a review find).
 */
static void keep_rollout_origins(struct daemon *d)
{
    size_t n = mc_registry_deploy_count(d->reg);

    for (size_t i = 0; i < n; i++) {
        const struct mc_reg_deploy *x = mc_registry_deploy_at(d->reg, i);
        char from[512], *save = NULL;

        if (!x || (x->state != MC_DEPLOY_RUNNING && x->state != MC_DEPLOY_PAUSED) || !x->from)
            continue;
        snprintf(from, sizeof(from), "%s", x->from); /* "1.0.0" or "1.0.0=90 2.0.0=10" */
        for (char *w = strtok_r(from, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
            struct dver *v;

            w[strcspn(w, "=")] = '\0';
            if ((v = daemon_find(d, x->name, w)))
                v->aliased++;
        }
    }
}

int daemon_sync(struct daemon *d, bool force)
{
    size_t nm;
    int rc;

    rc = mc_registry_refresh(d->reg, NULL);
    {
        /* A shared registry's database can be away for minutes, checked every 2 s: say it once
         * (and again if the reason changes), then that it answers again. */
        static char failing[512];

        if (rc) {
            if (strcmp(failing, mc_last_error()) != 0)
                log_error("reading the registry: %s; serving what the arena holds (generation "
                          "%llu) and trying again",
                          mc_last_error(), (unsigned long long)mc_registry_generation(d->reg));
            snprintf(failing, sizeof(failing), "%s", mc_last_error());
            return rc;
        }
        if (failing[0]) {
            log_info("the registry answers again (generation %llu)",
                     (unsigned long long)mc_registry_generation(d->reg));
            failing[0] = '\0';
        }
    }
    /* Compare generations, not `changed`: someone else (a request that
     * needed fresh registry data) may have refreshed since our last sync. */
    if (!force && mc_registry_generation(d->reg) == d->synced_gen && d->synced)
        return 0;
    /* Records that only log (a refusal, an HTTP attempt: "audit") change
     * nothing mirrored: move the mark without a resync, or anyone who can
     * get a request refused could keep mcached resyncing. */
    if (!force && d->synced && mc_registry_state_generation(d->reg) <= d->synced_gen) {
        d->synced_gen = mc_registry_generation(d->reg);
        d->own.a.hdr->manifest_gen = d->synced_gen;
        return 0;
    }
    d->syncs++;
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next) {
            v->seen = false;
            v->aliased = 0;
        }
    nm = mc_registry_model_count(d->reg);
    for (size_t i = 0; i < nm; i++) {
        const struct mc_reg_model *m = mc_registry_model_at(d->reg, i);

        for (size_t j = 0; j < m->nversions; j++) {
            const struct mc_reg_version *rv = m->versions[j];
            struct dver *v;

            if (rv->status != MC_STATUS_READY)
                continue;
            rc = dver_update(d, rv, &v);
            if (rc == MC_EEXIST) { /* the bytes changed under the same version */
                dver_drop(d, daemon_find(d, rv->name, rv->version));
                rc = dver_update(d, rv, &v);
            }
            if (rc < 0) {
                log_error("mirroring %s@%s: %s", rv->name, rv->version, mc_last_error());
                continue;
            }
            if (rc == 1)
                dver_attach_record(d, v);
            v->seen = true;
            v->draining = false; /* pushed again meanwhile */
        }
        for (size_t j = 0; j < m->naliases; j++) {
            struct dver *t[MC_SPLIT_MAX];
            uint32_t w[MC_SPLIT_MAX];
            size_t n = alias_targets(d, m, &m->aliases[j], t, w);

            for (size_t k = 0; k < n; k++)
                t[k]->aliased++;
        }
    }
    keep_rollout_origins(d);
    for (size_t i = 0; i < d->htcap; i++)
        for (struct dver *v = d->ht[i], *next; v; v = next) {
            next = v->next;
            if (v->seen)
                continue;
            /* Blue-green holds for removals too: a version an alias still
             * serves while its new target loads stays until the alias moves
             * (daemon_apply_aliases drops it then). */
            if (v->st == D_READY && daemon_arena_target(d, v)) {
                if (!v->draining)
                    log_info("%s@%s was removed from the registry; it keeps serving its "
                             "alias until the alias's new target is loaded",
                             v->name, v->version);
                v->draining = true;
                continue;
            }
            dver_drop(d, v);
        }
    remove_stale_records(d);
    daemon_apply_aliases(d);
    /* Preload: pinned and marked versions (aliased ones were queued above). */
    for (size_t i = 0; d->cfg.preload && i < d->htcap; i++)
        for (struct dver *v = d->ht[i]; v; v = v->next)
            if ((v->preload || v->pinned || v->aliased) && v->st == D_REGISTERED)
                daemon_want_load(d, v);
    d->synced_gen = mc_registry_generation(d->reg);
    d->synced = true;
    d->own.a.hdr->manifest_gen = d->synced_gen;
    mc_reclaim_poll(&d->own.rc);
    daemon_schedule(d);
    return 0;
}
