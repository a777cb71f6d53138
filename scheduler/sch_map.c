/* SPDX-License-Identifier: MIT */
/* sch_map.c - the open-addressing map from 64-bit keys to pointers used by the scheduler (see
 * sch_map.h). */
#include "sch_map.h"

#include <errno.h>
#include <stdlib.h>

static inline uint32_t slot(const struct sch_map *m, uint64_t k)
{
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k & (m->cap - 1);
}

int sch_map_init(struct sch_map *m, uint32_t cap)
{
    uint32_t c = 16;
    while (c < cap)
        c <<= 1;
    m->keys = calloc(c, sizeof(*m->keys));
    m->vals = calloc(c, sizeof(*m->vals));
    m->cap = c;
    m->n = 0;
    if (!m->keys || !m->vals) {
        sch_map_deinit(m);
        return -ENOMEM;
    }
    return 0;
}

void sch_map_deinit(struct sch_map *m)
{
    free(m->keys);
    free(m->vals);
    m->keys = NULL;
    m->vals = NULL;
    m->cap = m->n = 0;
}

void *sch_map_get(const struct sch_map *m, uint64_t key)
{
    for (uint32_t i = slot(m, key), n = 0; n < m->cap; i = (i + 1) & (m->cap - 1), n++) {
        if (m->keys[i] == key)
            return m->vals[i];
        if (m->keys[i] == 0)
            return NULL;
    }
    return NULL;
}

static int grow(struct sch_map *m)
{
    struct sch_map nm;
    if (sch_map_init(&nm, m->cap * 2) != 0)
        return -ENOMEM;
    for (uint32_t i = 0; i < m->cap; i++)
        if (m->keys[i] && sch_map_put(&nm, m->keys[i], m->vals[i]) != 0) {
            sch_map_deinit(&nm);
            return -ENOMEM;
        }
    sch_map_deinit(m);
    *m = nm;
    return 0;
}

int sch_map_put(struct sch_map *m, uint64_t key, void *val)
{
    if ((m->n + 1) * 2 > m->cap && grow(m) != 0)
        return -ENOMEM;
    for (uint32_t i = slot(m, key);; i = (i + 1) & (m->cap - 1)) {
        if (m->keys[i] == key) {
            m->vals[i] = val;
            return 0;
        }
        if (m->keys[i] == 0) {
            m->keys[i] = key;
            m->vals[i] = val;
            m->n++;
            return 0;
        }
    }
}

void *sch_map_del(struct sch_map *m, uint64_t key)
{
    uint32_t mask = m->cap - 1;
    uint32_t i = slot(m, key);
    for (uint32_t n = 0; n < m->cap; n++, i = (i + 1) & mask) {
        if (m->keys[i] == 0)
            return NULL;
        if (m->keys[i] == key)
            break;
    }
    if (m->keys[i] != key)
        return NULL;
    void *v = m->vals[i];
    /* Backward-shift the cluster that follows. */
    uint32_t hole = i;
    for (uint32_t j = (i + 1) & mask; m->keys[j]; j = (j + 1) & mask) {
        uint32_t home = slot(m, m->keys[j]);
        bool move = (j > hole) ? (home <= hole || home > j) : (home <= hole && home > j);
        if (move) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->n--;
    return v;
}
