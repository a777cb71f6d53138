/* SPDX-License-Identifier: MIT */
/* fuzz_scheduler.c - the scheduler core (scheduler/sch_core.h, SPEC S4.4-
 * S4.7, S5, S6, S9) driven by records, as the unit tests' sch_harness.h
 * drives it: a heap transaction table, a fake clock, outputs recorded.
 *
 * What reaches the scheduler from outside: device datagrams (MESH_RX, any
 * bytes a device or anyone on the mesh sends) and client requests (REQ, the
 * device request the frontend built from the client's options and payload).
 * Device answers only matter when they match a transaction, and a fuzzer
 * cannot guess the gateway's tokens, so one record kind answers a recorded
 * MESH_TX with its MID and token and fuzzer-chosen type, code, options and
 * payload.
 *
 * Input: records; the first byte of each picks its kind (mod 8):
 *   0 REQ        [dev][sec|type|tkl][ep][session][noresp|block2][len:2][bytes]
 *                bytes = code, then options/payload after a CON header with
 *                MID 0 and the 8-byte zero token, as fe_route_build makes
 *                it; REQ flags follow from the request as in the frontend
 *   1 MESH_RX    [dev][sec][len:2][bytes]           raw device datagram
 *   2 answer     [which][type][code][tok][len:2][bytes]  reply to one of the
 *                last MESH_TX records: its MID (for ACK/RST) and token, the
 *                fuzzer's type and code (0 or 7.xx: an empty ACK/RST), bytes
 *                as options and payload; tok & 0x80 spoils the token
 *   3 OBS_GONE   [ep][tkl][token]
 *   4 SESSION_END [session]
 *   5 clock      [v:2]  += v * 64 ms, then due timers
 *   6 restart    the core is freed and made again over the same table and
 *                LMDB (a SIGKILLed scheduler's successor, S1.3, S6.6)
 *   7 ring       toggles a full frontend ring; flushes held answers
 *
 * Checked: no crash, leak or sanitizer report; every record for a client
 * decodes as the frontend decodes it and carries a message that parses with
 * the client's token; every record for the mesh is a MESH_TX whose message
 * parses (a request with an 8-byte token, or an empty ACK/RST). */
#include "fuzz_util.h"
#include "gw_clock.h"
#include "gw_coap.h"
#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_msg.h"
#include "gw_shm.h"
#include "gw_store.h"
#include "sch_core.h"

#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_TXN 32
#define NDEV 4
#define NTX 16

static struct {
    char dir[512];
    struct gw_store store;
    struct gw_config cfg;
    struct gw_fake_clock fc;
    struct gw_clock clock;
    struct sch_out out;
    uint8_t *txns;
    struct sch_core *core;
    struct gw_coap_parser *check;
    uint64_t prng;
    bool client_full;
    uint8_t mac[NDEV][GW_MAC_LEN];
    struct gw_ep ep[4];
    /* The last MESH_TX records (for answers). */
    struct {
        struct gw_msg env;
        uint8_t data[GW_COAP_MAX_MSG + 16];
    } tx[NTX];
    unsigned ntx;
    uint64_t next_req;
} S;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_scheduler: %s\n", what);
    abort();
}

static void cleanup(void)
{
    gw_coap_parser_free(S.check);
    gw_store_close(&S.store);
    fuzz_rmtree(S.dir, 1);
}

/* ---- callbacks ---------------------------------------------------------- */

/* One RESP record as the frontend gets it. */
static void check_client_record(const struct gw_msg *env, const uint8_t *data)
{
    /* What scheduler.c pushes and drain_from_sch decodes. */
    static uint8_t rec[sizeof(struct gw_msg) + GW_COAP_MAX_MSG + 64];
    if (env->len > GW_COAP_MAX_MSG + 16)
        fail("client record over the envelope bound");
    memcpy(rec, env, sizeof(*env));
    memcpy(rec + sizeof(*env), data, env->len);
    struct gw_msg d;
    const uint8_t *body;
    if (gw_msg_decode(rec, sizeof(*env) + env->len, &d, &body) != 0)
        fail("the frontend would drop this client record");
    struct gw_coap_msg m;
    if (gw_coap_parse(S.check, body, d.len, &m) != 0)
        fail("a message for a client does not parse");
    if (m.tkl != d.tkl || memcmp(m.token, d.token, d.tkl) != 0)
        fail("a message for a client lacks the client's token");
    if ((m.code >> 5) != 2 && (m.code >> 5) != 4 && (m.code >> 5) != 5)
        fail("a message for a client is not a response (2.xx, 4.xx, 5.xx)");
}

static int to_client(void *ctx, struct gw_msg *env, const uint8_t *data)
{
    (void)ctx;
    if (S.client_full)
        return GW_EFULL;
    if (env->kind == GW_MSG_NOTIFY_SET) {
        /* A notification for several observers (gw_msg.h): the envelope
         * must decode, and each observer's record pass as a RESP would. */
        static uint8_t rec[sizeof(struct gw_msg) + GW_COAP_MAX_MSG + 64];
        if (env->len > GW_COAP_MAX_MSG + 16)
            fail("notification set over the envelope bound");
        memcpy(rec, env, sizeof(*env));
        memcpy(rec + sizeof(*env), data, env->len);
        struct gw_msg d;
        const uint8_t *body;
        if (gw_msg_decode(rec, sizeof(*env) + env->len, &d, &body) != 0)
            fail("the frontend would drop this notification set");
        size_t n = gw_notify_set_count(&d, body);
        if (n == 0)
            fail("a malformed notification set");
        static uint8_t one_buf[GW_COAP_MAX_MSG + 16];
        for (size_t i = 0; i < n; i++) {
            struct gw_msg one;
            if (gw_notify_set_get(&d, body, i, &one, one_buf, sizeof(one_buf)) != 0)
                fail("an observer of a notification set does not decode");
            check_client_record(&one, one_buf);
        }
        return 0;
    }
    if (env->kind != GW_MSG_RESP)
        fail("a client record that is neither RESP nor a notification set");
    check_client_record(env, data);
    return 0;
}

static int to_mesh(void *ctx, const struct gw_msg *env, const uint8_t *data)
{
    (void)ctx;
    if (env->kind != GW_MSG_MESH_TX || env->len > GW_COAP_MAX_MSG + 16)
        fail("a bad mesh record");
    struct gw_coap_msg m;
    if (gw_coap_parse(S.check, data, env->len, &m) != 0)
        fail("a message for a device does not parse");
    if (m.code != GW_COAP_EMPTY && m.tkl != 8)
        fail("a request to a device without the 8-byte gateway token");
    if (m.code == GW_COAP_EMPTY && m.type != GW_COAP_ACK && m.type != GW_COAP_RST)
        fail("an empty message to a device that is not ACK or RST");
    unsigned i = S.ntx++ % NTX;
    S.tx[i].env = *env;
    memcpy(S.tx[i].data, data, env->len);
    return 0;
}

static int device_type(void *ctx, const uint8_t mac[GW_MAC_LEN])
{
    (void)ctx;
    for (int i = 0; i < NDEV - 1; i++) /* the last one is not registered */
        if (memcmp(S.mac[i], mac, GW_MAC_LEN) == 0)
            return i == 2;
    return GW_ENOTFOUND;
}

static uint32_t rand32(void *ctx)
{
    (void)ctx;
    S.prng ^= S.prng << 13;
    S.prng ^= S.prng >> 7;
    S.prng ^= S.prng << 17;
    return (uint32_t)(S.prng >> 16);
}

/* ---- set-up ------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gw_log_init("fuzz_scheduler", -1, GW_LOG_ERR);
    const char *tmp = getenv("TMPDIR");
    snprintf(S.dir, sizeof(S.dir), "%s/coapgw-fuzz-scheduler.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(S.dir))
        fail("mkdtemp");
    atexit(cleanup);
    if (gw_store_open(&S.store, S.dir, 64) != 0)
        fail("gw_store_open");
    if (gw_coap_parser_new(&S.check) != 0)
        fail("gw_coap_parser_new");
    gw_config_defaults(&S.cfg);
    /* Small bounds, so that the fuzzer reaches them. */
    S.cfg.max_txn = MAX_TXN;
    S.cfg.device_queue_max = 3;
    S.cfg.cache_max_entries = 8;
    S.cfg.cache_max_bytes = 4096;
    S.cfg.obs_max_observers = 6;
    S.cfg.obs_max_observations = 3;
    S.clock = gw_clock_fake(&S.fc);
    S.out = (struct sch_out){ NULL, to_client, to_mesh, device_type, rand32, NULL };
    for (int i = 0; i < NDEV; i++) {
        static const uint8_t base[GW_MAC_LEN] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x00 };
        memcpy(S.mac[i], base, GW_MAC_LEN);
        S.mac[i][7] = (uint8_t)(0x70 + i);
    }
    for (int i = 0; i < 4; i++) {
        memset(&S.ep[i], 0, sizeof(S.ep[i]));
        S.ep[i].family = 4;
        S.ep[i].addr[0] = 127;
        S.ep[i].addr[3] = 1;
        S.ep[i].port = (uint16_t)(40000 + i);
    }
    S.txns = calloc(MAX_TXN, GW_TXN_SLOT);
    if (!S.txns)
        fail("calloc");
    return 0;
}

static void new_core(void)
{
    if (sch_core_new(&S.cfg, &S.clock, &S.out, S.txns, MAX_TXN, GW_TXN_SLOT, &S.store, NULL,
                     &S.core) != 0)
        fail("sch_core_new");
}

/* Starts every input from an empty table and observe registry. */
static void reset(void)
{
    memset(S.txns, 0, (size_t)MAX_TXN * GW_TXN_SLOT);
    MDB_txn *txn;
    MDB_stat st;
    size_t n = 0;
    if (gw_store_rbegin(&S.store, &txn) == 0) {
        if (mdb_stat(txn, S.store.observe, &st) == 0)
            n = st.ms_entries;
        gw_store_rdone(&S.store);
    }
    if (n && (gw_store_wbegin(&S.store, &txn) != 0 || mdb_drop(txn, S.store.observe, 0) != 0 ||
              mdb_txn_commit(txn) != 0))
        fail("cannot empty the observe registry");
    S.fc = (struct gw_fake_clock){ 1000000, 1700000000 };
    S.prng = 0x9e3779b97f4a7c15ull;
    S.client_full = false;
    S.ntx = 0;
    S.next_req = 1;
}

/* ---- the input ---------------------------------------------------------- */

struct in {
    const uint8_t *p;
    size_t n, off;
};

static uint8_t u8(struct in *in)
{
    return in->off < in->n ? in->p[in->off++] : 0;
}

static uint16_t u16(struct in *in)
{
    uint16_t lo = u8(in);
    return (uint16_t)(lo | (uint16_t)u8(in) << 8);
}

static size_t take(struct in *in, size_t want, uint8_t *dst, size_t cap)
{
    size_t left = in->n - in->off;
    size_t n = want < left ? want : left;
    if (n > cap)
        n = cap;
    memcpy(dst, in->p + in->off, n);
    in->off += n;
    return n;
}

static void feed(const struct gw_msg *env, const uint8_t *data)
{
    /* Exactly sized copy, so ASan sees a read past the record. */
    uint8_t *d = malloc(env->len ? env->len : 1);
    if (!d)
        abort();
    memcpy(d, data, env->len);
    sch_core_on_record(S.core, env, d);
    free(d);
}

static void rec_req(struct in *in)
{
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_REQ;
    memcpy(m.mac, S.mac[u8(in) % NDEV], GW_MAC_LEN);
    uint8_t b = u8(in);
    m.security = b & 1;
    m.client_type = (b >> 1) & 1;
    m.tkl = (uint8_t)((b >> 2) % 9);
    for (unsigned i = 0; i < m.tkl; i++)
        m.token[i] = (uint8_t)('a' + i + (b & 0x80 ? 1 : 0));
    m.ep = S.ep[u8(in) & 3];
    m.session = 1 + (u8(in) & 3);
    b = u8(in);
    m.noresp = b & 0x1a;
    m.req_id = S.next_req++;
    m.client_mid = (uint16_t)(m.req_id * 7);
    uint8_t buf[GW_COAP_MAX_MSG + 16] = { 0x48, GW_COAP_GET, 0,
                                          0 }; /* CON, TKL 8, MID 0, zero token */
    size_t len = 12;
    uint8_t body[GW_COAP_MAX_MSG];
    size_t bl = take(in, u16(in) & 0x7ff, body, sizeof(body));
    if (bl) {
        buf[1] = body[0] & 0x1f ? body[0] & 0x1f : GW_COAP_GET; /* a request code */
        memcpy(buf + 12, body + 1, bl - 1);
        len += bl - 1;
    }
    m.len = (uint16_t)len;
    /* The frontend sets the observe flags from the request (fe_route_observe)
     * and Block2 from the client's size preference. */
    struct gw_coap_msg r;
    if (gw_coap_parse(S.check, buf, len, &r) == 0 && r.code == GW_COAP_GET) {
        const struct gw_coap_opt *o = gw_coap_opt_find(&r, GW_OPT_OBSERVE);
        uint32_t v;
        if (o && gw_coap_uint(o->val, o->len, &v))
            m.flags |= v == 0 ? GW_MF_OBS_REGISTER : v == 1 ? GW_MF_OBS_CANCEL : 0;
    }
    if (b & 0x80) {
        m.flags |= GW_MF_BLOCK2;
        m.aux = b & 7 ? (b & 7) - 1 : 0;
    }
    m.req_key = b;
    feed(&m, buf);
}

static void rec_mesh_raw(struct in *in)
{
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_MESH_RX;
    memcpy(m.mac, S.mac[u8(in) % NDEV], GW_MAC_LEN);
    m.security = u8(in) & 1;
    uint8_t buf[GW_COAP_MAX_MSG + 16];
    m.len = (uint16_t)take(in, u16(in) & 0x7ff, buf, sizeof(buf));
    feed(&m, buf);
}

static void rec_answer(struct in *in)
{
    uint8_t which = u8(in), type = u8(in) & 3, code = u8(in), tok = u8(in);
    uint8_t rest[GW_COAP_MAX_MSG];
    size_t rl = take(in, u16(in) & 0x7ff, rest, sizeof(rest));
    if (S.ntx == 0)
        return;
    unsigned n = S.ntx < NTX ? S.ntx : NTX;
    unsigned i = (S.ntx - 1 - which % n) % NTX;
    struct gw_coap_msg tx;
    if (gw_coap_parse(S.check, S.tx[i].data, S.tx[i].env.len, &tx) != 0)
        return;
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_MESH_RX;
    memcpy(m.mac, S.tx[i].env.mac, GW_MAC_LEN);
    m.security = S.tx[i].env.security;
    uint8_t buf[GW_COAP_MAX_MSG + 16];
    bool empty = code == GW_COAP_EMPTY || (code & 0xe0) == 0xe0; /* an empty ACK or RST */
    uint8_t tkl = empty ? 0 : 8;
    /* CON/NON answers (separate responses, notifications) get a MID of
     * their own; ACK/RST carry the request's. */
    uint16_t mid = type >= GW_COAP_ACK ? tx.mid : (uint16_t)(tx.mid + 1 + tok);
    buf[0] = (uint8_t)(0x40 | type << 4 | tkl);
    buf[1] = empty ? 0 : code;
    buf[2] = (uint8_t)(mid >> 8);
    buf[3] = (uint8_t)mid;
    size_t len = 4;
    if (!empty) {
        memcpy(buf + 4, tx.token, 8);
        if (tok & 0x80)
            buf[4] ^= 1; /* a wrong token */
        len = 12;
        if (rl > sizeof(buf) - len)
            rl = sizeof(buf) - len;
        memcpy(buf + len, rest, rl);
        len += rl;
    }
    m.len = (uint16_t)len;
    feed(&m, buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reset();
    new_core();
    struct in in = { data, size, 0 };
    for (int steps = 0; in.off < in.n && steps < 96; steps++) {
        uint8_t kind = u8(&in);
        switch (kind % 8) {
        case 0:
            rec_req(&in);
            break;
        case 1:
            rec_mesh_raw(&in);
            break;
        case 2:
            rec_answer(&in);
            break;
        case 3: {
            struct gw_msg m;
            memset(&m, 0, sizeof(m));
            m.kind = GW_MSG_OBS_GONE;
            m.ep = S.ep[u8(&in) & 3];
            m.tkl = u8(&in) % 9;
            for (unsigned i = 0; i < m.tkl; i++)
                m.token[i] = (uint8_t)('a' + i + (kind & 0x80 ? 1 : 0));
            sch_core_on_record(S.core, &m, NULL);
            break;
        }
        case 4: {
            struct gw_msg m;
            memset(&m, 0, sizeof(m));
            m.kind = GW_MSG_SESSION_END;
            m.session = 1 + (u8(&in) & 3);
            sch_core_on_record(S.core, &m, NULL);
            break;
        }
        case 5: {
            uint64_t v = u16(&in);
            S.fc.ms += v * 64;
            S.fc.wall += (int64_t)(v * 64 / 1000);
            sch_core_on_timer(S.core);
            break;
        }
        case 6:
            sch_core_free(S.core);
            S.core = NULL;
            new_core();
            if (kind & 0x80)
                sch_core_resume_observations(S.core);
            break;
        case 7:
            S.client_full = !S.client_full;
            if (!S.client_full)
                sch_core_flush(S.core);
            break;
        }
        struct sch_core_counts c;
        sch_core_counts(S.core, &c);
        if (c.txns > MAX_TXN || c.queued + c.inflight > c.txns)
            fail("transaction counts out of range");
    }
    sch_core_free(S.core);
    S.core = NULL;
    return 0;
}
