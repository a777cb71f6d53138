/* SPDX-License-Identifier: MIT */
/* gw_error.h - error convention.
 *
 * Functions return int: 0 on success, a negative errno value, or a GW_E*
 * code from the reserved range below (LMDB reserves -30800..-30700 in the
 * same spirit). gw_strerror() names all of them, plus MDB_* and UV_* codes
 * (libuv's UV_* are negative errno values on Unix, so they need nothing). */
#ifndef GW_ERROR_H
#define GW_ERROR_H

#include "gw_defs.h"

#include <stddef.h>

enum {
    GW_EBASE = -31000,
    GW_EBADMSG = GW_EBASE, /* malformed input (CoAP, envelope, frame) */
    GW_EFULL,              /* a bounded table or queue is full */
    GW_EEMPTY,             /* nothing to pop */
    GW_ENOTFOUND,          /* key not present */
    GW_EAUTH,              /* authentication failed (JWT, AEAD tag) */
    GW_EREPLAY,            /* replayed or too old mesh frame */
    GW_ECONFIG,            /* bad configuration value */
    GW_ELAYOUT,            /* shared memory header mismatch */
    GW_ETOOBIG,            /* input over a configured size bound */
    GW_EFORBIDDEN,         /* policy refuses (scope, single session, limits) */
    GW_EBUSY,              /* resource busy (Milli serialization) */
    GW_EUNSAFE,            /* a file or shm object others could tamper with (S9.2) */
    GW_ELAST
};

/* Returns a static string for err (0, -errno, GW_E*, MDB_*). Never NULL. */
const char *gw_strerror(int err);

/* Formats an error text into err[errlen], the out-parameter many parsers
 * and checks take; err may be NULL (the caller wants only the code).
 * Checked like printf. */
void gw_errf(char *err, size_t errlen, const char *fmt, ...) GW_PRINTF(3, 4);

#endif
