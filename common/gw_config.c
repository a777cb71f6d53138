/* SPDX-License-Identifier: MIT */
/* gw_config.c - the table of configuration keys with defaults and ranges, and the file and
 * environment readers (see gw_config.h). */
#include "gw_config.h"
#include "gw_addr.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_nodes.h"
#include "gw_text.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum kind { K_STR, K_INT };

struct key {
    const char *name;
    enum kind kind;
    size_t off;
    size_t size; /* for strings */
    const char *def;
    int64_t min, max; /* for integers */
};

#define S(n, d)                                                                                    \
    {                                                                                              \
#n, K_STR, offsetof(struct gw_config, n), sizeof(((struct gw_config *)0)->n), d, 0, 0      \
    }
#define I(n, d, lo, hi)                                                                            \
    {                                                                                              \
#n, K_INT, offsetof(struct gw_config, n), 0, #d, lo, hi                                    \
    }

/* The one table of keys, defaults and ranges. deploy/coapgw.conf documents it. */
static const struct key keys[] = {
    S(listen, "0.0.0.0:5683"),
    S(instance, "default"),
    S(data_dir, ""),
    S(devices_file, ""),
    S(log_level, "info"),
    S(log_format, "text"),
    S(names, "localhost"),
    I(frontends, 1, 1, 64),
    I(max_frontends, 8, 1, 64),
    I(ring_slots, 1024, 16, 65536),
    I(ring_poll_us, 100, 0, 10000),
    S(cpu_sched, "batch"),
    I(mem_trim_ms, 2000, 0, 3600000),
    I(meshsim, -1, -1, 1),
    I(meshsim_devices, 8, 1, 4096),
    S(meshsim_base, "127.0.10.1"),
    S(metrics_listen, ""),
    I(node_id, 0, 0, 63),
    I(node_count, 1, 1, 64),
    S(nodes, ""),
    I(node_token_ttl_s, 3600, 60, 86400),
    I(node_queue_max, 64, 1, 4096),
    I(mesh_ack_timeout_ms, 20000, 10, 600000),
    I(mesh_max_transmit, 4, 1, 20),
    I(milli_timeout_ms, 60000, 10, 3600000),
    I(milli_busy_max_age_s, 60, 0, 86400),
    I(nstart, 1, 1, 64),
    I(device_queue_max, 16, 1, 4096),
    I(max_txn, 8192, 16, 1048576),
    S(mesh_bind, "0.0.0.0"),
    I(mesh_seq_block, 4096, 1, 1000000000),
    I(mesh_replay_window, 64, 64, 64),
    I(client_ack_timeout_ms, 2000, 10, 600000),
    I(client_max_retransmit, 4, 0, 20),
    I(exchange_lifetime_ms, 247000, 100, 3600000),
    I(dedup_max, 65536, 16, 16777216),
    I(client_inflight_max, 65536, 16, 16777216),
    I(max_message, 1152, 64, 1152),
    I(block_max_body, 65536, 16, 16777216),
    I(block_transfers_max, 256, 1, 1000000),
    I(block_timeout_ms, 30000, 10, 3600000),
    I(block_per_source, 8, 1, 1000000),
    I(block_sessionless_max, 64, 1, 1000000),
    I(dedup_sessionless_max, 16384, 16, 16777216),
    I(dedup_per_source, 4096, 1, 16777216),
    I(sessionless_rate, 20, 1, 1000000),
    I(sessionless_burst, 40, 1, 1000000),
    I(sessionless_sources, 4096, 16, 16777216),
    S(jwt_alg, "HS256"),
    S(jwt_key_file, ""),
    I(dev_mode, 0, 0, 1),
    S(jwt_issuer, ""),
    S(jwt_audience, ""),
    I(jwt_leeway_s, 30, 0, 3600),
    I(jwt_max_len, 4096, 64, 65536),
    I(max_sessions, 100000, 1, 100000000),
    I(max_sessions_per_account, 10, 1, 1000000),
    I(session_idle_s, 1800, 1, 31536000),
    I(session_max_lifetime_s, 14400, 1, 31536000),
    I(session_max_inflight, 64, 1, 1000000),
    I(session_rate, 1000, 1, 100000000),
    I(session_burst, 2000, 1, 100000000),
    I(unauth_log_per_s, 5, 0, 100000),
    I(cache_max_entries, 10000, 0, 100000000),
    I(cache_max_bytes, 16777216, 0, 1099511627776),
    I(cache_shm_entries, 4096, 0, 1048576),
    I(cache_shm_slot_bytes, 512, 128, 4096),
    I(default_max_age_s, 60, 0, 86400),
    I(obs_grace_ms, 2000, 0, 3600000),
    I(obs_max_observers, 100000, 1, 100000000),
    I(obs_max_observations, 100000, 1, 100000000),
    I(obs_max_per_session, 256, 1, 100000000),
    I(obs_notify_con, 1, 0, 1),
    I(lmdb_map_mb, 1024, 16, 1048576),
};

GW_STATIC_ASSERT(GW_ARRAY_LEN(keys) <= GW_CFG_MAX_KEYS, "src_line[] has a slot per key");

static const struct key *find(const char *name)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(keys); i++)
        if (strcmp(keys[i].name, name) == 0)
            return &keys[i];
    return NULL;
}

static int set_key(struct gw_config *cfg, const struct key *k, const char *val, char *err,
                   size_t errlen)
{
    char *dst = (char *)cfg + k->off;
    if (k->kind == K_STR) {
        size_t n = strlen(val);
        if (n >= k->size) {
            gw_errf(err, errlen, "%s: value too long", k->name);
            return GW_ECONFIG;
        }
        memcpy(dst, val, n + 1);
        return 0;
    }
    char *end;
    errno = 0;
    long long v;
    if (strcasecmp(val, "true") == 0 || strcasecmp(val, "yes") == 0 || strcasecmp(val, "on") == 0)
        v = 1, end = (char *)val + strlen(val);
    else if (strcasecmp(val, "false") == 0 || strcasecmp(val, "no") == 0 ||
             strcasecmp(val, "off") == 0)
        v = 0, end = (char *)val + strlen(val);
    else if (strcasecmp(val, "auto") == 0)
        v = -1, end = (char *)val + strlen(val);
    else
        v = strtoll(val, &end, 10);
    if (errno || end == val || *end != '\0') {
        gw_errf(err, errlen, "%s: '%s' is not a whole number", k->name, val);
        return GW_ECONFIG;
    }
    if (v < k->min || v > k->max) {
        char range[64];
        snprintf(range, sizeof(range), "%lld..%lld", (long long)k->min, (long long)k->max);
        gw_errf(err, errlen, "%s: %s is outside %s", k->name, val, range);
        return GW_ECONFIG;
    }
    memcpy(dst, &(int64_t){ v }, sizeof(int64_t));
    return 0;
}

int gw_config_set(struct gw_config *cfg, const char *key, const char *val, char *err, size_t errlen)
{
    const struct key *k = find(key);
    if (!k) {
        gw_errf(err, errlen, "%s: unknown key (`coapgw config` lists the keys)", key);
        return GW_ECONFIG;
    }
    return set_key(cfg, k, val, err, errlen);
}

void gw_config_defaults(struct gw_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (size_t i = 0; i < GW_ARRAY_LEN(keys); i++) {
        int rc = set_key(cfg, &keys[i], keys[i].def, NULL, 0);
        assert(rc == 0);
        (void)rc;
    }
}

static int load_file(struct gw_config *cfg, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        gw_errf(err, errlen, "cannot open config file %s: %s", path, strerror(errno));
        return GW_ECONFIG;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *hash = strchr(line, '#');
        if (hash)
            *hash = '\0';
        char *s = gw_str_trim(line);
        if (!*s)
            continue;
        /* The key ends at the first '=', ':' or blank; the value may hold
         * ':' itself (listen 127.0.0.1:5683), so look no further. */
        char *sep = s + strcspn(s, "=: \t");
        if (!*sep) {
            char where[300];
            snprintf(where, sizeof(where), "%s:%d", path, lineno);
            gw_errf(err, errlen, "%s: expected 'key = value', got '%s'", where, s);
            rc = GW_ECONFIG;
            break;
        }
        char *val = sep + strspn(sep, " \t");
        if (*val == '=' || *val == ':')
            val++;
        *sep = '\0';
        char *key = s;
        val = gw_str_trim(val);
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        }
        char msg[512];
        if (gw_config_set(cfg, key, val, msg, sizeof(msg)) != 0) {
            char where[300];
            snprintf(where, sizeof(where), "%s:%d", path, lineno);
            gw_errf(err, errlen, "%s: %s", where, msg);
            rc = GW_ECONFIG;
            break;
        }
        const struct key *k = find(key);
        cfg->src_line[k - keys] = (uint32_t)lineno;
        cfg->src_env[k - keys] = 0;
    }
    fclose(f);
    return rc;
}

int gw_config_load(struct gw_config *cfg, const char *path, char *err, size_t errlen)
{
    gw_config_defaults(cfg);
    if (path && *path)
        snprintf(cfg->src_path, sizeof(cfg->src_path), "%s", path);
    if (path && *path) {
        int rc = load_file(cfg, path, err, errlen);
        if (rc)
            return rc;
    }
    for (size_t i = 0; i < GW_ARRAY_LEN(keys); i++) {
        char env[96];
        gw_env_name("COAPGW_", keys[i].name, env, sizeof(env));
        const char *v = getenv(env);
        if (!v)
            continue;
        char msg[512];
        if (set_key(cfg, &keys[i], v, msg, sizeof(msg)) != 0) {
            gw_errf(err, errlen, "environment %s: %s", env, msg);
            return GW_ECONFIG;
        }
        cfg->src_env[i] = 1;
    }
    char w[GW_CFG_STR + 64];
    for (const char *p = cfg->instance; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            gw_errf(err, errlen, "%s: '%s' may hold only letters, digits, '-' and '_'",
                    gw_config_where(cfg, "instance", w, sizeof(w)), cfg->instance);
            return GW_ECONFIG;
        }
    if (!cfg->data_dir[0] &&
        gw_config_default_data_dir(cfg->instance, cfg->data_dir, sizeof(cfg->data_dir)) != 0) {
        gw_errf(err, errlen,
                "data_dir: no default (not root, and none of XDG_STATE_HOME, HOME, XDG_RUNTIME_DIR "
                "names an absolute directory of a sane length); set data_dir");
        return GW_ECONFIG;
    }
    if (cfg->frontends > cfg->max_frontends)
        cfg->max_frontends = cfg->frontends;
    return gw_config_validate(cfg, err, errlen);
}

const char *gw_config_where(const struct gw_config *cfg, const char *key, char *buf, size_t len)
{
    const struct key *k = find(key);
    size_t i = k ? (size_t)(k - keys) : GW_CFG_MAX_KEYS;
    if (i < GW_CFG_MAX_KEYS && cfg->src_env[i]) {
        char env[96] = "COAPGW_";
        size_t n = strlen(env);
        for (const char *p = key; *p && n < sizeof(env) - 1; p++)
            env[n++] = (char)toupper((unsigned char)*p);
        env[n] = '\0';
        snprintf(buf, len, "environment %s: %s", env, key);
    } else if (i < GW_CFG_MAX_KEYS && cfg->src_line[i] && cfg->src_path[0]) {
        snprintf(buf, len, "%s:%u: %s", cfg->src_path, cfg->src_line[i], key);
    } else {
        snprintf(buf, len, "%s", key);
    }
    return buf;
}

/* An address:port key: parses, and the port is 1..65535 (0 is refused: a
 * listener on a random port cannot be reached). */
static int check_ep(const struct gw_config *cfg, const char *key, const char *val, uint16_t defport,
                    char *err, size_t errlen)
{
    struct gw_ep ep;
    char w[GW_CFG_STR + 64];
    gw_config_where(cfg, key, w, sizeof(w));
    const char *colon = strrchr(val, ':');
    if (colon && val[0] != '[' && strchr(val, ':') != colon)
        colon = NULL; /* a bare IPv6 address */
    if (val[0] == '[')
        colon = strstr(val, "]:") ? strstr(val, "]:") + 1 : NULL;
    if (colon) {
        char *end;
        errno = 0;
        long p = strtol(colon + 1, &end, 10);
        if (errno || end == colon + 1 || *end || p < 1 || p > 65535) {
            snprintf(err, errlen, "%s: port '%s' is outside 1..65535", w, colon + 1);
            return GW_ECONFIG;
        }
    }
    if (gw_ep_parse(val, defport, &ep) != 0) {
        snprintf(err, errlen,
                 "%s: '%s' is not ADDRESS[:PORT] (an IPv4 address, [IPv6] or localhost)", w, val);
        return GW_ECONFIG;
    }
    return 0;
}

int gw_config_validate(const struct gw_config *cfg, char *err, size_t errlen)
{
    char w[GW_CFG_STR + 64];
    char tmp[8];
    if (!err || !errlen)
        err = tmp, errlen = sizeof(tmp);
    for (const char *p = cfg->instance; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_') {
            snprintf(err, errlen, "%s: '%s' may hold only letters, digits, '-' and '_'",
                     gw_config_where(cfg, "instance", w, sizeof(w)), cfg->instance);
            return GW_ECONFIG;
        }
    if (!cfg->instance[0]) {
        snprintf(err, errlen, "%s: must not be empty",
                 gw_config_where(cfg, "instance", w, sizeof(w)));
        return GW_ECONFIG;
    }
    if (cfg->ring_slots & (cfg->ring_slots - 1)) {
        snprintf(err, errlen, "%s: %lld is not a power of two (16, 32, ... 65536)",
                 gw_config_where(cfg, "ring_slots", w, sizeof(w)), (long long)cfg->ring_slots);
        return GW_ECONFIG;
    }
    if (gw_log_level_parse(cfg->log_level) < 0) {
        snprintf(err, errlen, "%s: '%s' is not one of error, warn, info, debug",
                 gw_config_where(cfg, "log_level", w, sizeof(w)), cfg->log_level);
        return GW_ECONFIG;
    }
    if (gw_log_format_parse(cfg->log_format) < 0) {
        snprintf(err, errlen, "%s: '%s' is not one of text, json",
                 gw_config_where(cfg, "log_format", w, sizeof(w)), cfg->log_format);
        return GW_ECONFIG;
    }
    if (strcmp(cfg->cpu_sched, "batch") && strcmp(cfg->cpu_sched, "normal")) {
        snprintf(err, errlen, "%s: '%s' is not one of batch, normal",
                 gw_config_where(cfg, "cpu_sched", w, sizeof(w)), cfg->cpu_sched);
        return GW_ECONFIG;
    }
    if (strcmp(cfg->jwt_alg, "HS256") && strcmp(cfg->jwt_alg, "RS256") &&
        strcmp(cfg->jwt_alg, "ES256")) {
        snprintf(err, errlen, "%s: '%s' is not one of HS256, RS256, ES256",
                 gw_config_where(cfg, "jwt_alg", w, sizeof(w)), cfg->jwt_alg);
        return GW_ECONFIG;
    }
    int rc = check_ep(cfg, "listen", cfg->listen, 5683, err, errlen);
    if (!rc && cfg->metrics_listen[0])
        rc = check_ep(cfg, "metrics_listen", cfg->metrics_listen, 9683, err, errlen);
    if (rc)
        return rc;
    struct gw_ep ep;
    if (gw_ep_parse(cfg->mesh_bind, 0, &ep) != 0 || ep.port != 0) {
        snprintf(err, errlen, "%s: '%s' is not an address (IPv4, [IPv6] or localhost, no port)",
                 gw_config_where(cfg, "mesh_bind", w, sizeof(w)), cfg->mesh_bind);
        return GW_ECONFIG;
    }
    if (gw_ep_parse(cfg->meshsim_base, 0, &ep) != 0 || ep.family != 4 || ep.port != 0) {
        snprintf(err, errlen, "%s: '%s' is not an IPv4 address",
                 gw_config_where(cfg, "meshsim_base", w, sizeof(w)), cfg->meshsim_base);
        return GW_ECONFIG;
    }
    if ((rc = gw_nodes_parse(cfg, NULL, err, errlen)) != 0)
        return rc;
    /* S10.4: nodes open sessions at each other with a token they sign
     * themselves, so the key must be a shared secret every node holds (a
     * development secret is per data_dir, an RS256/ES256 file a public key). */
    if (cfg->node_count > 1 && (strcmp(cfg->jwt_alg, "HS256") != 0 || !cfg->jwt_key_file[0])) {
        snprintf(
            err, errlen,
            "%s: node_count = %lld needs jwt_alg = HS256 and a jwt_key_file shared by every "
            "node (nodes sign their own session tokens with it)",
            gw_config_where(cfg, cfg->jwt_key_file[0] ? "jwt_alg" : "jwt_key_file", w, sizeof(w)),
            (long long)cfg->node_count);
        return GW_ECONFIG;
    }
    return 0;
}

int gw_config_data_dir_rule(unsigned euid, const char *xdg_state, const char *home,
                            const char *xdg_runtime, const char *instance, char *buf, size_t len)
{
    int n;
    if (euid == 0)
        n = snprintf(buf, len, "/var/lib/coapgw/%s", instance);
    else if (xdg_state && xdg_state[0] == '/')
        n = snprintf(buf, len, "%s/coapgw/%s", xdg_state, instance);
    else if (home && home[0] == '/')
        n = snprintf(buf, len, "%s/.local/state/coapgw/%s", home, instance);
    else if (xdg_runtime && xdg_runtime[0] == '/')
        n = snprintf(buf, len, "%s/coapgw-%s", xdg_runtime, instance);
    else
        n = -1;
    if (n < 0 || (size_t)n >= len) {
        if (len)
            buf[0] = '\0';
        return GW_ECONFIG;
    }
    return 0;
}

int gw_config_default_data_dir(const char *instance, char *buf, size_t len)
{
    return gw_config_data_dir_rule((unsigned)geteuid(), getenv("XDG_STATE_HOME"), getenv("HOME"),
                                   getenv("XDG_RUNTIME_DIR"), instance, buf, len);
}

bool gw_config_embedded_sim(const struct gw_config *cfg)
{
    return cfg->meshsim == 1 || (cfg->meshsim == -1 && !cfg->devices_file[0]);
}

bool gw_config_dev_secret(const struct gw_config *cfg)
{
    return !cfg->jwt_key_file[0];
}

int gw_config_check_key(const struct gw_config *cfg, char *err, size_t errlen)
{
    if (!gw_config_dev_secret(cfg) || gw_config_embedded_sim(cfg) || cfg->dev_mode)
        return 0;
    gw_errf(
        err, errlen,
        "jwt_key_file is not set: refusing to sign and verify tokens with a development secret "
        "in front of a real mesh (devices_file %s); set jwt_key_file, or dev_mode = true for a test set-up",
        cfg->devices_file[0] ? cfg->devices_file : "(none, meshsim = 0)");
    return GW_ECONFIG;
}

void gw_config_dump(const struct gw_config *cfg, int fd)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(keys); i++) {
        const char *src = (const char *)cfg + keys[i].off;
        if (keys[i].kind == K_STR)
            dprintf(fd, "%s = %s\n", keys[i].name, src);
        else {
            int64_t v;
            memcpy(&v, src, sizeof(v));
            dprintf(fd, "%s = %lld\n", keys[i].name, (long long)v);
        }
    }
}
