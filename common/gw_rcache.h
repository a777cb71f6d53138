/* SPDX-License-Identifier: MIT */
/* gw_rcache.h - the response cache as every frontend can read it: a table in
 * the shared segment that only the scheduler writes (SPEC S5, S3.1; issue 13).
 *
 * The scheduler's own cache (scheduler/sch_cache.h) stays the authority: it
 * decides what is stored (2.05 only, Max-Age, S5.1), revalidates with ETags
 * (S5.5), invalidates on unsafe methods (S5.3) and evicts by LRU (S5.4).
 * Every time it stores, refreshes, replaces or drops an entry it mirrors that
 * into this table, so that a frontend can answer a fresh hit at once,
 * piggybacked on the ACK (S3.1 allows it), without a ring round trip. A
 * frontend that finds nothing usable here takes the ordinary path through
 * the scheduler, which then answers from its own cache or from the device.
 * The frontend checks the session's device scope (S2.2) before looking up,
 * exactly as before forwarding; the key carries the mesh security mode, so
 * a hit never crosses security modes (S5.1).
 *
 * CONTRACT
 * - Exactly one writer: the scheduler (the process in GW_PROC_SCHEDULER's
 *   slot). Any number of readers (frontends). Nothing here locks or waits.
 * - The table is `nslots` slots (a power of two) of `slot_size` bytes,
 *   addressed by offset in the segment; no pointers. A slot holds one entry:
 *   the Cache-Key, the resource hash, the expiry (CLOCK_MONOTONIC ms, which
 *   all processes share, gw_clock.h), and the stored response (sch_cache's
 *   form: no token, MID 0, no Max-Age, no Observe). Direct mapped by the
 *   resource hash, so every variant of a resource shares one slot and an
 *   invalidation (S5.3) looks at one slot only; a store to a taken slot
 *   replaces it (the scheduler's cache still has the other entry).
 * - Per-slot sequence counter (a seqlock). Writer: W1 makes seq odd
 *   (relaxed store) followed by a release fence, so no data store can be
 *   seen before the odd value; W2 stores the data words (relaxed atomics);
 *   W3 makes seq even again with a release store, publishing the data.
 *   Reader: R1 loads seq with acquire (pairs with W3); an odd value is a
 *   miss; R2 copies the words it needs (relaxed atomic loads, so no data
 *   race even while the writer runs); R3 an acquire fence then a relaxed
 *   reload of seq (pairs with W1's release fence): a different value means
 *   the copy may be torn and it is retried once, then taken as a miss.
 *   Lengths read during a torn copy are bounded by the slot before use.
 * - Freshness: an entry is used only while now_ms < expires_ms; Max-Age
 *   sent to the client is (expires_ms - now_ms) / 1000, rounded down, as
 *   the scheduler computes it (S5.1: reduced by the age).
 *
 * WHAT A SIGKILL CAN DO
 * - Reader killed at any instant: it wrote nothing; nothing to repair.
 * - Writer killed between W1 and W3: that slot stays odd, and every reader
 *   takes it as a miss (never a torn entry). The restarted scheduler calls
 *   gw_rcache_clear_all() before serving, which empties every slot, odd ones
 *   included (its own in-memory cache starts empty too, and an entry its
 *   predecessor was about to invalidate must not outlive it).
 * - A slot is never written by two processes: the supervisor runs one
 *   scheduler at a time. */
#ifndef GW_RCACHE_H
#define GW_RCACHE_H

#include "gw_coap.h"
#include "gw_defs.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Words of a slot before the key and response bytes. */
#define GW_RCACHE_HDR_WORDS 4
/* Longest Cache-Key (sch_cache.h: SCH_CACHE_KEY_MAX). */
#define GW_RCACHE_KEY_MAX 1400
/* Bounds of the configured slot size (cache_shm_slot_bytes). */
#define GW_RCACHE_SLOT_MIN 128
#define GW_RCACHE_SLOT_MAX 4096

struct gw_rcache_slot {
    _Atomic uint32_t seq; /* odd while the writer is inside the slot */
    uint32_t pad;
    /* w[0]: key length (16 bits) | response length (16 bits) << 16
     * w[1]: expires_ms (CLOCK_MONOTONIC)   w[2]: resource hash
     * w[3]: key hash (0: the slot is empty)
     * then the key bytes and the response bytes, packed, little-endian words */
    _Atomic uint64_t w[];
};
GW_STATIC_ASSERT(sizeof(struct gw_rcache_slot) == 8, "slot header is 8 bytes");

/* A view of the table in one process's mapping. */
struct gw_rcache {
    uint8_t *base;      /* first slot */
    uint32_t nslots;    /* power of two, or 0: disabled */
    uint32_t slot_size; /* bytes per slot, multiple of 8 */
};

/* Bytes the table needs (0 when nslots is 0). */
static inline size_t gw_rcache_bytes(uint32_t nslots, uint32_t slot_size)
{
    return (size_t)nslots * slot_size;
}

/* Key and response bytes one slot can hold. */
static inline size_t gw_rcache_capacity(const struct gw_rcache *t)
{
    return t->slot_size - sizeof(struct gw_rcache_slot) - 8u * GW_RCACHE_HDR_WORDS;
}

/* Points t at a table of nslots slots of slot_size bytes at base (no I/O). */
void gw_rcache_attach(struct gw_rcache *t, void *base, uint32_t nslots, uint32_t slot_size);

/* ---- keys (shared by the scheduler's cache and the frontends) ---- */

/* Composes the Cache-Key of a device-side request; sch_cache.h's
 * sch_cache_key() documents it (that is a wrapper of this). */
int gw_rcache_key(const uint8_t mac[GW_MAC_LEN], uint8_t sec, const struct gw_coap_msg *req,
                  uint8_t *key, size_t cap, size_t *klen, uint64_t *res_hash) GW_NODISCARD;
/* The resource hash a response's Location-* names (sch_cache_res_hash_location). */
uint64_t gw_rcache_res_hash_location(const uint8_t mac[GW_MAC_LEN], uint8_t sec,
                                     const struct gw_coap_msg *resp);
/* Builds a client response from a stored response (sch_cache_render()
 * documents it): type, mid and token as given, Max-Age = max_age_left_s.
 * Returns 0, GW_ETOOBIG or GW_EBADMSG. */
int gw_rcache_render(const uint8_t *resp, size_t resp_len, uint32_t max_age_left_s, uint8_t type,
                     uint16_t mid, const uint8_t *token, uint8_t tkl, uint8_t *out, size_t cap,
                     size_t *len) GW_NODISCARD;

/* ---- writer side: the scheduler only ---- */

/* Mirrors an entry: key (klen bytes), its resource hash, the stored
 * response and its absolute expiry. An entry that does not fit a slot is
 * not mirrored, and an older entry under the same key is dropped.
 * Returns 0, or GW_ETOOBIG (not mirrored). No-op (0) on a disabled table. */
int gw_rcache_store(struct gw_rcache *t, const uint8_t *key, size_t klen, uint64_t res_hash,
                    const uint8_t *resp, size_t resp_len, uint64_t expires_ms);
/* Drops the entry under key, if the table holds it. */
void gw_rcache_remove(struct gw_rcache *t, const uint8_t *key, size_t klen, uint64_t res_hash);
/* S5.3: drops every entry of the resource (all its variants). */
void gw_rcache_invalidate(struct gw_rcache *t, uint64_t res_hash);
/* Empties every slot, odd (torn) ones included: a restarted scheduler's
 * first call. */
void gw_rcache_clear_all(struct gw_rcache *t);

/* ---- reader side: any process ---- */

enum { GW_RCACHE_MISS = 0, GW_RCACHE_FRESH = 1 };

/* Looks key up at now_ms. FRESH copies the stored response into resp (cap
 * bytes; a response longer than cap is a miss) and sets *resp_len and
 * *max_age_left_s. MISS: no entry, another key in the slot, an expired
 * entry, a slot being written (odd), or a copy torn twice.
 * Returns GW_RCACHE_MISS or GW_RCACHE_FRESH. */
int gw_rcache_lookup(const struct gw_rcache *t, const uint8_t *key, size_t klen, uint64_t res_hash,
                     uint64_t now_ms, uint8_t *resp, size_t cap, size_t *resp_len,
                     uint32_t *max_age_left_s) GW_NODISCARD;

#endif
