/*
 * test_daemon.c - mcached as a real process: push, load and verify from an
 * exec'd worker; an alias flipped under 4 reading workers; kill -9 in the
 * middle of a load and a warm restart; a flipped bit on disk; LRU eviction
 * that respects aliases, pins and holds; another uid refused changes, and
 * refused everything unless --reader-group '*' says otherwise; file modes
 * that follow the groups at start, on warm restart and on SIGHUP; malformed
 * frames survived; one worker reading from three caches, each served by its
 * own mcached at its name's default address.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/clock.h"
#include "common/err.h"
#include "index/proto.h"
#include "registry/registry.h"
#include "shm/arena.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

struct dt {
    char root[256];  /* on disk: store and files */
    char store[300];
    char shm[256];   /* arena directory */
    char sock[320];
    char log[320];
    pid_t pid;
    struct mc_registry *reg;
    pid_t more[4]; /* further mcached processes, one per cache (teardown kills them) */
};

static struct dt D;

static void sleep_ms(long ms)
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

/* Push `size` bytes of pattern `seed` as name@version into the store of reg. */
static void push_to(struct mc_registry *reg, const char *name, const char *version, uint64_t size,
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

static void push(const char *name, const char *version, uint64_t size, uint32_t seed)
{
    push_to(D.reg, name, version, size, seed);
}

/* Send one request to the mcached at sock; its status; *body (may be NULL) the answer. */
static int ctl_at(const char *sock, char **body, const char *op, unsigned n,
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

/* ctl_at() the test's own mcached (D.sock) with n string arguments. */
static int ctl(char **body, const char *op, unsigned n, ...)
{
    const char *args[8];
    va_list ap;

    va_start(ap, n);
    for (unsigned i = 0; i < n; i++)
        args[i] = va_arg(ap, const char *);
    va_end(ap);
    return ctl_at(D.sock, body, op, n, args);
}

/* Print mcached's log on stderr (after a message saying why). */
static void dump_log(void)
{
    char cmd[400];

    snprintf(cmd, sizeof(cmd), "cat %s >&2", D.log);
    if (system(cmd) != 0)
        fprintf(stderr, "(no log)\n");
}

/* Start mcached with argv (argv[0] "mcached"), its stderr appended to D.log or replacing it. */
static pid_t mcached_spawn(const char *const *argv, bool append)
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

/* Run mcached with its arena in D.shm, 64M, then args (later options win); its exit status. */
static int mcached_run(const char *const *args)
{
    const char *argv[32] = {"mcached", "--shm-dir", D.shm, "--size", "64M"};
    int n = 5;

    for (; *args; args++)
        argv[n++] = *args;
    argv[n] = NULL;
    return wait_status(mcached_spawn(argv, false));
}

/*
 * Wait until the mcached *pid answers a ping on sock (0 in *pid if it exits
 * first: the test fails, showing the log).
 */
static void await_up(const char *sock, pid_t *pid)
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

static void daemon_start_args(const char *const *extra)
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

/* SIGTERM the mcached *pid; it must exit 0. */
static void mcached_stop_clean(pid_t *pid)
{
    kill(*pid, SIGTERM);
    int st = wait_status(*pid);
    *pid = 0; /* reaped: teardown must not signal whatever process gets the pid next */
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "mcached did not stop cleanly (status %d); its log:\n", st);
        dump_log();
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

static void daemon_stop_clean(void)
{
    mcached_stop_clean(&D.pid);
}

static int setup(void **state)
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

static int teardown(void **state)
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

/* Run `mp_reader ARGS`; its first output line into out. Returns exit status. */
static int helper_run(char *out, size_t len, const char *args)
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

/* Run mp_reader MODE on cache "t" with args; its first output line into out. Exit status. */
static int reader(char *out, size_t len, const char *mode, const char *name, const char *ref,
                  const char *extra)
{
    char args[800];

    snprintf(args, sizeof(args), "%s %s t %s %s %s", mode, D.shm, name, ref, extra ? extra : "");
    return helper_run(out, len, args);
}

/* A worker holding name@ref (mp_reader holdwatch); *in asks it to verify. */
/*
 * Start `mp_reader MODE D.shm t [NAME REF]` with pipes for its stdin and
 * stdout (NAME NULL: no more arguments); its first line into first.
 */
static pid_t helper_start(const char *mode, const char *name, const char *ref, FILE **in,
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

/* A worker that holds name@ref and re-verifies it until its stdin closes. */
static pid_t holder_start(const char *name, const char *ref, FILE **in, FILE **out)
{
    char line[256];
    pid_t pid = helper_start("holdwatch", name, ref, in, out, line, sizeof(line));

    assert_int_equal(strncmp(line, "held ", 5), 0);
    return pid;
}

/* The state of name@version in `status`. */
static const char *model_state(const char *name, const char *version)
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

static void test_push_load_read(void **state)
{
    char out[256], *body = NULL;

    (void)state;
    push("m", "1.0.0", (2u << 20) + 123, 11);
    daemon_start_args(NULL);
    /* Registered, not resident: a worker is told so, clearly. */
    assert_int_equal(reader(out, sizeof(out), "verify", "m", "1.0.0", NULL), 3);
    assert_non_null(strstr(out, "not loaded"));
    assert_int_equal(ctl(&body, "load", 3, "m", "1.0.0", "10000"), 0);
    assert_non_null(strstr(body, "\"state\":\"resident\""));
    free(body);
    assert_int_equal(reader(out, sizeof(out), "verify", "m", "1.0.0", NULL), 0);
    assert_string_equal(out, "ok 1.0.0 2097275\n");
    assert_int_equal(reader(out, sizeof(out), "verify", "m", "latest", NULL), 0);
    assert_int_equal(ctl(&body, "load", 2, "m", "9.9.9"), MC_ENOENT);
    assert_non_null(strstr(body, "9.9.9"));
    free(body);
    assert_string_equal(model_state("m", "1.0.0"), "resident");
    /* Workers see the registry's metadata; an edit reaches the next load. */
    char big[4096];
    assert_int_equal(reader(big, sizeof(big), "meta", "m", "1.0.0", NULL), 0);
    assert_null(strstr(big, "edited"));
    struct mc_reg_kv tag = {"stage", "edited"};
    struct mc_reg_meta meta = {.tags = &tag, .ntags = 1};
    assert_int_equal(mc_registry_set_meta(D.reg, "m", "1.0.0", &meta, NULL), 0);
    assert_int_equal(ctl(NULL, "evict", 2, "m", "1.0.0"), 0);
    assert_int_equal(ctl(NULL, "load", 2, "m", "1.0.0"), 0);
    assert_int_equal(reader(big, sizeof(big), "meta", "m", "1.0.0", NULL), 0);
    assert_non_null(strstr(big, "\"stage\":\"edited\""));
    /* A version pushed while the daemon runs reaches it (inotify). */
    push("m", "1.1.0", 4096, 12);
    for (int i = 0; i < 200 && strcmp(model_state("m", "1.1.0"), "registered"); i++)
        sleep_ms(10);
    assert_string_equal(model_state("m", "1.1.0"), "registered");
    daemon_stop_clean();
}

static void test_alias_flip_under_readers(void **state)
{
    enum { WORKERS = 4 };
    FILE *w[WORKERS];
    char prog[512], cmd[1024], line[512];
    int saw_both = 0;

    (void)state;
    push("a", "1.0.0", 1u << 20, 1);
    push("a", "2.0.0", (1u << 20) + 4096, 2);
    assert_int_equal(mc_registry_alias_set(D.reg, "a", "prod", "1.0.0", NULL), 0);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 3, "a", "1.0.0", "10000"), 0);
    assert_int_equal(ctl(NULL, "load", 3, "a", "2.0.0", "10000"), 0);
    for (int i = 0; i < WORKERS; i++) {
        snprintf(cmd, sizeof(cmd), "%s watch %s t a prod 3000",
                 helper_path("mp_reader", prog, sizeof(prog)), D.shm);
        w[i] = popen(cmd, "r");
        assert_non_null(w[i]);
    }
    for (int k = 0; k < 40; k++) {
        assert_int_equal(mc_registry_alias_set(D.reg, "a", "prod", k % 2 ? "1.0.0" : "2.0.0",
                                               NULL),
                         0);
        sleep_ms(50);
    }
    for (int i = 0; i < WORKERS; i++) {
        long bad = -1;
        assert_non_null(fgets(line, sizeof(line), w[i]));
        printf("# worker %d: %s", i, line);
        assert_int_equal(pclose(w[i]), 0);
        char *b = strstr(line, " bad ");
        assert_non_null(b);
        bad = atol(b + 5);
        assert_int_equal(bad, 0);
        saw_both += strstr(line, "1.0.0=") && strstr(line, "2.0.0=");
    }
    assert_true(saw_both > 0); /* the alias really moved under them */
    daemon_stop_clean();
}

static void test_kill9_mid_load_then_adopt(void **state)
{
    const char *slow[] = {"--queue-depth", "1", "--chunk-size", "64K", NULL};
    char out[256], prog[512], cmd[1024], line[256];
    char *body = NULL;
    pid_t holder;

    (void)state;
    push("small", "1.0.0", 1u << 20, 5);
    push("big", "1.0.0", 300u << 20, 6);
    assert_int_equal(mc_registry_alias_set(D.reg, "small", "prod", "1.0.0", NULL), 0);
    daemon_start_args(slow);
    for (int i = 0; i < 500 && strcmp(model_state("small", "1.0.0"), "resident"); i++)
        sleep_ms(10);
    /* A worker holds small@prod throughout. */
    FILE *hin, *hout;
    holder = holder_start("small", "prod", &hin, &hout);
    /* Ask for big without waiting, and kill -9 mcached once bytes are arriving. */
    snprintf(cmd, sizeof(cmd), "%s %s load big 1.0.0 >/dev/null 2>&1 &",
             helper_path("ctl_client", prog, sizeof(prog)), D.sock);
    assert_int_equal(system(cmd), 0);
    int loading = 0;
    for (int i = 0; i < 2000 && !loading; i++) {
        assert_int_equal(ctl(&body, "status", 0), 0);
        loading = strstr(body, "\"loaded_bytes\":") && !strstr(body, "\"loaded_bytes\":0,");
        free(body);
        if (!loading)
            sleep_ms(2);
    }
    assert_true(loading);
    assert_string_equal(model_state("big", "1.0.0"), "loading");
    kill(D.pid, SIGKILL);
    wait_status(D.pid);
    D.pid = 0;
    /* The daemon is dead: the partial model is invisible, the held one still reads. */
    assert_int_equal(reader(out, sizeof(out), "verify", "big", "1.0.0", NULL), 3);
    assert_non_null(strstr(out, "not loaded"));
    fputs("go\n", hin);
    fflush(hin);
    assert_non_null(fgets(line, sizeof(line), hout));
    assert_string_equal(line, "verified 1 bad 0\n");
    assert_int_equal(reader(out, sizeof(out), "verify", "small", "prod", NULL), 0);
    /* Restart: the arena is adopted; small stays resident without a reload. */
    daemon_start_args(NULL);
    assert_int_equal(ctl(&body, "status", 0), 0);
    assert_non_null(strstr(body, "\"adopted\":true"));
    free(body);
    assert_string_equal(model_state("small", "1.0.0"), "resident");
    assert_string_equal(model_state("big", "1.0.0"), "registered");
    fputs("go\n", hin);
    fflush(hin);
    assert_non_null(fgets(line, sizeof(line), hout));
    assert_string_equal(line, "verified 2 bad 0\n");
    assert_int_equal(ctl(NULL, "load", 3, "big", "1.0.0", "30000"), 0);
    assert_int_equal(reader(out, sizeof(out), "verify", "big", "1.0.0", NULL), 0);
    fputs("go\n", hin);
    fflush(hin);
    assert_non_null(fgets(line, sizeof(line), hout));
    assert_string_equal(line, "verified 3 bad 0\n");
    fclose(hin);
    fclose(hout);
    assert_int_equal(WEXITSTATUS(wait_status(holder)), 0);
    /* The log says what happened. */
    snprintf(cmd, sizeof(cmd), "grep -q 'adopted' %s", D.log);
    assert_int_equal(system(cmd), 0);
    daemon_stop_clean();
}

static void test_bit_flip_refused(void **state)
{
    const struct mc_reg_version *rv;
    char out[256], *body = NULL;
    int fd;

    (void)state;
    push("f", "1.0.0", 1u << 20, 9);
    assert_int_equal(mc_registry_resolve(D.reg, "f", "1.0.0", &rv), 0);
    chmod(rv->path, 0644);
    fd = open(rv->path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 500000), 1);
    b ^= 0x10;
    assert_int_equal(pwrite(fd, &b, 1, 500000), 1);
    close(fd);
    daemon_start_args(NULL);
    assert_int_equal(ctl(&body, "load", 3, "f", "1.0.0", "10000"), MC_ECORRUPT);
    assert_non_null(strstr(body, "checksum mismatch"));
    free(body);
    /* Never served: workers get MC_EFAILED with the cause. */
    assert_int_equal(reader(out, sizeof(out), "verify", "f", "1.0.0", NULL), 3);
    char code[16];
    snprintf(code, sizeof(code), "error %d", MC_EFAILED);
    assert_int_equal(strncmp(out, code, strlen(code)), 0);
    assert_string_equal(model_state("f", "1.0.0"), "failed");
    assert_int_equal(ctl(&body, "status", 0), 0);
    assert_non_null(strstr(body, "\"what\":\"load f@1.0.0\""));
    free(body);
    daemon_stop_clean();
}

static void test_lru_respects_alias_pin_hold(void **state)
{
    const char *small[] = {"--size", "64M", "--index-size", "4M", NULL};
    const uint64_t MB = 1u << 20;
    char *body = NULL;

    (void)state;
    const char *names[] = {"A", "B", "C", "D", "E", "F", "G"};
    for (int i = 0; i < 7; i++)
        push(names[i], "1.0.0", 10 * MB, (uint32_t)(100 + i));
    push("H", "1.0.0", 40 * MB, 107);
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "1.0.0", NULL), 0);
    daemon_start_args(small);
    for (int i = 0; i < 500 && strcmp(model_state("A", "1.0.0"), "resident"); i++)
        sleep_ms(10);
    assert_string_equal(model_state("A", "1.0.0"), "resident"); /* aliased: preloaded */
    assert_int_equal(ctl(NULL, "pin", 2, "B", "1.0.0"), 0);
    for (int i = 0; i < 500 && strcmp(model_state("B", "1.0.0"), "resident"); i++)
        sleep_ms(10);
    assert_int_equal(ctl(NULL, "load", 2, "C", "1.0.0"), 0);
    FILE *hin, *hout;
    pid_t holder = holder_start("C", "1.0.0", &hin, &hout);
    sleep_ms(1200); /* C is now the most recently used (held) */
    assert_int_equal(ctl(NULL, "load", 2, "D", "1.0.0"), 0);
    sleep_ms(20);
    assert_int_equal(ctl(NULL, "load", 2, "E", "1.0.0"), 0);
    /* Full: F evicts the least recently used unprotected model, D. */
    assert_int_equal(ctl(NULL, "load", 2, "F", "1.0.0"), 0);
    assert_string_equal(model_state("D", "1.0.0"), "registered");
    assert_string_equal(model_state("E", "1.0.0"), "resident");
    assert_int_equal(ctl(NULL, "load", 2, "G", "1.0.0"), 0);
    assert_string_equal(model_state("E", "1.0.0"), "registered");
    const char *kept[] = {"A", "B", "C", "F", "G"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(model_state(kept[i], "1.0.0"), "resident");
    /* 40 MiB cannot fit beside 30 MiB of protected models: a clear error. */
    assert_int_equal(ctl(&body, "load", 2, "H", "1.0.0"), MC_ENOSPC);
    assert_non_null(strstr(body, "no room for H@1.0.0"));
    free(body);
    for (int i = 0; i < 3; i++)
        assert_string_equal(model_state(kept[i], "1.0.0"), "resident");
    fclose(hin);
    fclose(hout);
    wait_status(holder);
    daemon_stop_clean();
}

/* Can this test act as uid nobody (root, setpriv, user nobody, group nogroup)? */
static bool can_be_nobody(void)
{
    return getuid() == 0 && getgrnam("nogroup") &&
           system("command -v setpriv >/dev/null && id nobody >/dev/null 2>&1") == 0;
}

/*
 * Run helper PROG with args as uid nobody, group nogroup and no other
 * groups; the first line of its stdout and stderr into out. Its exit status.
 */
static int as_nobody(char *out, size_t len, const char *prog, const char *args)
{
    char path[512], cmd[1400];
    FILE *p;
    size_t n;
    int st;

    snprintf(cmd, sizeof(cmd), "setpriv --reuid=nobody --regid=nogroup --clear-groups %s %s 2>&1",
             helper_path(prog, path, sizeof(path)), args);
    p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(out, (int)len, p))
        out[0] = '\0';
    st = pclose(p);
    n = strcspn(out, "\n");
    printf("# nobody: %s %.60s: %.*s\n", prog, args, n > 160 ? 160 : (int)n, out);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void test_other_uid_cannot_change(void **state)
{
    const char *anyone[] = {"--reader-group", "*", NULL};
    char args[600], out[512];

    (void)state;
    if (!can_be_nobody()) {
        printf("# not run: needs root and setpriv to act as uid nobody\n");
        skip();
    }
    push("u", "1.0.0", 65536, 3);
    daemon_start_args(anyone);
    chmod(D.root, 0755);
    const char *ops[][2] = {{"evict", "u 1.0.0"}, {"pin", "u 1.0.0"}, {"shutdown", ""},
                            {"reload", ""},     {"status", ""},      {"load", "u 1.0.0"}};
    for (int i = 0; i < 6; i++) {
        bool change = i < 4;
        int st;

        snprintf(args, sizeof(args), "%s %s %s", D.sock, ops[i][0], ops[i][1]);
        st = as_nobody(out, sizeof(out), "ctl_client", args);
        if (change) {
            assert_int_equal(st, 1);
            assert_int_equal(atoi(out), MC_EPERM);
            assert_non_null(strstr(out, "may not"));
        } else {
            assert_int_equal(st, 0);
        }
    }
    /* Still running, nothing pinned. */
    assert_int_equal(ctl(NULL, "ping", 0), 0);
    const struct mc_reg_version *rv;
    mc_registry_refresh(D.reg, NULL);
    assert_int_equal(mc_registry_resolve(D.reg, "u", "1.0.0", &rv), 0);
    assert_false(rv->pinned);
    daemon_stop_clean();
}

/* Does mcached's log hold s? */
static bool log_has(const char *s)
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

/*
 * mcached may answer and close before it reads a request (too many
 * connections): the client reports that answer, not its broken pipe. It
 * returned the send's error even after reading the answer.
 */
static void test_answer_read_after_refused_send(void **state)
{
    static const char msg[] = "too many connections";
    struct mc_frame f = {.magic = MC_PROTO_MAGIC, .version = MC_PROTO_VERSION,
                         .type = MC_FRAME_RESPONSE, .length = sizeof(msg) - 1,
                         .status = MC_EBUSY};
    int sv[2], status = 0;
    char *body = NULL;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], &f, sizeof(f)), (ssize_t)sizeof(f));
    assert_int_equal(write(sv[1], msg, sizeof(msg) - 1), (ssize_t)sizeof(msg) - 1);
    close(sv[1]); /* before reading anything: the request's send fails */
    assert_int_equal(mc_ctl_call(sv[0], "ping", 0, NULL, 5000, &status, &body), 0);
    assert_int_equal(status, MC_EBUSY);
    assert_string_equal(body, msg);
    free(body);
    close(sv[0]);
}

/* A stop signal is logged with who sent it: a stop nobody meant can be traced. */
static void test_stop_names_its_sender(void **state)
{
    char want[128];

    (void)state;
    daemon_start_args(NULL);
    daemon_stop_clean();
    snprintf(want, sizeof(want), "Terminated from pid %d (uid %u, \"", (int)getpid(),
             (unsigned)getuid());
    if (!log_has(want)) {
        dump_log();
        fail_msg("the log does not name the sender: %s", want);
    }
    assert_true(log_has(program_invocation_short_name)); /* this program, by name */
}

/* The mode (and, unless -1, the owner and group) of the cache's file with suffix. */
static void assert_file(const char *suffix, unsigned mode, uid_t uid, gid_t gid)
{
    char path[400];
    struct stat st;

    if (!strcmp(suffix, ".sock"))
        snprintf(path, sizeof(path), "%s", D.sock);
    else
        snprintf(path, sizeof(path), "%s/mcache.t%s", D.shm, suffix);
    assert_int_equal(stat(path, &st), 0);
    if ((st.st_mode & 0777) != mode)
        fail_msg("%s has mode %04o, expected %04o", path, st.st_mode & 0777, mode);
    if (uid != (uid_t)-1)
        assert_int_equal(st.st_uid, uid);
    if (gid != (gid_t)-1)
        assert_int_equal(st.st_gid, gid);
}

/* The arena, its reader table and the socket: modes, and with uid/gid their owner. */
static void assert_files(unsigned arena, unsigned other, uid_t uid, gid_t gid)
{
    assert_file("", arena, uid, gid);
    assert_file(".readers", other, uid, gid);
    assert_file(".sock", other, uid, gid);
}

/* Wait (at most 2 s) until mcached's log holds s. */
static void log_wait(const char *s)
{
    for (int i = 0; i < 200 && !log_has(s); i++)
        sleep_ms(10);
    if (!log_has(s)) {
        dump_log();
        fail_msg("mcached never logged \"%s\"", s);
    }
}

/* Can uid nobody attach and verify m@1.0.0? Checked against what mcached allows. */
static void assert_nobody_reads(bool allowed)
{
    char args[400], out[1024], arena[400];
    int st;

    snprintf(args, sizeof(args), "verify %s t m 1.0.0", D.shm);
    snprintf(arena, sizeof(arena), "%s/mcache.t", D.shm);
    st = as_nobody(out, sizeof(out), "mp_reader", args);
    if (allowed) {
        assert_int_equal(st, 0);
        assert_string_equal(out, "ok 1.0.0 65536\n");
        return;
    }
    /* Refused at the arena, with the file named and what to ask for. */
    assert_int_equal(st, 2);
    assert_non_null(strstr(out, arena));
    assert_non_null(strstr(out, "does not admit uid 65534"));
    assert_non_null(strstr(out, "--reader-group"));
}

/*
 * Safe by default: without --reader-group the arena is 0640, the reader
 * table and the socket 0660, all mcached's uid and primary group; another
 * uid can neither attach nor talk to mcached (review find: the arena was
 * 0644 and the table 0666, so every local user could read every model and
 * pin memory forever).
 */
static void test_default_admits_only_owner_and_group(void **state)
{
    char args[400], out[1024];

    (void)state;
    push("m", "1.0.0", 65536, 4);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 2, "m", "1.0.0"), 0);
    assert_files(0640, 0660, geteuid(), getegid());
    assert_true(log_has("access: owner+group "));
    assert_false(log_has("ANY LOCAL USER"));
    if (!can_be_nobody()) {
        printf("# other-uid part not run: needs root and setpriv to act as uid nobody\n");
        daemon_stop_clean();
        return;
    }
    assert_nobody_reads(false);
    snprintf(args, sizeof(args), "%s status", D.sock);
    assert_int_equal(as_nobody(out, sizeof(out), "ctl_client", args), 2);
    assert_non_null(strstr(out, D.sock));
    assert_non_null(strstr(out, "does not admit uid 65534"));
    daemon_stop_clean();
}

/* --reader-group '*' opens the cache to every local user, and says so. */
static void test_reader_group_any_is_explicit_and_loud(void **state)
{
    const char *anyone[] = {"--reader-group", "*", NULL};

    (void)state;
    push("m", "1.0.0", 65536, 4);
    daemon_start_args(anyone);
    assert_int_equal(ctl(NULL, "load", 2, "m", "1.0.0"), 0);
    assert_files(0644, 0666, geteuid(), (gid_t)-1);
    assert_true(log_has("reader-group \"*\": ANY LOCAL USER can read every model"));
    if (can_be_nobody())
        assert_nobody_reads(true);
    daemon_stop_clean();
}

/*
 * A warm restart gives the adopted arena the modes of the options it starts
 * with, whatever the last run gave it: "*", then a group, then the default.
 */
static void test_arena_permissions_follow_reader_group(void **state)
{
    const char *anyone[] = {"--reader-group", "*", NULL};
    const char *grp[] = {"--reader-group", "nogroup", NULL};
    struct group *g = getgrnam("nogroup");

    (void)state;
    daemon_start_args(anyone);
    assert_files(0644, 0666, (uid_t)-1, (gid_t)-1);
    daemon_stop_clean();
    if (g) {
        daemon_start_args(grp); /* adopts the arena and tightens it */
        assert_true(log_has("(adopted in"));
        assert_files(0640, 0660, geteuid(), g->gr_gid);
        daemon_stop_clean();
    } else {
        printf("# group part not run: no group \"nogroup\" on this machine\n");
    }
    daemon_start_args(NULL);
    assert_files(0640, 0660, geteuid(), getegid());
    daemon_stop_clean();
}

/*
 * SIGHUP re-applies the groups to the files at once: from "*" to the
 * default the arena closes to other users (new attaches are refused), and
 * back to "*" it opens again, with the warning logged again.
 */
static void test_sighup_applies_access_to_files(void **state)
{
    char conf[400];
    FILE *f;

    (void)state;
    push("m", "1.0.0", 65536, 4);
    snprintf(conf, sizeof(conf), "%s/mcached.conf", D.root);
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("reader-group = *\n", f);
    fclose(f);
    daemon_start_args((const char *const[]){"--config", conf, NULL});
    assert_int_equal(ctl(NULL, "load", 2, "m", "1.0.0"), 0);
    assert_files(0644, 0666, (uid_t)-1, (gid_t)-1);
    f = fopen(conf, "w");
    assert_non_null(f);
    fclose(f);
    kill(D.pid, SIGHUP);
    log_wait("SIGHUP: access changed from any local user to owner+group ");
    assert_files(0640, 0660, geteuid(), getegid());
    if (can_be_nobody())
        assert_nobody_reads(false);
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("reader-group = *\n", f);
    fclose(f);
    kill(D.pid, SIGHUP);
    log_wait("SIGHUP: reader-group \"*\": ANY LOCAL USER can read every model");
    assert_files(0644, 0666, (uid_t)-1, (gid_t)-1);
    if (can_be_nobody())
        assert_nobody_reads(true);
    daemon_stop_clean();
}

/*
 * The lock file is mcached's alone, whatever the groups (review find: it was
 * 0644, and flock needs only read access, so any local user could hold it
 * and keep every later mcached from serving the cache, with exit 75 blaming
 * "another mcached"). One an older mcached left 0644 is made private too.
 */
static void test_lock_file_is_mcacheds_alone(void **state)
{
    const char *anyone[] = {"--reader-group", "*", NULL};
    char lock[400], cmd[600];
    int fd;

    (void)state;
    snprintf(lock, sizeof(lock), "%s/mcache.t.lock", D.shm);
    fd = open(lock, O_RDWR | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(fchmod(fd, 0644), 0);
    close(fd);
    daemon_start_args(anyone);
    assert_file(".lock", 0600, geteuid(), (gid_t)-1);
    daemon_stop_clean();
    if (!can_be_nobody()) {
        printf("# other-uid part not run: needs root and setpriv to act as uid nobody\n");
        return;
    }
    /* Stopped: nobody could take the lock now if it could open the file. */
    snprintf(cmd, sizeof(cmd),
             "setpriv --reuid=nobody --regid=nogroup --clear-groups flock -n %s true 2>/dev/null",
             lock);
    assert_true(system(cmd) != 0);
}

/*
 * A worker inside a lookup when mcached restarts. Adoption waits for it to
 * leave; one that never leaves (a stopped process) holds it back at most
 * MC_ADOPT_GRACE_NS, then the arena is replaced, and that worker keeps the
 * mapping it had. A worker attaching afterwards gets the new arena.
 */
static void test_restart_waits_for_pinned_reader(void **state)
{
    char line[256], path[400], out[256];
    struct stat st0, st1;
    FILE *in, *rout;
    uint64_t t0, waited;
    pid_t pid, poker;

    (void)state;
    snprintf(path, sizeof(path), "%s/mcache.t", D.shm);
    push("g", "1.0.0", 1u << 20, 21);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 2, "g", "1.0.0"), 0);
    assert_int_equal(stat(path, &st0), 0);

    /* 1. The worker leaves its lookup 1 s into the restart: adopted. */
    pid = helper_start("pin", NULL, NULL, &in, &rout, line, sizeof(line));
    assert_int_equal(strncmp(line, "pinned ", 7), 0);
    daemon_stop_clean();
    poker = fork();
    if (poker == 0) {
        sleep_ms(1000);
        _exit(write(fileno(in), "go\n", 3) == 3 ? 0 : 1);
    }
    t0 = mc_mono_ns();
    daemon_start_args(NULL);
    waited = mc_mono_ns() - t0;
    assert_int_equal(WEXITSTATUS(wait_status(poker)), 0);
    assert_non_null(fgets(line, sizeof(line), rout));
    assert_string_equal(line, "unpinned\n");
    fclose(in);
    assert_int_equal(WEXITSTATUS(wait_status(pid)), 0);
    fclose(rout);
    assert_true(waited >= 1000000000ull); /* it did wait for the worker */
    assert_int_equal(stat(path, &st1), 0);
    assert_int_equal(st1.st_ino, st0.st_ino); /* the same arena, adopted */
    assert_string_equal(model_state("g", "1.0.0"), "resident");

    /* 2. The worker is stopped inside its lookup: replaced after the grace. */
    pid = helper_start("pin", NULL, NULL, &in, &rout, line, sizeof(line));
    assert_int_equal(strncmp(line, "pinned ", 7), 0);
    kill(pid, SIGSTOP);
    daemon_stop_clean();
    t0 = mc_mono_ns();
    daemon_start_args(NULL);
    waited = mc_mono_ns() - t0;
    assert_true(waited >= 10000000000ull); /* MC_ADOPT_GRACE_NS */
    assert_true(log_has("has been inside a lookup since before the restart"));
    assert_true(log_has("replacing it"));
    assert_int_equal(stat(path, &st1), 0);
    assert_true(st1.st_ino != st0.st_ino); /* a new arena */
    /* The stopped worker, continued, finds its old mapping intact. */
    kill(pid, SIGCONT);
    fputs("go\n", in);
    fflush(in);
    assert_non_null(fgets(line, sizeof(line), rout));
    assert_string_equal(line, "unpinned\n");
    fclose(in);
    assert_int_equal(WEXITSTATUS(wait_status(pid)), 0);
    fclose(rout);
    /* A new worker gets the model from the new arena. */
    assert_int_equal(reader(out, sizeof(out), "getload", "g", "1.0.0", "10000"), 0);
    assert_string_equal(out, "ok 1.0.0 1048576\n");
    daemon_stop_clean();
}

/*
 * Bad options are refused before anything is created: no store, no arena
 * (whose memory would be committed first), no socket. Each error names the
 * option or the value and says what is wrong.
 */
static void test_bad_options_change_nothing(void **state)
{
    static const char *const no_group[2] = {"group", "\"mc-no-such-group\" does not exist"};
    char longsock[420], conf_long[400], conf_unknown[400], conf_dup[400];
    const struct {
        const char *opt, *value;
        int status;
        const char *const *says;
    } cases[] = {
        {"--reader-group", "mc-no-such-group", 2, no_group},
        {"--admin-group", "mc-no-such-group", 2, no_group},
        {"--shm-dir", "/nonexistent-mc", 2,
         (const char *const[]){"shm-dir \"/nonexistent-mc\"", "No such file"}},
        {"--cache", "bad/name", 2, (const char *const[]){"cache name \"bad/name\"", "use letters"}},
        {"--size", "1K", 2, (const char *const[]){"arena size 65536", "give --size"}},
        /* larger than the cache name's default address slot: say --base */
        {"--size", "1000T", 2, (const char *const[]){"16 GiB address slot", "--base ADDR"}},
        {"--index-size", "64K", 2, (const char *const[]){"index size 65536", "--index-size 1M"}},
        {"--socket", longsock, 2, (const char *const[]){"socket path", "longer than 107 bytes"}},
        /* a line longer than the reader's buffer: its tail was read as a line of its own */
        {"--config", conf_long, 2, (const char *const[]){"long.conf:2: the line is longer", "shorten"}},
        {"--config", conf_unknown, 2, (const char *const[]){"unknown.conf:1:", "colour"}},
        {"--config", conf_dup, 2,
         (const char *const[]){"dup.conf:2: max-loads is given twice", "first at line 1"}},
        {"--size", "0", 2, (const char *const[]){"size must not be 0", "leave it out"}},
        /* decimal only: 0x10 was 16 and 010 was 8 */
        {"--max-loads", "0x10", 2, (const char *const[]){"max-loads must be a number", "\"0x10\""}},
    };
    char store[400], arena[400];
    struct stat st;

    (void)state;
    snprintf(longsock, sizeof(longsock), "%s/%0150d", D.root, 0);
    snprintf(conf_long, sizeof(conf_long), "%s/long.conf", D.root);
    snprintf(conf_unknown, sizeof(conf_unknown), "%s/unknown.conf", D.root);
    FILE *f = fopen(conf_long, "w");
    assert_non_null(f);
    fprintf(f, "# fine\nsize = 64M%1100s log-level = error\n", "");
    fclose(f);
    f = fopen(conf_unknown, "w");
    assert_non_null(f);
    fprintf(f, "colour = blue\n");
    fclose(f);
    snprintf(conf_dup, sizeof(conf_dup), "%s/dup.conf", D.root);
    f = fopen(conf_dup, "w");
    assert_non_null(f);
    fprintf(f, "max-loads = 2\nmax-loads = 3\n");
    fclose(f);
    snprintf(store, sizeof(store), "%s/new-store", D.root);
    snprintf(arena, sizeof(arena), "%s/mcache.t", D.shm);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int status = mcached_run((const char *const[]){"--store", store, "--cache", "t",
                                                       "--socket", D.sock, cases[i].opt,
                                                       cases[i].value, NULL});

        if (!WIFEXITED(status) || WEXITSTATUS(status) != cases[i].status ||
            !log_has(cases[i].says[0]) || !log_has(cases[i].says[1])) {
            dump_log();
            fail_msg("%s %s: status %d, want exit %d saying \"%s\" and \"%s\"", cases[i].opt,
                     cases[i].value, status, cases[i].status, cases[i].says[0], cases[i].says[1]);
        }
        assert_int_equal(stat(store, &st), -1);    /* no store made */
        assert_int_equal(stat(arena, &st), -1);    /* no arena made */
        assert_int_equal(stat(D.sock, &st), -1);   /* no socket left */
        assert_int_equal(stat(longsock, &st), -1);
    }
    /* With --base the slot does not bind, but the top of user space and the
     * directory's free space do. */
    static const struct {
        const char *base, *size;
        int status;
        const char *says;
    } given[] = {
        {"0x700000000000", "2000T", 2, "past the top of user space"},
        {"0x100000000000", "100T", 1, "does not fit in"},
    };
    for (size_t i = 0; i < sizeof(given) / sizeof(given[0]); i++) {
        int status = mcached_run((const char *const[]){"--store", store, "--cache", "t",
                                                       "--socket", D.sock, "--base", given[i].base,
                                                       "--size", given[i].size, NULL});

        if (!WIFEXITED(status) || WEXITSTATUS(status) != given[i].status ||
            !log_has(given[i].says)) {
            dump_log();
            fail_msg("--base %s --size %s: status %d, want exit %d saying \"%s\"", given[i].base,
                     given[i].size, status, given[i].status, given[i].says);
        }
        assert_int_equal(stat(store, &st), -1);
        assert_int_equal(stat(arena, &st), -1);
    }
}

/* A second mcached, on the same cache or the same socket, creates nothing. */
static void test_second_daemon_creates_nothing(void **state)
{
    char store[400], path[400];
    struct stat st;
    int status;

    (void)state;
    daemon_start_args(NULL);
    snprintf(store, sizeof(store), "%s/other-store", D.root);
    status = mcached_run((const char *const[]){"--store", store, "--cache", "t", "--socket",
                                              D.sock, NULL});
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 75);
    assert_true(log_has("already serves cache \"t\""));
    assert_int_equal(stat(store, &st), -1); /* no store made */
    status = mcached_run((const char *const[]){"--store", store, "--cache", "t2", "--socket",
                                              D.sock, NULL});
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_true(log_has("another mcached is listening on"));
    assert_int_equal(stat(store, &st), -1);
    snprintf(path, sizeof(path), "%s/mcache.t2", D.shm);
    assert_int_equal(stat(path, &st), -1); /* no arena committed */
    assert_int_equal(ctl(NULL, "ping", 0), 0); /* the first one is untouched */
    daemon_stop_clean();
}

/*
 * SIGHUP re-reads the config file under the command line, as at start (the
 * file's log-level used to override --log-level), and names every changed
 * key that needs a restart.
 */
static void test_sighup_keeps_command_line_precedence(void **state)
{
    char conf[400], arg[420];
    FILE *f;

    (void)state;
    snprintf(conf, sizeof(conf), "%s/mcached.conf", D.root);
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("log-level = error\n", f);
    fclose(f);
    snprintf(arg, sizeof(arg), "%s", conf);
    daemon_start_args((const char *const[]){"--config", arg, NULL}); /* --log-level debug wins */
    f = fopen(conf, "w");
    assert_non_null(f);
    fputs("log-level = error\nio-uring = off\nreader-slots = 64\n", f);
    fclose(f);
    kill(D.pid, SIGHUP);
    for (int i = 0; i < 200 && !log_has("SIGHUP: re-read"); i++)
        sleep_ms(10);
    assert_true(log_has("SIGHUP: re-read")); /* an info line: still at debug */
    assert_true(log_has("SIGHUP: reader-slots, io-uring changed; that takes effect only after a "
                        "restart"));
    assert_int_equal(ctl(NULL, "ping", 0), 0);
    daemon_stop_clean();
}

/* Send raw bytes on a fresh connection; read whatever comes back. */
static void send_raw(const void *buf, size_t len, bool wait_reply)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    char junk[256];

    snprintf(sa.sun_path, sizeof(sa.sun_path), "%.107s", D.sock);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    if (len)
        (void)!send(fd, buf, len, MSG_NOSIGNAL);
    if (wait_reply) {
        struct timeval tv = {.tv_sec = 2};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)!recv(fd, junk, sizeof(junk), 0);
    }
    close(fd);
}

/* Moving an alias to a version that needs room must not evict the version
 * the alias still points at (review find: only registry aliases were
 * protected, so the old target could go mid-switch). */
static void test_blue_green_keeps_old_target(void **state)
{
    const char *small[] = {"--size", "64M", "--index-size", "4M", NULL};
    const uint64_t MB = 1u << 20;
    char out[256];

    (void)state;
    push("A", "1.0.0", 20 * MB, 1);
    push("A", "2.0.0", 20 * MB, 2);
    push("C", "1.0.0", 20 * MB, 3);
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "1.0.0", NULL), 0);
    daemon_start_args(small);
    assert_int_equal(ctl(NULL, "load", 2, "A", "prod"), 0);
    sleep_ms(20);
    assert_int_equal(ctl(NULL, "load", 2, "C", "1.0.0"), 0); /* C is newer than A@1 */
    /* A@2 needs 20 MiB: one of A@1 and C must go. A@1 is the least recently
     * used, but prod points at it until A@2 is ready: C goes. */
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "2.0.0", NULL), 0);
    for (int i = 0; i < 500 && strcmp(model_state("A", "2.0.0"), "resident"); i++)
        sleep_ms(10);
    assert_string_equal(model_state("A", "2.0.0"), "resident");
    assert_string_equal(model_state("C", "1.0.0"), "registered");
    assert_string_equal(model_state("A", "1.0.0"), "resident");
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "prod", NULL), 0);
    assert_string_equal(out, "ok 2.0.0 20971520\n");
    daemon_stop_clean();
}

/* Replace name@version's artifact in the store (made writable first). */
static void artifact_path(const char *name, const char *version, char *path, size_t len)
{
    snprintf(path, len, "%s/models/%s/%s/artifact", D.store, name, version);
}

/*
 * While the version an alias moved to cannot load, the arena alias keeps
 * serving the old one: an operator's evict of the old one is refused (it
 * used to succeed, leaving workers of the alias with nothing to serve).
 */
static void test_evict_refused_while_alias_serves_old(void **state)
{
    const uint64_t MB = 1u << 20;
    char path[600], out[256], *body = NULL;
    FILE *f;

    (void)state;
    push("A", "1.0.0", MB, 1);
    push("A", "2.0.0", MB, 2);
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "1.0.0", NULL), 0);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 2, "A", "prod"), 0);
    artifact_path("A", "2.0.0", path, sizeof(path));
    chmod(path, 0644);
    f = fopen(path, "r+");
    assert_non_null(f);
    fseek(f, 4096, SEEK_SET);
    fputc(0x5a ^ fgetc(f), f); /* a bit flip: A@2 can never verify */
    fclose(f);
    assert_int_equal(mc_registry_alias_set(D.reg, "A", "prod", "2.0.0", NULL), 0);
    for (int i = 0; i < 500 && strcmp(model_state("A", "2.0.0"), "failed"); i++)
        sleep_ms(10);
    assert_string_equal(model_state("A", "2.0.0"), "failed");
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "prod", NULL), 0);
    assert_string_equal(out, "ok 1.0.0 1048576\n"); /* the old one still serves */
    assert_int_equal(ctl(&body, "evict", 2, "A", "1.0.0"), MC_EBUSY);
    assert_non_null(strstr(body, "still serves an alias"));
    free(body);
    assert_string_equal(model_state("A", "1.0.0"), "resident");
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "prod", NULL), 0);
    /* Removing it from the registry (as gc would) waits for the switch too:
     * the alias keeps serving it (it used to be dropped, and prod with it). */
    assert_int_equal(mc_registry_remove_version(D.reg, "A", "1.0.0", false, NULL), 0);
    assert_int_equal(ctl(NULL, "reload", 0), 0);
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "prod", NULL), 0);
    assert_string_equal(out, "ok 1.0.0 1048576\n");
    /* Once no alias serves it, it goes. */
    assert_int_equal(mc_registry_alias_remove(D.reg, "A", "prod", NULL), 0);
    assert_int_equal(ctl(NULL, "reload", 0), 0);
    assert_string_equal(model_state("A", "1.0.0"), "");
    assert_int_equal(reader(out, sizeof(out), "verify", "A", "1.0.0", NULL), 3);
    daemon_stop_clean();
}

/*
 * Refused without side effects: an artifact replaced by a FIFO (opening it
 * froze the daemon), and a model larger than the whole arena (it evicted
 * every model it could, then failed).
 */
static void test_unloadable_refused_at_once(void **state)
{
    const char *small[] = {"--size", "64M", "--index-size", "4M", NULL};
    const uint64_t MB = 1u << 20;
    char path[600], *body = NULL;

    (void)state;
    push("F", "1.0.0", MB, 5);
    push("S", "1.0.0", 8 * MB, 6);
    push("huge", "1.0.0", 80 * MB, 7);
    daemon_start_args(small);
    assert_int_equal(ctl(NULL, "load", 2, "S", "1.0.0"), 0);
    artifact_path("F", "1.0.0", path, sizeof(path));
    chmod(path, 0644);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(mkfifo(path, 0644), 0);
    assert_int_equal(ctl(&body, "load", 3, "F", "1.0.0", "10000"), MC_ECORRUPT);
    assert_non_null(strstr(body, "not a regular file"));
    free(body);
    assert_int_equal(ctl(NULL, "ping", 0), 0); /* still serving */
    assert_int_equal(ctl(&body, "load", 3, "huge", "1.0.0", "10000"), MC_ENOSPC);
    assert_non_null(strstr(body, "larger than the arena's whole data region"));
    free(body);
    assert_string_equal(model_state("S", "1.0.0"), "resident"); /* nothing evicted */
    daemon_stop_clean();
}

/* SIGTERM during a load abandons it: the version is not marked failed for workers. */
static void test_stop_during_load_is_not_a_failure(void **state)
{
    const char *slow[] = {"--queue-depth", "1", "--chunk-size", "4K", NULL};
    char out[256];
    pid_t asker;
    int st;

    (void)state;
    push("big", "1.0.0", 256u << 20, 9);
    daemon_start_args(slow);
    asker = fork();
    if (asker == 0)
        _exit(ctl(NULL, "load", 2, "big", "1.0.0") == MC_ENODAEMON ? 0 : 1);
    for (int i = 0; i < 500 && strcmp(model_state("big", "1.0.0"), "loading"); i++)
        sleep_ms(2);
    /* 65,536 direct 4 KiB reads one at a time: far longer than the polling above. */
    assert_string_equal(model_state("big", "1.0.0"), "loading");
    daemon_stop_clean();
    st = wait_status(asker);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0); /* the waiter heard "shutting down" */
    assert_int_equal(reader(out, sizeof(out), "verify", "big", "1.0.0", NULL), 3);
    assert_non_null(strstr(out, "not loaded"));
    assert_null(strstr(out, "failed"));
}

/* Write a safetensors file: tensors "w" F32 [2,3] = 0..5 and "b" F32 [3] = 1,1,1. */
static void push_safetensors(const char *name, const char *version, const char *header_override)
{
    const char *hdr = header_override
                          ? header_override
                          : "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                            "\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[24,36]},"
                            "\"__metadata__\":{\"format\":\"pt\"}}";
    float vals[9] = {0, 1, 2, 3, 4, 5, 1, 1, 1};
    char path[400], padded[1024];
    uint64_t n;
    FILE *f;

    /* Pad with spaces to 8 bytes, as safetensors writers do, so data is aligned. */
    snprintf(padded, sizeof(padded), "%-*s", (int)((strlen(hdr) + 7) / 8 * 8), hdr);
    hdr = padded;
    n = strlen(hdr);

    snprintf(path, sizeof(path), "%s/%s.safetensors", D.root, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fwrite(&n, 8, 1, f), 1); /* little-endian host */
    assert_int_equal(fwrite(hdr, 1, n, f), n);
    assert_int_equal(fwrite(vals, 4, 9, f), 9);
    fclose(f);
    assert_int_equal(mc_registry_push(D.reg, name, version, path, NULL, NULL), 0);
}

static void test_safetensors_tensors(void **state)
{
    char out[256], *body = NULL;

    (void)state;
    push_safetensors("st", "1.0.0", NULL);
    push_safetensors("bad", "1.0.0",
                     "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
                     "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,36]}}");
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 2, "st", "1.0.0"), 0);
    assert_int_equal(reader(out, sizeof(out), "tensor", "st", "1.0.0", "w"), 0);
    assert_string_equal(out, "2 F32 2x3 aligned 1 sum 15\n");
    assert_int_equal(reader(out, sizeof(out), "tensor", "st", "1.0.0", "b"), 0);
    assert_string_equal(out, "2 F32 3 aligned 1 sum 3\n");
    assert_int_equal(reader(out, sizeof(out), "tensor", "st", "1.0.0", "nope"), 3);
    assert_non_null(strstr(out, "no tensor \"nope\""));
    /* A header that does not add up is refused at load, naming the tensor. */
    assert_int_equal(ctl(&body, "load", 2, "bad", "1.0.0"), MC_EFAILED); /* the file's fault */
    assert_non_null(strstr(body, "bad@1.0.0 failed to load: "));
    assert_non_null(strstr(body, "tensor \"b\" has 4 elements of F32 (16 bytes) but spans 12"));
    free(body);
    assert_string_equal(model_state("bad", "1.0.0"), "failed");
    daemon_stop_clean();
}

/* JSON number at "loads":{..."ok":N} in status. */
static long loads_ok(void)
{
    char *body = NULL;
    long n;
    json_t *j;

    assert_int_equal(ctl(&body, "status", 0), 0);
    j = json_loads(body, 0, NULL);
    free(body);
    n = (long)json_integer_value(json_object_get(json_object_get(j, "loads"), "ok"));
    json_decref(j);
    return n;
}

/* Workers that ask for a non-resident model wait for one shared load; a
 * deadline that is too short is a clean MC_ETIMEDOUT. */
static void test_get_load_shared_and_timeout(void **state)
{
    const char *slow[] = {"--queue-depth", "1", "--chunk-size", "64K", NULL};
    char prog[512], cmd[1024], out[256];
    FILE *w[3];
    long before;

    (void)state;
    push("g", "1.0.0", 48u << 20, 21);
    push("h", "1.0.0", 300u << 20, 22);
    daemon_start_args(slow);
    before = loads_ok();
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof(cmd), "%s getload %s t g ^1 30000",
                 helper_path("mp_reader", prog, sizeof(prog)), D.shm);
        w[i] = popen(cmd, "r");
        assert_non_null(w[i]);
    }
    for (int i = 0; i < 3; i++) {
        assert_non_null(fgets(out, sizeof(out), w[i]));
        assert_int_equal(pclose(w[i]), 0);
        assert_string_equal(out, "ok 1.0.0 50331648\n");
    }
    assert_int_equal(loads_ok(), before + 1); /* three waiters, one load */
    /* 300 MiB at 64 KiB per read cannot load in 50 ms. */
    assert_int_equal(reader(out, sizeof(out), "getload", "h", "1.0.0", "50"), 3);
    char want[32];
    snprintf(want, sizeof(want), "error %d", MC_ETIMEDOUT);
    assert_int_equal(strncmp(out, want, strlen(want)), 0);
    assert_non_null(strstr(out, "timed out"));
    daemon_stop_clean();
}

/*
 * The registry is the authority: a version pushed a moment ago by another
 * process is found by mc_get_load() at once, new names and new versions of a
 * known name alike, a thousand times in a row (mc_get_load answered MC_ENOENT
 * without asking mcached when the arena did not know the name yet).
 */
static void test_push_then_get_load_always_finds_it(void **state)
{
    char first[64], out[512], want[128], name[32], version[32];
    FILE *in, *rd;
    pid_t pid;

    (void)state;
    daemon_start_args(NULL);
    pid = helper_start("getloads", "30000", NULL, &in, &rd, first, sizeof(first));
    assert_string_equal(first, "ready\n");
    for (int i = 0; i < 1000; i++) {
        if (i % 2)
            snprintf(name, sizeof(name), "p");
        else
            snprintf(name, sizeof(name), "q%d", i);
        snprintf(version, sizeof(version), "1.0.%d", i);
        uint32_t seed = (uint32_t)i;
        while (pattern_byte(seed, 8) == '{') /* would be taken for a safetensors header */
            seed++;
        push(name, version, 4096 + (uint64_t)i, seed);
        fprintf(in, "%s %s\n", name, version);
        fflush(in);
        assert_non_null(fgets(out, sizeof(out), rd));
        snprintf(want, sizeof(want), "ok %s %s\n", name, version);
        if (strcmp(out, want) != 0) {
            fprintf(stderr, "push %d of %s@%s, then get_load: %s", i, name, version, out);
            dump_log();
            fail();
        }
    }
    fclose(in);
    fclose(rd);
    assert_int_equal(wait_status(pid), 0);
    daemon_stop_clean();
}

/*
 * Ready means mirrored: the moment mcached accepts a connection, the arena
 * knows every version the registry had at its start. It used to listen first
 * and mirror after, so a worker that connected at once was told "no model".
 * Ten restarts, each with a version pushed while mcached was down, behind 500
 * others so that the mirror takes a while.
 */
static void test_ready_means_mirrored(void **state)
{
    char version[32];

    (void)state;
    for (int i = 0; i < 500; i++) {
        snprintf(version, sizeof(version), "1.0.%d", i);
        push("bulk", version, 4096, (uint32_t)i);
    }
    for (int k = 0; k < 10; k++) {
        const char *argv[] = {"mcached", "--store", D.store, "--shm-dir", D.shm, "--cache", "t",
                              "--socket", D.sock, "--size", "256M", NULL};
        mc_cache *c;
        mc_model *m;
        int fd, rc;

        snprintf(version, sizeof(version), "2.0.%d", k);
        push("r", version, 4096, 1000u + (uint32_t)k);
        D.pid = mcached_spawn(argv, true);
        while (mc_ctl_connect(D.sock, &fd) != 0) { /* as soon as it accepts */
            assert_int_equal(waitpid(D.pid, NULL, WNOHANG), 0);
            sleep_ms(1);
        }
        close(fd);
        assert_int_equal(mc_attach_dir(D.shm, "t", &c), 0);
        rc = mc_get(c, "r", version, &m);
        if (rc != MC_ENOTRESIDENT)
            fprintf(stderr, "restart %d: get r@%s: %d %s\n", k, version, rc, mc_last_error());
        assert_int_equal(rc, MC_ENOTRESIDENT); /* registered, not loaded: not "no model" */
        mc_detach(c);
        daemon_stop_clean();
    }
}

/* A version removed while it loads: the load is cancelled (its extent freed
 * once the kernel is done with it) and the daemon goes on loading others
 * (the cancel used to finish the load twice, wrecking the count of loads in
 * flight, so nothing loaded again). */
static void test_remove_while_loading(void **state)
{
    const char *slow[] = {"--queue-depth", "1", "--chunk-size", "64K", NULL};
    char prog[512], cmd[1024], *body = NULL;
    uint64_t used0;

    (void)state;
    push("big", "1.0.0", 300u << 20, 6);
    push("small", "1.0.0", 1u << 20, 7);
    daemon_start_args(slow);
    assert_int_equal(ctl(&body, "status", 0), 0);
    json_t *j = json_loads(body, 0, NULL);
    used0 = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "arena"), "data_used"));
    json_decref(j);
    free(body);
    snprintf(cmd, sizeof(cmd), "%s %s load big 1.0.0 >/dev/null 2>&1 &",
             helper_path("ctl_client", prog, sizeof(prog)), D.sock);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < 500 && strcmp(model_state("big", "1.0.0"), "loading"); i++)
        sleep_ms(5);
    assert_string_equal(model_state("big", "1.0.0"), "loading");
    assert_int_equal(mc_registry_remove_version(D.reg, "big", "1.0.0", true, NULL), 0);
    for (int i = 0; i < 500 && model_state("big", "1.0.0")[0]; i++)
        sleep_ms(10);
    assert_string_equal(model_state("big", "1.0.0"), ""); /* gone */
    /* Loading goes on. */
    assert_int_equal(ctl(NULL, "load", 3, "small", "1.0.0", "10000"), 0);
    assert_string_equal(model_state("small", "1.0.0"), "resident");
    assert_int_equal(ctl(&body, "status", 0), 0);
    j = json_loads(body, 0, NULL);
    free(body);
    json_t *loads = json_object_get(j, "loads");
    assert_int_equal(json_integer_value(json_object_get(loads, "in_flight")), 0);
    /* Only small's bytes are allocated: big's extent went back. */
    uint64_t used = (uint64_t)json_integer_value(json_object_get(json_object_get(j, "arena"),
                                                                 "data_used"));
    json_decref(j);
    assert_int_equal(used - used0, 1u << 20);
    daemon_stop_clean();
}

/* Without io_uring (pread), without O_DIRECT (buffered), and a store on tmpfs. */
static void test_cold_path_fallbacks(void **state)
{
    const char *no_uring[] = {"--io-uring", "off", NULL};
    const char *no_direct[] = {"--direct-io", "off", NULL};
    char out[256], cmd[700];

    (void)state;
    push("p", "1.0.0", (3u << 20) + 5, 31);
    daemon_start_args(no_uring);
    assert_int_equal(ctl(NULL, "load", 2, "p", "1.0.0"), 0);
    assert_int_equal(reader(out, sizeof(out), "verify", "p", "1.0.0", NULL), 0);
    daemon_stop_clean();
    snprintf(cmd, sizeof(cmd), "grep -q 'loading with pread' %s", D.log);
    assert_int_equal(system(cmd), 0);
    daemon_start_args(no_direct);
    assert_int_equal(ctl(NULL, "evict", 2, "p", "1.0.0"), 0);
    assert_int_equal(ctl(NULL, "load", 2, "p", "1.0.0"), 0);
    assert_int_equal(reader(out, sizeof(out), "verify", "p", "1.0.0", NULL), 0);
    daemon_stop_clean();
    snprintf(cmd, sizeof(cmd), "grep -q 'reading through the page cache' %s", D.log);
    assert_int_equal(system(cmd), 0);
    /* tmpfs: O_DIRECT since Linux 6.6, buffered (and said so) before. */
    mc_registry_close(D.reg);
    snprintf(D.store, sizeof(D.store), "%s/store", D.shm);
    struct mc_registry_opts o = {.flags = MC_REGISTRY_CREATE};
    assert_int_equal(mc_registry_open(D.store, &o, &D.reg), 0);
    push("q", "1.0.0", (2u << 20) + 77, 32);
    daemon_start_args(NULL);
    assert_int_equal(ctl(NULL, "load", 2, "q", "1.0.0"), 0);
    assert_int_equal(reader(out, sizeof(out), "verify", "q", "1.0.0", NULL), 0);
    daemon_stop_clean();
}

/* A request that arrives together with the registry change it depends on is
 * answered from the new registry, and the change is still mirrored (review
 * find: the request's refresh used to swallow the change). */
static void test_request_races_registry_change(void **state)
{
    const char *args[] = {"r", "2.0.0"};
    char *body = NULL;
    int fd, status = 0;

    (void)state;
    push("r", "1.0.0", 65536, 1);
    daemon_start_args(NULL);
    /* Connected before; the request and the push land while it is stopped,
     * so it sees the request before the inotify event. */
    assert_int_equal(mc_ctl_connect(D.sock, &fd), 0);
    sleep_ms(100);
    kill(D.pid, SIGSTOP);
    pid_t sender = fork();
    if (sender == 0) { /* blocks until the daemon answers */
        char *b = NULL;
        int st = 0;
        _exit(mc_ctl_call(fd, "load", 2, args, 30000, &st, &b) == 0 && st == 0 ? 0 : 1);
    }
    sleep_ms(200); /* the request is in the socket */
    push("r", "2.0.0", 65536, 2);
    kill(D.pid, SIGCONT);
    int st = wait_status(sender);
    close(fd);
    (void)body;
    (void)status;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_string_equal(model_state("r", "2.0.0"), "resident");
    daemon_stop_clean();
}

/* CPU seconds the daemon has used (utime + stime). */
static double daemon_cpu(void)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)D.pid);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(buf, sizeof(buf), f));
    fclose(f);
    /* fields 14 and 15, after the parenthesised command */
    assert_int_equal(sscanf(strrchr(buf, ')') + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                            &ut, &st),
                     2);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long daemon_rss_kb(void)
{
    char path[64], line[256];
    long kb = -1;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)D.pid);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

/* A client that pipelines requests and never reads the answers, and one that
 * sends more while waiting for a load, must not make the daemon spin or grow
 * (review finds: quadratic reply buffering; a level-triggered busy loop). */
/*
 * Past the connection limit a client is told so in an answer (it read a
 * broken pipe and took mcached for dead); the refusals are logged and
 * counted in status.
 */
static void test_too_many_connections_answered(void **state)
{
    enum { N = 256 + 16 + 8 }; /* past MC_CTL_MAX_CONNS + MC_CTL_ADMIN_RESERVE */
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fds[N], status = 0;
    char *body = NULL;

    (void)state;
    daemon_start_args(NULL);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%.107s", D.sock);
    for (int i = 0; i < N; i++) {
        fds[i] = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)), 0);
    }
    for (int i = 0; i < 100 && status != MC_EBUSY; i++) { /* until it accepted them all */
        sleep_ms(10);
        free(body);
        body = NULL;
        status = ctl(&body, "ping", 0);
    }
    assert_int_equal(status, MC_EBUSY);
    assert_non_null(strstr(body, "connections open, its limit"));
    free(body);
    for (int i = 0; i < N; i++)
        close(fds[i]);
    status = -1;
    for (int i = 0; i < 100 && status != 0; i++) {
        sleep_ms(10);
        status = ctl(&body, "status", 0);
        if (status)
            free(body);
    }
    assert_int_equal(status, 0);
    assert_non_null(strstr(body, "\"refused\":"));
    assert_null(strstr(body, "\"refused\":0"));
    free(body);
    assert_true(log_has("refused a connection from pid"));
    daemon_stop_clean();
}

static void test_clients_cannot_hog_the_daemon(void **state)
{
    const char *slow[] = {"--queue-depth", "1", "--chunk-size", "64K", NULL};
    struct mc_frame f = {.magic = MC_PROTO_MAGIC, .version = 1, .type = MC_FRAME_REQUEST,
                         .length = 7};
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char frame[sizeof(f) + 7];
    long rss0;
    double cpu0;
    int flood, parked;

    (void)state;
    push("big", "1.0.0", 300u << 20, 6);
    daemon_start_args(slow);
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%.107s", D.sock);
    memcpy(frame, &f, sizeof(f));
    memcpy(frame + sizeof(f), "status", 7);
    rss0 = daemon_rss_kb();
    cpu0 = daemon_cpu();
    /* 20,000 pipelined status requests, never read. */
    flood = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_int_equal(connect(flood, (struct sockaddr *)&sa, sizeof(sa)), 0);
    uint64_t until = mc_mono_ns() + 1500000000ull;
    for (int i = 0; i < 20000 && mc_mono_ns() < until;)
        if (send(flood, frame, sizeof(frame), MSG_NOSIGNAL) == (ssize_t)sizeof(frame))
            i++;
        else /* the daemon is not reading (it should not): keep offering */
            sleep_ms(1);
    /* A load request and then more bytes while it waits. */
    parked = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(parked, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct mc_frame g = f;
    char lf[64];
    g.length = 16;
    memcpy(lf, &g, sizeof(g));
    memcpy(lf + sizeof(g), "load\0big\01.0.0\0\0", 16);
    assert_int_equal(send(parked, lf, sizeof(g) + 16, 0), (ssize_t)(sizeof(g) + 16));
    assert_int_equal(send(parked, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    sleep_ms(1000);
    /* Others are still served at once. */
    uint64_t t0 = mc_mono_ns();
    assert_int_equal(ctl(NULL, "ping", 0), 0);
    assert_true(mc_mono_ns() - t0 < 500000000ull);
    double cpu = daemon_cpu() - cpu0;
    long rss = daemon_rss_kb() - rss0;
    printf("# daemon used %.2f s CPU and %ld KiB more memory meanwhile\n", cpu, rss);
    assert_true(cpu < 0.9); /* not spinning (the load itself uses some) */
    assert_true(rss < 16384);
    close(flood);
    close(parked);
    daemon_stop_clean();
}

static void test_malformed_frames(void **state)
{
    struct mc_frame f = {.magic = MC_PROTO_MAGIC, .version = 1, .type = MC_FRAME_REQUEST};
    char buf[70000];
    int slow_fd;

    (void)state;
    daemon_start_args(NULL);
    /* A slow client that never finishes its frame must not block others. */
    {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        slow_fd = socket(AF_UNIX, SOCK_STREAM, 0);
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%.107s", D.sock);
        assert_int_equal(connect(slow_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(send(slow_fd, &f, 7, 0), 7);
    }
    /* bad magic */
    struct mc_frame g = f;
    g.magic = 0xdeadbeef;
    send_raw(&g, sizeof(g), true);
    /* huge length */
    g = f;
    g.length = 1u << 30;
    send_raw(&g, sizeof(g), true);
    /* wrong version, wrong type */
    g = f;
    g.version = 9;
    send_raw(&g, sizeof(g), true);
    g = f;
    g.type = MC_FRAME_RESPONSE;
    send_raw(&g, sizeof(g), true);
    /* truncated header, truncated payload */
    send_raw(&f, 5, false);
    g = f;
    g.length = 100;
    memcpy(buf, &g, sizeof(g));
    memcpy(buf + sizeof(g), "status", 6);
    send_raw(buf, sizeof(g) + 6, false);
    /* payload without NUL, with control bytes, with too many args, empty */
    const char *payloads[] = {"status", "st\x01tus", "load\0a\0b\0c\0d\0e\0f\0g\0h\0i\0j\0",
                              "", "\0\0\0", "load\0\xff\xfe\0x\0"};
    size_t plen[] = {6, 7, 22, 0, 3, 9};
    for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++) {
        g = f;
        g.length = (uint32_t)plen[i];
        memcpy(buf, &g, sizeof(g));
        memcpy(buf + sizeof(g), payloads[i], plen[i]);
        send_raw(buf, sizeof(g) + plen[i], true);
    }
    /* valid frames with nonsense requests */
    assert_int_equal(ctl(NULL, "frobnicate", 0), MC_EINVAL);
    assert_int_equal(ctl(NULL, "load", 1, "x"), MC_EINVAL);
    assert_int_equal(ctl(NULL, "load", 2, "../../etc", "passwd"), MC_ENOENT);
    /* random garbage, many times */
    srand(7);
    for (int k = 0; k < 200; k++) {
        size_t n = (size_t)(rand() % 200);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)rand();
        if (k % 2) /* often with a valid header in front */
            memcpy(buf, &f, n < sizeof(f) ? n : sizeof(f));
        send_raw(buf, n, false);
    }
    /* Alive and serving. */
    assert_int_equal(ctl(NULL, "ping", 0), 0);
    assert_int_equal(ctl(NULL, "status", 0), 0);
    close(slow_fd);
    daemon_stop_clean();
}

/* Push CACHE@1.0.0 (pattern seed_of) into a store of its own, D.root/store-CACHE. */
static void cache_push(const char *cache)
{
    struct mc_registry_opts o = {.flags = MC_REGISTRY_CREATE};
    struct mc_registry *reg;
    char store[400];

    snprintf(store, sizeof(store), "%s/store-%s", D.root, cache);
    assert_int_equal(mc_registry_open(store, &o, &reg), 0);
    push_to(reg, cache, "1.0.0", (1u << 20) + 4099, seed_of(cache, "1.0.0"));
    mc_registry_close(reg);
}

/*
 * Start mcached on cache with default options but its own store (see
 * cache_push), the arena in D.shm and --size 64M, then extra (NULL-ended,
 * may be NULL); wait until it answers on its default socket.
 */
static void cache_start(const char *cache, const char *const *extra, pid_t *pid)
{
    char store[400], sock[400];
    const char *argv[16] = {"mcached", "--store", store,    "--shm-dir", D.shm,
                            "--cache", cache,     "--size", "64M"};
    int n = 9;

    snprintf(store, sizeof(store), "%s/store-%s", D.root, cache);
    for (; extra && *extra; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    *pid = mcached_spawn(argv, true);
    assert_int_equal(mc_ctl_default_path(D.shm, cache, sock, sizeof(sock)), 0);
    await_up(sock, pid);
}

/* `mp_reader several` over caches (space-separated); its first line into out. */
static int several(char *out, size_t len, const char *caches)
{
    char args[600];

    snprintf(args, sizeof(args), "several %s 30000 %s", D.shm, caches);
    return helper_run(out, len, args);
}

/*
 * One worker, three caches (a 4 KiB-page cache and a huge-page one, say),
 * each served by its own mcached started without --base. Every arena used
 * to default to one address, so the worker's second attach failed with
 * MC_EADDRINUSE; now each cache name has its own default address slot.
 */
static void test_one_worker_reads_three_caches(void **state)
{
    static const char *const caches[] = {"default", "huge", "a"};
    char out[512], want[64];

    (void)state;
    for (int i = 0; i < 3; i++) {
        cache_push(caches[i]);
        cache_start(caches[i], NULL, &D.more[i]);
    }
    /* One exec'd process attaches all three, then gets and checks every byte of each. */
    if (several(out, sizeof(out), "default huge a") != 0) {
        dump_log();
        fail_msg("a worker attaching three caches: %s", out);
    }
    for (int i = 0; i < 3; i++) { /* each at its name's default address */
        snprintf(want, sizeof(want), " %s@0x%llx", caches[i],
                 (unsigned long long)mc_arena_default_base(caches[i]));
        assert_non_null(strstr(out, want));
    }
    for (int i = 0; i < 3; i++)
        mcached_stop_clean(&D.more[i]);
}

/*
 * Two cache names can share a default address slot. A worker attaching
 * both is told where, which arena sits there, and to give one --base; for
 * an existing arena that takes --recreate (mcached says so when it adopts
 * one elsewhere). Then the worker reads both.
 */
static void test_caches_sharing_a_slot(void **state)
{
    uint64_t at = mc_arena_default_base("a"), alt = mc_arena_slot_base(0);
    char twin[32] = "", out[1200], want[400], base[32], names[64];

    (void)state;
    for (int i = 0; i < 1000 && !*twin; i++) {
        snprintf(twin, sizeof(twin), "twin%d", i);
        if (mc_arena_default_base(twin) != at)
            twin[0] = '\0';
    }
    assert_true(*twin);
    if (alt == at)
        alt = mc_arena_slot_base(1);
    snprintf(base, sizeof(base), "0x%llx", (unsigned long long)alt);
    snprintf(names, sizeof(names), "a %s", twin);
    cache_push("a");
    cache_push(twin);
    cache_start("a", NULL, &D.more[0]);
    cache_start(twin, NULL, &D.more[1]);
    assert_int_equal(several(out, sizeof(out), names), 3);
    snprintf(want, sizeof(want),
             "error %s %d arena %s/mcache.a, attached in this process, sits at 0x%llx-", twin,
             MC_EADDRINUSE, D.shm, (unsigned long long)at);
    if (strncmp(out, want, strlen(want)) != 0)
        fail_msg("want \"%s...\", got: %s", want, out);
    assert_non_null(strstr(out, "another cache attached here may sit there"));
    assert_non_null(strstr(out, "--base ADDR"));
    assert_non_null(strstr(out, "--recreate"));
    /* --base alone: the existing arena is adopted where it is, and the log says so. */
    mcached_stop_clean(&D.more[1]);
    cache_start(twin, (const char *const[]){"--base", base, NULL}, &D.more[1]);
    assert_true(log_has("takes effect only with --recreate"));
    mcached_stop_clean(&D.more[1]);
    cache_start(twin, (const char *const[]){"--base", base, "--recreate", NULL}, &D.more[1]);
    if (several(out, sizeof(out), names) != 0) {
        dump_log();
        fail_msg("after --base %s --recreate: %s", base, out);
    }
    snprintf(want, sizeof(want), " %s@%s", twin, base);
    assert_non_null(strstr(out, want));
    mcached_stop_clean(&D.more[0]);
    mcached_stop_clean(&D.more[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_push_load_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_names_its_sender, setup, teardown),
        cmocka_unit_test(test_answer_read_after_refused_send),
        cmocka_unit_test_setup_teardown(test_alias_flip_under_readers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_kill9_mid_load_then_adopt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bit_flip_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lru_respects_alias_pin_hold, setup, teardown),
        cmocka_unit_test_setup_teardown(test_other_uid_cannot_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_admits_only_owner_and_group, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reader_group_any_is_explicit_and_loud, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_arena_permissions_follow_reader_group, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sighup_applies_access_to_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lock_file_is_mcacheds_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_options_change_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_second_daemon_creates_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sighup_keeps_command_line_precedence, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_waits_for_pinned_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_blue_green_keeps_old_target, setup, teardown),
        cmocka_unit_test_setup_teardown(test_evict_refused_while_alias_serves_old, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_unloadable_refused_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_during_load_is_not_a_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_safetensors_tensors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_load_shared_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_then_get_load_always_finds_it, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ready_means_mirrored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_path_fallbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove_while_loading, setup, teardown),
        cmocka_unit_test_setup_teardown(test_clients_cannot_hog_the_daemon, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_many_connections_answered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_request_races_registry_change, setup, teardown),
        cmocka_unit_test_setup_teardown(test_malformed_frames, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_worker_reads_three_caches, setup, teardown),
        cmocka_unit_test_setup_teardown(test_caches_sharing_a_slot, setup, teardown),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
