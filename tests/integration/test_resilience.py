#!/usr/bin/env python3
"""Crash-restart resilience under load (SPEC S1.3, S1.4, S6.3, S6.6).

Several fixed-port clients keep a steady load of proxied CON GETs (with
RFC 7252 client retransmission, as a real client does) and a few observers
stay registered, while every role is SIGKILLed repeatedly at random moments.
At the end: every request got exactly one final response, no session was
lost (no 4.01), every observer kept receiving notifications with strictly
increasing Observe numbers, the device holds exactly one observation per
observed resource, and only the killed role restarted each time. Recovery
time per kill is printed. Bounded in time and count; loopback only."""
import os
import random
import select
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402  (scratch_dir: temporary directories removed at exit)
from gwtest import (ACK, CON, GET, OPT, POST, RST, Client, Msg, code, encode, gateway, run, sim_counters,
                    wait_for, write_devices)

KEY = "00112233445566778899aabbccddeeff"
BASE = "127.0.40"
DEVICES = ["02000000000001%02x" % i for i in range(1, 9)]


def drained(clients):
    """Pumps every client (its retransmissions and answers), then says whether none has a
    request left without a final answer. Every client each time: all() alone would stop at the
    first one still waiting, and the clients after it would neither retransmit nor read."""
    for c in clients:
        c.pump()
    return all(not c.pending for c in clients)


class LoadClient:
    """Non-blocking client: CON requests with retransmission, answers ACKed,
    and a CON message whose MID it already took dropped as a duplicate (RFC
    7252 4.5: a gateway that restarted may send an unconfirmed answer again,
    always with its first MID)."""

    def __init__(self, gw, cl, ack_timeout=0.5):
        self.gw, self.cl = gw, cl
        self.cl.sock.setblocking(False)
        self.pending = {}     # token -> [mid, first_sent, last_sent, tries, acked]
        self.finals = {}      # token -> list of codes
        self.ack_timeout = ack_timeout
        self.sent = 0
        self.observe = {}     # token -> list of observe numbers (observers)
        self.answered = []    # (sent, answered) of successful requests
        self.seen_mids = set()  # MIDs of CON messages taken (the deduplication store)
        self.copies = 0

    def send(self, proxy, observe=None):
        tok = os.urandom(6)
        mid = self.cl.next_mid()
        opts = [(OPT["proxy_uri"], proxy)]
        if observe is not None:
            opts.append((OPT["observe"], observe))
            self.observe.setdefault(tok, [])
        pkt = encode(CON, GET, mid, tok, opts)
        now = time.monotonic()
        self.pending[tok] = [mid, now, now, 0, False, pkt]
        self.cl.send_raw(pkt)
        self.sent += 1
        return tok

    def pump(self):
        now = time.monotonic()
        for tok, p in list(self.pending.items()):
            mid, first, last, tries, acked, pkt = p
            if not acked and now - last > self.ack_timeout * (2 ** tries) and tries < 6:
                p[2], p[3] = now, tries + 1
                self.cl.send_raw(pkt)
        while True:
            try:
                data, _ = self.cl.sock.recvfrom(65536)
            except BlockingIOError:
                return
            m = Msg(data)
            if m.type == CON:
                self.cl.send_raw(encode(ACK, 0, m.mid))
                if m.code != 0 and m.mid in self.seen_mids:
                    self.copies += 1
                    continue
                self.seen_mids.add(m.mid)
            if m.code == 0:
                for tok, p in self.pending.items():
                    if p[0] == m.mid and m.type == ACK:
                        p[4] = True
                continue
            if m.token in self.observe and m.opt(OPT["observe"]) is not None:
                self.observe[m.token].append((time.monotonic(), m.uint(OPT["observe"])))
                self.pending.pop(m.token, None)
                self.finals.setdefault(m.token, [m.code])
                continue
            if m.token in self.pending or m.token in self.finals:
                if m.token in self.pending and m.code == code(2, 5):
                    self.answered.append((self.pending[m.token][1], time.monotonic()))
                self.finals.setdefault(m.token, []).append(m.code)
                self.pending.pop(m.token, None)


def test_kill_every_role_under_load():
    tmp = gwtest.scratch_dir("coapgw-res-")
    rows = [(mac, "%s.%d" % (BASE, i + 1), "normal", KEY, 5683, 4849, "latency=1-5;obs_period=400")
            for i, mac in enumerate(DEVICES)]
    devfile = write_devices(os.path.join(tmp, "devices.csv"), rows)
    duration = float(os.environ.get("COAPGW_RESILIENCE_SECONDS", "24"))
    with gateway("res", devfile, meshsim=1, mesh_ack_timeout_ms=300, client_ack_timeout_ms=500,
                 session_rate=100000, session_burst=100000, session_max_inflight=10000,
                 cache_max_entries=0, device_queue_max=256) as gw:
        clients = []
        for i in range(4):
            cl = Client(gw)
            gw.session(cl, account="load%d" % i, query="security=none")
            clients.append(LoadClient(gw, cl))
        observers = []
        for i in range(3):
            cl = Client(gw)
            gw.session(cl, account="obs%d" % i, query="security=none")
            lc = LoadClient(gw, cl)
            lc.send("coap://%s/sensor" % DEVICES[0], observe=0)
            observers.append(lc)
        roles = ["frontend-0", "scheduler", "meshio"]
        kills = []
        rate = 200.0  # requests per second in all
        t_end = time.monotonic() + duration
        next_kill = time.monotonic() + 2.0
        next_send = time.monotonic()
        pids = {r: gw.pid(r) for r in roles}
        while time.monotonic() < t_end:
            now = time.monotonic()
            while next_send <= now:
                c = random.choice(clients)
                c.send("coap://%s/value?n=%d" % (random.choice(DEVICES), c.sent))
                next_send += 1.0 / rate
            if now >= next_kill and now < t_end - 4:
                role = random.choice(roles)
                pids = {r: gw.pid(r) for r in roles}
                if all(pids.values()):
                    os.kill(pids[role], signal.SIGKILL)
                    kills.append([role, now, None, dict(pids)])
                next_kill = now + random.uniform(1.5, 3.0)
            for c in clients + observers:
                c.pump()
            for k in kills:
                if k[2] is None:
                    newp = gw.pid(k[0])
                    if newp and newp != k[3][k[0]]:
                        k[2] = time.monotonic() - k[1]
            select.select([c.cl.sock for c in clients + observers], [], [], 0.002)
        # Drain: every pending request must get its answer.
        wait_for(lambda: drained(clients), 30, "all answers after the load")
        for c in observers:
            c.pump()
        lost = sum(len(c.pending) for c in clients)
        dup = sum(1 for c in clients for v in c.finals.values() if len(v) > 1)
        unauth = sum(1 for c in clients for v in c.finals.values() if code(4, 1) in v)
        total = sum(c.sent for c in clients)
        codes = {}
        for c in clients:
            for v in c.finals.values():
                codes[v[0]] = codes.get(v[0], 0) + 1
        print("  requests %d, answers by code %s, duplicates %d, unanswered %d (copies with a MID already "
              "taken, dropped by the clients as RFC 7252 asks: %d)" %
              (total, {("%d.%02d" % (k >> 5, k & 31)): n for k, n in sorted(codes.items())}, dup, lost,
               sum(c.copies for c in clients)))
        answered = sorted(a for c in clients for a in c.answered)
        for role, t, rec, _ in kills:
            after = [done for sent, done in answered if sent > t]
            recov = min(after) - t if after else None
            print("  killed %-10s restarted after %s, requests answered again after %s" %
                  (role, "%.0f ms" % (rec * 1000) if rec else "?", "%.0f ms" % (recov * 1000) if recov else "?"))
        assert kills, "no process was killed"
        assert lost == 0, "%d requests never got a final response" % lost
        assert dup == 0, "%d requests got more than one final response" % dup
        assert unauth == 0, "a session was lost (4.01)"
        ok = codes.get(code(2, 5), 0)
        assert ok >= total * 0.98, "too few successful answers: %d of %d" % (ok, total)
        # Observers: increasing numbers, no repeats, and still notified after the last kill.
        last_kill = max(t for _, t, _, _ in kills)
        for c in observers:
            for tok, seq in c.observe.items():
                nums = [n for _, n in seq]
                assert len(nums) >= 3, "observer got too few notifications: %r" % nums
                for a, b in zip(nums, nums[1:]):
                    assert (b - a) % (1 << 24) < (1 << 23) and a != b, "Observe went backwards: %r" % nums
                assert any(t > last_kill for t, _ in seq), "no notification after the last kill"
        # One device observation (S6.1): no orphan, no double.
        cnt = sim_counters("%s.1" % BASE)
        assert cnt["observers"] == 1, cnt
        # Only the killed role restarted, each time (the pid map before each kill).
        restarted = {r: 0 for r in roles}
        for role, _, rec, _ in kills:
            restarted[role] += 1
        st = gw.coapgw("status").stdout
        print("  " + st.replace("\n", "\n  "))
        for r in roles:
            line = [l for l in st.splitlines() if l.startswith(r.split("-")[0])]
            assert line, st
            n = int(line[0].split()[-1])
            assert n == restarted[r], "%s restarted %d times, killed %d times" % (r, n, restarted[r])


class LossyClient:
    """An RFC 7252 client whose network loses some answers: the first copy of
    a CON response (a MID not seen before), or of a piggybacked one, is dropped
    with probability `loss` (not ACKed, not delivered); copies are ACKed and, when their MID
    was already delivered, dropped as duplicates (RFC 7252 4.5), so the
    application sees each response once. Requests are retransmitted until
    ACKed or answered; the empty ACK of a request is lost with probability
    `ack_loss`, so its copy may reach another frontend after a kill."""

    def __init__(self, gw, cl, loss, rng, ack_timeout=0.5, ack_loss=0.0):
        self.cl, self.loss, self.rng, self.ack_loss = cl, loss, rng, ack_loss
        self.cl.sock.setblocking(False)
        self.pending = {}     # token -> [mid, first_sent, last_sent, tries, acked, pkt]
        self.finals = {}      # token -> codes delivered to the application
        self.seen = set()     # MIDs of CON responses delivered (the deduplication store)
        self.ack_timeout = ack_timeout
        self.sent = self.dropped = self.dups = 0

    def send(self, proxy):
        tok = os.urandom(6)
        mid = self.cl.next_mid()
        pkt = encode(CON, GET, mid, tok, [(OPT["proxy_uri"], proxy)])
        now = time.monotonic()
        self.pending[tok] = [mid, now, now, 0, False, pkt]
        self.cl.send_raw(pkt)
        self.sent += 1

    def pump(self):
        now = time.monotonic()
        for tok, p in list(self.pending.items()):
            if not p[4] and now - p[2] > self.ack_timeout * (2 ** p[3]) and p[3] < 6:
                p[2], p[3] = now, p[3] + 1
                self.cl.send_raw(p[5])
        while True:
            try:
                data, _ = self.cl.sock.recvfrom(65536)
            except BlockingIOError:
                return
            m = Msg(data)
            if m.type == ACK and m.code != 0 and (m.mid, m.token) not in self.lost_once and \
                    self.rng.random() < self.loss:
                # A piggybacked answer (a cache hit) lost: the request goes again, maybe to
                # another frontend after a kill, which never saw it (fe_guard.h).
                self.lost_once.add((m.mid, m.token))
                self.dropped += 1
                continue
            if m.code == 0:
                if m.type == ACK and self.rng.random() >= self.ack_loss:
                    for p in self.pending.values():
                        if p[0] == m.mid:
                            p[4] = True
                continue
            if m.type == CON:
                if m.mid in self.seen:
                    self.dups += 1
                    self.cl.send_raw(encode(ACK, 0, m.mid))
                    continue
                if m.mid not in self.lost_once and self.rng.random() < self.loss:
                    self.lost_once.add(m.mid)
                    self.dropped += 1
                    continue
                self.cl.send_raw(encode(ACK, 0, m.mid))
                self.seen.add(m.mid)
            self.finals.setdefault(m.token, []).append(m.code)
            self.pending.pop(m.token, None)

    lost_once = None


def test_frontend_kills_with_lossy_clients_lose_no_answer():
    """S1.3 (issue #12 item 15): with clients whose network loses answers, frontends SIGKILLed again
    and again (two on the port); every request gets exactly one final response at the client
    application, none lost: the scheduler keeps each answer with its client MID until the client
    ACKs it and a restarted frontend sends it again with the same MID. Empty ACKs are lost too, and
    the cache is on: a request's copy that reaches another frontend after a kill finds the device's
    answer fresh in the shared table, and must still not get a second answer (fe_guard.h)."""
    tmp = gwtest.scratch_dir("coapgw-res-")
    rows = [(mac, "%s.%d" % (BASE, 60 + i), "normal", KEY, 5683, 4849, "latency=1-5")
            for i, mac in enumerate(DEVICES[:4])]
    devfile = write_devices(os.path.join(tmp, "devices.csv"), rows)
    duration = float(os.environ.get("COAPGW_LOSSY_SECONDS", "14"))
    rng = random.Random(int(os.environ.get("COAPGW_LOSSY_SEED", "0")) or None)
    with gateway("lossy", devfile, meshsim=1, frontends=2, mesh_ack_timeout_ms=300,
                 client_ack_timeout_ms=400, session_rate=100000, session_burst=100000,
                 session_max_inflight=10000, device_queue_max=256) as gw:
        wait_for(lambda: gw.pid("frontend-1"), 10, "second frontend")
        clients = []
        for i in range(4):
            cl = Client(gw)
            gw.session(cl, account="lossy%d" % i, query="security=none")
            lc = LossyClient(gw, cl, 0.3, rng, ack_loss=0.3)
            lc.lost_once = set()
            clients.append(lc)
        roles = ["frontend-0", "frontend-1"]
        kills = 0
        rate = 80.0
        t_end = time.monotonic() + duration
        next_kill = time.monotonic() + 1.0
        next_send = time.monotonic()
        turn = 0
        while time.monotonic() < t_end:
            now = time.monotonic()
            while next_send <= now:
                c = rng.choice(clients)
                c.send("coap://%s/value?n=%d" % (rng.choice(DEVICES[:4]), c.sent))
                next_send += 1.0 / rate
            if now >= next_kill and now < t_end - 3:
                role = roles[turn % 2]
                pid = gw.pid(role)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
                    turn += 1
                next_kill = now + rng.uniform(0.6, 1.2)
            for c in clients:
                c.pump()
            select.select([c.cl.sock for c in clients], [], [], 0.002)
        try:
            wait_for(lambda: drained(clients), 30, "every answer after the load")
        except AssertionError:
            pass  # counted as unanswered below
        total = sum(c.sent for c in clients)
        lost = sum(len(c.pending) for c in clients)
        multi = [v for c in clients for v in c.finals.values() if len(v) > 1]
        codes = {}
        for c in clients:
            for v in c.finals.values():
                codes[v[0]] = codes.get(v[0], 0) + 1
        print("  %d requests, %d frontend kills, %d first copies lost on the way, %d copies dropped by the "
              "clients' deduplication; answers by code %s, more than one final response %d, unanswered %d" %
              (total, kills, sum(c.dropped for c in clients), sum(c.dups for c in clients),
               {("%d.%02d" % (k >> 5, k & 31)): n for k, n in sorted(codes.items())}, len(multi), lost))
        assert kills >= 6, "frontends were killed (%d)" % kills
        assert lost == 0, "%d requests never got a final response" % lost
        assert not multi, "%d requests got more than one final response: %r" % (len(multi), multi[:5])
        assert codes.get(code(2, 5), 0) >= total * 0.98, "too few successful answers: %r" % codes


def _restarted(gw, roles, old):
    pids = {r: gw.pid(r) for r in roles}
    return all(pids[r] and pids[r] != old[r] for r in roles)


def _copy_after_kills(gw, mac, dev_addr, method, answered_first):
    """One client request to a slow device (2 s, a separate response): sent once, the scheduler
    and the frontend that took it SIGKILLed (after the device took the request, or after the
    answer reached the client unACKed when answered_first), then retransmitted with the same MID
    and token until the restarted frontend ACKs it. Returns (final-answer MIDs in arrival order,
    copies after the kills, the device's executions of the request, seconds waited)."""
    cl = Client(gw)
    gw.session(cl, account="copy%d" % cl.port, query="security=none")
    cl.sock.setblocking(False)
    key = "%s /value" % ("POST" if method == POST else "GET")
    before = sim_counters(dev_addr)["by"].get(key, 0)
    tok, mid = os.urandom(8), cl.next_mid()
    payload = b"v%d" % cl.port if method == POST else b""
    pkt = encode(CON, method, mid, tok, [(OPT["proxy_uri"], "coap://%s/value" % mac)], payload)
    finals, req_acked = [], [False]

    def pump(ack_answers):
        while True:
            try:
                data, _ = cl.sock.recvfrom(65536)
            except BlockingIOError:
                return
            m = Msg(data)
            if m.code == 0:
                if m.type == ACK and m.mid == mid:
                    req_acked[0] = True
                continue
            if m.token != tok:
                continue
            finals.append(m.mid)
            if m.type == CON and ack_answers:
                cl.send_raw(encode(ACK, 0, m.mid))

    cl.send_raw(pkt)
    if answered_first:
        wait_for(lambda: pump(False) or finals, 15, "the device's answer (not ACKed)")
    else:
        wait_for(lambda: sim_counters(dev_addr)["by"].get(key, 0) == before + 1, 10,
                 "the device taking the request")
    roles = ["scheduler", "frontend-0"]
    old = {r: gw.pid(r) for r in roles}
    for r in roles:
        os.kill(old[r], signal.SIGKILL)
    wait_for(lambda: _restarted(gw, roles, old), 20, "scheduler and frontend restarted")
    # What the killed frontend sent (the empty ACK of the first copy) is read now, so only
    # the restarted frontend's ACK ends the retransmissions.
    pump(False)
    n_before = len(finals)
    t0 = time.monotonic()
    # The client's retransmissions (RFC 7252 4.2, bounded): until the request is ACKed.
    req_acked[0] = False
    tries = 0
    while not req_acked[0] and tries < 40:
        cl.send_raw(pkt)
        tries += 1
        end = time.monotonic() + 0.25
        while time.monotonic() < end and not req_acked[0]:
            select.select([cl.sock], [], [], 0.02)
            pump(True)
    assert req_acked[0], "the copy was never ACKed by the restarted frontend"
    # A second execution would answer a device latency after the first answer: wait for the
    # first answer, then two latencies more (bounded), ACKing every answer as a client does.
    wait_for(lambda: pump(True) or finals, 15, "a final answer")
    end = time.monotonic() + 5.0
    while time.monotonic() < end:
        select.select([cl.sock], [], [], 0.05)
        pump(True)
    execs = sim_counters(dev_addr)["by"].get(key, 0) - before
    cl.close()
    return finals, len(finals) - n_before, execs, time.monotonic() - t0


def test_copy_after_scheduler_and_frontend_kill_is_answered_once():
    """S1.3 (issue #12 item 15): a client's CON request to a slow device, its frontend and the
    scheduler SIGKILLed, then the client's retransmission (same MID and token) reaches the
    restarted frontend, which cannot vouch for it and forwards it. The restarted scheduler knows
    the request from the shared transaction table: one device execution, one final answer MID
    (copies of it allowed: the client's deduplication drops them), whether the device was still
    working on it (POST, GET) or the answer was kept unACKed (POST)."""
    tmp = gwtest.scratch_dir("coapgw-res-")
    addrs = ["%s.%d" % (BASE, 90 + i) for i in range(3)]
    rows = [(DEVICES[i], addrs[i], "normal", KEY, 5683, 4849, "latency=2000") for i in range(3)]
    devfile = write_devices(os.path.join(tmp, "devices.csv"), rows)
    with gateway("copy", devfile, meshsim=1, client_ack_timeout_ms=1000) as gw:
        cases = [("POST while the device works", 0, POST, False),
                 ("GET while the device works", 1, GET, False),
                 ("POST with the answer kept unACKed", 2, POST, True)]
        bad = []
        for name, i, method, first in cases:
            finals, after, execs, waited = _copy_after_kills(gw, DEVICES[i], addrs[i], method, first)
            mids = sorted(set(finals))
            print("  %-34s final answers %d (%d after the kills), distinct MIDs %d, device executions %d"
                  % (name, len(finals), after, len(mids), execs))
            if len(mids) != 1 or execs != 1 or after < 1:
                bad.append((name, finals, execs))
        assert not bad, "answered more than once, executed more than once or lost: %r" % bad


if __name__ == "__main__":
    sys.exit(run([test_kill_every_role_under_load, test_frontend_kills_with_lossy_clients_lose_no_answer,
                  test_copy_after_scheduler_and_frontend_kill_is_answered_once]))
