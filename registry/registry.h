/*
 * registry.h - the model registry: a store directory with its manifest,
 * shared by the CLI (mcache) and the daemon (mcached), usable with no daemon
 * running.
 *
 * THE STORE
 *   STORE/lock                      flock(2) target; writers hold it exclusive
 *   STORE/manifest                  snapshot: the whole state at one generation
 *   STORE/journal                   records appended since that snapshot
 *   STORE/models/<name>/<version>/artifact   the model's bytes, read-only, immutable
 *   STORE/tmp/                      pushes in progress, and a commit marker
 *   STORE/damaged/                  what repair or a torn-tail cut moved aside
 * The manifest format is in docs/manifest.md, the semantics (names,
 * versions, references, aliases, retention, search) in docs/registry.md.
 *
 * CONSISTENCY
 *   Every change is one journal record, written and fsync'd before the call
 *   returns: an acknowledged change survives a crash or power loss, and a
 *   crash at any byte leaves the state before or after the change, never a
 *   mix. Each record carries a generation that only grows;
 *   mc_registry_generation() is the one this handle has applied.
 *
 * PROCESSES AND LOCKING
 *   Any number of processes may open the same store. Mutations take an
 *   exclusive flock on STORE/lock, first bring this handle up to date, then
 *   validate, append and apply. Reading the manifest (open, refresh) takes
 *   the lock shared for the duration of the read, so a reader never sees a
 *   record being written. A push copies its artifact without the lock and
 *   holds it only to commit. Nothing here blocks for long: the longest
 *   exclusive hold is a compaction (rewriting the snapshot, ~10 ms per 10,000
 *   versions).
 *
 * WATCHING FOR CHANGES (the daemon)
 *   Every mutation writes STORE/journal; a compaction or repair renames a new
 *   one over it. Watch STORE with inotify for IN_MODIFY, IN_CLOSE_WRITE and
 *   IN_MOVED_TO on "journal", then call mc_registry_refresh(); it reads only
 *   what was appended (or reloads everything after a rename) and reports
 *   whether anything changed.
 *
 * THREADS AND LIFETIMES
 *   Reading calls (models, resolve, search) answer from the state as of the
 *   handle's last open, refresh or change; call mc_registry_refresh() to
 *   see what other processes did since. Changes always catch up first.
 *   A handle is not thread-safe: use it from one thread at a time. Every
 *   pointer returned (models, versions, aliases, strings) stays valid until
 *   the next call on the same handle that can change its state: any
 *   mutation, mc_registry_refresh(), or mc_registry_close(). Copy what you
 *   keep longer.
 *
 * ERRORS
 *   0 or a negative MC_E* code (include/mcache.h), with a message for
 *   mc_last_error() that names the thing, the value and what to do.
 *   MC_EINVAL bad input; MC_ENOENT no such model/version/alias; MC_EEXIST
 *   already registered; MC_EBUSY refused because an alias or pin holds it
 *   (retry with force); MC_ENOSPC disk full (nothing changed); MC_ECORRUPT
 *   damaged manifest (the message names file and byte offset; run
 *   mc_registry_repair()); MC_EFORMAT manifest from a newer mcache; MC_EIO
 *   and MC_EPERM from the file system.
 */
#ifndef MCACHE_REGISTRY_REGISTRY_H
#define MCACHE_REGISTRY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index/semver.h"
#include "mcache.h"

struct mc_registry;

enum mc_reg_format { MC_FORMAT_OTHER, MC_FORMAT_SAFETENSORS, MC_FORMAT_GGUF, MC_FORMAT_ONNX };

/*
 * READY: pushed and complete (push commits straight to READY: the manifest
 * never holds a half-registered version). FAILED: set by the daemon when a
 * load fails verification. ARCHIVED: kept, but no longer offered to
 * "latest" or ranges. REGISTERING: for tools that register a version
 * before it is usable. Only READY versions can be aliased or picked by
 * "latest" and ranges; an exact reference or an alias reaches any status.
 */
enum mc_reg_status {
    MC_STATUS_REGISTERING,
    MC_STATUS_READY,
    MC_STATUS_FAILED,
    MC_STATUS_ARCHIVED,
};

struct mc_reg_metric {
    const char *key;
    double value;
};

struct mc_reg_kv {
    const char *key;
    const char *value;
};

/* A registered version. Strings are NUL-terminated; optional ones are NULL. */
struct mc_reg_version {
    const char *name;    /* the model's name */
    const char *version; /* as registered, e.g. "1.2.0-rc.1+build.5" */
    struct mc_semver sv; /* parsed; points into version */
    const char *path;    /* absolute path of the artifact */
    uint64_t size;       /* bytes */
    enum mc_reg_format format;
    const char *checksum; /* "xxh3-128:<32 lowercase hex digits>" */
    enum mc_reg_status status;
    const char *status_reason; /* why FAILED or ARCHIVED, if given */
    uint64_t created_ns;       /* CLOCK_REALTIME at push */
    uint32_t created_by;       /* uid of the pusher */
    const char *description;
    const char *framework;               /* "pytorch", "llama.cpp" ... */
    const char *precision;               /* "fp16", "q4_k_m" ... */
    const char *device;                  /* target device: "cuda", "cpu" ... */
    const char *parent;                  /* lineage: "name@version" it derives from */
    const char *source;                  /* lineage: URI it came from */
    const struct mc_reg_metric *metrics; /* sorted by key */
    size_t nmetrics;
    const struct mc_reg_kv *params; /* sorted by key */
    size_t nparams;
    const struct mc_reg_kv *tags; /* sorted by key */
    size_t ntags;
    bool preload;        /* the daemon loads it at start */
    bool pinned;         /* the daemon never evicts it; retention never removes it */
    uint64_t generation; /* generation of the last change to this version */
};

/*
 * One move of an alias: from NULL = created, to NULL = removed. from and to
 * are the canonical text of the target set (mc_reg_targets_format()): the
 * bare version ("1.0.0") for one target at 100, "1.0.0=90 2.0.0=10" for a
 * weighted alias (ascending version precedence).
 */
struct mc_reg_move {
    const char *from;
    const char *to;
    uint64_t at_ns;
    uint64_t generation;
    uint32_t uid;
    bool rollback;   /* made by mc_registry_alias_rollback() */
    const char *why; /* NULL or the reason given ("auto-rollback: error rate 4.1% > 2.0% ...") */
};

/* An alias points at up to this many versions, with weights summing to 100. */
#define MC_ALIAS_TARGETS_MAX 4

struct mc_reg_target {
    const struct mc_reg_version *version;
    uint32_t weight; /* 1..100 */
};

struct mc_reg_alias {
    const char *alias;
    /*
     * The single target of a plain alias; for a weighted one the target with
     * the highest weight (the first in precedence order on ties). NULL if
     * the alias was removed; it is listed for its history.
     */
    const struct mc_reg_version *target;
    const struct mc_reg_move *history; /* oldest first */
    size_t nhistory;
    const struct mc_reg_target *targets; /* sorted by ascending version precedence */
    size_t ntargets;                     /* 0 when removed; 1 for a plain alias */
};

/* A health check run before an alias of the model moves (mcached runs it). */
#define MC_HEALTH_ARGS_MAX 64 /* arguments of a health command, the command included */
struct mc_reg_health {
    const char *const *argv; /* the command and its arguments */
    size_t argc;             /* >= 1 */
    uint32_t timeout_ms;     /* > 0 */
};

struct mc_reg_model {
    const char *name;
    struct mc_reg_version *const *versions; /* ascending precedence */
    size_t nversions;
    const struct mc_reg_alias *aliases; /* sorted by alias name */
    size_t naliases;
    const struct mc_reg_health *health; /* NULL: none */
};

/* ---- opening ---------------------------------------------------------- */

#define MC_REGISTRY_CREATE   0x1 /* create the store if it does not exist */
#define MC_REGISTRY_READONLY 0x2 /* never write: no cleanup, mutations fail with MC_EPERM */

struct mc_registry_opts {
    unsigned flags;
    /*
     * Called with each warning (a torn tail cut off, dead temp files
     * removed). NULL: print "mcache: warning: ..." on stderr.
     */
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
    /*
     * Where the metadata persists: "journal" (the manifest files in the
     * store), "postgres" (a PostgreSQL database at registry), or NULL: the
     * journal, or postgres when registry is a postgres:// or postgresql://
     * URL. docs/registry.md says what a backend provides.
     */
    const char *backend;
    /*
     * The shared registry's URL for a database backend
     * ("postgres://USER@HOST:PORT/DB"); NULL for the journal. The store
     * directory still holds what is local (artifacts).
     */
    const char *registry;
    /*
     * Where the artifacts are: NULL (MCACHE_ARTIFACTS, else the store's
     * models/ directory) or s3://BUCKET/PREFIX (an S3-compatible object
     * store: endpoint and keys from AWS_ENDPOINT_URL, AWS_REGION,
     * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, or from artifacts_creds, a
     * file of those KEY=VALUE lines only its owner may read).
     */
    const char *artifacts;
    const char *artifacts_creds;
};

/*
 * The postgres backend's schema: mc_registry_db_migrate() applies the
 * migrations the database at url lacks, in one transaction (a second run
 * does nothing; *from and *to, which may be NULL, get the versions before
 * and after). mc_registry_db_status() reads the version there (*have, 0:
 * none) and the one this mcache needs (*want). Opening a registry on a
 * schema older or newer than *want fails with MC_EFORMAT. Both fail with
 * MC_EINVAL in a build without libpq, MC_EIO when the database cannot be
 * reached.
 */
int mc_registry_db_migrate(const char *url, int *from, int *to);
int mc_registry_db_status(const char *url, int *have, int *want);

/*
 * Open the store at dir (relative paths are made absolute) and replay its
 * manifest. With exclusive access (not READONLY) it also cuts a torn tail
 * (with a warning; the cut bytes are kept in STORE/damaged/), removes the
 * temp files of pushes whose process died, and undoes a commit a dead
 * process left half done. opts may be NULL. Fails with MC_ENOENT if the
 * store does not exist and CREATE was not given, MC_ECORRUPT or MC_EFORMAT
 * if the manifest cannot be read.
 */
int mc_registry_open(const char *dir, const struct mc_registry_opts *opts,
                     struct mc_registry **out);

/* Close and free. Safe on NULL. */
void mc_registry_close(struct mc_registry *r);

/* The store's absolute path. */
const char *mc_registry_dir(const struct mc_registry *r);

/*
 * Where v's bytes are: true if v->path is a local file, false if they are
 * remote (an object store) and must be read with mc_registry_artifact_read.
 * Thread-safe as mc_registry_artifact_read below.
 */
bool mc_registry_artifact_local(struct mc_registry *r, const struct mc_reg_version *v);

/*
 * n bytes of v's artifact at off into buf, wherever it is; all or nothing.
 * v need not be r's (a copy of its name, version, checksum, path and size
 * will do).
 *
 * THREADS: the exception to "one thread at a time". Any number of threads
 * may call this and mc_registry_artifact_local() on one handle at once, and
 * while another thread makes any other call on it but mc_registry_close():
 * they read only the artifact store's settings, fixed at open (the bucket,
 * prefix, endpoint and keys; models/ for the local store), and each read
 * has its own file descriptor (local) or its own curl handles and multi
 * handle, made and freed within the call, sharing no connection cache
 * (s3.h, THREADS). The only caveat is mc_s3_set_cancel() on the client
 * underneath, which the registry never calls. The handle must stay open
 * until the last read returns (mcache-serve: srv_reg_hold).
 */
int mc_registry_artifact_read(struct mc_registry *r, const struct mc_reg_version *v, uint64_t off,
                              void *buf, size_t n);

/* The generation this handle has applied (0 for an empty new store). */
uint64_t mc_registry_generation(const struct mc_registry *r);

/*
 * The generation of the newest record this handle applied that is not
 * only an "audit" entry (a refusal or an attempt logged, which changes no
 * model, alias, deployment or token): what a mirror of the state (mcached)
 * compares to know whether to resync. A snapshot read counts as a change.
 * <= mc_registry_generation().
 */
uint64_t mc_registry_state_generation(const struct mc_registry *r);

/*
 * Apply what other processes appended since the last call (cheap: a stat
 * and a read of the new bytes). *changed (may be NULL) is set to whether
 * the state changed. On error the previous state is kept.
 */
int mc_registry_refresh(struct mc_registry *r, bool *changed);

/*
 * Waiting for changes made by other processes or hosts, for a loop that
 * polls fds (mcached's). mc_registry_watch_fd() returns an fd to poll for
 * reading, or -1: the backend has none (the journal: watch the store with
 * inotify, as above) or cannot make one now (postgres, database
 * unreachable: call again later). The fd may change between calls (a
 * LISTEN session that died is replaced): compare and re-register. When it
 * is readable, call mc_registry_watch_drain() (1: a change was announced,
 * so call mc_registry_refresh(); 0: nothing; negative: the fd is closed,
 * call mc_registry_watch_fd() again). A notification can be lost with its
 * session, so a caller also calls mc_registry_refresh() every few seconds.
 */
int mc_registry_watch_fd(struct mc_registry *r);

/*
 * Why this handle serves a shared registry's local replica (STORE/replica,
 * read-only: the database was unreachable at open), or NULL if it does not.
 * Open again to reach the database once it is back.
 */
const char *mc_registry_offline(const struct mc_registry *r);

/*
 * Write what this handle has applied to the shared registry's local replica
 * (STORE/replica) if it moved since the last write (nothing for the journal
 * or a read-only handle): the state is copied here, the rewrite (with
 * fsyncs) runs on a thread of the handle's, one at a time; close waits for
 * it. Only on request: mcached asks at start, every 2 s and at stop.
 * Failures warn (at a later call or at close).
 */
void mc_registry_keep_replica(struct mc_registry *r);
int mc_registry_watch_drain(struct mc_registry *r);

/* Use this uid as the actor of later changes (default: getuid()). */
void mc_registry_set_uid(struct mc_registry *r, uint32_t uid);

/*
 * Changes through this handle wait at most lock_wait_ms for another
 * writer's lock (then fail "the registry is busy ...; try again") and
 * stmt_ms for each statement of a write, compaction's included (0: the
 * defaults, 60 s and 30 s). For a caller on an event loop (mcached). A
 * no-op for the journal backend, whose lock is taken at once or waited for.
 */
void mc_registry_set_deadlines(struct mc_registry *r, int lock_wait_ms, int stmt_ms);

/* Send the handle's warnings to warn(arg, msg) from now on (NULL: stderr). */
void mc_registry_set_warn(struct mc_registry *r, void (*warn)(void *arg, const char *msg),
                          void *arg);

/* ---- reading ---------------------------------------------------------- */

size_t mc_registry_model_count(const struct mc_registry *r);

/* The i-th model in name order (strcmp), or NULL past the end. */
const struct mc_reg_model *mc_registry_model_at(struct mc_registry *r, size_t i);

/* A model by name, or NULL (with MC_ENOENT's message set). */
const struct mc_reg_model *mc_registry_model(const struct mc_registry *r, const char *name);

/*
 * Resolve name@ref (see mc_ref_classify()): an exact version (build
 * metadata must match only if ref has some), an alias (a weighted alias: its
 * heaviest target, see struct mc_reg_alias), "latest" or NULL
 * (the highest READY version without a prerelease), or an npm range (the
 * highest READY version satisfying it). MC_ENOENT with a message saying
 * what exists if nothing matches.
 */
int mc_registry_resolve(const struct mc_registry *r, const char *name, const char *ref,
                        const struct mc_reg_version **out);

/*
 * All of v's metadata as one compact JSON object (malloc'd; free() it),
 * as the daemon stores it in the arena for mc_model_metadata().
 */
char *mc_reg_version_json(const struct mc_reg_version *v);

const char *mc_reg_format_name(enum mc_reg_format f); /* "safetensors" ... */
const char *mc_reg_status_name(enum mc_reg_status s); /* "ready" ... */
int mc_reg_status_parse(const char *s, enum mc_reg_status *out);

/* ---- pushing ---------------------------------------------------------- */

/* Metadata given with a push or changed later; every field optional. */
struct mc_reg_meta {
    const char *description;
    const char *framework;
    const char *precision;
    const char *device;
    const char *parent; /* "name@version" */
    const char *source; /* URI */
    const struct mc_reg_metric *metrics;
    size_t nmetrics;
    const struct mc_reg_kv *params;
    size_t nparams;
    const struct mc_reg_kv *tags;
    size_t ntags;
};

struct mc_push_opts {
    const struct mc_reg_meta *meta; /* may be NULL */
    bool preload;
    bool pinned;
    /*
     * Called as the copy proceeds (done <= total). Return 0 to go on, or a
     * negative MC_E* code to stop: the push then removes its temp file and
     * returns that code.
     */
    int (*progress)(void *arg, uint64_t done, uint64_t total);
    void *progress_arg;
};

/*
 * Register file src as name@version. The file is copied into the store
 * (temp file, fsync, rename, fsync of the directory) while its XXH3-128
 * checksum is computed; its format is detected from its content. The copy
 * runs without the store lock; the commit is one journal record. Fails
 * with MC_EEXIST if a version of equal precedence exists (versions that
 * differ only in build metadata are the same version to every range).
 * opts may be NULL. *gen (may be NULL) receives the new generation.
 */
int mc_registry_push(struct mc_registry *r, const char *name, const char *version, const char *src,
                     const struct mc_push_opts *opts, uint64_t *gen);

/*
 * Check name, version and opts->meta as mc_registry_push() would, without a
 * store (so that bad input can be refused before a store is created): 0 or
 * MC_EINVAL with the same message. Whether the version exists is not checked.
 */
int mc_registry_push_check(const char *name, const char *version, const struct mc_push_opts *opts);

/*
 * Push from a stream (mcache-serve's uploads): begin checks name, version
 * and opts as mc_registry_push() does (MC_EEXIST if the version exists) and
 * stages an empty temp file in the store; write appends bytes, computing
 * the checksum as they arrive (constant memory, no store lock); commit
 * syncs, checks the checksum against expect (NULL: not checked; a mismatch
 * is MC_ECORRUPT naming both) and registers it in one record, atomically
 * as a push. An upload of 0 bytes is refused (MC_EINVAL). commit and abort
 * free u; abort removes the staged file. begin and commit use r (one
 * thread at a time, as every call on r); write touches only u, so it may
 * run without whatever serializes r. opts->progress is not called.
 * size_hint (0: unknown) lets begin refuse at once when the disk cannot
 * hold it.
 */
struct mc_reg_upload;
int mc_registry_upload_begin(struct mc_registry *r, const char *name, const char *version,
                             const struct mc_push_opts *opts, uint64_t size_hint,
                             struct mc_reg_upload **u);
int mc_registry_upload_write(struct mc_reg_upload *u, const void *buf, size_t n);
uint64_t mc_registry_upload_size(const struct mc_reg_upload *u); /* bytes written so far */
/*
 * finish: refuse a failed or empty upload (MC_EINVAL), then fsync the
 * staged file, make it read-only and compute its checksum and format.
 * Like write it touches only u, so call it WITHOUT the lock that
 * serializes r: a big upload's fsync then holds no one up. A failure
 * leaves only abort. commit calls it itself when it was not called (or
 * does nothing more when it was), so commit then only checks expect and
 * registers.
 */
int mc_registry_upload_finish(struct mc_reg_upload *u);
int mc_registry_upload_commit(struct mc_registry *r, struct mc_reg_upload *u, const char *expect,
                              uint64_t *gen);
void mc_registry_upload_abort(struct mc_registry *r, struct mc_reg_upload *u);

/*
 * Merge meta into name@version: given strings replace (an empty string
 * clears), given params and tags are set (a NULL value removes the key),
 * given metrics are set (a NaN value removes the key).
 */
int mc_registry_set_meta(struct mc_registry *r, const char *name, const char *version,
                         const struct mc_reg_meta *meta, uint64_t *gen);

/* Set the status (reason may be NULL). */
int mc_registry_set_status(struct mc_registry *r, const char *name, const char *version,
                           enum mc_reg_status status, const char *reason, uint64_t *gen);

/* Set the daemon's flags: -1 keeps a flag, 0 clears it, 1 sets it. */
int mc_registry_set_flags(struct mc_registry *r, const char *name, const char *version, int preload,
                          int pinned, uint64_t *gen);

/* ---- aliases ---------------------------------------------------------- */

/*
 * Point alias at the version ref resolves to now (any reference: an exact
 * version, "latest", a range, another alias), creating or moving it in one
 * record that joins its history. The version must be READY. Setting an
 * alias to where it already points changes nothing (*gen is the current
 * generation).
 */
int mc_registry_alias_set(struct mc_registry *r, const char *name, const char *alias,
                          const char *ref, uint64_t *gen);

/* Remove alias (kept in the list with a NULL target, for its history). */
int mc_registry_alias_remove(struct mc_registry *r, const char *name, const char *alias,
                             uint64_t *gen);

/*
 * Undo the alias's most recent move that has not been undone yet: it goes
 * back to where it pointed before (repeated rollbacks walk further back).
 * Refused if there is no earlier target or that version is gone.
 */
int mc_registry_alias_rollback(struct mc_registry *r, const char *name, const char *alias,
                               uint64_t *gen);

/* ---- weighted aliases -------------------------------------------------- */

/* Input: a reference (exact version, alias, "latest", range) and its weight. */
struct mc_reg_weight {
    const char *ref;
    uint32_t weight; /* 1..100; 0 only for a single target: 100 */
};

/*
 * Parse CLI words "1.0.0=90" "2.0.0=10" (or one word "1.0.0" / "^2": weight
 * 100) into out (room for MC_ALIAS_TARGETS_MAX). The refs are copies kept per
 * thread until its next call.
 * MC_EINVAL with a message naming the word: more than 4 targets, a weight
 * that is not an integer 1..100, weights not summing to 100, a word without
 * a weight among several.
 */
int mc_reg_targets_parse(const char *const *words, size_t n, struct mc_reg_weight *out,
                         size_t *nout);

/*
 * The canonical text of a's current targets into buf: "1.0.0" for one
 * target, "1.0.0=90 2.0.0=10" (ascending precedence) for several, "" when
 * removed. MC_EINVAL if cap is too small (buf then holds "").
 */
int mc_reg_targets_format(const struct mc_reg_alias *a, char *buf, size_t cap);

/*
 * Set an alias to 1..4 targets: every ref resolves to a distinct READY
 * version, weights are integers 1..100 summing to 100 (a single target may
 * give 0: 100). One record, one history entry (who = uid, when, from, to,
 * why). why may be NULL. The same target set and weights: no-op (*gen is the
 * current generation). mc_registry_alias_set() is this with one target.
 */
int mc_registry_alias_set_weighted(struct mc_registry *r, const char *name, const char *alias,
                                   const struct mc_reg_weight *t, size_t n, const char *why,
                                   uint64_t *gen);

/* ---- health checks, per model ------------------------------------------ */

/*
 * Set the model's health check: argv[0..argc) run by mcached with a timeout
 * of timeout_ms (> 0) before an alias of the model moves. argc 0 removes it.
 */
int mc_registry_health_set(struct mc_registry *r, const char *name, const char *const *argv,
                           size_t argc, uint32_t timeout_ms, uint64_t *gen);

/* ---- snapshots of every alias of every model --------------------------- */

struct mc_reg_snap_entry {
    const char *model, *alias;
    const char *targets; /* canonical text (mc_reg_targets_format()) */
};

struct mc_reg_snapshot {
    const char *name;
    uint64_t created_ns;
    uint32_t uid;
    const struct mc_reg_snap_entry *entries; /* by model, then alias */
    size_t nentries;
};

/* Record every alias's targets and weights under sname (MC_EEXIST if taken). */
int mc_registry_snapshot_create(struct mc_registry *r, const char *sname, uint64_t *gen);

/*
 * Move every alias recorded in sname back to its recorded targets: all or
 * none, one record; each alias that moves gets a history entry with why
 * "snapshot restore NAME". Refused (MC_ENOENT / MC_EBUSY, naming the
 * version) if a target is gone or not READY. Aliases created after the
 * snapshot are left alone.
 */
int mc_registry_snapshot_restore(struct mc_registry *r, const char *sname, uint64_t *gen);
int mc_registry_snapshot_remove(struct mc_registry *r, const char *sname, uint64_t *gen);
size_t mc_registry_snapshot_count(const struct mc_registry *r);
/* The i-th snapshot in name order, or NULL past the end. */
const struct mc_reg_snapshot *mc_registry_snapshot_at(const struct mc_registry *r, size_t i);

/* ---- deployments (rollout state; mcached runs them) -------------------- */

enum mc_deploy_strategy { MC_DEPLOY_DIRECT, MC_DEPLOY_BLUE_GREEN, MC_DEPLOY_CANARY };

#define MC_DEPLOY_STEPS_MAX 16 /* steps of a canary */

enum mc_deploy_state {
    MC_DEPLOY_RUNNING,
    MC_DEPLOY_PAUSED,
    MC_DEPLOY_SUCCEEDED,
    MC_DEPLOY_ROLLED_BACK,
    MC_DEPLOY_ABORTED,
    MC_DEPLOY_FAILED,
};

struct mc_reg_deploy {
    uint64_t id; /* assigned by begin, unique in the store */
    const char *name, *version, *alias;
    enum mc_deploy_strategy strategy;
    const uint32_t *steps; /* canary weights, strictly increasing, last 100; */
    size_t nsteps;         /* direct/blue-green: one step {100} */
    uint64_t interval_ms;  /* > 0 */
    double max_error_rate; /* 0..1 */
    double max_p99_ratio;  /* >= 1, 0 = not checked */
    uint64_t min_requests;
    const char *const *health_argv; /* per deploy, optional (argc 0: the model's) */
    size_t health_argc;
    uint32_t health_timeout_ms;
    const char *from; /* the alias's targets when it began (canonical text); NULL: none */
    size_t step;      /* index of the current step */
    enum mc_deploy_state state;
    uint64_t step_started_ns, started_ns, ended_ns;
    uint32_t uid;
    const char *reason; /* last decision or outcome, NULL */
};

/*
 * Begin a deployment from spec (id, from, step, state, times, uid and
 * reason are ignored: begin sets them; it starts RUNNING at step 0 with no
 * alias move yet). Validates everything: the version exists and is READY,
 * the alias exists unless the strategy is direct or blue-green, steps,
 * interval and thresholds; MC_EBUSY if (name, alias) already has a RUNNING
 * or PAUSED one. *id receives the new id.
 */
int mc_registry_deploy_begin(struct mc_registry *r, const struct mc_reg_deploy *spec, uint64_t *id,
                             uint64_t *gen);

/*
 * One record: the deploy's new step, state, step start and reason and,
 * when t != NULL, the alias's new targets (with a history entry, why =
 * reason): a rollout step and its alias move are atomic. A deploy that has
 * ended (succeeded, rolled back, aborted, failed) cannot change (MC_EINVAL).
 */
int mc_registry_deploy_update(struct mc_registry *r, uint64_t id, size_t step,
                              enum mc_deploy_state state, uint64_t step_started_ns,
                              const char *reason, const struct mc_reg_weight *t, size_t n,
                              uint64_t *gen);
size_t mc_registry_deploy_count(const struct mc_registry *r); /* oldest first */
const struct mc_reg_deploy *mc_registry_deploy_at(const struct mc_registry *r, size_t i);
const char *mc_deploy_state_name(enum mc_deploy_state s);       /* "running", "rolled-back"... */
const char *mc_deploy_strategy_name(enum mc_deploy_strategy s); /* "direct", "blue-green", "canary" */
int mc_deploy_strategy_parse(const char *s, enum mc_deploy_strategy *out);

/* ---- alerts (bounded: the newest 256 are kept) ------------------------- */

#define MC_REG_ALERTS_MAX 256

struct mc_reg_alert {
    uint64_t id, at_ns;
    const char *kind; /* "rollback" "health" "threshold" */
    const char *model, *version, *alias, *message;
};

int mc_registry_alert_add(struct mc_registry *r, const char *kind, const char *model,
                          const char *version, const char *alias, const char *message,
                          uint64_t *gen);
size_t mc_registry_alert_count(const struct mc_registry *r);
const struct mc_reg_alert *mc_registry_alert_at(const struct mc_registry *r,
                                                size_t i); /* oldest first */

/* ---- who changes things: the actor, tokens, the audit log --------------- */

/*
 * The actor of this handle's later changes, recorded with each (default:
 * who = "uid:N(user)", from = "local"). mcache-serve sets who = "token:NAME"
 * (or "anonymous") and from = the peer's address per request. Copied.
 */
void mc_registry_set_actor(struct mc_registry *r, const char *who, const char *from);

/* A bearer token for mcache-serve; only its SHA-256 is stored. */
struct mc_reg_token {
    const char *name; /* [A-Za-z0-9_.-]{1,64} */
    const char *role; /* "reader", "publisher", "admin" */
    const char *hash; /* "sha256:<64 hex>" */
    uint64_t created_ns;
    const char *created_by; /* the actor */
};

#define MC_TOKEN_LEN 47 /* "mct_" + 43 base64url characters (32 random bytes) */

/*
 * Add a token called name with role: a fresh random secret, written into
 * secret (room for MC_TOKEN_LEN + 1) and never stored; MC_EEXIST if the
 * name is taken, MC_EINVAL for a bad name or role.
 */
int mc_registry_token_add(struct mc_registry *r, const char *name, const char *role, char *secret,
                          uint64_t *gen);
int mc_registry_token_remove(struct mc_registry *r, const char *name, uint64_t *gen);
size_t mc_registry_token_count(const struct mc_registry *r);
/* The i-th token by name, or NULL past the end. */
const struct mc_reg_token *mc_registry_token_at(const struct mc_registry *r, size_t i);
/*
 * The token whose secret this is (compared as SHA-256 digests, in constant
 * time), or NULL (MC_EPERM's message set: "the token is not valid").
 */
const struct mc_reg_token *mc_registry_token_check(const struct mc_registry *r, const char *secret);

/*
 * The audit log: every change (each record carries its actor; its entry
 * says what it did, and "ok"), and every refused or failed attempt. A
 * change the store's state refuses (MC_EBUSY, MC_EEXIST, MC_EINVAL,
 * MC_ENOENT found under the lock) is recorded by the registry itself, with
 * the actor, as one "audit" record (the only thing the refusal writes; the
 * caller gets the same code and message). Other failures (input refused
 * before the store is consulted, a request refused by mcache-serve) are the
 * caller's to report with mc_registry_audit_add(). The newest
 * MC_REG_AUDIT_MAX entries are kept. docs/registry.md lists the texts.
 */
#define MC_REG_AUDIT_MAX 10000

struct mc_reg_audit {
    uint64_t id, at_ns, generation;
    const char *who, *from; /* the actor */
    const char *what;       /* "push llama@1.2.0", "alias llama production 1.2.0", ... */
    const char *result;     /* "ok", or "error: <message>" */
};

/*
 * Record an attempt that changed nothing (what and result as above). A
 * failure ("error: MESSAGE") that is one of the refusals the registry
 * recorded itself on r (the same actor and MESSAGE, among the last 16) is
 * not recorded twice: 0, nothing written.
 */
int mc_registry_audit_add(struct mc_registry *r, const char *what, const char *result,
                          uint64_t *gen);
size_t mc_registry_audit_count(const struct mc_registry *r);
/* The i-th entry, oldest first, or NULL past the end. */
const struct mc_reg_audit *mc_registry_audit_at(const struct mc_registry *r, size_t i);

/* ---- removal and retention -------------------------------------------- */

/*
 * Remove name@version (exact) with its artifact. Refused with MC_EBUSY if
 * an alias points at it or it is pinned, unless force, which also removes
 * the plain aliases on it and moves each weighted alias holding it to its
 * other targets, which take its weight in proportion (largest remainder,
 * summing to 100; one left is a plain alias), in the same record, with a
 * history entry whose why says so.
 */
int mc_registry_remove_version(struct mc_registry *r, const char *name, const char *version,
                               bool force, uint64_t *gen);

/* Remove a model, all its versions, aliases and artifacts; same rules. */
int mc_registry_remove_model(struct mc_registry *r, const char *name, bool force, uint64_t *gen);

struct mc_gc_opts {
    const char *name; /* one model, or NULL for all */
    size_t keep;      /* keep the newest N versions per model (0: no count rule) */
    uint32_t days;    /* keep versions younger than D days (0: no age rule) */
    bool dry_run;     /* report, change nothing */
    uint64_t now_ns;  /* "now" for the age rule; 0: the clock */
    /* called once per version that goes (or would go) */
    void (*each)(void *arg, const struct mc_reg_version *v);
    void *arg;
};

/*
 * Retention. A version is kept if any rule given keeps it: it is one of
 * the `keep` most recently pushed versions of its model, or younger than
 * `days` days. Aliased and pinned versions are always kept. Everything else
 * goes, in one journal record, artifacts included. *removed (may be NULL)
 * receives how many went (or would go).
 */
int mc_registry_gc(struct mc_registry *r, const struct mc_gc_opts *o, size_t *removed,
                   uint64_t *gen);

/* ---- search ----------------------------------------------------------- */

enum mc_search_order {
    MC_ORDER_VERSION,     /* by name, then highest version first */
    MC_ORDER_TIME,        /* newest push first */
    MC_ORDER_VERSION_ASC, /* by name, then lowest version first */
    MC_ORDER_TIME_ASC,    /* oldest push first */
};

struct mc_search {
    const char *pattern;     /* fnmatch(3) glob on model names ('*' crosses '/'); NULL: all */
    const char *ref;         /* only versions a range/"latest"/alias/exact ref picks; NULL: all */
    const char *const *tags; /* "key=value" (value may be a glob), all must hold */
    size_t ntags;
    const char *const *metrics; /* "name<op>number", op one of < <= > >= = !=; all must hold */
    size_t nmetrics;
    unsigned status_mask; /* bits (1 << MC_STATUS_*); 0: all */
    enum mc_search_order order;
    size_t limit; /* 0: no limit */
};

/*
 * Versions matching every condition, in the order asked. *out is a
 * malloc'd array (free() it; the versions it points to follow the usual
 * lifetime rule). A malformed condition fails with MC_EINVAL saying how to
 * write it.
 */
int mc_registry_search(struct mc_registry *r, const struct mc_search *q,
                       const struct mc_reg_version ***out, size_t *count);

/* ---- maintenance ------------------------------------------------------ */

/*
 * Rewrite the snapshot from the current state and start an empty journal
 * (also done automatically once the journal outgrows twice the snapshot
 * and 64 KiB).
 */
int mc_registry_compact(struct mc_registry *r);

/* Sizes in bytes of the snapshot and the journal, as this handle last saw them. */
void mc_registry_sizes(const struct mc_registry *r, uint64_t *snapshot, uint64_t *journal);

#define MC_CHECK_ARTIFACTS 0x1 /* also check every artifact exists with its size */
#define MC_CHECK_CHECKSUMS 0x2 /* also re-hash every artifact (reads everything) */

/*
 * Check a store without changing it: the manifest (checksums, format,
 * generations, meaning of every record), and with flags the artifacts;
 * stray files (orphan version directories, dead temp files) are reported
 * too. report (may be NULL) gets one message per problem. Returns 0 if
 * clean, MC_ECORRUPT if the manifest is damaged, MC_EIO if only artifacts
 * or strays are wrong; *problems (may be NULL) gets the count.
 */
int mc_registry_check(const char *dir, unsigned flags, void (*report)(void *, const char *),
                      void *arg, size_t *problems);

/*
 * Repair a damaged manifest: keep every record before the damage, move the
 * damaged files to STORE/damaged/ (report says where) and write a fresh
 * snapshot and journal. Takes the lock; other processes then reload.
 */
int mc_registry_repair(const char *dir, void (*report)(void *, const char *), void *arg);

/*
 * The same on the metadata backend opts names (opts->backend, ->registry;
 * its flags and warn are not used); NULL opts: the journal's, as above.
 */
int mc_registry_check_opts(const char *dir, const struct mc_registry_opts *opts, unsigned flags,
                           void (*report)(void *, const char *), void *arg, size_t *problems);
int mc_registry_repair_opts(const char *dir, const struct mc_registry_opts *opts,
                            void (*report)(void *, const char *), void *arg);

#endif
