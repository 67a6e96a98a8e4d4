/*
 * lookup.h - the reader's probe of the table, inline: hash the key with
 * XXH3 and the arena's seed, and ask ck_ht_get_spmc() (see table.h). The
 * warm path (index/resolve.h, mc_get()) inlines it, so a get pays for the
 * hash and ck's probe and no call layer of ours; mc_table_lookup()
 * (lookup.c) is the same probe for everyone else.
 */
#ifndef MCACHE_INDEX_LOOKUP_H
#define MCACHE_INDEX_LOOKUP_H

#include <ck_ht.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifndef XXH_INLINE_ALL
#define XXH_INLINE_ALL
#endif
#include <xxhash.h>

#include "index/table.h"

/* Copy n bytes; short copies (the usual names and versions) without a call. */
static inline void mc_key_copy(char *dst, const char *src, size_t n)
{
    if (n >= 8 && n <= 16) { /* two 8-byte moves that may overlap */
        __builtin_memcpy(dst, src, 8);
        __builtin_memcpy(dst + n - 8, src + n - 8, 8);
    } else if (n >= 4 && n < 8) {
        __builtin_memcpy(dst, src, 4);
        __builtin_memcpy(dst + n - 4, src + n - 4, 4);
    } else if (n < 4) {
        for (size_t i = 0; i < n; i++)
            dst[i] = src[i];
    } else {
        __builtin_memcpy(dst, src, n);
    }
}

/*
 * Up to 8 bytes of s[0..n) as one word, loaded straight into registers (a
 * hash input, not the bytes in order: 4 to 7 bytes are two overlapping 4-byte
 * loads). Gathering them with mc_key_copy() into a local and loading that
 * stalled on store forwarding: an 8-byte load over two 4-byte stores cost
 * ~8 ns per get for 5-byte versions like "1.0.0".
 */
static inline uint64_t mc_key_word(const char *s, size_t n)
{
    uint64_t w;
    uint32_t lo, hi;

    if (n >= 8) {
        __builtin_memcpy(&w, s, 8);
        return w;
    }
    if (n >= 4) {
        __builtin_memcpy(&lo, s, 4);
        __builtin_memcpy(&hi, s + n - 4, 4);
        return (uint64_t)hi << 32 | lo;
    }
    if (n == 0)
        return 0;
    return (uint64_t)(unsigned char)s[0] | (uint64_t)(unsigned char)s[n / 2] << 8 |
           (uint64_t)(unsigned char)s[n - 1] << 16;
}

/* a[0..n) == b[0..n); short compares without a call. */
static inline bool mc_key_eq(const char *a, const char *b, size_t n)
{
    uint64_t x, y, u, v;

    if (n >= 8 && n <= 16) {
        __builtin_memcpy(&x, a, 8);
        __builtin_memcpy(&y, b, 8);
        __builtin_memcpy(&u, a + n - 8, 8);
        __builtin_memcpy(&v, b + n - 8, 8);
        return ((x ^ y) | (u ^ v)) == 0;
    }
    if (n >= 4 && n < 8) {
        uint32_t x4, y4, u4, v4;

        __builtin_memcpy(&x4, a, 4);
        __builtin_memcpy(&y4, b, 4);
        __builtin_memcpy(&u4, a + n - 4, 4);
        __builtin_memcpy(&v4, b + n - 4, 4);
        return ((x4 ^ y4) | (u4 ^ v4)) == 0;
    }
    return __builtin_memcmp(a, b, n) == 0;
}

/*
 * buf = a, sep, b (a + 1 + b bytes, no NUL): the key "name@version" or
 * "name#alias". The caller has checked that it fits.
 */
static inline void mc_key_join(char *buf, const char *a, size_t alen, char sep, const char *b,
                               size_t blen)
{
    mc_key_copy(buf, a, alen);
    buf[alen] = sep;
    mc_key_copy(buf + alen + 1, b, blen);
}

static inline struct mc_rec *mc_table_probe(struct mc_table *t, uint64_t seed, const char *key,
                                            size_t len)
{
    ck_ht_entry_t e;
    ck_ht_hash_t h;

    h.value = XXH3_64bits_withSeed(key, len, seed);
    ck_ht_entry_key_set(&e, key, (uint16_t)len);
    if (!ck_ht_get_spmc(&t->ht, h, &e))
        return NULL;
    return ck_ht_entry_value(&e);
}

#endif
