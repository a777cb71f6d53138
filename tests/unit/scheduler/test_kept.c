/* SPDX-License-Identifier: MIT */
/* test_kept.c - answers kept until the client ACKs them (S1.3, issue #12
 * item 15; sch_core.h, gw_msg.h GW_MF2_MID): a CON answer leaves its slot
 * only when a frontend reports the client's ACK, after MAX_TRANSMIT_WAIT,
 * and a restarted frontend gets it again with the same client MID. */
#include "sch_harness.h"
#include "sch_int.h"

static void setup(void)
{
    h_init();
}
static void teardown(void)
{
    h_fini();
}

TestSuite(kept, .init = setup, .fini = teardown);

static unsigned txns(void)
{
    struct sch_core_counts n;
    sch_core_counts(H.core, &n);
    return n.txns;
}

/* One answered request; returns the index of its client record. */
static unsigned answered(uint64_t mac, uint16_t port, const char *tok, const char *path)
{
    unsigned c0 = H.nclient;
    h_request(&(struct h_req){ .mac = mac, .port = port, .tok = tok, .path = path });
    struct h_pkt r;
    h_last_tx(&r);
    h_piggy(mac, &r, GW_COAP_CONTENT, tok);
    cr_assert_eq(H.nclient, c0 + 1, "answered");
    return c0;
}

static void assert_same_answer(unsigned a, unsigned b)
{
    cr_assert_eq(H.client[b].env.flags2 & GW_MF2_MID, GW_MF2_MID);
    cr_assert_eq(H.client[a].env.client_mid, H.client[b].env.client_mid,
                 "the copy has the same client MID");
    cr_assert_eq(H.client[a].env.len, H.client[b].env.len);
    cr_assert_eq(memcmp(H.client[a].data, H.client[b].data, H.client[a].env.len), 0,
                 "the same bytes");
    cr_assert(gw_ep_eq(&H.client[a].env.ep, &H.client[b].env.ep));
}

Test(kept, answer_is_kept_until_the_client_acks_and_resent_to_a_restarted_frontend)
{
    h_start();
    H.fe_mid[0] = 0x1234;
    unsigned i = answered(DEV_A, 40001, "k1", "a");
    cr_assert(H.client[i].env.flags2 & GW_MF2_MID, "a CON answer is kept");
    cr_assert_eq(H.client[i].env.client_mid, 0x1234, "its MID comes from the frontend's counter");
    cr_assert_eq(H.fe_mid[0], 0x1235);
    cr_assert_eq(txns(), 1, "the slot holds the answer");

    /* Frontend 0 was SIGKILLed with the answer unconfirmed: its successor
     * gets it again, with the same MID, and only once per start. */
    h_fe_start(0);
    cr_assert_eq(H.nclient, i + 2);
    assert_same_answer(i, i + 1);
    h_fe_start(1);
    cr_assert_eq(H.nclient, i + 2, "another frontend's start sends nothing");

    h_client_acked(i + 1);
    cr_assert_eq(txns(), 0, "the client's ACK frees the slot");
    h_fe_start(0);
    cr_assert_eq(H.nclient, i + 2, "an ACKed answer is never sent again");
    h_advance(3600 * 1000);
    cr_assert_eq(H.nclient, i + 2);
}

Test(kept, an_ack_for_another_mid_or_endpoint_frees_nothing)
{
    h_start();
    unsigned i = answered(DEV_A, 40001, "k1", "a");
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_ANSWER_DONE;
    m.ep = H.client[i].env.ep;
    m.client_mid = (uint16_t)(H.client[i].env.client_mid + 1);
    sch_core_on_record(H.core, &m, NULL);
    h_ep(40002, &m.ep);
    m.client_mid = H.client[i].env.client_mid;
    sch_core_on_record(H.core, &m, NULL);
    cr_assert_eq(txns(), 1);
    h_client_acked(i);
    cr_assert_eq(txns(), 0);
}

/* RFC 7252 4.8.2: after MAX_TRANSMIT_WAIT (2 s * 31 * 1.5 = 93 s with the
 * defaults) the frontend has given up; the scheduler forgets it too. */
Test(kept, unacked_answer_is_forgotten_after_max_transmit_wait)
{
    h_start();
    uint64_t t0 = H.fc.ms;
    answered(DEV_A, 40001, "k1", "a");
    h_at(t0 + 92000);
    cr_assert_eq(txns(), 1);
    h_at(t0 + 93001);
    cr_assert_eq(txns(), 0);
    unsigned n = H.nclient;
    h_fe_start(0);
    cr_assert_eq(H.nclient, n, "nothing left to send again");
}

Test(kept, kept_answer_survives_a_scheduler_restart)
{
    h_start();
    unsigned i = answered(DEV_A, 40001, "k1", "a");
    h_restart();
    cr_assert_eq(txns(), 1);
    h_fe_start(0);
    cr_assert_eq(H.nclient, i + 2);
    assert_same_answer(i, i + 1);
    h_client_acked(i);
    cr_assert_eq(txns(), 0, "matched after the restart");
}

/* An answer for a frontend that is down goes to a live one; the MID comes
 * from the counter of the frontend that took the request, and the copy
 * after a restart goes to the frontend that held it. */
Test(kept, answer_redirected_to_a_live_frontend_is_resent_to_that_one)
{
    h_start();
    H.fe_dead[1] = true;
    H.fe_mid[1] = 700;
    unsigned c0 = H.nclient;
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "r1", .fe = 1 });
    struct h_pkt r;
    h_last_tx(&r);
    h_piggy(DEV_A, &r, GW_COAP_CONTENT, "x");
    cr_assert_eq(H.client[c0].env.fe, 0, "frontend 0 took it");
    cr_assert_eq(H.client[c0].env.client_mid, 700);
    h_fe_start(1);
    cr_assert_eq(H.nclient, c0 + 1, "frontend 1 never had it");
    h_fe_start(0);
    cr_assert_eq(H.nclient, c0 + 2);
    assert_same_answer(c0, c0 + 1);
}

Test(kept, cache_hits_and_immediate_errors_are_kept_too)
{
    h_start();
    unsigned i = answered(DEV_A, 40001, "k1", "a");
    h_client_acked(i);
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "k2", .path = "a" });
    cr_assert_eq(H.nclient, i + 2, "a cache hit");
    cr_assert(H.client[i + 1].env.flags2 & GW_MF2_MID);
    h_request(&(struct h_req){ .mac = DEV_X, .port = 40003, .tok = "k3" });
    cr_assert_eq(H.nclient, i + 3, "5.02 for an unknown device");
    cr_assert(H.client[i + 2].env.flags2 & GW_MF2_MID);
    cr_assert_eq(txns(), 2);
    h_fe_start(0);
    cr_assert_eq(H.nclient, i + 5);
}

Test(kept, non_requests_suppressed_answers_and_notifications_are_not_kept)
{
    h_start();
    unsigned c0 = H.nclient;
    h_request(
        &(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "n1", .path = "n", .non = true });
    struct h_pkt r;
    h_last_tx(&r);
    h_piggy(DEV_A, &r, GW_COAP_CONTENT, "x");
    cr_assert_eq(H.nclient, c0 + 1);
    cr_assert_eq(H.client[c0].env.flags2, 0, "an answer to NON is not kept");
    h_request(
        &(struct h_req){ .mac = DEV_A, .port = 40002, .tok = "s1", .path = "s", .noresp = 2 });
    h_last_tx(&r);
    h_piggy(DEV_A, &r, GW_COAP_CONTENT, "x");
    cr_assert_eq(H.client[c0 + 1].env.flags2, 0, "No-Response: never sent, so never ACKed");
    /* An observe registration: the first notification is not kept. */
    h_request(
        &(struct h_req){ .mac = DEV_B, .port = 40003, .tok = "o1", .flags = GW_MF_OBS_REGISTER });
    h_last_tx(&r);
    h_device_send(&(struct h_resp){ .mac = DEV_B,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = r.mid,
                                    .token = r.token,
                                    .has_obs = true,
                                    .obs = 5,
                                    .payload = "v" });
    cr_assert_eq(H.nclient, c0 + 3);
    cr_assert(H.client[c0 + 2].env.flags & GW_MF_NOTIFY);
    cr_assert_eq(H.client[c0 + 2].env.flags2, 0);
    cr_assert_eq(txns(), 0);
}

/* Clients that never ACK hold at most half the table; later answers are
 * handed over and forgotten, and new requests still find slots. */
Test(kept, at_most_half_the_table_is_held)
{
    H.max_txn = 8;
    h_start();
    char tok[16], path[16]; /* short, but sized for any %u */
    for (unsigned k = 0; k < 6; k++) {
        snprintf(tok, sizeof(tok), "t%u", k);
        snprintf(path, sizeof(path), "p%u", k);
        unsigned i = answered(k % 2 ? DEV_A : DEV_B, (uint16_t)(40001 + k), tok, path);
        cr_assert_eq(!!(H.client[i].env.flags2 & GW_MF2_MID), k < 4, "answer %u kept: %s", k,
                     k < 4 ? "yes" : "no");
    }
    cr_assert_eq(txns(), 4);
}

/* A full frontend ring: the answer waits ANSWERED with its MID already
 * drawn and leaves later with that MID (a single MID per answer). */
Test(kept, answer_refused_by_a_full_ring_keeps_its_mid)
{
    h_start();
    H.fe_mid[0] = 100;
    H.client_full = true;
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "f1" });
    struct h_pkt r;
    h_last_tx(&r);
    h_piggy(DEV_A, &r, GW_COAP_CONTENT, "x");
    cr_assert_eq(H.nclient, 0);
    h_advance(10);
    h_advance(10);
    H.client_full = false;
    h_advance(10);
    cr_assert_eq(H.nclient, 1);
    cr_assert_eq(H.client[0].env.client_mid, 100);
    cr_assert_eq(H.fe_mid[0], 101, "one MID drawn, however often the ring refused");
    h_client_acked(0);
    cr_assert_eq(txns(), 0);
}

/* ---- copies of client requests (S3.3, S1.3) ----
 * A frontend forwards a client's retransmission of a CON request when it
 * cannot vouch for it (it restarted, or the cache guard of fe_guard.h). The
 * scheduler recognises the copy by (endpoint, MID, token), also after its
 * own SIGKILL: the shared table's transactions carry all three. */

static struct h_req copy_of(uint64_t mac, uint16_t port, const char *tok, uint16_t mid, uint8_t fe)
{
    return (struct h_req){ .mac = mac,
                           .port = port,
                           .tok = tok,
                           .code = GW_COAP_POST,
                           .path = "value",
                           .payload = "42",
                           .mid = mid,
                           .fe = fe };
}

/* Asserts that every device datagram from index `from` on belongs to the
 * exchange with device token `tok` (no second exchange was started). */
static void assert_only_exchange(unsigned from, const uint8_t tok[8])
{
    for (unsigned k = from; k < H.nmesh; k++) {
        struct h_pkt p;
        h_mesh_pkt(k, &p);
        cr_assert(p.tkl == 0 || (p.tkl == 8 && memcmp(p.token, tok, 8) == 0),
                  "device datagram %u starts a second exchange for the copy", k);
    }
}

Test(kept, copy_of_a_request_in_flight_after_a_scheduler_restart_is_not_executed_again)
{
    h_start();
    struct h_req r = copy_of(DEV_A, 40001, "c1", 0x4242, 0);
    h_request(&r);
    struct h_pkt req;
    h_last_tx(&req);
    h_restart();
    unsigned m0 = H.nmesh;
    r.fe = 1; /* forwarded again by a frontend whose deduplication never saw it */
    h_request(&r);
    cr_assert_eq(txns(), 1, "the copy takes no transaction");
    cr_assert_eq(H.nclient, 1, "one record for the copy");
    cr_assert(H.client[0].env.flags & GW_MF_SUPPRESS, "it is not an answer to send");
    cr_assert(H.client[0].env.flags & GW_MF_ANSWER,
              "but the forwarding frontend counts the copy off its in-flight requests");
    cr_assert_eq(H.client[0].env.fe, 1, "that frontend");
    h_piggy(DEV_A, &req, GW_COAP_CHANGED, NULL);
    h_advance(60 * 1000);
    assert_only_exchange(m0, req.token);
    cr_assert_eq(h_client_count_tok(0, "c1"), 1, "exactly one final answer");
    cr_assert_eq(txns(), 1, "only the kept answer");
}

Test(kept, copy_of_a_queued_request_after_a_scheduler_restart_is_not_queued_again)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "q1", .path = "a" });
    struct h_req r = copy_of(DEV_A, 40001, "q2", 0x5151, 0);
    h_request(&r); /* NSTART 1: queued behind q1 */
    cr_assert_eq(txns(), 2);
    h_restart();
    h_request(&r);
    cr_assert_eq(txns(), 2, "the copy is not queued a second time");
}

Test(kept, copy_of_a_kept_answer_after_a_scheduler_restart_gets_that_answer_again)
{
    h_start();
    H.fe_mid[0] = 0x1234;
    struct h_req r = copy_of(DEV_A, 40001, "c2", 0x4343, 0);
    h_request(&r);
    struct h_pkt req;
    h_last_tx(&req);
    h_piggy(DEV_A, &req, GW_COAP_CHANGED, NULL);
    cr_assert_eq(H.nclient, 1);
    cr_assert_eq(H.client[0].env.client_mid, 0x1234);
    h_restart();
    unsigned m0 = H.nmesh;
    r.fe = 1;
    h_request(&r);
    cr_assert_eq(H.nmesh, m0, "the device is not asked again");
    cr_assert_eq(H.nclient, 2, "the kept answer is sent again");
    assert_same_answer(0, 1);
    cr_assert_eq(H.client[1].env.fe, 1, "to the frontend that forwarded the copy");
    cr_assert_eq(txns(), 1);
    h_fe_start(0);
    cr_assert_eq(H.nclient, 2, "the frontend that holds it now is frontend 1");
    h_client_acked(1);
    cr_assert_eq(txns(), 0);
    cr_assert_eq(h_client_count_tok(0, "c2"), 2, "two copies of one answer, one MID");
}

Test(kept, copy_of_a_kept_answer_gets_that_answer_again)
{
    h_start();
    struct h_req r = copy_of(DEV_A, 40001, "c3", 0x4444, 0);
    h_request(&r);
    struct h_pkt req;
    h_last_tx(&req);
    h_piggy(DEV_A, &req, GW_COAP_CHANGED, NULL);
    unsigned m0 = H.nmesh;
    r.fe = 1;
    h_request(&r);
    cr_assert_eq(H.nmesh, m0);
    cr_assert_eq(H.nclient, 2, "the copy gets the kept answer, not silence");
    assert_same_answer(0, 1);
}

Test(kept, copy_of_an_immediate_answer_after_a_scheduler_restart_gets_the_same_answer)
{
    h_start();
    struct h_req r = copy_of(DEV_X, 40001, "c4", 0x4545, 0);
    h_request(&r);
    cr_assert_eq(H.nclient, 1, "5.02: no such device");
    h_restart();
    h_request(&r);
    cr_assert_eq(H.nclient, 2);
    assert_same_answer(0, 1);
    cr_assert_eq(txns(), 1);
}

/* A new MID is a new request, whatever the token (RFC 7252 4.5). */
Test(kept, same_token_with_a_new_mid_after_a_scheduler_restart_is_a_new_request)
{
    h_start();
    struct h_req r = copy_of(DEV_A, 40001, "c5", 0x4646, 0);
    h_request(&r);
    struct h_pkt req;
    h_last_tx(&req);
    h_piggy(DEV_A, &req, GW_COAP_CHANGED, NULL);
    h_restart();
    unsigned m0 = H.nmesh;
    r.mid = 0x4647;
    h_request(&r);
    cr_assert_eq(H.nmesh, m0 + 1, "sent to the device");
    cr_assert_eq(txns(), 2);
}

/* The keys of the scheduler's client maps (request copies, kept answers,
 * observers) are what a client chooses: endpoint, MID, token. Under an
 * unkeyed hash a client could pick values colliding with another client's
 * key (the maps take equal keys for equal identities) and have that
 * client's request dropped as a copy. Keys come from SipHash under a random
 * key per scheduler process (S9). */
Test(kept, client_map_keys_are_keyed_per_process)
{
    h_start();
    struct gw_ep ep = { .family = 4, .port = 40001, .addr = { 127, 0, 0, 1 } };
    const uint8_t tok[4] = { 1, 2, 3, 4 };
    uint64_t a = sch_client_key(H.core, &ep, 0x1234, tok, 4);
    cr_assert_eq(a, sch_client_key(H.core, &ep, 0x1234, tok, 4), "one identity, one key");
    cr_assert_neq(a, sch_client_key(H.core, &ep, 0x1235, tok, 4), "the MID counts");
    cr_assert_neq(a, sch_client_key(H.core, &ep, 0x1234, tok, 3), "the token counts");
    cr_assert_neq(sch_client_key(H.core, &ep, -1, tok, 4),
                  sch_client_key(H.core, &ep, 0x0102, tok + 2, 2),
                  "a MID is never read as token bytes");
    /* A restarted scheduler draws a new key: no client can know it. */
    bool differs = false;
    for (int i = 0; i < 4 && !differs; i++) {
        h_restart();
        differs = sch_client_key(H.core, &ep, 0x1234, tok, 4) != a;
    }
    cr_assert(differs, "the key is not a fixed function of the identity");
}

/* Issue 13 item 4: an exchange that finishes leaves its timer items behind
 * (lazy deletion): the request's retransmission timer and its kept answer's
 * MAX_TRANSMIT_WAIT. They are dropped once as many are stale as live, and
 * the timers still pending fire exactly when due, never early. */
Test(kept, finished_exchanges_leave_no_timer_items_behind)
{
    H.rnd_fixed = true;
    H.rnd = 0; /* first mesh timeout exactly ACK_TIMEOUT (20 s) */
    h_start();
    uint64_t t0 = H.fc.ms;
    answered(DEV_C, 39998, "kk", "keep"); /* never ACKed: kept 93 s */
    h_request(&(struct h_req){ .mac = DEV_B, .port = 39999, .tok = "sl", .path = "slow" });
    char tok[16], path[16]; /* short, but sized for any %u */
    for (unsigned k = 0; k < 200; k++) {
        snprintf(tok, sizeof(tok), "e%u", k);
        snprintf(path, sizeof(path), "p%u", k);
        h_client_acked(answered(DEV_A, (uint16_t)(41000 + k), tok, path));
    }
    cr_assert_eq(txns(), 2, "the kept answer and the silent device's request");
    /* Without pruning: 2 live + 400 stale items (one per send, one per kept answer). */
    cr_assert_leq(H.core->heap.n, 2 + 64 + 64, "heap holds %u items", H.core->heap.n);
    unsigned slow_tx = H.nmesh;
    h_at(t0 + 19999);
    cr_assert_eq(H.nmesh, slow_tx, "no retransmission before its deadline");
    h_at(t0 + 20000);
    cr_assert_eq(H.nmesh, slow_tx + 1, "the retransmission at its deadline");
    struct h_pkt p;
    h_last_tx(&p);
    cr_assert_str_eq(p.path, "slow");
    h_at(t0 + 92999);
    cr_assert_eq(txns(), 2, "the kept answer is held until MAX_TRANSMIT_WAIT");
    h_at(t0 + 93001);
    cr_assert_eq(txns(), 1, "and forgotten after it");
}

/* Issue 13 item 4: `recent` (S3.3, S1.3) keeps its requests in a FIFO of
 * 2 * max_txn with a 4-byte index over their keys. A copy of each of the
 * last 128 is recognised, older ones were evicted by the FIFO's bound
 * (and their index entries with them: a copy of one is a new request), and
 * after EXCHANGE_LIFETIME a copy is a new request again. */
Test(kept, recent_requests_are_found_until_evicted_or_expired)
{
    h_start();
    uint32_t cap = H.core->recent_cap;
    cr_assert_eq(cap, 128);
    char tok[16], path[16]; /* short, but sized for any %u */
    for (unsigned k = 0; k < 300; k++) {
        snprintf(tok, sizeof(tok), "r%u", k);
        snprintf(path, sizeof(path), "q%u", k);
        h_request(&(struct h_req){ .mac = DEV_A,
                                   .port = (uint16_t)(42000 + k),
                                   .mid = (uint16_t)(1000 + k),
                                   .tok = tok,
                                   .path = path });
        struct h_pkt r;
        h_last_tx(&r);
        h_piggy(DEV_A, &r, GW_COAP_CONTENT, tok);
        h_client_acked(H.nclient - 1);
    }
    cr_assert_eq(H.core->recent.n, cap, "the FIFO is full and every entry indexed");
    cr_assert_leq((size_t)(H.core->recent.mask + 1) * sizeof(uint32_t), 16u * cap);
    unsigned sent = H.nmesh;
    /* Newest first: a copy that is a new request is recorded again. The
     * copies name paths never asked for, so no cached answer hides a
     * forwarded one (the key is endpoint, MID and token). */
    for (unsigned k = 300; k-- > 300 - cap;) {
        snprintf(tok, sizeof(tok), "r%u", k);
        snprintf(path, sizeof(path), "c%u", k);
        h_request(&(struct h_req){ .mac = DEV_A,
                                   .port = (uint16_t)(42000 + k),
                                   .mid = (uint16_t)(1000 + k),
                                   .tok = tok,
                                   .path = path });
        cr_assert_eq(H.nmesh, sent, "the copy of request %u is not forwarded", k);
    }
    unsigned k = 300 - cap - 1;
    snprintf(tok, sizeof(tok), "r%u", k);
    struct h_req old = { .mac = DEV_A,
                         .port = (uint16_t)(42000 + k),
                         .mid = (uint16_t)(1000 + k),
                         .tok = tok,
                         .path = "z1" };
    h_request(&old);
    cr_assert_eq(H.nmesh, sent + 1, "request %u was evicted: its copy is new", k);
    struct h_pkt r;
    h_last_tx(&r);
    h_piggy(DEV_A, &r, GW_COAP_CONTENT, tok);
    h_client_acked(H.nclient - 1);
    h_advance((uint64_t)H.cfg.exchange_lifetime_ms - 1);
    old.path = "z2";
    h_request(&old);
    cr_assert_eq(H.nmesh, sent + 1, "still a copy within EXCHANGE_LIFETIME");
    h_advance(1);
    old.path = "z3";
    h_request(&old);
    cr_assert_eq(H.nmesh, sent + 2, "a new request after EXCHANGE_LIFETIME");
}

/* ---- held cache hits (gw_msg.h GW_MF2_CHECK, frontend/fe_guard.h) ---- */

static struct h_req check_of(const char *tok, uint16_t mid, uint8_t fe, bool check)
{
    return (struct h_req){ .mac = DEV_A,
                           .port = 40020,
                           .tok = tok,
                           .path = "value",
                           .mid = mid,
                           .fe = fe,
                           .flags2 = check ? GW_MF2_CHECK : 0 };
}

static void assert_verdict(unsigned i, uint8_t fe, uint16_t mid, bool copy)
{
    const struct gw_msg *v = &H.client[i].env;
    cr_assert_eq(v->flags2 & (GW_MF2_CHECK | GW_MF2_COPY), GW_MF2_CHECK | (copy ? GW_MF2_COPY : 0),
                 "record %u: a verdict, %s", i, copy ? "a copy" : "answer it");
    cr_assert_eq(v->fe, fe, "to the frontend that asked");
    cr_assert_eq(v->client_mid, mid, "for the client's MID");
    cr_assert_eq(v->len, 0);
    cr_assert_eq(!!(v->flags & GW_MF_ANSWER), !copy, "an answer counts off the in-flight requests");
}

Test(kept, checked_request_never_seen_is_answered_by_the_frontend_and_its_original_is_a_copy)
{
    /* Frontend 1 answered nothing yet: it holds a fresh hit for a CON GET
     * while the guard is up. The scheduler never saw the request: answer it
     * there. The same request forwarded by frontend 0 (which died before it
     * ACKed it) then arrives: a copy, not executed, no answer of its own. */
    h_start();
    unsigned m0 = H.nmesh;
    uint32_t taken = (uint32_t)gw_now_us(&H.clock); /* by frontend 0, before it died */
    h_advance(5);
    struct h_req chk = check_of("k1", 0x5151, 1, true);
    h_request(&chk);
    cr_assert_eq(H.nmesh, m0, "a check is not executed");
    cr_assert_eq(H.nclient, 1);
    assert_verdict(0, 1, 0x5151, false);
    h_advance(5);
    struct h_req orig = check_of("k1", 0x5151, 0, false);
    orig.rx_us = taken;
    h_request(&orig);
    cr_assert_eq(H.nmesh, m0, "the original after the check is a copy");
    cr_assert_eq(H.nclient, 2);
    cr_assert(H.client[1].env.flags & GW_MF_SUPPRESS, "only accounted for, never sent");
    /* The client's next copy at a third frontend, still guarded: answered
     * again (the same MID on the ACK: a duplicate to the client). */
    struct h_req again = check_of("k1", 0x5151, 2, true);
    h_request(&again);
    cr_assert_eq(H.nmesh, m0);
    cr_assert_eq(H.nclient, 3);
    assert_verdict(2, 2, 0x5151, false);
}

Test(kept, checked_copy_of_a_request_taken_here_is_a_copy)
{
    h_start();
    struct h_req orig = check_of("k2", 0x6161, 0, false);
    h_request(&orig);
    unsigned m0 = H.nmesh;
    cr_assert_gt(m0, 0, "the original went to the device");
    struct h_req chk = check_of("k2", 0x6161, 1, true);
    h_request(&chk);
    cr_assert_eq(H.nmesh, m0, "nothing more to the device");
    cr_assert_geq(H.nclient, 1);
    assert_verdict(0, 1, 0x6161, true);
    unsigned c0 = H.nclient;
    /* Answered (the answer kept for its client): a later check is a copy,
     * and the asking frontend gets the kept answer again, same MID. */
    struct h_pkt req;
    h_mesh_pkt(0, &req);
    h_piggy(DEV_A, &req, GW_COAP_CONTENT, "v");
    cr_assert_eq(H.nclient, c0 + 1, "the answer");
    unsigned a = c0, m1 = H.nmesh;
    h_request(&chk);
    cr_assert_eq(H.nmesh, m1, "nothing more to the device");
    int v = -1, k = -1;
    for (unsigned i = a + 1; i < H.nclient; i++) {
        if (H.client[i].env.flags2 & GW_MF2_CHECK)
            v = (int)i;
        else if (H.client[i].env.flags2 & GW_MF2_MID)
            k = (int)i;
    }
    cr_assert_geq(v, 0, "a verdict");
    assert_verdict((unsigned)v, 1, 0x6161, true);
    cr_assert_geq(k, 0, "the kept answer again");
    assert_same_answer(a, (unsigned)k);
}

Test(kept, copy_taken_after_a_checked_answer_whose_hit_went_stale_is_taken_as_new)
{
    /* The held hit was answered on the ACK after a check; the client asks
     * again (it lost that ACK) and the frontend that takes the copy finds
     * the entry stale, so the copy comes the ordinary way. Taken after the
     * check, it is new: an empty ACK would leave the client waiting for an
     * answer that never comes. A copy of it is then a copy. */
    h_start();
    struct h_req chk = check_of("k5", 0x7171, 1, true);
    h_request(&chk);
    assert_verdict(0, 1, 0x7171, false);
    unsigned m0 = H.nmesh;
    h_advance(5);
    struct h_req late = check_of("k5", 0x7171, 0, false);
    h_request(&late);
    cr_assert_eq(H.nmesh, m0 + 1, "taken: the request goes to the device");
    h_advance(5);
    h_request(&late);
    cr_assert_eq(H.nmesh, m0 + 1, "a copy of it is a copy");
}
