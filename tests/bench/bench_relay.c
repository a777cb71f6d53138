/* SPDX-License-Identifier: MIT */
/* bench_relay.c - the relay hop floor for tests/bench/run-compare.sh.
 *
 * One process, two sockets: a CoAP forward proxy with nothing but the
 * forwarding. A client's request carries Proxy-Uri coap://A.B.C.D[:PORT]/path;
 * the relay sends the device a request with the same type and code, the path
 * as Uri-Path, a token of its own naming a pending slot and a MID from that
 * device's own counter (so any number of client sockets share its one device
 * socket, and a device's duplicate detection sees a MID again only after
 * 65536 requests to it), remembers (client address, MID, token) in the slot,
 * and relays the device's piggybacked answer back to the client as an ACK
 * with the client's MID and token. That is four datagrams per request, the
 * least a proxy hop can move; the gateway's proxied path is compared with it
 * (issue 13: proxied <= 2x relay). No sessions, no dedup, no retries, no
 * cache: whatever the gateway adds is measured against this.
 *
 * Batched like the gateway: recvmmsg(2)/sendmmsg(2), up to 64 at a time.
 *
 * usage: bench_relay --listen 127.0.0.1:PORT
 * Runs until SIGTERM or SIGINT; prints what it handled on exit (stderr). */
#include "bench_util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define MAXDG 1536
#define OPT_URI_PATH 11
#define OPT_PROXY_URI 35

#define NPEND 65536 /* pending slots; the relay's token is the slot index */
#define NDEV 4096   /* device table (open addressing), power of two */

struct pend {
    struct sockaddr_in client;
    uint16_t client_mid;
    uint8_t used, tkl;
    uint8_t tok[8];
};

struct dev {
    uint32_t addr;
    uint16_t port, next_mid;
    uint8_t used;
};

static struct pend pend[NPEND];
static uint32_t next_slot;
static struct dev devs[NDEV];

/* The device's MID counter, found by address (linear probing). */
static struct dev *dev_get(const struct sockaddr_in *a)
{
    uint32_t h = (a->sin_addr.s_addr * 2654435761u ^ a->sin_port) & (NDEV - 1);
    for (uint32_t i = 0; i < NDEV; i++, h = (h + 1) & (NDEV - 1)) {
        struct dev *d = &devs[h];
        if (!d->used) {
            d->used = 1;
            d->addr = a->sin_addr.s_addr;
            d->port = a->sin_port;
            d->next_mid = (uint16_t)(h * 7919u);
            return d;
        }
        if (d->addr == a->sin_addr.s_addr && d->port == a->sin_port)
            return d;
    }
    return NULL;
}

struct txb {
    int n;
    uint8_t buf[BATCH][MAXDG];
    struct sockaddr_in to[BATCH];
    struct iovec iov[BATCH];
    struct mmsghdr mm[BATCH];
};

static uint64_t n_req, n_ans, n_bad, n_unmatched;

static void tx_flush(int fd, struct txb *t)
{
    for (int i = 0; i < t->n; i++) {
        memset(&t->mm[i], 0, sizeof(t->mm[i]));
        t->mm[i].msg_hdr.msg_iov = &t->iov[i];
        t->mm[i].msg_hdr.msg_iovlen = 1;
        t->mm[i].msg_hdr.msg_name = &t->to[i];
        t->mm[i].msg_hdr.msg_namelen = sizeof(t->to[i]);
    }
    for (int done = 0, tries = 0; done < t->n && tries < 8; tries++) {
        int r = sendmmsg(fd, t->mm + done, (unsigned)(t->n - done), 0);
        if (r > 0)
            done += r;
        else if (r < 0 && errno != EAGAIN && errno != EINTR)
            done++; /* a refused destination: drop that one */
    }
    t->n = 0;
}

/* Appends one option (delta/length encoding of RFC 7252 3.1). */
static size_t put_opt(uint8_t *p, size_t cap, unsigned *last, unsigned num, const uint8_t *v,
                      size_t len)
{
    unsigned d = num - *last;
    uint8_t ext[4];
    size_t ne = 0;
    unsigned dn, ln;
    if (d < 13) {
        dn = d;
    } else if (d < 269) {
        dn = 13;
        ext[ne++] = (uint8_t)(d - 13);
    } else {
        dn = 14;
        ext[ne++] = (uint8_t)((d - 269) >> 8);
        ext[ne++] = (uint8_t)(d - 269);
    }
    if (len < 13) {
        ln = (unsigned)len;
    } else if (len < 269) {
        ln = 13;
        ext[ne++] = (uint8_t)(len - 13);
    } else {
        ln = 14;
        ext[ne++] = (uint8_t)((len - 269) >> 8);
        ext[ne++] = (uint8_t)(len - 269);
    }
    if (1 + ne + len > cap)
        return 0;
    p[0] = (uint8_t)(dn << 4 | ln);
    memcpy(p + 1, ext, ne);
    memcpy(p + 1 + ne, v, len);
    *last = num;
    return 1 + ne + len;
}

/* Finds Proxy-Uri in a request; returns its value or NULL. */
static const uint8_t *find_proxy_uri(const uint8_t *q, size_t n, size_t *vlen)
{
    size_t i = 4u + (q[0] & 15u);
    unsigned num = 0;
    for (int k = 0; k < 32 && i < n && q[i] != 0xff; k++) {
        unsigned d = q[i] >> 4, l = q[i] & 15;
        i++;
        if (d == 13) {
            if (i >= n)
                return NULL;
            d = 13u + q[i++];
        } else if (d == 14) {
            if (i + 1 >= n)
                return NULL;
            d = 269u + (unsigned)(q[i] << 8 | q[i + 1]);
            i += 2;
        } else if (d == 15) {
            return NULL;
        }
        if (l == 13) {
            if (i >= n)
                return NULL;
            l = 13u + q[i++];
        } else if (l == 14) {
            if (i + 1 >= n)
                return NULL;
            l = 269u + (unsigned)(q[i] << 8 | q[i + 1]);
            i += 2;
        } else if (l == 15) {
            return NULL;
        }
        num += d;
        if (i + l > n)
            return NULL;
        if (num == OPT_PROXY_URI) {
            *vlen = l;
            return q + i;
        }
        i += l;
    }
    return NULL;
}

/* Client request -> device request, token = the pending slot. Returns the
 * length, or 0 to drop it. */
static size_t to_device(const uint8_t *q, size_t n, uint32_t slot, uint8_t *out,
                        struct sockaddr_in *dev)
{
    unsigned tkl = q[0] & 15;
    if (n < 4 || (q[0] >> 6) != 1 || tkl > 8 || n < 4 + tkl || q[1] == 0 || q[1] >= 32)
        return 0;
    size_t ul;
    const uint8_t *u = find_proxy_uri(q, n, &ul);
    char uri[300];
    if (!u || ul >= sizeof(uri) || ul < 8 || memcmp(u, "coap://", 7) != 0)
        return 0;
    memcpy(uri, u, ul);
    uri[ul] = '\0';
    char *host = uri + 7, *path = strchr(host, '/');
    if (path)
        *path++ = '\0';
    char *colon = strchr(host, ':');
    int port = 5683;
    if (colon) {
        *colon = '\0';
        port = atoi(colon + 1);
    }
    memset(dev, 0, sizeof(*dev));
    dev->sin_family = AF_INET;
    dev->sin_port = htons((uint16_t)port);
    struct dev *d;
    if (inet_pton(AF_INET, host, &dev->sin_addr) != 1 || !(d = dev_get(dev)))
        return 0;
    uint16_t mid = d->next_mid++;
    out[0] = (uint8_t)((q[0] & 0xf0) | 4); /* version and type as the client's, 4-byte token */
    out[1] = q[1];
    out[2] = (uint8_t)(mid >> 8);
    out[3] = (uint8_t)mid;
    memcpy(out + 4, &slot, 4);
    size_t o = 8;
    unsigned last = 0;
    for (char *seg = path, *next; seg && *seg; seg = next) {
        next = strchr(seg, '/');
        if (next)
            *next++ = '\0';
        size_t w =
            put_opt(out + o, MAXDG - o, &last, OPT_URI_PATH, (const uint8_t *)seg, strlen(seg));
        if (!w)
            return 0;
        o += w;
    }
    return o;
}

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--listen") != 0) {
        fprintf(stderr, "usage: bench_relay --listen ADDR:PORT\n");
        return 2;
    }
    struct sockaddr_in me, mesh;
    if (bench_parse_addr(argv[2], &me) != 0) {
        fprintf(stderr, "bench_relay: bad address '%s'\n", argv[2]);
        return 2;
    }
    mesh = me;
    mesh.sin_port = 0;
    int cfd = bench_udp_bind(&me), dfd = bench_udp_bind(&mesh);
    if (cfd < 0 || dfd < 0) {
        fprintf(stderr, "bench_relay: bind %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    bench_catch_signals();

    static struct txb to_dev, to_cli;
    static uint8_t rx[BATCH][MAXDG];
    static struct sockaddr_in from[BATCH];
    static struct iovec riov[BATCH];
    static struct mmsghdr rmm[BATCH];
    while (!bench_stop) {
        struct pollfd p[2] = { { cfd, POLLIN, 0 }, { dfd, POLLIN, 0 } };
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        for (int side = 0; side < 2; side++) {
            if (!(p[side].revents & POLLIN))
                continue;
            int fd = side == 0 ? cfd : dfd;
            for (int round = 0; round < 16; round++) {
                for (int i = 0; i < BATCH; i++) {
                    riov[i].iov_base = rx[i];
                    riov[i].iov_len = MAXDG;
                    memset(&rmm[i], 0, sizeof(rmm[i]));
                    rmm[i].msg_hdr.msg_iov = &riov[i];
                    rmm[i].msg_hdr.msg_iovlen = 1;
                    rmm[i].msg_hdr.msg_name = &from[i];
                    rmm[i].msg_hdr.msg_namelen = sizeof(from[i]);
                }
                int got = recvmmsg(fd, rmm, BATCH, MSG_DONTWAIT, NULL);
                if (got <= 0)
                    break;
                for (int i = 0; i < got; i++) {
                    const uint8_t *q = rx[i];
                    size_t len = rmm[i].msg_len;
                    if (side == 0) {
                        uint32_t slot = next_slot++ % NPEND;
                        size_t l =
                            to_device(q, len, slot, to_dev.buf[to_dev.n], &to_dev.to[to_dev.n]);
                        if (!l) {
                            n_bad++;
                            continue;
                        }
                        n_req++;
                        struct pend *pe = &pend[slot];
                        pe->client = from[i];
                        pe->client_mid = (uint16_t)(q[2] << 8 | q[3]);
                        pe->tkl = q[0] & 15;
                        memcpy(pe->tok, q + 4, pe->tkl);
                        pe->used = 1;
                        to_dev.iov[to_dev.n].iov_base = to_dev.buf[to_dev.n];
                        to_dev.iov[to_dev.n].iov_len = l;
                        if (++to_dev.n == BATCH)
                            tx_flush(dfd, &to_dev);
                        continue;
                    }
                    /* A piggybacked answer (ACK with a code); anything else is
                     * outside what a zero-latency device sends. */
                    uint32_t slot = 0;
                    if (len >= 8 && (q[0] & 15) == 4)
                        memcpy(&slot, q + 4, 4);
                    struct pend *pe = &pend[slot % NPEND];
                    if (len < 8 || (q[0] & 15) != 4 || ((q[0] >> 4) & 3) != 2 || q[1] == 0 ||
                        slot >= NPEND || !pe->used) {
                        n_unmatched++;
                        continue;
                    }
                    pe->used = 0;
                    n_ans++;
                    /* The client's MID and token in place of ours. */
                    uint8_t *t = to_cli.buf[to_cli.n];
                    t[0] = (uint8_t)((q[0] & 0xf0) | pe->tkl);
                    t[1] = q[1];
                    t[2] = (uint8_t)(pe->client_mid >> 8);
                    t[3] = (uint8_t)pe->client_mid;
                    memcpy(t + 4, pe->tok, pe->tkl);
                    memcpy(t + 4 + pe->tkl, q + 8, len - 8);
                    to_cli.to[to_cli.n] = pe->client;
                    to_cli.iov[to_cli.n].iov_base = t;
                    to_cli.iov[to_cli.n].iov_len = 4 + pe->tkl + len - 8;
                    if (++to_cli.n == BATCH)
                        tx_flush(cfd, &to_cli);
                }
                if (got < BATCH)
                    break;
            }
        }
        tx_flush(dfd, &to_dev);
        tx_flush(cfd, &to_cli);
    }
    fprintf(stderr,
            "bench_relay: %" PRIu64 " requests, %" PRIu64 " answers, %" PRIu64 " bad, %" PRIu64
            " unmatched\n",
            n_req, n_ans, n_bad, n_unmatched);
    close(cfd);
    close(dfd);
    return 0;
}
