/* SPDX-License-Identifier: MIT */
/* fuzz_mesh_frame.c - secured mesh frames (meshio/mesh_crypto.h) and what
 * meshio does with a datagram from a device (meshio.h mesh_rx_accept),
 * SPEC S7.1, S9.
 *
 * Anything on the mesh can send meshio a datagram. Byte 0 picks a mode:
 *   0  raw: the rest is one frame for mesh_open under a fixed key and MAC;
 *      a frame that opens is checked against the replay window;
 *   1  sealed script: the rest is records [seq: 6 bytes][len: 1][len bytes];
 *      each plaintext is sealed (as the device would) under the fixed key,
 *      sometimes damaged by one bit, then fed to mesh_rx_accept over a
 *      per-input mesh_peers table. The replay window is checked against a
 *      model (accept iff never accepted and above top - 64), and an opened
 *      frame must give back the exact plaintext;
 *   2  plain: the rest is a datagram for the plain socket (mesh_rx_accept
 *      with secure = false), which must come out unchanged or be refused.
 * Also mesh_key_parse on the raw bytes. */
#include "gw_error.h"
#include "meshio.h"
#include "mesh_crypto.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t KEY[MESH_KEY_LEN] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
                                           0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
static const uint8_t MAC[GW_MAC_LEN] = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 };

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_mesh_frame: %s\n", what);
    abort();
}

static void cleanup(void)
{
    mesh_crypto_thread_cleanup();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    atexit(cleanup);
    return 0;
}

static void raw_frame(const uint8_t *p, size_t n)
{
    uint8_t *frame = malloc(n ? n : 1); /* exact size: ASan sees over-reads */
    if (!frame)
        abort();
    memcpy(frame, p, n);
    uint8_t out[MESH_MAX_PLAINTEXT];
    size_t ol = 1;
    uint64_t seq = 1;
    int rc = mesh_open(KEY, MAC, MESH_DIR_FROM_DEVICE, frame, n, out, sizeof(out), &ol, &seq);
    if (rc == 0) {
        if (ol + MESH_FRAME_OVERHEAD != n || seq >= MESH_SEQ_LIMIT)
            fail("opened frame with inconsistent length or sequence");
        struct mesh_replay w = { 0 };
        if (mesh_replay_check(&w, seq) != 0)
            fail("an empty window refuses a first frame");
        mesh_replay_update(&w, seq);
        if (mesh_replay_check(&w, seq) != GW_EREPLAY)
            fail("replay window accepts a frame twice");
    } else if (ol != 0 || seq != 0) {
        fail("failed open leaves output behind");
    }
    /* The same bytes in the other direction, and with a NULL output. */
    rc = mesh_open(KEY, MAC, MESH_DIR_TO_DEVICE, frame, n, NULL, 0, &ol, &seq);
    (void)rc;
    uint8_t key[MESH_KEY_LEN];
    if (mesh_key_parse((const char *)frame, n, key) == 0 && n != 32)
        fail("mesh_key_parse accepted a length other than 32");
    free(frame);
}

/* The replay model: accepted sequence numbers of this input. */
#define MAXREC 512
struct model {
    uint64_t seen[MAXREC];
    unsigned n;
    uint64_t top;
    int init;
};

static bool model_accepts(const struct model *m, uint64_t seq)
{
    if (!m->init || seq > m->top)
        return true;
    if (m->top - seq >= MESH_REPLAY_WINDOW)
        return false;
    for (unsigned i = 0; i < m->n; i++)
        if (m->seen[i] == seq)
            return false;
    return true;
}

static void model_accept(struct model *m, uint64_t seq)
{
    if (m->n < MAXREC)
        m->seen[m->n++] = seq;
    if (!m->init || seq > m->top)
        m->top = seq;
    m->init = 1;
}

static void sealed_script(const uint8_t *p, size_t n)
{
    struct mesh_peers peers;
    if (mesh_peers_init(&peers, NULL) != 0)
        abort();
    struct gw_device dev;
    memset(&dev, 0, sizeof(dev));
    memcpy(dev.mac, MAC, GW_MAC_LEN);
    memcpy(dev.key, KEY, MESH_KEY_LEN);
    dev.family = 4;
    dev.plain_port = 5683;
    dev.secure_port = 4849;
    static struct model m;
    memset(&m, 0, sizeof(m));
    size_t off = 0;
    for (unsigned rec = 0; rec < MAXREC && off + 7 <= n; rec++) {
        uint64_t seq = 0;
        for (int i = 0; i < 6; i++)
            seq = seq << 8 | p[off + i];
        /* Keep most sequence numbers near each other so the window matters. */
        if (!(p[off] & 0x80))
            seq &= 0xff;
        uint8_t len = p[off + 6];
        off += 7;
        size_t pl = len;
        if (pl > n - off)
            pl = n - off;
        const uint8_t *pt = p + off;
        off += pl;
        uint8_t frame[MESH_MAX_FRAME];
        size_t fl = 0;
        if (mesh_seal(KEY, MAC, MESH_DIR_FROM_DEVICE, seq, pt, pl, frame, sizeof(frame), &fl) != 0)
            fail("seal refused a valid plaintext");
        bool damaged = false;
        if ((len & 0xc0) == 0xc0 && fl) { /* flip one bit somewhere */
            size_t bit = (seq * 131 + pl) % (fl * 8);
            frame[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            damaged = true;
        }
        uint8_t out[GW_COAP_MAX_MSG + 16];
        size_t ol = 0;
        int rc = mesh_rx_accept(&dev, true, &peers, frame, fl, out, sizeof(out), &ol);
        if (damaged) {
            if (rc != GW_EAUTH)
                fail("a damaged frame was not refused as forged");
            continue;
        }
        bool want = model_accepts(&m, seq);
        if (want) {
            if (rc != 0)
                fail("a fresh frame was refused");
            if (ol != pl || (pl && memcmp(out, pt, pl) != 0))
                fail("opened plaintext differs from the sealed one");
            model_accept(&m, seq);
        } else if (rc != GW_EREPLAY) {
            fail("a replayed or too old frame was not refused");
        }
    }
    mesh_peers_deinit(&peers);
}

static void plain(const uint8_t *p, size_t n)
{
    struct gw_device dev;
    memset(&dev, 0, sizeof(dev));
    uint8_t *dg = malloc(n ? n : 1);
    if (!dg)
        abort();
    memcpy(dg, p, n);
    uint8_t out[GW_COAP_MAX_MSG + 16];
    size_t ol = 0;
    int rc = mesh_rx_accept(&dev, false, NULL, dg, n, out, sizeof(out), &ol);
    if (rc == 0 && (ol != n || memcmp(out, dg, n) != 0))
        fail("plain datagram changed on the way");
    if (rc != 0 && ol != 0)
        fail("refused plain datagram leaves output behind");
    free(dg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0:
        raw_frame(data + 1, size - 1);
        break;
    case 1:
        sealed_script(data + 1, size - 1);
        break;
    case 2:
        plain(data + 1, size - 1);
        break;
    }
    return 0;
}
