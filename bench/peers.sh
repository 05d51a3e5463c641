#!/usr/bin/env bash
# Benchmark: idsync against PostgreSQL's own logical replication on the scenarios of issue 14,
# in one run, on the same two clusters (wal_level = logical, fsync off) and the same table,
# `files (id bigserial PRIMARY KEY, path text UNIQUE, size bigint, sha text)`, ~60-byte keys:
#   initial   N rows to an empty node: `idsyncd --once` (bulk mode) against a subscription
#             with copy_data (until its table is ready and holds every row);
#   catch-up  M new rows on a node otherwise in sync: `idsyncd --once` (diff mode) against the
#             subscription applying M rows committed in one transaction (streaming), and
#             against M rows written while it was disabled, from ALTER SUBSCRIPTION ... ENABLE
#             (resumed; its apply worker starts when the launcher next wakes).
# Each side has its own copy of the table (files_ids registered with idsync, files_lr
# published); the two never run at the same time. Each run starts from fresh tables on b and
# keeps the rows of the runs before on a (so later runs copy a little more, both sides alike).
# Medians of `runs`, and the ratios.
#   bash bench/peers.sh [rows] [new_rows] [runs]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
new_rows=${2:-100000}
runs=${3:-3}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
trap cluster_cleanup EXIT
build_and_install
settings=(wal_level=logical shared_buffers=512MB max_wal_size=8GB checkpoint_timeout=30min)
cluster_start peers_a 54441 "${settings[@]}"
cluster_start peers_b 54442 "${settings[@]}"
on() { local n=$1; shift; env $(cluster_env "peers_$n") psql -X -q -v ON_ERROR_STOP=1 "$@"; }
dsn() { echo "host=127.0.0.1 port=$([ "$1" = a ] && echo 54441 || echo 54442) user=postgres dbname=postgres"; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Waits until `sql` on b returns t (polling every 20 ms, up to 10 minutes).
wait_for() {
    local i
    for i in $(seq 1 30000); do
        [ "$(on b -At -c "$1")" = t ] && return 0
        sleep 0.02
    done
    echo "timed out waiting for: $1" >&2
    return 1
}

table="(id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, size bigint NOT NULL, sha text NOT NULL)"
fill() { # node table first count
    on "$1" -c "INSERT INTO $2 (path, size, sha)
                SELECT '/nix/store/' || md5(g::text) || '-file-' || g, g, md5((g * 7)::text)
                FROM generate_series($3, $3 + $4 - 1) g" >/dev/null
}
for n in a b; do on "$n" -c "CREATE EXTENSION idsync" >/dev/null; done
on a -c "CREATE TABLE files_ids $table" -c "CREATE TABLE files_lr $table" \
     -c "SELECT idsync.replicate('files_ids', '{path}')" \
     -c "CREATE PUBLICATION lr FOR TABLE files_lr" >/dev/null
echo "loading $rows rows into each table on node a..."
fill a files_ids 1 "$rows"
fill a files_lr 1 "$rows"
on a -c "VACUUM ANALYZE files_ids, files_lr" >/dev/null
cat >"$IDSYNC_TMP/a.ini" <<INI
[idsyncd]
local = $(dsn a)
per_diff = 1000
max_diffs = 100000
node_timeout = 600
metrics_listen = off
[peer b]
dsn = $(dsn b)
INI

results=$IDSYNC_TMP/results
: >"$results"
total=$rows # rows on a before a run's catch-up: each run keeps the rows of the last
for run in $(seq 1 "$runs"); do
    # Fresh targets on b; a forgets what it sent to b.
    on b -c "DROP SUBSCRIPTION IF EXISTS lr" -c "DROP TABLE IF EXISTS files_ids, files_lr" \
         -c "CREATE TABLE files_ids $table" -c "CREATE TABLE files_lr $table" \
         -c "SELECT idsync.replicate('files_ids', '{path}')" -c "CHECKPOINT" >/dev/null
    on a -c "DELETE FROM idsync.outgoing_sync" -c "CHECKPOINT" >/dev/null

    # initial sync
    start=$(now)
    idsyncd -c "$IDSYNC_TMP/a.ini" --once >"$IDSYNC_TMP/bulk-$run.log" 2>&1 ||
        { cat "$IDSYNC_TMP/bulk-$run.log"; exit 1; }
    echo "initial idsync $(elapsed "$start")" >>"$results"
    start=$(now)
    on b -c "CREATE SUBSCRIPTION lr CONNECTION '$(dsn a)' PUBLICATION lr WITH (copy_data = true)" >/dev/null
    wait_for "SELECT bool_and(srsubstate = 'r') AND (SELECT count(*) FROM files_lr) = $total
              FROM pg_subscription_rel WHERE srrelid = 'files_lr'::regclass"
    echo "initial lr $(elapsed "$start")" >>"$results"

    # catch-up
    fill a files_ids "$((total + 1))" "$new_rows"
    start=$(now)
    idsyncd -c "$IDSYNC_TMP/a.ini" --once >"$IDSYNC_TMP/diff-$run.log" 2>&1 ||
        { cat "$IDSYNC_TMP/diff-$run.log"; exit 1; }
    echo "catchup idsync $(elapsed "$start")" >>"$results"
    # Logical replication streaming: the rows committed on a (one transaction), then applied.
    fill a files_lr "$((total + 1))" "$new_rows"
    start=$(now)
    wait_for "SELECT count(*) = $((total + new_rows)) FROM files_lr"
    echo "catchup lr $(elapsed "$start")" >>"$results"
    # And resumed: the same number of rows written while the subscription was disabled.
    on b -c "ALTER SUBSCRIPTION lr DISABLE" >/dev/null
    fill a files_lr "$((total + new_rows + 1))" "$new_rows"
    start=$(now)
    on b -c "ALTER SUBSCRIPTION lr ENABLE" >/dev/null
    wait_for "SELECT count(*) = $((total + 2 * new_rows)) FROM files_lr"
    echo "resumed lr $(elapsed "$start")" >>"$results"
    # idsync's table gets the second batch too, so both tables keep the same rows.
    fill a files_ids "$((total + new_rows + 1))" "$new_rows"
    total=$((total + 2 * new_rows))

    # Both ends agree, each way.
    idsyncd -c "$IDSYNC_TMP/a.ini" --once >/dev/null 2>&1
    [ "$(on a -At -c "SELECT content_hash FROM idsync.sync_info('files_ids')")" = \
      "$(on b -At -c "SELECT content_hash FROM idsync.sync_info('files_ids')")" ] ||
        { echo "idsync: content hashes differ after run $run" >&2; exit 1; }
    [ "$(on a -At -c "SELECT md5(string_agg(path, ',' ORDER BY path)) FROM files_lr")" = \
      "$(on b -At -c "SELECT md5(string_agg(path, ',' ORDER BY path)) FROM files_lr")" ] ||
        { echo "logical replication: rows differ after run $run" >&2; exit 1; }
    on b -c "DROP SUBSCRIPTION lr" >/dev/null
done

m() { grep "^$1 $2 " "$results" | awk '{ print $3 }' | median; }
ii=$(m initial idsync); il=$(m initial lr); ci=$(m catchup idsync); cl=$(m catchup lr)
rl=$(m resumed lr)
echo
echo "$rows rows, then $new_rows new rows; median of $runs runs (s):"
printf '  %-40s %8.2f s  %9.0f rows/s\n' "initial sync, idsyncd --once (bulk)" "$ii" "$(calc "$rows / $ii")"
printf '  %-40s %8.2f s  %9.0f rows/s\n' "initial sync, subscription copy_data" "$il" "$(calc "$rows / $il")"
printf '  %-40s %8.2f s  %9.0f rows/s\n' "catch-up, idsyncd --once (diff)" "$ci" "$(calc "$new_rows / $ci")"
printf '  %-40s %8.2f s  %9.0f rows/s\n' "catch-up, subscription streaming" "$cl" "$(calc "$new_rows / $cl")"
printf '  %-40s %8.2f s  %9.0f rows/s\n' "catch-up, subscription enabled again" "$rl" "$(calc "$new_rows / $rl")"
echo
printf '  initial sync, idsync / logical replication: %.2f\n' "$(calc "$ii / $il")"
printf '  catch-up, idsync / logical replication:     %.2f streaming, %.2f resumed\n' \
    "$(calc "$ci / $cl")" "$(calc "$ci / $rl")"
