/* SPDX-License-Identifier: MIT */
/* test_dlist.c - the intrusive list (common/gw_dlist.h) behind the
 * scheduler cache's LRU order (S5.4: the least recently used entry is
 * evicted first), the supervisor's HTTP connections (the oldest dropped at
 * the limit) and the simulator's transactions. */
#include "gw_dlist.h"

#include <criterion/criterion.h>

struct item {
    int id;
    struct gw_dnode node;
};

/* The ids from head to tail, and back from tail to head, must agree. */
static void expect(const struct gw_dlist *l, const int *ids, int n)
{
    int i = 0;
    for (struct gw_dnode *p = l->head; p; p = p->next, i++) {
        cr_assert_lt(i, n, "more items than expected");
        cr_assert_eq(GW_DLIST_ITEM(p, struct item, node)->id, ids[i], "position %d", i);
    }
    cr_assert_eq(i, n);
    for (struct gw_dnode *p = l->tail; p; p = p->prev)
        cr_assert_eq(GW_DLIST_ITEM(p, struct item, node)->id, ids[--i], "backwards at %d", i);
    cr_assert_eq(i, 0);
}

Test(dlist, push_head_and_remove_anywhere)
{
    struct gw_dlist l = { 0 };
    struct item it[4] = { { .id = 0 }, { .id = 1 }, { .id = 2 }, { .id = 3 } };
    expect(&l, NULL, 0);
    for (int i = 0; i < 4; i++)
        gw_dlist_push_head(&l, &it[i].node);
    expect(&l, (int[]){ 3, 2, 1, 0 }, 4);
    gw_dlist_remove(&l, &it[1].node); /* middle */
    expect(&l, (int[]){ 3, 2, 0 }, 3);
    cr_assert_null(it[1].node.prev);
    cr_assert_null(it[1].node.next);
    gw_dlist_remove(&l, &it[0].node); /* tail */
    expect(&l, (int[]){ 3, 2 }, 2);
    gw_dlist_remove(&l, &it[3].node); /* head */
    expect(&l, (int[]){ 2 }, 1);
    gw_dlist_remove(&l, &it[2].node); /* the last one */
    expect(&l, NULL, 0);
    cr_assert_null(l.head);
    cr_assert_null(l.tail);
}

/* The LRU use: touching moves an item to the head, the tail is the oldest. */
Test(dlist, move_to_head_keeps_the_oldest_at_the_tail)
{
    struct gw_dlist l = { 0 };
    struct item it[3] = { { .id = 0 }, { .id = 1 }, { .id = 2 } };
    for (int i = 0; i < 3; i++)
        gw_dlist_push_head(&l, &it[i].node);
    gw_dlist_remove(&l, &it[0].node);
    gw_dlist_push_head(&l, &it[0].node);
    expect(&l, (int[]){ 0, 2, 1 }, 3);
    cr_assert_eq(GW_DLIST_ITEM(l.tail, struct item, node), &it[1]);
    /* Through a variable: clang refuses arithmetic on a literal NULL in the
     * macro's branch that is not taken (-Wnull-pointer-arithmetic, fuzz build). */
    struct gw_dnode *none = NULL;
    cr_assert_null(GW_DLIST_ITEM(none, struct item, node));
}
