#!/usr/bin/env python3
"""What the gateway needs from its Pod, checked on rendered manifests.

    policy.py ALL.yaml COAPGW_BIN

The schema check (validate.mjs) says the objects are valid Kubernetes; this
says they make a working, contained gateway (PROTOCOL.md S10.4, S9.2): the roles
share one process namespace, /dev/shm is memory, LMDB is per Pod, the
Secrets are 0400, every role has probes, requests and limits, runs as
non-root on a read-only root filesystem; the Services, the budget and the
network policy select the Pod and expose what they should; every COAPGW_*
key is one the binary knows and the frontends' indices fit the layout.
Prints "ok   4 shape: ..." or "FAIL 4 shape: ..." lines; exits 1 on failure."""
import re
import subprocess
import sys

import yaml

problems = []


def need(cond, msg):
    if not cond:
        problems.append(msg)
    return cond


def quantity(q):
    """Kubernetes quantity -> bytes (memory) or cores (cpu)."""
    q = str(q)
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "k": 1e3, "M": 1e6, "G": 1e9, "m": 1e-3}
    m = re.match(r"^([0-9.]+)([A-Za-z]*)$", q)
    if not m:
        return None
    return float(m.group(1)) * units.get(m.group(2), 1)


def selects(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def main(path, binary):
    objs = [o for o in yaml.safe_load_all(open(path)) if o]
    by_kind = {}
    for o in objs:
        by_kind.setdefault(o["kind"], []).append(o)
    keys = {}
    out = subprocess.run([binary, "config"], capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"})
    for line in out.stdout.splitlines():
        k, _, v = line.partition(" = ")
        keys[k.strip()] = v
    need(keys, "`%s config` printed no keys" % binary)

    sts = by_kind.get("StatefulSet", [None])[0]
    if not need(sts, "no StatefulSet"):
        return
    pod = sts["spec"]["template"]
    spec = pod["spec"]
    labels = pod["metadata"].get("labels", {})
    need(selects(sts["spec"]["selector"].get("matchLabels"), labels), "the StatefulSet's selector misses its Pod")
    need(spec.get("shareProcessNamespace") is True,
         "shareProcessNamespace: the roles check each other's pids and LMDB's reader table holds pids")
    psc = spec.get("securityContext", {})
    need(psc.get("runAsNonRoot") is True and psc.get("runAsUser", 0) != 0, "the Pod must run as non-root by default")
    need("fsGroup" not in psc, "fsGroup makes the volume group-writable, which the gateway refuses (S9.2)")

    vols = {v["name"]: v for v in spec.get("volumes", [])}
    shm = [n for n, v in vols.items() if v.get("emptyDir", {}).get("medium") == "Memory"]
    claims = {c["metadata"]["name"]: c for c in sts["spec"].get("volumeClaimTemplates", [])}
    secrets = {n: v["secret"] for n, v in vols.items() if "secret" in v}
    need(secrets, "no Secret volume (JWT key, devices file)")
    for n, s in secrets.items():
        need(s.get("defaultMode") == 0o400 and all(i.get("mode", 0o400) == 0o400 for i in s.get("items", [])),
             "Secret volume %s: mode must be 0400 (256), is %r" % (n, s.get("defaultMode")))
    lmdb_bytes = int(keys.get("lmdb_map_mb", "0") or 0) * 2**20

    cm = {c["metadata"]["name"]: c.get("data", {}) for c in by_kind.get("ConfigMap", [])}

    inits = spec.get("initContainers", [])
    sidecars = [c for c in inits if c.get("restartPolicy") == "Always"]
    oneshots = [c for c in inits if c.get("restartPolicy") != "Always"]
    roles = sidecars + spec.get("containers", [])
    role_of = {}
    for c in roles:
        argv = c.get("args") or c.get("command") or []
        role_of[c["name"]] = argv[0] if argv else None

    def mount(c, path):
        for m in c.get("volumeMounts", []):
            if m["mountPath"] == path:
                return m
        return None

    for c in inits + spec.get("containers", []):
        n = c["name"]
        sc = c.get("securityContext", {})
        need(sc.get("readOnlyRootFilesystem") is True, "%s: readOnlyRootFilesystem" % n)
        need(sc.get("allowPrivilegeEscalation") is False, "%s: allowPrivilegeEscalation: false" % n)
        need("ALL" in sc.get("capabilities", {}).get("drop", []), "%s: capabilities drop ALL" % n)
        res = c.get("resources", {})
        for kind in ("requests", "limits"):
            for r in ("cpu", "memory"):
                need(r in res.get(kind, {}), "%s: resources.%s.%s" % (n, kind, r))
        for m in c.get("volumeMounts", []):
            if m["name"] in secrets:
                need(m.get("readOnly") is True, "%s mounts Secret %s writable" % (n, m["name"]))
    for c in oneshots:
        sc = c.get("securityContext", {})
        added = set(sc.get("capabilities", {}).get("add", []))
        need(added <= {"CHOWN", "FOWNER"}, "%s: capabilities beyond CHOWN, FOWNER: %s" % (c["name"], added))
    frontends = []
    for c in roles:
        n, role = c["name"], role_of[c["name"]]
        sc = c.get("securityContext", {})
        need(sc.get("runAsNonRoot", True) is not False and sc.get("runAsUser", 1) != 0,
             "%s: a role must not run as root" % n)
        need("livenessProbe" in c, "%s: livenessProbe" % n)
        need(role in ("scheduler", "meshio", "frontend", "metrics"), "%s: unknown role %r" % (n, role))
        if role == "metrics":
            continue
        dm, sm = mount(c, "/var/lib/coapgw"), mount(c, "/dev/shm")
        need(dm and dm["name"] in claims, "%s: the per-Pod volume at /var/lib/coapgw" % n)
        need(sm and sm["name"] in shm, "%s: a memory emptyDir at /dev/shm (the rings)" % n)
        refs = [e["configMapRef"]["name"] for e in c.get("envFrom", []) if "configMapRef" in e]
        need(refs and all(r in cm for r in refs), "%s: envFrom the ConfigMap" % n)
        if role == "frontend":
            argv = c.get("args", [])
            need("-i" in argv, "%s: frontend without -i INDEX" % n)
            if "-i" in argv:
                frontends.append(int(argv[argv.index("-i") + 1]))
            need("readinessProbe" in c, "%s: readinessProbe (the Services send clients to ready Pods)" % n)
        if role == "scheduler":
            need(c in sidecars and "startupProbe" in c,
                 "scheduler: a sidecar init container with a startupProbe, so that it creates the segment first")
    present = set(role_of.values())
    need({"scheduler", "meshio", "frontend"} <= present, "roles present: %s" % sorted(present))
    need(len(set(frontends)) == len(frontends), "frontend indices used twice: %s" % frontends)

    env = {}
    for data in cm.values():
        env.update(data)
    for k in env:
        need(k.startswith("COAPGW_") and k[7:].lower() in keys, "ConfigMap key %s is no configuration key" % k)
    maxfe = int(env.get("COAPGW_MAX_FRONTENDS", keys.get("max_frontends", "8")))
    need(all(0 <= i < maxfe for i in frontends), "frontend indices %s outside 0..%d" % (frontends, maxfe - 1))
    need(int(env.get("COAPGW_FRONTENDS", "1")) == len(frontends),
         "COAPGW_FRONTENDS=%s but %d frontend containers" % (env.get("COAPGW_FRONTENDS"), len(frontends)))
    need(env.get("COAPGW_DATA_DIR", "").startswith("/var/lib/coapgw/"), "COAPGW_DATA_DIR outside the volume")
    # S10.4: several replicas are several nodes, or they would fork every device's nonce space:
    # COAPGW_NODE_COUNT = replicas, COAPGW_NODES the Pods' stable names in ordinal order on the
    # client port, and every role's COAPGW_NODE_ID its Pod's ordinal.
    replicas = int(sts["spec"].get("replicas", 1))
    ncount = int(env.get("COAPGW_NODE_COUNT", "1"))
    need(ncount == replicas, "COAPGW_NODE_COUNT=%d but replicas: %d" % (ncount, replicas))
    if replicas > 1:
        port = env.get("COAPGW_LISTEN", "0.0.0.0:5683").rsplit(":", 1)[1]
        want = ",".join("%s-%d.%s:%s" % (sts["metadata"]["name"], i, sts["spec"]["serviceName"], port)
                        for i in range(replicas))
        need(env.get("COAPGW_NODES") == want, "COAPGW_NODES=%r, want %r" % (env.get("COAPGW_NODES"), want))
        need(env.get("COAPGW_JWT_ALG") == "HS256", "several nodes sign their tokens with an HS256 key")
        for c in roles:
            ids = [x for x in c.get("env", []) if x["name"] == "COAPGW_NODE_ID"]
            need(ids and ids[0].get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") ==
                 "metadata.labels['apps.kubernetes.io/pod-index']",
                 "%s: COAPGW_NODE_ID from the Pod's ordinal (label apps.kubernetes.io/pod-index)" % c["name"])
    keys_mounts = {m["mountPath"] for c in roles for m in c.get("volumeMounts", []) if m.get("readOnly")}
    for k in ("COAPGW_JWT_KEY_FILE", "COAPGW_DEVICES_FILE"):
        need(any(env.get(k, "").startswith(p + "/") for p in keys_mounts), "%s not on a read-only mount" % k)

    for n in {m["name"] for c in roles for m in c.get("volumeMounts", []) if m["mountPath"] == "/dev/shm"}:
        lim = quantity(vols[n]["emptyDir"].get("sizeLimit", "0"))
        need(lim and lim >= 64 * 2**20, "emptyDir %s: sizeLimit at least 64Mi for the segment" % n)
    need("data" in claims, "volumeClaimTemplates: data")
    for n, c in claims.items():
        size = quantity(c["spec"]["resources"]["requests"]["storage"])
        need(c["spec"].get("accessModes") == ["ReadWriteOnce"], "claim %s: ReadWriteOnce (one Pod's LMDB)" % n)
        need(size and size >= lmdb_bytes, "claim %s: %s is below lmdb_map_mb" % (n, size))

    ports = {p["name"]: p for c in roles for p in c.get("ports", []) if "name" in p}
    svcs = by_kind.get("Service", [])
    client = [s for s in svcs if s["spec"].get("sessionAffinity") == "ClientIP"]
    if need(len(client) == 1, "one client Service with sessionAffinity: ClientIP (sessions bound to the address)"):
        s = client[0]["spec"]
        need(selects(s.get("selector"), labels), "the client Service does not select the Pod")
        udp = [p for p in s["ports"] if p.get("protocol") == "UDP"]
        need(udp and all(ports.get(p["targetPort"], {}).get("protocol") == "UDP" for p in udp),
             "the client Service's UDP port must target a named UDP containerPort")
        need(s.get("externalTrafficPolicy") == "Local" or s.get("type", "ClusterIP") == "ClusterIP",
             "externalTrafficPolicy: Local keeps the client address the session is bound to")
    headless = [s for s in svcs if s["spec"].get("clusterIP") == "None"]
    need([s["metadata"]["name"] for s in headless] == [sts["spec"]["serviceName"]],
         "the StatefulSet's serviceName must be the headless Service (stable Pod DNS names)")

    pdbs = by_kind.get("PodDisruptionBudget", [])
    need(pdbs and all(selects(p["spec"]["selector"].get("matchLabels"), labels) for p in pdbs),
         "a PodDisruptionBudget selecting the Pod")

    nps = by_kind.get("NetworkPolicy", [])
    if need(nps, "a NetworkPolicy"):
        np = nps[0]["spec"]
        need(selects(np["podSelector"].get("matchLabels"), labels), "the NetworkPolicy does not select the Pod")
        need("Ingress" in np.get("policyTypes", []), "the NetworkPolicy must restrict ingress")
        open_ports = {(p.get("protocol", "TCP"), p.get("port")) for r in np.get("ingress", []) if not r.get("from")
                      for p in r.get("ports", [])}
        need(("UDP", 5683) in open_ports, "CoAP (UDP 5683) must be open to clients")
        metrics = [p for p in ports.values() if p["name"] == "metrics"]
        for p in metrics:
            need(("TCP", p["containerPort"]) not in open_ports and
                 any(("TCP", p["containerPort"]) in {(q.get("protocol", "TCP"), q.get("port")) for q in r.get("ports", [])}
                     for r in np.get("ingress", []) if r.get("from")),
                 "metrics port %d must be reachable only from the listed scrapers" % p["containerPort"])
        need(not any(not r.get("ports") and not r.get("from") for r in np.get("ingress", [])),
             "an ingress rule without ports or sources opens everything")

    if problems:
        for p in problems:
            print("FAIL 4 shape: %s" % p)
        sys.exit(1)
    print("ok   4 shape: roles %s (frontends %s) in one Pod; shared pids, memory /dev/shm, per-Pod LMDB, "
          "Secrets 0400, probes, limits, non-root read-only; Services, budget and policy match" %
          (", ".join(sorted(present)), frontends))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
