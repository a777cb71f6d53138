/* SPDX-License-Identifier: MIT */
/* test_core.c - the frontend's request handling (fe_core.c) without
 * sockets: datagrams in, datagrams and scheduler records out, fake clock,
 * real LMDB in mkdtemp (SPEC S2.4, S2.8, S3.1-S3.6). */
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
    struct { struct gw_ep ep; uint8_t buf[GW_COAP_MAX_MSG + 64]; size_t len; } out[64];
    unsigned nout;
    struct { struct gw_msg m; uint8_t data[GW_COAP_MAX_MSG + 16]; } sch[16];
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
    write_file("devices.csv", "mac,address,type,key\n" DEV ",10.1.0.1,normal,000102030405060708090a0b0c0d0e0f\n");
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
    struct fe_io io = { &T, io_send, io_to_sch };
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

TestSuite(fe_core, .init = setup, .fini = teardown);

static void dgram(const struct gw_ep *ep, uint8_t type, uint8_t code, uint16_t mid, const char *tok,
                  const char *proxy, const char *path, const char *payload)
{
    uint8_t buf[1400];
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), type, code, mid, (const uint8_t *)tok, tok ? (uint8_t)strlen(tok) : 0);
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

/* S3.1: the empty ACK goes out at once; the request goes to the scheduler with the client's token. */
Test(fe_core, proxied_con_is_acked_at_once_and_forwarded)
{
    session(&T.a);
    unsigned n0 = T.nout;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x1234, "tk", "coap://" DEV "/value", NULL, NULL);
    cr_assert_eq(T.nout, n0 + 1);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.code, GW_COAP_EMPTY);
    cr_assert_eq(m.mid, 0x1234);
    cr_assert_eq(T.nsch, 1);
    struct gw_msg *q = &T.sch[0].m;
    cr_assert_eq(q->kind, GW_MSG_REQ);
    cr_assert_eq(q->client_type, GW_COAP_CON);
    cr_assert_eq(q->tkl, 2);
    cr_assert_eq(memcmp(q->token, "tk", 2), 0);
    cr_assert(gw_ep_eq(&q->ep, &T.a));
    cr_assert_eq(q->security, GW_SEC_NETMGR, "netmgr is the default session security (S2.1)");
    struct gw_coap_msg up;
    cr_assert_eq(gw_coap_parse(T.check, T.sch[0].data, q->len, &up), 0);
    cr_assert_eq(up.tkl, 8, "the gateway's own token goes to the device (S4.3)");
    /* S3.3: a duplicate is ACKed again and not forwarded twice. */
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x1234, "tk", "coap://" DEV "/value", NULL, NULL);
    cr_assert_eq(T.nsch, 1);
    out_msg(n0 + 1, &m);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.mid, 0x1234);
}

/* S2.4: no session at this address and port: 4.01 piggybacked, nothing forwarded. */
Test(fe_core, proxy_without_session_gets_401)
{
    session(&T.a);
    unsigned n0 = T.nout;
    dgram(&T.b, GW_COAP_CON, GW_COAP_GET, 7, "x", "coap://" DEV "/value", NULL, NULL);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.code, GW_COAP_UNAUTHORIZED);
    cr_assert_gt(m.payload_len, 0, "with a diagnostic payload");
    cr_assert_eq(T.nsch, 0);
}

/* S3.1: NON in, no ACK, NON out. */
Test(fe_core, non_request_gets_non_answer)
{
    session(&T.a);
    unsigned n0 = T.nout;
    dgram(&T.a, GW_COAP_NON, GW_COAP_GET, 9, "nn", "coap://" DEV "/value", NULL, NULL);
    cr_assert_eq(T.nout, n0, "no ACK for a NON");
    cr_assert_eq(T.nsch, 1);
    struct gw_msg r = T.sch[0].m;
    r.kind = GW_MSG_RESP;
    r.flags = GW_MF_ANSWER;
    uint8_t ans[32];
    struct gw_cb b;
    gw_cb_init(&b, ans, sizeof(ans), GW_COAP_CON, GW_COAP_CONTENT, 0, r.token, r.tkl);
    gw_cb_payload(&b, "7", 1);
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    r.len = (uint16_t)len;
    fe_core_deliver(&T.core, &r, ans);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.type, GW_COAP_NON);
    cr_assert_eq(m.code, GW_COAP_CONTENT);
    cr_assert_eq(fe_core_next(&T.core), UINT64_MAX, "a NON is not retransmitted");
}

/* S3.2: the separate CON answer is retransmitted with back-off until ACKed. */
Test(fe_core, separate_answer_is_retransmitted_until_acked)
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
    cr_assert_eq(m.type, GW_COAP_CON);
    cr_assert_eq(memcmp(m.token, "ab", 2), 0);
    uint16_t mid = m.mid;
    uint64_t sent = T.fc.ms;
    uint64_t first = fe_core_next(&T.core);
    cr_assert(first >= sent + 100 && first <= sent + 150, "first timeout in [T, 1.5T]");
    T.fc.ms = first;
    fe_core_timer(&T.core, T.fc.ms);
    cr_assert_eq(T.nout, n0 + 2, "retransmitted");
    out_msg(n0 + 1, &m);
    cr_assert_eq(m.mid, mid, "with the same MID");
    uint64_t second = fe_core_next(&T.core);
    cr_assert_eq(second - first, 2 * (first - sent), "the timeout doubles");
    uint8_t ack[4] = { 0x60, 0, (uint8_t)(mid >> 8), (uint8_t)mid };
    fe_core_datagram(&T.core, &T.a, ack, 4);
    cr_assert_eq(fe_core_next(&T.core), UINT64_MAX, "the ACK stops it");
}

/* S2.8: more requests in flight than the session may hold: 4.29 with Max-Age. */
Test(fe_core, inflight_limit_gets_429_with_max_age)
{
    session(&T.a);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 21, "r1", "coap://" DEV "/v1", NULL, NULL);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 22, "r2", "coap://" DEV "/v2", NULL, NULL);
    unsigned n0 = T.nout;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 23, "r3", "coap://" DEV "/v3", NULL, NULL);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.code, GW_COAP_TOO_MANY);
    cr_assert_not_null(gw_coap_opt_find(&m, GW_OPT_MAX_AGE), "Max-Age as a retry hint (RFC 8516)");
    cr_assert_eq(T.nsch, 2);
}

/* S3.4, S3.5, S3.6: ping, malformed, over-size and unknown version. */
Test(fe_core, ping_malformed_oversize_and_version)
{
    uint8_t ping[4] = { 0x40, 0, 0x00, 0x05 };
    fe_core_datagram(&T.core, &T.a, ping, 4);
    struct gw_coap_msg m;
    out_msg(0, &m);
    cr_assert_eq(m.type, GW_COAP_RST);
    cr_assert_eq(m.mid, 5);
    uint8_t bad[5] = { 0x40, 1, 0, 6, 0xff };
    fe_core_datagram(&T.core, &T.a, bad, 5);
    cr_assert_eq(T.nout, 2);
    cr_assert_eq(T.out[1].buf[0] >> 4 & 3, GW_COAP_RST, "a malformed CON is rejected with RST");
    uint8_t v2[4] = { 0x80, 1, 0, 7 };
    fe_core_datagram(&T.core, &T.a, v2, 4);
    cr_assert_eq(T.nout, 2, "an unknown version is ignored");
    static uint8_t big[1300];
    struct gw_cb b;
    gw_cb_init(&b, big, sizeof(big), GW_COAP_CON, GW_COAP_POST, 8, (const uint8_t *)"b", 1);
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "echo");
    static char pl[1250];
    memset(pl, 'x', sizeof(pl) - 1);
    gw_cb_payload(&b, pl, sizeof(pl) - 1);
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    fe_core_datagram(&T.core, &T.a, big, len);
    out_msg(2, &m);
    cr_assert_eq(m.code, GW_COAP_TOO_LARGE);
    const struct gw_coap_opt *s1 = gw_coap_opt_find(&m, GW_OPT_SIZE1);
    uint32_t v;
    cr_assert(s1 && gw_coap_uint(s1->val, s1->len, &v) && v == 1152);
}

/* A full scheduler ring: 5.03 at once, never silence. */
Test(fe_core, full_ring_gets_503)
{
    session(&T.a);
    T.sch_full = true;
    unsigned n0 = T.nout;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 31, "f", "coap://" DEV "/value", NULL, NULL);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.code, GW_COAP_UNAVAILABLE);
}
