/* SPDX-License-Identifier: MIT */
/* mesh_state.c - meshio's durable and per-device state (SPEC S7.1): the
 * gateway's sequence reservation in LMDB and the receive replay windows.
 * The guarantees and what a crash loses are in meshio.h. */
#include "meshio.h"
#include "gw_text.h"
#include "gw_error.h"
#include "gw_log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sequence reservation ---- */

int mesh_seqstore_init(struct mesh_seqstore *s, struct gw_store *store, uint64_t block)
{
    uint64_t persisted = 0;
    int rc = gw_store_meta_get_u64(store, MESH_SEQ_META_KEY, &persisted);
    if (rc == GW_ENOTFOUND)
        persisted = 0;
    else if (rc)
        return rc;
    s->store = store;
    mesh_seq_init(&s->seq, persisted, block);
    return 0;
}

int mesh_seqstore_take(struct mesh_seqstore *s, uint64_t *seq)
{
    uint64_t nr = 0;
    int rc = mesh_seq_take(&s->seq, seq, &nr);
    if (rc != MESH_SEQ_PERSIST)
        return rc;
    /* S7.1: the new high-water mark is durable (committed and synced)
     * before any number below it is used. */
    rc = gw_store_meta_put_u64(s->store, MESH_SEQ_META_KEY, nr);
    if (rc)
        return rc;
    mesh_seq_commit(&s->seq, nr);
    /* One retry is the bound (mesh_crypto.h): it returns 0 or GW_EFULL. */
    rc = mesh_seq_take(&s->seq, seq, &nr);
    return rc == MESH_SEQ_PERSIST ? GW_EFULL : rc;
}

/* ---- replay windows ---- */

#define MESH_PEERS_INIT_CAP 1024u
#define MESH_PEERS_MAX (1u << 29)

/* What is persisted per device: the window top and the key it belongs to. */
struct mesh_peer_rec {
    uint64_t top;
    uint64_t keyfp;
};

static uint64_t key_fp(const uint8_t key[MESH_KEY_LEN])
{
    /* Distinguishes keys, nothing more: the key itself sits in the same
     * LMDB (devices table), so this reveals nothing new. */
    return gw_hash64(key, MESH_KEY_LEN, GW_HASH_SEED) | 1;
}

/* The index key: the MAC's 64 bits (peers are only made for frames that
 * authenticated, so no sender chooses them). gw_map stores a key 0 as
 * GW_MAP_KEY0, so the multimap form is used and the MAC compared. */
static uint64_t mac_key(const uint8_t mac[GW_MAC_LEN])
{
    uint64_t v = 0;
    for (int i = 0; i < GW_MAC_LEN; i++)
        v = v << 8 | mac[i];
    return v;
}

static void meta_key(const uint8_t mac[GW_MAC_LEN], char out[sizeof(MESH_PEERS_META_PREFIX) + 16])
{
    char hex[17];
    gw_mac_str(mac, hex);
    snprintf(out, sizeof(MESH_PEERS_META_PREFIX) + 16, "%s%s", MESH_PEERS_META_PREFIX, hex);
}

int mesh_peers_init(struct mesh_peers *p, struct gw_store *store)
{
    memset(p, 0, sizeof(*p));
    p->v = calloc(MESH_PEERS_INIT_CAP, sizeof(*p->v));
    if (!p->v || gw_map_init(&p->idx, MESH_PEERS_INIT_CAP, MESH_PEERS_MAX) != 0) {
        free(p->v);
        p->v = NULL;
        return -ENOMEM;
    }
    p->cap = MESH_PEERS_INIT_CAP;
    p->store = store;
    return 0;
}

void mesh_peers_deinit(struct mesh_peers *p)
{
    free(p->v);
    gw_map_deinit(&p->idx);
    free(p->dirty);
    memset(p, 0, sizeof(*p));
}

static struct mesh_peer *find(const struct mesh_peers *p, const uint8_t mac[GW_MAC_LEN])
{
    uint64_t k = mac_key(mac);
    for (uint32_t i = gw_map_first(&p->idx, k); i != GW_MAP_END; i = gw_map_more(&p->idx, k, i))
        if (memcmp(p->v[p->idx.slot[i].val].mac, mac, GW_MAC_LEN) == 0)
            return &p->v[p->idx.slot[i].val];
    return NULL;
}

/* Room for one more peer in the array (the index grows by itself). */
static int grow(struct mesh_peers *p)
{
    if (p->count < p->cap)
        return 0;
    if (p->cap >= MESH_PEERS_MAX)
        return -ENOMEM;
    return gw_grow32(&p->v, &p->cap, (size_t)p->cap + 1, sizeof(*p->v), MESH_PEERS_INIT_CAP);
}

/* The persisted top for mac, if any and if it was written under key fp. */
static bool load_top(struct mesh_peers *p, const uint8_t mac[GW_MAC_LEN], uint64_t fp,
                     uint64_t *top)
{
    if (!p->store)
        return false;
    MDB_txn *txn;
    if (gw_store_rbegin(p->store, &txn) != 0)
        return false;
    char name[sizeof(MESH_PEERS_META_PREFIX) + 16];
    meta_key(mac, name);
    MDB_val k = { strlen(name), name }, v;
    struct mesh_peer_rec rec;
    bool ok = mdb_get(txn, p->store->meta, &k, &v) == 0 && v.mv_size == sizeof(rec);
    if (ok)
        memcpy(&rec, v.mv_data, sizeof(rec));
    gw_store_rdone(p->store);
    if (!ok || rec.keyfp != fp || rec.top >= MESH_SEQ_LIMIT)
        return false;
    *top = rec.top;
    return true;
}

int mesh_peers_get(struct mesh_peers *p, const uint8_t mac[GW_MAC_LEN],
                   const uint8_t key[MESH_KEY_LEN], struct mesh_peer **out)
{
    uint64_t fp = key_fp(key);
    struct mesh_peer *e = find(p, mac);
    if (e) {
        if (e->keyfp != fp) {
            /* S7.2: the key was changed while we ran; the device may count
             * from 0 again under the new key (mesh_crypto.h). */
            memset(&e->win, 0, sizeof(e->win));
            e->keyfp = fp;
        }
        *out = e;
        return 0;
    }
    int rc = grow(p);
    if (rc == 0)
        rc = gw_map_add(&p->idx, mac_key(mac), p->count);
    if (rc)
        return rc == GW_EFULL ? -ENOMEM : rc;
    e = &p->v[p->count];
    memset(e, 0, sizeof(*e));
    memcpy(e->mac, mac, GW_MAC_LEN);
    e->keyfp = fp;
    uint64_t top;
    if (load_top(p, mac, fp, &top))
        e->win = (struct mesh_replay){ .top = top, .bitmap = UINT64_MAX, .init = 1 };
    p->count++;
    *out = e;
    return 0;
}

void mesh_peers_accept(struct mesh_peers *p, struct mesh_peer *peer, uint64_t seq)
{
    uint64_t before = peer->win.top;
    uint8_t was_init = peer->win.init;
    mesh_replay_update(&peer->win, seq);
    if ((was_init && peer->win.top == before) || peer->dirty)
        return;
    /* Remember the MAC, not the entry: the array may grow before the flush. */
    if (p->ndirty == p->dirty_cap) {
        uint32_t ncap = p->dirty_cap ? p->dirty_cap * 2 : 64;
        void *nd = realloc(p->dirty, (size_t)ncap * GW_MAC_LEN);
        if (!nd)
            return; /* best effort: this top is not persisted */
        p->dirty = nd;
        p->dirty_cap = ncap;
    }
    memcpy(p->dirty[p->ndirty++], peer->mac, GW_MAC_LEN);
    peer->dirty = 1;
}

int mesh_peers_flush(struct mesh_peers *p)
{
    if (p->ndirty == 0)
        return 0;
    if (p->store) {
        MDB_txn *txn = NULL;
        int rc = gw_store_wbegin(p->store, &txn);
        for (uint32_t i = 0; i < p->ndirty && rc == 0; i++) {
            struct mesh_peer *e = find(p, p->dirty[i]);
            if (!e)
                continue;
            char name[sizeof(MESH_PEERS_META_PREFIX) + 16];
            meta_key(e->mac, name);
            struct mesh_peer_rec rec = { e->win.top, e->keyfp };
            MDB_val k = { strlen(name), name }, v = { sizeof(rec), &rec };
            rc = gw_store_err(mdb_put(txn, p->store->meta, &k, &v, 0));
        }
        if (txn) {
            if (rc)
                mdb_txn_abort(txn);
            else
                rc = gw_store_err(mdb_txn_commit(txn));
        }
        /* Failed: the marks stay, so nothing is forwarded (mesh_hold) until
         * a later flush made these tops durable. */
        if (rc)
            return rc;
    }
    for (uint32_t i = 0; i < p->ndirty; i++) {
        struct mesh_peer *e = find(p, p->dirty[i]);
        if (e)
            e->dirty = 0;
    }
    p->ndirty = 0;
    return 0;
}

/* ---- frames held until their window is durable ---- */

void mesh_hold_add(struct mesh_hold *h, const uint8_t mac[GW_MAC_LEN], const uint8_t *data,
                   size_t len)
{
    if (h->n >= MESH_HOLD_MAX || len > sizeof(h->f[0].data))
        return; /* callers release a full hold first; sizes are bounded by mesh_rx_accept */
    struct mesh_held *f = &h->f[h->n++];
    memcpy(f->mac, mac, GW_MAC_LEN);
    memcpy(f->data, data, len);
    f->len = (uint16_t)len;
}

int mesh_hold_release(struct mesh_hold *h, struct mesh_peers *p, mesh_hold_fwd fwd, void *ctx,
                      uint32_t *dropped)
{
    *dropped = 0;
    if (h->n == 0)
        return 0;
    int rc = mesh_peers_flush(p);
    if (rc == 0) {
        for (uint32_t i = 0; i < h->n; i++)
            fwd(ctx, h->f[i].mac, h->f[i].data, h->f[i].len);
    } else {
        *dropped = h->n;
    }
    /* Plaintext does not linger in memory. */
    for (uint32_t i = 0; i < h->n; i++)
        memset(h->f[i].data, 0, h->f[i].len);
    h->n = 0;
    return rc;
}
