/* SPDX-License-Identifier: MIT */
/* sch_cache.h - the scheduler's response cache (SPEC S5, RFC 7252 section 5.6).
 *
 * A pure module: no I/O, no clock of its own (every call that needs the time
 * takes now_ms from a monotonic clock), no logging, no threads. The
 * scheduler owns one cache and calls it from its loop thread only; nothing
 * here locks.
 *
 * Flow (who calls what):
 *   - Before forwarding a GET to a device, sch_cache_key() on the request
 *     as it will go to the device (Uri-Path/Uri-Query explicit, no
 *     Proxy-Uri, without the ETag the gateway may add itself to revalidate),
 *     then sch_cache_get(). Observe registrations and cancellations are
 *     never answered from the cache (S5.2): the caller does not look them up.
 *     The caller also checks, before serving, that the session may reach the
 *     device (S2.2); the key already separates security modes (S5.1).
 *       FRESH -> sch_cache_render() and answer the client without the mesh.
 *       STALE -> send the GET with the hit's ETag (S5.5); a 2.03 answer goes
 *                to sch_cache_refresh(), then get + render again; a 2.05
 *                goes to sch_cache_put().
 *       MISS  -> forward; the device's response goes to sch_cache_put().
 *   - A PUT/POST/DELETE to a resource (and a response carrying Location-*)
 *     goes to sch_cache_invalidate() with the resource hash (S5.3).
 *
 * Memory (64-bit): one malloc per entry of sizeof(struct sch_cache_entry)
 * (64 bytes: LRU links, key hash, resource hash, two times, lengths, ETag)
 * + key length + stored response length, plus the allocator's own overhead
 * (8-16 bytes with glibc). A typical entry (GET /sensors/temp with Accept:
 * key 34 bytes; response with ETag, Content-Format and a 20-byte payload:
 * 32 bytes) is charged 130 bytes, ~144 real. The cache also holds two
 * gw_map indexes (by key hash, by resource hash), each 2 to 4 slots of 16
 * bytes per entry, grown with the entries: 64 to 128 bytes per entry,
 * 1 MiB for 10,000 entries.
 * max_bytes bounds the charged size (entry header + key + response), so it
 * is an honest bound on the heap the entries use, allocator overhead aside.
 *
 * Complexity: get, put, refresh and remove are O(1) expected (open
 * addressing at load <= 1/2, plus an intrusive LRU list); invalidate is
 * O(1) expected per entry removed. */
#ifndef SCH_CACHE_H
#define SCH_CACHE_H

#include "gw_coap.h"
#include "gw_defs.h"

#include <stddef.h>
#include <stdint.h>

/* RFC 7252 section 5.10.5: Max-Age defaults to 60 s. */
#define SCH_CACHE_DEFAULT_MAX_AGE 60u

struct sch_cache_cfg {
    size_t max_entries;         /* > 0 (S5.4) */
    size_t max_bytes;           /* > 0, charged as described above (S5.4) */
    uint32_t default_max_age_s; /* for 2.05 without Max-Age; 0 selects 60 */
};

struct sch_cache;

/* Creates an empty cache.
 * [in]  cfg  copied; not referenced afterwards.
 * [out] out  the cache, to be released with sch_cache_free().
 * Returns 0, GW_ECONFIG (max_entries or max_bytes is 0) or -ENOMEM. */
int sch_cache_new(const struct sch_cache_cfg *cfg, struct sch_cache **out) GW_NODISCARD;
/* Frees the cache and every entry; NULL is accepted. */
void sch_cache_free(struct sch_cache *c);

/* Largest key sch_cache_key() can produce: 10 bytes of MAC, security and
 * code, then 4 bytes of number+length per option plus the option values.
 * A message of GW_COAP_MAX_MSG bytes with GW_COAP_MAX_OPTS options needs at
 * most 10 + 48 * 4 + 1152 = 1354 bytes. */
#define SCH_CACHE_KEY_MAX 1400 /* = GW_RCACHE_KEY_MAX */

/* Composes the Cache-Key (RFC 7252 section 5.6 + SPEC S5.1) of a request
 * that the gateway sends to device `mac` with mesh security `sec`
 * (0 none, 1 netmgr): mac, sec, the request code, and every option of
 * `req` in order except NoCacheKey options (gw_opt_nocachekey(), which
 * covers Size1 and Size2), Observe (S5.2: registration and plain GET share
 * one representation), Block1, Block2 (the mesh leg never uses block-wise
 * transfer, S4.7, so the whole representation is cached), No-Response,
 * Proxy-Uri, Proxy-Scheme, Uri-Host and Uri-Port (the target is already
 * given by mac and sec). Uri-Path, Uri-Query, Accept, ETag, etc. are
 * included in wire order, so their order matters. The encoding is
 * unambiguous: option number and length are written as two big-endian
 * 16-bit fields before each value.
 * [in]  mac, sec, req   the device-side request (see the flow above).
 * [out] key, cap        the key bytes, cap >= SCH_CACHE_KEY_MAX always suffices.
 * [out] klen            the key length.
 * [out] res_hash        the resource hash (mac, sec, Uri-Path and Uri-Query
 *                       only) used by sch_cache_invalidate(); may be NULL.
 * Returns 0 or GW_ETOOBIG (cap too small). */
int sch_cache_key(const uint8_t mac[GW_MAC_LEN], uint8_t sec, const struct gw_coap_msg *req,
                  uint8_t *key, size_t cap, size_t *klen, uint64_t *res_hash) GW_NODISCARD;

/* The resource hash of the resource a response's Location-Path and
 * Location-Query options name (RFC 7252 section 5.6: a response carrying
 * Location-* to an unsafe request invalidates that resource as well).
 * Location-Path hashes as Uri-Path and Location-Query as Uri-Query, so the
 * result equals the res_hash of a request to that location. */
uint64_t sch_cache_res_hash_location(const uint8_t mac[GW_MAC_LEN], uint8_t sec,
                                     const struct gw_coap_msg *resp);

struct sch_cache_hit {
    const uint8_t *resp; /* stored response, an encoded CoAP message with
                              * no token, MID 0, no Max-Age and no Observe */
    size_t resp_len;
    uint32_t age_s;          /* whole seconds since stored / last refreshed */
    uint32_t max_age_left_s; /* whole seconds until expiry (rounded down), 0 when STALE */
    uint8_t etag[8];         /* ETag of the stored response, if any */
    uint8_t etag_len;        /* 0: none */
    uint64_t expires_ms;     /* stored time + Max-Age (for the shared table, gw_rcache.h) */
};

enum {
    SCH_CACHE_MISS = 0,
    SCH_CACHE_FRESH = 1,
    SCH_CACHE_STALE = 2 /* expired but kept because it has an ETag (S5.5) */
};

/* Looks a key up at time now_ms. FRESH and STALE fill *hit, whose pointers
 * stay valid until the next call that modifies the cache (put, refresh,
 * invalidate, remove, free, or a get that drops an expired entry). A hit
 * moves the entry to the head of the LRU list. An expired entry without an
 * ETag is removed and reported as MISS. An entry is fresh while
 * now_ms < stored time + Max-Age * 1000.
 * Returns SCH_CACHE_MISS, SCH_CACHE_FRESH or SCH_CACHE_STALE (never < 0). */
int sch_cache_get(struct sch_cache *c, const uint8_t *key, size_t klen, uint64_t now_ms,
                  struct sch_cache_hit *hit) GW_NODISCARD;

/* Finds the entry under key without touching the LRU order, the counters
 * or expired entries (the shared table's mirror, gw_rcache.h, needs what the
 * cache holds, fresh or not). Fills hit as sch_cache_get() does, with
 * max_age_left_s and age_s 0. Returns 0 or GW_ENOTFOUND. */
int sch_cache_peek(const struct sch_cache *c, const uint8_t *key, size_t klen,
                   struct sch_cache_hit *hit) GW_NODISCARD;

/* Stores `resp` (a parsed device response to the request whose key and
 * res_hash are given) at time now_ms, replacing any entry under the key.
 * Only 2.05 Content is stored (S5.1, S5.3), for its Max-Age, or the
 * configured default when absent (a Max-Age longer than 4 bytes is ignored
 * as RFC 7252 section 5.4.1 says for bad elective options). Observe is
 * stripped (S5.2: a cached answer to a plain GET must not claim a
 * registration); everything else is kept as the device sent it.
 * Not stored (returns 1): any other code, Max-Age 0, a response carrying
 * Block1/Block2 (a partial representation under a key without Block), an
 * entry larger than max_bytes. In those cases an existing entry under the
 * key is removed too, because the device's newer answer supersedes it;
 * the exception is 2.03 Valid, which leaves the entry alone (it belongs to
 * sch_cache_refresh()). Evicts least recently used entries to stay within
 * max_entries and max_bytes (S5.4).
 * Returns 0 (stored), 1 (not stored), GW_ETOOBIG (klen is 0 or over
 * SCH_CACHE_KEY_MAX), GW_EBADMSG (the view cannot be encoded: options out
 * of order) or -ENOMEM; on errors an existing entry under the key is left
 * in place. The cache copies what it keeps; resp may go away afterwards. */
int sch_cache_put(struct sch_cache *c, const uint8_t *key, size_t klen, uint64_t res_hash,
                  const struct gw_coap_msg *resp, uint64_t now_ms) GW_NODISCARD;

/* Applies a 2.03 Valid answer to a revalidation (S5.5, RFC 7252 section
 * 5.9.1.3): if the entry exists and the ETag in `valid` matches the stored
 * one (or `valid` has no ETag), the entry's time becomes now_ms and its
 * Max-Age valid's Max-Age (or the default), keeping the stored body and
 * options. The entry moves to the head of the LRU list.
 * Returns 0, GW_ENOTFOUND (no entry, or another ETag), or GW_EBADMSG
 * (valid is not a 2.03). */
int sch_cache_refresh(struct sch_cache *c, const uint8_t *key, size_t klen,
                      const struct gw_coap_msg *valid, uint64_t now_ms) GW_NODISCARD;

/* S5.3: a PUT/POST/DELETE to a resource (or a response with Location-*)
 * makes every entry with that res_hash stale; they are removed, all
 * Accept/query-option variants included. Returns the number removed. */
int sch_cache_invalidate(struct sch_cache *c, uint64_t res_hash);

/* Removes the entry under key, if any. Returns 0 or GW_ENOTFOUND (not
 * GW_NODISCARD: callers that only want it gone may ignore the result). */
int sch_cache_remove(struct sch_cache *c, const uint8_t *key, size_t klen);

/* Builds a client response from a hit: header type, mid and token as given;
 * code, options and payload from the stored response, with Max-Age set to
 * max_age_left_s (always present, RFC 7252 section 5.6.1: reduced by the
 * age). Does not touch the cache, so it may run after other gets but not
 * after a modifying call (see sch_cache_get()).
 * [out] out, cap, len  the message.
 * Returns 0, GW_ETOOBIG (cap too small) or GW_EBADMSG (hit->resp is not a
 * message this module stored). */
int sch_cache_render(const struct sch_cache_hit *hit, uint8_t type, uint16_t mid,
                     const uint8_t *token, uint8_t tkl, uint8_t *out, size_t cap,
                     size_t *len) GW_NODISCARD;

struct sch_cache_stats {
    size_t entries, bytes;  /* now; bytes as charged against max_bytes */
    uint64_t hits;          /* FRESH answers */
    uint64_t stale;         /* STALE answers (revalidations started) */
    uint64_t misses;        /* MISS answers, expired entries included */
    uint64_t evictions;     /* entries dropped by the LRU bounds (S5.4) */
    uint64_t invalidations; /* entries dropped by sch_cache_invalidate() (S5.3) */
};
void sch_cache_stats(const struct sch_cache *c, struct sch_cache_stats *s);

/* Bytes one entry is charged against max_bytes. */
size_t sch_cache_entry_bytes(size_t klen, size_t resp_len);

#endif
