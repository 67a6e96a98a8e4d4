/*
 * main.c - mcached: options, the config file re-read on SIGHUP, the event
 * loop, and main(). Start-up and shutdown are lifecycle.c.
 *
 * One thread, one epoll loop over: the control socket and its clients, an
 * inotify watch on the store (registry changes made by the CLI), a
 * signalfd (SIGTERM/SIGINT stop, SIGHUP reloads the config), and the
 * io_uring completion eventfd. A 100 ms tick does reclamation, timeouts and
 * housekeeping, and updates the service manager's STATUS=; the loop itself
 * sends the watchdog's pings (notify.h), waking in time for each.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "common/clock.h"
#include "loader/daemon.h"
#include "loader/deploy.h"
#include "loader/health.h"
#include "loader/log.h"
#include "common/err.h"

#define EXIT_USAGE  2
#define EXIT_LOCKED 75 /* another mcached serves this cache */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: mcached [OPTIONS]\n"
            "\n"
            "The mcache loader daemon: the one writer of a cache's shared-memory arena. It\n"
            "mirrors the registry in STORE into the arena, loads models with io_uring and\n"
            "verifies them, and serves the control socket used by `mcache` and workers.\n"
            "Runs in the foreground and logs to stderr. Under systemd (Type=notify) it\n"
            "says READY=1 once it serves, STATUS= lines, STOPPING=1 and watchdog pings\n"
            "over $NOTIFY_SOCKET, and logs with syslog priorities when stderr is the\n"
            "journal ($JOURNAL_STREAM); see docs/service.md.\n"
            "\n"
            "Options (each can also be set in the config file, without the dashes):\n"
            "  --store DIR          registry store (default $MCACHE_STORE or ./mcache-data;\n"
            "                       created if missing)\n"
            "  --registry URL       a registry shared by hosts: postgres://USER@HOST:PORT/DB\n"
            "                       (default $MCACHE_REGISTRY; none: the store's journal)\n"
            "  --artifacts URL      where artifacts are: s3://BUCKET/PREFIX (default\n"
            "                       $MCACHE_ARTIFACTS; none: the store's models/)\n"
            "  --artifacts-creds FILE  the object store's endpoint and keys as AWS_*=VALUE\n"
            "                       lines, mode 0600 (default $MCACHE_ARTIFACTS_CREDS; none:\n"
            "                       the AWS_* variables)\n"
            "  --keep-local, --no-keep-local  keep a node-local copy in the store of what\n"
            "                       loads from the object store, and load it from there\n"
            "                       first (default on; $MCACHE_KEEP_LOCAL=0 turns it off)\n"
            "  --cache NAME         cache name (default $MCACHE_CACHE or \"default\")\n"
            "  --size SIZE          arena size, e.g. 2G (default: a quarter of available memory,\n"
            "                       256M..4G); committed up front\n"
            "  --index-size SIZE    part of the arena for the index (default size/16)\n"
            "  --shm-dir DIR        where the arena lives (default $MCACHE_SHM_DIR or /dev/shm;\n"
            "                       a hugetlbfs mount or huge=always tmpfs for huge pages)\n"
            "  --base ADDR          virtual address of the arena in every process (default:\n"
            "                       the cache name's own 16 GiB slot in 0x7e8000000000..\n"
            "                       0x7ec000000000, so a worker can attach several caches).\n"
            "                       Give one, with --recreate for an existing arena, if two\n"
            "                       caches' names share a slot (workers report the address\n"
            "                       in use) or for an arena over 16G; see docs/arena.md\n"
            "  --socket PATH        control socket (default <shm-dir>/mcache.<cache>.sock)\n"
            "  --admin-group GROUP  group that may change state (besides this uid and root)\n"
            "  --reader-group GROUP group that may read models (attach), read status and\n"
            "                       request loads (default: this uid's primary group; the\n"
            "                       arena is 0640, reader table and socket 0660). \"*\": ANY\n"
            "                       local user (0644/0666/0666; logged as a warning)\n"
            "  --reader-slots N     reader table slots, one per reading thread (default 1024)\n"
            "  --queue-depth N      reads in flight (default 8)\n"
            "  --chunk-size SIZE    bytes per read (default 1M, 4M on 2 MiB pages)\n"
            "  --max-loads N        files loading at once (default 4)\n"
            "  --io-uring on|off    use io_uring (default on; off reads with pread)\n"
            "  --fixed-buffers on|off  register the arena with io_uring (default on)\n"
            "  --direct-io on|off   read with O_DIRECT where the file system allows (on)\n"
            "  --preload on|off     load aliased, pinned and marked versions at start (on)\n"
            "  --log-level LEVEL    debug, info, warn or error (default info)\n"
            "  --alert-cmd CMD      run `/bin/sh -c CMD` with each alert (a rollback, a failed\n"
            "                       health gate, a threshold breach) as JSON on its stdin\n"
            "                       (see docs/deployments.md)\n"
            "  --config FILE        read options from FILE (see docs/mcached.conf)\n"
            "  --recreate           discard an existing arena instead of adopting it\n"
            "  -h, --help           this text\n"
            "  --version            print the version\n"
            "\n"
            "Signals: SIGTERM or SIGINT stop cleanly (the arena stays for a warm restart);\n"
            "SIGHUP re-reads the config file (new groups apply to the files at once).\n"
            "Exit status: 0 stopped cleanly, 1 failed, 2 bad usage or config,\n"
            "75 another mcached already serves this cache.\n"
            "\n"
            "Example:\n"
            "  mcached --store /srv/models --size 8G --reader-group inference\n");
}

static const struct option longopts[] = {
    {"store", required_argument, 0, 0},         {"cache", required_argument, 0, 0},
    {"registry", required_argument, 0, 0},      {"artifacts", required_argument, 0, 0},
    {"artifacts-creds", required_argument, 0, 0}, {"keep-local", optional_argument, 0, 0},
    {"no-keep-local", no_argument, 0, 'L'},
    {"size", required_argument, 0, 0},          {"index-size", required_argument, 0, 0},
    {"shm-dir", required_argument, 0, 0},       {"base", required_argument, 0, 0},
    {"socket", required_argument, 0, 0},        {"admin-group", required_argument, 0, 0},
    {"reader-group", required_argument, 0, 0},  {"reader-slots", required_argument, 0, 0},
    {"queue-depth", required_argument, 0, 0},   {"chunk-size", required_argument, 0, 0},
    {"max-loads", required_argument, 0, 0},     {"io-uring", required_argument, 0, 0},
    {"fixed-buffers", required_argument, 0, 0}, {"preload", required_argument, 0, 0},
    {"direct-io", required_argument, 0, 0},     {"alert-cmd", required_argument, 0, 0},
    {"log-level", required_argument, 0, 0},     {"config", required_argument, 0, 'c'},
    {"recreate", no_argument, 0, 'R'},          {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},           {0, 0, 0, 0},
};

/* Defaults, then the config file, then the command line. */
/* The command line, kept: SIGHUP re-applies it over the re-read file. */
static int saved_argc;
static char **saved_argv;

/* Apply the command line's options to cfg (they win over the file). 0 or EXIT_USAGE. */
static int apply_cmdline(int argc, char **argv, struct mc_config *cfg)
{
    int c, idx;

    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'R') {
            cfg->recreate = true;
        } else if (c == 'L') {
            cfg->keep_local = 0;
        } else if (c == 0 && mc_config_set(cfg, longopts[idx].name, optarg ? optarg : "on")) {
            mc_err_prefix(MC_EINVAL, "--%s", longopts[idx].name);
            return EXIT_USAGE;
        }
    }
    return 0;
}

static int parse_args(int argc, char **argv, struct mc_config *cfg, const char **cfg_path)
{
    int c, idx;

    optind = 1;
    opterr = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, &idx)) != -1) {
        if (c == '?')
            return EXIT_USAGE;
        if (c == 'h') {
            usage(stdout);
            exit(0);
        }
        if (c == 'V') {
            printf("mcached %d.%d.%d (arena format %u)\n", MCACHE_VERSION_MAJOR,
                   MCACHE_VERSION_MINOR, MCACHE_VERSION_PATCH, MC_ARENA_FORMAT);
            exit(0);
        }
        if (c == 'c')
            *cfg_path = optarg;
    }
    if (optind < argc) {
        fprintf(stderr, "mcached: unexpected argument \"%s\" (see mcached --help)\n",
                argv[optind]);
        return EXIT_USAGE;
    }
    if (*cfg_path && mc_config_load(cfg, *cfg_path) != 0) {
        fprintf(stderr, "mcached: %s\n", mc_last_error());
        return EXIT_USAGE;
    }
    saved_argc = argc;
    saved_argv = argv;
    if (apply_cmdline(argc, argv, cfg) != 0) {
        fprintf(stderr, "mcached: %s\n", mc_last_error());
        return EXIT_USAGE;
    }
    return 0;
}

/* Say who may use the cache: a warning when any local user may (at start and on SIGHUP). */
static void log_access(struct daemon *d, const char *prefix)
{
    char table[sizeof(d->own.a.path) + 16];

    snprintf(table, sizeof(table), "%s.readers", d->own.a.path);
    mc_access_log(&d->access, prefix, d->own.a.path, table, d->socket_path);
}

/*
 * SIGHUP with other groups: the arena, the reader table and the socket take
 * the new modes and groups at once, and new connections are classified by
 * them. Workers attached already keep the files they have open (the kernel
 * checks permissions at open), and open connections keep their class.
 */
static void reload_access(struct daemon *d, const struct mc_config *n)
{
    struct mc_access a;
    char was[sizeof(a.label)];
    int rc;

    if (mc_access_resolve(n->admin_group, n->reader_group, &a) != 0) {
        log_error("SIGHUP: keeping the current groups (%s): %s", d->access.label,
                  mc_last_error());
        return;
    }
    snprintf(d->cfg.admin_group, sizeof(d->cfg.admin_group), "%s", n->admin_group);
    snprintf(d->cfg.reader_group, sizeof(d->cfg.reader_group), "%s", n->reader_group);
    if (mc_access_same(&a, &d->access))
        return;
    snprintf(was, sizeof(was), "%s", d->access.label);
    d->access = a;
    rc = mc_own_set_access(&d->own, &a);
    if (mc_ctl_set_access(&d->ctl, &a) != 0 || rc != 0)
        log_error("SIGHUP: the files are not all as configured (see above): %s",
                  mc_last_error());
    if (strcmp(was, a.label) != 0)
        log_info("SIGHUP: access changed from %s to %s; workers attached already keep the "
                 "files they have open until they detach",
                 was, a.label);
    else
        log_info("SIGHUP: the groups changed (access is still %s); connections already open "
                 "keep what they were allowed",
                 a.label);
    log_access(d, "SIGHUP: ");
}

/* SIGHUP: re-read the config file; apply what can change while running. */
static void reload_config(struct daemon *d)
{
    struct mc_config n;

    if (!*d->cfg.config) {
        log_info("SIGHUP: no config file to re-read (start with --config FILE)");
        return;
    }
    /* As at start: defaults, then the file, then the command line (it wins). */
    mc_config_defaults(&n);
    if (mc_config_load(&n, d->cfg.config) != 0 ||
        apply_cmdline(saved_argc, saved_argv, &n) != 0) {
        log_error("SIGHUP: keeping the current settings: %s", mc_last_error());
        return;
    }
    {
        const struct mc_config *o = &d->cfg;
        const struct {
            bool changed;
            const char *key;
        } later[] = {
            {strcmp(n.store, o->store) != 0, "store"},
            {strcmp(n.registry, o->registry) != 0, "registry"},
            {strcmp(n.artifacts, o->artifacts) != 0, "artifacts"},
            {strcmp(n.artifacts_creds, o->artifacts_creds) != 0, "artifacts-creds"},
            {strcmp(n.cache, o->cache) != 0, "cache"},
            {strcmp(n.shm_dir, o->shm_dir) != 0, "shm-dir"},
            {strcmp(n.socket, o->socket) != 0, "socket"},
            {n.size != o->size, "size"},
            {n.index_size != o->index_size, "index-size"},
            {n.base != o->base, "base"},
            {n.reader_slots != o->reader_slots, "reader-slots"},
            {n.queue_depth != o->queue_depth, "queue-depth"},
            {n.chunk_size != o->chunk_size, "chunk-size"},
            {n.io_uring != o->io_uring, "io-uring"},
            {n.fixed_buffers != o->fixed_buffers, "fixed-buffers"},
            {n.direct_io != o->direct_io, "direct-io"},
        };
        char keys[256] = "";

        for (size_t i = 0; i < sizeof(later) / sizeof(later[0]); i++)
            if (later[i].changed)
                snprintf(keys + strlen(keys), sizeof(keys) - strlen(keys), "%s%s",
                         *keys ? ", " : "", later[i].key);
        if (*keys)
            log_warn("SIGHUP: %s changed; that takes effect only after a restart", keys);
    }
    reload_access(d, &n);
    d->cfg.log_level = n.log_level;
    mc_log_set_level((enum mc_log_level)n.log_level);
    d->cfg.max_loads = n.max_loads;
    d->cfg.preload = n.preload;
    d->cfg.keep_local = d->io.keep_local = n.keep_local; /* loads starting from now */
    snprintf(d->cfg.alert_cmd, sizeof(d->cfg.alert_cmd), "%s", n.alert_cmd);
    log_info("SIGHUP: re-read %s", d->cfg.config);
}

/*
 * Who asked us to stop: the sender's pid, uid and program name, so that a stop nobody meant can
 * be traced (a stray kill of a reused pid, a script's trap, a service manager). The name, not the
 * command line: a wrapper's arguments may carry secrets (`env AWS_SECRET_ACCESS_KEY=...`, a URL
 * with a password). The sender may be gone by now: then only its pid.
 */
static void log_stop_signal(const struct signalfd_siginfo *si)
{
    char path[64], cmd[64] = "";
    ssize_t n = 0;
    int fd;

    snprintf(path, sizeof(path), "/proc/%u/comm", si->ssi_pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        n = read(fd, cmd, sizeof(cmd) - 1);
        close(fd);
    }
    cmd[n > 0 ? n : 0] = '\0';
    cmd[strcspn(cmd, "\n")] = '\0';
    for (char *c = cmd; *c; c++) /* a name is the program's to choose: no control bytes */
        if ((unsigned char)*c < 0x20 || *c == 0x7f || *c == '"')
            *c = '?';
    if (si->ssi_code == SI_KERNEL)
        log_info("%s (from the kernel): stopping", strsignal((int)si->ssi_signo));
    else
        log_info("%s from pid %u (uid %u%s%s%s): stopping", strsignal((int)si->ssi_signo),
                 si->ssi_pid, si->ssi_uid, *cmd ? ", \"" : "", cmd,
                 *cmd ? "\"" : ", gone or hidden");
}

/* What mcached is doing, for the service manager's STATUS= (sent when it changes). */
static void notify_serving(struct daemon *d)
{
    unsigned queued = daemon_queued(d);

    if (d->loading || queued)
        mc_notify_status(&d->notify,
                         "serving %zu versions, %llu resident; %u loads in progress, %u queued",
                         d->nver, (unsigned long long)d->own.w.t->resident, d->loading, queued);
    else
        mc_notify_status(&d->notify, "serving %zu versions, %llu resident", d->nver,
                         (unsigned long long)d->own.w.t->resident);
}

/*
 * A shared registry: every 2 s, a refresh (a generation check and the rows past it, two small
 * queries), which covers a notification lost with its session; and the watch fd made again if
 * its session died (a PostgreSQL restart), so that notifications resume.
 */
#define REGCHECK_NS 2000000000ull

static void registry_watch(struct daemon *d, bool check)
{
    int fd;

    if (d->wfd >= 0 && !check)
        return;
    fd = mc_registry_watch_fd(d->reg);
    if (fd == d->wfd)
        return;
    if (d->wfd >= 0) /* closed by libpq already, which removed it from the epoll set */
        epoll_ctl(d->epfd, EPOLL_CTL_DEL, d->wfd, NULL);
    d->wfd = fd;
    if (fd >= 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->wfd};

        epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev);
        log_info("listening for registry changes again");
        d->want_sync = true; /* what was announced while nobody listened */
    }
}

static void quiet_warn(void *arg, const char *msg)
{
    (void)arg, (void)msg;
}

/*
 * Started from the replica (the database was unreachable): open the shared registry again,
 * and once it answers, serve it instead (the replica's handle is read-only and never moves).
 * Attempts are quiet: each would warn that it fell back to the replica again. An attempt can
 * wait seconds on a database that does not answer, so it runs on a thread of its own, one at
 * a time; registry_reopened() takes its result on the loop.
 */
static void *reopen_thread(void *arg)
{
    struct daemon *d = arg;
    struct mc_registry *n = NULL;
    uint64_t one = 1;

    if (mc_registry_open(d->cfg.store, &d->reopen.ro, &n) == 0 && mc_registry_offline(n)) {
        mc_registry_close(n);
        n = NULL;
    }
    d->reopen.opened = n; /* read by the loop after pthread_join() */
    if (write(d->reopen.efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        log_error("reopening the registry: cannot wake the loop: %s", strerror(errno));
    return NULL;
}

static void registry_reopen(struct daemon *d)
{
    struct mc_registry_opts ro = {.flags = MC_REGISTRY_CREATE,
                                  .warn = quiet_warn,
                                  .registry = d->cfg.registry,
                                  .artifacts = d->cfg.artifacts[0] ? d->cfg.artifacts : NULL,
                                  .artifacts_creds =
                                      d->cfg.artifacts_creds[0] ? d->cfg.artifacts_creds : NULL};

    if (d->reopen.busy)
        return;
    if (d->reopen.efd < 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &d->reopen.efd};

        d->reopen.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (d->reopen.efd < 0 || epoll_ctl(d->epfd, EPOLL_CTL_ADD, d->reopen.efd, &ev) != 0) {
            log_error("reopening the registry: %s", strerror(errno));
            if (d->reopen.efd >= 0)
                close(d->reopen.efd);
            d->reopen.efd = -1;
            return;
        }
    }
    d->reopen.ro = ro;
    d->reopen.opened = NULL;
    d->reopen.busy = pthread_create(&d->reopen.thread, NULL, reopen_thread, d) == 0;
}

/* The reopening thread finished: serve what it opened, if the database answered. */
static void registry_reopened(struct daemon *d)
{
    struct mc_registry *n;
    uint64_t v;

    if (read(d->reopen.efd, &v, sizeof(v)) != (ssize_t)sizeof(v) || !d->reopen.busy)
        return;
    pthread_join(d->reopen.thread, NULL);
    d->reopen.busy = false;
    n = d->reopen.opened;
    if (n == NULL)
        return;
    log_info("the registry answers again (generation %llu; the replica had %llu): serving it",
             (unsigned long long)mc_registry_generation(n),
             (unsigned long long)mc_registry_generation(d->reg));
    mc_registry_close(d->reg);
    d->reg = n;
    daemon_registry_adopt(n); /* its warnings to the log from now on */
    d->want_sync = true;
    d->last_regcheck_ns = 0; /* its watch fd and replica now, not in 2 s */
}

/*
 * At stop: an attempt in flight may wait seconds more on the database; it is left to end
 * with the process (detached; its eventfd stays open for it), so that a stop is prompt. The
 * process then ends with _exit() (main), not exit(): library destructors (libpq's, gnutls')
 * must not run under a thread still inside them.
 */
static void registry_reopen_stop(struct daemon *d)
{
    if (d->reopen.busy) {
        pthread_detach(d->reopen.thread);
        return;
    }
    if (d->reopen.efd >= 0)
        close(d->reopen.efd);
    d->reopen.efd = -1;
}

static void run(struct daemon *d)
{
    struct epoll_event evs[64];

    while (!d->stop) {
        int timeout, n, ping;

        /* Submit the reads of loads started since the last pass (the start-up sync, a
         * registry change, a tick): else they wait for epoll_wait's 100 ms timeout. */
        if (mc_io_busy(&d->io))
            mc_io_poll(&d->io, false);
        /* Only local reads without a ring need the loop to spin; remote loads
         * wake it through the eventfd (or the 100 ms tick without a ring). */
        timeout = (d->io.active && !d->io.have_ring) ? 0 : 100;
        /* The watchdog's pings come from here, so a loop that hangs stops them. */
        ping = mc_notify_watchdog(&d->notify);
        if (ping >= 0 && ping < timeout)
            timeout = ping;
        n = epoll_wait(d->epfd, evs, 64, timeout);

        for (int i = 0; i < n; i++) {
            void *tag = evs[i].data.ptr;

            if (tag == &d->sfd) {
                struct signalfd_siginfo si;
                while (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
                    if (si.ssi_signo == SIGHUP) {
                        d->want_config = true;
                    } else {
                        log_stop_signal(&si);
                        d->stop = true;
                    }
                }
            } else if (tag == &d->ifd) {
                char buf[4096];
                while (read(d->ifd, buf, sizeof(buf)) > 0)
                    ;
                d->want_sync = true;
            } else if (tag == &d->io.efd) {
                mc_io_poll(&d->io, false);
            } else if (tag == &d->wfd) {
                int got = mc_registry_watch_drain(d->reg);

                if (got < 0) { /* the session died: its fd is closed, and out of the set */
                    log_warn("lost the registry's change notifications; checking every %llu s "
                             "until they resume",
                             REGCHECK_NS / 1000000000ull);
                    d->wfd = -1;
                    d->want_sync = true;
                } else if (got > 0) {
                    d->want_sync = true;
                }
            } else if (tag == &d->reopen.efd) {
                registry_reopened(d);
            } else if (health_event(d, tag, evs[i].events)) {
                /* a health check's output or exit (health.c) */
            } else {
                mc_ctl_event(&d->ctl, tag, evs[i].events);
            }
        }
        if (mc_io_busy(&d->io))
            mc_io_poll(&d->io, false);
        /* Loads that just finished free their slots: start the queued ones now (their reads
         * are submitted at the top of the loop), not at the next tick (else N queued loads
         * take N / max-loads ticks of 100 ms). */
        if (d->qhead && d->loading < d->cfg.max_loads)
            daemon_schedule(d);
        if (d->want_config) {
            d->want_config = false;
            mc_notify_send(&d->notify, "RELOADING=1\nMONOTONIC_USEC=%llu",
                           (unsigned long long)(mc_mono_ns() / 1000));
            reload_config(d);
            mc_notify_send(&d->notify, "READY=1");
        }
        if (d->cfg.registry[0] && mc_mono_ns() - d->last_regcheck_ns > REGCHECK_NS) {
            d->last_regcheck_ns = mc_mono_ns();
            if (mc_registry_offline(d->reg))
                registry_reopen(d);
            registry_watch(d, d->wfd < 0);
            /* The replica lags by this period at most: a rewrite with fsyncs after every
             * change would hold up the loop, and the next change's mirroring with it. */
            mc_registry_keep_replica(d->reg);
            d->want_sync = true;
        }
        if (d->want_sync) {
            d->want_sync = false;
            daemon_sync(d, false);
        }
        if (mc_mono_ns() - d->last_tick_ns > 100000000ull) {
            d->last_tick_ns = mc_mono_ns();
            daemon_tick(d);
            deploy_tick(d); /* health checks, gated moves, rollouts, alert hooks */
            notify_serving(d);
        }
    }
}

int main(int argc, char **argv)
{
    static struct daemon d;
    const char *cfg_path = NULL;
    int rc;

    mc_config_defaults(&d.cfg);
    d.io.efd = d.ctl.lfd = d.epfd = d.sfd = d.ifd = d.wfd = -1; /* daemon_stop() may run early */
    d.reopen.efd = -1;
    rc = parse_args(argc, argv, &d.cfg, &cfg_path);
    if (rc)
        return rc;
    mc_log_set_level((enum mc_log_level)d.cfg.log_level);
    mc_notify_open(&d.notify);
    rc = daemon_start(&d);
    if (rc) {
        log_error("%s", mc_last_error());
        mc_notify_status(&d.notify, "failed to start: %s", mc_last_error());
        daemon_stop(&d);
        mc_notify_close(&d.notify);
        return rc == MC_EBUSY ? EXIT_LOCKED : (rc == MC_EINVAL ? EXIT_USAGE : 1);
    }
    {
        struct mc_arena_hdr *h = d.own.a.hdr;
        log_info("mcached %d.%d.%d serving cache \"%s\" from %s: arena %s at 0x%llx, %.0f MiB "
                 "on %s (%s in %.1f ms, %llu resident), socket %s",
                 MCACHE_VERSION_MAJOR, MCACHE_VERSION_MINOR, MCACHE_VERSION_PATCH, d.cfg.cache,
                 mc_registry_dir(d.reg), d.own.a.path, (unsigned long long)h->base,
                 (double)h->size / (1 << 20),
                 mc_backing_name(h->backing), d.own.adopted ? "adopted" : "created",
                 (double)d.own.adopt_ns / 1e6, (unsigned long long)d.own.w.t->resident,
                 d.socket_path);
        log_access(&d, "");
        if (h->backing == MC_BACKING_SHM4K)
            log_info("the arena is on 4 KiB pages%s%s%s: a worker's first read of a model "
                     "costs a page fault per 64 KiB; for huge pages use --shm-dir on a hugetlbfs "
                     "mount, or a kernel that collapses tmpfs pages (Linux 6.1+, shmem_enabled "
                     "not deny; see docs/arena.md)",
                     d.own.a.huge_errno ? " (collapsing to 2 MiB pages failed: " : "",
                     d.own.a.huge_errno ? strerror(d.own.a.huge_errno) : "",
                     d.own.a.huge_errno ? ")" : "");
        else if (h->backing == MC_BACKING_HUGETLB)
            log_info("the reader table holds every slot's serving counters, 256 KiB per slot: "
                     "%.0f MiB of huge pages for %u slots on this hugetlbfs mount (fewer "
                     "--reader-slots need fewer; docs/stats.md)",
                     (double)d.own.r.map_size / (1 << 20), d.own.r.nslots);
        if (h->backing == MC_BACKING_SHM_COLLAPSED && !d.own.adopted &&
                 d.own.a.huge_bytes < h->size)
            log_warn("only %.0f of %.0f MiB of the arena are on 2 MiB pages (%s: no free 2 MiB "
                     "of physical memory?); the rest stays on 4 KiB pages",
                     (double)d.own.a.huge_bytes / (1 << 20), (double)h->size / (1 << 20),
                     strerror(d.own.a.huge_errno));
    }
    /* Ready (docs/loader.md, "Life cycle", step 6): the registry is mirrored, the socket
     * listens. */
    mc_notify_send(&d.notify, "READY=1");
    notify_serving(&d);
    deploy_start(&d);
    run(&d);
    registry_reopen_stop(&d);
    deploy_stop(&d);
    mc_notify_send(&d.notify, "STOPPING=1");
    mc_notify_status(&d.notify, "stopping: abandoning %u loads in progress, keeping the arena",
                     d.loading);
    daemon_stop(&d);
    mc_notify_close(&d.notify);
    log_info("stopped");
    if (d.reopen.busy) { /* still inside libpq or libcurl (registry_reopen_stop) */
        fflush(NULL);
        _exit(0);
    }
    return 0;
}
