/* SPDX-License-Identifier: MIT */
/* gw_text.h - the small text codecs every role needs: hex digits and
 * strings, base64url (RFC 4648 section 5), bounded decimal numbers, and
 * trimming a configuration line. One copy, tested once (issue #17: four
 * hand-written hex decoders and two base64url alphabets before). Pure: no
 * allocation, no locale (ctype's isxdigit would follow the locale). */
#ifndef GW_TEXT_H
#define GW_TEXT_H

#include "gw_defs.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* Value of hex digit c (either case), or -1. */
int gw_hex_digit(int c);
/* Decodes exactly 2*n hex digits s[0..len) into out[0..n). 0, or GW_EBADMSG
 * when len != 2*n or a character is not a hex digit (out may then hold a
 * prefix: a caller decoding a secret decodes into scratch it wipes). */
int gw_hex_decode(const char *s, size_t len, uint8_t *out, size_t n) GW_NODISCARD;

/* Value of base64url character c (RFC 4648 section 5), or -1. */
int gw_b64url_digit(int c);
/* Strict, unpadded base64url decode of in[0..len) into out (room for cap
 * bytes; len / 4 * 3 + 2 always suffices). Rejects characters outside the
 * alphabet, a length base64 cannot have and non-zero trailing bits (RFC 4648
 * section 3.5), so an encoding has exactly one accepted spelling.
 * 0 and *olen, or GW_EBADMSG (not base64url, or more than cap bytes). */
int gw_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
                     size_t *olen) GW_NODISCARD;

/* A decimal number of 1..maxlen digits (no sign, no spaces) no larger than
 * max. 0 and *out, or GW_EBADMSG. */
int gw_dec_parse(const char *s, size_t maxlen, uint64_t max, uint64_t *out) GW_NODISCARD;

/* The environment variable for configuration key `key`: prefix followed by
 * the key in upper case ("COAPGW_" "max_txn" -> "COAPGW_MAX_TXN"), cut to
 * fit buf (len >= 1). Returns buf. */
char *gw_env_name(const char *prefix, const char *key, char *buf, size_t len);

/* Grows the array *pp (of *cap items of elem bytes; pp is the address of
 * any object pointer, NULL or from malloc) to hold at least need items,
 * doubling from `first`. 0, or -ENOMEM with *pp and *cap unchanged (the
 * caller still owns the old array). Not for secrets: realloc frees the old
 * block without wiping it (gw_devlist copies by hand for that). */
int gw_grow(void *pp, size_t *cap, size_t need, size_t elem, size_t first) GW_NODISCARD;

/* gw_grow for an array counted in uint32_t; -ENOMEM past UINT32_MAX items. */
static inline int gw_grow32(void *pp, uint32_t *cap, size_t need, size_t elem, size_t first)
{
    size_t c = *cap;
    if (need > UINT32_MAX)
        return -ENOMEM;
    int rc = gw_grow(pp, &c, need, elem, first);
    if (rc == 0)
        *cap = c > UINT32_MAX ? UINT32_MAX : (uint32_t)c; /* the array holds at least that */
    return rc;
}

/* Strips leading and trailing white space in place; returns the first
 * character kept (inside s). */
char *gw_str_trim(char *s);

#endif
