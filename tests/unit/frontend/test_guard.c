/* SPDX-License-Identifier: MIT */
/* The cache guard (frontend/fe_guard.h) over a real shared segment, with
 * sibling frontends played by forked processes that are SIGKILLed: a death
 * is seen through the robust lease even before the parent reaps the child,
 * a guard lasts the window, a fresh start keeps the cache path. Times are
 * given, so nothing waits on the clock. */
#include "fe_guard.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define W 10000u      /* the window (exchange lifetime) in these tests */
#define T0 5000000ull /* a start time far from 0 */

static struct gw_config cfg;
static struct gw_shm seg;

static void open_seg(void)
{
    gw_config_defaults(&cfg);
    snprintf(cfg.instance, sizeof(cfg.instance), "tg%ld", (long)getpid());
    cfg.ring_slots = 64;
    cfg.max_txn = 16;
    cfg.max_frontends = 3;
    char err[512] = "";
    int rc = gw_shm_open(&cfg, true, &seg, err, sizeof(err));
    cr_assert_eq(rc, 0, "segment: %s (%s)", gw_strerror(rc), err);
}

static void close_seg(void)
{
    gw_shm_close(&seg);
    gw_shm_unlink(&cfg);
}

/* A sibling frontend in a child: joins slot idx at `at`, forwards a CON
 * request at fwd_at when nonzero, says so on the pipe and waits to die. */
static pid_t sibling(uint32_t idx, uint64_t at, uint64_t fwd_at)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        struct fe_guard g;
        if (fe_guard_join(&g, &seg, idx, W, at, 100) != 0)
            _exit(2);
        if (fwd_at)
            fe_guard_forward(&g, fwd_at);
        char c = 'j';
        if (write(fds[1], &c, 1) != 1)
            _exit(3);
        for (;;)
            pause();
    }
    close(fds[1]);
    char c = 0;
    cr_assert_eq(read(fds[0], &c, 1), 1, "the sibling joined");
    close(fds[0]);
    return pid;
}

/* SIGKILL, then wait until the child is a zombie without reaping it: the
 * moment another frontend may already get its clients' datagrams. */
static void kill_unreaped(pid_t pid)
{
    cr_assert_eq(kill(pid, SIGKILL), 0);
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    cr_assert_eq(waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT), 0);
}

static void reap(pid_t pid)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
}

Test(guard, a_fresh_start_keeps_the_cache_path, .init = open_seg, .fini = close_seg)
{
    struct fe_guard a;
    cr_assert_eq(fe_guard_join(&a, &seg, 0, W, T0, 100), 0);
    pid_t b = sibling(1, T0 + 5, 0);
    fe_guard_forward(&a, T0 + 10);
    cr_assert(fe_guard_cache_ok(&a, T0 + 20), "siblings that joined before any forward");
    kill(b, SIGKILL);
    reap(b);
    fe_guard_free(&a);
}

Test(guard, a_sibling_killed_after_forwarding_stops_the_cache_path_for_the_window, .init = open_seg,
     .fini = close_seg)
{
    struct fe_guard a;
    cr_assert_eq(fe_guard_join(&a, &seg, 0, W, T0, 100), 0);
    pid_t b = sibling(1, T0 + 5, T0 + 100);
    cr_assert(fe_guard_cache_ok(&a, T0 + 200), "a live sibling changes nothing");
    kill_unreaped(b);
    /* Not reaped yet (kill(pid, 0) would still succeed): the lease tells. */
    cr_assert_not(fe_guard_cache_ok(&a, T0 + 300));
    reap(b);
    cr_assert_not(fe_guard_cache_ok(&a, T0 + 300 + W - 1), "the guard lasts the window");
    cr_assert(fe_guard_cache_ok(&a, T0 + 300 + W + 1), "and ends with it (one death, one guard)");
    fe_guard_free(&a);
}

Test(guard, every_frontend_sees_the_guard_and_a_restart_raises_its_own, .init = open_seg,
     .fini = close_seg)
{
    struct fe_guard a, c;
    cr_assert_eq(fe_guard_join(&a, &seg, 0, W, T0, 100), 0);
    cr_assert_eq(fe_guard_join(&c, &seg, 2, W, T0, 100), 0);
    pid_t b = sibling(1, T0 + 5, T0 + 100);
    kill_unreaped(b);
    reap(b);
    /* a records the death; c, which never looked, sees a's record. */
    cr_assert_not(fe_guard_cache_ok(&a, T0 + 1000));
    cr_assert_not(fe_guard_cache_ok(&c, T0 + 1001));
    cr_assert(fe_guard_cache_ok(&c, T0 + 1000 + W + 1));
    /* The successor of slot 1 joins while slot 1's forward is in the window:
     * its clients' copies may come to any frontend now. */
    pid_t b2 = sibling(1, T0 + 2000, 0);
    cr_assert_not(fe_guard_cache_ok(&a, T0 + 2000 + W - 1));
    cr_assert(fe_guard_cache_ok(&a, T0 + 2000 + W + 1));
    kill(b2, SIGKILL);
    reap(b2);
    fe_guard_free(&a);
    fe_guard_free(&c);
}

Test(guard, a_death_without_forwards_in_the_window_changes_nothing, .init = open_seg,
     .fini = close_seg)
{
    struct fe_guard a;
    cr_assert_eq(fe_guard_join(&a, &seg, 0, W, T0, 100), 0);
    pid_t b = sibling(1, T0 + 5, T0 + 100);
    uint64_t later = T0 + 100 + W + 2000; /* the forward is older than the window */
    kill_unreaped(b);
    reap(b);
    cr_assert(fe_guard_cache_ok(&a, later));
    fe_guard_free(&a);
}

Test(guard, a_second_live_process_cannot_take_a_held_slot, .init = open_seg, .fini = close_seg)
{
    pid_t b = sibling(1, T0, 0);
    struct fe_guard x;
    cr_assert_eq(fe_guard_join(&x, &seg, 1, W, T0 + 1, 20), GW_EBUSY);
    kill_unreaped(b);
    /* Its death frees the slot for a successor (owner-dead lease taken over). */
    cr_assert_eq(fe_guard_join(&x, &seg, 1, W, T0 + 2, 20), 0);
    reap(b);
    fe_guard_free(&x);
}
