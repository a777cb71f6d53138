/* SPDX-License-Identifier: MIT */
/* test_route.c - proxy targets and the device request (SPEC S4.1-S4.3, S4.7,
 * S4.8; RFC 7252 5.7, 6.4, 6.5). Requests are encoded and parsed back with
 * gw_coap_parse (libcoap's parser) so the code sees real wire views. */
#include "fe_route.h"
#include "gw_addr.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <string.h>

#define E(expr) cr_assert_eq((expr), 0, "%s", #expr)

enum { K_STR, K_UINT, K_BYTES };
struct optv {
    uint16_t num;
    int kind;
    const char *s;
    uint32_t u;
    size_t len;
};
#define OS(n, str)                                                                                 \
    {                                                                                              \
        (n), K_STR, (str), 0, 0                                                                    \
    }
#define OU(n, v)                                                                                   \
    {                                                                                              \
        (n), K_UINT, NULL, (v), 0                                                                  \
    }
#define OB(n, p, l)                                                                                \
    {                                                                                              \
        (n), K_BYTES, (const char *)(p), 0, (l)                                                    \
    }

/* parser holds the message fed in; out_parser parses what the code built
 * from it while that message is still in use. */
static struct gw_coap_parser *parser, *out_parser;
static uint8_t wire[GW_COAP_MAX_MSG];

static void setup(void)
{
    E(gw_coap_parser_new(&parser));
    E(gw_coap_parser_new(&out_parser));
}

static void teardown(void)
{
    gw_coap_parser_free(parser);
    gw_coap_parser_free(out_parser);
}

TestSuite(route, .init = setup, .fini = teardown);

/* Encodes a request and parses it back into *m (valid until the next mk). */
static void mk(struct gw_coap_msg *m, uint8_t type, uint8_t code, const struct optv *o, size_t n,
               const char *payload)
{
    struct gw_coap_msg src;
    memset(&src, 0, sizeof(src));
    src.type = type;
    src.code = code;
    src.mid = 0x4242;
    src.tkl = 3;
    memcpy(src.token, "tok", 3);
    uint8_t uv[GW_COAP_MAX_OPTS][4];
    cr_assert_leq(n, GW_COAP_MAX_OPTS);
    for (size_t i = 0; i < n; i++) {
        struct gw_coap_opt *d = &src.opts[src.nopts++];
        d->num = o[i].num;
        if (o[i].kind == K_UINT) {
            d->len = (uint16_t)gw_coap_uint_enc(o[i].u, uv[i]);
            d->val = uv[i];
        } else if (o[i].kind == K_STR) {
            d->len = (uint16_t)strlen(o[i].s);
            d->val = (const uint8_t *)o[i].s;
        } else {
            d->len = (uint16_t)o[i].len;
            d->val = (const uint8_t *)o[i].s;
        }
    }
    if (payload) {
        src.payload = (const uint8_t *)payload;
        src.payload_len = strlen(payload);
    }
    size_t len;
    E(gw_coap_encode(&src, wire, sizeof(wire), &len));
    E(gw_coap_parse(parser, wire, len, m));
}

static void mk_uri(struct gw_coap_msg *m, const char *uri)
{
    struct optv o[] = { OS(GW_OPT_PROXY_URI, uri) };
    mk(m, GW_COAP_CON, GW_COAP_GET, o, 1, NULL);
}

static void assert_part(const uint8_t *p, uint16_t len, const char *want)
{
    cr_assert_eq(len, strlen(want), "length %u, want '%s'", len, want);
    cr_assert(memcmp(p, want, len) == 0, "want '%s', got '%.*s'", want, (int)len, (const char *)p);
}

/* Parses `uri` as Proxy-Uri and expects the given verdict code. */
static void expect_uri_verdict(const char *uri, uint8_t code)
{
    struct gw_coap_msg m;
    struct fe_target t;
    struct fe_verdict v;
    mk_uri(&m, uri);
    cr_assert_eq(fe_route_target(&m, &t, &v), GW_EBADMSG, "'%s' must be refused", uri);
    cr_assert_eq(v.code, code, "'%s': code %d.%02d, want %d.%02d", uri, v.code >> 5, v.code & 31,
                 code >> 5, code & 31);
    cr_assert_not_null(v.diag, "'%s' needs a diagnostic", uri);
    cr_assert_gt(strlen(v.diag), 0);
}

static void target_ok(const char *uri, struct gw_coap_msg *m, struct fe_target *t)
{
    struct fe_verdict v;
    mk_uri(m, uri);
    int rc = fe_route_target(m, t, &v);
    cr_assert_eq(rc, 0, "'%s' refused: %s", uri, v.diag ? v.diag : "?");
    cr_assert_eq(v.code, 0);
}

/* ---- Proxy-Uri (S4.1, RFC 7252 6.4) ---- */

Test(route, is_proxy)
{
    struct gw_coap_msg m;
    mk_uri(&m, "coap://0011223344556677/x");
    cr_assert(fe_route_is_proxy(&m));
    struct optv ps[] = { OS(GW_OPT_URI_HOST, "0011223344556677"), OS(GW_OPT_PROXY_SCHEME, "coap") };
    mk(&m, GW_COAP_CON, GW_COAP_GET, ps, 2, NULL);
    cr_assert(fe_route_is_proxy(&m));
    struct optv local[] = { OS(GW_OPT_URI_HOST, "0011223344556677"), OS(GW_OPT_URI_PATH, "echo") };
    mk(&m, GW_COAP_CON, GW_COAP_GET, local, 2, NULL);
    cr_assert_not(fe_route_is_proxy(&m), "Uri-Host alone is not a proxy request");
}

Test(route, proxy_uri_full)
{
    struct gw_coap_msg m;
    struct fe_target t;
    target_ok("coap://0011223344AABBCC:4849/sensors/temp%20C?unit=K&x", &m, &t);
    cr_assert_str_eq(t.scheme, "coap");
    cr_assert_str_eq(t.host, "0011223344AABBCC");
    cr_assert_eq(t.port, 4849);
    cr_assert_eq(t.nseg, 2);
    assert_part(t.seg[0].p, t.seg[0].len, "sensors");
    assert_part(t.seg[1].p, t.seg[1].len, "temp C");
    cr_assert_eq(t.nquery, 2);
    assert_part(t.query[0].p, t.query[0].len, "unit=K");
    assert_part(t.query[1].p, t.query[1].len, "x");
}

/* S4.2: the MAC ID host is case-insensitive; the scheme too (RFC 3986 3.1). */
Test(route, host_and_scheme_case)
{
    struct gw_coap_msg m;
    struct fe_target t;
    uint8_t mac1[GW_MAC_LEN], mac2[GW_MAC_LEN];
    target_ok("CoAP://00112233445566aa/x", &m, &t);
    cr_assert_str_eq(t.scheme, "coap");
    E(gw_mac_parse(t.host, strlen(t.host), mac1));
    target_ok("coap://00112233445566AA/x", &m, &t);
    E(gw_mac_parse(t.host, strlen(t.host), mac2));
    cr_assert_arr_eq(mac1, mac2, GW_MAC_LEN);
}

Test(route, port_forms)
{
    struct gw_coap_msg m;
    struct fe_target t;
    target_ok("coap://0011223344556677/x", &m, &t);
    cr_assert_eq(t.port, -1, "no port given");
    target_ok("coap://0011223344556677:5683/x", &m, &t);
    cr_assert_eq(t.port, 5683);
    target_ok("coap://0011223344556677:/x", &m, &t);
    cr_assert_eq(t.port, -1, "an empty port is the default (RFC 3986 3.2.3)");
    target_ok("coap://0011223344556677:65535", &m, &t);
    cr_assert_eq(t.port, 65535);
    target_ok("coap://[2001:db8::1]:4849/x", &m, &t);
    cr_assert_str_eq(t.host, "2001:db8::1");
    cr_assert_eq(t.port, 4849);
    expect_uri_verdict("coap://0011223344556677:65536/x", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677:99999999999999999999/x", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677:12a/x", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677:-1/x", GW_COAP_BAD_REQUEST);
}

Test(route, percent_encoding)
{
    struct gw_coap_msg m;
    struct fe_target t;
    target_ok("coap://0011223344556677/a%2Fb/%7e%41?k%3Dv=%26", &m, &t);
    cr_assert_eq(t.nseg, 2, "an encoded '/' stays inside its segment");
    assert_part(t.seg[0].p, t.seg[0].len, "a/b");
    assert_part(t.seg[1].p, t.seg[1].len, "~A");
    cr_assert_eq(t.nquery, 1, "an encoded '&' does not split the query");
    assert_part(t.query[0].p, t.query[0].len, "k=v=&");
    expect_uri_verdict("coap://0011223344556677/a%2", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677/a%", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677/a%zz", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677/a?q=%g1", GW_COAP_BAD_REQUEST);
}

/* RFC 7252 6.4 step 8: an empty path or "/" gives no Uri-Path. */
Test(route, empty_path)
{
    struct gw_coap_msg m;
    struct fe_target t;
    target_ok("coap://0011223344556677", &m, &t);
    cr_assert_eq(t.nseg, 0);
    cr_assert_eq(t.nquery, 0);
    target_ok("coap://0011223344556677/", &m, &t);
    cr_assert_eq(t.nseg, 0);
    target_ok("coap://0011223344556677?q", &m, &t);
    cr_assert_eq(t.nseg, 0);
    cr_assert_eq(t.nquery, 1);
    assert_part(t.query[0].p, t.query[0].len, "q");
    target_ok("coap://0011223344556677/?q", &m, &t);
    cr_assert_eq(t.nseg, 0);
    cr_assert_eq(t.nquery, 1);
}

/* RFC 7252 6.4: "/a/" is Uri-Path "a" then an empty Uri-Path. */
Test(route, trailing_slash)
{
    struct gw_coap_msg m;
    struct fe_target t;
    target_ok("coap://0011223344556677/a/", &m, &t);
    cr_assert_eq(t.nseg, 2);
    assert_part(t.seg[0].p, t.seg[0].len, "a");
    cr_assert_eq(t.seg[1].len, 0);
}

/* S4.1: only coap is proxied. */
Test(route, other_schemes_are_5_05)
{
    expect_uri_verdict("http://0011223344556677/x", GW_COAP_PROXY_NOT_SUPPORTED);
    expect_uri_verdict("https://example.com/", GW_COAP_PROXY_NOT_SUPPORTED);
    expect_uri_verdict("coaps://0011223344556677/x", GW_COAP_PROXY_NOT_SUPPORTED);
    expect_uri_verdict("coap+tcp://0011223344556677/x", GW_COAP_PROXY_NOT_SUPPORTED);
}

/* S4.1: Proxy-Uri together with any Uri-* option is 4.02. */
Test(route, proxy_uri_with_uri_options_is_4_02)
{
    static const uint16_t uri_opts[] = { GW_OPT_URI_HOST, GW_OPT_URI_PORT, GW_OPT_URI_PATH,
                                         GW_OPT_URI_QUERY };
    for (size_t i = 0; i < GW_ARRAY_LEN(uri_opts); i++) {
        struct optv o[2] = { uri_opts[i] == GW_OPT_URI_PORT ? (struct optv)OU(GW_OPT_URI_PORT, 4849)
                                                            : (struct optv)OS(uri_opts[i], "x"),
                             OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
        struct gw_coap_msg m;
        struct fe_target t;
        struct fe_verdict v;
        mk(&m, GW_COAP_CON, GW_COAP_GET, o, 2, NULL);
        cr_assert_eq(fe_route_target(&m, &t, &v), GW_EBADMSG, "option %u", uri_opts[i]);
        cr_assert_eq(v.code, GW_COAP_BAD_OPTION, "option %u", uri_opts[i]);
        cr_assert_not_null(v.diag);
    }
}

/* '.' and '..' segments are refused (no path games through the proxy). */
Test(route, dot_segments_are_4_00)
{
    expect_uri_verdict("coap://0011223344556677/./x", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677/a/../b", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677/a/..", GW_COAP_BAD_REQUEST);
    expect_uri_verdict("coap://0011223344556677/%2e%2E/x", GW_COAP_BAD_REQUEST);
    /* Dots inside a segment are fine. */
    struct gw_coap_msg m;
    struct fe_target t;
    target_ok("coap://0011223344556677/.well-known/..x/a.", &m, &t);
    cr_assert_eq(t.nseg, 3);
}

Test(route, bad_uris_are_4_00)
{
    static const char *bad[] = {
        "0011223344556677/x",             /* not absolute */
        ":/x",                            /* empty scheme */
        "co ap://0011223344556677/x",     /* bad scheme character */
        "coap:/0011223344556677/x",       /* no authority */
        "coap:0011223344556677",          /* no authority */
        "coap://",                        /* no host */
        "coap:///x",                      /* empty host */
        "coap://:5683/x",                 /* empty host */
        "coap://0011223344556677/x#frag", /* fragment (RFC 7252 6.4 step 4) */
        "coap://user@0011223344556677/x", /* userinfo */
        "coap://[2001:db8::1/x",          /* unterminated IPv6 literal */
        "coap://[2001:db8::1]x/x",        /* junk after the literal */
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++)
        expect_uri_verdict(bad[i], GW_COAP_BAD_REQUEST);
    /* (An empty Proxy-Uri never gets here: libcoap's parser refuses it, as
     * RFC 7252 5.10 gives the option a length of 1..1034.) */
}

/* Proxy-Uri is not repeatable: two of them cannot be proxied. */
Test(route, repeated_proxy_uri_is_4_02)
{
    struct optv o[] = { OS(GW_OPT_PROXY_URI, "coap://0011223344556677/a"),
                        OS(GW_OPT_PROXY_URI, "coap://0011223344556677/b") };
    struct gw_coap_msg m;
    struct fe_target t;
    struct fe_verdict v;
    mk(&m, GW_COAP_CON, GW_COAP_GET, o, 2, NULL);
    cr_assert_eq(fe_route_target(&m, &t, &v), GW_EBADMSG);
    cr_assert_eq(v.code, GW_COAP_BAD_OPTION);
}

/* ---- Proxy-Scheme with Uri-* (S4.1, RFC 7252 6.5) ---- */

Test(route, proxy_scheme_form)
{
    struct optv o[] = { OS(GW_OPT_URI_HOST, "00112233445566AA"),
                        OU(GW_OPT_URI_PORT, 4849),
                        OS(GW_OPT_URI_PATH, "a"),
                        OS(GW_OPT_URI_PATH, "b c"),
                        OS(GW_OPT_URI_QUERY, "q=1"),
                        OS(GW_OPT_URI_QUERY, "r"),
                        OS(GW_OPT_PROXY_SCHEME, "CoAP") };
    struct gw_coap_msg m;
    struct fe_target t;
    struct fe_verdict v;
    mk(&m, GW_COAP_CON, GW_COAP_GET, o, GW_ARRAY_LEN(o), NULL);
    E(fe_route_target(&m, &t, &v));
    cr_assert_str_eq(t.scheme, "coap");
    cr_assert_str_eq(t.host, "00112233445566AA");
    cr_assert_eq(t.port, 4849);
    cr_assert_eq(t.nseg, 2);
    assert_part(t.seg[0].p, t.seg[0].len, "a");
    assert_part(t.seg[1].p, t.seg[1].len, "b c");
    cr_assert_eq(t.nquery, 2);
    assert_part(t.query[0].p, t.query[0].len, "q=1");
    assert_part(t.query[1].p, t.query[1].len, "r");
}

Test(route, proxy_scheme_without_port)
{
    struct optv o[] = { OS(GW_OPT_URI_HOST, "00112233445566AA"), OS(GW_OPT_PROXY_SCHEME, "coap") };
    struct gw_coap_msg m;
    struct fe_target t;
    struct fe_verdict v;
    mk(&m, GW_COAP_CON, GW_COAP_GET, o, 2, NULL);
    E(fe_route_target(&m, &t, &v));
    cr_assert_eq(t.port, -1);
    cr_assert_eq(t.nseg, 0);
}

Test(route, proxy_scheme_errors)
{
    struct gw_coap_msg m;
    struct fe_target t;
    struct fe_verdict v;
    struct optv http[] = { OS(GW_OPT_URI_HOST, "00112233445566AA"),
                           OS(GW_OPT_PROXY_SCHEME, "http") };
    mk(&m, GW_COAP_CON, GW_COAP_GET, http, 2, NULL);
    cr_assert_eq(fe_route_target(&m, &t, &v), GW_EBADMSG);
    cr_assert_eq(v.code, GW_COAP_PROXY_NOT_SUPPORTED);

    struct optv dots[] = { OS(GW_OPT_URI_HOST, "00112233445566AA"), OS(GW_OPT_URI_PATH, ".."),
                           OS(GW_OPT_PROXY_SCHEME, "coap") };
    mk(&m, GW_COAP_CON, GW_COAP_GET, dots, 3, NULL);
    cr_assert_eq(fe_route_target(&m, &t, &v), GW_EBADMSG);
    cr_assert_eq(v.code, GW_COAP_BAD_REQUEST);
}

/* ---- option checks (S4.3, S4.7) ---- */

static int check(const struct optv *o, size_t n, int *szx, struct fe_verdict *v)
{
    struct gw_coap_msg m;
    mk(&m, GW_COAP_CON, GW_COAP_GET, o, n, NULL);
    return fe_route_check_options(&m, szx, v);
}

/* S4.3: unknown unsafe options cannot be proxied (RFC 7252 5.7.1). */
Test(route, unknown_unsafe_option_is_4_02)
{
    static const uint16_t unsafe[] = { 2050 /* elective */, 2051 /* critical */, 65002 };
    for (size_t i = 0; i < GW_ARRAY_LEN(unsafe); i++) {
        cr_assert(gw_opt_unsafe(unsafe[i]));
        struct optv o[] = { OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x"), OS(unsafe[i], "z") };
        int szx;
        struct fe_verdict v;
        cr_assert_eq(check(o, 2, &szx, &v), GW_EBADMSG, "option %u", unsafe[i]);
        cr_assert_eq(v.code, GW_COAP_BAD_OPTION);
        cr_assert_not_null(v.diag);
    }
}

/* S4.6/RFC 7252 5.7.1: unknown safe-to-forward options pass, critical or not. */
Test(route, unknown_safe_option_passes)
{
    static const uint16_t safe[] = { 2048, 2049, 65000 };
    for (size_t i = 0; i < GW_ARRAY_LEN(safe); i++) {
        cr_assert_not(gw_opt_unsafe(safe[i]));
        struct optv o[] = { OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x"), OS(safe[i], "z") };
        int szx = 99;
        struct fe_verdict v;
        cr_assert_eq(check(o, 2, &szx, &v), 0, "option %u", safe[i]);
        cr_assert_eq(szx, -1, "no Block2, no size preference");
    }
}

Test(route, known_options_pass)
{
    struct optv o[] = {
        OS(GW_OPT_IF_MATCH, "e"),  OS(GW_OPT_ETAG, "e1"),
        OU(GW_OPT_OBSERVE, 0),     OU(GW_OPT_CONTENT_FORMAT, 50),
        OU(GW_OPT_ACCEPT, 50),     OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x"),
        OU(GW_OPT_NO_RESPONSE, 26)
    };
    int szx;
    struct fe_verdict v;
    E(check(o, GW_ARRAY_LEN(o), &szx, &v));
}

/* S4.7: Block1 on a proxied request is 4.02 (the mesh has no block-wise transfer). */
Test(route, block1_is_4_02)
{
    struct optv o[] = { OU(GW_OPT_BLOCK1, (0 << 4) | (1 << 3) | 2),
                        OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
    int szx;
    struct fe_verdict v;
    cr_assert_eq(check(o, 2, &szx, &v), GW_EBADMSG);
    cr_assert_eq(v.code, GW_COAP_BAD_OPTION);
    cr_assert_not_null(v.diag);
}

/* S4.7: Block2 NUM 0 is a size preference. */
Test(route, block2_num0_gives_szx)
{
    for (uint32_t s = 0; s <= 6; s++) {
        struct optv o[] = { OU(GW_OPT_BLOCK2, s),
                            OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
        int szx = -1;
        struct fe_verdict v;
        E(check(o, 2, &szx, &v));
        cr_assert_eq(szx, (int)s);
    }
}

/* S4.7: any other Block2 gets a clear 4.02, never silence. */
Test(route, block2_num_gt0_is_4_02)
{
    static const uint32_t vals[] = { (1 << 4) | 2, (5 << 4) | 6, 7 /* szx 7 is reserved */ };
    for (size_t i = 0; i < GW_ARRAY_LEN(vals); i++) {
        struct optv o[] = { OU(GW_OPT_BLOCK2, vals[i]),
                            OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
        int szx;
        struct fe_verdict v;
        cr_assert_eq(check(o, 2, &szx, &v), GW_EBADMSG, "Block2 value %u", vals[i]);
        cr_assert_eq(v.code, GW_COAP_BAD_OPTION);
        cr_assert_not_null(v.diag);
    }
}

/* ---- the device request (S4.3) ---- */

static bool has_opt(const struct gw_coap_msg *m, uint16_t num)
{
    return gw_coap_opt_find(m, num) != NULL;
}

Test(route, build_device_request)
{
    static const uint8_t etag[] = { 0xde, 0xad };
    struct optv o[] = { OB(GW_OPT_ETAG, etag, 2),
                        OU(GW_OPT_CONTENT_FORMAT, 50),
                        OU(GW_OPT_ACCEPT, 60),
                        OU(GW_OPT_BLOCK2, 2),
                        OS(GW_OPT_PROXY_URI, "coap://0011223344556677:4849/a/b%20c?x=1&y"),
                        OU(GW_OPT_NO_RESPONSE, 26),
                        OS(2048, "zz") };
    struct gw_coap_msg m;
    mk(&m, GW_COAP_NON, GW_COAP_PUT, o, GW_ARRAY_LEN(o), "hello");
    struct fe_target t;
    struct fe_verdict v;
    E(fe_route_target(&m, &t, &v));
    uint8_t out[GW_COAP_MAX_MSG];
    size_t len;
    E(fe_route_build(&m, &t, out, sizeof(out), &len));

    struct gw_coap_msg d;
    E(gw_coap_parse(out_parser, out, len, &d));
    cr_assert_eq(d.type, GW_COAP_CON, "the mesh leg is CON (S4.4)");
    cr_assert_eq(d.code, GW_COAP_PUT);
    cr_assert_eq(d.mid, 0);
    cr_assert_eq(d.tkl, 8);
    static const uint8_t zero[8] = { 0 };
    cr_assert_arr_eq(d.token, zero, 8, "placeholder token, set by the scheduler");
    /* Path and query from the target, in order. */
    cr_assert_eq(gw_coap_opt_count(&d, GW_OPT_URI_PATH), 2);
    cr_assert_eq(gw_coap_opt_count(&d, GW_OPT_URI_QUERY), 2);
    unsigned p = 0, q = 0;
    for (unsigned i = 0; i < d.nopts; i++) {
        const struct gw_coap_opt *x = &d.opts[i];
        if (x->num == GW_OPT_URI_PATH)
            assert_part(x->val, x->len, p++ == 0 ? "a" : "b c");
        else if (x->num == GW_OPT_URI_QUERY)
            assert_part(x->val, x->len, q++ == 0 ? "x=1" : "y");
    }
    /* What must not reach the device. */
    cr_assert_not(has_opt(&d, GW_OPT_PROXY_URI));
    cr_assert_not(has_opt(&d, GW_OPT_PROXY_SCHEME));
    cr_assert_not(has_opt(&d, GW_OPT_URI_HOST));
    cr_assert_not(has_opt(&d, GW_OPT_URI_PORT));
    cr_assert_not(has_opt(&d, GW_OPT_BLOCK2), "the mesh leg never uses block-wise transfer (S4.7)");
    cr_assert_not(has_opt(&d, GW_OPT_BLOCK1));
    cr_assert_not(has_opt(&d, GW_OPT_NO_RESPONSE), "No-Response is the gateway's business (S4.9)");
    /* What must. */
    const struct gw_coap_opt *x = gw_coap_opt_find(&d, GW_OPT_ETAG);
    cr_assert_not_null(x);
    cr_assert_eq(x->len, 2);
    cr_assert_arr_eq(x->val, etag, 2);
    uint32_t u;
    x = gw_coap_opt_find(&d, GW_OPT_CONTENT_FORMAT);
    cr_assert(x && gw_coap_uint(x->val, x->len, &u) && u == 50);
    x = gw_coap_opt_find(&d, GW_OPT_ACCEPT);
    cr_assert(x && gw_coap_uint(x->val, x->len, &u) && u == 60);
    x = gw_coap_opt_find(&d, 2048);
    cr_assert_not_null(x, "unknown safe-to-forward options are forwarded (S4.6)");
    assert_part(x->val, x->len, "zz");
    cr_assert_eq(d.payload_len, 5);
    cr_assert(memcmp(d.payload, "hello", 5) == 0);
}

/* The Proxy-Scheme form: Uri-Host and Uri-Port go, path and query stay. */
Test(route, build_from_proxy_scheme)
{
    struct optv o[] = { OS(GW_OPT_URI_HOST, "00112233445566AA"),
                        OU(GW_OPT_OBSERVE, 0),
                        OU(GW_OPT_URI_PORT, 4849),
                        OS(GW_OPT_URI_PATH, "s"),
                        OS(GW_OPT_URI_PATH, "t"),
                        OS(GW_OPT_URI_QUERY, "k"),
                        OS(GW_OPT_PROXY_SCHEME, "coap") };
    struct gw_coap_msg m;
    mk(&m, GW_COAP_CON, GW_COAP_GET, o, GW_ARRAY_LEN(o), NULL);
    struct fe_target t;
    struct fe_verdict v;
    E(fe_route_target(&m, &t, &v));
    uint8_t out[GW_COAP_MAX_MSG];
    size_t len;
    E(fe_route_build(&m, &t, out, sizeof(out), &len));
    struct gw_coap_msg d;
    E(gw_coap_parse(out_parser, out, len, &d));
    cr_assert_not(has_opt(&d, GW_OPT_URI_HOST));
    cr_assert_not(has_opt(&d, GW_OPT_URI_PORT));
    cr_assert_not(has_opt(&d, GW_OPT_PROXY_SCHEME));
    cr_assert(has_opt(&d, GW_OPT_OBSERVE), "Observe reaches the device (S6)");
    cr_assert_eq(gw_coap_opt_count(&d, GW_OPT_URI_PATH), 2, "path segments are not duplicated");
    cr_assert_eq(gw_coap_opt_count(&d, GW_OPT_URI_QUERY), 1);
    unsigned p = 0;
    for (unsigned i = 0; i < d.nopts; i++)
        if (d.opts[i].num == GW_OPT_URI_PATH)
            assert_part(d.opts[i].val, d.opts[i].len, p++ == 0 ? "s" : "t");
    cr_assert_eq(d.payload_len, 0);
}

/* S3.5: a request that does not fit is GW_ETOOBIG (4.13). */
Test(route, build_too_big)
{
    struct gw_coap_msg m;
    char payload[200];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    struct optv o[] = { OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
    mk(&m, GW_COAP_CON, GW_COAP_POST, o, 1, payload);
    struct fe_target t;
    struct fe_verdict v;
    E(fe_route_target(&m, &t, &v));
    uint8_t out[128];
    size_t len;
    cr_assert_eq(fe_route_build(&m, &t, out, sizeof(out), &len), GW_ETOOBIG);
}

/* ---- S4.8: the gateway itself ---- */

Test(route, is_self)
{
    cr_assert(fe_route_is_self("localhost", "", "0.0.0.0:5683"));
    cr_assert(fe_route_is_self("LocalHost", "", "0.0.0.0:5683"));
    cr_assert(fe_route_is_self("127.0.0.1", "", "0.0.0.0:5683"));
    cr_assert(fe_route_is_self("::1", "", "0.0.0.0:5683"));
    /* The listen address. */
    cr_assert(fe_route_is_self("192.0.2.7", "", "192.0.2.7:5683"));
    cr_assert_not(fe_route_is_self("192.0.2.8", "", "192.0.2.7:5683"));
    cr_assert(fe_route_is_self("2001:db8::7", "", "[2001:db8::7]:5683"));
    /* Configured names, case-insensitive, blanks around entries ignored. */
    cr_assert(fe_route_is_self("gw.example", "gw.example,coapgw", "0.0.0.0:5683"));
    cr_assert(fe_route_is_self("GW.Example", "gw.example,coapgw", "0.0.0.0:5683"));
    cr_assert(fe_route_is_self("coapgw", "gw.example, coapgw", "0.0.0.0:5683"));
    cr_assert(fe_route_is_self("gw.example", "gw.example , coapgw", "0.0.0.0:5683"));
    cr_assert_not(fe_route_is_self("gw", "gw.example,coapgw", "0.0.0.0:5683"), "no prefix match");
    cr_assert_not(fe_route_is_self("coapgw2", "gw.example,coapgw", "0.0.0.0:5683"));
    cr_assert_not(fe_route_is_self("", "gw.example,,coapgw", "0.0.0.0:5683"));
    cr_assert_not(fe_route_is_self("gw.example", NULL, "0.0.0.0:5683"));
    /* A device is not the gateway. */
    cr_assert_not(fe_route_is_self("0011223344556677", "gw.example", "192.0.2.7:5683"));
    /* A name without dots or colons is still matched against the names. */
    cr_assert(fe_route_is_self("0011223344556677", "0011223344556677", "192.0.2.7:5683"));
    cr_assert(fe_route_is_self("[::1]", "", "[::1]:5683"), "a bracketed literal has colons");
}

/* A Proxy-Uri naming the gateway yields a target is_self recognizes. */
Test(route, proxy_uri_to_self)
{
    struct gw_coap_msg m;
    struct fe_target t;
    target_ok("coap://[::1]:5683/.well-known/core", &m, &t);
    cr_assert(fe_route_is_self(t.host, "", "0.0.0.0:5683"));
    target_ok("coap://localhost/echo", &m, &t);
    cr_assert(fe_route_is_self(t.host, "", "0.0.0.0:5683"));
}

/* ---- observe (RFC 7641 2, S6) ---- */

Test(route, observe_value)
{
    struct gw_coap_msg m;
    struct optv reg[] = { OU(GW_OPT_OBSERVE, 0),
                          OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
    mk(&m, GW_COAP_CON, GW_COAP_GET, reg, 2, NULL);
    cr_assert_eq(fe_route_observe(&m), 0);
    struct optv dereg[] = { OU(GW_OPT_OBSERVE, 1),
                            OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
    mk(&m, GW_COAP_CON, GW_COAP_GET, dereg, 2, NULL);
    cr_assert_eq(fe_route_observe(&m), 1);
    struct optv other[] = { OU(GW_OPT_OBSERVE, 2),
                            OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
    mk(&m, GW_COAP_CON, GW_COAP_GET, other, 2, NULL);
    cr_assert_eq(fe_route_observe(&m), -1);
    struct optv none[] = { OS(GW_OPT_PROXY_URI, "coap://0011223344556677/x") };
    mk(&m, GW_COAP_CON, GW_COAP_GET, none, 1, NULL);
    cr_assert_eq(fe_route_observe(&m), -1);
    mk(&m, GW_COAP_CON, GW_COAP_POST, reg, 2, NULL);
    cr_assert_eq(fe_route_observe(&m), -1, "Observe means something only on GET");
}
