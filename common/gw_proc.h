/* SPDX-License-Identifier: MIT */
/* gw_proc.h - the start-up and teardown every role process shares
 * (frontend, scheduler, meshio): the one place where the event loop is set
 * up, so that the roles differ only in what they do on a wake-up.
 *
 * Start-up, in this order (each step logs one line and returns an exit
 * code when it fails, so a role writes `if ((code = step) != 0) goto out`):
 *   gw_proc_init        uv_loop_init (checked); data_dir through the local
 *                       trust checks (gw_fsafe_data_dir, S9.2: created 0700
 *                       when missing, owner and modes checked); the shared
 *                       segment attached; the log level followed from it
 *                       (`coapgw loglevel`, the supervisor's SIGUSR2); the
 *                       process slot (pid, stats) taken
 *   gw_proc_ring_*      ring claims: this pid becomes producer/consumer
 *   gw_proc_bells_open  this role's doorbell FIFO and its peers'
 *   gw_proc_store_open  LMDB (gw_store_open: mdb_reader_check at every open)
 *   gw_proc_start       the loop's handles: the own doorbell (uv_poll), one
 *                       uv_check per loop turn (counts loop_turns), signals
 *                       (TERM/INT stop, HUP to the role or default), SIGPIPE
 *                       ignored
 *   gw_proc_ready       readiness in the process slot (the supervisor's
 *                       /ready and the frontends wait on the scheduler's)
 *   gw_proc_run         the loop, until a signal stops it
 * Teardown: gw_proc_loop_close (every handle closed, uv_loop_close must
 * return 0, else logged), then the role frees its own state, then
 * gw_proc_deinit (bells, LMDB, shared segment). Both are safe after a
 * failed or partial start-up. */
#ifndef GW_PROC_H
#define GW_PROC_H

#include "gw_config.h"
#include "gw_defs.h"
#include "gw_ring.h"
#include "gw_shm.h"
#include "gw_store.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* Exit codes of a role: the supervisor respawns after GW_EXIT_FAIL, never
 * after GW_EXIT_FATAL (gw_defs.h: a configuration or trust error that a
 * restart cannot fix). */
#define GW_EXIT_OK 0
#define GW_EXIT_FAIL 1

/* Room for the scheduler's, meshio's and 64 frontends' doorbells. */
#define GW_PROC_MAX_BELLS (GW_BELL_FRONTEND0 + 64)

struct gw_proc_hooks {
    void *ctx;                  /* passed to every hook */
    void (*on_bell)(void *ctx); /* own doorbell rang (FIFO already drained); NULL: no poll */
    void (*on_turn)(void *ctx); /* end of every loop turn, after the poll; may be NULL */
    void (*on_hup)(void *ctx);  /* SIGHUP; NULL leaves SIGHUP its default action */
    /* Whether the role's rings hold records; NULL: no polling before sleep
     * (ring_poll_us). on_bell must then drain them, the doorbell protocol
     * included (gw_bell_awake ... gw_bell_prepare_sleep, re-check). */
    bool (*pending)(void *ctx);
};

struct gw_proc {
    struct gw_config cfg; /* data_dir is the checked real path */
    uint32_t slot_index;  /* GW_PROC_* */
    uv_loop_t loop;
    bool loop_ok, loop_closed;
    struct gw_shm shm;
    struct gw_proc_slot *slot;
    struct gw_stats *stats;
    struct gw_store store;
    struct gw_bell *my_bell; /* this role's doorbell in the segment */
    int my_bell_fd;
    int bell_fd[GW_PROC_MAX_BELLS]; /* every FIFO opened, by GW_BELL_* index; -1 */
    uv_poll_t bell_poll;
    uv_check_t turn_check;
    /* Polling before sleep (ring_poll_us): while `spin` runs, the loop does
     * not block and the bell stays marked awake, so producers do not write
     * the FIFO. spin_us adapts within [0, ring_poll_us]. */
    uv_idle_t spin;
    bool spinning, spin_found;
    uint32_t spin_us;
    uint64_t spin_last_us, slept_us;
    uv_signal_t sig[3];
    struct gw_proc_hooks hooks;
    /* mem_trim_ms: a one-shot timer armed by the loop turns. */
    uv_timer_t trim;
    uint64_t trims;
};

/* Steps of start-up. Each returns 0, or an exit code (GW_EXIT_FAIL or
 * GW_EXIT_FATAL) after logging what failed. */
int gw_proc_init(struct gw_proc *p, const struct gw_config *cfg, uint32_t slot_index) GW_NODISCARD;
/* Opens this role's doorbell FIFO `mine` and each of `peers`; their
 * descriptors are then gw_proc_bell_fd(). An unsafe FIFO (S9.2) is fatal. */
int gw_proc_bells_open(struct gw_proc *p, uint32_t mine, const uint32_t *peers,
                       size_t npeers) GW_NODISCARD;
/* One doorbell FIFO, no log: its descriptor, or a negative error (GW_EUNSAFE,
 * -errno), for roles that tolerate a missing peer. */
int gw_proc_bell_open(struct gw_proc *p, uint32_t bell) GW_NODISCARD;
int gw_proc_store_open(struct gw_proc *p) GW_NODISCARD;
int gw_proc_start(struct gw_proc *p, const struct gw_proc_hooks *hooks) GW_NODISCARD;

/* Claims ring `idx` of the segment for this process and returns it. */
struct gw_ring *gw_proc_ring_produce(struct gw_proc *p, uint32_t idx);
struct gw_ring *gw_proc_ring_consume(struct gw_proc *p, uint32_t idx);
/* The descriptor of doorbell FIFO `bell`, or -1 when it is not open. */
int gw_proc_bell_fd(const struct gw_proc *p, uint32_t bell);
/* Rings doorbell `bell` if its owner sleeps; counts it in bell_writes.
 * Returns whether it rang. */
bool gw_proc_kick(struct gw_proc *p, uint32_t bell);

/* Sets up the n timers t[] on the role's loop with handle data `data` (the
 * role's context, as every callback wants it); gw_proc_loop_close closes
 * them with the other handles. */
void gw_proc_timers_init(struct gw_proc *p, void *data, uv_timer_t *const t[], size_t n);

void gw_proc_ready(struct gw_proc *p);
/* Runs the loop until gw_proc_stop (TERM/INT); returns GW_EXIT_OK. */
int gw_proc_run(struct gw_proc *p);
void gw_proc_stop(struct gw_proc *p);

void gw_proc_loop_close(struct gw_proc *p);
void gw_proc_deinit(struct gw_proc *p);

#endif
