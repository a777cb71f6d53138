/* SPDX-License-Identifier: MIT */
/* test_uri.c - targets and gateway addresses of `coapgw client`
 * (common/client/cl_uri.c): device targets become a Proxy-Uri (SPEC S4.1,
 * S4.2: the host is a 16-hex-digit MAC ID), /path targets become Uri-Path
 * and Uri-Query options for the gateway's own resources (S8.1); bad input
 * is refused with one line naming the problem (issue 14). */
#include "cl_uri.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <string.h>

static char err[256];

static void part_is(const struct cl_target *t, const struct cl_part *p, const char *want)
{
    cr_assert_eq(p->len, strlen(want), "part length %u, want '%s'", p->len, want);
    cr_assert(memcmp(t->buf + p->off, want, p->len) == 0, "part is not '%s'", want);
}

Test(uri, device_with_scheme_is_proxy_uri)
{
    struct cl_target t;
    cr_assert_eq(cl_target_parse("coap://0200000000000001/value?x=1", &t, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_eq(t.kind, CL_TARGET_DEVICE);
    cr_assert_str_eq(t.mac, "0200000000000001");
    cr_assert_str_eq(t.proxy_uri, "coap://0200000000000001/value?x=1");
}

Test(uri, device_without_scheme_gets_coap)
{
    struct cl_target t;
    cr_assert_eq(cl_target_parse("02000000000000aB/a/b", &t, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(t.proxy_uri, "coap://02000000000000aB/a/b");
    /* the scheme is case-insensitive and written lower case */
    cr_assert_eq(cl_target_parse("COAP://0200000000000001:5683/v", &t, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_str_eq(t.proxy_uri, "coap://0200000000000001:5683/v");
}

Test(uri, local_path_splits_into_decoded_options)
{
    struct cl_target t;
    cr_assert_eq(cl_target_parse("/.well-known/core?rt=a%20b&ct=50", &t, err, sizeof(err)), 0, "%s",
                 err);
    cr_assert_eq(t.kind, CL_TARGET_LOCAL);
    cr_assert_eq(t.nseg, 2);
    part_is(&t, &t.seg[0], ".well-known");
    part_is(&t, &t.seg[1], "core");
    cr_assert_eq(t.nquery, 2);
    part_is(&t, &t.query[0], "rt=a b");
    part_is(&t, &t.query[1], "ct=50");
    cr_assert_eq(cl_target_parse("/sessions/00ab", &t, err, sizeof(err)), 0);
    cr_assert_eq(t.nseg, 2);
    part_is(&t, &t.seg[1], "00ab");
}

Test(uri, bad_targets_are_refused_with_a_reason)
{
    struct cl_target t;
    static const struct {
        const char *in, *why;
    } bad[] = {
        { "", "empty" },
        { "coaps://0200000000000001/v", "only coap://" },
        { "http://0200000000000001/v", "only coap://" },
        { "coap://gateway/v", "not a device MAC ID" },
        { "020000000000001/v", "not a device MAC ID" }, /* 15 digits */
        { "02000000000000zz/v", "not a device MAC ID" },
        { "0200000000000001:0/v", "bad port" },
        { "0200000000000001:70000/v", "bad port" },
        { "0200000000000001:/v", "bad port" },
        { "0200000000000001/a b", "space" },
        { "0200000000000001/v#frag", "fragment" },
        { "0200000000000001/%zz", "percent" },
        { "/a%2", "percent" },
        { "/", "no resource path" },
        { "coap:///help", "names no device" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        cr_assert_eq(cl_target_parse(bad[i].in, &t, err, sizeof(err)), GW_EBADMSG, "'%s' accepted",
                     bad[i].in);
        cr_assert(strstr(err, bad[i].why), "'%s': reason '%s' lacks '%s'", bad[i].in, err,
                  bad[i].why);
        cr_assert(!strchr(err, '\n'), "one line");
    }
}

Test(uri, proxy_uri_length_is_bounded)
{
    /* RFC 7252 5.10: Proxy-Uri is at most 1034 bytes. */
    char s[1100] = "0200000000000001/";
    size_t n = strlen(s);
    memset(s + n, 'a', 1034 - strlen("coap://") - n);
    s[1034 - strlen("coap://")] = '\0';
    struct cl_target t;
    cr_assert_eq(cl_target_parse(s, &t, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(strlen(t.proxy_uri), 1034);
    strcat(s, "a");
    cr_assert_eq(cl_target_parse(s, &t, err, sizeof(err)), GW_EBADMSG);
    cr_assert(strstr(err, "1034"));
}

Test(uri, gateway_host_and_port)
{
    char host[64];
    uint16_t port;
    cr_assert_eq(cl_hostport_parse("127.0.0.1:5684", host, sizeof(host), &port, err, sizeof(err)),
                 0);
    cr_assert_str_eq(host, "127.0.0.1");
    cr_assert_eq(port, 5684);
    cr_assert_eq(cl_hostport_parse("gw.example", host, sizeof(host), &port, err, sizeof(err)), 0);
    cr_assert_str_eq(host, "gw.example");
    cr_assert_eq(port, 5683);
    cr_assert_eq(cl_hostport_parse("[::1]:9", host, sizeof(host), &port, err, sizeof(err)), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 9);
    cr_assert_eq(cl_hostport_parse("2001:db8::1", host, sizeof(host), &port, err, sizeof(err)), 0);
    cr_assert_str_eq(host, "2001:db8::1");
    cr_assert_eq(port, 5683);
    cr_assert_eq(cl_hostport_parse("h:0", host, sizeof(host), &port, err, sizeof(err)), GW_EBADMSG);
    cr_assert_eq(cl_hostport_parse("h:x", host, sizeof(host), &port, err, sizeof(err)), GW_EBADMSG);
    cr_assert_eq(cl_hostport_parse(":5683", host, sizeof(host), &port, err, sizeof(err)),
                 GW_EBADMSG);
    cr_assert_eq(cl_hostport_parse("[::1", host, sizeof(host), &port, err, sizeof(err)),
                 GW_EBADMSG);
}
