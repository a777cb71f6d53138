/* SPDX-License-Identifier: MIT */
/* fe_route.h - proxy targets (SPEC S4.1-S4.3, S4.7, S4.8), without I/O.
 *
 * A target comes from Proxy-Uri, or from Proxy-Scheme with Uri-Host,
 * Uri-Port, Uri-Path and Uri-Query. Only `coap` is proxied (else 5.05);
 * Proxy-Uri together with a Uri-* option is 4.02; a malformed URI or a
 * `.`/`..` segment is 4.00. From a valid target and the client's request
 * this builds the request for the device: the gateway's placeholder token
 * (8 zero bytes, set by the scheduler) and MID 0, the path and query, the
 * payload and the options that are safe to forward. */
#ifndef FE_ROUTE_H
#define FE_ROUTE_H

#include "gw_coap.h"
#include "gw_defs.h"

#include <stdbool.h>

#define FE_MAX_SEGS 24

struct fe_target {
    char scheme[8];
    char host[256];
    int port; /* -1 when not given */
    uint8_t nseg, nquery;
    struct {
        const uint8_t *p;
        uint16_t len;
    } seg[FE_MAX_SEGS], query[FE_MAX_SEGS];
    uint8_t buf[GW_COAP_MAX_MSG]; /* decoded segments live here */
    uint16_t used;
};

struct fe_verdict {
    uint8_t code;     /* CoAP error code, 0 = fine */
    const char *diag; /* short diagnostic payload */
};

/* True when the request carries Proxy-Uri or Proxy-Scheme. */
bool fe_route_is_proxy(const struct gw_coap_msg *m);
/* Extracts the target. 0, or GW_EBADMSG with *v set. */
int fe_route_target(const struct gw_coap_msg *m, struct fe_target *t,
                    struct fe_verdict *v) GW_NODISCARD;
/* Checks the request's options for proxying: unknown unsafe options (4.02),
 * Block1 or a Block2 other than NUM 0 (4.02, S4.7). *block2_szx receives the
 * size preference of a Block2 NUM 0, or -1. 0 or GW_EBADMSG with *v. */
int fe_route_check_options(const struct gw_coap_msg *m, int *block2_szx,
                           struct fe_verdict *v) GW_NODISCARD;
/* Builds the request for the device. 0, or GW_ETOOBIG (4.13). */
int fe_route_build(const struct gw_coap_msg *m, const struct fe_target *t, uint8_t *out, size_t cap,
                   size_t *len) GW_NODISCARD;
/* Is `host` the gateway itself? names: comma-separated list of extra names. */
bool fe_route_is_self(const char *host, const char *names, const char *listen);
/* Observe value of a GET: 0 register, 1 deregister, -1 none/other. */
int fe_route_observe(const struct gw_coap_msg *m);

#endif
