/* SPDX-License-Identifier: MIT */
/* gw_ring.h - lock-free single-producer/single-consumer rings in shared memory.
 *
 * CONTRACT
 * - Exactly one producer process and one consumer process per ring. They
 *   claim their side at attach (gw_ring_claim_*) by writing their pid and
 *   bumping that side's generation; the supervisor clears the pid of a dead
 *   child. Nothing here prevents two producers: the topology (gw_shm.h)
 *   gives every producer its own ring, so none is ever shared.
 * - Slots are fixed size and hold a 32-bit length and that many bytes; no
 *   pointers, so the segment may be mapped at any address.
 * - head and tail are free-running uint32_t, masked by size - 1 (a power
 *   of two); tail - head is the fill level, correct across wrap at 2^32.
 * - Producer: reads its own tail relaxed, the consumer's head with acquire
 *   (A1), writes the slot, then publishes with a release store of tail (R1).
 * - Consumer: reads its own head relaxed, the producer's tail with acquire
 *   (A2), copies the slot out, then frees it with a release store of head
 *   (R2).
 *
 * WHAT A SIGKILL CAN DO
 * - Producer killed at any instant: a slot is either published whole (tail
 *   moved after the copy) or not at all. The restarted producer goes on
 *   from the tail in shared memory. A record it was about to push is lost.
 * - Consumer killed at any instant: gw_ring_pop() copies the slot out and
 *   frees it before returning, so a record is delivered at most once. The
 *   record a consumer had popped but not yet acted on when it died is lost;
 *   the layers above cover that (client CON retransmission, the scheduler's
 *   transaction table, mesh retries). No record is ever delivered torn,
 *   and none twice.
 * - Neither side ever waits for the other: a full ring makes push return
 *   GW_EFULL at once and the producer decides (drop, answer 5.03, retry on
 *   the next loop turn).
 *
 * DOORBELLS
 * An idle consumer sleeps in its event loop on a FIFO (mkfifo in data_dir;
 * FIFOs work across processes that share nothing but a filesystem, as
 * containers do). It sets bell->sleeping, re-checks its rings and only then
 * sleeps. A producer, after publishing a batch, rings the bell only when
 * the consumer sleeps (one write per batch, coalesced as libuv's
 * uv_async_send does). The store of `sleeping` and the load of tail are
 * ordered by seq_cst fences on both sides (F1 pairs with F2), so a wake-up
 * is never missed. */
#ifndef GW_RING_H
#define GW_RING_H

#include "gw_defs.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct gw_ring {
    /* Producer line. */
    _Atomic uint32_t tail;
    _Atomic uint32_t prod_pid;
    _Atomic uint32_t prod_gen;
    uint32_t bell; /* index of the consumer's doorbell */
    uint8_t pad0[GW_CACHELINE - 16];
    /* Consumer line. */
    _Atomic uint32_t head;
    _Atomic uint32_t cons_pid;
    _Atomic uint32_t cons_gen;
    uint32_t pad1;
    uint8_t pad2[GW_CACHELINE - 16];
    /* Read-only after init. */
    uint32_t size; /* slots, power of two */
    uint32_t mask;
    uint32_t slot_size; /* bytes per slot including the 4-byte length */
    uint32_t pad3;
    uint8_t pad4[GW_CACHELINE - 16];
    /* uint8_t slots[size][slot_size] follow. */
};
GW_STATIC_ASSERT(sizeof(struct gw_ring) == 3 * GW_CACHELINE, "ring header is three cache lines");

struct gw_bell {
    _Atomic uint32_t sleeping;
    _Atomic uint32_t rings; /* statistics: doorbell writes */
    uint8_t pad[GW_CACHELINE - 8];
};
GW_STATIC_ASSERT(sizeof(struct gw_bell) == GW_CACHELINE, "one bell per cache line");

static inline size_t gw_ring_bytes(uint32_t size, uint32_t slot_size)
{
    return sizeof(struct gw_ring) + (size_t)size * slot_size;
}

/* Formats a ring in place (only when the segment is created). */
void gw_ring_format(struct gw_ring *r, uint32_t size, uint32_t slot_size, uint32_t bell);
void gw_ring_claim_producer(struct gw_ring *r, uint32_t pid);
void gw_ring_claim_consumer(struct gw_ring *r, uint32_t pid);

/* Producer side. Returns 0, GW_EFULL when no slot is free, GW_ETOOBIG when
 * len exceeds the slot. Never blocks. */
int gw_ring_push(struct gw_ring *r, const void *data, uint32_t len) GW_NODISCARD;
/* Two-part push (envelope header + body) without an intermediate copy. */
int gw_ring_push2(struct gw_ring *r, const void *a, uint32_t alen, const void *b,
                  uint32_t blen) GW_NODISCARD;

/* Consumer side. Copies the next record into buf (cap bytes) and frees its
 * slot. Returns the record length (>= 0), GW_EEMPTY, or GW_EBADMSG for a
 * corrupt length (the slot is skipped). */
int gw_ring_pop(struct gw_ring *r, void *buf, uint32_t cap) GW_NODISCARD;

static inline uint32_t gw_ring_count(const struct gw_ring *r)
{
    /* head first: the operands of `-` are unordered, and a tail read before
     * a head that moved past it would make a third party see ~2^32. */
    uint32_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    return atomic_load_explicit(&r->tail, memory_order_acquire) - head;
}
static inline bool gw_ring_empty(const struct gw_ring *r)
{
    return gw_ring_count(r) == 0;
}

/* Doorbells. A producer calls gw_bell_should_wake after publishing a batch;
 * it returns true when the consumer was asleep and must be woken, which the
 * producer does with gw_bell_fifo_kick. */
bool gw_bell_should_wake(struct gw_bell *b);
/* Consumer about to sleep: marks it, then the caller re-checks its rings. */
void gw_bell_prepare_sleep(struct gw_bell *b);
void gw_bell_awake(struct gw_bell *b);

/* FIFO plumbing: path is data_dir/bell-NAME (gw_bell_path). gw_bell_fifo_open
 * creates the FIFO (0600) if needed and returns an fd, -errno, or GW_EUNSAFE
 * (logged, naming the path) when path is a link, not a FIFO, not ours or
 * open to group/other (S9.2). */
int gw_bell_fifo_open(const char *path) GW_NODISCARD;
void gw_bell_fifo_kick(int fd);
void gw_bell_fifo_drain(int fd);

#endif
