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
 *   search.c    search
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

struct reg_alias {
    char *alias;
    struct reg_ver *target;   /* NULL: removed */
    struct mc_reg_move *hist; /* strings owned (from/to) */
    size_t nhist, caphist;
};

struct reg_model {
    struct mc_reg_model pub; /* views refreshed by model_sync_view() */
    char *name;
    struct mc_reg_version **vers; /* ascending precedence; each is a reg_ver */
    size_t nvers, capvers;
    struct mc_reg_alias *views; /* public alias views */
    struct reg_alias *aliases;  /* sorted by name */
    size_t naliases, capaliases;
};

struct reg_state {
    struct reg_model **slots; /* open addressing by name hash */
    size_t nslots, count;
    struct reg_model **sorted; /* by name, rebuilt when dirty */
    bool sorted_dirty;
    uint64_t gen;
    const char *art_root; /* artifacts are <art_root>/<name>/<version>/artifact */
    bool lenient;         /* repair: skip records that do not apply */
    void (*report)(void *, const char *);
    void *report_arg;
    size_t skipped;
    char alias_ok[72]; /* the last alias name that passed mc_alias_check() */
};

/* The handle: the rules' state, and the two backends that keep it (backend.h). */
struct mc_registry {
    char *dir; /* the store, absolute */
    enum mc_reg_lock lock_mode;
    unsigned flags;
    uint32_t uid;
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
    struct mc_reg_backend *be; /* metadata: records and snapshots */
    struct mc_art_store *art;  /* artifacts: the bytes */
    struct reg_state *st;
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
                   uint64_t gen, bool rollback);
/* Refresh m's public views after its versions or aliases changed (MC_ENOMEM). */
int model_sync_view(struct reg_model *m);
int model_remove_version(struct reg_state *st, struct reg_model *m, struct reg_ver *rv, uint64_t t,
                         uint64_t uid, uint64_t gen);
const struct mc_reg_version *alias_rollback_target(const struct reg_model *m,
                                                   const struct reg_alias *a, const char **to);

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

/* registry.c */
/* Open dir's backends (backend: a metadata backend's name, NULL the default), read nothing. */
int reg_open_noload(const char *dir, const char *backend, unsigned flags,
                    void (*warn)(void *, const char *), void *warn_arg, struct mc_registry **out);
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
