"""gwtest - harness for coapgw's integration tests (Python standard library only).

Starts the real supervisor (`coapgw run`) with a temporary configuration on a
free loopback port, waits for readiness by polling (bounded), talks to it with
a raw CoAP client on a fixed local port (so message-level behaviour can be
asserted) or with libcoap's coap-client-notls, and stops only the processes it
started, by PID. Each process's log is printed when a test fails.
"""
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
import atexit

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COAPGW = os.environ.get("COAPGW_BIN", os.path.join(ROOT, "build", "coapgw"))
WRAP = os.environ.get("COAPGW_TEST_WRAP", "").split()

CON, NON, ACK, RST = 0, 1, 2, 3
GET, POST, PUT, DELETE = 1, 2, 3, 4
OPT = dict(if_match=1, uri_host=3, etag=4, if_none_match=5, observe=6, uri_port=7, location_path=8,
           uri_path=11, content_format=12, max_age=14, uri_query=15, accept=17, block2=23, block1=27,
           size2=28, proxy_uri=35, proxy_scheme=39, size1=60, no_response=258)


def code(c, d):
    return (c << 5) | d


def code_str(c):
    return "%d.%02d" % (c >> 5, c & 31)


# ---------------------------------------------------------------- CoAP codec

def uint_bytes(v):
    if v == 0:
        return b""
    n = (v.bit_length() + 7) // 8
    return v.to_bytes(n, "big")


def encode(mtype, mcode, mid, token=b"", options=(), payload=b""):
    out = bytearray([0x40 | (mtype << 4) | len(token), mcode, mid >> 8, mid & 0xff])
    out += token
    last = 0
    for num, val in sorted(options, key=lambda o: o[0]):
        if isinstance(val, int):
            val = uint_bytes(val)
        elif isinstance(val, str):
            val = val.encode()
        delta, length = num - last, len(val)
        ext = b""

        def nib(x):
            nonlocal ext
            if x < 13:
                return x
            if x < 269:
                ext += bytes([x - 13])
                return 13
            ext += struct.pack(">H", x - 269)
            return 14
        dn = nib(delta)
        dext = ext
        ext = b""
        ln = nib(length)
        out += bytes([(dn << 4) | ln]) + dext + ext + val
        last = num
    if payload:
        out += b"\xff" + payload
    return bytes(out)


class Msg:
    def __init__(self, data):
        self.raw = data
        b0 = data[0]
        self.ver, self.type, tkl = b0 >> 6, (b0 >> 4) & 3, b0 & 15
        self.code, self.mid = data[1], struct.unpack(">H", data[2:4])[0]
        self.token = data[4:4 + tkl]
        self.options = []
        i, num = 4 + tkl, 0
        self.payload = b""
        while i < len(data):
            if data[i] == 0xff:
                self.payload = data[i + 1:]
                break
            d, ln = data[i] >> 4, data[i] & 15
            i += 1
            def ext(x):
                nonlocal i
                if x == 13:
                    i += 1
                    return data[i - 1] + 13
                if x == 14:
                    i += 2
                    return struct.unpack(">H", data[i - 2:i])[0] + 269
                return x
            num += ext(d)
            ln = ext(ln)
            self.options.append((num, data[i:i + ln]))
            i += ln

    def opt(self, num):
        for n, v in self.options:
            if n == num:
                return v
        return None

    def opts(self, num):
        return [v for n, v in self.options if n == num]

    def uint(self, num):
        v = self.opt(num)
        return None if v is None else int.from_bytes(v, "big")

    def __repr__(self):
        return "<%s %s mid=%d tok=%s opts=%s %r>" % (["CON", "NON", "ACK", "RST"][self.type], code_str(self.code),
                                                   self.mid, self.token.hex(), self.options, self.payload[:60])


# ---------------------------------------------------------------- helpers

def wait_for(cond, timeout=10.0, what="condition", interval=0.02):
    """Polls cond() until it returns a true value; bounded in time."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def scratch_dir(prefix="coapgw-test-"):
    """A private temporary directory (0700) removed when the test program exits."""
    d = tempfile.mkdtemp(prefix=prefix)
    atexit.register(shutil.rmtree, d, True)
    return d


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_udp_port(host="127.0.0.1"):
    """A UDP port free now, below the kernel's ephemeral range: a port the kernel hands out for
    bind(port 0) could be given to another socket before our process binds it (meshio's mesh
    socket once took a gateway's client port that way). Probed by binding, bounded tries."""
    low = _ephemeral_low()
    if low > 11000:
        for _ in range(200):
            p = random.randrange(10000, low)
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((host, p))
                return p
            except OSError:
                continue
            finally:
                s.close()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Client:
    """A CoAP client on one fixed local port (sessions are bound to it)."""

    def __init__(self, gw, port=None, host="127.0.0.1"):
        self.gw = gw
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port or 0))
        self.port = self.sock.getsockname()[1]
        self.mid = random.randint(0, 65535)
        self.inbox = []
        self.auto_ack = True

    def close(self):
        self.sock.close()

    def next_mid(self):
        self.mid = (self.mid + 1) & 0xffff
        return self.mid

    def send_raw(self, data):
        self.sock.sendto(data, ("127.0.0.1", self.gw.port))

    def recv(self, timeout=5.0):
        """Next datagram (Msg) or None. CON messages are ACKed when auto_ack."""
        if self.inbox:
            return self.inbox.pop(0)
        self.sock.settimeout(timeout)
        try:
            data, _ = self.sock.recvfrom(65536)
        except socket.timeout:
            return None
        m = Msg(data)
        if m.type == CON and self.auto_ack:
            self.send_raw(encode(ACK, 0, m.mid))
        return m

    def request(self, method, path=None, payload=b"", options=(), proxy=None, mtype=CON, token=None,
                timeout=8.0, want_ack=False):
        """Sends a request and returns (final response Msg or None, list of all messages seen)."""
        token = token if token is not None else os.urandom(4)
        opts = list(options)
        if proxy:
            opts.append((OPT["proxy_uri"], proxy))
        if path:
            p, _, q = path.partition("?")
            for seg in p.strip("/").split("/"):
                if seg:
                    opts.append((OPT["uri_path"], seg))
            if q:
                for item in q.split("&"):
                    opts.append((OPT["uri_query"], item))
        mid = self.next_mid()
        self.send_raw(encode(mtype, method, mid, token, opts, payload))
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = self.recv(max(0.01, deadline - time.monotonic()))
            if m is None:
                break
            seen.append(m)
            if m.token == token and m.code != 0:
                return m, seen
            if m.type in (ACK, RST) and m.mid == mid and m.code == 0 and want_ack:
                continue
        return None, seen


class Gateway:
    """A real `coapgw run` on a free loopback port with its own instance."""

    def __init__(self, name, devices_file=None, **cfg):
        self.tmp = tempfile.mkdtemp(prefix="coapgw-it-")
        self.port = free_udp_port()
        self.instance = "it%d%s" % (os.getpid(), name)[:40]
        self.data_dir = os.path.join(self.tmp, "data")
        self.cfg = dict(listen="127.0.0.1:%d" % self.port, instance=self.instance, data_dir=self.data_dir,
                        log_level="info", mesh_bind="127.0.0.1")
        if devices_file:
            self.cfg["devices_file"] = devices_file
            # A test mesh with the development secret (S9.2 refuses it
            # otherwise); a test about that refusal passes dev_mode itself.
            if "jwt_key_file" not in cfg:
                self.cfg["dev_mode"] = "true"
        self.cfg.update({k: str(v) for k, v in cfg.items()})
        self.cfg_path = os.path.join(self.tmp, "coapgw.conf")
        with open(self.cfg_path, "w") as f:
            for k, v in self.cfg.items():
                f.write("%s = %s\n" % (k, v))
        self.log_path = os.path.join(self.tmp, "gateway.log")
        self.proc = None
        self.extra = []  # other processes we started (devices)

    def start(self, ready_timeout=20.0):
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("COAPGW_") and k not in ("COAPGW_BIN", "COAPGW_TEST_WRAP"):
                del env[k]
        self.proc = subprocess.Popen(WRAP + [COAPGW, "run", "-c", self.cfg_path], stdout=self.log,
                                     stderr=subprocess.STDOUT, env=env, start_new_session=True)
        wait_for(self._ready, ready_timeout, "gateway readiness on port %d" % self.port)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("gateway exited with %s" % self.proc.returncode)
        for role in ("scheduler", "meshio", "frontend-0"):
            if not self.pid(role):
                return False
        # Every configured frontend on the port: one that joins after the first
        # forwarded request keeps the cache path off for a while (frontend/fe_guard.h).
        nfe = int(self.cfg.get("frontends", "1"))
        if nfe > 1 and self.cfg.get("log_level") in ("info", "debug"):
            try:
                with open(self.log_path, "rb") as f:
                    log = f.read()
            except OSError:
                return False
            if not all(b"frontend %d listening" % i in log for i in range(nfe)):
                return False
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(0.2)
            s.sendto(encode(CON, GET, random.randint(0, 65535), b"r", [(OPT["uri_path"], ".well-known"),
                                                                          (OPT["uri_path"], "core")]),
                     ("127.0.0.1", self.port))
            data, _ = s.recvfrom(4096)
            return Msg(data).code == code(2, 5)
        except (socket.timeout, ConnectionRefusedError):
            return False
        finally:
            s.close()

    def pid(self, role):
        try:
            with open(os.path.join(self.data_dir, role + ".pid")) as f:
                p = int(f.read().strip() or 0)
            os.kill(p, 0)
            return p
        except (OSError, ValueError):
            return 0

    def coapgw(self, *args, check=True):
        r = subprocess.run([COAPGW] + list(args) + ["-c", self.cfg_path], capture_output=True, text=True, timeout=30)
        if check and r.returncode != 0:
            raise AssertionError("coapgw %s failed: %s" % (" ".join(args), r.stderr))
        return r

    def token(self, account="alice", ttl=3600, devices=None):
        args = ["token", "--account", account, "--ttl", str(ttl)]
        if devices:
            args += ["--devices", devices]
        return self.coapgw(*args).stdout.strip()

    def session(self, client, account="alice", query="security=none", devices=None):
        tok = self.token(account, devices=devices)
        r, _ = client.request(POST, "/sessions" + ("?" + query if query else ""), tok.encode())
        assert r is not None and r.code == code(2, 1), "session not created: %r" % (r,)
        return r

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        for p in self.extra:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
        if getattr(self, "log", None):
            self.log.close()

    def dump_log(self):
        try:
            with open(self.log_path, "rb") as f:
                sys.stdout.write(f.read()[-20000:].decode(errors="replace"))
        except OSError:
            pass

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def coap_server(addr, port=5683):
    """libcoap's coap-server-notls as a real plain-port device."""
    p = subprocess.Popen(["coap-server-notls", "-A", addr, "-p", str(port)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    def up():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.settimeout(0.2)
            s.sendto(encode(CON, GET, 1, b"x", [(OPT["uri_path"], ".well-known"), (OPT["uri_path"], "core")]),
                     (addr, port))
            s.recvfrom(2048)
            return True
        except (socket.timeout, ConnectionRefusedError):
            return p.poll() is not None and (_ for _ in ()).throw(AssertionError("coap-server-notls died"))
        finally:
            s.close()
    wait_for(up, 10, "coap-server-notls on %s:%d" % (addr, port))
    return p


def write_devices(path, rows):
    """rows: (mac, address, type, key, plain_port, secure_port, sim). The file
    holds device keys, so it is 0600 as the gateway requires (S9.2)."""
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write("mac,address,type,key,plain_port,secure_port,sim\n")
        for r in rows:
            f.write(",".join(str(x) for x in r) + "\n")
    return path


def sim_counters(addr, port=5683):
    """A simulated device's counters (GET /_sim/counters straight to the device)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(2)
        s.sendto(encode(CON, GET, random.randint(0, 65535), b"c", [(OPT["uri_path"], "_sim"),
                                                                     (OPT["uri_path"], "counters")]), (addr, port))
        data, _ = s.recvfrom(65536)
        return json.loads(Msg(data).payload.decode())
    finally:
        s.close()


# ---------------------------------------------------------------- runner

def run(tests):
    """Runs test functions; prints one line each and 'N passed, M failed'."""
    only = os.environ.get("COAPGW_IT_ONLY")
    passed = failed = 0
    for t in tests:
        if only and only not in t.__name__:
            continue
        t0 = time.monotonic()
        try:
            t()
            passed += 1
            print("PASS %-50s %.1fs" % (t.__name__, time.monotonic() - t0), flush=True)
        except Exception:
            failed += 1
            print("FAIL %-50s %.1fs" % (t.__name__, time.monotonic() - t0), flush=True)
            traceback.print_exc()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0


class gateway:
    """Context manager: a started gateway whose log is printed on failure."""

    def __init__(self, name, devices_file=None, **cfg):
        self.gw = Gateway(name, devices_file, **cfg)

    def __enter__(self):
        try:
            return self.gw.start()
        except Exception:
            self.gw.stop()
            self.gw.dump_log()
            self.gw.cleanup()
            raise

    def __exit__(self, et, ev, tb):
        self.gw.stop()
        if et is not None:
            print("---- gateway log (%s) ----" % self.gw.instance)
            self.gw.dump_log()
        self.gw.cleanup()
        return False
