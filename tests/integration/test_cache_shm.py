#!/usr/bin/env python3
"""Cache hits answered by the frontend from the shared table (issue 13 item 1;
SPEC S3.1, S5.1-S5.3, S2.2; contract in common/gw_rcache.h), through real
processes: the supervisor, frontend, scheduler, meshio and the simulator."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402  (scratch_dir: temporary directories removed at exit)
from gwtest import (ACK, CON, GET, OPT, PUT, Client, code, encode, gateway, run, sim_counters, wait_for,
                    write_devices)

KEY = "00112233445566778899aabbccddeeff"
DEV = "0200000000000011"
OTHER = "0200000000000012"


def cache_gateway(name, **cfg):
    d = gwtest.scratch_dir("coapgw-rc-")
    base = "127.0.%d" % (20 + (abs(hash(name)) % 200))
    rows = [
        (DEV, base + ".1", "normal", KEY, 5683, 4849, "latency=1-2"),
        (OTHER, base + ".2", "normal", KEY, 5683, 4849, "latency=1-2"),
    ]
    cfg.setdefault("meshsim", 1)
    cfg.setdefault("mesh_ack_timeout_ms", 200)
    ctx = gateway(name, write_devices(os.path.join(d, "devices.csv"), rows), **cfg)
    ctx.gw.base = base
    return ctx


def device_gets(gw, idx=1):
    return sim_counters("%s.%d" % (gw.base, idx))["by"].get("GET /value", 0)


def piggybacked(r, seen):
    """The answer came on the ACK of the request (no empty ACK first)."""
    return r is not None and r.type == ACK and not any(m.type == ACK and m.code == 0 for m in seen)


def test_hit_piggybacked_with_max_age_counting_down():
    """S3.1, S5.1: a fresh hit to a CON GET comes on the ACK, 2.05, Max-Age reduced by the age,
    without the device; the first GET (a miss) still gets an empty ACK and a separate response."""
    with cache_gateway("rc-piggy") as gw:
        c = Client(gw)
        gw.session(c)
        before = device_gets(gw)
        r1, seen1 = c.request(GET, proxy="coap://%s/value" % DEV)
        assert r1 is not None and r1.code == code(2, 5), r1
        assert r1.type == CON and any(m.type == ACK and m.code == 0 for m in seen1), seen1
        r2, seen2 = c.request(GET, proxy="coap://%s/value" % DEV)
        assert piggybacked(r2, seen2), seen2
        assert r2.code == code(2, 5) and r2.payload == r1.payload, r2
        first = r2.uint(OPT["max_age"])
        assert first is not None and 55 <= first <= 60, r2
        # Max-Age counts down: poll (bounded) until a hit carries a smaller one.
        def smaller():
            r, seen = c.request(GET, proxy="coap://%s/value" % DEV)
            assert piggybacked(r, seen) and r.payload == r1.payload, seen
            return r if r.uint(OPT["max_age"]) < first else None
        r3 = wait_for(smaller, 5, "a hit with a smaller Max-Age")
        assert r3.uint(OPT["max_age"]) >= first - 3, r3
        assert device_gets(gw) == before + 1, "hits reached the device"
        # The frontend counted the hits it answered itself.
        m = gw.coapgw("metrics").stdout
        fe_hits = [l for l in m.splitlines() if l.startswith("coapgw_cache_hits_total") and "frontend" in l]
        assert fe_hits and float(fe_hits[0].split()[-1]) >= 2, fe_hits


def test_put_invalidates_shared_entry():
    """S5.3: a PUT makes the entry stale for every frontend; the next GET goes to the device
    and returns the new body (then that is cached and piggybacked in turn)."""
    with cache_gateway("rc-put", frontends=2) as gw:
        a, b = Client(gw), Client(gw)
        gw.session(a, account="a1")
        gw.session(b, account="b1")
        r, _ = a.request(GET, proxy="coap://%s/value" % DEV)
        assert r.code == code(2, 5)
        r, seen = b.request(GET, proxy="coap://%s/value" % DEV)
        assert piggybacked(r, seen), seen
        n = device_gets(gw)
        r, _ = a.request(PUT, proxy="coap://%s/value" % DEV, payload=b"41")
        assert r.code == code(2, 4), r
        for cl in (b, a):
            r, seen = cl.request(GET, proxy="coap://%s/value" % DEV)
            assert r is not None and r.payload == b"41", r
        assert device_gets(gw) == n + 1, "after the PUT exactly one GET reached the device"
        r, seen = b.request(GET, proxy="coap://%s/value" % DEV)
        assert piggybacked(r, seen) and r.payload == b"41", seen


def test_scope_and_security_partition():
    """S2.2, S5.1: a cached answer is never given to a session outside the device scope, nor
    across mesh security modes."""
    with cache_gateway("rc-scope") as gw:
        a = Client(gw)
        gw.session(a, account="a1")
        r, _ = a.request(GET, proxy="coap://%s/value" % DEV)
        assert r.code == code(2, 5)
        r, seen = a.request(GET, proxy="coap://%s/value" % DEV)
        assert piggybacked(r, seen), seen
        # A session whose token reaches only OTHER: 4.03, not the cached body.
        s = Client(gw)
        gw.session(s, account="s1", devices=OTHER)
        r, _ = s.request(GET, proxy="coap://%s/value" % DEV)
        assert r is not None and r.code == code(4, 3), r
        # A netmgr session: its GET goes to the device (secure port), never the plain entry.
        n = Client(gw)
        gw.session(n, account="n1", query="security=netmgr")
        before = sim_counters(gw.base + ".1")["secure"]
        r, seen = n.request(GET, proxy="coap://%s/value" % DEV)
        assert r is not None and r.code == code(2, 5), r
        assert not piggybacked(r, seen), seen
        assert sim_counters(gw.base + ".1")["secure"] > before, "netmgr GET served without the device"


def test_scheduler_sigkill_never_serves_a_wrong_body():
    """Crash contract of gw_rcache.h: SIGKILL the scheduler while a client keeps reading a
    cached resource; every 2.05 carries the body the device holds at that time, and after the
    restart an invalidation still takes effect (the successor cleared the table)."""
    # The reader below asks as fast as it is answered (piggybacked hits), so its
    # session limits are lifted: a slow scheduler restart would otherwise spend
    # the burst and end in 4.29, which is not what this test is about.
    with cache_gateway("rc-kill", session_rate=1000000, session_burst=1000000) as gw:
        c, w = Client(gw), Client(gw)
        gw.session(c, account="r1")
        gw.session(w, account="w1")
        r, _ = w.request(PUT, proxy="coap://%s/value" % DEV, payload=b"v1")
        assert r.code == code(2, 4), r
        r, _ = c.request(GET, proxy="coap://%s/value" % DEV)
        assert r.code == code(2, 5) and r.payload == b"v1", r
        r, seen = c.request(GET, proxy="coap://%s/value" % DEV)
        assert piggybacked(r, seen) and r.payload == b"v1", seen
        old = gw.pid("scheduler")
        os.kill(old, signal.SIGKILL)
        bodies = set()
        deadline = time.monotonic() + 10
        restarted = False
        while time.monotonic() < deadline and not restarted:
            r, _ = c.request(GET, proxy="coap://%s/value" % DEV, timeout=1)
            if r is not None and r.code == code(2, 5):
                bodies.add(r.payload)
            restarted = gw.pid("scheduler") not in (0, old)
        assert restarted, "scheduler not restarted"
        # The frontend answered from the table while the scheduler was down, and
        # never anything but the body the device held.
        assert bodies == {b"v1"}, bodies
        r = wait_for(lambda: (lambda x: x if x and x.code == code(2, 4) else None)(
            w.request(PUT, proxy="coap://%s/value" % DEV, payload=b"v2", timeout=2)[0]), 15,
            "a PUT after the restart")
        for _ in range(20):
            r, _ = c.request(GET, proxy="coap://%s/value" % DEV, timeout=3)
            assert r is not None and r.code == code(2, 5), r
            assert r.payload == b"v2", r


def proxied_by_frontend(gw):
    """requests_proxied per frontend index, from `coapgw metrics`."""
    out = {}
    for line in gw.coapgw("metrics").stdout.splitlines():
        if line.startswith("coapgw_requests_proxied_total{") and 'frontend="' in line:
            idx = int(line.split('frontend="')[1].split('"')[0])
            out[idx] = float(line.split()[-1])
    return out


class Finals:
    """Every final answer to one token, (type, MID, code), as the client reads them."""

    def __init__(self, client, tok):
        self.client, self.tok, self.seen = client, tok, []

    def take(self, timeout):
        m = self.client.recv(timeout)
        if m is not None and m.token == self.tok and m.code != 0:
            self.seen.append((m.type, m.mid, m.code))
        return m

    def collect(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.take(0.1)

    def checked_and_acked(self, gw):
        """Asserts that a frontend held back a fresh hit (coapgw_cache_deferred_total); ACKs
        every CON answer taken."""
        deferred = [line for line in gw.coapgw("metrics").stdout.splitlines()
                    if line.startswith("coapgw_cache_deferred_total{")]
        assert sum(float(line.split()[-1]) for line in deferred) >= 1, deferred
        for t, m, _ in self.seen:
            if t == CON:
                self.client.send_raw(encode(ACK, 0, m))


def test_retransmission_after_frontend_kill_gets_one_answer():
    """S1.3, S3.3: a CON GET taken by one frontend (empty ACK, then a separate response the client
    never ACKs) whose client retransmits it, same MID and token, after that frontend was
    SIGKILLed: the retransmission reaches the other frontend or the restarted one, which finds the
    device's answer fresh in the shared table. The client must get exactly one final answer: the
    same answer again with the same MID is allowed (RFC 7252 4.5), a piggybacked ACK beside the
    separate CON response (two MIDs) is not."""
    with cache_gateway("rc-dup", frontends=2) as gw:
        wait_for(lambda: gw.pid("frontend-1"), 10, "second frontend")
        c = Client(gw)
        c.auto_ack = False  # the client's ACKs of the separate response are "lost"
        gw.session(c, account="d1")
        before = proxied_by_frontend(gw)
        tok = os.urandom(8)
        mid = c.next_mid()
        req = encode(CON, GET, mid, tok, [(OPT["proxy_uri"], "coap://%s/value?dup=1" % DEV)])
        c.send_raw(req)
        f = Finals(c, tok)
        finals, take = f.seen, f.take

        # The separate response (the device answered; the scheduler cached it).
        wait_for(lambda: take(0.2) is not None and finals, 10, "the separate response")
        assert finals[0][0] == CON and finals[0][2] == code(2, 5), finals
        after = wait_for(lambda: (lambda a: a if sum(a.values()) > sum(before.values()) else None)(
            proxied_by_frontend(gw)), 5, "the request counted by its frontend")
        took = [i for i in after if after[i] > before.get(i, 0)]
        assert len(took) == 1, (before, after)
        role = "frontend-%d" % took[0]
        old = gw.pid(role)
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: gw.pid(role) != old, 10, "%s gone" % role)
        # The client retransmits (same MID, same token): its ACK and answer were lost.
        c.send_raw(req)
        # Until the restarted frontend has sent the kept answer again, and a little longer
        # (bounded): every final answer to tok is collected.
        wait_for(lambda: gw.pid(role) not in (0, old), 10, "%s restarted" % role)
        f.collect(4.5)
        mids = sorted({m for _, m, _ in finals})
        assert len(mids) == 1, "final answers with different MIDs (two answers): %r" % finals
        # The copy met a fresh entry and was checked with the scheduler (fe_guard.h).
        f.checked_and_acked(gw)


def test_retransmission_of_a_piggybacked_hit_after_frontend_kill_gets_one_answer():
    """S1.3, S3.3: a CON GET answered from the shared cache on its ACK (piggybacked), whose client
    retransmits it (same MID and token: that ACK was lost) after the frontend that answered was
    SIGKILLed. The copy reaches the restarted frontend, which never saw it and keeps the cache path
    off for a while (fe_guard.h); the scheduler never saw it either. It must get the same answer on
    the ACK of its MID again (a duplicate to the client, RFC 7252 4.5), never a separate response
    with a new MID beside the first (two final answers; seen once in the Compose stage)."""
    with cache_gateway("rc-pig") as gw:
        c = Client(gw)
        gw.session(c, account="p1")
        uri = "coap://%s/value?pig=1" % DEV
        # A miss first: forwarded (so a frontend start from now on raises the guard) and cached.
        r0, _ = c.request(GET, proxy=uri)
        assert r0 is not None and r0.code == code(2, 5) and r0.type == CON, r0
        tok = os.urandom(8)
        mid = c.next_mid()
        req = encode(CON, GET, mid, tok, [(OPT["proxy_uri"], uri)])
        f = Finals(c, tok)
        finals, take = f.seen, f.take

        c.send_raw(req)
        wait_for(lambda: take(0.2) is not None and finals, 10, "the piggybacked hit")
        assert finals == [(ACK, mid, code(2, 5))], finals
        old = gw.pid("frontend-0")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: gw.pid("frontend-0") not in (0, old), 10, "frontend-0 restarted")

        def listening():
            p = Client(gw)
            try:
                r, _ = p.request(GET, "/.well-known/core", timeout=0.3)
                return r is not None
            finally:
                p.close()
        wait_for(listening, 10, "the restarted frontend answering")
        # The client retransmits (same MID, same token): the piggybacked ACK was lost.
        c.send_raw(req)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and len(finals) < 2:
            take(0.1)
        f.collect(1)  # and a little longer, for a late separate response
        assert len(finals) >= 2, "the copy got no answer: %r" % finals
        assert {(t, m) for t, m, _ in finals} == {(ACK, mid)}, \
            "a second answer with another MID or type: %r" % finals
        # The copy met a fresh entry while the restarted frontend kept the cache path off.
        f.checked_and_acked(gw)


TESTS = [
    test_hit_piggybacked_with_max_age_counting_down,
    test_put_invalidates_shared_entry,
    test_scope_and_security_partition,
    test_scheduler_sigkill_never_serves_a_wrong_body,
    test_retransmission_after_frontend_kill_gets_one_answer,
    test_retransmission_of_a_piggybacked_hit_after_frontend_kill_gets_one_answer,
]

if __name__ == "__main__":
    sys.exit(run(TESTS))
