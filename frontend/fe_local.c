/* SPDX-License-Identifier: MIT */
/* fe_local.c - the gateway's own resources: /.well-known/core, /echo, /help, /sessions,
 * /devices (see fe_local.h). */
#include "fe_local.h"
#include "gw_clock.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_msg.h"
#include "gw_registry.h"
#include "gw_text.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PARTS 16
/* The largest payload that fits one message next to a few options. */
#define SINGLE_MAX 1024

struct parts {
    unsigned nseg, nq;
    struct {
        const uint8_t *p;
        size_t len;
    } seg[MAX_PARTS], q[MAX_PARTS];
};

static int64_t now_wall(struct fe_local *l)
{
    return l->clock ? gw_now_wall(l->clock) : gw_wall_s();
}

static uint64_t now_ms(struct fe_local *l)
{
    return l->clock ? gw_now_ms(l->clock) : gw_mono_ms();
}

static void get_parts(const struct gw_coap_msg *req, const struct fe_target *t, struct parts *p)
{
    memset(p, 0, sizeof(*p));
    if (t) {
        for (unsigned i = 0; i < t->nseg && p->nseg < MAX_PARTS; i++)
            p->seg[p->nseg].p = t->seg[i].p, p->seg[p->nseg++].len = t->seg[i].len;
        for (unsigned i = 0; i < t->nquery && p->nq < MAX_PARTS; i++)
            p->q[p->nq].p = t->query[i].p, p->q[p->nq++].len = t->query[i].len;
        return;
    }
    for (unsigned i = 0; i < req->nopts; i++) {
        const struct gw_coap_opt *o = &req->opts[i];
        if (o->num == GW_OPT_URI_PATH && p->nseg < MAX_PARTS)
            p->seg[p->nseg].p = o->val, p->seg[p->nseg++].len = o->len;
        else if (o->num == GW_OPT_URI_QUERY && p->nq < MAX_PARTS)
            p->q[p->nq].p = o->val, p->q[p->nq++].len = o->len;
    }
}

static bool seg_is(const struct parts *p, unsigned i, const char *s)
{
    size_t n = strlen(s);
    return i < p->nseg && p->seg[i].len == n && memcmp(p->seg[i].p, s, n) == 0;
}

uint64_t fe_local_target_key(const struct gw_coap_msg *req, const struct fe_target *t)
{
    uint64_t h = gw_hash64(t->host, strlen(t->host), GW_HASH_SEED);
    for (unsigned i = 0; i < t->nseg; i++) {
        h = gw_hash64("/", 1, h);
        h = gw_hash64(t->seg[i].p, t->seg[i].len, h);
    }
    for (unsigned i = 0; i < t->nquery; i++) {
        h = gw_hash64("?", 1, h);
        h = gw_hash64(t->query[i].p, t->query[i].len, h);
    }
    const struct gw_coap_opt *acc = gw_coap_opt_find(req, GW_OPT_ACCEPT);
    if (acc)
        h = gw_hash64(acc->val, acc->len, h ^ 0xacc);
    return h;
}

/* ---- answers ---- */

struct answer {
    uint8_t code;
    int cf; /* Content-Format or -1 */
    const uint8_t *payload;
    size_t len;
    uint32_t max_age;   /* UINT32_MAX = none */
    const char *loc[2]; /* Location-Path segments */
    bool block1_echo;   /* add Block1 (num, more=0, szx) of the request */
    struct gw_block b1;
    uint64_t store_key; /* non-GET answers in blocks are kept under this key */
};

/* Sends an answer, slicing it into Block2 blocks when it is larger than
 * the client's block size or than one message (S8.2). Large answers to
 * non-GET requests are kept for the follow-ups. */
static void send_answer(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de, const struct answer *a)
{
    struct gw_coap_msg m;
    memset(&m, 0, offsetof(struct gw_coap_msg, opts));
    m.type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
    m.mid = req->type == GW_COAP_CON ? req->mid : l->mid(l->ctx);
    m.tkl = req->tkl;
    memcpy(m.token, req->token, req->tkl);
    m.code = a->code;
    uint8_t cfv[4], mav[4], b1v[4];
    for (int i = 0; i < 2; i++)
        if (a->loc[i])
            m.opts[m.nopts++] =
                (struct gw_coap_opt){ GW_OPT_LOCATION_PATH, (uint16_t)strlen(a->loc[i]),
                                      (const uint8_t *)a->loc[i] };
    if (a->cf >= 0)
        m.opts[m.nopts++] =
            (struct gw_coap_opt){ GW_OPT_CONTENT_FORMAT,
                                  (uint16_t)gw_coap_uint_enc((uint32_t)a->cf, cfv), cfv };
    if (a->max_age != UINT32_MAX)
        m.opts[m.nopts++] =
            (struct gw_coap_opt){ GW_OPT_MAX_AGE, (uint16_t)gw_coap_uint_enc(a->max_age, mav),
                                  mav };
    if (a->block1_echo)
        m.opts[m.nopts++] =
            (struct gw_coap_opt){ GW_OPT_BLOCK1, (uint16_t)gw_block_encode(&a->b1, b1v), b1v };
    m.payload = a->payload;
    m.payload_len = a->len;

    uint8_t out[GW_COAP_MAX_MSG + 64];
    size_t ol;
    const struct gw_coap_opt *b2o = gw_coap_opt_find(req, GW_OPT_BLOCK2);
    struct gw_block b2;
    bool want_blocks = b2o && gw_block_decode(b2o, &b2);
    if (!want_blocks && a->len <= SINGLE_MAX) {
        if (gw_coap_encode(&m, out, sizeof(out), &ol) == 0)
            l->reply(l->ctx, ep, req, de, out, ol);
        return;
    }
    if (!want_blocks)
        b2 = (struct gw_block){ 0, false, 6 };
    if (b2.szx > 6)
        b2.szx = 6;
    if (req->code != GW_COAP_GET && a->store_key && b2.num == 0) {
        /* The answer to a POST/PUT cannot be recomputed for the follow-up
         * blocks: keep it (bounded by the block-wise table, S8.2). */
        uint8_t whole[GW_COAP_MAX_MSG + 64];
        size_t wl;
        struct gw_coap_msg keep = m;
        keep.payload = NULL;
        keep.payload_len = 0;
        if (gw_coap_encode(&keep, whole, sizeof(whole), &wl) == 0) {
            struct fe_block_xfer *x =
                fe_blocks_new(l->blocks, ep, a->store_key, 2, now_ms(l), l->sessionless);
            /* Stored as: header+options message, then the payload bytes. */
            if (x && (fe_blocks_append(l->blocks, x, (const uint8_t *)&wl, sizeof(wl)) != 0 ||
                      fe_blocks_append(l->blocks, x, whole, wl) != 0 ||
                      fe_blocks_append(l->blocks, x, a->payload, a->len) != 0))
                fe_blocks_drop(l->blocks, x);
        }
    }
    if (fe_block_slice(&m, b2.num, b2.szx, m.type, m.mid, req->token, req->tkl, out, sizeof(out),
                       &ol) != 0) {
        struct gw_cb b;
        gw_cb_init(&b, out, sizeof(out), m.type, GW_COAP_BAD_OPTION, m.mid, req->token, req->tkl);
        gw_cb_payload(&b, "Block2 number past the end of the resource", 42);
        if (gw_cb_finish(&b, &ol) != 0)
            return;
    }
    l->reply(l->ctx, ep, req, de, out, ol);
}

static void answer_text(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de, uint8_t code, const char *text)
{
    struct answer a = { .code = code,
                        .cf = -1,
                        .payload = (const uint8_t *)text,
                        .len = text ? strlen(text) : 0,
                        .max_age = UINT32_MAX };
    send_answer(l, ep, req, de, &a);
}

/* ---- resources ---- */

static const char core_links[] = "</sessions>;rt=\"coapgw.sessions\";ct=50,"
                                 "</devices>;rt=\"coapgw.devices\";ct=50,"
                                 "</echo>;rt=\"coapgw.echo\","
                                 "</help>;rt=\"coapgw.help\";ct=0";

static const char help_text[] =
    "coapgw - CoAP gateway to mesh devices.\n"
    "1. Create a session: POST your JWT as the payload to coap://<gateway>/sessions\n"
    "   options as query: sticky=true|false (default false), security=netmgr|none\n"
    "   (default netmgr), single=true|false. Answer: 2.01 with Location-Path\n"
    "   sessions/<id> (the id is also in the JSON). The session is bound to your\n"
    "   source address AND port: always send from the same port (coap-client -p).\n"
    "   An address:port holding a live session of another account gets 4.03.\n"
    "   sticky=true moves your account's session here; its observations at the\n"
    "   old address end with a final 4.01 notification (register again here).\n"
    "2. Reach a device through the proxy: Proxy-Uri coap://<MAC-ID>/<path>\n"
    "   (coap-client -P coap://<gateway> ... coap://<MAC-ID>/path). The gateway\n"
    "   ACKs at once and answers separately when the device has answered.\n"
    "3. End the session: DELETE coap://<gateway>/sessions/<id>. The bare\n"
    "   DELETE /sessions still works, but only the id form resists a sender that\n"
    "   spoofs your address; another id gets 4.04 and ends nothing.\n"
    "Binding sessions to an address is the original product's design: only\n"
    "DTLS or OSCORE would remove address spoofing entirely.\n"
    "Without a session, answers are at most 3x the request (Block2) and rate-limited.\n"
    "Sessions end after idle time, at token expiry and at a maximum lifetime.\n"
    "Milli (battery) devices take one request at a time: a second one gets 5.03.\n"
    "GET /devices lists the devices your session may reach.\n";

static bool query_bool(const uint8_t *v, size_t n, int *out)
{
    if (n == 4 && !memcmp(v, "true", 4))
        return *out = 1, true;
    if (n == 5 && !memcmp(v, "false", 5))
        return *out = 0, true;
    return false;
}

/* The session document (S2.3), built with jansson so that an account name
 * can never inject keys or break the JSON. Returns a malloc'd string or NULL. */
static char *session_json(const struct gw_session *s)
{
    char id[20];
    snprintf(id, sizeof(id), "%016llx", (unsigned long long)s->id);
    json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:b, s:I, s:I}", "id", id, "account", s->account,
                          "security", s->security == GW_SEC_NETMGR ? "netmgr" : "none", "sticky",
                          (int)s->sticky, "single", (int)s->single, "created",
                          (json_int_t)s->created, "expires", (json_int_t)s->token_exp);
    if (!o)
        return NULL;
    if (s->node && json_object_set_new(o, "node", json_integer(s->node - 1)) != 0) {
        json_decref(o);
        return NULL;
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

static void answer_json(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de, const struct answer *tmpl, uint8_t code,
                        char *json, const char *loc1)
{
    if (!json) {
        answer_text(l, ep, req, de, GW_COAP_INTERNAL, "out of memory building the answer");
        return;
    }
    struct answer a = *tmpl;
    a.code = code;
    a.cf = 50;
    a.payload = (const uint8_t *)json;
    a.len = strlen(json);
    if (loc1) {
        a.loc[0] = "sessions";
        a.loc[1] = loc1;
    }
    send_answer(l, ep, req, de, &a);
    free(json);
}

/* S10.4: a token with a `node` claim is a gateway node's, accepted only
 * from that node's address as listed in `nodes` (the port is the node's
 * ephemeral peer socket's), never for this node itself. True after a 4.01
 * and a WARN naming the address. */
static bool node_claim_refused(struct fe_local *l, const struct gw_ep *ep,
                               const struct fe_claims *claims, const struct gw_coap_msg *req,
                               struct fe_dedup_entry *de)
{
    struct gw_nodes *n = l->nodes;
    const char *why = NULL;
    char err[160];
    if (!n || n->count < 2)
        why = "node tokens are accepted only by the nodes of a cluster (node_count > 1)";
    else if ((uint32_t)claims->node >= n->count || (uint32_t)claims->node == n->self)
        why = "the node claim names no other node of this cluster";
    else if (!n->resolved && gw_nodes_resolve(n, err, sizeof(err)) != 0)
        why = "the cluster's node addresses do not resolve";
    else {
        const struct gw_ep *want = &n->ep[claims->node];
        if (want->family != ep->family || memcmp(want->addr, ep->addr, sizeof(ep->addr)) != 0)
            why = "a node token is accepted only from that node's address";
    }
    if (!why)
        return false;
    if (gw_log_ratelimit(&l->conflict_log, now_ms(l), (double)l->cfg->unauth_log_per_s,
                         (double)l->cfg->unauth_log_per_s * 2)) {
        char eps[GW_EP_STRLEN], note[64];
        const char *sup = gw_log_suppressed_note(&l->conflict_log, note, sizeof(note));
        gw_log_warn(GW_LOG_AUTH, "node token (node %d, account '%s') from %s refused: %s%s",
                    (int)claims->node, claims->sub, gw_ep_str(ep, eps, sizeof(eps)), why, sup);
    }
    answer_text(l, ep, req, de, GW_COAP_UNAUTHORIZED, why);
    return true;
}

static void sessions_post(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                          struct fe_dedup_entry *de, const struct parts *p, const uint8_t *body,
                          size_t blen, const struct answer *tmpl)
{
    int sticky = 0, single = 0, security = GW_SEC_NETMGR;
    for (unsigned i = 0; i < p->nq; i++) {
        const uint8_t *q = p->q[i].p;
        size_t n = p->q[i].len;
        const uint8_t *eq = memchr(q, '=', n);
        size_t kl = eq ? (size_t)(eq - q) : n;
        const uint8_t *v = eq ? eq + 1 : (const uint8_t *)"true";
        size_t vl = eq ? n - kl - 1 : 4;
        bool ok;
        if (kl == 6 && !memcmp(q, "sticky", 6))
            ok = query_bool(v, vl, &sticky);
        else if (kl == 6 && !memcmp(q, "single", 6))
            ok = query_bool(v, vl, &single);
        else if (kl == 8 && !memcmp(q, "security", 8)) {
            ok = true;
            if (vl == 6 && !memcmp(v, "netmgr", 6))
                security = GW_SEC_NETMGR;
            else if (vl == 4 && !memcmp(v, "none", 4))
                security = GW_SEC_NONE;
            else
                ok = false;
        } else {
            answer_text(l, ep, req, de, GW_COAP_BAD_REQUEST,
                        "unknown session option (sticky, security, single)");
            return;
        }
        if (!ok) {
            answer_text(
                l, ep, req, de, GW_COAP_BAD_REQUEST,
                "bad session option value (sticky/single: true|false, security: netmgr|none)");
            return;
        }
    }
    const struct gw_coap_opt *cf = gw_coap_opt_find(req, GW_OPT_CONTENT_FORMAT);
    uint32_t cfv;
    if (cf && (!gw_coap_uint(cf->val, cf->len, &cfv) || cfv != 0)) {
        answer_text(l, ep, req, de, GW_COAP_UNSUPPORTED_CF,
                    "the token must be text/plain or have no Content-Format");
        return;
    }
    if (blen == 0) {
        answer_text(l, ep, req, de, GW_COAP_UNAUTHORIZED,
                    "missing token: POST a JWT as the payload");
        return;
    }
    struct fe_claims claims;
    const char *diag = NULL;
    int64_t now = now_wall(l);
    int rc = fe_auth_verify(l->auth, (const char *)body, blen, now, &claims, &diag);
    if (rc) {
        char eps[GW_EP_STRLEN], msg[160];
        gw_log_info(GW_LOG_AUTH, "session refused for %s: %s", gw_ep_str(ep, eps, sizeof(eps)),
                    diag ? diag : gw_strerror(rc));
        snprintf(msg, sizeof(msg), "invalid token: %s", diag ? diag : gw_strerror(rc));
        answer_text(l, ep, req, de, GW_COAP_UNAUTHORIZED, msg);
        return;
    }
    if (claims.node >= 0 && node_claim_refused(l, ep, &claims, req, de))
        return;
    char holder[FE_ACCOUNT_MAX];
    struct fe_sess_req rq = {
        claims.sub, *ep,           (uint8_t)security, (uint8_t)sticky, (uint8_t)single,
        claims.exp, &claims.scope, l->session_ended,  l->ctx,          holder,
        0
    };
    if (claims.node >= 0) {
        /* A node speaks for its clients: all devices, one session per
         * socket, never sticky or single (fe_session.h). */
        rq.node = (uint8_t)(claims.node + 1);
        rq.sticky = rq.single = 0;
        claims.scope.all = 1;
    }
    struct gw_session s;
    struct gw_ep moved;
    diag = NULL;
    rc = fe_session_create(l->store, l->scfg, &rq, now, &s, &moved, &diag);
    if (rc == GW_EFORBIDDEN && holder[0] &&
        gw_log_ratelimit(&l->conflict_log, now_ms(l), (double)l->cfg->unauth_log_per_s,
                         (double)l->cfg->unauth_log_per_s * 2)) {
        /* S2.10: maybe a spoofed source trying to take over (or downgrade)
         * another account's session; nothing was changed. */
        char eps[GW_EP_STRLEN], note[64];
        const char *sup = gw_log_suppressed_note(&l->conflict_log, note, sizeof(note));
        gw_log_warn(GW_LOG_AUTH,
                    "session request for account '%s' from %s refused: the endpoint holds a live "
                    "session of account '%s'%s",
                    claims.sub, gw_ep_str(ep, eps, sizeof(eps)), holder, sup);
    }
    if (rc == GW_EFORBIDDEN) {
        answer_text(l, ep, req, de, GW_COAP_FORBIDDEN, diag);
        return;
    }
    if (rc == GW_EFULL) {
        answer_text(l, ep, req, de, GW_COAP_UNAVAILABLE, diag ? diag : "session table full");
        return;
    }
    if (rc) {
        gw_log_err(GW_LOG_STORE, "creating a session: %s", gw_strerror(rc));
        answer_text(l, ep, req, de, GW_COAP_INTERNAL, "session store error");
        return;
    }
    char eps[GW_EP_STRLEN];
    gw_log_info(GW_LOG_AUTH, "session %016llx for account '%s' at %s%s", (unsigned long long)s.id,
                s.account, gw_ep_str(ep, eps, sizeof(eps)), moved.family ? " (sticky: moved)" : "");
    l->session_created(l->ctx, &s, moved.family ? &moved : NULL);
    char idstr[20];
    snprintf(idstr, sizeof(idstr), "%016llx", (unsigned long long)s.id);
    answer_json(l, ep, req, de, tmpl, GW_COAP_CREATED, session_json(&s), idstr);
}

static bool parse_id(const uint8_t *p, size_t n, uint64_t *id)
{
    if (n == 0 || n > 16)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        int d = gw_hex_digit(p[i]);
        if (d < 0)
            return false;
        v = v << 4 | (uint64_t)d;
    }
    *id = v;
    return true;
}

static void sessions_res(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                         struct fe_dedup_entry *de, const struct parts *p, const uint8_t *body,
                         size_t blen, const struct answer *tmpl)
{
    if (p->nseg > 2) {
        answer_text(l, ep, req, de, GW_COAP_NOT_FOUND, "no such resource");
        return;
    }
    uint64_t id = 0;
    if (p->nseg == 2 && !parse_id(p->seg[1].p, p->seg[1].len, &id)) {
        answer_text(l, ep, req, de, GW_COAP_NOT_FOUND, "no such session");
        return;
    }
    if (req->code == GW_COAP_POST && p->nseg == 1) {
        sessions_post(l, ep, req, de, p, body, blen, tmpl);
        return;
    }
    if (req->code != GW_COAP_GET && req->code != GW_COAP_DELETE) {
        answer_text(l, ep, req, de, GW_COAP_NOT_ALLOWED,
                    p->nseg == 1 ? "use POST, GET or DELETE" : "use GET or DELETE");
        return;
    }
    struct gw_session s;
    int rc = fe_session_lookup(l->store, l->scfg, ep, now_wall(l), &s);
    if (rc || (id && s.id != id)) {
        answer_text(l, ep, req, de, GW_COAP_NOT_FOUND,
                    rc ? "no session for this address and port"
                       : "that session does not belong to this address and port");
        return;
    }
    if (req->code == GW_COAP_GET) {
        answer_json(l, ep, req, de, tmpl, GW_COAP_CONTENT, session_json(&s), NULL);
        return;
    }
    struct gw_session ended;
    rc = fe_session_delete(l->store, ep, s.id, &ended);
    if (rc) {
        answer_text(l, ep, req, de, rc == GW_ENOTFOUND ? GW_COAP_NOT_FOUND : GW_COAP_INTERNAL,
                    rc == GW_ENOTFOUND ? "no session" : "session store error");
        return;
    }
    char eps[GW_EP_STRLEN];
    gw_log_info(GW_LOG_AUTH, "session %016llx of '%s' at %s deleted", (unsigned long long)ended.id,
                ended.account, gw_ep_str(ep, eps, sizeof(eps)));
    l->session_ended(l->ctx, &ended);
    answer_text(l, ep, req, de, GW_COAP_DELETED, NULL);
}

struct devlist {
    json_t *arr;
    const struct fe_scope *scope;
    size_t bytes;
};

static int devlist_add(void *ctx, const struct gw_device *d)
{
    struct devlist *dl = ctx;
    if (!fe_scope_allows(dl->scope, d->mac))
        return 0;
    char mac[17];
    gw_mac_str(d->mac, mac);
    json_t *o =
        json_pack("{s:s, s:s}", "mac", mac, "type", d->type == GW_DEV_MILLI ? "milli" : "normal");
    if (!o || json_array_append_new(dl->arr, o) != 0)
        return 1;
    dl->bytes += 40;
    return dl->bytes > 1u << 20; /* bounded answer */
}

static void devices_res(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de, const struct answer *tmpl)
{
    if (req->code != GW_COAP_GET) {
        answer_text(l, ep, req, de, GW_COAP_NOT_ALLOWED, "use GET");
        return;
    }
    struct gw_session s;
    if (fe_session_lookup(l->store, l->scfg, ep, now_wall(l), &s) != 0) {
        answer_text(l, ep, req, de, GW_COAP_UNAUTHORIZED,
                    "no session for this address and port: POST a token to /sessions first");
        return;
    }
    /* Built with jansson: a scope that matches nothing is `[]` (S8.1). */
    struct devlist dl = { json_array(), &s.scope, 0 };
    if (!dl.arr || gw_registry_foreach(l->store, devlist_add, &dl) != 0) {
        json_decref(dl.arr);
        answer_text(l, ep, req, de, GW_COAP_INTERNAL, "device registry error");
        return;
    }
    char *text = json_dumps(dl.arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(dl.arr);
    answer_json(l, ep, req, de, tmpl, GW_COAP_CONTENT, text, NULL);
}

/* A fixed document answered to GET (S8.1). */
static void fixed_get(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                      struct fe_dedup_entry *de, const struct answer *tmpl, int cf, const char *doc,
                      size_t len)
{
    if (req->code != GW_COAP_GET) {
        answer_text(l, ep, req, de, GW_COAP_NOT_ALLOWED, "use GET");
        return;
    }
    struct answer a = *tmpl;
    a.code = GW_COAP_CONTENT;
    a.cf = cf;
    a.payload = (const uint8_t *)doc;
    a.len = len;
    send_answer(l, ep, req, de, &a);
}

/* Dispatch once the whole request body is known. */
static void dispatch(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                     struct fe_dedup_entry *de, const struct parts *p, const uint8_t *body,
                     size_t blen, const struct answer *tmpl)
{
    uint8_t code = req->code;
    if (p->nseg == 2 && seg_is(p, 0, ".well-known") && seg_is(p, 1, "core")) {
        fixed_get(l, ep, req, de, tmpl, 40, core_links, sizeof(core_links) - 1);
        return;
    }
    if (p->nseg == 1 && seg_is(p, 0, "echo")) {
        struct answer a = *tmpl;
        a.code = code == GW_COAP_GET || code == GW_COAP_FETCH ? GW_COAP_CONTENT
                 : code == GW_COAP_DELETE                     ? GW_COAP_DELETED
                                                              : GW_COAP_CHANGED;
        const struct gw_coap_opt *cf = gw_coap_opt_find(req, GW_OPT_CONTENT_FORMAT);
        uint32_t cfv;
        a.cf = cf && gw_coap_uint(cf->val, cf->len, &cfv) ? (int)cfv : -1;
        a.payload = body;
        a.len = blen;
        send_answer(l, ep, req, de, &a);
        return;
    }
    if (p->nseg == 1 && seg_is(p, 0, "help")) {
        fixed_get(l, ep, req, de, tmpl, 0, help_text, sizeof(help_text) - 1);
        return;
    }
    if (p->nseg >= 1 && seg_is(p, 0, "sessions")) {
        sessions_res(l, ep, req, de, p, body, blen, tmpl);
        return;
    }
    if (p->nseg == 1 && seg_is(p, 0, "devices")) {
        devices_res(l, ep, req, de, tmpl);
        return;
    }
    answer_text(l, ep, req, de, GW_COAP_NOT_FOUND, "no such resource (see /.well-known/core)");
}

/* Unknown critical options make a request unprocessable (RFC 7252 5.4.1). */
static bool options_understood(const struct gw_coap_msg *req)
{
    for (unsigned i = 0; i < req->nopts; i++) {
        uint16_t n = req->opts[i].num;
        bool ok = n == GW_OPT_URI_PATH || n == GW_OPT_URI_QUERY || n == GW_OPT_URI_HOST ||
                  n == GW_OPT_URI_PORT || n == GW_OPT_CONTENT_FORMAT || n == GW_OPT_ACCEPT ||
                  n == GW_OPT_BLOCK1 || n == GW_OPT_BLOCK2 || n == GW_OPT_SIZE1 ||
                  n == GW_OPT_SIZE2 || n == GW_OPT_PROXY_URI || n == GW_OPT_PROXY_SCHEME ||
                  n == GW_OPT_NO_RESPONSE || n == GW_OPT_ETAG || n == GW_OPT_OBSERVE ||
                  n == GW_OPT_IF_MATCH || n == GW_OPT_IF_NONE_MATCH;
        if (!ok && gw_opt_critical(n))
            return false;
    }
    return true;
}

/* The key of a block-wise transfer: path segments and method, under `seed`
 * (one seed per direction, so a Block1 upload and a Block2 answer of the
 * same resource never share an entry). */
static uint64_t path_key(const struct parts *p, const struct gw_coap_msg *req, uint64_t seed)
{
    uint64_t key = seed;
    for (unsigned i = 0; i < p->nseg; i++)
        key = gw_hash64(p->seg[i].p, p->seg[i].len, gw_hash64("/", 1, key));
    return gw_hash64(&req->code, 1, key);
}

/* A follow-up block (num > 0) of an answer kept by send_answer. */
static void serve_block2(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                         struct fe_dedup_entry *de, uint64_t pkey, const struct gw_block *b2r)
{
    struct fe_block_xfer *x = fe_blocks_find(l->blocks, ep, pkey, 2, now_ms(l));
    size_t wl;
    struct gw_coap_msg full;
    if (!x || x->len < sizeof(wl)) {
        answer_text(l, ep, req, de, GW_COAP_INCOMPLETE,
                    "no stored answer for this Block2 request: repeat the request");
        return;
    }
    memcpy(&wl, x->data, sizeof(wl));
    if (wl > x->len - sizeof(wl) ||
        gw_coap_parse(l->parser, x->data + sizeof(wl), wl, &full) != 0) {
        answer_text(l, ep, req, de, GW_COAP_INTERNAL, "stored answer damaged");
        return;
    }
    full.payload = x->data + sizeof(wl) + wl;
    full.payload_len = x->len - sizeof(wl) - wl;
    uint8_t out[GW_COAP_MAX_MSG + 64];
    size_t ol;
    uint8_t type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
    uint16_t mid = req->type == GW_COAP_CON ? req->mid : l->mid(l->ctx);
    if (fe_block_slice(&full, b2r->num, GW_MIN(b2r->szx, 6), type, mid, req->token, req->tkl, out,
                       sizeof(out), &ol) != 0) {
        answer_text(l, ep, req, de, GW_COAP_BAD_OPTION, "Block2 number past the end of the answer");
        return;
    }
    l->reply(l->ctx, ep, req, de, out, ol);
}

/* 4.13 with Size1: the body would exceed block_max_body. */
static void refuse_body(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de)
{
    uint8_t out[128];
    struct gw_cb b;
    uint8_t type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
    gw_cb_init(&b, out, sizeof(out), type, GW_COAP_TOO_LARGE,
               req->type == GW_COAP_CON ? req->mid : l->mid(l->ctx), req->token, req->tkl);
    gw_cb_opt_uint(&b, GW_OPT_SIZE1, (uint32_t)l->blocks->max_body);
    gw_cb_payload(&b, "request body too large", 22);
    size_t ol;
    if (gw_cb_finish(&b, &ol) == 0)
        l->reply(l->ctx, ep, req, de, out, ol);
}

/* S8.2: Block1 request bodies, assembled in order up to block_max_body;
 * the last block dispatches the whole body. */
static void take_block1(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                        struct fe_dedup_entry *de, const struct parts *p, struct answer *tmpl,
                        const struct gw_coap_opt *b1o)
{
    struct gw_block b1;
    if (!gw_block_decode(b1o, &b1)) {
        answer_text(l, ep, req, de, GW_COAP_BAD_OPTION, "bad Block1 option");
        return;
    }
    uint64_t key = path_key(p, req, GW_HASH_SEED ^ 0xb1);
    uint64_t now = now_ms(l);
    size_t bs = (size_t)16 << b1.szx;
    struct fe_block_xfer *x;
    if (b1.num == 0) {
        x = fe_blocks_new(l->blocks, ep, key, 1, now, l->sessionless);
        if (!x) {
            answer_text(l, ep, req, de, GW_COAP_UNAVAILABLE,
                        "too many block-wise transfers without a session");
            return;
        }
    } else {
        x = fe_blocks_find(l->blocks, ep, key, 1, now);
        if (!x || x->len != (size_t)b1.num * bs) {
            answer_text(l, ep, req, de, GW_COAP_INCOMPLETE,
                        "Block1 out of order or transfer unknown: start again at block 0");
            if (x)
                fe_blocks_drop(l->blocks, x);
            return;
        }
    }
    if (b1.more && req->payload_len != bs) {
        answer_text(l, ep, req, de, GW_COAP_BAD_REQUEST,
                    "Block1 payload does not match its block size");
        fe_blocks_drop(l->blocks, x);
        return;
    }
    if (fe_blocks_append(l->blocks, x, req->payload, req->payload_len) != 0) {
        fe_blocks_drop(l->blocks, x);
        refuse_body(l, ep, req, de);
        return;
    }
    if (b1.more) {
        struct answer a = *tmpl;
        a.code = GW_COAP_CONTINUE;
        a.block1_echo = true;
        a.b1 = b1;
        send_answer(l, ep, req, de, &a);
        return;
    }
    tmpl->block1_echo = true;
    tmpl->b1 = b1;
    size_t blen = x->len;
    uint8_t *body = x->data;
    x->data = NULL;
    fe_blocks_drop(l->blocks, x);
    dispatch(l, ep, req, de, p, body, blen, tmpl);
    free(body);
}

void fe_local_handle(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                     const struct fe_target *t, struct fe_dedup_entry *de)
{
    struct parts p;
    get_parts(req, t, &p);
    struct answer tmpl = { .cf = -1, .max_age = UINT32_MAX };
    if (!options_understood(req)) {
        answer_text(l, ep, req, de, GW_COAP_BAD_OPTION, "unrecognized critical option");
        return;
    }
    uint64_t pkey = path_key(&p, req, GW_HASH_SEED ^ 0xb2);
    tmpl.store_key = pkey;
    const struct gw_coap_opt *b2q = gw_coap_opt_find(req, GW_OPT_BLOCK2);
    struct gw_block b2r;
    if (req->code != GW_COAP_GET && b2q && gw_block_decode(b2q, &b2r) && b2r.num > 0) {
        serve_block2(l, ep, req, de, pkey, &b2r);
        return;
    }
    const struct gw_coap_opt *b1o = gw_coap_opt_find(req, GW_OPT_BLOCK1);
    if (!b1o) {
        dispatch(l, ep, req, de, &p, req->payload, req->payload_len, &tmpl);
        return;
    }
    take_block1(l, ep, req, de, &p, &tmpl, b1o);
}
