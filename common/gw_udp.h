/* SPDX-License-Identifier: MIT */
/* gw_udp.h - a batch of outgoing UDP datagrams sent with one sendmmsg(2).
 *
 * The frontend (to clients) and meshio (to devices) queue datagrams during
 * a loop turn and send them together: at the end of the turn (uv_check),
 * at the end of timer callbacks, and whenever the batch or its byte buffer
 * is full. A full socket buffer drops the rest of the batch, as a full
 * network would: CON retransmission (frontend) and the scheduler's retries
 * (meshio) cover it. No allocation: the caller provides the byte buffer. */
#ifndef GW_UDP_H
#define GW_UDP_H

#include "gw_defs.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GW_UDP_BATCH 64

struct gw_udp_txq {
    int fd;      /* the socket; -1: nothing can be sent */
    unsigned n;  /* datagrams queued */
    size_t used; /* bytes of buf in use */
    uint8_t *buf;
    size_t cap;
    struct mmsghdr v[GW_UDP_BATCH];
    struct iovec iov[GW_UDP_BATCH];
    struct sockaddr_storage addr[GW_UDP_BATCH];
};

/* buf/cap: room for the bytes of one batch (a datagram larger than cap is
 * dropped). fd may be set later (q->fd). */
void gw_udp_txq_init(struct gw_udp_txq *q, int fd, uint8_t *buf, size_t cap);
/* Sends what is queued (at most 4 sendmmsg calls, EINTR retried) and
 * empties the queue. Returns how many datagrams the kernel took. */
unsigned gw_udp_txq_flush(struct gw_udp_txq *q);
/* Queues a copy of data for sa; flushes first when the batch or the buffer
 * is full. Returns how many datagrams that flush sent (0 without one). */
unsigned gw_udp_txq_add(struct gw_udp_txq *q, const struct sockaddr *sa, socklen_t salen,
                        const uint8_t *data, size_t len);

/* Opening a socket that shares its port (SO_REUSEPORT): every frontend binds
 * the client port (S1.4), and a simulated device coexists with a gateway
 * bound to the wildcard address on the same port (meshsim.h). libuv 1.44 has
 * no UV_UDP_REUSEPORT, so the socket is made here and handed to uv_udp_open. */
struct gw_ep;
#define GW_UDP_REUSEADDR 1u /* also SO_REUSEADDR */
#define GW_UDP_V6ONLY 2u    /* an IPv6 endpoint gets IPV6_V6ONLY */
/* A non-blocking, close-on-exec UDP socket bound to ep. rcvbuf: SO_RCVBUF
 * to ask for (a hint: a smaller buffer is not an error), 0 = the default.
 * Returns the descriptor, or a negative errno (the socket closed). */
int gw_udp_bind_shared(const struct gw_ep *ep, unsigned flags, int rcvbuf) GW_NODISCARD;

#endif
