/* SPDX-License-Identifier: MIT */
/* test_peer.c - forwarding to the owner node without sockets (S10.4, meshio/mesh_peer.h):
 * the proxy-request rewrite, the 4.01 -> 5.03 rewrite, node tokens, and the
 * per-link session state (hold, open, release, retry, renew, lost). */
#include "gw_coap.h"
#include "gw_error.h"
#include "gw_msg.h"
#include "mesh_peer.h"

#include <criterion/criterion.h>
#include <jwt.h>
#include <string.h>
#include <strings.h>

static struct gw_coap_parser *P;
static void setup(void)
{
    cr_assert_eq(gw_coap_parser_new(&P), 0);
}
static void teardown(void)
{
    gw_coap_parser_free(P);
}
TestSuite(peer, .init = setup, .fini = teardown);

static const uint8_t MAC[8] = { 0x02, 0, 0, 0, 0, 0, 0xab, 0x0c };
static const uint8_t TOK[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };

/* The request the scheduler sends a device: CON GET, even MID, 8-byte token,
 * Observe, Uri-Path, Accept. */
static size_t device_request(uint8_t *buf, size_t cap)
{
    struct gw_cb b;
    gw_cb_init(&b, buf, cap, GW_COAP_CON, GW_COAP_GET, 0x1234, TOK, 8);
    gw_cb_opt_uint(&b, GW_OPT_OBSERVE, 0);
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "sensor");
    gw_cb_opt_uint(&b, GW_OPT_ACCEPT, 0);
    size_t n;
    cr_assert_eq(gw_cb_finish(&b, &n), 0);
    return n;
}

/* S10.4, S4.1: the owner's frontend routes it as a proxy request for the
 * MAC on the port of the security; everything else is kept. */
Test(peer, request_becomes_a_proxy_request_for_the_owner)
{
    uint8_t in[256], out[MESH_PEER_DGRAM_MAX];
    size_t n = device_request(in, sizeof(in)), on;
    cr_assert_eq(mesh_peer_rewrite(P, in, n, MAC, GW_SEC_NETMGR, out, sizeof(out), &on), 0);
    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(P, out, on, &m), 0);
    cr_assert_eq(m.type, GW_COAP_CON);
    cr_assert_eq(m.code, GW_COAP_GET);
    cr_assert_eq(m.mid, 0x1234);
    cr_assert_eq(m.tkl, 8);
    cr_assert_eq(memcmp(m.token, TOK, 8), 0);
    const struct gw_coap_opt *h = gw_coap_opt_find(&m, GW_OPT_URI_HOST);
    cr_assert(h && h->len == 16 && strncasecmp((const char *)h->val, "020000000000AB0C", 16) == 0);
    const struct gw_coap_opt *pt = gw_coap_opt_find(&m, GW_OPT_URI_PORT);
    uint32_t port;
    cr_assert(pt && gw_coap_uint(pt->val, pt->len, &port) && port == 4849);
    const struct gw_coap_opt *ps = gw_coap_opt_find(&m, GW_OPT_PROXY_SCHEME);
    cr_assert(ps && ps->len == 4 && memcmp(ps->val, "coap", 4) == 0);
    const struct gw_coap_opt *path = gw_coap_opt_find(&m, GW_OPT_URI_PATH);
    cr_assert(path && path->len == 6 && memcmp(path->val, "sensor", 6) == 0);
    cr_assert_not_null(gw_coap_opt_find(&m, GW_OPT_OBSERVE));
    cr_assert_not_null(gw_coap_opt_find(&m, GW_OPT_ACCEPT));
    for (unsigned i = 1; i < m.nopts; i++)
        cr_assert_leq(m.opts[i - 1].num, m.opts[i].num, "options in order");
    cr_assert_eq(mesh_peer_rewrite(P, in, n, MAC, GW_SEC_NONE, out, sizeof(out), &on), 0);
    cr_assert_eq(gw_coap_parse(P, out, on, &m), 0);
    pt = gw_coap_opt_find(&m, GW_OPT_URI_PORT);
    cr_assert(pt && gw_coap_uint(pt->val, pt->len, &port) && port == 5683);
}

Test(peer, empty_messages_go_as_they_are_and_targets_are_refused)
{
    uint8_t ack[4] = { 0x60, 0, 0x12, 0x34 }, out[MESH_PEER_DGRAM_MAX];
    size_t on;
    cr_assert_eq(mesh_peer_rewrite(P, ack, 4, MAC, GW_SEC_NONE, out, sizeof(out), &on), 0);
    cr_assert_eq(on, 4);
    cr_assert_eq(memcmp(out, ack, 4), 0);
    /* A message that names a target already would be routed twice. */
    uint8_t in[128];
    struct gw_cb b;
    gw_cb_init(&b, in, sizeof(in), GW_COAP_CON, GW_COAP_GET, 1, TOK, 8);
    gw_cb_opt_str(&b, GW_OPT_URI_HOST, "x");
    size_t n;
    cr_assert_eq(gw_cb_finish(&b, &n), 0);
    cr_assert_eq(mesh_peer_rewrite(P, in, n, MAC, GW_SEC_NONE, out, sizeof(out), &on), GW_EBADMSG);
    /* A response is never forwarded this way. */
    gw_cb_init(&b, in, sizeof(in), GW_COAP_ACK, GW_COAP_CONTENT, 1, TOK, 8);
    cr_assert_eq(gw_cb_finish(&b, &n), 0);
    cr_assert_eq(mesh_peer_rewrite(P, in, n, MAC, GW_SEC_NONE, out, sizeof(out), &on), GW_EBADMSG);
    cr_assert_eq(mesh_peer_rewrite(P, in, 2, MAC, GW_SEC_NONE, out, sizeof(out), &on), GW_EBADMSG);
}

/* The owner's piggybacked 4.01 (no session) becomes a 5.03 the client may retry. */
Test(peer, owner_401_on_ack_becomes_503_with_diagnostic)
{
    uint8_t in[128], out[128];
    struct gw_cb b;
    gw_cb_init(&b, in, sizeof(in), GW_COAP_ACK, GW_COAP_UNAUTHORIZED, 0x2222, TOK, 8);
    gw_cb_payload(&b, "no session", 10);
    size_t n, on;
    cr_assert_eq(gw_cb_finish(&b, &n), 0);
    cr_assert_eq(mesh_peer_unauth_rewrite(in, n, out, sizeof(out), &on), 1);
    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(P, out, on, &m), 0);
    cr_assert_eq(m.type, GW_COAP_ACK);
    cr_assert_eq(m.code, GW_COAP_UNAVAILABLE);
    cr_assert_eq(m.mid, 0x2222);
    cr_assert_eq(memcmp(m.token, TOK, 8), 0);
    cr_assert_eq(m.payload_len, strlen(MESH_PEER_DIAG_REAUTH));
    cr_assert_eq(memcmp(m.payload, MESH_PEER_DIAG_REAUTH, m.payload_len), 0);
    cr_assert_not_null(gw_coap_opt_find(&m, GW_OPT_MAX_AGE));
    /* A device's own 4.01 comes as a separate CON response: relayed as it is. */
    gw_cb_init(&b, in, sizeof(in), GW_COAP_CON, GW_COAP_UNAUTHORIZED, 0x2222, TOK, 8);
    cr_assert_eq(gw_cb_finish(&b, &n), 0);
    cr_assert_eq(mesh_peer_unauth_rewrite(in, n, out, sizeof(out), &on), 0);
}

/* The node token verifies with the shared key and carries sub, node, exp. */
Test(peer, node_token_is_hs256_with_node_claim)
{
    static const uint8_t key[] = "0123456789abcdef0123456789abcdef";
    char *t = NULL;
    cr_assert_eq(mesh_peer_token(key, 32, 3, 1700000000, 600, "", "", &t), 0);
    jwt_t *j = NULL;
    cr_assert_eq(jwt_decode(&j, t, key, 32), 0, "signature verifies with the shared key");
    cr_assert_eq(jwt_get_alg(j), JWT_ALG_HS256);
    cr_assert_str_eq(jwt_get_grant(j, "sub"), "node-3");
    cr_assert_eq(jwt_get_grant_int(j, "node"), 3);
    cr_assert_eq(jwt_get_grant_int(j, "exp"), 1700000600);
    jwt_free(j);
    j = NULL;
    static const uint8_t other[] = "ffffffffffffffffffffffffffffffff";
    cr_assert_neq(jwt_decode(&j, t, other, 32), 0, "another key does not verify it");
    jwt_free(j);
    free(t);
    uint8_t buf[512];
    size_t n;
    cr_assert_eq(mesh_peer_session_post(0x4321, TOK, GW_SEC_NETMGR, "a.b.c", buf, sizeof(buf), &n),
                 0);
    struct gw_coap_msg m;
    cr_assert_eq(gw_coap_parse(P, buf, n, &m), 0);
    cr_assert_eq(m.type, GW_COAP_CON);
    cr_assert_eq(m.code, GW_COAP_POST);
    const struct gw_coap_opt *q = gw_coap_opt_find(&m, GW_OPT_URI_QUERY);
    cr_assert(q && q->len == 15 && memcmp(q->val, "security=netmgr", 15) == 0);
    cr_assert_eq(m.payload_len, 5);
}

static void answer(struct gw_coap_msg *m, uint8_t type, uint8_t code, uint16_t mid,
                   const uint8_t *tok)
{
    memset(m, 0, sizeof(*m));
    m->type = type;
    m->code = code;
    m->mid = mid;
    if (tok) {
        m->tkl = 8;
        memcpy(m->token, tok, 8);
    }
}

/* Requests wait (bounded) while the session opens, then go in order;
 * Milli requests are never retried by the scheduler, so none is dropped. */
Test(peer, link_holds_until_open_then_releases_in_order)
{
    struct mesh_link l;
    memset(&l, 0, sizeof(l));
    uint8_t d1[] = { 0x48, 1, 0, 2 }, d2[] = { 0x48, 1, 0, 4 };
    int a = mesh_link_submit(&l, 4, d1, 4, false, 1000);
    cr_assert_eq(a, MESH_LINK_HELD | MESH_LINK_POST, "the first request starts the POST");
    mesh_link_post_begin(&l, 7, TOK, 1700000600, 1000);
    cr_assert_eq(mesh_link_submit(&l, 4, d2, 4, false, 1001), MESH_LINK_HELD, "one POST at a time");
    uint8_t ack[4] = { 0x60, 0, 0, 9 };
    cr_assert_eq(mesh_link_submit(&l, 4, ack, 4, true, 1001), MESH_LINK_SEND, "empty: at once");
    struct gw_coap_msg m;
    bool mine;
    static const uint8_t other[8] = { 9, 9, 9, 9, 9, 9, 9, 9 };
    answer(&m, GW_COAP_ACK, GW_COAP_CONTENT, 2, other); /* a forwarded request's answer */
    cr_assert_eq(mesh_link_on_rx(&l, &m, 1700000000, 1002, 600000, &mine), MESH_LINK_NOTHING);
    cr_assert(!mine);
    answer(&m, GW_COAP_ACK, GW_COAP_CREATED, 7, TOK);
    cr_assert_eq(mesh_link_on_rx(&l, &m, 1700000000, 1002, 600000, &mine), MESH_LINK_RELEASE);
    cr_assert(mine);
    cr_assert_eq(l.state, MESH_LINK_OPEN);
    const struct mesh_held_dgram *h;
    cr_assert(mesh_link_pop(&l, &h));
    cr_assert_eq(h->data[3], 2);
    cr_assert(mesh_link_pop(&l, &h));
    cr_assert_eq(h->data[3], 4);
    cr_assert(!mesh_link_pop(&l, &h));
    cr_assert_eq(mesh_link_submit(&l, 4, d1, 4, false, 1003), MESH_LINK_SEND);
    /* Renewal at half the token's life, capped by renew_max_ms (600 s). */
    cr_assert_eq(l.next_ms, 1002 + 300000);
    cr_assert_eq(mesh_link_tick(&l, 1002 + 299999), MESH_LINK_NOTHING);
    cr_assert_eq(mesh_link_tick(&l, 1002 + 300000), MESH_LINK_POST);
    mesh_link_deinit(&l);
}

Test(peer, refused_post_is_retried_with_backoff_and_queue_is_bounded)
{
    struct mesh_link l;
    memset(&l, 0, sizeof(l));
    uint8_t d[] = { 0x48, 1, 0, 0 };
    for (uint8_t i = 0; i < 5; i++) {
        d[3] = (uint8_t)(2 * i);
        int a = mesh_link_submit(&l, 3, d, 4, false, 0);
        if (i == 0) {
            cr_assert(a & MESH_LINK_POST);
            mesh_link_post_begin(&l, 1, TOK, 100, 0);
        }
    }
    cr_assert_eq(l.qn, 3);
    cr_assert_eq(l.dropped, 2, "the oldest two were dropped");
    const struct mesh_held_dgram *h;
    cr_assert(mesh_link_pop(&l, &h));
    cr_assert_eq(h->data[3], 4, "the newest three are kept");
    struct gw_coap_msg m;
    bool mine;
    answer(&m, GW_COAP_ACK, GW_COAP_UNAUTHORIZED, 1, TOK);
    cr_assert_eq(mesh_link_on_rx(&l, &m, 0, 10, 600000, &mine), MESH_LINK_REFUSED);
    cr_assert(mine);
    cr_assert_eq(l.state, MESH_LINK_OPENING);
    cr_assert_eq(mesh_link_tick(&l, MESH_PEER_RETRY_MIN_MS - 1), MESH_LINK_NOTHING);
    cr_assert_eq(mesh_link_tick(&l, MESH_PEER_RETRY_MIN_MS), MESH_LINK_POST);
    mesh_link_post_begin(&l, 3, TOK, 100, MESH_PEER_RETRY_MIN_MS);
    cr_assert_eq(l.next_ms, 3 * MESH_PEER_RETRY_MIN_MS, "the back-off doubles");
    for (int i = 0; i < 20; i++)
        mesh_link_post_begin(&l, 3, TOK, 100, 0);
    cr_assert_eq(l.next_ms, MESH_PEER_RETRY_MAX_MS, "and is capped");
    mesh_link_deinit(&l);
}

/* The owner lost our session (4.01 to a forwarded request): re-open once. */
Test(peer, lost_session_reopens_once)
{
    struct mesh_link l;
    memset(&l, 0, sizeof(l));
    l.state = MESH_LINK_OPEN;
    cr_assert_eq(mesh_link_lost(&l, 5), MESH_LINK_POST);
    mesh_link_post_begin(&l, 9, TOK, 100, 5);
    cr_assert_eq(mesh_link_lost(&l, 6), MESH_LINK_NOTHING, "a POST is on its way");
    uint8_t d[] = { 0x48, 1, 0, 0 };
    cr_assert_eq(mesh_link_submit(&l, 2, d, 4, false, 7), MESH_LINK_HELD);
    mesh_link_deinit(&l);
}
