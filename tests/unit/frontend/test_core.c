/* SPDX-License-Identifier: MIT */
/* test_core.c - the frontend's request handling (fe_core.c) without
 * sockets: datagrams in, datagrams and scheduler records out, fake clock,
 * real LMDB in mkdtemp (SPEC S2.4, S2.8, S3.1-S3.6). */
#include "fe_harness.h"

TestSuite(fe_core, .init = setup, .fini = teardown);

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

/* Issue 13: the per-session limit index grows with the sessions that send
 * requests; sized for max_sessions at start it was 8 MiB (100 000), whose
 * pages a few thousand sessions all touch. The limits still hold. */
Test(fe_core, session_limit_index_starts_small_and_limits_still_hold)
{
    fe_core_deinit(&T.core);
    T.cfg.max_sessions = 100000;
    struct fe_out io = { &T, io_send, io_to_sch, NULL };
    cr_assert_eq(fe_core_init(&T.core, &T.cfg, 0, &T.store, T.auth, T.parser, &io, NULL), 0);
    fe_core_set_clock(&T.core, &T.clock);
    cr_assert_geq(T.core.limits_cap, 200000u, "room for 2 x max_sessions sessions' limits");
    cr_assert_leq(T.core.limit_idx.mask + 1, 2048u, "not sized for all of them at start");
    session(&T.a);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 21, "r1", "coap://" DEV "/v1", NULL, NULL);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 22, "r2", "coap://" DEV "/v2", NULL, NULL);
    unsigned n0 = T.nout;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 23, "r3", "coap://" DEV "/v3", NULL, NULL);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.code, GW_COAP_TOO_MANY, "session_max_inflight still holds");
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

/* S3.3, issue 13 item 4: the 5.03 of a full ring is remembered by its
 * recipe, not a heap copy; a duplicate gets the same bytes again and is
 * not forwarded when the ring has room again. */
Test(fe_core, duplicate_of_a_503_gets_the_same_answer_from_its_recipe)
{
    session(&T.a);
    T.sch_full = true;
    unsigned n0 = T.nout;
    size_t resp0 = T.core.dedup.resp_bytes; /* the session's 2.01 */
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 32, "f2", "coap://" DEV "/value", NULL, NULL);
    cr_assert_eq(T.nout, n0 + 1);
    struct fe_dedup_entry *de =
        fe_dedup_find(&T.core.dedup, &T.a, 32, (const uint8_t *)"f2", 2, T.fc.ms);
    cr_assert_not_null(de);
    cr_assert_eq(de->code, GW_COAP_UNAVAILABLE, "kept by its recipe");
    cr_assert_eq(T.core.dedup.resp_bytes, resp0, "no copy of the answer on the heap");
    T.sch_full = false;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 32, "f2", "coap://" DEV "/value", NULL, NULL);
    cr_assert_eq(T.nout, n0 + 2);
    cr_assert_eq(T.nsch, 0, "a duplicate is never forwarded (S3.3)");
    cr_assert_eq(T.out[n0 + 1].len, T.out[n0].len);
    cr_assert_arr_eq(T.out[n0 + 1].buf, T.out[n0].buf, T.out[n0].len, "the same bytes again");
    struct gw_coap_msg m;
    out_msg(n0 + 1, &m);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.mid, 32);
    cr_assert_eq(m.code, GW_COAP_UNAVAILABLE);
}

/* ---- issue #12: spoofed sources (S2.10, S9.1, items 4-7) ---- */

static struct gw_ep ep4(uint8_t last, uint16_t port)
{
    return (struct gw_ep){ .family = 4, .port = port, .addr = { 127, 0, 0, last } };
}

/* A request with Uri-Path segments "a/b" and an optional Block option
 * (num 23 or 27, value `blk`, -1 = none); returns its size on the wire. */
static size_t req_path(const struct gw_ep *ep, uint8_t type, uint8_t code, uint16_t mid,
                       const char *tok, const char *path, uint16_t blk_opt, int64_t blk,
                       const char *payload)
{
    uint8_t buf[1400];
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), type, code, mid, (const uint8_t *)tok,
               tok ? (uint8_t)strlen(tok) : 0);
    char p[128];
    snprintf(p, sizeof(p), "%s", path);
    for (char *s = p, *e; s; s = e ? e + 1 : NULL) {
        e = strchr(s, '/');
        if (e)
            *e = '\0';
        gw_cb_opt_str(&b, GW_OPT_URI_PATH, s);
    }
    if (blk >= 0)
        gw_cb_opt_uint(&b, blk_opt, (uint32_t)blk);
    if (payload)
        gw_cb_payload(&b, payload, strlen(payload));
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    fe_core_datagram(&T.core, ep, buf, len);
    return len;
}

static void reinit(void)
{
    fe_core_deinit(&T.core);
    struct fe_out io = { &T, io_send, io_to_sch, NULL };
    cr_assert_eq(fe_core_init(&T.core, &T.cfg, 0, &T.store, T.auth, T.parser, &io, NULL), 0);
    fe_core_set_clock(&T.core, &T.clock);
}

/* S9.1 (RFC 7252 11.3): every answer to a sender without a session is at
 * most 3 times its request; large documents come in small blocks that still
 * reassemble to the whole. */
Test(fe_core, sessionless_answers_are_at_most_3x_the_request)
{
    T.cfg.sessionless_burst = 10000;
    reinit();
    const struct gw_ep spoofed = ep4(9, 7000);
    const char *docs[] = { "help", ".well-known/core" };
    for (size_t d = 0; d < 2; d++) {
        uint8_t body[4096];
        size_t blen = 0;
        int64_t blk = -1;
        for (int i = 0; i < 400; i++) {
            T.nout = 0;
            size_t rl =
                req_path(&spoofed, GW_COAP_CON, GW_COAP_GET, (uint16_t)(100 * d + (size_t)i), NULL,
                         docs[d], GW_OPT_BLOCK2, blk, NULL);
            cr_assert_eq(T.nout, 1);
            cr_assert_leq(T.out[0].len, 3 * rl, "/%s: %zu bytes answer %zu bytes", docs[d], rl,
                          T.out[0].len);
            struct gw_coap_msg m;
            out_msg(0, &m);
            cr_assert_eq(m.code, GW_COAP_CONTENT);
            const struct gw_coap_opt *o = gw_coap_opt_find(&m, GW_OPT_BLOCK2);
            struct gw_block b;
            cr_assert(o && gw_block_decode(o, &b), "served block-wise");
            cr_assert_eq((size_t)b.num << (4 + b.szx), blen, "blocks follow each other");
            memcpy(body + blen, m.payload, m.payload_len);
            blen += m.payload_len;
            if (!b.more)
                break;
            blk = (int64_t)((b.num + 1) << 4 | b.szx);
        }
        body[blen] = '\0';
        if (d == 0)
            cr_assert(strstr((char *)body, "DELETE coap://<gateway>/sessions/<id>") &&
                          body[blen - 1] == '\n',
                      "the whole /help: %s", body);
        else
            cr_assert(strstr((char *)body, "</sessions>") && strstr((char *)body, "</help>"));
    }
    /* A short proxy request's 4.01 and a ping's RST. */
    uint8_t px[] = {
        0x40, GW_COAP_GET, 0, 1, 0xd8, 35 - 13, 'c', 'o', 'a', 'p', ':', '/', '/', 'x'
    };
    T.nout = 0;
    fe_core_datagram(&T.core, &spoofed, px, sizeof(px));
    struct gw_coap_msg m;
    out_msg(0, &m);
    cr_assert_eq(m.code, GW_COAP_UNAUTHORIZED);
    cr_assert_gt(m.payload_len, 0, "still a diagnostic");
    cr_assert_leq(T.out[0].len, 3 * sizeof(px));
    /* A sender with a session gets the document in one message (or 1 KiB blocks). */
    session(&T.a);
    T.nout = 0;
    req_path(&T.a, GW_COAP_CON, GW_COAP_GET, 77, NULL, "help", 0, -1, NULL);
    out_msg(0, &m);
    cr_assert_geq(m.payload_len, 1024);
}

/* S9.1: sessionless requests draw from a token bucket per source address
 * (any port): beyond it they are dropped without an answer; it refills at
 * sessionless_rate; senders with a session are not limited by it. */
Test(fe_core, sessionless_rate_limit_per_source_address)
{
    T.cfg.sessionless_burst = 5;
    T.cfg.sessionless_rate = 1;
    reinit();
    session(&T.a); /* one token of 127.0.0.1's bucket */
    T.nout = 0;
    for (uint16_t i = 0; i < 20; i++) {
        uint8_t ping[4] = { 0x40, 0, 0, (uint8_t)i };
        struct gw_ep e = ep4(9, (uint16_t)(1000 + i));
        fe_core_datagram(&T.core, &e, ping, 4);
    }
    cr_assert_eq(T.nout, 5, "the burst, then nothing");
    T.fc.ms += 2000;
    T.nout = 0;
    for (uint16_t i = 0; i < 10; i++) {
        uint8_t ping[4] = { 0x40, 0, 1, (uint8_t)i };
        struct gw_ep e = ep4(9, (uint16_t)(2000 + i));
        fe_core_datagram(&T.core, &e, ping, 4);
    }
    cr_assert_eq(T.nout, 2, "refilled at sessionless_rate");
    T.nout = 0;
    for (uint16_t i = 0; i < 10; i++) {
        uint8_t ping[4] = { 0x40, 0, 2, (uint8_t)i };
        fe_core_datagram(&T.core, &T.a, ping, 4);
    }
    cr_assert_eq(T.nout, 10, "a session holder is not limited by it");
}

/* Issue #12 item 6: spoofed sessionless requests from many ports and
 * addresses fill the dedup table, yet a retransmitted POST /sessions still
 * gets its own 2.01 (the same session), not a new session or an empty ACK. */
Test(fe_core, spoofed_fill_keeps_a_sessions_stored_answer)
{
    T.cfg.sessionless_burst = 100000;
    reinit();
    char *tok;
    const char *diag;
    cr_assert_eq(fe_auth_mint(T.auth, "alice", T.fc.wall, 3600, NULL, &tok, &diag), 0);
    T.nout = 0;
    dgram(&T.a, GW_COAP_CON, GW_COAP_POST, 0x4242, "s", NULL, "sessions", tok);
    cr_assert_eq(T.nout, 1);
    uint8_t first[GW_COAP_MAX_MSG + 64];
    size_t first_len = T.out[0].len;
    memcpy(first, T.out[0].buf, first_len);
    for (int i = 0; i < 1000; i++) {
        T.nout = 0;
        struct gw_ep e = ep4((uint8_t)(2 + i % 200), (uint16_t)(10000 + i));
        req_path(&e, GW_COAP_CON, GW_COAP_GET, (uint16_t)i, "t", "help", 0, -1, NULL);
    }
    T.fc.ms += 5000;
    T.nout = 0;
    dgram(&T.a, GW_COAP_CON, GW_COAP_POST, 0x4242, "s", NULL, "sessions", tok);
    free(tok);
    cr_assert_eq(T.nout, 1);
    cr_assert_eq(T.out[0].len, first_len, "the stored 2.01 again");
    cr_assert_arr_eq(T.out[0].buf, first, first_len);
}

/* Issue #12 item 6: block-wise transfers of senders without a session never
 * evict the transfer of a sender with one. */
Test(fe_core, sessionless_block_transfers_do_not_evict_a_sessions)
{
    T.cfg.block_transfers_max = 4;
    T.cfg.sessionless_burst = 100000;
    reinit();
    session(&T.a);
    char block[17] = "0123456789abcdef";
    T.nout = 0;
    req_path(&T.a, GW_COAP_CON, GW_COAP_POST, 500, NULL, "echo", GW_OPT_BLOCK1, 0 << 4 | 8 | 0,
             block);
    struct gw_coap_msg m;
    out_msg(0, &m);
    cr_assert_eq(m.code, GW_COAP_CONTINUE);
    for (int i = 0; i < 50; i++) {
        T.nout = 0;
        struct gw_ep e = ep4((uint8_t)(2 + i), 9000);
        req_path(&e, GW_COAP_CON, GW_COAP_POST, (uint16_t)(600 + i), NULL, "echo", GW_OPT_BLOCK1,
                 0 << 4 | 8 | 0, block);
    }
    T.nout = 0;
    req_path(&T.a, GW_COAP_CON, GW_COAP_POST, 501, NULL, "echo", GW_OPT_BLOCK1, 1 << 4 | 0 | 0,
             "end");
    out_msg(0, &m);
    cr_assert_eq(m.code, GW_COAP_CHANGED, "the transfer survived: code %d.%02d", m.code >> 5,
                 m.code & 31);
    cr_assert_eq(m.payload_len, 19);
}

/* S2.10: from an endpoint holding another account's live session, a session
 * request gets 4.03 and nothing ends (no record for the scheduler). */
Test(fe_core, other_accounts_session_is_not_replaced)
{
    session(&T.a);
    char *tok;
    const char *diag;
    cr_assert_eq(fe_auth_mint(T.auth, "mallory", T.fc.wall, 3600, NULL, &tok, &diag), 0);
    T.nout = 0;
    T.nsch = 0;
    dgram(&T.a, GW_COAP_CON, GW_COAP_POST, 9, "m", NULL, "sessions", tok);
    free(tok);
    struct gw_coap_msg m;
    out_msg(0, &m);
    cr_assert_eq(m.code, GW_COAP_FORBIDDEN);
    cr_assert_gt(m.payload_len, 0);
    cr_assert_eq(T.nsch, 0, "no session ended");
}

/* Issue #12 item 7: a sticky move tells the scheduler which endpoint lost
 * the session, so that its observers there end with a final notification. */
Test(fe_core, sticky_move_reports_the_old_endpoint)
{
    session(&T.a);
    char *tok;
    const char *diag;
    cr_assert_eq(fe_auth_mint(T.auth, "alice", T.fc.wall, 3600, NULL, &tok, &diag), 0);
    T.nsch = 0;
    uint8_t buf[1400];
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_POST, 3, (const uint8_t *)"k", 1);
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "sessions");
    gw_cb_opt_str(&b, GW_OPT_URI_QUERY, "sticky=true");
    gw_cb_payload(&b, tok, strlen(tok));
    free(tok);
    size_t len;
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    unsigned n0 = T.nout;
    fe_core_datagram(&T.core, &T.b, buf, len);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.code, GW_COAP_CREATED);
    cr_assert_eq(T.nsch, 1);
    cr_assert_eq(T.sch[0].m.kind, GW_MSG_SESSION_MOVED);
    cr_assert(gw_ep_eq(&T.sch[0].m.ep, &T.a), "the endpoint the session left");
    cr_assert_neq(T.sch[0].m.session, 0);
}

/* S9.1 (found by fuzz_frontend's 3x oracle): the answer stored for an
 * exchange of an endpoint that then lost its session is not replayed in
 * full to a small duplicate from that (maybe spoofed) endpoint. */
Test(fe_core, stored_answer_replayed_to_a_sessionless_sender_is_cut)
{
    session(&T.a);
    T.nout = 0;
    req_path(&T.a, GW_COAP_CON, GW_COAP_GET, 50, NULL, "help", 0, -1, NULL);
    cr_assert_eq(T.nout, 1);
    cr_assert_gt(T.out[0].len, 512, "the session holder got the document");
    req_path(&T.a, GW_COAP_CON, GW_COAP_DELETE, 51, NULL, "sessions", 0, -1, NULL);
    struct gw_coap_msg m;
    out_msg(1, &m);
    cr_assert_eq(m.code, GW_COAP_DELETED);
    T.nout = 0;
    uint8_t dup[4] = { 0x40, GW_COAP_GET, 0, 50 };
    fe_core_datagram(&T.core, &T.a, dup, sizeof(dup));
    cr_assert_eq(T.nout, 1);
    cr_assert_leq(T.out[0].len, 3 * sizeof(dup), "%zu bytes", T.out[0].len);
}

/* Issue 13 item 3: a GW_MSG_NOTIFY_SET record yields one CON notification
 * per observer, each with its own token and MID and the shared options and
 * payload, each retransmitted until its own ACK; a malformed set sends
 * nothing. */
Test(fe_core, notification_set_reaches_each_observer)
{
    uint8_t data[GW_COAP_MAX_MSG + 16];
    struct gw_notify_hdr h = { 3, 0 };
    struct gw_cb b;
    gw_cb_init(&b, data + sizeof(h), sizeof(data) - sizeof(h), GW_COAP_CON, GW_COAP_CONTENT, 0,
               NULL, 0);
    gw_cb_opt_uint(&b, GW_OPT_OBSERVE, 77);
    gw_cb_payload(&b, "42", 2);
    size_t ml;
    cr_assert_eq(gw_cb_finish(&b, &ml), 0);
    h.msg_len = (uint16_t)ml;
    memcpy(data, &h, sizeof(h));
    const char *toks[3] = { "", "q", "abcdefgh" };
    for (unsigned i = 0; i < 3; i++) {
        struct gw_notify_to to = { .ep = i == 1 ? T.b : T.a,
                                   .tkl = (uint8_t)strlen(toks[i]),
                                   .session = 5 };
        to.ep.port = (uint16_t)(to.ep.port + (i == 2));
        memcpy(to.token, toks[i], to.tkl);
        memcpy(data + sizeof(h) + ml + i * sizeof(to), &to, sizeof(to));
    }
    struct gw_msg m = { .kind = GW_MSG_NOTIFY_SET, .flags = GW_MF_NOTIFY, .aux = 77 };
    m.len = (uint16_t)(sizeof(h) + ml + 3 * sizeof(struct gw_notify_to));
    unsigned n0 = T.nout;
    cr_assert_eq(fe_core_deliver_record(&T.core, &m, data), 0);
    cr_assert_eq(T.nout, n0 + 3, "one datagram per observer");
    uint16_t mids[3];
    for (unsigned i = 0; i < 3; i++) {
        struct gw_coap_msg c;
        out_msg(n0 + i, &c);
        cr_assert_eq(c.type, GW_COAP_CON);
        cr_assert_eq(c.tkl, strlen(toks[i]));
        cr_assert_eq(memcmp(c.token, toks[i], c.tkl), 0);
        cr_assert_eq(c.payload_len, 2);
        cr_assert_eq(memcmp(c.payload, "42", 2), 0);
        cr_assert_eq(c.nopts, 1);
        cr_assert_eq(c.opts[0].num, GW_OPT_OBSERVE);
        mids[i] = c.mid;
        for (unsigned j = 0; j < i; j++)
            cr_assert_neq(mids[j], mids[i], "own MIDs");
    }
    cr_assert(gw_ep_eq(&T.out[n0 + 1].ep, &T.b));
    /* Each is in flight until its observer ACKs. */
    for (unsigned i = 0; i < 3; i++) {
        cr_assert_neq(fe_core_next(&T.core), UINT64_MAX);
        uint8_t ack[4] = { 0x60, 0, (uint8_t)(mids[i] >> 8), (uint8_t)mids[i] };
        fe_core_datagram(&T.core, &T.out[n0 + i].ep, ack, 4);
    }
    cr_assert_eq(fe_core_next(&T.core), UINT64_MAX, "every ACK matched its own notification");

    /* One byte short, a token length over 8, a template with a token: nothing. */
    n0 = T.nout;
    m.len--;
    cr_assert_eq(fe_core_deliver_record(&T.core, &m, data), GW_EBADMSG);
    m.len++;
    data[sizeof(h) + ml + sizeof(struct gw_ep)] = 9;
    cr_assert_eq(fe_core_deliver_record(&T.core, &m, data), GW_EBADMSG);
    data[sizeof(h) + ml + sizeof(struct gw_ep)] = 0;
    data[sizeof(h)] |= 1;
    cr_assert_eq(fe_core_deliver_record(&T.core, &m, data), GW_EBADMSG);
    cr_assert_eq(T.nout, n0, "a malformed set sends nothing");
}

/* A one-observer GW_MSG_NOTIFY_SET with payload pl; returns the MID the
 * notification went out with. */
static uint16_t notify_one(const struct gw_ep *ep, const char *tok, uint64_t session,
                           const char *pl)
{
    uint8_t data[GW_COAP_MAX_MSG + 16];
    struct gw_notify_hdr h = { 1, 0 };
    struct gw_cb b;
    gw_cb_init(&b, data + sizeof(h), sizeof(data) - sizeof(h), GW_COAP_CON, GW_COAP_CONTENT, 0,
               NULL, 0);
    gw_cb_opt_uint(&b, GW_OPT_OBSERVE, 9);
    gw_cb_payload(&b, pl, strlen(pl));
    size_t ml;
    cr_assert_eq(gw_cb_finish(&b, &ml), 0);
    h.msg_len = (uint16_t)ml;
    memcpy(data, &h, sizeof(h));
    struct gw_notify_to to = { .ep = *ep, .tkl = (uint8_t)strlen(tok), .session = session };
    memcpy(to.token, tok, to.tkl);
    memcpy(data + sizeof(h) + ml, &to, sizeof(to));
    struct gw_msg m = { .kind = GW_MSG_NOTIFY_SET, .flags = GW_MF_NOTIFY, .aux = 9 };
    m.len = (uint16_t)(sizeof(h) + ml + sizeof(to));
    unsigned n0 = T.nout;
    cr_assert_eq(fe_core_deliver_record(&T.core, &m, data), 0);
    cr_assert_eq(T.nout, n0 + 1);
    struct gw_coap_msg c;
    out_msg(n0, &c);
    cr_assert_eq(c.type, GW_COAP_CON);
    cr_assert_eq(c.tkl, strlen(tok));
    cr_assert_eq(memcmp(c.token, tok, c.tkl), 0);
    cr_assert_eq(c.payload_len, strlen(pl));
    cr_assert_eq(memcmp(c.payload, pl, c.payload_len), 0);
    return c.mid;
}

/* Issue 13 item 3: under load an observer's ACK often comes after the next
 * notification replaced the one it acknowledges (RFC 7641 4.5.2). That late
 * ACK is this frontend's business only: no session look-up, no record for
 * the scheduler (it used to send GW_MSG_ANSWER_DONE for every one, and wake
 * the scheduler for it), and the newer notification stays in flight until
 * its own ACK. An RST to the replaced one still ends the observation. */
/* Issue 13 item 4: a notification replaced twice in flight leaves two late
 * ACKs; only the latest replaced MID has a ghost, and the older one's ACK
 * went to the scheduler as GW_MSG_ANSWER_DONE (260 000 such records in one
 * 5 000-observer registration storm filled its ring: 5.03 for new requests).
 * Neither is a record now; an ACK for a MID this frontend last used for a
 * separate answer still is (S1.3). */
Test(fe_core, late_acks_of_a_notification_replaced_twice_stay_here)
{
    session(&T.a);
    unsigned s0 = T.nsch;
    uint16_t m1 = notify_one(&T.a, "ob", 5, "1");
    uint16_t m2 = notify_one(&T.a, "ob", 5, "2");
    uint16_t m3 = notify_one(&T.a, "ob", 5, "3");
    uint8_t ack[4] = { 0x60, 0, (uint8_t)(m1 >> 8), (uint8_t)m1 };
    fe_core_datagram(&T.core, &T.a, ack, 4);
    cr_assert_eq(T.nsch, s0, "the ACK of the first notification: no record");
    ack[2] = (uint8_t)(m2 >> 8);
    ack[3] = (uint8_t)m2;
    fe_core_datagram(&T.core, &T.a, ack, 4);
    cr_assert_eq(T.nsch, s0, "the ACK of the second: no record");
    ack[2] = (uint8_t)(m3 >> 8);
    ack[3] = (uint8_t)m3;
    fe_core_datagram(&T.core, &T.a, ack, 4);
    cr_assert_eq(fe_core_next(&T.core), UINT64_MAX, "the newest is ACKed");
    cr_assert_eq(T.nsch, s0);
    /* An ACK for a MID never used for a notification here: maybe a kept
     * answer of a predecessor (S1.3), so the scheduler hears of it. */
    uint16_t other = (uint16_t)(m3 + 1000);
    ack[2] = (uint8_t)(other >> 8);
    ack[3] = (uint8_t)other;
    fe_core_datagram(&T.core, &T.a, ack, 4);
    cr_assert_eq(T.nsch, s0 + 1);
    cr_assert_eq(T.sch[s0].m.kind, GW_MSG_ANSWER_DONE);
}

Test(fe_core, late_ack_of_replaced_notification_stays_here)
{
    session(&T.a);
    unsigned s0 = T.nsch;
    uint16_t m1 = notify_one(&T.a, "ob", 5, "1");
    uint16_t m2 = notify_one(&T.a, "ob", 5, "2");
    cr_assert_neq(m1, m2);
    uint8_t ack1[4] = { 0x60, 0, (uint8_t)(m1 >> 8), (uint8_t)m1 };
    unsigned n0 = T.nout;
    fe_core_datagram(&T.core, &T.a, ack1, 4);
    cr_assert_eq(T.nsch, s0, "no record for the scheduler");
    cr_assert_eq(T.nout, n0, "no answer to an ACK");
    /* The newer one is still retransmitted... */
    uint64_t due = fe_core_next(&T.core);
    cr_assert_neq(due, UINT64_MAX, "the newer notification is still in flight");
    T.fc.ms = due;
    fe_core_timer(&T.core, T.fc.ms);
    cr_assert_eq(T.nout, n0 + 1);
    struct gw_coap_msg c;
    out_msg(n0, &c);
    cr_assert_eq(c.mid, m2);
    cr_assert_eq(memcmp(c.payload, "2", 1), 0);
    /* ...until its own ACK. */
    uint8_t ack2[4] = { 0x60, 0, (uint8_t)(m2 >> 8), (uint8_t)m2 };
    fe_core_datagram(&T.core, &T.a, ack2, 4);
    cr_assert_eq(fe_core_next(&T.core), UINT64_MAX);
    cr_assert_eq(T.nsch, s0);

    /* RST to a replaced notification: the observer leaves, nothing is resent. */
    uint16_t m3 = notify_one(&T.a, "ob", 5, "3");
    notify_one(&T.a, "ob", 5, "4");
    uint8_t rst[4] = { 0x70, 0, (uint8_t)(m3 >> 8), (uint8_t)m3 };
    fe_core_datagram(&T.core, &T.a, rst, 4);
    cr_assert_eq(T.nsch, s0 + 1);
    cr_assert_eq(T.sch[s0].m.kind, GW_MSG_OBS_GONE);
    cr_assert_eq(T.sch[s0].m.tkl, 2);
    cr_assert_eq(memcmp(T.sch[s0].m.token, "ob", 2), 0);
    cr_assert_eq(fe_core_next(&T.core), UINT64_MAX, "the newer notification ended with it");
}

/* Issue 13: the frontend keeps the sessions of recent senders in memory,
 * valid while LMDB's last transaction id stays where it was read. A session
 * ended through another handle on the environment (another frontend, or the
 * sweep of another process) is gone for the next request at once: 4.01,
 * nothing forwarded. */
Test(fe_core, session_ended_elsewhere_is_gone_at_once)
{
    session(&T.a);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x2001, "t1", "coap://" DEV "/value", NULL, NULL);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x2002, "t2", "coap://" DEV "/value", NULL, NULL);
    cr_assert_eq(T.nsch, 2, "both forwarded with the session (the second from memory)");
    struct gw_store other;
    cr_assert_eq(gw_store_open(&other, T.dir, 16), 0);
    struct gw_session ended;
    cr_assert_eq(fe_session_delete(&other, &T.a, 0, &ended), 0);
    gw_store_close(&other);
    unsigned n0 = T.nout;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x2003, "t3", "coap://" DEV "/value", NULL, NULL);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.code, GW_COAP_UNAUTHORIZED, "the ended session is not used from memory");
    cr_assert_eq(T.nsch, 2);
}

/* The copy in memory expires as the stored session does (idle timeout,
 * S2.3), without any commit to LMDB in between. */
Test(fe_core, session_in_memory_expires_on_time)
{
    session(&T.a);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x2101, "t1", "coap://" DEV "/value", NULL, NULL);
    cr_assert_eq(T.nsch, 1);
    T.fc.wall += T.cfg.session_idle_s + 1;
    unsigned n0 = T.nout;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x2102, "t2", "coap://" DEV "/value", NULL, NULL);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.code, GW_COAP_UNAUTHORIZED);
    cr_assert_eq(T.nsch, 1);
}
