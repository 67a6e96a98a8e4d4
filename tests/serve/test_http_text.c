/*
 * test_http_text.c - the parts of a request's text mcache-serve parses
 * itself (router.c, pure functions): Range against a body's size, the
 * Content-Type match, and the Host and Origin rules that keep web pages
 * out of an open-access server.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "serve/core.h"

static void range_of_an_empty_body_is_unsatisfiable(void **state)
{
    uint64_t off = 7, len = 7;

    (void)state;
    /* bytes=-N of 0 bytes was "bytes 0-18446744073709551615/0" */
    assert_int_equal(http_range("bytes=-5", 0, &off, &len), RANGE_BAD);
    assert_int_equal(http_range("bytes=0-", 0, &off, &len), RANGE_BAD);
    assert_int_equal(http_range("bytes=0-0", 0, &off, &len), RANGE_BAD);
    assert_int_equal(http_range(NULL, 0, &off, &len), RANGE_NONE);
}

static void ranges(void **state)
{
    uint64_t off = 0, len = 0;

    (void)state;
    assert_int_equal(http_range("bytes=-5", 100, &off, &len), RANGE_ONE);
    assert_int_equal(off, 95);
    assert_int_equal(len, 5);
    assert_int_equal(http_range("bytes=-500", 100, &off, &len), RANGE_ONE);
    assert_int_equal(off, 0);
    assert_int_equal(len, 100);
    assert_int_equal(http_range("bytes=10-19", 100, &off, &len), RANGE_ONE);
    assert_int_equal(off, 10);
    assert_int_equal(len, 10);
    assert_int_equal(http_range("bytes=90-", 100, &off, &len), RANGE_ONE);
    assert_int_equal(len, 10);
    assert_int_equal(http_range("bytes=100-", 100, &off, &len), RANGE_BAD);
    assert_int_equal(http_range("bytes=-0", 100, &off, &len), RANGE_BAD);
    assert_int_equal(http_range("bytes=0-1,5-6", 100, &off, &len), RANGE_NONE);
    assert_int_equal(http_range("items=0-1", 100, &off, &len), RANGE_NONE);
}

static void content_types_match_exactly(void **state)
{
    (void)state;
    assert_true(http_is_type("application/octet-stream", "application/octet-stream"));
    assert_true(http_is_type(" Application/Octet-Stream ; x=1", "application/octet-stream"));
    assert_false(http_is_type("application/octet-streamX", "application/octet-stream"));
    assert_false(http_is_type("application/octet-stream x", "application/octet-stream"));
    assert_false(http_is_type(NULL, "application/octet-stream"));
    assert_true(http_is_json_type("application/json; charset=utf-8"));
    assert_false(http_is_json_type("application/jsonx"));
    assert_false(http_is_json_type("text/plain"));
}

static void hosts(void **state)
{
    static const char *const local[] = {"localhost", "LocalHost:8420", "127.0.0.1",
                                        "127.0.0.1:1",  "127.9.9.9:80",   "[::1]",
                                        "[::1]:8420",   "[::ffff:127.0.0.1]:5"};
    static const char *const foreign[] = {
        "evil.example", "evil.example:8420", "127.0.0.1.evil.example", "localhost.evil",
        "10.0.0.1",     "[::2]",             "::1",                    "localhost:80x",
        "",             "[::1",              "127.0.0.1:8420:1"};

    (void)state;
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        assert_true(http_host_is_local(local[i], false));
    for (size_t i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++)
        assert_false(http_host_is_local(foreign[i], false));
    /* --insecure-open on another address: IP literals, never names */
    assert_true(http_host_is_local("10.0.0.1:8420", true));
    assert_true(http_host_is_local("[2001:db8::1]:8420", true));
    assert_false(http_host_is_local("models.example:8420", true));
}

static void origins(void **state)
{
    (void)state;
    assert_true(http_origin_allowed(NULL, "127.0.0.1:8420", false));
    assert_true(http_origin_allowed("http://127.0.0.1:8420", "127.0.0.1:8420", false));
    assert_true(http_origin_allowed("http://localhost:3000", "127.0.0.1:8420", false));
    assert_true(http_origin_allowed("https://models.example:8443", "models.example:8443", false));
    assert_false(http_origin_allowed("http://evil.example", "127.0.0.1:8420", false));
    assert_false(http_origin_allowed("null", "127.0.0.1:8420", false));
    assert_false(http_origin_allowed("http://evil.example", NULL, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(range_of_an_empty_body_is_unsatisfiable),
        cmocka_unit_test(ranges),
        cmocka_unit_test(content_types_match_exactly),
        cmocka_unit_test(hosts),
        cmocka_unit_test(origins),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
