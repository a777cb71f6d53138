/* SPDX-License-Identifier: MIT */
/* gw_rcache.c - the shared response-cache table (contract in gw_rcache.h),
 * and the Cache-Key and rendering code the scheduler's cache and the
 * frontends share. */
#include "gw_rcache.h"

#include "gw_addr.h"
#include "gw_error.h"

#include <stdbool.h>
#include <string.h>

/* --- Keys -------------------------------------------------------------------- */

/* Options left out of the Cache-Key (sch_cache.h explains each at sch_cache_key()). */
static inline bool key_skips(uint16_t n)
{
    switch (n) {
    case GW_OPT_OBSERVE:
    case GW_OPT_BLOCK1:
    case GW_OPT_BLOCK2:
    case GW_OPT_SIZE1:
    case GW_OPT_SIZE2:
    case GW_OPT_NO_RESPONSE:
    case GW_OPT_PROXY_URI:
    case GW_OPT_PROXY_SCHEME:
    case GW_OPT_URI_HOST:
    case GW_OPT_URI_PORT:
        return true;
    default:
        return gw_opt_nocachekey(n);
    }
}

static inline uint64_t res_hash_start(const uint8_t mac[GW_MAC_LEN], uint8_t sec)
{
    return gw_hash64(&sec, 1, gw_hash64(mac, GW_MAC_LEN, GW_HASH_SEED));
}

static inline uint64_t res_hash_opt(uint64_t h, uint16_t num, const struct gw_coap_opt *o)
{
    uint8_t hdr[4] = { (uint8_t)(num >> 8), (uint8_t)num, (uint8_t)(o->len >> 8), (uint8_t)o->len };
    h = gw_hash64(hdr, sizeof(hdr), h);
    return gw_hash64(o->val, o->len, h);
}

int gw_rcache_key(const uint8_t mac[GW_MAC_LEN], uint8_t sec, const struct gw_coap_msg *req,
                  uint8_t *key, size_t cap, size_t *klen, uint64_t *res_hash)
{
    if (cap < GW_MAC_LEN + 2)
        return GW_ETOOBIG;
    memcpy(key, mac, GW_MAC_LEN);
    key[GW_MAC_LEN] = sec;
    key[GW_MAC_LEN + 1] = req->code;
    size_t n = GW_MAC_LEN + 2;
    uint64_t h = res_hash_start(mac, sec);
    for (unsigned i = 0; i < req->nopts; i++) {
        const struct gw_coap_opt *o = &req->opts[i];
        if (key_skips(o->num))
            continue;
        if (n + 4 + o->len > cap)
            return GW_ETOOBIG;
        key[n++] = (uint8_t)(o->num >> 8);
        key[n++] = (uint8_t)o->num;
        key[n++] = (uint8_t)(o->len >> 8);
        key[n++] = (uint8_t)o->len;
        if (o->len)
            memcpy(key + n, o->val, o->len);
        n += o->len;
        if (o->num == GW_OPT_URI_PATH || o->num == GW_OPT_URI_QUERY)
            h = res_hash_opt(h, o->num, o);
    }
    *klen = n;
    if (res_hash)
        *res_hash = h;
    return 0;
}

uint64_t gw_rcache_res_hash_location(const uint8_t mac[GW_MAC_LEN], uint8_t sec,
                                     const struct gw_coap_msg *resp)
{
    uint64_t h = res_hash_start(mac, sec);
    for (unsigned i = 0; i < resp->nopts; i++) {
        const struct gw_coap_opt *o = &resp->opts[i];
        if (o->num == GW_OPT_LOCATION_PATH)
            h = res_hash_opt(h, GW_OPT_URI_PATH, o);
        else if (o->num == GW_OPT_LOCATION_QUERY)
            h = res_hash_opt(h, GW_OPT_URI_QUERY, o);
    }
    return h;
}

/* --- Rendering ------------------------------------------------------------------- */

static inline void cb_raw(struct gw_cb *b, const uint8_t *p, size_t n)
{
    if (b->err || n == 0)
        return;
    if (b->len + n > b->cap) {
        b->err = GW_ETOOBIG;
        return;
    }
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

/* Reads an option delta or length nibble with its extended bytes
 * (RFC 7252 section 3.1). Returns false on 15 or when out of bounds. */
static inline bool rd_ext(const uint8_t *m, size_t n, size_t *p, uint32_t nib, uint32_t *v)
{
    if (nib < 13) {
        *v = nib;
        return true;
    }
    if (nib == 13) {
        if (*p + 1 > n)
            return false;
        *v = 13u + m[*p];
        *p += 1;
        return true;
    }
    if (nib == 14) {
        if (*p + 2 > n)
            return false;
        *v = 269u + ((uint32_t)m[*p] << 8 | m[*p + 1]);
        *p += 2;
        return true;
    }
    return false;
}

int gw_rcache_render(const uint8_t *resp, size_t resp_len, uint32_t max_age_left_s, uint8_t type,
                     uint16_t mid, const uint8_t *token, uint8_t tkl, uint8_t *out, size_t cap,
                     size_t *len)
{
    const uint8_t *m = resp;
    size_t n = resp_len;
    /* Stored messages have no token (see sch_cache_put). */
    if (n < 4 || (m[0] & 15) != 0)
        return GW_EBADMSG;
    struct gw_cb b;
    gw_cb_init(&b, out, cap, type, m[1], mid, token, tkl);

    /* Walk the options up to the first one numbered above Max-Age. Those
     * before it are copied as they are (their deltas do not change), then
     * Max-Age, then that option re-encoded with its delta from 14, then the
     * remaining bytes (options, payload marker, payload) as they are. */
    size_t p = 4;
    uint32_t num = 0;
    while (p < n && m[p] != 0xff) {
        size_t start = p;
        uint32_t d, l;
        uint8_t h = m[p++];
        if (!rd_ext(m, n, &p, h >> 4, &d) || !rd_ext(m, n, &p, h & 15, &l) || p + l > n ||
            num + d > 0xffff || num + d == GW_OPT_MAX_AGE)
            return GW_EBADMSG;
        if (num + d > GW_OPT_MAX_AGE) {
            cb_raw(&b, m + 4, start - 4);
            b.last = (uint16_t)num;
            gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, max_age_left_s);
            gw_cb_opt(&b, (uint16_t)(num + d), m + p, l);
            cb_raw(&b, m + p + l, n - (p + l));
            return gw_cb_finish(&b, len);
        }
        num += d;
        p += l;
    }
    if (p < n && p + 1 == n)
        return GW_EBADMSG; /* payload marker with no payload */
    cb_raw(&b, m + 4, p - 4);
    b.last = (uint16_t)num;
    gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, max_age_left_s);
    cb_raw(&b, m + p, n - p);
    return gw_cb_finish(&b, len);
}

/* --- The table ------------------------------------------------------------------- */

#define W_KEYLEN(w) ((size_t)((w)&0xffff))
#define W_RESPLEN(w) ((size_t)(((w) >> 16) & 0xffff))

void gw_rcache_attach(struct gw_rcache *t, void *base, uint32_t nslots, uint32_t slot_size)
{
    t->base = base;
    t->nslots = base ? nslots : 0;
    t->slot_size = slot_size;
}

static inline struct gw_rcache_slot *slot_of(const struct gw_rcache *t, uint64_t res_hash)
{
    return (struct gw_rcache_slot *)(t->base + (size_t)(res_hash & (t->nslots - 1)) * t->slot_size);
}

/* A key hash that is never 0 (0 marks an empty slot). */
static inline uint64_t key_hash(const uint8_t *key, size_t klen)
{
    uint64_t h = gw_hash64(key, klen, GW_HASH_SEED);
    return h ? h : 1;
}

/* W1 .. W3 of the contract around a write of nw words from src. */
static void slot_write(struct gw_rcache_slot *s, const uint64_t *src, size_t nw)
{
    uint32_t seq = atomic_load_explicit(&s->seq, memory_order_relaxed);
    seq |= 1; /* a slot left odd by a killed writer stays odd until W3 */
    /* W1: odd, and no data store below may become visible before it;
     * pairs with R3 in gw_rcache_lookup. */
    atomic_store_explicit(&s->seq, seq, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
    /* W2 */
    for (size_t i = 0; i < nw; i++)
        atomic_store_explicit(&s->w[i], src[i], memory_order_relaxed);
    /* W3: even again; publishes the words. Pairs with R1. */
    atomic_store_explicit(&s->seq, seq + 1, memory_order_release);
}

static void slot_clear(struct gw_rcache_slot *s)
{
    static const uint64_t empty[GW_RCACHE_HDR_WORDS] = { 0, 0, 0, 0 };
    slot_write(s, empty, GW_RCACHE_HDR_WORDS);
}

int gw_rcache_store(struct gw_rcache *t, const uint8_t *key, size_t klen, uint64_t res_hash,
                    const uint8_t *resp, size_t resp_len, uint64_t expires_ms)
{
    if (!t->nslots)
        return 0;
    if (klen == 0 || klen > 0xffff || resp_len > 0xffff ||
        klen + resp_len > gw_rcache_capacity(t)) {
        gw_rcache_remove(t, key, klen, res_hash);
        return GW_ETOOBIG;
    }
    uint64_t words[GW_RCACHE_SLOT_MAX / 8];
    size_t nbytes = klen + resp_len, nw = GW_RCACHE_HDR_WORDS + (nbytes + 7) / 8;
    words[0] = (uint64_t)klen | (uint64_t)resp_len << 16;
    words[1] = expires_ms;
    words[2] = res_hash;
    words[3] = key_hash(key, klen);
    uint8_t *bytes = (uint8_t *)(words + GW_RCACHE_HDR_WORDS);
    memcpy(bytes, key, klen);
    memcpy(bytes + klen, resp, resp_len);
    memset(bytes + nbytes, 0, (nw - GW_RCACHE_HDR_WORDS) * 8 - nbytes);
    slot_write(slot_of(t, res_hash), words, nw);
    return 0;
}

/* Writer only: reads its own slot without the seqlock (no one else writes). */
static bool slot_holds(const struct gw_rcache *t, struct gw_rcache_slot *s, const uint8_t *key,
                       size_t klen)
{
    uint64_t w0 = atomic_load_explicit(&s->w[0], memory_order_relaxed);
    if (W_KEYLEN(w0) != klen ||
        atomic_load_explicit(&s->w[3], memory_order_relaxed) != key_hash(key, klen))
        return false;
    uint64_t kw[GW_RCACHE_SLOT_MAX / 8];
    size_t nw = (klen + 7) / 8;
    if (klen > gw_rcache_capacity(t))
        return false;
    for (size_t i = 0; i < nw; i++)
        kw[i] = atomic_load_explicit(&s->w[GW_RCACHE_HDR_WORDS + i], memory_order_relaxed);
    return memcmp(kw, key, klen) == 0;
}

void gw_rcache_remove(struct gw_rcache *t, const uint8_t *key, size_t klen, uint64_t res_hash)
{
    if (!t->nslots)
        return;
    struct gw_rcache_slot *s = slot_of(t, res_hash);
    if (slot_holds(t, s, key, klen))
        slot_clear(s);
}

void gw_rcache_invalidate(struct gw_rcache *t, uint64_t res_hash)
{
    if (!t->nslots)
        return;
    struct gw_rcache_slot *s = slot_of(t, res_hash);
    if (atomic_load_explicit(&s->w[3], memory_order_relaxed) != 0 &&
        atomic_load_explicit(&s->w[2], memory_order_relaxed) == res_hash)
        slot_clear(s);
}

void gw_rcache_clear_all(struct gw_rcache *t)
{
    for (uint32_t i = 0; i < t->nslots; i++)
        slot_clear((struct gw_rcache_slot *)(t->base + (size_t)i * t->slot_size));
}

int gw_rcache_lookup(const struct gw_rcache *t, const uint8_t *key, size_t klen, uint64_t res_hash,
                     uint64_t now_ms, uint8_t *resp, size_t cap, size_t *resp_len,
                     uint32_t *max_age_left_s)
{
    if (!t->nslots || klen == 0)
        return GW_RCACHE_MISS;
    struct gw_rcache_slot *s = slot_of(t, res_hash);
    uint64_t kh = key_hash(key, klen);
    size_t capw = gw_rcache_capacity(t);
    uint64_t words[GW_RCACHE_SLOT_MAX / 8];
    /* Bounded: a slot rewritten under us twice in a row is a miss. */
    for (int attempt = 0; attempt < 2; attempt++) {
        /* R1: pairs with W3. */
        uint32_t s1 = atomic_load_explicit(&s->seq, memory_order_acquire);
        if (s1 & 1)
            return GW_RCACHE_MISS; /* being written, or its writer died: a miss */
        /* R2: header, then only as many words as the lengths need; lengths
         * from a torn copy are bounded by the slot and checked again at R3. */
        for (size_t i = 0; i < GW_RCACHE_HDR_WORDS; i++)
            words[i] = atomic_load_explicit(&s->w[i], memory_order_relaxed);
        size_t kl = W_KEYLEN(words[0]), rl = W_RESPLEN(words[0]);
        bool usable = words[3] == kh && kl == klen && words[2] == res_hash && kl + rl <= capw &&
                      rl <= cap && now_ms < words[1];
        if (usable) {
            size_t nw = (kl + rl + 7) / 8;
            for (size_t i = 0; i < nw; i++)
                words[GW_RCACHE_HDR_WORDS + i] =
                    atomic_load_explicit(&s->w[GW_RCACHE_HDR_WORDS + i], memory_order_relaxed);
        }
        /* R3: pairs with W1's release fence. */
        atomic_thread_fence(memory_order_acquire);
        uint32_t s2 = atomic_load_explicit(&s->seq, memory_order_relaxed);
        if (s1 != s2)
            continue; /* torn: try once more */
        if (!usable)
            return GW_RCACHE_MISS;
        const uint8_t *bytes = (const uint8_t *)(words + GW_RCACHE_HDR_WORDS);
        if (memcmp(bytes, key, klen) != 0)
            return GW_RCACHE_MISS;
        memcpy(resp, bytes + kl, rl);
        *resp_len = rl;
        *max_age_left_s =
            (uint32_t)((words[1] - now_ms) / 1000 > UINT32_MAX ? UINT32_MAX
                                                               : (words[1] - now_ms) / 1000);
        return GW_RCACHE_FRESH;
    }
    return GW_RCACHE_MISS;
}
