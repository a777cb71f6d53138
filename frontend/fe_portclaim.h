/* SPDX-License-Identifier: MIT */
/* fe_portclaim.h - one instance per client port (issue #12 item 13).
 *
 * Frontends bind the client port with SO_REUSEPORT so that several of them
 * share it (S1.4). The kernel then lets any socket of the same user join the
 * port, so a second gateway instance started on the same `listen` by
 * mistake would silently take half of the datagrams (its clients and ours
 * get random 4.01s). To prevent that, every frontend also binds an abstract
 * unix socket whose name says which port, address, instance and index it
 * serves:  cgw/<port>/<address>/<index>/<instance>  (address "*" for a
 * wildcard, dotted IPv4, or 32 hex digits for IPv6). Before it binds the UDP
 * port it reads /proc/net/unix (which lists the abstract names of its own
 * network namespace, the same namespace as the port) and refuses to start
 * when a frontend of another instance claims the same port on the same or an
 * overlapping address. The name disappears with its process, even on
 * SIGKILL, so nothing goes stale. Two instances starting at the same moment
 * may both refuse; that is the safe outcome. Frontends of one instance
 * (frontends = N, or `coapgw frontend -i N` roles in containers sharing a
 * network namespace) share the port as before. */
#ifndef FE_PORTCLAIM_H
#define FE_PORTCLAIM_H

#include "gw_addr.h"
#include "gw_defs.h"

#include <stdbool.h>
#include <stdio.h>

/* Longest abstract name (sun_path less its leading NUL). */
#define FE_CLAIM_NAME_MAX 107

struct fe_claim {
    uint16_t port;
    char addr[40];  /* "*", "127.0.0.1", or 32 hex digits */
    uint8_t family; /* 4 or 6 */
    int index;
    char instance[64];
};

/* Fills c for a frontend: listen endpoint, instance, index. Pure. */
void fe_claim_make(const struct gw_ep *listen, const char *instance, int index, struct fe_claim *c);
/* Writes c's abstract name (no leading NUL) into buf (FE_CLAIM_NAME_MAX + 1
 * bytes); an instance too long for the name is cut, consistently for every
 * frontend of that instance. Returns the name's length. Pure. */
size_t fe_claim_name(const struct fe_claim *c, char *buf, size_t len);
/* Parses a name made by fe_claim_name: 0, or GW_EBADMSG for anything else. Pure. */
int fe_claim_parse(const char *name, struct fe_claim *c) GW_NODISCARD;
/* True when `other` belongs to another instance and serves the same port on
 * the same address, or when either address is a wildcard that covers the
 * other (IPv4 "*" covers IPv4, IPv6 "*" both). Pure. */
bool fe_claim_conflicts(const struct fe_claim *mine, const struct fe_claim *other);
/* Reads /proc/net/unix text from f and looks for a conflicting claim; on
 * finding one copies it to *other and returns 1; 0 when there is none. */
int fe_claim_scan(FILE *f, const struct fe_claim *mine, struct fe_claim *other);

/* Binds the abstract name of c and checks /proc/net/unix. Returns the
 * socket (keep it open while serving), GW_EFORBIDDEN with "port 5683 is
 * used by instance <name>" in err when another instance holds the port, or
 * -errno with a message. */
int fe_claim_port(const struct fe_claim *c, char *err, size_t errlen) GW_NODISCARD;

#endif
