/*
 * reclaim.c - deferred reclamation (see reclaim.h for the protocol).
 */
#include "shm/reclaim.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/clock.h"
#include "common/err.h"
#include "common/vec.h"
#include "shm/arena.h"
#include "shm/fence.h"
#include "shm/readers.h"
#include "shm/slab.h"

int mc_reclaim_init(struct mc_reclaim *rc, struct mc_arena *a, struct mc_readers *r,
                    void (*free_record)(void *, uint64_t), void *ctx)
{
    memset(rc, 0, sizeof(*rc));
    rc->arena = a;
    rc->readers = r;
    rc->free_record = free_record;
    rc->ctx = ctx;
    rc->live = calloc(r->nslots, 1);
    rc->seen_pin = calloc(r->nslots, sizeof(uint64_t));
    rc->seen_since = calloc(r->nslots, sizeof(uint64_t));
    rc->held_cap = (size_t)r->nslots * MC_SLOT_HOLDS;
    rc->held = calloc(rc->held_cap, sizeof(uint64_t));
    if (!rc->live || !rc->seen_pin || !rc->seen_since || !rc->held) {
        mc_reclaim_destroy(rc);
        return mc_err(MC_ENOMEM, "reclamation state: out of memory");
    }
    return 0;
}

void mc_reclaim_destroy(struct mc_reclaim *rc)
{
    free(rc->items);
    free(rc->live);
    free(rc->seen_pin);
    free(rc->seen_since);
    free(rc->held);
    memset(rc, 0, sizeof(*rc));
}

int mc_retire(struct mc_reclaim *rc, enum mc_retire_kind kind, uint64_t off, uint64_t size)
{
    if (MC_VEC_RESERVE(rc->items, rc->cap, rc->n + 1, 64))
        return mc_err(MC_ENOMEM, "retiring arena memory: out of memory");
    rc->items[rc->n++] = (struct mc_retired){
        .epoch = mc_load_relaxed(&rc->arena->hdr->epoch),
        .off = off,
        .size = size,
        .kind = kind,
    };
    rc->retired_total++;
    rc->pending_bytes += size;
    return 0;
}

void mc_reclaim_advance(struct mc_reclaim *rc)
{
    uint64_t *ep = &rc->arena->hdr->epoch;

    /* The unlinks before this store are visible to any reader that reads the
     * new epoch (pairs with mc_fence_reader_pin()'s acquire load of it). */
    mc_store_release(ep, *ep + 1);
}

static int u64_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

    return a < b ? -1 : a > b;
}

/* Read every live slot: the smallest pin and the set of holds. */
static int scan(struct mc_reclaim *rc, uint64_t *min_pin)
{
    struct mc_readers *r = rc->readers;
    uint64_t now = mc_mono_ns();
    int nlive;

    /* The unlinks and the epoch store are visible to every reader before we
     * read any pin (pairs with mc_fence_reader_pin(), shm/fence.h). */
    nlive = mc_fence_loader_barrier(rc->arena->hdr);
    if (nlive)
        return nlive;
    nlive = mc_readers_live(r, rc->live);
    if (nlive < 0)
        return nlive;
    *min_pin = 0;
    rc->nheld = 0;
    for (uint32_t i = 0; i < r->nslots; i++) {
        struct mc_slot *s = &r->slots[i];
        uint64_t pin;

        if (!rc->live[i]) {
            rc->seen_pin[i] = 0;
            continue;
        }
        /* Pin before holds: a reader stores its hold before clearing its pin
         * (pairs with mc_fence_reader_unpin()'s release). */
        pin = mc_load_acquire(&s->pin);
        for (unsigned j = 0; j < MC_SLOT_HOLDS; j++) {
            /* Pairs with mc_release()'s release: a cleared hold is unread. */
            uint64_t h = mc_load_acquire(&s->held[j]);
            if (h && rc->nheld < rc->held_cap)
                rc->held[rc->nheld++] = h;
        }
        if (pin && (!*min_pin || pin < *min_pin))
            *min_pin = pin;
        if (pin != rc->seen_pin[i]) {
            rc->seen_pin[i] = pin;
            rc->seen_since[i] = now;
        }
    }
    if (rc->nheld > 1)
        qsort(rc->held, rc->nheld, sizeof(uint64_t), u64_cmp);
    return 0;
}

static int held(const struct mc_reclaim *rc, uint64_t off)
{
    return bsearch(&off, rc->held, rc->nheld, sizeof(uint64_t), u64_cmp) != NULL;
}

int mc_reclaim_scan(struct mc_reclaim *rc)
{
    uint64_t min_pin;

    return scan(rc, &min_pin);
}

int mc_reclaim_is_held(const struct mc_reclaim *rc, uint64_t rec_off)
{
    return held(rc, rec_off);
}

int mc_reclaim_poll(struct mc_reclaim *rc)
{
    uint64_t min_pin;
    size_t keep = 0;
    int freed = 0, err;

    if (rc->n == 0)
        return 0;
    err = scan(rc, &min_pin);
    if (err)
        return err;
    for (size_t i = 0; i < rc->n; i++) {
        struct mc_retired *it = &rc->items[i];

        if ((min_pin && min_pin <= it->epoch) ||
            (it->kind == MC_RETIRE_RECORD && held(rc, it->off))) {
            rc->items[keep++] = *it;
            continue;
        }
        switch (it->kind) {
        case MC_RETIRE_INDEX:
            mc_index_free(rc->arena, it->off, it->size);
            break;
        case MC_RETIRE_DATA:
            mc_extent_free(rc->arena, &rc->arena->hdr->data_ext, it->off, it->size);
            break;
        case MC_RETIRE_RECORD:
            rc->free_record(rc->ctx, it->off);
            break;
        }
        rc->pending_bytes -= it->size;
        rc->freed_total++;
        freed++;
    }
    rc->n = keep;
    return freed;
}

int mc_reclaim_drain(struct mc_reclaim *rc, int timeout_ms)
{
    uint64_t deadline = mc_mono_ns() + (uint64_t)timeout_ms * 1000000ull;

    for (;;) {
        int rv = mc_reclaim_poll(rc);

        if (rv < 0)
            return rv;
        if (rc->n == 0)
            return 0;
        if (timeout_ms >= 0 && mc_mono_ns() >= deadline)
            return mc_err(MC_EBUSY, "%zu retired items (%llu bytes) still held back by readers",
                          rc->n, (unsigned long long)rc->pending_bytes);
        nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
    }
}

size_t mc_reclaim_stalls(struct mc_reclaim *rc, uint64_t min_ns, struct mc_stall *out,
                         size_t max)
{
    uint64_t oldest = UINT64_MAX, now = mc_mono_ns();
    size_t n = 0;

    for (size_t i = 0; i < rc->n; i++)
        if (rc->items[i].epoch < oldest)
            oldest = rc->items[i].epoch;
    if (oldest == UINT64_MAX)
        return 0;
    for (uint32_t i = 0; i < rc->readers->nslots && n < max; i++) {
        if (!rc->live[i] || !rc->seen_pin[i] || rc->seen_pin[i] > oldest)
            continue;
        if (now - rc->seen_since[i] < min_ns)
            continue;
        out[n++] = (struct mc_stall){
            .slot = i,
            .pid = rc->readers->slots[i].pid,
            .pin = rc->seen_pin[i],
            .since_ns = rc->seen_since[i],
        };
    }
    return n;
}
