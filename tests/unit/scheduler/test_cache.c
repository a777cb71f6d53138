/* SPDX-License-Identifier: MIT */
/* test_cache.c - the scheduler's response cache (SPEC S5, RFC 7252 section 5.6).
 *
 * S5.1 Cache-Key composition and serving 2.05 with Max-Age reduced by age;
 * S5.2 Observe is not part of the key and never served back; S5.3
 * invalidation by unsafe requests and "only 2.05 is stored"; S5.4 LRU
 * bounds in entries and bytes; S5.5 ETag revalidation with 2.03.
 *
 * Everything runs on a fake clock (plain now_ms numbers). Requests and
 * responses are hand-built views, except where the view comes from the real
 * parser; rendered responses are checked with gw_coap_parse (libcoap's
 * coap_pdu_parse underneath) as the oracle. */
#include "gw_coap.h"
#include "gw_error.h"
#include "sch_cache.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* --- Building views ------------------------------------------------------- */

/* A message view plus storage for its option values and payload, so the
 * view stays valid as long as the struct does. */
struct tmsg {
    struct gw_coap_msg m;
    uint8_t store[1400];
    size_t used;
};

static void tm_init(struct tmsg *t, uint8_t type, uint8_t code)
{
    memset(t, 0, sizeof(*t));
    t->m.type = type;
    t->m.code = code;
    t->m.mid = 0x7777;
    t->m.tkl = 2;
    t->m.token[0] = 0xd0;
    t->m.token[1] = 0x0d;
}

/* Options must be added in ascending order, as on the wire. */
static void tm_opt(struct tmsg *t, uint16_t num, const void *val, size_t len)
{
    cr_assert_lt(t->m.nopts, GW_COAP_MAX_OPTS);
    cr_assert_leq(t->used + len, sizeof(t->store));
    if (t->m.nopts)
        cr_assert_geq(num, t->m.opts[t->m.nopts - 1].num, "options out of order in the test");
    if (len)
        memcpy(t->store + t->used, val, len);
    struct gw_coap_opt *o = &t->m.opts[t->m.nopts++];
    o->num = num;
    o->len = (uint16_t)len;
    o->val = t->store + t->used;
    t->used += len;
}

static void tm_str(struct tmsg *t, uint16_t num, const char *s)
{
    tm_opt(t, num, s, strlen(s));
}

static void tm_uint(struct tmsg *t, uint16_t num, uint32_t v)
{
    uint8_t b[4];
    tm_opt(t, num, b, gw_coap_uint_enc(v, b));
}

static void tm_payload(struct tmsg *t, const void *p, size_t len)
{
    cr_assert_leq(t->used + len, sizeof(t->store));
    memcpy(t->store + t->used, p, len);
    t->m.payload = t->store + t->used;
    t->m.payload_len = len;
    t->used += len;
}

/* GET /<p1>[/<p2>] with an optional Accept (-1: none). */
static void req_get(struct tmsg *t, const char *p1, const char *p2, int accept)
{
    tm_init(t, GW_COAP_CON, GW_COAP_GET);
    tm_str(t, GW_OPT_URI_PATH, p1);
    if (p2)
        tm_str(t, GW_OPT_URI_PATH, p2);
    if (accept >= 0)
        tm_uint(t, GW_OPT_ACCEPT, (uint32_t)accept);
}

/* A device's answer: code, optional ETag, Max-Age (-1: none), payload. */
static void resp_make(struct tmsg *t, uint8_t code, const char *etag, long max_age,
                      const char *payload)
{
    tm_init(t, GW_COAP_ACK, code);
    if (etag)
        tm_str(t, GW_OPT_ETAG, etag);
    tm_uint(t, GW_OPT_CONTENT_FORMAT, 0);
    if (max_age >= 0)
        tm_uint(t, GW_OPT_MAX_AGE, (uint32_t)max_age);
    if (payload)
        tm_payload(t, payload, strlen(payload));
}

/* --- Fixture ------------------------------------------------------------------ */

static const uint8_t MAC_A[GW_MAC_LEN] = { 0x00, 0x12, 0x4b, 0x00, 0x0a, 0x0b, 0x0c, 0x0d };
static const uint8_t MAC_B[GW_MAC_LEN] = { 0x00, 0x12, 0x4b, 0x00, 0x0a, 0x0b, 0x0c, 0x0e };

static struct sch_cache *cache;
static struct gw_coap_parser *parser;

static void open_cache(size_t max_entries, size_t max_bytes)
{
    struct sch_cache_cfg cfg = { .max_entries = max_entries,
                                 .max_bytes = max_bytes,
                                 .default_max_age_s = 60 };
    cr_assert_eq(sch_cache_new(&cfg, &cache), 0);
}

static void setup(void)
{
    open_cache(100, 1 << 20);
    cr_assert_eq(gw_coap_parser_new(&parser), 0);
}

static void teardown(void)
{
    sch_cache_free(cache);
    cache = NULL;
    gw_coap_parser_free(parser);
    parser = NULL;
}

TestSuite(cache, .init = setup, .fini = teardown);

struct tkey {
    uint8_t b[SCH_CACHE_KEY_MAX];
    size_t len;
    uint64_t res;
};

static void key_of(const uint8_t *mac, uint8_t sec, const struct tmsg *req, struct tkey *k)
{
    cr_assert_eq(sch_cache_key(mac, sec, &req->m, k->b, sizeof(k->b), &k->len, &k->res), 0);
}

static bool key_eq(const struct tkey *a, const struct tkey *b)
{
    return a->len == b->len && memcmp(a->b, b->b, a->len) == 0;
}

/* Key of GET /<p1>[/<p2>] (Accept as given) to MAC_A over netmgr. */
static void key_get(const char *p1, const char *p2, int accept, struct tkey *k)
{
    struct tmsg r;
    req_get(&r, p1, p2, accept);
    key_of(MAC_A, 1, &r, k);
}

static void put_ok(const struct tkey *k, const struct tmsg *resp, uint64_t now_ms)
{
    cr_assert_eq(sch_cache_put(cache, k->b, k->len, k->res, &resp->m, now_ms), 0);
}

static void put_refused(const struct tkey *k, const struct tmsg *resp, uint64_t now_ms)
{
    cr_assert_eq(sch_cache_put(cache, k->b, k->len, k->res, &resp->m, now_ms), 1);
}

static int get_at(const struct tkey *k, uint64_t now_ms, struct sch_cache_hit *hit)
{
    return sch_cache_get(cache, k->b, k->len, now_ms, hit);
}

/* Renders a hit as a piggybacked ACK and parses it back with the oracle. */
static void render_parse(const struct sch_cache_hit *hit, struct gw_coap_msg *out)
{
    static const uint8_t tok[4] = { 1, 2, 3, 4 };
    static uint8_t buf[GW_COAP_MAX_MSG];
    size_t len = 0;
    cr_assert_eq(sch_cache_render(hit, GW_COAP_ACK, 0x1234, tok, 4, buf, sizeof(buf), &len), 0);
    cr_assert_eq(gw_coap_parse(parser, buf, len, out), 0);
    cr_assert_eq(out->type, GW_COAP_ACK);
    cr_assert_eq(out->mid, 0x1234);
    cr_assert_eq(out->tkl, 4);
    cr_assert_arr_eq(out->token, tok, 4);
}

static uint32_t opt_uint(const struct gw_coap_msg *m, uint16_t num)
{
    const struct gw_coap_opt *o = gw_coap_opt_find(m, num);
    cr_assert_not_null(o, "option %u missing", num);
    uint32_t v = 0;
    cr_assert(gw_coap_uint(o->val, o->len, &v));
    return v;
}

static void assert_payload(const struct gw_coap_msg *m, const char *s)
{
    cr_assert_eq(m->payload_len, strlen(s));
    cr_assert_arr_eq(m->payload, s, strlen(s));
}

/* --- Cache-Key (S5.1) ------------------------------------------------------------ */

/* S5.1: Accept is part of the Cache-Key; both variants are one resource. */
Test(cache, key_accept_changes_key)
{
    struct tkey a, b, none;
    key_get("temp", NULL, 0, &a);
    key_get("temp", NULL, 50, &b);
    key_get("temp", NULL, -1, &none);
    cr_assert_not(key_eq(&a, &b));
    cr_assert_not(key_eq(&a, &none));
    cr_assert_eq(a.res, b.res);
    cr_assert_eq(a.res, none.res);
}

/* S5.1: the key is the full target URI, so path and query order matter. */
Test(cache, key_uri_path_and_query_order_matter)
{
    struct tkey ab, ba, joined;
    key_get("a", "b", -1, &ab);
    key_get("b", "a", -1, &ba);
    cr_assert_not(key_eq(&ab, &ba));
    cr_assert_neq(ab.res, ba.res);
    /* /a/b and /ab: the encoding keeps option boundaries. */
    key_get("ab", NULL, -1, &joined);
    cr_assert_not(key_eq(&ab, &joined));
    cr_assert_neq(ab.res, joined.res);

    struct tmsg q1, q2;
    struct tkey k1, k2;
    tm_init(&q1, GW_COAP_CON, GW_COAP_GET);
    tm_str(&q1, GW_OPT_URI_PATH, "r");
    tm_str(&q1, GW_OPT_URI_QUERY, "x=1");
    tm_str(&q1, GW_OPT_URI_QUERY, "y=2");
    tm_init(&q2, GW_COAP_CON, GW_COAP_GET);
    tm_str(&q2, GW_OPT_URI_PATH, "r");
    tm_str(&q2, GW_OPT_URI_QUERY, "y=2");
    tm_str(&q2, GW_OPT_URI_QUERY, "x=1");
    key_of(MAC_A, 1, &q1, &k1);
    key_of(MAC_A, 1, &q2, &k2);
    cr_assert_not(key_eq(&k1, &k2));
    cr_assert_neq(k1.res, k2.res);
}

/* S5.1 / RFC 7252 section 11.2: never across security modes. */
Test(cache, key_security_mode_changes_key)
{
    struct tmsg r;
    struct tkey none, netmgr;
    req_get(&r, "temp", NULL, -1);
    key_of(MAC_A, 0, &r, &none);
    key_of(MAC_A, 1, &r, &netmgr);
    cr_assert_not(key_eq(&none, &netmgr));
    cr_assert_neq(none.res, netmgr.res);
}

/* S5.1: the device is part of the target URI. */
Test(cache, key_mac_changes_key)
{
    struct tmsg r;
    struct tkey a, b;
    req_get(&r, "temp", NULL, -1);
    key_of(MAC_A, 1, &r, &a);
    key_of(MAC_B, 1, &r, &b);
    cr_assert_not(key_eq(&a, &b));
    cr_assert_neq(a.res, b.res);
}

/* The method is part of the key: a FETCH is not a GET. */
Test(cache, key_request_code_changes_key)
{
    struct tmsg r;
    struct tkey get, fetch;
    req_get(&r, "temp", NULL, -1);
    key_of(MAC_A, 1, &r, &get);
    r.m.code = GW_COAP_FETCH;
    key_of(MAC_A, 1, &r, &fetch);
    cr_assert_not(key_eq(&get, &fetch));
    cr_assert_eq(get.res, fetch.res);
}

/* S5.1: NoCacheKey options (Size1, Size2, any number with bits 0x1e ==
 * 0x1c such as 0x9c) do not change the key; neither do Observe (S5.2),
 * Block1/Block2 (S4.7), No-Response (S4.9), nor the target-naming options
 * Uri-Host, Uri-Port, Proxy-Scheme (mac and sec name the target). */
Test(cache, key_ignores_nocachekey_observe_block_and_target_options)
{
    struct tkey plain, decorated;
    key_get("temp", NULL, 50, &plain);

    struct tmsg r;
    tm_init(&r, GW_COAP_CON, GW_COAP_GET);
    tm_str(&r, GW_OPT_URI_HOST, "00124b000a0b0c0d");
    tm_uint(&r, GW_OPT_OBSERVE, 0);
    tm_uint(&r, GW_OPT_URI_PORT, 4849);
    tm_str(&r, GW_OPT_URI_PATH, "temp");
    tm_uint(&r, GW_OPT_ACCEPT, 50);
    tm_uint(&r, GW_OPT_BLOCK2, 2);
    tm_uint(&r, GW_OPT_BLOCK1, 0x0e);
    tm_uint(&r, GW_OPT_SIZE2, 0);
    tm_str(&r, GW_OPT_PROXY_SCHEME, "coap");
    tm_uint(&r, GW_OPT_SIZE1, 500);
    tm_str(&r, 0x9c, "nocachekey");
    tm_uint(&r, GW_OPT_NO_RESPONSE, 2);
    key_of(MAC_A, 1, &r, &decorated);
    cr_assert(key_eq(&plain, &decorated));
    cr_assert_eq(plain.res, decorated.res);

    /* Observe: 1 (cancel) is ignored as well. */
    tm_init(&r, GW_COAP_CON, GW_COAP_GET);
    tm_uint(&r, GW_OPT_OBSERVE, 1);
    tm_str(&r, GW_OPT_URI_PATH, "temp");
    tm_uint(&r, GW_OPT_ACCEPT, 50);
    key_of(MAC_A, 1, &r, &decorated);
    cr_assert(key_eq(&plain, &decorated));
}

/* An elective option that is not NoCacheKey (0x800: 0x800 & 0x1e == 0) is
 * part of the key, as RFC 7252 section 5.4.6 says for unknown options. */
Test(cache, key_includes_other_options)
{
    struct tkey plain, other;
    key_get("temp", NULL, -1, &plain);
    struct tmsg r;
    req_get(&r, "temp", NULL, -1);
    tm_str(&r, 0x800, "v");
    key_of(MAC_A, 1, &r, &other);
    cr_assert_not(key_eq(&plain, &other));
    cr_assert_eq(plain.res, other.res);
}

Test(cache, key_reports_small_buffer)
{
    struct tmsg r;
    req_get(&r, "a-rather-long-path-segment", NULL, -1);
    uint8_t k[16];
    size_t klen;
    uint64_t res;
    cr_assert_eq(sch_cache_key(MAC_A, 1, &r.m, k, sizeof(k), &klen, &res), GW_ETOOBIG);
    cr_assert_eq(sch_cache_key(MAC_A, 1, &r.m, k, 4, &klen, &res), GW_ETOOBIG);
}

/* The largest request the parser accepts fits SCH_CACHE_KEY_MAX. */
Test(cache, key_max_fits_largest_request)
{
    struct tmsg r;
    tm_init(&r, GW_COAP_CON, GW_COAP_GET);
    uint8_t v[20];
    memset(v, 'p', sizeof(v));
    for (int i = 0; i < GW_COAP_MAX_OPTS; i++)
        tm_opt(&r, GW_OPT_URI_PATH, v, sizeof(v)); /* 48 * 22 wire bytes ~ GW_COAP_MAX_MSG */
    struct tkey k;
    key_of(MAC_A, 1, &r, &k);
    cr_assert_eq(k.len, 10u + GW_COAP_MAX_OPTS * (4u + sizeof(v)));
}

/* --- Storing and serving (S5.1) -------------------------------------------------------- */

/* S5.1: stored with Max-Age 60 at t=0, served at t=25 s with Max-Age 35,
 * the client's token and type, the device's code, options and payload.
 * The response comes from the real parser here. */
Test(cache, content_served_with_max_age_reduced_by_age)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);

    uint8_t wire[128];
    struct gw_cb b;
    size_t wlen;
    static const uint8_t dev_tok[3] = { 9, 9, 9 };
    gw_cb_init(&b, wire, sizeof(wire), GW_COAP_ACK, GW_COAP_CONTENT, 0x4242, dev_tok, 3);
    gw_cb_opt(&b, GW_OPT_ETAG, "\x01\x02\x03\x04", 4);
    gw_cb_opt_uint(&b, GW_OPT_CONTENT_FORMAT, 50);
    gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, 60);
    gw_cb_payload(&b, "{\"t\":21.5}", 10);
    cr_assert_eq(gw_cb_finish(&b, &wlen), 0);
    struct gw_coap_msg resp;
    cr_assert_eq(gw_coap_parse(parser, wire, wlen, &resp), 0);
    cr_assert_eq(sch_cache_put(cache, k.b, k.len, k.res, &resp, 0), 0);

    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 25000, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(hit.age_s, 25);
    cr_assert_eq(hit.max_age_left_s, 35);
    cr_assert_eq(hit.etag_len, 4);
    cr_assert_arr_eq(hit.etag, "\x01\x02\x03\x04", 4);

    struct gw_coap_msg out;
    render_parse(&hit, &out);
    cr_assert_eq(out.code, GW_COAP_CONTENT);
    cr_assert_eq(opt_uint(&out, GW_OPT_MAX_AGE), 35);
    cr_assert_eq(gw_coap_opt_count(&out, GW_OPT_MAX_AGE), 1);
    cr_assert_eq(opt_uint(&out, GW_OPT_CONTENT_FORMAT), 50);
    const struct gw_coap_opt *et = gw_coap_opt_find(&out, GW_OPT_ETAG);
    cr_assert_not_null(et);
    cr_assert_eq(et->len, 4);
    cr_assert_arr_eq(et->val, "\x01\x02\x03\x04", 4);
    assert_payload(&out, "{\"t\":21.5}");
}

/* Max-Age is spliced in at its place among options numbered above 14
 * (Size2 28, an unknown elective 2048), whose deltas change. */
Test(cache, render_keeps_options_above_max_age)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    tm_init(&r, GW_COAP_ACK, GW_COAP_CONTENT);
    tm_uint(&r, GW_OPT_CONTENT_FORMAT, 0);
    tm_uint(&r, GW_OPT_MAX_AGE, 300);
    tm_uint(&r, GW_OPT_SIZE2, 5);
    tm_str(&r, 2048, "unknown-elective");
    tm_str(&r, 2048, "again");
    tm_payload(&r, "hello", 5);
    put_ok(&k, &r, 1000);

    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 1000 + 100500, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(hit.max_age_left_s, 199);
    struct gw_coap_msg out;
    render_parse(&hit, &out);
    cr_assert_eq(out.nopts, 5);
    cr_assert_eq(out.opts[0].num, GW_OPT_CONTENT_FORMAT);
    cr_assert_eq(out.opts[1].num, GW_OPT_MAX_AGE);
    cr_assert_eq(opt_uint(&out, GW_OPT_MAX_AGE), 199);
    cr_assert_eq(opt_uint(&out, GW_OPT_SIZE2), 5);
    cr_assert_eq(out.opts[3].num, 2048);
    cr_assert_eq(out.opts[3].len, 16);
    cr_assert_arr_eq(out.opts[3].val, "unknown-elective", 16);
    cr_assert_eq(out.opts[4].num, 2048);
    cr_assert_arr_eq(out.opts[4].val, "again", 5);
    assert_payload(&out, "hello");
}

/* A 2.05 with no options and no payload still renders with Max-Age. */
Test(cache, render_bare_content)
{
    struct tkey k;
    key_get("empty", NULL, -1, &k);
    struct tmsg r;
    tm_init(&r, GW_COAP_NON, GW_COAP_CONTENT);
    put_ok(&k, &r, 0);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_FRESH);
    struct gw_coap_msg out;
    render_parse(&hit, &out);
    cr_assert_eq(out.nopts, 1);
    cr_assert_eq(opt_uint(&out, GW_OPT_MAX_AGE), 60);
    cr_assert_eq(out.payload_len, 0);
}

/* The output buffer bound is reported, not overrun. */
Test(cache, render_reports_small_buffer)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, NULL, 60, "0123456789");
    put_ok(&k, &r, 0);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_FRESH);
    uint8_t buf[16];
    size_t len;
    cr_assert_eq(sch_cache_render(&hit, GW_COAP_ACK, 1, NULL, 0, buf, sizeof(buf), &len),
                 GW_ETOOBIG);
    uint8_t junk[2] = { 0x40, 0x45 };
    struct sch_cache_hit bad = { .resp = junk, .resp_len = sizeof(junk) };
    cr_assert_eq(sch_cache_render(&bad, GW_COAP_ACK, 1, NULL, 0, buf, sizeof(buf), &len),
                 GW_EBADMSG);
}

/* S5.1 / RFC 7252 5.10.5: no Max-Age means 60 s. */
Test(cache, default_max_age_is_60s)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, NULL, -1, "21");
    put_ok(&k, &r, 5000);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 15000, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(hit.max_age_left_s, 50);
    struct gw_coap_msg out;
    render_parse(&hit, &out);
    cr_assert_eq(opt_uint(&out, GW_OPT_MAX_AGE), 50);
    cr_assert_eq(get_at(&k, 5000 + 59999, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(hit.max_age_left_s, 0);
    cr_assert_eq(get_at(&k, 5000 + 60000, &hit), SCH_CACHE_MISS);
}

/* RFC 7252 5.10.5: Max-Age 0 is not stored and drops an older entry. */
Test(cache, max_age_zero_not_stored)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, NULL, 0, "21");
    put_refused(&k, &r, 0);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_MISS);

    resp_make(&r, GW_COAP_CONTENT, NULL, 60, "21");
    put_ok(&k, &r, 0);
    resp_make(&r, GW_COAP_CONTENT, NULL, 0, "22");
    put_refused(&k, &r, 1000);
    cr_assert_eq(get_at(&k, 1000, &hit), SCH_CACHE_MISS);
    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.entries, 0);
    cr_assert_eq(s.bytes, 0);
}

/* S5.3: only 2.05 is stored; 2.01, 2.02, 2.04, unknown 2.xx (2.06, 2.31)
 * and errors never are. */
Test(cache, other_codes_never_stored)
{
    static const uint8_t codes[] = { GW_COAP_CREATED,   GW_COAP_DELETED, GW_COAP_CHANGED,
                                     GW_CODE(2, 6),     GW_CODE(2, 31),  GW_COAP_VALID,
                                     GW_COAP_NOT_FOUND, GW_COAP_INTERNAL };
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct sch_cache_hit hit;
    for (size_t i = 0; i < GW_ARRAY_LEN(codes); i++) {
        struct tmsg r;
        resp_make(&r, codes[i], "e1", 60, "x");
        put_refused(&k, &r, 0);
        cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_MISS, "code %u.%02u stored", codes[i] >> 5,
                     codes[i] & 31);
    }
    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.entries, 0);
}

/* A newer non-2.05 answer for the key supersedes the stored one, except a
 * 2.03, which only sch_cache_refresh() applies (S5.5). */
Test(cache, newer_non_content_answer_drops_entry)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, "e1", 60, "x");
    put_ok(&k, &r, 0);
    struct sch_cache_hit hit;

    resp_make(&r, GW_COAP_VALID, "e1", 60, NULL);
    put_refused(&k, &r, 0);
    cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_FRESH);

    resp_make(&r, GW_COAP_NOT_FOUND, NULL, -1, NULL);
    put_refused(&k, &r, 0);
    cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_MISS);
}

/* S5.2: a notification stored as the current state is served to plain GETs
 * without Observe; S4.7: a partial (block-wise) representation is refused. */
Test(cache, observe_stripped_and_blocks_refused)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    tm_init(&r, GW_COAP_CON, GW_COAP_CONTENT);
    tm_uint(&r, GW_OPT_OBSERVE, 12);
    tm_uint(&r, GW_OPT_CONTENT_FORMAT, 0);
    tm_payload(&r, "22", 2);
    put_ok(&k, &r, 0);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_FRESH);
    struct gw_coap_msg out;
    render_parse(&hit, &out);
    cr_assert_null(gw_coap_opt_find(&out, GW_OPT_OBSERVE));
    assert_payload(&out, "22");

    tm_init(&r, GW_COAP_ACK, GW_COAP_CONTENT);
    tm_uint(&r, GW_OPT_BLOCK2, 0x0a); /* NUM 0, M, 64 bytes */
    tm_payload(&r, "part", 4);
    put_refused(&k, &r, 0);
    cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_MISS);
}

/* A newer 2.05 replaces the entry under the same key. */
Test(cache, put_replaces_same_key)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, NULL, 60, "old");
    put_ok(&k, &r, 0);
    resp_make(&r, GW_COAP_CONTENT, NULL, 30, "new!");
    put_ok(&k, &r, 10000);
    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.entries, 1);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 20000, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(hit.age_s, 10);
    cr_assert_eq(hit.max_age_left_s, 20);
    struct gw_coap_msg out;
    render_parse(&hit, &out);
    assert_payload(&out, "new!");
}

/* A 4-byte Max-Age does not overflow the expiry. */
Test(cache, largest_max_age)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, NULL, 0xffffffffL, "x");
    put_ok(&k, &r, 1000);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 1000 + 86400000ull * 365, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(hit.max_age_left_s, 0xffffffffu - 86400u * 365);
}

/* --- Expiry and revalidation (S5.5) ---------------------------------------------------- */

/* An expired entry without ETag cannot be revalidated: it is a MISS and gone. */
Test(cache, expired_without_etag_is_miss)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, NULL, 10, "21");
    put_ok(&k, &r, 0);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 9999, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(get_at(&k, 10000, &hit), SCH_CACHE_MISS);
    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.entries, 0);
    cr_assert_eq(s.bytes, 0);
}

/* S5.5: an expired entry with ETag is STALE; a 2.03 with that ETag
 * refreshes it (new Max-Age, same body); it is FRESH again. */
Test(cache, expired_with_etag_is_stale_then_refreshed)
{
    struct tkey k;
    key_get("temp", NULL, -1, &k);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, "v1", 10, "body-v1");
    put_ok(&k, &r, 0);

    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 15000, &hit), SCH_CACHE_STALE);
    cr_assert_eq(hit.etag_len, 2);
    cr_assert_arr_eq(hit.etag, "v1", 2);
    cr_assert_eq(hit.max_age_left_s, 0);
    cr_assert_eq(hit.age_s, 15);

    struct tmsg valid;
    resp_make(&valid, GW_COAP_VALID, "v1", 30, NULL);
    cr_assert_eq(sch_cache_refresh(cache, k.b, k.len, &valid.m, 15000), 0);
    cr_assert_eq(get_at(&k, 20000, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(hit.age_s, 5);
    cr_assert_eq(hit.max_age_left_s, 25);
    struct gw_coap_msg out;
    render_parse(&hit, &out);
    cr_assert_eq(out.code, GW_COAP_CONTENT);
    cr_assert_eq(opt_uint(&out, GW_OPT_MAX_AGE), 25);
    assert_payload(&out, "body-v1");

    /* A 2.03 without Max-Age gives the default; without ETag it applies
     * to the entry it answers. */
    cr_assert_eq(get_at(&k, 50000, &hit), SCH_CACHE_STALE);
    tm_init(&valid, GW_COAP_ACK, GW_COAP_VALID);
    cr_assert_eq(sch_cache_refresh(cache, k.b, k.len, &valid.m, 50000), 0);
    cr_assert_eq(get_at(&k, 50000, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(hit.max_age_left_s, 60);

    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.stale, 2);
    cr_assert_eq(s.hits, 2);
}

/* S5.5: a 2.03 naming another ETag, or for no entry, refreshes nothing. */
Test(cache, refresh_with_other_etag_not_found)
{
    struct tkey k, other;
    key_get("temp", NULL, -1, &k);
    key_get("humidity", NULL, -1, &other);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, "v1", 10, "body-v1");
    put_ok(&k, &r, 0);

    struct tmsg valid;
    resp_make(&valid, GW_COAP_VALID, "v2", 30, NULL);
    cr_assert_eq(sch_cache_refresh(cache, k.b, k.len, &valid.m, 15000), GW_ENOTFOUND);
    resp_make(&valid, GW_COAP_VALID, "v1x", 30, NULL);
    cr_assert_eq(sch_cache_refresh(cache, k.b, k.len, &valid.m, 15000), GW_ENOTFOUND);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k, 15000, &hit), SCH_CACHE_STALE);

    resp_make(&valid, GW_COAP_VALID, "v1", 30, NULL);
    cr_assert_eq(sch_cache_refresh(cache, other.b, other.len, &valid.m, 15000), GW_ENOTFOUND);
    resp_make(&valid, GW_COAP_CONTENT, "v1", 30, NULL);
    cr_assert_eq(sch_cache_refresh(cache, k.b, k.len, &valid.m, 15000), GW_EBADMSG);
}

/* --- Invalidation (S5.3) ------------------------------------------------------------------ */

/* S5.3: a PUT to /r removes every Accept variant of /r, and nothing else:
 * not /other, not /r/sub, not /r on another device or security mode. */
Test(cache, invalidate_removes_all_variants_of_resource_only)
{
    struct tkey r0, r50, rnone, other, sub, rnone_sec0;
    key_get("r", NULL, 0, &r0);
    key_get("r", NULL, 50, &r50);
    key_get("r", NULL, -1, &rnone);
    key_get("other", NULL, -1, &other);
    key_get("r", "sub", -1, &sub);
    struct tmsg g;
    req_get(&g, "r", NULL, -1);
    key_of(MAC_A, 0, &g, &rnone_sec0);

    struct tmsg resp;
    resp_make(&resp, GW_COAP_CONTENT, NULL, 60, "x");
    put_ok(&r0, &resp, 0);
    put_ok(&r50, &resp, 0);
    put_ok(&rnone, &resp, 0);
    put_ok(&other, &resp, 0);
    put_ok(&sub, &resp, 0);
    put_ok(&rnone_sec0, &resp, 0);

    struct tmsg put;
    struct tkey pk;
    tm_init(&put, GW_COAP_CON, GW_COAP_PUT);
    tm_str(&put, GW_OPT_URI_PATH, "r");
    tm_uint(&put, GW_OPT_CONTENT_FORMAT, 0);
    tm_payload(&put, "new", 3);
    key_of(MAC_A, 1, &put, &pk);
    cr_assert_eq(sch_cache_invalidate(cache, pk.res), 3);

    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&r0, 1000, &hit), SCH_CACHE_MISS);
    cr_assert_eq(get_at(&r50, 1000, &hit), SCH_CACHE_MISS);
    cr_assert_eq(get_at(&rnone, 1000, &hit), SCH_CACHE_MISS);
    cr_assert_eq(get_at(&other, 1000, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(get_at(&sub, 1000, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(get_at(&rnone_sec0, 1000, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(sch_cache_invalidate(cache, pk.res), 0);

    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.entries, 3);
    cr_assert_eq(s.invalidations, 3);
}

/* RFC 7252 5.6: a Location-Path/Query in a response names a resource whose
 * hash equals that of a request to it. */
Test(cache, location_hash_matches_request_hash)
{
    struct tmsg req, resp;
    struct tkey k;
    tm_init(&req, GW_COAP_CON, GW_COAP_GET);
    tm_str(&req, GW_OPT_URI_PATH, "items");
    tm_str(&req, GW_OPT_URI_PATH, "7");
    tm_str(&req, GW_OPT_URI_QUERY, "v=1");
    key_of(MAC_A, 1, &req, &k);
    tm_init(&resp, GW_COAP_ACK, GW_COAP_CREATED);
    tm_str(&resp, GW_OPT_LOCATION_PATH, "items");
    tm_str(&resp, GW_OPT_LOCATION_PATH, "7");
    tm_str(&resp, GW_OPT_LOCATION_QUERY, "v=1");
    cr_assert_eq(sch_cache_res_hash_location(MAC_A, 1, &resp.m), k.res);
    cr_assert_neq(sch_cache_res_hash_location(MAC_A, 0, &resp.m), k.res);
}

/* --- Bounds (S5.4) ----------------------------------------------------------------------------- */

static void key_n(int i, struct tkey *k)
{
    char p[16];
    snprintf(p, sizeof(p), "r%d", i);
    key_get(p, NULL, -1, k);
}

/* S5.4: at max_entries the least recently used goes; a get refreshes. */
Test(cache, lru_evicts_least_recently_used_entry)
{
    sch_cache_free(cache);
    open_cache(3, 1 << 20);
    struct tkey k[4];
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, NULL, 60, "x");
    for (int i = 0; i < 4; i++)
        key_n(i, &k[i]);
    for (int i = 0; i < 3; i++)
        put_ok(&k[i], &r, (uint64_t)i);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k[0], 10, &hit), SCH_CACHE_FRESH); /* r0 now most recent */
    put_ok(&k[3], &r, 20);

    cr_assert_eq(get_at(&k[1], 30, &hit), SCH_CACHE_MISS);
    cr_assert_eq(get_at(&k[0], 30, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(get_at(&k[2], 30, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(get_at(&k[3], 30, &hit), SCH_CACHE_FRESH);
    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.entries, 3);
    cr_assert_eq(s.evictions, 1);
}

/* S5.4: the byte bound evicts as many LRU entries as it takes. */
Test(cache, lru_respects_max_bytes)
{
    struct tkey k[6];
    for (int i = 0; i < 6; i++)
        key_n(i, &k[i]);
    struct tmsg small, big;
    resp_make(&small, GW_COAP_CONTENT, NULL, 60, "0123456789");

    /* Measure one small entry, then bound the cache at four of them. */
    put_ok(&k[0], &small, 0);
    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    size_t one = s.bytes;
    cr_assert_gt(one, sch_cache_entry_bytes(k[0].len, 0));
    sch_cache_free(cache);
    open_cache(100, 4 * one);

    for (int i = 0; i < 5; i++)
        put_ok(&k[i], &small, (uint64_t)i);
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.entries, 4);
    cr_assert_eq(s.bytes, 4 * one);
    cr_assert_eq(s.evictions, 1);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&k[0], 10, &hit), SCH_CACHE_MISS);

    /* A big entry worth between two and three small ones (its payload is
     * one + 60 bytes where the small one's is 10) pushes out the three
     * least recently used. */
    char payload[1024];
    size_t plen = one + 60;
    cr_assert_lt(plen, sizeof(payload));
    memset(payload, 'b', plen);
    payload[plen] = 0;
    resp_make(&big, GW_COAP_CONTENT, NULL, 60, payload);
    put_ok(&k[5], &big, 20);
    sch_cache_stats(cache, &s);
    cr_assert_leq(s.bytes, 4 * one);
    cr_assert_eq(s.entries, 2);
    cr_assert_eq(s.evictions, 4);
    cr_assert_eq(get_at(&k[4], 30, &hit), SCH_CACHE_FRESH);
    cr_assert_eq(get_at(&k[5], 30, &hit), SCH_CACHE_FRESH);
}

/* S5.4: an entry larger than max_bytes is not stored and evicts nothing. */
Test(cache, oversize_entry_not_stored)
{
    sch_cache_free(cache);
    open_cache(100, 512);
    struct tkey k, big;
    key_get("small", NULL, -1, &k);
    key_get("big", NULL, -1, &big);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, NULL, 60, "x");
    put_ok(&k, &r, 0);

    char payload[600];
    memset(payload, 'b', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = 0;
    resp_make(&r, GW_COAP_CONTENT, NULL, 60, payload);
    put_refused(&big, &r, 0);
    struct sch_cache_hit hit;
    cr_assert_eq(get_at(&big, 0, &hit), SCH_CACHE_MISS);
    cr_assert_eq(get_at(&k, 0, &hit), SCH_CACHE_FRESH);
    struct sch_cache_stats s;
    sch_cache_stats(cache, &s);
    cr_assert_eq(s.entries, 1);
    cr_assert_eq(s.evictions, 0);
}

/* Many entries through a small cache: the lists and counters stay
 * consistent (checked by the bounds and by ASan at teardown). */
Test(cache, churn_keeps_bounds)
{
    sch_cache_free(cache);
    open_cache(64, 64 * 256);
    struct tmsg r;
    resp_make(&r, GW_COAP_CONTENT, "e", 5, "payload");
    struct sch_cache_hit hit;
    for (int i = 0; i < 5000; i++) {
        struct tkey k;
        key_n(i % 200, &k);
        uint64_t now = (uint64_t)i * 10;
        int rc = get_at(&k, now, &hit);
        if (rc == SCH_CACHE_MISS)
            put_ok(&k, &r, now);
        else if (i % 7 == 0)
            cr_assert_eq(sch_cache_invalidate(cache, k.res), 1);
        else if (i % 5 == 0)
            cr_assert_eq(sch_cache_remove(cache, k.b, k.len), 0);
        struct sch_cache_stats s;
        sch_cache_stats(cache, &s);
        cr_assert_leq(s.entries, 64);
        cr_assert_leq(s.bytes, 64 * 256);
    }
}

Test(cache, new_rejects_zero_bounds)
{
    struct sch_cache *c = NULL;
    struct sch_cache_cfg cfg = { .max_entries = 0, .max_bytes = 1000 };
    cr_assert_eq(sch_cache_new(&cfg, &c), GW_ECONFIG);
    cfg = (struct sch_cache_cfg){ .max_entries = 10, .max_bytes = 0 };
    cr_assert_eq(sch_cache_new(&cfg, &c), GW_ECONFIG);
    cfg = (struct sch_cache_cfg){ .max_entries = 10, .max_bytes = 10000, .default_max_age_s = 0 };
    cr_assert_eq(sch_cache_new(&cfg, &c), 0);
    sch_cache_free(c);
}
