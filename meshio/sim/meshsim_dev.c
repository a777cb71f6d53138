/* SPDX-License-Identifier: MIT */
/* meshsim_dev.c - simulated device logic, no I/O (see meshsim_int.h). */
#include "meshsim_int.h"

#include "gw_error.h"
#include "gw_text.h"

#include <errno.h>
#include <jansson.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- behaviour strings ------------------------------------------------- */

static int parse_u32(const char *s, uint32_t max, uint32_t *out)
{
    uint64_t v;
    if (gw_dec_parse(s, 10, max, &v) != 0)
        return GW_EBADMSG;
    *out = (uint32_t)v;
    return 0;
}

int meshsim__parse_range(const char *s, uint32_t *min, uint32_t *max)
{
    char a[24];
    const char *dash = strchr(s, '-');
    size_t al = dash ? (size_t)(dash - s) : strlen(s);
    if (al >= sizeof(a))
        return GW_EBADMSG;
    memcpy(a, s, al);
    a[al] = '\0';
    uint32_t lo, hi;
    if (parse_u32(a, 600000, &lo) != 0)
        return GW_EBADMSG;
    hi = lo;
    if (dash && parse_u32(dash + 1, 600000, &hi) != 0)
        return GW_EBADMSG;
    if (hi < lo)
        return GW_EBADMSG;
    *min = lo;
    *max = hi;
    return 0;
}

static int parse_pct(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (!*s || *end || !(v >= 0.0 && v <= 100.0))
        return GW_EBADMSG;
    *out = v;
    return 0;
}

int meshsim__behave_parse(const char *s, struct meshsim_behave *b, char *why, size_t whylen)
{
    char buf[2 * GW_DEV_SIM_LEN];
    if (strlen(s) >= sizeof(buf)) {
        snprintf(why, whylen, "behaviour string too long");
        return GW_EBADMSG;
    }
    memcpy(buf, s, strlen(s) + 1);
    struct meshsim_behave t = *b;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        while (*tok == ' ' || *tok == '\t')
            tok++;
        size_t l = strlen(tok);
        while (l && (tok[l - 1] == ' ' || tok[l - 1] == '\t'))
            tok[--l] = '\0';
        if (!l)
            continue;
        char *val = strchr(tok, '=');
        if (val)
            *val++ = '\0';
        int bad = 0;
        uint32_t u;
        bool *flag = NULL;
        if (strcmp(tok, "silent") == 0)
            flag = &t.silent;
        else if (strcmp(tok, "rst") == 0)
            flag = &t.rst;
        else if (strcmp(tok, "ackonly") == 0)
            flag = &t.ackonly;
        else if (strcmp(tok, "separate") == 0)
            flag = &t.separate;
        else if (strcmp(tok, "con_notify") == 0)
            flag = &t.con_notify;
        else if (strcmp(tok, "nolarge") == 0)
            flag = &t.nolarge;
        if (flag) {
            if (val) {
                snprintf(why, whylen, "'%s' takes no value", tok);
                return GW_EBADMSG;
            }
            *flag = true;
            continue;
        }
        if (!val) {
            snprintf(why, whylen, "unknown behaviour '%s'", tok);
            return GW_EBADMSG;
        }
        if (strcmp(tok, "latency") == 0)
            bad = meshsim__parse_range(val, &t.lat_min, &t.lat_max);
        else if (strcmp(tok, "loss") == 0)
            bad = parse_pct(val, &t.loss);
        else if (strcmp(tok, "drop_first") == 0)
            bad = parse_u32(val, 1000, &t.drop_first);
        else if (strcmp(tok, "milli_delay") == 0) {
            bad = parse_u32(val, 3600000, &u);
            t.milli_delay = u;
        } else if (strcmp(tok, "obs_period") == 0) {
            bad = parse_u32(val, 3600000, &u);
            if (!bad && u < 10)
                bad = GW_EBADMSG;
            t.obs_period = u;
        } else if (strcmp(tok, "max_age") == 0) {
            /* Max-Age 0 makes /value uncacheable, which benchmarks of the
             * proxied path need (RFC 7252 5.10.5). */
            bad = parse_u32(val, UINT32_MAX, &u);
            t.max_age = u;
        } else {
            snprintf(why, whylen, "unknown behaviour '%s'", tok);
            return GW_EBADMSG;
        }
        if (bad) {
            snprintf(why, whylen, "bad value '%s' for %s", val, tok);
            return GW_EBADMSG;
        }
    }
    *b = t;
    return 0;
}

/* ---- seen sequence numbers ------------------------------------------- */

bool meshsim__seen_add(struct meshsim_seen *s, uint64_t v, uint32_t max)
{
    uint32_t lo = 0, hi = s->n;
    while (lo < hi) { /* first range whose hi >= v */
        uint32_t mid = lo + (hi - lo) / 2;
        if (s->r[mid].hi < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint32_t i = lo;
    if (i < s->n && s->r[i].lo <= v)
        return true;
    bool jp = i > 0 && s->r[i - 1].hi + 1 == v;
    bool jn = i < s->n && v != UINT64_MAX && s->r[i].lo == v + 1;
    if (jp && jn) {
        s->r[i - 1].hi = s->r[i].hi;
        memmove(&s->r[i], &s->r[i + 1], (s->n - i - 1) * sizeof(s->r[0]));
        s->n--;
    } else if (jp) {
        s->r[i - 1].hi = v;
    } else if (jn) {
        s->r[i].lo = v;
    } else {
        if (s->n == s->cap) {
            uint32_t nc = s->cap ? s->cap * 2 : 8;
            void *nr = realloc(s->r, nc * sizeof(s->r[0]));
            if (!nr)
                return false;
            s->r = nr;
            s->cap = nc;
        }
        memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof(s->r[0]));
        s->r[i].lo = s->r[i].hi = v;
        s->n++;
        if (s->n > max) {
            memmove(&s->r[0], &s->r[1], (s->n - 1) * sizeof(s->r[0]));
            s->n--;
        }
    }
    return false;
}

void meshsim__seen_free(struct meshsim_seen *s)
{
    free(s->r);
    memset(s, 0, sizeof(*s));
}

/* ---- duplicate table --------------------------------------------------- */

int meshsim__dedup_init(struct meshsim_dedup *t, uint32_t cap)
{
    memset(t, 0, sizeof(*t));
    if (cap < 16 || (cap & (cap - 1)))
        return -EINVAL;
    t->ents = calloc(cap, sizeof(*t->ents));
    /* At most cap entries are ever indexed: the index never grows. */
    if (!t->ents || gw_map_init(&t->idx, cap, cap) != 0) {
        free(t->ents);
        t->ents = NULL;
        return -ENOMEM;
    }
    t->cap = cap;
    return 0;
}

void meshsim__dedup_free(struct meshsim_dedup *t)
{
    for (uint32_t i = 0; i < t->count; i++)
        free(t->ents[(t->head + i) & (t->cap - 1)].resp);
    free(t->ents);
    gw_map_deinit(&t->idx);
    memset(t, 0, sizeof(*t));
}

/* The index key; the whole key is compared (dd_match). The simulator is a
 * test tool fed by the gateway, so the unkeyed hash is enough. */
static uint64_t dd_hash(uint32_t dev, uint8_t secure, const struct gw_ep *ep, uint16_t mid)
{
    uint64_t h = gw_hash64(ep, sizeof(*ep), GW_HASH_SEED);
    h = gw_hash64(&dev, sizeof(dev), h);
    h = gw_hash64(&mid, sizeof(mid), h);
    return gw_hash64(&secure, 1, h);
}

static bool dd_match(const struct meshsim_dd_ent *e, uint32_t dev, uint8_t secure,
                     const struct gw_ep *ep, uint16_t mid)
{
    return e->dev == dev && e->mid == mid && e->secure == secure && gw_ep_eq(&e->ep, ep);
}

struct meshsim_dd_ent *meshsim__dedup_find(struct meshsim_dedup *t, uint32_t dev, uint8_t secure,
                                           const struct gw_ep *ep, uint16_t mid, uint64_t now)
{
    uint64_t h = dd_hash(dev, secure, ep, mid);
    for (uint32_t i = gw_map_first(&t->idx, h); i != GW_MAP_END; i = gw_map_more(&t->idx, h, i)) {
        struct meshsim_dd_ent *e = &t->ents[t->idx.slot[i].val];
        if (dd_match(e, dev, secure, ep, mid))
            return e->expires > now ? e : NULL;
    }
    return NULL;
}

static void dd_evict_head(struct meshsim_dedup *t)
{
    uint32_t idx = t->head;
    struct meshsim_dd_ent *e = &t->ents[idx];
    gw_map_del_kv(&t->idx, dd_hash(e->dev, e->secure, &e->ep, e->mid), idx);
    free(e->resp);
    memset(e, 0, sizeof(*e));
    t->head = (t->head + 1) & (t->cap - 1);
    t->count--;
}

struct meshsim_dd_ent *meshsim__dedup_add(struct meshsim_dedup *t, uint32_t dev, uint8_t secure,
                                          const struct gw_ep *ep, uint16_t mid, uint64_t now)
{
    while (t->count && (t->count == t->cap || t->ents[t->head].expires <= now))
        dd_evict_head(t);
    /* Every entry lives equally long, so expired ones are all at the head
     * and went above; the caller's find saw no live entry for this key. */
    uint32_t idx = (t->head + t->count) & (t->cap - 1);
    /* Cannot fail: fewer than cap entries are indexed and the index was
     * sized for cap, so it neither fills nor allocates. */
    GW_IGNORE(gw_map_add(&t->idx, dd_hash(dev, secure, ep, mid), idx));
    struct meshsim_dd_ent *e = &t->ents[idx];
    memset(e, 0, sizeof(*e));
    e->expires = now + MESHSIM_EXCHANGE_LIFETIME_MS;
    e->ep = *ep;
    e->dev = dev;
    e->mid = mid;
    e->secure = secure;
    t->count++;
    return e;
}

int meshsim__dedup_store(struct meshsim_dd_ent *e, const uint8_t *buf, size_t len)
{
    free(e->resp);
    e->resp = NULL;
    e->len = 0;
    e->state = DD_DONE;
    if (!len)
        return 0;
    e->resp = malloc(len);
    if (!e->resp)
        return -ENOMEM;
    memcpy(e->resp, buf, len);
    e->len = (uint16_t)len;
    return 0;
}

/* ---- device state ------------------------------------------------------ */

void meshsim__dev_init(struct meshsim_dev *d, const struct gw_device *cfg, uint64_t wall_ms)
{
    d->cfg = *cfg;
    d->value[0] = '0';
    d->value_len = 1;
    d->value_ver = 1;
    d->sensor_ver = 1;
    d->obs_seq = MESHSIM_OBS_START;
    d->next_obs_id = 1;
    /* The device's own nonce counter: time based so that it keeps growing
     * across simulator restarts (64 frames per ms of headroom). */
    d->tx_seq = wall_ms << 6;
}

void meshsim__txn_cancel(struct meshsim_txn *t)
{
    if (t->cancelled)
        return;
    struct meshsim_dev *d = t->dev;
    gw_dlist_remove(&d->txns, &t->node);
    t->cancelled = 1;
    if (t->obs_id) {
        struct meshsim_observer *o = meshsim__obs_by_id(d, t->obs_id);
        if (o && o->txn == t)
            o->txn = NULL;
    }
}

struct meshsim_observer *meshsim__obs_by_id(struct meshsim_dev *d, uint32_t id)
{
    for (unsigned i = 0; i < d->nobs; i++)
        if (d->obs[i].id == id)
            return &d->obs[i];
    return NULL;
}

void meshsim__obs_remove(struct meshsim_dev *d, unsigned i)
{
    if (i >= d->nobs)
        return;
    if (d->obs[i].txn)
        meshsim__txn_cancel(d->obs[i].txn);
    d->obs[i] = d->obs[--d->nobs];
}

void meshsim__dev_reboot(struct meshsim_dev *d)
{
    while (d->nobs)
        meshsim__obs_remove(d, d->nobs - 1);
    d->obs_seq = MESHSIM_OBS_START;
}

void meshsim__dev_sensor_tick(struct meshsim_dev *d)
{
    d->sensor_ver++;
    d->obs_seq = (d->obs_seq + 1) & 0xffffff;
}

/* ---- requests ---------------------------------------------------------- */

#define MAX_SEGS 8

/* Collects Uri-Path segments; returns their count, or MAX_SEGS + 1 if more. */
static unsigned path_segs(const struct gw_coap_msg *m, const struct gw_coap_opt *seg[MAX_SEGS])
{
    unsigned n = 0;
    for (unsigned i = 0; i < m->nopts; i++) {
        if (m->opts[i].num != GW_OPT_URI_PATH)
            continue;
        if (n == MAX_SEGS)
            return MAX_SEGS + 1;
        seg[n++] = &m->opts[i];
    }
    return n;
}

static bool seg_is(const struct gw_coap_opt *o, const char *s)
{
    return o->len == strlen(s) && memcmp(o->val, s, o->len) == 0;
}

bool meshsim__is_sim_path(const struct gw_coap_msg *req)
{
    const struct gw_coap_opt *seg[MAX_SEGS];
    unsigned n = path_segs(req, seg);
    return n >= 1 && n <= MAX_SEGS && seg_is(seg[0], "_sim");
}

static const char *method_name(uint8_t code, char buf[8])
{
    static const char *const names[] = { "",       "GET",   "POST",  "PUT",
                                         "DELETE", "FETCH", "PATCH", "iPATCH" };
    if (code < GW_ARRAY_LEN(names) && code)
        return names[code];
    return gw_coap_code_str(code, buf);
}

void meshsim__count_request(struct meshsim_dev *d, const struct gw_coap_msg *req)
{
    char key[MESHSIM_BY_KEYLEN], mb[8];
    size_t n = (size_t)snprintf(key, sizeof(key), "%s ", method_name(req->code, mb));
    bool any = false;
    for (unsigned i = 0; i < req->nopts && n < sizeof(key) - 1; i++) {
        const struct gw_coap_opt *o = &req->opts[i];
        if (o->num != GW_OPT_URI_PATH)
            continue;
        any = true;
        key[n++] = '/';
        for (size_t j = 0; j < o->len && n < sizeof(key) - 1; j++) {
            char c = (char)o->val[j];
            /* Keep the key printable and JSON-safe. */
            key[n++] = (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') ? c : '?';
        }
    }
    if (!any && n < sizeof(key) - 1)
        key[n++] = '/';
    key[n] = '\0';
    struct meshsim_counters *c = &d->c;
    c->requests++;
    for (unsigned i = 0; i < c->nby; i++) {
        if (strcmp(c->by[i].key, key) == 0) {
            c->by[i].n++;
            return;
        }
    }
    if (c->nby < MESHSIM_BY_MAX) {
        memcpy(c->by[c->nby].key, key, n + 1);
        c->by[c->nby++].n = 1;
    } else {
        c->by_other++;
    }
}

/* Options this device understands (RFC 7252 5.10, RFC 7641): fewer than the
 * gateway's gw_opt_known(), since a constrained device knows no Block or
 * proxy options. Any other critical option gets 4.02 (5.4.1). A bit set, as
 * every number in it is below 64. */
#define DEV_OPT(n) (UINT64_C(1) << (n))
static const uint64_t dev_opts = DEV_OPT(GW_OPT_IF_MATCH) | DEV_OPT(GW_OPT_URI_HOST) |
                                 DEV_OPT(GW_OPT_ETAG) | DEV_OPT(GW_OPT_IF_NONE_MATCH) |
                                 DEV_OPT(GW_OPT_OBSERVE) | DEV_OPT(GW_OPT_URI_PORT) |
                                 DEV_OPT(GW_OPT_URI_PATH) | DEV_OPT(GW_OPT_CONTENT_FORMAT) |
                                 DEV_OPT(GW_OPT_URI_QUERY) | DEV_OPT(GW_OPT_ACCEPT);

static bool opt_known(uint16_t n)
{
    return n < 64 && (dev_opts >> n & 1);
}

static void be32(uint32_t v, uint8_t out[4])
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

static bool etag_matches(const struct gw_coap_msg *req, const uint8_t tag[4])
{
    for (unsigned i = 0; i < req->nopts; i++)
        if (req->opts[i].num == GW_OPT_ETAG && req->opts[i].len == 4 &&
            memcmp(req->opts[i].val, tag, 4) == 0)
            return true;
    return false;
}

static const char core_links[] =
    "</value>;rt=\"value\",</sensor>;obs;rt=\"sensor\",</large>,</echo>";
static const char core_links_nolarge[] =
    "</value>;rt=\"value\",</sensor>;obs;rt=\"sensor\",</echo>";

/* /large: 20 lines of 50 bytes, the same on every device and every call. */
static size_t large_payload(char *out, size_t cap)
{
    static const char text[] = "the quick brown fox jumps over the lazy mesh";
    size_t n = 0;
    for (int i = 0; i < 20 && n + 51 <= cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%03d %s %c\n", i, text, 'a' + i);
    return n;
}

static void begin(struct gw_cb *b, uint8_t *out, size_t cap, const struct gw_coap_msg *req,
                  uint8_t code)
{
    gw_cb_init(b, out, cap, GW_COAP_ACK, code, 0, req->token, req->tkl);
}

static int simple(uint8_t *out, size_t cap, size_t *len, const struct gw_coap_msg *req,
                  uint8_t code, const char *diag)
{
    struct gw_cb b;
    begin(&b, out, cap, req, code);
    if (diag)
        gw_cb_payload(&b, diag, strlen(diag));
    return gw_cb_finish(&b, len);
}

static struct meshsim_observer *obs_find(struct meshsim_dev *d, uint8_t secure,
                                         const struct gw_ep *ep, const struct gw_coap_msg *req,
                                         unsigned *idx)
{
    for (unsigned i = 0; i < d->nobs; i++) {
        struct meshsim_observer *o = &d->obs[i];
        if (o->secure == secure && o->tkl == req->tkl && gw_ep_eq(&o->ep, ep) &&
            memcmp(o->token, req->token, req->tkl) == 0) {
            *idx = i;
            return o;
        }
    }
    return NULL;
}

/* Registers or refreshes (secure, ep, token); NULL when the table is full,
 * in which case the request is served without Observe (RFC 7641 4.1). */
static struct meshsim_observer *obs_register(struct meshsim_dev *d, uint8_t secure,
                                             const struct gw_ep *ep, const struct gw_coap_msg *req)
{
    unsigned i;
    struct meshsim_observer *o = obs_find(d, secure, ep, req, &i);
    if (o) {
        if (o->txn)
            meshsim__txn_cancel(o->txn);
        return o;
    }
    if (d->nobs == d->obs_cap) {
        if (d->obs_cap >= MESHSIM_MAX_OBSERVERS)
            return NULL;
        unsigned nc = d->obs_cap ? d->obs_cap * 2 : 4;
        void *no = realloc(d->obs, nc * sizeof(*d->obs));
        if (!no)
            return NULL;
        d->obs = no;
        d->obs_cap = nc;
    }
    o = &d->obs[d->nobs++];
    memset(o, 0, sizeof(*o));
    o->id = d->next_obs_id++;
    if (!d->next_obs_id)
        d->next_obs_id = 1;
    o->ep = *ep;
    o->secure = secure;
    o->tkl = req->tkl;
    memcpy(o->token, req->token, req->tkl);
    return o;
}

static int respond_sensor(struct meshsim_dev *d, const struct meshsim_cfg *cfg, uint8_t secure,
                          const struct gw_ep *ep, const struct gw_coap_msg *req, uint8_t *out,
                          size_t cap, size_t *len)
{
    if (req->code != GW_COAP_GET)
        return simple(out, cap, len, req, GW_COAP_NOT_ALLOWED, "GET only");
    const struct gw_coap_opt *ob = gw_coap_opt_find(req, GW_OPT_OBSERVE);
    uint32_t obv = UINT32_MAX;
    if (ob && !gw_coap_uint(ob->val, ob->len, &obv))
        obv = UINT32_MAX;
    bool observing = false;
    if (obv == 0) {
        d->c.obs_register++;
        if (obs_register(d, secure, ep, req)) {
            observing = true;
            /* A fresh number, so the registration answer is newer than any
             * notification this observer may already hold. */
            d->obs_seq = (d->obs_seq + 1) & 0xffffff;
        }
    } else if (obv == 1) {
        unsigned i;
        d->c.obs_cancel++;
        if (obs_find(d, secure, ep, req, &i))
            meshsim__obs_remove(d, i);
    }
    uint8_t tag[4];
    be32(d->sensor_ver, tag);
    struct gw_cb b;
    bool valid = etag_matches(req, tag);
    begin(&b, out, cap, req, valid ? GW_COAP_VALID : GW_COAP_CONTENT);
    gw_cb_opt(&b, GW_OPT_ETAG, tag, 4);
    if (observing)
        gw_cb_opt_uint(&b, GW_OPT_OBSERVE, d->obs_seq);
    if (!valid)
        gw_cb_opt_uint(&b, GW_OPT_CONTENT_FORMAT, 0);
    gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, cfg->obs_max_age);
    if (!valid) {
        char v[16];
        int n = snprintf(v, sizeof(v), "%" PRIu32, d->sensor_ver);
        gw_cb_payload(&b, v, (size_t)n);
    }
    return gw_cb_finish(&b, len);
}

static int respond_value(struct meshsim_dev *d, const struct gw_coap_msg *req, uint8_t *out,
                         size_t cap, size_t *len)
{
    uint8_t tag[4];
    be32(d->value_ver, tag);
    struct gw_cb b;
    switch (req->code) {
    case GW_COAP_GET:
        if (etag_matches(req, tag)) {
            begin(&b, out, cap, req, GW_COAP_VALID);
            gw_cb_opt(&b, GW_OPT_ETAG, tag, 4);
            if (d->beh.max_age >= 0)
                gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, (uint32_t)d->beh.max_age);
            return gw_cb_finish(&b, len);
        }
        begin(&b, out, cap, req, GW_COAP_CONTENT);
        gw_cb_opt(&b, GW_OPT_ETAG, tag, 4);
        gw_cb_opt_uint(&b, GW_OPT_CONTENT_FORMAT, 0);
        if (d->beh.max_age >= 0)
            gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, (uint32_t)d->beh.max_age);
        gw_cb_payload(&b, d->value, d->value_len);
        return gw_cb_finish(&b, len);
    case GW_COAP_PUT:
    case GW_COAP_POST: {
        /* RFC 7252 5.10.8: If-Match needs a matching ETag (an empty value
         * matches any current representation); If-None-Match fails because
         * /value always exists. */
        bool im = false, im_ok = false;
        for (unsigned i = 0; i < req->nopts; i++) {
            const struct gw_coap_opt *o = &req->opts[i];
            if (o->num != GW_OPT_IF_MATCH)
                continue;
            im = true;
            if (o->len == 0 || (o->len == 4 && memcmp(o->val, tag, 4) == 0))
                im_ok = true;
        }
        if ((im && !im_ok) || gw_coap_opt_find(req, GW_OPT_IF_NONE_MATCH))
            return simple(out, cap, len, req, GW_COAP_PRECONDITION, "precondition failed");
        if (req->payload_len > MESHSIM_VALUE_MAX) {
            begin(&b, out, cap, req, GW_COAP_TOO_LARGE);
            gw_cb_opt_uint(&b, GW_OPT_SIZE1, MESHSIM_VALUE_MAX);
            gw_cb_payload(&b, "value too large", 15);
            return gw_cb_finish(&b, len);
        }
        memcpy(d->value, req->payload ? (const char *)req->payload : "", req->payload_len);
        d->value_len = req->payload_len;
        d->value[d->value_len] = '\0';
        d->value_ver++;
        return simple(out, cap, len, req, GW_COAP_CHANGED, NULL);
    }
    case GW_COAP_DELETE:
        d->value[0] = '0';
        d->value[1] = '\0';
        d->value_len = 1;
        d->value_ver++;
        return simple(out, cap, len, req, GW_COAP_DELETED, NULL);
    default:
        return simple(out, cap, len, req, GW_COAP_NOT_ALLOWED, "GET, PUT, POST or DELETE");
    }
}

/* RFC 7967: bit 2 suppresses 2.xx, bit 8 4.xx, bit 16 5.xx. */
static bool no_response(const struct gw_coap_msg *req, uint8_t code)
{
    const struct gw_coap_opt *o = gw_coap_opt_find(req, GW_OPT_NO_RESPONSE);
    uint32_t v;
    if (!o || !gw_coap_uint(o->val, o->len, &v))
        return false;
    unsigned cls = code >> 5;
    return (cls == 2 && (v & 2)) || (cls == 4 && (v & 8)) || (cls == 5 && (v & 16));
}

int meshsim__dev_respond(struct meshsim_dev *d, const struct meshsim_cfg *cfg, uint8_t secure,
                         const struct gw_ep *ep, const struct gw_coap_msg *req, uint8_t *out,
                         size_t cap, size_t *len, bool *suppress)
{
    char diag[48];
    int rc;
    *suppress = false;
    for (unsigned i = 0; i < req->nopts; i++) {
        uint16_t n = req->opts[i].num;
        if (n == GW_OPT_PROXY_URI || n == GW_OPT_PROXY_SCHEME) {
            rc = simple(out, cap, len, req, GW_COAP_PROXY_NOT_SUPPORTED, "not a proxy");
            goto done;
        }
        if (gw_opt_critical(n) && !opt_known(n)) {
            snprintf(diag, sizeof(diag), "unknown critical option %u", n);
            rc = simple(out, cap, len, req, GW_COAP_BAD_OPTION, diag);
            goto done;
        }
    }
    const struct gw_coap_opt *seg[MAX_SEGS];
    unsigned ns = path_segs(req, seg);
    const struct gw_coap_opt *acc = gw_coap_opt_find(req, GW_OPT_ACCEPT);
    uint32_t accept = UINT32_MAX;
    if (acc && !gw_coap_uint(acc->val, acc->len, &accept))
        accept = UINT32_MAX - 1;
    struct gw_cb b;
    if (ns == 2 && seg_is(seg[0], ".well-known") && seg_is(seg[1], "core")) {
        if (req->code != GW_COAP_GET) {
            rc = simple(out, cap, len, req, GW_COAP_NOT_ALLOWED, "GET only");
        } else if (acc && accept != 40) {
            rc = simple(out, cap, len, req, GW_COAP_NOT_ACCEPTABLE, "link-format only");
        } else {
            const char *links = d->beh.nolarge ? core_links_nolarge : core_links;
            begin(&b, out, cap, req, GW_COAP_CONTENT);
            gw_cb_opt_uint(&b, GW_OPT_CONTENT_FORMAT, 40);
            gw_cb_payload(&b, links, strlen(links));
            rc = gw_cb_finish(&b, len);
        }
    } else if (ns == 1 && seg_is(seg[0], "value")) {
        if (acc && accept != 0 && req->code == GW_COAP_GET)
            rc = simple(out, cap, len, req, GW_COAP_NOT_ACCEPTABLE, "text/plain only");
        else
            rc = respond_value(d, req, out, cap, len);
    } else if (ns == 1 && seg_is(seg[0], "sensor")) {
        if (acc && accept != 0 && req->code == GW_COAP_GET)
            rc = simple(out, cap, len, req, GW_COAP_NOT_ACCEPTABLE, "text/plain only");
        else
            rc = respond_sensor(d, cfg, secure, ep, req, out, cap, len);
    } else if (ns == 1 && seg_is(seg[0], "large") && !d->beh.nolarge) {
        if (req->code != GW_COAP_GET) {
            rc = simple(out, cap, len, req, GW_COAP_NOT_ALLOWED, "GET only");
        } else if (acc && accept != 0) {
            rc = simple(out, cap, len, req, GW_COAP_NOT_ACCEPTABLE, "text/plain only");
        } else {
            char big[1024];
            size_t n = large_payload(big, sizeof(big));
            begin(&b, out, cap, req, GW_COAP_CONTENT);
            gw_cb_opt(&b, GW_OPT_ETAG, "LRG1", 4);
            gw_cb_opt_uint(&b, GW_OPT_CONTENT_FORMAT, 0);
            gw_cb_payload(&b, big, n);
            rc = gw_cb_finish(&b, len);
        }
    } else if (ns == 1 && seg_is(seg[0], "echo")) {
        if (req->code != GW_COAP_POST && req->code != GW_COAP_PUT) {
            rc = simple(out, cap, len, req, GW_COAP_NOT_ALLOWED, "POST or PUT");
        } else {
            const struct gw_coap_opt *cf = gw_coap_opt_find(req, GW_OPT_CONTENT_FORMAT);
            begin(&b, out, cap, req, GW_COAP_CHANGED);
            if (cf)
                gw_cb_opt(&b, GW_OPT_CONTENT_FORMAT, cf->val, cf->len);
            gw_cb_payload(&b, req->payload, req->payload_len);
            rc = gw_cb_finish(&b, len);
        }
    } else {
        rc = simple(out, cap, len, req, GW_COAP_NOT_FOUND, "no such resource");
    }
done:
    if (rc == 0 && *len >= 2)
        *suppress = no_response(req, out[1]);
    return rc;
}

int meshsim__dev_notification(const struct meshsim_dev *d, const struct meshsim_cfg *cfg,
                              const struct meshsim_observer *o, uint8_t *out, size_t cap,
                              size_t *len)
{
    uint8_t tag[4];
    be32(d->sensor_ver, tag);
    char v[16];
    int n = snprintf(v, sizeof(v), "%" PRIu32, d->sensor_ver);
    struct gw_cb b;
    gw_cb_init(&b, out, cap, GW_COAP_NON, GW_COAP_CONTENT, 0, o->token, o->tkl);
    gw_cb_opt(&b, GW_OPT_ETAG, tag, 4);
    gw_cb_opt_uint(&b, GW_OPT_OBSERVE, d->obs_seq);
    gw_cb_opt_uint(&b, GW_OPT_CONTENT_FORMAT, 0);
    gw_cb_opt_uint(&b, GW_OPT_MAX_AGE, cfg->obs_max_age);
    gw_cb_payload(&b, v, (size_t)n);
    return gw_cb_finish(&b, len);
}

int meshsim__dev_sim(struct meshsim_dev *d, const struct gw_coap_msg *req, uint8_t *out, size_t cap,
                     size_t *len)
{
    const struct gw_coap_opt *seg[MAX_SEGS];
    unsigned ns = path_segs(req, seg);
    if (ns == 2 && seg_is(seg[1], "counters")) {
        if (req->code != GW_COAP_GET)
            return simple(out, cap, len, req, GW_COAP_NOT_ALLOWED, "GET only");
        char json[GW_COAP_MAX_MSG - 64];
        size_t n = meshsim__counters_json(d, json, sizeof(json));
        struct gw_cb b;
        begin(&b, out, cap, req, GW_COAP_CONTENT);
        gw_cb_opt_uint(&b, GW_OPT_CONTENT_FORMAT, 50); /* application/json */
        gw_cb_payload(&b, json, n);
        return gw_cb_finish(&b, len);
    }
    if (ns == 2 && (seg_is(seg[1], "reboot") || seg_is(seg[1], "reset"))) {
        if (req->code != GW_COAP_POST)
            return simple(out, cap, len, req, GW_COAP_NOT_ALLOWED, "POST only");
        if (seg_is(seg[1], "reboot"))
            meshsim__dev_reboot(d);
        else
            memset(&d->c, 0, sizeof(d->c));
        return simple(out, cap, len, req, GW_COAP_CHANGED, NULL);
    }
    return simple(out, cap, len, req, GW_COAP_NOT_FOUND, "counters, reboot or reset");
}

/* ---- counters ---------------------------------------------------------- */

/* Built with jansson (every JSON document is): "by" keys come from the
 * requests' paths, so they must be escaped. When the document does not fit
 * `cap`, "by" entries are dropped from the end until it does. */
size_t meshsim__counters_json(const struct meshsim_dev *d, char *buf, size_t cap)
{
    const struct meshsim_counters *c = &d->c;
    json_t *by = json_object();
    json_t *o = json_pack(
        "{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
        " s:I, s:I, s:I, s:I, s:I, s:b}",
        "requests", (json_int_t)c->requests, "con", (json_int_t)c->con, "non", (json_int_t)c->non,
        "duplicates", (json_int_t)c->duplicates, "obs_register", (json_int_t)c->obs_register,
        "obs_cancel", (json_int_t)c->obs_cancel, "obs_rst", (json_int_t)c->obs_rst, "obs_timeout",
        (json_int_t)c->obs_timeout, "observers", (json_int_t)d->nobs, "notifications",
        (json_int_t)c->notifications, "retransmissions", (json_int_t)c->retransmissions,
        "auth_failures", (json_int_t)c->auth_failures, "replays", (json_int_t)c->replays,
        "nonce_reuse", (json_int_t)c->nonce_reuse, "secure", (json_int_t)c->secure, "pings",
        (json_int_t)c->pings, "dropped", (json_int_t)c->dropped, "lost", (json_int_t)c->lost,
        "queued", (json_int_t)c->queued, "bad", (json_int_t)c->bad, "refused",
        (json_int_t)c->refused, "milli", d->cfg.type == GW_DEV_MILLI);
    size_t n = 0;
    if (!o || !by || cap < 3)
        goto out;
    for (unsigned i = 0; i < c->nby; i++)
        json_object_set_new(by, c->by[i].key, json_integer((json_int_t)c->by[i].n));
    if (c->by_other)
        json_object_set_new(by, "other", json_integer((json_int_t)c->by_other));
    json_object_set(o, "by", by);
    for (;;) {
        size_t need = json_dumpb(o, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (need && need < cap) {
            n = json_dumpb(o, buf, cap - 1, JSON_COMPACT | JSON_PRESERVE_ORDER);
            break;
        }
        /* Too long: drop the last "by" entry and try again. */
        const char *last = NULL;
        const char *key;
        json_t *v;
        json_object_foreach(by, key, v) last = key;
        if (!last || json_object_del(by, last) != 0)
            break;
    }
out:
    if (n == 0 && cap >= 3)
        n = (size_t)snprintf(buf, cap, "{}");
    else if (cap)
        buf[n] = '\0';
    json_decref(by);
    json_decref(o);
    return n;
}

void meshsim__counters_add(struct meshsim_counters *s, const struct meshsim_counters *c)
{
    s->requests += c->requests;
    s->con += c->con;
    s->non += c->non;
    s->duplicates += c->duplicates;
    s->obs_register += c->obs_register;
    s->obs_cancel += c->obs_cancel;
    s->obs_rst += c->obs_rst;
    s->obs_timeout += c->obs_timeout;
    s->notifications += c->notifications;
    s->retransmissions += c->retransmissions;
    s->auth_failures += c->auth_failures;
    s->replays += c->replays;
    s->nonce_reuse += c->nonce_reuse;
    s->secure += c->secure;
    s->pings += c->pings;
    s->dropped += c->dropped;
    s->lost += c->lost;
    s->queued += c->queued;
    s->bad += c->bad;
    s->refused += c->refused;
}
