/* SPDX-License-Identifier: MIT */
/* bench_cache.c - response cache hit path and upkeep (SPEC S5).
 *
 * Prints figures, asserts nothing (STYLE: speed lives in tests/bench/).
 * The cache holds N entries (default 10,000) for GET /sensors/<i> with
 * Accept, each a 2.05 with ETag, Content-Format, Max-Age and a 32-byte
 * payload. Keys are visited in a scattered order so that most lookups miss
 * the CPU caches as they would with many clients. Measured per operation:
 *   get+render   sch_cache_get (FRESH) + sch_cache_render into a buffer
 *   key+get+rnd  the same plus sch_cache_key from the request view
 *   get (miss)   lookup of a key that is not stored
 *   put replace  sch_cache_put over an existing entry (malloc + free)
 *   put evict    sch_cache_put of a new key into a full cache (LRU eviction)
 * Build by hand:
 *   cc -O2 -std=c11 -D_GNU_SOURCE -Icommon -Ischeduler $(pkg-config --cflags libcoap-3-notls) \
 *      scheduler/sch_cache.c common/gw_coap.c tests/bench/bench_cache.c \
 *      -o /tmp/bench_cache $(pkg-config --libs libcoap-3-notls)
 * Usage: bench_cache [seconds per measurement, default 1] [entries, default 10000] */
#include "gw_coap.h"
#include "sch_cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const uint8_t mac[GW_MAC_LEN] = { 0x00, 0x12, 0x4b, 0x00, 0x0a, 0x0b, 0x0c, 0x0d };

struct req {
    struct gw_coap_msg m;
    char seg[16];
    uint8_t accept;
};

static void req_make(struct req *r, size_t i)
{
    memset(&r->m, 0, sizeof(r->m));
    r->m.type = GW_COAP_CON;
    r->m.code = GW_COAP_GET;
    snprintf(r->seg, sizeof(r->seg), "s%zu", i);
    r->accept = 50;
    r->m.opts[0] = (struct gw_coap_opt){ GW_OPT_URI_PATH, 7, (const uint8_t *)"sensors" };
    r->m.opts[1] =
        (struct gw_coap_opt){ GW_OPT_URI_PATH, (uint16_t)strlen(r->seg), (const uint8_t *)r->seg };
    r->m.opts[2] = (struct gw_coap_opt){ GW_OPT_ACCEPT, 1, &r->accept };
    r->m.nopts = 3;
}

struct key {
    uint8_t b[64];
    size_t len;
    uint64_t res;
};

static int bad;

static void check(int rc, int want, const char *what)
{
    if (rc != want && !bad) {
        fprintf(stderr, "bench_cache: %s returned %d, expected %d\n", what, rc, want);
        bad = 1;
    }
}

enum kind { GET_RENDER, KEY_GET_RENDER, GET_MISS, PUT_REPLACE, PUT_EVICT };

/* Runs kind for about secs seconds; returns nanoseconds per operation. */
static double bench(struct sch_cache *c, enum kind kind, const struct req *reqs,
                    const struct key *keys, size_t n, const struct gw_coap_msg *resp, double secs)
{
    uint8_t out[GW_COAP_MAX_MSG];
    static const uint8_t tok[8] = { 1, 2, 3, 4, 5, 6, 7, 8 };
    uint64_t ops = 0;
    size_t idx = 0, fresh = n; /* PUT_EVICT inserts keys n, n+1, ... */
    double t0 = now_s(), t1 = t0;
    do {
        for (int j = 0; j < 1024; j++, ops++) {
            idx = (idx + 7919) % n; /* scattered, covers all n when gcd(7919, n) == 1 */
            struct sch_cache_hit hit;
            size_t len;
            switch (kind) {
            case GET_RENDER:
                check(sch_cache_get(c, keys[idx].b, keys[idx].len, 1000, &hit), SCH_CACHE_FRESH,
                      "get");
                check(sch_cache_render(&hit, GW_COAP_ACK, (uint16_t)ops, tok, 8, out, sizeof(out),
                                       &len),
                      0, "render");
                break;
            case KEY_GET_RENDER: {
                struct key k;
                check(sch_cache_key(mac, 1, &reqs[idx].m, k.b, sizeof(k.b), &k.len, &k.res), 0,
                      "key");
                check(sch_cache_get(c, k.b, k.len, 1000, &hit), SCH_CACHE_FRESH, "get");
                check(sch_cache_render(&hit, GW_COAP_ACK, (uint16_t)ops, tok, 8, out, sizeof(out),
                                       &len),
                      0, "render");
                break;
            }
            case GET_MISS: {
                struct key k = keys[idx];
                k.b[k.len - 1] ^= 0x80; /* Accept value changed: not stored */
                check(sch_cache_get(c, k.b, k.len, 1000, &hit), SCH_CACHE_MISS, "get miss");
                break;
            }
            case PUT_REPLACE:
                check(sch_cache_put(c, keys[idx].b, keys[idx].len, keys[idx].res, resp, 1000), 0,
                      "put");
                break;
            case PUT_EVICT: {
                struct req r;
                struct key k;
                req_make(&r, fresh++);
                check(sch_cache_key(mac, 1, &r.m, k.b, sizeof(k.b), &k.len, &k.res), 0, "key");
                check(sch_cache_put(c, k.b, k.len, k.res, resp, 1000), 0, "put");
                break;
            }
            }
        }
        t1 = now_s();
    } while (t1 - t0 < secs);
    return (t1 - t0) * 1e9 / (double)ops;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    size_t n = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 10000;
    if (secs <= 0 || n == 0 || n % 7919 == 0) {
        fprintf(stderr, "usage: bench_cache [seconds > 0] [entries, not a multiple of 7919]\n");
        return 2;
    }
    struct sch_cache_cfg cfg = { .max_entries = n, .max_bytes = n * 1024, .default_max_age_s = 60 };
    struct sch_cache *c;
    if (sch_cache_new(&cfg, &c) != 0) {
        fprintf(stderr, "bench_cache: sch_cache_new failed\n");
        return 1;
    }
    struct req *reqs = calloc(n, sizeof(*reqs));
    struct key *keys = calloc(n, sizeof(*keys));
    if (!reqs || !keys) {
        fprintf(stderr, "bench_cache: out of memory\n");
        return 1;
    }

    struct gw_coap_msg resp;
    memset(&resp, 0, sizeof(resp));
    static const uint8_t etag[4] = { 0xde, 0xad, 0xbe, 0xef }, cf = 50, ma[2] = { 0x0e, 0x10 };
    static const char payload[] = "{\"t\":21.5,\"h\":40,\"ts\":1700000}"; /* 32 bytes */
    resp.type = GW_COAP_ACK;
    resp.code = GW_COAP_CONTENT;
    resp.opts[0] = (struct gw_coap_opt){ GW_OPT_ETAG, 4, etag };
    resp.opts[1] = (struct gw_coap_opt){ GW_OPT_CONTENT_FORMAT, 1, &cf };
    resp.opts[2] = (struct gw_coap_opt){ GW_OPT_MAX_AGE, 2, ma }; /* 3600 s */
    resp.nopts = 3;
    resp.payload = (const uint8_t *)payload;
    resp.payload_len = sizeof(payload) - 1;

    for (size_t i = 0; i < n; i++) {
        req_make(&reqs[i], i);
        check(sch_cache_key(mac, 1, &reqs[i].m, keys[i].b, sizeof(keys[i].b), &keys[i].len,
                            &keys[i].res),
              0, "key");
        check(sch_cache_put(c, keys[i].b, keys[i].len, keys[i].res, &resp, 0), 0, "put");
    }
    struct sch_cache_stats st;
    sch_cache_stats(c, &st);

    printf("sch_cache: %zu entries, %zu bytes charged (%.0f per entry), %.1f s per figure\n",
           st.entries, st.bytes, (double)st.bytes / (double)st.entries, secs);
    printf("caveat: 2-core VM shared with other jobs; figures are indicative only\n");
    printf("  get+render (fresh)   %7.1f ns/op\n",
           bench(c, GET_RENDER, reqs, keys, n, &resp, secs));
    printf("  key+get+render       %7.1f ns/op\n",
           bench(c, KEY_GET_RENDER, reqs, keys, n, &resp, secs));
    printf("  get (miss)           %7.1f ns/op\n", bench(c, GET_MISS, reqs, keys, n, &resp, secs));
    printf("  put (replace)        %7.1f ns/op\n",
           bench(c, PUT_REPLACE, reqs, keys, n, &resp, secs));
    printf("  put (new, evicts)    %7.1f ns/op\n", bench(c, PUT_EVICT, reqs, keys, n, &resp, secs));
    sch_cache_stats(c, &st);
    printf("  after: %zu entries, %llu evictions\n", st.entries, (unsigned long long)st.evictions);

    sch_cache_free(c);
    free(reqs);
    free(keys);
    return bad;
}
