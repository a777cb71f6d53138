/* SPDX-License-Identifier: MIT */
/* sch_map.h - a small open-addressing map from 64-bit keys to pointers,
 * with backward-shift deletion (no tombstones) and doubling. Keys are
 * already hashes or unique ids; 0 is reserved as "empty". */
#ifndef SCH_MAP_H
#define SCH_MAP_H

#include "gw_defs.h"

#include <stdbool.h>

struct sch_map {
    uint64_t *keys;
    void **vals;
    uint32_t cap, n;
};

int sch_map_init(struct sch_map *m, uint32_t cap) GW_NODISCARD;
void sch_map_deinit(struct sch_map *m);
void *sch_map_get(const struct sch_map *m, uint64_t key);
/* Inserts or replaces. 0 or -ENOMEM. */
int sch_map_put(struct sch_map *m, uint64_t key, void *val) GW_NODISCARD;
void *sch_map_del(struct sch_map *m, uint64_t key);
/* Iteration: for (uint32_t i = 0; i < m->cap; i++) if (m->keys[i]) ... */

static inline uint64_t sch_key_nz(uint64_t k)
{
    return k ? k : 0x9e3779b97f4a7c15ull;
}

#endif
