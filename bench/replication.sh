#!/usr/bin/env bash
# Benchmark: idsyncd against the plain alternative between the same two clusters, in one run.
#   bulk      a table of N rows copied to an empty peer by `idsyncd --once` (bulk mode), against
#             psql -c "COPY (...) TO STDOUT" | psql -c "COPY ... FROM STDIN" into an identically
#             indexed plain table on the peer. Goal: idsyncd <= 1.0x the pipe.
#   catch-up  M new rows on a node whose peer is otherwise in sync, by `idsyncd --once` (diff
#             mode): rows/s and the ratio to the bulk rate.
# Each measurement runs `runs` times on fresh tables, alternating; medians and ratios printed.
#   bash bench/replication.sh [rows] [new_rows] [runs]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
new_rows=${2:-100000}
runs=${3:-3}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
trap cluster_cleanup EXIT
build_and_install
settings=(shared_buffers=512MB max_wal_size=8GB checkpoint_timeout=30min)
cluster_start bench_a 54395 "${settings[@]}"
cluster_start bench_b 54396 "${settings[@]}"
on_a() { env $(cluster_env bench_a) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
on_b() { env $(cluster_env bench_b) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
dsn() { cluster_dsn "$1"; }

table="CREATE TABLE items (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,
                           value integer NOT NULL, payload text NOT NULL)"
# The pipe's target has what registration gives `items`: the same columns and indexes.
raw_table="CREATE TABLE items_raw (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE,
                                   value integer NOT NULL, payload text NOT NULL, idsync_point bigint);
           CREATE INDEX ON items_raw (idsync_point)"
on_a -c "CREATE EXTENSION idsync" -c "$table" -c "SELECT idsync.replicate('items', '{name}')" >/dev/null
echo "loading $rows rows on node a..."
on_a -c "INSERT INTO items (name, value, payload)
         SELECT 'item-' || md5(g::text), g, repeat(md5((g * 7)::text), 2) FROM generate_series(1, $rows) g" \
     -c "VACUUM ANALYZE items" >/dev/null
on_b -c "CREATE EXTENSION idsync" >/dev/null

cat >"$IDSYNC_TMP/a.ini" <<INI
[idsyncd]
local = $(dsn bench_a)
per_diff = 1000
max_diffs = 100000
node_timeout = 600
metrics_listen = off
[peer b]
dsn = $(dsn bench_b)
INI

results=$IDSYNC_TMP/results
: >"$results"
for run in $(seq 1 "$runs"); do
    # Fresh targets on b; a forgets what it sent to b.
    on_b -c "DROP TABLE IF EXISTS items, items_raw" -c "$table" -c "$raw_table" \
         -c "SELECT idsync.replicate('items', '{name}')" -c "CHECKPOINT" >/dev/null
    on_a -c "DELETE FROM idsync.outgoing_sync" -c "CHECKPOINT" >/dev/null

    started=$(now)
    env $(cluster_env bench_a) psql -X -q -c "COPY (SELECT name, value, payload FROM items) TO STDOUT" |
        env $(cluster_env bench_b) psql -X -q -c "COPY items_raw (name, value, payload) FROM STDIN"
    echo "$run pipe $(elapsed "$started")" >>"$results"

    started=$(now)
    idsyncd -c "$IDSYNC_TMP/a.ini" --once --verbose >"$IDSYNC_TMP/bulk-$run.log" 2>&1 ||
        { echo "idsyncd failed:"; tail -5 "$IDSYNC_TMP/bulk-$run.log"; exit 1; }
    echo "$run bulk $(elapsed "$started")" >>"$results"
    grep -q "bulk 1," "$IDSYNC_TMP/bulk-$run.log" || { echo "run $run: not a bulk pass"; exit 1; }

    on_a -c "INSERT INTO items (name, value, payload)
             SELECT 'new-$run-' || md5(g::text), g, repeat(md5((g * 7)::text), 2)
             FROM generate_series(1, $new_rows) g" >/dev/null
    started=$(now)
    idsyncd -c "$IDSYNC_TMP/a.ini" --once --verbose >"$IDSYNC_TMP/diff-$run.log" 2>&1 ||
        { echo "idsyncd failed:"; tail -5 "$IDSYNC_TMP/diff-$run.log"; exit 1; }
    echo "$run diff $(elapsed "$started")" >>"$results"
    grep -q "diff 1," "$IDSYNC_TMP/diff-$run.log" || { echo "run $run: not a diff pass"; exit 1; }
    same=$(for n in a b; do "on_$n" -At -c "SELECT row_count || ' ' || content_hash FROM idsync.sync_info('items')"; done | sort -u | wc -l)
    [ "$same" -eq 1 ] || { echo "run $run: the nodes differ"; exit 1; }
    # The next run starts from the original table again: the owner lifts the insert_only
    # guard for the delete (the content trigger still counts it).
    on_a -c "ALTER TABLE items DISABLE TRIGGER idsync_delete" \
         -c "DELETE FROM items WHERE name LIKE 'new-%'" \
         -c "ALTER TABLE items ENABLE TRIGGER idsync_delete" >/dev/null
done

pipe=$(awk '$2 == "pipe" { print $3 }' "$results" | median)
bulk=$(awk '$2 == "bulk" { print $3 }' "$results" | median)
diff=$(awk '$2 == "diff" { print $3 }' "$results" | median)
echo
echo "$rows rows (text key of 38 bytes, 64-byte payload), $new_rows new rows for catch-up; median of $runs runs:"
printf '  %-48s %8.2f s  %9.0f rows/s\n' "psql COPY pipe into an identically indexed table" "$pipe" "$(calc "$rows / $pipe")"
printf '  %-48s %8.2f s  %9.0f rows/s\n' "idsyncd --once, bulk mode (whole pass)" "$bulk" "$(calc "$rows / $bulk")"
printf '  %-48s %8.2f s  %9.0f rows/s\n' "idsyncd --once, diff mode (catch-up)" "$diff" "$(calc "$new_rows / $diff")"
echo
printf '  idsyncd bulk / pipe:                  %.2f  (goal <= 1.0)\n' "$(calc "$bulk / $pipe")"
printf '  catch-up rate / bulk rate:            %.2f\n' "$(calc "($new_rows / $diff) / ($rows / $bulk)")"
