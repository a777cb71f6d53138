/* SPDX-License-Identifier: MIT */
/* test_session.c - client sessions in LMDB (SPEC S2.4-S2.7, S1.3).
 *
 * Real LMDB in a mkdtemp directory; times are unix seconds passed as `now`. */
#include "fe_session.h"
#include "gw_error.h"
#include "gw_msg.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define E(expr) cr_assert_eq((expr), 0, "%s", #expr)

static char dir[64];
static struct gw_store st;
static struct fe_sess_cfg cfg;
static struct fe_scope all_devices;

#define T0 1700000000

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_session.XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    E(gw_store_open(&st, dir, 16));
    cfg = (struct fe_sess_cfg){ .idle_s = 600,
                                .max_lifetime_s = 4 * 3600,
                                .max_per_account = 10,
                                .max_sessions = 100,
                                .touch_every_s = 60 };
    memset(&all_devices, 0, sizeof(all_devices));
    all_devices.all = 1;
}

static void teardown(void)
{
    gw_store_close(&st);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(session, .init = setup, .fini = teardown);

static struct gw_ep ep_of(const char *s)
{
    struct gw_ep ep;
    E(gw_ep_parse(s, 5683, &ep));
    return ep;
}

static struct fe_sess_req req_of(const char *account, const char *ep)
{
    return (struct fe_sess_req){ .account = account,
                                 .ep = ep_of(ep),
                                 .security = GW_SEC_NETMGR,
                                 .token_exp = T0 + 86400,
                                 .scope = &all_devices };
}

static int create(struct fe_sess_req *rq, int64_t now, struct gw_session *out, struct gw_ep *moved,
                  const char **diag)
{
    struct gw_session dummy;
    struct gw_ep dmoved;
    const char *ddiag = NULL;
    return fe_session_create(&st, &cfg, rq, now, out ? out : &dummy, moved ? moved : &dmoved,
                             diag ? diag : &ddiag);
}

static int lookup(const char *ep, int64_t now, struct gw_session *out)
{
    struct gw_session dummy;
    struct gw_ep e = ep_of(ep);
    return fe_session_lookup(&st, &cfg, &e, now, out ? out : &dummy);
}

/* S2.3/S2.4: a session is bound to the endpoint that created it. */
Test(session, create_then_lookup_by_endpoint)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session s, got;
    struct gw_ep moved;
    E(create(&rq, T0, &s, &moved, NULL));
    cr_assert_neq(s.id, 0);
    cr_assert_eq(moved.family, 0, "a fresh session moved nothing");
    cr_assert_str_eq(s.account, "alice");
    cr_assert_eq(s.created, T0);
    cr_assert_eq(s.last_seen, T0);
    cr_assert_eq(s.token_exp, T0 + 86400);
    cr_assert_eq(s.security, GW_SEC_NETMGR);
    E(lookup("10.0.0.1:40000", T0 + 1, &got));
    cr_assert_eq(got.id, s.id);
    cr_assert_str_eq(got.account, "alice");
    cr_assert(gw_ep_eq(&got.ep, &rq.ep));
    cr_assert_eq(fe_session_count(&st), 1);
}

/* S2.4: another address, or the same address with another port, has no session. */
Test(session, other_endpoint_has_none)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    E(create(&rq, T0, NULL, NULL, NULL));
    cr_assert_eq(lookup("10.0.0.1:40001", T0, NULL), GW_ENOTFOUND);
    cr_assert_eq(lookup("10.0.0.2:40000", T0, NULL), GW_ENOTFOUND);
}

/* S2.5: sticky=true re-points the account's session to the new endpoint. */
Test(session, sticky_repoints_same_id)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session first, second, got;
    struct gw_ep moved;
    E(create(&rq, T0, &first, NULL, NULL));

    struct fe_sess_req rq2 = req_of("alice", "10.0.0.9:50000");
    rq2.sticky = 1;
    E(create(&rq2, T0 + 10, &second, &moved, NULL));
    cr_assert_eq(second.id, first.id, "sticky returns the existing session's ID");
    cr_assert(gw_ep_eq(&moved, &rq.ep), "*moved names the endpoint the session was taken from");
    cr_assert(gw_ep_eq(&second.ep, &rq2.ep));
    cr_assert_eq(lookup("10.0.0.1:40000", T0 + 11, NULL), GW_ENOTFOUND, "the old address loses it");
    E(lookup("10.0.0.9:50000", T0 + 11, &got));
    cr_assert_eq(got.id, first.id);
    cr_assert_eq(fe_session_count(&st), 1, "re-pointing does not create a second session");
}

/* S2.5: sticky with no existing session simply creates one. */
Test(session, sticky_without_session_creates)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    rq.sticky = 1;
    struct gw_session s;
    struct gw_ep moved;
    E(create(&rq, T0, &s, &moved, NULL));
    cr_assert_eq(moved.family, 0);
    cr_assert_eq(s.sticky, 1);
    E(lookup("10.0.0.1:40000", T0, NULL));
}

/* S2.6: single=true is refused while the account holds a live session. */
Test(session, single_refused_with_live_session)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    E(create(&rq, T0, NULL, NULL, NULL));
    struct fe_sess_req rq2 = req_of("alice", "10.0.0.2:40000");
    rq2.single = 1;
    const char *diag = NULL;
    cr_assert_eq(create(&rq2, T0 + 1, NULL, NULL, &diag), GW_EFORBIDDEN);
    cr_assert_not_null(diag);
    cr_assert_eq(lookup("10.0.0.2:40000", T0 + 1, NULL), GW_ENOTFOUND, "nothing was created");
    cr_assert_eq(fe_session_count(&st), 1);
}

/* S2.6: while a single session lives, a non-sticky request is refused and a
 * sticky one re-points it (S2.5). */
Test(session, single_session_blocks_non_sticky_allows_sticky)
{
    struct fe_sess_req rq = req_of("bob", "10.0.0.1:40000");
    rq.single = 1;
    struct gw_session s, moved_s;
    E(create(&rq, T0, &s, NULL, NULL));
    cr_assert_eq(s.single, 1);

    struct fe_sess_req plain = req_of("bob", "10.0.0.2:40000");
    const char *diag = NULL;
    cr_assert_eq(create(&plain, T0 + 1, NULL, NULL, &diag), GW_EFORBIDDEN);
    cr_assert_not_null(diag);
    cr_assert_eq(lookup("10.0.0.2:40000", T0 + 1, NULL), GW_ENOTFOUND);

    /* Another account is not affected. */
    struct fe_sess_req other = req_of("carol", "10.0.0.3:40000");
    E(create(&other, T0 + 1, NULL, NULL, NULL));

    struct fe_sess_req sticky = req_of("bob", "10.0.0.4:40000");
    sticky.sticky = 1;
    struct gw_ep moved;
    E(create(&sticky, T0 + 2, &moved_s, &moved, NULL));
    cr_assert_eq(moved_s.id, s.id);
    cr_assert(gw_ep_eq(&moved, &rq.ep));
    cr_assert_eq(lookup("10.0.0.1:40000", T0 + 2, NULL), GW_ENOTFOUND);
    E(lookup("10.0.0.4:40000", T0 + 2, NULL));
}

/* S2.6: once the single session has ended, the account may create again. */
Test(session, single_session_ended_frees_account)
{
    struct fe_sess_req rq = req_of("bob", "10.0.0.1:40000");
    rq.single = 1;
    E(create(&rq, T0, NULL, NULL, NULL));
    struct gw_ep e = rq.ep;
    E(fe_session_delete(&st, &e, 0, NULL));
    struct fe_sess_req plain = req_of("bob", "10.0.0.2:40000");
    E(create(&plain, T0 + 1, NULL, NULL, NULL));
}

/* S2.7: an account may hold max_per_account sessions; one more gets 4.03. */
Test(session, per_account_bound)
{
    cfg.max_per_account = 2;
    struct fe_sess_req a = req_of("alice", "10.0.0.1:1");
    struct fe_sess_req b = req_of("alice", "10.0.0.1:2");
    struct fe_sess_req c = req_of("alice", "10.0.0.1:3");
    E(create(&a, T0, NULL, NULL, NULL));
    E(create(&b, T0, NULL, NULL, NULL));
    const char *diag = NULL;
    cr_assert_eq(create(&c, T0, NULL, NULL, &diag), GW_EFORBIDDEN);
    cr_assert_not_null(diag);
    cr_assert_eq(lookup("10.0.0.1:3", T0, NULL), GW_ENOTFOUND);
    /* Another account still may. */
    struct fe_sess_req d = req_of("dave", "10.0.0.1:3");
    E(create(&d, T0, NULL, NULL, NULL));
    /* A re-created session from one of alice's own endpoints replaces it and
     * so stays within the bound. */
    E(create(&a, T0 + 1, NULL, NULL, NULL));
    cr_assert_eq(fe_session_count(&st), 3);
}

/* S2.7: expired sessions do not count against the account's bound. */
Test(session, per_account_bound_ignores_expired)
{
    cfg.max_per_account = 1;
    struct fe_sess_req a = req_of("alice", "10.0.0.1:1");
    a.token_exp = T0 + 100;
    E(create(&a, T0, NULL, NULL, NULL));
    struct fe_sess_req b = req_of("alice", "10.0.0.1:2");
    cr_assert_eq(create(&b, T0 + 50, NULL, NULL, NULL), GW_EFORBIDDEN);
    E(create(&b, T0 + 100, NULL, NULL, NULL));
}

/* S1.6/S2.7: the gateway-wide bound gives GW_EFULL (5.03). */
Test(session, gateway_bound_is_full)
{
    cfg.max_sessions = 2;
    struct fe_sess_req a = req_of("a1", "10.0.0.1:1");
    struct fe_sess_req b = req_of("a2", "10.0.0.1:2");
    struct fe_sess_req c = req_of("a3", "10.0.0.1:3");
    E(create(&a, T0, NULL, NULL, NULL));
    E(create(&b, T0, NULL, NULL, NULL));
    const char *diag = NULL;
    cr_assert_eq(create(&c, T0, NULL, NULL, &diag), GW_EFULL);
    cr_assert_not_null(diag);
    cr_assert_eq(lookup("10.0.0.1:3", T0, NULL), GW_ENOTFOUND);
    cr_assert_eq(fe_session_count(&st), 2);
    /* Replacing an endpoint's own session (same account, S2.10) needs no extra room. */
    struct fe_sess_req a2 = req_of("a1", "10.0.0.1:1");
    struct gw_session s;
    E(create(&a2, T0 + 1, &s, NULL, NULL));
    cr_assert_str_eq(s.account, "a1");
    cr_assert_eq(fe_session_count(&st), 2);
}

/* S2.7: idle timeout; proxy activity (touch) keeps a session alive. */
Test(session, expires_when_idle)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    E(create(&rq, T0, NULL, NULL, NULL));
    E(lookup("10.0.0.1:40000", T0 + 599, NULL));
    cr_assert_eq(lookup("10.0.0.1:40000", T0 + 600, NULL), GW_ENOTFOUND);
    cr_assert_eq(fe_session_count(&st), 1, "look-up treats it as absent; the sweep removes it");
}

/* S2.7: the session ends when its token expires. */
Test(session, expires_with_token)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    rq.token_exp = T0 + 100;
    E(create(&rq, T0, NULL, NULL, NULL));
    E(lookup("10.0.0.1:40000", T0 + 99, NULL));
    cr_assert_eq(lookup("10.0.0.1:40000", T0 + 100, NULL), GW_ENOTFOUND);
}

/* S2.7: maximum lifetime, even for a busy session. */
Test(session, expires_at_max_lifetime)
{
    cfg.max_lifetime_s = 1000;
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session s;
    E(create(&rq, T0, &s, NULL, NULL));
    for (int64_t t = T0 + 100; t < T0 + 1000; t += 100) {
        E(lookup("10.0.0.1:40000", t, &s));
        E(fe_session_touch(&st, &cfg, &s, t));
    }
    E(lookup("10.0.0.1:40000", T0 + 999, NULL));
    cr_assert_eq(lookup("10.0.0.1:40000", T0 + 1000, NULL), GW_ENOTFOUND);
}

/* fe_session_touch writes last_seen only when it is older than touch_every_s. */
Test(session, touch_extends_idle_only_when_due)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session s, got;
    E(create(&rq, T0, &s, NULL, NULL));
    E(fe_session_touch(&st, &cfg, &s, T0 + 30));
    E(lookup("10.0.0.1:40000", T0 + 30, &got));
    cr_assert_eq(got.last_seen, T0, "within touch_every_s nothing is written");
    E(fe_session_touch(&st, &cfg, &s, T0 + 60));
    E(lookup("10.0.0.1:40000", T0 + 60, &got));
    cr_assert_eq(got.last_seen, T0 + 60);
    /* The idle timeout now counts from the touch. */
    E(lookup("10.0.0.1:40000", T0 + 659, NULL));
    cr_assert_eq(lookup("10.0.0.1:40000", T0 + 660, NULL), GW_ENOTFOUND);
}

/* A touch for a session that was replaced meanwhile does not revive it. */
Test(session, touch_of_replaced_session_is_ignored)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session old, cur, got;
    E(create(&rq, T0, &old, NULL, NULL));
    E(create(&rq, T0 + 10, &cur, NULL, NULL));
    cr_assert_neq(old.id, cur.id);
    E(fe_session_touch(&st, &cfg, &old, T0 + 500));
    E(lookup("10.0.0.1:40000", T0 + 500, &got));
    cr_assert_eq(got.id, cur.id);
    cr_assert_eq(got.last_seen, T0 + 10);
}

struct ended_log {
    uint64_t ids[8];
    int n;
};

static void on_ended(void *ctx, const struct gw_session *s)
{
    struct ended_log *log = ctx;
    cr_assert_lt(log->n, 8);
    log->ids[log->n++] = s->id;
}

static bool logged(const struct ended_log *log, uint64_t id)
{
    for (int i = 0; i < log->n; i++)
        if (log->ids[i] == id)
            return true;
    return false;
}

/* S2.7: the sweep removes expired sessions and reports each one ended. */
Test(session, sweep_removes_expired)
{
    struct fe_sess_req idle = req_of("a1", "10.0.0.1:1");
    struct fe_sess_req token = req_of("a2", "10.0.0.1:2");
    token.token_exp = T0 + 50;
    struct fe_sess_req live = req_of("a3", "10.0.0.1:3");
    struct gw_session s1, s2, s3;
    E(create(&idle, T0, &s1, NULL, NULL));
    E(create(&token, T0 + 500, &s2, NULL, NULL));
    E(create(&live, T0 + 500, &s3, NULL, NULL));
    struct ended_log log = { 0 };
    cr_assert_eq(fe_session_sweep(&st, &cfg, T0 + 599, 64, on_ended, &log), 1,
                 "only the token-expired one");
    cr_assert(logged(&log, s2.id));
    cr_assert_eq(fe_session_sweep(&st, &cfg, T0 + 600, 64, on_ended, &log), 1, "then the idle one");
    cr_assert(logged(&log, s1.id));
    cr_assert_not(logged(&log, s3.id));
    cr_assert_eq(fe_session_count(&st), 1);
    E(lookup("10.0.0.1:3", T0 + 600, NULL));
    cr_assert_eq(fe_session_sweep(&st, &cfg, T0 + 600, 64, on_ended, &log), 0);
    cr_assert_eq(log.n, 2);
}

/* The sweep is bounded by `max` per call. */
Test(session, sweep_respects_max)
{
    char acct[16], ep[32];
    for (int i = 0; i < 5; i++) {
        snprintf(acct, sizeof(acct), "acct%d", i);
        snprintf(ep, sizeof(ep), "10.0.0.1:%d", 1000 + i);
        struct fe_sess_req rq = req_of(acct, ep);
        E(create(&rq, T0, NULL, NULL, NULL));
    }
    struct ended_log log = { 0 };
    cr_assert_eq(fe_session_sweep(&st, &cfg, T0 + 600, 2, on_ended, &log), 2);
    cr_assert_eq(fe_session_count(&st), 3);
    cr_assert_eq(fe_session_sweep(&st, &cfg, T0 + 600, 64, on_ended, &log), 3);
    cr_assert_eq(fe_session_count(&st), 0);
    cr_assert_eq(log.n, 5);
}

/* S2.7: DELETE /sessions ends the session of the requesting endpoint. */
Test(session, delete_by_endpoint)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session s, ended;
    E(create(&rq, T0, &s, NULL, NULL));
    struct gw_ep other = ep_of("10.0.0.1:40001");
    cr_assert_eq(fe_session_delete(&st, &other, 0, &ended), GW_ENOTFOUND);
    E(fe_session_delete(&st, &rq.ep, 0, &ended));
    cr_assert_eq(ended.id, s.id);
    cr_assert_eq(lookup("10.0.0.1:40000", T0, NULL), GW_ENOTFOUND);
    cr_assert_eq(fe_session_count(&st), 0);
    cr_assert_eq(fe_session_delete(&st, &rq.ep, 0, &ended), GW_ENOTFOUND);
}

/* S2.7: DELETE /sessions/<id> only ends that session, from its own endpoint. */
Test(session, delete_by_id)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session s, ended;
    E(create(&rq, T0, &s, NULL, NULL));
    cr_assert_eq(fe_session_delete(&st, &rq.ep, s.id ^ 1, &ended), GW_ENOTFOUND);
    E(lookup("10.0.0.1:40000", T0, NULL));
    E(fe_session_delete(&st, &rq.ep, s.id, &ended));
    cr_assert_eq(ended.id, s.id);
    cr_assert_eq(lookup("10.0.0.1:40000", T0, NULL), GW_ENOTFOUND);
}

/* A deleted session no longer counts for its account (S2.7 bound). */
Test(session, delete_releases_account_slot)
{
    cfg.max_per_account = 1;
    struct fe_sess_req a = req_of("alice", "10.0.0.1:1");
    struct fe_sess_req b = req_of("alice", "10.0.0.1:2");
    E(create(&a, T0, NULL, NULL, NULL));
    cr_assert_eq(create(&b, T0, NULL, NULL, NULL), GW_EFORBIDDEN);
    E(fe_session_delete(&st, &a.ep, 0, NULL));
    E(create(&b, T0, NULL, NULL, NULL));
}

/* S2.4: a new session of the same account from an endpoint that had one
 * replaces it. */
Test(session, new_session_replaces_endpoints_old_one)
{
    cfg.max_per_account = 1;
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session s1, s2, got;
    E(create(&rq, T0, &s1, NULL, NULL));
    E(create(&rq, T0 + 5, &s2, NULL, NULL));
    cr_assert_neq(s2.id, s1.id, "a non-sticky request makes a new session");
    E(lookup("10.0.0.1:40000", T0 + 5, &got));
    cr_assert_eq(got.id, s2.id);
    cr_assert_eq(fe_session_count(&st), 1);
    /* The old ID is gone: deleting it by ID fails. */
    cr_assert_eq(fe_session_delete(&st, &rq.ep, s1.id, NULL), GW_ENOTFOUND);
}

/* S2.10: a session request from an endpoint holding a live session of
 * another account gets 4.03 and changes nothing, sticky or not; the holder
 * is named for the log. Once that session has expired the endpoint is free. */
Test(session, other_accounts_live_session_is_never_replaced)
{
    struct fe_sess_req alice = req_of("alice", "10.0.0.1:40000");
    struct gw_session s1, got;
    E(create(&alice, T0, &s1, NULL, NULL));
    char holder[FE_ACCOUNT_MAX];
    const char *diag = NULL;
    struct fe_sess_req mallory = req_of("mallory", "10.0.0.1:40000");
    mallory.security = GW_SEC_NONE;
    mallory.holder = holder;
    cr_assert_eq(create(&mallory, T0 + 1, NULL, NULL, &diag), GW_EFORBIDDEN);
    cr_assert_not_null(diag);
    cr_assert_str_eq(holder, "alice");
    mallory.sticky = 1;
    cr_assert_eq(create(&mallory, T0 + 2, NULL, NULL, &diag), GW_EFORBIDDEN);
    /* The same with an existing mallory session elsewhere (a sticky move). */
    struct fe_sess_req m2 = req_of("mallory", "10.0.0.9:40000");
    E(create(&m2, T0 + 3, NULL, NULL, NULL));
    cr_assert_eq(create(&mallory, T0 + 4, NULL, NULL, &diag), GW_EFORBIDDEN);
    E(lookup("10.0.0.1:40000", T0 + 4, &got));
    cr_assert_eq(got.id, s1.id, "alice's session is untouched");
    cr_assert_str_eq(got.account, "alice");
    cr_assert_eq(got.security, GW_SEC_NETMGR, "no downgrade to security=none");
    E(lookup("10.0.0.9:40000", T0 + 4, NULL));
    /* After alice's idle timeout the endpoint may be taken. */
    mallory.sticky = 0;
    E(create(&mallory, T0 + 700, &got, NULL, NULL));
    cr_assert_str_eq(got.account, "mallory");
    cr_assert_str_eq(holder, "");
}

/* Sessions live in LMDB (S1.3): a re-opened store still has them. */
Test(session, survives_reopen)
{
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    struct gw_session s, got;
    E(create(&rq, T0, &s, NULL, NULL));
    gw_store_close(&st);
    E(gw_store_open(&st, dir, 16));
    E(lookup("10.0.0.1:40000", T0 + 1, &got));
    cr_assert_eq(got.id, s.id);
}

/* Account names are bounded (FE_ACCOUNT_MAX) and non-empty. */
Test(session, bad_account_refused)
{
    struct fe_sess_req rq = req_of("", "10.0.0.1:40000");
    cr_assert_eq(create(&rq, T0, NULL, NULL, NULL), GW_EFORBIDDEN);
    char longname[FE_ACCOUNT_MAX + 1];
    memset(longname, 'x', FE_ACCOUNT_MAX);
    longname[FE_ACCOUNT_MAX] = '\0';
    rq = req_of(longname, "10.0.0.1:40000");
    cr_assert_eq(create(&rq, T0, NULL, NULL, NULL), GW_EFORBIDDEN);
    cr_assert_eq(fe_session_count(&st), 0);
}

/* S10.4: a node's session is exempt from the per-account limits, and the
 * node's second request from the same endpoint renews it in place: same id
 * (the owner keys observers and answers by it), the new token's expiry, and
 * no "ended" callback (its observations live on). */
static int ended_calls;
static void count_ended(void *ctx, const struct gw_session *s)
{
    (void)ctx;
    (void)s;
    ended_calls++;
}

Test(session, node_session_renews_in_place_and_ignores_account_limits)
{
    cfg.max_per_account = 1;
    cfg.idle_s = cfg.max_lifetime_s = 10 * 86400;
    struct fe_sess_req rq = req_of("node-1", "10.0.0.1:40000");
    rq.node = 2;
    rq.ended = count_ended;
    struct gw_session s, r, got;
    E(create(&rq, T0, &s, NULL, NULL));
    cr_assert_eq(s.node, 2);
    struct fe_sess_req rq2 = req_of("node-1", "10.0.0.1:40001");
    rq2.node = 2;
    rq2.security = GW_SEC_NONE;
    E(create(&rq2, T0, NULL, NULL, NULL)); /* a second socket: over max_per_account = 1 */
    ended_calls = 0;
    rq.token_exp = T0 + 2 * 86400;
    E(create(&rq, T0 + 3000, &r, NULL, NULL));
    cr_assert_eq(r.id, s.id, "renewal keeps the session id");
    cr_assert_eq(r.token_exp, T0 + 2 * 86400, "renewal takes the new token's expiry");
    cr_assert_eq(ended_calls, 0, "renewal ends nothing");
    E(lookup("10.0.0.1:40000", T0 + 86400 + 10, &got)); /* past the first token's exp */
    cr_assert_eq(got.id, s.id);
    /* A client's second request still replaces its session (new id). */
    cfg.max_per_account = 10;
    struct fe_sess_req c1 = req_of("alice", "10.0.0.7:40000");
    struct gw_session a1, a2;
    E(create(&c1, T0, &a1, NULL, NULL));
    E(create(&c1, T0 + 1, &a2, NULL, NULL));
    cr_assert_neq(a1.id, a2.id);
}

/* ---- the stored record (issue 13: variable-length, old layout still read) ---- */

/* A session with every field set, scope entries of 1, 5 and 16 nibbles. */
static struct gw_session full_session(void)
{
    struct gw_session s;
    memset(&s, 0, sizeof(s));
    s.id = 0x1234567890abcdefull;
    s.ep = ep_of("[2001:db8::7]:61616");
    memset(s.account, 'x', FE_ACCOUNT_MAX - 1); /* the longest account */
    s.security = GW_SEC_NETMGR;
    s.sticky = 1;
    s.single = 1;
    s.node = 3;
    s.created = T0;
    s.token_exp = T0 + 86400;
    s.last_seen = T0 + 17;
    E(fe_scope_parse("0*,02BB0*,0011223344556677", &s.scope));
    cr_assert_eq(s.scope.n, 3);
    return s;
}

static void assert_same_session(const struct gw_session *a, const struct gw_session *b)
{
    cr_assert_eq(memcmp(a, b, sizeof(*a)), 0, "every field (padding zero) survives the record");
}

Test(session, record_round_trip)
{
    struct gw_session s = full_session(), got;
    uint8_t buf[FE_SESSION_REC_MAX];
    int len = fe_session_encode(&s, buf);
    cr_assert_gt(len, 0);
    cr_assert_lt((size_t)len, sizeof(struct gw_session), "shorter than the old layout");
    E(fe_session_decode(&s.ep, buf, (size_t)len, &got, NULL));
    assert_same_session(&s, &got);

    /* The smallest: one-byte account, all devices. */
    memset(&s, 0, sizeof(s));
    s.id = 1;
    s.ep = ep_of("10.0.0.1:1");
    s.account[0] = 'a';
    s.scope.all = 1;
    s.created = s.last_seen = T0;
    s.token_exp = -1; /* any int64 is kept as is */
    len = fe_session_encode(&s, buf);
    cr_assert_eq(len, FE_SESSION_REC_FIXED + 1);
    E(fe_session_decode(&s.ep, buf, (size_t)len, &got, NULL));
    assert_same_session(&s, &got);

    /* The largest fits FE_SESSION_REC_MAX. */
    s = full_session();
    s.scope.n = FE_SCOPE_MAX;
    for (int i = 0; i < FE_SCOPE_MAX; i++) {
        memset(s.scope.e[i].prefix, 0x5a, 8);
        s.scope.e[i].nibbles = 16;
    }
    len = fe_session_encode(&s, buf);
    cr_assert_eq(len, FE_SESSION_REC_MAX);
    E(fe_session_decode(&s.ep, buf, (size_t)len, &got, NULL));
    assert_same_session(&s, &got);
}

Test(session, record_encode_refuses_what_it_cannot_store)
{
    struct gw_session s = full_session();
    uint8_t buf[FE_SESSION_REC_MAX];
    memset(s.account, 'y', sizeof(s.account)); /* no NUL within FE_ACCOUNT_MAX */
    cr_assert_eq(fe_session_encode(&s, buf), GW_EBADMSG);
    s = full_session();
    s.account[0] = '\0';
    cr_assert_eq(fe_session_encode(&s, buf), GW_EBADMSG);
    s = full_session();
    s.scope.n = FE_SCOPE_MAX + 1;
    cr_assert_eq(fe_session_encode(&s, buf), GW_EBADMSG);
    s = full_session();
    s.scope.e[1].nibbles = 17;
    cr_assert_eq(fe_session_encode(&s, buf), GW_EBADMSG);
}

/* Every truncation, trailing bytes, a wrong version and out-of-range fields:
 * GW_EBADMSG with a reason, nothing read beyond the record. Each case runs
 * on an exact-size heap copy so that ASan sees any over-read. */
static int decode_copy(const uint8_t *rec, size_t len, const char **diag)
{
    uint8_t *p = malloc(len ? len : 1);
    cr_assert_not_null(p);
    memcpy(p, rec, len);
    struct gw_session out;
    struct gw_ep ep = ep_of("10.0.0.1:1");
    int rc = fe_session_decode(&ep, p, len, &out, diag);
    free(p);
    if (rc) {
        struct gw_session zero;
        memset(&zero, 0, sizeof(zero));
        cr_assert_eq(memcmp(&out, &zero, sizeof(out)), 0, "nothing half-decoded is returned");
    }
    return rc;
}

Test(session, record_truncated_or_corrupt_is_refused)
{
    struct gw_session s = full_session();
    uint8_t buf[FE_SESSION_REC_MAX + 1];
    int len = fe_session_encode(&s, buf);
    const char *diag;
    for (int n = 0; n < len; n++) {
        diag = NULL;
        cr_assert_eq(decode_copy(buf, (size_t)n, &diag), GW_EBADMSG, "%d of %d bytes", n, len);
        cr_assert_not_null(diag);
    }
    buf[len] = 0;
    cr_assert_eq(decode_copy(buf, (size_t)len + 1, &diag), GW_EBADMSG);
    cr_assert_str_eq(diag, "trailing bytes");

    size_t acct_len_at = FE_SESSION_REC_FIXED - 3; /* version, id, flags, times */
    size_t scope_at = acct_len_at + 1 + (FE_ACCOUNT_MAX - 1);
    struct {
        size_t at;
        uint8_t v;
    } bad[] = { { 0, 1 },               /* version 1 was never variable-length */
                { 0, 3 },               /* a future version */
                { acct_len_at, 0 },     /* empty account */
                { acct_len_at, 64 },    /* account too long */
                { acct_len_at + 5, 0 }, /* NUL inside the account */
                { scope_at, 2 },        /* scope.all not 0/1 */
                { scope_at + 1, 17 },   /* too many entries */
                { scope_at + 2, 0 },    /* a 0-nibble entry */
                { scope_at + 2, 17 } }; /* a 17-nibble entry */
    for (size_t i = 0; i < GW_ARRAY_LEN(bad); i++) {
        uint8_t c[FE_SESSION_REC_MAX];
        memcpy(c, buf, (size_t)len);
        c[bad[i].at] = bad[i].v;
        diag = NULL;
        cr_assert_eq(decode_copy(c, (size_t)len, &diag), GW_EBADMSG, "case %zu", i);
        cr_assert_not_null(diag, "case %zu", i);
    }
    /* An old-layout record whose account is not a string. */
    struct gw_session old = full_session();
    memset(old.account, 'z', sizeof(old.account));
    cr_assert_eq(decode_copy((const uint8_t *)&old, sizeof(old), &diag), GW_EBADMSG);
}

/* Replaces the stored value of the session at ep by raw bytes. */
static void put_raw(const struct gw_ep *ep, const void *rec, size_t len)
{
    MDB_txn *txn;
    E(gw_store_wbegin(&st, &txn));
    MDB_val k = { sizeof(*ep), (void *)ep }, d = { len, (void *)rec };
    E(mdb_put(txn, st.sessions, &k, &d, 0));
    E(mdb_txn_commit(txn));
}

static size_t stored_len(const struct gw_ep *ep)
{
    MDB_txn *txn;
    E(gw_store_rbegin(&st, &txn));
    MDB_val k = { sizeof(*ep), (void *)ep }, d;
    size_t len = mdb_get(txn, st.sessions, &k, &d) == 0 ? d.mv_size : 0;
    gw_store_rdone(&st);
    return len;
}

/* A gateway upgraded in place keeps its sessions: a record written by the
 * earlier version (struct gw_session stored raw, scope and all) is found,
 * counts for its account, is touched (then rewritten in the new layout),
 * swept and deleted as before. */
Test(session, old_layout_record_still_read)
{
    struct fe_scope some;
    E(fe_scope_parse("02BB*", &some));
    struct fe_sess_req rq = req_of("alice", "10.0.0.1:40000");
    rq.scope = &some;
    struct gw_session s, got;
    E(create(&rq, T0, &s, NULL, NULL));
    cr_assert_lt(stored_len(&rq.ep), sizeof(struct gw_session), "new records are shorter");
    /* What the earlier version wrote: the struct itself, padding and all. */
    struct gw_session old = s;
    memset(old.pad, 0xee, sizeof(old.pad));
    put_raw(&rq.ep, &old, sizeof(old));
    cr_assert_eq(stored_len(&rq.ep), sizeof(struct gw_session));

    E(lookup("10.0.0.1:40000", T0 + 1, &got));
    assert_same_session(&s, &got);
    cr_assert_eq(got.scope.n, 1);
    cr_assert_eq(got.scope.e[0].nibbles, 4);

    /* It counts for its account (max_per_account), read through sess_acct. */
    cfg.max_per_account = 1;
    struct fe_sess_req rq2 = req_of("alice", "10.0.0.2:40000");
    const char *diag = NULL;
    cr_assert_eq(create(&rq2, T0 + 2, NULL, NULL, &diag), GW_EFORBIDDEN);

    /* A touch rewrites it in the new layout, same session. */
    E(fe_session_touch(&st, &cfg, &got, T0 + 100));
    cr_assert_lt(stored_len(&rq.ep), sizeof(struct gw_session));
    E(lookup("10.0.0.1:40000", T0 + 101, &got));
    cr_assert_eq(got.id, s.id);
    cr_assert_eq(got.last_seen, T0 + 100);
    cr_assert_eq(memcmp(&got.scope, &s.scope, sizeof(s.scope)), 0);

    /* An old record expires and is swept like any other. */
    put_raw(&rq.ep, &old, sizeof(old));
    struct ended_log log = { 0 };
    cr_assert_eq(fe_session_sweep(&st, &cfg, T0 + 600, 64, on_ended, &log), 1);
    cr_assert(logged(&log, s.id));
    cr_assert_eq(fe_session_count(&st), 0);

    /* And one is deleted by DELETE /sessions, its account slot released. */
    E(create(&rq, T0 + 700, &s, NULL, NULL));
    old = s;
    put_raw(&rq.ep, &old, sizeof(old));
    struct gw_session ended;
    E(fe_session_delete(&st, &rq.ep, s.id, &ended));
    cr_assert_eq(ended.id, s.id);
    E(create(&rq2, T0 + 701, NULL, NULL, NULL));
}

/* A corrupt record in the store is no session: look-ups miss it, a new
 * session from its endpoint replaces it, the sweep removes one it meets,
 * and the sessions beside it are untouched. */
Test(session, corrupt_record_in_store_is_no_session)
{
    struct fe_sess_req a = req_of("alice", "10.0.0.1:1");
    struct fe_sess_req b = req_of("bob", "10.0.0.1:2");
    struct fe_sess_req c = req_of("carol", "10.0.0.1:3");
    struct gw_session sa, sb, sc, got;
    E(create(&a, T0, &sa, NULL, NULL));
    E(create(&b, T0, &sb, NULL, NULL));
    E(create(&c, T0, &sc, NULL, NULL));
    uint8_t rec[FE_SESSION_REC_MAX];
    int len = fe_session_encode(&sb, rec);
    put_raw(&b.ep, rec, (size_t)len - 3); /* truncated */
    cr_assert_eq(lookup("10.0.0.1:2", T0 + 1, NULL), GW_EBADMSG);
    E(lookup("10.0.0.1:1", T0 + 1, NULL));
    E(lookup("10.0.0.1:3", T0 + 1, NULL));

    /* A new session from that endpoint replaces the unreadable record. */
    E(create(&b, T0 + 2, &got, NULL, NULL));
    E(lookup("10.0.0.1:2", T0 + 3, &got));
    cr_assert_str_eq(got.account, "bob");

    /* The sweep removes one it meets, ends nothing, keeps the others. */
    put_raw(&b.ep, rec, 1);
    struct ended_log log = { 0 };
    cr_assert_eq(fe_session_sweep(&st, &cfg, T0 + 4, 64, on_ended, &log), 0);
    cr_assert_eq(log.n, 0);
    cr_assert_eq(fe_session_count(&st), 2);
    cr_assert_eq(lookup("10.0.0.1:2", T0 + 5, NULL), GW_ENOTFOUND);
    E(lookup("10.0.0.1:1", T0 + 5, NULL));
    E(lookup("10.0.0.1:3", T0 + 5, NULL));
}

/* ---- account links (issue 13: sess_acct names the endpoint; no sess_id) ---- */

/* Gives session s the links an earlier version wrote: account -> id in
 * sess_acct, id -> endpoint in sess_id, instead of account -> endpoint. */
static void to_old_links(const struct gw_session *s, bool keep_new_link)
{
    MDB_txn *txn;
    E(gw_store_wbegin(&st, &txn));
    MDB_val ak = { strlen(s->account), (void *)s->account };
    MDB_val ev = { sizeof(s->ep), (void *)&s->ep }, ik = { sizeof(s->id), (void *)&s->id };
    if (!keep_new_link)
        E(mdb_del(txn, st.sess_acct, &ak, &ev));
    E(mdb_put(txn, st.sess_acct, &ak, &ik, MDB_NODUPDATA));
    E(mdb_put(txn, st.sess_id, &ik, &ev, 0));
    E(mdb_txn_commit(txn));
}

static size_t links_of(const char *account)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    E(gw_store_rbegin(&st, &txn));
    E(mdb_cursor_open(txn, st.sess_acct, &cur));
    MDB_val ak = { strlen(account), (void *)account }, v;
    size_t n = 0;
    if (mdb_cursor_get(cur, &ak, &v, MDB_SET_KEY) == 0 && mdb_cursor_count(cur, &n) != 0)
        n = 0;
    mdb_cursor_close(cur);
    gw_store_rdone(&st);
    return n;
}

Test(session, new_sessions_write_no_id_index)
{
    struct fe_sess_req a = req_of("alice", "10.0.0.1:1"), b = req_of("alice", "10.0.0.1:2");
    E(create(&a, T0, NULL, NULL, NULL));
    E(create(&b, T0, NULL, NULL, NULL));
    cr_assert_eq(gw_store_count(&st, st.sess_id), 0, "sess_id is no longer written");
    cr_assert_eq(links_of("alice"), 2);
    E(fe_session_delete(&st, &a.ep, 0, NULL));
    cr_assert_eq(links_of("alice"), 1, "a session's link goes with it");
}

/* An upgraded data_dir: sessions linked the earlier way still count for
 * their account (max_per_account, single), are re-pointed by sticky (and
 * linked the new way then), deleted and swept with all their links. */
Test(session, links_of_an_earlier_version_still_count)
{
    cfg.max_per_account = 2;
    struct fe_sess_req a = req_of("alice", "10.0.0.1:1"), b = req_of("alice", "10.0.0.1:2");
    struct gw_session sa, sb, got;
    E(create(&a, T0, &sa, NULL, NULL));
    E(create(&b, T0 + 1, &sb, NULL, NULL));
    to_old_links(&sa, false);
    to_old_links(&sb, false);
    cr_assert_eq(gw_store_count(&st, st.sess_id), 2);
    struct fe_sess_req c = req_of("alice", "10.0.0.1:3");
    const char *diag = NULL;
    cr_assert_eq(create(&c, T0 + 2, NULL, NULL, &diag), GW_EFORBIDDEN, "both still count");
    cr_assert_str_eq(diag, "the account holds the maximum number of sessions");

    /* sticky re-points the newest (sb), found through its old link. */
    c.sticky = 1;
    struct gw_ep moved;
    E(create(&c, T0 + 3, &got, &moved, NULL));
    cr_assert_eq(got.id, sb.id);
    cr_assert(gw_ep_eq(&moved, &b.ep));
    cr_assert_eq(gw_store_count(&st, st.sess_id), 1, "its old links went");
    cr_assert_eq(links_of("alice"), 2, "sa's old link, sb's new one");
    cr_assert_eq(lookup("10.0.0.1:2", T0 + 4, NULL), GW_ENOTFOUND);
    E(lookup("10.0.0.1:3", T0 + 4, NULL));
    struct fe_sess_req d = req_of("alice", "10.0.0.1:4");
    cr_assert_eq(create(&d, T0 + 5, NULL, NULL, &diag), GW_EFORBIDDEN, "still two, not three");

    /* DELETE /sessions of sa removes its old links. */
    E(fe_session_delete(&st, &a.ep, sa.id, NULL));
    cr_assert_eq(gw_store_count(&st, st.sess_id), 0);
    cr_assert_eq(links_of("alice"), 1);
    E(create(&a, T0 + 6, &sa, NULL, NULL));

    /* The sweep too; and a session with both kinds of link counts once. */
    to_old_links(&sa, true);
    cr_assert_eq(links_of("alice"), 3);
    cr_assert_eq(create(&b, T0 + 7, NULL, NULL, &diag), GW_EFORBIDDEN, "two sessions, three links");
    struct ended_log log = { 0 };
    cr_assert_eq(fe_session_sweep(&st, &cfg, T0 + 6 + 600, 64, on_ended, &log), 2);
    cr_assert_eq(gw_store_count(&st, st.sess_id), 0);
    cr_assert_eq(links_of("alice"), 0);
}

/* single=true of a session linked the earlier way still refuses others. */
Test(session, single_session_of_an_earlier_version_still_refuses)
{
    struct fe_sess_req a = req_of("alice", "10.0.0.1:1");
    a.single = 1;
    struct gw_session sa;
    E(create(&a, T0, &sa, NULL, NULL));
    to_old_links(&sa, false);
    struct fe_sess_req b = req_of("alice", "10.0.0.1:2");
    cr_assert_eq(create(&b, T0 + 1, NULL, NULL, NULL), GW_EFORBIDDEN);
}
