/* SPDX-License-Identifier: MIT */
/* mesh_peer.c - forwarding to the owner node: the message rewrite, node tokens and the
 * per-link session state (see mesh_peer.h). No sockets here: meshio.c sends. */
#include "mesh_peer.h"
#include "gw_error.h"
#include "gw_msg.h"

#include <errno.h>
#include <jwt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int mesh_peer_rewrite(struct gw_coap_parser *p, const uint8_t *coap, size_t len,
                      const uint8_t mac[GW_MAC_LEN], uint8_t security, uint8_t *out, size_t cap,
                      size_t *outlen)
{
    *outlen = 0;
    struct gw_coap_msg m;
    int rc = gw_coap_parse(p, coap, len, &m);
    if (rc)
        return rc == GW_EFULL ? GW_EFULL : GW_EBADMSG;
    if (m.code == GW_COAP_EMPTY) {
        if (len > cap)
            return GW_ETOOBIG;
        memcpy(out, coap, len);
        *outlen = len;
        return 0;
    }
    if ((m.code >> 5) != 0)
        return GW_EBADMSG; /* the scheduler sends devices requests and empty messages only */
    for (unsigned i = 0; i < m.nopts; i++) {
        uint16_t n = m.opts[i].num;
        if (n == GW_OPT_URI_HOST || n == GW_OPT_URI_PORT || n == GW_OPT_PROXY_URI ||
            n == GW_OPT_PROXY_SCHEME)
            return GW_EBADMSG;
    }
    if (m.nopts + 3u > GW_COAP_MAX_OPTS)
        return GW_EFULL;
    char host[17];
    gw_mac_str(mac, host);
    uint8_t port[4];
    size_t pl = gw_coap_uint_enc(security == GW_SEC_NETMGR ? 4849 : 5683, port);
    m.opts[m.nopts++] = (struct gw_coap_opt){ GW_OPT_URI_HOST, 16, (const uint8_t *)host };
    m.opts[m.nopts++] = (struct gw_coap_opt){ GW_OPT_URI_PORT, (uint16_t)pl, port };
    m.opts[m.nopts++] = (struct gw_coap_opt){ GW_OPT_PROXY_SCHEME, 4, (const uint8_t *)"coap" };
    /* gw_coap_encode sorts the options stably by number. */
    rc = gw_coap_encode(&m, out, cap, outlen);
    if (rc)
        return GW_ETOOBIG;
    if (*outlen > GW_COAP_MAX_MSG + 16) {
        *outlen = 0;
        return GW_ETOOBIG;
    }
    return 0;
}

int mesh_peer_unauth_rewrite(const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                             size_t *outlen)
{
    if (len < 4 || (in[0] >> 6) != 1 || ((in[0] >> 4) & 3) != GW_COAP_ACK ||
        in[1] != GW_COAP_UNAUTHORIZED)
        return 0;
    uint8_t tkl = in[0] & 0x0f;
    if (tkl > 8 || len < 4u + tkl)
        return 0;
    struct gw_cb b;
    gw_cb_init(&b, out, cap, GW_COAP_ACK, GW_COAP_UNAVAILABLE, (uint16_t)(in[2] << 8 | in[3]),
               in + 4, tkl);
    gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, 1);
    gw_cb_payload(&b, MESH_PEER_DIAG_REAUTH, strlen(MESH_PEER_DIAG_REAUTH));
    if (gw_cb_finish(&b, outlen) != 0)
        return GW_ETOOBIG;
    return 1;
}

int mesh_peer_token(const uint8_t *key, size_t keylen, uint32_t self, int64_t now_s, int64_t ttl_s,
                    const char *iss, const char *aud, char **out)
{
    *out = NULL;
    if (!key || keylen == 0 || ttl_s <= 0)
        return -EINVAL;
    char sub[32];
    snprintf(sub, sizeof(sub), "node-%u", self);
    jwt_t *jwt = NULL;
    int rc = -ENOMEM;
    if (jwt_new(&jwt) != 0)
        return -ENOMEM;
    if (jwt_add_grant(jwt, "sub", sub) || jwt_add_grant_int(jwt, "node", (long)self) ||
        jwt_add_grant_int(jwt, "iat", (long)now_s) ||
        jwt_add_grant_int(jwt, "exp", (long)(now_s + ttl_s)) ||
        (iss && iss[0] && jwt_add_grant(jwt, "iss", iss)) ||
        (aud && aud[0] && jwt_add_grant(jwt, "aud", aud)) ||
        jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)keylen))
        goto done;
    *out = jwt_encode_str(jwt);
    rc = *out ? 0 : -ENOMEM;
done:
    jwt_free(jwt);
    return rc;
}

int mesh_peer_session_post(uint16_t mid, const uint8_t token[8], uint8_t security, const char *jwt,
                           uint8_t *out, size_t cap, size_t *outlen)
{
    struct gw_cb b;
    gw_cb_init(&b, out, cap, GW_COAP_CON, GW_COAP_POST, mid, token, 8);
    gw_cb_opt_str(&b, GW_OPT_URI_PATH, "sessions");
    gw_cb_opt_str(&b, GW_OPT_URI_QUERY,
                  security == GW_SEC_NETMGR ? "security=netmgr" : "security=none");
    gw_cb_payload(&b, jwt, strlen(jwt));
    return gw_cb_finish(&b, outlen);
}

void mesh_link_deinit(struct mesh_link *l)
{
    free(l->q);
    l->q = NULL;
    l->qn = l->qhead = 0;
}

static int start_opening(struct mesh_link *l, uint64_t now_ms)
{
    l->state = MESH_LINK_OPENING;
    l->backoff = MESH_PEER_RETRY_MIN_MS;
    l->next_ms = now_ms;
    return MESH_LINK_POST;
}

int mesh_link_submit(struct mesh_link *l, uint32_t qmax, const uint8_t *d, size_t n, bool empty,
                     uint64_t now_ms)
{
    if (empty || l->state == MESH_LINK_OPEN)
        return MESH_LINK_SEND;
    if (n > MESH_PEER_DGRAM_MAX || qmax == 0)
        return MESH_LINK_NOTHING;
    if (!l->q) {
        l->q = calloc(qmax, sizeof(*l->q));
        if (!l->q)
            return MESH_LINK_NOTHING;
        l->qmax = qmax;
        l->qn = l->qhead = 0;
    }
    if (l->qn == l->qmax) {
        /* Full: the oldest goes (its scheduler retry or timeout covers it). */
        l->qhead = (l->qhead + 1) % l->qmax;
        l->qn--;
        l->dropped++;
    }
    struct mesh_held_dgram *h = &l->q[(l->qhead + l->qn) % l->qmax];
    h->len = (uint16_t)n;
    memcpy(h->data, d, n);
    l->qn++;
    int act = MESH_LINK_HELD;
    if (l->state == MESH_LINK_IDLE)
        act |= start_opening(l, now_ms);
    return act;
}

void mesh_link_post_begin(struct mesh_link *l, uint16_t mid, const uint8_t tok[8], int64_t exp_s,
                          uint64_t now_ms)
{
    l->post_out = true;
    l->mid = mid;
    memcpy(l->tok, tok, 8);
    l->exp_s = exp_s;
    if (l->state == MESH_LINK_OPENING) {
        l->next_ms = now_ms + l->backoff;
        l->backoff =
            l->backoff * 2 > MESH_PEER_RETRY_MAX_MS ? MESH_PEER_RETRY_MAX_MS : l->backoff * 2;
    } else {
        /* A renewal on an open session: try again after the shortest
         * back-off when it is not answered; the session stays usable. */
        l->next_ms = now_ms + MESH_PEER_RETRY_MAX_MS;
    }
}

int mesh_link_tick(struct mesh_link *l, uint64_t now_ms)
{
    if (l->state == MESH_LINK_IDLE || now_ms < l->next_ms)
        return MESH_LINK_NOTHING;
    return MESH_LINK_POST;
}

int mesh_link_lost(struct mesh_link *l, uint64_t now_ms)
{
    if (l->state == MESH_LINK_OPENING)
        return MESH_LINK_NOTHING; /* a POST is on its way already */
    return start_opening(l, now_ms);
}

int mesh_link_on_rx(struct mesh_link *l, const struct gw_coap_msg *m, int64_t now_s,
                    uint64_t now_ms, uint64_t renew_max_ms, bool *mine)
{
    *mine = false;
    if (!l->post_out)
        return MESH_LINK_NOTHING;
    bool by_mid = m->type == GW_COAP_ACK && m->mid == l->mid;
    bool by_tok = m->code != GW_COAP_EMPTY && m->tkl == 8 && memcmp(m->token, l->tok, 8) == 0;
    if (m->type == GW_COAP_RST && m->mid == l->mid) {
        *mine = true;
        l->post_out = false;
        return MESH_LINK_REFUSED;
    }
    if (!by_mid && !by_tok)
        return MESH_LINK_NOTHING;
    *mine = true;
    if (m->code == GW_COAP_EMPTY)
        return MESH_LINK_NOTHING; /* the answer follows separately */
    l->post_out = false;
    if (m->code != GW_COAP_CREATED)
        return MESH_LINK_REFUSED; /* the next try follows l->next_ms */
    bool was_open = l->state == MESH_LINK_OPEN;
    l->state = MESH_LINK_OPEN;
    l->open_exp = l->exp_s;
    l->opened++;
    int64_t left = l->exp_s - now_s;
    uint64_t renew = left > 0 ? (uint64_t)left * 1000 / 2 : 0;
    if (renew > renew_max_ms)
        renew = renew_max_ms;
    if (renew < MESH_PEER_RETRY_MIN_MS)
        renew = MESH_PEER_RETRY_MIN_MS;
    l->next_ms = now_ms + renew;
    l->backoff = MESH_PEER_RETRY_MIN_MS;
    return was_open && l->qn == 0 ? MESH_LINK_NOTHING : MESH_LINK_RELEASE;
}

bool mesh_link_pop(struct mesh_link *l, const struct mesh_held_dgram **out)
{
    if (l->qn == 0)
        return false;
    *out = &l->q[l->qhead];
    l->qhead = (l->qhead + 1) % l->qmax;
    l->qn--;
    return true;
}
