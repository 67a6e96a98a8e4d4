/*
 * table_int.h - what the table's writer files share (internal to index/):
 * the header ck's allocations carry, and the writer's steps the crash
 * repair reuses.
 *
 *   lookup.c         the reader half: hashing keys, probing the ck_ht
 *                    (compiled into libmcache)
 *   table.c          the writer: ck's allocation hooks, create and adopt,
 *                    publish and remove versions, move and remove aliases
 *   table_rebuild.c  after a loader crash: what the table reaches, the
 *                    allocators rebuilt from it, the pointers mended; and
 *                    the check of the table against the allocators
 */
#ifndef MCACHE_INDEX_TABLE_INT_H
#define MCACHE_INDEX_TABLE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "index/table.h"

/*
 * Every block ck allocates through the writer's hooks starts with this
 * header, CK_ALLOC_HDR bytes before the pointer ck gets, so that a free and
 * the crash rebuild know the block's size from the pointer alone.
 */
#define CK_ALLOC_MAGIC 0x4c41434bu /* "KCAL" */
#define CK_ALLOC_HDR   64u

struct ck_alloc_hdr {
    uint32_t magic;
    uint32_t pad;
    uint64_t size; /* total, header included */
};

/* ---- table.c: the writer's steps ---- */

/*
 * Around every change to what a key maps to: the table's seq becomes odd
 * (then a full fence, so it is visible before any store of the change) and,
 * after, the next even value (release). A change left open by a crash
 * leaves seq odd, which no reader's memo ever matches, until the next
 * change ends.
 */
void table_change_begin(struct mc_writer *w);
void table_change_end(struct mc_writer *w);

/* Remove r's key from the table (r itself is not freed). */
void table_unset(struct mc_writer *w, struct mc_rec *r);

/* Hand r to reclamation: freed once no reader can still see it. */
void rec_retire(struct mc_writer *w, struct mc_rec *r);

/* Retire what an alias's target word owns (a weighted alias's split), if anything. */
void target_retire(struct mc_writer *w, uint64_t target);

/* The model record for name; created (empty) if absent and create is set. */
int model_get(struct mc_writer *w, const char *name, bool create, struct mc_rec_model **out);

/* A new, empty version list with room for `room` records (not yet any model's). */
int verlist_new(struct mc_writer *w, size_t room, struct mc_verlist **out);

/* Make nl model m's version list (one atomic store) and retire the old list. */
void verlist_install(struct mc_writer *w, struct mc_rec_model *m, struct mc_verlist *nl);

/* Semantic-version precedence of two version records (strcmp if either does not parse). */
int version_cmp(const struct mc_rec_version *a, const struct mc_rec_version *b);

#endif
