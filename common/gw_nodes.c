/* SPDX-License-Identifier: MIT */
/* gw_nodes.c - node list checks, name resolution at start, and device ownership by
 * rendezvous hashing (see gw_nodes.h). */
#include "gw_nodes.h"
#include "gw_error.h"

#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* splitmix64's finaliser: every input bit reaches every output bit, so
 * weights of neighbouring node ids and MACs are independent enough for an
 * even spread (FNV-1a alone mixes the last bytes poorly). */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

uint64_t gw_nodes_weight(const uint8_t mac[GW_MAC_LEN], uint32_t node_id)
{
    /* The weight depends on the node id, not its address: renaming a node
     * (a new Service name, a new IP after rescheduling) moves no device. */
    uint64_t h = gw_hash64(mac, GW_MAC_LEN, 0xcbf29ce484222325ull);
    return mix64(h ^ mix64(0x9e3779b97f4a7c15ull * ((uint64_t)node_id + 1)));
}

uint32_t gw_nodes_owner(const uint8_t mac[GW_MAC_LEN], uint32_t count)
{
    uint32_t best = 0;
    uint64_t bw = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t w = gw_nodes_weight(mac, i);
        if (i == 0 || w > bw)
            best = i, bw = w;
    }
    return best;
}

int gw_nodes_find(const struct gw_nodes *n, const struct gw_ep *src)
{
    if (!n->resolved)
        return -1;
    for (uint32_t i = 0; i < n->count; i++)
        if (gw_ep_eq(&n->ep[i], src))
            return (int)i;
    return -1;
}

/* One `host:port` entry (port required; IPv6 in brackets). */
static int parse_entry(const char *s, size_t len, char host[GW_NODE_HOST], uint16_t *port)
{
    const char *end = s + len, *colon;
    size_t hl;
    const char *h = s;
    if (len && s[0] == '[') {
        const char *rb = memchr(s, ']', len);
        if (!rb || rb + 1 >= end || rb[1] != ':')
            return -1;
        h = s + 1, hl = (size_t)(rb - s - 1), colon = rb + 1;
    } else {
        colon = NULL;
        for (const char *p = s; p < end; p++)
            if (*p == ':') {
                if (colon)
                    return -1; /* a bare IPv6 address needs brackets here */
                colon = p;
            }
        if (!colon)
            return -1;
        hl = (size_t)(colon - s);
        for (size_t i = 0; i < hl; i++)
            if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '-' && s[i] != '_')
                return -1;
    }
    if (hl == 0 || hl >= GW_NODE_HOST)
        return -1;
    size_t pl = (size_t)(end - colon - 1);
    if (pl == 0 || pl > 5)
        return -1;
    long p = 0;
    for (size_t i = 0; i < pl; i++) {
        if (!isdigit((unsigned char)colon[1 + i]))
            return -1;
        p = p * 10 + (colon[1 + i] - '0');
    }
    if (p < 1 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

static int trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s))
        (*s)++, (*len)--;
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
    return *len ? 0 : -1;
}

int gw_nodes_parse(const struct gw_config *cfg, struct gw_nodes *out, char *err, size_t errlen)
{
    struct gw_nodes scratch; /* validation only (about 10 KiB) */
    struct gw_nodes *n = out ? out : &scratch;
    char w[GW_CFG_STR + 64];
    char tmp[8];
    if (!err || !errlen)
        err = tmp, errlen = sizeof(tmp);
    memset(n, 0, sizeof(*n));
    if (cfg->node_count < 1 || cfg->node_count > GW_NODES_MAX) {
        snprintf(err, errlen, "%s: %lld is outside 1..%d",
                 gw_config_where(cfg, "node_count", w, sizeof(w)), (long long)cfg->node_count,
                 GW_NODES_MAX);
        return GW_ECONFIG;
    }
    if (cfg->node_id < 0 || cfg->node_id >= cfg->node_count) {
        snprintf(err, errlen,
                 "%s: %lld must be below node_count (%lld): node ids are 0..node_count-1",
                 gw_config_where(cfg, "node_id", w, sizeof(w)), (long long)cfg->node_id,
                 (long long)cfg->node_count);
        return GW_ECONFIG;
    }
    n->self = (uint32_t)cfg->node_id;
    n->count = (uint32_t)cfg->node_count;
    uint32_t got = 0;
    const char *s = cfg->nodes;
    gw_config_where(cfg, "nodes", w, sizeof(w));
    if (!s[0]) {
        if (n->count > 1) {
            snprintf(err, errlen,
                     "%s: missing: node_count = %u needs the %u nodes' host:port addresses in "
                     "node-id order, comma separated",
                     w, n->count, n->count);
            return GW_ECONFIG;
        }
        return 0;
    }
    for (;;) {
        const char *c = strchr(s, ',');
        size_t len = c ? (size_t)(c - s) : strlen(s);
        const char *e = s;
        if (trim(&e, &len) != 0) {
            snprintf(err, errlen, "%s: empty entry %u", w, got);
            return GW_ECONFIG;
        }
        if (got >= GW_NODES_MAX || got >= n->count) {
            snprintf(err, errlen, "%s: lists more than node_count = %u addresses", w, n->count);
            return GW_ECONFIG;
        }
        if (parse_entry(e, len, n->host[got], &n->port[got]) != 0) {
            snprintf(err, errlen,
                     "%s: entry %u '%.*s' is not host:port (port 1..65535, IPv6 in brackets)", w,
                     got, (int)(len > 100 ? 100 : len), e);
            return GW_ECONFIG;
        }
        for (uint32_t j = 0; j < got; j++)
            if (n->port[j] == n->port[got] && strcasecmp(n->host[j], n->host[got]) == 0) {
                snprintf(err, errlen, "%s: entries %u and %u are both %s:%u", w, j, got,
                         n->host[got], n->port[got]);
                return GW_ECONFIG;
            }
        got++;
        if (!c)
            break;
        s = c + 1;
    }
    if (got != n->count) {
        snprintf(err, errlen, "%s: lists %u address%s but node_count = %u", w, got,
                 got == 1 ? "" : "es", n->count);
        return GW_ECONFIG;
    }
    /* Peers reach this node at nodes[node_id]; a listen port that differs
     * means node_id or the list is wrong (the usual slip: a swapped id). */
    struct gw_ep lep;
    if (gw_ep_parse(cfg->listen, 5683, &lep) == 0 && lep.port != n->port[n->self]) {
        snprintf(err, errlen, "%s: entry %u (node_id) has port %u but listen is %s", w, n->self,
                 n->port[n->self], cfg->listen);
        return GW_ECONFIG;
    }
    return 0;
}

int gw_nodes_resolve(struct gw_nodes *n, char *err, size_t errlen)
{
    n->resolved = false;
    for (uint32_t i = 0; i < n->count && n->host[i][0]; i++) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM };
        struct addrinfo *res = NULL;
        int rc = getaddrinfo(n->host[i], NULL, &hints, &res);
        if (rc != 0 || !res) {
            snprintf(err, errlen, "nodes: entry %u '%s' does not resolve: %s", i, n->host[i],
                     rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
            return GW_ECONFIG;
        }
        const struct addrinfo *pick = res;
        for (const struct addrinfo *a = res; a; a = a->ai_next)
            if (a->ai_family == AF_INET) {
                pick = a;
                break;
            }
        rc = gw_ep_from_sa(&n->ep[i], pick->ai_addr);
        freeaddrinfo(res);
        if (rc != 0) {
            snprintf(err, errlen, "nodes: entry %u '%s' resolves to an unusable address", i,
                     n->host[i]);
            return GW_ECONFIG;
        }
        n->ep[i].port = n->port[i];
    }
    n->resolved = true;
    return 0;
}
