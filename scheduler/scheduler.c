/* SPDX-License-Identifier: MIT */
/* scheduler.c - glue of the scheduler process: rings, doorbells, timers,
 * LMDB; all decisions are in sch_core.c and sch_observe.c. */
#include "scheduler.h"
#include "sch_core.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_proc.h"
#include "gw_rand.h"
#include "gw_registry.h"
#include "gw_shm.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

struct sch_ctx {
    struct gw_config cfg;
    struct gw_proc p;       /* loop, shared segment, doorbells, LMDB, signals */
    struct gw_shm *shm;     /* &p.shm */
    struct gw_store *store; /* &p.store */
    uv_timer_t timer, stats_timer;
    struct sch_core *core;
    struct gw_regtypes regtypes; /* the registry's device types, for device_type (issue 13) */
    /* The core's clock: read once per loop turn and per drain round (issue
     * 13), expired by on_turn, at each round of drain_all and at each timer. */
    struct gw_turn_clock tclock;
    struct gw_clock clock;
    struct gw_stats *stats;
    uint32_t nfe;
    uint64_t fe_kick; /* bit per frontend with new records */
    bool mesh_kick;
    struct gw_log_limit full_log;
    struct gw_rand rng;
    /* Liveness of each frontend, checked with kill(pid, 0) at most every
     * 100 ms rather than per answer. */
    struct {
        uint32_t pid;
        bool alive;
        uint64_t at;
    } * fe_live;
    /* Records a full frontend ring refused, kept in order and retried (a
     * notification burst to thousands of observers must not be dropped). */
    struct ovf {
        struct ovf *next;
        uint32_t fe;
        uint32_t len;
        uint8_t rec[];
    } * ovf_head, *ovf_tail;
    size_t ovf_bytes;
    uv_timer_t ovf_timer;
    uint8_t rec[GW_RING_SLOT];
};

static bool fe_alive(struct sch_ctx *s, uint32_t i)
{
    struct gw_ring *r = gw_shm_ring(s->shm, gw_ring_sch_to_fe(s->shm, i));
    uint32_t pid = atomic_load_explicit(&r->cons_pid, memory_order_relaxed);
    uint64_t now = gw_turn_clock_ms(&s->tclock);
    if (pid != s->fe_live[i].pid || now - s->fe_live[i].at >= 100) {
        s->fe_live[i].pid = pid;
        s->fe_live[i].alive = gw_pid_alive(pid);
        s->fe_live[i].at = now;
    }
    return s->fe_live[i].alive;
}

#define SCH_OVF_MAX_BYTES (64u << 20)

static void arm_ovf(struct sch_ctx *s);

/* Moves queued records into their rings while there is room. */
static void flush_ovf(struct sch_ctx *s)
{
    while (s->ovf_head) {
        struct ovf *o = s->ovf_head;
        struct gw_ring *r = gw_shm_ring(s->shm, gw_ring_sch_to_fe(s->shm, o->fe));
        if (gw_ring_push(r, o->rec, o->len) != 0)
            break;
        s->fe_kick |= 1ull << o->fe;
        s->ovf_head = o->next;
        if (!s->ovf_head)
            s->ovf_tail = NULL;
        s->ovf_bytes -= o->len;
        free(o);
    }
    arm_ovf(s);
}

/* Answers go to the frontend that took the request, or to any live one
 * when it is gone: they all serve the same port (S1.4). A full ring (a
 * notification burst) queues the record here, in order, bounded. */
static int to_client(void *ctx, struct gw_msg *env, const uint8_t *data)
{
    struct sch_ctx *s = ctx;
    uint32_t fe = env->fe < s->nfe ? env->fe : 0;
    if (!fe_alive(s, fe)) {
        for (uint32_t i = 0; i < s->nfe; i++)
            if (fe_alive(s, (fe + i) % s->nfe)) {
                fe = (fe + i) % s->nfe;
                break;
            }
    }
    struct gw_ring *r = gw_shm_ring(s->shm, gw_ring_sch_to_fe(s->shm, fe));
    /* Answers never wait in this (memory-only) queue: a full ring leaves them
     * in their transaction slot (shared memory, ANSWERED) to be sent again,
     * so a scheduler crash cannot lose them. Notifications may wait here. */
    bool notify = env->flags & GW_MF_NOTIFY;
    int rc =
        (s->ovf_head && notify) ? GW_EFULL : gw_ring_push2(r, env, sizeof(*env), data, env->len);
    if (rc == GW_EFULL && notify && s->ovf_bytes < SCH_OVF_MAX_BYTES) {
        uint32_t len = (uint32_t)sizeof(*env) + env->len;
        struct ovf *o = malloc(sizeof(*o) + len);
        if (o) {
            o->next = NULL;
            o->fe = fe;
            o->len = len;
            memcpy(o->rec, env, sizeof(*env));
            memcpy(o->rec + sizeof(*env), data, env->len);
            if (s->ovf_tail)
                s->ovf_tail->next = o;
            else
                s->ovf_head = o;
            s->ovf_tail = o;
            s->ovf_bytes += len;
            rc = 0;
        }
    }
    if (rc == 0) {
        s->fe_kick |= 1ull << fe;
        env->fe = (uint8_t)fe;
    }
    return rc;
}

/* Client-facing MIDs come from the frontend's counter in its proc slot,
 * shared with the frontend itself (gw_shm.h), so the MIDs of answers the
 * scheduler keeps never clash with the frontend's own. */
static int client_mid(void *ctx, uint8_t fe)
{
    struct sch_ctx *s = ctx;
    if (fe >= s->nfe)
        return -1;
    struct gw_proc_slot *ps = gw_shm_proc(s->shm, GW_PROC_FRONTEND0 + fe);
    return (int)(uint16_t)atomic_fetch_add_explicit(&ps->client_mid, 1, memory_order_relaxed);
}

static int to_mesh(void *ctx, const struct gw_msg *env, const uint8_t *data)
{
    struct sch_ctx *s = ctx;
    int rc = gw_ring_push2(gw_shm_ring(s->shm, gw_ring_sch_to_mesh(s->shm)), env, sizeof(*env),
                           data, env->len);
    if (rc == 0)
        s->mesh_kick = true;
    return rc;
}

static int device_type(void *ctx, const uint8_t mac[GW_MAC_LEN])
{
    struct sch_ctx *s = ctx;
    int type = gw_registry_type_cached(&s->regtypes, s->store, mac);
    if (type < 0)
        return GW_ENOTFOUND;
    return type == GW_DEV_MILLI ? 1 : 0;
}

/* Timeout jitter and MIDs need no cryptographic randomness: seeded at the
 * first draw (the state is never 0 after seeding, gw_rand.h). */
static uint32_t rand32(void *ctx)
{
    struct sch_ctx *s = ctx;
    if (s->rng.s == 0)
        gw_rand_seed_random(&s->rng);
    return gw_rand_u32(&s->rng);
}

static void kick_peers(struct sch_ctx *s)
{
    for (uint32_t i = 0; s->fe_kick && i < s->nfe; i++)
        if (s->fe_kick & (1ull << i))
            gw_proc_kick(&s->p, GW_BELL_FRONTEND0 + i);
    s->fe_kick = 0;
    if (s->mesh_kick)
        gw_proc_kick(&s->p, GW_BELL_MESHIO);
    s->mesh_kick = false;
}

static void arm_timer(struct sch_ctx *s, uint64_t next);

static void on_ovf_timer(uv_timer_t *t)
{
    struct sch_ctx *s = t->data;
    gw_turn_clock_expire(&s->tclock);
    flush_ovf(s);
    kick_peers(s);
}

/* While records wait, look again every millisecond (only under overload). */
static void arm_ovf(struct sch_ctx *s)
{
    if (s->ovf_head && !uv_is_active((uv_handle_t *)&s->ovf_timer))
        uv_timer_start(&s->ovf_timer, on_ovf_timer, 1, 1);
    else if (!s->ovf_head && uv_is_active((uv_handle_t *)&s->ovf_timer))
        uv_timer_stop(&s->ovf_timer);
}

static void on_timer(uv_timer_t *t)
{
    struct sch_ctx *s = t->data;
    gw_turn_clock_expire(&s->tclock);
    uint64_t next = sch_core_on_timer(s->core);
    kick_peers(s);
    arm_timer(s, next);
}

static void arm_timer(struct sch_ctx *s, uint64_t next)
{
    if (next == UINT64_MAX) {
        uv_timer_stop(&s->timer);
        return;
    }
    /* A reading older than the real clock makes the delay longer, never
     * shorter: the timer does not fire before `next`. */
    uint64_t now = gw_turn_clock_ms(&s->tclock);
    uv_timer_start(&s->timer, on_timer, next > now ? next - now : 0, 0);
}

static int drain_ring(struct sch_ctx *s, struct gw_ring *r, int budget)
{
    int n = 0;
    for (; n < budget; n++) {
        struct gw_msg m;
        const uint8_t *data;
        int rc = gw_msg_pop(r, s->rec, sizeof(s->rec), &m, &data);
        if (rc == GW_EEMPTY)
            break;
        if (rc != 0)
            gw_stat_add(s->stats, GW_STAT_rx_malformed, 1);
        else
            sch_core_on_record(s->core, &m, data);
    }
    return n;
}

static bool rings_empty(struct sch_ctx *s)
{
    for (uint32_t i = 0; i < s->nfe; i++)
        if (!gw_ring_empty(gw_shm_ring(s->shm, gw_ring_fe_to_sch(i))))
            return false;
    return gw_ring_empty(gw_shm_ring(s->shm, gw_ring_mesh_to_sch(s->shm)));
}

static void drain_all(struct sch_ctx *s)
{
    for (int round = 0; round < 64; round++) {
        gw_turn_clock_expire(&s->tclock);
        gw_bell_awake(s->p.my_bell);
        int n = drain_ring(s, gw_shm_ring(s->shm, gw_ring_mesh_to_sch(s->shm)), 1024);
        for (uint32_t i = 0; i < s->nfe; i++)
            n += drain_ring(s, gw_shm_ring(s->shm, gw_ring_fe_to_sch(i)), 256);
        kick_peers(s);
        gw_bell_prepare_sleep(s->p.my_bell);
        if (n == 0 && rings_empty(s))
            break;
    }
    flush_ovf(s);
    sch_core_flush(s->core);
    uint64_t next = sch_core_on_timer(s->core);
    kick_peers(s);
    arm_timer(s, next);
}

static bool pending(void *ctx)
{
    return !rings_empty(ctx);
}

static void on_bell(void *ctx)
{
    drain_all(ctx);
}

/* End of a loop turn: the next turn reads the clock again. */
static void on_turn(void *ctx)
{
    struct sch_ctx *s = ctx;
    gw_turn_clock_expire(&s->tclock);
}

static void on_stats(uv_timer_t *t)
{
    struct sch_ctx *s = t->data;
    struct sch_core_counts c;
    sch_core_counts(s->core, &c);
    gw_stat_set(s->stats, GW_STAT_queue_depth, c.queued);
    gw_stat_set(s->stats, GW_STAT_inflight, c.inflight);
    gw_stat_set(s->stats, GW_STAT_txn_used, c.txns);
    gw_stat_set(s->stats, GW_STAT_cache_entries, c.cache_entries);
    gw_stat_set(s->stats, GW_STAT_observations, c.observations);
    gw_stat_set(s->stats, GW_STAT_observers, c.observers);
}

/* Loads devices_file into the registry, all or nothing (S7.2): a file with
 * a bad line changes nothing (each line is logged as file:line). At start
 * (force = false, only when the file changed) a refused file keeps the
 * registry of the last good load; with no registry at all there is nothing
 * to serve, and that is a configuration error (GW_ECONFIG). */
static int import_devices(struct sch_ctx *s, bool force)
{
    if (!s->cfg.devices_file[0])
        return 0;
    int bad = 0;
    int rc = force ? gw_registry_import(s->store, s->cfg.devices_file, &bad)
                   : gw_registry_sync(s->store, s->cfg.devices_file, &bad);
    if (rc >= 0)
        return 0;
    size_t have = gw_registry_count(s->store);
    if (!force && have == 0) {
        gw_log_err(GW_LOG_STORE,
                   "devices_file %s: %s, and no earlier registry to keep: refusing to start",
                   s->cfg.devices_file, bad ? "bad lines (above)" : gw_strerror(rc));
        return GW_ECONFIG;
    }
    gw_log_err(GW_LOG_STORE,
               "devices_file %s: %s; the registry keeps its %zu devices from the last good load",
               s->cfg.devices_file, bad ? "bad lines (above)" : gw_strerror(rc), have);
    return 0;
}

/* SIGHUP: the devices file again (S7.2); the supervisor forwards its own. */
static void on_hup(void *ctx)
{
    struct sch_ctx *s = ctx;
    gw_log_info(GW_LOG_STORE, "SIGHUP: re-reading %s", s->cfg.devices_file);
    GW_IGNORE(import_devices(s, true));
}

/* Every ring with the frontends and meshio, and their doorbells. A frontend
 * doorbell that cannot be opened is skipped (that frontend is not woken)
 * unless it is unsafe (S9.2). 0 or an exit code. */
static int claim_rings(struct sch_ctx *s)
{
    for (uint32_t i = 0; i < s->nfe; i++) {
        gw_proc_ring_consume(&s->p, gw_ring_fe_to_sch(i));
        gw_proc_ring_produce(&s->p, gw_ring_sch_to_fe(s->shm, i));
        int fd = gw_proc_bell_open(&s->p, GW_BELL_FRONTEND0 + i);
        if (fd == GW_EUNSAFE) {
            gw_log_err(GW_LOG_RING, "doorbell FIFO of frontend %u in %s: %s", i, s->cfg.data_dir,
                       gw_strerror(fd));
            return GW_EXIT_FATAL;
        }
    }
    gw_proc_ring_produce(&s->p, gw_ring_sch_to_mesh(s->shm));
    gw_proc_ring_consume(&s->p, gw_ring_mesh_to_sch(s->shm));
    const uint32_t peers[] = { GW_BELL_MESHIO };
    return gw_proc_bells_open(&s->p, GW_BELL_SCHEDULER, peers, 1);
}

/* The decisions (sch_core) over the transaction table and response cache
 * in shared memory; observations resumed from LMDB. 0 or an exit code. */
static int setup_core(struct sch_ctx *s)
{
    struct sch_out out = { s, to_client, to_mesh, device_type, rand32, client_mid };
    int rc = sch_core_new(&s->cfg, &s->clock, &out, gw_shm_txn(s->shm, 0), s->shm->hdr->max_txn,
                          s->shm->hdr->txn_slot, s->store, s->stats, &s->core);
    if (rc) {
        gw_log_err(GW_LOG_SYS, "scheduler set-up: %s", gw_strerror(rc));
        return GW_EXIT_FAIL;
    }
    struct gw_rcache rc_tab;
    gw_shm_rcache(s->shm, &rc_tab);
    sch_core_set_rcache(s->core, &rc_tab); /* before anything is cached or served */
    sch_core_resume_observations(s->core);
    return 0;
}

static void setup_timers(struct sch_ctx *s)
{
    uv_timer_t *const timers[] = { &s->timer, &s->stats_timer, &s->ovf_timer };
    gw_proc_timers_init(&s->p, s, timers, GW_ARRAY_LEN(timers));
    uv_timer_start(&s->stats_timer, on_stats, 1000, 1000);
}

int sch_run(const struct gw_config *cfg)
{
    struct sch_ctx *s = calloc(1, sizeof(*s));
    if (!s)
        return GW_EXIT_FAIL;
    s->shm = &s->p.shm;
    s->store = &s->p.store;
    gw_regtypes_init(&s->regtypes);
    s->clock = gw_clock_turn(&s->tclock);
    int code = gw_proc_init(&s->p, cfg, GW_PROC_SCHEDULER);
    if (code)
        goto out;
    s->cfg = s->p.cfg;
    s->stats = s->p.stats;
    s->nfe = s->shm->hdr->max_frontends;
    s->fe_live = calloc(s->nfe, sizeof(*s->fe_live));
    code = GW_EXIT_FAIL;
    if (!s->fe_live)
        goto out;
    struct gw_proc_hooks hooks = {
        .ctx = s, .on_bell = on_bell, .on_turn = on_turn, .on_hup = on_hup, .pending = pending
    };
    if ((code = claim_rings(s)) != 0 || (code = gw_proc_store_open(&s->p)) != 0)
        goto out;
    if (import_devices(s, false) != 0) {
        code = GW_EXIT_FATAL;
        goto out;
    }
    if ((code = setup_core(s)) != 0)
        goto out;
    gw_proc_ready(&s->p);
    if ((code = gw_proc_start(&s->p, &hooks)) != 0)
        goto out;
    setup_timers(s);
    gw_log_info(GW_LOG_SYS, "scheduler ready: %u frontends, %u transaction slots, %zu devices",
                s->nfe, s->shm->hdr->max_txn, gw_registry_count(s->store));
    drain_all(s);
    code = gw_proc_run(&s->p);
out:
    gw_proc_loop_close(&s->p);
    sch_core_free(s->core);
    gw_regtypes_deinit(&s->regtypes);
    free(s->fe_live);
    while (s->ovf_head) {
        struct ovf *o = s->ovf_head;
        s->ovf_head = o->next;
        free(o);
    }
    gw_proc_deinit(&s->p);
    free(s);
    return code;
}
