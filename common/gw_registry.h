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

/* The types of recently named devices, in memory, for the per-request
 * checks of the frontend (is the device known?) and the scheduler (Milli
 * or normal?): an LMDB read transaction per request was about 1 700
 * instructions in each (issue 13), a hit here is one probe. No keys.
 * GW_REGTYPES_SLOTS direct-mapped slots (10 bytes each), so memory and the
 * cost of a registry change stay fixed whatever the registry's size.
 * gw_regtypes_sync runs before each look-up: nothing unless the environment
 * committed since its last call (LMDB's last transaction id, read without a
 * transaction); then the registry generation (gw_registry_gen), and every
 * slot forgotten when that moved. A look-up therefore sees every import
 * committed before it, as one straight from LMDB did. Only devices found
 * in the registry fill slots; a MAC a client names can evict another
 * device's slot at most, which costs that device one LMDB look-up, as
 * every look-up did before. */
#define GW_REGTYPES_SLOTS 4096
struct gw_regtypes {
    struct gw_regtype {
        uint8_t mac[GW_MAC_LEN];
        uint8_t type;
        uint8_t used;
    } * slot; /* GW_REGTYPES_SLOTS; NULL (out of memory): every look-up goes to LMDB */
    uint64_t gen;
    size_t txnid;
    bool valid;
};
void gw_regtypes_init(struct gw_regtypes *x);
void gw_regtypes_deinit(struct gw_regtypes *x);
/* 0, or a negative error (the slots are then not used: look up in LMDB). */
int gw_regtypes_sync(struct gw_regtypes *x, struct gw_store *st) GW_NODISCARD;
/* The type of device mac if a slot holds it, else GW_ENOTFOUND (not known
 * here: ask the registry). */
int gw_regtypes_peek(const struct gw_regtypes *x, const uint8_t mac[GW_MAC_LEN]);
/* gw_registry_type through the slots: synced, then a slot, else LMDB (and
 * the slot filled when the device is there). */
int gw_registry_type_cached(struct gw_regtypes *x, struct gw_store *st,
                            const uint8_t mac[GW_MAC_LEN]) GW_NODISCARD;

#endif
