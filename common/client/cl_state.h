/* SPDX-License-Identifier: MIT */
/* cl_state.h - what `coapgw client` keeps between invocations (pure apart
 * from reading and writing its one file).
 *
 * One small JSON file per gateway and local port, built with jansson:
 * $XDG_STATE_HOME/coapgw/client-<gateway>-<port>.json ($HOME/.local/state
 * when XDG_STATE_HOME is unset or not absolute, as the XDG base directory
 * specification says), mode 0600 in a 0700 folder, replaced atomically
 * (temporary file, fsync, rename) so that a killed client never leaves half
 * a file. It holds the session (id, account, security, sticky, expiry), the
 * gateway and local port it is bound to, and the next message ID, so that
 * successive invocations from the same port never reuse a recent MID and
 * hit the gateway's duplicate detection (RFC 7252 4.5, SPEC S3.3). */
#ifndef CL_STATE_H
#define CL_STATE_H

#include "gw_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cl_state {
    char id[40]; /* session id; "" = no session */
    char account[128];
    char security[8]; /* netmgr | none */
    bool sticky;
    int64_t created; /* Unix seconds, from the gateway */
    int64_t expires; /* Unix seconds: the token's exp; 0 = unknown */
    char gateway[256];
    uint16_t local_port;
    int32_t next_mid; /* -1 = none recorded */
};

void cl_state_init(struct cl_state *st, const char *gateway, uint16_t local_port);

/* The state file's path. xdg_state and home may be NULL or empty. Returns
 * 0, -ENOENT when neither gives an absolute folder, -ENAMETOOLONG. */
int cl_state_path(const char *xdg_state, const char *home, const char *gateway, uint16_t port,
                  char *out, size_t len) GW_NODISCARD;

/* Reads path. Returns 0; -ENOENT when there is no file; GW_EBADMSG when it
 * is not a state file (err says why); another -errno. st is initialised
 * (no session) on every error. */
int cl_state_load(const char *path, struct cl_state *st, char *err, size_t errlen) GW_NODISCARD;

/* Writes path atomically with mode 0600, creating its folder (0700).
 * Returns 0 or -errno. */
int cl_state_save(const char *path, const struct cl_state *st) GW_NODISCARD;

/* The state as a JSON object (caller owns the reference), NULL on ENOMEM. */
struct json_t *cl_state_json(const struct cl_state *st);

/* True when st holds a session for its gateway and port that has not
 * expired at wall-clock time now (seconds). The gateway may still have
 * ended it (idle timeout, restart); a 4.01 then re-opens it. */
bool cl_state_live(const struct cl_state *st, int64_t now);

/* Fills the session fields of st from a 2.01 answer to POST /sessions:
 * its Location-Path segments ("sessions", "<id>") and its JSON payload
 * (S2.3). The id comes from Location-Path, the rest from the payload.
 * Returns 0, or GW_EBADMSG with a reason in err. */
int cl_state_from_session(struct cl_state *st, const char *const *loc, unsigned nloc,
                          const uint8_t *payload, size_t len, char *err,
                          size_t errlen) GW_NODISCARD;

/* The `sub` claim (the account, S2.2) of a compact JWT, read without
 * verifying it: only to tell whether a recorded session is this token's
 * account. Returns 0, or GW_EBADMSG when it is not a JWT with a string sub. */
int cl_jwt_sub(const char *jwt, char *out, size_t len) GW_NODISCARD;

#endif
