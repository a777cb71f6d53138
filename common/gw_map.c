/* SPDX-License-Identifier: MIT */
/* gw_map.c - the open-addressing table from 64-bit keys to 64-bit values
 * (see gw_map.h). */
#include "gw_map.h"
#include "gw_error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static inline uint64_t key_in(uint64_t k)
{
    return k ? k : GW_MAP_KEY0;
}

/* Ids (1, 2, 3 ...) and MACs differ in few bits: one multiply-xorshift
 * round (the murmur3 finalizer's first half) spreads them over the slots. */
static inline uint32_t home_of(const struct gw_map *m, uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k & m->mask;
}

uint32_t gw_map_home(const struct gw_map *m, uint64_t key)
{
    return home_of(m, key_in(key));
}

static uint32_t slots_for(uint32_t n)
{
    uint32_t s = 16;
    while (s / 2 < n && s < 2 * GW_MAP_MAX)
        s <<= 1;
    return s;
}

int gw_map_init(struct gw_map *m, uint32_t n, uint32_t max)
{
    memset(m, 0, sizeof(*m));
    n = GW_MIN(n, GW_MAP_MAX);
    max = GW_MIN(GW_MAX(max, n), GW_MAP_MAX);
    uint32_t s = slots_for(n);
    m->slot = calloc(s, sizeof(*m->slot));
    if (!m->slot)
        return -ENOMEM;
    m->mask = s - 1;
    m->max = max;
    return 0;
}

void gw_map_deinit(struct gw_map *m)
{
    free(m->slot);
    memset(m, 0, sizeof(*m));
}

void gw_map_clear(struct gw_map *m)
{
    if (m->slot)
        memset(m->slot, 0, sizeof(*m->slot) * ((size_t)m->mask + 1));
    m->n = 0;
}

/* The first empty slot of k's probe run (there is one: load <= 1/2). */
static uint32_t free_slot(const struct gw_map *m, uint64_t k)
{
    uint32_t i = home_of(m, k);
    while (m->slot[i].key)
        i = (i + 1) & m->mask;
    return i;
}

static int grow(struct gw_map *m)
{
    struct gw_map g = *m;
    uint32_t s = (m->mask + 1) * 2;
    g.slot = calloc(s, sizeof(*g.slot));
    if (!g.slot)
        return -ENOMEM;
    g.mask = s - 1;
    for (uint32_t i = 0; i <= m->mask; i++)
        if (m->slot[i].key)
            g.slot[free_slot(&g, m->slot[i].key)] = m->slot[i];
    free(m->slot);
    *m = g;
    return 0;
}

int gw_map_reserve(struct gw_map *m, uint32_t n)
{
    n = GW_MIN(n, GW_MAP_MAX);
    while ((uint64_t)n * 2 > (uint64_t)m->mask + 1)
        if (grow(m) != 0)
            return -ENOMEM;
    return 0;
}

/* Makes room for one more key: GW_EFULL at max, else grows at half load. */
static int room(struct gw_map *m)
{
    if (m->n >= m->max)
        return GW_EFULL;
    if ((uint64_t)(m->n + 1) * 2 > (uint64_t)m->mask + 1)
        return grow(m);
    return 0;
}

uint32_t gw_map_first(const struct gw_map *m, uint64_t key)
{
    if (!m->slot)
        return GW_MAP_END;
    key = key_in(key);
    for (uint32_t i = home_of(m, key), n = 0; n <= m->mask; i = (i + 1) & m->mask, n++) {
        if (m->slot[i].key == key)
            return i;
        if (!m->slot[i].key)
            return GW_MAP_END;
    }
    return GW_MAP_END;
}

uint32_t gw_map_more(const struct gw_map *m, uint64_t key, uint32_t i)
{
    key = key_in(key);
    /* Keys equal to `key` all sit in one probe run: no empty slot between. */
    for (uint32_t n = 0; n < m->mask; n++) {
        i = (i + 1) & m->mask;
        if (m->slot[i].key == key)
            return i;
        if (!m->slot[i].key)
            return GW_MAP_END;
    }
    return GW_MAP_END;
}

void gw_map_del_at(struct gw_map *m, uint32_t i)
{
    uint32_t mask = m->mask, hole = i;
    /* Backward shift: every later key of the run whose home does not lie
     * cyclically in (hole, j] moves into the hole, so no lookup ever meets
     * an empty slot before its key. */
    for (uint32_t j = (hole + 1) & mask; m->slot[j].key; j = (j + 1) & mask) {
        uint32_t home = home_of(m, m->slot[j].key);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->slot[hole] = m->slot[j];
            hole = j;
        }
    }
    m->slot[hole].key = 0;
    m->slot[hole].val = 0;
    m->n--;
}

bool gw_map_get(const struct gw_map *m, uint64_t key, uint64_t *val)
{
    uint32_t i = gw_map_first(m, key);
    if (i == GW_MAP_END)
        return false;
    *val = m->slot[i].val;
    return true;
}

int gw_map_put(struct gw_map *m, uint64_t key, uint64_t val)
{
    uint32_t i = gw_map_first(m, key);
    if (i != GW_MAP_END) {
        m->slot[i].val = val;
        return 0;
    }
    return gw_map_add(m, key, val);
}

bool gw_map_del(struct gw_map *m, uint64_t key, uint64_t *val)
{
    uint32_t i = gw_map_first(m, key);
    if (i == GW_MAP_END)
        return false;
    if (val)
        *val = m->slot[i].val;
    gw_map_del_at(m, i);
    return true;
}

int gw_map_add(struct gw_map *m, uint64_t key, uint64_t val)
{
    int rc = room(m);
    if (rc)
        return rc;
    key = key_in(key);
    uint32_t i = free_slot(m, key);
    m->slot[i].key = key;
    m->slot[i].val = val;
    m->n++;
    return 0;
}

bool gw_map_del_kv(struct gw_map *m, uint64_t key, uint64_t val)
{
    for (uint32_t i = gw_map_first(m, key); i != GW_MAP_END; i = gw_map_more(m, key, i))
        if (m->slot[i].val == val) {
            gw_map_del_at(m, i);
            return true;
        }
    return false;
}
