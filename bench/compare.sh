#!/usr/bin/env bash
# Benchmark: `idsyncctl compare` (issue 17's goal: on a 1,000,000-row table with 10 differing
# rows it reads a few thousand rows, not a million). Two databases of one cluster hold the same
# `files (id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, size bigint, sha text)`, registered
# (insert_only); then rows of b are changed behind idsync's back (its triggers off): 0, 10 and
# 10,000 of them. Per step: idsyncctl compare's rows read, round trips and time, against the
# plain alternative, both tables read whole in key order and compared (two COPYs and a diff).
# Medians of `runs`.
#   bash bench/compare.sh [rows] [runs]
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
cluster_start compare 54445 shared_buffers=512MB max_wal_size=8GB
on() { env $(cluster_env compare) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
for db in a b; do
    on -c "CREATE DATABASE $db" >/dev/null
    on -d $db -c "CREATE EXTENSION idsync" \
       -c "CREATE TABLE files (id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, size bigint, sha text)" \
       -c "SELECT idsync.replicate('files', '{path}')" \
       -c "INSERT INTO files (path, size, sha) SELECT '/nix/store/' || md5(g::text) || '-pkg-' || g, g, md5((g * 7)::text) FROM generate_series(1, $rows) g" \
       -c "VACUUM ANALYZE files" >/dev/null
done
dsn() { echo "host=$IDSYNC_TMP/compare port=54445 dbname=$1 user=postgres"; }
config="$IDSYNC_TMP/compare.ini"
printf '[idsyncd]\nlocal = %s\n\n[peer b]\ndsn = %s\n' "$(dsn a)" "$(dsn b)" >"$config"
chmod 600 "$config"
ctl() { idsyncctl -c "$config" "$@"; }
results="$IDSYNC_TMP/results"
: >"$results"
changed=0
for differences in 0 10 10000; do
    # Rows of b changed behind idsync's back, spread over the table.
    if [ "$differences" -gt "$changed" ]; then
        on -d b -c "ALTER TABLE files DISABLE TRIGGER USER" \
           -c "UPDATE files SET size = -size WHERE id IN (SELECT id FROM files WHERE size > 0 ORDER BY md5(id::text) LIMIT $((differences - changed)))" \
           -c "ALTER TABLE files ENABLE TRIGGER USER" >/dev/null
        changed=$differences
    fi
    for run in $(seq 1 "$runs"); do
        start=$(now)
        out=$(ctl compare public.files b --json || true)
        took=$(elapsed "$start")
        echo "$out" | python3 -c "import json, sys; r = json.load(sys.stdin); print('idsync $differences', len(r['differences']), r['rows_read'], r['round_trips'], '$took')" >>"$results"
        start=$(now)
        on -d a -At -c "COPY (SELECT path, size, sha FROM files ORDER BY path) TO STDOUT" >"$IDSYNC_TMP/a.txt"
        on -d b -At -c "COPY (SELECT path, size, sha FROM files ORDER BY path) TO STDOUT" >"$IDSYNC_TMP/b.txt"
        found=$(diff "$IDSYNC_TMP/a.txt" "$IDSYNC_TMP/b.txt" | grep -c '^>' || true)
        echo "plain $differences $found $((2 * rows)) 2 $(elapsed "$start")" >>"$results"
    done
done
echo
echo "$rows rows, medians of $runs runs:"
for differences in 0 10 10000; do
    for kind in idsync plain; do
        awk -v k=$kind -v d=$differences '$1 == k && $2 == d' "$results" >"$IDSYNC_TMP/step"
        found=$(awk '{ print $3 }' "$IDSYNC_TMP/step" | median)
        read_rows=$(awk '{ print $4 }' "$IDSYNC_TMP/step" | median)
        trips=$(awk '{ print $5 }' "$IDSYNC_TMP/step" | median)
        secs=$(awk '{ print $6 }' "$IDSYNC_TMP/step" | median)
        printf '  %5d differences, %-6s found %5d, read %8d rows in %2d round trips, %.2f s\n' \
            "$differences" "$kind" "$found" "$read_rows" "$trips" "$secs"
    done
done
