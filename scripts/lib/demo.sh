# Helpers of scripts/demo: psql and DSNs per node, idsyncd's metrics, the progress line, the
# summary and the verification. Expects the arrays nodes, port and metrics of scripts/demo.

on() { # node, psql arguments...
    local n=$1
    shift
    env $(cluster_env "demo_$n") psql -X -q -v ON_ERROR_STOP=1 "$@"
}

dsn() {
    echo "host=127.0.0.1 port=${port[$1]} user=postgres dbname=postgres"
}

# GET /metrics of node $1's idsyncd, with bash's own /dev/tcp (no curl on a fresh machine).
metrics_text() {
    local text
    exec 3<>"/dev/tcp/127.0.0.1/${metrics[$1]}" 2>/dev/null || return 0
    printf 'GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
    text=$(cat <&3)
    exec 3<&-
    echo "$text"
}

# Sum of a metric over the lines whose labels contain $3 (for instance peer="b").
metric_sum() { # metrics text, name, label filter
    echo "$1" | awk -v name="$2" -v filter="${3:-}" \
        'index($0, name) == 1 && (filter == "" || index($0, filter)) { s += $NF } END { printf "%d", s }'
}

loaded_rows() {
    on "$1" -At -c "SELECT coalesce(sum(rows_loaded), 0) FROM demo_loads"
}

# "  15 s  loaded a 12,000 b 11,800 c 12,100  sent 30,211  lag a>b 0 a>c 120 ..."
progress_line() {
    local line n p text sent=0 lag=""
    line=$(printf '%5d s  loaded' "$1")
    for n in "${nodes[@]}"; do line+=$(printf ' %s %7d' "$n" "$(loaded_rows "$n")"); done
    for n in "${nodes[@]}"; do
        text=$(metrics_text "$n")
        sent=$((sent + $(metric_sum "$text" idsyncd_rows_sent_total)))
        for p in "${nodes[@]}"; do
            [ "$p" = "$n" ] || lag+=$(printf ' %s>%s %d' "$n" "$p" "$(metric_sum "$text" idsyncd_lag_points "peer=\"$p\"")")
        done
    done
    echo "$line  rows sent $sent  lag (points)$lag"
}

natural_view() {
    on "$1" -At -F ' ' -f scripts/demo.d/natural_view.sql
}

nodes_agree() {
    local first n
    first=$(natural_view "${nodes[0]}")
    echo "$first" | grep -q "^waiting or rejected 0 $" || return 1
    for n in "${nodes[@]:1}"; do [ "$(natural_view "$n")" = "$first" ] || return 1; done
}

summary() { # seconds of loading, seconds until the nodes agreed
    local n text counts lic pkg drv out pd pl given created seconds=$(( $1 > 0 ? $1 : 1 ))
    echo "summary: loading took $1 s, the nodes agreed $2 s after the last load"
    printf '%-5s %9s %9s %11s %9s %9s %9s %11s %11s %9s\n' node licenses packages derivations \
        outputs pkg_drv pkg_lic "rows given" "rows new" "given/s"
    for n in "${nodes[@]}"; do
        counts=$(on "$n" -At -F ' ' -c "SELECT (SELECT count(*) FROM licenses), (SELECT count(*) FROM packages),
            (SELECT count(*) FROM derivations), (SELECT count(*) FROM derivation_outputs),
            (SELECT count(*) FROM package_derivations), (SELECT count(*) FROM package_licenses),
            coalesce(sum(rows_loaded), 0), coalesce(sum(ids_created), 0) FROM demo_loads")
        read -r lic pkg drv out pd pl given created <<<"$counts"
        printf '%-5s %9d %9d %11d %9d %9d %9d %11d %11d %9d\n' "$n" "$lic" "$pkg" "$drv" "$out" \
            "$pd" "$pl" "$given" "$created" $(( given / seconds ))
    done
    echo
    printf '%-7s %8s %9s %9s %5s %5s %11s %10s %8s %8s\n' daemon passes no_change hashmatch bulk \
        diff diff_capped "rows sent" failures rejects
    for n in "${nodes[@]}"; do
        text=$(metrics_text "$n")
        printf '%-7s %8d %9d %9d %5d %5d %11d %10d %8d %8d\n' "$n" \
            "$(metric_sum "$text" idsyncd_attempts_total)" "$(metric_sum "$text" idsyncd_no_change_total)" \
            "$(metric_sum "$text" idsyncd_hashmatch_total)" "$(metric_sum "$text" idsyncd_bulk_total)" \
            "$(metric_sum "$text" idsyncd_diff_total)" "$(metric_sum "$text" idsyncd_diff_capped_total)" \
            "$(metric_sum "$text" idsyncd_rows_sent_total)" "$(metric_sum "$text" idsyncd_failures_total)" \
            "$(metric_sum "$text" idsyncd_rejects_total)"
    done
    echo "(rows given: rows the loaders passed to insert_missing and the link inserts; rows new:"
    echo " ids created and links added on that node; the rest already existed, loaded there or"
    echo " merged from a peer first. Passes count one table to one peer; rejects are rows that"
    echo " arrived before a row they reference and waited for it, merged since.)"
}

verify() {
    local n first ok=0
    first=$(natural_view a)
    echo "verification:"
    for n in "${nodes[@]:1}"; do
        if [ "$(natural_view "$n")" = "$first" ]; then
            echo "  a and $n: identical natural-key views of all six tables and equal content hashes"
        else
            echo "  a and $n: DIFFERENT"
            diff <(echo "$first") <(natural_view "$n") | sed 's/^/    /'
            ok=1
        fi
    done
    echo "$first" | sed -n 's/^waiting or rejected \([0-9]*\) $/  rows waiting or rejected on a: \1/p'
    echo "$first" | grep -q "^waiting or rejected 0 $" || ok=1
    echo "$first" | awk '$1 != "content" && $1 != "waiting" { printf "  %-20s %8d rows on every node\n", $1, $2 }'
    return $ok
}
