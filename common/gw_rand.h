/* SPDX-License-Identifier: MIT */
/* gw_rand.h - a small non-cryptographic generator (xorshift64*, Vigna 2016)
 * for retransmission jitter, first MIDs and the simulator's latencies and
 * losses.
 *
 * Not for anything an attacker must not guess: device tokens and keys come
 * from getrandom(2) directly (sch_core's token pool, gw_hash_key_new). Kept
 * here rather than taken from a library because it is five lines, inline on
 * the hot path, and its sequence from a given seed must stay fixed so a
 * seeded simulator run (meshsim --seed) replays. One state per owner (the
 * frontend's core, the scheduler, the simulator): no global. */
#ifndef GW_RAND_H
#define GW_RAND_H

#include "gw_defs.h"

struct gw_rand {
    uint64_t s; /* never 0: xorshift stays at 0 once there */
};

/* A fixed seed, for replayable runs. */
void gw_rand_seed(struct gw_rand *r, uint64_t seed);
/* A seed from getrandom(2), falling back to the clock and pid if the
 * kernel has no entropy to give yet (no blocking at boot). */
void gw_rand_seed_random(struct gw_rand *r);

static inline uint64_t gw_rand_next(struct gw_rand *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545f4914f6cdd1dull;
}

/* The high half: the low bits of xorshift64* are its weakest. */
static inline uint32_t gw_rand_u32(struct gw_rand *r)
{
    return (uint32_t)(gw_rand_next(r) >> 32);
}

/* Uniform in [0, 1), from the top 53 bits. */
static inline double gw_rand_unit(struct gw_rand *r)
{
    return (double)(gw_rand_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

#endif
