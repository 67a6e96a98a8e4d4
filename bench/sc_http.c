/*
 * sc_http.c - the `http` scenario: mcache-serve, the HTTP face (issue 14),
 * beside nginx serving the same bytes as static files, and beside the
 * disk, all in one run on this machine.
 *
 * A real mcached on a private store: model m, 1.0.0 (preloaded: resident in
 * the arena) and 2.0.0 (not preloaded: served from its file in the store),
 * each an artifact of S bytes (64 MiB; --quick 16 MiB) of the bench's
 * pattern. mcache-serve on 127.0.0.1 at a free port in front of it (open
 * access on loopback, no token). nginx (Debian's nginx-light) with a config
 * of its own in a private directory, on 127.0.0.1 at another free port:
 * access_log off, sendfile on, its root a folder holding the metadata JSON
 * (the exact bytes mcache-serve answers) and a file of S bytes. Both
 * servers get the same number of workers (nginx worker processes,
 * mcache-serve --threads): the CPUs, at most 4.
 *
 *   metadata GET   GET /v1/models/m/versions/1.0.0 (the version's JSON) vs
 *                  nginx's GET /meta.json of the same bytes: wrk (-t1 -c8,
 *                  --latency, 5 s; --quick 1 s) per run, each server in
 *                  turn; requests/s and wrk's p99. Any non-2xx answer is an
 *                  error (it would make a fast figure of failures).
 *   download       the artifact, GET .../1.0.0/artifact (Mcache-Source:
 *                  arena), GET .../2.0.0/artifact (Mcache-Source: store)
 *                  and nginx's sendfile of its file: this process's own
 *                  client (one keep-alive connection, GET after GET, each
 *                  body read into a 256 KiB buffer and dropped, as a
 *                  client saving it elsewhere would) for 2 s per run
 *                  (--quick 0.25 s); GB/s. Before the runs every body is
 *                  read once in full and its sum checked against the
 *                  pattern, and the Mcache-Source header checked, so no
 *                  figure is of wrong bytes or of the other path.
 *   push           PUT /v1/models/m/versions/3.0.N streamed from a
 *                  page-cached file (sendfile to the socket, as curl -T
 *                  does), from connect to the 201; vs the disk: the same
 *                  file copied (1 MiB read + write) to a file beside the
 *                  store (the same file system) and fsync'd, as dd conv=fsync
 *                  would. The upload is written, hashed and fsync'd by the
 *                  registry, then registered (one journal record). Beside
 *                  it, the registry library's own push of the file
 *                  (mc_registry_push, as `mcache push`), so that the
 *                  table says what HTTP adds and what the registry costs.
 *
 * Every run measures each system once, in alternating order. Targets (the
 * issue's): metadata requests/s at least 0.5x nginx's and its p99 within
 * 2x; downloads at least 0.8x nginx's sendfile, resident and not. The
 * push's ratio to the disk is reported. Where nginx or wrk is not
 * installed, a note says so and the scenario is skipped.
 *
 * Every process the scenario starts (mcached, mcache-serve, nginx's master,
 * wrk) is its child, registered with cleanup.c; nginx's workers are
 * registered too once it serves, and nginx is stopped by its pid (SIGTERM,
 * then SIGKILL for it and its workers). Every wait has a deadline and says
 * what did not happen, with the server's log.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/mcd.h"
#include "bench/model.h"
#include "common/clock.h"
#include "mcache.h"
#include "registry/registry.h"

#define V_ARENA "1.0.0"
#define V_STORE "2.0.0"

#define NGINX_JSON  "nginx (static file)"
#define NGINX_SF    "nginx (sendfile)"
#define SERVE       "mcache-serve"
#define SERVE_ARENA "mcache-serve, resident (arena)"
#define SERVE_STORE "mcache-serve, not resident (store file)"
#define DISK        "write + fsync (dd-like)"
#define PUSH        "mcache-serve PUT (streamed)"
#define LIBPUSH     "registry library push (no HTTP)"
#define M_RPS       "metadata GET, requests/s (wrk -c8)"
#define M_P99       "metadata GET, wrk's p99 latency (-c8)"

#define WRK_CONNS   "8"
#define MAX_WORKERS 4
#define CLIENT_BUF  (256 * 1024)
#define IO_TIMEOUT  30 /* seconds: no answer from a server on loopback in this long is an error */

/* ---- a minimal HTTP/1.1 client (blocking, loopback) ---- */

struct conn {
    int fd, port;
    size_t pos, len;
    char buf[CLIENT_BUF];
};

struct reply {
    unsigned status;
    uint64_t length; /* body bytes received */
    char source[16]; /* the Mcache-Source header, "" if none */
    char *body;      /* when kept: the body, NUL-terminated (free it) */
};

static int conn_open(struct conn *c, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = IO_TIMEOUT};
    int one = 1;

    c->port = port;
    c->pos = c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        int e = errno;

        close(c->fd);
        c->fd = -1;
        errno = e;
        return -1;
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Read more into the buffer (compacting it first); an error names port and what failed. */
static int conn_fill(struct conn *c)
{
    ssize_t r;

    if (c->pos == c->len)
        c->pos = c->len = 0;
    if (c->len == sizeof(c->buf) && c->pos) {
        memmove(c->buf, c->buf + c->pos, c->len - c->pos);
        c->len -= c->pos;
        c->pos = 0;
    }
    if (c->len == sizeof(c->buf))
        return bench_error("http: a header line from 127.0.0.1:%d is longer than %zu bytes",
                           c->port, sizeof(c->buf));
    do
        r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        return bench_error("http: 127.0.0.1:%d closed the connection in the middle of a reply",
                           c->port);
    if (r < 0)
        return bench_error("http: reading from 127.0.0.1:%d: %s%s", c->port, strerror(errno),
                           errno == EAGAIN ? " (no answer within 30 s)" : "");
    c->len += (size_t)r;
    return 0;
}

/* One line without its CRLF, NUL-terminated in place. */
static char *conn_line(struct conn *c)
{
    for (;;) {
        char *s = c->buf + c->pos, *e = memchr(s, '\n', c->len - c->pos);

        if (e) {
            *e = '\0';
            if (e > s && e[-1] == '\r')
                e[-1] = '\0';
            c->pos = (size_t)(e + 1 - c->buf);
            return s;
        }
        if (conn_fill(c))
            return NULL;
    }
}

/* n body bytes: appended to *keep (size *cap, used *used) if keep, else dropped. */
static int conn_body(struct conn *c, uint64_t n, char **keep, size_t *used, size_t *cap)
{
    if (keep && *used + n + 1 > *cap) {
        *cap = (size_t)(*used + n + 1);
        *keep = xrealloc(*keep, *cap);
    }
    while (n) {
        size_t avail = c->len - c->pos, take;

        if (!avail) {
            if (conn_fill(c))
                return -1;
            continue;
        }
        take = avail < n ? avail : (size_t)n;
        if (keep) {
            memcpy(*keep + *used, c->buf + c->pos, take);
            *used += take;
        }
        c->pos += take;
        n -= take;
    }
    return 0;
}

static int send_all(struct conn *c, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return bench_error("http: sending to 127.0.0.1:%d: %s", c->port, strerror(errno));
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* The body of file fd (len bytes from its start) to the socket, without a copy through us. */
static int send_file(struct conn *c, int fd, uint64_t len)
{
    off_t off = 0;

    while ((uint64_t)off < len) {
        ssize_t w = sendfile(c->fd, fd, &off, (size_t)(len - (uint64_t)off));

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return bench_error("http: sending a body to 127.0.0.1:%d: %s", c->port,
                               w ? strerror(errno) : "the file ended early");
    }
    return 0;
}

/*
 * One request on c (reconnecting if the server closed it): method, path,
 * extra header lines (each ending in CRLF, or NULL), a body from file
 * body_fd of body_len bytes (body_fd < 0: none). The reply's body is kept
 * in r->body if keep or if it is an error (status >= 300), else dropped.
 */
static int http_call(struct conn *c, const char *method, const char *path, const char *headers,
                     int body_fd, uint64_t body_len, bool keep, struct reply *r)
{
    char req[2048], *line;
    bool chunked = false, closes = false, have_len = false;
    uint64_t clen = 0;
    size_t used = 0, cap = 0;
    int n, sent;

    memset(r, 0, sizeof(*r));
    if (c->fd < 0 && conn_open(c, c->port))
        return bench_error("http: cannot connect to 127.0.0.1:%d: %s", c->port, strerror(errno));
    n = snprintf(req, sizeof(req), "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s", method, path,
                 c->port, headers ? headers : "");
    if (body_fd >= 0)
        n += snprintf(req + n, sizeof(req) - (size_t)n, "Content-Length: %llu\r\n",
                      (unsigned long long)body_len);
    n += snprintf(req + n, sizeof(req) - (size_t)n, "\r\n");
    if (n >= (int)sizeof(req))
        return bench_error("http: request for %s too long", path);
    /* A server may refuse a body before it is all sent (and close): its answer says why. */
    sent = send_all(c, req, (size_t)n);
    if (sent == 0 && body_fd >= 0)
        sent = send_file(c, body_fd, body_len);
    if (!(line = conn_line(c)))
        return -1;
    if (sscanf(line, "HTTP/1.%*d %u", &r->status) != 1)
        return bench_error("http: 127.0.0.1:%d answered %s %s with \"%.80s\", not an HTTP status "
                           "line",
                           c->port, method, path, line);
    while ((line = conn_line(c)) && *line) {
        char *v = strchr(line, ':');

        if (!v)
            continue;
        *v++ = '\0';
        v += strspn(v, " \t");
        if (!strcasecmp(line, "Content-Length"))
            have_len = true, clen = strtoull(v, NULL, 10);
        else if (!strcasecmp(line, "Transfer-Encoding"))
            chunked = strcasestr(v, "chunked") != NULL;
        else if (!strcasecmp(line, "Connection"))
            closes = strcasestr(v, "close") != NULL;
        else if (!strcasecmp(line, "Mcache-Source"))
            snprintf(r->source, sizeof(r->source), "%s", v);
    }
    if (!line)
        return -1;
    keep = keep || r->status >= 300;
    if (chunked) {
        for (;;) {
            uint64_t size;

            if (!(line = conn_line(c)))
                goto fail;
            size = strtoull(line, NULL, 16);
            if (!size)
                break;
            if (conn_body(c, size, keep ? &r->body : NULL, &used, &cap) ||
                conn_body(c, 2, NULL, NULL, NULL))
                goto fail;
            r->length += size;
        }
        while ((line = conn_line(c)) && *line) /* trailers */
            ;
        if (!line)
            goto fail;
    } else if (have_len) {
        if (conn_body(c, clen, keep ? &r->body : NULL, &used, &cap))
            goto fail;
        r->length = clen;
    } else if (strcmp(method, "HEAD") && r->status >= 200 && r->status != 204 && r->status != 304) {
        return bench_error("http: 127.0.0.1:%d answered %s %s without Content-Length or chunked "
                           "encoding",
                           c->port, method, path);
    }
    if (keep) {
        r->body = xrealloc(r->body, used + 1);
        r->body[used] = '\0';
    }
    if (closes || sent)
        conn_close(c);
    if (sent && r->status < 300) {
        free(r->body);
        r->body = NULL;
        return -1; /* the error is above */
    }
    return 0;
fail:
    free(r->body);
    r->body = NULL;
    return -1;
}

/* An unexpected status: an error naming the request and quoting the answer. */
static int http_unexpected(const char *server, const char *method, const char *path, unsigned want,
                           struct reply *r)
{
    int rc = bench_error("http: %s answered %s %s with %u (expected %u): %.300s", server, method,
                         path, r->status, want, r->body ? r->body : "");

    free(r->body);
    r->body = NULL;
    return rc;
}

/* ---- servers ---- */

struct proc {
    pid_t pid;
    const char *what; /* "mcache-serve", "nginx" */
    char log[800];    /* its stderr */
    int status;       /* once reaped */
};

struct hx {
    struct bench *b;
    char dir[600], store[700], www[700], ngx[700];
    char src[700], src_store[700], src_up[700]; /* artifacts: 1.0.0 (and nginx's), 2.0.0, pushes */
    uint64_t size, sum_arena, sum_store;
    unsigned workers, runs, wrk_s;
    double dl_s;
    struct mcd d;
    struct proc serve, nginx;
    pid_t ngx_workers[16];
    unsigned nngx_workers;
    int serve_port, nginx_port;
    char serve_bin[1024], nginx_bin[1024], wrk_bin[1024];
    char m_dl[96], m_up[96];
};

/*
 * Find mcache-serve: $MCACHE_SERVE, else the build tree's (<dir>/../serve/),
 * else beside this program (installed: both in PREFIX/bin), else $PATH.
 */
static int serve_find(struct bench *b, char *bin, size_t len)
{
    const char *env = getenv("MCACHE_SERVE");
    char dir[900], *slash;

    if (env && *env) {
        snprintf(bin, len, "%s", env);
        if (access(bin, X_OK) == 0)
            return 0;
        return bench_error("$MCACHE_SERVE is %s, which is not an executable file", env);
    }
    snprintf(dir, sizeof(dir), "%s", b->self);
    slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    static const char *const where[] = {"../serve/mcache-serve", "mcache-serve"};

    for (size_t i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
        snprintf(bin, len, "%s/%s", dir, where[i]);
        if (access(bin, X_OK) == 0)
            return 0;
    }
    if (find_on_path("mcache-serve", bin, len))
        return 0;
    return bench_error(
        "cannot find mcache-serve (looked at $MCACHE_SERVE, %s/../serve/mcache-serve, "
        "%s/mcache-serve and $PATH): build it (make -C BUILD mcache_serve) or set "
        "MCACHE_SERVE=/path/to/mcache-serve",
        dir, dir);
}

static void log_tail(const char *path)
{
    char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    off_t end;
    ssize_t n;

    if (fd < 0)
        return;
    end = lseek(fd, 0, SEEK_END);
    n = pread(fd, buf, sizeof(buf) - 1,
              end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    fprintf(stderr, "---- the end of %s ----\n%s%s---- end of log ----\n", path, buf,
            buf[n - 1] == '\n' ? "" : "\n");
}

/* Does the log say the port was taken (the one reason to try another)? */
static bool port_taken(const struct proc *p)
{
    char buf[4096];
    int fd = open(p->log, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

    if (fd >= 0)
        close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    return strstr(buf, "already in use") != NULL;
}

/* Empty the log before another attempt, so that port_taken() reads only that one's. */
static void log_clear(const struct proc *p)
{
    int fd = open(p->log, O_WRONLY | O_TRUNC | O_CLOEXEC);

    if (fd >= 0)
        close(fd);
}

/* Exec argv with stdin and stdout on /dev/null and stderr appended to p->log. */
static int proc_start(struct proc *p, const char *const *argv)
{
    pid_t parent = getpid();
    int log = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);

    if (log < 0)
        return bench_error("cannot open %s's log %s: %s", p->what, p->log, strerror(errno));
    fflush(NULL);
    p->pid = fork();
    if (p->pid < 0) {
        close(log);
        return bench_error("fork: %s", strerror(errno));
    }
    if (p->pid == 0) {
        int null = open("/dev/null", O_RDWR | O_CLOEXEC);

        child_init(parent);
        dup2(null, 0);
        dup2(null, 1);
        dup2(log, 2);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "mcache-bench: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(log);
    cleanup_add_pid(p->pid);
    return 0;
}

/* Has it exited? (reaps it if so) */
static bool proc_exited(struct proc *p)
{
    if (p->pid <= 0)
        return true;
    if (waitpid(p->pid, &p->status, WNOHANG) != p->pid)
        return false;
    cleanup_del_pid(p->pid);
    p->pid = 0;
    return true;
}

static int proc_died(struct proc *p)
{
    log_tail(p->log);
    if (WIFSIGNALED(p->status))
        return bench_error("%s was killed by signal %d; its log is above (%s)", p->what,
                           WTERMSIG(p->status), p->log);
    return bench_error("%s exited with status %d; its log is above (%s)", p->what,
                       WEXITSTATUS(p->status), p->log);
}

/* Send sig and wait up to 10 s for it to exit, then SIGKILL. */
static void proc_stop(struct proc *p, int sig)
{
    uint64_t t0 = mc_mono_ns();

    if (p->pid <= 0)
        return;
    kill(p->pid, sig);
    while (!proc_exited(p)) {
        if (mc_mono_ns() - t0 > 10000000000ull) {
            bench_note("%s (pid %d) did not stop within 10 s of signal %d: killed", p->what,
                       (int)p->pid, sig);
            kill(p->pid, SIGKILL);
            while (waitpid(p->pid, NULL, 0) < 0 && errno == EINTR)
                ;
            cleanup_del_pid(p->pid);
            p->pid = 0;
            return;
        }
        usleep(2000);
    }
}

/*
 * Wait until GET path on port answers 200 (a server's readiness), up to
 * timeout_ms; fails at once if p exits (1: it did, so the caller may retry
 * on another port).
 */
static int wait_ready(struct proc *p, int port, const char *path, int timeout_ms)
{
    uint64_t t0 = mc_mono_ns();
    unsigned last = 0;

    for (;;) {
        struct conn *c = xrealloc(NULL, sizeof(*c));
        struct reply r;
        bool up = false;

        if (conn_open(c, port) == 0) {
            up = http_call(c, "GET", path, NULL, -1, 0, false, &r) == 0;
            last = up ? r.status : 0;
            up = up && r.status == 200;
            free(r.body);
            conn_close(c);
        }
        free(c);
        if (up)
            return 0;
        if (proc_exited(p)) {
            proc_died(p);
            return 1;
        }
        if (mc_mono_ns() - t0 > (uint64_t)timeout_ms * 1000000ull) {
            log_tail(p->log);
            return bench_error("%s did not answer GET %s with 200 on 127.0.0.1:%d within %d ms "
                               "(last status: %u); its log is above",
                               p->what, path, port, timeout_ms, last);
        }
        usleep(10000);
    }
}

static int serve_start(struct hx *x)
{
    char listen[64], threads[16];

    snprintf(x->serve.log, sizeof(x->serve.log), "%s/mcache-serve.log", x->dir);
    x->serve.what = "mcache-serve";
    snprintf(threads, sizeof(threads), "%u", x->workers);
    for (int attempt = 0; attempt < 3; attempt++) {
        const char *argv[] = {x->serve_bin, "--store",      x->store,   "--cache", x->d.cache,
                              "--shm-dir",  x->b->shm_work, "--socket", x->d.sock, "--listen",
                              listen,       "--threads",    threads,    NULL};
        int rc;

        x->serve_port = loopback_free_port();
        if (x->serve_port < 0)
            return bench_error("http: no free port on 127.0.0.1");
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", x->serve_port);
        if (proc_start(&x->serve, argv))
            return -1;
        rc = wait_ready(&x->serve, x->serve_port, "/readyz", 30000);
        if (rc <= 0)
            return rc;
        if (!port_taken(&x->serve))
            return -1;
        bench_note("http: port %d was taken before mcache-serve bound it (attempt %d of 3)",
                   x->serve_port, attempt + 1);
        log_clear(&x->serve);
    }
    return bench_error("http: mcache-serve did not start (tried 3 ports); its log is above");
}

/* nginx's workers: its master's children, registered so that no cleanup leaves them behind. */
static void nginx_workers(struct hx *x)
{
    DIR *d = opendir("/proc");
    struct dirent *e;

    for (unsigned i = 0; i < x->nngx_workers; i++)
        cleanup_del_pid(x->ngx_workers[i]);
    x->nngx_workers = 0;
    while (d && (e = readdir(d)) && x->nngx_workers < 16) {
        char path[300], stat[512], *close_paren;
        int pid = atoi(e->d_name), ppid = 0;
        FILE *f;

        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/stat", pid);
        if (!(f = fopen(path, "r")))
            continue;
        /* "pid (comm) state ppid ...": comm may hold ')', so read on from the last one */
        if (fgets(stat, sizeof(stat), f) && (close_paren = strrchr(stat, ')')) &&
            sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == x->nginx.pid) {
            x->ngx_workers[x->nngx_workers++] = pid;
            cleanup_add_pid(pid);
        }
        fclose(f);
    }
    if (d)
        closedir(d);
}

static int write_file(const char *path, const char *text, size_t n)
{
    FILE *f = fopen(path, "w");
    bool ok = f && fwrite(text, 1, n, f) == n;

    if ((f && fclose(f) != 0) || !ok)
        return bench_error("http: writing %s: %s", path, strerror(errno));
    return 0;
}

static int nginx_conf(struct hx *x, const char *path)
{
    char conf[4096], tmp[800];
    int n;

    snprintf(tmp, sizeof(tmp), "%s/tmp", x->ngx);
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return bench_error("http: creating %s: %s", tmp, strerror(errno));
    n = snprintf(conf, sizeof(conf),
                 "# mcache-bench http: a private nginx on loopback, stopped by the bench\n"
                 "%s"
                 "worker_processes %u;\n"
                 "error_log %s/error.log warn;\n"
                 "events { worker_connections 1024; }\n"
                 "http {\n"
                 "  access_log off;\n"
                 "  sendfile on;\n"
                 "  tcp_nopush on;\n"
                 "  keepalive_requests 1000000;\n"
                 "  types { application/json json; application/octet-stream bin; }\n"
                 "  default_type application/octet-stream;\n"
                 "  client_body_temp_path %s/body;\n"
                 "  proxy_temp_path %s/proxy;\n"
                 "  fastcgi_temp_path %s/fastcgi;\n"
                 "  uwsgi_temp_path %s/uwsgi;\n"
                 "  scgi_temp_path %s/scgi;\n"
                 "  server {\n"
                 "    listen 127.0.0.1:%d;\n"
                 "    root %s;\n"
                 "  }\n"
                 "}\n",
                 /* As root, its workers would run as nobody, who cannot enter the run's 0700
                    directories; as anyone else the directive would only draw a warning. */
                 geteuid() == 0 ? "user root;\n" : "", x->workers, x->ngx, tmp, tmp, tmp, tmp, tmp,
                 x->nginx_port, x->www);
    if (n >= (int)sizeof(conf))
        return bench_error("http: nginx's configuration is too long (paths too long?)");
    return write_file(path, conf, (size_t)n);
}

static int nginx_start(struct hx *x)
{
    char cpath[800], glob[800], prefix[800];
    const char *argv[] = {x->nginx_bin, "-p",         prefix, "-c", cpath,
                          "-e",         x->nginx.log, "-g",   glob, NULL};

    snprintf(prefix, sizeof(prefix), "%s/", x->ngx);
    snprintf(cpath, sizeof(cpath), "%s/nginx.conf", x->ngx);
    snprintf(glob, sizeof(glob), "daemon off; pid %s/nginx.pid;", x->ngx);
    snprintf(x->nginx.log, sizeof(x->nginx.log), "%s/error.log", x->ngx);
    x->nginx.what = "nginx";
    /* If its master is killed (cleanup on SIGINT), its workers become ours, so cleanup reaps them.
     */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (int attempt = 0; attempt < 3; attempt++) {
        int rc;

        x->nginx_port = loopback_free_port();
        if (x->nginx_port < 0)
            return bench_error("http: no free port on 127.0.0.1");
        if (nginx_conf(x, cpath) || proc_start(&x->nginx, argv))
            return -1;
        rc = wait_ready(&x->nginx, x->nginx_port, "/meta.json", 30000);
        if (rc == 0) {
            nginx_workers(x);
            return 0;
        }
        if (rc < 0 || !port_taken(&x->nginx))
            return -1;
        bench_note("http: port %d was taken before nginx bound it (attempt %d of 3)", x->nginx_port,
                   attempt + 1);
        log_clear(&x->nginx);
    }
    return bench_error("http: nginx did not start (tried 3 ports); its log is above");
}

/* Stop nginx by its pid: SIGTERM (its fast shutdown), then SIGKILL, workers too. */
static void nginx_stop(struct hx *x)
{
    proc_stop(&x->nginx, SIGTERM);
    for (unsigned i = 0; i < x->nngx_workers; i++) {
        char path[64], stat[512], *close_paren;
        FILE *f;
        bool ours = false;
        int ppid = 0;

        /* A worker outlives its master only if something went wrong; then it is our child
           (subreaper), which no other process of that pid could be. */
        snprintf(path, sizeof(path), "/proc/%d/stat", (int)x->ngx_workers[i]);
        f = fopen(path, "r");
        if (f) {
            ours = fgets(stat, sizeof(stat), f) && (close_paren = strrchr(stat, ')')) &&
                   sscanf(close_paren + 1, " %*c %d", &ppid) == 1 && ppid == getpid();
            fclose(f);
        }
        if (ours)
            kill(x->ngx_workers[i], SIGKILL);
        cleanup_del_pid(x->ngx_workers[i]);
        while (ours && waitpid(x->ngx_workers[i], NULL, 0) < 0 && errno == EINTR)
            ;
    }
    x->nngx_workers = 0;
    prctl(PR_SET_CHILD_SUBREAPER, 0);
}

/* ---- wrk ---- */

/* "1.23ms" -> milliseconds (wrk's units: us, ms, s, m, h). */
static bool wrk_time_ms(const char *s, double *ms)
{
    char unit[8] = "";
    double v;

    if (sscanf(s, "%lf%7s", &v, unit) < 1)
        return false;
    if (!strcmp(unit, "us"))
        *ms = v / 1e3;
    else if (!strcmp(unit, "ms"))
        *ms = v;
    else if (!strcmp(unit, "s"))
        *ms = v * 1e3;
    else if (!strcmp(unit, "m"))
        *ms = v * 60e3;
    else if (!strcmp(unit, "h"))
        *ms = v * 3600e3;
    else
        return false;
    return true;
}

/* Parse wrk --latency's report: requests/s and the 99th percentile; errors say what is wrong. */
static int wrk_parse(const char *out, const char *url, double *rps, double *p99_ms)
{
    const char *p;
    unsigned long long non2xx = 0, cerr = 0, rerr = 0, werr = 0, terr = 0;

    *rps = -1;
    *p99_ms = -1;
    if ((p = strstr(out, "Requests/sec:")))
        *rps = strtod(p + 13, NULL);
    if ((p = strstr(out, "Latency Distribution")) && (p = strstr(p, "99%")))
        wrk_time_ms(p + 3 + strspn(p + 3, " \t"), p99_ms);
    if ((p = strstr(out, "Non-2xx or 3xx responses:")))
        non2xx = strtoull(p + 26, NULL, 10);
    if ((p = strstr(out, "Socket errors:")))
        sscanf(p, "Socket errors: connect %llu, read %llu, write %llu, timeout %llu", &cerr, &rerr,
               &werr, &terr);
    if (*rps <= 0 || *p99_ms < 0) {
        fprintf(stderr, "---- wrk's output ----\n%s---- end ----\n", out);
        return bench_error("http: cannot read requests/s and the 99th percentile from wrk's "
                           "output for %s (above)",
                           url);
    }
    if (non2xx) {
        fprintf(stderr, "---- wrk's output ----\n%s---- end ----\n", out);
        return bench_error("http: %llu answers of %s were not 2xx or 3xx (wrk's output is above): "
                           "the figure would be of errors",
                           non2xx, url);
    }
    if (cerr || rerr || werr || terr)
        bench_note("http: wrk saw socket errors on %s: connect %llu, read %llu, write %llu, "
                   "timeout %llu",
                   url, cerr, rerr, werr, terr);
    return 0;
}

/* wrk -t1 -c8 -dNs --latency on url, bounded: killed if it runs 30 s past its duration. */
static int wrk_run(struct hx *x, int port, const char *path, double *rps, double *p99_ms)
{
    char url[512], dur[16], out[16384];
    const char *argv[] = {x->wrk_bin,  "-t1", "-c" WRK_CONNS, "-d", dur,
                          "--timeout", "10s", "--latency",    url,  NULL};
    uint64_t deadline;
    struct worker w;
    size_t n = 0;
    int fd;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    snprintf(dur, sizeof(dur), "%us", x->wrk_s);
    if (bench_spawn(&w, x->wrk_bin, argv, true))
        return -1;
    fd = fileno(w.out);
    deadline = mc_mono_ns() + (uint64_t)(x->wrk_s + 30) * 1000000000ull;
    for (;;) {
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        uint64_t now = mc_mono_ns();
        ssize_t got;

        if (now >= deadline) {
            worker_kill(&w);
            return bench_error("http: wrk on %s did not end within 30 s of its %u s run; killed "
                               "it",
                               url, x->wrk_s);
        }
        if (poll(&pf, 1, (int)((deadline - now) / 1000000 + 1)) <= 0)
            continue;
        got = read(fd, out + n, sizeof(out) - 1 - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        if (n == sizeof(out) - 1)
            break;
    }
    out[n] = '\0';
    if (worker_finish(&w))
        return bench_error("http: wrk on %s failed (its message is above)", url);
    return wrk_parse(out, url, rps, p99_ms);
}

/* ---- the store and the files ---- */

/* A file of size bytes of the pattern from word first; *sum its sum. */
static int pattern_file(const char *path, uint64_t first, uint64_t size, uint64_t *sum)
{
    const size_t chunk = 4 * MiB;
    char *buf = xrealloc(NULL, chunk);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644), rc = 0;

    *sum = 0;
    if (fd < 0) {
        free(buf);
        return bench_error("http: creating %s: %s", path, strerror(errno));
    }
    for (uint64_t off = 0; off < size && !rc; off += chunk) {
        size_t n = size - off < chunk ? (size_t)(size - off) : chunk;

        *sum += model_fill(buf, first + off / 8, n);
        if (write(fd, buf, n) != (ssize_t)n)
            rc = bench_error("http: writing %s: %s", path, strerror(errno));
    }
    if (close(fd) != 0 && !rc)
        rc = bench_error("http: writing %s: %s", path, strerror(errno));
    free(buf);
    return rc;
}

static int make_store(struct hx *x)
{
    const struct mc_registry_opts ro = {.flags = MC_REGISTRY_CREATE};
    const struct mc_push_opts resident = {.preload = true}, cold = {.preload = false};
    struct mc_registry *reg;
    uint64_t sum_up;
    int rc;

    if (pattern_file(x->src, 0, x->size, &x->sum_arena) ||
        pattern_file(x->src_store, 1ull << 40, x->size, &x->sum_store) ||
        pattern_file(x->src_up, 2ull << 40, x->size, &sum_up))
        return -1;
    if (mc_registry_open(x->store, &ro, &reg))
        return bench_error("http: creating the store %s: %s", x->store, mc_last_error());
    rc = mc_registry_push(reg, "m", V_ARENA, x->src, &resident, NULL) ||
         mc_registry_push(reg, "m", V_STORE, x->src_store, &cold, NULL);
    if (rc)
        rc = bench_error("http: pushing m to %s: %s", x->store, mc_last_error());
    mc_registry_close(reg);
    return rc;
}

/* mcached has 1.0.0 resident (it preloads it at start). */
static int wait_resident(struct hx *x)
{
    uint64_t t0 = mc_mono_ns();

    for (;;) {
        json_t *j;
        long long n;

        if (mcd_call(&x->d, "status", 0, NULL, 10000, &j))
            return -1;
        n = mcd_json_int(j, "arena", "models_resident");
        json_decref(j);
        if (n >= 1)
            return 0;
        if (mc_mono_ns() - t0 > 60000000000ull) {
            mcd_log_tail(&x->d, 15);
            return bench_error("http: mcached has not loaded m@%s within 60 s (its log is above)",
                               V_ARENA);
        }
        usleep(5000);
    }
}

/*
 * GET path in full once: 200, size bytes summing to sum, and (source not
 * NULL) the Mcache-Source header it must carry; keep: the body as fetched.
 */
static int check_get(struct conn *c, const char *server, const char *path, uint64_t size,
                     uint64_t sum, const char *source)
{
    struct reply r;
    int rc = 0;

    if (http_call(c, "GET", path, NULL, -1, 0, true, &r))
        return -1;
    if (r.status != 200)
        return http_unexpected(server, "GET", path, 200, &r);
    if (r.length != size)
        rc = bench_error("http: %s sent %llu bytes for GET %s; the artifact has %llu", server,
                         (unsigned long long)r.length, path, (unsigned long long)size);
    else if (model_sum(r.body, r.length) != sum)
        rc = bench_error("http: %s sent the wrong bytes for GET %s (their sum differs from the "
                         "artifact's)",
                         server, path);
    else if (source && strcmp(r.source, source))
        rc = bench_error("http: %s served GET %s with Mcache-Source \"%s\", not \"%s\": the "
                         "figure would be of the other path",
                         server, path, r.source, source);
    free(r.body);
    return rc;
}

/*
 * Fetch the version's JSON from mcache-serve and put the same bytes where
 * nginx serves /meta.json; then check every download path once.
 */
static int prepare_files(struct hx *x)
{
    static struct conn c; /* its buffer */
    char path[800], meta[256], arena[256], store[256];
    struct reply r;
    int rc;

    snprintf(meta, sizeof(meta), "/v1/models/m/versions/%s", V_ARENA);
    snprintf(arena, sizeof(arena), "/v1/models/m/versions/%s/artifact", V_ARENA);
    snprintf(store, sizeof(store), "/v1/models/m/versions/%s/artifact", V_STORE);
    if (conn_open(&c, x->serve_port))
        return bench_error("http: connecting to mcache-serve: %s", strerror(errno));
    rc = http_call(&c, "GET", meta, NULL, -1, 0, true, &r);
    if (!rc && r.status != 200)
        rc = http_unexpected(SERVE, "GET", meta, 200, &r);
    if (!rc) {
        snprintf(path, sizeof(path), "%s/meta.json", x->www);
        rc = write_file(path, r.body, (size_t)r.length);
        bench_note("http: the metadata answer (m@%s's JSON) is %llu bytes; nginx serves the same "
                   "bytes as a file",
                   V_ARENA, (unsigned long long)r.length);
        free(r.body);
    }
    if (!rc)
        rc = check_get(&c, SERVE, arena, x->size, x->sum_arena, "arena") ||
             check_get(&c, SERVE, store, x->size, x->sum_store, "store");
    conn_close(&c);
    return rc ? -1 : 0;
}

/* nginx serves the artifact's bytes. */
static int nginx_check(struct hx *x)
{
    static struct conn c;
    int rc;

    if (conn_open(&c, x->nginx_port))
        return bench_error("http: connecting to nginx: %s", strerror(errno));
    rc = check_get(&c, NGINX_SF, "/artifact.bin", x->size, x->sum_arena, NULL);
    conn_close(&c);
    return rc;
}

/* ---- the measurements ---- */

/* GETs of path on one keep-alive connection for at least dl_s seconds: GB/s. */
static int download(struct hx *x, const char *server, int port, const char *path, double *gbps)
{
    static struct conn c;
    uint64_t t0, bytes = 0, limit = (uint64_t)(x->dl_s * 1e9);
    double s;
    int rc = 0;

    if (conn_open(&c, port))
        return bench_error("http: connecting to %s on port %d: %s", server, port, strerror(errno));
    t0 = mc_mono_ns();
    do {
        struct reply r;

        rc = http_call(&c, "GET", path, NULL, -1, 0, false, &r);
        if (!rc && r.status != 200)
            rc = http_unexpected(server, "GET", path, 200, &r);
        if (!rc && r.length != x->size)
            rc = bench_error("http: %s sent %llu bytes for GET %s (expected %llu)", server,
                             (unsigned long long)r.length, path, (unsigned long long)x->size);
        bytes += r.length;
    } while (!rc && mc_mono_ns() - t0 < limit);
    s = (double)(mc_mono_ns() - t0) / 1e9;
    conn_close(&c);
    *gbps = (double)bytes / s / 1e9;
    return rc;
}

/* PUT the upload file as m@3.0.run, streamed; from connect to the 201: GB/s. */
static int push(struct hx *x, unsigned run, double *gbps)
{
    static struct conn c;
    static const char headers[] = "Content-Type: application/octet-stream\r\n"
                                  "Mcache-Meta: {\"preload\": false}\r\n";
    char path[128];
    struct reply r;
    uint64_t t0;
    int fd = open(x->src_up, O_RDONLY | O_CLOEXEC), rc;

    if (fd < 0)
        return bench_error("http: opening %s: %s", x->src_up, strerror(errno));
    snprintf(path, sizeof(path), "/v1/models/m/versions/3.0.%u", run);
    t0 = mc_mono_ns();
    if (conn_open(&c, x->serve_port)) {
        close(fd);
        return bench_error("http: connecting to mcache-serve: %s", strerror(errno));
    }
    rc = http_call(&c, "PUT", path, headers, fd, x->size, false, &r);
    *gbps = (double)x->size / ((double)(mc_mono_ns() - t0) / 1e9) / 1e9;
    conn_close(&c);
    close(fd);
    if (!rc && r.status != 201)
        rc = http_unexpected(SERVE, "PUT", path, 201, &r);
    return rc;
}

/*
 * The registry's own push of the same file as m@4.0.run (mc_registry_push,
 * what `mcache push` does: copy into the store hashing, fsync, one journal
 * record): what the push costs without HTTP.
 */
static int lib_push(struct hx *x, unsigned run, double *gbps)
{
    const struct mc_push_opts po = {.preload = false};
    struct mc_registry *reg;
    char version[32];
    uint64_t t0 = mc_mono_ns();
    int rc;

    snprintf(version, sizeof(version), "4.0.%u", run);
    if (mc_registry_open(x->store, NULL, &reg))
        return bench_error("http: opening the store %s: %s", x->store, mc_last_error());
    rc = mc_registry_push(reg, "m", version, x->src_up, &po, NULL);
    mc_registry_close(reg);
    *gbps = (double)x->size / ((double)(mc_mono_ns() - t0) / 1e9) / 1e9;
    return rc ? bench_error("http: pushing m@%s to %s: %s", version, x->store, mc_last_error()) : 0;
}

/* The disk's rate for the same bytes: copy the upload file beside the store, fsync: GB/s. */
static int disk_write(struct hx *x, double *gbps)
{
    const size_t chunk = 1 * MiB;
    char path[800], *buf = xrealloc(NULL, chunk);
    uint64_t t0 = mc_mono_ns();
    int in = open(x->src_up, O_RDONLY | O_CLOEXEC), out, rc = 0;

    snprintf(path, sizeof(path), "%s/disk-write", x->dir);
    out = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (in < 0 || out < 0)
        rc = bench_error("http: opening %s or %s: %s", x->src_up, path, strerror(errno));
    for (uint64_t done = 0; !rc && done < x->size;) {
        ssize_t n = read(in, buf, chunk);

        if (n <= 0 || write(out, buf, (size_t)n) != n)
            rc = bench_error("http: copying %s to %s: %s", x->src_up, path,
                             n ? strerror(errno) : "short file");
        done += n > 0 ? (uint64_t)n : 0;
    }
    if (!rc && fsync(out) != 0)
        rc = bench_error("http: fsync of %s: %s", path, strerror(errno));
    *gbps = (double)x->size / ((double)(mc_mono_ns() - t0) / 1e9) / 1e9;
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    unlink(path);
    free(buf);
    return rc;
}

static int one_run(struct hx *x, unsigned run)
{
    char meta[128], arena[128], store[128];
    bool nginx_first = run % 2 == 0;
    double v, p99;

    snprintf(meta, sizeof(meta), "/v1/models/m/versions/%s", V_ARENA);
    snprintf(arena, sizeof(arena), "/v1/models/m/versions/%s/artifact", V_ARENA);
    snprintf(store, sizeof(store), "/v1/models/m/versions/%s/artifact", V_STORE);
    for (int i = 0; i < 2; i++) {
        bool nginx = (i == 0) == nginx_first;

        bench_progress("http: run %u/%u, metadata GET on %s (wrk, %u s)", run + 1, x->runs,
                       nginx ? "nginx" : "mcache-serve", x->wrk_s);
        if (wrk_run(x, nginx ? x->nginx_port : x->serve_port, nginx ? "/meta.json" : meta, &v,
                    &p99))
            return -1;
        bench_add(x->b, nginx ? NGINX_JSON : SERVE, M_RPS, "requests/s", v);
        bench_add(x->b, nginx ? NGINX_JSON : SERVE, M_P99, "ms", p99);
    }
    bench_progress("http: run %u/%u, downloads", run + 1, x->runs);
    for (int i = 0; i < 3; i++) {
        int k = nginx_first ? i : 2 - i;
        const char *sys = k == 0 ? NGINX_SF : k == 1 ? SERVE_ARENA : SERVE_STORE;

        if (download(x, sys, k ? x->serve_port : x->nginx_port,
                     k == 0   ? "/artifact.bin"
                     : k == 1 ? arena
                              : store,
                     &v))
            return -1;
        bench_add(x->b, sys, x->m_dl, "GB/s", v);
    }
    bench_progress("http: run %u/%u, a push and the disk", run + 1, x->runs);
    for (int i = 0; i < 3; i++) {
        int k = nginx_first ? i : 2 - i;
        const char *sys = k == 0 ? DISK : k == 1 ? PUSH : LIBPUSH;

        if (k == 0 ? disk_write(x, &v) : k == 1 ? push(x, run, &v) : lib_push(x, run, &v))
            return -1;
        bench_add(x->b, sys, x->m_up, "GB/s", v);
    }
    return 0;
}

/*
 * The median over the runs of sys's value over base's in the same run:
 * each pair was measured seconds apart, so on a host whose load drifts
 * between runs it is steadier than the ratio of the two medians.
 */
static double paired(struct bench *b, const char *sys, const char *base, const char *metric,
                     const char *unit)
{
    const struct bench_row *r = bench_row(b, sys, metric, unit),
                           *q = bench_row(b, base, metric, unit);
    size_t n = r->n < q->n ? r->n : q->n;
    double *v = xrealloc(NULL, (n ? n : 1) * sizeof(*v)), m;

    for (size_t i = 0; i < n; i++)
        v[i] = r->runs[i] / q->runs[i];
    m = stat_median(v, n);
    free(v);
    return m;
}

static bool tools_found(struct hx *x)
{
    bool ok = true;

    if (access("/usr/sbin/nginx", X_OK) == 0)
        snprintf(x->nginx_bin, sizeof(x->nginx_bin), "/usr/sbin/nginx");
    else if (!find_on_path("nginx", x->nginx_bin, sizeof(x->nginx_bin))) {
        bench_note("http: nginx is not installed: the scenario is skipped (apt-get install "
                   "nginx-light)");
        ok = false;
    }
    if (!find_on_path("wrk", x->wrk_bin, sizeof(x->wrk_bin))) {
        bench_note("http: wrk is not installed: the scenario is skipped (apt-get install wrk)");
        ok = false;
    }
    return ok;
}

static int measure(struct hx *x)
{
    char art[800];
    uint64_t arena = (x->size + 64 * MiB + 2 * MiB - 1) / (2 * MiB) * (2 * MiB);
    int rc;

    snprintf(art, sizeof(art), "%s/artifact.bin", x->www);
    if (fs_require(x->b->o.shm_dir, arena + 8 * MiB, "the http scenario (an arena)") ||
        fs_require(x->dir, (x->runs + 6) * x->size + 64 * MiB,
                   "the http scenario (a store, its pushes and nginx's files)"))
        return -1;
    bench_progress("http: writing three %llu MiB artifacts and the store",
                   (unsigned long long)(x->size / MiB));
    rc = make_store(x);
    /* nginx's copy of 1.0.0's bytes: a hard link, the very file pushed (page-cached). */
    if (!rc && link(x->src, art) != 0)
        rc = bench_error("http: linking %s to %s: %s", x->src, art, strerror(errno));
    if (!rc)
        rc = mcd_init(x->b, &x->d, "http", x->store, arena, 0, NULL) ||
             mcd_start(&x->d, false, NULL) || mcd_wait_ping(&x->d, 60000) || wait_resident(x);
    if (!rc) {
        bench_progress("http: starting mcache-serve (%u threads)", x->workers);
        rc = serve_start(x) || prepare_files(x);
    }
    if (!rc) {
        bench_progress("http: starting nginx (%u workers)", x->workers);
        rc = nginx_start(x) || nginx_check(x);
    }
    for (unsigned run = 0; run < x->runs && !rc; run++)
        rc = one_run(x, run);
    nginx_stop(x);
    proc_stop(&x->serve, SIGTERM);
    mcd_drop(&x->d);
    return rc ? -1 : 0;
}

int sc_http(struct bench *b)
{
    static struct hx x; /* paths and buffers */
    char title[200], sz[32];
    cpu_set_t cpus;
    int rc;

    memset(&x, 0, sizeof(x));
    x.b = b;
    if (!tools_found(&x))
        return 0;
    if (serve_find(b, x.serve_bin, sizeof(x.serve_bin)))
        return -1;
    x.size = b->o.quick ? 16 * MiB : 64 * MiB;
    x.runs = b->o.runs;
    x.wrk_s = b->o.quick ? 1 : 5;
    x.dl_s = b->o.quick ? 0.25 : 2;
    /* Both servers as many workers as there are CPUs to run them (at most MAX_WORKERS). */
    x.workers = sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? (unsigned)CPU_COUNT(&cpus) : 1;
    x.workers = x.workers < 1 ? 1 : x.workers > MAX_WORKERS ? MAX_WORKERS : x.workers;
    snprintf(x.dir, sizeof(x.dir), "%s/http", b->tmp_work);
    snprintf(x.store, sizeof(x.store), "%s/store", x.dir);
    snprintf(x.ngx, sizeof(x.ngx), "%s/nginx", x.dir);
    snprintf(x.www, sizeof(x.www), "%s/nginx/www", x.dir);
    snprintf(x.src, sizeof(x.src), "%s/artifact-%s", x.dir, V_ARENA);
    snprintf(x.src_store, sizeof(x.src_store), "%s/artifact-%s", x.dir, V_STORE);
    snprintf(x.src_up, sizeof(x.src_up), "%s/artifact-push", x.dir);
    fmt_bytes(x.size, sz, sizeof(sz));
    snprintf(x.m_dl, sizeof(x.m_dl), "artifact download, %s", sz);
    snprintf(x.m_up, sizeof(x.m_up), "push of %s", sz);
    if (mkdir(x.dir, 0700) != 0 || mkdir(x.ngx, 0700) != 0 || mkdir(x.www, 0700) != 0)
        return bench_error("http: creating %s: %s", x.www, strerror(errno));
    /* Rows in this order. */
    bench_row(b, NGINX_JSON, M_RPS, "requests/s");
    bench_row(b, SERVE, M_RPS, "requests/s");
    bench_row(b, NGINX_JSON, M_P99, "ms");
    bench_row(b, SERVE, M_P99, "ms");
    bench_row(b, NGINX_SF, x.m_dl, "GB/s");
    bench_row(b, SERVE_ARENA, x.m_dl, "GB/s");
    bench_row(b, SERVE_STORE, x.m_dl, "GB/s");
    bench_row(b, DISK, x.m_up, "GB/s");
    bench_row(b, PUSH, x.m_up, "GB/s");
    bench_row(b, LIBPUSH, x.m_up, "GB/s");
    rc = measure(&x);
    rm_tree(x.dir);
    if (rc)
        return -1;
    bench_base_system(b, M_RPS, NGINX_JSON);
    bench_base_system(b, M_P99, NGINX_JSON);
    bench_base_system(b, x.m_dl, NGINX_SF);
    bench_base_system(b, x.m_up, DISK);
    snprintf(title, sizeof(title),
             "mcache-serve beside nginx and the disk (%u runs, %u workers each, %s artifact)",
             x.runs, x.workers, sz);
    bench_print_table(b, title);
    bench_target(b, bench_value(b, SERVE, M_RPS) / bench_value(b, NGINX_JSON, M_RPS), false, 0.5,
                 "metadata GET requests/s, mcache-serve / nginx's static JSON (x)");
    bench_target(b, bench_value(b, SERVE, M_P99) / bench_value(b, NGINX_JSON, M_P99), true, 2,
                 "metadata GET p99 latency, mcache-serve / nginx's static JSON (x)");
    bench_target(b, bench_value(b, SERVE_ARENA, x.m_dl) / bench_value(b, NGINX_SF, x.m_dl), false,
                 0.8, "%s resident in the arena, mcache-serve / nginx sendfile (x)", x.m_dl);
    bench_target(b, bench_value(b, SERVE_STORE, x.m_dl) / bench_value(b, NGINX_SF, x.m_dl), false,
                 0.8, "%s not resident (store file), mcache-serve / nginx sendfile (x)", x.m_dl);
    bench_note("http: a push over HTTP streams at %.2fx the disk's write + fsync of the same "
               "bytes (%.3g vs %.3g GB/s); the registry's own push of the file, without HTTP, "
               "at %.2fx",
               bench_value(b, PUSH, x.m_up) / bench_value(b, DISK, x.m_up),
               bench_value(b, PUSH, x.m_up), bench_value(b, DISK, x.m_up),
               bench_value(b, LIBPUSH, x.m_up) / bench_value(b, DISK, x.m_up));
    bench_note("http: the same ratios run by run (each pair measured seconds apart), median over "
               "the runs: metadata requests/s %.2fx, p99 %.2fx; download from the arena %.2fx, "
               "from the store %.2fx; push %.2fx the disk, the registry's own push %.2fx",
               paired(b, SERVE, NGINX_JSON, M_RPS, "requests/s"),
               paired(b, SERVE, NGINX_JSON, M_P99, "ms"),
               paired(b, SERVE_ARENA, NGINX_SF, x.m_dl, "GB/s"),
               paired(b, SERVE_STORE, NGINX_SF, x.m_dl, "GB/s"),
               paired(b, PUSH, DISK, x.m_up, "GB/s"), paired(b, LIBPUSH, DISK, x.m_up, "GB/s"));
    return 0;
}
