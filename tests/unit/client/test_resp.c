/* SPDX-License-Identifier: MIT */
/* test_resp.c - responses of `coapgw client` (common/client/cl_resp.c,
 * issue 14): Block2 reassembly (RFC 7959, SPEC S4.7/S8.2), the --json object
 * (payload as text or base64, binary-safe) and option values. */
#include "cl_resp.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

Test(block, option_round_trip)
{
    uint8_t v[3];
    struct cl_block b = { 5, true, 2 }, d;
    size_t n = cl_block_encode(&b, v);
    cr_assert_eq(n, 1);
    cr_assert_eq(v[0], 0x5a);
    cr_assert(cl_block_decode(v, n, &d));
    cr_assert_eq(d.num, 5);
    cr_assert(d.more);
    cr_assert_eq(d.szx, 2);
    b = (struct cl_block){ 0, false, 0 };
    cr_assert_eq(cl_block_encode(&b, v), 0, "NUM 0, size 16: empty option value");
    b = (struct cl_block){ 4096, false, 6 };
    cr_assert_eq(cl_block_encode(&b, v), 3);
    cr_assert(cl_block_decode(v, 3, &d));
    cr_assert_eq(d.num, 4096);
}

Test(block, reassembles_in_order_and_says_what_comes_next)
{
    struct cl_resp r = { 0 };
    uint8_t body[100];
    for (int i = 0; i < 100; i++)
        body[i] = (uint8_t)i;
    struct cl_block next;
    struct cl_block b0 = { 0, true, 1 }; /* 32-byte blocks */
    cr_assert_eq(cl_block_add(&r, &b0, body, 32, 1000, &next), 1);
    cr_assert_eq(next.num, 1);
    cr_assert_eq(next.szx, 1);
    struct cl_block b1 = { 1, true, 1 };
    cr_assert_eq(cl_block_add(&r, &b1, body + 32, 32, 1000, &next), 1);
    /* The server may lower the block size on the way (RFC 7959 2.4): NUM follows. */
    struct cl_block b2 = { 4, true, 0 };
    cr_assert_eq(cl_block_add(&r, &b2, body + 64, 16, 1000, &next), 1);
    cr_assert_eq(next.num, 5);
    cr_assert_eq(next.szx, 0);
    struct cl_block b3 = { 5, false, 0 };
    cr_assert_eq(cl_block_add(&r, &b3, body + 80, 16, 1000, &next), 0);
    cr_assert_eq(r.len, 96);
    cr_assert_arr_eq(r.body, body, 96);
    cr_assert_eq(r.blocks, 4);
    cl_resp_clear(&r);
}

Test(block, out_of_place_short_and_oversize_blocks_are_refused)
{
    struct cl_resp r = { 0 };
    uint8_t body[64] = { 0 };
    struct cl_block next;
    struct cl_block b0 = { 0, true, 1 };
    cr_assert_eq(cl_block_add(&r, &b0, body, 32, 1000, &next), 1);
    struct cl_block skip = { 2, true, 1 };
    cr_assert_eq(cl_block_add(&r, &skip, body, 32, 1000, &next), GW_EBADMSG, "a gap");
    struct cl_block again = { 1, true, 1 };
    cr_assert_eq(cl_block_add(&r, &again, body, 20, 1000, &next), GW_EBADMSG,
                 "M=1 with a short block");
    struct cl_block bert = { 1, false, 7 };
    cr_assert_eq(cl_block_add(&r, &bert, body, 20, 1000, &next), GW_EBADMSG, "BERT over UDP");
    struct cl_block last = { 1, false, 1 };
    cr_assert_eq(cl_block_add(&r, &last, body, 32, 40, &next), GW_ETOOBIG, "past max_body");
    cl_resp_clear(&r);
}

Test(out, utf8_check)
{
    cr_assert(cl_utf8_text((const uint8_t *)"h\xc3\xa9llo \xe2\x82\xac", 10));
    cr_assert(cl_utf8_text((const uint8_t *)"", 0));
    cr_assert(!cl_utf8_text((const uint8_t *)"a\0b", 3), "NUL is not text");
    cr_assert(!cl_utf8_text((const uint8_t *)"\xff", 1));
    cr_assert(!cl_utf8_text((const uint8_t *)"\xc3", 1), "truncated sequence");
    cr_assert(!cl_utf8_text((const uint8_t *)"\xc0\xaf", 2), "overlong");
    cr_assert(!cl_utf8_text((const uint8_t *)"\xed\xa0\x80", 3), "surrogate");
}

Test(out, base64)
{
    char *s = cl_base64((const uint8_t *)"\x00\xff\x10\x80", 4);
    cr_assert_str_eq(s, "AP8QgA==");
    free(s);
    s = cl_base64((const uint8_t *)"abc", 3);
    cr_assert_str_eq(s, "YWJj");
    free(s);
}

static struct cl_resp sample(const uint8_t *payload, size_t n)
{
    struct cl_resp r = { 0 };
    r.code = 0x45;
    r.type = 0;
    cr_assert_eq(cl_resp_add_opt(&r, 4, (const uint8_t *)"\x01\x02", 2), 0);
    cr_assert_eq(cl_resp_add_opt(&r, 6, (const uint8_t *)"\x01\x00", 2), 0);
    cr_assert_eq(cl_resp_add_opt(&r, 12, (const uint8_t *)"\x32", 1), 0);
    cr_assert_eq(cl_resp_add_opt(&r, 8, (const uint8_t *)"sessions", 8), 0);
    cr_assert_eq(cl_resp_body(&r, payload, n, false, 1 << 20), 0);
    r.elapsed_ms = 1.5;
    return r;
}

Test(out, json_text_payload_and_typed_options)
{
    struct cl_resp r = sample((const uint8_t *)"{\"v\":1}", 7);
    json_t *o = cl_resp_json(&r);
    cr_assert_not_null(o);
    cr_assert_str_eq(json_string_value(json_object_get(o, "code")), "2.05");
    cr_assert_str_eq(json_string_value(json_object_get(o, "code_name")), "Content");
    cr_assert_eq(json_integer_value(json_object_get(o, "content_format")), 50);
    cr_assert_eq(json_integer_value(json_object_get(o, "observe")), 256);
    cr_assert_str_eq(json_string_value(json_object_get(o, "payload")), "{\"v\":1}");
    cr_assert_null(json_object_get(o, "payload_base64"));
    json_t *opts = json_object_get(o, "options");
    cr_assert_eq(json_array_size(opts), 4);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(opts, 0), "name")), "ETag");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(opts, 0), "value")), "0102",
                     "opaque: hex");
    cr_assert_eq(json_integer_value(json_object_get(json_array_get(opts, 2), "value")), 50,
                 "uint: number");
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(opts, 3), "value")),
                     "sessions");
    json_decref(o);
    cl_resp_clear(&r);
}

Test(out, json_binary_payload_is_base64)
{
    struct cl_resp r = sample((const uint8_t *)"\x00\xff\x10\x80", 4);
    json_t *o = cl_resp_json(&r);
    cr_assert_null(json_object_get(o, "payload"));
    cr_assert_str_eq(json_string_value(json_object_get(o, "payload_base64")), "AP8QgA==");
    cr_assert_eq(json_integer_value(json_object_get(o, "size")), 4);
    json_decref(o);
    cl_resp_clear(&r);
}

Test(out, code_and_option_names)
{
    cr_assert_str_eq(cl_code_name(0x81), "Unauthorized");
    cr_assert_str_eq(cl_code_name(0xa4), "Gateway Timeout");
    cr_assert_str_eq(cl_code_name(0x7f), "");
    cr_assert_str_eq(cl_opt_name(23), "Block2");
    cr_assert_null(cl_opt_name(2000));
}

/* RFC 7641 3.4, S6.8: a reordered older notification is not shown as news. */
Test(observe, newer_by_number_with_wrap_and_time)
{
    cr_assert(cl_obs_newer(5, 0, 6, 10));
    cr_assert_not(cl_obs_newer(6, 0, 5, 10), "older");
    cr_assert_not(cl_obs_newer(6, 0, 6, 10), "the same number");
    cr_assert(cl_obs_newer(0xfffffe, 0, 1, 10), "24-bit wrap");
    cr_assert_not(cl_obs_newer(1, 0, 0xfffffe, 10), "not across the wrap backwards");
    cr_assert(cl_obs_newer(6, 0, 5, 128001), "after 128 s anything is newer");
}
