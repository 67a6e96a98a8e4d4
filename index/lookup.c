/*
 * lookup.c - the reader half of the table: hashing keys and probing the
 * ck_ht in the arena (see table.h). Compiled into libmcache; calls no
 * function pointer stored in shared memory.
 */
#include "index/lookup.h"

#include <stdio.h>
#include <string.h>

uint64_t mc_key_hash(const void *key, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(key, len, seed);
}

struct mc_rec *mc_table_lookup(struct mc_table *t, uint64_t seed, const char *key, size_t len)
{
    return mc_table_probe(t, seed, key, len);
}

static size_t key_join(char *buf, size_t cap, const char *a, size_t alen, char sep,
                       const char *b, size_t blen)
{
    if (alen + 1 + blen + 1 > cap)
        return 0;
    mc_key_join(buf, a, alen, sep, b, blen);
    buf[alen + 1 + blen] = '\0';
    return alen + 1 + blen;
}

size_t mc_key_version(char *buf, size_t cap, const char *name, size_t nlen, const char *ver,
                      size_t vlen)
{
    return key_join(buf, cap, name, nlen, '@', ver, vlen);
}

size_t mc_key_alias(char *buf, size_t cap, const char *name, size_t nlen, const char *alias,
                    size_t alen)
{
    return key_join(buf, cap, name, nlen, '#', alias, alen);
}

const char *mc_format_name(uint32_t format)
{
    switch (format) {
    case MC_RECFMT_SAFETENSORS:
        return "safetensors";
    case MC_RECFMT_GGUF:
        return "gguf";
    case MC_RECFMT_ONNX:
        return "onnx";
    default:
        return "other";
    }
}

struct mc_rec_version *mc_table_find_version(struct mc_table *t, uint64_t seed, const char *name,
                                             const char *version)
{
    char key[MC_KEY_MAX];
    size_t n = mc_key_version(key, sizeof(key), name, strlen(name), version, strlen(version));
    struct mc_rec *r;

    if (!n)
        return NULL;
    r = mc_table_lookup(t, seed, key, n);
    return r && r->kind == MC_REC_VERSION ? (struct mc_rec_version *)r : NULL;
}

