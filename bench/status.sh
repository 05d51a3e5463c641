#!/usr/bin/env bash
# Benchmark: `idsyncctl status` on a node with 3 peers and `tables` registered tables (a few rows
# each, in sync), against the plain alternative: one psql per node reading idsync.sync_info of
# every table in one statement (the least any status must read). Goal: idsyncctl status answers
# within a second on 100 tables and 3 peers. Prints medians of `runs` and the ratio.
#   bash bench/status.sh [tables] [runs]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
tables=${1:-100}
runs=${2:-5}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
source scripts/lib/small_tables.sh
trap cluster_cleanup EXIT
build_and_install
nodes=(a b c d)
declare -A port=([a]=54431 [b]=54432 [c]=54433 [d]=54434)
dsn() { echo "host=127.0.0.1 port=${port[$1]} user=postgres dbname=postgres"; }
for n in "${nodes[@]}"; do small_tables_cluster "status_$n" "${port[$n]}" "$tables"; done
{
    printf '[idsyncd]\nlocal = %s\nmetrics_listen = off\nnode_timeout = 30\n' "$(dsn a)"
    for p in b c d; do printf '[peer %s]\ndsn = %s\n' "$p" "$(dsn "$p")"; done
} >"$IDSYNC_TMP/a.ini"
chmod 600 "$IDSYNC_TMP/a.ini"
# The same rows everywhere: in sync, nothing to send.
idsyncd -c "$IDSYNC_TMP/a.ini" --once >/dev/null 2>&1 || true

plain_query="SELECT count(*) FROM idsync.replicated_tables() t, LATERAL idsync.sync_info(t.target) s"
ctl_times=()
plain_times=()
for _ in $(seq 1 "$runs"); do
    start=$(now)
    code=0
    idsyncctl -c "$IDSYNC_TMP/a.ini" status >/dev/null || code=$?
    ctl_times+=("$(elapsed "$start")")
    [ "$code" -eq 0 ] || echo "idsyncctl status exited $code (expected 0: in sync)"
    start=$(now)
    for n in "${nodes[@]}"; do env $(cluster_env "status_$n") psql -X -At -c "$plain_query" >/dev/null; done
    plain_times+=("$(elapsed "$start")")
done
ctl=$(printf '%s\n' "${ctl_times[@]}" | median)
plain=$(printf '%s\n' "${plain_times[@]}" | median)
echo
echo "$tables tables, 3 peers; median of $runs runs:"
printf '  idsyncctl status                                  %.3f s  (goal < 1 s)\n' "$ctl"
printf '  psql: sync_info of every table on every node      %.3f s\n' "$plain"
printf '  idsyncctl / psql:                                 %.2f\n' "$(awk -v a="$ctl" -v b="$plain" 'BEGIN { print a / b }')"
