#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Two gateway instances as two nodes of one cluster (issue 16 item 3, S10.4).

Both share one devices file and one JWT key; only node 0 runs the simulator.
Each device is owned by exactly one node (rendezvous hashing of its MAC,
`coapgw devices list` prints it); the owner alone speaks to the device. A
node that receives a request for a device it does not own forwards it to the
owner as an ordinary CoAP proxy request, on a session it opened there with a
node token (meshio/mesh_peer.h). So clients on either node reach every
device, and the simulator counts no nonce reuse, no replay, no
authentication failure, one Milli request in flight and one observation.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwtest import (ACK, CON, GET, OPT, POST, Client, Gateway, code, encode, free_udp_port, run,  # noqa: E402
                    scratch_dir, sim_counters, wait_for, write_devices)

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

BUSY_TEXT = (b"Request blocked by device serialization requirements, another request is enqueued or in "
             b"process for this device.")
SLOW_MILLI = "02000000000000f1"


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=")


def hs256(key, claims):
    """A compact HS256 JWT, as any token issuer would sign it."""
    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(key, head + b"." + body, hashlib.sha256).digest())
    return head + b"." + body + b"." + sig

KEY = "00112233445566778899aabbccddeeff"


def owners_of(gw):
    """mac -> owner from `coapgw devices list`, and the header."""
    out = gw.coapgw("devices", "list").stdout.splitlines()
    hdr = out[0].split(",")
    assert hdr[-1] == "owner", out[0]
    return {l.split(",")[0]: int(l.split(",")[-1]) for l in out[1:] if l}


def two_nodes(name, per_node=({}, {}), **extra):
    d = scratch_dir("coapgw-mn-")
    base = "127.0.%d" % (20 + (os.getpid() + 97) % 200)
    # Enough devices that both nodes own some of each type.
    rows = []
    for i in range(1, 13):
        typ = "milli" if i % 2 == 0 else "normal"
        # Normal devices notify every second with Max-Age 60: an observer that stops hearing them
        # within seconds has lost its path, not a re-registration (S6.5).
        sim = "latency=1-2" if typ == "milli" else "latency=1-2;obs_period=1000;max_age=60"
        rows.append(("02000000000000%02x" % i, "%s.%d" % (base, i), typ, KEY, 5683, 4849, sim))
    # A Milli slow enough that requests through both nodes overlap.
    rows.append((SLOW_MILLI, "%s.%d" % (base, 40), "milli", KEY, 5683, 4849, "latency=700-800"))
    devs = write_devices(os.path.join(d, "devices.csv"), rows)
    keyf = os.path.join(d, "jwt.key")
    with open(os.open(keyf, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as f:
        f.write(os.urandom(32).hex().encode())
    ports = [free_udp_port(), free_udp_port()]
    while ports[1] == ports[0]:
        ports[1] = free_udp_port()
    nodes = ",".join("127.0.0.1:%d" % p for p in ports)
    gws = []
    for i in range(2):
        gws.append(Gateway("%s%d" % (name, i), devs, listen="127.0.0.1:%d" % ports[i], jwt_key_file=keyf,
                           node_id=i, node_count=2, nodes=nodes, meshsim=1 if i == 0 else 0,
                           mesh_ack_timeout_ms=300, milli_timeout_ms=3000, **dict(extra, **per_node[i])))
    gws[0].port, gws[1].port = ports
    gws[0].keyf = gws[1].keyf = keyf
    return gws, rows


class Nodes:
    """Context manager: two started nodes; their logs are printed on failure."""

    def __init__(self, name, **extra):
        self.gws, self.rows = two_nodes(name, **extra)

    def __enter__(self):
        try:
            for g in self.gws:
                g.start()
        except Exception:
            self.__exit__(AssertionError, None, None)
            raise
        return self.gws, self.rows

    def __exit__(self, et, ev, tb):
        if et is not None:
            for g in self.gws:
                g.dump_log()
        for g in self.gws:
            g.stop()
            g.cleanup()


def metric(gw, name):
    """The sum of the instance's coapgw_<name>_total series (coapgw metrics)."""
    total = 0
    for line in gw.coapgw("metrics").stdout.splitlines():
        if line.startswith("coapgw_%s_total" % name):
            total += float(line.split()[-1])
    return total


def sessions_ended(gw):
    return metric(gw, "sessions_ended")


def no_crypto_trouble(rows):
    for r in rows:
        cnt = sim_counters(r[1])
        for k in ("nonce_reuse", "replays", "auth_failures"):
            assert cnt.get(k, 0) == 0, (r[0], k, cnt)


def test_refused_when_keys_disagree():
    """S10.4: node_count without nodes, or a listen port other than its entry: exit 78 naming the key."""
    d = scratch_dir("coapgw-mn-cfg-")
    for extra, key in (("node_count = 2\n", "nodes"),
                       ("node_count = 2\nnode_id = 1\nnodes = 127.0.0.1:1,127.0.0.1:2\n", "nodes"),
                       ("node_count = 2\nnode_id = 2\nnodes = 127.0.0.1:1,127.0.0.1:2\n", "node_id")):
        g = Gateway("mncfg", None)
        with open(g.cfg_path, "a") as f:
            f.write(extra)
        r = g.coapgw("config", "--check", check=False)
        g.cleanup()
        assert r.returncode == 78 and key in r.stderr and r.stderr.count("\n") <= 1, (extra, r.returncode, r.stderr)
    # Nodes sign their session tokens at each other with the shared HS256 key: none configured, exit 78.
    g = Gateway("mncfg", None)
    with open(g.cfg_path, "a") as f:
        f.write("node_count = 2\nnodes = 127.0.0.1:%d,127.0.0.1:1\n" % g.port)
    r = g.coapgw("config", "--check", check=False)
    g.cleanup()
    assert r.returncode == 78 and "jwt_key_file" in r.stderr and r.stderr.count("\n") <= 1, (r.returncode, r.stderr)


def test_clients_on_both_nodes_reach_every_device():
    """S10.4: both nodes print the same owner column; a client of either node reaches every device (normal
    and Milli, security none and netmgr) and gets the device's own answer (POST /echo, never cached):
    through the owner directly, through the other node forwarded to the owner. Each request reaches the
    device once; the simulator sees no nonce reuse, no replay, no authentication failure."""
    with Nodes("mnf") as (gws, rows):
        own = [owners_of(g) for g in gws]
        assert own[0] == own[1] and len(own[0]) == len(rows), own
        for want in (0, 1):
            for typ in ("normal", "milli"):
                assert any(own[0][r[0]] == want and r[2] == typ for r in rows), "node %d owns no %s" % (want, typ)
        for sec in ("security=none", "security=netmgr"):
            clients = [Client(g) for g in gws]
            try:
                for g, c in zip(gws, clients):
                    g.session(c, query=sec)
                port = 4849 if sec.endswith("netmgr") else 5683
                for r in rows:
                    if r[0] == SLOW_MILLI:
                        continue
                    mac, addr = r[0], r[1]
                    before = sim_counters(addr)["requests"]
                    for i, c in enumerate(clients):
                        body = ("%s via node %d %s" % (mac, i, sec)).encode()
                        m, _ = c.request(POST, proxy="coap://%s:%d/echo" % (mac, port), payload=body, timeout=8)
                        assert m is not None, "no answer from node %d for %s (%s)" % (i, mac, sec)
                        assert m.code == code(2, 4) and m.payload == body, (i, mac, own[0][mac], m)
                    m, _ = clients[1 - own[0][mac]].request(GET, proxy="coap://%s:%d/value" % (mac, port))
                    assert m is not None and m.code == code(2, 5), (mac, m)
                    after = sim_counters(addr)["requests"]
                    assert after == before + 3, (mac, before, after)
            finally:
                for c in clients:
                    c.close()
        no_crypto_trouble(rows)
        for r in rows:
            if r[0] != SLOW_MILLI:
                assert sim_counters(r[1]).get("secure", 0) >= 1, r
        # S10.2: each node's meshio counts what it forwarded and got back, and its two sessions.
        for g in gws:
            for name, least in (("node_forwarded", 1), ("node_received", 1), ("node_sessions", 2)):
                assert metric(g, name) >= least, (name, metric(g, name))


def test_milli_through_both_nodes_at_once():
    """S4.5 across nodes: a Milli asked through both nodes at once answers one client; the other gets
    exactly the 5.03 with the fixed payload and Max-Age, and the device sees one request."""
    with Nodes("mnm") as (gws, rows):
        clients = [Client(g) for g in gws]
        try:
            for g, c in zip(gws, clients):
                g.session(c)
            addr = next(r[1] for r in rows if r[0] == SLOW_MILLI)
            # The forwarded request first opens the node session: warm it with a normal device.
            other = next(r[0] for r in rows if r[2] == "normal" and owners_of(gws[0])[r[0]] != 0)
            m, _ = clients[0].request(GET, proxy="coap://%s/value" % other)
            assert m is not None and m.code == code(2, 5), m
            before = sim_counters(addr)["requests"]
            got = [None, None]

            def ask(i):
                got[i], _ = clients[i].request(GET, proxy="coap://%s/value" % SLOW_MILLI, timeout=8)

            ts = [threading.Thread(target=ask, args=(i,)) for i in (0, 1)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(15)
            assert all(g is not None for g in got), got
            ok = [g for g in got if g.code == code(2, 5)]
            busy = [g for g in got if g.code == code(5, 3)]
            assert len(ok) == 1 and len(busy) == 1, got
            assert busy[0].payload == BUSY_TEXT and busy[0].opt(OPT["max_age"]) is not None, busy[0]
            assert sim_counters(addr)["requests"] == before + 1
        finally:
            for c in clients:
                c.close()
        no_crypto_trouble(rows)


def test_observers_on_both_nodes_one_registration():
    """S6.1 across nodes: observers of one resource on both nodes share one observation at the device
    (its observer table holds one entry); both get notifications; when both leave, the device's
    observation ends."""
    with Nodes("mno") as (gws, rows):
        own = owners_of(gws[0])
        for mac, addr in ((r[0], r[1]) for r in rows if r[2] == "normal"):
            if own[mac] == 1:
                break  # a device of node 1 observed from node 0: forwarded
        clients = [Client(g) for g in gws]
        try:
            for g, c in zip(gws, clients):
                g.session(c, query="security=netmgr")
            toks = [b"obs-n0", b"obs-n1"]
            for i in (0, 1):
                m, _ = clients[i].request(GET, proxy="coap://%s/sensor" % mac, options=[(6, b"")], token=toks[i])
                assert m is not None and m.code == code(2, 5) and m.opt(6) is not None, (i, m)
            cnt = sim_counters(addr)
            assert cnt["observers"] == 1, cnt
            for i in (0, 1):
                n = wait_for(lambda: next((x for x in iter(lambda: clients[i].recv(0.3), None)
                                           if x.token == toks[i] and x.opt(6) is not None), None),
                             10, "a notification at node %d" % i)
                assert n.code == code(2, 5)
            for i in (0, 1):
                m, _ = clients[i].request(GET, proxy="coap://%s/sensor" % mac, options=[(6, b"\x01")],
                                          token=toks[i])
                assert m is not None, "no answer to the deregistration at node %d" % i
            wait_for(lambda: sim_counters(addr)["observers"] == 0, 10, "the device's observation ended")
        finally:
            for c in clients:
                c.close()
        no_crypto_trouble(rows)


def test_node_token_only_from_node_addresses():
    """S10.4: a token with a node claim opens a session only from that node's address (nodes), never
    for the receiving node itself: 4.01 and a WARN naming the address otherwise."""
    with Nodes("mnt") as (gws, rows):
        key = open(gws[0].keyf, "rb").read()
        now = int(time.time())
        outsider = Client(gws[1], host="127.0.0.2")
        insider = Client(gws[1])
        try:
            tok = hs256(key, {"sub": "node-0", "node": 0, "exp": now + 600})
            r, _ = outsider.request(POST, "/sessions?security=none", tok)
            assert r is not None and r.code == code(4, 1), r
            assert b"node" in r.payload, r.payload
            wait_for(lambda: "127.0.0.2" in open(gws[1].log_path, errors="replace").read(), 5,
                     "a WARN naming the address")
            self_tok = hs256(key, {"sub": "node-1", "node": 1, "exp": now + 600})
            r, _ = insider.request(POST, "/sessions?security=none", self_tok)
            assert r is not None and r.code == code(4, 1), r
            r, _ = insider.request(POST, "/sessions?security=none", tok)
            assert r is not None and r.code == code(2, 1), r
            assert json.loads(r.payload)["node"] == 0, r.payload
        finally:
            outsider.close()
            insider.close()


def test_node_session_not_rate_limited():
    """S2.8 stays per client session: many clients of node 0 asking node 1's devices at once all get
    their answers, although every forwarded request shares one node session at node 1 whose own
    session_rate / session_burst (2) would refuse most of them."""
    with Nodes("mnr", session_rate=1, session_burst=2) as (gws, rows):
        own = owners_of(gws[0])
        far = [r[0] for r in rows if own[r[0]] == 1 and r[2] == "normal"]
        clients = [Client(gws[0]) for _ in range(4)]
        try:
            for i, c in enumerate(clients):
                gws[0].session(c, account="user%d" % i)
            results = []

            def burst(c, i):
                for k in range(2):
                    body = ("c%d-%d" % (i, k)).encode()
                    m, _ = c.request(POST, proxy="coap://%s/echo" % far[k % len(far)], payload=body)
                    results.append((m, body))

            ts = [threading.Thread(target=burst, args=(c, i)) for i, c in enumerate(clients)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(30)
            assert len(results) == 8, results
            for m, body in results:
                assert m is not None and m.code == code(2, 4) and m.payload == body, (m, body)
        finally:
            for c in clients:
                c.close()


def test_forwarded_request_survives_scheduler_sigkill():
    """S1.3 across nodes: the forwarding node's scheduler is SIGKILLed while a request to a slow Milli
    of the other node is in flight; its successor finds the exchange in shared memory, attributes the
    owner's late answer to it, and the client gets exactly that answer."""
    with Nodes("mnk") as (gws, rows):
        own = owners_of(gws[0])
        via = 1 - own[SLOW_MILLI]
        c = Client(gws[via])
        try:
            gws[via].session(c)
            tok = b"kill-1"
            mid = c.next_mid()
            c.send_raw(encode(CON, GET, mid, tok, [(OPT["proxy_uri"], "coap://%s/value" % SLOW_MILLI)]))
            ack = c.recv(3)
            assert ack is not None and ack.type == ACK and ack.code == 0, ack
            addr = next(r[1] for r in rows if r[0] == SLOW_MILLI)
            wait_for(lambda: sim_counters(addr)["requests"] >= 1, 5, "the request at the device")
            old = gws[via].pid("scheduler")
            os.kill(old, 9)
            wait_for(lambda: gws[via].pid("scheduler") not in (0, old), 10, "a new scheduler")
            finals = []
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                m = c.recv(0.3)
                if m is not None and m.token == tok and m.code != 0:
                    finals.append(m)
            assert len(finals) >= 1 and finals[0].code == code(2, 5), finals
            assert len({(m.mid, m.code) for m in finals}) == 1, finals
        finally:
            c.close()
        no_crypto_trouble(rows)


def test_observation_survives_meshio_sigkill():
    """S1.3, S6.6 across nodes: the forwarding node's meshio is SIGKILLed while it holds an observation
    at the owner; its successor takes the same peer port, so the owner's next notifications still
    reach the observer within a few notification periods (1 s; without the port, only the
    re-registration after Max-Age, 60 s, would bring them back)."""
    with Nodes("mnq") as (gws, rows):
        own = owners_of(gws[0])
        mac = next(r[0] for r in rows if own[r[0]] == 1 and r[2] == "normal")
        c = Client(gws[0])
        try:
            gws[0].session(c)
            tok = b"obs-kill"
            m, _ = c.request(GET, proxy="coap://%s/sensor" % mac, options=[(6, b"")], token=tok)
            assert m is not None and m.code == code(2, 5) and m.opt(6) is not None, m

            def notification(after):
                x = c.recv(0.3)
                return x if x is not None and x.token == tok and x.opt(6) is not None and \
                    x.uint(6) > after else None

            first = wait_for(lambda: notification(m.uint(6)), 5, "a notification before the kill")
            old = gws[0].pid("meshio")
            os.kill(old, 9)
            wait_for(lambda: gws[0].pid("meshio") not in (0, old), 10, "a new meshio")
            wait_for(lambda: notification(first.uint(6)), 8, "a notification after the kill")
        finally:
            c.close()
        no_crypto_trouble(rows)


def test_lost_node_session_answers_503_then_reopens():
    """S10.4: when the owner has dropped our node session (here its session_idle_s is 2 s while the
    forwarding node renews only every 5 minutes), the owner's 4.01 reaches the client as a 5.03 with
    a short diagnostic, the session is opened again, and the client's retry is answered."""
    with Nodes("mnl", per_node=({"session_idle_s": 2}, {"session_idle_s": 600})) as (gws, rows):
        own = owners_of(gws[0])
        far = next(r[0] for r in rows if own[r[0]] == 0 and r[2] == "normal")
        c = Client(gws[1])
        try:
            gws[1].session(c)
            m, _ = c.request(POST, proxy="coap://%s/echo" % far, payload=b"one")
            assert m is not None and m.code == code(2, 4) and m.payload == b"one", m
            # The owner's idle timeout passes with no traffic: its sweep ends our node session.
            wait_for(lambda: sessions_ended(gws[0]) >= 1, 15, "the owner's sweep ending the node session")
            m, _ = c.request(POST, proxy="coap://%s/echo" % far, payload=b"two")
            assert m is not None and m.code == code(5, 3), m
            assert b"re-authenticating" in m.payload, m.payload
            m = wait_for(lambda: (lambda r: r if r is not None and r.code == code(2, 4) else None)(
                c.request(POST, proxy="coap://%s/echo" % far, payload=b"three", timeout=2)[0]),
                10, "an answer after the session re-opened")
            assert m.payload == b"three", m
        finally:
            c.close()


if __name__ == "__main__":
    sys.exit(run([test_refused_when_keys_disagree, test_clients_on_both_nodes_reach_every_device,
                  test_milli_through_both_nodes_at_once, test_observers_on_both_nodes_one_registration,
                  test_node_token_only_from_node_addresses, test_node_session_not_rate_limited,
                  test_forwarded_request_survives_scheduler_sigkill, test_observation_survives_meshio_sigkill,
                  test_lost_node_session_answers_503_then_reopens]))
