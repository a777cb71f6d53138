/* SPDX-License-Identifier: MIT */
/* gw_coap.h - CoAP messages as the gateway sees them (RFC 7252).
 *
 * Parsing: incoming datagrams are parsed by libcoap's coap_pdu_parse() into
 * a scratch PDU owned by struct gw_coap_parser; gw_coap_parse() then builds
 * a flat view (struct gw_coap_msg) whose pointers refer into that PDU and
 * stay valid until the next parse with the same parser.
 *
 * Encoding: libcoap 4.3.1 has no public call that yields the bytes of a
 * PDU (coap_pdu_encode_header is internal and sending goes through its own
 * sessions), yet the gateway must put exact bytes into shared-memory rings
 * and onto its own sockets. So the encoder below is our own: a builder that
 * writes header, token, delta-encoded options and payload into a caller
 * buffer, with no allocation. tests/unit/common/test_coap.c checks it
 * against coap_pdu_parse() as the oracle on generated messages. */
#ifndef GW_COAP_H
#define GW_COAP_H

#include "gw_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { GW_COAP_CON = 0, GW_COAP_NON = 1, GW_COAP_ACK = 2, GW_COAP_RST = 3 };

#define GW_CODE(c, d) ((uint8_t)(((c) << 5) | (d)))
enum {
    GW_COAP_EMPTY = 0,
    GW_COAP_GET = 1,
    GW_COAP_POST = 2,
    GW_COAP_PUT = 3,
    GW_COAP_DELETE = 4,
    GW_COAP_FETCH = 5,
    GW_COAP_PATCH = 6,
    GW_COAP_IPATCH = 7,
    GW_COAP_CREATED = GW_CODE(2, 1),
    GW_COAP_DELETED = GW_CODE(2, 2),
    GW_COAP_VALID = GW_CODE(2, 3),
    GW_COAP_CHANGED = GW_CODE(2, 4),
    GW_COAP_CONTENT = GW_CODE(2, 5),
    GW_COAP_CONTINUE = GW_CODE(2, 31),
    GW_COAP_BAD_REQUEST = GW_CODE(4, 0),
    GW_COAP_UNAUTHORIZED = GW_CODE(4, 1),
    GW_COAP_BAD_OPTION = GW_CODE(4, 2),
    GW_COAP_FORBIDDEN = GW_CODE(4, 3),
    GW_COAP_NOT_FOUND = GW_CODE(4, 4),
    GW_COAP_NOT_ALLOWED = GW_CODE(4, 5),
    GW_COAP_NOT_ACCEPTABLE = GW_CODE(4, 6),
    GW_COAP_INCOMPLETE = GW_CODE(4, 8),
    GW_COAP_PRECONDITION = GW_CODE(4, 12),
    GW_COAP_TOO_LARGE = GW_CODE(4, 13),
    GW_COAP_UNSUPPORTED_CF = GW_CODE(4, 15),
    GW_COAP_TOO_MANY = GW_CODE(4, 29),
    GW_COAP_INTERNAL = GW_CODE(5, 0),
    GW_COAP_NOT_IMPLEMENTED = GW_CODE(5, 1),
    GW_COAP_BAD_GATEWAY = GW_CODE(5, 2),
    GW_COAP_UNAVAILABLE = GW_CODE(5, 3),
    GW_COAP_GATEWAY_TIMEOUT = GW_CODE(5, 4),
    GW_COAP_PROXY_NOT_SUPPORTED = GW_CODE(5, 5),
};

enum {
    GW_OPT_IF_MATCH = 1,
    GW_OPT_URI_HOST = 3,
    GW_OPT_ETAG = 4,
    GW_OPT_IF_NONE_MATCH = 5,
    GW_OPT_OBSERVE = 6,
    GW_OPT_URI_PORT = 7,
    GW_OPT_LOCATION_PATH = 8,
    GW_OPT_URI_PATH = 11,
    GW_OPT_CONTENT_FORMAT = 12,
    GW_OPT_MAX_AGE = 14,
    GW_OPT_URI_QUERY = 15,
    GW_OPT_HOP_LIMIT = 16,
    GW_OPT_ACCEPT = 17,
    GW_OPT_LOCATION_QUERY = 20,
    GW_OPT_BLOCK2 = 23,
    GW_OPT_BLOCK1 = 27,
    GW_OPT_SIZE2 = 28,
    GW_OPT_PROXY_URI = 35,
    GW_OPT_PROXY_SCHEME = 39,
    GW_OPT_SIZE1 = 60,
    GW_OPT_NO_RESPONSE = 258,
};

/* Option classes from the option number (RFC 7252 section 5.4.6). */
static inline bool gw_opt_critical(uint16_t n)
{
    return n & 1;
}
static inline bool gw_opt_unsafe(uint16_t n)
{
    return n & 2;
}
static inline bool gw_opt_nocachekey(uint16_t n)
{
    return (n & 0x1e) == 0x1c;
}
/* Whether the gateway understands option n (one of GW_OPT_* above). An
 * unknown unsafe-to-forward option cannot be proxied (RFC 7252 5.7.1, S4.3). */
bool gw_opt_known(uint16_t n);

#define GW_COAP_MAX_OPTS 48

struct gw_coap_opt {
    uint16_t num;
    uint16_t len;
    const uint8_t *val;
};

/* A flat view of one message. Options are in wire order (ascending). */
struct gw_coap_msg {
    uint8_t type;
    uint8_t code;
    uint16_t mid;
    uint8_t tkl;
    uint8_t token[GW_COAP_MAX_TOKEN];
    uint16_t nopts;
    struct gw_coap_opt opts[GW_COAP_MAX_OPTS];
    const uint8_t *payload;
    size_t payload_len;
};

struct gw_coap_parser;
/* Allocates the scratch PDU (GW_COAP_MAX_MSG bytes). Also quiets libcoap's own logging. */
int gw_coap_parser_new(struct gw_coap_parser **out) GW_NODISCARD;
void gw_coap_parser_free(struct gw_coap_parser *p);

/* Parses one datagram. Returns 0, or GW_EBADMSG for a message format error
 * (RFC 7252 4.2/4.3: bad TKL, bad option encoding, payload marker with no
 * payload, an Empty message with token/options/payload), or GW_EFULL when
 * it has more than GW_COAP_MAX_OPTS options. The caller checks the version
 * first (gw_coap_peek) because an unknown version must be ignored silently. */
int gw_coap_parse(struct gw_coap_parser *p, const uint8_t *buf, size_t len,
                  struct gw_coap_msg *m) GW_NODISCARD;

/* Reads the fixed header without validating the rest: version, type, MID.
 * Returns false when len < 4. */
bool gw_coap_peek(const uint8_t *buf, size_t len, uint8_t *ver, uint8_t *type, uint16_t *mid);

/* Builder: writes a message into buf. Options must be added in ascending
 * order of number (equal numbers repeat the option). Errors are sticky and
 * reported by gw_cb_finish. */
struct gw_cb {
    uint8_t *buf;
    size_t cap;
    size_t len;
    uint16_t last;
    int err;
};
void gw_cb_init(struct gw_cb *b, uint8_t *buf, size_t cap, uint8_t type, uint8_t code, uint16_t mid,
                const uint8_t *token, uint8_t tkl);
void gw_cb_opt(struct gw_cb *b, uint16_t num, const void *val, size_t len);
void gw_cb_opt_uint(struct gw_cb *b, uint16_t num, uint32_t v);
void gw_cb_opt_str(struct gw_cb *b, uint16_t num, const char *s);
void gw_cb_payload(struct gw_cb *b, const void *data, size_t len);
/* Returns 0 and *len, or GW_ETOOBIG / GW_EBADMSG (options out of order). */
int gw_cb_finish(struct gw_cb *b, size_t *len) GW_NODISCARD;

/* Encodes a whole view (options sorted stably by number first). */
int gw_coap_encode(const struct gw_coap_msg *m, uint8_t *buf, size_t cap, size_t *len) GW_NODISCARD;

/* Option helpers on a view. */
const struct gw_coap_opt *gw_coap_opt_find(const struct gw_coap_msg *m, uint16_t num);
unsigned gw_coap_opt_count(const struct gw_coap_msg *m, uint16_t num);
/* Decodes a uint option value (up to 4 bytes); false if longer. */
bool gw_coap_uint(const uint8_t *v, size_t len, uint32_t *out);
/* Encodes v as a minimal uint into out[4]; returns its length (0 for v == 0). */
size_t gw_coap_uint_enc(uint32_t v, uint8_t out[4]);

/* Block1/Block2 (RFC 7959). szx 0..6 means 16 << szx bytes. */
struct gw_block {
    uint32_t num;
    bool more;
    uint8_t szx;
};
bool gw_block_decode(const struct gw_coap_opt *o, struct gw_block *b);
size_t gw_block_encode(const struct gw_block *b, uint8_t out[4]);

/* A tiny response to req: ACK with req's MID for CON, otherwise NON with
 * req's MID (the caller sets a fresh one for NON, RFC 7252 4.4), the
 * request's token, and diag as a text payload. */
int gw_coap_simple_reply(const struct gw_coap_msg *req, uint8_t code, const char *diag,
                         uint8_t *buf, size_t cap, size_t *len) GW_NODISCARD;

const char *gw_coap_code_str(uint8_t code, char buf[8]);

/* The target of a request for logs: "/" + Uri-Path segments joined by '/',
 * "?" + Uri-Query joined by '&', or the Proxy-Uri when there is one. Reads
 * the raw message (bounds-checked, no parser needed); what does not fit in
 * cap is cut. Returns buf ("" for a malformed message). */
const char *gw_coap_path_str(const uint8_t *msg, size_t len, char *buf, size_t cap);
/* The same for a parsed message. */
const char *gw_coap_msg_path_str(const struct gw_coap_msg *m, char *buf, size_t cap);

#endif
