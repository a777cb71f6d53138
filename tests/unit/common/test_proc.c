/* SPDX-License-Identifier: MIT */
/* test_proc.c - the shared start-up of the roles (common/gw_proc.c): a
 * data_dir others could write, or a segment of another layout, is refused
 * for good (GW_EXIT_FATAL, S9.2, S1.2); a full start-up takes
 * the process slot and the ring sides, creates the doorbell FIFOs, opens
 * LMDB, and runs a loop in which the own doorbell reaches on_bell, every
 * turn reaches on_turn and is counted, SIGHUP reaches on_hup and SIGTERM
 * stops the loop; teardown closes the FIFOs. Real files, shared memory and
 * signals; every loop is bounded by a timer. */
#include "gw_error.h"
#include "gw_proc.h"

#include <criterion/criterion.h>
#include <inttypes.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[64];

/* A fresh segment for cfg; the test fails when it cannot be made. */
static void open_segment(const struct gw_config *cfg, struct gw_shm *seg)
{
    char err[512] = "";
    int rc = gw_shm_open(cfg, true, seg, err, sizeof(err));
    cr_assert_eq(rc, 0, "segment: %s (%s)", gw_strerror(rc), err);
}

static void mkdir_tmp(void)
{
    strcpy(dir, "/tmp/coapgw-test-proc.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void test_cfg(struct gw_config *cfg)
{
    gw_config_defaults(cfg);
    snprintf(cfg->instance, sizeof(cfg->instance), "tp%ld", (long)getpid());
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "%s", dir);
    cfg->ring_slots = 64;
    cfg->max_txn = 16;
    cfg->lmdb_map_mb = 8;
}

/* The segment a test opened, and the directory; also after a failed
 * assertion, so no /dev/shm/coapgw-tp* is left behind. */
static void rm_tmp(void)
{
    struct gw_config cfg;
    test_cfg(&cfg);
    GW_IGNORE(gw_shm_unlink(&cfg));
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(proc, a_data_dir_others_can_write_is_refused_for_good, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    test_cfg(&cfg);
    cr_assert_eq(chmod(dir, 0777), 0);
    struct gw_proc *p = malloc(sizeof(*p));
    cr_assert_not_null(p);
    cr_assert_eq(gw_proc_init(p, &cfg, GW_PROC_SCHEDULER), GW_EXIT_FATAL);
    gw_proc_deinit(p); /* safe after a failed start-up */
    free(p);
}

Test(proc, a_segment_of_another_layout_is_refused_for_good, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    test_cfg(&cfg);
    struct gw_shm seg;
    open_segment(&cfg, &seg);
    struct gw_config other = cfg;
    other.ring_slots = 128; /* a role built for another layout */
    struct gw_proc *p = malloc(sizeof(*p));
    cr_assert_not_null(p);
    cr_assert_eq(gw_proc_init(p, &other, GW_PROC_SCHEDULER), GW_EXIT_FATAL);
    gw_proc_deinit(p);
    free(p);
    gw_shm_close(&seg);
    cr_expect_eq(gw_shm_unlink(&cfg), 0);
}

struct probe {
    struct gw_proc *p;
    int bells, turns, hups;
};

static void on_bell(void *ctx)
{
    struct probe *pr = ctx;
    pr->bells++;
    raise(SIGHUP); /* next: on_hup */
}

static void on_turn(void *ctx)
{
    ((struct probe *)ctx)->turns++;
}

static void on_hup(void *ctx)
{
    struct probe *pr = ctx;
    pr->hups++;
    raise(SIGTERM); /* next: gw_proc's own handler stops the loop */
}

static void on_deadline(uv_timer_t *t)
{
    uv_stop(t->loop);
}

Test(proc, start_up_run_and_teardown, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    test_cfg(&cfg);
    struct gw_shm seg;
    open_segment(&cfg, &seg);

    struct gw_proc *p = malloc(sizeof(*p));
    cr_assert_not_null(p);
    cr_assert_eq(gw_proc_init(p, &cfg, GW_PROC_MESHIO), 0);
    cr_assert_eq(atomic_load(&gw_shm_proc(&seg, GW_PROC_MESHIO)->pid), (uint32_t)getpid());
    struct gw_ring *out = gw_proc_ring_produce(p, gw_ring_mesh_to_sch(&p->shm));
    struct gw_ring *in = gw_proc_ring_consume(p, gw_ring_sch_to_mesh(&p->shm));
    cr_assert_eq(atomic_load(&out->prod_pid), (uint32_t)getpid());
    cr_assert_eq(atomic_load(&in->cons_pid), (uint32_t)getpid());

    const uint32_t peers[] = { GW_BELL_SCHEDULER };
    cr_assert_eq(gw_proc_bells_open(p, GW_BELL_MESHIO, peers, 1), 0);
    int my_fd = gw_proc_bell_fd(p, GW_BELL_MESHIO), peer_fd = gw_proc_bell_fd(p, GW_BELL_SCHEDULER);
    cr_assert_geq(my_fd, 0);
    cr_assert_geq(peer_fd, 0);
    cr_assert_eq(gw_proc_bell_fd(p, GW_BELL_FRONTEND0), -1, "not opened");
    char path[600];
    struct stat st;
    gw_bell_path(&cfg, GW_BELL_MESHIO, path, sizeof(path));
    cr_assert_eq(stat(path, &st), 0);
    cr_assert(S_ISFIFO(st.st_mode));
    cr_assert_eq(gw_proc_store_open(p), 0);

    struct probe pr = { .p = p };
    struct gw_proc_hooks hooks = {
        .ctx = &pr, .on_bell = on_bell, .on_turn = on_turn, .on_hup = on_hup
    };
    cr_assert_eq(gw_proc_start(p, &hooks), 0);
    uv_timer_t deadline;
    cr_assert_eq(uv_timer_init(&p->loop, &deadline), 0);
    cr_assert_eq(uv_timer_start(&deadline, on_deadline, 5000, 0), 0);
    gw_proc_ready(p);
    cr_assert_eq(atomic_load(&gw_shm_proc(&seg, GW_PROC_MESHIO)->ready), 1);

    gw_bell_fifo_kick(my_fd); /* as the scheduler would */
    uint64_t turns0 = atomic_load(&p->stats->v[GW_STAT_loop_turns]);
    cr_assert_eq(gw_proc_run(p), GW_EXIT_OK);
    cr_assert_eq(pr.bells, 1, "the doorbell reached on_bell once");
    cr_assert_eq(pr.hups, 1, "SIGHUP reached on_hup");
    cr_assert(uv_is_active((uv_handle_t *)&deadline),
              "SIGTERM stopped the loop, not the 5 s deadline");
    cr_assert_geq(pr.turns, 1);
    cr_assert_eq(atomic_load(&p->stats->v[GW_STAT_loop_turns]) - turns0, (uint64_t)pr.turns,
                 "every turn counted in loop_turns");

    gw_proc_deinit(p);
    cr_assert_eq(fcntl(my_fd, F_GETFD), -1, "FIFOs closed at teardown");
    cr_assert_eq(errno, EBADF);
    cr_assert_eq(fcntl(peer_fd, F_GETFD), -1);
    free(p);
    gw_shm_close(&seg);
    cr_expect_eq(gw_shm_unlink(&cfg), 0);
}

/* A meshio role on the test's segment with its bell and the scheduler's
 * open, started with `hooks`; proc_done tears it and the segment down. */
static struct gw_proc *proc_started(const struct gw_config *cfg, struct gw_shm *seg,
                                    const struct gw_proc_hooks *hooks)
{
    open_segment(cfg, seg);
    struct gw_proc *p = malloc(sizeof(*p));
    cr_assert_not_null(p);
    cr_assert_eq(gw_proc_init(p, cfg, GW_PROC_MESHIO), 0);
    const uint32_t peers[] = { GW_BELL_SCHEDULER };
    cr_assert_eq(gw_proc_bells_open(p, GW_BELL_MESHIO, peers, 1), 0);
    cr_assert_eq(gw_proc_start(p, hooks), 0);
    return p;
}

static void proc_done(struct gw_proc *p, const struct gw_config *cfg, struct gw_shm *seg)
{
    gw_proc_deinit(p);
    free(p);
    gw_shm_close(seg);
    cr_expect_eq(gw_shm_unlink(cfg), 0);
}

struct spin_probe {
    struct gw_proc *p;
    int fd, bells;
};

static bool nothing_pending(void *ctx)
{
    (void)ctx;
    return false;
}

/* Rings again at once until polling is back on (bounded), then stops. */
static void on_bell_again(void *ctx)
{
    struct spin_probe *sp = ctx;
    sp->bells++;
    if (sp->p->spin_us > 0 || sp->bells >= 50)
        raise(SIGTERM);
    else
        gw_bell_fifo_kick(sp->fd);
}

static void on_noop(void *ctx)
{
    (void)ctx;
}

/* ring_poll_us (issue 13 item 2): polling decays to 0 over quiet spells and
 * must come back when bells ring close together again; it once stayed at 0
 * for good after the first quiet spell. */
Test(proc, polling_comes_back_after_it_decayed_to_zero, .init = mkdir_tmp, .fini = rm_tmp)
{
    struct gw_config cfg;
    test_cfg(&cfg);
    cfg.ring_poll_us = 10000;
    struct gw_shm seg;
    struct spin_probe sp = { 0 };
    struct gw_proc_hooks hooks = {
        .ctx = &sp, .on_bell = on_bell_again, .pending = nothing_pending, .on_hup = on_noop
    };
    struct gw_proc *p = proc_started(&cfg, &seg, &hooks);
    sp.p = p;
    sp.fd = gw_proc_bell_fd(p, GW_BELL_MESHIO);
    uv_timer_t deadline;
    cr_assert_eq(uv_timer_init(&p->loop, &deadline), 0);
    cr_assert_eq(uv_timer_start(&deadline, on_deadline, 5000, 0), 0);
    p->spin_us = 0; /* as after a quiet spell */
    gw_bell_fifo_kick(sp.fd);
    cr_assert_eq(gw_proc_run(p), GW_EXIT_OK);
    cr_assert(uv_is_active((uv_handle_t *)&deadline), "stopped by the probe, not the deadline");
    cr_assert_lt(sp.bells, 50, "polling stayed off through %d bells in a row", sp.bells);
    proc_done(p, &cfg, &seg);
}

/* Under AddressSanitizer malloc is ASan's allocator (freed blocks wait in
 * its quarantine), so malloc_trim has nothing of glibc's to give back. */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#define MALLOC_IS_GLIBC 0
#else
#define MALLOC_IS_GLIBC 1
#endif

static long anon_kib(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    cr_assert_not_null(f);
    char line[256];
    long kib = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Anonymous: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

static void on_stop_at(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* mem_trim_ms (issue 13 item 4): after a burst of small allocations is
 * freed, the pages go back to the system a moment later (free alone keeps
 * them: a live block above them pins the heap's top), once: the trim does
 * not re-arm itself, so an idle role keeps sleeping. */
Test(proc, a_burst_freed_leaves_resident_memory_once_and_idle_stays_idle, .init = mkdir_tmp,
     .fini = rm_tmp)
{
    struct gw_config cfg;
    test_cfg(&cfg);
    cfg.mem_trim_ms = 20;
    struct gw_shm seg;
    struct gw_proc_hooks hooks = { .on_bell = on_noop, .on_hup = on_noop };
    struct gw_proc *p = proc_started(&cfg, &seg, &hooks);

    enum { N = 32768, SZ = 1024 };
    void **v = malloc(N * sizeof(*v));
    cr_assert_not_null(v);
    for (int i = 0; i < N; i++) {
        v[i] = malloc(SZ);
        cr_assert_not_null(v[i]);
        memset(v[i], 0x5a, SZ);
    }
    void *pin = malloc(SZ); /* above the burst: free cannot shrink the heap's top */
    cr_assert_not_null(pin);
    for (int i = 0; i < N; i++)
        free(v[i]);
    long before = anon_kib();

    uv_timer_t stop;
    cr_assert_eq(uv_timer_init(&p->loop, &stop), 0);
    cr_assert_eq(uv_timer_start(&stop, on_stop_at, 400, 0), 0);
    gw_bell_fifo_kick(gw_proc_bell_fd(p, GW_BELL_MESHIO)); /* one turn of work */
    cr_assert_eq(gw_proc_run(p), GW_EXIT_OK);
    long after = anon_kib();
    cr_assert_eq(p->trims, 1, "one trim after the work, none while idle (%" PRIu64 ")", p->trims);
    if (MALLOC_IS_GLIBC)
        cr_assert_lt(after, before - (N * SZ / 1024) / 2,
                     "%ld kB anonymous before the trim, %ld after", before, after);
    free(pin);
    free(v);
    proc_done(p, &cfg, &seg);
}

static void on_test_timer(uv_timer_t *t)
{
    int *fired = t->data;
    (*fired)++;
}

/* The timers of the frontend and the scheduler are set up by one function:
 * the callback finds its context in handle->data, and the loop's teardown
 * closes the timer with everything else. */
Test(proc, timer_init_hands_the_context_to_the_callback)
{
    struct gw_proc *p = calloc(1, sizeof(*p));
    cr_assert_not_null(p);
    cr_assert_eq(uv_loop_init(&p->loop), 0);
    p->loop_ok = true;
    int fired = 0;
    uv_timer_t t, u;
    uv_timer_t *const timers[] = { &t, &u };
    gw_proc_timers_init(p, &fired, timers, 2);
    cr_assert_eq(t.data, &fired);
    cr_assert_eq(u.data, &fired);
    cr_assert_eq(uv_timer_start(&t, on_test_timer, 1, 0), 0);
    cr_assert_eq(uv_timer_start(&u, on_test_timer, 2, 0), 0);
    cr_assert_eq(uv_run(&p->loop, UV_RUN_DEFAULT), 0, "one-shot timers leave nothing active");
    cr_assert_eq(fired, 2);
    gw_proc_loop_close(p); /* closes both; uv_loop_close would fail on an open handle */
    cr_assert(uv_is_closing((uv_handle_t *)&t));
    cr_assert(uv_is_closing((uv_handle_t *)&u));
    free(p);
}
