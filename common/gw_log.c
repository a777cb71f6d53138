/* SPDX-License-Identifier: MIT */
/* gw_log.c - the log sink: level filter, role/pid prefix, rate limiting of noisy lines (see
 * gw_log.h). */
#include "gw_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct {
    char role[24];
    int instance;
    enum gw_log_level level;
} g_log = { "coapgw", -1, GW_LOG_INFO };

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
static const char *const group_names[] = { "sys", "ring", "coap", "auth", "store", "mesh" };

void gw_log_init(const char *role, int instance, enum gw_log_level level)
{
    snprintf(g_log.role, sizeof(g_log.role), "%s", role);
    g_log.instance = instance;
    g_log.level = level;
}

int gw_log_level_parse(const char *s)
{
    for (size_t i = 0; i < GW_ARRAY_LEN(level_names); i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return (int)i;
    if (strcasecmp(s, "err") == 0)
        return GW_LOG_ERR;
    if (strcasecmp(s, "warning") == 0)
        return GW_LOG_WARN;
    return -1;
}

bool gw_log_enabled(enum gw_log_level level)
{
    return level <= g_log.level;
}

void gw_log_write(enum gw_log_level level, enum gw_log_group group, const char *fmt, ...)
{
    if (!gw_log_enabled(level))
        return;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    char who[40];
    if (g_log.instance >= 0)
        snprintf(who, sizeof(who), "%s-%d", g_log.role, g_log.instance);
    else
        snprintf(who, sizeof(who), "%s", g_log.role);
    int n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s[%d] %s: ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     (long)tv.tv_usec / 1000, level_names[level], who, (int)getpid(),
                     group < GW_LOG_GROUPS ? group_names[group] : "?");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(line) - 1)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    /* One write() per line keeps lines from different processes whole. */
    ssize_t w GW_UNUSED = write(STDERR_FILENO, line, (size_t)n);
}

bool gw_log_ratelimit(struct gw_log_limit *l, uint64_t now_ms, double per_s, double burst)
{
    if (l->last_ms == 0) {
        l->tokens = burst;
    } else if (now_ms > l->last_ms) {
        l->tokens += (double)(now_ms - l->last_ms) * per_s / 1000.0;
        if (l->tokens > burst)
            l->tokens = burst;
    }
    l->last_ms = now_ms;
    if (l->tokens >= 1.0) {
        l->tokens -= 1.0;
        return true;
    }
    l->suppressed++;
    return false;
}
