/* SPDX-License-Identifier: MIT */
/* mesh_devidx.c - meshio's in-memory copy of the device registry, looked up
 * per datagram instead of two or three LMDB read transactions (issue 13
 * item 2); rebuilt when the registry's generation changes (see meshio.h). */
#include "meshio.h"
#include "gw_error.h"
#include "gw_registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The keys of the two indexes, unkeyed (issue 13: two SipHashes per
 * datagram were most of meshio's own work). Safe because only the
 * registry, which the operator writes, inserts keys here: the MAC a client
 * names and the source address of a datagram, both the sender's choice
 * (issue #12 item 6), are only looked up. A look-up walks the probe run
 * from its key's home slot to the first empty slot, and every run is made
 * of the registry's keys alone (built once, load <= 1/2), so no sender can
 * make one longer; a sender who finds a key equal to a device's costs one
 * comparison of the device (colliding keys are told apart there). The map
 * mixes each key before taking a slot (gw_map.h), so sequential MACs and
 * addresses spread. */
static uint64_t h_mac(const struct mesh_devidx *x, const uint8_t mac[GW_MAC_LEN])
{
    (void)x;
    uint64_t k;
    memcpy(&k, mac, sizeof(k));
    return k;
}

/* An IPv4 address (bits 0-31 of the first word), its port (bits 40-55) and
 * family (bits 60-63) go to distinct bits: equal keys only for equal
 * endpoints; IPv6 folds its second word in, rotated. */
static uint64_t h_addr(const struct mesh_devidx *x, uint8_t family, const uint8_t addr[16],
                       uint16_t port)
{
    (void)x;
    uint64_t a0, a1;
    memcpy(&a0, addr, 8);
    memcpy(&a1, addr + 8, 8);
    return a0 ^ (a1 << 29 | a1 >> 35) ^ (uint64_t)port << 40 ^ (uint64_t)family << 60;
}

static void wipe(struct mesh_devidx *x)
{
    if (x->dev) {
        /* The copies hold device keys. */
        memset(x->dev, 0, sizeof(*x->dev) * x->cap);
        free(x->dev);
    }
    gw_map_deinit(&x->by_mac);
    gw_map_deinit(&x->by_addr);
    x->dev = NULL;
    x->n = x->cap = 0;
}

void mesh_devidx_init(struct mesh_devidx *x)
{
    memset(x, 0, sizeof(*x));
}

void mesh_devidx_deinit(struct mesh_devidx *x)
{
    wipe(x);
    x->valid = false;
}

int mesh_devidx_build(struct mesh_devidx *x, const struct gw_device *devs, uint32_t n, uint64_t gen)
{
    struct mesh_devidx nx = *x; /* x's own tables are not shared */
    memset(&nx.by_mac, 0, sizeof(nx.by_mac));
    memset(&nx.by_addr, 0, sizeof(nx.by_addr));
    nx.cap = n ? n : 1;
    nx.n = n;
    nx.dev = calloc(nx.cap, sizeof(*nx.dev));
    /* Built once per generation at its final size: neither table grows. Two
     * address keys per device (plain and secure port). */
    int rc = nx.dev ? gw_map_init(&nx.by_mac, nx.cap, nx.cap) : -ENOMEM;
    if (rc == 0)
        rc = gw_map_init(&nx.by_addr, 2 * nx.cap, 2 * nx.cap);
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        nx.dev[i] = devs[i];
        const struct gw_device *d = &nx.dev[i];
        rc = gw_map_add(&nx.by_mac, h_mac(&nx, d->mac), i);
        if (rc == 0)
            rc = gw_map_add(&nx.by_addr, h_addr(&nx, d->family, d->addr, d->plain_port), i);
        if (rc == 0 && d->secure_port != d->plain_port)
            rc = gw_map_add(&nx.by_addr, h_addr(&nx, d->family, d->addr, d->secure_port), i);
    }
    if (rc) {
        wipe(&nx);
        return rc == GW_EFULL ? -ENOMEM : rc; /* GW_EFULL cannot happen: sized for n */
    }
    wipe(x);
    *x = nx;
    x->gen = gen;
    x->valid = true;
    return 0;
}

const struct gw_device *mesh_devidx_by_mac(const struct mesh_devidx *x,
                                           const uint8_t mac[GW_MAC_LEN])
{
    uint64_t h = h_mac(x, mac);
    for (uint32_t s = gw_map_first(&x->by_mac, h); s != GW_MAP_END;
         s = gw_map_more(&x->by_mac, h, s)) {
        const struct gw_device *d = &x->dev[x->by_mac.slot[s].val];
        if (!memcmp(d->mac, mac, GW_MAC_LEN))
            return d;
    }
    return NULL;
}

const struct gw_device *mesh_devidx_by_ep(const struct mesh_devidx *x, const struct gw_ep *ep)
{
    uint64_t h = h_addr(x, ep->family, ep->addr, ep->port);
    for (uint32_t s = gw_map_first(&x->by_addr, h); s != GW_MAP_END;
         s = gw_map_more(&x->by_addr, h, s)) {
        const struct gw_device *d = &x->dev[x->by_addr.slot[s].val];
        if (d->family == ep->family && !memcmp(d->addr, ep->addr, sizeof(d->addr)) &&
            (d->plain_port == ep->port || d->secure_port == ep->port))
            return d;
    }
    return NULL;
}

int mesh_devidx_identify(const struct mesh_devidx *x, const struct gw_ep *src, bool secure,
                         struct gw_device *dev)
{
    const struct gw_device *d = mesh_devidx_by_ep(x, src);
    /* As mesh_rx_identify: the port must be the one of the socket's kind. */
    if (!d || src->port != (secure ? d->secure_port : d->plain_port))
        return GW_ENOTFOUND;
    *dev = *d;
    return 0;
}

/* ---- from the registry ---- */

int mesh_devidx_sync(struct mesh_devidx *x, struct gw_store *st)
{
    /* Any commit to the environment moves its last transaction id: only
     * then can the registry have changed (a few loads from the map). */
    MDB_envinfo info;
    if (x->valid && mdb_env_info(st->env, &info) == 0 && info.me_last_txnid == x->txnid)
        return 0;
    size_t txnid = mdb_env_info(st->env, &info) == 0 ? info.me_last_txnid : 0;
    uint64_t gen;
    int rc = gw_registry_gen(st, &gen);
    if (rc)
        return rc;
    if (x->valid && gen == x->gen) {
        x->txnid = txnid;
        return 0;
    }
    /* The generation is read before the devices: an import in between
     * leaves a newer copy under the old number, rebuilt once more. */
    struct gw_devlist c = { 0 };
    rc = gw_registry_foreach(st, gw_devlist_add, &c);
    if (rc == 0)
        rc = c.err;
    for (uint32_t i = 0; rc == 0 && i < c.n; i++) {
        int krc = gw_store_key_get(st, c.v[i].mac, c.v[i].key);
        if (krc && krc != GW_ENOTFOUND)
            rc = krc; /* a record from before keys moved keeps its own */
    }
    if (rc == 0)
        rc = mesh_devidx_build(x, c.v, c.n, gen);
    gw_devlist_free(&c);
    if (rc == 0)
        x->txnid = txnid;
    return rc;
}
