#!/usr/bin/env bash
# README command 2: installs what is missing, builds, and runs every test:
#   0. docs check: every cited clause defined in PROTOCOL.md, no reference outside
#      the repository, SPDX lines, ARCHITECTURE.md's functions exist (tests/check-docs.sh);
#      format check: .clang-format over every tracked .c/.h (tests/check-format.sh)
#   1. release build (warnings are errors): unit, stress, integration and client tests
#   2. ASan+UBSan build: the same unit and integration tests
#   3. the ring's thread tests under TSan; a libFuzzer smoke run of every fuzz target (clang)
#   4. deployment checks: the Kubernetes manifests validated offline
#      (deploy/kubernetes/check.sh); the Compose stack under the real Docker
#      engine, or a namespace replay where none can run (deploy/check-compose.sh)
# Each stage prints its own results; the last line sums them up.
# Environment: SKIP_ASAN=1, SKIP_TSAN=1, SKIP_FUZZ=1 skip stages; FUZZ_SECONDS per target.
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PYTHONDONTWRITEBYTECODE=1

"$here/deploy/setup-deps.sh" --test || { echo "dependency installation failed"; exit 1; }

passed=0
failed=0
failures=""
stage() { # name, command...
    local name=$1; shift
    local t0=$(date +%s)
    echo "=== $name"
    if "$@"; then
        passed=$((passed + 1))
        echo "=== $name: ok ($(( $(date +%s) - t0 ))s)"
    else
        failed=$((failed + 1))
        failures="$failures $name"
        echo "=== $name: FAILED ($(( $(date +%s) - t0 ))s)"
    fi
}

jobs=$(nproc)
build() { # dir, cmake args...
    local dir=$1; shift
    cmake -S "$here" -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOAPGW_WERROR=ON "$@" >/dev/null &&
        cmake --build "$dir" -j"$jobs" 2>&1 | grep -vE '^\[|^-- |Scanning|Built target|Consolidate' ; return "${PIPESTATUS[0]}"
}
unit() { # dir
    (cd "$1" && ctest --output-on-failure -L 'unit|stress' -j1)
}
integration() { # dir
    COAPGW_BIN="$1/coapgw" python3 "$here/tests/integration/test_gateway.py" &&
        COAPGW_BIN="$1/coapgw" python3 "$here/tests/integration/test_cache_shm.py"
}
resilience() { # dir
    COAPGW_BIN="$1/coapgw" python3 "$here/tests/integration/test_resilience.py"
}
ops() { # dir
    COAPGW_BIN="$1/coapgw" python3 "$here/tests/integration/test_ops.py"
}
client() { # dir
    COAPGW_BIN="$1/coapgw" python3 "$here/tests/integration/test_client.py"
}
multinode() { # dir
    COAPGW_BIN="$1/coapgw" python3 "$here/tests/integration/test_multinode.py"
}
hostile() { # dir
    COAPGW_BIN="$1/coapgw" python3 "$here/tests/integration/test_hostile.py"
}

stage "docs check" bash "$here/tests/check-docs.sh" "$here"
stage "format check" bash "$here/tests/check-format.sh" "$here"
stage "build (release)" build "$here/build"
stage "unit+stress tests (release)" unit "$here/build"
stage "integration tests (release)" integration "$here/build"
stage "operations: metrics, logs, CLI, install (release)" ops "$here/build"
stage "client tests (release)" client "$here/build"
stage "resilience under load (release)" resilience "$here/build"
stage "two nodes, one owner per device (release)" multinode "$here/build"
stage "hostile traffic (release)" hostile "$here/build"
stage "security suite (release)" env COAPGW_BIN="$here/build/coapgw" "$here/tests/security/run.sh"
stage "valgrind memcheck scenario (release)" env COAPGW_BIN="$here/build/coapgw" python3 "$here/tests/integration/test_valgrind.py"

if [ "${SKIP_ASAN:-0}" != 1 ]; then
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=0
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    stage "build (asan+ubsan)" build "$here/build-asan" -DCOAPGW_SANITIZE=ON
    stage "unit tests (asan+ubsan)" bash -c "cd '$here/build-asan' && ctest --output-on-failure -L unit -j1"
    stage "integration tests (asan+ubsan)" integration "$here/build-asan"
    stage "client tests (asan+ubsan)" client "$here/build-asan"
    stage "hostile traffic (asan+ubsan)" hostile "$here/build-asan"
    stage "operations (asan+ubsan)" ops "$here/build-asan"
    unset ASAN_OPTIONS UBSAN_OPTIONS
fi

if [ "${SKIP_TSAN:-0}" != 1 ]; then
    # The ring's and the shared cache table's thread tests under ThreadSanitizer (criterion itself
    # cannot start under TSan, so test_ring runs them as a plain program).
    tsan() {
        cmake -S "$here" -B "$here/build-tsan" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCOAPGW_TSAN=ON >/dev/null &&
            cmake --build "$here/build-tsan" -j"$jobs" --target unit_common_test_ring unit_common_test_rcache >/dev/null &&
            TSAN_OPTIONS=halt_on_error=1 "$here/build-tsan/tests/unit_common_test_ring" &&
            TSAN_OPTIONS=halt_on_error=1 "$here/build-tsan/tests/unit_common_test_rcache"
    }
    stage "ring thread tests (tsan)" tsan
fi

if [ "${SKIP_FUZZ:-0}" != 1 ] && [ -f "$here/tests/fuzz/run-smoke.sh" ]; then
    stage "build (fuzz)" build "$here/build-fuzz" -DCOAPGW_FUZZ=ON -DCOAPGW_SANITIZE=ON -DCMAKE_C_COMPILER=clang
    stage "fuzz smoke" bash "$here/tests/fuzz/run-smoke.sh" "$here/build-fuzz"
fi

# Deployment: the Kubernetes manifests offline, then the Compose stack under
# the real Docker engine. Last, so that the engine (started and stopped by
# the check when none runs) never runs beside the loopback tests above.
stage "deployment: kubernetes manifests (offline)" env COAPGW_BIN="$here/build/coapgw" \
    bash "$here/deploy/kubernetes/check.sh"
stage "deployment: compose under docker" env COAPGW_BIN="$here/build/coapgw" bash "$here/deploy/check-compose.sh"

echo
if [ -n "$failures" ]; then
    echo "failed stages:$failures"
fi
echo "stages: $passed passed, $failed failed"
[ "$failed" = 0 ]
