/*
 * notify.c - systemd's notify protocol, spoken directly (see notify.h).
 */
#include "loader/notify.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/clock.h"
#include "loader/log.h"

/* A decimal number that fills s, or false (no sign, no suffix, no overflow). */
static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;

    if (!s || *s < '0' || *s > '9')
        return false;
    errno = 0;
    *out = strtoull(s, &end, 10);
    return errno == 0 && *end == '\0';
}

/* $NOTIFY_SOCKET into n->addr: an absolute path, or "@name" (the abstract namespace). */
static bool notify_address(struct mc_notify *n, const char *e)
{
    size_t len = strlen(e);

    if ((e[0] != '/' && e[0] != '@') || len < 2 || len >= sizeof(n->addr.sun_path)) {
        log_warn("NOTIFY_SOCKET \"%s\" is not an absolute path or an @abstract name of at "
                 "most %zu bytes: not telling the service manager anything (check the unit's "
                 "Type=notify)",
                 e, sizeof(n->addr.sun_path) - 1);
        return false;
    }
    n->addr.sun_family = AF_UNIX;
    memcpy(n->addr.sun_path, e, len);
    if (e[0] == '@')
        n->addr.sun_path[0] = '\0';
    n->addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    return true;
}

/* $WATCHDOG_USEC, if the watchdog is this process's ($WATCHDOG_PID unset or ours). */
static void notify_watchdog_open(struct mc_notify *n)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    uint64_t us, p;

    if (!usec)
        return;
    if (pid && (!parse_u64(pid, &p) || p != (uint64_t)getpid())) {
        log_info("WATCHDOG_PID %s is not mcached's pid %d: the watchdog is another process's", pid,
                 (int)getpid());
        return;
    }
    if (!parse_u64(usec, &us) || us == 0) {
        log_warn("WATCHDOG_USEC \"%s\" is not a positive number of microseconds: no watchdog "
                 "pings (check the unit's WatchdogSec=)",
                 usec);
        return;
    }
    if (us > UINT64_MAX / 1000)
        us = UINT64_MAX / 1000;
    n->watchdog_ns = us * 1000 / 2;
    n->next_ping_ns = 0; /* the first pass of the loop pings */
    log_info("watchdog: pinging every %.3f s (WatchdogSec=%.3f s)", (double)n->watchdog_ns / 1e9,
             (double)us / 1e6);
}

void mc_notify_open(struct mc_notify *n)
{
    const char *e = getenv("NOTIFY_SOCKET");

    memset(n, 0, sizeof(*n));
    n->fd = -1;
    if (!e || !notify_address(n, e))
        return;
    n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (n->fd < 0) {
        log_warn("NOTIFY_SOCKET %s: socket: %s; not telling the service manager anything", e,
                 strerror(errno));
        return;
    }
    notify_watchdog_open(n);
}

static void notify_vsend(struct mc_notify *n, const char *fmt, va_list ap)
{
    char msg[512];
    int len;

    if (n->fd < 0)
        return;
    len = vsnprintf(msg, sizeof(msg), fmt, ap);
    if (len < 0 || (size_t)len >= sizeof(msg))
        len = (int)sizeof(msg) - 1; /* a long STATUS= is cut, never the keys before it */
    if (sendto(n->fd, msg, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&n->addr, n->addrlen) <
            0 &&
        !n->send_failed) {
        n->send_failed = true; /* said once: the manager may be gone for good */
        log_warn("telling the service manager \"%.*s\" over NOTIFY_SOCKET %s%s failed: %s", len,
                 msg, n->addr.sun_path[0] ? "" : "@",
                 n->addr.sun_path[0] ? n->addr.sun_path : n->addr.sun_path + 1, strerror(errno));
    }
}

void mc_notify_send(struct mc_notify *n, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    notify_vsend(n, fmt, ap);
    va_end(ap);
}

void mc_notify_status(struct mc_notify *n, const char *fmt, ...)
{
    char status[sizeof(n->status)];
    va_list ap;

    if (n->fd < 0)
        return;
    va_start(ap, fmt);
    vsnprintf(status, sizeof(status), fmt, ap);
    va_end(ap);
    if (strcmp(status, n->status) == 0)
        return;
    memcpy(n->status, status, sizeof(status));
    mc_notify_send(n, "STATUS=%s", status);
}

int mc_notify_watchdog(struct mc_notify *n)
{
    uint64_t now, ms;

    if (n->fd < 0 || !n->watchdog_ns)
        return -1;
    now = mc_mono_ns();
    if (now >= n->next_ping_ns) {
        mc_notify_send(n, "WATCHDOG=1");
        n->next_ping_ns = now + n->watchdog_ns;
    }
    ms = (n->next_ping_ns - now + 999999) / 1000000;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

void mc_notify_close(struct mc_notify *n)
{
    if (n->fd >= 0)
        close(n->fd);
    n->fd = -1;
}
