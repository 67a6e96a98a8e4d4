/*
 * reg_int.h - what the registry's rules share (internal to registry/): the
 * in-memory state, the handle, the record codec and helpers. Which file of
 * registry/ does what:
 *
 *   registry.c  open, refresh, locking, reading, resolving
 *   reg_state.c the state in memory: models, versions, aliases and their
 *               history, and the primitive changes to them
 *   reg_record.c the record codec: fields read and checked, versions built
 *               from them; versions, metadata and the state as records
 *   reg_apply.c records -> state: the meaning of every journal record and
 *               snapshot entry, and whether it fits the state
 *   reg_ops.c   the mutations: push commit, aliases, status, removal,
 *               retention, compaction, check and repair
 *   reg_targets.c target sets (weighted aliases) and their canonical text
 *   reg_deploy_apply.c the records of deployments: health checks, alias
 *               snapshots, deployments, alerts (their meaning and entries)
 *   reg_deploy.c their mutations, and weighted alias moves
 *   search.c    search
 *   reg_audit.c the actor of changes, the audit log, mcache-serve's tokens
 * and, behind the seam (backend.h) the rules never look past:
 *   journal.c   the metadata backend: the store directory, its lock, when to
 *               compact, check and repair of the manifest
 *   manifest.c  the manifest's line format (CRC-32C framing) and shared file helpers
 *   manifest_read.c  reading it: load, follow, torn tails, salvage
 *   manifest_write.c writing it: append, compact (snapshot + fresh journal)
 *   reg_json.c  manifest lines read into trees (a fast reader, jansson for the
 *               rest); the trees are also how records reach the rules
 *   artifacts_local.c the artifact store: STORE/models, temp files of pushes,
 *               the commit marker, copying with the checksum, format detection
 *   files.c     fsyncing directories, crash points (tests)
 *   backend.c   what both sides of the seam use: mc_reg_reportf()
 */
#ifndef MCACHE_REGISTRY_REG_INT_H
#define MCACHE_REGISTRY_REG_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "registry/backend.h"
#include "registry/files.h"
#include "registry/reg_json.h"
#include "registry/registry.h"

/* ---- state ----------------------------------------------------------- */

/*
 * A version: the public view, then (in the same allocation) its strings and
 * arrays. A change rebuilds them in a new block and keeps this struct where
 * aliases point: blob is then that block (freed with the version).
 */
struct reg_ver {
    struct mc_reg_version v;
    void *blob;  /* NULL: the strings follow this struct */
    bool listed; /* transient: already named by the "gc" record being checked */
};

/* A set of 1..MC_ALIAS_TARGETS_MAX versions with weights, ascending precedence. */
struct tset {
    struct reg_ver *v[MC_ALIAS_TARGETS_MAX];
    uint32_t w[MC_ALIAS_TARGETS_MAX];
    size_t n; /* 0: none (a removed alias) */
};

/* Room for the canonical text of a target set: 4 x (version, '=', weight, ' '). */
#define TSET_TEXT_MAX (MC_ALIAS_TARGETS_MAX * (256 + 5) + 1)

struct reg_alias {
    char *alias;
    struct reg_ver *target; /* NULL: removed; else the heaviest target (first on ties) */
    struct mc_reg_target tg[MC_ALIAS_TARGETS_MAX]; /* the targets, ascending precedence */
    size_t ntg;                                    /* 0: removed */
    struct mc_reg_move *hist;                      /* strings owned (from/to/why) */
    size_t nhist, caphist;
};

/* The model's health check, owned. */
struct reg_health {
    struct mc_reg_health pub;
    char **argv;
};

/* A named snapshot of every alias, owned. */
struct reg_snap {
    struct mc_reg_snapshot pub;
    char *name;
    struct mc_reg_snap_entry *e; /* strings owned */
    size_t n;
};

/* A deployment: the public view, its strings, steps and argv owned. */
struct reg_deploy {
    struct mc_reg_deploy pub;
};

/* A token: the public view (strings owned, one block) and its digest. */
struct reg_token {
    struct mc_reg_token pub;
    unsigned char digest[32]; /* SHA-256 of the secret */
};

/* Room for an actor's who or from, and for the text of an intended change. */
#define REG_ACTOR_MAX  256
#define REG_INTENT_MAX 1024
/* Refusals recorded by the registry a caller may still report (mc_registry_audit_add()). */
#define REG_REFUSALS_KEPT 16

/* Kept: every running or paused deployment and the newest ended ones. */
#define REG_DEPLOYS_ENDED_KEPT 256

struct reg_model {
    struct mc_reg_model pub; /* views refreshed by model_sync_view() */
    char *name;
    struct mc_reg_version **vers; /* ascending precedence; each is a reg_ver */
    size_t nvers, capvers;
    struct mc_reg_alias *views; /* public alias views */
    struct reg_alias *aliases;  /* sorted by name */
    size_t naliases, capaliases;
    struct reg_health *health; /* NULL: none */
};

struct reg_state {
    struct reg_model **slots; /* open addressing by name hash */
    size_t nslots, count;
    struct reg_model **sorted; /* by name, rebuilt when dirty */
    bool sorted_dirty;
    uint64_t gen;
    uint64_t state_gen; /* of the last record applied that is not an "audit" one */
    const char *art_root; /* artifacts are <art_root>/<name>/<version>/artifact */
    bool lenient;         /* repair: skip records that do not apply */
    void (*report)(void *, const char *);
    void *report_arg;
    size_t skipped;
    char alias_ok[72]; /* the last alias name that passed mc_alias_check() */
    struct reg_snap *snaps; /* sorted by name */
    size_t nsnaps, capsnaps;
    struct reg_deploy *deploys; /* oldest first */
    size_t ndeploys, capdeploys;
    struct mc_reg_alert alerts[MC_REG_ALERTS_MAX]; /* a ring, strings owned */
    size_t alert_head, nalerts;                    /* oldest at alert_head */
    struct reg_token *tokens;                      /* sorted by name */
    size_t ntokens, captokens;
    struct mc_reg_audit *audit; /* a ring of MC_REG_AUDIT_MAX (allocated at the first), owned */
    size_t audit_head, naudit;  /* oldest at audit_head */
};

/* The handle: the rules' state, and the two backends that keep it (backend.h). */
struct mc_registry {
    char *dir; /* the store, absolute */
    enum mc_reg_lock lock_mode;
    unsigned flags;
    uint32_t uid;
    char who[REG_ACTOR_MAX], from[REG_ACTOR_MAX]; /* the actor stamped on each record */
    char intent[REG_INTENT_MAX]; /* the change being attempted ("" none), for its refusal */
    /* refusals recorded by the registry itself, not yet reported again (reg_audit.c) */
    uint64_t refused[REG_REFUSALS_KEPT];
    unsigned refused_next;
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
    struct mc_reg_backend *be; /* metadata: records and snapshots */
    struct mc_art_store *art;  /* artifacts: the bytes */
    struct reg_state *st;
    /* the last reg_commit()'s record was saved, or may have been: keep what it references */
    bool commit_kept;
    /* a shared registry's replica (STORE/replica): the generation last written there, and
     * the rewrite in flight on its thread (registry.c, replica_save) */
    uint64_t replica_gen;
    struct replica_job *replica_job;
    bool replica_kept; /* asked for (mc_registry_keep_replica): close writes the newest */
    /* opened from the replica because the database was unreachable: why ("" if not) */
    char offline[1024];
    char where[256]; /* the shared registry's URL, for messages */
};

static inline struct reg_ver *ver_of(const struct mc_reg_version *v)
{
    return (struct reg_ver *)v;
}

/* reg_state.c: the state and its primitive changes (no checking) */
/* Whether the state holds name@version exactly (version NULL: the model); an mc_art_holds_fn. */
bool state_holds(void *st, const char *name, const char *version);
struct reg_state *state_new(const char *art_root);
void state_free(struct reg_state *st);
struct reg_model *state_model(const struct reg_state *st, const char *name);
int state_insert(struct reg_state *st, struct reg_model *m);
void state_remove(struct reg_state *st, struct reg_model *m); /* frees m */
void state_sort(struct reg_state *st);
void ver_free(struct reg_ver *rv);
struct reg_ver *model_version(const struct reg_model *m, const struct mc_semver *sv);
/* Where sv is or would go in m->vers; *found says which. */
size_t model_version_index(const struct reg_model *m, const struct mc_semver *sv, bool *found);
/* The version named by an exact version string (build metadata included), or NULL. */
struct reg_ver *ver_exact(const struct reg_model *m, const char *version);
struct reg_alias *model_alias(const struct reg_model *m, const char *alias);
/* The alias, created (empty, in name order) if create; NULL if absent or out of memory. */
struct reg_alias *model_alias_get(struct reg_model *m, const char *alias, bool create);
int alias_hist_add(struct reg_alias *a, const char *from, const char *to, uint64_t t, uint64_t uid,
                   uint64_t gen, bool rollback, const char *why);
/* Point a at the set t (NULL or empty: removed); refreshes target. */
void alias_set_targets(struct reg_alias *a, const struct tset *t);
/* a's targets as a set. */
void alias_tset(const struct reg_alias *a, struct tset *t);
/* Whether any alias of m has v among its targets; the first such alias, or NULL. */
const struct reg_alias *model_alias_holding(const struct reg_model *m,
                                            const struct mc_reg_version *v);
void health_free(struct reg_health *h);
void snap_fini(struct reg_snap *s);
void deploy_fini(struct reg_deploy *d);
void alert_fini(struct mc_reg_alert *a);
/* Refresh m's public views after its versions or aliases changed (MC_ENOMEM). */
int model_sync_view(struct reg_model *m);
int model_remove_version(struct reg_state *st, struct reg_model *m, struct reg_ver *rv, uint64_t t,
                         uint64_t uid, uint64_t gen);
/* The target text a rollback of a goes back to (its history's), or NULL: none. */
const char *alias_rollback_text(const struct reg_alias *a);

/* reg_targets.c: target sets and their canonical text */
/* Sort t by ascending precedence. */
void tset_sort(struct tset *t);
/* The canonical text of t into buf (cap >= TSET_TEXT_MAX): "" for none. */
void tset_format(const struct tset *t, char *buf, size_t cap);
bool tset_equal(const struct tset *a, const struct tset *b);
/* t without gone, the others taking its weight (largest remainder; sum 100). */
void tset_without(const struct tset *t, const struct reg_ver *gone, struct tset *out);
/*
 * Read canonical text into t against m: every version must exist exactly,
 * weights 1..100 summing to 100, distinct, canonical order. code is the
 * error (MC_ECORRUPT for records); what names the text in messages. An
 * empty text is none. On a version that does not exist, *missing (may be
 * NULL) points at a copy of its name in miss[cap].
 */
int tset_parse(const struct reg_model *m, const char *text, struct tset *t, int code,
               const char *what, char *missing, size_t cap);

/* reg_record.c: records <-> values */
/* One record being applied: its fields and where to say what went wrong. */
struct rec {
    const struct mc_jval *j;
    const char *op;
    int err;
};

/* The fields of a version, pointing into the record they came from. */
struct vfields {
    const char *name, *version, *checksum, *status, *reason, *format;
    const char *str[6]; /* description, framework, precision, device, parent, source */
    size_t name_len, version_len, checksum_len, reason_len, str_len[6];
    uint64_t size, t, uid, changed;
    int preload, pinned;
    const struct mc_jval *metrics, *params, *tags;
};

int rec_fail(struct rec *r, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* The record's "op", read before r->op can name it in messages. */
int rec_op(struct rec *r);
/* Member key of r: a string (NULL if absent), a number 0..max, a boolean (kept if absent). */
int rec_str(struct rec *r, const char *key, bool required, const char **out);
int rec_uint(struct rec *r, const char *key, bool required, uint64_t max, uint64_t *out);
int rec_bool(struct rec *r, const char *key, int *out);
/* A metrics/params/tags object as the API allows it (patch: null values remove keys). */
int rec_map_check(struct rec *r, int code, const char *what, const struct mc_jval *obj,
                  bool numbers, bool patch);
/* The six metadata strings: description, framework, precision, device, parent, source. */
extern const char *const rec_meta_keys[6];
/* Read and check a version's fields. code: MC_EINVAL for API input, else MC_ECORRUPT. */
int vfields_read(struct rec *r, int code, struct vfields *f);
/* A version built from checked fields (its artifact under art_root), or NULL: out of memory. */
struct reg_ver *ver_build(const struct vfields *f, const char *art_root, uint64_t gen);
/* Serialize the metadata of a version into a record (op "push" fields). */
int version_to_json(const struct mc_reg_version *v, json_t *obj, bool full);
int meta_to_json(const struct mc_reg_meta *meta, json_t *obj, bool patch);
/* A new record {"g":0,"op":op,"t":now,"uid":uid} to add fields to (NULL: out of memory). */
json_t *rec_new(const char *op, uint32_t uid);
/* rec_new() naming name and, if not NULL, version (NULL: out of memory). */
json_t *version_record(uint32_t uid, const char *op, const char *name, const char *version);
/* The whole state as snapshot entries (an mc_reg_emit_fn). */
int state_emit(void *st, mc_reg_put_fn put, void *ctx);

/* reg_apply.c: what each record means */
/* Apply one record or snapshot entry (an mc_reg_record_fn); _json: one built with jansson. */
int state_apply(void *st, const struct mc_jval *rec, bool snapshot, uint64_t gen);
int state_apply_json(struct reg_state *st, json_t *rec, bool snapshot, uint64_t gen);
/* Validate a record as state_apply() would, without applying it (MC_EINVAL); st NULL:
 * only what needs no state. */
int record_check_version(const struct reg_state *st, json_t *rec);
int record_check_change(struct reg_state *st, json_t *rec);

/* The model a record names by "name", or NULL with r->err set (MC_ECORRUPT: none). */
struct reg_model *rec_model(struct reg_state *st, struct rec *r, const char **name);

/* reg_deploy_apply.c: the records of deployments (health, snapshots, deploys, alerts) */
#define HEALTH_TIMEOUT_MAX_MS  3600000u                  /* 1 hour */
#define DEPLOY_INTERVAL_MAX_MS (30ull * 86400ull * 1000) /* 30 days */
#define ALERT_MESSAGE_MAX      4096
int deploy_state_parse(const char *s, enum mc_deploy_state *out); /* 0 or -1 */
bool deploy_ended(enum mc_deploy_state s);
/* The API's checks, as messages with code (MC_EINVAL, or MC_ECORRUPT for records). */
int alert_kind_check(const char *kind, int code);
int snap_name_check(const char *s, int code);
int health_check_args(const char *what, const char *const *argv, size_t argc, uint32_t timeout_ms,
                      int code);
int deploy_spec_check(const struct mc_reg_deploy *s, int code);
/* The snapshot named name (*at: where it is or would go), or NULL. */
struct reg_snap *snap_find(const struct reg_state *st, const char *name, size_t *at);
struct reg_deploy *deploy_find(const struct reg_state *st, uint64_t id);
/* The running or paused deployment to name's alias, or NULL. */
const struct reg_deploy *deploy_active(const struct reg_state *st, const char *name,
                                       const char *alias);
/* Apply one of them; 1 if op is none of them (nothing done). */
int apply_deploy_record(struct reg_state *st, struct rec *r, bool snapshot, uint64_t gen);
/* Snapshot entries of the store-level state (after every model's). */
int state_emit_deploys(struct reg_state *st, mc_reg_put_fn put, void *ctx);
/* A model's health entry, or NULL (out of memory) - only if it has one. */
json_t *health_entry(const struct reg_model *m);
/* Apply an alias move: from must be a's current text; to the new text. */
int alias_apply_move(struct reg_state *st, struct rec *r, struct reg_model *m, const char *alias,
                     const char *from, const char *to, uint64_t t, uint64_t uid, uint64_t gen,
                     bool rollback, const char *why);

/* reg_ops.c: what the mutations of aliases share */
#define WHY_MAX 1024
/*
 * A caller's reason for a move (--why, HTTP "why"): MC_EINVAL if too long or
 * if it holds control bytes. reason_check: the length only, for mcached's own
 * reasons (a deploy step's, which may quote a health check's output; they
 * are escaped where printed).
 */
int why_check(const char *why);
int reason_check(const char *why);
int need_ready(const struct mc_reg_version *v, const char *alias);
/* Check the names, lock, find the model and the alias (*a NULL if it never existed). */
int alias_begin(struct mc_registry *r, const char *name, const char *alias, struct reg_model **m,
                struct reg_alias **a);
/* a's canonical text ("" if a is NULL or removed). */
void alias_text(const struct reg_alias *a, char *buf, size_t cap);
/* Resolve 1..4 refs with weights into a set of distinct READY versions (MC_EINVAL ...). */
int targets_resolve(struct mc_registry *r, const char *name, const char *alias,
                    const struct mc_reg_weight *t, size_t n, struct tset *out);
/* Commit one "alias" record. */
int alias_move(struct mc_registry *r, struct reg_model *m, const char *alias, const char *from,
               const char *to, bool rollback, const char *why, uint64_t *gen);

/* reg_audit.c: the actor, the audit log, tokens */
void reg_actor_default(struct mc_registry *r); /* "uid:N(user)", "local" */
int reg_stamp(const struct mc_registry *r, json_t *rec); /* the actor into rec */
/* Name the change about to be attempted (printf-like; NULL: none), for the log of its refusal. */
void reg_intent(struct mc_registry *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Under the exclusive lock: an "audit" record of the intended change's refusal rc. */
void reg_record_refusal(struct mc_registry *r, int rc);
/* Without the lock: the same (taking it); returns rc with its message. */
int reg_refused(struct mc_registry *r, int rc);
/* The audit entry of an applied journal record. */
int audit_note(struct reg_state *st, struct rec *r, uint64_t gen);
/* Apply "token-add", "token-rm", "audit" records and "token", "audit" entries; 1: none of them. */
int apply_audit_record(struct reg_state *st, struct rec *r, bool snapshot);
int state_emit_audit(struct reg_state *st, mc_reg_put_fn put, void *ctx);
void audit_free(struct reg_state *st);
void tokens_free(struct reg_state *st);

/* registry.c */
/*
 * Open dir's backends (backend: a metadata backend's name, NULL the default
 * or the one url implies; url: a database backend's; artifacts: s3://BUCKET/PREFIX
 * or NULL, see mc_registry_opts), read nothing.
 */
int reg_open_noload(const char *dir, const char *backend, const char *url, const char *artifacts,
                    const char *creds, unsigned flags, void (*warn)(void *, const char *),
                    void *warn_arg, struct mc_registry **out);
int reg_cleanup(struct mc_registry *r);
int reg_lock(struct mc_registry *r, enum mc_reg_lock mode);
void reg_unlock(struct mc_registry *r);
int reg_sync(struct mc_registry *r, bool *changed);
int reg_write_begin(struct mc_registry *r);
int reg_write_end(struct mc_registry *r, int rc);
int reg_commit(struct mc_registry *r, json_t *rec, uint64_t *gen);
struct reg_model *reg_need_model(const struct mc_registry *r, const char *name);
struct reg_ver *reg_need_version(const struct mc_registry *r, const char *name,
                                 const char *version);

#endif
