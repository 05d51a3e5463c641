#!/usr/bin/env bash
# Benchmark: how soon three nodes agree once their loads stop, when faults hit them meanwhile
# (issue 14's convergence run). Three clusters with an insert_only table `fact` and an lww table
# `item`, an idsyncd beside each (interval 0.5 s, per_diff 250, max_diffs 8, as the issue's run),
# and a loader on each node for `seconds`: every 50 ms a transaction of 10 new facts and 3 item
# upserts over 200 shared names. Faults during the load: idsyncd of b killed (-9) at 1/4 and
# started again 5 s later; PostgreSQL of c stopped immediately (a crash) at 1/2 and started 5 s
# later (its loader restarts with it). After the loads stop, the time until the three nodes
# hold the same rows (and content hashes) is printed. Goal: within 10 s.
#   bash bench/faults.sh [seconds]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}" "${loaders[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    cluster_cleanup
}
loaders=()
trap cleanup EXIT
build_and_install
nodes=(a b c)
declare -A port=([a]=54451 [b]=54452 [c]=54453) daemon loader
dsn() { echo "host=127.0.0.1 port=${port[$1]} user=postgres dbname=postgres"; }
on() { local n=$1; shift; env $(cluster_env "faults_$n") psql -X -q -At "$@"; }
for n in "${nodes[@]}"; do
    cluster_start "faults_$n" "${port[$n]}"
    on "$n" -v ON_ERROR_STOP=1 >/dev/null <<'SQL'
CREATE EXTENSION idsync;
CREATE TABLE item (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, value int);
SELECT idsync.replicate('item', '{name}', 'lww');
CREATE TABLE fact (id bigserial PRIMARY KEY, name text NOT NULL, n int NOT NULL, UNIQUE (name, n));
SELECT idsync.replicate('fact', '{name,n}');
SQL
    {
        printf '[idsyncd]\nlocal = %s\ninterval = 0.5\nper_diff = 250\nmax_diffs = 8\nmetrics_listen = off\n' "$(dsn "$n")"
        for p in "${nodes[@]}"; do [ "$p" = "$n" ] || printf '[peer %s]\ndsn = %s\n' "$p" "$(dsn "$p")"; done
    } >"$IDSYNC_TMP/$n.ini"
done
start_daemon() { idsyncd -c "$IDSYNC_TMP/$1.ini" >>"$IDSYNC_TMP/$1.log" 2>&1 & daemon[$1]=$!; pids+=($!); }
# A loader: transactions of 10 facts and 3 item upserts every 50 ms until `until` (epoch s).
start_loader() {
    local n=$1 until=$2
    (
        i=0
        while [ "$(date +%s)" -lt "$until" ]; do
            i=$((i + 1))
            on "$n" -c "BEGIN;
                INSERT INTO fact (name, n) SELECT '$n-' || $i, g FROM generate_series(1, 10) g ON CONFLICT DO NOTHING;
                INSERT INTO item (name, value) SELECT 'shared-' || ((random() * 200)::int), $i FROM generate_series(1, 3)
                ON CONFLICT (name) DO UPDATE SET value = excluded.value;
                COMMIT;" >/dev/null 2>&1 || true
            sleep 0.05
        done
    ) &
    loader[$n]=$!
    loaders+=($!)
}
snapshot() {
    on "$1" -c "SELECT (SELECT count(*) || ':' || coalesce(sum(hashtext(name || '/' || n)), 0) FROM fact)
                 || '|' || (SELECT count(*) || ':' || coalesce(sum(hashtext(name || '=' || coalesce(value::text, '-'))), 0) FROM item)
                 || '|' || (SELECT count(*) FROM idsync.tombstones t WHERE t.relid = 'item'::regclass)
                 || '|' || (SELECT content_hash FROM idsync.sync_info('fact'))
                 || (SELECT content_hash FROM idsync.sync_info('item'))" 2>/dev/null || echo "down"
}
agree() {
    local first
    first=$(snapshot a)
    [ "$first" != down ] && [ "$(snapshot b)" = "$first" ] && [ "$(snapshot c)" = "$first" ]
}

for n in "${nodes[@]}"; do start_daemon "$n"; done
begin=$(date +%s)
end=$((begin + seconds))
for n in "${nodes[@]}"; do start_loader "$n" "$end"; done
echo "loading for $seconds s on three nodes, with faults..."
sleep $((seconds / 4))
kill -9 "${daemon[b]}" 2>/dev/null || true
echo "  idsyncd of b killed"
sleep 5
start_daemon b
echo "  idsyncd of b started again"
sleep $((seconds / 2 - seconds / 4 - 5))
_as_pg_user "$PGBIN/pg_ctl" -D "$IDSYNC_TMP/faults_c/data" -m immediate -w stop >/dev/null
echo "  PostgreSQL of c crashed (immediate stop)"
sleep 5
_as_pg_user "$PGBIN/pg_ctl" -D "$IDSYNC_TMP/faults_c/data" -l "$IDSYNC_TMP/faults_c/server.log" \
    -o "-c port=${port[c]} -c listen_addresses=127.0.0.1 -c unix_socket_directories=$IDSYNC_TMP/faults_c -c fsync=off" \
    -w -t 60 start >/dev/null
echo "  PostgreSQL of c started again"
kill "${loader[c]}" 2>/dev/null || true
start_loader c "$end"
for n in "${nodes[@]}"; do wait "${loader[$n]}" 2>/dev/null || true; done
stopped=$(now)
echo "loads stopped; waiting for the three nodes to agree..."
converged=""
for _ in $(seq 1 600); do
    if agree; then converged=$(elapsed "$stopped"); break; fi
    sleep 0.2
done
echo
echo "facts on a: $(on a -c 'SELECT count(*) FROM fact'), items: $(on a -c 'SELECT count(*) FROM item')"
if [ -n "$converged" ]; then
    echo "three nodes agree ${converged} s after the loads stopped (goal <= 10 s)"
else
    echo "three nodes did not agree within 120 s after the loads stopped (goal <= 10 s)"
    for n in "${nodes[@]}"; do echo "  $n: $(snapshot "$n")"; done
fi
