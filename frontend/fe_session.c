/* SPDX-License-Identifier: MIT */
/* fe_session.c - client sessions in LMDB: create, look up, touch, delete, sweep (see
 * fe_session.h). */
#include "fe_session.h"
#include "gw_error.h"
#include "gw_log.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

bool fe_session_expired(const struct fe_sess_cfg *cfg, const struct gw_session *s, int64_t now)
{
    return now >= s->token_exp || now >= s->created + cfg->max_lifetime_s ||
           now >= s->last_seen + cfg->idle_s;
}

/* ---- the stored record (fe_session.h) ---- */

int fe_session_encode(const struct gw_session *s, uint8_t buf[FE_SESSION_REC_MAX])
{
    size_t alen = strnlen(s->account, FE_ACCOUNT_MAX);
    if (alen == 0 || alen >= FE_ACCOUNT_MAX || s->scope.n > FE_SCOPE_MAX)
        return GW_EBADMSG;
    size_t n = 0;
    buf[n++] = FE_SESSION_REC_V2;
    memcpy(buf + n, &s->id, 8);
    n += 8;
    buf[n++] = s->security;
    buf[n++] = s->sticky;
    buf[n++] = s->single;
    buf[n++] = s->node;
    memcpy(buf + n, &s->created, 8);
    memcpy(buf + n + 8, &s->token_exp, 8);
    memcpy(buf + n + 16, &s->last_seen, 8);
    n += 24;
    buf[n++] = (uint8_t)alen;
    memcpy(buf + n, s->account, alen);
    n += alen;
    buf[n++] = s->scope.all;
    buf[n++] = s->scope.n;
    for (unsigned i = 0; i < s->scope.n; i++) {
        unsigned nib = s->scope.e[i].nibbles;
        if (nib < 1 || nib > 16)
            return GW_EBADMSG;
        buf[n++] = (uint8_t)nib;
        memcpy(buf + n, s->scope.e[i].prefix, (nib + 1) / 2);
        n += (nib + 1) / 2;
    }
    return (int)n;
}

/* A record in the layout before issue 13: struct gw_session stored raw. */
static int decode_v1(const void *rec, struct gw_session *out, const char **diag)
{
    memcpy(out, rec, sizeof(*out));
    if (memchr(out->account, '\0', sizeof(out->account)) == NULL || out->account[0] == '\0') {
        *diag = "account not a string of 1..63 bytes";
        return GW_EBADMSG;
    }
    if (out->scope.n > FE_SCOPE_MAX) {
        *diag = "more scope entries than FE_SCOPE_MAX";
        return GW_EBADMSG;
    }
    memset(out->pad, 0, sizeof(out->pad));
    return 0;
}

static int decode_v2(const uint8_t *p, size_t len, struct gw_session *out, const char **diag)
{
    size_t n = 1;
    if (len < FE_SESSION_REC_FIXED) {
        *diag = "truncated";
        return GW_EBADMSG;
    }
    memcpy(&out->id, p + n, 8);
    n += 8;
    out->security = p[n++];
    out->sticky = p[n++];
    out->single = p[n++];
    out->node = p[n++];
    memcpy(&out->created, p + n, 8);
    memcpy(&out->token_exp, p + n + 8, 8);
    memcpy(&out->last_seen, p + n + 16, 8);
    n += 24;
    size_t alen = p[n++];
    if (alen == 0 || alen >= FE_ACCOUNT_MAX) {
        *diag = "account length out of range";
        return GW_EBADMSG;
    }
    if (len - n < alen + 2) {
        *diag = "truncated";
        return GW_EBADMSG;
    }
    if (memchr(p + n, '\0', alen)) {
        *diag = "NUL in the account";
        return GW_EBADMSG;
    }
    memcpy(out->account, p + n, alen);
    n += alen;
    out->scope.all = p[n++];
    out->scope.n = p[n++];
    if (out->scope.n > FE_SCOPE_MAX || out->scope.all > 1) {
        *diag = "scope out of range";
        return GW_EBADMSG;
    }
    for (unsigned i = 0; i < out->scope.n; i++) {
        if (n >= len) {
            *diag = "truncated";
            return GW_EBADMSG;
        }
        unsigned nib = p[n++];
        if (nib < 1 || nib > 16) {
            *diag = "scope out of range";
            return GW_EBADMSG;
        }
        if (len - n < (nib + 1) / 2) {
            *diag = "truncated";
            return GW_EBADMSG;
        }
        out->scope.e[i].nibbles = (uint8_t)nib;
        memcpy(out->scope.e[i].prefix, p + n, (nib + 1) / 2);
        n += (nib + 1) / 2;
    }
    if (n != len) {
        *diag = "trailing bytes";
        return GW_EBADMSG;
    }
    return 0;
}

int fe_session_decode(const struct gw_ep *ep, const void *rec, size_t len, struct gw_session *out,
                      const char **diag)
{
    const char *d = NULL;
    int rc;
    memset(out, 0, sizeof(*out));
    if (len == sizeof(struct gw_session))
        rc = decode_v1(rec, out, &d);
    else if (len == 0)
        rc = (d = "truncated", GW_EBADMSG);
    else if (((const uint8_t *)rec)[0] != FE_SESSION_REC_V2)
        rc = (d = "unknown record version", GW_EBADMSG);
    else
        rc = decode_v2(rec, len, out, &d);
    if (rc) {
        memset(out, 0, sizeof(*out));
        if (diag)
            *diag = d;
        return rc;
    }
    out->ep = *ep; /* the key; an old record's copy of it is the same */
    if (diag)
        *diag = NULL;
    return 0;
}

/* A stored record that cannot be read is treated as no session (the
 * endpoint may create a new one, which replaces it); one line names it. */
static int decode_logged(const MDB_val *k, const MDB_val *d, struct gw_session *out)
{
    const char *diag;
    if (k->mv_size != sizeof(struct gw_ep)) {
        memset(out, 0, sizeof(*out));
        gw_log_warn(GW_LOG_STORE, "data_dir/state sessions: key of %zu bytes ignored", k->mv_size);
        return GW_EBADMSG;
    }
    struct gw_ep ep;
    memcpy(&ep, k->mv_data, sizeof(ep));
    int rc = fe_session_decode(&ep, d->mv_data, d->mv_size, out, &diag);
    if (rc) {
        char a[GW_EP_STRLEN];
        gw_ep_str(&ep, a, sizeof(a));
        gw_log_warn(GW_LOG_STORE, "data_dir/state sessions: record of %s (%zu bytes) ignored: %s",
                    a, d->mv_size, diag);
    }
    return rc;
}

static int get_by_ep(MDB_txn *txn, struct gw_store *st, const struct gw_ep *ep,
                     struct gw_session *out)
{
    MDB_val k = { sizeof(*ep), (void *)ep }, d;
    int rc = mdb_get(txn, st->sessions, &k, &d);
    if (rc)
        return gw_store_err(rc);
    return decode_logged(&k, &d, out);
}

/* Stores s at its endpoint, in the current layout. */
static int put_record(MDB_txn *txn, struct gw_store *st, const struct gw_session *s)
{
    uint8_t buf[FE_SESSION_REC_MAX];
    int len = fe_session_encode(s, buf);
    if (len < 0)
        return len;
    MDB_val k = { sizeof(s->ep), (void *)&s->ep }, d = { (size_t)len, buf };
    return gw_store_err(mdb_put(txn, st->sessions, &k, &d, 0));
}

/* The account's sessions are found through sess_acct: account -> the
 * endpoint of each session (the key of `sessions`). Earlier versions linked
 * account -> session id and kept sess_id: id -> endpoint; such links are
 * still read and removed with their sessions, and no new ones are written
 * (sess_id was 56 B of LMDB pages per session, issue 13). */
static int put(MDB_txn *txn, struct gw_store *st, const struct gw_session *s, bool new_account_link)
{
    int rc = put_record(txn, st, s);
    if (rc)
        return rc;
    if (new_account_link) {
        MDB_val ak = { strlen(s->account), (void *)s->account };
        MDB_val ev = { sizeof(s->ep), (void *)&s->ep };
        rc = mdb_put(txn, st->sess_acct, &ak, &ev, MDB_NODUPDATA);
        if (rc && rc != MDB_KEYEXIST)
            return gw_store_err(rc);
    }
    return 0;
}

static int del_quiet(MDB_txn *txn, MDB_dbi dbi, MDB_val *k, MDB_val *v)
{
    int rc = mdb_del(txn, dbi, k, v);
    return rc && rc != MDB_NOTFOUND ? gw_store_err(rc) : 0;
}

static int del(MDB_txn *txn, struct gw_store *st, const struct gw_session *s)
{
    MDB_val k = { sizeof(s->ep), (void *)&s->ep };
    MDB_val ak = { strlen(s->account), (void *)s->account };
    MDB_val ev = { sizeof(s->ep), (void *)&s->ep };
    MDB_val ik = { sizeof(s->id), (void *)&s->id };
    int rc;
    if ((rc = del_quiet(txn, st->sessions, &k, NULL)) != 0 ||
        (rc = del_quiet(txn, st->sess_acct, &ak, &ev)) != 0)
        return rc;
    /* The links of an earlier version, if this session has them. */
    if ((rc = del_quiet(txn, st->sess_id, &ik, NULL)) != 0 ||
        (rc = del_quiet(txn, st->sess_acct, &ak, &ik)) != 0)
        return rc;
    return 0;
}

/* Sessions a creation ended, reported after its commit. */
struct ended_list {
    struct gw_session s[16];
    int n;
};

static void note_ended(struct ended_list *e, const struct gw_session *s)
{
    if (e && e->n < (int)GW_ARRAY_LEN(e->s))
        e->s[e->n++] = *s;
}

/* Loads the account's sessions; removes expired ones on the way. Returns
 * the number of live sessions and, in *newest, the most recently created. */
static int account_live(MDB_txn *txn, struct gw_store *st, const struct fe_sess_cfg *cfg,
                        const char *account, int64_t now, struct gw_session *newest,
                        bool *any_single, struct ended_list *ended)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->sess_acct, &cur);
    if (rc)
        return gw_store_err(rc);
    MDB_val ak = { strlen(account), (void *)account }, iv;
    /* Links: an endpoint (20 bytes), or an earlier version's session id (8). */
    struct {
        uint8_t v[sizeof(struct gw_ep)];
        uint8_t len;
    } links[256];
    uint64_t seen[256];
    int nlinks = 0, nseen = 0;
    rc = mdb_cursor_get(cur, &ak, &iv, MDB_SET_KEY);
    while (rc == 0 && nlinks < (int)GW_ARRAY_LEN(links)) {
        if (iv.mv_size == sizeof(struct gw_ep) || iv.mv_size == sizeof(uint64_t)) {
            memcpy(links[nlinks].v, iv.mv_data, iv.mv_size);
            links[nlinks++].len = (uint8_t)iv.mv_size;
        }
        rc = mdb_cursor_get(cur, &ak, &iv, MDB_NEXT_DUP);
    }
    mdb_cursor_close(cur);
    int live = 0;
    *any_single = false;
    newest->id = 0;
    for (int i = 0; i < nlinks; i++) {
        MDB_val lv = { links[i].len, links[i].v }, ev = lv;
        struct gw_session s;
        uint64_t id = 0;
        bool old = links[i].len == sizeof(uint64_t);
        if (old) {
            memcpy(&id, links[i].v, sizeof(id));
            if (mdb_get(txn, st->sess_id, &lv, &ev) != 0)
                ev.mv_size = 0;
        }
        if (ev.mv_size != sizeof(struct gw_ep) || get_by_ep(txn, st, ev.mv_data, &s) != 0 ||
            (old ? s.id != id : strcmp(s.account, account) != 0)) {
            /* A dangling link: repair. */
            mdb_del(txn, st->sess_acct, &ak, &lv);
            continue;
        }
        /* A session of an earlier version re-pointed since holds both links. */
        bool dup = false;
        for (int j = 0; j < nseen && !dup; j++)
            dup = seen[j] == s.id;
        if (dup)
            continue;
        seen[nseen++] = s.id;
        if (fe_session_expired(cfg, &s, now)) {
            rc = del(txn, st, &s);
            if (rc)
                return rc;
            note_ended(ended, &s);
            continue;
        }
        live++;
        if (s.single)
            *any_single = true;
        if (newest->id == 0 || s.created >= newest->created)
            *newest = s;
    }
    return live;
}

/* The state of one fe_session_create() transaction. */
struct create_txn {
    MDB_txn *txn;
    struct gw_store *st;
    const struct fe_sess_cfg *cfg;
    const struct fe_sess_req *rq;
    int64_t now;
    int live;                 /* live sessions of the account */
    bool any_single;          /* one of them is single=true */
    struct gw_session newest; /* the account's newest live session */
    bool ep_taken;            /* the endpoint holds a session: cur */
    struct gw_session cur;
    struct ended_list ended;
};

/* The endpoint's previous session is replaced only when it belongs to the
 * same account or has expired: S2.10, a session request (maybe from a
 * spoofed source) never replaces or re-points another account's live
 * session. */
static int check_endpoint(struct create_txn *c, const char **diag)
{
    int rc = get_by_ep(c->txn, c->st, &c->rq->ep, &c->cur);
    c->ep_taken = rc == 0;
    /* An unreadable record (logged) holds no session: the new one replaces it. */
    if (rc && rc != GW_ENOTFOUND && rc != GW_EBADMSG)
        return rc;
    if (c->ep_taken && strcmp(c->cur.account, c->rq->account) != 0 &&
        !fe_session_expired(c->cfg, &c->cur, c->now)) {
        *diag = "this address and port hold a live session of another account";
        if (c->rq->holder)
            memcpy(c->rq->holder, c->cur.account, sizeof(c->cur.account));
        return GW_EFORBIDDEN;
    }
    return 0;
}

/* S2.5: sticky=true re-points the account's newest session to this
 * endpoint (the old endpoint is reported in moved). */
static int repoint_sticky(struct create_txn *c, struct gw_session *out, struct gw_ep *moved)
{
    const struct fe_sess_req *rq = c->rq;
    struct gw_session *n = &c->newest;
    int rc;
    if (c->ep_taken && c->cur.id != n->id) {
        if ((rc = del(c->txn, c->st, &c->cur)) != 0)
            return rc;
        note_ended(&c->ended, &c->cur);
    }
    if (!gw_ep_eq(&n->ep, &rq->ep))
        *moved = n->ep;
    /* Off its old endpoint with its links (the account's link names the
     * endpoint), then stored at the new one. */
    if ((rc = del(c->txn, c->st, n)) != 0)
        return rc;
    n->ep = rq->ep;
    n->last_seen = c->now;
    n->token_exp = rq->token_exp;
    n->sticky = 1;
    n->security = rq->security;
    n->scope = *rq->scope;
    if ((rc = put(c->txn, c->st, n, true)) != 0)
        return rc;
    *out = *n;
    return 0;
}

/* S2.6 and max_per_account: may the account have one more session here? */
static int check_account(struct create_txn *c, const char **diag)
{
    const struct fe_sess_req *rq = c->rq;
    bool same_account_here = c->ep_taken && strcmp(c->cur.account, rq->account) == 0;
    int others =
        c->live - (same_account_here && !fe_session_expired(c->cfg, &c->cur, c->now) ? 1 : 0);
    /* S2.6: while a single session lives, every further non-sticky request
     * of the account is refused, also from that session's own endpoint. */
    if (c->live > 0 && (c->any_single || rq->single)) {
        *diag =
            rq->single
                ? "single=true: the account already holds a live session"
                : "the account holds a single session (single=true); use sticky=true to move it";
        return GW_EFORBIDDEN;
    }
    if (others >= c->cfg->max_per_account) {
        *diag = "the account holds the maximum number of sessions";
        return GW_EFORBIDDEN;
    }
    return 0;
}

/* max_sessions: expired sessions not yet swept do not count, so up to 16
 * of them (among the first 4096) are removed now; GW_EFULL if still full. */
static int make_room(struct create_txn *c, const char **diag)
{
    MDB_stat ms;
    if (mdb_stat(c->txn, c->st->sessions, &ms) != 0 ||
        (int64_t)ms.ms_entries < c->cfg->max_sessions)
        return 0;
    MDB_cursor *cur2;
    if (mdb_cursor_open(c->txn, c->st->sessions, &cur2) == 0) {
        MDB_val k, d;
        int r = mdb_cursor_get(cur2, &k, &d, MDB_FIRST);
        struct gw_session victims[16];
        int nv = 0;
        for (int scanned = 0; r == 0 && nv < 16 && scanned < 4096; scanned++) {
            struct gw_session x;
            if (decode_logged(&k, &d, &x) == 0 && fe_session_expired(c->cfg, &x, c->now))
                victims[nv++] = x;
            r = mdb_cursor_get(cur2, &k, &d, MDB_NEXT);
        }
        mdb_cursor_close(cur2);
        for (int i = 0; i < nv; i++) {
            int rc = del(c->txn, c->st, &victims[i]);
            if (rc != 0)
                return rc;
            note_ended(&c->ended, &victims[i]);
        }
    }
    if (mdb_stat(c->txn, c->st->sessions, &ms) == 0 &&
        (int64_t)ms.ms_entries >= c->cfg->max_sessions) {
        *diag = "the gateway holds the maximum number of sessions";
        return GW_EFULL;
    }
    return 0;
}

/* A new session with a random, non-zero, 63-bit id. */
static int add_session(struct create_txn *c, struct gw_session *out)
{
    const struct fe_sess_req *rq = c->rq;
    struct gw_session s;
    memset(&s, 0, sizeof(s));
    do {
        if (getrandom(&s.id, sizeof(s.id), 0) != sizeof(s.id))
            return -EIO;
        s.id &= 0x7fffffffffffffffull;
    } while (s.id == 0);
    s.ep = rq->ep;
    memcpy(s.account, rq->account, strlen(rq->account) + 1);
    s.security = rq->security;
    s.sticky = rq->sticky;
    s.single = rq->single;
    s.created = c->now;
    s.token_exp = rq->token_exp;
    s.last_seen = c->now;
    s.scope = *rq->scope;
    s.node = rq->node;
    int rc = put(c->txn, c->st, &s, true);
    if (rc == 0)
        *out = s;
    return rc;
}

/* The last steps of every new session: the endpoint's old session (of
 * another account, or of this one when not sticky) ends, room is made under
 * max_sessions, and the new one is stored. */
static int replace_and_add(struct create_txn *c, struct gw_session *out, const char **diag)
{
    int rc;
    if (c->ep_taken) {
        if ((rc = del(c->txn, c->st, &c->cur)) != 0)
            return rc;
        note_ended(&c->ended, &c->cur);
    }
    if ((rc = make_room(c, diag)) != 0)
        return rc;
    return add_session(c, out);
}

/* S10.4: a gateway node's session. Exempt from the per-account limits
 * (max_sessions_per_account, single): a node speaks for many clients. A
 * request from the endpoint that holds the node's session already is a
 * renewal before the token expires: the session keeps its id (the owner's
 * observers and answers are keyed by it) and takes the new token's expiry,
 * as if created now (max_lifetime counts from the last renewal); replacing
 * it, as a client's second request does, would end the observations the
 * node holds for its clients. */
static int node_session(struct create_txn *c, struct gw_session *out, const char **diag)
{
    const struct fe_sess_req *rq = c->rq;
    if (c->ep_taken && strcmp(c->cur.account, rq->account) == 0 && c->cur.node == rq->node) {
        c->cur.token_exp = rq->token_exp;
        c->cur.created = c->now;
        c->cur.last_seen = c->now;
        c->cur.security = rq->security;
        c->cur.sticky = 0;
        c->cur.single = 0;
        c->cur.scope = *rq->scope;
        int rc = put(c->txn, c->st, &c->cur, false);
        if (rc == 0)
            *out = c->cur;
        return rc;
    }
    return replace_and_add(c, out, diag);
}

/* The steps of fe_session_create inside its write transaction. */
static int create_locked(struct create_txn *c, struct gw_session *out, struct gw_ep *moved,
                         const char **diag)
{
    c->live = account_live(c->txn, c->st, c->cfg, c->rq->account, c->now, &c->newest,
                           &c->any_single, &c->ended);
    if (c->live < 0)
        return c->live;
    int rc = check_endpoint(c, diag);
    if (rc)
        return rc;
    if (c->rq->node)
        return node_session(c, out, diag);
    if (c->rq->sticky && c->live > 0)
        return repoint_sticky(c, out, moved);
    if ((rc = check_account(c, diag)) != 0)
        return rc;
    return replace_and_add(c, out, diag);
}

int fe_session_create(struct gw_store *st, const struct fe_sess_cfg *cfg,
                      const struct fe_sess_req *rq, int64_t now, struct gw_session *out,
                      struct gw_ep *moved, const char **diag)
{
    memset(moved, 0, sizeof(*moved));
    if (rq->holder)
        rq->holder[0] = '\0';
    size_t alen = strlen(rq->account);
    if (alen == 0 || alen >= FE_ACCOUNT_MAX) {
        *diag = "bad account";
        return GW_EFORBIDDEN;
    }
    struct create_txn c = { .st = st, .cfg = cfg, .rq = rq, .now = now, .ended = { .n = 0 } };
    int rc = gw_store_wbegin(st, &c.txn);
    if (rc)
        return rc;
    rc = create_locked(&c, out, moved, diag);
    if (rc) {
        mdb_txn_abort(c.txn);
        return rc;
    }
    rc = gw_store_err(mdb_txn_commit(c.txn));
    if (rc == 0 && rq->ended)
        for (int i = 0; i < c.ended.n; i++)
            rq->ended(rq->ctx, &c.ended.s[i]);
    return rc;
}

int fe_session_lookup(struct gw_store *st, const struct fe_sess_cfg *cfg, const struct gw_ep *ep,
                      int64_t now, struct gw_session *out)
{
    MDB_txn *txn;
    int rc = gw_store_rbegin(st, &txn);
    if (rc)
        return rc;
    rc = get_by_ep(txn, st, ep, out);
    gw_store_rdone(st);
    if (rc == 0 && fe_session_expired(cfg, out, now))
        rc = GW_ENOTFOUND;
    return rc;
}

int fe_session_touch(struct gw_store *st, const struct fe_sess_cfg *cfg, const struct gw_session *s,
                     int64_t now)
{
    if (now - s->last_seen < cfg->touch_every_s)
        return 0;
    MDB_txn *txn;
    int rc = gw_store_wbegin(st, &txn);
    if (rc)
        return rc;
    struct gw_session cur;
    rc = get_by_ep(txn, st, &s->ep, &cur);
    if (rc == 0 && cur.id == s->id) {
        cur.last_seen = now;
        rc = put_record(txn, st, &cur);
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc == GW_ENOTFOUND ? 0 : rc;
    }
    return gw_store_err(mdb_txn_commit(txn));
}

int fe_session_delete(struct gw_store *st, const struct gw_ep *ep, uint64_t id,
                      struct gw_session *ended)
{
    MDB_txn *txn;
    int rc = gw_store_wbegin(st, &txn);
    if (rc)
        return rc;
    struct gw_session cur;
    rc = get_by_ep(txn, st, ep, &cur);
    if (rc == 0 && id && cur.id != id)
        rc = GW_ENOTFOUND;
    if (rc == 0)
        rc = del(txn, st, &cur);
    if (rc) {
        mdb_txn_abort(txn);
        return rc;
    }
    if (ended)
        *ended = cur;
    return gw_store_err(mdb_txn_commit(txn));
}

int fe_session_sweep(struct gw_store *st, const struct fe_sess_cfg *cfg, int64_t now, int max,
                     void (*ended)(void *ctx, const struct gw_session *s), void *ctx)
{
    MDB_txn *txn;
    if (gw_store_wbegin(st, &txn) != 0)
        return 0;
    MDB_cursor *cur;
    if (mdb_cursor_open(txn, st->sessions, &cur) != 0) {
        mdb_txn_abort(txn);
        return 0;
    }
    struct gw_session victims[64];
    int n = 0, bad = 0;
    if (max > (int)GW_ARRAY_LEN(victims))
        max = (int)GW_ARRAY_LEN(victims);
    MDB_val k, d;
    int rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
    while (rc == 0 && n < max) {
        struct gw_session s;
        int drc = decode_logged(&k, &d, &s);
        if (drc == 0 && fe_session_expired(cfg, &s, now))
            victims[n++] = s;
        /* An unreadable record can never be used: removed once (its line
         * logged above), not logged again at every sweep. */
        if (drc == GW_EBADMSG && mdb_cursor_del(cur, 0) == 0)
            bad++;
        rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    for (int i = 0; i < n; i++)
        if (del(txn, st, &victims[i]) != 0) {
            mdb_txn_abort(txn);
            return 0;
        }
    if (n + bad == 0 || mdb_txn_commit(txn) != 0) {
        if (n + bad == 0)
            mdb_txn_abort(txn);
        return 0;
    }
    for (int i = 0; i < n; i++)
        if (ended)
            ended(ctx, &victims[i]);
    return n;
}

size_t fe_session_count(struct gw_store *st)
{
    return gw_store_count(st, st->sessions);
}
