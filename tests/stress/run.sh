#!/usr/bin/env bash
# Stress test: 8 pgbench clients load overlapping batches in random order into the same tables
# at once. Passes when no call failed (no deadlock, no unique violation, no other error) and
# every id ever returned is non-NULL, unique per key and belongs to its key. Then 8 clients
# merge overlapping batches of items (as from several peers) into an insert_only and an lww
# table at once: no call fails, every key arrives once, and the lww table ends with the newest
# version of every key whatever the order of the merges.
# Needs PGHOST/PGPORT/PGUSER/PGDATABASE of a cluster with idsync installed.
set -euo pipefail
export PGOPTIONS="-c client_min_messages=warning"
here=$(cd "$(dirname "$0")" && pwd)
clients=${STRESS_CLIENTS:-8}
transactions=${STRESS_TRANSACTIONS:-40}

psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION IF NOT EXISTS idsync" -f "$here/schema.sql"
log=$(mktemp)
status=0
/usr/lib/postgresql/15/bin/pgbench -n -c "$clients" -j 2 -t "$transactions" -f "$here/batch.sql" >"$log" 2>&1 || status=$?
failed=0
if [ $status -ne 0 ] || grep -qiE "aborted|error" "$log"; then
    echo "stress: pgbench reported errors:"; grep -iE "aborted|error" "$log" | head -20
    failed=1
fi
checks=$(psql -X -At -F '|' -f "$here/check.sql")
calls=$((clients * transactions * 2))
rows=$(psql -X -At -c "SELECT count(*) FROM observed")
echo "stress: $clients clients, $calls calls, $rows rows returned"
while IFS='|' read -r what bad; do
    echo "stress:   $what: $bad"
    [ "$bad" = "0" ] || failed=1
done <<<"$checks"

psql -X -q -v ON_ERROR_STOP=1 -f "$here/merges_schema.sql" >/dev/null
status=0
/usr/lib/postgresql/15/bin/pgbench -n -c "$clients" -j 2 -t "$transactions" -f "$here/merges_batch.sql" >"$log" 2>&1 || status=$?
if [ $status -ne 0 ] || grep -qiE "aborted|error" "$log"; then
    echo "stress: pgbench reported errors in merges:"; grep -iE "aborted|error" "$log" | head -20
    failed=1
fi
echo "stress: $clients clients, $((clients * transactions)) merges of 200 items into each table"
while IFS='|' read -r what bad; do
    echo "stress:   $what: $bad"
    [ "$bad" = "0" ] || failed=1
done <<<"$(psql -X -At -F '|' -f "$here/merges_check.sql")"
rm -f "$log"
exit $failed
