/* SPDX-License-Identifier: MIT */
/* gw_devfile.h - the devices file (SPEC S7.2): MAC ID -> mesh address, ports,
 * device type and key. Read by the gateway's device registry and by the mesh
 * simulator (S7.3), written by `coapgw meshsim --generate`.
 *
 * Format: CSV, one device per line, fields separated by ',' with spaces and
 * tabs around a field ignored, LF or CRLF line ends. Blank lines and lines
 * whose first non-blank character is '#' are ignored anywhere. The first
 * other line is the header, which names the columns, in this order:
 *
 *     mac,address,type,key[,plain_port[,secure_port[,sim]]]
 *
 *     mac          16 hex digits, case-insensitive (S4.2), unique in the file
 *     address      IPv4 or IPv6 literal of the device on the mesh
 *     type         normal | milli (case-insensitive)
 *     key          32 hex digits, the device's AES-128 key (S7.1)
 *     plain_port   1..65535, default 5683 (plain CoAP)
 *     secure_port  1..65535, default 4849 (secured frames)
 *     sim          simulator behaviour, e.g. "latency=50-80;loss=10"; opaque
 *                  to the gateway, at most GW_DEV_SIM_LEN - 1 bytes, no ','
 *
 * A data line may stop after any column from key on (the rest take their
 * defaults) and may leave a port empty (default) but may not have more fields
 * than the header names. */
#ifndef GW_DEVFILE_H
#define GW_DEVFILE_H

#include "gw_defs.h"

#include <stddef.h>
#include <stdint.h>

#define GW_DEV_NORMAL 0
#define GW_DEV_MILLI 1
#define GW_DEV_KEY_LEN 16
#define GW_DEV_SIM_LEN 96
#define GW_DEV_PLAIN_PORT 5683
#define GW_DEV_SECURE_PORT 4849
/* Lines longer than this (without the line end) are reported as bad. */
#define GW_DEVFILE_LINE_MAX 1024
/* gw_devfile_generate refuses more devices than this. */
#define GW_DEVFILE_GEN_MAX 1000000

struct gw_device {
    uint8_t mac[GW_MAC_LEN];
    uint8_t family;   /* 4 or 6 */
    uint8_t addr[16]; /* IPv4 in the first 4 bytes, rest zero */
    uint16_t plain_port, secure_port;
    uint8_t type; /* GW_DEV_NORMAL or GW_DEV_MILLI */
    uint8_t key[GW_DEV_KEY_LEN];
    char sim[GW_DEV_SIM_LEN]; /* "" when absent */
};

/* Parses one data line (not the header).
 * [in]  line  NUL-terminated; a trailing "\n" or "\r\n" is ignored.
 * [out] d     filled only on success.
 * [out] why   on GW_EBADMSG, a static English reason ("bad mac ..."); may be NULL.
 * Returns 0 or GW_EBADMSG. Does not know the header, so it accepts 4 to 7 fields. */
int gw_devfile_parse_line(const char *line, struct gw_device *d, const char **why) GW_NODISCARD;

/* Told about each bad line: lineno counts from 1, msg is valid only during the call. */
typedef void (*gw_devfile_warn_fn)(void *ctx, int lineno, const char *msg);
/* Told about each good device, in file order. Nonzero stops the load. */
typedef int (*gw_devfile_dev_fn)(void *ctx, const struct gw_device *d);

/* Loads a devices file. Bad lines (and the second and later lines with an
 * already seen MAC, or with an address:port that an earlier device already
 * uses as its plain or secure endpoint: "127.0.0.1:5683 already used by
 * 0200000000000001 (line 2)", S7.2) are reported through warn (may be NULL)
 * with their line number and skipped; the caller decides whether a file
 * with bad lines is used at all (gw_registry_import: all or nothing).
 * Returns the number of bad lines (>= 0); -errno if the file cannot be opened
 * or read (-ENOMEM included); GW_EBADMSG if no valid header comes first (warn
 * is told which line); if cb returns nonzero the load stops and returns cb's
 * value when it is negative, else the number of bad lines so far. */
int gw_devfile_load(const char *path, gw_devfile_dev_fn cb, gw_devfile_warn_fn warn,
                    void *ctx) GW_NODISCARD;

/* A growing array of devices: pass gw_devlist_add, with the list as ctx, to
 * gw_devfile_load or gw_registry_foreach. Device keys are secrets, so
 * growing and gw_devlist_free wipe the memory they give back. */
struct gw_devlist {
    struct gw_device *v;
    uint32_t n, cap;
    int err; /* -ENOMEM once an add failed (the walk stopped there) */
};
/* Appends a copy of *d. 0, or -ENOMEM (also kept in err): nonzero stops a walk. */
int gw_devlist_add(void *list, const struct gw_device *d);
/* Wipes and frees the array; the list is empty after. */
void gw_devlist_free(struct gw_devlist *l);

/* Writes a file of n generated devices (header with plain_port and
 * secure_port): MACs 0200000000000001, 0200000000000002, ...; addresses
 * consecutive from base (an IPv4 or IPv6 literal, one address per device);
 * ports 5683/4849; every 4th device (the 4th, 8th, ...) milli; random keys
 * from getrandom(2). The file is written beside path and renamed into place,
 * so a reader never sees half of it.
 * [out] err  on failure, a message naming the problem (errlen bytes, may be 0).
 * Returns 0; GW_ECONFIG for n outside 1..GW_DEVFILE_GEN_MAX, a bad base or
 * addresses running past the end of the address space; -errno for I/O. */
int gw_devfile_generate(const char *path, int n, const char *base, char *err,
                        size_t errlen) GW_NODISCARD;

#endif
