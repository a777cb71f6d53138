#!/usr/bin/env bash
# deploy/kubernetes/check.sh - the Kubernetes manifests, checked offline (no
# cluster), as a stage of the test command (issue 16 item 2, SPEC S10.4):
#
#   1. render    `kubectl kustomize deploy/kubernetes` builds the objects
#   2. schema    every object validates against the Kubernetes API schemas
#                (validate/validate.mjs: npm kubernetes-models, plus every
#                field name checked against the API's declarations)
#   3. rejects   the validator refuses broken copies: a misspelt field, a
#                string where an integer belongs, an unknown enum value
#   4. shape     what the gateway needs from its Pod (policy.py): shared
#                process namespace, /dev/shm as memory, LMDB per Pod, Secrets
#                0400, probes, requests and limits, non-root read-only
#                containers, the Services, the budget and the network policy
#                agree with the Pod, and every COAPGW_* key is a real one
#
# Prints one line per check and "check-kubernetes: PASS" or "... FAIL";
# exits 1 on failure. deploy/setup-deps.sh --test installs kubectl (Debian's
# kubernetes-client where no kubectl exists) and the validator's npm packages.
# Environment: COAPGW_BIN (default build/coapgw) for the configuration keys.
set -uo pipefail
k8s=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$k8s/../.." && pwd)

fail() {
    echo "check-kubernetes: FAIL: $*"
    exit 1
}
command -v kubectl >/dev/null || fail "kubectl is not installed (deploy/setup-deps.sh --test)"
command -v node >/dev/null || fail "node is not installed (deploy/setup-deps.sh --test)"
[ -f "$k8s/validate/node_modules/kubernetes-models/package.json" ] ||
    fail "the validator's npm packages are missing in deploy/kubernetes/validate (deploy/setup-deps.sh --test)"

tmp=$(mktemp -d /tmp/coapgw-check-k8s.XXXXXX) || fail "mktemp"
trap 'rm -rf "$tmp"' EXIT

# 1. Render. kubectl never contacts a cluster for `kustomize`.
if ! kubectl kustomize "$k8s" >"$tmp/all.yaml" 2>"$tmp/kustomize.err"; then
    cat "$tmp/kustomize.err"
    fail "kubectl kustomize deploy/kubernetes"
fi
kver=$(kubectl version --client 2>/dev/null | head -n 2 | tr '\n' ' ')
echo "ok   1 render: kubectl kustomize deploy/kubernetes ($kver) -> $(grep -c '^kind:' "$tmp/all.yaml") objects"

# 2. Schemas.
if ! node "$k8s/validate/validate.mjs" "$tmp/all.yaml" >"$tmp/validate.out"; then
    cat "$tmp/validate.out"
    fail "deploy/kubernetes does not validate against the Kubernetes API schemas"
fi
sed 's/^/     2 schema: /' "$tmp/validate.out"
models=$(node -p 'require("'"$k8s"'/validate/node_modules/kubernetes-models/package.json").version')
echo "ok   2 schema: every object valid (kubernetes-models $models, unknown fields refused)"

# 3. The validator itself: each broken copy must be refused, naming the field.
reject() { # what, sed expression, expected text in the error
    sed "$2" "$tmp/all.yaml" >"$tmp/bad.yaml"
    cmp -s "$tmp/all.yaml" "$tmp/bad.yaml" && fail "3 rejects: the mutation for $1 changed nothing"
    if node "$k8s/validate/validate.mjs" "$tmp/bad.yaml" >"$tmp/bad.out"; then
        fail "3 rejects: the validator accepted $1"
    fi
    grep -q "$3" "$tmp/bad.out" || { cat "$tmp/bad.out"; fail "3 rejects: $1 refused without naming $3"; }
}
reject "a misspelt field" 's/readOnlyRootFilesystem:/readOnlyRootFileSystem:/' 'readOnlyRootFileSystem: unknown field'
reject "a string for an integer" 's/periodSeconds: 10/periodSeconds: ten/' 'periodSeconds: must be integer'
reject "an unknown protocol" 's/protocol: UDP/protocol: UDPX/' 'protocol: must be equal to one of the allowed values'
reject "a field under the wrong parent" 's/^\(\s*\)sessionAffinity: ClientIP/\1sessionAffinity: ClientIP\n\1replicas: 2/' 'replicas: unknown field'
echo "ok   3 rejects: a misspelt field, a string for an integer, an unknown enum value, a misplaced field"

# 4. What the gateway needs from its Pod.
bin=${COAPGW_BIN:-$root/build/coapgw}
[ -x "$bin" ] || fail "no coapgw binary at $bin for the configuration keys (build first or set COAPGW_BIN)"
python3 "$k8s/policy.py" "$tmp/all.yaml" "$bin" || fail "deploy/kubernetes does not give the gateway what it needs"
# ... and the shape check refuses what would break the gateway.
refuse() { # what, sed expression, expected text
    sed "$2" "$tmp/all.yaml" >"$tmp/bad.yaml"
    cmp -s "$tmp/all.yaml" "$tmp/bad.yaml" && fail "4 shape: the mutation for $1 changed nothing"
    if python3 "$k8s/policy.py" "$tmp/bad.yaml" "$bin" >"$tmp/bad.out"; then
        fail "4 shape: accepted $1"
    fi
    grep -q "$3" "$tmp/bad.out" || { cat "$tmp/bad.out"; fail "4 shape: $1 refused without saying $3"; }
}
refuse "separate process namespaces" 's/shareProcessNamespace: true/shareProcessNamespace: false/' 'shareProcessNamespace'
refuse "a Secret readable by all" 's/defaultMode: 256/defaultMode: 420/' 'mode must be 0400'
refuse "no client affinity" 's/sessionAffinity: ClientIP/sessionAffinity: None/' 'sessionAffinity: ClientIP'
refuse "an unknown configuration key" 's/COAPGW_LOG_LEVEL:/COAPGW_LOG_LEVL:/' 'COAPGW_LOG_LEVL is no configuration key'
refuse "the metrics port open to all" 's/port: 5683$/port: 9683/; s/protocol: UDP$/protocol: TCP/' 'metrics port 9683 must be reachable only'
refuse "a replica more than nodes" 's/^  replicas: 2$/  replicas: 3/' 'COAPGW_NODE_COUNT=2 but replicas: 3'
echo "ok   4 shape: refuses separate pid namespaces, a Secret mode 0644, no affinity, an unknown key, open metrics, more replicas than nodes"

# 5. The Pod run as the kubelet would, in fresh network, mount and PID
# namespaces, its probes included (needs root for the init container's
# chown and for setpriv to the Pod's user).
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v setpriv >/dev/null; then
    echo "skip 5 pod: needs root, unshare and setpriv"
else
    mkdir -p "$tmp/pod" && chmod 0755 "$tmp"  # the Pod's user traverses it
    unshare --net --mount --pid --fork --mount-proc --propagation private \
        python3 "$k8s/pod-replay.py" "$tmp/all.yaml" "$bin" "$tmp/pod" ||
        fail "the Pod does not run as its manifests describe"
fi
echo "check-kubernetes: PASS"
