/* SPDX-License-Identifier: MIT */
/* fe_block.h - block-wise transfer state (RFC 7959, SPEC S8.2, S4.7).
 *
 * Two uses share one bounded table keyed by (client endpoint, resource key):
 * Block1 bodies being received for a local resource, and representations
 * kept so that Block2 follow-ups can be served (large local answers to
 * POST/PUT, and proxied answers larger than the block size a client asked
 * for). At most `max` transfers, each dropped `timeout_ms` after its last
 * use; bodies are bounded by `max_body`. The table is small (hundreds), so
 * look-ups scan it.
 *
 * Budgets, so that no sender evicts another's transfer (issue #12 item 6):
 * one endpoint holds at most `per_source` transfers (one more replaces its
 * own least recently used); endpoints without a session hold at most
 * `sessionless_max` together and only ever evict each other's transfers, so
 * a new sessionless transfer may find no room (NULL). Only when the table is
 * full of transfers of senders with sessions does a new one of those evict
 * the least recently used of them. */
#ifndef FE_BLOCK_H
#define FE_BLOCK_H

#include "gw_addr.h"
#include "gw_coap.h"

struct fe_block_xfer {
    struct gw_ep ep;
    uint64_t key;
    uint64_t last_used;
    uint8_t kind; /* 1 = receiving Block1, 2 = serving Block2 */
    uint8_t szx;
    uint8_t sessionless; /* the endpoint held no session when it began */
    uint32_t next_num;   /* Block1: next expected NUM */
    size_t len, cap;
    uint8_t *data; /* Block1: body so far; Block2: whole response message */
};

struct fe_blocks {
    struct fe_block_xfer *x;
    uint32_t max;
    uint64_t timeout_ms;
    size_t max_body;
    uint32_t per_source, sessionless_max;
};

int fe_blocks_init(struct fe_blocks *b, uint32_t max, uint64_t timeout_ms,
                   size_t max_body) GW_NODISCARD;
void fe_blocks_deinit(struct fe_blocks *b);
struct fe_block_xfer *fe_blocks_find(struct fe_blocks *b, const struct gw_ep *ep, uint64_t key,
                                     uint8_t kind, uint64_t now);
/* Per-endpoint and sessionless bounds (init sets neither: both = max). */
void fe_blocks_limit(struct fe_blocks *b, uint32_t per_source, uint32_t sessionless_max);
/* A new transfer (replacing one with the same key), evicting as described
 * above; NULL when a sessionless endpoint finds no room. */
struct fe_block_xfer *fe_blocks_new(struct fe_blocks *b, const struct gw_ep *ep, uint64_t key,
                                    uint8_t kind, uint64_t now, bool sessionless);
void fe_blocks_drop(struct fe_blocks *b, struct fe_block_xfer *x);
/* Appends bytes to a Block1 body: 0, or GW_ETOOBIG beyond max_body. */
int fe_blocks_append(struct fe_blocks *b, struct fe_block_xfer *x, const uint8_t *p,
                     size_t n) GW_NODISCARD;

/* Encodes block `num` (size 16 << szx) of a whole response `full`, adding
 * Block2 and, on block 0, Size2. Header (type, MID, token) from the
 * arguments. Returns 0, GW_EBADMSG when num is past the end. */
int fe_block_slice(const struct gw_coap_msg *full, uint32_t num, uint8_t szx, uint8_t type,
                   uint16_t mid, const uint8_t *token, uint8_t tkl, uint8_t *out, size_t cap,
                   size_t *len) GW_NODISCARD;

#endif
