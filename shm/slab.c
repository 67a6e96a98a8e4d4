/*
 * slab.c - the index region's allocator: slab chunks for small objects,
 * extents for large ones (see slab.h).
 */
#include "shm/slab.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "shm/arena.h"
#include "shm/atomic.h"
#include "common/err.h"

#define CHUNK_HDR sizeof(struct mc_slab_chunk)

_Static_assert(sizeof(struct mc_slab_chunk) == 64, "chunk header is one cache line");

static uint32_t size_class(size_t size)
{
    uint32_t cls = 0;
    size_t s = MC_SLAB_MIN;

    while (s < size) {
        s <<= 1;
        cls++;
    }
    return cls;
}

static uint32_t class_size(uint32_t cls)
{
    return MC_SLAB_MIN << cls;
}

static struct mc_slab_chunk *chunk_at(const struct mc_arena *a, uint64_t off)
{
    return (struct mc_slab_chunk *)(a->base + off);
}

static void partial_push(struct mc_arena *a, uint32_t cls, uint64_t coff)
{
    struct mc_slab *sl = &a->hdr->slab;
    struct mc_slab_chunk *c = chunk_at(a, coff);

    c->prev = 0;
    c->next = sl->partial[cls];
    if (c->next)
        chunk_at(a, c->next)->prev = coff;
    sl->partial[cls] = coff;
}

static void partial_unlink(struct mc_arena *a, uint32_t cls, uint64_t coff)
{
    struct mc_slab *sl = &a->hdr->slab;
    struct mc_slab_chunk *c = chunk_at(a, coff);

    if (c->prev)
        chunk_at(a, c->prev)->next = c->next;
    else
        sl->partial[cls] = c->next;
    if (c->next)
        chunk_at(a, c->next)->prev = c->prev;
    c->next = c->prev = 0;
}

/* Lay out a chunk's header and free list given which objects are live. */
static void chunk_format(struct mc_arena *a, uint64_t coff, uint32_t cls, const uint8_t *live)
{
    struct mc_slab_chunk *c = chunk_at(a, coff);
    uint32_t osz = class_size(cls);
    uint32_t nobj = (MC_SLAB_CHUNK - CHUNK_HDR) / osz;
    uint64_t head = 0;

    c->magic = MC_SLAB_MAGIC;
    c->cls = cls;
    c->nobj = nobj;
    c->nfree = 0;
    c->next = c->prev = 0;
    for (uint32_t i = nobj; i-- > 0;) {
        uint64_t ooff = coff + CHUNK_HDR + (uint64_t)i * osz;

        if (live && live[i])
            continue;
        *(uint64_t *)(a->base + ooff) = head;
        head = ooff;
        c->nfree++;
    }
    c->free_head = head;
}

int mc_index_alloc(struct mc_arena *a, size_t size, uint64_t *off)
{
    struct mc_slab *sl = &a->hdr->slab;
    struct mc_slab_chunk *c;
    uint64_t coff, ooff;
    uint32_t cls;
    int rc;

    if (size == 0)
        size = 1;
    if (size > MC_SLAB_MAX) {
        rc = mc_extent_alloc(a, &a->hdr->index_ext, size, 64, off);
        if (rc == 0)
            memset(a->base + *off, 0, size);
        else
            mc_err_prefix(rc, "index region");
        return rc;
    }
    cls = size_class(size);
    coff = sl->partial[cls];
    if (!coff) {
        rc = mc_extent_alloc(a, &a->hdr->index_ext, MC_SLAB_CHUNK, MC_SLAB_CHUNK, &coff);
        if (rc)
            return mc_err_prefix(rc, "index region");
        chunk_format(a, coff, cls, NULL);
        partial_push(a, cls, coff);
        sl->chunks++;
    }
    c = chunk_at(a, coff);
    ooff = c->free_head;
    c->free_head = *(uint64_t *)(a->base + ooff);
    c->nfree--;
    if (c->nfree == 0)
        partial_unlink(a, cls, coff);
    memset(a->base + ooff, 0, class_size(cls));
    sl->objects++;
    mc_store_relaxed(&sl->bytes, sl->bytes + class_size(cls));
    *off = ooff;
    return 0;
}

void mc_index_free(struct mc_arena *a, uint64_t off, size_t size)
{
    struct mc_slab *sl = &a->hdr->slab;
    uint64_t coff;
    struct mc_slab_chunk *c;
    uint32_t cls;

    if (size == 0)
        size = 1;
    if (size > MC_SLAB_MAX) {
        mc_extent_free(a, &a->hdr->index_ext, off, size);
        return;
    }
    cls = size_class(size);
    if (mc_poison_freed)
        memset(a->base + off, 0xdb, class_size(cls));
    coff = off & ~(uint64_t)(MC_SLAB_CHUNK - 1);
    c = chunk_at(a, coff);
    *(uint64_t *)(a->base + off) = c->free_head;
    c->free_head = off;
    c->nfree++;
    sl->objects--;
    mc_store_relaxed(&sl->bytes, sl->bytes - class_size(cls));
    if (c->nfree == 1)
        partial_push(a, cls, coff);
    if (c->nfree == c->nobj) {
        partial_unlink(a, cls, coff);
        c->magic = 0;
        mc_extent_free(a, &a->hdr->index_ext, coff, MC_SLAB_CHUNK);
        sl->chunks--;
    }
}

uint64_t mc_index_used(const struct mc_arena *a)
{
    return mc_load_relaxed(&a->hdr->index_ext.used);
}

static int span_cmp(const void *x, const void *y)
{
    const struct mc_extent_span *p = x, *q = y;

    return p->off < q->off ? -1 : p->off > q->off;
}

int mc_index_rebuild(struct mc_arena *a, struct mc_extent_span *live, size_t n)
{
    struct mc_slab *sl = &a->hdr->slab;
    struct mc_extent_span *ext;
    uint8_t live_map[MC_SLAB_CHUNK / MC_SLAB_MIN];
    size_t next = 0, i = 0;
    int rc;

    ext = malloc(sizeof(*ext) * (n + 1));
    if (!ext)
        return mc_err(MC_ENOMEM, "rebuilding the index allocator: out of memory");
    if (n > 1)
        qsort(live, n, sizeof(*live), span_cmp);
    memset(sl, 0, sizeof(*sl));
    while (i < n) {
        if (live[i].len > MC_SLAB_MAX) {
            ext[next++] = live[i++];
            continue;
        }
        /* All small objects of one chunk are consecutive after sorting. */
        uint64_t coff = live[i].off & ~(uint64_t)(MC_SLAB_CHUNK - 1);
        uint32_t cls = size_class(live[i].len);
        uint32_t osz = class_size(cls);

        memset(live_map, 0, sizeof(live_map));
        for (; i < n && live[i].len <= MC_SLAB_MAX &&
               (live[i].off & ~(uint64_t)(MC_SLAB_CHUNK - 1)) == coff;
             i++) {
            uint64_t rel = live[i].off - coff;

            if (size_class(live[i].len) != cls || rel < CHUNK_HDR || (rel - CHUNK_HDR) % osz) {
                free(ext);
                return mc_err(MC_ECORRUPT,
                              "index object at offset %llu (%llu bytes) does not fit the slab "
                              "chunk at %llu",
                              (unsigned long long)live[i].off, (unsigned long long)live[i].len,
                              (unsigned long long)coff);
            }
            live_map[(rel - CHUNK_HDR) / osz] = 1;
            sl->objects++;
            sl->bytes += osz;
        }
        chunk_format(a, coff, cls, live_map);
        if (chunk_at(a, coff)->nfree)
            partial_push(a, cls, coff);
        sl->chunks++;
        ext[next].off = coff;
        ext[next].len = MC_SLAB_CHUNK;
        next++;
    }
    rc = mc_extent_rebuild(a, &a->hdr->index_ext, ext, next);
    free(ext);
    return rc;
}
