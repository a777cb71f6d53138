/* SPDX-License-Identifier: MIT */
/* fe_auth.c - JWT verification and minting (SPEC S2.2). See fe_auth.h.
 *
 * libjwt 1.10.2 is used for the signature only. Everything around it is
 * done here, because that version trusts the token too much:
 *  - it picks the algorithm from the token header (case-insensitively) and
 *    would HMAC with an RS256 public key PEM if told "HS256";
 *  - jwt_b64_decode_json() writes buf[0] of a malloc(0) block when a segment
 *    is empty (".x.y"), so empty segments must never reach it;
 *  - jwt_get_grant_int() returns 0 for a claim that is not an integer, and
 *    jwt_get_grant() NULL for one that is not a string, without errno.
 * So the token's shape, header and claims are checked with a strict
 * base64url decoder and jansson (JSON_REJECT_DUPLICATES, UTF-8 checked). */
#include "fe_auth.h"

#include "gw_config.h"
#include "gw_error.h"
#include "gw_log.h"
#include "gw_text.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

GW_STATIC_ASSERT(sizeof(long) >= sizeof(int64_t), "libjwt passes integer claims as long");

struct fe_auth {
    enum fe_jwt_alg alg;
    jwt_alg_t jalg;
    const char *alg_name; /* exact `alg` header value accepted */
    unsigned char *vkey;  /* HS256: secret; RS256/ES256: SPKI PEM (NUL-terminated) */
    size_t vkey_len;      /* bytes libjwt is given (PEM without its NUL) */
    unsigned char *skey;  /* RS256/ES256 private key PEM, NULL if public only */
    size_t skey_len;
    bool can_mint;
    size_t sig_b64_len; /* exact length of the signature segment */
    char *issuer;       /* NULL = not enforced */
    char *audience;     /* NULL = not enforced */
    int64_t leeway_s;
    size_t max_token_len;
};

/* ---- small helpers ------------------------------------------------------ */

static inline void set_diag(const char **diag, const char *s)
{
    if (diag)
        *diag = s;
}

void fe_auth_cfg_from(const struct gw_config *cfg, const char *key_file, struct fe_auth_cfg *out)
{
    *out = (struct fe_auth_cfg){
        .alg = !strcmp(cfg->jwt_alg, "RS256")   ? FE_JWT_RS256
               : !strcmp(cfg->jwt_alg, "ES256") ? FE_JWT_ES256
                                                : FE_JWT_HS256,
        .key_file = key_file,
        .issuer = cfg->jwt_issuer,
        .audience = cfg->jwt_audience,
        .leeway_s = cfg->jwt_leeway_s,
        .max_token_len = (size_t)cfg->jwt_max_len,
    };
}

/* Frees a key buffer after wiping it. */
static void key_wipe_free(unsigned char *k, size_t len)
{
    if (k) {
        OPENSSL_cleanse(k, len);
        free(k);
    }
}

/* Length of the unpadded base64url encoding of n bytes. */
static size_t b64url_len(size_t n)
{
    return (n * 4 + 2) / 3;
}

/* Strict, unpadded base64url decode of in[0..len) into a new buffer.
 * Rejects bad characters, impossible lengths and non-canonical trailing bits,
 * so a segment has exactly one accepted spelling.
 * [out] out  malloc'd, NUL-terminated after *olen bytes; caller frees.
 * Returns 0, -EINVAL (not base64url), -ENOMEM. */
static int b64url_decode(const char *in, size_t len, unsigned char **out, size_t *olen)
{
    size_t cap = len / 4 * 3 + 2; /* gw_b64url_decode's bound */
    unsigned char *buf = malloc(cap + 1);

    *out = NULL;
    if (!buf)
        return -ENOMEM;
    if (gw_b64url_decode(in, len, buf, cap, olen) != 0) {
        free(buf);
        return -EINVAL;
    }
    buf[*olen] = '\0';
    *out = buf;
    return 0;
}

/* Decodes a base64url segment holding a JSON object (strict UTF-8, no
 * duplicate members, nothing after the object).
 * Returns the object (caller json_decref()s it) or NULL; *enomem set on
 * allocation failure. */
static json_t *segment_json(const char *seg, size_t len, bool *enomem)
{
    unsigned char *raw;
    size_t rlen;
    json_t *js;
    json_error_t jerr;
    int r = b64url_decode(seg, len, &raw, &rlen);

    if (r != 0) {
        *enomem = r == -ENOMEM;
        return NULL;
    }
    js = json_loadb((const char *)raw, rlen, JSON_REJECT_DUPLICATES, &jerr);
    free(raw);
    if (js && !json_is_object(js)) {
        json_decref(js);
        js = NULL;
    }
    return js;
}

/* True if seg is canonical base64url; *enomem set on allocation failure. */
static bool segment_canonical(const char *seg, size_t len, bool *enomem)
{
    unsigned char *raw;
    size_t rlen;
    int r = b64url_decode(seg, len, &raw, &rlen);

    *enomem = r == -ENOMEM;
    free(raw);
    return r == 0;
}

/* True if v is a JSON string exactly equal to s. */
static bool json_str_eq(const json_t *v, const char *s)
{
    size_t n = strlen(s);

    return json_is_string(v) && json_string_length(v) == n &&
           memcmp(json_string_value(v), s, n) == 0;
}

/* Reads a NumericDate (RFC 7519 section 2): integer, or real floored.
 * Returns 0, or -1 when v is not a number within +-9e15 s. */
static int numeric_date(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        int64_t i;

        if (!(d > -9e15 && d < 9e15)) /* also false for NaN */
            return -1;
        i = (int64_t)d;
        if ((double)i > d)
            i--;
        *out = i;
        return 0;
    }
    return -1;
}

/* Account ID rule shared by verify (sub) and mint: 1..FE_ACCOUNT_MAX-1
 * bytes, no ASCII control characters. Returns the diag on failure. */
static const char *account_check(const char *s, size_t n)
{
    if (n == 0)
        return "missing sub";
    if (n >= FE_ACCOUNT_MAX)
        return "sub too long";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return "bad sub";
    }
    return NULL;
}

/* ---- device scope -------------------------------------------------------- */

static int hex_val(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII lower case */
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* Appends one entry, p[0..n): blanks, 1..16 hex digits, optional '*', blanks.
 * Returns 0 or GW_EBADMSG (bad entry, table full). */
static int scope_entry_add(const char *p, size_t n, struct fe_scope *s)
{
    uint8_t nib = 0;
    uint8_t pre[8] = { 0 };

    while (n > 0 && (*p == ' ' || *p == '\t')) {
        p++;
        n--;
    }
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n > 0 && p[n - 1] == '*')
        n--;
    if (n == 0 || n > 16 || s->n >= FE_SCOPE_MAX)
        return GW_EBADMSG;
    for (size_t i = 0; i < n; i++) {
        int v = hex_val((unsigned char)p[i]);
        if (v < 0)
            return GW_EBADMSG;
        pre[i / 2] |= (uint8_t)(i % 2 ? v : v << 4);
        nib++;
    }
    memcpy(s->e[s->n].prefix, pre, sizeof(pre));
    s->e[s->n].nibbles = nib;
    s->n++;
    return 0;
}

int fe_scope_parse(const char *list, struct fe_scope *scope)
{
    if (!scope)
        return -EINVAL;
    memset(scope, 0, sizeof(*scope));
    if (!list || !*list) {
        scope->all = 1;
        return 0;
    }
    for (const char *p = list;;) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);

        if (scope_entry_add(p, n, scope) != 0) {
            memset(scope, 0, sizeof(*scope)); /* fail closed: allows nothing */
            return GW_EBADMSG;
        }
        if (!c)
            return 0;
        p = c + 1;
    }
}

int fe_scope_allows(const struct fe_scope *scope, const uint8_t mac[8])
{
    if (!scope || !mac)
        return 0;
    if (scope->all)
        return 1;
    for (unsigned i = 0; i < scope->n && i < FE_SCOPE_MAX; i++) {
        unsigned nib = GW_MIN(scope->e[i].nibbles, 16u);
        const uint8_t *pre = scope->e[i].prefix;

        if (nib == 0)
            continue; /* never produced by the parser; allows nothing */
        if (memcmp(pre, mac, nib / 2) != 0)
            continue;
        if (nib % 2 && (pre[nib / 2] & 0xf0) != (mac[nib / 2] & 0xf0))
            continue;
        return 1;
    }
    return 0;
}

/* Reads the `devices` claim (see fe_auth.h). v NULL = absent = all devices.
 * Returns 0 or -1 (malformed, empty or too many entries). */
static int claim_devices(const json_t *v, struct fe_scope *s)
{
    memset(s, 0, sizeof(*s));
    if (!v) {
        s->all = 1;
        return 0;
    }
    if (json_is_string(v)) {
        const char *str = json_string_value(v);

        /* Empty means "restrict to nothing", never "all". Embedded NULs are
         * refused by jansson (no JSON_ALLOW_NUL), the length check is belt
         * and braces. */
        if (json_string_length(v) == 0 || strlen(str) != json_string_length(v))
            return -1;
        return fe_scope_parse(str, s) == 0 && !s->all ? 0 : -1;
    }
    if (json_is_array(v)) {
        size_t n = json_array_size(v);

        if (n == 0 || n > FE_SCOPE_MAX)
            return -1;
        for (size_t i = 0; i < n; i++) {
            const json_t *e = json_array_get(v, i);
            if (!json_is_string(e) ||
                scope_entry_add(json_string_value(e), json_string_length(e), s) != 0) {
                memset(s, 0, sizeof(*s));
                return -1;
            }
        }
        return 0;
    }
    return -1;
}

/* ---- keys ---------------------------------------------------------------- */

/* Refuses encrypted PEM files: OpenSSL would otherwise prompt on the tty. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)u;
    return -1;
}

/* Reads a whole key file, at most FE_KEY_FILE_MAX bytes.
 * [out] buf  malloc'd, NUL-terminated after *len bytes.
 * Returns 0, -errno, -ENOMEM, GW_ECONFIG (not a regular file, too large). */
static int key_file_read(const char *path, unsigned char **buf, size_t *len, const char **diag)
{
    struct stat st;
    unsigned char *b = NULL;
    size_t n = 0;
    int err = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

    if (fd < 0) {
        set_diag(diag, "cannot open key file");
        return -errno;
    }
    if (fstat(fd, &st) != 0) {
        err = -errno;
        set_diag(diag, "cannot stat key file");
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > FE_KEY_FILE_MAX) {
        err = GW_ECONFIG;
        set_diag(diag,
                 S_ISREG(st.st_mode) ? "key file too large" : "key file is not a regular file");
        goto out;
    }
    b = malloc(FE_KEY_FILE_MAX + 1);
    if (!b) {
        err = -ENOMEM;
        goto out;
    }
    /* Bounded: each pass reads at least one byte or ends the loop. */
    while (n <= FE_KEY_FILE_MAX) {
        ssize_t r = read(fd, b + n, FE_KEY_FILE_MAX + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = -errno;
            set_diag(diag, "cannot read key file");
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > FE_KEY_FILE_MAX) { /* grew since fstat */
        err = GW_ECONFIG;
        set_diag(diag, "key file too large");
        goto out;
    }
    if (!(*buf = malloc(n + 1))) {
        err = -ENOMEM;
        goto out;
    }
    memcpy(*buf, b, n);
    (*buf)[n] = '\0';
    *len = n;
out:
    key_wipe_free(b, FE_KEY_FILE_MAX + 1);
    close(fd);
    return err;
}

/* Copies a memory BIO's contents into a new NUL-terminated buffer. */
static int bio_take(BIO *m, unsigned char **out, size_t *olen)
{
    char *p;
    long n = BIO_get_mem_data(m, &p);

    if (n <= 0)
        return -ENOMEM;
    *out = malloc((size_t)n + 1);
    if (!*out)
        return -ENOMEM;
    memcpy(*out, p, (size_t)n);
    (*out)[n] = '\0';
    *olen = (size_t)n;
    return 0;
}

/* Loads the first usable key of a PEM file: private key, public key
 * (SubjectPublicKeyInfo) or certificate. *priv tells which. */
static EVP_PKEY *pem_key_load(const unsigned char *pem, size_t len, bool *priv)
{
    EVP_PKEY *k = NULL;
    BIO *b;

    *priv = false;
    if ((b = BIO_new_mem_buf(pem, (int)len))) {
        k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
        BIO_free(b);
        *priv = k != NULL;
    }
    if (!k && (b = BIO_new_mem_buf(pem, (int)len))) {
        k = PEM_read_bio_PUBKEY(b, NULL, no_passphrase, NULL);
        BIO_free(b);
    }
    if (!k && (b = BIO_new_mem_buf(pem, (int)len))) {
        X509 *x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL);
        BIO_free(b);
        if (x) {
            k = X509_get_pubkey(x);
            X509_free(x);
        }
    }
    ERR_clear_error(); /* failed attempts leave errors queued */
    return k;
}

/* Checks the key against the algorithm: RS256 wants RSA >= 2048 bits,
 * ES256 wants EC on P-256 (secp256k1 is also 256 bits, so the curve is
 * checked by name). Returns the diag on mismatch, NULL if fine. */
static const char *pkey_check(enum fe_jwt_alg alg, EVP_PKEY *k)
{
    if (alg == FE_JWT_RS256) {
        if (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA)
            return "key is not an RSA key";
        if (EVP_PKEY_get_bits(k) < 2048)
            return "RSA key shorter than 2048 bits";
        return NULL;
    }
    char grp[64];
    size_t glen = 0;
    int nid;

    if (EVP_PKEY_get_base_id(k) != EVP_PKEY_EC)
        return "key is not an EC key";
    if (EVP_PKEY_get_group_name(k, grp, sizeof(grp), &glen) != 1)
        return "EC key has no named curve";
    nid = OBJ_sn2nid(grp);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(grp);
    return nid == NID_X9_62_prime256v1 ? NULL : "key is not an EC P-256 key";
}

/* RS256/ES256: turns the PEM file into a normalized SPKI PEM for libjwt's
 * verifier (PEM_read_bio_PUBKEY) and, for a private key, an unencrypted
 * PKCS#8 PEM for its signer. Returns 0, -ENOMEM, GW_ECONFIG. */
static int pem_keys_set(struct fe_auth *a, const unsigned char *pem, size_t len, const char **diag)
{
    bool priv;
    int err = -ENOMEM;
    const char *why;
    BIO *m = NULL;
    EVP_PKEY *k = pem_key_load(pem, len, &priv);

    if (!k) {
        set_diag(diag, "key file holds no usable PEM key");
        return GW_ECONFIG;
    }
    if ((why = pkey_check(a->alg, k))) {
        set_diag(diag, why);
        err = GW_ECONFIG;
        goto out;
    }
    if (!(m = BIO_new(BIO_s_mem())) || PEM_write_bio_PUBKEY(m, k) != 1 ||
        bio_take(m, &a->vkey, &a->vkey_len) != 0)
        goto out;
    a->sig_b64_len = a->alg == FE_JWT_ES256 ? b64url_len(64)
                                            : b64url_len(((size_t)EVP_PKEY_get_bits(k) + 7) / 8);
    if (priv) {
        BIO_free(m);
        if (!(m = BIO_new(BIO_s_secmem())) ||
            PEM_write_bio_PrivateKey(m, k, NULL, NULL, 0, NULL, NULL) != 1 ||
            bio_take(m, &a->skey, &a->skey_len) != 0)
            goto out;
        a->can_mint = true;
    }
    err = 0;
out:
    BIO_free(m);
    EVP_PKEY_free(k);
    ERR_clear_error();
    return err;
}

/* ---- lifecycle ----------------------------------------------------------- */

int fe_auth_new(const struct fe_auth_cfg *cfg, struct fe_auth **out)
{
    return fe_auth_new_diag(cfg, out, NULL);
}

int fe_auth_new_diag(const struct fe_auth_cfg *cfg, struct fe_auth **out, const char **diag)
{
    static const struct {
        const char *name;
        jwt_alg_t jalg;
    } algs[] = {
        [FE_JWT_HS256] = { "HS256", JWT_ALG_HS256 },
        [FE_JWT_RS256] = { "RS256", JWT_ALG_RS256 },
        [FE_JWT_ES256] = { "ES256", JWT_ALG_ES256 },
    };
    struct fe_auth *a;
    unsigned char *file = NULL;
    size_t flen = 0;
    int err;

    set_diag(diag, NULL);
    if (!out || !cfg)
        return -EINVAL;
    *out = NULL;
    if ((unsigned)cfg->alg >= GW_ARRAY_LEN(algs)) {
        set_diag(diag, "unknown JWT algorithm");
        return GW_ECONFIG;
    }
    if (!cfg->key_file || !*cfg->key_file) {
        set_diag(diag, "no key file configured");
        return GW_ECONFIG;
    }
    if (cfg->leeway_s < 0 || cfg->leeway_s > FE_LEEWAY_MAX ||
        cfg->max_token_len > FE_TOKEN_LEN_MAX) {
        set_diag(diag, "leeway or max token length out of range");
        return GW_ECONFIG;
    }
    if (!(a = calloc(1, sizeof(*a))))
        return -ENOMEM;
    a->alg = cfg->alg;
    a->jalg = algs[cfg->alg].jalg;
    a->alg_name = algs[cfg->alg].name;
    a->leeway_s = cfg->leeway_s;
    a->max_token_len = cfg->max_token_len ? cfg->max_token_len : FE_TOKEN_LEN_DEFAULT;
    err = -ENOMEM;
    if ((cfg->issuer && *cfg->issuer && !(a->issuer = strdup(cfg->issuer))) ||
        (cfg->audience && *cfg->audience && !(a->audience = strdup(cfg->audience))))
        goto fail;
    if ((err = key_file_read(cfg->key_file, &file, &flen, diag)) != 0)
        goto fail;
    if (a->alg == FE_JWT_HS256) {
        if (flen > 0 && file[flen - 1] == '\n')
            flen--; /* one trailing newline, as editors and `echo` add it */
        if (flen == 0) {
            set_diag(diag, "HS256 secret is empty");
            err = GW_ECONFIG;
            goto fail;
        }
        /* RFC 7518 3.2 asks for at least 32 bytes; a shorter secret is
         * weak but may be what the token issuer uses: accept it, loudly. */
        if (flen < FE_HS256_MIN_SECRET)
            gw_log_warn(GW_LOG_AUTH,
                        "HS256 secret in %s is %zu bytes, shorter than the 32 RFC 7518 asks for",
                        cfg->key_file, flen);
        a->vkey = file; /* the buffer keeps its NUL; only flen bytes are key */
        a->vkey_len = flen;
        a->sig_b64_len = b64url_len(32);
        a->can_mint = true;
        file = NULL;
    } else if ((err = pem_keys_set(a, file, flen, diag)) != 0) {
        goto fail;
    }
    key_wipe_free(file, flen);
    *out = a;
    return 0;
fail:
    key_wipe_free(file, flen);
    fe_auth_free(a);
    return err;
}

void fe_auth_free(struct fe_auth *a)
{
    if (!a)
        return;
    key_wipe_free(a->vkey, a->vkey_len);
    key_wipe_free(a->skey, a->skey_len);
    free(a->issuer);
    free(a->audience);
    free(a);
}

/* ---- verification -------------------------------------------------------- */

/* Splits tok into header.payload.signature: base64url characters only,
 * exactly two dots, no empty segment, no length that base64 cannot have. */
static bool token_split(const char *t, size_t len, size_t off[3], size_t n[3])
{
    unsigned seg = 0;

    off[0] = 0;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '.') {
            if (++seg > 2)
                return false;
            off[seg] = i + 1;
        } else if (gw_b64url_digit((unsigned char)t[i]) < 0) {
            return false;
        }
    }
    if (seg != 2)
        return false;
    n[0] = off[1] - 1;
    n[1] = off[2] - off[1] - 1;
    n[2] = len - off[2];
    for (unsigned i = 0; i < 3; i++)
        if (n[i] == 0 || n[i] % 4 == 1)
            return false;
    return true;
}

/* Header rules (fe_auth.h step 3). Returns NULL if acceptable, else diag. */
static const char *header_check(const struct fe_auth *a, const json_t *h)
{
    const json_t *typ = json_object_get(h, "typ");

    /* Exact, case-sensitive match against the configured algorithm only:
     * "none", "HS256" under RS256, "hs256" and non-strings all fail here. */
    if (!json_str_eq(json_object_get(h, "alg"), a->alg_name))
        return "algorithm not accepted";
    if (json_object_get(h, "crit"))
        return "unsupported critical header";
    if (typ && (!json_is_string(typ) || strcasecmp(json_string_value(typ), "JWT") != 0))
        return "bad token type"; /* libjwt refuses these too; say why */
    return NULL;
}

/* Signature check by libjwt on a NUL-terminated copy, then the algorithm
 * libjwt used is compared with ours again. Returns 0, GW_EAUTH, -ENOMEM. */
static int signature_check(const struct fe_auth *a, const char *tok, size_t len, const char **diag)
{
    jwt_t *jwt = NULL;
    char *z = malloc(len + 1);
    int r;

    if (!z)
        return -ENOMEM;
    memcpy(z, tok, len);
    z[len] = '\0';
    r = jwt_decode(&jwt, z, a->vkey, (int)a->vkey_len);
    free(z);
    if (r != 0 || !jwt) {
        jwt_free(jwt);
        if (r == ENOMEM)
            return -ENOMEM;
        set_diag(diag, "bad signature");
        return GW_EAUTH;
    }
    r = jwt_get_alg(jwt) == a->jalg ? 0 : GW_EAUTH;
    jwt_free(jwt);
    if (r)
        set_diag(diag, "algorithm not accepted");
    return r;
}

/* Claim rules (fe_auth.h "Claims"). Fills out. Returns NULL or the diag. */
static const char *claims_check(const struct fe_auth *a, const json_t *c, int64_t now_s,
                                struct fe_claims *out)
{
    const json_t *v;
    const char *why;
    int64_t t, lim;

    memset(out, 0, sizeof(*out));
    /* exp: required; expired when exp + leeway <= now (no overflow). */
    if (!(v = json_object_get(c, "exp")))
        return "missing exp";
    if (numeric_date(v, &out->exp) != 0)
        return "bad exp";
    if (__builtin_sub_overflow(now_s, a->leeway_s, &lim))
        lim = INT64_MIN;
    if (out->exp <= lim)
        return "token expired";
    if ((v = json_object_get(c, "nbf"))) {
        if (numeric_date(v, &t) != 0)
            return "bad nbf";
        if (__builtin_add_overflow(now_s, a->leeway_s, &lim))
            lim = INT64_MAX;
        if (t > lim)
            return "token not yet valid";
    }
    if ((v = json_object_get(c, "iat")) && numeric_date(v, &out->iat) != 0)
        return "bad iat";
    if (!(v = json_object_get(c, "sub")))
        return "missing sub";
    if (!json_is_string(v))
        return "bad sub";
    if ((why = account_check(json_string_value(v), json_string_length(v))))
        return why;
    memcpy(out->sub, json_string_value(v), json_string_length(v) + 1);
    if (a->issuer && !json_str_eq(json_object_get(c, "iss"), a->issuer))
        return "issuer mismatch";
    if (a->audience) {
        bool ok;
        v = json_object_get(c, "aud");
        ok = json_str_eq(v, a->audience);
        for (size_t i = 0; !ok && json_is_array(v) && i < json_array_size(v); i++)
            ok = json_str_eq(json_array_get(v, i), a->audience);
        if (!ok)
            return "audience mismatch";
    }
    if (claim_devices(json_object_get(c, "devices"), &out->scope) != 0)
        return "bad devices claim";
    /* node: a gateway node of the cluster speaking for its clients (S10.4).
     * Only its shape is checked here; who may carry it is the caller's
     * business (fe_local.c: the sender's address must be that node's). */
    out->node = -1;
    if ((v = json_object_get(c, "node"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            json_integer_value(v) >= FE_NODE_CLAIM_MAX)
            return "bad node claim";
        out->node = (int32_t)json_integer_value(v);
    }
    return NULL;
}

int fe_auth_verify(const struct fe_auth *a, const char *tok, size_t len, int64_t now_s,
                   struct fe_claims *out, const char **diag)
{
    size_t off[3], n[3];
    json_t *hdr = NULL, *claims = NULL;
    struct fe_claims tmp;
    bool enomem = false;
    const char *why;
    int err = GW_EAUTH;

    set_diag(diag, NULL);
    if (!a || !out)
        return -EINVAL;
    if (len > a->max_token_len) {
        set_diag(diag, "token too long");
        return GW_ETOOBIG;
    }
    while (tok && len > 0 &&
           (tok[len - 1] == ' ' || tok[len - 1] == '\t' || tok[len - 1] == '\r' ||
            tok[len - 1] == '\n'))
        len--;
    if (!tok || len == 0) {
        set_diag(diag, "empty token");
        return GW_EAUTH;
    }
    if (!token_split(tok, len, off, n)) {
        set_diag(diag, "malformed token");
        return GW_EAUTH;
    }
    /* Step 3: the algorithm is decided before libjwt sees the token. */
    if (!(hdr = segment_json(tok + off[0], n[0], &enomem))) {
        why = "malformed header";
        goto out;
    }
    if ((why = header_check(a, hdr)))
        goto out;
    /* Signature segment: exact length for the key, canonical base64url (so
     * it has one spelling: libjwt's decoder ignores the unused low bits). */
    if (n[2] != a->sig_b64_len || !segment_canonical(tok + off[2], n[2], &enomem)) {
        why = "bad signature";
        goto out;
    }
    if (!(claims = segment_json(tok + off[1], n[1], &enomem))) {
        why = "malformed claims";
        goto out;
    }
    if ((err = signature_check(a, tok, len, diag)) != 0) {
        why = NULL; /* diag already set */
        goto out;
    }
    err = GW_EAUTH;
    if ((why = claims_check(a, claims, now_s, &tmp)))
        goto out;
    *out = tmp;
    err = 0;
out:
    if (enomem)
        err = -ENOMEM;
    if (why)
        set_diag(diag, enomem ? "out of memory" : why);
    json_decref(hdr);
    json_decref(claims);
    return err;
}

/* ---- minting ------------------------------------------------------------- */

int fe_auth_mint(const struct fe_auth *a, const char *account, int64_t now_s, int64_t ttl_s,
                 const char *devices, char **out, const char **diag)
{
    static const char hex[] = "0123456789ABCDEF";
    struct fe_scope sc;
    char *devices_json = NULL;
    int64_t exp;
    jwt_t *jwt = NULL;
    char *tok;
    const char *why;
    int err;

    set_diag(diag, NULL);
    if (!a || !account || !out)
        return -EINVAL;
    *out = NULL;
    if (!a->can_mint) {
        set_diag(diag, "configuration holds only a public key");
        return GW_ECONFIG;
    }
    if ((why = account_check(account, strlen(account)))) {
        set_diag(diag, why);
        return -EINVAL;
    }
    if (ttl_s <= 0 || __builtin_add_overflow(now_s, ttl_s, &exp)) {
        set_diag(diag, "bad ttl");
        return -EINVAL;
    }
    if (fe_scope_parse(devices, &sc) != 0) {
        set_diag(diag, "bad devices list");
        return GW_EBADMSG;
    }
    if (!sc.all) { /* canonical form: upper-case hex, '*' on prefixes; built with jansson */
        json_t *arr = json_array(), *doc = NULL;
        for (unsigned i = 0; arr && i < sc.n; i++) {
            char e[20];
            unsigned k = 0;
            for (; k < sc.e[i].nibbles; k++)
                e[k] = hex[(sc.e[i].prefix[k / 2] >> (k % 2 ? 0 : 4)) & 0xf];
            if (sc.e[i].nibbles < 16)
                e[k++] = '*';
            e[k] = '\0';
            json_array_append_new(arr, json_string(e));
        }
        if (arr)
            doc = json_pack("{s:o}", "devices", arr);
        devices_json = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
        json_decref(doc);
        if (!devices_json)
            return -ENOMEM;
    }
    err = -ENOMEM;
    if (jwt_new(&jwt) != 0)
        goto out;
    if (jwt_add_grant(jwt, "sub", account) || jwt_add_grant_int(jwt, "iat", (long)now_s) ||
        jwt_add_grant_int(jwt, "exp", (long)exp) ||
        (a->issuer && jwt_add_grant(jwt, "iss", a->issuer)) ||
        (a->audience && jwt_add_grant(jwt, "aud", a->audience)) ||
        (devices_json && jwt_add_grants_json(jwt, devices_json)))
        goto out;
    if (a->alg == FE_JWT_HS256)
        err = jwt_set_alg(jwt, a->jalg, a->vkey, (int)a->vkey_len);
    else
        err = jwt_set_alg(jwt, a->jalg, a->skey, (int)a->skey_len);
    if (err) {
        err = -ENOMEM;
        goto out;
    }
    if (!(tok = jwt_encode_str(jwt))) {
        set_diag(diag, "signing failed");
        err = -ENOMEM;
        goto out;
    }
    if (strlen(tok) > a->max_token_len) {
        free(tok);
        set_diag(diag, "token would exceed max_token_len");
        err = GW_ETOOBIG;
        goto out;
    }
    *out = tok;
    err = 0;
out:
    jwt_free(jwt); /* wipes its key copy */
    free(devices_json);
    return err;
}
