/* SPDX-License-Identifier: MIT */
/* sch_cache.c - response cache (SPEC S5, RFC 7252 section 5.6).
 *
 * Each entry is one allocation: the header below, then the key bytes, then
 * the stored response. The stored response is re-encoded at put time with
 * our builder as a CoAP message with no token, MID 0, and without Max-Age
 * and Observe, so that rendering a hit is a header write, a copy of the
 * option bytes with Max-Age spliced in at its place (option 14), and a copy
 * of the payload: no parser, no allocation on the hit path.
 *
 * Three structures link the entries: a gw_map multimap from the key's hash
 * (the key itself compared), another from the resource hash for
 * invalidation (S5.3), and an intrusive doubly linked LRU list (S5.4). */
#include "sch_cache.h"

#include "gw_addr.h"
#include "gw_dlist.h"
#include "gw_error.h"
#include "gw_map.h"
#include "gw_rcache.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct sch_cache_entry {
    struct gw_dnode lru; /* head = most recently used */
    uint64_t khash;
    uint64_t res_hash;
    uint64_t stored_ms;  /* stored or last refreshed */
    uint64_t expires_ms; /* stored_ms + Max-Age * 1000 */
    uint16_t klen;
    uint16_t resp_len;
    uint8_t etag_len;
    uint8_t etag[8];
    uint8_t data[]; /* key, then response */
};

/* The stored response is at most what the parser accepts; anything longer
 * is not stored. The length fits the uint16_t fields above. */
#define SCH_CACHE_RESP_MAX (GW_COAP_MAX_MSG + 16)
GW_STATIC_ASSERT(SCH_CACHE_KEY_MAX <= UINT16_MAX && SCH_CACHE_RESP_MAX <= UINT16_MAX,
                 "key and response lengths fit uint16_t");
GW_STATIC_ASSERT(sizeof(void *) != 8 || sizeof(struct sch_cache_entry) == 64,
                 "entry header size as documented in sch_cache.h");

/* The indexes start at this many entries and double with the cache. */
#define SCH_CACHE_INDEX_INIT 1024u

struct sch_cache {
    struct sch_cache_cfg cfg;
    struct gw_map by_key; /* key hash -> entry */
    struct gw_map by_res; /* resource hash -> entry */
    struct gw_dlist lru;
    size_t entries, bytes;
    uint64_t hits, stale, misses, evictions, invalidations;
};

size_t sch_cache_entry_bytes(size_t klen, size_t resp_len)
{
    return sizeof(struct sch_cache_entry) + klen + resp_len;
}

int sch_cache_new(const struct sch_cache_cfg *cfg, struct sch_cache **out)
{
    if (!cfg->max_entries || !cfg->max_bytes)
        return GW_ECONFIG;
    struct sch_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    if (!c->cfg.default_max_age_s)
        c->cfg.default_max_age_s = SCH_CACHE_DEFAULT_MAX_AGE;
    /* Grown with the entries (gw_map folds FNV's weak low bits in): one key
     * per entry, and one more, since a put indexes the new entry before the
     * one it replaces or evicts leaves (sch_cache_put). */
    uint32_t max = (uint32_t)GW_MIN(cfg->max_entries + 1, (size_t)GW_MAP_MAX);
    uint32_t n = GW_MIN(max, SCH_CACHE_INDEX_INIT);
    if (gw_map_init(&c->by_key, n, max) != 0 || gw_map_init(&c->by_res, n, max) != 0) {
        gw_map_deinit(&c->by_key);
        free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

void sch_cache_free(struct sch_cache *c)
{
    if (!c)
        return;
    struct gw_dnode *n = c->lru.head;
    while (n) {
        struct gw_dnode *next = n->next;
        free(GW_DLIST_ITEM(n, struct sch_cache_entry, lru));
        n = next;
    }
    gw_map_deinit(&c->by_key);
    gw_map_deinit(&c->by_res);
    free(c);
}

/* --- Keys ---------------------------------------------------------------- */

/* Key composition and rendering live in common/gw_rcache.c, since the
 * frontends answer hits from the shared table with the same code. */
int sch_cache_key(const uint8_t mac[GW_MAC_LEN], uint8_t sec, const struct gw_coap_msg *req,
                  uint8_t *key, size_t cap, size_t *klen, uint64_t *res_hash)
{
    return gw_rcache_key(mac, sec, req, key, cap, klen, res_hash);
}

uint64_t sch_cache_res_hash_location(const uint8_t mac[GW_MAC_LEN], uint8_t sec,
                                     const struct gw_coap_msg *resp)
{
    return gw_rcache_res_hash_location(mac, sec, resp);
}

/* --- Index and LRU --------------------------------------------------------- */

static struct sch_cache_entry *lookup(const struct sch_cache *c, const uint8_t *key, size_t klen,
                                      uint64_t h)
{
    for (uint32_t i = gw_map_first(&c->by_key, h); i != GW_MAP_END;
         i = gw_map_more(&c->by_key, h, i)) {
        struct sch_cache_entry *e = (struct sch_cache_entry *)(uintptr_t)c->by_key.slot[i].val;
        if (e->klen == klen && memcmp(e->data, key, klen) == 0)
            return e;
    }
    return NULL;
}

static inline void lru_touch(struct sch_cache *c, struct sch_cache_entry *e)
{
    if (c->lru.head == &e->lru)
        return;
    gw_dlist_remove(&c->lru, &e->lru);
    gw_dlist_push_head(&c->lru, &e->lru);
}

/* Indexes e: 0, or -ENOMEM (growing an index) with e in neither. */
static int index_entry(struct sch_cache *c, struct sch_cache_entry *e)
{
    int rc = gw_map_add(&c->by_key, e->khash, (uint64_t)(uintptr_t)e);
    if (rc == 0) {
        rc = gw_map_add(&c->by_res, e->res_hash, (uint64_t)(uintptr_t)e);
        if (rc)
            gw_map_del_kv(&c->by_key, e->khash, (uint64_t)(uintptr_t)e);
    }
    return rc == GW_EFULL ? -ENOMEM : rc; /* full: only past 2^30 entries */
}

/* Puts an indexed entry at the LRU head and charges it. */
static void link_entry(struct sch_cache *c, struct sch_cache_entry *e)
{
    gw_dlist_push_head(&c->lru, &e->lru);
    c->entries++;
    c->bytes += sch_cache_entry_bytes(e->klen, e->resp_len);
}

static void drop_entry(struct sch_cache *c, struct sch_cache_entry *e)
{
    gw_map_del_kv(&c->by_key, e->khash, (uint64_t)(uintptr_t)e);
    gw_map_del_kv(&c->by_res, e->res_hash, (uint64_t)(uintptr_t)e);
    gw_dlist_remove(&c->lru, &e->lru);
    c->entries--;
    c->bytes -= sch_cache_entry_bytes(e->klen, e->resp_len);
    free(e);
}

/* --- Lookup ------------------------------------------------------------------ */

int sch_cache_get(struct sch_cache *c, const uint8_t *key, size_t klen, uint64_t now_ms,
                  struct sch_cache_hit *hit)
{
    struct sch_cache_entry *e = lookup(c, key, klen, gw_hash64(key, klen, GW_HASH_SEED));
    if (!e) {
        c->misses++;
        return SCH_CACHE_MISS;
    }
    int rc;
    if (gw_likely(now_ms < e->expires_ms)) {
        hit->max_age_left_s = (uint32_t)((e->expires_ms - now_ms) / 1000);
        rc = SCH_CACHE_FRESH;
        c->hits++;
    } else if (e->etag_len) {
        /* S5.5: kept so that the scheduler can revalidate it with its ETag. */
        hit->max_age_left_s = 0;
        rc = SCH_CACHE_STALE;
        c->stale++;
    } else {
        drop_entry(c, e);
        c->misses++;
        return SCH_CACHE_MISS;
    }
    /* A clock that stepped back (it should not: now_ms is monotonic) makes
     * the age 0 rather than huge. */
    uint64_t age_ms = now_ms > e->stored_ms ? now_ms - e->stored_ms : 0;
    hit->age_s = age_ms / 1000 > UINT32_MAX ? UINT32_MAX : (uint32_t)(age_ms / 1000);
    hit->resp = e->data + e->klen;
    hit->resp_len = e->resp_len;
    hit->expires_ms = e->expires_ms;
    hit->etag_len = e->etag_len;
    memcpy(hit->etag, e->etag, sizeof(hit->etag));
    lru_touch(c, e);
    return rc;
}

int sch_cache_peek(const struct sch_cache *c, const uint8_t *key, size_t klen,
                   struct sch_cache_hit *hit)
{
    const struct sch_cache_entry *e = lookup(c, key, klen, gw_hash64(key, klen, GW_HASH_SEED));
    if (!e)
        return GW_ENOTFOUND;
    memset(hit, 0, sizeof(*hit));
    hit->resp = e->data + e->klen;
    hit->resp_len = e->resp_len;
    hit->expires_ms = e->expires_ms;
    hit->etag_len = e->etag_len;
    memcpy(hit->etag, e->etag, sizeof(hit->etag));
    return 0;
}

/* --- Storing ----------------------------------------------------------------- */

/* Max-Age of a response, or the default (RFC 7252 section 5.10.5). A value
 * longer than 4 bytes is a bad elective option and is ignored (5.4.1). */
static uint32_t max_age_of(const struct sch_cache *c, const struct gw_coap_msg *m)
{
    const struct gw_coap_opt *o = gw_coap_opt_find(m, GW_OPT_MAX_AGE);
    uint32_t v;
    if (o && gw_coap_uint(o->val, o->len, &v))
        return v;
    return c->cfg.default_max_age_s;
}

static void remove_key(struct sch_cache *c, const uint8_t *key, size_t klen)
{
    struct sch_cache_entry *e = lookup(c, key, klen, gw_hash64(key, klen, GW_HASH_SEED));
    if (e)
        drop_entry(c, e);
}

int sch_cache_put(struct sch_cache *c, const uint8_t *key, size_t klen, uint64_t res_hash,
                  const struct gw_coap_msg *resp, uint64_t now_ms)
{
    if (klen == 0 || klen > SCH_CACHE_KEY_MAX)
        return GW_ETOOBIG;
    /* S5.5: a 2.03 refreshes through sch_cache_refresh(), never replaces. */
    if (resp->code == GW_COAP_VALID)
        return 1;
    /* S5.1/S5.3: only 2.05 is stored; 2.01, 2.02, 2.04 and unknown 2.xx
     * never are, nor errors. Each of those is the device's newer answer
     * for this key, so a stored one is no longer the current state. */
    if (resp->code != GW_COAP_CONTENT || gw_coap_opt_find(resp, GW_OPT_BLOCK2) ||
        gw_coap_opt_find(resp, GW_OPT_BLOCK1)) {
        remove_key(c, key, klen);
        return 1;
    }
    uint32_t max_age = max_age_of(c, resp);
    if (max_age == 0) {
        /* RFC 7252 section 5.10.5: Max-Age 0 means "do not reuse". */
        remove_key(c, key, klen);
        return 1;
    }

    /* Re-encode without token, MID, Max-Age and Observe (see the top). */
    uint8_t buf[SCH_CACHE_RESP_MAX];
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, resp->code, 0, NULL, 0);
    uint8_t etag_len = 0;
    const uint8_t *etag = NULL;
    for (unsigned i = 0; i < resp->nopts; i++) {
        const struct gw_coap_opt *o = &resp->opts[i];
        if (o->num == GW_OPT_MAX_AGE || o->num == GW_OPT_OBSERVE)
            continue;
        /* A response has at most one ETag (RFC 7252 5.10.6.1); a length
         * outside 1..8 is not an ETag we can revalidate with. */
        if (o->num == GW_OPT_ETAG && !etag && o->len >= 1 && o->len <= 8) {
            etag = o->val;
            etag_len = (uint8_t)o->len;
        }
        gw_cb_opt(&b, o->num, o->val, o->len);
    }
    gw_cb_payload(&b, resp->payload, resp->payload_len);
    size_t rlen;
    int rc = gw_cb_finish(&b, &rlen);
    if (rc == GW_EBADMSG)
        return rc;
    size_t sz = sch_cache_entry_bytes(klen, rlen);
    if (rc == GW_ETOOBIG || sz > c->cfg.max_bytes) {
        remove_key(c, key, klen); /* S5.4: too large to keep at all */
        return 1;
    }

    /* Allocate before touching the old entry so -ENOMEM leaves it intact. */
    struct sch_cache_entry *e = malloc(sz);
    if (!e)
        return -ENOMEM;
    e->khash = gw_hash64(key, klen, GW_HASH_SEED);
    e->res_hash = res_hash;
    e->stored_ms = now_ms;
    e->expires_ms = now_ms + (uint64_t)max_age * 1000;
    e->klen = (uint16_t)klen;
    e->resp_len = (uint16_t)rlen;
    e->etag_len = etag_len;
    memset(e->etag, 0, sizeof(e->etag));
    if (etag)
        memcpy(e->etag, etag, etag_len);
    memcpy(e->data, key, klen);
    memcpy(e->data + klen, buf, rlen);

    struct sch_cache_entry *old = lookup(c, key, klen, e->khash);
    /* Indexed before the old entry goes, so -ENOMEM leaves that intact too
     * (the maps allow for the one entry over max_entries meanwhile). */
    if (index_entry(c, e) != 0) {
        free(e);
        return -ENOMEM;
    }
    if (old)
        drop_entry(c, old);
    /* S5.4: evict least recently used until the new entry fits. */
    while (c->lru.tail &&
           (c->entries + 1 > c->cfg.max_entries || c->bytes + sz > c->cfg.max_bytes)) {
        drop_entry(c, GW_DLIST_ITEM(c->lru.tail, struct sch_cache_entry, lru));
        c->evictions++;
    }
    link_entry(c, e);
    return 0;
}

int sch_cache_refresh(struct sch_cache *c, const uint8_t *key, size_t klen,
                      const struct gw_coap_msg *valid, uint64_t now_ms)
{
    if (valid->code != GW_COAP_VALID)
        return GW_EBADMSG;
    struct sch_cache_entry *e = lookup(c, key, klen, gw_hash64(key, klen, GW_HASH_SEED));
    if (!e)
        return GW_ENOTFOUND;
    /* S5.5 / RFC 7252 5.9.1.3: the 2.03 names the representation that is
     * still valid; a different ETag says nothing about the stored one. */
    const struct gw_coap_opt *o = gw_coap_opt_find(valid, GW_OPT_ETAG);
    if (o && (o->len != e->etag_len || memcmp(o->val, e->etag, o->len) != 0))
        return GW_ENOTFOUND;
    e->stored_ms = now_ms;
    e->expires_ms = now_ms + (uint64_t)max_age_of(c, valid) * 1000;
    lru_touch(c, e);
    return 0;
}

int sch_cache_invalidate(struct sch_cache *c, uint64_t res_hash)
{
    int n = 0;
    /* Every slot found holds this resource hash; dropping one reorders the
     * run, so each drop starts the walk again (bounded by the entries). */
    for (uint32_t i; n < INT32_MAX && (i = gw_map_first(&c->by_res, res_hash)) != GW_MAP_END; n++)
        drop_entry(c, (struct sch_cache_entry *)(uintptr_t)c->by_res.slot[i].val);
    c->invalidations += (uint64_t)n;
    return n;
}

int sch_cache_remove(struct sch_cache *c, const uint8_t *key, size_t klen)
{
    struct sch_cache_entry *e = lookup(c, key, klen, gw_hash64(key, klen, GW_HASH_SEED));
    if (!e)
        return GW_ENOTFOUND;
    drop_entry(c, e);
    return 0;
}

/* --- Rendering ----------------------------------------------------------------- */

int sch_cache_render(const struct sch_cache_hit *hit, uint8_t type, uint16_t mid,
                     const uint8_t *token, uint8_t tkl, uint8_t *out, size_t cap, size_t *len)
{
    return gw_rcache_render(hit->resp, hit->resp_len, hit->max_age_left_s, type, mid, token, tkl,
                            out, cap, len);
}

void sch_cache_stats(const struct sch_cache *c, struct sch_cache_stats *s)
{
    s->entries = c->entries;
    s->bytes = c->bytes;
    s->hits = c->hits;
    s->stale = c->stale;
    s->misses = c->misses;
    s->evictions = c->evictions;
    s->invalidations = c->invalidations;
}
