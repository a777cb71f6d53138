/* SPDX-License-Identifier: MIT */
/* gw_log.h - the log sink, the one global in coapgw.
 *
 * Every line carries time, level, role[-index], pid and group so that
 * interleaved logs of several processes stay readable (SPEC S10.2). Two
 * formats (log_format): `text`, one human line, and `json`, one JSON object
 * a line with the same fields (built with jansson) for log shippers.
 * Events with named fields (gw_log_event) print them as key=value in text
 * and as members in JSON; the per-request lines use them, joined by `req`.
 *
 * The level can change while the process runs: gw_log_attach_level() points
 * the sink at a word in the shared segment that `coapgw loglevel` and the
 * supervisor's SIGUSR2 write, so every process of an instance follows it.
 * Never call these from a signal handler. Hot paths use gw_log_ratelimit(). */
#ifndef GW_LOG_H
#define GW_LOG_H

#include "gw_defs.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gw_log_level { GW_LOG_ERR = 0, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };
enum gw_log_group {
    GW_LOG_SYS = 0,
    GW_LOG_RING,
    GW_LOG_COAP,
    GW_LOG_AUTH,
    GW_LOG_STORE,
    GW_LOG_MESH,
    GW_LOG_GROUPS
};
enum gw_log_format { GW_LOG_TEXT = 0, GW_LOG_JSON };

/* Sets the role name ("frontend", "scheduler", ...) and index printed on every line. */
void gw_log_init(const char *role, int instance, enum gw_log_level level);
/* Parses "error"/"err", "warn"/"warning", "info", "debug"; returns -1 when unknown. */
int gw_log_level_parse(const char *s);
/* "error", "warn", "info", "debug". */
const char *gw_log_level_name(enum gw_log_level level);
/* Parses "text" or "json"; returns -1 when unknown. */
int gw_log_format_parse(const char *s);
void gw_log_set_format(enum gw_log_format f);
void gw_log_set_level(enum gw_log_level level);
/* Follows a shared level word: 0 = use the process's own level, else level + 1.
 * NULL detaches. The word must outlive the attachment. */
void gw_log_attach_level(_Atomic uint32_t *word);
/* Detaches when attached to word (before it is unmapped). */
void gw_log_detach_level(_Atomic uint32_t *word);
/* The level in force (the shared word when attached and set). */
enum gw_log_level gw_log_level(void);
bool gw_log_enabled(enum gw_log_level level);
void gw_log_write(enum gw_log_level level, enum gw_log_group group, const char *fmt, ...)
    GW_PRINTF(3, 4);
/* Writes whatever the level in force (a notice that the level changed). */
void gw_log_write_always(enum gw_log_level level, enum gw_log_group group, const char *fmt, ...)
    GW_PRINTF(3, 4);

/* One field of an event: a string (s != NULL) or an integer. */
struct gw_log_kv {
    const char *k;
    const char *s; /* with is_str; NULL prints as "" */
    int64_t i;
    bool is_str;
};
#define GW_KV_S(key, str) ((struct gw_log_kv){ (key), (str), 0, true })
#define GW_KV_I(key, num) ((struct gw_log_kv){ (key), NULL, (int64_t)(num), false })
/* An event: text `msg k=v k=v` (values with blanks or quotes are quoted),
 * JSON members "msg" plus one per field. */
void gw_log_event(enum gw_log_level level, enum gw_log_group group, const char *msg,
                  const struct gw_log_kv *kv, size_t n);

/* A token bucket for log lines: at most `burst` lines, refilled at `per_s`
 * lines a second. Returns true when a line may be written; counts the
 * suppressed ones in *suppressed so the next line can report them. */
struct gw_log_limit {
    uint64_t last_ms;
    double tokens;
    uint64_t suppressed;
};
bool gw_log_ratelimit(struct gw_log_limit *l, uint64_t now_ms, double per_s, double burst);
/* " (N similar lines suppressed)" when N > 0, else ""; resets the count.
 * buf holds the text (at least 48 bytes). */
const char *gw_log_suppressed_note(struct gw_log_limit *l, char *buf, size_t len);

/* A line through limiter l (gw_log_ratelimit), with the note of the lines
 * it suppressed since the last one appended: for lines a sender can cause
 * at will (hot paths, STYLE). Nothing when the level is off. */
void gw_log_limited(struct gw_log_limit *l, uint64_t now_ms, double per_s, double burst,
                    enum gw_log_level level, enum gw_log_group group, const char *fmt, ...)
    GW_PRINTF(7, 8);

#define gw_log_err(g, ...) gw_log_write(GW_LOG_ERR, g, __VA_ARGS__)
#define gw_log_warn(g, ...) gw_log_write(GW_LOG_WARN, g, __VA_ARGS__)
#define gw_log_info(g, ...) gw_log_write(GW_LOG_INFO, g, __VA_ARGS__)
#define gw_log_debug(g, ...)                                                                       \
    do {                                                                                           \
        if (gw_log_enabled(GW_LOG_DEBUG))                                                          \
            gw_log_write(GW_LOG_DEBUG, g, __VA_ARGS__);                                            \
    } while (0)

#endif
