/*
 * test_names.c - model names, alias names and metadata keys: what passes,
 * what is refused, and that each refusal says what is allowed.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "index/name.h"
#include "tests/helpers/run.h"

struct bad {
    const char *value;
    const char *says; /* a piece of the message */
};

static void test_model_names(void **state)
{
    static const char *const good[] = {
        "resnet", "resnet-50", "org/model", "llama-3.1_8b", "A", "_private", "org.ai/m.v2", "0day",
    };
    static const struct bad bad[] = {
        {"", "empty"},
        {"../etc", "contains \"..\""},
        {"a/../b", "has 2 '/'"},
        {"a..b", "contains \"..\""},
        {"/abs", "starts with '/'"},
        {"org/", "ends with '/'"},
        {"a/b/c", "only one namespace level"},
        {"a//b", "2 '/'"},
        {".hidden", "starts with '.'"},
        {"org/.hidden", "starts with '.'"},
        {"-rf", "starts with '-'"},
        {"org/-x", "starts with '-'"},
        {"tab\there", "control byte \"\\x09\""},
        {"new\nline", "control byte"},
        {"sp ace", "contains \" \""},
        {"semi;colon", "contains \";\""},
        {"star*", "contains \"*\""},
        {"caf\xc3\xa9", "\"\\xc3\""},
        {"a@1.0.0", "contains \"@\""},
        {"org/1.0.0", "the part after '/' is a version number"},
    };
    char longname[MC_NAME_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (mc_name_check(good[i]) != 0)
            fail_msg("%s refused: %s", good[i], mc_last_error());
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mc_name_check(bad[i].value), MC_EINVAL);
        if (!strstr(mc_last_error(), bad[i].says) ||
            !strstr(mc_last_error(), "letters, digits, '.', '_' and '-'"))
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].value, mc_last_error(), bad[i].says);
    }
    memset(longname, 'a', sizeof(longname) - 1);
    longname[MC_NAME_MAX] = '\0';
    assert_int_equal(mc_name_check(longname), 0);
    longname[MC_NAME_MAX] = 'a';
    longname[MC_NAME_MAX + 1] = '\0';
    assert_int_equal(mc_name_check(longname), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "129 bytes long"));
    assert_int_equal(mc_name_check(NULL), MC_EINVAL);
}

static void test_alias_names(void **state)
{
    static const char *const good[] = {
        "production", "staging", "canary-eu", "stable.v2", "blue_green", "prod2", "vnext",
    };
    static const struct bad bad[] = {
        {"", "empty"},
        {"latest", "reserved"},
        {"x", "would read as a version range"},
        {"X", "would read as a version range"},
        {"v2", "would read as a version range"},
        {"v1.2", "would read as a version range"},
        {"vx", "would read as a version range"},
        {"2fast", "does not start with a letter"},
        {"-prod", "does not start with a letter"},
        {"prod uction", "contains \" \""},
        {"prod/eu", "contains \"/\""},
        {"prod@1", "contains \"@\""},
    };
    char longname[MC_ALIAS_MAX + 2];

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (mc_alias_check(good[i]) != 0)
            fail_msg("%s refused: %s", good[i], mc_last_error());
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mc_alias_check(bad[i].value), MC_EINVAL);
        if (!strstr(mc_last_error(), bad[i].says) ||
            !strstr(mc_last_error(), "starts with a letter and continues"))
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].value, mc_last_error(), bad[i].says);
    }
    memset(longname, 'a', sizeof(longname) - 1);
    longname[MC_ALIAS_MAX + 1] = '\0';
    assert_int_equal(mc_alias_check(longname), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "65 bytes long"));
}

static void test_keys(void **state)
{
    (void)state;
    assert_int_equal(mc_key_check("metric", "accuracy"), 0);
    assert_int_equal(mc_key_check("metric", "eval/top-1"), 0);
    assert_int_equal(mc_key_check("tag", "k8s:cluster"), 0);
    assert_int_equal(mc_key_check("tag", "1st"), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "tag key \"1st\" does not start with a letter"));
    assert_int_equal(mc_key_check("param", "learning rate"), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "param key \"learning rate\" contains \" \""));
    assert_int_equal(mc_key_check("param", ""), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "empty"));
}

static void test_quote(void **state)
{
    char buf[MC_QUOTE_MAX], tiny[12];
    char longv[300];

    (void)state;
    assert_string_equal(mc_quote(buf, sizeof(buf), "a\"b\\c\x7f", 6), "\"a\\\"b\\\\c\\x7f\"");
    memset(longv, 'z', sizeof(longv));
    mc_quote(buf, sizeof(buf), longv, sizeof(longv));
    assert_true(strlen(buf) < sizeof(buf));
    assert_non_null(strstr(buf, "...\""));
    mc_quote(tiny, sizeof(tiny), "abcdefghijklmnop", 16);
    assert_string_equal(tiny, "\"abcdef...\"");
    assert_string_equal(mc_quote(buf, sizeof(buf), NULL, 0), "(null)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_names),
        cmocka_unit_test(test_alias_names),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_quote),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
