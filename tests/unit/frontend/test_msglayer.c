/* SPDX-License-Identifier: MIT */
/* test_msglayer.c - the client-facing message layer without I/O (SPEC S3.2,
 * S3.3, S3.6; RFC 7252 4.2, 4.5; RFC 7641 4.5.2). Times are fake ms values. */
#include "fe_block.h"
#include "fe_msglayer.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define E(expr) cr_assert_eq((expr), 0, "%s", #expr)

#define LIFETIME 247000u     /* RFC 7252 EXCHANGE_LIFETIME with the defaults */
#define ACK_TIMEOUT_MS 2000u /* ACK_TIMEOUT (S3.6), "T" in the comments */

static struct gw_ep ep_of(const char *s)
{
    struct gw_ep ep;
    E(gw_ep_parse(s, 5683, &ep));
    return ep;
}

/* ---- deduplication (S3.3) ---- */

Test(dedup, new_exchange_is_not_a_duplicate)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    cr_assert_null(fe_dedup_find(&d, &a, 7, NULL, 0, 0));
    struct fe_dedup_entry *e = fe_dedup_add(&d, &a, 7, NULL, 0, 0);
    cr_assert_not_null(e);
    cr_assert_null(e->resp);
    cr_assert_eq(e->forwarded, 0);
    fe_dedup_deinit(&d);
}

/* S3.3: same MID from the same endpoint within EXCHANGE_LIFETIME. */
Test(dedup, duplicate_found_within_lifetime)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct gw_ep a_port = ep_of("10.0.0.1:1001");
    struct gw_ep b = ep_of("10.0.0.2:1000");
    struct fe_dedup_entry *e = fe_dedup_add(&d, &a, 7, NULL, 0, 1000);
    e->forwarded = 1;
    cr_assert_eq(fe_dedup_find(&d, &a, 7, NULL, 0, 1000), e);
    struct fe_dedup_entry *f = fe_dedup_find(&d, &a, 7, NULL, 0, 1000 + LIFETIME - 1);
    cr_assert_eq(f, e);
    cr_assert_eq(f->forwarded, 1);
    /* Other MID, other port, other address: different exchanges. */
    cr_assert_null(fe_dedup_find(&d, &a, 8, NULL, 0, 1000));
    cr_assert_null(fe_dedup_find(&d, &a_port, 7, NULL, 0, 1000));
    cr_assert_null(fe_dedup_find(&d, &b, 7, NULL, 0, 1000));
    fe_dedup_deinit(&d);
}

/* S3.3: after EXCHANGE_LIFETIME the MID may be reused for a new request. */
Test(dedup, expired_after_lifetime)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    (void)fe_dedup_add(&d, &a, 7, NULL, 0, 1000);
    cr_assert_null(fe_dedup_find(&d, &a, 7, NULL, 0, 1000 + LIFETIME));
    /* Re-adding the expired key gives a fresh entry that is found again. */
    struct fe_dedup_entry *e = fe_dedup_add(&d, &a, 7, NULL, 0, 1000 + LIFETIME);
    cr_assert_eq(fe_dedup_find(&d, &a, 7, NULL, 0, 1000 + LIFETIME + 1), e);
    cr_assert_eq(d.count, 1, "the expired entry was reclaimed");
    fe_dedup_deinit(&d);
}

/* S3.3: a duplicate gets the stored answer again (a copy, not the caller's buffer). */
Test(dedup, stored_answer_returned)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct fe_dedup_entry *e = fe_dedup_add(&d, &a, 7, NULL, 0, 0);
    uint8_t ans[10] = { 0x62, 0x45, 0, 7, 1, 2, 3, 4, 5, 6 };
    fe_dedup_set_resp(&d, e, ans, sizeof(ans));
    memset(ans, 0xee, sizeof(ans));
    struct fe_dedup_entry *f = fe_dedup_find(&d, &a, 7, NULL, 0, 5);
    cr_assert_eq(f, e);
    cr_assert_not_null(f->resp);
    cr_assert_eq(f->resp_len, 10);
    const uint8_t want[10] = { 0x62, 0x45, 0, 7, 1, 2, 3, 4, 5, 6 };
    cr_assert_arr_eq(f->resp, want, 10);
    /* The first answer stays: a second set is ignored. */
    uint8_t other[3] = { 9, 9, 9 };
    fe_dedup_set_resp(&d, e, other, 3);
    cr_assert_eq(f->resp_len, 10);
    cr_assert_eq(d.resp_bytes, 10);
    fe_dedup_deinit(&d);
}

/* S3.3, RFC 7252 4.5: a retransmission is an identical copy, so the same
 * endpoint, MID and token is the duplicate, and its stored answer comes back. */
Test(dedup, same_mid_and_token_is_a_duplicate)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    const uint8_t tok[4] = { 0xa1, 0xa2, 0xa3, 0xa4 };
    const uint8_t same[4] = { 0xa1, 0xa2, 0xa3, 0xa4 };
    struct fe_dedup_entry *e = fe_dedup_add(&d, &a, 7, tok, 4, 0);
    cr_assert_not_null(e);
    const uint8_t ans[8] = { 0x64, 0x45, 0, 7, 0xa1, 0xa2, 0xa3, 0xa4 };
    fe_dedup_set_resp(&d, e, ans, sizeof(ans));
    struct fe_dedup_entry *f = fe_dedup_find(&d, &a, 7, same, 4, LIFETIME - 1);
    cr_assert_eq(f, e);
    cr_assert_arr_eq(f->resp, ans, sizeof(ans));
    /* Empty token (tkl 0) is a token too: it matches only itself. */
    struct fe_dedup_entry *g = fe_dedup_add(&d, &a, 9, NULL, 0, 0);
    cr_assert_eq(fe_dedup_find(&d, &a, 9, NULL, 0, 1), g);
    cr_assert_null(fe_dedup_find(&d, &a, 9, tok, 1, 1));
    fe_dedup_deinit(&d);
}

/* A MID reused within the lifetime with another token is a new request (a
 * forwarding node above ~130 requests a second to one owner, S10.4): it is
 * not a duplicate and the older request's stored answer is never replayed
 * to it; both exchanges are then remembered on their own. */
Test(dedup, same_mid_other_token_is_a_new_exchange)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    const uint8_t tok_a[2] = { 0x0a, 0x0a };
    const uint8_t tok_b[2] = { 0x0b, 0x0b };
    const uint8_t tok_a_long[3] = { 0x0a, 0x0a, 0x00 };
    struct fe_dedup_entry *e = fe_dedup_add(&d, &a, 7, tok_a, 2, 0);
    const uint8_t ans_x[6] = { 0x62, 0x45, 0, 7, 0x0a, 0x0a };
    fe_dedup_set_resp(&d, e, ans_x, sizeof(ans_x));
    e->forwarded = 1;
    cr_assert_null(fe_dedup_find(&d, &a, 7, tok_b, 2, 1000), "token B is a new request");
    cr_assert_null(fe_dedup_find(&d, &a, 7, tok_b, 1, 1000), "a shorter token differs");
    cr_assert_null(fe_dedup_find(&d, &a, 7, tok_a_long, 3, 1000), "a longer token differs");
    cr_assert_null(fe_dedup_find(&d, &a, 7, NULL, 0, 1000), "no token differs");
    struct fe_dedup_entry *f = fe_dedup_add(&d, &a, 7, tok_b, 2, 1000);
    cr_assert_not_null(f);
    cr_assert_neq(f, e);
    cr_assert_null(f->resp, "the old answer is not carried over");
    cr_assert_eq(f->forwarded, 0);
    const uint8_t ans_y[6] = { 0x62, 0x45, 0, 7, 0x0b, 0x0b };
    fe_dedup_set_resp(&d, f, ans_y, sizeof(ans_y));
    /* Each one's retransmission gets its own answer. */
    cr_assert_eq(fe_dedup_find(&d, &a, 7, tok_a, 2, 2000), e);
    cr_assert_arr_eq(fe_dedup_find(&d, &a, 7, tok_a, 2, 2000)->resp, ans_x, 6);
    cr_assert_eq(fe_dedup_find(&d, &a, 7, tok_b, 2, 2000), f);
    cr_assert_arr_eq(fe_dedup_find(&d, &a, 7, tok_b, 2, 2000)->resp, ans_y, 6);
    cr_assert_eq(d.count, 2);
    /* The older expires first and is freed by its own key; the newer stays. */
    cr_assert_not_null(fe_dedup_add(&d, &a, 8, NULL, 0, LIFETIME + 1));
    cr_assert_null(fe_dedup_find(&d, &a, 7, tok_a, 2, LIFETIME + 1));
    cr_assert_eq(fe_dedup_find(&d, &a, 7, tok_b, 2, LIFETIME + 1), f);
    cr_assert_eq(d.count, 2);
    cr_assert_eq(d.idx.n, 2, "the expired entry's index key went with it");
    fe_dedup_deinit(&d);
}

/* The stored answers are bounded by resp_budget; expiry gives room back. */
Test(dedup, answer_budget_respected)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 100));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    uint8_t buf[60];
    memset(buf, 0x42, sizeof(buf));
    struct fe_dedup_entry *e1 = fe_dedup_add(&d, &a, 1, NULL, 0, 0);
    fe_dedup_set_resp(&d, e1, buf, 60);
    cr_assert_not_null(e1->resp);
    struct fe_dedup_entry *e2 = fe_dedup_add(&d, &a, 2, NULL, 0, 10);
    fe_dedup_set_resp(&d, e2, buf, 60);
    cr_assert_null(e2->resp, "beyond the budget the answer is not kept");
    cr_assert_eq(d.resp_bytes, 60);
    /* The exchange itself is still remembered. */
    cr_assert_eq(fe_dedup_find(&d, &a, 2, NULL, 0, 11), e2);
    /* e1 expires; adding reclaims it and its bytes. */
    struct fe_dedup_entry *e3 = fe_dedup_add(&d, &a, 3, NULL, 0, LIFETIME + 1);
    cr_assert_eq(d.resp_bytes, 0);
    fe_dedup_set_resp(&d, e3, buf, 60);
    cr_assert_not_null(e3->resp);
    cr_assert_eq(d.resp_bytes, 60);
    fe_dedup_deinit(&d);
}

/* A full table evicts the oldest exchange early and counts it. */
Test(dedup, full_table_evicts_oldest)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 4, LIFETIME, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    uint8_t buf[8] = { 0 };
    for (uint16_t mid = 1; mid <= 4; mid++) {
        struct fe_dedup_entry *e = fe_dedup_add(&d, &a, mid, NULL, 0, mid);
        fe_dedup_set_resp(&d, e, buf, sizeof(buf));
    }
    cr_assert_eq(d.count, 4);
    cr_assert_eq(d.resp_bytes, 32);
    cr_assert_not_null(fe_dedup_add(&d, &a, 5, NULL, 0, 5));
    cr_assert_eq(d.count, 4);
    cr_assert_eq(d.evicted_early, 1);
    cr_assert_eq(d.resp_bytes, 24, "the evicted entry's answer is freed");
    cr_assert_null(fe_dedup_find(&d, &a, 1, NULL, 0, 6), "the oldest was evicted");
    for (uint16_t mid = 2; mid <= 5; mid++)
        cr_assert_not_null(fe_dedup_find(&d, &a, mid, NULL, 0, 6), "mid %u", mid);
    fe_dedup_deinit(&d);
}

/* Many exchanges through a small table: the hash index stays consistent. */
Test(dedup, wraps_around_consistently)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 8, 100, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct gw_ep b = ep_of("10.0.0.2:1000");
    for (uint32_t i = 0; i < 1000; i++) {
        const struct gw_ep *ep = (i & 1) ? &a : &b;
        uint16_t mid = (uint16_t)(i * 7);
        cr_assert_null(fe_dedup_find(&d, ep, mid, NULL, 0, i * 10));
        cr_assert_not_null(fe_dedup_add(&d, ep, mid, NULL, 0, i * 10));
        cr_assert_not_null(fe_dedup_find(&d, ep, mid, NULL, 0, i * 10 + 99));
        cr_assert_leq(d.count, 8);
    }
    fe_dedup_deinit(&d);
}

/* Issue #12 item 6: entries of senders without a session never evict those
 * of senders with one, and are bounded as a class. */
Test(dedup, sessionless_never_evict_session_entries)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 8, LIFETIME, 4096));
    fe_dedup_limit(&d, 4, 8);
    struct gw_ep a = ep_of("10.0.0.1:1000");
    cr_assert_not_null(fe_dedup_add(&d, &a, 1, NULL, 0, 0));
    cr_assert_not_null(fe_dedup_add(&d, &a, 2, NULL, 0, 0));
    for (uint16_t i = 0; i < 100; i++) {
        char s[32];
        snprintf(s, sizeof(s), "10.9.%u.%u:%u", i / 200, i % 200, 2000 + i);
        struct gw_ep x = ep_of(s);
        cr_assert_not_null(fe_dedup_add_cls(&d, &x, i, NULL, 0, 1 + i, FE_DEDUP_SESSIONLESS));
        cr_assert_leq(d.cls[FE_DEDUP_SESSIONLESS].count, 4);
    }
    cr_assert_not_null(fe_dedup_find(&d, &a, 1, NULL, 0, 200));
    cr_assert_not_null(fe_dedup_find(&d, &a, 2, NULL, 0, 200));
    /* Senders with a session fill the rest, sessionless entries go first. */
    struct gw_ep c = ep_of("10.0.0.3:1000");
    for (uint16_t i = 0; i < 6; i++)
        cr_assert_not_null(fe_dedup_add(&d, &c, i, NULL, 0, 300));
    cr_assert_eq(d.count, 8);
    cr_assert_eq(d.cls[FE_DEDUP_SESSIONLESS].count, 0);
    /* Now a sessionless sender finds no room, rather than evicting. */
    struct gw_ep x = ep_of("10.9.9.9:9");
    cr_assert_null(fe_dedup_add_cls(&d, &x, 1, NULL, 0, 301, FE_DEDUP_SESSIONLESS));
    cr_assert_not_null(fe_dedup_find(&d, &a, 1, NULL, 0, 302));
    fe_dedup_deinit(&d);
}

/* Issue #12 item 6: one source holds at most per_source entries; one more
 * forgets its own oldest, never another source's. Sessionless sources are
 * counted per address, whatever the port. */
Test(dedup, per_source_bound_evicts_own_oldest)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    fe_dedup_limit(&d, 8, 3);
    struct gw_ep a = ep_of("10.0.0.1:1000"), b = ep_of("10.0.0.2:1000");
    cr_assert_not_null(fe_dedup_add(&d, &b, 7, NULL, 0, 0));
    for (uint16_t mid = 1; mid <= 5; mid++)
        cr_assert_not_null(fe_dedup_add(&d, &a, mid, NULL, 0, mid));
    cr_assert_null(fe_dedup_find(&d, &a, 1, NULL, 0, 10));
    cr_assert_null(fe_dedup_find(&d, &a, 2, NULL, 0, 10));
    for (uint16_t mid = 3; mid <= 5; mid++)
        cr_assert_not_null(fe_dedup_find(&d, &a, mid, NULL, 0, 10));
    cr_assert_not_null(fe_dedup_find(&d, &b, 7, NULL, 0, 10), "another source is untouched");
    for (uint16_t port = 1; port <= 5; port++) {
        struct gw_ep x = { .family = 4, .port = port, .addr = { 10, 9, 9, 9 } };
        cr_assert_not_null(fe_dedup_add_cls(&d, &x, 1, NULL, 0, 20, FE_DEDUP_SESSIONLESS));
    }
    cr_assert_eq(d.cls[FE_DEDUP_SESSIONLESS].count, 3, "one share per address, any port");
    cr_assert_not_null(fe_dedup_find(&d, &b, 7, NULL, 0, 21));
    fe_dedup_deinit(&d);
}

/* Issue #12 item 6: the entry of a request that created a session moves to
 * the session share with its answer, so sessionless traffic cannot evict it. */
Test(dedup, promoted_entry_survives_sessionless_churn)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    fe_dedup_limit(&d, 4, 16);
    struct gw_ep c = ep_of("10.0.0.1:1000");
    struct fe_dedup_entry *e = fe_dedup_add_cls(&d, &c, 42, NULL, 0, 0, FE_DEDUP_SESSIONLESS);
    cr_assert_not_null(e);
    uint8_t ans[20] = { 0x60, 0x41, 0, 42 };
    fe_dedup_promote(&d, e, 0);
    fe_dedup_set_resp(&d, e, ans, sizeof(ans));
    for (uint16_t i = 0; i < 200; i++) {
        struct gw_ep x = { .family = 4,
                           .port = 5000,
                           .addr = { 10, 9, (uint8_t)(i >> 8), (uint8_t)i } };
        (void)fe_dedup_add_cls(&d, &x, i, NULL, 0, 1 + i, FE_DEDUP_SESSIONLESS);
    }
    struct fe_dedup_entry *f = fe_dedup_find(&d, &c, 42, NULL, 0, 300);
    cr_assert_eq(f, e);
    cr_assert_eq(f->resp_len, sizeof(ans));
    cr_assert_eq(d.cls[FE_DEDUP_SESSION].resp_bytes, sizeof(ans));
    /* Without the promotion it would have gone. */
    struct gw_ep c2 = ep_of("10.0.0.2:1000");
    cr_assert_not_null(fe_dedup_add_cls(&d, &c2, 43, NULL, 0, 400, FE_DEDUP_SESSIONLESS));
    for (uint16_t i = 0; i < 10; i++) {
        struct gw_ep x = { .family = 4, .port = 5001, .addr = { 10, 8, 0, (uint8_t)i } };
        (void)fe_dedup_add_cls(&d, &x, i, NULL, 0, 401 + i, FE_DEDUP_SESSIONLESS);
    }
    cr_assert_null(fe_dedup_find(&d, &c2, 43, NULL, 0, 500));
    /* Expiry still reclaims everything, class by class. */
    (void)fe_dedup_add(&d, &c, 44, NULL, 0, 500 + LIFETIME);
    cr_assert_eq(d.count, 1);
    cr_assert_eq(d.resp_bytes, 0);
    fe_dedup_deinit(&d);
}

/* Issue 13: fe_dedup_get, one find-or-insert per request. A new key is
 * inserted (*dup false), the same key again is the same entry (*dup true)
 * and inserts nothing; another token is a new exchange. */
Test(dedup, get_inserts_once_then_finds_the_duplicate)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    const uint8_t tok[2] = { 1, 2 }, tok2[2] = { 1, 3 };
    bool dup = true;
    struct fe_dedup_entry *e = fe_dedup_get(&d, &a, 7, tok, 2, 0, FE_DEDUP_SESSION, &dup);
    cr_assert_not_null(e);
    cr_assert_not(dup, "a new exchange");
    e->forwarded = 1;
    struct fe_dedup_entry *f =
        fe_dedup_get(&d, &a, 7, tok, 2, LIFETIME - 1, FE_DEDUP_SESSION, &dup);
    cr_assert(dup, "a retransmission");
    cr_assert_eq(f, e);
    cr_assert_eq(f->forwarded, 1);
    cr_assert_eq(d.count, 1, "nothing inserted for the duplicate");
    cr_assert_eq(d.idx.n, 1);
    /* The class asked for does not matter to a duplicate. */
    f = fe_dedup_get(&d, &a, 7, tok, 2, 5, FE_DEDUP_SESSIONLESS, &dup);
    cr_assert(dup);
    cr_assert_eq(f, e);
    struct fe_dedup_entry *g = fe_dedup_get(&d, &a, 7, tok2, 2, 5, FE_DEDUP_SESSION, &dup);
    cr_assert_not(dup, "same MID, other token: a new exchange");
    cr_assert_neq(g, e);
    cr_assert_eq(d.count, 2);
    cr_assert_eq(fe_dedup_find(&d, &a, 7, tok2, 2, 6), g);
    cr_assert_eq(fe_dedup_find(&d, &a, 7, tok, 2, 6), e);
    /* After the lifetime the same key is a new exchange again. */
    f = fe_dedup_get(&d, &a, 7, tok, 2, LIFETIME, FE_DEDUP_SESSION, &dup);
    cr_assert_not(dup);
    cr_assert_not_null(f);
    cr_assert_eq(d.count, 2, "the expired one was reclaimed");
    fe_dedup_deinit(&d);
}

/* fe_dedup_get keeps the limits: a source over per_source forgets its own
 * oldest, a full table evicts the oldest (counted), SESSIONLESS is bounded
 * by its share and never evicts a SESSION entry (S9.1, issue #12 item 6). */
Test(dedup, get_keeps_the_limits_and_eviction_order)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 6, LIFETIME, 4096));
    fe_dedup_limit(&d, 2, 3);
    struct gw_ep a = ep_of("10.0.0.1:1000"), b = ep_of("10.0.0.2:1000");
    bool dup;
    for (uint16_t mid = 1; mid <= 4; mid++) {
        cr_assert_not_null(fe_dedup_get(&d, &a, mid, NULL, 0, mid, FE_DEDUP_SESSION, &dup));
        cr_assert_not(dup);
    }
    cr_assert_eq(d.count, 3, "per_source: a keeps its 3 newest");
    cr_assert_null(fe_dedup_find(&d, &a, 1, NULL, 0, 10));
    cr_assert_eq(d.src_idx.n, 1);
    /* Sessionless senders: 2 at most, the oldest goes first. */
    for (uint16_t i = 0; i < 3; i++) {
        struct gw_ep x = { .family = 4, .port = 9, .addr = { 10, 9, 0, (uint8_t)i } };
        cr_assert_not_null(fe_dedup_get(&d, &x, 1, NULL, 0, 10 + i, FE_DEDUP_SESSIONLESS, &dup));
    }
    cr_assert_eq(d.cls[FE_DEDUP_SESSIONLESS].count, 2);
    struct gw_ep x0 = { .family = 4, .port = 9, .addr = { 10, 9, 0, 0 } };
    cr_assert_null(fe_dedup_find(&d, &x0, 1, NULL, 0, 20), "the oldest sessionless went");
    /* Full (3 + 2 + b's 1 = 6): b's second and third evict the sessionless
     * entries first, then c's first the oldest SESSION entry (a's mid 2);
     * each counted as early. */
    cr_assert_not_null(fe_dedup_get(&d, &b, 1, NULL, 0, 30, FE_DEDUP_SESSION, &dup));
    cr_assert_eq(d.count, 6);
    uint64_t early = d.evicted_early;
    cr_assert_not_null(fe_dedup_get(&d, &b, 2, NULL, 0, 31, FE_DEDUP_SESSION, &dup));
    cr_assert_eq(d.cls[FE_DEDUP_SESSIONLESS].count, 1);
    cr_assert_not_null(fe_dedup_get(&d, &b, 3, NULL, 0, 32, FE_DEDUP_SESSION, &dup));
    cr_assert_eq(d.cls[FE_DEDUP_SESSIONLESS].count, 0);
    struct gw_ep c = ep_of("10.0.0.3:1000");
    cr_assert_not_null(fe_dedup_get(&d, &c, 1, NULL, 0, 33, FE_DEDUP_SESSION, &dup));
    cr_assert_eq(d.evicted_early, early + 3);
    cr_assert_null(fe_dedup_find(&d, &a, 2, NULL, 0, 34), "the oldest SESSION entry");
    cr_assert_not_null(fe_dedup_find(&d, &a, 3, NULL, 0, 34));
    cr_assert_eq(d.count, 6);
    /* Full of SESSION entries: a sessionless sender is not remembered. */
    struct gw_ep y = ep_of("10.9.9.9:9");
    cr_assert_null(fe_dedup_get(&d, &y, 1, NULL, 0, 35, FE_DEDUP_SESSIONLESS, &dup));
    cr_assert_not(dup);
    cr_assert_eq(d.count, 6);
    cr_assert_eq(d.idx.n, 6, "no index key left behind by the refusal");
    for (uint16_t mid = 1; mid <= 3; mid++)
        cr_assert_not_null(fe_dedup_find(&d, &b, mid, NULL, 0, 36), "b mid %u", mid);
    cr_assert_not_null(fe_dedup_find(&d, &c, 1, NULL, 0, 36));
    fe_dedup_deinit(&d);
}

/* A source whose only entry is evicted to make room for its next one
 * (per_source 1) gets a new record, found again by the next exchange. */
Test(dedup, get_recreates_a_source_its_own_eviction_freed)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 64, LIFETIME, 4096));
    fe_dedup_limit(&d, 16, 1);
    struct gw_ep a = ep_of("10.0.0.1:1000");
    bool dup;
    for (uint16_t mid = 0; mid < 40; mid++) {
        cr_assert_not_null(fe_dedup_get(&d, &a, mid, NULL, 0, mid, FE_DEDUP_SESSION, &dup));
        cr_assert_eq(d.count, 1);
        cr_assert_eq(d.src_idx.n, 1, "one record for the one source");
        cr_assert_eq(d.idx.n, 1);
        cr_assert_not_null(fe_dedup_find(&d, &a, mid, NULL, 0, mid));
    }
    cr_assert_eq(d.evicted_early, 39);
    fe_dedup_deinit(&d);
}

/* A promoted entry is relinked at the newest end of the SESSION list with
 * its own expiry, so it can expire behind a newer entry and stay until
 * that one goes. A new exchange with its key must replace it: before
 * fe_dedup_get the stale entry stayed first in the probe run and hid the
 * new one, whose retransmissions were then processed again (S3.3). */
Test(dedup, stale_promoted_entry_gives_way_to_a_new_exchange)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    struct gw_ep c = ep_of("10.0.0.1:1000"), s = ep_of("10.0.0.2:1000");
    struct fe_dedup_entry *p = fe_dedup_add_cls(&d, &c, 42, NULL, 0, 0, FE_DEDUP_SESSIONLESS);
    cr_assert_not_null(p);
    cr_assert_not_null(fe_dedup_add(&d, &s, 1, NULL, 0, 10));
    fe_dedup_promote(&d, p, 20);
    /* At LIFETIME + 5 p has expired, the entry of s (before it) has not. */
    cr_assert_null(fe_dedup_find(&d, &c, 42, NULL, 0, LIFETIME + 5));
    struct fe_dedup_entry *n = fe_dedup_add(&d, &c, 42, NULL, 0, LIFETIME + 5);
    cr_assert_not_null(n);
    cr_assert_eq(fe_dedup_find(&d, &c, 42, NULL, 0, LIFETIME + 6), n,
                 "the new exchange's retransmission is a duplicate");
    cr_assert_eq(d.count, 2);
    cr_assert_eq(d.idx.n, 2);
    fe_dedup_deinit(&d);
}

/* Issue 13 item 4: the 48-byte entry keeps its expiry as 32-bit ms after
 * the table's epoch. When the clock passes 2^32 ms beyond it the epoch
 * moves: entries keep their exact expiry across it, and exchanges after
 * it are found and expire as before (S3.3). */
Test(dedup, expiry_survives_the_epoch_moving)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 16, LIFETIME, 4096));
    cr_assert_eq(sizeof(struct fe_dedup_entry), 48);
    struct gw_ep a = ep_of("10.0.0.1:1000");
    const uint64_t t0 = (1ull << 32) - 1000; /* t0 + LIFETIME does not fit */
    struct fe_dedup_entry *e = fe_dedup_add(&d, &a, 1, NULL, 0, t0);
    cr_assert_not_null(e);
    cr_assert_eq(d.epoch, t0, "moved to the clock");
    cr_assert_eq(fe_dedup_find(&d, &a, 1, NULL, 0, t0 + LIFETIME - 1), e);
    cr_assert_null(fe_dedup_find(&d, &a, 1, NULL, 0, t0 + LIFETIME));
    /* A live entry whose expiry is near the 32-bit end when the next
     * exchange moves the epoch keeps its expiry to the ms. */
    const uint64_t t1 = t0 + (1ull << 32) - LIFETIME - 10; /* fits: 2^32 - 10 */
    struct fe_dedup_entry *f = fe_dedup_add(&d, &a, 2, NULL, 0, t1);
    cr_assert_eq(d.epoch, t0, "fits: not moved");
    cr_assert_eq(d.count, 1, "the first one expired and was reclaimed");
    const uint64_t t2 = t1 + 100;
    struct fe_dedup_entry *g = fe_dedup_add(&d, &a, 3, NULL, 0, t2);
    cr_assert_eq(d.epoch, t2);
    cr_assert_eq(fe_dedup_find(&d, &a, 2, NULL, 0, t1 + LIFETIME - 1), f);
    cr_assert_null(fe_dedup_find(&d, &a, 2, NULL, 0, t1 + LIFETIME));
    cr_assert_eq(fe_dedup_find(&d, &a, 3, NULL, 0, t2 + LIFETIME - 1), g);
    cr_assert_null(fe_dedup_find(&d, &a, 3, NULL, 0, t2 + LIFETIME));
    /* The endpoint is still compared in full: port and address. */
    struct gw_ep a_port = ep_of("10.0.0.1:1001"), b = ep_of("10.0.0.2:1000");
    cr_assert_null(fe_dedup_find(&d, &a_port, 3, NULL, 0, t2 + 1));
    cr_assert_null(fe_dedup_find(&d, &b, 3, NULL, 0, t2 + 1));
    /* Expiry still reclaims in order after the move. */
    cr_assert_not_null(fe_dedup_add(&d, &a, 4, NULL, 0, t2 + LIFETIME));
    cr_assert_eq(d.count, 1);
    fe_dedup_deinit(&d);
}

/* ---- retransmission (S3.2) ---- */

static const uint8_t MSG_A[] = { 0x41, 0x45, 0x12, 0x34, 0xaa, 0xff, 'h', 'i' };
static const uint8_t MSG_B[] = { 0x41, 0x45, 0x12, 0x35, 0xaa, 0xff, 'y', 'o' };
static const uint8_t TOK[] = { 0xaa };

/* S3.2/RFC 7252 4.2: the first timeout is drawn from [T, 1.5 T]. */
Test(rtx, first_timeout_between_t_and_1_5t)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    cr_assert_eq(fe_rtx_next(&t), UINT64_MAX);
    E(fe_rtx_add(&t, &a, 1, MSG_A, sizeof(MSG_A), false, TOK, 1, 99, 1000, 0));
    cr_assert_eq(fe_rtx_next(&t), 1000 + ACK_TIMEOUT_MS, "rnd 0 gives T");
    fe_rtx_deinit(&t);

    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    E(fe_rtx_add(&t, &a, 1, MSG_A, sizeof(MSG_A), false, TOK, 1, 99, 1000, UINT32_MAX));
    cr_assert_eq(fe_rtx_next(&t), 1000 + ACK_TIMEOUT_MS * 3 / 2, "rnd UINT32_MAX gives 1.5 T");
    fe_rtx_deinit(&t);

    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    E(fe_rtx_add(&t, &a, 1, MSG_A, sizeof(MSG_A), false, TOK, 1, 99, 1000, UINT32_MAX / 2));
    uint64_t n = fe_rtx_next(&t);
    cr_assert(n > 1000 + ACK_TIMEOUT_MS && n < 1000 + ACK_TIMEOUT_MS * 3 / 2,
              "a middle draw lies inside: %llu", (unsigned long long)n);
    fe_rtx_deinit(&t);
}

/* S3.2: the timeout doubles, exactly MAX_RETRANSMIT resends, then GIVEUP. */
Test(rtx, doubling_then_giveup)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    E(fe_rtx_add(&t, &a, 0x1234, MSG_A, sizeof(MSG_A), false, TOK, 1, 77, 0, 0));
    struct fe_rtx_out o;
    uint64_t now = 0, timeout = ACK_TIMEOUT_MS;
    for (int i = 0; i < 4; i++) {
        now += timeout;
        cr_assert_not(fe_rtx_due(&t, now - 1, &o), "nothing before the deadline (resend %d)",
                      i + 1);
        cr_assert(fe_rtx_due(&t, now, &o));
        cr_assert_eq(o.ev, FE_RTX_RESEND, "resend %d", i + 1);
        cr_assert_eq(o.len, sizeof(MSG_A));
        cr_assert_arr_eq(o.buf, MSG_A, sizeof(MSG_A));
        cr_assert(gw_ep_eq(&o.ep, &a));
        cr_assert_not(fe_rtx_due(&t, now, &o), "one event per deadline");
        timeout *= 2;
        cr_assert_eq(fe_rtx_next(&t), now + timeout, "resend %d: the timeout doubled", i + 1);
    }
    /* After the 4th retransmission, one more timeout and the exchange fails. */
    now += timeout;
    cr_assert_eq(now, 62000, "2+4+8+16+32 s");
    cr_assert_not(fe_rtx_due(&t, now - 1, &o));
    cr_assert(fe_rtx_due(&t, now, &o));
    cr_assert_eq(o.ev, FE_RTX_GIVEUP);
    cr_assert_eq(o.session, 77);
    cr_assert_eq(o.tkl, 1);
    cr_assert_eq(o.token[0], 0xaa);
    cr_assert_not(o.notify);
    cr_assert_arr_eq(o.buf, MSG_A, sizeof(MSG_A));
    cr_assert_not(fe_rtx_due(&t, UINT64_MAX - 1, &o));
    cr_assert_eq(fe_rtx_next(&t), UINT64_MAX);
    cr_assert_eq(t.used, 0);
    fe_rtx_deinit(&t);
}

/* The retransmission count is the configured client_max_retransmit. */
Test(rtx, max_retransmit_is_configurable)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, 100, 2));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    E(fe_rtx_add(&t, &a, 1, MSG_A, sizeof(MSG_A), false, TOK, 1, 0, 0, 0));
    struct fe_rtx_out o;
    int resends = 0, giveups = 0;
    for (uint64_t now = 0; now <= 10000; now += 50)
        while (fe_rtx_due(&t, now, &o))
            o.ev == FE_RTX_RESEND ? resends++ : giveups++;
    cr_assert_eq(resends, 2);
    cr_assert_eq(giveups, 1);
    fe_rtx_deinit(&t);
}

/* S3.2: an ACK stops retransmission. */
Test(rtx, ack_stops_it)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct gw_ep b = ep_of("10.0.0.2:1000");
    E(fe_rtx_add(&t, &a, 0x1234, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    struct fe_rtx_out o;
    cr_assert(fe_rtx_due(&t, ACK_TIMEOUT_MS, &o));
    cr_assert_not(fe_rtx_ack(&t, &b, 0x1234, &o), "an ACK from another endpoint does not match");
    cr_assert_not(fe_rtx_ack(&t, &a, 0x1235, &o), "nor one with another MID");
    cr_assert(fe_rtx_ack(&t, &a, 0x1234, &o));
    cr_assert_not(o.notify);
    cr_assert_eq(o.session, 5);
    cr_assert_not(fe_rtx_due(&t, 1000000, &o), "nothing is resent after the ACK");
    cr_assert_not(fe_rtx_ack(&t, &a, 0x1234, &o), "a second ACK matches nothing");
    cr_assert_eq(fe_rtx_next(&t), UINT64_MAX);
    cr_assert_eq(t.used, 0);
    fe_rtx_deinit(&t);
}

/* S3.2: RST stops it too, and tells that it was a notification (S6.4). */
Test(rtx, rst_stops_notification)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    E(fe_rtx_add(&t, &a, 9, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 0, 0));
    struct fe_rtx_out o;
    cr_assert(fe_rtx_ack(&t, &a, 9, &o));
    cr_assert(o.notify);
    cr_assert_eq(o.tkl, 1);
    cr_assert_eq(o.token[0], 0xaa);
    cr_assert_not(fe_rtx_due(&t, 1000000, &o));
    fe_rtx_deinit(&t);
}

/* RFC 7641 4.5.2 / S6.8: a newer notification replaces the one in flight,
 * keeping its retransmission counter and timeout, under a new MID. */
Test(rtx, notification_replacement_keeps_counter_changes_mid)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    E(fe_rtx_add(&t, &a, 100, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 0, 0));
    struct fe_rtx_out o;
    cr_assert(fe_rtx_due(&t, 2000, &o));
    cr_assert_eq(o.ev, FE_RTX_RESEND);
    cr_assert_eq(fe_rtx_next(&t), 6000);
    /* The new state arrives at 3000 with rnd that would give another timeout. */
    E(fe_rtx_add(&t, &a, 101, MSG_B, sizeof(MSG_B), true, TOK, 1, 5, 3000, UINT32_MAX));
    cr_assert_eq(t.used, 1, "replaced, not added");
    cr_assert_eq(fe_rtx_next(&t), 6000, "the timeout is kept");
    cr_assert_not(fe_rtx_ack(&t, &a, 100, &o), "an ACK for the old MID no longer matches");
    /* The remaining retransmissions carry the new message: 3 more, then GIVEUP. */
    uint64_t now = 6000, timeout = 4000;
    for (int i = 0; i < 3; i++) {
        cr_assert(fe_rtx_due(&t, now, &o));
        cr_assert_eq(o.ev, FE_RTX_RESEND, "resend %d", i + 2);
        cr_assert_eq(o.len, sizeof(MSG_B));
        cr_assert_arr_eq(o.buf, MSG_B, sizeof(MSG_B));
        cr_assert(o.notify);
        timeout *= 2;
        now += timeout;
    }
    cr_assert_eq(fe_rtx_next(&t), now);
    cr_assert(fe_rtx_due(&t, now, &o));
    cr_assert_eq(o.ev, FE_RTX_GIVEUP, "the counter was carried over");
    cr_assert_arr_eq(o.buf, MSG_B, sizeof(MSG_B));
    fe_rtx_deinit(&t);
}

/* After replacement the new MID's ACK ends it. */
Test(rtx, ack_for_new_mid_after_replacement)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    E(fe_rtx_add(&t, &a, 100, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &a, 101, MSG_B, sizeof(MSG_B), true, TOK, 1, 5, 10, 0));
    struct fe_rtx_out o;
    cr_assert(fe_rtx_ack(&t, &a, 101, &o));
    cr_assert(o.notify);
    cr_assert_eq(t.used, 0);
    cr_assert_not(fe_rtx_due(&t, 1000000, &o));
    /* A new notification to the same observer starts afresh. */
    E(fe_rtx_add(&t, &a, 102, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 2000, 0));
    cr_assert_eq(t.used, 1);
    cr_assert_eq(fe_rtx_next(&t), 4000);
    fe_rtx_deinit(&t);
}

/* Notifications for different observers (other token, other endpoint) and
 * separate responses are never merged. */
Test(rtx, no_replacement_across_observers)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct gw_ep b = ep_of("10.0.0.2:1000");
    const uint8_t tok2[] = { 0xab };
    E(fe_rtx_add(&t, &a, 1, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &a, 2, MSG_A, sizeof(MSG_A), true, tok2, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &b, 3, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &a, 4, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &a, 5, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    cr_assert_eq(t.used, 5);
    struct fe_rtx_out o;
    for (uint16_t mid = 1; mid <= 5; mid++)
        cr_assert(fe_rtx_ack(&t, mid == 3 ? &b : &a, mid, &o), "mid %u", mid);
    fe_rtx_deinit(&t);
}

/* A session that ends drops everything in flight to its endpoint. */
Test(rtx, forget_ep)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct gw_ep b = ep_of("10.0.0.2:1000");
    E(fe_rtx_add(&t, &a, 1, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &a, 2, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &b, 3, MSG_B, sizeof(MSG_B), false, TOK, 1, 6, 0, 0));
    fe_rtx_forget_ep(&t, &a);
    cr_assert_eq(t.used, 1);
    struct fe_rtx_out o;
    cr_assert_not(fe_rtx_ack(&t, &a, 1, &o));
    cr_assert_not(fe_rtx_ack(&t, &a, 2, &o));
    int events = 0;
    while (fe_rtx_due(&t, ACK_TIMEOUT_MS, &o)) {
        cr_assert(gw_ep_eq(&o.ep, &b), "only b's message is resent");
        events++;
    }
    cr_assert_eq(events, 1);
    /* The observer's token index was cleaned: a new notification is a new entry. */
    E(fe_rtx_add(&t, &a, 7, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, ACK_TIMEOUT_MS, 0));
    cr_assert_eq(t.used, 2);
    cr_assert(fe_rtx_ack(&t, &b, 3, &o));
    cr_assert(fe_rtx_ack(&t, &a, 7, &o));
    fe_rtx_deinit(&t);
}

/* The table is bounded: GW_EFULL when full, room again after an ACK. */
Test(rtx, full_table)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 2, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    E(fe_rtx_add(&t, &a, 1, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &a, 2, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    cr_assert_eq(fe_rtx_add(&t, &a, 3, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0), GW_EFULL);
    struct fe_rtx_out o;
    cr_assert(fe_rtx_ack(&t, &a, 1, &o));
    E(fe_rtx_add(&t, &a, 3, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    fe_rtx_deinit(&t);
}

/* ACKed entries leave stale timers behind; they never fill the timer heap
 * nor fire (lazy deletion, gw_heap.h). */
Test(rtx, stale_timers_do_not_accumulate)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 2, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct fe_rtx_out o;
    for (uint16_t mid = 0; mid < 500; mid++) {
        E(fe_rtx_add(&t, &a, mid, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, mid, 0));
        cr_assert(fe_rtx_ack(&t, &a, mid, &o));
    }
    E(fe_rtx_add(&t, &a, 9999, MSG_B, sizeof(MSG_B), false, TOK, 1, 5, 1000, 0));
    cr_assert_eq(fe_rtx_next(&t), 1000 + ACK_TIMEOUT_MS);
    cr_assert(fe_rtx_due(&t, 1000 + ACK_TIMEOUT_MS, &o));
    cr_assert_arr_eq(o.buf, MSG_B, sizeof(MSG_B));
    cr_assert_not(fe_rtx_due(&t, 1000 + ACK_TIMEOUT_MS, &o));
    fe_rtx_deinit(&t);
}

/* Issue "resource bounds": block-wise transfers are bounded; a new one
 * beyond the bound evicts the least recently used, which is then unknown. */
Test(msglayer, block_transfer_table_bound_evicts_lru)
{
    struct fe_blocks b;
    cr_assert_eq(fe_blocks_init(&b, 2, 1000, 64), 0);
    struct gw_ep e1 = { .family = 4, .port = 1 }, e2 = { .family = 4, .port = 2 },
                 e3 = { .family = 4, .port = 3 };
    cr_assert_not_null(fe_blocks_new(&b, &e1, 7, 1, 10, false));
    cr_assert_not_null(fe_blocks_new(&b, &e2, 7, 1, 20, false));
    cr_assert_not_null(fe_blocks_find(&b, &e1, 7, 1, 30), "touching e1 makes e2 the oldest");
    cr_assert_not_null(fe_blocks_new(&b, &e3, 7, 1, 40, false));
    cr_assert_null(fe_blocks_find(&b, &e2, 7, 1, 41), "the least recently used was evicted");
    cr_assert_not_null(fe_blocks_find(&b, &e1, 7, 1, 42));
    cr_assert_null(fe_blocks_find(&b, &e3, 7, 1, 2000),
                   "and a transfer idle past the timeout is dropped");
    struct fe_block_xfer *x = fe_blocks_new(&b, &e1, 8, 1, 2001, false);
    uint8_t chunk[40] = { 0 };
    cr_assert_eq(fe_blocks_append(&b, x, chunk, 40), 0);
    cr_assert_eq(fe_blocks_append(&b, x, chunk, 40), GW_ETOOBIG, "bodies are bounded by max_body");
    fe_blocks_deinit(&b);
}

/* Issue 13 item 3: notifications of one set share one body; each entry
 * renders its own type, MID and token from it when resent, and the body
 * lives as long as an entry refers to it. */
Test(rtx, shared_body_is_rendered_per_observer)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct gw_ep b = ep_of("10.0.0.2:1000");
    /* NON template, no token, MID 0: Observe 7, payload "hi". */
    static const uint8_t tpl[] = { 0x50, 0x45, 0, 0, 0x61, 7, 0xff, 'h', 'i' };
    struct fe_nbody *body = fe_nbody_new(tpl, sizeof(tpl));
    cr_assert_not_null(body);
    const uint8_t tb[3] = { 1, 2, 3 };
    E(fe_rtx_add_notify(&t, &a, 0x0a0b, body, TOK, 1, 5, 0, 0));
    E(fe_rtx_add_notify(&t, &b, 0x0a0c, body, tb, 3, 6, 0, 0));
    cr_assert_eq(body->refs, 2);
    struct fe_rtx_out o;
    for (int i = 0; i < 2; i++) {
        cr_assert(fe_rtx_due(&t, ACK_TIMEOUT_MS, &o));
        cr_assert_eq(o.ev, FE_RTX_RESEND);
        bool is_a = gw_ep_eq(&o.ep, &a);
        const uint8_t *tok = is_a ? TOK : tb;
        uint8_t tkl = is_a ? 1 : 3;
        uint16_t mid = is_a ? 0x0a0b : 0x0a0c;
        cr_assert_eq(o.len, sizeof(tpl) + tkl);
        cr_assert_eq(o.buf[0], 0x40 | tkl, "CON, version 1, own token length");
        cr_assert_eq(o.buf[1], 0x45);
        cr_assert_eq(o.buf[2] << 8 | o.buf[3], mid, "own MID");
        cr_assert_arr_eq(o.buf + 4, tok, tkl, "own token");
        cr_assert_arr_eq(o.buf + 4 + tkl, tpl + 4, sizeof(tpl) - 4, "shared options and payload");
    }
    cr_assert(fe_rtx_ack(&t, &a, 0x0a0b, &o));
    cr_assert_eq(body->refs, 1, "still referred to by b's notification");
    /* b's is given up in the end: its bytes are rendered once more. */
    uint64_t now = ACK_TIMEOUT_MS;
    int resends = 0;
    for (;;) {
        now = fe_rtx_next(&t);
        cr_assert_neq(now, UINT64_MAX);
        cr_assert(fe_rtx_due(&t, now, &o));
        if (o.ev == FE_RTX_GIVEUP)
            break;
        resends++;
    }
    cr_assert_eq(resends, 3);
    cr_assert_eq(o.len, sizeof(tpl) + 3);
    cr_assert_arr_eq(o.buf + 4, tb, 3);
    cr_assert_eq(t.used, 0);
    fe_rtx_deinit(&t);
}

/* A late ACK for a notification that a newer one replaced is recognised
 * (so the frontend need not ask LMDB and the scheduler about it), without
 * ending the newer one; only that observer's latest replaced MID counts. */
Test(rtx, late_ack_of_replaced_notification)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct gw_ep b = ep_of("10.0.0.2:1000");
    struct fe_rtx_out o;
    E(fe_rtx_add(&t, &a, 100, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 0, 0));
    cr_assert_not(fe_rtx_replaced(&t, &a, 100, &o), "nothing was replaced yet");
    E(fe_rtx_add(&t, &a, 101, MSG_B, sizeof(MSG_B), true, TOK, 1, 5, 10, 0));
    cr_assert_not(fe_rtx_ack(&t, &a, 100, &o));
    cr_assert_not(fe_rtx_replaced(&t, &b, 100, &o), "another endpoint's MID 100 is not it");
    cr_assert_not(fe_rtx_replaced(&t, &a, 99, &o));
    cr_assert(fe_rtx_replaced(&t, &a, 100, &o));
    cr_assert(o.notify);
    cr_assert_eq(o.mid, 101, "the MID now in flight");
    cr_assert_eq(o.tkl, 1);
    cr_assert_eq(o.token[0], 0xaa);
    cr_assert_eq(o.session, 5);
    cr_assert_not(fe_rtx_replaced(&t, &a, 100, &o), "recognised once");
    cr_assert_eq(t.used, 1, "the newer notification is still in flight");
    /* Twice replaced: the latest replaced MID is known, the older one not. */
    E(fe_rtx_add(&t, &a, 102, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 20, 0));
    E(fe_rtx_add(&t, &a, 103, MSG_B, sizeof(MSG_B), true, TOK, 1, 5, 30, 0));
    cr_assert_not(fe_rtx_replaced(&t, &a, 101, &o));
    cr_assert(fe_rtx_replaced(&t, &a, 102, &o));
    E(fe_rtx_add(&t, &a, 104, MSG_B, sizeof(MSG_B), true, TOK, 1, 5, 40, 0));
    cr_assert(fe_rtx_ack(&t, &a, 104, &o));
    cr_assert_not(fe_rtx_replaced(&t, &a, 103, &o), "gone with its entry");
    cr_assert_eq(t.used, 0);
    fe_rtx_deinit(&t);
}

/* The MID index is keyed by the MID alone: one MID to several endpoints,
 * and MIDs equal in their low bits (the replaced-MID slots), are told
 * apart by the MID and the endpoint. */
Test(rtx, mids_sharing_a_key)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 8, ACK_TIMEOUT_MS, 4));
    struct gw_ep a = ep_of("10.0.0.1:1000");
    struct gw_ep b = ep_of("10.0.0.2:1000");
    E(fe_rtx_add(&t, &a, 5, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &a, 21, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &b, 5, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    E(fe_rtx_add(&t, &b, 65525, MSG_A, sizeof(MSG_A), false, TOK, 1, 5, 0, 0));
    struct fe_rtx_out o;
    cr_assert_not(fe_rtx_ack(&t, &a, 37, &o));
    cr_assert_not(fe_rtx_ack(&t, &a, 65525, &o));
    cr_assert(fe_rtx_ack(&t, &b, 5, &o));
    cr_assert(gw_ep_eq(&o.ep, &b));
    cr_assert(fe_rtx_has(&t, &a, 5));
    cr_assert(fe_rtx_ack(&t, &a, 21, &o));
    cr_assert(fe_rtx_ack(&t, &a, 5, &o));
    cr_assert(fe_rtx_ack(&t, &b, 65525, &o));
    cr_assert_eq(t.used, 0);
    fe_rtx_deinit(&t);
}

/* The token index grows with the notifications in flight: after it grew,
 * every observer's in-flight notification is still found and replaced. */
Test(rtx, token_index_grows)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 1024, ACK_TIMEOUT_MS, 4));
    uint32_t nbt0 = t.by_tok.mask + 1;
    struct gw_ep a = ep_of("10.0.0.1:1000");
    for (uint16_t i = 0; i < 600; i++) {
        a.port = (uint16_t)(2000 + i);
        E(fe_rtx_add(&t, &a, i, MSG_A, sizeof(MSG_A), true, TOK, 1, 5, 0, 0));
    }
    cr_assert_gt(t.by_tok.mask + 1, nbt0, "grew from %u slots", nbt0);
    cr_assert_geq(t.by_tok.mask + 1, 1024u);
    for (uint16_t i = 0; i < 600; i++) {
        a.port = (uint16_t)(2000 + i);
        E(fe_rtx_add(&t, &a, (uint16_t)(1000 + i), MSG_B, sizeof(MSG_B), true, TOK, 1, 5, 1, 0));
    }
    cr_assert_eq(t.used, 600, "every one replaced, none added");
    struct fe_rtx_out o;
    for (uint16_t i = 0; i < 600; i++) {
        a.port = (uint16_t)(2000 + i);
        cr_assert(fe_rtx_ack(&t, &a, (uint16_t)(1000 + i), &o));
    }
    cr_assert_eq(t.used, 0);
    cr_assert_eq(t.by_tok.n, 0);
    fe_rtx_deinit(&t);
}

/* Issue 13 item 4: the entry index starts small and grows with the entries;
 * after it grew, every exchange is still found, and its slots stay fewer
 * than a table sized for the whole cap at once. */
Test(dedup, index_grows_with_the_entries)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 65536, LIFETIME, 1 << 20));
    uint32_t slots0 = d.idx.mask + 1;
    struct gw_ep a = ep_of("10.0.0.1:1000");
    for (uint32_t i = 0; i < 3000; i++) {
        a.port = (uint16_t)(1000 + i % 50);
        cr_assert_not_null(fe_dedup_add(&d, &a, (uint16_t)i, NULL, 0, 0));
    }
    cr_assert_gt(d.idx.mask + 1, slots0, "grew from %u slots", slots0);
    cr_assert_lt(d.idx.mask + 1, 131072u, "not sized for the whole cap");
    for (uint32_t i = 0; i < 3000; i++) {
        a.port = (uint16_t)(1000 + i % 50);
        cr_assert_not_null(fe_dedup_find(&d, &a, (uint16_t)i, NULL, 0, 1), "exchange %u", i);
    }
    a.port = 999;
    cr_assert_null(fe_dedup_find(&d, &a, 7, NULL, 0, 1));
    fe_dedup_deinit(&d);
}

/* Issue 13 item 4: the entry index fills to 3/4 before it doubles (at 1/2,
 * 5 000 registrations kept 16 384 slots for EXCHANGE_LIFETIME instead of
 * 8 192), and every exchange is still found at that load. */
Test(dedup, index_fills_to_three_quarters_before_growing)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 65536, LIFETIME, 1 << 20));
    uint32_t slots0 = d.idx.mask + 1;
    struct gw_ep a = ep_of("10.0.0.1:1000");
    uint32_t n = slots0 / 4 * 3;
    for (uint32_t i = 0; i < n; i++) {
        a.port = (uint16_t)(1000 + i % 50);
        cr_assert_not_null(fe_dedup_add(&d, &a, (uint16_t)i, NULL, 0, 0));
    }
    cr_assert_eq(d.idx.mask + 1, slots0, "%u entries in %u slots: not grown", n, slots0);
    for (uint32_t i = 0; i < n; i++) {
        a.port = (uint16_t)(1000 + i % 50);
        cr_assert_not_null(fe_dedup_find(&d, &a, (uint16_t)i, NULL, 0, 1), "exchange %u", i);
    }
    a.port = 999;
    cr_assert_null(fe_dedup_find(&d, &a, 7, NULL, 0, 1));
    a.port = (uint16_t)(1000 + n % 50);
    cr_assert_not_null(fe_dedup_add(&d, &a, (uint16_t)n, NULL, 0, 0));
    cr_assert_eq(d.idx.mask + 1, slots0 * 2, "one more entry doubles the index");
    fe_dedup_deinit(&d);
}

/* Issue 13: the source index (one key per client endpoint) starts small and
 * grows with the sources, instead of 2 MiB for dedup_max at start, every
 * page of which a few thousand clients touched; every source's entries are
 * still found and its share still bounded. */
Test(dedup, source_index_grows_with_the_sources)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 65536, LIFETIME, 1u << 20));
    fe_dedup_limit(&d, 16384, 2);
    cr_assert_leq(d.src_idx.mask + 1, 512u, "starts small, not sized for 65 536 sources");
    char s[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(s, sizeof(s), "10.0.%d.%d:%d", i / 250, i % 250 + 1, 1000 + i);
        struct gw_ep a = ep_of(s);
        for (uint16_t mid = 0; mid < 3; mid++)
            cr_assert_not_null(fe_dedup_add(&d, &a, mid, NULL, 0, i));
    }
    cr_assert_eq(d.src_idx.n, 3000u, "one source record per endpoint");
    cr_assert_geq(d.src_idx.mask + 1, 6000u, "grown to keep its load at most half");
    cr_assert_leq(d.src_idx.mask + 1, 8192u);
    cr_assert_eq(d.count, 6000u, "each source kept its 2 newest (per_source)");
    for (int i = 0; i < 3000; i++) {
        snprintf(s, sizeof(s), "10.0.%d.%d:%d", i / 250, i % 250 + 1, 1000 + i);
        struct gw_ep a = ep_of(s);
        cr_assert_null(fe_dedup_find(&d, &a, 0, NULL, 0, 5000), "%s: oldest forgotten", s);
        cr_assert_not_null(fe_dedup_find(&d, &a, 1, NULL, 0, 5000), "%s", s);
        cr_assert_not_null(fe_dedup_find(&d, &a, 2, NULL, 0, 5000), "%s", s);
    }
    fe_dedup_deinit(&d);
}

/* Issue 13 item 4: the table grows with the notifications in flight and
 * gives the memory back once they are ACKed; the few still in flight keep
 * their MID, token index, timer and ghost through the compaction (S3.2,
 * S6.8, RFC 7641 4.5.2). */
Test(rtx, grows_with_a_storm_and_compacts_after_it)
{
    struct fe_rtx t;
    E(fe_rtx_init(&t, 65536, ACK_TIMEOUT_MS, 4));
    cr_assert_eq(t.alloc, FE_RTX_MIN, "starts small");
    enum { N = 5000 };
    struct gw_ep a = ep_of("10.0.0.1:1000");
    uint8_t tok[4];
    for (uint32_t i = 0; i < N; i++) {
        memcpy(tok, &i, 4);
        E(fe_rtx_add(&t, &a, (uint16_t)i, MSG_A, sizeof(MSG_A), true, tok, 4, 5, 0, 0));
    }
    cr_assert_eq(t.used, N);
    cr_assert_geq(t.alloc, N);
    cr_assert_lt(t.alloc, 2 * N);
    /* Observer 7 gets a newer state: MID 7 becomes a ghost of MID 60007. */
    uint32_t seven = 7;
    memcpy(tok, &seven, 4);
    E(fe_rtx_add(&t, &a, 60007, MSG_B, sizeof(MSG_B), true, tok, 4, 5, 100, 0));
    cr_assert_eq(t.used, N, "replaced, not added");
    /* Everyone but observers 0..9 ACKs. */
    struct fe_rtx_out o;
    for (uint32_t i = 10; i < N; i++)
        cr_assert(fe_rtx_ack(&t, &a, (uint16_t)i, &o), "ACK of MID %u", i);
    cr_assert_eq(t.used, 10);
    cr_assert_eq(t.alloc, FE_RTX_MIN, "compacted back to its start");
    cr_assert_leq(t.by_mid.mask + 1, 256u, "the MID index shrank with it");
    cr_assert_leq(t.by_tok.mask + 1, 256u, "the token index too");
    /* The late ACK of the replaced MID is still known for what it is. */
    cr_assert(fe_rtx_replaced(&t, &a, 7, &o));
    cr_assert_eq(o.mid, 60007);
    /* The token index still finds observer 3 for its replacement. */
    uint32_t three = 3;
    memcpy(tok, &three, 4);
    E(fe_rtx_add(&t, &a, 60003, MSG_B, sizeof(MSG_B), true, tok, 4, 5, 200, 0));
    cr_assert_eq(t.used, 10, "replaced, not added");
    cr_assert_not(fe_rtx_ack(&t, &a, 3, &o), "the old MID no longer matches");
    /* Every timer survived: ten resends at ACK_TIMEOUT, with their bytes. */
    int resent = 0, with_b = 0;
    while (fe_rtx_due(&t, ACK_TIMEOUT_MS, &o)) {
        cr_assert_eq(o.ev, FE_RTX_RESEND);
        resent++;
        if (o.len == sizeof(MSG_B) && memcmp(o.buf, MSG_B, sizeof(MSG_B)) == 0)
            with_b++;
    }
    cr_assert_eq(resent, 10);
    cr_assert_eq(with_b, 2, "observers 3 and 7 carry the newer state");
    cr_assert(fe_rtx_ack(&t, &a, 60007, &o));
    cr_assert(fe_rtx_ack(&t, &a, 0, &o));
    cr_assert_eq(t.used, 8);
    fe_rtx_deinit(&t);
}

/* Issue 13 item 4: the entry index costs at most 16 bytes per entry (4-byte
 * slots at load 1/4..1/2); entries freed from the middle of probe runs
 * (per-source eviction, expiry) leave every other entry findable. */
Test(dedup, index_is_4_bytes_a_slot_and_survives_deletions)
{
    struct fe_dedup d;
    E(fe_dedup_init(&d, 65536, LIFETIME, 1 << 20));
    fe_dedup_limit(&d, 16384, 3);
    struct gw_ep a = ep_of("10.0.0.1:1000");
    enum { N = 20000 };
    for (uint32_t i = 0; i < N; i++) {
        a.port = (uint16_t)(1000 + i % 5000);
        uint8_t tok[4];
        memcpy(tok, &i, 4);
        cr_assert_not_null(fe_dedup_add(&d, &a, (uint16_t)(i / 5000), tok, 4, i));
    }
    /* Each endpoint keeps its 3 newest: exchanges 0..4999 were evicted. */
    cr_assert_eq(d.count, 15000u);
    cr_assert_eq(d.idx.n, 15000u);
    cr_assert_leq((size_t)(d.idx.mask + 1) * sizeof(*d.idx.slot), 16u * 15000u + 4096u);
    for (uint32_t i = 0; i < N; i++) {
        a.port = (uint16_t)(1000 + i % 5000);
        uint8_t tok[4];
        memcpy(tok, &i, 4);
        struct fe_dedup_entry *e = fe_dedup_find(&d, &a, (uint16_t)(i / 5000), tok, 4, N);
        if (i < 5000)
            cr_assert_null(e, "exchange %u was evicted", i);
        else
            cr_assert_not_null(e, "exchange %u", i);
    }
    fe_dedup_deinit(&d);
}
