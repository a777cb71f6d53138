/* SPDX-License-Identifier: MIT */
/* gw_proc.c - shared start-up and teardown of the role processes (see gw_proc.h). */
#include "gw_proc.h"
#include "gw_error.h"
#include "gw_fsafe.h"
#include "gw_clock.h"
#include "gw_log.h"

#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

int gw_proc_init(struct gw_proc *p, const struct gw_config *cfg, uint32_t slot_index)
{
    memset(p, 0, sizeof(*p));
    /* Tables that grow and shrink with load (issue 13 item 4) get their
     * own mappings from 64 KiB up, so freeing one returns its pages at
     * once. glibc's default threshold moves up to the size of the largest
     * mapping freed (up to 32 MiB): after one storm, the next one's tables
     * came from the heap and stayed resident after they were freed. */
    GW_IGNORE(mallopt(M_MMAP_THRESHOLD, 64 * 1024));
    p->cfg = *cfg;
    p->slot_index = slot_index;
    /* cpu_sched = batch: hand-offs between roles stop preempting the waker
     * mid-turn (SCHED_BATCH wakees never preempt on wake-up; sched(7)). Set
     * before any thread starts, so libuv's pool threads inherit it. Any
     * user may lower itself to SCHED_BATCH; a failure changes only speed. */
    if (strcmp(cfg->cpu_sched, "batch") == 0) {
        const struct sched_param sp = { .sched_priority = 0 };
        if (sched_setscheduler(0, SCHED_BATCH, &sp) != 0)
            gw_log_warn(GW_LOG_SYS, "cpu_sched = batch: %s; running as started", strerror(errno));
    }
    p->shm.fd = -1;
    p->my_bell_fd = -1;
    for (size_t i = 0; i < GW_PROC_MAX_BELLS; i++)
        p->bell_fd[i] = -1;
    int rc = uv_loop_init(&p->loop);
    if (rc != 0) {
        gw_log_err(GW_LOG_SYS, "uv_loop_init: %s", uv_strerror(rc));
        return GW_EXIT_FAIL;
    }
    p->loop_ok = true;
    char err[1024] = "";
    /* S9.2: the same checks as `coapgw` runs before it spawns a role, here
     * too because the role creates files in data_dir (FIFOs, LMDB). */
    if ((rc = gw_fsafe_data_dir(&p->cfg, err, sizeof(err))) != 0) {
        gw_log_err(GW_LOG_SYS, "refusing to start: %s", err[0] ? err : gw_strerror(rc));
        return rc == GW_EUNSAFE ? GW_EXIT_FATAL : GW_EXIT_FAIL;
    }
    if ((rc = gw_shm_open(&p->cfg, false, &p->shm, err, sizeof(err))) != 0) {
        gw_log_err(GW_LOG_RING, "%s", err);
        return rc == GW_ELAYOUT || rc == GW_EUNSAFE ? GW_EXIT_FATAL : GW_EXIT_FAIL;
    }
    /* `coapgw loglevel` and the supervisor's SIGUSR2 change the level here. */
    gw_log_attach_level(&p->shm.hdr->log_level);
    p->slot = gw_shm_proc(&p->shm, slot_index);
    p->stats = &p->slot->stats;
    atomic_store(&p->slot->pid, (uint32_t)getpid());
    return 0;
}

struct gw_ring *gw_proc_ring_produce(struct gw_proc *p, uint32_t idx)
{
    struct gw_ring *r = gw_shm_ring(&p->shm, idx);
    gw_ring_claim_producer(r, (uint32_t)getpid());
    return r;
}

struct gw_ring *gw_proc_ring_consume(struct gw_proc *p, uint32_t idx)
{
    struct gw_ring *r = gw_shm_ring(&p->shm, idx);
    gw_ring_claim_consumer(r, (uint32_t)getpid());
    return r;
}

int gw_proc_bell_open(struct gw_proc *p, uint32_t bell)
{
    if (bell >= GW_PROC_MAX_BELLS)
        return -EINVAL;
    if (p->bell_fd[bell] >= 0)
        return p->bell_fd[bell];
    char path[GW_CFG_STR + 64];
    gw_bell_path(&p->cfg, bell, path, sizeof(path));
    int fd = gw_bell_fifo_open(path);
    if (fd >= 0)
        p->bell_fd[bell] = fd;
    return fd;
}

int gw_proc_bells_open(struct gw_proc *p, uint32_t mine, const uint32_t *peers, size_t npeers)
{
    int rc = gw_proc_bell_open(p, mine);
    for (size_t i = 0; rc >= 0 && i < npeers; i++)
        rc = gw_proc_bell_open(p, peers[i]);
    if (rc < 0) {
        gw_log_err(GW_LOG_RING, "doorbell FIFOs in %s: %s", p->cfg.data_dir, gw_strerror(rc));
        return rc == GW_EUNSAFE ? GW_EXIT_FATAL : GW_EXIT_FAIL;
    }
    p->my_bell = gw_shm_bell(&p->shm, mine);
    p->my_bell_fd = p->bell_fd[mine];
    return 0;
}

int gw_proc_bell_fd(const struct gw_proc *p, uint32_t bell)
{
    return bell < GW_PROC_MAX_BELLS ? p->bell_fd[bell] : -1;
}

bool gw_proc_kick(struct gw_proc *p, uint32_t bell)
{
    /* should_wake first: it takes the sleeper's flag, whatever the FIFO. */
    if (!gw_bell_should_wake(gw_shm_bell(&p->shm, bell)) || gw_proc_bell_fd(p, bell) < 0)
        return false;
    gw_bell_fifo_kick(p->bell_fd[bell]);
    gw_stat_add(p->stats, GW_STAT_bell_writes, 1);
    return true;
}

int gw_proc_store_open(struct gw_proc *p)
{
    int rc = gw_store_open(&p->store, p->cfg.data_dir, (size_t)p->cfg.lmdb_map_mb);
    if (rc != 0) {
        gw_log_err(GW_LOG_STORE, "opening LMDB in %s: %s", p->cfg.data_dir, gw_strerror(rc));
        return GW_EXIT_FAIL;
    }
    return 0;
}

/* ---- polling before sleep (ring_poll_us, issue 13 item 2) ----
 * A wake-up through the FIFO costs a pipe write for the producer and a
 * context switch, an epoll_wait return and a read here. Under load the next
 * record comes within microseconds, so after work the role keeps polling its
 * rings from a uv_idle handle (epoll_wait with timeout 0 serves the sockets
 * meanwhile) with its bell marked awake. The length adapts: halved after a
 * poll that found nothing, doubled (up to ring_poll_us) when the bell rang
 * within ring_poll_us of falling asleep. Nothing polls after an idle spell,
 * so an idle gateway sleeps. */

static void spin_stop(struct gw_proc *p, uint64_t now)
{
    uv_idle_stop(&p->spin);
    p->spinning = false;
    if (!p->spin_found)
        p->spin_us /= 2;
    p->slept_us = now;
    gw_bell_prepare_sleep(p->my_bell);
    /* The usual re-check after announcing sleep: on_bell drains and sleeps. */
    if (p->hooks.pending(p->hooks.ctx))
        p->hooks.on_bell(p->hooks.ctx);
}

static void on_spin(uv_idle_t *h)
{
    struct gw_proc *p = h->data;
    uint64_t now = gw_mono_us();
    if (p->hooks.pending(p->hooks.ctx)) {
        p->hooks.on_bell(p->hooks.ctx);
        p->spin_last_us = now;
        p->spin_found = true;
    }
    if (now - p->spin_last_us >= p->spin_us) {
        spin_stop(p, now);
        return;
    }
    gw_bell_awake(p->my_bell);
}

static void spin_start(struct gw_proc *p, uint64_t now)
{
    if (!p->hooks.pending)
        return;
    if (p->spin_us == 0) {
        /* Not polling: the loop sleeps right after this bell, so a bell
         * soon after it turns polling back on (on_bell). Without this,
         * polling that had decayed to 0 never came back. */
        p->slept_us = now;
        return;
    }
    p->spin_last_us = now;
    if (p->spinning)
        return;
    p->spinning = true;
    p->spin_found = false;
    gw_bell_awake(p->my_bell);
    GW_IGNORE(uv_idle_start(&p->spin, on_spin));
}

static void on_bell(uv_poll_t *h, int status, int events)
{
    (void)status; /* an error on our own FIFO changes nothing: serve the rings */
    (void)events;
    struct gw_proc *p = h->data;
    gw_bell_fifo_drain(p->my_bell_fd);
    p->hooks.on_bell(p->hooks.ctx);
    uint64_t now = gw_mono_us();
    uint32_t max = (uint32_t)p->cfg.ring_poll_us;
    /* Woken soon after falling asleep: polling would have caught it. */
    if (max && p->slept_us && now - p->slept_us < max)
        p->spin_us = GW_MIN(max, GW_MAX(2 * p->spin_us, 8u));
    spin_start(p, now);
}

/* mem_trim_ms: memory a burst freed stays resident in glibc's heap
 * (fragmented chunks below the top are never trimmed by free), so the
 * resident size keeps the burst's high-water mark. malloc_trim(0) returns
 * every free page. A one-shot timer, armed in the check phase of a loop
 * turn: it runs at most once per mem_trim_ms under load and once after a
 * burst. The check phase after the trim runs only once the poll returns
 * with new work, so the trim never re-arms itself and an idle role sleeps. */
static void on_trim(uv_timer_t *t)
{
    struct gw_proc *p = t->data;
    GW_IGNORE(malloc_trim(0));
    p->trims++;
}

static void trim_arm(struct gw_proc *p)
{
    if (p->cfg.mem_trim_ms > 0 && p->trim.data && !uv_is_active((uv_handle_t *)&p->trim))
        GW_IGNORE(uv_timer_start(&p->trim, on_trim, (uint64_t)p->cfg.mem_trim_ms, 0));
}

static void on_turn(uv_check_t *h)
{
    struct gw_proc *p = h->data;
    trim_arm(p);
    /* Runs once per loop turn, after the poll: counts wake-ups for the benchmark. */
    gw_stat_add(p->stats, GW_STAT_loop_turns, 1);
    if (p->hooks.on_turn)
        p->hooks.on_turn(p->hooks.ctx);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct gw_proc *p = h->data;
    if (signum == SIGHUP) {
        p->hooks.on_hup(p->hooks.ctx);
        return;
    }
    gw_log_info(GW_LOG_SYS, "signal %d: stopping", signum);
    uv_stop(&p->loop);
}

int gw_proc_start(struct gw_proc *p, const struct gw_proc_hooks *hooks)
{
    p->hooks = *hooks;
    int rc = 0;
    /* handle->data is set after each init: init owns the handle's fields. */
    if (hooks->on_bell) {
        rc = uv_poll_init(&p->loop, &p->bell_poll, p->my_bell_fd);
        if (rc == 0) {
            p->bell_poll.data = p;
            rc = uv_poll_start(&p->bell_poll, UV_READABLE, on_bell);
        }
    }
    if (rc == 0 && hooks->on_bell && hooks->pending) {
        rc = uv_idle_init(&p->loop, &p->spin);
        p->spin.data = p;
        p->spin_us = (uint32_t)p->cfg.ring_poll_us;
    }
    if (rc == 0) {
        rc = uv_timer_init(&p->loop, &p->trim);
        p->trim.data = p;
    }
    if (rc == 0)
        rc = uv_check_init(&p->loop, &p->turn_check);
    if (rc == 0) {
        p->turn_check.data = p;
        rc = uv_check_start(&p->turn_check, on_turn);
    }
    const int sigs[3] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (sigs[i] == SIGHUP && !hooks->on_hup)
            continue;
        rc = uv_signal_init(&p->loop, &p->sig[i]);
        if (rc == 0) {
            p->sig[i].data = p;
            rc = uv_signal_start(&p->sig[i], on_signal, sigs[i]);
        }
    }
    if (rc) {
        gw_log_err(GW_LOG_SYS, "setting up the event loop: %s", uv_strerror(rc));
        return GW_EXIT_FAIL;
    }
    /* A peer that went away must not kill us with a write. */
    signal(SIGPIPE, SIG_IGN);
    return 0;
}

void gw_proc_timers_init(struct gw_proc *p, void *data, uv_timer_t *const t[], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        /* Cannot fail on an initialised loop: libuv's uv_timer_init only
         * fills the handle in (src/timer.c) and returns 0. */
        (void)uv_timer_init(&p->loop, t[i]);
        t[i]->data = data;
    }
}

void gw_proc_ready(struct gw_proc *p)
{
    atomic_store(&p->slot->ready, 1);
}

int gw_proc_run(struct gw_proc *p)
{
    uv_run(&p->loop, UV_RUN_DEFAULT);
    return GW_EXIT_OK;
}

void gw_proc_stop(struct gw_proc *p)
{
    uv_stop(&p->loop);
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void gw_proc_loop_close(struct gw_proc *p)
{
    if (!p->loop_ok || p->loop_closed)
        return;
    p->loop_closed = true;
    uv_walk(&p->loop, close_handle, NULL);
    /* Nothing is active any more: this returns once the close callbacks ran. */
    uv_run(&p->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&p->loop);
    if (rc != 0)
        gw_log_warn(GW_LOG_SYS, "uv_loop_close: %s", uv_strerror(rc));
}

void gw_proc_deinit(struct gw_proc *p)
{
    gw_proc_loop_close(p);
    gw_store_close(&p->store);
    for (size_t i = 0; i < GW_PROC_MAX_BELLS; i++)
        if (p->bell_fd[i] >= 0) {
            close(p->bell_fd[i]);
            p->bell_fd[i] = -1;
        }
    p->my_bell_fd = -1;
    gw_shm_close(&p->shm);
}
