/*
 * worker.c - the other side of every measurement: `mcache-bench __worker`,
 * exec'd fresh by the scenarios so that attach, page faults and first reads
 * are those of a new process (an inference worker starting up).
 *
 *   read    SYS ARGS...       acquire the model, read every byte twice; print
 *                             attach_ns ready_ns first_ns second_ns sum
 *   hold    SYS ARGS...       acquire, read every byte once, print "ready sum=",
 *                             hold it until stdin closes (memory scenario)
 *   passes  SYS ARGS...       acquire, read once, print "ready sum="; then for
 *                             each "pass K" on stdin make K full reads, printing
 *                             pass_ns= per read and "done"; exit at EOF
 *   lookups SYS N MS CPU ARGS...  warm lookups (lookups.c) over N models,
 *                             pinned to CPU (-1: not pinned); print "ready",
 *                             wait for "go", run MS ms, print ops= ns=
 *   hog     FLOOR MAX         fill anonymous memory (64 MiB steps) until
 *                             MemAvailable <= FLOOR or MAX bytes; print "held
 *                             bytes= ns="; hold until stdin closes
 *   serve   DIR CACHE NAME REF KEY NEW OLD CPU PACE_NS
 *                             a serving loop (deploy scenario), pinned to CPU
 *                             (-1: not pinned): mc_get_keyed(NAME, REF, KEY),
 *                             mc_report (3 us; ok=0 for NEW, 1 for OLD),
 *                             release, sleep PACE_NS (0: none), again; prints "ready version=V",
 * then "new at_ns=T" at the first get of NEW and "old at_ns=T gets=N" at the first get of OLD after
 *                             one of NEW (T: CLOCK_REALTIME as that get
 *                             returned; then it waits for NEW again); at EOF
 *                             on stdin "gets=N" and exit
 *
 * Model systems (SYS ARGS):  mcache DIR CACHE NAME VERSION | read PATH |
 *                            mmap PATH | lmdb DIR KEY
 * Lookup systems:            mcache DIR CACHE | ckht | lmdb DIR
 *
 * Exit 0 on success; 2 with a message on stderr otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/lookups.h"
#include "bench/model.h"
#include "common/clock.h"
#include "mcache.h"

#define HOG_STEP (64 * MiB)

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int fail(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "mcache-bench worker %d: ", (int)getpid());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

/* ---- a model, however a system serves it ---- */

struct src {
    const uint8_t *p;
    size_t size;
    uint64_t attach_ns; /* mcache: mc_attach; mmap: open+mmap; LMDB: env open to mdb_get */
    uint64_t ready_ns;  /* until the pointer is in hand (mcache: + mc_get; read: + read()) */
    mc_cache *c;
    mc_model *m;
    void *map;
    void *buf;
    MDB_env *env;
    MDB_txn *txn;
};

static int src_mcache(struct src *s, char **a)
{
    uint64_t t0 = mc_mono_ns(), t1;
    int rc = mc_attach_dir(a[0], a[1], &s->c);

    t1 = mc_mono_ns();
    if (!rc)
        rc = mc_get(s->c, a[2], a[3], &s->m);
    if (rc)
        return fail("mcache: %s (arena %s)", mc_last_error(), a[1]);
    s->attach_ns = t1 - t0;
    s->ready_ns = mc_mono_ns() - t0;
    s->p = mc_model_data(s->m);
    s->size = mc_model_size(s->m);
    return 0;
}

static int src_file(struct src *s, char **a, bool use_mmap)
{
    uint64_t t0 = mc_mono_ns();
    int fd = open(a[0], O_RDONLY | O_CLOEXEC);
    struct stat st;

    if (fd < 0 || fstat(fd, &st) != 0)
        return fail("opening %s: %s", a[0], strerror(errno));
    s->size = (size_t)st.st_size;
    if (use_mmap) {
        s->map = mmap(NULL, s->size, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (s->map == MAP_FAILED)
            return fail("mmap %s: %s", a[0], strerror(errno));
        s->p = s->map;
        s->attach_ns = s->ready_ns = mc_mono_ns() - t0;
        return 0;
    }
    s->buf = malloc(s->size);
    if (!s->buf)
        return fail("malloc for %s: out of memory", a[0]);
    for (size_t done = 0; done < s->size;) {
        ssize_t n = read(fd, (uint8_t *)s->buf + done, s->size - done);

        if (n <= 0 && !(n < 0 && errno == EINTR))
            return fail("reading %s: %s", a[0], n ? strerror(errno) : "short file");
        done += n > 0 ? (size_t)n : 0;
    }
    close(fd);
    s->p = s->buf;
    s->ready_ns = mc_mono_ns() - t0;
    return 0;
}

static int src_lmdb(struct src *s, char **a)
{
    uint64_t t0 = mc_mono_ns();
    MDB_val k = {strlen(a[1]), a[1]}, v;
    MDB_dbi dbi;
    int rc;

    if ((rc = mdb_env_create(&s->env)) || (rc = mdb_env_open(s->env, a[0], MDB_RDONLY, 0600)) ||
        (rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->txn)) ||
        (rc = mdb_dbi_open(s->txn, NULL, 0, &dbi)) || (rc = mdb_get(s->txn, dbi, &k, &v)))
        return fail("LMDB %s: %s", a[0], mdb_strerror(rc));
    s->p = v.mv_data;
    s->size = v.mv_size;
    s->attach_ns = s->ready_ns = mc_mono_ns() - t0;
    return 0;
}

/* Acquire the model named by argv (SYS ARGS...). */
static int src_open(struct src *s, int argc, char **argv)
{
    static const struct {
        const char *sys;
        int nargs;
    } arity[] = {{"mcache", 4}, {"read", 1}, {"mmap", 1}, {"lmdb", 2}};

    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < sizeof(arity) / sizeof(arity[0]); i++) {
        if (argc < 1 || strcmp(argv[0], arity[i].sys))
            continue;
        if (argc < 1 + arity[i].nargs)
            return fail("%s needs %d arguments", argv[0], arity[i].nargs);
        switch (i) {
        case 0:
            return src_mcache(s, argv + 1);
        case 1:
            return src_file(s, argv + 1, false);
        case 2:
            return src_file(s, argv + 1, true);
        default:
            return src_lmdb(s, argv + 1);
        }
    }
    return fail("unknown model system \"%s\"", argc ? argv[0] : "");
}

static void src_close(struct src *s)
{
    if (s->m)
        mc_release(s->m);
    if (s->c)
        mc_detach(s->c);
    if (s->map)
        munmap(s->map, s->size);
    free(s->buf);
    if (s->txn)
        mdb_txn_abort(s->txn);
    if (s->env)
        mdb_env_close(s->env);
}

/* ---- commands ---- */

static int cmd_read(int argc, char **argv)
{
    uint64_t t0 = mc_mono_ns(), first, second, sum, sum2;
    struct src s;
    int rc = src_open(&s, argc, argv);

    if (rc)
        return rc;
    sum = model_sum(s.p, s.size);
    first = mc_mono_ns() - t0;
    t0 = mc_mono_ns();
    sum2 = model_sum(s.p, s.size);
    second = mc_mono_ns() - t0;
    if (sum != sum2)
        return fail("the model changed between two reads");
    printf("attach_ns=%" PRIu64 " ready_ns=%" PRIu64 " first_ns=%" PRIu64 " second_ns=%" PRIu64
           " sum=0x%" PRIx64 " size=%zu\n",
           s.attach_ns, s.ready_ns, first, second, sum, s.size);
    src_close(&s);
    return 0;
}

/* Wait until stdin has a line (returned in buf) or is closed (false). */
static bool next_command(char *buf, size_t len)
{
    return fgets(buf, (int)len, stdin) != NULL;
}

static int cmd_hold(int argc, char **argv)
{
    char cmd[64];
    struct src s;
    int rc = src_open(&s, argc, argv);

    if (rc)
        return rc;
    printf("ready sum=0x%" PRIx64 "\n", model_sum(s.p, s.size));
    fflush(stdout);
    while (next_command(cmd, sizeof(cmd))) {
        unsigned k = 0;

        if (sscanf(cmd, "pass %u", &k) != 1)
            return fail("unknown command \"%s\"", cmd);
        for (unsigned i = 0; i < k; i++) {
            uint64_t t0 = mc_mono_ns(), sum = model_sum(s.p, s.size);

            printf("pass_ns=%" PRIu64 " sum=0x%" PRIx64 "\n", mc_mono_ns() - t0, sum);
            fflush(stdout);
        }
        printf("done\n");
        fflush(stdout);
    }
    src_close(&s);
    return 0;
}

static int cmd_lookups(int argc, char **argv)
{
    struct keyset k;
    struct lk l;
    mc_cache *c = NULL;
    uint64_t ops = 0, t0, ms;
    char cmd[64];
    int rc;

    if (argc < 4)
        return fail("lookups: SYS N MS CPU ARGS...");
    keyset_make(&k, (unsigned)strtoul(argv[1], NULL, 10));
    ms = strtoull(argv[2], NULL, 10);
    if (atoi(argv[3]) >= 0 && cpu_pin(atoi(argv[3])) != 0)
        return fail("lookups: cannot pin to CPU %s: %s", argv[3], strerror(errno));
    if (!strcmp(argv[0], "mcache") && argc >= 6) {
        if (mc_attach_dir(argv[4], argv[5], &c))
            return fail("mcache: %s", mc_last_error());
        rc = lk_open_mcache(&l, &k, c, false);
    } else if (!strcmp(argv[0], "ckht")) {
        rc = lk_open_ckht(&l, &k);
    } else if (!strcmp(argv[0], "lmdb") && argc >= 5) {
        rc = lk_open_lmdb(&l, &k, argv[4]);
    } else {
        return fail("lookups: unknown system \"%s\"", argv[0]);
    }
    if (rc || lk_run(&l, 0, ORDER_LEN)) /* warm: every key once */
        return 2;
    printf("ready\n");
    fflush(stdout);
    if (!next_command(cmd, sizeof(cmd)))
        return 0;
    t0 = mc_mono_ns();
    do {
        if (lk_run(&l, ops, 4096))
            return 2;
        ops += 4096;
    } while (mc_mono_ns() - t0 < ms * 1000000ull);
    printf("ops=%" PRIu64 " ns=%" PRIu64 " sink=%" PRIu64 "\n", ops, mc_mono_ns() - t0, l.sink);
    lk_close(&l);
    mc_detach(c);
    keyset_free(&k);
    return 0;
}

static int cmd_hog(int argc, char **argv)
{
    uint64_t floor, max, held = 0, t0 = mc_mono_ns();
    long page = sysconf(_SC_PAGESIZE);
    char cmd[64];
    FILE *f;

    if (argc < 2)
        return fail("hog: FLOOR MAX");
    floor = strtoull(argv[0], NULL, 10);
    max = strtoull(argv[1], NULL, 10);
    /* If the kernel must kill something, let it be the hog. */
    f = fopen("/proc/self/oom_score_adj", "w");
    if (f) {
        fputs("1000", f);
        fclose(f);
    }
    while ((!max || held + HOG_STEP <= max) && meminfo("MemAvailable") > floor + HOG_STEP) {
        uint8_t *p =
            mmap(NULL, HOG_STEP, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        if (p == MAP_FAILED)
            break;
        for (uint64_t o = 0; o < HOG_STEP; o += (uint64_t)page)
            p[o] = 1;
        held += HOG_STEP;
    }
    printf("held bytes=%" PRIu64 " ns=%" PRIu64 "\n", held, mc_mono_ns() - t0);
    fflush(stdout);
    while (next_command(cmd, sizeof(cmd)))
        ;
    return 0;
}

/* stdin was closed (polled, no wait; anything written to it is ignored). */
static bool stdin_closed(void)
{
    struct pollfd p = {.fd = 0, .events = POLLIN};
    char buf[64];

    if (poll(&p, 1, 0) <= 0)
        return false;
    return read(0, buf, sizeof(buf)) <= 0;
}

static int cmd_serve(int argc, char **argv)
{
    const char *dir, *cache, *name, *ref, *key, *new, *old;
    uint64_t gets = 0, t0 = mc_mono_ns();
    bool seen_new = false, said = false;
    struct timespec pace;
    mc_cache *c = NULL;
    int rc;

    if (argc < 9)
        return fail("serve: DIR CACHE NAME REF KEY NEW OLD CPU PACE_NS");
    dir = argv[0], cache = argv[1], name = argv[2], ref = argv[3], key = argv[4];
    new = argv[5], old = argv[6];
    pace.tv_sec = (time_t)(strtoull(argv[8], NULL, 10) / 1000000000ull);
    pace.tv_nsec = (long)(strtoull(argv[8], NULL, 10) % 1000000000ull);
    if (atoi(argv[7]) >= 0 && cpu_pin(atoi(argv[7])) != 0)
        return fail("serve: cannot pin to CPU %s: %s", argv[7], strerror(errno));
    while ((rc = mc_attach_dir(dir, cache, &c)) != 0)
        if (mc_mono_ns() - t0 > 10000000000ull)
            return fail("serve: attaching cache %s in %s: %s", cache, dir, mc_last_error());
        else
            usleep(10000);
    for (;;) {
        mc_model *m;
        const char *v;
        int ok;

        rc = mc_get_keyed(c, name, ref, key, strlen(key), &m);
        if (rc == MC_ESTALE) { /* mcached replaced the arena: attach again */
            mc_detach(c);
            c = NULL;
            t0 = mc_mono_ns();
            while (mc_attach_dir(dir, cache, &c) != 0)
                if (mc_mono_ns() - t0 > 10000000000ull)
                    return fail("serve: attaching again: %s", mc_last_error());
                else
                    usleep(1000);
            continue;
        }
        if (rc)
            return fail("serve: get %s@%s (key %s): %s", name, ref, key, mc_last_error());
        v = mc_model_version(m);
        gets++;
        if (!strcmp(v, new)) {
            ok = 0;
            if (!seen_new) {
                seen_new = true;
                printf("new at_ns=%" PRIu64 "\n", mc_wall_ns());
                fflush(stdout);
            }
        } else if (!strcmp(v, old)) {
            ok = 1;
            if (seen_new) {
                uint64_t t = mc_wall_ns();

                seen_new = false;
                printf("old at_ns=%" PRIu64 " gets=%" PRIu64 "\n", t, gets);
                fflush(stdout);
            }
        } else {
            return fail("serve: %s@%s gave version %s, neither %s nor %s", name, ref, v, new, old);
        }
        mc_report(m, 3000, ok, 0); /* untracked (MC_ENOTSUP): the rollout holds; seen there */
        mc_release(m);
        if (!said) {
            printf("ready version=%s\n", v);
            fflush(stdout);
            said = true;
        }
        if ((pace.tv_sec || pace.tv_nsec) && nanosleep(&pace, NULL) != 0 && errno != EINTR)
            return fail("serve: nanosleep: %s", strerror(errno));
        if ((gets & (pace.tv_sec || pace.tv_nsec ? 63 : 1023)) == 0 && stdin_closed())
            break;
    }
    printf("gets=%" PRIu64 "\n", gets);
    mc_detach(c);
    return 0;
}

int worker_main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"read", cmd_read},
                {"hold", cmd_hold},
                {"lookups", cmd_lookups},
                {"hog", cmd_hog},
                {"serve", cmd_serve}};

    signal(SIGPIPE, SIG_DFL);
    if (argc < 3)
        return fail("usage: __worker COMMAND ARGS...");
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (!strcmp(argv[2], cmds[i].name))
            return cmds[i].fn(argc - 3, argv + 3);
    return fail("unknown worker command \"%s\"", argv[2]);
}
