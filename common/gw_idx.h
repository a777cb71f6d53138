/* SPDX-License-Identifier: MIT */
/* gw_idx.h - a hash index of 4-byte record numbers, for owners whose
 * records already keep their own 64-bit key in an array beside them
 * (keys[v] is the key of record v). A gw_map slot repeats that key in 16
 * bytes; here a slot is the record number + 1 (0: empty), 4 bytes, and a
 * look-up compares keys[v]: at 2 to 4 slots per record, 8 to 16 bytes
 * instead of 32 to 64 (issue 13 item 4: the scheduler's `recent` table
 * holds every registration request of an observe storm for
 * EXCHANGE_LIFETIME).
 *
 * Same shape as gw_map: open addressing, linear probing, backward-shift
 * deletion (no tombstones), doubling with use, but a load of up to 3/4
 * instead of 1/2: a slot is 4 bytes, so the extra probes a fuller table
 * costs are cheap beside the slots it saves (5 000 observers sat in 16 384
 * slots at 1/2, 13 bytes each; 8 192 at 3/4, issue 13 item 4). At a
 * power-of-two record count (a table at its cap) the size is the same as
 * at 1/2. The slot
 * comes from the key after gw_map's mixing step, so sequential keys spread;
 * keys chosen by remote senders are SipHash under a random key, as for
 * gw_map. Several records may share a key (a multimap): the owner walks
 * them with gw_idx_first / gw_idx_more. A record's key must not change
 * while it is indexed (deletion finds the record by it). */
#ifndef GW_IDX_H
#define GW_IDX_H

#include "gw_defs.h"

#include <stdbool.h>

struct gw_idx {
    uint32_t *slot; /* record number + 1; 0 empty */
    uint32_t mask;  /* slots - 1; a power of two >= 16 */
    uint32_t n;     /* records held */
};

#define GW_IDX_END UINT32_MAX /* gw_idx_first/more: no more records */
/* The highest load before the index doubles: GW_IDX_LOAD_NUM / _DEN. */
#define GW_IDX_LOAD_NUM 3u
#define GW_IDX_LOAD_DEN 4u

/* Room for n records without growing. 0 or -ENOMEM. */
int gw_idx_init(struct gw_idx *x, uint32_t n) GW_NODISCARD;
void gw_idx_deinit(struct gw_idx *x);
/* Indexes record v (< UINT32_MAX - 1) under keys[v]; keys[] holds every
 * indexed record's key (a growth re-places them). 0 or -ENOMEM (the
 * record is then not indexed). */
int gw_idx_add(struct gw_idx *x, const uint64_t *keys, uint32_t v) GW_NODISCARD;
/* The first record indexed under key k, or GW_IDX_END; then the next one
 * after the record gw_idx_first/more returned at slot *pos. */
uint32_t gw_idx_first(const struct gw_idx *x, const uint64_t *keys, uint64_t k, uint32_t *pos);
uint32_t gw_idx_more(const struct gw_idx *x, const uint64_t *keys, uint64_t k, uint32_t *pos);
/* Removes record v (found by keys[v]). False when it is not indexed. */
bool gw_idx_del(struct gw_idx *x, const uint64_t *keys, uint32_t v);

#endif
