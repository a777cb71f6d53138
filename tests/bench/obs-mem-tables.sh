#!/usr/bin/env bash
# obs-mem-tables.sh - BENCH_OBS_MEM_HOOK for observe-mem: where the resident
# memory of each gateway process is at the bench's memory samples.
#
#   BENCH_OBS_MEM_HOOK=tests/bench/obs-mem-tables.sh \
#       BENCH_SCENARIOS=observe-mem tests/bench/run-bench.sh
#
# Prints, per process, RssAnon and its largest anonymous mappings, then (with
# gdb and the binary's debug info, RelWithDebInfo) the entries and capacity of
# the frontend's message-layer tables and the scheduler's maps and observer
# registry. gdb stops each process for a moment; figures only, no assertion.
set -u
dir=${BENCH_DATA_DIR:?run by bench_gateway}
phase=${BENCH_PHASE:-?}
echo "---- obs-mem-tables ($phase)"
for role in frontend-0 scheduler meshio; do
    pid=$(cat "$dir/$role.pid" 2>/dev/null) || continue
    anon=$(awk '/^Anonymous:/ {print $2}' "/proc/$pid/smaps_rollup")
    echo "$role pid $pid: RssAnon $anon kB; anonymous mappings >= 64 kB:"
    awk '/^[0-9a-f]+-[0-9a-f]+ /{m=$1" "$6} /^Anonymous:/{ if ($2>=64) print "    "$2" kB  "m }' \
        "/proc/$pid/smaps" | sort -rn | head -8
done
command -v gdb >/dev/null || { echo "(no gdb: table counts skipped)"; exit 0; }
fe=$(cat "$dir/frontend-0.pid" 2>/dev/null)
sch=$(cat "$dir/scheduler.pid" 2>/dev/null)
[ -n "$fe" ] && timeout 60 gdb -p "$fe" -batch -nx \
    -ex 'frame function fe_run' \
    -ex 'set $c = &fe->core' \
    -ex 'printf "frontend dedup: %u entries (cap %u, 48 B each with its key), index %u slots of 4 B, sources %u in %u slots, answers %lu B\n", $c->dedup.count, $c->dedup.cap, $c->dedup.idx.mask + 1, $c->dedup.src_idx.n, $c->dedup.src_idx.mask + 1, $c->dedup.resp_bytes' \
    -ex 'printf "frontend rtx: %u in flight, %u allocated (104 B each, cap %u), MID index %u slots, token index %u slots, heap %u/%u, ghosts %u, resized %lu times\n", $c->rtx.used, $c->rtx.alloc, $c->rtx.cap, $c->rtx.by_mid.mask + 1, $c->rtx.by_tok.mask + 1, $c->rtx.heap.n, $c->rtx.heap.cap, $c->rtx.nghost, $c->rtx.resized' \
    2>/dev/null | grep '^frontend'
[ -n "$sch" ] && timeout 60 gdb -p "$sch" -batch -nx \
    -ex 'frame function sch_run' \
    -ex 'set $c = s->core' \
    -ex 'set $r = $c->obs' \
    -ex 'printf "scheduler observe: %u observations (%lu B each and their key and request), %u observers (%lu B each), by_observer %u links of 18 B (%u indexed) and %u index slots of 4 B\n", $r->nobs, sizeof(struct sch_obs), $r->nobservers, sizeof(struct obs_observer), $r->by_observer.cap, $r->by_observer.idx.n, $r->by_observer.idx.mask + 1' \
    -ex 'printf "scheduler core: recent %u requests (16 B each in its FIFO) in %u index slots of 4 B, by_req %u/%u, delivered %u/%u, timer heap %u items of %lu B (room for %u)\n", $c->recent.n, $c->recent.mask + 1, $c->by_req.n, $c->by_req.mask + 1, $c->delivered.n, $c->delivered.mask + 1, $c->heap.n, sizeof(struct gw_heap_item), $c->heap.cap' \
    2>/dev/null | grep '^scheduler'
exit 0
