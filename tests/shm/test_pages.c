/*
 * test_pages.c - how an arena on plain tmpfs (/dev/shm, not mounted huge) is
 * backed: mc_arena_create turns it into 2 MiB pages where the kernel can
 * (MADV_COLLAPSE), so a fresh exec'd worker maps a model's bytes with one
 * page-table entry per 2 MiB; where asked not to (small_pages) or refused,
 * it stays on 4 KiB pages and says why.
 *
 * The worker is this program exec'd again with "map-child DIR CACHE": it
 * attaches read-only, reads every page of the data region, and prints the
 * kB of its mapping that the kernel maps with PMDs (/proc/self/smaps) and
 * the minor faults the read took.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

#define ARENA_SIZE (64ull << 20)

/* kB of the mapping that starts at base which are PMD-mapped (shmem or file). */
static long pmd_kb(uintptr_t base)
{
    char line[256];
    long kb = 0, v;
    bool in = false;
    FILE *f = fopen("/proc/self/smaps", "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        uintptr_t lo, hi;

        if (sscanf(line, "%" SCNxPTR "-%" SCNxPTR " ", &lo, &hi) == 2 && strchr(line, ' ') &&
            strchr(line, '-') < strchr(line, ' '))
            in = lo == base;
        else if (in && (sscanf(line, "ShmemPmdMapped: %ld kB", &v) == 1 ||
                        sscanf(line, "FilePmdMapped: %ld kB", &v) == 1))
            kb += v;
    }
    fclose(f);
    return kb;
}

static long minor_faults(void)
{
    struct rusage u;

    getrusage(RUSAGE_SELF, &u);
    return u.ru_minflt;
}

/*
 * One byte of every page. Not instrumented by ASan or TSan: their shadow
 * checks of each byte read fault in pages of shadow memory, and those faults
 * are not the arena's (the test counted them under ASan and failed).
 */
__attribute__((no_sanitize("address", "thread"))) static uint8_t touch_pages(const uint8_t *p,
                                                                   uint64_t from, uint64_t to)
{
    uint8_t sink = 0;

    for (uint64_t off = from; off < to; off += 4096)
        sink ^= *(const volatile uint8_t *)(p + off);
    return sink;
}

/* The worker: attach read-only, read every page of the data region, report. */
static int map_child(const char *dir, const char *cache)
{
    struct mc_arena a;
    long f0;

    if (mc_arena_open(dir, cache, false, &a) != 0) {
        fprintf(stderr, "map-child: %s\n", mc_last_error());
        return 2;
    }
    f0 = minor_faults();
    (void)touch_pages(a.base, a.hdr->data_off, a.size);
    printf("pmd_kb=%ld faults=%ld\n", pmd_kb((uintptr_t)a.base), minor_faults() - f0);
    mc_arena_close(&a);
    return 0;
}

/* Exec this program as a fresh worker over t's arena; its pmd_kb and faults. */
static void worker_maps(const struct tw *t, long *kb, long *faults)
{
    char cmd[1200], out[256] = "", self[512];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    FILE *p;

    assert_true(n > 0);
    self[n] = '\0';
    snprintf(cmd, sizeof(cmd), "%s map-child %s %s", self, t->dir, t->cache);
    p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(out, sizeof(out), p))
        out[0] = '\0';
    assert_int_equal(WEXITSTATUS(pclose(p)), 0);
    assert_int_equal(sscanf(out, "pmd_kb=%ld faults=%ld", kb, faults), 2);
}

/* The arena a test made, for teardown when an assertion skips destroy(). */
static struct tw *live;

/* Create an arena like tw_create_arena, with small_pages as given. */
static void create(struct tw *t, bool small_pages)
{
    struct mc_arena_opts o = {.size = ARENA_SIZE, .mode = 0600, .small_pages = small_pages};

    memset(t, 0, sizeof(*t));
    tdir_make(t->dir, sizeof(t->dir));
    t->cache = "pages";
    o.dir = t->dir;
    o.cache = t->cache;
    assert_int_equal(mc_arena_create(&o, &t->a), 0);
    live = t;
}

static void destroy(struct tw *t)
{
    mc_arena_close(&t->a);
    mc_arena_unlink(t->dir, t->cache);
    tdir_remove(t->dir);
    live = NULL;
}

/* A failed test left its arena mapped at its address: the next create failed too. */
static int teardown(void **state)
{
    (void)state;
    if (live)
        destroy(live);
    return 0;
}

/*
 * On plain tmpfs a new arena is on 2 MiB pages, unless the kernel refuses
 * (then it says why, and stays on 4 KiB pages); a fresh worker then maps
 * its data with PMDs, a few faults per 2 MiB rather than one per 64 KiB.
 */
static void test_plain_tmpfs_arena_is_on_2mib_pages(void **state)
{
    uint64_t data_pages, ps;
    uint32_t backing;
    long kb, faults;
    static struct tw t; /* static: teardown() reaches it after a failed assertion */

    (void)state;
    create(&t, false);
    assert_int_equal(mc_backing_detect(t.dir, &ps, &backing), 0);
    if (backing != MC_BACKING_SHM4K) {
        printf("# skipped: %s is not plain tmpfs (%s)\n", t.dir, mc_backing_name(backing));
        destroy(&t);
        return;
    }
    data_pages = (t.a.size - t.a.hdr->data_off) / 4096;
    worker_maps(&t, &kb, &faults);
    if (t.a.huge_bytes == 0) {
        /* Refused: it says why, the header says 4 KiB, and the worker faults per 64 KiB. */
        printf("# MADV_COLLAPSE refused here (%s): the arena stayed on 4 KiB pages\n",
               strerror(t.a.huge_errno));
        assert_int_not_equal(t.a.huge_errno, 0);
        assert_int_equal(t.a.hdr->backing, MC_BACKING_SHM4K);
        assert_int_equal(kb, 0);
        destroy(&t);
        return;
    }
    assert_int_equal(t.a.hdr->backing, MC_BACKING_SHM_COLLAPSED);
    assert_int_equal(t.a.hdr->page_size, 4096); /* the layout's granule is unchanged */
    /* Every collapsed 2 MiB block of the data region is PMD-mapped in the worker. */
    assert_true((uint64_t)kb * 1024 >= t.a.huge_bytes - t.a.hdr->data_off - (2u << 20));
    if (t.a.huge_bytes == t.a.size) { /* all of it (a block may fail under fragmentation) */
        assert_int_equal(t.a.huge_errno, 0);
        assert_true((uint64_t)faults < data_pages / 64);
    }
    destroy(&t);
}

/* small_pages keeps 4 KiB pages: nothing collapsed, nothing PMD-mapped. */
static void test_small_pages_stay_4k(void **state)
{
    long kb, faults;
    static struct tw t; /* static: teardown() reaches it after a failed assertion */

    (void)state;
    create(&t, true);
    assert_int_equal(t.a.huge_bytes, 0);
    assert_int_not_equal(t.a.hdr->backing, MC_BACKING_SHM_COLLAPSED);
    worker_maps(&t, &kb, &faults);
    assert_int_equal(kb, 0);
    /* One fault per fault-around window (64 KiB by default) at least. */
    assert_true((uint64_t)faults >= (t.a.size - t.a.hdr->data_off) / (1u << 20));
    destroy(&t);
}

/* The collapsed arena is committed and holds zeroes where nothing was written. */
static void test_collapsed_arena_is_zeroed_and_committed(void **state)
{
    static struct tw t; /* static: teardown() reaches it after a failed assertion */
    int64_t nonzero = 0;

    (void)state;
    create(&t, false);
    for (uint64_t off = t.a.hdr->data_off; off < t.a.size; off += 512)
        nonzero += t.a.base[off] != 0;
    assert_int_equal(nonzero, 0);
    /* Committed: the file's blocks cover it all (no holes left to SIGBUS on). */
    struct stat st;
    assert_int_equal(fstat(t.a.fd, &st), 0);
    assert_true((uint64_t)st.st_blocks * 512 >= t.a.size);
    destroy(&t);
}

int main(int argc, char **argv)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_plain_tmpfs_arena_is_on_2mib_pages, teardown),
        cmocka_unit_test_teardown(test_small_pages_stay_4k, teardown),
        cmocka_unit_test_teardown(test_collapsed_arena_is_zeroed_and_committed, teardown),
    };

    if (argc == 4 && strcmp(argv[1], "map-child") == 0)
        return map_child(argv[2], argv[3]);
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
