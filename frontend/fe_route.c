/* SPDX-License-Identifier: MIT */
/* fe_route.c - proxy targets from Proxy-Uri or Proxy-Scheme and the request built for the
 * device (see fe_route.h). */
#include "fe_route.h"
#include "gw_addr.h"
#include "gw_error.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

bool fe_route_is_proxy(const struct gw_coap_msg *m)
{
    return gw_coap_opt_find(m, GW_OPT_PROXY_URI) || gw_coap_opt_find(m, GW_OPT_PROXY_SCHEME);
}

static int verdict(struct fe_verdict *v, uint8_t code, const char *diag)
{
    v->code = code;
    v->diag = diag;
    return GW_EBADMSG;
}

static int hexv(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Percent-decodes src[0..n) into t->buf; returns the start or NULL. */
static const uint8_t *pct_decode(struct fe_target *t, const char *src, size_t n, uint16_t *outlen)
{
    if (t->used + n > sizeof(t->buf))
        return NULL;
    uint8_t *dst = t->buf + t->used, *start = dst;
    for (size_t i = 0; i < n; i++) {
        if (src[i] == '%') {
            if (i + 2 >= n)
                return NULL;
            int hi = hexv((unsigned char)src[i + 1]), lo = hexv((unsigned char)src[i + 2]);
            if (hi < 0 || lo < 0)
                return NULL;
            *dst++ = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else {
            *dst++ = (uint8_t)src[i];
        }
    }
    *outlen = (uint16_t)(dst - start);
    t->used = (uint16_t)(t->used + *outlen);
    return start;
}

static int add_seg(struct fe_target *t, bool query, const char *s, size_t n, struct fe_verdict *v)
{
    uint8_t *cnt = query ? &t->nquery : &t->nseg;
    if (*cnt >= FE_MAX_SEGS)
        return verdict(v, GW_COAP_BAD_REQUEST, "target URI has too many path or query parts");
    uint16_t len;
    const uint8_t *p = pct_decode(t, s, n, &len);
    if (!p)
        return verdict(v, GW_COAP_BAD_REQUEST, "bad percent-encoding in target URI");
    /* Option length ranges (RFC 7252 5.10): Uri-Path 0..255, Uri-Query up
     * to 255 and, for libcoap 4.3.1, which parses the request again in the
     * scheduler and at the device, at least 1. Anything else would be
     * forwarded as a request no one downstream can parse. */
    if (len > 255)
        return verdict(v, GW_COAP_BAD_REQUEST,
                       "target URI has a path or query part longer than 255 bytes");
    if (query && len == 0)
        return verdict(v, GW_COAP_BAD_REQUEST, "target URI has an empty query argument");
    if (!query && ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.')))
        return verdict(v, GW_COAP_BAD_REQUEST,
                       "'.' and '..' segments are not allowed in the target URI");
    if (query) {
        t->query[*cnt].p = p;
        t->query[*cnt].len = len;
    } else {
        t->seg[*cnt].p = p;
        t->seg[*cnt].len = len;
    }
    (*cnt)++;
    return 0;
}

/* The scheme, u up to colon: letters, digits, '+', '-', '.'; only coap is
 * proxied (S4.1: 5.05 for another one). */
static int parse_scheme(const char *u, const char *colon, struct fe_target *t, struct fe_verdict *v)
{
    for (const char *p = u; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '-' && *p != '.')
            return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri has a bad scheme");
    /* A well-formed scheme too long for t->scheme is not coap (S4.1: 5.05). */
    if ((size_t)(colon - u) >= sizeof(t->scheme))
        return verdict(v, GW_COAP_PROXY_NOT_SUPPORTED, "only the coap scheme is proxied");
    for (size_t i = 0; i < (size_t)(colon - u); i++)
        t->scheme[i] = (char)tolower((unsigned char)u[i]);
    t->scheme[colon - u] = '\0';
    if (strcmp(t->scheme, "coap") != 0)
        return verdict(v, GW_COAP_PROXY_NOT_SUPPORTED, "only the coap scheme is proxied");
    return 0;
}

/* The port after "host:", up to auth_end; "host:" alone means the default
 * port (RFC 3986 3.2.3). */
static int parse_port(const char *portp, const char *auth_end, struct fe_target *t,
                      struct fe_verdict *v)
{
    if (portp == auth_end) {
        t->port = -1;
        return 0;
    }
    long port = 0;
    for (const char *q = portp; q < auth_end; q++) {
        if (!isdigit((unsigned char)*q) || port > 65535)
            return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri has a bad port");
        port = port * 10 + (*q - '0');
    }
    if (port > 65535)
        return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri has a bad port");
    t->port = (int)port;
    return 0;
}

/* The authority p..auth_end: host (a name or an [IPv6] literal, percent-
 * decoded) and an optional port; no user information. */
static int parse_authority(const char *p, const char *auth_end, struct fe_target *t,
                           struct fe_verdict *v)
{
    const char *host = p, *host_end = auth_end, *portp = NULL;
    if (memchr(p, '@', (size_t)(auth_end - p)))
        return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri must not carry user information");
    if (p < auth_end && *p == '[') {
        const char *rb = memchr(p, ']', (size_t)(auth_end - p));
        if (!rb)
            return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri has a bad IPv6 literal");
        host = p + 1;
        host_end = rb;
        if (rb + 1 < auth_end) {
            if (rb[1] != ':')
                return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri has a bad authority");
            portp = rb + 2;
        }
    } else {
        const char *c = memchr(p, ':', (size_t)(auth_end - p));
        if (c) {
            host_end = c;
            portp = c + 1;
        }
    }
    size_t hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof(t->host))
        return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri has no host");
    uint16_t dl;
    const uint8_t *dh = pct_decode(t, host, hl, &dl);
    /* A NUL (raw or %00) would cut the host short as a C string, and
     * "coap://<mac>%00x" must not reach device <mac> (S9). */
    if (!dh || dl >= sizeof(t->host) || memchr(dh, '\0', dl))
        return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri has a bad host");
    memcpy(t->host, dh, dl);
    t->host[dl] = '\0';
    return portp ? parse_port(portp, auth_end, t, v) : 0;
}

/* s..end split at every sep into Uri-Path (query false) or Uri-Query parts,
 * empty parts included ("a//b" has three). */
static int add_segs(struct fe_target *t, bool query, char sep, const char *s, const char *end,
                    struct fe_verdict *v)
{
    for (;;) {
        const char *cut = memchr(s, sep, (size_t)(end - s));
        const char *se = cut ? cut : end;
        if (add_seg(t, query, s, (size_t)(se - s), v))
            return GW_EBADMSG;
        if (!cut)
            return 0;
        s = cut + 1;
    }
}

/* Path and query, p..end, into Uri-Path and Uri-Query parts. */
static int parse_path_query(const char *p, const char *end, struct fe_target *t,
                            struct fe_verdict *v)
{
    /* Path: "/" alone or empty means no Uri-Path (RFC 7252 6.5 step 8). */
    if (p < end && *p == '/') {
        const char *qm = memchr(p, '?', (size_t)(end - p));
        const char *path_end = qm ? qm : end;
        if (path_end - p != 1 && add_segs(t, false, '/', p + 1, path_end, v))
            return GW_EBADMSG;
        p = path_end;
    }
    /* An empty query ("coap://dev/x?") gives no Uri-Query (RFC 7252 6.5 step 9). */
    if (p < end && *p == '?' && p + 1 < end)
        return add_segs(t, true, '&', p + 1, end, v);
    return 0;
}

static int parse_uri(const char *u, size_t n, struct fe_target *t, struct fe_verdict *v)
{
    /* scheme ":" "//" authority path-abempty [ "?" query ] ; no fragment (RFC 7252 6.4) */
    const char *end = u + n;
    const char *colon = memchr(u, ':', n);
    if (!colon || colon == u)
        return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri is not an absolute URI");
    int rc = parse_scheme(u, colon, t, v);
    if (rc)
        return rc;
    const char *p = colon + 1;
    if (end - p < 2 || p[0] != '/' || p[1] != '/')
        return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri has no host");
    p += 2;
    if (memchr(u, '#', n))
        return verdict(v, GW_COAP_BAD_REQUEST, "Proxy-Uri must not have a fragment");
    const char *auth_end = p;
    while (auth_end < end && *auth_end != '/' && *auth_end != '?')
        auth_end++;
    if ((rc = parse_authority(p, auth_end, t, v)) != 0)
        return rc;
    return parse_path_query(auth_end, end, t, v);
}

int fe_route_target(const struct gw_coap_msg *m, struct fe_target *t, struct fe_verdict *v)
{
    memset(t, 0, offsetof(struct fe_target, buf));
    t->used = 0;
    t->port = -1;
    v->code = 0;
    v->diag = NULL;
    const struct gw_coap_opt *pu = gw_coap_opt_find(m, GW_OPT_PROXY_URI);
    if (gw_coap_opt_count(m, GW_OPT_PROXY_URI) > 1 || gw_coap_opt_count(m, GW_OPT_PROXY_SCHEME) > 1)
        return verdict(v, GW_COAP_BAD_OPTION, "Proxy-Uri and Proxy-Scheme may appear only once");
    if (pu) {
        for (unsigned i = 0; i < m->nopts; i++) {
            uint16_t n = m->opts[i].num;
            if (n == GW_OPT_URI_HOST || n == GW_OPT_URI_PORT || n == GW_OPT_URI_PATH ||
                n == GW_OPT_URI_QUERY)
                return verdict(v, GW_COAP_BAD_OPTION,
                               "Proxy-Uri must not be combined with Uri-* options");
        }
        if (pu->len == 0)
            return verdict(v, GW_COAP_BAD_REQUEST, "empty Proxy-Uri");
        return parse_uri((const char *)pu->val, pu->len, t, v);
    }
    const struct gw_coap_opt *ps = gw_coap_opt_find(m, GW_OPT_PROXY_SCHEME);
    size_t sl = ps->len;
    if (sl == 0 || sl >= sizeof(t->scheme) || memchr(ps->val, '\0', sl))
        return verdict(v, GW_COAP_PROXY_NOT_SUPPORTED, "only the coap scheme is proxied");
    for (size_t i = 0; i < sl; i++)
        t->scheme[i] = (char)tolower(ps->val[i]);
    t->scheme[sl] = '\0';
    if (strcmp(t->scheme, "coap") != 0)
        return verdict(v, GW_COAP_PROXY_NOT_SUPPORTED, "only the coap scheme is proxied");
    const struct gw_coap_opt *uh = gw_coap_opt_find(m, GW_OPT_URI_HOST);
    if (uh && (uh->len == 0 || uh->len >= sizeof(t->host) || memchr(uh->val, '\0', uh->len)))
        return verdict(v, GW_COAP_BAD_REQUEST, "bad Uri-Host");
    if (uh) {
        memcpy(t->host, uh->val, uh->len);
        t->host[uh->len] = '\0';
    } else {
        /* RFC 7252 6.5: without Uri-Host the host is the request's
         * destination, the gateway itself (served locally, S4.8). */
        snprintf(t->host, sizeof(t->host), "localhost");
    }
    const struct gw_coap_opt *up = gw_coap_opt_find(m, GW_OPT_URI_PORT);
    if (up) {
        uint32_t port;
        if (!gw_coap_uint(up->val, up->len, &port) || port > 65535)
            return verdict(v, GW_COAP_BAD_REQUEST, "bad Uri-Port");
        t->port = (int)port;
    }
    for (unsigned i = 0; i < m->nopts; i++) {
        const struct gw_coap_opt *o = &m->opts[i];
        if (o->num != GW_OPT_URI_PATH && o->num != GW_OPT_URI_QUERY)
            continue;
        bool q = o->num == GW_OPT_URI_QUERY;
        uint8_t *cnt = q ? &t->nquery : &t->nseg;
        if (*cnt >= FE_MAX_SEGS)
            return verdict(v, GW_COAP_BAD_REQUEST, "too many path or query parts");
        if (!q && ((o->len == 1 && o->val[0] == '.') ||
                   (o->len == 2 && o->val[0] == '.' && o->val[1] == '.')))
            return verdict(v, GW_COAP_BAD_REQUEST, "'.' and '..' segments are not allowed");
        if (q) {
            t->query[*cnt].p = o->val;
            t->query[*cnt].len = o->len;
        } else {
            t->seg[*cnt].p = o->val;
            t->seg[*cnt].len = o->len;
        }
        (*cnt)++;
    }
    return 0;
}

int fe_route_check_options(const struct gw_coap_msg *m, int *block2_szx, struct fe_verdict *v)
{
    *block2_szx = -1;
    for (unsigned i = 0; i < m->nopts; i++) {
        uint16_t n = m->opts[i].num;
        if (!gw_opt_known(n) && gw_opt_unsafe(n))
            return verdict(v, GW_COAP_BAD_OPTION, "unknown unsafe option cannot be proxied");
    }
    if (gw_coap_opt_find(m, GW_OPT_BLOCK1))
        return verdict(
            v, GW_COAP_BAD_OPTION,
            "Block1 is not supported on proxied requests (the mesh has no block-wise transfer)");
    const struct gw_coap_opt *b2 = gw_coap_opt_find(m, GW_OPT_BLOCK2);
    if (b2) {
        struct gw_block b;
        if (!gw_block_decode(b2, &b))
            return verdict(v, GW_COAP_BAD_OPTION, "bad Block2 option");
        if (b.num != 0 || b.more)
            return verdict(v, GW_COAP_BAD_OPTION,
                           "Block2 beyond block 0 is only served for a stored answer");
        *block2_szx = b.szx;
    }
    return 0;
}

int fe_route_build(const struct gw_coap_msg *m, const struct fe_target *t, uint8_t *out, size_t cap,
                   size_t *len)
{
    struct gw_coap_msg up;
    memset(&up, 0, offsetof(struct gw_coap_msg, opts));
    up.type = GW_COAP_CON;
    up.code = m->code;
    up.mid = 0;
    up.tkl = 8;
    memset(up.token, 0, 8);
    up.nopts = 0;
    for (unsigned i = 0; i < m->nopts; i++) {
        uint16_t n = m->opts[i].num;
        switch (n) {
        case GW_OPT_PROXY_URI:
        case GW_OPT_PROXY_SCHEME:
        case GW_OPT_URI_HOST:
        case GW_OPT_URI_PORT:
        case GW_OPT_URI_PATH:
        case GW_OPT_URI_QUERY:
        case GW_OPT_BLOCK2:
        case GW_OPT_BLOCK1:
        case GW_OPT_NO_RESPONSE:
        case GW_OPT_HOP_LIMIT:
            continue;
        default:
            break;
        }
        if (up.nopts >= GW_COAP_MAX_OPTS)
            return GW_ETOOBIG;
        up.opts[up.nopts++] = m->opts[i];
    }
    for (unsigned i = 0; i < t->nseg; i++) {
        if (up.nopts >= GW_COAP_MAX_OPTS)
            return GW_ETOOBIG;
        up.opts[up.nopts++] = (struct gw_coap_opt){ GW_OPT_URI_PATH, t->seg[i].len, t->seg[i].p };
    }
    for (unsigned i = 0; i < t->nquery; i++) {
        if (up.nopts >= GW_COAP_MAX_OPTS)
            return GW_ETOOBIG;
        up.opts[up.nopts++] =
            (struct gw_coap_opt){ GW_OPT_URI_QUERY, t->query[i].len, t->query[i].p };
    }
    up.payload = m->payload;
    up.payload_len = m->payload_len;
    return gw_coap_encode(&up, out, cap, len);
}

bool fe_route_is_self(const char *host, const char *names, const char *listen)
{
    if (!strcasecmp(host, "localhost") || !strcmp(host, "127.0.0.1") || !strcmp(host, "::1"))
        return true;
    struct gw_ep ep, lep;
    /* Only an address literal can equal the listen address: an IPv4 one has
     * dots, an IPv6 one colons. A device's MAC ID has neither, so the common
     * case skips parsing both (issue 13: inet_pton of both took 9 % of the
     * frontend's instructions per proxied request). */
    if (strpbrk(host, ".:") && gw_ep_parse(listen, 5683, &lep) == 0) {
        if (gw_ep_parse(host, 0, &ep) == 0 && ep.family == lep.family &&
            memcmp(ep.addr, lep.addr, 16) == 0)
            return true;
    }
    size_t hl = strlen(host);
    for (const char *p = names; p && *p;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        while (n && *p == ' ')
            p++, n--;
        while (n && p[n - 1] == ' ')
            n--;
        if (n && n == hl && strncasecmp(p, host, n) == 0)
            return true;
        p = c ? c + 1 : NULL;
    }
    return false;
}

int fe_route_observe(const struct gw_coap_msg *m)
{
    const struct gw_coap_opt *o = gw_coap_opt_find(m, GW_OPT_OBSERVE);
    uint32_t v;
    if (!o || m->code != GW_COAP_GET || !gw_coap_uint(o->val, o->len, &v))
        return -1;
    return v == 0 ? 0 : v == 1 ? 1 : -1;
}
