/*
 * resolve.h - resolve a model reference against the arena's records.
 *
 * The warm path is inline (mc_resolve_ref(), called by mc_get()): an exact
 * version or an alias is one probe of the key "name@ref" or "name#ref",
 * built on the stack without a libc call for the usual short names. The
 * rest ("latest", ranges, every error) is mc_resolve_list(), out of line:
 * one probe of "name", then "latest" is the list's precomputed `latest`,
 * and a range is looked up in the caller's memo (below) before it is
 * compiled and matched.
 */
#ifndef MCACHE_INDEX_RESOLVE_H
#define MCACHE_INDEX_RESOLVE_H

#include <string.h>

#include "index/lookup.h"
#include "shm/atomic.h"

/*
 * What ranges resolved to, remembered by one reader thread (private memory;
 * libmcache keeps one per thread and cache, about 30 KiB):
 *
 * - e[]: "in the version list of generation `gen`, `ref` selects `rec`". A
 *   list is immutable and its generation is never reused in the arena
 *   (record.h), so an entry whose gen equals that of the list a pinned
 *   reader has just loaded from the table is the answer that compiling and
 *   matching the range would give, and its record is reachable from that
 *   list: as safe to hold as if found by the scan. Direct-mapped by
 *   generation (consecutive lists get consecutive slots) and ref.
 * - r[]: the last MC_MEMO_RANGES ranges compiled, by their text, so a
 *   model whose answer is not in e[] (first use, a list replaced, more
 *   models in use than slots) is matched without compiling its range.
 *
 * Ranges of MC_MEMO_REF_MAX bytes or more are not remembered.
 */
#define MC_MEMO_SLOTS       256u
#define MC_MEMO_RANGES      4u
#define MC_MEMO_REF_MAX     44u
#define MC_MEMO_RANGE_WORDS 384u /* a compiled range of < MC_MEMO_REF_MAX bytes fits */

struct mc_range;

struct mc_memo {
    struct {
        uint64_t gen; /* 0: empty */
        uint64_t rec; /* struct mc_rec_version * */
        uint32_t rlen;
        char ref[MC_MEMO_REF_MAX];
    } e[MC_MEMO_SLOTS];
    struct {
        struct mc_range *range; /* in buf; NULL: empty */
        uint32_t rlen;
        char ref[MC_MEMO_REF_MAX];
        uint64_t buf[MC_MEMO_RANGE_WORDS];
    } r[MC_MEMO_RANGES];
    uint32_t r_next; /* the r[] entry replaced next */
};

/*
 * Resolve `ref` (exact version, alias, "latest" or NULL, or a range) of
 * model `name` to its version record, in any state. The caller must be
 * pinned (reader) or be the writer. MC_ENOENT (with a message) if nothing
 * matches.
 */
int mc_resolve(struct mc_table *t, uint64_t seed, const char *name, const char *ref,
               struct mc_rec_version **out);

/*
 * The out-of-line half: "latest" (ref NULL or "latest"), ranges, errors.
 * memo: this thread's (NULL: none; a range is compiled every time).
 */
int mc_resolve_list(struct mc_table *t, uint64_t seed, const char *name, size_t nlen,
                    const char *ref, size_t rlen, struct mc_memo *memo,
                    struct mc_rec_version **out);

/* name + ref too long for a key: MC_EINVAL with the message. */
int mc_resolve_too_long(const char *name, size_t nlen, const char *ref, size_t rlen);

/* mc_resolve() with this thread's memo: the warm path (mc_get()). */
__attribute__((always_inline)) static inline int
mc_resolve_ref(struct mc_table *t, uint64_t seed, const char *name, const char *ref,
               struct mc_memo *memo, struct mc_rec_version **out)
{
    char key[MC_KEY_MAX];
    size_t nlen = strlen(name), rlen;
    unsigned c0;
    char sep;
    struct mc_rec *r;

    if (!ref)
        return mc_resolve_list(t, seed, name, nlen, NULL, 0, memo, out);
    rlen = strlen(ref);
    if (__builtin_expect(nlen + 1 + rlen >= MC_KEY_MAX, 0))
        return mc_resolve_too_long(name, nlen, ref, rlen);
    /* A version starts with a digit and an alias with a letter ("latest" is
     * reserved: no alias has that name): probe only the key that can exist. */
    c0 = (unsigned char)ref[0];
    if (c0 - '0' <= 9u)
        sep = '@';
    else if ((c0 | 0x20u) - 'a' < 26u && !(rlen == 6 && memcmp(ref, "latest", 6) == 0))
        sep = '#';
    else
        return mc_resolve_list(t, seed, name, nlen, ref, rlen, memo, out);
    mc_key_join(key, name, nlen, sep, ref, rlen);
    r = mc_table_probe(t, seed, key, nlen + 1 + rlen);
    if (r && sep == '@' && r->kind == MC_REC_VERSION) {
        *out = (struct mc_rec_version *)r;
        return 0;
    }
    if (r && sep == '#' && r->kind == MC_REC_ALIAS) {
        /* Pairs with the release stores of alias targets in index/table.c. */
        *out = mc_load_acquire_ptr(&((struct mc_rec_alias *)r)->target);
        return 0;
    }
    return mc_resolve_list(t, seed, name, nlen, ref, rlen, memo, out);
}

#endif
