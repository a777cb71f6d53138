/* SPDX-License-Identifier: MIT */
/* sch_int.h - what sch_core.c and sch_observe.c share. Not for other modules. */
#ifndef SCH_INT_H
#define SCH_INT_H

#include "sch_core.h"
#include "gw_idx.h"
#include "gw_map.h"
#include "gw_rcache.h"

struct sch_obs_reg;

struct sch_core {
    struct gw_config cfg;
    const struct gw_clock *clock;
    struct sch_out out;
    void *txns;
    uint32_t max_txn;
    size_t slot_size;
    struct gw_store *store;
    struct gw_stats *stats;
    uint32_t *gen; /* timer generation per txn slot */
    uint32_t *freelist;
    uint32_t nfree;
    int32_t *qnext, *anext; /* device FIFO and active lists */
    struct gw_heap heap;    /* txn timers (id < max_txn) and observation timers */
    /* Timers cancelled since the heap was last pruned, counted where a txn
     * slot's generation moves (an over-count: some had no item left). Lazy
     * deletion leaves their items until their deadline, up to
     * EXCHANGE_LIFETIME for a kept answer: 5 000 finished registrations
     * were 160 KiB (issue 13 item 4). */
    uint32_t heap_stale;
    struct gw_map devs;
    uint64_t hkey[2]; /* SipHash key for client-chosen map keys (sch_client_key) */
    /* Three parsers because parsed messages point into their parser:
     * rx_parser holds the message being handled (a request or a device
     * answer), stored_req_parser re-parses a txn's stored client request
     * while that answer is still live, and obs_parser re-parses an
     * observation's stored request from inside either. */
    struct gw_coap_parser *rx_parser, *stored_req_parser, *obs_parser;
    struct sch_cache *cache;
    bool cache_enabled;
    struct gw_rcache rcache; /* the frontends' copy of the cache (gw_rcache.h); nslots 0: none */
    /* Device tokens (RFC 7252 5.3.1): 8 random bytes per exchange and
     * per observation, drawn from getrandom(2) in blocks, never a counter
     * (issue #12 item 8): a device, or anyone who sees its traffic, learns
     * nothing about the tokens of other exchanges. */
    uint8_t tok_pool[256];
    uint32_t tok_pos;
    uint64_t next_arrival;
    uint32_t pending_answers;
    uint8_t last_code;
    struct sch_obs_reg *obs;
    /* Requests seen recently, by (endpoint, MID, token): a frontend that
     * restarted has forgotten its dedup table, so a client retransmission
     * of a request already forwarded is caught here (S3.3, S1.3). A FIFO
     * of (key, time recorded) and an index of its positions over the keys
     * (gw_idx: 4-byte slots, not a gw_map repeating each key in 16-byte
     * slots; 24 to 32 bytes a request instead of 40 to 72, issue 13 item 4:
     * every registration of an observe storm stays here for
     * EXCHANGE_LIFETIME). */
    struct gw_idx recent;
    uint64_t *recent_keys, *recent_at;
    uint32_t recent_cap, recent_head, recent_n;
    /* The transaction that holds a client's CON request or its kept answer,
     * by the same key -> slot index + 1, so a copy of a request whose answer
     * is kept gets that answer again. Both this and `recent` are rebuilt
     * from the shared table at start: a SIGKILLed scheduler's successor
     * still knows every request the table holds (S1.3). */
    struct gw_map by_req;
    /* Per slot, the by_req key it was indexed under (0: not indexed) and
     * the `delivered` key of its kept answer, so that neither is hashed
     * again when the slot leaves its index (issue 13: six SipHashes per
     * proxied request became three). Process memory, rebuilt with the
     * indexes at start. memo_key is the key on_copy just computed for the
     * request being handled (memo_env), which req_index then reuses. */
    uint64_t *slot_req_key, *slot_kept_key;
    const struct gw_msg *memo_env;
    uint64_t memo_key;
    /* Answers kept until the client ACKs them (SCH_TXN_DELIVERED), by
     * (client endpoint, client MID) -> slot index + 1. */
    struct gw_map delivered;
    uint32_t ndelivered;
    /* S10.4: devices owned by other nodes ("remote", gw_nodes.h) are served
     * like local ones; meshio forwards their datagrams to the owner. Their
     * MIDs come from one counter per owner node (the owner sees our peer
     * socket as one sender across all our remote devices; it deduplicates
     * by endpoint, MID and token, and each request has a fresh token),
     * even only: meshio's session POSTs on the same sockets use odd ones.
     * Datagrams from a peer arrive without a device (GW_MF_PEER) and are
     * attributed through two indexes of the remote exchanges in flight:
     * (owner, security, MID) and the device token, slot index + 1 as the
     * value. Both are rebuilt from the shared table at start. */
    uint32_t node_self, node_count;
    uint16_t peer_mid[64]; /* GW_NODES_MAX */
    struct gw_map peer_by_mid, peer_by_tok;
};

static inline struct sch_txn *sch_txn_at(struct sch_core *c, uint32_t i)
{
    return (struct sch_txn *)((uint8_t *)c->txns + (size_t)i * c->slot_size);
}

/* A map key for a client-chosen identity: endpoint, MID (-1: none) and
 * token, SipHash under this process's random key, so that no client can
 * pick values whose key collides with another client's request or
 * observer (S9; the maps take equal keys for equal identities). */
uint64_t sch_client_key(const struct sch_core *c, const struct gw_ep *ep, int32_t mid,
                        const uint8_t *tok, uint8_t tkl);
int sch_core_submit(struct sch_core *c, const struct gw_msg *env, const uint8_t *data, size_t len,
                    uint8_t kind, bool has_client, uint64_t obs_id, const uint8_t *token);
int sch_core_send_client(struct sch_core *c, const struct gw_msg *req, uint8_t flags, uint32_t aux,
                         const uint8_t *data, size_t len);
int sch_core_build_answer(const struct gw_msg *env, const struct gw_coap_msg *resp, int64_t observe,
                          int64_t max_age, uint8_t *out, size_t cap, size_t *len);
int sch_core_error_bytes(const struct gw_msg *env, uint8_t code, const char *diag, uint32_t max_age,
                         uint8_t *out, size_t cap, size_t *len);
void sch_core_answer_error(struct sch_core *c, const struct gw_msg *env, uint8_t code,
                           const char *diag, uint32_t max_age);
void sch_core_finish_error(struct sch_core *c, uint32_t idx, uint8_t code, const char *diag);
/* Frees a txn without answering (the answer was sent by the caller), or
 * with the answer already placed in t->data when has_client is set. */
void sch_core_finish_txn(struct sch_core *c, uint32_t idx);
/* Fills tok with a fresh random device token, unlike any live observation's. */
void sch_core_new_token(struct sch_core *c, uint8_t tok[8]);
void sch_core_arm_obs(struct sch_core *c, uint64_t deadline, uint32_t obs_slot, uint32_t gen);
/* As sch_core_arm_obs, without rebuilding a full heap: for the rebuild itself. */
void sch_core_rearm_obs(struct sch_core *c, uint64_t deadline, uint32_t obs_slot, uint32_t gen);
/* Whether a txn of `kind` for observation obs_id is still under way. */
bool sch_core_obs_txn_live(struct sch_core *c, uint8_t kind, uint64_t obs_id);

/* What sch_observe.c may use of the core (issue #17 item 4): these
 * functions, and of struct sch_core only its registry (obs), its parser
 * (obs_parser) and the services every part reads (cfg, clock, store,
 * stats). Output, the cache and the txn table go through functions. */
/* Hands a finished RESP or NOTIFY_SET record to frontend env->fe (or
 * another live one, which env->fe then names): 0 or GW_EFULL. */
int sch_core_to_client(struct sch_core *c, struct gw_msg *env, const uint8_t *data);
/* Stores a device's answer under key in the cache and the frontends' copy
 * (sch_cache_put: only a 2.05 is kept, S5.1); nothing when the cache is off. */
void sch_core_cache_store(struct sch_core *c, const uint8_t *key, size_t klen, uint64_t res_hash,
                          const struct gw_coap_msg *resp, uint64_t now);

/* Remembers client CON request (ep, mid, token), taken at time `at` (ms of
 * c->clock), as a request a copy of which is not taken again, for what is
 * left of its exchange lifetime (nothing once it has passed). For the
 * registration a leaving observer held (sch_obs_holds_request). */
void sch_core_remember_request(struct sch_core *c, const struct gw_ep *ep, uint16_t mid,
                               const uint8_t *tok, uint8_t tkl, uint64_t at);

/* sch_observe.c */
/* True when CON registration env is the one its observer (endpoint, token)
 * remembers as its last, taken within the exchange lifetime: a copy. */
bool sch_obs_holds_request(const struct sch_core *c, const struct gw_msg *env);
int sch_obs_init(struct sch_core *c);
void sch_obs_deinit(struct sch_core *c);
void sch_obs_rearm_all(struct sch_core *c);
void sch_obs_on_request(struct sch_core *c, const struct gw_msg *env, const uint8_t *data,
                        const struct gw_coap_msg *req);
void sch_obs_on_answer(struct sch_core *c, uint32_t idx, const struct gw_coap_msg *resp);
void sch_obs_on_failure(struct sch_core *c, uint32_t idx, uint8_t code, const char *diag);
bool sch_obs_on_notification(struct sch_core *c, const struct gw_msg *rx,
                             const struct gw_coap_msg *r);
void sch_obs_on_gone(struct sch_core *c, const struct gw_ep *ep, const uint8_t *token, uint8_t tkl);
void sch_obs_on_session_end(struct sch_core *c, uint64_t session);
/* A sticky move took `session` away from `old_ep`: its observers there get a
 * final 4.01 notification (RFC 7641 3.2: a non-2.xx notification ends the
 * observation) and leave. */
void sch_obs_on_session_moved(struct sch_core *c, uint64_t session, const struct gw_ep *old_ep);
void sch_obs_on_timer(struct sch_core *c, uint32_t slot, uint32_t gen, uint64_t now);
void sch_obs_counts(const struct sch_core *c, uint32_t *observations, uint32_t *observers);
/* Heap bytes the observations and their observer arrays hold
 * (malloc_usable_size, glibc and sanitizers alike): for the unit tests of
 * what an observation costs. */
size_t sch_obs_heap_bytes(const struct sch_core *c);
bool sch_obs_id_taken(const struct sch_core *c, uint64_t id);
/* The device and security of the observation whose device token is tok:
 * true with mac and *sec filled, false when there is none. */
bool sch_obs_device_of(const struct sch_core *c, const uint8_t tok[8], uint8_t mac[GW_MAC_LEN],
                       uint8_t *sec);
bool sch_obs_item_live(const struct sch_core *c, uint32_t slot, uint32_t gen);

/* Makes the shared table (gw_rcache.h) hold what the scheduler's cache now
 * holds under key: its entry, or nothing. Called after every cache call that
 * may change the entry (put, refresh, and a hit the frontends did not find).
 * No-op without a shared table. */
void sch__mirror_sync(struct sch_core *c, const uint8_t *key, size_t klen, uint64_t res_hash);

#endif
