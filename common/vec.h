/*
 * vec.h - growable arrays: the one grow-by-doubling helper.
 *
 * An array is three plain fields the caller keeps (items, count, capacity);
 * mc_vec_reserve() makes room and nothing else, so the array stays an
 * ordinary pointer the caller indexes, sorts and frees:
 *
 *     struct thing *v = NULL;
 *     size_t n = 0, cap = 0;
 *     if (MC_VEC_RESERVE(v, cap, n + 1, 16))
 *         return mc_err(MC_ENOMEM, "out of memory listing things");
 *     v[n++] = t;
 *     ...
 *     free(v);
 *
 * The first allocation holds `first` items; each growth doubles it until
 * `need` fit. On failure nothing changes (the array and its capacity stay as
 * they were) and MC_ENOMEM is returned without a message: the caller knows
 * what it was doing and says so. Not thread-safe; no other allocation.
 */
#ifndef MCACHE_COMMON_VEC_H
#define MCACHE_COMMON_VEC_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcache.h"

/*
 * Room for need items of each bytes in the array *itemsp points to (a
 * `T **`, taken as void * so that any element type passes without a cast),
 * whose capacity is *cap items. 0 or MC_ENOMEM.
 */
static inline int mc_vec_reserve(void *itemsp, size_t *cap, size_t need, size_t each, size_t first)
{
    size_t c = *cap ? *cap : first ? first : 1;
    void *items, *p;

    if (need <= *cap)
        return 0;
    while (c < need) {
        if (c > SIZE_MAX / 2 / each)
            return MC_ENOMEM;
        c *= 2;
    }
    memcpy(&items, itemsp, sizeof(items));
    p = realloc(items, c * each);
    if (p == NULL)
        return MC_ENOMEM;
    memcpy(itemsp, &p, sizeof(p));
    *cap = c;
    return 0;
}

/* mc_vec_reserve() for an array variable v and its capacity variable cap. */
#define MC_VEC_RESERVE(v, cap, need, first)                                                        \
    mc_vec_reserve(&(v), &(cap), (need), sizeof(*(v)), (first))

#endif
