/*
 * record.h - what the arena's table maps keys to.
 *
 * Keys (bytes, no NUL, distinct by construction since names and versions
 * contain neither '@' nor '#'):
 *   "name@version"  -> struct mc_rec_version
 *   "name#alias"    -> struct mc_rec_alias
 *   "name"          -> struct mc_rec_model (the versions, for latest/ranges)
 *
 * Records live in the arena's index region and are immutable once published,
 * with two exceptions, each a single aligned 8-byte store: an alias's
 * `target` (moving an alias) and a model's `versions` list (copy-on-write).
 * A version that is loaded or evicted gets a new record that replaces the old
 * one in the table; the old one is retired, and lives on while readers hold
 * it. A version record with an extent owns it: nothing else points into it.
 *
 * Pointers stored here are absolute addresses: every process maps the arena
 * at the same base.
 */
#ifndef MCACHE_INDEX_RECORD_H
#define MCACHE_INDEX_RECORD_H

#include <stdint.h>

#define MC_REC_MAGIC     0x5243434du /* "MCCR" */
#define MC_VERLIST_MAGIC 0x4c52454du /* "MERL" */

enum mc_rec_kind {
    MC_REC_VERSION = 1,
    MC_REC_ALIAS = 2,
    MC_REC_MODEL = 3,
};

enum mc_rec_state {
    MC_STATE_REGISTERED = 1, /* in the registry, bytes not in the arena */
    MC_STATE_READY = 2,      /* resident, complete and verified */
    MC_STATE_FAILED = 3,     /* the last load failed (see the loader's status) */
};

enum mc_rec_format { /* numbered as enum mc_reg_format (registry/registry.h) */
    MC_RECFMT_OTHER = 0,
    MC_RECFMT_SAFETENSORS = 1,
    MC_RECFMT_GGUF = 2,
    MC_RECFMT_ONNX = 3,
};

/*
 * Layout for the warm path: what a get touches (the key that ck_ht
 * compares, the state, the data pointer and size) lies in the record's
 * first cache line, the key starting at byte 40 (alias, version) or 32
 * (model); what only accessors and the loader read sits in a "cold" part
 * after the strings.
 */
struct mc_rec {
    uint32_t magic;
    uint8_t kind;
    uint8_t stats;       /* versions: stats index (index/stats.h), 0: not tracked */
    uint16_t key_len;    /* key bytes at key_off, NUL-terminated for convenience */
    uint32_t state;      /* enum mc_rec_state (versions) */
    uint32_t alloc_size; /* as passed to mc_index_alloc() */
    uint32_t key_off;    /* from the record's start */
    uint32_t cold_off;   /* versions: struct mc_rec_vcold, from the record's start */
};

_Static_assert(sizeof(struct mc_rec) == 24, "record header is 24 bytes");

struct mc_rec_version {
    struct mc_rec h;
    uint64_t data;      /* address of the artifact's first byte, 0 if not resident */
    uint64_t data_size; /* artifact size in bytes */
    char strings[];     /* key, name, version, meta (each NUL-terminated), then the cold part */
};

/* What a version record says beyond the warm path (8-byte aligned). */
struct mc_rec_vcold {
    uint64_t generation;  /* arena generation when published */
    uint64_t extent_off;  /* owned data extent (arena offset), 0 if none */
    uint64_t extent_size;
    uint64_t tensors_off; /* owned index object: tensor table, 0 if none */
    uint64_t tensors_size;
    uint64_t loaded_ns;   /* CLOCK_REALTIME when published READY */
    uint32_t name_off, name_len;
    uint32_t version_off, version_len;
    uint32_t meta_off, meta_len; /* JSON object text */
    uint32_t format;             /* enum mc_rec_format */
    uint32_t flags;
    char checksum[48]; /* "xxh3-128:<32 hex>" */
};

struct mc_rec_alias {
    struct mc_rec h;
    /* A struct mc_rec_version * (a plain alias), or a struct mc_split *
     * tagged with bit 0 (a weighted one); moved by one atomic store. */
    uint64_t target;
    uint64_t moved_ns;
    char strings[];
};

/*
 * A weighted alias's targets: 2 to MC_SPLIT_MAX version records and their
 * weights (percent, summing to 100), immutable once installed (a change of
 * targets or weights installs a new split with one store of the alias's
 * target word, and retires the old one). Target i takes the 32-bit draws
 * below cum[i] not taken by an earlier one; the last takes the rest (its
 * cum[] and those of unused targets are UINT32_MAX).
 */
#define MC_SPLIT_MAGIC 0x54494c50u /* "PLIT" */
#define MC_SPLIT_MAX   4u

struct mc_split {
    uint32_t magic;
    uint32_t n;
    uint32_t cum[MC_SPLIT_MAX];
    uint8_t weight[MC_SPLIT_MAX];
    uint32_t alloc_size;
    uint64_t recs[MC_SPLIT_MAX]; /* struct mc_rec_version * */
};

static inline struct mc_split *mc_target_split(uint64_t target)
{
    return (target & 1) ? (struct mc_split *)(uintptr_t)(target & ~(uint64_t)1) : NULL;
}

/* The version records a target word names (one for a plain alias); returns how many. */
static inline unsigned mc_target_versions(uint64_t target, struct mc_rec_version **out)
{
    struct mc_split *s = mc_target_split(target);

    if (!s) {
        out[0] = (struct mc_rec_version *)(uintptr_t)target;
        return target ? 1 : 0;
    }
    for (unsigned i = 0; i < s->n; i++)
        out[i] = (struct mc_rec_version *)(uintptr_t)s->recs[i];
    return s->n;
}

/* The target a 32-bit draw picks (a draw per get, or a hash of the request's key). */
static inline struct mc_rec_version *mc_split_pick(const struct mc_split *s, uint32_t draw)
{
    /* Branch-free (a random draw would mispredict a loop's exit): unused
     * thresholds are UINT32_MAX, and the last target takes what is left. */
    uint64_t r = s->recs[0];

    /* Selects, not an indexed load: every word comes from the split's one
     * line at once, so the pick adds no load that waits on another. Unused
     * and last thresholds are UINT32_MAX, and an unused target is never
     * selected: a draw of UINT32_MAX stops at the last used one. */
    r = draw >= s->cum[0] && s->n > 1 ? s->recs[1] : r;
    r = draw >= s->cum[1] && s->n > 2 ? s->recs[2] : r;
    r = draw >= s->cum[2] && s->n > 3 ? s->recs[3] : r;
    return (struct mc_rec_version *)(uintptr_t)r;
}

struct mc_rec_model {
    struct mc_rec h;
    uint64_t versions; /* struct mc_verlist *; replaced by one atomic store */
    char strings[];
};

/*
 * A model's versions, immutable once installed (copy-on-write). What a
 * reader needs beyond the list is computed by the writer when it installs
 * one (verlist_install(), index/table.c): `latest`, and a generation no
 * other list of this arena has had or will have, so a reader can remember
 * what a range resolved to in this list (index/resolve.c).
 */
struct mc_verlist {
    uint32_t magic;
    uint32_t count;
    uint64_t alloc_size;
    uint64_t gen;    /* unique in the arena's lifetime, never 0 (mc_table.verlist_gen) */
    uint64_t latest; /* struct mc_rec_version *: highest without a prerelease, 0 if none */
    uint64_t recs[]; /* struct mc_rec_version *, highest precedence first */
};

static inline struct mc_rec_vcold *mc_rec_cold(const struct mc_rec_version *v)
{
    return (struct mc_rec_vcold *)((char *)v + v->h.cold_off);
}

static inline const char *mc_rec_key(const struct mc_rec *r)
{
    return (const char *)r + r->key_off;
}

static inline const char *mc_rec_version_name(const struct mc_rec_version *v)
{
    return (const char *)v + mc_rec_cold(v)->name_off;
}

static inline const char *mc_rec_version_str(const struct mc_rec_version *v)
{
    return (const char *)v + mc_rec_cold(v)->version_off;
}

static inline const char *mc_rec_version_meta(const struct mc_rec_version *v)
{
    return (const char *)v + mc_rec_cold(v)->meta_off;
}

const char *mc_format_name(uint32_t format);

#endif
