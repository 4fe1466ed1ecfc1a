#!/usr/bin/env bash
# Backtest at scale (issue 21): VictoriaMetrics single-node on 127.0.0.1
# loaded with SERIES series (default 10,000) × DAYS days (default 7) at one
# sample a minute (benches/backtest_data.py, imported through
# /api/v1/import), then `vigil-evaluator backtest` of the shipped
# rules/*.yaml over those days, timed by /usr/bin/time -v.
# Goal: under 60 s wall time and 200 MiB peak RSS on the 2-core machine.
#
# Usage: benches/backtest.sh            (SERIES=1000 DAYS=2 for a quick run)
# Needs victoria-metrics, python3, curl, /usr/bin/time; builds the release
# binary unless BENCH_NO_BUILD=1. Every process started is killed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/evaluator/benches/bench_lib.sh"
series=${SERIES:-10000}
days=${DAYS:-7}

cd "$root"
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release -q -p vigil-evaluator --bin vigil-evaluator
vigil_bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/vigil-evaluator

port=$(bench_free_port)
bench_spawn victoria-metrics -storageDataPath="$bench_work/vm" -httpListenAddr=127.0.0.1:"$port" \
  -search.latencyOffset=0s -retentionPeriod=100y -loggerLevel=ERROR >"$bench_work/vm.log" 2>&1
bench_wait_http "http://127.0.0.1:$port/health" 60
vm="http://127.0.0.1:$port"

end=$(( $(date +%s) / 60 * 60 ))
from=$(( end - days * 86400 ))
echo "importing $series series x $days days at 1m into VictoriaMetrics..."
import_start=$SECONDS
python3 benches/backtest_data.py "$series" "$days" 60 "$end" \
  | curl -fsS -X POST -T - "$vm/api/v1/import"   # -T -: streamed, never held whole
curl -fsS "$vm/internal/force_flush" >/dev/null
echo "imported in $(( SECONDS - import_start )) s: $(curl -fsS "$vm/api/v1/series/count" )"

echo "backtest of rules/*.yaml over $days days:"
/usr/bin/time -v -o "$bench_work/time.txt" "$vigil_bin" backtest --datasource "$vm" \
  --from "$from" --to "$end" rules/*.yaml 2>"$bench_work/backtest.err" | tee "$bench_work/backtest.out"
cat "$bench_work/backtest.err" >&2
wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$bench_work/time.txt")
rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$bench_work/time.txt")
user=$(awk -F': ' '/User time/ {print $2}' "$bench_work/time.txt")
sys=$(awk -F': ' '/System time/ {print $2}' "$bench_work/time.txt")
echo "result backtest_wall ${wall} (goal < 60 s)"
echo "result backtest_cpu_seconds ${user} user + ${sys} system (the rest of the wall time is waiting for VictoriaMetrics)"
echo "result backtest_peak_rss_mib $(( rss_kb / 1024 )) (goal < 200 MiB)"
