# bench-common.sh - what run-bench.sh and run-compare.sh share; sourced, not
# run. The caller sets BENCH_NAME (the prefix of its messages), BENCH (the
# load generator), TMP, RESULTS, and GWPID/GWDIR for the gateway it starts.
# shellcheck shell=bash

# Docker's nft tables slow loopback traffic down: figures taken beside a
# running engine are not comparable with any other run.
bench_refuse_docker() {
    pgrep -x dockerd >/dev/null 2>&1 || return 0
    if [ "${BENCH_IGNORE_DOCKER:-0}" != 1 ]; then
        echo "$BENCH_NAME: a Docker engine (dockerd) is running; its nft rules slow loopback and skew" >&2
        echo "$BENCH_NAME: every figure. Stop it, or set BENCH_IGNORE_DOCKER=1 to measure anyway." >&2
        exit 3
    fi
    echo "$BENCH_NAME: WARNING WARNING: dockerd is running; figures below are skewed by its nft rules" >&2
}

bench_need_bins() { # "targets to build", file...
    local targets=$1
    shift
    for f in "$@"; do
        if [ ! -x "$f" ]; then
            echo "$BENCH_NAME: $f is missing; build first: cmake --build $BUILD_DIR --target $targets" >&2
            exit 2
        fi
    done
}

# Stops one process we started, by its PID: SIGTERM, a wait of at most
# $2 tenths of a second (default 50), then SIGKILL.
bench_stop_pid() { # pid [tenths]
    local p=$1 n=${2:-50}
    kill -TERM "$p" 2>/dev/null || return 0
    for _ in $(seq 1 "$n"); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
}

# Stops the gateway we started, by its PID: SIGTERM, a bounded wait, then
# SIGKILL to it and to the children named in its own pid files.
stop_gw() {
    [ -n "$GWPID" ] || return 0
    if kill -0 "$GWPID" 2>/dev/null; then
        kill -TERM "$GWPID" 2>/dev/null
        for _ in $(seq 1 150); do
            kill -0 "$GWPID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$GWPID" 2>/dev/null; then
            echo "$BENCH_NAME: gateway $GWPID did not stop in 15 s; SIGKILL" >&2
            for pf in "$GWDIR"/data/*.pid; do
                [ -f "$pf" ] || continue
                p=$(cat "$pf" 2>/dev/null)
                [ -n "$p" ] && [ "$p" != "$GWPID" ] && kill -KILL "$p" 2>/dev/null
            done
            kill -KILL "$GWPID" 2>/dev/null
        fi
    fi
    wait "$GWPID" 2>/dev/null
    GWPID=""
}

# The temporary directory goes, unless BENCH_KEEP=1.
bench_remove_tmp() {
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        echo "$BENCH_NAME: kept $TMP"
    else
        rm -rf "$TMP"
    fi
}

# A devices file of n normal devices at 127.NET.x.y (NET from our pid, so
# parallel runs and the integration tests, on 127.0.x, do not collide), all
# with one random key; `dev_sim I` (the caller's) prints device I's sim column.
bench_devices() { # file, MAC prefix (4 hex digits), n
    local net=$((100 + $$ % 50)) key
    key=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
    {
        echo "mac,address,type,key,plain_port,secure_port,sim"
        for i in $(seq 1 "$3"); do
            printf '%s%012x,127.%d.%d.%d,normal,%s,5683,4849,%s\n' "$2" "$i" "$net" $((i / 250)) \
                $((i % 250 + 1)) "$key" "$(dev_sim "$i")"
        done
    } >"$1"
}

# Runs the load generator as scenario `label` (after the arguments in the
# array BENCH_ARGS, if set) and keeps its RESULT lines;
# a failed run leaves a FAILED line. BENCH_DOCKER_SEEN lists the labels
# during which a Docker engine ran.
BENCH_DOCKER_SEEN=""
bench() { # label, load generator arguments...
    local label=$1 dk=0
    shift
    echo "$BENCH_NAME: load average $(cut -d' ' -f1-3 /proc/loadavg) before $label"
    pgrep -x dockerd >/dev/null 2>&1 && dk=1
    "$BENCH" ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"} --label "$label" "$@" 2>&1 | tee "$TMP/$label.out"
    local st=${PIPESTATUS[0]}
    pgrep -x dockerd >/dev/null 2>&1 && dk=1
    [ "$dk" = 1 ] && BENCH_DOCKER_SEEN="$BENCH_DOCKER_SEEN $label"
    grep '^RESULT' "$TMP/$label.out" >>"$RESULTS"
    [ "$st" = 0 ] || echo "RESULT scenario=$label FAILED=exit$st" >>"$RESULTS"
    sleep 0.2
}
