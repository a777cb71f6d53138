/* SPDX-License-Identifier: MIT */
/* fe_core.c - the frontend's request handling, without sockets or rings.
 *
 * Request handling order for a datagram (SPEC S3, S2, S4):
 *   version != 1: silence (S3.6). Malformed: RST for CON, silence otherwise
 *   (S3.4). ACK/RST: stop a retransmission. Empty CON: RST (ping).
 *   Over max_message: 4.13 with Size1 (S3.5). Duplicate (endpoint, MID, token):
 *   the stored answer again, or an empty ACK (S3.3). Then a local resource,
 *   or a proxy request: target syntax, session (4.01), options (4.02),
 *   device (5.02), scope (4.03), port vs security (4.00), limits (4.29),
 *   then an empty ACK at once and the request for the scheduler.
 * Datagrams leave through out.to_client and records through out.to_sch; the glue
 * (frontend.c) batches the first and rings the scheduler's doorbell for
 * the second. The fuzz target tests/fuzz/fuzz_frontend.c drives this file
 * directly. */
#include "fe_core.h"
#include "gw_clock.h"
#include "gw_coap.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_msg.h"
#include "gw_nodes.h"
#include "gw_registry.h"

#include <errno.h>
#include <ifaddrs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- sending ---- */

static void fe_send(struct fe_core *fe, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    fe->out.to_client(fe->out.ctx, ep, buf, len);
}

static void count_code(struct fe_core *fe, uint8_t code)
{
    gw_stat_code(fe->stats, code);
}

static void send_empty(struct fe_core *fe, const struct gw_ep *ep, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = { (uint8_t)(0x40 | type << 4), 0, (uint8_t)(mid >> 8), (uint8_t)mid };
    fe_send(fe, ep, b, 4);
}

static uint16_t new_mid(struct fe_core *fe)
{
    return fe->out.client_mid ? fe->out.client_mid(fe->out.ctx) : fe->next_mid++;
}

/* ---- answers to senders without a session (S9.1) ---- */

/* Encodes m with Block2 {num, more, szx} (replacing any Block2/Size2) and
 * Size2 when size2 >= 0. */
static int encode_block(const struct gw_coap_msg *m, uint32_t num, bool more, uint8_t szx,
                        int64_t size2, uint8_t *out, size_t cap, size_t *len)
{
    struct gw_coap_msg c = *m;
    unsigned w = 0;
    for (unsigned i = 0; i < c.nopts; i++)
        if (c.opts[i].num != GW_OPT_BLOCK2 && c.opts[i].num != GW_OPT_SIZE2)
            c.opts[w++] = c.opts[i];
    if (w + 2 > GW_COAP_MAX_OPTS)
        return GW_ETOOBIG;
    uint8_t bv[4], sv[4];
    struct gw_block blk = { num, more, szx };
    c.opts[w++] = (struct gw_coap_opt){ GW_OPT_BLOCK2, (uint16_t)gw_block_encode(&blk, bv), bv };
    if (size2 >= 0)
        c.opts[w++] = (struct gw_coap_opt){ GW_OPT_SIZE2,
                                            (uint16_t)gw_coap_uint_enc((uint32_t)size2, sv), sv };
    c.nopts = (uint16_t)w;
    /* gw_coap_encode sorts nothing: keep options in number order. */
    for (unsigned i = 1; i < w; i++)
        for (unsigned j = i; j > 0 && c.opts[j - 1].num > c.opts[j].num; j--) {
            struct gw_coap_opt t = c.opts[j];
            c.opts[j] = c.opts[j - 1];
            c.opts[j - 1] = t;
        }
    return gw_coap_encode(&c, out, cap, len);
}

/* Cuts an answer to at most `cap` bytes (RFC 7252 11.3): a diagnostic
 * payload is shortened; a 2.xx payload is served in smaller blocks (block
 * NUM scaled as RFC 7959 2.4 allows when the server picks a smaller SZX).
 * Returns 0 with out/len, or GW_ETOOBIG when nothing fits. */
static int fit_answer(struct fe_core *fe, const uint8_t *buf, size_t len, size_t cap, uint8_t *out,
                      size_t *olen)
{
    struct gw_coap_msg m;
    if (gw_coap_parse(fe->fitp, buf, len, &m) != 0 || m.payload_len == 0)
        return GW_ETOOBIG;
    if ((m.code >> 5) != 2) {
        size_t head = len - m.payload_len - 1; /* without the payload and its marker */
        if (head > cap)
            return GW_ETOOBIG;
        m.payload_len = cap > head + 1 ? GW_MIN(m.payload_len, cap - head - 1) : 0;
        return gw_coap_encode(&m, out, cap, olen);
    }
    uint32_t num = 0;
    bool more = false;
    uint8_t szx = 7; /* no Block2: the whole representation */
    const struct gw_coap_opt *b2 = gw_coap_opt_find(&m, GW_OPT_BLOCK2);
    struct gw_block blk;
    if (b2 && gw_block_decode(b2, &blk)) {
        num = blk.num;
        more = blk.more;
        szx = blk.szx;
    }
    const struct gw_coap_opt *s2o = gw_coap_opt_find(&m, GW_OPT_SIZE2);
    uint32_t s2v = 0;
    int64_t size2 = s2o && gw_coap_uint(s2o->val, s2o->len, &s2v) ? (int64_t)s2v
                    : b2                                          ? -1
                                                                  : (int64_t)m.payload_len;
    uint64_t base = szx < 7 ? (uint64_t)num << (4 + szx) : 0;
    for (int s = GW_MIN(szx, 7) - 1; s >= 0; s--) {
        size_t bs = (size_t)16 << s;
        if (bs >= m.payload_len && szx == 7)
            continue; /* would not cut anything */
        struct gw_coap_msg part = m;
        part.payload_len = GW_MIN(bs, m.payload_len);
        uint32_t pnum = (uint32_t)(base >> (4 + s));
        bool pmore = more || m.payload_len > bs;
        for (int with_size = 1; with_size >= 0; with_size--) {
            int64_t sz = with_size && pnum == 0 ? size2 : -1;
            if (!with_size && sz < 0 && pnum == 0 && size2 < 0)
                continue;
            if (encode_block(&part, pnum, pmore, (uint8_t)s, sz, out, cap, olen) == 0 &&
                *olen <= cap)
                return 0;
        }
    }
    return GW_ETOOBIG;
}

/* A token from the bucket of a source address without a session; false
 * when it has none left (S9.1). Addresses whose keyed hash collides share a
 * bucket, which can only make the limit stricter. */
static bool sessionless_admit(struct fe_core *fe, const struct gw_ep *ep, uint64_t now)
{
    struct gw_ep a = *ep;
    a.port = 0;
    struct fe_src_bucket *b =
        &fe->buckets[gw_siphash(fe->bucket_key, &a, sizeof(a)) & (fe->nbuckets - 1)];
    double burst = (double)fe->cfg.sessionless_burst;
    if (b->addr.family == 0) {
        b->tokens = burst;
    } else {
        b->tokens += (double)(now - b->last_ms) / 1000.0 * (double)fe->cfg.sessionless_rate;
        if (b->tokens > burst)
            b->tokens = burst;
    }
    b->last_ms = now;
    if (!gw_ep_eq(&b->addr, &a) && (b->addr.family == 0 || b->tokens >= burst))
        b->addr = a; /* an idle bucket is taken over; a busy one is shared */
    if (b->tokens < 1.0)
        return false;
    b->tokens -= 1.0;
    return true;
}

/* Answers a request right away: piggybacked on the ACK for CON, a NON
 * with a fresh MID for NON (RFC 7252 5.2). Remembered for duplicates. */
static void reply_now_h(struct fe_core *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de, const uint8_t *buf, size_t len,
                        enum gw_hist_id hist)
{
    uint8_t fitted[GW_COAP_MAX_MSG + 64];
    if (fe->answer_cap && len > fe->answer_cap) {
        size_t fl;
        if (fit_answer(fe, buf, len, fe->answer_cap, fitted, &fl) != 0) {
            gw_stat_add(fe->stats, GW_STAT_sessionless_dropped, 1);
            return; /* nothing small enough to say */
        }
        buf = fitted;
        len = fl;
    }
    fe_send(fe, ep, buf, len);
    if (de)
        fe_dedup_set_resp(&fe->dedup, de, buf, len);
    if (len >= 2)
        count_code(fe, buf[1]);
    uint32_t dur = (uint32_t)gw_mono_us() - fe->rx_us;
    gw_stat_observe(fe->stats, hist, dur);
    if (gw_log_enabled(GW_LOG_DEBUG) && len >= 2) {
        char eps[GW_EP_STRLEN], path[160], code[8];
        gw_coap_msg_path_str(req, path, sizeof(path));
        struct gw_log_kv kv[] = {
            GW_KV_S("via", hist == GW_HIST_CACHE ? "cache" : "gateway"),
            GW_KV_S("client", gw_ep_str(ep, eps, sizeof(eps))),
            GW_KV_S("path", path),
            GW_KV_S("code", gw_coap_code_str(buf[1], code)),
            GW_KV_I("duration_us", dur),
        };
        gw_log_event(GW_LOG_DEBUG, GW_LOG_COAP, "client request", kv, GW_ARRAY_LEN(kv));
    }
}

static void reply_now(struct fe_core *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                      struct fe_dedup_entry *de, const uint8_t *buf, size_t len)
{
    reply_now_h(fe, ep, req, de, buf, len, GW_HIST_LOCAL);
}

/* The answer `code` with Max-Age (UINT32_MAX: none) and a diagnostic
 * payload: piggybacked on the ACK of a CON, a NON with a fresh MID. */
static int code_answer(struct fe_core *fe, const struct gw_coap_msg *req, uint8_t code,
                       const char *diag, uint32_t max_age, uint8_t *out, size_t cap, size_t *len)
{
    struct gw_cb b;
    uint8_t type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
    uint16_t mid = req->type == GW_COAP_CON ? req->mid : new_mid(fe);
    gw_cb_init(&b, out, cap, type, code, mid, req->token, req->tkl);
    if (max_age != UINT32_MAX)
        gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, max_age);
    if (diag)
        gw_cb_payload(&b, diag, strlen(diag));
    return gw_cb_finish(&b, len);
}

static void reply_code(struct fe_core *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                       struct fe_dedup_entry *de, uint8_t code, const char *diag, uint32_t max_age)
{
    uint8_t out[512];
    size_t len;
    if (code_answer(fe, req, code, diag, max_age, out, sizeof(out), &len) == 0)
        reply_now(fe, ep, req, de, out, len);
}

/* reply_code for a diagnostic with static storage (a string literal): the
 * exchange remembers how to rebuild the answer, not a copy of it, when the
 * request is CON (its duplicates are identical, so the ACK is too). For
 * the answers that pile up under overload and floods (5.03 ring full, 4.29,
 * 4.01 without a session; issue 13 item 4). */
static void reply_code_static(struct fe_core *fe, const struct gw_ep *ep,
                              const struct gw_coap_msg *req, struct fe_dedup_entry *de,
                              uint8_t code, const char *diag, uint32_t max_age)
{
    if (de && req->type == GW_COAP_CON && fe_dedup_set_code(de, code, diag, max_age))
        de = NULL; /* kept by its recipe */
    reply_code(fe, ep, req, de, code, diag, max_age);
}

static int push_sch(struct fe_core *fe, const struct gw_msg *m, const uint8_t *data)
{
    int rc = fe->out.to_sch(fe->out.ctx, m, data);
    if (rc != 0)
        gw_stat_add(fe->stats, GW_STAT_ring_full, 1);
    return rc;
}

static void tell_obs_gone(struct fe_core *fe, const struct gw_ep *ep, const uint8_t *token,
                          uint8_t tkl, uint64_t session)
{
    struct gw_msg m;
    gw_msg_obs_gone(&m, (uint8_t)fe->index, ep, token, tkl, session);
    if (push_sch(fe, &m, NULL) != 0)
        gw_log_debug(GW_LOG_RING, "scheduler ring full: record dropped");
}

/* S1.3: the client ACKed or RSTed an answer the scheduler keeps (or this
 * frontend gave it up): the scheduler may forget it. Lost when the ring is
 * full; the scheduler then forgets it after MAX_TRANSMIT_WAIT. */
static void tell_answer_done(struct fe_core *fe, const struct gw_ep *ep, uint16_t mid)
{
    struct gw_msg m;
    gw_msg_answer_done(&m, (uint8_t)fe->index, ep, mid);
    if (push_sch(fe, &m, NULL) != 0)
        gw_log_debug(GW_LOG_RING, "scheduler ring full: record dropped");
}

int fe_core_announce_start(struct fe_core *fe)
{
    struct gw_msg m;
    gw_msg_fe_start(&m, (uint8_t)fe->index);
    return push_sch(fe, &m, NULL);
}

static void tell_session_end(struct fe_core *fe, const struct gw_session *s)
{
    struct gw_msg m;
    gw_msg_session_end(&m, (uint8_t)fe->index, &s->ep, s->id);
    if (push_sch(fe, &m, NULL) != 0)
        gw_log_debug(GW_LOG_RING, "scheduler ring full: record dropped");
    fe_rtx_forget_ep(&fe->rtx, &s->ep);
}

/* ---- per-session limits ---- */

/* The limits of a session, in an array filled in order and found through
 * a gw_map of up to limits_cap sessions; created when `create`. The index
 * grows with the sessions that sent a request: sized for limits_cap at
 * start it was 8 MiB (max_sessions 100 000), every page of which a few
 * thousand random session ids touch, 420 B resident per session (issue 13).
 * When it is full, or cannot grow, it starts over: limits are soft state,
 * and every session then gets a fresh bucket, never none. */
static struct fe_limit *limit_for(struct fe_core *fe, uint64_t session, bool create)
{
    uint64_t i;
    if (gw_map_get(&fe->limit_idx, session, &i))
        return &fe->limits[i];
    if (!create)
        return NULL;
    if (fe->limit_idx.n >= fe->limits_cap)
        gw_map_clear(&fe->limit_idx);
    uint32_t n = fe->limit_idx.n;
    if (gw_map_put(&fe->limit_idx, session, n) != 0) {
        gw_map_clear(&fe->limit_idx);
        n = 0;
        /* Cannot fail: an empty index of at least 16 slots needs no growth. */
        GW_IGNORE(gw_map_put(&fe->limit_idx, session, n));
    }
    struct fe_limit *l = &fe->limits[n];
    l->session = session;
    l->tokens = (double)fe->cfg.session_burst;
    l->last_ms = gw_now_ms(fe->clock);
    l->inflight = 0;
    return l;
}

/* The debug line for a proxied request's final answer; `req` joins it to
 * the scheduler's line for the device exchange. */
#define FE_TRACE_SLOTS 1024

static void trace_note(struct fe_core *fe, uint64_t req_id, const struct gw_coap_msg *req)
{
    if (!fe->trace && !(fe->trace = calloc(FE_TRACE_SLOTS, sizeof(*fe->trace))))
        return;
    struct fe_trace *t = &fe->trace[req_id % FE_TRACE_SLOTS];
    t->req_id = req_id;
    gw_coap_msg_path_str(req, t->path, sizeof(t->path));
}

static void log_answer(struct fe_core *fe, const struct gw_msg *m, uint8_t code, uint32_t dur_us,
                       const char *via)
{
    char eps[GW_EP_STRLEN], id[20], sess[20], mac[17], cs[8];
    snprintf(id, sizeof(id), "%016llx", (unsigned long long)m->req_id);
    snprintf(sess, sizeof(sess), "%016llx", (unsigned long long)m->session);
    gw_mac_str(m->mac, mac);
    /* The target, when the request was taken at debug level by this frontend
     * (not by a predecessor, nor before the level was raised). */
    struct fe_trace *t = fe->trace ? &fe->trace[m->req_id % FE_TRACE_SLOTS] : NULL;
    const char *path = t && t->req_id == m->req_id ? t->path : "?";
    struct gw_log_kv kv[] = {
        GW_KV_S("req", id),
        GW_KV_S("via", via),
        GW_KV_S("client", gw_ep_str(&m->ep, eps, sizeof(eps))),
        GW_KV_S("session", sess),
        GW_KV_S("mac", mac),
        GW_KV_S("path", path),
        GW_KV_S("code", gw_coap_code_str(code, cs)),
        GW_KV_I("duration_us", dur_us),
    };
    gw_log_event(GW_LOG_DEBUG, GW_LOG_COAP, "client request", kv, GW_ARRAY_LEN(kv));
}

/* A request of the session was answered: one fewer in flight (S2.8). */
static void answered(struct fe_core *fe, uint64_t session)
{
    struct fe_limit *l = limit_for(fe, session, false);
    if (l && l->inflight)
        l->inflight--;
}

/* The scheduler's verdict on a held cache hit (gw_msg.h GW_MF2_CHECK): the
 * hit goes on the ACK of the client's MID, or, for a copy of a request the
 * scheduler took, an empty ACK (S3.3). Nothing when the exchange is no
 * longer held here (a verdict asked for again, or by a predecessor). */
static void on_verdict(struct fe_core *fe, const struct gw_msg *m)
{
    if (m->flags & GW_MF_ANSWER)
        answered(fe, m->session);
    struct fe_dedup_entry *de =
        fe_dedup_find(&fe->dedup, &m->ep, m->client_mid, m->token, m->tkl, gw_now_ms(fe->clock));
    if (!de || !de->checking)
        return;
    de->checking = 0;
    if (m->flags2 & GW_MF2_COPY) {
        fe_dedup_drop_resp(&fe->dedup, de);
        de->forwarded = 1;
        gw_stat_add(fe->stats, GW_STAT_requests_proxied, 1);
        send_empty(fe, &m->ep, GW_COAP_ACK, m->client_mid);
        return;
    }
    if (!de->resp)
        return;
    fe_send(fe, &m->ep, de->resp, de->resp_len);
    gw_stat_add(fe->stats, GW_STAT_cache_hits, 1);
    count_code(fe, de->resp[1]);
    gw_stat_observe(fe->stats, GW_HIST_CACHE, (uint32_t)gw_mono_us() - m->rx_us);
}

void fe_core_deliver(struct fe_core *fe, const struct gw_msg *m, const uint8_t *data)
{
    if (m->flags2 & GW_MF2_CHECK) {
        on_verdict(fe, m);
        return;
    }
    if (m->len < 4)
        return;
    uint8_t buf[GW_COAP_MAX_MSG + 64];
    size_t len = m->len;
    if (len > GW_COAP_MAX_MSG + 16)
        return;
    memcpy(buf, data, len);
    bool notify = m->flags & GW_MF_NOTIFY;
    bool kept = (m->flags2 & GW_MF2_MID) && !notify;
    /* The scheduler's copy of an answer already in flight here (sent again
     * after a frontend restart): one transmission schedule is enough. */
    if (kept && fe_rtx_has(&fe->rtx, &m->ep, m->client_mid))
        return;
    if (!notify || (m->flags & GW_MF_ANSWER))
        answered(fe, m->session);
    if (m->flags & GW_MF_SUPPRESS)
        return;
    uint8_t type = m->client_type == GW_COAP_CON ? GW_COAP_CON : GW_COAP_NON;
    if (notify) /* S6.9: CON by default, or the type the device used */
        type = fe->cfg.obs_notify_con || !(m->flags & GW_MF_DEV_NON) ? GW_COAP_CON : GW_COAP_NON;
    /* A kept answer goes out with the MID the scheduler stored with it, so a
     * copy sent by a successor is a duplicate to the client (S1.3). */
    uint16_t mid = kept ? m->client_mid : new_mid(fe);

    /* S4.7: the client asked for blocks no larger than 16 << szx. */
    struct gw_coap_msg full;
    if ((m->flags & GW_MF_BLOCK2) && !notify && gw_coap_parse(fe->parser, buf, len, &full) == 0 &&
        full.payload_len > ((size_t)16 << m->aux)) {
        struct fe_block_xfer *x =
            fe_blocks_new(&fe->blocks, &m->ep, m->req_key, 2, gw_now_ms(fe->clock), false);
        if (x && fe_blocks_append(&fe->blocks, x, buf, len) == 0) {
            uint8_t out[GW_COAP_MAX_MSG + 64];
            size_t ol;
            if (fe_block_slice(&full, 0, (uint8_t)m->aux, type, mid, m->token, m->tkl, out,
                               sizeof(out), &ol) == 0) {
                memcpy(buf, out, ol);
                len = ol;
            }
        } else if (x) {
            fe_blocks_drop(&fe->blocks, x);
        }
    }
    buf[0] = (uint8_t)((buf[0] & 0xcf) | type << 4);
    buf[2] = (uint8_t)(mid >> 8);
    buf[3] = (uint8_t)mid;
    if (type == GW_COAP_CON) {
        int rc = fe_rtx_add(&fe->rtx, &m->ep, mid, buf, len, notify, m->token, m->tkl, m->session,
                            gw_now_ms(fe->clock), gw_rand_u32(&fe->rng));
        if (rc)
            gw_log_debug(GW_LOG_COAP, "retransmission table full: %s", gw_strerror(rc));
        else if (kept)
            fe_rtx_track(&fe->rtx, &m->ep, mid);
    }
    fe_send(fe, &m->ep, buf, len);
    if (notify) {
        gw_stat_add(fe->stats, GW_STAT_notifications, 1);
        return;
    }
    count_code(fe, buf[1]);
    uint32_t dur = (uint32_t)gw_mono_us() - m->rx_us;
    bool cached = m->flags & GW_MF_CACHED;
    gw_stat_observe(fe->stats, cached ? GW_HIST_CACHE : GW_HIST_PROXIED, dur);
    if (gw_log_enabled(GW_LOG_DEBUG))
        log_answer(fe, m, buf[1], dur, cached ? "cache" : "mesh");
}

/* One observer of a notification set: its own type, MID and token around
 * the shared message, and for a CON one more reference to the shared body
 * (created at the first CON) instead of a copy of the datagram. */
static void deliver_notify(struct fe_core *fe, const struct gw_msg *env,
                           const struct gw_notify_to *to, const uint8_t *msg, size_t ml,
                           struct fe_nbody **body, uint64_t now)
{
    if (to->flags & GW_MF_ANSWER)
        answered(fe, to->session);
    if (env->flags & GW_MF_SUPPRESS)
        return;
    /* S6.9: CON by default, or the type the device used. */
    uint8_t type =
        fe->cfg.obs_notify_con || !(env->flags & GW_MF_DEV_NON) ? GW_COAP_CON : GW_COAP_NON;
    uint16_t mid = new_mid(fe);
    if (!*body)
        *body = fe_nbody_new(msg, ml);
    if (!*body)
        return;
    uint8_t out[GW_COAP_MAX_MSG + 16 + GW_COAP_MAX_TOKEN];
    size_t len = fe_nbody_render(*body, type, mid, to->token, to->tkl, out);
    if (type == GW_COAP_CON) {
        int rc = fe_rtx_add_notify(&fe->rtx, &to->ep, mid, *body, to->token, to->tkl, to->session,
                                   now, gw_rand_u32(&fe->rng));
        if (rc)
            gw_log_debug(GW_LOG_COAP, "retransmission table full: %s", gw_strerror(rc));
    }
    fe_send(fe, &to->ep, out, len);
}

int fe_core_deliver_record(struct fe_core *fe, const struct gw_msg *m, const uint8_t *data)
{
    if (m->kind == GW_MSG_RESP) {
        fe_core_deliver(fe, m, data);
        return 0;
    }
    if (m->kind != GW_MSG_NOTIFY_SET)
        return GW_EBADMSG;
    /* One state for many observers (gw_msg.h): each gets it with its own
     * token and MID. Every entry is checked first: a malformed set sends
     * nothing. */
    size_t n = gw_notify_set_count(m, data);
    if (!n)
        return GW_EBADMSG;
    struct gw_notify_to to;
    for (size_t i = 0; i < n; i++)
        if (gw_notify_set_to(m, data, i, &to) != 0)
            return GW_EBADMSG;
    struct gw_notify_hdr h;
    memcpy(&h, data, sizeof(h));
    const uint8_t *msg = data + sizeof(h);
    struct fe_nbody *body = NULL;
    uint64_t now = gw_now_ms(fe->clock);
    for (size_t i = 0; i < n; i++) {
        memcpy(&to, msg + h.msg_len + i * sizeof(to), sizeof(to));
        deliver_notify(fe, m, &to, msg, h.msg_len, &body, now);
    }
    fe_nbody_drop(body); /* when no CON took a reference */
    if (!(m->flags & GW_MF_SUPPRESS))
        gw_stat_add(fe->stats, GW_STAT_notifications, (int64_t)n);
    return 0;
}

uint64_t fe_core_timer(struct fe_core *fe, uint64_t now)
{
    struct fe_rtx_out o;
    while (fe_rtx_due(&fe->rtx, now, &o)) {
        if (o.ev == FE_RTX_RESEND) {
            fe_send(fe, &o.ep, o.buf, o.len);
            gw_stat_add(fe->stats, GW_STAT_client_retransmissions, 1);
        } else {
            gw_stat_add(fe->stats, GW_STAT_client_timeouts, 1);
            /* S6.4: an observer that fails to ACK a CON notification leaves. */
            if (o.notify)
                tell_obs_gone(fe, &o.ep, o.token, o.tkl, o.session);
            if (o.tracked)
                tell_answer_done(fe, &o.ep, o.mid);
        }
    }
    return fe_rtx_next(&fe->rtx);
}

uint64_t fe_core_next(struct fe_core *fe)
{
    return fe_rtx_next(&fe->rtx);
}

static void session_ended_cb(void *ctx, const struct gw_session *s)
{
    struct fe_core *fe = ctx;
    gw_stat_add(fe->stats, GW_STAT_sessions_ended, 1);
    tell_session_end(fe, s);
}

void fe_core_sweep(struct fe_core *fe, int64_t now_s)
{
    fe_session_sweep(fe->store, &fe->scfg, now_s, 64, session_ended_cb, fe);
    gw_stat_set(fe->stats, GW_STAT_sessions_live, fe_session_count(fe->store));
}

/* ---- proxy requests ---- */

/* A proxy request from an address without a session: 4.01, logged at a
 * bounded rate (the sender may be spoofed, S9.1). */
static void refuse_sessionless(struct fe_core *fe, const struct gw_ep *ep,
                               const struct gw_coap_msg *req, struct fe_dedup_entry *de,
                               uint64_t now)
{
    char eps[GW_EP_STRLEN];
    if (gw_log_ratelimit(&fe->unauth_log, now, (double)fe->cfg.unauth_log_per_s,
                         (double)fe->cfg.unauth_log_per_s * 2)) {
        char note[64];
        const char *sup = gw_log_suppressed_note(&fe->unauth_log, note, sizeof(note));
        gw_log_warn(GW_LOG_AUTH, "no session for %s: proxy request refused with 4.01%s",
                    gw_ep_str(ep, eps, sizeof(eps)), sup);
    }
    /* Cut to 3x the request's size if need be (S9.1): the start says it. */
    reply_code_static(fe, ep, req, de, GW_COAP_UNAUTHORIZED,
                      "no session for this address and port: POST a token to /sessions first",
                      UINT32_MAX);
}

/* Options the route refused (v): a Block2 follow-up for an answer we hold is
 * still served from it (S4.7); anything else gets v's code. */
static void refuse_options(struct fe_core *fe, const struct gw_ep *ep,
                           const struct gw_coap_msg *req, struct fe_dedup_entry *de,
                           const struct fe_target *t, const struct fe_verdict *v, uint64_t now)
{
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
            if (fe_block_slice(&full, blk.num, blk.szx, type, mid, req->token, req->tkl, out,
                               sizeof(out), &ol) == 0) {
                reply_now(fe, ep, req, de, out, ol);
                return;
            }
            reply_code(fe, ep, req, de, GW_COAP_BAD_OPTION,
                       "Block2 number past the end of the stored answer", UINT32_MAX);
            return;
        }
    }
    reply_code(fe, ep, req, de, v->code, v->diag, UINT32_MAX);
}

/* The target device: known to the registry, inside the token's scope, owned
 * by this node (S10.4), and addressed on the port of the session's
 * security. 0, or -1 after a reply. */
static int check_device(struct fe_core *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de, const struct fe_target *t,
                        const struct gw_session *s, uint8_t mac[GW_MAC_LEN])
{
    if (gw_mac_parse(t->host, strlen(t->host), mac) != 0 ||
        gw_registry_type_cached(&fe->regtypes, fe->store, mac) < 0) {
        reply_code(fe, ep, req, de, GW_COAP_BAD_GATEWAY,
                   "unknown device: no such MAC ID in the device registry", UINT32_MAX);
        return -1;
    }
    if (!fe_scope_allows(&s->scope, mac)) {
        reply_code(fe, ep, req, de, GW_COAP_FORBIDDEN, "device outside the token's device scope",
                   UINT32_MAX);
        return -1;
    }
    /* S10.4: only the owner node speaks to a device (one nonce space, one
     * Milli in flight, one observation). A client's request for another
     * node's device goes to the scheduler like any other: meshio forwards
     * it to the owner as a proxy request on a node session. A request that
     * arrives on a node session is never forwarded again: when this node
     * does not own the device either, the two nodes' lists disagree, and a
     * second hop could loop. */
    if (s->node && fe->cfg.node_count > 1) {
        uint32_t owner = gw_nodes_owner(mac, (uint32_t)fe->cfg.node_count);
        if (owner != (uint32_t)fe->cfg.node_id) {
            char diag[120];
            snprintf(diag, sizeof(diag),
                     "device owned by node %u here: node lists disagree, not forwarded again",
                     owner);
            reply_code(fe, ep, req, de, GW_COAP_UNAVAILABLE, diag, UINT32_MAX);
            return -1;
        }
    }
    if (t->port >= 0) {
        int want = s->security == GW_SEC_NETMGR ? 4849 : 5683;
        if (t->port != want) {
            reply_code(fe, ep, req, de, GW_COAP_BAD_REQUEST,
                       s->security == GW_SEC_NETMGR
                           ? "port contradicts the session's security=netmgr (4849)"
                           : "port contradicts the session's security=none (5683)",
                       UINT32_MAX);
            return -1;
        }
    }
    return 0;
}

/* S2.8: the session's token bucket and in-flight bound, refilled to now;
 * 4.29 with Max-Age as a retry hint (RFC 8516). 0, or -1 after a reply. */
static int check_rate(struct fe_core *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                      struct fe_dedup_entry *de, struct fe_limit *l, uint64_t now)
{
    double elapsed = (double)(now - l->last_ms) / 1000.0;
    l->last_ms = now;
    l->tokens += elapsed * (double)fe->cfg.session_rate;
    if (l->tokens > (double)fe->cfg.session_burst)
        l->tokens = (double)fe->cfg.session_burst;
    if (l->inflight >= (uint32_t)fe->cfg.session_max_inflight || l->tokens < 1.0) {
        uint32_t wait =
            l->tokens < 1.0 ? (uint32_t)((1.0 - l->tokens) / (double)fe->cfg.session_rate) + 1 : 1;
        reply_code_static(fe, ep, req, de, GW_COAP_TOO_MANY,
                          l->tokens < 1.0 ? "request rate limit of this session reached"
                                          : "too many requests of this session in flight",
                          wait);
        return -1;
    }
    return 0;
}

/* The GW_MSG_REQ envelope for the scheduler; ul bytes of upstream PDU follow it. */
static void fill_request(struct fe_core *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                         const struct fe_target *t, const struct gw_session *s,
                         const uint8_t mac[GW_MAC_LEN], int szx, size_t ul, struct gw_msg *m)
{
    gw_msg_req(m, s->security, mac, ul);
    gw_msg_set_client(m, (uint8_t)fe->index, s->id, ep, req->type, req->token, req->tkl,
                      ((uint64_t)fe->index << 56) | (fe->next_req++ & 0x00ffffffffffffffull));
    m->rx_us = fe->rx_us;
    if (gw_log_enabled(GW_LOG_DEBUG))
        trace_note(fe, m->req_id, req);
    int obs = fe_route_observe(req);
    if (obs == 0)
        m->flags |= GW_MF_OBS_REGISTER;
    else if (obs == 1)
        m->flags |= GW_MF_OBS_CANCEL;
    if (szx >= 0) {
        m->flags |= GW_MF_BLOCK2;
        m->aux = (uint32_t)szx;
    }
    m->req_key = fe_local_target_key(req, t);
    m->client_mid = req->mid;
    const struct gw_coap_opt *nr = gw_coap_opt_find(req, GW_OPT_NO_RESPONSE);
    uint32_t nrv;
    if (nr && gw_coap_uint(nr->val, nr->len, &nrv))
        m->noresp = (uint8_t)nrv;
}

static void touch_session(struct fe_core *fe, struct gw_session *s, int64_t now_s)
{
    if (fe_session_touch(fe->store, &fe->scfg, s, now_s) != 0)
        gw_log_debug(GW_LOG_STORE, "session touch failed");
}

/* A request for a device (S3): session, options, device, rate; then a fresh
 * cache hit is answered here, anything else goes to the scheduler. */
static void handle_proxy(struct fe_core *fe, const struct gw_ep *ep, const struct gw_coap_msg *req,
                         struct fe_dedup_entry *de, const struct fe_target *t,
                         const struct gw_session *sess)
{
    int64_t now_s = gw_now_wall(fe->clock);
    uint64_t now = gw_now_ms(fe->clock);
    if (!sess) {
        refuse_sessionless(fe, ep, req, de, now);
        return;
    }
    struct gw_session s = *sess;
    struct fe_verdict v;
    int szx;
    if (fe_route_check_options(req, &szx, &v) != 0) {
        refuse_options(fe, ep, req, de, t, &v, now);
        return;
    }
    uint8_t mac[GW_MAC_LEN];
    if (check_device(fe, ep, req, de, t, &s, mac) != 0)
        return;
    /* S10.4: a node's session carries many clients' requests, each limited
     * at the node that took it: no per-session rate or in-flight bound. */
    struct fe_limit *l = s.node ? NULL : limit_for(fe, s.id, true);
    if (l && check_rate(fe, ep, req, de, l, now) != 0)
        return;

    uint8_t up[GW_COAP_MAX_MSG + 64];
    size_t ul;
    if (fe_route_build(req, t, up, sizeof(up), &ul) != 0 || ul > GW_COAP_MAX_MSG) {
        reply_code(fe, ep, req, de, GW_COAP_TOO_LARGE, "request too large for the mesh",
                   UINT32_MAX);
        return;
    }
    /* S3.1: a fresh cache hit is answered here, piggybacked (gw_rcache.h). */
    uint8_t hit[GW_COAP_MAX_MSG + 64];
    size_t hl;
    int hr = fe_rcache_answer(fe, mac, s.security, up, ul, req, hit, sizeof(hit), &hl);
    if (hr == FE_RCACHE_HIT) {
        reply_now_h(fe, ep, req, de, hit, hl, GW_HIST_CACHE);
        if (l)
            l->tokens -= 1.0;
        touch_session(fe, &s, now_s);
        return;
    }
    /* A hit the guard holds back (fe_guard.h): kept with the exchange until
     * the scheduler says whether to send it (gw_msg.h GW_MF2_CHECK). Without
     * room to keep it, the ordinary path. */
    bool check = false;
    if (hr == FE_RCACHE_CHECK && de && !de->resp && !de->code) {
        fe_dedup_set_resp(&fe->dedup, de, hit, hl);
        check = de->resp != NULL;
    }
    struct gw_msg m;
    fill_request(fe, ep, req, t, &s, mac, szx, ul, &m);
    if (check)
        m.flags2 |= GW_MF2_CHECK;
    /* Before the push: a frontend that dies right after it is still known to
     * have forwarded (fe_guard.h). */
    if (fe->guard && req->type == GW_COAP_CON)
        fe_guard_forward(fe->guard, now);
    if (push_sch(fe, &m, up) != 0) {
        if (check)
            fe_dedup_drop_resp(&fe->dedup, de);
        reply_code_static(fe, ep, req, de, GW_COAP_UNAVAILABLE,
                          "gateway overloaded: request queue full", 1);
        return;
    }
    if (l) {
        l->tokens -= 1.0;
        l->inflight++;
    }
    if (check) {
        de->checking = 1; /* the ACK waits for the verdict (fe_core_deliver) */
        touch_session(fe, &s, now_s);
        return;
    }
    gw_stat_add(fe->stats, GW_STAT_requests_proxied, 1);
    if (de)
        de->forwarded = 1;
    /* S3.1: the empty ACK goes out at once; the answer follows separately. */
    if (req->type == GW_COAP_CON)
        send_empty(fe, ep, GW_COAP_ACK, req->mid);
    touch_session(fe, &s, now_s);
}

/* ---- the session of a datagram's sender (issue 13) ----
 * An LMDB read transaction per request was about 1 700 instructions. A
 * session read under LMDB's last transaction id T is what a read now
 * returns as long as the environment's last transaction id is still T:
 * any commit, by any process (another frontend creating, moving, touching
 * or ending a session, a sweep), moves it, and the slot is read again. The
 * id is read before the session, so a commit in between leaves the slot
 * under the older id, read again next time. Expiry is checked at every
 * use, as fe_session_lookup does. A restarted frontend starts empty. Only
 * endpoints that hold a session fill slots: a spoofed sender without one
 * takes the LMDB path and evicts nothing. Slots are chosen without a keyed
 * hash: a collision costs one LMDB look-up, as before. */
#define FE_SESS_CACHE 64 /* slots, 280 B each; a frontend serves few busy endpoints */

struct fe_sess_slot {
    size_t txnid; /* 0: empty */
    struct gw_ep ep;
    struct gw_session s;
};

static uint32_t sess_slot_of(const struct gw_ep *ep)
{
    uint64_t a0, a1;
    memcpy(&a0, ep->addr, 8);
    memcpy(&a1, ep->addr + 8, 8);
    uint64_t h =
        (a0 ^ a1 * 0x9e3779b97f4a7c15ull ^ ((uint64_t)ep->port << 32)) * 0xff51afd7ed558ccdull;
    return (uint32_t)(h >> 58) % FE_SESS_CACHE;
}

static int session_of(struct fe_core *fe, const struct gw_ep *ep, struct gw_session *out)
{
    int64_t now = gw_now_wall(fe->clock);
    MDB_envinfo info;
    size_t txnid =
        fe->sess_cache && mdb_env_info(fe->store->env, &info) == 0 ? info.me_last_txnid : 0;
    struct fe_sess_slot *e = txnid ? &fe->sess_cache[sess_slot_of(ep)] : NULL;
    if (e && e->txnid == txnid && gw_ep_eq(&e->ep, ep)) {
        if (fe_session_expired(&fe->scfg, &e->s, now))
            return GW_ENOTFOUND;
        *out = e->s;
        return 0;
    }
    int rc = fe_session_lookup(fe->store, &fe->scfg, ep, now, out);
    if (e && rc == 0) {
        e->txnid = txnid;
        e->ep = *ep;
        e->s = *out;
    }
    return rc;
}

/* ---- datagrams ---- */

void fe_core_datagram(struct fe_core *fe, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    uint8_t ver, type;
    uint16_t mid;
    gw_stat_add(fe->stats, GW_STAT_rx_datagrams, 1);
    fe->rx_us = (uint32_t)gw_mono_us();
    if (!gw_coap_peek(buf, len, &ver, &type, &mid)) {
        gw_stat_add(fe->stats, GW_STAT_rx_malformed, 1);
        return;
    }
    if (ver != 1)
        return; /* S3.6: silently ignored */
    uint64_t now = gw_now_ms(fe->clock);
    fe->answer_cap = 0;
    /* S9.1: a sender without a session may be a spoofed address. Requests
     * from it are rate-limited per address, and every answer is at most 3
     * times the datagram (RFC 7252 11.3). ACK and RST draw no answer. */
    struct gw_session sbuf, *sess = NULL;
    if (type <= GW_COAP_NON) {
        if (session_of(fe, ep, &sbuf) == 0) {
            sess = &sbuf;
        } else if (!sessionless_admit(fe, ep, now)) {
            gw_stat_add(fe->stats, GW_STAT_sessionless_dropped, 1);
            return;
        } else {
            fe->answer_cap = 3 * len;
        }
    }
    if (len > (size_t)fe->cfg.max_message) {
        /* S3.5: 4.13 with Size1 for an over-size request we can still address. */
        uint8_t tkl = buf[0] & 15, code = buf[1];
        if (tkl <= 8 && len >= 4u + tkl && (code >> 5) == 0 && code != 0 && type <= GW_COAP_NON) {
            uint8_t out[64];
            struct gw_cb b;
            gw_cb_init(&b, out, sizeof(out), type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON,
                       GW_COAP_TOO_LARGE, type == GW_COAP_CON ? mid : new_mid(fe), buf + 4, tkl);
            gw_cb_opt_uint(&b, GW_OPT_SIZE1, (uint32_t)fe->cfg.max_message);
            gw_cb_payload(&b, "message too large", 17);
            size_t ol;
            if (gw_cb_finish(&b, &ol) == 0) {
                fe_send(fe, ep, out, ol);
                count_code(fe, GW_COAP_TOO_LARGE);
            }
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
            if (o.tracked)
                tell_answer_done(fe, ep, req.mid);
        } else if (fe_rtx_replaced(&fe->rtx, ep, req.mid, &o)) {
            /* The late ACK of a notification a newer one replaced (RFC 7641
             * 4.5.2): nothing the scheduler keeps, so no session look-up and
             * no record. An RST still ends the observation (S6.4), and the
             * newer notification with it. */
            if (req.type == GW_COAP_RST) {
                struct fe_rtx_out cur;
                GW_IGNORE(fe_rtx_ack(&fe->rtx, ep, o.mid, &cur));
                tell_obs_gone(fe, ep, o.token, o.tkl, o.session);
            }
        } else if (req.type == GW_COAP_ACK && fe_rtx_notified(&fe->rtx, req.mid)) {
            /* The late ACK of a notification replaced more than once, or
             * given up: nothing the scheduler keeps (fe_msglayer.h). */
        } else if (req.code == GW_COAP_EMPTY) {
            /* S1.3: an answer sent by a predecessor or another frontend of
             * the port; the scheduler keeps it until this ACK. Only from
             * clients with a session, so strangers cannot fill the ring. */
            struct gw_session s;
            if (session_of(fe, ep, &s) == 0)
                tell_answer_done(fe, ep, req.mid);
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
    /* S3.3: one find-or-insert (a single hash of the key, issue 13). */
    bool dup;
    struct fe_dedup_entry *de = fe_dedup_get(&fe->dedup, ep, req.mid, req.token, req.tkl, now,
                                             sess ? FE_DEDUP_SESSION : FE_DEDUP_SESSIONLESS, &dup);
    if (dup)
        gw_stat_add(fe->stats, GW_STAT_rx_duplicates, 1);
    if (dup && de->checking) {
        /* A copy while the scheduler's verdict on a held cache hit is due:
         * asked again (the verdict may have been lost with a full ring);
         * the first verdict to come settles it, a later one finds nothing
         * held. */
        dup = false;
        fe_dedup_drop_resp(&fe->dedup, de);
        de->checking = 0;
    }
    if (dup) {
        /* A stored answer may have gone to the endpoint while it held a
         * session: to a sender without one it is cut like any other (S9.1). */
        uint8_t fitted[GW_COAP_MAX_MSG + 64], rebuilt[512];
        size_t fl = de->resp_len;
        const uint8_t *stored = de->code ? NULL : de->resp;
        if (de->code && req.type == GW_COAP_CON &&
            code_answer(fe, &req, de->code, de->diag,
                        de->resp_len == 0xffff ? UINT32_MAX : de->resp_len, rebuilt,
                        sizeof(rebuilt), &fl) == 0)
            stored = rebuilt;
        if (stored && fe->answer_cap && fl > fe->answer_cap)
            stored = fit_answer(fe, stored, fl, fe->answer_cap, fitted, &fl) == 0 ? fitted : NULL;
        if (stored)
            fe_send(fe, ep, stored, fl);
        else if (req.type == GW_COAP_CON)
            send_empty(fe, ep, GW_COAP_ACK, req.mid);
        return;
    }
    fe->cur_de = de;
    fe->local.sessionless = sess == NULL;

    if (fe_route_is_proxy(&req)) {
        struct fe_target t;
        struct fe_verdict v;
        rc = fe_route_target(&req, &t, &v);
        if (rc == 0 && fe_route_is_self(t.host, fe->cfg.names, fe->cfg.listen)) {
            /* S4.8: a target naming the gateway is served locally. */
            gw_stat_add(fe->stats, GW_STAT_requests_local, 1);
            fe_local_handle(&fe->local, ep, &req, &t, de);
        } else if (rc == 0 || !sess) {
            handle_proxy(fe, ep, &req, de, &t, sess); /* without a session: 4.01 (S2.4) */
        } else {
            reply_code(fe, ep, &req, de, v.code, v.diag, UINT32_MAX);
        }
    } else {
        gw_stat_add(fe->stats, GW_STAT_requests_local, 1);
        fe_local_handle(&fe->local, ep, &req, NULL, de);
    }
    fe->cur_de = NULL;
    fe->answer_cap = 0;
}

/* ---- local resource glue (fe_local calls back into us) ---- */

static void local_reply(void *ctx, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de, const uint8_t *buf, size_t len)
{
    reply_now(ctx, ep, req, de, buf, len);
}

static uint16_t local_mid(void *ctx)
{
    return new_mid(ctx);
}

static void local_session_ended(void *ctx, const struct gw_session *s)
{
    struct fe_core *fe = ctx;
    gw_stat_add(fe->stats, GW_STAT_sessions_ended, 1);
    tell_session_end(fe, s);
}

static void local_session_created(void *ctx, const struct gw_session *s,
                                  const struct gw_ep *moved_from)
{
    struct fe_core *fe = ctx;
    gw_stat_add(fe->stats, GW_STAT_sessions_created, 1);
    /* The sender now holds a session: its 2.01 is not cut, and the exchange
     * is kept with the session senders' (item 6: spoofed sessionless traffic
     * cannot evict it, so a retransmitted POST gets the same 2.01). */
    fe->answer_cap = 0;
    fe_dedup_promote(&fe->dedup, fe->cur_de, gw_now_ms(fe->clock));
    if (moved_from) {
        /* Item 7: observers at the old endpoint get a final notification
         * from the scheduler and leave; they do not follow the session. */
        struct gw_msg m;
        gw_msg_session_moved(&m, (uint8_t)fe->index, moved_from, s->id);
        if (push_sch(fe, &m, NULL) != 0)
            gw_log_warn(GW_LOG_RING,
                        "scheduler ring full: observers at the old endpoint of a sticky move stay");
    }
}

/* ---- set-up ---- */

int fe_core_init(struct fe_core *fe, const struct gw_config *cfg, int index, struct gw_store *store,
                 struct fe_auth *auth, struct gw_coap_parser *parser, const struct fe_out *out,
                 struct gw_stats *stats)
{
    memset(fe, 0, sizeof(*fe));
    fe->cfg = *cfg;
    fe->index = index;
    fe->store = store;
    gw_regtypes_init(&fe->regtypes);
    /* Without it every look-up goes to LMDB, as before (session_of). */
    fe->sess_cache = calloc(FE_SESS_CACHE, sizeof(*fe->sess_cache));
    fe->auth = auth;
    fe->parser = parser;
    fe->out = *out;
    fe->stats = stats;
    fe->clock = &gw_clock_real;
    if (fe_dedup_init(&fe->dedup, (uint32_t)fe->cfg.dedup_max,
                      (uint64_t)fe->cfg.exchange_lifetime_ms, 8u << 20) != 0 ||
        fe_rtx_init(&fe->rtx, (uint32_t)fe->cfg.client_inflight_max,
                    (uint64_t)fe->cfg.client_ack_timeout_ms,
                    (uint32_t)fe->cfg.client_max_retransmit) != 0 ||
        fe_blocks_init(&fe->blocks, (uint32_t)fe->cfg.block_transfers_max,
                       (uint64_t)fe->cfg.block_timeout_ms, (size_t)fe->cfg.block_max_body) != 0) {
        gw_log_err(GW_LOG_SYS, "out of memory setting up tables");
        return -ENOMEM;
    }
    fe->limits_cap = 1024;
    while (fe->limits_cap < 2 * (uint64_t)fe->cfg.max_sessions && fe->limits_cap < (1u << 20))
        fe->limits_cap <<= 1;
    fe->limits = calloc(fe->limits_cap, sizeof(*fe->limits));
    if (gw_map_init(&fe->limit_idx, GW_MIN(fe->limits_cap, 1024u), fe->limits_cap) != 0)
        return -ENOMEM;
    fe->nbuckets = 16;
    while (fe->nbuckets < (uint64_t)fe->cfg.sessionless_sources && fe->nbuckets < (1u << 24))
        fe->nbuckets <<= 1;
    fe->buckets = calloc(fe->nbuckets, sizeof(*fe->buckets));
    gw_hash_key_new(fe->bucket_key);
    if (!fe->limits || !fe->buckets || gw_coap_parser_new(&fe->fitp) != 0)
        return -ENOMEM;
    fe_dedup_limit(&fe->dedup, (uint32_t)fe->cfg.dedup_sessionless_max,
                   (uint32_t)fe->cfg.dedup_per_source);
    fe_blocks_limit(&fe->blocks, (uint32_t)fe->cfg.block_per_source,
                    (uint32_t)fe->cfg.block_sessionless_max);
    fe->scfg = (struct fe_sess_cfg){ fe->cfg.session_idle_s, fe->cfg.session_max_lifetime_s,
                                     fe->cfg.max_sessions_per_account, fe->cfg.max_sessions,
                                     GW_MAX(1, GW_MIN(60, fe->cfg.session_idle_s / 10)) };
    gw_rand_seed_random(&fe->rng);
    fe->next_mid = (uint16_t)gw_rand_u32(&fe->rng);
    fe->next_req = ((uint64_t)gw_rand_u32(&fe->rng) << 20);
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
    if (gw_nodes_parse(&fe->cfg, &fe->nodes, NULL, 0) == 0 && gw_nodes_multi(&fe->nodes)) {
        char err[200];
        if (gw_nodes_resolve(&fe->nodes, err, sizeof(err)) != 0)
            gw_log_warn(GW_LOG_SYS, "%s; resolving again at the next node token", err);
    }
    fe->local = (struct fe_local){
        .cfg = &fe->cfg,
        .store = fe->store,
        .auth = fe->auth,
        .scfg = &fe->scfg,
        .blocks = &fe->blocks,
        .parser = fe->parser,
        .ctx = fe,
        .reply = local_reply,
        .mid = local_mid,
        .session_ended = local_session_ended,
        .session_created = local_session_created,
        .clock = NULL,
        .nodes = gw_nodes_multi(&fe->nodes) ? &fe->nodes : NULL,
    };
    return 0;
}

void fe_core_deinit(struct fe_core *fe)
{
    gw_regtypes_deinit(&fe->regtypes);
    free(fe->sess_cache);
    fe->sess_cache = NULL;
    fe_dedup_deinit(&fe->dedup);
    fe_rtx_deinit(&fe->rtx);
    fe_blocks_deinit(&fe->blocks);
    free(fe->limits);
    fe->limits = NULL;
    gw_map_deinit(&fe->limit_idx);
    free(fe->trace);
    fe->trace = NULL;
    free(fe->buckets);
    fe->buckets = NULL;
    gw_coap_parser_free(fe->fitp);
    fe->fitp = NULL;
}
