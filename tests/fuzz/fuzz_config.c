/* SPDX-License-Identifier: MIT */
/* fuzz_config.c - the configuration file (common/gw_config.h, SPEC S1.6,
 * S10.1) and the parsers its strings feed at start-up.
 *
 * The input is written to a temporary file and loaded with gw_config_load
 * (COAPGW_* variables are cleared once at start, so only the file counts).
 * A refused file must come with a NUL-terminated message; an accepted one
 * must hold NUL-terminated strings and values the loader promises (ring_slots
 * a power of two, frontends <= max_frontends, a known log level and JWT
 * algorithm). The accepted strings then go through what the processes do
 * with them: gw_ep_parse(listen), fe_route_is_self(names, listen),
 * gw_log_level_parse, and gw_config_dump. */
#include "fe_route.h"
#include "gw_addr.h"
#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

static char dir[512], path[600];
static int devnull = -1;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_config: %s\n", what);
    abort();
}

static void cleanup(void)
{
    unlink(path);
    rmdir(dir);
    if (devnull >= 0)
        close(devnull);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gw_log_init("fuzz_config", -1, GW_LOG_ERR);
    /* Only the file under test: no COAPGW_* from the caller's environment. */
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; e && *e; e++) {
            if (strncmp(*e, "COAPGW_", 7) == 0) {
                char name[256];
                size_t n = strcspn(*e, "=");
                if (n >= sizeof(name))
                    n = sizeof(name) - 1;
                memcpy(name, *e, n);
                name[n] = '\0';
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/coapgw-fuzz-config.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        fail("mkdtemp");
    snprintf(path, sizeof(path), "%s/coapgw.conf", dir);
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    atexit(cleanup);
    return 0;
}

#define TERMINATED(field) (memchr((field), '\0', sizeof(field)) != NULL)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0 || (size && write(fd, data, size) != (ssize_t)size))
        fail("cannot write the temporary config file");
    close(fd);

    struct gw_config cfg;
    char err[512];
    memset(err, 0x5a, sizeof(err));
    int rc = gw_config_load(&cfg, path, err, sizeof(err));
    if (rc != 0) {
        if (rc != GW_ECONFIG || !TERMINATED(err))
            fail("refused without a terminated message");
        return 0;
    }
    if (!TERMINATED(cfg.listen) || !TERMINATED(cfg.instance) || !TERMINATED(cfg.data_dir) ||
        !TERMINATED(cfg.devices_file) || !TERMINATED(cfg.log_level) || !TERMINATED(cfg.names) ||
        !TERMINATED(cfg.meshsim_base) || !TERMINATED(cfg.metrics_listen) ||
        !TERMINATED(cfg.mesh_bind) || !TERMINATED(cfg.jwt_alg) || !TERMINATED(cfg.jwt_key_file) ||
        !TERMINATED(cfg.jwt_issuer) || !TERMINATED(cfg.jwt_audience))
        fail("accepted configuration has an unterminated string");
    if (cfg.ring_slots <= 0 || (cfg.ring_slots & (cfg.ring_slots - 1)) ||
        cfg.frontends > cfg.max_frontends || cfg.frontends < 1 ||
        cfg.max_message > GW_COAP_MAX_MSG || !cfg.data_dir[0])
        fail("accepted configuration breaks a promised invariant");
    if (gw_log_level_parse(cfg.log_level) < 0)
        fail("accepted an unknown log level");

    /* What the processes do with the strings at start-up. */
    struct gw_ep ep;
    if (gw_ep_parse(cfg.listen, 5683, &ep) == 0 && ep.family != 4 && ep.family != 6)
        fail("listen parsed to a bad family");
    if (gw_ep_parse(cfg.mesh_bind, 0, &ep) == 0 && ep.family != 4 && ep.family != 6)
        fail("mesh_bind parsed to a bad family");
    volatile bool self = fe_route_is_self("0011223344556677", cfg.names, cfg.listen);
    self = fe_route_is_self(cfg.instance, cfg.names, cfg.listen);
    (void)self;
    if (devnull >= 0)
        gw_config_dump(&cfg, devnull);
    return 0;
}
