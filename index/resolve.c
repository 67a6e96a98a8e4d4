/*
 * resolve.c - turn (name, reference) into a version record in the arena.
 *
 * A reference that starts with a digit may be an exact version: the key
 * "name@ref" is probed. One that starts with a letter may be an alias:
 * "name#ref" is probed. Anything not found that way is "latest" or a range
 * over the model's version list. Versions start with a digit, and the
 * registry refuses alias names that do not start with a letter or that
 * could be read as versions or ranges, so this never changes an answer; it
 * only saves a probe. Used by readers (pinned) and by the loader.
 */
#include "index/resolve.h"

#include <stdlib.h>
#include <string.h>

#include "index/semver.h"
#include "shm/atomic.h"
#include "common/err.h"

static struct mc_rec_version *as_version(struct mc_rec *r)
{
    return r && r->kind == MC_REC_VERSION ? (struct mc_rec_version *)r : NULL;
}

/* Pick from the model's list (highest precedence first). */
static int resolve_list(struct mc_table *t, uint64_t seed, const char *name, size_t nlen,
                        const char *ref, struct mc_rec_version **out)
{
    struct mc_rec *mr = mc_table_lookup(t, seed, name, nlen);
    struct mc_range *range = NULL;
    bool latest = ref == NULL || strcmp(ref, "latest") == 0;
    uint64_t buf[256]; /* compiled ranges of usual length need no malloc */
    void *heap = NULL;
    int rc;

    if (!mr || mr->kind != MC_REC_MODEL)
        return mc_err(MC_ENOENT, "no model \"%.*s%s\" in this cache; push it with `mcache push`",
                      (int)(nlen > 128 ? 128 : nlen), name, nlen > 128 ? "..." : "");
    if (!latest) {
        size_t need = mc_range_buf_size(strlen(ref));
        void *mem = need <= sizeof(buf) ? (void *)buf : (heap = malloc(need));

        /* "" would parse as the range "*": refused, as mcached and the CLI do */
        rc = !*ref ? MC_EINVAL : mem ? mc_range_parse_buf(ref, mem, need, &range) : MC_ENOMEM;
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
                                        strlen(ref) > 80 ? "..." : "");
        }
    }
    /* Pairs with verlist_install()'s release (index/table.c): the list is complete. */
    const struct mc_verlist *vl = mc_load_acquire_ptr(&((struct mc_rec_model *)mr)->versions);
    for (uint32_t i = 0; vl && i < vl->count; i++) {
        struct mc_rec_version *v = (struct mc_rec_version *)(uintptr_t)vl->recs[i];
        struct mc_semver sv;

        if (mc_semver_parse(mc_rec_version_str(v), mc_rec_cold(v)->version_len, &sv) != 0)
            continue;
        if (latest ? sv.pre_len == 0 : mc_range_match(range, &sv)) {
            *out = v;
            free(heap);
            return 0;
        }
    }
    free(heap);
    if (latest)
        return mc_err(MC_ENOENT, "model \"%.*s\" has no release version (only prereleases); "
                                 "ask for one by version",
                      (int)nlen, name);
    return mc_err(MC_ENOENT, "no version of model \"%.*s\" matches \"%.80s%s\"", (int)nlen, name,
                  ref, strlen(ref) > 80 ? "..." : "");
}

int mc_resolve(struct mc_table *t, uint64_t seed, const char *name, const char *ref,
               struct mc_rec_version **out)
{
    char key[MC_KEY_MAX];
    size_t nlen = strlen(name), rlen, klen;
    struct mc_rec *r;

    if (!ref)
        return resolve_list(t, seed, name, nlen, NULL, out);
    rlen = strlen(ref);
    klen = mc_key_version(key, sizeof(key), name, nlen, ref, rlen);
    if (!klen)
        return mc_err(MC_EINVAL,
                      "model name and reference \"%.60s%s@%.60s%s\" (%zu bytes) exceed %u bytes",
                      name, nlen > 60 ? "..." : "", ref, rlen > 60 ? "..." : "", nlen + 1 + rlen,
                      MC_KEY_MAX - 1);
    /* A version starts with a digit and an alias with a letter: probe only
     * the key that can exist. */
    if (ref[0] >= '0' && ref[0] <= '9') {
        r = mc_table_lookup(t, seed, key, klen);
        if ((*out = as_version(r)))
            return 0;
    } else if ((ref[0] | 0x20) >= 'a' && (ref[0] | 0x20) <= 'z') {
        key[nlen] = '#';
        r = mc_table_lookup(t, seed, key, klen);
        if (r && r->kind == MC_REC_ALIAS) {
            /* Pairs with the release stores of alias targets in index/table.c. */
            *out = mc_load_acquire_ptr(&((struct mc_rec_alias *)r)->target);
            return 0;
        }
    }
    return resolve_list(t, seed, name, nlen, ref, out);
}
