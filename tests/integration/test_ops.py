#!/usr/bin/env python3
"""Operations (issue 15, SPEC S10.2): metrics an operator can alert on, logs
that trace a request, a configuration checked before it runs, the command
line, cleanup after a stopped instance, and what `cmake --install` and the
deploy/ files ship. Real `coapgw` processes, the simulator, HTTP over
loopback."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gwtest  # noqa: E402  (scratch_dir: temporary directories removed at exit)
from gwtest import (COAPGW, GET, ROOT, Client, code, gateway, run, wait_for, write_devices)

KEY = "00112233445566778899aabbccddeeff"
NORMAL = "0200000000000001"
SILENT = "0200000000000003"


def free_tcp_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def sim_gateway(name, **cfg):
    d = gwtest.scratch_dir("coapgw-ops-")
    base = "127.0.%d" % (20 + (abs(hash(name)) % 200))
    rows = [(NORMAL, base + ".1", "normal", KEY, 5683, 4849, "latency=1-3"),
            (SILENT, base + ".3", "normal", KEY, 5683, 4849, "silent")]
    cfg.setdefault("meshsim", 1)
    cfg.setdefault("mesh_ack_timeout_ms", 100)
    cfg.setdefault("mesh_max_transmit", 2)
    ctx = gateway(name, write_devices(os.path.join(d, "devices.csv"), rows), **cfg)
    ctx.devdir = d
    return ctx


def http(port, path):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.read().decode(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers.get("Content-Type", "")


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Exposition format 0.0.4 -> (families {name: type}, samples [(name, {labels}, value)]).
    Asserts the syntax: HELP and TYPE once per family, before its samples."""
    types, helps, samples = {}, set(), []
    current = None
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert name not in helps, "HELP twice for %s" % name
            helps.add(name)
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            assert name not in types, "TYPE twice for %s" % name
            assert kind in ("counter", "gauge", "histogram"), line
            types[name] = kind
            current = name
            continue
        assert not line.startswith("#"), line
        m = SAMPLE.match(line)
        assert m, "not a sample line: %r" % line
        name, labels, value = m.group(1), m.group(3) or "", m.group(4)
        lab = dict(LABEL.findall(labels))
        assert ",".join('%s="%s"' % kv for kv in LABEL.findall(labels)) == labels, "labels: %r" % line
        fam = name
        if types.get(current) == "histogram":
            fam = re.sub(r"_(bucket|sum|count)$", "", name)
        assert fam == current, "sample %s outside its family %s" % (name, current)
        if types[current] == "counter":
            assert name.endswith("_total"), "counter without _total: %s" % name
        samples.append((name, lab, float(value)))
    return types, samples


def series(samples, name, **want):
    return [(l, v) for n, l, v in samples if n == name and all(l.get(k) == str(x) for k, x in want.items())]


def test_metrics_names_and_labels():
    """Issue 15: labels per Prometheus conventions, each series only where it means something,
    outcomes as one counter by code, histograms, build info, process figures, rings, doorbells."""
    port = free_tcp_port()
    with sim_gateway("opsmet", metrics_listen="127.0.0.1:%d" % port, cache_max_entries=100) as gw:
        c = Client(gw)
        gw.session(c)
        before = {l["code"]: v for l, v in series(parse_metrics(http(port, "/metrics")[1])[1],
                                                   "coapgw_responses_total", role="frontend")}
        for _ in range(2):  # the second is a cache hit
            r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
            assert r is not None and r.code == code(2, 5), r
        r, _ = c.request(GET, proxy="coap://%s/value" % SILENT, timeout=10)
        assert r is not None and r.code == code(5, 4), r
        r, _ = c.request(GET, proxy="coap://0200000000000099/x")
        assert r.code == code(5, 2), r

        status, body, ctype = http(port, "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=0.0.4"), (status, ctype)
        types, s = parse_metrics(body)
        # No label collides with the one Prometheus attaches to every target.
        assert all("instance" not in l for _, l, _ in s), [x for x in s if "instance" in x[1]][:3]
        assert series(s, "coapgw_up", role="frontend", frontend=0)[0][1] == 1
        # Only where it means something.
        assert {l["role"] for _, l, _ in [x for x in s if x[0] == "coapgw_mesh_requests_total"]} == {"scheduler"}
        assert {l["role"] for _, l, _ in [x for x in s if x[0] == "coapgw_sessions_created_total"]} == {"frontend"}
        assert {l["role"] for _, l, _ in [x for x in s if x[0] == "coapgw_mesh_replays_total"]} == {"meshio"}
        assert not [x for x in s if x[0].startswith("coapgw_") and x[1].get("role") in ("supervisor", "meshsim")
                    and not x[0].startswith(("coapgw_up", "coapgw_process_", "coapgw_restarts"))]
        assert not series(s, "coapgw_restarts_total", role="supervisor")
        assert "coapgw_responses_2xx_total" not in types and "coapgw_requests_forbidden_total" not in types
        # Outcomes: one counter, a code label.
        by_code = {l["code"]: v - before.get(l["code"], 0)
                   for l, v in series(s, "coapgw_responses_total", role="frontend")}
        assert by_code.get("2.05") == 2 and by_code.get("5.04") == 1 and by_code.get("5.02") == 1, by_code
        assert before.get("2.01") == 1, before  # the session
        # Histograms: well formed, split by path, and the device round trip.
        assert types["coapgw_request_duration_seconds"] == "histogram"
        for path, n in (("proxied", 1), ("cache", 1), ("local", 2)):
            b = series(s, "coapgw_request_duration_seconds_bucket", frontend=0, path=path)
            les = [float(l["le"]) for l, _ in b]
            assert les == sorted(les) and les[-1] == float("inf"), les
            vals = [v for _, v in b]
            assert vals == sorted(vals), "buckets are cumulative: %r" % vals
            cnt = series(s, "coapgw_request_duration_seconds_count", frontend=0, path=path)[0][1]
            assert vals[-1] == cnt, (path, vals[-1], cnt)
            # 5.04 counts as proxied too: n is a floor.
            assert cnt >= n, (path, cnt)
            assert series(s, "coapgw_request_duration_seconds_sum", frontend=0, path=path)[0][1] > 0
        proxied = series(s, "coapgw_request_duration_seconds_count", frontend=0, path="proxied")[0][1]
        assert proxied == 2, "the 2.05 and the 5.04 went through the mesh: %r" % proxied
        rtt = series(s, "coapgw_device_rtt_seconds_count", role="scheduler")
        assert rtt and rtt[0][1] == 1, "one device answered: %r" % rtt
        # The silent device took at least the first timeout (100-150 ms) and a doubled one.
        slow = series(s, "coapgw_request_duration_seconds_bucket", frontend=0, path="proxied", le="0.25")[0][1]
        assert slow == 1, "the 5.04 took more than 250 ms, the 2.05 less: %r" % slow
        # Build info, process figures per role, rings, doorbells, bounds.
        bi = series(s, "coapgw_build_info")
        assert len(bi) == 1 and bi[0][1] == 1 and bi[0][0]["version"] and re.match(r"^[0-9a-f]{7,}", bi[0][0]["commit"]), bi
        ver = subprocess.run([COAPGW, "--version"], capture_output=True, text=True).stdout
        assert bi[0][0]["version"] in ver and bi[0][0]["commit"] in ver, ver
        for role in ("supervisor", "scheduler", "meshio", "frontend"):
            for m in ("coapgw_process_resident_memory_bytes", "coapgw_process_cpu_seconds_total",
                      "coapgw_process_open_fds", "coapgw_process_start_time_seconds"):
                v = series(s, m, role=role)
                assert v and v[0][1] > 0 or m == "coapgw_process_cpu_seconds_total", (m, role, v)
        rings = {(l["from"], l["to"]) for l, _ in series(s, "coapgw_ring_depth")}
        assert ("frontend-0", "scheduler") in rings and ("meshio", "scheduler") in rings, rings
        assert series(s, "coapgw_ring_slots", to="meshio")[0][1] >= 16
        bells = {l["to"]: v for l, v in series(s, "coapgw_doorbell_writes_total")}
        assert bells.get("scheduler", 0) > 0 and bells.get("frontend-0", 0) > 0, bells
        assert series(s, "coapgw_sessions_max")[0][1] == 100000
        assert series(s, "coapgw_txn_max")[0][1] == 8192


def test_http_paths_health_and_readiness():
    """Issue 15: /metrics, /healthz (the supervisor runs), /readyz (every role up and the client port
    answering), 404 elsewhere."""
    port = free_tcp_port()
    with sim_gateway("opshttp", metrics_listen="127.0.0.1:%d" % port) as gw:
        assert http(port, "/healthz")[:2] == (200, "ok\n")
        wait_for(lambda: http(port, "/readyz")[0] == 200, 10, "ready")
        for p in ("/", "/metrics/x", "/foo", "/healthz/"):
            st, body, _ = http(port, p)
            assert st == 404, (p, st)
            assert "coapgw_up" not in body
        assert http(port, "/metrics?x=1")[0] == 200
        # A frontend that does not run: not ready, still alive.
        fe = gw.pid("frontend-0")
        os.kill(fe, signal.SIGSTOP)
        try:
            st, body, _ = http(port, "/readyz")
            assert st == 503 and "client port" in body, (st, body)
            assert http(port, "/healthz")[0] == 200
        finally:
            os.kill(fe, signal.SIGCONT)
        wait_for(lambda: http(port, "/readyz")[0] == 200, 10, "ready again")
        os.kill(gw.pid("meshio"), signal.SIGKILL)
        # Restarted within the back-off; readiness may see it down in between, never errors.
        wait_for(lambda: http(port, "/readyz")[0] == 200, 15, "ready after meshio restart")


def log_lines(gw):
    with open(gw.log_path, errors="replace") as f:
        return f.read().splitlines()


def test_request_traced_by_id_in_debug_logs():
    """Issue 15: at debug, one line per client request and per mesh exchange, joined by the request id."""
    with sim_gateway("opstrace", log_level="debug") as gw:
        c = Client(gw)
        gw.session(c)
        r, _ = c.request(GET, proxy="coap://%s/value" % SILENT, timeout=10)
        assert r.code == code(5, 4), r

        def client_line():
            for l in log_lines(gw):
                if "client request" in l and "code=5.04" in l:
                    return l
        line = wait_for(client_line, 5, "client request line")
        kv = dict(re.findall(r"(\w+)=(\S+)", line))
        assert kv["client"] == "127.0.0.1:%d" % c.port and kv["mac"] == SILENT and kv["via"] == "mesh", line
        assert kv["path"] == "coap://%s/value" % SILENT, line
        assert re.match(r"^[0-9a-f]{16}$", kv["session"]) and int(kv["duration_us"]) > 100000, line
        req = kv["req"]
        mesh = [l for l in log_lines(gw) if "mesh exchange" in l and "req=%s" % req in l]
        assert len(mesh) == 1, mesh
        mk = dict(re.findall(r"(\w+)=(\S+)", mesh[0]))
        assert mk["mac"] == SILENT and mk["path"] == "/value" and mk["code"] == "5.04", mesh[0]
        assert mk["attempts"] == "2" and mk["outcome"] == "failed", mesh[0]
        assert not [l for l in log_lines(gw) if "0 similar lines suppressed" in l]


def test_json_log_format_and_runtime_level():
    """Issue 15: log_format = json (one object a line, same fields); SIGUSR2 cycles the level and
    `coapgw loglevel LEVEL` sets it, for every process of the instance."""
    with sim_gateway("opsjson", log_format="json", log_level="info") as gw:
        c = Client(gw)
        gw.session(c)
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5)
        objs = []
        for l in log_lines(gw):
            if l.startswith("{"):
                objs.append(json.loads(l))
        assert objs and all({"ts", "level", "role", "pid", "group", "msg"} <= set(o) for o in objs), objs[:2]
        assert not [o for o in objs if o["level"] == "debug"], "info hides debug"
        # info -> debug with SIGUSR2 (one step of the cycle).
        os.kill(gw.pid("supervisor"), signal.SIGUSR2)
        wait_for(lambda: [l for l in log_lines(gw) if "now debug" in l], 5, "level change logged")
        r, _ = c.request(GET, proxy="coap://%s/value?2" % NORMAL)
        assert r.code == code(2, 5)

        def traced():
            evs = [json.loads(l) for l in log_lines(gw) if l.startswith("{")]
            fe = [o for o in evs if o["msg"] == "client request" and o.get("via") == "mesh"]
            return fe and [o for o in evs if o["msg"] == "mesh exchange" and o.get("req") == fe[-1]["req"]]
        ev = wait_for(traced, 5, "JSON debug lines")[0]
        assert ev["mac"] == NORMAL and ev["path"] == "/value?2" and isinstance(ev["duration_us"], int), ev
        # coapgw loglevel sets it explicitly; the roles stop writing debug lines.
        r = gw.coapgw("loglevel", "warn")
        assert "warn" in r.stdout, r.stdout
        n = len(log_lines(gw))
        r, _ = c.request(GET, proxy="coap://%s/value?3" % NORMAL)
        assert r.code == code(2, 5)
        # The frontend handles datagrams in order and logs an answer right after sending it:
        # once a later request is answered, any line about the first one would be written.
        r, _ = c.request(GET, "/.well-known/core")
        assert r.code == code(2, 5)
        assert not [l for l in log_lines(gw)[n:] if '"debug"' in l], log_lines(gw)[n:]
        assert "warn" in gw.coapgw("loglevel").stdout
        assert gw.coapgw("loglevel", "loud", check=False).returncode == 2


# ---------------------------------------------------------------- configuration and CLI

def coapgw(*args, timeout=30):
    env = {k: v for k, v in os.environ.items() if not k.startswith("COAPGW_") or k == "COAPGW_BIN"}
    return subprocess.run([COAPGW] + list(args), capture_output=True, text=True, timeout=timeout, env=env)


def test_config_check_table_of_bad_files():
    """Issue 15: `coapgw config --check` validates without starting; every error names file:line and the key;
    `coapgw run` refuses the same files before printing any banner."""
    tmp = gwtest.scratch_dir("coapgw-ops-cfg-")
    try:
        data = os.path.join(tmp, "data")
        devs = os.path.join(tmp, "devices.csv")
        with open(devs, "w") as f:
            f.write("mac,address,type,key\n0200000000000001,127.0.0.5,normal,%s\nnot-a-mac,127.0.0.6,normal,%s\n"
                    % (KEY, KEY))
        os.chmod(devs, 0o600)
        good_devs = os.path.join(tmp, "good.csv")
        with open(good_devs, "w") as f:
            f.write("mac,address,type,key\n0200000000000001,127.0.0.5,normal,%s\n" % KEY)
        os.chmod(good_devs, 0o600)
        notpem = os.path.join(tmp, "key.pem")
        with open(notpem, "w") as f:
            f.write("this is not a PEM key\n")
        os.chmod(notpem, 0o600)
        open_dir = os.path.join(tmp, "open")
        os.mkdir(open_dir)
        os.chmod(open_dir, 0o777)
        base = "instance = opscheck\ndata_dir = %s\n" % data
        # (body after `base`, line of the bad key, key, words the message must hold)
        table = [
            ("listen = garbage\n", 3, "listen", "ADDRESS"),
            ("# port\nlisten = 127.0.0.1:99999\n", 4, "listen", "65535"),
            ("ring_slots = 1000\n", 3, "ring_slots", "power of two"),
            ("log_level = loud\n", 3, "log_level", "debug"),
            ("log_format = xml\n", 3, "log_format", "json"),
            ("cpu_sched = fifo\n", 3, "cpu_sched", "batch, normal"),
            ("nstart = 0\n", 3, "nstart", "outside"),
            ("no_such_key = 1\n", 3, "no_such_key", "unknown"),
            ("metrics_listen = 127.0.0.1:70000\n", 3, "metrics_listen", "65535"),
            ("jwt_alg = RS256\njwt_key_file = %s\n" % notpem, 4, "jwt_key_file", "PEM"),
            ("jwt_key_file = %s/missing.key\n" % tmp, 3, "jwt_key_file", "No such file"),
            ("meshsim = 1\ndevices_file = %s\n" % devs, None, "devices_file", "bad mac"),
            ("meshsim = 1\ndevices_file = %s/none.csv\n" % tmp, 4, "devices_file", "No such file"),
            ("meshsim = 1\ndevices_file = %s\n" % good_devs, 4, "devices_file", None),  # dev secret: fine with sim
            ("devices_file = %s\n" % good_devs, None, "jwt_key_file", "dev_mode"),
        ]
        for i, (body, line, key, words) in enumerate(table):
            path = os.path.join(tmp, "c%d.conf" % i)
            if i == 0:  # the instance line itself wrong, in the first file
                pass
            with open(path, "w") as f:
                f.write(base + body)
            r = coapgw("config", "--check", "-c", path)
            if words is None:
                assert r.returncode == 0 and "valid" in r.stdout, (body, r.stdout, r.stderr)
                continue
            assert r.returncode == 78, (body, r.returncode, r.stdout, r.stderr)
            if line is not None:
                assert "%s:%d: %s" % (path, line, key) in r.stderr, (body, r.stderr)
            elif key == "devices_file":
                # The devices file's own line, and the key that names the file.
                assert "%s:3: bad mac" % devs in r.stderr and "(devices_file)" in r.stderr, (body, r.stderr)
            else:
                assert key in r.stderr, (body, r.stderr)
            assert words in r.stderr, (body, r.stderr)
            assert not os.path.exists(data), "config --check created data_dir"
        # data_dir checks: unsafe parent, unsafe directory; nothing created.
        for dd, words in ((os.path.join(open_dir, "d"), "unsafe"), (open_dir, "0777")):
            path = os.path.join(tmp, "dd.conf")
            with open(path, "w") as f:
                f.write("instance = opscheck\n\ndata_dir = %s\n" % dd)
            r = coapgw("config", "--check", "-c", path)
            assert r.returncode == 78 and "%s:3: data_dir" % path in r.stderr and words in r.stderr, r.stderr
        assert os.listdir(open_dir) == []
        # The defaults are valid; run refuses a bad devices file before any banner.
        path = os.path.join(tmp, "ok.conf")
        with open(path, "w") as f:
            f.write(base)
        r = coapgw("config", "--check", "-c", path)
        assert r.returncode == 0 and "valid" in r.stdout, r.stderr
        path = os.path.join(tmp, "run.conf")
        with open(path, "w") as f:
            f.write(base + "listen = 127.0.0.1:%d\nmeshsim = 1\ndevices_file = %s\n" % (free_tcp_port(), devs))
        r = coapgw("run", "-c", path, timeout=20)
        assert r.returncode == 78 and "devices.csv:3" in r.stderr, (r.returncode, r.stderr)
        assert "is running" not in r.stdout and "First request" not in r.stdout, r.stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_cli_version_help_and_messages():
    """Issue 15: --version/version, help on stdout, meshsim -h, the real -i range, --devices and key-file
    messages, devices list that never creates a data_dir."""
    for args in (["--version"], ["version"]):
        r = coapgw(*args)
        assert r.returncode == 0 and re.match(r"^coapgw \d+\.\d+\.\d+ \(commit [0-9a-f]{7,}", r.stdout), r.stdout
    r = coapgw("help")
    assert r.returncode == 0 and "usage: coapgw" in r.stdout and "config --check" in r.stdout and not r.stderr
    r = coapgw("meshsim", "-h")
    assert r.returncode == 0 and "usage: coapgw meshsim" in r.stdout and "--latency" in r.stdout, (r.stdout, r.stderr)
    assert not re.search(r"\w+\.h\b", r.stdout), "help points to a source header: %s" % r.stdout
    tmp = gwtest.scratch_dir("coapgw-ops-cli-")
    try:
        data = os.path.join(tmp, "data")
        conf = os.path.join(tmp, "c.conf")
        with open(conf, "w") as f:
            f.write("instance = opscli\ndata_dir = %s\nmax_frontends = 4\n" % data)
        r = coapgw("frontend", "-i", "99", "-c", conf)
        assert r.returncode == 78 and "0..3" in r.stderr and "max_frontends" in r.stderr, r.stderr
        r = coapgw("token", "--account", "a", "--devices", "notahex", "-c", conf)
        assert r.returncode == 2 and "'notahex'" in r.stderr and "hex" in r.stderr and "16 hex digits" in r.stderr, \
            r.stderr
        r = coapgw("token", "--account", "a", "--devices", "0200000000000001,03*", "-c", conf)
        assert r.returncode == 0 and r.stdout.count(".") == 2, r.stderr
        shutil.rmtree(data)
        r = coapgw("devices", "list", "-c", conf)
        assert r.returncode != 0 and "no device registry" in r.stderr, (r.returncode, r.stderr)
        assert not os.path.exists(data), "devices list created data_dir"
        r = coapgw("devices", "list", "-c", os.path.join(tmp, "missing.conf"))
        assert r.returncode != 0 and "missing.conf" in r.stderr and "No such file" in r.stderr, r.stderr
        assert not os.path.exists(data)
        with open(conf, "a") as f:
            f.write("jwt_key_file = %s/nokey\n" % tmp)
        r = coapgw("token", "--account", "a", "-c", conf)
        assert r.returncode != 0 and "nokey" in r.stderr and "No such file or directory" in r.stderr, r.stderr
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_cleanup_after_a_stopped_instance():
    """Issue 15: `coapgw cleanup` refuses while a role of the instance runs, and afterwards removes the
    shared-memory segment, doorbells and pid/lock files it left (LMDB state stays)."""
    tmp = gwtest.scratch_dir("coapgw-ops-clean-")
    inst = "opsclean%d" % os.getpid()
    shm = "/dev/shm/coapgw-%s" % inst
    try:
        data = os.path.join(tmp, "data")
        conf = os.path.join(tmp, "c.conf")
        with open(conf, "w") as f:
            f.write("instance = %s\ndata_dir = %s\nmesh_bind = 127.0.0.1\n" % (inst, data))
        log = open(os.path.join(tmp, "sch.log"), "wb")
        env = {k: v for k, v in os.environ.items() if not k.startswith("COAPGW_")}
        p = subprocess.Popen([COAPGW, "scheduler", "-c", conf], stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            wait_for(lambda: os.path.exists(os.path.join(data, "scheduler.pid")) and os.path.exists(shm), 10,
                     "standalone scheduler")
            r = coapgw("cleanup", "-c", conf)
            assert r.returncode == 1 and "running" in r.stderr and "Nothing removed" in r.stderr, r.stderr
            assert os.path.exists(shm) and os.path.exists(os.path.join(data, "scheduler.pid"))
        finally:
            p.send_signal(signal.SIGKILL)  # a crash: nothing of its own clean-up runs
            p.wait(10)
            log.close()
        left = sorted(os.listdir(data))
        assert os.path.exists(shm) and "scheduler.pid" in left and "bell-scheduler" in left, left
        r = coapgw("cleanup", "-c", conf)
        assert r.returncode == 0 and "removed %s" % shm in r.stdout, (r.stdout, r.stderr)
        assert not os.path.exists(shm)
        now = sorted(os.listdir(data))
        assert not [n for n in now if n.startswith("bell-") or n.endswith((".pid", ".lock"))], now
        assert "state" in now, "LMDB state is kept: %r" % now
        r = coapgw("cleanup", "-c", conf)
        assert r.returncode == 0 and "nothing to clean up" in r.stdout, r.stdout
    finally:
        if os.path.exists(shm):
            os.unlink(shm)
        shutil.rmtree(tmp, ignore_errors=True)


def test_second_instance_and_meshsim_base():
    """Issue 15: a second instance on the same simulator addresses names meshsim_base; a changed meshsim_base
    regenerates the generated devices file."""
    b1 = "127.0.%d.1" % (230 + os.getpid() % 20)
    b2 = "127.0.%d.1" % (200 + os.getpid() % 20)
    with gateway("opssim1", devices_file=None, meshsim_base=b1) as gw1:
        g2 = gateway("opssim2", devices_file=None, meshsim_base=b1)
        try:
            try:
                g2.gw.start(ready_timeout=15)
                raise AssertionError("the second instance started on the first one's simulator addresses")
            except AssertionError as e:
                if "started on" in str(e):
                    raise
            assert g2.gw.proc.returncode == 78, g2.gw.proc.returncode
            log = open(g2.gw.log_path).read()
            assert "meshsim_base" in log and b1 in log, log[-2000:]
        finally:
            g2.gw.stop()
            g2.gw.cleanup()
        devfile = os.path.join(gw1.data_dir, "meshsim-devices.csv")
        first = [l for l in open(devfile).read().splitlines() if l and not l.startswith(("#", "mac,"))][0]
        assert first.split(",")[1] == b1, first
        gw1.stop()
        gw1.log.close()
        with open(gw1.cfg_path, "a") as f:
            f.write("meshsim_base = %s\n" % b2)
        gw1.start()
        first = [l for l in open(devfile).read().splitlines() if l and not l.startswith(("#", "mac,"))][0]
        assert first.split(",")[1] == b2, first
        assert "generating it again" in open(gw1.log_path).read()


# ---------------------------------------------------------------- deploy/, man page, install

PROM = os.path.join(ROOT, "deploy", "prometheus")
BUILD = os.path.dirname(os.path.abspath(COAPGW))


def live_families():
    """Metric family names a live gateway exports (histograms by their base name)."""
    port = free_tcp_port()
    with sim_gateway("opsfam", metrics_listen="127.0.0.1:%d" % port) as gw:
        c = Client(gw)
        gw.session(c)
        r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
        assert r.code == code(2, 5)
        types, _ = parse_metrics(http(port, "/metrics")[1])
        return set(types)


def names_in(expr):
    return set(re.findall(r"\b(coapgw_[a-z_]+?)(?:_bucket)?\b(?![a-z_])", expr))


def test_alert_rules_and_dashboard():
    """Issue 15: deploy/prometheus/ rules pass `promtool check rules` and their unit tests; the Grafana
    dashboard parses; every metric either names is one a live gateway exports."""
    r = subprocess.run(["promtool", "check", "rules", "coapgw-rules.yml"], cwd=PROM, capture_output=True, text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    r = subprocess.run(["promtool", "test", "rules", "coapgw-rules.test.yml"], cwd=PROM, capture_output=True,
                       text=True)
    assert r.returncode == 0 and "SUCCESS" in r.stdout, r.stdout + r.stderr
    rules = open(os.path.join(PROM, "coapgw-rules.yml")).read()
    alerts = set(re.findall(r"alert: (\w+)", rules))
    for want in ("CoapgwRoleRestarting", "CoapgwGatewayTimeouts", "CoapgwQueueSaturated", "CoapgwRingFull",
                 "CoapgwSessionTableNearlyFull"):
        assert want in alerts, alerts
    with open(os.path.join(PROM, "coapgw-dashboard.json")) as f:
        dash = json.load(f)
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert dash["title"] and dash["uid"] and len(dash["panels"]) >= 10 and all(exprs), dash.get("title")
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    used = set()
    for e in exprs + re.findall(r"expr: \|?\s*([^\n]+(?:\n {12,}[^\n]+)*)", rules):
        used |= names_in(e)
    have = live_families()
    # coapgw_X_bucket/_sum/_count belong to the histogram family coapgw_X.
    missing = sorted(n for n in used if n not in have and re.sub(r"_(sum|count)$", "", n) not in have)
    assert not missing, "rules/dashboard name metrics that do not exist: %s" % missing
    assert "coapgw_responses_total" in used and "coapgw_request_duration_seconds" in used


def test_man_page():
    """Issue 15: coapgw(8) names every command and key, and mandoc finds nothing to warn about."""
    page = os.path.join(BUILD, "coapgw.8")
    assert os.path.exists(page), "the build makes %s" % page
    r = subprocess.run(["mandoc", "-T", "lint", "-W", "warning", page], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr
    text = open(page).read()
    keys = [l.split(" = ")[0] for l in coapgw("config").stdout.splitlines() if " = " in l]
    assert len(keys) > 40
    missing = [k for k in keys if not re.search(r"^\.BR %s \"" % re.escape(k), text, re.M)]
    assert not missing, "keys missing from the man page: %s" % missing
    usage = coapgw("help").stdout
    cmds = set(re.findall(r"^  ([a-z]+)", usage, re.M))
    assert {"run", "status", "metrics", "cleanup", "loglevel", "config", "token", "devices", "version"} <= cmds, cmds
    missing = [c for c in cmds if not re.search(r"^\.(B|BR|TP)?\s*.*\b%s\b" % c, text, re.M)]
    assert not missing, "commands missing from the man page: %s" % missing
    r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                       env=dict(os.environ, MANPAGER="cat", MANWIDTH="80"))
    assert r.returncode == 0 and "CONFIGURATION" in r.stdout and not r.stderr.strip(), r.stderr


def test_install_into_a_prefix():
    """Issue 15: `cmake --install` puts the binary, the configuration (example and a first copy), the systemd
    unit with the installed paths and the man page under the prefix; a reinstall keeps the configuration."""
    tmp = gwtest.scratch_dir("coapgw-ops-inst-")
    try:
        def install():
            r = subprocess.run(["cmake", "--install", BUILD, "--prefix", tmp], capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
        install()
        for f in ("bin/coapgw", "share/man/man8/coapgw.8", "etc/coapgw/coapgw.conf", "etc/coapgw/coapgw.conf.example",
                  "lib/systemd/system/coapgw.service"):
            assert os.path.isfile(os.path.join(tmp, f)), f
        unit = open(os.path.join(tmp, "lib/systemd/system/coapgw.service")).read()
        assert "ExecStart=%s/bin/coapgw run -c %s/etc/coapgw/coapgw.conf" % (tmp, tmp) in unit, unit
        assert "User=coapgw" in unit and "RestartPreventExitStatus=78" in unit
        assert os.readlink(os.path.join(tmp, "bin/coapgw-client")) == "coapgw"
        binary = os.path.join(tmp, "bin/coapgw")
        r = subprocess.run([binary, "--version"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout.startswith("coapgw "), r.stdout
        env = {k: v for k, v in os.environ.items() if not k.startswith("COAPGW_")}
        env["COAPGW_DATA_DIR"] = os.path.join(tmp, "data")
        r = subprocess.run([binary, "config", "--check", "-c", os.path.join(tmp, "etc/coapgw/coapgw.conf")],
                           capture_output=True, text=True, env=env)
        assert r.returncode == 0 and "valid" in r.stdout, r.stdout + r.stderr
        conf = os.path.join(tmp, "etc/coapgw/coapgw.conf")
        with open(conf, "a") as f:
            f.write("log_level = debug\n")
        install()
        assert open(conf).read().endswith("log_level = debug\n"), "a reinstall replaced the operator's file"
        # The README's host install uses the unit's paths and user.
        readme = open(os.path.join(ROOT, "README.md")).read()
        src_unit = open(os.path.join(ROOT, "deploy", "coapgw.service")).read()
        exe, _, conf_path = re.search(r"^ExecStart=(\S+) run -c (\S+)", src_unit, re.M).group(1, 0, 2)
        user = re.search(r"^User=(\S+)", src_unit, re.M).group(1)
        host = readme[readme.index("## Host install"):]
        host = host[:host.find("\n## ", 5) if "\n## " in host[5:] else len(host)]
        for want in (exe, conf_path, "useradd", user, "cmake --install", "/var/lib/coapgw"):
            assert want in host, "README host install lacks %r" % want
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def sched_policies(pid):
    """The scheduling policy (sched(7) number) of every thread of pid: field 41 of stat."""
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
            out.append(int(f.read().rsplit(")", 1)[1].split()[38]))
    return out


def test_cpu_sched_batch_for_every_role():
    """Issue 13: cpu_sched = batch (the default) runs every thread of every role under
    SCHED_BATCH (3), so a hand-off between roles does not preempt the waker mid-turn;
    cpu_sched = normal leaves them as started (SCHED_OTHER, 0); a role restarted after
    SIGKILL gets it again; requests work either way."""
    roles = ("frontend-0", "scheduler", "meshio")
    for setting, want in ((None, 3), ("normal", 0)):
        cfg = {} if setting is None else {"cpu_sched": setting}
        with sim_gateway("opssched%s" % (setting or ""), **cfg) as gw:
            c = Client(gw)
            gw.session(c)
            r, _ = c.request(GET, proxy="coap://%s/value" % NORMAL)
            assert r.code == code(2, 5)
            for role in roles:
                got = sched_policies(gw.pid(role))
                assert got and all(x == want for x in got), (setting, role, got)
            if setting is None:
                old = gw.pid("scheduler")
                os.kill(old, signal.SIGKILL)
                wait_for(lambda: gw.pid("scheduler") and gw.pid("scheduler") != old, 10,
                         "scheduler restarted")
                wait_for(lambda: all(x == 3 for x in sched_policies(gw.pid("scheduler"))), 10,
                         "the restarted scheduler under SCHED_BATCH")


TESTS = [
    test_metrics_names_and_labels,
    test_http_paths_health_and_readiness,
    test_request_traced_by_id_in_debug_logs,
    test_json_log_format_and_runtime_level,
    test_cpu_sched_batch_for_every_role,
    test_config_check_table_of_bad_files,
    test_cli_version_help_and_messages,
    test_cleanup_after_a_stopped_instance,
    test_second_instance_and_meshsim_base,
    test_alert_rules_and_dashboard,
    test_man_page,
    test_install_into_a_prefix,
]

if __name__ == "__main__":
    sys.exit(run(TESTS))
