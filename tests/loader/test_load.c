/*
 * test_load.c - mcached loads and workers read: push, load and verify from an
 * exec'd worker; a flipped bit on disk refused; safetensors tensors;
 * mc_get_load() shared by waiters and timed out; a version just pushed found
 * by mc_get_load() at once; the cold path without io_uring or O_DIRECT; a
 * version removed while it loads; a request racing the registry change it
 * depends on.
 */
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "index/proto.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"
#include "tests/loader/daemon_fixture.h"

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

/* Wait until the arena's header names pid as its loader (read from the file). */
static void await_loader_pid(pid_t pid)
{
    char path[400];
    struct mc_arena_hdr h;
    int fd;

    snprintf(path, sizeof(path), "%s/mcache.t", D.shm);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    for (;;) {
        assert_int_equal(pread(fd, &h, sizeof(h), 0), (ssize_t)sizeof(h));
        if (h.loader_pid == (uint32_t)pid)
            break;
        assert_int_equal(waitpid(pid, NULL, WNOHANG), 0);
        sleep_ms(1);
    }
    close(fd);
}

/*
 * A worker attached across a restart asks for a version pushed while mcached
 * was down, as soon as the new mcached has adopted the arena: its
 * mc_get_load() waits for the new mcached to listen (which it does only after
 * mirroring 500 other versions) instead of failing with "mcached is not
 * running".
 */
static void test_get_load_during_restart_waits_for_ready(void **state)
{
    const char *argv[] = {"mcached", "--store", D.store, "--shm-dir", D.shm, "--cache", "t",
                          "--socket", D.sock, "--size", "256M", NULL};
    char first[64], out[512], version[32];
    FILE *in, *rd;
    pid_t pid;

    (void)state;
    for (int i = 0; i < 500; i++) {
        snprintf(version, sizeof(version), "1.0.%d", i);
        push("bulk", version, 4096, (uint32_t)i);
    }
    daemon_start_args(NULL);
    pid = helper_start("getloads", "30000", NULL, &in, &rd, first, sizeof(first));
    assert_string_equal(first, "ready\n");
    for (int k = 0; k < 5; k++) {
        daemon_stop_clean();
        snprintf(version, sizeof(version), "2.0.%d", k);
        push("r", version, 8192, 2000u + (uint32_t)k);
        D.pid = mcached_spawn(argv, true);
        await_loader_pid(D.pid); /* adopted, now mirroring: not listening yet */
        fprintf(in, "r %s\n", version);
        fflush(in);
        assert_non_null(fgets(out, sizeof(out), rd));
        if (strncmp(out, "ok r ", 5) != 0) {
            fprintf(stderr, "restart %d, get_load r@%s: %s", k, version, out);
            dump_log();
            fail();
        }
        await_up(D.sock, &D.pid);
    }
    fclose(in);
    fclose(rd);
    assert_int_equal(wait_status(pid), 0);
    daemon_stop_clean();
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        DAEMON_TEST(test_push_load_read),
        DAEMON_TEST(test_bit_flip_refused),
        DAEMON_TEST(test_safetensors_tensors),
        DAEMON_TEST(test_get_load_shared_and_timeout),
        DAEMON_TEST(test_push_then_get_load_always_finds_it),
        DAEMON_TEST(test_get_load_during_restart_waits_for_ready),
        DAEMON_TEST(test_cold_path_fallbacks),
        DAEMON_TEST(test_remove_while_loading),
        DAEMON_TEST(test_request_races_registry_change),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
