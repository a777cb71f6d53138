/* SPDX-License-Identifier: MIT */
/* gw_udp.c - batched sendmmsg (see gw_udp.h). */
#include "gw_udp.h"
#include "gw_addr.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

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

int gw_udp_bind_shared(const struct gw_ep *ep, unsigned flags, int rcvbuf)
{
    struct sockaddr_storage ss;
    socklen_t sl = gw_ep_to_sa(ep, &ss);
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        ((flags & GW_UDP_REUSEADDR) &&
         setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) ||
        ((flags & GW_UDP_V6ONLY) && ep->family == 6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0))
        goto fail;
    if (rcvbuf > 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)); /* a hint */
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0)
        goto fail;
    return fd;
fail:;
    int e = errno;
    close(fd);
    return -e;
}
