#!/usr/bin/env bash
# README command 1: install what is missing, build, and run the gateway on
# its embedded default: a simulated mesh and a development key. It prints
# first requests for `coapgw client` (read, write, observe, devices, close).
# Ctrl-C stops it. Only the `coapgw` executable is built (no tests or
# benchmarks); tests/run-all.sh builds everything.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/deploy/setup-deps.sh"
cmake -S "$here" -B "$here/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$here/build" -j"$(nproc)" --target coapgw
exec "$here/build/coapgw" run "$@"
