/* SPDX-License-Identifier: MIT */
/* mesh_crypto.c - AES-128-CCM mesh frames, replay window, sequence reservation
 * (SPEC S7.1). The frame, nonce and AAD layouts and the nonce-uniqueness
 * argument are in mesh_crypto.h. */
#include "mesh_crypto.h"
#include "gw_text.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#define MESH_AAD_LEN (MESH_HEADER_LEN + GW_MAC_LEN)

GW_STATIC_ASSERT(MESH_MAX_FRAME < 65536, "CCM with L = 2 carries at most 65535 bytes");

enum mesh__op { MESH__DEC = 0, MESH__ENC = 1 };

static void mesh__put48(uint8_t *p, uint64_t v)
{
    for (int i = 5; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t mesh__get48(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 6; i++)
        v = (v << 8) | p[i];
    return v;
}

static int mesh__dir_ok(enum mesh_dir dir)
{
    return dir == MESH_DIR_TO_DEVICE || dir == MESH_DIR_FROM_DEVICE;
}

/* Nonce and AAD from the 7-byte header; layouts in mesh_crypto.h (SPEC S7.1). */
static void mesh__nonce_aad(const uint8_t hdr[MESH_HEADER_LEN], const uint8_t mac[GW_MAC_LEN],
                            enum mesh_dir dir, uint8_t nonce[MESH_NONCE_LEN],
                            uint8_t aad[MESH_AAD_LEN])
{
    nonce[0] = (uint8_t)dir;
    memcpy(nonce + 1, mac + 2, 6);
    memcpy(nonce + 7, hdr + 1, 6);
    memcpy(aad, hdr, MESH_HEADER_LEN);
    memcpy(aad + MESH_HEADER_LEN, mac, GW_MAC_LEN);
}

/* One-time setup of a context for AES-128-CCM with a 13-byte nonce and an
 * 8-byte tag. Later operations re-key it with a NULL cipher, which keeps the
 * provider context and these parameters (OpenSSL 3 ccm_init only replaces the
 * key and nonce). */
static EVP_CIPHER_CTX *mesh__ctx_new(enum mesh__op op)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        return NULL;
    if (EVP_CipherInit_ex(ctx, EVP_aes_128_ccm(), NULL, NULL, NULL, (int)op) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, MESH_NONCE_LEN, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, MESH_TAG_LEN, NULL) != 1) {
        EVP_CIPHER_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

#ifndef MESH_CRYPTO_NO_CTX_CACHE
/* Per-thread cache of one context per operation. Creating and freeing a CCM
 * context costs an allocation and a provider lookup per frame; the benchmark
 * (tests/bench/bench_crypto.c) shows what the cache saves. This is a cache,
 * not state: dropping it anywhere changes no result. */
struct mesh__tls {
    EVP_CIPHER_CTX *ctx[2];
};

static pthread_once_t mesh__tls_once = PTHREAD_ONCE_INIT;
static pthread_key_t mesh__tls_key;
static int mesh__tls_key_ok;

static void mesh__tls_free(void *p)
{
    struct mesh__tls *t = p;
    if (t == NULL)
        return;
    EVP_CIPHER_CTX_free(t->ctx[MESH__DEC]);
    EVP_CIPHER_CTX_free(t->ctx[MESH__ENC]);
    free(t);
}

static void mesh__tls_key_init(void)
{
    mesh__tls_key_ok = pthread_key_create(&mesh__tls_key, mesh__tls_free) == 0;
}

static struct mesh__tls *mesh__tls_get(void)
{
    if (pthread_once(&mesh__tls_once, mesh__tls_key_init) != 0 || !mesh__tls_key_ok)
        return NULL;
    struct mesh__tls *t = pthread_getspecific(mesh__tls_key);
    if (t != NULL)
        return t;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return NULL;
    if (pthread_setspecific(mesh__tls_key, t) != 0) {
        free(t);
        return NULL;
    }
    return t;
}

void mesh_crypto_thread_cleanup(void)
{
    if (pthread_once(&mesh__tls_once, mesh__tls_key_init) != 0 || !mesh__tls_key_ok)
        return;
    struct mesh__tls *t = pthread_getspecific(mesh__tls_key);
    if (t == NULL)
        return;
    (void)pthread_setspecific(mesh__tls_key, NULL);
    mesh__tls_free(t);
}

/* Borrow this thread's context for op; falls back to a fresh one (and
 * *owned = 1, the caller frees it) if the cache cannot be used. */
static EVP_CIPHER_CTX *mesh__ctx_get(enum mesh__op op, int *owned)
{
    struct mesh__tls *t = mesh__tls_get();
    *owned = 0;
    if (t == NULL) {
        *owned = 1;
        return mesh__ctx_new(op);
    }
    if (t->ctx[op] == NULL)
        t->ctx[op] = mesh__ctx_new(op);
    return t->ctx[op];
}

/* Give the context back; after a failure other than a bad tag, drop it so the
 * next call starts from a clean one. */
static void mesh__ctx_put(enum mesh__op op, EVP_CIPHER_CTX *ctx, int owned, int drop)
{
    if (owned) {
        EVP_CIPHER_CTX_free(ctx);
        return;
    }
    if (drop) {
        struct mesh__tls *t = pthread_getspecific(mesh__tls_key);
        if (t != NULL && t->ctx[op] == ctx)
            t->ctx[op] = NULL;
        EVP_CIPHER_CTX_free(ctx);
    }
}
#else
void mesh_crypto_thread_cleanup(void)
{
}

static EVP_CIPHER_CTX *mesh__ctx_get(enum mesh__op op, int *owned)
{
    *owned = 1;
    return mesh__ctx_new(op);
}

static void mesh__ctx_put(enum mesh__op op, EVP_CIPHER_CTX *ctx, int owned, int drop)
{
    (void)op;
    (void)owned;
    (void)drop;
    EVP_CIPHER_CTX_free(ctx);
}
#endif

/* AES-128-CCM over len bytes (len <= MESH_MAX_PLAINTEXT): encrypt writes
 * out and tag, decrypt reads tag and writes out. Returns 0, or GW_EAUTH for a
 * bad tag or any library failure. in and out must be non-NULL even for len 0:
 * OpenSSL only computes the tag when the data call has both. */
static int mesh__ccm(enum mesh__op op, const uint8_t key[MESH_KEY_LEN],
                     const uint8_t nonce[MESH_NONCE_LEN], const uint8_t aad[MESH_AAD_LEN],
                     const uint8_t *in, size_t len, uint8_t *out, uint8_t tag[MESH_TAG_LEN])
{
    int owned = 0;
    int n = 0;
    int drop = 1;
    EVP_CIPHER_CTX *ctx = mesh__ctx_get(op, &owned);
    if (ctx == NULL) {
        ERR_clear_error();
        return GW_EAUTH;
    }

    if (op == MESH__ENC) {
        if (EVP_EncryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
            EVP_EncryptUpdate(ctx, NULL, &n, NULL, (int)len) != 1 ||
            EVP_EncryptUpdate(ctx, NULL, &n, aad, MESH_AAD_LEN) != 1 ||
            EVP_EncryptUpdate(ctx, out, &n, in, (int)len) != 1 || n != (int)len ||
            EVP_EncryptFinal_ex(ctx, out + len, &n) != 1 || n != 0 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, MESH_TAG_LEN, tag) != 1)
            goto fail;
    } else {
        if (EVP_DecryptInit_ex(ctx, NULL, NULL, key, nonce) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, MESH_TAG_LEN, tag) != 1 ||
            EVP_DecryptUpdate(ctx, NULL, &n, NULL, (int)len) != 1 ||
            EVP_DecryptUpdate(ctx, NULL, &n, aad, MESH_AAD_LEN) != 1)
            goto fail;
        /* Failing here is the bad-tag case, which any forged datagram reaches:
         * keep the context, since the next call's init, tag and length calls
         * reset every piece of state this one left behind. */
        drop = 0;
        if (EVP_DecryptUpdate(ctx, out, &n, in, (int)len) <= 0 || n != (int)len)
            goto fail;
    }
    mesh__ctx_put(op, ctx, owned, 0);
    return 0;

fail:
    mesh__ctx_put(op, ctx, owned, drop);
    ERR_clear_error();
    return GW_EAUTH;
}

int mesh_seal(const uint8_t key[MESH_KEY_LEN], const uint8_t mac[GW_MAC_LEN], enum mesh_dir dir,
              uint64_t seq, const uint8_t *pt, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    static const uint8_t empty[1];
    uint8_t nonce[MESH_NONCE_LEN];
    uint8_t aad[MESH_AAD_LEN];

    if (outlen != NULL)
        *outlen = 0;
    if (key == NULL || mac == NULL || out == NULL || outlen == NULL || (pt == NULL && len != 0) ||
        !mesh__dir_ok(dir) || seq >= MESH_SEQ_LIMIT)
        return -EINVAL;
    if (len > MESH_MAX_PLAINTEXT || cap < len + MESH_FRAME_OVERHEAD)
        return GW_ETOOBIG;

    out[0] = MESH_FRAME_VERSION;
    mesh__put48(out + 1, seq);
    mesh__nonce_aad(out, mac, dir, nonce, aad);
    int rc = mesh__ccm(MESH__ENC, key, nonce, aad, len != 0 ? pt : empty, len,
                       out + MESH_HEADER_LEN, out + MESH_HEADER_LEN + len);
    if (rc != 0) {
        OPENSSL_cleanse(out, len + MESH_FRAME_OVERHEAD);
        return rc;
    }
    *outlen = len + MESH_FRAME_OVERHEAD;
    return 0;
}

int mesh_open(const uint8_t key[MESH_KEY_LEN], const uint8_t mac[GW_MAC_LEN], enum mesh_dir dir,
              const uint8_t *frame, size_t len, uint8_t *out, size_t cap, size_t *outlen,
              uint64_t *seq_out)
{
    uint8_t nonce[MESH_NONCE_LEN];
    uint8_t aad[MESH_AAD_LEN];
    uint8_t tag[MESH_TAG_LEN];
    uint8_t scratch[1];

    if (outlen != NULL)
        *outlen = 0;
    if (seq_out != NULL)
        *seq_out = 0;
    if (key == NULL || mac == NULL || outlen == NULL || seq_out == NULL || !mesh__dir_ok(dir))
        return -EINVAL;
    if (frame == NULL || len < MESH_FRAME_OVERHEAD || frame[0] != MESH_FRAME_VERSION)
        return GW_EBADMSG;
    if (len > MESH_MAX_FRAME)
        return GW_ETOOBIG;
    size_t ptlen = len - MESH_FRAME_OVERHEAD;
    if (cap < ptlen || (out == NULL && ptlen != 0))
        return GW_ETOOBIG;

    mesh__nonce_aad(frame, mac, dir, nonce, aad);
    memcpy(tag, frame + MESH_HEADER_LEN + ptlen, MESH_TAG_LEN);
    int rc = mesh__ccm(MESH__DEC, key, nonce, aad, frame + MESH_HEADER_LEN, ptlen,
                       ptlen != 0 ? out : scratch, tag);
    if (rc != 0) {
        /* OpenSSL wipes on a bad tag already; do it on every failure path. */
        if (ptlen != 0)
            OPENSSL_cleanse(out, ptlen);
        return rc;
    }
    *outlen = ptlen;
    *seq_out = mesh__get48(frame + 1);
    return 0;
}

int mesh_replay_check(const struct mesh_replay *w, uint64_t seq)
{
    if (!w->init || seq > w->top)
        return 0;
    uint64_t diff = w->top - seq;
    if (diff >= MESH_REPLAY_WINDOW)
        return GW_EREPLAY;
    return (w->bitmap >> diff) & 1 ? GW_EREPLAY : 0;
}

void mesh_replay_update(struct mesh_replay *w, uint64_t seq)
{
    if (!w->init) {
        w->init = 1;
        w->top = seq;
        w->bitmap = 1;
        return;
    }
    if (seq > w->top) {
        uint64_t shift = seq - w->top;
        w->bitmap = shift >= MESH_REPLAY_WINDOW ? 0 : w->bitmap << shift;
        w->bitmap |= 1;
        w->top = seq;
        return;
    }
    uint64_t diff = w->top - seq;
    if (diff < MESH_REPLAY_WINDOW)
        w->bitmap |= UINT64_C(1) << diff;
}

void mesh_seq_init(struct mesh_seq *s, uint64_t persisted, uint64_t block)
{
    s->next = persisted;
    s->reserved = persisted;
    s->block = block != 0 ? block : 1;
}

int mesh_seq_take(struct mesh_seq *s, uint64_t *seq, uint64_t *new_reserved)
{
    if (s->next >= MESH_SEQ_LIMIT)
        return GW_EFULL;
    if (s->next < s->reserved) {
        *seq = s->next++;
        return 0;
    }
    /* Reserve from next, not from the old reservation: after a restart next
     * equals the persisted value, so the new block starts there. */
    uint64_t room = MESH_SEQ_LIMIT - s->next;
    uint64_t block = s->block != 0 ? s->block : 1;
    *new_reserved = s->next + (block < room ? block : room);
    return MESH_SEQ_PERSIST;
}

void mesh_seq_commit(struct mesh_seq *s, uint64_t reserved)
{
    if (reserved > MESH_SEQ_LIMIT)
        reserved = MESH_SEQ_LIMIT;
    if (reserved > s->reserved)
        s->reserved = reserved;
}

int mesh_key_parse(const char *hex, size_t len, uint8_t key[MESH_KEY_LEN])
{
    uint8_t tmp[MESH_KEY_LEN];
    if (hex == NULL || key == NULL || len != 2 * MESH_KEY_LEN)
        return GW_EBADMSG;
    /* Decoded into scratch so a bad digit half-way leaves key untouched. */
    int rc = gw_hex_decode(hex, len, tmp, MESH_KEY_LEN);
    if (rc == 0)
        memcpy(key, tmp, MESH_KEY_LEN);
    OPENSSL_cleanse(tmp, sizeof(tmp));
    return rc;
}
