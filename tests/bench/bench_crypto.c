/* SPDX-License-Identifier: MIT */
/* bench_crypto.c - mesh frame seal/open rate on one core (SPEC S7.1).
 *
 * Prints figures, asserts nothing (STYLE: speed lives in tests/bench/).
 * Build twice to compare the per-thread context cache with a context per
 * call:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Icommon -Imeshio meshio/mesh_crypto.c \
 *      common/gw_error.c tests/bench/bench_crypto.c -llmdb -lcrypto
 *   ... the same with -DMESH_CRYPTO_NO_CTX_CACHE
 * Usage: bench_crypto [seconds per measurement, default 1] */
#include "mesh_crypto.h"

#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MSG 100

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const uint8_t key[MESH_KEY_LEN] = { 0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
                                           0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c };
static const uint8_t mac[GW_MAC_LEN] = { 0x00, 0x12, 0x4b, 0x00, 0x0a, 0x0b, 0x0c, 0x0d };

enum bench_kind { BENCH_SEAL, BENCH_OPEN, BENCH_FORGED };

/* Runs kind for about secs seconds; returns operations per second, or -1 if
 * any call gave an unexpected result. */
static double bench(enum bench_kind kind, double secs)
{
    uint8_t pt[BENCH_MSG], frame[MESH_MAX_FRAME], out[MESH_MAX_FRAME];
    size_t flen = 0, olen = 0;
    uint64_t seq = 0, n = 0;
    memset(pt, 0x5a, sizeof(pt));
    if (mesh_seal(key, mac, MESH_DIR_FROM_DEVICE, 1, pt, sizeof(pt), frame, sizeof(frame), &flen) !=
        0)
        return -1;
    if (kind == BENCH_FORGED)
        frame[flen - 1] ^= 1;

    double t0 = now_s(), t1 = t0;
    for (;;) {
        for (int i = 0; i < 1024; i++, n++) {
            int rc;
            if (kind == BENCH_SEAL)
                rc = mesh_seal(key, mac, MESH_DIR_TO_DEVICE, n, pt, sizeof(pt), frame,
                               sizeof(frame), &flen);
            else
                rc = mesh_open(key, mac, MESH_DIR_FROM_DEVICE, frame, flen, out, sizeof(out), &olen,
                               &seq);
            if (rc != (kind == BENCH_FORGED ? GW_EAUTH : 0))
                return -1;
        }
        t1 = now_s();
        if (t1 - t0 >= secs)
            break;
    }
    return (double)n / (t1 - t0);
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (!(secs > 0))
        secs = 1.0;

    /* One core: pin to the CPU we start on, best effort. */
    cpu_set_t set;
    CPU_ZERO(&set);
    int cpu = sched_getcpu();
    CPU_SET(cpu >= 0 ? cpu : 0, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0)
        perror("sched_setaffinity (continuing unpinned)");

#ifdef MESH_CRYPTO_NO_CTX_CACHE
    const char *variant = "context per call";
#else
    const char *variant = "per-thread cached context";
#endif
    static const char *const names[] = { "seal", "open", "open (bad tag)" };
    printf("mesh_crypto AES-128-CCM, %d-byte plaintext, %s, one thread\n", BENCH_MSG, variant);
    for (int k = BENCH_SEAL; k <= BENCH_FORGED; k++) {
        double rate = bench((enum bench_kind)k, secs);
        if (rate < 0) {
            fprintf(stderr, "%s: unexpected result\n", names[k]);
            return 1;
        }
        printf("  %-15s %10.0f /s  %7.3f us/op\n", names[k], rate, 1e6 / rate);
    }
    mesh_crypto_thread_cleanup();
    return 0;
}
