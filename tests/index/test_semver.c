/*
 * test_semver.c - SemVer 2.0.0 precedence and npm range semantics.
 *
 * The range tables are node-semver's own test fixtures (test/fixtures/
 * range-include.js, range-exclude.js, range-parse.js, comparisons.js), the
 * cases that use neither `loose` nor `includePrerelease`, ported as data.
 * The precedence chain is semver.org's list from section 11.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "index/semver.h"
#include "tests/helpers/run.h"

struct pair {
    const char *a, *b;
};

/* range-include.js: b satisfies a */
static const struct pair range_include[] = {
    {"1.0.0 - 2.0.0", "1.2.3"},
    {"^1.2.3+build", "1.2.3"},
    {"^1.2.3+build", "1.3.0"},
    {"1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3"},
    {"1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3-pre.2"},
    {"1.2.3-pre+asdf - 2.4.3-pre+asdf", "2.4.3-alpha"},
    {"1.2.3+asdf - 2.4.3+asdf", "1.2.3"},
    {"1.0.0", "1.0.0"},
    {">=*", "0.2.4"},
    {"", "1.0.0"},
    {"*", "1.2.3"},
    {">=1.0.0", "1.0.0"},
    {">=1.0.0", "1.0.1"},
    {">=1.0.0", "1.1.0"},
    {">1.0.0", "1.0.1"},
    {">1.0.0", "1.1.0"},
    {"<=2.0.0", "2.0.0"},
    {"<=2.0.0", "1.9999.9999"},
    {"<=2.0.0", "0.2.9"},
    {"<2.0.0", "1.9999.9999"},
    {"<2.0.0", "0.2.9"},
    {">= 1.0.0", "1.0.0"},
    {">=  1.0.0", "1.0.1"},
    {">=   1.0.0", "1.1.0"},
    {"> 1.0.0", "1.0.1"},
    {">  1.0.0", "1.1.0"},
    {"<=   2.0.0", "2.0.0"},
    {"<= 2.0.0", "1.9999.9999"},
    {"<=  2.0.0", "0.2.9"},
    {"<    2.0.0", "1.9999.9999"},
    {"<\t2.0.0", "0.2.9"},
    {">=0.1.97", "0.1.97"},
    {"0.1.20 || 1.2.4", "1.2.4"},
    {">=0.2.3 || <0.0.1", "0.0.0"},
    {">=0.2.3 || <0.0.1", "0.2.3"},
    {">=0.2.3 || <0.0.1", "0.2.4"},
    {"||", "1.3.4"},
    {"2.x.x", "2.1.3"},
    {"1.2.x", "1.2.3"},
    {"1.2.x || 2.x", "2.1.3"},
    {"1.2.x || 2.x", "1.2.3"},
    {"x", "1.2.3"},
    {"2.*.*", "2.1.3"},
    {"1.2.*", "1.2.3"},
    {"1.2.* || 2.*", "2.1.3"},
    {"1.2.* || 2.*", "1.2.3"},
    {"*", "1.2.3"},
    {"2", "2.1.2"},
    {"2.3", "2.3.1"},
    {"~0.0.1", "0.0.1"},
    {"~0.0.1", "0.0.2"},
    {"~x", "0.0.9"},
    {"~2", "2.0.9"},
    {"~2.4", "2.4.0"},
    {"~2.4", "2.4.5"},
    {"~>3.2.1", "3.2.2"},
    {"~1", "1.2.3"},
    {"~>1", "1.2.3"},
    {"~> 1", "1.2.3"},
    {"~1.0", "1.0.2"},
    {"~ 1.0", "1.0.2"},
    {"~ 1.0.3", "1.0.12"},
    {">=1", "1.0.0"},
    {">= 1", "1.0.0"},
    {"<1.2", "1.1.1"},
    {"< 1.2", "1.1.1"},
    {"~v0.5.4-pre", "0.5.5"},
    {"~v0.5.4-pre", "0.5.4"},
    {"=0.7.x", "0.7.2"},
    {"<=0.7.x", "0.7.2"},
    {">=0.7.x", "0.7.2"},
    {"<=0.7.x", "0.6.2"},
    {"~1.2.1 >=1.2.3", "1.2.3"},
    {"~1.2.1 =1.2.3", "1.2.3"},
    {"~1.2.1 1.2.3", "1.2.3"},
    {"~1.2.1 >=1.2.3 1.2.3", "1.2.3"},
    {"~1.2.1 1.2.3 >=1.2.3", "1.2.3"},
    {">=1.2.1 1.2.3", "1.2.3"},
    {"1.2.3 >=1.2.1", "1.2.3"},
    {">=1.2.3 >=1.2.1", "1.2.3"},
    {">=1.2.1 >=1.2.3", "1.2.3"},
    {">=1.2", "1.2.8"},
    {"^1.2.3", "1.8.1"},
    {"^0.1.2", "0.1.2"},
    {"^0.1", "0.1.2"},
    {"^0.0.1", "0.0.1"},
    {"^1.2", "1.4.2"},
    {"^1.2 ^1", "1.4.2"},
    {"^1.2.3-alpha", "1.2.3-pre"},
    {"^1.2.0-alpha", "1.2.0-pre"},
    {"^0.0.1-alpha", "0.0.1-beta"},
    {"^0.0.1-alpha", "0.0.1"},
    {"^0.1.1-alpha", "0.1.1-beta"},
    {"^x", "1.2.3"},
    {"x - 1.0.0", "0.9.7"},
    {"x - 1.x", "0.9.7"},
    {"1.0.0 - x", "1.9.7"},
    {"1.x - x", "1.9.7"},
    {"<=7.x", "7.9.9"},
    /* node-semver's README on prereleases */
    {">1.2.3-alpha.3", "1.2.3-alpha.7"},
    {">1.2.3-alpha.3", "3.4.5"},
    {">=1.3.0-rc.0 <2", "1.3.0-rc.1"},
    /* odd inputs npm accepts, checked against node-semver 7.8 */
    {"1.2.3*", "1.2.3"},
    {"v1.2.3 - 2.0.0", "1.5.0"},
    {"> =1.2", "1.3.0"},
    {"^1.x.99999999999999999999", "1.5.0"},
    {">=v0.0.0 || 1.2.3-pre", "1.2.3-pre"},
    {"^1.2.3-beta.2", "1.2.3-beta.4"},
};

/* range-exclude.js: b does not satisfy a (or is not a strict version) */
static const struct pair range_exclude[] = {
    {"1.0.0 - 2.0.0", "2.2.3"},
    {"1.2.3+asdf - 2.4.3+asdf", "1.2.3-pre.2"},
    {"1.2.3+asdf - 2.4.3+asdf", "2.4.3-alpha"},
    {"^1.2.3+build", "2.0.0"},
    {"^1.2.3+build", "1.2.0"},
    {"^1.2.3", "1.2.3-pre"},
    {"^1.2", "1.2.0-pre"},
    {">1.2", "1.3.0-beta"},
    {"<=1.2.3", "1.2.3-beta"},
    {"^1.2.3", "1.2.3-beta"},
    {"=0.7.x", "0.7.0-asdf"},
    {">=0.7.x", "0.7.0-asdf"},
    {"<=0.7.x", "0.7.0-asdf"},
    {"1.0.0", "1.0.1"},
    {">=1.0.0", "0.0.0"},
    {">=1.0.0", "0.0.1"},
    {">=1.0.0", "0.1.0"},
    {">1.0.0", "0.0.1"},
    {">1.0.0", "0.1.0"},
    {"<=2.0.0", "3.0.0"},
    {"<=2.0.0", "2.9999.9999"},
    {"<=2.0.0", "2.2.9"},
    {"<2.0.0", "2.9999.9999"},
    {"<2.0.0", "2.2.9"},
    {">=0.1.97", "0.1.93"},
    {"0.1.20 || 1.2.4", "1.2.3"},
    {">=0.2.3 || <0.0.1", "0.0.3"},
    {">=0.2.3 || <0.0.1", "0.2.2"},
    {"2.x.x", "1.1.3"},
    {"2.x.x", "3.1.3"},
    {"1.2.x", "1.3.3"},
    {"1.2.x || 2.x", "3.1.3"},
    {"1.2.x || 2.x", "1.1.3"},
    {"2.*.*", "1.1.3"},
    {"2.*.*", "3.1.3"},
    {"1.2.*", "1.3.3"},
    {"1.2.* || 2.*", "3.1.3"},
    {"1.2.* || 2.*", "1.1.3"},
    {"2", "1.1.2"},
    {"2.3", "2.4.1"},
    {"~0.0.1", "0.1.0-alpha"},
    {"~0.0.1", "0.1.0"},
    {"~2.4", "2.5.0"},
    {"~2.4", "2.3.9"},
    {"~>3.2.1", "3.3.2"},
    {"~>3.2.1", "3.2.0"},
    {"~1", "0.2.3"},
    {"~>1", "2.2.3"},
    {"~1.0", "1.1.0"},
    {"<1", "1.0.0"},
    {">=1.2", "1.1.1"},
    {"~v0.5.4-beta", "0.5.4-alpha"},
    {"=0.7.x", "0.8.2"},
    {">=0.7.x", "0.6.2"},
    {"<0.7.x", "0.7.2"},
    {"<1.2.3", "1.2.3-beta"},
    {"=1.2.3", "1.2.3-beta"},
    {">1.2", "1.2.8"},
    {"^0.0.1", "0.0.2-alpha"},
    {"^0.0.1", "0.0.2"},
    {"^1.2.3", "2.0.0-alpha"},
    {"^1.2.3", "1.2.2"},
    {"^1.2", "1.1.9"},
    {"*", "not a version"},
    {">=2", "glorp"},
    {"^1.0.0", "2.0.0-rc1"},
    {"1 - 2", "2.0.0-pre"},
    {"1 - 2", "1.0.0-pre"},
    {"1.0 - 2", "1.0.0-pre"},
    {"1.1.x", "1.0.0-a"},
    {"1.1.x", "1.1.0-a"},
    {"1.1.x", "1.2.0-a"},
    {"1.x", "1.0.0-a"},
    {"1.x", "1.1.0-a"},
    {"1.x", "1.2.0-a"},
    {">=1.0.0 <1.1.0", "1.1.0"},
    {">=1.0.0 <1.1.0", "1.1.0-pre"},
    {">=1.0.0 <1.1.0-pre", "1.1.0-pre"},
    {">1.2.3-alpha.3", "3.4.5-alpha.9"},
    {">=1.3.0-rc.0 <2", "1.4.0-rc.1"},
    /* a lone "*" set beside others makes the whole range "*" */
    {"* || 1.2.3-pre", "1.2.3-pre"},
    {">=0.0.0 || 1.2.3-pre", "1.2.3-pre"},
    {"^1.2.3-beta.2", "1.2.4-beta.2"},
};

/* range-parse.js: the canonical form, NULL when not a valid range */
static const struct pair range_parse[] = {
    {"1.0.0 - 2.0.0", ">=1.0.0 <=2.0.0"},
    {"1 - 2", ">=1.0.0 <3.0.0-0"},
    {"1.0 - 2.0", ">=1.0.0 <2.1.0-0"},
    {"1.0.0", "1.0.0"},
    {">=*", "*"},
    {"", "*"},
    {"*", "*"},
    {">=1.0.0", ">=1.0.0"},
    {">1.0.0", ">1.0.0"},
    {"<=2.0.0", "<=2.0.0"},
    {"1", ">=1.0.0 <2.0.0-0"},
    {"<2.0.0", "<2.0.0"},
    {">= 1.0.0", ">=1.0.0"},
    {">=  1.0.0", ">=1.0.0"},
    {">=   1.0.0", ">=1.0.0"},
    {"> 1.0.0", ">1.0.0"},
    {">  1.0.0", ">1.0.0"},
    {"<=   2.0.0", "<=2.0.0"},
    {"<= 2.0.0", "<=2.0.0"},
    {"<=  2.0.0", "<=2.0.0"},
    {"<    2.0.0", "<2.0.0"},
    {"<\t2.0.0", "<2.0.0"},
    {">=0.1.97", ">=0.1.97"},
    {"0.1.20 || 1.2.4", "0.1.20||1.2.4"},
    {">=0.2.3 || <0.0.1", ">=0.2.3||<0.0.1"},
    {"||", "*"},
    {"2.x.x", ">=2.0.0 <3.0.0-0"},
    {"1.2.x", ">=1.2.0 <1.3.0-0"},
    {"1.2.x || 2.x", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0"},
    {"1.x.5", NULL},
    {"1.*.5", NULL},
    {"1.x.5 || 2.x", NULL},
    {"x.1", NULL},
    {"x.1.2", NULL},
    {"x.x.1", NULL},
    {"x", "*"},
    {"2.*.*", ">=2.0.0 <3.0.0-0"},
    {"1.2.*", ">=1.2.0 <1.3.0-0"},
    {"1.2.* || 2.*", ">=1.2.0 <1.3.0-0||>=2.0.0 <3.0.0-0"},
    {"2", ">=2.0.0 <3.0.0-0"},
    {"2.3", ">=2.3.0 <2.4.0-0"},
    {"~2.4", ">=2.4.0 <2.5.0-0"},
    {"~>3.2.1", ">=3.2.1 <3.3.0-0"},
    {"~1", ">=1.0.0 <2.0.0-0"},
    {"~>1", ">=1.0.0 <2.0.0-0"},
    {"~> 1", ">=1.0.0 <2.0.0-0"},
    {"~1.0", ">=1.0.0 <1.1.0-0"},
    {"~ 1.0", ">=1.0.0 <1.1.0-0"},
    {"^0", "<1.0.0-0"},
    {"^ 1", ">=1.0.0 <2.0.0-0"},
    {"^0.1", ">=0.1.0 <0.2.0-0"},
    {"^1.0", ">=1.0.0 <2.0.0-0"},
    {"^1.2", ">=1.2.0 <2.0.0-0"},
    {"^0.0.1", ">=0.0.1 <0.0.2-0"},
    {"^0.0.1-beta", ">=0.0.1-beta <0.0.2-0"},
    {"^0.1.2", ">=0.1.2 <0.2.0-0"},
    {"^1.2.3", ">=1.2.3 <2.0.0-0"},
    {"^1.2.3-beta.4", ">=1.2.3-beta.4 <2.0.0-0"},
    {"<1", "<1.0.0-0"},
    {"< 1", "<1.0.0-0"},
    {">=1", ">=1.0.0"},
    {">= 1", ">=1.0.0"},
    {"<1.2", "<1.2.0-0"},
    {"< 1.2", "<1.2.0-0"},
    {">01.02.03", NULL},
    {"~1.2.3beta", NULL},
    {"^ 1.2 ^ 1", ">=1.2.0 <2.0.0-0 >=1.0.0"},
    {"1.2 - 3.4.5", ">=1.2.0 <=3.4.5"},
    {"1.2.3 - 3.4", ">=1.2.3 <3.5.0-0"},
    {"1.2 - 3.4", ">=1.2.0 <3.5.0-0"},
    {">1", ">=2.0.0"},
    {">1.2", ">=1.3.0"},
    {">X", "<0.0.0-0"},
    {"<X", "<0.0.0-0"},
    {"<x <* || >* 2.x", "<0.0.0-0"},
    {">x 2.x || * || <x", "*"},
    {">=09090", NULL},
    {"1.x.x+build >2.x+build", ">=1.0.0 <2.0.0-0 >=3.0.0"},
    {">=1.x+build <2.x.x+build", ">=1.0.0 <2.0.0-0"},
    {"1.x.x+build || 2.x.x+build", ">=1.0.0 <2.0.0-0||>=2.0.0 <3.0.0-0"},
    {"1.x+build.123", ">=1.0.0 <2.0.0-0"},
    {"1.x.x+meta-data", ">=1.0.0 <2.0.0-0"},
    {"1.x.x+build.123 >2.x.x+meta-data", ">=1.0.0 <2.0.0-0 >=3.0.0"},
    {"1.x.x+build <2.x.x+meta", ">=1.0.0 <2.0.0-0"},
    {">1.x+build <=2.x.x+meta", ">=2.0.0 <3.0.0-0"},
    {" 1.x.x+build   >2.x.x+build  ", ">=1.0.0 <2.0.0-0 >=3.0.0"},
    {"^1.x+build", ">=1.0.0 <2.0.0-0"},
    {"^1.x.x+build", ">=1.0.0 <2.0.0-0"},
    {"^1.2.x+build", ">=1.2.0 <2.0.0-0"},
    {"^1.x+meta-data", ">=1.0.0 <2.0.0-0"},
    {"^1.x.x+build.123", ">=1.0.0 <2.0.0-0"},
    {"~1.x+build", ">=1.0.0 <2.0.0-0"},
    {"~1.x.x+build", ">=1.0.0 <2.0.0-0"},
    {"~1.2.x+build", ">=1.2.0 <1.3.0-0"},
    {"~1.x+meta-data", ">=1.0.0 <2.0.0-0"},
    {"~1.x.x+build.123", ">=1.0.0 <2.0.0-0"},
    {"^1.x.x+build || ~2.x.x+meta", ">=1.0.0 <2.0.0-0||>=2.0.0 <3.0.0-0"},
    {"~1.x.x+build >2.x+meta", ">=1.0.0 <2.0.0-0 >=3.0.0"},
    {"^1.x+build.123 <2.x.x+meta-data", ">=1.0.0 <2.0.0-0"},
    {"1.x.x-alpha+build", ">=1.0.0 <2.0.0-0"},
    {">1.x.x-alpha+build", ">=2.0.0"},
    {">=1.x.x-alpha+build <2.x.x+build", ">=1.0.0 <2.0.0-0"},
    {"1.x.x-alpha+build || 2.x.x+build", ">=1.0.0 <2.0.0-0||>=2.0.0 <3.0.0-0"},
    {"^9007199254740991.0.0", NULL},
    {"=9007199254740991.0.0", "9007199254740991.0.0"},
    {"^9007199254740990.0.0", ">=9007199254740990.0.0 <9007199254740991.0.0-0"},
    {"=1.2.3 - 2.0.0", NULL},
    {"= = 1.2", NULL},
    {"v= 1.2", NULL},
    {"~", NULL},
    {"^", NULL},
    {">", NULL},
    {"1.2.3 - 2.3.4 - 5", NULL},
    {"1.2.3 ||| 2", NULL},
    {"1.2-beta", NULL},
    {">=v0.0.0 || 1.2.3-pre", ">=0.0.0||1.2.3-pre"},
    {"1.2.3 +build", "1.2.3"},
};

/* comparisons.js: a has a higher precedence than b */
static const struct pair comparisons[] = {
    {"0.0.0", "0.0.0-foo"},
    {"0.0.1", "0.0.0"},
    {"1.0.0", "0.9.9"},
    {"0.10.0", "0.9.0"},
    {"0.99.0", "0.10.0"},
    {"2.0.0", "1.2.3"},
    {"1.2.3", "1.2.3-asdf"},
    {"1.2.3", "1.2.3-4"},
    {"1.2.3", "1.2.3-4-foo"},
    {"1.2.3-5-foo", "1.2.3-5"},
    {"1.2.3-5", "1.2.3-4"},
    {"1.2.3-5-foo", "1.2.3-5-Foo"},
    {"3.0.0", "2.7.2+asdf"},
    {"1.2.3-a.10", "1.2.3-a.5"},
    {"1.2.3-a.b", "1.2.3-a.5"},
    {"1.2.3-a.b", "1.2.3-a"},
    {"1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100"},
    {"1.2.3-r2", "1.2.3-r100"},
    {"1.2.3-r100", "1.2.3-R2"},
    {"1.0.0-alpha.1", "1.0.0-alpha"},
    {"1.0.0-alpha.beta", "1.0.0-alpha.1"},
    {"1.0.0-10a", "1.0.0-2"}, /* alphanumeric above numeric */
    {"1.0.0-alpha-", "1.0.0-alpha"},
    {"1.0.0-1000000000000000000000001", "1.0.0-1000000000000000000000000"},
    {"1.0.0-100", "1.0.0-99"},
};

static struct mc_semver sv(const char *s)
{
    struct mc_semver v;

    if (mc_semver_parse(s, strlen(s), &v) != 0)
        fail_msg("%s: %s", s, mc_last_error());
    return v;
}

static int cmp_str(const char *a, const char *b)
{
    struct mc_semver x = sv(a), y = sv(b);

    return mc_semver_cmp(&x, &y);
}

static void test_spec_precedence(void **state)
{
    /* semver.org section 11, in ascending order */
    static const char *const chain[] = {
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
        "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
        "1.0.0-rc.1",  "1.0.0",         "2.0.0",
        "2.1.0",       "2.1.1",
    };
    size_t n = sizeof(chain) / sizeof(chain[0]);

    (void)state;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < n; j++) {
            int c = cmp_str(chain[i], chain[j]);

            if ((i < j && c >= 0) || (i > j && c <= 0) || (i == j && c != 0))
                fail_msg("%s vs %s gave %d", chain[i], chain[j], c);
        }
    }
}

static void test_comparisons(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(comparisons) / sizeof(comparisons[0]); i++) {
        if (cmp_str(comparisons[i].a, comparisons[i].b) <= 0 ||
            cmp_str(comparisons[i].b, comparisons[i].a) >= 0)
            fail_msg("%s should be above %s", comparisons[i].a, comparisons[i].b);
    }
}

static void test_build_metadata_ignored(void **state)
{
    (void)state;
    assert_int_equal(cmp_str("1.2.3+build", "1.2.3+otherbuild"), 0);
    assert_int_equal(cmp_str("1.2.3-beta+build", "1.2.3-beta+otherbuild"), 0);
    assert_int_equal(cmp_str("1.0.0+20130313144700", "1.0.0"), 0);
    assert_true(cmp_str("1.0.0-beta+exp.sha.5114f85", "1.0.0") < 0);
}

static void test_valid_versions(void **state)
{
    /* valid-versions.js (without the 'v' row) and semver.org's examples */
    static const struct {
        const char *s;
        uint64_t M, m, p;
        const char *pre, *build;
    } ok[] = {
        {"1.0.0", 1, 0, 0, "", ""},
        {"2.1.0", 2, 1, 0, "", ""},
        {"3.2.1", 3, 2, 1, "", ""},
        {"1.2.3-0", 1, 2, 3, "0", ""},
        {"1.2.3-123", 1, 2, 3, "123", ""},
        {"1.2.3-1.2.3", 1, 2, 3, "1.2.3", ""},
        {"1.2.3-1a", 1, 2, 3, "1a", ""},
        {"1.2.3-a1", 1, 2, 3, "a1", ""},
        {"1.2.3-alpha", 1, 2, 3, "alpha", ""},
        {"1.2.3-alpha.1", 1, 2, 3, "alpha.1", ""},
        {"1.2.3-alpha-1", 1, 2, 3, "alpha-1", ""},
        {"1.2.3-alpha-.-beta", 1, 2, 3, "alpha-.-beta", ""},
        {"1.2.3+456", 1, 2, 3, "", "456"},
        {"1.2.3+build", 1, 2, 3, "", "build"},
        {"1.2.3+new-build", 1, 2, 3, "", "new-build"},
        {"1.2.3+build.1", 1, 2, 3, "", "build.1"},
        {"1.2.3+build.1a", 1, 2, 3, "", "build.1a"},
        {"1.2.3+build.alpha.beta", 1, 2, 3, "", "build.alpha.beta"},
        {"1.2.3-alpha+build", 1, 2, 3, "alpha", "build"},
        {"1.0.0-x.7.z.92", 1, 0, 0, "x.7.z.92", ""},
        {"1.0.0-x-y-z.--", 1, 0, 0, "x-y-z.--", ""},
        {"1.0.0+21AF26D3----117B344092BD", 1, 0, 0, "", "21AF26D3----117B344092BD"},
        {"1.0.0+0.build.1-rc.10000aaa-kk-0.1", 1, 0, 0, "", "0.build.1-rc.10000aaa-kk-0.1"},
        {"9007199254740991.0.0", 9007199254740991ULL, 0, 0, "", ""},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct mc_semver v = sv(ok[i].s);

        assert_true(v.major == ok[i].M && v.minor == ok[i].m && v.patch == ok[i].p);
        assert_int_equal(v.pre_len, strlen(ok[i].pre));
        assert_memory_equal(v.pre, ok[i].pre, v.pre_len);
        assert_int_equal(v.build_len, strlen(ok[i].build));
        assert_memory_equal(v.build, ok[i].build, v.build_len);
    }
}

static void test_invalid_versions(void **state)
{
    /* each with a piece of the message that must explain it */
    static const struct pair bad[] = {
        {"", "empty"},
        {"1", "minor number is missing"},
        {"1.2", "patch number is missing"},
        {"1.2.3.4", "follows the patch number"},
        {"01.2.3", "leading zero"},
        {"1.02.3", "minor number \"02\" has a leading zero"},
        {"1.2.03", "leading zero"},
        {"v1.2.3", "starts with 'v'"},
        {"1.x.3", "minor part \"x\" is not a number"},
        {"1.2.3-", "empty identifier"},
        {"1.2.3-01", "leading zero"},
        {"1.2.3-alpha..1", "empty identifier"},
        {"1.2.3+", "empty identifier"},
        {"1.2.3+a..b", "empty identifier"},
        {"1.2.3-al_pha", "contains \"_\""},
        {"1.2.3 ", "follows the patch number"},
        {" 1.2.3", "major part"},
        {"9007199254740992.0.0", "larger than 9007199254740991"},
        {"0.99999999999999999999.0", "larger than"},
        {"1.2.3-\x01", "\\x01"},
        {"hello, world", "not a number"},
    };
    struct mc_semver v;
    char *long_v = malloc(300);

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(mc_semver_parse(bad[i].a, strlen(bad[i].a), &v), MC_EINVAL);
        if (!strstr(mc_last_error(), bad[i].b) || !strstr(mc_last_error(), "MAJOR.MINOR.PATCH"))
            fail_msg("%s: message \"%s\" lacks \"%s\"", bad[i].a, mc_last_error(), bad[i].b);
    }
    memset(long_v, 'a', 299);
    memcpy(long_v, "1.2.3-", 6);
    long_v[299] = '\0';
    assert_int_equal(mc_semver_parse(long_v, 299, &v), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "at most 256"));
    free(long_v);
    assert_int_equal(mc_semver_parse(NULL, 0, &v), MC_EINVAL);
}

static int satisfies(const char *range, const char *version)
{
    struct mc_range *r;
    struct mc_semver v;
    int m;

    if (mc_semver_parse(version, strlen(version), &v) != 0)
        return 0; /* npm: an invalid version satisfies nothing */
    if (mc_range_parse(range, &r) != 0)
        return 0;
    m = mc_range_match(r, &v);
    mc_range_free(r);
    return m;
}

static void test_range_include(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(range_include) / sizeof(range_include[0]); i++)
        if (!satisfies(range_include[i].a, range_include[i].b))
            fail_msg("\"%s\" should include %s (%s)", range_include[i].a, range_include[i].b,
                     mc_last_error());
}

static void test_range_exclude(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(range_exclude) / sizeof(range_exclude[0]); i++)
        if (satisfies(range_exclude[i].a, range_exclude[i].b))
            fail_msg("\"%s\" should exclude %s", range_exclude[i].a, range_exclude[i].b);
}

static void test_range_parse(void **state)
{
    char buf[512];

    (void)state;
    for (size_t i = 0; i < sizeof(range_parse) / sizeof(range_parse[0]); i++) {
        struct mc_range *r = NULL;
        int rc = mc_range_parse(range_parse[i].a, &r);

        if (range_parse[i].b == NULL) {
            if (rc != MC_EINVAL)
                fail_msg("\"%s\" should be invalid", range_parse[i].a);
            if (!strstr(mc_last_error(), "is not valid"))
                fail_msg("\"%s\": message \"%s\"", range_parse[i].a, mc_last_error());
            assert_false(mc_range_valid(range_parse[i].a));
            continue;
        }
        if (rc != 0)
            fail_msg("\"%s\": %s", range_parse[i].a, mc_last_error());
        assert_true(mc_range_valid(range_parse[i].a));
        mc_range_format(r, buf, sizeof(buf));
        if (strcmp(buf, range_parse[i].b) != 0)
            fail_msg("\"%s\" became \"%s\", npm says \"%s\"", range_parse[i].a, buf,
                     range_parse[i].b);
        mc_range_free(r);
    }
}

/* s with n copies of 'a' put at offset at (the fixtures use 'a'.repeat(n)) */
static void format_is(const char *pattern, size_t at, size_t n, const char *want)
{
    char s[600], buf[128];
    struct mc_range *r;

    snprintf(s, sizeof(s), "%s", pattern);
    memmove(s + at + n, s + at, strlen(s) - at + 1);
    memset(s + at, 'a', n);
    if (want == NULL) {
        assert_int_equal(mc_range_parse(s, &r), MC_EINVAL);
        return;
    }
    assert_int_equal(mc_range_parse(s, &r), 0);
    mc_range_format(r, buf, sizeof(buf));
    assert_string_equal(buf, want);
    mc_range_free(r);
}

static void test_range_long_build(void **state)
{
    (void)state;
    /* range-parse.js: long build metadata is stripped, not bled into the version */
    format_is("v1.0+x6", 5, 249, ">=1.0.0 <1.1.0-0");
    format_is("^1.2.3+", 7, 251, ">=1.2.3 <2.0.0-0");
    format_is("1.2.3+ - 2.0.0", 6, 251, ">=1.2.3 <=2.0.0");
    /* a prerelease that makes a bound longer than 256 bytes is refused */
    format_is("^1.2.3-", 7, 251, NULL);
    assert_non_null(strstr(mc_last_error(), "longer than 256"));
}

static void test_range_messages(void **state)
{
    struct mc_range *r;

    (void)state;
    assert_int_equal(mc_range_parse("^1.2 || >=banana", &r), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "\">=banana\" is not a version"));
    assert_non_null(strstr(mc_last_error(), "||"));
    assert_int_equal(mc_range_parse(NULL, &r), MC_EINVAL);
    assert_int_equal(mc_range_parse(">=9007199254740992", &r), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "9007199254740991"));
}

static void test_range_buf(void **state)
{
    const char *s = "^1.2.3 || ~2.0 >=2.0.1 || 3.x - 4";
    char small[64], big[4096];
    struct mc_range *r;
    struct mc_semver v = sv("2.0.5");

    (void)state;
    assert_true(mc_range_buf_size(strlen(s)) <= sizeof(big));
    assert_int_equal(mc_range_parse_buf(s, small, sizeof(small), &r), MC_ENOSPC);
    /* an odd address on purpose: any alignment is fine */
    assert_int_equal(mc_range_parse_buf(s, big + 1, sizeof(big) - 1, &r), 0);
    assert_int_equal(mc_range_match(r, &v), 1);
    v = sv("2.0.0");
    assert_int_equal(mc_range_match(r, &v), 0);
    v = sv("4.9.9");
    assert_int_equal(mc_range_match(r, &v), 1);
    mc_range_free(NULL);
}

static void test_ref_classify(void **state)
{
    static const struct {
        const char *ref;
        int want;
    } refs[] = {
        {"1.2.3", MC_REF_EXACT},
        {"2.0.0-rc.1", MC_REF_EXACT},
        {"1.0.0+build.7", MC_REF_EXACT},
        {"production", MC_REF_ALIAS},
        {"canary-eu", MC_REF_ALIAS},
        {"stable.v2", MC_REF_ALIAS},
        {"latest", MC_REF_LATEST},
        {NULL, MC_REF_LATEST},
        {"^1.2", MC_REF_RANGE},
        {"~1.2.3", MC_REF_RANGE},
        {">=1.0.0 <2.0.0", MC_REF_RANGE},
        {"1.x", MC_REF_RANGE},
        {"x", MC_REF_RANGE},
        {"v2", MC_REF_RANGE},
        {"*", MC_REF_RANGE},
        {"1.2", MC_REF_RANGE},
        {"^1 || ^2", MC_REF_RANGE},
        {"v1.2.3", MC_REF_RANGE},
        {"", MC_EINVAL},
        {"prod uction", MC_EINVAL},
        {"1.2.3.4", MC_EINVAL},
        {"-1", MC_EINVAL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(refs) / sizeof(refs[0]); i++)
        if (mc_ref_classify(refs[i].ref) != refs[i].want)
            fail_msg("%s classified %d, want %d", refs[i].ref ? refs[i].ref : "(null)",
                     mc_ref_classify(refs[i].ref), refs[i].want);
    mc_ref_classify("prod uction");
    assert_non_null(strstr(mc_last_error(), "\"prod uction\" is not a version"));
}

static void test_ref_better(void **state)
{
    static const char *const all[] = {"1.0.0",        "1.2.0", "1.3.0-rc.1",    "1.2.5",
                                      "2.0.0-beta.1", "0.9.0", "1.10.0+build.3"};
    static const struct pair best[] = {
        {NULL, "1.10.0+build.3"},
        {"^1.2", "1.10.0+build.3"},
        {"~1.2", "1.2.5"},
        {"<1.2.0", "1.0.0"},
        {">=1.3.0-rc.0 <1.4", "1.3.0-rc.1"},
        {"^2", NULL},
        {">=2.0.0-beta.0", "2.0.0-beta.1"},
        {"0.x", "0.9.0"},
    };
    struct mc_semver vs[7];

    (void)state;
    for (size_t i = 0; i < 7; i++)
        vs[i] = sv(all[i]);
    for (size_t k = 0; k < sizeof(best) / sizeof(best[0]); k++) {
        struct mc_range *r = NULL;
        const struct mc_semver *b = NULL;
        size_t bi = 0;

        if (best[k].a)
            assert_int_equal(mc_range_parse(best[k].a, &r), 0);
        for (size_t i = 0; i < 7; i++) {
            if (mc_ref_better(r, &vs[i], b)) {
                b = &vs[i];
                bi = i;
            }
        }
        if (best[k].b == NULL)
            assert_null(b);
        else if (b == NULL || strcmp(all[bi], best[k].b) != 0)
            fail_msg("%s: picked %s, want %s", best[k].a ? best[k].a : "latest",
                     b ? all[bi] : "nothing", best[k].b);
        mc_range_free(r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_precedence),
        cmocka_unit_test(test_comparisons),
        cmocka_unit_test(test_build_metadata_ignored),
        cmocka_unit_test(test_valid_versions),
        cmocka_unit_test(test_invalid_versions),
        cmocka_unit_test(test_range_include),
        cmocka_unit_test(test_range_exclude),
        cmocka_unit_test(test_range_parse),
        cmocka_unit_test(test_range_long_build),
        cmocka_unit_test(test_range_messages),
        cmocka_unit_test(test_range_buf),
        cmocka_unit_test(test_ref_classify),
        cmocka_unit_test(test_ref_better),
    };

    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
