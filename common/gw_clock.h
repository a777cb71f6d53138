/* SPDX-License-Identifier: MIT */
/* gw_clock.h - time sources. Logic takes a struct gw_clock so that tests
 * can drive it with a fake clock; CLOCK_MONOTONIC is system-wide, so a
 * deadline written to shared memory by one process means the same in the
 * process that restarts in its place. */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdint.h>

struct gw_clock {
    uint64_t (*now_ms)(void *ctx); /* monotonic milliseconds */
    int64_t (*wall_s)(void *ctx);  /* unix seconds (token expiry) */
    void *ctx;
};

uint64_t gw_mono_ms(void);
uint64_t gw_mono_us(void);
int64_t gw_wall_s(void);
/* The real clock. */
extern const struct gw_clock gw_clock_real;

/* A fake clock for tests: ctx points at struct gw_fake_clock. */
struct gw_fake_clock {
    uint64_t ms;
    int64_t wall;
};
struct gw_clock gw_clock_fake(struct gw_fake_clock *f);

static inline uint64_t gw_now_ms(const struct gw_clock *c)
{
    return c->now_ms(c->ctx);
}
static inline int64_t gw_now_wall(const struct gw_clock *c)
{
    return c->wall_s(c->ctx);
}

#endif
