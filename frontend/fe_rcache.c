/* SPDX-License-Identifier: MIT */
/* fe_rcache.c - cache hits answered by the frontend, piggybacked on the ACK
 * (SPEC S3.1 allows it for a cache hit; S5; issue 13 item 1).
 *
 * The table is the scheduler's mirror of its response cache in the shared
 * segment (common/gw_rcache.h has the contract). Only what the scheduler
 * would itself answer from its cache at once is answered here: a CON GET,
 * no Observe (S5.2), no ETag of the client's own (the scheduler forwards
 * those), no Block2 size preference (the scheduler's path serves blocks),
 * no No-Response (its path decides what to suppress). The key is composed
 * from the request as it would go to the device, exactly as the scheduler
 * composes it, so it carries the device and the session's mesh security
 * (S5.1: never across security modes); the caller has already checked the
 * session's device scope (S2.2). Anything else, and every miss, stale or
 * torn entry, takes the ordinary path through the scheduler, which then
 * revalidates (S5.5) or fetches; so does a hit while a frontend of the port
 * started or stopped recently (fe_guard.h, S1.3). */
#include "fe_core.h"

#include "gw_coap.h"
#include "gw_stats.h"

int fe_rcache_answer(struct fe_core *fe, const uint8_t mac[GW_MAC_LEN], uint8_t sec,
                     const uint8_t *up, size_t ul, const struct gw_coap_msg *req, uint8_t *out,
                     size_t cap, size_t *len)
{
    if (!fe->rcache.nslots || !fe->rcache_parser || req->type != GW_COAP_CON ||
        req->code != GW_COAP_GET)
        return 0;
    for (unsigned i = 0; i < req->nopts; i++) {
        uint16_t n = req->opts[i].num;
        if (n == GW_OPT_OBSERVE || n == GW_OPT_ETAG || n == GW_OPT_BLOCK2 || n == GW_OPT_BLOCK1 ||
            n == GW_OPT_NO_RESPONSE)
            return 0;
    }
    /* The client's request is parsed already; the device-side one (the
     * same options, Uri-* instead of Proxy-Uri) is what the key is made of. */
    struct gw_coap_msg dev;
    uint8_t key[GW_RCACHE_KEY_MAX];
    size_t klen;
    uint64_t res_hash;
    if (gw_coap_parse(fe->rcache_parser, up, ul, &dev) != 0 ||
        gw_rcache_key(mac, sec, &dev, key, sizeof(key), &klen, &res_hash) != 0)
        return 0;
    uint8_t resp[GW_COAP_MAX_MSG + 16];
    size_t rl;
    uint32_t left;
    uint64_t now = gw_now_ms(fe->clock);
    if (gw_rcache_lookup(&fe->rcache, key, klen, res_hash, now, resp, sizeof(resp), &rl, &left) !=
        GW_RCACHE_FRESH) {
        return 0;
    }
    if (gw_rcache_render(resp, rl, left, GW_COAP_ACK, req->mid, req->token, req->tkl, out, cap,
                         len) != 0)
        return 0;
    /* S1.3: this may be a client's copy of a request another frontend of the
     * port forwarded before the set of sockets changed (answering it here
     * would be a second answer), or of one another frontend answered from
     * this table (forwarding it would be a second answer, with a new MID).
     * The scheduler knows the first kind; it says which (fe_guard.h). */
    if (fe->guard && !fe_guard_cache_ok(fe->guard, now)) {
        gw_stat_add(fe->stats, GW_STAT_cache_deferred, 1);
        return FE_RCACHE_CHECK;
    }
    gw_stat_add(fe->stats, GW_STAT_cache_hits, 1);
    return FE_RCACHE_HIT;
}
