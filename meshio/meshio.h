/* SPDX-License-Identifier: MIT */
/* meshio.h - the mesh-side process (SPEC S1.1, S7): secures datagrams for
 * devices and carries them between the scheduler's ring pair and the mesh.
 *
 * Data path
 * ---------
 *   scheduler --MESH_TX--> [sch->mesh ring] --> meshio --UDP--> device
 *   device --UDP--> meshio --> [mesh->sch ring] --MESH_RX--> scheduler
 *
 * Two UDP sockets, both bound to mesh_bind (ephemeral ports unless mesh_bind
 * names one: then the plain socket takes that port and the secure one the
 * next). The socket a datagram arrives on says what it is, so a device
 * whose plain and secure ports coincide is still served correctly:
 *   plain socket   CoAP as-is, to and from device addr:plain_port
 *                  (security=none, S7.1);
 *   secure socket  mesh_crypto.h frames, to and from addr:secure_port
 *                  (security=netmgr, S7.1).
 * A datagram is accepted only from the registered address and the port of
 * its kind; anything else counts as mesh_unknown_source. Bytes that arrive
 * on the secure socket reach the scheduler only after their tag verified
 * and their sequence number passed the device's replay window.
 *
 * With node_count > 1, datagrams for devices another node owns go to that
 * node instead, as CoAP proxy requests on two more sockets (mesh_peer.h).
 *
 * The registry is read from LMDB for every datagram (S7.2), so edits made
 * while meshio runs apply to the next datagram. The only per-device state
 * kept in memory is the receive replay window, keyed by MAC and bound to
 * the device key it was built under: a new key starts a fresh window (the
 * device may restart its counter with a new key, mesh_crypto.h).
 *
 * Gateway->device sequence numbers come from ONE counter for all devices,
 * reserved in blocks of mesh_seq_block in LMDB (meta key "mesh_seq") before
 * any number of the block is used. A number is thus never used twice under
 * any key, and each device sees strictly increasing numbers (with gaps).
 *
 * Why no struct mesh_link_ops (STYLE "drivers behind a vtable"): UDP is the
 * only link there is; the simulator (S7.3) and real CoAP servers both speak
 * it. The logic is apart from I/O all the same (mesh_tx_prepare,
 * mesh_rx_accept, mesh_rx_identify below), so a radio link would reuse it.
 *
 * What a SIGKILL of meshio loses
 * ------------------------------
 * - Datagrams it held in flight: at most the record popped from the
 *   sch->mesh ring but not yet sent, and the datagrams read from a socket but
 *   not yet pushed to the scheduler. Scheduler retries (S4.4) cover both;
 *   a Milli request lost this way ends in 5.04 (S4.5: never retried).
 * - Up to mesh_seq_block - 1 unused sequence numbers (skipped, never reused:
 *   the restart resumes above the durable reservation, S7.1).
 * - Nothing of the replay windows: a secured frame that passed its window
 *   is held (struct mesh_hold) until the window's new top is committed to
 *   LMDB (meta "replay:<mac>", not synced: it must outlive meshio, not the
 *   machine), and only then forwarded to the scheduler; one write
 *   transaction per loop turn covers every frame read in that turn. A
 *   restarted meshio restores each window as "refuse everything up to the
 *   persisted top", so no frame forwarded before a SIGKILL is accepted
 *   after it (issue #12 item 10). Frames held when meshio dies were never
 *   forwarded: the device's retransmission or the scheduler's retry
 *   covers them, as for any datagram lost in flight.
 * - With node_count > 1: the sessions' state at the other nodes (a restarted
 *   meshio opens them again, renewing them in place at the owner) and the
 *   datagrams held while one opened. The peer sockets take the ports their
 *   predecessor had (meta "mesh_peer_port_<i>"), so the owners' answers
 *   and notifications still arrive and the sessions stay bound to them.
 * Nothing else: rings and LMDB are untouched by a crash of meshio. */
#ifndef MESHIO_H
#define MESHIO_H

#include "gw_addr.h"
#include "gw_config.h"
#include "gw_defs.h"
#include "gw_devfile.h"
#include "gw_map.h"
#include "gw_store.h"
#include "mesh_crypto.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Runs meshio until SIGTERM/SIGINT (SIGHUP is logged and ignored: nothing
 * to reload, the registry is read live). The caller has called gw_log_init
 * with role "meshio".
 * Returns 0 after a clean stop; GW_EXIT_FATAL for configuration errors (bad
 * mesh_bind, address not available, shared memory layout mismatch, a corrupt
 * sequence reservation in LMDB that would put nonce uniqueness at risk); 1 for
 * other failures (the supervisor respawns). */
int mesh_run(const struct gw_config *cfg);

/* ---- gateway->device sequence numbers over LMDB (S7.1) ---- */

#define MESH_SEQ_META_KEY "mesh_seq"

struct mesh_seqstore {
    struct mesh_seq seq;
    struct gw_store *store; /* not owned */
};

/* Loads the durable reservation (absent: 0) from store's meta "mesh_seq".
 * [in] block  numbers reserved per LMDB write (cfg mesh_seq_block; 0 -> 1).
 * Returns 0; GW_EBADMSG when the stored value is not 8 bytes (refuse to run:
 * restarting at 0 could reuse nonces); other gw_store errors. */
int mesh_seqstore_init(struct mesh_seqstore *s, struct gw_store *store,
                       uint64_t block) GW_NODISCARD;

/* Hands out the next number. When the block is used up, persists the next
 * reservation with gw_store_meta_put_u64 (committed and synced) before any
 * number from it is returned.
 * [out] seq  the number, on 0.
 * Returns 0; GW_EFULL when all 2^48 numbers are spent (devices need new
 * keys); a gw_store error when the reservation could not be persisted
 * (nothing handed out; the next call tries again). */
int mesh_seqstore_take(struct mesh_seqstore *s, uint64_t *seq) GW_NODISCARD;

/* ---- per-device receive replay windows (S7.1) ---- */

#define MESH_PEERS_META_PREFIX "replay:"

struct mesh_peer {
    uint8_t mac[GW_MAC_LEN];
    uint64_t keyfp; /* fingerprint of the key the window belongs to */
    struct mesh_replay win;
    uint8_t dirty; /* top moved since the last flush */
};

/* An array of peers indexed by MAC (a gw_map); both grow by doubling, so an
 * entry may move when a peer is added. Entries are only created for frames
 * that authenticated, so it holds at most one per keyed device. */
struct mesh_peers {
    struct mesh_peer *v;
    struct gw_map idx; /* MAC (64 bits) -> index into v */
    uint32_t cap, count;
    uint8_t (*dirty)[GW_MAC_LEN]; /* MACs whose top moved, for the flush */
    uint32_t ndirty, dirty_cap;
    struct gw_store *store; /* NULL: memory only; not owned */
};

/* Returns 0 or -ENOMEM. store may be NULL. */
int mesh_peers_init(struct mesh_peers *p, struct gw_store *store) GW_NODISCARD;
void mesh_peers_deinit(struct mesh_peers *p);

/* The window of device mac under key. Created when absent, restored from
 * the store when a persisted top exists for the same key; reset to empty when
 * the device's key changed since the window was built.
 * [out] out  valid until the next mesh_peers_get (the table may grow).
 * Returns 0 or -ENOMEM. */
int mesh_peers_get(struct mesh_peers *p, const uint8_t mac[GW_MAC_LEN],
                   const uint8_t key[MESH_KEY_LEN], struct mesh_peer **out) GW_NODISCARD;

/* Records seq as accepted (after mesh_replay_check passed) and marks the
 * window for the next flush when its top moved. */
void mesh_peers_accept(struct mesh_peers *p, struct mesh_peer *peer, uint64_t seq);

static inline bool mesh_peers_has_dirty(const struct mesh_peers *p)
{
    return p->ndirty != 0;
}

/* Persists the tops of every window marked since the last flush, in one
 * write transaction (not synced: it only has to survive meshio, not the
 * machine). The marks are cleared only when the transaction committed.
 * Returns 0, or the gw_store error (the marks stay for the next call). */
int mesh_peers_flush(struct mesh_peers *p) GW_NODISCARD;

/* Secured frames that passed their replay window, held until the window
 * tops are durable (see "What a SIGKILL of meshio loses"). */
#define MESH_HOLD_MAX 32

struct mesh_held {
    uint8_t mac[GW_MAC_LEN];
    uint16_t len;
    uint8_t data[GW_COAP_MAX_MSG + 16];
};

struct mesh_hold {
    struct mesh_held f[MESH_HOLD_MAX];
    uint32_t n;
};

static inline bool mesh_hold_full(const struct mesh_hold *h)
{
    return h->n >= MESH_HOLD_MAX;
}

/* Holds one accepted frame (CoAP bytes for the scheduler). The caller
 * releases a full hold first. */
void mesh_hold_add(struct mesh_hold *h, const uint8_t mac[GW_MAC_LEN], const uint8_t *data,
                   size_t len);

typedef void (*mesh_hold_fwd)(void *ctx, const uint8_t mac[GW_MAC_LEN], const uint8_t *data,
                              size_t len);

/* Persists the marked windows (mesh_peers_flush), then forwards every held
 * frame in arrival order. When the flush fails nothing is forwarded: the
 * frames are dropped (*dropped of them; the scheduler's retries and the
 * devices' retransmissions cover them) and the error returned. The hold
 * is empty afterwards either way. */
int mesh_hold_release(struct mesh_hold *h, struct mesh_peers *p, mesh_hold_fwd fwd, void *ctx,
                      uint32_t *dropped) GW_NODISCARD;

/* ---- the datagram logic, without sockets ---- */

/* Builds the datagram for one MESH_TX record.
 * [in]  dev       the registry entry of the record's MAC.
 * [in]  security  GW_SEC_NONE: coap is copied as-is, dst = addr:plain_port.
 *                 GW_SEC_NETMGR: sealed with a fresh sequence number,
 *                 MESH_DIR_TO_DEVICE, dst = addr:secure_port.
 * [in]  seq       the gateway's counter (only used for NETMGR).
 * [out] out       cap bytes (MESH_MAX_FRAME + 16 is always enough).
 * Returns 0; GW_ETOOBIG (coap over GW_COAP_MAX_MSG + 16, or over 1152 for
 * NETMGR); GW_EBADMSG for an empty message; -EINVAL for an unknown security
 * value; GW_EFULL or a store error from mesh_seqstore_take; GW_EAUTH if
 * sealing failed in the crypto library. */
int mesh_tx_prepare(const struct gw_device *dev, uint8_t security, const uint8_t *coap, size_t len,
                    struct mesh_seqstore *seq, uint8_t *out, size_t cap, size_t *outlen,
                    struct gw_ep *dst) GW_NODISCARD;

/* meshio's copy of the device registry (keys included), so that a datagram
 * costs a hash look-up instead of LMDB read transactions. mesh_devidx_sync
 * is called before look-ups: it compares the environment's last
 * transaction id (no transaction) and, when that moved, the registry's
 * generation (gw_registry_gen), and rebuilds the copy when the generation
 * changed. Cost: sizeof(struct gw_device) + 96 to 192 bytes per device
 * (the two gw_map indexes: 2 to 4 slots of 16 bytes per key). */
struct mesh_devidx {
    struct gw_device *dev;
    uint32_t n, cap;
    struct gw_map by_mac,
        by_addr; /* the MAC / endpoint (unkeyed, mesh_devidx.c) -> index into dev */
    uint64_t gen;
    size_t txnid;
    bool valid;
};
void mesh_devidx_init(struct mesh_devidx *x);
void mesh_devidx_deinit(struct mesh_devidx *x);
/* Replaces the copy with n devices (copied) of generation gen. */
int mesh_devidx_build(struct mesh_devidx *x, const struct gw_device *devs, uint32_t n,
                      uint64_t gen) GW_NODISCARD;
/* Brings the copy up to date with the registry in st (see above). 0, or a
 * store error (then the old copy, if any, stays and is marked valid as it was). */
int mesh_devidx_sync(struct mesh_devidx *x, struct gw_store *st) GW_NODISCARD;
const struct gw_device *mesh_devidx_by_mac(const struct mesh_devidx *x,
                                           const uint8_t mac[GW_MAC_LEN]);
/* The device with address ep->addr and ep->port as its plain or secure port. */
const struct gw_device *mesh_devidx_by_ep(const struct mesh_devidx *x, const struct gw_ep *ep);
/* mesh_rx_identify on the copy: 0 with *dev, or GW_ENOTFOUND. */
int mesh_devidx_identify(const struct mesh_devidx *x, const struct gw_ep *src, bool secure,
                         struct gw_device *dev) GW_NODISCARD;

/* Which device sent a datagram from src to the plain (secure = false) or
 * secure socket? Looks the source up in the registry and requires it to be
 * the device's address and its port of that kind.
 * Returns 0 with *dev filled; GW_ENOTFOUND for an unknown or mismatched
 * source; other gw_store errors. */
int mesh_rx_identify(struct gw_store *store, const struct gw_ep *src, bool secure,
                     struct gw_device *dev) GW_NODISCARD;

/* Checks a datagram from device dev and yields the CoAP bytes for the
 * scheduler.
 * [in]  secure  it arrived on the secure socket: open with dev->key,
 *               MESH_DIR_FROM_DEVICE, then the replay window; else plain.
 * [out] out     cap bytes (GW_COAP_MAX_MSG + 16 is always enough).
 * Returns 0; GW_EAUTH (frame malformed, too long, or its tag does not
 * verify); GW_EREPLAY (seen already or older than the window); GW_EBADMSG
 * (plain datagram shorter than a CoAP header); GW_ETOOBIG (plain datagram
 * over GW_COAP_MAX_MSG + 16 or over cap); -ENOMEM. On any error out holds no
 * plaintext (a frame that opened but failed the replay check is wiped). */
int mesh_rx_accept(const struct gw_device *dev, bool secure, struct mesh_peers *peers,
                   const uint8_t *dgram, size_t len, uint8_t *out, size_t cap,
                   size_t *outlen) GW_NODISCARD;

#endif
