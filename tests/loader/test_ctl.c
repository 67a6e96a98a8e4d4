/*
 * test_ctl.c - the control socket under abuse: an answer read after a refused
 * send; too many connections answered; clients that cannot hog the daemon;
 * malformed frames survived.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#if defined(__SANITIZE_THREAD__)
#define MC_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MC_TEST_TSAN 1
#endif
#endif
#ifndef MC_TEST_TSAN
#define MC_TEST_TSAN 0
#endif

#include "common/clock.h"
#include "index/proto.h"
#include "tests/helpers/run.h"
#include "tests/loader/daemon_fixture.h"

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

/* A client that pipelines requests and never reads the answers, and one that
 * sends more while waiting for a load, must not make the daemon spin or grow
 * (review finds: quadratic reply buffering; a level-triggered busy loop). */
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
    /* What the flood cost it, before the load below adds its own (under TSan,
     * the shadow of the bytes the load hashes: ~40 MiB). */
    long rss_flood = daemon_rss_kb() - rss0;
    /* A load request and then more bytes while it waits. */
    parked = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(connect(parked, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct mc_frame g = f;
    char lf[64];
    g.length = 15;
    memcpy(lf, &g, sizeof(g));
    /* "big" "\0" "1.0.0": split so the NUL is not read as the octal escape \01 (it
     * was: the request had a control byte, was refused and the connection
     * closed, so the send below raced that close) */
    memcpy(lf + sizeof(g), "load\0big\0" "1.0.0", 15);
    assert_int_equal(send(parked, lf, sizeof(g) + 15, 0), (ssize_t)(sizeof(g) + 15));
    if (send(parked, frame, sizeof(frame), MSG_NOSIGNAL) != (ssize_t)sizeof(frame)) {
        fprintf(stderr, "send after the load request: %s\n", strerror(errno));
        dump_log();
        fail();
    }
    sleep_ms(1000);
    /* Others are still served at once. */
    uint64_t t0 = mc_mono_ns();
    assert_int_equal(ctl(NULL, "ping", 0), 0);
    assert_true(mc_mono_ns() - t0 < 500000000ull);
    double cpu = daemon_cpu() - cpu0;
    long rss = daemon_rss_kb() - rss0;
    printf("# daemon used %.2f s CPU and %ld KiB more memory meanwhile (%ld KiB for the flood)\n",
           cpu, rss, rss_flood);
    assert_true(cpu < 0.9); /* not spinning (the load itself uses some) */
    assert_true(rss_flood < 16384); /* the flood's answers are not all buffered */
#if !MC_TEST_TSAN
    assert_true(rss < 16384);
#endif
    /* The parked load is answered, and succeeds, once the model is in. */
    struct mc_frame r;
    struct timeval tv = {.tv_sec = 120};
    setsockopt(parked, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    assert_int_equal(recv(parked, &r, sizeof(r), MSG_WAITALL), (ssize_t)sizeof(r));
    assert_int_equal(r.type, MC_FRAME_RESPONSE);
    assert_int_equal(r.status, 0);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_read_after_refused_send),
        DAEMON_TEST(test_clients_cannot_hog_the_daemon),
        DAEMON_TEST(test_too_many_connections_answered),
        DAEMON_TEST(test_malformed_frames),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
