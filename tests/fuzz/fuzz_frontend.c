/* fuzz_frontend.c - the frontend's handling of client datagrams as a whole,
 * without sockets (SPEC S2, S3, S4.1-S4.3, S4.7, S4.8, S8, S9).
 *
 * frontend.c keeps its glue (handle_datagram, handle_proxy, deliver) static
 * next to libuv, so this harness replays the same steps in the same order
 * over the pure pieces it calls:
 *   gw_coap_peek / over-size 4.13 / gw_coap_parse (RST for a bad CON) /
 *   ACK+RST -> fe_rtx_ack / ping -> RST / fe_dedup_find+add /
 *   proxy: fe_route_target, fe_route_is_self -> fe_local_handle,
 *          fe_session_lookup (4.01), fe_route_check_options (+ Block2
 *          follow-ups from fe_blocks), registry (5.02), scope (4.03), port
 *          (4.00), limits (4.29), fe_route_build, the REQ envelope;
 *   local: fe_local_handle (sessions with a real fe_auth and LMDB, Block1
 *          and Block2 through fe_blocks).
 * Answers from the scheduler go through the same steps as deliver() (Block2
 * slicing of large answers, fe_rtx for CON), and the retransmission timer
 * and the session sweep can run between datagrams.
 *
 * State: one LMDB in a temporary directory, created at start with a device
 * registry and four client endpoints, three of them holding sessions. The
 * message-layer tables are made fresh for every input and the session
 * tables are put back to that start state after an input changed them, so
 * an input always does the same thing. Clocks are fake.
 *
 * Input: a sequence of records; the first byte of each picks its kind (mod 5):
 *   0 datagram   [ep][len:2][bytes]  a client datagram from endpoint ep&3
 *   1 answer     [sel][flags][aux][type][tkl][token:tkl][len:2][bytes]
 *                a RESP record from the scheduler, through gw_msg_decode;
 *                with sel & 0x80 it answers one of the last REQs pushed
 *                (its envelope: endpoint, token, Block2 size, req_key),
 *                else endpoint sel & 3 and the fields given; the code is
 *                kept a response code, as the scheduler's always is
 *   2 clock      [ms:2]  monotonic += ms*8, wall += ms/128 s
 *   3 timer      run due retransmissions (fe_rtx_due)
 *   4 sweep      fe_session_sweep
 *
 * Checked on every input: no crash, leak or sanitizer report; every answer
 * to a request (not the scheduler's bytes relayed) parses, fits
 * GW_COAP_MAX_MSG, carries the request's token and is a piggybacked ACK
 * with the request's MID for a CON or a NON for a NON; every REQ envelope
 * the frontend would push decodes with gw_msg_decode and carries a device
 * request that the scheduler can parse (8-byte token, S4.3). */
#include "fe_auth.h"
#include "fe_block.h"
#include "fe_local.h"
#include "fe_msglayer.h"
#include "fe_route.h"
#include "fe_session.h"
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
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Shared with make-seeds.py (the seeds hold a token signed with it). */
#define SECRET "fuzz-secret-0123456789abcdef-0123456789"
#define T0_MS 1000000u
#define T0_WALL 1700000000
#define NEPS 4
#define NLIMITS 8
#define NPUSHED 8

struct limit {
    uint64_t session;
    double tokens;
    uint64_t last_ms;
    uint32_t inflight;
};

static struct {
    char dir[512];
    struct gw_store store;
    struct fe_auth *auth;
    struct gw_config cfg;
    struct fe_sess_cfg scfg;
    struct gw_coap_parser *parser;  /* the frontend's one parser */
    struct gw_coap_parser *check;   /* the harness's, for the oracles */
    struct gw_fake_clock fc;
    struct gw_clock clock;
    struct fe_dedup dedup;
    struct fe_rtx rtx;
    struct fe_blocks blocks;
    struct fe_local local;
    struct gw_ep ep[NEPS];
    struct limit limits[NLIMITS];
    uint16_t next_mid;
    uint64_t next_req;
    uint32_t rnd;
    struct gw_msg pushed[NPUSHED];  /* the last REQ envelopes, for answers */
    unsigned npushed;
    bool dirty;                     /* the session tables moved off the start state */
    /* The request being answered (for the reply oracle). */
    const struct gw_coap_msg *cur_req;
    uint8_t cur_type, cur_tkl, cur_token[8];
    uint16_t cur_mid;
    volatile size_t sent_bytes;
} F;

/* FUZZ_TRACE=1 prints what the harness sees (for writing seeds). */
static bool trace;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_frontend: %s\n", what);
    abort();
}

/* ---- set-up ------------------------------------------------------------- */

static void rmtree(const char *d, int depth)
{
    DIR *dp = opendir(d);
    if (!dp)
        return;
    struct dirent *e;
    char p[1200];
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
        struct stat st;
        if (depth > 0 && lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            rmtree(p, depth - 1);
        else
            unlink(p);
    }
    closedir(dp);
    rmdir(d);
}

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
    rmtree(F.dir, 1);
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
        struct fe_sess_req rq = { .account = start[i].account, .ep = F.ep[start[i].ep],
                                  .security = start[i].security, .single = start[i].single,
                                  .token_exp = T0_WALL + 3600, .scope = &sc };
        struct gw_session s;
        struct gw_ep moved;
        const char *diag = NULL;
        if (fe_session_create(&F.store, &F.scfg, &rq, T0_WALL, &s, &moved, &diag) != 0)
            fail("cannot create a start session");
    }
    F.dirty = false;
}

static void on_reply(void *ctx, const struct gw_ep *ep, const struct gw_coap_msg *req, struct fe_dedup_entry *de,
                     const uint8_t *buf, size_t len);
static uint16_t on_mid(void *ctx);
static void on_session_ended(void *ctx, const struct gw_session *s);
static void on_session_created(void *ctx, const struct gw_session *s, const struct gw_ep *moved_from);

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
    write_file(path, "mac,address,type,key,plain_port,secure_port\n"
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
    F.local = (struct fe_local){
        .cfg = &F.cfg, .store = &F.store, .auth = F.auth, .scfg = &F.scfg, .blocks = &F.blocks,
        .parser = F.parser, .ctx = &F, .reply = on_reply, .mid = on_mid,
        .session_ended = on_session_ended, .session_created = on_session_created, .clock = &F.clock,
    };
    sessions_reset();
    return 0;
}

/* ---- sending and the reply oracle --------------------------------------- */

static void send_dgram(const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    (void)ep;
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < len; i++) /* every byte sent must be initialized */
        sink ^= buf[i];
    F.sent_bytes += len;
    (void)sink;
}

static void send_empty(const struct gw_ep *ep, uint8_t type, uint16_t mid)
{
    uint8_t b[4] = { (uint8_t)(0x40 | type << 4), 0, (uint8_t)(mid >> 8), (uint8_t)mid };
    send_dgram(ep, b, 4);
}

static uint16_t new_mid(void)
{
    return F.next_mid++;
}

/* An answer to the request being handled: it must be well-formed. */
static void check_answer(const uint8_t *buf, size_t len)
{
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
}

static void reply_now(const struct gw_ep *ep, struct fe_dedup_entry *de, const uint8_t *buf, size_t len)
{
    check_answer(buf, len);
    if (trace) {
        char cs[8];
        fprintf(stderr, "  answer %s (%zu bytes)\n", gw_coap_code_str(buf[1], cs), len);
    }
    send_dgram(ep, buf, len);
    if (de)
        fe_dedup_set_resp(&F.dedup, de, buf, len);
}

static void reply_code(const struct gw_ep *ep, const struct gw_coap_msg *req, struct fe_dedup_entry *de,
                       uint8_t code, const char *diag, uint32_t max_age)
{
    uint8_t out[512];
    struct gw_cb b;
    uint8_t type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
    uint16_t mid = req->type == GW_COAP_CON ? req->mid : new_mid();
    gw_cb_init(&b, out, sizeof(out), type, code, mid, req->token, req->tkl);
    if (max_age != UINT32_MAX)
        gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, max_age);
    if (diag)
        gw_cb_payload(&b, diag, strlen(diag));
    size_t len;
    if (gw_cb_finish(&b, &len) == 0)
        reply_now(ep, de, out, len);
}

static void on_reply(void *ctx, const struct gw_ep *ep, const struct gw_coap_msg *req, struct fe_dedup_entry *de,
                     const uint8_t *buf, size_t len)
{
    if (ctx != &F)
        fail("callback context");
    (void)req;
    reply_now(ep, de, buf, len);
}

static uint16_t on_mid(void *ctx)
{
    (void)ctx;
    return new_mid();
}

static void on_session_ended(void *ctx, const struct gw_session *s)
{
    (void)ctx;
    F.dirty = true;
    if (s->id == 0 || !memchr(s->account, '\0', sizeof(s->account)))
        fail("ended session is malformed");
    fe_rtx_forget_ep(&F.rtx, &s->ep); /* tell_session_end */
}

static void on_session_created(void *ctx, const struct gw_session *s, const struct gw_ep *moved_from)
{
    (void)ctx;
    (void)moved_from;
    F.dirty = true;
    if (s->id == 0 || !memchr(s->account, '\0', sizeof(s->account)) || s->account[0] == '\0')
        fail("created session is malformed");
}

/* ---- the scheduler side ------------------------------------------------- */

/* What push_sch would put in the ring, checked as the scheduler reads it. */
static void push_sch(const struct gw_msg *m, const uint8_t *data)
{
    static uint8_t rec[sizeof(struct gw_msg) + GW_COAP_MAX_MSG + 64];
    if (m->len > GW_COAP_MAX_MSG)
        fail("REQ over GW_COAP_MAX_MSG");
    memcpy(rec, m, sizeof(*m));
    memcpy(rec + sizeof(*m), data, m->len);
    struct gw_msg d;
    const uint8_t *body;
    if (gw_msg_decode(rec, sizeof(*m) + m->len, &d, &body) != 0)
        fail("the frontend built an envelope the scheduler drops");
    struct gw_coap_msg r;
    /* sch_core.c on_request: anything else is a 5.00 "malformed request record". */
    if (d.len < 12 || gw_coap_parse(F.check, body, d.len, &r) != 0 || r.tkl != 8)
        fail("the frontend built a device request the scheduler cannot parse");
    F.pushed[F.npushed++ % NPUSHED] = d;
    if (trace)
        fprintf(stderr, "  REQ to the scheduler (%u bytes, flags 0x%02x)\n", d.len, d.flags);
}

static struct limit *limit_for(uint64_t session)
{
    for (int i = 0; i < NLIMITS; i++)
        if (F.limits[i].session == session)
            return &F.limits[i];
    for (int i = 0; i < NLIMITS; i++)
        if (F.limits[i].session == 0) {
            F.limits[i] = (struct limit){ session, (double)F.cfg.session_burst, F.fc.ms, 0 };
            return &F.limits[i];
        }
    memset(F.limits, 0, sizeof(F.limits));
    return limit_for(session);
}

/* ---- handle_proxy ------------------------------------------------------- */

static void handle_proxy(const struct gw_ep *ep, const struct gw_coap_msg *req, struct fe_dedup_entry *de,
                         const struct fe_target *t)
{
    struct gw_session s;
    int64_t now_s = F.fc.wall;
    uint64_t now = F.fc.ms;
    if (fe_session_lookup(&F.store, &F.scfg, ep, now_s, &s) != 0) {
        reply_code(ep, req, de, GW_COAP_UNAUTHORIZED,
                   "no session for this address and port: POST a token to /sessions first", UINT32_MAX);
        return;
    }
    struct fe_verdict v;
    int szx;
    if (fe_route_check_options(req, &szx, &v) != 0) {
        const struct gw_coap_opt *b2 = gw_coap_opt_find(req, GW_OPT_BLOCK2);
        struct gw_block blk;
        if (b2 && !gw_coap_opt_find(req, GW_OPT_BLOCK1) && gw_block_decode(b2, &blk)) {
            uint64_t key = fe_local_target_key(req, t);
            struct fe_block_xfer *x = fe_blocks_find(&F.blocks, ep, key, 2, now);
            struct gw_coap_msg full;
            if (x && gw_coap_parse(F.parser, x->data, x->len, &full) == 0) {
                uint8_t out[GW_COAP_MAX_MSG + 64];
                size_t ol;
                uint8_t type = req->type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON;
                uint16_t mid = req->type == GW_COAP_CON ? req->mid : new_mid();
                if (fe_block_slice(&full, blk.num, blk.szx, type, mid, req->token, req->tkl, out, sizeof(out),
                                   &ol) == 0) {
                    reply_now(ep, de, out, ol);
                    return;
                }
                reply_code(ep, req, de, GW_COAP_BAD_OPTION, "Block2 number past the end of the stored answer",
                           UINT32_MAX);
                return;
            }
        }
        if (!v.diag || (v.code >> 5) < 4)
            fail("option check refused without an error");
        reply_code(ep, req, de, v.code, v.diag, UINT32_MAX);
        return;
    }
    uint8_t mac[GW_MAC_LEN];
    struct gw_device dev;
    if (gw_mac_parse(t->host, strlen(t->host), mac) != 0 || gw_registry_get(&F.store, mac, &dev) != 0) {
        reply_code(ep, req, de, GW_COAP_BAD_GATEWAY, "unknown device: no such MAC ID in the device registry",
                   UINT32_MAX);
        return;
    }
    if (!fe_scope_allows(&s.scope, mac)) {
        reply_code(ep, req, de, GW_COAP_FORBIDDEN, "device outside the token's device scope", UINT32_MAX);
        return;
    }
    if (t->port >= 0) {
        int want = s.security == GW_SEC_NETMGR ? 4849 : 5683;
        if (t->port != want) {
            reply_code(ep, req, de, GW_COAP_BAD_REQUEST, "port contradicts the session's security", UINT32_MAX);
            return;
        }
    }
    struct limit *l = limit_for(s.id);
    double elapsed = (double)(now - l->last_ms) / 1000.0;
    l->last_ms = now;
    l->tokens += elapsed * (double)F.cfg.session_rate;
    if (l->tokens > (double)F.cfg.session_burst)
        l->tokens = (double)F.cfg.session_burst;
    if (l->inflight >= (uint32_t)F.cfg.session_max_inflight || l->tokens < 1.0) {
        uint32_t wait = l->tokens < 1.0 ? (uint32_t)((1.0 - l->tokens) / (double)F.cfg.session_rate) + 1 : 1;
        reply_code(ep, req, de, GW_COAP_TOO_MANY, "limit", wait);
        return;
    }
    uint8_t up[GW_COAP_MAX_MSG + 64];
    size_t ul;
    if (fe_route_build(req, t, up, sizeof(up), &ul) != 0 || ul > GW_COAP_MAX_MSG) {
        reply_code(ep, req, de, GW_COAP_TOO_LARGE, "request too large for the mesh", UINT32_MAX);
        return;
    }
    struct gw_msg m;
    memset(&m, 0, sizeof(m));
    m.kind = GW_MSG_REQ;
    m.security = s.security;
    m.len = (uint16_t)ul;
    m.client_type = req->type;
    m.tkl = req->tkl;
    memcpy(m.token, req->token, req->tkl);
    m.req_id = F.next_req++;
    m.session = s.id;
    m.ep = *ep;
    memcpy(m.mac, mac, GW_MAC_LEN);
    int obs = fe_route_observe(req);
    if (obs == 0)
        m.flags |= GW_MF_OBS_REGISTER;
    else if (obs == 1)
        m.flags |= GW_MF_OBS_CANCEL;
    if (szx >= 0) {
        m.flags |= GW_MF_BLOCK2;
        m.aux = (uint32_t)szx;
    }
    m.req_key = fe_local_target_key(req, t);
    m.client_mid = req->mid;
    const struct gw_coap_opt *nr = gw_coap_opt_find(req, GW_OPT_NO_RESPONSE);
    uint32_t nrv;
    if (nr && gw_coap_uint(nr->val, nr->len, &nrv))
        m.noresp = (uint8_t)nrv;
    push_sch(&m, up);
    l->tokens -= 1.0;
    l->inflight++;
    if (de)
        de->forwarded = 1;
    if (req->type == GW_COAP_CON)
        send_empty(ep, GW_COAP_ACK, req->mid);
    if (now_s != T0_WALL)
        F.dirty = true; /* fe_session_touch may write last_seen */
    if (fe_session_touch(&F.store, &F.scfg, &s, now_s) != 0)
        fail("fe_session_touch");
}

/* ---- handle_datagram ---------------------------------------------------- */

static void handle_datagram(const struct gw_ep *ep, const uint8_t *buf, size_t len)
{
    uint8_t ver, type;
    uint16_t mid;
    if (!gw_coap_peek(buf, len, &ver, &type, &mid))
        return;
    if (ver != 1)
        return;
    uint64_t now = F.fc.ms;
    if (len > (size_t)F.cfg.max_message) {
        uint8_t tkl = buf[0] & 15, code = buf[1];
        if (tkl <= 8 && len >= 4u + tkl && (code >> 5) == 0 && code != 0 && type <= GW_COAP_NON) {
            uint8_t out[64];
            struct gw_cb b;
            gw_cb_init(&b, out, sizeof(out), type == GW_COAP_CON ? GW_COAP_ACK : GW_COAP_NON, GW_COAP_TOO_LARGE,
                       type == GW_COAP_CON ? mid : new_mid(), buf + 4, tkl);
            gw_cb_opt_uint(&b, GW_OPT_SIZE1, (uint32_t)F.cfg.max_message);
            gw_cb_payload(&b, "message too large", 17);
            size_t ol;
            if (gw_cb_finish(&b, &ol) != 0)
                fail("4.13 does not fit");
            send_dgram(ep, out, ol);
        }
        return;
    }
    struct gw_coap_msg req;
    int rc = gw_coap_parse(F.parser, buf, len, &req);
    if (rc) {
        if (type == GW_COAP_CON)
            send_empty(ep, GW_COAP_RST, mid);
        return;
    }
    if (req.type == GW_COAP_ACK || req.type == GW_COAP_RST) {
        struct fe_rtx_out o;
        if (fe_rtx_ack(&F.rtx, ep, req.mid, &o) && !gw_ep_eq(&o.ep, ep))
            fail("ACK matched another endpoint's message");
        return;
    }
    if (req.code == GW_COAP_EMPTY) {
        if (req.type == GW_COAP_CON)
            send_empty(ep, GW_COAP_RST, req.mid);
        return;
    }
    if ((req.code >> 5) != 0) {
        if (req.type == GW_COAP_CON)
            send_empty(ep, GW_COAP_RST, req.mid);
        return;
    }
    F.cur_type = req.type;
    F.cur_tkl = req.tkl;
    memcpy(F.cur_token, req.token, sizeof(F.cur_token));
    F.cur_mid = req.mid;
    struct fe_dedup_entry *de = fe_dedup_find(&F.dedup, ep, req.mid, now);
    if (de) {
        if (!gw_ep_eq(&de->ep, ep) || de->mid != req.mid)
            fail("dedup matched another exchange");
        if (de->resp)
            send_dgram(ep, de->resp, de->resp_len);
        else if (req.type == GW_COAP_CON)
            send_empty(ep, GW_COAP_ACK, req.mid);
        return;
    }
    de = fe_dedup_add(&F.dedup, ep, req.mid, now);
    if (!de)
        fail("fe_dedup_add returned NULL");
    if (fe_route_is_proxy(&req)) {
        static struct fe_target t;
        struct fe_verdict v;
        rc = fe_route_target(&req, &t, &v);
        if (rc == 0 && fe_route_is_self(t.host, F.cfg.names, F.cfg.listen)) {
            fe_local_handle(&F.local, ep, &req, &t, de);
            return;
        }
        if (rc == 0) {
            handle_proxy(ep, &req, de, &t);
            return;
        }
        struct gw_session s;
        if (fe_session_lookup(&F.store, &F.scfg, ep, F.fc.wall, &s) != 0) {
            handle_proxy(ep, &req, de, &t);
            return;
        }
        reply_code(ep, &req, de, v.code, v.diag, UINT32_MAX);
        return;
    }
    fe_local_handle(&F.local, ep, &req, NULL, de);
}

/* ---- deliver ------------------------------------------------------------ */

static void deliver(const struct gw_msg *m, const uint8_t *data)
{
    if (m->len < 4)
        return;
    uint8_t buf[GW_COAP_MAX_MSG + 64];
    size_t len = m->len;
    if (len > GW_COAP_MAX_MSG + 16)
        return;
    memcpy(buf, data, len);
    bool notify = m->flags & GW_MF_NOTIFY;
    if (!notify || (m->flags & GW_MF_ANSWER)) {
        struct limit *l = limit_for(m->session);
        if (l->inflight)
            l->inflight--;
    }
    if (m->flags & GW_MF_SUPPRESS)
        return;
    uint8_t type = m->client_type == GW_COAP_CON ? GW_COAP_CON : GW_COAP_NON;
    if (notify)
        type = F.cfg.obs_notify_con || !(m->flags & GW_MF_DEV_NON) ? GW_COAP_CON : GW_COAP_NON;
    uint16_t mid = new_mid();
    struct gw_coap_msg full;
    if ((m->flags & GW_MF_BLOCK2) && !notify && gw_coap_parse(F.parser, buf, len, &full) == 0 &&
        full.payload_len > ((size_t)16 << m->aux)) {
        struct fe_block_xfer *x = fe_blocks_new(&F.blocks, &m->ep, m->req_key, 2, F.fc.ms);
        if (fe_blocks_append(&F.blocks, x, buf, len) == 0) {
            uint8_t out[GW_COAP_MAX_MSG + 64];
            size_t ol;
            if (fe_block_slice(&full, 0, (uint8_t)m->aux, type, mid, m->token, m->tkl, out, sizeof(out), &ol) == 0) {
                struct gw_coap_msg sl;
                if (gw_coap_parse(F.check, out, ol, &sl) != 0)
                    fail("a Block2 slice of a scheduler answer does not parse");
                memcpy(buf, out, ol);
                len = ol;
            }
        } else {
            fe_blocks_drop(&F.blocks, x);
        }
    }
    buf[0] = (uint8_t)((buf[0] & 0xcf) | type << 4);
    buf[2] = (uint8_t)(mid >> 8);
    buf[3] = (uint8_t)mid;
    if (type == GW_COAP_CON)
        GW_IGNORE(fe_rtx_add(&F.rtx, &m->ep, mid, buf, len, notify, m->token, m->tkl, m->session, F.fc.ms,
                             F.rnd++ * 2654435761u));
    send_dgram(&m->ep, buf, len);
    if (trace)
        fprintf(stderr, "  delivered %s (%zu bytes, MID 0x%04x)\n", type == GW_COAP_CON ? "CON" : "NON", len, mid);
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

static void on_sweep_ended(void *ctx, const struct gw_session *s)
{
    on_session_ended(ctx, s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (F.dirty)
        sessions_reset();
    F.fc = (struct gw_fake_clock){ T0_MS, T0_WALL };
    F.next_mid = 0x4000;
    F.next_req = 1;
    F.rnd = 1;
    F.npushed = 0;
    memset(F.limits, 0, sizeof(F.limits));
    if (fe_dedup_init(&F.dedup, 32, (uint64_t)F.cfg.exchange_lifetime_ms, 16384) != 0 ||
        fe_rtx_init(&F.rtx, 16, (uint64_t)F.cfg.client_ack_timeout_ms, (uint32_t)F.cfg.client_max_retransmit) != 0 ||
        fe_blocks_init(&F.blocks, 4, (uint64_t)F.cfg.block_timeout_ms, 2048) != 0)
        abort();
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
            handle_datagram(ep, d, len);
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
            if ((sel & 0x80) && F.npushed) {
                /* The answer to a request pushed earlier: the envelope is
                 * the REQ's, as sch_core_send_client makes it. */
                const struct gw_msg *q = &F.pushed[(F.npushed - 1 - (sel >> 2) % NPUSHED) % NPUSHED];
                if ((sel >> 2) % NPUSHED < F.npushed) {
                    uint8_t fl = m.flags & (GW_MF_NOTIFY | GW_MF_SUPPRESS | GW_MF_DEV_NON);
                    uint32_t aux = m.aux;
                    m = *q;
                    m.kind = GW_MSG_RESP;
                    m.flags = (uint8_t)((q->flags & GW_MF_BLOCK2) | fl | (fl & GW_MF_NOTIFY ? 0 : GW_MF_ANSWER));
                    m.aux = fl & GW_MF_NOTIFY ? aux : q->aux;
                }
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
            memcpy(rec + sizeof(m), d, len);
            struct gw_msg dm;
            const uint8_t *body;
            if (gw_msg_decode(rec, sizeof(m) + len, &dm, &body) == 0 && dm.kind == GW_MSG_RESP)
                deliver(&dm, body);
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
        case 3: {
            struct fe_rtx_out o;
            for (int i = 0; i < 64 && fe_rtx_due(&F.rtx, F.fc.ms, &o); i++)
                send_dgram(&o.ep, o.buf, o.len);
            break;
        }
        case 4:
            if (fe_session_sweep(&F.store, &F.scfg, F.fc.wall, 64, on_sweep_ended, &F) > 0)
                F.dirty = true;
            break;
        }
    }
    fe_dedup_deinit(&F.dedup);
    fe_rtx_deinit(&F.rtx);
    fe_blocks_deinit(&F.blocks);
    return 0;
}
