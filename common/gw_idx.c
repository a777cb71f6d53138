/* SPDX-License-Identifier: MIT */
/* gw_idx.c - the index of 4-byte record numbers over the owner's keys
 * (see gw_idx.h). */
#include "gw_idx.h"

#include <errno.h>
#include <stdlib.h>

/* gw_map's mixing step (gw_map.c home_of), so both spread keys alike. */
static inline uint32_t home_of(uint32_t mask, uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k & mask;
}

/* Slots for n records at a load of at most 3/4 (GW_IDX_LOAD_*). */
static int alloc_slots(struct gw_idx *x, uint32_t n)
{
    uint32_t s = 16;
    while ((uint64_t)s * GW_IDX_LOAD_NUM < (uint64_t)n * GW_IDX_LOAD_DEN && s < (1u << 31))
        s <<= 1;
    x->slot = calloc(s, sizeof(*x->slot));
    x->mask = s - 1;
    x->n = 0;
    return x->slot ? 0 : -ENOMEM;
}

int gw_idx_init(struct gw_idx *x, uint32_t n)
{
    return alloc_slots(x, n);
}

void gw_idx_deinit(struct gw_idx *x)
{
    free(x->slot);
    x->slot = NULL;
    x->mask = 0;
    x->n = 0;
}

/* Puts record v into the first empty slot of its key's run. */
static void place(struct gw_idx *x, const uint64_t *keys, uint32_t v)
{
    uint32_t i = home_of(x->mask, keys[v]);
    while (x->slot[i])
        i = (i + 1) & x->mask;
    x->slot[i] = v + 1;
}

int gw_idx_add(struct gw_idx *x, const uint64_t *keys, uint32_t v)
{
    if (v >= UINT32_MAX - 1)
        return -EINVAL;
    if ((uint64_t)(x->n + 1) * GW_IDX_LOAD_DEN > ((uint64_t)x->mask + 1) * GW_IDX_LOAD_NUM) {
        struct gw_idx g;
        /* Double: alloc_slots for all the slots we have gives twice as many. */
        if (x->mask >= (1u << 31) - 1 || alloc_slots(&g, x->mask + 1) != 0)
            return -ENOMEM;
        for (uint32_t i = 0; i <= x->mask; i++)
            if (x->slot[i])
                place(&g, keys, x->slot[i] - 1);
        g.n = x->n;
        free(x->slot);
        *x = g;
    }
    place(x, keys, v);
    x->n++;
    return 0;
}

/* From slot i on, the first record of the run whose key is k. */
static uint32_t scan(const struct gw_idx *x, const uint64_t *keys, uint64_t k, uint32_t i,
                     uint32_t *pos)
{
    for (uint32_t n = 0; x->slot[i] && n <= x->mask; i = (i + 1) & x->mask, n++)
        if (keys[x->slot[i] - 1] == k) {
            *pos = i;
            return x->slot[i] - 1;
        }
    return GW_IDX_END;
}

uint32_t gw_idx_first(const struct gw_idx *x, const uint64_t *keys, uint64_t k, uint32_t *pos)
{
    if (!x->slot)
        return GW_IDX_END;
    return scan(x, keys, k, home_of(x->mask, k), pos);
}

uint32_t gw_idx_more(const struct gw_idx *x, const uint64_t *keys, uint64_t k, uint32_t *pos)
{
    return scan(x, keys, k, (*pos + 1) & x->mask, pos);
}

bool gw_idx_del(struct gw_idx *x, const uint64_t *keys, uint32_t v)
{
    if (!x->slot)
        return false;
    uint32_t mask = x->mask, i = home_of(mask, keys[v]);
    for (uint32_t n = 0; x->slot[i] != v + 1; i = (i + 1) & mask, n++)
        if (!x->slot[i] || n > mask)
            return false;
    /* Backward shift, as gw_map_del_at: a later record of the run whose
     * home is not cyclically in (hole, j] moves into the hole, so no
     * look-up meets an empty slot before its record. */
    uint32_t hole = i;
    for (uint32_t j = (hole + 1) & mask; x->slot[j]; j = (j + 1) & mask) {
        uint32_t home = home_of(mask, keys[x->slot[j] - 1]);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            x->slot[hole] = x->slot[j];
            hole = j;
        }
    }
    x->slot[hole] = 0;
    x->n--;
    return true;
}
