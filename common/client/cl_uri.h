/* SPDX-License-Identifier: MIT */
/* cl_uri.h - targets and gateway addresses of `coapgw client` (pure, no I/O).
 *
 * A target is a device resource, `coap://MAC[:PORT]/path?query` or
 * `MAC/path?query` (sent to the gateway as Proxy-Uri, SPEC S4.1), or a local
 * resource of the gateway written `/path?query` (sent as Uri-Path and
 * Uri-Query options, S8.1). */
#ifndef CL_URI_H
#define CL_URI_H

#include "gw_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* RFC 7252 section 5.10: Proxy-Uri is 1..1034 bytes. */
#define CL_PROXY_URI_MAX 1034
#define CL_MAX_PARTS 32

enum cl_target_kind { CL_TARGET_DEVICE = 1, CL_TARGET_LOCAL = 2 };

/* One Uri-Path segment or Uri-Query item, percent-decoded, in cl_target.buf. */
struct cl_part {
    uint16_t off, len;
};

struct cl_target {
    enum cl_target_kind kind;
    char mac[17];                         /* device: the MAC ID as written */
    char proxy_uri[CL_PROXY_URI_MAX + 1]; /* device: "coap://MAC[:PORT]/path?query" */
    /* local: the options to send, decoded */
    struct cl_part seg[CL_MAX_PARTS], query[CL_MAX_PARTS];
    unsigned nseg, nquery;
    uint8_t buf[CL_PROXY_URI_MAX];
};

/* Parses a target. Returns 0, or GW_EBADMSG with a one-line reason in err
 * (never NULL on error) naming what is wrong: another scheme, a host that is
 * not a MAC ID, a bad port, bad percent-encoding, spaces or control
 * characters, a fragment, too long. */
int cl_target_parse(const char *s, struct cl_target *t, char *err, size_t errlen) GW_NODISCARD;

/* Parses a gateway "host:port", "[v6]:port", "host", "[v6]" or a bare IPv6
 * address (port 5683 when none). host gets the name without brackets.
 * Returns 0, or GW_EBADMSG with a reason in err. */
int cl_hostport_parse(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
                      size_t errlen) GW_NODISCARD;

#endif
