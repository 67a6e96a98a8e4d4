/*
 * proto.c - the control protocol's codec and blocking client (see proto.h).
 */
#include "index/proto.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "shm/arena.h"

int mc_frame_check(const struct mc_frame *f, uint16_t type, uint32_t max_len)
{
    if (f->magic != MC_PROTO_MAGIC)
        return mc_err(MC_EINVAL, "frame magic 0x%08x is not MCP1 (0x%08x)", f->magic,
                      MC_PROTO_MAGIC);
    if (f->version != MC_PROTO_VERSION)
        return mc_err(MC_EINVAL, "protocol version %u is not supported (this is version %u)",
                      f->version, MC_PROTO_VERSION);
    if (f->type != type)
        return mc_err(MC_EINVAL, "frame type %u where %u was expected", f->type, type);
    if (f->length > max_len)
        return mc_err(MC_EINVAL, "frame of %u bytes exceeds the limit of %u", f->length,
                      max_len);
    return 0;
}

int mc_request_decode(const char *payload, size_t len, struct mc_request *out)
{
    const char *p = payload, *end = payload + len;
    unsigned field = 0;

    memset(out, 0, sizeof(*out));
    if (len == 0)
        return mc_err(MC_EINVAL, "empty request: expected an operation name");
    if (payload[len - 1] != '\0')
        return mc_err(MC_EINVAL, "request does not end with a NUL byte");
    while (p < end) {
        const char *nul = memchr(p, '\0', (size_t)(end - p));
        size_t n = (size_t)(nul - p);

        for (size_t i = 0; i < n; i++)
            if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
                return mc_err(MC_EINVAL, "request field %u has a control byte at %zu", field, i);
        if (field == 0) {
            if (n == 0 || n > 32)
                return mc_err(MC_EINVAL, "operation name must be 1 to 32 bytes");
            out->op = p;
        } else {
            if (field - 1 >= MC_PROTO_MAX_ARGS)
                return mc_err(MC_EINVAL, "request has more than %u arguments",
                              MC_PROTO_MAX_ARGS);
            out->args[field - 1] = p;
            out->nargs = field;
        }
        field++;
        p = nul + 1;
    }
    return 0;
}

size_t mc_request_encode(char *buf, size_t cap, const char *op, unsigned nargs,
                         const char *const *args)
{
    size_t n = 0;

    for (unsigned i = 0; i <= nargs; i++) {
        const char *s = i == 0 ? op : args[i - 1];
        size_t l = strlen(s) + 1;

        if (n + l > cap)
            return 0;
        memcpy(buf + n, s, l);
        n += l;
    }
    return n;
}

int mc_ctl_default_path(const char *dir, const char *cache, char *buf, size_t len)
{
    char ap[512];
    int rc = mc_arena_path(dir, cache, ap, sizeof(ap));

    if (rc)
        return rc;
    if ((size_t)snprintf(buf, len, "%s.sock", ap) >= len)
        return mc_err(MC_EINVAL, "socket path for %s is too long", ap);
    return 0;
}

int mc_ctl_path_check(const char *path)
{
    size_t max = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;

    if (strlen(path) > max)
        return mc_err(MC_EINVAL, "socket path \"%s\" is longer than %zu bytes; choose a shorter "
                      "--socket", path, max);
    return 0;
}

int mc_ctl_connect(const char *path, int *fd)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int s, e = mc_ctl_path_check(path);

    if (e)
        return e;
    memcpy(sa.sun_path, path, strlen(path) + 1);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return mc_err(MC_EIO, "socket: %s", strerror(errno));
    if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        e = errno;
        close(s);
        if (e == EACCES || e == EPERM)
            return mc_access_denied("mcached's control socket", path);
        return mc_err(MC_ENODAEMON,
                      "mcached is not running (nothing listens on %s: %s); start it with "
                      "`mcached` for this cache",
                      path, strerror(e));
    }
    *fd = s;
    return 0;
}

static int64_t ms_left(const struct timespec *deadline)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (deadline->tv_sec - now.tv_sec) * 1000 + (deadline->tv_nsec - now.tv_nsec) / 1000000;
}

/* Move len bytes in (dir 0) or out (dir 1) within the deadline. */
static int xfer(int fd, void *buf, size_t len, int dir, int timeout_ms,
                const struct timespec *deadline)
{
    size_t done = 0;

    while (done < len) {
        struct pollfd p = {.fd = fd, .events = dir ? POLLOUT : POLLIN};
        int wait = -1;

        if (timeout_ms >= 0) {
            int64_t left = ms_left(deadline);
            if (left <= 0)
                return mc_err(MC_ETIMEDOUT, "no answer from mcached within %d ms", timeout_ms);
            wait = (int)left;
        }
        int pr = poll(&p, 1, wait);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr == 0)
            continue; /* the deadline check above ends it */
        ssize_t n = dir ? send(fd, (char *)buf + done, len - done, MSG_NOSIGNAL)
                        : recv(fd, (char *)buf + done, len - done, 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            return mc_err(MC_ENODAEMON, "connection to mcached lost (%s)",
                          n == 0 ? "closed" : strerror(errno));
        done += (size_t)n;
    }
    return 0;
}

int mc_ctl_call(int fd, const char *op, unsigned nargs, const char *const *args, int timeout_ms,
                int *status, char **body)
{
    char req[MC_PROTO_MAX_REQUEST];
    struct mc_frame f = {.magic = MC_PROTO_MAGIC, .version = MC_PROTO_VERSION,
                         .type = MC_FRAME_REQUEST};
    struct timespec deadline;
    size_t n = mc_request_encode(req, sizeof(req), op, nargs, args);
    char *b;
    int rc;

    *body = NULL;
    if (!n)
        return mc_err(MC_EINVAL, "request \"%s\" is larger than %u bytes", op,
                      MC_PROTO_MAX_REQUEST);
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    f.length = (uint32_t)n;
    rc = xfer(fd, &f, sizeof(f), 1, timeout_ms, &deadline);
    if (!rc)
        rc = xfer(fd, req, n, 1, timeout_ms, &deadline);
    if (rc) {
        /* mcached may have answered before reading (too many connections)
         * and closed: its answer says more than the broken pipe. */
        int wrc = rc;

        if (xfer(fd, &f, sizeof(f), 0, timeout_ms, &deadline) != 0)
            return wrc;
        rc = 0; /* an answer came: read it, not the send's error */
    } else {
        rc = xfer(fd, &f, sizeof(f), 0, timeout_ms, &deadline);
    }
    if (rc)
        return rc;
    rc = mc_frame_check(&f, MC_FRAME_RESPONSE, MC_PROTO_MAX_RESPONSE);
    if (rc)
        return mc_err_prefix(rc, "bad response from mcached");
    b = malloc((size_t)f.length + 1);
    if (!b)
        return mc_err(MC_ENOMEM, "response of %u bytes: out of memory", f.length);
    rc = xfer(fd, b, f.length, 0, timeout_ms, &deadline);
    if (rc) {
        free(b);
        return rc;
    }
    b[f.length] = '\0';
    *status = f.status;
    *body = b;
    return 0;
}
