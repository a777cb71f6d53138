/* SPDX-License-Identifier: MIT */
/* gw_rand.c - seeding of the non-cryptographic generator (see gw_rand.h). */
#include "gw_rand.h"

#include <sys/random.h>
#include <time.h>
#include <unistd.h>

void gw_rand_seed(struct gw_rand *r, uint64_t seed)
{
    r->s = seed | 1;
}

void gw_rand_seed_random(struct gw_rand *r)
{
    uint64_t seed;
    if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        seed ^= (uint64_t)getpid() << 32;
    }
    gw_rand_seed(r, seed);
}
