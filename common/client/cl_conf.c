/* SPDX-License-Identifier: MIT */
/* cl_conf.c - configuration layers and command line of `coapgw client`. */
#include "cl_conf.h"
#include "gw_error.h"
#include "gw_text.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CERR(...) (gw_errf(err, errlen, __VA_ARGS__), GW_ECONFIG)
#define UERR(...) (snprintf(err, errlen, __VA_ARGS__), GW_EBADMSG)

/* The keys, in the order `coapgw client -h` and deploy/client.conf list them. */
static const char *const conf_keys[] = {
    "gateway", "local_port", "token_file", "token",    "security",
    "sticky",  "timeout",    "block_size", "max_body",
};

void cl_conf_defaults(struct cl_conf *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->gateway, sizeof(c->gateway), "127.0.0.1:5683");
    c->local_port = 40001;
    snprintf(c->security, sizeof(c->security), "netmgr");
    /* Longer than the gateway's own deadlines for a device (a Milli answers
     * within milli_timeout_ms, 60 s by default), so that its 5.04 arrives. */
    c->timeout_ms = 90000;
    c->max_body = 1 << 20;
}

static bool parse_int(const char *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!v || !*v || isspace((unsigned char)*v))
        return false;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < lo || x > hi)
        return false;
    *out = x;
    return true;
}

static bool parse_bool(const char *v, bool *out)
{
    if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes") || !strcmp(v, "on"))
        return *out = true, true;
    if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no") || !strcmp(v, "off"))
        return *out = false, true;
    return false;
}

/* Seconds, decimals allowed, to milliseconds within [lo_ms, hi_ms]. */
static bool parse_seconds(const char *v, int64_t lo_ms, int64_t hi_ms, int64_t *out)
{
    if (!v || !*v || isspace((unsigned char)*v))
        return false;
    char *end;
    errno = 0;
    double s = strtod(v, &end);
    if (errno || *end || !isfinite(s))
        return false;
    double ms = s * 1000.0;
    if (ms < (double)lo_ms || ms > (double)hi_ms)
        return false;
    *out = (int64_t)ms;
    return true;
}

int cl_conf_set(struct cl_conf *c, const char *key, const char *val, const char *dir, char *err,
                size_t errlen)
{
    int64_t n;
    if (!strcmp(key, "gateway")) {
        if (!*val || strlen(val) >= sizeof(c->gateway))
            return CERR("gateway: expected HOST:PORT, got '%s'", val);
        snprintf(c->gateway, sizeof(c->gateway), "%s", val);
    } else if (!strcmp(key, "local_port")) {
        if (!parse_int(val, 1, 65535, &n))
            return CERR("local_port: expected a UDP port 1..65535, got '%s'", val);
        c->local_port = (uint16_t)n;
    } else if (!strcmp(key, "token_file")) {
        int w;
        if (!*val)
            w = snprintf(c->token_file, sizeof(c->token_file), "%s", "");
        else if (val[0] != '/' && dir && *dir)
            w = snprintf(c->token_file, sizeof(c->token_file), "%s/%s", dir, val);
        else
            w = snprintf(c->token_file, sizeof(c->token_file), "%s", val);
        if (w < 0 || (size_t)w >= sizeof(c->token_file))
            return CERR("token_file: path too long");
    } else if (!strcmp(key, "token")) {
        if (strlen(val) >= sizeof(c->token))
            return CERR("token: longer than %d bytes", CL_TOKEN_MAX - 1);
        snprintf(c->token, sizeof(c->token), "%s", val);
    } else if (!strcmp(key, "security")) {
        if (strcmp(val, "netmgr") && strcmp(val, "none"))
            return CERR("security: expected netmgr or none, got '%s'", val);
        snprintf(c->security, sizeof(c->security), "%s", val);
        c->security_set = true;
    } else if (!strcmp(key, "sticky")) {
        if (!parse_bool(val, &c->sticky))
            return CERR("sticky: expected true or false, got '%s'", val);
    } else if (!strcmp(key, "timeout")) {
        if (!parse_seconds(val, 10, 86400000, &c->timeout_ms))
            return CERR("timeout: expected seconds between 0.01 and 86400, got '%s'", val);
    } else if (!strcmp(key, "block_size")) {
        if (!parse_int(val, 0, 1024, &n) || (n && (n < 16 || (n & (n - 1)))))
            return CERR(
                "block_size: expected 0 (the gateway chooses) or 16, 32, ... 1024, got '%s'", val);
        c->block_size = (int)n;
    } else if (!strcmp(key, "max_body")) {
        if (!parse_int(val, 1024, (int64_t)1 << 30, &n))
            return CERR("max_body: expected bytes between 1024 and 1073741824, got '%s'", val);
        c->max_body = n;
    } else {
        return CERR(
            "unknown key '%s' (gateway, local_port, token_file, token, security, sticky, timeout, "
            "block_size, max_body)",
            key);
    }
    return 0;
}

int cl_conf_parse(struct cl_conf *c, const char *text, size_t len, const char *fname, char *err,
                  size_t errlen)
{
    /* The folder of the file, for relative token_file paths. */
    char dir[CL_PATH_MAX] = "";
    const char *slash = fname ? strrchr(fname, '/') : NULL;
    if (slash && (size_t)(slash - fname) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - fname), fname);
    if (slash == fname)
        snprintf(dir, sizeof(dir), "/");
    unsigned line = 0;
    size_t i = 0;
    while (i < len) {
        line++;
        size_t j = i;
        while (j < len && text[j] != '\n')
            j++;
        char buf[CL_TOKEN_MAX + 256];
        if (memchr(text + i, '\0', j - i))
            return CERR("%s:%u: NUL byte in line", fname, line);
        if (j - i >= sizeof(buf))
            return CERR("%s:%u: line too long", fname, line);
        memcpy(buf, text + i, j - i);
        buf[j - i] = '\0';
        i = j + 1;
        char *s = gw_str_trim(buf);
        if (!*s || *s == '#')
            continue;
        char *eq = strchr(s, '=');
        if (!eq)
            return CERR("%s:%u: expected 'key = value'", fname, line);
        *eq = '\0';
        char *k = gw_str_trim(s), *v = gw_str_trim(eq + 1);
        size_t vl = strlen(v);
        if (vl >= 2 && ((v[0] == '"' && v[vl - 1] == '"') || (v[0] == '\'' && v[vl - 1] == '\''))) {
            v[vl - 1] = '\0';
            v++;
        }
        char kerr[512];
        if (cl_conf_set(c, k, v, dir[0] ? dir : NULL, kerr, sizeof(kerr)) != 0)
            return CERR("%s:%u: %s", fname, line, kerr);
    }
    return 0;
}

int cl_conf_env(struct cl_conf *c, const char *(*getenv_fn)(const char *name), char *err,
                size_t errlen)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(conf_keys); i++) {
        char name[64];
        gw_env_name("COAPGW_CLIENT_", conf_keys[i], name, sizeof(name));
        const char *v = getenv_fn(name);
        if (!v)
            continue;
        char kerr[512];
        if (cl_conf_set(c, conf_keys[i], v, NULL, kerr, sizeof(kerr)) != 0)
            return CERR("environment %s: %s", name, kerr);
    }
    return 0;
}

/* ---- command line ---- */

static const char usage_text[] =
    "usage: coapgw client [-c FILE] [--gateway HOST:PORT] [--local-port N] [--token TOKEN | --token-file FILE]\n"
    "                     [--security netmgr|none] [--sticky] [--json] [--timeout S] [-v] COMMAND [ARGS]\n"
    "\n"
    "commands:\n"
    "  session open | close | show  open a session (POST /sessions, reusing a live one), close it\n"
    "                               (DELETE /sessions/<id>), print it\n"
    "  get URI | delete URI         URI: coap://MAC/path?query or MAC/path?query (a device, through\n"
    "                               the gateway), or /path?query (a resource of the gateway itself)\n"
    "  put URI | post URI [--data STR | --data-file FILE | --data -] [--format N]\n"
    "  observe URI [--count N] [--duration S]\n"
    "                               print each notification; stop after N of them, S seconds or\n"
    "                               Ctrl-C, and always deregister\n"
    "  devices                      GET /devices: the devices this token may reach\n"
    "  ping                         empty CON to the gateway (RST expected)\n"
    "\n"
    "options:\n"
    "  -c, --config FILE      `key = value` lines (gateway, local_port, token_file, token, security,\n"
    "                         sticky, timeout, block_size, max_body); default\n"
    "                         $XDG_CONFIG_HOME/coapgw/client.conf if present. COAPGW_CLIENT_<KEY>\n"
    "                         variables override the file, flags override both.\n"
    "  --gateway HOST:PORT    default 127.0.0.1:5683\n"
    "  --local-port N         the fixed local UDP port (default 40001): a session is bound to it\n"
    "  --token TOKEN          a JWT (coapgw token --account NAME), used when a session is opened\n"
    "  --token-file FILE      the JWT in a file\n"
    "  --security MODE        mesh security of a new session: netmgr (default) or none\n"
    "  --sticky               open sessions with sticky=true (moves the account's session here)\n"
    "  --json                 one JSON object per response (for observe: one line per notification)\n"
    "  --timeout S            wait at most S seconds for a response (default 90)\n"
    "  --block-size N         ask for Block2 blocks of N bytes (16..1024)\n"
    "  -v                     response code, options and timing on stderr (-vv: libcoap's log too)\n"
    "\n"
    "The session survives between invocations in $XDG_STATE_HOME/coapgw/client-<gateway>-<port>.json\n"
    "(~/.local/state when XDG_STATE_HOME is unset); on 4.01 it is re-opened once and the request retried.\n"
    "Exit status: 0 for 2.xx, 1 for 4.xx/5.xx, 2 for usage errors, 3 for timeouts or an unreachable\n"
    "gateway.\n";

const char *cl_usage(void)
{
    return usage_text;
}

enum {
    O_GATEWAY = 1000,
    O_LOCAL_PORT,
    O_TOKEN,
    O_TOKEN_FILE,
    O_SECURITY,
    O_STICKY,
    O_JSON,
    O_TIMEOUT,
    O_DATA,
    O_DATA_FILE,
    O_FORMAT,
    O_COUNT,
    O_DURATION,
    O_BLOCK_SIZE,
};

static const struct option longopts[] = {
    { "config", required_argument, NULL, 'c' },
    { "help", no_argument, NULL, 'h' },
    { "verbose", no_argument, NULL, 'v' },
    { "gateway", required_argument, NULL, O_GATEWAY },
    { "local-port", required_argument, NULL, O_LOCAL_PORT },
    { "token", required_argument, NULL, O_TOKEN },
    { "token-file", required_argument, NULL, O_TOKEN_FILE },
    { "security", required_argument, NULL, O_SECURITY },
    { "sticky", no_argument, NULL, O_STICKY },
    { "json", no_argument, NULL, O_JSON },
    { "timeout", required_argument, NULL, O_TIMEOUT },
    { "data", required_argument, NULL, O_DATA },
    { "data-file", required_argument, NULL, O_DATA_FILE },
    { "format", required_argument, NULL, O_FORMAT },
    { "count", required_argument, NULL, O_COUNT },
    { "duration", required_argument, NULL, O_DURATION },
    { "block-size", required_argument, NULL, O_BLOCK_SIZE },
    { NULL, 0, NULL, 0 },
};

static const struct {
    const char *name;
    int num;
} formats[] = {
    { "text", 0 }, { "link", 40 }, { "xml", 41 },  { "octet", 42 },
    { "exi", 47 }, { "json", 50 }, { "cbor", 60 },
};

static const char *flag_name(int o)
{
    for (const struct option *l = longopts; l->name; l++)
        if (l->val == o)
            return l->name;
    return "?";
}

int cl_args_parse(int argc, char **argv, struct cl_args *a, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->format = -1;
    if (err && errlen)
        err[0] = '\0';
    optind = 0; /* GNU: re-initialise, since getopt may have run before in this process */
    opterr = 0;
    bool want_sub = false; /* "session" was read, its sub-command comes next */
    int o;
    /* "+" stops getopt at each operand (the command and its operands), so
     * that an operand is read in place and options may follow it. */
    while ((o = getopt_long(argc, argv, "+:c:hv", longopts, NULL)) != -1 || optind < argc) {
        if (o == -1) {
            const char *w = argv[optind++];
            if (want_sub) {
                want_sub = false;
                if (!strcmp(w, "open"))
                    a->cmd = CL_CMD_SESSION_OPEN;
                else if (!strcmp(w, "close"))
                    a->cmd = CL_CMD_SESSION_CLOSE;
                else if (!strcmp(w, "show"))
                    a->cmd = CL_CMD_SESSION_SHOW;
                else
                    return UERR("unknown session command '%s' (open, close, show)", w);
            } else if (a->cmd == CL_CMD_NONE && !a->help) {
                static const struct {
                    const char *name;
                    enum cl_cmd cmd;
                } cmds[] = {
                    { "get", CL_CMD_GET },         { "delete", CL_CMD_DELETE },
                    { "put", CL_CMD_PUT },         { "post", CL_CMD_POST },
                    { "observe", CL_CMD_OBSERVE }, { "devices", CL_CMD_DEVICES },
                    { "ping", CL_CMD_PING },
                };
                for (size_t i = 0; i < GW_ARRAY_LEN(cmds); i++)
                    if (!strcmp(w, cmds[i].name))
                        a->cmd = cmds[i].cmd;
                if (!strcmp(w, "session"))
                    want_sub = true;
                else if (!strcmp(w, "help"))
                    a->help = true;
                else if (a->cmd == CL_CMD_NONE)
                    return UERR(
                        "unknown command '%s' (session, get, put, post, delete, observe, devices, ping)",
                        w);
            } else if ((a->cmd == CL_CMD_GET || a->cmd == CL_CMD_DELETE || a->cmd == CL_CMD_PUT ||
                        a->cmd == CL_CMD_POST || a->cmd == CL_CMD_OBSERVE) &&
                       !a->uri) {
                a->uri = w;
            } else {
                return UERR("unexpected argument '%s'", w);
            }
            continue;
        }
        switch (o) {
        case 'h':
            a->help = true;
            break;
        case 'c':
            a->config = optarg;
            break;
        case 'v':
            a->verbose++;
            break;
        case O_JSON:
            a->json = true;
            break;
        case O_GATEWAY:
        case O_LOCAL_PORT:
        case O_TOKEN:
        case O_TOKEN_FILE:
        case O_SECURITY:
        case O_STICKY:
        case O_TIMEOUT:
        case O_BLOCK_SIZE: {
            static const struct {
                int o;
                const char *key;
            } map[] = {
                { O_GATEWAY, "gateway" },   { O_LOCAL_PORT, "local_port" },
                { O_TOKEN, "token" },       { O_TOKEN_FILE, "token_file" },
                { O_SECURITY, "security" }, { O_STICKY, "sticky" },
                { O_TIMEOUT, "timeout" },   { O_BLOCK_SIZE, "block_size" },
            };
            if (a->nset >= CL_MAX_FLAGS)
                return UERR("too many options");
            for (size_t i = 0; i < GW_ARRAY_LEN(map); i++)
                if (map[i].o == o) {
                    a->set[a->nset].key = map[i].key;
                    a->set[a->nset].val = o == O_STICKY ? "true" : optarg;
                    a->set[a->nset].flag = flag_name(o);
                    a->nset++;
                }
            break;
        }
        case O_DATA:
            if (a->data || a->data_file)
                return UERR("give one of --data and --data-file");
            a->data = optarg;
            break;
        case O_DATA_FILE:
            if (a->data || a->data_file)
                return UERR("give one of --data and --data-file");
            a->data_file = optarg;
            break;
        case O_FORMAT: {
            int64_t n = -1;
            for (size_t i = 0; i < GW_ARRAY_LEN(formats); i++)
                if (!strcmp(optarg, formats[i].name))
                    n = formats[i].num;
            if (n < 0 && !parse_int(optarg, 0, 65535, &n))
                return UERR(
                    "--format: expected a Content-Format number 0..65535 or text, link, xml, octet, "
                    "exi, json, cbor; got '%s'",
                    optarg);
            a->format = (int)n;
            break;
        }
        case O_COUNT:
            if (!parse_int(optarg, 1, INT32_MAX, &a->count))
                return UERR("--count: expected a number of notifications >= 1, got '%s'", optarg);
            break;
        case O_DURATION:
            if (!parse_seconds(optarg, 1, 31LL * 86400 * 1000, &a->duration_ms))
                return UERR("--duration: expected seconds > 0, got '%s'", optarg);
            break;
        case ':':
            return UERR("option %s needs a value", argv[optind - 1]);
        default:
            return UERR("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (a->help)
        return 0;
    if (a->cmd == CL_CMD_NONE && !want_sub)
        return UERR("no command (session, get, put, post, delete, observe, devices, ping)");
    if (want_sub)
        return UERR("session needs open, close or show");
    bool wants_uri = a->cmd == CL_CMD_GET || a->cmd == CL_CMD_DELETE || a->cmd == CL_CMD_PUT ||
                     a->cmd == CL_CMD_POST || a->cmd == CL_CMD_OBSERVE;
    if (wants_uri && !a->uri)
        return UERR("a URI is needed (coap://MAC/path, MAC/path or /path)");
    bool body = a->cmd == CL_CMD_PUT || a->cmd == CL_CMD_POST;
    if (!body && (a->data || a->data_file || a->format >= 0))
        return UERR("--data, --data-file and --format go with put and post");
    if (a->cmd != CL_CMD_OBSERVE && (a->count || a->duration_ms))
        return UERR("--count and --duration go with observe");
    return 0;
}

int cl_args_apply(const struct cl_args *a, struct cl_conf *c, char *err, size_t errlen)
{
    for (unsigned i = 0; i < a->nset; i++) {
        char kerr[512];
        if (cl_conf_set(c, a->set[i].key, a->set[i].val, NULL, kerr, sizeof(kerr)) != 0) {
            const char *colon = strchr(kerr, ':');
            return UERR("--%s: %s", a->set[i].flag, colon ? colon + 2 : kerr);
        }
    }
    return 0;
}
