/* SPDX-License-Identifier: MIT */
/* gw_ring.c - SPSC ring push/pop and the FIFO doorbells; the contract is at the top of
 * gw_ring.h. */
#include "gw_ring.h"
#include "gw_error.h"
#include "gw_fsafe.h"
#include "gw_log.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline uint8_t *slot_at(struct gw_ring *r, uint32_t idx)
{
    return (uint8_t *)(r + 1) + (size_t)(idx & r->mask) * r->slot_size;
}

void gw_ring_format(struct gw_ring *r, uint32_t size, uint32_t slot_size, uint32_t bell)
{
    memset(r, 0, sizeof(*r));
    r->size = size;
    r->mask = size - 1;
    r->slot_size = slot_size;
    r->bell = bell;
    atomic_store_explicit(&r->tail, 0, memory_order_relaxed);
    atomic_store_explicit(&r->head, 0, memory_order_relaxed);
}

void gw_ring_claim_producer(struct gw_ring *r, uint32_t pid)
{
    atomic_store_explicit(&r->prod_pid, pid, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->prod_gen, 1, memory_order_release);
}

void gw_ring_claim_consumer(struct gw_ring *r, uint32_t pid)
{
    atomic_store_explicit(&r->cons_pid, pid, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->cons_gen, 1, memory_order_release);
}

int gw_ring_push2(struct gw_ring *r, const void *a, uint32_t alen, const void *b, uint32_t blen)
{
    /* Checked part by part: alen + blen may wrap around 2^32. */
    if (alen > r->slot_size - 4 || blen > r->slot_size - 4 - alen)
        return GW_ETOOBIG;
    uint32_t len = alen + blen;
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    /* A1: acquire; pairs with R2 in gw_ring_pop, so the slot is free. */
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (tail - head >= r->size)
        return GW_EFULL;
    uint8_t *s = slot_at(r, tail);
    memcpy(s, &len, 4);
    if (alen)
        memcpy(s + 4, a, alen);
    if (blen)
        memcpy(s + 4 + alen, b, blen);
    /* R1: release; pairs with A2 in gw_ring_pop, publishing the slot. */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    return 0;
}

int gw_ring_push(struct gw_ring *r, const void *data, uint32_t len)
{
    return gw_ring_push2(r, data, len, NULL, 0);
}

int gw_ring_pop(struct gw_ring *r, void *buf, uint32_t cap)
{
    uint32_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    /* A2: acquire; pairs with R1 in gw_ring_push2. */
    uint32_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head == tail)
        return GW_EEMPTY;
    const uint8_t *s = slot_at(r, head);
    uint32_t len;
    memcpy(&len, s, 4);
    int rc;
    if (len > r->slot_size - 4 || len > cap) {
        rc = GW_EBADMSG;
    } else {
        memcpy(buf, s + 4, len);
        rc = (int)len;
    }
    /* R2: release; pairs with A1 in gw_ring_push2, handing the slot back. */
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    return rc;
}

bool gw_bell_should_wake(struct gw_bell *b)
{
    /* F1: the tail store (R1) must be visible before we read `sleeping`;
     * pairs with F2 in gw_bell_prepare_sleep. */
    atomic_thread_fence(memory_order_seq_cst);
    if (!atomic_load_explicit(&b->sleeping, memory_order_relaxed))
        return false;
    if (!atomic_exchange_explicit(&b->sleeping, 0, memory_order_relaxed))
        return false; /* another producer woke it already */
    atomic_fetch_add_explicit(&b->rings, 1, memory_order_relaxed);
    return true;
}

void gw_bell_prepare_sleep(struct gw_bell *b)
{
    atomic_store_explicit(&b->sleeping, 1, memory_order_relaxed);
    /* F2: publish `sleeping` before the caller re-reads the tails; pairs with F1. */
    atomic_thread_fence(memory_order_seq_cst);
}

void gw_bell_awake(struct gw_bell *b)
{
    atomic_store_explicit(&b->sleeping, 0, memory_order_relaxed);
}

int gw_bell_fifo_open(const char *path)
{
    if (mkfifo(path, 0600) != 0 && errno != EEXIST)
        return -errno;
    /* O_RDWR on a FIFO never blocks and never fails for want of a reader
     * (Linux), so producers and the consumer open it the same way.
     * O_NOFOLLOW and the fstat check (S9.2): a link or a file planted under
     * the bell's name is refused, never written through or spun on. */
    char err[600];
    int fd = gw_fsafe_open(path, O_RDWR | O_NONBLOCK, GW_FS_FIFO | GW_FS_SECRET, err, sizeof(err));
    if (fd == GW_EUNSAFE)
        gw_log_err(GW_LOG_RING, "doorbell %s", err);
    return fd;
}

void gw_bell_fifo_kick(int fd)
{
    /* EAGAIN means the FIFO is full of kicks already: the consumer wakes. */
    ssize_t n GW_UNUSED = write(fd, "!", 1);
}

void gw_bell_fifo_drain(int fd)
{
    /* A short read emptied the FIFO (a pipe read takes what is there, under
     * its lock): no second read that would only return EAGAIN, one system
     * call less per wake-up (issue 13 item 2). A kick written after it
     * makes the FIFO readable again, so none is lost. */
    char buf[256];
    for (int i = 0; i < 64; i++)
        if (read(fd, buf, sizeof(buf)) < (ssize_t)sizeof(buf))
            break;
}
