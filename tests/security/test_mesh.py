#!/usr/bin/env python3
"""Security suite, mesh side (issue #12 items 8 and 10): real gateway
processes, devices that are raw UDP sockets of this test (or the embedded
simulator), SIGKILL of meshio. Each test prints what it tried and asserts
the refusal. Clause numbers refer to PROTOCOL.md."""
import os
import signal
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
from gwtest import (ACK, CON, GET, POST, RST, Client, Msg, code, encode, free_udp_port, gateway, run,  # noqa: E402
                    scratch_dir, wait_for, write_devices)

KEY = "00112233445566778899aabbccddeeff"


def metric(gw, name, role):
    for line in gw.coapgw("metrics").stdout.splitlines():
        if line.startswith("coapgw_%s" % name) and 'role="%s"' % role in line:
            return int(float(line.split()[-1]))
    raise AssertionError("metric %s{role=%s} not found" % (name, role))


class RawDevice:
    """A plain-port (security=none) device that this test drives by hand."""

    def __init__(self, addr):
        self.addr = addr
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((addr, 0))
        self.port = self.sock.getsockname()[1]
        self.gw_addr = None

    def recv(self, timeout=5.0):
        """Next datagram from the gateway (Msg) or None."""
        self.sock.settimeout(timeout)
        try:
            data, src = self.sock.recvfrom(4096)
        except socket.timeout:
            return None
        self.gw_addr = src
        return Msg(data)

    def next_request(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(max(0.01, deadline - time.monotonic()))
            if m is not None and m.type == CON and 1 <= m.code <= 4:
                return m
        return None

    def send(self, data):
        self.sock.sendto(data, self.gw_addr)

    def close(self):
        self.sock.close()


def answer(client, tok, timeout=5.0):
    """The client's next message with this token and a code (empty ACKs skipped), or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = client.recv(max(0.01, deadline - time.monotonic()))
        if m is None:
            return None
        if m.token == tok and m.code != 0:
            return m
    return None


def tok_int(tok):
    """A token as the old counter stored it (memcpy of a host-order uint64)."""
    return struct.unpack("<Q", tok)[0]


def raw_gateway(name, macs):
    d = scratch_dir("coapgw-sec-")
    devs = [RawDevice("127.0.93.%d" % (i + 1)) for i in range(len(macs))]
    rows = [(mac, dv.addr, "normal", KEY, dv.port, free_udp_port(dv.addr), "") for mac, dv in zip(macs, devs)]
    f = write_devices(os.path.join(d, "devices.csv"), rows)
    ctx = gateway(name, f, meshsim=0, mesh_ack_timeout_ms=2000)
    ctx.devs = devs
    return ctx


def test_device_tokens_are_random_and_forged_answers_refused():
    """Item 8, RFC 7252 5.3.1: tokens towards devices are 8 random bytes per exchange; a device that
    learnt its own token and answers another device's pending request (from that device's address)
    with guessed neighbouring tokens is reset, and the client gets the real answer."""
    A, B = "0200000000000a01", "0200000000000a02"
    ctx = raw_gateway("tokens", [A, B])
    with ctx as gw:
        dev_a, dev_b = ctx.devs
        try:
            c = Client(gw)
            gw.session(c, query="security=none")
            # 1. Tokens of 24 exchanges with device A: 8 bytes, distinct, far apart.
            toks = []
            for i in range(24):
                tok = b"t%d" % i
                c.send_raw(encode(CON, GET, c.next_mid(), tok, [(35, "coap://%s/r%d" % (A, i))]))
                req = dev_a.next_request()
                assert req is not None, "request %d reached device A" % i
                toks.append(req.token)
                dev_a.send(encode(ACK, code(2, 5), req.mid, req.token, payload=b"a%d" % i))
                r = answer(c, tok)
                assert r is not None and r.code == code(2, 5), r
            print("  24 device tokens: %s ..." % " ".join(t.hex() for t in toks[:4]))
            assert all(len(t) == 8 for t in toks), "8-byte tokens"
            assert len(set(toks)) == len(toks), "no token repeats"
            vals = [tok_int(t) for t in toks]
            close = [(i, j) for i in range(len(vals)) for j in range(i) if abs(vals[i] - vals[j]) < (1 << 30)]
            assert not close, "tokens guessable from each other (pairs %s)" % close[:5]
            assert len({t[-1] for t in toks}) > 12 and len({t[0] for t in toks}) > 12, "bytes look random"

            # 2. A's own exchange teaches it one token; B's request is then pending.
            c.send_raw(encode(CON, GET, c.next_mid(), b"mine", [(35, "coap://%s/own" % A)]))
            ra = dev_a.next_request()
            dev_a.send(encode(ACK, code(2, 5), ra.mid, ra.token, payload=b"mine"))
            m = answer(c, b"mine")
            assert m is not None and m.payload == b"mine", m
            c.send_raw(encode(CON, GET, c.next_mid(), b"victim", [(35, "coap://%s/secret" % B)]))
            rb = dev_b.next_request()
            assert rb is not None, "request reached device B"
            dev_b.send(encode(ACK, 0, rb.mid))  # empty ACK: the answer comes later
            # 3. Forged answers from B's address with tokens guessed around A's.
            base = tok_int(ra.token)
            guesses = []
            for d in range(-8, 9):
                if d:
                    guesses.append(struct.pack("<Q", (base + d) & (2 ** 64 - 1)))
                    guesses.append(struct.pack(">Q", (struct.unpack(">Q", ra.token)[0] + d) & (2 ** 64 - 1)))
            resets = 0
            for k, g in enumerate(guesses):
                dev_b.send(encode(CON, code(2, 5), 0x4000 + k, g, payload=b"forged"))
                rep = dev_b.recv(2)
                if rep is not None and rep.type == RST and rep.mid == 0x4000 + k:
                    resets += 1
            print("  %d forged answers sent from device B's address, %d reset" % (len(guesses), resets))
            got = []
            m = c.recv(1.0)
            while m is not None and len(got) < 50:
                got.append(m)
                m = c.recv(0.5)
            forged = [m for m in got if m.payload == b"forged"]
            assert not forged, "a forged answer reached the client: %r" % forged
            assert resets == len(guesses), "every forged answer is reset (%d of %d)" % (resets, len(guesses))
            # 4. The real answer still matches.
            dev_b.send(encode(CON, code(2, 5), 0x4fff, rb.token, payload=b"real"))
            m = answer(c, b"victim")
            assert m is not None and m.payload == b"real", "client got the real answer: %r" % m
        finally:
            dev_a.close()
            dev_b.close()


def sim_devices(tmpdir, base):
    rows = [("0200000000000b01", base + ".1", "normal", KEY, 5683, 4849, "latency=1-2")]
    return write_devices(os.path.join(tmpdir, "devices.csv"), rows)


def meshio_starts(gw):
    with open(gw.log_path, "rb") as f:
        return f.read().count(b"meshio: plain socket")


def test_replay_after_meshio_sigkill_is_dropped():
    """Item 10, S7.1: a secured frame meshio accepted just before a SIGKILL (within what used to be the
    1 s flush delay of the replay window) and replayed to the restarted meshio is dropped and counted."""
    d = scratch_dir("coapgw-sec-")
    base = "127.0.94"
    mac = "0200000000000b01"
    with gateway("replaykill", sim_devices(d, base), meshsim=1, mesh_ack_timeout_ms=200) as gw:
        c = Client(gw)
        gw.session(c, query="security=netmgr")
        for attempt in range(3):
            r, _ = c.request(GET, proxy="coap://%s/value?k=%d" % (mac, attempt))
            assert r is not None and r.code == code(2, 5), r
            # The device's sealed answer was accepted: kill meshio at once.
            old = gw.pid("meshio")
            started = meshio_starts(gw)
            os.kill(old, signal.SIGKILL)
            wait_for(lambda: gw.pid("meshio") and gw.pid("meshio") != old, 15, "meshio restarted")
            # Its sockets are bound once it logs them (the pid file comes earlier).
            wait_for(lambda: meshio_starts(gw) > started, 15, "restarted meshio listening")
            wait_for(lambda: metric(gw, "mesh_replays_total", "meshio") is not None, 10, "meshio metrics")
            before = metric(gw, "mesh_replays_total", "meshio")
            dev = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                dev.settimeout(3)
                dev.sendto(encode(CON, POST, 7 + attempt, b"r", [(11, "_sim"), (11, "replay")]),
                           (base + ".1", 5683))
                ans = Msg(dev.recvfrom(2048)[0])
            finally:
                dev.close()
            assert ans.code == code(2, 4), "the simulator replayed its last frame: %r" % ans
            print("  attempt %d: meshio %d SIGKILLed right after accepting a frame; frame replayed" %
                  (attempt, old))
            wait_for(lambda: metric(gw, "mesh_replays_total", "meshio") == before + 1, 5,
                     "the replayed frame dropped and counted by the restarted meshio")
            # Legitimate traffic goes on.
            r = wait_for(lambda: (lambda x: x if x and x.code == code(2, 5) else None)(
                c.request(GET, proxy="coap://%s/value?after=%d" % (mac, attempt), timeout=3)[0]), 15,
                "answer after the replay")


if __name__ == "__main__":
    sys.exit(run([
        test_device_tokens_are_random_and_forged_answers_refused,
        test_replay_after_meshio_sigkill_is_dropped,
    ]))
