/* SPDX-License-Identifier: MIT */
/* test_tokens.c - the gateway's tokens towards devices (issue #12 item 8,
 * RFC 7252 5.3.1): 8 random bytes per exchange and per observation, never
 * a counter, so that a device (or anyone seeing one device's traffic)
 * cannot predict the tokens of other exchanges and forge their answers;
 * matching by device and token/MID still works, also across a restart. */
#include "sch_harness.h"

static void setup(void)
{
    h_init();
}
static void teardown(void)
{
    h_fini();
}

TestSuite(tokens, .init = setup, .fini = teardown);

static uint64_t tok_u64(const uint8_t t[8])
{
    uint64_t v;
    memcpy(&v, t, 8);
    return v;
}

/* |a - b| as an unsigned distance, either way round. */
static uint64_t dist(uint64_t a, uint64_t b)
{
    return a > b ? a - b : b - a;
}

/* Runs `n` sequential exchanges with DEV_A, each answered at once, and
 * stores the token of each request datagram in out[]. */
static void exchanges(unsigned n, uint64_t *out)
{
    static unsigned seq;
    for (unsigned i = 0; i < n; i++) {
        char path[16];
        snprintf(path, sizeof(path), "e%u", seq++); /* distinct resources: no cache hit */
        unsigned before = H.nmesh;
        h_request(&(struct h_req){
            .mac = DEV_A, .port = (uint16_t)(41000 + i), .tok = "x", .path = path });
        cr_assert_eq(H.nmesh, before + 1, "exchange %u goes to the device", i);
        struct h_pkt req;
        h_last_tx(&req);
        cr_assert_eq(req.tkl, 8, "8-byte tokens");
        out[i] = tok_u64(req.token);
        h_piggy(DEV_A, &req, GW_COAP_CONTENT, "v");
    }
}

/* What a predictable source shows: tokens close to each other, or the same
 * high-order bytes. 64 random tokens are pairwise 2^40 apart with
 * probability 1 - 2^-13 and show at least 40 distinct top bytes with
 * probability far above 1 - 2^-40. */
static void assert_unpredictable(const uint64_t *t, unsigned n)
{
    bool top[256] = { false };
    unsigned ntop = 0;
    for (unsigned i = 0; i < n; i++) {
        cr_assert_neq(t[i], 0, "token %u is zero", i);
        for (unsigned j = 0; j < i; j++) {
            cr_assert_neq(t[i], t[j], "tokens %u and %u repeat", j, i);
            cr_assert_gt(dist(t[i], t[j]), 1ull << 30,
                         "tokens %u and %u are %llu apart: sequential or guessable", j, i,
                         (unsigned long long)dist(t[i], t[j]));
        }
        uint8_t hi = (uint8_t)(t[i] >> 56);
        if (!top[hi]) {
            top[hi] = true;
            ntop++;
        }
    }
    cr_assert_geq(ntop, n * 5 / 8, "only %u distinct high bytes in %u tokens: not random", ntop, n);
}

Test(tokens, exchange_tokens_are_random_eight_bytes)
{
    h_start();
    uint64_t t[64];
    exchanges(32, t);
    /* A successor scheduler draws from its own random source, not from a
     * counter it could have inherited. */
    h_restart();
    exchanges(32, t + 32);
    assert_unpredictable(t, 64);
}

Test(tokens, observation_tokens_are_random_and_unlike_exchange_tokens)
{
    h_start();
    uint64_t t[48];
    exchanges(16, t);
    /* 16 observations of distinct resources on DEV_B: one token each. */
    for (unsigned i = 0; i < 16; i++) {
        char path[16];
        snprintf(path, sizeof(path), "r%u", i);
        unsigned before = H.nmesh;
        h_request(&(struct h_req){ .mac = DEV_B,
                                   .port = (uint16_t)(42000 + i),
                                   .tok = "o",
                                   .flags = GW_MF_OBS_REGISTER,
                                   .path = path });
        cr_assert_eq(H.nmesh, before + 1, "observe registration %u goes to the device", i);
        struct h_pkt req;
        h_last_tx(&req);
        t[16 + i] = tok_u64(req.token);
        h_device_send(&(struct h_resp){ .mac = DEV_B,
                                        .type = GW_COAP_ACK,
                                        .code = GW_COAP_CONTENT,
                                        .mid = req.mid,
                                        .token = req.token,
                                        .has_obs = true,
                                        .obs = 1,
                                        .payload = "s" });
    }
    exchanges(16, t + 32);
    assert_unpredictable(t, 48);
}

/* The attack of item 8: with security=none a device's answer is matched by
 * its address and the token. A device that saw the token of its own
 * exchange guesses the next ones (old tokens were one counter + 1 per
 * exchange) and answers another device's pending request from that
 * device's address. The guess must not match: the forged datagram gets
 * RST and the client gets the real answer, also after a restart. */
Test(tokens, forged_answer_with_guessed_sequential_token_is_not_accepted)
{
    h_start();
    /* The attacker's own exchange teaches it one token. */
    h_request(&(struct h_req){ .mac = DEV_A, .port = 40001, .tok = "a1" });
    struct h_pkt ra;
    h_last_tx(&ra);
    h_piggy(DEV_A, &ra, GW_COAP_CONTENT, "mine");
    cr_assert_eq(H.nclient, 1);

    /* The victim's exchange with DEV_B: ACKed, answer pending. */
    h_request(&(struct h_req){ .mac = DEV_B, .port = 40002, .tok = "v1" });
    struct h_pkt rb;
    h_last_tx(&rb);
    h_empty(DEV_B, GW_COAP_ACK, rb.mid);

    /* Guesses around the learnt token, as sent from DEV_B's address. */
    uint64_t base = tok_u64(ra.token);
    unsigned forged = 0;
    for (int64_t d = -8; d <= 8; d++) {
        if (d == 0)
            continue;
        uint64_t g = base + (uint64_t)d;
        uint8_t guess[8];
        memcpy(guess, &g, 8);
        unsigned m0 = H.nmesh;
        h_device_send(&(struct h_resp){ .mac = DEV_B,
                                        .type = GW_COAP_CON,
                                        .code = GW_COAP_CONTENT,
                                        .mid = (uint16_t)(0x5000 + d),
                                        .token = guess,
                                        .payload = "forged" });
        cr_assert_eq(H.nmesh, m0 + 1, "the gateway replies to the forged CON");
        struct h_pkt rep;
        h_mesh_pkt(m0, &rep);
        cr_assert_eq(rep.type, GW_COAP_RST, "guess %+lld: a forged answer is reset, not ACKed",
                     (long long)d);
        forged++;
    }
    cr_assert_eq(H.nclient, 1, "none of %u forged answers reached the victim", forged);

    /* The real answer still matches, also after the scheduler restarted. */
    h_restart();
    h_device_send(&(struct h_resp){ .mac = DEV_B,
                                    .type = GW_COAP_CON,
                                    .code = GW_COAP_CONTENT,
                                    .mid = 0x6001,
                                    .token = rb.token,
                                    .payload = "real" });
    cr_assert_eq(H.nclient, 2);
    struct h_pkt p;
    h_client_pkt(1, &p);
    h_assert_client_token(1, "v1");
    cr_assert_eq(p.code, GW_COAP_CONTENT);
    cr_assert_str_eq(p.payload, "real");
}

/* Matching by token is per device: the right token from the wrong device
 * answers nothing (a device cannot answer for another one even when it
 * learns a token). */
Test(tokens, right_token_from_another_device_is_not_accepted)
{
    h_start();
    h_request(&(struct h_req){ .mac = DEV_B, .port = 40002, .tok = "v1" });
    struct h_pkt rb;
    h_last_tx(&rb);
    h_empty(DEV_B, GW_COAP_ACK, rb.mid);
    h_device_send(&(struct h_resp){ .mac = DEV_A,
                                    .type = GW_COAP_CON,
                                    .code = GW_COAP_CONTENT,
                                    .mid = 0x5001,
                                    .token = rb.token,
                                    .payload = "forged" });
    cr_assert_eq(H.nclient, 0, "DEV_A cannot answer DEV_B's exchange");
    h_device_send(&(struct h_resp){ .mac = DEV_B,
                                    .type = GW_COAP_CON,
                                    .code = GW_COAP_CONTENT,
                                    .mid = 0x5002,
                                    .token = rb.token,
                                    .payload = "real" });
    cr_assert_eq(H.nclient, 1);
    struct h_pkt p;
    h_client_pkt(0, &p);
    cr_assert_str_eq(p.payload, "real");
}
