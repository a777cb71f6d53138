/* SPDX-License-Identifier: MIT */
/* test_ring.c - SPSC rings, doorbells and the shared segment (SPEC S1.2, S1.3).
 *
 * S1.2: processes are linked by lock-free single-producer/single-consumer
 * rings in shared memory; idle consumers sleep on a doorbell. S1.3: ring
 * contents live in shared memory so that they outlive a process. The
 * crash behaviour over real processes is in tests/stress/test_ring_procs.c;
 * here we check the ring's contract on private memory and with two threads
 * (run this file under TSan too). */
#include "gw_config.h"
#include "gw_error.h"
#include "gw_ring.h"
#include "gw_shm.h"

/* Criterion aborts at start-up under TSan ("Could not initialize inheritable
 * arena", Snaipe/Criterion#274: BoxFort maps its arena at random addresses
 * that TSan reserves). A TSan build therefore compiles this file into a plain
 * program that runs the two-thread tests only; everything else runs under
 * criterion in the normal and ASan/UBSan builds. */
#if defined(__SANITIZE_THREAD__)
#define GW_TEST_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GW_TEST_PLAIN 1
#endif
#endif

#ifndef GW_TEST_PLAIN
#include <criterion/criterion.h>
#endif

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifndef GW_TEST_PLAIN
/* A ring on private memory; freed by ring_free(). */
static struct gw_ring *ring_new(uint32_t size, uint32_t slot_size)
{
    size_t bytes = gw_ring_bytes(size, slot_size);
    bytes = (bytes + GW_CACHELINE - 1) / GW_CACHELINE * GW_CACHELINE;
    struct gw_ring *r = aligned_alloc(GW_CACHELINE, bytes);
    cr_assert_not_null(r);
    memset(r, 0, bytes);
    gw_ring_format(r, size, slot_size, 0);
    return r;
}

static void ring_free(struct gw_ring *r)
{
    free(r);
}

/* Same arithmetic as gw_ring.c: slots follow the three-line header. */
static uint8_t *ring_slot(struct gw_ring *r, uint32_t idx)
{
    return (uint8_t *)(r + 1) + (size_t)(idx & r->mask) * r->slot_size;
}

/* S1.2: a consumer that finds nothing gets GW_EEMPTY at once, never blocks. */
Test(ring, empty_pop_returns_eempty)
{
    struct gw_ring *r = ring_new(8, 64);
    uint8_t buf[64];
    cr_assert_eq(gw_ring_pop(r, buf, sizeof(buf)), GW_EEMPTY);
    cr_assert(gw_ring_empty(r));
    cr_assert_eq(gw_ring_count(r), 0);
    ring_free(r);
}

/* S1.2: the producer never waits for the consumer; a full ring says so. */
Test(ring, push_until_full_returns_efull)
{
    struct gw_ring *r = ring_new(8, 64);
    uint32_t v = 0;
    for (v = 0; v < 8; v++)
        cr_assert_eq(gw_ring_push(r, &v, sizeof(v)), 0, "push %u", v);
    cr_assert_eq(gw_ring_count(r), 8);
    cr_assert_eq(gw_ring_push(r, &v, sizeof(v)), GW_EFULL);
    cr_assert_eq(gw_ring_push2(r, &v, sizeof(v), &v, sizeof(v)), GW_EFULL);
    /* One pop frees exactly one slot. */
    uint32_t out;
    cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), (int)sizeof(out));
    cr_assert_eq(out, 0);
    cr_assert_eq(gw_ring_push(r, &v, sizeof(v)), 0);
    cr_assert_eq(gw_ring_push(r, &v, sizeof(v)), GW_EFULL);
    ring_free(r);
}

/* S1.2: records come out in the order they went in, with their lengths. */
Test(ring, fifo_order_and_lengths)
{
    struct gw_ring *r = ring_new(16, 64);
    uint8_t buf[64];
    for (int round = 0; round < 5; round++) {
        for (uint8_t i = 0; i < 11; i++) {
            uint8_t rec[16];
            memset(rec, (uint8_t)(round * 16 + i), sizeof(rec));
            cr_assert_eq(gw_ring_push(r, rec, i), 0);
        }
        for (uint8_t i = 0; i < 11; i++) {
            int n = gw_ring_pop(r, buf, sizeof(buf));
            cr_assert_eq(n, i, "round %d record %u: length %d", round, i, n);
            for (int k = 0; k < n; k++)
                cr_assert_eq(buf[k], (uint8_t)(round * 16 + i));
        }
        cr_assert_eq(gw_ring_pop(r, buf, sizeof(buf)), GW_EEMPTY);
    }
    ring_free(r);
}

/* A slot holds a 4-byte length and slot_size - 4 bytes; more is refused
 * without touching the ring, also when the two parts of push2 would wrap
 * around 2^32 when added. */
Test(ring, too_big_record_is_refused)
{
    struct gw_ring *r = ring_new(8, 64);
    uint8_t rec[128] = { 0 };
    cr_assert_eq(gw_ring_push(r, rec, 61), GW_ETOOBIG);
    cr_assert_eq(gw_ring_push2(r, rec, 30, rec, 31), GW_ETOOBIG);
    cr_assert_eq(gw_ring_push2(r, rec, UINT32_MAX, rec, 2), GW_ETOOBIG);
    cr_assert_eq(gw_ring_push2(r, rec, 2, rec, UINT32_MAX), GW_ETOOBIG);
    cr_assert(gw_ring_empty(r));
    cr_assert_eq(gw_ring_push(r, rec, 60), 0);
    cr_assert_eq(gw_ring_pop(r, rec, sizeof(rec)), 60);
    ring_free(r);
}

/* S1.2: head and tail are free-running uint32_t; the fill level and the
 * full test stay right when they wrap at 2^32. */
Test(ring, indices_wrap_across_2_32)
{
    struct gw_ring *r = ring_new(8, 64);
    atomic_store(&r->head, UINT32_MAX - 5);
    atomic_store(&r->tail, UINT32_MAX - 5);
    cr_assert(gw_ring_empty(r));
    uint32_t next_in = 0, next_out = 0, out;
    /* Fill completely across the wrap: tail goes from 2^32-6 to 2. */
    for (int i = 0; i < 8; i++, next_in++)
        cr_assert_eq(gw_ring_push(r, &next_in, sizeof(next_in)), 0);
    cr_assert_eq(gw_ring_count(r), 8);
    cr_assert_eq(gw_ring_push(r, &next_in, sizeof(next_in)), GW_EFULL);
    cr_assert_lt(atomic_load(&r->tail), atomic_load(&r->head), "tail wrapped, head did not");
    while (next_out < 8) {
        cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), (int)sizeof(out));
        cr_assert_eq(out, next_out++);
    }
    /* Then interleave up to 20 records in all, 3 in and 3 out. */
    while (next_in < 20) {
        for (int i = 0; i < 3 && next_in < 20; i++, next_in++)
            cr_assert_eq(gw_ring_push(r, &next_in, sizeof(next_in)), 0);
        cr_assert_eq(gw_ring_count(r), next_in - next_out);
        while (next_out < next_in) {
            cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), (int)sizeof(out));
            cr_assert_eq(out, next_out++);
        }
    }
    cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), GW_EEMPTY);
    cr_assert_eq(atomic_load(&r->head), (uint32_t)(UINT32_MAX - 5 + 20));
    ring_free(r);
}

/* push2 writes an envelope and a body into one record, back to back. */
Test(ring, push2_concatenates)
{
    struct gw_ring *r = ring_new(8, 64);
    uint8_t buf[64];
    cr_assert_eq(gw_ring_push2(r, "head:", 5, "body", 4), 0);
    cr_assert_eq(gw_ring_push2(r, "only-a", 6, NULL, 0), 0);
    cr_assert_eq(gw_ring_push2(r, NULL, 0, "only-b", 6), 0);
    cr_assert_eq(gw_ring_push2(r, NULL, 0, NULL, 0), 0);
    uint8_t a[30], b[30];
    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    cr_assert_eq(gw_ring_push2(r, a, 30, b, 30), 0); /* exactly slot_size - 4 */

    cr_assert_eq(gw_ring_pop(r, buf, sizeof(buf)), 9);
    cr_assert_arr_eq(buf, "head:body", 9);
    cr_assert_eq(gw_ring_pop(r, buf, sizeof(buf)), 6);
    cr_assert_arr_eq(buf, "only-a", 6);
    cr_assert_eq(gw_ring_pop(r, buf, sizeof(buf)), 6);
    cr_assert_arr_eq(buf, "only-b", 6);
    cr_assert_eq(gw_ring_pop(r, buf, sizeof(buf)), 0);
    cr_assert_eq(gw_ring_pop(r, buf, sizeof(buf)), 60);
    cr_assert_arr_eq(buf, a, 30);
    cr_assert_arr_eq(buf + 30, b, 30);
    ring_free(r);
}

/* S1.3: ring contents outlive processes, so a slot may hold garbage after
 * memory corruption; a length beyond the slot is reported and the slot
 * skipped, and the records after it still arrive. */
Test(ring, corrupt_length_is_reported_and_skipped)
{
    struct gw_ring *r = ring_new(8, 64);
    uint32_t v, out;
    for (v = 1; v <= 3; v++)
        cr_assert_eq(gw_ring_push(r, &v, sizeof(v)), 0);
    uint32_t bad = 61; /* slot_size - 4 + 1 */
    memcpy(ring_slot(r, atomic_load(&r->head) + 1), &bad, 4);
    bad = UINT32_MAX;
    v = 4;
    cr_assert_eq(gw_ring_push(r, &v, sizeof(v)), 0);
    memcpy(ring_slot(r, atomic_load(&r->head) + 3), &bad, 4);

    cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), (int)sizeof(out));
    cr_assert_eq(out, 1);
    cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), GW_EBADMSG);
    cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), (int)sizeof(out));
    cr_assert_eq(out, 3);
    cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), GW_EBADMSG);
    cr_assert_eq(gw_ring_pop(r, &out, sizeof(out)), GW_EEMPTY);
    ring_free(r);
}

/* S1.2 (no busy-spinning, coalesced wake-ups): a producer is told to ring
 * only when the consumer announced it sleeps, and only once per sleep. */
Test(bell, should_wake_once_per_sleep)
{
    struct gw_bell b;
    memset(&b, 0, sizeof(b));
    cr_assert_not(gw_bell_should_wake(&b), "consumer is awake");
    cr_assert_not(gw_bell_should_wake(&b));

    gw_bell_prepare_sleep(&b);
    cr_assert(gw_bell_should_wake(&b), "consumer sleeps: wake it");
    cr_assert_not(gw_bell_should_wake(&b), "already woken: coalesce");
    cr_assert_eq(atomic_load(&b.rings), 1);

    /* A consumer that re-checks, finds work and stays awake is not rung. */
    gw_bell_prepare_sleep(&b);
    gw_bell_awake(&b);
    cr_assert_not(gw_bell_should_wake(&b));

    gw_bell_prepare_sleep(&b);
    cr_assert(gw_bell_should_wake(&b));
    cr_assert_eq(atomic_load(&b.rings), 2);
}

static int poll_in(int fd, int timeout_ms)
{
    struct pollfd p = { .fd = fd, .events = POLLIN };
    int n = poll(&p, 1, timeout_ms);
    return n > 0 && (p.revents & POLLIN);
}

/* S1.2: the doorbell is a FIFO in data_dir that both sides open the same
 * way; a kick makes poll() readable, a drain empties it, and kicking a full
 * FIFO never blocks the producer. */
Test(bell, fifo_kick_wakes_and_drain_empties)
{
    char dir[] = "/tmp/gwringXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/bell-test", dir);

    int cons = gw_bell_fifo_open(path);
    cr_assert_geq(cons, 0, "open: %s", gw_strerror(cons));
    int prod = gw_bell_fifo_open(path); /* already exists: EEXIST is fine */
    cr_assert_geq(prod, 0, "open: %s", gw_strerror(prod));
    cr_assert(fcntl(prod, F_GETFL) & O_NONBLOCK);

    cr_assert_not(poll_in(cons, 0));
    gw_bell_fifo_kick(prod);
    gw_bell_fifo_kick(prod);
    cr_assert(poll_in(cons, 1000));
    gw_bell_fifo_drain(cons);
    cr_assert_not(poll_in(cons, 0));

    /* Fill the pipe buffer (64 KiB on Linux) and more: kick must return. */
    for (int i = 0; i < 70000; i++)
        gw_bell_fifo_kick(prod);
    cr_assert(poll_in(cons, 0));
    int rounds = 0;
    while (poll_in(cons, 0) && rounds < 100) {
        gw_bell_fifo_drain(cons);
        rounds++;
    }
    cr_assert_lt(rounds, 100, "drain never emptied the FIFO");
    cr_assert_not(poll_in(cons, 0));

    /* A path in a missing directory is an error, not a crash. */
    char bad[160];
    snprintf(bad, sizeof(bad), "%s/missing/bell", dir);
    cr_assert_eq(gw_bell_fifo_open(bad), -ENOENT);

    close(prod);
    close(cons);
    cr_assert_eq(unlink(path), 0);
    cr_assert_eq(rmdir(dir), 0);
}

#endif /* !GW_TEST_PLAIN */

/* ---- Two threads, one ring (run under TSan as well). ----
 * The bodies are plain functions returning a failure count, so that a TSan
 * build can run them without criterion (see the end of the file). */

#define SPSC_RECORDS 2000000u
#define BELL_BURSTS 5000u

struct spsc {
    struct gw_ring *r;
    uint64_t bad_len, bad_sum, bad_seq, bad_pop;
    uint64_t received;
};

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* Record: seq (8) | payload (seq % 41 bytes, from seq) | checksum (8). */
static uint32_t rec_build(uint64_t seq, uint8_t *rec)
{
    uint32_t n = (uint32_t)(seq % 41);
    memcpy(rec, &seq, 8);
    for (uint32_t i = 0; i < n; i++)
        rec[8 + i] = (uint8_t)(seq * 31 + i);
    uint64_t sum = fnv1a(0xcbf29ce484222325ull, rec, 8 + n);
    memcpy(rec + 8 + n, &sum, 8);
    return 16 + n;
}

/* Checks one popped record against `expect`; returns the seq it holds. */
static uint64_t rec_check(const uint8_t *rec, int n, uint64_t expect, struct spsc *t)
{
    if (n < 16) {
        t->bad_pop++;
        return expect;
    }
    uint64_t seq, sum;
    memcpy(&seq, rec, 8);
    if (seq != expect)
        t->bad_seq++;
    if ((uint32_t)n != 16 + seq % 41)
        t->bad_len++;
    memcpy(&sum, rec + n - 8, 8);
    if (sum != fnv1a(0xcbf29ce484222325ull, rec, (size_t)n - 8))
        t->bad_sum++;
    t->received++;
    return seq;
}

static void *spsc_producer(void *arg)
{
    struct spsc *t = arg;
    uint8_t rec[64];
    for (uint64_t seq = 0; seq < SPSC_RECORDS; seq++) {
        uint32_t len = rec_build(seq, rec);
        int rc;
        while ((rc = gw_ring_push(t->r, rec, len)) == GW_EFULL)
            sched_yield();
        if (rc != 0)
            break;
    }
    return NULL;
}

static void *spsc_consumer(void *arg)
{
    struct spsc *t = arg;
    uint8_t rec[64];
    uint64_t expect = 0;
    while (expect < SPSC_RECORDS) {
        int n = gw_ring_pop(t->r, rec, sizeof(rec));
        if (n == GW_EEMPTY) {
            sched_yield();
            continue;
        }
        expect = rec_check(rec, n, expect, t) + 1;
    }
    return NULL;
}

/* Returns the number of failed checks; `what` names the first one. */
static int spsc_run(const char **what)
{
    struct spsc t;
    memset(&t, 0, sizeof(t));
    size_t bytes = gw_ring_bytes(256, 64);
    t.r = aligned_alloc(GW_CACHELINE, bytes);
    if (!t.r) {
        *what = "aligned_alloc";
        return 1;
    }
    memset(t.r, 0, bytes);
    gw_ring_format(t.r, 256, 64, 0);
    pthread_t p, c;
    if (pthread_create(&c, NULL, spsc_consumer, &t) != 0 ||
        pthread_create(&p, NULL, spsc_producer, &t) != 0) {
        *what = "pthread_create";
        return 1; /* the test process exits: no cleanup */
    }
    pthread_join(p, NULL);
    pthread_join(c, NULL);
    int fails = 0;
#define SPSC_CHECK(cond)                                                                           \
    if (!(cond)) {                                                                                 \
        if (!fails)                                                                                \
            *what = #cond;                                                                         \
        fails++;                                                                                   \
    }
    SPSC_CHECK(t.bad_pop == 0)
    SPSC_CHECK(t.bad_seq == 0)
    SPSC_CHECK(t.bad_len == 0)
    SPSC_CHECK(t.bad_sum == 0)
    SPSC_CHECK(t.received == SPSC_RECORDS)
    SPSC_CHECK(gw_ring_empty(t.r))
    SPSC_CHECK(atomic_load(&t.r->tail) == SPSC_RECORDS)
    free(t.r);
    return fails;
}

/* Doorbell between two threads: the producer sends a burst, rings only if
 * told to, then waits for the consumer to drain the ring, so the next burst
 * lands exactly while the consumer is on its way to sleep. A lost wake-up
 * shows as a consumer poll() timing out with records waiting. */
struct bellt {
    struct spsc s;
    struct gw_bell bell;
    int fd;
    _Atomic uint64_t consumed;
    _Atomic int stop;
    uint64_t missed, sleeps, waits_too_long, kicks;
};

static void *bell_consumer(void *arg)
{
    struct bellt *t = arg;
    uint8_t rec[64];
    uint64_t expect = 0;
    while (!atomic_load(&t->stop)) {
        int n = gw_ring_pop(t->s.r, rec, sizeof(rec));
        if (n != GW_EEMPTY) {
            expect = rec_check(rec, n, expect, &t->s) + 1;
            atomic_store_explicit(&t->consumed, t->s.received, memory_order_release);
            continue;
        }
        /* A real consumer looks at its other rings and timers here; the
         * pause widens the window a lost wake-up would need. */
        for (volatile uint32_t i = 0, j = (uint32_t)(t->s.received * 2654435761u) % 2048; i < j;
             i++)
            ;
        gw_bell_prepare_sleep(&t->bell);
        if (!gw_ring_empty(t->s.r)) { /* the re-check after F2 */
            gw_bell_awake(&t->bell);
            continue;
        }
        t->sleeps++;
        struct pollfd pfd = { .fd = t->fd, .events = POLLIN };
        int woke = poll(&pfd, 1, 500);
        gw_bell_awake(&t->bell);
        if (woke <= 0 && !gw_ring_empty(t->s.r))
            t->missed++;
        gw_bell_fifo_drain(t->fd);
    }
    return NULL;
}

static int bell_threads_run(const char **what)
{
    struct bellt t;
    memset(&t, 0, sizeof(t));
    size_t bytes = gw_ring_bytes(64, 64);
    t.s.r = aligned_alloc(GW_CACHELINE, bytes);
    char dir[] = "/tmp/gwbellXXXXXX", path[128];
    if (!t.s.r || !mkdtemp(dir)) {
        *what = "aligned_alloc/mkdtemp";
        return 1;
    }
    memset(t.s.r, 0, bytes);
    gw_ring_format(t.s.r, 64, 64, 0);
    snprintf(path, sizeof(path), "%s/bell-test", dir);
    t.fd = gw_bell_fifo_open(path);
    if (t.fd < 0) {
        *what = "gw_bell_fifo_open";
        return 1;
    }
    pthread_t c;
    if (pthread_create(&c, NULL, bell_consumer, &t) != 0) {
        *what = "pthread_create";
        return 1;
    }
    uint8_t rec[64];
    uint64_t seq = 0;
    for (uint32_t burst = 0; burst < BELL_BURSTS; burst++) {
        uint32_t k = 1 + burst % 8;
        for (uint32_t i = 0; i < k; i++, seq++)
            if (gw_ring_push(t.s.r, rec, rec_build(seq, rec)) != 0)
                t.s.bad_pop++; /* cannot be full: we drain after each burst */
        if (gw_bell_should_wake(&t.bell)) {
            gw_bell_fifo_kick(t.fd);
            t.kicks++;
        }
        /* Wait (bounded, about 2 s) for the consumer to take the whole
         * burst: spin briefly to react at once, then sleep. */
        struct timespec ts = { 0, 20000 };
        for (int w = 0; atomic_load_explicit(&t.consumed, memory_order_acquire) < seq; w++) {
            if (w == 100000 + 20000) {
                t.waits_too_long++;
                break;
            }
            if (w >= 20000)
                nanosleep(&ts, NULL);
        }
        /* Then a varying pause, so that the next burst sweeps across the
         * consumer's way from its last pop to poll(). */
        for (volatile uint32_t i = 0, j = (burst * 7919u) % 4096; i < j; i++)
            ;
    }
    atomic_store(&t.stop, 1);
    gw_bell_fifo_kick(t.fd);
    pthread_join(c, NULL);
    if (getenv("GW_TEST_VERBOSE"))
        fprintf(stderr, "bell: %u bursts, %lu sleeps, %lu kicks, %lu missed\n", BELL_BURSTS,
                (unsigned long)t.sleeps, (unsigned long)t.kicks, (unsigned long)t.missed);
    close(t.fd);
    unlink(path);
    rmdir(dir);
    int fails = 0;
    SPSC_CHECK(t.missed == 0)
    SPSC_CHECK(t.waits_too_long == 0)
    SPSC_CHECK(t.s.bad_pop == 0)
    SPSC_CHECK(t.s.bad_seq == 0)
    SPSC_CHECK(t.s.bad_len == 0)
    SPSC_CHECK(t.s.bad_sum == 0)
    SPSC_CHECK(t.s.received == seq)
    SPSC_CHECK(t.kicks == atomic_load(&t.bell.rings))
    SPSC_CHECK(t.kicks <= BELL_BURSTS)
    SPSC_CHECK(t.sleeps > 0 && t.kicks > 0) /* the sleeping path was taken */
#undef SPSC_CHECK
    free(t.s.r);
    return fails;
}

#ifndef GW_TEST_PLAIN
/* S1.2: one producer thread and one consumer thread on a small ring: every
 * record arrives once, in order, intact. Under TSan this also checks the
 * acquire/release pairs A1/R2 and A2/R1. */
Test(ring, spsc_two_threads_keep_order_and_checksum, .timeout = 60)
{
    const char *what = "";
    int fails = spsc_run(&what);
    cr_assert_eq(fails, 0, "%d failed checks, first: %s", fails, what);
}

/* S1.2 (idle consumers sleep, records cross in microseconds): the bell
 * protocol (F1/F2) never loses a wake-up between two threads. */
Test(bell, wakeups_are_never_lost_between_threads, .timeout = 60)
{
    const char *what = "";
    int fails = bell_threads_run(&what);
    cr_assert_eq(fails, 0, "%d failed checks, first: %s", fails, what);
}

/* ---- The shared segment. ---- */

/* S1.2/S1.3: the segment is created once, attached again by a restarted
 * process, and refused with a message naming the differing value when the
 * layout is not the one this process expects. */
Test(shm, open_attach_and_refuse_other_layout)
{
    char dir[] = "/tmp/gwshmXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct gw_config cfg;
    gw_config_defaults(&cfg);
    snprintf(cfg.instance, sizeof(cfg.instance), "t%ld", (long)getpid());
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    cfg.ring_slots = 64;
    cfg.max_txn = 16;

    char err[512] = "";
    struct gw_shm a, b, c;
    int rc = gw_shm_open(&cfg, true, &a, err, sizeof(err));
    cr_assert_eq(rc, 0, "create: %s (%s)", gw_strerror(rc), err);
    cr_assert_eq(a.hdr->magic, GW_SHM_MAGIC);
    cr_assert_eq(a.hdr->version, GW_SHM_VERSION);
    cr_assert_eq(a.hdr->ring_slots, 64);
    cr_assert_eq(a.hdr->max_txn, 16);
    cr_assert_eq(a.hdr->nrings, 2 * a.hdr->max_frontends + 2);
    struct gw_ring *ra = gw_shm_ring(&a, gw_ring_fe_to_sch(0));
    cr_assert_eq(ra->size, 64);
    cr_assert_eq(ra->mask, 63);
    cr_assert_eq(ra->slot_size, GW_RING_SLOT);
    cr_assert_eq(ra->bell, GW_BELL_SCHEDULER);
    cr_assert_eq(gw_shm_ring(&a, gw_ring_sch_to_fe(&a, 1))->bell, GW_BELL_FRONTEND0 + 1);
    cr_assert_eq(gw_shm_ring(&a, gw_ring_sch_to_mesh(&a))->bell, GW_BELL_MESHIO);
    cr_assert_eq(gw_shm_ring(&a, gw_ring_mesh_to_sch(&a))->bell, GW_BELL_SCHEDULER);
    /* Offsets, not pointers: every ring starts on its own page. */
    cr_assert_eq(((uintptr_t)ra - (uintptr_t)a.base) % 4096, 0);

    /* A second attach (as a restarted process) sees the same segment. */
    rc = gw_shm_open(&cfg, false, &b, err, sizeof(err));
    cr_assert_eq(rc, 0, "attach: %s (%s)", gw_strerror(rc), err);
    cr_assert_eq(atomic_load(&b.hdr->boot_id), atomic_load(&a.hdr->boot_id));
    struct gw_ring *rb = gw_shm_ring(&b, gw_ring_fe_to_sch(0));
    cr_assert_neq((void *)ra, (void *)rb, "two mappings");
    cr_assert_eq(gw_ring_push(ra, "across", 6), 0);
    char buf[GW_RING_SLOT];
    cr_assert_eq(gw_ring_pop(rb, buf, sizeof(buf)), 6);
    cr_assert_arr_eq(buf, "across", 6);

    /* Another ring_slots: refused, and the message says which value. */
    struct gw_config other = cfg;
    other.ring_slots = 128;
    err[0] = '\0';
    rc = gw_shm_open(&other, false, &c, err, sizeof(err));
    cr_expect_eq(rc, GW_ELAYOUT, "got %d (%s)", rc, gw_strerror(rc));
    cr_expect_not_null(strstr(err, "ring_slots"), "message: %s", err);
    cr_expect_null(c.base);

    /* Another max_txn (a layout change behind the rings) likewise. */
    other = cfg;
    other.max_txn = 32;
    err[0] = '\0';
    rc = gw_shm_open(&other, false, &c, err, sizeof(err));
    cr_expect_eq(rc, GW_ELAYOUT);
    cr_expect_not_null(strstr(err, "max_txn"), "message: %s", err);

    /* The refused attaches did not disturb the segment. */
    cr_expect_eq(a.hdr->ring_slots, 64);
    cr_expect(gw_ring_empty(ra));

    gw_shm_close(&b);
    gw_shm_close(&a);
    cr_expect_eq(gw_shm_unlink(&cfg), 0);
    cr_expect_eq(gw_shm_unlink(&cfg), -ENOENT);
    cr_expect_eq(rmdir(dir), 0);
}
#endif /* !GW_TEST_PLAIN */

#ifdef GW_TEST_PLAIN
int main(void)
{
    struct {
        const char *name;
        int (*run)(const char **what);
    } tests[] = {
        { "ring::spsc_two_threads_keep_order_and_checksum", spsc_run },
        { "bell::wakeups_are_never_lost_between_threads", bell_threads_run },
    };
    int passed = 0, failed = 0;
    for (size_t i = 0; i < GW_ARRAY_LEN(tests); i++) {
        const char *what = "";
        int fails = tests[i].run(&what);
        printf("[%s] %s%s%s\n", fails ? "FAIL" : "PASS", tests[i].name, fails ? ": " : "", what);
        fails ? failed++ : passed++;
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}
#endif
