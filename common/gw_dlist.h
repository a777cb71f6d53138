/* SPDX-License-Identifier: MIT */
/* gw_dlist.h - an intrusive doubly-linked list with head and tail: a node is
 * embedded in the item (no allocation), and GW_DLIST_ITEM gets the item
 * back from its node, as the Linux kernel's list_head and libuv's queue.h.
 * Used where items leave from the middle in O(1): the scheduler cache's LRU
 * order, the supervisor's HTTP connections, the simulator's transactions.
 * (issue #17: three hand-written copies of the unlink before.) Private
 * memory only: nodes are pointers, never in the shared segment (STYLE). */
#ifndef GW_DLIST_H
#define GW_DLIST_H

#include <stddef.h>

struct gw_dnode {
    struct gw_dnode *prev, *next; /* toward the head, toward the tail */
};

struct gw_dlist {
    struct gw_dnode *head, *tail; /* both NULL when empty */
};

/* The item of type `type` whose member `member` is node n; NULL for NULL.
 * A function, not a conditional in the macro: no arithmetic on a NULL
 * constant is ever written (clang's -Wnull-pointer-arithmetic). */
static inline void *gw__dlist_item(struct gw_dnode *n, size_t off)
{
    return n ? (void *)((char *)n - off) : NULL;
}
#define GW_DLIST_ITEM(n, type, member) ((type *)gw__dlist_item((n), offsetof(type, member)))

static inline void gw_dlist_push_head(struct gw_dlist *l, struct gw_dnode *n)
{
    n->prev = NULL;
    n->next = l->head;
    if (l->head)
        l->head->prev = n;
    else
        l->tail = n;
    l->head = n;
}

/* Takes n, a node of l, out of l; n's links are cleared. */
static inline void gw_dlist_remove(struct gw_dlist *l, struct gw_dnode *n)
{
    if (n->prev)
        n->prev->next = n->next;
    else
        l->head = n->next;
    if (n->next)
        n->next->prev = n->prev;
    else
        l->tail = n->prev;
    n->prev = n->next = NULL;
}

#endif
