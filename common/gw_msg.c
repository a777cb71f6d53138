/* SPDX-License-Identifier: MIT */
/* gw_msg.c - envelope constructors, and bounds checks of a ring record before anyone reads
 * its envelope (see gw_msg.h). */
#include "gw_msg.h"
#include "gw_error.h"
#include "gw_ring.h"

#include <string.h>

int gw_msg_decode(const uint8_t *rec, size_t n, struct gw_msg *hdr, const uint8_t **data)
{
    if (n < sizeof(*hdr))
        return GW_EBADMSG;
    memcpy(hdr, rec, sizeof(*hdr));
    if (hdr->kind == 0 || hdr->kind >= GW_MSG_KIND_MAX)
        return GW_EBADMSG;
    if (hdr->len != n - sizeof(*hdr) || hdr->len > GW_COAP_MAX_MSG + 16)
        return GW_EBADMSG;
    if (hdr->tkl > GW_COAP_MAX_TOKEN || hdr->security > GW_SEC_NETMGR)
        return GW_EBADMSG;
    if (hdr->ep.family != 0 && hdr->ep.family != 4 && hdr->ep.family != 6)
        return GW_EBADMSG;
    *data = rec + sizeof(*hdr);
    return 0;
}

size_t gw_notify_set_count(const struct gw_msg *env, const uint8_t *data)
{
    struct gw_notify_hdr h;
    if (env->kind != GW_MSG_NOTIFY_SET || env->len < sizeof(h))
        return 0;
    memcpy(&h, data, sizeof(h));
    /* The length first: only then is the message's first byte inside. */
    if (h.msg_len < 4 ||
        (size_t)env->len != sizeof(h) + h.msg_len + (size_t)h.count * sizeof(struct gw_notify_to))
        return 0;
    if ((data[sizeof(h)] & 0x0f) != 0)
        return 0;
    return h.count;
}

int gw_notify_set_to(const struct gw_msg *env, const uint8_t *data, size_t i,
                     struct gw_notify_to *to)
{
    struct gw_notify_hdr h;
    if (i >= gw_notify_set_count(env, data))
        return GW_EBADMSG;
    memcpy(&h, data, sizeof(h));
    memcpy(to, data + sizeof(h) + h.msg_len + i * sizeof(*to), sizeof(*to));
    if (to->tkl > GW_COAP_MAX_TOKEN || (to->ep.family != 4 && to->ep.family != 6) ||
        (size_t)h.msg_len + to->tkl > GW_COAP_MAX_MSG + 16)
        return GW_EBADMSG;
    return 0;
}

int gw_notify_set_get(const struct gw_msg *env, const uint8_t *data, size_t i, struct gw_msg *m,
                      uint8_t *out, size_t cap)
{
    struct gw_notify_hdr h;
    struct gw_notify_to to;
    if (gw_notify_set_to(env, data, i, &to) != 0)
        return GW_EBADMSG;
    memcpy(&h, data, sizeof(h));
    const uint8_t *msg = data + sizeof(h);
    if ((size_t)h.msg_len + to.tkl > cap)
        return GW_EBADMSG;
    *m = *env;
    m->kind = GW_MSG_RESP;
    m->flags = (uint8_t)(env->flags | (to.flags & GW_MF_ANSWER));
    m->ep = to.ep;
    m->session = to.session;
    m->tkl = to.tkl;
    memset(m->token, 0, sizeof(m->token));
    memcpy(m->token, to.token, to.tkl);
    m->len = (uint16_t)(h.msg_len + to.tkl);
    /* The token goes between the 4-byte header and the options. */
    memcpy(out, msg, 4);
    out[0] = (uint8_t)((out[0] & 0xf0) | to.tkl);
    memcpy(out + 4, to.token, to.tkl);
    memcpy(out + 4 + to.tkl, msg + 4, h.msg_len - 4u);
    return 0;
}

static void init(struct gw_msg *m, uint8_t kind)
{
    memset(m, 0, sizeof(*m));
    m->kind = kind;
}

/* The kinds addressed to or from one device. */
static void device_msg(struct gw_msg *m, uint8_t kind, uint8_t security,
                       const uint8_t mac[GW_MAC_LEN], size_t len)
{
    init(m, kind);
    m->security = security;
    memcpy(m->mac, mac, GW_MAC_LEN);
    m->len = (uint16_t)len;
}

void gw_msg_req(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN], size_t len)
{
    device_msg(m, GW_MSG_REQ, security, mac, len);
}

void gw_msg_resp(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN], size_t len)
{
    device_msg(m, GW_MSG_RESP, security, mac, len);
}

void gw_msg_notify_set(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN],
                       uint8_t flags, uint32_t observe)
{
    device_msg(m, GW_MSG_NOTIFY_SET, security, mac, 0);
    m->flags = flags;
    m->aux = observe;
}

void gw_msg_set_client(struct gw_msg *m, uint8_t fe, uint64_t session, const struct gw_ep *ep,
                       uint8_t client_type, const uint8_t *token, uint8_t tkl, uint64_t req_id)
{
    m->fe = fe;
    m->session = session;
    m->ep = *ep;
    m->client_type = client_type;
    m->tkl = tkl;
    memcpy(m->token, token, tkl);
    m->req_id = req_id;
}

void gw_msg_obs_gone(struct gw_msg *m, uint8_t fe, const struct gw_ep *ep, const uint8_t *token,
                     uint8_t tkl, uint64_t session)
{
    init(m, GW_MSG_OBS_GONE);
    m->fe = fe;
    m->ep = *ep;
    m->tkl = tkl;
    memcpy(m->token, token, tkl);
    m->session = session;
}

static void session_notice(struct gw_msg *m, uint8_t kind, uint8_t fe, const struct gw_ep *ep,
                           uint64_t session)
{
    init(m, kind);
    m->fe = fe;
    m->ep = *ep;
    m->session = session;
}

void gw_msg_session_end(struct gw_msg *m, uint8_t fe, const struct gw_ep *ep, uint64_t session)
{
    session_notice(m, GW_MSG_SESSION_END, fe, ep, session);
}

void gw_msg_session_moved(struct gw_msg *m, uint8_t fe, const struct gw_ep *old_ep,
                          uint64_t session)
{
    session_notice(m, GW_MSG_SESSION_MOVED, fe, old_ep, session);
}

void gw_msg_fe_start(struct gw_msg *m, uint8_t fe)
{
    init(m, GW_MSG_FE_START);
    m->fe = fe;
}

void gw_msg_answer_done(struct gw_msg *m, uint8_t fe, const struct gw_ep *ep, uint16_t client_mid)
{
    init(m, GW_MSG_ANSWER_DONE);
    m->fe = fe;
    m->ep = *ep;
    m->client_mid = client_mid;
}

void gw_msg_mesh_tx(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN],
                    uint8_t flags, uint64_t req_id, size_t len)
{
    device_msg(m, GW_MSG_MESH_TX, security, mac, len);
    m->flags = flags;
    m->req_id = req_id;
}

void gw_msg_mesh_rx(struct gw_msg *m, uint8_t security, const uint8_t mac[GW_MAC_LEN], size_t len)
{
    device_msg(m, GW_MSG_MESH_RX, security, mac, len);
}

int gw_msg_pop(struct gw_ring *r, uint8_t *rec, size_t cap, struct gw_msg *hdr,
               const uint8_t **data)
{
    int n = gw_ring_pop(r, rec, cap > UINT32_MAX ? UINT32_MAX : (uint32_t)cap);
    if (n == GW_EEMPTY)
        return GW_EEMPTY;
    if (n < 0 || gw_msg_decode(rec, (size_t)n, hdr, data) != 0)
        return GW_EBADMSG;
    return 0;
}
