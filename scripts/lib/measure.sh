# Helpers the wrk benchmarks share (sourced, not run).
#
# On a shared machine req/s moves with whatever else runs; a server's own CPU time
# per request moves much less, and at saturation on one core it is what limits
# throughput. So each round reports both: req/s from wrk, and the server's on-CPU
# nanoseconds (every thread's, from /proc/PID/task/*/schedstat) per request served.

# The nanoseconds every thread of process $1 has spent on a CPU.
cpu_ns() {
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f", s}'
}

# The median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'
}

# Runs wrk (its arguments are "$@") on core 1 against a server whose pid is $WRK_PID
# and prints "req/s p50_us p99_us cpu_us_per_request".
wrk_round() {
  local before after out
  before=$(cpu_ns "$WRK_PID")
  out=$(taskset -c 1 wrk -t1 --latency "$@")
  after=$(cpu_ns "$WRK_PID")
  if echo "$out" | grep -q "Non-2xx"; then echo "non-2xx answers: $out" >&2; return 1; fi
  echo "$out" | awk -v cpu=$((after - before)) '
    function us(v) { if (v ~ /us$/) return v + 0; if (v ~ /ms$/) return v * 1000; return v * 1000000 }
    /requests in/ {n = $1} /Requests\/sec/ {r = $2} $1 == "50%" {p50 = us($2)} $1 == "99%" {p99 = us($2)}
    END {printf "%.0f %.0f %.0f %.2f\n", r, p50, p99, cpu / n / 1000}'
}
