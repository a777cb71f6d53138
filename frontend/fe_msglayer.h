/* SPDX-License-Identifier: MIT */
/* fe_msglayer.h - the client-facing RFC 7252 message layer, without I/O.
 *
 * Deduplication (S3.3): every CON/NON request is remembered by (endpoint,
 * MID) for exchange_lifetime_ms. A duplicate is never processed again; the
 * stored answer (piggybacked or local) is re-sent, or for a forwarded CON
 * the empty ACK. The table is a FIFO of `cap` entries with a hash index:
 * entries expire in arrival order, and when full the oldest is evicted
 * early. Cost: 48 bytes per entry (static_assert below) plus the stored answer, whose total is
 * capped at resp_budget bytes (beyond it answers are not kept and a
 * duplicate of such a request is answered with an empty ACK only).
 *
 * Reliability (S3.2): CON messages the gateway sends to clients (separate
 * responses, notifications) are retransmitted with RFC 7252 back-off until
 * ACK or RST or MAX_RETRANSMIT. At most one CON notification is in flight
 * per observer (endpoint, token); a newer one takes over the older one's
 * transmission counter and timeout (RFC 7641 4.5.2). */
#ifndef FE_MSGLAYER_H
#define FE_MSGLAYER_H

#include "gw_addr.h"
#include "gw_defs.h"
#include "gw_coap.h"
#include "gw_heap.h"

#include <stdbool.h>

struct fe_dedup_entry {
    struct gw_ep ep;
    uint16_t mid;
    uint8_t used;
    uint8_t forwarded;      /* went to the mesh: a duplicate CON gets an empty ACK */
    uint16_t resp_len;
    uint16_t pad;
    uint32_t next;          /* hash chain (index + 1, 0 = end) */
    uint64_t expires;
    uint8_t *resp;          /* stored answer or NULL */
};
GW_STATIC_ASSERT(sizeof(struct fe_dedup_entry) == 48, "dedup entry cost is documented as 48 bytes");

struct fe_dedup {
    struct fe_dedup_entry *e;
    uint32_t cap, head, count;
    uint32_t *buckets;
    uint32_t nbuckets;
    size_t resp_bytes, resp_budget;
    uint64_t lifetime_ms;
    uint64_t evicted_early;
};

int fe_dedup_init(struct fe_dedup *d, uint32_t cap, uint64_t lifetime_ms, size_t resp_budget) GW_NODISCARD;
void fe_dedup_deinit(struct fe_dedup *d);
/* Returns the live entry of (ep, mid) or NULL. */
struct fe_dedup_entry *fe_dedup_find(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid, uint64_t now);
/* Records a new exchange; returns its entry (never NULL: evicts the oldest). */
struct fe_dedup_entry *fe_dedup_add(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid, uint64_t now);
/* Stores the answer sent for an exchange (copied; skipped beyond the budget). */
void fe_dedup_set_resp(struct fe_dedup *d, struct fe_dedup_entry *e, const uint8_t *buf, size_t len);

struct fe_rtx_entry {
    struct gw_ep ep;
    uint16_t mid;
    uint8_t used;
    uint8_t notify;
    uint8_t tkl;
    uint8_t attempts;       /* retransmissions so far */
    uint8_t token[8];
    uint32_t gen;
    uint32_t next_mid;      /* hash chain by (ep, mid) */
    uint32_t next_tok;      /* hash chain by (ep, token), notifications only */
    uint64_t timeout_ms;
    uint64_t deadline;
    uint64_t session;
    uint16_t len;
    uint8_t *buf;
};

struct fe_rtx {
    struct fe_rtx_entry *e;
    uint32_t cap, used, free_head;
    uint32_t *free_list;
    uint32_t *bm, *bt, nb;  /* buckets by mid and by token */
    struct gw_heap heap;
    uint64_t ack_timeout_ms;
    uint32_t max_retransmit;
};

enum fe_rtx_event { FE_RTX_RESEND, FE_RTX_GIVEUP };
struct fe_rtx_out {
    enum fe_rtx_event ev;
    struct gw_ep ep;
    const uint8_t *buf;
    size_t len;
    bool notify;
    uint8_t token[8], tkl;
    uint64_t session;
};

int fe_rtx_init(struct fe_rtx *t, uint32_t cap, uint64_t ack_timeout_ms, uint32_t max_retransmit) GW_NODISCARD;
void fe_rtx_deinit(struct fe_rtx *t);
/* Tracks a CON message just sent. For a notification an in-flight one of the
 * same observer is replaced, keeping its counter and timeout. GW_EFULL when
 * the table is full (the message is then sent once, untracked). */
int fe_rtx_add(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, const uint8_t *buf, size_t len, bool notify,
               const uint8_t *token, uint8_t tkl, uint64_t session, uint64_t now, uint32_t rnd) GW_NODISCARD;
/* ACK or RST from the client. Returns true when it matched; *out tells
 * whether it was a notification (then the observer leaves on RST). */
bool fe_rtx_ack(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, struct fe_rtx_out *out);
/* Drops everything in flight to ep (its session ended). */
void fe_rtx_forget_ep(struct fe_rtx *t, const struct gw_ep *ep);
/* Next due event at `now`: fills *out and returns true; call until false.
 * A GIVEUP entry is freed after the call returns its data (buf valid until
 * the next call). */
bool fe_rtx_due(struct fe_rtx *t, uint64_t now, struct fe_rtx_out *out);
/* Earliest deadline, or UINT64_MAX. */
uint64_t fe_rtx_next(struct fe_rtx *t);

#endif
