#!/usr/bin/env python3
"""Integration tests of `coapgw client` (issue 14, SPEC S10.5) against the real
gateway and simulator: one session across invocations, re-opening after the
gateway ended it, devices for a scoped token, observe with deregistration,
Block2 reassembly of /large, every exit code, --json output, configuration
layers. Each test uses its own free local port and its own XDG folders."""
import atexit
import json
import os
import re
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402  (scratch_dir: temporary directories removed at exit)
from gwtest import COAPGW, DELETE, Client, code, free_udp_port, gateway, run, sim_counters, wait_for, write_devices

KEY = "00112233445566778899aabbccddeeff"
NORMAL = "0200000000000001"
MILLI = "0200000000000002"
OTHER = "0200000000000003"
SLOW = "0200000000000004"
UNKNOWN = "02000000000000ff"
# The simulator's /large (meshio/sim/meshsim_dev.c): 20 lines, the same on every device.
LARGE = b"".join(b"%03d the quick brown fox jumps over the lazy mesh %c\n" % (i, ord("a") + i) for i in range(20))


def client_gateway(name, **cfg):
    """A gateway with three simulated devices on their own loopback addresses."""
    d = gwtest.scratch_dir("coapgw-cl-dev-")
    atexit.register(shutil.rmtree, d, True)
    base = "127.0.%d" % (40 + (abs(hash(name)) % 150))
    rows = [
        (NORMAL, base + ".1", "normal", KEY, 5683, 4849, "latency=1-3;obs_period=300"),
        (MILLI, base + ".2", "milli", KEY, 5683, 4849, "latency=1-2"),
        (OTHER, base + ".3", "normal", KEY, 5683, 4849, "latency=1-2"),
        (SLOW, base + ".4", "normal", KEY, 5683, 4849, "latency=3000-3000"),
    ]
    cfg.setdefault("meshsim", 1)
    cfg.setdefault("mesh_ack_timeout_ms", 300)
    ctx = gateway(name, write_devices(os.path.join(d, "devices.csv"), rows), **cfg)
    ctx.gw.base = base
    return ctx


class Cli:
    """Runs `coapgw client` with its own XDG folders, gateway and local port."""

    def __init__(self, gw, account="alice", devices=None, token=True):
        self.gw = gw
        self.tmp = gwtest.scratch_dir("coapgw-cl-")
        atexit.register(shutil.rmtree, self.tmp, True)
        self.port = free_udp_port()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("COAPGW_")}
        self.env.update(XDG_STATE_HOME=os.path.join(self.tmp, "state"),
                        XDG_CONFIG_HOME=os.path.join(self.tmp, "config"), HOME=self.tmp)
        self.token_file = os.path.join(self.tmp, "token")
        if token:
            with open(self.token_file, "w") as f:
                f.write(gw.token(account, devices=devices) + "\n")
        self.base = ["--gateway", "127.0.0.1:%d" % (gw.port if gw else 9), "--local-port", str(self.port),
                     "--security", "none", "--timeout", "10"]

    def __call__(self, *args, token=True, base=True, input=None, env=None, timeout=60, prog=None):
        argv = [prog or COAPGW] + ([] if prog else ["client"]) + (self.base if base else [])
        if token:
            argv += ["--token-file", self.token_file]
        e = dict(self.env)
        e.update(env or {})
        return subprocess.run(argv + list(args), env=e, capture_output=True, input=input, timeout=timeout)

    def state_path(self):
        return os.path.join(self.tmp, "state", "coapgw", "client-127.0.0.1:%d-%d.json" % (self.gw.port, self.port))

    def state(self):
        with open(self.state_path()) as f:
            return json.load(f)


def ok(r, what=""):
    assert r.returncode == 0, "%s: exit %d, stderr %r" % (what, r.returncode, r.stderr)
    return r


def one_line(r):
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1, "expected one line on stderr, got %r" % r.stderr
    return lines[0]


def metric_sum(gw, pattern):
    """Sum of every sample whose line matches pattern (the metric names may
    gain labels or suffixes; comments are skipped)."""
    total, seen = 0, False
    for line in gw.coapgw("metrics").stdout.splitlines():
        if line.startswith("#") or not re.search(pattern, line):
            continue
        total += int(float(line.split()[-1]))
        seen = True
    assert seen, "no metric matches %s" % pattern
    return total


def test_one_session_across_invocations():
    """S2.1, S10.5: the session survives between invocations; the gateway creates it once."""
    with client_gateway("clsess") as gw:
        cli = Cli(gw)
        opened = json.loads(ok(cli("--json", "session", "open"), "open").stdout)
        assert opened["live"] and opened["account"] == "alice" and opened["security"] == "none", opened
        assert opened["local_port"] == cli.port
        for _ in range(3):
            r = ok(cli("get", "coap://%s/value" % NORMAL), "get")
            assert r.stdout.strip(), r
        ok(cli("get", "%s/value?x=1" % OTHER), "get without scheme")
        again = json.loads(ok(cli("--json", "session", "open"), "open again").stdout)
        assert again["id"] == opened["id"], (again, opened)
        shown = json.loads(ok(cli("--json", "session", "show", token=False), "show").stdout)
        assert shown["id"] == opened["id"] and shown["gateway"] == "127.0.0.1:%d" % gw.port
        plain = ok(cli("session", "show", token=False)).stdout.decode()
        assert "local_port  %d" % cli.port in plain and opened["id"] in plain, plain
        assert metric_sum(gw, r"sessions_created") == 1
        # The state file: 0600, JSON with the session.
        st = os.stat(cli.state_path())
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert cli.state()["id"] == opened["id"]
        # Without a token, a live session is still used.
        ok(cli("get", "coap://%s/value" % NORMAL, token=False), "get on the recorded session")
        # close: DELETE /sessions/<id>; the gateway then refuses the port.
        ok(cli("session", "close", token=False), "close")
        assert "id" not in cli.state()
        c = Client(gw, port=cli.port)
        r, _ = c.request(1, proxy="coap://%s/value" % NORMAL)
        c.close()
        assert r is not None and r.code == code(4, 1), r
        r = cli("session", "show", token=False)
        assert r.returncode == 1 and b"no session" in r.stderr, r


def test_reopen_after_the_gateway_ends_the_session():
    """S10.5: on 4.01 the client re-opens once with the token and retries."""
    with client_gateway("clreopen") as gw:
        cli = Cli(gw)
        ok(cli("get", "coap://%s/value" % NORMAL), "first get opens")
        first = cli.state()["id"]
        # The session ends behind the client's back: DELETE from its own port.
        c = Client(gw, port=cli.port)
        r, _ = c.request(DELETE, "/sessions/" + first)
        c.close()
        assert r is not None and r.code == code(2, 2), r
        r = ok(cli("-v", "--json", "get", "coap://%s/value" % NORMAL), "get after the gateway ended it")
        assert json.loads(r.stdout)["code"] == "2.05"
        assert b"4.01" in r.stderr and b"re-open" in r.stderr, r.stderr
        assert cli.state()["id"] != first
        assert metric_sum(gw, r"sessions_created") == 2
        # Without a token the client cannot re-open: 4.01, exit 1, a hint.
        c = Client(gw, port=cli.port)
        r, _ = c.request(DELETE, "/sessions")
        c.close()
        r = cli("get", "coap://%s/value" % NORMAL, token=False)
        assert r.returncode == 1 and b"4.01" in r.stderr and b"--token" in r.stderr, r


def test_sticky_moves_the_session():
    """S2.5: --sticky re-points the account's session to this port (same id)."""
    with client_gateway("clsticky") as gw:
        a, b = Cli(gw), Cli(gw)
        first = json.loads(ok(a("--json", "session", "open")).stdout)
        moved = json.loads(ok(b("--json", "--sticky", "session", "open")).stdout)
        assert moved["id"] == first["id"] and moved["sticky"] is True, (first, moved)
        ok(b("get", "coap://%s/value" % NORMAL))
        assert b.state()["id"] == first["id"]


def test_reopen_after_idle_timeout():
    """S2.7: a session that ended by idle timeout is re-opened on the next request."""
    with client_gateway("clidle", session_idle_s=1) as gw:
        cli = Cli(gw)
        ok(cli("session", "open"))
        first = cli.state()["id"]
        # The gateway's own answer tells when it has ended the session.
        def ended():
            c = Client(gw, port=cli.port)
            try:
                r, _ = c.request(1, "/sessions/" + first)
                return r is not None and r.code == code(4, 4)
            finally:
                c.close()
        wait_for(ended, 20, "the idle session to end")
        r = ok(cli("get", "coap://%s/value" % NORMAL), "get after the idle timeout")
        assert r.stdout.strip()
        assert cli.state()["id"] != first


def test_devices_for_a_scoped_token():
    """S2.2, S8.1: GET /devices lists only what the token may reach; others get 4.03."""
    with client_gateway("cldev") as gw:
        cli = Cli(gw, account="bob", devices=NORMAL)
        r = ok(cli("devices"), "devices")
        macs = [d["mac"].lower() for d in json.loads(r.stdout)]
        assert macs == [NORMAL], macs
        j = json.loads(ok(cli("--json", "devices")).stdout)
        assert j["code"] == "2.05" and j["content_format"] == 50
        assert [d["mac"] for d in json.loads(j["payload"])] == [NORMAL]
        r = cli("get", "coap://%s/value" % OTHER)
        assert r.returncode == 1 and one_line(r).startswith("coapgw client: 4.03"), r
        # An unscoped token sees all three.
        cli2 = Cli(gw, account="carol")
        assert len(json.loads(ok(cli2("devices")).stdout)) == 4


def test_observe_count_then_deregister():
    """S6.4: --count 3 prints three notifications and deregisters: no observer is left."""
    with client_gateway("clobs") as gw:
        cli = Cli(gw)
        r = ok(cli("--json", "observe", "coap://%s/sensor" % NORMAL, "--count", "3"), "observe")
        lines = r.stdout.decode().splitlines()
        assert len(lines) == 3, lines
        notes = [json.loads(l) for l in lines]
        obs = [n["observe"] for n in notes]
        assert all(n["code"] == "2.05" for n in notes) and obs == sorted(set(obs)), notes
        wait_for(lambda: sim_counters(gw.base + ".1")["observers"] == 0, 10, "device observation cancelled")
        wait_for(lambda: metric_sum(gw, r"^coapgw_observers\b") == 0, 10, "no observer at the gateway")
        # Plain output: one payload per line.
        r = ok(cli("observe", "coap://%s/sensor" % NORMAL, "--count", "2"))
        assert len(r.stdout.decode().splitlines()) == 2, r.stdout
        # --duration ends it too.
        r = ok(cli("observe", "coap://%s/sensor" % NORMAL, "--duration", "1"))
        assert len(r.stdout.decode().splitlines()) >= 1
        wait_for(lambda: sim_counters(gw.base + ".1")["observers"] == 0, 10, "cancelled after --duration")


def test_observe_sigint_deregisters():
    """S6.4: Ctrl-C stops observing and still deregisters."""
    with client_gateway("clint") as gw:
        cli = Cli(gw)
        ok(cli("session", "open"))
        argv = [COAPGW, "client"] + cli.base + ["observe", "coap://%s/sensor" % NORMAL]
        p = subprocess.Popen(argv, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: metric_sum(gw, r"^coapgw_observers\b") == 1, 15, "one observer at the gateway")
            wait_for(lambda: sim_counters(gw.base + ".1")["observers"] == 1, 10, "the device observed")
            # The first notification has been printed ...
            wait_for(lambda: select.select([p.stdout], [], [], 0)[0], 15, "the first notification")
            first = p.stdout.readline()
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=20)
            out = first + out
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 0, (p.returncode, err)
        assert out.strip(), "at least the first notification"
        wait_for(lambda: metric_sum(gw, r"^coapgw_observers\b") == 0, 10, "the observer left")
        wait_for(lambda: sim_counters(gw.base + ".1")["observers"] == 0, 10, "device observation cancelled")


def test_observe_interrupted_before_the_first_answer_deregisters():
    """S6.4: a SIGINT while the registration is still unanswered withdraws it too."""
    with client_gateway("clint0") as gw:
        cli = Cli(gw)
        ok(cli("session", "open"))
        # SLOW answers after 3 s: the SIGINT comes while the client waits.
        argv = [COAPGW, "client"] + cli.base + ["observe", "coap://%s/sensor" % SLOW]
        p = subprocess.Popen(argv, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: metric_sum(gw, r"^coapgw_observers\b") == 1, 15, "one observer at the gateway")
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=30)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == 3 and b"interrupted" in err, (p.returncode, out, err)
        wait_for(lambda: metric_sum(gw, r"^coapgw_observers\b") == 0, 15, "the registration withdrawn")


def test_invocations_on_one_port_take_turns():
    """Two invocations sharing a local port share its session and socket: the
    second waits for the first (bounded by --timeout), then runs."""
    with client_gateway("cllock") as gw:
        cli = Cli(gw)
        ok(cli("session", "open"))
        argv = [COAPGW, "client"] + cli.base + ["observe", "coap://%s/sensor" % NORMAL, "--count", "4"]
        p = subprocess.Popen(argv, env=cli.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(lambda: metric_sum(gw, r"^coapgw_observers\b") == 1, 15, "the observer")
            # While it observes, another invocation cannot take the port ...
            r = cli("--timeout", "0.2", "get", "coap://%s/value" % NORMAL)
            assert r.returncode == 3 and b"in use by another coapgw client" in one_line(r).encode(), r
            # ... and with time enough it runs after the first is done.
            r = ok(cli("--timeout", "20", "get", "coap://%s/value" % NORMAL), "waited for the port")
            assert p.wait(20) == 0
            assert len(p.stdout.read().splitlines()) == 4
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert metric_sum(gw, r"sessions_created") == 1


def test_large_is_whole():
    """S4.7, S8.2: /large through the gateway is returned whole, with and without Block2."""
    with client_gateway("cllarge") as gw:
        cli = Cli(gw)
        r = ok(cli("get", "coap://%s/large" % NORMAL))
        assert r.stdout == LARGE, (len(r.stdout), r.stdout[:80])
        # 64-byte blocks: the gateway serves 16 blocks after its separate response.
        r = ok(cli("-v", "--block-size", "64", "get", "coap://%s/large" % NORMAL))
        assert r.stdout == LARGE, len(r.stdout)
        sent = [l for l in r.stderr.decode().splitlines() if l.startswith("-> GET")]
        assert len(sent) == 16 and "Block2 15/64" in sent[-1], sent
        j = json.loads(ok(cli("--json", "--block-size", "128", "get", "coap://%s/large" % NORMAL)).stdout)
        assert j["payload"].encode() == LARGE and j["blocks"] == 8 and j["size"] == len(LARGE), j
        # A local resource in blocks (S8.2), asked for ...
        r = ok(cli("-v", "--block-size", "16", "get", "/.well-known/core", token=False))
        assert r.stdout.startswith(b"</sessions>") and r.stdout.endswith(b"ct=0"), r.stdout
        sent = [l for l in r.stderr.decode().splitlines() if l.startswith("-> GET")]
        assert len(sent) == (len(r.stdout) + 15) // 16, (len(sent), len(r.stdout))
        # ... the same as in one piece, from a port without a session (S2.9).
        fresh = Cli(gw, token=False)
        assert r.stdout == ok(fresh("get", "/.well-known/core", token=False)).stdout


def test_put_post_payloads_are_binary_safe():
    """Payloads go out and come back byte for byte: --data, --data-file, --data -."""
    with client_gateway("clput") as gw:
        cli = Cli(gw)
        r = ok(cli("put", "coap://%s/echo" % NORMAL, "--data", "hello", "--format", "text"))
        assert r.stdout == b"hello", r.stdout
        blob = bytes(range(256))
        path = os.path.join(cli.tmp, "blob")
        with open(path, "wb") as f:
            f.write(blob)
        r = ok(cli("post", "coap://%s/echo" % NORMAL, "--data-file", path, "--format", "42"))
        assert r.stdout == blob
        j = json.loads(ok(cli("--json", "post", "coap://%s/echo" % NORMAL, "--data", "-", input=blob)).stdout)
        import base64
        assert base64.b64decode(j["payload_base64"]) == blob and j["code"] == "2.04", j
        r = ok(cli("post", "/echo", "--data", "local", token=False))
        assert r.stdout == b"local"
        # A body larger than one message goes to a gateway resource in
        # Block1 blocks, and its echo comes back in Block2 blocks (S8.2).
        big = os.urandom(3000)
        with open(path, "wb") as f:
            f.write(big)
        r = ok(cli("-v", "post", "/echo", "--data-file", path, token=False))
        assert r.stdout == big, len(r.stdout)
        sent = [l for l in r.stderr.decode().splitlines() if l.startswith("-> POST")]
        assert len(sent) == 5 and "Block1 2/-/1024" in sent[2] and "Block2 2/" in sent[4], sent


def test_long_token_opens_a_session_in_blocks():
    """S2.1, S8.2: a token longer than one message is POSTed in Block1 blocks."""
    import base64
    import hashlib
    import hmac
    import time
    with client_gateway("cllong") as gw:
        gw.token("alice")  # creates the development secret
        with open(os.path.join(gw.data_dir, "dev-secret"), "rb") as f:
            key = f.read()
        b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=")
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps({"sub": "dave", "exp": int(time.time()) + 3600, "note": "x" * 1500}).encode())
        tok = head + b"." + body + b"." + b64(hmac.new(key, head + b"." + body, hashlib.sha256).digest())
        assert len(tok) > 2000
        cli = Cli(gw, token=False)
        with open(cli.token_file, "wb") as f:
            f.write(tok)
        s = json.loads(ok(cli("--json", "session", "open")).stdout)
        assert s["account"] == "dave", s
        ok(cli("get", "coap://%s/value" % NORMAL, token=False))


def test_exit_codes():
    """Issue 14: 0 for 2.xx, 1 for 4.xx/5.xx, 2 for usage errors, 3 for timeouts/unreachable; one clear line."""
    with client_gateway("clexit") as gw:
        cli = Cli(gw)
        ok(cli("get", "coap://%s/value" % NORMAL))
        r = ok(cli("ping", token=False))
        assert b"RST" in r.stdout
        # 1: a 5.02 for an unknown device, a 4.04 for a missing local resource.
        r = cli("get", "coap://%s/value" % UNKNOWN)
        assert r.returncode == 1 and one_line(r).startswith("coapgw client: 5.02"), r
        assert r.stdout == b""
        r = cli("--json", "get", "/nope", token=False)
        assert r.returncode == 1 and json.loads(r.stdout)["code"] == "4.04", r
        # 2: usage errors, each one line.
        for args, want in [
            (("get", "gateway/value"), b"not a device MAC ID"),
            (("get", "coaps://%s/value" % NORMAL), b"only coap://"),
            (("fly",), b"unknown command"),
            (("--bogus", "ping"), b"unknown option"),
            (("--local-port", "0", "ping"), b"--local-port"),
            (("observe", "/x", "--count", "zero"), b"--count"),
        ]:
            r = cli(*args, token=False)
            assert r.returncode == 2 and want in one_line(r).encode(), (args, r)
        fresh = Cli(gw, token=False)
        r = fresh("get", "coap://%s/value" % NORMAL, "--token-file", "/nonexistent/token", token=False)
        assert r.returncode == 2 and b"/nonexistent/token" in one_line(r).encode(), r
        r = fresh("get", "coap://%s/value" % NORMAL, token=False)
        assert r.returncode == 2 and b"no token" in one_line(r).encode(), r
        # A payload that fits no CoAP message the gateway takes.
        r = cli("post", "coap://%s/echo" % NORMAL, "--data", "x" * 2000)
        assert r.returncode == 2 and b"does not fit" in one_line(r).encode(), r
        # 1: a token the gateway refuses (S2.2) is a CoAP error, not a usage error.
        r = fresh("get", "coap://%s/value" % NORMAL, "--token", "not.a.jwt", token=False)
        assert r.returncode == 1 and b"4.01" in one_line(r).encode(), r
        bad = os.path.join(fresh.tmp, "bad.conf")
        with open(bad, "w") as f:
            f.write("gateway = 127.0.0.1:5683\nlocal_prot = 4\n")
        r = fresh("-c", bad, "ping", token=False)
        assert r.returncode == 2 and b"bad.conf:2" in one_line(r).encode(), r
        # 3: a closed port (ICMP), and a port where nothing answers.
        closed = Cli(None, token=False)
        closed.base[1] = "127.0.0.1:%d" % free_udp_port()
        r = closed("ping", token=False)
        assert r.returncode == 3 and b"unreachable" in one_line(r).encode(), r
        r = closed("get", "/help", token=False)
        assert r.returncode == 3, r
        mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        mute.bind(("127.0.0.1", 0))
        try:
            closed.base[1] = "127.0.0.1:%d" % mute.getsockname()[1]
            r = closed("--timeout", "0.5", "ping", token=False)
            assert r.returncode == 3 and b"no answer" in one_line(r).encode(), r
        finally:
            mute.close()


def test_configuration_layers_and_the_link():
    """Issue 14: file < COAPGW_CLIENT_<KEY> < flags; the default file; coapgw-client."""
    with client_gateway("clconf") as gw:
        cli = Cli(gw)
        right = "127.0.0.1:%d" % gw.port
        wrong = "127.0.0.1:%d" % free_udp_port()
        cdir = os.path.join(cli.tmp, "config", "coapgw")
        os.makedirs(cdir)
        # The default file names the token relative to itself.
        with open(os.path.join(cdir, "client.conf"), "w") as f:
            f.write("# test\ngateway = %s\nlocal_port = %d\ntoken_file = ../../token\nsecurity = none\n"
                    "timeout = 5\n" % (right, cli.port))
        ok(cli("get", "coap://%s/value" % NORMAL, base=False, token=False), "the default file alone")
        # The environment overrides the file ...
        r = cli("ping", base=False, token=False, env={"COAPGW_CLIENT_GATEWAY": wrong})
        assert r.returncode == 3, r
        # ... and a flag overrides the environment.
        ok(cli("--gateway", right, "ping", base=False, token=False, env={"COAPGW_CLIENT_GATEWAY": wrong}))
        # The shipped example parses (its defaults, the gateway from the flag).
        example = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                               "deploy", "client.conf")
        ok(cli("-c", example, "--gateway", right, "ping", base=False, token=False), "deploy/client.conf")
        r = cli("ping", base=False, token=False, env={"COAPGW_CLIENT_TIMEOUT": "never"})
        assert r.returncode == 2 and b"COAPGW_CLIENT_TIMEOUT" in one_line(r).encode(), r
        # coapgw-client is the same client.
        link = os.path.join(os.path.dirname(COAPGW), "coapgw-client")
        if os.path.exists(link):
            ok(cli("get", "coap://%s/value" % NORMAL, base=False, token=False, prog=link), "coapgw-client")
        assert metric_sum(gw, r"sessions_created") == 1


TESTS = [
    test_one_session_across_invocations,
    test_reopen_after_the_gateway_ends_the_session,
    test_sticky_moves_the_session,
    test_reopen_after_idle_timeout,
    test_devices_for_a_scoped_token,
    test_observe_count_then_deregister,
    test_observe_sigint_deregisters,
    test_observe_interrupted_before_the_first_answer_deregisters,
    test_invocations_on_one_port_take_turns,
    test_large_is_whole,
    test_put_post_payloads_are_binary_safe,
    test_long_token_opens_a_session_in_blocks,
    test_exit_codes,
    test_configuration_layers_and_the_link,
]

if __name__ == "__main__":
    sys.exit(run(TESTS))
