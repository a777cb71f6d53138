/* SPDX-License-Identifier: MIT */
/* test_observe.c - observe through the gateway (SPEC S6, RFC 7641 section 5).
 *
 * Observers register with REQ records flagged GW_MF_OBS_REGISTER (the
 * device request carries Observe: 0) as the frontend sends them; the
 * simulated device answers the gateway's registrations and sends
 * notifications under the gateway's token (sch_harness.h). Persistence
 * (S6.6) uses a real LMDB in a mkdtemp directory. */
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

TestSuite(observe, .init = setup, .fini = teardown);

struct obsr {
    uint16_t port;
    const char *tok;
    uint64_t session;
};

/* The gateway token of the observation under test. */
static uint8_t gtok[8];
static bool have_gtok;
static uint32_t last_num; /* highest gateway Observe number seen by any client */
static bool have_num;
static uint16_t dev_mid = 0x5000;

static uint64_t obs_mac = DEV_A;

/* Sends a registration and checks that exactly one GET with Observe: 0 and
 * the gateway token goes to the device (S6.1, S6.2). */
static void reg_send(const struct obsr *o, struct h_pkt *req)
{
    unsigned m0 = H.nmesh;
    h_request(&(struct h_req){ .mac = obs_mac,
                               .port = o->port,
                               .tok = o->tok,
                               .session = o->session,
                               .flags = GW_MF_OBS_REGISTER,
                               .path = "temp" });
    cr_assert_eq(H.nmesh, m0 + 1, "each join sends one registration to the device (S6.2)");
    h_last_tx(req);
    cr_assert_eq(req->code, GW_COAP_GET);
    cr_assert_eq(req->observe, 0, "a registration carries Observe: 0");
    cr_assert_str_eq(req->path, "temp");
    if (have_gtok) {
        cr_assert_eq(memcmp(req->token, gtok, 8), 0,
                     "every registration uses the same gateway token (S6.1)");
    } else {
        memcpy(gtok, req->token, 8);
        have_gtok = true;
    }
}

/* Checks records [c0, H.nclient): one per observer in `v` (n of them), each
 * with its own token and endpoint, all with the same gateway Observe number,
 * strictly above every number sent before (S6.3). `answering` (may be NULL)
 * is the token whose record also answers its request. Returns the number. */
static uint32_t check_fanout(unsigned c0, const struct obsr *v, unsigned n, const char *answering,
                             const char *payload)
{
    cr_assert_eq(H.nclient - c0, n, "one record per observer: %u, got %u", n, H.nclient - c0);
    uint32_t num = 0;
    for (unsigned k = 0; k < n; k++) {
        cr_assert_eq(h_client_count_tok(c0, v[k].tok), 1, "observer %s gets exactly one record",
                     v[k].tok);
        unsigned i = (unsigned)h_client_find_tok(c0, v[k].tok);
        const struct gw_msg *e = &H.client[i].env;
        struct h_pkt p;
        h_client_pkt(i, &p);
        cr_assert_eq(e->ep.port, v[k].port);
        cr_assert_eq(p.code, GW_COAP_CONTENT);
        cr_assert_geq(p.observe, 0, "a notification carries Observe");
        cr_assert_eq((uint32_t)p.observe, e->aux, "the envelope carries the same Observe number");
        cr_assert(e->flags & GW_MF_NOTIFY);
        if (answering && !strcmp(answering, v[k].tok))
            cr_assert(e->flags & GW_MF_ANSWER, "the registering client's copy answers its request");
        else
            cr_assert_not(e->flags & GW_MF_ANSWER, "other observers get a plain notification");
        if (payload)
            cr_assert_str_eq(p.payload, payload);
        if (k == 0)
            num = (uint32_t)p.observe;
        cr_assert_eq((uint32_t)p.observe, num, "all observers see the same number");
    }
    if (n) {
        if (have_num)
            cr_assert_gt(num, last_num, "Observe numbers strictly increase (S6.3): %u after %u",
                         num, last_num);
        last_num = num;
        have_num = true;
    }
    return num;
}

/* The device answers registration `req` (piggybacked, device Observe dobs). */
static void dev_answer_reg(const struct h_pkt *req, uint32_t dobs, bool has_age, uint32_t age,
                           const char *payload)
{
    h_device_send(&(struct h_resp){ .mac = obs_mac,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = req->mid,
                                    .token = req->token,
                                    .has_obs = true,
                                    .obs = dobs,
                                    .has_age = has_age,
                                    .age = age,
                                    .payload = payload });
}

/* Registers v[n-1] with v[0..n-2] already observing; checks the fan-out. */
static uint32_t join(const struct obsr *v, unsigned n, uint32_t dobs)
{
    struct h_pkt req;
    reg_send(&v[n - 1], &req);
    unsigned c0 = H.nclient;
    char pl[16];
    snprintf(pl, sizeof(pl), "s%u", dobs);
    dev_answer_reg(&req, dobs, false, 0, pl);
    /* S6.2: the fresh response goes to all observers. */
    return check_fanout(c0, v, n, v[n - 1].tok, pl);
}

/* A notification from the device under the gateway token. */
static void dev_notify(uint8_t type, uint8_t code, bool has_obs, uint32_t dobs, const char *payload)
{
    h_device_send(&(struct h_resp){ .mac = obs_mac,
                                    .type = type,
                                    .code = code,
                                    .mid = dev_mid++,
                                    .token = gtok,
                                    .has_obs = has_obs,
                                    .obs = dobs,
                                    .payload = payload });
}

/* A CON 2.05 notification; checks that the device is ACKed and the fan-out. */
static uint32_t notify_all(const struct obsr *v, unsigned n, uint32_t dobs)
{
    unsigned m0 = H.nmesh, c0 = H.nclient;
    uint16_t mid = dev_mid;
    char pl[16];
    snprintf(pl, sizeof(pl), "n%u", dobs);
    dev_notify(GW_COAP_CON, GW_COAP_CONTENT, true, dobs, pl);
    cr_assert_eq(H.nmesh, m0 + 1, "a CON notification is ACKed");
    struct h_pkt ack;
    h_mesh_pkt(m0, &ack);
    cr_assert_eq(ack.type, GW_COAP_ACK);
    cr_assert_eq(ack.mid, mid);
    uint32_t num = check_fanout(c0, v, n, NULL, pl);
    cr_assert_neq(num, dobs, "clients see the gateway's numbers, not the device's");
    return num;
}

static void counts(uint32_t observations, uint32_t observers)
{
    struct sch_core_counts n;
    sch_core_counts(H.core, &n);
    cr_assert_eq(n.observations, observations, "observations: %u, expected %u", n.observations,
                 observations);
    cr_assert_eq(n.observers, observers, "observers: %u, expected %u", n.observers, observers);
}

static const struct obsr three[] = { { 40001, "o1", 1 }, { 40002, "o2", 2 }, { 40003, "o3", 3 } };

/* ---- S6.1-S6.3 ----------------------------------------------------------- */

/* S6.1-S6.3: three observers share one device observation; each join
 * re-registers with the same gateway token; every notification reaches all
 * three with their own tokens and the same strictly increasing gateway
 * numbers. */
Test(observe, three_observers_share_one_observation_and_get_every_notification)
{
    h_start();
    for (unsigned n = 1; n <= 3; n++)
        join(three, n, 10 + n);
    counts(1, 3);
    uint32_t dev[] = { 500, 501, 900, 901 };
    for (unsigned k = 0; k < GW_ARRAY_LEN(dev); k++)
        notify_all(three, 3, dev[k]);
    /* Numbers went up by the gateway's own step, whatever the device's did. */
    cr_assert_eq(H.nmesh, 3 + 4, "three registrations and four ACKs, nothing else");
}

/* S6.4: a repeated registration with the same (endpoint, token) replaces. */
Test(observe, reregistration_with_same_endpoint_and_token_replaces)
{
    h_start();
    join(three, 1, 1);
    join(three, 2, 2);
    /* o1 registers again. */
    struct h_pkt req;
    reg_send(&three[0], &req);
    unsigned c0 = H.nclient;
    dev_answer_reg(&req, 3, false, 0, "s3");
    check_fanout(c0, three, 2, "o1", "s3");
    counts(1, 2);
    notify_all(three, 2, 4);
}

/* S6.8 / RFC 7641 3.4: a notification older than the last one is dropped
 * (and still ACKed); a newer one goes out with a higher number. */
Test(observe, older_device_notification_is_dropped)
{
    h_start();
    join(three, 1, 99);
    join(three, 2, 100);
    notify_all(three, 2, 101);
    unsigned c0 = H.nclient, m0 = H.nmesh;
    dev_notify(GW_COAP_CON, GW_COAP_CONTENT, true, 99, "old");
    cr_assert_eq(H.nclient, c0, "an older notification reaches nobody");
    cr_assert_eq(H.nmesh, m0 + 1, "but it is ACKed");
    dev_notify(GW_COAP_NON, GW_COAP_CONTENT, true, 101, "same");
    cr_assert_eq(H.nclient, c0, "a repeated device number is not newer either");
    notify_all(three, 2, 102);
}

/* S6.4: one observer leaving (RST / never ACKed -> OBS_GONE) leaves the others. */
Test(observe, obs_gone_removes_only_that_observer)
{
    h_start();
    for (unsigned n = 1; n <= 3; n++)
        join(three, n, n);
    unsigned m0 = H.nmesh;
    h_gone(three[1].port, three[1].tok);
    cr_assert_eq(H.nmesh, m0, "others still observe: nothing for the device");
    counts(1, 2);
    const struct obsr rest[] = { three[0], three[2] };
    unsigned c0 = H.nclient;
    notify_all(rest, 2, 10);
    cr_assert_eq(h_client_count_tok(c0, "o2"), 0);
}

/* S6.4: GET with Observe: 1 from an observer that is not the last: the
 * device is not cancelled, the registration is refreshed, the leaver gets
 * the fresh state without Observe and the others a notification. */
Test(observe, cancel_from_non_last_observer_refreshes_without_cancelling)
{
    h_start();
    join(three, 1, 1);
    join(three, 2, 2);
    unsigned m0 = H.nmesh, c0 = H.nclient;
    h_request(&(struct h_req){ .mac = DEV_A,
                               .port = three[0].port,
                               .tok = three[0].tok,
                               .session = 1,
                               .flags = GW_MF_OBS_CANCEL,
                               .path = "temp" });
    cr_assert_eq(H.nmesh, m0 + 1, "a refresh goes to the device");
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_eq(req.observe, 0, "a refresh (Observe: 0), not a cancel");
    cr_assert_eq(memcmp(req.token, gtok, 8), 0);
    counts(1, 1);
    dev_answer_reg(&req, 3, false, 0, "fresh");
    cr_assert_eq(H.nclient, c0 + 2);
    int i = h_client_find_tok(c0, "o1");
    cr_assert_geq(i, 0);
    struct h_pkt p;
    h_client_pkt((unsigned)i, &p);
    cr_assert_eq(p.code, GW_COAP_CONTENT);
    cr_assert_eq(p.observe, -1, "the leaver's answer carries no Observe");
    cr_assert_str_eq(p.payload, "fresh");
    cr_assert(H.client[i].env.flags & GW_MF_ANSWER);
    cr_assert_not(H.client[i].env.flags & GW_MF_NOTIFY);
    cr_assert_eq(h_client_count_tok(c0, "o1"), 1);
    /* o2 got the fresh state as a notification. */
    int j = h_client_find_tok(c0, "o2");
    cr_assert_geq(j, 0);
    h_client_pkt((unsigned)j, &p);
    cr_assert_gt(p.observe, 0);
    cr_assert_gt((uint32_t)p.observe, last_num);
    last_num = (uint32_t)p.observe;
    cr_assert_str_eq(p.payload, "fresh");

    for (unsigned k = 0; k < H.nmesh; k++) {
        struct h_pkt q;
        h_mesh_pkt(k, &q);
        cr_assert_neq(q.observe, 1, "the device is never cancelled while o2 observes");
    }
    c0 = H.nclient;
    notify_all(&three[1], 1, 4);
    cr_assert_eq(h_client_count_tok(c0, "o1"), 0);
}

/* S6.4: the last leaver's GET with Observe: 1 cancels at the device (gateway
 * token) and the device's answer is relayed to that client. */
Test(observe, last_leaver_cancels_at_device_and_gets_its_answer)
{
    h_start();
    join(three, 1, 1);
    unsigned m0 = H.nmesh, c0 = H.nclient;
    h_request(&(struct h_req){ .mac = DEV_A,
                               .port = three[0].port,
                               .tok = three[0].tok,
                               .session = 1,
                               .flags = GW_MF_OBS_CANCEL,
                               .path = "temp" });
    cr_assert_eq(H.nmesh, m0 + 1);
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_eq(req.code, GW_COAP_GET);
    cr_assert_eq(req.observe, 1, "GET with Observe: 1 cancels at the device");
    cr_assert_eq(memcmp(req.token, gtok, 8), 0, "under the gateway token");
    cr_assert_str_eq(req.path, "temp");
    counts(0, 0);
    h_piggy(DEV_A, &req, GW_COAP_CONTENT, "bye");
    cr_assert_eq(H.nclient, c0 + 1);
    struct h_pkt p;
    h_client_pkt(c0, &p);
    h_assert_client_token(c0, "o1");
    cr_assert_eq(p.code, GW_COAP_CONTENT);
    cr_assert_eq(p.observe, -1);
    cr_assert_str_eq(p.payload, "bye");
    cr_assert(H.client[c0].env.flags & GW_MF_ANSWER);
    /* A stray notification under the old token is refused with RST. */
    m0 = H.nmesh;
    c0 = H.nclient;
    uint16_t mid = dev_mid;
    dev_notify(GW_COAP_CON, GW_COAP_CONTENT, true, 9, "late");
    cr_assert_eq(H.nclient, c0);
    cr_assert_eq(H.nmesh, m0 + 1);
    struct h_pkt rst;
    h_mesh_pkt(m0, &rst);
    cr_assert_eq(rst.type, GW_COAP_RST);
    cr_assert_eq(rst.mid, mid);
}

/* S6.4 / S2.7: a session's end drops its observers; the last one leaving
 * cancels at the device. */
Test(observe, session_end_drops_that_sessions_observers)
{
    h_start();
    const struct obsr v[] = { { 40001, "o1", 7 }, { 40002, "o2", 8 }, { 40003, "o3", 7 } };
    for (unsigned n = 1; n <= 3; n++)
        join(v, n, n);
    unsigned m0 = H.nmesh;
    h_session_end(7);
    counts(1, 1);
    cr_assert_eq(H.nmesh, m0, "o2 still observes: no cancel");
    unsigned c0 = H.nclient;
    notify_all(&v[1], 1, 10);
    cr_assert_eq(h_client_count_tok(c0, "o1"), 0);
    cr_assert_eq(h_client_count_tok(c0, "o3"), 0);
    m0 = H.nmesh;
    c0 = H.nclient;
    h_session_end(8);
    counts(0, 0);
    cr_assert_eq(H.nmesh, m0 + 1, "the last observer gone: cancel at the device");
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_eq(req.observe, 1);
    cr_assert_eq(memcmp(req.token, gtok, 8), 0);
    h_piggy(DEV_A, &req, GW_COAP_CONTENT, "bye");
    cr_assert_eq(H.nclient, c0, "nobody is owed the cancel's answer");
}

/* S6.5: when Max-Age plus the grace passes with no notification, the gateway
 * re-registers and the answer goes to every observer. A notification in
 * between moves the deadline. */
Test(observe, stale_observation_is_reregistered_after_max_age_and_grace)
{
    h_start();
    cr_assert_eq(H.cfg.obs_grace_ms, 2000, "default grace of S6.5");
    join(three, 1, 1);
    struct h_pkt req;
    reg_send(&three[1], &req);
    uint64_t t1 = H.fc.ms;
    unsigned c0 = H.nclient;
    dev_answer_reg(&req, 2, true, 30, "s2");
    check_fanout(c0, three, 2, "o2", "s2");

    unsigned m0 = H.nmesh;
    h_at(t1 + 20000);
    c0 = H.nclient;
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_NON,
                                    .code = GW_COAP_CONTENT,
                                    .mid = dev_mid++,
                                    .token = gtok,
                                    .has_obs = true,
                                    .obs = 3,
                                    .has_age = true,
                                    .age = 30,
                                    .payload = "n3" });
    check_fanout(c0, three, 2, NULL, "n3");
    uint64_t t2 = H.fc.ms;
    h_at(t1 + 32000);
    cr_assert_eq(H.nmesh, m0, "the notification at t1+20 s moved the deadline");
    h_at(t2 + 32000 - 1);
    cr_assert_eq(H.nmesh, m0, "not before Max-Age + grace");
    h_at(t2 + 32000);
    cr_assert_eq(H.nmesh, m0 + 1, "re-registration after Max-Age (30 s) + grace (2 s)");
    h_last_tx(&req);
    cr_assert_eq(req.observe, 0);
    cr_assert_eq(memcmp(req.token, gtok, 8), 0);
    c0 = H.nclient;
    dev_answer_reg(&req, 4, true, 30, "s4");
    check_fanout(c0, three, 2, NULL, "s4");
}

/* S6.5 default: without Max-Age the state is fresh for 60 s. */
Test(observe, stale_timer_uses_default_max_age_of_60_s)
{
    h_start();
    join(three, 1, 1);
    uint64_t t1 = H.fc.ms;
    unsigned m0 = H.nmesh;
    h_at(t1 + 62000 - 1);
    cr_assert_eq(H.nmesh, m0);
    h_at(t1 + 62000);
    cr_assert_eq(H.nmesh, m0 + 1);
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_eq(req.observe, 0);
}

/* RFC 7641 3.2 / S6: a non-2.xx notification ends the observation for all. */
Test(observe, error_notification_ends_observation_for_everyone)
{
    h_start();
    for (unsigned n = 1; n <= 3; n++)
        join(three, n, n);
    unsigned c0 = H.nclient, m0 = H.nmesh;
    dev_notify(GW_COAP_CON, GW_COAP_NOT_FOUND, false, 0, "gone");
    cr_assert_eq(H.nclient, c0 + 3, "every observer is told");
    for (unsigned k = 0; k < 3; k++) {
        cr_assert_eq(h_client_count_tok(c0, three[k].tok), 1);
        unsigned i = (unsigned)h_client_find_tok(c0, three[k].tok);
        struct h_pkt p;
        h_client_pkt(i, &p);
        cr_assert_eq(p.code, GW_COAP_NOT_FOUND);
        cr_assert_eq(p.observe, -1, "the final answer carries no Observe");
        cr_assert_str_eq(p.payload, "gone");
    }
    cr_assert_eq(H.nmesh, m0 + 1, "the CON is ACKed");
    counts(0, 0);
    c0 = H.nclient;
    m0 = H.nmesh;
    dev_notify(GW_COAP_CON, GW_COAP_CONTENT, true, 50, "again");
    cr_assert_eq(H.nclient, c0, "the observation is over");
    struct h_pkt rst;
    h_mesh_pkt(m0, &rst);
    cr_assert_eq(rst.type, GW_COAP_RST);
    h_advance(3600 * 1000);
    cr_assert_eq(H.nmesh, m0 + 1, "and never re-registered");
}

/* RFC 7641 3.4: device numbers wrap in 24 bits; 5 after 0xfffff0 is newer. */
Test(observe, device_number_wrap_is_newer)
{
    h_start();
    join(three, 1, 0xfffff0);
    notify_all(three, 1, 5);
    unsigned c0 = H.nclient;
    dev_notify(GW_COAP_NON, GW_COAP_CONTENT, true, 0xfffff8, "old");
    cr_assert_eq(H.nclient, c0, "0xfffff8 is older than 5 after the wrap");
}

/* RFC 7641 3.4: after more than 128 s any number counts as newer. */
Test(observe, notification_after_128_s_is_newer_whatever_its_number)
{
    h_start();
    join(three, 1, 1);
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_NON,
                                    .code = GW_COAP_CONTENT,
                                    .mid = dev_mid++,
                                    .token = gtok,
                                    .has_obs = true,
                                    .obs = 100,
                                    .has_age = true,
                                    .age = 600,
                                    .payload = "a" });
    uint64_t t = H.fc.ms;
    h_at(t + 128000);
    unsigned c0 = H.nclient;
    dev_notify(GW_COAP_NON, GW_COAP_CONTENT, true, 50, "b");
    cr_assert_eq(H.nclient, c0, "older within 128 s: dropped");
    h_at(t + 128001);
    c0 = H.nclient;
    dev_notify(GW_COAP_NON, GW_COAP_CONTENT, true, 50, "c");
    check_fanout(c0, three, 1, NULL, "c");
}

/* S5.2: a registration is never answered from the cache, even when a plain
 * GET of the resource was cached. */
Test(observe, registration_is_not_served_from_cache)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40009, .tok = "g1", .path = "temp" });
    struct h_pkt r;
    h_last_tx(&r);
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_ACK,
                                    .code = GW_COAP_CONTENT,
                                    .mid = r.mid,
                                    .token = r.token,
                                    .has_age = true,
                                    .age = 60,
                                    .payload = "21" });
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40008, .tok = "g2", .path = "temp" });
    cr_assert_eq(H.nmesh, 1, "the plain GET is cached");
    join(three, 1, 1); /* asserts the registration went to the device */
}

/* ---- S6.6 persistence ---------------------------------------------------- */

/* S6.6 + S6.3: a restarted scheduler (same LMDB, same table) re-registers
 * the observation; both observers get the next states with numbers above
 * every number sent before the restart. */
Test(observe, restart_resumes_observation_without_repeating_numbers)
{
    h_open_store();
    h_start();
    join(three, 1, 1);
    join(three, 2, 2);
    for (uint32_t d = 3; d < 8; d++)
        notify_all(three, 2, d);
    uint32_t before = last_num;
    unsigned c0 = H.nclient, m0 = H.nmesh;

    h_restart();
    cr_assert_eq(H.nclient, c0);
    counts(1, 2);
    sch_core_resume_observations(H.core);
    cr_assert_eq(H.nmesh, m0 + 1, "one re-registration per observation");
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_eq(req.code, GW_COAP_GET);
    cr_assert_eq(req.observe, 0);
    cr_assert_str_eq(req.path, "temp");
    cr_assert_eq(memcmp(req.token, gtok, 8), 0, "the observation keeps its gateway token");
    /* The device restarted too: its numbers start low again. */
    dev_answer_reg(&req, 1, false, 0, "r1");
    uint32_t n1 = check_fanout(c0, three, 2, NULL, "r1");
    cr_assert_gt(n1, before, "no number is repeated across the restart");
    for (unsigned k = c0; k < H.nclient; k++)
        cr_assert_eq(H.client[k].env.session, H.client[k].env.ep.port == 40001 ? 1u : 2u,
                     "observers come back with their sessions");
    uint32_t n2 = notify_all(three, 2, 2);
    cr_assert_gt(n2, n1);
}

/* S6.6: observers that left before the restart stay gone. */
Test(observe, restart_does_not_resurrect_observers_that_left)
{
    h_open_store();
    h_start();
    for (unsigned n = 1; n <= 3; n++)
        join(three, n, n);
    h_gone(three[0].port, three[0].tok);
    h_restart();
    counts(1, 2);
    sch_core_resume_observations(H.core);
    struct h_pkt req;
    h_last_tx(&req);
    unsigned c0 = H.nclient;
    dev_answer_reg(&req, 1, false, 0, "r");
    check_fanout(c0, &three[1], 2, NULL, "r");
}

/* S6.6 + S1.3: a join whose registration is in flight when the scheduler
 * restarts is answered once, with the others, and not registered twice. */
Test(observe, restart_during_inflight_join_answers_joiner_once)
{
    h_open_store();
    h_start();
    join(three, 1, 1);
    struct h_pkt req;
    reg_send(&three[1], &req);
    unsigned c0 = H.nclient, m0 = H.nmesh;
    h_restart();
    counts(1, 2);
    sch_core_resume_observations(H.core);
    cr_assert_eq(H.nmesh, m0, "a registration already in flight is not sent again");
    dev_answer_reg(&req, 2, false, 0, "s2");
    check_fanout(c0, three, 2, "o2", "s2");
    h_advance(10);
    cr_assert_eq(h_client_count_tok(c0, "o2"), 1);
}

/* ---- S6.7 Milli ----------------------------------------------------------- */

/* S6.7 + S4.5: a cancel while the Milli's registration is in flight gets
 * 5.03, yet the device later receives the GET with Observe: 1. */
Test(observe, milli_cancel_during_registration_gets_503_and_still_cancels)
{
    obs_mac = DEV_M;
    h_start();
    struct h_pkt req;
    reg_send(&three[0], &req);
    cr_assert(H.mesh[H.nmesh - 1].env.flags & GW_MF_MILLI);
    unsigned c0 = H.nclient;
    h_request(&(struct h_req){ .mac = DEV_M,
                               .port = three[0].port,
                               .tok = three[0].tok,
                               .session = 1,
                               .flags = GW_MF_OBS_CANCEL,
                               .path = "temp" });
    cr_assert_eq(H.nmesh, 1, "the Milli is busy: nothing more goes out yet");
    cr_assert_eq(H.nclient, c0 + 1);
    struct h_pkt p;
    h_client_pkt(c0, &p);
    h_assert_client_token(c0, "o1");
    cr_assert_eq(p.code, GW_COAP_UNAVAILABLE);
    cr_assert_str_eq(p.payload, SCH_MILLI_BUSY_TEXT);
    cr_assert_geq(p.max_age, 0);

    /* The registration's answer arrives; then the cancel goes out. */
    dev_answer_reg(&req, 5, false, 0, "s5");
    cr_assert_eq(H.nmesh, 2, "the deregistration follows the registration");
    struct h_pkt cancel;
    h_last_tx(&cancel);
    cr_assert_eq(cancel.observe, 1);
    cr_assert_eq(memcmp(cancel.token, gtok, 8), 0);
    cr_assert(H.mesh[1].env.flags & GW_MF_MILLI);
    /* The registration request itself is answered once, without Observe:
     * the client already asked to leave. */
    cr_assert_eq(h_client_count_tok(c0, "o1"), 2);
    h_client_pkt(c0 + 1, &p);
    cr_assert_eq(p.observe, -1);
    h_piggy(DEV_M, &cancel, GW_COAP_CONTENT, "bye");
    cr_assert_eq(H.nclient, c0 + 2, "nobody is owed the internal cancel's answer");
    counts(0, 0);
    /* The device took the cancel: a late notification is refused. */
    unsigned m0 = H.nmesh;
    dev_notify(GW_COAP_CON, GW_COAP_CONTENT, true, 6, "late");
    h_mesh_pkt(m0, &p);
    cr_assert_eq(p.type, GW_COAP_RST);
}

/* S1.6, issue "resource bounds": the observer table is bounded by
 * obs_max_observers; one more observer gets 5.03 at once and nothing is
 * sent to the device for it, the others go on. */
Test(observe, observer_table_bound_refuses_with_503)
{
    H.cfg.obs_max_observers = 2;
    h_start();
    join(three, 1, 10);
    join(three, 2, 11);
    counts(1, 2);
    unsigned m0 = H.nmesh, c0 = H.nclient;
    h_request(&(struct h_req){ .mac = obs_mac,
                               .port = three[2].port,
                               .tok = three[2].tok,
                               .session = three[2].session,
                               .flags = GW_MF_OBS_REGISTER,
                               .path = "temp" });
    cr_assert_eq(H.nmesh, m0, "nothing goes to the device for a refused observer");
    cr_assert_eq(H.nclient, c0 + 1);
    struct h_pkt p;
    h_client_pkt(c0, &p);
    cr_assert_eq(p.code, GW_COAP_UNAVAILABLE);
    counts(1, 2);
    notify_all(three, 2, 12);
}

/* The observation table is bounded by obs_max_observations. */
Test(observe, observation_table_bound_refuses_with_503)
{
    H.cfg.obs_max_observations = 1;
    h_start();
    join(three, 1, 10);
    unsigned m0 = H.nmesh, c0 = H.nclient;
    h_request(&(struct h_req){ .mac = obs_mac,
                               .port = 40009,
                               .tok = "x9",
                               .session = 9,
                               .flags = GW_MF_OBS_REGISTER,
                               .path = "other" });
    cr_assert_eq(H.nmesh, m0);
    struct h_pkt p;
    h_client_pkt(c0, &p);
    cr_assert_eq(p.code, GW_COAP_UNAVAILABLE);
    counts(1, 1);
}

/* ---- issue #12 items 6 and 7 --------------------------------------------- */

/* Item 6: one session may hold at most obs_max_per_session observers; one
 * more gets 4.29 with a diagnostic, nothing goes to the device, and other
 * sessions may still join; a leaver frees a place. */
Test(observe, observers_per_session_are_bounded)
{
    H.cfg.obs_max_per_session = 2;
    h_start();
    const struct obsr v[] = { { 40001, "a1", 5 }, { 40002, "a2", 5 }, { 40004, "b1", 6 } };
    join(v, 1, 10);
    join(v, 2, 11);
    unsigned m0 = H.nmesh, c0 = H.nclient;
    h_request(&(struct h_req){ .mac = obs_mac,
                               .port = 40003,
                               .tok = "a3",
                               .session = 5,
                               .flags = GW_MF_OBS_REGISTER,
                               .path = "temp" });
    cr_assert_eq(H.nmesh, m0, "nothing goes to the device for a refused observer");
    cr_assert_eq(H.nclient, c0 + 1);
    struct h_pkt p;
    h_client_pkt(c0, &p);
    cr_assert_eq(p.code, GW_COAP_TOO_MANY);
    cr_assert(strstr(p.payload, "obs_max_per_session"), "diagnostic: %s", p.payload);
    counts(1, 2);
    join(v, 3, 12); /* another session is not affected */
    counts(1, 3);
    h_gone(40001, "a1");
    counts(1, 2);
    const struct obsr again[] = { { 40002, "a2", 5 }, { 40004, "b1", 6 }, { 40003, "a3", 5 } };
    join(again, 3, 13);
    counts(1, 3);
}

/* Item 7: a sticky move ends the session's observers at the old endpoint
 * with a final non-2.xx notification (RFC 7641 3.2) and nothing else; the
 * last one leaving cancels at the device. */
Test(observe, sticky_move_ends_observers_at_the_old_endpoint)
{
    h_start();
    const struct obsr v[] = { { 40001, "o1", 7 }, { 40002, "o2", 8 } };
    join(v, 1, 10);
    join(v, 2, 11);
    unsigned c0 = H.nclient, m0 = H.nmesh;
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_SESSION_MOVED;
    m.session = 7;
    h_ep(40009, &m.ep); /* not where session 7 observes: nothing happens */
    sch_core_on_record(H.core, &m, NULL);
    cr_assert_eq(H.nclient, c0);
    counts(1, 2);
    h_ep(40001, &m.ep);
    sch_core_on_record(H.core, &m, NULL);
    cr_assert_eq(H.nclient, c0 + 1, "one final notification");
    struct h_pkt p;
    h_client_pkt(c0, &p);
    cr_assert_eq(H.client[c0].env.ep.port, 40001);
    cr_assert(H.client[c0].env.flags & GW_MF_NOTIFY);
    cr_assert_eq(p.code, GW_COAP_UNAUTHORIZED, "a non-2.xx notification ends the observation");
    cr_assert_lt(p.observe, 0, "without Observe");
    h_assert_client_token(c0, "o1");
    counts(1, 1);
    cr_assert_eq(H.nmesh, m0, "o2 still observes: no cancel");
    c0 = H.nclient;
    notify_all(&v[1], 1, 12);
    cr_assert_eq(h_client_count_tok(c0, "o1"), 0);
    m.session = 8;
    h_ep(40002, &m.ep);
    m0 = H.nmesh;
    sch_core_on_record(H.core, &m, NULL);
    counts(0, 0);
    cr_assert_eq(H.nmesh, m0 + 1, "the last observer gone: cancel at the device");
}

/* Issue 13 item 3: a notification is encoded once and reaches each frontend
 * in records of many observers (GW_MSG_NOTIFY_SET), not one per observer;
 * every observer still gets its own token, endpoint and the same number. */
Test(observe, fan_out_shares_one_record_among_many_observers)
{
    h_start();
    enum { N = 70 };
    static struct obsr v[N];
    static char toks[N][8];
    for (unsigned k = 0; k < N; k++) {
        snprintf(toks[k], sizeof(toks[k]), "t%u", k);
        v[k] = (struct obsr){ (uint16_t)(41000 + k), toks[k], 1 };
        /* Half of them came through frontend 1. */
        H.nclient = 0;
        unsigned m0 = H.nmesh;
        h_request(&(struct h_req){ .mac = obs_mac,
                                   .port = v[k].port,
                                   .tok = v[k].tok,
                                   .session = 1,
                                   .flags = GW_MF_OBS_REGISTER,
                                   .path = "temp",
                                   .fe = (uint8_t)(k & 1) });
        cr_assert_eq(H.nmesh, m0 + 1);
        struct h_pkt req;
        h_last_tx(&req);
        memcpy(gtok, req.token, 8);
        have_gtok = true;
        dev_answer_reg(&req, 10 + k, false, 0, "r");
        cr_assert_eq(H.nclient, k + 1, "the join's answer reaches all %u observers", k + 1);
    }
    counts(1, N);
    H.nclient = 0;
    unsigned s0 = H.notify_sets;
    notify_all(v, N, 200);
    /* Two frontends, 35 observers each, at most 28 in a record of a short
     * state: two records per frontend, not 70. */
    cr_assert_eq(H.notify_sets - s0, 4, "records for %u observers: %u", N, H.notify_sets - s0);
    for (unsigned k = 0; k < N; k++)
        cr_assert_eq(H.client[h_client_find_tok(0, v[k].tok)].env.fe, k & 1,
                     "observer %u at its frontend", k);
}

/* Issue 13 item 4: an observation's observer array grows by a quarter and
 * gives back its unused half as observers leave; every observer still
 * there keeps getting notifications, and one joining again is one more. */
Test(observe, observer_array_shrinks_as_observers_leave)
{
    h_start();
    enum { N = 70, KEEP = 6 };
    static struct obsr v[N];
    static char toks[N][8];
    for (unsigned k = 0; k < N; k++) {
        snprintf(toks[k], sizeof(toks[k]), "t%u", k);
        v[k] = (struct obsr){ (uint16_t)(42000 + k), toks[k], 1 };
        H.nclient = 0;
        h_request(&(struct h_req){ .mac = obs_mac,
                                   .port = v[k].port,
                                   .tok = v[k].tok,
                                   .session = 1,
                                   .flags = GW_MF_OBS_REGISTER,
                                   .path = "temp" });
        struct h_pkt req;
        h_last_tx(&req);
        memcpy(gtok, req.token, 8);
        have_gtok = true;
        dev_answer_reg(&req, 10 + k, false, 0, "r");
    }
    counts(1, N);
    /* All but the first KEEP leave, newest first and oldest first mixed. */
    for (unsigned k = KEEP; k < N; k++) {
        unsigned j = (k & 1) ? k : N - 1 - (k - KEEP);
        if (j < KEEP)
            continue;
        h_gone(v[j].port, v[j].tok);
    }
    for (unsigned k = KEEP; k < N; k++)
        h_gone(v[k].port, v[k].tok); /* the ones the mixed order skipped */
    counts(1, KEEP);
    H.nclient = 0;
    notify_all(v, KEEP, 500);
    for (unsigned k = KEEP; k < N; k++)
        cr_assert_eq(h_client_count_tok(0, v[k].tok), 0, "observer %u left", k);
    /* One of those who left joins again: seven observers get the next one. */
    struct obsr back[KEEP + 1];
    memcpy(back, v, sizeof(struct obsr) * KEEP);
    back[KEEP] = v[40];
    H.nclient = 0;
    join(back, KEEP + 1, 600);
    counts(1, KEEP + 1);
}

/* Registers (port, tok) on path and answers the registration. */
static void observe_path(uint16_t port, const char *tok, const char *path, uint32_t dobs)
{
    h_request(&(struct h_req){ .mac = obs_mac,
                               .port = port,
                               .tok = tok,
                               .session = 1,
                               .flags = GW_MF_OBS_REGISTER,
                               .path = path });
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_str_eq(req.path, path);
    dev_answer_reg(&req, dobs, false, 0, "r");
}

static uint32_t observers_now(void)
{
    struct sch_core_counts n;
    sch_core_counts(H.core, &n);
    return n.observers;
}

/* Issue 13 item 4, RFC 7641 3.1: the index of which observation holds an
 * endpoint and token (links reused as observers come and go) follows each
 * observer that moves to another resource, so that its RST removes it from
 * where it is now, over several rounds of joining, moving and leaving. */
Test(observe, observers_move_between_resources_and_leave_from_where_they_are)
{
    h_start();
    enum { N = 40 };
    static char toks[N][8];
    uint32_t dobs = 10;
    static const uint64_t dev[3] = { DEV_A, DEV_B, DEV_C };
    for (unsigned round = 0; round < 3; round++) {
        /* A device per round: the last leavers' deregistrations stay
         * unanswered at the previous one. */
        obs_mac = dev[round];
        const char *from = round % 2 ? "hum" : "temp", *to = round % 2 ? "temp" : "hum";
        for (unsigned k = 0; k < N; k++) {
            snprintf(toks[k], sizeof(toks[k]), "m%u", k);
            H.nclient = 0;
            observe_path((uint16_t)(43000 + k), toks[k], from, dobs++);
        }
        cr_assert_eq(observers_now(), N);
        /* Every other one moves to the other resource. */
        for (unsigned k = 0; k < N; k += 2) {
            H.nclient = 0;
            observe_path((uint16_t)(43000 + k), toks[k], to, dobs++);
        }
        cr_assert_eq(observers_now(), N, "a move is not a new observer");
        /* Each leaves from where it is; one not observing changes nothing. */
        h_gone(44000, "m0");
        cr_assert_eq(observers_now(), N);
        for (unsigned k = 0; k < N; k++) {
            h_gone((uint16_t)(43000 + k), toks[k]);
            cr_assert_eq(observers_now(), N - 1 - k, "round %u: observer %u left", round, k);
        }
    }
}

/* ---- S3.3 across frontend restarts, without a `recent` record per observer ---- */

/* Registers `o` with client MID mid (a copy when `o` already sent it);
 * returns how many datagrams went to the device. */
static unsigned reg_with_mid(const struct obsr *o, uint16_t mid)
{
    unsigned m0 = H.nmesh;
    h_request(&(struct h_req){ .mac = obs_mac,
                               .port = o->port,
                               .tok = o->tok,
                               .session = o->session,
                               .mid = mid,
                               .flags = GW_MF_OBS_REGISTER,
                               .path = "temp" });
    return H.nmesh - m0;
}

/* The device answers the last registration, with a Max-Age (a day) that
 * outlasts the test, so no re-registration (S6.5) is in flight when a copy
 * comes; every kept answer is ACKed, so no transaction is left that would
 * recognise a copy by itself. */
static void answer_and_ack(uint32_t dobs)
{
    struct h_pkt req;
    h_last_tx(&req);
    unsigned c0 = H.nclient;
    dev_answer_reg(&req, dobs, true, 86400, "s");
    for (unsigned i = c0; i < H.nclient; i++)
        if (H.client[i].env.flags2 & GW_MF2_MID)
            h_client_acked(i);
    struct sch_core_counts n;
    sch_core_counts(H.core, &n);
    cr_assert_eq(n.txns, 0, "no transaction is left");
}

/* S3.3, S1.3, issue 13 item 4: a frontend that restarted forgot its dedup
 * table, so the scheduler recognises a client's copy of a registration it
 * took. While the observer is linked, its link remembers the registration
 * (endpoint, token, MID, when), and `recent` holds no record for it (16 B
 * and index slots per observer before); the registration goes to `recent`
 * when the observer registers again or leaves, and is a new request again
 * only after EXCHANGE_LIFETIME. */
Test(observe, copies_of_registrations_are_recognised_without_a_recent_record_per_observer)
{
    h_start();
    cr_assert_eq(reg_with_mid(&three[0], 0x100), 1);
    answer_and_ack(1);
    cr_assert_eq(reg_with_mid(&three[1], 0x200), 1);
    answer_and_ack(2);
    cr_assert_eq(H.core->recent_n, 0, "no `recent` record for a live observer's registration");
    unsigned c0 = H.nclient;
    cr_assert_eq(reg_with_mid(&three[0], 0x100), 0, "a copy is not forwarded (S3.3)");
    cr_assert_eq(reg_with_mid(&three[1], 0x200), 0, "a copy is not forwarded (S3.3)");
    cr_assert_eq(h_client_count_tok(c0, "o1") + h_client_count_tok(c0, "o2"), 0,
                 "nor answered on its own");
    counts(1, 2);

    /* o1 registers again: its link now holds 0x101, `recent` takes 0x100. */
    h_advance(1000);
    cr_assert_eq(reg_with_mid(&three[0], 0x101), 1, "a new MID is a new registration");
    answer_and_ack(3);
    cr_assert_eq(H.core->recent_n, 1, "the replaced registration went to `recent`");
    cr_assert_eq(reg_with_mid(&three[0], 0x100), 0, "a copy of the old one is still a copy");
    cr_assert_eq(reg_with_mid(&three[0], 0x101), 0, "and of the new one");

    /* o2 leaves (RST): its registration goes to `recent` with it. */
    h_gone(three[1].port, three[1].tok);
    counts(1, 1);
    cr_assert_eq(H.core->recent_n, 2);
    cr_assert_eq(reg_with_mid(&three[1], 0x200), 0, "a copy after the observer left is a copy");
    counts(1, 1);

    /* 0x200 was taken 1 s before 0x101. A link counts the lifetime from the
     * next whole second (never shorter, at most 1 s longer): both are new
     * requests 1 s after their EXCHANGE_LIFETIME. */
    h_advance((uint64_t)H.cfg.exchange_lifetime_ms - 1000 - 1);
    cr_assert_eq(reg_with_mid(&three[1], 0x200), 0, "still a copy within EXCHANGE_LIFETIME");
    cr_assert_eq(reg_with_mid(&three[0], 0x101), 0, "still a copy within EXCHANGE_LIFETIME");
    h_advance(1000 + 1000 + 1);
    cr_assert_eq(reg_with_mid(&three[0], 0x101), 1, "0x101 too is new after its lifetime");
    answer_and_ack(4);
    cr_assert_eq(reg_with_mid(&three[1], 0x200), 1, "0x200 is a new registration again");
    answer_and_ack(5);
    counts(1, 2);
}

/* S3.3: a refused registration (no observer holds it) is remembered in
 * `recent`: once its 5.03 is ACKed, a copy is neither taken again (the
 * table has room by then) nor answered again on its own. */
Test(observe, copy_of_a_refused_registration_is_not_taken_again)
{
    H.cfg.obs_max_observers = 1;
    h_start();
    cr_assert_eq(reg_with_mid(&three[0], 0x100), 1);
    answer_and_ack(1);
    unsigned c0 = H.nclient;
    cr_assert_eq(reg_with_mid(&three[1], 0x200), 0, "refused: nothing for the device");
    cr_assert_eq(H.nclient, c0 + 1);
    struct h_pkt p;
    h_client_pkt(c0, &p);
    cr_assert_eq(p.code, GW_COAP_UNAVAILABLE);
    if (H.client[c0].env.flags2 & GW_MF2_MID)
        h_client_acked(c0);
    cr_assert_eq(H.core->recent_n, 1, "the refused registration is in `recent`");
    h_gone(three[0].port, three[0].tok); /* room again; the device is cancelled */
    counts(0, 0);
    struct h_pkt cancel;
    h_last_tx(&cancel);
    cr_assert_eq(cancel.observe, 1);
    h_piggy(obs_mac, &cancel, GW_COAP_CONTENT, "c");
    unsigned m0 = H.nmesh;
    c0 = H.nclient;
    cr_assert_eq(reg_with_mid(&three[1], 0x200), 0, "the copy is not taken");
    cr_assert_eq(H.nmesh, m0);
    cr_assert_eq(h_client_count_tok(c0, three[1].tok), 0, "nor answered on its own");
    counts(0, 0);
    cr_assert_eq(reg_with_mid(&three[1], 0x201), 1, "a new MID is taken");
}

/* Issue 13 item 4: an observation is allocated for its own Cache-Key and
 * request, not for the largest of both (2 696 B each before, 17 B per
 * observer with 5 000 observers on 32 resources), when it is created and
 * when a restarted scheduler loads it; observers still join it (its key is
 * compared in full) and notifications reach them. */
Test(observe, an_observation_is_allocated_for_its_own_key_and_request)
{
    h_open_store();
    h_start();
    join(three, 1, 1);
    join(three, 2, 2);
    counts(1, 2);
    /* The observation and an observer array of 8 (48 B each). */
    size_t held = sch_obs_heap_bytes(H.core);
    cr_assert_lt(held, 1024u + 8 * 48, "one observation holds %zu B", held);
    h_restart();
    counts(1, 2);
    held = sch_obs_heap_bytes(H.core);
    cr_assert_lt(held, 1024u + 8 * 48, "loaded from LMDB: %zu B", held);
    unsigned m0 = H.nmesh;
    sch_core_resume_observations(H.core);
    cr_assert_eq(H.nmesh, m0 + 1, "one re-registration (S6.6)");
    struct h_pkt req;
    h_last_tx(&req);
    cr_assert_eq(req.observe, 0);
    cr_assert_str_eq(req.path, "temp", "the stored request came back whole");
    cr_assert_eq(memcmp(req.token, gtok, 8), 0, "the observation keeps its gateway token");
    unsigned c0 = H.nclient;
    dev_answer_reg(&req, 3, false, 0, "s3");
    check_fanout(c0, three, 2, NULL, "s3");
    join(three, 3, 4);
    counts(1, 3);
}
