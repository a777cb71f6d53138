/* SPDX-License-Identifier: MIT */
/* test_addr.c - endpoints and MAC IDs (common/gw_addr.c).
 *
 * Endpoints key sessions (SPEC S2.4: bound to the client's IP and port) and
 * come from configuration (`listen`, `mesh_bind`, S1.5). MAC IDs are 16 hex
 * digits, case-insensitive (S4.2). */
#include "gw_addr.h"
#include "gw_error.h"
#include "gw_rand.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

Test(addr, parse_v4_with_port)
{
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse("192.0.2.7:5684", 5683, &ep), 0);
    cr_assert_eq(ep.family, 4);
    cr_assert_eq(ep.port, 5684);
    const uint8_t a[16] = { 192, 0, 2, 7 };
    cr_assert_arr_eq(ep.addr, a, 16, "IPv4 in the first 4 bytes, rest zero");
    cr_assert_eq(ep.pad, 0);
}

Test(addr, parse_default_port)
{
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse("10.1.2.3", 5683, &ep), 0);
    cr_assert_eq(ep.family, 4);
    cr_assert_eq(ep.port, 5683);
    cr_assert_eq(gw_ep_parse("[2001:db8::1]", 4849, &ep), 0);
    cr_assert_eq(ep.family, 6);
    cr_assert_eq(ep.port, 4849);
    /* A bare IPv6 address has colons but no port. */
    cr_assert_eq(gw_ep_parse("2001:db8::2", 5683, &ep), 0);
    cr_assert_eq(ep.family, 6);
    cr_assert_eq(ep.port, 5683);
    cr_assert_eq(ep.addr[15], 2);
}

Test(addr, parse_v6_in_brackets)
{
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse("[::1]:5683", 0, &ep), 0);
    cr_assert_eq(ep.family, 6);
    cr_assert_eq(ep.port, 5683);
    struct in6_addr lo = IN6ADDR_LOOPBACK_INIT;
    cr_assert_arr_eq(ep.addr, &lo, 16);
    cr_assert_eq(gw_ep_parse("[fe80::1:2]:65535", 0, &ep), 0);
    cr_assert_eq(ep.port, 65535);
}

Test(addr, parse_localhost_and_port_zero)
{
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse("localhost:0", 5683, &ep), 0);
    cr_assert_eq(ep.family, 4);
    cr_assert_eq(ep.port, 0);
    cr_assert_eq(ep.addr[0], 127);
    cr_assert_eq(ep.addr[3], 1);
}

Test(addr, parse_bad_input)
{
    static const char *bad[] = {
        "",
        "1.2.3",
        "1.2.3.4.5",
        "256.1.1.1",
        "1.2.3.4:",
        "1.2.3.4:abc",
        "1.2.3.4:80x",
        "1.2.3.4:-1",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[zz::1]:5683",
        "host.example:80",
        "[]:5683",
        ":5683",
        "1.2.3.4:65536",
        "1.2.3.4:99999999999999999999",
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        struct gw_ep ep;
        cr_assert_eq(gw_ep_parse(bad[i], 5683, &ep), GW_EBADMSG, "'%s'", bad[i]);
    }
    /* An over-long host does not overflow. */
    char longs[400];
    memset(longs, '1', sizeof(longs) - 1);
    longs[sizeof(longs) - 1] = '\0';
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse(longs, 5683, &ep), GW_EBADMSG);
    longs[0] = '[';
    cr_assert_eq(gw_ep_parse(longs, 5683, &ep), GW_EBADMSG);
}

Test(addr, parse_port_over_65535)
{
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse("1.2.3.4:65535", 0, &ep), 0);
    cr_assert_eq(ep.port, 65535);
    cr_assert_eq(gw_ep_parse("1.2.3.4:65536", 0, &ep), GW_EBADMSG);
    cr_assert_eq(gw_ep_parse("[::1]:70000", 0, &ep), GW_EBADMSG);
}

Test(addr, str_v4_v6)
{
    struct gw_ep ep;
    char buf[GW_EP_STRLEN];
    cr_assert_eq(gw_ep_parse("192.0.2.7:5684", 0, &ep), 0);
    cr_assert_str_eq(gw_ep_str(&ep, buf, sizeof(buf)), "192.0.2.7:5684");
    cr_assert_eq(gw_ep_parse("[2001:db8::1]:5683", 0, &ep), 0);
    cr_assert_str_eq(gw_ep_str(&ep, buf, sizeof(buf)), "[2001:db8::1]:5683");
    /* The longest IPv6 text fits GW_EP_STRLEN. */
    cr_assert_eq(gw_ep_parse("[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535", 0, &ep), 0);
    cr_assert_str_eq(gw_ep_str(&ep, buf, sizeof(buf)),
                     "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535");
    /* A short buffer truncates safely. */
    char tiny[8];
    gw_ep_str(&ep, tiny, sizeof(tiny));
    cr_assert_eq(strlen(tiny), 7);
}

/* str and parse are inverses. */
Test(addr, str_parse_round_trip)
{
    static const char *eps[] = { "0.0.0.0:5683", "127.0.0.1:1", "[::]:4849", "[::ffff:1.2.3.4]:9" };
    for (size_t i = 0; i < GW_ARRAY_LEN(eps); i++) {
        struct gw_ep a, b;
        char buf[GW_EP_STRLEN];
        cr_assert_eq(gw_ep_parse(eps[i], 0, &a), 0, "%s", eps[i]);
        cr_assert_eq(gw_ep_parse(gw_ep_str(&a, buf, sizeof(buf)), 0, &b), 0, "%s", buf);
        cr_assert(gw_ep_eq(&a, &b), "%s", eps[i]);
        cr_assert_eq(gw_ep_hash(&a), gw_ep_hash(&b));
    }
}

/* S2.4: sessions are keyed by address and port, both must differ in the key. */
Test(addr, sockaddr_round_trip_eq_and_hash)
{
    struct gw_ep a, b, c;
    cr_assert_eq(gw_ep_parse("[2001:db8::5]:6000", 0, &a), 0);
    struct sockaddr_storage ss;
    socklen_t sl = gw_ep_to_sa(&a, &ss);
    cr_assert_eq(sl, sizeof(struct sockaddr_in6));
    cr_assert_eq(gw_ep_from_sa(&b, (struct sockaddr *)&ss), 0);
    cr_assert(gw_ep_eq(&a, &b));
    cr_assert_eq(gw_ep_parse("192.0.2.1:6000", 0, &a), 0);
    sl = gw_ep_to_sa(&a, &ss);
    cr_assert_eq(sl, sizeof(struct sockaddr_in));
    cr_assert_eq(ntohs(((struct sockaddr_in *)&ss)->sin_port), 6000);
    cr_assert_eq(gw_ep_from_sa(&b, (struct sockaddr *)&ss), 0);
    cr_assert(gw_ep_eq(&a, &b));
    cr_assert_eq(gw_ep_parse("192.0.2.1:6001", 0, &c), 0);
    cr_assert_not(gw_ep_eq(&a, &c));
    cr_assert_neq(gw_ep_hash(&a), gw_ep_hash(&c));
    struct sockaddr un = { .sa_family = AF_UNIX };
    cr_assert_eq(gw_ep_from_sa(&b, &un), -EAFNOSUPPORT);
}

/* ------------------------------------------------------------------------ */
/* MAC IDs (S4.2). */

Test(addr, mac_parse_case_insensitive)
{
    uint8_t a[GW_MAC_LEN], b[GW_MAC_LEN];
    const uint8_t want[GW_MAC_LEN] = { 0x00, 0x11, 0x22, 0x33, 0xaa, 0xbb, 0xcc, 0xdf };
    cr_assert_eq(gw_mac_parse("00112233AABBCCDF", 16, a), 0);
    cr_assert_eq(gw_mac_parse("00112233aabbccdf", 16, b), 0);
    cr_assert_arr_eq(a, want, GW_MAC_LEN);
    cr_assert_arr_eq(b, want, GW_MAC_LEN);
    cr_assert_eq(gw_mac_parse("00112233aAbBcCdF", 16, b), 0);
    cr_assert_arr_eq(b, want, GW_MAC_LEN);
    /* len bounds the read: a longer string is fine when len says 16. */
    cr_assert_eq(gw_mac_parse("00112233aabbccdf/rest", 16, b), 0);
    cr_assert_arr_eq(b, want, GW_MAC_LEN);
}

Test(addr, mac_parse_wrong_length)
{
    uint8_t m[GW_MAC_LEN];
    cr_assert_eq(gw_mac_parse("", 0, m), GW_EBADMSG);
    cr_assert_eq(gw_mac_parse("00112233aabbccd", 15, m), GW_EBADMSG);
    cr_assert_eq(gw_mac_parse("00112233aabbccdf0", 17, m), GW_EBADMSG);
    cr_assert_eq(gw_mac_parse("0011223344556677889900", 22, m), GW_EBADMSG);
}

Test(addr, mac_parse_bad_hex)
{
    static const char *bad[] = { "00112233aabbccdg", "g0112233aabbccdf", "0011 233aabbccdf",
                                 "00:11:22:33:aa:b", "0x112233aabbccdf", "00112233aabbccd-" };
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        uint8_t m[GW_MAC_LEN];
        cr_assert_eq(gw_mac_parse(bad[i], 16, m), GW_EBADMSG, "'%s'", bad[i]);
    }
    /* An embedded NUL inside len is bad hex, not the end. */
    uint8_t m[GW_MAC_LEN];
    cr_assert_eq(gw_mac_parse("00112233\0abbccdf", 16, m), GW_EBADMSG);
}

Test(addr, mac_str_lower_case_round_trip)
{
    const uint8_t mac[GW_MAC_LEN] = { 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x0a, 0xf0 };
    char s[17];
    gw_mac_str(mac, s);
    cr_assert_str_eq(s, "deadbeef00010af0");
    uint8_t back[GW_MAC_LEN];
    cr_assert_eq(gw_mac_parse(s, strlen(s), back), 0);
    cr_assert_arr_eq(back, mac, GW_MAC_LEN);
}

/* S9 (issue #12 item 6): the keyed hash of remotely filled tables is
 * SipHash-2-4; the paper's test vector (key 00..0f, message 00..0e) and the
 * empty message pin the implementation, and another key changes the hash. */
Test(addr, siphash_matches_reference_vectors)
{
    uint64_t k[2];
    uint8_t kb[16], msg[15];
    for (int i = 0; i < 16; i++)
        kb[i] = (uint8_t)i;
    for (int i = 0; i < 15; i++)
        msg[i] = (uint8_t)i;
    memcpy(k, kb, 16); /* little-endian host: the key bytes as two words */
    cr_assert_eq(gw_siphash(k, msg, 15), 0xa129ca6149be45e5ull);
    cr_assert_eq(gw_siphash(k, msg, 0), 0x726fdb47dd0e0e31ull);
    uint64_t k2[2];
    gw_hash_key_new(k2);
    uint64_t k3[2];
    gw_hash_key_new(k3);
    cr_assert(k2[0] != k3[0] || k2[1] != k3[1], "two processes' keys differ");
    cr_assert_neq(gw_siphash(k2, msg, 15), gw_siphash(k3, msg, 15));
}

/* The byte-at-a-time SipHash-2-4 of the paper, as gw_siphash was written
 * before its words were loaded whole (issue 13): the reference the faster
 * one must equal for every length and alignment. */
static uint64_t sip_rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static void sip_round(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = sip_rotl(v[1], 13) ^ v[0];
    v[0] = sip_rotl(v[0], 32);
    v[2] += v[3];
    v[3] = sip_rotl(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = sip_rotl(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = sip_rotl(v[1], 17) ^ v[2];
    v[2] = sip_rotl(v[2], 32);
}

static uint64_t sip_bytewise(const uint64_t k[2], const uint8_t *b, size_t n)
{
    uint64_t v[4] = { k[0] ^ 0x736f6d6570736575ull, k[1] ^ 0x646f72616e646f6dull,
                      k[0] ^ 0x6c7967656e657261ull, k[1] ^ 0x7465646279746573ull };
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t m = 0;
        for (int j = 7; j >= 0; j--)
            m = m << 8 | b[i + (size_t)j];
        v[3] ^= m;
        sip_round(v);
        sip_round(v);
        v[0] ^= m;
    }
    uint64_t last = (uint64_t)(n & 0xff) << 56;
    for (size_t j = 0; i + j < n; j++)
        last |= (uint64_t)b[i + j] << (8 * j);
    v[3] ^= last;
    sip_round(v);
    sip_round(v);
    v[0] ^= last;
    v[2] ^= 0xff;
    for (int r = 0; r < 4; r++)
        sip_round(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

Test(addr, siphash_equals_bytewise_reference_for_every_length_and_alignment)
{
    /* The paper's vectors for lengths 1..3 (key 00..0f, message 00..). */
    uint64_t k[2];
    uint8_t kb[16], msg[80];
    for (int i = 0; i < 16; i++)
        kb[i] = (uint8_t)i;
    memcpy(k, kb, 16);
    for (int i = 0; i < 80; i++)
        msg[i] = (uint8_t)i;
    cr_assert_eq(gw_siphash(k, msg, 1), 0x74f839c593dc67fdull);
    cr_assert_eq(gw_siphash(k, msg, 2), 0x0d6c8009d9a94f5aull);
    cr_assert_eq(gw_siphash(k, msg, 3), 0x85676696d7fb7e2dull);
    struct gw_rand r;
    gw_rand_seed(&r, 13);
    for (int round = 0; round < 20; round++) {
        k[0] = gw_rand_next(&r);
        k[1] = gw_rand_next(&r);
        for (size_t i = 0; i < sizeof(msg); i++)
            msg[i] = (uint8_t)gw_rand_next(&r);
        for (size_t off = 0; off < 8; off++)
            for (size_t n = 0; n + off <= 72; n++)
                cr_assert_eq(gw_siphash(k, msg + off, n), sip_bytewise(k, msg + off, n),
                             "length %zu at offset %zu", n, off);
    }
}
