/* SPDX-License-Identifier: MIT */
/* fuzz_jwt.c - session tokens (frontend/fe_auth.h, SPEC S2.2, S9 "bad or
 * hostile JWTs") and device-scope lists (fe_scope_parse).
 *
 * A fuzzer cannot forge an HMAC, so random tokens die at the signature and
 * never reach the claim checks. Byte 0 of the input chooses a mode:
 *   0  raw: the rest is the token as a client would POST it;
 *   1  signed: the rest is "<header JSON>\0<claims JSON>" (or only the claims,
 *      under {"alg":"HS256","typ":"JWT"}); the harness base64url-encodes
 *      and signs it with the configured secret, so the header and claim
 *      checks see hostile JSON behind a valid signature;
 *   2  mint: the rest is "<account>\0<devices list>"; a token minted with
 *      fe_auth_mint must verify to the same account and scope.
 * Bit 2 of byte 0 selects a verifier that also enforces iss and aud.
 * Every mode also runs fe_scope_parse on a NUL-terminated copy of the rest
 * and checks fe_scope_allows against the parsed entries.
 * A successful verification must yield a claim set within its documented
 * bounds (sub 1..63 bytes without controls, exp not passed, scope sane). */
#include "fe_auth.h"
#include "gw_error.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/hmac.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NOW 1700000000
#define SECRET "fuzz-secret-0123456789abcdef-0123456789"

static struct fe_auth *plain, *strict;
static char dir[512], keypath[600];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_jwt: %s\n", what);
    abort();
}

static void cleanup(void)
{
    fe_auth_free(plain);
    fe_auth_free(strict);
    unlink(keypath);
    rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/coapgw-fuzz-jwt.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir))
        fail("mkdtemp");
    snprintf(keypath, sizeof(keypath), "%s/secret", dir);
    int fd = open(keypath, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0 || write(fd, SECRET "\n", sizeof(SECRET)) != (ssize_t)sizeof(SECRET))
        fail("cannot write the key file");
    close(fd);
    struct fe_auth_cfg c1 = { .alg = FE_JWT_HS256, .key_file = keypath };
    struct fe_auth_cfg c2 = { .alg = FE_JWT_HS256,
                              .key_file = keypath,
                              .issuer = "coapgw-fuzz",
                              .audience = "gw",
                              .leeway_s = 30,
                              .max_token_len = 2048 };
    if (fe_auth_new(&c1, &plain) != 0 || fe_auth_new(&c2, &strict) != 0)
        fail("fe_auth_new");
    atexit(cleanup);
    return 0;
}

static size_t b64url(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
        out[o++] = tab[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = tab[v >> 18];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = tab[(v >> 6) & 63];
    }
    return o;
}

static void check_scope(const struct fe_scope *s)
{
    if (s->all)
        return;
    if (s->n > FE_SCOPE_MAX)
        fail("scope has too many entries");
    for (unsigned i = 0; i < s->n; i++) {
        if (s->e[i].nibbles < 1 || s->e[i].nibbles > 16)
            fail("scope entry with a bad nibble count");
        /* The entry's own prefix, padded with zeros or ones, is inside it. */
        uint8_t mac[8];
        memcpy(mac, s->e[i].prefix, 8);
        if (!fe_scope_allows(s, mac))
            fail("scope does not allow its own prefix");
        for (unsigned k = s->e[i].nibbles; k < 16; k++)
            mac[k / 2] |= (uint8_t)(k % 2 ? 0x0f : 0xf0);
        if (!fe_scope_allows(s, mac))
            fail("scope does not allow a MAC under its prefix");
    }
}

static void check_claims(const struct fe_auth *a, const struct fe_claims *c)
{
    size_t n = strnlen(c->sub, sizeof(c->sub));
    if (n == 0 || n >= sizeof(c->sub))
        fail("accepted a token with an empty or unterminated sub");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)c->sub[i] < 0x20 || c->sub[i] == 0x7f)
            fail("accepted a sub with control characters");
    int64_t leeway = a == strict ? 30 : 0;
    if (c->exp + leeway <= NOW)
        fail("accepted an expired token");
    check_scope(&c->scope);
}

static void verify(const struct fe_auth *a, const char *tok, size_t len)
{
    struct fe_claims c;
    const char *diag = "unset";
    int rc = fe_auth_verify(a, tok, len, NOW, &c, &diag);
    if (rc == 0) {
        if (diag)
            fail("success with a diagnostic");
        check_claims(a, &c);
    } else {
        if (rc != GW_EAUTH && rc != GW_ETOOBIG && rc != -ENOMEM)
            fail("unexpected error code");
        if (!diag || strlen(diag) > 200)
            fail("refusal without a short diagnostic");
    }
}

static void signed_token(const struct fe_auth *a, const uint8_t *p, size_t n)
{
    static const char def_hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    const uint8_t *hdr = (const uint8_t *)def_hdr, *cl = p;
    size_t hl = sizeof(def_hdr) - 1, cll = n;
    const uint8_t *nul = memchr(p, 0, n);
    if (nul) {
        hdr = p;
        hl = (size_t)(nul - p);
        cl = nul + 1;
        cll = n - hl - 1;
    }
    size_t cap = (hl + cll) * 4 / 3 + 64;
    char *tok = malloc(cap);
    if (!tok)
        abort();
    size_t o = b64url(hdr, hl, tok);
    tok[o++] = '.';
    o += b64url(cl, cll, tok + o);
    uint8_t mac[32];
    unsigned ml = 0;
    if (!HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const uint8_t *)tok, o, mac, &ml) ||
        ml != 32)
        fail("HMAC");
    tok[o++] = '.';
    o += b64url(mac, 32, tok + o);
    verify(a, tok, o);
    free(tok);
}

static void minted(const struct fe_auth *a, const char *s, size_t n)
{
    const char *account = s;
    const char *devices = memchr(s, 0, n) ? s + strlen(s) + 1 : NULL;
    if (devices && devices >= s + n + 1)
        devices = NULL;
    char *tok = NULL;
    const char *diag = NULL;
    int rc = fe_auth_mint(a, account, NOW, 3600, devices, &tok, &diag);
    if (rc != 0) {
        if (tok)
            fail("mint failed but returned a token");
        return;
    }
    struct fe_claims c;
    rc = fe_auth_verify(a, tok, strlen(tok), NOW, &c, &diag);
    if (rc != 0) {
        fprintf(stderr, "minted token refused: %s\n%s\n", diag ? diag : "?", tok);
        fail("a minted token does not verify");
    }
    check_claims(a, &c);
    if (strcmp(c.sub, account) != 0)
        fail("minted account differs after verification");
    struct fe_scope want;
    if (fe_scope_parse(devices, &want) != 0)
        fail("mint accepted a devices list the parser refuses");
    if (want.all != c.scope.all || (!want.all && want.n != c.scope.n))
        fail("minted scope differs after verification");
    for (unsigned i = 0; !want.all && i < want.n; i++)
        if (want.e[i].nibbles != c.scope.e[i].nibbles ||
            memcmp(want.e[i].prefix, c.scope.e[i].prefix, 8) != 0)
            fail("minted scope entry differs after verification");
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const struct fe_auth *a = data[0] & 4 ? strict : plain;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    /* NUL-terminated copy for the string interfaces; exact-size heap copy for
     * the (pointer, length) ones, so ASan sees any over-read. */
    char *s = malloc(n + 1);
    if (!s)
        abort();
    memcpy(s, p, n);
    s[n] = '\0';
    switch (data[0] % 3) {
    case 0: {
        char *t = malloc(n ? n : 1);
        if (!t)
            abort();
        memcpy(t, p, n);
        verify(a, t, n);
        free(t);
        break;
    }
    case 1:
        signed_token(a, p, n);
        break;
    case 2:
        minted(a, s, n);
        break;
    }
    struct fe_scope sc;
    int rc = fe_scope_parse(s, &sc);
    if (rc == 0)
        check_scope(&sc);
    else if (rc != GW_EBADMSG || sc.all || sc.n)
        fail("a refused scope list still allows something");
    free(s);
    return 0;
}
