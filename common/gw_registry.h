/* SPDX-License-Identifier: MIT */
/* gw_registry.h - the device registry in LMDB (SPEC S4.2, S7.2).
 *
 * Loaded from devices_file (gw_devfile.h) in one write transaction, so an
 * import is applied whole or not at all; bad lines are reported with their
 * line numbers, and by default one bad line refuses the whole file.
 * Every process reads it: the frontend to answer 5.02 for unknown devices,
 * the scheduler for the device type, meshio for address, ports and key. */
#ifndef GW_REGISTRY_H
#define GW_REGISTRY_H

#include "gw_addr.h"
#include "gw_devfile.h"
#include "gw_map.h"
#include "gw_store.h"

/* Looks a device up by MAC: 0, or GW_ENOTFOUND. */
int gw_registry_get(struct gw_store *st, const uint8_t mac[GW_MAC_LEN],
                    struct gw_device *out) GW_NODISCARD;
/* The type of device mac (GW_DEV_NORMAL or GW_DEV_MILLI), or GW_ENOTFOUND:
 * gw_registry_get without the key, for the frontend's and the scheduler's
 * checks of every proxied request (one LMDB read transaction instead of two
 * and no copy of the record; issue 13). */
int gw_registry_type(struct gw_store *st, const uint8_t mac[GW_MAC_LEN]) GW_NODISCARD;
/* Which device sent a datagram from ep (address and port)? */
int gw_registry_by_addr(struct gw_store *st, const struct gw_ep *ep,
                        uint8_t mac[GW_MAC_LEN]) GW_NODISCARD;
/* Replaces the registry with the file's devices, all or nothing (S7.2):
 * every bad line (gw_devfile_load: syntax, duplicate MAC, an address:port
 * already used) is logged as "file:line: why"; unless skip_bad, one bad
 * line leaves the registry unchanged. Returns the number of devices loaded
 * (>= 0), with the number of bad lines (skipped) in *bad; GW_EBADMSG with
 * *bad > 0 when bad lines refused the file, or with *bad == 0 when the header
 * is missing; -errno when the file cannot be read. Nothing changes on error. */
int gw_registry_load(struct gw_store *st, const char *path, bool skip_bad, int *bad) GW_NODISCARD;
/* gw_registry_load(st, path, false, bad): all or nothing. */
int gw_registry_import(struct gw_store *st, const char *path, int *bad) GW_NODISCARD;
/* Imports (all or nothing) only when the file changed since the last
 * import (size, mtime). */
int gw_registry_sync(struct gw_store *st, const char *path, int *bad) GW_NODISCARD;
/* Calls fn for every device (read transaction); stops when fn returns nonzero. */
int gw_registry_foreach(struct gw_store *st, int (*fn)(void *ctx, const struct gw_device *d),
                        void *ctx);
size_t gw_registry_count(struct gw_store *st);
/* The registry's generation: one more at every import that changed it (0
 * before the first since this key exists). A reader that keeps a copy reads
 * it before the devices; a change means its copy is out of date. */
int gw_registry_gen(struct gw_store *st, uint64_t *gen) GW_NODISCARD;

/* An in-memory copy of every device's type, for the per-request checks of
 * the frontend (is the device known?) and the scheduler (Milli or normal?):
 * an LMDB read transaction per request was about 1 700 instructions in
 * each (issue 13), the copy's look-up is a hash probe. It holds no keys.
 * gw_regtypes_sync brings it up to date before a look-up: nothing unless
 * the environment committed since the last call (its last transaction id,
 * read without a transaction), then the registry generation
 * (gw_registry_gen), and a rebuild only when that moved; so a look-up sees
 * every import committed before it, as one straight from LMDB did. */
struct gw_regtypes {
    struct gw_map by_mac; /* the MAC's 8 bytes -> index into dev[] (multimap) */
    struct gw_regtype {
        uint8_t mac[GW_MAC_LEN];
        uint8_t type;
    } * dev;
    uint32_t n;
    uint64_t gen;
    size_t txnid;
    bool valid;
};
void gw_regtypes_init(struct gw_regtypes *x);
void gw_regtypes_deinit(struct gw_regtypes *x);
/* 0, or a negative error (the copy is then not valid: look up in LMDB). */
int gw_regtypes_sync(struct gw_regtypes *x, struct gw_store *st) GW_NODISCARD;
/* The type of device mac in the copy, or GW_ENOTFOUND. */
int gw_regtypes_get(const struct gw_regtypes *x, const uint8_t mac[GW_MAC_LEN]);
/* gw_registry_type through the copy: synced, then looked up; straight from
 * LMDB when the copy cannot be built. */
int gw_registry_type_cached(struct gw_regtypes *x, struct gw_store *st,
                            const uint8_t mac[GW_MAC_LEN]) GW_NODISCARD;

#endif
