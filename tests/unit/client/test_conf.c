/* SPDX-License-Identifier: MIT */
/* test_conf.c - configuration layers and command line of `coapgw client`
 * (common/client/cl_conf.c, issue 14): defaults < file < COAPGW_CLIENT_<KEY>
 * < flags; errors name FILE:LINE and the key, the variable or the flag. */
#include "cl_conf.h"
#include "gw_error.h"

#include <criterion/criterion.h>
#include <string.h>

static char err[1024];

Test(conf, defaults)
{
    struct cl_conf c;
    cl_conf_defaults(&c);
    cr_assert_str_eq(c.gateway, "127.0.0.1:5683");
    cr_assert_eq(c.local_port, 40001);
    cr_assert_str_eq(c.security, "netmgr");
    cr_assert(!c.security_set);
    cr_assert(!c.sticky);
    cr_assert_eq(c.timeout_ms, 90000);
    cr_assert_eq(c.block_size, 0);
}

Test(conf, file_keys_comments_and_relative_token_file)
{
    struct cl_conf c;
    cl_conf_defaults(&c);
    const char *text =
        "# client\n\ngateway = 10.0.0.1:5700\nlocal_port=40100\n  token_file = tok.jwt  \n"
        "security = none\nsticky = true\ntimeout = 2.5\nblock_size = 64\n";
    cr_assert_eq(cl_conf_parse(&c, text, strlen(text), "/etc/cl/client.conf", err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_str_eq(c.gateway, "10.0.0.1:5700");
    cr_assert_eq(c.local_port, 40100);
    cr_assert_str_eq(c.token_file, "/etc/cl/tok.jwt", "relative to the file's folder");
    cr_assert_str_eq(c.security, "none");
    cr_assert(c.security_set);
    cr_assert(c.sticky);
    cr_assert_eq(c.timeout_ms, 2500);
    cr_assert_eq(c.block_size, 64);
}

Test(conf, file_errors_name_file_line_and_key)
{
    struct cl_conf c;
    static const struct {
        const char *text, *want;
    } bad[] = {
        { "gateway = a\nlocal_port = 0\n", "c.conf:2: local_port" },
        { "\n\nfoo = 1\n", "c.conf:3: unknown key 'foo'" },
        { "security = tls\n", "c.conf:1: security" },
        { "sticky = maybe\n", "c.conf:1: sticky" },
        { "timeout = -1\n", "c.conf:1: timeout" },
        { "block_size = 100\n", "c.conf:1: block_size" },
        { "just words\n", "c.conf:1: expected 'key = value'" },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cl_conf_defaults(&c);
        cr_assert_eq(
            cl_conf_parse(&c, bad[i].text, strlen(bad[i].text), "c.conf", err, sizeof(err)),
            GW_ECONFIG, "accepted: %s", bad[i].text);
        cr_assert(strstr(err, bad[i].want), "'%s' lacks '%s'", err, bad[i].want);
    }
}

static const char *fake_env(const char *name)
{
    if (!strcmp(name, "COAPGW_CLIENT_LOCAL_PORT"))
        return "40200";
    if (!strcmp(name, "COAPGW_CLIENT_SECURITY"))
        return "none";
    return NULL;
}

static const char *bad_env(const char *name)
{
    return !strcmp(name, "COAPGW_CLIENT_TIMEOUT") ? "soon" : NULL;
}

Test(conf, layers_file_then_environment_then_flags)
{
    struct cl_conf c;
    cl_conf_defaults(&c);
    const char *text = "local_port = 40100\ngateway = 10.0.0.1:5700\nsecurity = netmgr\n";
    cr_assert_eq(cl_conf_parse(&c, text, strlen(text), "f", err, sizeof(err)), 0);
    cr_assert_eq(cl_conf_env(&c, fake_env, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.local_port, 40200, "the environment overrides the file");
    cr_assert_str_eq(c.security, "none");
    cr_assert_str_eq(c.gateway, "10.0.0.1:5700", "what the environment does not set stays");
    char *argv[] = { "client", "--local-port", "40300", "get", "/help", NULL };
    struct cl_args a;
    cr_assert_eq(cl_args_parse(5, argv, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(cl_args_apply(&a, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.local_port, 40300, "flags override both");
    cr_assert_str_eq(c.security, "none");
}

Test(conf, environment_errors_name_the_variable)
{
    struct cl_conf c;
    cl_conf_defaults(&c);
    cr_assert_eq(cl_conf_env(&c, bad_env, err, sizeof(err)), GW_ECONFIG);
    cr_assert(strstr(err, "COAPGW_CLIENT_TIMEOUT"), "%s", err);
}

Test(args, commands_and_operands)
{
    struct cl_args a;
    char *v1[] = { "client", "--json", "-v", "session", "open", NULL };
    cr_assert_eq(cl_args_parse(5, v1, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.cmd, CL_CMD_SESSION_OPEN);
    cr_assert(a.json);
    cr_assert_eq(a.verbose, 1);
    char *v2[] = { "client",  "observe", "coap://0200000000000001/sensor",
                   "--count", "3",       "--duration",
                   "1.5",     NULL };
    cr_assert_eq(cl_args_parse(7, v2, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.cmd, CL_CMD_OBSERVE);
    cr_assert_str_eq(a.uri, "coap://0200000000000001/sensor");
    cr_assert_eq(a.count, 3);
    cr_assert_eq(a.duration_ms, 1500);
    char *v3[] = { "client", "put", "0200000000000001/x", "--data", "-", "--format", "json", NULL };
    cr_assert_eq(cl_args_parse(7, v3, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(a.data, "-");
    cr_assert_eq(a.format, 50);
    char *v4[] = { "client", "-c", "f.conf", "--token", "T", "--sticky", "devices", NULL };
    cr_assert_eq(cl_args_parse(7, v4, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(a.cmd, CL_CMD_DEVICES);
    cr_assert_str_eq(a.config, "f.conf");
    cr_assert_eq(a.nset, 2);
    char *v5[] = { "client", "session", "close", NULL };
    cr_assert_eq(cl_args_parse(3, v5, &a, err, sizeof(err)), 0);
    cr_assert_eq(a.cmd, CL_CMD_SESSION_CLOSE);
    char *v6[] = { "client", "ping", NULL };
    cr_assert_eq(cl_args_parse(2, v6, &a, err, sizeof(err)), 0);
    cr_assert_eq(a.cmd, CL_CMD_PING);
}

Test(args, usage_errors_are_one_line)
{
    struct cl_args a;
    static char *bad[][6] = {
        { "client", NULL },
        { "client", "fly", NULL },
        { "client", "session", NULL },
        { "client", "session", "reopen", NULL },
        { "client", "get", NULL },
        { "client", "get", "/a", "/b", NULL },
        { "client", "get", "/a", "--data", "x", NULL },
        { "client", "get", "/a", "--count", "2", NULL },
        { "client", "observe", "/a", "--count", "0", NULL },
        { "client", "--bogus", "ping", NULL },
        { "client", "ping", "--timeout", NULL },
        { "client", "put", "/a", "--format", "zz", NULL },
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int argc = 0;
        while (bad[i][argc])
            argc++;
        err[0] = '\0';
        cr_assert_eq(cl_args_parse(argc, bad[i], &a, err, sizeof(err)), GW_EBADMSG,
                     "case %zu accepted", i);
        cr_assert(err[0] && !strchr(err, '\n'), "case %zu: '%s'", i, err);
    }
}

Test(args, flag_values_are_checked_naming_the_flag)
{
    struct cl_args a;
    struct cl_conf c;
    cl_conf_defaults(&c);
    char *argv[] = { "client", "--local-port", "99999", "ping", NULL };
    cr_assert_eq(cl_args_parse(4, argv, &a, err, sizeof(err)), 0);
    cr_assert_neq(cl_args_apply(&a, &c, err, sizeof(err)), 0);
    cr_assert(strstr(err, "--local-port"), "%s", err);
}
