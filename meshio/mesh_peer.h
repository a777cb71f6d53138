/* SPDX-License-Identifier: MIT */
/* mesh_peer.h - forwarding to the owner node (S10.4, issue 16 item 3), without sockets.
 *
 * With node_count > 1 every device has one owner node (gw_nodes.h). The
 * scheduler treats a device owned by another node like a local one (FIFO,
 * NSTART, Milli single-flight, cache, one observation per resource), and
 * meshio sends its datagrams to the owner instead of the mesh: a request
 * becomes an ordinary CoAP proxy request to the owner's client port
 * (Proxy-Scheme "coap", Uri-Host = the MAC, Uri-Port = 5683 or 4849 for the
 * security), empty ACKs and RSTs go as they are. The owner's frontend sees a
 * client whose session is a node session: it ACKs, forwards to its own
 * scheduler, and answers (and notifies) that endpoint. Answers come back on
 * the peer socket and reach the scheduler as MESH_RX with GW_MF_PEER.
 *
 * Two peer sockets (one per mesh security, since a session is bound to its
 * source address and port and has one security) bound to nodes[self]'s
 * address: the owner accepts a node token only from that address.
 *
 * A link is one (peer node, security) pair: the session this node holds at
 * the peer. It is opened with CON POST /sessions?security=... carrying a
 * token signed with the shared HS256 key (mesh_peer_token), retried on a
 * bounded back-off until 2.01, renewed before the token expires and when
 * the peer answers a forwarded request with 4.01 (that answer is rewritten
 * to 5.03 before it reaches the scheduler: the client may retry). Requests
 * for a link whose session is not open are held in a bounded FIFO and sent
 * once it opens: Milli requests are never retried by the scheduler, so a
 * dropped one would end in 5.04.
 *
 * Message IDs: the scheduler gives forwarded requests even MIDs (per owner
 * node, sch_core.c), the POSTs use odd ones, so that the two never share a
 * MID: the owner's duplicate detection keys on endpoint, MID and token (a
 * reused MID with a new token is a new request there), and the scheduler
 * matches the owner's empty ACKs by MID. */
#ifndef MESH_PEER_H
#define MESH_PEER_H

#include "gw_addr.h"
#include "gw_coap.h"
#include "gw_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MESH_PEER_DIAG_REAUTH "owner node re-authenticating: retry"
#define MESH_PEER_RETRY_MIN_MS 1000
#define MESH_PEER_RETRY_MAX_MS 30000
#define MESH_PEER_DGRAM_MAX (GW_COAP_MAX_MSG + 64)

/* Rewrites one MESH_TX message for a device owned by another node.
 * An empty message (ACK, RST) is copied as it is. A request gets Uri-Host
 * (the MAC as 16 hex digits), Uri-Port (5683 for GW_SEC_NONE, 4849 for
 * GW_SEC_NETMGR) and Proxy-Scheme "coap" (options kept in order).
 * [in]  p     a parser (scratch).
 * [out] out   cap bytes (MESH_PEER_DGRAM_MAX is always enough).
 * Returns 0; GW_EBADMSG for a message that does not parse, that is neither
 * a request nor empty, or already names a target (Uri-Host, Uri-Port,
 * Proxy-Uri, Proxy-Scheme); GW_ETOOBIG when the result exceeds cap or
 * GW_COAP_MAX_MSG + 16; GW_EFULL with too many options. */
int mesh_peer_rewrite(struct gw_coap_parser *p, const uint8_t *coap, size_t len,
                      const uint8_t mac[GW_MAC_LEN], uint8_t security, uint8_t *out, size_t cap,
                      size_t *outlen) GW_NODISCARD;

/* The owner's 4.01 piggybacked on the ACK of a forwarded request means our
 * session there is gone (expired, or the owner lost it): the answer becomes
 * a 5.03 with MESH_PEER_DIAG_REAUTH and Max-Age 1 (same type, MID and
 * token) and the link re-opens. Returns 1 when rewritten into out, 0 when
 * the message is not such an answer (out untouched), GW_ETOOBIG. */
int mesh_peer_unauth_rewrite(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                             size_t *outlen) GW_NODISCARD;

/* A node token (HS256 with the shared key): sub "node-<self>", node = self,
 * iat = now_s, exp = now_s + ttl_s, iss / aud when configured ("" = none).
 * [out] out  malloc'd NUL-terminated compact JWT; the caller frees it.
 * Returns 0, -EINVAL, -ENOMEM. */
int mesh_peer_token(const uint8_t *key, size_t keylen, uint32_t self, int64_t now_s, int64_t ttl_s,
                    const char *iss, const char *aud, char **out) GW_NODISCARD;

/* CON POST /sessions?security=none|netmgr with the token as payload. */
int mesh_peer_session_post(uint16_t mid, const uint8_t token[8], uint8_t security, const char *jwt,
                           uint8_t *out, size_t cap, size_t *outlen) GW_NODISCARD;

enum mesh_link_state { MESH_LINK_IDLE = 0, MESH_LINK_OPENING, MESH_LINK_OPEN };

struct mesh_held_dgram {
    uint16_t len;
    uint8_t data[MESH_PEER_DGRAM_MAX];
};

/* One (peer node, security) session. Zeroed = idle, nothing held. */
struct mesh_link {
    uint8_t state;
    bool post_out;    /* a POST is outstanding (mid, tok) */
    uint16_t mid;     /* MID of the outstanding POST (odd) */
    uint8_t tok[8];   /* its token */
    uint32_t backoff; /* ms until the next try while opening */
    uint64_t next_ms; /* OPENING: next try; OPEN: renewal */
    int64_t exp_s;    /* exp of the token in the outstanding POST */
    int64_t open_exp; /* exp of the open session's token */
    uint64_t opened;  /* times a 2.01 was taken */
    uint32_t qmax, qn, qhead;
    struct mesh_held_dgram *q; /* qmax slots, allocated at the first hold */
    uint32_t dropped;          /* held datagrams dropped because the queue was full */
};

/* Frees the held queue. */
void mesh_link_deinit(struct mesh_link *l);

/* What the caller does after a mesh_link_* call. */
enum mesh_link_act {
    MESH_LINK_NOTHING = 0,
    MESH_LINK_SEND = 1,     /* send the datagram now */
    MESH_LINK_HELD = 2,     /* kept until the session opens */
    MESH_LINK_POST = 4,     /* send a session POST now (mesh_link_post_begin) */
    MESH_LINK_RELEASE = 8,  /* the session opened: send every held datagram (mesh_link_pop) */
    MESH_LINK_REFUSED = 16, /* the peer refused the POST: log it */
};

/* A forwarded request (or empty message) for this link at now_ms. Empty
 * messages are always sent (`empty`); requests only on an open session,
 * else held (the oldest is dropped when qmax are held). Returns a mask of
 * enum mesh_link_act. */
int mesh_link_submit(struct mesh_link *l, uint32_t qmax, const uint8_t *d, size_t n, bool empty,
                     uint64_t now_ms);

/* Records a POST about to go out with MID mid, token tok, for a token
 * expiring at exp_s; the next try follows after the back-off. */
void mesh_link_post_begin(struct mesh_link *l, uint16_t mid, const uint8_t tok[8], int64_t exp_s,
                          uint64_t now_ms);

/* Timer: returns MESH_LINK_POST when a POST is due (opening and its retry
 * time passed, or open and its renewal time passed). */
int mesh_link_tick(struct mesh_link *l, uint64_t now_ms);

/* The owner answered a forwarded request with 4.01: the session is gone.
 * Returns MESH_LINK_POST when a POST must go out now. */
int mesh_link_lost(struct mesh_link *l, uint64_t now_ms);

/* A parsed datagram from the peer on this link: when it answers the
 * outstanding POST (ACK with its MID, or a response with its token) it is
 * consumed: 2.01 opens the session (MESH_LINK_RELEASE; renewal at half the
 * remaining token life, at most renew_max_ms away), anything else is
 * MESH_LINK_REFUSED and the next try follows the back-off; an empty ACK
 * only stops nothing (the answer follows). *mine tells whether the message
 * was the POST's (then it must not reach the scheduler). */
int mesh_link_on_rx(struct mesh_link *l, const struct gw_coap_msg *m, int64_t now_s,
                    uint64_t now_ms, uint64_t renew_max_ms, bool *mine);

/* Pops the oldest held datagram into *out (valid until the next submit).
 * Returns false when none is left. */
bool mesh_link_pop(struct mesh_link *l, const struct mesh_held_dgram **out);

#endif
