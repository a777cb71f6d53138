/* SPDX-License-Identifier: MIT */
/* gw_stats.h - counters, gauges and histograms each process keeps in its own
 * slot of the shared segment (relaxed atomics, one writer each), exported in
 * the Prometheus text format by the supervisor and `coapgw metrics` (S10.2).
 *
 * Each counter names the roles that keep it (GW_SR_*): a series is exported
 * only for the processes where it means something, so a frontend shows no
 * mesh retransmissions and meshio no sessions. Outcomes are not separate
 * counters: every final response to a client is counted once, by its CoAP
 * code, in `codes` (exported as coapgw_responses_total{code="4.03"}). */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stdatomic.h>
#include <stdint.h>

/* Roles that keep a statistic. */
#define GW_SR_FE 0x1
#define GW_SR_SCH 0x2
#define GW_SR_MESH 0x4
#define GW_SR_ALL (GW_SR_FE | GW_SR_SCH | GW_SR_MESH)

/* X(name, kind, roles, help). Counters are exported as coapgw_<name>_total. */
#define GW_STATS_LIST(X)                                                                           \
    X(rx_datagrams, counter, GW_SR_FE | GW_SR_MESH, "datagrams received")                          \
    X(tx_datagrams, counter, GW_SR_FE | GW_SR_MESH, "datagrams sent")                              \
    X(rx_malformed, counter, GW_SR_ALL, "malformed datagrams or records dropped or reset")         \
    X(rx_duplicates, counter, GW_SR_FE | GW_SR_SCH, "duplicate client messages")                   \
    X(requests_local, counter, GW_SR_FE, "requests to local resources")                            \
    X(requests_proxied, counter, GW_SR_FE, "proxy requests accepted for the scheduler")            \
    X(sessionless_dropped, counter, GW_SR_FE,                                                      \
      "requests from senders without a session dropped by their rate limit")                       \
    X(client_retransmissions, counter, GW_SR_FE, "CON retransmissions to clients")                 \
    X(client_timeouts, counter, GW_SR_FE, "CON messages to clients never acknowledged")            \
    X(sessions_created, counter, GW_SR_FE, "sessions created")                                     \
    X(sessions_ended, counter, GW_SR_FE, "sessions ended")                                         \
    X(sessions_live, gauge, GW_SR_FE, "live sessions (shared by all frontends)")                   \
    /* frontends count the hits they answer from the shared table (gw_rcache.h) */                 \
    X(cache_hits, counter, GW_SR_FE | GW_SR_SCH, "response cache hits")                            \
    X(cache_deferred, counter, GW_SR_FE,                                                           \
      "fresh cache hits sent to the scheduler after a frontend of the port started or stopped")    \
    X(cache_misses, counter, GW_SR_SCH, "response cache misses")                                   \
    X(cache_entries, gauge, GW_SR_SCH, "response cache entries")                                   \
    X(mesh_requests, counter, GW_SR_SCH, "requests sent to devices (first transmissions)")         \
    X(mesh_retransmissions, counter, GW_SR_SCH, "retransmissions to devices")                      \
    X(mesh_timeouts, counter, GW_SR_SCH, "device exchanges that timed out (5.04)")                 \
    X(mesh_busy, counter, GW_SR_SCH, "requests refused for a busy Milli or a full queue (5.03)")   \
    X(queue_depth, gauge, GW_SR_SCH, "requests queued for devices")                                \
    X(inflight, gauge, GW_SR_SCH, "requests in flight to devices")                                 \
    X(txn_used, gauge, GW_SR_SCH, "scheduler transactions in use (bound: max_txn)")                \
    X(observations, gauge, GW_SR_SCH, "device observations")                                       \
    X(observers, gauge, GW_SR_SCH, "client observers")                                             \
    X(notifications, counter, GW_SR_FE, "notifications sent to clients")                           \
    X(mesh_auth_failures, counter, GW_SR_MESH, "mesh frames failing authentication")               \
    X(mesh_replays, counter, GW_SR_MESH, "mesh frames dropped as replays")                         \
    X(mesh_unknown_source, counter, GW_SR_MESH, "mesh datagrams from unknown sources")             \
    X(node_forwarded, counter, GW_SR_MESH, "datagrams sent to owner nodes (S10.4)")                \
    X(node_received, counter, GW_SR_MESH, "datagrams from other nodes passed to the scheduler")    \
    X(node_sessions, counter, GW_SR_MESH, "sessions opened or renewed at other nodes")             \
    X(node_held_dropped, counter, GW_SR_MESH,                                                      \
      "datagrams for another node dropped while its session opened (node_queue_max)")              \
    X(ring_full, counter, GW_SR_ALL, "records not pushed because a ring was full")                 \
    X(bell_writes, counter, GW_SR_ALL, "doorbell FIFO writes to wake a sleeping peer")             \
    X(loop_turns, counter, GW_SR_ALL, "event loop turns (one epoll_wait return each)")

enum gw_stat_id {
#define GW_STAT_ENUM(name, kind, roles, help) GW_STAT_##name,
    GW_STATS_LIST(GW_STAT_ENUM)
#undef GW_STAT_ENUM
        GW_STAT_COUNT
};

/* Final responses by CoAP code: classes 2, 4 and 5, detail 0..31. */
#define GW_STAT_CODES 96
static inline int gw_stat_code_index(uint8_t code)
{
    uint8_t cls = code >> 5, det = code & 31;
    return cls == 2 ? det : cls == 4 ? 32 + det : cls == 5 ? 64 + det : -1;
}
static inline uint8_t gw_stat_code_of(int idx)
{
    return (uint8_t)((idx < 32 ? 2 : idx < 64 ? 4 : 5) << 5 | (idx & 31));
}

/* Latency histograms. Bucket upper bounds in microseconds; the last bucket
 * (+Inf) is implicit. Buckets are stored non-cumulative and summed when
 * rendered, so an update is two relaxed increments and one add. */
#define GW_HIST_BOUNDS_US                                                                          \
    {                                                                                              \
        100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,     \
            2500000, 5000000, 10000000, 30000000, 60000000, 120000000, 300000000, 600000000        \
    }
#define GW_HIST_NBOUNDS 21
enum gw_hist_id {
    GW_HIST_PROXIED = 0, /* frontend: client request -> final response through the mesh */
    GW_HIST_CACHE,       /* frontend: ... answered from the cache (shared table or scheduler) */
    GW_HIST_LOCAL,       /* frontend: ... answered by the frontend itself */
    GW_HIST_DEVICE_RTT,  /* scheduler: first transmission -> the device's answer */
    GW_HIST_COUNT
};
struct gw_hist {
    _Atomic uint64_t bucket[GW_HIST_NBOUNDS + 1];
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

struct gw_stats {
    _Atomic uint64_t v[GW_STAT_COUNT];
    _Atomic uint64_t codes[GW_STAT_CODES];
    struct gw_hist hist[GW_HIST_COUNT];
};

static inline void gw_stat_add(struct gw_stats *s, enum gw_stat_id id, int64_t d)
{
    if (s)
        atomic_fetch_add_explicit(&s->v[id], (uint64_t)d, memory_order_relaxed);
}
static inline void gw_stat_set(struct gw_stats *s, enum gw_stat_id id, uint64_t v)
{
    if (s)
        atomic_store_explicit(&s->v[id], v, memory_order_relaxed);
}
/* Counts one final response to a client by its code (other classes are ignored). */
static inline void gw_stat_code(struct gw_stats *s, uint8_t code)
{
    int i = gw_stat_code_index(code);
    if (s && i >= 0)
        atomic_fetch_add_explicit(&s->codes[i], 1, memory_order_relaxed);
}
static inline void gw_stat_observe(struct gw_stats *s, enum gw_hist_id h, uint64_t us)
{
    static const uint64_t bounds[GW_HIST_NBOUNDS] = GW_HIST_BOUNDS_US;
    if (!s)
        return;
    int b = 0;
    while (b < GW_HIST_NBOUNDS && us > bounds[b])
        b++;
    struct gw_hist *x = &s->hist[h];
    atomic_fetch_add_explicit(&x->bucket[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&x->count, 1, memory_order_relaxed);
}

#endif
