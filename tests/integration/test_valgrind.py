#!/usr/bin/env python3
"""Each role under valgrind memcheck through an integration scenario
(issue: hardening). The roles are started one by one, as a container
deployment does (`coapgw scheduler|meshio|frontend`), each under
`valgrind --error-exitcode`, with the simulator beside them; a scenario of
sessions, proxied requests, cache, observe, block-wise and bad input runs;
then every role is stopped with SIGTERM and must exit 0: zero memcheck
errors and zero definite leaks."""
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402  (scratch_dir: temporary directories removed at exit)
from gwtest import (COAPGW, CON, GET, OPT, POST, PUT, Client, code, encode, free_udp_port, run, wait_for,
                    write_devices, Msg)

KEY = "00112233445566778899aabbccddeeff"
DEV = "0200000000000701"
BASE = "127.0.70"
VG = ["valgrind", "--quiet", "--error-exitcode=99", "--leak-check=full", "--errors-for-leak-kinds=definite",
      "--show-leak-kinds=definite", "--track-fds=no"]


class Roles:
    def __init__(self):
        self.tmp = gwtest.scratch_dir("coapgw-vg-")
        self.port = free_udp_port()
        self.data_dir = os.path.join(self.tmp, "data")
        os.makedirs(self.data_dir)
        devfile = write_devices(os.path.join(self.tmp, "devices.csv"),
                                [(DEV, BASE + ".1", "normal", KEY, 5683, 4849, "latency=0-1;obs_period=300")])
        self.cfg = os.path.join(self.tmp, "coapgw.conf")
        with open(self.cfg, "w") as f:
            f.write("listen = 127.0.0.1:%d\ninstance = vg%d\ndata_dir = %s\ndevices_file = %s\n"
                    "mesh_bind = 127.0.0.1\nmax_txn = 256\ndedup_max = 1024\nclient_inflight_max = 1024\n"
                    "max_sessions = 1000\ndev_mode = true\n" % (self.port, os.getpid(), self.data_dir, devfile))
        self.devfile = devfile
        self.procs = {}
        self.logs = {}

    def start(self, name, args, wrap=True):
        log = open(os.path.join(self.tmp, name + ".log"), "wb")
        self.logs[name] = log.name
        env = {k: v for k, v in os.environ.items() if not k.startswith("COAPGW_") or k == "COAPGW_BIN"}
        cfg = ["-c", self.cfg] if args[0] != "meshsim" else []
        self.procs[name] = subprocess.Popen((VG if wrap else []) + [COAPGW] + args + cfg, stdout=log,
                                            stderr=subprocess.STDOUT, env=env)

    def ready(self):
        s = Client(self)
        try:
            r, _ = s.request(GET, "/.well-known/core", timeout=0.5)
            return r is not None
        finally:
            s.close()

    def stop_all(self):
        codes = {}
        for name in ("frontend", "meshio", "scheduler", "meshsim"):
            p = self.procs.get(name)
            if not p:
                continue
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
            try:
                codes[name] = p.wait(60)
            except subprocess.TimeoutExpired:
                p.kill()
                codes[name] = p.wait(10)
        return codes

    def dump(self):
        for name, path in self.logs.items():
            print("---- %s ----" % name)
            sys.stdout.write(open(path, errors="replace").read()[-6000:])


def test_roles_under_memcheck():
    if not shutil.which("valgrind"):
        raise AssertionError("valgrind is not installed (deploy/setup-deps.sh --test installs it)")
    r = Roles()
    ok = False
    try:
        r.start("meshsim", ["meshsim", "--devices", r.devfile, "--quiet"], wrap=False)
        r.start("scheduler", ["scheduler"])
        r.start("meshio", ["meshio"])
        r.start("frontend", ["frontend", "-i", "0"])
        wait_for(r.ready, 120, "frontend under valgrind", interval=0.2)
        c = Client(r)
        tok = subprocess.run([COAPGW, "token", "--account", "vg", "-c", r.cfg], capture_output=True,
                             text=True).stdout.strip()
        resp, _ = c.request(POST, "/sessions?security=netmgr", tok.encode(), timeout=20)
        assert resp is not None and resp.code == code(2, 1), resp
        for path in ("/value", "/value", "/large", "/nothing"):
            resp, _ = c.request(GET, proxy="coap://%s%s" % (DEV, path), timeout=20)
            assert resp is not None and resp.code in (code(2, 5), code(4, 4)), resp
        resp, _ = c.request(PUT, proxy="coap://%s/value" % DEV, payload=b"9", timeout=20)
        assert resp is not None and resp.code == code(2, 4), resp
        resp, _ = c.request(GET, proxy="coap://%s/sensor" % DEV, token=b"ob", options=[(OPT["observe"], 0)],
                            timeout=20)
        assert resp is not None and resp.opt(OPT["observe"]) is not None, resp
        n = wait_for(lambda: c.recv(1.0), 20, "a notification")
        assert n.token == b"ob"
        resp, _ = c.request(GET, "/.well-known/core", options=[(OPT["block2"], 0)], timeout=20)
        assert resp.uint(OPT["block2"]) & 8
        resp, _ = c.request(POST, "/echo", b"x" * 16, options=[(OPT["block1"], 0x08)], timeout=20)
        assert resp.code == code(2, 31), resp
        c.send_raw(bytes([0x40, 1, 0, 1, 0xff]))
        c.send_raw(b"\x4f\x01\x00\x02garbage")
        other = Client(r)
        resp, _ = other.request(GET, proxy="coap://%s/value" % DEV, timeout=20)
        assert resp.code == code(4, 1)
        resp, _ = c.request(GET, proxy="coap://%s/sensor" % DEV, token=b"ob", options=[(OPT["observe"], 1)],
                            timeout=20)
        resp, _ = c.request(4, "/sessions", timeout=20)
        assert resp is not None and resp.code == code(2, 2), resp
        time.sleep(0)  # nothing to wait for: the roles are stopped next
        codes = r.stop_all()
        print("  exit codes under valgrind: %r" % codes)
        for name in ("frontend", "meshio", "scheduler"):
            assert codes.get(name) == 0, "%s exited %r under memcheck (99 = errors or definite leaks)" % (
                name, codes.get(name))
        ok = True
    finally:
        if not ok:
            r.stop_all()
            r.dump()
        subprocess.run([COAPGW, "status", "-c", r.cfg], capture_output=True)
        try:
            os.unlink("/dev/shm/coapgw-vg%d" % os.getpid())
        except OSError:
            pass
        shutil.rmtree(r.tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(run([test_roles_under_memcheck]))
