/*
 * reg_int.h - what the registry's source files share (internal to registry/):
 * the in-memory state, the handle, and helpers.
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
 *   store.c     files: temp files, the commit marker, copying with the
 *               checksum, format detection, removing artifact trees
 *   search.c    search
 *   manifest.c  the manifest's line format (CRC-32C framing) and shared file helpers
 *   manifest_read.c  reading it: load, follow, torn tails, salvage
 *   manifest_write.c writing it: append, compact (snapshot + fresh journal)
 *   reg_json.c  its lines read into trees (a fast reader, jansson for the rest)
 */
#ifndef MCACHE_REGISTRY_REG_INT_H
#define MCACHE_REGISTRY_REG_INT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "registry/manifest.h"
#include "registry/registry.h"

/* ---- crash points (tests) -------------------------------------------- */

#ifdef MC_REGISTRY_CRASHPOINTS
/* SIGKILL this process here if $MCACHE_CRASH_AT names this point. */
void mc_crashpoint(const char *point);
#else
#define mc_crashpoint(point) ((void)0)
#endif

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
    const char *dir; /* store path, for artifact paths */
    bool lenient;    /* repair: skip records that do not apply */
    void (*report)(void *, const char *);
    void *report_arg;
    size_t skipped;
    char alias_ok[72]; /* the last alias name that passed mc_alias_check() */
};

struct mc_registry {
    char *dir;
    int dirfd;
    int lockfd;
    int lock_mode; /* 0, LOCK_SH or LOCK_EX */
    unsigned flags;
    uint32_t uid;
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
    struct mc_manifest man;
    struct reg_state *st;
};

static inline struct reg_ver *ver_of(const struct mc_reg_version *v)
{
    return (struct reg_ver *)v;
}

/* reg_state.c: the state and its primitive changes (no checking) */
struct reg_state *state_new(const char *dir);
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
/* A version built from checked fields (its artifact under dir), or NULL: out of memory. */
struct reg_ver *ver_build(const struct vfields *f, const char *dir, uint64_t gen);
/* Serialize the metadata of a version into a record (op "push" fields). */
int version_to_json(const struct mc_reg_version *v, json_t *obj, bool full);
int meta_to_json(const struct mc_reg_meta *meta, json_t *obj, bool patch);
/* The whole state as snapshot entries (an mc_manifest_emit_fn). */
int state_emit(void *st, mc_manifest_put_fn put, void *ctx);

/* reg_apply.c: what each record means */
/* Apply one record or snapshot entry (an mc_manifest_fn); _json: one built with jansson. */
int state_apply(void *st, const struct mc_jval *rec, bool snapshot, uint64_t gen);
int state_apply_json(struct reg_state *st, json_t *rec, bool snapshot, uint64_t gen);
/* Validate a record as state_apply() would, without applying it (MC_EINVAL); st NULL:
 * only what needs no state. */
int record_check_version(const struct reg_state *st, json_t *rec);
int record_check_change(struct reg_state *st, json_t *rec);

/* registry.c */
int reg_open_noload(const char *dir, unsigned flags, void (*warn)(void *, const char *),
                    void *warn_arg, struct mc_registry **out);
int reg_cleanup(struct mc_registry *r);
int reg_lock(struct mc_registry *r, int mode);
void reg_unlock(struct mc_registry *r);
int reg_sync(struct mc_registry *r, bool *changed);
int reg_write_begin(struct mc_registry *r);
int reg_write_end(struct mc_registry *r, int rc);
int reg_commit(struct mc_registry *r, json_t *rec, uint64_t *gen);
void reg_warn(struct mc_registry *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
struct reg_model *reg_need_model(const struct mc_registry *r, const char *name);
struct reg_ver *reg_need_version(const struct mc_registry *r, const char *name,
                                 const char *version);

/* store.c */
#define MC_TMP_DIR     "tmp"
#define MC_MODELS_DIR  "models"
#define MC_DAMAGED_DIR "damaged"
#define MC_COMMIT_FILE "tmp/commit"
int store_marker_write(struct mc_registry *r, const char *const *paths, size_t n);
int store_marker_recover(struct mc_registry *r);
void store_marker_clear(struct mc_registry *r);
int store_clean_temps(struct mc_registry *r, bool remove, size_t *found);
int store_rm_tree(int dirfd, const char *rel);
void store_rm_version(struct mc_registry *r, const char *name, const char *version);
void store_rm_model(struct mc_registry *r, const char *name);
int store_mkdirs(int dirfd, const char *rel);
int store_push_copy(struct mc_registry *r, const char *src, const struct mc_push_opts *o,
                    int *tmpfd, char *tmpname, size_t tmpsize, uint64_t *size,
                    enum mc_reg_format *fmt, char *checksum);
int store_hash_file(const char *path, uint64_t *size, char *checksum);
enum mc_reg_format store_detect_format(const unsigned char *head, size_t n, uint64_t size);
int store_orphans(struct mc_registry *r, bool move, void (*each)(void *, const char *), void *arg,
                  size_t *found);

#endif
