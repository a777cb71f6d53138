/* SPDX-License-Identifier: MIT */
/* gw_heap.c - the binary min-heap of deadlines, ties in push order (see gw_heap.h). */
#include "gw_heap.h"
#include "gw_error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int gw_heap_init_growing(struct gw_heap *h, uint32_t cap, uint32_t max)
{
    memset(h, 0, sizeof(*h));
    h->v = calloc(cap ? cap : 1, sizeof(*h->v));
    h->cap = cap ? cap : 1;
    h->max = GW_MAX(max, h->cap);
    h->min = h->cap;
    return h->v ? 0 : -ENOMEM;
}

int gw_heap_init(struct gw_heap *h, uint32_t cap)
{
    int rc = gw_heap_init_growing(h, cap, cap);
    h->cap = h->max = h->min = cap; /* 0 holds nothing */
    return rc;
}

void gw_heap_deinit(struct gw_heap *h)
{
    free(h->v);
    memset(h, 0, sizeof(*h));
}

static inline bool before(const struct gw_heap_item *a, const struct gw_heap_item *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static int grow(struct gw_heap *h)
{
    if (h->cap >= h->max)
        return GW_EFULL;
    uint32_t nc = h->cap > h->max / 2 ? h->max : h->cap * 2;
    struct gw_heap_item *nv = realloc(h->v, (size_t)nc * sizeof(*nv));
    if (!nv)
        return -ENOMEM;
    h->v = nv;
    h->cap = nc;
    return 0;
}

static int push(struct gw_heap *h, struct gw_heap_item it)
{
    if (h->n >= h->cap) {
        int rc = grow(h);
        if (rc)
            return rc;
    }
    it.seq = h->seq++;
    uint32_t i = h->n++;
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!before(&it, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = it;
    return 0;
}

int gw_heap_push(struct gw_heap *h, uint64_t deadline, uint32_t id, uint32_t gen)
{
    return push(h, (struct gw_heap_item){ .deadline = deadline, .id = id, .gen = gen });
}

int gw_heap_push_ptr(struct gw_heap *h, uint64_t deadline, uint32_t kind, void *p)
{
    return push(h, (struct gw_heap_item){ .deadline = deadline, .id = kind, .p = p });
}

bool gw_heap_peek(const struct gw_heap *h, struct gw_heap_item *top)
{
    if (h->n == 0)
        return false;
    *top = h->v[0];
    return true;
}

/* Places it at slot i or below, moving earlier children up. */
static void sift_down(struct gw_heap *h, uint32_t i, struct gw_heap_item it)
{
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= h->n)
            break;
        if (c + 1 < h->n && before(&h->v[c + 1], &h->v[c]))
            c++;
        if (!before(&h->v[c], &it))
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    h->v[i] = it;
}

bool gw_heap_pop(struct gw_heap *h, struct gw_heap_item *top)
{
    if (h->n == 0)
        return false;
    *top = h->v[0];
    struct gw_heap_item last = h->v[--h->n];
    if (h->n)
        sift_down(h, 0, last);
    return true;
}

uint32_t gw_heap_prune(struct gw_heap *h, bool (*keep)(const struct gw_heap_item *it, void *ctx),
                       void *ctx)
{
    uint32_t kept = 0, was = h->n;
    for (uint32_t i = 0; i < h->n; i++)
        if (keep(&h->v[i], ctx))
            h->v[kept++] = h->v[i];
    h->n = kept;
    /* Floyd's construction; the items keep their seq, so ties still pop in
     * push order. */
    for (uint32_t i = kept / 2; i-- > 0;)
        sift_down(h, i, h->v[i]);
    if (h->cap > h->min && (uint64_t)kept * 4 < h->cap) {
        uint32_t nc = GW_MAX(h->min, kept * 2);
        struct gw_heap_item *nv = realloc(h->v, (size_t)nc * sizeof(*nv));
        if (nv) {
            h->v = nv;
            h->cap = nc;
        }
    }
    return was - kept;
}

bool gw_heap_pop_due(struct gw_heap *h, uint64_t now, struct gw_heap_item *top)
{
    if (h->n == 0 || h->v[0].deadline > now)
        return false;
    return gw_heap_pop(h, top);
}
