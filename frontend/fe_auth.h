/* SPDX-License-Identifier: MIT */
/* fe_auth.h - JWT verification and minting for session creation (SPEC S2.2).
 *
 * Pure logic: no sockets, no logging, no globals. A struct fe_auth is
 * read-only after fe_auth_new(), so several threads may verify with it.
 *
 * Token checks, in order (any failure is GW_EAUTH with a short static diag):
 *   1. size: len > max_token_len is GW_ETOOBIG (checked before anything else);
 *      trailing ASCII whitespace (CR, LF, space, tab) is ignored, so a token
 *      POSTed from a file with its newline still works;
 *   2. shape: exactly three base64url segments (RFC 7515 section 7.1, no
 *      padding, canonical), header and payload non-empty, signature present;
 *   3. header: a JSON object with no duplicate members whose `alg` is exactly
 *      the configured algorithm's name. This is decided here, before libjwt
 *      sees the token, so `alg: none` and algorithm confusion (an HS256 token
 *      "signed" with the RS256 public key PEM as HMAC secret) never reach
 *      signature verification. `crit` is refused (RFC 7515 section 4.1.11);
 *   4. signature: libjwt 1.10.2 jwt_decode() with the configured key, then
 *      jwt_get_alg() is checked again against the configured algorithm;
 *   5. claims (payload parsed here with jansson, strict UTF-8, no duplicate
 *      members): see below.
 *
 * Claims:
 *   exp      required, NumericDate (JSON integer, or real: floored); the token
 *            is expired when exp + leeway_s <= now.
 *   nbf      optional NumericDate; refused when nbf > now + leeway_s.
 *   iat      optional NumericDate, copied to fe_claims.iat (0 when absent).
 *   sub      required non-empty string, at most FE_ACCOUNT_MAX - 1 bytes, no
 *            control characters (it ends up in logs and LMDB keys): the account.
 *   iss      when an issuer is configured: a string equal to it.
 *   aud      when an audience is configured: a string equal to it, or an array
 *            of strings containing it.
 *   devices  optional device scope (SPEC S2.2 "an optional claim restricting
 *            the devices an account may reach"). Either a JSON array of strings,
 *            one entry each, or one string holding a comma-separated list:
 *              "devices": ["0011223344556677", "00AA*"]
 *              "devices": "0011223344556677,00aa"
 *            Entry: 1..16 hex digits (case-insensitive), optional trailing '*';
 *            16 digits name one MAC ID, fewer are a prefix (the '*' is only
 *            decoration). At most FE_SCOPE_MAX entries. Absent means every
 *            device. Present but malformed, empty ("" or []) or too long is
 *            refused (fail closed): an empty restriction never widens to "all".
 *   node     optional integer 0..FE_NODE_CLAIM_MAX-1: the token of a gateway
 *            node forwarding requests for devices it does not own (S10.4,
 *            gw_nodes.h); copied to fe_claims.node (-1 when absent). The
 *            caller decides whether the sender may carry it.
 *
 * Keys: HS256 reads the secret's raw bytes (one trailing newline dropped,
 * at least FE_HS256_MIN_SECRET bytes, RFC 7518 section 3.2). RS256 and ES256
 * read a PEM public key (SubjectPublicKeyInfo), a certificate, or a private
 * key (unencrypted). A private key allows fe_auth_mint() with that algorithm.
 * RS256 needs RSA >= 2048 bits; ES256 needs EC P-256. Key files are bounded
 * by FE_KEY_FILE_MAX.
 *
 * Link with libjwt, jansson and libcrypto (jansson is used directly for the
 * strict header/claims parse: libjwt 1.10.2 reads non-integer claims as 0 and
 * so would, for instance, silently ignore "nbf": "9999999999"). */
#ifndef FE_AUTH_H
#define FE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "gw_defs.h"

enum fe_jwt_alg { FE_JWT_HS256, FE_JWT_RS256, FE_JWT_ES256 };

struct fe_auth_cfg {
    enum fe_jwt_alg alg;
    const char *key_file; /* see "Keys" above */
    const char *issuer;   /* NULL or "" = not enforced; else `iss` must equal */
    const char *audience; /* NULL or "" = not enforced; else `aud` must contain it */
    int64_t leeway_s;     /* clock skew allowed for exp/nbf, 0..FE_LEEWAY_MAX */
    size_t max_token_len; /* 0 = FE_TOKEN_LEN_DEFAULT; at most FE_TOKEN_LEN_MAX */
};

struct gw_config;
/* The verifier settings a configuration asks for (jwt_alg, jwt_issuer,
 * jwt_audience, jwt_leeway_s, jwt_max_len) with the key in key_file: one
 * reading for the frontend, `coapgw token` and `coapgw check`. */
void fe_auth_cfg_from(const struct gw_config *cfg, const char *key_file, struct fe_auth_cfg *out);

#define FE_ACCOUNT_MAX 64      /* max sub length incl NUL; longer sub -> reject */
#define FE_SCOPE_MAX 16        /* max device scope entries */
#define FE_HS256_MIN_SECRET 32 /* RFC 7518 section 3.2: key >= hash size */
#define FE_KEY_FILE_MAX (64 * 1024)
#define FE_TOKEN_LEN_DEFAULT 4096
#define FE_TOKEN_LEN_MAX (64 * 1024) /* libjwt copies tokens onto the stack */
#define FE_LEEWAY_MAX 86400
#define FE_NODE_CLAIM_MAX 64 /* GW_NODES_MAX: node ids 0..63 */

struct fe_scope {
    uint8_t n;   /* entries used in e[] */
    uint8_t all; /* 1: no restriction, e[] ignored */
    struct {
        uint8_t prefix[8]; /* nibbles packed high first; unused nibbles zero */
        uint8_t nibbles;   /* 1..16 significant nibbles */
    } e[FE_SCOPE_MAX];
};

struct fe_claims {
    char sub[FE_ACCOUNT_MAX]; /* NUL-terminated account ID */
    int64_t exp;
    int64_t iat; /* 0 when absent */
    struct fe_scope scope;
    int32_t node; /* `node` claim, -1 when absent */
};

struct fe_auth; /* opaque: configured algorithm, key bytes, policy */

/* Reads and checks the key, copies the policy.
 * [in]  cfg  configuration; not referenced after the call.
 * [out] out  new object, free with fe_auth_free(); NULL on error.
 * Errors: -EINVAL (NULL argument), -errno (open/read of key_file),
 *         -ENOMEM, GW_ECONFIG (unknown alg, bad/weak/wrong-type key, key file
 *         not regular or over FE_KEY_FILE_MAX, leeway or max_token_len out of
 *         range). */
GW_NODISCARD int fe_auth_new(const struct fe_auth_cfg *cfg, struct fe_auth **out);

/* As fe_auth_new(); diag (may be NULL) receives a static reason on error,
 * for the startup log line ("key is not an EC P-256 key", ...). */
GW_NODISCARD int fe_auth_new_diag(const struct fe_auth_cfg *cfg, struct fe_auth **out,
                                  const char **diag);

/* Wipes the key material and frees a. NULL is a no-op. */
void fe_auth_free(struct fe_auth *a);

/* Verifies a compact JWT (SPEC S2.2) at time now_s (unix seconds).
 * [in]  tok, len  token bytes, not NUL-terminated, may hold anything.
 * [out] out       claims, filled only on success.
 * [out] diag      may be NULL; on failure a short static reason
 *                 ("bad signature", "token expired", "missing sub", ...),
 *                 NULL on success. Safe to put in a 4.01 payload.
 * Returns 0, GW_ETOOBIG (len > max_token_len), GW_EAUTH (any rejection),
 *         -ENOMEM, -EINVAL (a or out NULL). */
GW_NODISCARD int fe_auth_verify(const struct fe_auth *a, const char *tok, size_t len, int64_t now_s,
                                struct fe_claims *out, const char **diag);

/* Mints a token with the configured algorithm: HS256, or RS256/ES256 when the
 * key file held a private key. Claims: sub, iat = now_s, exp = now_s + ttl_s,
 * iss/aud when configured, devices (canonical array) when given.
 * [in]  account   sub; same rules as verification (1..63 bytes, no controls).
 * [in]  devices   NULL/"" (all devices) or a list as for fe_scope_parse().
 * [out] out       malloc'd NUL-terminated token; the caller frees it.
 * [out] diag      may be NULL; static reason on failure.
 * Errors: GW_ECONFIG ("configuration holds only a public key"), GW_EBADMSG
 *         (bad devices list), -EINVAL (bad account, ttl_s <= 0 or overflow,
 *         NULL argument), GW_ETOOBIG (token would exceed max_token_len),
 *         -ENOMEM. */
GW_NODISCARD int fe_auth_mint(const struct fe_auth *a, const char *account, int64_t now_s,
                              int64_t ttl_s, const char *devices, char **out, const char **diag);

/* Parses a comma-separated device-scope list (see "devices" above; blanks
 * around entries are allowed).
 * [in]  list   NULL or "" -> scope->all = 1.
 * [out] scope  always written; on error it allows nothing (n = 0, all = 0).
 * Errors: GW_EBADMSG (bad or empty entry, more than FE_SCOPE_MAX entries),
 *         -EINVAL (scope NULL). */
GW_NODISCARD int fe_scope_parse(const char *list, struct fe_scope *scope);

/* Returns 1 if the 8-byte MAC ID is within scope: all = 1, or the first
 * `nibbles` hex nibbles of some entry match. 0 otherwise (NULL arguments
 * included). */
int fe_scope_allows(const struct fe_scope *scope, const uint8_t mac[8]);

#endif
