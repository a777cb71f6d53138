/* SPDX-License-Identifier: MIT */
/* sch_harness.h - drives the scheduler core (sch_core.h) as the unit tests
 * of tests/unit/scheduler see it: a fake clock, outputs recorded into
 * arrays, a device-type table, an injectable rand32, client REQ records
 * built the way the frontend builds them (frontend.c, fe_route_build), and
 * a simulated device that answers the MESH_TX datagrams it is given.
 *
 * One global harness H per test process (criterion runs every test in its
 * own process). Everything is static inline so a test file may use any
 * subset without unused-function warnings. */
#ifndef SCH_HARNESS_H
#define SCH_HARNESS_H

#include "gw_clock.h"
#include "gw_coap.h"
#include "gw_config.h"
#include "gw_error.h"
#include "gw_msg.h"
#include "gw_shm.h"
#include "gw_store.h"
#include "sch_core.h"

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define H_MAX_REC 512
#define H_MAX_DEV 8
#define H_WALL 1700000000

struct h_rec {
    struct gw_msg env;
    uint8_t data[GW_COAP_MAX_MSG + 64];
};

/* A decoded copy of a message (no pointers into a parser). */
struct h_pkt {
    uint8_t type, code;
    uint16_t mid;
    uint8_t tkl;
    uint8_t token[8];
    int64_t observe; /* -1: absent */
    int64_t max_age; /* -1: absent */
    int64_t cf;      /* Content-Format, -1: absent */
    char etag[16];   /* "" when absent */
    char path[128];  /* Uri-Path segments joined with '/' */
    unsigned nopts;
    uint16_t optnum[GW_COAP_MAX_OPTS];
    char payload[GW_COAP_MAX_MSG + 1];
    size_t plen;
};

struct harness {
    struct gw_fake_clock fc;
    struct gw_clock clock;
    struct gw_config cfg;
    struct sch_out out;
    uint8_t *txns;
    uint32_t max_txn;
    struct sch_core *core;
    struct gw_store store;
    bool have_store;
    char dir[64];
    struct gw_coap_parser *parser;
    bool rnd_fixed;
    uint32_t rnd;
    uint64_t prng;
    struct {
        uint8_t mac[GW_MAC_LEN];
        int type;
    } dev[H_MAX_DEV];
    unsigned ndev;
    uint64_t next_req_id;
    bool client_full;   /* to_client refuses (a full frontend ring) */
    uint16_t fe_mid[4]; /* next client MID per frontend */
    bool fe_dead[4];    /* to_client hands this frontend's records to frontend 0 */
    unsigned client_refused;
    struct h_rec client[H_MAX_REC];
    unsigned nclient;
    unsigned notify_sets; /* GW_MSG_NOTIFY_SET records (each expanded into client[]) */
    struct h_rec mesh[H_MAX_REC];
    unsigned nmesh;
};

static struct harness H;

#define DEV_A 0x0011223344556601ull
#define DEV_B 0x0011223344556602ull
#define DEV_C 0x0011223344556603ull
#define DEV_M 0x00112233445566aaull /* a Milli */
#define DEV_X 0x00112233445566ffull /* not in the registry */

static inline void h_mac(uint64_t v, uint8_t mac[GW_MAC_LEN])
{
    for (int i = 0; i < GW_MAC_LEN; i++)
        mac[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* ---- callbacks ---------------------------------------------------------- */

static inline int h_to_client(void *ctx, struct gw_msg *env, const uint8_t *data)
{
    (void)ctx;
    if (H.client_full) {
        H.client_refused++;
        return GW_EFULL;
    }
    if (env->fe < 4 && H.fe_dead[env->fe])
        env->fe = 0; /* as scheduler.c does: a live frontend of the port takes it */
    if (env->kind == GW_MSG_NOTIFY_SET) {
        /* One state for several observers: recorded as the frontend sends
         * it, one record per observer (the set must be well formed). */
        size_t n = gw_notify_set_count(env, data);
        cr_assert_gt(n, 0, "malformed notification set");
        H.notify_sets++;
        for (size_t i = 0; i < n; i++) {
            cr_assert_lt(H.nclient, H_MAX_REC, "too many client records");
            struct gw_msg one;
            cr_assert_eq(gw_notify_set_get(env, data, i, &one, H.client[H.nclient].data,
                                           sizeof(H.client[0].data)),
                         0);
            H.client[H.nclient].env = one;
            H.nclient++;
        }
        return 0;
    }
    cr_assert_lt(H.nclient, H_MAX_REC, "too many client records");
    cr_assert_leq(env->len, sizeof(H.client[0].data));
    cr_assert_eq(env->kind, GW_MSG_RESP);
    H.client[H.nclient].env = *env;
    memcpy(H.client[H.nclient].data, data, env->len);
    H.nclient++;
    return 0;
}

static inline int h_to_mesh(void *ctx, const struct gw_msg *env, const uint8_t *data)
{
    (void)ctx;
    cr_assert_lt(H.nmesh, H_MAX_REC, "too many mesh records");
    cr_assert_leq(env->len, sizeof(H.mesh[0].data));
    cr_assert_eq(env->kind, GW_MSG_MESH_TX);
    H.mesh[H.nmesh].env = *env;
    memcpy(H.mesh[H.nmesh].data, data, env->len);
    H.nmesh++;
    return 0;
}

static inline int h_device_type(void *ctx, const uint8_t mac[GW_MAC_LEN])
{
    (void)ctx;
    for (unsigned i = 0; i < H.ndev; i++)
        if (memcmp(H.dev[i].mac, mac, GW_MAC_LEN) == 0)
            return H.dev[i].type;
    return GW_ENOTFOUND;
}

/* Fixed (tests of the back-off bounds) or a deterministic xorshift. */
static inline uint32_t h_rand32(void *ctx)
{
    (void)ctx;
    if (H.rnd_fixed)
        return H.rnd;
    H.prng ^= H.prng << 13;
    H.prng ^= H.prng >> 7;
    H.prng ^= H.prng << 17;
    return (uint32_t)(H.prng >> 16);
}

/* The frontends' client MID counters (gw_shm.h client_mid). */
static inline int h_client_mid(void *ctx, uint8_t fe);

static inline int h_client_mid(void *ctx, uint8_t fe)
{
    (void)ctx;
    return fe < 4 ? H.fe_mid[fe]++ : -1;
}

/* ---- set-up ------------------------------------------------------------- */

/* Defaults; tests change H.cfg, H.max_txn, H.rnd* before h_start(). */
static inline void h_init(void)
{
    memset(&H, 0, sizeof(H));
    H.fc.ms = 1000000;
    H.fc.wall = H_WALL;
    H.clock = gw_clock_fake(&H.fc);
    gw_config_defaults(&H.cfg);
    H.max_txn = 64;
    H.prng = 0x9e3779b97f4a7c15ull;
    H.next_req_id = 1;
    H.out = (struct sch_out){ NULL, h_to_client, h_to_mesh, h_device_type, h_rand32, h_client_mid };
    cr_assert_eq(gw_coap_parser_new(&H.parser), 0);
    h_mac(DEV_A, H.dev[0].mac), H.dev[0].type = 0;
    h_mac(DEV_B, H.dev[1].mac), H.dev[1].type = 0;
    h_mac(DEV_C, H.dev[2].mac), H.dev[2].type = 0;
    h_mac(DEV_M, H.dev[3].mac), H.dev[3].type = 1;
    H.ndev = 4;
}

/* A real LMDB in a fresh mkdtemp directory (STYLE "Tests"). */
static inline void h_open_store(void)
{
    strcpy(H.dir, "/tmp/sch_test_XXXXXX");
    cr_assert_not_null(mkdtemp(H.dir));
    cr_assert_eq(gw_store_open(&H.store, H.dir, 16), 0);
    H.have_store = true;
}

static inline void h_new_core(void)
{
    int rc = sch_core_new(&H.cfg, &H.clock, &H.out, H.txns, H.max_txn, GW_TXN_SLOT,
                          H.have_store ? &H.store : NULL, NULL, &H.core);
    cr_assert_eq(rc, 0, "sch_core_new: %d", rc);
}

static inline void h_start(void)
{
    H.txns = calloc(H.max_txn, GW_TXN_SLOT);
    cr_assert_not_null(H.txns);
    h_new_core();
}

/* A scheduler that dies and is replaced: the table (shared memory in the
 * gateway) and the LMDB store stay, everything else is new (S1.3). */
static inline void h_restart(void)
{
    sch_core_free(H.core);
    H.core = NULL;
    h_new_core();
}

static inline void h_fini(void)
{
    sch_core_free(H.core);
    H.core = NULL;
    free(H.txns);
    H.txns = NULL;
    gw_coap_parser_free(H.parser);
    H.parser = NULL;
    if (H.have_store) {
        gw_store_close(&H.store);
        char cmd[128];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", H.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", H.dir);
        H.have_store = false;
    }
}

/* ---- time --------------------------------------------------------------- */

/* Moves the fake clock to `ms` and runs due timers; returns the next deadline. */
static inline uint64_t h_at(uint64_t ms)
{
    cr_assert_geq(ms, H.fc.ms, "the fake clock only goes forward");
    H.fc.ms = ms;
    return sch_core_on_timer(H.core);
}

static inline uint64_t h_advance(uint64_t ms)
{
    return h_at(H.fc.ms + ms);
}

/* ---- decoding ----------------------------------------------------------- */

static inline void h_decode(const uint8_t *data, size_t len, struct h_pkt *p)
{
    struct gw_coap_msg m;
    int rc = gw_coap_parse(H.parser, data, len, &m);
    cr_assert_eq(rc, 0, "recorded message does not parse: %d", rc);
    memset(p, 0, sizeof(*p));
    p->type = m.type;
    p->code = m.code;
    p->mid = m.mid;
    p->tkl = m.tkl;
    memcpy(p->token, m.token, m.tkl);
    p->observe = p->max_age = p->cf = -1;
    p->nopts = m.nopts;
    size_t pl = 0;
    for (unsigned i = 0; i < m.nopts; i++) {
        const struct gw_coap_opt *o = &m.opts[i];
        uint32_t v;
        p->optnum[i] = o->num;
        if (o->num == GW_OPT_OBSERVE && gw_coap_uint(o->val, o->len, &v))
            p->observe = v;
        else if (o->num == GW_OPT_MAX_AGE && gw_coap_uint(o->val, o->len, &v))
            p->max_age = v;
        else if (o->num == GW_OPT_CONTENT_FORMAT && gw_coap_uint(o->val, o->len, &v))
            p->cf = v;
        else if (o->num == GW_OPT_ETAG && o->len < sizeof(p->etag))
            memcpy(p->etag, o->val, o->len);
        else if (o->num == GW_OPT_URI_PATH && pl + o->len + 2 < sizeof(p->path)) {
            if (pl)
                p->path[pl++] = '/';
            memcpy(p->path + pl, o->val, o->len);
            pl += o->len;
        }
    }
    cr_assert_lt(m.payload_len, sizeof(p->payload));
    if (m.payload_len)
        memcpy(p->payload, m.payload, m.payload_len);
    p->plen = m.payload_len;
}

static inline bool h_has_opt(const struct h_pkt *p, uint16_t num)
{
    for (unsigned i = 0; i < p->nopts; i++)
        if (p->optnum[i] == num)
            return true;
    return false;
}

static inline void h_client_pkt(unsigned i, struct h_pkt *p)
{
    cr_assert_lt(i, H.nclient, "client record %u missing (have %u)", i, H.nclient);
    h_decode(H.client[i].data, H.client[i].env.len, p);
}

static inline void h_mesh_pkt(unsigned i, struct h_pkt *p)
{
    cr_assert_lt(i, H.nmesh, "mesh record %u missing (have %u)", i, H.nmesh);
    h_decode(H.mesh[i].data, H.mesh[i].env.len, p);
}

/* The last datagram for the device; asserts it is a request (not an empty ACK/RST). */
static inline void h_last_tx(struct h_pkt *p)
{
    cr_assert_gt(H.nmesh, 0, "nothing was sent to the mesh");
    h_mesh_pkt(H.nmesh - 1, p);
    cr_assert_eq(p->tkl, 8, "requests to devices carry an 8-byte gateway token");
}

static inline void h_assert_client_token(unsigned i, const char *tok)
{
    cr_assert_lt(i, H.nclient);
    struct h_pkt p;
    h_client_pkt(i, &p);
    cr_assert_eq(p.tkl, strlen(tok), "client token length");
    cr_assert_eq(memcmp(p.token, tok, p.tkl), 0, "client token");
    cr_assert_eq(H.client[i].env.tkl, strlen(tok));
    cr_assert_eq(memcmp(H.client[i].env.token, tok, p.tkl), 0);
}

/* ---- clients ------------------------------------------------------------ */

struct h_req {
    uint64_t mac;
    uint16_t port;    /* client endpoint 127.0.0.1:port; 0 = 40000 */
    uint64_t session; /* 0 = 1 */
    const char *tok;  /* client token (string, up to 8 bytes); NULL = "tk" */
    uint8_t code;     /* 0 = GET */
    const char *path; /* "a/b"; NULL = "temp" */
    uint8_t flags;    /* GW_MF_OBS_REGISTER adds Observe: 0, GW_MF_OBS_CANCEL Observe: 1 */
    uint8_t noresp;
    bool non; /* the client's request was NON */
    const char *payload;
    uint8_t security;
    uint8_t fe;     /* frontend that took the request */
    uint16_t mid;   /* the client's MID (a retransmission repeats it); 0 = a new one */
    uint8_t flags2; /* GW_MF2_CHECK: a frontend holds a cache hit for it (gw_msg.h) */
    uint32_t rx_us; /* when its frontend took it (CLOCK_MONOTONIC us mod 2^32); 0 = now */
};

static inline void h_ep(uint16_t port, struct gw_ep *ep)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = 4;
    ep->port = port ? port : 40000;
    ep->addr[0] = 127;
    ep->addr[3] = 1;
}

/* Builds a REQ as the frontend does and feeds it to the core; returns req_id. */
static inline uint64_t h_request(const struct h_req *r)
{
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    const char *tok = r->tok ? r->tok : "tk";
    const char *path = r->path ? r->path : "temp";
    m.kind = GW_MSG_REQ;
    m.security = r->security;
    m.fe = r->fe;
    m.flags = r->flags;
    m.client_type = r->non ? GW_COAP_NON : GW_COAP_CON;
    m.tkl = (uint8_t)strlen(tok);
    cr_assert_leq(m.tkl, 8);
    memcpy(m.token, tok, m.tkl);
    m.req_id = H.next_req_id++;
    /* Every request a new client MID, as a real client does, unless the
     * test sends a retransmission (the frontend gives a copy its own req_id). */
    m.client_mid = r->mid ? r->mid : (uint16_t)m.req_id;
    m.session = r->session ? r->session : 1;
    h_ep(r->port, &m.ep);
    h_mac(r->mac, m.mac);
    m.noresp = r->noresp;
    m.flags2 = r->flags2;
    m.rx_us = r->rx_us ? r->rx_us : (uint32_t)gw_now_us(&H.clock);

    uint8_t buf[GW_COAP_MAX_MSG + 16], zero[8] = { 0 };
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, r->code ? r->code : GW_COAP_GET, 0, zero, 8);
    if (r->flags & GW_MF_OBS_REGISTER)
        gw_cb_opt_uint(&b, GW_OPT_OBSERVE, 0);
    else if (r->flags & GW_MF_OBS_CANCEL)
        gw_cb_opt_uint(&b, GW_OPT_OBSERVE, 1);
    for (const char *p = path; *p;) {
        const char *s = strchr(p, '/');
        size_t n = s ? (size_t)(s - p) : strlen(p);
        gw_cb_opt(&b, GW_OPT_URI_PATH, p, n);
        p += n + (s ? 1 : 0);
    }
    if (r->payload)
        gw_cb_payload(&b, r->payload, strlen(r->payload));
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    m.len = (uint16_t)len;
    sch_core_on_record(H.core, &m, buf);
    return m.req_id;
}

static inline void h_gone(uint16_t port, const char *tok)
{
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_OBS_GONE;
    h_ep(port, &m.ep);
    m.tkl = (uint8_t)strlen(tok);
    memcpy(m.token, tok, m.tkl);
    sch_core_on_record(H.core, &m, NULL);
}

/* The client ACKed client record i, as its frontend reports it (a kept
 * answer, gw_msg.h GW_MF2_MID); asserts the record is one. */
static inline void h_client_acked(unsigned i)
{
    cr_assert_lt(i, H.nclient);
    cr_assert(H.client[i].env.flags2 & GW_MF2_MID, "client record %u is a kept answer", i);
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_ANSWER_DONE;
    m.fe = H.client[i].env.fe;
    m.ep = H.client[i].env.ep;
    m.client_mid = H.client[i].env.client_mid;
    sch_core_on_record(H.core, &m, NULL);
}

/* Frontend fe restarted (GW_MSG_FE_START). */
static inline void h_fe_start(uint8_t fe)
{
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_FE_START;
    m.fe = fe;
    sch_core_on_record(H.core, &m, NULL);
}

static inline void h_session_end(uint64_t session)
{
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_SESSION_END;
    m.session = session;
    sch_core_on_record(H.core, &m, NULL);
}

/* ---- the simulated device ----------------------------------------------- */

struct h_resp {
    uint64_t mac;
    uint8_t type; /* GW_COAP_CON/NON/ACK/RST */
    uint8_t code; /* 0 = empty message */
    uint16_t mid;
    const uint8_t *token; /* 8 bytes, or NULL for none */
    bool has_obs;
    uint32_t obs;
    const char *etag;
    bool has_cf;
    uint32_t cf;
    bool has_age;
    uint32_t age;
    uint16_t extra_opt; /* an extra empty option (e.g. unknown), 0 = none */
    const char *payload;
    uint8_t security;
};

static inline void h_device_send(const struct h_resp *r)
{
    uint8_t buf[GW_COAP_MAX_MSG + 16];
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), r->type, r->code, r->mid, r->token, r->token ? 8 : 0);
    if (r->etag)
        gw_cb_opt_str(&b, GW_OPT_ETAG, r->etag);
    if (r->has_obs)
        gw_cb_opt_uint(&b, GW_OPT_OBSERVE, r->obs);
    if (r->has_cf)
        gw_cb_opt_uint(&b, GW_OPT_CONTENT_FORMAT, r->cf);
    if (r->has_age)
        gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, r->age);
    if (r->extra_opt)
        gw_cb_opt(&b, r->extra_opt, "x", 1);
    if (r->payload)
        gw_cb_payload(&b, r->payload, strlen(r->payload));
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_MESH_RX;
    m.security = r->security;
    h_mac(r->mac, m.mac);
    m.len = (uint16_t)len;
    sch_core_on_record(H.core, &m, buf);
}

/* Piggybacked answer to request datagram `req` (an ACK with its MID and token). */
static inline void h_piggy(uint64_t mac, const struct h_pkt *req, uint8_t code, const char *payload)
{
    h_device_send(&(struct h_resp){ .mac = mac,
                                    .type = GW_COAP_ACK,
                                    .code = code,
                                    .mid = req->mid,
                                    .token = req->token,
                                    .payload = payload });
}

static inline void h_empty(uint64_t mac, uint8_t type, uint16_t mid)
{
    h_device_send(&(struct h_resp){ .mac = mac, .type = type, .mid = mid });
}

/* Counts client records (from index `from`) with this token. */
/* Answers with this token that reach the client (accounting-only records,
 * GW_MF_SUPPRESS, are not answers). */
static inline unsigned h_client_count_tok(unsigned from, const char *tok)
{
    unsigned n = 0;
    for (unsigned i = from; i < H.nclient; i++)
        if (H.client[i].env.tkl == strlen(tok) &&
            memcmp(H.client[i].env.token, tok, strlen(tok)) == 0 &&
            !(H.client[i].env.flags & GW_MF_SUPPRESS))
            n++;
    return n;
}

/* Index of the first client record at or after `from` with this token, or -1. */
static inline int h_client_find_tok(unsigned from, const char *tok)
{
    for (unsigned i = from; i < H.nclient; i++)
        if (H.client[i].env.tkl == strlen(tok) &&
            memcmp(H.client[i].env.token, tok, strlen(tok)) == 0)
            return (int)i;
    return -1;
}

#endif
