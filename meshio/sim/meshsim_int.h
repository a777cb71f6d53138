/* SPDX-License-Identifier: MIT */
/* meshsim_int.h - internals of the mesh simulator shared by its files.
 *
 * meshsim_dev.c holds the device logic with no I/O: behaviour strings,
 * resources, observers, counters, the duplicate table, the set of seen
 * sequence numbers and the event heap. meshsim.c owns the libuv loop and the
 * sockets, and drives that logic: it decides when each datagram is sent. */
#ifndef MESHSIM_INT_H
#define MESHSIM_INT_H

#include "gw_addr.h"
#include "gw_coap.h"
#include "gw_devfile.h"
#include "gw_dlist.h"
#include "gw_heap.h"
#include "gw_map.h"
#include "mesh_crypto.h"

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

/* RFC 7252 section 4.8 defaults, as a device uses them. */
#define MESHSIM_ACK_TIMEOUT_MS 2000
#define MESHSIM_MAX_RETRANSMIT 4
#define MESHSIM_EXCHANGE_LIFETIME_MS 247000
/* Latency above which a CON request is answered with an empty ACK first. */
#define MESHSIM_SEPARATE_AFTER_MS 1000
#define MESHSIM_MAX_OBSERVERS 256
#define MESHSIM_VALUE_MAX 1000
#define MESHSIM_BY_MAX 12
#define MESHSIM_BY_KEYLEN 32
/* Bounds: duplicate table entries (all devices), ranges of seen sequence
 * numbers per device, queued Milli requests per device. */
#define MESHSIM_DEDUP_CAP 65536
#define MESHSIM_SEEN_MAX 65536
#define MESHSIM_MILLI_QUEUE_MAX 64
/* Observe numbers after a (simulated) reboot start here (RFC 7641 3.4). */
#define MESHSIM_OBS_START 2

struct meshsim_behave {
    uint32_t lat_min, lat_max; /* ms */
    double loss;               /* percent, 0..100 */
    uint32_t drop_first;
    int64_t milli_delay; /* ms, -1 = global */
    int64_t obs_period;  /* ms, -1 = global */
    int64_t max_age;     /* s, Max-Age on /value answers; -1 = none (60 s implied) */
    bool silent, rst, ackonly, separate, con_notify, nolarge;
};

/* Parses "latency=5-10;loss=3;separate". Keys not given keep *b's values.
 * Returns 0, or GW_EBADMSG with a reason in why. */
int meshsim__behave_parse(const char *s, struct meshsim_behave *b, char *why,
                          size_t whylen) GW_NODISCARD;
/* Parses "MIN-MAX" or "MS" (milliseconds, at most 600000). Returns 0 or GW_EBADMSG. */
int meshsim__parse_range(const char *s, uint32_t *min, uint32_t *max) GW_NODISCARD;

struct meshsim_counters {
    uint64_t requests, con, non, duplicates, obs_register, obs_cancel, obs_rst, obs_timeout;
    uint64_t notifications, retransmissions, auth_failures, replays, nonce_reuse, secure;
    uint64_t pings, dropped, lost, queued, bad, refused;
    struct {
        char key[MESHSIM_BY_KEYLEN];
        uint64_t n;
    } by[MESHSIM_BY_MAX];
    unsigned nby;
    uint64_t by_other;
};

/* A CON message the device retransmits until ACK/RST: a separate response
 * or a CON notification. Exactly one EV_TXN event refers to it at any time,
 * and that event frees it; cancelling only unlinks it and sets cancelled. */
/* Where a CON message stands in its retransmissions (RFC 7252 4.2); a
 * newer notification inherits it from the one it replaces (RFC 7641 4.5.2). */
struct meshsim_rtx {
    uint8_t retries_left;
    uint32_t timeout_ms; /* current timeout (doubles per retransmission) */
    uint64_t due_ms;     /* when its event fires */
};

struct meshsim_txn {
    struct gw_dnode node; /* in dev->txns while not cancelled */
    struct meshsim_dev *dev;
    struct gw_ep ep;
    uint8_t secure, cancelled;
    uint16_t mid;
    struct meshsim_rtx rtx;
    uint32_t obs_id; /* 0 unless a notification */
    uint16_t len;
    uint8_t buf[];
};

struct meshsim_observer {
    uint32_t id; /* unique within the device, never 0 */
    struct gw_ep ep;
    uint8_t secure, tkl;
    uint8_t token[GW_COAP_MAX_TOKEN];
    uint16_t last_mid;       /* MID of the latest notification (RST matching) */
    struct meshsim_txn *txn; /* CON notification in flight, or NULL */
};

/* Sorted, disjoint, non-adjacent ranges of sequence numbers. */
struct meshsim_seen {
    struct {
        uint64_t lo, hi;
    } * r;
    uint32_t n, cap;
};
/* Adds v; returns true if it was present already. When more than max ranges
 * would exist, the lowest is forgotten. On allocation failure v is not added. */
bool meshsim__seen_add(struct meshsim_seen *s, uint64_t v, uint32_t max);
void meshsim__seen_free(struct meshsim_seen *s);

/* A Milli request waiting for service (raw plaintext, parsed again then). */
struct meshsim_qreq {
    struct meshsim_qreq *next;
    struct gw_ep ep;
    uint8_t secure, acked;
    uint32_t latency;
    uint16_t len;
    uint8_t buf[];
};

struct meshsim;

struct meshsim_sock {
    uv_udp_t h;
    struct meshsim_dev *dev;
    uint8_t secure;
    uint8_t open;
};

struct meshsim_dev {
    struct meshsim *sim;
    uint32_t idx;
    struct gw_device cfg;
    struct meshsim_behave beh;
    struct meshsim_sock sock[2]; /* [0] plain, [1] secure */
    int lockfd[2];               /* claims of address:port among simulators, or -1 */
    /* Resources. */
    char value[MESHSIM_VALUE_MAX + 1];
    size_t value_len;
    uint32_t value_ver;
    uint32_t sensor_ver;
    uint32_t obs_seq; /* 24 bits */
    struct meshsim_observer *obs;
    unsigned nobs, obs_cap;
    uint32_t next_obs_id;
    uint16_t next_mid;
    /* Security. */
    struct mesh_replay replay;
    uint64_t tx_seq;
    struct meshsim_seen seen;
    /* The last sealed frame sent, for the replay test hook (POST /_sim/replay). */
    uint8_t last_frame[MESH_MAX_FRAME];
    size_t last_len;
    struct gw_ep last_dst;
    /* Retransmitted messages in flight. */
    struct gw_dlist txns; /* of struct meshsim_txn */
    /* Milli service. */
    struct meshsim_qreq *qhead, *qtail, *cur;
    unsigned qlen;
    bool busy;
    struct meshsim_counters c;
};

/* Duplicate detection (RFC 7252 4.5): one table for all devices, a FIFO
 * ring (entries arrive in time order, so the oldest is always at the head)
 * indexed by a gw_map. */
enum { DD_DROPPED = 1, DD_PROCESSING, DD_DONE };
struct meshsim_dd_ent {
    uint64_t expires;
    struct gw_ep ep;
    uint32_t dev;
    uint16_t mid;
    uint8_t secure, state;
    uint16_t tx; /* transmissions seen */
    uint16_t len;
    uint8_t *resp; /* stored answer (plaintext), NULL if none */
};
struct meshsim_dedup {
    struct meshsim_dd_ent *ents;
    struct gw_map idx; /* hash of the key -> index into ents */
    uint32_t cap, head, count;
};
int meshsim__dedup_init(struct meshsim_dedup *t, uint32_t cap) GW_NODISCARD;
void meshsim__dedup_free(struct meshsim_dedup *t);
struct meshsim_dd_ent *meshsim__dedup_find(struct meshsim_dedup *t, uint32_t dev, uint8_t secure,
                                           const struct gw_ep *ep, uint16_t mid, uint64_t now);
/* Inserts a fresh entry (evicting expired or, when full, the oldest). */
struct meshsim_dd_ent *meshsim__dedup_add(struct meshsim_dedup *t, uint32_t dev, uint8_t secure,
                                          const struct gw_ep *ep, uint16_t mid, uint64_t now);
/* Stores a copy of the answer; returns 0 or -ENOMEM (entry left without one). */
int meshsim__dedup_store(struct meshsim_dd_ent *e, const uint8_t *buf, size_t len) GW_NODISCARD;

/* Events, in the simulator's gw_heap (ordered by due time, then insertion
 * order): the item's id is the kind, its p the object. */
enum { EV_SEND = 1, EV_MILLI, EV_TXN, EV_TICK };

/* Global settings of a run. */
struct meshsim_cfg {
    uint32_t lat_min, lat_max;
    double loss;
    uint32_t milli_delay;
    uint32_t obs_period;
    uint32_t obs_max_age;
};

/* Device logic (meshsim_dev.c). */
void meshsim__dev_init(struct meshsim_dev *d, const struct gw_device *cfg, uint64_t wall_ms);
/* Answers a request to the device's resources: changes resource state and
 * observers, and writes a response template (type ACK, MID 0; the caller sets
 * both) into out. *suppress is set when No-Response (RFC 7967) asks for no
 * answer. Counts the request. Returns 0 or GW_ETOOBIG. */
int meshsim__dev_respond(struct meshsim_dev *d, const struct meshsim_cfg *cfg, uint8_t secure,
                         const struct gw_ep *ep, const struct gw_coap_msg *req, uint8_t *out,
                         size_t cap, size_t *len, bool *suppress) GW_NODISCARD;
/* Is this a request to the /_sim test hooks? */
bool meshsim__is_sim_path(const struct gw_coap_msg *req);
/* Answers a /_sim request (template as above). */
int meshsim__dev_sim(struct meshsim_dev *d, const struct gw_coap_msg *req, uint8_t *out, size_t cap,
                     size_t *len) GW_NODISCARD;
/* Counts one accepted request in the per-method/path table. */
void meshsim__count_request(struct meshsim_dev *d, const struct gw_coap_msg *req);
/* The sensor changes: new version and Observe number. */
void meshsim__dev_sensor_tick(struct meshsim_dev *d);
/* Builds the current /sensor notification for o (type and MID: caller). */
int meshsim__dev_notification(const struct meshsim_dev *d, const struct meshsim_cfg *cfg,
                              const struct meshsim_observer *o, uint8_t *out, size_t cap,
                              size_t *len) GW_NODISCARD;
/* Removes observer i, cancelling its CON notification in flight. */
void meshsim__obs_remove(struct meshsim_dev *d, unsigned i);
struct meshsim_observer *meshsim__obs_by_id(struct meshsim_dev *d, uint32_t id);
/* Forgets observers and restarts Observe numbering (POST /_sim/reboot). */
void meshsim__dev_reboot(struct meshsim_dev *d);
/* Unlinks a txn from its device and marks it cancelled (its event frees it). */
void meshsim__txn_cancel(struct meshsim_txn *t);
/* Writes the counters as JSON; returns the length (always < cap). */
size_t meshsim__counters_json(const struct meshsim_dev *d, char *buf, size_t cap);
void meshsim__counters_add(struct meshsim_counters *sum, const struct meshsim_counters *c);

/* Patches type and MID of an encoded message. */
static inline void meshsim__set_type_mid(uint8_t *buf, uint8_t type, uint16_t mid)
{
    buf[0] = (uint8_t)((buf[0] & 0xcf) | (type & 3) << 4);
    buf[2] = (uint8_t)(mid >> 8);
    buf[3] = (uint8_t)mid;
}

#endif
