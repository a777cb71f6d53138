/* SPDX-License-Identifier: MIT */
/* fe_session.c - client sessions in LMDB: create, look up, touch, delete, sweep (see
 * fe_session.h). */
#include "fe_session.h"
#include "gw_error.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

bool fe_session_expired(const struct fe_sess_cfg *cfg, const struct gw_session *s, int64_t now)
{
    return now >= s->token_exp || now >= s->created + cfg->max_lifetime_s || now >= s->last_seen + cfg->idle_s;
}

static int get_by_ep(MDB_txn *txn, struct gw_store *st, const struct gw_ep *ep, struct gw_session *out)
{
    MDB_val k = { sizeof(*ep), (void *)ep }, d;
    int rc = mdb_get(txn, st->sessions, &k, &d);
    if (rc)
        return gw_store_err(rc);
    if (d.mv_size != sizeof(*out))
        return GW_EBADMSG;
    memcpy(out, d.mv_data, sizeof(*out));
    return 0;
}

static int put(MDB_txn *txn, struct gw_store *st, const struct gw_session *s, bool new_account_link)
{
    MDB_val k = { sizeof(s->ep), (void *)&s->ep }, d = { sizeof(*s), (void *)s };
    int rc = mdb_put(txn, st->sessions, &k, &d, 0);
    if (rc)
        return gw_store_err(rc);
    MDB_val ik = { sizeof(s->id), (void *)&s->id }, iv = { sizeof(s->ep), (void *)&s->ep };
    rc = mdb_put(txn, st->sess_id, &ik, &iv, 0);
    if (rc)
        return gw_store_err(rc);
    if (new_account_link) {
        MDB_val ak = { strlen(s->account), (void *)s->account };
        rc = mdb_put(txn, st->sess_acct, &ak, &ik, MDB_NODUPDATA);
        if (rc && rc != MDB_KEYEXIST)
            return gw_store_err(rc);
    }
    return 0;
}

static int del(MDB_txn *txn, struct gw_store *st, const struct gw_session *s)
{
    MDB_val k = { sizeof(s->ep), (void *)&s->ep };
    int rc = mdb_del(txn, st->sessions, &k, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return gw_store_err(rc);
    MDB_val ik = { sizeof(s->id), (void *)&s->id };
    rc = mdb_del(txn, st->sess_id, &ik, NULL);
    if (rc && rc != MDB_NOTFOUND)
        return gw_store_err(rc);
    MDB_val ak = { strlen(s->account), (void *)s->account };
    rc = mdb_del(txn, st->sess_acct, &ak, &ik);
    if (rc && rc != MDB_NOTFOUND)
        return gw_store_err(rc);
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
static int account_live(MDB_txn *txn, struct gw_store *st, const struct fe_sess_cfg *cfg, const char *account,
                        int64_t now, struct gw_session *newest, bool *any_single, struct ended_list *ended)
{
    MDB_cursor *cur;
    int rc = mdb_cursor_open(txn, st->sess_acct, &cur);
    if (rc)
        return gw_store_err(rc);
    MDB_val ak = { strlen(account), (void *)account }, iv;
    uint64_t ids[256];
    int nids = 0;
    rc = mdb_cursor_get(cur, &ak, &iv, MDB_SET_KEY);
    while (rc == 0 && nids < (int)GW_ARRAY_LEN(ids)) {
        if (iv.mv_size == sizeof(uint64_t))
            memcpy(&ids[nids++], iv.mv_data, sizeof(uint64_t));
        rc = mdb_cursor_get(cur, &ak, &iv, MDB_NEXT_DUP);
    }
    mdb_cursor_close(cur);
    int live = 0;
    *any_single = false;
    newest->id = 0;
    for (int i = 0; i < nids; i++) {
        MDB_val ik = { sizeof(uint64_t), &ids[i] }, ev;
        struct gw_session s;
        if (mdb_get(txn, st->sess_id, &ik, &ev) != 0 || ev.mv_size != sizeof(struct gw_ep) ||
            get_by_ep(txn, st, ev.mv_data, &s) != 0 || s.id != ids[i]) {
            /* A dangling link: repair. */
            mdb_del(txn, st->sess_acct, &ak, &ik);
            continue;
        }
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

int fe_session_create(struct gw_store *st, const struct fe_sess_cfg *cfg, const struct fe_sess_req *rq,
                      int64_t now, struct gw_session *out, struct gw_ep *moved, const char **diag)
{
    memset(moved, 0, sizeof(*moved));
    if (rq->holder)
        rq->holder[0] = '\0';
    size_t alen = strlen(rq->account);
    if (alen == 0 || alen >= FE_ACCOUNT_MAX) {
        *diag = "bad account";
        return GW_EFORBIDDEN;
    }
    MDB_txn *txn;
    int rc = gw_store_wbegin(st, &txn);
    if (rc)
        return rc;
    struct gw_session newest, cur;
    bool any_single = false;
    struct ended_list ended = { .n = 0 };
    int live = account_live(txn, st, cfg, rq->account, now, &newest, &any_single, &ended);
    if (live < 0) {
        rc = live;
        goto abort;
    }
    /* The endpoint's previous session is replaced only when it belongs to
     * the same account or has expired: S2.10, a session request (maybe from
     * a spoofed source) never replaces or re-points another account's live
     * session. */
    rc = get_by_ep(txn, st, &rq->ep, &cur);
    bool ep_taken = rc == 0;
    if (rc && rc != GW_ENOTFOUND)
        goto abort;
    if (ep_taken && strcmp(cur.account, rq->account) != 0 && !fe_session_expired(cfg, &cur, now)) {
        *diag = "this address and port hold a live session of another account";
        if (rq->holder)
            memcpy(rq->holder, cur.account, sizeof(cur.account));
        rc = GW_EFORBIDDEN;
        goto abort;
    }

    if (rq->sticky && live > 0) {
        /* S2.5: re-point the account's session to this endpoint. */
        if (ep_taken && cur.id != newest.id) {
            if ((rc = del(txn, st, &cur)) != 0)
                goto abort;
            note_ended(&ended, &cur);
        }
        if (!gw_ep_eq(&newest.ep, &rq->ep)) {
            *moved = newest.ep;
            MDB_val k = { sizeof(newest.ep), &newest.ep };
            mdb_del(txn, st->sessions, &k, NULL);
        }
        newest.ep = rq->ep;
        newest.last_seen = now;
        newest.token_exp = rq->token_exp;
        newest.sticky = 1;
        newest.security = rq->security;
        newest.scope = *rq->scope;
        if ((rc = put(txn, st, &newest, false)) != 0)
            goto abort;
        *out = newest;
        goto commit;
    }
    bool same_account_here = ep_taken && strcmp(cur.account, rq->account) == 0;
    int others = live - (same_account_here && !fe_session_expired(cfg, &cur, now) ? 1 : 0);
    /* S2.6: while a single session lives, every further non-sticky request
     * of the account is refused, also from that session's own endpoint. */
    if (live > 0 && (any_single || rq->single)) {
        *diag = rq->single ? "single=true: the account already holds a live session"
                           : "the account holds a single session (single=true); use sticky=true to move it";
        rc = GW_EFORBIDDEN;
        goto abort;
    }
    if (others >= cfg->max_per_account) {
        *diag = "the account holds the maximum number of sessions";
        rc = GW_EFORBIDDEN;
        goto abort;
    }
    if (ep_taken) {
        if ((rc = del(txn, st, &cur)) != 0)
            goto abort;
        note_ended(&ended, &cur);
    }
    MDB_stat ms;
    if (mdb_stat(txn, st->sessions, &ms) == 0 && (int64_t)ms.ms_entries >= cfg->max_sessions) {
        /* Expired sessions not yet swept do not count: remove some now. */
        MDB_cursor *cur2;
        if (mdb_cursor_open(txn, st->sessions, &cur2) == 0) {
            MDB_val k, d;
            int r = mdb_cursor_get(cur2, &k, &d, MDB_FIRST);
            struct gw_session victims[16];
            int nv = 0;
            for (int scanned = 0; r == 0 && nv < 16 && scanned < 4096; scanned++) {
                struct gw_session x;
                if (d.mv_size == sizeof(x)) {
                    memcpy(&x, d.mv_data, sizeof(x));
                    if (fe_session_expired(cfg, &x, now))
                        victims[nv++] = x;
                }
                r = mdb_cursor_get(cur2, &k, &d, MDB_NEXT);
            }
            mdb_cursor_close(cur2);
            for (int i = 0; i < nv; i++) {
                if ((rc = del(txn, st, &victims[i])) != 0)
                    goto abort;
                note_ended(&ended, &victims[i]);
            }
        }
        if (mdb_stat(txn, st->sessions, &ms) == 0 && (int64_t)ms.ms_entries >= cfg->max_sessions) {
            *diag = "the gateway holds the maximum number of sessions";
            rc = GW_EFULL;
            goto abort;
        }
    }
    struct gw_session s;
    memset(&s, 0, sizeof(s));
    do {
        if (getrandom(&s.id, sizeof(s.id), 0) != sizeof(s.id)) {
            rc = -EIO;
            goto abort;
        }
        s.id &= 0x7fffffffffffffffull;
    } while (s.id == 0);
    s.ep = rq->ep;
    memcpy(s.account, rq->account, alen + 1);
    s.security = rq->security;
    s.sticky = rq->sticky;
    s.single = rq->single;
    s.created = now;
    s.token_exp = rq->token_exp;
    s.last_seen = now;
    s.scope = *rq->scope;
    if ((rc = put(txn, st, &s, true)) != 0)
        goto abort;
    *out = s;
commit:
    rc = gw_store_err(mdb_txn_commit(txn));
    if (rc == 0 && rq->ended)
        for (int i = 0; i < ended.n; i++)
            rq->ended(rq->ctx, &ended.s[i]);
    return rc;
abort:
    mdb_txn_abort(txn);
    return rc;
}

int fe_session_lookup(struct gw_store *st, const struct fe_sess_cfg *cfg, const struct gw_ep *ep, int64_t now,
                      struct gw_session *out)
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

int fe_session_touch(struct gw_store *st, const struct fe_sess_cfg *cfg, const struct gw_session *s, int64_t now)
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
        MDB_val k = { sizeof(cur.ep), &cur.ep }, d = { sizeof(cur), &cur };
        rc = gw_store_err(mdb_put(txn, st->sessions, &k, &d, 0));
    }
    if (rc) {
        mdb_txn_abort(txn);
        return rc == GW_ENOTFOUND ? 0 : rc;
    }
    return gw_store_err(mdb_txn_commit(txn));
}

int fe_session_delete(struct gw_store *st, const struct gw_ep *ep, uint64_t id, struct gw_session *ended)
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
    int n = 0;
    if (max > (int)GW_ARRAY_LEN(victims))
        max = (int)GW_ARRAY_LEN(victims);
    MDB_val k, d;
    int rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST);
    while (rc == 0 && n < max) {
        struct gw_session s;
        if (d.mv_size == sizeof(s)) {
            memcpy(&s, d.mv_data, sizeof(s));
            if (fe_session_expired(cfg, &s, now))
                victims[n++] = s;
        }
        rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    for (int i = 0; i < n; i++)
        if (del(txn, st, &victims[i]) != 0) {
            mdb_txn_abort(txn);
            return 0;
        }
    if (n == 0 || mdb_txn_commit(txn) != 0) {
        if (n == 0)
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
    MDB_txn *txn;
    MDB_stat ms;
    if (gw_store_rbegin(st, &txn) != 0)
        return 0;
    size_t n = mdb_stat(txn, st->sessions, &ms) == 0 ? ms.ms_entries : 0;
    gw_store_rdone(st);
    return n;
}
