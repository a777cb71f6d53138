#!/usr/bin/env python3
"""Runs the StatefulSet's Pod as the kubelet would, without a cluster.

    unshare --net --mount --pid --fork --mount-proc --propagation private \\
        pod-replay.py ALL.yaml COAPGW_BIN SCRATCH

Inside fresh network, mount and PID namespaces (the Pod's), from the
rendered manifests: a Secret made as Kubernetes mounts one (root's, mode
0400), the `prepare` init container's script as root, then every other
container's command as the container's user (runAsUser 10001) with the
ConfigMap's environment, the scheduler sidecar first until its startup
probe passes, and every container's probes (exec, and httpGet on the
metrics container) until they pass. Then a SIGKILL of frontend-1: its
liveness probe fails, the Pod's /readyz says not ready, and after the
kubelet-style restart both pass again. Paths the manifests mount are
mapped into SCRATCH (a volume's mountPath -> SCRATCH/<volume>), so the
host's /var/lib or /run are never touched.
Prints "ok   5 pod: ..." or "FAIL 5 pod: ..."; exits 1 on failure."""
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
import urllib.error
import urllib.request

import yaml


def die(msg):
    print("FAIL 5 pod: %s" % msg, flush=True)
    raise SystemExit(1)


def lo_up():
    import fcntl
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = struct.pack("16sH14s", b"lo", 0, b"")
    flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, ifr))[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))
    s.close()


class Pod:
    def __init__(self, objs, binary, scratch):
        self.sts = [o for o in objs if o["kind"] == "StatefulSet"][0]
        self.spec = self.sts["spec"]["template"]["spec"]
        self.env = {}
        for o in objs:
            if o["kind"] == "ConfigMap":
                self.env.update({k: str(v) for k, v in o.get("data", {}).items()})
        self.scratch = scratch
        self.bindir = os.path.join(scratch, "bin")
        os.makedirs(self.bindir)
        os.symlink(os.path.abspath(binary), os.path.join(self.bindir, "coapgw"))
        # mountPath -> host path; the image's own files (the example config)
        # come from the checkout.
        self.map = {"/etc/coapgw/coapgw.conf": os.path.join(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))), "coapgw.conf")}
        self.procs = {}
        self.logs = os.path.join(scratch, "logs")
        os.makedirs(self.logs)
        self.user = self.spec.get("securityContext", {}).get("runAsUser", 0)

    def rw(self, s):
        for dst, src in sorted(self.map.items(), key=lambda kv: -len(kv[0])):
            s = s.replace(dst, src)
        return s

    def volumes(self):
        """Each volume a directory in the scratch tree; /dev/shm a tmpfs."""
        vols = {v["name"]: v for v in self.spec.get("volumes", [])}
        for c in self.spec.get("initContainers", []) + self.spec["containers"]:
            for m in c.get("volumeMounts", []):
                if m["mountPath"] == "/dev/shm":
                    continue
                self.map[m["mountPath"]] = os.path.join(self.scratch, "vol", m["name"])
        for name in {m["name"] for c in self.spec["containers"] for m in c.get("volumeMounts", [])} | set(vols):
            d = os.path.join(self.scratch, "vol", name)
            os.makedirs(d, exist_ok=True)
            # As the kubelet makes them: emptyDir 0777, a claim's root root's.
            os.chmod(d, 0o777 if name in vols and "emptyDir" in vols[name] else 0o755)
        sec = [v for v in vols.values() if "secret" in v]
        if not sec:
            die("no Secret volume")
        d = os.path.join(self.scratch, "vol", sec[0]["name"])
        mode = sec[0]["secret"].get("defaultMode", 0o644)
        for item in sec[0]["secret"].get("items", []):
            path = os.path.join(d, item["path"])
            if item["key"].endswith(".csv"):
                r = subprocess.run(["coapgw", "meshsim", "--generate", "4", "--base", "127.0.30.1", "--out", path,
                                   "--generate-only"], env=self.base_env(), capture_output=True, text=True)
                if r.returncode:
                    die("making a devices file: %s" % r.stderr)
            else:
                with open(path, "w") as f:
                    f.write(os.urandom(32).hex())
            os.chown(path, 0, 0)
            os.chmod(path, item.get("mode", mode))
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128m,mode=0777", "tmpfs", "/dev/shm"], check=True)

    def base_env(self):
        return {"PATH": self.bindir + ":/usr/local/bin:/usr/bin:/bin", "HOME": "/", "LANG": "C.UTF-8"}

    def cenv(self, c):
        e = self.base_env()
        for ef in c.get("envFrom", []):
            if "configMapRef" in ef:
                e.update({k: self.rw(v) for k, v in self.env.items()})
        for x in c.get("env", []):
            if "valueFrom" in x:
                e[x["name"]] = self.field(x)
            else:
                e[x["name"]] = self.rw(str(x.get("value", "")))
        return e

    def field(self, x):
        """The downward API as the kubelet fills it for this replay's Pod, ordinal 0."""
        path = x["valueFrom"].get("fieldRef", {}).get("fieldPath", "")
        if path == "metadata.labels['apps.kubernetes.io/pod-index']":
            return "0"
        die("env %s: unsupported valueFrom %r" % (x["name"], x["valueFrom"]))

    def hosts(self):
        """Cluster DNS for the nodes in COAPGW_NODES (S10.4): the replay's Pod is ordinal 0 on
        127.0.0.1, the others stand on 127.0.0.2 and up (nobody answers there), over an /etc/hosts
        bind-mounted in this mount namespace only."""
        names = [n.rsplit(":", 1)[0] for n in self.env.get("COAPGW_NODES", "").split(",") if n.strip()]
        if not names:
            return
        path = os.path.join(self.scratch, "hosts")
        with open(path, "w") as f:
            f.write("127.0.0.1 localhost\n::1 localhost\n")
            for i, n in enumerate(names):
                f.write("127.0.0.%d %s\n" % (i + 1, n.strip()))
        os.chmod(path, 0o644)
        subprocess.run(["mount", "--bind", path, "/etc/hosts"], check=True)

    def argv(self, c):
        cmd = c.get("command") or ["coapgw"]  # the image's ENTRYPOINT
        return [self.rw(a) for a in cmd + c.get("args", [])]

    def uid(self, c):
        return c.get("securityContext", {}).get("runAsUser", self.user)

    def as_user(self, c, argv):
        u = self.uid(c)
        if u == 0:
            return argv
        return ["setpriv", "--reuid", str(u), "--regid", str(u), "--clear-groups", "--"] + argv

    def start(self, c):
        log = open(os.path.join(self.logs, c["name"] + ".log"), "ab")
        p = subprocess.Popen(self.as_user(c, self.argv(c)), env=self.cenv(c), cwd="/", stdin=subprocess.DEVNULL,
                             stdout=log, stderr=subprocess.STDOUT)
        self.procs[c["name"]] = p
        return p

    def probe(self, c, kind):
        pr = c.get(kind)
        if not pr:
            return True
        if "exec" in pr:
            argv = self.as_user(c, [self.rw(a) for a in pr["exec"]["command"]])
            try:
                return subprocess.run(argv, env=self.cenv(c), cwd="/", capture_output=True,
                                      timeout=pr.get("timeoutSeconds", 1) + 5).returncode == 0
            except subprocess.TimeoutExpired:
                return False
        if "httpGet" in pr:
            port = pr["httpGet"]["port"]
            if isinstance(port, str):
                port = [p["containerPort"] for p in c.get("ports", []) if p["name"] == port][0]
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, pr["httpGet"]["path"]),
                                            timeout=pr.get("timeoutSeconds", 1) + 2) as r:
                    return 200 <= r.status < 400
            except Exception:
                return False
        die("%s: %s of a kind this replay does not run" % (c["name"], kind))

    def wait(self, what, cond, timeout=40):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return
            time.sleep(0.5)
        die("%s (waited %d s)" % (what, timeout))

    def dump(self):
        for n in sorted(os.listdir(self.logs)):
            lines = open(os.path.join(self.logs, n), errors="replace").read().splitlines()
            print("----- %s (last 15 lines)" % n)
            print("\n".join(lines[-15:]))

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for n, p in self.procs.items():
            try:
                p.wait(timeout=self.spec.get("terminationGracePeriodSeconds", 30))
            except subprocess.TimeoutExpired:
                p.kill()
                die("%s did not stop within the grace period" % n)


def main(path, binary, scratch):
    objs = [o for o in yaml.safe_load_all(open(path)) if o]
    os.chmod(scratch, 0o755)  # the Pod's user traverses it, like / in a container
    pod = Pod(objs, binary, scratch)
    lo_up()
    pod.volumes()
    pod.hosts()
    try:
        inits = pod.spec.get("initContainers", [])
        for c in inits:
            if c.get("restartPolicy") == "Always":
                # A sidecar: the next containers start once its startup probe passes.
                pod.start(c)
                pod.wait("%s: startupProbe" % c["name"], lambda: pod.probe(c, "startupProbe"))
                continue
            p = pod.start(c)
            try:
                rc = p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                die("init container %s still runs after 30 s" % c["name"])
            if rc != 0:
                die("init container %s exited with %d" % (c["name"], rc))
        for c in pod.spec["containers"]:
            pod.start(c)
        every = inits + pod.spec["containers"]
        for c in every:
            if c.get("restartPolicy") != "Always" and c in inits:
                continue
            for kind in ("livenessProbe", "readinessProbe"):
                pod.wait("%s: %s (%s)" % (c["name"], kind, pod.procs[c["name"]].poll()),
                         lambda: pod.probe(c, kind))
        # The metrics container serves every role's series, and nothing else.
        for c in [c for c in pod.spec["containers"] if any(p.get("name") == "metrics" for p in c.get("ports", []))]:
            port = [p["containerPort"] for p in c["ports"] if p["name"] == "metrics"][0]
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
                text = r.read().decode()
            nfe = int(pod.env.get("COAPGW_FRONTENDS", "1"))
            want = ['coapgw_up{role="scheduler"} 1', 'coapgw_up{role="meshio"} 1'] + \
                ['coapgw_up{role="frontend",frontend="%d"} 1' % i for i in range(nfe)]
            missing = [w for w in want if w not in text.splitlines()]
            if missing:
                die("%s: /metrics lacks %s" % (c["name"], missing))
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/nothing" % port, timeout=5)
                die("%s: /nothing answered 2xx" % c["name"])
            except urllib.error.HTTPError as e:
                if e.code != 404:
                    die("%s: /nothing answered %d, not 404" % (c["name"], e.code))
        nodes = int(pod.env.get("COAPGW_NODE_COUNT", "1"))
        if nodes > 1:
            # S10.4: meshio resolved the node names and opened its peer sockets as node 0.
            mlog = os.path.join(pod.logs, "meshio.log")
            pod.wait("meshio: node 0 of %d" % nodes,
                     lambda: "node 0 of %d" % nodes in open(mlog, errors="replace").read())
        running = [n for n, p in pod.procs.items() if p.poll() is None]
        print("ok   5 pod: prepare as root, then %s as uid %d: every startup, liveness and readiness probe passes; /metrics has every role%s"
              % (", ".join(running), pod.user, "; meshio is node 0 of %d" % nodes if nodes > 1 else ""), flush=True)

        # A role dies: its own liveness fails and the Pod's /readyz says so;
        # the kubelet restarts only that container.
        victim = [c for c in pod.spec["containers"] if c["name"] == "frontend-1"]
        metrics = [c for c in pod.spec["containers"] if c["name"] == "metrics"]
        if victim and metrics:
            v, m = victim[0], metrics[0]
            pod.procs[v["name"]].kill()
            pod.procs[v["name"]].wait()
            pod.wait("frontend-1: liveness fails after SIGKILL", lambda: not pod.probe(v, "livenessProbe"), 20)
            pod.wait("metrics: readiness fails without frontend-1", lambda: not pod.probe(m, "readinessProbe"), 20)
            others = [n for n, p in pod.procs.items() if n != v["name"] and p.poll() is not None
                      and not any(c["name"] == n and c.get("restartPolicy") != "Always" for c in inits)]
            if others:
                die("%s stopped when frontend-1 was killed" % others)
            pod.start(v)
            pod.wait("frontend-1: liveness after its restart", lambda: pod.probe(v, "livenessProbe"))
            pod.wait("metrics: readiness after frontend-1's restart", lambda: pod.probe(m, "readinessProbe"))
            print("ok   5 pod: frontend-1 SIGKILLed: its liveness and the Pod's /readyz fail, then pass after "
                  "its restart; the other containers kept running", flush=True)
        pod.stop()
    except SystemExit:
        pod.dump()
        for p in pod.procs.values():
            if p.poll() is None:
                p.kill()
        raise


if __name__ == "__main__":
    main(*sys.argv[1:4])
