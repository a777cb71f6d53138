/* SPDX-License-Identifier: MIT */
/* fe_session.h - client sessions (SPEC S2), kept in LMDB so that every
 * frontend sees them and a restarted frontend loses none (S1.3, S1.4).
 *
 * A session is bound to one client endpoint (address and port, S2.4). It
 * ends on DELETE, after `idle_s` without proxy requests, when its token
 * expires, or `max_lifetime_s` after creation (S2.7). Expired sessions are
 * treated as absent at once and removed by a periodic sweep.
 *
 * last_seen is written at most once per `touch_every_s` per session, so a
 * busy session costs no write transaction per request. */
#ifndef FE_SESSION_H
#define FE_SESSION_H

#include "fe_auth.h"
#include "gw_addr.h"
#include "gw_defs.h"
#include "gw_store.h"

struct gw_session {
    uint64_t id;
    struct gw_ep ep;
    char account[FE_ACCOUNT_MAX];
    uint8_t security; /* enum gw_security */
    uint8_t sticky;
    uint8_t single;
    uint8_t node; /* a gateway node's session (S10.4): its node id + 1; 0 for a client's */
    uint8_t pad[4];
    int64_t created; /* unix seconds */
    int64_t token_exp;
    int64_t last_seen;
    struct fe_scope scope;
};

struct fe_sess_cfg {
    int64_t idle_s;
    int64_t max_lifetime_s;
    int64_t max_per_account;
    int64_t max_sessions;
    int64_t touch_every_s;
};

struct fe_sess_req {
    const char *account;
    struct gw_ep ep;
    uint8_t security, sticky, single;
    int64_t token_exp;
    const struct fe_scope *scope;
    /* Called after the commit for every other session the creation ended
     * (expired ones of the account, one replaced at this endpoint, one a
     * sticky move displaced), so their observations end too. May be NULL. */
    void (*ended)(void *ctx, const struct gw_session *s);
    void *ctx;
    /* [out] optional, FE_ACCOUNT_MAX bytes, set to "" by the call: when the
     * endpoint holds a live session of another account, that account (for
     * the WARN line naming both accounts). */
    char *holder;
    /* A gateway node's session (S10.4): node id + 1, 0 for a client. No
     * per-account limit applies; a second request from the endpoint that
     * holds the node's session renews it in place (same id, new expiry). */
    uint8_t node;
};

/* Creates (or, with sticky, re-points) a session. Returns 0 with *out;
 * GW_EFORBIDDEN with *diag for single-session and per-account limits (4.03);
 * also GW_EFORBIDDEN, with rq->holder set, when the endpoint holds a live
 * session of another account: nothing is changed (S2.10);
 * GW_EFULL when the gateway holds max_sessions (5.03); or a store error.
 * *moved receives the endpoint a sticky request took the session from
 * (family 0 when none). */
int fe_session_create(struct gw_store *st, const struct fe_sess_cfg *cfg,
                      const struct fe_sess_req *rq, int64_t now, struct gw_session *out,
                      struct gw_ep *moved, const char **diag) GW_NODISCARD;
/* The live session of an endpoint, or GW_ENOTFOUND (none, or expired). */
int fe_session_lookup(struct gw_store *st, const struct fe_sess_cfg *cfg, const struct gw_ep *ep,
                      int64_t now, struct gw_session *out) GW_NODISCARD;
/* Records activity (idle timeout) when last_seen is older than touch_every_s. */
int fe_session_touch(struct gw_store *st, const struct fe_sess_cfg *cfg, const struct gw_session *s,
                     int64_t now) GW_NODISCARD;
/* Ends the session of `ep` (id 0: whatever it is; else only that id). */
int fe_session_delete(struct gw_store *st, const struct gw_ep *ep, uint64_t id,
                      struct gw_session *ended) GW_NODISCARD;
/* Removes up to `max` expired sessions, calling `ended` for each. Returns the count. */
int fe_session_sweep(struct gw_store *st, const struct fe_sess_cfg *cfg, int64_t now, int max,
                     void (*ended)(void *ctx, const struct gw_session *s), void *ctx);
bool fe_session_expired(const struct fe_sess_cfg *cfg, const struct gw_session *s, int64_t now);
/* Number of stored sessions. */
size_t fe_session_count(struct gw_store *st);

#endif
