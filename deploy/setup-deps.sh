#!/usr/bin/env bash
# Installs what coapgw needs on Debian 12 (bookworm). Used by both README
# commands, by CI and by deploy/Dockerfile, so there is one list.
# Packages already installed are not touched; run as root or with sudo.
# --test adds what the test command needs, including the deployment checks:
# Docker's engine and debootstrap (the Compose stack under the real engine,
# its base image made locally), kubectl and Node.js with the npm packages of
# deploy/kubernetes/validate (the Kubernetes manifests validated offline).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

BUILD_PKGS="build-essential cmake pkg-config libuv1-dev libcoap3-dev libjwt-dev liblmdb-dev libssl-dev libjansson-dev"
RUN_PKGS="libcoap3-bin lmdb-utils"
TEST_PKGS="libcriterion-dev python3 clang clang-format-14 libclang-rt-14-dev valgrind docker-compose procps prometheus mandoc man-db"
DEPLOY_TEST_PKGS="docker.io debootstrap nftables"

test=0
[ "${1:-}" = "--test" ] && test=1
want="$BUILD_PKGS $RUN_PKGS"
if [ $test = 1 ]; then
    want="$want $TEST_PKGS $DEPLOY_TEST_PKGS"
    # A kubectl that is already there (another package's) would conflict
    # with Debian's; any kubectl with `kustomize` serves.
    command -v kubectl >/dev/null || want="$want kubernetes-client"
    command -v node >/dev/null && command -v npm >/dev/null || want="$want nodejs npm"
fi

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
if [ -n "$missing" ]; then
    echo "coapgw: installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

# The Kubernetes schema validator's npm packages, pinned by its lock file.
if [ $test = 1 ] && [ -f "$here/kubernetes/validate/package-lock.json" ]; then
    v="$here/kubernetes/validate"
    if [ ! -f "$v/node_modules/.package-lock.json" ] || [ "$v/package-lock.json" -nt "$v/node_modules/.package-lock.json" ]; then
        echo "coapgw: installing the npm packages of deploy/kubernetes/validate"
        (cd "$v" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
fi
