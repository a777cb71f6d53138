/* SPDX-License-Identifier: MIT */
/* fe_harness.h - drives the frontend core (fe_core.h) as test_core.c and
 * test_kept.c see it: a real LMDB store in mkdtemp with one device, the
 * development JWT key, a fake clock, and the core's outputs (datagrams to
 * clients, records for the scheduler) recorded in T. dgram() feeds a
 * datagram in, out_msg() parses what went out, session() opens a session.
 *
 * One global harness T per test process (criterion runs every test in its
 * own process); a test file declares its suite with
 * TestSuite(name, .init = setup, .fini = teardown). Static inline, so a
 * file may use any subset without unused-function warnings. Modelled on
 * tests/unit/scheduler/sch_harness.h. */
#ifndef FE_HARNESS_H
#define FE_HARNESS_H

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

static inline void io_send(void *ctx, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    (void)ctx;
    cr_assert_lt(T.nout, 64);
    T.out[T.nout].ep = *ep;
    memcpy(T.out[T.nout].buf, buf, len);
    T.out[T.nout++].len = len;
}

static inline int io_to_sch(void *ctx, const struct gw_msg *m, const uint8_t *data)
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

static inline void write_file(const char *name, const char *text)
{
    char p[128];
    snprintf(p, sizeof(p), "%s/%s", T.dir, name);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static inline void setup(void)
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
    struct fe_out io = { &T, io_send, io_to_sch, NULL };
    cr_assert_eq(fe_core_init(&T.core, &T.cfg, 0, &T.store, T.auth, T.parser, &io, NULL), 0);
    fe_core_set_clock(&T.core, &T.clock);
    T.a = (struct gw_ep){ .family = 4, .port = 40001, .addr = { 127, 0, 0, 1 } };
    T.b = (struct gw_ep){ .family = 4, .port = 40002, .addr = { 127, 0, 0, 1 } };
}

static inline void teardown(void)
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

static inline void dgram(const struct gw_ep *ep, uint8_t type, uint8_t code, uint16_t mid,
                         const char *tok, const char *proxy, const char *path, const char *payload)
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

static inline void out_msg(unsigned i, struct gw_coap_msg *m)
{
    cr_assert_lt(i, T.nout);
    cr_assert_eq(gw_coap_parse(T.check, T.out[i].buf, T.out[i].len, m), 0);
}

static inline void session(const struct gw_ep *ep)
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

#endif
