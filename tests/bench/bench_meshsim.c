/* SPDX-License-Identifier: MIT */
/* bench_meshsim.c - how fast the mesh simulator answers (SPEC S7.3).
 *
 * Forks a child that runs meshsim_main() on 64 generated devices (in a
 * mkdtemp directory, on a loopback range derived from our pid so parallel
 * runs do not collide), then keeps a window of CON GET /value requests
 * outstanding from one socket to the normal devices (Milli ones serialize by
 * design) for a few seconds. Prints answered requests/s and latency
 * percentiles; asserts nothing (STYLE: speed lives in tests/bench/).
 *
 * usage: bench_meshsim [seconds=3] [window=64] [latency=1-5] */
#include "meshsim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NDEV 64
#define TIMEOUT_US 1000000u

static uint64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint32_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i] / 1000.0;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    int window = argc > 2 ? atoi(argv[2]) : 64;
    const char *latency = argc > 3 ? argv[3] : "1-5";
    if (secs <= 0 || window < 1 || window > 4096) {
        fprintf(stderr, "usage: bench_meshsim [seconds] [window 1..4096] [latency MIN-MAX]\n");
        return 2;
    }
    char dir[] = "/tmp/bench_meshsim.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char devfile[128], ready[128], base[32];
    snprintf(devfile, sizeof(devfile), "%s/devices.csv", dir);
    snprintf(ready, sizeof(ready), "%s/ready", dir);
    int net = 100 + (int)(getpid() % 150);
    snprintf(base, sizeof(base), "127.%d.0.1", net);

    pid_t child = fork();
    if (child < 0) {
        perror("fork");
        return 1;
    }
    if (child == 0) {
        char *av[] = {
            "meshsim",      "--generate", "64",        "--base",        base,      "--out", devfile,
            "--ready-file", ready,        "--latency", (char *)latency, "--quiet", NULL
        };
        _exit(meshsim_main((int)(sizeof(av) / sizeof(av[0])) - 1, av));
    }
    int rc = 1;
    uint32_t *lat = NULL;
    int fd = -1;
    for (int i = 0; i < 500 && access(ready, F_OK) != 0; i++) {
        int st;
        if (waitpid(child, &st, WNOHANG) == child) {
            fprintf(stderr, "meshsim exited early (status %d)\n", st);
            child = -1;
            goto out;
        }
        usleep(20000);
    }
    if (access(ready, F_OK) != 0) {
        fprintf(stderr, "meshsim not ready after 10 s\n");
        goto out;
    }

    struct sockaddr_in dst[NDEV];
    int ntarget = 0;
    for (int i = 0; i < NDEV; i++) {
        if ((i + 1) % 4 == 0)
            continue; /* every 4th generated device is a Milli */
        struct sockaddr_in *a = &dst[ntarget++];
        memset(a, 0, sizeof(*a));
        a->sin_family = AF_INET;
        a->sin_port = htons(5683);
        a->sin_addr.s_addr = htonl((127u << 24 | (uint32_t)net << 16) + 1u + (uint32_t)i);
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in me = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int buf = 4 << 20;
    if (fd < 0 || bind(fd, (struct sockaddr *)&me, sizeof(me)) != 0) {
        perror("socket/bind");
        goto out;
    }
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));

    static uint64_t sent_at[65536];
    size_t nlat = 0, caplat = 1 << 16;
    lat = malloc(caplat * sizeof(*lat));
    if (!lat)
        goto out;
    uint64_t sent = 0, answered = 0, timeouts = 0, other = 0, send_fail = 0;
    int outstanding = 0, next_dev = 0;
    uint16_t mid = (uint16_t)getpid();
    uint64_t t0 = now_us(), end = t0 + (uint64_t)(secs * 1e6), last_scan = t0;
    for (;;) {
        uint64_t now = now_us();
        if (now >= end)
            break;
        while (outstanding < window) {
            uint16_t m = mid++;
            if (sent_at[m])
                continue;
            uint8_t req[16] = { 0x42,
                                0x01,
                                (uint8_t)(m >> 8),
                                (uint8_t)m,
                                (uint8_t)(m >> 8),
                                (uint8_t)m,
                                0xb5,
                                'v',
                                'a',
                                'l',
                                'u',
                                'e' };
            const struct sockaddr_in *a = &dst[next_dev++ % ntarget];
            if (sendto(fd, req, 12, 0, (const struct sockaddr *)a, sizeof(*a)) != 12) {
                send_fail++;
                break;
            }
            sent_at[m] = now_us();
            sent++;
            outstanding++;
        }
        struct pollfd p = { fd, POLLIN, 0 };
        (void)poll(&p, 1, 5);
        uint8_t rb[2048];
        ssize_t n;
        while ((n = recv(fd, rb, sizeof(rb), 0)) >= 4) {
            uint16_t m = (uint16_t)(rb[2] << 8 | rb[3]);
            uint8_t type = (rb[0] >> 4) & 3;
            if (type != 2 || rb[1] != 0x45 || !sent_at[m]) {
                other++;
                continue;
            }
            uint64_t d = now_us() - sent_at[m];
            sent_at[m] = 0;
            outstanding--;
            answered++;
            if (nlat == caplat) {
                uint32_t *nl = realloc(lat, 2 * caplat * sizeof(*lat));
                if (!nl)
                    continue;
                lat = nl;
                caplat *= 2;
            }
            lat[nlat++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
        }
        now = now_us();
        if (now - last_scan > 100000) {
            last_scan = now;
            for (size_t i = 0; i < 65536; i++) {
                if (sent_at[i] && now - sent_at[i] > TIMEOUT_US) {
                    sent_at[i] = 0;
                    outstanding--;
                    timeouts++;
                }
            }
        }
    }
    double el = (double)(now_us() - t0) / 1e6;
    qsort(lat, nlat, sizeof(*lat), cmp_u32);
    printf("bench_meshsim: 64 devices (%d normal targeted), device latency %s ms, window %d, "
           "one socket, %.1f s\n",
           ntarget, latency, window, el);
    printf("  sent %llu, answered %llu (%.0f req/s), timeouts %llu, other %llu, "
           "send failures %llu\n",
           (unsigned long long)sent, (unsigned long long)answered, (double)answered / el,
           (unsigned long long)timeouts, (unsigned long long)other, (unsigned long long)send_fail);
    printf("  latency ms: p50 %.3f  p90 %.3f  p99 %.3f  max %.3f\n", pct(lat, nlat, 0.50),
           pct(lat, nlat, 0.90), pct(lat, nlat, 0.99), nlat ? lat[nlat - 1] / 1000.0 : 0.0);
    printf("  (client and simulator share a 2-core VM with other work; figures are indicative)\n");
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    free(lat);
    if (child > 0) {
        kill(child, SIGTERM);
        int st;
        if (waitpid(child, &st, 0) == child && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            fprintf(stderr, "meshsim child ended with status %d\n", st);
    }
    unlink(devfile);
    unlink(ready);
    rmdir(dir);
    return rc;
}
