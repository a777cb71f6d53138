/* SPDX-License-Identifier: MIT */
/* test_core.c - the scheduler core without I/O (SPEC S4, S5, S1.3).
 *
 * Client REQ records are built as the frontend builds them and device
 * datagrams are fed back as MESH_RX records (sch_harness.h). Time is a fake
 * clock; rand32 is fixed where the back-off bounds are checked. The answers
 * the core hands to frontends and the datagrams it hands to meshio are
 * recorded and decoded with gw_coap_parse (libcoap underneath). */
#include "sch_harness.h"

static void setup(void)
{
    h_init();
}
static void teardown(void)
{
    h_fini();
}

TestSuite(core, .init = setup, .fini = teardown);

/* The literal text of SPEC S4.5, independent of the header's macro. */
static const char spec_busy_text[] =
    "Request blocked by device serialization requirements, another request is enqueued or in process for this device.";

static void assert_answer(unsigned i, const char *tok, uint8_t code)
{
    struct h_pkt p;
    h_client_pkt(i, &p);
    h_assert_client_token(i, tok);
    cr_assert_eq(p.code, code, "client record %u: code %d.%02d, expected %d.%02d", i, p.code >> 5,
                 p.code & 31, code >> 5, code & 31);
    cr_assert(H.client[i].env.flags & GW_MF_ANSWER, "a final answer is flagged GW_MF_ANSWER");
    cr_assert_not(H.client[i].env.flags & GW_MF_NOTIFY);
}

/* ---- S4.4 retries -------------------------------------------------------- */

/* Runs one request to a silent normal device with rand32 fixed to r and
 * checks every timeout against RFC 7252 4.2: the k-th timeout lies in
 * [T * 2^k, 1.5 * T * 2^k]; `exact` (if not 0) is the factor (x2) of the
 * first timeout over T expected for this r. */
static void run_retry_schedule(uint32_t r, unsigned exact2)
{
    H.rnd_fixed = true;
    H.rnd = r;
    h_start();
    const uint64_t T = 20000;
    cr_assert_eq(H.cfg.mesh_ack_timeout_ms, (int64_t)T,
                 "default ACK_TIMEOUT of the mesh is 20 s (S4.4)");
    cr_assert_eq(H.cfg.mesh_max_transmit, 4, "default: 4 transmissions in all (S4.4)");
    uint64_t id = h_request(&(struct h_req){ .mac = DEV_A, .tok = "c1" });
    cr_assert_eq(H.nmesh, 1, "the request goes out at once");
    struct h_pkt first;
    h_mesh_pkt(0, &first);
    cr_assert_eq(first.type, GW_COAP_CON);
    cr_assert_eq(first.code, GW_COAP_GET);
    cr_assert_str_eq(first.path, "temp");
    uint8_t mac[GW_MAC_LEN];
    h_mac(DEV_A, mac);
    cr_assert_eq(memcmp(H.mesh[0].env.mac, mac, GW_MAC_LEN), 0);

    uint64_t sent = H.fc.ms;
    uint64_t next = h_advance(0);
    for (unsigned k = 0; k < 4; k++) {
        uint64_t lo = T << k, hi = (T << k) * 3 / 2, got = next - sent;
        cr_assert(got >= lo && got <= hi, "timeout %u is %llu ms, outside [%llu, %llu]", k,
                  (unsigned long long)got, (unsigned long long)lo, (unsigned long long)hi);
        if (exact2)
            cr_assert_eq(got, (T << k) * exact2 / 2, "timeout %u with rand32 %u", k, r);
        h_at(next - 1);
        cr_assert_eq(H.nmesh, k + 1, "nothing is sent before timeout %u expires", k);
        cr_assert_eq(H.nclient, 0);
        uint64_t after = h_at(next);
        sent = next;
        if (k < 3) {
            cr_assert_eq(H.nmesh, k + 2, "retransmission %u", k + 1);
            struct h_pkt p;
            h_mesh_pkt(k + 1, &p);
            cr_assert_eq(p.mid, first.mid, "a retransmission keeps the MID");
            cr_assert_eq(memcmp(p.token, first.token, 8), 0, "a retransmission keeps the token");
            cr_assert_eq(H.mesh[k + 1].env.len, H.mesh[0].env.len);
            cr_assert_eq(memcmp(H.mesh[k + 1].data, H.mesh[0].data, H.mesh[0].env.len), 0,
                         "a retransmission is the same datagram");
            cr_assert_eq(H.nclient, 0);
            next = after;
        } else {
            cr_assert_eq(H.nmesh, 4, "exactly 4 transmissions");
            cr_assert_eq(H.nclient, 1, "then 5.04 to the client");
            assert_answer(0, "c1", GW_COAP_GATEWAY_TIMEOUT);
            cr_assert_eq(H.client[0].env.req_id, id);
        }
    }
    h_advance(3600 * 1000);
    cr_assert_eq(H.nmesh, 4, "no transmission after the last timeout");
    cr_assert_eq(H.nclient, 1, "exactly one answer");
}

/* S4.4: rand32 = 0 gives the lower bound: 20, 40, 80, 160 s. */
Test(core, retries_four_times_with_minimum_random_timeouts)
{
    run_retry_schedule(0, 2);
}

/* S4.4: rand32 = UINT32_MAX gives the upper bound: 30, 60, 120, 240 s. */
Test(core, retries_four_times_with_maximum_random_timeouts)
{
    run_retry_schedule(UINT32_MAX, 3);
}

/* S4.4: any other draw stays within the RFC intervals. */
Test(core, retries_within_rfc_intervals_for_a_middle_draw)
{
    run_retry_schedule(UINT32_MAX / 3, 0);
}

/* S4.4: a device's empty ACK stops retransmission; its separate CON
 * response is ACKed by the gateway and relayed with the client's token. */
Test(core, empty_ack_stops_retransmission_and_separate_response_is_relayed)
{
    h_start();
    uint64_t t0 = H.fc.ms;
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "c1" });
    struct h_pkt req;
    h_last_tx(&req);
    h_advance(500);
    h_empty(DEV_A, GW_COAP_ACK, req.mid);
    /* Past every retransmission deadline of the upper bound (30+60+120 s). */
    for (uint64_t t = H.fc.ms; t < t0 + 400000; t += 1000)
        h_at(t);
    cr_assert_eq(H.nmesh, 1, "no retransmission after the device's empty ACK");
    cr_assert_eq(H.nclient, 0);

    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_CON,
                                    .code = GW_COAP_CONTENT,
                                    .mid = 0x7001,
                                    .token = req.token,
                                    .has_cf = true,
                                    .cf = 0,
                                    .payload = "22.5" });
    cr_assert_eq(H.nmesh, 2, "the gateway ACKs the separate response");
    struct h_pkt ack;
    h_mesh_pkt(1, &ack);
    cr_assert_eq(ack.type, GW_COAP_ACK);
    cr_assert_eq(ack.code, GW_COAP_EMPTY);
    cr_assert_eq(ack.mid, 0x7001, "the ACK carries the response's MID");
    cr_assert_eq(ack.tkl, 0);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "c1", GW_COAP_CONTENT);
    struct h_pkt p;
    h_client_pkt(0, &p);
    cr_assert_str_eq(p.payload, "22.5");
    cr_assert_eq(p.cf, 0);
    h_advance(3600 * 1000);
    cr_assert_eq(H.nclient, 1, "no 5.04 after the answer");
    cr_assert_eq(H.nmesh, 2);
}

/* S4.4 (sch_core.h): after an empty ACK the separate response is awaited
 * until MAX_TRANSMIT_WAIT (T * 15 * 1.5 = 450 s) from the first send. */
Test(core, acked_request_without_response_times_out_at_max_transmit_wait)
{
    h_start();
    uint64_t t0 = H.fc.ms;
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "c1" });
    struct h_pkt req;
    h_last_tx(&req);
    h_empty(DEV_A, GW_COAP_ACK, req.mid);
    h_at(t0 + 450000 - 1);
    cr_assert_eq(H.nclient, 0);
    h_at(t0 + 450000);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "c1", GW_COAP_GATEWAY_TIMEOUT);
    cr_assert_eq(H.nmesh, 1);
}

/* S4.6: a piggybacked answer is relayed with the client's token, the
 * device's code, options (unknown safe-to-forward ones too) and payload. */
Test(core, piggybacked_answer_is_relayed_with_client_token_code_options_payload)
{
    h_start();
    uint64_t id = h_request(&(struct h_req){
        .mac = DEV_A, .port = 41000, .session = 77, .tok = "abcdefgh", .path = "sensors/temp" });
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_str_eq(req.path, "sensors/temp");
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = req.mid,
                                    .token = req.token,
                                    .etag = "v1",
                                    .has_cf = true,
                                    .cf = 50,
                                    .has_age = true,
                                    .age = 30,
                                    .extra_opt = 2048,
                                    .payload = "{\"t\":21.5}" });
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "abcdefgh", GW_COAP_CONTENT);
    struct h_pkt p;
    h_client_pkt(0, &p);
    cr_assert_eq(p.cf, 50);
    cr_assert_eq(p.max_age, 30);
    cr_assert_str_eq(p.etag, "v1");
    cr_assert(h_has_opt(&p, 2048), "an unknown safe-to-forward option is forwarded (S4.6)");
    cr_assert_eq(p.observe, -1);
    cr_assert_str_eq(p.payload, "{\"t\":21.5}");
    const struct gw_msg *e = &H.client[0].env;
    cr_assert_eq(e->req_id, id);
    cr_assert_eq(e->session, 77);
    cr_assert_eq(e->ep.port, 41000);
    cr_assert_not(e->flags & GW_MF_SUPPRESS);
    cr_assert_eq(H.nmesh, 1, "a piggybacked answer needs no ACK");
}

/* S4.6: a device error code is relayed as it is. */
Test(core, device_error_code_is_relayed)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "c1" });
    struct h_pkt req;
    h_last_tx(&req);
    h_piggy(DEV_A, &req, GW_COAP_NOT_FOUND, "no such sensor");
    assert_answer(0, "c1", GW_COAP_NOT_FOUND);
    struct h_pkt p;
    h_client_pkt(0, &p);
    cr_assert_str_eq(p.payload, "no such sensor");
}

/* S4.6: a device RST gives 5.02, and the exchange is over. */
Test(core, device_rst_gives_bad_gateway)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "c1" });
    struct h_pkt req;
    h_last_tx(&req);
    h_empty(DEV_A, GW_COAP_RST, req.mid);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "c1", GW_COAP_BAD_GATEWAY);
    h_advance(3600 * 1000);
    cr_assert_eq(H.nmesh, 1, "no retransmission after RST");
    cr_assert_eq(H.nclient, 1);
}

/* S4.6 + RFC 7252 5.7.1: an answer with an unknown unsafe option cannot be
 * forwarded: 5.02. */
Test(core, answer_with_unknown_unsafe_option_gives_bad_gateway)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "c1" });
    struct h_pkt req;
    h_last_tx(&req);
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = req.mid,
                                    .token = req.token,
                                    .extra_opt = 2050,
                                    .payload = "x" });
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "c1", GW_COAP_BAD_GATEWAY);
}

/* S4.6: an answer with another token than the request's is not the answer. */
Test(core, answer_with_wrong_token_gives_bad_gateway)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "c1" });
    struct h_pkt req;
    h_last_tx(&req);
    uint8_t wrong[8];
    memcpy(wrong, req.token, 8);
    wrong[7] ^= 0x55;
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = req.mid,
                                    .token = wrong,
                                    .payload = "x" });
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "c1", GW_COAP_BAD_GATEWAY);
}

/* S4.2: an unknown device gets 5.02 with a diagnostic, nothing goes out. */
Test(core, unknown_device_gives_bad_gateway)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_X, .tok = "c1" });
    cr_assert_eq(H.nmesh, 0);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "c1", GW_COAP_BAD_GATEWAY);
    struct h_pkt p;
    h_client_pkt(0, &p);
    cr_assert_gt(p.plen, 0, "5.02 carries a diagnostic payload");
    struct sch_core_counts n;
    sch_core_counts(H.core, &n);
    cr_assert_eq(n.txns, 1, "the answer is kept until the client ACKs it (S1.3)");
    h_client_acked(0);
    sch_core_counts(H.core, &n);
    cr_assert_eq(n.txns, 0);
}

/* ---- S4.5 Milli ----------------------------------------------------------- */

/* S4.5: a second request to a busy Milli gets 5.03 at once with exactly the
 * spec's payload and a Max-Age; the first one still completes. */
Test(core, milli_busy_gets_503_with_exact_payload_and_max_age)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_M, .port = 40001, .tok = "m1" });
    cr_assert_eq(H.nmesh, 1);
    cr_assert(H.mesh[0].env.flags & GW_MF_MILLI, "datagrams to a Milli are flagged for meshio");
    struct h_pkt req;
    h_last_tx(&req);
    h_request(&(struct h_req){ .mac = DEV_M, .port = 40002, .tok = "m2" });
    cr_assert_eq(H.nmesh, 1, "nothing more goes to a busy Milli");
    cr_assert_eq(H.nclient, 1, "the second request is answered at once");
    assert_answer(0, "m2", GW_COAP_UNAVAILABLE);
    struct h_pkt p;
    h_client_pkt(0, &p);
    cr_assert_eq(p.plen, strlen(spec_busy_text));
    cr_assert_str_eq(p.payload, spec_busy_text, "exactly the payload of S4.5");
    cr_assert_str_eq(p.payload, SCH_MILLI_BUSY_TEXT);
    cr_assert_eq(p.max_age, H.cfg.milli_busy_max_age_s, "Max-Age as a retry-after hint");
    cr_assert_eq(H.client[0].env.ep.port, 40002);

    h_piggy(DEV_M, &req, GW_COAP_CONTENT, "7");
    cr_assert_eq(H.nclient, 2);
    assert_answer(1, "m1", GW_COAP_CONTENT);
    /* Free again: the next request goes out (another path: /temp is cached now). */
    h_request(&(struct h_req){ .mac = DEV_M, .port = 40003, .tok = "m3", .path = "other" });
    cr_assert_eq(H.nmesh, 2);
    cr_assert_eq(H.nclient, 2);
}

/* S4.5: a Milli is never retried and gives 5.04 milli_timeout_ms after the send. */
Test(core, milli_is_never_retransmitted_and_times_out_after_milli_timeout)
{
    h_start();
    cr_assert_eq(H.cfg.milli_timeout_ms, 60000, "default Milli timeout is 60 s (S4.5)");
    uint64_t t0 = H.fc.ms;
    h_request(&(struct h_req){ .mac = DEV_M, .tok = "m1" });
    cr_assert_eq(H.nmesh, 1);
    for (uint64_t t = t0; t < t0 + 60000; t += 500)
        h_at(t);
    h_at(t0 + 59999);
    cr_assert_eq(H.nmesh, 1, "a Milli is never retransmitted");
    cr_assert_eq(H.nclient, 0);
    h_at(t0 + 60000);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "m1", GW_COAP_GATEWAY_TIMEOUT);
    cr_assert_eq(H.nmesh, 1);
    h_request(&(struct h_req){ .mac = DEV_M, .tok = "m2" });
    cr_assert_eq(H.nmesh, 2, "the Milli takes the next request after the timeout");
}

/* S4.5: counted from the send, also when the Milli sent an empty ACK. */
Test(core, milli_timeout_counts_from_send_despite_empty_ack)
{
    h_start();
    uint64_t t0 = H.fc.ms;
    h_request(&(struct h_req){ .mac = DEV_M, .tok = "m1" });
    struct h_pkt req;
    h_last_tx(&req);
    h_at(t0 + 5000);
    h_empty(DEV_M, GW_COAP_ACK, req.mid);
    h_at(t0 + 59999);
    cr_assert_eq(H.nclient, 0);
    h_at(t0 + 60000);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "m1", GW_COAP_GATEWAY_TIMEOUT);
    cr_assert_eq(H.nmesh, 1);
}

/* ---- S4.4 NSTART and the per-device FIFO --------------------------------- */

/* S4.4: NSTART 1: a second request to a busy device waits in its FIFO and
 * goes out when the first completes; another device is not held up. */
Test(core, nstart_one_queues_second_request_until_first_completes)
{
    h_start();
    cr_assert_eq(H.cfg.nstart, 1);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "q1", .path = "p1" });
    struct h_pkt r1;
    h_last_tx(&r1);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "q2", .path = "p2" });
    cr_assert_eq(H.nmesh, 1, "the second request waits");
    cr_assert_eq(H.nclient, 0, "and is not refused");
    struct sch_core_counts n;
    sch_core_counts(H.core, &n);
    cr_assert_eq(n.queued, 1);
    cr_assert_eq(n.inflight, 1);

    h_request(&(struct h_req){ .mac = DEV_B, .port = 40003, .tok = "b1" });
    cr_assert_eq(H.nmesh, 2, "another device is not held up");
    struct h_pkt rb;
    h_last_tx(&rb);

    h_piggy(DEV_A, &r1, GW_COAP_CONTENT, "one");
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "q1", GW_COAP_CONTENT);
    cr_assert_eq(H.nmesh, 3, "the queued request goes out when the first completes");
    struct h_pkt r2;
    h_last_tx(&r2);
    cr_assert_str_eq(r2.path, "p2");
    cr_assert_neq(r2.mid, r1.mid);
    cr_assert_neq(memcmp(r2.token, r1.token, 8), 0);
    h_piggy(DEV_A, &r2, GW_COAP_CONTENT, "two");
    cr_assert_eq(H.nclient, 2);
    assert_answer(1, "q2", GW_COAP_CONTENT);
    struct h_pkt p;
    h_client_pkt(1, &p);
    cr_assert_str_eq(p.payload, "two");
}

/* S4.4: the FIFO is bounded by device_queue_max; one more gets 5.03; the
 * queued ones go out in order. */
Test(core, full_device_fifo_gives_503_and_queue_is_fifo)
{
    H.cfg.device_queue_max = 2;
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "q1", .path = "p1" });
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "q2", .path = "p2" });
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40003, .tok = "q3", .path = "p3" });
    cr_assert_eq(H.nclient, 0);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40004, .tok = "q4", .path = "p4" });
    cr_assert_eq(H.nclient, 1, "the request over the bound is refused at once");
    assert_answer(0, "q4", GW_COAP_UNAVAILABLE);
    cr_assert_eq(H.nmesh, 1);

    const char *paths[] = { "p1", "p2", "p3" }, *toks[] = { "q1", "q2", "q3" };
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_eq(H.nmesh, i + 1);
        struct h_pkt r;
        h_last_tx(&r);
        cr_assert_str_eq(r.path, paths[i], "FIFO order");
        h_piggy(DEV_A, &r, GW_COAP_CONTENT, paths[i]);
        cr_assert_eq(H.nclient, i + 2);
        assert_answer(i + 1, toks[i], GW_COAP_CONTENT);
    }
    cr_assert_eq(H.nmesh, 3);
}

/* S9, sch_core.h: a full transaction table gets 5.03, and the slot is usable
 * again once a transaction ends. */
Test(core, full_transaction_table_gives_503)
{
    H.max_txn = 2;
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "a1" });
    struct h_pkt ra;
    h_last_tx(&ra);
    h_request(&(struct h_req){ .mac = DEV_B, .port = 40002, .tok = "b1" });
    cr_assert_eq(H.nmesh, 2);
    h_request(&(struct h_req){ .mac = DEV_C, .port = 40003, .tok = "c1" });
    cr_assert_eq(H.nmesh, 2);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "c1", GW_COAP_UNAVAILABLE);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40004, .tok = "a2" });
    cr_assert_eq(H.nclient, 2, "a request that would queue needs a slot too");
    assert_answer(1, "a2", GW_COAP_UNAVAILABLE);

    h_piggy(DEV_A, &ra, GW_COAP_CONTENT, "x");
    assert_answer(2, "a1", GW_COAP_CONTENT);
    h_client_acked(2); /* the answer's slot is free once its client ACKed it */
    h_request(&(struct h_req){ .mac = DEV_C, .port = 40003, .tok = "c2" });
    cr_assert_eq(H.nmesh, 3, "the freed slot serves the next request");
    cr_assert_eq(H.nclient, 3);
}

/* ---- S5 cache ------------------------------------------------------------ */

static void get_and_answer(uint16_t port, const char *tok, const char *path, bool has_age,
                           uint32_t age, const char *payload)
{
    unsigned m0 = H.nmesh, c0 = H.nclient;
    h_request(&(struct h_req){ .mac = DEV_A, .port = port, .tok = tok, .path = path });
    cr_assert_eq(H.nmesh, m0 + 1, "a cache miss goes to the device");
    struct h_pkt r;
    h_last_tx(&r);
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = r.mid,
                                    .token = r.token,
                                    .has_cf = true,
                                    .cf = 0,
                                    .has_age = has_age,
                                    .age = age,
                                    .payload = payload });
    cr_assert_eq(H.nclient, c0 + 1);
    assert_answer(c0, tok, GW_COAP_CONTENT);
}

/* S5.1: a 2.05 to a CON GET is served from the cache to a second identical
 * GET, with Max-Age reduced by the entry's age; no second datagram. */
Test(core, cached_answer_is_served_with_reduced_max_age)
{
    h_start();
    get_and_answer(40001, "g1", "temp", true, 60, "21");
    h_advance(10000);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "g2", .path = "temp" });
    cr_assert_eq(H.nmesh, 1, "served from the cache: nothing sent to the device");
    cr_assert_eq(H.nclient, 2);
    assert_answer(1, "g2", GW_COAP_CONTENT);
    struct h_pkt p;
    h_client_pkt(1, &p);
    cr_assert_eq(p.max_age, 50, "Max-Age reduced by the 10 s age");
    cr_assert_str_eq(p.payload, "21");
    cr_assert_eq(p.cf, 0);
    /* Another resource is not a hit. */
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "g3", .path = "hum" });
    cr_assert_eq(H.nmesh, 2);
}

/* S5.1: after Max-Age the entry is not served. */
Test(core, cached_answer_expires_after_max_age)
{
    h_start();
    get_and_answer(40001, "g1", "temp", true, 5, "21");
    h_advance(5000);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "g2", .path = "temp" });
    cr_assert_eq(H.nmesh, 2, "an expired entry is not served");
}

/* S5.3: a PUT to the resource makes its cached entry stale. */
Test(core, put_invalidates_cached_entry)
{
    h_start();
    get_and_answer(40001, "g1", "temp", true, 60, "21");
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "g2", .path = "temp" });
    cr_assert_eq(H.nmesh, 1, "cached before the PUT");
    h_request(&(struct h_req){ .mac = DEV_A,
                               .port = 40003,
                               .tok = "p1",
                               .code = GW_COAP_PUT,
                               .path = "temp",
                               .payload = "25" });
    cr_assert_eq(H.nmesh, 2);
    struct h_pkt r;
    h_last_tx(&r);
    cr_assert_eq(r.code, GW_COAP_PUT);
    cr_assert_str_eq(r.payload, "25");
    h_piggy(DEV_A, &r, GW_COAP_CHANGED, NULL);
    assert_answer(2, "p1", GW_COAP_CHANGED);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "g3", .path = "temp" });
    cr_assert_eq(H.nmesh, 3, "the GET after the PUT goes to the device");
    cr_assert_eq(H.nclient, 3);
}

/* S5.1 / RFC 7252 5.6.1: Max-Age 0 is not cached. */
Test(core, max_age_zero_is_not_cached)
{
    h_start();
    get_and_answer(40001, "g1", "temp", true, 0, "21");
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "g2", .path = "temp" });
    cr_assert_eq(H.nmesh, 2, "Max-Age 0: asked again");
}

/* S5.1: only answers to CON GETs are stored. */
Test(core, answer_to_non_get_is_not_cached)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "n1", .non = true });
    struct h_pkt r;
    h_last_tx(&r);
    cr_assert_eq(r.type, GW_COAP_CON, "the mesh leg is CON for a normal device (S4.4)");
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = r.mid,
                                    .token = r.token,
                                    .has_age = true,
                                    .age = 60,
                                    .payload = "21" });
    cr_assert_eq(H.nclient, 1);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "g2" });
    cr_assert_eq(H.nmesh, 2);
}

/* ---- S4.9 No-Response ----------------------------------------------------- */

/* S4.9 / RFC 7967: No-Response 2 (no 2.xx) flags the 2.05 as suppressed; a
 * 4.xx under the same value is not. */
Test(core, no_response_suppresses_only_the_unwanted_class)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "s1", .noresp = 2 });
    struct h_pkt r;
    h_last_tx(&r);
    h_piggy(DEV_A, &r, GW_COAP_CONTENT, "ok");
    cr_assert_eq(H.nclient, 1);
    cr_assert(H.client[0].env.flags & GW_MF_SUPPRESS, "2.05 not wanted: GW_MF_SUPPRESS");
    cr_assert(H.client[0].env.flags & GW_MF_ANSWER, "still accounted for as the answer");

    h_request(
        &(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "s2", .path = "other", .noresp = 2 });
    h_last_tx(&r);
    h_piggy(DEV_A, &r, GW_COAP_NOT_FOUND, NULL);
    cr_assert_eq(H.nclient, 2);
    cr_assert_not(H.client[1].env.flags & GW_MF_SUPPRESS, "4.04 is wanted under No-Response 2");
}

/* ---- S1.3 crash recovery ----------------------------------------------- */

/* S1.3: a request in flight (SENT) and one queued survive a scheduler that
 * is replaced over the same table: the device's late answer still reaches
 * the client, exactly once, and the queued request follows. */
Test(core, restart_answers_inflight_and_queued_requests_exactly_once)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "r1", .path = "a" });
    struct h_pkt r1;
    h_last_tx(&r1);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "r2", .path = "b" });
    cr_assert_eq(H.nmesh, 1);
    h_advance(1000);

    h_restart();
    cr_assert_eq(H.nclient, 0, "nothing is answered by the restart itself");
    cr_assert_eq(H.nmesh, 1, "the in-flight request is not re-sent early");
    struct sch_core_counts n;
    sch_core_counts(H.core, &n);
    cr_assert_eq(n.txns, 2);
    cr_assert_eq(n.inflight, 1);
    cr_assert_eq(n.queued, 1);

    h_piggy(DEV_A, &r1, GW_COAP_CONTENT, "A");
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "r1", GW_COAP_CONTENT);
    cr_assert_eq(H.nmesh, 2, "the queued request goes out after the answer");
    struct h_pkt r2;
    h_last_tx(&r2);
    cr_assert_str_eq(r2.path, "b");
    cr_assert_neq(r2.mid, r1.mid, "a new MID, not one still in use");
    h_piggy(DEV_A, &r2, GW_COAP_CONTENT, "B");
    cr_assert_eq(H.nclient, 2);
    assert_answer(1, "r2", GW_COAP_CONTENT);

    h_advance(3600 * 1000);
    cr_assert_eq(h_client_count_tok(0, "r1"), 1, "exactly one answer for r1");
    cr_assert_eq(h_client_count_tok(0, "r2"), 1, "exactly one answer for r2");
    cr_assert_eq(H.nmesh, 2);
}

/* S1.3: the retransmission schedule (absolute deadlines, MID, token) goes on
 * in the new scheduler, and the timeout is answered exactly once. */
Test(core, restart_keeps_retransmission_schedule_and_times_out_once)
{
    H.rnd_fixed = true;
    H.rnd = 0;
    h_start();
    uint64_t t0 = H.fc.ms;
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "r1" });
    struct h_pkt r1;
    h_last_tx(&r1);
    h_at(t0 + 5000);
    h_restart();
    h_at(t0 + 19999);
    cr_assert_eq(H.nmesh, 1);
    h_at(t0 + 20000);
    cr_assert_eq(H.nmesh, 2, "the first retransmission keeps its deadline across the restart");
    struct h_pkt p;
    h_mesh_pkt(1, &p);
    cr_assert_eq(p.mid, r1.mid);
    cr_assert_eq(memcmp(p.token, r1.token, 8), 0);
    h_at(t0 + 60000);
    h_at(t0 + 140000);
    h_at(t0 + 299999);
    cr_assert_eq(H.nmesh, 4);
    cr_assert_eq(H.nclient, 0);
    h_at(t0 + 300000);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "r1", GW_COAP_GATEWAY_TIMEOUT);
    h_advance(3600 * 1000);
    cr_assert_eq(H.nclient, 1);
}

/* S1.3 + S4.4: an exchange the device ACKed before the restart still takes
 * its separate response afterwards. */
Test(core, restart_after_empty_ack_relays_separate_response)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "r1" });
    struct h_pkt r1;
    h_last_tx(&r1);
    h_empty(DEV_A, GW_COAP_ACK, r1.mid);
    h_restart();
    h_advance(100000);
    cr_assert_eq(H.nmesh, 1, "an ACKed exchange is not retransmitted after the restart");
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_CON,
                                    .code = GW_COAP_CONTENT,
                                    .mid = 0x3333,
                                    .token = r1.token,
                                    .payload = "late" });
    cr_assert_eq(H.nmesh, 2);
    struct h_pkt ack;
    h_mesh_pkt(1, &ack);
    cr_assert_eq(ack.type, GW_COAP_ACK);
    cr_assert_eq(ack.mid, 0x3333);
    cr_assert_eq(H.nclient, 1);
    assert_answer(0, "r1", GW_COAP_CONTENT);
    h_advance(3600 * 1000);
    cr_assert_eq(H.nclient, 1);
}

/* S1.3: an answer a full frontend ring refused is kept and handed over
 * later (sch_core_flush), exactly once. */
Test(core, answer_refused_by_full_ring_is_flushed_later_exactly_once)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "f1" });
    struct h_pkt r;
    h_last_tx(&r);
    H.client_full = true;
    h_piggy(DEV_A, &r, GW_COAP_CONTENT, "kept");
    cr_assert_eq(H.client_refused, 1);
    cr_assert_eq(H.nclient, 0);
    sch_core_flush(H.core);
    cr_assert_eq(H.client_refused, 2, "retried while the ring is still full");
    H.client_full = false;
    h_advance(10);
    cr_assert_eq(H.nclient, 1, "the timer path flushes the kept answer");
    assert_answer(0, "f1", GW_COAP_CONTENT);
    struct h_pkt p;
    h_client_pkt(0, &p);
    cr_assert_str_eq(p.payload, "kept");
    sch_core_flush(H.core);
    h_advance(3600 * 1000);
    cr_assert_eq(H.nclient, 1, "handed over once");
    struct sch_core_counts n;
    sch_core_counts(H.core, &n);
    cr_assert_eq(n.txns, 0, "the slot is free again");
}

/* S1.3: a kept answer survives a scheduler restart and is delivered once. */
Test(core, answer_refused_by_full_ring_survives_restart)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "f1" });
    struct h_pkt r;
    h_last_tx(&r);
    H.client_full = true;
    h_piggy(DEV_A, &r, GW_COAP_CONTENT, "kept");
    cr_assert_eq(H.nclient, 0);
    H.client_full = false;
    h_restart();
    sch_core_flush(H.core);
    h_advance(3600 * 1000);
    cr_assert_eq(H.nclient, 1, "delivered once after the restart");
    assert_answer(0, "f1", GW_COAP_CONTENT);
    /* The device is free for the next request. */
    h_request(&(struct h_req){ .mac = DEV_A, .tok = "f2", .path = "other" });
    cr_assert_eq(H.nmesh, 2);
}

/* S3.3, S1.3: a frontend that restarted has forgotten its dedup table; the
 * client's retransmission of a CON request already forwarded (same endpoint,
 * MID and token) must not reach the device twice nor be answered twice. */
Test(core, client_retransmission_after_frontend_restart_is_not_forwarded_twice)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "d1", .path = "dup" });
    cr_assert_eq(H.nmesh, 1);
    struct h_pkt req;
    h_last_tx(&req);
    H.next_req_id--; /* the same client MID again */
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "d1", .path = "dup" });
    cr_assert_eq(H.nmesh, 1, "the duplicate is not forwarded");
    cr_assert_eq(h_client_count_tok(0, "d1"), 0, "and not answered on its own");
    cr_assert_eq(H.nclient, 1, "only accounted for at the frontend (S2.8 in-flight count)");
    h_piggy(DEV_A, &req, GW_COAP_CONTENT, "1");
    cr_assert_eq(h_client_count_tok(0, "d1"), 1, "exactly one answer");
    /* A new MID with the same token is a new request. */
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "d1", .path = "dup2" });
    cr_assert_eq(H.nmesh, 2);
}

/* A restarted scheduler must not reuse a MID it sent to a device within
 * EXCHANGE_LIFETIME: the device would take the new request for a
 * duplicate of the old one (RFC 7252 4.5) and answer it with the old
 * answer. Found by the resilience suite (5.02 after scheduler kills). */
Test(core, restart_continues_each_devices_mids)
{
    h_start();
    uint16_t last = 0;
    for (int i = 0; i < 5; i++) {
        char path[8];
        snprintf(path, sizeof(path), "p%d", i);
        h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "mm", .path = path });
        struct h_pkt req;
        h_last_tx(&req);
        h_piggy(DEV_A, &req, GW_COAP_CONTENT, "1");
        last = req.mid;
    }
    h_restart();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "mn", .path = "after" });
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_eq(req.mid, (uint16_t)(last + 1), "MID %u after a restart, %u before", req.mid, last);
}
