/* SPDX-License-Identifier: MIT */
/* mesh_crypto.h - authenticated encryption of mesh datagrams (SPEC S7.1).
 *
 * Sessions with security=netmgr reach devices on port 4849 with every datagram
 * encrypted and authenticated under a per-device key, with replay protection,
 * and a nonce that is never reused, also across meshio restarts (SPEC S7.1).
 * This module holds the pure parts of that: frame sealing and opening, the
 * receive replay window and the send sequence reservation. It owns no sockets,
 * no LMDB and no per-device state; the caller keeps one struct mesh_seq and one
 * struct mesh_replay per device and persists what is marked below.
 *
 * Construction
 * ------------
 * AES-128-CCM (RFC 3610, NIST SP 800-38C), as IEEE 802.15.4 and OSCORE use it,
 * through OpenSSL EVP: tag length M = 8 bytes, length field L = 2 bytes, hence
 * a 13-byte nonce and at most 65535 bytes per message (we allow 1152).
 *
 * Frame (all integers big endian):
 *
 *     offset   size  field
 *     0        1     version/flags, always 0xA1 (MESH_FRAME_VERSION)
 *     1        6     sender sequence number, 48 bits (0 .. 2^48-1)
 *     7        n     ciphertext, n = plaintext length, 0 .. 1152
 *     7+n      8     CCM authentication tag
 *
 *     total = n + 15 (MESH_FRAME_OVERHEAD); the 7-byte header travels in clear.
 *
 * Nonce (13 bytes, never sent; both ends rebuild it):
 *
 *     offset   size  field
 *     0        1     direction: 0x01 gateway->device, 0x02 device->gateway
 *     1        6     mac[2..7], the low six bytes of the device's 64-bit MAC ID
 *     7        6     sequence number, 48 bits, as in frame bytes 1..6
 *
 * Additional authenticated data (15 bytes, never sent as such):
 *
 *     frame bytes 0..6 (version and sequence number) || mac[0..7] (full MAC ID)
 *
 * Why a (key, nonce) pair is never used twice
 * -------------------------------------------
 * 1. Each device has its own key (SPEC S7.2 registry), so only that device and
 *    the gateway ever encrypt under it.
 * 2. Under one key there are exactly two senders, one per direction, and the
 *    direction byte is part of the nonce: the gateway's nonces (0x01 ...) and
 *    the device's nonces (0x02 ...) can never collide, even when both use the
 *    same sequence number. A frame reflected back to its sender fails its tag.
 * 3. Within one direction the nonce carries the full 48-bit sequence number,
 *    so distinct sequence numbers give distinct nonces. The gateway's numbers
 *    come from struct mesh_seq, which hands out each value at most once, also
 *    across crashes, provided the caller persists the reservation before use
 *    (see mesh_seq_take). The device keeps its own counter likewise.
 * Consequences for the caller: exactly one meshio instance owns a device's
 * gateway->device counter; the counter must never be reset while the key stays
 * (it may restart at 0 only together with a new key); mesh_seal refuses
 * seq >= 2^48, and mesh_seq_take reports exhaustion, after which the device
 * needs a new key. The MAC bytes in the nonce are defence in depth only: if an
 * operator gives two devices the same key, their nonces still differ unless the
 * low six MAC bytes are equal, and the AAD binds the full MAC either way.
 *
 * Threads: every function is reentrant. mesh_seal and mesh_open keep one
 * cached EVP_CIPHER_CTX per thread and direction of use (freed at thread exit
 * or by mesh_crypto_thread_cleanup); tests/bench/bench_crypto.c measures it.
 * Build with -DMESH_CRYPTO_NO_CTX_CACHE to create a context per call instead.
 */
#ifndef MESH_CRYPTO_H
#define MESH_CRYPTO_H

#include "gw_defs.h"
#include "gw_error.h"

#include <stddef.h>
#include <stdint.h>

#define MESH_KEY_LEN 16
#define MESH_NONCE_LEN 13
#define MESH_TAG_LEN 8
#define MESH_HEADER_LEN 7
#define MESH_FRAME_VERSION 0xA1
#define MESH_FRAME_OVERHEAD 15
/* Largest plaintext: one CoAP message (SPEC S3.5). */
#define MESH_MAX_PLAINTEXT GW_COAP_MAX_MSG
#define MESH_MAX_FRAME (MESH_MAX_PLAINTEXT + MESH_FRAME_OVERHEAD)
/* Sequence numbers are 48 bits: 0 .. MESH_SEQ_LIMIT - 1. */
#define MESH_SEQ_LIMIT (UINT64_C(1) << 48)
/* Width of the replay window, in sequence numbers. */
#define MESH_REPLAY_WINDOW 64
/* mesh_seq_take: persist *new_reserved, call mesh_seq_commit, then retry. */
#define MESH_SEQ_PERSIST 1

GW_STATIC_ASSERT(MESH_FRAME_OVERHEAD == MESH_HEADER_LEN + MESH_TAG_LEN,
                 "frame overhead is header plus tag");
GW_STATIC_ASSERT(MESH_NONCE_LEN == 1 + 6 + 6, "nonce is dir, mac[2..7], seq");

/* Direction of a frame; the value is the nonce's first byte. */
enum mesh_dir { MESH_DIR_TO_DEVICE = 1, MESH_DIR_FROM_DEVICE = 2 };

/* Seal a plaintext into one frame.
 *
 * [in]  key     the device's 16-byte key.
 * [in]  mac     the device's 8-byte MAC ID (bound into nonce and AAD).
 * [in]  dir     direction of this frame; the gateway seals MESH_DIR_TO_DEVICE.
 * [in]  seq     sender sequence number, < 2^48, never used before with this
 *               key and direction (take it from mesh_seq_take).
 * [in]  pt      plaintext, len bytes; may be NULL when len is 0.
 * [out] out     receives the frame; cap >= len + 15. Must not overlap pt.
 * [out] outlen  frame length (len + 15) on success, 0 on failure.
 * Returns 0; GW_ETOOBIG if len > 1152 or cap < len + 15; -EINVAL for a NULL
 * pointer, a bad dir or seq >= 2^48; GW_EAUTH if the crypto library fails (out
 * is then zeroed). Nothing is allocated that the caller must free. */
GW_NODISCARD int mesh_seal(const uint8_t key[MESH_KEY_LEN], const uint8_t mac[GW_MAC_LEN],
                           enum mesh_dir dir, uint64_t seq, const uint8_t *pt, size_t len,
                           uint8_t *out, size_t cap, size_t *outlen);

/* Check and decrypt one frame. Does NOT check replay: on success, ask
 * mesh_replay_check(w, *seq_out), and call mesh_replay_update only if it passes.
 *
 * [in]  key, mac  as for mesh_seal.
 * [in]  dir       direction the frame travelled; the gateway opens
 *                 MESH_DIR_FROM_DEVICE.
 * [in]  frame     received bytes, len of them; any content is safe.
 * [out] out       receives the plaintext (len - 15 bytes), cap bytes available;
 *                 may be NULL when cap is 0. Must not overlap frame.
 * [out] outlen    plaintext length on success, 0 on failure.
 * [out] seq_out   sender sequence number on success, 0 on failure.
 * Returns 0; GW_EBADMSG if frame is NULL, shorter than 15 bytes or its version
 * byte is not 0xA1; GW_ETOOBIG if the frame is longer than MESH_MAX_FRAME or
 * cap < len - 15; GW_EAUTH if the tag does not verify (wrong key, MAC,
 * direction, or any altered byte) or the crypto library fails; -EINVAL for a
 * NULL key, mac, outlen or seq_out or a bad dir. On any failure no plaintext is
 * left in out. */
GW_NODISCARD int mesh_open(const uint8_t key[MESH_KEY_LEN], const uint8_t mac[GW_MAC_LEN],
                           enum mesh_dir dir, const uint8_t *frame, size_t len, uint8_t *out,
                           size_t cap, size_t *outlen, uint64_t *seq_out);

/* Free this thread's cached cipher contexts now rather than at thread exit
 * (for the main thread, which runs no thread-exit destructors, and for leak
 * checkers). Safe to call at any time; the next seal/open rebuilds them. */
void mesh_crypto_thread_cleanup(void);

/* Sliding replay window, RFC 4303 section 3.4.3 style, 64 entries (SPEC S7.1).
 * top is the highest accepted sequence number; bit i of bitmap is set when
 * top - i was accepted; init is 0 until the first accepted frame. A zeroed
 * struct is an empty window, which accepts any first sequence number.
 * The window lives in memory only. To keep replay protection across a meshio
 * restart, persist top (or an upper bound of it) and restore the window as
 * { .top = persisted, .bitmap = UINT64_MAX, .init = 1 }, which refuses
 * everything at or below the persisted value. */
struct mesh_replay {
    uint64_t top;
    uint64_t bitmap;
    uint8_t init;
};

/* Returns 0 if seq is new and inside or ahead of the window; GW_EREPLAY if
 * it was seen already or is older than the window (seq <= top - 64).
 * Does not change w. */
GW_NODISCARD int mesh_replay_check(const struct mesh_replay *w, uint64_t seq);

/* Record seq as seen. Call only after mesh_open succeeded and
 * mesh_replay_check(w, seq) returned 0; other values are handled without
 * harm (an old seq is ignored). */
void mesh_replay_update(struct mesh_replay *w, uint64_t seq);

/* Sender sequence numbers with crash-safe reservation (SPEC S7.1: no nonce
 * reuse across restarts). Values below reserved are usable because the caller
 * has made reserved durable; next is the next value to hand out; block is how
 * many values one reservation covers (a write per block, not per frame).
 * Invariant: every value ever handed out is below the durable reservation, and
 * after a restart the counter resumes at that reservation, so a value is never
 * handed out twice; at most block - 1 values are skipped per crash. */
struct mesh_seq {
    uint64_t next;
    uint64_t reserved;
    uint64_t block;
};

/* Start from the persisted reservation: next = reserved = persisted, so
 * nothing is usable until a new reservation is made durable. block 0 is
 * treated as 1. */
void mesh_seq_init(struct mesh_seq *s, uint64_t persisted, uint64_t block);

/* Take the next sequence number.
 * [out] seq           the number, on return 0.
 * [out] new_reserved  on MESH_SEQ_PERSIST, the value to persist.
 * Returns 0; MESH_SEQ_PERSIST (1) meaning "persist *new_reserved durably
 * first, then call mesh_seq_commit(s, *new_reserved) and call again" (the
 * retry then returns 0 or GW_EFULL, so one retry is the bound); GW_EFULL when
 * all 2^48 numbers are spent, after which the device needs a new key. */
GW_NODISCARD int mesh_seq_take(struct mesh_seq *s, uint64_t *seq, uint64_t *new_reserved);

/* Record that reserved is now durable. Values below the current reservation,
 * or above 2^48, are clamped; calling it with a value that was not persisted
 * breaks the no-reuse guarantee. */
void mesh_seq_commit(struct mesh_seq *s, uint64_t reserved);

/* Parse exactly 32 hex digits (either case, nothing else) into a key.
 * [in]  hex  the digits, len bytes, need not be NUL-terminated.
 * [out] key  written only on success.
 * Returns 0, or GW_EBADMSG for NULL, a length other than 32, or a non-hex
 * character. */
GW_NODISCARD int mesh_key_parse(const char *hex, size_t len, uint8_t key[MESH_KEY_LEN]);

#endif
