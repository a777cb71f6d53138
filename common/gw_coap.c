/* SPDX-License-Identifier: MIT */
/* gw_coap.c - parse with libcoap, encode with our own builder (see gw_coap.h
 * for why libcoap cannot be used for the bytes we emit). */
#include "gw_coap.h"
#include "gw_error.h"

#include <coap3/coap.h>
#include <stdio.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct gw_coap_parser {
    coap_pdu_t *pdu;
};

int gw_coap_parser_new(struct gw_coap_parser **out)
{
    static int started;
    if (!started) {
        coap_startup();
        coap_set_log_level(LOG_EMERG);
        started = 1;
    }
    struct gw_coap_parser *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->pdu = coap_pdu_init(COAP_MESSAGE_CON, 0, 0, GW_COAP_MAX_MSG + 16);
    if (!p->pdu) {
        free(p);
        return -ENOMEM;
    }
    *out = p;
    return 0;
}

void gw_coap_parser_free(struct gw_coap_parser *p)
{
    if (!p)
        return;
    coap_delete_pdu(p->pdu);
    free(p);
}

bool gw_coap_peek(const uint8_t *buf, size_t len, uint8_t *ver, uint8_t *type, uint16_t *mid)
{
    if (len < 4)
        return false;
    *ver = buf[0] >> 6;
    *type = (buf[0] >> 4) & 3;
    *mid = (uint16_t)(buf[2] << 8 | buf[3]);
    return true;
}

int gw_coap_parse(struct gw_coap_parser *p, const uint8_t *buf, size_t len, struct gw_coap_msg *m)
{
    if (len < 4 || len > GW_COAP_MAX_MSG + 16)
        return GW_EBADMSG;
    uint8_t tkl = buf[0] & 15;
    if (tkl > 8)
        return GW_EBADMSG;
    /* An Empty message is exactly 4 bytes (RFC 7252 4.1). libcoap accepts
     * a few of these combinations, so check before handing it over. */
    if (buf[1] == 0 && (len != 4 || tkl != 0))
        return GW_EBADMSG;
    if (!coap_pdu_parse(COAP_PROTO_UDP, buf, len, p->pdu))
        return GW_EBADMSG;
    coap_pdu_t *pdu = p->pdu;
    m->type = (uint8_t)coap_pdu_get_type(pdu);
    m->code = (uint8_t)coap_pdu_get_code(pdu);
    m->mid = (uint16_t)coap_pdu_get_mid(pdu);
    coap_bin_const_t tok = coap_pdu_get_token(pdu);
    if (tok.length > GW_COAP_MAX_TOKEN)
        return GW_EBADMSG;
    m->tkl = (uint8_t)tok.length;
    if (tok.length)
        memcpy(m->token, tok.s, tok.length);
    m->nopts = 0;
    coap_opt_iterator_t it;
    coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
    coap_opt_t *o;
    uint32_t prev = 0;
    while ((o = coap_option_next(&it))) {
        /* libcoap 4.3.1 (coap_opt_parse) keeps the delta in a uint16_t, so a
         * 2-byte extended delta of 65536..65804 wraps to 0..268 and passes.
         * Option numbers stop at 65535 (RFC 7252 3.1): refuse it here. The
         * two extended bytes exist, since libcoap parsed the option. */
        if ((o[0] >> 4) == 14 && prev + ((uint32_t)o[1] << 8 | o[2]) + 269 > 65535)
            return GW_EBADMSG;
        prev = it.number;
        if (m->nopts >= GW_COAP_MAX_OPTS)
            return GW_EFULL;
        struct gw_coap_opt *d = &m->opts[m->nopts++];
        d->num = (uint16_t)it.number;
        d->len = (uint16_t)coap_opt_length(o);
        d->val = coap_opt_value(o);
    }
    size_t dl = 0;
    const uint8_t *data = NULL;
    m->payload = NULL;
    m->payload_len = 0;
    if (coap_get_data(pdu, &dl, &data) && dl) {
        m->payload = data;
        m->payload_len = dl;
    }
    return 0;
}

void gw_cb_init(struct gw_cb *b, uint8_t *buf, size_t cap, uint8_t type, uint8_t code, uint16_t mid,
                const uint8_t *token, uint8_t tkl)
{
    b->buf = buf;
    b->cap = cap;
    b->len = 0;
    b->last = 0;
    b->err = 0;
    if (tkl > GW_COAP_MAX_TOKEN) {
        b->err = GW_EBADMSG;
        return;
    }
    if (cap < 4u + tkl) {
        b->err = GW_ETOOBIG;
        return;
    }
    buf[0] = (uint8_t)(1u << 6 | (type & 3u) << 4 | tkl);
    buf[1] = code;
    buf[2] = (uint8_t)(mid >> 8);
    buf[3] = (uint8_t)mid;
    if (tkl)
        memcpy(buf + 4, token, tkl);
    b->len = 4u + tkl;
}

/* Delta and length nibbles with their extended bytes (RFC 7252 3.1). */
static size_t ext_nibble(uint32_t v, uint8_t *nib, uint8_t ext[2])
{
    if (v < 13) {
        *nib = (uint8_t)v;
        return 0;
    }
    if (v < 269) {
        *nib = 13;
        ext[0] = (uint8_t)(v - 13);
        return 1;
    }
    *nib = 14;
    ext[0] = (uint8_t)((v - 269) >> 8);
    ext[1] = (uint8_t)(v - 269);
    return 2;
}

void gw_cb_opt(struct gw_cb *b, uint16_t num, const void *val, size_t len)
{
    if (b->err)
        return;
    if (num < b->last || len > 65535u + 269u) {
        b->err = GW_EBADMSG;
        return;
    }
    uint8_t dn, ln, de[2], le[2];
    size_t dx = ext_nibble((uint32_t)(num - b->last), &dn, de);
    size_t lx = ext_nibble((uint32_t)len, &ln, le);
    size_t need = 1 + dx + lx + len;
    if (b->len + need > b->cap) {
        b->err = GW_ETOOBIG;
        return;
    }
    uint8_t *p = b->buf + b->len;
    *p++ = (uint8_t)(dn << 4 | ln);
    memcpy(p, de, dx);
    p += dx;
    memcpy(p, le, lx);
    p += lx;
    if (len)
        memcpy(p, val, len);
    b->len += need;
    b->last = num;
}

size_t gw_coap_uint_enc(uint32_t v, uint8_t out[4])
{
    size_t n = v > 0xffffff ? 4 : v > 0xffff ? 3 : v > 0xff ? 2 : v > 0 ? 1 : 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    return n;
}

void gw_cb_opt_uint(struct gw_cb *b, uint16_t num, uint32_t v)
{
    uint8_t tmp[4];
    size_t n = gw_coap_uint_enc(v, tmp);
    gw_cb_opt(b, num, tmp, n);
}

void gw_cb_opt_str(struct gw_cb *b, uint16_t num, const char *s)
{
    gw_cb_opt(b, num, s, strlen(s));
}

void gw_cb_payload(struct gw_cb *b, const void *data, size_t len)
{
    if (b->err || len == 0)
        return;
    if (b->len + 1 + len > b->cap) {
        b->err = GW_ETOOBIG;
        return;
    }
    b->buf[b->len++] = 0xff;
    memcpy(b->buf + b->len, data, len);
    b->len += len;
}

int gw_cb_finish(struct gw_cb *b, size_t *len)
{
    if (b->err)
        return b->err;
    *len = b->len;
    return 0;
}

int gw_coap_encode(const struct gw_coap_msg *m, uint8_t *buf, size_t cap, size_t *len)
{
    struct gw_cb b;
    gw_cb_init(&b, buf, cap, m->type, m->code, m->mid, m->token, m->tkl);
    /* Stable order by number without sorting in place: repeatedly emit the
     * smallest number not yet emitted, keeping the original order of equal
     * numbers. O(n^2) on at most GW_COAP_MAX_OPTS options. */
    int prev = -1;
    for (;;) {
        int next = 0x10000;
        for (unsigned i = 0; i < m->nopts; i++)
            if (m->opts[i].num > prev && m->opts[i].num < next)
                next = m->opts[i].num;
        if (next == 0x10000)
            break;
        for (unsigned i = 0; i < m->nopts; i++)
            if (m->opts[i].num == next)
                gw_cb_opt(&b, m->opts[i].num, m->opts[i].val, m->opts[i].len);
        prev = next;
    }
    gw_cb_payload(&b, m->payload, m->payload_len);
    return gw_cb_finish(&b, len);
}

const struct gw_coap_opt *gw_coap_opt_find(const struct gw_coap_msg *m, uint16_t num)
{
    for (unsigned i = 0; i < m->nopts; i++)
        if (m->opts[i].num == num)
            return &m->opts[i];
    return NULL;
}

unsigned gw_coap_opt_count(const struct gw_coap_msg *m, uint16_t num)
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->nopts; i++)
        n += m->opts[i].num == num;
    return n;
}

bool gw_opt_known(uint16_t n)
{
    switch (n) {
    case GW_OPT_IF_MATCH:
    case GW_OPT_URI_HOST:
    case GW_OPT_ETAG:
    case GW_OPT_IF_NONE_MATCH:
    case GW_OPT_OBSERVE:
    case GW_OPT_URI_PORT:
    case GW_OPT_LOCATION_PATH:
    case GW_OPT_URI_PATH:
    case GW_OPT_CONTENT_FORMAT:
    case GW_OPT_MAX_AGE:
    case GW_OPT_URI_QUERY:
    case GW_OPT_HOP_LIMIT:
    case GW_OPT_ACCEPT:
    case GW_OPT_LOCATION_QUERY:
    case GW_OPT_BLOCK2:
    case GW_OPT_BLOCK1:
    case GW_OPT_SIZE2:
    case GW_OPT_PROXY_URI:
    case GW_OPT_PROXY_SCHEME:
    case GW_OPT_SIZE1:
    case GW_OPT_NO_RESPONSE:
        return true;
    default:
        return false;
    }
}

bool gw_coap_uint(const uint8_t *v, size_t len, uint32_t *out)
{
    if (len > 4)
        return false;
    uint32_t x = 0;
    for (size_t i = 0; i < len; i++)
        x = x << 8 | v[i];
    *out = x;
    return true;
}

bool gw_block_decode(const struct gw_coap_opt *o, struct gw_block *b)
{
    uint32_t v;
    if (!o || o->len > 3 || !gw_coap_uint(o->val, o->len, &v))
        return false;
    b->szx = v & 7;
    b->more = (v >> 3) & 1;
    b->num = v >> 4;
    return b->szx != 7;
}

size_t gw_block_encode(const struct gw_block *b, uint8_t out[4])
{
    return gw_coap_uint_enc(b->num << 4 | (uint32_t)b->more << 3 | b->szx, out);
}

int gw_coap_simple_reply(const struct gw_coap_msg *req, uint8_t code, const char *diag,
                         uint8_t *buf, size_t cap, size_t *len)
{
    struct gw_cb b;
    uint8_t type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
    gw_cb_init(&b, buf, cap, type, code, req->mid, req->token, req->tkl);
    if (diag && *diag) {
        /* Diagnostic payloads are UTF-8 text (RFC 7252 5.5.2). */
        gw_cb_payload(&b, diag, strlen(diag));
    }
    return gw_cb_finish(&b, len);
}

const char *gw_coap_code_str(uint8_t code, char buf[8])
{
    snprintf(buf, 8, "%u.%02u", code >> 5, code & 31);
    return buf;
}

static void path_append(char *buf, size_t cap, size_t *n, const char *sep, const uint8_t *v,
                        size_t vl)
{
    for (const char *p = sep; *p && *n + 1 < cap; p++)
        buf[(*n)++] = *p;
    for (size_t i = 0; i < vl && *n + 1 < cap; i++)
        buf[(*n)++] = v[i] >= 0x20 && v[i] < 0x7f ? (char)v[i] : '?';
    buf[*n] = '\0';
}

const char *gw_coap_path_str(const uint8_t *msg, size_t len, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    buf[0] = '\0';
    if (len < 4)
        return buf;
    size_t i = 4 + (msg[0] & 15), n = 0;
    unsigned num = 0;
    bool query = false;
    while (i < len && msg[i] != 0xff) {
        unsigned d = msg[i] >> 4, l = msg[i] & 15;
        i++;
        unsigned *f[2] = { &d, &l };
        for (int k = 0; k < 2; k++) {
            if (*f[k] == 13) {
                if (i >= len)
                    return buf;
                *f[k] = msg[i++] + 13u;
            } else if (*f[k] == 14) {
                if (i + 1 >= len)
                    return buf;
                *f[k] = ((unsigned)msg[i] << 8 | msg[i + 1]) + 269u;
                i += 2;
            } else if (*f[k] == 15) {
                return buf;
            }
        }
        num += d;
        if (i + l > len)
            return buf;
        if (num == GW_OPT_PROXY_URI) {
            n = 0;
            path_append(buf, cap, &n, "", msg + i, l);
            return buf;
        }
        if (num == GW_OPT_URI_PATH)
            path_append(buf, cap, &n, "/", msg + i, l);
        else if (num == GW_OPT_URI_QUERY) {
            path_append(buf, cap, &n, query ? "&" : "?", msg + i, l);
            query = true;
        }
        i += l;
    }
    if (n == 0 && cap > 1) {
        buf[0] = '/';
        buf[1] = '\0';
    }
    return buf;
}

const char *gw_coap_msg_path_str(const struct gw_coap_msg *m, char *buf, size_t cap)
{
    if (!cap)
        return buf;
    buf[0] = '\0';
    size_t n = 0;
    bool query = false;
    for (unsigned i = 0; i < m->nopts; i++) {
        const struct gw_coap_opt *o = &m->opts[i];
        if (o->num == GW_OPT_PROXY_URI) {
            n = 0;
            path_append(buf, cap, &n, "", o->val, o->len);
            return buf;
        }
        if (o->num == GW_OPT_URI_PATH)
            path_append(buf, cap, &n, "/", o->val, o->len);
        else if (o->num == GW_OPT_URI_QUERY) {
            path_append(buf, cap, &n, query ? "&" : "?", o->val, o->len);
            query = true;
        }
    }
    if (n == 0 && cap > 1) {
        buf[0] = '/';
        buf[1] = '\0';
    }
    return buf;
}
