/*
 * test_stats.c - the arithmetic of serving statistics (index/stats.h): the
 * latency histogram's precision, quantiles, and differences of sums across
 * a reload (counts that restart from zero).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "index/stats.h"
#include "tests/helpers/run.h"

/* Every value from 1 us to 100 s lies within 3.1% of its bucket's value. */
static void test_buckets_are_within_3_percent_from_1us_to_100s(void **state)
{
    (void)state;
    for (uint64_t v = 1000; v <= 100000000000ull; v += v / 97 + 1) {
        unsigned b = mc_stats_bucket(v);
        double mid = (double)mc_stats_bucket_value(b), err = (mid - (double)v) / (double)v;

        assert_true(b > 0 && b < MC_STATS_BUCKETS - 1);
        assert_true(err < 0.031 && err > -0.031);
        assert_true(mc_stats_bucket(v + 1) >= b); /* monotonic */
    }
    assert_int_equal(mc_stats_bucket(0), 0);
    assert_int_equal(mc_stats_bucket(UINT64_MAX), MC_STATS_BUCKETS - 1);
}

static void test_quantiles(void **state)
{
    static struct mc_stats_sum s;

    (void)state;
    memset(&s, 0, sizeof(s));
    assert_int_equal(mc_stats_quantile(&s, 0.5), 0); /* no requests */
    for (uint64_t i = 1; i <= 1000; i++) { /* 1..1000 us */
        s.hist[mc_stats_bucket(i * 1000)]++;
        s.requests++;
    }
    double p50 = (double)mc_stats_quantile(&s, 0.5), p99 = (double)mc_stats_quantile(&s, 0.99);
    assert_true(p50 > 500000 * 0.969 && p50 < 500000 * 1.031);
    assert_true(p99 > 990000 * 0.969 && p99 < 990000 * 1.031);
}

/* A version loaded again counts from zero: the difference is what came since. */
static void test_diff_across_a_reload_is_not_wrapped(void **state)
{
    static struct mc_stats_sum then, now, out;

    (void)state;
    memset(&then, 0, sizeof(then));
    memset(&now, 0, sizeof(now));
    then.requests = 1000;
    then.errors = 10;
    then.hist[mc_stats_bucket(5000)] = 1000;
    now = then;
    now.requests += 50;
    now.errors += 5;
    now.hist[mc_stats_bucket(5000)] += 50;
    mc_stats_diff(&now, &then, &out);
    assert_int_equal(out.requests, 50);
    assert_int_equal(out.errors, 5);
    /* Reloaded: 30 requests since, fewer than the baseline. */
    memset(&now, 0, sizeof(now));
    now.requests = 30;
    now.errors = 3;
    now.hist[mc_stats_bucket(7000)] = 30;
    mc_stats_diff(&now, &then, &out);
    assert_int_equal(out.requests, 30);
    assert_int_equal(out.errors, 3);
    assert_int_equal(out.hist[mc_stats_bucket(5000)], 0);
    assert_int_equal(out.hist[mc_stats_bucket(7000)], 30);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_are_within_3_percent_from_1us_to_100s),
        cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_diff_across_a_reload_is_not_wrapped),
    };
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
