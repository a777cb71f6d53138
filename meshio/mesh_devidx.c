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

static uint32_t slots_for(uint32_t n)
{
    uint32_t p = 16;
    while (p < 2 * n && p < (1u << 30))
        p <<= 1;
    return p;
}

static uint32_t h_mac(const struct mesh_devidx *x, const uint8_t mac[GW_MAC_LEN])
{
    return (uint32_t)gw_siphash(x->key, mac, GW_MAC_LEN) & (x->nb - 1);
}

static uint32_t h_addr(const struct mesh_devidx *x, uint8_t family, const uint8_t addr[16],
                       uint16_t port)
{
    uint8_t k[19];
    k[0] = family;
    memcpy(k + 1, addr, 16);
    k[17] = (uint8_t)(port >> 8);
    k[18] = (uint8_t)port;
    return (uint32_t)gw_siphash(x->key, k, sizeof(k)) & (x->nb - 1);
}

static void wipe(struct mesh_devidx *x)
{
    if (x->dev) {
        /* The copies hold device keys. */
        memset(x->dev, 0, sizeof(*x->dev) * x->cap);
        free(x->dev);
    }
    free(x->by_mac);
    free(x->by_addr);
    x->dev = NULL;
    x->by_mac = x->by_addr = NULL;
    x->n = x->cap = x->nb = 0;
}

void mesh_devidx_init(struct mesh_devidx *x)
{
    memset(x, 0, sizeof(*x));
    gw_hash_key_new(x->key);
}

void mesh_devidx_deinit(struct mesh_devidx *x)
{
    wipe(x);
    x->valid = false;
}

static void put_addr(struct mesh_devidx *x, uint32_t i, uint16_t port)
{
    const struct gw_device *d = &x->dev[i];
    uint32_t mask = x->nb - 1;
    for (uint32_t s = h_addr(x, d->family, d->addr, port), n = 0; n < x->nb;
         s = (s + 1) & mask, n++)
        if (!x->by_addr[s]) {
            x->by_addr[s] = i + 1;
            return;
        }
}

int mesh_devidx_build(struct mesh_devidx *x, const struct gw_device *devs, uint32_t n, uint64_t gen)
{
    struct mesh_devidx nx = *x;
    nx.cap = n ? n : 1;
    nx.n = n;
    /* Two address slots per device (plain and secure port). */
    nx.nb = slots_for(2 * nx.cap);
    nx.dev = calloc(nx.cap, sizeof(*nx.dev));
    nx.by_mac = calloc(nx.nb, sizeof(uint32_t));
    nx.by_addr = calloc(nx.nb, sizeof(uint32_t));
    if (!nx.dev || !nx.by_mac || !nx.by_addr) {
        wipe(&nx);
        return -ENOMEM;
    }
    if (n)
        memcpy(nx.dev, devs, sizeof(*devs) * n);
    uint32_t mask = nx.nb - 1;
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t s = h_mac(&nx, nx.dev[i].mac), k = 0; k < nx.nb; s = (s + 1) & mask, k++)
            if (!nx.by_mac[s]) {
                nx.by_mac[s] = i + 1;
                break;
            }
        put_addr(&nx, i, nx.dev[i].plain_port);
        if (nx.dev[i].secure_port != nx.dev[i].plain_port)
            put_addr(&nx, i, nx.dev[i].secure_port);
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
    if (!x->nb)
        return NULL;
    uint32_t mask = x->nb - 1;
    for (uint32_t s = h_mac(x, mac), k = 0; k < x->nb && x->by_mac[s]; s = (s + 1) & mask, k++) {
        const struct gw_device *d = &x->dev[x->by_mac[s] - 1];
        if (!memcmp(d->mac, mac, GW_MAC_LEN))
            return d;
    }
    return NULL;
}

const struct gw_device *mesh_devidx_by_ep(const struct mesh_devidx *x, const struct gw_ep *ep)
{
    if (!x->nb)
        return NULL;
    uint32_t mask = x->nb - 1;
    for (uint32_t s = h_addr(x, ep->family, ep->addr, ep->port), k = 0; k < x->nb && x->by_addr[s];
         s = (s + 1) & mask, k++) {
        const struct gw_device *d = &x->dev[x->by_addr[s] - 1];
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
