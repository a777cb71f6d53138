/* SPDX-License-Identifier: MIT */
/* test_msg.c - the ring envelope (common/gw_msg.c).
 *
 * SPEC S1.2: records cross shared-memory rings between processes; a corrupt
 * or stale record must be dropped (GW_EBADMSG), never indexed with. The
 * CoAP bytes after the header are bounded by S3.5 (1152 + slack). */
#include "gw_error.h"
#include "gw_msg.h"
#include "gw_ring.h"

#include <criterion/criterion.h>
#include <stdlib.h>
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

/* The constructors (one per kind) zero what their kind does not carry: an
 * envelope reused from an earlier record leaks none of its fields. */
static void dirty(struct gw_msg *m)
{
    memset(m, 0xa5, sizeof(*m));
}

static const uint8_t mac8[GW_MAC_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };

static void expect_decodes(const struct gw_msg *m)
{
    struct gw_msg h;
    const uint8_t *d;
    memcpy(rec, m, sizeof(*m));
    cr_assert_eq(gw_msg_decode(rec, sizeof(*m) + m->len, &h, &d), 0, "kind %u must decode",
                 m->kind);
}

Test(msg, constructors_set_kind_and_zero_the_rest)
{
    struct gw_ep ep = { .family = 4, .port = 5683 };
    ep.addr[0] = 127;
    ep.addr[3] = 1;
    struct gw_msg m;

    dirty(&m);
    gw_msg_mesh_tx(&m, GW_SEC_NETMGR, mac8, GW_MF_MILLI, 77, 0);
    cr_assert_eq(m.kind, GW_MSG_MESH_TX);
    cr_assert_eq(m.security, GW_SEC_NETMGR);
    cr_assert_eq(m.flags, GW_MF_MILLI);
    cr_assert_eq(m.req_id, 77);
    cr_assert_eq(memcmp(m.mac, mac8, GW_MAC_LEN), 0);
    cr_assert_eq(m.session, 0);
    cr_assert_eq(m.tkl, 0);
    cr_assert_eq(m.ep.family, 0);
    expect_decodes(&m);

    dirty(&m);
    gw_msg_mesh_rx(&m, GW_SEC_NONE, mac8, 0);
    cr_assert_eq(m.kind, GW_MSG_MESH_RX);
    cr_assert_eq(m.req_id, 0);
    cr_assert_eq(m.flags, 0);
    expect_decodes(&m);

    dirty(&m);
    gw_msg_obs_gone(&m, 2, &ep, (const uint8_t *)"\x01\x02\x03", 3, 99);
    cr_assert_eq(m.kind, GW_MSG_OBS_GONE);
    cr_assert_eq(m.fe, 2);
    cr_assert_eq(m.tkl, 3);
    cr_assert_eq(m.token[2], 3);
    cr_assert_eq(m.token[3], 0);
    cr_assert_eq(m.session, 99);
    cr_assert_eq(m.ep.port, 5683);
    expect_decodes(&m);

    dirty(&m);
    gw_msg_session_end(&m, 1, &ep, 5);
    cr_assert_eq(m.kind, GW_MSG_SESSION_END);
    cr_assert_eq(m.session, 5);
    cr_assert_eq(m.tkl, 0);
    expect_decodes(&m);

    dirty(&m);
    gw_msg_session_moved(&m, 1, &ep, 6);
    cr_assert_eq(m.kind, GW_MSG_SESSION_MOVED);
    cr_assert_eq(m.session, 6);
    expect_decodes(&m);

    dirty(&m);
    gw_msg_fe_start(&m, 4);
    cr_assert_eq(m.kind, GW_MSG_FE_START);
    cr_assert_eq(m.fe, 4);
    cr_assert_eq(m.ep.family, 0);
    expect_decodes(&m);

    dirty(&m);
    gw_msg_answer_done(&m, 0, &ep, 0x1234);
    cr_assert_eq(m.kind, GW_MSG_ANSWER_DONE);
    cr_assert_eq(m.client_mid, 0x1234);
    cr_assert_eq(m.flags2, 0);
    expect_decodes(&m);

    dirty(&m);
    gw_msg_req(&m, GW_SEC_NONE, mac8, 0);
    gw_msg_set_client(&m, 3, 42, &ep, 1, (const uint8_t *)"\xaa\xbb", 2, (uint64_t)3 << 56 | 9);
    cr_assert_eq(m.kind, GW_MSG_REQ);
    cr_assert_eq(m.fe, 3);
    cr_assert_eq(m.session, 42);
    cr_assert_eq(m.client_type, 1);
    cr_assert_eq(m.tkl, 2);
    cr_assert_eq(m.token[1], 0xbb);
    cr_assert_eq(m.req_id, (uint64_t)3 << 56 | 9);
    cr_assert_eq(m.aux, 0);
    cr_assert_eq(m.req_key, 0);
    expect_decodes(&m);

    dirty(&m);
    gw_msg_notify_set(&m, GW_SEC_NONE, mac8, GW_MF_NOTIFY, 17);
    cr_assert_eq(m.kind, GW_MSG_NOTIFY_SET);
    cr_assert_eq(m.flags, GW_MF_NOTIFY);
    cr_assert_eq(m.aux, 17);
    cr_assert_eq(m.tkl, 0);
    cr_assert_eq(m.ep.family, 0);

    dirty(&m);
    gw_msg_resp(&m, GW_SEC_NETMGR, mac8, 0);
    cr_assert_eq(m.kind, GW_MSG_RESP);
    cr_assert_eq(m.security, GW_SEC_NETMGR);
    cr_assert_eq(m.flags, 0);
    cr_assert_eq(m.ep.family, 0);
}

/* Found by fuzz_frontend: a notification set whose length ends right after
 * its header was read one byte past the record (seen under ASan). */
Test(msg, notify_set_shorter_than_its_message_is_refused_without_reading_past_it)
{
    struct gw_notify_hdr h = { .count = 0, .msg_len = 4 };
    uint8_t *data = malloc(sizeof(h)); /* exactly the header: ASan sees any read past it */
    cr_assert_not_null(data);
    memcpy(data, &h, sizeof(h));
    struct gw_msg env = { .kind = GW_MSG_NOTIFY_SET, .len = sizeof(h) };
    cr_expect_eq(gw_notify_set_count(&env, data), 0);
    free(data);
}

/* gw_msg_pop is every role's consumer step: a good record comes out
 * decoded, a corrupt one is reported and gone, an empty ring says so. */
Test(msg, pop_decodes_reports_bad_records_and_goes_on)
{
    size_t bytes = gw_ring_bytes(8, 1280);
    bytes = (bytes + GW_CACHELINE - 1) / GW_CACHELINE * GW_CACHELINE;
    struct gw_ring *r = aligned_alloc(GW_CACHELINE, bytes);
    cr_assert_not_null(r);
    memset(r, 0, bytes);
    gw_ring_format(r, 8, 1280, 0);
    static uint8_t out[1280];
    struct gw_msg in, m;
    const uint8_t *data = NULL;
    cr_assert_eq(gw_msg_pop(r, out, sizeof(out), &m, &data), GW_EEMPTY);
    size_t n = make_record(&in, 100);
    cr_assert_eq(gw_ring_push(r, rec, (uint32_t)n), 0);
    cr_assert_eq(gw_ring_push(r, rec, 7), 0, "a record shorter than an envelope");
    cr_assert_eq(gw_ring_push(r, rec, (uint32_t)n), 0);
    cr_assert_eq(gw_msg_pop(r, out, sizeof(out), &m, &data), 0);
    cr_assert_eq(memcmp(&in, &m, sizeof(m)), 0);
    cr_assert_eq(data, out + sizeof(struct gw_msg), "data points into the caller's buffer");
    cr_assert_eq(gw_msg_pop(r, out, sizeof(out), &m, &data), GW_EBADMSG);
    cr_assert_eq(gw_msg_pop(r, out, sizeof(out), &m, &data), 0, "the next record is fine");
    cr_assert_eq(gw_ring_push(r, rec, (uint32_t)n), 0);
    cr_assert_eq(gw_msg_pop(r, out, 16, &m, &data), GW_EBADMSG, "a buffer too small");
    cr_assert_eq(gw_msg_pop(r, out, sizeof(out), &m, &data), GW_EEMPTY, "and it was consumed");
    free(r);
}
