/* SPDX-License-Identifier: MIT */
/* gw_nodes.h - several gateway nodes, each device owned by exactly one (issue 16, S10.4).
 *
 * Per-device invariants hold only when one process speaks to the device: one
 * AEAD sequence space per device key (S7.1), one Milli request in flight
 * (S4.5), one observation per resource (S6.1). With node_count = N > 1 every
 * device is owned by one node, chosen by rendezvous (highest random weight)
 * hashing of its MAC over the node ids 0..N-1: every node computes the same
 * owner from the MAC alone, and going from N to N+1 nodes moves only the
 * devices the new node wins (about 1/(N+1) of them), never one between two
 * old nodes.
 *
 * The keys: node_id (this node, 0..N-1; the StatefulSet ordinal), node_count
 * (N, default 1: a single node, today's behaviour) and nodes (the N
 * client-facing host:port addresses in node-id order, comma separated; on
 * Kubernetes the Pods' stable names from a headless Service). gw_nodes_parse
 * checks them without touching DNS (gw_config_validate calls it, so a
 * disagreement is a configuration error naming the key, exit 78);
 * gw_nodes_resolve turns the names into addresses at start: meshio sends
 * requests for other nodes' devices to their owner's client port
 * (meshio/mesh_peer.h), and the frontend accepts a node's token only from
 * that node's address (frontend/fe_local.c). */
#ifndef GW_NODES_H
#define GW_NODES_H

#include "gw_addr.h"
#include "gw_config.h"
#include "gw_defs.h"

#include <stdbool.h>
#include <stdint.h>

#define GW_NODES_MAX 64  /* upper bound of node_count */
#define GW_NODE_HOST 128 /* longest host name in `nodes` */

struct gw_nodes {
    uint32_t self;                         /* node_id */
    uint32_t count;                        /* node_count */
    char host[GW_NODES_MAX][GW_NODE_HOST]; /* as written in `nodes` (no brackets for IPv6) */
    uint16_t port[GW_NODES_MAX];
    struct gw_ep ep[GW_NODES_MAX]; /* filled by gw_nodes_resolve */
    bool resolved;
};

/* Parses and cross-checks node_id, node_count, nodes and listen (pure, no
 * DNS): node_id < node_count; with node_count > 1, nodes lists exactly
 * node_count distinct host:port entries (port required); a non-empty nodes
 * with node_count = 1 holds one entry; this node's entry has the listen
 * port. 0, or GW_ECONFIG with one line naming the key (file:line when set in
 * a file). out may be NULL (validation only). */
int gw_nodes_parse(const struct gw_config *cfg, struct gw_nodes *out, char *err,
                   size_t errlen) GW_NODISCARD;

/* Resolves every host (getaddrinfo, IPv4 preferred, first answer) into
 * n->ep[]. 0, or GW_ECONFIG with one line naming `nodes` and the host. */
int gw_nodes_resolve(struct gw_nodes *n, char *err, size_t errlen) GW_NODISCARD;

/* The owner of a device among node ids 0..count-1 (count >= 1): the id with
 * the highest weight gw_nodes_weight(mac, id); ties (never seen with 64-bit
 * weights) go to the lower id. Pure and stable across builds and hosts. */
uint32_t gw_nodes_owner(const uint8_t mac[GW_MAC_LEN], uint32_t count);
uint64_t gw_nodes_weight(const uint8_t mac[GW_MAC_LEN], uint32_t node_id);

/* True when the node list holds more than one node. */
static inline bool gw_nodes_multi(const struct gw_nodes *n)
{
    return n->count > 1;
}

/* The node id whose resolved address equals `src` (address and port), or
 * -1: only peers listed in `nodes` may authenticate as a node. */
int gw_nodes_find(const struct gw_nodes *n, const struct gw_ep *src);

#endif
