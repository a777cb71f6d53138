#!/bin/sh
# run-smoke.sh - runs every libFuzzer target for a short, bounded time.
#
#   tests/fuzz/run-smoke.sh BUILD_DIR
#
# BUILD_DIR is a tree configured with -DCOAPGW_FUZZ=ON (see README.md); this
# script builds nothing. Each tests/fuzz/fuzz_<name>.c is one test: its
# binary BUILD_DIR/tests/fuzz/fuzz_<name> runs for FUZZ_SECONDS (default 4)
# on a copy of tests/fuzz/corpus/<name>/ in a temporary directory, so the
# seeds in the tree never change. A crash, leak, sanitizer report, timeout
# or out-of-memory fails the test; its reproducer is kept in
# FUZZ_ARTIFACTS (default BUILD_DIR/fuzz-artifacts) and its log tail shown.
#
# Environment: FUZZ_SECONDS (per target), FUZZ_RSS_MB (-rss_limit_mb,
# default 2048), FUZZ_TARGETS (space-separated names to run, default all),
# FUZZ_JOBS (targets run at the same time, default 2; 1 = one after another).
# Exit status: 0 when every target passed, 1 otherwise, 2 on usage errors.
set -u

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: $0 FUZZ_BUILD_DIR   (configured with -DCOAPGW_FUZZ=ON)" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd)
bindir="$build/tests/fuzz"
secs=${FUZZ_SECONDS:-4}
rss=${FUZZ_RSS_MB:-2048}
artifacts=${FUZZ_ARTIFACTS:-$build/fuzz-artifacts}
jobs=${FUZZ_JOBS:-2}
case "$secs" in ''|*[!0-9]*) echo "FUZZ_SECONDS must be a whole number" >&2; exit 2 ;; esac
case "$jobs" in ''|0|*[!0-9]*) echo "FUZZ_JOBS must be a positive whole number" >&2; exit 2 ;; esac

targets=${FUZZ_TARGETS:-}
if [ -z "$targets" ]; then
    for src in "$here"/fuzz_*.c; do
        n=$(basename "$src" .c)
        targets="$targets ${n#fuzz_}"
    done
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/coapgw-fuzz-smoke.XXXXXX") || exit 2
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$artifacts"

# One target: writes $work/$t.result ("PASS ..." or "FAIL ..." and the log tail).
run_one() {
    t=$1
    out="$work/$t.result"
    bin="$bindir/fuzz_$t"
    if [ ! -x "$bin" ]; then
        echo "FAIL fuzz_$t: $bin not built (cmake --build BUILD_DIR --target fuzz_targets)" >"$out"
        return
    fi
    corpus="$work/corpus-$t"
    mkdir -p "$corpus" "$work/tmp-$t"
    if [ -d "$here/corpus/$t" ]; then
        cp "$here/corpus/$t"/* "$corpus"/ 2>/dev/null
    fi
    log="$work/$t.log"
    start=$(date +%s)
    # The fuzzers' own temporary files (LMDB, key files) go under $work too.
    # timeout(1) is a backstop only: -max_total_time ends the run.
    TMPDIR="$work/tmp-$t" timeout $((secs * 3 + 60)) "$bin" \
        -max_total_time="$secs" -rss_limit_mb="$rss" -timeout=25 -print_final_stats=1 \
        -artifact_prefix="$artifacts/fuzz_$t-" "$corpus" >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    if [ $rc -eq 0 ] && grep -q '^Done ' "$log"; then
        echo "PASS fuzz_$t (${took} s, ${runs:-?} runs, ${cov:-cov: ?})" >"$out"
    else
        {
            echo "FAIL fuzz_$t (exit $rc after ${took} s); reproducers in $artifacts; log tail:"
            grep -v '^#[0-9]' "$log" | tail -n 40 | sed 's/^/    /'
        } >"$out"
    fi
}

# FUZZ_JOBS targets at a time (default 2: the smoke stays well under a minute).
n=0
for t in $targets; do
    run_one "$t" &
    n=$((n + 1))
    if [ $n -ge "$jobs" ]; then
        wait
        n=0
    fi
done
wait

passed=0
failed=0
failures=""
for t in $targets; do
    cat "$work/$t.result"
    if head -n 1 "$work/$t.result" | grep -q '^PASS'; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures="$failures fuzz_$t"
    fi
done

echo "$passed passed, $failed failed"
if [ $failed -ne 0 ]; then
    echo "failed:$failures"
    echo "reproduce: BUILD_DIR/tests/fuzz/fuzz_<name> $artifacts/fuzz_<name>-crash-..."
    exit 1
fi
exit 0
