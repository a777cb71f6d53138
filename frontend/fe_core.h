/* SPDX-License-Identifier: MIT */
/* fe_core.h - the frontend's request handling, apart from sockets and rings
 * (STYLE "Logic apart from I/O"): datagrams in, datagrams and scheduler
 * records out through struct fe_out. frontend.c is the libuv glue; the
 * fuzz target drives this directly. */
#ifndef FE_CORE_H
#define FE_CORE_H

#include "fe_auth.h"
#include "fe_block.h"
#include "fe_local.h"
#include "gw_nodes.h"
#include "fe_msglayer.h"
#include "fe_route.h"
#include "fe_session.h"
#include "gw_clock.h"
#include "gw_config.h"
#include "gw_log.h"
#include "gw_registry.h"
#include "gw_map.h"
#include "gw_msg.h"
#include "gw_rand.h"
#include "fe_guard.h"
#include "gw_rcache.h"
#include "gw_stats.h"

/* Per-session policy state (S2.8): token bucket and requests in flight. */
struct fe_limit {
    uint64_t session;
    double tokens;
    uint64_t last_ms;
    uint32_t inflight;
};

/* Token bucket of one source address without a session (S9.1). */
struct fe_src_bucket {
    struct gw_ep addr; /* port 0; family 0 = unused */
    double tokens;
    uint64_t last_ms;
};

struct fe_out {
    void *ctx;
    /* A datagram for a client (may be queued and batched by the caller). */
    void (*to_client)(void *ctx, const struct gw_ep *ep, const uint8_t *buf, size_t len);
    /* A record for the scheduler: 0, or GW_EFULL when its ring is full. */
    int (*to_sch)(void *ctx, const struct gw_msg *m, const uint8_t *data);
    /* The next client-facing MID, from the counter this frontend shares
     * with the scheduler (gw_shm.h client_mid). NULL: a private counter. */
    uint16_t (*client_mid)(void *ctx);
};

struct fe_core {
    struct gw_config cfg;
    struct gw_nodes nodes; /* node_count > 1: the cluster (S10.4, gw_nodes.h) */
    int index;
    struct gw_store *store;
    struct gw_regtypes regtypes; /* the registry's devices, for check_device (issue 13) */
    struct fe_auth *auth;
    struct gw_coap_parser *parser;
    struct fe_out out;
    struct fe_dedup dedup;
    struct fe_rtx rtx;
    struct fe_blocks blocks;
    struct fe_sess_cfg scfg;
    struct fe_local local;
    struct gw_stats *stats;
    uint16_t next_mid;
    uint64_t next_req;
    /* Retransmission jitter and first MIDs need no cryptographic
     * randomness: seeded once, no system call per request (gw_rand.h). */
    struct gw_rand rng;
    uint32_t rx_us; /* when the datagram being handled arrived (low 32 bits of gw_mono_us) */
    /* Debug log only: the target of recent proxied requests by request id, so
     * that the one line logged for the answer names it (allocated at the
     * first debug-level request; a slot is overwritten by a later request). */
    struct fe_trace {
        uint64_t req_id;
        char path[112];
    } * trace;
    struct gw_log_limit unauth_log;
    struct fe_limit *limits; /* limits_cap, in the order sessions came */
    uint32_t limits_cap;
    struct gw_map limit_idx; /* session id -> index into limits */
    /* Sources without a session (S9.1, issue #12 items 5 and 6). */
    struct fe_src_bucket *buckets;
    uint32_t nbuckets;
    uint64_t bucket_key[2];      /* SipHash key, random per process */
    struct gw_coap_parser *fitp; /* parses answers being cut to size */
    /* The datagram being handled: answers to a sender without a session are
     * cut to answer_cap bytes (0 = no bound); its dedup entry, promoted
     * when the request creates a session. */
    size_t answer_cap;
    struct fe_dedup_entry *cur_de;
    /* Sessions of recent senders, direct-mapped by endpoint (FE_SESS_CACHE
     * slots; NULL: none), each valid while LMDB's last transaction id is
     * the one it was read under (fe_core.c session_of, issue 13). */
    struct fe_sess_slot *sess_cache;
    const struct gw_clock *clock; /* the real clock; tests and fuzzing set a fake one */
    struct gw_rcache rcache; /* the scheduler's shared cache table (fe_rcache.c); 0 slots: none */
    struct gw_coap_parser *rcache_parser; /* its own: `parser` still holds the client's request */
    struct fe_guard *guard; /* when a hit may be answered here (fe_guard.h); NULL: always */
};

/* Replaces the clock (fe_core_init sets the real one). */
static inline void fe_core_set_clock(struct fe_core *c, const struct gw_clock *clock)
{
    c->clock = clock;
    c->local.clock = clock;
}

/* Sets up the tables (bounded by cfg). store, auth and parser stay the
 * caller's. Returns 0 or -ENOMEM. */
int fe_core_init(struct fe_core *c, const struct gw_config *cfg, int index, struct gw_store *store,
                 struct fe_auth *auth, struct gw_coap_parser *parser, const struct fe_out *out,
                 struct gw_stats *stats) GW_NODISCARD;
void fe_core_deinit(struct fe_core *c);
/* The shared cache table (gw_rcache.h) to answer fresh hits from, and a
 * parser for the device-side requests looked up (the caller's; it must not
 * be `parser`); set after fe_core_init. Without them every proxied GET goes
 * to the scheduler. */
static inline void fe_core_set_rcache(struct fe_core *c, const struct gw_rcache *t,
                                      struct gw_coap_parser *parser)
{
    c->rcache = *t;
    c->rcache_parser = parser;
}
/* The cache guard (fe_guard.h), the caller's: a fresh hit is answered here
 * only while it allows, and every forwarded CON request is noted in it. */
static inline void fe_core_set_guard(struct fe_core *c, struct fe_guard *g)
{
    c->guard = g;
}
/* A fresh hit for a proxied CON GET from the shared table (fe_rcache.c):
 * mac/sec name the device and the session's mesh security, up/ul the
 * request as it would go to the device, req the client's request. Call
 * only after the session, its device scope (S2.2) and its limits were
 * checked. Returns FE_RCACHE_HIT with the piggybacked answer (ACK, the
 * client's MID and token, Max-Age reduced by the age) in out/len;
 * FE_RCACHE_CHECK with the same answer when the cache guard is up
 * (fe_guard.h): the scheduler must say first whether the request is a copy
 * (gw_msg.h GW_MF2_CHECK); or 0: take the ordinary path. */
enum { FE_RCACHE_HIT = 1, FE_RCACHE_CHECK = 2 };
int fe_rcache_answer(struct fe_core *c, const uint8_t mac[GW_MAC_LEN], uint8_t sec,
                     const uint8_t *up, size_t ul, const struct gw_coap_msg *req, uint8_t *out,
                     size_t cap, size_t *len);
/* One datagram from a client. A sender without a session draws from its
 * address's token bucket (none left: dropped silently) and gets answers of
 * at most 3 times the datagram's size (S9.1). */
void fe_core_datagram(struct fe_core *c, const struct gw_ep *ep, const uint8_t *buf, size_t len);
/* Tells the scheduler this frontend (re)started, so that it sends the
 * answers its predecessor held unconfirmed again (S1.3). Returns 0 or
 * GW_EFULL (call again later). */
int fe_core_announce_start(struct fe_core *c) GW_NODISCARD;
/* One RESP record from the scheduler: an answer or a notification. */
void fe_core_deliver(struct fe_core *c, const struct gw_msg *m, const uint8_t *data);
/* A record from the scheduler's ring: RESP as fe_core_deliver, or a
 * GW_MSG_NOTIFY_SET for each of its observers. GW_EBADMSG for anything else
 * or a malformed set (nothing more of it is sent). */
int fe_core_deliver_record(struct fe_core *c, const struct gw_msg *m, const uint8_t *data);
/* Runs retransmissions due at `now`; returns the next deadline or UINT64_MAX. */
uint64_t fe_core_timer(struct fe_core *c, uint64_t now);
uint64_t fe_core_next(struct fe_core *c);
/* Ends expired sessions (and tells the scheduler). */
void fe_core_sweep(struct fe_core *c, int64_t now_s);

#endif
