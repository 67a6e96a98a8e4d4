/*
 * alerts.c - raising alerts (alerts.h): the log line, the registry record,
 * the counters, and the --alert-cmd hook as a child fed JSON on stdin.
 */
#include "loader/alerts.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/clock.h"
#include "common/err.h"
#include "loader/daemon.h"
#include "loader/log.h"

extern char **environ;

#define HOOKS_MAX 16

static struct hook {
    pid_t pid;
    uint64_t started_ns;
} hooks[HOOKS_MAX];

static json_t *alert_json(struct daemon *d, uint64_t id, const char *kind, const char *model,
                          const char *version, const char *alias, const char *message)
{
    return json_pack("{s:I, s:I, s:s, s:s, s:o, s:o, s:s, s:s, s:s}", "id", (json_int_t)id, "at_ns",
                     (json_int_t)mc_wall_ns(), "kind", kind, "model", model, "version",
                     version ? json_string(version) : json_null(), "alias",
                     alias ? json_string(alias) : json_null(), "message", message, "cache",
                     d->cfg.cache, "store", mc_registry_dir(d->reg));
}

/* Run /bin/sh -c CMD with json on its stdin; the pid, or 0. */
static pid_t hook_spawn(const char *cmd, const char *json)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    char *argv[] = {"sh", "-c", (char *)cmd, NULL};
    int p[2];
    pid_t pid = 0;
    int rc;

    if (pipe2(p, O_CLOEXEC) != 0)
        return 0;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, p[0], 0);
    posix_spawnattr_init(&at);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setpgroup(&at, 0);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                      POSIX_SPAWN_SETPGROUP);
    rc = posix_spawn(&pid, "/bin/sh", &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(p[0]);
    if (rc) {
        close(p[1]);
        errno = rc;
        return 0;
    }
    /* One small object fits the pipe's buffer: this write does not block. */
    fcntl(p[1], F_SETFL, O_NONBLOCK);
    if (write(p[1], json, strlen(json)) < 0 || write(p[1], "\n", 1) < 0)
        log_warn("alert hook: could not write the alert to its stdin: %s", strerror(errno));
    close(p[1]);
    return pid;
}

static void run_hook(struct daemon *d, const char *json)
{
    size_t i;

    if (!*d->cfg.alert_cmd)
        return;
    for (i = 0; i < HOOKS_MAX && hooks[i].pid; i++)
        ;
    if (i == HOOKS_MAX) {
        d->alerts_hook_failed++;
        log_error("alert hook: %d hooks still run; not starting another for this alert (is "
                  "\"%s\" stuck?)",
                  HOOKS_MAX, d->cfg.alert_cmd);
        return;
    }
    hooks[i].pid = hook_spawn(d->cfg.alert_cmd, json);
    hooks[i].started_ns = mc_mono_ns();
    if (!hooks[i].pid) {
        d->alerts_hook_failed++;
        log_error("alert hook: could not run /bin/sh -c \"%s\": %s", d->cfg.alert_cmd,
                  strerror(errno));
    }
}

void alert_raise(struct daemon *d, const char *kind, const char *model, const char *version,
                 const char *alias, const char *message)
{
    uint64_t gen = 0, id = 0;
    size_t n;
    json_t *j;
    char *s;

    log_warn("ALERT %s: %s%s%s%s%s: %s", kind, model, version ? "@" : "", version ? version : "",
             alias ? " " : "", alias ? alias : "", message);
    d->alerts_total++;
    if (!strcmp(kind, "rollback"))
        d->alerts_rollback++;
    else if (!strcmp(kind, "health"))
        d->alerts_health++;
    else
        d->alerts_threshold++;
    if (mc_registry_alert_add(d->reg, kind, model, version, alias, message, &gen) != 0)
        log_error("could not store the alert in the registry: %s", mc_last_error());
    n = mc_registry_alert_count(d->reg);
    if (n)
        id = mc_registry_alert_at(d->reg, n - 1)->id;
    j = alert_json(d, id, kind, model, version, alias, message);
    s = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (s)
        run_hook(d, s);
    free(s);
}

void alert_tick(struct daemon *d)
{
    uint64_t now = mc_mono_ns();

    for (size_t i = 0; i < HOOKS_MAX; i++) {
        int st;
        pid_t p;

        if (!hooks[i].pid)
            continue;
        p = waitpid(hooks[i].pid, &st, WNOHANG);
        if (p == hooks[i].pid) {
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
                d->alerts_hook_failed++;
                log_warn("alert hook \"%s\" failed (%s %d)", d->cfg.alert_cmd,
                         WIFEXITED(st) ? "exit status" : "signal",
                         WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            }
            hooks[i].pid = 0;
        } else if (p < 0) {
            hooks[i].pid = 0;
        } else if (now - hooks[i].started_ns > MC_ALERT_HOOK_S * 1000000000ull) {
            log_warn("alert hook \"%s\" (pid %d) ran past %d s: killed", d->cfg.alert_cmd,
                     (int)hooks[i].pid, MC_ALERT_HOOK_S);
            kill(-hooks[i].pid, SIGKILL);
        }
    }
}

void alert_stop_all(struct daemon *d)
{
    uint64_t until = mc_mono_ns() + 1000000000ull;
    bool any = true;

    while (any && mc_mono_ns() < until) {
        struct timespec ts = {0, 10000000};
        alert_tick(d);
        any = false;
        for (size_t i = 0; i < HOOKS_MAX; i++)
            any |= hooks[i].pid != 0;
        if (any)
            nanosleep(&ts, NULL);
    }
    for (size_t i = 0; i < HOOKS_MAX; i++)
        if (hooks[i].pid) {
            kill(-hooks[i].pid, SIGKILL);
            waitpid(hooks[i].pid, NULL, 0);
            hooks[i].pid = 0;
        }
}

json_t *alerts_json(struct daemon *d)
{
    return json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "total", (json_int_t)d->alerts_total,
                     "rollback", (json_int_t)d->alerts_rollback, "health",
                     (json_int_t)d->alerts_health, "threshold", (json_int_t)d->alerts_threshold,
                     "hook_failed", (json_int_t)d->alerts_hook_failed, "hook",
                     *d->cfg.alert_cmd ? json_string(d->cfg.alert_cmd) : json_null());
}
