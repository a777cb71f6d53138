/* SPDX-License-Identifier: MIT */
/* test_kept.c - the frontend's side of answers the scheduler keeps until
 * the client ACKs them (S1.3, issue #12 item 15; gw_msg.h GW_MF2_MID): such
 * an answer goes out with the scheduler's MID, a copy of one in flight is
 * not sent twice, the client's ACK or RST (also one for a MID this frontend
 * never sent, from a client with a session) and a give-up are reported,
 * and a start is announced. Same harness as test_core.c. */
#include "fe_core.h"
#include "gw_coap.h"
#include "gw_error.h"
#include "gw_registry.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEV "0011223344556677"

static struct {
    char dir[64];
    struct gw_store store;
    struct fe_auth *auth;
    struct gw_coap_parser *parser, *check;
    struct gw_config cfg;
    struct gw_fake_clock fc;
    struct gw_clock clock;
    struct fe_core core;
    struct gw_ep a, b;
    /* What left the core. */
    struct {
        struct gw_ep ep;
        uint8_t buf[GW_COAP_MAX_MSG + 64];
        size_t len;
    } out[64];
    unsigned nout;
    struct {
        struct gw_msg m;
        uint8_t data[GW_COAP_MAX_MSG + 16];
    } sch[16];
    unsigned nsch;
    bool sch_full;
} T;

static void io_send(void *ctx, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    (void)ctx;
    cr_assert_lt(T.nout, 64);
    T.out[T.nout].ep = *ep;
    memcpy(T.out[T.nout].buf, buf, len);
    T.out[T.nout++].len = len;
}

static int io_to_sch(void *ctx, const struct gw_msg *m, const uint8_t *data)
{
    (void)ctx;
    if (T.sch_full)
        return GW_EFULL;
    cr_assert_lt(T.nsch, 16);
    T.sch[T.nsch].m = *m;
    if (m->len)
        memcpy(T.sch[T.nsch].data, data, m->len);
    T.nsch++;
    return 0;
}

static void write_file(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", T.dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    memset(&T, 0, sizeof(T));
    strcpy(T.dir, "/tmp/fe_core_XXXXXX");
    cr_assert_not_null(mkdtemp(T.dir));
    cr_assert_eq(gw_store_open(&T.store, T.dir, 16), 0);
    write_file("secret", "0123456789abcdef0123456789abcdef\n");
    write_file("devices.csv",
               "mac,address,type,key\n" DEV ",10.1.0.1,normal,000102030405060708090a0b0c0d0e0f\n");
    char p[128];
    snprintf(p, sizeof(p), "%s/devices.csv", T.dir);
    int bad;
    cr_assert_eq(gw_registry_import(&T.store, p, &bad), 1);
    snprintf(p, sizeof(p), "%s/secret", T.dir);
    struct fe_auth_cfg acfg = { .alg = FE_JWT_HS256, .key_file = p };
    cr_assert_eq(fe_auth_new(&acfg, &T.auth), 0);
    cr_assert_eq(gw_coap_parser_new(&T.parser), 0);
    cr_assert_eq(gw_coap_parser_new(&T.check), 0);
    gw_config_defaults(&T.cfg);
    T.cfg.dedup_max = 64;
    T.cfg.client_inflight_max = 64;
    T.cfg.max_sessions = 16;
    T.cfg.session_max_inflight = 2;
    T.cfg.client_ack_timeout_ms = 100;
    T.cfg.client_max_retransmit = 2;
    T.fc = (struct gw_fake_clock){ 1000000, 1800000000 };
    T.clock = gw_clock_fake(&T.fc);
    struct fe_io io = { &T, io_send, io_to_sch, NULL };
    cr_assert_eq(fe_core_init(&T.core, &T.cfg, 0, &T.store, T.auth, T.parser, &io, NULL), 0);
    fe_core_set_clock(&T.core, &T.clock);
    T.a = (struct gw_ep){ .family = 4, .port = 40001, .addr = { 127, 0, 0, 1 } };
    T.b = (struct gw_ep){ .family = 4, .port = 40002, .addr = { 127, 0, 0, 1 } };
}

static void teardown(void)
{
    fe_core_deinit(&T.core);
    gw_coap_parser_free(T.parser);
    gw_coap_parser_free(T.check);
    fe_auth_free(T.auth);
    gw_store_close(&T.store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", T.dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(fe_kept, .init = setup, .fini = teardown);

static void dgram(const struct gw_ep *ep, uint8_t type, uint8_t code, uint16_t mid, const char *tok,
                  const char *proxy, const char *path, const char *payload)
{
    uint8_t buf[1400];
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), type, code, mid, (const uint8_t *)tok,
               tok ? (uint8_t)strlen(tok) : 0);
    if (path)
        gw_cb_opt_str(&b, GW_OPT_URI_PATH, path);
    if (proxy)
        gw_cb_opt_str(&b, GW_OPT_PROXY_URI, proxy);
    if (payload)
        gw_cb_payload(&b, payload, strlen(payload));
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    fe_core_datagram(&T.core, ep, buf, len);
}

static void out_msg(unsigned i, struct gw_coap_msg *m)
{
    cr_assert_lt(i, T.nout);
    cr_assert_eq(gw_coap_parse(T.check, T.out[i].buf, T.out[i].len, m), 0);
}

static void session(const struct gw_ep *ep)
{
    char *tok;
    const char *diag;
    cr_assert_eq(fe_auth_mint(T.auth, "alice", T.fc.wall, 3600, NULL, &tok, &diag), 0);
    unsigned n0 = T.nout;
    dgram(ep, GW_COAP_CON, GW_COAP_POST, 1, "s", NULL, "sessions", tok);
    free(tok);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.code, GW_COAP_CREATED);
}

/* A RESP for the request in T.sch[k], kept by the scheduler with `mid`. */
static void deliver_kept(unsigned k, uint16_t mid, const char *payload)
{
    struct gw_msg r = T.sch[k].m;
    r.kind = GW_MSG_RESP;
    r.flags = GW_MF_ANSWER;
    r.flags2 = GW_MF2_MID;
    r.client_mid = mid;
    uint8_t ans[64];
    struct gw_cb b;
    gw_cb_init(&b, ans, sizeof(ans), GW_COAP_CON, GW_COAP_CONTENT, 0, r.token, r.tkl);
    gw_cb_payload(&b, payload, strlen(payload));
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    r.len = (uint16_t)len;
    fe_core_deliver(&T.core, &r, ans);
}

static void empty(const struct gw_ep *ep, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = { (uint8_t)(0x40 | type << 4), 0, (uint8_t)(mid >> 8), (uint8_t)mid };
    fe_core_datagram(&T.core, ep, b, 4);
}

static unsigned count_kind(uint8_t kind)
{
    unsigned n = 0;
    for (unsigned i = 0; i < T.nsch; i++)
        n += T.sch[i].m.kind == kind;
    return n;
}

static const struct gw_msg *last_kind(uint8_t kind)
{
    for (unsigned i = T.nsch; i-- > 0;)
        if (T.sch[i].m.kind == kind)
            return &T.sch[i].m;
    return NULL;
}

Test(fe_kept, kept_answer_uses_the_schedulers_mid_and_its_ack_is_reported)
{
    session(&T.a);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 11, "ab", "coap://" DEV "/value", NULL, NULL);
    cr_assert_eq(T.nsch, 1);
    unsigned n0 = T.nout;
    deliver_kept(0, 0xbeef, "v1");
    cr_assert_eq(T.nout, n0 + 1);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.type, GW_COAP_CON);
    cr_assert_eq(m.mid, 0xbeef, "the MID the scheduler stored with the answer");
    /* The scheduler's copy (sent again after a restart) while it is in flight: not sent twice. */
    deliver_kept(0, 0xbeef, "v1");
    cr_assert_eq(T.nout, n0 + 1);
    cr_assert_eq(count_kind(GW_MSG_ANSWER_DONE), 0);
    empty(&T.a, GW_COAP_ACK, 0xbeef);
    cr_assert_eq(count_kind(GW_MSG_ANSWER_DONE), 1, "the client's ACK is reported");
    const struct gw_msg *d = last_kind(GW_MSG_ANSWER_DONE);
    cr_assert(gw_ep_eq(&d->ep, &T.a));
    cr_assert_eq(d->client_mid, 0xbeef);
    cr_assert_eq(fe_core_next(&T.core), UINT64_MAX, "no more retransmission");
}

Test(fe_kept, rst_and_give_up_are_reported_too)
{
    session(&T.a);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 11, "ab", "coap://" DEV "/a", NULL, NULL);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 12, "cd", "coap://" DEV "/b", NULL, NULL);
    cr_assert_eq(T.nsch, 2);
    deliver_kept(0, 500, "a");
    deliver_kept(1, 501, "b");
    empty(&T.a, GW_COAP_RST, 500);
    cr_assert_eq(count_kind(GW_MSG_ANSWER_DONE), 1);
    cr_assert_eq(last_kind(GW_MSG_ANSWER_DONE)->client_mid, 500);
    /* 501 is never ACKed: after the retransmissions it is given up and reported. */
    for (int i = 0; i < 10 && fe_core_next(&T.core) != UINT64_MAX; i++) {
        T.fc.ms = fe_core_next(&T.core);
        fe_core_timer(&T.core, T.fc.ms);
    }
    cr_assert_eq(fe_core_next(&T.core), UINT64_MAX);
    cr_assert_eq(count_kind(GW_MSG_ANSWER_DONE), 2);
    cr_assert_eq(last_kind(GW_MSG_ANSWER_DONE)->client_mid, 501);
}

/* After a restart (or with another frontend on the port) an ACK can name a
 * MID this frontend never sent: it goes to the scheduler, which holds the
 * answer; but only from a client with a session. */
Test(fe_kept, unknown_ack_from_a_session_goes_to_the_scheduler)
{
    session(&T.a);
    unsigned s0 = T.nsch;
    empty(&T.a, GW_COAP_ACK, 0x7777);
    cr_assert_eq(T.nsch, s0 + 1);
    const struct gw_msg *d = last_kind(GW_MSG_ANSWER_DONE);
    cr_assert_not_null(d);
    cr_assert_eq(d->client_mid, 0x7777);
    cr_assert(gw_ep_eq(&d->ep, &T.a));
    empty(&T.b, GW_COAP_ACK, 0x7778);
    cr_assert_eq(T.nsch, s0 + 1, "a stranger's ACK goes nowhere");
}

Test(fe_kept, ordinary_answers_are_not_reported)
{
    session(&T.a);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 11, "ab", "coap://" DEV "/value", NULL, NULL);
    struct gw_msg r = T.sch[0].m;
    r.kind = GW_MSG_RESP;
    r.flags = GW_MF_ANSWER;
    uint8_t ans[32];
    struct gw_cb b;
    gw_cb_init(&b, ans, sizeof(ans), GW_COAP_CON, GW_COAP_CONTENT, 0, r.token, r.tkl);
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    r.len = (uint16_t)len;
    unsigned n0 = T.nout;
    fe_core_deliver(&T.core, &r, ans);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    empty(&T.a, GW_COAP_ACK, m.mid);
    cr_assert_eq(count_kind(GW_MSG_ANSWER_DONE), 0);
}

Test(fe_kept, start_is_announced)
{
    cr_assert_eq(fe_core_announce_start(&T.core), 0);
    cr_assert_eq(T.nsch, 1);
    cr_assert_eq(T.sch[0].m.kind, GW_MSG_FE_START);
    cr_assert_eq(T.sch[0].m.fe, 0);
    T.sch_full = true;
    cr_assert_eq(fe_core_announce_start(&T.core), GW_EFULL, "a full ring: the caller tries again");
}
