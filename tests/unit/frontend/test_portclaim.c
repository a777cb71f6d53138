/* SPDX-License-Identifier: MIT */
/* test_portclaim.c - one instance per client port (frontend/fe_portclaim.c,
 * issue #12 item 13): claim names, conflicts, /proc/net/unix parsing. */
#include "fe_portclaim.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static struct fe_claim claim(const char *listen, const char *instance, int index)
{
    struct gw_ep ep;
    cr_assert_eq(gw_ep_parse(listen, 5683, &ep), 0, "%s", listen);
    struct fe_claim c;
    fe_claim_make(&ep, instance, index, &c);
    return c;
}

Test(portclaim, name_round_trips)
{
    const char *listens[] = { "0.0.0.0:5683", "127.0.0.1:40001", "[::]:5683", "[::1]:6000",
                              "[2001:db8::7]:1" };
    for (size_t i = 0; i < sizeof(listens) / sizeof(listens[0]); i++) {
        struct fe_claim c = claim(listens[i], "blue-2_b", 3), back;
        char name[FE_CLAIM_NAME_MAX + 1];
        size_t n = fe_claim_name(&c, name, sizeof(name));
        cr_assert_leq(n, FE_CLAIM_NAME_MAX);
        cr_assert_eq(fe_claim_parse(name, &back), 0, "%s", name);
        cr_assert_eq(back.port, c.port);
        cr_assert_eq(back.family, c.family);
        cr_assert_str_eq(back.addr, c.addr);
        cr_assert_eq(back.index, 3);
        cr_assert_str_eq(back.instance, "blue-2_b");
    }
    struct fe_claim w = claim("0.0.0.0:5683", "x", 0);
    char name[FE_CLAIM_NAME_MAX + 1];
    fe_claim_name(&w, name, sizeof(name));
    cr_assert_str_eq(name, "cgw/5683/4*/0/x");
}

Test(portclaim, longest_names_fit_the_abstract_namespace)
{
    char inst[64];
    memset(inst, 'i', 63);
    inst[63] = '\0';
    struct fe_claim c = claim("[2001:db8:1:2:3:4:5:6]:65535", inst, 63), back;
    char name[FE_CLAIM_NAME_MAX + 1];
    cr_assert_eq(fe_claim_name(&c, name, sizeof(name)), FE_CLAIM_NAME_MAX);
    cr_assert_eq(fe_claim_parse(name, &back), 0);
    /* Cut the same way for every frontend of the instance. */
    struct fe_claim c2 = claim("[2001:db8:1:2:3:4:5:6]:65535", inst, 62);
    fe_claim_name(&c2, name, sizeof(name));
    struct fe_claim back2;
    cr_assert_eq(fe_claim_parse(name, &back2), 0);
    cr_assert_str_eq(back.instance, back2.instance);
}

Test(portclaim, parse_refuses_other_names)
{
    struct fe_claim c;
    const char *bad[] = { "",
                          "cgw/",
                          "cgw/0/4*/0/x",
                          "cgw/70000/4*/0/x",
                          "cgw/5683/5*/0/x",
                          "cgw/5683/4*/x/y",
                          "cgw/5683/4*/0/",
                          "cgw/5683//0/x",
                          "other/5683/4*/0/x" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        cr_assert_eq(fe_claim_parse(bad[i], &c), GW_EBADMSG, "%s", bad[i]);
}

Test(portclaim, conflicts)
{
    struct fe_claim a0 = claim("0.0.0.0:5683", "a", 0);
    /* Same instance (frontends = N, containers): shared as before. */
    struct fe_claim a1 = claim("0.0.0.0:5683", "a", 1);
    cr_assert(!fe_claim_conflicts(&a0, &a1));
    /* Another instance on the same port and address, or under a wildcard. */
    struct fe_claim b = claim("0.0.0.0:5683", "b", 0);
    cr_assert(fe_claim_conflicts(&a0, &b));
    struct fe_claim bl = claim("127.0.0.1:5683", "b", 0);
    cr_assert(fe_claim_conflicts(&a0, &bl), "a specific address steals from the wildcard");
    cr_assert(fe_claim_conflicts(&bl, &a0));
    struct fe_claim al = claim("127.0.0.1:5683", "a", 0);
    cr_assert(fe_claim_conflicts(&al, &bl));
    struct fe_claim b2 = claim("127.0.0.2:5683", "b", 0);
    cr_assert(!fe_claim_conflicts(&al, &b2), "other address");
    struct fe_claim bp = claim("0.0.0.0:5684", "b", 0);
    cr_assert(!fe_claim_conflicts(&a0, &bp), "other port");
    struct fe_claim b6 = claim("[::]:5683", "b", 0);
    cr_assert(fe_claim_conflicts(&al, &b6), "the IPv6 wildcard is dual stack");
    struct fe_claim b61 = claim("[::1]:5683", "b", 0);
    cr_assert(!fe_claim_conflicts(&al, &b61), "other family, no wildcard");
}

Test(portclaim, scan_reads_proc_net_unix)
{
    static const char text[] =
        "Num       RefCount Protocol Flags    Type St Inode Path\n"
        "0000000000000000: 00000002 00000000 00010000 0001 01 24521 /run/systemd/notify\n"
        "0000000000000000: 00000002 00000000 00000000 0002 01 31337 @cgw/5683/4*/0/a\n"
        "0000000000000000: 00000002 00000000 00000000 0002 01 31338 @cgw/5683/4*/1/a\n"
        "0000000000000000: 00000002 00000000 00000000 0002 01 31339 @cgw/6000/4127.0.0.1/0/b\n"
        "0000000000000000: 00000003 00000000 00000000 0001 03 31340\n";
    FILE *f = fmemopen((void *)text, sizeof(text) - 1, "r");
    struct fe_claim other, mine = claim("0.0.0.0:5683", "a", 2);
    cr_assert_eq(fe_claim_scan(f, &mine, &other), 0,
                 "our own instance's frontends are no conflict");
    fclose(f);
    f = fmemopen((void *)text, sizeof(text) - 1, "r");
    mine = claim("127.0.0.1:5683", "c", 0);
    cr_assert_eq(fe_claim_scan(f, &mine, &other), 1);
    cr_assert_str_eq(other.instance, "a");
    fclose(f);
    f = fmemopen((void *)text, sizeof(text) - 1, "r");
    mine = claim("0.0.0.0:6001", "c", 0);
    cr_assert_eq(fe_claim_scan(f, &mine, &other), 0);
    fclose(f);
}

/* The real thing: two claims of different instances in this process. */
Test(portclaim, second_instance_refused_same_instance_shares)
{
    char inst[32], err[512];
    snprintf(inst, sizeof(inst), "utest%d", (int)getpid());
    struct fe_claim a0 = claim("127.0.0.1:2", inst, 0), a1 = claim("127.0.0.1:2", inst, 1);
    int fd0 = fe_claim_port(&a0, err, sizeof(err));
    cr_assert_geq(fd0, 0, "%s", err);
    int fd1 = fe_claim_port(&a1, err, sizeof(err));
    cr_assert_geq(fd1, 0, "%s", err);
    struct fe_claim b = claim("127.0.0.1:2", "otherinst", 0);
    cr_assert_eq(fe_claim_port(&b, err, sizeof(err)), GW_EFORBIDDEN);
    cr_assert(strstr(err, "port 2 is used by instance ") && strstr(err, inst), "%s", err);
    close(fd0);
    close(fd1);
    /* Gone with its holder: nothing stale. */
    int fdb = fe_claim_port(&b, err, sizeof(err));
    cr_assert_geq(fdb, 0, "%s", err);
    close(fdb);
}
