/* SPDX-License-Identifier: MIT */
/* test_devfile.c - the devices file (SPEC S7.2 registry source, S7.3 simulator). */
#include "gw_addr.h"
#include "gw_devfile.h"
#include "gw_error.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define E(expr) cr_assert_eq((expr), 0, "%s", #expr)

#define MAXDEV 64
#define MAXWARN 32

struct sink {
    struct gw_device dev[MAXDEV];
    int ndev;
    int wline[MAXWARN];
    char wmsg[MAXWARN][160];
    int nwarn;
    int stop_after; /* 0 = never */
};

static int on_dev(void *ctx, const struct gw_device *d)
{
    struct sink *s = ctx;
    cr_assert_lt(s->ndev, MAXDEV);
    s->dev[s->ndev++] = *d;
    return s->stop_after && s->ndev >= s->stop_after ? 1 : 0;
}

static void on_warn(void *ctx, int lineno, const char *msg)
{
    struct sink *s = ctx;
    cr_assert_lt(s->nwarn, MAXWARN);
    s->wline[s->nwarn] = lineno;
    snprintf(s->wmsg[s->nwarn], sizeof(s->wmsg[0]), "%s", msg);
    s->nwarn++;
}

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_devfile.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(devfile, .init = setup, .fini = teardown);

static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
    return path;
}

#define KEY1 "000102030405060708090a0b0c0d0e0f"
#define KEY2 "F0E1D2C3B4A5968778695A4B3C2D1E0F"

/* S7.2: a well-formed file with comments, blank lines, CRLF, defaults,
 * IPv6 and the sim column yields every device with every field. */
Test(devfile, good_file_loads_every_field)
{
    const char *p = write_file("good.csv", "# devices\n"
                                           "\n"
                                           "mac,address,type,key,plain_port,secure_port,sim\r\n"
                                           "0011223344556677,127.0.10.1,normal," KEY1 "\n"
                                           "   # indented comment\n"
                                           "AABBCCDDEEFF0011 , 127.0.10.2 , MILLI , " KEY2
                                           " , 15683 , 14849 , latency=50-80;loss=10\r\n"
                                           "aabbccddeeff0022,::1,normal," KEY1 ",,\n"
                                           "\t\n");
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 0);
    cr_assert_eq(s.nwarn, 0, "unexpected warning: %s", s.wmsg[0]);
    cr_assert_eq(s.ndev, 3);

    const uint8_t mac0[8] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 };
    cr_assert_arr_eq(s.dev[0].mac, mac0, 8);
    cr_assert_eq(s.dev[0].family, 4);
    const uint8_t a0[4] = { 127, 0, 10, 1 };
    cr_assert_arr_eq(s.dev[0].addr, a0, 4);
    cr_assert_eq(s.dev[0].type, GW_DEV_NORMAL);
    cr_assert_eq(s.dev[0].plain_port, 5683);
    cr_assert_eq(s.dev[0].secure_port, 4849);
    cr_assert_eq(s.dev[0].key[0], 0x00);
    cr_assert_eq(s.dev[0].key[15], 0x0f);
    cr_assert_str_empty(s.dev[0].sim);

    const uint8_t mac1[8] = { 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x00, 0x11 };
    cr_assert_arr_eq(s.dev[1].mac, mac1, 8);
    cr_assert_eq(s.dev[1].type, GW_DEV_MILLI);
    cr_assert_eq(s.dev[1].plain_port, 15683);
    cr_assert_eq(s.dev[1].secure_port, 14849);
    cr_assert_eq(s.dev[1].key[0], 0xf0);
    cr_assert_str_eq(s.dev[1].sim, "latency=50-80;loss=10");

    cr_assert_eq(s.dev[2].family, 6);
    uint8_t lo6[16] = { 0 };
    lo6[15] = 1;
    cr_assert_arr_eq(s.dev[2].addr, lo6, 16);
    cr_assert_eq(s.dev[2].plain_port, 5683, "an empty port takes the default");
    cr_assert_eq(s.dev[2].secure_port, 4849);
}

/* S7.2 / S9: each kind of bad line is reported with its own line number and
 * skipped; the good lines around it still load. */
Test(devfile, bad_lines_reported_with_line_number_and_skipped)
{
    const char *p = write_file(
        "bad.csv", "mac,address,type,key,plain_port,secure_port,sim\n"    /* 1 */
                   "0000000000000001,127.0.0.1,normal," KEY1 "\n"         /* 2 good */
                   "00000000000001,127.0.0.1,normal," KEY1 "\n"           /* 3 short mac */
                   "000000000000000g,127.0.0.1,normal," KEY1 "\n"         /* 4 non-hex mac */
                   "0000000000000003,127.0.0.300,normal," KEY1 "\n"       /* 5 bad address */
                   "0000000000000004,host.example,normal," KEY1 "\n"      /* 6 name, not literal */
                   "0000000000000005,127.0.0.1,tiny," KEY1 "\n"           /* 7 bad type */
                   "0000000000000006,127.0.0.1,normal,0011\n"             /* 8 short key */
                   "0000000000000007,127.0.0.1,normal\n"                  /* 9 too few fields */
                   "0000000000000008,127.0.0.1,normal," KEY1 ",0\n"       /* 10 port 0 */
                   "0000000000000009,127.0.0.1,normal," KEY1 ",1,65536\n" /* 11 port too big */
                   "000000000000000a,127.0.0.1,normal," KEY1 ",5683,5683\n" /* 12 equal ports */
                   "000000000000000b,127.0.0.1,normal," KEY1 ",1,2,s,x\n"   /* 13 too many fields */
                   "000000000000000c,127.0.0.1,normal," KEY1 ",12x\n" /* 14 non-numeric port */
                   "000000000000000d,127.0.0.2,milli," KEY2 ",,,silent\n"); /* 15 good */
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 12);
    cr_assert_eq(s.ndev, 2);
    cr_assert_eq(s.dev[0].mac[7], 0x01);
    cr_assert_eq(s.dev[1].mac[7], 0x0d);
    cr_assert_str_eq(s.dev[1].sim, "silent");
    static const int lines[] = { 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14 };
    static const char *const words[] = { "mac",         "mac",   "address", "address",
                                         "type",        "key",   "few",     "plain_port",
                                         "secure_port", "equal", "many",    "plain_port" };
    cr_assert_eq(s.nwarn, (int)GW_ARRAY_LEN(lines));
    for (size_t i = 0; i < GW_ARRAY_LEN(lines); i++) {
        cr_expect_eq(s.wline[i], lines[i], "warning %zu on line %d", i, s.wline[i]);
        cr_expect_not_null(strstr(s.wmsg[i], words[i]), "line %d: '%s' lacks '%s'", lines[i],
                           s.wmsg[i], words[i]);
    }
}

/* A line may not have more fields than the header names. */
Test(devfile, more_fields_than_header_is_bad)
{
    const char *p =
        write_file("narrow.csv", "mac,address,type,key\n"
                                 "0000000000000001,127.0.0.1,normal," KEY1 ",5683,4849\n"
                                 "0000000000000002,127.0.0.1,normal," KEY1 "\n");
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 1);
    cr_assert_eq(s.ndev, 1);
    cr_assert_eq(s.wline[0], 2);
    cr_assert_eq(s.dev[0].mac[7], 2);
}

/* S4.2: MAC IDs are case-insensitive, so two spellings of one MAC collide. */
Test(devfile, duplicate_mac_reported_and_second_skipped)
{
    const char *p = write_file("dup.csv", "mac,address,type,key\n"
                                          "00000000000000AB,127.0.0.1,normal," KEY1 "\n"
                                          "0000000000000002,127.0.0.2,normal," KEY1 "\n"
                                          "00000000000000ab,127.0.0.3,milli," KEY2 "\n");
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 1);
    cr_assert_eq(s.ndev, 2);
    cr_assert_eq(s.dev[0].addr[3], 1, "the first occurrence wins");
    cr_assert_eq(s.nwarn, 1);
    cr_assert_eq(s.wline[0], 4);
    cr_assert_not_null(strstr(s.wmsg[0], "duplicate"));
    cr_assert_not_null(strstr(s.wmsg[0], "line 2"), "names the first line: %s", s.wmsg[0]);
}

/* S7.2 (issue #12 item 9): answers are matched to a device by the endpoint
 * they come from, so two devices on one address:port cannot both work; the
 * later line is refused, naming the endpoint and the device that holds it. */
Test(devfile, endpoint_used_twice_is_refused)
{
    const char *p = write_file(
        "ep.csv", "mac,address,type,key,plain_port,secure_port\n"
                  "0000000000000001,127.0.0.1,normal," KEY1 ",5683,4849\n"
                  "0000000000000002,127.0.0.1,normal," KEY1 ",5683,4850\n" /* same plain endpoint */
                  "0000000000000003,127.0.0.1,normal," KEY1 ",4849,5690\n" /* plain = 1's secure */
                  "0000000000000004,127.0.0.1,normal," KEY1
                  ",5700,5701\n" /* same address, other ports: fine */
                  "0000000000000005,127.0.0.2,normal," KEY1 ",5683,4849\n" /* other address: fine */
                  "0000000000000006,::1,normal," KEY1 ",5683,4849\n"
                  "0000000000000007,::1,milli," KEY1 ",6000,5683\n"); /* secure = 6's plain */
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 3);
    cr_assert_eq(s.ndev, 4);
    cr_assert_eq(s.nwarn, 3);
    cr_assert_eq(s.wline[0], 3);
    cr_assert_str_eq(s.wmsg[0], "127.0.0.1:5683 already used by 0000000000000001 (line 2)");
    cr_assert_eq(s.wline[1], 4);
    cr_assert_str_eq(s.wmsg[1], "127.0.0.1:4849 already used by 0000000000000001 (line 2)");
    cr_assert_eq(s.wline[2], 8);
    cr_assert_str_eq(s.wmsg[2], "[::1]:5683 already used by 0000000000000006 (line 7)");
}

/* The seen-set stores keys in a gw_map, whose slot key 0 means empty (it
 * keeps 0 as GW_MAP_KEY0): the MAC 0 and the MAC equal to that constant
 * are still two devices, and a MAC never mistaken for an endpoint. */
Test(devfile, macs_that_alias_in_the_table_stay_apart)
{
    const char *p = write_file("alias.csv", "mac,address,type,key\n"
                                            "0000000000000000,127.0.0.1,normal," KEY1 "\n"
                                            "9e3779b97f4a7c15,127.0.0.2,normal," KEY1 "\n"
                                            "0000000000000000,127.0.0.3,normal," KEY1 "\n");
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 1);
    cr_assert_eq(s.ndev, 2, "both MACs load");
    cr_assert_eq(s.nwarn, 1);
    cr_assert_eq(s.wline[0], 4, "only the real duplicate is refused");
    cr_assert_not_null(strstr(s.wmsg[0], "line 2"), "%s", s.wmsg[0]);
}

/* 3000 devices: the set grows many times and still finds the first line. */
Test(devfile, many_devices_then_a_duplicate)
{
    static char text[3002 * 80];
    size_t o = (size_t)snprintf(text, sizeof(text), "mac,address,type,key,plain_port\n");
    for (int i = 0; i < 3000; i++)
        o += (size_t)snprintf(text + o, sizeof(text) - o,
                              "%016x,127.0.%d.%d,normal," KEY1 ",5683\n", i + 1, i / 250, i % 250);
    o += (size_t)snprintf(text + o, sizeof(text) - o, "%016x,127.0.99.1,normal," KEY1 ",5683\n",
                          1234);
    snprintf(text + o, sizeof(text) - o, "%016x,127.0.4.234,normal," KEY1 ",5683\n", 9999);
    const char *p = write_file("many.csv", text);
    struct sink *s = calloc(1, sizeof(*s));
    cr_assert_not_null(s);
    cr_assert_eq(gw_devfile_load(p, NULL, on_warn, s), 2);
    cr_assert_eq(s->nwarn, 2);
    cr_assert_eq(s->wline[0], 3002);
    cr_assert_not_null(strstr(s->wmsg[0], "line 1235"), "%s", s->wmsg[0]);
    cr_assert_eq(s->wline[1], 3003);
    cr_assert_str_eq(s->wmsg[1], "127.0.4.234:5683 already used by 00000000000004d3 (line 1236)");
    free(s);
}

/* A refused line takes no endpoint: a later device may use it. */
Test(devfile, refused_line_takes_no_endpoint)
{
    const char *p = write_file("ep2.csv", "mac,address,type,key,plain_port,secure_port\n"
                                          "0000000000000001,127.0.0.1,normal," KEY1 ",5683,4849\n"
                                          "0000000000000002,127.0.0.1,normal," KEY1 ",5683,7000\n"
                                          "0000000000000003,127.0.0.1,normal," KEY1 ",7000,7001\n");
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 1);
    cr_assert_eq(s.ndev, 2);
    cr_assert_eq(s.dev[1].plain_port, 7000);
}

Test(devfile, missing_header_is_an_error)
{
    const char *p = write_file("nohdr.csv", "# comment\n"
                                            "0000000000000001,127.0.0.1,normal," KEY1 "\n");
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), GW_EBADMSG);
    cr_assert_eq(s.ndev, 0);
    cr_assert_eq(s.nwarn, 1);
    cr_assert_eq(s.wline[0], 2);
    cr_assert_not_null(strstr(s.wmsg[0], "header"));

    struct sink s2 = { 0 };
    p = write_file("empty.csv", "# only a comment\n\n");
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s2), GW_EBADMSG);
    p = write_file("wrongcols.csv", "mac,addr,type,key\n");
    cr_assert_eq(gw_devfile_load(p, on_dev, NULL, &s2), GW_EBADMSG);
}

Test(devfile, header_only_is_an_empty_registry)
{
    const char *p = write_file("hdr.csv", "\xEF\xBB\xBFMAC,Address,Type,Key\r\n");
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 0);
    cr_assert_eq(s.ndev, 0);
}

Test(devfile, missing_file_is_enoent)
{
    struct sink s = { 0 };
    char p[128];
    snprintf(p, sizeof(p), "%s/nope.csv", dir);
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), -ENOENT);
}

Test(devfile, callback_stops_the_load)
{
    const char *p = write_file("stop.csv", "mac,address,type,key\n"
                                           "0000000000000001,127.0.0.1,normal," KEY1 "\n"
                                           "0000000000000002,127.0.0.2,normal," KEY1 "\n"
                                           "0000000000000003,127.0.0.3,normal," KEY1 "\n");
    struct sink s = { .stop_after = 2 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 0);
    cr_assert_eq(s.ndev, 2);
}

Test(devfile, parse_line_reports_why)
{
    struct gw_device d;
    const char *why = NULL;
    E(gw_devfile_parse_line("0123456789ABCDEF,10.0.0.1,milli," KEY2 ",1,2,rst\r\n", &d, &why));
    cr_assert_eq(d.mac[0], 0x01);
    cr_assert_eq(d.mac[7], 0xef);
    cr_assert_eq(d.type, GW_DEV_MILLI);
    cr_assert_eq(d.plain_port, 1);
    cr_assert_eq(d.secure_port, 2);
    cr_assert_str_eq(d.sim, "rst");
    cr_assert_eq(gw_devfile_parse_line("0123456789ABCDEF,10.0.0.1,milli,xyz", &d, &why),
                 GW_EBADMSG);
    cr_assert_str_eq(why, "bad key (need 32 hex digits)");
    char big[GW_DEVFILE_LINE_MAX + 50];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(gw_devfile_parse_line(big, &d, &why), GW_EBADMSG);
    cr_assert_str_eq(why, "line too long");
    char sim[200];
    snprintf(sim, sizeof(sim), "0123456789ABCDEF,10.0.0.1,milli," KEY2 ",1,2,%0120d", 0);
    cr_assert_eq(gw_devfile_parse_line(sim, &d, &why), GW_EBADMSG);
    cr_assert_not_null(strstr(why, "sim"));
}

/* S7.3: --generate writes a file the loader reads back, with consecutive
 * addresses, every 4th device Milli, standard ports and distinct keys. */
Test(devfile, generate_then_load_round_trip)
{
    char p[128], err[160] = "";
    snprintf(p, sizeof(p), "%s/gen.csv", dir);
    E(gw_devfile_generate(p, 40, "127.0.10.250", err, sizeof(err)));
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 0);
    cr_assert_eq(s.nwarn, 0);
    cr_assert_eq(s.ndev, 40);
    for (int i = 0; i < 40; i++) {
        const struct gw_device *d = &s.dev[i];
        char m[17];
        gw_mac_str(d->mac, m);
        char want[17];
        snprintf(want, sizeof(want), "02%014x", i + 1);
        cr_expect_str_eq(m, want);
        cr_expect_eq(d->family, 4);
        uint32_t a = (uint32_t)d->addr[0] << 24 | d->addr[1] << 16 | d->addr[2] << 8 | d->addr[3];
        cr_expect_eq(a, (127u << 24 | 10u << 8 | 250u) + (uint32_t)i, "device %d", i);
        cr_expect_eq(d->type, (i + 1) % 4 == 0 ? GW_DEV_MILLI : GW_DEV_NORMAL);
        cr_expect_eq(d->plain_port, 5683);
        cr_expect_eq(d->secure_port, 4849);
        for (int j = 0; j < i; j++)
            cr_expect_neq(memcmp(d->key, s.dev[j].key, 16), 0, "keys %d and %d equal", i, j);
    }
    snprintf(p, sizeof(p), "%s/gen6.csv", dir);
    E(gw_devfile_generate(p, 3, "fd00::ff", err, sizeof(err)));
    struct sink s6 = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s6), 0);
    cr_assert_eq(s6.ndev, 3);
    cr_assert_eq(s6.dev[2].family, 6);
    cr_assert_eq(s6.dev[2].addr[14], 1);
    cr_assert_eq(s6.dev[2].addr[15], 1);
}

Test(devfile, generate_refuses_bad_arguments)
{
    char p[128], err[160] = "";
    snprintf(p, sizeof(p), "%s/x.csv", dir);
    cr_assert_eq(gw_devfile_generate(p, 0, "127.0.0.1", err, sizeof(err)), GW_ECONFIG);
    cr_assert_eq(gw_devfile_generate(p, 3, "not-an-address", err, sizeof(err)), GW_ECONFIG);
    cr_assert_not_null(strstr(err, "not-an-address"));
    cr_assert_eq(gw_devfile_generate(p, 3, "255.255.255.254", err, sizeof(err)), GW_ECONFIG);
    cr_assert_eq(access(p, F_OK), -1, "nothing written on failure");
    snprintf(p, sizeof(p), "%s/no/such/dir/x.csv", dir);
    cr_assert_eq(gw_devfile_generate(p, 1, "127.0.0.1", err, sizeof(err)), -ENOENT);
}

/* The device list meshio and meshsim fill from the registry or the file:
 * every device kept, in order, across growths. */
Test(devfile, devlist_keeps_every_device_in_order)
{
    struct gw_devlist l = { 0 };
    for (uint32_t i = 0; i < 200; i++) {
        struct gw_device d;
        memset(&d, 0, sizeof(d));
        d.mac[7] = (uint8_t)i;
        d.mac[6] = (uint8_t)(i >> 8);
        d.key[0] = (uint8_t)(i * 7);
        cr_assert_eq(gw_devlist_add(&l, &d), 0);
    }
    cr_assert_eq(l.n, 200);
    cr_assert_geq(l.cap, 200);
    cr_assert_eq(l.err, 0);
    for (uint32_t i = 0; i < 200; i++) {
        cr_assert_eq(l.v[i].mac[7], (uint8_t)i, "device %u in place", i);
        cr_assert_eq(l.v[i].key[0], (uint8_t)(i * 7));
    }
    gw_devlist_free(&l);
    cr_assert_null(l.v);
    cr_assert_eq(l.n, 0);
    cr_assert_eq(l.cap, 0);
    gw_devlist_free(&l); /* twice is harmless */
}

/* A line that cannot be read (a NUL byte, more than GW_DEVFILE_LINE_MAX)
 * is skipped and counted after the header, and ends the load where the
 * header should be (S7.2: one clear line naming file:line). */
Test(devfile, unreadable_lines_skipped_after_the_header_fatal_before)
{
    char big[GW_DEVFILE_LINE_MAX + 10];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char text[GW_DEVFILE_LINE_MAX + 200];
    snprintf(text, sizeof(text),
             "mac,address,type,key\n0000000000000001,127.0.0.1,normal," KEY1 "\nX%sY\n%s\n"
             "0000000000000002,127.0.0.2,normal," KEY1 "\n",
             "\x01", big);
    const char *p = write_file("bad.csv", text);
    /* A NUL cannot go through snprintf: patch the \x01 in the file. */
    FILE *f = fopen(p, "r+");
    cr_assert_not_null(f);
    cr_assert_eq(fseek(f, (long)(strchr(text, '\x01') - text), SEEK_SET), 0);
    cr_assert_eq(fputc('\0', f), 0);
    cr_assert_eq(fclose(f), 0);
    struct sink s = { 0 };
    cr_assert_eq(gw_devfile_load(p, on_dev, on_warn, &s), 2, "two bad lines");
    cr_assert_eq(s.ndev, 2);
    cr_assert_eq(s.nwarn, 2);
    cr_assert_eq(s.wline[0], 3);
    cr_assert_str_eq(s.wmsg[0], "NUL byte in line");
    cr_assert_eq(s.wline[1], 4);
    cr_assert_str_eq(s.wmsg[1], "line too long");

    snprintf(text, sizeof(text), "%s\n0000000000000001,127.0.0.1,normal," KEY1 "\n", big);
    struct sink h = { 0 };
    cr_assert_eq(gw_devfile_load(write_file("longhead.csv", text), on_dev, on_warn, &h),
                 GW_EBADMSG);
    cr_assert_eq(h.ndev, 0);
    cr_assert_eq(h.nwarn, 1);
    cr_assert_str_eq(h.wmsg[0], "line too long where the header should be");
}
