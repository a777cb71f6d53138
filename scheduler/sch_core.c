/* SPDX-License-Identifier: MIT */
/* sch_core.c - device queues, retries, Milli serialization and the response
 * cache (see sch_core.h); the observe registry is in sch_observe.c, and what
 * the two files share is declared in sch_int.h. */
#include "sch_int.h"
#include "gw_clock.h"
#include "gw_coap.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_nodes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* Per-device state, rebuilt from the transaction table at start. */
struct sch_dev {
    uint8_t mac[GW_MAC_LEN];
    uint8_t milli;
    uint8_t remote; /* owned by node `owner`, not this one (S10.4) */
    uint8_t owner;
    uint16_t next_mid;
    uint32_t inflight;
    uint32_t qlen;
    int32_t qhead, qtail; /* FIFO of queued txns (indices), -1 = empty */
    int32_t active;       /* list of sent/acked txns through c->anext */
};

static uint64_t mac_key(const uint8_t mac[GW_MAC_LEN])
{
    uint64_t k;
    memcpy(&k, mac, sizeof(k));
    return gw_map_key_nz(k);
}

static uint32_t tstate(struct sch_txn *t)
{
    return atomic_load_explicit(&t->state, memory_order_acquire);
}

static void set_state(struct sch_txn *t, uint32_t s)
{
    atomic_store_explicit(&t->state, s, memory_order_release);
}

static uint64_t now_ms(struct sch_core *c)
{
    return gw_now_ms(c->clock);
}

/* MIDs to a device must not repeat within EXCHANGE_LIFETIME (247 s), or the
 * device takes a new request for a duplicate, also after the scheduler
 * restarted and forgot its counters. The counter therefore never lags a
 * floor that advances 256 MIDs a second on CLOCK_MONOTONIC (system-wide,
 * so a successor computes the same floor): whatever a predecessor sent in
 * the last 247 s lies behind it, as long as a device gets fewer than 256
 * requests a second (NSTART and the mesh's latency keep it far below). */
static uint16_t mid_floor(uint64_t ms)
{
    return (uint16_t)(ms * 256 / 1000);
}

static struct sch_dev *dev_get(struct sch_core *c, const uint8_t mac[GW_MAC_LEN], bool create)
{
    struct sch_dev *d = gw_map_get_ptr(&c->devs, mac_key(mac));
    if (d || !create)
        return d;
    d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    memcpy(d->mac, mac, GW_MAC_LEN);
    d->next_mid = mid_floor(now_ms(c));
    if (c->node_count > 1) {
        d->owner = (uint8_t)gw_nodes_owner(mac, c->node_count);
        d->remote = d->owner != c->node_self;
    }
    d->qhead = d->qtail = d->active = -1;
    if (gw_map_put_ptr(&c->devs, mac_key(mac), d) != 0) {
        free(d);
        return NULL;
    }
    return d;
}

/* Whether heap item it is a timer still to fire: exactly the test
 * sch_core_on_timer applies before firing one, so an item this refuses
 * would never have fired (a txn slot's generation only grows, and a slot
 * becomes SENT again only with a generation no item was pushed under). */
static bool timer_live(const struct gw_heap_item *it, void *ctx)
{
    const struct sch_core *c = ctx;
    if (it->id >= c->max_txn)
        return sch_obs_item_live(c, it->id - c->max_txn, it->gen);
    struct sch_txn *t = sch_txn_at((struct sch_core *)c, it->id);
    uint32_t s = tstate(t);
    return c->gen[it->id] == it->gen &&
           (s == SCH_TXN_SENT || s == SCH_TXN_ACKED || s == SCH_TXN_DELIVERED) &&
           t->deadline == it->deadline;
}

/* Txn slot idx's timer, if any, no longer counts (its generation moves).
 * Once the heap may hold as many cancelled items as live ones, they are
 * dropped and the heap gives back what it no longer needs: O(n) work after
 * at least n/2 cancellations, and at most about as many stale items as
 * live timers stay resident, instead of every exchange of the last
 * EXCHANGE_LIFETIME (issue 13 item 4). */
static void gen_bump(struct sch_core *c, uint32_t idx)
{
    c->gen[idx]++;
    if (++c->heap_stale >= 64 && (uint64_t)c->heap_stale * 2 >= c->heap.n) {
        GW_IGNORE(gw_heap_prune(&c->heap, timer_live, c));
        c->heap_stale = 0;
    }
}

/* Stale items (re-armed or cancelled timers) can fill the heap: rebuild it
 * from the live state. */
static void heap_rebuild(struct sch_core *c)
{
    c->heap.n = 0;
    c->heap_stale = 0;
    for (uint32_t i = 0; i < c->max_txn; i++) {
        uint32_t s = tstate(sch_txn_at(c, i));
        if (s == SCH_TXN_SENT || s == SCH_TXN_ACKED || s == SCH_TXN_DELIVERED)
            GW_IGNORE(gw_heap_push(&c->heap, sch_txn_at(c, i)->deadline, i, c->gen[i]));
    }
    sch_obs_rearm_all(c);
}

/* Hands txn t's request (first copy or retransmission) to the mesh. */
static int send_to_device(struct sch_core *c, const struct sch_txn *t)
{
    struct gw_msg m;
    gw_msg_mesh_tx(&m, t->env.security, t->env.mac, t->milli ? GW_MF_MILLI : 0, t->env.req_id,
                   t->data_len);
    return c->out.to_mesh(c->out.ctx, &m, t->data);
}

static void arm(struct sch_core *c, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    if (gw_heap_push(&c->heap, t->deadline, idx, c->gen[idx]) != 0) {
        heap_rebuild(c);
        GW_IGNORE(gw_heap_push(&c->heap, t->deadline, idx, c->gen[idx]));
    }
}

/* One heap holds both kinds of timer: ids below max_txn are txn slots,
 * the rest observation slots. Only this file knows the offset. */
static uint32_t obs_timer_id(const struct sch_core *c, uint32_t obs_slot)
{
    return c->max_txn + obs_slot;
}

void sch_core_arm_obs(struct sch_core *c, uint64_t deadline, uint32_t obs_slot, uint32_t gen)
{
    if (gw_heap_push(&c->heap, deadline, obs_timer_id(c, obs_slot), gen) != 0) {
        heap_rebuild(c);
        GW_IGNORE(gw_heap_push(&c->heap, deadline, obs_timer_id(c, obs_slot), gen));
    }
}

void sch_core_rearm_obs(struct sch_core *c, uint64_t deadline, uint32_t obs_slot, uint32_t gen)
{
    GW_IGNORE(gw_heap_push(&c->heap, deadline, obs_timer_id(c, obs_slot), gen));
}

bool sch_core_obs_txn_live(struct sch_core *c, uint8_t kind, uint64_t obs_id)
{
    for (uint32_t i = 0; i < c->max_txn; i++) {
        struct sch_txn *t = sch_txn_at(c, i);
        uint32_t s = tstate(t);
        if (s != SCH_TXN_FREE && s != SCH_TXN_ANSWERED && s != SCH_TXN_DELIVERED &&
            t->kind == kind && t->obs_id == obs_id)
            return true;
    }
    return false;
}

static uint32_t rnd(struct sch_core *c)
{
    return c->out.rand32(c->out.ctx);
}

/* ---- answers to clients ---- */

static bool suppressed(const struct gw_msg *env, uint8_t code)
{
    /* RFC 7967: bit 2 = 2.xx, 8 = 4.xx, 16 = 5.xx not wanted. */
    uint8_t cls = code >> 5;
    return (cls == 2 && (env->noresp & 2)) || (cls == 4 && (env->noresp & 8)) ||
           (cls == 5 && (env->noresp & 16));
}

/* Hands a record to a frontend; *fe_out (if not NULL) learns which one. */
static int send_client_to(struct sch_core *c, const struct gw_msg *req, uint8_t flags, uint32_t aux,
                          const uint8_t *data, size_t len, const struct sch_txn *kept,
                          uint8_t *fe_out)
{
    struct gw_msg m = *req;
    if (kept) {
        m.flags2 = GW_MF2_MID;
        m.client_mid = kept->client_mid;
    } else {
        m.flags2 = 0;
    }
    m.kind = GW_MSG_RESP;
    m.flags = (uint8_t)((req->flags & GW_MF_BLOCK2) | flags);
    if (!(flags & GW_MF_NOTIFY))
        m.flags |= GW_MF_ANSWER;
    m.aux = (flags & GW_MF_NOTIFY) ? aux : req->aux;
    m.len = (uint16_t)len;
    if ((m.flags & GW_MF_ANSWER) && len >= 2 && suppressed(req, data[1]))
        m.flags |= GW_MF_SUPPRESS;
    int rc = c->out.to_client(c->out.ctx, &m, data);
    if (rc == 0 && fe_out)
        *fe_out = m.fe;
    return rc;
}

int sch_core_send_client(struct sch_core *c, const struct gw_msg *req, uint8_t flags, uint32_t aux,
                         const uint8_t *data, size_t len)
{
    return send_client_to(c, req, flags, aux, data, len, NULL, NULL);
}

/* Builds the client's copy of a device message: the client's token, the
 * device's code, options (Observe replaced or dropped) and payload. */
int sch_core_build_answer(const struct gw_msg *env, const struct gw_coap_msg *resp, int64_t observe,
                          int64_t max_age, uint8_t *out, size_t cap, size_t *len)
{
    struct gw_cb b;
    gw_cb_init(&b, out, cap, GW_COAP_CON, resp->code, 0, env->token, env->tkl);
    bool obs_done = observe < 0, age_done = max_age < 0;
    for (unsigned i = 0; i < resp->nopts; i++) {
        const struct gw_coap_opt *o = &resp->opts[i];
        if (!obs_done && o->num >= GW_OPT_OBSERVE) {
            gw_cb_opt_uint(&b, GW_OPT_OBSERVE, (uint32_t)observe & 0xffffff);
            obs_done = true;
        }
        if (!age_done && o->num >= GW_OPT_MAX_AGE) {
            gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, (uint32_t)max_age);
            age_done = true;
        }
        if (o->num == GW_OPT_OBSERVE || (o->num == GW_OPT_MAX_AGE && max_age >= 0))
            continue;
        gw_cb_opt(&b, o->num, o->val, o->len);
    }
    if (!obs_done)
        gw_cb_opt_uint(&b, GW_OPT_OBSERVE, (uint32_t)observe & 0xffffff);
    if (!age_done)
        gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, (uint32_t)max_age);
    gw_cb_payload(&b, resp->payload, resp->payload_len);
    return gw_cb_finish(&b, len);
}

int sch_core_error_bytes(const struct gw_msg *env, uint8_t code, const char *diag, uint32_t max_age,
                         uint8_t *out, size_t cap, size_t *len)
{
    struct gw_cb b;
    gw_cb_init(&b, out, cap, GW_COAP_CON, code, 0, env->token, env->tkl);
    if (max_age != UINT32_MAX)
        gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, max_age);
    if (diag)
        gw_cb_payload(&b, diag, strlen(diag));
    return gw_cb_finish(&b, len);
}

static int txn_alloc(struct sch_core *c);
static int hand_over(struct sch_core *c, uint32_t idx);

/* ---- client requests already taken (S3.3, S1.3) ---- */

/* A client request's identity for deduplication: endpoint, MID and token. */
static uint64_t req_key(const struct sch_core *c, const struct gw_msg *env)
{
    return sch_client_key(c, &env->ep, env->client_mid, env->token, env->tkl);
}

uint64_t sch_client_key(const struct sch_core *c, const struct gw_ep *ep, int32_t mid,
                        const uint8_t *tok, uint8_t tkl)
{
    uint8_t b[sizeof(*ep) + 3 + GW_COAP_MAX_TOKEN];
    size_t n = sizeof(*ep);
    memcpy(b, ep, sizeof(*ep));
    if (mid >= 0) {
        b[n++] = (uint8_t)(mid >> 8);
        b[n++] = (uint8_t)mid;
    }
    b[n++] = tkl; /* so a MID byte never reads as a token byte */
    if (tkl > GW_COAP_MAX_TOKEN)
        tkl = GW_COAP_MAX_TOKEN;
    if (tkl) /* kept answers pass no token (NULL): memcpy's pointers must be valid */
        memcpy(b + n, tok, tkl);
    return gw_map_key_nz(gw_siphash(c->hkey, b, n + tkl));
}

static bool same_request(const struct gw_msg *a, const struct gw_msg *b)
{
    return a->client_type == GW_COAP_CON && b->client_type == GW_COAP_CON &&
           a->client_mid == b->client_mid && a->tkl == b->tkl &&
           memcmp(a->token, b->token, a->tkl) == 0 && gw_ep_eq(&a->ep, &b->ep);
}

/* Slot idx now holds a client's CON request (or its answer): indexed. A
 * failed insert (out of memory) costs only the re-sending of a kept answer
 * to a copy; `recent` still recognises the copy. */
static void req_index(struct sch_core *c, uint32_t idx)
{
    const struct sch_txn *t = sch_txn_at(c, idx);
    if (!t->has_client || t->env.client_type != GW_COAP_CON)
        return;
    /* The request on_copy just hashed (the record being handled). */
    const struct gw_msg *m = c->memo_env;
    uint64_t k = m && m->client_mid == t->env.client_mid && m->tkl == t->env.tkl &&
                         !memcmp(m->token, t->env.token, t->env.tkl) && gw_ep_eq(&m->ep, &t->env.ep)
                     ? c->memo_key
                     : req_key(c, &t->env);
    c->slot_req_key[idx] = k; /* keys are never 0 (gw_map_key_nz) */
    GW_IGNORE(gw_map_put_ptr(&c->by_req, k, (void *)(uintptr_t)(idx + 1)));
}

static void req_unindex(struct sch_core *c, uint32_t idx)
{
    uint64_t k = c->slot_req_key[idx];
    if (!k)
        return;
    c->slot_req_key[idx] = 0;
    if ((uintptr_t)gw_map_get_ptr(&c->by_req, k) == idx + 1)
        gw_map_del_ptr(&c->by_req, k);
}

/* The live transaction holding the same request as env, or -1. */
static int req_slot(struct sch_core *c, const struct gw_msg *env, uint64_t k)
{
    uintptr_t v = (uintptr_t)gw_map_get_ptr(&c->by_req, k);
    if (v == 0 || v > c->max_txn)
        return -1;
    struct sch_txn *t = sch_txn_at(c, (uint32_t)(v - 1));
    if (tstate(t) == SCH_TXN_FREE || !t->has_client || !same_request(&t->env, env))
        return -1;
    return (int)(v - 1);
}

/* An answer given at once (5.03, 5.02, a cache hit). It takes a transaction
 * slot like any other answer: kept until the client ACKs it (hand_over),
 * and when the frontend's ring is full parked as ANSWERED and sent by
 * sch_core_flush, so it is not lost (S1.3). With the table full it is sent
 * as it is (a 5.03 for a full table has no slot to wait in). */
static void answer_now(struct sch_core *c, const struct gw_msg *env, uint8_t flags,
                       const uint8_t *out, size_t len)
{
    int idx = txn_alloc(c);
    if (idx < 0 || len > sizeof(sch_txn_at(c, 0)->data)) {
        if (idx >= 0)
            c->freelist[c->nfree++] = (uint32_t)idx;
        if (sch_core_send_client(c, env, flags, 0, out, len) != 0)
            gw_stat_add(c->stats, GW_STAT_ring_full, 1);
        return;
    }
    struct sch_txn *t = sch_txn_at(c, (uint32_t)idx);
    memset((uint8_t *)t + sizeof(t->state), 0, offsetof(struct sch_txn, data) - sizeof(t->state));
    t->env = *env;
    t->has_client = 1;
    t->arrival = c->next_arrival++;
    memcpy(t->data, out, len);
    t->data_len = (uint16_t)len;
    t->answer_flags = flags;
    set_state(t, SCH_TXN_ANSWERED);
    req_index(c, (uint32_t)idx);
    if (hand_over(c, (uint32_t)idx) != 0) {
        gw_stat_add(c->stats, GW_STAT_ring_full, 1);
        c->pending_answers++;
    }
}

void sch_core_answer_error(struct sch_core *c, const struct gw_msg *env, uint8_t code,
                           const char *diag, uint32_t max_age)
{
    uint8_t out[512];
    size_t len;
    if (sch_core_error_bytes(env, code, diag, max_age, out, sizeof(out), &len) == 0)
        answer_now(c, env, 0, out, len);
}

/* ---- transactions ---- */

static int txn_alloc(struct sch_core *c)
{
    if (c->nfree == 0)
        return -1;
    return (int)c->freelist[--c->nfree];
}

static void txn_release(struct sch_core *c, uint32_t idx)
{
    req_unindex(c, idx);
    set_state(sch_txn_at(c, idx), SCH_TXN_FREE);
    gen_bump(c, idx);
    c->freelist[c->nfree++] = idx;
}

/* ---- remote devices (S10.4, sch_int.h) ---- */

static uint64_t peer_mid_key(uint32_t owner, uint8_t sec, uint16_t mid)
{
    return gw_map_key_nz(((uint64_t)(owner + 1) << 32) | ((uint64_t)sec << 16) | mid);
}

static uint64_t peer_tok_key(const uint8_t tok[8])
{
    uint64_t k;
    memcpy(&k, tok, 8);
    return gw_map_key_nz(k);
}

/* Remote exchange idx is in flight with dev_mid and dev_token: indexed. */
static void peer_index(struct sch_core *c, struct sch_dev *d, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    void *v = (void *)(uintptr_t)(idx + 1);
    if (gw_map_put_ptr(&c->peer_by_mid, peer_mid_key(d->owner, t->env.security, t->dev_mid), v) ||
        gw_map_put_ptr(&c->peer_by_tok, peer_tok_key(t->dev_token), v))
        gw_log_warn(GW_LOG_SYS, "out of memory indexing a forwarded exchange: its answer is lost");
}

/* Removes idx's entries (only those still pointing at it). */
static void peer_unindex(struct sch_core *c, struct sch_dev *d, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    uint64_t k = peer_mid_key(d->owner, t->env.security, t->dev_mid);
    if ((uintptr_t)gw_map_get_ptr(&c->peer_by_mid, k) == idx + 1)
        gw_map_del_ptr(&c->peer_by_mid, k);
    k = peer_tok_key(t->dev_token);
    if ((uintptr_t)gw_map_get_ptr(&c->peer_by_tok, k) == idx + 1)
        gw_map_del_ptr(&c->peer_by_tok, k);
}

/* The next MID towards owner node `owner`: even (mesh_peer.h), never behind
 * an even floor that advances 256 a second (mid_floor; 128 MIDs a second
 * here). Above about 130 forwarded requests a second to one owner a MID
 * comes back within EXCHANGE_LIFETIME; that is harmless, since the owner
 * deduplicates by (endpoint, MID, token) (S3.3) and every request carries
 * a fresh token (dev_token). What a MID must still not do is come back
 * while an exchange with it is open here (peer_by_mid keeps the newest for
 * the owner's empty ACK): 32768 even MIDs per owner and security, so above
 * about 350 a second for exchanges that last MAX_TRANSMIT_WAIT (93 s); the
 * older one's answer is still matched by its token. */
static uint16_t peer_next_mid(struct sch_core *c, uint32_t owner, uint64_t now)
{
    uint16_t floor = (uint16_t)(mid_floor(now) & ~1u);
    uint16_t *n = &c->peer_mid[owner];
    *n &= (uint16_t)~1u;
    if ((int16_t)(uint16_t)(floor - *n) > 0)
        *n = floor;
    uint16_t mid = *n;
    *n = (uint16_t)(*n + 2);
    return mid;
}

/* A successor continues each owner's MIDs after those of the exchanges it finds. */
static void peer_mid_seen(struct sch_core *c, const struct sch_dev *d, uint16_t mid)
{
    uint16_t next = (uint16_t)((mid & ~1u) + 2);
    if ((int16_t)(uint16_t)(next - c->peer_mid[d->owner]) > 0)
        c->peer_mid[d->owner] = next;
}

static void dev_unlink_active(struct sch_core *c, struct sch_dev *d, uint32_t idx)
{
    if (d->remote)
        peer_unindex(c, d, idx);
    int32_t *pp = &d->active;
    for (uint32_t guard = 0; *pp >= 0 && guard < c->max_txn; guard++) {
        if (*pp == (int32_t)idx) {
            *pp = c->anext[idx];
            if (d->inflight)
                d->inflight--;
            return;
        }
        pp = &c->anext[*pp];
    }
}

static void send_txn(struct sch_core *c, struct sch_dev *d, uint32_t idx);

static void pump(struct sch_core *c, struct sch_dev *d)
{
    uint32_t limit = d->milli ? 1 : (uint32_t)c->cfg.nstart;
    while (d->qhead >= 0 && d->inflight < limit) {
        uint32_t idx = (uint32_t)d->qhead;
        d->qhead = c->qnext[idx];
        if (d->qhead < 0)
            d->qtail = -1;
        d->qlen--;
        send_txn(c, d, idx);
    }
}

/* The debug line for one device exchange, and the device RTT when the
 * device answered. `req` joins it to the frontend's line for the client's
 * request; t->data still holds the request for the device here. */
static void log_exchange(struct sch_core *c, struct sch_txn *t, uint8_t code, bool answered)
{
    uint32_t rtt = (uint32_t)gw_now_us(c->clock) - t->sent_us;
    if (answered)
        gw_stat_observe(c->stats, GW_HIST_DEVICE_RTT, rtt);
    if (!gw_log_enabled(GW_LOG_DEBUG))
        return;
    static const char *const kinds[] = { "client", "observe", "observe-cancel" };
    char id[20], mac[17], path[160], cs[8];
    snprintf(id, sizeof(id), "%016llx", (unsigned long long)t->env.req_id);
    gw_mac_str(t->env.mac, mac);
    gw_coap_path_str(t->data, t->data_len, path, sizeof(path));
    struct gw_log_kv kv[] = {
        GW_KV_S("req", id),
        GW_KV_S("mac", mac),
        GW_KV_S("path", path),
        GW_KV_S("security", t->env.security == GW_SEC_NETMGR ? "netmgr" : "none"),
        GW_KV_S("kind", t->kind < GW_ARRAY_LEN(kinds) ? kinds[t->kind] : "other"),
        GW_KV_I("mid", t->dev_mid),
        GW_KV_I("attempts", t->attempts),
        GW_KV_S("outcome", answered ? "answered" : "failed"),
        GW_KV_S("code", gw_coap_code_str(code, cs)),
        GW_KV_I("duration_us", rtt),
    };
    gw_log_event(GW_LOG_DEBUG, GW_LOG_MESH, "mesh exchange", kv, GW_ARRAY_LEN(kv));
}

/* The device exchange of idx is over: it leaves its device's active list
 * and becomes ANSWERED *before* t->data is overwritten with the client's
 * answer, so a successor never takes an answer for a request to resend.
 * code is the device's answer (answered) or the gateway's error. */
static void end_exchange(struct sch_core *c, uint32_t idx, uint8_t code, bool answered)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    uint32_t s = tstate(t);
    if (s != SCH_TXN_SENT && s != SCH_TXN_ACKED)
        return;
    log_exchange(c, t, code, answered);
    struct sch_dev *d = dev_get(c, t->env.mac, false);
    if (d)
        dev_unlink_active(c, d, idx);
    gen_bump(c, idx);
    set_state(t, SCH_TXN_ANSWERED);
}

/* Ends a transaction: hands the answer in t->data to its client (if any)
 * and frees the slot; the next queued request of the device goes out. */
static void finish(struct sch_core *c, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    struct sch_dev *d = dev_get(c, t->env.mac, false);
    uint32_t s = tstate(t);
    if (d && (s == SCH_TXN_SENT || s == SCH_TXN_ACKED))
        dev_unlink_active(c, d, idx);
    if (t->has_client && t->data_len) {
        set_state(t, SCH_TXN_ANSWERED);
        gen_bump(c, idx);
        if (hand_over(c, idx) != 0)
            c->pending_answers++; /* the frontend's ring is full: kept, retried by flush */
    } else {
        txn_release(c, idx);
    }
    if (d)
        pump(c, d);
}

/* ---- answers kept until the client ACKs them (S1.3, gw_msg.h GW_MF2_MID) ---- */

static uint64_t kept_key(const struct sch_core *c, const struct gw_ep *ep, uint16_t mid)
{
    return sch_client_key(c, ep, mid, NULL, 0);
}

/* RFC 7252 4.8.2 MAX_TRANSMIT_WAIT towards clients: after it the frontend
 * gave the answer up, and a copy sent later could outlive the client's
 * deduplication. */
static uint64_t keep_ms(const struct sch_core *c)
{
    return (uint64_t)c->cfg.client_ack_timeout_ms * ((2ull << c->cfg.client_max_retransmit) - 1) *
           3 / 2;
}

/* Only CON answers the client will see and ACK are kept; half the table
 * at most, so clients that never ACK cannot starve new requests. */
static bool keepable(const struct sch_core *c, const struct sch_txn *t)
{
    return c->out.client_mid && t->has_client && t->env.client_type == GW_COAP_CON &&
           t->data_len >= 4 && !(t->answer_flags & GW_MF_NOTIFY) &&
           !suppressed(&t->env, t->data[1]) && c->ndelivered < c->max_txn / 2;
}

static void kept_release(struct sch_core *c, uint32_t idx)
{
    uint64_t k = c->slot_kept_key[idx]; /* kept_index set it */
    if ((uintptr_t)gw_map_get_ptr(&c->delivered, k) == idx + 1)
        gw_map_del_ptr(&c->delivered, k);
    if (c->ndelivered)
        c->ndelivered--;
    txn_release(c, idx);
}

static void kept_index(struct sch_core *c, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    uint64_t k = kept_key(c, &t->env.ep, t->client_mid);
    c->slot_kept_key[idx] = k;
    GW_IGNORE(gw_map_put_ptr(&c->delivered, k, (void *)(uintptr_t)(idx + 1)));
    c->ndelivered++;
}

/* Hands the ANSWERED transaction idx to a frontend. A keepable answer gets
 * its client MID first (stored before the record leaves, so a successor
 * sends the same one) and stays DELIVERED; any other is released.
 * Returns 0, or GW_EFULL when the ring is full (idx stays ANSWERED). */
static int hand_over(struct sch_core *c, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    bool keep = keepable(c, t);
    if (keep && !t->mid_set) {
        int mid = c->out.client_mid(c->out.ctx, t->env.fe);
        keep = mid >= 0;
        if (keep) {
            t->client_mid = (uint16_t)mid;
            t->mid_set = 1;
        }
    }
    uint8_t fe = t->env.fe;
    int rc = send_client_to(c, &t->env, t->answer_flags, t->answer_aux, t->data, t->data_len,
                            keep || t->mid_set ? t : NULL, &fe);
    if (rc != 0)
        return rc;
    if (t->data_len >= 2)
        c->last_code = t->data[1];
    if (!keep) {
        txn_release(c, idx);
        return 0;
    }
    t->sent_fe = fe;
    t->repush = 0;
    t->deadline = now_ms(c) + keep_ms(c);
    gen_bump(c, idx);
    set_state(t, SCH_TXN_DELIVERED);
    kept_index(c, idx);
    arm(c, idx);
    return 0;
}

/* A frontend saw the client's ACK or RST for (ep, mid), or gave it up. */
static void on_answer_done(struct sch_core *c, const struct gw_msg *env)
{
    uintptr_t v = (uintptr_t)gw_map_get_ptr(&c->delivered, kept_key(c, &env->ep, env->client_mid));
    if (v == 0 || v > c->max_txn)
        return;
    struct sch_txn *t = sch_txn_at(c, (uint32_t)(v - 1));
    if (tstate(t) != SCH_TXN_DELIVERED || t->client_mid != env->client_mid ||
        !gw_ep_eq(&t->env.ep, &env->ep))
        return;
    kept_release(c, (uint32_t)(v - 1));
}

/* Sends DELIVERED answer idx to its frontend again with its MID. */
static int repush(struct sch_core *c, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    uint8_t fe = t->sent_fe;
    struct gw_msg env = t->env;
    env.fe = t->sent_fe;
    int rc = send_client_to(c, &env, t->answer_flags, t->answer_aux, t->data, t->data_len, t, &fe);
    if (rc == 0) {
        t->sent_fe = fe;
        t->repush = 0;
    } else {
        t->repush = 1;
        c->pending_answers++;
    }
    return rc;
}

/* Frontend fe (re)started with empty retransmission tables: every answer it
 * held unconfirmed goes to it again, with the same MID (S1.3). */
static void on_fe_start(struct sch_core *c, uint8_t fe)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->max_txn; i++) {
        struct sch_txn *t = sch_txn_at(c, i);
        if (tstate(t) == SCH_TXN_DELIVERED && t->sent_fe == fe) {
            GW_IGNORE(repush(c, i));
            n++;
        }
    }
    if (n)
        gw_log_info(GW_LOG_COAP,
                    "frontend %u started: %u answers not yet ACKed by their clients sent again", fe,
                    n);
}

void sch_core_finish_txn(struct sch_core *c, uint32_t idx)
{
    finish(c, idx);
}

void sch_core_finish_error(struct sch_core *c, uint32_t idx, uint8_t code, const char *diag)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    end_exchange(c, idx, code, false);
    size_t len = 0;
    if (sch_core_error_bytes(&t->env, code, diag, UINT32_MAX, t->data, sizeof(t->data), &len) != 0)
        len = 0;
    t->data_len = (uint16_t)len;
    t->answer_flags = 0;
    finish(c, idx);
}

static void send_txn(struct sch_core *c, struct sch_dev *d, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    uint64_t now = now_ms(c);
    if (d->remote) {
        t->dev_mid = peer_next_mid(c, d->owner, now);
    } else {
        uint16_t floor = mid_floor(now);
        if ((int16_t)(uint16_t)(floor - d->next_mid) > 0)
            d->next_mid = floor;
        t->dev_mid = d->next_mid++;
    }
    t->data[2] = (uint8_t)(t->dev_mid >> 8);
    t->data[3] = (uint8_t)t->dev_mid;
    memcpy(t->data + 4, t->dev_token, 8);
    t->attempts = 1;
    t->first_sent = now;
    t->sent_us = (uint32_t)gw_now_us(c->clock);
    if (t->milli)
        t->timeout_ms = (uint32_t)c->cfg.milli_timeout_ms;
    else
        t->timeout_ms = (uint32_t)gw_backoff_initial((uint64_t)c->cfg.mesh_ack_timeout_ms, rnd(c));
    t->deadline = now + t->timeout_ms;
    set_state(t, SCH_TXN_SENT);
    c->anext[idx] = d->active;
    d->active = (int32_t)idx;
    d->inflight++;
    if (d->remote)
        peer_index(c, d, idx);
    if (send_to_device(c, t) != 0)
        gw_stat_add(c->stats, GW_STAT_ring_full, 1); /* the retransmission timer covers it */
    gw_stat_add(c->stats, GW_STAT_mesh_requests, 1);
    arm(c, idx);
}

/* Refills the token pool from the kernel's CSPRNG. getrandom(2) without
 * flags only blocks before the pool is initialised at boot; the bound
 * covers signal interruptions. /dev/urandom is the fallback for a kernel
 * without the call. Returns 0 or -errno. */
static int pool_refill(struct sch_core *c)
{
    size_t off = 0;
    for (int tries = 0; off < sizeof(c->tok_pool) && tries < 16; tries++) {
        ssize_t r = getrandom(c->tok_pool + off, sizeof(c->tok_pool) - off, 0);
        if (r > 0)
            off += (size_t)r;
        else if (r < 0 && errno == ENOSYS)
            break;
    }
    if (off < sizeof(c->tok_pool)) {
        FILE *f = fopen("/dev/urandom", "rbe");
        if (f) {
            off += fread(c->tok_pool + off, 1, sizeof(c->tok_pool) - off, f);
            fclose(f);
        }
    }
    c->tok_pos = 0;
    return off == sizeof(c->tok_pool) ? 0 : -EIO;
}

void sch_core_new_token(struct sch_core *c, uint8_t tok[8])
{
    for (int tries = 0; tries < 4; tries++) {
        if (c->tok_pos + 8 > sizeof(c->tok_pool) && pool_refill(c) != 0) {
            /* No randomness at all: refuse to run with guessable tokens. */
            gw_log_err(GW_LOG_SYS,
                       "no random bytes for device tokens (getrandom and /dev/urandom failed)");
            abort();
        }
        memcpy(tok, c->tok_pool + c->tok_pos, 8);
        /* Used bytes are wiped: a core dump shows no token to come. */
        memset(c->tok_pool + c->tok_pos, 0, 8);
        c->tok_pos += 8;
        uint64_t v;
        memcpy(&v, tok, 8);
        /* 0 is the maps' empty key (an observation's id is its token); a
         * clash with a live observation is as unlikely as 2^-64, and cheap
         * to rule out. */
        if (v != 0 && !sch_obs_id_taken(c, v))
            return;
    }
}

/* Creates a transaction for `req` (device request bytes with placeholder
 * token) and queues or sends it. Returns the index or -1 after answering
 * the client (5.03 for a busy Milli, a full queue or a full table). */
int sch_core_submit(struct sch_core *c, const struct gw_msg *env, const uint8_t *data, size_t len,
                    uint8_t kind, bool has_client, uint64_t obs_id, const uint8_t *token)
{
    int type = c->out.device_type(c->out.ctx, env->mac);
    if (type < 0) {
        if (has_client)
            sch_core_answer_error(c, env, GW_COAP_BAD_GATEWAY,
                                  "unknown device: no such MAC ID in the device registry",
                                  UINT32_MAX);
        return -1;
    }
    struct sch_dev *d = dev_get(c, env->mac, true);
    if (!d) {
        if (has_client)
            sch_core_answer_error(c, env, GW_COAP_UNAVAILABLE, "gateway out of memory", 1);
        return -1;
    }
    d->milli = type == 1;
    if (d->milli && has_client && (d->inflight || d->qlen)) {
        /* S4.5: one request per Milli device, the next one refused at once. */
        gw_stat_add(c->stats, GW_STAT_mesh_busy, 1);
        sch_core_answer_error(c, env, GW_COAP_UNAVAILABLE, SCH_MILLI_BUSY_TEXT,
                              (uint32_t)c->cfg.milli_busy_max_age_s);
        return -1;
    }
    uint32_t limit = d->milli ? 1 : (uint32_t)c->cfg.nstart;
    if (d->inflight >= limit && d->qlen >= (uint32_t)c->cfg.device_queue_max && has_client) {
        gw_stat_add(c->stats, GW_STAT_mesh_busy, 1);
        sch_core_answer_error(c, env, GW_COAP_UNAVAILABLE, "device queue full", 1);
        return -1;
    }
    int idx = txn_alloc(c);
    if (idx < 0 || len > sizeof(sch_txn_at(c, 0)->data) || len < 12) {
        if (idx >= 0)
            c->freelist[c->nfree++] = (uint32_t)idx;
        gw_stat_add(c->stats, GW_STAT_mesh_busy, 1);
        if (has_client)
            sch_core_answer_error(c, env, GW_COAP_UNAVAILABLE,
                                  "gateway busy: transaction table full", 1);
        return -1;
    }
    struct sch_txn *t = sch_txn_at(c, (uint32_t)idx);
    memset((uint8_t *)t + sizeof(t->state), 0, offsetof(struct sch_txn, data) - sizeof(t->state));
    t->kind = kind;
    t->milli = d->milli;
    t->has_client = has_client;
    t->arrival = c->next_arrival++;
    t->obs_id = obs_id;
    t->env = *env;
    memcpy(t->data, data, len);
    t->data_len = (uint16_t)len;
    if (token)
        memcpy(t->dev_token, token, 8);
    else
        sch_core_new_token(c, t->dev_token);
    req_index(c, (uint32_t)idx);
    c->qnext[idx] = -1;
    if (d->inflight < limit && d->qhead < 0) {
        send_txn(c, d, (uint32_t)idx);
    } else {
        set_state(t, SCH_TXN_QUEUED);
        if (d->qtail >= 0)
            c->qnext[d->qtail] = idx;
        else
            d->qhead = idx;
        d->qtail = idx;
        d->qlen++;
    }
    return idx;
}

/* ---- requests from clients ---- */

/* Whether the client request with key k (req_key) was recorded with a time
 * within the exchange lifetime of now: RECENT_FRESH; RECENT_STALE when only
 * older records of it are left, RECENT_NONE when none. Records are appended
 * in time order, except those a leaving observer hands over
 * (sch_core_remember_request), so every record of the key is checked. */
enum { RECENT_NONE, RECENT_STALE, RECENT_FRESH };
/* A record's time with this bit: the request was answered by a frontend from
 * the shared cache after a check (gw_msg.h GW_MF2_CHECK), not taken here. */
#define RECENT_ANSWERED (1ull << 63)
static int recent_find_how(const struct sch_core *c, uint64_t k, uint64_t now, uint64_t *when)
{
    uint64_t life = (uint64_t)c->cfg.exchange_lifetime_ms;
    int found = RECENT_NONE;
    uint32_t pos, n = 0;
    for (uint32_t at = gw_idx_first(&c->recent, c->recent_keys, k, &pos);
         at != GW_IDX_END && n < c->recent_cap;
         at = gw_idx_more(&c->recent, c->recent_keys, k, &pos), n++) {
        if (now - (c->recent_at[at] & ~RECENT_ANSWERED) < life) {
            if (when)
                *when = c->recent_at[at]; /* with RECENT_ANSWERED */
            return RECENT_FRESH;
        }
        found = RECENT_STALE;
    }
    return found;
}

static int recent_find(const struct sch_core *c, uint64_t k, uint64_t now)
{
    return recent_find_how(c, k, now, NULL);
}

/* Records key k as taken at time `at` (<= now); `had` is recent_find's
 * answer for it. Expiry is by age in the FIFO, oldest first (a full FIFO
 * drops its oldest record); stale records of k left behind the head go
 * first, so a key is indexed once. */
static void recent_add(struct sch_core *c, uint64_t k, uint64_t at, uint64_t now, int had)
{
    uint64_t life = (uint64_t)c->cfg.exchange_lifetime_ms;
    while (c->recent_n && (c->recent_n == c->recent_cap ||
                           now - (c->recent_at[c->recent_head] & ~RECENT_ANSWERED) >= life)) {
        GW_IGNORE(gw_idx_del(&c->recent, c->recent_keys, c->recent_head));
        c->recent_head = (c->recent_head + 1) % c->recent_cap;
        c->recent_n--;
    }
    uint32_t pos, old;
    for (uint32_t n = 0; had != RECENT_NONE && n < c->recent_cap &&
                         (old = gw_idx_first(&c->recent, c->recent_keys, k, &pos)) != GW_IDX_END;
         n++)
        GW_IGNORE(gw_idx_del(&c->recent, c->recent_keys, old)); /* its FIFO place stays */
    uint32_t tail = (c->recent_head + c->recent_n) % c->recent_cap;
    c->recent_keys[tail] = k;
    c->recent_at[tail] = at;
    if (gw_idx_add(&c->recent, c->recent_keys, tail) == 0)
        c->recent_n++;
}

/* Records key k as taken at `at` unless a record within the lifetime has
 * it already. */
static void recent_note(struct sch_core *c, uint64_t k, uint64_t at)
{
    uint64_t now = now_ms(c);
    int had = recent_find(c, k, now);
    if (had != RECENT_FRESH)
        recent_add(c, k, at, now, had);
}

/* True when the client request with key k (req_key) was seen within the
 * exchange lifetime; records it otherwise. */
static bool seen_recently(struct sch_core *c, uint64_t k)
{
    uint64_t now = now_ms(c);
    int had = recent_find(c, k, now);
    if (had == RECENT_FRESH)
        return true;
    recent_add(c, k, now, now, had);
    return false;
}

/* When the frontend took env (rx_us: CLOCK_MONOTONIC microseconds modulo
 * 2^32, system-wide), in ms on the scheduler's clock; 0 when unknown. A
 * reading of the clock older than rx_us (a turn clock) counts as age 0. */
static uint64_t taken_ms(struct sch_core *c, const struct gw_msg *env)
{
    if (!env->rx_us)
        return 0;
    int32_t d = (int32_t)((uint32_t)gw_now_us(c->clock) - env->rx_us);
    uint64_t now = now_ms(c), age = d > 0 ? (uint64_t)d / 1000u : 0;
    return age < now ? now - age : 0;
}

/* on_copy's test for a request other than a registration: seen within the
 * exchange lifetime, else recorded now. One that a frontend answered from
 * the cache after a check (RECENT_ANSWERED) is a copy when its frontend
 * took it before that check: the original, read late from the ring of a
 * frontend that died. Taken after it, it is the client's copy whose held
 * hit had gone stale at the frontend that took it: the client asks again,
 * so it most likely lost that answer, and an empty ACK would leave it
 * waiting for nothing; it is taken as new (fe_guard.h, WHAT IS LEFT). */
static bool seen_copy(struct sch_core *c, const struct gw_msg *env, uint64_t k)
{
    uint64_t now = now_ms(c), when = 0;
    int had = recent_find_how(c, k, now, &when);
    if (had == RECENT_FRESH) {
        uint64_t t = taken_ms(c, env);
        if (!(when & RECENT_ANSWERED) || !t || t <= (when & ~RECENT_ANSWERED))
            return true;
        had = RECENT_STALE; /* recorded again, as taken now */
    }
    recent_add(c, k, now, now, had);
    return false;
}

void sch_core_remember_request(struct sch_core *c, const struct gw_ep *ep, uint16_t mid,
                               const uint8_t *tok, uint8_t tkl, uint64_t at)
{
    uint64_t now = now_ms(c);
    if (at > now)
        at = now;
    if (now - at >= (uint64_t)c->cfg.exchange_lifetime_ms)
        return;
    recent_note(c, sch_client_key(c, ep, mid, tok, tkl), at);
}

/* True when CON request env is a copy of one already taken: seen within the
 * exchange lifetime, or held by a live transaction (also one a predecessor
 * left in the shared table). A copy is never executed again; when its answer
 * is kept (DELIVERED), that answer goes again, with its MID, to the frontend
 * that forwarded the copy: the client may never have had it, and any copy
 * it already has is a duplicate to it (RFC 7252 4.5). An answer still to
 * come goes to the client as it would have anyway. */
static bool on_copy(struct sch_core *c, const struct gw_msg *env, bool reg)
{
    uint64_t k = req_key(c, env);
    c->memo_env = env;
    c->memo_key = k;
    int idx = req_slot(c, env, k);
    /* A registration is recorded once it is handled, and only when its
     * observer does not remember it (on_request). */
    bool seen = reg ? sch_obs_holds_request(c, env) || recent_find(c, k, now_ms(c)) == RECENT_FRESH
                    : seen_copy(c, env, k);
    if (!seen && idx < 0)
        return false;
    gw_stat_add(c->stats, GW_STAT_rx_duplicates, 1);
    if (idx >= 0 && tstate(sch_txn_at(c, (uint32_t)idx)) == SCH_TXN_DELIVERED) {
        sch_txn_at(c, (uint32_t)idx)->sent_fe = env->fe;
        GW_IGNORE(repush(c, (uint32_t)idx)); /* a full ring: retried by sch_core_flush */
        return true;
    }
    /* The forwarding frontend counted the copy in its session's in-flight
     * requests (S2.8) and no answer will come back to it for this copy (the
     * original's goes to the frontend that took it): an answer it only
     * accounts for and never sends, or the count would leak until the
     * session is stuck at 4.29. */
    static const uint8_t empty_ack[4] = { 0x60, 0, 0, 0 };
    GW_IGNORE(send_client_to(c, env, GW_MF_SUPPRESS, 0, empty_ack, sizeof(empty_ack), NULL, NULL));
    return true;
}

static void take_request(struct sch_core *c, const struct gw_msg *env, const uint8_t *data);

/* The verdict on a held cache hit (gw_msg.h GW_MF2_CHECK), to the frontend
 * that asked (or any live one: it ignores what it does not hold). */
static void check_verdict(struct sch_core *c, const struct gw_msg *env, bool copy)
{
    static const uint8_t none[1];
    struct gw_msg m = *env;
    m.kind = GW_MSG_RESP;
    m.flags = copy ? 0 : GW_MF_ANSWER;
    m.flags2 = (uint8_t)(GW_MF2_CHECK | (copy ? GW_MF2_COPY : 0));
    m.len = 0;
    /* A full ring: the frontend asks again with the client's next copy. */
    GW_IGNORE(c->out.to_client(c->out.ctx, &m, none));
}

/* A frontend holds a fresh cache hit for this CON GET but a frontend of the
 * port started or stopped lately (frontend/fe_guard.h): answer it there
 * unless it is a copy of a request taken here. Nothing is executed. A
 * request checked before and answered stays answered; one never seen is
 * recorded as answered, so its original, should a frontend that died have
 * forwarded it, is then a copy (one final answer, S1.3). */
static void on_check(struct sch_core *c, const struct gw_msg *env)
{
    uint64_t k = req_key(c, env), now = now_ms(c), when = 0;
    int had = recent_find_how(c, k, now, &when);
    if (req_slot(c, env, k) < 0 && (had != RECENT_FRESH || (when & RECENT_ANSWERED))) {
        if (had != RECENT_FRESH)
            recent_add(c, k, now | RECENT_ANSWERED, now, had);
        check_verdict(c, env, false);
        return;
    }
    check_verdict(c, env, true);
    GW_IGNORE(on_copy(c, env, false)); /* its kept answer again, or the accounting */
}

/* A client's request. A CON request already taken is a copy (on_copy).
 * Every CON request taken is remembered for its exchange lifetime (S3.3
 * across frontend restarts, S1.3): in `recent`, except an observe
 * registration whose observer now holds it (sch_obs_holds_request: its
 * endpoint, token and MID, and when it came). That observer hands it to
 * `recent` when it leaves or registers again within the lifetime, so an
 * observe storm costs no `recent` record per live observer (16 B in the
 * FIFO and its index slots, issue 13 item 4). A held cache
 * hit is only checked (on_check). */
static void on_request(struct sch_core *c, const struct gw_msg *env, const uint8_t *data)
{
    c->memo_env = NULL;
    if (env->client_type == GW_COAP_CON && (env->flags2 & GW_MF2_CHECK)) {
        on_check(c, env);
        return;
    }
    bool reg = env->client_type == GW_COAP_CON && (env->flags & GW_MF_OBS_REGISTER);
    if (env->client_type == GW_COAP_CON && on_copy(c, env, reg))
        return;
    uint64_t k = c->memo_key;
    take_request(c, env, data);
    if (reg && !sch_obs_holds_request(c, env))
        recent_note(c, k, now_ms(c));
}

static void take_request(struct sch_core *c, const struct gw_msg *env, const uint8_t *data)
{
    struct gw_coap_msg req;
    if (env->len < 12 || gw_coap_parse(c->rx_parser, data, env->len, &req) != 0 || req.tkl != 8) {
        sch_core_answer_error(c, env, GW_COAP_INTERNAL, "malformed request record", UINT32_MAX);
        return;
    }
    if (env->flags & (GW_MF_OBS_REGISTER | GW_MF_OBS_CANCEL)) {
        sch_obs_on_request(c, env, data, &req);
        return;
    }
    uint8_t key[SCH_CACHE_KEY_MAX];
    size_t klen = 0;
    uint64_t res_hash = 0;
    bool keyed =
        sch_cache_key(env->mac, env->security, &req, key, sizeof(key), &klen, &res_hash) == 0;
    if (keyed && req.code == GW_COAP_GET && !gw_coap_opt_find(&req, GW_OPT_ETAG)) {
        struct sch_cache_hit hit;
        int r = sch_cache_get(c->cache, key, klen, now_ms(c), &hit);
        if (r == SCH_CACHE_FRESH) {
            uint8_t out[GW_COAP_MAX_MSG + 64];
            size_t len;
            gw_stat_add(c->stats, GW_STAT_cache_hits, 1);
            /* A hit here is one the frontend did not find in the shared
             * table (another resource took the slot, or we restarted). */
            sch__mirror_sync(c, key, klen, res_hash);
            if (sch_cache_render(&hit, GW_COAP_CON, 0, env->token, env->tkl, out, sizeof(out),
                                 &len) == 0) {
                answer_now(c, env, GW_MF_CACHED, out, len);
                return;
            }
        }
        gw_stat_add(c->stats, GW_STAT_cache_misses, 1);
        if (r == SCH_CACHE_STALE && hit.etag_len) {
            /* S5.5: revalidate the stored entry with its ETag. */
            struct gw_coap_msg up = req;
            if (up.nopts < GW_COAP_MAX_OPTS) {
                up.opts[up.nopts++] = (struct gw_coap_opt){ GW_OPT_ETAG, hit.etag_len, hit.etag };
                uint8_t buf[GW_COAP_MAX_MSG + 16];
                size_t bl;
                if (gw_coap_encode(&up, buf, sizeof(buf), &bl) == 0 && bl <= GW_COAP_MAX_MSG) {
                    int idx = sch_core_submit(c, env, buf, bl, SCH_TK_CLIENT, true, 0, NULL);
                    if (idx >= 0)
                        sch_txn_at(c, (uint32_t)idx)->reval = 1;
                    return;
                }
            }
        }
    } else if (keyed &&
               (req.code == GW_COAP_PUT || req.code == GW_COAP_POST || req.code == GW_COAP_DELETE ||
                req.code == GW_COAP_PATCH || req.code == GW_COAP_IPATCH)) {
        /* S5.3, the frontends' copy first: it must never outlive ours. */
        gw_rcache_invalidate(&c->rcache, res_hash);
        sch_cache_invalidate(c->cache, res_hash);
    }
    sch_core_submit(c, env, data, env->len, SCH_TK_CLIENT, true, 0, NULL);
}

/* ---- datagrams from devices ---- */

static void mesh_reply_empty(struct sch_core *c, const struct gw_msg *rx, uint8_t type,
                             uint16_t mid)
{
    uint8_t b[4] = { (uint8_t)(0x40 | type << 4), 0, (uint8_t)(mid >> 8), (uint8_t)mid };
    struct gw_msg m;
    gw_msg_mesh_tx(&m, rx->security, rx->mac, 0, 0, sizeof(b));
    c->out.to_mesh(c->out.ctx, &m, b);
}

/* A device's datagram matches an exchange only on the same mesh security:
 * a plain-port datagram never answers a netmgr request (S7.1). */
static int find_active(struct sch_core *c, struct sch_dev *d, uint8_t sec, bool by_mid,
                       uint16_t mid, const uint8_t *tok, uint8_t tkl)
{
    uint32_t guard = 0;
    for (int32_t i = d->active; i >= 0 && guard < c->max_txn; i = c->anext[i], guard++) {
        struct sch_txn *t = sch_txn_at(c, (uint32_t)i);
        if (t->env.security != sec)
            continue;
        if (by_mid ? t->dev_mid == mid : (tkl == 8 && memcmp(t->dev_token, tok, 8) == 0))
            return i;
    }
    return -1;
}

/* Unknown unsafe options in a response cannot be forwarded (RFC 7252 5.7.1). */
static bool response_forwardable(const struct gw_coap_msg *r)
{
    for (unsigned i = 0; i < r->nopts; i++) {
        uint16_t n = r->opts[i].num;
        switch (n) {
        case GW_OPT_IF_MATCH:
        case GW_OPT_ETAG:
        case GW_OPT_IF_NONE_MATCH:
        case GW_OPT_OBSERVE:
        case GW_OPT_LOCATION_PATH:
        case GW_OPT_CONTENT_FORMAT:
        case GW_OPT_MAX_AGE:
        case GW_OPT_LOCATION_QUERY:
        case GW_OPT_BLOCK2:
        case GW_OPT_BLOCK1:
        case GW_OPT_SIZE2:
        case GW_OPT_SIZE1:
            continue;
        default:
            if (gw_opt_unsafe(n))
                return false;
        }
    }
    return true;
}

/* A device's final answer to transaction idx. */
static void on_answer(struct sch_core *c, uint32_t idx, const struct gw_coap_msg *resp)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    /* resp points into the parser, not into t->data: safe to end first. */
    end_exchange(c, idx, resp->code, true);
    uint8_t cls = resp->code >> 5;
    if (cls != 2 && cls != 4 && cls != 5) {
        /* A request code in an ACK, or a reserved class 1, 6 or 7 (RFC 7252
         * 12.1): no response a client could take as final (S4.6: 5.02). */
        if (t->kind != SCH_TK_CLIENT)
            sch_obs_on_failure(c, idx, GW_COAP_BAD_GATEWAY,
                               "device answered with a code that is not a response");
        else
            sch_core_finish_error(c, idx, GW_COAP_BAD_GATEWAY,
                                  "device answered with a code that is not a response");
        return;
    }
    if (!response_forwardable(resp)) {
        sch_core_finish_error(c, idx, GW_COAP_BAD_GATEWAY,
                              "device answer carries an unknown unsafe option");
        return;
    }
    if (t->kind != SCH_TK_CLIENT) {
        sch_obs_on_answer(c, idx, resp);
        return;
    }
    struct gw_coap_msg req;
    uint8_t key[SCH_CACHE_KEY_MAX];
    size_t klen = 0;
    uint64_t res_hash = 0;
    /* The key comes from the request as the client sent it (no revalidation ETag). */
    bool keyed = false;
    if (gw_coap_parse(c->stored_req_parser, t->data, t->data_len, &req) == 0) {
        if (t->reval) {
            unsigned w = 0;
            for (unsigned i = 0; i < req.nopts; i++)
                if (req.opts[i].num != GW_OPT_ETAG)
                    req.opts[w++] = req.opts[i];
            req.nopts = (uint16_t)w;
        }
        keyed = sch_cache_key(t->env.mac, t->env.security, &req, key, sizeof(key), &klen,
                              &res_hash) == 0;
    }
    uint64_t now = now_ms(c);
    if (keyed && t->reval && resp->code == GW_COAP_VALID &&
        sch_cache_refresh(c->cache, key, klen, resp, now) == 0) {
        sch__mirror_sync(c, key, klen, res_hash); /* S5.5: the new expiry */
        struct sch_cache_hit hit;
        if (sch_cache_get(c->cache, key, klen, now, &hit) == SCH_CACHE_FRESH) {
            size_t len;
            if (sch_cache_render(&hit, GW_COAP_CON, 0, t->env.token, t->env.tkl, t->data,
                                 sizeof(t->data), &len) == 0) {
                t->data_len = (uint16_t)len;
                t->answer_flags = 0;
                finish(c, idx);
                return;
            }
        }
    }
    if (keyed && req.code == GW_COAP_GET && t->env.client_type == GW_COAP_CON) {
        GW_IGNORE(
            sch_cache_put(c->cache, key, klen, res_hash, resp, now)); /* S5.1: only 2.05 is kept */
        sch__mirror_sync(c, key, klen, res_hash);
    }
    if (keyed && (gw_coap_opt_find(resp, GW_OPT_LOCATION_PATH) ||
                  gw_coap_opt_find(resp, GW_OPT_LOCATION_QUERY))) {
        gw_rcache_invalidate(&c->rcache, res_hash);
        sch_cache_invalidate(c->cache, res_hash);
    }
    size_t len;
    uint8_t out[GW_COAP_MAX_MSG + 64];
    if (sch_core_build_answer(&t->env, resp, -1, -1, out, sizeof(out), &len) != 0 ||
        len > sizeof(t->data)) {
        sch_core_finish_error(c, idx, GW_COAP_BAD_GATEWAY, "device answer too large to relay");
        return;
    }
    memcpy(t->data, out, len);
    t->data_len = (uint16_t)len;
    t->answer_flags = 0;
    finish(c, idx);
}

static void on_mesh(struct sch_core *c, const struct gw_msg *rx, const uint8_t *data)
{
    uint8_t ver, type;
    uint16_t mid;
    if (!gw_coap_peek(data, rx->len, &ver, &type, &mid) || ver != 1)
        return;
    struct sch_dev *d = dev_get(c, rx->mac, false);
    struct gw_coap_msg r;
    if (gw_coap_parse(c->rx_parser, data, rx->len, &r) != 0) {
        /* S4.6: an answer the gateway cannot process gives 5.02. */
        int idx =
            (d && type == GW_COAP_ACK) ? find_active(c, d, rx->security, true, mid, NULL, 0) : -1;
        if (idx >= 0)
            sch_core_finish_error(c, (uint32_t)idx, GW_COAP_BAD_GATEWAY,
                                  "device answer could not be parsed");
        else if (type == GW_COAP_CON)
            mesh_reply_empty(c, rx, GW_COAP_RST, mid);
        return;
    }
    if (r.type == GW_COAP_ACK || r.type == GW_COAP_RST) {
        int idx = d ? find_active(c, d, rx->security, true, r.mid, NULL, 0) : -1;
        if (idx < 0)
            return;
        struct sch_txn *t = sch_txn_at(c, (uint32_t)idx);
        if (r.type == GW_COAP_RST) {
            if (t->kind != SCH_TK_CLIENT)
                sch_obs_on_failure(c, (uint32_t)idx, GW_COAP_BAD_GATEWAY,
                                   "device reset the request");
            else
                sch_core_finish_error(c, (uint32_t)idx, GW_COAP_BAD_GATEWAY,
                                      "device reset the request (RST)");
            return;
        }
        if (r.code == GW_COAP_EMPTY) {
            if (tstate(t) == SCH_TXN_SENT) {
                /* S4.4: stop retransmitting; wait for the separate response. */
                set_state(t, SCH_TXN_ACKED);
                if (!t->milli) {
                    uint64_t wait = (uint64_t)c->cfg.mesh_ack_timeout_ms *
                                    ((1u << c->cfg.mesh_max_transmit) - 1) * 3 / 2;
                    t->deadline = t->first_sent + wait;
                    gen_bump(c, (uint32_t)idx);
                    arm(c, (uint32_t)idx);
                }
            }
            return;
        }
        if (r.tkl != 8 || memcmp(r.token, t->dev_token, 8) != 0) {
            sch_core_finish_error(c, (uint32_t)idx, GW_COAP_BAD_GATEWAY,
                                  "device answered with a wrong token");
            return;
        }
        on_answer(c, (uint32_t)idx, &r);
        return;
    }
    /* CON or NON from the device. */
    if (r.code == GW_COAP_EMPTY) {
        if (r.type == GW_COAP_CON)
            mesh_reply_empty(c, rx, GW_COAP_RST, r.mid);
        return;
    }
    if ((r.code >> 5) == 0)
        return; /* requests from devices are not served */
    if ((r.code >> 5) != 2 && (r.code >> 5) != 4 && (r.code >> 5) != 5) {
        /* Reserved classes 1, 6, 7: a transaction it answers ends in 5.02
         * (on_answer); anything else is rejected, never relayed to observers. */
        int bad = d ? find_active(c, d, rx->security, false, 0, r.token, r.tkl) : -1;
        if (r.type == GW_COAP_CON)
            mesh_reply_empty(c, rx, GW_COAP_RST, r.mid);
        if (bad >= 0)
            on_answer(c, (uint32_t)bad, &r);
        return;
    }
    int idx = d ? find_active(c, d, rx->security, false, 0, r.token, r.tkl) : -1;
    if (idx >= 0) {
        if (r.type == GW_COAP_CON)
            mesh_reply_empty(c, rx, GW_COAP_ACK, r.mid);
        on_answer(c, (uint32_t)idx, &r);
        return;
    }
    if (sch_obs_on_notification(c, rx, &r)) {
        if (r.type == GW_COAP_CON)
            mesh_reply_empty(c, rx, GW_COAP_ACK, r.mid);
        return;
    }
    /* Nobody wants it: RST tells an observing device to stop (RFC 7641 3.6). */
    if (r.type == GW_COAP_CON || gw_coap_opt_find(&r, GW_OPT_OBSERVE))
        mesh_reply_empty(c, rx, GW_COAP_RST, r.mid);
}

/* S10.4: a datagram from peer node rx->aux, answering a forwarded request
 * or notifying a forwarded observation. It is attributed to its device (ACK
 * and RST by MID, responses by device token, then by observation) and goes
 * the way of any device's datagram; the empty ACK or RST on_mesh sends back
 * reaches the owner through meshio as well. A CON or NON nobody wants gets
 * RST (a notification for an observation we ended: the owner drops us). */
static void on_peer(struct sch_core *c, const struct gw_msg *rx, const uint8_t *data)
{
    uint8_t ver, type;
    uint16_t mid;
    uint32_t node = rx->aux;
    if (!gw_coap_peek(data, rx->len, &ver, &type, &mid) || ver != 1 || node >= c->node_count ||
        node == c->node_self)
        return;
    struct gw_msg a = *rx;
    a.flags = (uint8_t)(a.flags & ~GW_MF_PEER);
    uint8_t tkl = data[0] & 0x0f;
    const uint8_t *tok = tkl == 8 && rx->len >= 12 ? data + 4 : NULL;
    int idx = -1;
    if (type == GW_COAP_ACK || type == GW_COAP_RST)
        idx =
            (int)(uintptr_t)gw_map_get_ptr(&c->peer_by_mid, peer_mid_key(node, rx->security, mid)) -
            1;
    else if (tok)
        idx = (int)(uintptr_t)gw_map_get_ptr(&c->peer_by_tok, peer_tok_key(tok)) - 1;
    if (idx >= 0) {
        struct sch_txn *t = sch_txn_at(c, (uint32_t)idx);
        struct sch_dev *d = dev_get(c, t->env.mac, false);
        uint32_t s = tstate(t);
        if (d && d->remote && d->owner == node && (s == SCH_TXN_SENT || s == SCH_TXN_ACKED)) {
            memcpy(a.mac, t->env.mac, GW_MAC_LEN);
            on_mesh(c, &a, data);
            return;
        }
    }
    uint8_t sec;
    if (type != GW_COAP_ACK && type != GW_COAP_RST && tok &&
        sch_obs_device_of(c, tok, a.mac, &sec) && sec == rx->security &&
        gw_nodes_owner(a.mac, c->node_count) == node) {
        on_mesh(c, &a, data);
        return;
    }
    if (type == GW_COAP_CON || (type == GW_COAP_NON && data[1] != GW_COAP_EMPTY)) {
        uint8_t b[4] = { (uint8_t)(0x40 | GW_COAP_RST << 4), 0, (uint8_t)(mid >> 8), (uint8_t)mid };
        struct gw_msg m;
        static const uint8_t zero[GW_MAC_LEN];
        gw_msg_mesh_tx(&m, rx->security, zero, GW_MF_PEER, 0, sizeof(b));
        m.aux = node;
        c->out.to_mesh(c->out.ctx, &m, b);
    }
}

void sch_core_on_record(struct sch_core *c, const struct gw_msg *env, const uint8_t *data)
{
    switch (env->kind) {
    case GW_MSG_REQ:
        on_request(c, env, data);
        c->memo_env = NULL; /* env lives only for this call */
        break;
    case GW_MSG_MESH_RX:
        if (env->flags & GW_MF_PEER)
            on_peer(c, env, data);
        else
            on_mesh(c, env, data);
        break;
    case GW_MSG_OBS_GONE:
        sch_obs_on_gone(c, &env->ep, env->token, env->tkl);
        break;
    case GW_MSG_SESSION_END:
        sch_obs_on_session_end(c, env->session);
        break;
    case GW_MSG_SESSION_MOVED:
        sch_obs_on_session_moved(c, env->session, &env->ep);
        break;
    case GW_MSG_FE_START:
        on_fe_start(c, env->fe);
        break;
    case GW_MSG_ANSWER_DONE:
        on_answer_done(c, env);
        break;
    default:
        break;
    }
}

/* ---- timers ---- */

static void on_txn_timer(struct sch_core *c, uint32_t idx)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    uint32_t s = tstate(t);
    uint64_t now = now_ms(c);
    if (s == SCH_TXN_DELIVERED) {
        /* The client never ACKed within MAX_TRANSMIT_WAIT: its frontend gave up. */
        kept_release(c, idx);
        return;
    }
    if (s == SCH_TXN_SENT && !t->milli && t->attempts < c->cfg.mesh_max_transmit) {
        t->attempts++;
        t->timeout_ms *= 2;
        t->deadline = now + t->timeout_ms;
        if (send_to_device(c, t) != 0)
            gw_stat_add(c->stats, GW_STAT_ring_full, 1);
        gw_stat_add(c->stats, GW_STAT_mesh_retransmissions, 1);
        gen_bump(c, idx);
        arm(c, idx);
        return;
    }
    if (s == SCH_TXN_SENT || s == SCH_TXN_ACKED) {
        gw_stat_add(c->stats, GW_STAT_mesh_timeouts, 1);
        const char *diag = t->milli ? "Milli device did not answer within the Milli timeout"
                                    : "device did not answer (all transmissions timed out)";
        if (t->kind != SCH_TK_CLIENT)
            sch_obs_on_failure(c, idx, GW_COAP_GATEWAY_TIMEOUT, diag);
        else
            sch_core_finish_error(c, idx, GW_COAP_GATEWAY_TIMEOUT, diag);
    }
}

uint64_t sch_core_on_timer(struct sch_core *c)
{
    uint64_t now = now_ms(c);
    struct gw_heap_item it;
    for (int n = 0; n < 100000 && gw_heap_peek(&c->heap, &it) && it.deadline <= now; n++) {
        gw_heap_pop(&c->heap, &it);
        if (it.id >= obs_timer_id(c, 0)) {
            sch_obs_on_timer(c, it.id - obs_timer_id(c, 0), it.gen, now);
            continue;
        }
        if (!timer_live(&it, c))
            continue;
        on_txn_timer(c, it.id);
    }
    if (c->pending_answers)
        sch_core_flush(c);
    /* Drop cancelled timers at the top so they never wake the loop. */
    while (gw_heap_peek(&c->heap, &it)) {
        if (timer_live(&it, c))
            return it.deadline;
        gw_heap_pop(&c->heap, &it);
    }
    return UINT64_MAX;
}

void sch_core_flush(struct sch_core *c)
{
    if (!c->pending_answers)
        return;
    c->pending_answers = 0;
    for (uint32_t i = 0; i < c->max_txn; i++) {
        struct sch_txn *t = sch_txn_at(c, i);
        uint32_t st = tstate(t);
        if (st == SCH_TXN_DELIVERED && t->repush) {
            GW_IGNORE(repush(c, i));
            continue;
        }
        if (st != SCH_TXN_ANSWERED)
            continue;
        if (!t->has_client) {
            txn_release(c, i);
            continue;
        }
        /* A predecessor killed while writing the answer leaves something
         * that is not an answer for this client: say so instead (S1.3). */
        if (t->data_len < 4 || t->data_len > sizeof(t->data) ||
            ((t->data[1] >> 5) != 2 && (t->data[1] >> 5) != 4 && (t->data[1] >> 5) != 5) ||
            (t->data[0] & 15) != t->env.tkl || memcmp(t->data + 4, t->env.token, t->env.tkl) != 0) {
            size_t len = 0;
            if (sch_core_error_bytes(&t->env, GW_COAP_BAD_GATEWAY,
                                     "answer lost in a scheduler restart", UINT32_MAX, t->data,
                                     sizeof(t->data), &len) != 0)
                len = 0;
            t->data_len = (uint16_t)len;
            t->answer_flags = 0;
        }
        if (hand_over(c, i) != 0)
            c->pending_answers++;
    }
}

/* ---- set-up and recovery ---- */

static int cmp_arrival(const void *a, const void *b, void *ctx)
{
    struct sch_core *c = ctx;
    uint64_t x = sch_txn_at(c, *(const uint32_t *)a)->arrival,
             y = sch_txn_at(c, *(const uint32_t *)b)->arrival;
    return x < y ? -1 : x > y;
}

/* Rebuilds per-device queues and timers from a table a previous scheduler
 * left behind (S1.3): in-flight exchanges keep their MID, token and
 * deadlines, so late device answers still match; queued ones keep order. */
static void recover(struct sch_core *c)
{
    uint32_t *order = malloc(sizeof(uint32_t) * c->max_txn);
    uint32_t n = 0;
    uint64_t max_arrival = 0;
    c->nfree = 0;
    for (uint32_t i = c->max_txn; i-- > 0;) {
        struct sch_txn *t = sch_txn_at(c, i);
        uint32_t s = tstate(t);
        c->anext[i] = c->qnext[i] = -1;
        if (s == SCH_TXN_FREE || s > SCH_TXN_DELIVERED) {
            if (s != SCH_TXN_FREE)
                set_state(t, SCH_TXN_FREE);
            c->freelist[c->nfree++] = i;
            /* A finished exchange keeps its device and MID in the slot: a
             * successor continues each device's MIDs after the ones used
             * in the last EXCHANGE_LIFETIME (see mid_floor). */
            uint64_t now = now_ms(c);
            if (s == SCH_TXN_FREE && t->first_sent &&
                now - t->first_sent < (uint64_t)c->cfg.exchange_lifetime_ms) {
                struct sch_dev *d = dev_get(c, t->env.mac, true);
                if (d && d->remote)
                    peer_mid_seen(c, d, t->dev_mid);
                else if (d && (int16_t)(uint16_t)(t->dev_mid + 1 - d->next_mid) > 0)
                    d->next_mid = (uint16_t)(t->dev_mid + 1);
            }
            continue;
        }
        if (order)
            order[n++] = i;
        if (t->arrival > max_arrival)
            max_arrival = t->arrival;
    }
    c->next_arrival = max_arrival + 1;
    if (!order)
        return;
    qsort_r(order, n, sizeof(uint32_t), cmp_arrival, c);
    uint32_t resumed = 0;
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = order[k];
        struct sch_txn *t = sch_txn_at(c, i);
        uint32_t s = tstate(t);
        /* The copies of this request a frontend forwards are known. */
        req_index(c, i);
        if (c->slot_req_key[i])
            GW_IGNORE(seen_recently(c, c->slot_req_key[i]));
        if (s == SCH_TXN_ANSWERED) {
            c->pending_answers++;
            continue;
        }
        if (s == SCH_TXN_DELIVERED) {
            /* Kept until its client ACKs: indexed again, its deadline re-armed. */
            kept_index(c, i);
            uint64_t now = now_ms(c);
            struct sch_dev *kd =
                t->first_sent && now - t->first_sent < (uint64_t)c->cfg.exchange_lifetime_ms
                    ? dev_get(c, t->env.mac, true)
                    : NULL;
            if (kd && kd->remote)
                peer_mid_seen(c, kd, t->dev_mid);
            else if (kd && (int16_t)(uint16_t)(t->dev_mid + 1 - kd->next_mid) > 0)
                kd->next_mid = (uint16_t)(t->dev_mid + 1); /* see mid_floor */
            if (t->repush)
                c->pending_answers++;
            arm(c, i);
            continue;
        }
        struct sch_dev *d = dev_get(c, t->env.mac, true);
        if (!d) {
            req_unindex(c, i);
            set_state(t, SCH_TXN_FREE);
            c->freelist[c->nfree++] = i;
            continue;
        }
        d->milli = t->milli;
        if (s != SCH_TXN_QUEUED && d->remote)
            peer_mid_seen(c, d, t->dev_mid);
        else if (s != SCH_TXN_QUEUED && (int16_t)(uint16_t)(t->dev_mid + 1 - d->next_mid) > 0)
            d->next_mid = (uint16_t)(t->dev_mid + 1);
        if (s == SCH_TXN_QUEUED) {
            if (d->qtail >= 0)
                c->qnext[d->qtail] = (int32_t)i;
            else
                d->qhead = (int32_t)i;
            d->qtail = (int32_t)i;
            d->qlen++;
        } else {
            c->anext[i] = d->active;
            d->active = (int32_t)i;
            d->inflight++;
            if (d->remote)
                peer_index(c, d, i); /* a peer's late answer still finds it */
            arm(c, i);
        }
        resumed++;
    }
    free(order);
    /* Devices with room send their queued requests now. */
    for (uint32_t i = 0; i <= c->devs.mask; i++)
        if (c->devs.slot[i].key)
            pump(c, (struct sch_dev *)(uintptr_t)c->devs.slot[i].val);
    if (resumed || c->pending_answers)
        gw_log_info(GW_LOG_SYS,
                    "resumed %u transactions and %u pending answers from the shared table", resumed,
                    c->pending_answers);
    sch_core_flush(c);
}

int sch_core_new(const struct gw_config *cfg, const struct gw_clock *clock,
                 const struct sch_out *out, void *txns, uint32_t max_txn, size_t slot_size,
                 struct gw_store *store, struct gw_stats *stats, struct sch_core **core)
{
    if (slot_size < sizeof(struct sch_txn))
        return GW_ELAYOUT;
    struct sch_core *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->cfg = *cfg;
    c->clock = clock;
    c->out = *out;
    gw_hash_key_new(c->hkey); /* before any key is made: the rebuild at attach uses it */
    c->txns = txns;
    c->max_txn = max_txn;
    c->slot_size = slot_size;
    c->store = store;
    c->stats = stats;
    c->node_self = (uint32_t)cfg->node_id;
    c->node_count =
        cfg->node_count > 1 && cfg->node_count <= GW_NODES_MAX ? (uint32_t)cfg->node_count : 1;
    for (uint32_t i = 0; i < GW_NODES_MAX; i++)
        c->peer_mid[i] = (uint16_t)(mid_floor(now_ms(c)) & ~1u);
    c->gen = calloc(max_txn, sizeof(uint32_t));
    c->freelist = calloc(max_txn, sizeof(uint32_t));
    c->qnext = calloc(max_txn, sizeof(int32_t));
    c->anext = calloc(max_txn, sizeof(int32_t));
    struct sch_cache_cfg ccfg = { (size_t)GW_MAX(1, cfg->cache_max_entries),
                                  (size_t)GW_MAX(1, cfg->cache_max_bytes),
                                  (uint32_t)cfg->default_max_age_s };
    int rc = -ENOMEM;
    if (!c->gen || !c->freelist || !c->qnext || !c->anext ||
        gw_heap_init_growing(&c->heap, 1024, max_txn * 4 + 1024) != 0 ||
        gw_map_init(&c->devs, 512, GW_MAP_MAX) != 0 || gw_coap_parser_new(&c->rx_parser) != 0 ||
        gw_coap_parser_new(&c->stored_req_parser) != 0 || gw_coap_parser_new(&c->obs_parser) != 0)
        goto fail;
    if ((rc = sch_cache_new(&ccfg, &c->cache)) != 0)
        goto fail;
    c->cache_enabled = cfg->cache_max_entries > 0 && cfg->cache_max_bytes > 0;
    if ((rc = pool_refill(c)) != 0) {
        gw_log_err(GW_LOG_SYS, "no random bytes for device tokens: %s", gw_strerror(rc));
        goto fail;
    }
    c->recent_cap = max_txn * 2;
    c->recent_keys = calloc(c->recent_cap, sizeof(uint64_t));
    c->recent_at = calloc(c->recent_cap, sizeof(uint64_t));
    /* These three start small and double with use: sized for max_txn at
     * once (512, 256 and 128 KiB at the default), a few thousand random
     * keys touch every page of them, which was 180 B of resident memory per
     * observer while 5 000 registered (issue 13 item 4). A failed growth
     * only forgets a request copy's key, as when the table was full. */
    c->slot_req_key = calloc(max_txn, sizeof(uint64_t));
    c->slot_kept_key = calloc(max_txn, sizeof(uint64_t));
    if (!c->recent_keys || !c->recent_at || !c->slot_req_key || !c->slot_kept_key ||
        gw_idx_init(&c->recent, GW_MIN(c->recent_cap, 256u)) != 0 ||
        gw_map_init(&c->delivered, GW_MIN(max_txn / 2, 256u), GW_MAP_MAX) != 0 ||
        gw_map_init(&c->by_req, GW_MIN(max_txn, 256u), GW_MAP_MAX) != 0 ||
        gw_map_init(&c->peer_by_mid, 32, GW_MAP_MAX) != 0 ||
        gw_map_init(&c->peer_by_tok, 32, GW_MAP_MAX) != 0) {
        rc = -ENOMEM;
        goto fail;
    }
    if ((rc = sch_obs_init(c)) != 0)
        goto fail;
    recover(c);
    *core = c;
    return 0;
fail:
    sch_core_free(c);
    return rc;
}

int sch_core_to_client(struct sch_core *c, struct gw_msg *env, const uint8_t *data)
{
    return c->out.to_client(c->out.ctx, env, data);
}

void sch_core_cache_store(struct sch_core *c, const uint8_t *key, size_t klen, uint64_t res_hash,
                          const struct gw_coap_msg *resp, uint64_t now)
{
    if (!c->cache_enabled)
        return;
    GW_IGNORE(sch_cache_put(c->cache, key, klen, res_hash, resp, now));
    sch__mirror_sync(c, key, klen, res_hash);
}

void sch__mirror_sync(struct sch_core *c, const uint8_t *key, size_t klen, uint64_t res_hash)
{
    if (!c->rcache.nslots)
        return;
    struct sch_cache_hit hit;
    if (sch_cache_peek(c->cache, key, klen, &hit) == 0)
        GW_IGNORE(gw_rcache_store(&c->rcache, key, klen, res_hash, hit.resp, hit.resp_len,
                                  hit.expires_ms));
    else
        gw_rcache_remove(&c->rcache, key, klen, res_hash);
}

void sch_core_set_rcache(struct sch_core *c, const struct gw_rcache *t)
{
    c->rcache = *t;
    /* What a predecessor left there is not ours to vouch for: it may hold an
     * entry it was about to invalidate, or a slot it died writing (odd). */
    gw_rcache_clear_all(&c->rcache);
}

void sch_core_free(struct sch_core *c)
{
    if (!c)
        return;
    sch_obs_deinit(c);
    if (c->devs.slot)
        for (uint32_t i = 0; i <= c->devs.mask; i++)
            if (c->devs.slot[i].key)
                free((struct sch_dev *)(uintptr_t)c->devs.slot[i].val);
    gw_map_deinit(&c->devs);
    gw_idx_deinit(&c->recent);
    gw_map_deinit(&c->delivered);
    gw_map_deinit(&c->by_req);
    free(c->slot_req_key);
    free(c->slot_kept_key);
    gw_map_deinit(&c->peer_by_mid);
    gw_map_deinit(&c->peer_by_tok);
    free(c->recent_keys);
    free(c->recent_at);
    gw_heap_deinit(&c->heap);
    sch_cache_free(c->cache);
    gw_coap_parser_free(c->rx_parser);
    gw_coap_parser_free(c->stored_req_parser);
    gw_coap_parser_free(c->obs_parser);
    free(c->gen);
    free(c->freelist);
    free(c->qnext);
    free(c->anext);
    free(c);
}

void sch_core_counts(const struct sch_core *c, struct sch_core_counts *o)
{
    memset(o, 0, sizeof(*o));
    o->txns = c->max_txn - c->nfree;
    for (uint32_t i = 0; i <= c->devs.mask; i++)
        if (c->devs.slot[i].key) {
            const struct sch_dev *d = (struct sch_dev *)(uintptr_t)c->devs.slot[i].val;
            o->queued += d->qlen;
            o->inflight += d->inflight;
        }
    sch_obs_counts(c, &o->observations, &o->observers);
    if (c->cache) {
        struct sch_cache_stats cs;
        sch_cache_stats(c->cache, &cs);
        o->cache_entries = cs.entries;
    }
}
