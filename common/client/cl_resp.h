/* SPDX-License-Identifier: MIT */
/* cl_resp.h - responses as `coapgw client` reports them (pure): a copy of
 * a received CoAP response, Block2 reassembly, the --json object and the -v
 * lines. */
#ifndef CL_RESP_H
#define CL_RESP_H

#include "gw_defs.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CL_MAX_OPTS 40

struct cl_opt {
    uint16_t num;
    uint16_t off, len; /* value in cl_resp.optbuf */
};

/* One response, owned by its holder: body is malloc'd (cl_resp_clear). */
struct cl_resp {
    uint8_t code; /* class << 5 | detail */
    uint8_t type; /* CON 0, NON 1, ACK 2, RST 3 */
    uint16_t mid;
    struct cl_opt opt[CL_MAX_OPTS];
    unsigned nopt;
    uint8_t optbuf[1152];
    size_t optused;
    uint8_t *body; /* payload, or the whole reassembled body */
    size_t len, cap;
    unsigned blocks; /* Block2 blocks reassembled into body (0 = none) */
    double elapsed_ms;
};

void cl_resp_clear(struct cl_resp *r);
/* Records an option. Returns 0, or GW_EFULL when the response has too
 * many or too large options (they are then not all reported). */
int cl_resp_add_opt(struct cl_resp *r, uint16_t num, const uint8_t *val, size_t len) GW_NODISCARD;
const struct cl_opt *cl_resp_opt(const struct cl_resp *r, uint16_t num);
/* An option's unsigned value (RFC 7252 3.2), false when absent or longer than 4 bytes. */
bool cl_resp_uint(const struct cl_resp *r, uint16_t num, uint32_t *v);
/* Replaces (append = false) or extends the body. Returns 0, -ENOMEM, or GW_ETOOBIG past max. */
int cl_resp_body(struct cl_resp *r, const uint8_t *p, size_t n, bool append,
                 size_t max) GW_NODISCARD;

/* "Content", "Not Found", ... ("" when unknown). */
const char *cl_code_name(uint8_t code);
/* "Max-Age", "Block2", ... or NULL for an unknown number. */
const char *cl_opt_name(uint16_t num);

/* ---- Block2 (RFC 7959) ---- */

struct cl_block {
    uint32_t num;
    bool more;
    uint8_t szx; /* size = 16 << szx (7 = BERT, refused) */
};

bool cl_block_decode(const uint8_t *v, size_t len, struct cl_block *b);
/* Encodes a Block option value into out[3]; returns its length (0..3). */
size_t cl_block_encode(const struct cl_block *b, uint8_t out[3]);

/* Adds one Block2 response to a body being reassembled in r (block holds
 * its option). Its payload must start exactly where the body ends (so a
 * block size the server reduces on the way is followed); the payload of a
 * block with more = true must fill the block. Returns 1 when the next block
 * is needed (*next holds NUM and SZX to ask for), 0 when the body is
 * complete, GW_EBADMSG for a block out of place, GW_ETOOBIG past max. */
int cl_block_add(struct cl_resp *r, const struct cl_block *b, const uint8_t *p, size_t n,
                 size_t max, struct cl_block *next) GW_NODISCARD;

/* RFC 7641 3.4: is a notification with Observe v2 received at t2 (ms)
 * newer than the last one accepted (v1 at t1)? Observe numbers are 24-bit
 * and wrap; after 128 s any number is taken as newer. */
bool cl_obs_newer(uint32_t v1, double t1, uint32_t v2, double t2);

/* ---- output ---- */

/* True when p[0..n) is valid UTF-8 without NUL bytes (printable as JSON text). */
bool cl_utf8_text(const uint8_t *p, size_t n);
/* Base64 (RFC 4648, padded); malloc'd, NULL on ENOMEM. */
char *cl_base64(const uint8_t *p, size_t n);

/* The --json object of a response: code ("2.05"), code_name, type,
 * content_format (or null), options (number, name, value: integer for uint
 * options, text for string options, hex otherwise), payload (text) or
 * payload_base64, size, elapsed_ms, blocks, observe (when present).
 * Returns a new reference or NULL on ENOMEM. */
struct json_t *cl_resp_json(const struct cl_resp *r);

/* -v: "2.05 Content  12.3 ms" and one line per option, to f. */
void cl_resp_verbose(FILE *f, const struct cl_resp *r);

#endif
