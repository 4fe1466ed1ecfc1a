#!/usr/bin/env bash
# Middleware overhead under real load: `wrk` against builds of the same axum
# app (exporter/examples/middleware_bench_server.rs): no layer, a layer that
# does nothing (what axum's per-route wrapping costs by itself), Vigil's
# HttpMetricsLayer added with `Router::layer`, the same metrics added per
# handler (`HttpMetricsLayer::handler`, no second boxing of each route), and
# axum-prometheus 0.10.1's layer.
#
# Method: paired and simultaneous. Sequential runs on this kind of VM vary
# by +-10 % from one 10 s run to the next (CPU steal, frequency), far more
# than the 2 % to be shown. So each measurement runs two servers AT THE SAME
# TIME, both pinned to core 0 (`taskset -c 0`, one tokio worker each), each
# loaded by its own `wrk -t1 -c32` pinned to core 1. The scheduler shares
# core 0 fairly between the two busy servers, so each gets the same CPU time
# under the same conditions, and the ratio of their requests/s is the ratio
# of their costs per request; whatever disturbs the machine disturbs both.
# Every round runs five pairs, each against a no-layer server:
#   none/none (the control: how far the method is from 0 on two equal
#   servers), none/noop-layer, none/vigil, none/vigil-handler,
#   none/axum-prometheus (MIDDLEWARE_VARIANTS="none vigil ..." runs fewer),
# with the two servers' places (port, start order, wrk order) swapped every
# other round. Per pair: 2 s warm-up, WRK_SECONDS (default 8) measured.
# The result is the median over REPEATS rounds (default 5) of each pair's
# loss = 1 - variant/none. After each pair it checks on the layers' /metrics
# that they counted the requests, and that core 0 was fully busy (otherwise
# wrk, not the servers, was the limit and the pair is reported unusable).
#
# Output: a human table and `result` lines (see benches/run). Needs wrk,
# taskset, curl, python3, cargo and 2 or more cores. Loopback only; every
# process started is killed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/evaluator/benches/bench_lib.sh"
repeats=${REPEATS:-5}
seconds=${WRK_SECONDS:-8}
if (($(nproc) < 2)); then
  echo "middleware: needs 2 cores (servers on one, wrk on the other); this machine has $(nproc)" >&2
  exit 1
fi

cd "$root"
# benches/run builds everything once (BENCH_NO_BUILD=1).
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release -q -p vigil-exporter -F cli --example middleware_bench_server
server=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/middleware_bench_server

# cpu_ticks PID: user + system CPU time of PID, in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# recorded PORT: requests to /users/{id} that the server's layer counted.
recorded() {
  curl -fs "http://127.0.0.1:$1/metrics" |
    awk '$1 ~ /^(http_requests_total|axum_http_requests_total)\{/ && $1 ~ /users/ { s += $2 } END { printf "%d\n", s }'
}

# run_pair ROUND LEFT RIGHT: both servers at once, appends one line per side.
run_pair() {
  local round=$1 left=$2 right=$3 variant port pid i
  local -a variants=("$left" "$right") ports=() pids=() before=() wrks=()
  for variant in "${variants[@]}"; do
    port=$(bench_free_port)
    bench_spawn taskset -c 0 "$server" "$variant" "127.0.0.1:$port" >>"$bench_work/server.log" 2>&1
    ports+=("$port")
    pids+=("$!")
  done
  for port in "${ports[@]}"; do bench_wait_http "http://127.0.0.1:$port/" 30; done
  for port in "${ports[@]}"; do
    taskset -c 1 wrk -t1 -c32 -d2s "http://127.0.0.1:$port/users/42" >/dev/null &
    wrks+=("$!")
  done
  wait "${wrks[@]}"
  wrks=()
  for pid in "${pids[@]}"; do before+=("$(cpu_ticks "$pid")"); done
  local core0_before
  core0_before=$(awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
  for i in 0 1; do
    taskset -c 1 wrk -t1 -c32 -d"${seconds}s" "http://127.0.0.1:${ports[$i]}/users/42" >"$bench_work/wrk.$i" &
    wrks+=("$!")
  done
  wait "${wrks[@]}"
  local core0_after
  core0_after=$(awk '$1 == "cpu0" { print $2 + $3 + $4 + $7 + $8 + $9, $5 + $6 }' /proc/stat)
  for i in 0 1; do
    local rps cpu count
    rps=$(awk '$1 == "Requests/sec:" { print $2 }' "$bench_work/wrk.$i")
    cpu=$(($(cpu_ticks "${pids[$i]}") - before[i]))
    count=$(recorded "${ports[$i]}")
    if [[ ${variants[$i]} != none && ${variants[$i]} != noop-layer && $count -lt 1000 ]]; then
      echo "middleware: the ${variants[$i]} layer recorded only $count requests; see $bench_work/server.log" >&2
      exit 1
    fi
    echo "$round $left:$right $i ${variants[$i]} $rps $cpu $core0_before $core0_after" >>"$bench_work/pairs"
  done
  kill "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null || true
}

: >"$bench_work/pairs"
for ((r = 0; r < repeats; r++)); do
  for variant in ${MIDDLEWARE_VARIANTS:-none noop-layer vigil vigil-handler axum-prometheus}; do
    if ((r % 2 == 0)); then
      run_pair "$r" none "$variant"
    else
      run_pair "$r" "$variant" none
    fi
  done
done

python3 - "$bench_work/pairs" "$seconds" <<'EOF'
import collections, statistics, sys
path, seconds = sys.argv[1], sys.argv[2]
pairs = collections.defaultdict(list)
for line in open(path):
    r, pair, side, variant, rps, cpu, busy0, idle0, busy1, idle1 = line.split()
    pairs[(int(r), pair)].append((int(side), variant, float(rps), int(cpu), int(busy1) - int(busy0), int(idle1) - int(idle0)))

losses = collections.defaultdict(list)   # variant -> [loss %]
rates = collections.defaultdict(list)    # variant -> [(none rps, variant rps)]
print(f"middleware: two servers at once on core 0, each with wrk -t1 -c32 -d{seconds}s on core 1, GET /users/{{id}}")
print(f"{'round':>5} | {'pair (left:right)':<26} | {'left rps':>9} | {'right rps':>9} | {'loss':>7} | cpu-s left/right | core 0 busy")
for (r, pair), sides in sorted(pairs.items()):
    sides.sort()
    (_, lv, lr, lc, busy, idle), (_, rv, rr, rc, _, _) = sides
    # The variant is the side that is not `none` (the control has none on both).
    if rv != "none":
        base, other, variant = lr, rr, rv
    else:
        base, other, variant = rr, lr, lv
    if lv == rv == "none":
        variant = "control"
    share = busy / max(busy + idle, 1)
    loss = 100 * (1 - other / base)
    flag = "" if share > 0.95 else "  (core 0 not saturated: pair not used)"
    print(f"{r + 1:>5} | {pair:<26} | {lr:>9.0f} | {rr:>9.0f} | {loss:>6.2f}% | {lc / 100:.2f}/{rc / 100:.2f} | {100 * share:.0f} %{flag}")
    if share > 0.95:
        losses[variant].append(loss)
        rates[variant].append((base, other))

def med(xs):
    return statistics.median(xs) if xs else float("nan")

print()
print(f"{'variant':<16} | {'pairs':>5} | median loss vs none | min .. max")
for variant in ("control", "noop-layer", "vigil", "vigil-handler", "axum-prometheus"):
    xs = losses[variant]
    if xs:
        print(f"{variant:<16} | {len(xs):>5} | {med(xs):>18.2f}% | {min(xs):.2f} .. {max(xs):.2f} %")
    else:
        print(f"{variant:<16} | {0:>5} | no usable pair")

if losses["vigil"] and losses["axum-prometheus"]:
    none_v = med([b for b, _ in rates["vigil"]]); vigil = med([o for _, o in rates["vigil"]])
    none_a = med([b for b, _ in rates["axum-prometheus"]]); axum = med([o for _, o in rates["axum-prometheus"]])
    print(f"result\tmiddleware: req/s, Vigil layer vs no layer (same core share)\treq/s\thigher\t{none_v:.0f}\t{vigil:.0f}")
    print(f"result\tmiddleware: req/s, Vigil layer vs axum-prometheus (each paired with no layer)\treq/s\thigher\t{axum:.0f}\t{vigil:.0f}")
    print(f"result\tmiddleware: throughput loss vs no layer, axum-prometheus vs Vigil (%)\t%\tlower\t{med(losses['axum-prometheus']):.2f}\t{med(losses['vigil']):.2f}")
if losses["vigil-handler"] and losses["axum-prometheus"]:
    print(f"result\tmiddleware: throughput loss vs no layer, axum-prometheus vs Vigil per handler (%)\t%\tlower\t{med(losses['axum-prometheus']):.2f}\t{med(losses['vigil-handler']):.2f}")
for variant, what in (("control", "control pair none/none"), ("noop-layer", "do-nothing layer")):
    if losses[variant]:
        print(f"result\tmiddleware: loss of the {what} vs no layer (%)\t%\t{med(losses[variant]):.2f}")
EOF
