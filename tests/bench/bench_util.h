/* SPDX-License-Identifier: MIT */
/* bench_util.h - the set-up bench_echo and bench_relay share (the two
 * floors run-compare.sh measures the gateway against): an IPv4
 * "ADDR:PORT" argument, a non-blocking UDP socket with a large receive
 * buffer, and TERM/INT setting a stop flag. Static inline: a benchmark
 * uses what it needs. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static volatile sig_atomic_t bench_stop;

static inline void bench__on_signal(int sig)
{
    (void)sig;
    bench_stop = 1;
}

/* TERM and INT set bench_stop. No SA_RESTART: a blocked poll returns EINTR. */
static inline void bench_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = bench__on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}

/* "A.B.C.D:PORT" into *a; 0 or -1. */
static inline int bench_parse_addr(const char *s, struct sockaddr_in *a)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(a, 0, sizeof(*a));
    a->sin_family = AF_INET;
    int port = atoi(colon + 1);
    if (port < 0 || port > 65535 || inet_pton(AF_INET, host, &a->sin_addr) != 1)
        return -1;
    a->sin_port = htons((uint16_t)port);
    return 0;
}

/* A non-blocking UDP socket bound to a (port 0: any), with a 4 MiB receive
 * buffer asked for; the descriptor or -1 (errno set). */
static inline int bench_udp_bind(const struct sockaddr_in *a)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    if (bind(fd, (const struct sockaddr *)a, sizeof(*a)) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    int rb = 4 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rb, sizeof(rb));
    return fd;
}

#endif
