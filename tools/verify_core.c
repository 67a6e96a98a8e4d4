/*
 * verify_core.c - an artifact hashed against its checksum, wherever it is
 * (see verify_core.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/err.h"
#include "tools/verify_core.h"

#define CHUNK  (1u << 20)  /* a local file's reads */
#define RCHUNK (64u << 20) /* an object's: enough for its ranges to run in parallel */

static double mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void cli_xxh3_checksum(XXH3_state_t *st, char *out)
{
    XXH128_canonical_t cs;

    XXH128_canonicalFromHash(&cs, XXH3_128bits_digest(st));
    memcpy(out, "xxh3-128:", 9);
    for (int i = 0; i < 16; i++)
        snprintf(out + 9 + 2 * i, 3, "%02x", cs.digest[i]);
}

/* Hash what remains; 0 or an MC_E* code with its message. */
static int hash_all(struct mc_registry *reg, const struct mc_reg_version *v, bool local, int fd,
                    struct cli_verify *o, XXH3_state_t *st)
{
    size_t cap = local ? CHUNK : v->size < RCHUNK ? (size_t)v->size : RCHUNK;
    char *buf = malloc(cap ? cap : 1);
    uint64_t off = 0;
    int rc = 0;

    if (!buf)
        return mc_err(MC_ENOMEM, "out of memory");
    for (;;) {
        size_t n;

        if (o->stop && o->stop(o->arg)) {
            rc = mc_err(MC_EIO, "interrupted");
            break;
        }
        if (local) {
            ssize_t got = read(fd, buf, cap);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                rc = mc_err(MC_EIO, "%s", strerror(errno));
                break;
            }
            n = (size_t)got;
        } else {
            n = v->size - off < cap ? (size_t)(v->size - off) : cap;
            if (n && (rc = mc_registry_artifact_read(reg, v, off, buf, n)))
                break;
        }
        if (n == 0)
            break;
        XXH3_128bits_update(st, buf, n);
        off += n;
        if (o->progress)
            o->progress(o->arg, n);
    }
    free(buf);
    return rc;
}

/*
 * Does v's object in the object store hold more than v->size bytes? Its byte
 * at v->size read (a copy of v one byte longer, since reads stop at the
 * size): the store refuses it (416) when the object has exactly v->size;
 * any failure is taken as "no" (the bytes hashed right already).
 */
static bool remote_grew(struct mc_registry *reg, const struct mc_reg_version *v)
{
    struct mc_reg_version past = *v;
    char c;

    past.size = v->size + 1;
    return mc_registry_artifact_read(reg, &past, v->size, &c, 1) == 0;
}

void cli_verify_artifact(struct mc_registry *reg, const struct mc_reg_version *v,
                         struct cli_verify *o)
{
    bool local = mc_registry_artifact_local(reg, v);
    double t0 = mono_s();
    XXH3_state_t *st;
    int fd = -1, rc;

    o->actual[0] = '\0';
    o->message[0] = '\0';
    if (local && (fd = open(v->path, O_RDONLY | O_CLOEXEC)) < 0) {
        o->result = errno == ENOENT ? "missing" : "error";
        snprintf(o->message, sizeof(o->message),
                 "%s@%s: the artifact %s cannot be opened (%s); run `mcache fsck` and push the "
                 "version again",
                 v->name, v->version, v->path, strerror(errno));
        o->seconds = 0;
        return;
    }
    if (fd >= 0)
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    st = XXH3_createState();
    if (!st) {
        rc = mc_err(MC_ENOMEM, "out of memory");
    } else {
        XXH3_128bits_reset(st);
        rc = hash_all(reg, v, local, fd, o, st);
        if (!rc)
            cli_xxh3_checksum(st, o->actual);
        XXH3_freeState(st);
    }
    if (fd >= 0)
        close(fd);
    o->seconds = mono_s() - t0;
    if (rc) {
        o->result = rc == MC_ENOENT ? "missing" : "error";
        snprintf(o->message, sizeof(o->message), "%s@%s: reading %s%s: %s", v->name, v->version,
                 local ? "" : "its artifact ", v->path, mc_last_error());
    } else if (strcmp(o->actual, v->checksum)) {
        o->result = "mismatch";
        snprintf(o->message, sizeof(o->message),
                 "%s@%s: the artifact %s hashes to %s but the manifest says %s; it was changed "
                 "or damaged %s: remove the version and push it again",
                 v->name, v->version, v->path, o->actual, v->checksum,
                 local ? "on disk" : "in the object store");
    } else if (!local && remote_grew(reg, v)) {
        o->result = "mismatch";
        snprintf(o->message, sizeof(o->message),
                 "%s@%s: the artifact %s in the object store is longer than the %" PRIu64
                 " bytes the manifest says (those hash right; more follow them); it was "
                 "changed in the object store: remove the version and push it again",
                 v->name, v->version, v->path, v->size);
    } else {
        o->result = "ok";
    }
}
