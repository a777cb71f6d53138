/* SPDX-License-Identifier: MIT */
/* test_local.c - the gateway's own resources (SPEC S8, S2.1-S2.7, S2.9, S4.8).
 *
 * fe_local_handle is driven with parsed requests; its reply callback records
 * the bytes, which are parsed back with gw_coap_parse (libcoap's parser).
 * Real LMDB and a real HS256 key in a mkdtemp directory, fake clock. */
#include "fe_local.h"
#include "gw_clock.h"
#include "gw_error.h"
#include "gw_msg.h"
#include "gw_registry.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define E(expr) cr_assert_eq((expr), 0, "%s", #expr)

#define T0 1700000000
#define MAX_BODY 256
#define SECRET "0123456789abcdef0123456789abcdef"

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

static struct {
    char dir[64];
    struct gw_store st;
    struct fe_auth *auth;
    struct fe_blocks blocks;
    struct gw_config cfg;
    struct fe_sess_cfg scfg;
    struct gw_fake_clock fc;
    struct gw_clock clk;
    struct fe_local l;
    struct gw_coap_parser *preq, *prep;
    /* recorder */
    uint8_t rbuf[4096];
    size_t rlen;
    int nreplies;
    struct gw_coap_msg rep;
    int ncreated, nended;
    struct gw_session created, ended;
    bool moved;
    uint16_t next_mid;
    uint16_t req_mid;
} w;

static struct gw_coap_msg rq; /* the request, viewed through w.preq */

static void on_reply(void *ctx, const struct gw_ep *ep, const struct gw_coap_msg *req,
                     struct fe_dedup_entry *de, const uint8_t *buf, size_t len)
{
    cr_assert_eq(ctx, &w);
    cr_assert_leq(len, sizeof(w.rbuf));
    cr_assert_leq(len, GW_COAP_MAX_MSG, "an answer never exceeds the message size (S3.5)");
    memcpy(w.rbuf, buf, len);
    w.rlen = len;
    w.nreplies++;
}

static uint16_t on_mid(void *ctx)
{
    return ++w.next_mid;
}

static void on_ended(void *ctx, const struct gw_session *s)
{
    w.nended++;
    w.ended = *s;
}

static void on_created(void *ctx, const struct gw_session *s, const struct gw_ep *moved_from)
{
    w.ncreated++;
    w.created = *s;
    w.moved = moved_from != NULL;
}

static void setup(void)
{
    memset(&w, 0, sizeof(w));
    snprintf(w.dir, sizeof(w.dir), "/tmp/test_local.XXXXXX");
    cr_assert_not_null(mkdtemp(w.dir));
    E(gw_store_open(&w.st, w.dir, 16));
    char path[128];
    snprintf(path, sizeof(path), "%s/secret", w.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(SECRET, 1, 32, f), 32);
    cr_assert_eq(fclose(f), 0);
    struct fe_auth_cfg acfg = { .alg = FE_JWT_HS256, .key_file = path };
    E(fe_auth_new(&acfg, &w.auth));
    E(fe_blocks_init(&w.blocks, 16, 30000, MAX_BODY));
    gw_config_defaults(&w.cfg);
    w.scfg = (struct fe_sess_cfg){ 600, 4 * 3600, 10, 100, 60 };
    w.fc = (struct gw_fake_clock){ .ms = 1000000, .wall = T0 };
    w.clk = gw_clock_fake(&w.fc);
    E(gw_coap_parser_new(&w.preq));
    E(gw_coap_parser_new(&w.prep));
    w.l = (struct fe_local){ .cfg = &w.cfg,
                             .store = &w.st,
                             .auth = w.auth,
                             .scfg = &w.scfg,
                             .blocks = &w.blocks,
                             .parser = w.preq,
                             .ctx = &w,
                             .reply = on_reply,
                             .mid = on_mid,
                             .session_ended = on_ended,
                             .session_created = on_created,
                             .clock = &w.clk };
    w.next_mid = 0x7000;
    w.req_mid = 0x100;
}

static void teardown(void)
{
    gw_coap_parser_free(w.preq);
    gw_coap_parser_free(w.prep);
    fe_blocks_deinit(&w.blocks);
    fe_auth_free(w.auth);
    gw_store_close(&w.st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w.dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(local, .init = setup, .fini = teardown);

static struct gw_ep ep_of(const char *s)
{
    struct gw_ep ep;
    E(gw_ep_parse(s, 5683, &ep));
    return ep;
}

/* Builds a request: `path` like "/a/b?x=1&y" becomes Uri-Path and Uri-Query
 * options; `o` adds more (any order: the encoder sorts). Parsed into rq. */
static void build(uint8_t type, uint8_t code, const char *path, const struct optv *o, size_t n,
                  const void *payload, size_t plen)
{
    struct gw_coap_msg src;
    memset(&src, 0, sizeof(src));
    src.type = type;
    src.code = code;
    src.mid = w.req_mid++;
    src.tkl = 4;
    memcpy(src.token, "\x01\x02\x03\x04", 4);
    static char pbuf[256];
    snprintf(pbuf, sizeof(pbuf), "%s", path ? path : "");
    char *q = strchr(pbuf, '?');
    if (q)
        *q++ = '\0';
    for (char *s = pbuf[0] == '/' ? pbuf + 1 : pbuf, *e; *s; s = e + 1) {
        e = strchr(s, '/');
        if (e)
            *e = '\0';
        src.opts[src.nopts++] =
            (struct gw_coap_opt){ GW_OPT_URI_PATH, (uint16_t)strlen(s), (const uint8_t *)s };
        if (!e)
            break;
    }
    for (char *s = q, *e; s && *s; s = e + 1) {
        e = strchr(s, '&');
        if (e)
            *e = '\0';
        src.opts[src.nopts++] =
            (struct gw_coap_opt){ GW_OPT_URI_QUERY, (uint16_t)strlen(s), (const uint8_t *)s };
        if (!e)
            break;
    }
    static uint8_t uv[GW_COAP_MAX_OPTS][4];
    for (size_t i = 0; i < n; i++) {
        struct gw_coap_opt *d = &src.opts[src.nopts++];
        d->num = o[i].num;
        if (o[i].kind == K_UINT) {
            d->len = (uint16_t)gw_coap_uint_enc(o[i].u, uv[i]);
            d->val = uv[i];
        } else {
            d->len = (uint16_t)(o[i].kind == K_STR ? strlen(o[i].s) : o[i].len);
            d->val = (const uint8_t *)o[i].s;
        }
    }
    src.payload = payload;
    src.payload_len = plen;
    static uint8_t wire[GW_COAP_MAX_MSG + 16];
    size_t len;
    E(gw_coap_encode(&src, wire, sizeof(wire), &len));
    E(gw_coap_parse(w.preq, wire, len, &rq));
}

/* Sends the built request from ep and parses the single answer into w.rep. */
static uint8_t handle(const struct gw_ep *ep, const struct fe_target *t)
{
    int before = w.nreplies;
    fe_local_handle(&w.l, ep, &rq, t, NULL);
    cr_assert_eq(w.nreplies, before + 1, "exactly one answer");
    E(gw_coap_parse(w.prep, w.rbuf, w.rlen, &w.rep));
    cr_assert_eq(w.rep.tkl, rq.tkl, "the answer carries the request's token");
    cr_assert_arr_eq(w.rep.token, rq.token, rq.tkl);
    if (rq.type == GW_COAP_CON) {
        cr_assert_eq(w.rep.type, GW_COAP_ACK, "piggybacked on the ACK (S3.1)");
        cr_assert_eq(w.rep.mid, rq.mid);
    } else {
        cr_assert_eq(w.rep.type, GW_COAP_NON, "a NON request gets a NON response (S3.1)");
    }
    return w.rep.code;
}

static uint8_t call(const char *from, uint8_t code, const char *path, const struct optv *o,
                    size_t n, const char *payload)
{
    struct gw_ep ep = ep_of(from);
    build(GW_COAP_CON, code, path, o, n, payload, payload ? strlen(payload) : 0);
    return handle(&ep, NULL);
}

static bool payload_has(const char *needle)
{
    size_t n = strlen(needle);
    for (size_t i = 0; i + n <= w.rep.payload_len; i++)
        if (memcmp(w.rep.payload + i, needle, n) == 0)
            return true;
    return false;
}

static bool rep_uint(uint16_t num, uint32_t *v)
{
    const struct gw_coap_opt *o = gw_coap_opt_find(&w.rep, num);
    return o && gw_coap_uint(o->val, o->len, v);
}

static void assert_code(uint8_t got, uint8_t want)
{
    cr_assert_eq(got, want, "code %d.%02d, want %d.%02d (payload '%.*s')", got >> 5, got & 31,
                 want >> 5, want & 31, (int)w.rep.payload_len,
                 w.rep.payload ? (const char *)w.rep.payload : "");
}

static char *mint(const char *account, const char *devices)
{
    char *tok = NULL;
    const char *diag = NULL;
    int rc = fe_auth_mint(w.auth, account, T0 - 10, 3600, devices, &tok, &diag);
    cr_assert_eq(rc, 0, "mint: %s", diag ? diag : gw_strerror(rc));
    return tok;
}

/* POSTs a fresh token for `account` from `from`; returns the session ID. */
static uint64_t login(const char *from, const char *account, const char *devices)
{
    char *tok = mint(account, devices);
    assert_code(call(from, GW_COAP_POST, "/sessions", NULL, 0, tok), GW_COAP_CREATED);
    free(tok);
    return w.created.id;
}

/* ---- /.well-known/core, /echo, /help (S8.1) ---- */

Test(local, well_known_core)
{
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/.well-known/core", NULL, 0, NULL),
                GW_COAP_CONTENT);
    uint32_t cf;
    cr_assert(rep_uint(GW_OPT_CONTENT_FORMAT, &cf));
    cr_assert_eq(cf, 40, "application/link-format (RFC 6690)");
    cr_assert(payload_has("</sessions>"));
    cr_assert(payload_has("</echo>"));
    cr_assert(payload_has("</help>"));
    cr_assert(payload_has("</devices>"));
}

Test(local, echo_returns_payload)
{
    struct optv cf[] = { OU(GW_OPT_CONTENT_FORMAT, 0) };
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/echo", cf, 1, "hello, gateway"),
                GW_COAP_CHANGED);
    cr_assert_eq(w.rep.payload_len, 14);
    cr_assert(memcmp(w.rep.payload, "hello, gateway", 14) == 0);
    uint32_t v;
    cr_assert(rep_uint(GW_OPT_CONTENT_FORMAT, &v));
    cr_assert_eq(v, 0, "the request's Content-Format is echoed");
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/echo", NULL, 0, "x"), GW_COAP_CONTENT);
    cr_assert_eq(w.rep.payload_len, 1);
    cr_assert_eq(w.rep.payload[0], 'x');
    assert_code(call("10.0.0.1:1000", GW_COAP_PUT, "/echo", NULL, 0, NULL), GW_COAP_CHANGED);
    cr_assert_eq(w.rep.payload_len, 0);
}

/* S3.1: a NON request gets a NON response with a fresh MID. */
Test(local, non_request_gets_non_response)
{
    struct gw_ep ep = ep_of("10.0.0.1:1000");
    build(GW_COAP_NON, GW_COAP_POST, "/echo", NULL, 0, "abc", 3);
    assert_code(handle(&ep, NULL), GW_COAP_CHANGED);
    cr_assert_eq(w.rep.mid, 0x7001, "the MID comes from the mid callback");
    cr_assert_eq(w.rep.payload_len, 3);
}

Test(local, help)
{
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/help", NULL, 0, NULL), GW_COAP_CONTENT);
    cr_assert_gt(w.rep.payload_len, 0);
    cr_assert(payload_has("/sessions"));
}

/* S2.9: these need no session. */
Test(local, no_session_needed)
{
    cr_assert_eq(fe_session_count(&w.st), 0);
    assert_code(call("10.9.9.9:9", GW_COAP_GET, "/help", NULL, 0, NULL), GW_COAP_CONTENT);
    assert_code(call("10.9.9.9:9", GW_COAP_GET, "/.well-known/core", NULL, 0, NULL),
                GW_COAP_CONTENT);
    assert_code(call("10.9.9.9:9", GW_COAP_POST, "/echo", NULL, 0, "p"), GW_COAP_CHANGED);
}

Test(local, unknown_path_is_4_04)
{
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/nope", NULL, 0, NULL), GW_COAP_NOT_FOUND);
    cr_assert_gt(w.rep.payload_len, 0, "with a diagnostic (S9)");
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/echo/more", NULL, 0, NULL), GW_COAP_NOT_FOUND);
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/.well-known", NULL, 0, NULL),
                GW_COAP_NOT_FOUND);
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "", NULL, 0, NULL), GW_COAP_NOT_FOUND);
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/sessions/xyz", NULL, 0, NULL),
                GW_COAP_NOT_FOUND);
}

Test(local, wrong_method_is_4_05)
{
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/.well-known/core", NULL, 0, NULL),
                GW_COAP_NOT_ALLOWED);
    assert_code(call("10.0.0.1:1000", GW_COAP_PUT, "/help", NULL, 0, NULL), GW_COAP_NOT_ALLOWED);
    assert_code(call("10.0.0.1:1000", GW_COAP_PUT, "/sessions", NULL, 0, NULL),
                GW_COAP_NOT_ALLOWED);
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/devices", NULL, 0, NULL),
                GW_COAP_NOT_ALLOWED);
}

/* RFC 7252 5.4.1: an unrecognized critical option gets 4.02. */
Test(local, unknown_critical_option_is_4_02)
{
    struct optv o[] = { OS(2049, "x") };
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/help", o, 1, NULL), GW_COAP_BAD_OPTION);
    struct optv elective[] = { OS(2048, "x") };
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/help", elective, 1, NULL), GW_COAP_CONTENT);
}

/* S4.8: a Proxy-Uri naming the gateway is served from the parsed target. */
Test(local, served_through_proxy_uri)
{
    struct gw_ep ep = ep_of("10.0.0.1:1000");
    struct optv o[] = { OS(GW_OPT_PROXY_URI, "coap://localhost/echo") };
    build(GW_COAP_CON, GW_COAP_POST, NULL, o, 1, "via proxy", 9);
    struct fe_target t;
    struct fe_verdict v;
    E(fe_route_target(&rq, &t, &v));
    assert_code(handle(&ep, &t), GW_COAP_CHANGED);
    cr_assert_eq(w.rep.payload_len, 9);
    cr_assert(memcmp(w.rep.payload, "via proxy", 9) == 0);
}

/* ---- /sessions (S2.1-S2.3, S2.7) ---- */

static bool is_hex16(const uint8_t *p, size_t n)
{
    if (n != 16)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f')))
            return false;
    return true;
}

/* S2.1/S2.3: POST a JWT: 2.01, Location-Path sessions/<id>, a JSON payload. */
Test(local, post_sessions_creates)
{
    char *tok = mint("alice", NULL);
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/sessions", NULL, 0, tok), GW_COAP_CREATED);
    free(tok);
    cr_assert_eq(gw_coap_opt_count(&w.rep, GW_OPT_LOCATION_PATH), 2);
    const struct gw_coap_opt *l1 = NULL, *l2 = NULL;
    for (unsigned i = 0; i < w.rep.nopts; i++)
        if (w.rep.opts[i].num == GW_OPT_LOCATION_PATH) {
            if (!l1)
                l1 = &w.rep.opts[i];
            else
                l2 = &w.rep.opts[i];
        }
    cr_assert(l1->len == 8 && memcmp(l1->val, "sessions", 8) == 0);
    cr_assert(is_hex16(l2->val, l2->len), "16 hex digits: '%.*s'", (int)l2->len,
              (const char *)l2->val);
    uint32_t cf;
    cr_assert(rep_uint(GW_OPT_CONTENT_FORMAT, &cf));
    cr_assert_eq(cf, 50, "application/json");
    cr_assert_eq(w.rep.payload[0], '{');
    cr_assert_eq(w.rep.payload[w.rep.payload_len - 1], '}');
    cr_assert(payload_has("\"account\":\"alice\""));
    char idjson[40];
    snprintf(idjson, sizeof(idjson), "\"id\":\"%.16s\"", (const char *)l2->val);
    cr_assert(payload_has(idjson), "the JSON names the same ID");
    cr_assert(payload_has("\"security\":\"netmgr\""), "netmgr is the default (S2.1)");
    /* The session exists, bound to the caller's endpoint (S2.4). */
    cr_assert_eq(w.ncreated, 1);
    char idstr[17];
    snprintf(idstr, sizeof(idstr), "%016llx", (unsigned long long)w.created.id);
    cr_assert(memcmp(idstr, l2->val, 16) == 0);
    struct gw_session s;
    struct gw_ep ep = ep_of("10.0.0.1:1000");
    E(fe_session_lookup(&w.st, &w.scfg, &ep, T0, &s));
    cr_assert_eq(s.id, w.created.id);
    cr_assert_str_eq(s.account, "alice");
    cr_assert_eq(s.token_exp, T0 - 10 + 3600, "the session ends with its token (S2.7)");
}

/* S2.1: query options. */
Test(local, post_sessions_options)
{
    char *tok = mint("alice", NULL);
    assert_code(call("10.0.0.1:1000", GW_COAP_POST,
                     "/sessions?security=none&sticky=true&single=false", NULL, 0, tok),
                GW_COAP_CREATED);
    cr_assert_eq(w.created.security, GW_SEC_NONE);
    cr_assert_eq(w.created.sticky, 1);
    cr_assert_eq(w.created.single, 0);
    cr_assert(payload_has("\"security\":\"none\""));
    /* sticky=true from elsewhere re-points (S2.5) and says it moved. */
    uint64_t id = w.created.id;
    assert_code(call("10.0.0.2:1000", GW_COAP_POST, "/sessions?sticky=true", NULL, 0, tok),
                GW_COAP_CREATED);
    cr_assert_eq(w.created.id, id);
    cr_assert(w.moved);
    /* single=true with a live session: 4.03 (S2.6). */
    assert_code(call("10.0.0.3:1000", GW_COAP_POST, "/sessions?single=true", NULL, 0, tok),
                GW_COAP_FORBIDDEN);
    cr_assert_gt(w.rep.payload_len, 0);
    free(tok);
}

/* S2.2: a bad token gets 4.01 and creates nothing. */
Test(local, bad_token_is_4_01)
{
    /* Signed with another secret. */
    char path[128];
    snprintf(path, sizeof(path), "%s/other", w.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite("ZYXWVUTSRQPONMLKJIHGFEDCBA987654", 1, 32, f), 32);
    cr_assert_eq(fclose(f), 0);
    struct fe_auth *other;
    struct fe_auth_cfg acfg = { .alg = FE_JWT_HS256, .key_file = path };
    E(fe_auth_new(&acfg, &other));
    char *forged = NULL;
    E(fe_auth_mint(other, "mallory", T0, 3600, NULL, &forged, NULL));
    fe_auth_free(other);
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/sessions", NULL, 0, forged),
                GW_COAP_UNAUTHORIZED);
    cr_assert_gt(w.rep.payload_len, 0, "with a diagnostic");
    free(forged);

    /* Expired (S2.2): minted two hours ago with a one hour lifetime. */
    char *old = NULL;
    E(fe_auth_mint(w.auth, "alice", T0 - 7200, 3600, NULL, &old, NULL));
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/sessions", NULL, 0, old),
                GW_COAP_UNAUTHORIZED);
    free(old);

    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/sessions", NULL, 0, "not.a.jwt"),
                GW_COAP_UNAUTHORIZED);
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/sessions", NULL, 0, NULL),
                GW_COAP_UNAUTHORIZED);

    cr_assert_eq(w.ncreated, 0);
    cr_assert_eq(fe_session_count(&w.st), 0, "nothing was created");
}

Test(local, bad_session_option_is_4_00)
{
    char *tok = mint("alice", NULL);
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/sessions?security=bogus", NULL, 0, tok),
                GW_COAP_BAD_REQUEST);
    cr_assert_gt(w.rep.payload_len, 0);
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/sessions?sticky=maybe", NULL, 0, tok),
                GW_COAP_BAD_REQUEST);
    assert_code(call("10.0.0.1:1000", GW_COAP_POST, "/sessions?colour=blue", NULL, 0, tok),
                GW_COAP_BAD_REQUEST);
    free(tok);
    cr_assert_eq(w.ncreated, 0);
    cr_assert_eq(fe_session_count(&w.st), 0);
}

Test(local, get_sessions)
{
    uint64_t id = login("10.0.0.1:1000", "alice", NULL);
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/sessions", NULL, 0, NULL), GW_COAP_CONTENT);
    char idjson[40];
    snprintf(idjson, sizeof(idjson), "\"id\":\"%016llx\"", (unsigned long long)id);
    cr_assert(payload_has(idjson));
    cr_assert(payload_has("\"account\":\"alice\""));
    char path[40];
    snprintf(path, sizeof(path), "/sessions/%016llx", (unsigned long long)id);
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, path, NULL, 0, NULL), GW_COAP_CONTENT);
    cr_assert(payload_has(idjson));
    /* Another endpoint has no session to show. */
    assert_code(call("10.0.0.1:1001", GW_COAP_GET, "/sessions", NULL, 0, NULL), GW_COAP_NOT_FOUND);
    assert_code(call("10.0.0.1:1001", GW_COAP_GET, path, NULL, 0, NULL), GW_COAP_NOT_FOUND);
}

/* S2.7: DELETE /sessions ends the caller's session. */
Test(local, delete_sessions)
{
    uint64_t id = login("10.0.0.1:1000", "alice", NULL);
    assert_code(call("10.0.0.1:1001", GW_COAP_DELETE, "/sessions", NULL, 0, NULL),
                GW_COAP_NOT_FOUND);
    cr_assert_eq(w.nended, 0, "another endpoint cannot end it");
    assert_code(call("10.0.0.1:1000", GW_COAP_DELETE, "/sessions", NULL, 0, NULL), GW_COAP_DELETED);
    cr_assert_eq(w.nended, 1);
    cr_assert_eq(w.ended.id, id);
    struct gw_session s;
    struct gw_ep ep = ep_of("10.0.0.1:1000");
    cr_assert_eq(fe_session_lookup(&w.st, &w.scfg, &ep, T0, &s), GW_ENOTFOUND);
    assert_code(call("10.0.0.1:1000", GW_COAP_DELETE, "/sessions", NULL, 0, NULL),
                GW_COAP_NOT_FOUND);
    cr_assert_eq(w.nended, 1);
}

/* S2.7: DELETE /sessions/<id>, only with the caller's own ID. */
Test(local, delete_sessions_by_id)
{
    uint64_t id = login("10.0.0.1:1000", "alice", NULL);
    char path[40];
    snprintf(path, sizeof(path), "/sessions/%016llx", (unsigned long long)(id ^ 1));
    assert_code(call("10.0.0.1:1000", GW_COAP_DELETE, path, NULL, 0, NULL), GW_COAP_NOT_FOUND);
    cr_assert_eq(w.nended, 0);
    snprintf(path, sizeof(path), "/sessions/%016llx", (unsigned long long)id);
    assert_code(call("10.0.0.1:1000", GW_COAP_DELETE, path, NULL, 0, NULL), GW_COAP_DELETED);
    cr_assert_eq(w.nended, 1);
    cr_assert_eq(w.ended.id, id);
}

/* S2.7: an expired session is gone for the local resources too. */
Test(local, expired_session_not_shown)
{
    login("10.0.0.1:1000", "alice", NULL);
    w.fc.wall = T0 + 600;
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/sessions", NULL, 0, NULL), GW_COAP_NOT_FOUND);
}

/* ---- /devices (S8.1, S2.2 scope) ---- */

static void import_devices(void)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/devices.csv", w.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("mac,address,type,key\n"
          "0011223344556677,fd00::1,normal,000102030405060708090a0b0c0d0e0f\n"
          "00112233445566AA,fd00::2,milli,000102030405060708090a0b0c0d0e0f\n"
          "0200000000000001,fd00::3,normal,000102030405060708090a0b0c0d0e0f\n",
          f);
    cr_assert_eq(fclose(f), 0);
    int bad = -1;
    cr_assert_eq(gw_registry_import(&w.st, path, &bad), 3);
    cr_assert_eq(bad, 0);
}

Test(local, devices_needs_session)
{
    import_devices();
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/devices", NULL, 0, NULL),
                GW_COAP_UNAUTHORIZED);
    cr_assert_gt(w.rep.payload_len, 0);
    cr_assert_not(payload_has("0011223344556677"));
}

Test(local, devices_lists_all_without_scope)
{
    import_devices();
    login("10.0.0.1:1000", "alice", NULL);
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/devices", NULL, 0, NULL), GW_COAP_CONTENT);
    uint32_t cf;
    cr_assert(rep_uint(GW_OPT_CONTENT_FORMAT, &cf));
    cr_assert_eq(cf, 50);
    cr_assert_eq(w.rep.payload[0], '[');
    cr_assert_eq(w.rep.payload[w.rep.payload_len - 1], ']');
    cr_assert(payload_has("\"0011223344556677\""));
    cr_assert(payload_has("\"00112233445566aa\""));
    cr_assert(payload_has("\"0200000000000001\""));
    cr_assert(payload_has("milli"));
}

/* S2.2: the token's `devices` claim limits what is listed. */
Test(local, devices_filtered_by_scope)
{
    import_devices();
    login("10.0.0.1:1000", "alice", "001122");
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/devices", NULL, 0, NULL), GW_COAP_CONTENT);
    cr_assert(payload_has("\"0011223344556677\""));
    cr_assert(payload_has("\"00112233445566aa\""));
    cr_assert_not(payload_has("0200000000000001"), "outside the token's scope");
    /* Still a JSON array (a scoped list once lost its '[': issue 14's client found it). */
    cr_assert_eq(w.rep.payload[0], '[');
    cr_assert_eq(w.rep.payload[w.rep.payload_len - 1], ']');

    login("10.0.0.2:1000", "bob", "0200000000000001");
    assert_code(call("10.0.0.2:1000", GW_COAP_GET, "/devices", NULL, 0, NULL), GW_COAP_CONTENT);
    cr_assert_not(payload_has("0011223344556677"));
    cr_assert(payload_has("\"0200000000000001\""));
}

Test(local, devices_empty_registry)
{
    login("10.0.0.1:1000", "alice", NULL);
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/devices", NULL, 0, NULL), GW_COAP_CONTENT);
    cr_assert_eq(w.rep.payload_len, 2);
    cr_assert(memcmp(w.rep.payload, "[]", 2) == 0);
}

/* ---- Block2 (S8.2, RFC 7959 2.2) ---- */

/* Fetches /.well-known/core block by block (szx 0: 16 bytes). */
Test(local, block2_reassembles)
{
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/.well-known/core", NULL, 0, NULL),
                GW_COAP_CONTENT);
    uint8_t whole[2048];
    size_t wlen = w.rep.payload_len;
    cr_assert_gt(wlen, 16);
    cr_assert_lt(wlen, sizeof(whole));
    cr_assert_null(gw_coap_opt_find(&w.rep, GW_OPT_BLOCK2), "small enough for one message");
    memcpy(whole, w.rep.payload, wlen);

    uint8_t got[2048];
    size_t glen = 0;
    for (uint32_t num = 0;; num++) {
        cr_assert_lt(num, 200, "bounded");
        struct optv o[] = { OU(GW_OPT_BLOCK2, num << 4 | 0) };
        assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/.well-known/core", o, 1, NULL),
                    GW_COAP_CONTENT);
        const struct gw_coap_opt *b = gw_coap_opt_find(&w.rep, GW_OPT_BLOCK2);
        cr_assert_not_null(b, "block %u", num);
        struct gw_block blk;
        cr_assert(gw_block_decode(b, &blk));
        cr_assert_eq(blk.num, num);
        cr_assert_eq(blk.szx, 0);
        uint32_t cf;
        cr_assert(rep_uint(GW_OPT_CONTENT_FORMAT, &cf), "each block keeps Content-Format");
        cr_assert_eq(cf, 40);
        uint32_t size2;
        if (num == 0) {
            cr_assert(rep_uint(GW_OPT_SIZE2, &size2), "Size2 on block 0");
            cr_assert_eq(size2, wlen);
        } else {
            cr_assert_not(rep_uint(GW_OPT_SIZE2, &size2), "Size2 only on block 0 (block %u)", num);
        }
        cr_assert_leq(w.rep.payload_len, 16);
        memcpy(got + glen, w.rep.payload, w.rep.payload_len);
        glen += w.rep.payload_len;
        if (!blk.more) {
            cr_assert_eq(glen, wlen, "the last block has M=0 and ends the document");
            break;
        }
        cr_assert_eq(w.rep.payload_len, 16, "a block with M=1 is full");
    }
    cr_assert_arr_eq(got, whole, wlen);
}

/* A larger block size asked for is honoured the same way. */
Test(local, block2_szx2)
{
    struct optv o[] = { OU(GW_OPT_BLOCK2, 1 << 4 | 2) };
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/help", o, 1, NULL), GW_COAP_CONTENT);
    struct gw_block blk;
    cr_assert(gw_block_decode(gw_coap_opt_find(&w.rep, GW_OPT_BLOCK2), &blk));
    cr_assert_eq(blk.num, 1);
    cr_assert_eq(blk.szx, 2);
    cr_assert(blk.more);
    cr_assert_eq(w.rep.payload_len, 64);
    cr_assert_null(gw_coap_opt_find(&w.rep, GW_OPT_SIZE2), "Size2 only on block 0");
}

/* A block number past the end gets an error, not silence (S9). */
Test(local, block2_past_end)
{
    struct optv o[] = { OU(GW_OPT_BLOCK2, 1000 << 4 | 0) };
    uint8_t code = call("10.0.0.1:1000", GW_COAP_GET, "/.well-known/core", o, 1, NULL);
    cr_assert_eq(code >> 5, 4, "a 4.xx error");
    cr_assert_gt(w.rep.payload_len, 0);
}

/* ---- Block1 (S8.2, RFC 7959 2.3) ---- */

static uint8_t block1(const char *from, const char *path, uint32_t num, bool more, uint8_t szx,
                      const void *p, size_t n)
{
    struct gw_ep ep = ep_of(from);
    struct optv o[] = { OU(GW_OPT_BLOCK1, num << 4 | (uint32_t)more << 3 | szx) };
    build(GW_COAP_CON, GW_COAP_POST, path, o, 1, p, n);
    return handle(&ep, NULL);
}

static void assert_block1_echo(uint32_t num, bool more, uint8_t szx)
{
    const struct gw_coap_opt *b = gw_coap_opt_find(&w.rep, GW_OPT_BLOCK1);
    cr_assert_not_null(b, "the answer acknowledges the block with Block1");
    struct gw_block blk;
    cr_assert(gw_block_decode(b, &blk));
    cr_assert_eq(blk.num, num);
    cr_assert_eq(blk.more, more);
    cr_assert_eq(blk.szx, szx);
}

Test(local, block1_three_blocks)
{
    const char body[] = "0123456789abcdefGHIJKLMNOPQRSTUVwxyz!@#$%^&*()_+";
    cr_assert_eq(sizeof(body) - 1, 48);
    assert_code(block1("10.0.0.1:1000", "/echo", 0, true, 0, body, 16), GW_COAP_CONTINUE);
    assert_block1_echo(0, true, 0);
    assert_code(block1("10.0.0.1:1000", "/echo", 1, true, 0, body + 16, 16), GW_COAP_CONTINUE);
    assert_block1_echo(1, true, 0);
    assert_code(block1("10.0.0.1:1000", "/echo", 2, false, 0, body + 32, 16), GW_COAP_CHANGED);
    assert_block1_echo(2, false, 0);
    cr_assert_eq(w.rep.payload_len, 48, "the whole body");
    cr_assert(memcmp(w.rep.payload, body, 48) == 0);
}

/* Transfers from two endpoints do not mix. */
Test(local, block1_per_endpoint)
{
    assert_code(block1("10.0.0.1:1000", "/echo", 0, true, 0, "AAAAAAAAAAAAAAAA", 16),
                GW_COAP_CONTINUE);
    assert_code(block1("10.0.0.2:1000", "/echo", 0, true, 0, "BBBBBBBBBBBBBBBB", 16),
                GW_COAP_CONTINUE);
    assert_code(block1("10.0.0.1:1000", "/echo", 1, false, 0, "aa", 2), GW_COAP_CHANGED);
    cr_assert_eq(w.rep.payload_len, 18);
    cr_assert(memcmp(w.rep.payload, "AAAAAAAAAAAAAAAAaa", 18) == 0);
    assert_code(block1("10.0.0.2:1000", "/echo", 1, false, 0, "bb", 2), GW_COAP_CHANGED);
    cr_assert(memcmp(w.rep.payload, "BBBBBBBBBBBBBBBBbb", 18) == 0);
}

/* RFC 7959 2.9.2: a block out of order gets 4.08 Request Entity Incomplete. */
Test(local, block1_out_of_order_is_4_08)
{
    const char blk[] = "0123456789abcdef";
    assert_code(block1("10.0.0.1:1000", "/echo", 0, true, 0, blk, 16), GW_COAP_CONTINUE);
    assert_code(block1("10.0.0.1:1000", "/echo", 2, true, 0, blk, 16), GW_COAP_INCOMPLETE);
    cr_assert_gt(w.rep.payload_len, 0);
    /* The transfer was dropped: block 1 now is unknown too. */
    assert_code(block1("10.0.0.1:1000", "/echo", 1, false, 0, blk, 16), GW_COAP_INCOMPLETE);
    /* Without any block 0. */
    assert_code(block1("10.0.0.9:1000", "/echo", 1, false, 0, blk, 16), GW_COAP_INCOMPLETE);
}

/* RFC 7959 2.9.3: a body over block_max_body gets 4.13 with Size1. */
Test(local, block1_too_large_is_4_13)
{
    uint8_t blk[16];
    memset(blk, 'x', sizeof(blk));
    for (uint32_t num = 0; num < MAX_BODY / 16; num++)
        assert_code(block1("10.0.0.1:1000", "/echo", num, true, 0, blk, 16), GW_COAP_CONTINUE);
    assert_code(block1("10.0.0.1:1000", "/echo", MAX_BODY / 16, true, 0, blk, 16),
                GW_COAP_TOO_LARGE);
    uint32_t size1;
    cr_assert(rep_uint(GW_OPT_SIZE1, &size1), "4.13 tells the limit in Size1");
    cr_assert_eq(size1, MAX_BODY);
    /* The transfer is gone. */
    assert_code(block1("10.0.0.1:1000", "/echo", MAX_BODY / 16 + 1, false, 0, blk, 16),
                GW_COAP_INCOMPLETE);
}

/* A block with M=1 must fill its block size. */
Test(local, block1_short_block_is_4_00)
{
    assert_code(block1("10.0.0.1:1000", "/echo", 0, true, 0, "short", 5), GW_COAP_BAD_REQUEST);
}

/* S2.1 + S8.2: a token may arrive in Block1 blocks. */
Test(local, block1_token_for_sessions)
{
    char *tok = mint("alice", NULL);
    size_t n = strlen(tok);
    cr_assert_gt(n, 64);
    cr_assert_leq(n, MAX_BODY);
    uint32_t num = 0;
    size_t off = 0;
    while (n - off > 64) {
        assert_code(block1("10.0.0.1:1000", "/sessions", num++, true, 2, tok + off, 64),
                    GW_COAP_CONTINUE);
        off += 64;
    }
    assert_code(block1("10.0.0.1:1000", "/sessions", num, false, 2, tok + off, n - off),
                GW_COAP_CREATED);
    assert_block1_echo(num, false, 2);
    cr_assert_eq(w.ncreated, 1);
    cr_assert_str_eq(w.created.account, "alice");
    free(tok);
}

/* ---- issue #12: JSON built with jansson (item 12), no session replaced across accounts (item 4) ---- */

static json_t *rep_json(void)
{
    json_error_t err;
    json_t *j =
        json_loadb((const char *)w.rep.payload, w.rep.payload_len, JSON_REJECT_DUPLICATES, &err);
    cr_assert_not_null(j, "valid JSON: %s in '%.*s'", err.text, (int)w.rep.payload_len,
                       (const char *)w.rep.payload);
    return j;
}

/* S2.3: an account name cannot inject keys or break the session document. */
Test(local, session_json_escapes_account)
{
    const char *accounts[] = { "x\",\"security\":\"netmgr", "ev\"il", "back\\slash/<>" };
    for (size_t i = 0; i < GW_ARRAY_LEN(accounts); i++) {
        char *tok = mint(accounts[i], NULL);
        char from[32];
        snprintf(from, sizeof(from), "10.0.1.%zu:1000", i + 1);
        assert_code(call(from, GW_COAP_POST, "/sessions?security=none", NULL, 0, tok),
                    GW_COAP_CREATED);
        free(tok);
        json_t *j = rep_json();
        cr_assert_str_eq(json_string_value(json_object_get(j, "account")), accounts[i]);
        cr_assert_str_eq(json_string_value(json_object_get(j, "security")), "none",
                         "no key injected");
        cr_assert_eq(json_object_size(j), 7);
        json_decref(j);
        /* GET /sessions answers the same document. */
        assert_code(call(from, GW_COAP_GET, "/sessions", NULL, 0, NULL), GW_COAP_CONTENT);
        j = rep_json();
        cr_assert_str_eq(json_string_value(json_object_get(j, "account")), accounts[i]);
        json_decref(j);
    }
}

/* S8.1: a device-scoped token lists a well-formed array; a scope that
 * matches nothing lists [] (not 5.00). */
Test(local, devices_scoped_list_is_a_json_array)
{
    import_devices();
    login("10.0.0.1:1000", "alice", "001122");
    assert_code(call("10.0.0.1:1000", GW_COAP_GET, "/devices", NULL, 0, NULL), GW_COAP_CONTENT);
    json_t *j = rep_json();
    cr_assert(json_is_array(j));
    cr_assert_eq(json_array_size(j), 2);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(j, 0), "type")), "normal");
    json_decref(j);
    login("10.0.0.2:1000", "bob", "ffff");
    assert_code(call("10.0.0.2:1000", GW_COAP_GET, "/devices", NULL, 0, NULL), GW_COAP_CONTENT);
    cr_assert_eq(w.rep.payload_len, 2);
    cr_assert(memcmp(w.rep.payload, "[]", 2) == 0);
}

/* S2.10: a session request from an endpoint holding another account's live
 * session gets 4.03 with a diagnostic and changes nothing, sticky or not. */
Test(local, other_accounts_session_is_not_replaced)
{
    uint64_t id = login("10.0.0.1:1000", "alice", NULL);
    char *tok = mint("mallory", NULL);
    const char *paths[] = { "/sessions?security=none", "/sessions?security=none&sticky=true" };
    for (size_t i = 0; i < 2; i++) {
        assert_code(call("10.0.0.1:1000", GW_COAP_POST, paths[i], NULL, 0, tok), GW_COAP_FORBIDDEN);
        cr_assert(payload_has("another account"));
    }
    free(tok);
    cr_assert_eq(w.ncreated, 1);
    cr_assert_eq(w.nended, 0);
    struct gw_session s;
    struct gw_ep ep = ep_of("10.0.0.1:1000");
    E(fe_session_lookup(&w.st, &w.scfg, &ep, T0, &s));
    cr_assert_eq(s.id, id);
    cr_assert_str_eq(s.account, "alice");
    cr_assert_eq(s.security, GW_SEC_NETMGR);
}

/* S2.7: DELETE /sessions/<id> with an id that is not this endpoint's gets
 * 4.04 and ends nothing. */
Test(local, delete_with_foreign_id_ends_nothing)
{
    uint64_t a = login("10.0.0.1:1000", "alice", NULL);
    uint64_t b = login("10.0.0.2:1000", "bob", NULL);
    char path[64];
    snprintf(path, sizeof(path), "/sessions/%016llx", (unsigned long long)a);
    assert_code(call("10.0.0.2:1000", GW_COAP_DELETE, path, NULL, 0, NULL), GW_COAP_NOT_FOUND);
    cr_assert_eq(w.nended, 0);
    snprintf(path, sizeof(path), "/sessions/%016llx", (unsigned long long)(a ^ 1));
    assert_code(call("10.0.0.1:1000", GW_COAP_DELETE, path, NULL, 0, NULL), GW_COAP_NOT_FOUND);
    cr_assert_eq(w.nended, 0);
    snprintf(path, sizeof(path), "/sessions/%016llx", (unsigned long long)b);
    assert_code(call("10.0.0.2:1000", GW_COAP_DELETE, path, NULL, 0, NULL), GW_COAP_DELETED);
    cr_assert_eq(w.nended, 1);
}
