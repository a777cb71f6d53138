/* SPDX-License-Identifier: MIT */
/* test_kept.c - the frontend's side of answers the scheduler keeps until
 * the client ACKs them (S1.3, issue #12 item 15; gw_msg.h GW_MF2_MID): such
 * an answer goes out with the scheduler's MID, a copy of one in flight is
 * not sent twice, the client's ACK or RST (also one for a MID this frontend
 * never sent, from a client with a session) and a give-up are reported,
 * and a start is announced. The harness (fe_harness.h) is test_core.c's. */
#include "fe_harness.h"

TestSuite(fe_kept, .init = setup, .fini = teardown);

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
