#!/usr/bin/env bash
# run-callgrind.sh - instructions per request of each gateway role, counted by
# valgrind's callgrind: deterministic where CPU time is not (a shared
# machine, no hardware counters in a VM), so two builds can be compared in
# any load (issue 13, user-space cost of the proxied request and the cache hit).
#
# Starts the roles one by one as a container deployment does (`coapgw
# scheduler`, `coapgw meshio`, `coapgw frontend -i 0`), each under
# `valgrind --tool=callgrind --instr-atstart=no`, and the simulator beside
# them natively. Per case (proxied: Max-Age 0 devices; cache: Max-Age 3600
# devices, warmed up): bench_gateway warms up, callgrind's instrumentation
# goes on and its counters to zero, bench_gateway loads the gateway for
# BENCH_SECONDS, the counters are dumped. Requests are counted at the
# gateway (the frontend's requests_proxied and cache_hits, from `coapgw
# metrics` before and after), so requests from the warm-up or cut by the
# interval's edges do not skew the ratio. Prints one line per case:
#   CALLGRIND case=proxied requests=N frontend_ir=.. scheduler_ir=.. meshio_ir=.. total_ir=..
# with instructions per request (Ir). callgrind_annotate on the kept files
# (BENCH_KEEP=1) shows where they go.
#
# Environment: BUILD_DIR [<repo>/build], COAPGW_BIN [$BUILD_DIR/coapgw],
# BENCH_SECONDS [4], BENCH_SOCKETS [4], BENCH_WINDOW [8], BENCH_DEVICES [16],
# BENCH_CASES ["proxied cache"], BENCH_KEEP [0].
set -u
umask 077

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
COAPGW=${COAPGW_BIN:-$BUILD_DIR/coapgw}
BENCH=$BUILD_DIR/tests/bench_gateway
SECS=${BENCH_SECONDS:-4}
SOCKETS=${BENCH_SOCKETS:-4}
WINDOW=${BENCH_WINDOW:-8}
NDEV=${BENCH_DEVICES:-16}
CASES=${BENCH_CASES:-"proxied cache"}

BENCH_NAME=run-callgrind
# shellcheck source=tests/bench/bench-common.sh
. "$ROOT/tests/bench/bench-common.sh"
bench_need_bins "coapgw bench_gateway" "$COAPGW" "$BENCH"
command -v valgrind >/dev/null || { echo "$BENCH_NAME: valgrind is not installed" >&2; exit 2; }

TMP=$(mktemp -d /tmp/coapgw-callgrind.XXXXXX)
INSTANCE=cg$$
ROLEPIDS=""
SIMPID=""

cleanup() {
    # 30 s each: callgrind writes its profile on exit.
    for p in $ROLEPIDS $SIMPID; do bench_stop_pid "$p" 300; done
    rm -f "/dev/shm/coapgw-$INSTANCE"
    bench_remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

dev_sim() {
    if [ "$1" -le "$NDEV" ]; then echo "latency=0;max_age=0"; else echo "latency=0;max_age=3600"; fi
}
DEVFILE=$TMP/devices.csv
bench_devices "$DEVFILE" 02cd $((2 * NDEV))

port=$("$BENCH" --scenario free-port)
CFG=$TMP/coapgw.conf
mkdir -p "$TMP/data"
cat >"$CFG" <<EOF
listen = 127.0.0.1:$port
instance = $INSTANCE
data_dir = $TMP/data
devices_file = $DEVFILE
mesh_bind = 127.0.0.1
log_level = warn
dev_mode = true
session_rate = 100000000
session_burst = 100000000
session_max_inflight = 100000
max_sessions_per_account = 100000
EOF

declare -A PID
start_role() { # name, args...
    local name=$1
    shift
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$TMP/cg.$name.%p" \
        "$COAPGW" "$@" -c "$CFG" >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    ROLEPIDS="$ROLEPIDS $!"
}

"$COAPGW" meshsim --devices "$DEVFILE" --quiet >"$TMP/meshsim.log" 2>&1 &
SIMPID=$!
start_role scheduler scheduler
start_role meshio meshio
start_role frontend frontend -i 0
if ! "$BENCH" -c "$CFG" --scenario ping --seconds 120 >/dev/null; then
    echo "$BENCH_NAME: gateway not ready; logs:" >&2
    tail -n 20 "$TMP"/*.log >&2
    exit 1
fi

metric() { # name: the frontend's counter
    "$COAPGW" metrics -c "$CFG" 2>/dev/null |
        awk -v n="coapgw_$1_total" '$1 ~ "^"n"\\{" && /role="frontend"/ { s += $2 } END { print s + 0 }'
}

LOAD="--sockets $SOCKETS --window $WINDOW --timeout-ms 60000 --ack-timeout-ms 30000"
ROLES="frontend scheduler meshio"
run_case() { # label, counter, bench_gateway arguments...
    local label=$1 counter=$2
    shift 2
    "$BENCH" -c "$CFG" --coapgw "$COAPGW" "$@" $LOAD --seconds 2 --warmup 1 >"$TMP/$label.warm" 2>&1
    for r in $ROLES; do callgrind_control -i on "${PID[$r]}" >/dev/null 2>&1; done
    local before
    before=$(metric "$counter")
    for r in $ROLES; do callgrind_control -z "${PID[$r]}" >/dev/null 2>&1; done
    "$BENCH" -c "$CFG" --coapgw "$COAPGW" "$@" $LOAD --seconds "$SECS" --warmup 0 \
        >"$TMP/$label.out" 2>&1
    for r in $ROLES; do callgrind_control -d "$label" "${PID[$r]}" >/dev/null 2>&1; done
    local after n line
    after=$(metric "$counter")
    for r in $ROLES; do callgrind_control -i off "${PID[$r]}" >/dev/null 2>&1; done
    n=$((after - before))
    line="CALLGRIND case=$label requests=$n"
    local total=0
    for r in $ROLES; do
        local f ir
        f=$(ls -t "$TMP"/cg."$r"."${PID[$r]}".* 2>/dev/null | head -1)
        ir=$(awk '/^(summary|totals):/ { print $2; exit }' "$f" 2>/dev/null)
        ir=${ir:-0}
        total=$((total + ir))
        line="$line ${r}_ir=$((n > 0 ? ir / n : 0))"
        [ "${BENCH_KEEP:-0}" = 1 ] && mv "$f" "$TMP/cg.$r.$label"
    done
    echo "$line total_ir=$((n > 0 ? total / n : 0))"
}

case " $CASES " in *" proxied "*) run_case proxied requests_proxied -n "$NDEV" --scenario proxy ;; esac
case " $CASES " in *" cache "*)
    run_case cache cache_hits --first-device "$NDEV" -n "$NDEV" --scenario cache ;;
esac
