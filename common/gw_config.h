/* SPDX-License-Identifier: MIT */
/* gw_config.h - one configuration for every role.
 *
 * Sources, later ones winning: built-in defaults, the file given with -c
 * (lines `key = value`, `#` comments), then environment variables
 * COAPGW_<KEY> (key in upper case). Every limit in the gateway is a key
 * here with a sane default and a range (SPEC S1.6); a value outside its
 * range is a configuration error naming the key, the source and the line. */
#ifndef GW_CONFIG_H
#define GW_CONFIG_H

#include "gw_defs.h"

#include <stdbool.h>
#include <stdint.h>

#define GW_CFG_STR 256
#define GW_CFG_MAX_KEYS 128

struct gw_config {
    /* Identity and files. */
    char listen[GW_CFG_STR];   /* client side address:port, default 0.0.0.0:5683 */
    char instance[64];         /* names the shared memory and the default data_dir */
    char data_dir[GW_CFG_STR]; /* LMDB, pid files, doorbells, development key; default below */
    char devices_file
        [GW_CFG_STR]; /* CSV mac,address,type,key[,plain_port,secure_port]; "" = embedded simulator */
    char log_level[16]; /* error, warn, info, debug; changed at run time by `coapgw loglevel` */
    char log_format[8]; /* text or json (one JSON object a line) */
    char names
        [GW_CFG_STR];  /* extra host names that mean the gateway itself (S4.8), comma separated */
    int64_t frontends; /* frontend processes sharing `listen` (S1.4) */
    int64_t max_frontends; /* ring pairs reserved in the shared segment */
    int64_t ring_slots;    /* slots per ring (power of two) */
    int64_t ring_poll_us;  /* after work, poll the rings this long before sleeping; 0 = never */
    char cpu_sched[8];     /* batch (SCHED_BATCH for the roles) or normal (as started) */
    int64_t mem_trim_ms;   /* after work, free heap pages return this soon (ms); 0 = never */
    int64_t
        meshsim; /* run the embedded simulator: -1 auto (when devices_file is empty), 0 no, 1 yes */
    int64_t meshsim_devices; /* devices of the embedded simulator */
    char meshsim_base[64];   /* first loopback address of simulated devices */
    char metrics_listen[64]; /* Prometheus text over HTTP from the supervisor; "" = off */

    /* Several nodes (S10.4, common/gw_nodes.h): each device owned by exactly
     * one node, chosen by rendezvous hashing of its MAC over the node ids. */
    int64_t node_id;          /* this node, 0..node_count-1 (the StatefulSet ordinal) */
    int64_t node_count;       /* nodes in the cluster; 1 = a single gateway owning every device */
    char nodes[2048];         /* the node_count client-facing host:port addresses, node-id order,
                                       comma separated (host names allowed); "" with node_count = 1 */
    int64_t node_token_ttl_s; /* lifetime of the tokens a node signs for its sessions at the
                                 others (renewed at half of it, or of session_idle_s) */
    int64_t node_queue_max; /* datagrams held per peer node and security while its session opens */

    /* Mesh side (S4.4, S4.5, S7). */
    int64_t mesh_ack_timeout_ms;
    int64_t mesh_max_transmit;
    int64_t milli_timeout_ms;
    int64_t milli_busy_max_age_s; /* Max-Age on the 5.03 for a busy Milli */
    int64_t nstart;
    int64_t device_queue_max; /* per-device FIFO bound; full: 5.03 "device queue full" */
    int64_t max_txn;          /* scheduler transactions (queued + in flight, and CON answers not yet
                                       ACKed by their clients: at most half the table, each at most the
                                       clients' MAX_TRANSMIT_WAIT); full: 5.03 */
    char mesh_bind[64];       /* local address of the mesh sockets */
    int64_t mesh_seq_block;   /* AEAD sequence numbers reserved per LMDB write */
    int64_t mesh_replay_window; /* informational: replay window is 64 frames */

    /* Client side message layer (S3). */
    int64_t client_ack_timeout_ms;
    int64_t client_max_retransmit;
    int64_t exchange_lifetime_ms;
    int64_t
        dedup_max; /* remembered (endpoint, MID, token) per frontend; full: oldest forgotten early */
    int64_t
        client_inflight_max; /* CON messages to clients being retransmitted; full: sent once, untracked */
    int64_t max_message;    /* largest request accepted (S3.5) */
    int64_t block_max_body; /* Block1 bodies for local resources; beyond: 4.13 with Size1 */
    int64_t
        block_transfers_max; /* block-wise transfers held; full: least recently used dropped (4.08 later) */
    int64_t block_timeout_ms;
    int64_t
        block_per_source; /* block-wise transfers one endpoint may hold; more: its own oldest dropped */
    int64_t block_sessionless_max; /* ... held for endpoints without a session; full: 5.03 (S9.1) */
    int64_t
        dedup_sessionless_max; /* dedup entries of sources without a session; full: their oldest forgotten */
    int64_t
        dedup_per_source; /* dedup entries one source may hold (endpoint with a session, else address);
                                       more: its own oldest forgotten, never another sender's */

    /* Sources without a session (S9.1): answers at most 3x the request, and a
     * token bucket per source address; over it, requests are dropped silently. */
    int64_t sessionless_rate;  /* requests per second per source address */
    int64_t sessionless_burst; /* bucket size */
    int64_t
        sessionless_sources; /* buckets held (power of two, rounded up); colliding addresses share one */

    /* Sessions and authentication (S2). */
    char jwt_alg[16];
    char jwt_key_file[GW_CFG_STR]; /* "" = development secret under data_dir (see dev_mode) */
    int64_t dev_mode;              /* 1: allow the development secret with a real mesh (S9.2) */
    char jwt_issuer[128];
    char jwt_audience[128];
    int64_t jwt_leeway_s;
    int64_t jwt_max_len;
    int64_t max_sessions;             /* full: 5.03 on POST /sessions */
    int64_t max_sessions_per_account; /* one more: 4.03 */
    int64_t session_idle_s;
    int64_t session_max_lifetime_s;
    int64_t session_max_inflight; /* proxy requests in flight per session; more: 4.29 + Max-Age */
    int64_t session_rate; /* proxy requests per second per session (token bucket); over: 4.29 */
    int64_t session_burst;
    int64_t unauth_log_per_s;

    /* Cache and observe (S5, S6). */
    int64_t cache_max_entries;    /* full: least recently used evicted */
    int64_t cache_max_bytes;      /* full: least recently used evicted */
    int64_t cache_shm_entries;    /* slots of the shared cache frontends answer hits from
                                     * (rounded down to a power of two; 0: off, every hit then
                                     * goes through the scheduler); full: a store replaces the
                                     * entry in its slot, which the scheduler still serves */
    int64_t cache_shm_slot_bytes; /* bytes per shared slot (key + response + 40); a larger
                                     * entry is served by the scheduler only */
    int64_t default_max_age_s;
    int64_t obs_grace_ms;
    int64_t obs_max_observers;    /* full: 5.03 to a new observer */
    int64_t obs_max_observations; /* full: 5.03 to a new observation */
    int64_t
        obs_max_per_session; /* observers one session may hold; one more: 4.29 with a diagnostic */
    int64_t obs_notify_con;  /* 1: CON notifications to clients; 0: follow the device's type */
    int64_t lmdb_map_mb;

    /* Where each key's value came from, so that an error found after loading
     * (a power of two, an address) still names file:line and the key. */
    char src_path[GW_CFG_STR];          /* the file given to gw_config_load, "" = none */
    uint32_t src_line[GW_CFG_MAX_KEYS]; /* per key in table order: 0 = default or environment */
    uint8_t src_env[GW_CFG_MAX_KEYS];   /* 1 = set from COAPGW_<KEY> */
};

/* The default data_dir (when the key is empty), which must not be in
 * world-writable territory (S9.2): as root /var/lib/coapgw/<instance>;
 * otherwise $XDG_STATE_HOME/coapgw/<instance> or, without it,
 * $HOME/.local/state/coapgw/<instance>: state that must outlive a reboot
 * (the AEAD sequence reservation guards against nonce reuse, S7.1), in a
 * directory only that user can write; only with neither variable set,
 * $XDG_RUNTIME_DIR/coapgw-<instance>. With none of them, the key must be
 * set (gw_config_load says so). */
int gw_config_default_data_dir(const char *instance, char *buf, size_t len) GW_NODISCARD;
/* The same rule with its inputs given (pure; NULL = variable not set):
 * 0, or GW_ECONFIG with buf empty when there is no default. */
int gw_config_data_dir_rule(unsigned euid, const char *xdg_state, const char *home,
                            const char *xdg_runtime, const char *instance, char *buf,
                            size_t len) GW_NODISCARD;

/* True when `coapgw run` runs the embedded mesh simulator: meshsim = 1, or
 * meshsim = -1 (auto) with no devices_file. */
bool gw_config_embedded_sim(const struct gw_config *cfg);
/* True when tokens are signed/verified with the development secret
 * (data_dir/dev-secret): jwt_key_file is empty. */
bool gw_config_dev_secret(const struct gw_config *cfg);
/* S9.2: the development secret is only for the embedded simulator or an
 * explicit dev_mode = true. Returns 0, or GW_ECONFIG with one line in err. */
int gw_config_check_key(const struct gw_config *cfg, char *err, size_t errlen) GW_NODISCARD;

/* Fills defaults, then reads `path` (may be NULL), then the environment.
 * On error returns GW_ECONFIG and writes a message to err (errlen bytes). */
int gw_config_load(struct gw_config *cfg, const char *path, char *err, size_t errlen) GW_NODISCARD;
void gw_config_defaults(struct gw_config *cfg);
/* Sets one key from text; GW_ECONFIG with a message for unknown keys or bad values. */
int gw_config_set(struct gw_config *cfg, const char *key, const char *val, char *err,
                  size_t errlen) GW_NODISCARD;
/* Checks what single keys cannot: instance characters, ring_slots a power of
 * two, log_level, log_format, jwt_alg, listen / metrics_listen (ADDRESS:PORT,
 * port 1..65535), mesh_bind and meshsim_base addresses, node_id / node_count /
 * nodes agreeing (gw_nodes_parse). The message names
 * file:line and the key (gw_config_where). gw_config_load calls it.
 * Returns 0 or GW_ECONFIG. */
int gw_config_validate(const struct gw_config *cfg, char *err, size_t errlen) GW_NODISCARD;
/* Where `key` was set, for messages: "FILE:LINE: key", "environment
 * COAPGW_KEY", or "key" (the default). */
const char *gw_config_where(const struct gw_config *cfg, const char *key, char *buf, size_t len);
/* Prints every key with its value, one `key = value` a line. */
void gw_config_dump(const struct gw_config *cfg, int fd);

#endif
