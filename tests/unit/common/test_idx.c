/* SPDX-License-Identifier: MIT */
/* test_idx.c - the index of 4-byte record numbers (common/gw_idx.c): every
 * record stays findable through random adds and deletions from the middle
 * of probe runs (checked against a plain array), records sharing a key are
 * all walked, and the index costs at most 16 bytes per record. */
#include "gw_idx.h"
#include "gw_rand.h"

#include <criterion/criterion.h>
#include <stdlib.h>

enum { NREC = 20000 };

/* Whether record v is found under its key by a walk of that key's records. */
static bool walk_finds(const struct gw_idx *x, const uint64_t *keys, uint32_t v)
{
    uint32_t pos, n = 0;
    for (uint32_t r = gw_idx_first(x, keys, keys[v], &pos); r != GW_IDX_END;
         r = gw_idx_more(x, keys, keys[v], &pos)) {
        cr_assert_eq(keys[r], keys[v], "a walk yields only its key's records");
        if (r == v)
            return true;
        cr_assert_lt(++n, NREC);
    }
    return false;
}

Test(idx, random_adds_and_deletions_match_a_plain_array)
{
    static uint64_t keys[NREC];
    static bool in[NREC];
    struct gw_idx x;
    cr_assert_eq(gw_idx_init(&x, 4), 0);
    struct gw_rand r;
    gw_rand_seed(&r, 13);
    /* Keys from a small range, so many records share one and runs are long
     * enough for deletions to shift across other keys' records. */
    for (uint32_t v = 0; v < NREC; v++)
        keys[v] = 1 + gw_rand_u32(&r) % (NREC / 4);
    uint32_t held = 0;
    for (uint32_t step = 0; step < 200000; step++) {
        uint32_t v = gw_rand_u32(&r) % NREC;
        if (!in[v]) {
            cr_assert_eq(gw_idx_add(&x, keys, v), 0);
            in[v] = true;
            held++;
        } else if (gw_rand_u32(&r) % 3 == 0) {
            cr_assert(gw_idx_del(&x, keys, v), "record %u indexed", v);
            in[v] = false;
            held--;
        }
        if (step % 20000 == 0)
            for (uint32_t w = 0; w < NREC; w++)
                cr_assert_eq(walk_finds(&x, keys, w), in[w], "step %u record %u", step, w);
    }
    cr_assert_eq(x.n, held);
    for (uint32_t w = 0; w < NREC; w++) {
        cr_assert_eq(walk_finds(&x, keys, w), in[w], "record %u", w);
        if (!in[w])
            cr_assert_not(gw_idx_del(&x, keys, w), "record %u is not indexed", w);
    }
    /* Load at least 3/8 after growth: at most about 11 bytes a record. */
    cr_assert_leq((size_t)(x.mask + 1) * sizeof(*x.slot), 11u * NREC);
    gw_idx_deinit(&x);
}

Test(idx, every_record_of_a_shared_key_is_walked_and_others_are_not)
{
    static uint64_t keys[64];
    struct gw_idx x;
    cr_assert_eq(gw_idx_init(&x, 0), 0);
    for (uint32_t v = 0; v < 64; v++) {
        keys[v] = v % 2 ? 7 : (uint64_t)v << 40; /* 32 records under key 7 */
        cr_assert_eq(gw_idx_add(&x, keys, v), 0);
    }
    uint32_t pos, seen = 0;
    for (uint32_t v = gw_idx_first(&x, keys, 7, &pos); v != GW_IDX_END;
         v = gw_idx_more(&x, keys, 7, &pos)) {
        cr_assert(v % 2, "record %u is not under key 7", v);
        seen++;
    }
    cr_assert_eq(seen, 32);
    cr_assert_eq(gw_idx_first(&x, keys, 8, &pos), GW_IDX_END);
    /* Deleting one of the shared key's records leaves the other 31. */
    cr_assert(gw_idx_del(&x, keys, 9));
    seen = 0;
    for (uint32_t v = gw_idx_first(&x, keys, 7, &pos); v != GW_IDX_END;
         v = gw_idx_more(&x, keys, 7, &pos)) {
        cr_assert_neq(v, 9);
        seen++;
    }
    cr_assert_eq(seen, 31);
    gw_idx_deinit(&x);
    cr_assert_eq(gw_idx_first(&x, keys, 7, &pos), GW_IDX_END, "a freed index finds nothing");
}

/* Issue 13 item 4: an index holds three records per four slots before it
 * doubles (5 000 observers: 8 192 slots, not 16 384), and room asked for at
 * init is at that load too; every record stays findable. */
Test(idx, fills_to_three_quarters_before_doubling)
{
    static uint64_t keys[64];
    struct gw_idx x;
    cr_assert_eq(gw_idx_init(&x, 12), 0);
    cr_assert_eq(x.mask + 1, 16u, "room for 12 records in 16 slots");
    for (uint32_t v = 0; v < 13; v++)
        keys[v] = 0x9e3779b97f4a7c15ull * (v + 1);
    for (uint32_t v = 0; v < 12; v++)
        cr_assert_eq(gw_idx_add(&x, keys, v), 0);
    cr_assert_eq(x.mask + 1, 16u, "12 records in 16 slots: not grown");
    uint32_t pos;
    for (uint32_t v = 0; v < 12; v++)
        cr_assert_eq(gw_idx_first(&x, keys, keys[v], &pos), v);
    cr_assert_eq(gw_idx_add(&x, keys, 12), 0);
    cr_assert_eq(x.mask + 1, 32u, "the 13th doubles");
    for (uint32_t v = 0; v < 13; v++)
        cr_assert_eq(gw_idx_first(&x, keys, keys[v], &pos), v);
    gw_idx_deinit(&x);
}
