/* SPDX-License-Identifier: MIT */
/* fe_guard.h - when a frontend may answer from the shared response cache
 * (SPEC S1.3, S3.1, S3.3; issue 13 item 1).
 *
 * THE PROBLEM
 * Frontends share the client port (SO_REUSEPORT): the kernel pins a client's
 * flow to one socket only while the set of sockets stays the same. A CON
 * request a frontend forwarded (empty ACK, separate answer from the
 * scheduler, kept until the client ACKs it) may be retransmitted by its
 * client when that ACK was lost; if meanwhile a frontend of the port died or
 * started, the copy can reach a frontend whose in-memory deduplication never
 * saw it. Answered there from the shared cache (piggybacked), the client
 * would get two final answers with different MIDs. Through the scheduler, the
 * copy meets the scheduler's own client-request deduplication (endpoint, MID,
 * token) and the kept answer stays the only one.
 *
 * The opposite case is as real: a fresh hit a frontend answered on the ACK
 * (piggybacked), whose ACK the client lost or read late, and whose copy
 * reaches a frontend that never saw it. Nobody forwarded it, so the
 * scheduler would take it as new and answer it separately (a new MID): two
 * final answers again. The same piggybacked answer with the client's MID,
 * from any frontend, is only a duplicate to the client.
 *
 * THE RULE
 * A fresh cache hit is answered by the frontend at once only while no
 * frontend of the port started or stopped within the exchange lifetime (the
 * scheduler's deduplication window, RFC 7252 4.5) after some frontend
 * forwarded a CON request. Otherwise the frontend keeps the hit, rendered
 * on the ACK of the client's MID, with the exchange, sends no empty ACK, and
 * asks the scheduler (gw_msg.h GW_MF2_CHECK): a copy of a request the
 * scheduler took gets an empty ACK and that request's answer, as any copy;
 * anything else gets the kept hit, and the scheduler records the request as
 * answered, so an original that a dead frontend forwarded and that is read
 * only now is a copy, and a later check of it again says answer. A gateway
 * that has forwarded nothing yet when its frontends start (a fresh start)
 * keeps the piggybacked hit from the first request on.
 *
 * HOW (all in the frontends' proc slots, gw_shm.h)
 * - fe_fwd_ms: each frontend stores the time before pushing a CON request to
 *   the scheduler, at most once a second (readers allow 1 s of slack).
 * - fe_lease: a robust process-shared mutex a frontend holds from before it
 *   binds its socket until it dies. The kernel marks it owner-dead while the
 *   dying process releases its memory, before it closes its files (Linux
 *   do_exit: exit_mm then exit_files), so a datagram that reached another
 *   frontend because the dead one's socket left the group is read after the
 *   lease shows the death. A graceful exit leaves it the same way.
 * - fe_join_ms, fe_guard_ms: a starting frontend, when any frontend forwarded
 *   within the window before, raises its slot's guard to now + window, then
 *   takes its lease and notes the time, all before bind(2). A frontend about to
 *   answer a hit checks every other started slot's lease (trylock: EBUSY is a
 *   live holder; a free or owner-dead lock is a death, which the first
 *   frontend to see it records in fe_gone_ms, raising that slot's guard the
 *   same way) and every slot's guard. No lock is held beyond a trylock/unlock pair.
 *
 * WHAT IS LEFT
 * - A frontend start is seen through the starter's scan of fe_fwd_ms, which
 *   runs before its bind(2): the very first CON request after a whole
 *   window without any, forwarded by another frontend between that scan and
 *   the bind (microseconds), is not covered.
 * - A copy whose entry went stale meanwhile takes the ordinary path and is
 *   taken again (a separate answer): right for a client that lost the
 *   piggybacked answer, a second answer for one that only read it late. The
 *   scheduler knows a checked answer (sch_core.c seen_copy: an original
 *   taken before the check stays a copy); an answer a frontend gave from the
 *   cache on its own is kept only in that frontend's memory. A scheduler
 *   restart forgets the checked ones.
 * - The check costs a ring round trip per fresh hit for the window after a
 *   frontend of the port started or died; the answer still goes on the ACK.
 * The double answer the Compose stage saw once (2026-12-03: an ACK with the
 * client's MID and a CON with another, read together 1.4 s after a frontend's
 * SIGKILL) fits the opposite case: that test's client reads its socket only
 * between `docker inspect` calls, and it retransmits before it reads. The
 * case is reproduced without Docker, and closed by the check, in
 * tests/integration/test_cache_shm.py
 * test_retransmission_of_a_piggybacked_hit_after_frontend_kill_gets_one_answer. */
#ifndef FE_GUARD_H
#define FE_GUARD_H

#include "gw_shm.h"

#include <stdbool.h>
#include <stdint.h>

struct fe_guard {
    struct gw_shm *shm;
    struct gw_proc_slot *fe0; /* frontend 0's process slot; the others follow it */
    uint32_t self;            /* this frontend's index */
    uint32_t nfe;             /* frontend slots (max_frontends) */
    uint64_t window_ms;       /* exchange_lifetime_ms */
    uint64_t fwd_stored;      /* the fe_fwd_ms value this process last stored */
};

/* Takes slot `index`'s lease (a predecessor's owner-dead lease included),
 * waiting at most wait_ms for a momentary holder, and raises this slot's
 * guard when a frontend forwarded within window_ms. Call before binding the
 * client socket. Returns 0, GW_EBUSY (another live process holds the slot)
 * or a negative errno. Nothing to free (fe_guard_free is for symmetry). */
int fe_guard_join(struct fe_guard *g, struct gw_shm *shm, uint32_t index, uint64_t window_ms,
                  uint64_t now_ms, uint64_t wait_ms) GW_NODISCARD;
void fe_guard_free(struct fe_guard *g);
/* Notes a forwarded CON request; call before it is pushed to the scheduler. */
void fe_guard_forward(struct fe_guard *g, uint64_t now_ms);
/* True when a fresh cache hit may be answered here at now_ms. */
bool fe_guard_cache_ok(struct fe_guard *g, uint64_t now_ms);

#endif
