#!/usr/bin/env python3
"""deploy/compose.yaml under a real Docker engine (PROTOCOL.md S10.3; issue 16 item 1).

Called by deploy/check-compose.sh. In order:

  engine   uses a running dockerd, or starts one (`--storage-driver=vfs`,
           `--iptables=false --bridge=none`: published ports go through
           docker-proxy, so no NAT tables slow the machine's loopback) and
           stops it at the end, deleting any nft table or link it added;
  base     makes `debian:bookworm-slim` with debootstrap + `docker import`
           when the engine has no such image (no registry is reachable);
  build    `docker build --network host -f deploy/Dockerfile` from the checkout;
  up       `docker-compose up -d` on a free host port; every role healthy;
  serve    through the published port: a session, a proxied GET, an observe
           with a later notification; many client ports spread over all the
           frontends (each frontend's datagram counter grows);
  kill     under steady proxied traffic, each role's process (host pid from
           `docker inspect`) SIGKILLed in turn; Docker restarts it
           (`restart: unless-stopped`), requests are answered again, and at
           the end every request has exactly one final answer (S1.3),
           none 4.01 (a request answered twice fails, printed with how its
           answers came);
  down     `docker-compose down -v` leaves no container, network or volume
           of the project, and no shared-memory segment on the host.

Prints one line per step and "test-compose-docker: PASS"; exits 1 on failure,
2 when no engine could be had here (check-compose.sh decides what that means).
Environment: COAPGW_DOCKER_KEEP=1 leaves the stack up (and the engine
running) for inspection; COAPGW_DOCKER_TAG (default coapgw:check).
"""
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import types

DEPLOY = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(DEPLOY)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from gwtest import ACK, CON, GET, OPT, POST, Client, Msg, code, encode  # noqa: E402
from test_resilience import LoadClient  # noqa: E402

# Debian's client first: it matches Debian's engine (a newer CLI elsewhere in
# PATH would negotiate down, but there is no reason to depend on that).
DOCKER = "/usr/bin/docker" if os.access("/usr/bin/docker", os.X_OK) else "docker"
TAG = os.environ.get("COAPGW_DOCKER_TAG", "coapgw:check")
DEPS_TAG = TAG.split(":")[0] + "-deps:" + (TAG.split(":")[1] if ":" in TAG else "latest")
BASE = "debian:bookworm-slim"
CONF = "/etc/coapgw/coapgw.conf"
ROLES = ["frontend-0", "frontend-1", "frontend-2", "scheduler", "meshio", "meshsim"]
KILL = ROLES[:5]


class Fail(Exception):
    pass


def log(msg):
    print(msg, flush=True)


def run(argv, timeout=120, check=True, env=None, quiet=False):
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        raise Fail("`%s` did not finish within %d s" % (" ".join(argv), timeout))
    if check and r.returncode != 0:
        raise Fail("`%s` exited with %d:\n%s" % (" ".join(argv), r.returncode, (r.stdout + r.stderr)[-3000:]))
    return r


def wait(cond, timeout, what, interval=0.3):
    end = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > end:
            raise Fail("%s (waited %d s)" % (what, timeout))
        time.sleep(interval)


def nft_tables():
    if not shutil.which("nft"):
        return set()
    r = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    return {tuple(l.split()[1:3]) for l in r.stdout.splitlines() if l.startswith("table ")}


def links():
    r = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True)
    return {l.split(":")[1].strip().split("@")[0] for l in r.stdout.splitlines() if ":" in l}


def pids_named(name):
    r = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True)
    return {int(p) for p in r.stdout.split()}


# ---------------------------------------------------------------- engine

class Engine:
    """A running dockerd: someone else's (left alone) or ours (stopped after)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.proc = None
        self.started = False

    def answering(self):
        return subprocess.run([DOCKER, "version", "--format", "{{.Server.Version}}"], capture_output=True,
                              timeout=20).returncode == 0

    def start(self):
        if self.answering():
            log("     engine: a running Docker engine (left running afterwards)")
            return True
        dockerd = shutil.which("dockerd")
        if not dockerd:
            return False
        self.nft_before = nft_tables()
        self.links_before = links()
        self.containerd_before = pids_named("containerd")
        self.log_path = os.path.join(self.tmp, "dockerd.log")
        self.proc = subprocess.Popen([dockerd, "--storage-driver=vfs", "--iptables=false", "--bridge=none",
                                      "--log-level=warn"], stdout=open(self.log_path, "ab"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started = True
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            if self.answering():
                v = run([DOCKER, "version", "--format", "{{.Server.Version}}"]).stdout.strip()
                log("     engine: started dockerd %s (pid %d, vfs storage, no iptables), to be stopped at the end"
                    % (v, self.proc.pid))
                return True
            time.sleep(0.3)
        log("     engine: dockerd did not come up; its log:")
        log(open(self.log_path, errors="replace").read()[-3000:])
        self.stop()
        return False

    def stop(self):
        if not self.started:
            return
        self.started = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log("     engine: dockerd ignored SIGTERM for 30 s; SIGKILL")
                self.proc.kill()
                self.proc.wait()
        # The containerd that dockerd spawned for itself, if it outlived it.
        for pid in pids_named("containerd") - self.containerd_before:
            try:
                os.kill(pid, signal.SIGTERM)
            except OSError:
                pass
        added = nft_tables() - self.nft_before
        for fam, name in sorted(added):
            subprocess.run(["nft", "delete", "table", fam, name], capture_output=True)
        new_links = links() - self.links_before
        for l in sorted(new_links):
            if l == "docker0" or l.startswith("br-") or l.startswith("veth"):
                subprocess.run(["ip", "link", "delete", l], capture_output=True)
        left = nft_tables() - self.nft_before
        log("     engine: dockerd stopped%s%s" % (
            "; deleted nft tables %s" % ", ".join("%s %s" % t for t in sorted(added)) if added else "",
            "; deleted links %s" % ", ".join(sorted(new_links)) if new_links else ""))
        if left:
            raise Fail("nft tables left behind by dockerd: %s" % sorted(left))


# ---------------------------------------------------------------- image

def debian_mirror():
    """The Debian mirror this machine's apt uses (deb822 .sources or sources.list)."""
    cands = []
    d = "/etc/apt/sources.list.d"
    for f in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if f.endswith(".sources"):
            cands.append(os.path.join(d, f))
    for path in cands:
        uris = suites = None
        for line in open(path).read().split("\n") + [""]:
            if not line.strip():
                if uris and suites and "bookworm" in suites.split() and "security" not in uris:
                    return uris.split()[0]
                uris = suites = None
            elif line.startswith("URIs:"):
                uris = line.split(":", 1)[1].strip()
            elif line.startswith("Suites:"):
                suites = line.split(":", 1)[1].strip()
    lists = ["/etc/apt/sources.list"] + [os.path.join(d, f) for f in sorted(os.listdir(d)) if f.endswith(".list")]
    for path in lists:
        if os.path.exists(path):
            for line in open(path):
                m = re.match(r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+bookworm\s", line)
                if m and "security" not in m.group(1):
                    return m.group(1)
    raise Fail("no Debian bookworm mirror in /etc/apt/sources.list{,.d}")


def base_image(tmp):
    if run([DOCKER, "image", "inspect", BASE], check=False).returncode == 0:
        log("ok   base: %s present (cached by tag)" % BASE)
        return
    if not shutil.which("debootstrap"):
        raise Fail("no %s image and no debootstrap (deploy/setup-deps.sh --test installs it)" % BASE)
    mirror = debian_mirror()
    root = os.path.join(tmp, "rootfs")
    t0 = time.monotonic()
    r = run(["debootstrap", "--variant=minbase", "bookworm", root, mirror], timeout=900, check=False)
    if r.returncode != 0:
        raise Fail("debootstrap bookworm from %s:\n%s" % (mirror, (r.stdout + r.stderr)[-3000:]))
    tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
    imp = subprocess.run([DOCKER, "import", "-", BASE], stdin=tar.stdout, capture_output=True, text=True,
                         timeout=300)
    tar.stdout.close()
    tar.wait()
    if imp.returncode != 0 or tar.returncode != 0:
        raise Fail("docker import of the debootstrap tree: %s" % imp.stderr)
    shutil.rmtree(root, ignore_errors=True)
    log("ok   base: made %s with debootstrap from %s and docker import (%d s)" % (BASE, mirror,
                                                                                 time.monotonic() - t0))


def build_image():
    t0 = time.monotonic()
    args = [DOCKER, "build", "--network", "host", "-f", os.path.join(DEPLOY, "Dockerfile")]
    # The dependency stage under a tag of its own, so that pruning the
    # previous builds' untagged images keeps it as the cache of the next one.
    run(args + ["--target", "deps", "-t", DEPS_TAG, ROOT], timeout=1200)
    r = run(args + ["-t", TAG, ROOT], timeout=1200)
    chunks = re.split(r"^Step ", r.stdout, flags=re.M)[1:]
    steps = len(chunks)
    cached = sum("Using cache" in c for c in chunks)
    rebuilt = [c.split(" : ", 1)[1].split()[0] + " " + c.split(" : ", 1)[1].split()[1][:24]
               for c in chunks if "Using cache" not in c and " : " in c and
               c.split(" : ", 1)[1].split()[0] in ("RUN", "COPY")]
    log("     build: rebuilt %s" % "; ".join(rebuilt))
    run([DOCKER, "image", "prune", "-f"], timeout=300)
    size = run([DOCKER, "image", "inspect", "-f", "{{.Size}}", TAG]).stdout.strip()
    log("ok   build: %s from deploy/Dockerfile, %d steps (%d cached), %d MB, %d s" % (
        TAG, steps, cached, int(size) // 1000000, time.monotonic() - t0))


# ---------------------------------------------------------------- the stack

class Stack:
    def __init__(self, tmp):
        self.project = "coapgwcheck%d" % os.getpid()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", 0))
        self.port = s.getsockname()[1]
        s.close()
        self.env = dict(os.environ, COAPGW_IMAGE=TAG, COAPGW_PORT=str(self.port), COMPOSE_PROJECT_NAME=self.project)
        for k in ("COAPGW_INSTANCE", "COAPGW_JWT_KEY_FILE", "COAPGW_JWT_ALG", "COAPGW_MESHSIM_DEVICES",
                  "COAPGW_LOG_LEVEL"):
            self.env.pop(k, None)
        self.upped = False
        self.tmp = tmp

    def compose(self, *args, timeout=240, check=True):
        return run(["docker-compose", "-p", self.project, "-f", os.path.join(DEPLOY, "compose.yaml")] + list(args),
                   timeout=timeout, check=check, env=self.env)

    def cid(self, svc):
        c = self.compose("ps", "-q", svc).stdout.split()
        if len(c) != 1:
            raise Fail("%s: expected one container, found %r" % (svc, c))
        return c[0]

    def inspect(self, svc):
        return json.loads(run([DOCKER, "inspect", self.cid(svc)]).stdout)[0]

    def exec(self, svc, *argv, timeout=30):
        return self.compose("exec", "-T", svc, *argv, timeout=timeout).stdout

    def up(self):
        self.upped = True
        t0 = time.monotonic()
        r = self.compose("up", "-d", "--no-build", timeout=300, check=False)
        if r.returncode != 0:
            self.dump()
            raise Fail("docker-compose up:\n%s" % (r.stdout + r.stderr)[-3000:])

        def healthy():
            for svc in ROLES:
                st = self.inspect(svc)["State"]
                if st.get("Health", {}).get("Status") != "healthy":
                    return False
            return True
        wait(healthy, 120, "every role healthy after up")
        init = self.inspect("init")["State"]
        if init["Status"] != "exited" or init["ExitCode"] != 0:
            raise Fail("init: %s, exit %s" % (init["Status"], init["ExitCode"]))
        log("ok   up: project %s on udp port %d, %s healthy (%d s)" % (self.project, self.port, ", ".join(ROLES),
                                                                      time.monotonic() - t0))

    def dump(self):
        r = self.compose("logs", "--no-color", "--tail", "25", timeout=60, check=False)
        log("----- docker-compose logs (last 25 lines per service)")
        log(r.stdout[-12000:])

    def down(self):
        if not self.upped:
            return
        self.upped = False
        self.compose("down", "-v", "--timeout", "10", timeout=180)


def metric(text, name, frontend):
    """One frontend's value of a metric, whatever its index label is called."""
    for line in text.splitlines():
        if line.startswith(name + "{") and 'role="frontend"' in line and \
                re.search(r'(instance|frontend)="%d"' % frontend, line):
            return int(float(line.rsplit(" ", 1)[1]))
    return None


def serve(st):
    gw = types.SimpleNamespace(port=st.port)
    # Normal devices only: a Milli device answers one request at a time and
    # refuses the others with 5.03 (S4.5), which is not what this measures.
    rows = [l.split(",") for l in st.exec("scheduler", "cat", "/var/lib/coapgw/devices.csv").splitlines()
            if re.match(r"^[0-9a-fA-F]{16},", l)]
    macs = [r[0] for r in rows if len(r) > 2 and r[2] == "normal"]
    if len(macs) < 2:
        raise Fail("fewer than two normal devices in the init service's devices file: %r" % rows)
    perms = st.exec("scheduler", "stat", "-c", "%a %U %n", "/var/lib/coapgw", "/var/lib/coapgw/jwt.key",
                    "/var/lib/coapgw/devices.csv").split("\n")
    for p in filter(None, perms):
        mode, owner, path = p.split(" ", 2)
        if owner != "coapgw" or int(mode, 8) & 0o077:
            raise Fail("%s is %s owned by %s: expected the coapgw user's, closed to group and others" %
                       (path, mode, owner))
    st.tokens = {}

    def token(account):
        return st.exec("scheduler", "coapgw", "token", "--account", account, "-c", CONF).strip().encode()

    def session(cl, account):
        r, _ = cl.request(POST, "/sessions?security=none", token(account))
        if r is None or r.code != code(2, 1):
            raise Fail("creating a session through port %d: %r" % (st.port, r))

    cl = Client(gw)
    session(cl, "check")
    r, _ = cl.request(GET, proxy="coap://%s/value" % macs[0], timeout=15)
    if r is None or r.code != code(2, 5):
        raise Fail("proxied GET coap://%s/value: %r" % (macs[0], r))
    # Observe: the registration's answer, then a notification the device
    # sends later on its own (every 5 s by default).
    ob = Client(gw)
    session(ob, "observer")
    tok = b"obs1"
    r, _ = ob.request(GET, proxy="coap://%s/sensor" % macs[1], options=[(OPT["observe"], 0)], token=tok, timeout=15)
    if r is None or r.code != code(2, 5) or r.opt(OPT["observe"]) is None:
        raise Fail("observe coap://%s/sensor: %r" % (macs[1], r))
    first = r.uint(OPT["observe"])

    def notified():
        m = ob.recv(0.5)
        return m is not None and m.token == tok and m.opt(OPT["observe"]) is not None and \
            m.uint(OPT["observe"]) != first
    wait(notified, 20, "a notification after the observe registration", interval=0)
    ob.request(GET, proxy="coap://%s/sensor" % macs[1], options=[(OPT["observe"], 1)], token=tok, timeout=5)
    log("ok   serve: session, proxied GET and observe (a later notification) through the published port %d"
        % st.port)

    # Scaled out: the frontends share the port (SO_REUSEPORT); the kernel
    # spreads client flows over them. Through docker-proxy each client port
    # is its own upstream flow.
    before_text = st.exec("scheduler", "coapgw", "metrics", "-c", CONF)
    before = {i: metric(before_text, "coapgw_rx_datagrams_total", i) for i in range(3)}
    if None in before.values():
        raise Fail("metrics lack coapgw_rx_datagrams_total for a frontend:\n%s" % before_text[:2000])
    answered = 0
    for _ in range(48):
        c = Client(gw)
        r, _ = c.request(GET, "/.well-known/core", timeout=5)
        c.close()
        answered += r is not None and r.code == code(2, 5)
    after_text = st.exec("scheduler", "coapgw", "metrics", "-c", CONF)
    after = {i: metric(after_text, "coapgw_rx_datagrams_total", i) for i in range(3)}
    grew = {i: after[i] - before[i] for i in range(3)}
    if answered != 48:
        raise Fail("only %d of 48 clients answered on port %d" % (answered, st.port))
    if not all(v > 0 for v in grew.values()):
        raise Fail("not every frontend received datagrams from 48 client ports: %r" % grew)
    log("ok   scale: 48 client ports answered on one port, spread over frontend-0..2 (%s datagrams)" %
        "/".join(str(grew[i]) for i in range(3)))
    cl.close()
    ob.close()
    return macs


class DedupSock:
    """A client socket that hides repeated responses with the same message
    ID (a retransmitted CON response, ACKed again; a piggybacked response
    resent for a retransmitted request), as a CoAP client's message layer
    does (RFC 7252 4.5), so that a second final answer counted means a
    second response, not a retransmission."""

    def __init__(self, sock):
        self.sock = sock
        self.seen = set()
        self.on_final = None

    def recvfrom(self, n):
        while True:
            data, addr = self.sock.recvfrom(n)
            m = Msg(data)
            if m.type in (CON, ACK) and m.code != 0:
                # A retransmitted CON response (ACK it again), or the same
                # piggybacked response resent for a retransmitted request
                # (the server's deduplication, RFC 7252 4.5): one message.
                if (m.type, m.mid) in self.seen:
                    if m.type == CON:
                        self.sock.sendto(encode(ACK, 0, m.mid), addr)
                    continue
                self.seen.add((m.type, m.mid))
            if self.on_final:
                self.on_final(m)
            return data, addr

    def __getattr__(self, name):
        return getattr(self.sock, name)


class TracedLoad(LoadClient):
    """LoadClient that remembers when each request was sent and how each
    final answer came (type, message ID), to explain a duplicate."""

    def __init__(self, gw, cl):
        super().__init__(gw, cl)
        self.sent_at = {}
        self.how = {}
        self.cl.sock.on_final = self.note

    def send(self, proxy, observe=None):
        tok = super().send(proxy, observe)
        self.sent_at[tok] = time.monotonic()
        return tok

    def note(self, m):
        if m.code != 0:
            self.how.setdefault(m.token, []).append((time.monotonic(), "CON" if m.type == CON else
                                                     "ACK" if m.type == ACK else str(m.type), m.mid))


def kill_each(st, macs):
    gw = types.SimpleNamespace(port=st.port)
    loads = []
    for i in range(3):
        cl = Client(gw)
        r, _ = cl.request(POST, "/sessions?security=none",
                          st.exec("scheduler", "coapgw", "token", "--account", "load%d" % i, "-c", CONF)
                          .strip().encode())
        if r is None or r.code != code(2, 1):
            raise Fail("load client session: %r" % r)
        cl.sock = DedupSock(cl.sock)
        loads.append(TracedLoad(gw, cl))
    rate = 20.0
    next_send = time.monotonic()
    report = []
    kills = []
    windows = []   # (role, killed, restarted)

    def pump(until, send=True):
        nonlocal next_send
        while True:
            now = time.monotonic()
            while send and next_send <= now:
                c = random.choice(loads)
                c.send("coap://%s/value?n=%d" % (random.choice(macs), c.sent))
                next_send += 1.0 / rate
            for c in loads:
                c.pump()
            if until():
                return True
            select.select([c.cl.sock for c in loads], [], [], 0.01)

    def pump_for(cond, timeout, what, send=True):
        end = time.monotonic() + timeout
        pump(lambda: cond() or time.monotonic() > end, send)
        if not cond():
            raise Fail("%s (waited %d s)" % (what, timeout))

    end = time.monotonic() + 2
    pump(lambda: time.monotonic() > end)
    for svc in os.environ.get("COAPGW_DOCKER_KILL", " ".join(KILL)).split():
        info = st.inspect(svc)
        pid, restarts = info["State"]["Pid"], info["RestartCount"]
        t_kill = time.monotonic()
        kills.append((svc, t_kill))
        os.kill(pid, signal.SIGKILL)   # a crash: `docker kill` would count as a manual stop

        def restarted():
            s = st.inspect(svc)
            return s["RestartCount"] > restarts and s["State"]["Running"] and s["State"]["Pid"] != pid
        pump_for(restarted, 40, "%s restarted by Docker after SIGKILL of pid %d" % (svc, pid))
        t_restart = time.monotonic() - t_kill

        def answered_again():
            return any(sent > t_kill + 0.05 for c in loads for sent, _ in c.answered)
        pump_for(answered_again, 40, "a request sent after %s was killed answered 2.05" % svc)
        report.append("%s (restarted %.1f s, answering %.1f s)" % (svc, t_restart, time.monotonic() - t_kill))
        windows.append((svc, t_kill, t_kill + t_restart))
    # Drain: every request sent gets its final answer (bounded).
    try:
        pump_for(lambda: all(not c.pending for c in loads), int(os.environ.get("COAPGW_DOCKER_DRAIN", "40")),
                 "every request's final answer after the kills", send=False)
    except Fail:
        for c in loads:
            for tok, p in c.pending.items():
                log("     unanswered: sent %.2f s after the first kill, %d retransmissions, %s" %
                    (p[1] - kills[0][1], p[3], "acknowledged" if p[4] else "never acknowledged"))
        for svc, t in kills:
            log("     killed %s at %.2f s" % (svc, t - kills[0][1]))
        raise
    log("     drained %.1f s after the last kill" % (time.monotonic() - kills[-1][1]))
    total = sum(c.sent for c in loads)
    codes = {}
    for c in loads:
        for v in c.finals.values():
            codes[v[0]] = codes.get(v[0], 0) + 1
    unauth = sum(1 for c in loads for v in c.finals.values() if code(4, 1) in v)
    named = {("%d.%02d" % (k >> 5, k & 31)): n for k, n in sorted(codes.items())}
    # S1.3: exactly one final answer per request, across every kill. A copy
    # of a request that SO_REUSEPORT steered to another frontend after a
    # frontend's SIGKILL is checked with the scheduler's deduplication before
    # any cache answer (frontend/fe_guard.h), so no duplicate is tolerated;
    # each is printed with how its answers came, to explain it.
    t0 = kills[0][1]
    several = []
    for c in loads:
        for tok, v in c.finals.items():
            if len(v) < 2:
                continue
            sent = c.sent_at[tok]
            several.append("%r to a request sent at %.2f s: %s" % (v, sent - t0, ", ".join(
                "%s mid %d at %.2f s" % (k, mid, t - t0) for t, k, mid in c.how.get(tok, []))))
    if several or unauth:
        for line in several:
            log("     several final answers %s" % line)
        log("     kills at %s" % ", ".join("%s %.2f s" % (svc, t - t0) for svc, t in kills))
        raise Fail("%d requests with several final answers, %d answered 4.01 (session lost): %r"
                   % (len(several), unauth, named))
    ok = codes.get(code(2, 5), 0)
    if ok < total * 0.9:
        raise Fail("too few 2.05 answers under the kills: %d of %d (%r)" % (ok, total, named))
    for c in loads:
        c.cl.close()
    log("ok   kill: SIGKILL of %s, one at a time, each restarted by Docker" % ", ".join(report))
    log("     kill: %d requests at %.0f/s meanwhile, each with exactly one final answer %r, no 4.01" %
        (total, rate, named))


def pod_shm(before):
    """Segments of the compose instance (COAPGW_INSTANCE=docker) on the host:
    other tests on this machine make their own coapgw-* segments meanwhile."""
    return sorted(e for e in set(os.listdir("/dev/shm")) - before if e.startswith("coapgw-docker"))


def leftovers(st, shm_before):
    left = []
    lbl = "label=com.docker.compose.project=%s" % st.project
    for kind, argv in (("containers", [DOCKER, "ps", "-aq", "--filter", lbl]),
                       ("networks", [DOCKER, "network", "ls", "-q", "--filter", lbl]),
                       ("volumes", [DOCKER, "volume", "ls", "-q", "--filter", lbl])):
        out = run(argv).stdout.split()
        if out:
            left.append("%s %s" % (kind, " ".join(out)))
    shm = pod_shm(shm_before)
    if shm:
        left.append("/dev/shm entries %s" % sorted(shm))
    return left


def main():
    tmp = tempfile.mkdtemp(prefix="coapgw-docker-")
    engine = Engine(tmp)
    st = None

    def on_signal(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    keep = os.environ.get("COAPGW_DOCKER_KEEP") == "1"
    rc = 1
    try:
        if not engine.start():
            log("test-compose-docker: NO ENGINE: dockerd is %s" %
                ("not installed" if not shutil.which("dockerd") else "installed but did not start"))
            return 2
        base_image(tmp)
        build_image()
        st = Stack(tmp)
        shm_before = set(os.listdir("/dev/shm"))
        st.up()
        try:
            shm_host = pod_shm(shm_before)
            if shm_host:
                raise Fail("the pod's segment appeared in the host's /dev/shm: %s (ipc: shareable keeps it in "
                           "the pod)" % shm_host)
            macs = serve(st)
            kill_each(st, macs)
        except BaseException:
            st.dump()
            raise
        if keep:
            log("     COAPGW_DOCKER_KEEP=1: project %s left up on port %d; engine left running" %
                (st.project, st.port))
            engine.started = False
            return 0
        t0 = time.monotonic()
        st.down()
        left = leftovers(st, shm_before)
        if left:
            raise Fail("`docker-compose down -v` left: %s" % "; ".join(left))
        log("ok   down: `docker-compose down -v` in %d s left no container, network, volume or shm segment" %
            (time.monotonic() - t0))
        rc = 0
    except Fail as e:
        log("FAIL %s" % e)
    except KeyboardInterrupt as e:
        log("FAIL interrupted (%s)" % e)
    finally:
        try:
            if st is not None and not keep:
                st.down()
        except Fail as e:
            log("FAIL %s" % e)
            rc = 1
        try:
            engine.stop()
        except Fail as e:
            log("FAIL %s" % e)
            rc = 1
        shutil.rmtree(tmp, ignore_errors=True)
    log("test-compose-docker: %s" % ("PASS" if rc == 0 else "FAIL"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
