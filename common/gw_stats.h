/* SPDX-License-Identifier: MIT */
/* gw_stats.h - counters and gauges each process keeps in its own slot of the
 * shared segment (relaxed atomics, one writer each), exported in the
 * Prometheus text format by the supervisor and `coapgw metrics` (S10.2). */
#ifndef GW_STATS_H
#define GW_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#define GW_STATS_LIST(X) \
    X(rx_datagrams, counter, "datagrams received") \
    X(tx_datagrams, counter, "datagrams sent") \
    X(rx_malformed, counter, "malformed datagrams dropped or reset") \
    X(rx_duplicates, counter, "duplicate client messages") \
    X(requests_local, counter, "requests to local resources") \
    X(requests_proxied, counter, "proxy requests accepted") \
    X(requests_unauthorized, counter, "requests refused with 4.01") \
    X(requests_forbidden, counter, "requests refused with 4.03") \
    X(requests_rate_limited, counter, "requests refused with 4.29") \
    X(requests_bad, counter, "requests refused with another 4.xx or 5.05") \
    X(responses_2xx, counter, "final responses 2.xx to clients") \
    X(responses_4xx, counter, "final responses 4.xx to clients") \
    X(responses_5xx, counter, "final responses 5.xx to clients") \
    X(client_retransmissions, counter, "CON retransmissions to clients") \
    X(client_timeouts, counter, "CON messages to clients never acknowledged") \
    X(sessions_created, counter, "sessions created") \
    X(sessions_ended, counter, "sessions ended") \
    X(sessions_live, gauge, "live sessions") \
    X(cache_hits, counter, "response cache hits") \
    X(cache_misses, counter, "response cache misses") \
    X(cache_entries, gauge, "response cache entries") \
    X(mesh_requests, counter, "requests sent to devices (first transmissions)") \
    X(mesh_retransmissions, counter, "retransmissions to devices") \
    X(mesh_timeouts, counter, "device exchanges that timed out (5.04)") \
    X(mesh_busy, counter, "requests refused for a busy Milli or full queue (5.03)") \
    X(queue_depth, gauge, "requests queued for devices") \
    X(inflight, gauge, "requests in flight to devices") \
    X(observations, gauge, "device observations") \
    X(observers, gauge, "client observers") \
    X(notifications, counter, "notifications sent to clients") \
    X(mesh_auth_failures, counter, "mesh frames failing authentication") \
    X(mesh_replays, counter, "mesh frames dropped as replays") \
    X(mesh_unknown_source, counter, "mesh datagrams from unknown sources") \
    X(ring_full, counter, "records dropped because a ring was full") \
    X(bell_writes, counter, "doorbell FIFO writes to wake a sleeping peer") \
    X(loop_turns, counter, "event loop turns (one epoll_wait return each)")

enum gw_stat_id {
#define GW_STAT_ENUM(name, kind, help) GW_STAT_##name,
    GW_STATS_LIST(GW_STAT_ENUM)
#undef GW_STAT_ENUM
    GW_STAT_COUNT
};

struct gw_stats {
    _Atomic uint64_t v[GW_STAT_COUNT];
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

#endif
