#!/usr/bin/env bash
# Scrape and memory, Vigil evaluator vs Prometheus 2.42, in one run: both
# scrape the same static 76,000-series exposition (the one
# benches/scrape_parse.rs parses, written by examples/write_exposition.rs)
# every 5 s from a python3 http.server, with no rules. After SCRAPE_SECONDS
# (default 60) of scraping it prints, for each: resident memory, its growth
# over the idle baseline, bytes per series, the median scrape duration,
# throughput (exposition bytes / median scrape duration) and series held.
#
# Usage: evaluator/benches/side_by_side.sh   (from anywhere in the repo)
# Needs `prometheus`, python3, curl and cargo. Builds vigil-evaluator in
# release mode first (not counted in the bounded part; several minutes from
# cold). Everything listens on 127.0.0.1; every process it starts is killed
# on exit (bench_lib.sh). The measured part takes about SCRAPE_SECONDS + 30 s.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
. "$here/bench_lib.sh"
scrape_seconds=${SCRAPE_SECONDS:-60}

cd "$root"
# benches/run builds everything once (BENCH_NO_BUILD=1).
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release -q -p vigil-evaluator --bin vigil-evaluator --example write_exposition
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
vigil_bin=$target_dir/release/vigil-evaluator

mkdir -p "$bench_work/www" "$bench_work/prom-data"
expo=$bench_work/www/metrics
"$target_dir/release/examples/write_exposition" "$expo" >/dev/null
expo_bytes=$(stat -c %s "$expo")

expo_port=$(bench_free_port)
prom_port=$(bench_free_port)
vigil_port=$(bench_free_port)
job=side_by_side

cat >"$bench_work/prom.yml" <<EOF
global: {scrape_interval: 5s, scrape_timeout: 4s}
scrape_configs:
  - job_name: $job
    static_configs: [{targets: ['127.0.0.1:$expo_port']}]
EOF
cat >"$bench_work/vigil.yaml" <<EOF
global: {scrape_interval: 5s, scrape_timeout: 4s, evaluation_interval: 5s}
scrape_configs:
  - job_name: $job
    static_configs: [{targets: ['127.0.0.1:$expo_port']}]
storage:
  database_url: sqlite://$bench_work/vigil.db
  series_limit: 200000
web: {listen: 127.0.0.1:$vigil_port}
EOF

# Both start while nothing serves the exposition yet (their scrapes fail),
# so the baseline is each process idle but fully started.
bench_start_prometheus "$bench_work/prom.yml" "$bench_work/prom-data" "$prom_port"
bench_spawn env -u DATABASE_URL "$vigil_bin" run --config "$bench_work/vigil.yaml" \
  >"$bench_work/vigil.log" 2>&1
vigil_pid=$!
bench_wait_http "http://127.0.0.1:$vigil_port/-/healthy" 60
sleep 2
prom_base=$(bench_rss_bytes "$prom_pid")
vigil_base=$(bench_rss_bytes "$vigil_pid")

bench_spawn bash -c "cd '$bench_work/www' && exec python3 -m http.server --bind 127.0.0.1 $expo_port" \
  >"$bench_work/http.log" 2>&1
bench_wait_http "http://127.0.0.1:$expo_port/metrics" 30
served_at=$(date +%s)

# The time to fetch the file alone (no parsing), to read the scrape
# durations against: five plain downloads.
fetch_times=$(for _ in 1 2 3 4 5; do
  curl -fs -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$expo_port/metrics"
done)

# Vigil exposes only the last scrape's duration (no query API), so poll its
# /metrics every second and keep each distinct value of a successful scrape.
: >"$bench_work/vigil_durations"
deadline=$((SECONDS + scrape_seconds))
last=""
while ((SECONDS < deadline)); do
  page=$(curl -fs "http://127.0.0.1:$vigil_port/metrics" || true)
  up=$(awk '$1 ~ /^vigil_scrape_target_up\{/ { print $2; exit }' <<<"$page")
  d=$(awk '$1 ~ /^vigil_scrape_target_duration_seconds\{/ { print $2; exit }' <<<"$page")
  if [[ $up == 1 && -n $d && $d != "$last" ]]; then
    echo "$d" >>"$bench_work/vigil_durations"
    last=$d
  fi
  sleep 1
done

prom_rss=$(bench_rss_bytes "$prom_pid")
vigil_rss=$(bench_rss_bytes "$vigil_pid")
prom_self_rss=$(bench_metric "http://127.0.0.1:$prom_port/metrics" process_resident_memory_bytes)
prom_series=$(bench_metric "http://127.0.0.1:$prom_port/metrics" prometheus_tsdb_head_series)
vigil_series=$(bench_metric "http://127.0.0.1:$vigil_port/metrics" vigil_store_series)
# Prometheus keeps every scrape's duration: read them all back, only those
# of scrapes after the exposition was served.
curl -fs "http://127.0.0.1:$prom_port/api/v1/query" \
  --data-urlencode "query=scrape_duration_seconds{job=\"$job\"}[10m]" \
  | python3 -c '
import json, sys
since = float(sys.argv[1])
for series in json.load(sys.stdin)["data"]["result"]:
    for t, v in series["values"]:
        if float(t) >= since:
            print(v)' "$served_at" >"$bench_work/prom_durations"

python3 - "$bench_work" "$expo_bytes" "$prom_base" "$prom_rss" "$prom_self_rss" "$prom_series" \
  "$vigil_base" "$vigil_rss" "$vigil_series" "$fetch_times" <<'EOF'
import json, statistics, sys
work, expo_bytes = sys.argv[1], int(sys.argv[2])
prom_base, prom_rss, prom_self_rss, prom_series = map(int, sys.argv[3:7])
vigil_base, vigil_rss, vigil_series = map(int, sys.argv[7:10])
fetch = [float(x) for x in sys.argv[10].split()]
def floats(name):
    with open(f"{work}/{name}") as f:
        return [float(x) for x in f.read().split()]
# A scrape that parsed the exposition takes far longer than a refused
# connection; the ones before the file was served are already filtered by
# time, this also drops any that failed later.
prom_d = [d for d in floats("prom_durations") if d > min(fetch) / 2]
vigil_d = floats("vigil_durations")
if len(prom_d) < 3 or len(vigil_d) < 3:
    sys.exit(f"too few scrapes to compare (Prometheus {len(prom_d)}, Vigil {len(vigil_d)}); "
             f"see the logs in {work}, or raise SCRAPE_SECONDS")
pm, vm = statistics.median(prom_d), statistics.median(vigil_d)
MB = 1e6
rows = [
    ("exposition size (MB)", expo_bytes / MB, expo_bytes / MB, "{:.2f}"),
    ("scrapes measured", len(prom_d), len(vigil_d), "{:.0f}"),
    ("series held", prom_series, vigil_series, "{:.0f}"),
    ("RSS idle baseline (MiB)", prom_base / 2**20, vigil_base / 2**20, "{:.1f}"),
    ("RSS after scraping (MiB, VmRSS)", prom_rss / 2**20, vigil_rss / 2**20, "{:.1f}"),
    ("RSS growth (MiB)", (prom_rss - prom_base) / 2**20, (vigil_rss - vigil_base) / 2**20, "{:.1f}"),
    ("bytes/series (RSS growth / series)", (prom_rss - prom_base) / prom_series,
     (vigil_rss - vigil_base) / vigil_series, "{:.0f}"),
    ("bytes/series (RSS / series)", prom_rss / prom_series, vigil_rss / vigil_series, "{:.0f}"),
    ("median scrape duration (ms)", pm * 1e3, vm * 1e3, "{:.1f}"),
    ("min scrape duration (ms)", min(prom_d) * 1e3, min(vigil_d) * 1e3, "{:.1f}"),
    ("max scrape duration (ms)", max(prom_d) * 1e3, max(vigil_d) * 1e3, "{:.1f}"),
    ("scrape+parse+append (MB/s, median)", expo_bytes / MB / pm, expo_bytes / MB / vm, "{:.1f}"),
]
w = max(len(r[0]) for r in rows)
print(f"{'metric':<{w}} | {'Prometheus':>11} | {'Vigil':>11} | Vigil/Prometheus")
print(f"{'-' * w}-|-{'-' * 11}-|-{'-' * 11}-|-----------------")
for name, p, v, fmt in rows:
    ratio = f"{v / p:.2f}" if p else "-"
    print(f"{name:<{w}} | {fmt.format(p):>11} | {fmt.format(v):>11} | {ratio}")
print()
print(f"Prometheus process_resident_memory_bytes: {prom_self_rss / 2**20:.1f} MiB")
print(f"plain HTTP fetch of the file (curl, median of {len(fetch)}): "
      f"{statistics.median(fetch) * 1e3:.1f} ms")
EOF
