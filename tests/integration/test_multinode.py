#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Two gateway instances as two nodes of one cluster (issue 16 item 3, S10.4).

Both share one devices file and one JWT key; only node 0 runs the simulator.
Each device is owned by exactly one node (rendezvous hashing of its MAC,
`coapgw devices list` prints it); the owner alone speaks to the device, so
the simulator counts no nonce reuse, no replay and no authentication failure.
Forwarding a request to the owner is not built yet: a node refuses a device
it does not own with 5.03 naming the owner, and never touches the device.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gwtest import (GET, POST, Client, Gateway, code, free_udp_port, run, scratch_dir, sim_counters,  # noqa: E402
                    wait_for, write_devices)

KEY = "00112233445566778899aabbccddeeff"


def owners_of(gw):
    """mac -> owner from `coapgw devices list`, and the header."""
    out = gw.coapgw("devices", "list").stdout.splitlines()
    hdr = out[0].split(",")
    assert hdr[-1] == "owner", out[0]
    return {l.split(",")[0]: int(l.split(",")[-1]) for l in out[1:] if l}


def two_nodes(name):
    d = scratch_dir("coapgw-mn-")
    base = "127.0.%d" % (20 + (os.getpid() + 97) % 200)
    # Enough devices that both nodes own some of each type.
    rows = []
    for i in range(1, 13):
        typ = "milli" if i % 2 == 0 else "normal"
        rows.append(("02000000000000%02x" % i, "%s.%d" % (base, i), typ, KEY, 5683, 4849, "latency=1-2"))
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
                           mesh_ack_timeout_ms=300, milli_timeout_ms=3000))
    gws[0].port, gws[1].port = ports
    return gws, rows


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


def test_two_nodes_each_device_one_owner():
    """Both nodes print the same owner column; each node serves its own devices (normal and Milli, none
    and netmgr) and refuses the other's with 5.03 naming the owner; the simulator sees no nonce reuse,
    no replay, no authentication failure, and no request for a device from its non-owner."""
    gws, rows = two_nodes("mn")
    started = []
    try:
        for g in gws:
            g.start()
            started.append(g)
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
                for r in rows:
                    mac, addr = r[0], r[1]
                    owner = own[0][mac]
                    before = sim_counters(addr)["requests"]
                    for i, (g, c) in enumerate(zip(gws, clients)):
                        port = 4849 if sec.endswith("netmgr") else 5683
                        m, _ = c.request(GET, proxy="coap://%s:%d/value" % (mac, port), timeout=8)
                        assert m is not None, "no answer from node %d for %s" % (i, mac)
                        if i == owner:
                            assert m.code == code(2, 5), (i, mac, m)
                        else:
                            assert m.code == code(5, 3), (i, mac, m)
                            assert ("owned by node %d" % owner).encode() in m.payload, m.payload
                    after = sim_counters(addr)
                    assert after["requests"] == before + 1, (mac, before, after["requests"])
            finally:
                for c in clients:
                    c.close()
        # Observe (S6.1): a registration through the non-owner is refused and never reaches the device;
        # through the owner it is the device's one registration.
        nrm = next(r for r in rows if r[2] == "normal")
        owner = own[0][nrm[0]]
        clients = [Client(g) for g in gws]
        try:
            for g, c in zip(gws, clients):
                g.session(c)
            reg0 = sim_counters(nrm[1])["obs_register"]
            m, _ = clients[1 - owner].request(GET, proxy="coap://%s/sensor" % nrm[0], options=[(6, b"")])
            assert m is not None and m.code == code(5, 3), m
            m, _ = clients[owner].request(GET, proxy="coap://%s/sensor" % nrm[0], options=[(6, b"")],
                                          token=b"obs1")
            assert m is not None and m.code == code(2, 5) and m.opt(6) is not None, m
            assert sim_counters(nrm[1])["obs_register"] == reg0 + 1
            m, _ = clients[owner].request(GET, proxy="coap://%s/sensor" % nrm[0], options=[(6, b"\x01")],
                                          token=b"obs1")
            assert m is not None, "no answer to the deregistration"
        finally:
            for c in clients:
                c.close()
        for r in rows:
            cnt = sim_counters(r[1])
            for k in ("nonce_reuse", "replays", "auth_failures"):
                assert cnt.get(k, 0) == 0, (r[0], k, cnt)
            assert cnt.get("secure", 0) >= 1, (r[0], cnt)
    except Exception:
        for g in started:
            g.dump_log()
        raise
    finally:
        for g in gws:
            g.stop()
            g.cleanup()


if __name__ == "__main__":
    sys.exit(run([test_refused_when_keys_disagree, test_two_nodes_each_device_one_owner]))
