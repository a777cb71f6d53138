/* SPDX-License-Identifier: MIT */
/* test_map.c - the one hash table (common/gw_map.c): growth keeps every key,
 * deletion shifts a probe run back (no tombstone, lookups past the hole
 * still succeed, wrapping at the table's end included), colliding keys and
 * colliding hashes of the multimap form stay apart, a fixed-capacity table
 * refuses the key beyond its bound without allocating, and a long random
 * run agrees with a plain array at every step. */
#include "gw_error.h"
#include "gw_map.h"
#include "gw_rand.h"

#include <criterion/criterion.h>

/* Every key is reachable from its home slot without crossing an empty one
 * (what backward-shift deletion must preserve), and n is the slot count. */
static void check_invariant(const struct gw_map *m)
{
    uint32_t held = 0;
    for (uint32_t i = 0; i <= m->mask; i++) {
        if (!m->slot[i].key)
            continue;
        held++;
        for (uint32_t j = gw_map_home(m, m->slot[i].key); j != i; j = (j + 1) & m->mask)
            cr_assert_neq(m->slot[j].key, 0, "empty slot %u between the home and slot %u", j, i);
    }
    cr_assert_eq(held, m->n);
}

/* n distinct keys (from `start`) whose home slot is `home` in m. */
static void keys_at(const struct gw_map *m, uint32_t home, uint64_t start, uint64_t *out, int n)
{
    int got = 0;
    for (uint64_t k = start; got < n && k < start + 100000000ull; k++)
        if (gw_map_home(m, k) == home)
            out[got++] = k;
    cr_assert_eq(got, n, "no %d keys found for slot %u", n, home);
}

Test(map, put_get_replace_del)
{
    struct gw_map m;
    cr_assert_eq(gw_map_init(&m, 4, GW_MAP_MAX), 0);
    uint64_t v = 0;
    cr_assert_not(gw_map_get(&m, 7, &v));
    cr_assert_eq(gw_map_put(&m, 7, 70), 0);
    cr_assert_eq(gw_map_put(&m, 8, 80), 0);
    cr_assert(gw_map_get(&m, 7, &v));
    cr_assert_eq(v, 70);
    cr_assert_eq(gw_map_put(&m, 7, 71), 0, "replace");
    cr_assert_eq(m.n, 2, "a replaced key is not counted twice");
    cr_assert(gw_map_get(&m, 7, &v));
    cr_assert_eq(v, 71);
    cr_assert(gw_map_del(&m, 7, &v));
    cr_assert_eq(v, 71);
    cr_assert_not(gw_map_get(&m, 7, &v));
    cr_assert_not(gw_map_del(&m, 7, NULL));
    cr_assert(gw_map_get(&m, 8, &v));
    cr_assert_eq(v, 80);
    gw_map_deinit(&m);
}

Test(map, key_zero_is_a_key)
{
    struct gw_map m;
    cr_assert_eq(gw_map_init(&m, 0, 16), 0);
    cr_assert_eq(gw_map_put(&m, 0, 5), 0);
    uint64_t v = 0;
    cr_assert(gw_map_get(&m, 0, &v));
    cr_assert_eq(v, 5);
    cr_assert_eq(m.n, 1);
    cr_assert(gw_map_del(&m, 0, NULL));
    cr_assert_eq(m.n, 0);
    gw_map_deinit(&m);
}

Test(map, growth_keeps_every_key)
{
    struct gw_map m;
    cr_assert_eq(gw_map_init(&m, 1, GW_MAP_MAX), 0);
    cr_assert_eq(m.mask + 1, 16);
    for (uint64_t k = 1; k <= 10000; k++)
        cr_assert_eq(gw_map_put(&m, k, k * 3), 0);
    cr_assert_eq(m.n, 10000);
    cr_assert_eq(m.mask + 1, 32768, "doubled at half load: %u slots", m.mask + 1);
    for (uint64_t k = 1; k <= 10000; k++) {
        uint64_t v = 0;
        cr_assert(gw_map_get(&m, k, &v), "key %llu lost in growth", (unsigned long long)k);
        cr_assert_eq(v, k * 3);
    }
    cr_assert_not(gw_map_get(&m, 10001, &(uint64_t){ 0 }));
    check_invariant(&m);
    gw_map_deinit(&m);
}

/* Three keys with one home slot and a fourth homed on the next slot: the
 * run is h, h+1, h+2, h+3. Deleting the first must pull the others back
 * (the fourth only to its own home, never before it). */
static void shift_case(uint32_t home_pos)
{
    struct gw_map m;
    cr_assert_eq(gw_map_init(&m, 8, 8), 0);
    uint32_t mask = m.mask;
    uint64_t same[3], next[1];
    keys_at(&m, home_pos, 1, same, 3);
    keys_at(&m, (home_pos + 1) & mask, 1, next, 1);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(gw_map_put(&m, same[i], 100 + i), 0);
    cr_assert_eq(gw_map_put(&m, next[0], 200), 0);
    cr_assert_eq(m.slot[home_pos].key, same[0]);
    cr_assert_eq(m.slot[(home_pos + 3) & mask].key, next[0], "displaced past the colliders");

    cr_assert(gw_map_del(&m, same[0], NULL));
    check_invariant(&m);
    cr_assert_eq(m.slot[home_pos].key, same[1], "moved back into the hole");
    cr_assert_eq(m.slot[(home_pos + 1) & mask].key, same[2]);
    cr_assert_eq(m.slot[(home_pos + 2) & mask].key, next[0]);
    cr_assert_eq(m.slot[(home_pos + 3) & mask].key, 0, "no tombstone left behind");
    uint64_t v = 0;
    cr_assert(gw_map_get(&m, same[2], &v));
    cr_assert_eq(v, 102);
    cr_assert(gw_map_get(&m, next[0], &v));
    cr_assert_eq(v, 200);

    /* Removing the middle one: the key homed at h+1 must not move to h. */
    cr_assert(gw_map_del(&m, same[1], NULL));
    cr_assert(gw_map_del(&m, same[2], NULL));
    check_invariant(&m);
    cr_assert_eq(m.slot[home_pos].key, 0, "a key never moves before its home");
    cr_assert_eq(m.slot[(home_pos + 1) & mask].key, next[0]);
    cr_assert_eq(m.n, 1);
    gw_map_deinit(&m);
}

Test(map, delete_shifts_the_run_back)
{
    shift_case(3);
}

Test(map, delete_shifts_across_the_end_of_the_table)
{
    shift_case(14); /* 16 slots: the run is 14, 15, 0, 1 */
}

Test(map, fixed_capacity_refuses_and_never_grows)
{
    struct gw_map m;
    cr_assert_eq(gw_map_init(&m, 20, 20), 0);
    struct gw_map_slot *before = m.slot;
    uint32_t mask = m.mask;
    for (uint64_t k = 1; k <= 20; k++)
        cr_assert_eq(gw_map_put(&m, k, k), 0);
    cr_assert_eq(gw_map_put(&m, 21, 21), GW_EFULL);
    cr_assert_eq(gw_map_add(&m, 5, 55), GW_EFULL, "the multimap form is bounded too");
    cr_assert_eq(gw_map_put(&m, 7, 77), 0, "replacing needs no room");
    cr_assert(m.slot == before && m.mask == mask, "a fixed table never reallocates");
    cr_assert_eq(m.n, 20);
    cr_assert_not(gw_map_get(&m, 21, &(uint64_t){ 0 }));
    cr_assert(gw_map_del(&m, 3, NULL));
    cr_assert_eq(gw_map_put(&m, 21, 21), 0, "room again after a deletion");
    check_invariant(&m);
    gw_map_deinit(&m);
}

Test(map, multimap_keeps_colliding_hashes_apart)
{
    struct gw_map m;
    cr_assert_eq(gw_map_init(&m, 4, 64), 0);
    /* One hash for three entries (as two endpoints whose SipHash collided),
     * with a different key of the same home in between. */
    uint64_t other[1];
    keys_at(&m, gw_map_home(&m, 42), 43, other, 1);
    cr_assert_eq(gw_map_add(&m, 42, 1), 0);
    cr_assert_eq(gw_map_add(&m, other[0], 9), 0);
    cr_assert_eq(gw_map_add(&m, 42, 2), 0);
    cr_assert_eq(gw_map_add(&m, 42, 3), 0);
    uint64_t seen = 0;
    int count = 0;
    for (uint32_t i = gw_map_first(&m, 42); i != GW_MAP_END; i = gw_map_more(&m, 42, i)) {
        seen |= 1ull << m.slot[i].val;
        count++;
    }
    cr_assert_eq(count, 3);
    cr_assert_eq(seen, 0xe, "values 1, 2, 3 found, 9 not");
    cr_assert(gw_map_del_kv(&m, 42, 2));
    cr_assert_not(gw_map_del_kv(&m, 42, 2), "removed once");
    cr_assert_not(gw_map_del_kv(&m, 42, 9), "the value under another key is not this one");
    count = 0;
    seen = 0;
    for (uint32_t i = gw_map_first(&m, 42); i != GW_MAP_END; i = gw_map_more(&m, 42, i)) {
        seen |= 1ull << m.slot[i].val;
        count++;
    }
    cr_assert_eq(count, 2);
    cr_assert_eq(seen, 0xa);
    uint64_t v = 0;
    cr_assert(gw_map_get(&m, other[0], &v));
    cr_assert_eq(v, 9);
    check_invariant(&m);
    gw_map_deinit(&m);
}

Test(map, pointer_values)
{
    struct gw_map m;
    int a = 1, b = 2;
    cr_assert_eq(gw_map_init(&m, 2, 8), 0);
    cr_assert_eq(gw_map_put_ptr(&m, 1, &a), 0);
    cr_assert_eq(gw_map_put_ptr(&m, 2, &b), 0);
    cr_assert_eq(gw_map_get_ptr(&m, 1), &a);
    cr_assert_null(gw_map_get_ptr(&m, 3));
    cr_assert_eq(gw_map_del_ptr(&m, 2), &b);
    cr_assert_null(gw_map_del_ptr(&m, 2));
    gw_map_clear(&m);
    cr_assert_eq(m.n, 0);
    cr_assert_null(gw_map_get_ptr(&m, 1), "clear forgets every key");
    gw_map_deinit(&m);
}

/* 20000 random puts and deletes over 300 keys in a small table that keeps
 * growing and shrinking its runs, checked against a plain array. */
Test(map, random_run_agrees_with_an_array)
{
    enum { NK = 300 };
    struct gw_map m;
    cr_assert_eq(gw_map_init(&m, 0, NK), 0);
    uint64_t ref[NK] = { 0 }; /* 0: absent, else value */
    struct gw_rand r;
    gw_rand_seed(&r, 7);
    for (int step = 0; step < 20000; step++) {
        uint32_t k = gw_rand_u32(&r) % NK;
        uint64_t key = (uint64_t)k * 1000003u; /* key 0 included */
        if (gw_rand_u32(&r) % 3) {
            uint64_t v = (uint64_t)step + 1;
            cr_assert_eq(gw_map_put(&m, key, v), 0);
            ref[k] = v;
        } else {
            cr_assert_eq(gw_map_del(&m, key, NULL), ref[k] != 0, "step %d", step);
            ref[k] = 0;
        }
        if (step % 997 == 0)
            check_invariant(&m);
    }
    uint32_t held = 0;
    for (uint32_t k = 0; k < NK; k++) {
        uint64_t v = 0;
        bool got = gw_map_get(&m, (uint64_t)k * 1000003u, &v);
        cr_assert_eq(got, ref[k] != 0, "key %u", k);
        if (got) {
            cr_assert_eq(v, ref[k]);
            held++;
        }
    }
    cr_assert_eq(m.n, held);
    check_invariant(&m);
    gw_map_deinit(&m);
}

/* gw_map_reserve grows at once, keeping every key, so that the next adds up
 * to the reserved count neither grow nor fail. */
Test(map, reserve_grows_now_then_adds_do_not)
{
    struct gw_map m;
    cr_assert_eq(gw_map_init(&m, 1, 1000), 0);
    for (uint64_t k = 1; k <= 5; k++)
        cr_assert_eq(gw_map_add(&m, k, k), 0);
    cr_assert_eq(gw_map_reserve(&m, 600), 0);
    cr_assert_eq(m.mask + 1, 2048, "600 keys at half load: %u slots", m.mask + 1);
    struct gw_map_slot *slots = m.slot;
    for (uint64_t k = 6; k <= 600; k++)
        cr_assert_eq(gw_map_add(&m, k, k), 0);
    cr_assert_eq(m.slot, slots, "no growth after the reservation");
    for (uint64_t k = 1; k <= 600; k++)
        cr_assert(gw_map_get(&m, k, &(uint64_t){ 0 }), "key %llu", (unsigned long long)k);
    cr_assert_eq(gw_map_reserve(&m, 10), 0, "a smaller reservation is a no-op");
    cr_assert_eq(m.slot, slots);
    check_invariant(&m);
    gw_map_deinit(&m);
}
