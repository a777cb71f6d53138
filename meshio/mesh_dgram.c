/* SPDX-License-Identifier: MIT */
/* mesh_dgram.c - what meshio does with one record or one datagram (SPEC
 * S7.1), without sockets or rings: meshio.c feeds it and sends the result. */
#include "meshio.h"
#include "gw_error.h"
#include "gw_msg.h"
#include "gw_registry.h"

#include <errno.h>
#include <string.h>

/* The envelope carries at most this much CoAP (gw_msg_decode's bound). */
#define MESH_ENV_MAX (GW_COAP_MAX_MSG + 16)

int mesh_tx_prepare(const struct gw_device *dev, uint8_t security, const uint8_t *coap, size_t len,
                    struct mesh_seqstore *seq, uint8_t *out, size_t cap, size_t *outlen,
                    struct gw_ep *dst)
{
    *outlen = 0;
    if (len == 0)
        return GW_EBADMSG;
    memset(dst, 0, sizeof(*dst));
    dst->family = dev->family;
    memcpy(dst->addr, dev->addr, sizeof(dst->addr));
    if (security == GW_SEC_NONE) {
        if (len > MESH_ENV_MAX || len > cap)
            return GW_ETOOBIG;
        memcpy(out, coap, len);
        *outlen = len;
        dst->port = dev->plain_port;
        return 0;
    }
    if (security != GW_SEC_NETMGR)
        return -EINVAL;
    if (len > MESH_MAX_PLAINTEXT || cap < len + MESH_FRAME_OVERHEAD)
        return GW_ETOOBIG;
    uint64_t s;
    int rc = mesh_seqstore_take(seq, &s);
    if (rc)
        return rc;
    rc = mesh_seal(dev->key, dev->mac, MESH_DIR_TO_DEVICE, s, coap, len, out, cap, outlen);
    if (rc)
        return rc == GW_ETOOBIG || rc == GW_EAUTH ? rc : GW_EAUTH;
    dst->port = dev->secure_port;
    return 0;
}

int mesh_rx_identify(struct gw_store *store, const struct gw_ep *src, bool secure,
                     struct gw_device *dev)
{
    uint8_t mac[GW_MAC_LEN];
    int rc = gw_registry_by_addr(store, src, mac);
    if (rc == 0)
        rc = gw_registry_get(store, mac, dev);
    if (rc == GW_EBADMSG)
        rc = GW_ENOTFOUND; /* a damaged entry names no device we can serve */
    if (rc)
        return rc;
    /* The registry changes under us (S7.2): check the entry found by MAC
     * still has this address, and the port of the socket's kind. */
    if (dev->family != src->family || memcmp(dev->addr, src->addr, sizeof(dev->addr)) != 0 ||
        src->port != (secure ? dev->secure_port : dev->plain_port))
        return GW_ENOTFOUND;
    return 0;
}

int mesh_rx_accept(const struct gw_device *dev, bool secure, struct mesh_peers *peers,
                   const uint8_t *dgram, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    *outlen = 0;
    if (!secure) {
        if (len < 4)
            return GW_EBADMSG;
        if (len > MESH_ENV_MAX || len > cap)
            return GW_ETOOBIG;
        memcpy(out, dgram, len);
        *outlen = len;
        return 0;
    }
    uint64_t seq;
    size_t n;
    int rc = mesh_open(dev->key, dev->mac, MESH_DIR_FROM_DEVICE, dgram, len, out, cap, &n, &seq);
    if (rc)
        return GW_EAUTH; /* malformed, oversize or forged: none of it is trusted */
    struct mesh_peer *peer;
    rc = mesh_peers_get(peers, dev->mac, dev->key, &peer);
    if (rc == 0)
        rc = mesh_replay_check(&peer->win, seq);
    if (rc) {
        memset(out, 0, n);
        return rc;
    }
    mesh_peers_accept(peers, peer, seq);
    *outlen = n;
    return 0;
}
