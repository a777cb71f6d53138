/* SPDX-License-Identifier: MIT */
/* test_coap.c - the CoAP codec (common/gw_coap.c).
 *
 * The encoder is our own (libcoap 4.3.1 exports none, see gw_coap.h), so it
 * is checked against libcoap's coap_pdu_parse() as the oracle, in the manner
 * of libcoap tests/test_pdu.c: many seeded random messages are built with
 * gw_cb_* and gw_coap_encode, parsed by libcoap into a coap_pdu_t and
 * compared field by field, then parsed back with gw_coap_parse.
 * Fixed vectors come from RFC 7252 appendix A and section 3.1.
 *
 * SPEC S3.4: a malformed message is rejected per RFC 7252 4.2/4.3, so
 * gw_coap_parse must say GW_EBADMSG for every format error, and never crash.
 * SPEC S3.5: tokens up to 8 bytes, messages up to 1152 bytes.
 * SPEC S3.6: an unknown version is ignored, which needs gw_coap_peek. */
#include "gw_coap.h"
#include "gw_error.h"

#include <coap3/coap.h>
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Fixture: one gateway parser and one libcoap oracle PDU per test. */

#define ORACLE_MAX 8192
#define GW_PARSE_MAX (GW_COAP_MAX_MSG + 16)

static struct gw_coap_parser *parser;
static coap_pdu_t *oracle;

static void setup(void)
{
    /* gw_coap_parser_new runs coap_startup() and quiets libcoap's log. */
    cr_assert_eq(gw_coap_parser_new(&parser), 0);
    oracle = coap_pdu_init(COAP_MESSAGE_CON, 0, 0, ORACLE_MAX);
    cr_assert_not_null(oracle);
}

static void teardown(void)
{
    coap_delete_pdu(oracle);
    gw_coap_parser_free(parser);
}

TestSuite(coap, .init = setup, .fini = teardown);

/* Criterion reports every assertion; in hot loops only report failures. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            cr_assert_fail(__VA_ARGS__);                                                           \
    } while (0)

/* ------------------------------------------------------------------------ */
/* Seeded generator (xorshift64*), so that a failure names its iteration. */

static uint64_t rng_state;

static void rng_seed(uint64_t s)
{
    rng_state = s ? s : 0x9e3779b97f4a7c15ull;
}

static uint32_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* Uniform in [lo, hi]. */
static uint32_t rng_range(uint32_t lo, uint32_t hi)
{
    return lo + rng() % (hi - lo + 1);
}

static void rng_fill(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)rng();
}

/* libcoap 4.3.1 refuses a registered option whose length is outside the
 * RFC range (coap_pdu_parse_opt_base), so the generator keeps registered
 * numbers within range and gives any length to unregistered numbers. */
struct opt_range {
    uint16_t num, min, max;
};
static const struct opt_range registered[] = {
    { 1, 0, 8 },    { 3, 1, 255 },  { 4, 1, 8 },    { 5, 0, 0 },    { 6, 0, 3 },   { 7, 0, 2 },
    { 8, 0, 255 },  { 9, 0, 255 },  { 11, 0, 255 }, { 12, 0, 2 },   { 14, 0, 4 },  { 15, 1, 255 },
    { 16, 1, 1 },   { 17, 0, 2 },   { 20, 0, 255 }, { 23, 0, 3 },   { 27, 0, 3 },  { 28, 0, 4 },
    { 35, 1, 300 }, { 39, 1, 255 }, { 60, 0, 4 },   { 252, 0, 40 }, { 258, 0, 1 }, { 292, 0, 8 },
};

static const struct opt_range *registered_find(uint32_t num)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(registered); i++)
        if (registered[i].num == num)
            return &registered[i];
    return NULL;
}

/* Lengths cluster around the nibble/extended boundaries of RFC 7252 3.1. */
static uint16_t gen_len(void)
{
    uint32_t r = rng() % 100;
    if (r < 55)
        return (uint16_t)rng_range(0, 12);
    if (r < 70)
        return (uint16_t)rng_range(12, 14);
    if (r < 85)
        return (uint16_t)rng_range(15, 267);
    if (r < 93)
        return (uint16_t)rng_range(267, 270);
    return (uint16_t)rng_range(271, 300);
}

#define GEN_MAX_OPTS 12
#define GEN_MAX_OPTLEN 300
#define GEN_MAX_PAYLOAD 300

struct gen_opt {
    uint16_t num;
    uint16_t len;
    uint8_t val[GEN_MAX_OPTLEN];
};

struct gen_msg {
    uint8_t type, code, tkl;
    uint16_t mid;
    uint8_t token[GW_COAP_MAX_TOKEN];
    unsigned nopts;
    struct gen_opt opts[GEN_MAX_OPTS]; /* ascending by number */
    size_t plen;
    uint8_t payload[GEN_MAX_PAYLOAD];
};

static void gen_option(struct gen_opt *o, uint16_t prev, bool repeat)
{
    uint32_t num;
    if (repeat) {
        num = prev;
    } else {
        uint32_t r = rng() % 100;
        if (r < 40)
            num = registered[rng() % GW_ARRAY_LEN(registered)].num;
        else if (r < 70)
            num = rng_range(0, 40);
        else if (r < 85)
            num = rng_range(0, 600); /* deltas across 13 and 269 */
        else
            num = rng_range(0, 65535);
    }
    const struct opt_range *reg = registered_find(num);
    o->num = (uint16_t)num;
    o->len = reg ? (uint16_t)rng_range(reg->min, reg->max) : gen_len();
    rng_fill(o->val, o->len);
}

static void gen_message(struct gen_msg *g)
{
    memset(g, 0, sizeof(*g));
    g->type = (uint8_t)(rng() & 3);
    g->mid = (uint16_t)rng();
    if (rng() % 50 == 0) {
        /* An Empty message: code 0.00 and nothing after the header (RFC 7252 4.1). */
        g->code = 0;
        return;
    }
    /* Any request or response class; 7.xx is signaling (RFC 8323), not UDP. */
    g->code = (uint8_t)rng_range(1, 0xdf);
    g->tkl = (uint8_t)rng_range(0, 8);
    rng_fill(g->token, g->tkl);
    g->nopts = rng_range(0, GEN_MAX_OPTS);
    for (unsigned i = 0; i < g->nopts; i++) {
        bool repeat = i > 0 && rng() % 5 == 0;
        gen_option(&g->opts[i], i ? g->opts[i - 1].num : 0, repeat);
    }
    /* Insertion sort, stable, so repeated numbers keep their order. */
    for (unsigned i = 1; i < g->nopts; i++) {
        struct gen_opt t = g->opts[i];
        unsigned j = i;
        while (j > 0 && g->opts[j - 1].num > t.num) {
            g->opts[j] = g->opts[j - 1];
            j--;
        }
        g->opts[j] = t;
    }
    if (rng() % 2) {
        uint32_t r = rng() % 10;
        g->plen = r < 7 ? rng_range(1, 64) : rng_range(1, GEN_MAX_PAYLOAD);
        rng_fill(g->payload, g->plen);
    }
}

/* Bytes for a nibble value (RFC 7252 3.1): 0..12 inline, 13..268 one
 * extended byte, 269.. two. */
static size_t ext_bytes(uint32_t v)
{
    return v < 13 ? 0 : v < 269 ? 1 : 2;
}

/* The expected encoded size, computed independently of the encoder. */
static size_t gen_size(const struct gen_msg *g)
{
    size_t n = 4 + g->tkl;
    uint16_t prev = 0;
    for (unsigned i = 0; i < g->nopts; i++) {
        n += 1 + ext_bytes((uint32_t)(g->opts[i].num - prev)) + ext_bytes(g->opts[i].len) +
             g->opts[i].len;
        prev = g->opts[i].num;
    }
    if (g->plen)
        n += 1 + g->plen;
    return n;
}

static int gen_build(const struct gen_msg *g, uint8_t *buf, size_t cap, size_t *len)
{
    struct gw_cb b;
    gw_cb_init(&b, buf, cap, g->type, g->code, g->mid, g->token, g->tkl);
    for (unsigned i = 0; i < g->nopts; i++)
        gw_cb_opt(&b, g->opts[i].num, g->opts[i].val, g->opts[i].len);
    gw_cb_payload(&b, g->payload, g->plen);
    return gw_cb_finish(&b, len);
}

/* A view of g whose options are shuffled, keeping the relative order of
 * equal numbers (gw_coap_encode sorts stably). Pointers refer into g. */
static void gen_view(const struct gen_msg *g, struct gw_coap_msg *m)
{
    memset(m, 0, sizeof(*m));
    m->type = g->type;
    m->code = g->code;
    m->mid = g->mid;
    m->tkl = g->tkl;
    memcpy(m->token, g->token, g->tkl);
    m->nopts = (uint16_t)g->nopts;
    unsigned perm[GEN_MAX_OPTS];
    for (unsigned i = 0; i < g->nopts; i++)
        perm[i] = i;
    for (unsigned i = g->nopts; i > 1; i--) {
        unsigned j = rng() % i, t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (unsigned i = 0; i < g->nopts; i++)
        m->opts[i].num = g->opts[perm[i]].num;
    /* The k-th slot holding number N gets the k-th option N of g. */
    for (unsigned i = 0; i < g->nopts; i++) {
        unsigned k = 0;
        for (unsigned j = 0; j < i; j++)
            k += m->opts[j].num == m->opts[i].num;
        for (unsigned j = 0; j < g->nopts; j++)
            if (g->opts[j].num == m->opts[i].num && k-- == 0) {
                m->opts[i].len = g->opts[j].len;
                m->opts[i].val = g->opts[j].val;
                break;
            }
    }
    m->payload = g->plen ? g->payload : NULL;
    m->payload_len = g->plen;
}

/* Compares libcoap's parse of the bytes with what was generated. */
static void oracle_compare(int iter, const struct gen_msg *g, const uint8_t *buf, size_t len)
{
    CHECK(coap_pdu_parse(COAP_PROTO_UDP, buf, len, oracle), "iter %d: libcoap refused %zu bytes",
          iter, len);
    CHECK(coap_pdu_get_type(oracle) == g->type, "iter %d: type", iter);
    CHECK(coap_pdu_get_code(oracle) == g->code, "iter %d: code", iter);
    CHECK(coap_pdu_get_mid(oracle) == g->mid, "iter %d: mid", iter);
    coap_bin_const_t tok = coap_pdu_get_token(oracle);
    CHECK(tok.length == g->tkl, "iter %d: tkl %zu != %u", iter, tok.length, g->tkl);
    CHECK(g->tkl == 0 || memcmp(tok.s, g->token, g->tkl) == 0, "iter %d: token bytes", iter);

    coap_opt_iterator_t it;
    CHECK(coap_option_iterator_init(oracle, &it, COAP_OPT_ALL) != NULL || g->nopts == 0,
          "iter %d: iterator", iter);
    unsigned n = 0;
    coap_opt_t *o;
    while ((o = coap_option_next(&it))) {
        CHECK(n < g->nopts, "iter %d: libcoap sees extra option %u", iter, it.number);
        const struct gen_opt *e = &g->opts[n];
        CHECK(it.number == e->num, "iter %d: option %u number %u != %u", iter, n, it.number,
              e->num);
        CHECK(coap_opt_length(o) == e->len, "iter %d: option %u length %u != %u", iter, n,
              coap_opt_length(o), e->len);
        CHECK(e->len == 0 || memcmp(coap_opt_value(o), e->val, e->len) == 0,
              "iter %d: option %u value", iter, n);
        n++;
    }
    CHECK(n == g->nopts, "iter %d: libcoap sees %u options, want %u", iter, n, g->nopts);

    size_t dl = 0;
    const uint8_t *data = NULL;
    int has = coap_get_data(oracle, &dl, &data);
    if (g->plen) {
        CHECK(has && dl == g->plen, "iter %d: payload length %zu != %zu", iter, dl, g->plen);
        CHECK(memcmp(data, g->payload, g->plen) == 0, "iter %d: payload bytes", iter);
    } else {
        CHECK(!has || dl == 0, "iter %d: unexpected payload", iter);
    }
}

/* Compares our own parse (a view) with what was generated. */
static void view_compare(int iter, const struct gen_msg *g, const struct gw_coap_msg *m)
{
    CHECK(m->type == g->type && m->code == g->code && m->mid == g->mid,
          "iter %d: header differs after gw_coap_parse", iter);
    CHECK(m->tkl == g->tkl && memcmp(m->token, g->token, g->tkl) == 0, "iter %d: token", iter);
    CHECK(m->nopts == g->nopts, "iter %d: %u options, want %u", iter, m->nopts, g->nopts);
    for (unsigned i = 0; i < g->nopts; i++) {
        const struct gw_coap_opt *o = &m->opts[i];
        CHECK(o->num == g->opts[i].num && o->len == g->opts[i].len, "iter %d: option %u", iter, i);
        CHECK(o->len == 0 || memcmp(o->val, g->opts[i].val, o->len) == 0,
              "iter %d: option %u value", iter, i);
    }
    CHECK(m->payload_len == g->plen, "iter %d: payload %zu, want %zu", iter, m->payload_len,
          g->plen);
    CHECK(g->plen == 0 || memcmp(m->payload, g->payload, g->plen) == 0, "iter %d: payload", iter);
    CHECK(g->plen != 0 || m->payload == NULL, "iter %d: payload pointer without payload", iter);
}

/* What dropping the last byte must do: the payload shrinks, or the last
 * option (header only, no extended bytes) disappears, or it is malformed. */
static void truncation_check(int iter, const struct gen_msg *g, const uint8_t *buf, size_t len)
{
    struct gw_coap_msg m;
    int rc = gw_coap_parse(parser, buf, len - 1, &m);
    if (g->plen >= 2) {
        CHECK(rc == 0 && m.payload_len == g->plen - 1, "iter %d: shorter payload rc %d", iter, rc);
        return;
    }
    if (g->plen == 1) {
        /* A payload marker followed by nothing (RFC 7252 3). */
        CHECK(rc == GW_EBADMSG, "iter %d: marker without payload rc %d", iter, rc);
        return;
    }
    if (g->nopts) {
        const struct gen_opt *last = &g->opts[g->nopts - 1];
        uint16_t prev = g->nopts > 1 ? g->opts[g->nopts - 2].num : 0;
        if (last->len == 0 && (uint32_t)(last->num - prev) < 13) {
            CHECK(rc == 0 && m.nopts == g->nopts - 1, "iter %d: one option fewer rc %d", iter, rc);
        } else {
            CHECK(rc == GW_EBADMSG, "iter %d: truncated option rc %d", iter, rc);
        }
        return;
    }
    /* Truncated token, or fewer than 4 bytes. */
    CHECK(rc == GW_EBADMSG, "iter %d: truncated token/header rc %d", iter, rc);
}

/* S3.4, S3.5: the encoder against the oracle on 20,000 generated messages. */
Test(coap, random_messages_match_libcoap_oracle)
{
    static uint8_t big[ORACLE_MAX], small[GW_PARSE_MAX], again[ORACLE_MAX];
    static struct gen_msg g;
    static struct gw_coap_msg view, parsed;
    const int iterations = 20000;
    int in_gw_range = 0, ext_delta14 = 0, ext_len14 = 0, repeats = 0, empties = 0;

    rng_seed(0xc0a9c0a9u);
    for (int iter = 0; iter < iterations; iter++) {
        gen_message(&g);
        size_t want = gen_size(&g), len = 0;

        /* 1. The builder, with room to spare: exact size, oracle agrees. */
        int rc = gen_build(&g, big, sizeof(big), &len);
        CHECK(rc == 0, "iter %d: gw_cb_finish %d", iter, rc);
        CHECK(len == want, "iter %d: %zu bytes, want %zu", iter, len, want);
        CHECK((big[0] >> 6) == 1, "iter %d: version", iter);
        oracle_compare(iter, &g, big, len);

        /* 2. One byte less room is GW_ETOOBIG, exactly enough is fine. */
        size_t len2 = 0;
        rc = gen_build(&g, again, len - 1, &len2);
        CHECK(rc == GW_ETOOBIG, "iter %d: cap %zu gave %d", iter, len - 1, rc);
        rc = gen_build(&g, again, len, &len2);
        CHECK(rc == 0 && len2 == len && memcmp(again, big, len) == 0, "iter %d: tight cap", iter);

        /* 3. gw_coap_encode of a shuffled view gives the same bytes. */
        gen_view(&g, &view);
        rc = gw_coap_encode(&view, again, sizeof(again), &len2);
        CHECK(rc == 0 && len2 == len, "iter %d: gw_coap_encode rc %d len %zu", iter, rc, len2);
        CHECK(memcmp(again, big, len) == 0, "iter %d: gw_coap_encode bytes differ", iter);

        /* 4. Within the gateway's size bound (S3.5) our parser gives the
         *    same view; beyond it, the builder refuses to fill the buffer. */
        if (len <= GW_PARSE_MAX) {
            in_gw_range++;
            rc = gen_build(&g, small, sizeof(small), &len2);
            CHECK(rc == 0 && len2 == len, "iter %d: small buffer rc %d", iter, rc);
            rc = gw_coap_parse(parser, small, len, &parsed);
            CHECK(rc == 0, "iter %d: gw_coap_parse %d (%s)", iter, rc, gw_strerror(rc));
            view_compare(iter, &g, &parsed);
            /* Re-encoding the parsed view is the identity. */
            rc = gw_coap_encode(&parsed, again, sizeof(again), &len2);
            CHECK(rc == 0 && len2 == len && memcmp(again, small, len) == 0,
                  "iter %d: parse/encode round trip", iter);
            truncation_check(iter, &g, small, len);
        } else {
            rc = gen_build(&g, small, sizeof(small), &len2);
            CHECK(rc == GW_ETOOBIG, "iter %d: oversize build gave %d", iter, rc);
            rc = gw_coap_parse(parser, big, len, &parsed);
            CHECK(rc == GW_EBADMSG, "iter %d: oversize parse gave %d", iter, rc);
        }

        empties += g.code == 0;
        uint16_t prev = 0;
        for (unsigned i = 0; i < g.nopts; i++) {
            ext_delta14 += (uint32_t)(g.opts[i].num - prev) >= 269;
            ext_len14 += g.opts[i].len >= 269;
            repeats += i > 0 && g.opts[i].num == prev;
            prev = g.opts[i].num;
        }
    }
    /* The generator must actually reach the interesting encodings. */
    cr_expect_gt(in_gw_range, iterations / 2);
    cr_expect_gt(ext_delta14, 1000);
    cr_expect_gt(ext_len14, 1000);
    cr_expect_gt(repeats, 1000);
    cr_expect_gt(empties, 100);
}

/* ------------------------------------------------------------------------ */
/* Fixed vectors. */

static void expect_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
    cr_assert_eq(got_len, want_len, "length %zu, want %zu", got_len, want_len);
    for (size_t i = 0; i < want_len; i++)
        cr_assert_eq(got[i], want[i], "byte %zu: 0x%02x, want 0x%02x", i, got[i], want[i]);
}

/* RFC 7252 appendix A, figure 16: CON GET, MID 0x7d34, Uri-Path "temperature". */
Test(coap, rfc7252_get_temperature_exact_bytes)
{
    static const uint8_t want[] = { 0x40, 0x01, 0x7d, 0x34, 0xbb, 't', 'e', 'm',
                                    'p',  'e',  'r',  'a',  't',  'u', 'r', 'e' };
    uint8_t buf[64];
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 0x7d34, NULL, 0);
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "temperature");
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    expect_bytes(buf, len, want, sizeof(want));

    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, want, sizeof(want), &m), 0);
    cr_assert_eq(m.type, GW_COAP_CON);
    cr_assert_eq(m.code, GW_COAP_GET);
    cr_assert_eq(m.mid, 0x7d34);
    cr_assert_eq(m.tkl, 0);
    cr_assert_eq(m.nopts, 1);
    cr_assert_eq(m.opts[0].num, GW_OPT_URI_PATH);
    cr_assert_eq(m.opts[0].len, 11);
    cr_assert_arr_eq(m.opts[0].val, "temperature", 11);
    cr_assert_eq(m.payload_len, 0);
    cr_assert_null(m.payload);
}

/* RFC 7252 appendix A, figure 16: the piggybacked ACK 2.05 "22.3 C". */
Test(coap, rfc7252_piggybacked_ack_exact_bytes)
{
    static const uint8_t want[] = { 0x60, 0x45, 0x7d, 0x34, 0xff, '2', '2', '.', '3', ' ', 'C' };
    uint8_t buf[64];
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_ACK, GW_COAP_CONTENT, 0x7d34, NULL, 0);
    gw_cb_payload(&b, "22.3 C", 6);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    expect_bytes(buf, len, want, sizeof(want));

    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, want, sizeof(want), &m), 0);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.code, GW_COAP_CONTENT);
    cr_assert_eq(m.nopts, 0);
    cr_assert_eq(m.payload_len, 6);
    cr_assert_arr_eq(m.payload, "22.3 C", 6);
}

/* RFC 7252 appendix A, figure 18: GET with a 1-byte token 0x20, MID 0x7d35. */
Test(coap, rfc7252_get_with_token_exact_bytes)
{
    static const uint8_t want[] = { 0x41, 0x01, 0x7d, 0x35, 0x20, 0xbb, 't', 'e', 'm',
                                    'p',  'e',  'r',  'a',  't',  'u',  'r', 'e' };
    static const uint8_t tok[] = { 0x20 };
    uint8_t buf[64];
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 0x7d35, tok, 1);
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "temperature");
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    expect_bytes(buf, len, want, sizeof(want));

    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, want, sizeof(want), &m), 0);
    cr_assert_eq(m.tkl, 1);
    cr_assert_eq(m.token[0], 0x20);
}

/* RFC 7252 3.1: deltas and lengths of 13 and 269 take extended bytes. */
Test(coap, extended_delta_and_length_exact_bytes)
{
    static uint8_t big[300];
    memset(big, 'x', sizeof(big));
    uint8_t buf[1024];
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_POST, 0x0102, NULL, 0);
    gw_cb_opt_str(&b, GW_OPT_URI_HOST, "example.net");   /* delta 3, length 11 */
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "abcdefghijklm"); /* delta 8, length 13 */
    gw_cb_opt_uint(&b, GW_OPT_SIZE1, 1024);              /* delta 49, length 2 */
    gw_cb_opt(&b, 2000, big, 269);                       /* delta 1940, length 269 */
    gw_cb_opt(&b, 2000, big, 268);                       /* delta 0, length 268 */
    gw_cb_opt(&b, 2013, NULL, 0);                        /* delta 13, length 0 */
    cr_assert_eq(gw_cb_finish(&b, &len), 0);

    uint8_t want[1024];
    size_t n = 0;
    const uint8_t hdr[] = { 0x40, 0x02, 0x01, 0x02 };
    memcpy(want + n, hdr, 4), n += 4;
    want[n++] = 0x3b;
    memcpy(want + n, "example.net", 11), n += 11;
    want[n++] = 0x8d, want[n++] = 13 - 13;
    memcpy(want + n, "abcdefghijklm", 13), n += 13;
    want[n++] = 0xd2, want[n++] = 49 - 13, want[n++] = 0x04, want[n++] = 0x00;
    want[n++] = 0xee, want[n++] = (1940 - 269) >> 8, want[n++] = (1940 - 269) & 0xff;
    want[n++] = 0x00, want[n++] = 0x00;
    memcpy(want + n, big, 269), n += 269;
    want[n++] = 0x0d, want[n++] = 268 - 13;
    memcpy(want + n, big, 268), n += 268;
    want[n++] = 0xd0, want[n++] = 0;
    expect_bytes(buf, len, want, n);

    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, buf, len, &m), 0);
    cr_assert_eq(m.nopts, 6);
    const uint16_t nums[] = { 3, 11, 60, 2000, 2000, 2013 };
    const uint16_t lens[] = { 11, 13, 2, 269, 268, 0 };
    for (unsigned i = 0; i < 6; i++) {
        cr_assert_eq(m.opts[i].num, nums[i], "option %u", i);
        cr_assert_eq(m.opts[i].len, lens[i], "option %u", i);
    }
    cr_assert_eq(gw_coap_opt_count(&m, 2000), 2);
    cr_assert_eq(gw_coap_opt_find(&m, 2000), &m.opts[3]);
    cr_assert_null(gw_coap_opt_find(&m, GW_OPT_URI_QUERY));
    uint32_t v;
    cr_assert(gw_coap_uint(m.opts[2].val, m.opts[2].len, &v));
    cr_assert_eq(v, 1024);
}

/* The highest option number (65535) is reachable, with the 2-byte delta. */
Test(coap, option_number_65535_round_trips)
{
    uint8_t buf[64];
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_NON, GW_COAP_GET, 7, NULL, 0);
    gw_cb_opt(&b, 65535, "z", 1);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    const uint8_t want[] = { 0x50, 0x01, 0x00, 0x07, 0xe1, 0xfe, 0xf2, 'z' };
    expect_bytes(buf, len, want, sizeof(want));
    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, buf, len, &m), 0);
    cr_assert_eq(m.nopts, 1);
    cr_assert_eq(m.opts[0].num, 65535);
}

/* S3.4: an empty CON ("ping") is exactly 4 bytes and parses. */
Test(coap, empty_con_ping_parses)
{
    const uint8_t ping[] = { 0x40, 0x00, 0x12, 0x34 };
    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, ping, sizeof(ping), &m), 0);
    cr_assert_eq(m.type, GW_COAP_CON);
    cr_assert_eq(m.code, GW_COAP_EMPTY);
    cr_assert_eq(m.mid, 0x1234);
    cr_assert_eq(m.tkl, 0);
    cr_assert_eq(m.nopts, 0);
    cr_assert_eq(m.payload_len, 0);
}

/* The parser is reused: a second parse leaves nothing of the first. */
Test(coap, parser_reuse_leaves_no_state)
{
    const uint8_t first[] = { 0x42, 0x45, 0, 1, 0xaa, 0xbb, 0xb1, 'a', 0xff, 'p', 'q' };
    const uint8_t second[] = { 0x50, 0x01, 0, 2 };
    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, first, sizeof(first), &m), 0);
    cr_assert_eq(m.nopts, 1);
    cr_assert_eq(m.payload_len, 2);
    cr_assert_eq(gw_coap_parse(parser, second, sizeof(second), &m), 0);
    cr_assert_eq(m.tkl, 0);
    cr_assert_eq(m.nopts, 0);
    cr_assert_eq(m.payload_len, 0);
    cr_assert_null(m.payload);
}

/* ------------------------------------------------------------------------ */
/* S3.4: malformed input is GW_EBADMSG (RFC 7252 3, 4.2, 4.3). */

static int parse_bytes(const uint8_t *buf, size_t len)
{
    struct gw_coap_msg m;
    return gw_coap_parse(parser, buf, len, &m);
}
#define PARSE(...)                                                                                 \
    parse_bytes((const uint8_t[]){ __VA_ARGS__ }, sizeof((const uint8_t[]){ __VA_ARGS__ }))

Test(coap, shorter_than_header_is_malformed)
{
    const uint8_t b[4] = { 0x40, 0x01, 0x00, 0x01 };
    for (size_t n = 0; n < 4; n++)
        cr_assert_eq(parse_bytes(b, n), GW_EBADMSG, "length %zu", n);
}

/* RFC 7252 3: token lengths 9..15 are reserved, a message format error. */
Test(coap, tkl_9_to_15_is_malformed)
{
    uint8_t b[32];
    memset(b, 0xab, sizeof(b));
    b[1] = GW_COAP_GET, b[2] = 0, b[3] = 1;
    for (unsigned tkl = 9; tkl <= 15; tkl++) {
        b[0] = (uint8_t)(0x40 | tkl);
        /* Long enough to hold the token, so only the TKL is wrong. */
        cr_assert_eq(parse_bytes(b, sizeof(b)), GW_EBADMSG, "tkl %u", tkl);
    }
}

Test(coap, token_longer_than_message_is_malformed)
{
    cr_assert_eq(PARSE(0x48, 0x01, 0x00, 0x01, 1, 2, 3), GW_EBADMSG);
    cr_assert_eq(PARSE(0x41, 0x01, 0x00, 0x01), GW_EBADMSG);
}

Test(coap, truncated_option_is_malformed)
{
    /* Length 5 with two value bytes. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xb5, 'a', 'b'), GW_EBADMSG);
    /* Extended delta (13) with its byte missing. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xd0), GW_EBADMSG);
    /* Extended delta (14) with one of two bytes. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xe0, 0x01), GW_EBADMSG);
    /* Extended length (13) with its byte missing. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0x1d), GW_EBADMSG);
    /* Extended length (14): 269 + 0 bytes announced, 1 present. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0x1e, 0x00, 0x00, 'a'), GW_EBADMSG);
}

/* RFC 7252 3.1: delta nibble 15 is only the payload marker 0xff; length
 * nibble 15 is reserved. */
Test(coap, nibble_15_outside_payload_marker_is_malformed)
{
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xf1, 'a'), GW_EBADMSG);
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xf0, 'a'), GW_EBADMSG);
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xb1, 'a', 0xf0), GW_EBADMSG);
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0x1f, 'a'), GW_EBADMSG);
    /* The real marker is fine. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xff, 'a'), 0);
}

/* RFC 7252 3: a payload marker followed by a zero-length payload. */
Test(coap, payload_marker_without_payload_is_malformed)
{
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xff), GW_EBADMSG);
    cr_assert_eq(PARSE(0x41, 0x45, 0x00, 0x01, 0x07, 0xb1, 'a', 0xff), GW_EBADMSG);
}

/* RFC 7252 4.1: an Empty message (code 0.00) has no token, options or payload. */
Test(coap, empty_message_with_anything_after_header_is_malformed)
{
    cr_assert_eq(PARSE(0x41, 0x00, 0x00, 0x01, 0x07), GW_EBADMSG);
    cr_assert_eq(PARSE(0x40, 0x00, 0x00, 0x01, 0xff, 'x'), GW_EBADMSG);
    cr_assert_eq(PARSE(0x60, 0x00, 0x00, 0x01, 0xb1, 'a'), GW_EBADMSG);
    cr_assert_eq(PARSE(0x70, 0x00, 0x00, 0x01, 0x00), GW_EBADMSG);
    /* Token length set without token bytes. */
    cr_assert_eq(PARSE(0x44, 0x00, 0x00, 0x01), GW_EBADMSG);
}

/* Option numbers are 16-bit (RFC 7252 3.1, 12.2): a sum of deltas beyond
 * 65535 is malformed, however it is reached. */
Test(coap, option_number_beyond_65535_is_malformed)
{
    /* 65535, then delta 1. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf2, 0x10), GW_EBADMSG);
    /* One 2-byte extended delta of 65536 .. 65804 (0xfef3 .. 0xffff + 269). */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xf3), GW_EBADMSG);
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xe0, 0xfe, 0xff), GW_EBADMSG);
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xe0, 0xff, 0xff), GW_EBADMSG);
    /* After option 11, a delta of 65525 reaches exactly 65536. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xb0, 0xe0, 0xfe, 0xe8), GW_EBADMSG);
    /* ... and 65524 reaches 65535, which is fine. */
    cr_assert_eq(PARSE(0x40, 0x01, 0x00, 0x01, 0xb0, 0xe0, 0xfe, 0xe7), 0);
}

/* S3.6: the version is read by gw_coap_peek; gw_coap_parse refuses others. */
Test(coap, unknown_version_is_not_parsed)
{
    for (unsigned ver = 0; ver < 4; ver++) {
        if (ver == 1)
            continue;
        cr_assert_eq(PARSE((uint8_t)(ver << 6), 0x01, 0x00, 0x01), GW_EBADMSG, "version %u", ver);
    }
}

/* GW_COAP_MAX_OPTS bounds the view; one more option is GW_EFULL. */
Test(coap, too_many_options_is_full)
{
    uint8_t buf[128];
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    for (unsigned i = 0; i < GW_COAP_MAX_OPTS; i++)
        gw_cb_opt(&b, 2000, NULL, 0);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, buf, len, &m), 0);
    cr_assert_eq(m.nopts, GW_COAP_MAX_OPTS);

    gw_cb_opt(&b, 2000, NULL, 0);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    cr_assert_eq(gw_coap_parse(parser, buf, len, &m), GW_EFULL);
}

/* S3.5: messages up to 1152 bytes parse; far larger ones are refused. */
Test(coap, size_bound)
{
    static uint8_t buf[4096], body[4096];
    memset(body, 'b', sizeof(body));
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_PUT, 1, NULL, 0);
    gw_cb_payload(&b, body, GW_COAP_MAX_MSG - 5);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    cr_assert_eq(len, GW_COAP_MAX_MSG);
    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, buf, len, &m), 0);
    cr_assert_eq(m.payload_len, GW_COAP_MAX_MSG - 5);

    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_PUT, 1, NULL, 0);
    gw_cb_payload(&b, body, 2000);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    cr_assert_eq(gw_coap_parse(parser, buf, len, &m), GW_EBADMSG);
}

/* S3.4: never crash on garbage. Every result is 0, GW_EBADMSG or GW_EFULL,
 * and whatever is accepted agrees with libcoap and re-encodes to itself. */
Test(coap, random_garbage_never_crashes)
{
    static uint8_t buf[256], again[512];
    static struct gw_coap_msg m;
    rng_seed(0x5eed5eedu);
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rng_range(0, sizeof(buf));
        rng_fill(buf, len);
        if (len && rng() % 2)
            buf[0] = (uint8_t)(0x40 | (buf[0] & 0x3f)); /* version 1, more often valid */
        if (len > 1 && rng() % 2)
            buf[1] = (uint8_t)rng_range(1, 0xdf);
        int rc = gw_coap_parse(parser, buf, len, &m);
        CHECK(rc == 0 || rc == GW_EBADMSG || rc == GW_EFULL, "iter %d: rc %d", iter, rc);
        if (rc != 0)
            continue;
        accepted++;
        size_t n;
        rc = gw_coap_encode(&m, again, sizeof(again), &n);
        CHECK(rc == 0 && n == len && memcmp(again, buf, len) == 0, "iter %d: re-encode", iter);
    }
    cr_expect_gt(accepted, 100);
}

/* ------------------------------------------------------------------------ */
/* gw_coap_peek (S3.6: the version is checked before parsing). */

Test(coap, peek_reads_fixed_header)
{
    uint8_t ver = 9, type = 9;
    uint16_t mid = 0;
    const uint8_t b[] = { 0x6a, 0x45, 0xbe, 0xef };
    cr_assert(gw_coap_peek(b, 4, &ver, &type, &mid));
    cr_assert_eq(ver, 1);
    cr_assert_eq(type, GW_COAP_ACK);
    cr_assert_eq(mid, 0xbeef);

    const uint8_t v2[] = { 0xb0, 0x01, 0x00, 0x02, 0xff };
    cr_assert(gw_coap_peek(v2, sizeof(v2), &ver, &type, &mid));
    cr_assert_eq(ver, 2);
    cr_assert_eq(type, GW_COAP_RST);
    cr_assert_eq(mid, 2);
}

Test(coap, peek_refuses_short_input)
{
    uint8_t ver, type;
    uint16_t mid;
    const uint8_t b[] = { 0x40, 0x01, 0x00 };
    for (size_t n = 0; n < 4; n++)
        cr_assert_not(gw_coap_peek(b, n, &ver, &type, &mid), "length %zu", n);
}

/* ------------------------------------------------------------------------ */
/* uint options (RFC 7252 3.2). */

Test(coap, uint_encoding_is_minimal_and_round_trips)
{
    static const struct {
        uint32_t v;
        size_t n;
    } cases[] = {
        { 0, 0 },     { 1, 1 },        { 255, 1 },       { 256, 2 },        { 65535, 2 },
        { 65536, 3 }, { 0xffffff, 3 }, { 0x1000000, 4 }, { 0xffffffff, 4 }, { 0x12345678, 4 },
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
        uint8_t out[4];
        size_t n = gw_coap_uint_enc(cases[i].v, out);
        cr_assert_eq(n, cases[i].n, "value %u", cases[i].v);
        cr_assert(n == 0 || out[0] != 0, "value %u: leading zero", cases[i].v);
        uint32_t back = 1;
        cr_assert(gw_coap_uint(out, n, &back));
        cr_assert_eq(back, cases[i].v);
    }
    rng_seed(42);
    for (int i = 0; i < 10000; i++) {
        uint32_t v = rng() >> (rng() % 32), back;
        uint8_t out[4];
        size_t n = gw_coap_uint_enc(v, out);
        CHECK(gw_coap_uint(out, n, &back) && back == v, "value %u", v);
    }
}

Test(coap, uint_decoding_accepts_leading_zeros_refuses_5_bytes)
{
    const uint8_t z[] = { 0x00, 0x00, 0x01, 0x02 };
    uint32_t v;
    cr_assert(gw_coap_uint(z, 4, &v));
    cr_assert_eq(v, 0x102);
    cr_assert(gw_coap_uint(z, 0, &v));
    cr_assert_eq(v, 0);
    const uint8_t five[] = { 1, 2, 3, 4, 5 };
    cr_assert_not(gw_coap_uint(five, 5, &v));
}

Test(coap, uint_option_through_builder)
{
    uint8_t buf[32];
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    gw_cb_opt_uint(&b, GW_OPT_OBSERVE, 0); /* Observe: 0 is zero-length */
    gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, 86400);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    const uint8_t want[] = { 0x40, 0x01, 0x00, 0x01, 0x60, 0x83, 0x01, 0x51, 0x80 };
    expect_bytes(buf, len, want, sizeof(want));
}

/* ------------------------------------------------------------------------ */
/* Block options (RFC 7959 2.2). */

Test(coap, block_round_trips)
{
    static const uint32_t nums[] = { 0, 1, 15, 16, 4095, 4096, 0xfffff };
    for (size_t i = 0; i < GW_ARRAY_LEN(nums); i++)
        for (uint8_t szx = 0; szx <= 6; szx++)
            for (int more = 0; more <= 1; more++) {
                struct gw_block in = { .num = nums[i], .more = more, .szx = szx }, outb;
                uint8_t raw[4];
                size_t n = gw_block_encode(&in, raw);
                cr_assert_leq(n, 3);
                struct gw_coap_opt o = { .num = GW_OPT_BLOCK2, .len = (uint16_t)n, .val = raw };
                cr_assert(gw_block_decode(&o, &outb), "num %u szx %u", nums[i], szx);
                cr_assert_eq(outb.num, in.num);
                cr_assert_eq(outb.more, in.more);
                cr_assert_eq(outb.szx, in.szx);
            }
}

Test(coap, block_known_bytes)
{
    /* NUM 2, M 1, SZX 6 (1024): 0x2e. */
    struct gw_block b = { .num = 2, .more = true, .szx = 6 };
    uint8_t raw[4];
    cr_assert_eq(gw_block_encode(&b, raw), 1);
    cr_assert_eq(raw[0], 0x2e);
    /* An empty Block option is NUM 0, M 0, SZX 0 (16 bytes). */
    struct gw_coap_opt empty = { .num = GW_OPT_BLOCK1, .len = 0, .val = NULL };
    struct gw_block d;
    cr_assert(gw_block_decode(&empty, &d));
    cr_assert_eq(d.num, 0);
    cr_assert_not(d.more);
    cr_assert_eq(d.szx, 0);
}

Test(coap, block_szx_7_and_long_values_are_invalid)
{
    const uint8_t szx7[] = { 0x17 };
    struct gw_coap_opt o = { .num = GW_OPT_BLOCK2, .len = 1, .val = szx7 };
    struct gw_block d;
    cr_assert_not(gw_block_decode(&o, &d));
    const uint8_t four[] = { 0, 0, 0, 0x16 };
    o.val = four, o.len = 4;
    cr_assert_not(gw_block_decode(&o, &d));
    cr_assert_not(gw_block_decode(NULL, &d));
}

/* ------------------------------------------------------------------------ */
/* gw_coap_simple_reply (S3.1: piggybacked answers; S9: diagnostic payload). */

Test(coap, simple_reply_to_con_is_ack_with_mid_and_token)
{
    struct gw_coap_msg req = { .type = GW_COAP_CON, .code = GW_COAP_GET, .mid = 0xa1b2, .tkl = 8 };
    memcpy(req.token, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    uint8_t buf[128];
    size_t len;
    cr_assert_eq(
        gw_coap_simple_reply(&req, GW_COAP_UNAUTHORIZED, "no session", buf, sizeof(buf), &len), 0);
    cr_assert(coap_pdu_parse(COAP_PROTO_UDP, buf, len, oracle));
    cr_assert_eq(coap_pdu_get_type(oracle), COAP_MESSAGE_ACK);
    cr_assert_eq(coap_pdu_get_code(oracle), GW_COAP_UNAUTHORIZED);
    cr_assert_eq(coap_pdu_get_mid(oracle), 0xa1b2);
    coap_bin_const_t tok = coap_pdu_get_token(oracle);
    cr_assert_eq(tok.length, 8);
    cr_assert_arr_eq(tok.s, req.token, 8);
    size_t dl;
    const uint8_t *data;
    cr_assert(coap_get_data(oracle, &dl, &data));
    cr_assert_eq(dl, strlen("no session"));
    cr_assert_arr_eq(data, "no session", dl);

    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(parser, buf, len, &m), 0);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.nopts, 0);
}

Test(coap, simple_reply_to_non_is_non)
{
    struct gw_coap_msg req = { .type = GW_COAP_NON, .code = GW_COAP_GET, .mid = 5, .tkl = 2 };
    req.token[0] = 0xaa, req.token[1] = 0xbb;
    uint8_t buf[64];
    size_t len;
    cr_assert_eq(gw_coap_simple_reply(&req, GW_COAP_NOT_FOUND, NULL, buf, sizeof(buf), &len), 0);
    const uint8_t want[] = { 0x52, 0x84, 0x00, 0x05, 0xaa, 0xbb };
    expect_bytes(buf, len, want, sizeof(want));
    /* An empty diagnostic is no payload (no bare marker). */
    cr_assert_eq(gw_coap_simple_reply(&req, GW_COAP_NOT_FOUND, "", buf, sizeof(buf), &len), 0);
    expect_bytes(buf, len, want, sizeof(want));
}

Test(coap, simple_reply_too_small_buffer)
{
    struct gw_coap_msg req = { .type = GW_COAP_CON, .code = GW_COAP_GET, .mid = 5, .tkl = 4 };
    uint8_t buf[16];
    size_t len;
    cr_assert_eq(gw_coap_simple_reply(&req, GW_COAP_BAD_REQUEST, "abcdefgh", buf, 16, &len),
                 GW_ETOOBIG);
    cr_assert_eq(gw_coap_simple_reply(&req, GW_COAP_BAD_REQUEST, "abcdefg", buf, 16, &len), 0);
    cr_assert_eq(len, 16);
}

/* ------------------------------------------------------------------------ */
/* Builder errors are sticky and reported by gw_cb_finish. */

Test(coap, builder_options_out_of_order_is_badmsg)
{
    uint8_t buf[64];
    size_t len = 77;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "a");
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "b");  /* repeating is fine */
    gw_cb_opt_str(&b, GW_OPT_URI_HOST, "h");  /* 3 after 11: out of order */
    gw_cb_opt_str(&b, GW_OPT_URI_QUERY, "q"); /* ignored: the error sticks */
    gw_cb_payload(&b, "p", 1);
    cr_assert_eq(gw_cb_finish(&b, &len), GW_EBADMSG);
    cr_assert_eq(len, 77, "*len untouched on error");
}

Test(coap, builder_overflow_is_toobig)
{
    uint8_t buf[64];
    size_t len;
    struct gw_cb b;
    /* The header alone does not fit. */
    gw_cb_init(&b, buf, 3, GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    cr_assert_eq(gw_cb_finish(&b, &len), GW_ETOOBIG);
    /* Header plus token. */
    gw_cb_init(&b, buf, 11, GW_COAP_CON, GW_COAP_GET, 1, (const uint8_t *)"12345678", 8);
    cr_assert_eq(gw_cb_finish(&b, &len), GW_ETOOBIG);
    gw_cb_init(&b, buf, 12, GW_COAP_CON, GW_COAP_GET, 1, (const uint8_t *)"12345678", 8);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    cr_assert_eq(len, 12);
    /* An option: 1 header + 1 extended length + 13 bytes = 15; 4 + 15 = 19. */
    gw_cb_init(&b, buf, 18, GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    gw_cb_opt(&b, 2, "abcdefghijklm", 13);
    cr_assert_eq(gw_cb_finish(&b, &len), GW_ETOOBIG);
    gw_cb_init(&b, buf, 19, GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    gw_cb_opt(&b, 2, "abcdefghijklm", 13);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    cr_assert_eq(len, 19);
    /* The payload marker counts. */
    gw_cb_init(&b, buf, 8, GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    gw_cb_payload(&b, "abcd", 4);
    cr_assert_eq(gw_cb_finish(&b, &len), GW_ETOOBIG);
    /* After an overflow nothing more is written. */
    gw_cb_init(&b, buf, 6, GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    gw_cb_opt(&b, 2, "abcdefghijklm", 13);
    gw_cb_opt(&b, 3, NULL, 0);
    cr_assert_eq(b.len, 4);
    cr_assert_eq(gw_cb_finish(&b, &len), GW_ETOOBIG);
}

Test(coap, builder_refuses_token_over_8)
{
    uint8_t buf[64];
    size_t len;
    struct gw_cb b;
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 1, (const uint8_t *)"123456789", 9);
    cr_assert_eq(gw_cb_finish(&b, &len), GW_EBADMSG);
}

Test(coap, builder_refuses_option_longer_than_encodable)
{
    static uint8_t buf[70000], val[65805];
    size_t len;
    struct gw_cb b;
    /* 65535 + 269 is the longest length the 2-byte extension can carry. */
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    gw_cb_opt(&b, 2000, val, 65804);
    cr_assert_eq(gw_cb_finish(&b, &len), 0);
    cr_assert_eq(len, 4 + 1 + 2 + 2 + 65804);
    cr_assert_eq(buf[7], 0xff);
    cr_assert_eq(buf[8], 0xff);
    gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 1, NULL, 0);
    gw_cb_opt(&b, 2000, val, 65805);
    cr_assert_eq(gw_cb_finish(&b, &len), GW_EBADMSG);
}

/* gw_coap_encode sorts options stably by number. */
Test(coap, encode_sorts_options_stably)
{
    struct gw_coap_msg m = { .type = GW_COAP_CON, .code = GW_COAP_GET, .mid = 9 };
    m.nopts = 4;
    m.opts[0] = (struct gw_coap_opt){ GW_OPT_URI_PATH, 1, (const uint8_t *)"a" };
    m.opts[1] = (struct gw_coap_opt){ GW_OPT_URI_HOST, 1, (const uint8_t *)"h" };
    m.opts[2] = (struct gw_coap_opt){ GW_OPT_URI_PATH, 1, (const uint8_t *)"b" };
    m.opts[3] = (struct gw_coap_opt){ GW_OPT_URI_QUERY, 1, (const uint8_t *)"q" };
    uint8_t buf[64];
    size_t len;
    cr_assert_eq(gw_coap_encode(&m, buf, sizeof(buf), &len), 0);
    const uint8_t want[] = { 0x40, 0x01, 0x00, 0x09, 0x31, 'h', 0x81, 'a', 0x01, 'b', 0x41, 'q' };
    expect_bytes(buf, len, want, sizeof(want));
}

/* ------------------------------------------------------------------------ */
/* Small helpers. */

Test(coap, code_str_and_option_classes)
{
    char s[8];
    cr_assert_str_eq(gw_coap_code_str(GW_COAP_CONTENT, s), "2.05");
    cr_assert_str_eq(gw_coap_code_str(GW_COAP_NOT_FOUND, s), "4.04");
    cr_assert_str_eq(gw_coap_code_str(GW_COAP_PROXY_NOT_SUPPORTED, s), "5.05");
    cr_assert_str_eq(gw_coap_code_str(GW_COAP_GET, s), "0.01");
    /* RFC 7252 5.4.6: Uri-Path critical+unsafe; Size1 NoCacheKey; ETag elective. */
    cr_assert(gw_opt_critical(GW_OPT_URI_PATH));
    cr_assert(gw_opt_unsafe(GW_OPT_URI_PATH));
    cr_assert_not(gw_opt_critical(GW_OPT_ETAG));
    cr_assert(gw_opt_nocachekey(GW_OPT_SIZE1));
    cr_assert_not(gw_opt_nocachekey(GW_OPT_ETAG));
}

/* The gateway understands every option it names and no other: an unknown
 * unsafe option makes a request unproxyable (RFC 7252 5.7.1, S4.3). */
Test(coap, opt_known_is_the_named_options)
{
    const uint16_t named[] = { 1,  3,  4,  5,  6,  7,  8,  11, 12, 14, 15,
                               16, 17, 20, 23, 27, 28, 35, 39, 60, 258 };
    unsigned hits = 0;
    for (uint32_t n = 0; n <= 0xffff; n++) {
        bool want = false;
        for (size_t i = 0; i < sizeof(named) / sizeof(named[0]); i++)
            want |= named[i] == n;
        cr_assert_eq(gw_opt_known((uint16_t)n), want, "option %u", n);
        hits += want;
    }
    cr_assert_eq(hits, 21);
}
