/* SPDX-License-Identifier: MIT */
/* gw_clock.c - the real monotonic and wall clocks, and the fake clock tests drive (see
 * gw_clock.h). */
#include "gw_clock.h"

#include <time.h>

uint64_t gw_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t gw_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int64_t gw_wall_s(void)
{
    return (int64_t)time(NULL);
}

static uint64_t real_ms(void *ctx)
{
    (void)ctx;
    return gw_mono_ms();
}
static int64_t real_wall(void *ctx)
{
    (void)ctx;
    return gw_wall_s();
}
static uint64_t real_us(void *ctx)
{
    (void)ctx;
    return gw_mono_us();
}
const struct gw_clock gw_clock_real = { real_ms, real_wall, 0, real_us };

uint64_t gw_turn_clock_us(struct gw_turn_clock *t)
{
    if (!t->fresh) {
        t->us = gw_mono_us();
        t->fresh = true;
    }
    return t->us;
}

static uint64_t turn_ms(void *ctx)
{
    return gw_turn_clock_ms(ctx);
}
static uint64_t turn_us(void *ctx)
{
    return gw_turn_clock_us(ctx);
}
struct gw_clock gw_clock_turn(struct gw_turn_clock *t)
{
    struct gw_clock c = { turn_ms, real_wall, t, turn_us };
    return c;
}

static uint64_t fake_ms(void *ctx)
{
    return ((struct gw_fake_clock *)ctx)->ms;
}
static int64_t fake_wall(void *ctx)
{
    return ((struct gw_fake_clock *)ctx)->wall;
}

static uint64_t fake_us(void *ctx)
{
    return ((struct gw_fake_clock *)ctx)->ms * 1000u;
}

struct gw_clock gw_clock_fake(struct gw_fake_clock *f)
{
    struct gw_clock c = { fake_ms, fake_wall, f, fake_us };
    return c;
}
