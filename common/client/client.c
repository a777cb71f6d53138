/* SPDX-License-Identifier: MIT */
/* client.c - the I/O of `coapgw client`: libcoap's client API, the state
 * file and the lock around it, output. The logic it calls is pure and unit
 * tested (cl_uri, cl_conf, cl_state, cl_resp).
 *
 * Block2 is done here by hand, not with coap_context_set_block_mode():
 * libcoap 4.3.1 sets up its large-body receive state for a CON request only
 * from the request it finds in its retransmission queue when the response
 * arrives. The gateway ACKs proxied requests at once (S3.1), which empties
 * that queue, so the separate response carrying Block2 finds no request,
 * is logged as "large body receive internal issue" and dropped, and the
 * transfer hangs (coap-client -b shows it against the gateway). So the
 * client asks for each next block itself: the same request with Block2
 * NUM+1 and a fresh token, which works for proxied and local resources
 * alike (RFC 7959 2.4). Observe is tracked by hand for the same reason
 * (libcoap only tracks it in block mode), and so is Block1 for bodies too
 * large for one message (to the gateway's own resources only: S4.7). */
#include "client.h"
#include "cl_conf.h"
#include "cl_resp.h"
#include "cl_state.h"
#include "cl_uri.h"
#include "gw_error.h"

#include <coap3/coap.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CODE(c, d) ((uint8_t)((c) << 5 | (d)))
#define CLASS(code) ((code) >> 5)

/* Set by SIGINT/SIGTERM. A signal handler can reach no context, so this
 * flag is the one global; the loops poll it between coap_io_process calls. */
static volatile sig_atomic_t cl_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    cl_interrupted = 1;
}

/* Outcomes of one exchange besides a response. */
enum { XR_OK = 0, XR_TIMEOUT = 1, XR_UNREACH, XR_RST, XR_INTR, XR_SEND };

#define OBS_QUEUE 8

struct cl {
    struct cl_conf conf;
    struct cl_args args;
    struct cl_state st;
    char state_path[CL_PATH_MAX + 300];
    bool state_dirty;
    char gw_host[256];
    uint16_t gw_port;
    char token[CL_TOKEN_MAX]; /* the JWT, "" when none was given */
    coap_context_t *ctx;
    coap_session_t *sess;
    uint16_t mid;
    /* the exchange in progress */
    uint8_t tok[8];
    bool waiting; /* a response to tok is awaited */
    bool got;
    bool dereg; /* awaiting the answer to a GET with Observe: 1 */
    coap_mid_t sent_mid;
    int nack; /* -1, or a coap_nack_reason_t */
    struct cl_resp *out;
    double t0;
    /* observing: notifications for obs_tok, queued by the handler */
    bool observing;
    uint8_t obs_tok[8];
    struct cl_resp obsq[OBS_QUEUE];
    unsigned obs_n;
    uint32_t obs_last; /* last Observe number accepted (RFC 7641 3.4) */
    double obs_last_t;
    double obs_t0; /* when the registration was sent */
    bool obs_any;
};

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int64_t wall_s(void)
{
    return (int64_t)time(NULL);
}

/* One clear line on stderr. */
static void say(const char *fmt, ...) GW_PRINTF(1, 2);
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("coapgw client: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* ---- libcoap handlers ---- */

static void copy_pdu(const coap_pdu_t *pdu, struct cl_resp *r, double t0)
{
    cl_resp_clear(r);
    r->code = (uint8_t)coap_pdu_get_code(pdu);
    r->type = (uint8_t)coap_pdu_get_type(pdu);
    r->mid = (uint16_t)coap_pdu_get_mid(pdu);
    coap_opt_iterator_t it;
    coap_opt_t *o;
    coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
    while ((o = coap_option_next(&it)) != NULL)
        if (cl_resp_add_opt(r, it.number, coap_opt_value(o), coap_opt_length(o)) != 0)
            break; /* more than a response can hold: the rest is not reported */
    size_t len;
    const uint8_t *data;
    if (coap_get_data(pdu, &len, &data) && len)
        GW_IGNORE(cl_resp_body(r, data, len, false, len));
    r->elapsed_ms = now_ms() - t0;
}

static bool obs_fresh(struct cl *c, uint32_t v, double t)
{
    return !c->obs_any || cl_obs_newer(c->obs_last, c->obs_last_t, v, t);
}

static coap_response_t on_response(coap_session_t *session, const coap_pdu_t *sent,
                                   const coap_pdu_t *rcvd, const coap_mid_t mid)
{
    (void)sent;
    (void)mid;
    struct cl *c = coap_session_get_app_data(session);
    coap_bin_const_t tok = coap_pdu_get_token(rcvd);
    bool ours =
        c->waiting && tok.length == sizeof(c->tok) && !memcmp(tok.s, c->tok, sizeof(c->tok));
    bool obs = c->observing && tok.length == sizeof(c->obs_tok) &&
               !memcmp(tok.s, c->obs_tok, sizeof(c->obs_tok));
    if (ours && c->dereg) {
        /* A notification still on its way is not the answer to the
         * deregistration: that one carries no Observe option. */
        coap_opt_iterator_t it;
        if (coap_check_option(rcvd, COAP_OPTION_OBSERVE, &it) &&
            !(coap_pdu_get_type(rcvd) == COAP_MESSAGE_ACK && coap_pdu_get_mid(rcvd) == c->sent_mid))
            return COAP_RESPONSE_OK;
    }
    if (ours) {
        copy_pdu(rcvd, c->out, c->t0);
        c->waiting = false;
        c->got = true;
        return COAP_RESPONSE_OK;
    }
    if (obs) {
        coap_opt_iterator_t it;
        coap_opt_t *o = coap_check_option(rcvd, COAP_OPTION_OBSERVE, &it);
        double t = now_ms();
        if (o) {
            uint32_t v = coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o));
            if (!obs_fresh(c, v, t))
                return COAP_RESPONSE_OK; /* older than the last: dropped, still ACKed */
            c->obs_last = v;
            c->obs_last_t = t;
            c->obs_any = true;
        }
        if (c->obs_n == OBS_QUEUE) {
            /* Only the newest state matters (RFC 7641 1.3): drop the oldest. */
            cl_resp_clear(&c->obsq[0]);
            memmove(&c->obsq[0], &c->obsq[1], sizeof(c->obsq[0]) * (OBS_QUEUE - 1));
            memset(&c->obsq[OBS_QUEUE - 1], 0, sizeof(c->obsq[0]));
            c->obs_n--;
        }
        /* elapsed_ms of a notification counts from the registration */
        copy_pdu(rcvd, &c->obsq[c->obs_n++], c->obs_t0);
        return COAP_RESPONSE_OK;
    }
    /* A late answer from an earlier invocation on this port, or a
     * notification nobody here observes: RST tells the gateway (S6.4). */
    if (c->args.verbose)
        fprintf(stderr, "   (ignored a %u.%02u for another token: RST)\n",
                (unsigned)CLASS(coap_pdu_get_code(rcvd)), (unsigned)(coap_pdu_get_code(rcvd) & 31));
    return COAP_RESPONSE_FAIL;
}

static void on_nack(coap_session_t *session, const coap_pdu_t *sent,
                    const coap_nack_reason_t reason, const coap_mid_t id)
{
    (void)sent;
    struct cl *c = coap_session_get_app_data(session);
    if (id == c->sent_mid && c->nack < 0)
        c->nack = (int)reason;
    else if (reason == COAP_NACK_ICMP_ISSUE && c->nack < 0 && c->waiting)
        c->nack = (int)reason;
}

/* ---- sending ---- */

struct cl_req {
    uint8_t method; /* 0 = empty (ping) */
    const struct cl_target *target;
    const uint8_t *payload;
    size_t len;
    int format;  /* -1 = none */
    int observe; /* -1 = none, 0 register, 1 deregister */
    bool block;  /* send Block2 */
    struct cl_block b2;
    bool block1; /* send Block1 (b1), and Size1 (size1) on its first block */
    struct cl_block b1;
    size_t size1;
    const uint8_t *fixed_tok; /* reuse this token (deregistration), else a fresh one */
};

static void new_token(uint8_t tok[8])
{
    if (getrandom(tok, 8, 0) != 8) {
        /* Only unique per invocation is needed; mix the time and pid. */
        uint64_t x = (uint64_t)now_ms() * 1000003u ^ (uint64_t)getpid() << 32;
        memcpy(tok, &x, 8);
    }
}

static const char *method_name(uint8_t m)
{
    return m == 1 ? "GET" : m == 2 ? "POST" : m == 3 ? "PUT" : m == 4 ? "DELETE" : "ping";
}

static void print_target(FILE *f, const struct cl_target *t)
{
    if (t->kind == CL_TARGET_DEVICE) {
        fputs(t->proxy_uri, f);
        return;
    }
    for (unsigned i = 0; i < t->nseg; i++)
        fprintf(f, "/%.*s", (int)t->seg[i].len, (const char *)t->buf + t->seg[i].off);
    for (unsigned i = 0; i < t->nquery; i++)
        fprintf(f, "%c%.*s", i ? '&' : '?', (int)t->query[i].len,
                (const char *)t->buf + t->query[i].off);
}

/* Sends one request and waits for its answer (into out), a NACK, the
 * timeout or a signal. Returns XR_*. */
/* An option holding v as a CoAP uint (RFC 7252 3.2); 1 when added. */
static int add_opt_uint(coap_pdu_t *pdu, uint16_t num, unsigned v)
{
    uint8_t buf[4];
    return coap_add_option(pdu, num, coap_encode_var_safe(buf, sizeof(buf), v), buf) != 0;
}

/* One option `num` per part of t (Uri-Path segments or Uri-Query items); 1 when all added. */
static int add_opt_parts(coap_pdu_t *pdu, uint16_t num, const struct cl_target *t,
                         const struct cl_part *parts, unsigned n)
{
    int ok = 1;
    for (unsigned i = 0; i < n; i++)
        ok &= coap_add_option(pdu, num, parts[i].len, t->buf + parts[i].off) != 0;
    return ok;
}

static int exchange(struct cl *c, const struct cl_req *rq, struct cl_resp *out)
{
    uint16_t mid = c->mid++;
    c->state_dirty = true;
    coap_pdu_t *pdu =
        coap_pdu_init(COAP_MESSAGE_CON, rq->method, mid, coap_session_max_pdu_size(c->sess));
    if (!pdu) {
        say("out of memory");
        return XR_SEND;
    }
    int ok = 1;
    if (rq->method) {
        if (rq->fixed_tok)
            memcpy(c->tok, rq->fixed_tok, sizeof(c->tok));
        else
            new_token(c->tok);
        ok &= coap_add_token(pdu, sizeof(c->tok), c->tok);
        const struct cl_target *t = rq->target;
        /* Options in increasing number (RFC 7252 3.1). */
        bool local = t->kind == CL_TARGET_LOCAL;
        if (rq->observe >= 0)
            ok &= add_opt_uint(pdu, COAP_OPTION_OBSERVE, (unsigned)rq->observe);
        ok &= add_opt_parts(pdu, COAP_OPTION_URI_PATH, t, t->seg, local ? t->nseg : 0);
        if (rq->format >= 0)
            ok &= add_opt_uint(pdu, COAP_OPTION_CONTENT_FORMAT, (unsigned)rq->format);
        ok &= add_opt_parts(pdu, COAP_OPTION_URI_QUERY, t, t->query, local ? t->nquery : 0);
        if (rq->block) {
            uint8_t bb[3];
            size_t bl = cl_block_encode(&rq->b2, bb);
            ok &= coap_add_option(pdu, COAP_OPTION_BLOCK2, bl, bb) != 0;
        }
        if (rq->block1) {
            uint8_t bb[3];
            size_t bl = cl_block_encode(&rq->b1, bb);
            ok &= coap_add_option(pdu, COAP_OPTION_BLOCK1, bl, bb) != 0;
        }
        if (t->kind == CL_TARGET_DEVICE)
            ok &= coap_add_option(pdu, COAP_OPTION_PROXY_URI, strlen(t->proxy_uri),
                                  (const uint8_t *)t->proxy_uri) != 0;
        if (rq->block1 && rq->b1.num == 0)
            ok &= add_opt_uint(pdu, COAP_OPTION_SIZE1, (unsigned)rq->size1);
        if (rq->len)
            ok &= coap_add_data(pdu, rq->len, rq->payload);
    }
    if (!ok) {
        coap_delete_pdu(pdu);
        say("the request does not fit in one CoAP message (%zu bytes of payload; the gateway takes %d bytes "
            "in all)",
            rq->len, GW_COAP_MAX_MSG);
        return XR_SEND;
    }
    if (c->args.verbose) {
        fprintf(stderr, "-> %s ", method_name(rq->method));
        if (rq->method)
            print_target(stderr, rq->target);
        fprintf(stderr, " via %s from port %u (mid 0x%04x", c->conf.gateway,
                (unsigned)c->conf.local_port, mid);
        if (rq->observe >= 0)
            fprintf(stderr, ", Observe %d", rq->observe);
        if (rq->block)
            fprintf(stderr, ", Block2 %u/%u", rq->b2.num, 16u << rq->b2.szx);
        if (rq->block1)
            fprintf(stderr, ", Block1 %u/%s/%u", rq->b1.num, rq->b1.more ? "M" : "-",
                    16u << rq->b1.szx);
        fprintf(stderr, ", %zu bytes)\n", rq->len);
    }
    if (rq->observe == 0) {
        /* Notifications may come while later requests (Block2, a retry)
         * are in flight: they are recognised by this token from now on. */
        memcpy(c->obs_tok, c->tok, sizeof(c->tok));
        c->observing = true;
    }
    c->out = out;
    c->got = false;
    c->nack = -1;
    c->waiting = rq->method != 0;
    c->t0 = now_ms();
    c->sent_mid = coap_send(c->sess, pdu);
    if (c->sent_mid == COAP_INVALID_MID) {
        c->waiting = false;
        say("could not send to %s", c->conf.gateway);
        return XR_UNREACH;
    }
    double deadline = c->t0 + (double)c->conf.timeout_ms;
    int rc = XR_TIMEOUT;
    for (;;) {
        if (c->got) {
            rc = XR_OK;
            break;
        }
        if (c->nack >= 0) {
            rc = c->nack == COAP_NACK_RST                ? XR_RST
                 : c->nack == COAP_NACK_TOO_MANY_RETRIES ? XR_TIMEOUT
                                                         : XR_UNREACH;
            break;
        }
        if (cl_interrupted) {
            rc = XR_INTR;
            break;
        }
        double left = deadline - now_ms();
        if (left <= 0)
            break;
        coap_io_process(c->ctx, (uint32_t)(left < 200 ? left + 1 : 200));
    }
    c->waiting = false;
    c->dereg = false;
    return rc;
}

/* Follows Block2 from a first answer in out: asks for each next block with
 * the same request (RFC 7959 2.4) until the last. Returns XR_*; on a
 * transfer that goes wrong out holds the error answer (code 4.xx/5.xx) or
 * XR_SEND after a line on stderr. */
static int follow_blocks(struct cl *c, const struct cl_req *rq0, struct cl_resp *out)
{
    const struct cl_opt *o = cl_resp_opt(out, COAP_OPTION_BLOCK2);
    if (!o || CLASS(out->code) != 2)
        return XR_OK;
    struct cl_block b, next;
    if (!cl_block_decode(out->optbuf + o->off, o->len, &b))
        return XR_OK;
    double t0 = now_ms() - out->elapsed_ms;
    int rc = cl_block_add(out, &b, out->body, out->len, (size_t)c->conf.max_body, &next);
    /* The same request again with Block2 NUM (the gateway keys a kept
     * answer by method and path), without the body it already has. The rest
     * of a notification is read with plain GETs (the caller says so). */
    struct cl_req rq = *rq0;
    rq.observe = -1;
    rq.fixed_tok = NULL;
    rq.payload = NULL;
    rq.len = 0;
    rq.format = -1;
    rq.block1 = false;
    struct cl_resp part = { 0 };
    while (rc == 1) {
        rq.block = true;
        rq.b2 = next;
        int x = exchange(c, &rq, &part);
        if (x != XR_OK) {
            cl_resp_clear(&part);
            return x;
        }
        o = cl_resp_opt(&part, COAP_OPTION_BLOCK2);
        if (CLASS(part.code) != 2) {
            /* The transfer failed (e.g. 4.08): report that answer. */
            cl_resp_clear(out);
            *out = part;
            return XR_OK;
        }
        if (!o || !cl_block_decode(part.optbuf + o->off, o->len, &b) || b.num != next.num) {
            rc = GW_EBADMSG;
            break;
        }
        rc = cl_block_add(out, &b, part.body, part.len, (size_t)c->conf.max_body, &next);
        cl_resp_clear(&part);
    }
    cl_resp_clear(&part);
    out->elapsed_ms = now_ms() - t0;
    /* The body is whole now: its first block's Block2 option no longer
     * describes it (Size2 still does). */
    for (unsigned i = 0; rc == 0 && i < out->nopt; i++)
        if (out->opt[i].num == COAP_OPTION_BLOCK2) {
            memmove(&out->opt[i], &out->opt[i + 1], sizeof(out->opt[0]) * (out->nopt - i - 1));
            out->nopt--;
            break;
        }
    if (rc == GW_ETOOBIG) {
        say("the body is larger than max_body (%lld bytes)", (long long)c->conf.max_body);
        return XR_SEND;
    }
    if (rc < 0) {
        say("the gateway sent a Block2 block out of order; the body is incomplete");
        return XR_SEND;
    }
    return XR_OK;
}

/* Sends a body too large for one message to a gateway resource in Block1
 * blocks of 1024 bytes (RFC 7959 2.5, S8.2), each answered 2.31 Continue
 * but the last; a smaller block size in an answer is followed. Devices take
 * no block-wise transfer (S4.7), so proxied bodies never come here. */
static int send_blocks1(struct cl *c, const struct cl_req *rq0, struct cl_resp *out)
{
    struct cl_req rq = *rq0;
    uint8_t szx = 6;
    size_t off = 0;
    /* Bounded: every round sends at least 16 bytes. */
    for (size_t round = 0; round <= rq0->len / 16 + 1; round++) {
        size_t size = (size_t)16 << szx;
        size_t n = GW_MIN(size, rq0->len - off);
        rq.payload = rq0->payload + off;
        rq.len = n;
        rq.block1 = true;
        rq.b1 = (struct cl_block){ (uint32_t)(off / size), off + n < rq0->len, szx };
        rq.size1 = rq0->len;
        int x = exchange(c, &rq, out);
        if (x != XR_OK || !rq.b1.more)
            return x;
        if (out->code != CODE(2, 31))
            return XR_OK; /* the gateway's error (4.13, 4.08 ...) is the answer */
        const struct cl_opt *o = cl_resp_opt(out, COAP_OPTION_BLOCK1);
        struct cl_block ack;
        if (o && cl_block_decode(out->optbuf + o->off, o->len, &ack) && ack.szx < szx)
            szx = ack.szx;
        off += n;
    }
    say("the gateway did not take the body in blocks");
    return XR_SEND;
}

static int fetch(struct cl *c, const struct cl_req *rq0, struct cl_resp *out)
{
    struct cl_req rq = *rq0;
    if (rq.method && rq.target->kind == CL_TARGET_LOCAL && rq.len > 1024) {
        int x = send_blocks1(c, &rq, out);
        if (x == XR_OK) {
            rq.block1 = false;
            x = follow_blocks(c, &rq, out);
        }
        return x;
    }
    if (c->conf.block_size && rq.method == COAP_REQUEST_CODE_GET && !rq.block) {
        /* Block2 NUM 0 in a request is a size preference (RFC 7959 2.4, S4.7). */
        rq.block = true;
        rq.b2 = (struct cl_block){ 0, false,
                                   (uint8_t)(__builtin_ctz((unsigned)c->conf.block_size) - 4) };
    }
    int x = exchange(c, &rq, out);
    if (x == XR_OK && c->args.verbose > 0 && cl_resp_opt(out, COAP_OPTION_BLOCK2))
        cl_resp_verbose(stderr, out);
    if (x == XR_OK)
        x = follow_blocks(c, &rq, out);
    return x;
}

/* ---- output ---- */

static int report_x(struct cl *c, int x)
{
    switch (x) {
    case XR_TIMEOUT:
        say("no answer from %s within %.1f s", c->conf.gateway,
            (double)c->conf.timeout_ms / 1000.0);
        return CL_EXIT_TIMEOUT;
    case XR_UNREACH:
        say("gateway %s is unreachable (nothing listens on that port?)", c->conf.gateway);
        return CL_EXIT_TIMEOUT;
    case XR_RST:
        say("gateway %s reset the request (RST)", c->conf.gateway);
        return CL_EXIT_COAP;
    case XR_INTR:
        say("interrupted before an answer");
        return CL_EXIT_TIMEOUT;
    default:
        return CL_EXIT_USAGE;
    }
}

static int print_json(json_t *o)
{
    if (!o)
        return -ENOMEM;
    char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(6));
    json_decref(o);
    if (!s)
        return -ENOMEM;
    int rc = fprintf(stdout, "%s\n", s) < 0 || fflush(stdout) != 0 ? -EIO : 0;
    free(s);
    return rc;
}

/* Prints a response: the payload on stdout for 2.xx (observe: one line
 * each), the code and diagnostic on stderr otherwise; --json: the object
 * on stdout. Returns the exit status it stands for. */
static int print_resp(struct cl *c, const struct cl_resp *r, bool line)
{
    if (c->args.verbose)
        cl_resp_verbose(stderr, r);
    bool ok = CLASS(r->code) == 2;
    if (c->args.json) {
        if (print_json(cl_resp_json(r)) != 0)
            say("writing the output failed");
    } else if (ok) {
        /* Exactly the payload into a pipe or file; a terminal also gets a
         * line end, so that the prompt does not follow the value. */
        bool nl = line || (r->len && r->body[r->len - 1] != '\n' && isatty(STDOUT_FILENO));
        if ((r->len && fwrite(r->body, 1, r->len, stdout) != r->len) ||
            (nl && fputc('\n', stdout) == EOF) || fflush(stdout) != 0)
            say("writing the output failed");
    }
    if (!ok) {
        bool text = r->len && cl_utf8_text(r->body, r->len);
        fprintf(stderr, "coapgw client: %u.%02u %s%s%.*s\n", (unsigned)CLASS(r->code),
                (unsigned)(r->code & 31), cl_code_name(r->code), text ? ": " : "",
                text ? (int)r->len : 0, text ? (const char *)r->body : "");
        return CL_EXIT_COAP;
    }
    return CL_EXIT_OK;
}

/* ---- sessions ---- */

static void save_state(struct cl *c)
{
    c->st.next_mid = c->mid;
    int rc = cl_state_save(c->state_path, &c->st);
    if (rc)
        say("cannot write the state file %s: %s (the session is not kept)", c->state_path,
            strerror(-rc));
    c->state_dirty = false;
}

static bool have_token(const struct cl *c)
{
    return c->token[0] != '\0';
}

/* POST /sessions with the token (S2.1). Returns an exit status; 0 with the
 * session recorded in the state file. */
static int open_session(struct cl *c)
{
    if (!have_token(c)) {
        say("no session for %s from port %u, and no token to open one: give --token or --token-file "
            "(coapgw token --account NAME)",
            c->conf.gateway, (unsigned)c->conf.local_port);
        return CL_EXIT_USAGE;
    }
    char uri[64];
    snprintf(uri, sizeof(uri), "/sessions?security=%s%s", c->conf.security,
             c->conf.sticky ? "&sticky=true" : "");
    struct cl_target t;
    char err[256];
    if (cl_target_parse(uri, &t, err, sizeof(err)) != 0) {
        say("%s", err);
        return CL_EXIT_USAGE;
    }
    struct cl_req rq = { .method = COAP_REQUEST_CODE_POST,
                         .target = &t,
                         .payload = (const uint8_t *)c->token,
                         .len = strlen(c->token),
                         .format = -1,
                         .observe = -1 };
    struct cl_resp r = { 0 };
    int x = fetch(c, &rq, &r); /* a long token goes in Block1 blocks */
    if (x != XR_OK) {
        cl_resp_clear(&r);
        return report_x(c, x);
    }
    if (c->args.verbose)
        cl_resp_verbose(stderr, &r);
    if (r.code != CODE(2, 1)) {
        bool text = r.len && cl_utf8_text(r.body, r.len);
        say("opening a session failed: %u.%02u %s%s%.*s", (unsigned)CLASS(r.code),
            (unsigned)(r.code & 31), cl_code_name(r.code), text ? ": " : "", text ? (int)r.len : 0,
            text ? (const char *)r.body : "");
        cl_resp_clear(&r);
        return CL_EXIT_COAP;
    }
    char segs[4][64];
    const char *loc[4];
    unsigned nloc = 0;
    for (unsigned i = 0; i < r.nopt && nloc < 4; i++)
        if (r.opt[i].num == COAP_OPTION_LOCATION_PATH) {
            snprintf(segs[nloc], sizeof(segs[nloc]), "%.*s", (int)r.opt[i].len,
                     (const char *)r.optbuf + r.opt[i].off);
            loc[nloc] = segs[nloc];
            nloc++;
        }
    int rc = cl_state_from_session(&c->st, loc, nloc, r.body, r.len, err, sizeof(err));
    cl_resp_clear(&r);
    if (rc) {
        say("%s", err);
        return CL_EXIT_COAP;
    }
    if (c->args.verbose)
        fprintf(stderr, "   session %s opened for account %s\n", c->st.id, c->st.account);
    save_state(c);
    return CL_EXIT_OK;
}

/* A request on the session: opens one first when none is live and the
 * target needs it, and on 4.01 re-opens once and retries once (S10.5).
 * Returns XR_* (and an exit status in *exit_code when it is not XR_OK). */
static int request(struct cl *c, const struct cl_req *rq, bool needs_session, struct cl_resp *out,
                   int *exit_code)
{
    *exit_code = CL_EXIT_OK;
    if (needs_session && !cl_state_live(&c->st, wall_s())) {
        int e = open_session(c);
        if (e) {
            *exit_code = e;
            return XR_SEND;
        }
    }
    int x = fetch(c, rq, out);
    if (x == XR_OK && out->code == CODE(4, 1) && have_token(c)) {
        if (c->args.verbose)
            fprintf(stderr, "   4.01: the gateway no longer knows the session; re-opening it\n");
        c->st.id[0] = '\0';
        int e = open_session(c);
        if (e) {
            *exit_code = e;
            return XR_SEND;
        }
        x = fetch(c, rq, out);
    }
    if (x == XR_OK && out->code == CODE(4, 1) && !have_token(c))
        say("the gateway no longer knows this port's session; give --token or --token-file to open a new one");
    if (x != XR_OK && x != XR_SEND)
        *exit_code = report_x(c, x);
    else if (x == XR_SEND)
        *exit_code = *exit_code ? *exit_code : CL_EXIT_USAGE;
    return x;
}

static void print_state(struct cl *c, bool live)
{
    if (c->args.json) {
        json_t *o = cl_state_json(&c->st);
        if (o) {
            json_object_del(o, "next_mid");
            json_object_set_new(o, "live", json_boolean(live));
            json_object_set_new(o, "state_file", json_string(c->state_path));
        }
        if (print_json(o) != 0)
            say("writing the output failed");
        return;
    }
    const struct cl_state *s = &c->st;
    printf("session     %s\naccount     %s\nsecurity    %s\nsticky      %s\n", s->id, s->account,
           s->security, s->sticky ? "true" : "false");
    if (s->expires)
        printf("expires     %lld (in %lld s)\n", (long long)s->expires,
               (long long)(s->expires - wall_s()));
    printf("gateway     %s\nlocal_port  %u\nstate_file  %s\n", s->gateway, (unsigned)s->local_port,
           c->state_path);
    fflush(stdout);
}

static int cmd_session_show(struct cl *c)
{
    if (!c->st.id[0]) {
        say("no session recorded for %s from port %u (%s)", c->conf.gateway,
            (unsigned)c->conf.local_port, c->state_path);
        return CL_EXIT_COAP;
    }
    bool live = cl_state_live(&c->st, wall_s());
    print_state(c, live);
    return live ? CL_EXIT_OK : CL_EXIT_COAP;
}

static int cmd_session_open(struct cl *c)
{
    if (cl_state_live(&c->st, wall_s())) {
        /* Reuse it when the gateway still knows it (GET /sessions/<id>). */
        char uri[80];
        snprintf(uri, sizeof(uri), "/sessions/%s", c->st.id);
        struct cl_target t;
        char err[256];
        if (cl_target_parse(uri, &t, err, sizeof(err)) == 0) {
            struct cl_req rq = {
                .method = COAP_REQUEST_CODE_GET, .target = &t, .format = -1, .observe = -1
            };
            struct cl_resp r = { 0 };
            int x = exchange(c, &rq, &r);
            if (c->args.verbose && x == XR_OK)
                cl_resp_verbose(stderr, &r);
            bool alive = x == XR_OK && CLASS(r.code) == 2;
            cl_resp_clear(&r);
            if (x != XR_OK)
                return report_x(c, x);
            if (alive) {
                print_state(c, true);
                return CL_EXIT_OK;
            }
        }
        c->st.id[0] = '\0';
    }
    int e = open_session(c);
    if (e)
        return e;
    print_state(c, true);
    return CL_EXIT_OK;
}

static int cmd_session_close(struct cl *c)
{
    /* The id form is the documented one (S2.7); the bare form ends
     * whatever session this address and port hold. */
    char uri[80];
    snprintf(uri, sizeof(uri), "/sessions%s%s", c->st.id[0] ? "/" : "", c->st.id);
    struct cl_target t;
    char err[256];
    if (cl_target_parse(uri, &t, err, sizeof(err)) != 0) {
        say("%s", err);
        return CL_EXIT_USAGE;
    }
    struct cl_req rq = {
        .method = COAP_REQUEST_CODE_DELETE, .target = &t, .format = -1, .observe = -1
    };
    struct cl_resp r = { 0 };
    int x = exchange(c, &rq, &r);
    if (x != XR_OK) {
        cl_resp_clear(&r);
        return report_x(c, x);
    }
    /* Deleted, or the gateway has no such session any more: either way
     * there is none to keep. */
    if (CLASS(r.code) == 2 || r.code == CODE(4, 4) || r.code == CODE(4, 1)) {
        char gw[256];
        snprintf(gw, sizeof(gw), "%s", c->st.gateway);
        int32_t mid = c->st.next_mid;
        cl_state_init(&c->st, gw, c->conf.local_port);
        c->st.next_mid = mid;
        c->state_dirty = true;
    }
    int e = print_resp(c, &r, false);
    cl_resp_clear(&r);
    return e;
}

static int cmd_ping(struct cl *c)
{
    struct cl_req rq = { .method = 0, .format = -1, .observe = -1 };
    int x = exchange(c, &rq, NULL);
    double ms = now_ms() - c->t0;
    if (x == XR_RST) {
        if (c->args.json) {
            json_t *o = json_object();
            if (o) {
                json_object_set_new(o, "gateway", json_string(c->conf.gateway));
                json_object_set_new(o, "answer", json_string("RST"));
                json_object_set_new(o, "elapsed_ms",
                                    json_real((double)(int64_t)(ms * 1000) / 1000.0));
            }
            if (print_json(o) != 0)
                say("writing the output failed");
        } else {
            printf("RST from %s in %.1f ms\n", c->conf.gateway, ms);
            fflush(stdout);
        }
        return CL_EXIT_OK;
    }
    if (x == XR_OK)
        return CL_EXIT_OK;
    return report_x(c, x);
}

static int read_all(int fd, uint8_t **out, size_t *len, size_t max)
{
    size_t cap = 4096, n = 0;
    uint8_t *b = malloc(cap);
    if (!b)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            if (cap > max) {
                free(b);
                return GW_ETOOBIG;
            }
            uint8_t *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return -ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = -errno;
            free(b);
            return e;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > max) {
        free(b);
        return GW_ETOOBIG;
    }
    *out = b;
    *len = n;
    return 0;
}

/* Always deregister (S6.4): GET with Observe: 1 and the registration's
 * token, so that the gateway's observer count goes back down. A SIGINT may
 * have brought us here: the deregistration still runs (bounded by the
 * timeout). Returns 0, or an exit status when it was not answered. */
static int deregister(struct cl *c, const struct cl_target *t, const uint8_t tok[8])
{
    cl_interrupted = 0;
    c->observing = false;
    struct cl_req drq = {
        .method = COAP_REQUEST_CODE_GET, .target = t, .format = -1, .observe = 1, .fixed_tok = tok
    };
    struct cl_resp d = { 0 };
    c->dereg = true;
    int x = exchange(c, &drq, &d);
    if (x != XR_OK) {
        say("deregistration not answered: the gateway drops the observer when a notification is not acknowledged");
        cl_resp_clear(&d);
        return report_x(c, x);
    }
    if (c->args.verbose)
        cl_resp_verbose(stderr, &d);
    if (CLASS(d.code) != 2)
        say("deregistration answered %u.%02u %s", (unsigned)CLASS(d.code), (unsigned)(d.code & 31),
            cl_code_name(d.code));
    cl_resp_clear(&d);
    return 0;
}

static int cmd_observe(struct cl *c, const struct cl_target *t)
{
    struct cl_req rq = { .method = COAP_REQUEST_CODE_GET, .target = t, .format = -1, .observe = 0 };
    struct cl_resp r = { 0 };
    int e;
    int x = request(c, &rq, t->kind == CL_TARGET_DEVICE, &r, &e);
    if (x != XR_OK) {
        cl_resp_clear(&r);
        /* Interrupted (or timed out) after the registration went out: the
         * gateway may hold the observer already, so it is withdrawn. */
        if (c->observing) {
            uint8_t rtok[8];
            memcpy(rtok, c->obs_tok, sizeof(rtok));
            GW_IGNORE(deregister(c, t, rtok));
        }
        c->observing = false;
        return e;
    }
    /* The registration's token: notifications carry it. */
    uint8_t tok[8];
    memcpy(tok, c->obs_tok, sizeof(tok));
    uint32_t v;
    bool registered = CLASS(r.code) == 2 && cl_resp_uint(&r, COAP_OPTION_OBSERVE, &v);
    c->observing = registered;
    if (registered) {
        c->obs_last = v;
        c->obs_last_t = now_ms();
        c->obs_any = true;
        c->obs_t0 = c->t0;
    }
    e = print_resp(c, &r, true);
    cl_resp_clear(&r);
    if (!registered) {
        if (e == CL_EXIT_OK && c->args.verbose)
            fprintf(stderr,
                    "   the answer carries no Observe option: the resource is not observable\n");
        return e;
    }
    int64_t printed = 1;
    double end = c->args.duration_ms ? now_ms() + (double)c->args.duration_ms : 0;
    bool ended = false; /* the gateway ended the observation itself */
    bool failed = false;
    while (!cl_interrupted && !ended && !failed && (!c->args.count || printed < c->args.count)) {
        double left = end ? end - now_ms() : 200;
        if (left <= 0)
            break;
        if (!c->obs_n)
            coap_io_process(c->ctx, (uint32_t)(left < 200 ? left + 1 : 200));
        while (c->obs_n && !ended && (!c->args.count || printed < c->args.count)) {
            struct cl_resp n = c->obsq[0];
            memmove(&c->obsq[0], &c->obsq[1], sizeof(c->obsq[0]) * (OBS_QUEUE - 1));
            memset(&c->obsq[OBS_QUEUE - 1], 0, sizeof(c->obsq[0]));
            c->obs_n--;
            /* A notification cut into blocks: the rest with plain GETs. */
            struct cl_req brq = {
                .method = COAP_REQUEST_CODE_GET, .target = t, .format = -1, .observe = -1
            };
            int bx = follow_blocks(c, &brq, &n);
            if (bx != XR_OK) {
                cl_resp_clear(&n);
                e = report_x(c, bx);
                failed = true; /* still deregistered below */
                break;
            }
            if (CLASS(n.code) != 2 || !cl_resp_opt(&n, COAP_OPTION_OBSERVE))
                ended = true; /* RFC 7641 3.2: a final answer ends the observation */
            e = print_resp(c, &n, true);
            cl_resp_clear(&n);
            printed++;
        }
    }
    c->observing = false;
    for (unsigned i = 0; i < c->obs_n; i++)
        cl_resp_clear(&c->obsq[i]);
    c->obs_n = 0;
    if (ended)
        return e;
    int d = deregister(c, t, tok);
    return d ? d : e;
}

static int cmd_request(struct cl *c, const struct cl_target *t)
{
    static const uint8_t methods[] = {
        [CL_CMD_GET] = COAP_REQUEST_CODE_GET,
        [CL_CMD_DELETE] = COAP_REQUEST_CODE_DELETE,
        [CL_CMD_PUT] = COAP_REQUEST_CODE_PUT,
        [CL_CMD_POST] = COAP_REQUEST_CODE_POST,
    };
    struct cl_req rq = {
        .method = methods[c->args.cmd], .target = t, .format = c->args.format, .observe = -1
    };
    uint8_t *data = NULL;
    size_t len = 0;
    if (c->args.data && strcmp(c->args.data, "-")) {
        rq.payload = (const uint8_t *)c->args.data;
        rq.len = strlen(c->args.data);
    } else if (c->args.data || c->args.data_file) {
        int fd = c->args.data_file ? open(c->args.data_file, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
        if (fd < 0) {
            say("--data-file %s: %s", c->args.data_file, strerror(errno));
            return CL_EXIT_USAGE;
        }
        int rc = read_all(fd, &data, &len, (size_t)c->conf.max_body);
        if (fd != STDIN_FILENO)
            close(fd);
        if (rc) {
            say("%s: %s", c->args.data_file ? c->args.data_file : "standard input",
                rc == GW_ETOOBIG ? "larger than max_body" : strerror(-rc));
            return CL_EXIT_USAGE;
        }
        rq.payload = data;
        rq.len = len;
    }
    /* Local resources need no session, except /devices and /sessions (S2.9). */
    bool needs = t->kind == CL_TARGET_DEVICE;
    if (t->kind == CL_TARGET_LOCAL && t->nseg) {
        const char *s0 = (const char *)t->buf + t->seg[0].off;
        needs = (t->seg[0].len == 7 && !memcmp(s0, "devices", 7));
    }
    struct cl_resp r = { 0 };
    int e;
    int x = request(c, &rq, needs, &r, &e);
    free(data);
    if (x == XR_OK)
        e = print_resp(c, &r, false);
    cl_resp_clear(&r);
    return e;
}

/* ---- set-up ---- */

static const char *env_get(const char *name)
{
    return getenv(name);
}

static int load_config(struct cl *c)
{
    char err[1024];
    cl_conf_defaults(&c->conf);
    char path[CL_PATH_MAX];
    const char *file = c->args.config;
    if (!file) {
        const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");
        if (xdg && xdg[0] == '/')
            snprintf(path, sizeof(path), "%s/coapgw/client.conf", xdg);
        else if (home && home[0] == '/')
            snprintf(path, sizeof(path), "%s/.config/coapgw/client.conf", home);
        else
            path[0] = '\0';
        if (path[0] && access(path, F_OK) == 0)
            file = path;
    }
    if (file) {
        uint8_t *text = NULL;
        size_t len = 0;
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        int rc = fd < 0 ? -errno : read_all(fd, &text, &len, 1 << 20);
        if (fd >= 0)
            close(fd);
        if (rc) {
            say("configuration file %s: %s", file,
                rc == GW_ETOOBIG ? "larger than 1 MiB" : strerror(-rc));
            return CL_EXIT_USAGE;
        }
        rc = cl_conf_parse(&c->conf, (const char *)text, len, file, err, sizeof(err));
        free(text);
        if (rc) {
            say("%s", err);
            return CL_EXIT_USAGE;
        }
    }
    if (cl_conf_env(&c->conf, env_get, err, sizeof(err)) != 0 ||
        cl_args_apply(&c->args, &c->conf, err, sizeof(err))) {
        say("%s", err);
        return CL_EXIT_USAGE;
    }
    if (cl_hostport_parse(c->conf.gateway, c->gw_host, sizeof(c->gw_host), &c->gw_port, err,
                          sizeof(err)) != 0) {
        say("%s", err);
        return CL_EXIT_USAGE;
    }
    return 0;
}

static int load_token(struct cl *c)
{
    if (c->conf.token[0]) {
        snprintf(c->token, sizeof(c->token), "%s", c->conf.token);
    } else if (c->conf.token_file[0]) {
        int fd = open(c->conf.token_file, O_RDONLY | O_CLOEXEC);
        uint8_t *text = NULL;
        size_t len = 0;
        int rc = fd < 0 ? -errno : read_all(fd, &text, &len, CL_TOKEN_MAX - 1);
        if (fd >= 0)
            close(fd);
        if (rc) {
            say("token file %s: %s", c->conf.token_file,
                rc == GW_ETOOBIG ? "too large for a token" : strerror(-rc));
            return CL_EXIT_USAGE;
        }
        memcpy(c->token, text, len);
        c->token[len] = '\0';
        free(text);
    }
    /* A token is one line: surrounding white space is not part of it. */
    size_t n = strlen(c->token), s = 0;
    while (n && (c->token[n - 1] == '\n' || c->token[n - 1] == '\r' || c->token[n - 1] == ' ' ||
                 c->token[n - 1] == '\t'))
        c->token[--n] = '\0';
    while (c->token[s] == ' ' || c->token[s] == '\t' || c->token[s] == '\n' || c->token[s] == '\r')
        s++;
    memmove(c->token, c->token + s, n - s + 1);
    if ((c->conf.token[0] || c->conf.token_file[0]) && !c->token[0]) {
        say("the token%s%s is empty", c->conf.token_file[0] ? " file " : "", c->conf.token_file);
        return CL_EXIT_USAGE;
    }
    return 0;
}

/* Serialises invocations that share a gateway and local port: they share
 * the socket's address and the state file. Waits at most the timeout. */
static int take_lock(struct cl *c, int *fd_out)
{
    char lock[sizeof(c->state_path) + 8];
    snprintf(lock, sizeof(lock), "%s.lock", c->state_path);
    char dir[sizeof(lock)];
    snprintf(dir, sizeof(dir), "%s", lock);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        for (char *p = dir + 1; *p; p++)
            if (*p == '/') {
                *p = '\0';
                mkdir(dir, 0700);
                *p = '/';
            }
        mkdir(dir, 0700);
    }
    int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        say("lock file %s: %s", lock, strerror(errno));
        return CL_EXIT_USAGE;
    }
    double deadline = now_ms() + (double)c->conf.timeout_ms;
    while (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK || now_ms() > deadline || cl_interrupted) {
            say("local port %u is in use by another coapgw client for %s (%s); use --local-port",
                (unsigned)c->conf.local_port, c->conf.gateway, lock);
            close(fd);
            return CL_EXIT_TIMEOUT;
        }
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    *fd_out = fd;
    return 0;
}

static int open_coap(struct cl *c)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_DGRAM }, *ai = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", (unsigned)c->gw_port);
    int rc = getaddrinfo(c->gw_host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        say("gateway host %s: %s", c->gw_host, gai_strerror(rc));
        return CL_EXIT_TIMEOUT;
    }
    coap_address_t dst, local;
    coap_address_init(&dst);
    memcpy(&dst.addr, ai->ai_addr, ai->ai_addrlen);
    dst.size = ai->ai_addrlen;
    coap_address_init(&local);
    local.addr.sa.sa_family = (sa_family_t)ai->ai_family;
    if (ai->ai_family == AF_INET6) {
        local.size = sizeof(struct sockaddr_in6);
        local.addr.sin6.sin6_port = htons(c->conf.local_port);
    } else {
        local.size = sizeof(struct sockaddr_in);
        local.addr.sin.sin_port = htons(c->conf.local_port);
    }
    freeaddrinfo(ai);
    c->ctx = coap_new_context(NULL);
    if (!c->ctx) {
        say("libcoap: cannot create a context");
        return CL_EXIT_TIMEOUT;
    }
    coap_context_set_block_mode(c->ctx, 0); /* Block2 by hand: see the top of this file */
    coap_register_response_handler(c->ctx, on_response);
    coap_register_nack_handler(c->ctx, on_nack);
    /* The session is bound to this address and port (S2.4): libcoap binds
     * the client socket to it before connecting to the gateway. */
    c->sess = coap_new_client_session(c->ctx, &local, &dst, COAP_PROTO_UDP);
    if (!c->sess) {
        say("cannot use local UDP port %u for %s (in use, or not allowed)",
            (unsigned)c->conf.local_port, c->conf.gateway);
        return CL_EXIT_TIMEOUT;
    }
    coap_session_set_app_data(c->sess, c);
    return 0;
}

int cl_main(int argc, char **argv)
{
    struct cl *c = calloc(1, sizeof(*c));
    if (!c) {
        say("out of memory");
        return CL_EXIT_USAGE;
    }
    char err[1024];
    int e = CL_EXIT_OK, lock_fd = -1;
    if (cl_args_parse(argc, argv, &c->args, err, sizeof(err)) != 0) {
        say("%s (coapgw client -h)", err);
        free(c);
        return CL_EXIT_USAGE;
    }
    if (c->args.help) {
        fputs(cl_usage(), stdout);
        free(c);
        return CL_EXIT_OK;
    }
    struct cl_target target;
    memset(&target, 0, sizeof(target));
    if ((e = load_config(c)) != 0)
        goto out;
    if (c->args.uri && cl_target_parse(c->args.uri, &target, err, sizeof(err)) != 0) {
        say("%s", err);
        e = CL_EXIT_USAGE;
        goto out;
    }
    bool may_open = c->args.cmd != CL_CMD_PING && c->args.cmd != CL_CMD_SESSION_SHOW &&
                    c->args.cmd != CL_CMD_SESSION_CLOSE;
    if (may_open && (e = load_token(c)) != 0)
        goto out;
    /* Without HOME (a cron job, a service) the account's home folder. */
    const char *home = getenv("HOME");
    struct passwd *pw = home && *home ? NULL : getpwuid(getuid());
    if (pw)
        home = pw->pw_dir;
    int rc = cl_state_path(getenv("XDG_STATE_HOME"), home, c->conf.gateway, c->conf.local_port,
                           c->state_path, sizeof(c->state_path));
    if (rc) {
        say("no folder for the state file: set XDG_STATE_HOME or HOME");
        e = CL_EXIT_USAGE;
        goto out;
    }

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if ((e = take_lock(c, &lock_fd)) != 0)
        goto out;
    cl_state_init(&c->st, c->conf.gateway, c->conf.local_port);
    rc = cl_state_load(c->state_path, &c->st, err, sizeof(err));
    if (rc && rc != -ENOENT)
        say("ignoring the state file: %s", rc == GW_EBADMSG ? err : strerror(-rc));
    if (c->args.cmd == CL_CMD_SESSION_SHOW) {
        e = cmd_session_show(c);
        goto out;
    }
    /* A session of another account than the token's is not this one: a
     * new one is asked for (the gateway refuses it while the other lives
     * on this port, S2.10, and says so). */
    char sub[128];
    if (c->st.id[0] && c->token[0] && cl_jwt_sub(c->token, sub, sizeof(sub)) == 0 &&
        strcmp(sub, c->st.account)) {
        if (c->args.verbose)
            fprintf(
                stderr,
                "   the recorded session is account %s's, the token %s's: a new one is opened\n",
                c->st.account, sub);
        c->st.id[0] = '\0';
    }
    /* A session opened with another security mode is not this one. */
    if (c->st.id[0] && c->conf.security_set && strcmp(c->st.security, c->conf.security) &&
        c->args.cmd != CL_CMD_SESSION_CLOSE) {
        if (c->args.verbose)
            fprintf(stderr,
                    "   the recorded session uses security=%s, not %s: a new one is opened\n",
                    c->st.security, c->conf.security);
        c->st.id[0] = '\0';
    }
    uint8_t r2[2];
    if (c->st.next_mid >= 0)
        c->mid = (uint16_t)c->st.next_mid;
    else if (getrandom(r2, 2, 0) == 2)
        c->mid = (uint16_t)(r2[0] << 8 | r2[1]);
    else
        c->mid = (uint16_t)getpid();

    coap_startup();
    coap_set_log_level(c->args.verbose >= 2 ? LOG_DEBUG : LOG_EMERG);
    if ((e = open_coap(c)) != 0)
        goto done;
    switch (c->args.cmd) {
    case CL_CMD_SESSION_OPEN:
        e = cmd_session_open(c);
        break;
    case CL_CMD_SESSION_CLOSE:
        e = cmd_session_close(c);
        break;
    case CL_CMD_PING:
        e = cmd_ping(c);
        break;
    case CL_CMD_OBSERVE:
        e = cmd_observe(c, &target);
        break;
    case CL_CMD_DEVICES: {
        if (cl_target_parse("/devices", &target, err, sizeof(err)) != 0) {
            e = CL_EXIT_USAGE;
            break;
        }
        c->args.cmd = CL_CMD_GET;
        e = cmd_request(c, &target);
        break;
    }
    default:
        e = cmd_request(c, &target);
        break;
    }
    if (c->state_dirty)
        save_state(c);
done:
    if (c->sess)
        coap_session_release(c->sess);
    if (c->ctx)
        coap_free_context(c->ctx);
    coap_cleanup();
out:
    if (lock_fd >= 0)
        close(lock_fd);
    free(c);
    return e;
}
