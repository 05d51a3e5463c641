#!/usr/bin/env bash
# Benchmark: what idsyncd costs when there is nothing to do. Three clusters with the same 100
# registered tables (a few rows each, all in sync), an idsyncd beside each replicating to the two
# others every `interval` seconds. After a warm-up, measures for `seconds` the CPU time (user +
# system, from /proc) and the resident memory (VmRSS, VmHWM) of each daemon, and counts its
# passes from its log. Goal: under 20 MB RSS and under 1% of a core averaged over a minute.
#   bash bench/steady_state.sh [tables] [interval] [seconds]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
tables=${1:-100}
interval=${2:-10}
seconds=${3:-60}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/small_tables.sh
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    cluster_cleanup
}
trap cleanup EXIT
build_and_install
nodes=(a b c)
declare -A port=([a]=54421 [b]=54422 [c]=54423)
dsn() { echo "host=127.0.0.1 port=${port[$1]} user=postgres dbname=postgres"; }
for n in "${nodes[@]}"; do small_tables_cluster "steady_$n" "${port[$n]}" "$tables"; done
for n in "${nodes[@]}"; do
    {
        printf '[idsyncd]\nlocal = %s\ninterval = %s\nmetrics_listen = off\n' "$(dsn "$n")" "$interval"
        for p in "${nodes[@]}"; do [ "$p" = "$n" ] || printf '[peer %s]\ndsn = %s\n' "$p" "$(dsn "$p")"; done
    } >"$IDSYNC_TMP/$n.ini"
    idsyncd -c "$IDSYNC_TMP/$n.ini" >"$IDSYNC_TMP/$n.log" 2>&1 &
    pids+=($!)
done

# Warm-up: the first passes find rows to exchange; wait until every daemon's passes are quiet.
echo "$tables tables on 3 nodes; waiting for the first passes to bring them in sync..."
for _ in $(seq 1 60); do
    sleep 2
    quiet=0
    for n in "${nodes[@]}"; do
        tail -2 "$IDSYNC_TMP/$n.log" | grep -q "0 rows sent" && quiet=$((quiet + 1))
    done
    [ "$quiet" -eq 3 ] && break
done
sleep "$interval"

ticks=$(getconf CLK_TCK)
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
declare -A cpu0 passes0
for i in 0 1 2; do
    cpu0[$i]=$(cpu "${pids[$i]}")
    passes0[$i]=$(grep -c "tables to" "$IDSYNC_TMP/${nodes[$i]}.log" || true)
done
echo "measuring for $seconds s (interval $interval s)..."
sleep "$seconds"
echo
printf '%-7s %7s %12s %14s %10s %10s\n' daemon passes "cpu ms/pass" "% of a core" "RSS MB" "peak MB"
for i in 0 1 2; do
    pid=${pids[$i]}
    used=$(( $(cpu "$pid") - cpu0[$i] ))
    passes=$(( $(grep -c "tables to" "$IDSYNC_TMP/${nodes[$i]}.log") - passes0[$i] ))
    rss=$(awk '/VmRSS/ { print $2 }' "/proc/$pid/status")
    hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
    awk -v n="${nodes[$i]}" -v used="$used" -v ticks="$ticks" -v passes="$passes" -v s="$seconds" \
        -v rss="$rss" -v hwm="$hwm" 'BEGIN {
            ms = used * 1000 / ticks
            printf "%-7s %7d %12.1f %14.3f %10.1f %10.1f\n", n, passes, (passes ? ms / passes : 0),
                   100 * ms / 1000 / s, rss / 1024, hwm / 1024 }'
done
grep -h "ERROR" "$IDSYNC_TMP"/*.log | head -3 || true
echo "(a pass is one peer: $tables tables; each daemon makes two per interval.)"
