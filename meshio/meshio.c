/* SPDX-License-Identifier: MIT */
/* meshio.c - glue of the meshio process: libuv loop, the two mesh sockets,
 * the ring pair to the scheduler, doorbells, signals (SPEC S1, S7).
 * The datagram logic is in mesh_dgram.c, the state in mesh_state.c; the
 * behaviour and what a crash loses are described in meshio.h.
 *
 * Batching: a doorbell wake pops at most MESH_BATCH records; if more are
 * left, meshio rings its own bell so that the sockets get their turn before
 * the next batch. Datagrams from devices are pushed as they are read (libuv
 * reads up to 32 per socket per loop turn) and the scheduler's bell is rung
 * at most once per loop turn, from a check handle, and only when it sleeps.
 * Secured frames that passed their replay window are held and forwarded
 * at the end of the loop turn (the same check handle), right after one
 * write transaction made their windows' tops durable (meshio.h). Idle,
 * nothing runs: no timers, except with node_count > 1 one timer every
 * MESH_PEER_TICK_MS for the sessions at the other nodes (mesh_peer.h). */
#include "meshio.h"
#include "mesh_peer.h"
#include "gw_clock.h"
#include "gw_nodes.h"
#include "gw_rand.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_msg.h"
#include "gw_proc.h"
#include "gw_registry.h"
#include "gw_shm.h"
#include "gw_udp.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define MESH_BATCH 256
/* recvmmsg through libuv (UV_UDP_RECVMMSG): up to 20 datagrams per call. */
#define MESH_RX_BUF (20 * 65536)
#define MESH_RCVBUF (4 << 20)
/* Log lines about bad traffic: a burst of 5, then one a second per kind. */
#define MESH_LOG_PER_S 1.0
#define MESH_LOG_BURST 5.0
#define FE_KEY_MAX_NODE 4096 /* longest HS256 secret meshio signs node tokens with */

enum { MESH_SOCK_PLAIN = 0, MESH_SOCK_SECURE = 1, MESH_NSOCK = 2 };
static const char *const sock_name[MESH_NSOCK] = { "plain", "secure" };

enum mesh_lim {
    LIM_UNKNOWN_DEV,
    LIM_UNKNOWN_SRC,
    LIM_AUTH,
    LIM_REPLAY,
    LIM_BAD,
    LIM_TX,
    LIM_RING,
    LIM_STORE,
    LIM_PEER,
    LIM_COUNT
};

/* Forwarding to owner nodes (S10.4, mesh_peer.h): present when node_count > 1. */
#define MESH_PEER_TICK_MS 250
struct mesh_fwd {
    struct gw_nodes nodes;
    uv_udp_t udp[MESH_NSOCK]; /* peer sockets: security none, netmgr */
    bool udp_open[MESH_NSOCK];
    int family[MESH_NSOCK];
    struct mesh_link link[GW_NODES_MAX][MESH_NSOCK];
    uv_timer_t timer;
    bool timer_open;
    uint8_t key[FE_KEY_MAX_NODE];
    size_t keylen;
    uint16_t post_mid; /* odd MIDs for session POSTs (mesh_peer.h) */
    struct gw_rand rng;
    struct gw_coap_parser *parser;
    uint8_t buf[MESH_PEER_DGRAM_MAX + 64];
    uint8_t buf2[MESH_PEER_DGRAM_MAX + 64];
};

struct mesh_ctx {
    struct gw_config cfg;
    struct gw_proc p;        /* loop, shared segment, doorbells, LMDB, signals */
    struct gw_store *store;  /* &p.store */
    struct mesh_devidx devs; /* the registry in memory (meshio.h) */
    uv_udp_t udp[MESH_NSOCK];
    int sock_family[MESH_NSOCK]; /* AF_INET or AF_INET6 */
    struct gw_ring *from_sch, *to_sch;
    struct mesh_seqstore seq;
    struct mesh_peers peers;
    bool peers_ok;
    struct mesh_hold hold; /* secured frames waiting for their window to be durable */
    struct gw_stats *stats;
    bool sch_kick;
    struct gw_log_limit lim[LIM_COUNT];
    uint8_t rxbuf[MESH_RX_BUF];
    uint8_t rec[GW_RING_SLOT];
    uint8_t out[MESH_MAX_FRAME + 64];
    uint8_t pt[GW_COAP_MAX_MSG + 64];
    /* Datagrams to devices, sent in batches per socket (gw_udp.h). */
    struct gw_udp_txq tx[MESH_NSOCK];
    uint8_t txbuf[MESH_NSOCK][GW_UDP_BATCH * 256 + 2 * (MESH_MAX_FRAME + 64)];
    struct mesh_fwd *fwd; /* NULL with node_count = 1 */
};

/* Sends what is queued for socket `which`. A full socket buffer drops the
 * rest, as the radio would; the scheduler's retransmissions cover it. */
static void tx_flush(struct mesh_ctx *m, int which)
{
    gw_stat_add(m->stats, GW_STAT_tx_datagrams, gw_udp_txq_flush(&m->tx[which]));
}

static void tx_flush_all(struct mesh_ctx *m)
{
    for (int i = 0; i < MESH_NSOCK; i++)
        if (m->tx[i].n)
            tx_flush(m, i);
}

static void tx_queue(struct mesh_ctx *m, int which, const uint8_t *p, size_t n,
                     const struct sockaddr_storage *ss)
{
    socklen_t sl =
        ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    unsigned sent = gw_udp_txq_add(&m->tx[which], (const struct sockaddr *)ss, sl, p, n);
    if (sent)
        gw_stat_add(m->stats, GW_STAT_tx_datagrams, sent);
}

/* A log line about traffic, rate-limited per kind (hot path, STYLE). */
#define log_limited(m, which, level, ...)                                                          \
    gw_log_limited(&(m)->lim[which], gw_mono_ms(), MESH_LOG_PER_S, MESH_LOG_BURST, level,          \
                   GW_LOG_MESH, __VA_ARGS__)

/* ---- addresses ---- */

/* A destination for a socket of family fam: IPv4 devices are reached through
 * a dual-stack IPv6 socket as v4-mapped addresses. Returns 0 when the socket
 * cannot reach the device's family. */
static socklen_t dst_sa(int fam, const struct gw_ep *ep, struct sockaddr_storage *ss)
{
    if (fam == AF_INET6 && ep->family == 4) {
        struct gw_ep v6 = *ep;
        v6.family = 6;
        memset(v6.addr, 0, sizeof(v6.addr));
        v6.addr[10] = v6.addr[11] = 0xff;
        memcpy(v6.addr + 12, ep->addr, 4);
        return gw_ep_to_sa(&v6, ss);
    }
    if (fam == AF_INET && ep->family != 4)
        return 0;
    return gw_ep_to_sa(ep, ss);
}

/* The registry keys IPv4 devices by their IPv4 address: unmap. */
static int src_ep(const struct sockaddr *sa, struct gw_ep *ep)
{
    int rc = gw_ep_from_sa(ep, sa);
    if (rc == 0 && ep->family == 6 && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)ep->addr)) {
        uint8_t v4[4];
        memcpy(v4, ep->addr + 12, 4);
        memset(ep->addr, 0, sizeof(ep->addr));
        memcpy(ep->addr, v4, 4);
        ep->family = 4;
    }
    return rc;
}

/* ---- towards the scheduler ---- */

static void kick_scheduler(struct mesh_ctx *m)
{
    if (m->sch_kick)
        gw_proc_kick(&m->p, GW_BELL_SCHEDULER);
    m->sch_kick = false;
}

static void tx_flush_all(struct mesh_ctx *m);
static void release_held(struct mesh_ctx *m);

/* End of every loop turn: datagrams out, held frames released, one bell. */
static void on_turn(void *ctx)
{
    struct mesh_ctx *m = ctx;
    tx_flush_all(m);
    release_held(m);
    kick_scheduler(m);
}

static void push_rx(struct mesh_ctx *m, const uint8_t mac[GW_MAC_LEN], bool secure,
                    const uint8_t *data, size_t len)
{
    struct gw_msg env;
    gw_msg_mesh_rx(&env, secure ? GW_SEC_NETMGR : GW_SEC_NONE, mac, len);
    int rc = gw_ring_push2(m->to_sch, &env, sizeof(env), data, (uint32_t)len);
    if (rc == 0) {
        m->sch_kick = true;
        return;
    }
    /* The scheduler's retries (S4.4) cover a dropped answer. */
    gw_stat_add(m->stats, GW_STAT_ring_full, 1);
    char macs[17];
    gw_mac_str(mac, macs);
    log_limited(m, LIM_RING, GW_LOG_WARN,
                "ring to the scheduler: %s; datagram from device %s dropped", gw_strerror(rc),
                macs);
}

/* ---- from the devices ---- */

static void fwd_secure(void *ctx, const uint8_t mac[GW_MAC_LEN], const uint8_t *data, size_t len)
{
    push_rx(ctx, mac, true, data, len);
}

/* Issue #12 item 10: a secured frame reaches the scheduler only once its
 * replay window's top is in LMDB, so a successor never accepts it again. */
static void release_held(struct mesh_ctx *m)
{
    uint32_t dropped = 0;
    int rc = mesh_hold_release(&m->hold, &m->peers, fwd_secure, m, &dropped);
    if (rc) {
        log_limited(m, LIM_STORE, GW_LOG_WARN,
                    "persisting replay windows: %s; %u secured frames dropped (retries cover them)",
                    gw_strerror(rc), dropped);
    }
}

/* True when the in-memory registry is up to date; otherwise (a store error
 * while rebuilding it) the caller reads LMDB as before. */
static bool devs_current(struct mesh_ctx *m)
{
    int rc = mesh_devidx_sync(&m->devs, m->store);
    if (rc)
        log_limited(m, LIM_STORE, GW_LOG_ERR, "device index: %s; reading the registry per datagram",
                    gw_strerror(rc));
    return rc == 0 && m->devs.valid;
}

static void handle_datagram(struct mesh_ctx *m, const struct gw_ep *src, bool secure,
                            const uint8_t *buf, size_t len)
{
    char eps[GW_EP_STRLEN], macs[17];
    struct gw_device dev;
    int rc = devs_current(m) ? mesh_devidx_identify(&m->devs, src, secure, &dev)
                             : mesh_rx_identify(m->store, src, secure, &dev);
    if (rc == GW_ENOTFOUND) {
        gw_stat_add(m->stats, GW_STAT_mesh_unknown_source, 1);
        log_limited(m, LIM_UNKNOWN_SRC, GW_LOG_WARN,
                    "%zu-byte datagram on the %s socket from %s, no such device: dropped", len,
                    sock_name[secure], gw_ep_str(src, eps, sizeof(eps)));
        return;
    }
    if (rc) {
        log_limited(m, LIM_STORE, GW_LOG_ERR, "registry look-up for %s: %s; datagram dropped",
                    gw_ep_str(src, eps, sizeof(eps)), gw_strerror(rc));
        return;
    }
    size_t n;
    rc = mesh_rx_accept(&dev, secure, &m->peers, buf, len, m->pt, sizeof(m->pt), &n);
    if (rc == 0 && secure) {
        if (mesh_hold_full(&m->hold))
            release_held(m);
        mesh_hold_add(&m->hold, dev.mac, m->pt, n);
        memset(m->pt, 0, n);
        return;
    }
    if (rc == 0) {
        push_rx(m, dev.mac, secure, m->pt, n);
        return;
    }
    gw_mac_str(dev.mac, macs);
    if (rc == GW_EAUTH) {
        gw_stat_add(m->stats, GW_STAT_mesh_auth_failures, 1);
        log_limited(m, LIM_AUTH, GW_LOG_WARN,
                    "%zu-byte frame from %s (device %s) failed authentication: dropped", len,
                    gw_ep_str(src, eps, sizeof(eps)), macs);
    } else if (rc == GW_EREPLAY) {
        gw_stat_add(m->stats, GW_STAT_mesh_replays, 1);
        log_limited(m, LIM_REPLAY, GW_LOG_WARN,
                    "replayed or too old frame from %s (device %s): dropped",
                    gw_ep_str(src, eps, sizeof(eps)), macs);
    } else if (rc == GW_EBADMSG || rc == GW_ETOOBIG) {
        gw_stat_add(m->stats, GW_STAT_rx_malformed, 1);
        log_limited(m, LIM_BAD, GW_LOG_WARN, "%zu-byte datagram from %s (device %s): %s; dropped",
                    len, gw_ep_str(src, eps, sizeof(eps)), macs, gw_strerror(rc));
    } else {
        log_limited(m, LIM_STORE, GW_LOG_ERR, "datagram from device %s dropped: %s", macs,
                    gw_strerror(rc));
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct mesh_ctx *m = h->data;
    buf->base = (char *)m->rxbuf;
    buf->len = sizeof(m->rxbuf);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct mesh_ctx *m = h->data;
    bool secure = h == &m->udp[MESH_SOCK_SECURE];
    if (nread < 0) {
        log_limited(m, LIM_BAD, GW_LOG_WARN, "receiving on the %s socket: %s", sock_name[secure],
                    uv_strerror((int)nread));
        return;
    }
    if (addr == NULL)
        return; /* nothing more to read this turn */
    gw_stat_add(m->stats, GW_STAT_rx_datagrams, 1);
    struct gw_ep src;
    if ((flags & UV_UDP_PARTIAL) || src_ep(addr, &src) != 0) {
        gw_stat_add(m->stats, GW_STAT_rx_malformed, 1);
        return;
    }
    handle_datagram(m, &src, secure, (const uint8_t *)buf->base, (size_t)nread);
}

/* ---- forwarding to owner nodes (S10.4, mesh_peer.h) ---- */

static bool is_config_error(int rc);

static void peer_send(struct mesh_ctx *m, int sec, uint32_t node, const uint8_t *d, size_t n)
{
    struct mesh_fwd *f = m->fwd;
    struct sockaddr_storage ss;
    if (!f->udp_open[sec] || dst_sa(f->family[sec], &f->nodes.ep[node], &ss) == 0)
        return;
    uv_buf_t b = uv_buf_init((char *)d, (unsigned)n);
    int rc = uv_udp_try_send(&f->udp[sec], &b, 1, (const struct sockaddr *)&ss);
    if (rc < 0) {
        log_limited(m, LIM_PEER, GW_LOG_WARN, "sending %zu bytes to node %u: %s; dropped", n, node,
                    uv_strerror(rc));
        return;
    }
    gw_stat_add(m->stats, GW_STAT_tx_datagrams, 1);
    gw_stat_add(m->stats, GW_STAT_node_forwarded, 1);
}

/* A session POST for link (node, sec) with a fresh token, MID and CoAP token. */
static void peer_post(struct mesh_ctx *m, uint32_t node, int sec)
{
    struct mesh_fwd *f = m->fwd;
    struct mesh_link *l = &f->link[node][sec];
    int64_t now_s = (int64_t)time(NULL);
    char *jwt = NULL;
    int rc = mesh_peer_token(f->key, f->keylen, f->nodes.self, now_s, m->cfg.node_token_ttl_s,
                             m->cfg.jwt_issuer, m->cfg.jwt_audience, &jwt);
    if (rc) {
        log_limited(m, LIM_PEER, GW_LOG_ERR, "signing the node token for node %u: %s", node,
                    gw_strerror(rc));
        mesh_link_post_begin(l, 0, (const uint8_t[8]){ 0 }, 0, gw_mono_ms());
        l->post_out = false;
        return;
    }
    uint8_t tok[8];
    uint64_t r = gw_rand_next(&f->rng);
    memcpy(tok, &r, 8);
    f->post_mid = (uint16_t)(f->post_mid + 2) | 1;
    size_t n;
    rc = mesh_peer_session_post(f->post_mid, tok, (uint8_t)sec, jwt, f->buf2, sizeof(f->buf2), &n);
    free(jwt);
    mesh_link_post_begin(l, f->post_mid, tok, now_s + m->cfg.node_token_ttl_s, gw_mono_ms());
    if (rc) {
        l->post_out = false;
        return;
    }
    gw_log_debug(GW_LOG_MESH, "session POST to node %u (%s), MID %u", node, sock_name[sec],
                 (unsigned)f->post_mid);
    peer_send(m, sec, node, f->buf2, n);
}

/* Sends what link (node, sec) held while its session opened. */
static void peer_release(struct mesh_ctx *m, uint32_t node, int sec)
{
    const struct mesh_held_dgram *h;
    struct mesh_link *l = &m->fwd->link[node][sec];
    while (mesh_link_pop(l, &h))
        peer_send(m, sec, node, h->data, h->len);
}

/* A MESH_TX for a device owned by node `owner`, or an empty message for a
 * peer (GW_MF_PEER): rewritten into a proxy request and sent, or held. */
static void peer_tx(struct mesh_ctx *m, const struct gw_msg *env, const uint8_t *data,
                    uint32_t owner)
{
    struct mesh_fwd *f = m->fwd;
    int sec = env->security == GW_SEC_NETMGR ? MESH_SOCK_SECURE : MESH_SOCK_PLAIN;
    char macs[17];
    size_t n;
    int rc = mesh_peer_rewrite(f->parser, data, env->len, env->mac, env->security, f->buf,
                               sizeof(f->buf), &n);
    if (rc) {
        gw_mac_str(env->mac, macs);
        log_limited(m, LIM_TX, GW_LOG_WARN,
                    "%u-byte message for device %s (owner node %u) not forwarded: %s",
                    (unsigned)env->len, macs, owner, gw_strerror(rc));
        return;
    }
    bool empty = f->buf[1] == GW_COAP_EMPTY;
    struct mesh_link *l = &f->link[owner][sec];
    uint32_t dropped = l->dropped;
    int act = mesh_link_submit(l, (uint32_t)m->cfg.node_queue_max, f->buf, n, empty, gw_mono_ms());
    if (act & MESH_LINK_SEND)
        peer_send(m, sec, owner, f->buf, n);
    if (l->dropped != dropped)
        gw_stat_add(m->stats, GW_STAT_node_held_dropped, l->dropped - dropped);
    if (l->dropped != dropped)
        log_limited(m, LIM_PEER, GW_LOG_WARN,
                    "node %u (%s): node_queue_max = %lld datagrams held while its session opens; "
                    "the oldest dropped",
                    owner, sock_name[sec], (long long)m->cfg.node_queue_max);
    if (act & MESH_LINK_POST)
        peer_post(m, owner, sec);
}

static void push_peer_rx(struct mesh_ctx *m, uint32_t node, int sec, const uint8_t *d, size_t n)
{
    static const uint8_t zero[GW_MAC_LEN];
    struct gw_msg env;
    gw_msg_mesh_rx(&env, sec == MESH_SOCK_SECURE ? GW_SEC_NETMGR : GW_SEC_NONE, zero, n);
    env.flags = GW_MF_PEER;
    env.aux = node;
    int rc = gw_ring_push2(m->to_sch, &env, sizeof(env), d, (uint32_t)n);
    if (rc == 0) {
        m->sch_kick = true;
        gw_stat_add(m->stats, GW_STAT_node_received, 1);
        return;
    }
    gw_stat_add(m->stats, GW_STAT_ring_full, 1);
    log_limited(m, LIM_RING, GW_LOG_WARN,
                "ring to the scheduler: %s; datagram from node %u dropped", gw_strerror(rc), node);
}

static void on_peer_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                         const struct sockaddr *addr, unsigned flags)
{
    struct mesh_ctx *m = h->data;
    struct mesh_fwd *f = m->fwd;
    int sec = h == &f->udp[MESH_SOCK_SECURE] ? MESH_SOCK_SECURE : MESH_SOCK_PLAIN;
    if (nread < 0 || addr == NULL)
        return;
    gw_stat_add(m->stats, GW_STAT_rx_datagrams, 1);
    struct gw_ep src;
    char eps[GW_EP_STRLEN];
    if ((flags & UV_UDP_PARTIAL) || src_ep(addr, &src) != 0) {
        gw_stat_add(m->stats, GW_STAT_rx_malformed, 1);
        return;
    }
    int node = gw_nodes_find(&f->nodes, &src);
    if (node < 0 || (uint32_t)node == f->nodes.self) {
        gw_stat_add(m->stats, GW_STAT_mesh_unknown_source, 1);
        log_limited(m, LIM_UNKNOWN_SRC, GW_LOG_WARN,
                    "%zd-byte datagram on a peer socket from %s, not a node in `nodes`: dropped",
                    nread, gw_ep_str(&src, eps, sizeof(eps)));
        return;
    }
    const uint8_t *d = (const uint8_t *)buf->base;
    size_t n = (size_t)nread;
    uint8_t ver, type;
    uint16_t mid;
    struct gw_coap_msg msg;
    if (!gw_coap_peek(d, n, &ver, &type, &mid) || ver != 1 || n > GW_COAP_MAX_MSG + 16 ||
        gw_coap_parse(f->parser, d, n, &msg) != 0) {
        gw_stat_add(m->stats, GW_STAT_rx_malformed, 1);
        return;
    }
    struct mesh_link *l = &f->link[node][sec];
    bool mine;
    uint64_t renew_max = (uint64_t)m->cfg.session_idle_s * 1000 / 2;
    int act = mesh_link_on_rx(l, &msg, (int64_t)time(NULL), gw_mono_ms(), renew_max, &mine);
    if (mine) {
        if (msg.type == GW_COAP_CON) {
            uint8_t ack[4] = { 0x60, 0, (uint8_t)(msg.mid >> 8), (uint8_t)msg.mid };
            peer_send(m, sec, (uint32_t)node, ack, sizeof(ack));
        }
        if (act & MESH_LINK_REFUSED) {
            char c[8];
            log_limited(m, LIM_PEER, GW_LOG_WARN,
                        "node %d refused our %s session: %s %.*s; trying again", node,
                        sock_name[sec], gw_coap_code_str(msg.code, c),
                        (int)(msg.payload_len > 100 ? 100 : msg.payload_len),
                        msg.payload ? (const char *)msg.payload : "");
        } else if (l->state == MESH_LINK_OPEN && msg.code == GW_COAP_CREATED) {
            gw_stat_add(m->stats, GW_STAT_node_sessions, 1);
            if (l->opened == 1)
                gw_log_info(GW_LOG_MESH, "session at node %d (%s) open", node, sock_name[sec]);
            else
                gw_log_debug(GW_LOG_MESH, "session at node %d (%s) renewed", node, sock_name[sec]);
        }
        if (act & MESH_LINK_RELEASE)
            peer_release(m, (uint32_t)node, sec);
        return;
    }
    size_t rn;
    int rw = mesh_peer_unauth_rewrite(d, n, f->buf2, sizeof(f->buf2), &rn);
    if (rw != 1) {
        push_peer_rx(m, (uint32_t)node, sec, d, n);
        return;
    }
    log_limited(m, LIM_PEER, GW_LOG_WARN,
                "node %d answered 4.01: our %s session there is gone; opening it again", node,
                sock_name[sec]);
    /* The 5.03 goes first: the POST is built in the same buffer. */
    push_peer_rx(m, (uint32_t)node, sec, f->buf2, rn);
    if (mesh_link_lost(l, gw_mono_ms()) & MESH_LINK_POST)
        peer_post(m, (uint32_t)node, sec);
}

static void on_peer_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct mesh_ctx *m = h->data;
    buf->base = (char *)m->fwd->buf;
    buf->len = sizeof(m->fwd->buf);
}

static void on_peer_timer(uv_timer_t *t)
{
    struct mesh_ctx *m = t->data;
    struct mesh_fwd *f = m->fwd;
    uint64_t now = gw_mono_ms();
    for (uint32_t i = 0; i < f->nodes.count; i++)
        for (int s = 0; s < MESH_NSOCK; s++)
            if (i != f->nodes.self && (mesh_link_tick(&f->link[i][s], now) & MESH_LINK_POST))
                peer_post(m, i, s);
    kick_scheduler(m);
}

/* The shared HS256 secret (gw_config_validate requires one with node_count
 * > 1), read as the frontend reads it: raw bytes, one trailing newline
 * dropped. 0 or GW_EXIT_FATAL after a line naming jwt_key_file. */
static int peer_read_key(struct mesh_ctx *m)
{
    struct mesh_fwd *f = m->fwd;
    int fd = open(m->cfg.jwt_key_file, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, f->key, sizeof(f->key)) : -1;
    int e = errno;
    if (fd >= 0)
        close(fd);
    if (n > 0 && f->key[n - 1] == '\n')
        n--;
    if (n <= 0 || (size_t)n >= sizeof(f->key)) {
        gw_log_err(GW_LOG_SYS, "jwt_key_file %s: %s: node_count > 1 signs node tokens with it",
                   m->cfg.jwt_key_file,
                   n < 0    ? strerror(e)
                   : n == 0 ? "empty"
                            : "longer than 4095 bytes");
        return GW_EXIT_FATAL;
    }
    f->keylen = (size_t)n;
    return 0;
}

/* Peer socket i on this node's address. The owners bind our sessions and
 * observations to its address and port, so a restarted meshio takes the
 * port its predecessor had (meta "mesh_peer_port_<i>"), as the mesh
 * sockets do: answers and notifications in flight still find it, and the
 * sessions stay valid. 0 or an exit code. */
static int peer_socket(struct mesh_ctx *m, int i, char *name, size_t namelen)
{
    struct mesh_fwd *f = m->fwd;
    char pkey[32];
    snprintf(pkey, sizeof(pkey), "mesh_peer_port_%d", i);
    uint64_t prev = 0;
    if (gw_store_meta_get_u64(m->store, pkey, &prev) != 0 || prev >= 65536)
        prev = 0;
    uv_udp_t *h = &f->udp[i];
    int rc = 0;
    for (int attempt = prev ? 0 : 1; attempt < 2; attempt++) {
        struct gw_ep ep = f->nodes.ep[f->nodes.self];
        ep.port = attempt == 0 ? (uint16_t)prev : 0;
        struct sockaddr_storage ss;
        gw_ep_to_sa(&ep, &ss);
        if ((rc = uv_udp_init_ex(&m->p.loop, h, (unsigned)ss.ss_family)) != 0)
            return GW_EXIT_FAIL;
        h->data = m;
        f->family[i] = ss.ss_family;
        rc = uv_udp_bind(h, (const struct sockaddr *)&ss, 0);
        if (rc == 0)
            break;
        uv_close((uv_handle_t *)h, NULL);
        uv_run(&m->p.loop, UV_RUN_NOWAIT);
        if (attempt == 0)
            gw_log_warn(GW_LOG_SYS, "%s peer socket: previous port %u is taken; using a new one",
                        sock_name[i], (unsigned)prev);
    }
    if (rc != 0) {
        gw_log_err(GW_LOG_SYS, "peer socket on node %u's address %s: %s", f->nodes.self,
                   f->nodes.host[f->nodes.self], uv_strerror(rc));
        return is_config_error(rc) ? GW_EXIT_FATAL : GW_EXIT_FAIL;
    }
    f->udp_open[i] = true;
    if ((rc = uv_udp_recv_start(h, on_peer_alloc, on_peer_recv)) != 0) {
        gw_log_err(GW_LOG_SYS, "peer socket: %s", uv_strerror(rc));
        return GW_EXIT_FAIL;
    }
    struct sockaddr_storage got;
    int gl = sizeof(got);
    struct gw_ep gep;
    if (uv_udp_getsockname(h, (struct sockaddr *)&got, &gl) == 0 &&
        gw_ep_from_sa(&gep, (struct sockaddr *)&got) == 0) {
        gw_ep_str(&gep, name, namelen);
        if (gep.port != prev && gw_store_meta_put_u64(m->store, pkey, gep.port) != 0)
            gw_log_warn(GW_LOG_STORE, "could not remember the %s peer port", sock_name[i]);
    } else {
        snprintf(name, namelen, "?");
    }
    return 0;
}

/* node_count > 1: the node list resolved, the key, two peer sockets bound
 * to this node's address, and the session timer. 0 or an exit code. */
static int setup_peers(struct mesh_ctx *m)
{
    char err[256];
    if (m->cfg.node_count < 2)
        return 0;
    struct mesh_fwd *f = calloc(1, sizeof(*f));
    if (!f)
        return GW_EXIT_FAIL;
    m->fwd = f;
    gw_rand_seed_random(&f->rng);
    f->post_mid = (uint16_t)gw_rand_u32(&f->rng) | 1;
    if (gw_nodes_parse(&m->cfg, &f->nodes, err, sizeof(err)) != 0) {
        gw_log_err(GW_LOG_SYS, "%s", err);
        return GW_EXIT_FATAL;
    }
    /* A name that does not resolve yet (a Pod not yet in DNS) is worth a
     * respawn with back-off, not a fatal exit. */
    if (gw_nodes_resolve(&f->nodes, err, sizeof(err)) != 0) {
        gw_log_err(GW_LOG_SYS, "%s", err);
        return GW_EXIT_FAIL;
    }
    int rc = peer_read_key(m);
    if (rc)
        return rc;
    if (gw_coap_parser_new(&f->parser) != 0)
        return GW_EXIT_FAIL;
    char names[MESH_NSOCK][GW_EP_STRLEN];
    for (int i = 0; i < MESH_NSOCK; i++)
        if ((rc = peer_socket(m, i, names[i], sizeof(names[i]))) != 0)
            return rc;
    if (uv_timer_init(&m->p.loop, &f->timer) != 0)
        return GW_EXIT_FAIL;
    f->timer_open = true;
    f->timer.data = m;
    if (uv_timer_start(&f->timer, on_peer_timer, MESH_PEER_TICK_MS, MESH_PEER_TICK_MS) != 0)
        return GW_EXIT_FAIL;
    gw_log_info(GW_LOG_SYS,
                "node %u of %u: devices of other nodes forwarded to their owner from %s (none) "
                "and %s (netmgr)",
                f->nodes.self, f->nodes.count, names[MESH_SOCK_PLAIN], names[MESH_SOCK_SECURE]);
    return 0;
}

static void teardown_peers(struct mesh_ctx *m)
{
    struct mesh_fwd *f = m->fwd;
    if (!f)
        return;
    for (int i = 0; i < MESH_NSOCK; i++)
        if (f->udp_open[i])
            uv_close((uv_handle_t *)&f->udp[i], NULL);
    if (f->timer_open)
        uv_close((uv_handle_t *)&f->timer, NULL);
    uv_run(&m->p.loop, UV_RUN_NOWAIT);
    for (uint32_t i = 0; i < GW_NODES_MAX; i++)
        for (int s = 0; s < MESH_NSOCK; s++)
            mesh_link_deinit(&f->link[i][s]);
    gw_coap_parser_free(f->parser);
    memset(f->key, 0, sizeof(f->key));
    free(f);
    m->fwd = NULL;
}

/* ---- towards the devices ---- */

static void handle_tx(struct mesh_ctx *m, const struct gw_msg *env, const uint8_t *data)
{
    char macs[17], eps[GW_EP_STRLEN];
    struct gw_device dev;
    int rc;
    if (m->fwd) {
        /* S10.4: another node's device, or an empty message for a peer. */
        uint32_t owner =
            (env->flags & GW_MF_PEER) ? env->aux : gw_nodes_owner(env->mac, m->fwd->nodes.count);
        if (owner >= m->fwd->nodes.count)
            return;
        if (owner != m->fwd->nodes.self) {
            peer_tx(m, env, data, owner);
            return;
        }
    }
    if (devs_current(m)) {
        const struct gw_device *d = mesh_devidx_by_mac(&m->devs, env->mac);
        rc = d ? 0 : GW_ENOTFOUND;
        if (d)
            dev = *d;
    } else {
        rc = gw_registry_get(m->store, env->mac, &dev);
    }
    if (rc) {
        /* S7.2: the device left the registry after the scheduler took the
         * request; its retries end in 5.04. */
        gw_mac_str(env->mac, macs);
        gw_stat_add(m->stats, GW_STAT_mesh_unknown_source, 1);
        log_limited(m, LIM_UNKNOWN_DEV, GW_LOG_WARN, "datagram for device %s dropped: %s", macs,
                    rc == GW_ENOTFOUND ? "not in the device registry" : gw_strerror(rc));
        return;
    }
    size_t n;
    struct gw_ep dst;
    rc = mesh_tx_prepare(&dev, env->security, data, env->len, &m->seq, m->out, sizeof(m->out), &n,
                         &dst);
    if (rc) {
        gw_mac_str(env->mac, macs);
        if (rc == GW_EFULL)
            log_limited(
                m, LIM_STORE, GW_LOG_ERR,
                "datagram for device %s dropped: the gateway's 2^48 sequence numbers are spent; "
                "new device keys are needed (S7.1)",
                macs);
        else if (rc == GW_ETOOBIG || rc == GW_EBADMSG || rc == -EINVAL)
            log_limited(m, LIM_TX, GW_LOG_WARN, "%u-byte message for device %s dropped: %s",
                        (unsigned)env->len, macs, gw_strerror(rc));
        else
            log_limited(
                m, LIM_STORE, GW_LOG_ERR,
                "datagram for device %s dropped: cannot persist the sequence reservation: %s", macs,
                gw_strerror(rc));
        return;
    }
    int which = env->security == GW_SEC_NETMGR ? MESH_SOCK_SECURE : MESH_SOCK_PLAIN;
    struct sockaddr_storage ss;
    if (dst_sa(m->sock_family[which], &dst, &ss) == 0) {
        gw_mac_str(env->mac, macs);
        log_limited(m, LIM_TX, GW_LOG_WARN,
                    "device %s at %s cannot be reached from mesh_bind %s: dropped", macs,
                    gw_ep_str(&dst, eps, sizeof(eps)), m->cfg.mesh_bind);
        return;
    }
    tx_queue(m, which, m->out, n, &ss);
}

/* Pops and sends at most max records; returns how many were popped. */
static int drain_from_sch(struct mesh_ctx *m, int max)
{
    int i;
    for (i = 0; i < max; i++) {
        struct gw_msg env;
        const uint8_t *data;
        int rc = gw_msg_pop(m->from_sch, m->rec, sizeof(m->rec), &env, &data);
        if (rc == GW_EEMPTY)
            break;
        if (rc != 0 || env.kind != GW_MSG_MESH_TX) {
            gw_stat_add(m->stats, GW_STAT_rx_malformed, 1);
            log_limited(m, LIM_BAD, GW_LOG_WARN, "malformed record from the scheduler dropped");
            continue;
        }
        handle_tx(m, &env, data);
    }
    return i;
}

/* One batch, then to sleep; or, when records are left, a kick to ourselves
 * so that the sockets are served before the next batch. */
static void service_ring(struct mesh_ctx *m)
{
    gw_bell_awake(m->p.my_bell);
    drain_from_sch(m, MESH_BATCH);
    gw_bell_prepare_sleep(m->p.my_bell);
    if (!gw_ring_empty(m->from_sch)) {
        gw_bell_awake(m->p.my_bell);
        gw_bell_fifo_kick(m->p.my_bell_fd);
        gw_stat_add(m->stats, GW_STAT_bell_writes, 1);
    }
}

static bool pending(void *ctx)
{
    struct mesh_ctx *m = ctx;
    return !gw_ring_empty(m->from_sch);
}

static void on_bell(void *ctx)
{
    service_ring(ctx);
}

/* ---- set-up ---- */

static void on_hup(void *ctx)
{
    gw_log_info(GW_LOG_SYS, "SIGHUP: nothing to reload (the device registry is read live)");
}

static int open_socket(struct mesh_ctx *m, int which, const struct gw_ep *bind_ep, uint16_t port,
                       char *name, size_t namelen)
{
    struct gw_ep ep = *bind_ep;
    ep.port = port;
    struct sockaddr_storage ss;
    gw_ep_to_sa(&ep, &ss);
    uv_udp_t *h = &m->udp[which];
    int rc = uv_udp_init_ex(&m->p.loop, h, (unsigned)ss.ss_family | UV_UDP_RECVMMSG);
    if (rc)
        return rc;
    h->data = m;
    m->sock_family[which] = ss.ss_family;
    if ((rc = uv_udp_bind(h, (const struct sockaddr *)&ss, port ? UV_UDP_REUSEADDR : 0)) != 0)
        return rc;
    uv_os_fd_t fd;
    m->tx[which].fd = uv_fileno((uv_handle_t *)h, &fd) == 0 ? fd : -1;
    int rcvbuf = MESH_RCVBUF;
    (void)uv_recv_buffer_size((uv_handle_t *)h, &rcvbuf);
    struct sockaddr_storage got;
    int gl = sizeof(got);
    struct gw_ep gep;
    if (uv_udp_getsockname(h, (struct sockaddr *)&got, &gl) == 0 &&
        gw_ep_from_sa(&gep, (struct sockaddr *)&got) == 0)
        gw_ep_str(&gep, name, namelen);
    else
        snprintf(name, namelen, "?");
    return uv_udp_recv_start(h, on_alloc, on_recv);
}

static bool is_config_error(int rc)
{
    return rc == UV_EADDRINUSE || rc == UV_EADDRNOTAVAIL || rc == UV_EAFNOSUPPORT ||
           rc == UV_EACCES;
}

/* mesh_bind: an address, optionally with a port, leaving room for the
 * secure socket on port + 1. 0 or GW_EXIT_FATAL. */
static int parse_bind(const struct gw_config *cfg, struct gw_ep *bind_ep)
{
    if (gw_ep_parse(cfg->mesh_bind, 0, bind_ep) != 0) {
        gw_log_err(GW_LOG_SYS, "mesh_bind: cannot parse '%s' (an address, optionally with :port)",
                   cfg->mesh_bind);
        return GW_EXIT_FATAL;
    }
    if (bind_ep->port == 65535) {
        gw_log_err(GW_LOG_SYS,
                   "mesh_bind: port 65535 leaves no room for the secure socket (port + 1)");
        return GW_EXIT_FATAL;
    }
    return 0;
}

/* The durable state meshio needs besides the registry: the device keys
 * (only meshio and importers open data_dir/keys), the sequence reservation
 * and the replay windows. 0 or an exit code. */
static int setup_state(struct mesh_ctx *m)
{
    const struct gw_config *cfg = &m->cfg;
    int rc = gw_store_open_keys(m->store);
    if (rc != 0) {
        gw_log_err(GW_LOG_STORE, "opening the device keys in %s/keys: %s", cfg->data_dir,
                   gw_strerror(rc));
        return GW_EXIT_FAIL;
    }
    if ((rc = mesh_seqstore_init(&m->seq, m->store, (uint64_t)cfg->mesh_seq_block)) != 0) {
        /* Starting over at 0 could reuse nonces (S7.1): an operator decides. */
        gw_log_err(GW_LOG_STORE,
                   "reading the sequence reservation (meta %s) in %s/state: %s; refusing to start",
                   MESH_SEQ_META_KEY, cfg->data_dir,
                   rc == GW_EBADMSG
                       ? "the stored value is not 8 bytes (restarting from 0 could reuse nonces)"
                       : gw_strerror(rc));
        return rc == GW_EBADMSG ? GW_EXIT_FATAL : GW_EXIT_FAIL;
    }
    if ((rc = mesh_peers_init(&m->peers, m->store)) != 0) {
        gw_log_err(GW_LOG_SYS, "replay windows: %s", gw_strerror(rc));
        return GW_EXIT_FAIL;
    }
    m->peers_ok = true;
    return 0;
}

/* Socket `i` (plain or secure). Without a configured port, a restarted
 * meshio takes the ports its predecessor had: devices answer late responses
 * and send notifications to the address they know (S1.3, S6.6). The port
 * taken is remembered in LMDB. 0 or an exit code. */
static int setup_socket(struct mesh_ctx *m, int i, const struct gw_ep *bind_ep, char *name,
                        size_t namelen)
{
    uint16_t port = bind_ep->port ? (uint16_t)(bind_ep->port + i) : 0;
    char pkey[32];
    snprintf(pkey, sizeof(pkey), "mesh_port_%d", i);
    uint64_t prev = 0;
    if (!bind_ep->port && gw_store_meta_get_u64(m->store, pkey, &prev) == 0 && prev > 0 &&
        prev < 65536) {
        if (open_socket(m, i, bind_ep, (uint16_t)prev, name, namelen) == 0)
            return 0;
        uv_close((uv_handle_t *)&m->udp[i], NULL);
        uv_run(&m->p.loop, UV_RUN_NOWAIT);
        gw_log_warn(GW_LOG_SYS, "%s mesh socket: previous port %u is taken; using a new one",
                    sock_name[i], (unsigned)prev);
    }
    int rc = open_socket(m, i, bind_ep, port, name, namelen);
    if (rc != 0) {
        gw_log_err(GW_LOG_SYS, "%s mesh socket on %s (port %u): %s", sock_name[i], m->cfg.mesh_bind,
                   (unsigned)port, uv_strerror(rc));
        return is_config_error(rc) ? GW_EXIT_FATAL : GW_EXIT_FAIL;
    }
    if (!bind_ep->port) {
        struct sockaddr_storage got;
        int gl = sizeof(got);
        struct gw_ep gep;
        if (uv_udp_getsockname(&m->udp[i], (struct sockaddr *)&got, &gl) == 0 &&
            gw_ep_from_sa(&gep, (struct sockaddr *)&got) == 0 &&
            gw_store_meta_put_u64(m->store, pkey, gep.port) != 0)
            gw_log_warn(GW_LOG_STORE, "could not remember the %s mesh port", sock_name[i]);
    }
    return 0;
}

/* At exit: frames read in the last turn go out (none when set-up failed),
 * and the replay windows are made durable. */
static void teardown_state(struct mesh_ctx *m)
{
    if (!m->peers_ok)
        return;
    release_held(m);
    int rc = mesh_peers_flush(&m->peers);
    if (rc != 0)
        gw_log_warn(GW_LOG_STORE, "persisting replay windows at exit: %s", gw_strerror(rc));
    mesh_peers_deinit(&m->peers);
}

int mesh_run(const struct gw_config *cfg)
{
    struct gw_ep bind_ep;
    if (parse_bind(cfg, &bind_ep) != 0)
        return GW_EXIT_FATAL;
    struct mesh_ctx *m = calloc(1, sizeof(*m));
    if (!m)
        return GW_EXIT_FAIL;
    m->store = &m->p.store;
    mesh_devidx_init(&m->devs);
    for (int i = 0; i < MESH_NSOCK; i++)
        gw_udp_txq_init(&m->tx[i], -1, m->txbuf[i], sizeof(m->txbuf[i]));
    const uint32_t peers[] = { GW_BELL_SCHEDULER };
    struct gw_proc_hooks hooks = {
        .ctx = m, .on_bell = on_bell, .on_turn = on_turn, .on_hup = on_hup, .pending = pending
    };
    char names[MESH_NSOCK][GW_EP_STRLEN];
    int code = gw_proc_init(&m->p, cfg, GW_PROC_MESHIO);
    if (code)
        goto out;
    m->cfg = m->p.cfg;
    m->stats = m->p.stats;
    m->from_sch = gw_proc_ring_consume(&m->p, gw_ring_sch_to_mesh(&m->p.shm));
    m->to_sch = gw_proc_ring_produce(&m->p, gw_ring_mesh_to_sch(&m->p.shm));
    if ((code = gw_proc_bells_open(&m->p, GW_BELL_MESHIO, peers, 1)) != 0 ||
        (code = gw_proc_store_open(&m->p)) != 0 || (code = setup_state(m)) != 0)
        goto out;
    for (int i = 0; i < MESH_NSOCK; i++)
        if ((code = setup_socket(m, i, &bind_ep, names[i], sizeof(names[i]))) != 0)
            goto out;
    if ((code = setup_peers(m)) != 0)
        goto out;
    if ((code = gw_proc_start(&m->p, &hooks)) != 0)
        goto out;
    gw_proc_ready(&m->p);
    gw_log_info(GW_LOG_SYS,
                "meshio: plain socket %s, secure socket %s; sequence numbers from %llu, reserved "
                "%lld at a time",
                names[MESH_SOCK_PLAIN], names[MESH_SOCK_SECURE],
                (unsigned long long)m->seq.seq.next, (long long)cfg->mesh_seq_block);
    /* Whatever the scheduler queued while we were away goes out now. */
    service_ring(m);
    kick_scheduler(m);
    code = gw_proc_run(&m->p);
out:
    teardown_peers(m);
    teardown_state(m);
    gw_proc_loop_close(&m->p);
    mesh_crypto_thread_cleanup();
    mesh_devidx_deinit(&m->devs);
    gw_proc_deinit(&m->p);
    free(m);
    return code;
}
