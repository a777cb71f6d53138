/* SPDX-License-Identifier: MIT */
/* bench_echo.c - the UDP echo floor for tests/bench/run-compare.sh.
 *
 * One process, one socket: every datagram that looks like a CoAP request is
 * answered by one datagram, an ACK carrying 2.05 with the request's MID and
 * token and a one-byte payload (1 datagram in, 1 out). It does the least a
 * CoAP endpoint can do, so its CPU per request is what two loopback datagrams
 * cost on this machine: the floor a cache hit answered piggybacked is
 * compared with (issue 13: cache hit <= 2x echo). Batched like the gateway:
 * recvmmsg(2) and sendmmsg(2), up to 64 at a time.
 *
 * usage: bench_echo --listen 127.0.0.1:PORT
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

int main(int argc, char **argv)
{
    if (argc != 3 || strcmp(argv[1], "--listen") != 0) {
        fprintf(stderr, "usage: bench_echo --listen ADDR:PORT\n");
        return 2;
    }
    struct sockaddr_in me;
    if (bench_parse_addr(argv[2], &me) != 0) {
        fprintf(stderr, "bench_echo: bad address '%s'\n", argv[2]);
        return 2;
    }
    int fd = bench_udp_bind(&me);
    if (fd < 0) {
        fprintf(stderr, "bench_echo: bind %s: %s\n", argv[2], strerror(errno));
        return 1;
    }
    bench_catch_signals();

    static uint8_t rx[BATCH][MAXDG], tx[BATCH][16];
    static struct sockaddr_in from[BATCH];
    static struct iovec riov[BATCH], tiov[BATCH];
    static struct mmsghdr rmm[BATCH], tmm[BATCH];
    uint64_t in = 0, out = 0, bad = 0;
    while (!bench_stop) {
        struct pollfd p = { fd, POLLIN, 0 };
        if (poll(&p, 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
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
            int n = 0;
            for (int i = 0; i < got; i++) {
                const uint8_t *q = rx[i];
                size_t len = rmm[i].msg_len;
                unsigned tkl = q[0] & 15;
                /* A request: version 1, CON or NON, a method code. */
                if (len < 4 || (q[0] >> 6) != 1 || tkl > 8 || len < 4 + tkl || q[1] == 0 ||
                    q[1] >= 32 || ((q[0] >> 4) & 3) > 1) {
                    bad++;
                    continue;
                }
                in++;
                uint8_t *t = tx[n];
                bool con = ((q[0] >> 4) & 3) == 0;
                t[0] = (uint8_t)(0x40 | (con ? 2 : 1) << 4 | tkl); /* ACK, or NON to a NON */
                t[1] = 0x45;                                       /* 2.05 Content */
                t[2] = q[2];
                t[3] = q[3];
                memcpy(t + 4, q + 4, tkl);
                t[4 + tkl] = 0xff;
                t[5 + tkl] = '1';
                tiov[n].iov_base = t;
                tiov[n].iov_len = 6 + tkl;
                memset(&tmm[n], 0, sizeof(tmm[n]));
                tmm[n].msg_hdr.msg_iov = &tiov[n];
                tmm[n].msg_hdr.msg_iovlen = 1;
                tmm[n].msg_hdr.msg_name = &from[i];
                tmm[n].msg_hdr.msg_namelen = rmm[i].msg_hdr.msg_namelen;
                n++;
            }
            for (int done = 0, tries = 0; done < n && tries < 8; tries++) {
                int r = sendmmsg(fd, tmm + done, (unsigned)(n - done), 0);
                if (r > 0) {
                    done += r;
                    out += (uint64_t)r;
                } else if (r < 0 && errno != EAGAIN && errno != EINTR) {
                    done++; /* a refused destination: drop that one */
                }
            }
            if (got < BATCH)
                break;
        }
    }
    fprintf(stderr, "bench_echo: %" PRIu64 " requests, %" PRIu64 " answers, %" PRIu64 " ignored\n",
            in, out, bad);
    close(fd);
    return 0;
}
