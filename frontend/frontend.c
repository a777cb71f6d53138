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
#include "gw_registry.h"
#include "gw_shm.h"
#include "gw_store.h"

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
#define FE_TX_BATCH 64

struct fe_ctx {
    struct gw_config cfg;
    int index;
    uv_loop_t loop;
    uv_udp_t udp;
    uv_poll_t bell_poll;
    uv_timer_t rtx_timer, sweep_timer;
    uv_signal_t sig[3];
    int sock;
    int claim_fd;               /* abstract unix name: this instance serves the port */
    struct gw_shm shm;
    struct gw_ring *to_sch, *from_sch;
    struct gw_bell *my_bell, *sch_bell;
    int my_bell_fd, sch_bell_fd;
    struct gw_store store;
    struct fe_auth *auth;
    struct gw_coap_parser *parser, *rc_parser;
    struct gw_stats *stats;
    struct fe_core core;
    struct gw_proc_slot *proc;  /* this frontend's slot: stats, the client MID counter */
    bool start_pending;         /* GW_MSG_FE_START not yet in the scheduler's ring */
    bool sch_kick;
    uv_check_t flush_check;
    unsigned txn;
    size_t txused;
    struct mmsghdr txv[FE_TX_BATCH];
    struct iovec txiov[FE_TX_BATCH];
    struct sockaddr_storage txaddr[FE_TX_BATCH];
    uint8_t txbuf[FE_TX_BATCH * 256 + 2 * (GW_COAP_MAX_MSG + 64)];
    uint8_t rxbuf[FE_RX_BUF];
    uint8_t rec[GW_RING_SLOT];
};

/* Datagrams for clients are queued and sent in batches with sendmmsg():
 * at the end of every loop iteration (uv_check), at the end of timer
 * callbacks, and whenever the batch is full. A full socket buffer drops
 * the rest of the batch, as a full network would (CON retransmission
 * covers it). */
static void fe_flush(struct fe_ctx *fe)
{
    unsigned done = 0;
    for (int tries = 0; done < fe->txn && tries < 4; tries++) {
        int n = sendmmsg(fe->sock, fe->txv + done, fe->txn - done, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            break;
        }
        done += (unsigned)n;
    }
    gw_stat_add(fe->stats, GW_STAT_tx_datagrams, done);
    fe->txn = 0;
    fe->txused = 0;
}

static void fe_send(struct fe_ctx *fe, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    if (fe->txn == FE_TX_BATCH || fe->txused + len > sizeof(fe->txbuf))
        fe_flush(fe);
    if (len > sizeof(fe->txbuf))
        return;
    unsigned i = fe->txn++;
    memcpy(fe->txbuf + fe->txused, buf, len);
    fe->txiov[i].iov_base = fe->txbuf + fe->txused;
    fe->txiov[i].iov_len = len;
    fe->txused += len;
    socklen_t sl = gw_ep_to_sa(ep, &fe->txaddr[i]);
    memset(&fe->txv[i], 0, sizeof(fe->txv[i]));
    fe->txv[i].msg_hdr.msg_name = &fe->txaddr[i];
    fe->txv[i].msg_hdr.msg_namelen = sl;
    fe->txv[i].msg_hdr.msg_iov = &fe->txiov[i];
    fe->txv[i].msg_hdr.msg_iovlen = 1;
}

/* ---- rings ---- */

static void kick_scheduler(struct fe_ctx *fe)
{
    if (fe->start_pending)
        fe->start_pending = fe_core_announce_start(&fe->core) != 0;
    if (fe->sch_kick && gw_bell_should_wake(fe->sch_bell)) {
        gw_bell_fifo_kick(fe->sch_bell_fd);
        gw_stat_add(fe->stats, GW_STAT_bell_writes, 1);
    }
    fe->sch_kick = false;
}

static int io_to_sch(void *ctx, const struct gw_msg *m, const uint8_t *data)
{
    struct fe_ctx *fe = ctx;
    int rc = gw_ring_push2(fe->to_sch, m, sizeof(*m), data, m->len);
    if (rc == 0)
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
    return (uint16_t)atomic_fetch_add_explicit(&fe->proc->client_mid, 1, memory_order_relaxed);
}

static void arm_rtx_timer(struct fe_ctx *fe);

static void drain_from_sch(struct fe_ctx *fe)
{
    for (int i = 0; i < 4096; i++) {
        int n = gw_ring_pop(fe->from_sch, fe->rec, sizeof(fe->rec));
        if (n == GW_EEMPTY)
            break;
        if (n < 0)
            continue;
        struct gw_msg m;
        const uint8_t *data;
        if (gw_msg_decode(fe->rec, (size_t)n, &m, &data) != 0 || m.kind != GW_MSG_RESP) {
            gw_stat_add(fe->stats, GW_STAT_rx_malformed, 1);
            continue;
        }
        fe_core_deliver(&fe->core, &m, data);
    }
    arm_rtx_timer(fe);
}

static void on_bell(uv_poll_t *h, int status, int events)
{
    struct fe_ctx *fe = h->data;
    gw_bell_fifo_drain(fe->my_bell_fd);
    for (int round = 0; round < 64; round++) {
        gw_bell_awake(fe->my_bell);
        drain_from_sch(fe);
        gw_bell_prepare_sleep(fe->my_bell);
        if (gw_ring_empty(fe->from_sch))
            break;
    }
    kick_scheduler(fe);
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

static void on_flush_check(uv_check_t *h)
{
    struct fe_ctx *fe = h->data;
    /* Runs once per loop turn, after the poll: counts wake-ups for the benchmark. */
    gw_stat_add(fe->stats, GW_STAT_loop_turns, 1);
    if (fe->txn)
        fe_flush(fe);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr, unsigned flags)
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
    kick_scheduler(fe);
    arm_rtx_timer(fe);
}

/* ---- set-up ---- */

static void on_signal(uv_signal_t *h, int signum)
{
    struct fe_ctx *fe = h->data;
    gw_log_info(GW_LOG_SYS, "signal %d: stopping", signum);
    uv_stop(&fe->loop);
}

static int open_socket(struct fe_ctx *fe)
{
    struct gw_ep lep;
    if (gw_ep_parse(fe->cfg.listen, 5683, &lep) != 0) {
        gw_log_err(GW_LOG_SYS, "listen: cannot parse '%s'", fe->cfg.listen);
        return GW_ECONFIG;
    }
    struct sockaddr_storage ss;
    socklen_t sl = gw_ep_to_sa(&lep, &ss);
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* S1.4: every frontend binds the same port; libuv 1.44 has no
     * UV_UDP_REUSEPORT, so set it here and hand the socket to uv_udp_open. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    int rcvbuf = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = errno;
        gw_log_err(GW_LOG_SYS, "bind(%s): %s", fe->cfg.listen, strerror(e));
        close(fd);
        return -e;
    }
    fe->sock = fd;
    int rc = uv_udp_init_ex(&fe->loop, &fe->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
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

int fe_run(const struct gw_config *cfg, int index)
{
    struct fe_ctx *fe = calloc(1, sizeof(*fe));
    if (!fe)
        return 1;
    fe->cfg = *cfg;
    fe->index = index;
    fe->sock = -1;
    fe->claim_fd = -1;
    fe->my_bell_fd = fe->sch_bell_fd = -1;
    int rc, exit_code = 1;
    char err[512];
    if (index < 0 || index >= cfg->max_frontends) {
        gw_log_err(GW_LOG_SYS, "frontend index %d outside 0..%lld (max_frontends)", index, (long long)cfg->max_frontends - 1);
        free(fe);
        return GW_EXIT_FATAL;
    }
    uv_loop_init(&fe->loop);
    if ((rc = gw_shm_open(cfg, false, &fe->shm, err, sizeof(err))) != 0) {
        gw_log_err(GW_LOG_RING, "%s", err);
        exit_code = rc == GW_ELAYOUT || rc == GW_EUNSAFE ? GW_EXIT_FATAL : 1;
        goto out;
    }
    fe->to_sch = gw_shm_ring(&fe->shm, gw_ring_fe_to_sch((uint32_t)index));
    fe->from_sch = gw_shm_ring(&fe->shm, gw_ring_sch_to_fe(&fe->shm, (uint32_t)index));
    gw_ring_claim_producer(fe->to_sch, (uint32_t)getpid());
    gw_ring_claim_consumer(fe->from_sch, (uint32_t)getpid());
    fe->my_bell = gw_shm_bell(&fe->shm, GW_BELL_FRONTEND0 + (uint32_t)index);
    fe->sch_bell = gw_shm_bell(&fe->shm, GW_BELL_SCHEDULER);
    /* `coapgw loglevel` and the supervisor's SIGUSR2 change the level here. */
    gw_log_attach_level(&fe->shm.hdr->log_level);
    struct gw_proc_slot *ps = gw_shm_proc(&fe->shm, GW_PROC_FRONTEND0 + (uint32_t)index);
    fe->proc = ps;
    fe->stats = &ps->stats;
    /* A fresh segment: the MIDs start at a random point (RFC 7252 4.4), the
     * same for every frontend (the segment's boot id) plus an even share of
     * the 16-bit space per frontend, so that frontends serving one port,
     * hence one source endpoint for clients, do not send the same MIDs. */
    uint32_t zero = 0;
    uint32_t seed = (uint32_t)atomic_load(&fe->shm.hdr->boot_id) +
                    (uint32_t)index * (65536u / GW_MAX(1u, fe->shm.hdr->max_frontends));
    atomic_compare_exchange_strong(&ps->client_mid, &zero, seed ? seed : 1);
    atomic_store(&ps->pid, (uint32_t)getpid());
    char path[600];
    mkdir(cfg->data_dir, 0700);
    gw_bell_path(cfg, GW_BELL_FRONTEND0 + (uint32_t)index, path, sizeof(path));
    fe->my_bell_fd = gw_bell_fifo_open(path);
    gw_bell_path(cfg, GW_BELL_SCHEDULER, path, sizeof(path));
    fe->sch_bell_fd = gw_bell_fifo_open(path);
    if (fe->my_bell_fd < 0 || fe->sch_bell_fd < 0) {
        rc = fe->my_bell_fd < 0 ? fe->my_bell_fd : fe->sch_bell_fd;
        gw_log_err(GW_LOG_RING, "doorbell FIFOs in %s: %s", cfg->data_dir, gw_strerror(rc));
        if (rc == GW_EUNSAFE)
            exit_code = GW_EXIT_FATAL;
        goto out;
    }
    if ((rc = gw_store_open(&fe->store, cfg->data_dir, (size_t)cfg->lmdb_map_mb)) != 0) {
        gw_log_err(GW_LOG_STORE, "opening LMDB in %s: %s", cfg->data_dir, gw_strerror(rc));
        goto out;
    }
    char keypath[600];
    if ((rc = fe_dev_key_path(cfg, keypath, sizeof(keypath))) != 0) {
        gw_log_err(GW_LOG_AUTH, "development key in %s: %s", cfg->data_dir, gw_strerror(rc));
        if (rc == GW_EUNSAFE || rc == GW_ECONFIG)
            exit_code = GW_EXIT_FATAL;
        goto out;
    }
    struct fe_auth_cfg acfg = {
        .alg = !strcmp(cfg->jwt_alg, "RS256") ? FE_JWT_RS256 : !strcmp(cfg->jwt_alg, "ES256") ? FE_JWT_ES256 : FE_JWT_HS256,
        .key_file = keypath, .issuer = cfg->jwt_issuer, .audience = cfg->jwt_audience,
        .leeway_s = cfg->jwt_leeway_s, .max_token_len = (size_t)cfg->jwt_max_len,
    };
    const char *diag = NULL;
    if ((rc = fe_auth_new_diag(&acfg, &fe->auth, &diag)) != 0) {
        gw_log_err(GW_LOG_AUTH, "jwt_key_file %s (%s): %s", keypath, cfg->jwt_alg, diag ? diag : gw_strerror(rc));
        exit_code = GW_EXIT_FATAL;
        goto out;
    }
    struct fe_io io = { fe, io_send, io_to_sch, io_mid };
    if (gw_coap_parser_new(&fe->parser) != 0 ||
        fe_core_init(&fe->core, cfg, index, &fe->store, fe->auth, fe->parser, &io, fe->stats) != 0) {
        gw_log_err(GW_LOG_SYS, "out of memory setting up tables");
        goto out;
    }
    struct gw_rcache rc_tab;
    gw_shm_rcache(&fe->shm, &rc_tab);
    if (rc_tab.nslots && gw_coap_parser_new(&fe->rc_parser) != 0) {
        gw_log_err(GW_LOG_SYS, "out of memory setting up tables");
        goto out;
    }
    fe_core_set_rcache(&fe->core, &rc_tab, fe->rc_parser);
    /* Proxy requests need the device registry, which the scheduler loads at
     * start: wait for it (bounded) before taking clients, so a fresh gateway
     * never answers 5.02 for a device it is about to know. */
    struct gw_proc_slot *sch_slot = gw_shm_proc(&fe->shm, GW_PROC_SCHEDULER);
    for (int i = 0; i < 1000 && !atomic_load(&sch_slot->ready); i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    /* Issue #12 item 13: refuse to join a port another instance serves. */
    struct gw_ep lep;
    if (gw_ep_parse(cfg->listen, 5683, &lep) == 0) {
        struct fe_claim claim;
        char cerr[512];
        fe_claim_make(&lep, cfg->instance, index, &claim);
        fe->claim_fd = fe_claim_port(&claim, cerr, sizeof(cerr));
        if (fe->claim_fd < 0) {
            gw_log_err(GW_LOG_SYS, "refusing to start: %s", cerr);
            exit_code = fe->claim_fd == GW_EFORBIDDEN ? GW_EXIT_FATAL : 1;
            goto out;
        }
    }
    if ((rc = open_socket(fe)) != 0) {
        gw_log_err(GW_LOG_SYS, "client socket on %s: %s", cfg->listen, gw_strerror(rc));
        exit_code = rc == -EADDRINUSE || rc == GW_ECONFIG || rc == -EADDRNOTAVAIL ? GW_EXIT_FATAL : 1;
        goto out;
    }
    uv_poll_init(&fe->loop, &fe->bell_poll, fe->my_bell_fd);
    fe->bell_poll.data = fe;
    uv_poll_start(&fe->bell_poll, UV_READABLE, on_bell);
    uv_check_init(&fe->loop, &fe->flush_check);
    fe->flush_check.data = fe;
    uv_check_start(&fe->flush_check, on_flush_check);
    uv_timer_init(&fe->loop, &fe->rtx_timer);
    fe->rtx_timer.data = fe;
    uv_timer_init(&fe->loop, &fe->sweep_timer);
    fe->sweep_timer.data = fe;
    uv_timer_start(&fe->sweep_timer, on_sweep, 100, 5000);
    int sigs[3] = { SIGTERM, SIGINT, SIGHUP };
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&fe->loop, &fe->sig[i]);
        fe->sig[i].data = fe;
        if (sigs[i] != SIGHUP)
            uv_signal_start(&fe->sig[i], on_signal, sigs[i]);
    }
    signal(SIGPIPE, SIG_IGN);
    /* Whatever the scheduler queued for us while we were away goes out now,
     * and it sends again what our predecessor held unconfirmed (S1.3). */
    gw_bell_prepare_sleep(fe->my_bell);
    drain_from_sch(fe);
    fe->start_pending = true;
    kick_scheduler(fe);
    gw_log_info(GW_LOG_SYS, "frontend %d listening on %s", index, cfg->listen);
    uv_run(&fe->loop, UV_RUN_DEFAULT);
    exit_code = 0;
out:
    uv_walk(&fe->loop, (uv_walk_cb)(void (*)(void))uv_close, NULL);
    uv_run(&fe->loop, UV_RUN_NOWAIT);
    uv_loop_close(&fe->loop);
    fe_core_deinit(&fe->core);
    gw_coap_parser_free(fe->parser);
    gw_coap_parser_free(fe->rc_parser);
    fe_auth_free(fe->auth);
    gw_store_close(&fe->store);
    if (fe->my_bell_fd >= 0)
        close(fe->my_bell_fd);
    if (fe->sch_bell_fd >= 0)
        close(fe->sch_bell_fd);
    gw_shm_close(&fe->shm);
    if (fe->claim_fd >= 0)
        close(fe->claim_fd);
    free(fe);
    return exit_code;
}
