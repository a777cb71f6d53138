/* SPDX-License-Identifier: MIT */
/* gw_addr.c - UDP endpoints and MAC IDs: sockaddr conversion, parsing, formatting, comparison
 * and hashing (see gw_addr.h). */
#include "gw_addr.h"
#include "gw_error.h"
#include "gw_text.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

int gw_ep_from_sa(struct gw_ep *ep, const struct sockaddr *sa)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    memset(ep, 0, sizeof(*ep));
    if (sa->sa_family == AF_INET)
        memcpy(ep->addr, &in->sin_addr, 4);
    else if (sa->sa_family == AF_INET6)
        memcpy(ep->addr, &in6->sin6_addr, 16);
    else
        return -EAFNOSUPPORT;
    ep->family = sa->sa_family == AF_INET ? 4 : 6;
    ep->port = ntohs(sa->sa_family == AF_INET ? in->sin_port : in6->sin6_port);
    return 0;
}

socklen_t gw_ep_to_sa(const struct gw_ep *ep, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (ep->family == 6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(ep->port);
        memcpy(&in6->sin6_addr, ep->addr, 16);
        return sizeof(*in6);
    }
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    in->sin_family = AF_INET;
    in->sin_port = htons(ep->port);
    memcpy(&in->sin_addr, ep->addr, 4);
    return sizeof(*in);
}

bool gw_ep_eq(const struct gw_ep *a, const struct gw_ep *b)
{
    return memcmp(a, b, sizeof(*a)) == 0;
}

uint64_t gw_ep_hash(const struct gw_ep *ep)
{
    return gw_hash64(ep, sizeof(*ep), GW_HASH_SEED);
}

const char *gw_ep_str(const struct gw_ep *ep, char *buf, size_t len)
{
    char a[INET6_ADDRSTRLEN];
    if (ep->family == 6) {
        inet_ntop(AF_INET6, ep->addr, a, sizeof(a));
        snprintf(buf, len, "[%s]:%u", a, ep->port);
    } else {
        inet_ntop(AF_INET, ep->addr, a, sizeof(a));
        snprintf(buf, len, "%s:%u", a, ep->port);
    }
    return buf;
}

int gw_ep_parse(const char *s, uint16_t defport, struct gw_ep *ep)
{
    char host[128];
    const char *port = NULL;
    memset(ep, 0, sizeof(*ep));
    if (s[0] == '[') {
        const char *e = strchr(s, ']');
        if (!e || (size_t)(e - s - 1) >= sizeof(host))
            return GW_EBADMSG;
        memcpy(host, s + 1, (size_t)(e - s - 1));
        host[e - s - 1] = '\0';
        if (e[1] == ':')
            port = e + 2;
        else if (e[1])
            return GW_EBADMSG;
    } else {
        const char *c = strrchr(s, ':');
        size_t hl = c ? (size_t)(c - s) : strlen(s);
        if (c && strchr(s, ':') != c) { /* bare IPv6 without port */
            c = NULL;
            hl = strlen(s);
        }
        if (hl >= sizeof(host))
            return GW_EBADMSG;
        memcpy(host, s, hl);
        host[hl] = '\0';
        if (c)
            port = c + 1;
    }
    long p = defport;
    if (port) {
        char *end;
        p = strtol(port, &end, 10);
        if (*port == '\0' || *end || p < 0 || p > 65535)
            return GW_EBADMSG;
    }
    ep->port = (uint16_t)p;
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    if (inet_pton(AF_INET, host, ep->addr) == 1) {
        ep->family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, host, ep->addr) == 1) {
        ep->family = 6;
        return 0;
    }
    return GW_EBADMSG;
}

int gw_mac_parse(const char *s, size_t len, uint8_t mac[GW_MAC_LEN])
{
    return gw_hex_decode(s, len, mac, GW_MAC_LEN);
}

void gw_mac_str(const uint8_t mac[GW_MAC_LEN], char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < GW_MAC_LEN; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[16] = '\0';
}

/* ---- SipHash-2-4, written from the paper's description ---- */

static inline uint64_t rotl64(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIP_ROUND(v0, v1, v2, v3)                                                                  \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl64(v1, 13);                                                                       \
        v1 ^= v0;                                                                                  \
        v0 = rotl64(v0, 32);                                                                       \
        v2 += v3;                                                                                  \
        v3 = rotl64(v3, 16);                                                                       \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl64(v3, 21);                                                                       \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl64(v1, 17);                                                                       \
        v1 ^= v2;                                                                                  \
        v2 = rotl64(v2, 32);                                                                       \
    } while (0)

/* A little-endian 64-bit word from 8 bytes at any alignment: one load on a
 * little-endian host (memcpy), where the byte-by-byte loop this replaced was
 * about a third of every SipHash (issue 13: 400 instructions per 31-byte key). */
static inline uint64_t load_le64(const uint8_t *b)
{
    uint64_t m;
    memcpy(&m, b, sizeof(m));
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    m = __builtin_bswap64(m);
#endif
    return m;
}

uint64_t gw_siphash(const uint64_t k[2], const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t v0 = k[0] ^ 0x736f6d6570736575ull, v1 = k[1] ^ 0x646f72616e646f6dull;
    uint64_t v2 = k[0] ^ 0x6c7967656e657261ull, v3 = k[1] ^ 0x7465646279746573ull;
    size_t whole = n & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m = load_le64(b + i);
        v3 ^= m;
        SIP_ROUND(v0, v1, v2, v3);
        SIP_ROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    /* The last block: remaining bytes little-endian, length in the top byte. */
    uint64_t last = (uint64_t)(n & 0xff) << 56;
    const uint8_t *t = b + whole;
    switch (n & 7) {
    case 7:
        last |= (uint64_t)t[6] << 48;
        /* fall through */
    case 6:
        last |= (uint64_t)t[5] << 40;
        /* fall through */
    case 5:
        last |= (uint64_t)t[4] << 32;
        /* fall through */
    case 4:
        last |= (uint64_t)t[3] << 24;
        /* fall through */
    case 3:
        last |= (uint64_t)t[2] << 16;
        /* fall through */
    case 2:
        last |= (uint64_t)t[1] << 8;
        /* fall through */
    case 1:
        last |= (uint64_t)t[0];
        break;
    default:
        break;
    }
    v3 ^= last;
    SIP_ROUND(v0, v1, v2, v3);
    SIP_ROUND(v0, v1, v2, v3);
    v0 ^= last;
    v2 ^= 0xff;
    for (int r = 0; r < 4; r++)
        SIP_ROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

void gw_hash_key_new(uint64_t k[2])
{
    if (getrandom(k, 2 * sizeof(uint64_t), GRND_NONBLOCK) != (ssize_t)(2 * sizeof(uint64_t))) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();
        k[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)k;
    }
}
