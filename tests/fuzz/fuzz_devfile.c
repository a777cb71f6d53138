/* SPDX-License-Identifier: MIT */
/* fuzz_devfile.c - the devices file (common/gw_devfile.h, SPEC S7.2, S9)
 * and its import into the LMDB device registry (common/gw_registry.h).
 *
 * The file is operator input, read at start and re-read while the gateway
 * runs; a bad line must be reported (and refuses the file), never crash the scheduler
 * or meshio. Per input:
 *   1. gw_devfile_parse_line on a NUL-terminated copy of the whole input
 *      (one "line", possibly with embedded line ends);
 *   2. gw_devfile_load on a temporary file holding the input, checking every
 *      device it reports and every warning's text;
 *   3. gw_registry_import of the same file into a real LMDB (temporary
 *      directory, created once): a file with bad lines is refused whole
 *      (all or nothing); otherwise the registry then holds exactly the
 *      devices the load reported, each findable by MAC and by its address. */
#include "fuzz_util.h"
#include "gw_devfile.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_registry.h"
#include "gw_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[512], path[600];
static struct gw_store store;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_devfile: %s\n", what);
    abort();
}

static void write_file(const char *p, const void *data, size_t n)
{
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (n && write(fd, data, n) != (ssize_t)n))
        fail("cannot write the temporary devices file");
    close(fd);
}

static void cleanup(void)
{
    gw_store_close(&store);
    fuzz_rmtree(dir, 1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gw_log_init("fuzz_devfile", -1, GW_LOG_ERR);
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/coapgw-fuzz-devfile.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        fail("mkdtemp");
    snprintf(path, sizeof(path), "%s/devices.csv", dir);
    if (gw_store_open(&store, dir, 64) != 0)
        fail("gw_store_open");
    atexit(cleanup);
    return 0;
}

static void check_device(const struct gw_device *d)
{
    if ((d->family != 4 && d->family != 6) || d->type > GW_DEV_MILLI || d->plain_port == 0 ||
        d->secure_port == 0 || memchr(d->sim, '\0', sizeof(d->sim)) == NULL)
        fail("device out of range");
    if (d->family == 4)
        for (int i = 4; i < 16; i++)
            if (d->addr[i])
                fail("IPv4 device with bytes past the address");
}

#define MAX_DEVS 4096

struct load_ctx {
    int devices, warnings;
    struct gw_device dev[MAX_DEVS];
};

static int on_dev(void *vctx, const struct gw_device *d)
{
    struct load_ctx *c = vctx;
    check_device(d);
    for (int i = 0; i < c->devices && i < MAX_DEVS; i++)
        if (memcmp(c->dev[i].mac, d->mac, GW_MAC_LEN) == 0)
            fail("a MAC reported twice (the file must keep the first only)");
    if (c->devices < MAX_DEVS)
        c->dev[c->devices] = *d;
    c->devices++;
    return 0;
}

static void on_warn(void *vctx, int lineno, const char *msg)
{
    struct load_ctx *c = vctx;
    if (lineno < 1 || !msg || strlen(msg) > 4096)
        fail("bad warning");
    c->warnings++;
}

static int count_dev(void *ctx, const struct gw_device *d)
{
    check_device(d);
    (*(int *)ctx)++;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* 1: one line. */
    char *line = malloc(size + 1);
    if (!line)
        abort();
    memcpy(line, data, size);
    line[size] = '\0';
    struct gw_device d;
    const char *why = NULL;
    int rc = gw_devfile_parse_line(line, &d, &why);
    if (rc == 0)
        check_device(&d);
    else if (rc != GW_EBADMSG || !why)
        fail("parse_line: error without a reason");
    free(line);

    /* 2: the file. */
    write_file(path, data, size);
    static struct load_ctx lc;
    lc.devices = lc.warnings = 0;
    int bad = gw_devfile_load(path, on_dev, on_warn, &lc);
    if (bad >= 0 && bad > lc.warnings)
        fail("more bad lines than warnings");

    /* 3: the registry. */
    int bad2 = 0;
    int n = gw_registry_import(&store, path, &bad2);
    if (bad < 0) {
        if (n >= 0)
            fail("registry accepted a file the loader refused");
        return 0;
    }
    if (bad > 0) {
        /* S7.2: all or nothing. */
        if (n != GW_EBADMSG || bad2 != bad)
            fail("registry applied a file with bad lines");
        return 0;
    }
    if (n != lc.devices || bad2 != bad)
        fail("registry import disagrees with the loader");
    int counted = 0;
    if (gw_registry_foreach(&store, count_dev, &counted) != 0 || counted != n ||
        gw_registry_count(&store) != (size_t)n)
        fail("registry holds a different number of devices");
    for (int i = 0; i < n && i < MAX_DEVS; i++) {
        struct gw_device got;
        if (gw_registry_get(&store, lc.dev[i].mac, &got) != 0 ||
            memcmp(&got, &lc.dev[i], sizeof(got)) != 0)
            fail("device not stored as loaded");
        struct gw_ep ep = { .family = got.family, .port = got.plain_port };
        memcpy(ep.addr, got.addr, 16);
        uint8_t mac[GW_MAC_LEN];
        if (gw_registry_by_addr(&store, &ep, mac) != 0)
            fail("device address not indexed");
    }
    return 0;
}
