/* SPDX-License-Identifier: MIT */
/* fuzz_frontend.c - the frontend's handling of client datagrams as a whole,
 * without sockets (SPEC S2, S3, S4.1-S4.3, S4.7, S4.8, S8, S9).
 *
 * Drives fe_core.c directly, the same code the frontend process runs
 * (frontend.c is only its libuv glue): datagrams from clients
 * (fe_core_datagram), answers and notifications from the scheduler
 * (fe_core_deliver, through gw_msg_decode as drain_from_sch does), the
 * retransmission timer (fe_core_timer) and the session sweep
 * (fe_core_sweep), with a fake clock.
 *
 * State: one LMDB in a temporary directory, created at start with a device
 * registry and four client endpoints, three of them holding sessions. The
 * core's tables are made fresh for every input and the session tables are
 * put back to that start state after every input, so an input always does
 * the same thing.
 *
 * Input: a sequence of records; the first byte of each picks its kind (mod 5):
 *   0 datagram   [ep][len:2][bytes]  a client datagram from endpoint ep&3
 *   1 answer     [sel][flags][aux][type][tkl][token:tkl][len:2][bytes]
 *                a RESP record from the scheduler; with sel & 0x80 it
 *                answers one of the last REQs pushed (its envelope), else
 *                endpoint sel & 3 and the fields given; the code is kept a
 *                response code, as the scheduler's always is
 *   2 clock      [ms:2]  monotonic += ms*8, wall += ms/128 s
 *   3 timer      run due retransmissions
 *   4 sweep      end expired sessions
 *
 * Checked on every input: no crash, leak or sanitizer report; every answer
 * to a (non-duplicate) request parses, fits GW_COAP_MAX_MSG, carries the
 * request's token and is a piggybacked ACK with the request's MID for a CON
 * or a NON for a NON; every REQ envelope the frontend pushes decodes with
 * gw_msg_decode and carries a device request that the scheduler can parse
 * (8-byte token, S4.3). */
#include "fuzz_util.h"
#include "fe_core.h"
#include "gw_addr.h"
#include "gw_clock.h"
#include "gw_coap.h"
#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_msg.h"
#include "gw_registry.h"
#include "gw_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Shared with make-seeds.py (the seeds hold a token signed with it). */
#define SECRET "fuzz-secret-0123456789abcdef-0123456789"
#define T0_MS 1000000u
#define T0_WALL 1700000000
#define NEPS 4
#define NPUSHED 8

static struct {
    char dir[512];
    struct gw_store store;
    struct fe_auth *auth;
    struct gw_config cfg;
    struct fe_sess_cfg scfg;
    struct gw_coap_parser *parser; /* the frontend's one parser */
    struct gw_coap_parser *check;  /* the harness's, for the oracles */
    struct gw_fake_clock fc;
    struct gw_clock clock;
    struct fe_core core;
    struct gw_ep ep[NEPS];
    struct gw_msg pushed[NPUSHED]; /* the last REQ envelopes, for answers */
    unsigned npushed;
    bool dirty; /* the session tables moved off the start state */
    /* The request being handled (for the reply oracle); checking off for
     * duplicates, whose stored answer belongs to the first copy. */
    bool checking;
    uint8_t cur_type, cur_tkl, cur_token[8];
    uint16_t cur_mid;
    volatile size_t sent_bytes;
    /* S9.1 oracle: the largest datagram sent while handling one request. */
    size_t max_sent;
} F;

/* FUZZ_TRACE=1 prints what the harness sees (for writing seeds). */
static bool trace;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_frontend: %s\n", what);
    abort();
}

/* ---- set-up ------------------------------------------------------------- */

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t n = strlen(text);
    if (fd < 0 || write(fd, text, n) != (ssize_t)n)
        fail("cannot write a set-up file");
    close(fd);
}

static void cleanup(void)
{
    fe_auth_free(F.auth);
    gw_coap_parser_free(F.parser);
    gw_coap_parser_free(F.check);
    gw_store_close(&F.store);
    fuzz_rmtree(F.dir, 1);
}

static void ep4(struct gw_ep *ep, uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint16_t port)
{
    memset(ep, 0, sizeof(*ep));
    ep->family = 4;
    ep->addr[0] = a, ep->addr[1] = b, ep->addr[2] = c, ep->addr[3] = d;
    ep->port = port;
}

/* The start state of the session tables: alice (netmgr, all devices) at
 * ep 0, bob (none, devices 0011*) at ep 1, nobody at ep 2, carol (single)
 * at ep 3. */
static void sessions_reset(void)
{
    MDB_txn *txn;
    if (gw_store_wbegin(&F.store, &txn) != 0 || mdb_drop(txn, F.store.sessions, 0) != 0 ||
        mdb_drop(txn, F.store.sess_id, 0) != 0 || mdb_drop(txn, F.store.sess_acct, 0) != 0 ||
        mdb_txn_commit(txn) != 0)
        fail("cannot reset the session tables");
    static const struct {
        int ep;
        const char *account, *scope;
        uint8_t security, single;
    } start[] = {
        { 0, "alice", NULL, GW_SEC_NETMGR, 0 },
        { 1, "bob", "0011*", GW_SEC_NONE, 0 },
        { 3, "carol", NULL, GW_SEC_NONE, 1 },
    };
    for (size_t i = 0; i < GW_ARRAY_LEN(start); i++) {
        struct fe_scope sc;
        if (fe_scope_parse(start[i].scope, &sc) != 0)
            fail("scope");
        struct fe_sess_req rq = { .account = start[i].account,
                                  .ep = F.ep[start[i].ep],
                                  .security = start[i].security,
                                  .single = start[i].single,
                                  .token_exp = T0_WALL + 3600,
                                  .scope = &sc };
        struct gw_session s;
        struct gw_ep moved;
        const char *diag = NULL;
        if (fe_session_create(&F.store, &F.scfg, &rq, T0_WALL, &s, &moved, &diag) != 0)
            fail("cannot create a start session");
    }
    F.dirty = false;
}

static void io_send(void *ctx, const struct gw_ep *ep, const uint8_t *buf, size_t len);
static int io_to_sch(void *ctx, const struct gw_msg *m, const uint8_t *data);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    gw_log_init("fuzz_frontend", -1, GW_LOG_ERR);
    trace = getenv("FUZZ_TRACE") != NULL;
    const char *tmp = getenv("TMPDIR");
    snprintf(F.dir, sizeof(F.dir), "%s/coapgw-fuzz-frontend.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(F.dir))
        fail("mkdtemp");
    atexit(cleanup);
    if (gw_store_open(&F.store, F.dir, 64) != 0)
        fail("gw_store_open");
    char path[700];
    snprintf(path, sizeof(path), "%s/secret", F.dir);
    write_file(path, SECRET "\n");
    struct fe_auth_cfg acfg = { .alg = FE_JWT_HS256, .key_file = path };
    if (fe_auth_new(&acfg, &F.auth) != 0)
        fail("fe_auth_new");
    snprintf(path, sizeof(path), "%s/devices.csv", F.dir);
    write_file(path,
               "mac,address,type,key,plain_port,secure_port\n"
               "0011223344556677,10.1.0.1,normal,000102030405060708090a0b0c0d0e0f\n"
               "00112233445566aa,10.1.0.2,milli,000102030405060708090a0b0c0d0e0f\n"
               "0200000000000001,fd00::1,normal,000102030405060708090a0b0c0d0e0f,5683,4849\n");
    int bad = 0;
    if (gw_registry_import(&F.store, path, &bad) != 3)
        fail("gw_registry_import");
    gw_config_defaults(&F.cfg);
    char err[256];
    if (gw_config_set(&F.cfg, "listen", "192.0.2.1:5683", err, sizeof(err)) != 0 ||
        gw_config_set(&F.cfg, "names", "gw.example, coapgw", err, sizeof(err)) != 0)
        fail("gw_config_set");
    /* Small bounds so that the fuzzer reaches them: sessions per account,
     * sessions in all, in-flight requests and rate per session. */
    F.cfg.session_max_inflight = 3;
    F.cfg.session_rate = 2;
    F.cfg.session_burst = 4;
    F.scfg = (struct fe_sess_cfg){ F.cfg.session_idle_s, F.cfg.session_max_lifetime_s, 2, 6, 60 };
    if (gw_coap_parser_new(&F.parser) != 0 || gw_coap_parser_new(&F.check) != 0)
        fail("gw_coap_parser_new");
    ep4(&F.ep[0], 127, 0, 0, 1, 40000);
    memset(&F.ep[1], 0, sizeof(F.ep[1]));
    F.ep[1].family = 6;
    F.ep[1].addr[15] = 1;
    F.ep[1].port = 40001;
    ep4(&F.ep[2], 10, 0, 0, 2, 5683);
    ep4(&F.ep[3], 127, 0, 0, 1, 40003);
    F.clock = gw_clock_fake(&F.fc);
    /* Small tables so that the fuzzer reaches their bounds. */
    F.cfg.dedup_max = 32;
    F.cfg.client_inflight_max = 16;
    F.cfg.block_transfers_max = 4;
    F.cfg.block_max_body = 2048;
    F.cfg.max_sessions = 6;
    F.cfg.max_sessions_per_account = 2;
    sessions_reset();
    return 0;
}

/* ---- the oracles: what leaves the core -------------------------------------- */

/* A datagram for a client. An answer to the request being handled must be well-formed. */
static void io_send(void *ctx, const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    (void)ep;
    if (ctx != &F)
        fail("callback context");
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i++) /* every byte sent must be initialized */
        sink ^= buf[i];
    (void)sink;
    F.sent_bytes += len;
    if (len > F.max_sent)
        F.max_sent = len;
    if (!F.checking || len < 4 || buf[1] == 0)
        return; /* empty ACK/RST, or not answering a request */
    if (len > GW_COAP_MAX_MSG)
        fail("answer larger than GW_COAP_MAX_MSG (S3.5)");
    struct gw_coap_msg a;
    if (gw_coap_parse(F.check, buf, len, &a) != 0)
        fail("answer does not parse");
    if (a.tkl != F.cur_tkl || memcmp(a.token, F.cur_token, a.tkl) != 0)
        fail("answer does not carry the request's token");
    if (F.cur_type == GW_COAP_CON && (a.type != GW_COAP_ACK || a.mid != F.cur_mid))
        fail("answer to a CON is not a piggybacked ACK with its MID");
    if (F.cur_type == GW_COAP_NON && a.type != GW_COAP_NON)
        fail("answer to a NON is not a NON");
    if ((a.code >> 5) != 2 && (a.code >> 5) != 4 && (a.code >> 5) != 5)
        fail("answer is not a response (2.xx, 4.xx, 5.xx)");
    if (trace) {
        char cs[8];
        fprintf(stderr, "  answer %s (%zu bytes)\n", gw_coap_code_str(buf[1], cs), len);
    }
}

/* A record for the scheduler, checked as the scheduler reads it. */
static int io_to_sch(void *ctx, const struct gw_msg *m, const uint8_t *data)
{
    if (ctx != &F)
        fail("callback context");
    static uint8_t rec[sizeof(struct gw_msg) + GW_COAP_MAX_MSG + 64];
    if (m->len > GW_COAP_MAX_MSG)
        fail("record over GW_COAP_MAX_MSG");
    memcpy(rec, m, sizeof(*m));
    if (m->len)
        memcpy(rec + sizeof(*m), data, m->len);
    struct gw_msg d;
    const uint8_t *body;
    if (gw_msg_decode(rec, sizeof(*m) + m->len, &d, &body) != 0)
        fail("the frontend built an envelope the scheduler drops");
    if (d.kind != GW_MSG_REQ)
        return 0;
    struct gw_coap_msg r;
    /* sch_core.c on_request: anything else is a 5.00 "malformed request record". */
    if (d.len < 12 || gw_coap_parse(F.check, body, d.len, &r) != 0 || r.tkl != 8)
        fail("the frontend built a device request the scheduler cannot parse");
    F.pushed[F.npushed++ % NPUSHED] = d;
    if (trace)
        fprintf(stderr, "  REQ to the scheduler (%u bytes, flags 0x%02x)\n", d.len, d.flags);
    return 0;
}

/* A client datagram: sets the oracle's expectations, then the core. */
static void datagram(const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    uint8_t ver, type;
    uint16_t mid;
    F.checking = false;
    struct gw_coap_msg q;
    if (len <= (size_t)F.cfg.max_message && gw_coap_peek(buf, len, &ver, &type, &mid) && ver == 1 &&
        gw_coap_parse(F.check, buf, len, &q) == 0 && (q.code >> 5) == 0 && q.code != 0 &&
        (q.type == GW_COAP_CON || q.type == GW_COAP_NON) &&
        !fe_dedup_find(&F.core.dedup, ep, q.mid, q.token, q.tkl, F.fc.ms)) {
        F.checking = true;
        F.cur_type = q.type;
        F.cur_tkl = q.tkl;
        memcpy(F.cur_token, q.token, q.tkl);
        F.cur_mid = q.mid;
    }
    /* S9.1: to a sender that holds no session before and after (a POST
     * /sessions that created one is answered in full), nothing sent while
     * handling its datagram is larger than 3 times that datagram. */
    struct gw_session s;
    bool sessionless = fe_session_lookup(&F.store, &F.scfg, ep, gw_now_wall(&F.clock), &s) != 0;
    F.max_sent = 0;
    fe_core_datagram(&F.core, ep, buf, len);
    F.checking = false;
    if (sessionless && F.max_sent > 3 * len &&
        fe_session_lookup(&F.store, &F.scfg, ep, gw_now_wall(&F.clock), &s) != 0)
        fail("an answer to a sender without a session is over 3 times its request (S9.1)");
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

/* Up to want bytes as an exactly sized heap copy (ASan sees over-reads). */
static uint8_t *take(struct in *in, size_t want, size_t *got)
{
    size_t left = in->n - in->off;
    *got = want < left ? want : left;
    uint8_t *c = malloc(*got ? *got : 1);
    if (!c)
        abort();
    memcpy(c, in->p + in->off, *got);
    in->off += *got;
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (F.dirty)
        sessions_reset();
    F.fc = (struct gw_fake_clock){ T0_MS, T0_WALL };
    F.npushed = 0;
    struct fe_out io = { &F, io_send, io_to_sch, NULL };
    if (fe_core_init(&F.core, &F.cfg, 0, &F.store, F.auth, F.parser, &io, NULL) != 0)
        abort();
    fe_core_set_clock(&F.core, &F.clock);
    F.core.scfg = F.scfg;
    F.core.next_mid = 0x4000;
    F.core.next_req = 1;
    struct in in = { data, size, 0 };
    for (int steps = 0; in.off < in.n && steps < 64; steps++) {
        uint8_t kind = u8(&in);
        if (trace)
            fprintf(stderr, "record %d: kind %u\n", steps, kind % 5);
        switch (kind % 5) {
        case 0: {
            const struct gw_ep *ep = &F.ep[u8(&in) % NEPS];
            size_t len;
            uint8_t *d = take(&in, u16(&in) & 0x7ff, &len);
            datagram(ep, d, len);
            F.dirty = true;
            free(d);
            break;
        }
        case 1: {
            struct gw_msg m;
            memset(&m, 0, sizeof(m));
            m.kind = GW_MSG_RESP;
            uint8_t sel = u8(&in);
            m.ep = F.ep[sel % NEPS];
            m.flags = u8(&in);
            m.aux = u8(&in) % 7;
            m.client_type = u8(&in) & 1;
            m.tkl = u8(&in) % 9;
            for (unsigned i = 0; i < m.tkl; i++)
                m.token[i] = u8(&in);
            m.session = 1 + (m.token[0] & 3);
            m.req_key = m.token[1];
            if ((sel & 0x80) && F.npushed && (sel >> 2) % NPUSHED < F.npushed) {
                /* The answer to a request pushed earlier: the envelope is
                 * the REQ's, as sch_core_send_client makes it. */
                const struct gw_msg *q =
                    &F.pushed[(F.npushed - 1 - (sel >> 2) % NPUSHED) % NPUSHED];
                uint8_t fl = m.flags & (GW_MF_NOTIFY | GW_MF_SUPPRESS | GW_MF_DEV_NON);
                uint32_t aux = m.aux;
                m = *q;
                m.kind = GW_MSG_RESP;
                m.flags = (uint8_t)((q->flags & GW_MF_BLOCK2) | fl |
                                    (fl & GW_MF_NOTIFY ? 0 : GW_MF_ANSWER));
                m.aux = fl & GW_MF_NOTIFY ? aux : q->aux;
            }
            size_t len;
            uint8_t *d = take(&in, u16(&in) & 0x7ff, &len);
            m.len = (uint16_t)len;
            /* The scheduler only ever sends responses (fuzz_scheduler checks
             * that): keep the code in class 2, 4 or 5, the rest as it is. */
            if (len >= 2 && (d[1] >> 5) != 2 && (d[1] >> 5) != 4 && (d[1] >> 5) != 5)
                d[1] = (uint8_t)(GW_CODE(2, 0) | (d[1] & 31));
            /* drain_from_sch: through the ring's decoder first. */
            uint8_t *rec = malloc(sizeof(m) + len);
            if (!rec)
                abort();
            memcpy(rec, &m, sizeof(m));
            if (len)
                memcpy(rec + sizeof(m), d, len);
            struct gw_msg dm;
            const uint8_t *body;
            /* Without an earlier request to answer, bit 6 makes the bytes a
             * notification set (gw_msg.h) instead, checked as drain_from_sch does. */
            if (!(sel & 0x80) && (sel & 0x40)) {
                rec[0] = GW_MSG_NOTIFY_SET;
                rec[offsetof(struct gw_msg, tkl)] = 0;
            }
            if (gw_msg_decode(rec, sizeof(m) + len, &dm, &body) == 0)
                GW_IGNORE(fe_core_deliver_record(&F.core, &dm, body));
            free(rec);
            free(d);
            break;
        }
        case 2: {
            uint16_t v = u16(&in);
            F.fc.ms += (uint64_t)v * 8;
            F.fc.wall += v / 128;
            break;
        }
        case 3:
            fe_core_timer(&F.core, F.fc.ms);
            break;
        case 4:
            fe_core_sweep(&F.core, F.fc.wall);
            F.dirty = true;
            break;
        }
    }
    fe_core_deinit(&F.core);
    return 0;
}
