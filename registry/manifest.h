/*
 * manifest.h - the registry's manifest on disk, the journal backend's
 * files (internal to registry/).
 *
 * Two files of JSON lines in the store directory, each line one JSON object
 * ending in a "crc" member: the CRC-32C of the line's bytes before it.
 *   STORE/manifest  the snapshot: a header with the format number and the
 *                   generation it holds, one line per version and per alias,
 *                   and an end line with the count. Replaced only by rename.
 *   STORE/journal   a header with the format number and the generation it
 *                   starts after ("base"), then one record per change, each
 *                   with its generation "g" = previous + 1. Appended to and
 *                   fsync'd under the store lock; replaced only by rename.
 * docs/manifest.md has the full format with an example.
 *
 * This layer frames, checks and delivers lines (read as reg_json.h says),
 * appends records, writes snapshots and cuts torn tails; what a record
 * means is reg_apply.c's business. journal.c makes it the registry's
 * metadata backend (backend.h). Callers hold STORE/lock: shared to read,
 * exclusive to write or to cut.
 */
#ifndef MCACHE_REGISTRY_MANIFEST_H
#define MCACHE_REGISTRY_MANIFEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "mcache.h"
#include "registry/backend.h"
#include "registry/reg_json.h"

/* The format this code writes, and the newest it reads. */
#define MC_MANIFEST_FORMAT 3

#define MC_SNAPSHOT_FILE "manifest"
#define MC_JOURNAL_FILE  "journal"

/* Bytes a line may have at most (a version's metadata is far below). */
#define MC_MANIFEST_LINE_MAX (4u << 20)

struct mc_file_id {
    dev_t dev;
    ino_t ino;
    uint64_t size;
    int64_t mtime_ns;
    bool exists;
};

struct mc_manifest {
    int dirfd;       /* the store directory */
    const char *dir; /* its path, for messages */
    bool writable;
    void (*warn)(void *arg, const char *msg);
    void *warn_arg;

    int jfd;               /* the journal we read and append to; -1 if none */
    struct mc_file_id jid; /* its identity when opened */
    uint64_t jpos;         /* end of the last good line read */
    uint64_t jbase;        /* generation the journal starts after */
    uint64_t jlast;        /* last generation in the journal (jbase if none) */
    uint32_t jformat;      /* its format number */
    uint64_t warned_tail;  /* 1 + offset of a torn tail already warned about */
    int sfd;               /* the snapshot as read, held open so its inode stays unique */
    struct mc_file_id sid; /* its identity */
    uint64_t snap_gen;     /* generation the snapshot holds */
    uint32_t sformat;      /* its format number */
    uint64_t gen;          /* last generation delivered */
};

/*
 * fn (an mc_reg_record_fn, backend.h) is called with each snapshot entry
 * (gen = the snapshot's generation) and each journal record past the
 * snapshot (gen = its "g"), read as in reg_json.h. rec and everything in it
 * lives only until the callback returns. Return 0, or a negative MC_E* code
 * (message set) to stop; the offset of the line is then added to the
 * message.
 */

void mc_manifest_init(struct mc_manifest *m, int dirfd, const char *dir, bool writable,
                      void (*warn)(void *, const char *), void *warn_arg);
void mc_manifest_fini(struct mc_manifest *m);

/*
 * Read both files from the start. With cut (lock held exclusive, writable)
 * a torn tail is cut off the journal with a warning, its bytes saved in
 * STORE/damaged/; without, it is ignored with a warning. On failure m is
 * unchanged. A store without either file is empty (generation 0).
 */
int mc_manifest_load(struct mc_manifest *m, mc_reg_record_fn fn, void *arg, bool cut);

/* 1 if the snapshot or the journal was replaced (renamed over) since loaded. */
int mc_manifest_replaced(const struct mc_manifest *m);

/* Deliver the journal records appended since the last read. */
int mc_manifest_follow(struct mc_manifest *m, mc_reg_record_fn fn, void *arg, bool cut,
                       bool *changed);

/*
 * Append rec as the next generation (its "g" is set here), then fsync.
 * On any failure the journal is cut back to where it was: nothing changed.
 * Requires the lock exclusive and m up to date.
 */
int mc_manifest_append(struct mc_manifest *m, json_t *rec);

/* Appends without the fsync (the caller calls mc_manifest_sync()). */
int mc_manifest_append_nosync(struct mc_manifest *m, json_t *rec);
int mc_manifest_sync(struct mc_manifest *m);

/*
 * Snapshot writing: emit calls put(ctx, entry) for each entry (put takes
 * its reference). Writes STORE/manifest.tmp, fsyncs, renames it over the
 * snapshot, fsyncs the directory, then does the same for a fresh journal
 * based at m->gen. On failure the previous files stay in charge.
 */
int mc_manifest_compact(struct mc_manifest *m, mc_reg_emit_fn emit, void *arg);

/* Create an empty journal if the store has none (lock held exclusive). */
int mc_manifest_ensure(struct mc_manifest *m);

/* True if the next append must compact first (journal from an older format,
 * or left behind by an interrupted compaction). */
bool mc_manifest_needs_rewrite(const struct mc_manifest *m);

/* What mc_manifest_salvage() found. */
struct mc_salvage {
    bool snap_damaged, journal_damaged, torn_tail;
    uint64_t snap_off, journal_off, tail_off, tail_len;
    uint64_t snap_entries, journal_records;
    char snap_why[320], journal_why[320];
};

/*
 * For check and repair: like mc_manifest_load() without cutting, but damage
 * does not stop it: each file is delivered up to its first bad line, and s
 * says where that was and why. Fails only on I/O errors and newer formats.
 */
int mc_manifest_salvage(struct mc_manifest *m, mc_reg_record_fn fn, void *arg,
                        struct mc_salvage *s);

/* Encode one line (for tests): malloc'd, '\n'-terminated. */
char *mc_manifest_encode(json_t *obj, size_t *len);

/* Move STORE/<file> to STORE/damaged/<file>.<time>; *where gets the new path. */
int mc_manifest_move_aside(int dirfd, const char *dir, const char *file, char *where, size_t size);

#endif
