/* SPDX-License-Identifier: MIT */
/* test_heap.c - the one min-heap (common/gw_heap.c): items pop in deadline
 * order, equal deadlines in push order (the simulator's replay depends on
 * it), a fixed heap refuses the item beyond its size without allocating, a
 * growing one doubles up to its bound, pop_due leaves future items, and a
 * prune drops exactly the refused items, keeps the order of the rest and
 * shrinks a growing heap (never a fixed one). */
#include "gw_error.h"
#include "gw_heap.h"
#include "gw_rand.h"

#include <criterion/criterion.h>

Test(heap, pops_in_deadline_order)
{
    struct gw_heap h;
    cr_assert_eq(gw_heap_init(&h, 1000), 0);
    struct gw_rand r;
    gw_rand_seed(&r, 3);
    for (uint32_t i = 0; i < 1000; i++)
        cr_assert_eq(gw_heap_push(&h, gw_rand_u32(&r) % 500, i, i * 2), 0);
    struct gw_heap_item it, prev = { 0 };
    uint32_t n = 0;
    while (gw_heap_pop(&h, &it)) {
        cr_assert_geq(it.deadline, prev.deadline, "out of order at %u", n);
        cr_assert_eq(it.gen, it.id * 2, "payload travels with its deadline");
        prev = it;
        n++;
    }
    cr_assert_eq(n, 1000);
    cr_assert_not(gw_heap_peek(&h, &it));
    gw_heap_deinit(&h);
}

Test(heap, equal_deadlines_pop_in_push_order)
{
    struct gw_heap h;
    cr_assert_eq(gw_heap_init_growing(&h, 4, 4096), 0);
    /* Interleaved: deadlines 10 and 5, ids counting up within each. */
    for (uint32_t i = 0; i < 200; i++)
        cr_assert_eq(gw_heap_push(&h, i % 2 ? 5 : 10, i, 0), 0);
    struct gw_heap_item it;
    uint32_t last5 = 0, last10 = 0, n = 0;
    bool first5 = true, first10 = true;
    while (gw_heap_pop(&h, &it)) {
        if (it.deadline == 5) {
            cr_assert(first5 || it.id > last5, "id %u after %u", it.id, last5);
            cr_assert_eq(last10, 0, "a 5 after a 10");
            first5 = false;
            last5 = it.id;
        } else {
            cr_assert(first10 || it.id > last10, "id %u after %u", it.id, last10);
            first10 = false;
            last10 = it.id;
        }
        n++;
    }
    cr_assert_eq(n, 200);
    gw_heap_deinit(&h);
}

Test(heap, fixed_size_refuses_without_allocating)
{
    struct gw_heap h;
    cr_assert_eq(gw_heap_init(&h, 8), 0);
    struct gw_heap_item *before = h.v;
    for (uint32_t i = 0; i < 8; i++)
        cr_assert_eq(gw_heap_push(&h, 100 - i, i, 0), 0);
    cr_assert_eq(gw_heap_push(&h, 1, 99, 0), GW_EFULL);
    cr_assert(h.v == before && h.cap == 8);
    struct gw_heap_item it;
    cr_assert(gw_heap_pop(&h, &it));
    cr_assert_eq(it.deadline, 93);
    cr_assert_eq(gw_heap_push(&h, 1, 99, 0), 0, "room again after a pop");
    cr_assert(gw_heap_peek(&h, &it));
    cr_assert_eq(it.id, 99);
    gw_heap_deinit(&h);
}

Test(heap, growing_doubles_up_to_its_bound)
{
    struct gw_heap h;
    cr_assert_eq(gw_heap_init_growing(&h, 2, 100), 0);
    for (uint32_t i = 0; i < 100; i++)
        cr_assert_eq(gw_heap_push(&h, 1000 - i, i, 0), 0, "push %u", i);
    cr_assert_eq(h.cap, 100);
    cr_assert_eq(gw_heap_push(&h, 1, 0, 0), GW_EFULL, "bounded at max");
    struct gw_heap_item it;
    cr_assert(gw_heap_pop(&h, &it));
    cr_assert_eq(it.deadline, 901);
    gw_heap_deinit(&h);
}

Test(heap, pop_due_and_pointers)
{
    struct gw_heap h;
    int a, b;
    cr_assert_eq(gw_heap_init_growing(&h, 1, 16), 0);
    cr_assert_eq(gw_heap_next(&h), UINT64_MAX);
    cr_assert_eq(gw_heap_push_ptr(&h, 20, 2, &b), 0);
    cr_assert_eq(gw_heap_push_ptr(&h, 10, 1, &a), 0);
    cr_assert_eq(gw_heap_next(&h), 10);
    struct gw_heap_item it;
    cr_assert_not(gw_heap_pop_due(&h, 9, &it), "nothing due before 10");
    cr_assert(gw_heap_pop_due(&h, 15, &it));
    cr_assert(it.p == &a && it.id == 1);
    cr_assert_not(gw_heap_pop_due(&h, 15, &it), "20 stays");
    cr_assert_eq(h.n, 1);
    cr_assert(gw_heap_pop_due(&h, 20, &it));
    cr_assert(it.p == &b && it.id == 2);
    gw_heap_deinit(&h);
}

/* Keeps items whose gen is even. */
static bool keep_even(const struct gw_heap_item *it, void *ctx)
{
    (*(uint32_t *)ctx)++;
    return it->gen % 2 == 0;
}

Test(heap, prune_drops_the_refused_keeps_order_and_shrinks)
{
    struct gw_heap h;
    cr_assert_eq(gw_heap_init_growing(&h, 16, 1 << 20), 0);
    struct gw_rand r;
    gw_rand_seed(&r, 5);
    /* 4 000 items, deadlines with many ties; 1 in 16 kept. */
    for (uint32_t i = 0; i < 4000; i++)
        cr_assert_eq(gw_heap_push(&h, gw_rand_u32(&r) % 50, i, i % 16 ? 1 : 0), 0);
    cr_assert_geq(h.cap, 4000);
    uint32_t asked = 0;
    cr_assert_eq(gw_heap_prune(&h, keep_even, &asked), 4000 - 250);
    cr_assert_eq(asked, 4000, "every item is asked about once");
    cr_assert_eq(h.n, 250);
    cr_assert_eq(h.cap, 500, "shrunk to twice what is left");
    struct gw_heap_item it, prev = { 0 };
    uint32_t n = 0;
    while (gw_heap_pop(&h, &it)) {
        cr_assert_eq(it.gen, 0, "only kept items are left");
        cr_assert(it.deadline > prev.deadline || (it.deadline == prev.deadline && it.id > prev.id),
                  "pop %u: (%llu, %u) after (%llu, %u)", n, (unsigned long long)it.deadline, it.id,
                  (unsigned long long)prev.deadline, prev.id);
        prev = it;
        n++;
    }
    cr_assert_eq(n, 250);
    /* Empty: back to its first size, and it grows again. */
    cr_assert_eq(gw_heap_prune(&h, keep_even, &asked), 0);
    cr_assert_eq(h.cap, 16);
    for (uint32_t i = 0; i < 100; i++)
        cr_assert_eq(gw_heap_push(&h, i, i, 0), 0);
    gw_heap_deinit(&h);

    /* A fixed heap never reallocates, even nearly empty. */
    cr_assert_eq(gw_heap_init(&h, 64), 0);
    struct gw_heap_item *v = h.v;
    for (uint32_t i = 0; i < 64; i++)
        cr_assert_eq(gw_heap_push(&h, i, i, 1), 0);
    cr_assert_eq(gw_heap_prune(&h, keep_even, &asked), 64);
    cr_assert(h.v == v && h.cap == 64 && h.n == 0);
    gw_heap_deinit(&h);
}
