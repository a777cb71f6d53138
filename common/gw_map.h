/* SPDX-License-Identifier: MIT */
/* gw_map.h - the one hash table of the code base: open addressing from
 * 64-bit keys to 64-bit values, linear probing, backward-shift deletion (no
 * tombstones, so a table with steady churn never degrades), load at most
 * 1/2, doubling up to a bound the owner sets.
 *
 * Keys are hashes or unique ids, computed by the owner. A table fed by
 * remote input keys it with gw_siphash() under a per-process random key
 * (gw_hash_key_new), so a sender cannot aim at one probe run; tables of
 * local data (device file, registry copy by MAC) may use gw_hash64. The slot
 * is taken from the key after one more mixing step, so sequential ids spread.
 *
 * Two ways to use it:
 *   - a map: the key IS the whole key (a session or observation id, a
 *     64-bit hash the owner accepts as identity): gw_map_get / gw_map_put /
 *     gw_map_del;
 *   - a multimap: the key is a hash of a longer key (endpoint and MID, ...)
 *     and the value names the owner's entry (an index into its own array):
 *     gw_map_add, then gw_map_first / gw_map_more walk the slots holding that
 *     hash and the owner compares the full key; gw_map_del_kv removes the
 *     one (hash, value) pair. Colliding hashes are therefore never confused.
 * Key 0 marks an empty slot; a key 0 is stored as GW_MAP_KEY0 instead, so
 * the two are one key to the map form. Whole keys that use all 64 bits (a
 * MAC) therefore go through the multimap form, the owner comparing them.
 *
 * Bounded: `max` keys at most (GW_EFULL beyond). A table created with
 * n == max allocates only in gw_map_init and never again, for owners whose
 * entries live in fixed slabs and must not fail on the hot path for lack
 * of memory (the dedup source index, meshio's device index, the simulator's
 * duplicate table); others start small and double up to their bound.
 * Cost: 16 bytes per slot, 2 to 4 slots per key.
 *
 * Why not a library (Debian ships uthash-dev): uthash is intrusive (a
 * 56-byte handle with pointers inside every element, which would take the
 * 72-byte dedup entry to 128 and cannot sit in index-linked slabs), it
 * allocates its bucket array whenever it decides to expand (no fixed
 * capacity), and it chains through the elements, so a lookup touches every
 * element of a bucket instead of one contiguous run of 16-byte slots. The
 * whole table here is ~150 lines with one unit test (test_map.c).
 *
 * Hashed arrays that are deliberately not a gw_map: the shared-memory
 * response cache (gw_rcache: fixed slots by offset, lock-free readers in
 * other processes, one slot per resource hash), the frontend's sessionless
 * token buckets (fe_core.c sessionless_admit: direct-mapped, colliding
 * addresses share a bucket, which only makes the limit stricter), and the
 * relay floor benchmark's device table (tests/bench/bench_relay.c: the
 * measurement baseline, kept free of gateway code), and the frontend's dedup
 * entry index (fe_msglayer.h struct fe_dedup_idx: 4-byte entry numbers whose
 * keys already sit in the entries, a quarter of a gw_map's slots for the
 * table that holds every refused retry of a registration storm; gw_idx.h
 * is the same shape for owners whose keys sit in an array of their own,
 * the scheduler's `recent` and `by_observer`).
 *
 * Slots are reached by index, for owners that walk every key:
 *   for (uint32_t i = 0; i <= m->mask; i++) if (m->slot[i].key) ...
 * (no insertion or deletion during such a walk). */
#ifndef GW_MAP_H
#define GW_MAP_H

#include "gw_defs.h"

#include <stdbool.h>

struct gw_map_slot {
    uint64_t key; /* 0: empty */
    uint64_t val;
};

struct gw_map {
    struct gw_map_slot *slot;
    uint32_t mask; /* slots - 1; slots is a power of two >= 16 */
    uint32_t n;    /* keys held */
    uint32_t max;  /* keys allowed */
};

#define GW_MAP_KEY0 0x9e3779b97f4a7c15ull /* what key 0 is stored as */
#define GW_MAP_MAX (1u << 30)             /* the largest `max` (2^31 slots) */
#define GW_MAP_END UINT32_MAX             /* gw_map_first/more: no more slots */

/* Room for n keys without growing, at most max (clamped to GW_MAP_MAX; a
 * max below n is taken as n). 0 or -ENOMEM. */
int gw_map_init(struct gw_map *m, uint32_t n, uint32_t max) GW_NODISCARD;
void gw_map_deinit(struct gw_map *m);
/* Grows now, if needed, so that n keys fit without growing: an add that
 * must not fail for memory later reserves first. 0 or -ENOMEM. */
int gw_map_reserve(struct gw_map *m, uint32_t n) GW_NODISCARD;
/* Forgets every key, keeping the slots. */
void gw_map_clear(struct gw_map *m);

/* -- map form: one value per key -- */
bool gw_map_get(const struct gw_map *m, uint64_t key, uint64_t *val);
/* Inserts or replaces. 0, GW_EFULL (max keys held) or -ENOMEM (growing). */
int gw_map_put(struct gw_map *m, uint64_t key, uint64_t val) GW_NODISCARD;
/* Removes key; its value in *val (may be NULL). False when absent. */
bool gw_map_del(struct gw_map *m, uint64_t key, uint64_t *val);

/* -- multimap form: several values per key (a hash) -- */
/* Adds (key, val) even when key is present. 0, GW_EFULL or -ENOMEM. */
int gw_map_add(struct gw_map *m, uint64_t key, uint64_t val) GW_NODISCARD;
/* The first slot holding key, or GW_MAP_END; then the next one after slot i.
 * The value is m->slot[i].val. */
uint32_t gw_map_first(const struct gw_map *m, uint64_t key);
uint32_t gw_map_more(const struct gw_map *m, uint64_t key, uint32_t i);
/* Removes the slot holding (key, val). False when there is none. */
bool gw_map_del_kv(struct gw_map *m, uint64_t key, uint64_t val);
/* Removes slot i (from gw_map_first/more; the walk ends there). */
void gw_map_del_at(struct gw_map *m, uint32_t i);

/* The key a 0 is stored as, for owners that also keep keys of their own
 * and want them nonzero (the scheduler's observation key hashes). */
static inline uint64_t gw_map_key_nz(uint64_t k)
{
    return k ? k : GW_MAP_KEY0;
}

/* The slot where key's probe run starts (for the unit test's collisions). */
uint32_t gw_map_home(const struct gw_map *m, uint64_t key);

/* -- pointers as values (NULL: absent) -- */
static inline void *gw_map_get_ptr(const struct gw_map *m, uint64_t key)
{
    uint64_t v;
    return gw_map_get(m, key, &v) ? (void *)(uintptr_t)v : NULL;
}

static inline int gw_map_put_ptr(struct gw_map *m, uint64_t key, const void *p)
{
    return gw_map_put(m, key, (uint64_t)(uintptr_t)p);
}

static inline void *gw_map_del_ptr(struct gw_map *m, uint64_t key)
{
    uint64_t v;
    return gw_map_del(m, key, &v) ? (void *)(uintptr_t)v : NULL;
}

#endif
