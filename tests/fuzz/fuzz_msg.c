/* SPDX-License-Identifier: MIT */
/* fuzz_msg.c - the ring envelope (common/gw_msg.h) and the SPSC ring itself
 * (common/gw_ring.h), SPEC S1.2, S9.
 *
 * Records popped from a ring come from another process; a damaged one must
 * be dropped by gw_msg_decode, never acted upon. Ring slots live in shared
 * memory, so a slot's length word may be garbage too (a peer that died
 * mid-write is covered by the protocol; a bug or a stray write is not, and
 * must still not take the consumer down).
 *
 * Input, byte 0 chooses the mode:
 *   even  the rest is one envelope: gw_msg_decode; if it decodes, its
 *         fields are in range and *data points inside the record;
 *   odd   a push/pop script on a heap ring of 8 small slots: each step
 *         takes a control byte (push k bytes / pop / corrupt a slot's
 *         length word) and pushed records are checked for FIFO order and
 *         content against a model. */
#include "gw_error.h"
#include "gw_msg.h"
#include "gw_ring.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 8
#define SLOT_SIZE 128

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_msg: %s\n", what);
    abort();
}

static void envelope(const uint8_t *rec, size_t n)
{
    /* A private, exactly sized copy so ASan sees any read past the record. */
    uint8_t *copy = malloc(n ? n : 1);
    if (!copy)
        abort();
    memcpy(copy, rec, n);
    struct gw_msg m;
    const uint8_t *data = NULL;
    if (gw_msg_decode(copy, n, &m, &data) == 0) {
        if (m.kind == 0 || m.kind >= GW_MSG_KIND_MAX || m.tkl > GW_COAP_MAX_TOKEN ||
            m.security > GW_SEC_NETMGR || (size_t)m.len + sizeof(m) != n ||
            data != copy + sizeof(m))
            fail("decoded envelope out of range");
        volatile uint8_t sink = 0;
        for (size_t i = 0; i < m.len; i++)
            sink ^= data[i];
        for (size_t i = 0; i < m.tkl; i++)
            sink ^= m.token[i];
        (void)sink;
    }
    free(copy);
}

struct model {
    uint32_t len[SLOTS * 64];
    uint8_t byte[SLOTS * 64];
    uint32_t head, tail;
};

static void script(const uint8_t *p, size_t n)
{
    size_t bytes = gw_ring_bytes(SLOTS, SLOT_SIZE);
    struct gw_ring *r = malloc(bytes);
    if (!r)
        abort();
    memset(r, 0xa5, bytes);
    gw_ring_format(r, SLOTS, SLOT_SIZE, 0);
    gw_ring_claim_producer(r, 1);
    gw_ring_claim_consumer(r, 2);
    static struct model mdl;
    memset(&mdl, 0, sizeof(mdl));
    uint8_t rec[SLOT_SIZE], out[SLOT_SIZE];
    bool corrupted[SLOTS] = { false };
    for (size_t i = 0; i < n && mdl.tail < SLOTS * 64; i++) {
        uint8_t c = p[i];
        switch (c >> 6) {
        case 0:
        case 1: { /* push c & 0x7f bytes (up to and past the slot size) */
            uint32_t len = c & 0x7f;
            if (c & 0x40)
                len += SLOT_SIZE - 64; /* near and over the limit */
            memset(rec, (int)i, sizeof(rec));
            int rc = gw_ring_push(r, rec, len);
            bool fits = len <= SLOT_SIZE - 4;
            bool full = mdl.tail - mdl.head >= SLOTS;
            if (!fits) {
                if (rc != GW_ETOOBIG)
                    fail("oversize push not refused");
            } else if (full) {
                if (rc != GW_EFULL)
                    fail("push into a full ring not refused");
            } else {
                if (rc != 0)
                    fail("push refused with room left");
                corrupted[mdl.tail % SLOTS] = false;
                mdl.len[mdl.tail % (SLOTS * 64)] = len;
                mdl.byte[mdl.tail % (SLOTS * 64)] = (uint8_t)i;
                mdl.tail++;
            }
            break;
        }
        case 2: { /* pop with a cap taken from the byte */
            uint32_t cap = (c & 0x3f) * 2 + 4;
            if (cap > sizeof(out))
                cap = sizeof(out);
            int rc = gw_ring_pop(r, out, cap);
            if (mdl.head == mdl.tail) {
                if (rc != GW_EEMPTY)
                    fail("pop from an empty ring");
                break;
            }
            uint32_t want = mdl.len[mdl.head % (SLOTS * 64)];
            bool bad = corrupted[mdl.head % SLOTS];
            if (!bad) {
                if (want > cap) {
                    if (rc != GW_EBADMSG)
                        fail("record over the pop cap not refused");
                } else {
                    if (rc != (int)want)
                        fail("popped length differs");
                    for (uint32_t k = 0; k < want; k++)
                        if (out[k] != mdl.byte[mdl.head % (SLOTS * 64)])
                            fail("popped bytes differ");
                    envelope(out, (size_t)rc);
                }
            } else if (rc >= 0) {
                if ((uint32_t)rc > cap || (uint32_t)rc > SLOT_SIZE - 4)
                    fail("corrupt length copied out");
                envelope(out, (size_t)rc);
            } else if (rc != GW_EBADMSG) {
                fail("corrupt slot: unexpected error");
            }
            mdl.head++;
            break;
        }
        case 3: { /* a peer scribbles over the length word of a published slot */
            if (mdl.head == mdl.tail || i + 4 >= n)
                break;
            uint32_t idx = mdl.head + (c & 7) % (mdl.tail - mdl.head);
            uint8_t *slot = (uint8_t *)(r + 1) + (size_t)(idx & r->mask) * r->slot_size;
            memcpy(slot, p + i + 1, 4);
            uint32_t len;
            memcpy(&len, slot, 4);
            mdl.len[idx % (SLOTS * 64)] = len;
            corrupted[idx % SLOTS] = true;
            i += 4;
            break;
        }
        }
        if (gw_ring_count(r) != mdl.tail - mdl.head)
            fail("ring count differs from the model");
    }
    free(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0)
        envelope(data + 1, size - 1);
    else
        script(data + 1, size - 1);
    return 0;
}
