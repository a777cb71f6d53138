#!/usr/bin/env python3
"""Security suite, network side (issue #12 items 4, 5, 6, 7, 12): real gateway
processes on loopback, attackers that forge their source address with raw
sockets (IP_HDRINCL UDP from 127.0.x.y, so the test runs as root), answers
measured in bytes where they land. Each test prints what it tried and asserts
the refusal. Clause numbers refer to PROTOCOL.md."""
import json
import os
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import gwtest  # noqa: E402  (scratch_dir: temporary directories removed at exit)
from gwtest import (ACK, CON, DELETE, GET, POST, RST, Client, Msg, code, code_str, encode, gateway, run,  # noqa: E402
                    wait_for, write_devices)

KEY = "00112233445566778899aabbccddeeff"
DEV = "0200000000000c01"
OPT_URI_PATH, OPT_URI_QUERY, OPT_OBSERVE, OPT_BLOCK1, OPT_BLOCK2, OPT_PROXY_URI = 11, 15, 6, 27, 23, 35


def net(i):
    """The simulated device's /24 for case i: 127.<100 + pid % 100>.<230 + i>, clear of the
    127.0.x ranges the other suites use, and of a suite run beside this one (another pid)."""
    return "127.%d.%d" % (100 + os.getpid() % 100, 230 + i)


def sim_gateway(name, base, **cfg):
    """A gateway with one simulated device at base.1 (the embedded simulator)."""
    d = gwtest.scratch_dir("coapgw-secnet-")
    f = write_devices(os.path.join(d, "devices.csv"),
                      [(DEV, base + ".1", "normal", KEY, 5683, 4849, "latency=0-1;obs_period=300")])
    cfg.setdefault("meshsim", 1)
    return gateway(name, f, **cfg)


# ---------------------------------------------------------------- forged sources

class Spoofer:
    """Sends UDP datagrams with a forged IPv4 source (raw socket, IP_HDRINCL)."""

    def __init__(self):
        if os.geteuid() != 0:
            raise AssertionError("spoofed-source cases need root for raw sockets (CI runs as root)")
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
        self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        self.ident = 1

    def send(self, src, sport, dport, payload, dst="127.0.0.1"):
        udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none (IPv4)
        self.ident = (self.ident + 1) & 0xffff
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), self.ident, 0, 64, socket.IPPROTO_UDP, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
        self.sock.sendto(ip + udp, (dst, 0))

    def close(self):
        self.sock.close()


class Catcher:
    """A socket at the forged address: what the gateway sends to the victim lands here."""

    def __init__(self, addr, port=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((addr, port))
        self.addr, self.port = self.sock.getsockname()

    def all(self, quiet=0.5, limit=100000, first=5.0):
        """Every datagram until none came for `quiet` seconds (waiting up to `first` seconds for the
        first one, so a loaded machine does not split one answer across cases; bounded)."""
        out = []
        while len(out) < limit:
            self.sock.settimeout(quiet if out else first)
            try:
                out.append(self.sock.recv(65536))
            except socket.timeout:
                break
        return out

    def close(self):
        self.sock.close()


def req(method, path, mid, token=b"", payload=b"", extra=()):
    p, _, q = path.partition("?")
    opts = [(OPT_URI_PATH, s) for s in p.strip("/").split("/") if s]
    opts += [(OPT_URI_QUERY, s) for s in q.split("&") if s]
    return encode(CON, method, mid, token, opts + list(extra), payload)


def sync(gw, client):
    """Waits until the gateway has handled everything sent before (its socket is FIFO): a ping
    from a client holding a session comes back as RST."""
    mid = client.next_mid()
    client.send_raw(encode(CON, 0, mid))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = client.recv(max(0.05, deadline - time.monotonic()))
        if m is not None and m.type == RST and m.mid == mid:
            return
    raise AssertionError("the gateway did not answer a ping within 30 s")


def metric(gw, name):
    total = 0
    found = False
    for line in gw.coapgw("metrics").stdout.splitlines():
        if line.startswith("coapgw_%s" % name) and not line.startswith("#"):
            total += int(float(line.split()[-1]))
            found = True
    assert found, "metric %s not exported" % name
    return total


def session_doc(client):
    r, _ = client.request(GET, "/sessions")
    assert r is not None and r.code == code(2, 5), r
    return json.loads(r.payload)


# ---------------------------------------------------------------- item 4

def test_spoofed_session_request_cannot_take_over_another_account():
    """Item 4, S2.10: from a victim's address:port, a forged POST /sessions?security=none with the
    attacker's own valid token (plain, then sticky) gets 4.03 and changes nothing; the WARN line
    names both accounts."""
    with sim_gateway("spoof-take", net(1)) as gw:
        spoofer = Spoofer()
        victim = Client(gw, host="127.0.0.5")
        gw.session(victim, "alice", query="")  # security=netmgr (the default)
        before = session_doc(victim)
        mallory = gw.token("mallory")
        for n, query in enumerate(["security=none", "security=none&sticky=true"]):
            victim.inbox.clear()
            spoofer.send(victim.sock.getsockname()[0], victim.port, gw.port,
                         req(POST, "/sessions?" + query, 0x7100 + n, b"sp", mallory.encode()))
            m = victim.recv(5)
            print("  forged POST /sessions?%s from %s:%d as mallory -> %s %r" %
                  (query, victim.sock.getsockname()[0], victim.port, m and code_str(m.code), m and m.payload))
            assert m is not None and m.code == code(4, 3) and m.payload, "refused with 4.03 and a diagnostic: %r" % m
        after = session_doc(victim)
        print("  victim's session before %s/%s, after %s/%s" %
              (before["account"], before["security"], after["account"], after["security"]))
        assert after == before, "the victim's session changed: %r -> %r" % (before, after)
        r, _ = victim.request(GET, proxy="coap://%s/value" % DEV)
        assert r is not None and r.code == code(2, 5), "the victim still works under its own account: %r" % r
        log = open(gw.log_path, errors="replace").read()
        assert any("mallory" in line and "alice" in line and "WARN" in line for line in log.splitlines()), \
            "a WARN line names both accounts"
        spoofer.close()


def test_spoofed_delete_needs_the_session_id():
    """Item 4, S2.7: DELETE /sessions/<id> with an id that is not the victim's (forged source) gets
    4.04 and ends nothing; the victim's own DELETE by id works. (The bare DELETE /sessions stays for
    existing scripts and does not resist a forged source: documented in /help and the README.)"""
    with sim_gateway("spoof-del", net(2)) as gw:
        spoofer = Spoofer()
        victim = Client(gw, host="127.0.0.6")
        created = gw.session(victim, "alice")
        sid = b"/".join(created.opts(8)).decode()
        assert sid.startswith("sessions/"), created
        real = sid.split("/")[1]
        assert json.loads(created.payload)["id"] == real, "the JSON names the same id"
        guess = "%016x" % (int(real, 16) ^ 0x5a5a)
        victim.inbox.clear()
        spoofer.send("127.0.0.6", victim.port, gw.port, req(DELETE, "/sessions/" + guess, 0x7200, b"d"))
        m = victim.recv(5)
        print("  forged DELETE /sessions/%s -> %s" % (guess, m and code_str(m.code)))
        assert m is not None and m.code == code(4, 4), m
        assert session_doc(victim)["id"] == real, "the session lives on"
        r, _ = victim.request(DELETE, "/sessions/" + real)
        assert r is not None and r.code == code(2, 2), r
        r, _ = victim.request(GET, proxy="coap://%s/value" % DEV)
        assert r is not None and r.code == code(4, 1), r
        spoofer.close()


# ---------------------------------------------------------------- item 5

def test_sessionless_answers_are_at_most_3x_the_request():
    """Item 5, S9.1 (RFC 7252 11.3): every answer to a source without a session is at most 3 times
    its request, measured in bytes where it lands; /help still reassembles block by block."""
    with sim_gateway("amp", net(3)) as gw:
        spoofer = Spoofer()
        victim = Catcher("127.0.0.7")
        cases = [
            ("GET /help", req(GET, "/help", 1)),
            ("GET /.well-known/core", req(GET, "/.well-known/core", 2)),
            ("4.01 to a proxy request", encode(CON, GET, 3, b"", [(OPT_PROXY_URI, "coap://x")])),
            ("4.01 to a proxy request (MAC)", encode(CON, GET, 4, b"", [(OPT_PROXY_URI, "coap://%s/v" % DEV)])),
            ("ping", encode(CON, 0, 5)),
            ("POST /sessions with a bad token", req(POST, "/sessions", 6, b"", b"a.b.c")),
            ("GET /devices", req(GET, "/devices", 7)),
            ("GET /sessions", req(GET, "/sessions", 8)),
            ("DELETE /sessions", req(DELETE, "/sessions", 9)),
            ("GET /nothing", req(GET, "/x", 10)),
            ("PUT /help", req(3, "/help", 11)),
        ]
        worst = 0.0
        for what, data in cases:
            spoofer.send(victim.addr, victim.port, gw.port, data)
            got = victim.all(quiet=0.4)
            size = sum(len(x) for x in got)
            ratio = size / len(data)
            worst = max(worst, ratio)
            print("  %-32s %4d bytes -> %d answer(s), %4d bytes (%.1fx)" % (what, len(data), len(got), size, ratio))
            assert got, "%s: answered" % what
            assert size <= 3 * len(data), "%s: %d bytes answer %d bytes" % (what, len(data), size)
        # /help block by block from the forged source: every block within 3x, the whole reassembles.
        body, num, szx = b"", 0, None
        for i in range(200):
            extra = [] if szx is None else [(OPT_BLOCK2, (num << 4) | szx)]
            data = req(GET, "/help", 100 + i, b"", b"", extra)
            spoofer.send(victim.addr, victim.port, gw.port, data)
            got = victim.all(quiet=0.3, limit=1)
            assert len(got) == 1, "block %d answered" % num
            assert len(got[0]) <= 3 * len(data), "block %d: %d -> %d bytes" % (num, len(data), len(got[0]))
            m = Msg(got[0])
            blk = m.uint(OPT_BLOCK2)
            assert m.code == code(2, 5) and blk is not None, m
            body += m.payload
            if not blk & 8:
                break
            szx, num = blk & 7, (blk >> 4) + 1
            time.sleep(0.03)  # stay within the per-source rate (sessionless_rate, 20/s)
        print("  /help reassembled from %d blocks: %d bytes; worst ratio %.1fx" % (num + 1, len(body), worst))
        assert b"DELETE coap://<gateway>/sessions/<id>" in body and body.endswith(b"\n"), body
        victim.close()
        spoofer.close()


def test_sessionless_rate_limit_per_source():
    """Item 5, S9.1: 400 forged /help requests from one address (default bucket: 40, then 20/s) draw
    at most the bucket's answers; the drops are counted in the metrics."""
    with sim_gateway("rate", net(4)) as gw:
        spoofer = Spoofer()
        victim = Catcher("127.0.0.8")
        owner = Client(gw)
        gw.session(owner)
        n = 400
        t0 = time.monotonic()
        for i in range(n):
            spoofer.send(victim.addr, victim.port, gw.port, req(GET, "/help", i & 0xffff))
        sync(gw, owner)
        elapsed = time.monotonic() - t0
        got = victim.all(quiet=0.5)
        size = sum(len(x) for x in got)
        bound = 40 + 20 * elapsed + 2
        print("  %d forged requests in %.2fs drew %d answers (%d bytes); the bucket allows about %d" %
              (n, elapsed, len(got), size, bound))
        assert len(got) <= bound, "rate limit: %d answers" % len(got)
        assert len(got) >= 20, "the bucket's answers do go out"
        dropped = metric(gw, "sessionless_dropped")
        print("  metric sessionless_dropped = %d" % dropped)
        assert dropped >= n - len(got) - 5, dropped
        r, _ = owner.request(GET, proxy="coap://%s/value" % DEV)
        assert r is not None and r.code == code(2, 5), "a client with a session is not limited: %r" % r
        victim.close()
        spoofer.close()


# ---------------------------------------------------------------- item 6

def test_dedup_filled_by_forged_requests_keeps_a_new_sessions_answer():
    """Item 6, S3.3: 16000 forged requests (/help, then /x) from 250 addresses fill the dedup store
    and its answer bytes; then a client creates a session, and the retransmission of its POST /sessions
    still gets the same 2.01, not an empty ACK."""
    with sim_gateway("dedupfill", net(5)) as gw:
        spoofer = Spoofer()
        owner = Client(gw)
        gw.session(owner, "watcher")
        sent = 0
        # Large answers first, then small ones to fill what is left of a byte budget.
        for batch in range(32):
            path = "/help" if batch < 28 else "/x"
            for k in range(500):
                i = batch * 500 + k
                spoofer.send("127.0.1.%d" % (1 + i % 250), 20000 + i % 30000, gw.port,
                             req(GET, path, i & 0xffff, b"h"))
                sent += 1
            sync(gw, owner)
        print("  %d forged requests (/help, then /x) from 250 addresses handled" % sent)
        c = Client(gw)
        tok = gw.token("alice")
        post = req(POST, "/sessions?security=none", 0x4242, b"pst", tok.encode())
        # As a CON client does (RFC 7252 4.2): retransmit when no answer came within
        # ACK_TIMEOUT. Sessionless sources are rate-limited per address in buckets chosen
        # by a keyed hash (S9.1); this address may share one with a forged address the flood
        # just drained, and then only the retransmission, after the refill, is admitted.
        dropped0 = metric(gw, "sessionless_dropped")
        first, sends = None, 0
        while first is None and sends < 4:
            c.send_raw(post)
            sends += 1
            first = c.recv(3)
        print("  POST /sessions answered after %d transmission(s)" % sends)
        assert first is not None and first.code == code(2, 1), first
        # A transmission without an answer must be one the rate limiter counted, not one
        # the filled dedup store lost.
        assert metric(gw, "sessionless_dropped") - dropped0 >= sends - 1, "unanswered, not rate-limited"
        c.send_raw(post)  # the client did not see the answer: it retransmits
        again = c.recv(5)
        print("  POST /sessions -> %s; its retransmission -> %s" %
              (code_str(first.code), again and ("%s (%d bytes)" % (code_str(again.code), len(again.raw)))))
        assert again is not None and again.code == code(2, 1), "not an empty ACK: %r" % again
        assert again.raw == first.raw, "the same 2.01 (the same session)"
        spoofer.close()


def test_block_table_churned_by_forged_sources_keeps_a_sessions_transfer():
    """Item 6, S8.2: a client with a session is in the middle of a Block1 upload; 320 forged sources
    start uploads of their own (more than the 256-slot table); the client's transfer completes."""
    with sim_gateway("blockfill", net(6)) as gw:
        spoofer = Spoofer()
        c = Client(gw)
        gw.session(c)
        part = b"0123456789abcdef"
        r, _ = c.request(POST, "/echo", part, options=[(OPT_BLOCK1, (0 << 4) | 8 | 0)])
        assert r is not None and r.code == code(2, 31), r
        for i in range(320):
            spoofer.send("127.0.2.%d" % (1 + i % 250), 30000 + i, gw.port,
                         req(POST, "/echo", i, b"b", part, [(OPT_BLOCK1, (0 << 4) | 8 | 0)]))
        sync(gw, c)
        r, _ = c.request(POST, "/echo", b"end", options=[(OPT_BLOCK1, (1 << 4) | 0 | 0)])
        print("  after 320 forged Block1 starts, the client's block 1 -> %s %r" % (r and code_str(r.code),
                                                                                    r and r.payload))
        assert r is not None and r.code == code(2, 4) and r.payload == part + b"end", r
        spoofer.close()


def test_observers_per_session_are_bounded():
    """Item 6, S6.4: one session may hold obs_max_per_session observers; one more registration gets
    4.29 with a diagnostic."""
    with sim_gateway("obscap", net(7), obs_max_per_session=3) as gw:
        c = Client(gw)
        gw.session(c)
        codes = []
        for i in range(4):
            r, _ = c.request(GET, proxy="coap://%s/sensor" % DEV, token=b"ob%d" % i, options=[(OPT_OBSERVE, 0)])
            codes.append(r and code_str(r.code))
        print("  4 registrations of one session with obs_max_per_session=3 -> %s (%r)" % (codes, r and r.payload))
        assert codes[:3] == ["2.05"] * 3, codes
        assert r is not None and r.code == code(4, 29) and b"obs_max_per_session" in r.payload, r


# ---------------------------------------------------------------- item 7

def test_sticky_move_ends_observers_at_the_old_endpoint():
    """Item 7, S2.5, RFC 7641 3.2: after a sticky move, the observer at the old endpoint gets one final
    4.01 notification and nothing after it; the new endpoint can observe."""
    with sim_gateway("stickyobs", net(8)) as gw:
        old = Client(gw)
        gw.session(old, "alice")
        r, _ = old.request(GET, proxy="coap://%s/sensor" % DEV, token=b"old", options=[(OPT_OBSERVE, 0)])
        assert r is not None and r.code == code(2, 5), r
        wait_for(lambda: any(m.token == b"old" for m in [old.recv(1)] if m), 10, "a notification")
        new = Client(gw)
        gw.session(new, "alice", query="security=none&sticky=true")
        final = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and final is None:
            m = old.recv(1)
            if m is not None and m.token == b"old" and m.code != code(2, 5):
                final = m
        print("  old endpoint's final notification: %s %r" % (final and code_str(final.code), final and final.payload))
        assert final is not None and final.code == code(4, 1) and final.opt(OPT_OBSERVE) is None, final
        later = [m for m in (old.recv(0.5) for _ in range(4)) if m is not None and m.token == b"old"]
        assert not later, "no notification after the final one: %r" % later
        r, _ = new.request(GET, proxy="coap://%s/sensor" % DEV, token=b"new", options=[(OPT_OBSERVE, 0)])
        assert r is not None and r.code == code(2, 5), r


# ---------------------------------------------------------------- item 12

def test_json_answers_cannot_be_injected():
    """Item 12, S2.3, S8.1: account names with quotes do not inject keys into the session JSON; GET
    /devices with a device-scoped token is a JSON array, and [] when the scope matches nothing."""
    def strict(payload):
        def no_dup(pairs):
            keys = [k for k, _ in pairs]
            assert len(keys) == len(set(keys)), "duplicate keys %r" % keys
            return dict(pairs)
        return json.loads(payload, object_pairs_hook=no_dup)

    with sim_gateway("json", net(9)) as gw:
        for account in ['x","security":"netmgr', 'ev"il']:
            c = Client(gw)
            r, _ = c.request(POST, "/sessions?security=none", gw.token(account).encode())
            print("  account %r -> %s %r" % (account, r and code_str(r.code), r and r.payload))
            assert r is not None and r.code == code(2, 1), r
            doc = strict(r.payload)
            assert doc["account"] == account and doc["security"] == "none", doc
        c = Client(gw)
        gw.session(c, "scoped", devices=DEV[:6])
        r, _ = c.request(GET, "/devices")
        print("  /devices with scope %s -> %s %r" % (DEV[:6], r and code_str(r.code), r and r.payload))
        assert r is not None and r.code == code(2, 5), r
        assert strict(r.payload) == [{"mac": DEV, "type": "normal"}], r.payload
        c2 = Client(gw)
        gw.session(c2, "nothing", devices="ffff")
        r, _ = c2.request(GET, "/devices")
        print("  /devices with scope ffff -> %s %r" % (r and code_str(r.code), r and r.payload))
        assert r is not None and r.code == code(2, 5) and strict(r.payload) == [], r


if __name__ == "__main__":
    sys.exit(run([
        test_spoofed_session_request_cannot_take_over_another_account,
        test_spoofed_delete_needs_the_session_id,
        test_sessionless_answers_are_at_most_3x_the_request,
        test_sessionless_rate_limit_per_source,
        test_dedup_filled_by_forged_requests_keeps_a_new_sessions_answer,
        test_block_table_churned_by_forged_sources_keeps_a_sessions_transfer,
        test_observers_per_session_are_bounded,
        test_sticky_move_ends_observers_at_the_old_endpoint,
        test_json_answers_cannot_be_injected,
    ]))
