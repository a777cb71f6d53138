#!/usr/bin/env bash
# Installs what coapgw needs on Debian 12 (bookworm). Used by both README
# commands, by CI and by deploy/Dockerfile, so there is one list.
# Packages already installed are not touched; run as root or with sudo.
set -euo pipefail

BUILD_PKGS="build-essential cmake pkg-config libuv1-dev libcoap3-dev libjwt-dev liblmdb-dev libssl-dev libjansson-dev"
RUN_PKGS="libcoap3-bin lmdb-utils"
TEST_PKGS="libcriterion-dev python3 clang clang-format-14 libclang-rt-14-dev valgrind docker-compose procps prometheus mandoc man-db"

want="$BUILD_PKGS $RUN_PKGS"
if [ "${1:-}" = "--test" ]; then
    want="$want $TEST_PKGS"
fi

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
if [ -z "$missing" ]; then
    exit 0
fi
echo "coapgw: installing:$missing"
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
