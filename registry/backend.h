/*
 * backend.h - the seam between the registry's rules and where it persists
 * (internal to registry/; docs/registry.md explains it for backend authors).
 *
 * THE RULES (registry.c, reg_ops.c, search.c, reg_state.c, reg_record.c,
 * reg_apply.c) decide what names, versions, references, aliases and their
 * history, retention and search mean, and express every change as one
 * record: a JSON object with an "op" (push, meta, status, flags, alias, rm,
 * gc) whose meaning is reg_apply.c's alone. They never touch a file.
 *
 * THE BACKENDS keep what the rules decide, in two parts:
 *   metadata   an ordered log of records, each with a generation one past
 *              the previous, and a snapshot of the whole state to start
 *              from (struct mc_reg_backend). Today: the manifest journal
 *              (journal.c over manifest*.c), STORE/manifest + STORE/journal.
 *   artifacts  the bytes of each version (struct mc_art_store). Today:
 *              files under STORE/models (artifacts_local.c).
 * Every backend must give the rules the same things: records come back in
 * generation order exactly as appended, an acknowledged append survives a
 * crash, a crash never leaves half a record, and the lock orders writers.
 * The rules then enforce the same registry on any of them.
 *
 * Each operation below is one the rules already perform; it is named for
 * what it does, and says what the journal and local files do for it. All
 * return 0 or a negative MC_E* code with mc_err()'s message set, unless said
 * otherwise.
 */
#ifndef MCACHE_REGISTRY_BACKEND_H
#define MCACHE_REGISTRY_BACKEND_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "registry/reg_json.h"
#include "registry/registry.h"

/* ---- what the rules hand the backends -------------------------------- */

/*
 * Called with each snapshot entry (gen = the snapshot's generation) and each
 * record past it (gen = its own), in order. rec lives only until the call
 * returns. Return 0, or a negative MC_E* code to stop.
 */
typedef int (*mc_reg_record_fn)(void *arg, const struct mc_jval *rec, bool snapshot, uint64_t gen);

/* Writing a snapshot: emit calls put(ctx, entry) once per entry; put takes entry's reference. */
typedef int (*mc_reg_put_fn)(void *ctx, json_t *entry);
typedef int (*mc_reg_emit_fn)(void *arg, mc_reg_put_fn put, void *ctx);

/* Reports for check and repair: one message per call. */
typedef void (*mc_reg_report_fn)(void *arg, const char *msg);

/*
 * fn(arg, the message printf would make of fmt): a report, or a warning to a
 * warn callback (the same type). Messages longer than 1,399 bytes are cut.
 */
void mc_reg_reportf(mc_reg_report_fn fn, void *arg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Read fd to its end in chunks (4 MiB), handing each to fn; fn's non-zero
 * return stops it and is returned. what names fd in messages.
 */
int mc_art_read_chunks(int fd, const char *what, int (*fn)(void *arg, const void *buf, size_t n),
                       void *arg);

/* ---- metadata --------------------------------------------------------- */

enum mc_reg_lock { MC_REG_UNLOCKED, MC_REG_SHARED, MC_REG_EXCLUSIVE };

/* follow(): the store was replaced; load everything again into a fresh state. */
#define MC_REG_RELOAD 1

/*
 * append(): the connection broke at the commit and whether the record was
 * saved cannot be told (the message, set, says what to do); or it broke
 * before, and the lock went with it, so another writer may already have
 * changed the registry (the same name@version pushed again). Either way the
 * caller keeps what the record would reference (a push's artifact) and its
 * intent, for the next writer's intent_recover() to settle under the lock:
 * it removes them only if the registry does not hold the version.
 */
#define MC_REG_UNKNOWN 2

struct mc_reg_backend_conf {
    const char *dir; /* the store, an absolute path */
    const char *url; /* where a database backend's metadata is (mc_registry_opts.registry) */
    unsigned flags;  /* MC_REGISTRY_CREATE, MC_REGISTRY_READONLY */
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
};

/* What salvage() found, for repair() and for the rules' own decisions. */
struct mc_reg_damage {
    bool damaged;   /* something before the end is unreadable: repair() rewrites */
    bool torn_tail; /* only an interrupted last change (the next writer cuts it) */
};

/* An open store; each backend embeds this first in its own handle. */
struct mc_reg_backend {
    const struct mc_reg_backend_ops *ops;
};

struct mc_reg_backend_ops {
    const char *name; /* what mc_registry_opts.backend names: "journal" */

    /*
     * Open the store at conf->dir, creating it with MC_REGISTRY_CREATE
     * (*created then says this call made it). Journal: the directory and
     * STORE/lock, which is what makes a directory a store.
     */
    int (*open)(const struct mc_reg_backend_conf *conf, struct mc_reg_backend **out, bool *created);
    void (*close)(struct mc_reg_backend *b);

    /*
     * The store lock: MC_REG_SHARED while reading, MC_REG_EXCLUSIVE while
     * changing anything, so that appends are serialized and a reader never
     * sees a record being written. Journal: flock(2) on STORE/lock.
     */
    int (*lock)(struct mc_reg_backend *b, enum mc_reg_lock mode);
    void (*unlock)(struct mc_reg_backend *b);

    /*
     * Deliver everything from the start: the snapshot's entries, then every
     * record past it. On failure b is as before. With cut (exclusive lock), an
     * interrupted last append is removed, with a warning. Journal: read
     * STORE/manifest, then STORE/journal.
     */
    int (*load)(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg, bool cut);

    /*
     * Deliver the records appended since the last load or follow (*changed:
     * whether there were any), or return MC_REG_RELOAD if the store was
     * replaced since (a compaction or repair elsewhere). Journal: stat and
     * read the new bytes of STORE/journal; a renamed file means reload.
     * What was delivered stays delivered, even if fn refused a record and
     * follow returned its error: the next follow starts after it.
     */
    int (*follow)(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg, bool cut,
                  bool *changed);
    /*
     * load() and follow() read a state some writer left without the shared
     * lock (postgres: one REPEATABLE READ transaction each), so a refresh
     * does not wait behind a writer.
     */
    bool follow_unlocked;

    /*
     * Under the exclusive lock, before appending: make the store ready to
     * take records, rewriting it from emit's state if it must (journal: start
     * a journal if there is none; compact one from an older format or left by
     * an interrupted compaction).
     */
    int (*prepare)(struct mc_reg_backend *b, mc_reg_emit_fn emit, void *arg);

    /*
     * Append rec as the next generation (its "g" is set here). With sync it
     * is durable when this returns; on any failure but MC_REG_UNKNOWN
     * nothing was appended and the lock is still held (a database backend
     * whose connection broke at the commit finds out which, on a new one,
     * when nobody else can have written in between). Without, sync() makes everything appended so far
     * durable (bulk loads).
     */
    int (*append)(struct mc_reg_backend *b, json_t *rec, bool sync);
    int (*sync)(struct mc_reg_backend *b);

    /* Whether the log has outgrown its snapshot, so compact() should run. */
    bool (*wants_compact)(const struct mc_reg_backend *b);

    /* Replace snapshot and log by a snapshot of emit's state, atomically. */
    int (*compact)(struct mc_reg_backend *b, mc_reg_emit_fn emit, void *arg);

    /*
     * Under the exclusive lock at open: make an empty store ready and remove
     * what a dead writer left behind (journal: temp files of a compaction).
     */
    int (*cleanup)(struct mc_reg_backend *b);

    /* The generation of the last record delivered or appended (0: empty). */
    uint64_t (*generation)(const struct mc_reg_backend *b);

    /* Bytes of the snapshot and of the log, as last seen (for stat and tests). */
    void (*sizes)(const struct mc_reg_backend *b, uint64_t *snapshot, uint64_t *log);

    /*
     * For check and repair: load() that does not stop at damage. Delivers
     * what is sound, reports each problem found (with where it is), and
     * says in *d what repair() would have to do.
     */
    int (*salvage)(struct mc_reg_backend *b, mc_reg_record_fn fn, void *arg,
                   mc_reg_report_fn report, void *rarg, struct mc_reg_damage *d);

    /*
     * After salvage() found damage (or skipped records: skipped), under the
     * exclusive lock: keep the damaged data aside (reporting where) and
     * rewrite the store from emit's state.
     */
    int (*repair)(struct mc_reg_backend *b, size_t skipped, mc_reg_emit_fn emit, void *arg,
                  mc_reg_report_fn report, void *rarg);

    /*
     * Optional (NULL: none, as the journal, whose store a process watches
     * with inotify). watch_fd: an fd that becomes readable when another
     * process has changed the registry, made on first call (postgres: a
     * second session LISTENing on mcache_registry), or -1 when it cannot be
     * made now (the caller tries again later). watch_drain: consume what
     * made it readable; 1 if a change was announced, 0 if not, negative
     * when the fd is gone (the session died: it is closed, and the next
     * watch_fd makes a new one, on another fd).
     */
    int (*watch_fd)(struct mc_reg_backend *b);
    int (*watch_drain)(struct mc_reg_backend *b);
    /*
     * Optional: wait at most lock_wait_ms for another writer's lock and
     * stmt_ms for a write's statement (0: the default), for a caller that must
     * not be held up (mcached's loop).
     */
    void (*set_deadlines)(struct mc_reg_backend *b, int lock_wait_ms, int stmt_ms);

    /*
     * Optional (NULL: the journal, whose identity is its store directory and
     * host). Who this registry is, stable and unique, into out (postgres:
     * the cluster's system identifier, the database and the schema): an
     * object-store prefix is bound to one registry (artifacts_s3.c), as two
     * sharing one would delete each other's artifacts.
     */
    int (*identity)(struct mc_reg_backend *b, char *out, size_t n);
};

/* The metadata backends this build has (postgres: when built with libpq). */
extern const struct mc_reg_backend_ops mc_reg_journal_ops;
#ifdef MCACHE_HAVE_POSTGRES
extern const struct mc_reg_backend_ops mc_reg_postgres_ops;
#endif

/*
 * A shared registry's local replica (docs/registry.md): rewrite the journal
 * store at dir (created if missing) as a snapshot of emit's state at
 * generation gen, atomically (journal.c).
 */
int mc_reg_replica_write(const char *dir, uint64_t gen, mc_reg_emit_fn emit, void *arg);

/* A backend by name (NULL: the default, "journal"), or NULL with MC_EINVAL's message. */
const struct mc_reg_backend_ops *mc_reg_backend_find(const char *name);

/* ---- artifacts -------------------------------------------------------- */

struct mc_art_conf {
    const char *dir; /* the store, an absolute path */
    /* the s3 store's: s3://BUCKET/PREFIX and a 0600 credentials file (NULL: AWS_*) */
    const char *url;
    const char *creds_file;
    /* the metadata backend's identity ("": the journal's, STORE and host) */
    const char *registry_id;
    bool writable;
    bool created; /* the metadata backend has just created the store */
    /*
     * The store lock, taken shared while a put creates its temp file: a
     * writer holding it exclusive can then tell a dead put's temp file from
     * a live one (see artifacts_local.c).
     */
    int (*lock_shared)(void *arg);
    void (*unlock)(void *arg);
    void *lock_arg;
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;
};

/*
 * One artifact being put: staged without the store lock, committed under it.
 * The fields down to checksum are the store's to fill; what and total are
 * the caller's (for messages).
 */
struct mc_art_put {
    int fd;            /* the staged copy, held open (and locked) until discarded */
    char tmpname[128]; /* where it is staged, relative to the store */
    bool committed;    /* moved into place */
    uint64_t size;     /* bytes written so far; when finished, the artifact's size */
    enum mc_reg_format format;
    char checksum[48];
    void *hash;              /* the running checksum (the store's) */
    unsigned char head[64];  /* the first bytes, for the format */
    size_t headn;
    const char *what;        /* what is being put ("/path/x.bin", "the upload of m@1.0.0") */
    uint64_t total;          /* the size expected (0: unknown), for messages */
};

/* name@version (version NULL: the whole model), as a change names it. */
struct mc_art_ref {
    const char *name;
    const char *version;
};

/* Whether the metadata holds name@version exactly (version NULL: the model). */
typedef bool (*mc_art_holds_fn)(void *arg, const char *name, const char *version);

struct mc_art_store {
    const struct mc_art_store_ops *ops;
};

struct mc_art_store_ops {
    const char *name; /* "local" */

    int (*open)(const struct mc_art_conf *conf, struct mc_art_store **out);
    void (*close)(struct mc_art_store *s);

    /*
     * Where artifacts are: a version's is <root>/<name>/<version>/artifact,
     * the path the daemon loads it from (mc_reg_version.path). Local:
     * STORE/models.
     */
    const char *(*root)(const struct mc_art_store *s);

    /*
     * put, in steps. begin: create the staged copy (empty), refusing at
     * once (MC_ENOSPC) if size_hint bytes (0: unknown) cannot fit. write:
     * append n bytes, computing the checksum and keeping the first bytes as
     * they pass (touches only p: it may run without anything serializing
     * the registry). finish: make the copy durable and read-only, and fill
     * in size, format and checksum. All of it without the store lock.
     * place (NULL: nothing to do): after finish, still without the lock,
     * the long part of making the bytes the store's; idempotent (s3: the
     * server-side copy to the content address, which no version refers to
     * until commit). commit: under the exclusive lock, make the staged copy
     * name@version's artifact (anything already there the metadata does
     * not hold is replaced; whatever place did not do, or a concurrent
     * removal undid, it does). discard: let go of the staged copy (removed
     * unless committed); always called once begin succeeded, whatever
     * followed. A staged copy whose process dies is removed by clean(). A
     * push of a file is begin, write per chunk read, finish, place
     * (reg_ops.c).
     */
    int (*begin)(struct mc_art_store *s, uint64_t size_hint, struct mc_art_put *p);
    int (*write)(struct mc_art_put *p, const void *buf, size_t n);
    int (*finish)(struct mc_art_store *s, struct mc_art_put *p);
    int (*place)(struct mc_art_store *s, struct mc_art_put *p);
    int (*commit)(struct mc_art_store *s, struct mc_art_put *p, const char *name,
                  const char *version);
    void (*discard)(struct mc_art_store *s, struct mc_art_put *p);

    /* remove: a version's artifact, or every version's of a model (best effort). */
    void (*remove_version)(struct mc_art_store *s, const char *name, const char *version);
    void (*remove_model)(struct mc_art_store *s, const char *name);

    /*
     * locate: whether v's bytes are a local file (true, the path is
     * v->path: open and pread it) or remote (false: read() them). read: n
     * bytes of v's artifact at off into buf, all or nothing (MC_ECORRUPT if
     * the artifact is shorter). Local: pread; s3: mc_s3_read's parallel
     * ranged GETs, each retried. How `mcache verify` hashes an artifact
     * wherever it is.
     */
    bool (*locate)(struct mc_art_store *s, const struct mc_reg_version *v);
    int (*read)(struct mc_art_store *s, const struct mc_reg_version *v, uint64_t off, void *buf,
                size_t n);

    /*
     * verify: v's artifact is there with its size, and with checksum its
     * bytes hash to v->checksum. Each problem goes to report.
     */
    void (*verify)(struct mc_art_store *s, const struct mc_reg_version *v, bool checksum,
                   mc_reg_report_fn report, void *arg);

    /*
     * The intent of a change that touches both metadata and artifacts, kept
     * durably around it (under the exclusive lock): written before, cleared
     * after. If its writer dies in between, intent_recover() (by whoever
     * next holds the lock) reconciles each named artifact with what the
     * metadata holds: an artifact it does not hold goes.
     */
    int (*intent_write)(struct mc_art_store *s, const struct mc_art_ref *refs, size_t n);
    void (*intent_clear)(struct mc_art_store *s);
    int (*intent_recover)(struct mc_art_store *s, mc_art_holds_fn holds, void *arg);

    /* Under the exclusive lock: remove what puts whose process died left staged (warns). */
    int (*clean)(struct mc_art_store *s);

    /*
     * sweep (NULL: nothing to do; gc runs it): content no version refers
     * to, once older than the store's grace period (a push's place() makes
     * content that its commit binds only later, under the lock). Twice:
     * locked false (no lock held), the long listing, which keeps the
     * candidates; locked true (under the exclusive lock), each candidate
     * still unreferenced is deleted (warns with the count).
     */
    int (*sweep)(struct mc_art_store *s, bool locked);

    /*
     * For check and repair: every artifact the metadata does not hold, and
     * anything else that is not part of the store's layout, each reported
     * (with move, set aside too); *found gets the count.
     */
    void (*orphans)(struct mc_art_store *s, mc_art_holds_fn holds, void *harg, bool move,
                    mc_reg_report_fn report, void *rarg, size_t *found);
};

/* The artifact stores this build has. */
extern const struct mc_art_store_ops mc_art_local_ops;
extern const struct mc_art_store_ops mc_art_s3_ops; /* artifacts_s3.c */

#endif
