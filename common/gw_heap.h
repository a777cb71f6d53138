/* SPDX-License-Identifier: MIT */
/* gw_heap.h - a binary min-heap of timer deadlines with lazy deletion.
 *
 * Items carry (deadline, id, gen); the owner keeps a generation per id and
 * ignores popped items whose gen no longer matches, so cancelling or
 * re-arming a timer never searches the heap. Bounded by `cap`. */
#ifndef GW_HEAP_H
#define GW_HEAP_H

#include "gw_defs.h"

#include <stdbool.h>

struct gw_heap_item {
    uint64_t deadline;
    uint32_t id;
    uint32_t gen;
};
struct gw_heap {
    struct gw_heap_item *v;
    uint32_t n, cap;
};

int gw_heap_init(struct gw_heap *h, uint32_t cap) GW_NODISCARD;
void gw_heap_deinit(struct gw_heap *h);
/* GW_EFULL when full (the caller compacts or refuses). */
int gw_heap_push(struct gw_heap *h, uint64_t deadline, uint32_t id, uint32_t gen) GW_NODISCARD;
bool gw_heap_peek(const struct gw_heap *h, struct gw_heap_item *top);
bool gw_heap_pop(struct gw_heap *h, struct gw_heap_item *top);

/* RFC 7252 4.2: the first timeout is random in [base, base * 1.5]; r is a
 * uniform random 32-bit value so tests can inject it. */
static inline uint64_t gw_backoff_initial(uint64_t base_ms, uint32_t r)
{
    return base_ms + (base_ms / 2) * (uint64_t)r / UINT32_MAX;
}

#endif
