/* SPDX-License-Identifier: MIT */
/* gw_udp.c - batched sendmmsg (see gw_udp.h). */
#include "gw_udp.h"

#include <errno.h>
#include <string.h>

void gw_udp_txq_init(struct gw_udp_txq *q, int fd, uint8_t *buf, size_t cap)
{
    q->fd = fd;
    q->n = 0;
    q->used = 0;
    q->buf = buf;
    q->cap = cap;
}

unsigned gw_udp_txq_flush(struct gw_udp_txq *q)
{
    unsigned done = 0;
    /* Bounded: a socket that keeps refusing loses the rest of the batch. */
    for (int tries = 0; done < q->n && tries < 4; tries++) {
        int n = sendmmsg(q->fd, q->v + done, q->n - done, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        done += (unsigned)n;
    }
    q->n = 0;
    q->used = 0;
    return done;
}

unsigned gw_udp_txq_add(struct gw_udp_txq *q, const struct sockaddr *sa, socklen_t salen,
                        const uint8_t *data, size_t len)
{
    unsigned sent = 0;
    if (q->n == GW_UDP_BATCH || q->used + len > q->cap)
        sent = gw_udp_txq_flush(q);
    if (len > q->cap || salen > sizeof(q->addr[0]))
        return sent;
    unsigned i = q->n++;
    memcpy(q->buf + q->used, data, len);
    q->iov[i].iov_base = q->buf + q->used;
    q->iov[i].iov_len = len;
    q->used += len;
    memcpy(&q->addr[i], sa, salen);
    memset(&q->v[i], 0, sizeof(q->v[i]));
    q->v[i].msg_hdr.msg_name = &q->addr[i];
    q->v[i].msg_hdr.msg_namelen = salen;
    q->v[i].msg_hdr.msg_iov = &q->iov[i];
    q->v[i].msg_hdr.msg_iovlen = 1;
    return sent;
}
