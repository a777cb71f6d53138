/* SPDX-License-Identifier: MIT */
/* test_rcache.c - the shared response-cache table (common/gw_rcache.h):
 * freshness, keys sharing a slot, invalidation, a slot left odd by a killed
 * writer, and a writer thread racing reader threads (SPEC S5, S3.1; issue 13).
 *
 * Criterion cannot start under TSan (see test_ring.c), so a TSan build turns
 * this file into a plain program running the thread test only. */
#include "gw_config.h"
#include "gw_error.h"
#include "gw_rcache.h"
#include "gw_shm.h"

#if defined(__SANITIZE_THREAD__)
#define GW_TEST_PLAIN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define GW_TEST_PLAIN 1
#endif
#endif

#ifndef GW_TEST_PLAIN
#include <criterion/criterion.h>
#endif

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A table on private memory. */
static struct gw_rcache tab_new(uint32_t nslots, uint32_t slot_size)
{
    struct gw_rcache t;
    void *mem = aligned_alloc(64, gw_rcache_bytes(nslots, slot_size));
    if (mem)
        memset(mem, 0, gw_rcache_bytes(nslots, slot_size));
    gw_rcache_attach(&t, mem, nslots, slot_size);
    return t;
}

/* ---- the writer thread against reader threads ---- */

/* The writer runs for RACE_MS (bounded by RACE_STORES stores) so that the
 * readers overlap it for a while also on a busy machine or under TSan. */
#define RACE_STORES 20000000u
#define RACE_MS 700
#define RACE_READERS 2

struct race {
    struct gw_rcache t;
    _Atomic int done;
    _Atomic uint64_t fresh, torn, misses;
};

/* Entry g: 8 + g % 200 bytes, every byte g & 0xff, so a torn copy (parts of
 * two generations, or a length from one and bytes from another) shows. */
static size_t race_body(uint32_t g, uint8_t *b)
{
    size_t n = 8 + g % 240;
    memset(b, (int)(g & 0xff), n);
    b[0] = (uint8_t)n; /* the length the bytes claim */
    return n;
}

static void *race_writer(void *arg)
{
    struct race *r = arg;
    uint8_t body[256];
    static const uint8_t key[] = "k/value";
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (uint32_t g = 1; g <= RACE_STORES; g++) {
        if (g % 4096 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > RACE_MS)
                break;
        }
        size_t n = race_body(g, body);
        if (gw_rcache_store(&r->t, key, sizeof(key), 7, body, n, 1000000) != 0)
            atomic_fetch_add(&r->torn, 1000000); /* cannot happen: it fits */
        if (g % 1000 == 0)
            gw_rcache_invalidate(&r->t, 7); /* readers also race clears */
    }
    atomic_store(&r->done, 1);
    return NULL;
}

static void *race_reader(void *arg)
{
    struct race *r = arg;
    static const uint8_t key[] = "k/value";
    uint8_t body[256];
    for (int i = 0; i < 50000000 && !atomic_load(&r->done); i++) {
        size_t n = 0;
        uint32_t left = 0;
        if (gw_rcache_lookup(&r->t, key, sizeof(key), 7, 0, body, sizeof(body), &n, &left) !=
            GW_RCACHE_FRESH) {
            atomic_fetch_add(&r->misses, 1);
            continue;
        }
        bool ok = n >= 8 && body[0] == n && left == 1000;
        for (size_t k = 1; ok && k < n; k++)
            ok = body[k] == body[1];
        atomic_fetch_add(ok ? &r->fresh : &r->torn, 1);
    }
    return NULL;
}

/* Returns the number of failed checks; `what` names the first. */
static int race_run(const char **what)
{
    static struct race r;
    memset(&r, 0, sizeof(r));
    r.t = tab_new(4, 512);
    if (!r.t.base) {
        *what = "aligned_alloc";
        return 1;
    }
    pthread_t w, rd[RACE_READERS];
    for (int i = 0; i < RACE_READERS; i++)
        if (pthread_create(&rd[i], NULL, race_reader, &r) != 0) {
            *what = "pthread_create";
            return 1;
        }
    if (pthread_create(&w, NULL, race_writer, &r) != 0) {
        *what = "pthread_create";
        return 1;
    }
    pthread_join(w, NULL);
    for (int i = 0; i < RACE_READERS; i++)
        pthread_join(rd[i], NULL);
    int fails = 0;
    if (atomic_load(&r.torn) != 0) {
        *what = "a reader saw a torn entry";
        fails++;
    }
    if (atomic_load(&r.fresh) == 0) {
        *what = fails ? *what : "no reader ever saw a fresh entry";
        fails++;
    }
    free(r.t.base);
    return fails;
}

#ifndef GW_TEST_PLAIN

static const uint8_t K1[] = "\x02\x00\x00\x00\x00\x00\x00\x11\x00\x01key-one";
static const uint8_t K2[] = "\x02\x00\x00\x00\x00\x00\x00\x11\x00\x01key-two";
static const uint8_t RESP[] = "\x40\x45\x00\x00\xff"
                              "21.5";

/* S5.1: an entry is used while now < expiry, with Max-Age = whole seconds left. */
Test(rcache, fresh_until_expiry_with_max_age_counting_down)
{
    struct gw_rcache t = tab_new(16, 256);
    cr_assert_not_null(t.base);
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 42, RESP, sizeof(RESP), 60000), 0);
    uint8_t out[64];
    size_t n;
    uint32_t left;
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 42, 1000, out, sizeof(out), &n, &left),
                 GW_RCACHE_FRESH);
    cr_assert_eq(n, sizeof(RESP));
    cr_assert_arr_eq(out, RESP, n);
    cr_assert_eq(left, 59);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 42, 59999, out, sizeof(out), &n, &left),
                 GW_RCACHE_FRESH);
    cr_assert_eq(left, 0);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 42, 60000, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS,
                 "expired entries are misses (S5.5 revalidation is the scheduler's)");
    /* A response longer than the reader's buffer is a miss, never a cut copy. */
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 42, 1000, out, 4, &n, &left), GW_RCACHE_MISS);
    free(t.base);
}

/* S5.1: another key (another Accept, security mode or device) is never served,
 * even from its resource's slot; a store there replaces the entry. */
Test(rcache, other_key_in_the_slot_is_a_miss)
{
    struct gw_rcache t = tab_new(16, 256);
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 42, RESP, sizeof(RESP), 60000), 0);
    uint8_t out[64];
    size_t n;
    uint32_t left;
    cr_assert_eq(gw_rcache_lookup(&t, K2, sizeof(K2), 42, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1) - 1, 42, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS, "a prefix of the key is another key");
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 42 + 16, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS, "same slot, another resource hash");
    cr_assert_eq(gw_rcache_store(&t, K2, sizeof(K2), 42, RESP, 4, 60000), 0);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 42, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS);
    cr_assert_eq(gw_rcache_lookup(&t, K2, sizeof(K2), 42, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_FRESH);
    cr_assert_eq(n, 4);
    free(t.base);
}

/* S5.3: invalidation drops the resource's entry and nothing else; remove
 * drops only the key it names. */
Test(rcache, invalidate_and_remove)
{
    struct gw_rcache t = tab_new(16, 256);
    uint8_t out[64];
    size_t n;
    uint32_t left;
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 1, RESP, sizeof(RESP), 60000), 0);
    cr_assert_eq(gw_rcache_store(&t, K2, sizeof(K2), 2, RESP, sizeof(RESP), 60000), 0);
    gw_rcache_invalidate(&t, 17); /* slot 1, another resource: stays */
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 1, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_FRESH);
    gw_rcache_invalidate(&t, 1);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 1, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS);
    gw_rcache_remove(&t, K1, sizeof(K1), 2); /* not the key slot 2 holds */
    cr_assert_eq(gw_rcache_lookup(&t, K2, sizeof(K2), 2, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_FRESH);
    gw_rcache_remove(&t, K2, sizeof(K2), 2);
    cr_assert_eq(gw_rcache_lookup(&t, K2, sizeof(K2), 2, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS);
    free(t.base);
}

/* An entry too large for a slot is not mirrored, and the older one under
 * the key goes (the scheduler's newer answer supersedes it). */
Test(rcache, too_large_drops_the_older_entry)
{
    struct gw_rcache t = tab_new(4, 128);
    uint8_t big[200], out[256];
    memset(big, 'x', sizeof(big));
    size_t n;
    uint32_t left;
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 3, RESP, sizeof(RESP), 60000), 0);
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 3, big, sizeof(big), 60000), GW_ETOOBIG);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 3, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS);
    free(t.base);
}

/* Crash contract: a writer killed between W1 and W3 leaves the slot odd,
 * half written; readers take it as a miss, never as an entry, and the
 * restarted scheduler's clear_all makes the slot usable again. */
Test(rcache, odd_slot_left_by_a_killed_writer_is_a_miss_until_cleared)
{
    struct gw_rcache t = tab_new(8, 256);
    uint8_t out[64];
    size_t n;
    uint32_t left;
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 5, RESP, sizeof(RESP), 60000), 0);
    struct gw_rcache_slot *s = (struct gw_rcache_slot *)(t.base + 5 * 256);
    /* What W1 and half of W2 leave: odd, and a length that no longer matches. */
    atomic_store(&s->seq, atomic_load(&s->seq) + 1);
    atomic_store(&s->w[0], (uint64_t)sizeof(K1) | (uint64_t)3 << 16);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 5, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS);
    gw_rcache_clear_all(&t);
    cr_assert_eq(atomic_load(&s->seq) & 1, 0, "clear_all leaves every slot even");
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 5, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS, "cleared, not resurrected");
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 5, RESP, sizeof(RESP), 60000), 0);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 5, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_FRESH);
    cr_assert_arr_eq(out, RESP, sizeof(RESP));
    free(t.base);
}

/* A disabled table (0 slots) stores nothing and always misses. */
Test(rcache, disabled_table)
{
    struct gw_rcache t;
    gw_rcache_attach(&t, NULL, 0, 512);
    uint8_t out[64];
    size_t n;
    uint32_t left;
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 5, RESP, sizeof(RESP), 60000), 0);
    cr_assert_eq(gw_rcache_lookup(&t, K1, sizeof(K1), 5, 0, out, sizeof(out), &n, &left),
                 GW_RCACHE_MISS);
}

/* The segment holds the table when the cache is on (rounded down to a power
 * of two), none when it is off; the header says so. */
Test(rcache, shm_region_from_config)
{
    char dir[] = "/tmp/coapgw-rc-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    struct gw_config cfg;
    gw_config_defaults(&cfg);
    snprintf(cfg.instance, sizeof(cfg.instance), "rctest%d", (int)getpid());
    snprintf(cfg.data_dir, sizeof(cfg.data_dir), "%s", dir);
    cfg.cache_shm_entries = 1000;
    cfg.cache_shm_slot_bytes = 300;
    struct gw_shm a;
    char err[256];
    cr_assert_eq(gw_shm_open(&cfg, true, &a, err, sizeof(err)), 0, "%s", err);
    struct gw_rcache t;
    gw_shm_rcache(&a, &t);
    cr_assert_eq(t.nslots, 512);
    cr_assert_eq(t.slot_size, 256);
    cr_assert(a.hdr->rcache_off + 512u * 256u <= a.hdr->seg_size);
    cr_assert_eq(gw_rcache_store(&t, K1, sizeof(K1), 9, RESP, sizeof(RESP), 60000), 0);
    gw_shm_close(&a);
    cr_expect_eq(gw_shm_unlink(&cfg), 0);
    cfg.cache_max_entries = 0;
    cr_assert_eq(gw_shm_open(&cfg, true, &a, err, sizeof(err)), 0, "%s", err);
    gw_shm_rcache(&a, &t);
    cr_assert_eq(t.nslots, 0);
    gw_shm_close(&a);
    cr_expect_eq(gw_shm_unlink(&cfg), 0);
    cr_expect_eq(rmdir(dir), 0);
}

/* A writer thread storing and invalidating while two reader threads look
 * up: no reader ever gets a torn entry (seqlock R1..R3 against W1..W3). */
Test(rcache, concurrent_writer_never_yields_a_torn_entry, .timeout = 120)
{
    const char *what = "";
    int fails = race_run(&what);
    cr_assert_eq(fails, 0, "%d failed checks, first: %s", fails, what);
}

#else /* GW_TEST_PLAIN */
int main(void)
{
    const char *what = "";
    int fails = race_run(&what);
    printf("[%s] rcache::concurrent_writer_never_yields_a_torn_entry%s%s\n",
           fails ? "FAIL" : "PASS", fails ? ": " : "", what);
    return fails != 0;
}
#endif
