/* SPDX-License-Identifier: MIT */
/* test_clock.c - the clock read once per loop turn (common/gw_clock.c,
 * issue 13): one reading until it is expired, then a new one, never ahead
 * of the real clock and in the same units as gw_mono_ms/gw_mono_us. */
#include "gw_clock.h"

#include <criterion/criterion.h>

/* Spins (bounded) until the real clock has moved past `us`. */
static uint64_t after(uint64_t us)
{
    uint64_t now = gw_mono_us();
    for (long i = 0; i < 100000000L && now <= us; i++)
        now = gw_mono_us();
    cr_assert_gt(now, us, "the monotonic clock moved");
    return now;
}

Test(clock, turn_clock_keeps_one_reading_until_expired)
{
    struct gw_turn_clock t = { 0 };
    uint64_t before = gw_mono_us();
    uint64_t a = gw_turn_clock_us(&t);
    cr_assert_geq(a, before, "a fresh reading is the real clock's, not older");
    uint64_t real = after(a + 1000);
    cr_assert_eq(gw_turn_clock_us(&t), a, "the same reading within a turn");
    cr_assert_eq(gw_turn_clock_ms(&t), a / 1000);
    cr_assert_lt(gw_turn_clock_us(&t), real, "behind the real clock, never ahead");
    gw_turn_clock_expire(&t);
    uint64_t b = gw_turn_clock_us(&t);
    cr_assert_geq(b, real, "after expiry the clock is read again");
    cr_assert_leq(b, gw_mono_us());
}

/* The struct gw_clock form, as the scheduler's core reads it: now_ms is the
 * turn reading in milliseconds (what gw_mono_ms would have said at that
 * instant), now_us the same reading, wall the real wall clock. */
Test(clock, turn_clock_as_gw_clock)
{
    struct gw_turn_clock t = { 0 };
    struct gw_clock c = gw_clock_turn(&t);
    uint64_t ms0 = gw_mono_ms();
    uint64_t us = gw_now_us(&c);
    uint64_t ms = gw_now_ms(&c);
    cr_assert_eq(ms, us / 1000);
    cr_assert_geq(ms, ms0);
    cr_assert_leq(ms, gw_mono_ms());
    after(us + 2000);
    cr_assert_eq(gw_now_ms(&c), ms, "held until expired");
    gw_turn_clock_expire(&t);
    cr_assert_geq(gw_now_ms(&c), ms + 2);
    int64_t w = gw_now_wall(&c);
    cr_assert(w >= gw_wall_s() - 1 && w <= gw_wall_s());
}

/* The fake clock's microseconds follow its milliseconds (unit tests). */
Test(clock, fake_clock_us)
{
    struct gw_fake_clock f = { .ms = 1234, .wall = 5 };
    struct gw_clock c = gw_clock_fake(&f);
    cr_assert_eq(gw_now_us(&c), 1234000u);
    f.ms = 1235;
    cr_assert_eq(gw_now_us(&c), 1235000u);
}
