#!/usr/bin/env bash
# deploy/check-compose.sh - checks deploy/: the Dockerfile, coapgw.conf and the
# Compose stack, under the real Docker engine wherever one can run.
#
#   1. compose     `docker-compose -f deploy/compose.yaml config` accepts the file
#   2. dockerfile  the build stages run exactly the README's set-up:
#                  `RUN deploy/setup-deps.sh` then `RUN deploy/build.sh`
#   3. build       (replay only) replays those stages: their COPY lines into a
#                  scratch tree (.dockerignore's allowlist), then their RUN lines
#   4. runtime     the runtime stage installs the Debian package of every
#                  library `ldd coapgw` names
#   5. config      deploy/coapgw.conf lists every key with its built-in default
#                  and, uncommented, parses to exactly the defaults
#   6. services    with Docker (as root with dockerd installed, or an engine
#                  already answering): deploy/test-compose-docker.py builds
#                  the image and runs the stack under the engine (session,
#                  proxied GET, observe, frontends sharing the port, SIGKILL of
#                  each role under traffic, `down -v` leaving nothing).
#                  Without an engine, and saying so loudly: the NAMESPACE
#                  REPLAY, which runs the compose services as Docker would,
#                  from `docker-compose config`, in new network, mount and PID
#                  namespaces standing in for the pod (a session and a proxied
#                  request, SIGKILL + restart of a frontend, the scheduler and
#                  meshio, a duplicate frontend index refused, a clean stop).
#
# Works from any directory. Prints one line per check and a final
# "check-compose: PASS (...)" naming which run of 6 it was, or
# "check-compose: FAIL"; exits 1 on failure. An installed engine that cannot
# start fails the check rather than falling back to the replay.
# Environment: CHECK_COMPOSE_ENGINE=auto|docker|replay (default auto);
# CHECK_COMPOSE_BUILD=0 skips the replay's 3 and uses $COAPGW_BIN (default
# build/coapgw, which the Docker run also uses for 4 and 5);
# CHECK_COMPOSE_RUN=0 skips 6; CHECK_COMPOSE_KEEP=1 keeps the replay's scratch
# directory (service logs). The replay needs unshare(1) (root, or
# unprivileged user namespaces); without it, 6 is reported as skipped.
set -uo pipefail
deploy=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$deploy/.." && pwd)

fail() {
    echo "check-compose: FAIL: $*"
    exit 1
}
command -v docker-compose >/dev/null || fail "docker-compose is not installed (deploy/setup-deps.sh --test installs it)"
command -v python3 >/dev/null || fail "python3 is not installed"
python3 -c 'import yaml' 2>/dev/null || fail "python3-yaml is missing (a dependency of docker-compose)"

tmp=$(mktemp -d /tmp/coapgw-check-compose.XXXXXX) || fail "mktemp"
if [ "${CHECK_COMPOSE_KEEP:-0}" = 1 ]; then
    echo "     keeping $tmp (CHECK_COMPOSE_KEEP=1): logs of the services in run/logs/"
else
    trap 'rm -rf "$tmp"' EXIT
fi

# 1. The compose file as Compose itself reads it. --project-directory keeps
# relative paths (build context, bind mounts) relative to deploy/ from any cwd.
if ! (cd "$deploy" && docker-compose -f "$deploy/compose.yaml" config -q) 2>"$tmp/compose.err"; then
    cat "$tmp/compose.err"
    fail "docker-compose -f deploy/compose.yaml config rejects the file"
fi
(cd "$deploy" && docker-compose -f "$deploy/compose.yaml" config) >"$tmp/compose.yaml" 2>"$tmp/compose.err" ||
    { cat "$tmp/compose.err"; fail "docker-compose config"; }
if [ -s "$tmp/compose.err" ]; then
    cat "$tmp/compose.err"
    fail "docker-compose config printed warnings"
fi
echo "ok   1 compose: docker-compose $(docker-compose version --short 2>/dev/null) accepts deploy/compose.yaml"

cat >"$tmp/check.py" <<'PYEOF'
import fcntl, os, re, shlex, shutil, signal, socket, struct, subprocess, sys, time

import yaml


def die(msg):
    print("FAIL %s" % msg, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------- Dockerfile

def dockerfile_stages(path):
    """[(from_line, [(INSTR, args)])], continuation lines joined, comments dropped."""
    lines, cur = [], ""
    for raw in open(path):
        s = raw.rstrip("\n")
        if not cur and s.lstrip().startswith("#"):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        if cur.strip():
            lines.append(cur.strip())
        cur = ""
    stages = []
    for ln in lines:
        instr, _, args = ln.partition(" ")
        instr = instr.upper()
        if instr == "FROM":
            stages.append((args.strip(), []))
        elif stages:
            stages[-1][1].append((instr, args.strip()))
    return stages


def exec_form(args):
    args = args.strip()
    if args.startswith("["):
        return yaml.safe_load(args)
    return ["/bin/sh", "-c", args]


def build_chain(stages):
    """The stages before the runtime stage, each FROM debian or an earlier one."""
    names = set()
    for frm, _ in stages[:-1]:
        parts = frm.split()
        base = parts[0]
        if base != "debian:bookworm-slim" and base not in names:
            die("2 dockerfile: stage FROM %s, expected debian:bookworm-slim or an earlier stage" % frm)
        if len(parts) == 3 and parts[1].upper() == "AS":
            names.add(parts[2])
    return [i for _, instrs in stages[:-1] for i in instrs]


def cmd_dockerfile(dockerfile):
    stages = dockerfile_stages(dockerfile)
    if len(stages) < 2:
        die("2 dockerfile: expected build stages and a runtime stage, found %d FROM lines" % len(stages))
    if stages[-1][0].split()[0] != "debian:bookworm-slim":
        die("2 dockerfile: runtime stage FROM %s, expected debian:bookworm-slim" % stages[-1][0])
    runs = [a for i, a in build_chain(stages) if i == "RUN"]
    want = ["deploy/setup-deps.sh", "deploy/build.sh"]
    if runs != want:
        die("2 dockerfile: the build stages must run exactly %s in order (the README's set-up), found %r" %
            (" then ".join("`RUN %s`" % w for w in want), runs))
    print("ok   2 dockerfile: build stages run `%s`, the README's set-up" % " && ".join(want), flush=True)


def dockerignore_allow(root):
    """The allowlist of .dockerignore (`*` then `!name` lines), or None."""
    path = os.path.join(root, ".dockerignore")
    if not os.path.exists(path):
        return None
    lines = [l.strip() for l in open(path) if l.strip() and not l.startswith("#")]
    if not lines or lines[0] != "*":
        die("3 build: .dockerignore must be an allowlist (`*`, then `!name` lines) for the replay")
    return [l[1:] for l in lines[1:] if l.startswith("!")]


def cmd_replay(dockerfile, root, scratch):
    """Replays the build stages: COPY into scratch/<image path>, RUN there."""
    stages = dockerfile_stages(dockerfile)
    img = os.path.join(scratch, "img")
    workdir = "/"
    t0 = time.time()
    allow = dockerignore_allow(root)
    for instr, args in build_chain(stages):
        if instr == "WORKDIR":
            workdir = os.path.join(workdir, args)
            os.makedirs(img + workdir, exist_ok=True)
        elif instr == "COPY":
            parts = shlex.split(args)
            if any(p.startswith("--") for p in parts):
                die("3 build: cannot replay `COPY %s`" % args)
            *srcs, dst = parts
            dst = os.path.join(workdir, dst)
            for s in srcs:
                if s == "." and allow is not None:
                    entries = [(os.path.join(root, a), os.path.join(dst, a)) for a in allow
                               if os.path.exists(os.path.join(root, a))]
                else:
                    entries = [(os.path.join(root, s), dst)]
                for sp, d in entries:
                    if os.path.isdir(sp):
                        shutil.copytree(sp, img + d, symlinks=True, dirs_exist_ok=True,
                                        ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
                    else:
                        os.makedirs(os.path.dirname(img + d) if not d.endswith("/") else img + d, exist_ok=True)
                        shutil.copy2(sp, img + d)
        elif instr == "RUN":
            argv = exec_form(args)
            print("     3 build: RUN %s (in a copy of the sources, %s)" % (args, img + workdir), flush=True)
            r = subprocess.run(argv, cwd=img + workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if r.returncode != 0:
                print(r.stdout[-6000:])
                die("3 build: `RUN %s` exited with %d" % (args, r.returncode))
        elif instr in ("ENV", "ARG", "LABEL", "USER", "SHELL"):
            die("3 build: the replay does not handle %s in the build stages" % instr)
    # Where the runtime stage takes the binary from.
    src = None
    for instr, args in stages[-1][1]:
        if instr == "COPY" and args.startswith("--from="):
            parts = shlex.split(args)
            if parts[-1].endswith("/coapgw"):
                src = parts[1]
    if not src or not os.access(img + src, os.X_OK):
        die("3 build: the runtime stage copies %s, which the build stages did not produce" % src)
    print("ok   3 build: the build stages' steps built %s (%ds)" % (src, time.time() - t0), flush=True)
    print(img + src)


def installed_depends(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Depends} ${Pre-Depends}", pkg], capture_output=True, text=True)
    return set(re.findall(r"([a-z0-9][a-z0-9.+-]+)", re.sub(r"\([^)]*\)", "", r.stdout)))


def cmd_runtime(dockerfile, binary):
    stages = dockerfile_stages(dockerfile)
    pkgs = set()
    for instr, args in stages[-1][1]:
        if instr == "RUN" and "apt-get install" in args:
            for chunk in args.split("&&"):
                toks = chunk.split()
                if "apt-get" in toks and "install" in toks:
                    pkgs |= {t for t in toks[toks.index("install") + 1:] if not t.startswith("-")}
    if not pkgs:
        die("4 runtime: no `apt-get install` in the runtime stage")
    deps = set()
    for p in pkgs:
        deps |= installed_depends(p)
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    missing = []
    for m in re.finditer(r"=>\s+(/\S+)", out):
        lib = os.path.realpath(m.group(1))
        r = subprocess.run(["dpkg", "-S", lib], capture_output=True, text=True)
        if r.returncode != 0:
            r = subprocess.run(["dpkg", "-S", m.group(1)], capture_output=True, text=True)
        if r.returncode != 0:
            missing.append("%s (no Debian package owns it)" % lib)
            continue
        pkg = r.stdout.split(":")[0].strip()
        prio = subprocess.run(["dpkg-query", "-W", "-f=${Priority} ${Essential}", pkg], capture_output=True,
                              text=True).stdout
        if pkg in pkgs or pkg in deps or "required" in prio or "yes" in prio:
            continue
        missing.append("%s (%s)" % (pkg, lib))
    if missing:
        die("4 runtime: the runtime stage does not install: %s" % ", ".join(missing))
    print("ok   4 runtime: %s covers every library of coapgw" % " ".join(sorted(pkgs)), flush=True)


# ---------------------------------------------------------------- coapgw.conf

def cmd_config(conf, binary, scratch):
    clean = {"PATH": "/usr/bin:/bin"}
    dump = subprocess.run([binary, "config"], env=clean, capture_output=True, text=True, check=True).stdout
    defaults = dict(l.split(" = ", 1) if " = " in l else (l.rstrip(" ="), "") for l in dump.splitlines())
    documented, uncommented = {}, []
    for ln in open(conf):
        m = re.match(r"^#([a-z0-9_]+) =(?: (.*))?$", ln.rstrip("\n"))
        if m:
            documented[m.group(1)] = m.group(2) or ""
            uncommented.append("%s = %s\n" % (m.group(1), m.group(2) or ""))
        elif ln.strip() and not ln.startswith("#"):
            die("5 config: %s sets `%s`: the example keeps every key commented" % (conf, ln.strip()))
    missing = [k for k in defaults if k not in documented]
    extra = [k for k in documented if k not in defaults]
    if missing or extra:
        die("5 config: %s: undocumented keys %s, unknown keys %s" % (conf, missing, extra))
    # data_dir's default is empty; `config` prints the derived one (/var/lib/coapgw/<instance> as root).
    wrong = [k for k in defaults if documented[k] != defaults[k] and k != "data_dir"]
    if wrong:
        die("5 config: defaults differ from the built-in table: %s" %
            ", ".join("%s (%r, built in %r)" % (k, documented[k], defaults[k]) for k in wrong))
    path = os.path.join(scratch, "uncommented.conf")
    open(path, "w").writelines(uncommented)
    r = subprocess.run([binary, "config", "-c", path], env=clean, capture_output=True, text=True)
    if r.returncode != 0 or r.stdout != dump:
        die("5 config: %s, uncommented, does not load as the defaults: %s" % (conf, r.stderr.strip()))
    print("ok   5 config: deploy/coapgw.conf documents all %d keys with their defaults" % len(defaults), flush=True)


# ---------------------------------------------------------------- services

class Svc:
    def __init__(self, name, spec):
        self.name, self.spec = name, spec
        self.proc, self.log, self.starts = None, None, 0


def unescape(s):
    # `docker-compose config` writes a literal $ as $$.
    return s.replace("$$", "$") if isinstance(s, str) else s


def lo_up():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = struct.pack("16sH14s", b"lo", 0, b"")
    flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, ifr))[1]  # SIOCGIFFLAGS
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))  # SIOCSIFFLAGS, IFF_UP
    s.close()


def mount_tmpfs(path):
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512m,mode=1777", "tmpfs", path], check=True)


class Pod:
    def __init__(self, compose, dockerfile, binary, scratch):
        self.scratch = scratch
        self.svcs = {n: Svc(n, s) for n, s in compose["services"].items()}
        self.rewrites = []
        stages = dockerfile_stages(dockerfile)
        self.img_env, self.img_entry, self.img_cmd, self.img_wd = {}, [], [], "/"
        self.img_health = None
        for instr, args in stages[-1][1]:
            if instr == "ENV":
                k, _, v = args.partition("=")
                self.img_env[k.strip()] = v.strip()
            elif instr == "ENTRYPOINT":
                self.img_entry = exec_form(args)
            elif instr == "CMD":
                self.img_cmd = exec_form(args)
            elif instr == "WORKDIR":
                self.img_wd = args
            elif instr == "HEALTHCHECK" and " CMD " in " " + args:
                self.img_health = exec_form(args[args.index("CMD") + 3:])
        bindir = os.path.join(scratch, "bin")
        os.makedirs(bindir, exist_ok=True)
        os.symlink(os.path.abspath(binary), os.path.join(bindir, "coapgw"))
        self.path = bindir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        self.logdir = os.path.join(scratch, "logs")
        os.makedirs(self.logdir, exist_ok=True)

    # Namespaces: this process is PID 1 of a new PID namespace, alone in a new
    # network namespace, with a private mount namespace.
    def setup(self):
        lo_up()
        mount_tmpfs("/dev/shm")
        volumes = set()
        for svc in self.svcs.values():
            for v in svc.spec.get("volumes", []):
                if isinstance(v, dict):
                    src, dst, kind = v.get("source"), v["target"], v.get("type")
                else:
                    parts = v.split(":")
                    src, dst = parts[0], parts[1]
                    kind = "bind" if src.startswith("/") or src.startswith(".") else "volume"
                if kind == "bind":
                    self.rewrites.append((dst, src))
                else:
                    volumes.add(dst)
        self.volume_targets = volumes
        for dst in sorted(volumes):
            if os.path.isdir(dst):
                mount_tmpfs(dst)
            else:
                mount_tmpfs(os.path.dirname(dst))
                os.makedirs(dst)

    def rw(self, s):
        s = unescape(s)
        for dst, src in self.rewrites:
            s = s.replace(dst, src)
        return s

    def env(self, svc):
        e = {"PATH": self.path, "HOME": self.img_wd, "LANG": "C.UTF-8"}
        e.update(self.img_env)
        spec_env = svc.spec.get("environment") or {}
        if isinstance(spec_env, list):
            spec_env = dict(x.split("=", 1) for x in spec_env)
        e.update({k: self.rw(str(v)) for k, v in spec_env.items() if v is not None})
        return e

    def argv(self, svc):
        entry, cmd = svc.spec.get("entrypoint"), svc.spec.get("command")
        if entry is not None:
            entry = [entry] if isinstance(entry, str) else entry
            cmd = cmd if cmd is not None else []
        else:
            entry, cmd = self.img_entry, cmd if cmd is not None else self.img_cmd
        cmd = shlex.split(cmd) if isinstance(cmd, str) else cmd
        return [self.rw(str(a)) for a in list(entry) + list(cmd)]

    def order(self):
        seen, out = set(), []

        def deps(svc):
            d = list((svc.spec.get("depends_on") or {}))
            for key in ("network_mode", "ipc", "pid"):
                v = svc.spec.get(key) or ""
                if v.startswith("service:"):
                    d.append(v[8:])
            return d

        def visit(n, stack=()):
            if n in seen:
                return
            if n in stack:
                die("6 services: dependency cycle through %s" % n)
            for d in deps(self.svcs[n]):
                visit(d, stack + (n,))
            seen.add(n)
            out.append(n)

        for n in sorted(self.svcs):
            visit(n)
        return out

    def start(self, name):
        svc = self.svcs[name]
        if svc.log is None:
            svc.log = open(os.path.join(self.logdir, name + ".log"), "ab")
        svc.log.write(b"---- start %d: %s\n" % (svc.starts + 1, " ".join(self.argv(svc)).encode()))
        svc.log.flush()
        cwd = self.img_wd if os.path.isdir(self.img_wd) else "/"
        svc.proc = subprocess.Popen(self.argv(svc), env=self.env(svc), cwd=cwd, stdin=subprocess.DEVNULL,
                                    stdout=svc.log, stderr=subprocess.STDOUT)
        svc.starts += 1

    def health_test(self, name):
        hc = self.svcs[name].spec.get("healthcheck") or {}
        test = hc.get("test")
        if hc.get("disable") or not test or test[0] == "NONE":
            return None
        if isinstance(test, str):
            return ["/bin/sh", "-c", self.rw(test)]
        if test[0] == "CMD-SHELL":
            return ["/bin/sh", "-c", self.rw(test[1])]
        if test[0] == "CMD":
            return [self.rw(a) for a in test[1:]]
        die("6 services: %s: healthcheck %r" % (name, test))

    def healthy(self, name):
        t = self.health_test(name)
        if t is None:
            return True
        svc = self.svcs[name]
        try:
            r = subprocess.run(t, env=self.env(svc), cwd="/", capture_output=True, timeout=8)
        except subprocess.TimeoutExpired:
            return False
        return r.returncode == 0

    def wait(self, what, cond, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if cond():
                return
            time.sleep(0.3)
        die("6 services: %s (waited %ds)" % (what, timeout))

    def running(self, name):
        p = self.svcs[name].proc
        return p is not None and p.poll() is None

    def up(self):
        for name in self.order():
            for dep, c in (self.svcs[name].spec.get("depends_on") or {}).items():
                cond = c.get("condition", "service_started") if isinstance(c, dict) else "service_started"
                if cond == "service_completed_successfully":
                    p = self.svcs[dep].proc
                    try:
                        rc = p.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        die("6 services: %s waits for %s to complete, which still runs" % (name, dep))
                    if rc != 0:
                        die("6 services: %s exited with %d (%s needs it to succeed)" % (dep, rc, name))
                elif cond == "service_healthy":
                    self.wait("%s waits for %s to be healthy" % (name, dep), lambda: self.healthy(dep), 40)
                elif not self.running(dep) and self.svcs[dep].proc.returncode not in (None, 0):
                    die("6 services: %s exited with %d" % (dep, self.svcs[dep].proc.returncode))
            self.start(name)
        for name in self.order():
            if self.health_test(name) is not None:
                self.wait("%s becomes healthy" % name, lambda: self.healthy(name), 40)
            restart = self.svcs[name].spec.get("restart", "no")
            if restart not in ("no", "unless-stopped", "always", "on-failure"):
                die("6 services: %s: restart %r" % (name, restart))
            if restart != "no" and not self.running(name):
                die("6 services: %s is not running (exit %s)" % (name, self.svcs[name].proc.returncode))

    def kill_restart(self, name, others):
        svc = self.svcs[name]
        pid = svc.proc.pid
        svc.proc.send_signal(signal.SIGKILL)
        svc.proc.wait()
        if self.health_test(name) is not None:
            self.wait("%s reported unhealthy after SIGKILL" % name, lambda: not self.healthy(name), 15)
        for o in others:
            if not self.running(o):
                die("6 services: %s stopped when %s was killed" % (o, name))
        # What `restart: unless-stopped` does: the same container, started again.
        self.start(name)
        self.wait("%s healthy again after restart (was pid %d)" % (name, pid), lambda: self.healthy(name), 40)

    def down(self):
        bad = []
        for name in reversed(self.order()):
            p = self.svcs[name].proc
            if p is None or p.poll() is not None:
                continue
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)  # docker stop's default grace period
            except subprocess.TimeoutExpired:
                bad.append(name)
                p.kill()
        return bad

    def image_alone(self):
        for d in ["/dev/shm"] + sorted({dst for dst in self.volume_targets}):
            for e in os.listdir(d):
                p = os.path.join(d, e)
                shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
        svc = Svc("image", {})
        svc.log = open(os.path.join(self.logdir, "image.log"), "ab")
        env = {"PATH": self.path, "HOME": self.img_wd, "LANG": "C.UTF-8"}
        env.update(self.img_env)
        argv = [self.rw(a) for a in self.img_entry + self.img_cmd]
        svc.log.write(b"---- start: %s\n" % " ".join(argv).encode())
        svc.log.flush()
        self.image_svc = svc
        svc.proc = subprocess.Popen(argv, env=env, cwd=self.img_wd, stdin=subprocess.DEVNULL, stdout=svc.log,
                                    stderr=subprocess.STDOUT)
        if not self.img_health:
            die("6 services: the runtime stage has no HEALTHCHECK CMD")
        test = [self.rw(a) for a in self.img_health]

        def ok():
            if svc.proc.poll() is not None:
                die("6 services: `%s` (the image alone) exited with %d" % (" ".join(argv), svc.proc.returncode))
            return subprocess.run(test, env=env, cwd="/", capture_output=True, timeout=8).returncode == 0
        self.wait("the image alone (`%s`) passes its HEALTHCHECK" % " ".join(argv), ok, 40)
        svc.proc.send_signal(signal.SIGTERM)
        try:
            svc.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            svc.proc.kill()
            die("6 services: the image alone did not stop within 10 s of SIGTERM")

    def dump(self):
        for name in self.order() + (["image"] if getattr(self, "image_svc", None) else []):
            path = os.path.join(self.logdir, name + ".log")
            if os.path.exists(path):
                lines = open(path, errors="replace").read().splitlines()
                print("----- %s (last 30 lines)" % name)
                print("\n".join(lines[-30:]))


def coap(args, env, timeout=15):
    r = subprocess.run(["coap-client-notls", "-B", "5"] + args, env=env, capture_output=True, text=True,
                       timeout=timeout)
    return (r.stdout + r.stderr).strip()


def check_shared_namespaces(compose):
    """The emulation runs every service in one set of namespaces; Docker does
    so only when each role joins one owner's network, IPC and PID namespaces."""
    svcs = compose["services"]
    owners = [n for n, s in svcs.items() if s.get("ipc") == "shareable"]
    if len(owners) != 1:
        die("6 services: expected one service with `ipc: shareable` owning the namespaces, found %s" % owners)
    owner = owners[0]
    ref = "service:" + owner
    for n, s in svcs.items():
        if n == owner:
            continue
        wrong = [k for k in ("network_mode", "ipc", "pid") if s.get(k) != ref]
        if wrong:
            die("6 services: %s must set %s to %r: the rings (/dev/shm), SO_REUSEPORT and loopback to the "
                "simulator, and pid-based liveness and LMDB reader checks need one pod" % (n, "/".join(wrong), ref))
    if svcs[owner].get("restart", "no") == "no":
        die("6 services: %s owns the namespaces and must be restarted too" % owner)
    return owner


def cmd_services(compose_file, dockerfile, binary, scratch):
    compose = yaml.safe_load(open(compose_file))
    check_shared_namespaces(compose)
    pod = Pod(compose, dockerfile, binary, scratch)
    try:
        pod.setup()
        pod.up()
        fes = sorted(n for n in pod.svcs if n.startswith("frontend"))
        if len(fes) < 2:
            die("6 services: expected several frontend services, found %s" % fes)
        long_running = [n for n in pod.order() if pod.svcs[n].spec.get("restart", "no") != "no"]
        print("     6 services: %s up and healthy" % ", ".join(long_running), flush=True)

        # A first request through the published port, as a client would.
        sch = pod.svcs["scheduler"]
        env = pod.env(sch)
        ports = [p for s in pod.svcs.values() for p in (s.spec.get("ports") or [])]
        port = ports[0]["target"] if isinstance(ports[0], dict) else int(str(ports[0]).split(":")[-1].split("/")[0])
        gw = "127.0.0.1:%d" % port
        conf = pod.argv(sch)[pod.argv(sch).index("-c") + 1]
        token = subprocess.run(["coapgw", "token", "--account", "check", "-c", conf], env=env,
                               capture_output=True, text=True).stdout.strip()
        if not token:
            die("6 services: `coapgw token` printed no token")
        macs = [l.split(",")[0] for l in open(env["COAPGW_DEVICES_FILE"])
                if re.match(r"^[0-9a-fA-F]{16},", l)]
        if not macs:
            die("6 services: no device in %s" % env["COAPGW_DEVICES_FILE"])
        cport = "40123"
        out = coap(["-p", cport, "-m", "post", "-e", token, "coap://%s/sessions?security=none" % gw], env)
        if '"id"' not in out:
            die("6 services: creating a session: %r" % out)

        def proxied(what):
            def ok():
                o = coap(["-p", cport, "-P", "coap://" + gw, "coap://%s/value" % macs[0]], env)
                ok.last = o
                return o != "" and not re.match(r"^\d\.\d\d", o) and "WARN" not in o
            ok.last = ""
            end = time.time() + 20
            while time.time() < end:
                if ok():
                    return
                time.sleep(0.5)
            die("6 services: proxied GET %s: %r" % (what, ok.last))

        proxied("after start")
        print("     6 services: session and proxied GET through %s" % gw, flush=True)

        # Each role restarted on its own; the others keep running.
        for name in (fes[1], "scheduler", "meshio"):
            pod.kill_restart(name, [n for n in long_running if n != name])
            proxied("after %s was killed and restarted" % name)
        print("     6 services: %s, scheduler, meshio each SIGKILLed and restarted; session kept" % fes[1],
              flush=True)

        # A duplicate index (what `--scale frontend-0=2` would make) is refused.
        dup = subprocess.run(pod.argv(pod.svcs[fes[0]]), env=pod.env(pod.svcs[fes[0]]), cwd="/",
                             capture_output=True, text=True, timeout=20)
        if dup.returncode != 78:
            die("6 services: a second %s exited with %d, expected 78 (refused): %s" %
                (fes[0], dup.returncode, dup.stderr.strip()))
        if not pod.healthy(fes[0]):
            die("6 services: %s unhealthy after a duplicate was refused" % fes[0])

        slow = pod.down()
        if slow:
            die("6 services: %s did not stop within 10 s of SIGTERM" % ", ".join(slow))
        print("     6 services: every service stopped within 10 s of SIGTERM", flush=True)

        # The image on its own (`docker run coapgw`): ENTRYPOINT + CMD, that is
        # the supervisor with its embedded simulator, healthy by HEALTHCHECK.
        pod.image_alone()
        print("ok   6 services: the compose services run, serve, restart one by one and stop; "
              "the image alone passes its HEALTHCHECK", flush=True)
    except SystemExit:
        pod.dump()
        raise
    except Exception as e:
        pod.dump()
        die("6 services: %s: %s" % (type(e).__name__, e))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    {"dockerfile": cmd_dockerfile, "replay": cmd_replay, "runtime": cmd_runtime, "config": cmd_config,
     "services": cmd_services}[cmd](*args)
PYEOF

py() { python3 "$tmp/check.py" "$@"; }

# 2. The Dockerfile's build stage is the README's set-up.
py dockerfile "$deploy/Dockerfile" || fail "deploy/Dockerfile"

# Which run of the services: the real engine wherever Docker is installed and
# we are root (deploy/setup-deps.sh --test installs docker.io); the namespace
# replay only where no engine can be had. An installed engine that fails to
# start is a failure, never a silent fall-back.
engine=${CHECK_COMPOSE_ENGINE:-auto}
why="no Docker engine here"
[ "$engine" = replay ] && why="CHECK_COMPOSE_ENGINE=replay"
if [ "$engine" = auto ]; then
    if [ "$(id -u)" = 0 ] && command -v dockerd >/dev/null; then
        engine=docker
    elif docker version >/dev/null 2>&1; then
        engine=docker
    else
        engine=replay
    fi
fi
case "$engine" in
docker | replay) ;;
*) fail "CHECK_COMPOSE_ENGINE=$engine: expected auto, docker or replay" ;;
esac

# 3. The image's build stages: built by Docker itself (in 6), or replayed here.
if [ "$engine" = docker ]; then
    bin=${COAPGW_BIN:-$root/build/coapgw}
    [ -x "$bin" ] || fail "no binary at $bin for checks 4 and 5 (build it first, or set COAPGW_BIN)"
    echo "skip 3 build: Docker builds the image in 6; checks 4 and 5 use $bin"
elif [ "${CHECK_COMPOSE_BUILD:-1}" != 0 ]; then
    mkdir -p "$tmp/replay"
    py replay "$deploy/Dockerfile" "$root" "$tmp/replay" >"$tmp/replay.out" || { cat "$tmp/replay.out"; fail "replaying the Dockerfile's build stages"; }
    sed '$d' "$tmp/replay.out"
    bin=$(tail -n 1 "$tmp/replay.out")
else
    bin=${COAPGW_BIN:-$root/build/coapgw}
    [ -x "$bin" ] || fail "CHECK_COMPOSE_BUILD=0 and no binary at $bin (set COAPGW_BIN)"
    echo "skip 3 build: CHECK_COMPOSE_BUILD=0, using $bin"
fi

# 4, 5.
py runtime "$deploy/Dockerfile" "$bin" || fail "deploy/Dockerfile runtime packages"
py config "$deploy/coapgw.conf" "$bin" "$tmp" || fail "deploy/coapgw.conf"

# 6. The services.
if [ "${CHECK_COMPOSE_RUN:-1}" = 0 ]; then
    echo "skip 6 services: CHECK_COMPOSE_RUN=0"
elif [ "$engine" = docker ]; then
    echo "     6 services: UNDER THE REAL DOCKER ENGINE (deploy/test-compose-docker.py)"
    python3 "$deploy/test-compose-docker.py"
    rc=$?
    if [ $rc = 2 ]; then
        fail "6 services: Docker is installed here but no engine could be started (see above); set CHECK_COMPOSE_ENGINE=replay to run the namespace replay instead"
    fi
    [ $rc = 0 ] || fail "the compose stack (deploy/compose.yaml) does not run as expected under Docker"
    echo "ok   6 services: the compose stack ran under the real Docker engine"
else
    echo "!!!! 6 services: running the NAMESPACE REPLAY of the services, NOT DOCKER ($why)"
    ns=(unshare --net --mount --pid --fork --mount-proc --propagation private)
    [ "$(id -u)" = 0 ] || ns=(unshare --user --map-root-user --net --mount --pid --fork --mount-proc --propagation private)
    if ! command -v unshare >/dev/null || ! "${ns[@]}" true 2>/dev/null; then
        echo "skip 6 services: cannot create namespaces here (unshare)"
    elif ! command -v coap-client-notls >/dev/null; then
        fail "coap-client-notls is missing (libcoap3-bin, deploy/setup-deps.sh)"
    else
        mkdir -p "$tmp/run"
        "${ns[@]}" python3 "$tmp/check.py" services "$tmp/compose.yaml" "$deploy/Dockerfile" "$bin" "$tmp/run" ||
            fail "the compose services (deploy/compose.yaml) do not run as expected"
        echo "!!!! 6 services: that was the NAMESPACE REPLAY, not Docker ($why)"
    fi
fi
echo "check-compose: PASS ($([ "$engine" = docker ] && echo "real Docker engine" || echo "namespace replay: $why"))"
