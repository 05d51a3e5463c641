#!/usr/bin/env bash
# Benchmark: what binary COPY gives a bulk copy. Two clusters; a table of timestamps, numerics,
# a float and a bigint (`readings`), N rows on node a. Per run, on fresh tables on b:
#   text pipe    psql -c "COPY (...) TO STDOUT" | psql -c "COPY ... FROM STDIN" into an
#                identically indexed plain table
#   binary pipe  the same with (FORMAT binary) on both ends
#   idsyncd      idsyncd --once to the empty peer: a bulk copy straight into the table, in
#                binary (every column is of a built-in type)
# Medians of `runs` and the ratios.
#   bash bench/copy_formats.sh [rows] [runs]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
runs=${2:-3}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
trap cluster_cleanup EXIT
build_and_install
settings=(shared_buffers=512MB max_wal_size=8GB checkpoint_timeout=30min)
cluster_start formats_a 54393 "${settings[@]}"
cluster_start formats_b 54394 "${settings[@]}"
on_a() { env $(cluster_env formats_a) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
on_b() { env $(cluster_env formats_b) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
dsn() { cluster_dsn "$1"; }

columns="k, taken, sent, stored, amount, share, ratio, count"
table="CREATE TABLE readings (id bigserial PRIMARY KEY, k text NOT NULL UNIQUE, taken timestamptz,
                              sent timestamptz, stored timestamptz, amount numeric, share numeric,
                              ratio float8, count bigint)"
# The pipes' target has what registration gives `readings`: the same columns and indexes.
raw_table="CREATE TABLE readings_raw (LIKE readings INCLUDING ALL, idsync_point bigint,
                                      idsync_origin uuid);
           CREATE INDEX ON readings_raw (idsync_point)"
on_a -c "CREATE EXTENSION idsync" -c "$table" -c "SELECT idsync.replicate('readings', '{k}')" >/dev/null
echo "loading $rows rows on node a..."
on_a -c "INSERT INTO readings ($columns)
         SELECT 'r' || g, now() - g * interval '1 s', now() - g * interval '1 ms', now(),
                g * 1.2345, g / 7.0, g * 0.001, g FROM generate_series(1, $rows) g" \
     -c "VACUUM ANALYZE readings" >/dev/null
on_b -c "CREATE EXTENSION idsync" >/dev/null
cat >"$IDSYNC_TMP/a.ini" <<INI
[idsyncd]
local = $(dsn formats_a)
node_timeout = 600
metrics_listen = off
[peer b]
dsn = $(dsn formats_b)
INI

results=$IDSYNC_TMP/results
: >"$results"
fresh() {
    on_b -c "DROP TABLE IF EXISTS readings, readings_raw" -c "$table" -c "$raw_table" \
         -c "SELECT idsync.replicate('readings', '{k}')" -c "CHECKPOINT" >/dev/null
    on_a -c "DELETE FROM idsync.outgoing_sync" -c "CHECKPOINT" >/dev/null
}
for run in $(seq 1 "$runs"); do
    for format in text binary; do
        fresh
        started=$(now)
        env $(cluster_env formats_a) psql -X -q -c "COPY (SELECT $columns FROM readings) TO STDOUT (FORMAT $format)" |
            env $(cluster_env formats_b) psql -X -q -c "COPY readings_raw ($columns) FROM STDIN (FORMAT $format)"
        echo "$run $format $(elapsed "$started")" >>"$results"
    done
    fresh
    started=$(now)
    idsyncd -c "$IDSYNC_TMP/a.ini" --once --verbose >"$IDSYNC_TMP/bulk-$run.log" 2>&1 ||
        { echo "idsyncd failed:"; tail -5 "$IDSYNC_TMP/bulk-$run.log"; exit 1; }
    echo "$run idsyncd $(elapsed "$started")" >>"$results"
    grep -q "straight into the table.*(binary)" "$IDSYNC_TMP/bulk-$run.log" ||
        { echo "run $run: not a binary bulk copy"; exit 1; }
done

text=$(awk '$2 == "text" { print $3 }' "$results" | median)
binary=$(awk '$2 == "binary" { print $3 }' "$results" | median)
idsyncd=$(awk '$2 == "idsyncd" { print $3 }' "$results" | median)
echo
echo "$rows rows of three timestamps, two numerics, a float and a bigint; median of $runs runs:"
printf '  %-44s %8.2f s\n' "psql COPY pipe, text" "$text" "psql COPY pipe, binary" "$binary" \
    "idsyncd --once, bulk copy (binary)" "$idsyncd"
printf '  binary pipe / text pipe:   %.2f\n' "$(calc "$binary / $text")"
printf '  idsyncd / binary pipe:     %.2f\n' "$(calc "$idsyncd / $binary")"
printf '  idsyncd / text pipe:       %.2f\n' "$(calc "$idsyncd / $text")"
