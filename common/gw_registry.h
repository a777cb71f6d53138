/* SPDX-License-Identifier: MIT */
/* gw_registry.h - the device registry in LMDB (SPEC S4.2, S7.2).
 *
 * Loaded from devices_file (gw_devfile.h) in one write transaction, so an
 * import is applied whole or not at all; bad lines are reported with their
 * line numbers and skipped, and the caller learns how many there were.
 * Every process reads it: the frontend to answer 5.02 for unknown devices,
 * the scheduler for the device type, meshio for address, ports and key. */
#ifndef GW_REGISTRY_H
#define GW_REGISTRY_H

#include "gw_addr.h"
#include "gw_devfile.h"
#include "gw_store.h"

/* Looks a device up by MAC: 0, or GW_ENOTFOUND. */
int gw_registry_get(struct gw_store *st, const uint8_t mac[GW_MAC_LEN], struct gw_device *out) GW_NODISCARD;
/* Which device sent a datagram from ep (address and port)? */
int gw_registry_by_addr(struct gw_store *st, const struct gw_ep *ep, uint8_t mac[GW_MAC_LEN]) GW_NODISCARD;
/* Replaces the registry with the file's devices. Returns the number of
 * devices loaded (>= 0) and the number of bad lines in *bad; or an error
 * (file unreadable, header missing: nothing is changed). */
int gw_registry_import(struct gw_store *st, const char *path, int *bad) GW_NODISCARD;
/* Imports only when the file changed since the last import (size, mtime). */
int gw_registry_sync(struct gw_store *st, const char *path, int *bad) GW_NODISCARD;
/* Calls fn for every device (read transaction); stops when fn returns nonzero. */
int gw_registry_foreach(struct gw_store *st, int (*fn)(void *ctx, const struct gw_device *d), void *ctx);
size_t gw_registry_count(struct gw_store *st);

#endif
