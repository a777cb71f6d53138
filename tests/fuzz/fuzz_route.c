/* SPDX-License-Identifier: MIT */
/* fuzz_route.c - proxy targets (frontend/fe_route.h, SPEC S4.1-S4.3, S4.7,
 * S4.8, S9): Proxy-Uri parsing, Proxy-Scheme + Uri-* options, the option
 * checks and the request built for the device.
 *
 * fuzz_frontend reaches this code too, but only behind a CoAP parse and a
 * session; here the fuzzer writes the URI text directly. Byte 0 picks:
 *   even  the rest is a Proxy-Uri value (a GET with only that option);
 *   odd   the rest is "scheme\0host\0port-bytes\0path/seg/s\0q=1&r" and
 *         becomes Proxy-Scheme, Uri-Host, Uri-Port, Uri-Path and Uri-Query
 *         options (missing pieces are left out); bit 1 adds a Block2 and
 *         bit 2 an unknown unsafe option.
 * When a target is accepted: its fields are in bounds, the device request
 * built from it parses, is a CON with MID 0 and an 8-byte zero token, keeps
 * the code and payload, carries exactly the target's path and query in
 * order, and no Proxy-*, Uri-Host, Uri-Port, Block or Hop-Limit option. */
#include "fe_local.h"
#include "fe_route.h"
#include "gw_addr.h"
#include "gw_coap.h"
#include "gw_error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct gw_coap_parser *preq, *pout;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_route: %s\n", what);
    abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (gw_coap_parser_new(&preq) != 0 || gw_coap_parser_new(&pout) != 0)
        abort();
    return 0;
}

/* Splits off the next NUL-terminated piece of [*p, end). */
static bool piece(const uint8_t **p, const uint8_t *end, const uint8_t **s, size_t *n)
{
    if (*p >= end)
        return false;
    const uint8_t *z = memchr(*p, 0, (size_t)(end - *p));
    *s = *p;
    *n = z ? (size_t)(z - *p) : (size_t)(end - *p);
    *p = z ? z + 1 : end;
    return true;
}

static bool build_request(uint8_t mode, const uint8_t *p, size_t n, uint8_t *buf, size_t cap,
                          size_t *len)
{
    struct gw_cb b;
    static const uint8_t tok[4] = { 't', 'o', 'k', '1' };
    gw_cb_init(&b, buf, cap, GW_COAP_CON, (mode & 8) ? GW_COAP_POST : GW_COAP_GET, 0x1234, tok, 4);
    if (!(mode & 1)) {
        gw_cb_opt(&b, GW_OPT_PROXY_URI, p, n);
    } else {
        const uint8_t *end = p + n, *scheme = NULL, *host = NULL, *port = NULL, *path = NULL,
                      *query = NULL;
        size_t sl = 0, hl = 0, pl = 0, pathl = 0, ql = 0;
        bool hs = piece(&p, end, &scheme, &sl);
        bool hh = piece(&p, end, &host, &hl);
        bool hp = piece(&p, end, &port, &pl);
        bool hpa = piece(&p, end, &path, &pathl);
        bool hq = piece(&p, end, &query, &ql);
        if (hh)
            gw_cb_opt(&b, GW_OPT_URI_HOST, host, hl);
        if (hp && pl)
            gw_cb_opt(&b, GW_OPT_URI_PORT, port, pl);
        for (size_t i = 0; hpa && i <= pathl;) {
            const uint8_t *s = memchr(path + i, '/', pathl - i);
            size_t e = s ? (size_t)(s - path) : pathl;
            gw_cb_opt(&b, GW_OPT_URI_PATH, path + i, e - i);
            i = e + 1;
        }
        for (size_t i = 0; hq && i <= ql;) {
            const uint8_t *s = memchr(query + i, '&', ql - i);
            size_t e = s ? (size_t)(s - query) : ql;
            gw_cb_opt(&b, GW_OPT_URI_QUERY, query + i, e - i);
            i = e + 1;
        }
        if (mode & 2)
            gw_cb_opt_uint(&b, GW_OPT_BLOCK2, (uint32_t)(mode >> 4));
        if (hs)
            gw_cb_opt(&b, GW_OPT_PROXY_SCHEME, scheme, sl);
        if (mode & 4)
            gw_cb_opt(&b, 0x7fe2 | 2, "x", 1); /* unknown, unsafe */
    }
    if (mode & 8)
        gw_cb_payload(&b, "body", 4);
    return gw_cb_finish(&b, len) == 0;
}

static void check_built(const struct gw_coap_msg *req, const struct fe_target *t,
                        const uint8_t *buf, size_t len)
{
    struct gw_coap_msg up;
    if (gw_coap_parse(pout, buf, len, &up) != 0)
        fail("the request built for the device does not parse");
    static const uint8_t zero[8] = { 0 };
    if (up.type != GW_COAP_CON || up.mid != 0 || up.tkl != 8 || memcmp(up.token, zero, 8) != 0 ||
        up.code != req->code)
        fail("device request header is wrong");
    if (up.payload_len != req->payload_len ||
        (up.payload_len && memcmp(up.payload, req->payload, up.payload_len) != 0))
        fail("device request payload differs");
    unsigned seg = 0, q = 0;
    for (unsigned i = 0; i < up.nopts; i++) {
        const struct gw_coap_opt *o = &up.opts[i];
        switch (o->num) {
        case GW_OPT_PROXY_URI:
        case GW_OPT_PROXY_SCHEME:
        case GW_OPT_URI_HOST:
        case GW_OPT_URI_PORT:
        case GW_OPT_BLOCK1:
        case GW_OPT_BLOCK2:
        case GW_OPT_HOP_LIMIT:
        case GW_OPT_NO_RESPONSE:
            fail("device request carries a hop-by-hop or proxy option");
            break;
        case GW_OPT_URI_PATH:
            if (seg >= t->nseg || o->len != t->seg[seg].len ||
                (o->len && memcmp(o->val, t->seg[seg].p, o->len) != 0))
                fail("device request path differs from the target");
            seg++;
            break;
        case GW_OPT_URI_QUERY:
            if (q >= t->nquery || o->len != t->query[q].len ||
                (o->len && memcmp(o->val, t->query[q].p, o->len) != 0))
                fail("device request query differs from the target");
            q++;
            break;
        default:
            break;
        }
    }
    if (seg != t->nseg || q != t->nquery)
        fail("device request lost path or query parts");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    uint8_t buf[GW_COAP_MAX_MSG + 16];
    size_t len;
    if (!build_request(data[0], data + 1, size - 1, buf, sizeof(buf), &len))
        return 0;
    struct gw_coap_msg req;
    if (gw_coap_parse(preq, buf, len, &req) != 0 || !fe_route_is_proxy(&req))
        return 0;
    static struct fe_target t;
    struct fe_verdict v;
    int rc = fe_route_target(&req, &t, &v);
    if (rc != 0) {
        if (rc != GW_EBADMSG || !v.diag || (v.code >> 5) < 4)
            fail("refused target without an error code and diagnostic");
        return 0;
    }
    if (strcmp(t.scheme, "coap") != 0)
        fail("accepted a scheme other than coap");
    size_t hl = strnlen(t.host, sizeof(t.host));
    if (hl == 0 || hl >= sizeof(t.host))
        fail("accepted an empty or unterminated host");
    if (t.port < -1 || t.port > 65535 || t.nseg > FE_MAX_SEGS || t.nquery > FE_MAX_SEGS ||
        t.used > sizeof(t.buf))
        fail("target fields out of range");
    for (unsigned i = 0; i < t.nseg; i++)
        if (t.seg[i].len == 1 && t.seg[i].p[0] == '.')
            fail("accepted a '.' segment");
    int szx;
    rc = fe_route_check_options(&req, &szx, &v);
    if (rc == 0 && (szx < -1 || szx > 6))
        fail("Block2 size preference out of range");
    if (rc != 0 && (!v.diag || (v.code >> 5) < 4))
        fail("refused options without an error code and diagnostic");
    uint8_t up[GW_COAP_MAX_MSG + 64];
    size_t ul;
    if (fe_route_build(&req, &t, up, sizeof(up), &ul) == 0)
        check_built(&req, &t, up, ul);
    volatile uint64_t sink = fe_local_target_key(&req, &t);
    sink += fe_route_is_self(t.host, "gw.example, coapgw ,", "192.0.2.1:5683");
    sink += (uint64_t)fe_route_observe(&req);
    uint8_t mac[GW_MAC_LEN];
    if (gw_mac_parse(t.host, hl, mac) == 0) {
        char back[17];
        gw_mac_str(mac, back);
        if (strcasecmp(back, t.host) != 0)
            fail("MAC ID does not print back as parsed");
    }
    struct gw_ep ep;
    if (gw_ep_parse(t.host, 0, &ep) == 0) {
        char s[GW_EP_STRLEN];
        sink += strlen(gw_ep_str(&ep, s, sizeof(s)));
    }
    (void)sink;
    return 0;
}
