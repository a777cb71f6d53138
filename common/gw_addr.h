/* SPDX-License-Identifier: MIT */
/* gw_addr.h - compact UDP endpoints: the key of sessions, dedup entries and
 * observers, and the client address carried in ring envelopes. Fixed size,
 * no pointers, so it can live in shared memory and LMDB as it is. */
#ifndef GW_ADDR_H
#define GW_ADDR_H

#include "gw_defs.h"

#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

struct gw_ep {
    uint8_t family; /* 4 or 6 */
    uint8_t pad;
    uint16_t port;    /* host order */
    uint8_t addr[16]; /* IPv4 in the first 4 bytes, rest zero */
};
GW_STATIC_ASSERT(sizeof(struct gw_ep) == 20, "gw_ep is a fixed 20 bytes");

int gw_ep_from_sa(struct gw_ep *ep, const struct sockaddr *sa) GW_NODISCARD;
/* Writes a sockaddr_in or sockaddr_in6; returns its length. */
socklen_t gw_ep_to_sa(const struct gw_ep *ep, struct sockaddr_storage *ss);
bool gw_ep_eq(const struct gw_ep *a, const struct gw_ep *b);
uint64_t gw_ep_hash(const struct gw_ep *ep);
/* "1.2.3.4:5683" or "[::1]:5683"; buf of at least GW_EP_STRLEN. */
#define GW_EP_STRLEN 64
const char *gw_ep_str(const struct gw_ep *ep, char *buf, size_t len);
/* Parses "host:port", "[v6]:port" or "host" (then port = defport). */
int gw_ep_parse(const char *s, uint16_t defport, struct gw_ep *ep) GW_NODISCARD;

/* 64-bit FNV-1a, used for hashing keys everywhere. */
static inline uint64_t gw_hash64(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define GW_HASH_SEED 0xcbf29ce484222325ull

/* SipHash-2-4 (Aumasson and Bernstein) keyed with k[2]: for tables that
 * remote senders fill (dedup, retransmission, rate limits), where an
 * unkeyed FNV lets a sender choose colliding keys (S9). Keys come from
 * gw_hash_key_new(), random per process. */
uint64_t gw_siphash(const uint64_t k[2], const void *p, size_t n);
/* Fills k with random bytes (getrandom; the clock if it fails). */
void gw_hash_key_new(uint64_t k[2]);

/* MAC IDs: 16 hex digits, case-insensitive (S4.2). */
int gw_mac_parse(const char *s, size_t len, uint8_t mac[GW_MAC_LEN]) GW_NODISCARD;
void gw_mac_str(const uint8_t mac[GW_MAC_LEN], char out[17]);

#endif
