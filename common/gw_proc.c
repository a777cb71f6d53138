/* SPDX-License-Identifier: MIT */
/* gw_proc.c - shared start-up and teardown of the role processes (see gw_proc.h). */
#include "gw_proc.h"
#include "gw_error.h"
#include "gw_fsafe.h"
#include "gw_log.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

int gw_proc_init(struct gw_proc *p, const struct gw_config *cfg, uint32_t slot_index)
{
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    p->slot_index = slot_index;
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

static void on_bell(uv_poll_t *h, int status, int events)
{
    (void)status; /* an error on our own FIFO changes nothing: serve the rings */
    (void)events;
    struct gw_proc *p = h->data;
    gw_bell_fifo_drain(p->my_bell_fd);
    p->hooks.on_bell(p->hooks.ctx);
}

static void on_turn(uv_check_t *h)
{
    struct gw_proc *p = h->data;
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
