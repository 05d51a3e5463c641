# Throwaway PostgreSQL 15 clusters on loopback, for tests, benchmarks and the demo.
# Source this file, then: cluster_start NAME PORT; use $(cluster_env NAME); cluster_stop_all.
# PostgreSQL refuses to run as root, so as root the clusters run as the OS user "idsync".

PGBIN=/usr/lib/postgresql/15/bin
IDSYNC_TMP=${IDSYNC_TMP:-$(mktemp -d /tmp/idsync.XXXXXX)}
chmod 755 "$IDSYNC_TMP"
IDSYNC_CLUSTERS=()

_as_pg_user() {
    if [ "$(id -u)" -eq 0 ]; then
        id idsync >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin idsync
        runuser -u idsync -- "$@"
    else
        "$@"
    fi
}

# cluster_start NAME PORT [extra postgres settings...]
cluster_start() {
    local name=$1 port=$2
    shift 2
    local dir=$IDSYNC_TMP/$name
    mkdir -p "$dir"
    [ "$(id -u)" -eq 0 ] && { id idsync >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin idsync; chown idsync "$dir"; }
    _as_pg_user "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-locale -E UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log"; return 1; }
    local opts="-c port=$port -c listen_addresses=127.0.0.1 -c unix_socket_directories=$dir -c fsync=off"
    local setting
    for setting in "$@"; do opts="$opts -c $setting"; done
    _as_pg_user "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -o "$opts" -w -t 60 start >/dev/null \
        || { cat "$dir/server.log"; return 1; }
    IDSYNC_CLUSTERS+=("$name")
    echo "$port" >"$dir/port"
}

# Prints the libpq environment that reaches cluster NAME.
cluster_env() {
    local dir=$IDSYNC_TMP/$1
    echo "PGHOST=$dir PGPORT=$(cat "$dir/port") PGUSER=postgres PGDATABASE=postgres"
}

cluster_stop() {
    local dir=$IDSYNC_TMP/$1
    [ -f "$dir/data/postmaster.pid" ] && _as_pg_user "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1
    return 0
}

cluster_stop_all() {
    local name
    for name in "${IDSYNC_CLUSTERS[@]}"; do cluster_stop "$name"; done
    IDSYNC_CLUSTERS=()
}

cluster_cleanup() {
    cluster_stop_all
    [ -n "${IDSYNC_KEEP_TMP:-}" ] || rm -rf "$IDSYNC_TMP"
}
