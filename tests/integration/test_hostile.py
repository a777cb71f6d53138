#!/usr/bin/env python3
"""Hostile traffic (SPEC S9, S3.4, S2.4): a bounded flood of malformed,
truncated, oversized and random datagrams, unauthenticated proxy requests and
bogus JWTs from many source ports on loopback, while a legitimate client
keeps working. It must keep getting correct answers, the gateway's memory
must stay bounded (RSS printed before and after) and its log rate-limited.
Also fills the session table to its configured bound."""
import os
import random
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402  (scratch_dir: temporary directories removed at exit)
from gwtest import CON, GET, NON, OPT, POST, Client, code, encode, gateway, run, wait_for, write_devices

KEY = "00112233445566778899aabbccddeeff"
DEV = "0200000000000501"
BASE = "127.0.50"


def rss_kib(gw):
    total = 0
    for role in ("frontend-0", "scheduler", "meshio", "supervisor"):
        pid = gw.pid(role)
        try:
            for line in open("/proc/%d/status" % pid):
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def garbage(rng, mid):
    kind = rng.randrange(10)
    if kind == 0:
        return os.urandom(rng.randrange(0, 64))
    if kind == 1:  # truncated header / token
        return bytes([0x48, 1, mid >> 8, mid & 255, 1, 2])
    if kind == 2:  # bad token length
        return bytes([0x40 | rng.randrange(9, 16), 1, mid >> 8, mid & 255]) + os.urandom(8)
    if kind == 3:  # oversized
        return encode(CON, POST, mid, b"o", [(OPT["uri_path"], "echo")], os.urandom(1500 + rng.randrange(3000)))
    if kind == 4:  # unknown version
        return bytes([0x80 | 0x10, 1, mid >> 8, mid & 255])
    if kind == 5:  # bad option encoding (delta 15 without payload marker semantics)
        return bytes([0x40, 1, mid >> 8, mid & 255, 0xf1, 0x00])
    if kind == 6:  # unauthenticated proxy request
        return encode(CON, GET, mid, b"u", [(OPT["proxy_uri"], "coap://%s/value" % DEV)])
    if kind == 7:  # bogus JWTs
        tok = rng.choice([b"a.b.c", b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", os.urandom(200), b"." * 300])
        return encode(CON, POST, mid, b"j", [(OPT["uri_path"], "sessions")], tok)
    if kind == 8:  # empty CON / RST / ACK noise
        return bytes([0x40 | (rng.randrange(4) << 4), 0, mid >> 8, mid & 255])
    return encode(NON, GET, mid, os.urandom(rng.randrange(9)), [(OPT["uri_path"], "x" * rng.randrange(300))])


def test_flood_while_a_client_works():
    tmp = gwtest.scratch_dir("coapgw-hostile-")
    devfile = write_devices(os.path.join(tmp, "devices.csv"),
                            [(DEV, BASE + ".1", "normal", KEY, 5683, 4849, "latency=0-1")])
    with gateway("hostile", devfile, meshsim=1, unauth_log_per_s=5, cache_max_entries=0) as gw:
        good = Client(gw)
        gw.session(good)
        r, _ = good.request(GET, proxy="coap://%s/value" % DEV)
        assert r.code == code(2, 5)
        rss0 = rss_kib(gw)
        socks = []
        for _ in range(64):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            socks.append(s)
        rng = random.Random(7)
        n_flood = int(os.environ.get("COAPGW_FLOOD", "30000"))
        ok = bad = 0
        t0 = time.monotonic()
        for i in range(n_flood):
            s = socks[i % len(socks)]
            try:
                s.sendto(garbage(rng, i & 0xffff), ("127.0.0.1", gw.port))
            except (BlockingIOError, OSError):
                pass
            if i % 300 == 0:
                for s2 in socks:  # drain answers so our own buffers stay small
                    try:
                        while s2.recv(65536):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                r, _ = good.request(GET, proxy="coap://%s/value" % DEV, timeout=5)
                if r is not None and r.code == code(2, 5):
                    ok += 1
                else:
                    bad += 1
        elapsed = time.monotonic() - t0
        # The legitimate client still works after the flood.
        r, _ = good.request(GET, proxy="coap://%s/value" % DEV)
        assert r is not None and r.code == code(2, 5), r
        rss1 = rss_kib(gw)
        print("  %d hostile datagrams in %.1fs; legitimate requests during the flood: %d ok, %d failed" %
              (n_flood, elapsed, ok, bad))
        print("  gateway RSS before %d KiB, after %d KiB" % (rss0, rss1))
        assert bad <= ok // 20, "the legitimate client was starved"
        assert rss1 - rss0 < 64 * 1024, "memory grew by %d KiB" % (rss1 - rss0)
        # Every role is still the one we started with (nothing crashed).
        st = gw.coapgw("status").stdout
        rows = [l.split() for l in st.splitlines() if l.split() and l.split()[0] in
                ("supervisor", "scheduler", "meshio", "frontend-0")]
        assert len(rows) == 4 and all(r[2] == "running" and r[-1] == "0" for r in rows), st
        warn = sum(1 for l in open(gw.log_path, errors="replace") if "no session for" in l)
        bound = 5 * (elapsed + 5) + 10 + 5
        print("  'no session' WARN lines: %d (rate limit allows about %d)" % (warn, bound))
        assert warn <= bound, "log not rate-limited"
        for s in socks:
            s.close()


def test_session_table_bound():
    """S1.6, S2.7: max_sessions is enforced (5.03) and per-account bound (4.03)."""
    tmp = gwtest.scratch_dir("coapgw-hostile-")
    devfile = write_devices(os.path.join(tmp, "devices.csv"),
                            [(DEV, BASE + ".2", "normal", KEY, 5683, 4849, "")])
    with gateway("bounds", devfile, meshsim=1, max_sessions=5, max_sessions_per_account=3) as gw:
        clients = [Client(gw) for _ in range(7)]
        codes = []
        for i, c in enumerate(clients[:4]):
            tok = gw.token("same")
            r, _ = c.request(POST, "/sessions?security=none", tok.encode())
            codes.append(r.code)
        assert codes == [code(2, 1)] * 3 + [code(4, 3)], codes
        codes = []
        for i, c in enumerate(clients[3:]):
            tok = gw.token("acct%d" % i)
            r, _ = c.request(POST, "/sessions?security=none", tok.encode())
            codes.append(r.code)
        assert codes == [code(2, 1)] * 2 + [code(5, 3)] * 2, codes


if __name__ == "__main__":
    sys.exit(run([test_flood_while_a_client_works, test_session_table_bound]))
