/* SPDX-License-Identifier: MIT */
/* fe_guard.c - when a frontend may answer from the shared response cache
 * (fe_guard.h has the contract). */
#include "fe_guard.h"
#include "gw_error.h"

#include <errno.h>
#include <time.h>

/* fe_fwd_ms is stored at most once a second: a reader counts a forward up
 * to this much later than the stored time. */
#define FE_GUARD_FWD_SLACK_MS 1000

/* The slots are one array (gw_shm_proc), found once at join: every cache
 * hit walks them three times (issue 13: the look-ups were 200 instructions
 * of a hit's 8 000). */
static struct gw_proc_slot *slot(const struct fe_guard *g, uint32_t i)
{
    return g->fe0 + i;
}

/* True when any frontend slot (a dead one's included) forwarded a CON
 * request within the window before now. */
static bool forwarded_within(const struct fe_guard *g, uint64_t now)
{
    for (uint32_t i = 0; i < g->nfe; i++) {
        uint64_t f = atomic_load(&slot(g, i)->fe_fwd_ms);
        if (f && f + FE_GUARD_FWD_SLACK_MS + g->window_ms > now)
            return true;
    }
    return false;
}

static void raise_guard(struct gw_proc_slot *s, uint64_t until)
{
    uint64_t cur = atomic_load(&s->fe_guard_ms);
    while (cur < until && !atomic_compare_exchange_weak(&s->fe_guard_ms, &cur, until))
        ;
}

int fe_guard_join(struct fe_guard *g, struct gw_shm *shm, uint32_t index, uint64_t window_ms,
                  uint64_t now_ms, uint64_t wait_ms)
{
    g->shm = shm;
    g->fe0 = gw_shm_proc(shm, GW_PROC_FRONTEND0);
    g->self = index;
    g->nfe = shm->hdr->max_frontends;
    g->window_ms = window_ms;
    g->fwd_stored = 0;
    struct gw_proc_slot *me = slot(g, index);
    /* Before the lease and before bind(2): a frontend of the port that
     * forwarded anything within the window may have clients whose
     * retransmissions come to a socket that did not see the first copy once
     * ours joins the group (or once our predecessor's left it). The guard is
     * up before the lease, so whoever sees the lease taken sees it. */
    if (forwarded_within(g, now_ms))
        raise_guard(me, now_ms + window_ms);
    /* Pairs with the fence in fe_guard_cache_ok: the lease, taken below with
     * an acquire only, must not become visible before the guard. */
    atomic_thread_fence(memory_order_seq_cst);
    /* Another frontend checking our predecessor holds the lease for a
     * trylock/unlock pair only: wait for it, bounded. A live process that
     * holds it for good is a second frontend with our index. */
    int rc;
    for (uint64_t waited = 0;; waited++) {
        rc = pthread_mutex_trylock(&me->fe_lease.m);
        if (rc == EOWNERDEAD)
            rc = pthread_mutex_consistent(&me->fe_lease.m);
        if (rc != EBUSY || waited >= wait_ms)
            break;
        struct timespec ts = { 0, 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (rc != 0)
        return rc == EBUSY ? GW_EBUSY : -rc;
    atomic_store(&me->fe_join_ms, now_ms ? now_ms : 1);
    return 0;
}

void fe_guard_free(struct fe_guard *g)
{
    (void)g; /* the lease goes with the process (the kernel marks it) */
}

void fe_guard_forward(struct fe_guard *g, uint64_t now_ms)
{
    if (now_ms >= g->fwd_stored + FE_GUARD_FWD_SLACK_MS || now_ms < g->fwd_stored) {
        atomic_store(&slot(g, g->self)->fe_fwd_ms, now_ms ? now_ms : 1);
        g->fwd_stored = now_ms;
    }
}

/* True when a live frontend holds the slot's lease. A free or owner-dead
 * lease means it is gone (the lock is given back at once). */
static bool holder_alive(struct gw_proc_slot *s)
{
    int rc = pthread_mutex_trylock(&s->fe_lease.m);
    if (rc == EBUSY)
        return true;
    if (rc == EOWNERDEAD)
        rc = pthread_mutex_consistent(&s->fe_lease.m);
    if (rc == 0)
        pthread_mutex_unlock(&s->fe_lease.m);
    return false;
}

static bool guarded(const struct fe_guard *g, uint64_t now)
{
    for (uint32_t i = 0; i < g->nfe; i++)
        if (atomic_load(&slot(g, i)->fe_guard_ms) > now)
            return true;
    return false;
}

bool fe_guard_cache_ok(struct fe_guard *g, uint64_t now_ms)
{
    if (guarded(g, now_ms))
        return false;
    for (uint32_t i = 0; i < g->nfe; i++) {
        struct gw_proc_slot *s = slot(g, i);
        uint64_t join = atomic_load(&s->fe_join_ms);
        uint64_t gone = atomic_load(&s->fe_gone_ms);
        if (i == g->self || !join || gone == join)
            continue; /* never started, or its death is on record already */
        if (holder_alive(s))
            continue;
        /* A successor that took the lease meanwhile raised its own guard
         * before it did (checked below). */
        if (atomic_load(&s->fe_join_ms) != join)
            continue;
        /* One record per death, by whichever frontend sees it first. */
        if (atomic_compare_exchange_strong(&s->fe_gone_ms, &gone, join) &&
            forwarded_within(g, now_ms))
            raise_guard(s, now_ms + g->window_ms);
    }
    /* Again after the leases: a frontend that took its lease after our
     * first look raised its guard before taking it. */
    atomic_thread_fence(memory_order_seq_cst);
    return !guarded(g, now_ms);
}
