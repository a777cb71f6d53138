/* SPDX-License-Identifier: MIT */
/* test_regress_fuzz.c - inputs found by tests/fuzz (fuzz_route,
 * fuzz_frontend) that were handled wrongly, kept as regression tests
 * (SPEC S4.1-S4.3, S8.2, S9). Each names the fuzz target and what it found. */
#include "fe_block.h"
#include "fe_route.h"
#include "gw_coap.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define E(expr) cr_assert_eq((expr), 0, "%s", #expr)

/* parser holds the message fed in; out_parser parses what the code built
 * from it while that message is still in use. */
static struct gw_coap_parser *parser, *out_parser;
static uint8_t wire[GW_COAP_MAX_MSG + 16];
static struct fe_target t;

static void setup(void)
{
    E(gw_coap_parser_new(&parser));
    E(gw_coap_parser_new(&out_parser));
}

static void teardown(void)
{
    gw_coap_parser_free(parser);
    gw_coap_parser_free(out_parser);
}

TestSuite(regress_fuzz, .init = setup, .fini = teardown);

struct opt {
    uint16_t num;
    const void *val;
    size_t len;
};

/* A CON GET with these options (ascending), parsed back into *m. */
static void mk(struct gw_coap_msg *m, const struct opt *o, size_t n)
{
    struct gw_cb b;
    gw_cb_init(&b, wire, sizeof(wire), GW_COAP_CON, GW_COAP_GET, 0x1234, (const uint8_t *)"tok1",
               4);
    for (size_t i = 0; i < n; i++)
        gw_cb_opt(&b, o[i].num, o[i].val, o[i].len);
    size_t len;
    E(gw_cb_finish(&b, &len));
    E(gw_coap_parse(parser, wire, len, m));
}

static void mk_uri(struct gw_coap_msg *m, const void *uri, size_t len)
{
    struct opt o[] = { { GW_OPT_PROXY_URI, uri, len } };
    mk(m, o, 1);
}

static void expect_refused(const struct gw_coap_msg *m, uint8_t code)
{
    struct fe_verdict v;
    cr_assert_eq(fe_route_target(m, &t, &v), GW_EBADMSG, "target accepted");
    cr_assert_eq(v.code, code, "verdict %d.%02d", v.code >> 5, v.code & 31);
    cr_assert_not_null(v.diag);
}

/* fuzz_route: a NUL in the Proxy-Uri host ("coap://\0...") was accepted and
 * cut the host short as a C string; "coap://<mac>%00x" named device <mac>.
 * A host with a NUL is malformed: 4.00 (S9). */
Test(regress_fuzz, proxy_uri_host_with_nul_is_refused)
{
    struct gw_coap_msg m;
    static const char raw[] = "coap://\0\xff\x01"
                              "12bbbbb7/x";
    mk_uri(&m, raw, sizeof(raw) - 1);
    expect_refused(&m, GW_COAP_BAD_REQUEST);
    mk_uri(&m, "coap://0011223344556677%00evil/temp",
           strlen("coap://0011223344556677%00evil/temp"));
    expect_refused(&m, GW_COAP_BAD_REQUEST);
}

/* Same for the Proxy-Scheme form: a NUL in Uri-Host, and "coap\0..." as
 * the scheme (it compared equal to "coap" as a C string). */
Test(regress_fuzz, uri_host_or_scheme_with_nul_is_refused)
{
    struct gw_coap_msg m;
    struct opt o1[] = { { GW_OPT_URI_HOST, "0011223344556677\0x", 18 },
                        { GW_OPT_PROXY_SCHEME, "coap", 4 } };
    mk(&m, o1, 2);
    expect_refused(&m, GW_COAP_BAD_REQUEST);
    struct opt o2[] = { { GW_OPT_URI_HOST, "0011223344556677", 16 },
                        { GW_OPT_PROXY_SCHEME, "coap\0x", 6 } };
    mk(&m, o2, 2);
    expect_refused(&m, GW_COAP_PROXY_NOT_SUPPORTED);
}

/* fuzz_route: "a&&b" in a Proxy-Uri query gave an empty Uri-Query, and a
 * path or query part over 255 bytes an over-long Uri-Path/Uri-Query. The
 * device request built from it did not parse (libcoap refuses both), so
 * the scheduler answered 5.00 "malformed request record" for a client
 * error. Now 4.00 at the frontend. */
Test(regress_fuzz, unforwardable_query_or_path_part_is_4_00)
{
    struct gw_coap_msg m;
    static const char q[] =
        "coap://\x10\\?\x01\0\0\0\0\0\0\0\x07\xff\0\0\xff\xff\xff\xff\xff\xff\xff&&&&&&\xff,\x00"
        "2";
    mk_uri(&m, q, sizeof(q) - 1);
    expect_refused(&m, GW_COAP_BAD_REQUEST);
    const char *s = "coap://0011223344556677/temp?a&&b";
    mk_uri(&m, s, strlen(s));
    expect_refused(&m, GW_COAP_BAD_REQUEST);
    char longp[400];
    snprintf(longp, sizeof(longp), "coap://0011223344556677/%0300d", 7);
    mk_uri(&m, longp, strlen(longp));
    expect_refused(&m, GW_COAP_BAD_REQUEST);
    snprintf(longp, sizeof(longp), "coap://0011223344556677/t?%0256d", 7);
    mk_uri(&m, longp, strlen(longp));
    expect_refused(&m, GW_COAP_BAD_REQUEST);
}

/* The limits themselves still pass, and what passes builds a request that
 * parses (RFC 7252 6.5 step 9: "?" alone gives no Uri-Query). */
Test(regress_fuzz, forwardable_targets_build_parseable_requests)
{
    const char *ok[] = { "coap://0011223344556677/temp?", "coap://0011223344556677/t?a&b", NULL,
                         NULL };
    static char p255[400], q255[400];
    snprintf(p255, sizeof(p255), "coap://0011223344556677/%0255d", 7);
    snprintf(q255, sizeof(q255), "coap://0011223344556677/t?%0255d", 7);
    ok[2] = p255;
    ok[3] = q255;
    for (size_t i = 0; i < 4; i++) {
        struct gw_coap_msg m, up;
        struct fe_verdict v;
        mk_uri(&m, ok[i], strlen(ok[i]));
        cr_assert_eq(fe_route_target(&m, &t, &v), 0, "%s: %s", ok[i], v.diag ? v.diag : "");
        uint8_t out[GW_COAP_MAX_MSG + 64];
        size_t len;
        E(fe_route_build(&m, &t, out, sizeof(out), &len));
        cr_assert_eq(gw_coap_parse(out_parser, out, len, &up), 0,
                     "device request for %s does not parse", ok[i]);
        if (i == 0)
            cr_assert_eq(t.nquery, 0, "an empty query gives no Uri-Query");
    }
}

/* fuzz_frontend: POST /echo with an empty Block2 option (block 0, 16 bytes)
 * and no payload made send_answer slice an answer whose payload pointer is
 * NULL, and fe_block_slice computed NULL + 0: undefined behaviour that
 * clang's UBSan (the fuzz build) aborts on. The datagram was
 *   42 02 00 3c 62 31 b4 'echo' 30 03 08 ff 41 41 41 41 41 10.
 * Slicing an empty answer yields block 0, no more blocks, Size2 0, no payload. */
Test(regress_fuzz, block2_slice_of_an_empty_answer)
{
    struct gw_coap_msg full;
    memset(&full, 0, sizeof(full));
    full.type = GW_COAP_ACK;
    full.code = GW_COAP_CHANGED;
    full.payload = NULL;
    full.payload_len = 0;
    uint8_t out[64];
    size_t len;
    E(fe_block_slice(&full, 0, 0, GW_COAP_ACK, 0x3c, (const uint8_t *)"b1", 2, out, sizeof(out),
                     &len));
    struct gw_coap_msg m;
    E(gw_coap_parse(out_parser, out, len, &m));
    cr_assert_eq(m.code, GW_COAP_CHANGED);
    cr_assert_eq(m.payload_len, 0);
    struct gw_block b;
    cr_assert(gw_block_decode(gw_coap_opt_find(&m, GW_OPT_BLOCK2), &b));
    cr_assert_eq(b.num, 0);
    cr_assert_not(b.more);
    const struct gw_coap_opt *s2 = gw_coap_opt_find(&m, GW_OPT_SIZE2);
    cr_assert_not_null(s2);
    uint32_t size2 = 1;
    cr_assert(gw_coap_uint(s2->val, s2->len, &size2));
    cr_assert_eq(size2, 0);
    cr_assert_eq(fe_block_slice(&full, 1, 0, GW_COAP_ACK, 0x3c, (const uint8_t *)"b1", 2, out,
                                sizeof(out), &len),
                 GW_EBADMSG, "no block 1 of an empty answer");
}
