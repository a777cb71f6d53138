/* SPDX-License-Identifier: MIT */
/* fe_local.h - the gateway's own resources (SPEC S8, S2.1-S2.7, S2.9).
 *
 *   /.well-known/core   link format (RFC 6690)
 *   /echo               answers with the request's payload
 *   /help               how sessions work
 *   /sessions           POST a JWT: 2.01 + Location-Path sessions/<id>;
 *                       GET: this endpoint's session; DELETE: end it
 *   /sessions/<id>      GET / DELETE (only from the session's own endpoint)
 *   /devices            the devices the caller's session may reach (JSON)
 *
 * Block-wise transfer (RFC 7959) for all of them: Block2 with the size the
 * client asks for (or 1024 when an answer does not fit one message), Block1
 * for request bodies up to block_max_body. No socket here: answers go out
 * through the reply callback. */
#ifndef FE_LOCAL_H
#define FE_LOCAL_H

#include "fe_auth.h"
#include "fe_block.h"
#include "fe_msglayer.h"
#include "fe_route.h"
#include "fe_session.h"
#include "gw_config.h"
#include "gw_log.h"
#include "gw_nodes.h"

struct fe_local {
    const struct gw_config *cfg;
    struct gw_store *store;
    struct fe_auth *auth;
    const struct fe_sess_cfg *scfg;
    struct fe_blocks *blocks;
    struct gw_coap_parser *parser;
    void *ctx;
    void (*reply)(void *ctx, const struct gw_ep *ep, const struct gw_coap_msg *req,
                  struct fe_dedup_entry *de, const uint8_t *buf, size_t len);
    uint16_t (*mid)(void *ctx);
    void (*session_ended)(void *ctx, const struct gw_session *s);
    void (*session_created)(void *ctx, const struct gw_session *s, const struct gw_ep *moved_from);
    /* The current request's sender holds no session (set by the caller
     * before fe_local_handle): its block-wise state is bounded apart. */
    bool sessionless;
    /* The WARN about a refused cross-account session request (S2.10) is
     * rate-limited like the 4.01 one: a forged sender can repeat it. */
    struct gw_log_limit conflict_log;
    /* Clock overrides for tests (NULL = real clock). */
    const struct gw_clock *clock;
    /* The cluster's nodes (S10.4), NULL for a single node: a token with a
     * `node` claim is accepted only from that node's address. Resolved
     * again on demand when the names did not resolve at start. */
    struct gw_nodes *nodes;
};

/* Handles a request for a local resource. t is the parsed Proxy-Uri when the
 * request named the gateway itself through a proxy option (S4.8), else NULL. */
void fe_local_handle(struct fe_local *l, const struct gw_ep *ep, const struct gw_coap_msg *req,
                     const struct fe_target *t, struct fe_dedup_entry *de);

/* Key of a proxied representation for Block2 follow-ups: target host, path,
 * query and Accept. */
uint64_t fe_local_target_key(const struct gw_coap_msg *req, const struct fe_target *t);

#endif
