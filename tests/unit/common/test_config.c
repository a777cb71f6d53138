/* SPDX-License-Identifier: MIT */
/* test_config.c - configuration (common/gw_config.c).
 *
 * SPEC S1.6: every limit is a configuration value with a sane default.
 * Sources, later winning: defaults, the file, COAPGW_<KEY> variables. A bad
 * value is an error naming the key (and file:line when it comes from a
 * file), which the processes turn into GW_EXIT_FATAL. */
#include "gw_config.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char path[128];
static struct gw_config cfg;
static char err[512];

/* Removes every COAPGW_* variable the runner may have inherited; criterion
 * runs each test in its own process, so setenv() does not leak across. */
static void clear_env(void)
{
    for (;;) {
        char name[128] = "";
        for (char **e = environ; *e; e++)
            if (strncmp(*e, "COAPGW_", 7) == 0) {
                size_t n = strcspn(*e, "=");
                if (n >= sizeof(name))
                    n = sizeof(name) - 1;
                memcpy(name, *e, n);
                name[n] = '\0';
                break;
            }
        if (!name[0])
            return;
        cr_assert_eq(unsetenv(name), 0);
    }
}

static void setup(void)
{
    clear_env();
    strcpy(dir, "/tmp/coapgw-test-config.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/coapgw.conf", dir);
    err[0] = '\0';
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
}

TestSuite(config, .init = setup, .fini = teardown);

static void write_conf(const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    cr_assert_eq(fputs(text, f) >= 0, 1);
    cr_assert_eq(fclose(f), 0);
}

static int load(void)
{
    return gw_config_load(&cfg, path, err, sizeof(err));
}

#define ERR_HAS(s) cr_assert_not_null(strstr(err, s), "error '%s' lacks '%s'", err, s)

/* ------------------------------------------------------------------------ */
/* S1.6: defaults. */

Test(config, defaults_without_file)
{
    cr_assert_eq(gw_config_load(&cfg, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(cfg.listen, "0.0.0.0:5683"); /* S1.5 */
    cr_assert_str_eq(cfg.instance, "default");
    char want[GW_CFG_STR];
    cr_assert_eq(gw_config_default_data_dir("default", want, sizeof(want)), 0);
    cr_assert_str_eq(cfg.data_dir, want);
    cr_assert(strncmp(cfg.data_dir, "/tmp/", 5) != 0, "S9.2: no default in world-writable /tmp");
    cr_assert_str_eq(cfg.log_level, "info");
    cr_assert_str_eq(cfg.jwt_alg, "HS256");
    cr_assert_eq(cfg.frontends, 1);
    cr_assert_eq(cfg.ring_slots, 1024);
    cr_assert_eq(cfg.meshsim, -1);
    cr_assert_eq(cfg.client_ack_timeout_ms, 2000);      /* S3.6: ACK_TIMEOUT 2 s */
    cr_assert_eq(cfg.client_max_retransmit, 4);         /* S3.6: MAX_RETRANSMIT 4 */
    cr_assert_eq(cfg.max_message, 1152);                /* S3.5 */
    cr_assert_eq(cfg.session_max_lifetime_s, 4 * 3600); /* S2.7: 4 h */
    cr_assert_eq(cfg.max_sessions_per_account, 10);     /* S2.7 */
    cr_assert_eq(cfg.mesh_replay_window, 64);
    cr_assert_eq(cfg.obs_notify_con, 1);
    /* An empty path is no file. */
    cr_assert_eq(gw_config_load(&cfg, "", err, sizeof(err)), 0, "%s", err);
}

Test(config, defaults_fill_every_key)
{
    /* gw_config_defaults leaves data_dir empty; load derives it. */
    gw_config_defaults(&cfg);
    cr_assert_str_eq(cfg.data_dir, "");
    cr_assert_eq(cfg.cache_max_bytes, 16777216);
    cr_assert_gt(cfg.max_txn, 0);
    cr_assert_gt(cfg.dedup_max, 0);
    cr_assert_gt(cfg.device_queue_max, 0);
    cr_assert_gt(cfg.exchange_lifetime_ms, 0);
}

/* Dumped defaults load back to the same configuration. */
Test(config, dump_round_trips)
{
    cr_assert_eq(gw_config_load(&cfg, NULL, err, sizeof(err)), 0, "%s", err);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    gw_config_dump(&cfg, fd);
    cr_assert_eq(close(fd), 0);
    char a[8192] = "", b[8192] = "";
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    size_t na = fread(a, 1, sizeof(a) - 1, f);
    fclose(f);
    cr_assert_gt(na, 100);
    cr_assert_not_null(strstr(a, "ring_slots = 1024\n"));
    cr_assert_not_null(strstr(a, "listen = 0.0.0.0:5683\n"));

    struct gw_config back;
    cr_assert_eq(gw_config_load(&back, path, err, sizeof(err)), 0, "%s", err);
    char path2[160];
    snprintf(path2, sizeof(path2), "%s/again.conf", dir);
    fd = open(path2, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    gw_config_dump(&back, fd);
    cr_assert_eq(close(fd), 0);
    f = fopen(path2, "r");
    cr_assert_not_null(f);
    size_t nb = fread(b, 1, sizeof(b) - 1, f);
    fclose(f);
    unlink(path2);
    cr_assert_eq(na, nb);
    cr_assert_str_eq(a, b);
}

/* ------------------------------------------------------------------------ */
/* The file: `key = value`, comments, quotes. */

Test(config, file_key_value_comments_quotes)
{
    write_conf("# a comment line\n"
               "\n"
               "   \t\n"
               "ring_slots = 2048   # trailing comment\n"
               "listen=127.0.0.1:5684\n"
               "\tnames = \"gw.example, gw2.example\"\n"
               "jwt_issuer = 'https://issuer.example'\n"
               "devices_file: /etc/coapgw/devices.csv\n"
               "frontends = 2\n"
               "frontends = 3\n" /* the later line wins */
               "metrics_listen =\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.ring_slots, 2048);
    cr_assert_str_eq(cfg.listen, "127.0.0.1:5684");
    cr_assert_str_eq(cfg.names, "gw.example, gw2.example");
    cr_assert_str_eq(cfg.jwt_issuer, "https://issuer.example");
    cr_assert_str_eq(cfg.devices_file, "/etc/coapgw/devices.csv");
    cr_assert_eq(cfg.frontends, 3);
    cr_assert_str_eq(cfg.metrics_listen, "");
    /* Untouched keys keep their defaults. */
    cr_assert_eq(cfg.client_ack_timeout_ms, 2000);
}

/* A value holding ':' or '=' after a whitespace separator stays whole. */
Test(config, file_whitespace_separator_keeps_colons_in_value)
{
    write_conf("listen 127.0.0.1:5690\n"
               "metrics_listen\t127.0.0.1:9100\n"
               "listen = [::1]:5691\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_str_eq(cfg.listen, "[::1]:5691");
    cr_assert_str_eq(cfg.metrics_listen, "127.0.0.1:9100");
}

Test(config, file_bad_line_reports_file_and_line)
{
    write_conf("# header\n"
               "ring_slots = 2048\n"
               "\n"
               "justakey\n"
               "frontends = 2\n");
    cr_assert_eq(load(), GW_ECONFIG);
    char where[200];
    snprintf(where, sizeof(where), "%s:4", path);
    ERR_HAS(where);
    ERR_HAS("justakey");
}

Test(config, file_unknown_key_is_an_error)
{
    write_conf("frontends = 2\nno_such_key = 5\n");
    cr_assert_eq(load(), GW_ECONFIG);
    char where[200];
    snprintf(where, sizeof(where), "%s:2", path);
    ERR_HAS(where);
    ERR_HAS("no_such_key");
}

/* S1.6: every limit has a range; outside it names the key and the line. */
Test(config, file_out_of_range_names_key_and_line)
{
    write_conf("\n\nclient_max_retransmit = 21\n");
    cr_assert_eq(load(), GW_ECONFIG);
    char where[200];
    snprintf(where, sizeof(where), "%s:3", path);
    ERR_HAS(where);
    ERR_HAS("client_max_retransmit");
    ERR_HAS("21");

    write_conf("max_message = 1153\n"); /* S3.5: 1152 at most */
    cr_assert_eq(load(), GW_ECONFIG);
    ERR_HAS("max_message");

    write_conf("ring_slots = 8\n");
    cr_assert_eq(load(), GW_ECONFIG);
    ERR_HAS("ring_slots");
}

Test(config, file_not_a_number_names_key)
{
    static const char *bad[] = { "frontends = 2x\n", "frontends = \n", "frontends = 0x10\n",
                                 "frontends = 99999999999999999999999\n", "frontends = 1.5\n" };
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        write_conf(bad[i]);
        cr_assert_eq(load(), GW_ECONFIG, "%s", bad[i]);
        ERR_HAS("frontends");
    }
}

Test(config, ring_slots_must_be_power_of_two)
{
    write_conf("ring_slots = 1000\n");
    cr_assert_eq(load(), GW_ECONFIG);
    ERR_HAS("ring_slots");
    ERR_HAS("power of two");
    write_conf("ring_slots = 65536\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.ring_slots, 65536);
    write_conf("ring_slots = 16\n");
    cr_assert_eq(load(), 0, "%s", err);
}

Test(config, missing_file_is_an_error)
{
    cr_assert_eq(gw_config_load(&cfg, "/nonexistent/coapgw.conf", err, sizeof(err)), GW_ECONFIG);
    ERR_HAS("/nonexistent/coapgw.conf");
}

Test(config, int64_range_is_kept)
{
    write_conf("cache_max_bytes = 1099511627776\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.cache_max_bytes, 1099511627776LL);
    write_conf("cache_max_bytes = 1099511627777\n");
    cr_assert_eq(load(), GW_ECONFIG);
    ERR_HAS("cache_max_bytes");
    write_conf("cache_max_bytes = -1\n");
    cr_assert_eq(load(), GW_ECONFIG);
}

/* ------------------------------------------------------------------------ */
/* Environment: COAPGW_<KEY> wins over the file. */

Test(config, environment_overrides_file)
{
    write_conf("ring_slots = 2048\nlisten = 127.0.0.1:5684\nfrontends = 2\n");
    cr_assert_eq(setenv("COAPGW_RING_SLOTS", "4096", 1), 0);
    cr_assert_eq(setenv("COAPGW_LISTEN", "0.0.0.0:6000", 1), 0);
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.ring_slots, 4096);
    cr_assert_str_eq(cfg.listen, "0.0.0.0:6000");
    cr_assert_eq(cfg.frontends, 2);
}

Test(config, environment_overrides_defaults)
{
    cr_assert_eq(setenv("COAPGW_CLIENT_ACK_TIMEOUT_MS", "500", 1), 0);
    cr_assert_eq(gw_config_load(&cfg, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.client_ack_timeout_ms, 500);
}

Test(config, environment_bad_value_names_variable)
{
    cr_assert_eq(setenv("COAPGW_RING_SLOTS", "7", 1), 0);
    cr_assert_eq(gw_config_load(&cfg, NULL, err, sizeof(err)), GW_ECONFIG);
    ERR_HAS("COAPGW_RING_SLOTS");
    ERR_HAS("ring_slots");
}

/* A variable in lower case or with a different prefix is not ours. */
Test(config, environment_needs_exact_upper_case_name)
{
    cr_assert_eq(setenv("coapgw_ring_slots", "4096", 1), 0);
    cr_assert_eq(setenv("COAPGW_ring_slots", "4096", 1), 0);
    cr_assert_eq(gw_config_load(&cfg, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.ring_slots, 1024);
}

/* ------------------------------------------------------------------------ */
/* Booleans and "auto". */

Test(config, booleans_true_false)
{
    static const struct {
        const char *text;
        int64_t v;
    } cases[] = {
        { "true", 1 }, { "false", 0 }, { "TRUE", 1 }, { "False", 0 }, { "yes", 1 },
        { "no", 0 },   { "on", 1 },    { "off", 0 },  { "1", 1 },     { "0", 0 },
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(cases); i++) {
        char text[64];
        snprintf(text, sizeof(text), "obs_notify_con = %s\n", cases[i].text);
        write_conf(text);
        cr_assert_eq(load(), 0, "%s: %s", cases[i].text, err);
        cr_assert_eq(cfg.obs_notify_con, cases[i].v, "%s", cases[i].text);
    }
    write_conf("obs_notify_con = maybe\n");
    cr_assert_eq(load(), GW_ECONFIG);
    ERR_HAS("obs_notify_con");

    cr_assert_eq(setenv("COAPGW_OBS_NOTIFY_CON", "false", 1), 0);
    cr_assert_eq(gw_config_load(&cfg, NULL, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cfg.obs_notify_con, 0);
}

Test(config, meshsim_auto_yes_no)
{
    write_conf("meshsim = auto\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.meshsim, -1);
    write_conf("meshsim = yes\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.meshsim, 1);
    write_conf("meshsim = no\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.meshsim, 0);
}

/* ------------------------------------------------------------------------ */
/* Instance and data_dir. */

Test(config, data_dir_derives_from_instance)
{
    char want[GW_CFG_STR];
    write_conf("instance = blue-2_b\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(gw_config_default_data_dir("blue-2_b", want, sizeof(want)), 0);
    cr_assert_str_eq(cfg.data_dir, want);
    cr_assert(strstr(cfg.data_dir, "blue-2_b") != NULL);

    cr_assert_eq(setenv("COAPGW_INSTANCE", "green", 1), 0);
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_str_eq(cfg.instance, "green");
    cr_assert_eq(gw_config_default_data_dir("green", want, sizeof(want)), 0);
    cr_assert_str_eq(cfg.data_dir, want);
}

/* S9.2: the default data_dir is never in world-writable territory. */
Test(config, default_data_dir_rules)
{
    char b[GW_CFG_STR];
    cr_assert_eq(gw_config_data_dir_rule(0, "/x", "/root", "/run/user/0", "gw", b, sizeof(b)), 0);
    cr_assert_str_eq(b, "/var/lib/coapgw/gw");
    cr_assert_eq(gw_config_data_dir_rule(1000, "/home/u/.st", "/home/u", "/run/user/1000", "gw", b,
                                         sizeof(b)),
                 0);
    cr_assert_str_eq(b, "/home/u/.st/coapgw/gw");
    cr_assert_eq(
        gw_config_data_dir_rule(1000, NULL, "/home/u", "/run/user/1000", "gw", b, sizeof(b)), 0);
    cr_assert_str_eq(b, "/home/u/.local/state/coapgw/gw");
    /* Relative values are ignored, as the XDG base directory spec says. */
    cr_assert_eq(gw_config_data_dir_rule(1000, "rel", "", "/run/user/1000", "gw", b, sizeof(b)), 0);
    cr_assert_str_eq(b, "/run/user/1000/coapgw-gw");
    cr_assert_eq(gw_config_data_dir_rule(1000, NULL, NULL, NULL, "gw", b, sizeof(b)), GW_ECONFIG);
    cr_assert_str_eq(b, "");
    char small[8];
    cr_assert_eq(gw_config_data_dir_rule(0, NULL, NULL, NULL, "gw", small, sizeof(small)),
                 GW_ECONFIG);
}

/* S9.2: the development secret only with the embedded simulator or dev_mode. */
Test(config, dev_secret_needs_simulator_or_dev_mode)
{
    gw_config_defaults(&cfg);
    cr_assert_eq(gw_config_check_key(&cfg, err, sizeof(err)), 0, "embedded simulator (auto)");
    strcpy(cfg.devices_file, "/etc/coapgw/devices.csv");
    cr_assert_eq(gw_config_check_key(&cfg, err, sizeof(err)), GW_ECONFIG);
    cr_assert(strstr(err, "jwt_key_file") && strstr(err, "dev_mode"), "%s", err);
    cfg.meshsim = 1;
    cr_assert_eq(gw_config_check_key(&cfg, err, sizeof(err)), 0, "simulating devices_file");
    cfg.meshsim = 0;
    cfg.devices_file[0] = '\0';
    cr_assert_eq(gw_config_check_key(&cfg, err, sizeof(err)), GW_ECONFIG, "no simulator, no key");
    cfg.dev_mode = 1;
    cr_assert_eq(gw_config_check_key(&cfg, err, sizeof(err)), 0);
    cfg.dev_mode = 0;
    strcpy(cfg.jwt_key_file, "/etc/coapgw/jwt.key");
    cr_assert_eq(gw_config_check_key(&cfg, err, sizeof(err)), 0);
    cr_assert(!gw_config_dev_secret(&cfg));
    write_conf("dev_mode = true\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.dev_mode, 1);
}

Test(config, explicit_data_dir_is_kept)
{
    write_conf("instance = blue\ndata_dir = /var/lib/coapgw\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_str_eq(cfg.data_dir, "/var/lib/coapgw");
}

/* The instance names shared memory and files: no '/', '.', spaces. */
Test(config, bad_instance_characters_rejected)
{
    static const char *bad[] = { "a/b", "../x", "a b", "x;y", "a.b", "é" };
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        cr_assert_eq(setenv("COAPGW_INSTANCE", bad[i], 1), 0);
        cr_assert_eq(gw_config_load(&cfg, NULL, err, sizeof(err)), GW_ECONFIG, "'%s'", bad[i]);
        ERR_HAS("instance");
    }
    write_conf("instance = \"a b\"\n");
    cr_assert_eq(unsetenv("COAPGW_INSTANCE"), 0);
    cr_assert_eq(load(), GW_ECONFIG);
    ERR_HAS("instance");
}

/* ------------------------------------------------------------------------ */
/* Cross checks and gw_config_set. */

Test(config, frontends_raise_max_frontends)
{
    write_conf("frontends = 12\nmax_frontends = 4\n");
    cr_assert_eq(load(), 0, "%s", err);
    cr_assert_eq(cfg.frontends, 12);
    cr_assert_geq(cfg.max_frontends, 12);
}

Test(config, log_level_and_jwt_alg_are_checked)
{
    write_conf("log_level = debug\njwt_alg = ES256\n");
    cr_assert_eq(load(), 0, "%s", err);
    write_conf("log_level = chatty\n");
    cr_assert_eq(load(), GW_ECONFIG);
    ERR_HAS("log_level");
    write_conf("jwt_alg = none\n"); /* S2.2: alg none is never accepted */
    cr_assert_eq(load(), GW_ECONFIG);
    ERR_HAS("jwt_alg");
}

Test(config, set_unknown_key_and_long_string)
{
    gw_config_defaults(&cfg);
    cr_assert_eq(gw_config_set(&cfg, "nope", "1", err, sizeof(err)), GW_ECONFIG);
    ERR_HAS("nope");
    char longv[GW_CFG_STR + 10];
    memset(longv, 'a', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    cr_assert_eq(gw_config_set(&cfg, "listen", longv, err, sizeof(err)), GW_ECONFIG);
    ERR_HAS("listen");
    cr_assert_str_eq(cfg.listen, "0.0.0.0:5683", "a refused value changes nothing");
    longv[GW_CFG_STR - 1] = '\0';
    cr_assert_eq(gw_config_set(&cfg, "listen", longv, err, sizeof(err)), 0);
    cr_assert_eq(strlen(cfg.listen), GW_CFG_STR - 1);
    cr_assert_eq(gw_config_set(&cfg, "nstart", "3", err, sizeof(err)), 0);
    cr_assert_eq(cfg.nstart, 3);
    /* No error buffer: still reports. */
    cr_assert_eq(gw_config_set(&cfg, "nstart", "0", NULL, 0), GW_ECONFIG);
    cr_assert_eq(cfg.nstart, 3);
}

/* Issue 15: an error found after loading (a power of two, a level name, an
 * address) names file:line and the key, like an error found while reading. */
Test(config, checks_after_loading_name_file_line_and_key)
{
    static const struct {
        const char *text, *key, *what;
    } bad[] = {
        { "# c\nring_slots = 1000\n", ":2: ring_slots", "power of two" },
        { "log_level = loud\n", ":1: log_level", "loud" },
        { "\n\nlog_format = xml\n", ":3: log_format", "text, json" },
        { "instance = a/b\n", ":1: instance", "letters" },
        { "jwt_alg = none\n", ":1: jwt_alg", "HS256" },
        { "listen = garbage\n", ":1: listen", "ADDRESS" },
        { "listen = 127.0.0.1:99999\n", ":1: listen", "1..65535" },
        { "listen = 127.0.0.1:0\n", ":1: listen", "1..65535" },
        { "listen = [::1]:70000\n", ":1: listen", "1..65535" },
        { "metrics_listen = 127.0.0.1:x\n", ":1: metrics_listen", "1..65535" },
        { "mesh_bind = 10.0.0.1:5\n", ":1: mesh_bind", "no port" },
        { "meshsim_base = ::1\n", ":1: meshsim_base", "IPv4" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_conf(bad[i].text);
        cr_assert_eq(load(), GW_ECONFIG, "%s", bad[i].text);
        char want[256];
        snprintf(want, sizeof(want), "%s%s", path, bad[i].key);
        ERR_HAS(want);
        ERR_HAS(bad[i].what);
    }
    write_conf(
        "listen = [::1]:5684\nmetrics_listen = localhost:9000\nmesh_bind = ::\nmeshsim_base = 127.0.9.1\n"
        "log_format = json\n");
    cr_assert_eq(load(), 0, "%s", err);
}

Test(config, where_names_the_source_of_a_key)
{
    char w[300];
    write_conf("\nnstart = 2\n");
    cr_assert_eq(setenv("COAPGW_MAX_TXN", "100", 1), 0);
    cr_assert_eq(load(), 0, "%s", err);
    char want[256];
    snprintf(want, sizeof(want), "%s:2: nstart", path);
    cr_assert_str_eq(gw_config_where(&cfg, "nstart", w, sizeof(w)), want);
    cr_assert_str_eq(gw_config_where(&cfg, "max_txn", w, sizeof(w)),
                     "environment COAPGW_MAX_TXN: max_txn");
    cr_assert_str_eq(gw_config_where(&cfg, "listen", w, sizeof(w)), "listen");
    unsetenv("COAPGW_MAX_TXN");
}
