#!/usr/bin/env bash
# Benchmark: what registering a table costs the application that writes it (issue 14's "source
# write overhead"). One cluster, the table of issue 14, `files (id bigserial PRIMARY KEY, path
# text NOT NULL UNIQUE, size bigint, sha text)`, twice: registered with idsync (insert_only: change
# points, their index, the content hash) and plain. Per run, on fresh tables, alternating:
#   statement     `rows` rows by one INSERT ... SELECT
#   transactions  the same rows by `rows / 100` INSERTs of 100 rows, each its own transaction
#   concurrent    `sessions` pgbench sessions for `seconds`, each transaction one INSERT of one
#                 row, with fsync and synchronous_commit on (the other two run with fsync off);
#                 also registered with idsync.notify_changes off, to show what waking idsyncd
#                 costs (a NOTIFY serializes commits cluster-wide: see change_notify.hpp)
# Medians of `runs` and the ratios registered / plain (of times; for concurrent, plain tps /
# registered tps). Goal: at most 1.2.
#   bash bench/write_overhead.sh [rows] [runs] [sessions] [seconds]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
runs=${2:-3}
sessions=${3:-8}
seconds=${4:-10}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
trap cluster_cleanup EXIT
build_and_install
cluster_start writes 54441 shared_buffers=512MB max_wal_size=8GB
on() { env $(cluster_env writes) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
on -c "CREATE EXTENSION idsync" >/dev/null

fresh() { # table registered?
    on -c "DROP TABLE IF EXISTS $1" \
       -c "CREATE TABLE $1 (id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, size bigint, sha text)" >/dev/null
    [ "$2" = yes ] && on -c "SELECT idsync.replicate('$1', '{path}')" >/dev/null
    on -c "CHECKPOINT" >/dev/null
}
row_sql() { # table first last
    echo "INSERT INTO $1 (path, size, sha) SELECT '/nix/store/' || md5(g::text) || '-pkg-' || g, g, md5((g * 7)::text) FROM generate_series($2, $3) g;"
}
batches="$IDSYNC_TMP/batches"
results="$IDSYNC_TMP/results"
: >"$results"
for run in $(seq 1 "$runs"); do
    for kind in plain registered; do
        table="files_$kind"
        fresh "$table" "$([ $kind = registered ] && echo yes || echo no)"
        start=$(now)
        on -c "$(row_sql "$table" 1 "$rows")" >/dev/null
        echo "statement $kind $(elapsed "$start")" >>"$results"
        fresh "$table" "$([ $kind = registered ] && echo yes || echo no)"
        : >"$batches"
        for first in $(seq 1 100 "$rows"); do row_sql "$table" "$first" $((first + 99)) >>"$batches"; done
        start=$(now)
        on -f "$batches" >/dev/null
        echo "transactions $kind $(elapsed "$start")" >>"$results"
    done
done

# A cluster of its own with fsync on: a commit then waits for its flush, as in production.
cluster_stop writes
cluster_start durable 54442 shared_buffers=512MB max_wal_size=8GB fsync=on synchronous_commit=on
on() { env $(cluster_env durable) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
on -c "CREATE EXTENSION idsync" >/dev/null
script="$IDSYNC_TMP/one_row.sql"
for run in $(seq 1 "$runs"); do
    for kind in plain registered quiet; do
        table="files_$([ $kind = plain ] && echo plain || echo registered)"
        fresh "$table" "$([ $kind = plain ] && echo no || echo yes)"
        echo "INSERT INTO $table (path, size, sha) VALUES (gen_random_uuid()::text, 1, md5(random()::text));" >"$script"
        quiet=()
        [ $kind = quiet ] && quiet=(PGOPTIONS="-c idsync.notify_changes=off")
        tps=$(env $(cluster_env durable) "${quiet[@]}" pgbench -n -c "$sessions" -j 2 -T "$seconds" \
            -f "$script" postgres | awk '/^tps/ { print $3 }')
        echo "concurrent $kind $tps" >>"$results"
    done
done

echo
echo "$rows rows, medians of $runs runs:"
for scenario in statement transactions; do
    plain=$(awk -v s=$scenario '$1 == s && $2 == "plain" { print $3 }' "$results" | median)
    registered=$(awk -v s=$scenario '$1 == s && $2 == "registered" { print $3 }' "$results" | median)
    printf '  %-13s plain %.3f s, registered %.3f s: %.2f (goal <= 1.2)\n' "$scenario" "$plain" \
        "$registered" "$(awk -v a="$registered" -v b="$plain" 'BEGIN { print a / b }')"
done
plain=$(awk '$1 == "concurrent" && $2 == "plain" { print $3 }' "$results" | median)
registered=$(awk '$1 == "concurrent" && $2 == "registered" { print $3 }' "$results" | median)
quiet=$(awk '$1 == "concurrent" && $2 == "quiet" { print $3 }' "$results" | median)
printf '  %-13s %d sessions, fsync on: plain %.0f tps, registered %.0f tps: %.2f (goal <= 1.2);\n' \
    concurrent "$sessions" "$plain" "$registered" "$(awk -v a="$plain" -v b="$registered" 'BEGIN { print a / b }')"
printf '  %-13s registered without notifications %.0f tps: %.2f\n' "" "$quiet" \
    "$(awk -v a="$plain" -v b="$quiet" 'BEGIN { print a / b }')"
