/* SPDX-License-Identifier: MIT */
/* gw_text.c - hex, base64url, decimal and trimming (gw_text.h). */
#include "gw_text.h"
#include "gw_error.h"

#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int gw_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII: 'A'..'F' fold onto 'a'..'f', nothing else lands there */
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

int gw_hex_decode(const char *s, size_t len, uint8_t *out, size_t n)
{
    if (len != 2 * n)
        return GW_EBADMSG;
    for (size_t i = 0; i < n; i++) {
        int hi = gw_hex_digit((unsigned char)s[2 * i]);
        int lo = gw_hex_digit((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return GW_EBADMSG;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int gw_b64url_digit(int c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const char *p = c > 0 && c < 128 ? memchr(alphabet, c, 64) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

int gw_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *olen)
{
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t o = 0;
    if (len % 4 == 1) /* 6 bits cannot end a byte */
        return GW_EBADMSG;
    for (size_t i = 0; i < len; i++) {
        int v = gw_b64url_digit((unsigned char)in[i]);
        if (v < 0)
            return GW_EBADMSG;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap)
                return GW_EBADMSG;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero (RFC 4648 section 3.5) */
        return GW_EBADMSG;
    *olen = o;
    return 0;
}

int gw_dec_parse(const char *s, size_t maxlen, uint64_t max, uint64_t *out)
{
    size_t n = strlen(s);
    if (n == 0 || n > maxlen || n > 19) /* 19 digits always fit in 64 bits */
        return GW_EBADMSG;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return GW_EBADMSG;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > max)
        return GW_EBADMSG;
    *out = v;
    return 0;
}

char *gw_env_name(const char *prefix, const char *key, char *buf, size_t len)
{
    size_t n = strlen(prefix) < len ? strlen(prefix) : len - 1;
    memcpy(buf, prefix, n);
    for (const char *k = key; *k && n + 1 < len; k++)
        buf[n++] = (char)toupper((unsigned char)*k);
    buf[n] = '\0';
    return buf;
}

int gw_grow(void *pp, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : (first ? first : 1);
    while (nc < need) {
        if (nc > SIZE_MAX / 2)
            return -ENOMEM;
        nc *= 2;
    }
    if (nc > SIZE_MAX / elem)
        return -ENOMEM;
    void *old;
    memcpy(&old, pp, sizeof(old)); /* pp may point at a uint8_t * or any object pointer */
    void *p = realloc(old, nc * elem);
    if (!p)
        return -ENOMEM;
    memcpy(pp, &p, sizeof(p));
    *cap = nc;
    return 0;
}

char *gw_str_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}
