/* SPDX-License-Identifier: MIT */
/* gw_store.c - opening the LMDB environment and its named databases, short read and write
 * transactions (see gw_store.h). */
#include "gw_store.h"
#include "gw_error.h"
#include "gw_log.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int gw_store_err(int rc)
{
    if (rc == 0)
        return 0;
    if (rc == MDB_NOTFOUND)
        return GW_ENOTFOUND;
    if (rc == MDB_MAP_FULL)
        return GW_EFULL;
    if (rc > 0)
        return -rc;
    return rc;
}

int gw_store_open(struct gw_store *st, const char *data_dir, size_t map_mb)
{
    memset(st, 0, sizeof(*st));
    snprintf(st->dir, sizeof(st->dir), "%s", data_dir);
    char path[512];
    snprintf(path, sizeof(path), "%s/state", data_dir);
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return -errno;
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -errno;
    int rc = mdb_env_create(&st->env);
    if (rc)
        return gw_store_err(rc);
    mdb_env_set_mapsize(st->env, map_mb * 1024 * 1024);
    mdb_env_set_maxdbs(st->env, 16);
    mdb_env_set_maxreaders(st->env, 256);
    rc = mdb_env_open(st->env, path, MDB_NOTLS | MDB_NOSYNC, 0600);
    if (rc) {
        gw_log_err(GW_LOG_STORE, "mdb_env_open(%s): %s", path, mdb_strerror(rc));
        mdb_env_close(st->env);
        st->env = NULL;
        return gw_store_err(rc);
    }
    int dead = 0;
    mdb_reader_check(st->env, &dead);
    if (dead)
        gw_log_info(GW_LOG_STORE, "cleared %d stale LMDB reader slots", dead);
    MDB_txn *txn;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc)
        goto fail;
    struct {
        MDB_dbi *dbi;
        const char *name;
        unsigned flags;
    } dbs[] = {
        { &st->sessions, "sessions", 0 },
        { &st->sess_id, "sess_id", 0 },
        { &st->sess_acct, "sess_acct", MDB_DUPSORT },
        { &st->devices, "devices", 0 },
        { &st->devaddr, "devaddr", 0 },
        { &st->observe, "observe", 0 },
        { &st->meta, "meta", 0 },
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(dbs); i++) {
        rc = mdb_dbi_open(txn, dbs[i].name, MDB_CREATE | dbs[i].flags, dbs[i].dbi);
        if (rc) {
            mdb_txn_abort(txn);
            goto fail;
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc)
        goto fail;
    return 0;
fail:
    gw_log_err(GW_LOG_STORE, "opening LMDB databases: %s", mdb_strerror(rc));
    mdb_env_close(st->env);
    st->env = NULL;
    return gw_store_err(rc);
}

/* Aborts the cached read transaction *t, if any, and forgets it. */
static void rtxn_drop(MDB_txn **t)
{
    if (*t)
        mdb_txn_abort(*t);
    *t = NULL;
}

/* Closes one environment after its read transaction (the order LMDB wants). */
static void env_drop(MDB_env **env, MDB_txn **rtxn)
{
    rtxn_drop(rtxn);
    if (*env)
        mdb_env_close(*env);
    *env = NULL;
}

void gw_store_close(struct gw_store *st)
{
    env_drop(&st->env, &st->rtxn);
    env_drop(&st->kenv, &st->krtxn);
}

int gw_store_open_keys(struct gw_store *st)
{
    if (st->kenv)
        return 0;
    char path[512];
    snprintf(path, sizeof(path), "%s/keys", st->dir);
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return -errno;
    MDB_env *env;
    int rc = mdb_env_create(&env);
    if (rc)
        return gw_store_err(rc);
    /* About 40 bytes per device: 256 MiB (reserved, not used) holds the
     * largest registry gw_devfile accepts several times over. */
    mdb_env_set_mapsize(env, (size_t)256 * 1024 * 1024);
    mdb_env_set_maxdbs(env, 2);
    mdb_env_set_maxreaders(env, 64);
    rc = mdb_env_open(env, path, MDB_NOTLS, 0600);
    MDB_txn *txn = NULL;
    if (!rc) {
        int dead = 0;
        mdb_reader_check(env, &dead);
        rc = mdb_txn_begin(env, NULL, 0, &txn);
    }
    if (!rc)
        rc = mdb_dbi_open(txn, "keys", MDB_CREATE, &st->keys);
    if (!rc) {
        rc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (rc) {
        if (txn)
            mdb_txn_abort(txn);
        gw_log_err(GW_LOG_STORE, "opening the device keys in %s: %s", path, mdb_strerror(rc));
        mdb_env_close(env);
        return gw_store_err(rc);
    }
    st->kenv = env;
    return 0;
}

/* Begins, or renews, the reusable read-only transaction *slot of env (one
 * per environment: the store's and the keys'). Two attempts, as Knot
 * Resolver's txn_get_noresize: a map another process grew (MDB_MAP_RESIZED:
 * adopt its size) or a reader table full of readers of killed processes
 * (MDB_READERS_FULL: clear them). 0, or the MDB_ / errno code with *slot NULL. */
static int rtxn_renew(MDB_env *env, MDB_txn **slot)
{
    int rc = 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        rc = *slot ? mdb_txn_renew(*slot) : mdb_txn_begin(env, NULL, MDB_RDONLY, slot);
        if (rc == 0)
            return 0;
        rtxn_drop(slot);
        if (rc == MDB_MAP_RESIZED) {
            mdb_env_set_mapsize(env, 0);
        } else if (rc == MDB_READERS_FULL) {
            int dead = 0;
            mdb_reader_check(env, &dead);
        } else {
            return rc;
        }
    }
    return rc;
}

int gw_store_key_get(struct gw_store *st, const uint8_t mac[8], uint8_t key[16])
{
    if (!st->kenv)
        return -EBADF;
    int rc = rtxn_renew(st->kenv, &st->krtxn);
    if (rc)
        return gw_store_err(rc);
    MDB_val k = { 8, (void *)mac }, d;
    rc = mdb_get(st->krtxn, st->keys, &k, &d);
    if (rc == 0 && d.mv_size == 16)
        memcpy(key, d.mv_data, 16);
    else if (rc == 0)
        rc = GW_EBADMSG;
    mdb_txn_reset(st->krtxn);
    return gw_store_err(rc);
}

int gw_store_rbegin(struct gw_store *st, MDB_txn **txn)
{
    int rc = rtxn_renew(st->env, &st->rtxn);
    if (rc == MDB_MAP_RESIZED || rc == MDB_READERS_FULL)
        return GW_EBUSY; /* still so after the second attempt */
    if (rc)
        return gw_store_err(rc);
    *txn = st->rtxn;
    return 0;
}

void gw_store_rdone(struct gw_store *st)
{
    if (st->rtxn)
        mdb_txn_reset(st->rtxn);
}

size_t gw_store_count(struct gw_store *st, MDB_dbi dbi)
{
    MDB_txn *txn;
    MDB_stat ms;
    if (gw_store_rbegin(st, &txn) != 0)
        return 0;
    size_t n = mdb_stat(txn, dbi, &ms) == 0 ? ms.ms_entries : 0;
    gw_store_rdone(st);
    return n;
}

int gw_store_wbegin(struct gw_store *st, MDB_txn **txn)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int rc = mdb_txn_begin(st->env, NULL, 0, txn);
        if (rc == MDB_MAP_RESIZED) {
            mdb_env_set_mapsize(st->env, 0);
            continue;
        }
        return gw_store_err(rc);
    }
    return GW_EBUSY;
}

int gw_store_meta_get_u64(struct gw_store *st, const char *name, uint64_t *v)
{
    MDB_txn *txn;
    int rc = gw_store_rbegin(st, &txn);
    if (rc)
        return rc;
    MDB_val k = { strlen(name), (void *)name }, d;
    rc = mdb_get(txn, st->meta, &k, &d);
    if (rc == 0 && d.mv_size == sizeof(*v))
        memcpy(v, d.mv_data, sizeof(*v));
    else if (rc == 0)
        rc = GW_EBADMSG;
    gw_store_rdone(st);
    return gw_store_err(rc);
}

int gw_store_meta_put_u64(struct gw_store *st, const char *name, uint64_t v)
{
    MDB_txn *txn;
    int rc = gw_store_wbegin(st, &txn);
    if (rc)
        return rc;
    MDB_val k = { strlen(name), (void *)name }, d = { sizeof(v), &v };
    rc = mdb_put(txn, st->meta, &k, &d, 0);
    if (rc) {
        mdb_txn_abort(txn);
        return gw_store_err(rc);
    }
    /* This value guards nonce uniqueness: make it durable. */
    rc = mdb_txn_commit(txn);
    if (rc == 0)
        rc = mdb_env_sync(st->env, 1);
    return gw_store_err(rc);
}
