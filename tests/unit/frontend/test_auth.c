/* SPDX-License-Identifier: MIT */
/* test_auth.c - unit tests for fe_auth (JWT verification and minting, SPEC S2.2).
 *
 * Every token is built here, at run time, with OpenSSL (and libjwt for the
 * cross-checks): keys are generated per test process and written as PEM into
 * a mkdtemp() directory, tokens are assembled from JSON text and signed by
 * hand so that hostile headers and claims can still carry a valid signature.
 * Time is a fixed fake clock, NOW, with a 30 s leeway. */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jwt.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fe_auth.h"
#include "gw_config.h"
#include "gw_error.h"

#define NOW 1700000000LL
#define LEEWAY 30
#define T_FUT "1700000600"      /* NOW + 600 */
#define T_PAST "1699999000"     /* NOW - 1000 */
#define T_EDGE_OK "1699999971"  /* NOW - LEEWAY + 1: exp + leeway > now */
#define T_EDGE_BAD "1699999970" /* NOW - LEEWAY: exp + leeway == now */
#define T_NBF_FUT "1700000031"  /* NOW + LEEWAY + 1 */
#define T_NBF_OK "1700000030"   /* NOW + LEEWAY */

/* 40 bytes; the file gets a trailing newline that must be ignored. */
#define HS_SECRET "coapgw-unit-test-hs256-secret-0123456789"

/* ---- fixture: temp dir, lazily generated keys ----------------------------- */

static char g_dir[64];
static EVP_PKEY *g_rsa, *g_ec;

static const char *fx_path(const char *name)
{
    static char pool[8][128];
    static unsigned next;
    char *p = pool[next++ % 8];

    snprintf(p, sizeof(pool[0]), "%s/%s", g_dir, name);
    return p;
}

static void fx_write(const char *name, const void *data, size_t len)
{
    FILE *f = fopen(fx_path(name), "wb");

    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* Returns the file's bytes (malloc'd, NUL-terminated). */
static char *fx_read(const char *name, size_t *len)
{
    FILE *f = fopen(fx_path(name), "rb");
    char *b = calloc(1, 1 << 17);

    cr_assert_not_null(f);
    cr_assert_not_null(b);
    *len = fread(b, 1, (1 << 17) - 1, f);
    cr_assert_eq(fclose(f), 0);
    return b;
}

static char *pem_of(EVP_PKEY *k, bool priv)
{
    BIO *m = BIO_new(BIO_s_mem());
    char *p, *s;
    long n;

    cr_assert_not_null(m);
    if (priv)
        cr_assert_eq(PEM_write_bio_PrivateKey(m, k, NULL, NULL, 0, NULL, NULL), 1);
    else
        cr_assert_eq(PEM_write_bio_PUBKEY(m, k), 1);
    n = BIO_get_mem_data(m, &p);
    s = strndup(p, (size_t)n);
    cr_assert_not_null(s);
    BIO_free(m);
    return s;
}

/* Writes name_pub.pem and name_priv.pem for k. */
static void fx_write_pems(const char *name, EVP_PKEY *k)
{
    char fn[64];
    char *pub = pem_of(k, false), *priv = pem_of(k, true);

    snprintf(fn, sizeof(fn), "%s_pub.pem", name);
    fx_write(fn, pub, strlen(pub));
    snprintf(fn, sizeof(fn), "%s_priv.pem", name);
    fx_write(fn, priv, strlen(priv));
    free(pub);
    free(priv);
}

static EVP_PKEY *rsa_key(void)
{
    if (!g_rsa) {
        g_rsa = EVP_RSA_gen(2048);
        cr_assert_not_null(g_rsa);
        fx_write_pems("rsa", g_rsa);
    }
    return g_rsa;
}

static EVP_PKEY *ec_key(void)
{
    if (!g_ec) {
        g_ec = EVP_EC_gen("P-256");
        cr_assert_not_null(g_ec);
        fx_write_pems("ec", g_ec);
    }
    return g_ec;
}

static void fx_setup(void)
{
    static const char secret[] = HS_SECRET "\n";

    strcpy(g_dir, "/tmp/test_auth.XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    fx_write("hs.key", secret, strlen(secret));
}

static int rm_cb(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p);
}

static void fx_teardown(void)
{
    EVP_PKEY_free(g_rsa);
    EVP_PKEY_free(g_ec);
    g_rsa = g_ec = NULL;
    if (g_dir[0])
        cr_expect_eq(nftw(g_dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS), 0);
}

TestSuite(auth, .init = fx_setup, .fini = fx_teardown);

/* ---- config and token builders ---------------------------------------------- */

static const char *key_name(enum fe_jwt_alg alg)
{
    if (alg == FE_JWT_RS256) {
        rsa_key();
        return "rsa_pub.pem";
    }
    if (alg == FE_JWT_ES256) {
        ec_key();
        return "ec_pub.pem";
    }
    return "hs.key";
}

static int auth_try(enum fe_jwt_alg alg, const char *file, const char *iss, const char *aud,
                    size_t max_len, struct fe_auth **a)
{
    struct fe_auth_cfg cfg = {
        .alg = alg,
        .key_file = fx_path(file),
        .issuer = iss,
        .audience = aud,
        .leeway_s = LEEWAY,
        .max_token_len = max_len,
    };

    *a = NULL;
    return fe_auth_new(&cfg, a);
}

static struct fe_auth *auth_full(enum fe_jwt_alg alg, const char *file, const char *iss,
                                 const char *aud)
{
    struct fe_auth *a;
    int r = auth_try(alg, file, iss, aud, 4096, &a);

    cr_assert_eq(r, 0, "fe_auth_new: %s", gw_strerror(r));
    cr_assert_not_null(a);
    return a;
}

static struct fe_auth *auth(enum fe_jwt_alg alg)
{
    return auth_full(alg, key_name(alg), NULL, NULL);
}

static char *b64u(const void *p, size_t n)
{
    char *s = malloc(n / 3 * 4 + 8);
    int len;

    cr_assert_not_null(s);
    len = EVP_EncodeBlock((unsigned char *)s, p, (int)n);
    while (len > 0 && s[len - 1] == '=')
        len--;
    s[len] = '\0';
    for (char *c = s; *c; c++)
        *c = *c == '+' ? '-' : *c == '/' ? '_' : *c;
    return s;
}

enum signer {
    S_HS,        /* HS256 with HS_SECRET (no newline) */
    S_HS_NL,     /* HS256 with HS_SECRET "\n": the file bytes verbatim */
    S_HS_OTHER,  /* HS256 with another secret */
    S_HS_RSAPEM, /* HS256 with the RSA public key PEM file as secret (confusion) */
    S_HS_ECPEM,  /* same with the EC public key PEM */
    S_RS,        /* RS256 with the test RSA key */
    S_ES,        /* ES256 with the test EC P-256 key */
    S_NONE,      /* empty signature segment */
};

static const char *signer_alg(enum signer s)
{
    switch (s) {
    case S_RS:
        return "RS256";
    case S_ES:
        return "ES256";
    case S_NONE:
        return "none";
    default:
        return "HS256";
    }
}

/* Signs with k (RS256/ES256); ES256 gives the JOSE raw r||s form. */
static size_t sign_pkey(EVP_PKEY *k, const char *in, unsigned char *sig, size_t cap, bool ec)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    size_t sl = cap;

    cr_assert_not_null(m);
    cr_assert_eq(EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, k), 1);
    cr_assert_eq(EVP_DigestSign(m, sig, &sl, (const unsigned char *)in, strlen(in)), 1);
    EVP_MD_CTX_free(m);
    if (ec) {
        const unsigned char *p = sig;
        const BIGNUM *r, *s;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);

        cr_assert_not_null(es);
        ECDSA_SIG_get0(es, &r, &s);
        cr_assert_eq(BN_bn2binpad(r, sig, 32), 32);
        cr_assert_eq(BN_bn2binpad(s, sig + 32, 32), 32);
        ECDSA_SIG_free(es);
        sl = 64;
    }
    return sl;
}

/* Builds header.payload.signature from raw header/payload bytes. */
static char *tok_raw(const char *hdr, const void *pl, size_t pl_len, enum signer s)
{
    char *h = b64u(hdr, strlen(hdr)), *p = b64u(pl, pl_len), *sig_s, *out;
    unsigned char sig[512];
    size_t sl = 0, klen;
    char *in, *kfile = NULL;
    unsigned int ml;

    cr_assert_gt(asprintf(&in, "%s.%s", h, p), 0);
    switch (s) {
    case S_HS:
        cr_assert_not_null(HMAC(EVP_sha256(), HS_SECRET, strlen(HS_SECRET), (unsigned char *)in,
                                strlen(in), sig, &ml));
        sl = ml;
        break;
    case S_HS_NL:
        cr_assert_not_null(HMAC(EVP_sha256(), HS_SECRET "\n", strlen(HS_SECRET) + 1,
                                (unsigned char *)in, strlen(in), sig, &ml));
        sl = ml;
        break;
    case S_HS_OTHER:
        cr_assert_not_null(HMAC(EVP_sha256(), "another-secret-another-secret-xx", 32,
                                (unsigned char *)in, strlen(in), sig, &ml));
        sl = ml;
        break;
    case S_HS_RSAPEM:
    case S_HS_ECPEM:
        if (s == S_HS_RSAPEM)
            rsa_key();
        else
            ec_key();
        kfile = fx_read(s == S_HS_RSAPEM ? "rsa_pub.pem" : "ec_pub.pem", &klen);
        cr_assert_not_null(
            HMAC(EVP_sha256(), kfile, (int)klen, (unsigned char *)in, strlen(in), sig, &ml));
        sl = ml;
        free(kfile);
        break;
    case S_RS:
        sl = sign_pkey(rsa_key(), in, sig, sizeof(sig), false);
        break;
    case S_ES:
        sl = sign_pkey(ec_key(), in, sig, sizeof(sig), true);
        break;
    case S_NONE:
        break;
    }
    sig_s = b64u(sig, sl);
    cr_assert_gt(asprintf(&out, "%s.%s", in, sig_s), 0);
    free(h);
    free(p);
    free(in);
    free(sig_s);
    return out;
}

/* Header {"alg":<signer's alg>,"typ":"JWT"} when hdr is NULL. */
static char *tok(enum signer s, const char *hdr, const char *claims)
{
    char dflt[64];

    if (!hdr) {
        snprintf(dflt, sizeof(dflt), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", signer_alg(s));
        hdr = dflt;
    }
    return tok_raw(hdr, claims, strlen(claims), s);
}

static int verify_str(struct fe_auth *a, const char *t, struct fe_claims *c, const char **diag)
{
    return fe_auth_verify(a, t, strlen(t), NOW, c, diag);
}

#define GOOD "\"sub\":\"alice\",\"exp\":" T_FUT
#define CL(...) "{" __VA_ARGS__ "}"

/* ---- table: tokens that must be accepted ---------------------------------- */

/* Strings are held by value: criterion runs each parameter in a freshly
 * exec'd process (ASLR), where pointers into this one's image are invalid. */
struct tcase {
    char name[32];
    enum fe_jwt_alg cfg;
    enum signer sig;
    char hdr[64]; /* "": default for the signer */
    char claims[160];
    char iss[8];   /* configured issuer, "" = none */
    char aud[8];   /* configured audience, "" = none */
    int rc;        /* expected fe_auth_verify() result */
    char diag[32]; /* expected diag, "" = any */
};

static struct tcase good_cases[] = {
    /* S2.2: the configured key and algorithm, each of the three. */
    { "hs256", FE_JWT_HS256, S_HS, "", CL(GOOD), "", "", 0, "" },
    { "rs256", FE_JWT_RS256, S_RS, "", CL(GOOD), "", "", 0, "" },
    { "es256", FE_JWT_ES256, S_ES, "", CL(GOOD), "", "", 0, "" },
    /* typ is optional and case-insensitive (RFC 7519 section 5.1). */
    { "no_typ", FE_JWT_HS256, S_HS, "{\"alg\":\"HS256\"}", CL(GOOD), "", "", 0, "" },
    { "typ_lower", FE_JWT_HS256, S_HS, "{\"typ\":\"jwt\",\"alg\":\"HS256\"}", CL(GOOD), "", "", 0,
      "" },
    /* Leeway edge: exp = now - leeway + 1 still valid. */
    { "exp_leeway_edge", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\",\"exp\":" T_EDGE_OK), "", "", 0,
      "" },
    { "nbf_within_leeway", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"nbf\":" T_NBF_OK), "", "", 0, "" },
    { "exp_real", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\",\"exp\":1700000600.5"), "", "", 0, "" },
    { "sub_63_bytes", FE_JWT_HS256, S_HS, "",
      CL("\"sub\":\"123456789012345678901234567890123456789012345678901234567890123\","
         "\"exp\":" T_FUT),
      "", "", 0, "" },
    { "sub_utf8", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"j\xc3\xb6rg\",\"exp\":" T_FUT), "", "", 0,
      "" },
    { "iss_match", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"iss\":\"idp\""), "idp", "", 0, "" },
    { "aud_string", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"aud\":\"gw\""), "", "gw", 0, "" },
    { "aud_array", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"aud\":[\"x\",\"gw\"]"), "", "gw", 0, "" },
    { "iss_aud_not_enforced", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"iss\":\"x\",\"aud\":7"), "", "",
      0, "" },
    { "devices_array", FE_JWT_HS256, S_HS, "",
      CL(GOOD ",\"devices\":[\"0011223344556677\",\"00AA*\"]"), "", "", 0, "" },
    { "devices_string", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":\"0011223344556677,00aa\""),
      "", "", 0, "" },
    { "unknown_claims_ignored", FE_JWT_ES256, S_ES, "", CL(GOOD ",\"x\":{\"y\":[1,null]}"), "", "",
      0, "" },
};

ParameterizedTestParameters(auth, accepted)
{
    return cr_make_param_array(struct tcase, good_cases, GW_ARRAY_LEN(good_cases));
}

/* S2.2: well-formed tokens under the configured key are accepted. */
ParameterizedTest(struct tcase *c, auth, accepted)
{
    struct fe_auth *a = auth_full(c->cfg, key_name(c->cfg), c->iss, c->aud);
    char *t = tok(c->sig, c->hdr[0] ? c->hdr : NULL, c->claims);
    struct fe_claims cl;
    const char *diag = "unset";
    int r = verify_str(a, t, &cl, &diag);

    cr_assert_eq(r, 0, "%s: rc %d (%s), diag %s", c->name, r, gw_strerror(r), diag);
    cr_assert_null(diag);
    cr_assert_gt(strlen(cl.sub), 0);
    free(t);
    fe_auth_free(a);
}

/* ---- table: hostile tokens ---------------------------------------------------- */

#define BAD(name_, cfg_, sig_, hdr_, claims_, diag_)                                               \
    {                                                                                              \
        name_, cfg_, sig_, hdr_, claims_, "", "", GW_EAUTH, diag_                                  \
    }
#define ALG_NA "algorithm not accepted"

static struct tcase bad_cases[] = {
    /* S2.2 "alg: none": empty signature, or a signature attached anyway. */
    BAD("none_empty_sig_hs", FE_JWT_HS256, S_NONE, "", CL(GOOD), "malformed token"),
    BAD("none_empty_sig_rs", FE_JWT_RS256, S_NONE, "", CL(GOOD), "malformed token"),
    BAD("none_with_sig", FE_JWT_HS256, S_HS, "{\"alg\":\"none\"}", CL(GOOD), ALG_NA),
    BAD("None_with_sig", FE_JWT_HS256, S_HS, "{\"alg\":\"None\"}", CL(GOOD), ALG_NA),
    BAD("NONE_rs", FE_JWT_RS256, S_RS, "{\"alg\":\"NONE\"}", CL(GOOD), ALG_NA),
    /* S2.2 "an algorithm other than the configured one": the classic
     * confusion, HS256 keyed with the public key PEM, must fail on alg. */
    BAD("hs256_with_rsa_pem", FE_JWT_RS256, S_HS_RSAPEM, "", CL(GOOD), ALG_NA),
    BAD("hs256_with_ec_pem", FE_JWT_ES256, S_HS_ECPEM, "", CL(GOOD), ALG_NA),
    BAD("rs256_under_hs256", FE_JWT_HS256, S_RS, "", CL(GOOD), ALG_NA),
    BAD("es256_under_rs256", FE_JWT_RS256, S_ES, "", CL(GOOD), ALG_NA),
    BAD("rs256_under_es256", FE_JWT_ES256, S_RS, "", CL(GOOD), ALG_NA),
    BAD("hs384_header", FE_JWT_HS256, S_HS, "{\"alg\":\"HS384\"}", CL(GOOD), ALG_NA),
    BAD("alg_lower_case", FE_JWT_HS256, S_HS, "{\"alg\":\"hs256\"}", CL(GOOD), ALG_NA),
    BAD("alg_missing", FE_JWT_HS256, S_HS, "{\"typ\":\"JWT\"}", CL(GOOD), ALG_NA),
    BAD("alg_number", FE_JWT_HS256, S_HS, "{\"alg\":256}", CL(GOOD), ALG_NA),
    BAD("alg_array", FE_JWT_HS256, S_HS, "{\"alg\":[\"HS256\"]}", CL(GOOD), ALG_NA),
    BAD("alg_nul_suffix", FE_JWT_HS256, S_HS, "{\"alg\":\"HS256\\u0000\"}", CL(GOOD),
        "malformed header"),
    BAD("alg_duplicate", FE_JWT_HS256, S_HS, "{\"alg\":\"none\",\"alg\":\"HS256\"}", CL(GOOD),
        "malformed header"),
    BAD("crit_header", FE_JWT_HS256, S_HS, "{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", CL(GOOD),
        "unsupported critical header"),
    BAD("typ_other", FE_JWT_HS256, S_HS, "{\"alg\":\"HS256\",\"typ\":\"JWE\"}", CL(GOOD),
        "bad token type"),
    BAD("header_array", FE_JWT_HS256, S_HS, "[\"HS256\"]", CL(GOOD), "malformed header"),
    BAD("header_not_json", FE_JWT_HS256, S_HS, "alg=HS256", CL(GOOD), "malformed header"),
    BAD("header_trailing", FE_JWT_HS256, S_HS, "{\"alg\":\"HS256\"}x", CL(GOOD),
        "malformed header"),
    /* S2.2 "a bad signature". */
    BAD("hs_wrong_secret", FE_JWT_HS256, S_HS_OTHER, "", CL(GOOD), "bad signature"),
    BAD("hs_secret_with_newline", FE_JWT_HS256, S_HS_NL, "", CL(GOOD), "bad signature"),
    BAD("rs_sig_on_hs_cfg_hdr_hs", FE_JWT_HS256, S_RS, "{\"alg\":\"HS256\"}", CL(GOOD),
        "bad signature"),
    /* S2.2 "a missing or past exp". */
    BAD("expired", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\",\"exp\":" T_PAST), "token expired"),
    BAD("exp_leeway_edge", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\",\"exp\":" T_EDGE_BAD),
        "token expired"),
    BAD("exp_missing", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\""), "missing exp"),
    BAD("exp_string", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\",\"exp\":\"" T_FUT "\""), "bad exp"),
    BAD("exp_null", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\",\"exp\":null"), "bad exp"),
    BAD("exp_huge_real", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\",\"exp\":1e300"), "bad exp"),
    BAD("exp_min", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\",\"exp\":-9223372036854775808"),
        "token expired"),
    BAD("expired_rs", FE_JWT_RS256, S_RS, "", CL("\"sub\":\"a\",\"exp\":" T_PAST), "token expired"),
    /* S2.2 "a future nbf". */
    BAD("nbf_future", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"nbf\":" T_NBF_FUT),
        "token not yet valid"),
    BAD("nbf_string", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"nbf\":\"" T_NBF_FUT "\""), "bad nbf"),
    BAD("nbf_max", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"nbf\":9223372036854775807"),
        "token not yet valid"),
    BAD("iat_string", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"iat\":\"now\""), "bad iat"),
    /* S2.2 "a missing sub" (and unusable ones). */
    BAD("sub_missing", FE_JWT_HS256, S_HS, "", CL("\"exp\":" T_FUT), "missing sub"),
    BAD("sub_empty", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"\",\"exp\":" T_FUT), "missing sub"),
    BAD("sub_number", FE_JWT_HS256, S_HS, "", CL("\"sub\":42,\"exp\":" T_FUT), "bad sub"),
    BAD("sub_null", FE_JWT_HS256, S_HS, "", CL("\"sub\":null,\"exp\":" T_FUT), "bad sub"),
    BAD("sub_array", FE_JWT_HS256, S_HS, "", CL("\"sub\":[\"a\"],\"exp\":" T_FUT), "bad sub"),
    BAD("sub_64_bytes", FE_JWT_HS256, S_HS, "",
        CL("\"sub\":\"1234567890123456789012345678901234567890123456789012345678901234\","
           "\"exp\":" T_FUT),
        "sub too long"),
    BAD("sub_control", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\\nb\",\"exp\":" T_FUT), "bad sub"),
    BAD("sub_nul", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\\u0000b\",\"exp\":" T_FUT),
        "malformed claims"),
    BAD("sub_duplicate", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"sub\":\"root\""), "malformed claims"),
    /* Non-UTF-8 payloads, correctly signed. */
    BAD("utf8_invalid_byte", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"a\xff\",\"exp\":" T_FUT),
        "malformed claims"),
    BAD("utf8_overlong", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"\xc0\xaf\",\"exp\":" T_FUT),
        "malformed claims"),
    BAD("utf8_lone_surrogate", FE_JWT_HS256, S_HS, "", CL("\"sub\":\"\\ud800\",\"exp\":" T_FUT),
        "malformed claims"),
    BAD("payload_array", FE_JWT_HS256, S_HS, "", "[" GOOD "]", "malformed claims"),
    BAD("payload_string", FE_JWT_HS256, S_HS, "", "\"alice\"", "malformed claims"),
    BAD("payload_trailing", FE_JWT_HS256, S_HS, "", CL(GOOD) " {}", "malformed claims"),
    /* Issuer and audience, when configured. */
    { "iss_mismatch", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"iss\":\"evil\""), "idp", "", GW_EAUTH,
      "issuer mismatch" },
    { "iss_missing", FE_JWT_HS256, S_HS, "", CL(GOOD), "idp", "", GW_EAUTH, "issuer mismatch" },
    { "iss_prefix", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"iss\":\"idpx\""), "idp", "", GW_EAUTH,
      "issuer mismatch" },
    { "aud_mismatch", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"aud\":\"other\""), "", "gw", GW_EAUTH,
      "audience mismatch" },
    { "aud_missing", FE_JWT_ES256, S_ES, "", CL(GOOD), "", "gw", GW_EAUTH, "audience mismatch" },
    { "aud_array_without", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"aud\":[\"x\",1]"), "", "gw",
      GW_EAUTH, "audience mismatch" },
    /* S2.2 device scope claim present but malformed: fail closed. */
    BAD("devices_empty_array", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":[]"),
        "bad devices claim"),
    BAD("devices_empty_string", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":\"\""),
        "bad devices claim"),
    BAD("devices_number", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":[1]"), "bad devices claim"),
    BAD("devices_object", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":{\"a\":1}"),
        "bad devices claim"),
    BAD("devices_true", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":true"), "bad devices claim"),
    BAD("devices_star", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":[\"*\"]"),
        "bad devices claim"),
    BAD("devices_17_digits", FE_JWT_HS256, S_HS, "",
        CL(GOOD ",\"devices\":[\"00112233445566778\"]"), "bad devices claim"),
    BAD("devices_not_hex", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":\"00aa,zz\""),
        "bad devices claim"),
    BAD("devices_comma_in_item", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":[\"00,11\"]"),
        "bad devices claim"),
    BAD("devices_empty_item", FE_JWT_HS256, S_HS, "", CL(GOOD ",\"devices\":\"00,,11\""),
        "bad devices claim"),
    BAD("devices_17_entries", FE_JWT_HS256, S_HS, "",
        CL(GOOD ",\"devices\":\"0,1,2,3,4,5,6,7,8,9,a,b,c,d,e,f,00\""), "bad devices claim"),
};

ParameterizedTestParameters(auth, rejected)
{
    return cr_make_param_array(struct tcase, bad_cases, GW_ARRAY_LEN(bad_cases));
}

/* S2.2: each hostile token gets GW_EAUTH (4.01) with the expected reason. */
ParameterizedTest(struct tcase *c, auth, rejected)
{
    struct fe_auth *a = auth_full(c->cfg, key_name(c->cfg), c->iss, c->aud);
    char *t = tok(c->sig, c->hdr[0] ? c->hdr : NULL, c->claims);
    struct fe_claims cl;
    const char *diag = NULL;
    int r = verify_str(a, t, &cl, &diag);

    cr_assert_eq(r, c->rc, "%s: rc %d (%s), diag %s", c->name, r, gw_strerror(r),
                 diag ? diag : "(null)");
    cr_assert_not_null(diag, "%s: no diag", c->name);
    if (c->diag[0])
        cr_assert_str_eq(diag, c->diag, "%s", c->name);
    free(t);
    fe_auth_free(a);
}

/* ---- single behaviours ------------------------------------------------------ */

/* S2.2: claims are handed back for session creation. */
Test(auth, claims_filled)
{
    struct fe_auth *a = auth(FE_JWT_ES256);
    char *t = tok(S_ES, NULL,
                  CL("\"sub\":\"meter-ops\",\"exp\":" T_FUT ",\"iat\":1699999990,"
                     "\"devices\":[\"00aa*\"]"));
    struct fe_claims c;
    static const uint8_t in[8] = { 0x00, 0xaa, 1, 2, 3, 4, 5, 6 };
    static const uint8_t out[8] = { 0x00, 0xab, 1, 2, 3, 4, 5, 6 };

    cr_assert_eq(verify_str(a, t, &c, NULL), 0);
    cr_assert_str_eq(c.sub, "meter-ops");
    cr_assert_eq(c.exp, 1700000600);
    cr_assert_eq(c.iat, 1699999990);
    cr_assert_eq(c.scope.all, 0);
    cr_assert_eq(c.scope.n, 1);
    cr_assert(fe_scope_allows(&c.scope, in));
    cr_assert_not(fe_scope_allows(&c.scope, out));
    free(t);
    fe_auth_free(a);
}

/* S2.2: no devices claim means every device. */
Test(auth, devices_absent_is_all)
{
    struct fe_auth *a = auth(FE_JWT_HS256);
    char *t = tok(S_HS, NULL, CL(GOOD));
    struct fe_claims c;

    cr_assert_eq(verify_str(a, t, &c, NULL), 0);
    cr_assert_eq(c.scope.all, 1);
    cr_assert_eq(c.iat, 0);
    free(t);
    fe_auth_free(a);
}

/* S10.4: a node claim is copied (-1 when absent); anything but an integer
 * node id 0..63 refuses the token (the caller checks who may carry it). */
Test(auth, node_claim_parsed_and_checked)
{
    struct fe_auth *a = auth(FE_JWT_HS256);
    struct fe_claims c;
    char *t = tok(S_HS, NULL, CL(GOOD));
    cr_assert_eq(verify_str(a, t, &c, NULL), 0);
    cr_assert_eq(c.node, -1);
    free(t);
    t = tok(S_HS, NULL, CL("\"sub\":\"node-3\",\"exp\":" T_FUT ",\"node\":3"));
    cr_assert_eq(verify_str(a, t, &c, NULL), 0);
    cr_assert_eq(c.node, 3);
    free(t);
    static const char *const bad[] = { "\"node\":64", "\"node\":-1", "\"node\":\"1\"",
                                       "\"node\":1.5", "\"node\":null" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char claims[160];
        snprintf(claims, sizeof(claims), "{\"sub\":\"n\",\"exp\":" T_FUT ",%s}", bad[i]);
        t = tok(S_HS, NULL, claims);
        const char *diag = NULL;
        cr_assert_eq(verify_str(a, t, &c, &diag), GW_EAUTH, "%s", bad[i]);
        cr_assert_str_eq(diag, "bad node claim");
        free(t);
    }
    fe_auth_free(a);
}

/* Tokens signed by libjwt itself (a second, independent encoder) verify. */
Test(auth, libjwt_encoded_tokens_accepted)
{
    static const struct {
        enum fe_jwt_alg alg;
        jwt_alg_t jalg;
        const char *priv;
    } v[] = {
        { FE_JWT_RS256, JWT_ALG_RS256, "rsa_priv.pem" },
        { FE_JWT_ES256, JWT_ALG_ES256, "ec_priv.pem" },
        { FE_JWT_HS256, JWT_ALG_HS256, NULL },
    };

    for (size_t i = 0; i < GW_ARRAY_LEN(v); i++) {
        struct fe_auth *a = auth(v[i].alg);
        struct fe_claims c;
        jwt_t *j;
        char *key, *t;
        size_t klen;

        if (v[i].priv) {
            key = fx_read(v[i].priv, &klen);
        } else {
            key = strdup(HS_SECRET);
            klen = strlen(key);
        }
        cr_assert_eq(jwt_new(&j), 0);
        cr_assert_eq(jwt_add_grant(j, "sub", "bob"), 0);
        cr_assert_eq(jwt_add_grant_int(j, "exp", NOW + 60), 0);
        cr_assert_eq(jwt_set_alg(j, v[i].jalg, (unsigned char *)key, (int)klen), 0);
        t = jwt_encode_str(j);
        cr_assert_not_null(t);
        cr_assert_eq(verify_str(a, t, &c, NULL), 0, "alg %zu", i);
        cr_assert_str_eq(c.sub, "bob");
        free(t);
        jwt_free(j);
        free(key);
        fe_auth_free(a);
    }
}

/* S2.2 "alg: none" produced by libjwt is refused under every configuration. */
Test(auth, libjwt_alg_none_rejected)
{
    static const enum fe_jwt_alg cfgs[] = { FE_JWT_HS256, FE_JWT_RS256, FE_JWT_ES256 };
    jwt_t *j;
    char *t;

    cr_assert_eq(jwt_new(&j), 0);
    cr_assert_eq(jwt_add_grant(j, "sub", "bob"), 0);
    cr_assert_eq(jwt_add_grant_int(j, "exp", NOW + 60), 0);
    t = jwt_encode_str(j);
    cr_assert_not_null(t);
    for (size_t i = 0; i < GW_ARRAY_LEN(cfgs); i++) {
        struct fe_auth *a = auth(cfgs[i]);
        struct fe_claims c;
        char *t2;

        cr_assert_eq(verify_str(a, t, &c, NULL), GW_EAUTH);
        /* ...also with a junk signature appended. */
        cr_assert_gt(asprintf(&t2, "%sAAAA", t), 0);
        cr_assert_eq(verify_str(a, t2, &c, NULL), GW_EAUTH);
        free(t2);
        fe_auth_free(a);
    }
    free(t);
    jwt_free(j);
}

/* S2.2 "a bad signature": changing any single character of a valid token,
 * in any segment, is refused (including low bits that a lax base64
 * decoder ignores at the end of a segment). */
Test(auth, any_flipped_char_rejected)
{
    static const struct {
        enum fe_jwt_alg cfg;
        enum signer s;
    } v[] = { { FE_JWT_HS256, S_HS }, { FE_JWT_RS256, S_RS }, { FE_JWT_ES256, S_ES } };

    for (size_t k = 0; k < GW_ARRAY_LEN(v); k++) {
        struct fe_auth *a = auth(v[k].cfg);
        char *t = tok(v[k].s, NULL, CL(GOOD));
        size_t n = strlen(t);
        struct fe_claims c;

        cr_assert_eq(verify_str(a, t, &c, NULL), 0);
        for (size_t i = 0; i < n; i++) {
            char o = t[i];
            const char *diag;

            if (o == '.')
                continue;
            t[i] = o == 'A' ? 'B' : o == 'B' ? 'A' : (char)(o ^ 1);
            if (t[i] == '.' || t[i] == '/' || t[i] == ',')
                t[i] = 'Q';
            cr_assert_eq(fe_auth_verify(a, t, n, NOW, &c, &diag), GW_EAUTH,
                         "alg %zu pos %zu/%zu accepted", k, i, n);
            t[i] = o;
        }
        cr_assert_eq(verify_str(a, t, &c, NULL), 0);
        free(t);
        fe_auth_free(a);
    }
}

/* Truncating a valid token anywhere is refused. */
Test(auth, truncated_rejected)
{
    struct fe_auth *a = auth(FE_JWT_ES256);
    char *t = tok(S_ES, NULL, CL(GOOD));
    struct fe_claims c;

    for (size_t n = 0; n < strlen(t); n++)
        cr_assert_eq(fe_auth_verify(a, t, n, NOW, &c, NULL), GW_EAUTH, "len %zu", n);
    free(t);
    fe_auth_free(a);
}

/* Garbage (S8 robustness): structurally broken tokens are GW_EAUTH. */
Test(auth, garbage_rejected)
{
    static const char *const g[] = {
        "a.b.c",
        "",
        ".",
        "..",
        "...",
        "....",
        "a..b",
        ".a.b",
        "a.b.",
        "abcd",
        "a.b",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.",
        "eyJhbGciOiJIUzI1NiJ9..",
        "eyJ=.eyJ=.abc=",
        "e yJ.a.b",
        "eyJhbGciOiJIUzI1NiJ9.e30.a+b/",
        "\x80\x81.\xff.\xfe",
        "a.b.c.d",
        "aaaaa.bbbb.cccc",
    };
    struct fe_auth *a = auth(FE_JWT_HS256);
    struct fe_claims c;
    const char *diag;

    for (size_t i = 0; i < GW_ARRAY_LEN(g); i++) {
        diag = NULL;
        cr_assert_eq(verify_str(a, g[i], &c, &diag), GW_EAUTH, "case %zu", i);
        cr_assert_not_null(diag);
    }
    cr_assert_eq(fe_auth_verify(a, NULL, 0, NOW, &c, &diag), GW_EAUTH);
    cr_assert_eq(fe_auth_verify(NULL, "a.b.c", 5, NOW, &c, &diag), -EINVAL);
    cr_assert_eq(fe_auth_verify(a, "a.b.c", 5, NOW, NULL, &diag), -EINVAL);
    fe_auth_free(a);
}

/* Random bytes and random base64url-ish strings never verify nor crash. */
Test(auth, random_bytes_rejected)
{
    static const char alpha[] = "ABCxyz019-_.eyJ";
    struct fe_auth *a[3] = { auth(FE_JWT_HS256), auth(FE_JWT_RS256), auth(FE_JWT_ES256) };
    uint64_t x = 0x9e3779b97f4a7c15ull;
    char buf[600];

    for (int it = 0; it < 3000; it++) {
        size_t n;
        struct fe_claims c;
        int r;

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n = x % sizeof(buf);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = it % 2 ? (char)(x >> 24) : alpha[(x >> 24) % (sizeof(alpha) - 1)];
        }
        r = fe_auth_verify(a[it % 3], buf, n, NOW, &c, NULL);
        cr_assert_eq(r, GW_EAUTH, "iteration %d", it);
    }
    for (int i = 0; i < 3; i++)
        fe_auth_free(a[i]);
}

/* Only len bytes are read: the token need not be NUL-terminated (ASan
 * would flag a read past the exact-size copy). */
Test(auth, not_nul_terminated)
{
    struct fe_auth *a = auth(FE_JWT_HS256);
    char *t = tok(S_HS, NULL, CL(GOOD));
    size_t n = strlen(t);
    char *exact = malloc(n);
    struct fe_claims c;

    cr_assert_not_null(exact);
    memcpy(exact, t, n);
    cr_assert_eq(fe_auth_verify(a, exact, n, NOW, &c, NULL), 0);
    free(exact);
    free(t);
    fe_auth_free(a);
}

/* Trailing CR/LF/blanks (a token POSTed from a file) are tolerated; any
 * other trailing or leading byte, NUL included, is not. */
Test(auth, trailing_bytes)
{
    struct fe_auth *a = auth(FE_JWT_HS256);
    char *t = tok(S_HS, NULL, CL(GOOD)), *u;
    size_t n = strlen(t);
    struct fe_claims c;

    cr_assert_gt(asprintf(&u, "%s\r\n \t", t), 0);
    cr_assert_eq(verify_str(a, u, &c, NULL), 0);
    free(u);
    cr_assert_gt(asprintf(&u, "%s x", t), 0);
    cr_assert_eq(verify_str(a, u, &c, NULL), GW_EAUTH);
    free(u);
    cr_assert_gt(asprintf(&u, " %s", t), 0);
    cr_assert_eq(verify_str(a, u, &c, NULL), GW_EAUTH);
    free(u);
    cr_assert_eq(fe_auth_verify(a, t, n + 1, NOW, &c, NULL), GW_EAUTH); /* its NUL */
    free(t);
    fe_auth_free(a);
}

/* Over-size tokens: GW_ETOOBIG before any parsing; the bound is inclusive. */
Test(auth, too_long_token)
{
    struct fe_auth *a = auth(FE_JWT_HS256), *small;
    char *big = malloc(5000);
    char *t = tok(S_HS, NULL, CL(GOOD));
    struct fe_claims c;
    const char *diag;

    cr_assert_not_null(big);
    memset(big, 'a', 5000);
    cr_assert_eq(fe_auth_verify(a, big, 4097, NOW, &c, &diag), GW_ETOOBIG);
    cr_assert_str_eq(diag, "token too long");
    cr_assert_eq(fe_auth_verify(a, big, 4096, NOW, &c, &diag), GW_EAUTH);
    /* A valid token one byte over a small bound. */
    cr_assert_eq(auth_try(FE_JWT_HS256, "hs.key", NULL, NULL, strlen(t) - 1, &small), 0);
    cr_assert_eq(verify_str(small, t, &c, NULL), GW_ETOOBIG);
    fe_auth_free(small);
    cr_assert_eq(auth_try(FE_JWT_HS256, "hs.key", NULL, NULL, strlen(t), &small), 0);
    cr_assert_eq(verify_str(small, t, &c, NULL), 0);
    fe_auth_free(small);
    free(t);
    free(big);
    fe_auth_free(a);
}

/* The leeway edge from the other side: exactly at exp + leeway is expired,
 * one second earlier is not (S2.2 "past exp"). */
Test(auth, leeway_edge_by_clock)
{
    struct fe_auth *a = auth(FE_JWT_HS256);
    char *t = tok(S_HS, NULL, CL("\"sub\":\"a\",\"exp\":" T_FUT));
    struct fe_claims c;

    cr_assert_eq(fe_auth_verify(a, t, strlen(t), 1700000600LL + LEEWAY - 1, &c, NULL), 0);
    cr_assert_eq(fe_auth_verify(a, t, strlen(t), 1700000600LL + LEEWAY, &c, NULL), GW_EAUTH);
    cr_assert_eq(fe_auth_verify(a, t, strlen(t), INT64_MAX, &c, NULL), GW_EAUTH);
    cr_assert_eq(fe_auth_verify(a, t, strlen(t), INT64_MIN, &c, NULL), 0);
    free(t);
    fe_auth_free(a);
}

/* ---- configuration ------------------------------------------------------- */

/* HS256 secret: exactly one trailing newline is dropped. */
Test(auth, hs_secret_one_newline_only)
{
    static const char two[] = HS_SECRET "\n\n";
    struct fe_auth *a;
    char *t1 = tok(S_HS, NULL, CL(GOOD)), *t2 = tok(S_HS_NL, NULL, CL(GOOD));
    struct fe_claims c;

    fx_write("hs2.key", two, strlen(two));
    cr_assert_eq(auth_try(FE_JWT_HS256, "hs2.key", NULL, NULL, 0, &a), 0);
    cr_assert_eq(verify_str(a, t1, &c, NULL), GW_EAUTH);
    cr_assert_eq(verify_str(a, t2, &c, NULL), 0);
    fe_auth_free(a);
    free(t1);
    free(t2);
}

Test(auth, config_errors)
{
    struct fe_auth *a;
    struct fe_auth_cfg cfg = { .alg = FE_JWT_HS256, .leeway_s = 30 };
    char big[FE_KEY_FILE_MAX + 1];
    const char *diag;

    cr_assert_eq(auth_try(FE_JWT_HS256, "absent.key", NULL, NULL, 0, &a), -ENOENT);
    cr_assert_null(a);
    cr_assert_eq(mkdir(fx_path("dir.key"), 0700), 0);
    cr_assert_eq(auth_try(FE_JWT_HS256, "dir.key", NULL, NULL, 0, &a), GW_ECONFIG);
    memset(big, 'k', sizeof(big));
    fx_write("big.key", big, sizeof(big));
    cr_assert_eq(auth_try(FE_JWT_HS256, "big.key", NULL, NULL, 0, &a), GW_ECONFIG);
    fx_write("max.key", big, sizeof(big) - 1);
    cr_assert_eq(auth_try(FE_JWT_HS256, "max.key", NULL, NULL, 0, &a), 0);
    fe_auth_free(a);
    /* RFC 7518 section 3.2: 32 bytes minimum, after the newline is dropped. */
    fx_write("short.key", "0123456789012345678901234567890\n", 32);
    /* Shorter than RFC 7518 asks: accepted with a warning (the issuer's choice). */
    cr_assert_eq(auth_try(FE_JWT_HS256, "short.key", NULL, NULL, 0, &a), 0);
    fe_auth_free(a);
    a = NULL;
    fx_write("empty.key", "\n", 1);
    cr_assert_eq(auth_try(FE_JWT_HS256, "empty.key", NULL, NULL, 0, &a), GW_ECONFIG,
                 "an empty secret is refused");
    fx_write("ok32.key", "01234567890123456789012345678901\n", 33);
    cr_assert_eq(auth_try(FE_JWT_HS256, "ok32.key", NULL, NULL, 0, &a), 0);
    fe_auth_free(a);
    fx_write("empty.key", "", 0);
    cr_assert_eq(auth_try(FE_JWT_HS256, "empty.key", NULL, NULL, 0, &a), GW_ECONFIG);
    cr_assert_eq(auth_try(FE_JWT_HS256, "hs.key", NULL, NULL, FE_TOKEN_LEN_MAX + 1, &a),
                 GW_ECONFIG);
    cfg.key_file = NULL;
    cr_assert_eq(fe_auth_new(&cfg, &a), GW_ECONFIG);
    cfg.key_file = fx_path("hs.key");
    cfg.leeway_s = -1;
    cr_assert_eq(fe_auth_new(&cfg, &a), GW_ECONFIG);
    cfg.leeway_s = 30;
    cfg.alg = (enum fe_jwt_alg)7;
    diag = NULL;
    cr_assert_eq(fe_auth_new_diag(&cfg, &a, &diag), GW_ECONFIG);
    cr_assert_not_null(diag);
    cr_assert_eq(fe_auth_new(NULL, &a), -EINVAL);
    fe_auth_free(NULL);
}

/* RS256/ES256 keys must match the algorithm, curve and strength. */
Test(auth, config_key_type_checked)
{
    struct fe_auth *a;
    EVP_PKEY *p384 = EVP_EC_gen("P-384"), *k1 = EVP_EC_gen("secp256k1"), *r1024 = EVP_RSA_gen(1024);
    const char *diag = NULL;
    struct fe_auth_cfg cfg = { .alg = FE_JWT_ES256, .key_file = NULL, .leeway_s = 0 };

    cr_assert(p384 && k1 && r1024);
    rsa_key();
    ec_key();
    fx_write_pems("p384", p384);
    fx_write_pems("k1", k1);
    fx_write_pems("r1024", r1024);
    cr_assert_eq(auth_try(FE_JWT_RS256, "ec_pub.pem", NULL, NULL, 0, &a), GW_ECONFIG);
    cr_assert_eq(auth_try(FE_JWT_ES256, "rsa_pub.pem", NULL, NULL, 0, &a), GW_ECONFIG);
    cr_assert_eq(auth_try(FE_JWT_ES256, "p384_pub.pem", NULL, NULL, 0, &a), GW_ECONFIG);
    cr_assert_eq(auth_try(FE_JWT_ES256, "k1_pub.pem", NULL, NULL, 0, &a), GW_ECONFIG);
    cr_assert_eq(auth_try(FE_JWT_RS256, "r1024_pub.pem", NULL, NULL, 0, &a), GW_ECONFIG);
    cr_assert_eq(auth_try(FE_JWT_RS256, "hs.key", NULL, NULL, 0, &a), GW_ECONFIG);
    cfg.key_file = fx_path("k1_priv.pem");
    cr_assert_eq(fe_auth_new_diag(&cfg, &a, &diag), GW_ECONFIG);
    cr_assert_str_eq(diag, "key is not an EC P-256 key");
    EVP_PKEY_free(p384);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(r1024);
}

/* An encrypted private key is refused without prompting for a passphrase. */
Test(auth, config_encrypted_key_refused)
{
    BIO *m = BIO_new(BIO_s_mem());
    char *p;
    long n;
    struct fe_auth *a;

    cr_assert_not_null(m);
    cr_assert_eq(PEM_write_bio_PKCS8PrivateKey(m, ec_key(), EVP_aes_128_cbc(), "pw", 2, NULL, NULL),
                 1);
    n = BIO_get_mem_data(m, &p);
    fx_write("enc.pem", p, (size_t)n);
    BIO_free(m);
    cr_assert_eq(auth_try(FE_JWT_ES256, "enc.pem", NULL, NULL, 0, &a), GW_ECONFIG);
}

/* A certificate may stand in for the public key. */
Test(auth, config_certificate_accepted)
{
    X509 *x = X509_new();
    BIO *m = BIO_new(BIO_s_mem());
    struct fe_auth *a;
    struct fe_claims c;
    char *p, *t;
    long n;

    cr_assert(x && m);
    cr_assert_eq(X509_set_version(x, 2), 1);
    cr_assert_not_null(X509_gmtime_adj(X509_getm_notBefore(x), 0));
    cr_assert_not_null(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
    cr_assert_eq(X509_set_pubkey(x, rsa_key()), 1);
    cr_assert_gt(X509_sign(x, rsa_key(), EVP_sha256()), 0);
    cr_assert_eq(PEM_write_bio_X509(m, x), 1);
    n = BIO_get_mem_data(m, &p);
    fx_write("cert.pem", p, (size_t)n);
    BIO_free(m);
    X509_free(x);
    cr_assert_eq(auth_try(FE_JWT_RS256, "cert.pem", NULL, NULL, 0, &a), 0);
    t = tok(S_RS, NULL, CL(GOOD));
    cr_assert_eq(verify_str(a, t, &c, NULL), 0);
    free(t);
    fe_auth_free(a);
}

/* ---- minting ----------------------------------------------------------------- */

/* Mint then verify: sub, iat, exp and the device list survive the trip. */
Test(auth, mint_verify_round_trip)
{
    struct fe_auth *a = auth(FE_JWT_HS256);
    struct fe_claims c;
    char *t = NULL;
    const char *diag = "unset";
    static const uint8_t full[8] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 };
    static const uint8_t near[8] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x78 };
    static const uint8_t pre[8] = { 0x00, 0xaa, 0xff, 0, 0, 0, 0, 1 };

    cr_assert_eq(fe_auth_mint(a, "ops@example", NOW, 3600, "0011223344556677, 00aa*", &t, &diag),
                 0);
    cr_assert_null(diag);
    cr_assert_not_null(t);
    cr_assert_eq(verify_str(a, t, &c, NULL), 0);
    cr_assert_str_eq(c.sub, "ops@example");
    cr_assert_eq(c.iat, NOW);
    cr_assert_eq(c.exp, NOW + 3600);
    cr_assert_eq(c.scope.all, 0);
    cr_assert_eq(c.scope.n, 2);
    cr_assert(fe_scope_allows(&c.scope, full));
    cr_assert_not(fe_scope_allows(&c.scope, near));
    cr_assert(fe_scope_allows(&c.scope, pre));
    /* Expires like any other token. */
    cr_assert_eq(fe_auth_verify(a, t, strlen(t), NOW + 3600 + LEEWAY, &c, NULL), GW_EAUTH);
    free(t);
    cr_assert_eq(fe_auth_mint(a, "ops", NOW, 60, NULL, &t, NULL), 0);
    cr_assert_eq(verify_str(a, t, &c, NULL), 0);
    cr_assert_eq(c.scope.all, 1);
    free(t);
    fe_auth_free(a);
}

/* Minted tokens carry the configured iss/aud so they pass the same checks. */
Test(auth, mint_with_issuer_audience)
{
    struct fe_auth *a = auth_full(FE_JWT_HS256, "hs.key", "coapgw", "gw-east");
    struct fe_claims c;
    char *t;

    cr_assert_eq(fe_auth_mint(a, "ops", NOW, 60, "", &t, NULL), 0);
    cr_assert_eq(verify_str(a, t, &c, NULL), 0);
    free(t);
    fe_auth_free(a);
}

/* A public key cannot mint; a private key file can, and its tokens verify
 * under the matching public key. */
Test(auth, mint_needs_secret_or_private_key)
{
    struct fe_auth *pub = auth(FE_JWT_RS256), *priv, *epub = auth(FE_JWT_ES256);
    struct fe_claims c;
    char *t = (char *)1;
    const char *diag = NULL;

    cr_assert_eq(fe_auth_mint(pub, "ops", NOW, 60, NULL, &t, &diag), GW_ECONFIG);
    cr_assert_str_eq(diag, "configuration holds only a public key");
    cr_assert_null(t);
    priv = auth_full(FE_JWT_ES256, "ec_priv.pem", NULL, NULL);
    cr_assert_eq(fe_auth_mint(priv, "ops", NOW, 60, "00aa", &t, &diag), 0);
    cr_assert_eq(verify_str(priv, t, &c, NULL), 0);
    cr_assert_eq(verify_str(epub, t, &c, NULL), 0);
    cr_assert_eq(c.scope.n, 1);
    free(t);
    fe_auth_free(priv);
    priv = auth_full(FE_JWT_RS256, "rsa_priv.pem", NULL, NULL);
    cr_assert_eq(fe_auth_mint(priv, "ops", NOW, 60, NULL, &t, &diag), 0);
    cr_assert_eq(verify_str(pub, t, &c, NULL), 0);
    free(t);
    fe_auth_free(priv);
    fe_auth_free(pub);
    fe_auth_free(epub);
}

Test(auth, mint_bad_arguments)
{
    struct fe_auth *a = auth(FE_JWT_HS256), *small;
    char *t = NULL;
    const char *diag;

    cr_assert_eq(fe_auth_mint(a, "ops", NOW, 0, NULL, &t, NULL), -EINVAL);
    cr_assert_eq(fe_auth_mint(a, "ops", INT64_MAX, 1, NULL, &t, NULL), -EINVAL);
    cr_assert_eq(fe_auth_mint(a, "", NOW, 60, NULL, &t, NULL), -EINVAL);
    cr_assert_eq(fe_auth_mint(a, "a\tb", NOW, 60, NULL, &t, NULL), -EINVAL);
    cr_assert_eq(fe_auth_mint(a, "1234567890123456789012345678901234567890123456789012345678901234",
                              NOW, 60, NULL, &t, NULL),
                 -EINVAL);
    cr_assert_eq(fe_auth_mint(a, "ops", NOW, 60, "00aa,xyz", &t, &diag), GW_EBADMSG);
    cr_assert_str_eq(diag, "bad devices list");
    cr_assert_eq(fe_auth_mint(a, NULL, NOW, 60, NULL, &t, NULL), -EINVAL);
    cr_assert_null(t);
    cr_assert_eq(auth_try(FE_JWT_HS256, "hs.key", NULL, NULL, 100, &small), 0);
    cr_assert_eq(fe_auth_mint(small, "ops", NOW, 60, NULL, &t, NULL), GW_ETOOBIG);
    cr_assert_null(t);
    fe_auth_free(small);
    fe_auth_free(a);
}

/* ---- device scope (S2.2 device restriction, S4.2 MAC IDs) -------------------- */

static const uint8_t mac1[8] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77 };

Test(scope, empty_is_all)
{
    struct fe_scope s;

    cr_assert_eq(fe_scope_parse(NULL, &s), 0);
    cr_assert_eq(s.all, 1);
    cr_assert(fe_scope_allows(&s, mac1));
    cr_assert_eq(fe_scope_parse("", &s), 0);
    cr_assert_eq(s.all, 1);
    cr_assert_eq(fe_scope_parse("", NULL), -EINVAL);
    cr_assert_not(fe_scope_allows(NULL, mac1));
}

Test(scope, full_mac)
{
    struct fe_scope s;
    uint8_t m[8];

    cr_assert_eq(fe_scope_parse("0011223344556677", &s), 0);
    cr_assert_eq(s.n, 1);
    cr_assert_eq(s.e[0].nibbles, 16);
    cr_assert(fe_scope_allows(&s, mac1));
    for (int i = 0; i < 8; i++) { /* any other nibble anywhere: refused */
        memcpy(m, mac1, 8);
        m[i] ^= 0x01;
        cr_assert_not(fe_scope_allows(&s, m));
        m[i] ^= 0x11;
        cr_assert_not(fe_scope_allows(&s, m));
    }
}

Test(scope, prefixes)
{
    struct fe_scope s;
    static const uint8_t a0[8] = { 0x00, 0xaa, 0, 0, 0, 0, 0, 0 };
    static const uint8_t ab[8] = { 0x00, 0xab, 0xff, 0, 0, 0, 0, 0 };
    static const uint8_t a9[8] = { 0x00, 0xa9, 0xff, 0, 0, 0, 0, 0 };
    static const uint8_t b0[8] = { 0x00, 0xb0, 0, 0, 0, 0, 0, 0 };

    cr_assert_eq(fe_scope_parse("00AA*", &s), 0);
    cr_assert(fe_scope_allows(&s, a0));
    cr_assert_not(fe_scope_allows(&s, ab));
    /* Odd nibble count: "00a" covers 00a0..00af. */
    cr_assert_eq(fe_scope_parse("00a", &s), 0);
    cr_assert_eq(s.e[0].nibbles, 3);
    cr_assert(fe_scope_allows(&s, a0));
    cr_assert(fe_scope_allows(&s, ab));
    cr_assert(fe_scope_allows(&s, a9));
    cr_assert_not(fe_scope_allows(&s, b0));
    cr_assert_not(fe_scope_allows(&s, mac1));
    /* Several entries; any one may match. */
    cr_assert_eq(fe_scope_parse(" 00b , 0011223344556677 ", &s), 0);
    cr_assert_eq(s.n, 2);
    cr_assert(fe_scope_allows(&s, b0));
    cr_assert(fe_scope_allows(&s, mac1));
    cr_assert_not(fe_scope_allows(&s, a0));
    /* One nibble. */
    cr_assert_eq(fe_scope_parse("0", &s), 0);
    cr_assert(fe_scope_allows(&s, a0));
    cr_assert_not(fe_scope_allows(&s, (const uint8_t[8]){ 0x10 }));
}

/* S4.2: MAC IDs are case-insensitive. */
Test(scope, case_insensitive)
{
    struct fe_scope lo, up;
    static const uint8_t m[8] = { 0xab, 0xcd, 0xef, 0x01, 0x23, 0x45, 0x67, 0x89 };

    cr_assert_eq(fe_scope_parse("abcdef0123456789,Ab*", &lo), 0);
    cr_assert_eq(fe_scope_parse("ABCDEF0123456789,aB", &up), 0);
    cr_assert_eq(memcmp(&lo, &up, sizeof(lo)), 0);
    cr_assert(fe_scope_allows(&lo, m));
}

Test(scope, bad_entries)
{
    static const char *const bad[] = {
        "*",
        "00*1",
        "0*0",
        "g0",
        "00112233445566778",
        ",",
        "00aa,",
        ",00aa",
        "00aa,,11",
        "0x00",
        "00 aa",
        "-1",
        " ",
        "**",
        "00aa**",
        "00\xc3\xa9",
        "0,1,2,3,4,5,6,7,8,9,a,b,c,d,e,f,00",
    };
    struct fe_scope s;

    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        cr_assert_eq(fe_scope_parse(bad[i], &s), GW_EBADMSG, "'%s'", bad[i]);
        /* A failed parse allows nothing. */
        cr_assert_eq(s.all, 0);
        cr_assert_eq(s.n, 0);
        cr_assert_not(fe_scope_allows(&s, mac1));
    }
    cr_assert_eq(fe_scope_parse("0,1,2,3,4,5,6,7,8,9,a,b,c,d,e,f", &s), 0);
    cr_assert_eq(s.n, FE_SCOPE_MAX);
}

/* The confusion token of the table is a real attack: libjwt 1.10.2 on its
 * own accepts it when handed the RS256 public key, which is why fe_auth
 * decides the algorithm itself (S2.2). */
Test(auth, confusion_attack_is_real_for_libjwt)
{
    struct fe_auth *a = auth(FE_JWT_RS256);
    char *t = tok(S_HS_RSAPEM, NULL, CL(GOOD)), *pem;
    size_t plen;
    jwt_t *j = NULL;
    struct fe_claims c;
    const char *diag;

    pem = fx_read("rsa_pub.pem", &plen);
    cr_assert_eq(jwt_decode(&j, t, (unsigned char *)pem, (int)plen), 0);
    cr_assert_eq(jwt_get_alg(j), JWT_ALG_HS256);
    jwt_free(j);
    cr_assert_eq(verify_str(a, t, &c, &diag), GW_EAUTH);
    cr_assert_str_eq(diag, "algorithm not accepted");
    free(pem);
    free(t);
    fe_auth_free(a);
}

/* The frontend, `coapgw token` and `coapgw check` read the jwt_* keys through
 * one function (issue #17 duplicates), so a key they disagree on cannot be. */
Test(auth_cfg, from_config_reads_every_jwt_key)
{
    struct gw_config cfg;
    gw_config_defaults(&cfg);
    char err[256];
    cr_assert_eq(gw_config_set(&cfg, "jwt_alg", "ES256", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_config_set(&cfg, "jwt_issuer", "iss-x", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_config_set(&cfg, "jwt_audience", "aud-y", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_config_set(&cfg, "jwt_leeway_s", "7", err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(gw_config_set(&cfg, "jwt_max_len", "3000", err, sizeof(err)), 0, "%s", err);
    struct fe_auth_cfg a;
    fe_auth_cfg_from(&cfg, "/k.pem", &a);
    cr_assert_eq(a.alg, FE_JWT_ES256);
    cr_assert_str_eq(a.key_file, "/k.pem");
    cr_assert_str_eq(a.issuer, "iss-x");
    cr_assert_str_eq(a.audience, "aud-y");
    cr_assert_eq(a.leeway_s, 7);
    cr_assert_eq(a.max_token_len, 3000);
    cr_assert_eq(gw_config_set(&cfg, "jwt_alg", "RS256", err, sizeof(err)), 0, "%s", err);
    fe_auth_cfg_from(&cfg, "/k.pem", &a);
    cr_assert_eq(a.alg, FE_JWT_RS256);
    cr_assert_eq(gw_config_set(&cfg, "jwt_alg", "HS256", err, sizeof(err)), 0, "%s", err);
    fe_auth_cfg_from(&cfg, "/k.pem", &a);
    cr_assert_eq(a.alg, FE_JWT_HS256);
}
