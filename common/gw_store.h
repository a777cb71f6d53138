/* SPDX-License-Identifier: MIT */
/* gw_store.h - the LMDB environment every process opens (SPEC S1.3).
 *
 * One environment in data_dir/state, named databases:
 *   sessions   gw_ep (20 bytes)          -> session record, variable length (S2;
 *                                            fe_session.h; old raw struct gw_session still read)
 *   sess_acct  account name (DUPSORT)     -> gw_ep of each of its sessions (fe_session.c;
 *                                            links of earlier versions, -> session id, still read)
 *   sess_id    session id (8 bytes)       -> gw_ep: written by earlier versions only; read
 *                                            for their links, emptied as their sessions end
 *   devices    MAC (8 bytes)              -> struct gw_device   (S4.2, S7.2)
 *   devaddr    family|addr|port (19 bytes)-> MAC                (meshio: who sent this?)
 *   observe    observation key            -> scheduler records  (S6.6)
 *   meta       short names                -> small values (nonce reservation, file stamps)
 * Opened with MDB_NOTLS (libuv threads are not ours to pin) and
 * mdb_reader_check() at every open, since a SIGKILLed predecessor may have
 * left a stale reader slot. The supervisor never opens it: an MDB_env must
 * not cross fork(). Write transactions are short and few: none on the
 * per-request hot path. */
#ifndef GW_STORE_H
#define GW_STORE_H

#include "gw_defs.h"

#include <lmdb.h>
#include <stdbool.h>

struct gw_store {
    MDB_env *env;
    MDB_dbi sessions, sess_id, sess_acct, devices, devaddr, observe, meta;
    MDB_txn *rtxn; /* cached read-only transaction (reset/renew) */
    /* Device keys live in a second environment, data_dir/keys (DBI "keys":
     * MAC -> 16-byte AES key), so that the internet-facing frontend, which
     * opens data_dir/state, never maps them (issue #12 item 11). Opened
     * only by meshio (gw_store_open_keys) and by importers (on demand). */
    MDB_env *kenv;
    MDB_dbi keys;
    MDB_txn *krtxn; /* cached read-only transaction of kenv */
    char dir[300];  /* data_dir, to open kenv on demand */
};

int gw_store_open(struct gw_store *st, const char *data_dir, size_t map_mb) GW_NODISCARD;
/* Opens data_dir/keys (created 0700, files 0600) as well; idempotent.
 * Only meshio and importers call it. 0, or an error (logged). */
int gw_store_open_keys(struct gw_store *st) GW_NODISCARD;
/* Closes both environments. */
void gw_store_close(struct gw_store *st);
/* Device key of mac from data_dir/keys: 0, GW_ENOTFOUND, or an error;
 * -ENOENT-like errors when the keys environment is not open. */
int gw_store_key_get(struct gw_store *st, const uint8_t mac[8], uint8_t key[16]) GW_NODISCARD;

/* A read transaction for a short look-up: renews the cached one. Always
 * pair with gw_store_rdone(). Handles MDB_MAP_RESIZED by re-opening the map. */
int gw_store_rbegin(struct gw_store *st, MDB_txn **txn) GW_NODISCARD;
void gw_store_rdone(struct gw_store *st);
/* Entries in table dbi of the main environment; 0 when it cannot be read. */
size_t gw_store_count(struct gw_store *st, MDB_dbi dbi);
/* A write transaction; retries MDB_MAP_RESIZED once. */
int gw_store_wbegin(struct gw_store *st, MDB_txn **txn) GW_NODISCARD;

/* meta helpers */
int gw_store_meta_get_u64(struct gw_store *st, const char *name, uint64_t *v) GW_NODISCARD;
int gw_store_meta_put_u64(struct gw_store *st, const char *name, uint64_t v) GW_NODISCARD;

/* Converts an LMDB error at the boundary: MDB_NOTFOUND -> GW_ENOTFOUND,
 * MDB_MAP_FULL -> GW_EFULL, errno values negated, others kept as MDB_*. */
int gw_store_err(int rc);

#endif
