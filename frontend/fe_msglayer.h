/* SPDX-License-Identifier: MIT */
/* fe_msglayer.h - the client-facing RFC 7252 message layer, without I/O.
 *
 * Deduplication (S3.3): every CON/NON request is remembered by (endpoint,
 * MID, token) for exchange_lifetime_ms. A duplicate (a retransmission: an
 * identical copy, RFC 7252 4.5) is never processed again; the stored answer
 * (piggybacked or local) is re-sent, or for a forwarded CON the empty ACK.
 * The same MID from the same endpoint with another token is a new request
 * (a MID reused within the lifetime: a forwarding node at a high rate, a
 * client whose counter wrapped) and never gets the older one's answer.
 * Cost: 48 bytes per entry with its index key (static_assert below),
 * 8 to 16 for its index slots and 76 to 108 for its source's record and
 * index at most, plus the stored answer (none for the refusals kept by
 * their recipe, fe_dedup_set_code); answers beyond the class's byte
 * budget are not kept (a duplicate then gets an empty ACK only).
 *
 * Spoofed traffic must not evict anyone else's state (issue #12 item 6), so
 * entries belong to a class and a source:
 *   - class SESSION (the sender holds a session) may use the whole table;
 *     class SESSIONLESS at most `sessionless_cap` entries and a quarter of
 *     the byte budget. When the table is full, a new entry evicts the oldest
 *     SESSIONLESS entry first; a SESSIONLESS entry never evicts a SESSION
 *     one (it is then not remembered: answers to sessionless requests can be
 *     recomputed). fe_dedup_promote() moves the entry of a POST /sessions
 *     that created a session into class SESSION, so its 2.01 is kept.
 *   - a source (the endpoint for SESSION, the address for SESSIONLESS) holds
 *     at most `per_source` entries; one more forgets its own oldest.
 * Each class and each source is a list in arrival order, so expiry and
 * eviction take the head: O(1) per entry. Entries and sources are found
 * through gw_map tables keyed by SipHash under a per-process random key, so
 * senders cannot choose colliding keys; the whole key is compared. The
 * source index is sized once; the entry index doubles with the entries up
 * to the table's size (resident memory grows with use, issue 13 item 4),
 * and an exchange is not remembered when it cannot grow.
 *
 * Reliability (S3.2): CON messages the gateway sends to clients (separate
 * responses, notifications) are retransmitted with RFC 7252 back-off until
 * ACK or RST or MAX_RETRANSMIT. At most one CON notification is in flight
 * per observer (endpoint, token); a newer one takes over the older one's
 * transmission counter and timeout (RFC 7641 4.5.2). */
#ifndef FE_MSGLAYER_H
#define FE_MSGLAYER_H

#include "gw_addr.h"
#include "gw_defs.h"
#include "gw_coap.h"
#include "gw_heap.h"
#include "gw_map.h"

#include <stdbool.h>

enum fe_dedup_class { FE_DEDUP_SESSIONLESS = 0, FE_DEDUP_SESSION = 1 };

/* 48 bytes with its index key (issue 13 item 4: one per registration and
 * per session creation for EXCHANGE_LIFETIME): the endpoint's address is
 * its source record's (SESSION: the endpoint, SESSIONLESS: the address),
 * the entry keeps the port; the expiry is 32 bits after the table's epoch. */
struct fe_dedup_entry {
    uint64_t hkey; /* its key in idx: SipHash of (ep, MID, token) */
    union {
        uint8_t *resp;    /* code 0: stored answer (own copy) or NULL */
        const char *diag; /* code != 0: static diagnostic payload, or NULL */
    };
    uint32_t expires;              /* ms after fe_dedup.epoch */
    uint32_t older, newer;         /* class list in arrival order (index + 1) */
    uint32_t src;                  /* source record (index + 1) */
    uint32_t src_older, src_newer; /* the source's list in arrival order */
    uint16_t mid;
    uint16_t port;     /* the endpoint's; its address is in the source record */
    uint16_t resp_len; /* code != 0: the answer's Max-Age, 0xffff for none */
    uint8_t code;      /* nonzero: the answer is this code with `diag`, see fe_dedup_set_code */
    uint8_t used : 1;
    uint8_t forwarded : 1; /* went to the mesh: a duplicate CON gets an empty ACK */
    uint8_t cls : 1;       /* enum fe_dedup_class */
    uint8_t checking : 1;  /* a guarded cache hit (resp) awaits the scheduler's verdict */
};
GW_STATIC_ASSERT(sizeof(struct fe_dedup_entry) == 48, "dedup entry cost is documented as 48 bytes");

/* A sender's share: endpoint (class SESSION) or address (SESSIONLESS). */
struct fe_dedup_src {
    struct gw_ep key; /* port 0 for SESSIONLESS */
    uint8_t cls;
    uint32_t count;
    uint32_t oldest, newest; /* entries (index + 1) */
};

struct fe_dedup_list {
    uint32_t oldest, newest; /* index + 1 */
    uint32_t count;
    size_t resp_bytes, resp_budget;
};

/* The entry index: open addressing over entry numbers (index + 1, 0 empty)
 * whose keys are in the entries (hkey), linear probing, backward-shift
 * deletion, load at most 3/4, doubling up to 2 * cap slots. Not a gw_map:
 * its 16-byte slots repeat the 8-byte key already kept per entry, and at 2
 * to 4 slots per entry they were 32 to 64 of the about 110 bytes an entry
 * cost. Every registration storm leaves tens of thousands of refused
 * retries here for EXCHANGE_LIFETIME (issue 13 item 4); 4-byte slots cost
 * 8 to 16. The key is SipHash under the table's random key, so its low
 * bits choose the slot. Not a gw_idx either (the same shape, in common/):
 * gw_idx reads keys from an array of bare keys, these sit inside the
 * 48-byte entries; the probe here compares the entry's MID and endpoint in
 * the same pass; and fe_dedup_get inserts into the empty slot its probe
 * ended on, one probe per request on the hot path (issue 13). */
struct fe_dedup_idx {
    uint32_t *slot;
    uint32_t mask; /* slots - 1 */
    uint32_t n;    /* keys held */
};

struct fe_dedup {
    struct fe_dedup_entry *e;
    uint32_t cap, count;
    uint32_t *free_list, nfree;
    struct fe_dedup_idx idx;  /* SipHash of (ep, MID, token) -> entry index */
    struct fe_dedup_src *src; /* cap records: a source holds at least one entry */
    uint32_t *src_free, nsrc_free;
    struct gw_map src_idx; /* SipHash of (source, class) -> record index */
    struct fe_dedup_list cls[2];
    uint32_t sessionless_cap, per_source;
    size_t resp_bytes, resp_budget;
    uint64_t lifetime_ms;
    uint64_t epoch; /* entry expiries count from here (moved every ~49 days) */
    uint64_t evicted_early;
    uint64_t key[2]; /* SipHash key, random per process */
};

/* A table of `cap` entries (answers up to resp_budget bytes), at most cap/4
 * of them SESSIONLESS and no per-source bound until fe_dedup_limit(). */
int fe_dedup_init(struct fe_dedup *d, uint32_t cap, uint64_t lifetime_ms,
                  size_t resp_budget) GW_NODISCARD;
/* Sets the SESSIONLESS share (at most cap/2) and the per-source bound. */
void fe_dedup_limit(struct fe_dedup *d, uint32_t sessionless_cap, uint32_t per_source);
void fe_dedup_deinit(struct fe_dedup *d);
/* Returns the live entry of (ep, mid, token) or NULL; tkl 0 for none. */
struct fe_dedup_entry *fe_dedup_find(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid,
                                     const uint8_t *token, uint8_t tkl, uint64_t now);
/* Find-or-insert, the step of every request: one hash of (ep, mid, token)
 * and one probe run, the sender's source looked up once. A live entry of
 * that key: it is returned with *dup true (a duplicate, nothing changed).
 * Otherwise a new exchange of class `cls` is recorded as fe_dedup_add_cls
 * describes (*dup false; NULL when it is not remembered). */
struct fe_dedup_entry *fe_dedup_get(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid,
                                    const uint8_t *token, uint8_t tkl, uint64_t now,
                                    enum fe_dedup_class cls, bool *dup);
/* Records a new exchange of a sender with a session (class SESSION); evicts
 * as described above, so NULL only when the index cannot grow (out of
 * memory). Both adds are fe_dedup_get: a live entry of the same key is
 * returned rather than doubled. */
struct fe_dedup_entry *fe_dedup_add(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid,
                                    const uint8_t *token, uint8_t tkl, uint64_t now);
/* The same for a given class; NULL when a SESSIONLESS entry finds no room,
 * or out of memory. */
struct fe_dedup_entry *fe_dedup_add_cls(struct fe_dedup *d, const struct gw_ep *ep, uint16_t mid,
                                        const uint8_t *token, uint8_t tkl, uint64_t now,
                                        enum fe_dedup_class cls);
/* Moves a SESSIONLESS entry into class SESSION (its sender now holds one). */
void fe_dedup_promote(struct fe_dedup *d, struct fe_dedup_entry *e, uint64_t now);
/* Stores the answer sent for an exchange (copied; skipped beyond the budget). */
void fe_dedup_set_resp(struct fe_dedup *d, struct fe_dedup_entry *e, const uint8_t *buf,
                       size_t len);
/* Forgets the stored answer (code 0), e.g. a held cache hit the scheduler
 * said not to send (gw_msg.h GW_MF2_CHECK). */
void fe_dedup_drop_resp(struct fe_dedup *d, struct fe_dedup_entry *e);
/* Remembers a piggybacked error answer by what makes it instead of its
 * bytes: code, a diagnostic with static storage (a string literal) and
 * Max-Age (UINT32_MAX: none; larger than 65534: not kept this way). A
 * duplicate of the CON request (an identical copy: same MID and token)
 * gets the same bytes rebuilt from it. Under overload every refused
 * retry is such an entry, and a copy of its answer was 64 bytes of heap
 * each for EXCHANGE_LIFETIME (issue 13 item 4). False when not kept (the
 * entry already has an answer, or Max-Age does not fit). */
bool fe_dedup_set_code(struct fe_dedup_entry *e, uint8_t code, const char *diag, uint32_t max_age);

/* A notification's message as the scheduler encoded it once for all its
 * observers at this frontend (gw_msg.h GW_MSG_NOTIFY_SET): no token, MID 0.
 * The in-flight notifications made from it point here instead of holding
 * a copy each (issue 13 item 3); the last one to leave frees it. */
struct fe_nbody {
    uint32_t refs;
    uint16_t len;
    uint8_t msg[];
};

struct fe_rtx_entry {
    struct gw_ep ep;
    uint16_t mid;
    uint8_t used;
    uint8_t notify;
    uint8_t tkl;
    uint8_t attempts; /* retransmissions so far */
    uint8_t token[8];
    uint8_t
        tracked; /* an answer the scheduler keeps until the client ACKs it (gw_msg.h GW_MF2_MID) */
    uint8_t ghost; /* ghost_mid: the MID of the notification this one replaced */
    uint16_t ghost_mid;
    uint32_t gen;
    uint64_t h_tok; /* index key (ep, token) of a notification, so unlinking hashes nothing */
    uint64_t timeout_ms;
    uint64_t deadline;
    uint64_t session;
    uint16_t len;
    uint8_t *buf;          /* own copy of the datagram, or NULL with body */
    struct fe_nbody *body; /* shared message of a notification, or NULL */
};

/* Entries, free list, timer heap, ghost table and both indexes are sized
 * for the messages in flight: they double when full (up to cap) and are
 * compacted to half when at most an eighth is used, so the memory a
 * registration storm took (5 000 observers each with a notification in
 * flight) goes back once the client has ACKed (issue 13 item 4). */
#define FE_RTX_MIN 64u

struct fe_rtx {
    uint64_t key[2]; /* SipHash key, random per process */
    struct fe_rtx_entry *e;
    uint32_t cap;   /* bound: entries at most */
    uint32_t alloc; /* entries allocated: FE_RTX_MIN..cap */
    uint32_t used, free_head;
    uint32_t *free_list;
    uint32_t no_shrink;   /* inside a walk over e[]: indexes must not move */
    uint64_t resized;     /* times grown or compacted (tests, the bench's curiosity) */
    struct gw_map by_mid; /* MID -> entry index; grows with the entries, up to cap */
    struct gw_map by_tok; /* SipHash(ep, token) -> entry; grows with notifications, up to cap */
    uint32_t *ghost;      /* by replaced MID's low bits, the entry that replaced it (index + 1) */
    uint32_t nghost;
    /* One bit per MID: the last CON this frontend sent with it was a
     * notification (fe_rtx_notified). 8 KiB. */
    uint64_t notified[65536 / 64];
    struct gw_heap heap;
    uint64_t ack_timeout_ms;
    uint32_t max_retransmit;
    uint8_t scratch[GW_COAP_MAX_MSG + 16]; /* a shared-body datagram rendered for fe_rtx_due */
    uint8_t giveup[GW_COAP_MAX_MSG + 16];
};

enum fe_rtx_event { FE_RTX_RESEND, FE_RTX_GIVEUP };
struct fe_rtx_out {
    enum fe_rtx_event ev;
    struct gw_ep ep;
    const uint8_t *buf;
    size_t len;
    bool notify;
    uint8_t token[8], tkl;
    uint64_t session;
    uint16_t mid;
    bool tracked;
};

/* A body with no reference yet (refs 0); NULL when out of memory or the
 * message is shorter than a header or longer than a message. */
struct fe_nbody *fe_nbody_new(const uint8_t *msg, size_t len);
/* Frees a body nothing took a reference to (refs 0); no-op otherwise. */
void fe_nbody_drop(struct fe_nbody *b);
/* Writes the datagram for one observer (type, MID, token) into out (room
 * for len + 8) and returns its length. */
size_t fe_nbody_render(const struct fe_nbody *b, uint8_t type, uint16_t mid, const uint8_t *token,
                       uint8_t tkl, uint8_t *out);

int fe_rtx_init(struct fe_rtx *t, uint32_t cap, uint64_t ack_timeout_ms,
                uint32_t max_retransmit) GW_NODISCARD;
void fe_rtx_deinit(struct fe_rtx *t);
/* Tracks a CON message just sent. For a notification an in-flight one of the
 * same observer is replaced, keeping its counter and timeout. GW_EFULL when
 * the table is full, -ENOMEM when the token index cannot grow for a new
 * observer (the message is then sent once, untracked). */
int fe_rtx_add(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, const uint8_t *buf,
               size_t len, bool notify, const uint8_t *token, uint8_t tkl, uint64_t session,
               uint64_t now, uint32_t rnd) GW_NODISCARD;
/* The same for a notification of a set, sharing `body` (one reference
 * taken on success): the datagram is rendered from it when resent. */
int fe_rtx_add_notify(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, struct fe_nbody *body,
                      const uint8_t *token, uint8_t tkl, uint64_t session, uint64_t now,
                      uint32_t rnd) GW_NODISCARD;
/* ACK or RST from the client. Returns true when it matched; *out tells
 * whether it was a notification (then the observer leaves on RST). */
bool fe_rtx_ack(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid, struct fe_rtx_out *out);
/* For an ACK or RST that fe_rtx_ack did not match: true when mid is the MID
 * of a notification that a newer one to the same observer replaced while
 * in flight (its late ACK, common under load). *out describes the observer
 * and out->mid is the MID now in flight; the entry stays (the newer
 * notification still waits for its own ACK). Only the latest replaced MID
 * of an observer is known, and a newer replacement elsewhere with the same
 * low MID bits may forget it: then this returns false. */
bool fe_rtx_replaced(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid,
                     struct fe_rtx_out *out);
/* For an ACK that neither fe_rtx_ack nor fe_rtx_replaced matched: true
 * when the last CON this table saw with this MID was a notification, so the
 * ACK is a late one for a notification replaced more than once in flight
 * (only the latest replaced MID has a ghost) or already given up, and no
 * answer the scheduler keeps. In a registration storm these were 260 000
 * of 5 000 observers' ACKs, each a GW_MSG_ANSWER_DONE that filled the
 * scheduler's ring and had new requests refused with 5.03 (issue 13 item
 * 4). MIDs come from one counter for all frontends of the port, so a kept
 * answer with the same MID from another frontend is at least 65 536 MIDs
 * later; if its client's ACK comes here, the scheduler forgets that answer
 * after MAX_TRANSMIT_WAIT instead of at once, as when the ring is full. */
bool fe_rtx_notified(const struct fe_rtx *t, uint16_t mid);
/* True when a message with this MID to ep is in flight. */
bool fe_rtx_has(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid);
/* Marks the message in flight with this MID as a kept answer: its ACK, RST
 * or give-up is reported as tracked (fe_rtx_out). */
void fe_rtx_track(struct fe_rtx *t, const struct gw_ep *ep, uint16_t mid);
/* Drops everything in flight to ep (its session ended). */
void fe_rtx_forget_ep(struct fe_rtx *t, const struct gw_ep *ep);
/* Next due event at `now`: fills *out and returns true; call until false.
 * A GIVEUP entry is freed after the call returns its data; buf is valid
 * until the next call (a notification's is rendered from its shared body). */
bool fe_rtx_due(struct fe_rtx *t, uint64_t now, struct fe_rtx_out *out);
/* Earliest deadline, or UINT64_MAX. */
uint64_t fe_rtx_next(struct fe_rtx *t);

#endif
