/*
 * semver.c - SemVer 2.0.0 versions and the npm range compiler.
 *
 * Versions: a hand-written scanner (no regular expressions, no allocation)
 * that explains what is wrong when it refuses a string.
 *
 * Ranges: node-semver defines its grammar as a pipeline of text rewrites
 * (collapse whitespace, split on "||", strip build metadata, rewrite hyphen
 * ranges, glue operators to their versions, split on spaces, desugar each
 * token: carets, then tildes, then x-ranges, then stars, then parse the
 * result as plain comparators). Users expect its answers, including on odd
 * input, so this compiler follows the same stages in the same order on a
 * private copy of the text and turns each token straight into comparators.
 * Each stage below names the node-semver step it mirrors. The compiled
 * range is one block: header, normalized text (prerelease tags point into
 * it), comparators grouped by comparator set.
 */
#include "index/semver.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "index/name.h"

/* A number above MC_SEMVER_MAX_NUM; +1 on it cannot wrap. */
#define NUM_BIG (1ULL << 62)

#define EXPECTED_VERSION "expected MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], e.g. 1.2.3 or 2.0.0-rc.1"
#define EXPECTED_RANGE                                                                             \
    "expected versions or x-ranges with optional operators (1.2.3, 1.x, >=1.0.0, <2, ^1.2, "       \
    "~1.2.3), separated by spaces to require all of them, by \"||\" for alternatives, or a "       \
    "hyphen range such as 1.0.0 - 2.0.0"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ident_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static size_t ndigits(uint64_t v)
{
    size_t n = 1;

    while (v >= 10) {
        v /= 10;
        n++;
    }
    return n;
}

/*
 * Scan a run of digits at s[0..n). Returns its length (0 if none) and its
 * value, NUM_BIG when above MC_SEMVER_MAX_NUM.
 */
static size_t digits_scan(const char *s, size_t n, uint64_t *v)
{
    size_t i = 0;

    *v = 0;
    for (; i < n && is_digit(s[i]); i++) {
        if (*v <= MC_SEMVER_MAX_NUM)
            *v = *v * 10 + (uint64_t)(s[i] - '0');
    }
    if (*v > MC_SEMVER_MAX_NUM)
        *v = NUM_BIG;
    return i;
}

/*
 * Check dot-separated identifiers s[0..n): each non-empty, of [0-9A-Za-z-];
 * for a prerelease, a purely numeric one must not have a leading zero.
 * Returns NULL or a reason written into why.
 */
static const char *idents_check(const char *s, size_t n, bool prerelease, char *why, size_t wsz)
{
    const char *what = prerelease ? "prerelease" : "build metadata";
    char q[MC_QUOTE_MAX];
    size_t i = 0;

    for (;;) {
        size_t j = i;
        bool numeric = true;

        for (; j < n && s[j] != '.'; j++) {
            if (!is_ident_char(s[j])) {
                snprintf(why, wsz, "%s contains %s; identifiers use only letters, digits and '-'",
                         what, mc_quote(q, sizeof(q), s + j, 1));
                return why;
            }
            numeric = numeric && is_digit(s[j]);
        }
        if (j == i) {
            snprintf(why, wsz, "%s has an empty identifier", what);
            return why;
        }
        if (prerelease && numeric && s[i] == '0' && j - i > 1) {
            snprintf(why, wsz, "prerelease identifier %s is a number with a leading zero",
                     mc_quote(q, sizeof(q), s + i, j - i));
            return why;
        }
        if (j >= n)
            return NULL;
        i = j + 1;
    }
}

/*
 * The strict version scanner behind mc_semver_parse() and plain range
 * comparators. Returns 0, or -1 with a reason in why.
 */
static int sv_scan(const char *s, size_t n, struct mc_semver *v, char *why, size_t wsz)
{
    static const char *const part[3] = {"major", "minor", "patch"};
    uint64_t num[3];
    char q[MC_QUOTE_MAX];
    size_t i = 0, k, e;

    if (n == 0) {
        snprintf(why, wsz, "it is empty");
        return -1;
    }
    if (n > MC_SEMVER_MAX_LEN) {
        snprintf(why, wsz, "it is %zu bytes long; at most %d are allowed", n, MC_SEMVER_MAX_LEN);
        return -1;
    }
    if (s[0] == 'v' || s[0] == 'V') {
        snprintf(why, wsz, "it starts with '%c'; write the version without a prefix", s[0]);
        return -1;
    }
    for (int p = 0; p < 3; p++) {
        if (p > 0) {
            if (i >= n) {
                snprintf(why, wsz, "the %s number is missing", part[p]);
                return -1;
            }
            if (s[i] != '.') {
                snprintf(why, wsz, "%s follows the %s number where '.' belongs",
                         mc_quote(q, sizeof(q), s + i, 1), part[p - 1]);
                return -1;
            }
            i++;
        }
        k = digits_scan(s + i, n - i, &num[p]);
        if (k == 0) {
            for (e = i; e < n && s[e] != '.' && s[e] != '-' && s[e] != '+'; e++)
                ;
            if (e == i)
                snprintf(why, wsz, "the %s number is missing", part[p]);
            else
                snprintf(why, wsz, "the %s part %s is not a number", part[p],
                         mc_quote(q, sizeof(q), s + i, e - i));
            return -1;
        }
        if (s[i] == '0' && k > 1) {
            snprintf(why, wsz, "the %s number %s has a leading zero", part[p],
                     mc_quote(q, sizeof(q), s + i, k));
            return -1;
        }
        if (num[p] > MC_SEMVER_MAX_NUM) {
            snprintf(why, wsz, "the %s number %.*s is larger than %llu", part[p], (int)k, s + i,
                     (unsigned long long)MC_SEMVER_MAX_NUM);
            return -1;
        }
        i += k;
    }
    v->major = num[0];
    v->minor = num[1];
    v->patch = num[2];
    v->pre = s + n;
    v->pre_len = 0;
    v->build = s + n;
    v->build_len = 0;
    if (i < n && s[i] == '-') {
        for (e = ++i; e < n && s[e] != '+'; e++)
            ;
        if (idents_check(s + i, e - i, true, why, wsz))
            return -1;
        v->pre = s + i;
        v->pre_len = e - i;
        i = e;
    }
    if (i < n && s[i] == '+') {
        i++;
        if (idents_check(s + i, n - i, false, why, wsz))
            return -1;
        v->build = s + i;
        v->build_len = n - i;
        i = n;
    }
    if (i < n) {
        snprintf(why, wsz,
                 "%s follows the patch number; a prerelease starts with '-', build "
                 "metadata with '+'",
                 mc_quote(q, sizeof(q), s + i, 1));
        return -1;
    }
    return 0;
}

int mc_semver_parse(const char *s, size_t len, struct mc_semver *out)
{
    char why[256], q[MC_QUOTE_MAX];

    if (s == NULL)
        return mc_err(MC_EINVAL, "no version given (%s)", EXPECTED_VERSION);
    if (sv_scan(s, len, out, why, sizeof(why)) != 0)
        return mc_err(MC_EINVAL, "version %s is not a semantic version: %s (%s)",
                      mc_quote(q, sizeof(q), s, len), why, EXPECTED_VERSION);
    return 0;
}

bool mc_semver_valid(const char *s, size_t len)
{
    struct mc_semver v;
    char why[256];

    return s != NULL && sv_scan(s, len, &v, why, sizeof(why)) == 0;
}

static bool ident_numeric(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_digit(s[i]))
            return false;
    return true;
}

/* Section 11.4: one identifier against another. */
static int ident_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    bool anum = ident_numeric(a, an), bnum = ident_numeric(b, bn);
    int c;

    if (anum && bnum) {
        /* No leading zeros, so the longer number is the larger one. */
        if (an != bn)
            return an < bn ? -1 : 1;
        return memcmp(a, b, an);
    }
    if (anum != bnum)
        return anum ? -1 : 1;
    c = memcmp(a, b, an < bn ? an : bn);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return an == bn ? 0 : an < bn ? -1 : 1;
}

static int pre_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    size_t i = 0, j = 0;

    for (;;) {
        size_t ie = i, je = j;
        int c;

        if (i > an && j > bn)
            return 0;
        if (i > an)
            return -1; /* a ran out of identifiers first: lower */
        if (j > bn)
            return 1;
        while (ie < an && a[ie] != '.')
            ie++;
        while (je < bn && b[je] != '.')
            je++;
        c = ident_cmp(a + i, ie - i, b + j, je - j);
        if (c != 0)
            return c;
        i = ie + 1;
        j = je + 1;
    }
}

static int num_cmp(uint64_t a, uint64_t b)
{
    return a < b ? -1 : a > b;
}

int mc_semver_cmp(const struct mc_semver *a, const struct mc_semver *b)
{
    int c = num_cmp(a->major, b->major);

    if (c == 0)
        c = num_cmp(a->minor, b->minor);
    if (c == 0)
        c = num_cmp(a->patch, b->patch);
    if (c != 0)
        return c;
    /* Section 11.3: a prerelease has lower precedence than the release. */
    if (!a->pre_len || !b->pre_len)
        return (b->pre_len != 0) - (a->pre_len != 0);
    return pre_cmp(a->pre, a->pre_len, b->pre, b->pre_len);
}

/* ---- ranges ---------------------------------------------------------- */

enum { OP_ANY, OP_EQ, OP_LT, OP_LE, OP_GT, OP_GE };

/* Operators as written, before "=" and "" are merged. */
enum { GTLT_NONE, GTLT_EQ, GTLT_LT, GTLT_LE, GTLT_GT, GTLT_GE };

struct rcmp {
    uint8_t op;
    uint32_t set;
    struct mc_semver v; /* build unused */
};

struct mc_range {
    uint32_t ncmp;
    uint32_t nsets;
    void *block; /* from mc_range_parse(): what mc_range_free() frees */
    const char *text;
    struct rcmp *cmp; /* grouped by set, sets in order */
};

/* One compilation: count-only when out is NULL. */
struct rc {
    struct rcmp *out;
    uint32_t n;
    uint32_t set;
    char why[320];
};

/* An x-range body: id(.id(.id(-pre)?)?)? with id = 0|[1-9][0-9]*|x|X|*. */
struct xr {
    int parts;
    bool x[3]; /* x, X, * or missing */
    uint64_t v[3];
    const char *pre;
    size_t pre_len;
};

static int rc_fail(struct rc *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int rc_fail(struct rc *c, const char *fmt, ...)
{
    va_list ap;

    if (!c->why[0]) {
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof(c->why), fmt, ap);
        va_end(ap);
    }
    return MC_EINVAL;
}

static int emit(struct rc *c, int op, uint64_t M, uint64_t m, uint64_t p, const char *pre,
                size_t pre_len, bool has_v)
{
    if (op != OP_ANY) {
        /* node-semver parses each comparator's version as a SemVer. */
        if (M > MC_SEMVER_MAX_NUM || m > MC_SEMVER_MAX_NUM || p > MC_SEMVER_MAX_NUM)
            return rc_fail(c, "a version bound in it would exceed %llu",
                           (unsigned long long)MC_SEMVER_MAX_NUM);
        if (has_v + ndigits(M) + ndigits(m) + ndigits(p) + 2 + (pre_len ? pre_len + 1 : 0) >
            MC_SEMVER_MAX_LEN)
            return rc_fail(c, "a version in it is longer than %d bytes", MC_SEMVER_MAX_LEN);
        /* replaceGTE0: exactly ">=0.0.0" is "*" */
        if (op == OP_GE && !has_v && !M && !m && !p && !pre_len)
            op = OP_ANY;
    }
    if (c->out) {
        struct rcmp *r = &c->out[c->n];

        memset(r, 0, sizeof(*r));
        r->op = (uint8_t)op;
        r->set = c->set;
        if (op != OP_ANY) {
            r->v.major = M;
            r->v.minor = m;
            r->v.patch = p;
            r->v.pre = pre_len ? pre : "";
            r->v.pre_len = pre_len;
            r->v.build = "";
        }
    }
    c->n++;
    return 0;
}

static int emit_any(struct rc *c)
{
    return emit(c, OP_ANY, 0, 0, 0, NULL, 0, false);
}

/* "<M.m.p-0": the lowest prerelease of M.m.p, as node-semver's upper bounds. */
static int emit_lt0(struct rc *c, uint64_t M, uint64_t m, uint64_t p)
{
    return emit(c, OP_LT, M, m, p, "0", 1, false);
}

static bool xr_isx(char ch)
{
    return ch == 'x' || ch == 'X' || ch == '*';
}

/* Parse all of s[0..n) as an x-range body (no prefix). */
static bool xr_parse(const char *s, size_t n, struct xr *x)
{
    char why[160];
    size_t i = 0;

    memset(x, 0, sizeof(*x));
    x->x[0] = x->x[1] = x->x[2] = true;
    for (int p = 0; p < 3; p++) {
        if (p > 0) {
            if (i == n)
                return true;
            if (s[i] != '.')
                return false;
            i++;
        }
        if (i < n && xr_isx(s[i])) {
            i++;
        } else {
            size_t k = digits_scan(s + i, n - i, &x->v[p]);

            if (k == 0 || (s[i] == '0' && k > 1))
                return false;
            x->x[p] = false;
            i += k;
        }
        x->parts = p + 1;
    }
    if (i < n && s[i] == '-') {
        i++;
        if (idents_check(s + i, n - i, true, why, sizeof(why)))
            return false;
        x->pre = s + i;
        x->pre_len = n - i;
        i = n;
    }
    return i == n;
}

/* invalidXRangeOrder: "x.1", "1.x.5" */
static bool xr_bad_order(const struct xr *x)
{
    return (x->x[0] && !x->x[1]) || (x->x[1] && x->parts == 3 && !x->x[2]);
}

/* Length of a [v=]* prefix (XRANGEPLAIN's [v=\s]*, tokens hold no spaces). */
static size_t prefix_len(const char *s, size_t n)
{
    size_t i = 0;

    while (i < n && (s[i] == 'v' || s[i] == '='))
        i++;
    return i;
}

/* GTLT = ((?:<|>)?=?), taken greedily. */
static size_t gtlt_scan(const char *s, size_t n, int *g)
{
    size_t k = 0;

    *g = GTLT_NONE;
    if (n > 0 && (s[0] == '<' || s[0] == '>'))
        k = 1;
    if (k < n && s[k] == '=') {
        *g = k == 0 ? GTLT_EQ : s[0] == '<' ? GTLT_LE : GTLT_GE;
        return k + 1;
    }
    if (k == 1)
        *g = s[0] == '<' ? GTLT_LT : GTLT_GT;
    return k;
}

static int gtlt_op(int g)
{
    static const int map[] = {OP_EQ, OP_EQ, OP_LT, OP_LE, OP_GT, OP_GE};

    return map[g];
}

/* replaceStars: remove the first match of (<|>)?=?\s*\* (tokens hold no spaces). */
static size_t strip_star(char *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t e = i;

        if (t[e] == '<' || t[e] == '>')
            e++;
        if (e < n && t[e] == '=')
            e++;
        if (e < n && t[e] == '*') {
            memmove(t + i, t + e + 1, n - e - 1);
            return n - (e + 1 - i);
        }
    }
    return n;
}

/*
 * The last stages for a token no desugaring matched: replaceStars removes
 * the first "[<>]?=?\*", then the Comparator constructor needs
 * GTLT, an optional 'v' and a full version.
 */
static int plain(struct rc *c, char *t, size_t n)
{
    char why[256], q[MC_QUOTE_MAX];
    struct mc_semver v;
    size_t k;
    bool has_v;
    int g;

    n = strip_star(t, n);
    if (n == 0)
        return emit_any(c);
    k = gtlt_scan(t, n, &g);
    has_v = k < n && t[k] == 'v';
    if (sv_scan(t + k + has_v, n - k - has_v, &v, why, sizeof(why)) != 0)
        return rc_fail(c, "%s is not a version, x-range or comparator (%s)",
                       mc_quote(q, sizeof(q), t, n), why);
    return emit(c, gtlt_op(g), v.major, v.minor, v.patch, v.pre, v.pre_len, has_v);
}

/*
 * ">=M.m.p[-pre] <uM.um.up-0", the shape every desugared range takes:
 * from a version up to (not into) the prereleases of the next one.
 */
static int emit_span(struct rc *c, uint64_t M, uint64_t m, uint64_t p, const char *pre,
                     size_t pre_len, uint64_t uM, uint64_t um, uint64_t up)
{
    int rc = emit(c, OP_GE, M, m, p, pre, pre_len, false);

    return rc ? rc : emit_lt0(c, uM, um, up);
}

/* replaceCaret and replaceTilde: they part ways once MINOR is given. */
static int caret_tilde(struct rc *c, const struct xr *x, bool caret)
{
    uint64_t M = x->v[0], m = x->v[1], p = x->v[2];

    if (x->x[0])
        return emit_any(c);
    if (x->x[1])
        return emit_span(c, M, 0, 0, NULL, 0, M + 1, 0, 0);
    if (!caret && x->x[2])
        return emit_span(c, M, m, 0, NULL, 0, M, m + 1, 0);
    if (!caret)
        return emit_span(c, M, m, p, x->pre, x->pre_len, M, m + 1, 0);
    /* the caret keeps the leftmost non-zero part */
    if (x->x[2])
        return M ? emit_span(c, M, m, 0, NULL, 0, M + 1, 0, 0)
                 : emit_span(c, 0, m, 0, NULL, 0, 0, m + 1, 0);
    if (M)
        return emit_span(c, M, m, p, x->pre, x->pre_len, M + 1, 0, 0);
    return m ? emit_span(c, 0, m, p, x->pre, x->pre_len, 0, m + 1, 0)
             : emit_span(c, 0, 0, p, x->pre, x->pre_len, 0, 0, p + 1);
}

/* replaceXRange, for a token with at least one x part. */
static int xrange(struct rc *c, int g, const struct xr *x)
{
    uint64_t M = x->v[0], m = x->v[1];

    if (g == GTLT_EQ)
        g = GTLT_NONE;
    if (x->x[0]) {
        if (g == GTLT_GT || g == GTLT_LT)
            return emit_lt0(c, 0, 0, 0); /* nothing is allowed */
        return emit_any(c);
    }
    if (g != GTLT_NONE) {
        if (x->x[1])
            m = 0;
        if (g == GTLT_GT) {
            /* >1 is >=2.0.0, >1.2 is >=1.3.0 */
            g = GTLT_GE;
            if (x->x[1])
                M++;
            else
                m++;
        } else if (g == GTLT_LE) {
            /* <=1.2 is <1.3.0-0: every 1.2.x passes */
            g = GTLT_LT;
            if (x->x[1])
                M++;
            else
                m++;
        }
        if (g == GTLT_LT)
            return emit_lt0(c, M, m, 0);
        return emit(c, gtlt_op(g), M, m, 0, NULL, 0, false);
    }
    if (x->x[1])
        return emit_span(c, M, 0, 0, NULL, 0, M + 1, 0, 0);
    return emit_span(c, M, m, 0, NULL, 0, M, m + 1, 0);
}

/* parseComparator for one space-free token. */
static int token(struct rc *c, char *t, size_t n)
{
    struct xr x;
    size_t k;
    int g;

    if (n == 0)
        return emit_any(c);
    if (t[0] == '^' || t[0] == '~') {
        k = t[0] == '~' && n > 1 && t[1] == '>' ? 2 : 1;
        k += prefix_len(t + k, n - k);
        if (xr_parse(t + k, n - k, &x))
            return caret_tilde(c, &x, t[0] == '^');
        return plain(c, t, n);
    }
    k = gtlt_scan(t, n, &g);
    k += prefix_len(t + k, n - k);
    if (xr_parse(t + k, n - k, &x) && !xr_bad_order(&x) && (x.x[0] || x.x[1] || x.x[2]))
        return xrange(c, g, &x);
    /* a full version passes through unchanged to the comparator parser */
    return plain(c, t, n);
}

/*
 * hyphenReplace for "FROM - TO" (pfx: the bound's [v=\s]* prefix, followed
 * by core_len bytes of body). A bound with all three numbers keeps its
 * text as written (so a 'v' prefix is fine, "=1.2.3" is not, exactly as
 * node-semver's Comparator then sees it); other bounds are rebuilt.
 */
static int hyphen_bound(struct rc *c, const char *pfx, size_t pfx_len, size_t core_len,
                        const struct xr *x, bool upper)
{
    char q[MC_QUOTE_MAX];
    bool has_v = pfx_len == 1 && pfx[0] == 'v';

    if (x->x[0])
        return 0;
    if (x->x[1])
        return upper ? emit_lt0(c, x->v[0] + 1, 0, 0)
                     : emit(c, OP_GE, x->v[0], 0, 0, NULL, 0, false);
    if (x->x[2])
        return upper ? emit_lt0(c, x->v[0], x->v[1] + 1, 0)
                     : emit(c, OP_GE, x->v[0], x->v[1], 0, NULL, 0, false);
    if (upper && x->pre_len)
        return emit(c, OP_LE, x->v[0], x->v[1], x->v[2], x->pre, x->pre_len, false);
    if (pfx_len > 0 && !has_v)
        return rc_fail(c, "the hyphen range bound %s has a prefix other than 'v'",
                       mc_quote(q, sizeof(q), pfx, pfx_len + core_len));
    return emit(c, upper ? OP_LE : OP_GE, x->v[0], x->v[1], x->v[2], x->pre, x->pre_len, has_v);
}

/*
 * HYPHENRANGE: ^\s*(XRANGEPLAIN)\s+-\s+(XRANGEPLAIN)\s*$. Returns 1 if s
 * is one (and compiles it), 0 if not, or an error.
 */
static int hyphen(struct rc *c, const char *s, size_t n)
{
    size_t i = 0, p1, c1, e1, p2, c2, e2;
    uint32_t before = c->n;
    struct xr a, b;
    int rc;

    while (i < n && s[i] == ' ')
        i++;
    for (p1 = i; i < n && (s[i] == 'v' || s[i] == '=' || s[i] == ' '); i++)
        ;
    for (c1 = i; i < n && s[i] != ' '; i++)
        ;
    e1 = i;
    while (i < n && s[i] == ' ')
        i++;
    if (i == e1 || i >= n || s[i] != '-' || i + 1 >= n || s[i + 1] != ' ')
        return 0;
    for (i++; i < n && s[i] == ' '; i++)
        ;
    for (p2 = i; i < n && (s[i] == 'v' || s[i] == '=' || s[i] == ' '); i++)
        ;
    for (c2 = i; i < n && s[i] != ' '; i++)
        ;
    e2 = i;
    while (i < n && s[i] == ' ')
        i++;
    if (i != n || !xr_parse(s + c1, e1 - c1, &a) || !xr_parse(s + c2, e2 - c2, &b))
        return 0;
    rc = hyphen_bound(c, s + p1, c1 - p1, e1 - c1, &a, false);
    if (rc == 0)
        rc = hyphen_bound(c, s + p2, c2 - p2, e2 - c2, &b, true);
    if (rc == 0 && c->n == before)
        rc = emit_any(c);
    return rc ? rc : 1;
}

/* BUILDSTRIPRE: remove every "+ident(.ident)*". Returns the new length. */
static size_t strip_builds(char *s, size_t n)
{
    size_t r = 0, w = 0;

    while (r < n) {
        if (s[r] == '+' && r + 1 < n && is_ident_char(s[r + 1])) {
            r++;
            for (;;) {
                while (r < n && is_ident_char(s[r]))
                    r++;
                if (r + 1 < n && s[r] == '.' && is_ident_char(s[r + 1]))
                    r++;
                else
                    break;
            }
            continue;
        }
        s[w++] = s[r++];
    }
    return w;
}

/*
 * COMPARATORTRIM, TILDETRIM and CARETTRIM, in that order:
 * "> 1.2" -> ">1.2", "~> 1" -> "~1", "^ 1" -> "^1". Returns the new length.
 */
static size_t trim_operators(char *s, size_t n)
{
    size_t p = 0, q, ge, se;

    /* (\s*)GTLT\s*([v=\s]*ID...) -> $1 GTLT $3 */
    while (p < n) {
        q = p;
        while (q < n && s[q] == ' ')
            q++;
        if (q < n && (s[q] == '<' || s[q] == '>'))
            q++;
        if (q < n && s[q] == '=')
            q++;
        ge = q;
        while (q < n && s[q] == ' ')
            q++;
        se = q;
        while (q < n && (s[q] == 'v' || s[q] == '=' || s[q] == ' '))
            q++;
        if (q < n && (is_digit(s[q]) || xr_isx(s[q]))) {
            memmove(s + ge, s + se, n - se);
            n -= se - ge;
            q -= se - ge;
            while (q < n && s[q] != ' ')
                q++;
            p = q;
        } else {
            p++;
        }
    }
    /* (\s*)~>?\s+ -> $1~   and   (\s*)\^\s+ -> $1^ */
    for (int pass = 0; pass < 2; pass++) {
        char op = pass == 0 ? '~' : '^';

        for (p = 0; p < n; p++) {
            if (s[p] != op)
                continue;
            q = p + 1;
            if (op == '~' && q < n && s[q] == '>')
                q++;
            se = q;
            while (se < n && s[se] == ' ')
                se++;
            if (se == q)
                continue;
            memmove(s + p + 1, s + se, n - se);
            n -= se - (p + 1);
        }
    }
    return n;
}

static int compile_set(struct rc *c, char *s, size_t n)
{
    size_t i = 0, j;
    int rc;

    n = strip_builds(s, n);
    rc = hyphen(c, s, n);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    n = trim_operators(s, n);
    for (;;) {
        for (j = i; j < n && s[j] != ' '; j++)
            ;
        rc = token(c, s + i, j - i);
        if (rc)
            return rc;
        if (j >= n)
            return 0;
        i = j + 1;
    }
}

/*
 * Collapse whitespace and trim (Range's raw), then compile each
 * "||"-separated set into c. text receives the normalized copy (strlen(src)
 * + 1 bytes).
 */
static int compile(struct rc *c, const char *src, char *text)
{
    size_t n = 0, i, start;
    bool space = false;
    int rc;

    for (const char *p = src; *p; p++) {
        if (is_space(*p)) {
            space = n > 0;
            continue;
        }
        if (space)
            text[n++] = ' ';
        space = false;
        text[n++] = *p;
    }
    text[n] = '\0';
    for (start = i = 0;; i++) {
        size_t a = start, b = i;

        if (i < n && !(text[i] == '|' && i + 1 < n && text[i + 1] == '|'))
            continue;
        /* each set is trimmed before it is parsed */
        while (a < b && text[a] == ' ')
            a++;
        while (b > a && text[b - 1] == ' ')
            b--;
        rc = compile_set(c, text + a, b - a);
        if (rc)
            return rc;
        c->set++;
        if (i >= n)
            return 0;
        i++; /* past the second '|' */
        start = i + 1;
    }
}

static bool cmp_is_null(const struct rcmp *r)
{
    return r->op == OP_LT && r->v.major == 0 && r->v.minor == 0 && r->v.patch == 0 &&
           r->v.pre_len == 1 && r->v.pre[0] == '0';
}

/* Same text: precedence ties only on identical prerelease text. */
static bool cmp_same(const struct rcmp *a, const struct rcmp *b)
{
    return a->op == b->op && (a->op == OP_ANY || mc_semver_cmp(&a->v, &b->v) == 0);
}

/*
 * The reductions node-semver applies after parsing. Within a set: a null
 * set ("<0.0.0-0") replaces everything, duplicates go, and "*" goes when
 * anything else is left. Across sets: null sets go (unless all are), and
 * if a lone "*" set remains beside others, the whole range is "*" - which
 * matters, because then no prerelease matches any more.
 */
static void reduce(struct mc_range *r)
{
    struct rcmp *cm = r->cmp;
    uint32_t i, j, k, d, w = 0, nsets = 0, nnull = 0;
    bool star = false;

    for (i = 0; i < r->ncmp; i = j) {
        uint32_t start = w;

        for (j = i; j < r->ncmp && cm[j].set == cm[i].set; j++)
            ;
        for (k = i; k < j && !cmp_is_null(&cm[k]); k++)
            ;
        if (k < j) {
            cm[w++] = cm[k];
            nnull++;
        } else {
            for (k = i; k < j; k++) {
                for (d = start; d < w && !cmp_same(&cm[d], &cm[k]); d++)
                    ;
                if (d == w)
                    cm[w++] = cm[k];
            }
            for (k = d = start; w - start > 1 && k < w; k++)
                if (cm[k].op != OP_ANY)
                    cm[d++] = cm[k];
            if (w - start > 1)
                w = d;
        }
        for (k = start; k < w; k++)
            cm[k].set = nsets;
        nsets++;
    }
    r->ncmp = w;
    r->nsets = nsets;
    if (nsets <= 1)
        return;
    if (nnull == nsets) {
        r->ncmp = r->nsets = 1;
        return;
    }
    for (w = 0, nsets = 0, i = 0; i < r->ncmp; i = j) {
        for (j = i; j < r->ncmp && cm[j].set == cm[i].set; j++)
            ;
        if (cmp_is_null(&cm[i]))
            continue;
        star = star || (j - i == 1 && cm[i].op == OP_ANY);
        for (k = i; k < j; k++) {
            cm[w] = cm[k];
            cm[w++].set = nsets;
        }
        nsets++;
    }
    r->ncmp = w;
    r->nsets = nsets;
    if (nsets > 1 && star) {
        memset(&cm[0], 0, sizeof(cm[0]));
        cm[0].op = OP_ANY;
        r->ncmp = r->nsets = 1;
    }
}

size_t mc_range_buf_size(size_t len)
{
    /* Each token yields at most two comparators and takes at least two
     * bytes of text with its separator, so len + 2 comparators suffice. */
    return sizeof(struct mc_range) + 2 * _Alignof(struct rcmp) + len + 1 +
           (len + 2) * sizeof(struct rcmp);
}

static int range_fail(const char *s, struct rc *c)
{
    char q[MC_QUOTE_MAX];

    return mc_err(MC_EINVAL, "range %s is not valid: %s (%s)", mc_quote(q, sizeof(q), s, strlen(s)),
                  c->why, EXPECTED_RANGE);
}

int mc_range_parse_buf(const char *s, void *buf, size_t size, struct mc_range **out)
{
    size_t len, need, a = _Alignof(struct rcmp);
    uintptr_t base;
    struct mc_range *r;
    struct rc c;
    char *text;
    int rc;

    if (s == NULL)
        return mc_err(MC_EINVAL, "no range given (%s)", EXPECTED_RANGE);
    len = strlen(s);
    need = mc_range_buf_size(len);
    if (size < need)
        return mc_err(MC_ENOSPC,
                      "a buffer of %zu bytes is too small to compile a range of %zu "
                      "bytes; give it mc_range_buf_size() = %zu bytes",
                      size, len, need);
    base = ((uintptr_t)buf + a - 1) & ~(uintptr_t)(a - 1);
    r = (struct mc_range *)base;
    text = (char *)(r + 1);
    r->cmp = (struct rcmp *)(((uintptr_t)(text + len + 1) + a - 1) & ~(uintptr_t)(a - 1));
    memset(&c, 0, sizeof(c));
    c.out = r->cmp;
    rc = compile(&c, s, text);
    if (rc)
        return range_fail(s, &c);
    r->text = text;
    r->ncmp = c.n;
    r->nsets = c.set;
    r->block = NULL;
    reduce(r);
    *out = r;
    return 0;
}

int mc_range_parse(const char *s, struct mc_range **out)
{
    size_t size;
    void *buf;
    int rc;

    if (s == NULL)
        return mc_err(MC_EINVAL, "no range given (%s)", EXPECTED_RANGE);
    size = mc_range_buf_size(strlen(s));
    buf = malloc(size);
    if (buf == NULL)
        return mc_err(MC_ENOMEM, "out of memory compiling a range of %zu bytes", strlen(s));
    rc = mc_range_parse_buf(s, buf, size, out);
    if (rc) {
        free(buf);
        return rc;
    }
    (*out)->block = buf;
    return 0;
}

void mc_range_free(struct mc_range *r)
{
    if (r != NULL)
        free(r->block);
}

/* Validate without storing comparators. */
static bool range_check(const char *s, struct rc *c)
{
    char small[512], *text = small;
    size_t len = strlen(s);
    bool ok;

    memset(c, 0, sizeof(*c));
    if (len >= sizeof(small)) {
        text = malloc(len + 1);
        if (text == NULL)
            return rc_fail(c, "out of memory"), false;
    }
    ok = compile(c, s, text) == 0;
    if (text != small)
        free(text);
    return ok;
}

bool mc_range_valid(const char *s)
{
    struct rc c;

    return s != NULL && range_check(s, &c);
}

static bool cmp_test(const struct rcmp *r, const struct mc_semver *v)
{
    int c;

    if (r->op == OP_ANY)
        return true;
    c = mc_semver_cmp(v, &r->v);
    switch (r->op) {
    case OP_EQ:
        return c == 0;
    case OP_LT:
        return c < 0;
    case OP_LE:
        return c <= 0;
    case OP_GT:
        return c > 0;
    default:
        return c >= 0;
    }
}

int mc_range_match(const struct mc_range *r, const struct mc_semver *v)
{
    uint32_t i = 0, j;

    while (i < r->ncmp) {
        uint32_t set = r->cmp[i].set;
        bool ok = true, pre_ok = !v->pre_len;

        for (j = i; j < r->ncmp && r->cmp[j].set == set; j++) {
            const struct rcmp *cm = &r->cmp[j];

            ok = ok && cmp_test(cm, v);
            /* a prerelease needs a comparator on its own [major, minor,
             * patch] that has a prerelease too */
            if (cm->op != OP_ANY && cm->v.pre_len && cm->v.major == v->major &&
                cm->v.minor == v->minor && cm->v.patch == v->patch)
                pre_ok = true;
        }
        if (ok && pre_ok)
            return 1;
        i = j;
    }
    return 0;
}

size_t mc_range_format(const struct mc_range *r, char *buf, size_t size)
{
    static const char *const ops[] = {"", "", "<", "<=", ">", ">="};
    size_t n = 0;
    uint32_t i;

#define PUT(...)                                                                                   \
    do {                                                                                           \
        int k_ = snprintf(n < size ? buf + n : NULL, n < size ? size - n : 0, __VA_ARGS__);        \
        n += k_ > 0 ? (size_t)k_ : 0;                                                              \
    } while (0)
    for (i = 0; i < r->ncmp; i++) {
        const struct rcmp *cm = &r->cmp[i];

        if (i > 0)
            PUT("%s", cm->set != r->cmp[i - 1].set ? "||" : " ");
        if (cm->op == OP_ANY)
            continue;
        PUT("%s%llu.%llu.%llu", ops[cm->op], (unsigned long long)cm->v.major,
            (unsigned long long)cm->v.minor, (unsigned long long)cm->v.patch);
        if (cm->v.pre_len)
            PUT("-%.*s", (int)cm->v.pre_len, cm->v.pre);
    }
    if (n == 0)
        PUT("*");
#undef PUT
    if (size > 0 && n >= size)
        buf[size - 1] = '\0';
    return n;
}

int mc_ref_classify(const char *ref)
{
    char q[MC_QUOTE_MAX];
    struct mc_semver v;
    struct rc c;
    size_t len;

    if (ref == NULL || strcmp(ref, "latest") == 0)
        return MC_REF_LATEST;
    len = strlen(ref);
    if (len == 0)
        return mc_err(MC_EINVAL, "the reference is empty (expected a version such as 1.2.3, an "
                                 "alias such as production, \"latest\", or a range such as ^1.2)");
    {
        char why[256];

        if (sv_scan(ref, len, &v, why, sizeof(why)) == 0)
            return MC_REF_EXACT;
    }
    if (mc_alias_check(ref) == 0)
        return MC_REF_ALIAS;
    if (range_check(ref, &c))
        return MC_REF_RANGE;
    return mc_err(MC_EINVAL,
                  "reference %s is not a version (1.2.3), an alias (production), \"latest\", or "
                  "a range (^1.2, ~1.2.3, >=1.0.0 <2.0.0, 1.x): as a range, %s",
                  mc_quote(q, sizeof(q), ref, len), c.why);
}

bool mc_ref_better(const struct mc_range *r, const struct mc_semver *cand,
                   const struct mc_semver *best)
{
    if (r ? !mc_range_match(r, cand) : mc_semver_is_prerelease(cand))
        return false;
    return best == NULL || mc_semver_cmp(cand, best) > 0;
}
