#!/usr/bin/env python3
"""Integration tests through real processes: the supervisor, frontend,
scheduler and meshio, the mesh simulator, libcoap's coap-client-notls and
coap-server-notls. Clause numbers refer to PROTOCOL.md at the repository root."""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwtest import (ACK, CON, DELETE, GET, NON, OPT, POST, PUT, RST, Client, Msg, code, coap_server, encode, scratch_dir,
                    gateway, run, sim_counters, wait_for, write_devices)

KEY = "00112233445566778899aabbccddeeff"
NORMAL = "0200000000000001"
MILLI = "0200000000000002"
SILENT = "0200000000000003"
LIBCOAP = "0200000000000009"
BUSY_TEXT = (b"Request blocked by device serialization requirements, another request is enqueued or in "
             b"process for this device.")


def devices(tmpdir, base="127.0.20"):
    rows = [
        (NORMAL, base + ".1", "normal", KEY, 5683, 4849, "latency=1-3;obs_period=400"),
        (MILLI, base + ".2", "milli", KEY, 5683, 4849, "latency=1-2"),
        (SILENT, base + ".3", "normal", KEY, 5683, 4849, "silent"),
    ]
    return write_devices(os.path.join(tmpdir, "devices.csv"), rows)


def sim_gateway(name, **cfg):
    d = scratch_dir("coapgw-dev-")
    base = "127.0.%d" % (20 + (abs(hash(name)) % 200))
    cfg.setdefault("meshsim", 1)
    cfg.setdefault("mesh_ack_timeout_ms", 200)
    cfg.setdefault("milli_timeout_ms", 3000)
    ctx = gateway(name, devices(d, base), **cfg)
    ctx.gw.base = base
    return ctx


def test_first_request_with_coap_client():
    """S2.1, S2.4, S3.1, S4.1: the shell-script flow with libcoap's coap-client."""
    with gateway("first", devices_file=None) as gw:
        # The embedded default: simulated devices from the generated file.
        devfile = os.path.join(gw.data_dir, "meshsim-devices.csv")
        wait_for(lambda: os.path.exists(devfile), 10, "generated devices file")
        rows = [l for l in open(devfile).read().splitlines() if l and not l.startswith(("#", "mac,"))]
        mac = rows[0].split(",")[0]
        tok = gw.token("alice")
        port = str(Client(gw).port)  # a free port for coap-client -p
        gwuri = "coap://127.0.0.1:%d" % gw.port

        def cc(*args):
            r = subprocess.run(["coap-client-notls", "-B", "10", "-p", port] + list(args), capture_output=True,
                               text=True, timeout=30)
            return r.stdout + r.stderr

        # Before any session: 4.01 (S2.4).
        out = cc("-P", gwuri, "coap://%s/value" % mac)
        assert "4.01" in out, out
        out = cc("-m", "post", "-e", tok, gwuri + "/sessions?security=none")
        assert "4.01" not in out and "4.0" not in out, out
        out = cc("-P", gwuri, "coap://%s/value" % mac)
        assert out.strip() and "4.0" not in out and "5.0" not in out, out
        out = cc("-m", "delete", gwuri + "/sessions")
        out = cc("-P", gwuri, "coap://%s/value" % mac)
        assert "4.01" in out, out


def test_separate_response_after_empty_ack():
    """S3.1: a proxied CON is ACKed at once (empty) and answered separately with the client's token."""
    with sim_gateway("sep") as gw:
        c = Client(gw)
        gw.session(c)
        r, seen = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r is not None, seen
        assert seen[0].type == ACK and seen[0].code == 0, seen
        assert r.type == CON and r.code == code(2, 5), r
        assert r.payload == b"0", r


def test_unauthorized_from_other_port():
    """S2.4: the session is bound to address and port."""
    with sim_gateway("unauth") as gw:
        a, b = Client(gw), Client(gw)
        gw.session(a)
        r, _ = b.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r is not None and r.code == code(4, 1) and r.payload, r
        assert r.type == ACK, "4.01 is piggybacked"
        log = open(gw.log_path).read()
        assert "127.0.0.1:%d" % b.port in log, "WARN line names the endpoint"


def test_sticky_moves_session():
    """S2.5: sticky=true re-points the account's session; the old endpoint loses it."""
    with sim_gateway("sticky") as gw:
        a, b = Client(gw), Client(gw)
        first = gw.session(a, query="security=none")
        second = gw.session(b, query="security=none&sticky=true")
        assert first.opts(OPT["location_path"]) == second.opts(OPT["location_path"])
        r, _ = b.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5), r
        r, _ = a.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(4, 1), r


def test_single_session():
    """S2.6: single=true refuses a second session of the account with 4.03."""
    with sim_gateway("single") as gw:
        a, b = Client(gw), Client(gw)
        gw.session(a, query="security=none&single=true")
        tok = gw.token("alice")
        r, _ = b.request(POST, "/sessions?security=none", tok.encode())
        assert r.code == code(4, 3), r


def test_local_resources_and_ping():
    """S8.1, S3.4, S3.6: local resources without a session, ping gets RST, bad version ignored.
    Without a session the answers come in small blocks (S9.1: at most 3x the request)."""
    with sim_gateway("local") as gw:
        c = Client(gw)
        r, _ = c.request(GET, "/.well-known/core")
        assert r.code == code(2, 5) and r.payload.startswith(b"</sessions>") and r.uint(OPT["content_format"]) == 40
        assert r.opt(OPT["block2"]) is not None, r
        r, _ = c.request(POST, "/echo", b"hello")
        assert r.payload == b"hello", r
        r, _ = c.request(GET, "/help")
        assert r.code == code(2, 5) and r.payload.startswith(b"coapgw") and r.opt(OPT["block2"]) is not None, r
        gw.session(c)  # with a session, the whole document at once
        r, _ = c.request(GET, "/help")
        assert r.code == code(2, 5) and b"sessions/<id>" in r.payload, r
        mid = c.next_mid()
        c.send_raw(encode(CON, 0, mid))
        m = c.recv(3)
        assert m is not None and m.type == RST and m.mid == mid, m
        c.send_raw(bytes([0x81, 1, 0, 1, 0x11]))  # version 2
        assert c.recv(0.5) is None
        mid = c.next_mid()
        c.send_raw(bytes([0x40, 1, mid >> 8, mid & 255, 0xff]))  # payload marker, no payload
        m = c.recv(3)
        assert m is not None and m.type == RST and m.mid == mid, m


def test_block2_well_known_core():
    """S8.2: Block2 with 16-byte blocks reassembles /.well-known/core (the whole
    document is what a client with a session gets in one answer)."""
    with sim_gateway("block") as gw:
        c = Client(gw)
        owner = Client(gw)
        gw.session(owner)
        whole, _ = owner.request(GET, "/.well-known/core")
        assert whole.opt(OPT["block2"]) is None, whole
        body, num = b"", 0
        for _ in range(200):
            r, _ = c.request(GET, "/.well-known/core", options=[(OPT["block2"], (num << 4) | 0)])
            blk = r.uint(OPT["block2"])
            assert blk >> 4 == num and blk & 7 == 0, r
            body += r.payload
            if not blk & 8:
                break
            num += 1
        assert body == whole.payload and num > 2
        out = subprocess.run(["coap-client-notls", "-B", "10", "-b", "16",
                              "coap://127.0.0.1:%d/.well-known/core" % gw.port],
                             capture_output=True, timeout=30).stdout
        assert whole.payload in out, out


def test_duplicate_con_not_forwarded_twice():
    """S3.3: a retransmitted client CON is ACKed again and never forwarded twice."""
    with sim_gateway("dup", meshsim=1) as gw:
        c = Client(gw)
        gw.session(c)
        before = sim_counters(gw.base + ".1")["requests"]
        mid = c.next_mid()
        pkt = encode(CON, GET, mid, b"dd", [(OPT["proxy_uri"], "coap://%s/value" % NORMAL)])
        c.send_raw(pkt)
        c.send_raw(pkt)
        c.send_raw(pkt)
        got = []
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            m = c.recv(0.5)
            if m is None and any(x.code == code(2, 5) for x in got):
                break
            if m:
                got.append(m)
        acks = [m for m in got if m.type == ACK and m.mid == mid]
        answers = [m for m in got if m.code == code(2, 5)]
        assert len(acks) >= 2 and len(answers) == 1, got
        assert sim_counters(gw.base + ".1")["requests"] == before + 1


def test_mid_reused_with_new_token_is_a_new_request():
    """S3.3, RFC 7252 4.5: a retransmission is an identical copy, so a MID reused within
    EXCHANGE_LIFETIME with another token is a new request (a forwarding node above ~130
    requests a second to one owner, S10.4): it gets its own answer, never the earlier
    request's stored answer or an empty ACK for a request never executed."""
    with sim_gateway("midreuse") as gw:
        c = Client(gw)
        gw.session(c)

        def final(pkt, token, mid, timeout=6.0):
            c.send_raw(pkt)
            got = []
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                m = c.recv(max(0.01, deadline - time.monotonic()))
                if m is None:
                    break
                got.append(m)
                if m.code != 0 and (m.token == token or m.mid == mid):
                    return m, got
            return None, got

        # Local resources: the first answer is stored for retransmissions.
        mid = c.next_mid()
        r, got = final(encode(CON, GET, mid, b"LA", [(OPT["uri_path"], ".well-known"),
                                                     (OPT["uri_path"], "core")]), b"LA", mid)
        assert r is not None and r.token == b"LA" and r.payload.startswith(b"</sessions>"), got
        r, got = final(encode(CON, GET, mid, b"LB", [(OPT["uri_path"], "help")]), b"LB", mid)
        assert r is not None, got
        assert r.token == b"LB" and r.payload.startswith(b"coapgw"), "replayed another answer: %r" % (got,)

        # Device resources: X, then Y with the same MID and another token.
        before = sim_counters(gw.base + ".1")["requests"]
        mid = c.next_mid()
        r, got = final(encode(CON, GET, mid, b"XA", [(OPT["proxy_uri"], "coap://%s/value" % NORMAL)]),
                       b"XA", mid)
        assert r is not None and r.token == b"XA" and r.code == code(2, 5) and r.payload == b"0", got
        pkt_b = encode(CON, GET, mid, b"YB", [(OPT["proxy_uri"], "coap://%s/.well-known/core" % NORMAL)])
        r, got = final(pkt_b, b"YB", mid)
        assert r is not None, "no answer to a new request that reused a MID: %r" % (got,)
        assert r.token == b"YB" and r.code == code(2, 5) and r.uint(OPT["content_format"]) == 40, got
        assert r.payload.startswith(b"<"), r
        wait_for(lambda: sim_counters(gw.base + ".1")["requests"] == before + 2, 5,
                 "both requests reached the device")
        # Its own retransmission is still a duplicate: ACKed again, never forwarded twice.
        c.send_raw(pkt_b)
        m = c.recv(3)
        assert m is not None and m.type == ACK and m.mid == mid, m
        assert sim_counters(gw.base + ".1")["requests"] == before + 2


def test_proxy_errors():
    """S4.1, S4.2, S4.3, S4.7: clear errors for bad proxy requests."""
    with sim_gateway("errs") as gw:
        c = Client(gw)
        gw.session(c)
        r, _ = c.request(GET, proxy="coap://0badc0de0badc0de/x")
        assert r.code == code(5, 2) and r.payload, r
        r, _ = c.request(GET, proxy="http://%s/value" % NORMAL)
        assert r.code == code(5, 5), r
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL, options=[(OPT["uri_path"], "x")])
        assert r.code == code(4, 2), r
        r, _ = c.request(GET, proxy="coap://%s:4849/value" % NORMAL)  # security=none session
        assert r.code == code(4, 0), r
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL, options=[(2014, b"x")])  # unknown unsafe
        assert r.code == code(4, 2), r
        r, _ = c.request(PUT, proxy="coap://%s/value" % NORMAL, options=[(OPT["block1"], 0x08)], payload=b"x" * 16)
        assert r.code == code(4, 2), r
        r, _ = c.request(GET, proxy="coap://%s/../value" % NORMAL)
        assert r.code == code(4, 0), r
        big = encode(CON, POST, c.next_mid(), b"bg", [(OPT["proxy_uri"], "coap://%s/echo" % NORMAL)], b"x" * 1300)
        c.send_raw(big)
        m = c.recv(3)
        assert m.code == code(4, 13) and m.uint(OPT["size1"]) == 1152, m


def test_milli_serialization():
    """S4.5: a second request to a busy Milli gets 5.03 at once with the fixed payload and Max-Age."""
    with sim_gateway("milli") as gw:
        a, b = Client(gw), Client(gw)
        gw.session(a)
        gw.session(b, query="security=none")
        tok = os.urandom(4)
        a.send_raw(encode(CON, GET, a.next_mid(), tok, [(OPT["proxy_uri"], "coap://%s/value" % MILLI)]))
        ack = a.recv(2)
        assert ack.type == ACK and ack.code == 0, ack
        r, _ = b.request(GET, proxy="coap://%s/value" % MILLI, timeout=2)
        assert r.code == code(5, 3) and r.payload == BUSY_TEXT and r.opt(OPT["max_age"]) is not None, r
        first = wait_for(lambda: a.recv(0.2), 10, "first Milli answer")
        assert first.token == tok and first.code == code(2, 5), first


def test_retries_then_504():
    """S4.4: 4 transmissions in all to a silent device, then 5.04."""
    with sim_gateway("retry", mesh_ack_timeout_ms=100) as gw:
        c = Client(gw)
        gw.session(c)
        t0 = time.monotonic()
        r, _ = c.request(GET, proxy="coap://%s/value" % SILENT, timeout=10)
        assert r is not None and r.code == code(5, 4), r
        # 100 + 200 + 400 + 800 ms at least (first timeout in [T, 1.5T]).
        assert time.monotonic() - t0 >= 1.4
        cnt = sim_counters(gw.base + ".3")
        assert cnt["requests"] == 1 and cnt["duplicates"] == 3, cnt


def test_cache_one_upstream_request():
    """S5.1: a cached 2.05 answers the second GET without the device."""
    with sim_gateway("cache") as gw:
        c = Client(gw)
        gw.session(c)
        before = sim_counters(gw.base + ".1")["by"].get("GET /value", 0)
        r1, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        r2, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r1.code == r2.code == code(2, 5) and r1.payload == r2.payload
        assert sim_counters(gw.base + ".1")["by"].get("GET /value", 0) == before + 1
        r3, _ = c.request(PUT, proxy="coap://%s/value" % NORMAL, payload=b"42")
        assert r3.code == code(2, 4), r3
        r4, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r4.payload == b"42", r4


def test_netmgr_security():
    """S7.1: a netmgr session reaches the device on 4849 with encrypted frames."""
    with sim_gateway("sec") as gw:
        c = Client(gw)
        gw.session(c, query="security=netmgr")
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5) and r.payload == b"0", r
        r, _ = c.request(GET, proxy="coap://%s:4849/value" % NORMAL)
        assert r.code == code(2, 5), r


def test_real_coap_server_device():
    """S7.3: libcoap's coap-server-notls works as a plain-port device."""
    d = scratch_dir("coapgw-dev-")
    srv = coap_server("127.0.31.9")
    try:
        f = write_devices(os.path.join(d, "devices.csv"), [(LIBCOAP, "127.0.31.9", "normal", KEY, 5683, 4849, "")])
        with gateway("libcoap", devices_file=f, meshsim=0) as gw:
            c = Client(gw)
            gw.session(c)
            r, _ = c.request(GET, proxy="coap://%s/" % LIBCOAP.upper())
            assert r is not None and r.code == code(2, 5) and b"libcoap" in r.payload.lower() or b"coap" in r.payload.lower(), r
    finally:
        srv.terminate()
        srv.wait(5)


def test_crash_restart_each_role():
    """S1.1, S1.2, S1.3: SIGKILL each role; only it restarts; the next request succeeds."""
    with sim_gateway("crash") as gw:
        c = Client(gw)
        gw.session(c)
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5)
        for role in ("frontend-0", "scheduler", "meshio"):
            pids = {x: gw.pid(x) for x in ("frontend-0", "scheduler", "meshio")}
            os.kill(pids[role], signal.SIGKILL)
            wait_for(lambda: gw.pid(role) and gw.pid(role) != pids[role], 10, "%s restarted" % role)
            for other in pids:
                if other != role:
                    assert gw.pid(other) == pids[other], "%s was restarted too" % other
            r = wait_for(lambda: (lambda x: x if x and x.code == code(2, 5) else None)(
                c.request(GET, proxy="coap://%s/value?r=%s" % (NORMAL, role), timeout=3)[0]), 15,
                "a request after restarting %s" % role)
            assert r.code == code(2, 5)


def test_observe_fan_out():
    """S6.1-S6.4, S6.6: five observers share one device observation; each gets every
    notification with its own token and increasing numbers, also after the scheduler
    is SIGKILLed mid-stream; one cancel leaves the others; the last cancel reaches
    the device."""
    with sim_gateway("obs") as gw:
        clients = [Client(gw) for _ in range(5)]
        for i, cl in enumerate(clients):
            gw.session(cl, account="u%d" % i)
        before = sim_counters(gw.base + ".1")
        toks = []
        for cl in clients:
            tok = os.urandom(3)
            toks.append(tok)
            r, _ = cl.request(GET, proxy="coap://%s/sensor" % NORMAL, token=tok, options=[(OPT["observe"], 0)])
            assert r is not None and r.code == code(2, 5) and r.opt(OPT["observe"]) is not None, r
        after = sim_counters(gw.base + ".1")
        # S6.2: one registration, and one refresh per further joiner, all under one observation.
        assert after["obs_register"] - before["obs_register"] == 5, (before, after)
        assert after["observers"] == 1, after
        seen = {tok: [] for tok in toks}

        def collect(until, want):
            deadline = time.monotonic() + until
            while time.monotonic() < deadline and min(len(v) for v in seen.values()) < want:
                for cl, tok in zip(clients, toks):
                    m = cl.recv(0.05)
                    if m and m.token == tok and m.opt(OPT["observe"]) is not None:
                        seen[tok].append(m.uint(OPT["observe"]))
        collect(15, 2)
        old = gw.pid("scheduler")
        os.kill(old, signal.SIGKILL)
        wait_for(lambda: gw.pid("scheduler") and gw.pid("scheduler") != old, 10, "scheduler restarted")
        counts = {t: len(v) for t, v in seen.items()}
        collect(20, max(counts.values()) + 2)
        for tok, nums in seen.items():
            assert len(nums) >= counts[tok] + 2, "notifications resumed for every observer: %r" % seen
            for a, b in zip(nums, nums[1:]):
                assert a != b and (b - a) % (1 << 24) < (1 << 23), "strictly increasing, never repeated: %r" % nums
        # S6.4: one observer leaves; the others stay; the last one reaches the device.
        for k, (cl, tok) in enumerate(zip(clients, toks)):
            r, _ = cl.request(GET, proxy="coap://%s/sensor" % NORMAL, token=tok, options=[(OPT["observe"], 1)])
            # Notifications already on their way may come first; the answer has no Observe.
            for _ in range(20):
                if r is not None and r.token == tok and r.code != 0 and r.opt(OPT["observe"]) is None:
                    break
                r = wait_for(lambda: cl.recv(0.5), 10, "answer to the cancel")
            assert r is not None and r.token == tok and r.code == code(2, 5) and r.opt(OPT["observe"]) is None, r
            if k < len(clients) - 1:
                assert sim_counters(gw.base + ".1")["observers"] == 1, "not the last observer: not cancelled"
        wait_for(lambda: sim_counters(gw.base + ".1")["observers"] == 0, 10, "device observation cancelled")

def metric(gw, name, role):
    for line in gw.coapgw("metrics").stdout.splitlines():
        if line.startswith("coapgw_%s" % name) and 'role="%s"' % role in line:
            return int(float(line.split()[-1]))
    raise AssertionError("metric %s{role=%s} not found" % (name, role))


def test_client_retransmission_backoff():
    """S3.2: a separate CON response is retransmitted with growing gaps until ACK."""
    with sim_gateway("rtx", client_ack_timeout_ms=200, client_max_retransmit=3) as gw:
        c = Client(gw)
        gw.session(c)
        c.auto_ack = False
        tok = b"rx"
        c.send_raw(encode(CON, GET, c.next_mid(), tok, [(OPT["proxy_uri"], "coap://%s/value" % NORMAL)]))
        times, mids = [], set()
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and len(times) < 4:
            m = c.recv(0.5)
            if m and m.token == tok and m.code == code(2, 5):
                assert m.type == CON
                times.append(time.monotonic())
                mids.add(m.mid)
        assert len(times) == 4, "first transmission and 3 retransmissions, got %d" % len(times)
        assert len(mids) == 1, "retransmissions keep the MID"
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert gaps[0] >= 0.18 and gaps[1] > gaps[0] * 1.5 and gaps[2] > gaps[1] * 1.5, gaps
        assert c.recv(1.5) is None, "no fifth transmission"


def test_two_frontends_share_the_port():
    """S1.4: two frontends on one port; any serves any client; one dies, the port keeps answering."""
    with sim_gateway("twofe", frontends=2) as gw:
        wait_for(lambda: gw.pid("frontend-1"), 10, "frontend-1")
        clients = [Client(gw) for _ in range(12)]
        for i, c in enumerate(clients):
            gw.session(c, account="fe%d" % i)
        for c in clients:
            r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
            assert r is not None and r.code == code(2, 5), r
        st = gw.coapgw("metrics").stdout
        rx = {}
        for line in st.splitlines():
            if line.startswith("coapgw_rx_datagrams_total") and 'role="frontend"' in line:
                rx[line.split('frontend="')[1][0]] = int(float(line.split()[-1]))
        assert rx.get("0", 0) > 0 and rx.get("1", 0) > 0, "both frontends served clients: %r" % rx
        old = gw.pid("frontend-0")
        os.kill(old, signal.SIGKILL)
        for c in clients:  # sessions are shared: whichever frontend gets the datagram answers
            r = wait_for(lambda: (lambda x: x if x and x.code == code(2, 5) else None)(
                c.request(GET, proxy="coap://%s/value?again" % NORMAL, timeout=3)[0]), 15, "answer")
            assert r.code == code(2, 5)


def test_replayed_frame_is_dropped():
    """S7.1: a captured secured frame sent again is dropped and counted."""
    with sim_gateway("replay") as gw:
        c = Client(gw)
        gw.session(c, query="security=netmgr")
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5)
        before = metric(gw, "mesh_replays_total", "meshio")
        dev = Client(gw)
        dev.gw = type("D", (), {"port": 5683})()
        dev.sock.sendto(encode(CON, POST, 7, b"r", [(OPT["uri_path"], "_sim"), (OPT["uri_path"], "replay")]),
                        (gw.base + ".1", 5683))
        dev.sock.settimeout(2)
        ans = Msg(dev.sock.recvfrom(2048)[0])
        assert ans.code == code(2, 4), ans
        wait_for(lambda: metric(gw, "mesh_replays_total", "meshio") == before + 1, 5, "replay counted")
        r, _ = c.request(GET, proxy="coap://%s/value?after" % NORMAL)
        assert r.code == code(2, 5), "traffic goes on"


def test_meshio_restart_never_reuses_a_nonce():
    """S7.1: SIGKILL meshio during netmgr traffic; the device never sees a (key, nonce) twice."""
    with sim_gateway("nonce", mesh_seq_block=8) as gw:
        c = Client(gw)
        gw.session(c, query="security=netmgr")
        for k in range(4):
            for i in range(5):
                r, _ = c.request(GET, proxy="coap://%s/value?k=%d&i=%d" % (NORMAL, k, i), timeout=5)
                assert r is not None and r.code == code(2, 5), r
            old = gw.pid("meshio")
            os.kill(old, signal.SIGKILL)
            wait_for(lambda: gw.pid("meshio") and gw.pid("meshio") != old, 10, "meshio restarted")
        r = wait_for(lambda: (lambda x: x if x and x.code == code(2, 5) else None)(
            c.request(GET, proxy="coap://%s/value?end" % NORMAL, timeout=3)[0]), 15, "answer after restarts")
        cnt = sim_counters(gw.base + ".1")
        assert cnt["secure"] >= 21 and cnt["nonce_reuse"] == 0 and cnt["auth_failures"] == 0, cnt


def test_no_response_option():
    """S4.9: No-Response is honoured: suppressed 2.xx is not sent; errors still are."""
    with sim_gateway("noresp") as gw:
        c = Client(gw)
        gw.session(c)
        tok = b"nr"
        c.send_raw(encode(NON, PUT, c.next_mid(), tok, [(OPT["proxy_uri"], "coap://%s/value" % NORMAL),
                                                        (OPT["no_response"], 2)], b"5"))
        assert c.recv(1.0) is None, "2.xx suppressed"
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.payload == b"5", "the PUT did reach the device"
        r, _ = c.request(GET, proxy="coap://%s/nothing" % NORMAL, options=[(OPT["no_response"], 2)])
        assert r is not None and r.code == code(4, 4), r


def test_block2_size_preference_on_proxied_get():
    """S4.7: Block2 NUM 0 on a proxied GET is a size preference served from the stored answer."""
    with sim_gateway("pblock") as gw:
        c = Client(gw)
        gw.session(c)
        whole, _ = c.request(GET, proxy="coap://%s/large" % NORMAL)
        assert whole.code == code(2, 5) and len(whole.payload) > 256, whole
        body, num = b"", 0
        for _ in range(100):
            r, _ = c.request(GET, proxy="coap://%s/large" % NORMAL, options=[(OPT["block2"], (num << 4) | 4)])
            assert r is not None and r.code == code(2, 5), r
            blk = r.uint(OPT["block2"])
            assert blk >> 4 == num and blk & 7 == 4, r
            body += r.payload
            if not blk & 8:
                break
            num += 1
        assert body == whole.payload and num >= 3


def test_registry_changes_while_running():
    """S7.2: the device registry is re-read on SIGHUP, all or nothing; while
    devices_file is set it is the only source (`devices import` refuses)."""
    d = scratch_dir("coapgw-dev-")
    base = "127.0.33"
    rows = [(NORMAL, base + ".1", "normal", KEY, 5683, 4849, "")]
    f = write_devices(os.path.join(d, "devices.csv"), rows)
    with gateway("registry", f, meshsim=1) as gw:
        c = Client(gw)
        gw.session(c)
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5), r
        new = "0200000000000077"
        r, _ = c.request(GET, proxy="coap://%s/value" % new)
        assert r.code == code(5, 2), r
        # `coapgw devices import` would be undone by the next SIGHUP: refused.
        f2 = write_devices(os.path.join(d, "more.csv"), rows + [(new, base + ".2", "normal", KEY, 5683, 4849, "")])
        res = gw.coapgw("devices", "import", f2, check=False)
        assert res.returncode != 0 and "devices_file" in res.stderr, res
        assert new not in gw.coapgw("devices", "list").stdout
        # Editing devices_file and SIGHUP adds the device.
        write_devices(f, rows + [(new, base + ".2", "normal", KEY, 5683, 4849, "")])
        os.kill(gw.pid("supervisor"), signal.SIGHUP)
        wait_for(lambda: new in gw.coapgw("devices", "list").stdout, 10, "device added by SIGHUP")
        lst = gw.coapgw("devices", "list").stdout
        assert KEY not in lst, lst
        # A bad line is reported with its number and the file changes nothing.
        with open(f, "a") as fh:
            fh.write("not-a-mac,1.2.3.4,normal,%s\n" % KEY)
            fh.write("0200000000000078,%s.3,normal,%s,5683,4849\n" % (base, KEY))
        os.kill(gw.pid("supervisor"), signal.SIGHUP)
        wait_for(lambda: "devices.csv:4" in open(gw.log_path).read(), 10, "bad line reported with its number")
        wait_for(lambda: "keeps its 2 devices" in open(gw.log_path).read(), 10, "the refusal logged")
        lst = gw.coapgw("devices", "list").stdout
        assert new in lst and "0200000000000078" not in lst, lst
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5), r


def test_metrics_over_http():
    """S10.2: metrics in the Prometheus text format from the supervisor."""
    import urllib.request
    from gwtest import free_udp_port
    import socket as so
    s = so.socket(so.AF_INET, so.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with sim_gateway("metrics", metrics_listen="127.0.0.1:%d" % port) as gw:
        c = Client(gw)
        gw.session(c)
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5)
        body = wait_for(lambda: urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=2).read().decode(),
                        10, "metrics endpoint")
        assert "# TYPE coapgw_requests_proxied_total counter" in body, body[:500]
        assert 'coapgw_up{role="scheduler"} 1' in body
        proxied = [l for l in body.splitlines() if l.startswith("coapgw_requests_proxied_total") and "frontend" in l]
        assert proxied and int(float(proxied[0].split()[-1])) >= 1, proxied
        assert "coapgw_restarts_total" in body and "coapgw_sessions_live" in body


def _old_session(key, v):
    """The record of session v (current layout, at endpoint key) in the layout
    before issue 13: struct gw_session raw, 280 bytes. Returns (record, id,
    account)."""
    assert v[0] == 2 and len(v) < 280, "a record in the current layout: %r" % v
    alen = v[37]
    acct = v[38:38 + alen]
    p = 38 + alen
    scope_all, n = v[p], v[p + 1]
    p += 2
    entries = b""
    for _ in range(n):
        nib = v[p]
        entries += v[p + 1:p + 1 + (nib + 1) // 2].ljust(8, b"\0") + bytes([nib])
        p += 1 + (nib + 1) // 2
    # id, ep, account[64], 4 flags, pad[4] + alignment, 3 times, scope n/all/e[16], tail.
    old = (v[1:9] + key + acct.ljust(64, b"\0") + v[9:13] + b"\0" * 8 + v[13:37] +
           bytes([n, scope_all]) + entries.ljust(16 * 9, b"\0"))
    return old.ljust(280, b"\0"), v[1:9], acct


def _state_to_old_layout(state_dir):
    """Rewrites data_dir/state as coapgw wrote it before issue 13, with
    lmdb-utils (mdb_dump -a, mdb_load into a fresh environment): session
    records raw (280 bytes), sess_acct account -> session id, sess_id id ->
    endpoint. Returns the number of sessions."""
    dump = subprocess.run(["mdb_dump", "-a", state_dir], capture_output=True, check=True, text=True,
                          timeout=30).stdout.splitlines()
    sections, cur = [], []
    for line in dump:
        if line.startswith("db_pagesize="):
            continue  # mdb_load does not know it
        if line == "duplicates=1":
            line = "dupsort=1"  # what mdb_load reads for MDB_DUPSORT (sess_acct)
        cur.append(line)
        if line == "DATA=END":
            sections.append(cur)
            cur = []
    name = lambda sec: next(x.split("=", 1)[1] for x in sec if x.startswith("database="))
    by = {name(sec): sec for sec in sections}
    assert {"sessions", "sess_acct", "sess_id"} <= set(by), sorted(by)
    sess = by["sessions"]
    h = sess.index("HEADER=END") + 1
    recs, acct_links, id_links = [], [], []
    for hk, hv in zip(sess[h:-1:2], sess[h + 1:-1:2]):
        key = bytes.fromhex(hk.strip())
        old, sid, acct = _old_session(key, bytes.fromhex(hv.strip()))
        recs += [hk, " " + old.hex()]
        acct_links.append((acct, sid))
        id_links.append((sid, key))
    by["sessions"] = sess[:h] + recs + ["DATA=END"]
    for db, pairs in (("sess_acct", sorted(acct_links)), ("sess_id", sorted(id_links))):
        sec = by[db]
        h = sec.index("HEADER=END") + 1
        by[db] = sec[:h] + [" " + x.hex() for kv in pairs for x in kv] + ["DATA=END"]
    fresh = os.path.join(os.path.dirname(state_dir), "state-old")
    os.mkdir(fresh)
    path = os.path.join(os.path.dirname(state_dir), "state-old.dump")
    with open(path, "w") as f:
        f.write("\n".join(line for sec in by.values() for line in sec) + "\n")
    subprocess.run(["mdb_load", "-f", path, fresh], check=True, timeout=30)
    os.chmod(os.path.join(fresh, "data.mdb"), 0o600)  # as coapgw creates it (S9.2 checks)
    os.replace(os.path.join(fresh, "data.mdb"), os.path.join(state_dir, "data.mdb"))
    check = subprocess.run(["mdb_dump", "-s", "sessions", state_dir], capture_output=True, check=True,
                           text=True, timeout=30).stdout.splitlines()
    vals = check[check.index("HEADER=END") + 1:check.index("DATA=END")][1::2]
    assert vals and all(len(bytes.fromhex(x.strip())) == 280 for x in vals), vals
    links = subprocess.run(["mdb_dump", "-s", "sess_acct", state_dir], capture_output=True, check=True,
                           text=True, timeout=30).stdout.splitlines()
    links = links[links.index("HEADER=END") + 1:links.index("DATA=END")][1::2]
    assert len(links) == len(vals) and all(len(bytes.fromhex(x.strip())) == 8 for x in links), links
    return len(vals)


def test_sessions_of_the_previous_layout_survive_an_upgrade():
    """S1.3, S2: a gateway upgraded in place keeps its sessions. Sessions
    written as before issue 13 (fixed-size records, account -> id links and
    the id index) are found after a restart, with their device scope, count
    for their account, and end as before."""
    with sim_gateway("upgrade", max_sessions_per_account=1) as gw:
        c, other = Client(gw), Client(gw)
        gw.session(c, devices="0200000000000001")
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5), r
        gw.stop()
        assert _state_to_old_layout(os.path.join(gw.data_dir, "state")) == 1
        gw.start()
        r, _ = c.request(GET, proxy="coap://%s/value?again" % NORMAL)
        assert r is not None and r.code == code(2, 5), "the session survived the upgrade: %r" % (r,)
        r, _ = c.request(GET, proxy="coap://%s/value" % MILLI)
        assert r is not None and r.code == code(4, 3), "its device scope too: %r" % (r,)
        tok = gw.token("alice")
        r, _ = other.request(POST, "/sessions?security=none", tok.encode())
        assert r is not None and r.code == code(4, 3), "it counts for its account: %r" % (r,)
        r, _ = c.request(DELETE, "/sessions")
        assert r is not None and r.code == code(2, 2), r
        r, _ = c.request(GET, proxy="coap://%s/value?after" % NORMAL)
        assert r is not None and r.code == code(4, 1), r
        gw.session(other)  # its account slot was released with it


TESTS = [
    test_first_request_with_coap_client,
    test_separate_response_after_empty_ack,
    test_unauthorized_from_other_port,
    test_sticky_moves_session,
    test_single_session,
    test_local_resources_and_ping,
    test_block2_well_known_core,
    test_duplicate_con_not_forwarded_twice,
    test_mid_reused_with_new_token_is_a_new_request,
    test_proxy_errors,
    test_milli_serialization,
    test_retries_then_504,
    test_cache_one_upstream_request,
    test_netmgr_security,
    test_real_coap_server_device,
    test_observe_fan_out,
    test_crash_restart_each_role,
    test_client_retransmission_backoff,
    test_two_frontends_share_the_port,
    test_replayed_frame_is_dropped,
    test_meshio_restart_never_reuses_a_nonce,
    test_no_response_option,
    test_block2_size_preference_on_proxied_get,
    test_registry_changes_while_running,
    test_metrics_over_http,
    test_sessions_of_the_previous_layout_survive_an_upgrade,
]

if __name__ == "__main__":
    sys.exit(run(TESTS))
