/* SPDX-License-Identifier: MIT */
/* test_log.c - the log sink (common/gw_log.c): text and JSON lines with the
 * same fields, the run-time level through a shared word, the rate limiter's
 * note (issue 15; S10.2). stderr is captured through a temporary file. */
#include "gw_log.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int saved = -1;
static FILE *cap;

static void capture_start(void)
{
    cap = tmpfile();
    cr_assert_not_null(cap);
    saved = dup(STDERR_FILENO);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fileno(cap), STDERR_FILENO), 0);
}

/* Returns what was written since capture_start (malloc'd). */
static char *capture_end(void)
{
    cr_assert_geq(dup2(saved, STDERR_FILENO), 0);
    close(saved);
    long n = ftell(cap);
    cr_assert_geq(n, 0);
    char *buf = calloc(1, (size_t)n + 1);
    rewind(cap);
    cr_assert_eq(fread(buf, 1, (size_t)n, cap), (size_t)n);
    fclose(cap);
    return buf;
}

static void setup(void)
{
    gw_log_init("frontend", 3, GW_LOG_INFO);
    gw_log_set_format(GW_LOG_TEXT);
    gw_log_attach_level(NULL);
}

TestSuite(log, .init = setup);

Test(log, text_event_fields_are_key_value_and_quoted_when_needed)
{
    capture_start();
    struct gw_log_kv kv[] = { GW_KV_S("req", "00000000000000a1"), GW_KV_S("path", "/a b"),
                              GW_KV_S("code", "2.05"), GW_KV_I("duration_us", 1234),
                              GW_KV_S("empty", NULL) };
    gw_log_event(GW_LOG_INFO, GW_LOG_COAP, "client request", kv, 5);
    char *out = capture_end();
    cr_assert_not_null(strstr(out, " INFO  frontend-3["), "%s", out);
    cr_assert_not_null(strstr(out,
                              "] coap: client request req=00000000000000a1 path=\"/a b\" code=2.05 "
                              "duration_us=1234 empty=\"\"\n"),
                       "%s", out);
    cr_assert_eq(strchr(out, '\n'), out + strlen(out) - 1, "one line: %s", out);
    free(out);
}

Test(log, json_line_carries_the_same_fields)
{
    gw_log_set_format(GW_LOG_JSON);
    capture_start();
    struct gw_log_kv kv[] = { GW_KV_S("mac", "0200000000000003"), GW_KV_S("path", "/value\"x"),
                              GW_KV_I("duration_us", 450000000) };
    gw_log_event(GW_LOG_WARN, GW_LOG_MESH, "mesh exchange", kv, 3);
    gw_log_write(GW_LOG_ERR, GW_LOG_SYS, "plain %s", "line");
    char *out = capture_end();
    char *second = strchr(out, '\n');
    cr_assert_not_null(second);
    *second++ = '\0';
    json_error_t e;
    json_t *o = json_loads(out, 0, &e);
    cr_assert_not_null(o, "%s: %s", out, e.text);
    cr_assert_str_eq(json_string_value(json_object_get(o, "level")), "warn");
    cr_assert_str_eq(json_string_value(json_object_get(o, "role")), "frontend-3");
    cr_assert_str_eq(json_string_value(json_object_get(o, "group")), "mesh");
    cr_assert_str_eq(json_string_value(json_object_get(o, "msg")), "mesh exchange");
    cr_assert_str_eq(json_string_value(json_object_get(o, "path")), "/value\"x");
    cr_assert_eq(json_integer_value(json_object_get(o, "duration_us")), 450000000);
    cr_assert_eq(json_integer_value(json_object_get(o, "pid")), getpid());
    cr_assert(json_is_string(json_object_get(o, "ts")));
    json_decref(o);
    o = json_loads(second, 0, &e);
    cr_assert_not_null(o, "%s: %s", second, e.text);
    cr_assert_str_eq(json_string_value(json_object_get(o, "msg")), "plain line");
    cr_assert_str_eq(json_string_value(json_object_get(o, "level")), "error");
    json_decref(o);
    free(out);
}

/* `coapgw loglevel` and SIGUSR2 write level + 1 to a word in the shared
 * segment; 0 means each process's own log_level. */
Test(log, shared_word_changes_the_level_at_run_time)
{
    _Atomic uint32_t word = 0;
    gw_log_attach_level(&word);
    cr_assert_not(gw_log_enabled(GW_LOG_DEBUG));
    cr_assert_eq(gw_log_level(), GW_LOG_INFO);
    atomic_store(&word, GW_LOG_DEBUG + 1);
    cr_assert(gw_log_enabled(GW_LOG_DEBUG));
    atomic_store(&word, GW_LOG_ERR + 1);
    cr_assert_not(gw_log_enabled(GW_LOG_WARN));
    capture_start();
    gw_log_warn(GW_LOG_SYS, "hidden");
    gw_log_write_always(GW_LOG_INFO, GW_LOG_SYS, "level now %s", gw_log_level_name(gw_log_level()));
    char *out = capture_end();
    cr_assert_null(strstr(out, "hidden"));
    cr_assert_not_null(strstr(out, "level now error"), "%s", out);
    free(out);
    atomic_store(&word, 99); /* garbage: the process's own level */
    cr_assert_eq(gw_log_level(), GW_LOG_INFO);
    gw_log_detach_level(&word);
    atomic_store(&word, GW_LOG_DEBUG + 1);
    cr_assert_not(gw_log_enabled(GW_LOG_DEBUG), "detached");
}

/* Issue 15: "(0 similar lines suppressed)" is never written. */
Test(log, suppressed_note_only_when_lines_were_suppressed)
{
    struct gw_log_limit l = { 0 };
    char buf[64];
    cr_assert(gw_log_ratelimit(&l, 1000, 1.0, 2.0));
    cr_assert_str_eq(gw_log_suppressed_note(&l, buf, sizeof(buf)), "");
    cr_assert(gw_log_ratelimit(&l, 1000, 1.0, 2.0));
    cr_assert_not(gw_log_ratelimit(&l, 1000, 1.0, 2.0));
    cr_assert_not(gw_log_ratelimit(&l, 1000, 1.0, 2.0));
    cr_assert(gw_log_ratelimit(&l, 2000, 1.0, 2.0));
    cr_assert_str_eq(gw_log_suppressed_note(&l, buf, sizeof(buf)), " (2 similar lines suppressed)");
    cr_assert_str_eq(gw_log_suppressed_note(&l, buf, sizeof(buf)), "", "the count starts again");
    cr_assert_not(gw_log_ratelimit(&l, 2000, 1.0, 2.0));
    cr_assert_str_eq(gw_log_suppressed_note(&l, buf, sizeof(buf)), " (1 similar line suppressed)");
}

Test(log, level_and_format_names)
{
    cr_assert_eq(gw_log_level_parse("debug"), GW_LOG_DEBUG);
    cr_assert_eq(gw_log_level_parse("ERROR"), GW_LOG_ERR);
    cr_assert_eq(gw_log_level_parse("err"), GW_LOG_ERR);
    cr_assert_eq(gw_log_level_parse("warning"), GW_LOG_WARN);
    cr_assert_eq(gw_log_level_parse("loud"), -1);
    cr_assert_str_eq(gw_log_level_name(GW_LOG_WARN), "warn");
    cr_assert_eq(gw_log_format_parse("json"), GW_LOG_JSON);
    cr_assert_eq(gw_log_format_parse("TEXT"), GW_LOG_TEXT);
    cr_assert_eq(gw_log_format_parse("xml"), -1);
}

/* gw_log_limited writes at most the burst, then one line with the count of
 * those it dropped; a level that is off spends nothing. */
Test(log, limited_lines_carry_the_suppressed_count)
{
    struct gw_log_limit l = { 0 };
    capture_start();
    for (int i = 0; i < 5; i++)
        gw_log_limited(&l, 1000, 1.0, 2.0, GW_LOG_WARN, GW_LOG_MESH, "bad frame %d", i);
    gw_log_limited(&l, 3000, 1.0, 2.0, GW_LOG_WARN, GW_LOG_MESH, "bad frame %d", 5);
    for (int i = 0; i < 10; i++) /* debug is off at INFO: no tokens spent */
        gw_log_limited(&l, 3000, 1.0, 2.0, GW_LOG_DEBUG, GW_LOG_MESH, "noise");
    gw_log_limited(&l, 3000, 1.0, 2.0, GW_LOG_WARN, GW_LOG_MESH, "bad frame %d", 6);
    char *out = capture_end();
    cr_assert_not_null(strstr(out, "bad frame 0\n"), "%s", out);
    cr_assert_not_null(strstr(out, "bad frame 1\n"), "%s", out);
    cr_assert_null(strstr(out, "bad frame 2"), "over the burst: %s", out);
    cr_assert_null(strstr(out, "bad frame 4"), "%s", out);
    cr_assert_not_null(strstr(out, "bad frame 5 (3 similar lines suppressed)\n"), "%s", out);
    cr_assert_not_null(strstr(out, "bad frame 6\n"), "the debug lines spent nothing: %s", out);
    cr_assert_null(strstr(out, "noise"), "%s", out);
    free(out);
}
