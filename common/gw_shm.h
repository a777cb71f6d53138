/* SPDX-License-Identifier: MIT */
/* gw_shm.h - the shared segment that links the processes (SPEC S1.2).
 *
 * One POSIX shared-memory object per gateway instance, /dev/shm/coapgw-<instance>.
 * Layout, all by offset from the segment base (no pointers):
 *   header | rings | doorbells | process table | statistics | scheduler transactions |
 *   shared response cache (gw_rcache.h: written by the scheduler, read by frontends)
 * The header describes itself (magic, layout version, every size and
 * offset); an attach that finds a different layout is refused with a
 * message saying which value differs (GW_ELAYOUT).
 *
 * Ring topology: every ring is SPSC. For frontend i (0 <= i < max_frontends)
 * there is fe[i]->scheduler and scheduler->fe[i]; then scheduler->meshio
 * and meshio->scheduler. Bells: 0 scheduler, 1 meshio, 2+i frontend i. */
#ifndef GW_SHM_H
#define GW_SHM_H

#include "gw_config.h"
#include "gw_defs.h"
#include "gw_rcache.h"
#include "gw_ring.h"
#include "gw_stats.h"

#include <pthread.h>
#include <stdatomic.h>

#define GW_SHM_MAGIC 0x3157475041544f43ull /* "COTAPGW1" */
#define GW_SHM_VERSION 7                   /* 7: frontend cache guard in the proc slots */
/* A slot carries a whole envelope plus a 1152-byte CoAP message. */
#define GW_RING_SLOT 1280
/* A scheduler transaction slot (struct sch_txn fits in it). */
#define GW_TXN_SLOT 1536

enum gw_proc_index {
    GW_PROC_SUPERVISOR = 0,
    GW_PROC_SCHEDULER,
    GW_PROC_MESHIO,
    GW_PROC_MESHSIM,
    GW_PROC_FRONTEND0
};
enum gw_bell_index { GW_BELL_SCHEDULER = 0, GW_BELL_MESHIO = 1, GW_BELL_FRONTEND0 = 2 };

struct gw_proc_slot {
    _Atomic uint32_t pid;
    _Atomic uint32_t restarts;
    _Atomic int64_t started_wall;
    _Atomic uint64_t started_mono_ms;
    _Atomic uint32_t ready; /* the role finished its start-up (scheduler: registry loaded) */
    /* Frontends: the next client-facing MID. The frontend and the scheduler
     * (for the answers it keeps, gw_msg.h GW_MF2_MID) both take MIDs from it
     * with fetch-add, so they never clash, and a restarted frontend goes on
     * after its predecessor's MIDs (a client would drop a repeated one as a
     * duplicate, RFC 7252 4.5). 0 until the first frontend seeds it. */
    _Atomic uint32_t client_mid;
    uint8_t pad[GW_CACHELINE - 32];
    /* Frontends: the cache guard (frontend/fe_guard.h). A CON request a
     * frontend forwarded may be retransmitted by its client to another
     * frontend of the port when the set of sockets changes; such a copy must
     * reach the scheduler's deduplication, never the cache path (S1.3). */
    _Atomic uint64_t fe_fwd_ms;   /* last forward of a CON request (mono ms, 1 s coarse) */
    _Atomic uint64_t fe_guard_ms; /* no frontend answers from the cache before this */
    _Atomic uint64_t fe_join_ms;  /* when this slot's live frontend took its lease; 0: never */
    _Atomic uint64_t fe_gone_ms;  /* the fe_join_ms of the incarnation whose death is recorded */
    uint8_t pad2[GW_CACHELINE - 32];
    /* Robust, process-shared: held by the live frontend of the slot for its
     * whole life, so its death (even SIGKILL) shows as a free or owner-dead
     * lock before the kernel closes its socket. Initialised with the segment. */
    union {
        pthread_mutex_t m;
        uint8_t line[GW_CACHELINE];
    } fe_lease;
    struct gw_stats stats; /* written only by the process in this slot */
};
GW_STATIC_ASSERT(sizeof(pthread_mutex_t) <= GW_CACHELINE, "the lease fits a cache line");

struct gw_shm_hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t hdr_size;
    uint64_t seg_size;
    uint32_t max_frontends;
    uint32_t ring_slots;
    uint32_t slot_size;
    uint32_t nrings;
    uint32_t max_txn;
    uint32_t txn_slot;
    uint32_t nbells;
    uint32_t nprocs;
    uint64_t rings_off;
    uint64_t ring_stride;
    uint64_t bells_off;
    uint64_t procs_off;
    uint64_t txn_off;
    uint32_t proc_slot_size;
    uint32_t stats_count;
    _Atomic uint64_t boot_id;   /* random per segment creation */
    _Atomic uint32_t txn_ready; /* scheduler formatted its table */
    uint32_t rcache_slots;      /* shared response cache slots (power of two; 0: none) */
    uint64_t rcache_off;
    uint32_t rcache_slot_size; /* bytes per slot */
    uint32_t pad;
    _Atomic uint32_t
        log_level; /* 0: each process's log_level; else level + 1 (coapgw loglevel, SIGUSR2) */
    uint32_t pad2;
};
GW_STATIC_ASSERT(sizeof(struct gw_shm_hdr) == 144, "shm header layout is fixed");

struct gw_shm {
    struct gw_shm_hdr *hdr;
    uint8_t *base;
    size_t size;
    int fd;
    char name[96];
};

/* Attaches to the instance's segment, creating (O_EXCL, mode 0600) and
 * formatting it when it does not exist (or when `fresh`, after unlinking the
 * old one, which must be ours). S9.2: an existing object must belong to the
 * effective uid and have mode 0600. Returns 0; GW_EUNSAFE with a message
 * naming the object when it does not; GW_ELAYOUT with a message when the
 * existing header differs; or -errno. */
int gw_shm_open(const struct gw_config *cfg, bool fresh, struct gw_shm *shm, char *err,
                size_t errlen) GW_NODISCARD;
void gw_shm_close(struct gw_shm *shm);
/* Checks an existing /dev/shm/coapgw-<instance> without opening it (S9.2):
 * 0 when it is absent or ours with mode 0600, else GW_EUNSAFE and a message. */
int gw_shm_check(const struct gw_config *cfg, char *err, size_t errlen) GW_NODISCARD;
int gw_shm_unlink(const struct gw_config *cfg);

struct gw_ring *gw_shm_ring(const struct gw_shm *shm, uint32_t idx);
static inline uint32_t gw_ring_fe_to_sch(uint32_t fe)
{
    return fe;
}
static inline uint32_t gw_ring_sch_to_fe(const struct gw_shm *s, uint32_t fe)
{
    return s->hdr->max_frontends + fe;
}
static inline uint32_t gw_ring_sch_to_mesh(const struct gw_shm *s)
{
    return 2 * s->hdr->max_frontends;
}
static inline uint32_t gw_ring_mesh_to_sch(const struct gw_shm *s)
{
    return 2 * s->hdr->max_frontends + 1;
}
struct gw_bell *gw_shm_bell(const struct gw_shm *shm, uint32_t idx);
struct gw_proc_slot *gw_shm_proc(const struct gw_shm *shm, uint32_t idx);
void *gw_shm_txn(const struct gw_shm *shm, uint32_t idx);
/* The shared response cache table (gw_rcache.h), disabled when the
 * configuration turns the cache or its shared table off. */
void gw_shm_rcache(const struct gw_shm *shm, struct gw_rcache *t);

/* data_dir/bell-<role> path for a bell index. */
void gw_bell_path(const struct gw_config *cfg, uint32_t bell, char *buf, size_t len);

/* True when pid names a live process (kill(pid, 0)). */
bool gw_pid_alive(uint32_t pid);

#endif
