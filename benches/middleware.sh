#!/usr/bin/env bash
# Middleware overhead under real load: `wrk` against three builds of the
# same axum app (exporter/examples/middleware_bench_server.rs): no layer,
# Vigil's HttpMetricsLayer, and axum-prometheus 0.10.1's layer.
#
# Each of REPEATS rounds (default 3) runs the three variants one after the
# other (the order rotates every round, so a slow drift of the machine's
# load does not always hit the same variant): start the server, 2 s of
# warm-up load, then WRK_SECONDS (default 10) measured with
# `wrk -t1 -c32 --latency` on GET /users/{id} (a route with a path
# parameter). With PIN=1 (the default when the machine has 2 or more cores)
# the server runs on core 0 (`taskset -c 0`, so one tokio worker) and wrk
# on core 1. After each run it checks on the variant's /metrics that the
# layer recorded the requests.
#
# Output: a human table and `result` lines (see benches/run). Needs wrk,
# taskset, curl, python3, cargo. Loopback only; every process started is
# killed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/evaluator/benches/bench_lib.sh"
repeats=${REPEATS:-3}
seconds=${WRK_SECONDS:-10}
pin=${PIN:-$(($(nproc) >= 2 ? 1 : 0))}

cd "$root"
# benches/run builds everything once (BENCH_NO_BUILD=1).
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release -q -p vigil-exporter --example middleware_bench_server
server=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/middleware_bench_server
if ((pin)); then
  server_cpu=(taskset -c 0)
  wrk_cpu=(taskset -c 1)
else
  server_cpu=()
  wrk_cpu=()
fi

variants=(none vigil axum-prometheus)
: >"$bench_work/rps"
for ((r = 0; r < repeats; r++)); do
  for ((k = 0; k < 3; k++)); do
    variant=${variants[$(((r + k) % 3))]}
    port=$(bench_free_port)
    bench_spawn "${server_cpu[@]}" "$server" "$variant" "127.0.0.1:$port" >"$bench_work/server.log" 2>&1
    pid=$!
    bench_wait_http "http://127.0.0.1:$port/" 30
    url="http://127.0.0.1:$port/users/42"
    "${wrk_cpu[@]}" wrk -t1 -c32 -d2s "$url" >/dev/null
    "${wrk_cpu[@]}" wrk -t1 -c32 -d"${seconds}s" --latency "$url" >"$bench_work/wrk.out"
    rps=$(awk '$1 == "Requests/sec:" { print $2 }' "$bench_work/wrk.out")
    p99=$(awk '$1 == "99%" { print $2 }' "$bench_work/wrk.out")
    # The layer must have counted the load (none has nothing to count).
    recorded=$(curl -fs "http://127.0.0.1:$port/metrics" |
      awk '$1 ~ /^(http_requests_total|axum_http_requests_total)\{/ && $1 ~ /users/ { s += $2 } END { printf "%d\n", s }')
    if [[ $variant != none && $recorded -lt 1000 ]]; then
      echo "middleware: the $variant layer recorded only $recorded requests; see $bench_work/server.log" >&2
      exit 1
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    echo "$r $variant $rps $p99 $recorded" >>"$bench_work/rps"
  done
done

python3 - "$bench_work/rps" "$seconds" "$pin" <<'EOF'
import collections, statistics, sys
path, seconds, pin = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
runs = collections.defaultdict(dict)
for line in open(path):
    r, variant, rps, p99, recorded = line.split()
    runs[int(r)][variant] = (float(rps), p99)
print(f"middleware: wrk -t1 -c32 -d{seconds}s GET /users/{{id}}, "
      + ("server on core 0, wrk on core 1 (taskset)" if pin else "not pinned"))
print(f"{'round':>5} | {'none rps':>10} | {'vigil rps':>10} | {'axum-prom rps':>13} | vigil loss | axum-prom loss | p99 none/vigil/axum-prom")
for r in sorted(runs):
    n, v, a = (runs[r][k][0] for k in ("none", "vigil", "axum-prometheus"))
    p = "/".join(runs[r][k][1] for k in ("none", "vigil", "axum-prometheus"))
    print(f"{r + 1:>5} | {n:>10.0f} | {v:>10.0f} | {a:>13.0f} | {100 * (1 - v / n):>9.1f}% | {100 * (1 - a / n):>13.1f}% | {p}")
    print(f"result\tmiddleware: req/s, Vigil layer vs no layer\treq/s\thigher\t{n:.0f}\t{v:.0f}")
    print(f"result\tmiddleware: req/s, Vigil layer vs axum-prometheus\treq/s\thigher\t{a:.0f}\t{v:.0f}")
    print(f"result\tmiddleware: throughput loss vs no layer (%)\t%\tlower\t{100 * (1 - a / n):.2f}\t{100 * (1 - v / n):.2f}")
EOF
