# Timing helpers of the benchmarks in bench/: source this file.
#   start=$(now); ...; elapsed "$start"     seconds since start, 3 decimals
#   printf '%s\n' 3 1 2 | median             the median of numbers on stdin (the lower middle
#                                            one of an even count)
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
