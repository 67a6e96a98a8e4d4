/*
 * reg_json.h - manifest lines read into a compact, read-only tree (internal
 * to registry/).
 *
 * Replay reads tens of thousands of lines; building jansson objects for each
 * (a malloc per value, a hash table per object) was most of its cost. So a
 * line is read into a struct mc_jval tree that lives in an arena reused from
 * line to line, by a small reader that accepts only the plain subset of JSON
 * that jansson itself writes (compact, no \u escapes, at most 8 levels deep,
 * no duplicate keys) and declines everything else. A declined line goes to
 * jansson, which stays the reference: it either accepts the line, whose
 * json_t is then copied into the same kind of tree, or refuses it with its
 * own message. So whatever the reader accepts, jansson accepts too with the
 * same values (tests/registry/test_manifest_json.c checks that on mutated lines), and
 * what it does not know it never guesses at.
 *
 * Writing stays with jansson (mc_manifest_encode()).
 */
#ifndef MCACHE_REGISTRY_REG_JSON_H
#define MCACHE_REGISTRY_REG_JSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum mc_jtype { MC_JNULL, MC_JFALSE, MC_JTRUE, MC_JINT, MC_JREAL, MC_JSTR, MC_JOBJ, MC_JARR };

struct mc_jmember;

/*
 * A value. Strings are NUL-terminated UTF-8 without NUL inside (jansson
 * refuses \u0000); objects keep their members in the order of the line.
 */
struct mc_jval {
    uint8_t type;  /* enum mc_jtype */
    uint16_t hint; /* objects: where the next lookup starts (see mc_jval_get()) */
    uint32_t n;    /* MC_JSTR: bytes; MC_JOBJ: members; MC_JARR: items */
    union {
        int64_t i;
        double d;
        const char *s;
        struct mc_jmember *m;
        struct mc_jval *a;
    } u;
};

struct mc_jmember {
    const char *key;
    uint32_t klen;
    struct mc_jval v;
};

/* Bump allocation in chunks; reset keeps the chunks for the next line. */
struct mc_jarena {
    struct mc_jchunk *first, *cur;
};

void mc_jarena_reset(struct mc_jarena *a);
void mc_jarena_free(struct mc_jarena *a);

/* The reader: its arena and the stacks of objects and arrays being read. */
struct mc_jreader {
    struct mc_jarena arena;
    struct mc_jmember *ms;
    size_t mtop, mcap;
    struct mc_jval *vs;
    size_t vtop, vcap;
    bool jansson_only;   /* mc_jline_jansson_only when the reader was made */
    uint64_t fast, slow; /* lines read by the fast reader / by jansson */
};

void mc_jreader_init(struct mc_jreader *r);
void mc_jreader_fini(struct mc_jreader *r);

/*
 * Read one line (without its '\n') that must hold a JSON object. Returns 0
 * with *out (valid until the next call on r), MC_ENOMEM, or MC_ECORRUPT
 * with the reason in why ("not a JSON object (...)").
 */
int mc_jline_read(struct mc_jreader *r, const char *line, size_t n, const struct mc_jval **out,
                  char *why, size_t wsz);

/*
 * The fast reader alone (for tests): 0 with *out, 1 if it declines the line
 * (jansson decides), MC_ENOMEM.
 */
int mc_jline_fast(struct mc_jreader *r, const char *line, size_t n, const struct mc_jval **out);

/*
 * For tests and benchmarks. Set mc_jline_jansson_only before opening a
 * registry to send every line to jansson (the replay as it was before the
 * fast reader). mc_jline_counts() adds up, over every reader finished so
 * far, the lines the fast reader took and those that went to jansson.
 */
extern bool mc_jline_jansson_only;
void mc_jline_counts(uint64_t *fast, uint64_t *slow);

/* Copy a jansson value into a tree in arena a; NULL if out of memory. */
const struct mc_jval *mc_jval_from_json(struct mc_jarena *a, json_t *j);

/* A jansson value of a tree (new reference); NULL if out of memory. */
json_t *mc_jval_to_json(const struct mc_jval *v);

/*
 * The member key (klen bytes) of object o, or NULL (also if o is not an
 * object). Starts
 * where the previous lookup in o found its key, so reading the members in
 * the order they were written costs one comparison each.
 */
static inline const struct mc_jval *mc_jval_getn(const struct mc_jval *o, const char *key,
                                                 size_t klen)
{
    uint32_t n, i;

    if (o == NULL || o->type != MC_JOBJ || o->n == 0)
        return NULL;
    n = o->n;
    i = o->hint < n ? o->hint : 0;
    for (uint32_t k = 0; k < n; k++) {
        const struct mc_jmember *m = &o->u.m[i];

        if (m->klen == klen && memcmp(m->key, key, klen) == 0) {
            /* the tree is read-only to its users; the hint is only a cache */
            ((struct mc_jval *)o)->hint = (uint16_t)(i + 1 < UINT16_MAX ? i + 1 : 0);
            return &m->v;
        }
        if (++i == n)
            i = 0;
    }
    return NULL;
}

static inline const struct mc_jval *mc_jval_get(const struct mc_jval *o, const char *key)
{
    return mc_jval_getn(o, key, strlen(key));
}

static inline bool mc_jval_is_num(const struct mc_jval *v)
{
    return v && (v->type == MC_JINT || v->type == MC_JREAL);
}

static inline double mc_jval_num(const struct mc_jval *v)
{
    return v->type == MC_JINT ? (double)v->u.i : v->u.d;
}

#endif
