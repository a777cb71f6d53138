/* SPDX-License-Identifier: MIT */
/* test_meshio_seq.c - meshio's state and datagram logic with a real LMDB in
 * mkdtemp (SPEC S7.1: no nonce reuse across meshio restarts, replay
 * protection; S7.2: registry changes while running). Restarts are simulated
 * by closing and re-opening the store and re-initialising from it only. */
#include "gw_error.h"
#include "gw_msg.h"
#include "gw_registry.h"
#include "gw_store.h"
#include "mesh_crypto.h"
#include "meshio.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Every GW_NODISCARD call is checked; E() for calls that must succeed. */
#define E(expr) cr_assert_eq((expr), 0, "%s", #expr)

static char dir[64];
static struct gw_store store;

static const uint8_t mac_a[GW_MAC_LEN] = { 0x02, 0, 0, 0, 0, 0, 0, 0x01 };
static const uint8_t key_a[MESH_KEY_LEN] = { 0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7,
                                             0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf };
static const uint8_t key_b[MESH_KEY_LEN] = { 0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57,
                                             0x58, 0x59, 0x5a, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f };

static void store_open(void)
{
    E(gw_store_open(&store, dir, 16));
}

/* A restart: the process state is gone, only LMDB remains. */
static void store_reopen(void)
{
    gw_store_close(&store);
    store_open();
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_meshio_seq.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    store_open();
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    gw_store_close(&store);
    cr_assert_eq(nftw(dir, rm_one, 8, FTW_DEPTH | FTW_PHYS), 0);
    mesh_crypto_thread_cleanup();
}

TestSuite(seqstore, .init = setup, .fini = teardown);
TestSuite(peers, .init = setup, .fini = teardown);
TestSuite(dgram, .init = setup, .fini = teardown);

static uint64_t persisted(void)
{
    uint64_t v = 0;
    E(gw_store_meta_get_u64(&store, MESH_SEQ_META_KEY, &v));
    return v;
}

/* ---- sequence reservation ---- */

/* S7.1: a fresh gateway starts at 0, and the block is durable before its
 * first number is handed out. */
Test(seqstore, first_number_is_reserved_before_use)
{
    struct mesh_seqstore s;
    uint64_t v = 1;
    cr_assert_eq(gw_store_meta_get_u64(&store, MESH_SEQ_META_KEY, &v), GW_ENOTFOUND);
    E(mesh_seqstore_init(&s, &store, 8));
    uint64_t seq;
    E(mesh_seqstore_take(&s, &seq));
    cr_assert_eq(seq, 0);
    cr_assert_eq(persisted(), 8);
    for (uint64_t want = 1; want < 20; want++) {
        E(mesh_seqstore_take(&s, &seq));
        cr_assert_eq(seq, want);
        cr_assert_gt(persisted(), seq, "number %llu used above the durable reservation",
                     (unsigned long long)seq);
    }
    cr_assert_eq(persisted(), 24);
}

/* S7.1 "never reused, also across meshio restarts": restarts after 0, 1, a
 * block's worth and a partial block; no number twice, and numbers only grow. */
Test(seqstore, no_number_twice_across_restarts)
{
    static const int takes[] = { 0, 1, 5, 16, 3, 0, 7 };
    uint64_t last = 0;
    bool any = false;
    for (size_t r = 0; r < GW_ARRAY_LEN(takes); r++) {
        struct mesh_seqstore s;
        E(mesh_seqstore_init(&s, &store, 5));
        for (int i = 0; i < takes[r]; i++) {
            uint64_t seq;
            E(mesh_seqstore_take(&s, &seq));
            if (any)
                cr_assert_gt(seq, last, "restart %zu: %llu after %llu", r, (unsigned long long)seq,
                             (unsigned long long)last);
            cr_assert_lt(seq, persisted());
            last = seq;
            any = true;
        }
        store_reopen();
    }
}

/* A damaged reservation must stop meshio rather than restart from 0. */
Test(seqstore, damaged_value_is_refused)
{
    MDB_txn *txn;
    E(gw_store_wbegin(&store, &txn));
    uint32_t small = 7;
    MDB_val k = { strlen(MESH_SEQ_META_KEY), (void *)MESH_SEQ_META_KEY },
            v = { sizeof(small), &small };
    E(mdb_put(txn, store.meta, &k, &v, 0));
    E(mdb_txn_commit(txn));
    struct mesh_seqstore s;
    cr_assert_eq(mesh_seqstore_init(&s, &store, 4), GW_EBADMSG);
}

/* The 48-bit space runs out: GW_EFULL, never a wrap to 0. */
Test(seqstore, exhaustion_is_reported)
{
    E(gw_store_meta_put_u64(&store, MESH_SEQ_META_KEY, MESH_SEQ_LIMIT - 2));
    struct mesh_seqstore s;
    E(mesh_seqstore_init(&s, &store, 100));
    uint64_t seq;
    E(mesh_seqstore_take(&s, &seq));
    cr_assert_eq(seq, MESH_SEQ_LIMIT - 2);
    E(mesh_seqstore_take(&s, &seq));
    cr_assert_eq(seq, MESH_SEQ_LIMIT - 1);
    cr_assert_eq(mesh_seqstore_take(&s, &seq), GW_EFULL);
    cr_assert_eq(persisted(), MESH_SEQ_LIMIT);
}

/* ---- replay windows ---- */

static int accept_seq(struct mesh_peers *p, const uint8_t *mac, const uint8_t *key, uint64_t seq)
{
    struct mesh_peer *e;
    E(mesh_peers_get(p, mac, key, &e));
    int rc = mesh_replay_check(&e->win, seq);
    if (rc == 0)
        mesh_peers_accept(p, e, seq);
    return rc;
}

/* S7.1: after a flush, a restarted meshio refuses everything up to the
 * persisted top; a top not flushed is lost with the process (meshio never
 * forwards a frame before its top is flushed: see the mesh_hold test). */
Test(peers, flushed_top_survives_restart)
{
    struct mesh_peers p;
    E(mesh_peers_init(&p, &store));
    E(accept_seq(&p, mac_a, key_a, 100));
    E(accept_seq(&p, mac_a, key_a, 101));
    cr_assert(mesh_peers_has_dirty(&p));
    E(mesh_peers_flush(&p));
    cr_assert(!mesh_peers_has_dirty(&p));
    E(accept_seq(&p, mac_a, key_a, 150)); /* not flushed: lost by the "crash" */
    mesh_peers_deinit(&p);
    store_reopen();

    E(mesh_peers_init(&p, &store));
    cr_assert_eq(accept_seq(&p, mac_a, key_a, 101), GW_EREPLAY);
    cr_assert_eq(accept_seq(&p, mac_a, key_a, 60), GW_EREPLAY);
    E(accept_seq(&p, mac_a, key_a, 150));
    E(accept_seq(&p, mac_a, key_a, 102)); /* in the window, never seen */
    mesh_peers_deinit(&p);
}

/* S7.2 + mesh_crypto.h: a device given a new key may count from 0 again, in
 * memory and after a restart; its old key's top does not apply. */
Test(peers, new_key_starts_a_fresh_window)
{
    struct mesh_peers p;
    E(mesh_peers_init(&p, &store));
    E(accept_seq(&p, mac_a, key_a, 5000));
    E(mesh_peers_flush(&p));
    E(accept_seq(&p, mac_a, key_b, 0));
    cr_assert_eq(accept_seq(&p, mac_a, key_b, 0), GW_EREPLAY);
    mesh_peers_deinit(&p);

    store_reopen();
    E(mesh_peers_init(&p, &store));
    E(accept_seq(&p, mac_a, key_b, 1)); /* persisted top was under key_a */
    E(mesh_peers_flush(&p));
    mesh_peers_deinit(&p);

    store_reopen();
    E(mesh_peers_init(&p, &store));
    cr_assert_eq(accept_seq(&p, mac_a, key_b, 1), GW_EREPLAY);
    mesh_peers_deinit(&p);
}

/* The table grows past its first size and keeps every window apart. */
Test(peers, many_devices_keep_their_own_window)
{
    struct mesh_peers p;
    E(mesh_peers_init(&p, NULL));
    uint8_t mac[GW_MAC_LEN] = { 0x02 };
    for (uint32_t i = 0; i < 5000; i++) {
        memcpy(mac + 4, &i, 4);
        E(accept_seq(&p, mac, key_a, i));
    }
    cr_assert_eq(p.count, 5000);
    for (uint32_t i = 0; i < 5000; i++) {
        memcpy(mac + 4, &i, 4);
        cr_assert_eq(accept_seq(&p, mac, key_a, i), GW_EREPLAY);
        E(accept_seq(&p, mac, key_a, i + 1));
    }
    E(mesh_peers_flush(&p)); /* memory only: clears the marks */
    cr_assert(!mesh_peers_has_dirty(&p));
    mesh_peers_deinit(&p);
}

/* ---- datagram logic ---- */

static struct gw_device dev_a(void)
{
    struct gw_device d;
    memset(&d, 0, sizeof(d));
    memcpy(d.mac, mac_a, GW_MAC_LEN);
    d.family = 4;
    d.addr[0] = 127;
    d.addr[3] = 42;
    d.plain_port = 5683;
    d.secure_port = 4849;
    memcpy(d.key, key_a, MESH_KEY_LEN);
    return d;
}

/* S7.1: netmgr traffic is sealed to the secure port under the device key
 * with increasing numbers; none traffic goes as-is to the plain port. */
Test(dgram, tx_plain_and_sealed)
{
    struct gw_device d = dev_a();
    struct mesh_seqstore s;
    E(mesh_seqstore_init(&s, &store, 2));
    const uint8_t coap[] = { 0x44, 0x01, 0x12, 0x34, 1, 2, 3, 4, 0xb5, 'v', 'a', 'l', 'u', 'e' };
    uint8_t out[MESH_MAX_FRAME + 16], pt[MESH_MAX_PLAINTEXT];
    size_t n, ptn;
    struct gw_ep dst;

    E(mesh_tx_prepare(&d, GW_SEC_NONE, coap, sizeof(coap), &s, out, sizeof(out), &n, &dst));
    cr_assert_eq(n, sizeof(coap));
    cr_assert_arr_eq(out, coap, n);
    cr_assert_eq(dst.port, 5683);
    cr_assert_eq(dst.family, 4);
    cr_assert_eq(dst.addr[3], 42);

    uint64_t last = 0;
    for (int i = 0; i < 5; i++) {
        E(mesh_tx_prepare(&d, GW_SEC_NETMGR, coap, sizeof(coap), &s, out, sizeof(out), &n, &dst));
        cr_assert_eq(dst.port, 4849);
        cr_assert_eq(n, sizeof(coap) + MESH_FRAME_OVERHEAD);
        uint64_t seq;
        E(mesh_open(key_a, mac_a, MESH_DIR_TO_DEVICE, out, n, pt, sizeof(pt), &ptn, &seq));
        cr_assert_arr_eq(pt, coap, sizeof(coap));
        if (i)
            cr_assert_gt(seq, last);
        cr_assert_lt(seq, persisted());
        last = seq;
    }
}

Test(dgram, tx_bounds)
{
    struct gw_device d = dev_a();
    struct mesh_seqstore s;
    E(mesh_seqstore_init(&s, &store, 2));
    static uint8_t big[GW_COAP_MAX_MSG + 32];
    uint8_t out[MESH_MAX_FRAME + 64];
    size_t n;
    struct gw_ep dst;
    cr_assert_eq(mesh_tx_prepare(&d, GW_SEC_NETMGR, big, MESH_MAX_PLAINTEXT + 1, &s, out,
                                 sizeof(out), &n, &dst),
                 GW_ETOOBIG);
    cr_assert_eq(
        mesh_tx_prepare(&d, GW_SEC_NONE, big, GW_COAP_MAX_MSG + 17, &s, out, sizeof(out), &n, &dst),
        GW_ETOOBIG);
    cr_assert_eq(mesh_tx_prepare(&d, GW_SEC_NONE, big, 0, &s, out, sizeof(out), &n, &dst),
                 GW_EBADMSG);
    cr_assert_eq(mesh_tx_prepare(&d, 7, big, 10, &s, out, sizeof(out), &n, &dst), -EINVAL);
    /* Refused messages take no sequence number and reserve nothing. */
    uint64_t v;
    cr_assert_eq(gw_store_meta_get_u64(&store, MESH_SEQ_META_KEY, &v), GW_ENOTFOUND);
}

/* S7.1: only authenticated, fresh frames from the secure socket give bytes
 * for the scheduler; nothing else leaves plaintext behind. */
Test(dgram, rx_secure_checks)
{
    struct gw_device d = dev_a();
    struct mesh_peers p;
    E(mesh_peers_init(&p, &store));
    const uint8_t coap[] = { 0x64, 0x45, 0x12, 0x34, 1, 2, 3, 4, 0xff, '4', '2' };
    uint8_t frame[MESH_MAX_FRAME], out[GW_COAP_MAX_MSG + 16];
    size_t fl, n;
    E(mesh_seal(key_a, mac_a, MESH_DIR_FROM_DEVICE, 77, coap, sizeof(coap), frame, sizeof(frame),
                &fl));

    E(mesh_rx_accept(&d, true, &p, frame, fl, out, sizeof(out), &n));
    cr_assert_eq(n, sizeof(coap));
    cr_assert_arr_eq(out, coap, n);

    memset(out, 0, sizeof(out));
    cr_assert_eq(mesh_rx_accept(&d, true, &p, frame, fl, out, sizeof(out), &n), GW_EREPLAY);
    cr_assert_eq(n, 0);
    static const uint8_t zero[sizeof(coap)];
    cr_assert_arr_eq(out, zero, sizeof(coap));

    /* Every single flipped byte fails, so does a frame of the wrong direction. */
    for (size_t i = 0; i < fl; i++) {
        uint8_t bad[MESH_MAX_FRAME];
        memcpy(bad, frame, fl);
        bad[i] ^= 0x10;
        cr_assert_eq(mesh_rx_accept(&d, true, &p, bad, fl, out, sizeof(out), &n), GW_EAUTH,
                     "byte %zu", i);
    }
    E(mesh_seal(key_a, mac_a, MESH_DIR_TO_DEVICE, 78, coap, sizeof(coap), frame, sizeof(frame),
                &fl));
    cr_assert_eq(mesh_rx_accept(&d, true, &p, frame, fl, out, sizeof(out), &n), GW_EAUTH);
    cr_assert_eq(mesh_rx_accept(&d, true, &p, frame, 0, out, sizeof(out), &n), GW_EAUTH);
    cr_assert_eq(mesh_rx_accept(&d, true, &p, frame, 3, out, sizeof(out), &n), GW_EAUTH);
    static uint8_t huge[MESH_MAX_FRAME + 100];
    cr_assert_eq(mesh_rx_accept(&d, true, &p, huge, sizeof(huge), out, sizeof(out), &n), GW_EAUTH);

    /* Plain datagrams pass as they are, within bounds. */
    E(mesh_rx_accept(&d, false, &p, coap, sizeof(coap), out, sizeof(out), &n));
    cr_assert_eq(n, sizeof(coap));
    cr_assert_eq(mesh_rx_accept(&d, false, &p, coap, 3, out, sizeof(out), &n), GW_EBADMSG);
    cr_assert_eq(mesh_rx_accept(&d, false, &p, huge, GW_COAP_MAX_MSG + 17, out, sizeof(out), &n),
                 GW_ETOOBIG);
    mesh_peers_deinit(&p);
}

/* S7.2: the source must be a registered device at the port of the socket's
 * kind; registry edits apply at once. */
Test(dgram, rx_identify_by_source)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/devices.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "mac,address,type,key,plain_port,secure_port\n"
               "0200000000000001,127.0.0.42,normal,a0a1a2a3a4a5a6a7a8a9aaabacadaeaf,5683,4849\n");
    cr_assert_eq(fclose(f), 0);
    int bad;
    cr_assert_eq(gw_registry_import(&store, path, &bad), 1);

    struct gw_ep src = { .family = 4, .port = 4849, .addr = { 127, 0, 0, 42 } };
    struct gw_device d;
    E(mesh_rx_identify(&store, &src, true, &d));
    cr_assert_arr_eq(d.mac, mac_a, GW_MAC_LEN);
    cr_assert_eq(mesh_rx_identify(&store, &src, false, &d), GW_ENOTFOUND);
    src.port = 5683;
    E(mesh_rx_identify(&store, &src, false, &d));
    cr_assert_eq(mesh_rx_identify(&store, &src, true, &d), GW_ENOTFOUND);
    src.addr[3] = 43;
    cr_assert_eq(mesh_rx_identify(&store, &src, false, &d), GW_ENOTFOUND);

    /* The device moves while meshio runs. */
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "mac,address,type,key\n0200000000000001,127.0.0.43,normal,"
               "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf\n");
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(gw_registry_import(&store, path, &bad), 1);
    E(mesh_rx_identify(&store, &src, false, &d));
    src.addr[3] = 42;
    cr_assert_eq(mesh_rx_identify(&store, &src, false, &d), GW_ENOTFOUND);
}

/* Issue 13 item 2: meshio's in-memory registry answers as the LMDB look-ups
 * do, keys included, and follows an import at the next look-up. */
Test(dgram, devidx_follows_registry)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/devices.csv", dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "mac,address,type,key,plain_port,secure_port\n"
               "0200000000000001,127.0.0.42,normal,a0a1a2a3a4a5a6a7a8a9aaabacadaeaf,5683,4849\n");
    cr_assert_eq(fclose(f), 0);
    int bad;
    cr_assert_eq(gw_registry_import(&store, path, &bad), 1);

    struct mesh_devidx x;
    mesh_devidx_init(&x);
    E(mesh_devidx_sync(&x, &store));
    cr_assert(x.valid);
    uint64_t gen = x.gen;
    struct gw_ep src = { .family = 4, .port = 4849, .addr = { 127, 0, 0, 42 } };
    struct gw_device d;
    E(mesh_devidx_identify(&x, &src, true, &d));
    cr_assert_arr_eq(d.mac, mac_a, GW_MAC_LEN);
    cr_assert_arr_eq(d.key, key_a, MESH_KEY_LEN, "the key comes from data_dir/keys");
    cr_assert_eq(mesh_devidx_identify(&x, &src, false, &d), GW_ENOTFOUND);
    src.port = 5683;
    E(mesh_devidx_identify(&x, &src, false, &d));
    cr_assert_eq(mesh_devidx_identify(&x, &src, true, &d), GW_ENOTFOUND);
    src.addr[3] = 43;
    cr_assert_eq(mesh_devidx_identify(&x, &src, false, &d), GW_ENOTFOUND);
    const struct gw_device *pd = mesh_devidx_by_mac(&x, mac_a);
    cr_assert_not_null(pd);

    /* Nothing changed: no rebuild (the same copy). */
    E(mesh_devidx_sync(&x, &store));
    cr_assert_eq(mesh_devidx_by_mac(&x, mac_a), pd);

    /* A refused import changes nothing, not even the generation. */
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "mac,address,type,key\n0200000000000001,127.0.0.43,normal,zz\n");
    cr_assert_eq(fclose(f), 0);
    cr_assert_lt(gw_registry_import(&store, path, &bad), 0);
    E(mesh_devidx_sync(&x, &store));
    cr_assert_eq(x.gen, gen);

    /* The device moves and gets a new key while meshio runs. */
    f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "mac,address,type,key\n0200000000000001,127.0.0.43,normal,"
               "505152535455565758595a5b5c5d5e5f\n");
    cr_assert_eq(fclose(f), 0);
    cr_assert_eq(gw_registry_import(&store, path, &bad), 1);
    E(mesh_devidx_sync(&x, &store));
    cr_assert_gt(x.gen, gen);
    E(mesh_devidx_identify(&x, &src, false, &d));
    cr_assert_arr_eq(d.key, key_b, MESH_KEY_LEN);
    src.addr[3] = 42;
    cr_assert_eq(mesh_devidx_identify(&x, &src, false, &d), GW_ENOTFOUND);
    mesh_devidx_deinit(&x);
}

/* Many devices: every one is found by MAC and by each of its ports. */
Test(dgram, devidx_many)
{
    enum { N = 3000 };
    static struct gw_device v[N];
    memset(v, 0, sizeof(v));
    for (uint32_t i = 0; i < N; i++) {
        v[i].mac[0] = 2;
        v[i].mac[6] = (uint8_t)(i >> 8);
        v[i].mac[7] = (uint8_t)i;
        v[i].family = 4;
        v[i].addr[0] = 127;
        v[i].addr[2] = (uint8_t)(i >> 8);
        v[i].addr[3] = (uint8_t)i;
        v[i].plain_port = 5683;
        v[i].secure_port = (uint16_t)(4849 + i % 3);
    }
    struct mesh_devidx x;
    mesh_devidx_init(&x);
    E(mesh_devidx_build(&x, v, N, 7));
    for (uint32_t i = 0; i < N; i++) {
        const struct gw_device *d = mesh_devidx_by_mac(&x, v[i].mac);
        cr_assert_not_null(d);
        cr_assert_arr_eq(d->mac, v[i].mac, GW_MAC_LEN);
        struct gw_ep ep = { .family = 4, .port = v[i].secure_port };
        memcpy(ep.addr, v[i].addr, 16);
        struct gw_device out;
        E(mesh_devidx_identify(&x, &ep, true, &out));
        cr_assert_arr_eq(out.mac, v[i].mac, GW_MAC_LEN);
        ep.port = 5683;
        E(mesh_devidx_identify(&x, &ep, false, &out));
        cr_assert_arr_eq(out.mac, v[i].mac, GW_MAC_LEN);
        ep.port = 9;
        cr_assert_null(mesh_devidx_by_ep(&x, &ep));
    }
    uint8_t none[GW_MAC_LEN] = { 3 };
    cr_assert_null(mesh_devidx_by_mac(&x, none));
    mesh_devidx_deinit(&x);
}

/* ---- frames held until their window is durable (issue #12 item 10) ---- */

struct fwd_log {
    unsigned n;
    uint64_t seq[8];
    int refused_after_restart[8]; /* what a successor meshio says about each forwarded frame */
};

static void fwd_check(void *ctx, const uint8_t mac[GW_MAC_LEN], const uint8_t *data, size_t len)
{
    struct fwd_log *l = ctx;
    cr_assert_eq(len, 8);
    cr_assert_eq(memcmp(mac, mac_a, GW_MAC_LEN), 0);
    uint64_t seq;
    memcpy(&seq, data, 8);
    /* At the moment a frame is forwarded, a meshio started now from the
     * same LMDB (its predecessor SIGKILLed right after forwarding) must
     * refuse that frame. */
    struct mesh_peers succ;
    E(mesh_peers_init(&succ, &store));
    l->refused_after_restart[l->n] = accept_seq(&succ, mac_a, key_a, seq);
    mesh_peers_deinit(&succ);
    l->seq[l->n++] = seq;
}

Test(peers, held_frames_are_forwarded_only_after_their_window_is_durable)
{
    struct mesh_peers p;
    struct mesh_hold *h = calloc(1, sizeof(*h));
    cr_assert_not_null(h);
    E(mesh_peers_init(&p, &store));
    uint64_t seqs[] = { 10, 11, 9, 40 }; /* 9: in the window below the top, never seen */
    for (unsigned i = 0; i < 4; i++) {
        E(accept_seq(&p, mac_a, key_a, seqs[i]));
        uint8_t data[8];
        memcpy(data, &seqs[i], 8);
        mesh_hold_add(h, mac_a, data, 8);
    }
    struct fwd_log log = { 0 };
    uint32_t dropped = 99;
    E(mesh_hold_release(h, &p, fwd_check, &log, &dropped));
    cr_assert_eq(dropped, 0);
    cr_assert_eq(log.n, 4, "every held frame is forwarded");
    for (unsigned i = 0; i < 4; i++) {
        cr_assert_eq(log.seq[i], seqs[i], "forwarded in arrival order");
        cr_assert_eq(log.refused_after_restart[i], GW_EREPLAY,
                     "frame %llu would be accepted again by a restarted meshio",
                     (unsigned long long)seqs[i]);
    }
    cr_assert_eq(h->n, 0, "the hold is empty after a release");
    cr_assert(!mesh_peers_has_dirty(&p));
    /* Nothing held: a release forwards nothing and writes nothing. */
    E(mesh_hold_release(h, &p, fwd_check, &log, &dropped));
    cr_assert_eq(log.n, 4);
    mesh_peers_deinit(&p);
    free(h);
}

/* Issue 13: the device index's keys are unkeyed (mesh_devidx.c says why
 * that is safe: only the registry inserts). Devices whose endpoint keys
 * collide are still told apart, an endpoint that collides with a device but
 * is none is not found, and the probe runs a look-up may walk, made of the
 * registry's keys alone, stay short for 4 096 devices at sequential
 * addresses (the usual plan). */
Test(dgram, devidx_unkeyed_collisions_and_probe_runs)
{
    enum { N = 4096 };
    struct gw_device *devs = calloc(N + 2, sizeof(*devs));
    cr_assert_not_null(devs);
    for (uint32_t i = 0; i < N; i++) {
        devs[i].mac[0] = 2;
        devs[i].mac[6] = (uint8_t)(i >> 8);
        devs[i].mac[7] = (uint8_t)i;
        devs[i].family = 4;
        devs[i].addr[0] = 10;
        devs[i].addr[1] = (uint8_t)(i >> 16);
        devs[i].addr[2] = (uint8_t)(i >> 8);
        devs[i].addr[3] = (uint8_t)i;
        devs[i].plain_port = 5683;
        devs[i].secure_port = 4849;
    }
    /* Two IPv6 devices whose key words cancel out to the same key: the
     * second has both words of the first rotated into each other's place
     * (a0 ^ rotl(a1, 29) equal), same port. */
    struct gw_device *a = &devs[N], *b = &devs[N + 1];
    a->mac[0] = b->mac[0] = 3;
    b->mac[7] = 1;
    a->family = b->family = 6;
    uint64_t a0 = 0x20010db800000001ull, a1 = 0x5ull;
    uint64_t b1 = 0x7ull, b0 = a0 ^ (a1 << 29 | a1 >> 35) ^ (b1 << 29 | b1 >> 35);
    memcpy(a->addr, &a0, 8);
    memcpy(a->addr + 8, &a1, 8);
    memcpy(b->addr, &b0, 8);
    memcpy(b->addr + 8, &b1, 8);
    a->plain_port = b->plain_port = 5683;
    a->secure_port = b->secure_port = 4849;

    struct mesh_devidx x;
    mesh_devidx_init(&x);
    E(mesh_devidx_build(&x, devs, N + 2, 1));
    struct gw_device d;
    for (uint32_t i = 0; i < N + 2; i++) {
        struct gw_ep ep = { .family = devs[i].family, .port = 4849 };
        memcpy(ep.addr, devs[i].addr, 16);
        E(mesh_devidx_identify(&x, &ep, true, &d));
        cr_assert_arr_eq(d.mac, devs[i].mac, GW_MAC_LEN, "device %u by its endpoint", i);
        cr_assert_eq(mesh_devidx_by_mac(&x, devs[i].mac), &x.dev[i]);
    }
    /* An endpoint with a's key that is no device. */
    uint64_t c1 = 0x9ull, c0 = a0 ^ (a1 << 29 | a1 >> 35) ^ (c1 << 29 | c1 >> 35);
    struct gw_ep c = { .family = 6, .port = 4849 };
    memcpy(c.addr, &c0, 8);
    memcpy(c.addr + 8, &c1, 8);
    cr_assert_eq(mesh_devidx_identify(&x, &c, true, &d), GW_ENOTFOUND);
    /* The longest run of occupied slots in either index bounds every
     * look-up, whatever the sender chooses. */
    const struct gw_map *maps[2] = { &x.by_mac, &x.by_addr };
    for (int m = 0; m < 2; m++) {
        uint32_t longest = 0, run = 0;
        for (uint32_t i = 0; i <= 2 * (maps[m]->mask + 1); i++) {
            run = maps[m]->slot[i & maps[m]->mask].key ? run + 1 : 0;
            longest = run > longest ? run : longest;
        }
        cr_log_info("index %d: longest probe run %u of %u slots", m, longest, maps[m]->mask + 1);
        cr_assert_leq(longest, 64, "index %d: a probe run of %u slots", m, longest);
    }
    mesh_devidx_deinit(&x);
    free(devs);
}
