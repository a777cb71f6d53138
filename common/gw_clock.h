/* SPDX-License-Identifier: MIT */
/* gw_clock.h - time sources. Logic takes a struct gw_clock so that tests
 * can drive it with a fake clock; CLOCK_MONOTONIC is system-wide, so a
 * deadline written to shared memory by one process means the same in the
 * process that restarts in its place. */
#ifndef GW_CLOCK_H
#define GW_CLOCK_H

#include <stdbool.h>
#include <stdint.h>

struct gw_clock {
    uint64_t (*now_ms)(void *ctx); /* monotonic milliseconds */
    int64_t (*wall_s)(void *ctx);  /* unix seconds (token expiry) */
    void *ctx;
    uint64_t (*now_us)(void *ctx); /* monotonic microseconds, the same clock as now_ms */
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

/* A clock read at most once per event loop turn (issue 13: the scheduler
 * read CLOCK_MONOTONIC about eight times per proxied request). The first
 * use after gw_turn_clock_expire reads the real clock; later uses return
 * that reading until the next expiry. The owner expires it at the end of
 * every loop turn (gw_proc's on_turn) and wherever one callback may run for
 * long (each round of draining rings), so "now" lags the real clock by at
 * most the time since the last expiry: a deadline computed from it may come
 * that much early, never later, and a deadline is found due at a reading
 * taken after it passed, never before. */
struct gw_turn_clock {
    uint64_t us;
    bool fresh;
};
uint64_t gw_turn_clock_us(struct gw_turn_clock *t);
static inline void gw_turn_clock_expire(struct gw_turn_clock *t)
{
    t->fresh = false;
}
static inline uint64_t gw_turn_clock_ms(struct gw_turn_clock *t)
{
    return gw_turn_clock_us(t) / 1000u;
}
/* A struct gw_clock over t (wall_s is the real wall clock). */
struct gw_clock gw_clock_turn(struct gw_turn_clock *t);

static inline uint64_t gw_now_ms(const struct gw_clock *c)
{
    return c->now_ms(c->ctx);
}
static inline uint64_t gw_now_us(const struct gw_clock *c)
{
    return c->now_us(c->ctx);
}
static inline int64_t gw_now_wall(const struct gw_clock *c)
{
    return c->wall_s(c->ctx);
}

#endif
