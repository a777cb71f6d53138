/* SPDX-License-Identifier: MIT */
/* bench_state.c - costs of the gateway's state look-ups, printed, never asserted.
 *
 *   sessions: lookup ns/op with 100 000 live sessions in LMDB (issue 3),
 *             creation rate (verify + create) with HS256 and RS256 tokens
 *   registry: lookup ns/op with 1 000 000 devices (issue 4)
 *   observe:  fan-out notifications/s with 10 000 observers over 100
 *             resources, memory per observer and per observation (issue 5)
 *
 * Usage: bench_state [sessions|registry|observe|all] [scale 0.01..1]
 * Runs in a mkdtemp directory it removes. Figures depend on the machine:
 * run them side by side on the same one when comparing. */
#include "fe_auth.h"
#include "fe_session.h"
#include "gw_clock.h"
#include "gw_coap.h"
#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_registry.h"
#include "gw_shm.h"
#include "gw_store.h"
#include "sch_core.h"

#include <malloc.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static double now_s(void)
{
    return (double)gw_mono_us() / 1e6;
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void rmdir_all(void)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", dir);
}

static void write_file(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(p, 1, n, f) != n) {
        perror(path);
        exit(1);
    }
    fclose(f);
}

static void bench_sessions(double scale)
{
    struct gw_store st;
    if (gw_store_open(&st, dir, 2048) != 0)
        exit(1);
    struct fe_sess_cfg cfg = { 3600, 14400, 1000000, 10000000, 60 };
    int n = (int)(100000 * scale);
    struct fe_scope all = { .all = 1 };
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        char acct[32];
        snprintf(acct, sizeof(acct), "acct%d", i);
        struct fe_sess_req rq = { acct, { .family = 4, .port = (uint16_t)(1024 + i % 60000) },
                                  0,    0,
                                  0,    2000000000,
                                  &all, NULL,
                                  NULL, NULL,
                                  0 };
        rq.ep.addr[0] = 10;
        rq.ep.addr[1] = (uint8_t)(i >> 16);
        rq.ep.addr[2] = (uint8_t)(i >> 8);
        struct gw_session s;
        struct gw_ep moved;
        const char *diag;
        if (fe_session_create(&st, &cfg, &rq, 1000, &s, &moved, &diag) != 0) {
            fprintf(stderr, "create %d failed\n", i);
            exit(1);
        }
    }
    double t1 = now_s();
    printf("sessions: %d created (create only, LMDB write txn each): %.0f/s\n", n, n / (t1 - t0));
    uint64_t seed = 88172645463325252ull;
    int lookups = 1000000, hit = 0;
    t0 = now_s();
    for (int k = 0; k < lookups; k++) {
        int i = (int)(xs(&seed) % (uint64_t)n);
        struct gw_ep ep = { .family = 4, .port = (uint16_t)(1024 + i % 60000) };
        ep.addr[0] = 10;
        ep.addr[1] = (uint8_t)(i >> 16);
        ep.addr[2] = (uint8_t)(i >> 8);
        struct gw_session s;
        hit += fe_session_lookup(&st, &cfg, &ep, 1000, &s) == 0;
    }
    t1 = now_s();
    printf("sessions: lookup with %d live sessions: %.0f ns/op (%d/%d found)\n", n,
           (t1 - t0) * 1e9 / lookups, hit, lookups);
    gw_store_close(&st);

    /* Token verification + creation, HS256 and RS256. */
    const char *algs[2] = { "HS256", "RS256" };
    for (int a = 0; a < 2; a++) {
        char keyp[128], pubp[128];
        snprintf(keyp, sizeof(keyp), "%s/key-%s", dir, algs[a]);
        snprintf(pubp, sizeof(pubp), "%s/pub-%s", dir, algs[a]);
        if (a == 0) {
            write_file(keyp, "0123456789abcdef0123456789abcdef", 32);
            write_file(pubp, "0123456789abcdef0123456789abcdef", 32);
        } else {
            EVP_PKEY *pk = EVP_RSA_gen(2048);
            FILE *f = fopen(keyp, "w");
            PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
            fclose(f);
            f = fopen(pubp, "w");
            PEM_write_PUBKEY(f, pk);
            fclose(f);
            EVP_PKEY_free(pk);
        }
        struct fe_auth_cfg mc = { a ? FE_JWT_RS256 : FE_JWT_HS256, keyp, NULL, NULL, 30, 4096 };
        struct fe_auth_cfg vc = mc;
        vc.key_file = pubp;
        struct fe_auth *minter, *verifier;
        if (fe_auth_new(&mc, &minter) != 0 || fe_auth_new(&vc, &verifier) != 0) {
            fprintf(stderr, "auth set-up failed for %s\n", algs[a]);
            exit(1);
        }
        int m = (int)(20000 * scale) + 100;
        char **toks = calloc((size_t)m, sizeof(char *));
        for (int i = 0; i < m; i++) {
            char acct[32];
            snprintf(acct, sizeof(acct), "c%s%d", algs[a], i);
            const char *diag;
            if (fe_auth_mint(minter, acct, gw_wall_s(), 3600, NULL, &toks[i], &diag) != 0)
                exit(1);
        }
        char sub[160];
        snprintf(sub, sizeof(sub), "%s/s-%s", dir, algs[a]);
        struct gw_store s2;
        if (gw_store_open(&s2, sub, 256) != 0)
            exit(1);
        t0 = now_s();
        for (int i = 0; i < m; i++) {
            struct fe_claims cl;
            const char *diag;
            if (fe_auth_verify(verifier, toks[i], strlen(toks[i]), gw_wall_s(), &cl, &diag) != 0)
                exit(1);
            struct fe_sess_req rq = { cl.sub,    { .family = 4, .port = (uint16_t)(2000 + i) },
                                      0,         0,
                                      0,         cl.exp,
                                      &cl.scope, NULL,
                                      NULL,      NULL,
                                      0 };
            struct gw_session s;
            struct gw_ep moved;
            if (fe_session_create(&s2, &cfg, &rq, gw_wall_s(), &s, &moved, &diag) != 0)
                exit(1);
        }
        t1 = now_s();
        printf("sessions: creation with %s tokens (verify + create): %.0f/s\n", algs[a],
               m / (t1 - t0));
        for (int i = 0; i < m; i++)
            free(toks[i]);
        free(toks);
        gw_store_close(&s2);
        fe_auth_free(minter);
        fe_auth_free(verifier);
    }
}

static void bench_registry(double scale)
{
    int n = (int)(1000000 * scale);
    char path[128];
    snprintf(path, sizeof(path), "%s/devices.csv", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "mac,address,type,key\n");
    for (int i = 0; i < n; i++)
        fprintf(f, "%016x,10.%d.%d.%d,%s,00112233445566778899aabbccddeeff\n", i + 1,
                (i >> 16) & 255, (i >> 8) & 255, i & 255, i % 4 == 3 ? "milli" : "normal");
    fclose(f);
    struct gw_store st;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/reg", dir);
    if (gw_store_open(&st, sub, 4096) != 0)
        exit(1);
    int bad;
    double t0 = now_s();
    int rc = gw_registry_import(&st, path, &bad);
    double t1 = now_s();
    printf("registry: import of %d devices: %d loaded in %.2f s\n", n, rc, t1 - t0);
    uint64_t seed = 0x12345678ull;
    int lookups = 1000000, hit = 0;
    t0 = now_s();
    for (int k = 0; k < lookups; k++) {
        uint64_t i = xs(&seed) % (uint64_t)n + 1;
        uint8_t mac[8];
        for (int b = 0; b < 8; b++)
            mac[b] = (uint8_t)(i >> (56 - 8 * b));
        struct gw_device d;
        hit += gw_registry_get(&st, mac, &d) == 0;
    }
    t1 = now_s();
    printf("registry: lookup by MAC with %d devices: %.0f ns/op (%d/%d found)\n", n,
           (t1 - t0) * 1e9 / lookups, hit, lookups);
    gw_store_close(&st);
}

/* ---- observe fan-out through the scheduler core, no I/O ---- */

static unsigned long long delivered, meshed;
static int cnt_client(void *ctx, struct gw_msg *env, const uint8_t *data)
{
    (void)ctx, (void)env, (void)data;
    delivered++;
    return 0;
}
static uint8_t last_tx[GW_COAP_MAX_MSG + 16];
static size_t last_tx_len;
static int cnt_mesh(void *ctx, const struct gw_msg *env, const uint8_t *data)
{
    (void)ctx;
    meshed++;
    memcpy(last_tx, data, env->len);
    last_tx_len = env->len;
    return 0;
}
static int dev_type(void *ctx, const uint8_t mac[8])
{
    (void)ctx, (void)mac;
    return 0;
}
static uint32_t rnd(void *ctx)
{
    (void)ctx;
    return 0;
}

static void bench_observe(double scale)
{
    struct gw_config cfg;
    gw_config_defaults(&cfg);
    int nres = 100, nobs = (int)(10000 * scale);
    if (nobs < nres)
        nobs = nres;
    cfg.obs_max_observers = nobs * 2;
    struct gw_fake_clock fc = { 1000000, 2000000000 };
    struct gw_clock clk = gw_clock_fake(&fc);
    struct sch_out out = { NULL, cnt_client, cnt_mesh, dev_type, rnd, NULL };
    uint32_t max_txn = 1024;
    void *txns = calloc(max_txn, GW_TXN_SLOT);
    struct sch_core *core;
    struct mallinfo2 m0 = mallinfo2();
    if (sch_core_new(&cfg, &clk, &out, txns, max_txn, GW_TXN_SLOT, NULL, NULL, &core) != 0)
        exit(1);
    struct gw_coap_parser *parser;
    if (gw_coap_parser_new(&parser) != 0)
        exit(1);
    uint8_t gtok[100][8];
    struct mallinfo2 m1 = mallinfo2();
    for (int i = 0; i < nobs; i++) {
        int r = i % nres;
        struct gw_msg env;
        memset(&env, 0, sizeof(env));
        env.kind = GW_MSG_REQ;
        env.flags = GW_MF_OBS_REGISTER;
        env.client_type = GW_COAP_CON;
        env.tkl = 4;
        memcpy(env.token, &i, 4);
        env.ep.family = 4;
        env.ep.port = (uint16_t)(1024 + i % 60000);
        env.ep.addr[0] = 10;
        env.ep.addr[1] = (uint8_t)(i >> 16);
        env.session = (uint64_t)i + 1;
        env.client_mid = (uint16_t)i;
        env.mac[7] = 1;
        uint8_t buf[64], zero[8] = { 0 };
        char path[16];
        snprintf(path, sizeof(path), "r%d", r);
        struct gw_cb b;
        gw_cb_init(&b, buf, sizeof(buf), GW_COAP_CON, GW_COAP_GET, 0, zero, 8);
        gw_cb_opt_uint(&b, GW_OPT_OBSERVE, 0);
        gw_cb_opt_str(&b, GW_OPT_URI_PATH, path);
        size_t len;
        if (gw_cb_finish(&b, &len) != 0)
            exit(1);
        env.len = (uint16_t)len;
        sch_core_on_record(core, &env, buf);
        /* The device answers the registration at once (piggybacked). */
        struct gw_coap_msg req;
        if (gw_coap_parse(parser, last_tx, last_tx_len, &req) != 0)
            exit(1);
        memcpy(gtok[r], req.token, 8);
        uint8_t ans[64];
        gw_cb_init(&b, ans, sizeof(ans), GW_COAP_ACK, GW_COAP_CONTENT, req.mid, req.token, 8);
        gw_cb_opt_uint(&b, GW_OPT_OBSERVE, 2);
        gw_cb_payload(&b, "1", 1);
        if (gw_cb_finish(&b, &len) != 0)
            exit(1);
        struct gw_msg rx;
        memset(&rx, 0, sizeof(rx));
        rx.kind = GW_MSG_MESH_RX;
        rx.mac[7] = 1;
        rx.len = (uint16_t)len;
        sch_core_on_record(core, &rx, ans);
    }
    struct mallinfo2 m2 = mallinfo2();
    struct sch_core_counts c;
    sch_core_counts(core, &c);
    printf(
        "observe: %u observations, %u observers; heap per observer %.0f B (all observe state incl. observations "
        "and indexes / observers)\n",
        c.observations, c.observers, (double)(m2.uordblks - m1.uordblks) / (double)c.observers);
    (void)m0;
    delivered = 0;
    uint32_t dobs = 3;
    int rounds = 200;
    double t0 = now_s();
    for (int k = 0; k < rounds; k++) {
        for (int r = 0; r < nres; r++) {
            uint8_t ntf[64];
            struct gw_cb b;
            gw_cb_init(&b, ntf, sizeof(ntf), GW_COAP_NON, GW_COAP_CONTENT, (uint16_t)(k * nres + r),
                       gtok[r], 8);
            gw_cb_opt_uint(&b, GW_OPT_OBSERVE, dobs);
            gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, 60);
            gw_cb_payload(&b, "22.5", 4);
            size_t len;
            if (gw_cb_finish(&b, &len) != 0)
                exit(1);
            struct gw_msg rx;
            memset(&rx, 0, sizeof(rx));
            rx.kind = GW_MSG_MESH_RX;
            rx.mac[7] = 1;
            rx.len = (uint16_t)len;
            sch_core_on_record(core, &rx, ntf);
        }
        dobs++;
        fc.ms += 10;
    }
    double t1 = now_s();
    printf("observe: fan-out in the scheduler core (no rings, no sockets): %.0f notifications/s "
           "(%llu delivered, %.0f ns each)\n",
           (double)delivered / (t1 - t0), delivered, (t1 - t0) * 1e9 / (double)delivered);
    sch_core_free(core);
    gw_coap_parser_free(parser);
    free(txns);
}

int main(int argc, char **argv)
{
    const char *what = argc > 1 ? argv[1] : "all";
    double scale = argc > 2 ? atof(argv[2]) : 1.0;
    if (scale <= 0 || scale > 1)
        scale = 1.0;
    gw_log_init("bench", -1, GW_LOG_WARN);
    snprintf(dir, sizeof(dir), "/tmp/bench_state_XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    printf("bench_state on %ld cores (figures for this machine only)\n",
           sysconf(_SC_NPROCESSORS_ONLN));
    if (!strcmp(what, "sessions") || !strcmp(what, "all"))
        bench_sessions(scale);
    if (!strcmp(what, "registry") || !strcmp(what, "all"))
        bench_registry(scale);
    if (!strcmp(what, "observe") || !strcmp(what, "all"))
        bench_observe(scale);
    rmdir_all();
    return 0;
}
