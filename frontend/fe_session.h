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

/* ---- the stored record (issue 13: resident memory per idle session) ----
 * The value of `sessions` is variable-length: the session without its
 * endpoint (the key already is the endpoint), the account without its
 * unused bytes and the scope with only the entries used, each prefix in as
 * many bytes as its nibbles need:
 *   u8 version (FE_SESSION_REC_V2), u64 id, u8 security, sticky, single,
 *   node, i64 created, token_exp, last_seen (host order, as before),
 *   u8 account length (1..FE_ACCOUNT_MAX-1), the account (no NUL),
 *   u8 scope.all, u8 scope.n (<= FE_SCOPE_MAX), per entry: u8 nibbles
 *   (1..16), then (nibbles + 1) / 2 prefix bytes.
 * At most FE_SESSION_REC_MAX bytes, always fewer than the fixed-size
 * struct gw_session that earlier versions stored raw: a record of exactly
 * sizeof(struct gw_session) bytes is read in that old layout, so a data_dir
 * kept across an upgrade keeps its sessions (each is rewritten in the new
 * layout at its next write). */
#define FE_SESSION_REC_V2 2
#define FE_SESSION_REC_FIXED (1 + 8 + 4 + 3 * 8 + 1 + 2)
#define FE_SESSION_REC_MAX (FE_SESSION_REC_FIXED + (FE_ACCOUNT_MAX - 1) + FE_SCOPE_MAX * 9)
GW_STATIC_ASSERT(FE_SESSION_REC_MAX < sizeof(struct gw_session),
                 "a new record must never be taken for an old fixed-size one");

/* Encodes s (its ep is not part of the record) into buf (FE_SESSION_REC_MAX
 * bytes). Returns the length, or GW_EBADMSG when s cannot be stored (account
 * empty or not NUL-terminated within FE_ACCOUNT_MAX, scope.n or a nibble
 * count out of range). */
int fe_session_encode(const struct gw_session *s, uint8_t buf[FE_SESSION_REC_MAX]);
/* Decodes a stored record, new or old layout, of the session at endpoint ep
 * (its key). Returns 0 with *out (padding zeroed), or GW_EBADMSG with *diag
 * (may be NULL) set to a short static reason: truncated, trailing bytes,
 * unknown version, bad account, scope out of range. */
int fe_session_decode(const struct gw_ep *ep, const void *rec, size_t len, struct gw_session *out,
                      const char **diag) GW_NODISCARD;
/* Number of stored sessions. */
size_t fe_session_count(struct gw_store *st);

#endif
