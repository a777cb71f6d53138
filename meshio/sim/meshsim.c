/* SPDX-License-Identifier: MIT */
/* meshsim.c - the mesh simulator's process: options, libuv loop, sockets,
 * and the timing of every datagram (latency, loss, Milli service, separate
 * responses, retransmission, notifications). Device logic is in
 * meshsim_dev.c; see meshsim.h for what the simulator does. */
#include "meshsim.h"
#include "meshsim_int.h"

#include "gw_error.h"
#include "gw_log.h"
#include "gw_rand.h"
#include "gw_udp.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

struct meshsim {
    uv_loop_t loop;
    uv_timer_t timer;
    uv_signal_t sig_term, sig_int, sig_usr1;
    bool loop_ok, timer_ok, sigs_ok;
    struct meshsim_cfg cfg;
    struct meshsim_dev *devs;
    uint32_t ndev;
    struct meshsim_dedup dedup;
    struct gw_heap heap; /* events (meshsim_int.h) */
    struct gw_coap_parser *parser;
    struct gw_rand rng;
    uint64_t armed_due;
    uint64_t send_errors;
    struct gw_log_limit warn_limit;
    uint8_t pt[MESH_MAX_FRAME];
    uint8_t rxbuf[65536];
};

/* A response waiting for its latency to pass (EV_SEND). */
struct meshsim_out {
    struct meshsim_dev *dev;
    struct gw_ep ep;
    uint16_t req_mid;
    uint8_t secure, type, store, reliable;
    uint16_t len;
    uint8_t buf[];
};

/* ---- small helpers ----------------------------------------------------- */

static uint64_t rnd(struct meshsim *sim)
{
    return gw_rand_next(&sim->rng);
}

static double rnd_unit(struct meshsim *sim)
{
    return gw_rand_unit(&sim->rng);
}

static uint64_t now_ms(const struct meshsim *sim)
{
    return uv_now(&sim->loop);
}

static uint64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static uint32_t draw_latency(struct meshsim *sim, const struct meshsim_dev *d)
{
    uint32_t lo = d->beh.lat_min, hi = d->beh.lat_max;
    return hi > lo ? lo + (uint32_t)(rnd(sim) % (hi - lo + 1u)) : lo;
}

static bool is_lost(struct meshsim *sim, const struct meshsim_dev *d)
{
    return d->beh.loss > 0 && rnd_unit(sim) * 100.0 < d->beh.loss;
}

static uint32_t milli_delay(const struct meshsim_dev *d)
{
    return d->beh.milli_delay >= 0 ? (uint32_t)d->beh.milli_delay : d->sim->cfg.milli_delay;
}

static uint32_t obs_period(const struct meshsim_dev *d)
{
    return d->beh.obs_period >= 0 ? (uint32_t)d->beh.obs_period : d->sim->cfg.obs_period;
}

static uint32_t initial_timeout(struct meshsim *sim)
{
    /* RFC 7252 4.2: ACK_TIMEOUT times a random factor in [1, 1.5). */
    return MESHSIM_ACK_TIMEOUT_MS + (uint32_t)(rnd(sim) % (MESHSIM_ACK_TIMEOUT_MS / 2));
}

static void warn_limited(struct meshsim *sim, const char *what, int err)
{
    gw_log_limited(&sim->warn_limit, now_ms(sim), 1.0, 5.0, GW_LOG_WARN, GW_LOG_MESH, "%s: %s",
                   what, gw_strerror(err));
}

static void schedule(struct meshsim *sim, uint64_t due, uint8_t kind, void *p);

/* ---- sending ----------------------------------------------------------- */

/* Sends one CoAP message from the device, sealed on the secure port. Every
 * datagram may be lost (loss=...) unless may_lose is false (test hooks). */
static void dev_send(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep,
                     const uint8_t *buf, size_t len, bool may_lose)
{
    struct meshsim *sim = d->sim;
    if (may_lose && is_lost(sim, d)) {
        d->c.lost++;
        return;
    }
    uint8_t frame[MESH_MAX_FRAME];
    const uint8_t *p = buf;
    size_t n = len;
    if (secure) {
        int rc = mesh_seal(d->cfg.key, d->cfg.mac, MESH_DIR_FROM_DEVICE, d->tx_seq++, buf, len,
                           frame, sizeof(frame), &n);
        if (rc) {
            warn_limited(sim, "mesh_seal", rc);
            return;
        }
        p = frame;
        if (may_lose) {
            memcpy(d->last_frame, frame, n);
            d->last_len = n;
            d->last_dst = *ep;
        }
    }
    struct sockaddr_storage ss;
    gw_ep_to_sa(ep, &ss);
    uv_buf_t b = uv_buf_init((char *)p, (unsigned)n);
    int rc = uv_udp_try_send(&d->sock[secure].h, &b, 1, (const struct sockaddr *)&ss);
    if (rc < 0) {
        /* A full socket buffer is one more way for the mesh to lose a datagram. */
        sim->send_errors++;
        warn_limited(sim, "uv_udp_try_send", rc);
    }
}

static void send_empty(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep, uint8_t type,
                       uint16_t mid, struct meshsim_dd_ent *store)
{
    uint8_t b[4] = { (uint8_t)(0x40 | (type & 3) << 4), 0, (uint8_t)(mid >> 8), (uint8_t)mid };
    if (store && meshsim__dedup_store(store, b, sizeof(b)) != 0)
        warn_limited(d->sim, "dedup store", -ENOMEM);
    dev_send(d, secure, ep, b, sizeof(b), true);
}

/* The retransmission state of a CON message sent now for the first time. */
static struct meshsim_rtx rtx_first(struct meshsim *sim)
{
    uint32_t timeout = initial_timeout(sim);
    return (struct meshsim_rtx){ MESHSIM_MAX_RETRANSMIT, timeout, now_ms(sim) + timeout };
}

static struct meshsim_txn *txn_start(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep,
                                     uint16_t mid, const uint8_t *buf, size_t len, uint32_t obs_id,
                                     const struct meshsim_rtx *rtx)
{
    struct meshsim *sim = d->sim;
    struct meshsim_txn *t = malloc(sizeof(*t) + len);
    if (!t) {
        warn_limited(sim, "txn", -ENOMEM);
        return NULL;
    }
    *t = (struct meshsim_txn){
        .dev = d, .ep = *ep, .secure = secure, .mid = mid, .rtx = *rtx, .obs_id = obs_id
    };
    t->len = (uint16_t)len;
    memcpy(t->buf, buf, len);
    if (gw_heap_push_ptr(&sim->heap, rtx->due_ms, EV_TXN, t) != 0) {
        warn_limited(sim, "event heap", -ENOMEM);
        free(t);
        return NULL;
    }
    gw_dlist_push_head(&d->txns, &t->node);
    return t;
}

/* Gives a response its final type and MID, records it for duplicates and
 * sends it; a reliable (CON) one from a normal device is retransmitted. */
static void emit(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep, uint8_t type,
                 uint16_t req_mid, bool store, bool reliable, uint8_t *buf, size_t len)
{
    struct meshsim *sim = d->sim;
    uint16_t mid = type == GW_COAP_ACK ? req_mid : d->next_mid++;
    meshsim__set_type_mid(buf, type, mid);
    if (store) {
        struct meshsim_dd_ent *e =
            meshsim__dedup_find(&sim->dedup, d->idx, secure, ep, req_mid, now_ms(sim));
        if (e && meshsim__dedup_store(e, buf, len) != 0)
            warn_limited(sim, "dedup store", -ENOMEM);
    }
    if (reliable && d->cfg.type != GW_DEV_MILLI) {
        struct meshsim_rtx rtx = rtx_first(sim);
        (void)txn_start(d, secure, ep, mid, buf, len, 0, &rtx);
    }
    dev_send(d, secure, ep, buf, len, true);
}

/* emit() now, or after latency ms. */
static void emit_after(struct meshsim_dev *d, uint32_t latency, uint8_t secure,
                       const struct gw_ep *ep, uint8_t type, uint16_t req_mid, bool store,
                       bool reliable, uint8_t *buf, size_t len)
{
    struct meshsim *sim = d->sim;
    if (latency == 0) {
        emit(d, secure, ep, type, req_mid, store, reliable, buf, len);
        return;
    }
    struct meshsim_out *o = malloc(sizeof(*o) + len);
    if (!o) {
        warn_limited(sim, "out", -ENOMEM);
        return;
    }
    *o = (struct meshsim_out){ .dev = d,
                               .ep = *ep,
                               .req_mid = req_mid,
                               .secure = secure,
                               .type = type,
                               .store = store,
                               .reliable = reliable,
                               .len = (uint16_t)len };
    memcpy(o->buf, buf, len);
    schedule(sim, now_ms(sim) + latency, EV_SEND, o);
}

/* ---- requests ---------------------------------------------------------- */

static int respond(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep,
                   const struct gw_coap_msg *m, uint8_t *out, size_t cap, size_t *len, bool *sup)
{
    int rc = meshsim__dev_respond(d, &d->sim->cfg, secure, ep, m, out, cap, len, sup);
    if (rc) {
        *sup = false;
        struct gw_cb b;
        gw_cb_init(&b, out, cap, GW_COAP_ACK, GW_COAP_INTERNAL, 0, m->token, m->tkl);
        gw_cb_payload(&b, "response too large", 18);
        rc = gw_cb_finish(&b, len);
    }
    return rc;
}

static void normal_accept(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep,
                          const struct gw_coap_msg *m, struct meshsim_dd_ent *dd)
{
    struct meshsim *sim = d->sim;
    uint8_t out[GW_COAP_MAX_MSG];
    size_t n;
    bool sup, con = m->type == GW_COAP_CON;
    uint32_t lat = draw_latency(sim, d);
    if (respond(d, secure, ep, m, out, sizeof(out), &n, &sup) != 0)
        return;
    if (sup) { /* RFC 7967: an empty ACK for CON, nothing for NON */
        if (con)
            send_empty(d, secure, ep, GW_COAP_ACK, m->mid, dd);
        else if (meshsim__dedup_store(dd, NULL, 0) != 0)
            warn_limited(sim, "dedup store", -ENOMEM);
        return;
    }
    if (con && (d->beh.separate || lat > MESHSIM_SEPARATE_AFTER_MS)) {
        /* RFC 7252 5.2.2: ACK now, the response later in its own CON. */
        send_empty(d, secure, ep, GW_COAP_ACK, m->mid, dd);
        emit_after(d, lat, secure, ep, GW_COAP_CON, m->mid, false, true, out, n);
        return;
    }
    emit_after(d, lat, secure, ep, con ? GW_COAP_ACK : GW_COAP_NON, m->mid, true, false, out, n);
}

static void milli_start(struct meshsim_dev *d)
{
    struct meshsim *sim = d->sim;
    struct meshsim_qreq *q = d->qhead;
    if (!q || d->busy)
        return;
    d->qhead = q->next;
    if (!d->qhead)
        d->qtail = NULL;
    d->qlen--;
    d->cur = q;
    d->busy = true;
    schedule(sim, now_ms(sim) + milli_delay(d) + q->latency, EV_MILLI, d);
}

static void milli_accept(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep,
                         const struct gw_coap_msg *m, const uint8_t *raw, size_t rawlen,
                         struct meshsim_dd_ent *dd)
{
    struct meshsim *sim = d->sim;
    bool con = m->type == GW_COAP_CON;
    if (d->qlen >= MESHSIM_MILLI_QUEUE_MAX) {
        uint8_t out[64];
        size_t n;
        d->c.refused++;
        struct gw_cb b;
        gw_cb_init(&b, out, sizeof(out), con ? GW_COAP_ACK : GW_COAP_NON, GW_COAP_UNAVAILABLE,
                   con ? m->mid : d->next_mid++, m->token, m->tkl);
        gw_cb_payload(&b, "device queue full", 17);
        if (gw_cb_finish(&b, &n) == 0) {
            if (meshsim__dedup_store(dd, out, n) != 0)
                warn_limited(sim, "dedup store", -ENOMEM);
            dev_send(d, secure, ep, out, n, true);
        }
        return;
    }
    uint32_t lat = draw_latency(sim, d);
    bool busy = d->busy || d->qhead;
    if (busy)
        d->c.queued++;
    bool ack_now =
        con && (d->beh.separate || busy || milli_delay(d) + lat > MESHSIM_SEPARATE_AFTER_MS);
    struct meshsim_qreq *q = malloc(sizeof(*q) + rawlen);
    if (!q) {
        warn_limited(sim, "milli queue", -ENOMEM);
        return;
    }
    if (ack_now)
        send_empty(d, secure, ep, GW_COAP_ACK, m->mid, dd);
    q->next = NULL;
    q->ep = *ep;
    q->secure = secure;
    q->acked = ack_now;
    q->latency = lat;
    q->len = (uint16_t)rawlen;
    memcpy(q->buf, raw, rawlen);
    if (d->qtail)
        d->qtail->next = q;
    else
        d->qhead = q;
    d->qtail = q;
    d->qlen++;
    milli_start(d);
}

static void milli_done(struct meshsim_dev *d)
{
    struct meshsim *sim = d->sim;
    struct meshsim_qreq *q = d->cur;
    d->cur = NULL;
    d->busy = false;
    if (q) {
        struct gw_coap_msg m;
        uint8_t out[GW_COAP_MAX_MSG];
        size_t n;
        bool sup;
        if (gw_coap_parse(sim->parser, q->buf, q->len, &m) == 0 &&
            respond(d, q->secure, &q->ep, &m, out, sizeof(out), &n, &sup) == 0) {
            bool con = m.type == GW_COAP_CON;
            if (sup) {
                if (con && !q->acked) {
                    struct meshsim_dd_ent *e = meshsim__dedup_find(&sim->dedup, d->idx, q->secure,
                                                                   &q->ep, m.mid, now_ms(sim));
                    send_empty(d, q->secure, &q->ep, GW_COAP_ACK, m.mid, e);
                }
            } else if (con && !q->acked) {
                emit(d, q->secure, &q->ep, GW_COAP_ACK, m.mid, true, false, out, n);
            } else if (con) {
                /* A Milli never retransmits, its separate response included. */
                emit(d, q->secure, &q->ep, GW_COAP_CON, m.mid, false, false, out, n);
            } else {
                emit(d, q->secure, &q->ep, GW_COAP_NON, m.mid, true, false, out, n);
            }
        }
        free(q);
    }
    milli_start(d);
}

static void on_ack_or_rst(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep,
                          uint8_t type, uint16_t mid)
{
    for (struct gw_dnode *n = d->txns.head; n; n = n->next) {
        struct meshsim_txn *t = GW_DLIST_ITEM(n, struct meshsim_txn, node);
        if (t->mid != mid || t->secure != secure || !gw_ep_eq(&t->ep, ep))
            continue;
        uint32_t oid = t->obs_id;
        meshsim__txn_cancel(t);
        if (type == GW_COAP_RST && oid) {
            /* RFC 7641 3.6: RST to a notification ends the observation. */
            for (unsigned i = 0; i < d->nobs; i++) {
                if (d->obs[i].id == oid) {
                    meshsim__obs_remove(d, i);
                    d->c.obs_rst++;
                    break;
                }
            }
        }
        return;
    }
    if (type != GW_COAP_RST)
        return;
    for (unsigned i = 0; i < d->nobs; i++) {
        const struct meshsim_observer *o = &d->obs[i];
        if (o->last_mid == mid && o->secure == secure && gw_ep_eq(&o->ep, ep)) {
            meshsim__obs_remove(d, i);
            d->c.obs_rst++;
            return;
        }
    }
}

/* One CoAP message (plaintext) arrived at device d. */
static void dev_input(struct meshsim_dev *d, uint8_t secure, const struct gw_ep *ep,
                      const uint8_t *msg, size_t len)
{
    struct meshsim *sim = d->sim;
    uint8_t ver, type;
    uint16_t mid;
    if (!gw_coap_peek(msg, len, &ver, &type, &mid) || ver != 1) {
        d->c.bad++; /* RFC 7252 3: silently ignored */
        return;
    }
    struct gw_coap_msg m;
    if (gw_coap_parse(sim->parser, msg, len, &m) != 0) {
        /* RFC 7252 4.2/4.3: reject a malformed CON with RST, drop the rest. */
        d->c.bad++;
        if (type == GW_COAP_CON)
            send_empty(d, secure, ep, GW_COAP_RST, mid, NULL);
        return;
    }
    if (m.code == GW_COAP_EMPTY) {
        if (m.type == GW_COAP_CON) { /* ping (RFC 7252 4.3) */
            d->c.pings++;
            send_empty(d, secure, ep, GW_COAP_RST, m.mid, NULL);
        } else if (m.type == GW_COAP_ACK || m.type == GW_COAP_RST) {
            on_ack_or_rst(d, secure, ep, m.type, m.mid);
        } else {
            d->c.bad++;
        }
        return;
    }
    if (m.code >> 5 != 0 || m.type == GW_COAP_ACK || m.type == GW_COAP_RST) {
        /* A response: this device sends no requests, so none is expected. */
        d->c.bad++;
        if (m.type == GW_COAP_CON)
            send_empty(d, secure, ep, GW_COAP_RST, m.mid, NULL);
        return;
    }
    if (meshsim__is_sim_path(&m) && m.code == GW_COAP_POST && secure == 0) {
        /* POST /_sim/replay (plain port): re-send the last sealed frame the
         * device sent, byte for byte, as an attacker replaying a capture
         * would; the gateway must drop and count it (S7.1). */
        unsigned nseg = 0;
        bool replay = false;
        for (unsigned i = 0; i < m.nopts; i++)
            if (m.opts[i].num == GW_OPT_URI_PATH) {
                nseg++;
                if (nseg == 2 && m.opts[i].len == 6 && memcmp(m.opts[i].val, "replay", 6) == 0)
                    replay = true;
            }
        if (replay && nseg == 2) {
            uint8_t out[64];
            struct gw_cb b;
            gw_cb_init(&b, out, sizeof(out), m.type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON,
                       d->last_len ? GW_COAP_CHANGED : GW_COAP_NOT_FOUND,
                       m.type == GW_COAP_CON ? m.mid : d->next_mid++, m.token, m.tkl);
            size_t n;
            if (d->last_len) {
                struct sockaddr_storage ss;
                gw_ep_to_sa(&d->last_dst, &ss);
                uv_buf_t rb = uv_buf_init((char *)d->last_frame, (unsigned)d->last_len);
                (void)uv_udp_try_send(&d->sock[1].h, &rb, 1, (const struct sockaddr *)&ss);
            }
            if (gw_cb_finish(&b, &n) == 0)
                dev_send(d, secure, ep, out, n, false);
            return;
        }
    }
    if (meshsim__is_sim_path(&m)) {
        /* Test hooks: answered at once, never lost, counted or stored. */
        uint8_t out[GW_COAP_MAX_MSG];
        size_t n;
        if (meshsim__dev_sim(d, &m, out, sizeof(out), &n) == 0) {
            bool con = m.type == GW_COAP_CON;
            meshsim__set_type_mid(out, con ? GW_COAP_ACK : GW_COAP_NON,
                                  con ? m.mid : d->next_mid++);
            dev_send(d, secure, ep, out, n, false);
        }
        return;
    }
    if (is_lost(sim, d)) {
        d->c.lost++;
        return;
    }
    uint64_t now = now_ms(sim);
    struct meshsim_dd_ent *dd = meshsim__dedup_find(&sim->dedup, d->idx, secure, ep, m.mid, now);
    if (dd) {
        if (dd->tx < UINT16_MAX)
            dd->tx++;
        if (dd->state != DD_DROPPED) {
            /* RFC 7252 4.5: the same answer again, never a second processing. */
            d->c.duplicates++;
            if (dd->state == DD_DONE && dd->len)
                dev_send(d, secure, ep, dd->resp, dd->len, true);
            return;
        }
        if (dd->tx <= d->beh.drop_first) {
            d->c.dropped++;
            return;
        }
    } else {
        dd = meshsim__dedup_add(&sim->dedup, d->idx, secure, ep, m.mid, now);
        dd->tx = 1;
        if (d->beh.drop_first) {
            dd->state = DD_DROPPED;
            d->c.dropped++;
            return;
        }
    }
    dd->state = DD_PROCESSING;
    meshsim__count_request(d, &m);
    if (m.type == GW_COAP_CON)
        d->c.con++;
    else
        d->c.non++;
    bool con = m.type == GW_COAP_CON;
    if (d->beh.silent) {
        if (meshsim__dedup_store(dd, NULL, 0) != 0)
            warn_limited(sim, "dedup store", -ENOMEM);
        return;
    }
    if (d->beh.rst) {
        send_empty(d, secure, ep, GW_COAP_RST, m.mid, dd);
        return;
    }
    if (d->beh.ackonly) {
        if (con)
            send_empty(d, secure, ep, GW_COAP_ACK, m.mid, dd);
        else if (meshsim__dedup_store(dd, NULL, 0) != 0)
            warn_limited(sim, "dedup store", -ENOMEM);
        return;
    }
    if (d->cfg.type == GW_DEV_MILLI)
        milli_accept(d, secure, ep, &m, msg, len, dd);
    else
        normal_accept(d, secure, ep, &m, dd);
}

/* ---- observe ----------------------------------------------------------- */

static void sensor_tick(struct meshsim_dev *d)
{
    struct meshsim *sim = d->sim;
    meshsim__dev_sensor_tick(d);
    for (unsigned i = 0; i < d->nobs; i++) {
        struct meshsim_observer *o = &d->obs[i];
        uint8_t out[GW_COAP_MAX_MSG];
        size_t n;
        if (meshsim__dev_notification(d, &sim->cfg, o, out, sizeof(out), &n) != 0)
            continue;
        bool con = d->beh.con_notify;
        uint16_t mid = d->next_mid++;
        meshsim__set_type_mid(out, con ? GW_COAP_CON : GW_COAP_NON, mid);
        o->last_mid = mid;
        d->c.notifications++;
        if (con && d->cfg.type != GW_DEV_MILLI) {
            /* RFC 7641 4.5.2: a newer state replaces the one in flight and
             * inherits its retransmission counter, timeout and deadline, so
             * an observer that never ACKs is dropped even when notifications
             * come faster than the timeout. */
            struct meshsim_rtx rtx = o->txn ? o->txn->rtx : rtx_first(sim);
            if (o->txn)
                meshsim__txn_cancel(o->txn);
            o->txn = txn_start(d, o->secure, &o->ep, mid, out, n, o->id, &rtx);
        }
        dev_send(d, o->secure, &o->ep, out, n, true);
    }
    schedule(sim, now_ms(sim) + obs_period(d), EV_TICK, d);
}

static void txn_fire(struct meshsim_txn *t)
{
    if (t->cancelled) {
        free(t);
        return;
    }
    struct meshsim_dev *d = t->dev;
    struct meshsim *sim = d->sim;
    if (t->rtx.retries_left == 0) {
        uint32_t oid = t->obs_id;
        meshsim__txn_cancel(t);
        free(t);
        for (unsigned i = 0; oid && i < d->nobs; i++) {
            if (d->obs[i].id == oid) {
                /* RFC 7641 4.5: an unacknowledged CON notification ends it. */
                meshsim__obs_remove(d, i);
                d->c.obs_timeout++;
                break;
            }
        }
        return;
    }
    t->rtx.retries_left--;
    t->rtx.timeout_ms *= 2;
    d->c.retransmissions++;
    dev_send(d, t->secure, &t->ep, t->buf, t->len, true);
    t->rtx.due_ms = now_ms(sim) + t->rtx.timeout_ms;
    if (gw_heap_push_ptr(&sim->heap, t->rtx.due_ms, EV_TXN, t) != 0) {
        warn_limited(sim, "event heap", -ENOMEM);
        meshsim__txn_cancel(t);
        free(t);
    }
}

/* ---- events and the loop ---------------------------------------------- */

static void on_timer(uv_timer_t *h);

static void arm(struct meshsim *sim)
{
    uint64_t next = gw_heap_next(&sim->heap);
    if (next == sim->armed_due)
        return;
    if (next == UINT64_MAX) {
        uv_timer_stop(&sim->timer);
        sim->armed_due = UINT64_MAX;
        return;
    }
    uint64_t now = now_ms(sim);
    uv_timer_start(&sim->timer, on_timer, next > now ? next - now : 0, 0);
    sim->armed_due = next;
}

static void schedule(struct meshsim *sim, uint64_t due, uint8_t kind, void *p)
{
    if (gw_heap_push_ptr(&sim->heap, due, kind, p) == 0)
        return;
    warn_limited(sim, "event heap", -ENOMEM);
    if (kind == EV_SEND)
        free(p);
}

static void dispatch(struct gw_heap_item *ev)
{
    switch (ev->id) {
    case EV_SEND: {
        struct meshsim_out *o = ev->p;
        emit(o->dev, o->secure, &o->ep, o->type, o->req_mid, o->store, o->reliable, o->buf, o->len);
        free(o);
        break;
    }
    case EV_MILLI:
        milli_done(ev->p);
        break;
    case EV_TXN:
        txn_fire(ev->p);
        break;
    case EV_TICK:
        sensor_tick(ev->p);
        break;
    default:
        break;
    }
}

static void on_timer(uv_timer_t *h)
{
    struct meshsim *sim = h->data;
    sim->armed_due = UINT64_MAX;
    uint64_t now = now_ms(sim);
    struct gw_heap_item ev;
    while (gw_heap_pop_due(&sim->heap, now, &ev))
        dispatch(&ev);
    arm(sim);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* One buffer for all sockets: libuv hands each datagram to on_recv
     * before it asks for the next buffer. */
    struct meshsim_sock *s = h->data;
    struct meshsim *sim = s->dev->sim;
    *buf = uv_buf_init((char *)sim->rxbuf, sizeof(sim->rxbuf));
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct meshsim_sock *s = h->data;
    struct meshsim_dev *d = s->dev;
    struct meshsim *sim = d->sim;
    if (nread < 0) {
        warn_limited(sim, "udp recv", (int)nread);
        return;
    }
    if (nread == 0 || !addr)
        return;
    struct gw_ep ep;
    if ((flags & UV_UDP_PARTIAL) || gw_ep_from_sa(&ep, addr) != 0) {
        d->c.bad++;
        return;
    }
    const uint8_t *msg = (const uint8_t *)buf->base;
    size_t len = (size_t)nread;
    if (s->secure) {
        size_t ptlen;
        uint64_t seq;
        int rc = mesh_open(d->cfg.key, d->cfg.mac, MESH_DIR_TO_DEVICE, msg, len, sim->pt,
                           sizeof(sim->pt), &ptlen, &seq);
        if (rc) {
            if (rc == GW_EAUTH)
                d->c.auth_failures++;
            else
                d->c.bad++;
            return;
        }
        /* Every gateway sequence number ever seen, also those the replay
         * window drops: a repeat means the gateway reused a nonce. */
        if (meshsim__seen_add(&d->seen, seq, MESHSIM_SEEN_MAX))
            d->c.nonce_reuse++;
        if (mesh_replay_check(&d->replay, seq) != 0) {
            d->c.replays++;
            return;
        }
        mesh_replay_update(&d->replay, seq);
        d->c.secure++;
        msg = sim->pt;
        len = ptlen;
    }
    dev_input(d, s->secure, &ep, msg, len);
    arm(sim);
}

/* ---- setup and teardown ------------------------------------------------ */

/* SO_REUSEPORT (below) would let two simulators bind the same address and
 * port and silently share its datagrams. So each simulator first claims
 * "coapgw-meshsim/<address:port>" in the abstract unix socket namespace: the
 * kernel refuses a second claim with EADDRINUSE and drops it when the
 * process ends, however it ends. */
static int sock_claim(const struct gw_ep *ep, int *out)
{
    struct sockaddr_un un = { .sun_family = AF_UNIX };
    char es[GW_EP_STRLEN];
    int n = snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "coapgw-meshsim/%s",
                     gw_ep_str(ep, es, sizeof(es)));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&un,
             (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *out = fd;
    return 0;
}

static int sock_open(struct meshsim *sim, struct meshsim_dev *d, uint8_t secure)
{
    struct gw_ep ep = { 0 };
    ep.family = d->cfg.family;
    ep.port = secure ? d->cfg.secure_port : d->cfg.plain_port;
    memcpy(ep.addr, d->cfg.addr, sizeof(ep.addr));
    int rc = sock_claim(&ep, &d->lockfd[secure]);
    if (rc)
        return rc == -EADDRINUSE ? GW_EBUSY : rc;
    /* SO_REUSEPORT lets a gateway bound to the wildcard address on the same
     * port coexist (meshsim.h); the most specific bind gets the datagrams. */
    int fd = gw_udp_bind_shared(&ep, GW_UDP_V6ONLY, 0);
    if (fd < 0)
        return fd;
    struct meshsim_sock *s = &d->sock[secure];
    s->dev = d;
    s->secure = secure;
    rc = uv_udp_init(&sim->loop, &s->h);
    if (rc) {
        close(fd);
        return rc;
    }
    s->h.data = s;
    s->open = 1;
    rc = uv_udp_open(&s->h, fd);
    if (rc) {
        close(fd);
        return rc;
    }
    return uv_udp_recv_start(&s->h, on_alloc, on_recv);
}

static void totals(const struct meshsim *sim, struct meshsim_counters *sum, unsigned *observers)
{
    memset(sum, 0, sizeof(*sum));
    *observers = 0;
    for (uint32_t i = 0; i < sim->ndev; i++) {
        meshsim__counters_add(sum, &sim->devs[i].c);
        *observers += sim->devs[i].nobs;
    }
}

static int totals_line(const struct meshsim *sim, char *buf, size_t cap)
{
    struct meshsim_counters t;
    unsigned nobs;
    totals(sim, &t, &nobs);
    return snprintf(buf, cap,
                    "totals: devices=%" PRIu32 " requests=%" PRIu64 " con=%" PRIu64 " non=%" PRIu64
                    " duplicates=%" PRIu64 " observers=%u notifications=%" PRIu64
                    " retransmissions=%" PRIu64 " secure=%" PRIu64 " auth_failures=%" PRIu64
                    " replays=%" PRIu64 " nonce_reuse=%" PRIu64 " lost=%" PRIu64 " dropped=%" PRIu64
                    " queued=%" PRIu64 " bad=%" PRIu64 " send_errors=%" PRIu64,
                    sim->ndev, t.requests, t.con, t.non, t.duplicates, nobs, t.notifications,
                    t.retransmissions, t.secure, t.auth_failures, t.replays, t.nonce_reuse, t.lost,
                    t.dropped, t.queued, t.bad, sim->send_errors);
}

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

static void close_walk(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, close_cb);
}

static void on_signal(uv_signal_t *h, int signum)
{
    struct meshsim *sim = h->data;
    if (signum == SIGUSR1) {
        /* Asked for explicitly, so printed even with --quiet. */
        char line[600];
        int n = totals_line(sim, line, sizeof(line) - 1);
        if (n > 0) {
            n = GW_MIN(n, (int)sizeof(line) - 2);
            line[n++] = '\n';
            ssize_t w GW_UNUSED = write(STDERR_FILENO, line, (size_t)n);
        }
        return;
    }
    gw_log_info(GW_LOG_SYS, "signal %d: stopping", signum);
    uv_walk(&sim->loop, close_walk, NULL);
}

static void free_event(struct gw_heap_item *ev)
{
    if (ev->id == EV_SEND || ev->id == EV_TXN)
        free(ev->p);
}

static void sim_free(struct meshsim *sim)
{
    if (sim->loop_ok) {
        uv_walk(&sim->loop, close_walk, NULL);
        uv_run(&sim->loop, UV_RUN_DEFAULT);
        int rc = uv_loop_close(&sim->loop);
        if (rc)
            gw_log_warn(GW_LOG_SYS, "uv_loop_close: %s", uv_strerror(rc));
    }
    for (uint32_t i = 0; i < sim->heap.n; i++)
        free_event(&sim->heap.v[i]);
    gw_heap_deinit(&sim->heap);
    for (uint32_t i = 0; i < sim->ndev; i++) {
        struct meshsim_dev *d = &sim->devs[i];
        free(d->cur);
        while (d->qhead) {
            struct meshsim_qreq *q = d->qhead;
            d->qhead = q->next;
            free(q);
        }
        free(d->obs);
        meshsim__seen_free(&d->seen);
        for (int k = 0; k < 2; k++)
            if (d->lockfd[k] >= 0)
                close(d->lockfd[k]);
    }
    free(sim->devs);
    meshsim__dedup_free(&sim->dedup);
    gw_coap_parser_free(sim->parser);
    mesh_crypto_thread_cleanup();
    free(sim);
}

/* ---- options ----------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: coapgw meshsim --devices FILE [options]\n"
        "       coapgw meshsim --generate N [--base ADDR] --out FILE [--generate-only] [options]\n"
        "Simulates mesh devices on loopback, each with a plain CoAP port and a secured port,\n"
        "so that the gateway runs and is tested with no hardware (`coapgw run` starts it\n"
        "itself when no devices_file is configured).\n"
        "\n"
        "  -d, --devices FILE      devices file (mac,address,type,key[,plain_port,secure_port[,sim]]);\n"
        "                          bad lines are reported with their number and skipped\n"
        "  -g, --generate N        write N devices to --out (consecutive addresses from --base,\n"
        "                          default 127.0.10.1) and simulate them; --generate-only exits\n"
        "      --latency MIN-MAX   per-request delay in ms, uniform (default 1-5)\n"
        "      --loss PCT          each datagram, in and out, is lost with PCT %% (default 0)\n"
        "      --milli-delay MS    service time of one Milli request (default 300)\n"
        "      --obs-period-ms MS  /sensor changes this often (default 5000)\n"
        "      --obs-max-age S     Max-Age of /sensor answers and notifications (default 10)\n"
        "      --ready-file PATH   written with \"ready\" once every socket is bound\n"
        "      --seed N            seeds the random numbers (default: random)\n"
        "      --log-level LEVEL   error, warn, info, debug; -q, --quiet: warnings and errors only\n"
        "  -h, --help              this text\n"
        "\n"
        "The devices file's optional `sim` column changes one device, ';'-separated:\n"
        "  latency=MIN-MAX (or MS), loss=PCT, silent (never answers), rst (answers RST),\n"
        "  ackonly (empty ACK, never the response), separate (empty ACK, then a CON response),\n"
        "  drop_first=N (ignores the first N transmissions of each new MID), con_notify (CON\n"
        "  notifications), nolarge (no /large), milli_delay=MS, obs_period=MS, max_age=S.\n"
        "Resources: /value, /sensor (observable), /large, /echo, /_sim/counters.\n");
}

struct opts {
    const char *devices, *base, *out, *ready;
    long generate;
    bool generate_only, quiet;
    int level;
    uint64_t seed;
    bool seeded;
};

static int parse_uint_opt(const char *name, const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v > max || *s == '-') {
        fprintf(stderr, "meshsim: bad value '%s' for --%s\n", s, name);
        return GW_ECONFIG;
    }
    *out = v;
    return 0;
}

/* parse_uint_opt for a uint32_t setting (max at most UINT32_MAX). */
static int parse_u32_opt(const char *name, const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v;
    int rc = parse_uint_opt(name, s, max, &v);
    if (rc == 0)
        *out = (uint32_t)v;
    return rc;
}

static int parse_opts(int argc, char **argv, struct opts *o, struct meshsim_cfg *cfg)
{
    static const struct option lo[] = {
        { "devices", required_argument, 0, 'd' },
        { "generate", required_argument, 0, 'g' },
        { "base", required_argument, 0, 'b' },
        { "out", required_argument, 0, 'o' },
        { "generate-only", no_argument, 0, 'G' },
        { "latency", required_argument, 0, 'l' },
        { "loss", required_argument, 0, 'L' },
        { "milli-delay", required_argument, 0, 'm' },
        { "obs-period-ms", required_argument, 0, 'p' },
        { "obs-max-age", required_argument, 0, 'a' },
        { "ready-file", required_argument, 0, 'r' },
        { "seed", required_argument, 0, 's' },
        { "log-level", required_argument, 0, 'v' },
        { "quiet", no_argument, 0, 'q' },
        { "help", no_argument, 0, 'h' },
        { 0, 0, 0, 0 },
    };
    uint64_t v;
    optind = 0; /* glibc: full re-initialisation, meshsim_main may not be the first getopt user */
    opterr = 1;
    for (;;) {
        int c = getopt_long(argc, argv, "d:g:b:o:qh", lo, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'd':
            o->devices = optarg;
            break;
        case 'b':
            o->base = optarg;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'r':
            o->ready = optarg;
            break;
        case 'G':
            o->generate_only = true;
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'g':
            if (parse_uint_opt("generate", optarg, GW_DEVFILE_GEN_MAX, &v))
                return GW_ECONFIG;
            o->generate = (long)v;
            break;
        case 'l':
            if (meshsim__parse_range(optarg, &cfg->lat_min, &cfg->lat_max) != 0) {
                fprintf(stderr, "meshsim: bad --latency '%s' (need MIN-MAX in ms)\n", optarg);
                return GW_ECONFIG;
            }
            break;
        case 'L': {
            char *end;
            double p = strtod(optarg, &end);
            if (!*optarg || *end || !(p >= 0 && p <= 100)) {
                fprintf(stderr, "meshsim: bad --loss '%s' (need 0..100)\n", optarg);
                return GW_ECONFIG;
            }
            cfg->loss = p;
            break;
        }
        case 'm':
            if (parse_u32_opt("milli-delay", optarg, 3600000, &cfg->milli_delay))
                return GW_ECONFIG;
            break;
        case 'p':
            if (parse_uint_opt("obs-period-ms", optarg, 3600000, &v) || v < 10) {
                fprintf(stderr, "meshsim: --obs-period-ms needs 10..3600000\n");
                return GW_ECONFIG;
            }
            cfg->obs_period = (uint32_t)v;
            break;
        case 'a':
            if (parse_u32_opt("obs-max-age", optarg, UINT32_MAX, &cfg->obs_max_age))
                return GW_ECONFIG;
            break;
        case 's':
            if (parse_uint_opt("seed", optarg, UINT64_MAX, &o->seed))
                return GW_ECONFIG;
            o->seeded = true;
            break;
        case 'v':
            o->level = gw_log_level_parse(optarg);
            if (o->level < 0) {
                fprintf(stderr, "meshsim: bad --log-level '%s'\n", optarg);
                return GW_ECONFIG;
            }
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            usage(stderr);
            return GW_ECONFIG;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "meshsim: unexpected argument '%s'\n", argv[optind]);
        return GW_ECONFIG;
    }
    if (!!o->devices == !!o->generate) {
        fprintf(stderr, "meshsim: give either --devices FILE or --generate N --out FILE\n");
        usage(stderr);
        return GW_ECONFIG;
    }
    if (o->generate && !o->out) {
        fprintf(stderr, "meshsim: --generate needs --out FILE\n");
        return GW_ECONFIG;
    }
    if ((o->out || o->generate_only) && !o->generate) {
        fprintf(stderr, "meshsim: --out and --generate-only go with --generate\n");
        return GW_ECONFIG;
    }
    return 0;
}

/* ---- loading ----------------------------------------------------------- */

struct load_ctx {
    struct gw_devlist l;
    const char *path;
};

static int load_dev_cb(void *ctx, const struct gw_device *d)
{
    return gw_devlist_add(&((struct load_ctx *)ctx)->l, d);
}

static void load_warn_cb(void *ctx, int lineno, const char *msg)
{
    gw_log_warn(GW_LOG_SYS, "%s:%d: %s", ((struct load_ctx *)ctx)->path, lineno, msg);
}

static int raise_nofile(uint32_t ndev)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)ndev * 4 + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (rl.rlim_cur >= need)
        return 0;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= need ? need : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    return rl.rlim_cur >= need ? 0 : -EMFILE;
}

static int write_ready(const char *path)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp))
        return -ENAMETOOLONG;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    int ok = fputs("ready\n", f) >= 0;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int e = errno ? -errno : -EIO;
        unlink(tmp);
        return e;
    }
    return 0;
}

/* ---- main -------------------------------------------------------------- */

int meshsim_main(int argc, char **argv)
{
    struct meshsim_cfg cfg = { .lat_min = 1,
                               .lat_max = 5,
                               .loss = 0,
                               .milli_delay = 300,
                               .obs_period = 5000,
                               .obs_max_age = 10 };
    struct opts o = { .base = "127.0.10.1", .level = -1 };
    int rc = parse_opts(argc, argv, &o, &cfg);
    if (rc == 1)
        return 0;
    if (rc)
        return GW_EXIT_FATAL;
    gw_log_init("meshsim", -1, o.quiet ? GW_LOG_WARN : o.level >= 0 ? o.level : GW_LOG_INFO);
    signal(SIGPIPE, SIG_IGN);

    const char *path = o.devices;
    if (o.generate) {
        char err[256];
        rc = gw_devfile_generate(o.out, (int)o.generate, o.base, err, sizeof(err));
        if (rc) {
            gw_log_err(GW_LOG_SYS, "generate: %s", err);
            return GW_EXIT_FATAL;
        }
        gw_log_info(GW_LOG_SYS, "wrote %ld devices from %s to %s", o.generate, o.base, o.out);
        if (o.generate_only)
            return 0;
        path = o.out;
    }

    struct load_ctx lc = { .path = path };
    rc = gw_devfile_load(path, load_dev_cb, load_warn_cb, &lc);
    if (rc < 0) {
        gw_log_err(GW_LOG_SYS, "devices file %s: %s", path, gw_strerror(lc.l.err ? lc.l.err : rc));
        gw_devlist_free(&lc.l);
        return GW_EXIT_FATAL;
    }
    if (lc.l.n == 0) {
        gw_log_err(GW_LOG_SYS, "devices file %s: no devices", path);
        gw_devlist_free(&lc.l);
        return GW_EXIT_FATAL;
    }

    struct meshsim *sim = calloc(1, sizeof(*sim));
    if (!sim) {
        gw_devlist_free(&lc.l);
        return 1;
    }
    int status = GW_EXIT_FATAL;
    sim->cfg = cfg;
    sim->armed_due = UINT64_MAX;
    if (o.seeded)
        gw_rand_seed(&sim->rng, o.seed);
    else
        gw_rand_seed_random(&sim->rng);
    if ((rc = uv_loop_init(&sim->loop)) != 0) {
        gw_log_err(GW_LOG_SYS, "uv_loop_init: %s", uv_strerror(rc));
        goto out;
    }
    sim->loop_ok = true;
    if ((rc = gw_coap_parser_new(&sim->parser)) != 0 ||
        (rc = meshsim__dedup_init(&sim->dedup, MESHSIM_DEDUP_CAP)) != 0 ||
        (rc = gw_heap_init_growing(&sim->heap, 256, 1u << 30)) != 0) {
        gw_log_err(GW_LOG_SYS, "setup: %s", gw_strerror(rc));
        goto out;
    }
    if ((rc = raise_nofile(lc.l.n)) != 0) {
        gw_log_err(GW_LOG_SYS, "%u devices need %u file descriptors: setrlimit: %s", lc.l.n,
                   lc.l.n * 4 + 64, gw_strerror(rc));
        goto out;
    }
    sim->devs = calloc(lc.l.n, sizeof(*sim->devs));
    if (!sim->devs) {
        gw_log_err(GW_LOG_SYS, "out of memory for %u devices", lc.l.n);
        goto out;
    }
    uint64_t wms = wall_ms();
    unsigned nmilli = 0;
    for (uint32_t i = 0; i < lc.l.n; i++) {
        struct meshsim_dev *d = &sim->devs[i];
        const struct gw_device *g = &lc.l.v[i];
        char mac[17], why[128];
        gw_mac_str(g->mac, mac);
        d->sim = sim;
        d->idx = i;
        d->lockfd[0] = d->lockfd[1] = -1;
        meshsim__dev_init(d, g, wms);
        d->next_mid = (uint16_t)rnd(sim);
        d->beh.lat_min = cfg.lat_min;
        d->beh.lat_max = cfg.lat_max;
        d->beh.loss = cfg.loss;
        d->beh.milli_delay = -1;
        d->beh.obs_period = -1;
        d->beh.max_age = -1;
        sim->ndev = i + 1;
        if (meshsim__behave_parse(g->sim, &d->beh, why, sizeof(why)) != 0) {
            gw_log_err(GW_LOG_SYS, "%s: device %s: sim column '%s': %s", path, mac, g->sim, why);
            goto out;
        }
        nmilli += g->type == GW_DEV_MILLI;
        for (uint8_t sec = 0; sec < 2; sec++) {
            rc = sock_open(sim, d, sec);
            if (rc) {
                struct gw_ep ep = { .family = g->family,
                                    .port = sec ? g->secure_port : g->plain_port };
                char es[GW_EP_STRLEN];
                memcpy(ep.addr, g->addr, sizeof(ep.addr));
                gw_log_err(GW_LOG_SYS, "device %s: bind %s: %s", mac,
                           gw_ep_str(&ep, es, sizeof(es)),
                           rc == GW_EBUSY
                               ? "already simulated by another meshsim (another gateway's embedded "
                                 "simulator? give each instance its own meshsim_base, e.g. "
                                 "meshsim_base = 127.0.11.1, or stop the other one)"
                               : gw_strerror(rc));
                goto out;
            }
        }
    }
    if ((rc = uv_timer_init(&sim->loop, &sim->timer)) != 0 ||
        (rc = uv_signal_init(&sim->loop, &sim->sig_term)) != 0 ||
        (rc = uv_signal_init(&sim->loop, &sim->sig_int)) != 0 ||
        (rc = uv_signal_init(&sim->loop, &sim->sig_usr1)) != 0) {
        gw_log_err(GW_LOG_SYS, "libuv setup: %s", uv_strerror(rc));
        goto out;
    }
    sim->timer.data = sim;
    sim->sig_term.data = sim->sig_int.data = sim->sig_usr1.data = sim;
    if ((rc = uv_signal_start(&sim->sig_term, on_signal, SIGTERM)) != 0 ||
        (rc = uv_signal_start(&sim->sig_int, on_signal, SIGINT)) != 0 ||
        (rc = uv_signal_start(&sim->sig_usr1, on_signal, SIGUSR1)) != 0) {
        gw_log_err(GW_LOG_SYS, "uv_signal_start: %s", uv_strerror(rc));
        goto out;
    }
    /* Sensors change at a random phase per device, so notifications of many
     * devices do not all leave in the same millisecond. */
    uint64_t now = now_ms(sim);
    for (uint32_t i = 0; i < sim->ndev; i++)
        schedule(sim, now + 1 + rnd(sim) % obs_period(&sim->devs[i]), EV_TICK, &sim->devs[i]);
    arm(sim);
    if (o.ready && (rc = write_ready(o.ready)) != 0) {
        gw_log_err(GW_LOG_SYS, "ready file %s: %s", o.ready, gw_strerror(rc));
        goto out;
    }
    {
        char first[GW_EP_STRLEN], last[GW_EP_STRLEN];
        struct gw_ep a = { .family = sim->devs[0].cfg.family, .port = sim->devs[0].cfg.plain_port };
        struct gw_ep b = { .family = sim->devs[sim->ndev - 1].cfg.family,
                           .port = sim->devs[sim->ndev - 1].cfg.plain_port };
        memcpy(a.addr, sim->devs[0].cfg.addr, 16);
        memcpy(b.addr, sim->devs[sim->ndev - 1].cfg.addr, 16);
        gw_log_info(GW_LOG_SYS,
                    "%u devices (%u milli) from %s, %s .. %s, latency %u-%u ms, loss %.1f%%: ready",
                    sim->ndev, nmilli, path, gw_ep_str(&a, first, sizeof(first)),
                    gw_ep_str(&b, last, sizeof(last)), cfg.lat_min, cfg.lat_max, cfg.loss);
    }
    uv_run(&sim->loop, UV_RUN_DEFAULT);
    {
        char line[600];
        if (totals_line(sim, line, sizeof(line)) > 0)
            gw_log_info(GW_LOG_SYS, "%s", line);
    }
    status = 0;
out:
    gw_devlist_free(&lc.l);
    sim_free(sim);
    return status;
}
