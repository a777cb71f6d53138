/* SPDX-License-Identifier: MIT */
/* gw_log.h - the log sink, the one global in coapgw.
 *
 * Every line is prefixed with time, level, role[instance] and pid so that
 * interleaved logs of several processes stay readable (SPEC S10.2). Never
 * call these from a signal handler. Hot paths use gw_log_ratelimit(). */
#ifndef GW_LOG_H
#define GW_LOG_H

#include "gw_defs.h"

#include <stdbool.h>
#include <stdint.h>

enum gw_log_level { GW_LOG_ERR = 0, GW_LOG_WARN, GW_LOG_INFO, GW_LOG_DEBUG };
enum gw_log_group { GW_LOG_SYS = 0, GW_LOG_RING, GW_LOG_COAP, GW_LOG_AUTH, GW_LOG_STORE, GW_LOG_MESH,
                    GW_LOG_GROUPS };

/* Sets the role name ("frontend", "scheduler", ...) and instance printed on every line. */
void gw_log_init(const char *role, int instance, enum gw_log_level level);
/* Parses "err", "warn", "info", "debug"; returns -1 when unknown. */
int gw_log_level_parse(const char *s);
bool gw_log_enabled(enum gw_log_level level);
void gw_log_write(enum gw_log_level level, enum gw_log_group group, const char *fmt, ...) GW_PRINTF(3, 4);

/* A token bucket for log lines: at most `burst` lines, refilled at `per_s`
 * lines a second. Returns true when a line may be written; counts the
 * suppressed ones in *suppressed so the next line can report them. */
struct gw_log_limit { uint64_t last_ms; double tokens; uint64_t suppressed; };
bool gw_log_ratelimit(struct gw_log_limit *l, uint64_t now_ms, double per_s, double burst);

#define gw_log_err(g, ...) gw_log_write(GW_LOG_ERR, g, __VA_ARGS__)
#define gw_log_warn(g, ...) gw_log_write(GW_LOG_WARN, g, __VA_ARGS__)
#define gw_log_info(g, ...) gw_log_write(GW_LOG_INFO, g, __VA_ARGS__)
#define gw_log_debug(g, ...) \
    do { if (gw_log_enabled(GW_LOG_DEBUG)) gw_log_write(GW_LOG_DEBUG, g, __VA_ARGS__); } while (0)

#endif
