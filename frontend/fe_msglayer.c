/* SPDX-License-Identifier: MIT */
/* fe_msglayer.c - the client-facing message layer: deduplication table and CON retransmission
 * table (see fe_msglayer.h). */
#include "fe_msglayer.h"
#include "gw_error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The gw_map key of (ep, k): SipHash under the table's per-process key. */
static uint64_t key_hash(const uint64_t key[2], const struct gw_ep *ep, const void *k, size_t kl)
{
    uint8_t buf[sizeof(*ep) + 8];
    memcpy(buf, ep, sizeof(*ep));
    kl = GW_MIN(kl, (size_t)8);
    memcpy(buf + sizeof(*ep), k, kl);
    return gw_siphash(key, buf, sizeof(*ep) + kl);
}

/* ---- dedup ----
 * An exchange is (endpoint, MID, token): a retransmission is an identical
 * copy of its message (RFC 7252 4.5), so a request that reuses a MID with
 * another token within the lifetime is a new request, not a duplicate
 * (S3.3). A forwarding node above ~130 requests a second to one owner, or a
 * client whose MID counter wraps, reuses MIDs; keyed by (endpoint, MID)
 * alone the new request got the stored answer of the old one, or an empty
 * ACK and nothing more. The index key is SipHash of all three, compared in
 * full (64 bits) with the endpoint and MID (the entry keeps the port, its
 * source record the address); the key is kept in the entry (hkey) so that
 * freeing it needs no token. */

static uint64_t dedup_key(const uint64_t key[2], const struct gw_ep *ep, uint16_t mid,
                          const uint8_t *token, uint8_t tkl)
{
    uint8_t buf[sizeof(*ep) + 2 + 1 + 8];
    size_t n = 0;
    tkl = (uint8_t)GW_MIN(tkl, 8u);
    memcpy(buf, ep, sizeof(*ep));
    n += sizeof(*ep);
    memcpy(buf + n, &mid, 2);
    n += 2;
    buf[n++] = tkl; /* so token "" and "\0" differ */
    if (tkl)
        memcpy(buf + n, token, tkl);
    return gw_siphash(key, buf, n + tkl);
}

/* ---- the entry index (fe_msglayer.h struct fe_dedup_idx) ---- */

static int didx_init(struct fe_dedup_idx *x, uint32_t slots)
{
    x->slot = calloc(slots, sizeof(*x->slot));
    x->mask = slots - 1;
    x->n = 0;
    return x->slot ? 0 : -ENOMEM;
}

/* Puts entry `idx` (key h) into the first empty slot of h's run. */
static void didx_place(struct fe_dedup_idx *x, uint64_t h, uint32_t idx)
{
    uint32_t i = (uint32_t)h & x->mask;
    while (x->slot[i])
        i = (i + 1) & x->mask;
    x->slot[i] = idx + 1;
}

/* Adds entry idx under key h, doubling at 3/4 load (up to 2 * cap slots,
 * which cap entries never exceed). At 1/2, 5 000 registrations sat in
 * 16 384 slots for EXCHANGE_LIFETIME, 13 bytes each; at 3/4 in 8 192
 * (issue 13 item 4). A probe reads the entry's key (hkey) beside it, so a
 * fuller index costs some of those reads on a miss; a table at its cap (a
 * power of two) has as many slots as at 1/2. `at` is the empty slot that
 * ended h's probe run when nothing has moved since (fe_dedup_get), else
 * UINT32_MAX. 0 or -ENOMEM. */
static int didx_add(struct fe_dedup *d, uint64_t h, uint32_t idx, uint32_t at)
{
    struct fe_dedup_idx *x = &d->idx;
    if ((uint64_t)(x->n + 1) * 4 > ((uint64_t)x->mask + 1) * 3) {
        struct fe_dedup_idx g;
        if (didx_init(&g, (x->mask + 1) * 2) != 0)
            return -ENOMEM;
        for (uint32_t i = 0; i <= x->mask; i++)
            if (x->slot[i])
                didx_place(&g, d->e[x->slot[i] - 1].hkey, x->slot[i] - 1);
        g.n = x->n;
        free(x->slot);
        *x = g;
        at = UINT32_MAX; /* the slots were re-placed */
    }
    if (at != UINT32_MAX)
        x->slot[at] = idx + 1;
    else
        didx_place(x, h, idx);
    x->n++;
    return 0;
}

/* Removes entry idx (its key is d->e[idx].hkey); backward shift, so no
 * look-up meets an empty slot before its key. */
static void didx_del(struct fe_dedup *d, uint32_t idx)
{
    struct fe_dedup_idx *x = &d->idx;
    uint32_t mask = x->mask, i = (uint32_t)d->e[idx].hkey & mask;
    while (x->slot[i] && x->slot[i] != idx + 1)
        i = (i + 1) & mask;
    if (!x->slot[i])
        return;
    uint32_t hole = i;
    for (uint32_t j = (hole + 1) & mask; x->slot[j]; j = (j + 1) & mask) {
        uint32_t home = (uint32_t)d->e[x->slot[j] - 1].hkey & mask;
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            x->slot[hole] = x->slot[j];
            hole = j;
        }
    }
    x->slot[hole] = 0;
    x->n--;
}

int fe_dedup_init(struct fe_dedup *d, uint32_t cap, uint64_t lifetime_ms, size_t resp_budget)
{
    memset(d, 0, sizeof(*d));
    d->cap = cap;
    d->e = calloc(cap, sizeof(*d->e));
    d->free_list = calloc(cap, sizeof(uint32_t));
    d->src = calloc(cap, sizeof(*d->src));
    d->src_free = calloc(cap, sizeof(uint32_t));
    /* Expiries are 32-bit offsets from d->epoch (dedup_rebase); the config
     * bounds the lifetime to an hour, this keeps the arithmetic safe. */
    d->lifetime_ms = GW_MIN(lifetime_ms, (uint64_t)INT32_MAX);
    d->resp_budget = resp_budget;
    /* Both indexes start small and double up to cap: a table sized for
     * 65 536 keys at once is 2 MiB whose pages every few thousand random
     * keys all touch, more resident memory than the entries themselves
     * (issue 13 item 4; the source index, one key per client endpoint, was
     * 105 B of every idle session's 478 B). The source index is grown
     * before an entry takes a source (gw_map_reserve), so linking one never
     * fails; when either cannot grow, the exchange is not remembered (NULL,
     * as for a sessionless sender without room). */
    if (!d->e || !d->free_list || !d->src || !d->src_free || didx_init(&d->idx, 512) != 0 ||
        gw_map_init(&d->src_idx, GW_MIN(cap, 256u), cap) != 0) {
        fe_dedup_deinit(d);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < cap; i++)
        d->free_list[i] = d->src_free[i] = cap - 1 - i;
    d->nfree = d->nsrc_free = cap;
    gw_hash_key_new(d->key);
    fe_dedup_limit(d, GW_MAX(cap / 4, 1u), cap);
    return 0;
}

void fe_dedup_limit(struct fe_dedup *d, uint32_t sessionless_cap, uint32_t per_source)
{
    d->sessionless_cap = GW_MAX(1u, GW_MIN(sessionless_cap, GW_MAX(d->cap / 2, 1u)));
    d->per_source = GW_MAX(per_source, 1u);
    d->cls[FE_DEDUP_SESSIONLESS].resp_budget = d->resp_budget / 4;
    d->cls[FE_DEDUP_SESSION].resp_budget = d->resp_budget;
}

void fe_dedup_deinit(struct fe_dedup *d)
{
    if (d->e)
        for (uint32_t i = 0; i < d->cap; i++)
            if (!d->e[i].code)
                free(d->e[i].resp);
    free(d->e);
    free(d->free_list);
    free(d->src);
    free(d->src_free);
    free(d->idx.slot);
    d->idx.slot = NULL;
    gw_map_deinit(&d->src_idx);
    d->e = NULL;
    d->free_list = NULL;
    d->src = NULL;
    d->src_free = NULL;
}

static struct fe_dedup_entry *E(struct fe_dedup *d, uint32_t ref)
{
    return &d->e[ref - 1];
}

/* A sender's source key in a class: the endpoint, or for SESSIONLESS its
 * address (port 0: a spoofer picks ports freely, one share per address). */
static struct gw_ep src_key(const struct gw_ep *ep, uint8_t cls)
{
    struct gw_ep k = *ep;
    if (cls == FE_DEDUP_SESSIONLESS)
        k.port = 0;
    return k;
}

/* The source record of key k (index + 1), 0 when it has none; *h gets the
 * key's hash for src_new, so a sender is hashed once per exchange. */
static uint32_t src_find(struct fe_dedup *d, const struct gw_ep *k, uint8_t cls, uint64_t *h)
{
    *h = key_hash(d->key, k, &cls, 1);
    for (uint32_t i = gw_map_first(&d->src_idx, *h); i != GW_MAP_END;
         i = gw_map_more(&d->src_idx, *h, i)) {
        uint32_t r = (uint32_t)d->src_idx.slot[i].val;
        if (d->src[r].cls == cls && gw_ep_eq(&d->src[r].key, k))
            return r + 1;
    }
    return 0;
}

/* A new source record for key k (hash h from src_find), 0 when none is
 * left (cannot happen: a record per entry at most). The caller reserved
 * room in the index. */
static uint32_t src_new(struct fe_dedup *d, const struct gw_ep *k, uint8_t cls, uint64_t h)
{
    if (d->nsrc_free == 0)
        return 0;
    uint32_t r = d->src_free[--d->nsrc_free];
    /* Cannot fail: at most cap records, and the caller reserved room. */
    GW_IGNORE(gw_map_add(&d->src_idx, h, r));
    struct fe_dedup_src *s = &d->src[r];
    memset(s, 0, sizeof(*s));
    s->key = *k;
    s->cls = cls;
    return r + 1;
}

/* sref after evictions: dedup_room only frees, and a freed record has no
 * entries (a live one holds at least one), so it is gone iff its count is 0;
 * then a new one is made under the same hash. */
static uint32_t src_after_room(struct fe_dedup *d, uint32_t sref, const struct gw_ep *k,
                               uint8_t cls, uint64_t h)
{
    if (sref && d->src[sref - 1].count > 0)
        return sref;
    return src_new(d, k, cls, h);
}

/* Frees a source record whose last entry left. */
static void src_remove(struct fe_dedup *d, uint32_t ref)
{
    struct fe_dedup_src *s = &d->src[ref - 1];
    gw_map_del_kv(&d->src_idx, key_hash(d->key, &s->key, &s->cls, 1), ref - 1);
    memset(s, 0, sizeof(*s));
    d->src_free[d->nsrc_free++] = ref - 1;
}

/* Links entry idx at the newest end of its class and source lists. */
static void dedup_link(struct fe_dedup *d, uint32_t idx, uint32_t sref)
{
    struct fe_dedup_entry *x = &d->e[idx];
    struct fe_dedup_list *l = &d->cls[x->cls];
    struct fe_dedup_src *s = &d->src[sref - 1];
    x->older = l->newest;
    x->newer = 0;
    if (l->newest)
        E(d, l->newest)->newer = idx + 1;
    else
        l->oldest = idx + 1;
    l->newest = idx + 1;
    l->count++;
    x->src = sref;
    x->src_older = s->newest;
    x->src_newer = 0;
    if (s->newest)
        E(d, s->newest)->src_newer = idx + 1;
    else
        s->oldest = idx + 1;
    s->newest = idx + 1;
    s->count++;
}

/* Unlinks entry idx from its class and source lists (the record may be freed). */
static void dedup_unlink_lists(struct fe_dedup *d, uint32_t idx)
{
    struct fe_dedup_entry *x = &d->e[idx];
    struct fe_dedup_list *l = &d->cls[x->cls];
    if (x->older)
        E(d, x->older)->newer = x->newer;
    else
        l->oldest = x->newer;
    if (x->newer)
        E(d, x->newer)->older = x->older;
    else
        l->newest = x->older;
    l->count--;
    struct fe_dedup_src *s = &d->src[x->src - 1];
    if (x->src_older)
        E(d, x->src_older)->src_newer = x->src_newer;
    else
        s->oldest = x->src_newer;
    if (x->src_newer)
        E(d, x->src_newer)->src_older = x->src_older;
    else
        s->newest = x->src_older;
    if (--s->count == 0)
        src_remove(d, x->src);
    x->src = 0;
}

/* An entry's expiry in ms: its 32-bit offset from the table's epoch. */
static uint64_t dedup_expiry(const struct fe_dedup *d, const struct fe_dedup_entry *x)
{
    return d->epoch + x->expires;
}

/* Moves the epoch to `now` before a new entry's expiry would not fit 32
 * bits (the clock 2^32 ms, 49 days, past it): live entries keep their
 * expiry, expired ones not yet reclaimed expire at the new epoch. O(cap)
 * once in about 49 days of traffic; a 64-bit expiry would make every
 * entry 8 bytes larger (the entry is 48 bytes, fe_msglayer.h). */
static void dedup_rebase(struct fe_dedup *d, uint64_t now)
{
    if (now <= d->epoch || now + d->lifetime_ms - d->epoch <= UINT32_MAX)
        return;
    for (uint32_t i = 0; i < d->cap; i++) {
        struct fe_dedup_entry *x = &d->e[i];
        if (!x->used)
            continue;
        uint64_t exp = dedup_expiry(d, x);
        x->expires = exp > now ? (uint32_t)(exp - now) : 0;
    }
    d->epoch = now;
}

static void dedup_free(struct fe_dedup *d, uint32_t idx, uint64_t now)
{
    struct fe_dedup_entry *x = &d->e[idx];
    if (dedup_expiry(d, x) > now)
        d->evicted_early++;
    didx_del(d, idx);
    dedup_unlink_lists(d, idx);
    if (x->code) {
        x->code = 0;
        x->diag = NULL;
    } else {
        fe_dedup_drop_resp(d, x);
    }
    x->used = 0;
    d->count--;
    d->free_list[d->nfree++] = idx;
}

/* Entries expire in arrival order within a class: drop from the oldest end. */
static void dedup_expire(struct fe_dedup *d, uint64_t now)
{
    for (int c = 0; c < 2; c++)
        while (d->cls[c].oldest && dedup_expiry(d, E(d, d->cls[c].oldest)) <= now)
            dedup_free(d, d->cls[c].oldest - 1, now);
}

/* Probes h's run for (ep, mid): the entry's index, or UINT32_MAX with *end
 * the empty slot that ended the run. */
static uint32_t didx_probe(const struct fe_dedup *d, uint64_t h, const struct gw_ep *ep,
                           uint16_t mid, uint32_t *end)
{
    const struct fe_dedup_idx *ix = &d->idx;
    uint32_t i = (uint32_t)h & ix->mask;
    for (; ix->slot[i]; i = (i + 1) & ix->mask) {
        uint32_t k = ix->slot[i] - 1;
        const struct fe_dedup_entry *x = &d->e[k];
        if (x->hkey != h || x->mid != mid || x->port != ep->port || !x->src)
            continue;
        const struct gw_ep *sk = &d->src[x->src - 1].key; /* the address */
        if (sk->family == ep->family && memcmp(sk->addr, ep->addr, sizeof(sk->addr)) == 0)
            return k;
    }
    *end = i;
    return UINT32_MAX;
}

struct fe_dedup_entry *fe_dedup_find(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid,
                                     const uint8_t *token, uint8_t tkl, uint64_t now)
{
    uint32_t end;
    uint32_t k = didx_probe(d, dedup_key(d->key, ep, mid, token, tkl), ep, mid, &end);
    if (k == UINT32_MAX)
        return NULL;
    return dedup_expiry(d, &d->e[k]) > now ? &d->e[k] : NULL;
}

/* Makes room for one entry of `cls` from source `sref`: false when there is
 * none that this sender may take. */
static bool dedup_room(struct fe_dedup *d, uint8_t cls, uint32_t sref, uint64_t now)
{
    /* A source over its share forgets its own oldest first. */
    if (sref && d->src[sref - 1].count >= d->per_source)
        dedup_free(d, d->src[sref - 1].oldest - 1, now);
    struct fe_dedup_list *sl = &d->cls[FE_DEDUP_SESSIONLESS];
    if (cls == FE_DEDUP_SESSIONLESS && sl->count >= d->sessionless_cap && sl->oldest)
        dedup_free(d, sl->oldest - 1, now);
    if (d->nfree)
        return true;
    if (sl->oldest) {
        dedup_free(d, sl->oldest - 1, now);
        return true;
    }
    if (cls == FE_DEDUP_SESSIONLESS)
        return false; /* never at the expense of a sender with a session */
    dedup_free(d, d->cls[FE_DEDUP_SESSION].oldest - 1, now);
    return true;
}

struct fe_dedup_entry *fe_dedup_get(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid,
                                    const uint8_t *token, uint8_t tkl, uint64_t now,
                                    enum fe_dedup_class cls, bool *dup)
{
    uint64_t h = dedup_key(d->key, ep, mid, token, tkl);
    *dup = false;
    dedup_expire(d, now);
    uint32_t at;
    uint32_t k = didx_probe(d, h, ep, mid, &at);
    if (k != UINT32_MAX) {
        if (dedup_expiry(d, &d->e[k]) > now) {
            *dup = true;
            return &d->e[k];
        }
        /* Expired but not yet reclaimed (a promoted entry sits behind newer
         * ones in its class list): it goes, and the run is probed again. */
        dedup_free(d, k, now);
        (void)didx_probe(d, h, ep, mid, &at);
    }
    if (gw_map_reserve(&d->src_idx, d->src_idx.n + 1) != 0)
        return NULL; /* no room for a new source: not remembered */
    struct gw_ep skey = src_key(ep, (uint8_t)cls);
    uint64_t sh;
    uint32_t sref = src_find(d, &skey, (uint8_t)cls, &sh);
    uint32_t before = d->count;
    if (!dedup_room(d, (uint8_t)cls, sref, now))
        return NULL;
    if (d->count != before)
        at = UINT32_MAX; /* an eviction shifted slots back: probe again */
    uint32_t idx = d->free_list[d->nfree - 1];
    struct fe_dedup_entry *x = &d->e[idx];
    memset(x, 0, sizeof(*x)); /* a free entry: nothing of it is kept */
    x->hkey = h;              /* before the add: a growth re-places by hkey */
    if (didx_add(d, h, idx, at) != 0)
        return NULL; /* the index could not grow: not remembered */
    sref = src_after_room(d, sref, &skey, (uint8_t)cls, sh);
    d->nfree--;
    d->count++;
    x->mid = mid;
    x->port = ep->port;
    x->used = 1;
    x->cls = (uint8_t)cls & 1;
    dedup_rebase(d, now);
    uint64_t exp = now + d->lifetime_ms;
    x->expires = exp > d->epoch ? (uint32_t)(exp - d->epoch) : 0;
    dedup_link(d, idx, sref);
    return x;
}

struct fe_dedup_entry *fe_dedup_add_cls(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid,
                                        const uint8_t *token, uint8_t tkl, uint64_t now,
                                        enum fe_dedup_class cls)
{
    bool dup;
    return fe_dedup_get(d, ep, mid, token, tkl, now, cls, &dup);
}

struct fe_dedup_entry *fe_dedup_add(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid,
                                    const uint8_t *token, uint8_t tkl, uint64_t now)
{
    return fe_dedup_add_cls(d, ep, mid, token, tkl, now, FE_DEDUP_SESSION);
}

void fe_dedup_promote(struct fe_dedup *d, struct fe_dedup_entry *e, uint64_t now)
{
    if (!e || !e->used || e->cls == FE_DEDUP_SESSION)
        return;
    if (gw_map_reserve(&d->src_idx, d->src_idx.n + 1) != 0)
        return; /* stays SESSIONLESS: it keeps its answer, only its share differs */
    uint32_t idx = (uint32_t)(e - d->e);
    struct gw_ep ep = d->src[e->src - 1].key; /* its address, and its port: */
    ep.port = e->port;
    dedup_unlink_lists(d, idx);
    size_t rl = e->resp && !e->code ? e->resp_len : 0;
    d->cls[FE_DEDUP_SESSIONLESS].resp_bytes -= rl;
    e->cls = FE_DEDUP_SESSION;
    d->cls[FE_DEDUP_SESSION].resp_bytes += rl;
    /* Its own source's share is bounded like any other entry's; the entry is
     * off every list meanwhile, so it cannot evict itself. */
    uint64_t sh;
    uint32_t sref = src_find(d, &ep, FE_DEDUP_SESSION, &sh);
    if (sref && d->src[sref - 1].count >= d->per_source)
        dedup_free(d, d->src[sref - 1].oldest - 1, now);
    sref = src_after_room(d, sref, &ep, FE_DEDUP_SESSION, sh);
    dedup_link(d, idx, sref);
}

void fe_dedup_set_resp(struct fe_dedup *d, struct fe_dedup_entry *e, const uint8_t *buf, size_t len)
{
    struct fe_dedup_list *l = &d->cls[e->cls];
    if (e->code || e->resp || len > 0xffff || d->resp_bytes + len > d->resp_budget ||
        l->resp_bytes + len > l->resp_budget)
        return;
    e->resp = malloc(len);
    if (!e->resp)
        return;
    memcpy(e->resp, buf, len);
    e->resp_len = (uint16_t)len;
    d->resp_bytes += len;
    l->resp_bytes += len;
}

void fe_dedup_drop_resp(struct fe_dedup *d, struct fe_dedup_entry *e)
{
    if (e->code || !e->resp)
        return;
    d->resp_bytes -= e->resp_len;
    d->cls[e->cls].resp_bytes -= e->resp_len;
    free(e->resp);
    e->resp = NULL;
    e->resp_len = 0;
}

bool fe_dedup_set_code(struct fe_dedup_entry *e, uint8_t code, const char *diag, uint32_t max_age)
{
    if (!code || e->code || e->resp || (max_age != UINT32_MAX && max_age > 0xfffe))
        return false;
    e->code = code;
    e->diag = diag;
    e->resp_len = max_age == UINT32_MAX ? 0xffff : (uint16_t)max_age;
    return true;
}

/* ---- retransmission ----
 * The MID index is keyed by the MID alone (gw_map mixes it into a slot):
 * every MID in the table was drawn by this gateway from one counter
 * (gw_shm.h client_mid), so a sender cannot aim at a probe run, and an ACK
 * is matched without hashing its endpoint (issue 13 item 3). The entry's
 * endpoint is compared as before. */

static uint64_t mid_key(uint16_t mid)
{
    return (uint64_t)mid + 1;
}

struct fe_nbody *fe_nbody_new(const uint8_t *msg, size_t len)
{
    if (len < 4 || len > GW_COAP_MAX_MSG + 16)
        return NULL;
    struct fe_nbody *b = malloc(sizeof(*b) + len);
    if (!b)
        return NULL;
    b->refs = 0;
    b->len = (uint16_t)len;
    memcpy(b->msg, msg, len);
    return b;
}

void fe_nbody_drop(struct fe_nbody *b)
{
    if (b && b->refs == 0)
        free(b);
}

static void nbody_unref(struct fe_nbody *b)
{
    if (b && --b->refs == 0)
        free(b);
}

size_t fe_nbody_render(const struct fe_nbody *b, uint8_t type, uint16_t mid, const uint8_t *token,
                       uint8_t tkl, uint8_t *out)
{
    out[0] = (uint8_t)((b->msg[0] & 0xc0) | (type & 3) << 4 | (tkl & 15));
    out[1] = b->msg[1];
    out[2] = (uint8_t)(mid >> 8);
    out[3] = (uint8_t)mid;
    memcpy(out + 4, token, tkl);
    memcpy(out + 4 + tkl, b->msg + 4, b->len - 4u);
    return (size_t)b->len + tkl;
}

/* Eight ghost slots per entry, at most one per MID: a replaced MID is
 * looked up by its low bits, and the MIDs of the notifications replaced
 * while others are in flight spread over many more values than there are
 * entries (tens of thousands a second in a storm). A ghost lost to a
 * collision makes its late ACK look like a stranger's (a session look-up
 * and a record for the scheduler, fe_core.c). */
static uint32_t ghost_size(uint32_t alloc)
{
    uint32_t n = 16;
    while (n < alloc * 8 && n < 65536u)
        n <<= 1;
    return n;
}

/* The ghost table for `alloc` entries, filled from the live entries (it is
 * lossy anyway: colliding MIDs forget the older ghost). False when out of
 * memory; the old table then stays. */
static bool ghost_rebuild(struct fe_rtx *t, uint32_t alloc)
{
    uint32_t n = ghost_size(alloc);
    uint32_t *g = calloc(n, sizeof(*g));
    if (!g)
        return false;
    for (uint32_t i = 0; i < t->alloc; i++)
        if (t->e[i].used && t->e[i].ghost)
            g[t->e[i].ghost_mid & (n - 1)] = i + 1;
    free(t->ghost);
    t->ghost = g;
    t->nghost = n;
    return true;
}

int fe_rtx_init(struct fe_rtx *t, uint32_t cap, uint64_t ack_timeout_ms, uint32_t max_retransmit)
{
    memset(t, 0, sizeof(*t));
    t->cap = cap;
    t->alloc = GW_MIN(cap, FE_RTX_MIN);
    t->e = calloc(t->alloc, sizeof(*t->e));
    t->free_list = calloc(t->alloc, sizeof(uint32_t));
    t->nghost = ghost_size(t->alloc);
    t->ghost = calloc(t->nghost, sizeof(uint32_t));
    t->ack_timeout_ms = ack_timeout_ms;
    t->max_retransmit = max_retransmit;
    gw_hash_key_new(t->key);
    /* Everything starts small and doubles with the messages in flight (up
     * to cap): the token look-up per notification then stays in cache
     * (issue 13 item 3), and a few thousand random keys do not touch every
     * page of a table sized for cap (2 MiB each at 65 536; issue 13 item 4).
     * When one cannot grow, the message goes out untracked. */
    if (!t->e || !t->free_list || !t->ghost ||
        gw_map_init(&t->by_mid, GW_MIN(cap, 128u), cap) != 0 ||
        gw_map_init(&t->by_tok, GW_MIN(cap, 128u), cap) != 0 ||
        gw_heap_init_growing(&t->heap, t->alloc * 2 + 16, cap * 2 + 16) != 0) {
        fe_rtx_deinit(t);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < t->alloc; i++)
        t->free_list[i] = t->alloc - 1 - i;
    t->free_head = t->alloc;
    return 0;
}

/* The table's arrays and indexes, not what entries own (the deinit and the
 * compaction, which moved the entries' buffers and bodies, share this). */
static void rtx_free_tables(struct fe_rtx *t)
{
    free(t->e);
    free(t->free_list);
    free(t->ghost);
    gw_map_deinit(&t->by_mid);
    gw_map_deinit(&t->by_tok);
    gw_heap_deinit(&t->heap);
}

void fe_rtx_deinit(struct fe_rtx *t)
{
    if (t->e)
        for (uint32_t i = 0; i < t->alloc; i++) {
            free(t->e[i].buf);
            if (t->e[i].used)
                nbody_unref(t->e[i].body);
        }
    rtx_free_tables(t);
    memset(t, 0, sizeof(*t));
}

/* Doubles the entries (up to cap); indexes stay, so nothing is re-keyed.
 * 0, GW_EFULL at cap, or -ENOMEM. */
static int rtx_grow(struct fe_rtx *t)
{
    if (t->alloc >= t->cap)
        return GW_EFULL;
    uint32_t n = t->alloc > t->cap / 2 ? t->cap : t->alloc * 2;
    struct fe_rtx_entry *e = realloc(t->e, (size_t)n * sizeof(*e));
    if (!e)
        return -ENOMEM;
    t->e = e;
    memset(e + t->alloc, 0, (size_t)(n - t->alloc) * sizeof(*e));
    uint32_t *fl = realloc(t->free_list, (size_t)n * sizeof(*fl));
    if (!fl)
        return -ENOMEM; /* the entries stay larger; a later call tries again */
    t->free_list = fl;
    /* Lowest new index on top of the stack: entries stay packed. */
    for (uint32_t i = n; i-- > t->alloc;)
        t->free_list[t->free_head++] = i;
    uint32_t old = t->alloc;
    t->alloc = n;
    if (ghost_size(n) != ghost_size(old))
        GW_IGNORE(ghost_rebuild(t, n));
    t->resized++;
    return 0;
}

/* When at most an eighth of the entries is used, moves the live ones to the
 * front of a table half as large (or smaller, down to a quarter used) with
 * indexes, timers and ghosts rebuilt for it, and frees the old one. Nothing
 * changes when an allocation fails. O(alloc), at most once per halving. */
static void rtx_maybe_compact(struct fe_rtx *t)
{
    if (t->no_shrink || t->alloc <= FE_RTX_MIN || (uint64_t)t->used * 8 > t->alloc)
        return;
    uint32_t n = t->alloc / 2;
    while (n / 2 >= FE_RTX_MIN && (uint64_t)t->used * 4 <= n / 2)
        n /= 2;
    n = GW_MAX(n, FE_RTX_MIN);
    struct fe_rtx_entry *e = calloc(n, sizeof(*e));
    uint32_t *fl = calloc(n, sizeof(*fl));
    uint32_t ng = ghost_size(n);
    uint32_t *g = calloc(ng, sizeof(*g));
    struct gw_map bm, bt;
    struct gw_heap h;
    /* Room for every live key without growing: the adds below cannot fail. */
    uint32_t keys = GW_MAX(t->used, GW_MIN(n, 128u));
    bool maps = gw_map_init(&bm, keys, t->cap) == 0;
    bool mapt = gw_map_init(&bt, keys, t->cap) == 0;
    bool heap = gw_heap_init_growing(&h, n * 2 + 16, t->cap * 2 + 16) == 0;
    if (!e || !fl || !g || !maps || !mapt || !heap) {
        free(e);
        free(fl);
        free(g);
        if (maps)
            gw_map_deinit(&bm);
        if (mapt)
            gw_map_deinit(&bt);
        if (heap)
            gw_heap_deinit(&h);
        return;
    }
    uint32_t j = 0;
    for (uint32_t i = 0; i < t->alloc; i++) {
        struct fe_rtx_entry *x = &t->e[i];
        if (!x->used)
            continue;
        e[j] = *x;
        GW_IGNORE(gw_map_add(&bm, mid_key(x->mid), j));
        if (x->notify)
            GW_IGNORE(gw_map_add(&bt, x->h_tok, j));
        GW_IGNORE(gw_heap_push(&h, x->deadline, j, x->gen));
        if (x->ghost)
            g[x->ghost_mid & (ng - 1)] = j + 1;
        j++;
    }
    for (uint32_t k = 0; k < n - j; k++)
        fl[k] = n - 1 - k;
    rtx_free_tables(t);
    t->e = e;
    t->free_list = fl;
    t->free_head = n - j;
    t->ghost = g;
    t->nghost = ng;
    t->by_mid = bm;
    t->by_tok = bt;
    t->heap = h;
    t->alloc = n;
    t->resized++;
}

/* Re-links an entry under its new MID after its old key was removed: the
 * index holds no more keys than before, so it does not grow and this
 * cannot fail. */
static void rtx_relink_mid(struct fe_rtx *t, uint32_t idx)
{
    GW_IGNORE(gw_map_add(&t->by_mid, mid_key(t->e[idx].mid), idx));
}

static uint32_t ghost_slot(const struct fe_rtx *t, uint16_t mid)
{
    return mid & (t->nghost - 1);
}

static void ghost_clear(struct fe_rtx *t, uint32_t idx)
{
    struct fe_rtx_entry *x = &t->e[idx];
    if (!x->ghost)
        return;
    uint32_t g = ghost_slot(t, x->ghost_mid);
    if (t->ghost[g] == idx + 1)
        t->ghost[g] = 0;
    x->ghost = 0;
}

/* The message of an entry, own copy or shared body: its bytes are released. */
static void rtx_release(struct fe_rtx_entry *x)
{
    free(x->buf);
    x->buf = NULL;
    nbody_unref(x->body);
    x->body = NULL;
}

static void rtx_free(struct fe_rtx *t, uint32_t idx)
{
    struct fe_rtx_entry *x = &t->e[idx];
    gw_map_del_kv(&t->by_mid, mid_key(x->mid), idx);
    if (x->notify)
        gw_map_del_kv(&t->by_tok, x->h_tok, idx);
    ghost_clear(t, idx);
    rtx_release(x);
    x->used = 0;
    x->gen++;
    t->free_list[t->free_head++] = idx;
    t->used--;
    rtx_maybe_compact(t);
}

static int rtx_find_tok(struct fe_rtx *t, const struct gw_ep *ep, const uint8_t *token, uint8_t tkl,
                        uint64_t h)
{
    for (uint32_t i = gw_map_first(&t->by_tok, h); i != GW_MAP_END;
         i = gw_map_more(&t->by_tok, h, i)) {
        uint32_t idx = (uint32_t)t->by_tok.slot[i].val;
        struct fe_rtx_entry *x = &t->e[idx];
        if (x->tkl == tkl && memcmp(x->token, token, tkl) == 0 && gw_ep_eq(&x->ep, ep))
            return (int)idx;
    }
    return -1;
}

static int arm(struct fe_rtx *t, uint32_t idx)
{
    struct fe_rtx_entry *x = &t->e[idx];
    if (gw_heap_push(&t->heap, x->deadline, idx, x->gen) == 0)
        return 0;
    /* The heap holds stale items of re-armed timers: rebuild it from the table. */
    t->heap.n = 0;
    for (uint32_t i = 0; i < t->alloc; i++)
        if (t->e[i].used && gw_heap_push(&t->heap, t->e[i].deadline, i, t->e[i].gen) != 0)
            return GW_EFULL;
    return 0;
}

/* Tracks a message whose bytes are `buf` (owned from here: freed on
 * failure) or `body` (one more reference, taken on success only). */
static int rtx_add(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, uint8_t *buf, size_t len,
                   struct fe_nbody *body, bool notify, const uint8_t *token, uint8_t tkl,
                   uint64_t session, uint64_t now, uint32_t rnd)
{
    uint64_t h_tok = 0;
    if (notify)
        t->notified[mid >> 6] |= 1ull << (mid & 63);
    else
        t->notified[mid >> 6] &= ~(1ull << (mid & 63));
    if (notify) {
        h_tok = key_hash(t->key, ep, token, tkl);
        int old = rtx_find_tok(t, ep, token, tkl, h_tok);
        if (old >= 0) {
            /* RFC 7641 4.5.2: the newer notification replaces the one in
             * flight and inherits its counter and timeout. The old MID is
             * remembered, so that its late ACK is known for what it is. */
            struct fe_rtx_entry *x = &t->e[old];
            gw_map_del_kv(&t->by_mid, mid_key(x->mid), (uint32_t)old);
            ghost_clear(t, (uint32_t)old);
            x->ghost_mid = x->mid;
            x->ghost = 1;
            t->ghost[ghost_slot(t, x->mid)] = (uint32_t)old + 1;
            rtx_release(x);
            x->buf = buf;
            x->body = body;
            if (body)
                body->refs++;
            x->len = (uint16_t)len;
            x->mid = mid;
            rtx_relink_mid(t, (uint32_t)old);
            return 0;
        }
    }
    if (t->free_head == 0) {
        int grc = rtx_grow(t);
        if (grc != 0 || t->free_head == 0) {
            free(buf);
            return grc ? grc : -ENOMEM;
        }
    }
    uint32_t idx = t->free_list[t->free_head - 1];
    int rc = gw_map_add(&t->by_mid, mid_key(mid), idx);
    if (rc == 0 && notify && (rc = gw_map_add(&t->by_tok, h_tok, idx)) != 0)
        gw_map_del_kv(&t->by_mid, mid_key(mid), idx);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    t->free_head--;
    t->used++;
    struct fe_rtx_entry *x = &t->e[idx];
    uint32_t gen = x->gen;
    memset(x, 0, sizeof(*x));
    x->gen = gen;
    x->used = 1;
    x->ep = *ep;
    x->mid = mid;
    x->notify = notify;
    x->h_tok = h_tok;
    x->tkl = tkl;
    if (tkl)
        memcpy(x->token, token, tkl);
    x->session = session;
    x->buf = buf;
    x->body = body;
    if (body)
        body->refs++;
    x->len = (uint16_t)len;
    x->timeout_ms = gw_backoff_initial(t->ack_timeout_ms, rnd);
    x->deadline = now + x->timeout_ms;
    return arm(t, idx);
}

int fe_rtx_add(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, const uint8_t *buf,
               size_t len, bool notify, const uint8_t *token, uint8_t tkl, uint64_t session,
               uint64_t now, uint32_t rnd)
{
    uint8_t *copy = malloc(len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, buf, len);
    return rtx_add(t, ep, mid, copy, len, NULL, notify, token, tkl, session, now, rnd);
}

int fe_rtx_add_notify(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, struct fe_nbody *body,
                      const uint8_t *token, uint8_t tkl, uint64_t session, uint64_t now,
                      uint32_t rnd)
{
    return rtx_add(t, ep, mid, NULL, (size_t)body->len + tkl, body, true, token, tkl, session, now,
                   rnd);
}

bool fe_rtx_notified(const struct fe_rtx *t, uint16_t mid)
{
    return (t->notified[mid >> 6] >> (mid & 63)) & 1;
}

static struct fe_rtx_entry *rtx_find_mid(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid)
{
    uint64_t k = mid_key(mid);
    for (uint32_t i = gw_map_first(&t->by_mid, k); i != GW_MAP_END;
         i = gw_map_more(&t->by_mid, k, i)) {
        struct fe_rtx_entry *x = &t->e[t->by_mid.slot[i].val];
        if (x->mid == mid && gw_ep_eq(&x->ep, ep))
            return x;
    }
    return NULL;
}

bool fe_rtx_has(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid)
{
    return rtx_find_mid(t, ep, mid) != NULL;
}

void fe_rtx_track(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid)
{
    struct fe_rtx_entry *x = rtx_find_mid(t, ep, mid);
    if (x)
        x->tracked = 1;
}

static void rtx_out(const struct fe_rtx_entry *x, struct fe_rtx_out *out)
{
    memset(out, 0, sizeof(*out));
    out->mid = x->mid;
    out->tracked = x->tracked;
    out->ep = x->ep;
    out->notify = x->notify;
    out->tkl = x->tkl;
    memcpy(out->token, x->token, sizeof(out->token));
    out->session = x->session;
}

bool fe_rtx_ack(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, struct fe_rtx_out *out)
{
    struct fe_rtx_entry *x = rtx_find_mid(t, ep, mid);
    if (!x)
        return false;
    rtx_out(x, out);
    rtx_free(t, (uint32_t)(x - t->e));
    return true;
}

bool fe_rtx_replaced(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, struct fe_rtx_out *out)
{
    uint32_t g = t->ghost[ghost_slot(t, mid)];
    if (!g)
        return false;
    struct fe_rtx_entry *x = &t->e[g - 1];
    if (!x->used || !x->ghost || x->ghost_mid != mid || !gw_ep_eq(&x->ep, ep))
        return false;
    rtx_out(x, out);
    ghost_clear(t, g - 1);
    return true;
}

void fe_rtx_forget_ep(struct fe_rtx *t, const struct gw_ep *ep)
{
    t->no_shrink++; /* a compaction would move entries under this walk */
    for (uint32_t i = 0; i < t->alloc; i++)
        if (t->e[i].used && gw_ep_eq(&t->e[i].ep, ep))
            rtx_free(t, i);
    t->no_shrink--;
    rtx_maybe_compact(t);
}

/* The datagram of an entry: its own copy, or its shared body with its
 * token and MID (CON: only CON messages are tracked). */
static const uint8_t *rtx_bytes(struct fe_rtx *t, const struct fe_rtx_entry *x, size_t *len)
{
    if (!x->body) {
        *len = x->len;
        return x->buf;
    }
    *len = fe_nbody_render(x->body, GW_COAP_CON, x->mid, x->token, x->tkl, t->scratch);
    return t->scratch;
}

bool fe_rtx_due(struct fe_rtx *t, uint64_t now, struct fe_rtx_out *out)
{
    struct gw_heap_item it;
    while (gw_heap_peek(&t->heap, &it) && it.deadline <= now) {
        gw_heap_pop(&t->heap, &it);
        struct fe_rtx_entry *x = &t->e[it.id];
        if (!x->used || x->gen != it.gen || x->deadline != it.deadline)
            continue;
        rtx_out(x, out);
        size_t n;
        const uint8_t *bytes = rtx_bytes(t, x, &n);
        if (x->attempts < t->max_retransmit) {
            x->attempts++;
            x->timeout_ms *= 2;
            x->deadline = now + x->timeout_ms;
            out->ev = FE_RTX_RESEND;
            out->buf = bytes;
            out->len = n;
            if (arm(t, it.id) != 0)
                rtx_free(t, it.id);
            return true;
        }
        out->ev = FE_RTX_GIVEUP;
        n = GW_MIN(n, sizeof(t->giveup));
        memcpy(t->giveup, bytes, n);
        out->buf = t->giveup;
        out->len = n;
        rtx_free(t, it.id);
        return true;
    }
    return false;
}

uint64_t fe_rtx_next(struct fe_rtx *t)
{
    struct gw_heap_item it;
    while (gw_heap_peek(&t->heap, &it)) {
        struct fe_rtx_entry *x = &t->e[it.id];
        if (x->used && x->gen == it.gen && x->deadline == it.deadline)
            return it.deadline;
        gw_heap_pop(&t->heap, &it);
    }
    return UINT64_MAX;
}
