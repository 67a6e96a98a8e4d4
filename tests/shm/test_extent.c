/*
 * test_extent.c - the arena's allocators: extent split, merge, alignment,
 * fragmentation, exhaustion and rebuild; slab objects and index rebuild.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "shm/slab.h"
#include "tests/helpers/run.h"
#include "tests/helpers/testutil.h"

static struct tw T;
#define E (&T.a.hdr->data_ext)
#define G (E->granule)

static int setup(void **state)
{
    (void)state;
    return tw_create_arena(&T, 64ull << 20, 0) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    tw_destroy(&T);
    return 0;
}

static void test_split_merge(void **state)
{
    uint64_t a, b, c, total = E->region_size;

    (void)state;
    assert_int_equal(E->nfree, 1);
    assert_int_equal(mc_extent_alloc(&T.a, E, 3 * G, 0, &a), 0);
    assert_int_equal(mc_extent_alloc(&T.a, E, 1, 0, &b), 0);
    assert_int_equal(mc_extent_alloc(&T.a, E, 5 * G, 0, &c), 0);
    assert_int_equal(a % G, 0);
    assert_true(b >= a + 3 * G || b + G <= a);
    assert_int_equal(E->used, 9 * G);
    assert_int_equal(mc_extent_check(&T.a, E), 0);
    /* Free the middle: a hole between two allocations. */
    mc_extent_free(&T.a, E, b, 1);
    assert_int_equal(E->nfree, 2);
    assert_int_equal(mc_extent_check(&T.a, E), 0);
    /* Best fit: a one-granule request goes back into the hole. */
    uint64_t d;
    assert_int_equal(mc_extent_alloc(&T.a, E, G, 0, &d), 0);
    assert_int_equal(d, b);
    mc_extent_free(&T.a, E, d, G);
    mc_extent_free(&T.a, E, a, 3 * G);
    mc_extent_free(&T.a, E, c, 5 * G);
    /* Everything merged back into one extent. */
    assert_int_equal(E->nfree, 1);
    assert_int_equal(E->used, 0);
    assert_int_equal(E->largest_free, total);
    assert_int_equal(mc_extent_check(&T.a, E), 0);
}

static void test_alignment(void **state)
{
    uint64_t a, b;

    (void)state;
    assert_int_equal(mc_extent_alloc(&T.a, E, G, 0, &a), 0);
    assert_int_equal(mc_extent_alloc(&T.a, E, G, 2u << 20, &b), 0);
    assert_int_equal(b % (2u << 20), 0);
    assert_int_equal(mc_extent_check(&T.a, E), 0);
    mc_extent_free(&T.a, E, b, G);
    mc_extent_free(&T.a, E, a, G);
    assert_int_equal(E->nfree, 1);
    assert_int_equal(mc_extent_check(&T.a, E), 0);
}

static void test_fragmentation_and_exhaustion(void **state)
{
    const uint64_t MB = 1u << 20;
    uint64_t offs[256], big, count = 0;

    (void)state;
    /* Fill the region with 1 MiB extents. */
    while (count < 256 && mc_extent_alloc(&T.a, E, MB, 0, &offs[count]) == 0)
        count++;
    assert_true(count > 16 && count < 256);
    /* Exhaustion is an error with a message naming the sizes, never a crash. */
    assert_int_equal(mc_extent_alloc(&T.a, E, MB, 0, &big), MC_ENOSPC);
    assert_non_null(strstr(mc_last_error(), "no free extent of 1048576 bytes"));
    /* Free every other one: half the region is free, but only in 1 MiB holes. */
    for (uint64_t i = 0; i < count; i += 2)
        mc_extent_free(&T.a, E, offs[i], MB);
    assert_int_equal(mc_extent_check(&T.a, E), 0);
    assert_true(E->region_size - E->used >= (count / 2) * MB);
    assert_true(E->largest_free < 2 * MB);
    assert_int_equal(mc_extent_alloc(&T.a, E, 2 * MB, 0, &big), MC_ENOSPC);
    assert_non_null(strstr(mc_last_error(), "largest free extent"));
    /* Freeing the rest merges everything back. */
    for (uint64_t i = 1; i < count; i += 2)
        mc_extent_free(&T.a, E, offs[i], MB);
    assert_int_equal(E->nfree, 1);
    assert_int_equal(E->used, 0);
    assert_int_equal(mc_extent_alloc(&T.a, E, 2 * MB, 0, &big), 0);
}

static void test_allocation_cap(void **state)
{
    uint64_t off, count = 0;
    uint64_t *offs = calloc(E->cap, sizeof(uint64_t));

    (void)state;
    /* The cap keeps free extents within the array; hitting it is ENOSPC. */
    while (mc_extent_alloc(&T.a, E, 1, 0, &off) == 0)
        offs[count++] = off;
    assert_int_equal(count, E->cap - 1);
    assert_non_null(strstr(mc_last_error(), "maximum of"));
    assert_int_equal(mc_extent_check(&T.a, E), 0);
    for (uint64_t i = 0; i < count; i += 2)
        mc_extent_free(&T.a, E, offs[i], 1);
    assert_int_equal(mc_extent_check(&T.a, E), 0);
    for (uint64_t i = 1; i < count; i += 2)
        mc_extent_free(&T.a, E, offs[i], 1);
    assert_int_equal(E->nfree, 1);
    free(offs);
}

static void test_rebuild(void **state)
{
    uint64_t a, b, c;
    struct mc_extent_span live[2];

    (void)state;
    assert_int_equal(mc_extent_alloc(&T.a, E, 2 * G, 0, &a), 0);
    assert_int_equal(mc_extent_alloc(&T.a, E, 3 * G, 0, &b), 0);
    assert_int_equal(mc_extent_alloc(&T.a, E, 4 * G, 0, &c), 0);
    /* As if the loader died with b allocated but unreachable. */
    live[0] = (struct mc_extent_span){c, 4 * G};
    live[1] = (struct mc_extent_span){a, 2 * G};
    assert_int_equal(mc_extent_rebuild(&T.a, E, live, 2), 0);
    assert_int_equal(E->used, 6 * G);
    assert_int_equal(E->nalloc, 2);
    assert_int_equal(mc_extent_check(&T.a, E), 0);
    /* Overlapping live spans are corruption. */
    live[0] = (struct mc_extent_span){a, 2 * G};
    live[1] = (struct mc_extent_span){a + G, 2 * G};
    assert_int_equal(mc_extent_rebuild(&T.a, E, live, 2), MC_ECORRUPT);
    live[0] = (struct mc_extent_span){a, 2 * G};
    live[1] = (struct mc_extent_span){c, 4 * G};
    assert_int_equal(mc_extent_rebuild(&T.a, E, live, 2), 0);
    mc_extent_free(&T.a, E, a, 2 * G);
    mc_extent_free(&T.a, E, c, 4 * G);
    assert_int_equal(E->nfree, 1);
}

static void test_slab(void **state)
{
    enum { N = 1200 };
    uint64_t *offs = calloc(N, sizeof(uint64_t));
    size_t *sizes = calloc(N, sizeof(size_t));
    struct mc_extent_span *live = calloc(N, sizeof(*live));
    uint64_t used0 = mc_index_used(&T.a);
    size_t nlive = 0;

    (void)state;
    for (int i = 0; i < N; i++) {
        sizes[i] = 1 + (size_t)(i * 37) % 3000; /* slab classes and large objects */
        assert_int_equal(mc_index_alloc(&T.a, sizes[i], &offs[i]), 0);
        assert_int_equal(offs[i] % 64, 0);
        memset(T.a.base + offs[i], 0x5a, sizes[i]);
    }
    /* No two objects overlap: each still holds only its own bytes. */
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < sizes[i]; j += 97)
            assert_int_equal(T.a.base[offs[i] + j], 0x5a);
    /* Rebuild from the odd half, as after a crash with the even half lost. */
    for (int i = 1; i < N; i += 2)
        live[nlive++] = (struct mc_extent_span){offs[i], sizes[i]};
    assert_int_equal(mc_index_rebuild(&T.a, live, nlive), 0);
    assert_int_equal(mc_extent_check(&T.a, &T.a.hdr->index_ext), 0);
    assert_int_equal(T.a.hdr->slab.objects + T.a.hdr->index_ext.nalloc - T.a.hdr->slab.chunks,
                     nlive);
    /* Allocations after the rebuild never land on a live object. */
    for (int k = 0; k < 500; k++) {
        uint64_t o;
        size_t sz = 64 + (size_t)k % 900;
        assert_int_equal(mc_index_alloc(&T.a, sz, &o), 0);
        for (int i = 1; i < N; i += 2)
            assert_true(o + sz <= offs[i] || offs[i] + sizes[i] <= o);
        mc_index_free(&T.a, o, sz);
    }
    for (int i = 1; i < N; i += 2)
        mc_index_free(&T.a, offs[i], sizes[i]);
    assert_int_equal(mc_index_used(&T.a), used0);
    free(offs);
    free(sizes);
    free(live);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_merge, setup, teardown),
        cmocka_unit_test_setup_teardown(test_alignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragmentation_and_exhaustion, setup, teardown),
        cmocka_unit_test_setup_teardown(test_allocation_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rebuild, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slab, setup, teardown),
    };
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
