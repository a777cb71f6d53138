#!/usr/bin/env bash
# run-compare.sh - the side-by-side table of issue 13, from one command.
#
# Measures, one after the other in one run and with one load generator
# (build/tests/bench_gateway: BENCH_SOCKETS client sockets with BENCH_WINDOW
# CON GETs outstanding each, BENCH_DEVICES devices at distinct loopback
# addresses, answering at once with Max-Age 0):
#   echo      UDP echo pair floor: bench_echo answers each request with one
#             ACK 2.05 (1 datagram in, 1 out)
#   relay     relay hop floor: bench_relay, one process, forwards to the
#             device with its own MID and back (4 datagrams)
#   libcoap   libcoap's `coap-server-notls -P` as a forward proxy (Debian's
#             libcoap3-bin; Proxy-Uri names the device's address)
#   proxied   coapgw, proxied CON GET (sessions, per-session limits lifted)
#   cache     coapgw, cache hits (a second set of devices answering with a
#             long Max-Age; the warm-up fills the cache)
#   observe   coapgw, CON notifications fanned out to BENCH_OBSERVERS observers
#   rate2000  coapgw, proxied at a steady BENCH_RATE requests/s
#   echo2000, relay2000
#             the echo and relay floors at the same steady BENCH_RATE: what
#             sleeping between requests costs a one-process design on this
#             machine (each request wakes the process; the wake-up tax)
# The simulated devices (coapgw meshsim, standalone for relay and libcoap,
# embedded for coapgw) are reported apart and not counted in any total.
# CPU is the whole process tree of the thing measured, from
# /proc/PID/task/*/schedstat; per process it also prints context switches
# (voluntary, involuntary) and, for coapgw, doorbell writes and event loop
# turns (epoll_wait returns) per request, from the gateway's own counters.
#
# Then the ratios the issue's targets are stated in. Figures are printed,
# never asserted; other jobs on the machine skew them (the `noise` column
# says how much CPU went to processes outside the benchmark).
#
# Environment (defaults in brackets):
#   BUILD_DIR [<repo>/build]   COAPGW_BIN [$BUILD_DIR/coapgw]
#   BENCH_SECONDS [5]  BENCH_SOCKETS [8]  BENCH_WINDOW [64]  BENCH_DEVICES [64]
#   BENCH_RATE [2000]  BENCH_OBSERVERS [2000]  BENCH_OBS_RESOURCES [4]
#   BENCH_OBS_PERIOD_MS [20]
#   BENCH_CASES ["echo relay libcoap proxied cache observe rate2000 echo2000 relay2000"]
#   BENCH_CONFIG_EXTRA         extra `key = value` lines for the gateway
#   BENCH_KEEP [0]             1 keeps the temporary directory (logs, configs)
#   BENCH_IGNORE_DOCKER [0]    1 runs although a Docker engine is running
set -u
# The gateway refuses a devices file, config or data_dir others may read (S9.2).
umask 077

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
COAPGW=${COAPGW_BIN:-$BUILD_DIR/coapgw}
BENCH=$BUILD_DIR/tests/bench_gateway
ECHO_BIN=$BUILD_DIR/tests/bench_echo
RELAY_BIN=$BUILD_DIR/tests/bench_relay
SECS=${BENCH_SECONDS:-5}
SOCKETS=${BENCH_SOCKETS:-8}
WINDOW=${BENCH_WINDOW:-64}
NDEV=${BENCH_DEVICES:-64}
RATE=${BENCH_RATE:-2000}
OBSERVERS=${BENCH_OBSERVERS:-2000}
OBS_RES=${BENCH_OBS_RESOURCES:-4}
OBS_PERIOD=${BENCH_OBS_PERIOD_MS:-20}
CASES=${BENCH_CASES:-"echo relay libcoap proxied cache observe rate2000 echo2000 relay2000"}
LIBCOAP=$(command -v coap-server-notls || true)

BENCH_NAME=run-compare
# shellcheck source=tests/bench/bench-common.sh
. "$ROOT/tests/bench/bench-common.sh"
bench_refuse_docker
bench_need_bins "coapgw bench_gateway bench_echo bench_relay" "$COAPGW" "$BENCH" "$ECHO_BIN" \
    "$RELAY_BIN"

TMP=$(mktemp -d /tmp/coapgw-compare.XXXXXX)
RESULTS=$TMP/results.txt
: >"$RESULTS"
PIDS=""     # helper processes we started (echo, relay, libcoap, meshsim)
GWPID=""
GWDIR=""
CFG=""

stop_helpers() {
    for p in $PIDS; do bench_stop_pid "$p"; done
    PIDS=""
}

cleanup() {
    stop_helpers
    stop_gw
    bench_remove_tmp
}
trap cleanup EXIT
trap 'exit 130' INT TERM

want() { case " $CASES " in *" $1 "*) return 0 ;; esac; return 1; }

# Devices: NDEV answering at once with Max-Age 0 (the proxied path; the
# first OBS_RES also change /sensor every OBS_PERIOD ms), then NDEV more with
# Max-Age 3600 (the cache hits). Addresses in a 127.X/16 from our pid.
dev_sim() {
    local sim="latency=0;max_age=0"
    [ "$1" -le "$OBS_RES" ] && sim="$sim;obs_period=$OBS_PERIOD"
    [ "$1" -gt "$NDEV" ] && sim="latency=0;max_age=3600"
    echo "$sim"
}
DEVFILE=$TMP/devices.csv
bench_devices "$DEVFILE" 02cc $((2 * NDEV))

LOAD="--sockets $SOCKETS --window $WINDOW --seconds $SECS"

free_port() { "$BENCH" --scenario free-port; }

start_sim() { # the devices, standalone; sets SIMPID
    rm -f "$TMP/sim.ready"
    "$COAPGW" meshsim --devices "$DEVFILE" --ready-file "$TMP/sim.ready" --quiet \
        >"$TMP/meshsim.log" 2>&1 &
    SIMPID=$!
    PIDS="$PIDS $SIMPID"
    for _ in $(seq 1 100); do
        [ -f "$TMP/sim.ready" ] && return 0
        kill -0 "$SIMPID" 2>/dev/null || break
        sleep 0.05
    done
    echo "run-compare: the simulator did not start; its log:" >&2
    tail -20 "$TMP/meshsim.log" >&2
    return 1
}

wait_bound() { # port: poll /proc/net/udp until a socket is bound to it (at most 5 s)
    local hex
    hex=$(printf ':%04X ' "$1")
    for _ in $(seq 1 100); do
        grep -q "$hex" /proc/net/udp && return 0
        sleep 0.05
    done
    echo "run-compare: nothing bound to udp port $1" >&2
    return 1
}

echo "run-compare: $(nproc) CPUs, $(uname -sr), $(date -u '+%Y-%m-%d %H:%M UTC');" \
    "load generator, devices and the measured process share the CPUs"

if want echo || want echo2000; then
    port=$(free_port)
    "$ECHO_BIN" --listen "127.0.0.1:$port" 2>"$TMP/echo.log" &
    p=$!
    PIDS="$PIDS $p"
    wait_bound "$port"
    for c in echo echo2000; do
        want $c || continue
        rate=""
        [ $c = echo2000 ] && rate="--rate $RATE"
        bench $c -g "127.0.0.1:$port" -D "$DEVFILE" -n "$NDEV" --no-session --proc "echo=$p" \
            --scenario proxy $rate $LOAD
    done
    stop_helpers
fi

if want relay || want relay2000 || { want libcoap && [ -n "$LIBCOAP" ]; }; then
    if start_sim; then
        if want relay || want relay2000; then
            port=$(free_port)
            "$RELAY_BIN" --listen "127.0.0.1:$port" 2>"$TMP/relay.log" &
            p=$!
            PIDS="$PIDS $p"
            wait_bound "$port"
            for c in relay relay2000; do
                want $c || continue
                rate=""
                [ $c = relay2000 ] && rate="--rate $RATE"
                bench $c -g "127.0.0.1:$port" -D "$DEVFILE" -n "$NDEV" --no-session \
                    --uri-address --proc "relay=$p" --proc "meshsim=$SIMPID" --scenario proxy \
                    $rate $LOAD
            done
            bench_stop_pid "$p"
        fi
        if want libcoap && [ -n "$LIBCOAP" ]; then
            port=$(free_port)
            # -P ",NAME": no upstream proxy (direct to the target), and the
            # server is the final endpoint only for requests naming NAME.
            "$LIBCOAP" -A 127.0.0.1 -p "$port" -P ",coapgw-compare-proxy" -v 0 \
                >"$TMP/libcoap.log" 2>&1 &
            p=$!
            PIDS="$PIDS $p"
            wait_bound "$port"
            bench libcoap -g "127.0.0.1:$port" -D "$DEVFILE" -n "$NDEV" --no-session --uri-address \
                --proc "libcoap=$p" --proc "meshsim=$SIMPID" --scenario proxy $LOAD
            bench_stop_pid "$p"
        fi
    fi
    stop_helpers
fi
if want libcoap && [ -z "$LIBCOAP" ]; then
    echo "run-compare: coap-server-notls not found (Debian: libcoap3-bin); libcoap skipped" >&2
fi

NEED_GW=0
for c in proxied cache observe rate2000; do want "$c" && NEED_GW=1; done
if [ "$NEED_GW" = 1 ]; then
    GWDIR=$TMP/gw
    mkdir -p "$GWDIR"
    port=$(free_port)
    CFG=$GWDIR/coapgw.conf
    {
        echo "listen = 127.0.0.1:$port"
        echo "instance = compare$$"
        echo "data_dir = $GWDIR/data"
        echo "devices_file = $DEVFILE"
        echo "meshsim = 1"
        echo "mesh_bind = 127.0.0.1"
        echo "log_level = warn"
        echo "session_rate = 100000000"
        echo "session_burst = 100000000"
        echo "session_max_inflight = 100000"
        echo "max_sessions_per_account = 100000"
        [ -n "${BENCH_CONFIG_EXTRA:-}" ] && printf '%s\n' "$BENCH_CONFIG_EXTRA"
    } >"$CFG"
    "$COAPGW" run -c "$CFG" >"$GWDIR/gateway.log" 2>&1 &
    GWPID=$!
    if ! "$BENCH" -c "$CFG" --scenario ping --seconds 20 >/dev/null; then
        echo "run-compare: gateway not ready; its log:" >&2
        tail -30 "$GWDIR/gateway.log" >&2
    else
        for _ in $(seq 1 100); do
            [ -f "$GWDIR/data/meshsim.pid" ] && break
            sleep 0.05
        done
        sleep 0.5
        GWL="-c $CFG --coapgw $COAPGW"
        want proxied && bench proxied $GWL -n "$NDEV" --scenario proxy $LOAD
        want cache && bench cache $GWL --first-device "$NDEV" -n "$NDEV" --warmup 1 \
            --scenario cache $LOAD
        want observe && bench observe $GWL --scenario observe --observers "$OBSERVERS" \
            --resources "$OBS_RES" --obs-period-ms "$OBS_PERIOD" --sockets "$SOCKETS" \
            --seconds "$SECS"
        want rate2000 && bench rate2000 $GWL -n "$NDEV" --scenario proxy --rate "$RATE" $LOAD
    fi
    stop_gw
fi

echo
if [ -n "$BENCH_DOCKER_SEEN" ]; then
    echo "run-compare: WARNING WARNING: a Docker engine ran during:$BENCH_DOCKER_SEEN; those figures" \
        "are skewed by its nft rules and not comparable" >&2
fi
echo "==== issue 13 side by side ($(nproc) CPUs shared by the measured processes, the devices and" \
    "the load generator; $(date -u '+%Y-%m-%d %H:%M UTC'); figures, not assertions)"
awk -v secs="$SECS" '
function v(k,   i, kv) { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] } return "" }
/^RESULT/ {
    s = v("scenario"); order[++n] = s
    cpu[s] = v("gw_cpu_us_op"); ops[s] = v("ops_s"); err[s] = v("errors"); p99[s] = v("p99_us")
    noise[s] = v("other_cpu_pct"); procs[s] = v("procs"); failed[s] = v("FAILED")
}
function ratio(a, b) { return (a != "" && b != "" && b + 0 > 0) ? sprintf("%.2f", a / b) : "n/a" }
END {
    printf "%-10s %12s %10s %7s %8s %6s  %s\n", "case", "CPU us/req", "req/s", "errors", "p99 us",
           "noise", "CPU us/req per process (the devices apart)"
    for (i = 1; i <= n; i++) {
        s = order[i]
        if (failed[s] != "") { printf "%-10s FAILED (%s)\n", s, failed[s]; continue }
        np = split(procs[s], pp, ","); det = ""
        for (j = 1; j <= np; j++) { split(pp[j], f, ":"); det = det sprintf("%s%s %s", det == "" ? "" : ", ", f[1], f[2]) }
        unit = s == "observe" ? "notif/s" : ""
        printf "%-10s %12s %10s %7s %8s %5s%%  %s%s\n", s, cpu[s], ops[s], err[s], p99[s],
               noise[s], det, unit != "" ? " (per notification; req/s = notifications/s)" : ""
    }
    print ""
    printf "%-48s %8s %8s\n", "ratio (issue 13 target)", "measured", "target"
    printf "%-48s %8s %8s\n", "proxied CPU / relay CPU", ratio(cpu["proxied"], cpu["relay"]), "<= 2"
    printf "%-48s %8s %8s\n", "coapgw proxied req/s / libcoap req/s", ratio(ops["proxied"], ops["libcoap"]), ">= 3"
    printf "%-48s %8s %8s\n", "cache hit CPU / echo CPU", ratio(cpu["cache"], cpu["echo"]), "<= 2"
    printf "%-48s %8s %8s\n", "fan-out CPU per notification / echo CPU", ratio(cpu["observe"], cpu["echo"]), "<= 1.5"
    printf "%-48s %8s %8s\n", "rate2000 CPU per request / proxied CPU", ratio(cpu["rate2000"], cpu["proxied"]), "<= 2"
    printf "%-48s %8s %8s\n", "relay CPU / echo CPU (datagram sanity: ~2)", ratio(cpu["relay"], cpu["echo"]), ""
    # The wake-up tax: what the same steady rate costs the one-process floors
    # against their own saturated figure, and coapgw against the relay there.
    printf "%-48s %8s %8s\n", "relay2000 CPU / relay CPU (one process, steady)", ratio(cpu["relay2000"], cpu["relay"]), ""
    printf "%-48s %8s %8s\n", "echo2000 CPU / echo CPU (one process, steady)", ratio(cpu["echo2000"], cpu["echo"]), ""
    printf "%-48s %8s %8s\n", "rate2000 CPU / relay2000 CPU", ratio(cpu["rate2000"], cpu["relay2000"]), ""
    print ""
    print "wake-ups per request (per notification for observe), per process:"
    printf "  %-10s %-12s %9s %9s %9s %11s %10s\n", "case", "process", "CPU us", "vcsw", "ivcsw",
           "bell writes", "loop turns"
    for (i = 1; i <= n; i++) {
        s = order[i]
        np = split(procs[s], pp, ",")
        for (j = 1; j <= np; j++) {
            split(pp[j], f, ":")
            printf "  %-10s %-12s %9s %9s %9s %11s %10s\n", s, f[1], f[2], f[3], f[4], f[5], f[6]
        }
    }
}' "$RESULTS"
echo "(CPU us/req: the measured process tree (coapgw: supervisor, scheduler, meshio, frontends;"
echo " libcoap: coap-server-notls; relay, echo: the one process), never the devices (meshsim) nor"
echo " the load generator. vcsw/ivcsw: voluntary/involuntary context switches. bell writes: doorbell"
echo " FIFO writes the process made; loop turns: its event loop iterations (one epoll_wait return"
echo " each); '-' for processes without these counters. noise: CPU share of other processes.)"
