/* SPDX-License-Identifier: MIT */
/* test_registry.c - the LMDB device registry (common/gw_registry.c): loads
 * are all or nothing (S7.2, issue #12 item 14), on a real LMDB in mkdtemp. */
#include "gw_error.h"
#include "gw_registry.h"
#include "gw_store.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char dir[64];
static struct gw_store st;

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_registry.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    cr_assert_eq(gw_store_open(&st, dir, 16), 0);
}

static void teardown(void)
{
    gw_store_close(&st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(registry, .init = setup, .fini = teardown);

#define KEY "000102030405060708090a0b0c0d0e0f"
#define HDR "mac,address,type,key,plain_port,secure_port\n"

static const char *write_file(const char *name, const char *text)
{
    static char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_geq(fputs(text, f), 0);
    cr_assert_eq(fclose(f), 0);
    return path;
}

static bool known(const char *mac_hex)
{
    uint8_t mac[GW_MAC_LEN];
    cr_assert_eq(gw_mac_parse(mac_hex, strlen(mac_hex), mac), 0);
    struct gw_device d;
    return gw_registry_get(&st, mac, &d) == 0;
}

Test(registry, bad_line_changes_nothing)
{
    int bad = -1;
    cr_assert_eq(
        gw_registry_import(&st,
                           write_file("a.csv",
                                      HDR "0000000000000001,127.0.0.1,normal," KEY ",5683,4849\n"
                                          "0000000000000002,127.0.0.2,normal," KEY ",5683,4849\n"),
                           &bad),
        2);
    cr_assert_eq(bad, 0);
    /* A new file with one good new device, one bad line, one duplicate endpoint. */
    const char *b =
        write_file("b.csv", HDR "0000000000000003,127.0.0.3,normal," KEY ",5683,4849\n"
                                "not-a-mac,127.0.0.4,normal," KEY ",5683,4849\n"
                                "0000000000000005,127.0.0.3,normal," KEY ",5683,4900\n");
    cr_assert_eq(gw_registry_import(&st, b, &bad), GW_EBADMSG);
    cr_assert_eq(bad, 2);
    cr_assert_eq(gw_registry_count(&st), 2, "the registry kept the last good load");
    cr_assert(known("0000000000000001") && known("0000000000000002"));
    cr_assert(!known("0000000000000003"), "no part of the bad file was applied");
    /* Opting in to a partial load. */
    cr_assert_eq(gw_registry_load(&st, b, true, &bad), 1);
    cr_assert_eq(bad, 2);
    cr_assert_eq(gw_registry_count(&st), 1);
    cr_assert(known("0000000000000003") && !known("0000000000000001"));
}

Test(registry, missing_header_or_file_changes_nothing)
{
    int bad = -1;
    cr_assert_eq(gw_registry_import(&st,
                                    write_file("a.csv", HDR "0000000000000001,127.0.0.1,normal," KEY
                                                            ",5683,4849\n"),
                                    &bad),
                 1);
    cr_assert_eq(gw_registry_import(
                     &st, write_file("h.csv", "0000000000000002,127.0.0.2,normal," KEY "\n"), &bad),
                 GW_EBADMSG);
    cr_assert_eq(bad, 0, "no header: not counted as bad lines");
    char missing[128];
    snprintf(missing, sizeof(missing), "%s/none.csv", dir);
    cr_assert_lt(gw_registry_import(&st, missing, &bad), 0);
    cr_assert_eq(gw_registry_count(&st), 1);
    cr_assert(known("0000000000000001"));
}

/* gw_registry_type (issue 13: the per-request check without the key): the
 * type of a known device, GW_ENOTFOUND for any other. */
Test(registry, type_of_known_and_unknown_devices)
{
    int bad = -1;
    cr_assert_eq(
        gw_registry_import(&st,
                           write_file("t.csv",
                                      HDR "0000000000000001,127.0.0.1,normal," KEY ",5683,4849\n"
                                          "0000000000000002,127.0.0.2,milli," KEY ",5683,4849\n"),
                           &bad),
        2);
    uint8_t mac[GW_MAC_LEN] = { 0, 0, 0, 0, 0, 0, 0, 1 };
    cr_assert_eq(gw_registry_type(&st, mac), GW_DEV_NORMAL);
    mac[7] = 2;
    cr_assert_eq(gw_registry_type(&st, mac), GW_DEV_MILLI);
    mac[7] = 3;
    cr_assert_eq(gw_registry_type(&st, mac), GW_ENOTFOUND);
}

/* gw_regtypes (issue 13): the slots answer as LMDB does, keep what they hold
 * over a commit that leaves the registry alone, and forget it when an
 * import through another handle on the same environment (another process)
 * changed the registry, so the next look-up sees the import. */
Test(registry, type_slots_follow_imports_from_another_handle)
{
    struct gw_store other;
    cr_assert_eq(gw_store_open(&other, dir, 16), 0);
    int bad = -1;
    cr_assert_eq(
        gw_registry_import(&other,
                           write_file("c1.csv",
                                      HDR "0000000000000001,127.0.0.1,normal," KEY ",5683,4849\n"
                                          "0000000000000002,127.0.0.2,milli," KEY ",5683,4849\n"),
                           &bad),
        2);
    struct gw_regtypes x;
    gw_regtypes_init(&x);
    uint8_t m1[GW_MAC_LEN] = { 0, 0, 0, 0, 0, 0, 0, 1 },
            m2[GW_MAC_LEN] = { 0, 0, 0, 0, 0, 0, 0, 2 },
            m3[GW_MAC_LEN] = { 0, 0, 0, 0, 0, 0, 0, 3 };
    cr_assert_eq(gw_regtypes_peek(&x, m1), GW_ENOTFOUND, "nothing held before a look-up");
    cr_assert_eq(gw_registry_type_cached(&x, &st, m1), GW_DEV_NORMAL);
    cr_assert_eq(gw_registry_type_cached(&x, &st, m2), GW_DEV_MILLI);
    cr_assert_eq(gw_registry_type_cached(&x, &st, m3), GW_ENOTFOUND);
    cr_assert_eq(gw_regtypes_peek(&x, m1), GW_DEV_NORMAL, "held after the look-up");
    cr_assert_eq(gw_regtypes_peek(&x, m2), GW_DEV_MILLI);
    cr_assert_eq(gw_regtypes_peek(&x, m3), GW_ENOTFOUND, "unknown devices are not held");
    /* A commit elsewhere in the environment: the slots stay. */
    cr_assert_eq(gw_store_meta_put_u64(&other, "unrelated", 7), 0);
    cr_assert_eq(gw_regtypes_sync(&x, &st), 0);
    cr_assert_eq(gw_regtypes_peek(&x, m2), GW_DEV_MILLI,
                 "kept over a commit that left the registry");
    /* An import through the other handle: device 1 gone, 2 now normal, 3 new. */
    cr_assert_eq(
        gw_registry_import(&other,
                           write_file("c2.csv",
                                      HDR "0000000000000002,127.0.0.2,normal," KEY ",5683,4849\n"
                                          "0000000000000003,127.0.0.3,milli," KEY ",5683,4849\n"),
                           &bad),
        2);
    cr_assert_eq(gw_registry_type_cached(&x, &st, m1), GW_ENOTFOUND);
    cr_assert_eq(gw_registry_type_cached(&x, &st, m2), GW_DEV_NORMAL);
    cr_assert_eq(gw_registry_type_cached(&x, &st, m3), GW_DEV_MILLI);
    for (int i = 0; i < 3; i++) {
        const uint8_t *m = i == 0 ? m1 : i == 1 ? m2 : m3;
        cr_assert_eq(gw_registry_type_cached(&x, &st, m), gw_registry_type(&st, m), "equals LMDB");
    }
    gw_regtypes_deinit(&x);
    gw_store_close(&other);
}
