#!/usr/bin/env bash
# Benchmark: idsync against PostgreSQL's own logical replication and Bucardo 5.6 (Debian's
# package) on the scenarios of issue 14, in one run, on the same two clusters (wal_level =
# logical, fsync off) and the same table, `files (id bigserial PRIMARY KEY, path text UNIQUE,
# size bigint, sha text)`, ~60-byte keys:
#   initial   N rows to an empty node: `idsyncd --once` (bulk mode); a subscription with
#             copy_data (until its table is ready and holds every row); Bucardo's sync with
#             onetimecopy=2 (a full COPY into an empty target) set while its daemon is stopped,
#             from `bucardo start` (it copies at once) until b holds every row, once as it
#             comes and once with rebuild_index=1 (the target's indexes off during the COPY and
#             rebuilt after it, its fastest documented full copy);
#   catch-up  M new rows on a node otherwise in sync: `idsyncd --once` (diff mode); the
#             subscription applying M rows committed in one transaction (streaming), and M
#             rows written while it was disabled, from ALTER SUBSCRIPTION ... ENABLE (resumed;
#             its apply worker starts when the launcher next wakes); Bucardo's running daemon
#             applying M rows committed in one transaction (streaming: its triggers kick the
#             sync), and M rows written while the daemon was stopped, from `bucardo start`
#             (resumed);
#   writes    what the source pays: `write_rows` rows by one INSERT ... SELECT into a plain
#             table, one registered with idsync and one tracked by Bucardo (its delta and kick
#             triggers), fresh tables, as bench/write_overhead.sh measures idsync alone.
# Each side has its own copy of the table (files_ids registered with idsync, files_lr
# published, files_bc in a Bucardo sync from a to b); they never run at the same time (the
# Bucardo daemon runs only during its own scenarios). Each run starts from fresh tables on b and
# keeps the rows of the runs before on a (so later runs copy a little more, all sides alike),
# and checks that the nodes agree afterwards. Medians of `runs`, and the ratios.
#   bash bench/peers.sh [rows] [new_rows] [runs] [write_rows]
# Not a test: nothing here asserts on time.
set -eEuo pipefail
# A failed command says where: many of them are quiet on purpose.
trap 'echo "bench/peers.sh: failed at line $LINENO: $BASH_COMMAND" >&2' ERR
cd "$(dirname "$0")/.."
rows=${1:-1000000}
new_rows=${2:-100000}
runs=${3:-3}
write_rows=${4:-200000}

# Bucardo is needed by this benchmark only, so it is installed here rather than in
# scripts/install-deps (idempotent: nothing happens when both packages are present).
install_bucardo() {
    local p missing=() as_root=()
    for p in bucardo postgresql-plperl-15; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || as_root=(sudo)
    echo "installing: ${missing[*]}"
    "${as_root[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

bash scripts/install-deps
install_bucardo
source scripts/lib/build.sh
source scripts/lib/cluster.sh
source scripts/lib/bench.sh
bucardo_dir=$IDSYNC_TMP/bucardo
bucardo_pids() { cat "$bucardo_dir"/bucardo.*.pid 2>/dev/null | grep -Eo '^[0-9]+' || true; }
# At exit: stops a daemon still running (before its databases go), by its PID files if need be.
bucardo_shutdown() {
    [ -n "$(bucardo_pids)" ] || return 0
    bucardo_stop 2>/dev/null || kill $(bucardo_pids) 2>/dev/null || true
}
trap 'bucardo_shutdown; cluster_cleanup' EXIT
build_and_install
settings=(wal_level=logical shared_buffers=512MB max_wal_size=8GB checkpoint_timeout=30min)
cluster_start peers_a 54441 "${settings[@]}"
cluster_start peers_b 54442 "${settings[@]}"
# on NODE psql-args: NODE is a, b, or bucardo (Bucardo's own database, on a's cluster).
on() {
    local n=$1 db=postgres
    shift
    [ "$n" = bucardo ] && { n=a; db=bucardo; }
    env $(cluster_env "peers_$n") PGDATABASE=$db PGOPTIONS="-c client_min_messages=warning" \
        psql -X -q -v ON_ERROR_STOP=1 "$@"
}
port() { [ "$1" = a ] && echo 54441 || echo 54442; }
dsn() { echo "host=127.0.0.1 port=$(port "$1") user=postgres dbname=postgres"; }
# wait_for NODE SQL: waits until SQL on NODE returns t (polling every 20 ms, 30,000 times).
wait_for() {
    local i
    for i in $(seq 1 30000); do
        [ "$(on "$1" -At -c "$2")" = t ] && return 0
        sleep 0.02
    done
    echo "timed out waiting on $1 for: $2" >&2
    return 1
}
# same_rows TABLE: the table holds the same paths on a and b, or the run fails.
same_rows() {
    local sql="SELECT count(*) || ' ' || md5(string_agg(path, ',' ORDER BY path)) FROM $1"
    local on_a on_b
    on_a=$(on a -At -c "$sql")
    on_b=$(on b -At -c "$sql")
    [ "$on_a" = "$on_b" ] || { echo "$1: rows differ after run $run (a: $on_a, b: $on_b)" >&2; exit 1; }
}

# Bucardo: its configuration database `bucardo` lives on a's cluster; the daemon connects to
# a and b as the superuser `bucardo` (trust on loopback) and keeps its PID files, logs and
# stop file in $bucardo_dir. It runs as the calling user (it does not refuse root).
bucardo_cmd() { (cd "$bucardo_dir" && HOME=$bucardo_dir bucardo --bucardorc "$bucardo_dir/bucardorc" "$@"); }
bucardo_setup() {
    mkdir -p "$bucardo_dir"
    cat >"$bucardo_dir/bucardorc" <<RC
dbhost = 127.0.0.1
dbport = $(port a)
dbname = bucardo
dbuser = bucardo
logdest = $bucardo_dir
RC
    local n
    for n in a b; do on "$n" -c "CREATE ROLE bucardo LOGIN SUPERUSER" >/dev/null; done
    (cd "$bucardo_dir" && HOME=$bucardo_dir bucardo install --batch --no-bucardorc --dbhost 127.0.0.1 \
        --dbport "$(port a)" --dbuser postgres --dbname postgres --pid-dir "$bucardo_dir") \
        >"$bucardo_dir/install.log" 2>&1 || { cat "$bucardo_dir/install.log"; exit 1; }
    bucardo_cmd set reason_file="$bucardo_dir/restart.reason" log_conflict_file="$bucardo_dir/conflict.log" \
        warning_file="$bucardo_dir/warning.log" >/dev/null
    for n in a b; do
        bucardo_cmd add db "bc_$n" dbname=postgres host=127.0.0.1 port="$(port "$n")" user=bucardo >/dev/null
    done
    # The triggers go onto a's table when a sync names it: the rows loaded before are no
    # deltas, and every run copies them in full.
    bucardo_cmd add table public.files_bc db=bc_a relgroup=bc >/dev/null
    bucardo_cmd add sync bc relgroup=bc dbs=bc_a:source,bc_b:target >/dev/null
    # Only for its triggers: the write-overhead table, in a sync that never runs.
    bucardo_cmd add table public.files_bw db=bc_a relgroup=bw >/dev/null
    bucardo_cmd add sync bw relgroup=bw dbs=bc_a:source,bc_b:target status=inactive >/dev/null
}
# Starts the daemon; returns when the run it makes at startup is over (the first one), which
# is the measured copy when a one-time copy is set, else a look for deltas.
bucardo_start() {
    local since
    since=$(on bucardo -At -c "SELECT now()")
    bucardo_cmd start >>"$bucardo_dir/start.log" 2>&1
    wait_for bucardo "SELECT count(*) > 0 FROM bucardo.syncrun
                      WHERE sync = 'bc' AND started > '$since' AND ended IS NOT NULL"
}
# Stops the daemon and waits until every Bucardo process is gone (they look at the stop file
# between runs of a sync).
bucardo_stop() {
    local i
    bucardo_cmd stop >/dev/null
    for i in $(seq 1 600); do
        [ -z "$(bucardo_pids)" ] && return 0
        sleep 0.1
    done
    echo "Bucardo did not stop" >&2
    return 1
}
# bucardo_kid_time SCENARIO_KID SIDE: records how long the KID's last run took by its own
# account (bucardo.syncrun, started to ended): the rest of a measured time is the daemon's
# start, or a kick's way to the KID (the MCP's, the controller's and the KID's sleeps).
bucardo_kid_time() {
    echo "$1 $2 $(on bucardo -At -c "SELECT round(extract(epoch FROM ended - started), 3) FROM bucardo.syncrun
                                  WHERE sync = 'bc' AND inserts > 0 AND ended IS NOT NULL
                                  ORDER BY started DESC LIMIT 1")" >>"$results"
}
# bucardo_copy SIDE REBUILD_INDEX: a one-time full copy of files_bc into b's fresh, empty
# table, timed from `bucardo start` (the daemon copies at once) until b holds every row. The
# settings are read when the daemon starts.
bucardo_copy() {
    on b -c "DROP TABLE files_bc" -c "CREATE TABLE files_bc $table" -c "CHECKPOINT" >/dev/null
    on a -c "CHECKPOINT" >/dev/null
    bucardo_cmd update sync bc onetimecopy=2 rebuild_index="$2" >/dev/null
    start=$(now)
    bucardo_cmd start >>"$bucardo_dir/start.log" 2>&1
    wait_for b "SELECT count(*) = $total FROM files_bc"
    echo "initial $1 $(elapsed "$start")" >>"$results"
    # The KID turns onetimecopy off when its run is over (after an ANALYZE of b's table).
    wait_for bucardo "SELECT onetimecopy = 0 FROM bucardo.sync WHERE name = 'bc'"
    bucardo_kid_time initial_kid "$1"
    bucardo_stop
}

table="(id bigserial PRIMARY KEY, path text NOT NULL UNIQUE, size bigint NOT NULL, sha text NOT NULL)"
fill() { # node table first count
    on "$1" -c "INSERT INTO $2 (path, size, sha)
                SELECT '/nix/store/' || md5(g::text) || '-file-' || g, g, md5((g * 7)::text)
                FROM generate_series($3, $3 + $4 - 1) g" >/dev/null
}
for n in a b; do on "$n" -c "CREATE EXTENSION idsync" -c "CREATE TABLE files_bc $table" -c "CREATE TABLE files_bw $table" >/dev/null; done
on a -c "CREATE TABLE files_ids $table" -c "CREATE TABLE files_lr $table" \
     -c "SELECT idsync.replicate('files_ids', '{path}')" \
     -c "CREATE PUBLICATION lr FOR TABLE files_lr" >/dev/null
echo "loading $rows rows into each table on node a..."
for t in files_ids files_lr files_bc; do fill a "$t" 1 "$rows"; done
on a -c "VACUUM ANALYZE files_ids, files_lr, files_bc" >/dev/null
bucardo_setup
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
# idsync and logical replication: fresh targets on b, initial sync, catch-up (streaming and
# resumed), then both ends compared.
run_idsync_and_lr() {
    on b -c "DROP SUBSCRIPTION IF EXISTS lr" -c "DROP TABLE IF EXISTS files_ids, files_lr" \
         -c "CREATE TABLE files_ids $table" -c "CREATE TABLE files_lr $table" \
         -c "SELECT idsync.replicate('files_ids', '{path}')" -c "CHECKPOINT" >/dev/null
    on a -c "DELETE FROM idsync.outgoing_sync" -c "CHECKPOINT" >/dev/null

    start=$(now)
    idsyncd -c "$IDSYNC_TMP/a.ini" --once >"$IDSYNC_TMP/bulk-$run.log" 2>&1 ||
        { cat "$IDSYNC_TMP/bulk-$run.log"; exit 1; }
    echo "initial idsync $(elapsed "$start")" >>"$results"
    start=$(now)
    on b -c "CREATE SUBSCRIPTION lr CONNECTION '$(dsn a)' PUBLICATION lr WITH (copy_data = true)" >/dev/null
    wait_for b "SELECT bool_and(srsubstate = 'r') AND (SELECT count(*) FROM files_lr) = $total
                FROM pg_subscription_rel WHERE srrelid = 'files_lr'::regclass"
    echo "initial lr $(elapsed "$start")" >>"$results"

    fill a files_ids "$((total + 1))" "$new_rows"
    start=$(now)
    idsyncd -c "$IDSYNC_TMP/a.ini" --once >"$IDSYNC_TMP/diff-$run.log" 2>&1 ||
        { cat "$IDSYNC_TMP/diff-$run.log"; exit 1; }
    echo "catchup idsync $(elapsed "$start")" >>"$results"
    # Logical replication streaming: the rows committed on a (one transaction), then applied.
    fill a files_lr "$((total + 1))" "$new_rows"
    start=$(now)
    wait_for b "SELECT count(*) = $((total + new_rows)) FROM files_lr"
    echo "streaming lr $(elapsed "$start")" >>"$results"
    # And resumed: the same number of rows written while the subscription was disabled.
    on b -c "ALTER SUBSCRIPTION lr DISABLE" >/dev/null
    fill a files_lr "$((total + new_rows + 1))" "$new_rows"
    start=$(now)
    on b -c "ALTER SUBSCRIPTION lr ENABLE" >/dev/null
    wait_for b "SELECT count(*) = $((total + 2 * new_rows)) FROM files_lr"
    echo "resumed lr $(elapsed "$start")" >>"$results"
    # idsync's table gets the second batch too, so every table keeps the same rows.
    fill a files_ids "$((total + new_rows + 1))" "$new_rows"

    idsyncd -c "$IDSYNC_TMP/a.ini" --once >"$IDSYNC_TMP/check-$run.log" 2>&1 ||
        { cat "$IDSYNC_TMP/check-$run.log"; exit 1; }
    [ "$(on a -At -c "SELECT content_hash FROM idsync.sync_info('files_ids')")" = \
      "$(on b -At -c "SELECT content_hash FROM idsync.sync_info('files_ids')")" ] ||
        { echo "idsync: content hashes differ after run $run" >&2; exit 1; }
    same_rows files_ids
    same_rows files_lr
    on b -c "DROP SUBSCRIPTION lr" >/dev/null
}

# Bucardo: the two full copies, each by a daemon started for it; catch-up streaming by the
# daemon started again (it finds no deltas at startup: b holds every row); then the daemon
# stopped, M rows written, the daemon started; the ends compared; the daemon stopped until the
# next run.
run_bucardo() {
    bucardo_copy bucardo 0
    bucardo_copy bucardo_rebuild 1
    bucardo_cmd update sync bc rebuild_index=0 >/dev/null

    bucardo_start
    fill a files_bc "$((total + 1))" "$new_rows"
    start=$(now)
    wait_for b "SELECT count(*) = $((total + new_rows)) FROM files_bc"
    echo "streaming bucardo $(elapsed "$start")" >>"$results"
    bucardo_stop
    bucardo_kid_time streaming_kid bucardo

    fill a files_bc "$((total + new_rows + 1))" "$new_rows"
    start=$(now) # the daemon looks for deltas at once when it starts
    bucardo_cmd start >>"$bucardo_dir/start.log" 2>&1
    wait_for b "SELECT count(*) = $((total + 2 * new_rows)) FROM files_bc"
    echo "resumed bucardo $(elapsed "$start")" >>"$results"
    bucardo_stop
    bucardo_kid_time resumed_kid bucardo
    same_rows files_bc
}

# Source writes: `write_rows` rows by one statement into a plain, a registered and a tracked
# table on a, fresh per run (the tracked one emptied with its delta and track tables, its
# triggers skipped for that), in turn. The Bucardo daemon is stopped and sync bw never runs.
fresh_write_table() { # kind
    case $1 in
        plain) on a -c "CREATE TABLE files_plain $table" >/dev/null ;;
        idsync) on a -c "CREATE TABLE files_reg $table" \
                     -c "SELECT idsync.replicate('files_reg', '{path}')" >/dev/null ;;
        bucardo) on a -c "SET session_replication_role = replica" \
                      -c "TRUNCATE files_bw, bucardo.delta_public_files_bw, bucardo.track_public_files_bw" >/dev/null ;;
    esac
    on a -c "CHECKPOINT" >/dev/null
}
run_writes() {
    local kind target
    for kind in plain idsync bucardo; do
        target=$(case $kind in plain) echo files_plain ;; idsync) echo files_reg ;; bucardo) echo files_bw ;; esac)
        fresh_write_table "$kind"
        start=$(now)
        fill a "$target" 1 "$write_rows"
        echo "writes $kind $(elapsed "$start")" >>"$results"
    done
    # Gone before the next run, whose idsyncd would send the registered one to b.
    on a -c "DROP TABLE files_plain, files_reg" >/dev/null
}

total=$rows # rows on a before a run's catch-up: each run keeps the rows of the last
for run in $(seq 1 "$runs"); do
    echo "run $run of $runs..."
    run_idsync_and_lr
    run_bucardo
    run_writes
    total=$((total + 2 * new_rows))
done

m() { grep "^$1 $2 " "$results" | awk '{ print $3 }' | median; }
ii=$(m initial idsync); il=$(m initial lr); ib=$(m initial bucardo); ir=$(m initial bucardo_rebuild)
ci=$(m catchup idsync); sl=$(m streaming lr); rl=$(m resumed lr)
sb=$(m streaming bucardo); rb=$(m resumed bucardo)
wp=$(m writes plain); wi=$(m writes idsync); wb=$(m writes bucardo)
line() { # label seconds rows [note]
    printf '  %-52s %8.2f s  %9.0f rows/s%s\n' "$1" "$2" "$(calc "$3 / $2")" "${4:+  ($4)}"
}
kid() { printf "Bucardo's KID ran %.2f s" "$(m "$1" "$2")"; }
echo
echo "$rows rows, then $new_rows new rows; median of $runs runs:"
line "initial sync, idsyncd --once (bulk)" "$ii" "$rows"
line "initial sync, subscription copy_data" "$il" "$rows"
line "initial sync, Bucardo onetimecopy=2" "$ib" "$rows" "$(kid initial_kid bucardo)"
line "initial sync, Bucardo onetimecopy=2, rebuild_index=1" "$ir" "$rows" "$(kid initial_kid bucardo_rebuild)"
line "catch-up, idsyncd --once (diff)" "$ci" "$new_rows"
line "catch-up, subscription streaming" "$sl" "$new_rows"
line "catch-up, subscription enabled again" "$rl" "$new_rows"
line "catch-up, Bucardo daemon running" "$sb" "$new_rows" "$(kid streaming_kid bucardo)"
line "catch-up, Bucardo daemon started again" "$rb" "$new_rows" "$(kid resumed_kid bucardo)"
echo
printf '  initial sync, idsync / logical replication: %.2f\n' "$(calc "$ii / $il")"
printf '  initial sync, idsync / Bucardo:             %.2f onetimecopy, %.2f with rebuild_index\n' \
    "$(calc "$ii / $ib")" "$(calc "$ii / $ir")"
printf '  catch-up, idsync / logical replication:     %.2f streaming, %.2f resumed\n' \
    "$(calc "$ci / $sl")" "$(calc "$ci / $rl")"
printf '  catch-up, idsync / Bucardo:                 %.2f streaming, %.2f resumed\n' \
    "$(calc "$ci / $sb")" "$(calc "$ci / $rb")"
echo
echo "$write_rows rows by one INSERT on node a; median of $runs runs:"
printf '  plain %.3f s, idsync %.3f s (%.2f), Bucardo %.3f s (%.2f); idsync / Bucardo %.2f\n' \
    "$wp" "$wi" "$(calc "$wi / $wp")" "$wb" "$(calc "$wb / $wp")" "$(calc "$wi / $wb")"
