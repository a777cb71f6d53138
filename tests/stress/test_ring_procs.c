/* SPDX-License-Identifier: MIT */
/* test_ring_procs.c - a ring between two real processes that get SIGKILLed
 * mid-stream (SPEC S1.2, S1.3).
 *
 * S1.2: a process that restarts re-attaches to its rings and carries on;
 * idle processes use no CPU. S1.3: ring contents live in shared memory and
 * survive the death of either side. gw_ring.h promises that a SIGKILL at
 * any instant never publishes a torn record and never delivers one twice.
 *
 * Set-up: the test process plays the supervisor. It creates the segment,
 * forks a producer and a consumer that each attach with gw_shm_open() (as a
 * restarted role does) and use ring gw_ring_fe_to_sch(0) with its FIFO
 * doorbell. Records are {seq u64 | payload of 0..1200 bytes derived from
 * seq | checksum u64}. Phase A kills the consumer at random moments and
 * restarts it, phase B does the same to the producer, phase C kills either
 * or both; about 3 s each. Only the test's own child pids are ever signalled.
 *
 * Bookkeeping, in a MAP_SHARED anonymous area created before fork:
 * - The consumer's progress (last seq + 1, count, gaps, failures) is kept
 *   twice and committed by flipping an index after each record, so a kill
 *   leaves either the old or the new state, never a mix.
 * - The producer checkpoints its next seq only every PROD_CHECKPOINT
 *   records, like a process that saves state now and then. A restarted
 *   producer resumes from max(checkpoint, seq in the slot at tail - 1 + 1):
 *   that slot holds the last published record, since only the producer
 *   writes slots and a dead producer cannot have published a partial one.
 *   Resuming from the checkpoint alone would send duplicates on almost
 *   every producer restart, which the consumer would count.
 * So: no duplicate, no reorder, no bad checksum or length, delivered + gaps
 * == records published, and gaps <= consumer kills (a killed consumer loses
 * at most the one record it had popped but not yet committed). */
#include "gw_config.h"
#include "gw_error.h"
#include "gw_ring.h"
#include "gw_shm.h"

#include <criterion/criterion.h>
#include <criterion/logging.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_INC 64 /* incarnations per side */
#define KILLS_PER_PHASE 5
#define PHASE_MS 3000
#define PAYLOAD_MAX 1200
#define REC_MAX (16 + PAYLOAD_MAX)
#define PROD_CHECKPOINT 16
#define MAX_RECORDS 100000000ull /* count bound; the time bound comes first */
#define CHILD_DEADLINE_S 90      /* children exit on their own after this */
#define TEST_DEADLINE_MS 45000

struct progress {
    uint64_t last_plus1; /* seq of the last record delivered, + 1 */
    uint64_t delivered;
    uint64_t gaps; /* seqs never delivered */
    uint64_t dups; /* seq <= one already delivered */
    uint64_t bad_sum, bad_len, bad_msg;
};

struct results {
    /* Producer. */
    _Atomic uint64_t next_seq; /* checkpoint, every PROD_CHECKPOINT pushes */
    _Atomic int prod_stop;
    _Atomic uint32_t prod_resumed_ahead;  /* restarts where the slot beat the checkpoint */
    _Atomic uint64_t prod_first[MAX_INC]; /* first seq of each incarnation */
    _Atomic uint64_t prod_pushes[MAX_INC];
    _Atomic uint64_t prod_full[MAX_INC]; /* GW_EFULL seen */
    /* Consumer. */
    _Atomic uint32_t cons_cur;
    struct progress prog[2];
    _Atomic uint64_t cons_seen; /* mirror of last_plus1 for the parent to watch */
    _Atomic int cons_stop;
    _Atomic uint64_t cons_count[MAX_INC];
    _Atomic uint64_t cons_sleeps, cons_timeouts;
};

/* ---- Records. ---- */

static uint32_t payload_len(uint64_t seq)
{
    return (uint32_t)((seq * 2654435761u) % (PAYLOAD_MAX + 1));
}

static uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

static uint64_t checksum(const uint8_t *p, size_t n)
{
    uint64_t h = 0x51ab1e5eedull ^ n, w;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, p + i, 8);
        h = mix(h, w);
    }
    for (; i < n; i++)
        h = mix(h, p[i]);
    return h;
}

static uint32_t rec_build(uint64_t seq, uint8_t *rec)
{
    uint32_t n = payload_len(seq);
    memcpy(rec, &seq, 8);
    uint64_t x = seq ^ 0x2545f4914f6cdd1dull;
    for (uint32_t i = 0; i < n; i += 8) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        memcpy(rec + 8 + i, &x, GW_MIN(8u, n - i));
    }
    uint64_t sum = checksum(rec, 8 + n);
    memcpy(rec + 8 + n, &sum, 8);
    return 16 + n;
}

/* Returns 0 and the seq, or -1 when the record is not one rec_build made. */
static int rec_verify(const uint8_t *rec, int n, uint64_t *seq, struct progress *p)
{
    if (n < 16) {
        p->bad_len++;
        return -1;
    }
    memcpy(seq, rec, 8);
    if ((uint32_t)n != 16 + payload_len(*seq)) {
        p->bad_len++;
        return -1;
    }
    uint64_t sum;
    memcpy(&sum, rec + n - 8, 8);
    if (sum != checksum(rec, (size_t)n - 8)) {
        p->bad_sum++;
        return -1;
    }
    return 0;
}

/* ---- Children. ---- */

struct env {
    struct gw_config cfg;
    struct results *res;
    char fifo[GW_CFG_STR + 32];
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Common start of a child: die with the test, attach like a restarted role. */
static void child_attach(const struct env *e, pid_t parent, struct gw_shm *shm, struct gw_ring **r,
                         struct gw_bell **bell, int *fd)
{
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(90);
    char err[512];
    if (gw_shm_open(&e->cfg, false, shm, err, sizeof(err)) != 0) {
        fprintf(stderr, "child %d: %s\n", (int)getpid(), err);
        _exit(91);
    }
    *r = gw_shm_ring(shm, gw_ring_fe_to_sch(0));
    *bell = gw_shm_bell(shm, (*r)->bell);
    *fd = gw_bell_fifo_open(e->fifo);
    if (*fd < 0)
        _exit(92);
}

static void producer_main(const struct env *e, pid_t parent, uint32_t inc)
{
    struct gw_shm shm;
    struct gw_ring *r;
    struct gw_bell *bell;
    int fd;
    child_attach(e, parent, &shm, &r, &bell, &fd);
    struct results *res = e->res;
    gw_ring_claim_producer(r, (uint32_t)getpid());

    /* Resume: the checkpoint, or past the last published record if later.
     * The previous producer is dead, so the tail and the slot are ours. */
    uint64_t seq = atomic_load(&res->next_seq);
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    if (tail != 0) {
        const uint8_t *s = (const uint8_t *)(r + 1) + (size_t)((tail - 1) & r->mask) * r->slot_size;
        uint32_t len;
        uint64_t last;
        struct progress scratch = { 0 };
        memcpy(&len, s, 4);
        if (len > REC_MAX || rec_verify(s + 4, (int)len, &last, &scratch) != 0)
            _exit(93); /* a published slot must be whole */
        if (last + 1 > seq) {
            seq = last + 1;
            atomic_fetch_add(&res->prod_resumed_ahead, 1);
        }
    }
    atomic_store(&res->prod_first[inc], seq);

    uint8_t rec[REC_MAX];
    uint64_t deadline = now_ms() + CHILD_DEADLINE_S * 1000ull;
    uint32_t len = rec_build(seq, rec);
    while (!atomic_load_explicit(&res->prod_stop, memory_order_relaxed) && seq < MAX_RECORDS) {
        int rc = gw_ring_push(r, rec, len);
        if (rc == GW_EFULL) {
            /* The consumer is slow or dead: wake it and back off. */
            atomic_fetch_add_explicit(&res->prod_full[inc], 1, memory_order_relaxed);
            if (gw_bell_should_wake(bell))
                gw_bell_fifo_kick(fd);
            struct timespec ts = { 0, 100000 };
            nanosleep(&ts, NULL);
            if (now_ms() > deadline)
                _exit(94);
            continue;
        }
        if (rc != 0)
            _exit(95);
        seq++;
        if (gw_bell_should_wake(bell))
            gw_bell_fifo_kick(fd);
        atomic_fetch_add_explicit(&res->prod_pushes[inc], 1, memory_order_relaxed);
        if (seq % PROD_CHECKPOINT == 0)
            atomic_store_explicit(&res->next_seq, seq, memory_order_release);
        len = rec_build(seq, rec);
    }
    atomic_store(&res->next_seq, seq);
    _exit(0);
}

static void consumer_main(const struct env *e, pid_t parent, uint32_t inc)
{
    struct gw_shm shm;
    struct gw_ring *r;
    struct gw_bell *bell;
    int fd;
    child_attach(e, parent, &shm, &r, &bell, &fd);
    struct results *res = e->res;
    gw_ring_claim_consumer(r, (uint32_t)getpid());

    uint32_t cur = atomic_load_explicit(&res->cons_cur, memory_order_acquire);
    struct progress p = res->prog[cur];
    uint8_t rec[GW_RING_SLOT];
    uint64_t deadline = now_ms() + CHILD_DEADLINE_S * 1000ull;
    for (;;) {
        int n = gw_ring_pop(r, rec, sizeof(rec));
        if (n == GW_EEMPTY) {
            if (atomic_load(&res->cons_stop))
                _exit(0);
            if (now_ms() > deadline)
                _exit(96);
            gw_bell_prepare_sleep(bell);
            if (!gw_ring_empty(r)) {
                gw_bell_awake(bell);
                continue;
            }
            atomic_fetch_add_explicit(&res->cons_sleeps, 1, memory_order_relaxed);
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            if (poll(&pfd, 1, 100) == 0)
                atomic_fetch_add_explicit(&res->cons_timeouts, 1, memory_order_relaxed);
            gw_bell_awake(bell);
            gw_bell_fifo_drain(fd);
            continue;
        }
        uint64_t seq;
        if (n == GW_EBADMSG)
            p.bad_msg++;
        else if (n < 0)
            _exit(97);
        else if (rec_verify(rec, n, &seq, &p) == 0) {
            if (seq < p.last_plus1) {
                p.dups++;
            } else {
                p.gaps += seq - p.last_plus1;
                p.last_plus1 = seq + 1;
                p.delivered++;
            }
        }
        /* Commit: write the other copy, then flip (release) to it. */
        res->prog[cur ^ 1] = p;
        cur ^= 1;
        atomic_store_explicit(&res->cons_cur, cur, memory_order_release);
        atomic_store_explicit(&res->cons_seen, p.last_plus1, memory_order_relaxed);
        atomic_fetch_add_explicit(&res->cons_count[inc], 1, memory_order_relaxed);
    }
}

/* ---- The supervisor (the test process). ---- */

enum side { PROD, CONS };

struct sup {
    struct env e;
    struct gw_shm shm;
    struct gw_ring *r;
    pid_t pid[2];
    uint32_t inc[2]; /* incarnations started */
    uint32_t kills[2];
    uint64_t t0;
    unsigned seed;
    int fails; /* bounded waits that ran out */
};

static pid_t spawn(struct sup *s, enum side side)
{
    uint32_t inc = s->inc[side]++;
    cr_assert_lt(inc, MAX_INC);
    pid_t parent = getpid();
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (side == PROD)
            producer_main(&s->e, parent, inc);
        else
            consumer_main(&s->e, parent, inc);
        _exit(99);
    }
    s->pid[side] = pid;
    return pid;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    nanosleep(&ts, NULL);
}

/* Waits up to ms for *v > floor; false on timeout. */
static bool wait_above(_Atomic uint64_t *v, uint64_t floor, unsigned ms)
{
    for (unsigned waited = 0; atomic_load(v) <= floor; waited += 2) {
        if (waited >= ms)
            return false;
        sleep_ms(2);
    }
    return true;
}

/* Waits until the side's current incarnation has made progress: the
 * consumer has delivered records, the producer has pushed records and the
 * consumer has delivered one of them. */
static void wait_progress(struct sup *s, enum side side)
{
    struct results *res = s->e.res;
    uint32_t inc = s->inc[side] - 1;
    bool ok;
    if (side == CONS)
        ok = wait_above(&res->cons_count[inc], 0, 5000);
    else
        ok = wait_above(&res->prod_pushes[inc], 0, 5000) &&
             wait_above(&res->cons_seen, atomic_load(&res->prod_first[inc]), 5000);
    if (!ok) {
        cr_log_error("%s incarnation %u made no progress in 5 s",
                     side == CONS ? "consumer" : "producer", inc);
        s->fails++;
    }
}

/* SIGKILL our own child at a random moment, reap it, release its side of
 * the ring as the supervisor does, and start the next incarnation. */
static void kill_and_restart(struct sup *s, enum side side)
{
    sleep_ms(1 + (unsigned)rand_r(&s->seed) % 250);
    pid_t pid = s->pid[side];
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
              "%s %d ended with status %#x before the kill", side == CONS ? "consumer" : "producer",
              (int)pid, st);
    s->kills[side]++;
    if (side == PROD)
        atomic_store(&s->r->prod_pid, 0);
    else
        atomic_store(&s->r->cons_pid, 0);
    spawn(s, side);
}

/* Reaps a child that was asked to stop; kills it after ms. Returns exit code or -1. */
static int reap(pid_t pid, unsigned ms)
{
    int st;
    for (unsigned waited = 0;; waited += 2) {
        pid_t w = waitpid(pid, &st, WNOHANG);
        if (w == pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        if (waited >= ms) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        sleep_ms(2);
    }
}

/* S1.2/S1.3: records survive SIGKILL of either side, arrive once, in order,
 * whole, and both sides carry on after every restart. */
Test(ring_procs, sigkill_either_side_loses_nothing_twice, .timeout = 90)
{
    struct sup s;
    memset(&s, 0, sizeof(s));
    s.t0 = now_ms();
    const char *env_seed = getenv("GW_STRESS_SEED");
    s.seed = env_seed ? (unsigned)strtoul(env_seed, NULL, 0) : (unsigned)(time(NULL) ^ getpid());
    cr_log_info("seed %u (set GW_STRESS_SEED to replay the kill timings)", s.seed);

    char dir[] = "/tmp/gwstressXXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    gw_config_defaults(&s.e.cfg);
    snprintf(s.e.cfg.instance, sizeof(s.e.cfg.instance), "sr%ld", (long)getpid());
    snprintf(s.e.cfg.data_dir, sizeof(s.e.cfg.data_dir), "%s", dir);
    s.e.cfg.ring_slots = 1024;
    s.e.cfg.max_txn = 16;
    char err[512];
    int rc = gw_shm_open(&s.e.cfg, true, &s.shm, err, sizeof(err));
    cr_assert_eq(rc, 0, "gw_shm_open: %s", err);
    s.r = gw_shm_ring(&s.shm, gw_ring_fe_to_sch(0));
    gw_bell_path(&s.e.cfg, s.r->bell, s.e.fifo, sizeof(s.e.fifo));
    int fifo = gw_bell_fifo_open(s.e.fifo);
    cr_assert_geq(fifo, 0, "fifo: %s", gw_strerror(fifo));
    s.e.res = mmap(NULL, sizeof(struct results), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                   -1, 0);
    cr_assert_neq(s.e.res, MAP_FAILED);
    struct results *res = s.e.res;

    spawn(&s, CONS);
    spawn(&s, PROD);

    /* Phase A: the consumer dies at random moments; B: the producer; C:
     * either, or both back to back. Each phase lasts PHASE_MS and has at
     * least KILLS_PER_PHASE kills. */
    for (int phase = 0; phase < 3 && !s.fails; phase++) {
        uint64_t start = now_ms();
        for (int k = 0; (k < KILLS_PER_PHASE || now_ms() - start < PHASE_MS) &&
                        k < 4 * KILLS_PER_PHASE && !s.fails && now_ms() - s.t0 < TEST_DEADLINE_MS;
             k++) {
            int which = phase == 0 ? CONS : phase == 1 ? PROD : rand_r(&s.seed) % 3;
            if (which != CONS) {
                wait_progress(&s, PROD);
                kill_and_restart(&s, PROD);
            }
            if (which != PROD) {
                wait_progress(&s, CONS);
                kill_and_restart(&s, CONS);
            }
        }
    }
    wait_progress(&s, PROD);
    wait_progress(&s, CONS);

    /* Orderly end: stop the producer, let the consumer drain, stop it. */
    atomic_store(&res->prod_stop, 1);
    int prod_rc = reap(s.pid[PROD], 5000);
    uint64_t total = atomic_load(&res->next_seq);
    bool drained = wait_above(&res->cons_seen, total - 1, 5000);
    atomic_store(&res->cons_stop, 1);
    gw_bell_fifo_kick(fifo);
    int cons_rc = reap(s.pid[CONS], 5000);
    uint64_t elapsed = now_ms() - s.t0;

    struct progress p = res->prog[atomic_load(&res->cons_cur)];
    uint32_t tail = atomic_load(&s.r->tail);
    cr_log_info(
        "%llu records in %llu ms; kills: consumer %u, producer %u; gaps %llu; "
        "producer restarts resumed past the checkpoint: %u; consumer sleeps %llu (timeouts %llu)",
        (unsigned long long)total, (unsigned long long)elapsed, s.kills[CONS], s.kills[PROD],
        (unsigned long long)p.gaps, atomic_load(&res->prod_resumed_ahead),
        (unsigned long long)atomic_load(&res->cons_sleeps),
        (unsigned long long)atomic_load(&res->cons_timeouts));

    cr_expect_eq(s.fails, 0, "a child incarnation stalled");
    cr_expect_eq(prod_rc, 0, "producer exit %d", prod_rc);
    cr_expect_eq(cons_rc, 0, "consumer exit %d", cons_rc);
    cr_expect(drained, "consumer did not drain to %llu", (unsigned long long)total);
    /* Nothing corrupt, torn, duplicated or reordered. */
    cr_expect_eq(p.bad_sum, 0, "%llu bad checksums", (unsigned long long)p.bad_sum);
    cr_expect_eq(p.bad_len, 0, "%llu bad lengths", (unsigned long long)p.bad_len);
    cr_expect_eq(p.bad_msg, 0, "%llu GW_EBADMSG pops", (unsigned long long)p.bad_msg);
    cr_expect_eq(p.dups, 0, "%llu duplicates or reorders", (unsigned long long)p.dups);
    /* Final drain consistent: every published seq delivered or counted lost,
     * and only a killed consumer loses a record (at most one per kill). */
    cr_expect_eq(p.last_plus1, total, "last delivered %llu, published %llu",
                 (unsigned long long)p.last_plus1, (unsigned long long)total);
    cr_expect_eq(p.delivered + p.gaps, total, "delivered %llu + lost %llu != published %llu",
                 (unsigned long long)p.delivered, (unsigned long long)p.gaps,
                 (unsigned long long)total);
    cr_expect_leq(p.gaps, s.kills[CONS], "%llu records lost for %u consumer kills",
                  (unsigned long long)p.gaps, s.kills[CONS]);
    cr_expect(gw_ring_empty(s.r));
    cr_expect_eq(tail - atomic_load(&s.r->head), 0);
    cr_expect_geq(s.kills[CONS], KILLS_PER_PHASE);
    cr_expect_geq(s.kills[PROD], KILLS_PER_PHASE);
    /* The resume-from-slot path was exercised (a miss needs every producer
     * kill to land exactly on a checkpoint: 16^-kills). */
    cr_expect_geq(atomic_load(&res->prod_resumed_ahead), 1);
    /* Every incarnation did work: records crossed after every restart. */
    for (uint32_t i = 0; i < s.inc[CONS]; i++)
        cr_expect_gt(atomic_load(&res->cons_count[i]), 0, "consumer incarnation %u popped nothing",
                     i);
    for (uint32_t i = 0; i < s.inc[PROD]; i++)
        cr_expect_gt(atomic_load(&res->prod_pushes[i]), 0, "producer incarnation %u pushed nothing",
                     i);
    /* Claims: one generation per incarnation. */
    cr_expect_eq(atomic_load(&s.r->prod_gen), s.inc[PROD]);
    cr_expect_eq(atomic_load(&s.r->cons_gen), s.inc[CONS]);
    cr_expect_gt(atomic_load(&res->cons_sleeps), 0, "consumer never slept on the doorbell");
    cr_expect_lt(elapsed, 60000);

    close(fifo);
    unlink(s.e.fifo);
    gw_shm_close(&s.shm);
    cr_expect_eq(gw_shm_unlink(&s.e.cfg), 0);
    rmdir(dir);
    munmap(res, sizeof(*res));
}
