#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the gateway on
# its embedded default: a simulated mesh and a development key. It prints
# first requests for `coapgw client` (read, write, observe, devices, close).
# Ctrl-C stops it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/deploy/setup-deps.sh"
"$here/deploy/build.sh" "$here/build"
exec "$here/build/coapgw" run "$@"
