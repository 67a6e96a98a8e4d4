/*
 * manifest_write.c - writing the manifest: appending a record durably
 * (write, fdatasync, or cut back: nothing half-acknowledged stays), and
 * replacing the snapshot and the journal whole (temp file, fsync, rename,
 * fsync of the directory) when compacting; moving damaged files aside.
 */
#include "registry/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "registry/files.h"
#include "registry/manifest_int.h"

int mc_manifest_append_nosync(struct mc_manifest *m, json_t *rec)
{
    uint64_t gen = m->gen + 1;
    size_t len;
    char *line;
    int rc;

    if (!m->writable || m->jfd < 0)
        return mc_err(MC_EPERM, "%s is open read-only; nothing was changed", m->dir);
    if (json_object_set_new(rec, "g", json_integer((json_int_t)gen)) != 0)
        return mc_err(MC_ENOMEM, "out of memory building a journal record");
    line = mc_manifest_encode(rec, &len);
    if (line == NULL)
        return mc_err(MC_ENOMEM, "out of memory encoding a journal record");
    if (len > MC_MANIFEST_LINE_MAX) {
        free(line);
        return mc_err(MC_EINVAL,
                      "the change does not fit in one journal record (%zu bytes, "
                      "at most 4 MiB); give less metadata",
                      len);
    }
#ifdef MC_REGISTRY_CRASHPOINTS
    if (getenv("MCACHE_CRASH_AT") && !strcmp(getenv("MCACHE_CRASH_AT"), "append-torn")) {
        manifest_write_all(m->jfd, line, len / 2, (off_t)m->jpos);
        mc_crashpoint("append-torn");
    }
#endif
    rc = manifest_write_all(m->jfd, line, len, (off_t)m->jpos);
    free(line);
    if (rc) {
        /* a partial line must not stay behind */
        if (ftruncate(m->jfd, (off_t)m->jpos) != 0)
            manifest_warn(m, "could not cut a failed append off %s/%s: %s", m->dir, MC_JOURNAL_FILE,
                          strerror(errno));
        return manifest_io_err(-rc, "appending to", m->dir, MC_JOURNAL_FILE);
    }
    m->jpos += len;
    m->jid.size = m->jpos;
    m->jlast = m->gen = gen;
    return 0;
}

int mc_manifest_sync(struct mc_manifest *m)
{
    if (fdatasync(m->jfd) != 0)
        return manifest_io_err(errno, "syncing", m->dir, MC_JOURNAL_FILE);
    return 0;
}

int mc_manifest_append(struct mc_manifest *m, json_t *rec)
{
    uint64_t pos = m->jpos, gen = m->gen;
    int rc = mc_manifest_append_nosync(m, rec);

    if (rc)
        return rc;
    mc_crashpoint("append-written");
    rc = mc_manifest_sync(m);
    if (rc) {
        /* not acknowledged: take it back so no reader ever applies it */
        if (ftruncate(m->jfd, (off_t)pos) != 0 || fdatasync(m->jfd) != 0)
            manifest_warn(m, "could not take back an unsynced record from %s/%s: %s", m->dir,
                          MC_JOURNAL_FILE, strerror(errno));
        m->jpos = m->jid.size = pos;
        m->jlast = m->gen = gen;
        return rc;
    }
    mc_crashpoint("append-synced");
    return 0;
}

/* A buffered writer for snapshots. */
struct wbuf {
    int fd;
    char *buf;
    size_t len, cap;
    uint64_t entries;
    int err;
};

static int wbuf_flush(struct wbuf *w)
{
    int rc;

    if (w->err || w->len == 0)
        return w->err;
    rc = manifest_write_all(w->fd, w->buf, w->len, -1);
    w->len = 0;
    if (rc)
        w->err = rc;
    return rc;
}

static int wbuf_line(struct wbuf *w, json_t *obj)
{
    size_t len;
    char *line;

    if (w->err)
        return w->err;
    line = mc_manifest_encode(obj, &len);
    if (line == NULL)
        return w->err = -ENOMEM;
    if (w->len + len > w->cap && wbuf_flush(w) == 0 && len > w->cap) {
        w->err = manifest_write_all(w->fd, line, len, -1);
    } else if (!w->err) {
        memcpy(w->buf + w->len, line, len);
        w->len += len;
    }
    free(line);
    return w->err;
}

static int put_entry(void *ctx, json_t *entry)
{
    struct wbuf *w = ctx;
    int rc;

    if (entry == NULL)
        return w->err = -ENOMEM;
    rc = wbuf_line(w, entry);
    json_decref(entry);
    w->entries++;
    return rc ? MC_EIO : 0;
}

static int wbuf_rc(struct wbuf *w, struct mc_manifest *m, const char *tmp)
{
    if (w->err == -ENOMEM)
        return mc_err(MC_ENOMEM, "out of memory writing %s/%s", m->dir, tmp);
    return w->err ? manifest_io_err(-w->err, "writing", m->dir, tmp) : 0;
}

/* Write file `tmp` with the header and body, fsync, rename it to `file`, fsync the dir. */
static int write_replace(struct mc_manifest *m, const char *tmp, const char *file, json_t *head,
                         mc_reg_emit_fn emit, void *arg, json_t *end)
{
    struct wbuf w = {.cap = 1u << 20};
    int rc = 0;

    w.buf = malloc(w.cap);
    w.fd = openat(m->dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w.fd < 0) {
        rc = manifest_io_err(errno, "creating", m->dir, tmp);
        goto out;
    }
    if (w.buf == NULL) {
        rc = mc_err(MC_ENOMEM, "out of memory writing %s/%s", m->dir, tmp);
        goto out;
    }
    wbuf_line(&w, head);
    if (emit && !w.err)
        rc = emit(arg, put_entry, &w);
    if (w.err)
        rc = wbuf_rc(&w, m, tmp);
    if (!rc && end) {
        json_object_set_new(end, "entries", json_integer((json_int_t)w.entries));
        wbuf_line(&w, end);
    }
    if (!rc)
        wbuf_flush(&w);
    if (!rc && !w.err && fsync(w.fd) != 0)
        w.err = -errno;
    if (!rc)
        rc = wbuf_rc(&w, m, tmp);
    if (!rc) {
        mc_crashpoint("compact-written");
        if (renameat(m->dirfd, tmp, m->dirfd, file) != 0)
            rc = manifest_io_err(errno, "renaming into place", m->dir, file);
        else if (mc_fsync_dir(m->dirfd, NULL) != 0)
            rc = manifest_io_err(errno, "syncing the directory of", m->dir, file);
    }
out:
    if (w.fd >= 0)
        close(w.fd);
    if (rc)
        unlinkat(m->dirfd, tmp, 0);
    free(w.buf);
    return rc;
}

static json_t *journal_header(uint64_t base)
{
    return json_pack("{s:s,s:i,s:I,s:I}", "mcache", "journal", "format", MC_MANIFEST_FORMAT, "base",
                     (json_int_t)base, "created_ns", (json_int_t)mc_wall_ns());
}

/* Start a fresh journal based at m->gen and switch to it. */
static int journal_restart(struct mc_manifest *m)
{
    json_t *head = journal_header(m->gen);
    int rc, fd;

    if (head == NULL)
        return mc_err(MC_ENOMEM, "out of memory starting a journal");
    rc = write_replace(m, MC_JOURNAL_FILE ".tmp", MC_JOURNAL_FILE, head, NULL, NULL, NULL);
    json_decref(head);
    if (rc)
        return rc;
    rc = manifest_open_file(m, MC_JOURNAL_FILE, true, &fd);
    if (rc)
        return rc < 0
                   ? rc
                   : mc_err(MC_EIO, "%s/%s vanished after it was written", m->dir, MC_JOURNAL_FILE);
    if (m->jfd >= 0)
        close(m->jfd);
    m->jfd = fd;
    manifest_file_id(fd, &m->jid);
    m->jpos = m->jid.size;
    m->jbase = m->jlast = m->gen;
    m->jformat = MC_MANIFEST_FORMAT;
    m->warned_tail = 0;
    return 0;
}

int mc_manifest_ensure(struct mc_manifest *m)
{
    if (m->jfd >= 0)
        return 0;
    return journal_restart(m);
}

bool mc_manifest_needs_rewrite(const struct mc_manifest *m)
{
    return m->jfd < 0 || m->jbase < m->snap_gen || m->jformat < MC_MANIFEST_FORMAT ||
           (m->sid.exists && m->sformat < MC_MANIFEST_FORMAT);
}

int mc_manifest_compact(struct mc_manifest *m, mc_reg_emit_fn emit, void *arg)
{
    json_t *head, *end;
    int rc, fd;

    if (!m->writable)
        return mc_err(MC_EPERM, "%s is open read-only", m->dir);
    head = json_pack("{s:s,s:i,s:I,s:I}", "mcache", "snapshot", "format", MC_MANIFEST_FORMAT,
                     "generation", (json_int_t)m->gen, "created_ns", (json_int_t)mc_wall_ns());
    end = json_pack("{s:s,s:I}", "end", "snapshot", "generation", (json_int_t)m->gen);
    if (head == NULL || end == NULL)
        rc = mc_err(MC_ENOMEM, "out of memory writing a snapshot");
    else
        rc = write_replace(m, MC_SNAPSHOT_FILE ".tmp", MC_SNAPSHOT_FILE, head, emit, arg, end);
    json_decref(head);
    json_decref(end);
    if (rc)
        return rc;
    /* the new snapshot is in charge: journal records up to m->gen are in it */
    rc = manifest_open_file(m, MC_SNAPSHOT_FILE, false, &fd);
    if (rc)
        return rc < 0 ? rc
                      : mc_err(MC_EIO, "%s/%s vanished after it was written", m->dir,
                               MC_SNAPSHOT_FILE);
    if (m->sfd >= 0)
        close(m->sfd);
    m->sfd = fd;
    manifest_file_id(fd, &m->sid);
    m->snap_gen = m->gen;
    m->sformat = MC_MANIFEST_FORMAT;
    mc_crashpoint("compact-snapshot-renamed");
    return journal_restart(m);
}

int mc_manifest_move_aside(int dirfd, const char *dir, const char *file, char *where, size_t size)
{
    char name[128];
    time_t t = time(NULL);
    struct tm tm;

    localtime_r(&t, &tm);
    mkdirat(dirfd, MC_DAMAGED_DIR, 0755);
    snprintf(name, sizeof(name), MC_DAMAGED_DIR "/%s.%04d%02d%02dT%02d%02d%02d.%llu", file,
             tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (unsigned long long)(mc_wall_ns() % 1000000000u));
    if (renameat(dirfd, file, dirfd, name) != 0)
        return manifest_io_err(errno, "moving aside", dir, file);
    mc_fsync_dir(dirfd, MC_DAMAGED_DIR);
    mc_fsync_dir(dirfd, NULL);
    snprintf(where, size, "%s/%s", dir, name);
    return 0;
}
