/* SPDX-License-Identifier: MIT */
/* gw_defs.h - attributes and small helpers shared by every coapgw module. */
#ifndef GW_DEFS_H
#define GW_DEFS_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define GW_NODISCARD __attribute__((warn_unused_result))
#define GW_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define GW_UNUSED __attribute__((unused))
#define GW_CACHELINE 64
#define GW_ALIGNED(n) __attribute__((aligned(n)))
#define gw_likely(x) __builtin_expect(!!(x), 1)
#define gw_unlikely(x) __builtin_expect(!!(x), 0)
#define GW_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define GW_MIN(a, b) ((a) < (b) ? (a) : (b))
#define GW_MAX(a, b) ((a) > (b) ? (a) : (b))
#define GW_STATIC_ASSERT(c, m) _Static_assert(c, m)
/* Deliberately ignores a GW_NODISCARD result (a cast to void does not, in gcc). */
#define GW_IGNORE(x)                                                                               \
    do {                                                                                           \
        if (x) {                                                                                   \
        }                                                                                          \
    } while (0)

/* Largest CoAP message the gateway accepts or emits (SPEC S3.5). */
#define GW_COAP_MAX_MSG 1152
/* Largest token (RFC 7252 section 3). */
#define GW_COAP_MAX_TOKEN 8
/* MAC IDs are 64-bit (16 hex digits, SPEC S4.2). */
#define GW_MAC_LEN 8

/* Exit status that tells the supervisor not to respawn (configuration errors). */
#define GW_EXIT_FATAL 78

#endif
