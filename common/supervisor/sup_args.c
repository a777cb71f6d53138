/* SPDX-License-Identifier: MIT */
/* sup_args.c - the `coapgw` command line: one getopt_long table per command. */
#include "supervisor.h"
#include "gw_log.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage_all[] =
    "usage: coapgw <command> [options]\n"
    "\n"
    "commands:\n"
    "  run [-c FILE]                 start the gateway: supervisor, scheduler, meshio, frontends\n"
    "                                (and the mesh simulator when no devices_file is configured)\n"
    "  frontend [-c FILE] [-i N]     run one role on its own (containers; no restarts)\n"
    "  scheduler [-c FILE]\n"
    "  meshio [-c FILE]\n"
    "  status [-c FILE]              processes of a running instance\n"
    "  metrics [--serve] [-c FILE]   Prometheus text of a running instance, once (or over HTTP)\n"
    "  token --account ACCOUNT [--ttl SECONDS] [--devices LIST] [-c FILE]\n"
    "                                mint a JWT with the configured HS256 secret (or dev key)\n"
    "  devices import FILE [--skip-bad] [-c FILE]  load a devices file into the registry\n"
    "  devices list [-c FILE]        print the registry (CSV, without keys)\n"
    "  meshsim [options]             the mesh simulator (`coapgw meshsim -h`)\n"
    "  client [options] COMMAND      a CoAP client that keeps its session (`coapgw client -h`)\n"
    "  config [-c FILE]              print the effective configuration\n"
    "  config --check [-c FILE]      validate the configuration and the files it names, start nothing\n"
    "  loglevel [LEVEL] [-c FILE]    show or set the running instance's log level\n"
    "                                (error, warn, info, debug; SIGUSR2 to the supervisor cycles it)\n"
    "  cleanup [-c FILE]             remove what a stopped instance left (shared memory, doorbells,\n"
    "                                pid files); refused while it runs\n"
    "  version, --version            version and git commit of this build\n"
    "  help                          this text\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   configuration file (`key = value` lines); every key can also be\n"
    "                      set with the environment variable COAPGW_<KEY>\n"
    "  -i, --index N       frontend index, 0 .. max_frontends - 1 (max_frontends: 1..64)\n"
    "  -h, --help          help for a command\n";

static const char usage_run[] =
    "usage: coapgw run [-c FILE]\n"
    "Starts the supervisor, which creates the shared segment and keeps the scheduler,\n"
    "meshio and `frontends` frontends running (plus the mesh simulator when\n"
    "devices_file is empty or meshsim = 1). SIGTERM/SIGINT stop it, SIGHUP makes the\n"
    "scheduler re-read the devices file.\n";
static const char usage_frontend[] =
    "usage: coapgw frontend [-c FILE] [-i N]\n"
    "Runs frontend N (default 0) in the foreground, attached to the instance's shared segment.\n";
static const char usage_scheduler[] =
    "usage: coapgw scheduler [-c FILE]\n"
    "Runs the scheduler in the foreground, attached to the instance's shared segment.\n";
static const char usage_meshio[] =
    "usage: coapgw meshio [-c FILE]\n"
    "Runs meshio in the foreground, attached to the instance's shared segment.\n";
static const char usage_status[] =
    "usage: coapgw status [-c FILE]\n"
    "Shows the processes of the running instance. Exit status 0 when its supervisor runs.\n";
static const char usage_metrics[] =
    "usage: coapgw metrics [--serve] [-c FILE]\n"
    "Prints the instance's metrics once, in the Prometheus text format.\n"
    "--serve: serves /metrics, /healthz and /readyz over HTTP on metrics_listen until\n"
    "SIGTERM, for roles run without a supervisor (one container per role).\n";
static const char usage_token[] =
    "usage: coapgw token --account ACCOUNT [--ttl SECONDS] [--devices LIST] [-c FILE]\n"
    "Prints a JWT for ACCOUNT (the `sub` claim), valid for SECONDS (default 3600), signed\n"
    "with jwt_key_file or the development secret in data_dir. LIST restricts the devices\n"
    "(comma-separated MAC IDs or hex prefixes, e.g. 0200000000000001,03*).\n";
static const char usage_devices[] =
    "usage: coapgw devices import FILE [--skip-bad] [-c FILE]\n"
    "       coapgw devices list [-c FILE]\n"
    "import replaces the device registry with FILE (mac,address,type,key[,plain_port,secure_port]),\n"
    "all or nothing: any bad line (reported as FILE:LINE) changes nothing and exits 1, unless\n"
    "--skip-bad loads the good lines. It is for gateways without devices_file (and meshsim = 0):\n"
    "where devices_file is set, that file is the registry's source (edit it, then SIGHUP).\n"
    "list prints mac,address,type,plain_port,secure_port,owner (owner: the node id serving the device).\n";
static const char usage_config[] =
    "usage: coapgw config [--check] [-c FILE]\n"
    "Prints every configuration key with its effective value (defaults, file, environment).\n"
    "--check validates instead, starting nothing: every key and its range (errors name\n"
    "file:line and the key), `listen`, the JWT key file for jwt_alg, devices_file, data_dir.\n"
    "Exit status 0 when valid, 78 (configuration error) otherwise.\n";
static const char usage_loglevel[] =
    "usage: coapgw loglevel [LEVEL] [-c FILE]\n"
    "Shows the log level in force for the running instance, or sets it to LEVEL (error, warn,\n"
    "info, debug) for every one of its processes at once. `coapgw run` starts at log_level;\n"
    "SIGUSR2 to the supervisor cycles error -> warn -> info -> debug -> error.\n";
static const char usage_cleanup[] =
    "usage: coapgw cleanup [-c FILE]\n"
    "Removes what a stopped instance left behind: its shared-memory segment\n"
    "(/dev/shm/coapgw-<instance>), doorbell FIFOs, pid and lock files in data_dir. Refused\n"
    "while any process of the instance runs. LMDB state (sessions, registry) is kept.\n";
static const char usage_version[] =
    "usage: coapgw version\n"
    "Prints the version and the git commit this binary was built from.\n";

const char *sup_usage(enum sup_cmd cmd)
{
    switch (cmd) {
    case SUP_CMD_RUN:
        return usage_run;
    case SUP_CMD_FRONTEND:
        return usage_frontend;
    case SUP_CMD_SCHEDULER:
        return usage_scheduler;
    case SUP_CMD_MESHIO:
        return usage_meshio;
    case SUP_CMD_STATUS:
        return usage_status;
    case SUP_CMD_METRICS:
        return usage_metrics;
    case SUP_CMD_TOKEN:
        return usage_token;
    case SUP_CMD_DEVICES_IMPORT:
    case SUP_CMD_DEVICES_LIST:
        return usage_devices;
    case SUP_CMD_CONFIG:
        return usage_config;
    case SUP_CMD_LOGLEVEL:
        return usage_loglevel;
    case SUP_CMD_CLEANUP:
        return usage_cleanup;
    case SUP_CMD_VERSION:
        return usage_version;
    case SUP_CMD_MESHSIM:
    case SUP_CMD_USAGE:
        break;
    }
    return usage_all;
}

static const struct {
    const char *name;
    enum sup_cmd cmd;
} commands[] = {
    { "run", SUP_CMD_RUN },
    { "frontend", SUP_CMD_FRONTEND },
    { "scheduler", SUP_CMD_SCHEDULER },
    { "meshio", SUP_CMD_MESHIO },
    { "status", SUP_CMD_STATUS },
    { "token", SUP_CMD_TOKEN },
    { "devices", SUP_CMD_DEVICES_LIST },
    { "meshsim", SUP_CMD_MESHSIM },
    { "metrics", SUP_CMD_METRICS },
    { "config", SUP_CMD_CONFIG },
    { "help", SUP_CMD_USAGE },
    { "version", SUP_CMD_VERSION },
    { "loglevel", SUP_CMD_LOGLEVEL },
    { "cleanup", SUP_CMD_CLEANUP },
};

static int parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -EINVAL;
    *out = v;
    return 0;
}

#define USAGE_ERR(...)                                                                             \
    do {                                                                                           \
        if (err && errlen)                                                                         \
            snprintf(err, errlen, __VA_ARGS__);                                                    \
        return -EINVAL;                                                                            \
    } while (0)

int sup_args_parse(int argc, char **argv, struct sup_args *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->ttl_s = SUP_TOKEN_TTL_DEFAULT;
    if (err && errlen)
        err[0] = '\0';
    if (argc < 2 || !argv[1])
        return 0;
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help")) {
        a->help = true;
        return 0;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "-V")) {
        a->cmd = SUP_CMD_VERSION;
        return 0;
    }
    bool found = false;
    for (size_t i = 0; i < GW_ARRAY_LEN(commands); i++)
        if (!strcmp(name, commands[i].name)) {
            a->cmd = commands[i].cmd;
            found = true;
        }
    if (!found)
        USAGE_ERR("unknown command '%s'", name);
    if (!strcmp(name, "help")) {
        a->help = true; /* `coapgw help` is a request for help: stdout, exit 0 */
        return 0;
    }
    if (a->cmd == SUP_CMD_MESHSIM) {
        /* The simulator parses its own options; argv[0] becomes "meshsim". */
        a->sub_argc = argc - 1;
        a->sub_argv = argv + 1;
        return 0;
    }

    /* getopt_long sees argv from the command on ("devices" takes one more
     * word, its action), so argv[0] of the sub-vector is that word. */
    int first = 1;
    if (a->cmd == SUP_CMD_DEVICES_LIST) {
        if (argc < 3 || !strcmp(argv[2], "-h") || !strcmp(argv[2], "--help")) {
            if (argc >= 3) {
                a->help = true;
                return 0;
            }
            USAGE_ERR("devices: expected `import FILE` or `list`");
        }
        if (!strcmp(argv[2], "import"))
            a->cmd = SUP_CMD_DEVICES_IMPORT;
        else if (strcmp(argv[2], "list"))
            USAGE_ERR("devices: unknown action '%s' (expected import or list)", argv[2]);
        first = 2;
    }
    int sargc = argc - first;
    char **sargv = argv + first;

    static const struct option longopts[] = {
        { "config", required_argument, NULL, 'c' },  { "index", required_argument, NULL, 'i' },
        { "account", required_argument, NULL, 'a' }, { "ttl", required_argument, NULL, 't' },
        { "devices", required_argument, NULL, 'd' }, { "help", no_argument, NULL, 'h' },
        { "check", no_argument, NULL, 'k' },         { "skip-bad", no_argument, NULL, 'S' },
        { "serve", no_argument, NULL, 's' },         { NULL, 0, NULL, 0 },
    };
    const char *shortopts = a->cmd == SUP_CMD_FRONTEND         ? ":c:i:h"
                            : a->cmd == SUP_CMD_TOKEN          ? ":c:a:t:d:h"
                            : a->cmd == SUP_CMD_CONFIG         ? ":c:hk"
                            : a->cmd == SUP_CMD_DEVICES_IMPORT ? ":c:Sh"
                            : a->cmd == SUP_CMD_METRICS        ? ":c:sh"
                                                               : ":c:h";

    /* glibc: optind = 0 re-initialises getopt completely (we may be called
     * again, from tests); opterr = 0 because the messages are ours. */
    optind = 0;
    opterr = 0;
    int c, li;
    while ((c = getopt_long(sargc, sargv, shortopts, longopts, &li)) != -1) {
        int64_t v;
        /* getopt_long returns a long option's letter even when the letter is
         * not in shortopts (--index for `status`): refuse those here. */
        if (c != '?' && c != ':' && !strchr(shortopts + 1, c))
            USAGE_ERR("%s: option --%s does not apply", name, longopts[li].name);
        switch (c) {
        case 'c':
            if (!optarg[0])
                USAGE_ERR("%s: -c needs a file name", name);
            a->config = optarg;
            break;
        case 'i':
            /* The real bound is max_frontends, from the configuration: checked
             * when it has been read (main.c), so the message names it. */
            if (parse_i64(optarg, 0, INT_MAX, &v))
                USAGE_ERR(
                    "%s: -i wants a frontend index, a whole number from 0 to max_frontends - 1, "
                    "not '%s'",
                    name, optarg);
            a->index = (int)v;
            break;
        case 'k':
            a->check = true;
            break;
        case 'a':
            a->account = optarg;
            break;
        case 't':
            if (parse_i64(optarg, 1, SUP_TOKEN_TTL_MAX, &v))
                USAGE_ERR("%s: --ttl wants seconds, 1..%lld, not '%s'", name,
                          (long long)SUP_TOKEN_TTL_MAX, optarg);
            a->ttl_s = v;
            break;
        case 'd':
            a->devices = optarg;
            break;
        case 'S':
            a->skip_bad = true;
            break;
        case 's':
            a->serve = true;
            break;
        case 'h':
            a->help = true;
            return 0;
        case ':':
            USAGE_ERR("%s: option %s needs an argument", name, sargv[optind - 1]);
        default:
            if (optopt)
                USAGE_ERR("%s: unknown option -%c", name, optopt);
            USAGE_ERR("%s: unknown option %s", name, sargv[optind - 1]);
        }
    }
    int npos = sargc - optind;
    if (a->cmd == SUP_CMD_DEVICES_IMPORT) {
        if (npos != 1)
            USAGE_ERR("devices import: expected exactly one FILE");
        a->file = sargv[optind];
        return 0;
    }
    if (a->cmd == SUP_CMD_LOGLEVEL && npos == 1) {
        if (gw_log_level_parse(sargv[optind]) < 0)
            USAGE_ERR("loglevel: '%s' is not one of error, warn, info, debug", sargv[optind]);
        a->file = sargv[optind];
        return 0;
    }
    if (npos > 0)
        USAGE_ERR("%s: unexpected argument '%s'", name, sargv[optind]);
    if (a->cmd == SUP_CMD_TOKEN && (!a->account || !a->account[0]))
        USAGE_ERR("token: --account ACCOUNT is required");
    return 0;
}
