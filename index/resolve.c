/*
 * resolve.c - turn (name, reference) into a version record in the arena.
 *
 * A reference that starts with a digit may be an exact version: the key
 * "name@ref" is probed. One that starts with a letter may be an alias:
 * "name#ref" is probed. Both are inline (resolve.h). Anything not found
 * that way is "latest" or a range over the model's version list, here.
 * Versions start with a digit, and the registry refuses alias names that do
 * not start with a letter, that could be read as versions or ranges, or
 * that are "latest", so this never changes an answer; it only saves a
 * probe. Used by readers (pinned) and by the tests.
 */
#include "index/resolve.h"

#include <stdlib.h>
#include <string.h>

#include "index/semver.h"
#include "common/clock.h"
#include "common/err.h"

int mc_resolve_too_long(const char *name, size_t nlen, const char *ref, size_t rlen)
{
    return mc_err(MC_EINVAL, "model name and reference \"%.60s%s@%.60s%s\" (%zu bytes) exceed %u bytes",
                  name, nlen > 60 ? "..." : "", ref, rlen > 60 ? "..." : "", nlen + 1 + rlen,
                  MC_KEY_MAX - 1);
}

struct mc_rec_version *mc_resolve_split(uint64_t target, const void *key, size_t key_len,
                                        uint64_t *rng)
{
    const struct mc_split *sp = mc_target_split(target);
    uint64_t x;

    if (key) {
        x = XXH3_64bits(key, key_len);
    } else {
        x = (*rng += 0x9e3779b97f4a7c15ull); /* a Weyl sequence, mixed once */
        x = (x ^ (x >> 29)) * 0xbf58476d1ce4e5b9ull;
    }
    return mc_split_pick(sp, (uint32_t)(x >> 32));
}

void mc_memo_key_fill(struct mc_memo_key *e, uint64_t seq, const struct mc_rec_version *v,
                      const char *name, size_t nlen, const char *ref, size_t rlen)
{
    /* The newest key first: the first entry moves to the second (whose key
     * goes), so of the keys that share a pair the two used last stay. */
    e[1] = e[0];
    e->seq = seq;
    e->rec = (uintptr_t)v;
    e->nlen = (uint8_t)nlen;
    e->rlen = (uint8_t)rlen;
    memcpy(e->key, name, nlen);
    memcpy(e->key + nlen, ref, rlen);
}

/* Which e[] entry (gen, ref) lives in: the generation plus a mix of ref's first bytes. */
static unsigned memo_slot(uint64_t gen, const char *ref, size_t rlen)
{
    uint64_t w = 0;

    mc_key_copy((char *)&w, ref, rlen < 8 ? rlen : 8);
    return (unsigned)(gen + (((w ^ rlen) * 0x9e3779b97f4a7c15ull) >> 56)) % MC_MEMO_SLOTS;
}

/* ref compiled: from the memo's r[] if there, else compiled into it (0 or the parser's code). */
static int memo_range(struct mc_memo *memo, const char *ref, size_t rlen, struct mc_range **out)
{
    unsigned k;
    int rc;

    for (k = 0; k < MC_MEMO_RANGES; k++)
        if (memo->r[k].range && memo->r[k].rlen == rlen && memcmp(memo->r[k].ref, ref, rlen) == 0) {
            *out = memo->r[k].range;
            return 0;
        }
    k = memo->r_next++ % MC_MEMO_RANGES;
    memo->r[k].range = NULL;
    rc = mc_range_parse_buf(ref, memo->r[k].buf, sizeof(memo->r[k].buf), out);
    if (rc)
        return rc;
    memo->r[k].range = *out;
    memo->r[k].rlen = (uint32_t)rlen;
    memcpy(memo->r[k].ref, ref, rlen);
    return 0;
}

/* Pick from the model's list (highest precedence first). */
int mc_resolve_list(struct mc_table *t, uint64_t seed, const char *name, size_t nlen,
                    const char *ref, size_t rlen, struct mc_memo *memo,
                    struct mc_rec_version **out)
{
    struct mc_rec *mr = mc_table_probe(t, seed, name, nlen);
    struct mc_range *range = NULL;
    bool latest = ref == NULL || (rlen == 6 && memcmp(ref, "latest", 6) == 0);
    uint64_t buf[256]; /* compiled ranges of usual length need no malloc */
    void *heap = NULL;
    int rc;

    if (!mr || mr->kind != MC_REC_MODEL)
        return mc_err(MC_ENOENT, "no model \"%.*s%s\" in this cache; push it with `mcache push`",
                      (int)(nlen > 128 ? 128 : nlen), name, nlen > 128 ? "..." : "");
    /* Pairs with verlist_install()'s release (index/table.c): the list is
     * complete, its latest and generation set. */
    const struct mc_verlist *vl = mc_load_acquire_ptr(&((struct mc_rec_model *)mr)->versions);
    if (latest) {
        if (vl && vl->latest) {
            *out = (struct mc_rec_version *)(uintptr_t)vl->latest;
            return 0;
        }
        return mc_err(MC_ENOENT, "model \"%.*s\" has no release version (only prereleases); "
                                 "ask for one by version",
                      (int)nlen, name);
    }
    unsigned slot = 0;
    if (memo && vl && rlen < MC_MEMO_REF_MAX) {
        slot = memo_slot(vl->gen, ref, rlen);
        if (memo->e[slot].gen == vl->gen && memo->e[slot].rlen == rlen &&
            memcmp(memo->e[slot].ref, ref, rlen) == 0) {
            *out = (struct mc_rec_version *)(uintptr_t)memo->e[slot].rec;
            return 0;
        }
    }
    {
        size_t need = mc_range_buf_size(rlen);
        void *mem = need <= sizeof(buf) ? (void *)buf : (heap = malloc(need));

        /* "" would parse as the range "*": refused, as mcached and the CLI do */
        rc = !*ref                            ? MC_EINVAL
             : memo && rlen < MC_MEMO_REF_MAX ? memo_range(memo, ref, rlen, &range)
                                              : MC_ENOSPC;
        if (rc == MC_ENOSPC) /* not remembered: compiled here, for this call */
            rc = mem ? mc_range_parse_buf(ref, mem, need, &range) : MC_ENOMEM;
        if (rc) {
            free(heap);
            if (rc == MC_ENOMEM)
                return mc_err(MC_ENOMEM, "out of memory");
            /* Not a range: an alias that does not exist (ENOENT), or no
             * reference at all (EINVAL, with the parser's reason). */
            rc = mc_ref_classify(ref);
            if (rc == MC_REF_ALIAS)
                return mc_err(MC_ENOENT, "model \"%.*s\" has no alias \"%s\"", (int)nlen, name,
                              ref); /* an alias is at most 64 bytes */
            return rc < 0 ? rc : mc_err(MC_EINVAL, "reference \"%.80s%s\" is not valid", ref,
                                        rlen > 80 ? "..." : "");
        }
    }
    for (uint32_t i = 0; vl && i < vl->count; i++) {
        struct mc_rec_version *v = (struct mc_rec_version *)(uintptr_t)vl->recs[i];
        struct mc_semver sv;

        if (mc_semver_parse(mc_rec_version_str(v), mc_rec_cold(v)->version_len, &sv) != 0)
            continue;
        if (mc_range_match(range, &sv)) {
            if (memo && rlen < MC_MEMO_REF_MAX) {
                memo->e[slot].gen = vl->gen;
                memo->e[slot].rec = (uintptr_t)v;
                memo->e[slot].rlen = (uint32_t)rlen;
                memcpy(memo->e[slot].ref, ref, rlen);
            }
            *out = v;
            free(heap);
            return 0;
        }
    }
    free(heap);
    return mc_err(MC_ENOENT, "no version of model \"%.*s\" matches \"%.80s%s\"", (int)nlen, name,
                  ref, rlen > 80 ? "..." : "");
}

int mc_resolve(struct mc_table *t, uint64_t seed, const char *name, const char *ref,
               struct mc_rec_version **out)
{
    static __thread uint64_t rng;

    if (!rng)
        rng = mc_wall_ns() ^ (uint64_t)(uintptr_t)&rng;
    return mc_resolve_ref(t, seed, name, ref, NULL, NULL, 0, &rng, out);
}
