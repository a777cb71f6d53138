/* SPDX-License-Identifier: MIT */
/* sup_http.h - a minimal HTTP/1.0 responder for the Prometheus scrape (S10.2).
 *
 * One listening TCP socket on the supervisor's loop. Every connection gets
 * one answer and is closed: GET and HEAD go to the handler, which picks the
 * status by path (the supervisor serves /metrics, /healthz and /readyz and
 * answers 404 elsewhere); other methods get 405. Requests are bounded in
 * size (4 KiB of headers), time (5 s) and number (16 open connections; a
 * 17th closes the oldest), so a hostile client cannot hold the supervisor
 * or keep the scraper out. */
#ifndef SUP_HTTP_H
#define SUP_HTTP_H

#include "gw_defs.h"

#include <stddef.h>
#include <uv.h>

#define SUP_HTTP_MAX_CONNS 16
#define SUP_HTTP_MAX_REQUEST 4096
#define SUP_HTTP_TIMEOUT_MS 5000

/* Answers GET/HEAD of `path` (the request target, query removed): returns a
 * malloc'd body (length in *len) and sets *status (200, 404, 503 ...) and
 * *ctype, or returns NULL (answered with 500). */
typedef char *(*sup_http_render_fn)(void *ctx, const char *path, int *status, const char **ctype,
                                    size_t *len);

struct sup_http;

/* Binds listen ("127.0.0.1:9683", "[::1]:9683", or a bare address with the
 * default port 9683) and starts accepting.
 * [out] out  the server, stopped and freed with sup_http_close().
 * [out] err  on failure, a message naming the call and address.
 * Returns 0, -EINVAL for an unparsable address, or a UV_* error. */
int sup_http_start(uv_loop_t *loop, const char *listen, sup_http_render_fn render, void *ctx,
                   struct sup_http **out, char *err, size_t errlen) GW_NODISCARD;

/* Closes the listener and every open connection; memory is released from
 * the close callbacks, so run the loop afterwards. NULL is a no-op. */
void sup_http_close(struct sup_http *h);

#endif
