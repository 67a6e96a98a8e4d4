/*
 * reg_json.c - manifest lines into struct mc_jval trees: a fast reader for
 * the plain JSON that jansson writes, jansson for everything else, and
 * copies between trees and jansson values.
 *
 * What the fast reader accepts, exactly (anything else goes to jansson):
 *   - one object filling the whole line, no whitespace outside strings;
 *   - objects and arrays nested at most DEPTH_MAX deep; no duplicate keys;
 *   - strings of printable ASCII and well-formed UTF-8 (no overlong forms,
 *     no surrogates, nothing above U+10FFFF), with the escapes \" \\ \/ \b
 *     \f \n \r \t (no \u: jansson writes it only for rare control bytes);
 *   - integers as JSON writes them (no leading zeros) that fit in int64;
 *   - reals as JSON writes them that strtod() reads as finite without
 *     ERANGE; short ones without an exponent are computed exactly
 *     (digits / 10^k, both exact doubles: one correctly rounded division,
 *     the same double strtod() gives), the rest by strtod_l() in the C
 *     locale (jansson calls strtod() after putting the locale's decimal
 *     point in, which comes to the same double);
 *   - true, false, null.
 * That is a subset of what jansson accepts, read to the same values (the
 * same integer/real distinction included), so a line means the same
 * whichever reader took it. tests/registry/test_manifest_json.c holds the two
 * against each other on every line of real stores and on mutated copies.
 */
#include "registry/reg_json.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/vec.h"
#include "mcache.h"

#define CHUNK_MIN (64u << 10)
#define DEPTH_MAX 8
#define DECLINE   1 /* not in the subset: jansson decides */
#define CLOSED    2 /* item_end(): the object or array ended */

bool mc_jline_jansson_only;
static uint64_t total_fast, total_slow;

/* ---- the arena --------------------------------------------------------- */

struct mc_jchunk {
    struct mc_jchunk *next;
    size_t used, cap;
    unsigned char data[];
};

static void *arena_alloc(struct mc_jarena *a, size_t size, size_t align)
{
    struct mc_jchunk *c = a->cur;

    for (;;) {
        if (c) {
            uintptr_t base = (uintptr_t)c->data;
            uintptr_t at = (base + c->used + align - 1) & ~(uintptr_t)(align - 1);

            if (at + size <= base + c->cap) {
                c->used = at + size - base;
                return (void *)at;
            }
            if (c->next) {
                c = a->cur = c->next;
                c->used = 0;
                continue;
            }
        }
        {
            size_t cap = size + align > CHUNK_MIN ? size + align : CHUNK_MIN;
            struct mc_jchunk *n = malloc(sizeof(*n) + cap);

            if (n == NULL)
                return NULL;
            n->next = NULL;
            n->used = 0;
            n->cap = cap;
            if (c)
                c->next = n;
            else
                a->first = n;
            c = a->cur = n;
        }
    }
}

void mc_jarena_reset(struct mc_jarena *a)
{
    a->cur = a->first;
    if (a->cur)
        a->cur->used = 0;
}

void mc_jarena_free(struct mc_jarena *a)
{
    struct mc_jchunk *c = a->first, *n;

    for (; c; c = n) {
        n = c->next;
        free(c);
    }
    a->first = a->cur = NULL;
}

/* ---- the reader -------------------------------------------------------- */

void mc_jreader_init(struct mc_jreader *r)
{
    memset(r, 0, sizeof(*r));
    r->jansson_only = __atomic_load_n(&mc_jline_jansson_only, __ATOMIC_RELAXED);
}

void mc_jreader_fini(struct mc_jreader *r)
{
    __atomic_fetch_add(&total_fast, r->fast, __ATOMIC_RELAXED);
    __atomic_fetch_add(&total_slow, r->slow, __ATOMIC_RELAXED);
    mc_jarena_free(&r->arena);
    free(r->ms);
    free(r->vs);
    memset(r, 0, sizeof(*r));
}

void mc_jline_counts(uint64_t *fast, uint64_t *slow)
{
    *fast = __atomic_load_n(&total_fast, __ATOMIC_RELAXED);
    *slow = __atomic_load_n(&total_slow, __ATOMIC_RELAXED);
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void c_locale_init(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* One line being read by the fast reader. */
struct fast {
    struct mc_jreader *r;
    unsigned char *p, *e; /* in the reader's copy of the line */
};

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* Bytes of the well-formed UTF-8 sequence at s (Unicode table 3-7), or 0. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *e)
{
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    size_t n;

    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80; /* no overlong forms */
        hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
    } else {
        return 0;
    }
    if ((size_t)(e - s) < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

/*
 * The offset of the first byte in the 8 at p that ends a plain run: '"',
 * '\\', a control byte (< 0x20) or a non-ASCII one (>= 0x80); 8 if none.
 * Each test flags its bytes exactly up to the first one (borrows only run
 * upwards), so the lowest flag is exact.
 */
static unsigned plain_run(const unsigned char *p)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    const uint64_t ones = 0x0101010101010101ull, high = 0x8080808080808080ull;
    uint64_t w, quote, bslash, m;

    memcpy(&w, p, 8);
    quote = w ^ (ones * '"');
    bslash = w ^ (ones * '\\');
    m = (((w - ones * 0x20) | (quote - ones) | (bslash - ones)) & ~w & high) | (w & high);
    return m ? (unsigned)__builtin_ctzll(m) / 8 : 8;
#else
    for (unsigned i = 0; i < 8; i++)
        if (p[i] == '"' || p[i] == '\\' || p[i] < 0x20 || p[i] >= 0x80)
            return i;
    return 8;
#endif
}

/*
 * A string at f->p (its opening quote), decoded in place in the line's
 * copy: its closing quote becomes its NUL (decoding only ever shortens).
 */
static int fast_string(struct fast *f, const char **out, uint32_t *len)
{
    unsigned char *p = f->p + 1, *q = p, *w;
    unsigned k;

    /* the common case: nothing to decode (the copy has 8 bytes of padding) */
    while ((k = plain_run(q)) == 8)
        q += 8;
    q += k;
    if (q >= f->e)
        return DECLINE;
    if (*q == '"') {
        *q = '\0';
        *out = (const char *)p;
        *len = (uint32_t)(q - p);
        f->p = q + 1;
        return 0;
    }
    for (w = q; q < f->e && *q != '"';) {
        unsigned char c = *q;
        size_t n;

        if (c == '\\') {
            if (q + 1 >= f->e)
                return DECLINE;
            switch (q[1]) {
            case '"':
            case '\\':
            case '/':
                *w++ = q[1];
                break;
            case 'b':
                *w++ = '\b';
                break;
            case 'f':
                *w++ = '\f';
                break;
            case 'n':
                *w++ = '\n';
                break;
            case 'r':
                *w++ = '\r';
                break;
            case 't':
                *w++ = '\t';
                break;
            default:
                return DECLINE; /* \u, or not an escape at all */
            }
            q += 2;
        } else if (c < 0x20) {
            return DECLINE; /* a raw control byte: jansson refuses it */
        } else if (c < 0x80) {
            *w++ = c;
            q++;
        } else {
            if ((n = utf8_seq(q, f->e)) == 0)
                return DECLINE;
            memmove(w, q, n);
            w += n;
            q += n;
        }
    }
    if (q >= f->e)
        return DECLINE;
    *w = '\0';
    *out = (const char *)p;
    *len = (uint32_t)(w - p);
    f->p = q + 1;
    return 0;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static int fast_number(struct fast *f, struct mc_jval *out)
{
    unsigned char *s = f->p, *p = s, *e = f->e;
    const unsigned char *digits, *frac = NULL;
    bool neg = false, exp = false;
    uint64_t v = 0;
    size_t nd;

    if (*p == '-') {
        neg = true;
        p++;
    }
    if (p >= e || !is_digit(*p))
        return DECLINE;
    digits = p;
    if (*p == '0') {
        if (++p < e && is_digit(*p))
            return DECLINE; /* a leading zero */
    } else {
        while (p < e && is_digit(*p))
            p++;
    }
    nd = (size_t)(p - digits);
    if (p < e && *p == '.') {
        frac = ++p;
        if (p >= e || !is_digit(*p))
            return DECLINE;
        while (p < e && is_digit(*p))
            p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        exp = true;
        if (++p < e && (*p == '+' || *p == '-'))
            p++;
        if (p >= e || !is_digit(*p))
            return DECLINE;
        while (p < e && is_digit(*p))
            p++;
    }
    /* a number ends a line only if the line is not an object: jansson says why */
    if (p >= e)
        return DECLINE;
    if (frac == NULL && !exp) {
        if (nd > 19) /* 19 digits always fit in uint64_t */
            return DECLINE;
        for (const unsigned char *d = digits; d < p; d++)
            v = v * 10 + (uint64_t)(*d - '0');
        if (v > (uint64_t)INT64_MAX + (neg ? 1 : 0))
            return DECLINE; /* jansson: "too big integer" */
        out->type = MC_JINT;
        out->u.i = !neg ? (int64_t)v : v > (uint64_t)INT64_MAX ? INT64_MIN : -(int64_t)v;
        f->p = p;
        return 0;
    }
    out->type = MC_JREAL;
    if (!exp && nd + (size_t)(p - frac) <= 15 && (size_t)(p - frac) <= 22) {
        /* at most 15 digits: an exact integer over an exact power of ten */
        for (const unsigned char *d = digits; d < p; d++)
            if (d != frac - 1)
                v = v * 10 + (uint64_t)(*d - '0');
        out->u.d = (double)v / pow10_exact[p - frac];
        if (neg)
            out->u.d = -out->u.d;
    } else {
        char *end;

        pthread_once(&c_locale_once, c_locale_init);
        if (c_locale == (locale_t)0)
            return DECLINE;
        errno = 0;
        out->u.d = strtod_l((const char *)s, &end, c_locale);
        if ((const unsigned char *)end != p || errno != 0 || !isfinite(out->u.d))
            return DECLINE;
    }
    f->p = p;
    return 0;
}

static int fast_value(struct fast *f, struct mc_jval *out, int depth);

/* After an item: 0 at ',', CLOSED at the closing byte (either skipped), else DECLINE. */
static int item_end(struct fast *f, unsigned char close)
{
    if (f->p >= f->e || (*f->p != ',' && *f->p != close))
        return DECLINE;
    return *f->p++ == close ? CLOSED : 0;
}

/* Move the n slots above base on a stack into the arena; NULL if out of memory. */
static void *slots_keep(struct mc_jreader *r, const void *slots, size_t n, size_t each,
                        size_t align)
{
    void *p = arena_alloc(&r->arena, n * each, align);

    if (p)
        memcpy(p, slots, n * each);
    return p;
}

/* A cheap 6-bit digest of a key: only keys sharing one are compared. */
static unsigned key_bit(const char *k, uint32_t n)
{
    return n == 0 ? 0
                  : (n * 7u + (unsigned char)k[0] * 3u + (unsigned char)k[n / 2] * 5u +
                     (unsigned char)k[n - 1]) &
                        63u;
}

static int fast_object(struct fast *f, struct mc_jval *out, int depth)
{
    struct mc_jreader *r = f->r;
    size_t base = r->mtop, n;
    uint64_t seen = 0;
    int rc;

    f->p++; /* '{' */
    out->type = MC_JOBJ;
    out->hint = 0;
    if (f->p < f->e && *f->p == '}') {
        f->p++;
        out->n = 0;
        out->u.m = NULL;
        return 0;
    }
    for (;;) {
        struct mc_jmember *m = &r->ms[r->mtop++]; /* reserved for the line */
        uint64_t bit;

        if (f->p >= f->e || *f->p != '"')
            return DECLINE;
        if ((rc = fast_string(f, &m->key, &m->klen)) != 0)
            return rc;
        bit = 1ull << key_bit(m->key, m->klen);
        if (seen & bit) {
            for (size_t i = base; i < r->mtop - 1; i++)
                if (r->ms[i].klen == m->klen && memcmp(r->ms[i].key, m->key, m->klen) == 0)
                    return DECLINE; /* a duplicate key: jansson refuses it */
        }
        seen |= bit;
        if (f->p >= f->e || *f->p != ':')
            return DECLINE;
        f->p++;
        m->v = (struct mc_jval){0};
        if ((rc = fast_value(f, &m->v, depth)) != 0 || (rc = item_end(f, '}')) != 0)
            break;
    }
    if (rc != CLOSED)
        return rc;
    n = r->mtop - base;
    if (n > UINT32_MAX)
        return DECLINE;
    out->u.m = slots_keep(r, r->ms + base, n, sizeof(*r->ms), _Alignof(struct mc_jmember));
    if (out->u.m == NULL)
        return MC_ENOMEM;
    out->n = (uint32_t)n;
    r->mtop = base;
    return 0;
}

static int fast_array(struct fast *f, struct mc_jval *out, int depth)
{
    struct mc_jreader *r = f->r;
    size_t base = r->vtop, n;
    int rc;

    f->p++; /* '[' */
    out->type = MC_JARR;
    if (f->p < f->e && *f->p == ']') {
        f->p++;
        out->n = 0;
        out->u.a = NULL;
        return 0;
    }
    for (;;) {
        struct mc_jval *v = &r->vs[r->vtop++]; /* reserved for the line */

        *v = (struct mc_jval){0};
        if ((rc = fast_value(f, v, depth)) != 0 || (rc = item_end(f, ']')) != 0)
            break;
    }
    if (rc != CLOSED)
        return rc;
    n = r->vtop - base;
    if (n > UINT32_MAX)
        return DECLINE;
    out->u.a = slots_keep(r, r->vs + base, n, sizeof(*r->vs), _Alignof(struct mc_jval));
    if (out->u.a == NULL)
        return MC_ENOMEM;
    out->n = (uint32_t)n;
    r->vtop = base;
    return 0;
}

static int literal(struct fast *f, const char *word, size_t n, enum mc_jtype type,
                   struct mc_jval *out)
{
    if ((size_t)(f->e - f->p) < n || memcmp(f->p, word, n) != 0)
        return DECLINE;
    out->type = (uint8_t)type;
    f->p += n;
    return 0;
}

static int fast_value(struct fast *f, struct mc_jval *out, int depth)
{
    if (f->p >= f->e)
        return DECLINE;
    switch (*f->p) {
    case '{':
        return depth >= DEPTH_MAX ? DECLINE : fast_object(f, out, depth + 1);
    case '[':
        return depth >= DEPTH_MAX ? DECLINE : fast_array(f, out, depth + 1);
    case '"':
        out->type = MC_JSTR;
        return fast_string(f, &out->u.s, &out->n);
    case 't':
        return literal(f, "true", 4, MC_JTRUE, out);
    case 'f':
        return literal(f, "false", 5, MC_JFALSE, out);
    case 'n':
        return literal(f, "null", 4, MC_JNULL, out);
    default:
        return fast_number(f, out);
    }
}

int mc_jline_fast(struct mc_jreader *r, const char *line, size_t n, const struct mc_jval **out)
{
    struct fast f = {r, NULL, NULL};
    struct mc_jval *v;
    int rc;

    mc_jarena_reset(&r->arena);
    r->mtop = r->vtop = 0;
    if (n == 0 || line[0] != '{' || n >= UINT32_MAX)
        return DECLINE;
    /*
     * Room for every member and item the line can hold: a member takes at
     * least 4 bytes ("":0) and an item 2 (0,), so the slots never move.
     */
    if (MC_VEC_RESERVE(r->ms, r->mcap, n / 4 + 2, 64) ||
        MC_VEC_RESERVE(r->vs, r->vcap, n / 2 + 2, 64))
        return MC_ENOMEM;
    /* strings are decoded in place, in a copy padded for 8-byte loads */
    f.p = arena_alloc(&r->arena, n + 8, 8);
    v = arena_alloc(&r->arena, sizeof(*v), _Alignof(struct mc_jval));
    if (f.p == NULL || v == NULL)
        return MC_ENOMEM;
    memcpy(f.p, line, n);
    memset(f.p + n, 0, 8);
    f.e = f.p + n;
    memset(v, 0, sizeof(*v));
    rc = fast_value(&f, v, 0);
    if (rc == 0 && f.p != f.e)
        rc = DECLINE; /* something after the object */
    if (rc == 0)
        *out = v;
    return rc;
}

/* ---- jansson ----------------------------------------------------------- */

static int from_json(struct mc_jarena *a, json_t *j, struct mc_jval *out)
{
    size_t n, i = 0;

    memset(out, 0, sizeof(*out));
    switch (json_typeof(j)) {
    case JSON_NULL:
        out->type = MC_JNULL;
        return 0;
    case JSON_TRUE:
        out->type = MC_JTRUE;
        return 0;
    case JSON_FALSE:
        out->type = MC_JFALSE;
        return 0;
    case JSON_INTEGER:
        out->type = MC_JINT;
        out->u.i = json_integer_value(j);
        return 0;
    case JSON_REAL:
        out->type = MC_JREAL;
        out->u.d = json_real_value(j);
        return 0;
    case JSON_STRING: {
        char *s;

        n = json_string_length(j);
        if (n >= UINT32_MAX || (s = arena_alloc(a, n + 1, 1)) == NULL)
            return MC_ENOMEM;
        memcpy(s, json_string_value(j), n);
        s[n] = '\0';
        out->type = MC_JSTR;
        out->u.s = s;
        out->n = (uint32_t)n;
        return 0;
    }
    case JSON_OBJECT: {
        const char *key;
        json_t *val;

        n = json_object_size(j);
        out->type = MC_JOBJ;
        out->n = (uint32_t)n;
        if (n == 0)
            return 0;
        if (n >= UINT32_MAX)
            return MC_ENOMEM;
        out->u.m = arena_alloc(a, n * sizeof(*out->u.m), _Alignof(struct mc_jmember));
        if (out->u.m == NULL)
            return MC_ENOMEM;
        json_object_foreach(j, key, val)
        {
            size_t klen = strlen(key);
            char *k = arena_alloc(a, klen + 1, 1);

            if (k == NULL || klen >= UINT32_MAX)
                return MC_ENOMEM;
            memcpy(k, key, klen + 1);
            out->u.m[i].key = k;
            out->u.m[i].klen = (uint32_t)klen;
            if (from_json(a, val, &out->u.m[i].v))
                return MC_ENOMEM;
            i++;
        }
        return 0;
    }
    case JSON_ARRAY: {
        json_t *val;

        n = json_array_size(j);
        out->type = MC_JARR;
        out->n = (uint32_t)n;
        if (n == 0)
            return 0;
        if (n >= UINT32_MAX)
            return MC_ENOMEM;
        out->u.a = arena_alloc(a, n * sizeof(*out->u.a), _Alignof(struct mc_jval));
        if (out->u.a == NULL)
            return MC_ENOMEM;
        json_array_foreach(j, i, val)
        {
            if (from_json(a, val, &out->u.a[i]))
                return MC_ENOMEM;
        }
        return 0;
    }
    }
    return MC_ENOMEM;
}

const struct mc_jval *mc_jval_from_json(struct mc_jarena *a, json_t *j)
{
    struct mc_jval *v = arena_alloc(a, sizeof(*v), _Alignof(struct mc_jval));

    if (v == NULL || j == NULL || from_json(a, j, v) != 0)
        return NULL;
    return v;
}

json_t *mc_jval_to_json(const struct mc_jval *v)
{
    json_t *j = NULL;

    switch (v->type) {
    case MC_JNULL:
        return json_null();
    case MC_JTRUE:
        return json_true();
    case MC_JFALSE:
        return json_false();
    case MC_JINT:
        return json_integer(v->u.i);
    case MC_JREAL:
        return json_real(v->u.d);
    case MC_JSTR:
        return json_stringn(v->u.s, v->n);
    case MC_JOBJ:
        j = json_object();
        for (uint32_t i = 0; j && i < v->n; i++) {
            json_t *x = mc_jval_to_json(&v->u.m[i].v);

            if (x == NULL || json_object_setn_new(j, v->u.m[i].key, v->u.m[i].klen, x) != 0) {
                json_decref(j);
                j = NULL;
            }
        }
        return j;
    case MC_JARR:
        j = json_array();
        for (uint32_t i = 0; j && i < v->n; i++) {
            if (json_array_append_new(j, mc_jval_to_json(&v->u.a[i])) != 0) {
                json_decref(j);
                j = NULL;
            }
        }
        return j;
    }
    return NULL;
}

int mc_jline_read(struct mc_jreader *r, const char *line, size_t n, const struct mc_jval **out,
                  char *why, size_t wsz)
{
    json_error_t e;
    json_t *j;
    int rc;

    if (!r->jansson_only) {
        rc = mc_jline_fast(r, line, n, out);
        if (rc == 0)
            r->fast++;
        if (rc != DECLINE)
            return rc;
    }
    /* jansson decides */
    r->slow++;
    mc_jarena_reset(&r->arena);
    j = json_loadb(line, n, JSON_REJECT_DUPLICATES, &e);
    if (j == NULL || !json_is_object(j)) {
        snprintf(why, wsz, "not a JSON object (%s)", j ? "another JSON value" : e.text);
        json_decref(j);
        return MC_ECORRUPT;
    }
    *out = mc_jval_from_json(&r->arena, j);
    json_decref(j);
    return *out ? 0 : MC_ENOMEM;
}
