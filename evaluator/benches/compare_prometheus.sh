#!/usr/bin/env bash
# Runs the rule group of benches/promql_rules.rs in a real Prometheus over
# the same synthetic 76k series, for comparison with
# `cargo bench -p vigil-evaluator --bench promql_rules`.
# Needs `prometheus`, `promtool` and python3; listens on 127.0.0.1 only and
# stops Prometheus after SAMPLES (default 6) x 10 s (bench_lib.sh kills it on
# exit). Prints Prometheus' own group duration every 10 s.
set -euo pipefail
. "$(dirname "$0")/bench_lib.sh"
cd "$bench_work"
python3 - <<'EOF'
import time
now = int(time.time()) - 5
start = now - 600
statuses = ["200","201","204","301","400","404","429","500","502","503"]
methods = ["GET","POST","PUT","DELETE"]
les = ["0.005","0.01","0.025","0.05","0.1","0.25","0.5","1","2.5","5","10","+Inf"]
fams = {"up": [], "http_requests_total": [], "http_request_duration_seconds_bucket": []}
count, inst, k, n = 0, 0, 0, 76000
while count < n:
    job, ins = f"svc-{inst % 50}", f"10.0.{inst // 250}.{inst % 250}:9310"
    fams["up"].append((f'up{{job="{job}",instance="{ins}"}}', True, k)); count += 1; k += 1
    for m in methods:
        for s in statuses:
            if count < n:
                fams["http_requests_total"].append((f'http_requests_total{{job="{job}",instance="{ins}",method="{m}",status="{s}"}}', False, k)); count += 1; k += 1
    for le in les:
        if count < n:
            fams["http_request_duration_seconds_bucket"].append((f'http_request_duration_seconds_bucket{{job="{job}",instance="{ins}",le="{le}"}}', False, k)); count += 1; k += 1
    inst += 1
with open("data.om", "w") as f:
    for fam, series in fams.items():
        f.write(f"# TYPE {fam} gauge\n")
        for name, is_up, kk in series:
            for i in range(41):
                f.write(f"{name} {1 if is_up else i * (kk % 7 + 1)} {start + i * 15}\n")
    f.write("# EOF\n")
EOF
promtool tsdb create-blocks-from openmetrics data.om ./data >/dev/null
rm data.om
cat > rules.yml <<'EOF'
groups:
  - name: bench
    interval: 5s
    rules:
      - record: r1
        expr: sum by (job) (rate(http_requests_total{status=~"5.."}[5m])) / sum by (job) (rate(http_requests_total[5m])) > 0.05
      - record: r2
        expr: histogram_quantile(0.99, sum by (job, le) (rate(http_request_duration_seconds_bucket[5m])))
      - record: r3
        expr: up == 0
      - record: r4
        expr: sum by (instance) (rate(http_requests_total[5m]))
      - record: r5
        expr: max_over_time(up[10m]) - min_over_time(up[10m])
EOF
printf 'global:\n  evaluation_interval: 5s\nrule_files: [rules.yml]\n' > prom.yml
port=${PORT:-19091}
bench_start_prometheus prom.yml ./data "$port" --storage.tsdb.retention.time=10y
for _ in $(seq "${SAMPLES:-6}"); do
  sleep 10
  curl -s 127.0.0.1:"$port"/metrics | grep '^prometheus_rule_group_last_duration_seconds' || true
done
