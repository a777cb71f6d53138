/* SPDX-License-Identifier: MIT */
/* fe_block.c - block-wise transfer state kept by the frontend, and slicing an answer into
 * Block2 blocks (see fe_block.h). */
#include "fe_block.h"
#include "gw_error.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int fe_blocks_init(struct fe_blocks *b, uint32_t max, uint64_t timeout_ms, size_t max_body)
{
    b->x = calloc(max, sizeof(*b->x));
    b->max = max;
    b->timeout_ms = timeout_ms;
    b->max_body = max_body;
    return b->x ? 0 : -ENOMEM;
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

struct fe_block_xfer *fe_blocks_find(struct fe_blocks *b, const struct gw_ep *ep, uint64_t key, uint8_t kind, uint64_t now)
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

struct fe_block_xfer *fe_blocks_new(struct fe_blocks *b, const struct gw_ep *ep, uint64_t key, uint8_t kind, uint64_t now)
{
    struct fe_block_xfer *slot = NULL, *lru = NULL;
    for (uint32_t i = 0; i < b->max; i++) {
        struct fe_block_xfer *x = &b->x[i];
        if (x->kind && x->kind == kind && x->key == key && gw_ep_eq(&x->ep, ep)) {
            slot = x;
            break;
        }
        if (!x->kind && !slot)
            slot = x;
        if (x->kind && (!lru || x->last_used < lru->last_used))
            lru = x;
    }
    if (!slot)
        slot = lru;
    fe_blocks_drop(b, slot);
    slot->ep = *ep;
    slot->key = key;
    slot->kind = kind;
    slot->last_used = now;
    return slot;
}

int fe_blocks_append(struct fe_blocks *b, struct fe_block_xfer *x, const uint8_t *p, size_t n)
{
    if (x->len + n > b->max_body)
        return GW_ETOOBIG;
    if (x->len + n > x->cap) {
        size_t cap = x->cap ? x->cap : 1024;
        while (cap < x->len + n)
            cap *= 2;
        uint8_t *d = realloc(x->data, cap);
        if (!d)
            return -ENOMEM;
        x->data = d;
        x->cap = cap;
    }
    if (n)
        memcpy(x->data + x->len, p, n);
    x->len += n;
    return 0;
}

int fe_block_slice(const struct gw_coap_msg *full, uint32_t num, uint8_t szx, uint8_t type, uint16_t mid,
                   const uint8_t *token, uint8_t tkl, uint8_t *out, size_t cap, size_t *len)
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
