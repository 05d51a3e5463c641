#!/usr/bin/env bash
# Benchmark: idsync.insert_missing against the plain alternatives on a 1,000,000-row table with
# a text key and 10,000-key batches, measured in one run on the same batches, each method once
# per round in alternating order, one transaction per round, all in one session. Prints the
# median per method and the ratios, for each order of keys (see insert_missing.sql): shuffled
# md5 keys, the same sorted, and keys numbered by generate_series.
#   bash bench/insert_missing.sh [rows] [batch] [rounds] [orders]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
batch=${2:-10000}
rounds=${3:-15}
orders=${4:-shuffled sorted series}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
trap cluster_cleanup EXIT
build_and_install
cluster_start bench 54392 shared_buffers=512MB max_wal_size=4GB
export $(cluster_env bench)

for order in $orders; do
echo
echo "$order: loading $rows rows..."
psql -X -q -v rows="$rows" -v order="$order" -f bench/insert_missing.sql
# One session: round 0 warms the caches and is not counted; each round is one transaction.
for r in $(seq 0 "$rounds"); do echo "SELECT bench_round($r, $batch, '$order');"; done |
    psql -X -q -o /dev/null

echo "$order keys: table of $rows rows, text key, batches of $batch keys, median of $rounds rounds (ms):"
psql -X -q -P footer=off <<SQL
WITH m AS (
    SELECT method, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms
    FROM bench_times WHERE round > 0 GROUP BY method
)
SELECT method, round(ms::numeric, 1) AS median_ms FROM m ORDER BY ms;
WITH m AS (
    SELECT method, percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS ms
    FROM bench_times WHERE round > 0 GROUP BY method
), r AS (SELECT jsonb_object_agg(method, ms) AS t FROM m)
SELECT ratio, round(value::numeric, 2) AS value, goal FROM r, LATERAL (VALUES
    ('insert_missing all-existing / plain lookup', (t->>'insert_missing, all existing')::float8 / (t->>'plain lookup (nested loop)')::float8, '<= 1.0'),
    ('CTE pattern / insert_missing all-existing', (t->>'CTE pattern, all existing')::float8 / (t->>'insert_missing, all existing')::float8, '>= 5'),
    ('insert_missing all-new / plain INSERT', (t->>'insert_missing, all new')::float8 / (t->>'plain INSERT, all new')::float8, '<= 1.3')
) v(ratio, value, goal);
SQL
done
