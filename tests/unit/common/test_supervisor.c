/* SPDX-License-Identifier: MIT */
/* test_supervisor.c - the supervisor's pure helpers (SPEC S1.1 restarts,
 * S10.1 first request, S10.2 metrics): back-off, exit wording, the command
 * line, child argument vectors, Prometheus and status rendering. */
#include "gw_shm.h"
#include "gw_stats.h"
#include "supervisor.h"
#include "gw_coap.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define E(expr) cr_assert_eq((expr), 0, "%s", #expr)

/* ---- back-off (S1.1: restart any process that dies, without a tight loop) ---- */

Test(supervisor, backoff_doubles_to_a_cap)
{
    struct sup_backoff b = { 0 };
    const uint64_t want[] = { 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000 };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        cr_assert_eq(sup_backoff_next(&b, 10), want[i], "step %zu", i);
}

Test(supervisor, backoff_resets_after_a_long_run)
{
    struct sup_backoff b = { 0 };
    for (int i = 0; i < 5; i++)
        (void)sup_backoff_next(&b, 50);
    cr_assert_eq(sup_backoff_next(&b, SUP_BACKOFF_RESET_MS - 1), 3200);
    cr_assert_eq(sup_backoff_next(&b, SUP_BACKOFF_RESET_MS), 100);
    cr_assert_eq(sup_backoff_next(&b, 0), 200);
}

Test(supervisor, backoff_counter_does_not_grow_at_the_cap)
{
    struct sup_backoff b = { 0 };
    for (int i = 0; i < 100000; i++)
        (void)sup_backoff_next(&b, 0);
    cr_assert_lt(b.fails, 10);
    cr_assert_eq(sup_backoff_next(&b, 0), SUP_BACKOFF_MAX_MS);
}

/* ---- exit wording (nginx ngx_process_get_status) ------------------------------ */

Test(supervisor, exit_status_is_described_like_nginx)
{
    char buf[64];
    sup_exit_describe(3 << 8, buf, sizeof(buf));
    cr_assert_str_eq(buf, "exited with status 3");
    sup_exit_describe(0, buf, sizeof(buf));
    cr_assert_str_eq(buf, "exited with status 0");
    sup_exit_describe(9, buf, sizeof(buf));
    cr_assert_str_eq(buf, "exited on signal 9");
    sup_exit_describe(11 | 0x80, buf, sizeof(buf));
    cr_assert_str_eq(buf, "exited on signal 11 (core dumped)");
}

Test(supervisor, only_exit_78_is_fatal)
{
    cr_assert(sup_exit_is_fatal(GW_EXIT_FATAL << 8));
    cr_assert_not(sup_exit_is_fatal(1 << 8));
    cr_assert_not(sup_exit_is_fatal(0));
    cr_assert_not(sup_exit_is_fatal(GW_EXIT_FATAL)); /* killed by signal 78, not exit 78 */
}

/* ---- names ---------------------------------------------------------------------- */

Test(supervisor, process_names_and_pid_files)
{
    char buf[64];
    sup_proc_name(GW_PROC_SUPERVISOR, buf, sizeof(buf));
    cr_assert_str_eq(buf, "supervisor");
    sup_proc_name(GW_PROC_SCHEDULER, buf, sizeof(buf));
    cr_assert_str_eq(buf, "scheduler");
    sup_proc_name(GW_PROC_MESHIO, buf, sizeof(buf));
    cr_assert_str_eq(buf, "meshio");
    sup_proc_name(GW_PROC_MESHSIM, buf, sizeof(buf));
    cr_assert_str_eq(buf, "meshsim");
    sup_proc_name(GW_PROC_FRONTEND0 + 3, buf, sizeof(buf));
    cr_assert_str_eq(buf, "frontend-3");
    int idx;
    cr_assert_str_eq(sup_proc_role(GW_PROC_FRONTEND0 + 1, &idx), "frontend");
    cr_assert_eq(idx, 1);
    cr_assert_str_eq(sup_proc_role(GW_PROC_MESHIO, &idx), "meshio");
    cr_assert_eq(idx, -1);

    struct gw_config cfg;
    gw_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "/var/lib/coapgw");
    char path[300];
    sup_pidfile_path(&cfg, GW_PROC_FRONTEND0, path, sizeof(path));
    cr_assert_str_eq(path, "/var/lib/coapgw/frontend-0.pid");
    sup_pidfile_path(&cfg, GW_PROC_SUPERVISOR, path, sizeof(path));
    cr_assert_str_eq(path, "/var/lib/coapgw/supervisor.pid");
}

/* ---- child argument vectors --------------------------------------------------------- */

static size_t argv_len(char **v)
{
    size_t n = 0;
    while (v[n])
        n++;
    return n;
}

Test(supervisor, child_argv_for_each_role)
{
    struct sup_argv av;
    E(sup_child_argv(GW_PROC_SCHEDULER, NULL, NULL, &av));
    cr_assert_eq(argv_len(av.argv), 2);
    cr_assert_str_eq(av.argv[0], "coapgw");
    cr_assert_str_eq(av.argv[1], "scheduler");

    E(sup_child_argv(GW_PROC_FRONTEND0 + 2, "/etc/coapgw.conf", "/x.csv", &av));
    cr_assert_eq(argv_len(av.argv), 6);
    cr_assert_str_eq(av.argv[1], "frontend");
    cr_assert_str_eq(av.argv[2], "-c");
    cr_assert_str_eq(av.argv[3], "/etc/coapgw.conf");
    cr_assert_str_eq(av.argv[4], "-i");
    cr_assert_str_eq(av.argv[5], "2");

    E(sup_child_argv(GW_PROC_MESHSIM, "/etc/coapgw.conf", "/d/meshsim-devices.csv", &av));
    cr_assert_eq(argv_len(av.argv), 5);
    cr_assert_str_eq(av.argv[1], "meshsim");
    cr_assert_str_eq(av.argv[2], "--devices");
    cr_assert_str_eq(av.argv[3], "/d/meshsim-devices.csv");
    cr_assert_str_eq(av.argv[4], "--quiet");
}

Test(supervisor, child_argv_refuses_what_does_not_fit)
{
    struct sup_argv av;
    char *huge = malloc(4096);
    memset(huge, 'a', 4095);
    huge[4095] = '\0';
    cr_assert_eq(sup_child_argv(GW_PROC_MESHIO, huge, NULL, &av), -ENAMETOOLONG);
    free(huge);
}

/* ---- command line ------------------------------------------------------------------- */

static int parse(struct sup_args *a, char *err, size_t errlen, ...)
{
    static char store[16][64];
    static char *argv[17];
    va_list ap;
    va_start(ap, errlen);
    int argc = 0;
    for (const char *s; (s = va_arg(ap, const char *)) != NULL && argc < 16; argc++) {
        snprintf(store[argc], sizeof(store[argc]), "%s", s);
        argv[argc] = store[argc];
    }
    va_end(ap);
    argv[argc] = NULL;
    return sup_args_parse(argc, argv, a, err, errlen);
}

Test(supervisor, args_run_and_roles)
{
    struct sup_args a;
    char err[256];
    E(parse(&a, err, sizeof(err), "coapgw", "run", "-c", "gw.conf", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_RUN);
    cr_assert_str_eq(a.config, "gw.conf");

    E(parse(&a, err, sizeof(err), "coapgw", "frontend", "--index=3", "--config", "x.conf", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_FRONTEND);
    cr_assert_eq(a.index, 3);
    cr_assert_str_eq(a.config, "x.conf");

    E(parse(&a, err, sizeof(err), "coapgw", "scheduler", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_SCHEDULER);
    cr_assert_null(a.config);
    E(parse(&a, err, sizeof(err), "coapgw", "meshio", "-c", "m.conf", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_MESHIO);
    E(parse(&a, err, sizeof(err), "coapgw", "status", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_STATUS);
    E(parse(&a, err, sizeof(err), "coapgw", "metrics", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_METRICS);
    E(parse(&a, err, sizeof(err), "coapgw", "config", "-c", "c", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_CONFIG);
}

Test(supervisor, args_usage_cases)
{
    struct sup_args a;
    char err[256];
    E(parse(&a, err, sizeof(err), "coapgw", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_USAGE);
    cr_assert_not(a.help);
    E(parse(&a, err, sizeof(err), "coapgw", "help", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_USAGE);
    E(parse(&a, err, sizeof(err), "coapgw", "--help", NULL));
    cr_assert(a.help);
    E(parse(&a, err, sizeof(err), "coapgw", "run", "-h", NULL));
    cr_assert(a.help);
    cr_assert_eq(a.cmd, SUP_CMD_RUN);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "frobnicate", NULL), -EINVAL);
    cr_assert(strstr(err, "frobnicate"), "%s", err);
}

Test(supervisor, args_bad_options_are_refused)
{
    struct sup_args a;
    char err[256];
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "frontend", "-i", "x", NULL), -EINVAL);
    cr_assert(strstr(err, "index"), "%s", err);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "frontend", "-i", "-1", NULL), -EINVAL);
    /* The upper bound is max_frontends from the configuration, checked once it is read,
     * so that the message names the real range (issue 15). */
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "frontend", "-i", "99", NULL), 0);
    cr_assert_eq(a.index, 99);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "frontend", "-i", NULL), -EINVAL);
    cr_assert(strstr(err, "argument"), "%s", err);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "status", "-i", "1", NULL), -EINVAL);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "status", "--index", "1", NULL), -EINVAL);
    cr_assert(strstr(err, "does not apply"), "%s", err);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "run", "--bogus", NULL), -EINVAL);
    cr_assert(strstr(err, "--bogus"), "%s", err);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "run", "extra", NULL), -EINVAL);
    cr_assert(strstr(err, "extra"), "%s", err);
}

Test(supervisor, args_token)
{
    struct sup_args a;
    char err[256];
    E(parse(&a, err, sizeof(err), "coapgw", "token", "--account", "demo", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_TOKEN);
    cr_assert_str_eq(a.account, "demo");
    cr_assert_eq(a.ttl_s, SUP_TOKEN_TTL_DEFAULT);
    cr_assert_null(a.devices);
    E(parse(&a, err, sizeof(err), "coapgw", "token", "-c", "g.conf", "--account=acme", "--ttl",
            "60", "--devices", "02*,0300000000000001", NULL));
    cr_assert_str_eq(a.account, "acme");
    cr_assert_eq(a.ttl_s, 60);
    cr_assert_str_eq(a.devices, "02*,0300000000000001");
    cr_assert_str_eq(a.config, "g.conf");
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "token", NULL), -EINVAL);
    cr_assert(strstr(err, "--account"), "%s", err);
    cr_assert_eq(
        parse(&a, err, sizeof(err), "coapgw", "token", "--account", "x", "--ttl", "0", NULL),
        -EINVAL);
    cr_assert_eq(
        parse(&a, err, sizeof(err), "coapgw", "token", "--account", "x", "--ttl", "9x", NULL),
        -EINVAL);
}

Test(supervisor, args_devices)
{
    struct sup_args a;
    char err[256];
    E(parse(&a, err, sizeof(err), "coapgw", "devices", "import", "d.csv", "-c", "g.conf", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_DEVICES_IMPORT);
    cr_assert_str_eq(a.file, "d.csv");
    cr_assert_str_eq(a.config, "g.conf");
    E(parse(&a, err, sizeof(err), "coapgw", "devices", "list", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_DEVICES_LIST);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "devices", "import", NULL), -EINVAL);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "devices", "import", "a", "b", NULL),
                 -EINVAL);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "devices", "list", "x", NULL), -EINVAL);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "devices", "drop", NULL), -EINVAL);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "devices", NULL), -EINVAL);
}

Test(supervisor, args_meshsim_passes_everything_through)
{
    struct sup_args a;
    char err[256];
    E(parse(&a, err, sizeof(err), "coapgw", "meshsim", "--generate", "4", "--out", "x.csv", "-c",
            "ignored", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_MESHSIM);
    cr_assert_eq(a.sub_argc, 7);
    cr_assert_str_eq(a.sub_argv[0], "meshsim");
    cr_assert_str_eq(a.sub_argv[1], "--generate");
    cr_assert_str_eq(a.sub_argv[6], "ignored");
}

Test(supervisor, args_parse_is_repeatable)
{
    /* getopt keeps global state; the parser resets it every time. */
    struct sup_args a;
    char err[256];
    for (int i = 0; i < 3; i++) {
        E(parse(&a, err, sizeof(err), "coapgw", "frontend", "-i", "1", NULL));
        cr_assert_eq(a.index, 1);
        E(parse(&a, err, sizeof(err), "coapgw", "run", NULL));
        cr_assert_null(a.config);
    }
}

/* ---- Prometheus text (S10.2) --------------------------------------------------------- */

static void fill_view(struct sup_view *v)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->instance, sizeof(v->instance), "t");
    v->now_mono_ms = 100000;
    v->version = "1.2.3";
    v->commit = "abc123";
    v->max_sessions = 500;
    v->max_txn = 64;
    v->procs[v->nprocs++] = (struct sup_proc_view){ .proc = GW_PROC_SUPERVISOR,
                                                    .pid = 10,
                                                    .up = true,
                                                    .started_wall = 1700000000,
                                                    .started_mono_ms = 40000,
                                                    .has_proc = true,
                                                    .rss_bytes = 4096,
                                                    .cpu_seconds = 1.5,
                                                    .open_fds = 9 };
    struct sup_proc_view sch = { .proc = GW_PROC_SCHEDULER,
                                 .pid = 11,
                                 .up = true,
                                 .restarts = 2,
                                 .started_wall = 1700000001,
                                 .started_mono_ms = 90000,
                                 .has_stats = true };
    sch.stats[GW_STAT_cache_hits] = 7;
    sch.stats[GW_STAT_queue_depth] = 3;
    sch.hist[GW_HIST_DEVICE_RTT].bucket[0] = 1;               /* <= 100 us */
    sch.hist[GW_HIST_DEVICE_RTT].bucket[4] = 2;               /* <= 2.5 ms */
    sch.hist[GW_HIST_DEVICE_RTT].bucket[GW_HIST_NBOUNDS] = 1; /* beyond the last bound */
    sch.hist[GW_HIST_DEVICE_RTT].count = 4;
    sch.hist[GW_HIST_DEVICE_RTT].sum_us = 700004000;
    v->procs[v->nprocs++] = sch;
    struct sup_proc_view fe = {
        .proc = GW_PROC_FRONTEND0 + 1, .pid = 0, .up = false, .restarts = 5, .has_stats = true
    };
    fe.stats[GW_STAT_rx_datagrams] = 12345678901234ull;
    fe.stats[GW_STAT_sessions_live] = 4;
    fe.codes[gw_stat_code_index(GW_CODE(2, 5))] = 40;
    fe.codes[gw_stat_code_index(GW_CODE(4, 4))] = 2;
    v->procs[v->nprocs++] = fe;
    v->procs[v->nprocs++] =
        (struct sup_proc_view){ .proc = GW_PROC_MESHSIM, .pid = 13, .up = true };
    v->rings[v->nrings++] = (struct sup_ring_view){ "frontend-1", "scheduler", 9, 1024 };
    v->rings[v->nrings++] = (struct sup_ring_view){ "scheduler", "meshio", 0, 1024 };
    v->bells[v->nbells++] = (struct sup_bell_view){ "scheduler", 77 };
}

static bool has_line(const char *text, const char *line)
{
    size_t l = strlen(line);
    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[l] == '\n')
            return true;
    return false;
}

/* S10.2, issue 15: Prometheus conventions: the frontend index is the label
 * `frontend` (Prometheus owns `instance`), outcomes are one counter with a
 * `code` label, each series only for the roles that keep it. */
Test(supervisor, metrics_render_per_role_with_conventional_labels)
{
    struct sup_view *v = malloc(sizeof(*v));
    fill_view(v);
    size_t len = 0;
    char *t = sup_metrics_render(v, &len);
    cr_assert_not_null(t);
    cr_assert_eq(len, strlen(t));
    cr_assert(has_line(t, "coapgw_build_info{version=\"1.2.3\",commit=\"abc123\"} 1"));
    cr_assert(has_line(t, "# TYPE coapgw_up gauge"));
    cr_assert(has_line(t, "coapgw_up{role=\"supervisor\"} 1"));
    cr_assert(has_line(t, "coapgw_up{role=\"frontend\",frontend=\"1\"} 0"));
    cr_assert(has_line(t, "coapgw_up{role=\"meshsim\"} 1"));
    cr_assert(has_line(t, "# TYPE coapgw_restarts_total counter"));
    cr_assert(has_line(t, "coapgw_restarts_total{role=\"scheduler\"} 2"));
    cr_assert(has_line(t, "coapgw_restarts_total{role=\"frontend\",frontend=\"1\"} 5"));
    cr_assert(has_line(t, "coapgw_process_start_time_seconds{role=\"scheduler\"} 1700000001"));
    cr_assert(has_line(t, "coapgw_process_resident_memory_bytes{role=\"supervisor\"} 4096"));
    cr_assert(has_line(t, "coapgw_process_cpu_seconds_total{role=\"supervisor\"} 1.50"));
    cr_assert(has_line(t, "coapgw_process_open_fds{role=\"supervisor\"} 9"));
    cr_assert(has_line(t, "# TYPE coapgw_cache_hits_total counter"));
    cr_assert(has_line(t, "# HELP coapgw_cache_hits_total Response cache hits."));
    cr_assert(has_line(t, "coapgw_cache_hits_total{role=\"scheduler\"} 7"));
    cr_assert(has_line(t, "coapgw_queue_depth{role=\"scheduler\"} 3"));
    cr_assert(
        has_line(t, "coapgw_rx_datagrams_total{role=\"frontend\",frontend=\"1\"} 12345678901234"));
    cr_assert(has_line(t, "coapgw_sessions_live 4"));
    cr_assert(has_line(t, "coapgw_sessions_max 500"));
    cr_assert(
        has_line(t, "coapgw_responses_total{role=\"frontend\",frontend=\"1\",code=\"2.05\"} 40"));
    cr_assert(
        has_line(t, "coapgw_responses_total{role=\"frontend\",frontend=\"1\",code=\"4.04\"} 2"));
    cr_assert(
        has_line(t, "coapgw_responses_total{role=\"frontend\",frontend=\"1\",code=\"5.04\"} 0"));
    cr_assert(has_line(t, "coapgw_ring_depth{from=\"frontend-1\",to=\"scheduler\"} 9"));
    cr_assert(has_line(t, "coapgw_ring_slots{from=\"scheduler\",to=\"meshio\"} 1024"));
    cr_assert(has_line(t, "coapgw_doorbell_writes_total{to=\"scheduler\"} 77"));
    /* Histograms: cumulative buckets, +Inf equal to _count, sum in seconds. */
    cr_assert(has_line(t, "# TYPE coapgw_device_rtt_seconds histogram"));
    cr_assert(has_line(t, "coapgw_device_rtt_seconds_bucket{role=\"scheduler\",le=\"0.0001\"} 1"));
    cr_assert(has_line(t, "coapgw_device_rtt_seconds_bucket{role=\"scheduler\",le=\"0.001\"} 1"));
    cr_assert(has_line(t, "coapgw_device_rtt_seconds_bucket{role=\"scheduler\",le=\"0.0025\"} 3"));
    cr_assert(has_line(t, "coapgw_device_rtt_seconds_bucket{role=\"scheduler\",le=\"+Inf\"} 4"));
    cr_assert(has_line(t, "coapgw_device_rtt_seconds_sum{role=\"scheduler\"} 700.004000"));
    cr_assert(has_line(t, "coapgw_device_rtt_seconds_count{role=\"scheduler\"} 4"));
    cr_assert(has_line(
        t,
        "coapgw_request_duration_seconds_count{role=\"frontend\",frontend=\"1\",path=\"cache\"} 0"));
    /* Only where it means something. */
    cr_assert_null(strstr(t, "instance="));
    /* Frontends answer hits from the shared table (issue 13), so they keep the counter too. */
    cr_assert(has_line(t, "coapgw_cache_hits_total{role=\"frontend\",frontend=\"1\"} 0"));
    cr_assert_null(strstr(t, "coapgw_rx_datagrams_total{role=\"scheduler\""));
    cr_assert_null(strstr(t, "coapgw_responses_total{role=\"scheduler\""));
    cr_assert_null(strstr(t, "coapgw_cache_hits_total{role=\"supervisor\"}"));
    cr_assert_null(strstr(t, "coapgw_cache_hits_total{role=\"meshsim\"}"));
    cr_assert_null(strstr(t, "coapgw_restarts_total{role=\"supervisor\"}"));
    cr_assert_null(
        strstr(t, "coapgw_responses_total{role=\"frontend\",frontend=\"1\",code=\"4.05\"}"));
    cr_assert_null(strstr(t, "responses_2xx"));
    cr_assert_null(strstr(t, "requests_forbidden"));
    free(t);
    free(v);
}

/* Every line is a comment or `name{labels} value`; every family has exactly
 * one HELP and one TYPE, before its samples (exposition format 0.0.4);
 * histogram samples carry the _bucket/_sum/_count suffixes of their family. */
Test(supervisor, metrics_text_is_well_formed)
{
    struct sup_view *v = malloc(sizeof(*v));
    fill_view(v);
    char *t = sup_metrics_render(v, NULL);
    cr_assert_not_null(t);
    cr_assert_eq(t[strlen(t) - 1], '\n');
    char typed[128][96], kinds[128][16];
    int ntyped = 0;
    char *save = NULL;
    int samples = 0;
    for (char *line = strtok_r(t, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[96];
        if (!strncmp(line, "# HELP ", 7))
            continue;
        if (!strncmp(line, "# TYPE ", 7)) {
            cr_assert_eq(sscanf(line + 7, "%95s %15s", name, kinds[ntyped]), 2);
            for (int i = 0; i < ntyped; i++)
                cr_assert_str_neq(typed[i], name, "TYPE twice for %s", name);
            cr_assert_lt(ntyped, 127);
            snprintf(typed[ntyped++], sizeof(typed[0]), "%s", name);
            continue;
        }
        cr_assert_neq(line[0], '#', "%s", line);
        size_t n = strspn(line, "abcdefghijklmnopqrstuvwxyz_0123456789");
        cr_assert_gt(n, 0, "%s", line);
        cr_assert(line[n] == '{' || line[n] == ' ', "%s", line);
        memcpy(name, line, n);
        name[n] = '\0';
        cr_assert_gt(ntyped, 0);
        const char *fam = typed[ntyped - 1];
        if (!strcmp(kinds[ntyped - 1], "histogram")) {
            size_t fl = strlen(fam);
            cr_assert(!strncmp(name, fam, fl) &&
                          (!strcmp(name + fl, "_bucket") || !strcmp(name + fl, "_sum") ||
                           !strcmp(name + fl, "_count")),
                      "sample %s outside %s", line, fam);
        } else {
            cr_assert_str_eq(fam, name, "sample %s outside its family", line);
        }
        char *val = strrchr(line, ' ');
        cr_assert_not_null(val);
        if (line[n] == '{') {
            char *close = strchr(line, '}');
            cr_assert_not_null(close);
            cr_assert_eq(close + 1, val, "%s", line);
        }
        char *end;
        (void)strtod(val + 1, &end);
        cr_assert_eq(*end, '\0', "%s", line);
        samples++;
    }
    cr_assert_gt(samples, 60);
    free(t);
    free(v);
}

/* ---- status table ------------------------------------------------------------------------ */

Test(supervisor, uptime_is_short_and_readable)
{
    char b[32];
    sup_fmt_uptime(0, b, sizeof(b));
    cr_assert_str_eq(b, "-");
    sup_fmt_uptime(999, b, sizeof(b));
    cr_assert_str_eq(b, "0s");
    sup_fmt_uptime(12000, b, sizeof(b));
    cr_assert_str_eq(b, "12s");
    sup_fmt_uptime(249000, b, sizeof(b));
    cr_assert_str_eq(b, "4m09s");
    sup_fmt_uptime((2 * 3600 + 5 * 60 + 7) * 1000ull, b, sizeof(b));
    cr_assert_str_eq(b, "2h05m");
    sup_fmt_uptime((3 * 86400 + 4 * 3600) * 1000ull, b, sizeof(b));
    cr_assert_str_eq(b, "3d04h");
}

Test(supervisor, status_table_shows_state_uptime_restarts)
{
    struct sup_view *v = malloc(sizeof(*v));
    fill_view(v);
    char *t = sup_status_render(v);
    cr_assert_not_null(t);
    cr_assert(strstr(t, "ROLE"), "%s", t);
    cr_assert(strstr(t, "RESTARTS"), "%s", t);
    char role[32], pid[16], state[16], up[16];
    unsigned restarts;
    const char *p = strstr(t, "\nscheduler");
    cr_assert_not_null(p, "%s", t);
    cr_assert_eq(sscanf(p + 1, "%31s %15s %15s %15s %u", role, pid, state, up, &restarts), 5);
    cr_assert_str_eq(pid, "11");
    cr_assert_str_eq(state, "running");
    cr_assert_str_eq(up, "10s");
    cr_assert_eq(restarts, 2);
    p = strstr(t, "\nfrontend-1");
    cr_assert_not_null(p, "%s", t);
    cr_assert_eq(sscanf(p + 1, "%31s %15s %15s %15s %u", role, pid, state, up, &restarts), 5);
    cr_assert_str_eq(pid, "-");
    cr_assert_str_eq(state, "stopped");
    cr_assert_str_eq(up, "-");
    cr_assert_eq(restarts, 5);
    p = strstr(t, "\nsupervisor");
    cr_assert_not_null(p, "%s", t);
    cr_assert_eq(sscanf(p + 1, "%31s %15s %15s %15s %u", role, pid, state, up, &restarts), 5);
    cr_assert_str_eq(up, "1m00s");
    free(t);
    free(v);
}

/* ---- first request (S10.1) ------------------------------------------------------------------ */

Test(supervisor, first_request_uses_loopback_for_a_wildcard_listener)
{
    char buf[4096];
    cr_assert_gt(sup_first_request_text("0.0.0.0:5683", "aaa.bbb.ccc", "0200000000000001", NULL,
                                        buf, sizeof(buf)),
                 0);
    /* The default gateway needs no --gateway. */
    cr_assert(strstr(buf, "  coapgw client --security none --token 'aaa.bbb.ccc' "
                          "get coap://0200000000000001/value\n"),
              "%s", buf);
    cr_assert(strstr(buf, "  coapgw client observe coap://0200000000000001/sensor --count 3\n"),
              "%s", buf);
    cr_assert(strstr(buf, "  coapgw client session close\n"), "%s", buf);

    cr_assert_gt(sup_first_request_text("[::]:6000", "t", "0200000000000001", "/opt/coapgw", buf,
                                        sizeof(buf)),
                 0);
    cr_assert(strstr(buf, "/opt/coapgw client --gateway [::1]:6000 devices\n"), "%s", buf);
    cr_assert_gt(
        sup_first_request_text("127.0.0.5:7000", "t", "0200000000000001", NULL, buf, sizeof(buf)),
        0);
    cr_assert(
        strstr(
            buf,
            "coapgw client --gateway 127.0.0.5:7000 put coap://0200000000000001/echo --data hello\n"),
        "%s", buf);
    cr_assert_eq(sup_first_request_text("not an address:x", "t", "m", NULL, buf, sizeof(buf)),
                 -EINVAL);
}

/* ---- small file helpers --------------------------------------------------------------------- */

Test(supervisor, pid_files_are_written_whole_and_removed_only_when_ours)
{
    char dir[] = "/tmp/test_supervisor.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char sub[128], path[160];
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    E(sup_mkdir_p(sub));
    E(sup_mkdir_p(sub)); /* exists: fine */
    snprintf(path, sizeof(path), "%s/frontend-0.pid", sub);
    E(sup_pidfile_write(path, 4242));
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char line[32] = "";
    cr_assert_not_null(fgets(line, sizeof(line), f));
    fclose(f);
    cr_assert_str_eq(line, "4242\n");
    sup_pidfile_remove(path, 4243); /* someone else's now: kept */
    cr_assert_eq(access(path, F_OK), 0);
    sup_pidfile_remove(path, 4242);
    cr_assert_neq(access(path, F_OK), 0);
    E(sup_pidfile_write(path, 1));
    sup_pidfile_remove(path, 0); /* 0: whatever it names */
    cr_assert_neq(access(path, F_OK), 0);
    cr_assert_eq(sup_mkdir_p(""), -EINVAL);
    snprintf(path, sizeof(path), "%s/file", dir);
    f = fopen(path, "w");
    fclose(f);
    cr_assert_eq(sup_mkdir_p(path), -ENOTDIR);
    unlink(path);
    rmdir(sub);
    snprintf(sub, sizeof(sub), "%s/a", dir);
    rmdir(sub);
    rmdir(dir);
}

/* `metrics --serve` (containers without a supervisor) is a flag of metrics only. */
Test(supervisor, args_metrics_serve)
{
    struct sup_args a;
    char err[256];
    E(parse(&a, err, sizeof(err), "coapgw", "metrics", "-c", "gw.conf", NULL));
    cr_assert_eq(a.cmd, SUP_CMD_METRICS);
    cr_assert(!a.serve);
    E(parse(&a, err, sizeof(err), "coapgw", "metrics", "--serve", "-c", "gw.conf", NULL));
    cr_assert(a.serve);
    cr_assert_str_eq(a.config, "gw.conf");
    E(parse(&a, err, sizeof(err), "coapgw", "metrics", "-s", NULL));
    cr_assert(a.serve);
    cr_assert_eq(parse(&a, err, sizeof(err), "coapgw", "status", "--serve", NULL), -EINVAL);
    cr_assert(strstr(err, "--serve does not apply"), "%s", err);
}
