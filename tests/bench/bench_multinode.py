#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The cost of the extra hop between nodes (S10.4, issue 16 item 3).

Two gateway nodes on loopback (tests/integration/test_multinode.py's set-up,
devices answering at once: latency=0). For a device owned by node 0, N
sequential CON POST /echo (never cached, so each reaches the device) are sent
by a client of node 0 (direct) and by a client of node 1 (forwarded to node 0
as a proxy request on node 1's node session), for security none and netmgr.
Prints the median, p90 and p99 latency seen by the client and the CPU time
(user + system, from /proc) each node's roles spent per request. Figures are
printed, never asserted.

  python3 tests/bench/bench_multinode.py [N]     (COAPGW_BIN: the binary; N default 1000)
"""
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from gwtest import POST, Client, code  # noqa: E402
import test_multinode  # noqa: E402

ROLES = ("supervisor", "scheduler", "meshio", "frontend-0")


def cpu_ms(gw):
    """User + system CPU of the node's roles (not the simulator), in ms."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for role in ROLES:
        pid = gw.pid(role) if role != "supervisor" else gw.proc.pid
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total * 1000.0 / tick


def run(n):
    if os.popen("pgrep -x dockerd").read().strip() and os.environ.get("BENCH_IGNORE_DOCKER") != "1":
        sys.exit("bench_multinode: a Docker engine is running; figures would be noise (BENCH_IGNORE_DOCKER=1)")
    gws, rows = test_multinode.two_nodes("bmn", log_level="warn")
    # Every device answers at once: the figures are the gateway's, not the simulated radio's.
    rows = [(r[0], r[1], r[2], r[3], r[4], r[5], "latency=0") for r in rows]
    test_multinode.write_devices(gws[0].cfg["devices_file"], rows)
    try:
        for g in gws:
            g.start()
        own = test_multinode.owners_of(gws[0])
        mac = next(r[0] for r in rows if own[r[0]] == 0 and r[2] == "normal")
        print("bench_multinode: %d sequential CON POST /echo to %s (owned by node 0), loopback, "
              "device latency 0; load average %.2f %.2f %.2f on %d CPUs" % ((n, mac) + os.getloadavg() +
                                                                     (os.cpu_count(),)))
        print("%-8s %-10s %9s %9s %9s %14s %14s" % ("security", "path", "median", "p90", "p99",
                                                   "node0 CPU/req", "node1 CPU/req"))
        for sec in ("none", "netmgr"):
            port = 4849 if sec == "netmgr" else 5683
            for label, via in (("direct", 0), ("via node1", 1)):
                c = Client(gws[via])
                gws[via].session(c, account="bench-%s-%d" % (sec, via), query="security=" + sec)
                for i in range(20):  # warm-up: the node session opens on the first forwarded request
                    m, _ = c.request(POST, proxy="coap://%s:%d/echo" % (mac, port), payload=b"w")
                    assert m is not None and m.code == code(2, 4), m
                cpu0 = [cpu_ms(g) for g in gws]
                lat = []
                for i in range(n):
                    body = b"%d" % i
                    t0 = time.perf_counter()
                    m, _ = c.request(POST, proxy="coap://%s:%d/echo" % (mac, port), payload=body)
                    lat.append((time.perf_counter() - t0) * 1000.0)
                    assert m is not None and m.code == code(2, 4) and m.payload == body, m
                cpu1 = [cpu_ms(g) for g in gws]
                c.close()
                lat.sort()
                print("%-8s %-10s %7.3fms %7.3fms %7.3fms %12.1fus %12.1fus" % (
                    sec, label, statistics.median(lat), lat[int(0.9 * n) - 1], lat[int(0.99 * n) - 1],
                    (cpu1[0] - cpu0[0]) * 1000.0 / n, (cpu1[1] - cpu0[1]) * 1000.0 / n))
    finally:
        for g in gws:
            g.stop()
            g.cleanup()


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 1000)
