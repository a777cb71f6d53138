/* SPDX-License-Identifier: MIT */
/* bench_ring.c - figures for the shared-memory rings (SPEC S1.2: "idle
 * processes use no CPU (no busy-spinning); a record crosses a ring in
 * microseconds"). Prints figures, asserts nothing about speed.
 *
 * 1. Throughput: a producer process and a consumer process on ring
 *    gw_ring_fe_to_sch(0) of a real segment, 1 KiB records, about 2.5 s.
 *    The consumer uses the real doorbell protocol when the ring is empty;
 *    the producer yields when it is full.
 * 2. Wake-up latency: the consumer sleeps in poll() on the FIFO doorbell;
 *    the producer sends one record carrying a CLOCK_MONOTONIC timestamp
 *    every ~1 ms and rings the bell; the consumer measures the delay.
 *
 * Usage: bench_ring [seconds] [latency samples] */
#include "gw_config.h"
#include "gw_error.h"
#include "gw_ring.h"
#include "gw_shm.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REC_SIZE 1024
#define MAX_SAMPLES 100000

struct shared {
    /* Throughput. */
    _Atomic int ready; /* consumers attached */
    uint64_t tp_records, tp_bytes, tp_ns, tp_bad, tp_sleeps, tp_full;
    /* Latency. */
    uint32_t lat_n;
    uint64_t lat_ns[MAX_SAMPLES];
    uint64_t lat_bad, lat_timeouts;
};

static struct gw_config cfg;
static struct shared *sh;
static char fifo_path[GW_CFG_STR + 32];

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct side {
    struct gw_shm shm;
    struct gw_ring *r;
    struct gw_bell *bell;
    int fd;
};

static void attach(struct side *s)
{
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char err[512];
    int rc = gw_shm_open(&cfg, false, &s->shm, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "gw_shm_open: %s\n", err);
        _exit(2);
    }
    s->r = gw_shm_ring(&s->shm, gw_ring_fe_to_sch(0));
    s->bell = gw_shm_bell(&s->shm, s->r->bell);
    s->fd = gw_bell_fifo_open(fifo_path);
    if (s->fd < 0) {
        fprintf(stderr, "gw_bell_fifo_open(%s): %s\n", fifo_path, gw_strerror(s->fd));
        _exit(2);
    }
}

/* Consumer wait: the doorbell protocol of gw_ring.h. Returns false on timeout. */
static bool consumer_wait(struct side *s, int timeout_ms, uint64_t *sleeps)
{
    gw_bell_prepare_sleep(s->bell);
    if (!gw_ring_empty(s->r)) {
        gw_bell_awake(s->bell);
        return true;
    }
    (*sleeps)++;
    struct pollfd pfd = { .fd = s->fd, .events = POLLIN };
    int n = poll(&pfd, 1, timeout_ms);
    gw_bell_awake(s->bell);
    gw_bell_fifo_drain(s->fd);
    return n > 0;
}

static void producer_push(struct side *s, const void *rec, uint32_t len, uint64_t *full)
{
    while (gw_ring_push(s->r, rec, len) == GW_EFULL) {
        (*full)++;
        if (gw_bell_should_wake(s->bell))
            gw_bell_fifo_kick(s->fd);
        sched_yield();
    }
    if (gw_bell_should_wake(s->bell))
        gw_bell_fifo_kick(s->fd);
}

/* ---- 1. Throughput. A record: seq (8) then filler up to 1 KiB; an empty
 * record ends the run. ---- */

static void tp_producer(double seconds)
{
    struct side s;
    attach(&s);
    gw_ring_claim_producer(s.r, (uint32_t)getpid());
    while (atomic_load(&sh->ready) < 1)
        sched_yield();
    uint8_t rec[REC_SIZE];
    memset(rec, 0xa5, sizeof(rec));
    uint64_t full = 0, end = now_ns() + (uint64_t)(seconds * 1e9);
    for (uint64_t seq = 0;; seq++) {
        if ((seq & 1023) == 0 && now_ns() > end)
            break;
        memcpy(rec, &seq, 8);
        producer_push(&s, rec, sizeof(rec), &full);
    }
    producer_push(&s, rec, 0, &full);
    sh->tp_full = full;
    _exit(0);
}

static void tp_consumer(void)
{
    struct side s;
    attach(&s);
    gw_ring_claim_consumer(s.r, (uint32_t)getpid());
    atomic_store(&sh->ready, 1);
    uint8_t rec[GW_RING_SLOT];
    uint64_t n = 0, bytes = 0, bad = 0, sleeps = 0, t0 = 0, expect = 0;
    for (;;) {
        int len = gw_ring_pop(s.r, rec, sizeof(rec));
        if (len == GW_EEMPTY) {
            consumer_wait(&s, 1000, &sleeps);
            continue;
        }
        if (len == 0)
            break;
        if (n == 0)
            t0 = now_ns();
        uint64_t seq;
        memcpy(&seq, rec, 8);
        if (len != REC_SIZE || seq != expect)
            bad++;
        expect = seq + 1;
        n++;
        bytes += (uint64_t)len;
    }
    sh->tp_ns = now_ns() - t0;
    sh->tp_records = n;
    sh->tp_bytes = bytes;
    sh->tp_bad = bad;
    sh->tp_sleeps = sleeps;
    _exit(0);
}

/* ---- 2. Wake-up latency. ---- */

static void lat_producer(uint32_t samples)
{
    struct side s;
    attach(&s);
    gw_ring_claim_producer(s.r, (uint32_t)getpid());
    while (atomic_load(&sh->ready) < 2)
        sched_yield();
    uint64_t full = 0;
    for (uint32_t i = 0; i <= samples; i++) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
        uint64_t t = now_ns();
        /* The last record is empty and ends the run. */
        producer_push(&s, &t, i < samples ? sizeof(t) : 0, &full);
    }
    _exit(0);
}

static void lat_consumer(void)
{
    struct side s;
    attach(&s);
    gw_ring_claim_consumer(s.r, (uint32_t)getpid());
    atomic_store(&sh->ready, 2);
    uint64_t sleeps = 0;
    for (;;) {
        uint64_t t;
        int len = gw_ring_pop(s.r, &t, sizeof(t));
        if (len == GW_EEMPTY) {
            if (!consumer_wait(&s, 2000, &sleeps))
                sh->lat_timeouts++;
            continue;
        }
        uint64_t d = now_ns();
        if (len == 0)
            break;
        if (len != sizeof(t) || d < t) {
            sh->lat_bad++;
            continue;
        }
        if (sh->lat_n < MAX_SAMPLES)
            sh->lat_ns[sh->lat_n++] = d - t;
    }
    _exit(0);
}

/* ---- Driver. ---- */

static pid_t spawn(void (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        exit(1);
    }
    if (pid == 0)
        fn();
    return pid;
}

static double g_seconds = 2.5;
static uint32_t g_samples = 2000;
static void run_tp_producer(void)
{
    tp_producer(g_seconds);
}
static void run_lat_producer(void)
{
    lat_producer(g_samples);
}

static int wait_child(pid_t pid, const char *what)
{
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "%s (pid %d) failed: status %#x\n", what, (int)pid, st);
        return 1;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        g_seconds = atof(argv[1]);
    if (argc > 2)
        g_samples = (uint32_t)strtoul(argv[2], NULL, 10);
    if (g_seconds <= 0 || g_seconds > 60 || g_samples == 0 || g_samples > MAX_SAMPLES) {
        fprintf(stderr, "usage: %s [seconds (0-60]] [latency samples (1-%d)]\n", argv[0],
                MAX_SAMPLES);
        return 2;
    }

    char dir[] = "/tmp/gwbenchXXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    gw_config_defaults(&cfg);
    snprintf(cfg.instance, sizeof(cfg.instance), "bench%ld", (long)getpid());
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    cfg.max_txn = 16;
    struct gw_shm shm;
    char err[512];
    int rc = gw_shm_open(&cfg, true, &shm, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "gw_shm_open: %s\n", err);
        return 1;
    }
    struct gw_ring *r = gw_shm_ring(&shm, gw_ring_fe_to_sch(0));
    gw_bell_path(&cfg, r->bell, fifo_path, sizeof(fifo_path));
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        perror("mmap");
        return 1;
    }

    printf(
        "bench_ring: machine: nproc=%ld (2-core VM shared with other jobs; figures are indicative, "
        "not a target)\n",
        sysconf(_SC_NPROCESSORS_ONLN));
    printf("ring: %u slots x %u bytes, segment /dev/shm%s\n", r->size, r->slot_size, shm.name);

    int fails = 0;
    pid_t c = spawn(tp_consumer);
    pid_t p = spawn(run_tp_producer);
    fails += wait_child(p, "throughput producer");
    fails += wait_child(c, "throughput consumer");
    double secs = (double)sh->tp_ns / 1e9;
    if (secs > 0)
        printf(
            "throughput: %llu records of %d B in %.2f s: %.0f records/s, %.1f MB/s "
            "(producer found the ring full %llu times, consumer slept %llu times, %llu out of order)\n",
            (unsigned long long)sh->tp_records, REC_SIZE, secs, (double)sh->tp_records / secs,
            (double)sh->tp_bytes / secs / 1e6, (unsigned long long)sh->tp_full,
            (unsigned long long)sh->tp_sleeps, (unsigned long long)sh->tp_bad);

    uint32_t rings0 = atomic_load(&gw_shm_bell(&shm, r->bell)->rings);
    c = spawn(lat_consumer);
    p = spawn(run_lat_producer);
    fails += wait_child(p, "latency producer");
    fails += wait_child(c, "latency consumer");
    uint32_t n = sh->lat_n;
    if (n > 0) {
        qsort(sh->lat_ns, n, sizeof(uint64_t), cmp_u64);
        uint64_t sum = 0;
        for (uint32_t i = 0; i < n; i++)
            sum += sh->lat_ns[i];
        printf(
            "wake-up latency (idle consumer in poll() on the FIFO doorbell, 1 record per ~1 ms): "
            "%u samples: p50 %.1f us, p99 %.1f us, max %.1f us, mean %.1f us "
            "(%u doorbell writes, %llu poll timeouts)\n",
            n, sh->lat_ns[n / 2] / 1e3, sh->lat_ns[(uint64_t)n * 99 / 100] / 1e3,
            sh->lat_ns[n - 1] / 1e3, (double)sum / n / 1e3,
            atomic_load(&gw_shm_bell(&shm, r->bell)->rings) - rings0,
            (unsigned long long)sh->lat_timeouts);
    }

    gw_shm_close(&shm);
    if (gw_shm_unlink(&cfg) != 0)
        fails++;
    unlink(fifo_path);
    rmdir(dir);
    munmap(sh, sizeof(*sh));
    return fails != 0;
}
