/* SPDX-License-Identifier: MIT */
/* gw_registry.c - the device registry in LMDB: look-ups by MAC and by address, whole-file
 * imports (see gw_registry.h). */
#include "gw_registry.h"
#include "gw_error.h"
#include "gw_log.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void addr_key(const struct gw_ep *ep, uint8_t key[19])
{
    key[0] = ep->family;
    memcpy(key + 1, ep->addr, 16);
    key[17] = (uint8_t)(ep->port >> 8);
    key[18] = (uint8_t)ep->port;
}

/* The device's record, copied out of one read transaction: 0, an LMDB
 * error, or GW_EBADMSG for a record of another size. */
static int record_read(struct gw_store *st, const uint8_t mac[GW_MAC_LEN], struct gw_device *out)
{
    MDB_txn *txn;
    int rc = gw_store_rbegin(st, &txn);
    if (rc)
        return rc;
    MDB_val k = { GW_MAC_LEN, (void *)mac }, d;
    rc = mdb_get(txn, st->devices, &k, &d);
    if (rc == 0) {
        if (d.mv_size == sizeof(*out))
            memcpy(out, d.mv_data, sizeof(*out));
        else
            rc = GW_EBADMSG;
    }
    gw_store_rdone(st);
    return rc;
}

int gw_registry_get(struct gw_store *st, const uint8_t mac[GW_MAC_LEN], struct gw_device *out)
{
    int rc = record_read(st, mac, out);
    if (rc == 0 && st->kenv) {
        /* The key comes from data_dir/keys; a record written before keys
         * moved there still carries its own (until the next import). */
        int krc = gw_store_key_get(st, mac, out->key);
        if (krc && krc != GW_ENOTFOUND)
            return krc;
    }
    return gw_store_err(rc);
}

int gw_registry_type(struct gw_store *st, const uint8_t mac[GW_MAC_LEN])
{
    struct gw_device dev;
    int rc = record_read(st, mac, &dev);
    return rc ? gw_store_err(rc) : dev.type;
}

int gw_registry_by_addr(struct gw_store *st, const struct gw_ep *ep, uint8_t mac[GW_MAC_LEN])
{
    MDB_txn *txn;
    int rc = gw_store_rbegin(st, &txn);
    if (rc)
        return rc;
    uint8_t key[19];
    addr_key(ep, key);
    MDB_val k = { sizeof(key), key }, d;
    rc = mdb_get(txn, st->devaddr, &k, &d);
    if (rc == 0 && d.mv_size == GW_MAC_LEN)
        memcpy(mac, d.mv_data, GW_MAC_LEN);
    else if (rc == 0)
        rc = GW_EBADMSG;
    gw_store_rdone(st);
    return gw_store_err(rc);
}

/* meta key of a devices file's (size, mtime) at its last import. "devfile2:"
 * since keys moved to data_dir/keys: a registry imported before is loaded
 * again once, which moves its keys out of the records. */
#define DEVFILE_STAMP "devfile2:"
/* meta key of the registry's generation, one more at every import. */
#define REGISTRY_GEN "registry_gen"

struct import_ctx {
    MDB_txn *txn;
    MDB_txn *ktxn; /* data_dir/keys */
    struct gw_store *st;
    int count;
    int err;
    const char *path;
    bool skip_bad;
};

static int put_dev(void *vctx, const struct gw_device *d)
{
    struct import_ctx *c = vctx;
    /* The record that every role (the frontend included) reads has no key. */
    struct gw_device rec = *d;
    memset(rec.key, 0, sizeof(rec.key));
    MDB_val k = { GW_MAC_LEN, (void *)d->mac }, v = { sizeof(rec), &rec };
    MDB_val kv = { sizeof(d->key), (void *)d->key };
    int rc = mdb_put(c->ktxn, c->st->keys, &k, &kv, 0);
    if (rc == 0)
        rc = mdb_put(c->txn, c->st->devices, &k, &v, 0);
    struct gw_ep ep = { 0 };
    ep.family = d->family;
    memcpy(ep.addr, d->addr, 16);
    uint16_t ports[2] = { d->plain_port, d->secure_port };
    for (int i = 0; rc == 0 && i < 2; i++) {
        ep.port = ports[i];
        uint8_t key[19];
        addr_key(&ep, key);
        MDB_val ak = { sizeof(key), key }, av = { GW_MAC_LEN, (void *)d->mac };
        rc = mdb_put(c->txn, c->st->devaddr, &ak, &av, 0);
    }
    if (rc) {
        c->err = gw_store_err(rc);
        return 1;
    }
    c->count++;
    return 0;
}

static void warn_line(void *vctx, int lineno, const char *msg)
{
    struct import_ctx *c = vctx;
    if (c->skip_bad)
        gw_log_warn(GW_LOG_STORE, "%s:%d: %s (line skipped)", c->path, lineno, msg);
    else
        gw_log_err(GW_LOG_STORE, "%s:%d: %s", c->path, lineno, msg);
}

/* Removes the keys of MACs the registry no longer has. */
static void drop_stale_keys(struct gw_store *st)
{
    MDB_txn *kt;
    if (mdb_txn_begin(st->kenv, NULL, 0, &kt) != 0)
        return;
    MDB_cursor *cur;
    if (mdb_cursor_open(kt, st->keys, &cur) == 0) {
        MDB_val k, d;
        for (int r = mdb_cursor_get(cur, &k, &d, MDB_FIRST); r == 0;
             r = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
            MDB_txn *txn;
            if (k.mv_size != GW_MAC_LEN || gw_store_rbegin(st, &txn) != 0)
                continue;
            MDB_val dv;
            bool gone = mdb_get(txn, st->devices, &k, &dv) == MDB_NOTFOUND;
            gw_store_rdone(st);
            if (gone)
                mdb_cursor_del(cur, 0);
        }
        mdb_cursor_close(cur);
    }
    if (mdb_txn_commit(kt) != 0)
        gw_log_warn(GW_LOG_STORE,
                    "removing the keys of devices no longer in the registry failed; kept");
}

int gw_registry_load(struct gw_store *st, const char *path, bool skip_bad, int *bad)
{
    *bad = 0;
    int rc = gw_store_open_keys(st);
    if (rc)
        return rc;
    MDB_txn *txn, *ktxn;
    if ((rc = gw_store_wbegin(st, &txn)) != 0)
        return rc;
    if ((rc = mdb_txn_begin(st->kenv, NULL, 0, &ktxn)) != 0) {
        mdb_txn_abort(txn);
        return gw_store_err(rc);
    }
    mdb_drop(txn, st->devices, 0);
    mdb_drop(txn, st->devaddr, 0);
    struct import_ctx c = { txn, ktxn, st, 0, 0, path, skip_bad };
    rc = gw_devfile_load(path, put_dev, warn_line, &c);
    if (rc < 0 || c.err) {
        mdb_txn_abort(ktxn);
        mdb_txn_abort(txn);
        return rc < 0 ? rc : c.err;
    }
    *bad = rc;
    /* S7.2: a load is all or nothing; the registry stays as it was. */
    if (rc > 0 && !skip_bad) {
        mdb_txn_abort(ktxn);
        mdb_txn_abort(txn);
        gw_log_err(GW_LOG_STORE,
                   "devices file %s: %d bad line%s (above): nothing changed, the registry keeps "
                   "its %zu devices",
                   path, rc, rc == 1 ? "" : "s", gw_registry_count(st));
        return GW_EBADMSG;
    }
    /* Readers that keep a copy (meshio's device index) rebuild it when
     * this number changes; it commits with the registry, after the keys. */
    uint64_t gen = 0;
    MDB_val gk = { sizeof(REGISTRY_GEN) - 1, (void *)REGISTRY_GEN }, gv;
    if (mdb_get(txn, st->meta, &gk, &gv) == 0 && gv.mv_size == sizeof(gen))
        memcpy(&gen, gv.mv_data, sizeof(gen));
    gen++;
    gv = (MDB_val){ sizeof(gen), &gen };
    if ((rc = mdb_put(txn, st->meta, &gk, &gv, 0)) != 0) {
        mdb_txn_abort(ktxn);
        mdb_txn_abort(txn);
        return gw_store_err(rc);
    }
    struct stat sb;
    if (stat(path, &sb) == 0) {
        uint64_t stamp[2] = { (uint64_t)sb.st_size, (uint64_t)sb.st_mtim.tv_sec * 1000000000ull +
                                                        (uint64_t)sb.st_mtim.tv_nsec };
        char key[300];
        snprintf(key, sizeof(key), DEVFILE_STAMP "%s", path);
        MDB_val k = { strlen(key), key }, v = { sizeof(stamp), stamp };
        mdb_put(txn, st->meta, &k, &v, 0);
    }
    /* Keys first: if the registry's commit then fails, the old registry
     * finds its devices' keys still there (new ones are extra, and old
     * ones are only removed below, after the registry changed). */
    rc = mdb_txn_commit(ktxn);
    if (rc) {
        mdb_txn_abort(txn);
        return gw_store_err(rc);
    }
    rc = mdb_txn_commit(txn);
    if (rc)
        return gw_store_err(rc);
    drop_stale_keys(st);
    gw_log_info(GW_LOG_STORE, "device registry: %d devices from %s%s", c.count, path,
                *bad ? " (some lines skipped, see above)" : "");
    return c.count;
}

int gw_registry_import(struct gw_store *st, const char *path, int *bad)
{
    return gw_registry_load(st, path, false, bad);
}

int gw_registry_sync(struct gw_store *st, const char *path, int *bad)
{
    *bad = 0;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return -errno;
    uint64_t stamp[2] = { (uint64_t)sb.st_size, (uint64_t)sb.st_mtim.tv_sec * 1000000000ull +
                                                    (uint64_t)sb.st_mtim.tv_nsec };
    char key[300];
    snprintf(key, sizeof(key), DEVFILE_STAMP "%s", path);
    MDB_txn *txn;
    int rc = gw_store_rbegin(st, &txn);
    if (rc)
        return rc;
    MDB_val k = { strlen(key), key }, v;
    bool same = mdb_get(txn, st->meta, &k, &v) == 0 && v.mv_size == sizeof(stamp) &&
                !memcmp(v.mv_data, stamp, sizeof(stamp));
    gw_store_rdone(st);
    if (same)
        return (int)gw_registry_count(st);
    return gw_registry_import(st, path, bad);
}

int gw_registry_foreach(struct gw_store *st, int (*fn)(void *ctx, const struct gw_device *d),
                        void *ctx)
{
    MDB_txn *txn;
    int rc = gw_store_rbegin(st, &txn);
    if (rc)
        return rc;
    MDB_cursor *cur;
    rc = mdb_cursor_open(txn, st->devices, &cur);
    if (rc == 0) {
        MDB_val k, d;
        int r = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
        while (r == 0) {
            struct gw_device dev;
            if (d.mv_size == sizeof(dev)) {
                memcpy(&dev, d.mv_data, sizeof(dev));
                if (fn(ctx, &dev))
                    break;
            }
            r = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
        }
        mdb_cursor_close(cur);
    }
    gw_store_rdone(st);
    return gw_store_err(rc);
}

size_t gw_registry_count(struct gw_store *st)
{
    return gw_store_count(st, st->devices);
}

int gw_registry_gen(struct gw_store *st, uint64_t *gen)
{
    MDB_txn *txn;
    int rc = gw_store_rbegin(st, &txn);
    if (rc)
        return rc;
    MDB_val k = { sizeof(REGISTRY_GEN) - 1, (void *)REGISTRY_GEN }, v;
    *gen = 0;
    rc = mdb_get(txn, st->meta, &k, &v);
    if (rc == 0 && v.mv_size == sizeof(*gen))
        memcpy(gen, v.mv_data, sizeof(*gen));
    gw_store_rdone(st);
    return rc == MDB_NOTFOUND ? 0 : gw_store_err(rc);
}

/* ---- the types of recently named devices (gw_regtypes) ---- */

/* A MAC's slot: its 8 bytes multiplied by the golden ratio, top bits. No
 * keyed hash: colliding MACs only take each other's slot (gw_registry.h). */
static uint32_t regtypes_slot(const uint8_t mac[GW_MAC_LEN])
{
    uint64_t k;
    memcpy(&k, mac, sizeof(k));
    return (uint32_t)((k * 0x9e3779b97f4a7c15ull) >> 52) % GW_REGTYPES_SLOTS;
}

void gw_regtypes_init(struct gw_regtypes *x)
{
    memset(x, 0, sizeof(*x));
    x->slot = calloc(GW_REGTYPES_SLOTS, sizeof(*x->slot));
}

void gw_regtypes_deinit(struct gw_regtypes *x)
{
    free(x->slot);
    memset(x, 0, sizeof(*x));
}

int gw_regtypes_sync(struct gw_regtypes *x, struct gw_store *st)
{
    if (!x->slot)
        return -ENOMEM;
    /* Any commit to the environment moves its last transaction id: only
     * then can the registry have changed (a few loads from the map). */
    MDB_envinfo info;
    size_t txnid = mdb_env_info(st->env, &info) == 0 ? info.me_last_txnid : 0;
    if (x->valid && txnid && txnid == x->txnid)
        return 0;
    uint64_t gen;
    int rc = gw_registry_gen(st, &gen);
    if (rc) {
        x->valid = false;
        return rc;
    }
    /* The generation is read before any device: a slot filled after an
     * import that lands in between holds the newer answer under the older
     * number, and is forgotten at the next sync. */
    if (!x->valid || gen != x->gen)
        memset(x->slot, 0, GW_REGTYPES_SLOTS * sizeof(*x->slot));
    x->gen = gen;
    x->txnid = txnid;
    x->valid = true;
    return 0;
}

int gw_regtypes_peek(const struct gw_regtypes *x, const uint8_t mac[GW_MAC_LEN])
{
    if (!x->slot || !x->valid)
        return GW_ENOTFOUND;
    const struct gw_regtype *e = &x->slot[regtypes_slot(mac)];
    return e->used && !memcmp(e->mac, mac, GW_MAC_LEN) ? e->type : GW_ENOTFOUND;
}

int gw_registry_type_cached(struct gw_regtypes *x, struct gw_store *st,
                            const uint8_t mac[GW_MAC_LEN])
{
    if (gw_regtypes_sync(x, st) != 0)
        return gw_registry_type(st, mac);
    int type = gw_regtypes_peek(x, mac);
    if (type >= 0)
        return type;
    type = gw_registry_type(st, mac);
    if (type >= 0) {
        struct gw_regtype *e = &x->slot[regtypes_slot(mac)];
        memcpy(e->mac, mac, GW_MAC_LEN);
        e->type = (uint8_t)type;
        e->used = 1;
    }
    return type;
}
