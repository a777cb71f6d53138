/* SPDX-License-Identifier: MIT */
/* sch_core.h - the scheduler's logic, without I/O (SPEC S4, S5, S6).
 *
 * Inputs are ring records (client requests, device datagrams, observers
 * leaving, sessions ending) and the clock; outputs go through two
 * callbacks: a record for a frontend (a client's answer or notification)
 * and a record for meshio (a datagram for a device). scheduler.c wires
 * them to the rings; the unit tests wire them to arrays and a fake clock.
 *
 * Transactions (one per accepted client request, or an internal observe
 * registration/cancel) live in a table that the caller provides. In the
 * gateway it is the shared segment, so a SIGKILLed scheduler's successor
 * finds every request still queued or in flight, with its absolute
 * deadlines (CLOCK_MONOTONIC is system-wide), and answers each exactly once
 * (S1.3). Per-device queues and token indexes are rebuilt from it at start,
 * and so is the deduplication of client requests (endpoint, client MID,
 * token, all in the slot's envelope): a client's retransmission that a
 * frontend forwards again (after its own restart, or during the cache
 * guard of frontend/fe_guard.h) is never executed a second time, also
 * across a scheduler SIGKILL; when its answer is kept it goes again, with
 * its MID, to the frontend that forwarded the copy. A SIGKILL loses only the
 * memory of requests whose slot was already freed (answer ACKed, or not
 * kept: No-Response, over half the table held): a copy of one after the
 * restart, within the exchange lifetime, is taken as new.
 *
 * A final answer to a CON request outlives its hand-over to the frontend
 * (state DELIVERED, gw_msg.h GW_MF2_MID): the slot keeps it with the
 * client-facing MID until a frontend reports the client's ACK or RST
 * (GW_MSG_ANSWER_DONE) or the client's MAX_TRANSMIT_WAIT passed (RFC 7252
 * 4.8.2, from client_ack_timeout_ms and client_max_retransmit). When a
 * frontend restarts (GW_MSG_FE_START), the answers it held are sent to it
 * again with the same MIDs, so a frontend's SIGKILL loses no answer and a
 * client's deduplication drops any copy. At most half the table is held
 * this way; beyond that answers are handed over and forgotten as before.
 *
 * Per device (S4.4, S4.5): at most nstart exchanges in flight, the rest in
 * a bounded FIFO (full: 5.03). Normal devices get CON with mesh_max_transmit
 * transmissions in all, the first timeout random in [T, 1.5T], doubling;
 * an empty ACK stops retransmission and the response is awaited until
 * MAX_TRANSMIT_WAIT from the first send; exhaustion is 5.04, a device RST
 * or an unprocessable answer 5.02. Milli devices: one exchange at a time,
 * never retransmitted, 5.04 after milli_timeout_ms from the send, and a
 * second request is refused at once with 5.03, Max-Age and the fixed
 * payload of S4.5. */
#ifndef SCH_CORE_H
#define SCH_CORE_H

#include "gw_clock.h"
#include "gw_coap.h"
#include "gw_config.h"
#include "gw_defs.h"
#include "gw_heap.h"
#include "gw_msg.h"
#include "gw_stats.h"
#include "gw_store.h"
#include "sch_cache.h"

#include <stdatomic.h>

#define SCH_MILLI_BUSY_TEXT                                                                        \
    "Request blocked by device serialization requirements, another request is enqueued or in process for this device."

enum sch_txn_state {
    SCH_TXN_FREE = 0,
    SCH_TXN_QUEUED = 1,    /* waiting in its device's FIFO */
    SCH_TXN_SENT = 2,      /* sent to the device, no ACK yet */
    SCH_TXN_ACKED = 3,     /* device sent an empty ACK; waiting for the separate response */
    SCH_TXN_ANSWERED = 4,  /* final answer built in data[], not yet handed to a frontend */
    SCH_TXN_DELIVERED = 5, /* CON answer handed to frontend sent_fe with MID client_mid, kept
                               until the client ACKs it (gw_msg.h GW_MF2_MID, S1.3) */
};

enum sch_txn_kind {
    SCH_TK_CLIENT = 0,     /* an ordinary proxied request */
    SCH_TK_OBS_REG = 1,    /* observe registration or refresh (S6.2, S6.5, S6.6) */
    SCH_TK_OBS_CANCEL = 2, /* deregistration at the device (S6.4) */
};

/* One transaction slot (shared memory, fixed size, no pointers). Fields set
 * at creation are written before `state` is published with a release store;
 * a slot torn by a SIGKILL mid-update is at worst answered 5.02/5.04. */
struct sch_txn {
    _Atomic uint32_t state;
    uint8_t kind;
    uint8_t milli;
    uint8_t attempts;   /* transmissions so far */
    uint8_t has_client; /* an answer is owed to env.ep */
    uint64_t arrival;   /* FIFO order across restarts */
    uint64_t deadline;  /* monotonic ms */
    uint64_t first_sent;
    uint32_t timeout_ms;
    uint16_t dev_mid;
    uint16_t data_len;
    uint8_t dev_token[8];
    uint64_t obs_id;      /* observation this txn serves (kinds OBS_*) */
    uint8_t reval;        /* carries a revalidation ETag from the cache (S5.5) */
    uint8_t plain;        /* OBS_REG for a leaving observer: answer it without Observe */
    uint8_t answer_flags; /* flags of the answer record (GW_MF_NOTIFY ...) */
    uint8_t mid_set;      /* client_mid holds the MID drawn for this answer */
    uint32_t answer_aux;
    uint32_t sent_us; /* low 32 bits of the clock's now_us at the first transmission (device RTT) */
    uint16_t client_mid; /* client-facing MID of the answer (ANSWERED with mid_set, DELIVERED) */
    uint8_t sent_fe;     /* DELIVERED: the frontend that took the answer */
    uint8_t repush;      /* DELIVERED: to be sent again to its restarted frontend */
    struct gw_msg env;   /* the client's REQ envelope */
    uint8_t data[GW_COAP_MAX_MSG + 16]; /* request for the device, then the client's answer */
};
GW_STATIC_ASSERT(sizeof(struct sch_txn) <= 1536, "txn fits its shared memory slot");

struct sch_out {
    void *ctx;
    /* A record for frontend env->fe (kind RESP). Returns 0 or GW_EFULL; on 0
     * env->fe names the frontend that took it (another live one when env->fe
     * is down). */
    int (*to_client)(void *ctx, struct gw_msg *env, const uint8_t *data);
    /* A record for meshio (kind MESH_TX). */
    int (*to_mesh)(void *ctx, const struct gw_msg *env, const uint8_t *data);
    /* Device type look-up: 0 normal, 1 milli, GW_ENOTFOUND. */
    int (*device_type)(void *ctx, const uint8_t mac[GW_MAC_LEN]);
    uint32_t (*rand32)(void *ctx);
    /* The next client-facing MID of frontend fe (gw_shm.h client_mid), or
     * negative. NULL: answers are not kept after they were handed over. */
    int (*client_mid)(void *ctx, uint8_t fe);
};

struct sch_core;

/* txns: max_txn slots of GW_TXN_SLOT bytes each (shared memory or heap);
 * store: LMDB for the observe registry (NULL: not persisted). The table is
 * scanned and every live transaction resumed. */
int sch_core_new(const struct gw_config *cfg, const struct gw_clock *clock,
                 const struct sch_out *out, void *txns, uint32_t max_txn, size_t slot_size,
                 struct gw_store *store, struct gw_stats *stats,
                 struct sch_core **core) GW_NODISCARD;
void sch_core_free(struct sch_core *c);
/* Hands the core the shared cache table the frontends read (gw_rcache.h),
 * after emptying it; from then on every change to the scheduler's cache is
 * mirrored there. A core without one (tests) mirrors nothing. */
struct gw_rcache;
void sch_core_set_rcache(struct sch_core *c, const struct gw_rcache *t);

/* One record from a ring. */
void sch_core_on_record(struct sch_core *c, const struct gw_msg *env, const uint8_t *data);
/* Runs due timers; returns the next deadline (UINT64_MAX: none). */
uint64_t sch_core_on_timer(struct sch_core *c);
/* Retries answers a full ring refused. */
void sch_core_flush(struct sch_core *c);
/* Re-registers every stored observation (after a restart, S6.6). */
void sch_core_resume_observations(struct sch_core *c);

struct sch_core_counts {
    uint32_t txns, queued, inflight, observations, observers;
    uint64_t cache_entries;
};
void sch_core_counts(const struct sch_core *c, struct sch_core_counts *out);

#endif
