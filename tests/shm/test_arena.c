/*
 * test_arena.c - creating and attaching arenas: the header, each distinct
 * attach failure, read-only mapping (a writing worker faults), backing, each
 * cache name's default address; and the library's version.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/err.h"
#include "mcache.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

static void test_create_and_attach(void **state)
{
    struct tw t;
    struct mc_arena r;
    uint64_t page;
    uint32_t backing;

    (void)state;
    assert_int_equal(tw_create(&t, 32ull << 20, 0), 0);
    struct mc_arena_hdr *h = t.a.hdr;
    uint64_t base = mc_arena_default_base(t.cache);
    char at[32];
    assert_int_equal(h->magic, MC_ARENA_MAGIC);
    assert_int_equal(h->format, MC_ARENA_FORMAT);
    assert_int_equal(h->base, base);
    assert_ptr_equal(t.a.base, (void *)(uintptr_t)base);
    assert_int_equal(h->size, 32ull << 20);
    assert_int_equal(mc_backing_detect(t.dir, &page, &backing), 0);
    assert_int_equal(h->page_size, page);
    assert_int_equal(h->data_off % h->page_size, 0);
    assert_true(h->index_off + h->index_size <= h->data_off);
    assert_true(h->created_ns > 0);
    assert_int_equal(h->epoch, 1);
    /* Creating it again is refused; the first one is untouched. */
    struct mc_arena dup;
    struct mc_arena_opts o = {.dir = t.dir, .cache = t.cache, .size = 32ull << 20,
                              .base = 0x7ea000000000ull};
    assert_int_equal(mc_arena_create(&o, &dup), MC_EEXIST);
    assert_int_equal(h->magic, MC_ARENA_MAGIC);
    /* Attaching in the same process collides with our own mapping: the
     * message names the range, that another cache may sit there, and a
     * free address for --base. */
    assert_int_equal(mc_arena_open(t.dir, t.cache, false, &r), MC_EADDRINUSE);
    snprintf(at, sizeof(at), "0x%llx-0x%llx", (unsigned long long)base,
             (unsigned long long)(base + h->size));
    assert_non_null(strstr(mc_last_error(), at));
    assert_non_null(strstr(mc_last_error(), "another cache attached here may sit there"));
    assert_non_null(strstr(mc_last_error(), "--base ADDR (e.g. 0x7e"));
    tw_destroy(&t);
}

/*
 * Each cache name has its own default base: one of MC_BASE_SLOTS slots, the
 * same in every process and every version, inside a range that is
 * application memory for ASan and TSan and free in a fresh process.
 */
static void test_default_base_per_cache_name(void **state)
{
    static const char *const names[] = {"default", "huge", "a", "b", "c", "d"};
    uint64_t seen[6];

    (void)state;
    for (size_t i = 0; i < 6; i++) {
        uint64_t b = mc_arena_default_base(names[i]);

        assert_int_equal(b, mc_arena_default_base(names[i])); /* deterministic */
        assert_true(b >= MC_BASE_RANGE && b + MC_BASE_SLOT <= MC_BASE_RANGE_END);
        assert_int_equal((b - MC_BASE_RANGE) % MC_BASE_SLOT, 0);
        assert_int_equal(b % MC_HUGE_PAGE, 0);
        for (size_t j = 0; j < i; j++)
            assert_true(b != seen[j]);
        seen[i] = b;
    }
    assert_int_equal(mc_arena_default_base(NULL), mc_arena_default_base("default"));
    /* A name's slot never changes (the docs quote this address). */
    assert_int_equal(mc_arena_default_base("default"), 0x7e9800000000ull);
    assert_int_equal(mc_arena_slot_base(MC_BASE_SLOTS), MC_BASE_RANGE);
    /* TSan's application memory starts at 0x7e8000000000 (below it a TSan
     * build dies on mmap); Linux maps ordinary things from ~0x7eff.. up. */
    assert_true(MC_BASE_RANGE >= 0x7e8000000000ull && MC_BASE_RANGE_END <= 0x7ec000000000ull);
    void *p = mmap((void *)(uintptr_t)MC_BASE_RANGE, MC_BASE_RANGE_END - MC_BASE_RANGE, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    assert_ptr_equal(p, (void *)(uintptr_t)MC_BASE_RANGE);
    munmap(p, MC_BASE_RANGE_END - MC_BASE_RANGE);
}

/* An arena larger than its default slot is refused up front, naming --base. */
static void test_arena_larger_than_its_slot(void **state)
{
    char dir[256];
    struct mc_arena_opts o = {.cache = "big", .size = MC_BASE_SLOT + (64ull << 20)};

    (void)state;
    tdir_make(dir, sizeof(dir));
    o.dir = dir;
    assert_int_equal(mc_arena_check(&o, 0), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "does not fit the 16 GiB address slot"));
    assert_non_null(strstr(mc_last_error(), "cache \"big\""));
    assert_non_null(strstr(mc_last_error(), "--base ADDR"));
    assert_non_null(strstr(mc_last_error(), "--size of at most 16G"));
    /* The slot's full size is fine, and an explicit base is not held to a slot. */
    /* (MC_ENOSPC where /dev/shm has less than 16 GiB free: the size is checked first.) */
    o.size = MC_BASE_SLOT;
    int rc = mc_arena_check(&o, 0);
    assert_true(rc == 0 || rc == MC_ENOSPC);
    o.size = MC_BASE_SLOT + (64ull << 20);
    o.base = 0x7ec000000000ull;
    rc = mc_arena_check(&o, 0);
    assert_true(rc == 0 || rc == MC_ENOSPC);
    tdir_remove(dir);
}

static void test_missing(void **state)
{
    char dir[256];
    mc_cache *c;

    (void)state;
    tdir_make(dir, sizeof(dir));
    assert_int_equal(mc_attach_dir(dir, "nosuch", &c), MC_ENOENT);
    assert_non_null(strstr(mc_last_error(), "mcache.nosuch"));
    assert_non_null(strstr(mc_last_error(), "mcached"));
    assert_int_equal(mc_attach_dir(dir, "bad/name", &c), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "bad/name"));
    /* "" means the environment's cache, as NULL does (and as in Python). */
    setenv("MCACHE_CACHE", "fromenv", 1);
    assert_int_equal(mc_attach_dir(dir, "", &c), MC_ENOENT);
    assert_non_null(strstr(mc_last_error(), "mcache.fromenv"));
    unsetenv("MCACHE_CACHE");
    /* Something else at the arena's path is refused at once: a FIFO used to
     * hang the open forever, a directory is no arena either. */
    char p[512];
    snprintf(p, sizeof(p), "%s/mcache.fifo", dir);
    assert_int_equal(mkfifo(p, 0644), 0);
    assert_int_equal(mc_attach_dir(dir, "fifo", &c), MC_EBADARENA);
    assert_non_null(strstr(mc_last_error(), "not a regular file"));
    unlink(p);
    snprintf(p, sizeof(p), "%s/mcache.dir", dir);
    assert_int_equal(mkdir(p, 0755), 0);
    assert_true(mc_attach_dir(dir, "dir", &c) < 0);
    rmdir(p);
    tdir_remove(dir);
}

/* Write a file at dir/mcache.<cache> with given content, padded to size. */
static void write_file(const char *dir, const char *cache, const void *buf, size_t len,
                       size_t size)
{
    char p[512];
    int fd;

    snprintf(p, sizeof(p), "%s/mcache.%s", dir, cache);
    fd = open(p, O_RDWR | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size), 0);
    assert_int_equal(pwrite(fd, buf, len, 0), (ssize_t)len);
    close(fd);
}

static void test_bad_headers(void **state)
{
    struct tw t;
    struct mc_arena_hdr h;
    struct mc_arena r;
    char p[512];

    (void)state;
    assert_int_equal(tw_create(&t, 16ull << 20, 0), 0);
    memcpy(&h, t.a.hdr, sizeof(h));

    /* Not an arena at all. */
    char zeros[8192] = {0};
    write_file(t.dir, "zero", zeros, sizeof(zeros), sizeof(zeros));
    assert_int_equal(mc_arena_open(t.dir, "zero", false, &r), MC_EBADARENA);
    assert_non_null(strstr(mc_last_error(), "not an mcache arena"));

    /* Too short to hold a header. */
    write_file(t.dir, "short", "MC", 2, 2);
    assert_int_equal(mc_arena_open(t.dir, "short", false, &r), MC_EBADARENA);
    assert_non_null(strstr(mc_last_error(), "too short"));

    /* Another layout format: both formats are named. */
    struct mc_arena_hdr f = h;
    f.format = MC_ARENA_FORMAT + 98;
    write_file(t.dir, "fmt", &f, sizeof(f), f.size);
    assert_int_equal(mc_arena_open(t.dir, "fmt", false, &r), MC_EFORMAT);
    snprintf(p, sizeof(p), "format %u", MC_ARENA_FORMAT + 98);
    assert_non_null(strstr(mc_last_error(), p));
    snprintf(p, sizeof(p), "format %u", MC_ARENA_FORMAT);
    assert_non_null(strstr(mc_last_error(), p));

    /* Truncated: the file is smaller than the header says. */
    write_file(t.dir, "trunc", &h, sizeof(h), h.size / 2);
    assert_int_equal(mc_arena_open(t.dir, "trunc", false, &r), MC_EBADARENA);
    assert_non_null(strstr(mc_last_error(), "damaged"));
    tw_destroy(&t);
}

/* An exec'd worker attaches t and gets m@1.0.0: its exit status, first line in out. */
static int attach_in_worker(const struct tw *t, char *out, size_t len)
{
    char prog[512], cmd[1400];
    FILE *p;

    snprintf(cmd, sizeof(cmd), "%s meta %s %s m 1.0.0",
             helper_path("mp_reader", prog, sizeof(prog)), t->dir, t->cache);
    p = popen(cmd, "r");
    assert_non_null(p);
    if (!fgets(out, (int)len, p))
        out[0] = '\0';
    return WEXITSTATUS(pclose(p));
}

/* An arena that is not serving is MC_ESTALE, and the message says which way
 * (it read the header after unmapping it, and said "state 0" for every case). */
static void test_not_serving_says_why(void **state)
{
    struct tw t;
    char out[1024];

    (void)state;
    assert_int_equal(tw_create(&t, 16ull << 20, 0), 0);
    assert_int_equal(tw_publish(&t, "m", "1.0.0", 8192, seed_of("m", "1.0.0")), 0);
    t.a.hdr->state = MC_ARENA_SUPERSEDED;
    assert_int_equal(attach_in_worker(&t, out, sizeof(out)), 3);
    assert_non_null(strstr(out, "superseded by a new one"));
    assert_non_null(strstr(out, t.dir));
    t.a.hdr->state = MC_ARENA_INIT;
    assert_int_equal(attach_in_worker(&t, out, sizeof(out)), 3);
    assert_non_null(strstr(out, "not serving yet"));
    t.a.hdr->state = MC_ARENA_READY;
    assert_int_equal(attach_in_worker(&t, out, sizeof(out)), 0);
    assert_null(strstr(out, "error")); /* attached, got m and printed its metadata */
    tw_destroy(&t);
}

/* A worker that writes into the arena dies of SIGSEGV. */
static void test_reader_write_faults(void **state)
{
    struct tw t;
    char prog[512];

    (void)state;
    assert_int_equal(tw_create(&t, 16ull << 20, 0), 0);
    assert_int_equal(tw_publish(&t, "m", "1.0.0", 8192, seed_of("m", "1.0.0")), 0);
    char *argv[] = {"mp_reader", "write", t.dir, (char *)t.cache, "m", "1.0.0", NULL};
    int st = wait_status(spawn(helper_path("mp_reader", prog, sizeof(prog)), argv));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGSEGV);
    /* The byte it tried to write is unchanged. */
    struct mc_rec_version *v = mc_table_find_version(t.w.t, t.a.hdr->hash_seed, "m", "1.0.0");
    assert_non_null(v);
    assert_int_equal(((uint8_t *)(uintptr_t)v->data)[0], pattern_byte(seed_of("m", "1.0.0"), 0));
    tw_destroy(&t);
}

/* With hugetlbfs pages available, the arena reports them and aligns data to them. */
static void test_hugetlb_backing(void **state)
{
    struct mc_arena_opts o = {.cache = "huge", .size = 8ull << 20};
    struct mc_arena a;
    FILE *f = fopen("/proc/sys/vm/nr_hugepages", "r");
    long pages = 0;
    uint64_t ps;
    uint32_t backing;

    (void)state;
    if (f) {
        if (fscanf(f, "%ld", &pages) != 1)
            pages = 0;
        fclose(f);
    }
    if (pages < 4 || mc_backing_detect("/dev/hugepages", &ps, &backing) != 0 ||
        backing != MC_BACKING_HUGETLB) {
        printf("# hugetlb part not run: no hugetlbfs at /dev/hugepages with >= 4 reserved "
               "pages (nr_hugepages=%ld); the arena falls back to 4 KiB pages there\n",
               pages);
        assert_int_equal(mc_backing_detect("/dev/shm", &ps, &backing), 0);
        assert_int_equal(ps, 4096);
        return;
    }
    o.dir = "/dev/hugepages";
    mc_arena_unlink(o.dir, o.cache);
    assert_int_equal(mc_arena_create(&o, &a), 0);
    assert_int_equal(a.hdr->page_size, ps);
    assert_int_equal(a.hdr->backing, MC_BACKING_HUGETLB);
    assert_int_equal(a.hdr->data_off % ps, 0);
    /* The reader table beside it is sized in whole huge pages (hugetlbfs
     * refuses anything else), and opens again. */
    struct mc_readers r, r2;
    assert_int_equal(mc_readers_create(o.dir, o.cache, 64, 0666, a.hdr->created_ns, &r), 0);
    assert_int_equal(r.map_size % ps, 0);
    assert_int_equal(mc_readers_open(o.dir, o.cache, a.hdr->created_ns, &r2), 0);
    mc_readers_close(&r2);
    mc_readers_close(&r);
    mc_arena_close(&a);
    mc_arena_retire(o.dir, o.cache);
}

/* mc_version() is the header's MCACHE_VERSION_* and the build's project version. */
static void test_version_matches_header_and_build(void **state)
{
    char want[32];

    (void)state;
    snprintf(want, sizeof(want), "%d.%d.%d", MCACHE_VERSION_MAJOR, MCACHE_VERSION_MINOR,
             MCACHE_VERSION_PATCH);
    assert_non_null(mc_version());
    assert_string_equal(mc_version(), want);
    assert_string_equal(mc_version(), MC_PROJECT_VERSION); /* CMakeLists.txt project() */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_attach),
        cmocka_unit_test(test_default_base_per_cache_name),
        cmocka_unit_test(test_arena_larger_than_its_slot),
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_not_serving_says_why),
        cmocka_unit_test(test_reader_write_faults),
        cmocka_unit_test(test_hugetlb_backing),
        cmocka_unit_test(test_version_matches_header_and_build),
    };
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
