/*
 * notify.h - telling a service manager how mcached is doing: systemd's
 * notify protocol (sd_notify(3)), spoken directly over $NOTIFY_SOCKET.
 *
 * The protocol is one datagram per message on the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or "@name" in the abstract namespace), holding
 * newline-separated KEY=VALUE assignments. mcached sends:
 *   STATUS=...   what it is doing (starting, mirroring, serving, stopping)
 *   READY=1      once it serves: the registry is mirrored and the socket
 *                listens (docs/loader.md, "Life cycle", step 6)
 *   RELOADING=1  on SIGHUP, then READY=1 again once the file is re-read
 *   STOPPING=1   when it starts to shut down
 *   WATCHDOG=1   every half of $WATCHDOG_USEC, from the event loop itself,
 *                so a loop that hangs stops the pings and systemd restarts
 *                mcached; only when $WATCHDOG_PID is unset or mcached's pid
 * Without $NOTIFY_SOCKET every call is a no-op. Why not libsystemd's
 * sd_notify(): docs/service.md, "Readiness".
 *
 * Single-threaded, like the rest of mcached: only the event loop's thread
 * calls these.
 */
#ifndef MCACHE_LOADER_NOTIFY_H
#define MCACHE_LOADER_NOTIFY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>

struct mc_notify {
    int fd; /* -1: no service manager to tell */
    struct sockaddr_un addr;
    socklen_t addrlen;
    bool send_failed;     /* a send failed: said once in the log */
    uint64_t watchdog_ns; /* between two pings (half of WATCHDOG_USEC); 0: no watchdog */
    uint64_t next_ping_ns;
    char status[256]; /* the last STATUS= sent */
};

/*
 * Read $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID. A value that is not
 * valid is logged as a warning naming it and that part is off (mcached
 * still starts: the service manager then times the start out, saying so).
 */
void mc_notify_open(struct mc_notify *n);

/* Send one message of newline-separated KEY=VALUE lines (no-op without a socket). */
void mc_notify_send(struct mc_notify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Send STATUS=<text> unless it is the status sent last. */
void mc_notify_status(struct mc_notify *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * The event loop calls this on every pass: sends WATCHDOG=1 when a ping is
 * due. Returns the milliseconds until the next one (the loop waits no
 * longer than that), or -1 without a watchdog.
 */
int mc_notify_watchdog(struct mc_notify *n);

void mc_notify_close(struct mc_notify *n);

#endif
