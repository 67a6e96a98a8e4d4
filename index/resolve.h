/*
 * resolve.h - resolve a model reference against the arena's records.
 *
 * The warm path is inline (mc_resolve_ref(), called by mc_get()): first
 * the calling thread's memo (below), which answers a reference it resolved
 * before while the table has not changed; else an exact version or an
 * alias is one probe of the key "name@ref" or "name#ref", built on the
 * stack without a libc call for the usual short names. The rest ("latest",
 * ranges, every error) is mc_resolve_list(), out of line: one probe of
 * "name", then "latest" is the list's precomputed `latest`, and a range is
 * looked up in the memo's per-list answers and compiled ranges before it is
 * compiled and matched.
 */
#ifndef MCACHE_INDEX_RESOLVE_H
#define MCACHE_INDEX_RESOLVE_H

#include <string.h>

#include "index/lookup.h"
#include "shm/atomic.h"
#include "shm/fence.h"

/*
 * What references resolved to, remembered by one reader thread (private
 * memory; libmcache allocates one per thread and cache, of about 1 MiB of
 * which only the pages a thread's gets touch are ever committed):
 *
 * - k[]: any reference (version, alias, latest, range) of at most
 *   MC_MEMO_KEY_MAX bytes with its name: "while the table's seq was `seq`,
 *   name + ref resolved to `rec`" (the alias's target, for an alias). An
 *   entry is written only when seq was the same even value before and after
 *   the lookup, so no change was in progress; it is used only while seq
 *   still has that value, so no change has begun since (a change makes seq
 *   odd before its first store: table_change_begin(), index/table.c). The
 *   record is then still what the probe would find, reachable from the
 *   table, and safe to hold by the same argument as a probe's answer: a
 *   reader that loads the unchanged seq after its pin either pinned before
 *   the loader's barrier (so its pin protects what that change retires) or
 *   would have seen the odd value (docs/arena.md, "The warm path").
 *   Two-way: a key lives in either entry of the pair its name's last and
 *   its ref's first bytes pick.
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
 * e[] and r[] serve misses of k[]; ranges of MC_MEMO_REF_MAX bytes or more
 * are not remembered in them.
 */
#define MC_MEMO_KEYS        16384u /* 1 MiB, touched only as it fills */
#define MC_MEMO_KEY_MAX     46u /* name + ref bytes a k[] entry holds */
#define MC_MEMO_SLOTS       256u
#define MC_MEMO_RANGES      4u
#define MC_MEMO_REF_MAX     44u
#define MC_MEMO_RANGE_WORDS 384u /* a compiled range of < MC_MEMO_REF_MAX bytes fits */

struct mc_range;

struct mc_memo_key {
    uint64_t seq; /* the table's seq when found; 0: empty */
    uint64_t rec; /* struct mc_rec_version * */
    uint8_t nlen, rlen;
    char key[MC_MEMO_KEY_MAX]; /* name, then ref, no separator */
};

struct mc_memo {
    struct mc_memo_key k[MC_MEMO_KEYS]; /* in pairs: a key may live in either of its pair */
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
 * matches. A weighted alias picks one of its targets by weight, at random.
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

/* The first k[] entry of the pair name + ref lives in: the name's last and the ref's first 8 bytes, mixed. */
static inline struct mc_memo_key *mc_memo_key_pair(struct mc_memo *m, const char *name, size_t nlen,
                                                   const char *ref, size_t rlen)
{
    uint64_t a = mc_key_word(name + (nlen > 8 ? nlen - 8 : 0), nlen > 8 ? 8 : nlen);
    uint64_t b = mc_key_word(ref, rlen);

    a = (a * 0x9e3779b97f4a7c15ull) ^ (b + (nlen << 8) + rlen);
    a ^= a >> 29;
    return &m->k[((a * 0xff51afd7ed558ccdull) >> 32) % (MC_MEMO_KEYS / 2) * 2];
}

static inline bool mc_memo_key_is(const struct mc_memo_key *e, uint64_t seq, const char *name,
                                  size_t nlen, const char *ref, size_t rlen)
{
    return e->seq == seq && e->nlen == nlen && e->rlen == rlen && mc_key_eq(e->key, name, nlen) &&
           mc_key_eq(e->key + nlen, ref, rlen);
}

/*
 * Remember that name + ref mapped to v while the table's seq was seq, in the
 * first entry of the pair at e (its key moves to the second; out of line).
 */
void mc_memo_key_fill(struct mc_memo_key *e, uint64_t seq, const struct mc_rec_version *v,
                      const char *name, size_t nlen, const char *ref, size_t rlen);

/*
 * A weighted alias's pick (the target word is a tagged split, record.h):
 * by a hash of the request's key (sticky: the same key, the same version
 * while the split stays; unseeded, so the same on every host), else by a
 * draw from the thread's generator (a Weyl sequence mixed once: a multiply,
 * no system call). Out of line (resolve.c): the warm path of every other
 * reference pays only the test of the tag.
 */
struct mc_rec_version *mc_resolve_split(uint64_t target, const void *key, size_t key_len,
                                        uint64_t *rng);

__attribute__((always_inline)) static inline struct mc_rec_version *
mc_resolve_pick(uint64_t target, const void *key, size_t key_len, uint64_t *rng)
{
    if (__builtin_expect(target & 1, 0))
        return mc_resolve_split(target, key, key_len, rng);
    return (struct mc_rec_version *)(uintptr_t)target;
}

/*
 * mc_resolve() with this thread's memo: the warm path (mc_get(),
 * mc_get_keyed()). A weighted alias is picked by pick_key (if not NULL) or by a
 * draw from *rng; the memo remembers the alias's split, not the pick.
 */
__attribute__((always_inline)) static inline int
mc_resolve_ref(struct mc_table *t, uint64_t seed, const char *name, const char *ref,
               struct mc_memo *memo, const void *pick_key, size_t pick_len, uint64_t *rng,
               struct mc_rec_version **out)
{
    char key[MC_KEY_MAX];
    size_t nlen = strlen(name), rlen;
    unsigned c0;
    struct mc_rec *r = NULL;
    struct mc_rec_version *v;
    uint64_t seq = 0;
    struct mc_memo_key *e = NULL, *hit;
    int rc;

    if (!ref)
        return mc_resolve_list(t, seed, name, nlen, NULL, 0, memo, out);
    rlen = strlen(ref);
    if (__builtin_expect(nlen + 1 + rlen >= MC_KEY_MAX, 0))
        return mc_resolve_too_long(name, nlen, ref, rlen);
    if (memo && nlen + rlen <= MC_MEMO_KEY_MAX) {
        /* Pairs with table_change_end()'s release: what the change stored. */
        seq = mc_load_acquire(&t->seq);
        e = mc_memo_key_pair(memo, name, nlen, ref, rlen);
        hit = mc_memo_key_is(&e[0], seq, name, nlen, ref, rlen)   ? &e[0]
              : mc_memo_key_is(&e[1], seq, name, nlen, ref, rlen) ? &e[1]
                                                                  : NULL;
        if (hit) {
            *out = mc_resolve_pick(hit->rec, pick_key, pick_len, rng);
            return 0;
        }
    }
    /* A version starts with a digit and an alias with a letter ("latest" is
     * reserved: no alias has that name): probe only the key that can exist. */
    c0 = (unsigned char)ref[0];
    if (c0 - '0' <= 9u) {
        mc_key_join(key, name, nlen, '@', ref, rlen);
        r = mc_table_probe(t, seed, key, nlen + 1 + rlen);
        r = r && r->kind == MC_REC_VERSION ? r : NULL;
    } else if ((c0 | 0x20u) - 'a' < 26u && !(rlen == 6 && strcmp(ref, "latest") == 0)) {
        mc_key_join(key, name, nlen, '#', ref, rlen);
        r = mc_table_probe(t, seed, key, nlen + 1 + rlen);
        r = r && r->kind == MC_REC_ALIAS ? r : NULL;
    }
    if (r && r->kind == MC_REC_VERSION)
        v = (struct mc_rec_version *)r;
    else if (r)
        /* Pairs with the release stores of alias targets in index/table.c. */
        v = mc_load_acquire_ptr(&((struct mc_rec_alias *)r)->target); /* maybe a split */
    else if ((rc = mc_resolve_list(t, seed, name, nlen, ref, rlen, memo, &v)) != 0)
        return rc;
    if (e) {
        /* The lookup's loads before the second load of seq (pairs with
         * table_change_begin()'s fence): the same even value means no change
         * ran while we looked. */
        mc_fence_acquire();
        if (!(seq & 1) && mc_load_relaxed(&t->seq) == seq)
            mc_memo_key_fill(e, seq, v, name, nlen, ref, rlen);
    }
    *out = mc_resolve_pick((uint64_t)(uintptr_t)v, pick_key, pick_len, rng);
    return 0;
}

#endif
