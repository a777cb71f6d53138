/* SPDX-License-Identifier: MIT */
/* test_held.c - a fresh cache hit held back by the cache guard
 * (frontend/fe_guard.h, gw_msg.h GW_MF2_CHECK): no empty ACK, the request
 * asked about at the scheduler, the hit sent on the ACK only when the
 * verdict says so, an empty ACK for a copy, copies meanwhile asking again,
 * and the session's in-flight count balanced (SPEC S1.3, S3.1, S3.3, S2.8).
 * fe_core without sockets, a real shared segment for the guard. */
#include "fe_harness.h"

#include "fe_guard.h"
#include "gw_rcache.h"

#include <stdatomic.h>

static struct gw_shm seg;
static struct gw_config scfg;
static struct fe_guard guard;
static struct gw_rcache tab;
static uint64_t *tab_mem;
static struct gw_coap_parser *rc_parser;

#define SLOTS 16u
#define SLOT_SIZE 2048u
#define URI "coap://" DEV "/value"

static void held_setup(void)
{
    setup();
    gw_config_defaults(&scfg);
    snprintf(scfg.instance, sizeof(scfg.instance), "th%ld", (long)getpid());
    scfg.ring_slots = 64;
    scfg.max_txn = 16;
    scfg.max_frontends = 2;
    char err[512] = "";
    cr_assert_eq(gw_shm_open(&scfg, true, &seg, err, sizeof(err)), 0, "segment: %s", err);
    cr_assert_eq(fe_guard_join(&guard, &seg, 0, 10000, T.fc.ms, 100), 0);
    fe_core_set_guard(&T.core, &guard);
    tab_mem = calloc(SLOTS * SLOT_SIZE / 8, 8);
    cr_assert_not_null(tab_mem);
    gw_rcache_attach(&tab, tab_mem, SLOTS, SLOT_SIZE);
    cr_assert_eq(gw_coap_parser_new(&rc_parser), 0);
    fe_core_set_rcache(&T.core, &tab, rc_parser);
}

static void held_teardown(void)
{
    teardown();
    gw_coap_parser_free(rc_parser);
    free(tab_mem);
    gw_shm_close(&seg);
    gw_shm_unlink(&scfg);
}

TestSuite(held, .init = held_setup, .fini = held_teardown);

/* A session for T.a, and the device's answer to GET /value stored fresh in
 * the shared table under the key the frontend composes (taken from the
 * request it forwards on a miss, exactly as the scheduler does). */
static void session_and_fresh_entry(void)
{
    session(&T.a);
    unsigned s0 = T.nsch;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x100, "m0", URI, NULL, NULL);
    cr_assert_eq(T.nsch, s0 + 1, "the miss went to the scheduler");
    struct gw_coap_msg up;
    cr_assert_eq(gw_coap_parse(T.check, T.sch[s0].data, T.sch[s0].m.len, &up), 0);
    uint8_t key[GW_RCACHE_KEY_MAX], mac[GW_MAC_LEN];
    size_t klen;
    uint64_t rh;
    memcpy(mac, T.sch[s0].m.mac, GW_MAC_LEN);
    cr_assert_eq(gw_rcache_key(mac, T.sch[s0].m.security, &up, key, sizeof(key), &klen, &rh), 0);
    uint8_t resp[64], zero[8] = { 0 }; /* stored: no token, no Max-Age (sch_cache_put) */
    struct gw_cb b;
    gw_cb_init(&b, resp, sizeof(resp), GW_COAP_CON, GW_COAP_CONTENT, 0, zero, 0);
    gw_cb_payload(&b, "21.5", 4);
    size_t rl;
    cr_assert_eq(gw_cb_finish(&b, &rl), 0);
    cr_assert_eq(gw_rcache_store(&tab, key, klen, rh, resp, rl, T.fc.ms + 60000), 0);
    uint8_t got[256];
    size_t gl;
    uint32_t left;
    cr_assert_eq(gw_rcache_lookup(&tab, key, klen, rh, T.fc.ms, got, sizeof(got), &gl, &left),
                 GW_RCACHE_FRESH, "stored fresh");
    /* That first exchange is answered (it counted in the in-flight limit). */
    struct gw_msg a = T.sch[s0].m;
    a.kind = GW_MSG_RESP;
    a.flags = GW_MF_ANSWER | GW_MF_SUPPRESS;
    a.len = 4;
    static const uint8_t empty_ack[4] = { 0x60, 0, 0, 0 };
    fe_core_deliver(&T.core, &a, empty_ack);
}

static void raise_the_guard(void)
{
    atomic_store(&gw_shm_proc(&seg, GW_PROC_FRONTEND0 + 1)->fe_guard_ms, T.fc.ms + 10000);
}

/* The scheduler's verdict on check record i (scheduler/sch_core.c on_check). */
static void verdict(unsigned i, bool copy)
{
    struct gw_msg v = T.sch[i].m;
    v.kind = GW_MSG_RESP;
    v.flags = copy ? 0 : GW_MF_ANSWER;
    v.flags2 = GW_MF2_CHECK | (copy ? GW_MF2_COPY : 0);
    v.len = 0;
    fe_core_deliver(&T.core, &v, NULL);
}

Test(held, unguarded_hit_is_piggybacked_at_once)
{
    session_and_fresh_entry();
    unsigned n0 = T.nout, s0 = T.nsch;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x101, "h1", URI, NULL, NULL);
    cr_assert_eq(T.nsch, s0, "nothing to the scheduler");
    cr_assert_eq(T.nout, n0 + 1);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.code, GW_COAP_CONTENT);
    cr_assert_eq(m.mid, 0x101);
}

Test(held, guarded_hit_waits_for_the_verdict_and_goes_on_the_ack)
{
    session_and_fresh_entry();
    raise_the_guard();
    unsigned n0 = T.nout, s0 = T.nsch;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x102, "h2", URI, NULL, NULL);
    cr_assert_eq(T.nout, n0, "no empty ACK, no answer before the verdict");
    cr_assert_eq(T.nsch, s0 + 1, "asked at the scheduler");
    cr_assert_eq(T.sch[s0].m.flags2 & GW_MF2_CHECK, GW_MF2_CHECK);
    cr_assert_eq(T.sch[s0].m.client_mid, 0x102);
    verdict(s0, false);
    cr_assert_eq(T.nout, n0 + 1);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.code, GW_COAP_CONTENT);
    cr_assert_eq(m.mid, 0x102);
    cr_assert_eq(m.tkl, 2);
    cr_assert_eq(memcmp(m.token, "h2", 2), 0);
    cr_assert_eq(m.payload_len, 4);
    /* A second verdict (asked twice) sends nothing more; a copy of the
     * request gets the same answer again. */
    verdict(s0, false);
    cr_assert_eq(T.nout, n0 + 1);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x102, "h2", URI, NULL, NULL);
    cr_assert_eq(T.nout, n0 + 2);
    cr_assert_eq(T.out[n0 + 1].len, T.out[n0].len);
    cr_assert_eq(memcmp(T.out[n0 + 1].buf, T.out[n0].buf, T.out[n0].len), 0);
    cr_assert_eq(T.nsch, s0 + 1, "the copy is answered here");
}

Test(held, copy_verdict_gets_an_empty_ack_and_so_do_later_copies)
{
    session_and_fresh_entry();
    raise_the_guard();
    unsigned n0 = T.nout, s0 = T.nsch;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x103, "h3", URI, NULL, NULL);
    cr_assert_eq(T.nout, n0);
    verdict(s0, true);
    cr_assert_eq(T.nout, n0 + 1);
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.code, GW_COAP_EMPTY, "a copy: its request's answer comes as that one's");
    cr_assert_eq(m.mid, 0x103);
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x103, "h3", URI, NULL, NULL);
    cr_assert_eq(T.nout, n0 + 2);
    out_msg(n0 + 1, &m);
    cr_assert_eq(m.code, GW_COAP_EMPTY, "never the held hit");
    cr_assert_eq(T.nsch, s0 + 1);
}

Test(held, copy_before_the_verdict_asks_again_and_one_answer_goes)
{
    session_and_fresh_entry();
    raise_the_guard();
    unsigned n0 = T.nout, s0 = T.nsch;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x104, "h4", URI, NULL, NULL);
    /* The verdict was lost (a full ring): the client's copy asks again. */
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x104, "h4", URI, NULL, NULL);
    cr_assert_eq(T.nout, n0);
    cr_assert_eq(T.nsch, s0 + 2, "asked again");
    cr_assert_eq(T.sch[s0 + 1].m.flags2 & GW_MF2_CHECK, GW_MF2_CHECK);
    verdict(s0 + 1, false);
    verdict(s0, false);
    cr_assert_eq(T.nout, n0 + 1, "one answer for both verdicts");
}

Test(held, verdicts_balance_the_sessions_in_flight_count)
{
    /* session_max_inflight is 2 in the harness: five checked hits in a row,
     * each settled, leave room for a request to the device. */
    session_and_fresh_entry();
    raise_the_guard();
    for (uint16_t i = 0; i < 5; i++) {
        unsigned s0 = T.nsch;
        char tok[4] = { 'i', (char)('0' + i), 0, 0 };
        dgram(&T.a, GW_COAP_CON, GW_COAP_GET, (uint16_t)(0x200 + i), tok, URI, NULL, NULL);
        cr_assert_eq(T.nsch, s0 + 1, "check %u asked, not refused with 4.29", i);
        verdict(s0, false);
    }
    unsigned n0 = T.nout, s0 = T.nsch;
    dgram(&T.a, GW_COAP_CON, GW_COAP_GET, 0x300, "mx", "coap://" DEV "/other", NULL, NULL);
    cr_assert_eq(T.nsch, s0 + 1, "forwarded");
    struct gw_coap_msg m;
    out_msg(n0, &m);
    cr_assert_eq(m.code, GW_COAP_EMPTY);
}
