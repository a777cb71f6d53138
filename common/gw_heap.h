/* SPDX-License-Identifier: MIT */
/* gw_heap.h - the one binary min-heap of the code base: timer deadlines for
 * the scheduler and the frontend's retransmissions, events for the mesh
 * simulator.
 *
 * Items carry a deadline and the owner's payload: (id, gen) for timers,
 * where the owner keeps a generation per id and ignores popped items whose
 * gen no longer matches, so cancelling or re-arming a timer never searches
 * the heap (lazy deletion); or (id = kind, p = object) for the simulator's
 * events. Equal deadlines pop in push order (a per-heap sequence number), so
 * a seeded simulator run replays and timers armed together fire in order.
 *
 * Bounded: a heap made by gw_heap_init() holds `cap` items and never
 * allocates again (GW_EFULL when full: the owner compacts or refuses); one
 * made by gw_heap_init_growing() doubles up to `max` items, and
 * gw_heap_prune() gives back what it no longer needs. Kept here
 * rather than taken from a library: it is ~80 lines, and no header library
 * in Debian has a bounded, allocation-free heap with stable ties. */
#ifndef GW_HEAP_H
#define GW_HEAP_H

#include "gw_defs.h"

#include <stdbool.h>

struct gw_heap_item {
    uint64_t deadline;
    uint64_t seq; /* set by push: breaks ties, first in first out */
    void *p;      /* the owner's object, or NULL */
    uint32_t id;  /* the owner's slot (timers) or event kind */
    uint32_t gen; /* the slot's generation when pushed (timers) */
};

struct gw_heap {
    struct gw_heap_item *v;
    uint32_t n, cap, max;
    uint32_t min; /* the first size: a prune shrinks a growing heap no lower */
    uint64_t seq;
};

/* cap items, fixed. 0 or -ENOMEM. */
int gw_heap_init(struct gw_heap *h, uint32_t cap) GW_NODISCARD;
/* cap items at first, doubling up to max. 0 or -ENOMEM. */
int gw_heap_init_growing(struct gw_heap *h, uint32_t cap, uint32_t max) GW_NODISCARD;
void gw_heap_deinit(struct gw_heap *h);
/* GW_EFULL when full and not allowed to grow, -ENOMEM when growing failed. */
int gw_heap_push(struct gw_heap *h, uint64_t deadline, uint32_t id, uint32_t gen) GW_NODISCARD;
int gw_heap_push_ptr(struct gw_heap *h, uint64_t deadline, uint32_t kind, void *p) GW_NODISCARD;
bool gw_heap_peek(const struct gw_heap *h, struct gw_heap_item *top);
bool gw_heap_pop(struct gw_heap *h, struct gw_heap_item *top);
/* Drops every item keep(item, ctx) refuses (timers whose owner knows them
 * cancelled: lazy deletion leaves them until their deadline), in O(n);
 * the rest keep their order, ties included. A growing heap then less than
 * a quarter full shrinks to twice what is left, not below its first size
 * (a failed realloc keeps the larger array). Returns the items dropped. */
uint32_t gw_heap_prune(struct gw_heap *h, bool (*keep)(const struct gw_heap_item *it, void *ctx),
                       void *ctx);
/* Pops the earliest item if its deadline is <= now. */
bool gw_heap_pop_due(struct gw_heap *h, uint64_t now, struct gw_heap_item *top);
/* The earliest deadline, or UINT64_MAX when empty. */
static inline uint64_t gw_heap_next(const struct gw_heap *h)
{
    return h->n ? h->v[0].deadline : UINT64_MAX;
}

/* RFC 7252 4.2: the first timeout is random in [base, base * 1.5]; r is a
 * uniform random 32-bit value so tests can inject it. */
static inline uint64_t gw_backoff_initial(uint64_t base_ms, uint32_t r)
{
    return base_ms + (base_ms / 2) * (uint64_t)r / UINT32_MAX;
}

#endif
