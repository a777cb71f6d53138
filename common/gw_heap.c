/* SPDX-License-Identifier: MIT */
/* gw_heap.c - the binary min-heap of timer deadlines with lazy deletion (see gw_heap.h). */
#include "gw_heap.h"
#include "gw_error.h"

#include <errno.h>
#include <stdlib.h>

int gw_heap_init(struct gw_heap *h, uint32_t cap)
{
    h->v = calloc(cap ? cap : 1, sizeof(*h->v));
    h->n = 0;
    h->cap = cap;
    return h->v ? 0 : -ENOMEM;
}

void gw_heap_deinit(struct gw_heap *h)
{
    free(h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}

int gw_heap_push(struct gw_heap *h, uint64_t deadline, uint32_t id, uint32_t gen)
{
    if (h->n >= h->cap)
        return GW_EFULL;
    uint32_t i = h->n++;
    struct gw_heap_item it = { deadline, id, gen };
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (h->v[p].deadline <= deadline)
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = it;
    return 0;
}

bool gw_heap_peek(const struct gw_heap *h, struct gw_heap_item *top)
{
    if (h->n == 0)
        return false;
    *top = h->v[0];
    return true;
}

bool gw_heap_pop(struct gw_heap *h, struct gw_heap_item *top)
{
    if (h->n == 0)
        return false;
    *top = h->v[0];
    struct gw_heap_item last = h->v[--h->n];
    uint32_t i = 0;
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && h->v[c + 1].deadline < h->v[c].deadline)
            c++;
        if (last.deadline <= h->v[c].deadline)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n)
        h->v[i] = last;
    return true;
}
