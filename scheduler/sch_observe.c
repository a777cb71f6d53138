/* SPDX-License-Identifier: MIT */
/* sch_observe.c - observe through the gateway (SPEC S6, RFC 7641 section 5).
 *
 * All observers of one Cache-Key share ONE observation at the device, under
 * a token of the gateway's own. Each new observer makes the gateway re-send
 * the observe GET (S6.2); every answer and notification is fanned out to
 * every observer with its own token and a gateway Observe number that only
 * grows (S6.3): one counter per observation, reserved ahead in LMDB in
 * blocks, so a restarted scheduler never repeats a number. Device
 * notifications older than the last (RFC 7641 3.4) are dropped (S6.8).
 * When the last observer leaves, the gateway deregisters with a GET carrying
 * Observe: 1 (S6.4). A state whose Max-Age passed without a new one makes the
 * gateway re-register (S6.5).
 *
 * LMDB `observe` database (S6.6):
 *   'o' id(8)                       -> struct obs_rec (device, template, reserved number)
 *   'v' id(8) ep(20) tkl(1) tok(8)  -> struct obs_observer
 * Observers are written when they join and leave (requests, not the
 * notification path); the number reservation once per SCH_OBS_NUM_BLOCK. */
#include "sch_int.h"
#include "gw_text.h"
#include "gw_error.h"
#include "gw_log.h"

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define SCH_OBS_NUM_BLOCK 4096u
#define OBS_NUM_MASK 0xffffffu

struct obs_observer {
    struct gw_ep ep;
    uint8_t token[8];
    uint8_t tkl;
    uint8_t fe;
    uint8_t client_type;
    uint8_t security;
    uint64_t session;
    uint64_t req_id;
};

struct obs_rec {
    uint64_t id;
    uint8_t mac[GW_MAC_LEN];
    uint8_t security;
    uint8_t pad[3];
    uint32_t reserved;
    uint16_t req_len;
    uint8_t req[GW_COAP_MAX_MSG + 16];
};

struct sch_obs {
    uint64_t id;
    uint8_t mac[GW_MAC_LEN];
    uint8_t security;
    bool established;
    bool have_v;
    uint32_t slot, gen;
    uint32_t next_num, reserved;
    uint32_t dev_v;
    uint64_t dev_t;
    uint64_t state_time;
    uint64_t stale_at; /* when the state goes stale (S6.5) */
    uint64_t armed_at; /* deadline of this observation's one heap item, 0 = none */
    uint32_t max_age;
    uint64_t key_hash;
    size_t klen;
    uint64_t res_hash;
    uint16_t req_len;
    struct obs_observer *v;
    uint32_t n, cap;
    /* The Cache-Key (klen bytes) and the stored request (req_len bytes), in
     * the allocation's tail. A probe (obs_probe_new) has room for the
     * largest of both; an observation that stays is moved into an
     * allocation of its own sizes (obs_fit): at the largest, 2 696 B each
     * were 17 of the scheduler's bytes per observer with 5 000 observers on
     * 32 resources (issue 13 item 4). */
    uint8_t *key, *req;
    uint8_t tail[];
};

#define OBS_REQ_MAX (GW_COAP_MAX_MSG + 16)

/* An observation with room for any key and request, zeroed; NULL when out
 * of memory. */
static struct sch_obs *obs_probe_new(void)
{
    struct sch_obs *o = calloc(1, sizeof(*o) + SCH_CACHE_KEY_MAX + OBS_REQ_MAX);
    if (o) {
        o->key = o->tail;
        o->req = o->tail + SCH_CACHE_KEY_MAX;
    }
    return o;
}

/* Probe p, keyed (compute_key), moved into an allocation of its own key and
 * request sizes; p is freed. Out of memory: p itself (larger, as good). */
static struct sch_obs *obs_fit(struct sch_obs *p)
{
    struct sch_obs *o = malloc(sizeof(*o) + p->klen + p->req_len);
    if (!o)
        return p;
    memcpy(o, p, sizeof(*o));
    o->key = o->tail;
    o->req = o->tail + p->klen;
    memcpy(o->key, p->key, p->klen);
    memcpy(o->req, p->req, p->req_len);
    free(p);
    return o;
}

/* Which observation holds an observer, by observer_key(endpoint, token):
 * a gw_idx of 4-byte link numbers over links that keep the key and the
 * observation's slot in tab (12 bytes a link, 18 with the registration
 * below), instead of a gw_map whose
 * 16-byte slots, 2 to 4 per observer, were 52 of the scheduler's 240 bytes
 * per observer at 5 000 (issue 13 item 4). A freed link's `slot` chains
 * the free links. */
struct obs_links {
    struct gw_idx idx;
    uint64_t *key;
    uint32_t *slot;
    /* The observer's last registration (S3.3): its MID, and when it was
     * taken, in seconds of the scheduler's clock rounded up (0: none, as
     * for observers loaded from LMDB, whose copies the frontend that took
     * them still catches). While an observer is linked, a copy of its
     * registration is recognised here instead of by a `recent` record (16 B
     * in the FIFO and its index slots per observer, issue 13 item 4); the
     * registration goes to `recent` when the observer leaves or registers
     * again within its exchange lifetime (link_hand_over). 6 B a link. */
    uint16_t *reg_mid;
    uint32_t *reg_s;
    uint32_t cap, free_head;
};

struct sch_obs_reg {
    struct gw_map by_id, by_key;
    struct obs_links by_observer;
    struct gw_map
        by_session; /* session -> observers it holds (as a uintptr_t), obs_max_per_session */
    struct sch_obs **tab;
    uint32_t tab_cap;
    uint32_t nobs, nobservers;
};

static uint64_t now_ms(struct sch_core *c)
{
    return gw_now_ms(c->clock);
}

static uint64_t observer_key(const struct sch_core *c, const struct gw_ep *ep, const uint8_t *tok,
                             uint8_t tkl)
{
    return sch_client_key(c, ep, -1, tok, tkl);
}

#define LINK_NONE UINT32_MAX

static uint32_t link_find(const struct obs_links *l, uint64_t key)
{
    uint32_t pos;
    return gw_idx_first(&l->idx, l->key, key, &pos);
}

/* The observation the observer with key is linked to, or NULL. */
static struct sch_obs *observer_obs(const struct sch_obs_reg *r, uint64_t key)
{
    uint32_t v = link_find(&r->by_observer, key);
    if (v == GW_IDX_END || r->by_observer.slot[v] >= r->tab_cap)
        return NULL;
    return r->tab[r->by_observer.slot[v]];
}

/* The time a link's reg_s stands for, in ms: at or after the registration
 * (rounded up), so the lifetime counted from it is never shorter. */
static uint64_t reg_ms(uint32_t reg_s)
{
    return (uint64_t)reg_s * 1000u;
}

/* Link v's registration, if it has one, goes to `recent` for what is left
 * of its exchange lifetime (the observer leaves, or registers again). */
static void link_hand_over(struct sch_core *c, uint32_t v, const struct gw_ep *ep,
                           const uint8_t *tok, uint8_t tkl)
{
    struct obs_links *l = &c->obs->by_observer;
    if (l->reg_s[v])
        sch_core_remember_request(c, ep, l->reg_mid[v], tok, tkl, reg_ms(l->reg_s[v]));
    l->reg_s[v] = 0;
}

/* Links the observer with key to o, replacing its link if it has one
 * (which keeps its registration: see observer_took). */
static int observer_link(struct sch_obs_reg *r, uint64_t key, const struct sch_obs *o)
{
    struct obs_links *l = &r->by_observer;
    uint32_t v = link_find(l, key);
    if (v != GW_IDX_END) {
        l->slot[v] = o->slot;
        return 0;
    }
    if (l->free_head == LINK_NONE) {
        /* A quarter more, as the observer arrays (observers_room). Each
         * array that grew is kept; cap moves once all four did. */
        uint64_t nc = l->cap < 32 ? 32 : (uint64_t)l->cap + l->cap / 4;
        if (nc >= LINK_NONE - 1)
            return -ENOMEM;
        uint64_t *k = realloc(l->key, (size_t)nc * sizeof(*k));
        if (k)
            l->key = k;
        uint32_t *sl = k ? realloc(l->slot, (size_t)nc * sizeof(*sl)) : NULL;
        if (sl)
            l->slot = sl;
        uint16_t *rm = sl ? realloc(l->reg_mid, (size_t)nc * sizeof(*rm)) : NULL;
        if (rm)
            l->reg_mid = rm;
        uint32_t *rs = rm ? realloc(l->reg_s, (size_t)nc * sizeof(*rs)) : NULL;
        if (!rs)
            return -ENOMEM;
        l->reg_s = rs;
        for (uint32_t i = (uint32_t)nc; i-- > l->cap;) {
            l->slot[i] = l->free_head;
            l->free_head = i;
        }
        l->cap = (uint32_t)nc;
    }
    v = l->free_head;
    l->key[v] = key;
    if (gw_idx_add(&l->idx, l->key, v) != 0)
        return -ENOMEM;
    l->free_head = l->slot[v];
    l->slot[v] = o->slot;
    l->reg_s[v] = 0;
    return 0;
}

/* Observer ov leaves: its link goes, and the registration it held to
 * `recent`. */
static void observer_unlink(struct sch_core *c, const struct obs_observer *ov)
{
    struct obs_links *l = &c->obs->by_observer;
    uint32_t v = link_find(l, observer_key(c, &ov->ep, ov->token, ov->tkl));
    if (v == GW_IDX_END)
        return;
    link_hand_over(c, v, &ov->ep, ov->token, ov->tkl);
    GW_IGNORE(gw_idx_del(&l->idx, l->key, v));
    l->slot[v] = l->free_head;
    l->free_head = v;
}

/* The observer env->(ep, token) took registration env: its link holds it
 * from now on, and the one it held before goes to `recent`. */
static void observer_took(struct sch_core *c, uint64_t key, const struct gw_msg *env)
{
    struct obs_links *l = &c->obs->by_observer;
    uint32_t v = link_find(l, key);
    if (v == GW_IDX_END || env->client_type != GW_COAP_CON)
        return; /* not linked (out of memory): `recent` takes it (on_request) */
    link_hand_over(c, v, &env->ep, env->token, env->tkl);
    l->reg_mid[v] = env->client_mid;
    l->reg_s[v] = (uint32_t)(now_ms(c) / 1000u + 1u);
}

bool sch_obs_holds_request(const struct sch_core *c, const struct gw_msg *env)
{
    const struct obs_links *l = &c->obs->by_observer;
    uint32_t v = link_find(l, observer_key(c, &env->ep, env->token, env->tkl));
    return v != GW_IDX_END && l->reg_s[v] && l->reg_mid[v] == env->client_mid &&
           gw_now_ms(c->clock) < reg_ms(l->reg_s[v]) + (uint64_t)c->cfg.exchange_lifetime_ms;
}

static uint64_t id_of(const uint8_t tok[8])
{
    uint64_t v;
    memcpy(&v, tok, 8);
    return gw_map_key_nz(v);
}

/* ---- persistence ---- */

static void put_kv(struct sch_core *c, const void *k, size_t kl, const void *v, size_t vl)
{
    if (!c->store)
        return;
    MDB_txn *txn;
    if (gw_store_wbegin(c->store, &txn) != 0)
        return;
    MDB_val mk = { kl, (void *)k }, mv = { vl, (void *)v };
    if (mdb_put(txn, c->store->observe, &mk, &mv, 0) != 0 || mdb_txn_commit(txn) != 0) {
        gw_log_warn(GW_LOG_STORE, "observe registry write failed");
        return;
    }
}

static void del_prefix(struct sch_core *c, const uint8_t *prefix, size_t pl)
{
    if (!c->store)
        return;
    MDB_txn *txn;
    if (gw_store_wbegin(c->store, &txn) != 0)
        return;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->store->observe, &cur) != 0) {
        mdb_txn_abort(txn);
        return;
    }
    MDB_val k = { pl, (void *)prefix }, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (int n = 0; rc == 0 && n < 1000000; n++) {
        if (k.mv_size < pl || memcmp(k.mv_data, prefix, pl) != 0)
            break;
        mdb_cursor_del(cur, 0);
        rc = mdb_cursor_get(cur, &k, &v, MDB_GET_CURRENT);
        if (rc == 0 && k.mv_size >= pl && memcmp(k.mv_data, prefix, pl) == 0)
            continue;
        rc = mdb_cursor_get(cur, &k, &v, rc == 0 ? MDB_NEXT : MDB_SET_RANGE);
    }
    mdb_cursor_close(cur);
    if (mdb_txn_commit(txn) != 0)
        gw_log_warn(GW_LOG_STORE, "observe registry delete failed");
}

static void persist_obs(struct sch_core *c, struct sch_obs *o)
{
    struct obs_rec r;
    memset(&r, 0, sizeof(r));
    r.id = o->id;
    memcpy(r.mac, o->mac, GW_MAC_LEN);
    r.security = o->security;
    r.reserved = o->reserved;
    r.req_len = o->req_len;
    memcpy(r.req, o->req, o->req_len);
    uint8_t k[9] = { 'o' };
    memcpy(k + 1, &o->id, 8);
    put_kv(c, k, sizeof(k), &r, offsetof(struct obs_rec, req) + r.req_len);
}

static size_t observer_kv(const struct sch_obs *o, const struct obs_observer *v, uint8_t k[38])
{
    k[0] = 'v';
    memcpy(k + 1, &o->id, 8);
    memcpy(k + 9, &v->ep, sizeof(v->ep));
    k[29] = v->tkl;
    memset(k + 30, 0, 8);
    memcpy(k + 30, v->token, v->tkl);
    return 38;
}

static void persist_observer(struct sch_core *c, const struct sch_obs *o,
                             const struct obs_observer *v)
{
    uint8_t k[38];
    put_kv(c, k, observer_kv(o, v, k), v, sizeof(*v));
}

static void unpersist_observer(struct sch_core *c, const struct sch_obs *o,
                               const struct obs_observer *v)
{
    uint8_t k[38];
    del_prefix(c, k, observer_kv(o, v, k));
}

/* Next Observe number for clients; reserves a new block in LMDB first. */
static uint32_t take_num(struct sch_core *c, struct sch_obs *o)
{
    if (((o->next_num - o->reserved) & OBS_NUM_MASK) < 0x800000u || o->next_num == o->reserved) {
        o->reserved = (o->next_num + SCH_OBS_NUM_BLOCK) & OBS_NUM_MASK;
        persist_obs(c, o);
    }
    uint32_t n = o->next_num;
    o->next_num = (o->next_num + 1) & OBS_NUM_MASK;
    return n;
}

/* ---- registry ---- */

static int obs_index(struct sch_core *c, struct sch_obs *o)
{
    struct sch_obs_reg *r = c->obs;
    for (uint32_t i = 0; i < r->tab_cap; i++)
        if (!r->tab[i]) {
            r->tab[i] = o;
            o->slot = i;
            return 0;
        }
    uint32_t old = r->tab_cap;
    if (gw_grow32(&r->tab, &r->tab_cap, (size_t)old + 1, sizeof(*r->tab), 64) != 0)
        return -ENOMEM;
    memset(r->tab + old, 0, (r->tab_cap - old) * sizeof(*r->tab));
    o->slot = old;
    r->tab[old] = o;
    return 0;
}

static int obs_add_maps(struct sch_core *c, struct sch_obs *o)
{
    struct sch_obs_reg *r = c->obs;
    if (obs_index(c, o) != 0 || gw_map_put_ptr(&r->by_id, o->id, o) != 0 ||
        gw_map_put_ptr(&r->by_key, o->key_hash, o) != 0)
        return -ENOMEM;
    r->nobs++;
    gw_stat_set(c->stats, GW_STAT_observations, r->nobs);
    return 0;
}

static int compute_key(struct sch_core *c, struct sch_obs *o)
{
    struct gw_coap_msg m;
    if (gw_coap_parse(c->obs_parser, o->req, o->req_len, &m) != 0)
        return GW_EBADMSG;
    /* Only probes are keyed: their key has room for SCH_CACHE_KEY_MAX. */
    int rc =
        sch_cache_key(o->mac, o->security, &m, o->key, SCH_CACHE_KEY_MAX, &o->klen, &o->res_hash);
    if (rc == 0)
        o->key_hash = gw_map_key_nz(gw_hash64(o->key, o->klen, GW_HASH_SEED));
    return rc;
}

/* One heap item per observation: a later deadline leaves the armed item in
 * place and it re-arms itself when it fires early, so a busy observation
 * does not fill the heap with stale items (nor wake the scheduler for them). */
static void arm_stale(struct sch_core *c, struct sch_obs *o, uint64_t when)
{
    o->stale_at = when;
    if (o->armed_at && o->armed_at <= when)
        return;
    o->gen++;
    o->armed_at = when;
    sch_core_arm_obs(c, when, o->slot, o->gen);
}

bool sch_obs_item_live(const struct sch_core *c, uint32_t slot, uint32_t gen)
{
    const struct sch_obs_reg *r = c->obs;
    return r && slot < r->tab_cap && r->tab[slot] && r->tab[slot]->gen == gen;
}

/* Observers per session (issue #12 item 6): one session cannot fill the
 * observer table for everyone. */
static uint32_t session_observers(const struct sch_obs_reg *r, uint64_t session)
{
    return (uint32_t)(uintptr_t)gw_map_get_ptr(&r->by_session, gw_map_key_nz(session));
}

static void session_observers_add(struct sch_obs_reg *r, uint64_t session, int d)
{
    uint64_t k = gw_map_key_nz(session);
    uint32_t n = (uint32_t)(uintptr_t)gw_map_get_ptr(&r->by_session, k);
    n = d < 0 && n == 0 ? 0 : (uint32_t)((int64_t)n + d);
    if (n == 0)
        gw_map_del_ptr(&r->by_session, k);
    else if (gw_map_put_ptr(&r->by_session, k, (void *)(uintptr_t)n) != 0)
        gw_log_warn(GW_LOG_SYS, "out of memory counting a session's observers");
}

static void obs_free(struct sch_core *c, struct sch_obs *o, bool unpersist)
{
    struct sch_obs_reg *r = c->obs;
    for (uint32_t i = 0; i < o->n; i++) {
        observer_unlink(c, &o->v[i]);
        session_observers_add(r, o->v[i].session, -1);
    }
    r->nobservers -= o->n;
    gw_map_del_ptr(&r->by_id, o->id);
    if (gw_map_get_ptr(&r->by_key, o->key_hash) == o)
        gw_map_del_ptr(&r->by_key, o->key_hash);
    if (o->slot < r->tab_cap && r->tab[o->slot] == o)
        r->tab[o->slot] = NULL;
    r->nobs--;
    if (unpersist) {
        uint8_t k[9] = { 'o' };
        memcpy(k + 1, &o->id, 8);
        del_prefix(c, k, 9);
        k[0] = 'v';
        del_prefix(c, k, 9);
    }
    gw_stat_set(c->stats, GW_STAT_observations, r->nobs);
    gw_stat_set(c->stats, GW_STAT_observers, r->nobservers);
    free(o->v);
    free(o);
}

/* Room for one more observer: the array grows by a quarter, not double.
 * 5 000 observers on 32 resources sat in arrays of 256 for 156 each, 79
 * instead of 48 bytes per observer (issue 13 item 4); the copies a quarter
 * costs are amortised the same way (about 5 per item instead of 2). */
static int observers_room(struct sch_obs *o)
{
    if (o->n < o->cap)
        return 0;
    uint64_t c = o->cap < 8 ? 8 : (uint64_t)o->cap + o->cap / 4;
    if (c > UINT32_MAX / sizeof(*o->v))
        return -ENOMEM;
    struct obs_observer *v = realloc(o->v, (size_t)c * sizeof(*v));
    if (!v)
        return -ENOMEM;
    o->v = v;
    o->cap = (uint32_t)c;
    return 0;
}

/* After a removal: an array less than half used gives back the rest but a
 * quarter (a failed realloc keeps the larger array). */
static void observers_trim(struct sch_obs *o)
{
    if (o->cap <= 16 || o->n >= o->cap / 2)
        return;
    uint32_t c = GW_MAX(o->n + o->n / 4, 8u);
    struct obs_observer *v = realloc(o->v, (size_t)c * sizeof(*v));
    if (v) {
        o->v = v;
        o->cap = c;
    }
}

static int find_observer(const struct sch_obs *o, const struct gw_ep *ep, const uint8_t *tok,
                         uint8_t tkl)
{
    for (uint32_t i = 0; i < o->n; i++)
        if (o->v[i].tkl == tkl && !memcmp(o->v[i].token, tok, tkl) && gw_ep_eq(&o->v[i].ep, ep))
            return (int)i;
    return -1;
}

static int add_observer(struct sch_core *c, struct sch_obs *o, const struct gw_msg *env)
{
    struct sch_obs_reg *r = c->obs;
    struct obs_observer v;
    memset(&v, 0, sizeof(v));
    v.ep = env->ep;
    v.tkl = env->tkl;
    memcpy(v.token, env->token, env->tkl);
    v.fe = env->fe;
    v.client_type = env->client_type;
    v.security = env->security;
    v.session = env->session;
    v.req_id = env->req_id;
    uint64_t key = observer_key(c, &env->ep, env->token, env->tkl);
    int i = find_observer(o, &env->ep, env->token, env->tkl);
    if (i >= 0) {
        session_observers_add(r, o->v[i].session, -1);
        session_observers_add(r, v.session, 1);
        o->v[i] = v; /* S6.4: the same (endpoint, token) replaces, never duplicates */
    } else {
        /* An endpoint+token observing another resource moves here (RFC 7641 3.1). */
        struct sch_obs *other = observer_obs(r, key);
        if (other && other != o) {
            int j = find_observer(other, &env->ep, env->token, env->tkl);
            if (j >= 0) {
                unpersist_observer(c, other, &other->v[j]);
                session_observers_add(r, other->v[j].session, -1);
                other->v[j] = other->v[--other->n];
                r->nobservers--;
            }
        }
        if (session_observers(r, v.session) >= (uint32_t)c->cfg.obs_max_per_session)
            return GW_EFORBIDDEN;
        if (r->nobservers >= (uint32_t)c->cfg.obs_max_observers)
            return GW_EFULL;
        if (observers_room(o) != 0)
            return -ENOMEM;
        o->v[o->n++] = v;
        r->nobservers++;
        session_observers_add(r, v.session, 1);
        if (observer_link(r, key, o) != 0)
            return -ENOMEM;
    }
    observer_took(c, key, env);
    persist_observer(c, o, &v);
    gw_stat_set(c->stats, GW_STAT_observers, r->nobservers);
    return 0;
}

static void remove_observer(struct sch_core *c, struct sch_obs *o, uint32_t i)
{
    struct sch_obs_reg *r = c->obs;
    unpersist_observer(c, o, &o->v[i]);
    observer_unlink(c, &o->v[i]);
    session_observers_add(r, o->v[i].session, -1);
    o->v[i] = o->v[--o->n];
    r->nobservers--;
    gw_stat_set(c->stats, GW_STAT_observers, r->nobservers);
    observers_trim(o);
}

static void env_of(const struct sch_obs *o, const struct obs_observer *v, struct gw_msg *env)
{
    gw_msg_resp(env, o->security, o->mac, 0);
    gw_msg_set_client(env, v->fe, v->session, &v->ep, v->client_type, v->token, v->tkl, v->req_id);
}

/* The template with a given Observe value (0 register, 1 deregister). */
static int request_with_observe(struct sch_core *c, const struct sch_obs *o, uint32_t obsval,
                                uint8_t *out, size_t cap, size_t *len)
{
    struct gw_coap_msg m;
    if (gw_coap_parse(c->obs_parser, o->req, o->req_len, &m) != 0)
        return GW_EBADMSG;
    uint8_t v[4];
    size_t vl = gw_coap_uint_enc(obsval, v);
    bool found = false;
    for (unsigned i = 0; i < m.nopts; i++)
        if (m.opts[i].num == GW_OPT_OBSERVE) {
            m.opts[i].val = v;
            m.opts[i].len = (uint16_t)vl;
            found = true;
        }
    if (!found && m.nopts < GW_COAP_MAX_OPTS)
        m.opts[m.nopts++] = (struct gw_coap_opt){ GW_OPT_OBSERVE, (uint16_t)vl, v };
    return gw_coap_encode(&m, out, cap, len);
}

static void device_env(const struct sch_obs *o, struct gw_msg *env)
{
    gw_msg_req(env, o->security, o->mac, 0);
}

/* Sends the deregistration to the device on nobody's behalf and forgets
 * the observation (S6.4). */
static void cancel_internal(struct sch_core *c, struct sch_obs *o)
{
    uint8_t buf[GW_COAP_MAX_MSG + 16];
    size_t len;
    struct gw_msg env;
    device_env(o, &env);
    uint8_t tok[8];
    memcpy(tok, &o->id, 8);
    if (request_with_observe(c, o, 1, buf, sizeof(buf), &len) == 0)
        sch_core_submit(c, &env, buf, len, SCH_TK_OBS_CANCEL, false, o->id, tok);
    obs_free(c, o, true);
}

static bool reg_in_flight(struct sch_core *c, const struct sch_obs *o)
{
    return sch_core_obs_txn_live(c, SCH_TK_OBS_REG, o->id);
}

static int register_at_device(struct sch_core *c, struct sch_obs *o, const struct gw_msg *client,
                              bool plain)
{
    uint8_t buf[GW_COAP_MAX_MSG + 16];
    size_t len;
    if (request_with_observe(c, o, 0, buf, sizeof(buf), &len) != 0)
        return -1;
    struct gw_msg env;
    if (client)
        env = *client;
    else
        device_env(o, &env);
    uint8_t tok[8];
    memcpy(tok, &o->id, 8);
    int idx = sch_core_submit(c, &env, buf, len, SCH_TK_OBS_REG, client != NULL, o->id, tok);
    if (idx >= 0)
        sch_txn_at(c, (uint32_t)idx)->plain = plain;
    return idx;
}

/* ---- requests ---- */

void sch_obs_on_request(struct sch_core *c, const struct gw_msg *env, const uint8_t *data,
                        const struct gw_coap_msg *req)
{
    struct sch_obs_reg *r = c->obs;
    struct sch_obs *probe = obs_probe_new();
    if (!probe) {
        sch_core_answer_error(c, env, GW_COAP_UNAVAILABLE, "gateway out of memory", 1);
        return;
    }
    memcpy(probe->mac, env->mac, GW_MAC_LEN);
    probe->security = env->security;
    probe->req_len = env->len;
    memcpy(probe->req, data, env->len);
    if (compute_key(c, probe) != 0) {
        free(probe);
        sch_core_answer_error(c, env, GW_COAP_BAD_REQUEST, "observe request cannot be keyed",
                              UINT32_MAX);
        return;
    }
    struct sch_obs *o = gw_map_get_ptr(&r->by_key, probe->key_hash);
    if (o && (o->klen != probe->klen || memcmp(o->key, probe->key, o->klen) != 0))
        o = NULL; /* a hash collision: treat as a different resource */

    if (env->flags & GW_MF_OBS_CANCEL) {
        free(probe);
        int i = o ? find_observer(o, &env->ep, env->token, env->tkl) : -1;
        if (i < 0) {
            /* Not an observer here: an ordinary GET for the device. */
            sch_core_submit(c, env, data, env->len, SCH_TK_CLIENT, true, 0, NULL);
            return;
        }
        remove_observer(c, o, (uint32_t)i);
        if (o->n == 0) {
            uint8_t buf[GW_COAP_MAX_MSG + 16];
            size_t len;
            uint8_t tok[8];
            memcpy(tok, &o->id, 8);
            if (request_with_observe(c, o, 1, buf, sizeof(buf), &len) == 0 &&
                sch_core_submit(c, env, buf, len, SCH_TK_OBS_CANCEL, true, o->id, tok) < 0) {
                /* S6.7: a busy Milli answered 5.03; the cancel still goes out in turn. */
                struct gw_msg denv;
                device_env(o, &denv);
                sch_core_submit(c, &denv, buf, len, SCH_TK_OBS_CANCEL, false, o->id, tok);
            }
            obs_free(c, o, true);
            return;
        }
        /* Others still observe: refresh, and answer this client without Observe (S6.4). */
        register_at_device(c, o, env, true);
        return;
    }

    bool created = false;
    if (!o) {
        if (r->nobs >= (uint32_t)c->cfg.obs_max_observations) {
            free(probe);
            sch_core_answer_error(c, env, GW_COAP_UNAVAILABLE, "observation table full", 60);
            return;
        }
        o = obs_fit(probe);
        uint8_t tok[8];
        sch_core_new_token(c, tok); /* random, never 0: id_of(tok) is the token itself */
        o->id = id_of(tok);
        /* Start numbers from the clock so an observation created later
         * starts above one that ended earlier (RFC 7641 3.4 for clients that
         * re-register). */
        o->next_num = (uint32_t)(gw_now_wall(c->clock) * 16) & OBS_NUM_MASK;
        o->reserved = o->next_num;
        o->max_age = 60;
        if (obs_add_maps(c, o) != 0) {
            obs_free(c, o, false);
            sch_core_answer_error(c, env, GW_COAP_UNAVAILABLE, "gateway out of memory", 1);
            return;
        }
        persist_obs(c, o);
        created = true;
    } else {
        free(probe);
    }
    int rc = add_observer(c, o, env);
    if (rc) {
        if (created && o->n == 0)
            obs_free(c, o, true);
        if (rc == GW_EFORBIDDEN) /* a policy limit of the session (S2.8): 4.29 */
            sch_core_answer_error(c, env, GW_COAP_TOO_MANY,
                                  "observer limit of this session reached "
                                  "(obs_max_per_session): cancel an observation first",
                                  60);
        else
            sch_core_answer_error(c, env, GW_COAP_UNAVAILABLE, "observer table full", 60);
        return;
    }
    /* S6.2: every new observer makes the gateway re-send the observe GET. */
    if (register_at_device(c, o, env, false) < 0) {
        /* Refused (busy Milli, full queue): the client got the error. */
        int i = find_observer(o, &env->ep, env->token, env->tkl);
        if (i >= 0)
            remove_observer(c, o, (uint32_t)i);
        if (o->n == 0)
            obs_free(c, o, true);
    }
}

/* ---- answers and notifications ---- */

static bool newer(uint32_t vnew, uint64_t tnew, uint32_t vlast, uint64_t tlast)
{
    /* RFC 7641 3.4 (there V1/T1 is the last notification, V2/T2 the new
     * one): fresher if V1 < V2 within half the 24-bit space, or V1 > V2
     * after a wrap, or more than 128 s passed. T in ms. */
    return (vlast < vnew && vnew - vlast < (1u << 23)) ||
           (vlast > vnew && vlast - vnew > (1u << 23)) || tnew > tlast + 128000;
}

/* Sends state `resp` to every observer; `skip_ep/tok` (the txn's client when
 * it is answered separately) is flagged as the answer to its request.
 * Issue 13 item 3: the state is encoded once, without a token, and goes to
 * each frontend in GW_MSG_NOTIFY_SET records of as many observers as a ring
 * slot holds; the frontend patches token and MID per observer. */
static bool is_answering(const struct gw_msg *answering, const struct obs_observer *v)
{
    return answering && answering->tkl == v->tkl && !memcmp(answering->token, v->token, v->tkl) &&
           gw_ep_eq(&answering->ep, &v->ep);
}

static void flush_set(struct sch_core *c, struct gw_msg *env, uint8_t *data, size_t msg_len,
                      uint16_t *count)
{
    if (!*count)
        return;
    struct gw_notify_hdr h = { *count, (uint16_t)msg_len };
    memcpy(data, &h, sizeof(h));
    env->len = (uint16_t)(sizeof(h) + msg_len + (size_t)*count * sizeof(struct gw_notify_to));
    uint8_t fe = env->fe;
    if (sch_core_to_client(c, env, data) != 0)
        gw_stat_add(c->stats, GW_STAT_ring_full, *count);
    env->fe = fe;
    *count = 0;
}

static void fan_out(struct sch_core *c, struct sch_obs *o, const struct gw_coap_msg *resp,
                    const struct gw_msg *answering)
{
    uint32_t num = take_num(c, o);
    uint8_t flags = GW_MF_NOTIFY | (resp->type == GW_COAP_NON ? GW_MF_DEV_NON : 0);
    /* data: header, the token-less message, then the observers. */
    uint8_t data[GW_COAP_MAX_MSG + 16];
    const size_t hl = sizeof(struct gw_notify_hdr), el = sizeof(struct gw_notify_to);
    struct gw_msg env;
    gw_msg_notify_set(&env, o->security, o->mac, flags, num);
    size_t ml;
    bool set = sch_core_build_answer(&env, resp, num, -1, data + hl, sizeof(data) - hl, &ml) == 0 &&
               hl + ml + el <= sizeof(data);
    if (!set) {
        /* A state too large to share a record: one record per observer. */
        uint8_t out[GW_COAP_MAX_MSG + 64];
        for (uint32_t i = 0; i < o->n; i++) {
            struct gw_msg e;
            env_of(o, &o->v[i], &e);
            size_t len;
            if (sch_core_build_answer(&e, resp, num, -1, out, sizeof(out), &len) != 0)
                continue;
            uint8_t f = (uint8_t)(flags | (is_answering(answering, &o->v[i]) ? GW_MF_ANSWER : 0));
            if (sch_core_send_client(c, &e, f, num, out, len) != 0)
                gw_stat_add(c->stats, GW_STAT_ring_full, 1);
        }
        return;
    }
    size_t per = (sizeof(data) - hl - ml) / el;
    /* Frontends with observers here (fe < 64 by gw_config), one pass each. */
    uint64_t fes = 0;
    for (uint32_t i = 0; i < o->n; i++)
        fes |= 1ull << (o->v[i].fe & 63);
    for (unsigned fe = 0; fe < 64; fe++) {
        if (!(fes & (1ull << fe)))
            continue;
        env.fe = (uint8_t)fe;
        uint16_t count = 0;
        for (uint32_t i = 0; i < o->n; i++) {
            const struct obs_observer *v = &o->v[i];
            if ((v->fe & 63) != fe)
                continue;
            struct gw_notify_to to;
            memset(&to, 0, sizeof(to));
            to.ep = v->ep;
            to.tkl = v->tkl;
            to.flags = is_answering(answering, v) ? GW_MF_ANSWER : 0;
            memcpy(to.token, v->token, v->tkl);
            to.session = v->session;
            memcpy(data + hl + ml + (size_t)count * el, &to, el);
            if (++count == per)
                flush_set(c, &env, data, ml, &count);
        }
        flush_set(c, &env, data, ml, &count);
    }
}

/* Ends an observation for everyone with a final answer without Observe. */
static void end_for_all(struct sch_core *c, struct sch_obs *o, const struct gw_coap_msg *resp,
                        const struct gw_msg *answering)
{
    uint8_t out[GW_COAP_MAX_MSG + 64];
    for (uint32_t i = 0; i < o->n; i++) {
        struct gw_msg env;
        env_of(o, &o->v[i], &env);
        if (answering && answering->tkl == env.tkl &&
            !memcmp(answering->token, env.token, env.tkl) && gw_ep_eq(&answering->ep, &env.ep))
            continue;
        size_t len;
        if (sch_core_build_answer(&env, resp, -1, -1, out, sizeof(out), &len) == 0)
            sch_core_send_client(c, &env, GW_MF_NOTIFY, 0, out, len);
    }
    obs_free(c, o, true);
}

static void take_state(struct sch_core *c, struct sch_obs *o, const struct gw_coap_msg *resp,
                       uint32_t v, bool has_v)
{
    uint64_t now = now_ms(c);
    o->established = true;
    if (has_v) {
        o->dev_v = v;
        o->dev_t = now;
        o->have_v = true;
    }
    o->state_time = now;
    const struct gw_coap_opt *ma = gw_coap_opt_find(resp, GW_OPT_MAX_AGE);
    uint32_t age = (uint32_t)c->cfg.default_max_age_s;
    if (ma && !gw_coap_uint(ma->val, ma->len, &age))
        age = (uint32_t)c->cfg.default_max_age_s;
    o->max_age = age;
    if (resp->code == GW_COAP_CONTENT)
        sch_core_cache_store(c, o->key, o->klen, o->res_hash, resp, now);
    /* S6.5: re-register when this state goes stale. */
    arm_stale(c, o, now + (uint64_t)age * 1000 + (uint64_t)c->cfg.obs_grace_ms);
}

/* When `answer` holds, places the device's answer, without Observe, in the
 * txn for its requester (sch_core_finish_txn sends it); otherwise, or when
 * it does not fit, the txn has no client left to answer. */
static void keep_plain_answer(struct sch_txn *t, bool answer, const struct gw_coap_msg *resp)
{
    uint8_t out[GW_COAP_MAX_MSG + 64];
    size_t len;
    if (answer && sch_core_build_answer(&t->env, resp, -1, -1, out, sizeof(out), &len) == 0 &&
        len <= sizeof(t->data)) {
        memcpy(t->data, out, len);
        t->data_len = (uint16_t)len;
        t->answer_flags = 0;
    } else {
        t->has_client = 0;
    }
}

void sch_obs_on_answer(struct sch_core *c, uint32_t idx, const struct gw_coap_msg *resp)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    struct sch_obs *o = gw_map_get_ptr(&c->obs->by_id, t->obs_id);
    const struct gw_coap_opt *ob = gw_coap_opt_find(resp, GW_OPT_OBSERVE);
    uint32_t v = 0;
    bool has_v = ob && gw_coap_uint(ob->val, ob->len, &v);

    if (t->kind == SCH_TK_OBS_CANCEL || !o) {
        /* Relay the device's answer to a deregistration without Observe. */
        keep_plain_answer(t, t->has_client, resp);
        sch_core_finish_txn(c, idx);
        return;
    }
    bool ok = (resp->code >> 5) == 2;
    if (ok && has_v) {
        take_state(c, o, resp, v, true);
        fan_out(c, o, resp, t->has_client && !t->plain ? &t->env : NULL);
        keep_plain_answer(t, t->has_client && t->plain, resp); /* else answered by the fan-out */
        sch_core_finish_txn(c, idx);
        return;
    }
    /* The device did not register us: relay to the requester without
     * Observe. A 2.xx without Observe leaves only that requester out; an
     * error ends the observation for everyone (it cannot be served). */
    keep_plain_answer(t, t->has_client, resp);
    struct gw_msg answering = t->env;
    bool had_client = t->has_client;
    sch_core_finish_txn(c, idx);
    if (ok) {
        int i = had_client ? find_observer(o, &answering.ep, answering.token, answering.tkl) : -1;
        if (i >= 0)
            remove_observer(c, o, (uint32_t)i);
        if (o->n == 0)
            obs_free(c, o, true);
        return;
    }
    end_for_all(c, o, resp, had_client ? &answering : NULL);
}

void sch_obs_on_failure(struct sch_core *c, uint32_t idx, uint8_t code, const char *diag)
{
    struct sch_txn *t = sch_txn_at(c, idx);
    struct sch_obs *o = gw_map_get_ptr(&c->obs->by_id, t->obs_id);
    struct gw_msg env = t->env;
    bool had_client = t->has_client;
    uint8_t kind = t->kind;
    sch_core_finish_error(c, idx, code, diag);
    if (!o || kind != SCH_TK_OBS_REG)
        return;
    if (had_client) {
        /* The client was told its registration failed: it is no observer. */
        int i = find_observer(o, &env.ep, env.token, env.tkl);
        if (i >= 0)
            remove_observer(c, o, (uint32_t)i);
    }
    if (o->n == 0) {
        obs_free(c, o, true);
        return;
    }
    /* Try again after a grace period (the device may be down for a while). */
    arm_stale(c, o, now_ms(c) + GW_MAX((uint64_t)c->cfg.obs_grace_ms, 1000));
}

bool sch_obs_on_notification(struct sch_core *c, const struct gw_msg *rx,
                             const struct gw_coap_msg *r)
{
    if (r->tkl != 8)
        return false;
    struct sch_obs *o = gw_map_get_ptr(&c->obs->by_id, id_of(r->token));
    if (!o || memcmp(o->mac, rx->mac, GW_MAC_LEN) != 0 || o->security != rx->security)
        return false;
    const struct gw_coap_opt *ob = gw_coap_opt_find(r, GW_OPT_OBSERVE);
    uint32_t v = 0;
    bool has_v = ob && gw_coap_uint(ob->val, ob->len, &v);
    if ((r->code >> 5) != 2 || !has_v) {
        /* The device ended the observation (RFC 7641 3.2, 4.2). */
        end_for_all(c, o, r, NULL);
        return true;
    }
    uint64_t now = now_ms(c);
    if (o->have_v && !newer(v, now, o->dev_v, o->dev_t))
        return true; /* S6.8: older than the last one: dropped */
    take_state(c, o, r, v, true);
    fan_out(c, o, r, NULL);
    return true;
}

bool sch_obs_device_of(const struct sch_core *c, const uint8_t tok[8], uint8_t mac[GW_MAC_LEN],
                       uint8_t *sec)
{
    struct sch_obs *o = c->obs ? gw_map_get_ptr(&c->obs->by_id, id_of(tok)) : NULL;
    if (!o)
        return false;
    memcpy(mac, o->mac, GW_MAC_LEN);
    *sec = o->security;
    return true;
}

/* ---- leaving ---- */

void sch_obs_on_gone(struct sch_core *c, const struct gw_ep *ep, const uint8_t *token, uint8_t tkl)
{
    struct sch_obs *o = observer_obs(c->obs, observer_key(c, ep, token, tkl));
    if (!o)
        return;
    int i = find_observer(o, ep, token, tkl);
    if (i < 0)
        return;
    remove_observer(c, o, (uint32_t)i);
    if (o->n == 0)
        cancel_internal(c, o);
}

void sch_obs_on_session_end(struct sch_core *c, uint64_t session)
{
    struct sch_obs_reg *r = c->obs;
    for (uint32_t s = 0; s < r->tab_cap; s++) {
        struct sch_obs *o = r->tab[s];
        if (!o)
            continue;
        for (uint32_t i = o->n; i-- > 0;)
            if (o->v[i].session == session)
                remove_observer(c, o, i);
        if (o->n == 0)
            cancel_internal(c, o);
    }
}

void sch_obs_on_session_moved(struct sch_core *c, uint64_t session, const struct gw_ep *old_ep)
{
    /* The observers do not move with the session: the old endpoint may be a
     * different application, and its tokens mean nothing at the new one. The
     * final notification tells the old one the observation is over. */
    static const char diag[] = "session moved to another endpoint (sticky): observation ended";
    struct sch_obs_reg *r = c->obs;
    for (uint32_t s = 0; s < r->tab_cap; s++) {
        struct sch_obs *o = r->tab[s];
        if (!o)
            continue;
        for (uint32_t i = o->n; i-- > 0;) {
            if (o->v[i].session != session || !gw_ep_eq(&o->v[i].ep, old_ep))
                continue;
            struct gw_msg env;
            env_of(o, &o->v[i], &env);
            uint8_t out[128];
            size_t len;
            if (sch_core_error_bytes(&env, GW_COAP_UNAUTHORIZED, diag, UINT32_MAX, out, sizeof(out),
                                     &len) == 0 &&
                sch_core_send_client(c, &env, GW_MF_NOTIFY, 0, out, len) != 0)
                gw_stat_add(c->stats, GW_STAT_ring_full, 1);
            remove_observer(c, o, i);
        }
        if (o->n == 0)
            cancel_internal(c, o);
    }
}

void sch_obs_on_timer(struct sch_core *c, uint32_t slot, uint32_t gen, uint64_t now)
{
    struct sch_obs_reg *r = c->obs;
    if (slot >= r->tab_cap || !r->tab[slot] || r->tab[slot]->gen != gen)
        return;
    struct sch_obs *o = r->tab[slot];
    o->armed_at = 0;
    if (now < o->stale_at) {
        o->armed_at = o->stale_at;
        sch_core_arm_obs(c, o->stale_at, o->slot, o->gen);
        return;
    }
    if (reg_in_flight(c, o))
        return;
    /* S6.5: the last state is stale: re-register and distribute the answer. */
    gw_log_debug(GW_LOG_COAP, "observation %016llx stale: re-registering",
                 (unsigned long long)o->id);
    if (register_at_device(c, o, NULL, false) < 0)
        arm_stale(c, o, now + GW_MAX((uint64_t)c->cfg.obs_grace_ms, 1000));
}

bool sch_obs_id_taken(const struct sch_core *c, uint64_t id)
{
    return c->obs && gw_map_get_ptr(&c->obs->by_id, id) != NULL;
}

void sch_obs_rearm_all(struct sch_core *c)
{
    struct sch_obs_reg *r = c->obs;
    if (!r)
        return;
    for (uint32_t s = 0; s < r->tab_cap; s++) {
        struct sch_obs *o = r->tab[s];
        if (o && o->armed_at) {
            o->armed_at = o->stale_at;
            sch_core_rearm_obs(c, o->stale_at, o->slot, o->gen);
        }
    }
}

size_t sch_obs_heap_bytes(const struct sch_core *c)
{
    const struct sch_obs_reg *r = c->obs;
    size_t n = 0;
    for (uint32_t s = 0; r && s < r->tab_cap; s++)
        if (r->tab[s])
            n += malloc_usable_size(r->tab[s]) + malloc_usable_size(r->tab[s]->v);
    return n;
}

void sch_obs_counts(const struct sch_core *c, uint32_t *observations, uint32_t *observers)
{
    *observations = c->obs ? c->obs->nobs : 0;
    *observers = c->obs ? c->obs->nobservers : 0;
}

/* ---- set-up ---- */

static void load(struct sch_core *c)
{
    MDB_txn *txn;
    if (gw_store_rbegin(c->store, &txn) != 0)
        return;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, c->store->observe, &cur) != 0) {
        gw_store_rdone(c->store);
        return;
    }
    MDB_val k, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    uint32_t nobs = 0, nv = 0;
    while (rc == 0) {
        const uint8_t *kb = k.mv_data;
        if (k.mv_size == 9 && kb[0] == 'o' && v.mv_size >= offsetof(struct obs_rec, req)) {
            struct obs_rec rec;
            memset(&rec, 0, sizeof(rec));
            memcpy(&rec, v.mv_data, GW_MIN(v.mv_size, sizeof(rec)));
            struct sch_obs *o = obs_probe_new();
            if (o && rec.req_len <= OBS_REQ_MAX) {
                o->id = rec.id;
                memcpy(o->mac, rec.mac, GW_MAC_LEN);
                o->security = rec.security;
                o->req_len = rec.req_len;
                memcpy(o->req, rec.req, rec.req_len);
                /* Numbers below `reserved` may have been sent: go on above. */
                o->next_num = rec.reserved;
                o->reserved = rec.reserved;
                o->max_age = 60;
                if (compute_key(c, o) == 0 && obs_add_maps(c, (o = obs_fit(o))) == 0)
                    nobs++;
                else
                    free(o);
            } else {
                free(o);
            }
        } else if (k.mv_size == 38 && kb[0] == 'v' && v.mv_size == sizeof(struct obs_observer)) {
            uint64_t id;
            memcpy(&id, kb + 1, 8);
            struct sch_obs *o = gw_map_get_ptr(&c->obs->by_id, id);
            struct obs_observer ov;
            memcpy(&ov, v.mv_data, sizeof(ov));
            if (o && o->n < (uint32_t)c->cfg.obs_max_observers) {
                if (observers_room(o) != 0)
                    break;
                o->v[o->n++] = ov;
                c->obs->nobservers++;
                session_observers_add(c->obs, ov.session, 1);
                GW_IGNORE(observer_link(c->obs, observer_key(c, &ov.ep, ov.token, ov.tkl), o));
                nv++;
            }
        }
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    gw_store_rdone(c->store);
    gw_stat_set(c->stats, GW_STAT_observations, c->obs->nobs);
    gw_stat_set(c->stats, GW_STAT_observers, c->obs->nobservers);
    if (nobs)
        gw_log_info(GW_LOG_STORE, "observe registry: %u observations with %u observers loaded",
                    nobs, nv);
}

int sch_obs_init(struct sch_core *c)
{
    c->obs = calloc(1, sizeof(*c->obs));
    if (!c->obs)
        return -ENOMEM;
    c->obs->by_observer.free_head = LINK_NONE;
    if (gw_map_init(&c->obs->by_id, 32, GW_MAP_MAX) != 0 ||
        gw_map_init(&c->obs->by_key, 32, GW_MAP_MAX) != 0 ||
        gw_idx_init(&c->obs->by_observer.idx, 32) != 0 ||
        gw_map_init(&c->obs->by_session, 32, GW_MAP_MAX) != 0)
        return -ENOMEM;
    if (c->store)
        load(c);
    return 0;
}

void sch_obs_deinit(struct sch_core *c)
{
    struct sch_obs_reg *r = c->obs;
    if (!r)
        return;
    for (uint32_t s = 0; s < r->tab_cap; s++)
        if (r->tab[s]) {
            free(r->tab[s]->v);
            free(r->tab[s]);
        }
    free(r->tab);
    gw_map_deinit(&r->by_id);
    gw_map_deinit(&r->by_key);
    gw_idx_deinit(&r->by_observer.idx);
    free(r->by_observer.key);
    free(r->by_observer.slot);
    free(r->by_observer.reg_mid);
    free(r->by_observer.reg_s);
    gw_map_deinit(&r->by_session);
    free(r);
    c->obs = NULL;
}

void sch_core_resume_observations(struct sch_core *c)
{
    struct sch_obs_reg *r = c->obs;
    uint32_t n = 0;
    for (uint32_t s = 0; s < r->tab_cap; s++) {
        struct sch_obs *o = r->tab[s];
        if (!o)
            continue;
        if (o->n == 0) {
            cancel_internal(c, o);
            continue;
        }
        /* S6.6: re-register so notifications resume; the answer reaches every observer. */
        if (!reg_in_flight(c, o) && register_at_device(c, o, NULL, false) >= 0)
            n++;
    }
    if (n)
        gw_log_info(GW_LOG_COAP, "re-registered %u observations after restart", n);
}
