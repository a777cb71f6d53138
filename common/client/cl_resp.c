/* SPDX-License-Identifier: MIT */
/* cl_resp.c - response copies, Block2 reassembly and output (see cl_resp.h). */
#include "cl_resp.h"
#include "gw_error.h"
#include "gw_text.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

void cl_resp_clear(struct cl_resp *r)
{
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int cl_resp_add_opt(struct cl_resp *r, uint16_t num, const uint8_t *val, size_t len)
{
    if (r->nopt >= CL_MAX_OPTS || len > sizeof(r->optbuf) - r->optused)
        return GW_EFULL;
    memcpy(r->optbuf + r->optused, val, len);
    r->opt[r->nopt++] = (struct cl_opt){ num, (uint16_t)r->optused, (uint16_t)len };
    r->optused += len;
    return 0;
}

const struct cl_opt *cl_resp_opt(const struct cl_resp *r, uint16_t num)
{
    for (unsigned i = 0; i < r->nopt; i++)
        if (r->opt[i].num == num)
            return &r->opt[i];
    return NULL;
}

static uint32_t uint_val(const uint8_t *p, size_t n)
{
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

bool cl_resp_uint(const struct cl_resp *r, uint16_t num, uint32_t *v)
{
    const struct cl_opt *o = cl_resp_opt(r, num);
    if (!o || o->len > 4)
        return false;
    *v = uint_val(r->optbuf + o->off, o->len);
    return true;
}

int cl_resp_body(struct cl_resp *r, const uint8_t *p, size_t n, bool append, size_t max)
{
    size_t base = append ? r->len : 0;
    if (base + n > max)
        return GW_ETOOBIG;
    if (gw_grow(&r->body, &r->cap, base + n, 1, 256) != 0)
        return -ENOMEM;
    if (n)
        memmove(r->body + base, p, n); /* p may be r->body itself (block 0 in place) */
    r->len = base + n;
    return 0;
}

const char *cl_code_name(uint8_t code)
{
    static const struct {
        uint8_t code;
        const char *name;
    } names[] = {
        { 0x41, "Created" },
        { 0x42, "Deleted" },
        { 0x43, "Valid" },
        { 0x44, "Changed" },
        { 0x45, "Content" },
        { 0x5f, "Continue" },
        { 0x80, "Bad Request" },
        { 0x81, "Unauthorized" },
        { 0x82, "Bad Option" },
        { 0x83, "Forbidden" },
        { 0x84, "Not Found" },
        { 0x85, "Method Not Allowed" },
        { 0x86, "Not Acceptable" },
        { 0x88, "Request Entity Incomplete" },
        { 0x89, "Conflict" },
        { 0x8c, "Precondition Failed" },
        { 0x8d, "Request Entity Too Large" },
        { 0x8f, "Unsupported Content-Format" },
        { 0x96, "Unprocessable Entity" },
        { 0x9d, "Too Many Requests" },
        { 0xa0, "Internal Server Error" },
        { 0xa1, "Not Implemented" },
        { 0xa2, "Bad Gateway" },
        { 0xa3, "Service Unavailable" },
        { 0xa4, "Gateway Timeout" },
        { 0xa5, "Proxying Not Supported" },
        { 0xa8, "Hop Limit Reached" },
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(names); i++)
        if (names[i].code == code)
            return names[i].name;
    return "";
}

enum vkind { V_OPAQUE, V_UINT, V_STRING };

static const struct {
    uint16_t num;
    const char *name;
    enum vkind kind;
} opt_names[] = {
    { 1, "If-Match", V_OPAQUE },      { 3, "Uri-Host", V_STRING },
    { 4, "ETag", V_OPAQUE },          { 5, "If-None-Match", V_OPAQUE },
    { 6, "Observe", V_UINT },         { 7, "Uri-Port", V_UINT },
    { 8, "Location-Path", V_STRING }, { 11, "Uri-Path", V_STRING },
    { 12, "Content-Format", V_UINT }, { 14, "Max-Age", V_UINT },
    { 15, "Uri-Query", V_STRING },    { 16, "Hop-Limit", V_UINT },
    { 17, "Accept", V_UINT },         { 20, "Location-Query", V_STRING },
    { 23, "Block2", V_UINT },         { 27, "Block1", V_UINT },
    { 28, "Size2", V_UINT },          { 35, "Proxy-Uri", V_STRING },
    { 39, "Proxy-Scheme", V_STRING }, { 60, "Size1", V_UINT },
    { 252, "Echo", V_OPAQUE },        { 258, "No-Response", V_UINT },
    { 292, "Request-Tag", V_OPAQUE },
};

const char *cl_opt_name(uint16_t num)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(opt_names); i++)
        if (opt_names[i].num == num)
            return opt_names[i].name;
    return NULL;
}

static enum vkind opt_kind(uint16_t num)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(opt_names); i++)
        if (opt_names[i].num == num)
            return opt_names[i].kind;
    return V_OPAQUE;
}

bool cl_block_decode(const uint8_t *v, size_t len, struct cl_block *b)
{
    if (len > 3)
        return false;
    uint32_t x = uint_val(v, len);
    b->num = x >> 4;
    b->more = (x >> 3) & 1;
    b->szx = x & 7;
    return true;
}

size_t cl_block_encode(const struct cl_block *b, uint8_t out[3])
{
    uint32_t x = b->num << 4 | (b->more ? 8u : 0u) | (b->szx & 7u);
    size_t n = x == 0 ? 0 : x < 0x100 ? 1 : x < 0x10000 ? 2 : 3;
    for (size_t i = 0; i < n; i++)
        out[i] = (uint8_t)(x >> (8 * (n - 1 - i)));
    return n;
}

int cl_block_add(struct cl_resp *r, const struct cl_block *b, const uint8_t *p, size_t n,
                 size_t max, struct cl_block *next)
{
    if (b->szx > 6)
        return GW_EBADMSG; /* BERT is for reliable transports only (RFC 8323) */
    size_t size = (size_t)16 << b->szx;
    uint64_t offset = (uint64_t)b->num * size;
    if (offset != (b->num == 0 ? 0 : r->len) || (b->more && n != size) || n > size)
        return GW_EBADMSG;
    int rc = cl_resp_body(r, p, n, b->num != 0, max);
    if (rc)
        return rc;
    r->blocks = b->num == 0 ? 1 : r->blocks + 1;
    if (!b->more)
        return 0;
    next->szx = b->szx;
    next->num = (uint32_t)(r->len / size);
    next->more = false;
    return 1;
}

bool cl_obs_newer(uint32_t v1, double t1, uint32_t v2, double t2)
{
    return (v1 < v2 && v2 - v1 < (1u << 23)) || (v1 > v2 && v1 - v2 > (1u << 23)) ||
           t2 > t1 + 128000.0;
}

bool cl_utf8_text(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t k;
        uint32_t cp;
        if (c == 0)
            return false;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07;
        } else {
            return false;
        }
        if (i + k >= n)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + j] & 0x3f);
        }
        /* overlong forms, surrogates and values past U+10FFFF are not UTF-8 */
        if ((k == 1 && cp < 0x80) || (k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

char *cl_base64(const uint8_t *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
    return out;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[p[i] >> 4];
        out[2 * i + 1] = d[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static json_t *opt_value(const struct cl_resp *r, const struct cl_opt *o)
{
    const uint8_t *v = r->optbuf + o->off;
    enum vkind k = opt_kind(o->num);
    if (k == V_UINT && o->len <= 4)
        return json_integer(uint_val(v, o->len));
    if (k == V_STRING && cl_utf8_text(v, o->len))
        return json_stringn((const char *)v, o->len);
    char h[2 * 1152 + 1];
    hex(v, o->len, h);
    return json_string(h);
}

json_t *cl_resp_json(const struct cl_resp *r)
{
    json_t *o = json_object(), *opts = json_array();
    if (!o || !opts) {
        json_decref(o);
        json_decref(opts);
        return NULL;
    }
    char code[8];
    snprintf(code, sizeof(code), "%u.%02u", (unsigned)(r->code >> 5), (unsigned)(r->code & 31));
    static const char *const types[] = { "CON", "NON", "ACK", "RST" };
    int bad = json_object_set_new(o, "code", json_string(code));
    bad |= json_object_set_new(o, "code_name", json_string(cl_code_name(r->code)));
    bad |= json_object_set_new(o, "type", json_string(types[r->type & 3]));
    uint32_t v;
    bad |= json_object_set_new(o, "content_format",
                               cl_resp_uint(r, 12, &v) ? json_integer(v) : json_null());
    if (cl_resp_uint(r, 6, &v))
        bad |= json_object_set_new(o, "observe", json_integer(v));
    for (unsigned i = 0; i < r->nopt; i++) {
        json_t *e = json_object();
        const char *name = cl_opt_name(r->opt[i].num);
        bad |= !e;
        if (!e)
            break;
        bad |= json_object_set_new(e, "number", json_integer(r->opt[i].num));
        bad |= json_object_set_new(e, "name", name ? json_string(name) : json_null());
        bad |= json_object_set_new(e, "value", opt_value(r, &r->opt[i]));
        bad |= json_array_append_new(opts, e);
    }
    bad |= json_object_set_new(o, "options", opts);
    if (cl_utf8_text(r->body, r->len)) {
        bad |= json_object_set_new(o, "payload",
                                   json_stringn(r->len ? (const char *)r->body : "", r->len));
    } else {
        char *b64 = cl_base64(r->body, r->len);
        bad |= !b64 || json_object_set_new(o, "payload_base64", json_string(b64));
        free(b64);
    }
    bad |= json_object_set_new(o, "size", json_integer((json_int_t)r->len));
    if (r->blocks)
        bad |= json_object_set_new(o, "blocks", json_integer(r->blocks));
    bad |= json_object_set_new(o, "elapsed_ms", json_real(r->elapsed_ms));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

void cl_resp_verbose(FILE *f, const struct cl_resp *r)
{
    fprintf(f, "<- %u.%02u %s%s%s  %.1f ms", (unsigned)(r->code >> 5), (unsigned)(r->code & 31),
            cl_code_name(r->code),
            r->type == 0   ? " (CON)"
            : r->type == 1 ? " (NON)"
                           : "",
            r->blocks > 1 ? " (reassembled)" : "", r->elapsed_ms);
    if (r->blocks > 1)
        fprintf(f, ", %u blocks", r->blocks);
    fprintf(f, ", %zu bytes\n", r->len);
    for (unsigned i = 0; i < r->nopt; i++) {
        const struct cl_opt *o = &r->opt[i];
        const uint8_t *v = r->optbuf + o->off;
        const char *name = cl_opt_name(o->num);
        enum vkind k = opt_kind(o->num);
        fprintf(f, "   %s", name ? name : "");
        if (!name)
            fprintf(f, "option %u", (unsigned)o->num);
        if (k == V_UINT && o->len <= 4) {
            uint32_t x = uint_val(v, o->len);
            struct cl_block b;
            if ((o->num == 23 || o->num == 27) && cl_block_decode(v, o->len, &b))
                fprintf(f, ": %u/%s/%u\n", b.num, b.more ? "M" : "-", 16u << b.szx);
            else
                fprintf(f, ": %u\n", x);
        } else if (k == V_STRING && cl_utf8_text(v, o->len)) {
            fprintf(f, ": %.*s\n", (int)o->len, (const char *)v);
        } else {
            char h[2 * 1152 + 1];
            hex(v, o->len, h);
            fprintf(f, ": 0x%s\n", h);
        }
    }
}
