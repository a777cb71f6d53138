/* SPDX-License-Identifier: MIT */
/* fe_block.c - block-wise transfer state kept by the frontend, and slicing an answer into
 * Block2 blocks (see fe_block.h). */
#include "fe_block.h"
#include "gw_error.h"
#include "gw_text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int fe_blocks_init(struct fe_blocks *b, uint32_t max, uint64_t timeout_ms, size_t max_body)
{
    b->x = calloc(max, sizeof(*b->x));
    b->max = max;
    b->timeout_ms = timeout_ms;
    b->max_body = max_body;
    b->per_source = max;
    b->sessionless_max = max;
    return b->x ? 0 : -ENOMEM;
}

void fe_blocks_limit(struct fe_blocks *b, uint32_t per_source, uint32_t sessionless_max)
{
    b->per_source = GW_MAX(per_source, 1u);
    b->sessionless_max = GW_MAX(sessionless_max, 1u);
}

void fe_blocks_deinit(struct fe_blocks *b)
{
    if (b->x)
        for (uint32_t i = 0; i < b->max; i++)
            free(b->x[i].data);
    free(b->x);
    b->x = NULL;
}

void fe_blocks_drop(struct fe_blocks *b, struct fe_block_xfer *x)
{
    (void)b;
    free(x->data);
    memset(x, 0, sizeof(*x));
}

struct fe_block_xfer *fe_blocks_find(struct fe_blocks *b, const struct gw_ep *ep, uint64_t key,
                                     uint8_t kind, uint64_t now)
{
    for (uint32_t i = 0; i < b->max; i++) {
        struct fe_block_xfer *x = &b->x[i];
        if (!x->kind)
            continue;
        if (now - x->last_used > b->timeout_ms) {
            fe_blocks_drop(b, x);
            continue;
        }
        if (x->kind == kind && x->key == key && gw_ep_eq(&x->ep, ep)) {
            x->last_used = now;
            return x;
        }
    }
    return NULL;
}

static bool older(const struct fe_block_xfer *x, const struct fe_block_xfer *than)
{
    return !than || x->last_used < than->last_used;
}

struct fe_block_xfer *fe_blocks_new(struct fe_blocks *b, const struct gw_ep *ep, uint64_t key,
                                    uint8_t kind, uint64_t now, bool sessionless)
{
    struct fe_block_xfer *same = NULL, *free_slot = NULL, *own_lru = NULL, *sl_lru = NULL,
                         *lru = NULL;
    uint32_t own = 0, nsl = 0;
    for (uint32_t i = 0; i < b->max; i++) {
        struct fe_block_xfer *x = &b->x[i];
        if (x->kind && now - x->last_used > b->timeout_ms)
            fe_blocks_drop(b, x);
        if (!x->kind) {
            if (!free_slot)
                free_slot = x;
            continue;
        }
        if (x->kind == kind && x->key == key && gw_ep_eq(&x->ep, ep))
            same = x;
        if (gw_ep_eq(&x->ep, ep)) {
            own++;
            if (older(x, own_lru))
                own_lru = x;
        }
        if (x->sessionless) {
            nsl++;
            if (older(x, sl_lru))
                sl_lru = x;
        }
        if (older(x, lru))
            lru = x;
    }
    struct fe_block_xfer *slot;
    if (same)
        slot = same;
    else if (own >= b->per_source)
        slot = own_lru; /* a sender over its share replaces its own */
    else if (sessionless && nsl >= b->sessionless_max)
        slot = sl_lru; /* sessionless senders share a bounded pool */
    else if (free_slot)
        slot = free_slot;
    else if (sl_lru)
        slot = sl_lru; /* sessionless state goes first */
    else if (!sessionless)
        slot = lru;
    else
        return NULL; /* never at the expense of a session */
    fe_blocks_drop(b, slot);
    slot->ep = *ep;
    slot->key = key;
    slot->kind = kind;
    slot->last_used = now;
    slot->sessionless = sessionless;
    return slot;
}

int fe_blocks_append(struct fe_blocks *b, struct fe_block_xfer *x, const uint8_t *p, size_t n)
{
    if (x->len + n > b->max_body)
        return GW_ETOOBIG;
    if (gw_grow(&x->data, &x->cap, x->len + n, 1, 1024) != 0)
        return -ENOMEM;
    if (n)
        memcpy(x->data + x->len, p, n);
    x->len += n;
    return 0;
}

int fe_block_slice(const struct gw_coap_msg *full, uint32_t num, uint8_t szx, uint8_t type,
                   uint16_t mid, const uint8_t *token, uint8_t tkl, uint8_t *out, size_t cap,
                   size_t *len)
{
    size_t bs = (size_t)16 << szx;
    size_t off = (size_t)num * bs;
    if (off > full->payload_len || (off == full->payload_len && off != 0))
        return GW_EBADMSG;
    struct gw_coap_msg m;
    memcpy(&m, full, sizeof(m));
    m.type = type;
    m.mid = mid;
    m.tkl = tkl;
    memcpy(m.token, token, tkl);
    /* Drop any Block2/Size2 already there, then add ours. */
    unsigned w = 0;
    for (unsigned i = 0; i < m.nopts; i++)
        if (m.opts[i].num != GW_OPT_BLOCK2 && m.opts[i].num != GW_OPT_SIZE2)
            m.opts[w++] = m.opts[i];
    m.nopts = (uint16_t)w;
    struct gw_block blk = { num, off + bs < full->payload_len, szx };
    uint8_t bv[4], sv[4];
    size_t bl = gw_block_encode(&blk, bv);
    if (m.nopts + 2 > GW_COAP_MAX_OPTS)
        return GW_ETOOBIG;
    m.opts[m.nopts++] = (struct gw_coap_opt){ GW_OPT_BLOCK2, (uint16_t)bl, bv };
    if (num == 0) {
        size_t sl = gw_coap_uint_enc((uint32_t)full->payload_len, sv);
        m.opts[m.nopts++] = (struct gw_coap_opt){ GW_OPT_SIZE2, (uint16_t)sl, sv };
    }
    /* An empty body has no payload pointer: NULL + 0 is undefined in C. */
    m.payload = full->payload ? full->payload + off : NULL;
    m.payload_len = GW_MIN(bs, full->payload_len - off);
    return gw_coap_encode(&m, out, cap, len);
}
