/* SPDX-License-Identifier: MIT */
/* test_msg.c - the ring envelope (common/gw_msg.c).
 *
 * SPEC S1.2: records cross shared-memory rings between processes; a corrupt
 * or stale record must be dropped (GW_EBADMSG), never indexed with. The
 * CoAP bytes after the header are bounded by S3.5 (1152 + slack). */
#include "gw_error.h"
#include "gw_msg.h"

#include <criterion/criterion.h>
#include <string.h>

static uint8_t rec[GW_MSG_MAX + 64];

/* A valid RESP record with n bytes of data; returns the record size. */
static size_t make_record(struct gw_msg *h, size_t n)
{
    memset(h, 0, sizeof(*h));
    h->kind = GW_MSG_RESP;
    h->security = GW_SEC_NETMGR;
    h->fe = 3;
    h->flags = GW_MF_NOTIFY;
    h->len = (uint16_t)n;
    h->client_type = 0;
    h->tkl = 4;
    h->req_id = (uint64_t)3 << 56 | 12345;
    h->session = 0x1122334455667788ull;
    h->ep.family = 6;
    h->ep.port = 5683;
    h->ep.addr[15] = 1;
    memcpy(h->token, "\xde\xad\xbe\xef", 4);
    memcpy(h->mac, "\x00\x11\x22\x33\x44\x55\x66\x77", GW_MAC_LEN);
    h->aux = 42;
    memcpy(rec, h, sizeof(*h));
    for (size_t i = 0; i < n; i++)
        rec[sizeof(*h) + i] = (uint8_t)(i * 7 + 1);
    return sizeof(*h) + n;
}

Test(msg, valid_record_round_trips)
{
    struct gw_msg in, out;
    const uint8_t *data = NULL;
    size_t n = make_record(&in, 100);
    cr_assert_eq(gw_msg_decode(rec, n, &out, &data), 0);
    cr_assert_eq(memcmp(&in, &out, sizeof(in)), 0);
    cr_assert_eq(data, rec + sizeof(struct gw_msg));
    for (size_t i = 0; i < 100; i++)
        cr_assert_eq(data[i], (uint8_t)(i * 7 + 1));
}

Test(msg, every_kind_and_family_is_accepted)
{
    struct gw_msg in, out;
    const uint8_t *data;
    /* Family 0 is "no endpoint" (records that carry no client, e.g. MESH_RX). */
    static const uint8_t fams[] = { 0, 4, 6 };
    for (uint8_t k = GW_MSG_REQ; k < GW_MSG_KIND_MAX; k++)
        for (size_t f = 0; f < GW_ARRAY_LEN(fams); f++) {
            size_t n = make_record(&in, 0);
            in.kind = k;
            in.ep.family = fams[f];
            memcpy(rec, &in, sizeof(in));
            cr_assert_eq(gw_msg_decode(rec, n, &out, &data), 0, "kind %u family %u", k, fams[f]);
            cr_assert_eq(out.kind, k);
        }
}

/* S3.5: the largest CoAP message fits; the decoder copies the header out,
 * so a record at an odd address is fine. */
Test(msg, largest_record_and_unaligned_buffer)
{
    struct gw_msg in, out;
    const uint8_t *data;
    size_t n = make_record(&in, GW_COAP_MAX_MSG + 16);
    cr_assert_eq(n, GW_MSG_MAX);
    cr_assert_eq(gw_msg_decode(rec, n, &out, &data), 0);
    memmove(rec + 1, rec, n);
    cr_assert_eq(gw_msg_decode(rec + 1, n, &out, &data), 0);
    cr_assert_eq(out.req_id, in.req_id);
    cr_assert_eq(data, rec + 1 + sizeof(struct gw_msg));
}

Test(msg, short_record_is_badmsg)
{
    struct gw_msg in, out;
    const uint8_t *data;
    make_record(&in, 0);
    for (size_t n = 0; n < sizeof(struct gw_msg); n++)
        cr_assert_eq(gw_msg_decode(rec, n, &out, &data), GW_EBADMSG, "n %zu", n);
}

Test(msg, len_mismatch_is_badmsg)
{
    struct gw_msg in, out;
    const uint8_t *data = NULL;
    size_t n = make_record(&in, 50);
    cr_assert_eq(gw_msg_decode(rec, n - 1, &out, &data), GW_EBADMSG);
    cr_assert_eq(gw_msg_decode(rec, n + 1, &out, &data), GW_EBADMSG);
    cr_assert_null(data, "*data untouched on error");
    /* A len beyond the bound is refused even when the record is that long. */
    n = make_record(&in, GW_COAP_MAX_MSG + 17);
    cr_assert_eq(gw_msg_decode(rec, n, &out, &data), GW_EBADMSG);
}

Test(msg, bad_kind_is_badmsg)
{
    struct gw_msg in, out;
    const uint8_t *data;
    static const uint8_t kinds[] = { 0, GW_MSG_KIND_MAX, GW_MSG_KIND_MAX + 1, 0xff };
    for (size_t i = 0; i < GW_ARRAY_LEN(kinds); i++) {
        size_t n = make_record(&in, 10);
        in.kind = kinds[i];
        memcpy(rec, &in, sizeof(in));
        cr_assert_eq(gw_msg_decode(rec, n, &out, &data), GW_EBADMSG, "kind %u", kinds[i]);
    }
}

/* S3.5: tokens are at most 8 bytes; tkl indexes token[8]. */
Test(msg, tkl_over_8_is_badmsg)
{
    struct gw_msg in, out;
    const uint8_t *data;
    size_t n = make_record(&in, 10);
    in.tkl = 8;
    memcpy(rec, &in, sizeof(in));
    cr_assert_eq(gw_msg_decode(rec, n, &out, &data), 0);
    for (unsigned t = 9; t < 256; t++) {
        in.tkl = (uint8_t)t;
        memcpy(rec, &in, sizeof(in));
        cr_assert_eq(gw_msg_decode(rec, n, &out, &data), GW_EBADMSG, "tkl %u", t);
    }
}

Test(msg, bad_ep_family_is_badmsg)
{
    struct gw_msg in, out;
    const uint8_t *data;
    static const uint8_t fams[] = { 1, 2, 3, 5, 7, 10, 255 };
    for (size_t i = 0; i < GW_ARRAY_LEN(fams); i++) {
        size_t n = make_record(&in, 10);
        in.ep.family = fams[i];
        memcpy(rec, &in, sizeof(in));
        cr_assert_eq(gw_msg_decode(rec, n, &out, &data), GW_EBADMSG, "family %u", fams[i]);
    }
}

Test(msg, bad_security_is_badmsg)
{
    struct gw_msg in, out;
    const uint8_t *data;
    size_t n = make_record(&in, 10);
    in.security = GW_SEC_NETMGR + 1;
    memcpy(rec, &in, sizeof(in));
    cr_assert_eq(gw_msg_decode(rec, n, &out, &data), GW_EBADMSG);
}
