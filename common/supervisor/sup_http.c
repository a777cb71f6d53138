/* SPDX-License-Identifier: MIT */
/* sup_http.c - see sup_http.h. */
#include "sup_http.h"
#include "gw_addr.h"
#include "gw_dlist.h"
#include "gw_log.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sup_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wr;
    struct sup_http *srv;
    struct gw_dnode node; /* in srv->conns, newest first */
    char req[SUP_HTTP_MAX_REQUEST];
    size_t len;
    char *resp;
    int pending_closes;
    bool answered, closing;
};

struct sup_http {
    uv_tcp_t listener;
    sup_http_render_fn render;
    void *ctx;
    struct gw_dlist conns;
    int nconns;
    bool closing;
};

static void srv_closed(uv_handle_t *h)
{
    free(h->data);
}

static void conn_closed(uv_handle_t *h)
{
    struct sup_http_conn *c = h->data;
    if (--c->pending_closes > 0)
        return;
    free(c->resp);
    free(c);
}

static void conn_close(struct sup_http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    struct sup_http *s = c->srv;
    gw_dlist_remove(&s->conns, &c->node);
    s->nconns--;
    c->pending_closes = 2;
    uv_close((uv_handle_t *)&c->timer, conn_closed);
    uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

static void on_written(uv_write_t *w, int status)
{
    conn_close(w->data);
}

static void answer(struct sup_http_conn *c)
{
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    bool get = c->len >= 4 && !memcmp(c->req, "GET ", 4);
    bool head = c->len >= 5 && !memcmp(c->req, "HEAD ", 5);
    char *body = NULL;
    size_t blen = 0;
    int code = 200;
    const char *ctype = "text/plain; charset=utf-8";
    if (get || head) {
        /* The target: from after the method to the next blank, without a query. */
        char path[256];
        const char *p = c->req + (get ? 4 : 5);
        size_t n = strcspn(p, " ?\r\n");
        if (n >= sizeof(path))
            n = sizeof(path) - 1;
        memcpy(path, p, n);
        path[n] = '\0';
        body = c->srv->render(c->srv->ctx, path, &code, &ctype, &blen);
        if (!body) {
            code = 500;
            ctype = "text/plain";
        }
    } else {
        code = 405;
        ctype = "text/plain";
    }
    const char *status = code == 200   ? "200 OK"
                         : code == 404 ? "404 Not Found"
                         : code == 405 ? "405 Method Not Allowed"
                         : code == 503 ? "503 Service Unavailable"
                                       : "500 Internal Server Error";
    char hdr[256];
    int hl = snprintf(
        hdr, sizeof(hdr),
        "HTTP/1.0 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%sConnection: close\r\n\r\n",
        status, ctype, body ? blen : 0, get || head ? "" : "Allow: GET, HEAD\r\n");
    size_t send_body = get && body ? blen : 0;
    c->resp = malloc((size_t)hl + send_body);
    if (!c->resp) {
        free(body);
        conn_close(c);
        return;
    }
    memcpy(c->resp, hdr, (size_t)hl);
    if (send_body)
        memcpy(c->resp + hl, body, send_body);
    free(body);
    uv_buf_t b = uv_buf_init(c->resp, (unsigned)((size_t)hl + send_body));
    c->wr.data = c;
    if (uv_write(&c->wr, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0)
        conn_close(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct sup_http_conn *c = h->data;
    /* Keep one byte for the terminator used by strstr below. */
    size_t room = sizeof(c->req) - 1 - c->len;
    *buf = uv_buf_init(c->req + c->len, (unsigned)room);
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct sup_http_conn *c = st->data;
    if (c->answered || c->closing)
        return;
    if (n < 0) {
        /* EOF after a partial request: answer what we have (an HTTP/0.9-ish
         * "GET /"), otherwise just close. */
        if (n == UV_EOF && c->len > 0)
            answer(c);
        else
            conn_close(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (strstr(c->req, "\r\n\r\n") || strstr(c->req, "\n\n") || c->len >= sizeof(c->req) - 1)
        answer(c);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct sup_http *s = l->data;
    if (status < 0 || s->closing)
        return;
    struct sup_http_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->srv = s;
    uv_tcp_init(l->loop, &c->tcp);
    uv_timer_init(l->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    gw_dlist_push_head(&s->conns, &c->node);
    s->nconns++;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c);
        return;
    }
    if (s->nconns > SUP_HTTP_MAX_CONNS) {
        /* Drop the oldest (the list's tail), so that idle connections
         * cannot keep a scraper out for longer than it takes to open new ones. */
        conn_close(GW_DLIST_ITEM(s->conns.tail, struct sup_http_conn, node));
    }
    uv_timer_start(&c->timer, on_timeout, SUP_HTTP_TIMEOUT_MS, 0);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        conn_close(c);
}

int sup_http_start(uv_loop_t *loop, const char *listen, sup_http_render_fn render, void *ctx,
                   struct sup_http **out, char *err, size_t errlen)
{
    *out = NULL;
    struct gw_ep ep;
    if (gw_ep_parse(listen, 9683, &ep) != 0) {
        snprintf(err, errlen, "metrics_listen: '%s' is not address:port", listen);
        return -EINVAL;
    }
    struct sockaddr_storage ss;
    gw_ep_to_sa(&ep, &ss);
    struct sup_http *s = calloc(1, sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    s->render = render;
    s->ctx = ctx;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    int rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 64, on_connection);
    if (rc != 0) {
        snprintf(err, errlen, "metrics_listen %s: bind/listen: %s", listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, srv_closed);
        return rc;
    }
    *out = s;
    return 0;
}

void sup_http_close(struct sup_http *s)
{
    if (!s || s->closing)
        return;
    s->closing = true;
    while (s->conns.head)
        conn_close(GW_DLIST_ITEM(s->conns.head, struct sup_http_conn, node));
    uv_close((uv_handle_t *)&s->listener, srv_closed);
}
