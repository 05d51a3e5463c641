#!/usr/bin/env bash
# Benchmark: commit-to-visible latency at default settings, idsync against PostgreSQL's own
# logical replication, in one run. Three clusters (wal_level = logical) with an idsyncd beside
# each replicating to the two others (default interval, so change-driven passes carry the
# rows); node a also publishes a twin table to a subscription on b. A writer commits `rate`
# rows per second for `seconds` on a, into both tables in the same transaction. Each table has
# a local column `arrived` (default clock_timestamp(), not replicated), so latency is arrived
# minus written on the receiver. Prints medians, p95 and the ratio; also the rows b's daemon
# sent back to a (echo).
#   bash bench/latency.sh [rate] [seconds]
# Not a test: nothing here asserts on time.
set -euo pipefail
cd "$(dirname "$0")/.."
rate=${1:-50}
seconds=${2:-30}

bash scripts/install-deps
source scripts/lib/build.sh
source scripts/lib/cluster.sh
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
    cluster_cleanup
}
trap cleanup EXIT
build_and_install
nodes=(a b c)
declare -A port=([a]=54431 [b]=54432 [c]=54433 [metrics_b]=54439)
dsn() { echo "host=127.0.0.1 port=${port[$1]} user=postgres dbname=postgres"; }
on() { local n=$1; shift; env $(cluster_env "lat_$n") psql -X -q -v ON_ERROR_STOP=1 "$@"; }
for n in "${nodes[@]}"; do
    cluster_start "lat_$n" "${port[$n]}" wal_level=logical
    on "$n" >/dev/null <<'SQL'
CREATE EXTENSION idsync;
CREATE TABLE events (id bigserial PRIMARY KEY, name text NOT NULL UNIQUE, written timestamptz NOT NULL,
                     arrived timestamptz NOT NULL DEFAULT clock_timestamp());
SELECT idsync.replicate('events', '{name}', local_columns => '{arrived}');
CREATE TABLE lr_events (LIKE events INCLUDING ALL);
SQL
done
on a -c "CREATE PUBLICATION lr FOR TABLE lr_events (id, name, written)" >/dev/null
on b -c "CREATE SUBSCRIPTION lr CONNECTION '$(dsn a)' PUBLICATION lr WITH (copy_data = false)" >/dev/null
for n in "${nodes[@]}"; do
    {
        printf '[idsyncd]\nlocal = %s\n' "$(dsn "$n")"
        [ "$n" = b ] && printf 'metrics_listen = 127.0.0.1:%s\n' "${port[metrics_b]}" || printf 'metrics_listen = off\n'
        for p in "${nodes[@]}"; do [ "$p" = "$n" ] || printf '[peer %s]\ndsn = %s\n' "$p" "$(dsn "$p")"; done
    } >"$IDSYNC_TMP/$n.ini"
    idsyncd -c "$IDSYNC_TMP/$n.ini" >"$IDSYNC_TMP/$n.log" 2>&1 &
    pids+=($!)
done
sleep 2

rows=$((rate * seconds))
echo "writing $rows rows on a, $rate per second, each into events (idsync) and lr_events (logical replication)..."
on a >/dev/null <<SQL
DO \$\$
BEGIN
    FOR i IN 1 .. $rows LOOP
        INSERT INTO events (name, written) VALUES ('e' || i, clock_timestamp());
        INSERT INTO lr_events (name, written) VALUES ('e' || i, clock_timestamp());
        COMMIT;
        PERFORM pg_sleep(1.0 / $rate);
    END LOOP;
END \$\$;
SQL
for _ in $(seq 1 60); do
    got=$(on b -At -c "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM lr_events)")
    [ "$got" -ge $((2 * rows)) ] && break
    sleep 1
done
stats() { # node table
    on "$1" -At -F ' ' -c "SELECT count(*),
        round((percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM arrived - written)) * 1000)::numeric, 1),
        round((percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM arrived - written)) * 1000)::numeric, 1)
        FROM $2"
}
read -r n_i med_i p95_i <<<"$(stats b events)"
read -r n_c med_c p95_c <<<"$(stats c events)"
read -r n_l med_l p95_l <<<"$(stats b lr_events)"
echo
echo "commit-to-visible latency, $rows rows at $rate rows/s (ms):"
printf '  %-44s %6s rows  median %8s  p95 %8s\n' "idsync a -> b (default settings)" "$n_i" "$med_i" "$p95_i"
printf '  %-44s %6s rows  median %8s  p95 %8s\n' "idsync a -> c (default settings)" "$n_c" "$med_c" "$p95_c"
printf '  %-44s %6s rows  median %8s  p95 %8s\n' "logical replication a -> b" "$n_l" "$med_l" "$p95_l"
awk -v a="$med_i" -v b="$med_l" -v c="$p95_i" -v d="$p95_l" \
    'BEGIN { printf "  idsync / logical replication: median %.1f, p95 %.1f\n", a / b, c / d }'
echo "  rows b's daemon sent back to a (echo): $(exec 3<>/dev/tcp/127.0.0.1/${port[metrics_b]};
    printf 'GET /metrics HTTP/1.0\r\n\r\n' >&3; grep -E '^idsyncd_rows_sent_total\{peer="a",table="public.events"\}' <&3 | awk '{ print $2 }')"
