#!/usr/bin/env python3
"""Security suite, local trust (issue #12 items 1, 2, 3, 9, 11, 13, 14;
PROTOCOL.md S9.2, S7.2).

The gateway runs as root (as CI does); the attacker is a second local user,
`nobody`, through setpriv. The attacker prepares what a local user could:
a pre-created world-writable data_dir with a planted development secret,
world-readable LMDB files and symbolic links where pid files and doorbells
go, a pre-created shared-memory segment, a hostile devices file, a second
instance on the same port. Each case prints what it tried and asserts the
refusal: exit 78 and a message naming the path or object."""
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "integration"))
import gwtest  # noqa: E402  (scratch_dir: temporary directories removed at exit)
from gwtest import COAPGW, free_udp_port, gateway, run, wait_for, write_devices  # noqa: E402

ATTACKER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
KEY = "00112233445566778899aabbccddeeff"
FATAL = 78
_seq = [0]


def nobody_uid():
    return pwd.getpwnam("nobody").pw_uid


def as_attacker(what, script):
    """Runs a Python snippet as `nobody`; prints what the attacker tried."""
    print("  attacker (uid %d): %s" % (nobody_uid(), what))
    r = subprocess.run(ATTACKER + [sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, "the attacker's step failed: %s" % r.stderr
    return r.stdout


def sim_base():
    """A loopback /24 of our own for simulated devices (others may run gateways)."""
    _seq[0] += 1
    return "127.%d.%d.1" % (100 + os.getpid() % 100, 10 + _seq[0])


class Site:
    """A gateway's surroundings: a shared parent (like /tmp: mode 1777, so
    the attacker may create entries in it), a root-only directory for the
    configuration and the attacker's victim file, and an instance name."""

    def __init__(self, name):
        _seq[0] += 1
        self.tmp = gwtest.scratch_dir("coapgw-sec-")
        os.chmod(self.tmp, 0o1777)
        self.etc = os.path.join(self.tmp, "etc")
        os.mkdir(self.etc, 0o700)
        self.data_dir = os.path.join(self.tmp, "data")
        self.instance = "sec%d%s%d" % (os.getpid(), name, _seq[0])
        self.port = free_udp_port()
        self.victim = os.path.join(self.etc, "victim")
        with open(self.victim, "w") as f:
            f.write("precious root-owned content\n")
        self.cfg = dict(listen="127.0.0.1:%d" % self.port, instance=self.instance, data_dir=self.data_dir,
                        mesh_bind="127.0.0.1", meshsim_base=sim_base(), meshsim_devices=2)
        self.procs = []

    def write_config(self, **extra):
        cfg = dict(self.cfg)
        cfg.update({k: str(v) for k, v in extra.items()})
        path = os.path.join(self.etc, "coapgw.conf")
        with open(path, "w") as f:
            for k, v in cfg.items():
                f.write("%s = %s\n" % (k, v))
        return path

    def run(self, args=("run",), timeout=10.0, **extra):
        """Runs `coapgw ARGS -c CONF` as root. Returns (exit status or None
        when it was still running after timeout, output)."""
        conf = self.write_config(**extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("COAPGW_")}
        log = os.path.join(self.etc, "out.log")
        with open(log, "wb") as out:
            p = subprocess.Popen([COAPGW] + list(args) + ["-c", conf], stdout=out, stderr=subprocess.STDOUT,
                                 env=env, start_new_session=True)
            try:
                rc = p.wait(timeout)
            except subprocess.TimeoutExpired:
                rc = None
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
        with open(log, errors="replace") as f:
            return rc, f.read()

    def victim_intact(self):
        with open(self.victim) as f:
            return f.read() == "precious root-owned content\n"

    def cleanup(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(5)
        try:
            os.unlink("/dev/shm/coapgw-" + self.instance)
        except OSError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def expect_refusal(site, needles, args=("run",), **extra):
    rc, out = site.run(args, **extra)
    lines = [ln for ln in out.splitlines() if "ERROR" in ln or "refus" in ln]
    print("  coapgw %s: exit %s; %s" % (" ".join(args), "still running" if rc is None else rc,
                                         lines[0][:220] if lines else "(no error line)"))
    assert rc == FATAL, "expected exit %d (configuration error), got %s:\n%s" % (FATAL, rc, out[-3000:])
    for n in needles:
        assert n in out, "the refusal does not name %r:\n%s" % (n, out[-3000:])
    return out


PLANT_DIR = r"""
import os, sys
d, victim = sys.argv[1], sys.argv[2]
os.mkdir(d)
os.chmod(d, 0o777)
"""


def attacker_plants(site, what):
    """The attacker pre-creates data_dir 0777 and plants `what` in it."""
    steps = {
        "dev-secret": "open(os.path.join(d, 'dev-secret'), 'w').write('a' * 64); "
                      "os.chmod(os.path.join(d, 'dev-secret'), 0o644)",
        "lmdb": "os.mkdir(os.path.join(d, 'state'), 0o777); os.chmod(os.path.join(d, 'state'), 0o777); "
                "open(os.path.join(d, 'state', 'data.mdb'), 'w').close(); "
                "os.chmod(os.path.join(d, 'state', 'data.mdb'), 0o666)",
        "pid-link": "os.symlink(victim, os.path.join(d, 'supervisor.pid'))",
        "bell-link": "os.symlink(victim, os.path.join(d, 'bell-meshio'))",
        "bell-file": "open(os.path.join(d, 'bell-meshio'), 'w').close()",
    }
    script = PLANT_DIR + "\n".join(steps[w] for w in what)
    print("  attacker (uid %d): mkdir %s 0777; plants %s" % (nobody_uid(), site.data_dir, ", ".join(what)))
    r = subprocess.run(ATTACKER + [sys.executable, "-c", script, site.data_dir, site.victim], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------- item 1

def test_precreated_world_writable_data_dir_is_refused():
    """Item 1: a data_dir another user created (0777, with a planted secret,
    world-readable LMDB and links at the pid file and a doorbell) is refused
    by every role, naming the directory; the links' target is untouched."""
    s = Site("dir")
    try:
        attacker_plants(s, ["dev-secret", "lmdb", "pid-link", "bell-link"])
        for args in (("run",), ("meshio",), ("frontend", "-i", "0"), ("token", "--account", "a")):
            expect_refusal(s, [s.data_dir, "uid %d" % nobody_uid()], args)
        assert s.victim_intact(), "the file behind the planted pid/doorbell links was changed"
    finally:
        s.cleanup()


def test_planted_files_are_refused_each_by_name():
    """Item 1: the operator fixed the directory (chown root, 0700) but not
    what the attacker had put in it: each planted file is refused by name."""
    cases = [
        (["dev-secret"], "dev-secret"),
        (["lmdb"], "state"),
        (["pid-link"], "supervisor.pid"),
        (["bell-link"], "bell-meshio"),
        (["bell-file"], "bell-meshio"),
    ]
    for what, needle in cases:
        s = Site("f")
        try:
            attacker_plants(s, what)
            os.chown(s.data_dir, 0, 0)
            os.chmod(s.data_dir, 0o700)
            print("  operator: chown root %s; chmod 0700 (content left as it was)" % s.data_dir)
            expect_refusal(s, [os.path.join(s.data_dir, needle)])
            assert s.victim_intact(), "the file behind a planted link was changed"
        finally:
            s.cleanup()


def test_readable_secret_or_state_in_own_dir_is_refused():
    """Item 1: the gateway's own directory, but a development secret or an
    LMDB file that others may read (an old install, a careless chmod)."""
    for rel, mode in (("dev-secret", 0o644), ("state/data.mdb", 0o640), ("state/lock.mdb", 0o604)):
        s = Site("m")
        try:
            os.makedirs(os.path.join(s.data_dir, "state"), 0o700)
            os.chmod(s.data_dir, 0o700)
            p = os.path.join(s.data_dir, rel)
            with open(p, "w") as f:
                f.write("x")
            os.chmod(p, mode)
            print("  set-up: %s mode %04o, owned by root" % (p, mode))
            expect_refusal(s, [p, "%04o" % mode])
        finally:
            s.cleanup()


# ---------------------------------------------------------------- item 2

def test_precreated_shared_memory_is_refused():
    """Item 2: /dev/shm/coapgw-<instance> created 0666 by another user before
    the gateway starts: the supervisor and a role started on its own refuse
    it, naming the object, and do not format or use it."""
    s = Site("shm")
    name = "/dev/shm/coapgw-" + s.instance
    try:
        as_attacker("creates %s mode 0666 (to read the rings and push records)" % name,
                    "import os; fd = os.open(%r, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666); "
                    "os.fchmod(fd, 0o666); os.ftruncate(fd, 4096); os.write(fd, b'attacker'); os.close(fd)"
                    % name)
        for args in (("run",), ("scheduler",), ("frontend", "-i", "0")):
            expect_refusal(s, [name], args)
        st = os.stat(name)
        with open(name, "rb") as f:
            head = f.read(8)
        assert st.st_uid == nobody_uid() and head == b"attacker", "the segment was replaced or formatted"
        # Our own segment, but open to others (a umask or chmod slip): refused too.
        os.unlink(name)
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.fchmod(fd, 0o644)
        os.close(fd)
        print("  set-up: %s owned by root, mode 0644" % name)
        expect_refusal(s, [name, "0644"], ("meshio",))
    finally:
        s.cleanup()


# ---------------------------------------------------------------- item 3

def test_development_secret_needs_simulator_or_dev_mode():
    """Item 3: a real devices_file and no jwt_key_file: the gateway refuses to
    start; with dev_mode = true it starts and says so in a WARN."""
    s = Site("key")
    try:
        devfile = write_devices(os.path.join(s.etc, "devices.csv"),
                                [("0200000000000001", "127.0.0.1", "normal", KEY, 5683, 4849, "")])
        print("  config: devices_file %s, meshsim = 0, no jwt_key_file" % devfile)
        for args in (("run",), ("frontend", "-i", "0"), ("token", "--account", "a")):
            expect_refusal(s, ["jwt_key_file", "dev_mode"], args, devices_file=devfile, meshsim=0)
        assert not os.path.exists(os.path.join(s.data_dir, "dev-secret")), "a development secret was created"
    finally:
        s.cleanup()
    d = gwtest.scratch_dir("coapgw-sec-")
    try:
        devfile = write_devices(os.path.join(d, "devices.csv"),
                                [("0200000000000001", "127.0.0.1", "normal", KEY, 5683, 4849, "")])
        print("  config: the same with dev_mode = true")
        with gateway("devmode", devfile, meshsim=0, dev_mode="true") as gw:
            log = open(gw.log_path, errors="replace").read()
            warns = [ln for ln in log.splitlines() if "WARN" in ln and "development secret" in ln]
            print("  %d WARN lines about the development secret, e.g. %s" % (len(warns), warns[:1]))
            assert any("supervisor" in ln for ln in warns) and any("frontend" in ln for ln in warns), log[-3000:]
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- items 9, 14

GOOD_A = "0200000000000001"
GOOD_B = "0200000000000002"
NEW_C = "0200000000000003"


def secret_file(d):
    """An HS256 key file of our own (0600), so that no dev_mode is needed."""
    p = os.path.join(d, "jwt.key")
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, os.urandom(32).hex().encode())
    os.close(fd)
    return p


def hostile_rows(addr="127.0.0.1"):
    """A devices file an operator could be handed: one good device, one new
    good device, then a second MAC on the first one's plain endpoint, a
    plain port equal to the first one's secure port, and two bad lines."""
    return [
        (GOOD_A, addr, "normal", KEY, 5683, 4849, ""),
        (NEW_C, "127.0.0.9", "normal", KEY, 5683, 4849, ""),
        ("0200000000000004", addr, "normal", KEY, 5683, 4999, ""),
        ("0200000000000005", addr, "milli", KEY, 4849, 5000, ""),
        ("not-a-mac", addr, "normal", KEY, 5001, 5002, ""),
        ("0200000000000006", "999.0.0.1", "normal", KEY, 5683, 4849, ""),
    ]


HOSTILE_NEEDLES = [
    "hostile.csv:4: 127.0.0.1:5683 already used by %s" % GOOD_A,
    "hostile.csv:5: 127.0.0.1:4849 already used by %s" % GOOD_A,
    "hostile.csv:6: ",
    "hostile.csv:7: ",
]


def test_hostile_devices_file_refused_at_start():
    """Items 9, 14: a devices file with two MACs on one address:port (and a
    plain port equal to another device's secure port) and bad lines: the
    gateway refuses to start, naming every bad line as file:line."""
    s = Site("hdev")
    try:
        key = secret_file(s.etc)
        devfile = write_devices(os.path.join(s.etc, "hostile.csv"), hostile_rows())
        print("  devices file: %s (2 devices on 127.0.0.1:5683/4849 with %s, 2 bad lines)" % (devfile, GOOD_A))
        for args in (("run",), ("scheduler",)):
            expect_refusal(s, HOSTILE_NEEDLES, args, devices_file=devfile, meshsim=0, jwt_key_file=key)
        # Missing devices_file: a configuration error too.
        expect_refusal(s, ["devices_file", "nope.csv"], ("run",), devices_file=os.path.join(s.etc, "nope.csv"),
                       meshsim=0, jwt_key_file=key)
    finally:
        s.cleanup()


def test_devices_import_is_all_or_nothing():
    """Item 14: `coapgw devices import` of a file with bad lines changes
    nothing, exits non-zero and names every bad line; --skip-bad opts in."""
    s = Site("imp")
    try:
        key = secret_file(s.etc)
        conf = s.write_config(meshsim=0, jwt_key_file=key)
        good = write_devices(os.path.join(s.etc, "good.csv"),
                             [(GOOD_A, "127.0.0.1", "normal", KEY, 5683, 4849, ""),
                              (GOOD_B, "127.0.0.2", "normal", KEY, 5683, 4849, "")])
        hostile = write_devices(os.path.join(s.etc, "hostile.csv"), hostile_rows())

        def cli(*args):
            env = {k: v for k, v in os.environ.items() if not k.startswith("COAPGW_")}
            return subprocess.run([COAPGW] + list(args) + ["-c", conf], capture_output=True, text=True,
                                  timeout=30, env=env)
        r = cli("devices", "import", good)
        assert r.returncode == 0, r.stderr
        before = cli("devices", "list").stdout
        print("  imported good.csv: %s" % r.stdout.strip())
        r = cli("devices", "import", hostile)
        print("  coapgw devices import hostile.csv: exit %d; %s" % (r.returncode, r.stderr.strip().splitlines()[-1:]))
        assert r.returncode != 0, "a file with bad lines was accepted: %s" % r.stdout
        for n in HOSTILE_NEEDLES:
            assert n in r.stderr, "bad line not reported as file:line (%r):\n%s" % (n, r.stderr)
        after = cli("devices", "list").stdout
        assert after == before and NEW_C not in after, "the registry changed:\n%s" % after
        r = cli("devices", "import", "--skip-bad", hostile)
        print("  with --skip-bad: exit %d; %s" % (r.returncode, r.stdout.strip()))
        assert r.returncode == 0 and "2 devices imported, 4 bad lines skipped" in r.stdout, r
        after = cli("devices", "list").stdout
        assert NEW_C in after and GOOD_A in after and GOOD_B not in after, after
    finally:
        s.cleanup()


def test_sighup_with_bad_file_keeps_the_registry():
    """Item 14: SIGHUP re-reads devices_file all or nothing: a bad file keeps
    the old registry and logs each bad line; an import cannot be undone by a
    SIGHUP because `devices import` refuses while devices_file is set."""
    d = gwtest.scratch_dir("coapgw-sec-")
    try:
        key = secret_file(d)
        f = write_devices(os.path.join(d, "hostile.csv"), [(GOOD_A, "127.0.0.1", "normal", KEY, 5683, 4849, "")])
        with gateway("hup", f, meshsim=1, jwt_key_file=key, meshsim_base=sim_base()) as gw:
            write_devices(f, hostile_rows())
            print("  rewrote %s with a new device, duplicate endpoints and bad lines; SIGHUP" % f)
            os.kill(gw.pid("supervisor"), signal.SIGHUP)
            wait_for(lambda: all(n in open(gw.log_path, errors="replace").read() for n in HOSTILE_NEEDLES), 10,
                     "every bad line logged as file:line")
            time.sleep(0)  # the check below is on state, already settled by the log lines
            lst = gw.coapgw("devices", "list").stdout
            print("  registry after SIGHUP: %s" % ", ".join(ln.split(",")[0] for ln in lst.splitlines()[1:]))
            assert GOOD_A in lst and NEW_C not in lst, "part of the bad file was applied:\n%s" % lst
            r = gw.coapgw("devices", "import", f, check=False)
            print("  coapgw devices import with devices_file set: exit %d" % r.returncode)
            assert r.returncode != 0 and "devices_file" in r.stderr, r
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ---------------------------------------------------------------- item 11

def mapped_files(pid, under):
    out = set()
    with open("/proc/%d/maps" % pid) as f:
        for line in f:
            parts = line.split(None, 5)
            if len(parts) == 6 and parts[5].strip().startswith(under):
                out.add(parts[5].strip())
    return sorted(out)


def test_device_keys_private_and_never_mapped_by_the_frontend():
    """Item 11: the generated devices file (device keys) is 0600, and the
    internet-facing frontend maps no file that holds a device key; meshio,
    which seals and opens frames, does."""
    with gateway("keys", meshsim_base=sim_base(), meshsim_devices=4) as gw:
        devfile = os.path.join(gw.data_dir, "meshsim-devices.csv")
        mode = os.stat(devfile).st_mode & 0o777
        print("  %s: mode %04o" % (devfile, mode))
        assert mode == 0o600, "device keys written with mode %04o" % mode
        keys = []
        for line in open(devfile):
            f = line.strip().split(",")
            if len(f) >= 4 and len(f[3]) == 32 and f[0] != "mac":
                keys.append(bytes.fromhex(f[3]))
        assert len(keys) == 4, keys

        def files_with_keys(pid):
            hits = []
            for path in mapped_files(pid, gw.data_dir):
                with open(path, "rb") as fh:
                    data = fh.read()
                if any(k in data for k in keys):
                    hits.append(os.path.relpath(path, gw.data_dir))
            return hits
        fe, mesh = gw.pid("frontend-0"), gw.pid("meshio")
        fe_maps = [os.path.relpath(p, gw.data_dir) for p in mapped_files(fe, gw.data_dir)]
        print("  frontend maps %s; of them holding a device key: %s" % (fe_maps, files_with_keys(fe)))
        print("  meshio holds keys in: %s" % files_with_keys(mesh))
        assert files_with_keys(fe) == [], "the frontend maps device keys"
        assert files_with_keys(mesh), "meshio has no device key mapped: the test would see nothing"
        lst = gw.coapgw("devices", "list").stdout
        assert not any(k.hex() in lst.lower() for k in keys), "devices list prints keys"


# ---------------------------------------------------------------- item 13

def test_second_instance_on_the_same_port_is_refused():
    """Item 13: a second instance on the same `listen` does not silently
    share the port through SO_REUSEPORT: its frontend refuses (exit 78,
    "port N is used by instance <name>"); the first keeps serving; another
    frontend of the first instance (a container role) still joins it."""
    with gateway("porta", meshsim_base=sim_base()) as gw:
        s = Site("portb")
        try:
            s.cfg["listen"] = "127.0.0.1:%d" % gw.port
            print("  second instance %s on 127.0.0.1:%d, where instance %s runs" % (s.instance, gw.port,
                                                                                    gw.instance))
            expect_refusal(s, ["port %d is used by instance %s" % (gw.port, gw.instance)], ("run",))
            # On the wildcard address too (it would take part of the loopback traffic).
            s.cfg["listen"] = "0.0.0.0:%d" % gw.port
            expect_refusal(s, ["port %d is used by instance %s" % (gw.port, gw.instance)], ("run",))
        finally:
            s.cleanup()
        assert gw._ready(), "the first instance stopped answering"
        # A frontend of the same instance started on its own shares the port.
        env = {k: v for k, v in os.environ.items() if not k.startswith("COAPGW_")}
        log = open(os.path.join(gw.tmp, "fe1.log"), "wb")
        p = subprocess.Popen([COAPGW, "frontend", "-i", "1", "-c", gw.cfg_path], stdout=log,
                             stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            wait_for(lambda: "frontend 1 listening" in open(log.name, errors="replace").read() or p.poll(), 10,
                     "the second frontend of the same instance")
            print("  coapgw frontend -i 1 of instance %s: %s" % (gw.instance,
                                                                "running" if p.poll() is None else p.returncode))
            assert p.poll() is None, open(log.name, errors="replace").read()
            assert gw._ready()
        finally:
            if p.poll() is None:
                p.terminate()
                p.wait(10)
            log.close()


def main():
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("SKIP test_local: needs root and setpriv (the attacker is a second uid)")
        print("0 passed, 0 failed")
        return 0
    return run([
        test_precreated_world_writable_data_dir_is_refused,
        test_planted_files_are_refused_each_by_name,
        test_readable_secret_or_state_in_own_dir_is_refused,
        test_precreated_shared_memory_is_refused,
        test_development_secret_needs_simulator_or_dev_mode,
        test_hostile_devices_file_refused_at_start,
        test_devices_import_is_all_or_nothing,
        test_sighup_with_bad_file_keeps_the_registry,
        test_device_keys_private_and_never_mapped_by_the_frontend,
        test_second_instance_on_the_same_port_is_refused,
    ])


if __name__ == "__main__":
    sys.exit(main())
