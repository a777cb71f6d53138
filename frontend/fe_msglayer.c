/* SPDX-License-Identifier: MIT */
/* fe_msglayer.c - the client-facing message layer: deduplication table and CON retransmission
 * table (see fe_msglayer.h). */
#include "fe_msglayer.h"
#include "gw_error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 16;
    while (p < n && p < (1u << 30))
        p <<= 1;
    return p;
}

static uint32_t key_hash(const struct gw_ep *ep, const void *k, size_t kl, uint32_t nb)
{
    uint64_t h = gw_hash64(ep, sizeof(*ep), GW_HASH_SEED);
    h = gw_hash64(k, kl, h);
    return (uint32_t)(h ^ (h >> 32)) & (nb - 1);
}

/* ---- dedup ---- */

int fe_dedup_init(struct fe_dedup *d, uint32_t cap, uint64_t lifetime_ms, size_t resp_budget)
{
    memset(d, 0, sizeof(*d));
    d->cap = cap;
    d->nbuckets = pow2_at_least(cap);
    d->e = calloc(cap, sizeof(*d->e));
    d->buckets = calloc(d->nbuckets, sizeof(uint32_t));
    d->lifetime_ms = lifetime_ms;
    d->resp_budget = resp_budget;
    if (!d->e || !d->buckets) {
        fe_dedup_deinit(d);
        return -ENOMEM;
    }
    return 0;
}

void fe_dedup_deinit(struct fe_dedup *d)
{
    if (d->e)
        for (uint32_t i = 0; i < d->cap; i++)
            free(d->e[i].resp);
    free(d->e);
    free(d->buckets);
    d->e = NULL;
    d->buckets = NULL;
}

static void dedup_unlink(struct fe_dedup *d, uint32_t idx)
{
    struct fe_dedup_entry *x = &d->e[idx];
    uint32_t b = key_hash(&x->ep, &x->mid, sizeof(x->mid), d->nbuckets);
    uint32_t *pp = &d->buckets[b];
    for (int guard = 0; *pp && guard < (int)d->cap; guard++) {
        if (*pp == idx + 1) {
            *pp = x->next;
            break;
        }
        pp = &d->e[*pp - 1].next;
    }
    if (x->resp) {
        d->resp_bytes -= x->resp_len;
        free(x->resp);
        x->resp = NULL;
    }
    x->used = 0;
}

static void dedup_expire(struct fe_dedup *d, uint64_t now, bool force_one)
{
    while (d->count) {
        struct fe_dedup_entry *x = &d->e[d->head];
        if (!force_one && x->expires > now)
            break;
        if (force_one && x->expires > now)
            d->evicted_early++;
        dedup_unlink(d, d->head);
        d->head = (d->head + 1) % d->cap;
        d->count--;
        force_one = false;
    }
}

struct fe_dedup_entry *fe_dedup_find(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid, uint64_t now)
{
    uint32_t b = key_hash(ep, &mid, sizeof(mid), d->nbuckets);
    for (uint32_t i = d->buckets[b]; i; i = d->e[i - 1].next) {
        struct fe_dedup_entry *x = &d->e[i - 1];
        if (x->mid == mid && gw_ep_eq(&x->ep, ep))
            return x->expires > now ? x : NULL;
    }
    return NULL;
}

struct fe_dedup_entry *fe_dedup_add(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid, uint64_t now)
{
    dedup_expire(d, now, false);
    if (d->count == d->cap)
        dedup_expire(d, now, true);
    uint32_t idx = (d->head + d->count) % d->cap;
    d->count++;
    struct fe_dedup_entry *x = &d->e[idx];
    memset(x, 0, sizeof(*x));
    x->ep = *ep;
    x->mid = mid;
    x->used = 1;
    x->expires = now + d->lifetime_ms;
    uint32_t b = key_hash(ep, &mid, sizeof(mid), d->nbuckets);
    x->next = d->buckets[b];
    d->buckets[b] = idx + 1;
    return x;
}

void fe_dedup_set_resp(struct fe_dedup *d, struct fe_dedup_entry *e, const uint8_t *buf, size_t len)
{
    if (e->resp || len > 0xffff || d->resp_bytes + len > d->resp_budget)
        return;
    e->resp = malloc(len);
    if (!e->resp)
        return;
    memcpy(e->resp, buf, len);
    e->resp_len = (uint16_t)len;
    d->resp_bytes += len;
}

/* ---- retransmission ---- */

int fe_rtx_init(struct fe_rtx *t, uint32_t cap, uint64_t ack_timeout_ms, uint32_t max_retransmit)
{
    memset(t, 0, sizeof(*t));
    t->cap = cap;
    t->nb = pow2_at_least(cap);
    t->e = calloc(cap, sizeof(*t->e));
    t->free_list = calloc(cap, sizeof(uint32_t));
    t->bm = calloc(t->nb, sizeof(uint32_t));
    t->bt = calloc(t->nb, sizeof(uint32_t));
    t->ack_timeout_ms = ack_timeout_ms;
    t->max_retransmit = max_retransmit;
    if (!t->e || !t->free_list || !t->bm || !t->bt || gw_heap_init(&t->heap, cap * 2 + 16) != 0) {
        fe_rtx_deinit(t);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < cap; i++)
        t->free_list[i] = cap - 1 - i;
    t->free_head = cap;
    return 0;
}

void fe_rtx_deinit(struct fe_rtx *t)
{
    if (t->e)
        for (uint32_t i = 0; i < t->cap; i++)
            free(t->e[i].buf);
    free(t->e);
    free(t->free_list);
    free(t->bm);
    free(t->bt);
    gw_heap_deinit(&t->heap);
    memset(t, 0, sizeof(*t));
}

static void chain_del(struct fe_rtx *t, uint32_t *buckets, uint32_t b, uint32_t idx, bool tok)
{
    uint32_t *pp = &buckets[b];
    for (uint32_t guard = 0; *pp && guard < t->cap; guard++) {
        if (*pp == idx + 1) {
            *pp = tok ? t->e[idx].next_tok : t->e[idx].next_mid;
            return;
        }
        pp = tok ? &t->e[*pp - 1].next_tok : &t->e[*pp - 1].next_mid;
    }
}

static void rtx_link_mid(struct fe_rtx *t, uint32_t idx)
{
    struct fe_rtx_entry *x = &t->e[idx];
    uint32_t b = key_hash(&x->ep, &x->mid, sizeof(x->mid), t->nb);
    x->next_mid = t->bm[b];
    t->bm[b] = idx + 1;
}

static void rtx_free(struct fe_rtx *t, uint32_t idx)
{
    struct fe_rtx_entry *x = &t->e[idx];
    chain_del(t, t->bm, key_hash(&x->ep, &x->mid, sizeof(x->mid), t->nb), idx, false);
    if (x->notify)
        chain_del(t, t->bt, key_hash(&x->ep, x->token, x->tkl, t->nb), idx, true);
    free(x->buf);
    x->buf = NULL;
    x->used = 0;
    x->gen++;
    t->free_list[t->free_head++] = idx;
    t->used--;
}

static int rtx_find_tok(struct fe_rtx *t, const struct gw_ep *ep, const uint8_t *token, uint8_t tkl)
{
    uint32_t b = key_hash(ep, token, tkl, t->nb);
    for (uint32_t i = t->bt[b]; i; i = t->e[i - 1].next_tok) {
        struct fe_rtx_entry *x = &t->e[i - 1];
        if (x->tkl == tkl && memcmp(x->token, token, tkl) == 0 && gw_ep_eq(&x->ep, ep))
            return (int)(i - 1);
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
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->e[i].used && gw_heap_push(&t->heap, t->e[i].deadline, i, t->e[i].gen) != 0)
            return GW_EFULL;
    return 0;
}

int fe_rtx_add(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, const uint8_t *buf, size_t len, bool notify,
               const uint8_t *token, uint8_t tkl, uint64_t session, uint64_t now, uint32_t rnd)
{
    uint8_t *copy = malloc(len);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, buf, len);
    if (notify) {
        int old = rtx_find_tok(t, ep, token, tkl);
        if (old >= 0) {
            /* RFC 7641 4.5.2: the newer notification replaces the one in
             * flight and inherits its counter and timeout. */
            struct fe_rtx_entry *x = &t->e[old];
            chain_del(t, t->bm, key_hash(&x->ep, &x->mid, sizeof(x->mid), t->nb), (uint32_t)old, false);
            free(x->buf);
            x->buf = copy;
            x->len = (uint16_t)len;
            x->mid = mid;
            rtx_link_mid(t, (uint32_t)old);
            return 0;
        }
    }
    if (t->free_head == 0) {
        free(copy);
        return GW_EFULL;
    }
    uint32_t idx = t->free_list[--t->free_head];
    t->used++;
    struct fe_rtx_entry *x = &t->e[idx];
    uint32_t gen = x->gen;
    memset(x, 0, sizeof(*x));
    x->gen = gen;
    x->used = 1;
    x->ep = *ep;
    x->mid = mid;
    x->notify = notify;
    x->tkl = tkl;
    if (tkl)
        memcpy(x->token, token, tkl);
    x->session = session;
    x->buf = copy;
    x->len = (uint16_t)len;
    x->timeout_ms = gw_backoff_initial(t->ack_timeout_ms, rnd);
    x->deadline = now + x->timeout_ms;
    rtx_link_mid(t, idx);
    if (notify) {
        uint32_t b = key_hash(ep, token, tkl, t->nb);
        x->next_tok = t->bt[b];
        t->bt[b] = idx + 1;
    }
    return arm(t, idx);
}

bool fe_rtx_ack(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, struct fe_rtx_out *out)
{
    uint32_t b = key_hash(ep, &mid, sizeof(mid), t->nb);
    for (uint32_t i = t->bm[b]; i; i = t->e[i - 1].next_mid) {
        struct fe_rtx_entry *x = &t->e[i - 1];
        if (x->mid == mid && gw_ep_eq(&x->ep, ep)) {
            memset(out, 0, sizeof(*out));
            out->ep = x->ep;
            out->notify = x->notify;
            out->tkl = x->tkl;
            memcpy(out->token, x->token, sizeof(out->token));
            out->session = x->session;
            rtx_free(t, i - 1);
            return true;
        }
    }
    return false;
}

void fe_rtx_forget_ep(struct fe_rtx *t, const struct gw_ep *ep)
{
    for (uint32_t i = 0; i < t->cap; i++)
        if (t->e[i].used && gw_ep_eq(&t->e[i].ep, ep))
            rtx_free(t, i);
}

bool fe_rtx_due(struct fe_rtx *t, uint64_t now, struct fe_rtx_out *out)
{
    static uint8_t giveup_buf[GW_COAP_MAX_MSG + 16];
    struct gw_heap_item it;
    while (gw_heap_peek(&t->heap, &it) && it.deadline <= now) {
        gw_heap_pop(&t->heap, &it);
        struct fe_rtx_entry *x = &t->e[it.id];
        if (!x->used || x->gen != it.gen || x->deadline != it.deadline)
            continue;
        memset(out, 0, sizeof(*out));
        out->ep = x->ep;
        out->notify = x->notify;
        out->tkl = x->tkl;
        memcpy(out->token, x->token, sizeof(out->token));
        out->session = x->session;
        if (x->attempts < t->max_retransmit) {
            x->attempts++;
            x->timeout_ms *= 2;
            x->deadline = now + x->timeout_ms;
            out->ev = FE_RTX_RESEND;
            out->buf = x->buf;
            out->len = x->len;
            if (arm(t, it.id) != 0)
                rtx_free(t, it.id);
            return true;
        }
        out->ev = FE_RTX_GIVEUP;
        size_t n = GW_MIN(x->len, sizeof(giveup_buf));
        memcpy(giveup_buf, x->buf, n);
        out->buf = giveup_buf;
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
