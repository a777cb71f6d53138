/* SPDX-License-Identifier: MIT */
/* test_text.c - the shared text codecs (common/gw_text.c): hex for MAC IDs
 * (S4.2), device keys and session ids, base64url for JWT segments (RFC 7515
 * section 2, RFC 4648 section 5), bounded decimals for ports in the device
 * file, and trimming configuration lines. */
#include "gw_error.h"
#include "gw_text.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

Test(text, hex_digit_both_cases_and_nothing_else)
{
    cr_assert_eq(gw_hex_digit('0'), 0);
    cr_assert_eq(gw_hex_digit('9'), 9);
    cr_assert_eq(gw_hex_digit('a'), 10);
    cr_assert_eq(gw_hex_digit('F'), 15);
    /* Neighbours of the ranges, and characters whose case fold lands near them. */
    const char *bad = "/:@G`gxX \x7f";
    for (const char *p = bad; *p; p++)
        cr_assert_eq(gw_hex_digit((unsigned char)*p), -1, "'%c' is not a hex digit", *p);
    cr_assert_eq(gw_hex_digit(0xc1), -1, "a byte above ASCII is not a digit");
    cr_assert_eq(gw_hex_digit(-1), -1);
}

Test(text, hex_decode_exact_length)
{
    uint8_t out[4];
    cr_assert_eq(gw_hex_decode("00aBcD7f", 8, out, 4), 0);
    const uint8_t want[4] = { 0x00, 0xab, 0xcd, 0x7f };
    cr_assert_arr_eq(out, want, 4);
    cr_assert_eq(gw_hex_decode("00aBcD7", 7, out, 4), GW_EBADMSG, "odd length");
    cr_assert_eq(gw_hex_decode("00aBcD7f00", 10, out, 4), GW_EBADMSG, "too long");
    cr_assert_eq(gw_hex_decode("00aBcDg0", 8, out, 4), GW_EBADMSG, "bad digit");
}

Test(text, b64url_alphabet)
{
    const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (int i = 0; i < 64; i++)
        cr_assert_eq(gw_b64url_digit((unsigned char)abc[i]), i);
    const char *bad = "+/=. \n";
    for (const char *p = bad; *p; p++)
        cr_assert_eq(gw_b64url_digit((unsigned char)*p), -1, "'%c' is not base64url", *p);
    cr_assert_eq(gw_b64url_digit(0), -1, "NUL is not in the alphabet");
    cr_assert_eq(gw_b64url_digit(0xe9), -1);
}

Test(text, b64url_decode_canonical_only)
{
    uint8_t out[16];
    size_t n = 99;
    /* {"a":1} -> eyJhIjoxfQ (RFC 7515 style, no padding) */
    cr_assert_eq(gw_b64url_decode("eyJhIjoxfQ", 10, out, sizeof(out), &n), 0);
    cr_assert_eq(n, 7);
    cr_assert_eq(memcmp(out, "{\"a\":1}", 7), 0);
    cr_assert_eq(gw_b64url_decode("", 0, out, sizeof(out), &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(gw_b64url_decode("eyJhIjoxfR", 10, out, sizeof(out), &n), GW_EBADMSG,
                 "non-zero trailing bits: a second spelling of the same bytes");
    cr_assert_eq(gw_b64url_decode("eyJhI", 5, out, sizeof(out), &n), GW_EBADMSG,
                 "a length base64 cannot have");
    cr_assert_eq(gw_b64url_decode("eyJh+joxfQ", 10, out, sizeof(out), &n), GW_EBADMSG,
                 "'+' is base64, not base64url");
    cr_assert_eq(gw_b64url_decode("eyJhIjoxfQ", 10, out, 6, &n), GW_EBADMSG,
                 "7 bytes do not fit in 6");
}

Test(text, decimal_bounded)
{
    uint64_t v = 0;
    cr_assert_eq(gw_dec_parse("65535", 5, 65535, &v), 0);
    cr_assert_eq(v, 65535);
    cr_assert_eq(gw_dec_parse("00080", 5, 65535, &v), 0);
    cr_assert_eq(v, 80);
    cr_assert_eq(gw_dec_parse("65536", 5, 65535, &v), GW_EBADMSG, "above max");
    cr_assert_eq(gw_dec_parse("000080", 5, 65535, &v), GW_EBADMSG, "more digits than maxlen");
    cr_assert_eq(gw_dec_parse("", 5, 65535, &v), GW_EBADMSG, "empty");
    cr_assert_eq(gw_dec_parse("-1", 5, 65535, &v), GW_EBADMSG, "sign");
    cr_assert_eq(gw_dec_parse("1 ", 5, 65535, &v), GW_EBADMSG, "space");
    cr_assert_eq(gw_dec_parse("99999999999999999999", 30, UINT64_MAX, &v), GW_EBADMSG,
                 "20 digits could wrap 64 bits");
    cr_assert_eq(gw_dec_parse("4294967295", 10, UINT32_MAX, &v), 0);
    cr_assert_eq(v, UINT32_MAX);
}

Test(text, trim_both_ends_in_place)
{
    char a[] = " \t key = v \r\n";
    char *t = gw_str_trim(a);
    cr_assert_str_eq(t, "key = v");
    cr_assert(t >= a && t < a + sizeof(a), "the result points into the buffer");
    char b[] = "   ";
    cr_assert_str_eq(gw_str_trim(b), "");
    char c[] = "x";
    cr_assert_str_eq(gw_str_trim(c), "x");
}

Test(text, env_name_upper_case_after_prefix)
{
    char b[32];
    cr_assert_str_eq(gw_env_name("COAPGW_", "max_txn", b, sizeof(b)), "COAPGW_MAX_TXN");
    cr_assert_str_eq(gw_env_name("COAPGW_CLIENT_", "gateway", b, sizeof(b)),
                     "COAPGW_CLIENT_GATEWAY");
    char s[10];
    cr_assert_str_eq(gw_env_name("COAPGW_", "listen", s, sizeof(s)), "COAPGW_LI",
                     "cut to the buffer, terminated");
    char t[4];
    cr_assert_str_eq(gw_env_name("COAPGW_", "x", t, sizeof(t)), "COA", "a long prefix is cut too");
}

Test(text, grow_doubles_from_first_and_keeps_contents)
{
    uint8_t *b = NULL;
    size_t cap = 0;
    cr_assert_eq(gw_grow(&b, &cap, 10, 1, 256), 0);
    cr_assert_eq(cap, 256, "the first size");
    memset(b, 0xab, 256);
    cr_assert_eq(gw_grow(&b, &cap, 200, 1, 256), 0);
    cr_assert_eq(cap, 256, "room enough: nothing changes");
    cr_assert_eq(gw_grow(&b, &cap, 1000, 1, 256), 0);
    cr_assert_eq(cap, 1024, "doubled until it fits");
    for (size_t i = 0; i < 256; i++)
        cr_assert_eq(b[i], 0xab, "byte %zu kept", i);
    free(b);

    uint32_t *w = NULL;
    size_t wc = 0;
    cr_assert_eq(gw_grow(&w, &wc, 3, sizeof(*w), 4), 0);
    w[3] = 7;
    cr_assert_eq(gw_grow(&w, &wc, 5, sizeof(*w), 4), 0);
    cr_assert_eq(wc, 8);
    cr_assert_eq(w[3], 7);
    free(w);

    uint8_t *x = NULL;
    size_t xc = 0;
    cr_assert_eq(gw_grow(&x, &xc, SIZE_MAX / 2 + 2, 1, 16), -ENOMEM, "no size_t wrap");
    cr_assert_null(x);
    cr_assert_eq(xc, 0, "unchanged on failure");
    cr_assert_eq(gw_grow(&x, &xc, SIZE_MAX / 8, 16, 16), -ENOMEM, "no wrap in the byte count");
}
