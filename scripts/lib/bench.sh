# Timing helpers of the benchmarks in bench/: source this file.
#   start=$(now); ...; elapsed "$start"     seconds since start, 3 decimals
#   printf '%s\n' 3 1 2 | median             the median of numbers on stdin (the lower middle
#                                            one of an even count)
#   calc "1 / 3"                             an arithmetic expression, 6 decimals
#   cluster_dsn NAME                         the libpq connection string of a cluster of
#                                            scripts/lib/cluster.sh
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
calc() { awk "BEGIN { printf \"%.6f\", $1 }"; }
cluster_dsn() { cluster_env "$1" | sed 's/PGHOST=/host=/; s/PGPORT=/port=/; s/PGUSER=/user=/; s/PGDATABASE=/dbname=/'; }
