/*
 * stats.c - serving statistics in mcached (see stats.h): the stats indices
 * of version records, summing the workers' rows, the ring of snapshots the
 * windows are cut from.
 */
#include "loader/stats.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/clock.h"
#include "common/err.h"
#include "index/record.h"
#include "loader/daemon.h"
#include "loader/log.h"
#include "shm/atomic.h"

struct stats_snap {
    uint64_t t_ns; /* CLOCK_MONOTONIC */
    struct mc_stats_sum sum;
};

/* One index: the record it counts for, and its snapshots. */
struct stats_track {
    uint64_t rec_off;        /* the record published with it; 0: free */
    bool taken;              /* given out (bound or about to be) */
    struct stats_snap *ring; /* STATS_RING snapshots, newest at head - 1; NULL: none */
    unsigned head, n;
};

struct stats {
    struct stats_track t[MC_STATS_VERSIONS];
    uint64_t last_snap_ns;
    uint64_t untracked; /* READY records published without an index */
    uint64_t snapshots; /* rounds of snapshots taken */
};

/* ---- the rows ----------------------------------------------------------- */

static void index_sum(const struct mc_readers *r, unsigned idx, struct mc_stats_sum *out)
{
    uint64_t bit = 1ull << idx;

    memset(out, 0, sizeof(*out));
    for (uint32_t s = 0; s < r->nslots; s++)
        if (mc_load_relaxed(mc_row_used(r, s)) & bit)
            mc_stats_add_block(out, mc_row_block(r, s, idx));
}

/*
 * Zero idx's block in every row that used it, then clear the bits: the next
 * version given idx starts from zero. Only once no reader can report on idx
 * (its record is freed, or no record has it). A tmpfs page is given back
 * (MADV_REMOVE reads as zeros); where that fails (hugetlbfs) it is zeroed.
 */
static void index_clean(const struct mc_readers *r, unsigned idx)
{
    uint64_t bit = 1ull << idx;

    for (uint32_t s = 0; s < r->nslots; s++) {
        uint64_t *used = mc_row_used(r, s);
        void *b;

        if (!(mc_load_relaxed(used) & bit))
            continue;
        b = mc_row_block(r, s, idx);
        if (madvise(b, MC_ROW_BLOCK, MADV_REMOVE) != 0)
            memset(b, 0, MC_ROW_BLOCK);
        /* Zeroed before the bit goes: a crash in between leaves the bit, and the
         * next mcached cleans the block again. */
        __atomic_fetch_and(used, ~bit, __ATOMIC_RELEASE);
    }
}

/* ---- indices ------------------------------------------------------------ */

static void track_snap(struct daemon *d, unsigned idx, uint64_t now)
{
    struct stats_track *t = &d->stats->t[idx];
    struct stats_snap *s;

    if (!t->ring)
        return;
    s = &t->ring[t->head];
    s->t_ns = now;
    index_sum(&d->own.r, idx, &s->sum);
    t->head = (t->head + 1) % STATS_RING;
    if (t->n < STATS_RING)
        t->n++;
}

static void track_bind(struct daemon *d, unsigned idx, uint64_t rec_off)
{
    struct stats_track *t = &d->stats->t[idx];

    t->taken = true;
    t->rec_off = rec_off;
    t->head = t->n = 0;
    if (!t->ring)
        t->ring = malloc(STATS_RING * sizeof(*t->ring));
    if (!t->ring)
        log_warn("no memory for the windows of stats index %u: only \"since loaded\"", idx);
}

static void track_free(struct daemon *d, unsigned idx)
{
    struct stats_track *t = &d->stats->t[idx];

    index_clean(&d->own.r, idx);
    free(t->ring);
    memset(t, 0, sizeof(*t));
}

uint8_t stats_index_take(struct daemon *d)
{
    if (!d->stats)
        return 0;
    for (unsigned i = 1; i < MC_STATS_VERSIONS; i++)
        if (!d->stats->t[i].taken) {
            d->stats->t[i].taken = true;
            return (uint8_t)i;
        }
    d->stats->untracked++;
    return 0;
}

void stats_index_bind(struct daemon *d, uint8_t idx, uint64_t rec_off)
{
    if (d->stats && idx && idx < MC_STATS_VERSIONS)
        track_bind(d, idx, rec_off);
}

void stats_index_untake(struct daemon *d, uint8_t idx)
{
    if (d->stats && idx && idx < MC_STATS_VERSIONS && !d->stats->t[idx].rec_off)
        d->stats->t[idx].taken = false;
}

void stats_on_free(void *ctx, const struct mc_rec_version *v)
{
    struct daemon *d = ctx;
    unsigned idx = v->h.stats;

    if (!d->stats || !idx || idx >= MC_STATS_VERSIONS)
        return;
    if (d->stats->t[idx].rec_off != mc_arena_off(&d->own.a, v)) {
        log_warn("stats index %u freed by a record it was not given to; left alone", idx);
        return;
    }
    track_free(d, idx);
}

/* ---- start-up ----------------------------------------------------------- */

/* A version record with an index marks it used (the first record to claim it wins). */
static void adopt_record(struct daemon *d, const struct mc_rec *r, uint64_t now)
{
    const struct mc_rec_version *v = (const struct mc_rec_version *)r;
    unsigned idx = r->stats;

    if (r->magic != MC_REC_MAGIC || r->kind != MC_REC_VERSION || !idx || idx >= MC_STATS_VERSIONS)
        return;
    if (d->stats->t[idx].taken) {
        log_warn("stats index %u is claimed by two records (%s@%s and another); its counts "
                 "are shared until both are gone",
                 idx, mc_rec_version_name(v), mc_rec_version_str(v));
        return;
    }
    track_bind(d, idx, mc_arena_off(&d->own.a, v));
    track_snap(d, idx, now);
}

static int adopt_visit(void *ctx, struct mc_rec *r)
{
    struct daemon *d = ctx;

    adopt_record(d, r, mc_mono_ns());
    return 0;
}

int stats_init(struct daemon *d)
{
    uint64_t now = mc_mono_ns();
    unsigned used = 0;

    d->stats = calloc(1, sizeof(*d->stats));
    if (!d->stats)
        return mc_err(MC_ENOMEM, "out of memory for serving statistics");
    d->stats->last_snap_ns = now;
    /* In use: the records in the table, and retired ones readers may still hold. */
    mc_table_foreach(&d->own.w, adopt_visit, d);
    for (size_t i = 0; i < d->own.rc.n; i++)
        if (d->own.rc.items[i].kind == MC_RETIRE_RECORD)
            adopt_record(d, mc_arena_ptr(&d->own.a, d->own.rc.items[i].off), now);
    /* Every other index starts from zero (a crash may have left counts in it). */
    for (unsigned i = 1; i < MC_STATS_VERSIONS; i++) {
        if (d->stats->t[i].taken)
            used++;
        else
            index_clean(&d->own.r, i);
    }
    d->own.w.on_free = stats_on_free;
    d->own.w.on_free_ctx = d;
    if (used)
        log_info("serving statistics: %u versions tracked from before the restart", used);
    return 0;
}

void stats_destroy(struct daemon *d)
{
    if (!d->stats)
        return;
    d->own.w.on_free = NULL;
    for (unsigned i = 0; i < MC_STATS_VERSIONS; i++)
        free(d->stats->t[i].ring);
    free(d->stats);
    d->stats = NULL;
}

void stats_tick(struct daemon *d)
{
    uint64_t now = mc_mono_ns();

    if (!d->stats || now - d->stats->last_snap_ns < STATS_SNAP_NS)
        return;
    d->stats->last_snap_ns = now;
    d->stats->snapshots++;
    for (unsigned i = 1; i < MC_STATS_VERSIONS; i++)
        if (d->stats->t[i].rec_off)
            track_snap(d, i, now);
}

unsigned stats_indices_used(const struct daemon *d)
{
    unsigned n = 0;

    for (unsigned i = 1; d->stats && i < MC_STATS_VERSIONS; i++)
        n += d->stats->t[i].rec_off != 0;
    return n;
}

uint64_t stats_untracked_total(const struct daemon *d)
{
    return d->stats ? d->stats->untracked : 0;
}

/* ---- answers ------------------------------------------------------------ */

/* name@version's record, READY; MC_ENOENT with the message if there is none. */
static int resident_record(struct daemon *d, const char *name, const char *version,
                           const struct mc_rec_version **out)
{
    struct dver *v = daemon_find(d, name, version);
    const struct mc_rec_version *rv = v ? daemon_record_at(d, v->rec_off) : NULL;

    if (!v)
        return mc_err(MC_ENOENT,
                      "mcached does not serve %s@%s: no such ready version in the registry "
                      "(`mcache ls %s` lists them)",
                      name, version, name);
    if (v->st != D_READY || !rv || rv->h.state != MC_STATE_READY)
        return mc_err(MC_ENOENT,
                      "%s@%s is not resident: serving statistics are kept only while a version "
                      "is loaded; load it with `mcache load %s@%s`",
                      name, version, name, version);
    *out = rv;
    return 0;
}

int stats_version_index(struct daemon *d, const char *name, const char *version, unsigned *idx)
{
    const struct mc_rec_version *rv = NULL;
    int rc = resident_record(d, name, version, &rv);

    if (!rc)
        *idx = rv->h.stats;
    return rc;
}

static int tracked(struct daemon *d, const char *name, const char *version,
                   const struct mc_rec_version **rv, unsigned *idx)
{
    int rc = resident_record(d, name, version, rv);

    if (rc)
        return rc;
    *idx = (*rv)->h.stats;
    if (!*idx || *idx >= MC_STATS_VERSIONS || !d->stats ||
        d->stats->t[*idx].rec_off != mc_arena_off(&d->own.a, *rv))
        return mc_err(MC_ENOTSUP,
                      "%s@%s is resident but untracked: all %u statistics indices were in use "
                      "by other resident versions when it was loaded, so its reports are not "
                      "counted; evict versions you do not need, then evict and load %s@%s again",
                      name, version, MC_STATS_VERSIONS - 1, name, version);
    return 0;
}

int stats_version_sum(struct daemon *d, const char *name, const char *version,
                      struct mc_stats_sum *out)
{
    const struct mc_rec_version *rv = NULL;
    unsigned idx = 0;
    int rc = tracked(d, name, version, &rv, &idx);

    if (!rc)
        index_sum(&d->own.r, idx, out);
    return rc;
}

int stats_version_window_ex(struct daemon *d, const char *name, const char *version,
                            unsigned seconds, struct stats_window *out)
{
    const struct mc_rec_version *rv = NULL;
    const struct stats_track *t;
    const struct stats_snap *base = NULL;
    uint64_t now = mc_mono_ns(), wall = mc_wall_ns(), loaded,
             span = (uint64_t)seconds * 1000000000ull;
    unsigned idx;
    int rc;

    if (seconds > STATS_WINDOW_MAX)
        return mc_err(MC_EINVAL,
                      "a statistics window of %u s is longer than the %u s mcached keeps; ask "
                      "for 1..%u seconds",
                      seconds, STATS_WINDOW_MAX, STATS_WINDOW_MAX);
    rc = tracked(d, name, version, &rv, &idx);
    if (rc)
        return rc;
    index_sum(&d->own.r, idx, &out->sum);
    loaded = mc_rec_cold(rv)->loaded_ns;
    out->covered_s = wall > loaded ? (double)(wall - loaded) / 1e9 : 0;
    if (seconds == 0 || (wall > loaded && wall - loaded <= span))
        return 0; /* since loaded: the rows started from zero then */
    t = &d->stats->t[idx];
    /* The newest snapshot at least `seconds` old, else the oldest there is. */
    for (unsigned k = 0; k < t->n; k++) {
        const struct stats_snap *s = &t->ring[(t->head + STATS_RING - 1 - k) % STATS_RING];

        base = s;
        if (now - s->t_ns >= span)
            break;
    }
    if (base) {
        mc_stats_diff(&out->sum, &base->sum, &out->sum);
        out->covered_s = (double)(now - base->t_ns) / 1e9;
    }
    return 0;
}

int stats_version_window(struct daemon *d, const char *name, const char *version, unsigned seconds,
                         struct mc_stats_sum *out)
{
    struct stats_window w;
    int rc;

    if (seconds == 0)
        return mc_err(MC_EINVAL, "a statistics window of 0 s is empty; ask for 1..%u seconds",
                      STATS_WINDOW_MAX);
    rc = stats_version_window_ex(d, name, version, seconds, &w);
    if (!rc)
        *out = w.sum;
    return rc;
}

/* ---- control requests: `stats NAME REF`, `compare NAME REF1 REF2` --------- */

static const struct {
    const char *name;
    unsigned seconds; /* 0: since loaded */
} windows[] = {{"1m", 60}, {"10m", 600}, {"loaded", 0}};

static json_t *window_json(const char *label, unsigned seconds, const struct stats_window *w)
{
    const struct mc_stats_sum *s = &w->sum;
    double req = (double)s->requests;

    return json_pack(
        "{s:s, s:i, s:f, s:I, s:I, s:I, s:f, s:f, s:f, s:I, s:I, s:I}", "window", label, "seconds",
        (int)seconds, "covered_s", w->covered_s, "requests", (json_int_t)s->requests, "errors",
        (json_int_t)s->errors, "units", (json_int_t)s->units, "requests_per_s",
        w->covered_s > 0 ? req / w->covered_s : 0.0, "error_rate",
        req > 0 ? (double)s->errors / req : 0.0, "units_per_request",
        req > 0 ? (double)s->units / req : 0.0, "p50_ns", (json_int_t)mc_stats_quantile(s, 0.50),
        "p95_ns", (json_int_t)mc_stats_quantile(s, 0.95), "p99_ns",
        (json_int_t)mc_stats_quantile(s, 0.99));
}

/* NAME REF -> the version mcached serves; MC_E* with the message if none. */
static int stats_resolve(struct daemon *d, const char *name, const char *ref,
                         const struct mc_reg_version **out)
{
    daemon_sync(d, false); /* the registry as it is now */
    return mc_registry_resolve(d->reg, name, ref, out);
}

/* REF as an alias of NAME with more than one target: its canonical targets, else NULL. */
static json_t *split_json(struct daemon *d, const char *name, const char *ref)
{
    const struct mc_reg_model *m = mc_registry_model(d->reg, name);
    char buf[512];

    for (size_t i = 0; m && i < m->naliases; i++)
        if (!strcmp(m->aliases[i].alias, ref) && m->aliases[i].ntargets > 1 &&
            mc_reg_targets_format(&m->aliases[i], buf, sizeof(buf)) == 0)
            return json_string(buf);
    return NULL;
}

/* Everything `stats` answers for one version, or NULL with the code in *rc. */
static json_t *version_stats_json(struct daemon *d, const char *name, const char *ref,
                                  unsigned extra, int *rc)
{
    const struct mc_reg_version *v;
    const struct mc_rec_version *rv = NULL;
    struct stats_window w;
    json_t *j, *arr, *split;
    unsigned idx;

    *rc = stats_resolve(d, name, ref, &v);
    if (!*rc)
        *rc = tracked(d, v->name, v->version, &rv, &idx);
    if (*rc)
        return NULL;
    arr = json_array();
    for (size_t i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
        *rc = stats_version_window_ex(d, v->name, v->version, windows[i].seconds, &w);
        if (*rc) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, window_json(windows[i].name, windows[i].seconds, &w));
    }
    if (extra) { /* a window asked for: "30s" */
        char label[16];

        *rc = stats_version_window_ex(d, v->name, v->version, extra, &w);
        if (*rc) {
            json_decref(arr);
            return NULL;
        }
        snprintf(label, sizeof(label), "%us", extra);
        json_array_append_new(arr, window_json(label, extra, &w));
    }
    j = json_pack("{s:s, s:s, s:s, s:i, s:I, s:o}", "name", v->name, "version", v->version, "ref",
                  ref, "index", (int)idx, "loaded_ns", (json_int_t)mc_rec_cold(rv)->loaded_ns,
                  "windows", arr);
    /* A weighted alias: the registry resolved it to its heaviest target; say so. */
    split = split_json(d, v->name, ref);
    json_object_set_new(j, "split", split ? split : json_null());
    return j;
}

static void reply(struct daemon *d, struct mc_conn *c, int rc, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    const char *msg = mc_last_error();

    json_decref(j);
    if (!rc && s) {
        mc_ctl_reply(&d->ctl, c, 0, s, strlen(s));
    } else {
        if (!rc)
            rc = MC_ENOMEM, msg = "out of memory";
        mc_ctl_reply(&d->ctl, c, rc, msg, strlen(msg));
    }
    free(s);
}

void stats_op(struct daemon *d, struct mc_conn *c, const struct mc_request *rq)
{
    unsigned long secs = 0;
    char *end = NULL;
    int rc;
    json_t *j;

    if (rq->nargs > 2) {
        secs = strtoul(rq->args[2], &end, 10);
        if (!*rq->args[2] || *end || rq->args[2][0] == '-' || secs < 1 || secs > STATS_WINDOW_MAX) {
            rc =
                mc_err(MC_EINVAL, "stats: window \"%.40s\" is not a number of seconds from 1 to %u",
                       rq->args[2], STATS_WINDOW_MAX);
            reply(d, c, rc, NULL);
            return;
        }
    }
    j = version_stats_json(d, rq->args[0], rq->args[1], (unsigned)secs, &rc);
    reply(d, c, rc, j);
}

void stats_op_compare(struct daemon *d, struct mc_conn *c, const struct mc_request *rq)
{
    int rc;
    json_t *a = version_stats_json(d, rq->args[0], rq->args[1], 0, &rc), *b = NULL;

    if (a)
        b = version_stats_json(d, rq->args[0], rq->args[2], 0, &rc);
    if (!b) {
        json_decref(a);
        reply(d, c, rc, NULL);
        return;
    }
    reply(d, c, 0, json_pack("{s:s, s:[o, o]}", "name", rq->args[0], "versions", a, b));
}

json_t *stats_counters_json(struct daemon *d)
{
    return json_pack("{s:i, s:i, s:I, s:I}", "indices", (int)(MC_STATS_VERSIONS - 1), "tracked",
                     (int)stats_indices_used(d), "untracked_total",
                     (json_int_t)stats_untracked_total(d), "snapshots",
                     (json_int_t)(d->stats ? d->stats->snapshots : 0));
}
