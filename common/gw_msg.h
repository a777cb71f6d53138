/* SPDX-License-Identifier: MIT */
/* gw_msg.h - the envelope that crosses the rings.
 *
 * A record is a fixed struct gw_msg followed by `len` bytes of CoAP message.
 * Byte order is the host's (all processes share one machine). The decoder
 * checks every field that later code indexes with, so a corrupt record is
 * dropped, never acted upon. */
#ifndef GW_MSG_H
#define GW_MSG_H

#include "gw_addr.h"
#include "gw_defs.h"

enum gw_msg_kind {
    GW_MSG_REQ =
        1, /* fe -> sch: a proxy request; data = request for the device (MID 0, 8-byte token 0) */
    GW_MSG_RESP, /* sch -> fe: a response or notification for a client; data = client message, MID set by fe */
    GW_MSG_OBS_GONE, /* fe -> sch: observer (ep, token) left (RST to a notification or never ACKed) */
    GW_MSG_SESSION_END, /* fe -> sch: session `session` ended: drop its observers */
    GW_MSG_MESH_TX,     /* sch -> mesh: data = CoAP message for device `mac` */
    GW_MSG_MESH_RX,     /* mesh -> sch: data = CoAP message from device `mac` */
    GW_MSG_SESSION_MOVED, /* fe -> sch: sticky move of `session` away from `ep`: observers there end */
    GW_MSG_FE_START, /* fe -> sch: frontend `fe` (re)started: send it its unconfirmed answers again */
    GW_MSG_ANSWER_DONE, /* fe -> sch: client `ep` ACKed or RSTed `client_mid`, or it was given up */
    GW_MSG_NOTIFY_SET, /* sch -> fe: one notification for several observers (gw_notify_set below) */
    GW_MSG_KIND_MAX
};

enum gw_security { GW_SEC_NONE = 0, GW_SEC_NETMGR = 1 };

/* flags */
#define GW_MF_OBS_REGISTER 0x01 /* REQ: GET with Observe: 0 */
#define GW_MF_OBS_CANCEL 0x02   /* REQ: GET with Observe: 1 */
#define GW_MF_NOTIFY 0x04       /* RESP: an observe notification (observer keyed by ep + token) */
#define GW_MF_MILLI 0x08        /* MESH_TX: to a Milli device */
/* MESH_RX: a datagram from peer node `aux` (S10.4, meshio/mesh_peer.h), mac
 * all-zero until the scheduler attributes it to a device; MESH_TX: an empty
 * ACK/RST for peer node `aux`, sent as it is (mac all-zero). */
#define GW_MF_PEER 0x10
#define GW_MF_BLOCK2 0x10 /* REQ: client asked for Block2 size 16 << aux (S4.7) */
#define GW_MF_SUPPRESS                                                                             \
    0x20 /* RESP: No-Response asked not to send this answer; only account for it */
#define GW_MF_DEV_NON                                                                              \
    0x80 /* RESP notify: the device sent this state as NON (S6.9, obs_notify_con = 0) */
#define GW_MF_ANSWER                                                                               \
    0x40 /* RESP: this answers a request (the frontend counts it off the session's in-flight) */
#define GW_MF_CACHED 0x01 /* RESP answer: served from the scheduler's cache (latency metric) */

/* flags2 (S1.3, issue #12 item 15: no final answer is lost with a frontend).
 * A CON answer is kept in its transaction slot, with the client-facing MID,
 * until the client ACKs or RSTs it (GW_MSG_ANSWER_DONE from whichever
 * frontend receives that) or the client's MAX_TRANSMIT_WAIT passed. The
 * scheduler draws the MID from the frontend's counter in its proc slot
 * (gw_shm.h), the one the frontend draws its own MIDs from, so it never
 * clashes with them. After GW_MSG_FE_START the scheduler sends that
 * frontend every unconfirmed answer it had again, with the same MID: a
 * client that got the first copy drops the second (RFC 7252 4.5) and ACKs
 * it again. */
#define GW_MF2_MID 0x01 /* RESP: send with MID client_mid (an answer the scheduler keeps) */
/* A cache hit a frontend may not answer on its own (frontend/fe_guard.h): the
 * client's CON GET may be a copy of a request another frontend of the port
 * forwarded, or one another frontend already answered from the cache; only
 * the scheduler knows the first. REQ with GW_MF2_CHECK: the frontend holds the
 * hit, rendered on the ACK of client_mid, and asks; the scheduler never
 * executes it. RESP with GW_MF2_CHECK (no data): the verdict, to the frontend
 * that asked. GW_MF2_COPY set: a copy of a request the scheduler took (its
 * answer comes as that request's does; the frontend ACKs the copy empty);
 * clear: answer it with the hit (GW_MF_ANSWER set), and the scheduler records
 * the request as answered, so the original, should it arrive later from a
 * frontend that died, is a copy, and a later check of it again says answer.
 * Either way one final answer, or the same one with the same MID again. */
#define GW_MF2_CHECK 0x02
#define GW_MF2_COPY 0x04

struct gw_msg {
    uint8_t kind;
    uint8_t security;
    uint8_t fe; /* frontend that received the request */
    uint8_t flags;
    uint16_t len;        /* bytes of CoAP message following */
    uint8_t client_type; /* CON or NON of the client's request */
    uint8_t tkl;         /* client token length */
    uint64_t req_id;     /* unique per request: frontend index << 56 | counter */
    uint64_t session;    /* session id of the client */
    struct gw_ep ep;     /* client endpoint */
    uint8_t token[GW_COAP_MAX_TOKEN];
    uint8_t mac[GW_MAC_LEN];
    uint32_t aux;        /* Block2 szx (REQ), Observe number (RESP notify) */
    uint8_t noresp;      /* REQ: No-Response value (RFC 7967) */
    uint8_t flags2;      /* GW_MF2_* */
    uint16_t client_mid; /* REQ: the client's MID (duplicate detection across frontend restarts);
                                RESP with GW_MF2_MID: the MID to send the answer with;
                                ANSWER_DONE: the MID the client ACKed or RSTed */
    uint32_t rx_us;      /* REQ/RESP: low 32 bits of CLOCK_MONOTONIC microseconds when the frontend
                              * took the request (system-wide, so latency is measured across processes;
                              * differences are taken modulo 2^32, good for 71 minutes) */
    uint64_t req_key;    /* REQ/RESP: hash of (target, Accept) for Block2 follow-ups */
};
GW_STATIC_ASSERT(sizeof(struct gw_msg) == 80, "envelope layout is fixed");

#define GW_MSG_MAX (sizeof(struct gw_msg) + GW_COAP_MAX_MSG + 16)

/* GW_MSG_NOTIFY_SET (issue 13 item 3): a resource's new state is encoded
 * once, for up to a ring slot's worth of its observers at one frontend,
 * instead of one record per observer. The envelope is a RESP notify's (kind,
 * fe, flags GW_MF_NOTIFY [| GW_MF_DEV_NON], aux = Observe number, security,
 * mac); data is struct gw_notify_hdr, the message without a token (tkl 0,
 * MID 0), then `count` struct gw_notify_to. gw_notify_set_get() yields
 * observer i's record exactly as a GW_MSG_RESP for it would be. */
struct gw_notify_hdr {
    uint16_t count;
    uint16_t msg_len;
};
struct gw_notify_to {
    struct gw_ep ep;
    uint8_t tkl;
    uint8_t flags; /* GW_MF_ANSWER for the observer whose request this state answers */
    uint8_t token[GW_COAP_MAX_TOKEN];
    uint16_t pad;
    uint64_t session;
};
GW_STATIC_ASSERT(sizeof(struct gw_notify_to) == 40,
                 "a notification costs 40 ring bytes per observer");

/* Observers in a decoded GW_MSG_NOTIFY_SET record, after checking that the
 * header, message and entries fit its length exactly; 0 when malformed. */
size_t gw_notify_set_count(const struct gw_msg *env, const uint8_t *data);
/* Observer i's entry, checked (token length, address family, size); 0 or
 * GW_EBADMSG. The message is data + sizeof(struct gw_notify_hdr). */
int gw_notify_set_to(const struct gw_msg *env, const uint8_t *data, size_t i,
                     struct gw_notify_to *to) GW_NODISCARD;
/* Observer i's RESP record: *m (envelope) and out (the message with its
 * token, MID 0; cap >= GW_COAP_MAX_MSG + 16). 0, or GW_EBADMSG. */
int gw_notify_set_get(const struct gw_msg *env, const uint8_t *data, size_t i, struct gw_msg *m,
                      uint8_t *out, size_t cap) GW_NODISCARD;

/* Validates a popped record. Returns 0 and points *data at the CoAP bytes,
 * or GW_EBADMSG. hdr is copied out so the caller owns an aligned copy. */
int gw_msg_decode(const uint8_t *rec, size_t n, struct gw_msg *hdr,
                  const uint8_t **data) GW_NODISCARD;

/* Pops the next record of ring r into rec (cap bytes) and decodes it: the
 * consumer loop of every role. 0 with *hdr and *data (pointing into rec),
 * GW_EEMPTY, or GW_EBADMSG when the slot or the envelope is corrupt (the
 * record is gone: count it, go on with the next). */
struct gw_ring;
int gw_msg_pop(struct gw_ring *r, uint8_t *rec, size_t cap, struct gw_msg *hdr,
               const uint8_t **data) GW_NODISCARD;

/* Constructors, one per envelope kind: each zeroes the envelope and sets
 * the fields its kind carries (the table above), so no field is left over
 * from a previous use and a new field has one place to be filled. The
 * sender sets the optional fields of REQ and RESP (flags, aux, ...) after. */

/* REQ: a request for device `mac`; the frontend adds the client fields
 * with gw_msg_set_client(). */
void gw_msg_req(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN], size_t len);
/* RESP: an answer or notification from device `mac`; the client fields
 * follow with gw_msg_set_client(). */
void gw_msg_resp(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN], size_t len);
/* The client part of a REQ or RESP: who asked, on which frontend, and with
 * which token. */
/* NOTIFY_SET: state number `observe` of a resource of `mac`; the data and
 * len follow (gw_notify_hdr below). */
void gw_msg_notify_set(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN],
                       uint8_t flags, uint32_t observe);
void gw_msg_set_client(struct gw_msg *m, uint8_t fe, uint64_t session, const struct gw_ep *ep,
                       uint8_t client_type, const uint8_t *token, uint8_t tkl, uint64_t req_id);
void gw_msg_obs_gone(struct gw_msg *m, uint8_t fe, const struct gw_ep *ep, const uint8_t *token,
                     uint8_t tkl, uint64_t session);
void gw_msg_session_end(struct gw_msg *m, uint8_t fe, const struct gw_ep *ep, uint64_t session);
void gw_msg_session_moved(struct gw_msg *m, uint8_t fe, const struct gw_ep *old_ep,
                          uint64_t session);
void gw_msg_fe_start(struct gw_msg *m, uint8_t fe);
void gw_msg_answer_done(struct gw_msg *m, uint8_t fe, const struct gw_ep *ep, uint16_t client_mid);
/* MESH_TX: `len` bytes for device `mac`; req_id 0 for the scheduler's own
 * empty ACKs and RSTs. */
void gw_msg_mesh_tx(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN],
                    uint8_t flags, uint64_t req_id, size_t len);
void gw_msg_mesh_rx(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN], size_t len);

#endif
