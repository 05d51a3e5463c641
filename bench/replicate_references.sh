#!/usr/bin/env bash
# Benchmark: replicating a table whose rows reference another registered table by local id
# (`children`, references travel as natural keys and are resolved on the peer) against the same
# rows in a table without a foreign key (`plain`, the reference is a plain number), between two
# clusters, by idsyncd, in one run:
#   load    insert_missing of every row on node a (the content trigger of `children` hashes the
#           natural keys of the rows it references; `plain` has the C trigger)
#   bulk    idsyncd --once into an empty peer (COPY of bulk_query, merge_staged)
#   diff    idsyncd --once of new rows into a peer that is otherwise in sync (items_since,
#           merge_items in batches of per_diff)
# Times of the daemon come from its own per-table log lines. Prints seconds and ratios.
#   bash bench/replicate_references.sh [rows] [new_rows] [runs]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-200000}
new_rows=${2:-20000}
runs=${3:-3}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
trap cluster_cleanup EXIT
build_and_install
cluster_start bench_a 54393 shared_buffers=256MB max_wal_size=4GB
cluster_start bench_b 54394 shared_buffers=256MB max_wal_size=4GB
on_a() { env $(cluster_env bench_a) psql -X -q -v ON_ERROR_STOP=1 "$@"; }
on_b() { env $(cluster_env bench_b) psql -X -q -v ON_ERROR_STOP=1 "$@"; }

schema="
DROP EXTENSION IF EXISTS idsync CASCADE;
DROP TABLE IF EXISTS children, plain, parents;
CREATE EXTENSION idsync;
CREATE TABLE parents (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE children (id bigserial PRIMARY KEY, parent_id bigint NOT NULL REFERENCES parents,
                       name text NOT NULL, payload text NOT NULL, UNIQUE (parent_id, name));
CREATE TABLE plain (id bigserial PRIMARY KEY, parent_ref bigint NOT NULL,
                    name text NOT NULL, payload text NOT NULL, UNIQUE (parent_ref, name));
SELECT idsync.replicate('parents', '{name}');
SELECT idsync.replicate('children', '{parent_id,name}');
SELECT idsync.replicate('plain', '{parent_ref,name}');
"
# Rows lo..hi of both tables, ten per parent, by insert_missing in batches of 10,000; prints the
# seconds each table took.
load_sql() {
    local lo=$1 hi=$2
    cat <<SQL
SELECT count(*) FROM idsync.insert_missing('parents', '{name}',
    ARRAY(SELECT 'parent-' || g FROM generate_series($lo / 10, $hi / 10) g)) \\g /dev/null
CREATE TEMP TABLE src AS
SELECT g, p.id AS parent_id, 'out-' || (g % 10) AS name, md5(g::text) || md5((g + 1)::text) AS payload
FROM generate_series($lo, $hi) g JOIN parents p ON p.name = 'parent-' || (g / 10);
CREATE FUNCTION pg_temp.load(target regclass, cols text[]) RETURNS float8 LANGUAGE plpgsql AS \$\$
DECLARE
    started timestamptz := clock_timestamp();
    b int;
BEGIN
    FOR b IN SELECT DISTINCT g / 10000 FROM src ORDER BY 1 LOOP
        PERFORM count(*) FROM idsync.insert_missing(target, cols,
            ARRAY(SELECT parent_id FROM src WHERE g / 10000 = b ORDER BY g),
            ARRAY(SELECT name FROM src WHERE g / 10000 = b ORDER BY g),
            ARRAY(SELECT payload FROM src WHERE g / 10000 = b ORDER BY g));
    END LOOP;
    RETURN extract(epoch FROM clock_timestamp() - started);
END \$\$;
SELECT 'load children ' || pg_temp.load('children', '{parent_id,name,payload}');
SELECT 'load plain ' || pg_temp.load('plain', '{parent_ref,name,payload}');
SQL
}

config() { # per_diff max_diffs
    cat >"$IDSYNC_TMP/a.ini" <<INI
[idsyncd]
local = $(cluster_env bench_a | sed 's/PGHOST=/host=/; s/PGPORT=/port=/; s/PGUSER=/user=/; s/PGDATABASE=/dbname=/')
per_diff = $1
max_diffs = $2
node_timeout = 600
[peer b]
dsn = $(cluster_env bench_b | sed 's/PGHOST=/host=/; s/PGPORT=/port=/; s/PGUSER=/user=/; s/PGDATABASE=/dbname=/')
INI
    echo "$IDSYNC_TMP/a.ini"
}

# Seconds idsyncd logged for `table` in `mode` (bulk copy ... / diff of ...).
daemon_seconds() { # log mode table
    sed -n "s/.*$2 of public\.$3 to b: .* in \([0-9.]*\) s$/\1/p" "$1" | tail -1
}

results=$IDSYNC_TMP/results
: >"$results"
for run in $(seq 1 "$runs"); do
    on_a -c "$schema" >/dev/null 2>&1
    on_b -c "$schema" >/dev/null 2>&1
    load_sql 1 "$rows" | on_a -At | sed -n 's/^load \(.*\) \(.*\)$/'"$run"' load \1 \2/p' >>"$results"
    on_a -c "VACUUM ANALYZE" >/dev/null
    log=$IDSYNC_TMP/bulk-$run.log
    idsyncd -c "$(config 1000 100)" --once --verbose >"$log" 2>&1
    for t in children plain; do echo "$run bulk $t $(daemon_seconds "$log" "bulk copy" $t)" >>"$results"; done
    load_sql $((rows + 1)) $((rows + new_rows)) | on_a -At >/dev/null
    log=$IDSYNC_TMP/diff-$run.log
    idsyncd -c "$(config 1000 100000)" --once --verbose >"$log" 2>&1
    for t in children plain; do echo "$run diff $t $(daemon_seconds "$log" "diff" $t)" >>"$results"; done
    grep -q "0 failures" "$log" || { echo "run $run: the diff pass failed:"; grep -E "ERROR|failures" "$log"; exit 1; }
    same=$(for n in a b; do "on_$n" -At -c "SELECT string_agg(s.row_count || ' ' || s.content_hash, ' ' ORDER BY t)
        FROM unnest('{parents,children,plain}'::regclass[]) t, idsync.sync_info(t) s"; done | sort -u | wc -l)
    [ "$same" -eq 1 ] || { echo "run $run: the nodes differ after replication"; exit 1; }
done

echo
echo "$rows rows per table (+ $new_rows new for diff), ten children per parent, median of $runs runs (s):"
awk '{ key = $2 " " $3; v[key] = v[key] " " $4 } END { for (k in v) print k, v[k] }' "$results" | sort |
while read -r phase table values; do
    median=$(printf '%s\n' $values | median)
    echo "$phase $table $median"
done | tee "$IDSYNC_TMP/medians" | awk '{ printf "  %-5s %-9s %8.2f s  %10.0f rows/s\n", $1, $2, $3, ($1 == "diff" ? '"$new_rows"' : '"$rows"') / $3 }'
echo
echo "ratios (children / plain; 1.0 = a foreign key costs nothing):"
awk '{ t[$1 " " $2] = $3 } END { for (p in t) { split(p, k, " "); if (k[2] == "children") printf "  %-5s %.2f\n", k[1], t[p] / t[k[1] " plain"] } }' "$IDSYNC_TMP/medians" | sort
