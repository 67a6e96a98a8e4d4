/*
 * manifest.c - the manifest's line format and what reading and writing it
 * share: framing a line with its CRC-32C and checking one, and the file
 * helpers of manifest_read.c and manifest_write.c.
 *
 * A line is the compact JSON text of an object whose last member is
 * "crc": eight lowercase hex digits of the CRC-32C of every byte of the
 * line before ",\"crc\"". A record is acknowledged only after its whole
 * line, '\n' included, has been written and fdatasync'd; at most one record
 * is ever unacknowledged (appends are serialized by the store lock), so
 * after a crash only the journal's last line can be incomplete:
 *   - the last line has no '\n', or is the last line and fails its check:
 *     a torn tail, the state before it is whole; a writer cuts it (saving
 *     its bytes in STORE/damaged/) and says so;
 *   - any other line that fails its check is damage: an error naming the
 *     file and byte offset, and the store stays unchanged until repaired.
 * A damaged last line that still holds a complete record followed by more
 * bytes (two lines merged by a lost '\n') is damage too, not a torn tail.
 */
#include "registry/manifest.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/hex.h"
#include "registry/crc32c.h"
#include "registry/manifest_int.h"

void mc_manifest_init(struct mc_manifest *m, int dirfd, const char *dir, bool writable,
                      void (*warn)(void *, const char *), void *warn_arg)
{
    memset(m, 0, sizeof(*m));
    m->dirfd = dirfd;
    m->dir = dir;
    m->writable = writable;
    m->warn = warn;
    m->warn_arg = warn_arg;
    m->jfd = -1;
    m->sfd = -1;
}

void mc_manifest_fini(struct mc_manifest *m)
{
    if (m->jfd >= 0)
        close(m->jfd);
    if (m->sfd >= 0)
        close(m->sfd);
    m->jfd = m->sfd = -1;
}

void manifest_warn(const struct mc_manifest *m, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m->warn)
        m->warn(m->warn_arg, msg);
    else
        fprintf(stderr, "mcache: warning: %s\n", msg);
}

int manifest_io_err(int e, const char *what, const char *dir, const char *file)
{
    if (e == ENOSPC || e == EDQUOT)
        return mc_err(MC_ENOSPC,
                      "the disk holding %s is full: %s %s failed; nothing was "
                      "changed; free some space and retry",
                      dir, what, file);
    return mc_err(mc_err_from_errno(e), "%s %s/%s failed: %s", what, dir, file, strerror(e));
}

int manifest_file_id(int fd, struct mc_file_id *id)
{
    struct stat st;

    if (fstat(fd, &st) != 0)
        return -errno;
    id->dev = st.st_dev;
    id->ino = st.st_ino;
    id->size = (uint64_t)st.st_size;
    id->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
    id->exists = true;
    return 0;
}

int manifest_write_all(int fd, const char *p, size_t n, off_t off)
{
    while (n > 0) {
        ssize_t k = off >= 0 ? pwrite(fd, p, n, off) : write(fd, p, n);

        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0)
            return -errno;
        if (k == 0)
            return -EIO;
        p += k;
        n -= (size_t)k;
        if (off >= 0)
            off += k;
    }
    return 0;
}

char *mc_manifest_encode(json_t *obj, size_t *len)
{
    char *s = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t n;
    char *line;

    if (s == NULL)
        return NULL;
    n = strlen(s);
    /* an object with members: "{...}" and never "{}" */
    if (n < 3 || s[n - 1] != '}') {
        free(s);
        return NULL;
    }
    line = realloc(s, n - 1 + CRC_TAIL + 2);
    if (line == NULL) {
        free(s);
        return NULL;
    }
    snprintf(line + n - 1, CRC_TAIL + 2, CRC_MEMBER "%08x\"}\n", mc_crc32c(0, line, n - 1));
    *len = n - 1 + CRC_TAIL + 1;
    return line;
}

/*
 * Check and read one line (without its '\n') into jr's tree: 0 with *out,
 * MC_ECORRUPT with a reason in why, or MC_ENOMEM.
 */
int manifest_line_decode(struct mc_jreader *jr, const char *p, size_t n, const struct mc_jval **out,
                         char *why, size_t wsz)
{
    uint32_t want = 0, got;

    if (n < CRC_TAIL + 2 || memcmp(p + n - CRC_TAIL, CRC_MEMBER, 8) != 0 || p[n - 2] != '"' ||
        p[n - 1] != '}') {
        snprintf(why, wsz, "the line does not end with its checksum");
        return MC_ECORRUPT;
    }
    for (size_t i = n - 10; i < n - 2; i++) {
        int h = mc_hexval((unsigned char)p[i], false);

        if (h < 0) {
            snprintf(why, wsz, "its checksum is not 8 lowercase hex digits");
            return MC_ECORRUPT;
        }
        want = want << 4 | (uint32_t)h;
    }
    got = mc_crc32c(0, p, n - CRC_TAIL);
    if (got != want) {
        snprintf(why, wsz, "checksum mismatch (stored %08x, computed %08x)", want, got);
        return MC_ECORRUPT;
    }
    return mc_jline_read(jr, p, n, out, why, wsz);
}

int manifest_open_file(struct mc_manifest *m, const char *file, bool rw, int *fd)
{
    *fd = openat(m->dirfd, file, (rw ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (*fd >= 0)
        return 0;
    if (errno == ENOENT)
        return 1;
    return manifest_io_err(errno, "opening", m->dir, file);
}
