/* SPDX-License-Identifier: MIT */
/* frontend.c - glue of the frontend process: libuv loop, the UDP socket
 * (SO_REUSEPORT, recvmmsg, batched sendmmsg), the ring pair to the
 * scheduler and its doorbells, timers and signals. Request handling is in
 * fe_core.c. */
#include "frontend.h"
#include "fe_core.h"
#include "fe_auth.h"
#include "fe_block.h"
#include "fe_local.h"
#include "fe_msglayer.h"
#include "fe_portclaim.h"
#include "fe_route.h"
#include "fe_session.h"
#include "gw_coap.h"
#include "gw_clock.h"
#include "gw_error.h"
#include "gw_fsafe.h"
#include "gw_log.h"
#include "gw_msg.h"
#include "gw_proc.h"
#include "gw_registry.h"
#include "gw_shm.h"
#include "gw_store.h"
#include "gw_udp.h"

#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

/* recvmmsg through libuv (UV_UDP_RECVMMSG): up to 20 datagrams of up to
 * 64 KiB each per call; larger than max_message still reads whole, so an
 * over-size request can be answered 4.13 (S3.5). */
#define FE_RX_BUF (20 * 65536)

struct fe_ctx {
    struct gw_config cfg;
    int index;
    struct gw_proc p; /* loop, shared segment, doorbells, LMDB, signals */
    uv_udp_t udp;
    uv_timer_t rtx_timer, sweep_timer;
    uv_timer_t lazy_timer; /* rings for records that need no prompt wake-up */
    int sock;
    int claim_fd; /* abstract unix name: this instance serves the port */
    struct gw_ring *to_sch, *from_sch;
    struct fe_auth *auth;
    struct gw_coap_parser *parser, *rc_parser;
    struct gw_stats *stats;
    struct fe_core core;
    struct fe_guard guard; /* when a cache hit may be answered here (fe_guard.h) */
    bool start_pending;    /* GW_MSG_FE_START not yet in the scheduler's ring */
    bool sch_kick;
    bool sch_lazy;  /* records in the ring that may wait for the scheduler's next wake-up */
    bool rtx_dirty; /* the retransmission table changed this turn: re-arm its timer */
    /* Datagrams for clients, sent in batches (gw_udp.h). */
    struct gw_udp_txq txq;
    uint8_t txbuf[GW_UDP_BATCH * 256 + 2 * (GW_COAP_MAX_MSG + 64)];
    uint8_t rxbuf[FE_RX_BUF];
    uint8_t rec[GW_RING_SLOT];
};

static void fe_flush(struct fe_ctx *fe)
{
    gw_stat_add(fe->stats, GW_STAT_tx_datagrams, gw_udp_txq_flush(&fe->txq));
}

static void fe_send(struct fe_ctx *fe, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = gw_ep_to_sa(ep, &ss);
    unsigned sent = gw_udp_txq_add(&fe->txq, (const struct sockaddr *)&ss, sl, buf, len);
    if (sent)
        gw_stat_add(fe->stats, GW_STAT_tx_datagrams, sent);
}

/* ---- rings ---- */

/* A GW_MSG_ANSWER_DONE (the client ACKed a kept answer) only lets the
 * scheduler free a slot early; it drains it with whatever wakes it next. At
 * low load that record was a second wake-up of the scheduler per request
 * (issue 13 item 2), so it rings no bell of its own: at most this long
 * after it, if nothing else woke the scheduler meanwhile. */
#define FE_LAZY_KICK_MS 50

static void on_lazy_timer(uv_timer_t *t)
{
    struct fe_ctx *fe = t->data;
    if (fe->sch_lazy)
        gw_proc_kick(&fe->p, GW_BELL_SCHEDULER);
    fe->sch_lazy = false;
}

static void kick_scheduler(struct fe_ctx *fe)
{
    if (fe->start_pending)
        fe->start_pending = fe_core_announce_start(&fe->core) != 0;
    if (fe->sch_kick) {
        gw_proc_kick(&fe->p, GW_BELL_SCHEDULER);
        fe->sch_lazy = false; /* a woken scheduler drains the whole ring */
    } else if (fe->sch_lazy && !uv_is_active((uv_handle_t *)&fe->lazy_timer)) {
        uv_timer_start(&fe->lazy_timer, on_lazy_timer, FE_LAZY_KICK_MS, 0);
    }
    fe->sch_kick = false;
}

static int io_to_sch(void *ctx, const struct gw_msg *m, const uint8_t *data)
{
    struct fe_ctx *fe = ctx;
    int rc = gw_ring_push2(fe->to_sch, m, sizeof(*m), data, m->len);
    if (rc == 0 && m->kind == GW_MSG_ANSWER_DONE)
        fe->sch_lazy = true;
    else if (rc == 0)
        fe->sch_kick = true;
    return rc;
}

static void io_send(void *ctx, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    fe_send(ctx, ep, buf, len);
}

/* Client-facing MIDs from the counter in shared memory (gw_shm.h): the
 * scheduler takes the MIDs of the answers it keeps from it too, and a
 * successor goes on where this process stopped. */
static uint16_t io_mid(void *ctx)
{
    struct fe_ctx *fe = ctx;
    return (uint16_t)atomic_fetch_add_explicit(&fe->p.slot->client_mid, 1, memory_order_relaxed);
}

static void arm_rtx_timer(struct fe_ctx *fe);

static void drain_from_sch(struct fe_ctx *fe)
{
    for (int i = 0; i < 4096; i++) {
        struct gw_msg m;
        const uint8_t *data;
        int rc = gw_msg_pop(fe->from_sch, fe->rec, sizeof(fe->rec), &m, &data);
        if (rc == GW_EEMPTY)
            break;
        if (rc != 0 || fe_core_deliver_record(&fe->core, &m, data) != 0)
            gw_stat_add(fe->stats, GW_STAT_rx_malformed, 1);
    }
    fe->rtx_dirty = true;
}

static bool pending(void *ctx)
{
    struct fe_ctx *fe = ctx;
    return !gw_ring_empty(fe->from_sch);
}

static void on_bell(void *ctx)
{
    struct fe_ctx *fe = ctx;
    for (int round = 0; round < 64; round++) {
        gw_bell_awake(fe->p.my_bell);
        drain_from_sch(fe);
        gw_bell_prepare_sleep(fe->p.my_bell);
        if (gw_ring_empty(fe->from_sch))
            break;
    }
}

/* ---- retransmission timer ---- */

static void on_rtx_timer(uv_timer_t *t)
{
    struct fe_ctx *fe = t->data;
    fe_core_timer(&fe->core, gw_mono_ms());
    fe_flush(fe);
    kick_scheduler(fe);
    arm_rtx_timer(fe);
}

static void arm_rtx_timer(struct fe_ctx *fe)
{
    uint64_t next = fe_core_next(&fe->core);
    if (next == UINT64_MAX) {
        uv_timer_stop(&fe->rtx_timer);
        return;
    }
    uint64_t now = gw_mono_ms();
    uv_timer_start(&fe->rtx_timer, on_rtx_timer, next > now ? next - now : 0, 0);
}

/* ---- sessions sweep ---- */

static void on_sweep(uv_timer_t *t)
{
    struct fe_ctx *fe = t->data;
    fe_core_sweep(&fe->core, gw_wall_s());
    kick_scheduler(fe);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct fe_ctx *fe = h->data;
    buf->base = (char *)fe->rxbuf;
    buf->len = sizeof(fe->rxbuf);
}

/* End of every loop turn: what the turn queued for clients goes out, and
 * the scheduler hears of the turn's records with one doorbell at most
 * (issue 13 item 2: a batch of datagrams is one wake-up, not one each). */
static void on_turn(void *ctx)
{
    struct fe_ctx *fe = ctx;
    if (fe->txq.n)
        fe_flush(fe);
    if (fe->rtx_dirty) {
        fe->rtx_dirty = false;
        arm_rtx_timer(fe);
    }
    kick_scheduler(fe);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct fe_ctx *fe = h->data;
    if (nread < 0 || !addr)
        return;
    struct gw_ep ep;
    if (gw_ep_from_sa(&ep, addr) != 0)
        return;
    if (flags & UV_UDP_PARTIAL)
        nread = (ssize_t)sizeof(fe->rxbuf) + 1;
    fe_core_datagram(&fe->core, &ep, (const uint8_t *)buf->base, (size_t)nread);
    fe->rtx_dirty = true; /* on_turn re-arms the timer and rings the scheduler */
}

/* ---- set-up ---- */

static int open_socket(struct fe_ctx *fe)
{
    struct gw_ep lep;
    if (gw_ep_parse(fe->cfg.listen, 5683, &lep) != 0) {
        gw_log_err(GW_LOG_SYS, "listen: cannot parse '%s'", fe->cfg.listen);
        return GW_ECONFIG;
    }
    /* S1.4: every frontend binds the same port. */
    int fd = gw_udp_bind_shared(&lep, GW_UDP_REUSEADDR, 4 << 20);
    if (fd < 0) {
        gw_log_err(GW_LOG_SYS, "bind(%s): %s", fe->cfg.listen, strerror(-fd));
        return fd;
    }
    fe->sock = fd;
    fe->txq.fd = fd;
    int rc = uv_udp_init_ex(&fe->p.loop, &fe->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
    if (rc == 0)
        rc = uv_udp_open(&fe->udp, fd);
    if (rc)
        return rc;
    fe->udp.data = fe;
    return uv_udp_recv_start(&fe->udp, on_alloc, on_recv);
}

int fe_dev_key_path(const struct gw_config *cfg, char *path, size_t len)
{
    if (cfg->jwt_key_file[0]) {
        snprintf(path, len, "%s", cfg->jwt_key_file);
        return 0;
    }
    char err[600];
    if (gw_config_check_key(cfg, err, sizeof(err)) != 0) {
        gw_log_err(GW_LOG_AUTH, "%s", err);
        return GW_ECONFIG;
    }
    snprintf(path, len, "%s/dev-secret", cfg->data_dir);
    /* An existing secret must be ours, a regular file, readable by nobody
     * else (S9.2): one planted by another user would let them mint tokens. */
    int rc = gw_fsafe_check(path, GW_FS_REG | GW_FS_SECRET, false, err, sizeof(err));
    if (rc == 0)
        return 0;
    if (rc != -ENOENT) {
        gw_log_err(GW_LOG_AUTH, "refusing the development secret: %s", err);
        return rc == GW_EUNSAFE ? rc : GW_EUNSAFE;
    }
    /* A development secret: 32 random bytes as hex, written to a temporary
     * name created exclusively (never through a link) and linked into
     * place, so concurrent starters agree on one. */
    uint8_t raw[32];
    if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
        return -EIO;
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    ssize_t w = write(fd, hex, 64);
    close(fd);
    if (w != 64) {
        unlink(tmp);
        return -EIO;
    }
    if (link(tmp, path) != 0 && errno != EEXIST) {
        int e = errno;
        unlink(tmp);
        return -e;
    }
    unlink(tmp);
    rc = gw_fsafe_check(path, GW_FS_REG | GW_FS_SECRET, false, err, sizeof(err));
    if (rc) {
        gw_log_err(GW_LOG_AUTH, "refusing the development secret: %s", err);
        return GW_EUNSAFE;
    }
    return 0;
}

/* A fresh segment: the MIDs start at a random point (RFC 7252 4.4), the
 * same for every frontend (the segment's boot id) plus an even share of
 * the 16-bit space per frontend, so that frontends serving one port, hence
 * one source endpoint for clients, do not send the same MIDs. */
static void seed_client_mid(struct fe_ctx *fe)
{
    struct gw_shm *shm = &fe->p.shm;
    uint32_t zero = 0;
    uint32_t seed = (uint32_t)atomic_load(&shm->hdr->boot_id) +
                    (uint32_t)fe->index * (65536u / GW_MAX(1u, shm->hdr->max_frontends));
    atomic_compare_exchange_strong(&fe->p.slot->client_mid, &zero, seed ? seed : 1);
}

/* The JWT verifier (development secret or jwt_key_file); 0 or an exit code. */
static int setup_auth(struct fe_ctx *fe)
{
    const struct gw_config *cfg = &fe->cfg;
    char keypath[600];
    int rc = fe_dev_key_path(cfg, keypath, sizeof(keypath));
    if (rc != 0) {
        gw_log_err(GW_LOG_AUTH, "development key in %s: %s", cfg->data_dir, gw_strerror(rc));
        return rc == GW_EUNSAFE || rc == GW_ECONFIG ? GW_EXIT_FATAL : GW_EXIT_FAIL;
    }
    struct fe_auth_cfg acfg;
    fe_auth_cfg_from(cfg, keypath, &acfg);
    const char *diag = NULL;
    if ((rc = fe_auth_new_diag(&acfg, &fe->auth, &diag)) != 0) {
        gw_log_err(GW_LOG_AUTH, "jwt_key_file %s (%s): %s", keypath, cfg->jwt_alg,
                   diag ? diag : gw_strerror(rc));
        return GW_EXIT_FATAL;
    }
    return 0;
}

/* Request handling (fe_core) with the response cache in shared memory. */
static int setup_core(struct fe_ctx *fe)
{
    struct fe_out io = { fe, io_send, io_to_sch, io_mid };
    if (gw_coap_parser_new(&fe->parser) != 0 ||
        fe_core_init(&fe->core, &fe->cfg, fe->index, &fe->p.store, fe->auth, fe->parser, &io,
                     fe->stats) != 0) {
        gw_log_err(GW_LOG_SYS, "out of memory setting up tables");
        return GW_EXIT_FAIL;
    }
    struct gw_rcache rc_tab;
    gw_shm_rcache(&fe->p.shm, &rc_tab);
    if (rc_tab.nslots && gw_coap_parser_new(&fe->rc_parser) != 0) {
        gw_log_err(GW_LOG_SYS, "out of memory setting up tables");
        return GW_EXIT_FAIL;
    }
    fe_core_set_rcache(&fe->core, &rc_tab, fe->rc_parser);
    return 0;
}

/* Proxy requests need the device registry, which the scheduler loads at
 * start: wait for it (bounded) before taking clients, so a fresh gateway
 * never answers 5.02 for a device it is about to know. */
static void wait_for_scheduler(struct fe_ctx *fe)
{
    struct gw_proc_slot *sch_slot = gw_shm_proc(&fe->p.shm, GW_PROC_SCHEDULER);
    for (int i = 0; i < 1000 && !atomic_load(&sch_slot->ready); i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* The cache guard's lease, taken before the socket joins the port's group
 * (fe_guard.h). 0 or an exit code. */
static int setup_guard(struct fe_ctx *fe)
{
    int rc = fe_guard_join(&fe->guard, &fe->p.shm, (uint32_t)fe->index,
                           (uint64_t)fe->cfg.exchange_lifetime_ms, gw_mono_ms(), 2000);
    if (rc != 0) {
        gw_log_err(GW_LOG_SYS, "frontend %d: lease of its slot: %s", fe->index,
                   rc == GW_EBUSY ? "held by another live process with this index"
                                  : gw_strerror(rc));
        return rc == GW_EBUSY ? GW_EXIT_FATAL : GW_EXIT_FAIL;
    }
    fe_core_set_guard(&fe->core, &fe->guard);
    return 0;
}

/* Issue #12 item 13: refuse to join a port another instance serves; then
 * the client socket. 0 or an exit code. */
static int setup_socket(struct fe_ctx *fe)
{
    const struct gw_config *cfg = &fe->cfg;
    struct gw_ep lep;
    if (gw_ep_parse(cfg->listen, 5683, &lep) == 0) {
        struct fe_claim claim;
        char cerr[512];
        fe_claim_make(&lep, cfg->instance, fe->index, &claim);
        fe->claim_fd = fe_claim_port(&claim, cerr, sizeof(cerr));
        if (fe->claim_fd < 0) {
            gw_log_err(GW_LOG_SYS, "refusing to start: %s", cerr);
            return fe->claim_fd == GW_EFORBIDDEN ? GW_EXIT_FATAL : GW_EXIT_FAIL;
        }
    }
    int rc = open_socket(fe);
    if (rc != 0) {
        gw_log_err(GW_LOG_SYS, "client socket on %s: %s", cfg->listen, gw_strerror(rc));
        return rc == -EADDRINUSE || rc == GW_ECONFIG || rc == -EADDRNOTAVAIL ? GW_EXIT_FATAL
                                                                             : GW_EXIT_FAIL;
    }
    return 0;
}

static void setup_timers(struct fe_ctx *fe)
{
    uv_timer_t *const timers[] = { &fe->rtx_timer, &fe->sweep_timer, &fe->lazy_timer };
    gw_proc_timers_init(&fe->p, fe, timers, GW_ARRAY_LEN(timers));
    uv_timer_start(&fe->sweep_timer, on_sweep, 100, 5000);
}

int fe_run(const struct gw_config *cfg, int index)
{
    if (index < 0 || index >= cfg->max_frontends) {
        gw_log_err(GW_LOG_SYS, "frontend index %d outside 0..%lld (max_frontends)", index,
                   (long long)cfg->max_frontends - 1);
        return GW_EXIT_FATAL;
    }
    struct fe_ctx *fe = calloc(1, sizeof(*fe));
    if (!fe)
        return GW_EXIT_FAIL;
    fe->index = index;
    fe->sock = -1;
    fe->claim_fd = -1;
    gw_udp_txq_init(&fe->txq, -1, fe->txbuf, sizeof(fe->txbuf));
    uint32_t me = (uint32_t)index;
    const uint32_t peers[] = { GW_BELL_SCHEDULER };
    int code = gw_proc_init(&fe->p, cfg, GW_PROC_FRONTEND0 + me);
    if (code)
        goto out;
    fe->cfg = fe->p.cfg;
    fe->stats = fe->p.stats;
    fe->to_sch = gw_proc_ring_produce(&fe->p, gw_ring_fe_to_sch(me));
    fe->from_sch = gw_proc_ring_consume(&fe->p, gw_ring_sch_to_fe(&fe->p.shm, me));
    seed_client_mid(fe);
    struct gw_proc_hooks hooks = {
        .ctx = fe, .on_bell = on_bell, .on_turn = on_turn, .pending = pending
    };
    if ((code = gw_proc_bells_open(&fe->p, GW_BELL_FRONTEND0 + me, peers, 1)) != 0 ||
        (code = gw_proc_store_open(&fe->p)) != 0 || (code = setup_auth(fe)) != 0 ||
        (code = setup_core(fe)) != 0)
        goto out;
    wait_for_scheduler(fe);
    if ((code = setup_guard(fe)) != 0 || (code = setup_socket(fe)) != 0 ||
        (code = gw_proc_start(&fe->p, &hooks)) != 0)
        goto out;
    setup_timers(fe);
    /* Whatever the scheduler queued for us while we were away goes out now,
     * and it sends again what our predecessor held unconfirmed (S1.3). */
    gw_bell_prepare_sleep(fe->p.my_bell);
    drain_from_sch(fe);
    fe->start_pending = true;
    kick_scheduler(fe);
    gw_proc_ready(&fe->p);
    gw_log_info(GW_LOG_SYS, "frontend %d listening on %s", index, cfg->listen);
    code = gw_proc_run(&fe->p);
out:
    gw_proc_loop_close(&fe->p);
    fe_core_deinit(&fe->core);
    fe_guard_free(&fe->guard);
    gw_coap_parser_free(fe->parser);
    gw_coap_parser_free(fe->rc_parser);
    fe_auth_free(fe->auth);
    gw_proc_deinit(&fe->p);
    if (fe->claim_fd >= 0)
        close(fe->claim_fd);
    free(fe);
    return code;
}
