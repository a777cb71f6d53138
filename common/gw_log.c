/* SPDX-License-Identifier: MIT */
/* gw_log.c - see gw_log.h. */
#include "gw_log.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static struct {
    char role[24];
    int instance;
    enum gw_log_level level;
    enum gw_log_format format;
    _Atomic uint32_t *shared;
} g_log = { "coapgw", -1, GW_LOG_INFO, GW_LOG_TEXT, NULL };

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };
static const char *const level_lower[] = { "error", "warn", "info", "debug" };
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

const char *gw_log_level_name(enum gw_log_level level)
{
    return (unsigned)level < GW_ARRAY_LEN(level_lower) ? level_lower[level] : "?";
}

int gw_log_format_parse(const char *s)
{
    if (strcasecmp(s, "text") == 0)
        return GW_LOG_TEXT;
    if (strcasecmp(s, "json") == 0)
        return GW_LOG_JSON;
    return -1;
}

void gw_log_set_format(enum gw_log_format f)
{
    g_log.format = f;
}

void gw_log_set_level(enum gw_log_level level)
{
    g_log.level = level;
}

void gw_log_attach_level(_Atomic uint32_t *word)
{
    g_log.shared = word;
}

void gw_log_detach_level(_Atomic uint32_t *word)
{
    if (g_log.shared == word)
        g_log.shared = NULL;
}

enum gw_log_level gw_log_level(void)
{
    if (g_log.shared) {
        uint32_t v = atomic_load_explicit(g_log.shared, memory_order_relaxed);
        if (v >= 1 && v <= GW_LOG_DEBUG + 1)
            return (enum gw_log_level)(v - 1);
    }
    return g_log.level;
}

bool gw_log_enabled(enum gw_log_level level)
{
    return level <= gw_log_level();
}

static void who(char *buf, size_t len)
{
    if (g_log.instance >= 0)
        snprintf(buf, len, "%s-%d", g_log.role, g_log.instance);
    else
        snprintf(buf, len, "%s", g_log.role);
}

static void timestamp(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)tv.tv_usec / 1000);
}

/* One write() per line keeps lines from different processes whole. */
static void emit(const char *line, size_t n)
{
    ssize_t w GW_UNUSED = write(STDERR_FILENO, line, n);
}

static const char *group_name(enum gw_log_group group)
{
    return (unsigned)group < GW_LOG_GROUPS ? group_names[group] : "?";
}

/* JSON: {"ts","level","role","pid","group","msg", fields...}. */
static void emit_json(enum gw_log_level level, enum gw_log_group group, const char *msg,
                      const struct gw_log_kv *kv, size_t n)
{
    char ts[64], w[40];
    timestamp(ts, sizeof(ts));
    who(w, sizeof(w));
    json_t *o = json_object();
    if (!o)
        return;
    json_object_set_new(o, "ts", json_string(ts));
    json_object_set_new(o, "level", json_string(level_lower[level]));
    json_object_set_new(o, "role", json_string(w));
    json_object_set_new(o, "pid", json_integer(getpid()));
    json_object_set_new(o, "group", json_string(group_name(group)));
    /* Invalid UTF-8 in a message (a hostile device's bytes) must not lose the line. */
    json_t *m = json_string(msg);
    json_object_set_new(o, "msg", m ? m : json_string("(message not valid UTF-8)"));
    for (size_t i = 0; i < n; i++) {
        json_t *v = kv[i].is_str ? json_string(kv[i].s ? kv[i].s : "") : json_integer(kv[i].i);
        if (v)
            json_object_set_new(o, kv[i].k, v);
    }
    char *text = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!text)
        return;
    size_t l = strlen(text);
    char *line = malloc(l + 2);
    if (line) {
        memcpy(line, text, l);
        line[l] = '\n';
        emit(line, l + 1);
        free(line);
    }
    free(text);
}

static size_t text_prefix(char *line, size_t cap, enum gw_log_level level, enum gw_log_group group)
{
    char ts[64], w[40];
    timestamp(ts, sizeof(ts));
    who(w, sizeof(w));
    int n = snprintf(line, cap, "%s %-5s %s[%d] %s: ", ts, level_names[level], w, (int)getpid(),
                     group_name(group));
    return n < 0 ? 0 : (size_t)n >= cap ? cap - 1 : (size_t)n;
}

static void text_finish(char *line, size_t n, size_t cap)
{
    if (n >= cap - 1)
        n = cap - 2;
    line[n++] = '\n';
    emit(line, n);
}

/* One line: fmt with ap, then suffix (the rate limiter's note, or ""). */
static void vwrite(enum gw_log_level level, enum gw_log_group group, const char *suffix,
                   const char *fmt, va_list ap)
{
    char line[1024];
    size_t n = g_log.format == GW_LOG_JSON ? 0 : text_prefix(line, sizeof(line), level, group);
    int m = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    if (m < 0)
        return;
    n += (size_t)m;
    if (*suffix && n < sizeof(line) - 1) {
        m = snprintf(line + n, sizeof(line) - n, "%s", suffix);
        n += m > 0 ? (size_t)m : 0;
    }
    if (g_log.format == GW_LOG_JSON) {
        line[sizeof(line) - 1] = '\0';
        emit_json(level, group, line, NULL, 0);
        return;
    }
    text_finish(line, n, sizeof(line));
}

void gw_log_write(enum gw_log_level level, enum gw_log_group group, const char *fmt, ...)
{
    if (!gw_log_enabled(level))
        return;
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, group, "", fmt, ap);
    va_end(ap);
}

void gw_log_write_always(enum gw_log_level level, enum gw_log_group group, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, group, "", fmt, ap);
    va_end(ap);
}

void gw_log_limited(struct gw_log_limit *l, uint64_t now_ms, double per_s, double burst,
                    enum gw_log_level level, enum gw_log_group group, const char *fmt, ...)
{
    /* The level first: a line nobody sees must not spend the bucket. */
    if (!gw_log_enabled(level) || !gw_log_ratelimit(l, now_ms, per_s, burst))
        return;
    char note[64];
    const char *suffix = gw_log_suppressed_note(l, note, sizeof(note));
    va_list ap;
    va_start(ap, fmt);
    vwrite(level, group, suffix, fmt, ap);
    va_end(ap);
}

/* Text values are bare when they hold no blank, '"' or '=', else quoted. */
static size_t put_value(char *p, size_t room, const char *s)
{
    bool quote = !*s || strpbrk(s, " \t\"=") != NULL;
    size_t n = 0;
    if (quote && n + 1 < room)
        p[n++] = '"';
    for (; *s && n + 2 < room; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            p[n++] = '\\';
        p[n++] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (quote && n + 1 < room)
        p[n++] = '"';
    return n;
}

void gw_log_event(enum gw_log_level level, enum gw_log_group group, const char *msg,
                  const struct gw_log_kv *kv, size_t n)
{
    if (!gw_log_enabled(level))
        return;
    if (g_log.format == GW_LOG_JSON) {
        emit_json(level, group, msg, kv, n);
        return;
    }
    char line[1024];
    size_t l = text_prefix(line, sizeof(line), level, group);
    int m = snprintf(line + l, sizeof(line) - l, "%s", msg);
    l += m > 0 ? (size_t)m : 0;
    for (size_t i = 0; i < n && l + 4 < sizeof(line); i++) {
        m = snprintf(line + l, sizeof(line) - l, " %s=", kv[i].k);
        if (m < 0 || (size_t)m >= sizeof(line) - l)
            break;
        l += (size_t)m;
        if (kv[i].is_str) {
            l += put_value(line + l, sizeof(line) - l, kv[i].s ? kv[i].s : "");
        } else {
            m = snprintf(line + l, sizeof(line) - l, "%lld", (long long)kv[i].i);
            l += m > 0 ? (size_t)m : 0;
        }
    }
    if (l >= sizeof(line))
        l = sizeof(line) - 1;
    text_finish(line, l, sizeof(line));
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

const char *gw_log_suppressed_note(struct gw_log_limit *l, char *buf, size_t len)
{
    uint64_t n = l->suppressed;
    l->suppressed = 0;
    if (!n || !len)
        return "";
    snprintf(buf, len, " (%llu similar line%s suppressed)", (unsigned long long)n,
             n == 1 ? "" : "s");
    return buf;
}
