/*
 * manifest_read.c - reading the manifest: the snapshot, then the journal,
 * line by line in order, each checked (manifest.c) and handed to the
 * caller; following what other processes append; telling a torn tail
 * (cut, with the lock held exclusive) from damage; and salvaging what
 * comes before damage, for check and repair.
 */
#include "registry/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/vec.h"
#include "registry/files.h"
#include "registry/manifest_int.h"

#define REPAIR_HINT "nothing was changed; `mcache fsck --repair` keeps what is before it"

/* pread [off, end of file) into a malloc'd buffer (NUL-terminated). */
static int read_from(int fd, uint64_t off, char **buf, size_t *len)
{
    struct stat st;
    size_t n, got = 0;
    char *b;

    *buf = NULL;
    *len = 0;
    if (fstat(fd, &st) != 0)
        return -errno;
    if ((uint64_t)st.st_size <= off)
        return 0;
    n = (size_t)((uint64_t)st.st_size - off);
    b = malloc(n + 1);
    if (b == NULL)
        return -ENOMEM;
    while (got < n) {
        ssize_t k = pread(fd, b + got, n - got, (off_t)(off + got));

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            int e = errno;

            free(b);
            return -e;
        }
        if (k == 0)
            break; /* shrank meanwhile */
        got += (size_t)k;
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    return 0;
}

/*
 * A damaged last line that begins with a whole valid record is two lines
 * merged (a lost '\n'), not an interrupted append.
 */
static bool holds_record(struct mc_jreader *jr, const char *p, size_t n)
{
    const char *q = p;
    char why[64];

    while ((q = memmem(q, (size_t)(p + n - q), CRC_MEMBER, 8)) != NULL) {
        size_t len = (size_t)(q - p) + CRC_TAIL;
        const struct mc_jval *j;

        if (len < n && manifest_line_decode(jr, p, len, &j, why, sizeof(why)) == 0)
            return true;
        q++;
    }
    return false;
}

/* One file being read. */
struct scan {
    struct mc_manifest *m;
    const char *file; /* MC_SNAPSHOT_FILE or MC_JOURNAL_FILE */
    bool journal;
    bool header_done;
    bool ended;         /* snapshot: end line seen */
    uint64_t lines;     /* accepted lines, header included */
    uint64_t entries;   /* snapshot entries / journal records */
    uint64_t next_gen;  /* journal: generation the next record must carry */
    uint64_t skip_upto; /* journal: records up to this are in the snapshot */
    uint64_t base;      /* journal: its base */
    uint32_t format;
    uint64_t gen; /* snapshot: its generation; journal: last record's */
    mc_reg_record_fn fn;
    void *arg;
    bool delivered;
    struct mc_jreader jr;
    /* where it stopped */
    uint64_t good_end;
    char why[320];
};

static int damage(struct scan *sc, uint64_t off, const char *why)
{
    if (why != sc->why) {
        size_t n = strnlen(why, sizeof(sc->why) - 1);

        memcpy(sc->why, why, n);
        sc->why[n] = '\0';
    }
    return mc_err(MC_ECORRUPT,
                  "%s/%s is damaged at byte %llu: %s; " REPAIR_HINT
                  " and moves the damaged file aside",
                  sc->m->dir, sc->file, (unsigned long long)off, why);
}

/* A record the callback refused: damage too, reported the same way. */
static int refused(struct scan *sc, int rc, uint64_t off)
{
    char msg[800];

    if (rc == MC_ENOMEM)
        return rc;
    snprintf(msg, sizeof(msg), "%s", mc_last_error());
    return damage(sc, off, msg);
}

static int get_uint(const struct mc_jval *j, const char *key, uint64_t *v)
{
    const struct mc_jval *x = mc_jval_get(j, key);

    if (x == NULL || x->type != MC_JINT || x->u.i < 0)
        return -1;
    *v = (uint64_t)x->u.i;
    return 0;
}

static int header(struct scan *sc, const struct mc_jval *j, uint64_t off)
{
    const struct mc_jval *k = mc_jval_get(j, "mcache");
    const char *kind = k && k->type == MC_JSTR ? k->u.s : NULL;
    const char *want = sc->journal ? "journal" : "snapshot";
    uint64_t fmt, g;

    if (kind == NULL || strcmp(kind, want) != 0 || get_uint(j, "format", &fmt) != 0)
        return damage(sc, off,
                      sc->journal ? "it does not start with a journal header"
                                  : "it does not start with a snapshot header");
    if (fmt > MC_MANIFEST_FORMAT)
        return mc_err(MC_EFORMAT,
                      "%s/%s was written in manifest format %llu by a newer "
                      "mcache; this one reads formats 1 to %d: upgrade mcache "
                      "(nothing was changed)",
                      sc->m->dir, sc->file, (unsigned long long)fmt, MC_MANIFEST_FORMAT);
    if (fmt < 1)
        return damage(sc, off, "its header has format 0");
    sc->format = (uint32_t)fmt;
    if (get_uint(j, sc->journal ? "base" : "generation", &g) != 0)
        return damage(sc, off, "its header has no generation");
    if (sc->journal) {
        if (g > sc->skip_upto) {
            char why[200];

            snprintf(why, sizeof(why),
                     "the journal starts after generation %llu but the snapshot holds only "
                     "generation %llu: the records between are missing",
                     (unsigned long long)g, (unsigned long long)sc->skip_upto);
            return damage(sc, off, why);
        }
        sc->base = sc->gen = g;
        sc->next_gen = g + 1;
    } else {
        sc->gen = g;
    }
    sc->header_done = true;
    return 0;
}

static int snapshot_line(struct scan *sc, const struct mc_jval *j, uint64_t off)
{
    const struct mc_jval *end = mc_jval_get(j, "end");
    uint64_t n, g;
    int rc;

    if (sc->ended)
        return damage(sc, off, "there is a line after the end line");
    if (end != NULL) {
        if (get_uint(j, "entries", &n) != 0 || get_uint(j, "generation", &g) != 0 ||
            n != sc->entries || g != sc->gen)
            return damage(sc, off, "the end line does not match the entries before it");
        sc->ended = true;
        return 0;
    }
    sc->entries++;
    sc->delivered = true;
    rc = sc->fn(sc->arg, j, true, sc->gen);
    return rc ? refused(sc, rc, off) : 0;
}

static int journal_line(struct scan *sc, const struct mc_jval *j, uint64_t off)
{
    const struct mc_jval *x;
    uint64_t g;
    int rc;

    if (get_uint(j, "g", &g) != 0 || g != sc->next_gen) {
        char why[128];

        x = mc_jval_get(j, "g");
        snprintf(why, sizeof(why), "record with generation %s where %llu was expected",
                 x && x->type == MC_JINT ? "out of order" : "missing",
                 (unsigned long long)sc->next_gen);
        return damage(sc, off, why);
    }
    sc->next_gen++;
    sc->gen = g;
    sc->entries++;
    if (g <= sc->skip_upto)
        return 0; /* already in the snapshot (a compaction was interrupted) */
    sc->delivered = true;
    rc = sc->fn(sc->arg, j, false, g);
    return rc ? refused(sc, rc, off) : 0;
}

/* scan_buf(): the buffer ends before the file does; read on from sc->good_end. */
#define SCAN_MORE 2

/*
 * Read buf[0..len) (file offset base_off; eof: the file ends there).
 * Returns 0 when every line was good, 1 when a torn tail starts at
 * sc->good_end, SCAN_MORE, or an error.
 */
static int scan_buf(struct scan *sc, const char *buf, size_t len, uint64_t base_off, bool eof)
{
    size_t pos = 0;

    sc->good_end = base_off;
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        uint64_t off = base_off + pos;
        const struct mc_jval *j;
        size_t n;
        int rc;

        if (nl == NULL) {
            if (!eof)
                return SCAN_MORE;
            if (sc->journal)
                return 1;
            return damage(sc, off, "the file ends in the middle of a line");
        }
        n = (size_t)(nl - (buf + pos));
        if (n > MC_MANIFEST_LINE_MAX)
            return damage(sc, off, "the line is longer than 4 MiB");
        rc = manifest_line_decode(&sc->jr, buf + pos, n, &j, sc->why, sizeof(sc->why));
        if (rc == MC_ENOMEM)
            return mc_err(rc, "out of memory reading %s/%s", sc->m->dir, sc->file);
        if (rc) {
            if (sc->journal && eof && pos + n + 1 == len && !holds_record(&sc->jr, buf + pos, n))
                return 1;
            return damage(sc, off, sc->why);
        }
        if (!sc->header_done)
            rc = header(sc, j, off);
        else
            rc = sc->journal ? journal_line(sc, j, off) : snapshot_line(sc, j, off);
        if (rc)
            return rc;
        sc->lines++;
        pos += n + 1;
        sc->good_end = base_off + pos;
    }
    if (!eof)
        return SCAN_MORE;
    if (!sc->journal && !sc->ended)
        return damage(sc, base_off + len,
                      sc->header_done ? "the file ends without its end line" : "the file is empty");
    return 0;
}

/*
 * Read the file from offset from to its end (as fstat() saw it when we
 * started) through a buffer of READ_CHUNK bytes, grown only for a longer
 * line: a buffer the size of the file cost more in page faults than
 * reading it, and lines are checked while they are still in the cache.
 */
#define READ_CHUNK (1u << 20)

static int scan_fd(struct scan *sc, int fd, uint64_t from)
{
    size_t cap = READ_CHUNK, len = 0;
    uint64_t off = from, end;
    struct stat st;
    char *buf;
    int rc;

    if (fstat(fd, &st) != 0)
        return manifest_io_err(errno, "reading", sc->m->dir, sc->file);
    end = (uint64_t)st.st_size;
    buf = malloc(cap);
    if (buf == NULL)
        return mc_err(MC_ENOMEM, "out of memory reading %s/%s", sc->m->dir, sc->file);
    mc_jreader_init(&sc->jr);
    for (;;) {
        bool eof = off + len >= end;
        size_t used;

        if (!eof) {
            size_t want;
            ssize_t k;

            /* a line longer than the buffer: double it */
            if (MC_VEC_RESERVE(buf, cap, len + 1, READ_CHUNK)) {
                rc = mc_err(MC_ENOMEM, "out of memory reading %s/%s", sc->m->dir, sc->file);
                break;
            }
            want = cap - len;
            if (want > end - (off + len))
                want = (size_t)(end - (off + len));
            k = pread(fd, buf + len, want, (off_t)(off + len));
            if (k < 0 && errno == EINTR)
                continue;
            if (k < 0) {
                rc = manifest_io_err(errno, "reading", sc->m->dir, sc->file);
                break;
            }
            len += (size_t)k;
            eof = k == 0 || off + len >= end; /* k == 0: it shrank meanwhile */
        }
        rc = scan_buf(sc, buf, len, off, eof);
        if (rc != SCAN_MORE)
            break;
        /* keep the incomplete last line for the next read */
        used = (size_t)(sc->good_end - off);
        memmove(buf, buf + used, len - used);
        len -= used;
        off += used;
    }
    mc_jreader_fini(&sc->jr);
    free(buf);
    return rc;
}

/* Keep the bytes of a torn tail in STORE/damaged/ before cutting them. */
static void save_tail(struct mc_manifest *m, int fd, uint64_t off, char *where, size_t wsz)
{
    char name[96];
    char *buf;
    size_t len;
    int out;

    snprintf(where, wsz, "(not saved)");
    if (read_from(fd, off, &buf, &len) != 0)
        return;
    mkdirat(m->dirfd, MC_DAMAGED_DIR, 0755);
    snprintf(name, sizeof(name), MC_DAMAGED_DIR "/journal-tail.%llu",
             (unsigned long long)mc_wall_ns());
    out = openat(m->dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (out >= 0) {
        if (manifest_write_all(out, buf, len, -1) == 0 && fsync(out) == 0)
            snprintf(where, wsz, "%s/%s", m->dir, name);
        close(out);
    }
    free(buf);
}

static int tail_handle(struct mc_manifest *m, int fd, uint64_t off, bool cut)
{
    struct stat st;
    uint64_t n;
    char where[512];

    if (fstat(fd, &st) != 0)
        return manifest_io_err(errno, "reading", m->dir, MC_JOURNAL_FILE);
    n = (uint64_t)st.st_size - off;
    if (!cut || !m->writable) {
        if (m->warned_tail != off + 1)
            manifest_warn(
                m,
                "%s/%s ends with %llu bytes of an incomplete record at byte %llu (a write "
                "was interrupted); ignored, and cut by the next change",
                m->dir, MC_JOURNAL_FILE, (unsigned long long)n, (unsigned long long)off);
        m->warned_tail = off + 1;
        return 0;
    }
    save_tail(m, fd, off, where, sizeof(where));
    if (ftruncate(fd, (off_t)off) != 0 || fdatasync(fd) != 0)
        return manifest_io_err(errno, "cutting the torn tail of", m->dir, MC_JOURNAL_FILE);
    manifest_warn(m,
                  "cut a torn record off %s/%s at byte %llu (%llu bytes: a change interrupted "
                  "before it was acknowledged); its bytes are kept in %s",
                  m->dir, MC_JOURNAL_FILE, (unsigned long long)off, (unsigned long long)n, where);
    return 0;
}

static void scan_init(struct scan *sc, struct mc_manifest *m, bool journal, mc_reg_record_fn fn,
                      void *arg)
{
    memset(sc, 0, sizeof(*sc));
    sc->m = m;
    sc->journal = journal;
    sc->file = journal ? MC_JOURNAL_FILE : MC_SNAPSHOT_FILE;
    sc->fn = fn;
    sc->arg = arg;
}

/*
 * The common body of load and salvage: read the snapshot, then the
 * journal, into n (a copy of m's settings). With salvage, damage is
 * recorded in s instead of failing.
 */
static int read_both(struct mc_manifest *n, mc_reg_record_fn fn, void *arg, bool cut,
                     struct mc_salvage *s)
{
    struct scan sc;
    int rc;

    rc = manifest_open_file(n, MC_SNAPSHOT_FILE, false, &n->sfd);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        manifest_file_id(n->sfd, &n->sid);
        scan_init(&sc, n, false, fn, arg);
        rc = scan_fd(&sc, n->sfd, 0);
        if (rc && (s == NULL || rc == MC_EFORMAT || rc == MC_ENOMEM || rc == MC_EIO))
            return rc;
        if (rc) {
            s->snap_damaged = true;
            s->snap_off = sc.good_end;
            snprintf(s->snap_why, sizeof(s->snap_why), "%s", sc.why);
        }
        if (s)
            s->snap_entries = sc.entries;
        n->snap_gen = sc.gen;
        n->sformat = sc.format;
    }
    rc = manifest_open_file(n, MC_JOURNAL_FILE, n->writable, &n->jfd);
    if (rc < 0)
        return rc;
    n->jbase = n->jlast = n->gen = n->snap_gen;
    if (rc == 1)
        return 0; /* no journal yet: mc_manifest_ensure() makes one */
    manifest_file_id(n->jfd, &n->jid);
    if (n->jid.size == 0) {
        manifest_warn(n, "%s/%s is empty; a new one is started", n->dir, MC_JOURNAL_FILE);
        close(n->jfd);
        n->jfd = -1;
        n->jid.exists = false;
        return 0;
    }
    scan_init(&sc, n, true, fn, arg);
    sc.skip_upto = n->snap_gen;
    rc = scan_fd(&sc, n->jfd, 0);
    if (rc < 0 && (s == NULL || rc == MC_EFORMAT || rc == MC_ENOMEM || rc == MC_EIO))
        return rc;
    if (rc < 0) {
        s->journal_damaged = true;
        s->journal_off = sc.good_end;
        snprintf(s->journal_why, sizeof(s->journal_why), "%s", sc.why);
    } else if (rc == 1 && s) {
        s->torn_tail = true;
        s->tail_off = sc.good_end;
        s->tail_len = n->jid.size - sc.good_end;
    } else if (rc == 1) {
        rc = tail_handle(n, n->jfd, sc.good_end, cut);
        if (rc)
            return rc;
    }
    if (s)
        s->journal_records = sc.entries;
    n->jpos = sc.good_end;
    n->jbase = sc.base;
    n->jlast = sc.gen;
    n->jformat = sc.format;
    n->gen = sc.gen > n->snap_gen ? sc.gen : n->snap_gen;
    return 0;
}

static int load_or_salvage(struct mc_manifest *m, mc_reg_record_fn fn, void *arg, bool cut,
                           struct mc_salvage *s)
{
    struct mc_manifest n;
    int rc;

    mc_manifest_init(&n, m->dirfd, m->dir, m->writable, m->warn, m->warn_arg);
    n.warned_tail = m->warned_tail;
    rc = read_both(&n, fn, arg, cut, s);
    if (rc) {
        mc_manifest_fini(&n);
        return rc;
    }
    mc_manifest_fini(m);
    *m = n;
    return 0;
}

int mc_manifest_load(struct mc_manifest *m, mc_reg_record_fn fn, void *arg, bool cut)
{
    return load_or_salvage(m, fn, arg, cut, NULL);
}

int mc_manifest_salvage(struct mc_manifest *m, mc_reg_record_fn fn, void *arg, struct mc_salvage *s)
{
    memset(s, 0, sizeof(*s));
    return load_or_salvage(m, fn, arg, false, s);
}

static bool same_file(int dirfd, const char *file, const struct mc_file_id *id)
{
    struct stat st;

    if (fstatat(dirfd, file, &st, 0) != 0)
        return !id->exists && errno == ENOENT;
    return id->exists && st.st_dev == id->dev && st.st_ino == id->ino;
}

int mc_manifest_replaced(const struct mc_manifest *m)
{
    return !same_file(m->dirfd, MC_SNAPSHOT_FILE, &m->sid) ||
           !same_file(m->dirfd, MC_JOURNAL_FILE, &m->jid);
}

int mc_manifest_follow(struct mc_manifest *m, mc_reg_record_fn fn, void *arg, bool cut,
                       bool *changed)
{
    struct scan sc;
    struct stat st;
    int rc;

    *changed = false;
    if (m->jfd < 0)
        return 0;
    if (fstat(m->jfd, &st) != 0)
        return manifest_io_err(errno, "reading", m->dir, MC_JOURNAL_FILE);
    if ((uint64_t)st.st_size == m->jpos)
        return 0;
    if ((uint64_t)st.st_size < m->jpos)
        return mc_err(MC_ECORRUPT,
                      "%s/%s shrank below what was read (%llu < %llu bytes) "
                      "without being replaced; reopen the store",
                      m->dir, MC_JOURNAL_FILE, (unsigned long long)st.st_size,
                      (unsigned long long)m->jpos);
    scan_init(&sc, m, true, fn, arg);
    sc.header_done = true;
    sc.lines = 1;
    sc.next_gen = m->jlast + 1;
    sc.gen = m->jlast;
    sc.skip_upto = m->snap_gen;
    rc = scan_fd(&sc, m->jfd, m->jpos);
    /* what was delivered stays delivered, even if a later line fails */
    m->jpos = sc.good_end;
    m->jlast = sc.gen;
    if (sc.gen > m->gen)
        m->gen = sc.gen;
    *changed = sc.delivered;
    if (rc == 1)
        return tail_handle(m, m->jfd, sc.good_end, cut);
    return rc;
}
