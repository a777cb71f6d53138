/* SPDX-License-Identifier: MIT */
/* fuzz_coap.c - the CoAP codec (common/gw_coap.h, SPEC S3.4, S9).
 *
 * Every datagram from a client or a device goes through gw_coap_parse first.
 * Properties checked on any input:
 *   - parsing never crashes, reads out of bounds or leaks;
 *   - a message that parses re-encodes (gw_coap_encode) and the encoding
 *     parses again to an equal view (type, code, MID, token, options in
 *     order with their values, payload);
 *   - the encoding is byte-identical to the input: RFC 7252 leaves one way
 *     to encode a view (minimal deltas/lengths), so anything else means the
 *     parser accepted bytes it later misreports;
 *   - the helpers used on parsed views (option look-up, uint and Block
 *     decoding, simple replies) accept whatever the parser let through. */
#include "gw_coap.h"
#include "gw_error.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct gw_coap_parser *p1, *p2;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (gw_coap_parser_new(&p1) != 0 || gw_coap_parser_new(&p2) != 0)
        abort();
    return 0;
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_coap: %s\n", what);
    abort();
}

static void check_equal(const struct gw_coap_msg *a, const struct gw_coap_msg *b)
{
    if (a->type != b->type || a->code != b->code || a->mid != b->mid || a->tkl != b->tkl)
        fail("header differs after re-encoding");
    if (memcmp(a->token, b->token, a->tkl) != 0)
        fail("token differs after re-encoding");
    if (a->nopts != b->nopts)
        fail("option count differs after re-encoding");
    for (unsigned i = 0; i < a->nopts; i++) {
        const struct gw_coap_opt *x = &a->opts[i], *y = &b->opts[i];
        if (x->num != y->num || x->len != y->len || (x->len && memcmp(x->val, y->val, x->len) != 0))
            fail("option differs after re-encoding");
    }
    if (a->payload_len != b->payload_len ||
        (a->payload_len && memcmp(a->payload, b->payload, a->payload_len) != 0))
        fail("payload differs after re-encoding");
}

static void use_helpers(const struct gw_coap_msg *m)
{
    volatile uint32_t sink = 0;
    for (unsigned i = 0; i < m->nopts; i++) {
        const struct gw_coap_opt *o = &m->opts[i];
        uint32_t v;
        struct gw_block b;
        if (gw_coap_uint(o->val, o->len, &v))
            sink += v;
        if (gw_block_decode(o, &b)) {
            uint8_t enc[4];
            size_t n = gw_block_encode(&b, enc);
            struct gw_coap_opt eo = { o->num, (uint16_t)n, enc };
            struct gw_block b2;
            /* A decoded Block value encodes back to the same meaning. */
            if (!gw_block_decode(&eo, &b2) || b2.num != b.num || b2.more != b.more ||
                b2.szx != b.szx)
                fail("Block option does not survive decode/encode");
        }
        if (gw_coap_opt_find(m, o->num) == NULL || gw_coap_opt_count(m, o->num) == 0)
            fail("option look-up misses a parsed option");
    }
    uint8_t out[GW_COAP_MAX_MSG + 64];
    size_t len;
    if (gw_coap_simple_reply(m, GW_COAP_BAD_REQUEST, "diagnostic", out, sizeof(out), &len) == 0) {
        struct gw_coap_msg r;
        if (gw_coap_parse(p2, out, len, &r) != 0)
            fail("simple reply does not parse");
    }
    char cs[8];
    sink += (uint32_t)strlen(gw_coap_code_str(m->code, cs));
    (void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t ver, type;
    uint16_t mid;
    bool peeked = gw_coap_peek(data, size, &ver, &type, &mid);
    /* The log helper walks raw bytes without the parser (scheduler debug
     * lines): any input, a terminated string within its buffer. */
    char path[64], mpath[64];
    gw_coap_path_str(data, size, path, sizeof(path));
    if (strlen(path) >= sizeof(path))
        fail("path string not terminated");
    struct gw_coap_msg m;
    int rc = gw_coap_parse(p1, data, size, &m);
    if (rc == 0 && strcmp(gw_coap_msg_path_str(&m, mpath, sizeof(mpath)), path) != 0)
        fail("raw and parsed path strings differ");
    if (rc != 0) {
        if (rc != GW_EBADMSG && rc != GW_EFULL)
            fail("unexpected parse error code");
        return 0;
    }
    if (!peeked)
        fail("parse accepted what peek refuses");
    if (m.tkl > GW_COAP_MAX_TOKEN || m.nopts > GW_COAP_MAX_OPTS || m.payload_len > size)
        fail("parsed view out of bounds");
    for (unsigned i = 1; i < m.nopts; i++)
        if (m.opts[i].num < m.opts[i - 1].num)
            fail("options not in ascending order");
    use_helpers(&m);

    uint8_t buf[GW_COAP_MAX_MSG + 64];
    size_t len;
    rc = gw_coap_encode(&m, buf, sizeof(buf), &len);
    if (rc != 0)
        fail("a parsed message does not re-encode");
    struct gw_coap_msg m2;
    if (gw_coap_parse(p2, buf, len, &m2) != 0)
        fail("re-encoded message does not parse");
    check_equal(&m, &m2);
    if (ver == 1 && (len != size || memcmp(buf, data, size) != 0))
        fail("re-encoding is not byte-identical to the input");
    return 0;
}
