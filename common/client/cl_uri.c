/* SPDX-License-Identifier: MIT */
/* cl_uri.c - target and gateway parsing for `coapgw client` (see cl_uri.h). */
#include "cl_uri.h"
#include "gw_error.h"
#include "gw_text.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ERR(...) (gw_errf(err, errlen, __VA_ARGS__), GW_EBADMSG)

/* Appends the percent-decoded s[0..n) to t->buf as one part. */
static int add_part(struct cl_target *t, size_t *used, struct cl_part *arr, unsigned *cnt,
                    const char *s, size_t n, char *err, size_t errlen)
{
    if (*cnt >= CL_MAX_PARTS)
        return ERR("more than %d path segments or query items", CL_MAX_PARTS);
    size_t start = *used;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return ERR("bad percent-encoding in '%.*s'", (int)n, s);
            int a = gw_hex_digit((unsigned char)s[i + 1]),
                b = gw_hex_digit((unsigned char)s[i + 2]);
            if (a < 0 || b < 0)
                return ERR("bad percent-encoding in '%.*s'", (int)n, s);
            c = a << 4 | b;
            i += 2;
        }
        if (*used >= sizeof(t->buf))
            return ERR("target longer than %d bytes", CL_PROXY_URI_MAX);
        t->buf[(*used)++] = (uint8_t)c;
    }
    arr[*cnt].off = (uint16_t)start;
    arr[*cnt].len = (uint16_t)(*used - start);
    (*cnt)++;
    return 0;
}

static int split_local(struct cl_target *t, const char *path, size_t plen, const char *query,
                       char *err, size_t errlen)
{
    size_t used = 0;
    size_t i = 0;
    while (i < plen) {
        while (i < plen && path[i] == '/')
            i++;
        size_t j = i;
        while (j < plen && path[j] != '/')
            j++;
        if (j > i) {
            int rc = add_part(t, &used, t->seg, &t->nseg, path + i, j - i, err, errlen);
            if (rc)
                return rc;
        }
        i = j;
    }
    if (t->nseg == 0)
        return ERR("no resource path: write /PATH, e.g. /help or /.well-known/core");
    if (query) {
        const char *q = query;
        while (*q) {
            const char *amp = strchr(q, '&');
            size_t n = amp ? (size_t)(amp - q) : strlen(q);
            if (n) {
                int rc = add_part(t, &used, t->query, &t->nquery, q, n, err, errlen);
                if (rc)
                    return rc;
            }
            q += n + (amp ? 1 : 0);
        }
    }
    return 0;
}

/* Checks the %XX escapes of a path or query that is passed on as it is. */
static int check_escapes(const char *s, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] == '%' && (i + 2 >= n || gw_hex_digit((unsigned char)s[i + 1]) < 0 ||
                            gw_hex_digit((unsigned char)s[i + 2]) < 0))
            return ERR("bad percent-encoding at '%.*s'", (int)(n - i > 8 ? 8 : n - i), s + i);
    return 0;
}

int cl_target_parse(const char *s, struct cl_target *t, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    if (!s || !*s)
        return ERR("empty target: write coap://MAC/path, MAC/path or /path");
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c <= 0x20 || c == 0x7f)
            return ERR("target '%s' contains a space or control character (percent-encode it)", s);
    }
    if (strchr(s, '#'))
        return ERR("target '%s' has a fragment (#): CoAP URIs have none", s);
    const char *rest = s;
    bool scheme = false;
    const char *sep = strstr(s, "://");
    if (sep) {
        size_t sl = (size_t)(sep - s);
        if (sl != 4 || strncasecmp(s, "coap", 4) != 0)
            return ERR("only coap:// targets are proxied, not '%.*s://'", (int)sl, s);
        rest = sep + 3;
        scheme = true;
    }
    const char *q = strchr(rest, '?');
    size_t before_q = q ? (size_t)(q - rest) : strlen(rest);
    if (rest[0] == '/') {
        if (scheme)
            return ERR("target '%s' names no device: write coap://MAC/path", s);
        t->kind = CL_TARGET_LOCAL;
        return split_local(t, rest, before_q, q ? q + 1 : NULL, err, errlen);
    }
    /* authority: host[:port] up to '/' or '?' */
    size_t alen = strcspn(rest, "/?");
    const char *colon = memchr(rest, ':', alen);
    size_t hlen = colon ? (size_t)(colon - rest) : alen;
    if (hlen != 16)
        return ERR(
            "'%.*s' is not a device MAC ID (16 hex digits); gateway resources are written /PATH",
            (int)hlen, rest);
    for (size_t i = 0; i < 16; i++)
        if (gw_hex_digit((unsigned char)rest[i]) < 0)
            return ERR("'%.*s' is not a device MAC ID (16 hex digits)", (int)hlen, rest);
    memcpy(t->mac, rest, 16);
    t->mac[16] = '\0';
    if (colon) {
        size_t plen = alen - hlen - 1;
        unsigned long port = 0;
        bool ok = plen > 0 && plen <= 5;
        for (size_t i = 0; ok && i < plen; i++) {
            char c = colon[1 + i];
            ok = c >= '0' && c <= '9';
            port = port * 10 + (unsigned long)(c - '0');
        }
        if (!ok || port == 0 || port > 65535)
            return ERR("bad port '%.*s' in target (1..65535)", (int)plen, colon + 1);
    }
    const char *path = rest + alen;
    int rc = check_escapes(path, strlen(path), err, errlen);
    if (rc)
        return rc;
    int n = snprintf(t->proxy_uri, sizeof(t->proxy_uri), "coap://%s", rest);
    if (n < 0 || (size_t)n >= sizeof(t->proxy_uri))
        return ERR("target longer than %d bytes (the Proxy-Uri limit)", CL_PROXY_URI_MAX);
    t->kind = CL_TARGET_DEVICE;
    return 0;
}

int cl_hostport_parse(const char *s, char *host, size_t hostlen, uint16_t *port, char *err,
                      size_t errlen)
{
    if (!s || !*s)
        return ERR("empty gateway address (HOST:PORT)");
    const char *h = s, *p = NULL;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close)
            return ERR("gateway '%s': missing ']'", s);
        h = s + 1;
        hl = (size_t)(close - h);
        if (close[1] == ':')
            p = close + 2;
        else if (close[1])
            return ERR("gateway '%s': expected ':PORT' after ']'", s);
    } else {
        const char *c = strchr(s, ':');
        if (c && strchr(c + 1, ':')) {
            hl = strlen(s); /* a bare IPv6 address */
        } else {
            hl = c ? (size_t)(c - s) : strlen(s);
            p = c ? c + 1 : NULL;
        }
    }
    if (hl == 0)
        return ERR("gateway '%s': empty host", s);
    if (hl >= hostlen)
        return ERR("gateway '%s': host too long", s);
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = 5683;
    if (p) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (!*p || *end || v == 0 || v > 65535 || *p == '-' || *p == '+')
            return ERR("gateway '%s': bad port (1..65535)", s);
        *port = (uint16_t)v;
    }
    return 0;
}
