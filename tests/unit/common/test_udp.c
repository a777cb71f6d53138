/* SPDX-License-Identifier: MIT */
/* test_udp.c - the sendmmsg batch queue (common/gw_udp.c) that the
 * frontend and meshio send through: datagrams leave in order, whole, to
 * their own destinations; a full batch or a full byte buffer sends what is
 * queued first; a datagram larger than the buffer is dropped, not cut. Real
 * UDP sockets on loopback. */
#include "gw_addr.h"
#include "gw_udp.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* A non-blocking loopback UDP socket on a free port; its address in sa. */
static int udp_socket(struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    cr_assert(fd >= 0);
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)sa, sizeof(*sa)), 0);
    socklen_t sl = sizeof(*sa);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)sa, &sl), 0);
    int big = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    return fd;
}

/* Next datagram on fd, waiting at most 1 s; its length, or -1. */
static ssize_t recv_one(int fd, uint8_t *buf, size_t cap)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, 1000) != 1)
        return -1;
    return recv(fd, buf, cap, 0);
}

static bool nothing_waiting(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, 0) == 0;
}

Test(udp, queued_datagrams_leave_on_flush_in_order_to_their_destinations)
{
    struct sockaddr_in a_sa, b_sa, tx_sa;
    int a = udp_socket(&a_sa), b = udp_socket(&b_sa), tx = udp_socket(&tx_sa);
    static uint8_t buf[4096];
    struct gw_udp_txq q;
    gw_udp_txq_init(&q, tx, buf, sizeof(buf));
    cr_assert_eq(
        gw_udp_txq_add(&q, (struct sockaddr *)&a_sa, sizeof(a_sa), (const uint8_t *)"one", 3), 0);
    cr_assert_eq(
        gw_udp_txq_add(&q, (struct sockaddr *)&b_sa, sizeof(b_sa), (const uint8_t *)"two!", 4), 0);
    cr_assert_eq(
        gw_udp_txq_add(&q, (struct sockaddr *)&a_sa, sizeof(a_sa), (const uint8_t *)"three", 5), 0);
    cr_assert_eq(q.n, 3);
    cr_assert(nothing_waiting(a), "nothing is sent before the flush");
    cr_assert_eq(gw_udp_txq_flush(&q), 3);
    cr_assert_eq(q.n, 0);
    cr_assert_eq(q.used, 0);
    uint8_t got[64];
    cr_assert_eq(recv_one(a, got, sizeof(got)), 3);
    cr_assert_arr_eq(got, "one", 3);
    cr_assert_eq(recv_one(a, got, sizeof(got)), 5);
    cr_assert_arr_eq(got, "three", 5);
    cr_assert_eq(recv_one(b, got, sizeof(got)), 4);
    cr_assert_arr_eq(got, "two!", 4);
    cr_assert_eq(gw_udp_txq_flush(&q), 0, "an empty queue sends nothing");
    close(a);
    close(b);
    close(tx);
}

Test(udp, a_full_batch_is_sent_before_the_next_datagram_is_queued)
{
    struct sockaddr_in rx_sa, tx_sa;
    int rx = udp_socket(&rx_sa), tx = udp_socket(&tx_sa);
    static uint8_t buf[GW_UDP_BATCH * 16];
    struct gw_udp_txq q;
    gw_udp_txq_init(&q, tx, buf, sizeof(buf));
    for (unsigned i = 0; i < GW_UDP_BATCH; i++) {
        uint8_t d[2] = { (uint8_t)i, 0xab };
        cr_assert_eq(gw_udp_txq_add(&q, (struct sockaddr *)&rx_sa, sizeof(rx_sa), d, 2), 0);
    }
    uint8_t last[2] = { 0xff, 0xcd };
    cr_assert_eq(gw_udp_txq_add(&q, (struct sockaddr *)&rx_sa, sizeof(rx_sa), last, 2),
                 GW_UDP_BATCH, "the 65th datagram flushes the 64 before it");
    cr_assert_eq(q.n, 1);
    uint8_t got[8];
    for (unsigned i = 0; i < GW_UDP_BATCH; i++) {
        cr_assert_eq(recv_one(rx, got, sizeof(got)), 2);
        cr_assert_eq(got[0], (uint8_t)i, "in order");
    }
    cr_assert(nothing_waiting(rx), "the 65th waits for the next flush");
    cr_assert_eq(gw_udp_txq_flush(&q), 1);
    cr_assert_eq(recv_one(rx, got, sizeof(got)), 2);
    cr_assert_eq(got[0], 0xff);
    close(rx);
    close(tx);
}

Test(udp, a_full_buffer_is_sent_first_and_an_oversize_datagram_dropped)
{
    struct sockaddr_in rx_sa, tx_sa;
    int rx = udp_socket(&rx_sa), tx = udp_socket(&tx_sa);
    static uint8_t buf[100];
    uint8_t d[60], big[101];
    memset(d, 0x11, sizeof(d));
    memset(big, 0x22, sizeof(big));
    struct gw_udp_txq q;
    gw_udp_txq_init(&q, tx, buf, sizeof(buf));
    cr_assert_eq(gw_udp_txq_add(&q, (struct sockaddr *)&rx_sa, sizeof(rx_sa), d, 60), 0);
    cr_assert_eq(gw_udp_txq_add(&q, (struct sockaddr *)&rx_sa, sizeof(rx_sa), d, 60), 1,
                 "60 + 60 bytes do not fit in 100: the first goes out");
    cr_assert_eq(q.used, 60);
    cr_assert_eq(gw_udp_txq_add(&q, (struct sockaddr *)&rx_sa, sizeof(rx_sa), big, sizeof(big)), 1);
    cr_assert_eq(q.n, 0, "101 bytes never fit: dropped, not truncated");
    cr_assert_eq(gw_udp_txq_flush(&q), 0);
    uint8_t got[200];
    cr_assert_eq(recv_one(rx, got, sizeof(got)), 60);
    cr_assert_eq(recv_one(rx, got, sizeof(got)), 60);
    cr_assert(nothing_waiting(rx));
    close(rx);
    close(tx);
}

Test(udp, a_socket_that_refuses_empties_the_queue_and_reports_nothing_sent)
{
    struct sockaddr_in rx_sa, tx_sa;
    int rx = udp_socket(&rx_sa), tx = udp_socket(&tx_sa);
    static uint8_t buf[256];
    struct gw_udp_txq q;
    gw_udp_txq_init(&q, -1, buf, sizeof(buf));
    cr_assert_eq(
        gw_udp_txq_add(&q, (struct sockaddr *)&rx_sa, sizeof(rx_sa), (const uint8_t *)"x", 1), 0);
    cr_assert_eq(gw_udp_txq_flush(&q), 0, "no socket yet (fd -1): nothing sent");
    cr_assert_eq(q.n, 0, "and nothing kept for later");
    q.fd = tx;
    cr_assert_eq(
        gw_udp_txq_add(&q, (struct sockaddr *)&rx_sa, sizeof(rx_sa), (const uint8_t *)"y", 1), 0);
    cr_assert_eq(gw_udp_txq_flush(&q), 1);
    uint8_t got[8];
    cr_assert_eq(recv_one(rx, got, sizeof(got)), 1);
    cr_assert_eq(got[0], 'y');
    close(rx);
    close(tx);
}

/* Two sockets on one port (every frontend on the client port, S1.4): the
 * second bind succeeds only because both set SO_REUSEPORT. */
Test(udp, bind_shared_twice_on_one_port)
{
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse("127.0.0.1:0", 0, &ep), 0);
    int a = gw_udp_bind_shared(&ep, GW_UDP_REUSEADDR, 1 << 16);
    cr_assert_geq(a, 0, "first bind: %s", strerror(-a));
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);
    cr_assert_eq(getsockname(a, (struct sockaddr *)&sin, &sl), 0);
    ep.port = ntohs(sin.sin_port);
    int b = gw_udp_bind_shared(&ep, GW_UDP_REUSEADDR, 0);
    cr_assert_geq(b, 0, "second bind on port %u: %s", ep.port, strerror(-b));
    cr_assert(fcntl(b, F_GETFL) & O_NONBLOCK, "non-blocking, for libuv");
    cr_assert(fcntl(b, F_GETFD) & FD_CLOEXEC, "not inherited by the roles the supervisor forks");
    /* A plain socket on that port is refused: the sharing is what the flag gave. */
    int c = socket(AF_INET, SOCK_DGRAM, 0);
    cr_assert_geq(c, 0);
    cr_assert_neq(bind(c, (struct sockaddr *)&sin, sizeof(sin)), 0);
    cr_assert_eq(errno, EADDRINUSE);
    close(a);
    close(b);
    close(c);
}

Test(udp, bind_shared_v6only_and_errors)
{
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse("[::1]:0", 0, &ep), 0);
    int fd = gw_udp_bind_shared(&ep, GW_UDP_V6ONLY, 0);
    if (fd == -EADDRNOTAVAIL || fd == -EAFNOSUPPORT)
        cr_skip_test("no IPv6 loopback here");
    cr_assert_geq(fd, 0, "%s", strerror(-fd));
    int on = 0;
    socklen_t ol = sizeof(on);
    cr_assert_eq(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, &ol), 0);
    cr_assert_eq(on, 1);
    close(fd);
    /* An address this host does not have: a negative errno, nothing left open. */
    cr_assert_eq(gw_ep_parse("192.0.2.1:0", 0, &ep), 0);
    cr_assert_eq(gw_udp_bind_shared(&ep, 0, 0), -EADDRNOTAVAIL);
}
