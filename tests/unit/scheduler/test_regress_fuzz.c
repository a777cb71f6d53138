/* SPDX-License-Identifier: MIT */
/* test_regress_fuzz.c - inputs found by tests/fuzz/fuzz_scheduler that were
 * handled wrongly, kept as regression tests (SPEC S4.6, S6, S9).
 *
 * fuzz_scheduler found that a device answer whose code is no response - a
 * reserved class 1, 6 or 7 (RFC 7252 12.1), or a request code in a
 * piggybacked ACK - was relayed to the client as its final answer (a CON
 * 1.03 with the right token, three records into the run). A client cannot
 * take that as a response, so the request never got one (S1.3). Such an
 * answer now ends the exchange with 5.02 (S4.6: a response the gateway
 * cannot process), and a stray one is rejected, never fanned out. */
#include "sch_harness.h"

static void setup(void)
{
    h_init();
}
static void teardown(void)
{
    h_fini();
}

TestSuite(regress_fuzz, .init = setup, .fini = teardown);

static void assert_bad_gateway(unsigned i, const char *tok)
{
    struct h_pkt p;
    h_client_pkt(i, &p);
    h_assert_client_token(i, tok);
    cr_assert_eq(p.code, GW_COAP_BAD_GATEWAY, "client record %u: code %d.%02d, expected 5.02", i,
                 p.code >> 5, p.code & 31);
    cr_assert_gt(p.plen, 0, "5.02 carries a diagnostic");
}

/* The fuzzer's input: a separate CON response with code 1.03. */
Test(regress_fuzz, separate_response_with_reserved_class_gives_5_02)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "c1" });
    struct h_pkt req;
    h_last_tx(&req);
    unsigned before = H.nmesh;
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_CON,
                                    .code = GW_CODE(1, 3),
                                    .mid = (uint16_t)(req.mid + 1),
                                    .token = req.token });
    cr_assert_eq(H.nclient, 1, "exactly one final answer");
    assert_bad_gateway(0, "c1");
    cr_assert_eq(H.nmesh, before + 1, "the CON is answered (rejected) at once");
    struct h_pkt rst;
    h_mesh_pkt(H.nmesh - 1, &rst);
    cr_assert_eq(rst.type, GW_COAP_RST, "a message with a reserved code is rejected with RST");
    h_advance(3600 * 1000);
    cr_assert_eq(H.nclient, 1, "no second answer later");
}

/* Piggybacked: an ACK with class 6 or 7, or with a request code (0.01). */
Test(regress_fuzz, piggybacked_non_response_code_gives_5_02)
{
    static const uint8_t codes[] = { GW_CODE(6, 1), GW_CODE(7, 31), GW_COAP_GET };
    h_start();
    for (unsigned i = 0; i < GW_ARRAY_LEN(codes); i++) {
        char tok[4];
        snprintf(tok, sizeof(tok), "c%u", i);
        h_request(&(struct h_req){ .mac = DEV_A + i % 3, .tok = tok });
        struct h_pkt req;
        h_last_tx(&req);
        h_device_send(&(struct h_resp){ .mac = DEV_A + i % 3,
                                        .type = GW_COAP_ACK,
                                        .code = codes[i],
                                        .mid = req.mid,
                                        .token = req.token,
                                        .payload = "x" });
        cr_assert_eq(H.nclient, i + 1, "code %d.%02d: one final answer", codes[i] >> 5,
                     codes[i] & 31);
        assert_bad_gateway(i, tok);
    }
}

/* An observation: a notification with a reserved class is not fanned out to
 * the observers (they would take it as a response); the observation stays. */
Test(regress_fuzz, notification_with_reserved_class_is_not_fanned_out)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "o1", .flags = GW_MF_OBS_REGISTER });
    struct h_pkt req;
    h_last_tx(&req);
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = req.mid,
                                    .token = req.token,
                                    .has_obs = true,
                                    .obs = 5,
                                    .payload = "20" });
    cr_assert_eq(H.nclient, 1, "the registration is answered");
    unsigned nmesh = H.nmesh;
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_NON,
                                    .code = GW_CODE(7, 1),
                                    .mid = 0x7777,
                                    .token = req.token,
                                    .has_obs = true,
                                    .obs = 6,
                                    .payload = "junk" });
    cr_assert_eq(H.nclient, 1, "nothing reaches the observer");
    cr_assert_eq(H.nmesh, nmesh, "a NON is dropped, not answered");
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_NON,
                                    .code = GW_COAP_CONTENT,
                                    .mid = 0x7778,
                                    .token = req.token,
                                    .has_obs = true,
                                    .obs = 7,
                                    .payload = "21" });
    cr_assert_eq(H.nclient, 2, "the next good notification still arrives");
    struct h_pkt n;
    h_client_pkt(1, &n);
    cr_assert_eq(n.code, GW_COAP_CONTENT);
    cr_assert_str_eq(n.payload, "21");
}
