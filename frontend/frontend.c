/* frontend.c - glue of the frontend process: libuv loop, UDP socket, rings.
 *
 * Request handling order for a datagram (SPEC S3, S2, S4):
 *   version != 1: silence (S3.6). Malformed: RST for CON, silence otherwise
 *   (S3.4). ACK/RST: stop a retransmission. Empty CON: RST (ping).
 *   Over max_message: 4.13 with Size1 (S3.5). Duplicate (endpoint, MID):
 *   the stored answer again, or an empty ACK (S3.3). Then a local resource,
 *   or a proxy request: target syntax, session (4.01), options (4.02),
 *   device (5.02), scope (4.03), port vs security (4.00), limits (4.29),
 *   then an empty ACK at once and the request into the scheduler ring. */
#include "frontend.h"
#include "fe_auth.h"
#include "fe_block.h"
#include "fe_local.h"
#include "fe_msglayer.h"
#include "fe_route.h"
#include "fe_session.h"
#include "gw_coap.h"
#include "gw_clock.h"
#include "gw_error.h"
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

/* Per-session policy state (S2.8): token bucket and requests in flight. */
struct fe_limit {
    uint64_t session;
    double tokens;
    uint64_t last_ms;
    uint32_t inflight;
};

struct fe_ctx {
    struct gw_config cfg;
    int index;
    uv_loop_t loop;
    uv_udp_t udp;
    uv_poll_t bell_poll;
    uv_timer_t rtx_timer, sweep_timer;
    uv_signal_t sig[3];
    int sock;
    struct gw_shm shm;
    struct gw_ring *to_sch, *from_sch;
    struct gw_bell *my_bell, *sch_bell;
    int my_bell_fd, sch_bell_fd;
    struct gw_store store;
    struct fe_auth *auth;
    struct gw_coap_parser *parser;
    struct fe_dedup dedup;
    struct fe_rtx rtx;
    struct fe_blocks blocks;
    struct fe_sess_cfg scfg;
    struct fe_local local;
    struct gw_stats *stats;
    uint16_t next_mid;
    uint64_t next_req;
    struct gw_log_limit unauth_log;
    struct fe_limit *limits;
    uint32_t limits_cap;
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

/* Retransmission jitter and MIDs need no cryptographic randomness: a
 * xorshift seeded once from getrandom() saves a system call per request. */
static uint32_t rnd32(void)
{
    static uint64_t s;
    if (s == 0 && (getrandom(&s, sizeof(s), GRND_NONBLOCK) != sizeof(s) || s == 0))
        s = gw_mono_us() | 1;
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return (uint32_t)(s >> 32);
}

/* ---- sending ---- */

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

static void count_code(struct fe_ctx *fe, uint8_t code)
{
    uint8_t cls = code >> 5;
    if (cls == 2)
        gw_stat_add(fe->stats, GW_STAT_responses_2xx, 1);
    else if (cls == 4)
        gw_stat_add(fe->stats, GW_STAT_responses_4xx, 1);
    else if (cls == 5)
        gw_stat_add(fe->stats, GW_STAT_responses_5xx, 1);
}

static void send_empty(struct fe_ctx *fe, const struct gw_ep *ep, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = { (uint8_t)(0x40 | type << 4), 0, (uint8_t)(mid >> 8), (uint8_t)mid };
    fe_send(fe, ep, b, 4);
}

static uint16_t new_mid(struct fe_ctx *fe)
{
    return fe->next_mid++;
}

/* Answers a request right away: piggybacked on the ACK for CON, a NON
 * with a fresh MID for NON (RFC 7252 5.2). Remembered for duplicates. */
static void reply_now(struct fe_ctx *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                      struct fe_dedup_entry *de, const uint8_t *buf, size_t len)
{
    fe_send(fe, ep, buf, len);
    if (de)
        fe_dedup_set_resp(&fe->dedup, de, buf, len);
    if (len >= 2)
        count_code(fe, buf[1]);
    (void)req;
}

static void reply_code(struct fe_ctx *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                       struct fe_dedup_entry *de, uint8_t code, const char *diag, uint32_t max_age)
{
    uint8_t out[512];
    struct gw_cb b;
    uint8_t type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
    uint16_t mid = req->type == GW_COAP_CON ? req->mid : new_mid(fe);
    gw_cb_init(&b, out, sizeof(out), type, code, mid, req->token, req->tkl);
    if (max_age != UINT32_MAX)
        gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, max_age);
    if (diag)
        gw_cb_payload(&b, diag, strlen(diag));
    size_t len;
    if (gw_cb_finish(&b, &len) == 0)
        reply_now(fe, ep, req, de, out, len);
}

/* ---- rings ---- */

static void kick_scheduler(struct fe_ctx *fe)
{
    if (fe->sch_kick && gw_bell_should_wake(fe->sch_bell))
        gw_bell_fifo_kick(fe->sch_bell_fd);
    fe->sch_kick = false;
}

static int push_sch(struct fe_ctx *fe, const struct gw_msg *m, const uint8_t *data)
{
    int rc = gw_ring_push2(fe->to_sch, m, sizeof(*m), data, m->len);
    if (rc == 0)
        fe->sch_kick = true;
    else
        gw_stat_add(fe->stats, GW_STAT_ring_full, 1);
    return rc;
}

static void tell_obs_gone(struct fe_ctx *fe, const struct gw_ep *ep, const uint8_t *token, uint8_t tkl, uint64_t session)
{
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_OBS_GONE;
    m.fe = (uint8_t)fe->index;
    m.ep = *ep;
    m.tkl = tkl;
    memcpy(m.token, token, tkl);
    m.session = session;
    if (push_sch(fe, &m, NULL) == 0)
        kick_scheduler(fe);
}

static void tell_session_end(struct fe_ctx *fe, const struct gw_session *s)
{
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_SESSION_END;
    m.fe = (uint8_t)fe->index;
    m.ep = s->ep;
    m.session = s->id;
    if (push_sch(fe, &m, NULL) == 0)
        kick_scheduler(fe);
    fe_rtx_forget_ep(&fe->rtx, &s->ep);
}

/* ---- per-session limits ---- */

static struct fe_limit *limit_for(struct fe_ctx *fe, uint64_t session, bool create)
{
    uint32_t mask = fe->limits_cap - 1;
    uint32_t i = (uint32_t)(session * 0x9e3779b97f4a7c15ull >> 40) & mask;
    for (uint32_t n = 0; n < fe->limits_cap; n++, i = (i + 1) & mask) {
        struct fe_limit *l = &fe->limits[i];
        if (l->session == session)
            return l;
        if (l->session == 0) {
            if (!create)
                return NULL;
            l->session = session;
            l->tokens = (double)fe->cfg.session_burst;
            l->last_ms = gw_mono_ms();
            l->inflight = 0;
            return l;
        }
    }
    /* Full: start over (limits are soft state). */
    memset(fe->limits, 0, sizeof(*fe->limits) * fe->limits_cap);
    return create ? limit_for(fe, session, true) : NULL;
}

/* ---- responses coming back from the scheduler ---- */

static void deliver(struct fe_ctx *fe, const struct gw_msg *m, const uint8_t *data)
{
    if (m->len < 4)
        return;
    uint8_t buf[GW_COAP_MAX_MSG + 64];
    size_t len = m->len;
    if (len > GW_COAP_MAX_MSG + 16)
        return;
    memcpy(buf, data, len);
    bool notify = m->flags & GW_MF_NOTIFY;
    if (!notify || (m->flags & GW_MF_ANSWER)) {
        struct fe_limit *l = limit_for(fe, m->session, false);
        if (l && l->inflight)
            l->inflight--;
    }
    if (m->flags & GW_MF_SUPPRESS)
        return;
    uint8_t type = m->client_type == GW_COAP_CON ? GW_COAP_CON : GW_COAP_NON;
    if (notify) /* S6.9: CON by default, or the type the device used */
        type = fe->cfg.obs_notify_con || !(m->flags & GW_MF_DEV_NON) ? GW_COAP_CON : GW_COAP_NON;
    uint16_t mid = new_mid(fe);

    /* S4.7: the client asked for blocks no larger than 16 << szx. */
    struct gw_coap_msg full;
    if ((m->flags & GW_MF_BLOCK2) && !notify && gw_coap_parse(fe->parser, buf, len, &full) == 0 &&
        full.payload_len > ((size_t)16 << m->aux)) {
        uint64_t key = gw_hash64(m->token, m->tkl, m->req_key);
        struct fe_block_xfer *x = fe_blocks_new(&fe->blocks, &m->ep, m->req_key, 2, gw_mono_ms());
        (void)key;
        if (fe_blocks_append(&fe->blocks, x, buf, len) == 0) {
            uint8_t out[GW_COAP_MAX_MSG + 64];
            size_t ol;
            if (fe_block_slice(&full, 0, (uint8_t)m->aux, type, mid, m->token, m->tkl, out, sizeof(out), &ol) == 0) {
                memcpy(buf, out, ol);
                len = ol;
            }
        } else {
            fe_blocks_drop(&fe->blocks, x);
        }
    }
    buf[0] = (uint8_t)((buf[0] & 0xcf) | type << 4);
    buf[2] = (uint8_t)(mid >> 8);
    buf[3] = (uint8_t)mid;
    if (type == GW_COAP_CON) {
        int rc = fe_rtx_add(&fe->rtx, &m->ep, mid, buf, len, notify, m->token, m->tkl, m->session, gw_mono_ms(),
                            rnd32());
        if (rc)
            gw_log_debug(GW_LOG_COAP, "retransmission table full: %s", gw_strerror(rc));
    }
    fe_send(fe, &m->ep, buf, len);
    if (notify)
        gw_stat_add(fe->stats, GW_STAT_notifications, 1);
    else
        count_code(fe, buf[1]);
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
        deliver(fe, &m, data);
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
    struct fe_rtx_out o;
    uint64_t now = gw_mono_ms();
    while (fe_rtx_due(&fe->rtx, now, &o)) {
        if (o.ev == FE_RTX_RESEND) {
            fe_send(fe, &o.ep, o.buf, o.len);
            gw_stat_add(fe->stats, GW_STAT_client_retransmissions, 1);
        } else {
            gw_stat_add(fe->stats, GW_STAT_client_timeouts, 1);
            /* S6.4: an observer that fails to ACK a CON notification leaves. */
            if (o.notify)
                tell_obs_gone(fe, &o.ep, o.token, o.tkl, o.session);
        }
    }
    fe_flush(fe);
    arm_rtx_timer(fe);
}

static void arm_rtx_timer(struct fe_ctx *fe)
{
    uint64_t next = fe_rtx_next(&fe->rtx);
    if (next == UINT64_MAX) {
        uv_timer_stop(&fe->rtx_timer);
        return;
    }
    uint64_t now = gw_mono_ms();
    uv_timer_start(&fe->rtx_timer, on_rtx_timer, next > now ? next - now : 0, 0);
}

/* ---- sessions sweep ---- */

static void session_ended_cb(void *ctx, const struct gw_session *s)
{
    struct fe_ctx *fe = ctx;
    gw_stat_add(fe->stats, GW_STAT_sessions_ended, 1);
    tell_session_end(fe, s);
}

static void on_sweep(uv_timer_t *t)
{
    struct fe_ctx *fe = t->data;
    fe_session_sweep(&fe->store, &fe->scfg, gw_wall_s(), 64, session_ended_cb, fe);
    gw_stat_set(fe->stats, GW_STAT_sessions_live, fe_session_count(&fe->store));
}

/* ---- proxy requests ---- */

static void handle_proxy(struct fe_ctx *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                         struct fe_dedup_entry *de, const struct fe_target *t)
{
    char eps[GW_EP_STRLEN];
    struct gw_session s;
    int64_t now_s = gw_wall_s();
    uint64_t now = gw_mono_ms();
    int rc = fe_session_lookup(&fe->store, &fe->scfg, ep, now_s, &s);
    if (rc) {
        gw_stat_add(fe->stats, GW_STAT_requests_unauthorized, 1);
        if (gw_log_ratelimit(&fe->unauth_log, now, (double)fe->cfg.unauth_log_per_s, (double)fe->cfg.unauth_log_per_s * 2)) {
            uint64_t sup = fe->unauth_log.suppressed;
            fe->unauth_log.suppressed = 0;
            gw_log_warn(GW_LOG_AUTH, "no session for %s: proxy request refused with 4.01 (%llu similar lines suppressed)",
                        gw_ep_str(ep, eps, sizeof(eps)), (unsigned long long)sup);
        }
        reply_code(fe, ep, req, de, GW_COAP_UNAUTHORIZED,
                   "no session for this address and port: POST a token to /sessions first", UINT32_MAX);
        return;
    }
    struct fe_verdict v;
    int szx;
    if (fe_route_check_options(req, &szx, &v) != 0) {
        /* A Block2 follow-up for an answer we hold is served from it (S4.7). */
        const struct gw_coap_opt *b2 = gw_coap_opt_find(req, GW_OPT_BLOCK2);
        struct gw_block blk;
        if (b2 && !gw_coap_opt_find(req, GW_OPT_BLOCK1) && gw_block_decode(b2, &blk)) {
            uint64_t key = fe_local_target_key(req, t);
            struct fe_block_xfer *x = fe_blocks_find(&fe->blocks, ep, key, 2, now);
            struct gw_coap_msg full;
            if (x && gw_coap_parse(fe->parser, x->data, x->len, &full) == 0) {
                uint8_t out[GW_COAP_MAX_MSG + 64];
                size_t ol;
                uint8_t type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
                uint16_t mid = req->type == GW_COAP_CON ? req->mid : new_mid(fe);
                if (fe_block_slice(&full, blk.num, blk.szx, type, mid, req->token, req->tkl, out, sizeof(out), &ol) == 0) {
                    reply_now(fe, ep, req, de, out, ol);
                    return;
                }
                reply_code(fe, ep, req, de, GW_COAP_BAD_OPTION, "Block2 number past the end of the stored answer", UINT32_MAX);
                return;
            }
        }
        gw_stat_add(fe->stats, GW_STAT_requests_bad, 1);
        reply_code(fe, ep, req, de, v.code, v.diag, UINT32_MAX);
        return;
    }
    uint8_t mac[GW_MAC_LEN];
    struct gw_device dev;
    if (gw_mac_parse(t->host, strlen(t->host), mac) != 0 || gw_registry_get(&fe->store, mac, &dev) != 0) {
        gw_stat_add(fe->stats, GW_STAT_requests_bad, 1);
        reply_code(fe, ep, req, de, GW_COAP_BAD_GATEWAY, "unknown device: no such MAC ID in the device registry", UINT32_MAX);
        return;
    }
    if (!fe_scope_allows(&s.scope, mac)) {
        gw_stat_add(fe->stats, GW_STAT_requests_forbidden, 1);
        reply_code(fe, ep, req, de, GW_COAP_FORBIDDEN, "device outside the token's device scope", UINT32_MAX);
        return;
    }
    if (t->port >= 0) {
        int want = s.security == GW_SEC_NETMGR ? 4849 : 5683;
        if (t->port != want) {
            gw_stat_add(fe->stats, GW_STAT_requests_bad, 1);
            reply_code(fe, ep, req, de, GW_COAP_BAD_REQUEST,
                       s.security == GW_SEC_NETMGR ? "port contradicts the session's security=netmgr (4849)"
                                                   : "port contradicts the session's security=none (5683)",
                       UINT32_MAX);
            return;
        }
    }
    /* S2.8: policy limits, 4.29 with Max-Age as a retry hint (RFC 8516). */
    struct fe_limit *l = limit_for(fe, s.id, true);
    double elapsed = (double)(now - l->last_ms) / 1000.0;
    l->last_ms = now;
    l->tokens += elapsed * (double)fe->cfg.session_rate;
    if (l->tokens > (double)fe->cfg.session_burst)
        l->tokens = (double)fe->cfg.session_burst;
    if (l->inflight >= (uint32_t)fe->cfg.session_max_inflight || l->tokens < 1.0) {
        gw_stat_add(fe->stats, GW_STAT_requests_rate_limited, 1);
        uint32_t wait = l->tokens < 1.0 ? (uint32_t)((1.0 - l->tokens) / (double)fe->cfg.session_rate) + 1 : 1;
        reply_code(fe, ep, req, de, GW_COAP_TOO_MANY,
                   l->tokens < 1.0 ? "request rate limit of this session reached"
                                   : "too many requests of this session in flight",
                   wait);
        return;
    }

    uint8_t up[GW_COAP_MAX_MSG + 64];
    size_t ul;
    if (fe_route_build(req, t, up, sizeof(up), &ul) != 0 || ul > GW_COAP_MAX_MSG) {
        gw_stat_add(fe->stats, GW_STAT_requests_bad, 1);
        reply_code(fe, ep, req, de, GW_COAP_TOO_LARGE, "request too large for the mesh", UINT32_MAX);
        return;
    }
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_REQ;
    m.security = s.security;
    m.fe = (uint8_t)fe->index;
    m.len = (uint16_t)ul;
    m.client_type = req->type;
    m.tkl = req->tkl;
    memcpy(m.token, req->token, req->tkl);
    m.req_id = ((uint64_t)fe->index << 56) | (fe->next_req++ & 0x00ffffffffffffffull);
    m.session = s.id;
    m.ep = *ep;
    memcpy(m.mac, mac, GW_MAC_LEN);
    int obs = fe_route_observe(req);
    if (obs == 0)
        m.flags |= GW_MF_OBS_REGISTER;
    else if (obs == 1)
        m.flags |= GW_MF_OBS_CANCEL;
    if (szx >= 0) {
        m.flags |= GW_MF_BLOCK2;
        m.aux = (uint32_t)szx;
    }
    m.req_key = fe_local_target_key(req, t);
    m.client_mid = req->mid;
    const struct gw_coap_opt *nr = gw_coap_opt_find(req, GW_OPT_NO_RESPONSE);
    uint32_t nrv;
    if (nr && gw_coap_uint(nr->val, nr->len, &nrv))
        m.noresp = (uint8_t)nrv;
    if (push_sch(fe, &m, up) != 0) {
        reply_code(fe, ep, req, de, GW_COAP_UNAVAILABLE, "gateway overloaded: request queue full", 1);
        return;
    }
    l->tokens -= 1.0;
    l->inflight++;
    gw_stat_add(fe->stats, GW_STAT_requests_proxied, 1);
    if (de)
        de->forwarded = 1;
    /* S3.1: the empty ACK goes out at once; the answer follows separately. */
    if (req->type == GW_COAP_CON)
        send_empty(fe, ep, GW_COAP_ACK, req->mid);
    if (fe_session_touch(&fe->store, &fe->scfg, &s, now_s) != 0)
        gw_log_debug(GW_LOG_STORE, "session touch failed");
    kick_scheduler(fe);
}

/* ---- datagrams ---- */

static void handle_datagram(struct fe_ctx *fe, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    uint8_t ver, type;
    uint16_t mid;
    gw_stat_add(fe->stats, GW_STAT_rx_datagrams, 1);
    if (!gw_coap_peek(buf, len, &ver, &type, &mid)) {
        gw_stat_add(fe->stats, GW_STAT_rx_malformed, 1);
        return;
    }
    if (ver != 1)
        return; /* S3.6: silently ignored */
    uint64_t now = gw_mono_ms();
    if (len > (size_t)fe->cfg.max_message) {
        /* S3.5: 4.13 with Size1 for an over-size request we can still address. */
        uint8_t tkl = buf[0] & 15, code = buf[1];
        if (tkl <= 8 && len >= 4u + tkl && (code >> 5) == 0 && code != 0 && type <= GW_COAP_NON) {
            uint8_t out[64];
            struct gw_cb b;
            gw_cb_init(&b, out, sizeof(out), type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON, GW_COAP_TOO_LARGE,
                       type == GW_COAP_CON ? mid : new_mid(fe), buf + 4, tkl);
            gw_cb_opt_uint(&b, GW_OPT_SIZE1, (uint32_t)fe->cfg.max_message);
            gw_cb_payload(&b, "message too large", 17);
            size_t ol;
            if (gw_cb_finish(&b, &ol) == 0)
                fe_send(fe, ep, out, ol);
            gw_stat_add(fe->stats, GW_STAT_requests_bad, 1);
        } else {
            gw_stat_add(fe->stats, GW_STAT_rx_malformed, 1);
        }
        return;
    }
    struct gw_coap_msg req;
    int rc = gw_coap_parse(fe->parser, buf, len, &req);
    if (rc) {
        /* S3.4: a malformed CON is rejected with RST, anything else dropped. */
        gw_stat_add(fe->stats, GW_STAT_rx_malformed, 1);
        if (type == GW_COAP_CON)
            send_empty(fe, ep, GW_COAP_RST, mid);
        return;
    }
    if (req.type == GW_COAP_ACK || req.type == GW_COAP_RST) {
        struct fe_rtx_out o;
        if (fe_rtx_ack(&fe->rtx, ep, req.mid, &o)) {
            if (req.type == GW_COAP_RST && o.notify)
                tell_obs_gone(fe, ep, o.token, o.tkl, o.session);
            arm_rtx_timer(fe);
        }
        return;
    }
    if (req.code == GW_COAP_EMPTY) {
        if (req.type == GW_COAP_CON)
            send_empty(fe, ep, GW_COAP_RST, req.mid); /* S3.4: ping */
        return;
    }
    if ((req.code >> 5) != 0) {
        /* A response sent to us as a request: reject (RFC 7252 4.2/4.3). */
        if (req.type == GW_COAP_CON)
            send_empty(fe, ep, GW_COAP_RST, req.mid);
        return;
    }
    struct fe_dedup_entry *de = fe_dedup_find(&fe->dedup, ep, req.mid, now);
    if (de) {
        gw_stat_add(fe->stats, GW_STAT_rx_duplicates, 1);
        if (de->resp)
            fe_send(fe, ep, de->resp, de->resp_len);
        else if (req.type == GW_COAP_CON)
            send_empty(fe, ep, GW_COAP_ACK, req.mid);
        return;
    }
    de = fe_dedup_add(&fe->dedup, ep, req.mid, now);

    if (fe_route_is_proxy(&req)) {
        struct fe_target t;
        struct fe_verdict v;
        rc = fe_route_target(&req, &t, &v);
        if (rc == 0 && fe_route_is_self(t.host, fe->cfg.names, fe->cfg.listen)) {
            /* S4.8: a target naming the gateway is served locally. */
            gw_stat_add(fe->stats, GW_STAT_requests_local, 1);
            fe_local_handle(&fe->local, ep, &req, &t, de);
            return;
        }
        if (rc == 0) {
            handle_proxy(fe, ep, &req, de, &t);
            return;
        }
        struct gw_session s;
        if (fe_session_lookup(&fe->store, &fe->scfg, ep, gw_wall_s(), &s) != 0) {
            handle_proxy(fe, ep, &req, de, &t); /* answers 4.01 (S2.4) */
            return;
        }
        gw_stat_add(fe->stats, GW_STAT_requests_bad, 1);
        reply_code(fe, ep, &req, de, v.code, v.diag, UINT32_MAX);
        return;
    }
    gw_stat_add(fe->stats, GW_STAT_requests_local, 1);
    fe_local_handle(&fe->local, ep, &req, NULL, de);
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
    handle_datagram(fe, &ep, (const uint8_t *)buf->base, (size_t)nread);
    kick_scheduler(fe);
}

/* ---- local resource glue (fe_local calls back into us) ---- */

static void local_reply(void *ctx, const struct gw_ep *ep, const struct gw_coap_msg *req, struct fe_dedup_entry *de,
                        const uint8_t *buf, size_t len)
{
    reply_now(ctx, ep, req, de, buf, len);
}

static uint16_t local_mid(void *ctx)
{
    return new_mid(ctx);
}

static void local_session_ended(void *ctx, const struct gw_session *s)
{
    struct fe_ctx *fe = ctx;
    gw_stat_add(fe->stats, GW_STAT_sessions_ended, 1);
    tell_session_end(fe, s);
}

static void local_session_created(void *ctx, const struct gw_session *s, const struct gw_ep *moved_from)
{
    struct fe_ctx *fe = ctx;
    gw_stat_add(fe->stats, GW_STAT_sessions_created, 1);
    (void)s;
    (void)moved_from;
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
    mkdir(cfg->data_dir, 0700);
    snprintf(path, len, "%s/dev-secret", cfg->data_dir);
    if (access(path, R_OK) == 0)
        return 0;
    /* A development secret: 32 random bytes as hex. Written to a temporary
     * name and linked into place so concurrent starters agree on one. */
    uint8_t raw[32];
    if (getrandom(raw, sizeof(raw), 0) != sizeof(raw))
        return -EIO;
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    char tmp[600];
    snprintf(tmp, sizeof(tmp), "%s.%d", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
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
        exit_code = rc == GW_ELAYOUT ? GW_EXIT_FATAL : 1;
        goto out;
    }
    fe->to_sch = gw_shm_ring(&fe->shm, gw_ring_fe_to_sch((uint32_t)index));
    fe->from_sch = gw_shm_ring(&fe->shm, gw_ring_sch_to_fe(&fe->shm, (uint32_t)index));
    gw_ring_claim_producer(fe->to_sch, (uint32_t)getpid());
    gw_ring_claim_consumer(fe->from_sch, (uint32_t)getpid());
    fe->my_bell = gw_shm_bell(&fe->shm, GW_BELL_FRONTEND0 + (uint32_t)index);
    fe->sch_bell = gw_shm_bell(&fe->shm, GW_BELL_SCHEDULER);
    struct gw_proc_slot *ps = gw_shm_proc(&fe->shm, GW_PROC_FRONTEND0 + (uint32_t)index);
    fe->stats = &ps->stats;
    atomic_store(&ps->pid, (uint32_t)getpid());
    char path[600];
    mkdir(cfg->data_dir, 0700);
    gw_bell_path(cfg, GW_BELL_FRONTEND0 + (uint32_t)index, path, sizeof(path));
    fe->my_bell_fd = gw_bell_fifo_open(path);
    gw_bell_path(cfg, GW_BELL_SCHEDULER, path, sizeof(path));
    fe->sch_bell_fd = gw_bell_fifo_open(path);
    if (fe->my_bell_fd < 0 || fe->sch_bell_fd < 0) {
        gw_log_err(GW_LOG_RING, "doorbell FIFOs in %s: %s", cfg->data_dir,
                   gw_strerror(fe->my_bell_fd < 0 ? fe->my_bell_fd : fe->sch_bell_fd));
        goto out;
    }
    if ((rc = gw_store_open(&fe->store, cfg->data_dir, (size_t)cfg->lmdb_map_mb)) != 0) {
        gw_log_err(GW_LOG_STORE, "opening LMDB in %s: %s", cfg->data_dir, gw_strerror(rc));
        goto out;
    }
    char keypath[600];
    if ((rc = fe_dev_key_path(cfg, keypath, sizeof(keypath))) != 0) {
        gw_log_err(GW_LOG_AUTH, "development key in %s: %s", cfg->data_dir, gw_strerror(rc));
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
    if (gw_coap_parser_new(&fe->parser) != 0 ||
        fe_dedup_init(&fe->dedup, (uint32_t)cfg->dedup_max, (uint64_t)cfg->exchange_lifetime_ms, 8u << 20) != 0 ||
        fe_rtx_init(&fe->rtx, (uint32_t)cfg->client_inflight_max, (uint64_t)cfg->client_ack_timeout_ms,
                    (uint32_t)cfg->client_max_retransmit) != 0 ||
        fe_blocks_init(&fe->blocks, (uint32_t)cfg->block_transfers_max, (uint64_t)cfg->block_timeout_ms,
                       (size_t)cfg->block_max_body) != 0) {
        gw_log_err(GW_LOG_SYS, "out of memory setting up tables");
        goto out;
    }
    fe->limits_cap = 1024;
    while (fe->limits_cap < 2 * (uint64_t)cfg->max_sessions && fe->limits_cap < (1u << 20))
        fe->limits_cap <<= 1;
    fe->limits = calloc(fe->limits_cap, sizeof(*fe->limits));
    if (!fe->limits)
        goto out;
    fe->scfg = (struct fe_sess_cfg){ cfg->session_idle_s, cfg->session_max_lifetime_s, cfg->max_sessions_per_account,
                                     cfg->max_sessions, GW_MAX(1, GW_MIN(60, cfg->session_idle_s / 10)) };
    fe->next_mid = (uint16_t)rnd32();
    fe->next_req = ((uint64_t)rnd32() << 20);
    /* S4.8: with a wildcard listen address every local interface address
     * names the gateway too. */
    {
        struct ifaddrs *ifa = NULL;
        size_t n = strlen(fe->cfg.names);
        if (getifaddrs(&ifa) == 0) {
            for (struct ifaddrs *i = ifa; i; i = i->ifa_next) {
                struct gw_ep iep;
                char a[GW_EP_STRLEN];
                if (!i->ifa_addr || gw_ep_from_sa(&iep, i->ifa_addr) != 0)
                    continue;
                gw_ep_str(&iep, a, sizeof(a));
                char *colon = strrchr(a, ':'); /* drop ":port" and IPv6 brackets */
                if (colon)
                    *colon = '\0';
                char *h = a[0] == '[' ? a + 1 : a;
                size_t hl = strlen(h);
                if (hl && h[hl - 1] == ']')
                    h[--hl] = '\0';
                if (n + hl + 2 < sizeof(fe->cfg.names)) {
                    fe->cfg.names[n++] = ',';
                    memcpy(fe->cfg.names + n, h, hl + 1);
                    n += hl;
                }
            }
            freeifaddrs(ifa);
        }
    }
    fe->local = (struct fe_local){
        .cfg = &fe->cfg, .store = &fe->store, .auth = fe->auth, .scfg = &fe->scfg, .blocks = &fe->blocks,
        .parser = fe->parser, .ctx = fe, .reply = local_reply, .mid = local_mid,
        .session_ended = local_session_ended, .session_created = local_session_created,
    };
    /* Proxy requests need the device registry, which the scheduler loads at
     * start: wait for it (bounded) before taking clients, so a fresh gateway
     * never answers 5.02 for a device it is about to know. */
    struct gw_proc_slot *sch_slot = gw_shm_proc(&fe->shm, GW_PROC_SCHEDULER);
    for (int i = 0; i < 1000 && !atomic_load(&sch_slot->ready); i++) {
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
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
    /* Whatever the scheduler queued for us while we were away goes out now. */
    gw_bell_prepare_sleep(fe->my_bell);
    drain_from_sch(fe);
    gw_log_info(GW_LOG_SYS, "frontend %d listening on %s", index, cfg->listen);
    uv_run(&fe->loop, UV_RUN_DEFAULT);
    exit_code = 0;
out:
    uv_walk(&fe->loop, (uv_walk_cb)(void (*)(void))uv_close, NULL);
    uv_run(&fe->loop, UV_RUN_NOWAIT);
    uv_loop_close(&fe->loop);
    fe_dedup_deinit(&fe->dedup);
    fe_rtx_deinit(&fe->rtx);
    fe_blocks_deinit(&fe->blocks);
    free(fe->limits);
    gw_coap_parser_free(fe->parser);
    fe_auth_free(fe->auth);
    gw_store_close(&fe->store);
    if (fe->my_bell_fd >= 0)
        close(fe->my_bell_fd);
    if (fe->sch_bell_fd >= 0)
        close(fe->sch_bell_fd);
    gw_shm_close(&fe->shm);
    free(fe);
    return exit_code;
}
