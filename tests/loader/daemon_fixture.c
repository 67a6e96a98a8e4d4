/*
 * daemon_fixture.c - the fixture of the mcached tests (see daemon_fixture.h).
 */
#include "tests/loader/daemon_fixture.h"

#include "common/clock.h"

#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "index/proto.h"
#include "shm/arena.h"
#include "tests/helpers/testutil.h"

struct dt D;

void sleep_ms(long ms)
{
    nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L}, NULL);
}

/* A file of `size` bytes of pattern `seed`. */
static void make_file(const char *path, uint64_t size, uint32_t seed)
{
    FILE *f = fopen(path, "w");
    uint8_t buf[65536];

    assert_non_null(f);
    for (uint64_t off = 0; off < size; off += sizeof(buf)) {
        size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);
        for (size_t i = 0; i < n; i++)
            buf[i] = pattern_byte(seed, off + i);
        assert_int_equal(fwrite(buf, 1, n, f), n);
    }
    fclose(f);
}

void push_to(struct mc_registry *reg, const char *name, const char *version, uint64_t size,
             uint32_t seed)
{
    char path[400];

    snprintf(path, sizeof(path), "%s/%s-%s.bin", D.root, name, version);
    make_file(path, size, seed);
    int rc = mc_registry_push(reg, name, version, path, NULL, NULL);
    if (rc)
        fprintf(stderr, "push %s@%s: %s\n", name, version, mc_last_error());
    assert_int_equal(rc, 0);
    unlink(path);
}

void push(const char *name, const char *version, uint64_t size, uint32_t seed)
{
    push_to(D.reg, name, version, size, seed);
}

int ctl_at(const char *sock, char **body, const char *op, unsigned n,
           const char *const *args)
{
    int fd, status = -100;
    char *b = NULL;

    if (mc_ctl_connect(sock, &fd) != 0)
        return -100;
    if (mc_ctl_call(fd, op, n, args, 60000, &status, &b) != 0)
        status = -101;
    close(fd);
    if (body)
        *body = b;
    else
        free(b);
    return status;
}

int ctl(char **body, const char *op, unsigned n, ...)
{
    const char *args[8];
    va_list ap;

    va_start(ap, n);
    for (unsigned i = 0; i < n; i++)
        args[i] = va_arg(ap, const char *);
    va_end(ap);
    return ctl_at(D.sock, body, op, n, args);
}

void dump_log(void)
{
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "cat %s >&2", D.log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
}

pid_t mcached_spawn(const char *const *argv, bool append)
{
    pid_t pid = fork();

    if (pid == 0) {
        const char *bin = getenv("MC_MCACHED") ? getenv("MC_MCACHED") : "../loader/mcached";
        int fd = open(D.log, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);

        dup2(fd, 2);
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

int mcached_run(const char *const *args)
{
    const char *argv[32] = {"mcached", "--shm-dir", D.shm, "--size", "64M"};
    int n = 5;

    for (; *args; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    return wait_status(mcached_spawn(argv, false));
}

void await_up(const char *sock, pid_t *pid)
{
    /* Up to 30 s: a restart may wait MC_ADOPT_GRACE_NS (10 s) for a reader, then commit. */
    for (int i = 0; i < 3000; i++) {
        if (ctl_at(sock, NULL, "ping", 0, NULL) == 0)
            return;
        int st;
        if (waitpid(*pid, &st, WNOHANG) == *pid) {
            fprintf(stderr, "mcached exited early (status %d); its log:\n", st);
            *pid = 0;
            break;
        }
        sleep_ms(10);
    }
    dump_log();
    fail_msg("mcached did not start");
}

void daemon_start_args(const char *const *extra)
{
    const char *argv[40] = {"mcached", "--store", D.store, "--shm-dir", D.shm, "--cache", "t",
                            "--socket", D.sock, "--log-level", "debug", "--size", "512M"};
    int n = 13;

    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    D.pid = mcached_spawn(argv, true);
    await_up(D.sock, &D.pid);
}

void mcached_stop_clean(pid_t *pid)
{
    kill(*pid, SIGTERM);
    int st = wait_status(*pid);
    *pid = 0; /* reaped: daemon_teardown must not signal whatever process gets the pid next */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "mcached did not stop cleanly (status %d); its log:\n", st);
        dump_log();
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

void daemon_stop_clean(void)
{
    mcached_stop_clean(&D.pid);
}

int daemon_setup(void **state)
{
    (void)state;
    memset(&D, 0, sizeof(D));
    /* Sweep what killed runs of this test left in /tmp. */
    if (system("for d in /tmp/mcd.*.*; do [ -d \"$d\" ] || continue; p=${d#/tmp/mcd.}; "
               "p=${p%%.*}; kill -0 \"$p\" 2>/dev/null || rm -rf \"$d\"; done") != 0)
        fprintf(stderr, "sweeping /tmp/mcd.* failed\n");
    snprintf(D.root, sizeof(D.root), "/tmp/mcd.%d.XXXXXX", (int)getpid());
    if (!mkdtemp(D.root))
        return -1;
    snprintf(D.store, sizeof(D.store), "%s/store", D.root);
    snprintf(D.log, sizeof(D.log), "%s/mcached.log", D.root);
    tdir_make(D.shm, sizeof(D.shm));
    chmod(D.shm, 0755);
    snprintf(D.sock, sizeof(D.sock), "%s/ctl.sock", D.shm);
    struct mc_registry_opts o = {.flags = MC_REGISTRY_CREATE};
    return mc_registry_open(D.store, &o, &D.reg) == 0 ? 0 : -1;
}

int daemon_teardown(void **state)
{
    char cmd[600];

    (void)state;
    if (D.pid > 0 && kill(D.pid, 0) == 0) {
        kill(D.pid, SIGKILL);
        wait_status(D.pid);
    }
    for (size_t i = 0; i < sizeof(D.more) / sizeof(D.more[0]); i++)
        if (D.more[i] > 0) {
            kill(D.more[i], SIGKILL);
            wait_status(D.more[i]);
        }
    mc_registry_close(D.reg);
    mc_arena_retire(D.shm, "t");
    tdir_remove(D.shm);
    snprintf(cmd, sizeof(cmd), "chmod -R u+w %s; rm -rf %s", D.root, D.root);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", D.root);
    return 0;
}

int helper_run(char *out, size_t len, const char *args)
{
    char prog[512], cmd[1200];
    FILE *p;
    int st;

    snprintf(cmd, sizeof(cmd), "%s %s", helper_path("mp_reader", prog, sizeof(prog)), args);
    p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (!fgets(out, (int)len, p))
        out[0] = '\0';
    st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

int reader(char *out, size_t len, const char *mode, const char *name, const char *ref,
           const char *extra)
{
    char args[800];

    snprintf(args, sizeof(args), "%s %s t %s %s %s", mode, D.shm, name, ref, extra ? extra : "");
    return helper_run(out, len, args);
}

pid_t helper_start(const char *mode, const char *name, const char *ref, FILE **in,
                   FILE **out, char *first, size_t len)
{
    char prog[512];
    int wr[2], rd[2];
    pid_t pid;

    /* CLOEXEC: the daemon and other children must not keep our ends open. */
    assert_int_equal(pipe2(wr, O_CLOEXEC), 0);
    assert_int_equal(pipe2(rd, O_CLOEXEC), 0);
    pid = fork();
    if (pid == 0) {
        dup2(wr[0], 0);
        dup2(rd[1], 1);
        execl(helper_path("mp_reader", prog, sizeof(prog)), "mp_reader", mode, D.shm, "t", name,
              ref, NULL);
        _exit(127);
    }
    close(wr[0]);
    close(rd[1]);
    *in = fdopen(wr[1], "w");
    *out = fdopen(rd[0], "r");
    assert_non_null(fgets(first, (int)len, *out));
    return pid;
}

pid_t holder_start(const char *name, const char *ref, FILE **in, FILE **out)
{
    char line[256];
    pid_t pid = helper_start("holdwatch", name, ref, in, out, line, sizeof(line));

    assert_int_equal(strncmp(line, "held ", 5), 0);
    return pid;
}

const char *alias_targets(const char *name, const char *alias, char *buf, size_t len)
{
    const struct mc_reg_model *m;

    assert_int_equal(mc_registry_refresh(D.reg, NULL), 0);
    m = mc_registry_model(D.reg, name);
    *buf = '\0';
    for (size_t i = 0; m && i < m->naliases; i++)
        if (!strcmp(m->aliases[i].alias, alias))
            assert_int_equal(mc_reg_targets_format(&m->aliases[i], buf, len), 0);
    return buf;
}

uint64_t mono_ms(void)
{
    return mc_mono_ns() / 1000000ull;
}

const char *model_state(const char *name, const char *version)
{
    static char state[32];
    char *body = NULL;
    json_t *j, *models, *m;
    size_t i;

    state[0] = '\0';
    assert_int_equal(ctl(&body, "status", 0), 0);
    j = json_loads(body, 0, NULL);
    free(body);
    assert_non_null(j);
    models = json_object_get(j, "models");
    json_array_foreach(models, i, m)
    {
        if (!strcmp(json_string_value(json_object_get(m, "name")), name) &&
            !strcmp(json_string_value(json_object_get(m, "version")), version))
            snprintf(state, sizeof(state), "%s", json_string_value(json_object_get(m, "state")));
    }
    json_decref(j);
    return state;
}

bool log_has(const char *s)
{
    static char text[256 * 1024];
    FILE *f = fopen(D.log, "r");
    size_t n;

    if (!f)
        return false;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, s) != NULL;
}

void log_wait(const char *s)
{
    for (int i = 0; i < 200 && !log_has(s); i++)
        sleep_ms(10);
    if (!log_has(s)) {
        dump_log();
        fail_msg("mcached never logged \"%s\"", s);
    }
}

void artifact_path(const char *name, const char *version, char *path, size_t len)
{
    snprintf(path, len, "%s/models/%s/%s/artifact", D.store, name, version);
}
