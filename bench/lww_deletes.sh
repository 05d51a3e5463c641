#!/usr/bin/env bash
# Benchmark: what lww deletes cost (issue 16). One cluster, the table `files (id bigserial PRIMARY
# KEY, path text NOT NULL UNIQUE, size bigint, sha text)` twice: plain, and registered in lww
# mode. Per run, on fresh tables:
#   insert     `rows` rows by one INSERT ... SELECT
#   delete     every tenth row by one DELETE (lww: each leaves a tombstone)
#   reinsert   the deleted keys again by one INSERT (lww: each replaces its tombstone)
# and, between two databases of the same cluster, the merge of those changes: the items of the
# registered table since before the delete (rows' tombstones), then since before the re-insert,
# merged by merge_items in batches of 1,000 into a copy that holds the rows, against the
# same number of new rows merged into it (`merge rows`).
# Medians of `runs` and the ratios lww / plain (merges: tombstones / rows).
#   bash bench/lww_deletes.sh [rows] [runs]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
runs=${2:-3}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
trap cluster_cleanup EXIT
build_and_install
cluster_start deletes 54443 shared_buffers=512MB max_wal_size=8GB
on() { env $(cluster_env deletes) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
on -c "CREATE DATABASE copy" >/dev/null
on -c "CREATE EXTENSION idsync" >/dev/null
on -d copy -c "CREATE EXTENSION idsync" >/dev/null
table_sql="(id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, size bigint, sha text)"
fresh() { # database table lww?
    on -d "$1" -c "DROP TABLE IF EXISTS $2" -c "CREATE TABLE $2 $table_sql" >/dev/null
    [ "$3" = yes ] && on -d "$1" -c "SELECT idsync.replicate('$2', '{path}', 'lww')" >/dev/null
    on -d "$1" -c "CHECKPOINT" >/dev/null
}
rows_sql() { # table filter
    echo "INSERT INTO $1 (path, size, sha) SELECT '/nix/store/' || md5(g::text) || '-pkg-' || g, g,
          md5((g * 7)::text) FROM generate_series(1, $rows) g WHERE $2"
}
# Merges the items of files_lww after point $1 into copy.files_lww, 1,000 at a time; prints s.
merge_since() {
    local start
    on -At -c "SELECT coalesce(jsonb_agg(jsonb_build_object('point', i.point, 'item', i.item)), '[]')
               FROM (SELECT (row_number() OVER (ORDER BY point) - 1) / 1000 AS b, point, item
                     FROM idsync.items_since('files_lww', $1, 100000000)) i GROUP BY i.b ORDER BY i.b" \
        >"$IDSYNC_TMP/batches"
    sed "s/'/''/g; s/.*/SELECT received FROM idsync.merge_items('files_lww', '&');/" \
        "$IDSYNC_TMP/batches" >"$IDSYNC_TMP/merges.sql"
    start=$(now)
    on -d copy -f "$IDSYNC_TMP/merges.sql" >/dev/null
    elapsed "$start"
}
results="$IDSYNC_TMP/results"
: >"$results"
for run in $(seq 1 "$runs"); do
    for kind in plain lww; do
        table="files_$kind"
        fresh postgres "$table" "$([ $kind = lww ] && echo yes || echo no)"
        start=$(now); on -c "$(rows_sql "$table" true)" >/dev/null
        echo "insert $kind $(elapsed "$start")" >>"$results"
        on -c "CHECKPOINT" >/dev/null
        start=$(now); on -c "DELETE FROM $table WHERE id % 10 = 0" >/dev/null
        echo "delete $kind $(elapsed "$start")" >>"$results"
        start=$(now); on -c "$(rows_sql "$table" "g % 10 = 0")" >/dev/null
        echo "reinsert $kind $(elapsed "$start")" >>"$results"
    done
    # The merges: a copy holding every row merges the deletes (tombstones), then the re-inserts
    # (rows replacing tombstones); a copy holding 90 % merges the same number of new rows.
    fresh copy files_lww yes
    on -c "DELETE FROM files_lww" >/dev/null
    on -c "$(rows_sql files_lww true)" >/dev/null
    before=$(on -At -c "SELECT max_point FROM idsync.sync_info('files_lww')")
    on -d copy -c "SELECT count(*) FROM idsync.merge_items('files_lww', (SELECT jsonb_agg(jsonb_build_object('point', 1, 'item', jsonb_build_object('path', '/nix/store/' || md5(g::text) || '-pkg-' || g, 'size', g, 'sha', md5((g * 7)::text), 'idsync_version', 1))) FROM generate_series(1, $rows) g))" >/dev/null
    on -c "DELETE FROM files_lww WHERE size % 10 = 0" >/dev/null
    echo "merge_tombstones lww $(merge_since "$before")" >>"$results"
    before=$(on -At -c "SELECT max_point FROM idsync.sync_info('files_lww')")
    on -c "$(rows_sql files_lww "g % 10 = 0")" >/dev/null
    echo "merge_reinserts lww $(merge_since "$before")" >>"$results"
    fresh copy files_lww yes
    on -d copy -c "$(rows_sql files_lww "g % 10 <> 0")" >/dev/null
    echo "merge_rows plain $(merge_since "$before")" >>"$results"
done
echo
echo "$rows rows ($((rows / 10)) deleted and inserted again), medians of $runs runs:"
for scenario in insert delete reinsert; do
    plain=$(awk -v s=$scenario '$1 == s && $2 == "plain" { print $3 }' "$results" | median)
    lww=$(awk -v s=$scenario '$1 == s && $2 == "lww" { print $3 }' "$results" | median)
    printf '  %-9s plain %.3f s, lww %.3f s: %.2f\n' "$scenario" "$plain" "$lww" \
        "$(awk -v a="$lww" -v b="$plain" 'BEGIN { print a / b }')"
done
rows_s=$(awk '$1 == "merge_rows" { print $3 }' "$results" | median)
for scenario in merge_tombstones merge_reinserts; do
    took=$(awk -v s=$scenario '$1 == s { print $3 }' "$results" | median)
    printf '  %-17s %.3f s against %.3f s for as many new rows: %.2f\n' "$scenario" "$took" \
        "$rows_s" "$(awk -v a="$took" -v b="$rows_s" 'BEGIN { print a / b }')"
done
