#!/usr/bin/env bash
# run-bench.sh - starts a throw-away gateway on loopback, runs bench_gateway's
# scenarios against it, prints a summary, and stops the gateway by PID.
#
# Figures are printed, never asserted (not part of ctest). Two gateways are
# started in turn, both with the embedded simulator on a devices file of
# all-normal devices answering at once (latency=0):
#   nocache  cache_max_entries = 0, so every proxied GET goes to a device
#            (the simulator's /value carries no Max-Age, which the gateway
#            would otherwise cache for 60 s): proxy, proxy-non, rate2000,
#            sessions, sessions-get (only when asked for: each new session
#            sends one proxied GET before it goes idle), idle, observe,
#            observe-mem, restart-scheduler, restart-frontend
#   cache    default cache: cache (the warm-up fills it, then every GET hits)
# Both raise the per-session limits (session_rate, session_burst,
# session_max_inflight, max_sessions_per_account) so that the load generator
# measures the gateway's cost, not its rate limiting.
#
# Environment (defaults in brackets):
#   BUILD_DIR [<repo>/build]   COAPGW_BIN [$BUILD_DIR/coapgw]
#   BENCH_BIN [$BUILD_DIR/tests/bench_gateway]
#   BENCH_SECONDS [4]          measured seconds per load scenario
#   BENCH_DEVICES [64]         simulated devices
#   BENCH_SOCKETS [8]  BENCH_WINDOW [64]
#   BENCH_RATE [2000]          the fixed-rate latency scenario, requests/s
#   BENCH_OBSERVERS [2000]  BENCH_OBS_RESOURCES [4]  BENCH_OBS_PERIOD_MS [20]
#   BENCH_OBS_MEM_OBSERVERS [5000]  BENCH_OBS_MEM_RESOURCES [32]  (observe-mem:
#                              observers of slow devices, for memory per observer)
#   BENCH_OBS_MEM_SETTLE [3]   observe-mem: seconds after the last registration
#                              for the steady-state sample (the peak is sampled
#                              every 100 ms while registering)
#   BENCH_OBS_MEM_HOOK         observe-mem: a command run at the memory samples,
#                              e.g. tests/bench/obs-mem-tables.sh (table sizes)
#   BENCH_SESSIONS [20000]     BENCH_IDLE_SECONDS [10]
#   BENCH_SCENARIOS ["proxy proxy-non rate2000 sessions idle observe observe-mem
#                     restart-scheduler restart-frontend cache"]
#   BENCH_CONFIG_EXTRA         extra `key = value` lines for both gateways
#                              (e.g. $'nstart = 4\nfrontends = 2')
#   BENCH_KEEP [0]             1 keeps the temporary directory (logs, configs)
#   BENCH_IGNORE_DOCKER [0]    1 runs although a Docker engine is running
# The side-by-side comparison with the echo/relay floors and libcoap's proxy
# (issue 13) is tests/bench/run-compare.sh.
set -u
# The gateway refuses a devices file, config or data_dir others may read (S9.2).
umask 077

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
COAPGW=${COAPGW_BIN:-$BUILD_DIR/coapgw}
BENCH=${BENCH_BIN:-$BUILD_DIR/tests/bench_gateway}
SECS=${BENCH_SECONDS:-4}
NDEV=${BENCH_DEVICES:-64}
SOCKETS=${BENCH_SOCKETS:-8}
WINDOW=${BENCH_WINDOW:-64}
RATE=${BENCH_RATE:-2000}
OBSERVERS=${BENCH_OBSERVERS:-2000}
OBS_RES=${BENCH_OBS_RESOURCES:-4}
OBS_PERIOD=${BENCH_OBS_PERIOD_MS:-20}
SESSIONS=${BENCH_SESSIONS:-20000}
IDLE_SECS=${BENCH_IDLE_SECONDS:-10}
OBS_MEM=${BENCH_OBS_MEM_OBSERVERS:-5000}
OBS_MEM_RES=${BENCH_OBS_MEM_RESOURCES:-32}
OBS_MEM_SETTLE=${BENCH_OBS_MEM_SETTLE:-3}
SCENARIOS=${BENCH_SCENARIOS:-"proxy proxy-non rate2000 sessions idle observe observe-mem restart-scheduler restart-frontend cache"}

BENCH_NAME=run-bench
# shellcheck source=tests/bench/bench-common.sh
. "$ROOT/tests/bench/bench-common.sh"
bench_refuse_docker
bench_need_bins "coapgw bench_gateway" "$COAPGW" "$BENCH"

TMP=$(mktemp -d /tmp/coapgw-bench.XXXXXX)
RESULTS=$TMP/results.txt
: >"$RESULTS"
GWPID=""
GWDIR=""
CFG=""

cleanup() {
    stop_gw
    bench_remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Devices: all normal, latency 0; the first OBS_RES change /sensor every
# OBS_PERIOD ms.
dev_sim() {
    if [ "$1" -le "$OBS_RES" ]; then echo "latency=0;obs_period=$OBS_PERIOD"; else echo "latency=0"; fi
}
DEVFILE=$TMP/devices.csv
bench_devices "$DEVFILE" 02bb "$NDEV"

MAXSESS=$((SESSIONS + 10000))
[ "$MAXSESS" -lt 100000 ] && MAXSESS=100000

start_gw() { # name, extra config lines...
    local name=$1
    shift
    GWDIR=$TMP/$name
    mkdir -p "$GWDIR"
    local port
    port=$("$BENCH" --scenario free-port) || return 1
    CFG=$GWDIR/coapgw.conf
    {
        echo "listen = 127.0.0.1:$port"
        echo "instance = bench$$$name"
        echo "data_dir = $GWDIR/data"
        echo "devices_file = $DEVFILE"
        echo "meshsim = 1"
        echo "mesh_bind = 127.0.0.1"
        echo "log_level = warn"
        echo "session_rate = 100000000"
        echo "session_burst = 100000000"
        echo "session_max_inflight = 100000"
        echo "max_sessions_per_account = 100000"
        echo "max_sessions = $MAXSESS"
        # The load comes from few addresses: the per-address limits for
        # senders without a session (S9.1) and per-session observers would
        # measure the limits, not the gateway.
        echo "sessionless_rate = 1000000"
        echo "sessionless_burst = 1000000"
        echo "obs_max_per_session = 100000000"
        for l in "$@"; do echo "$l"; done
        [ -n "${BENCH_CONFIG_EXTRA:-}" ] && printf '%s\n' "$BENCH_CONFIG_EXTRA"
    } >"$CFG"
    BENCH_ARGS=(-c "$CFG" --coapgw "$COAPGW")
    "$COAPGW" run -c "$CFG" >"$GWDIR/gateway.log" 2>&1 &
    GWPID=$!
    if ! "$BENCH" -c "$CFG" --scenario ping --seconds 20; then
        echo "run-bench: gateway '$name' not ready; its log:" >&2
        tail -30 "$GWDIR/gateway.log" >&2
        stop_gw
        return 1
    fi
    # The simulator binds its devices after the frontend answers: wait for its
    # pid file (bounded), then a little more for the sockets.
    for _ in $(seq 1 100); do
        [ -f "$GWDIR/data/meshsim.pid" ] && break
        sleep 0.05
    done
    sleep 0.5
    echo "run-bench: gateway '$name' (supervisor pid $GWPID) on 127.0.0.1:$port, $NDEV devices, config $CFG"
}

want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }

echo "run-bench: $(nproc) CPUs, $(uname -sr); the load generator shares the CPUs with the gateway"
LOAD="--sockets $SOCKETS --window $WINDOW --seconds $SECS"

NEED_A=0
for s in proxy proxy-non rate2000 sessions sessions-get idle observe observe-mem restart-scheduler restart-frontend; do
    want "$s" && NEED_A=1
done
if [ "$NEED_A" = 1 ] && start_gw nocache "cache_max_entries = 0"; then
    want proxy && bench proxy --scenario proxy $LOAD
    want proxy-non && bench proxy-non --scenario proxy --non $LOAD
    want rate2000 && bench rate2000 --scenario proxy --rate "$RATE" $LOAD
    # Idle right after sessions (they stay, idle), before observe: a burst of
    # notifications leaves scheduler timers behind that fire for ~30 s.
    want sessions && bench sessions --scenario sessions --sessions "$SESSIONS" --window 64 --seconds 60
    # The same, each new session then sending one proxied GET before it goes
    # idle (per-session rate-limit state, the scheduler's per-client state).
    want sessions-get && bench sessions-get --scenario sessions --then-get --sessions "$SESSIONS" \
        --window 64 --seconds 60
    want idle && bench idle --scenario idle --seconds "$IDLE_SECS"
    want observe && bench observe --scenario observe --observers "$OBSERVERS" --resources "$OBS_RES" \
        --obs-period-ms "$OBS_PERIOD" --sockets "$SOCKETS" --seconds "$SECS"
    # Memory per observer: many observers on the slow devices (the simulator's
    # default 5 s period), so few notifications are in flight when measured.
    # Printed twice: the peak while registering (each registration notifies
    # every observer of its resource, S6.2) and the steady state
    # BENCH_OBS_MEM_SETTLE seconds after the last registration.
    want observe-mem && bench observe-mem --scenario observe --observers "$OBS_MEM" \
        --first-device "$OBS_RES" --resources "$OBS_MEM_RES" --obs-period-ms 5000 --sockets "$SOCKETS" --seconds 1 --settle "$OBS_MEM_SETTLE"
    want restart-scheduler && bench restart-scheduler --scenario restart --kill scheduler \
        --ack-timeout-ms 200 $LOAD
    want restart-frontend && bench restart-frontend --scenario restart --kill frontend-0 \
        --ack-timeout-ms 200 $LOAD
    stop_gw
fi
if want cache && start_gw cache; then
    bench cache --scenario cache --warmup 1 $LOAD
    stop_gw
fi

# Summary: one row per RESULT line.
echo
echo "==== summary ($(nproc) CPUs shared by gateway, simulator and load generator; figures, not assertions)"
awk '
function v(k,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] } return "-" }
BEGIN { printf "%-18s %10s %8s %8s %7s %9s %11s %7s %6s  %s\n", "scenario", "ops/s", "p50 us", "p99 us", "errors",
        "gw us/op", "bench us/op", "GW MiB", "noise", "other" }
/^RESULT/ {
    other = ""
    if (v("FAILED") != "-") other = "FAILED " v("FAILED")
    if (v("resume_ms") != "-") other = other "resume " v("resume_ms") " ms (respawn " v("respawn_ms") " ms), abandoned " v("abandoned")
    if (v("mem_per_observer_b") != "-") {
        other = other v("observers") " observers, anon B/observer steady " v("anon_per_observer_b") " (" v("anon_by_proc") \
                "), peak " v("peak_anon_per_observer_b") " (" v("peak_anon_by_proc") "); VmRSS steady " v("mem_per_observer_b") \
                ", reg " v("reg_s") "/s"
        if (v("observers_left") != "-") other = other ", left after cancel " v("observers_left")
    }
    if (v("mem_per_session_b") != "-") other = other v("mem_per_session_b") " B/idle session (anon " v("anon_per_session_b") ")"
    if (v("gw_cpu_pct") != "-") other = other "gateway " v("gw_cpu_pct") " % of a CPU idle (" v("gw_cpu_us_per_s") " us/s)"
    ops = v("ops_s"); gw = v("gw_cpu_us_op")
    hwm = v("gw_hwm_kib"); if (hwm != "-") hwm = sprintf("%.1f", hwm / 1024)
    noise = v("other_cpu_pct"); if (noise != "-") noise = noise "%"
    printf "%-18s %10s %8s %8s %7s %9s %11s %7s %6s  %s\n", v("scenario"), ops, v("p50_us"), v("p99_us"), v("errors"),
           gw, v("bench_us_op"), hwm, noise, other
}' "$RESULTS"
echo "(gw us/op: CPU of supervisor+scheduler+meshio+frontends per answered request / notification / session;"
echo " the simulator is not counted. GW MiB: sum of the gateway processes' VmHWM, shared pages counted in each."
echo " noise: share of all CPU time used by processes outside the gateway, simulator and load generator.)"
