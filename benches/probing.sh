#!/usr/bin/env bash
# Probing, vigil-exporter vs blackbox_exporter, in one run: PROBE_TARGETS
# (default 2,000) healthy HTTP targets on loopback, each probed every 15 s
# by both probers at the same time.
#
# - Targets: exporter/examples/probe_target_server.rs answers 200 on
#   /t/{id} for any id and counts the requests of each prober by
#   User-Agent, which gives the probes each one really completed.
# - Vigil: release vigil-exporter with PROBE_TARGETS probes (interval 15s,
#   timeout 5s, default expectation and concurrency); a Prometheus job
#   scrapes its /metrics every 15 s, as in production.
# - Peer: prometheus-blackbox-exporter 0.23 (Debian) with an `http_2xx`
#   module, driven the way Prometheus drives it: a real Prometheus 2.42 with
#   PROBE_TARGETS targets, `metrics_path: /probe`, `params: {module:
#   [http_2xx]}` and the usual relabeling (target -> __param_target), every
#   15 s, scrape timeout 5 s. Prometheus spreads the targets over the
#   interval; Vigil starts all probes at once, then every 15 s.
#
# After WARMUP_SECONDS (default 20), it measures REPEATS (default 3)
# consecutive windows of WINDOW_SECONDS (default 45) each. Per window and
# prober: CPU seconds (utime+stime from /proc/PID/stat), probes completed
# (target-side count), probes/s per core = probes / CPU seconds, resident
# memory at the end; and false failures over the whole run: for Vigil the
# growth of sum(probe_failures_total) and the probe_success==0 samples
# Prometheus scraped; for blackbox the probe_success==0 samples and failed
# scrapes (up==0) of its job. Every target is healthy, so every failure is
# false.
#
# Output: a human table and `result` lines (see benches/run). Needs
# prometheus, prometheus-blackbox-exporter, curl, python3, cargo. Everything
# listens on 127.0.0.1 only; every process started is killed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/evaluator/benches/bench_lib.sh"
targets=${PROBE_TARGETS:-2000}
warmup=${WARMUP_SECONDS:-20}
window=${WINDOW_SECONDS:-45}
repeats=${REPEATS:-3}

cd "$root"
# benches/run builds everything once (BENCH_NO_BUILD=1).
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release -q -p vigil-exporter -F cli --bin vigil-exporter --example probe_target_server
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

target_port=$(bench_free_port)
vigil_port=$(bench_free_port)
bb_port=$(bench_free_port)
prom_port=$(bench_free_port)

python3 - "$bench_work" "$targets" "$target_port" "$vigil_port" "$bb_port" <<'EOF'
import sys
work, n, tport, vport, bport = sys.argv[1], int(sys.argv[2]), *sys.argv[3:6]
urls = [f"http://127.0.0.1:{tport}/t/{i}" for i in range(n)]
with open(f"{work}/exporter.yaml", "w") as f:
    f.write(f"listen: 127.0.0.1:{vport}\nprobes:\n")
    for i, u in enumerate(urls):
        f.write(f"  - {{name: t{i}, url: '{u}', interval: 15s, timeout: 5s}}\n")
with open(f"{work}/blackbox.yml", "w") as f:
    f.write("modules:\n  http_2xx:\n    prober: http\n    timeout: 5s\n"
            "    http: {preferred_ip_protocol: ip4}\n")
with open(f"{work}/prom.yml", "w") as f:
    f.write("global: {scrape_interval: 15s, scrape_timeout: 5s}\nscrape_configs:\n")
    f.write(f"  - job_name: vigil\n    static_configs: [{{targets: ['127.0.0.1:{vport}']}}]\n")
    f.write("  - job_name: blackbox\n    metrics_path: /probe\n    params: {module: [http_2xx]}\n"
            "    static_configs:\n      - targets:\n")
    for u in urls:
        f.write(f"        - '{u}'\n")
    f.write("    relabel_configs:\n"
            "      - {source_labels: [__address__], target_label: __param_target}\n"
            "      - {source_labels: [__param_target], target_label: instance}\n"
            f"      - {{target_label: __address__, replacement: '127.0.0.1:{bport}'}}\n")
EOF

bench_spawn "$target_dir/release/examples/probe_target_server" "127.0.0.1:$target_port" \
  >"$bench_work/targets.log" 2>&1
bench_wait_http "http://127.0.0.1:$target_port/counts" 30
bench_spawn env RUST_LOG=warn "$target_dir/release/vigil-exporter" --config "$bench_work/exporter.yaml" \
  >"$bench_work/vigil.log" 2>&1
vigil_pid=$!
bench_spawn prometheus-blackbox-exporter --config.file="$bench_work/blackbox.yml" \
  --web.listen-address="127.0.0.1:$bb_port" >"$bench_work/blackbox.log" 2>&1
bb_pid=$!
bench_wait_http "http://127.0.0.1:$vigil_port/healthz" 60
bench_wait_http "http://127.0.0.1:$bb_port/metrics" 60
bench_start_prometheus "$bench_work/prom.yml" "$bench_work/prom-data" "$prom_port"
started=$(date +%s)
sleep "$warmup"

# cpu_ticks PID: utime + stime of PID in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the command name, which may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }
counts() { curl -fs "http://127.0.0.1:$target_port/counts" | awk '{ printf "%s ", $2 }'; }
vigil_failures() {
  curl -fs "http://127.0.0.1:$vigil_port/metrics" |
    awk '$1 ~ /^probe_failures_total\{/ { s += $2 } END { printf "%d\n", s }'
}

ticks_per_s=$(getconf CLK_TCK)
fail0=$(vigil_failures)
: >"$bench_work/windows"
for ((w = 1; w <= repeats; w++)); do
  read -r v0 b0 _ <<<"$(counts)"
  vt0=$(cpu_ticks "$vigil_pid")
  bt0=$(cpu_ticks "$bb_pid")
  t0=$(date +%s.%N)
  sleep "$window"
  read -r v1 b1 _ <<<"$(counts)"
  vt1=$(cpu_ticks "$vigil_pid")
  bt1=$(cpu_ticks "$bb_pid")
  t1=$(date +%s.%N)
  echo "$w $t0 $t1 $((v1 - v0)) $((vt1 - vt0)) $((b1 - b0)) $((bt1 - bt0)) $(bench_rss_bytes "$vigil_pid") $(bench_rss_bytes "$bb_pid")" \
    >>"$bench_work/windows"
done
fail1=$(vigil_failures)
read -r _ _ other <<<"$(counts)"
elapsed=$(($(date +%s) - started + 15))

# Failures as Prometheus saw them over the whole run, per job: samples of
# probe_success == 0, plus failed scrapes.
q() {
  curl -fs "http://127.0.0.1:$prom_port/api/v1/query" --data-urlencode "query=$1" |
    python3 -c 'import json, sys; r = json.load(sys.stdin)["data"]["result"]; print(int(float(r[0]["value"][1])) if r else 0)'
}
vigil_zero=$(q "sum(count_over_time(probe_success{job=\"vigil\"}[${elapsed}s])) - sum(sum_over_time(probe_success{job=\"vigil\"}[${elapsed}s]))")
bb_zero=$(q "sum(count_over_time(probe_success{job=\"blackbox\"}[${elapsed}s])) - sum(sum_over_time(probe_success{job=\"blackbox\"}[${elapsed}s]))")
bb_down=$(q "sum(count_over_time(up{job=\"blackbox\"}[${elapsed}s])) - sum(sum_over_time(up{job=\"blackbox\"}[${elapsed}s]))")
bb_samples=$(q "sum(count_over_time(probe_success{job=\"blackbox\"}[${elapsed}s]))")

python3 - "$bench_work/windows" "$ticks_per_s" "$targets" "$((fail1 - fail0))" "$vigil_zero" \
  "$bb_zero" "$bb_down" "$bb_samples" "$other" <<'EOF'
import statistics, sys
path, hz, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
vfail, vzero, bzero, bdown, bsamples, other = map(int, sys.argv[4:10])
rows = [list(map(float, l.split())) for l in open(path)]
print(f"probing: {n} targets every 15 s, windows of {rows[0][2] - rows[0][1]:.0f} s")
print(f"{'window':>6} | {'vigil probes':>12} | {'vigil cpu s':>11} | {'vigil probes/cpu-s':>18} | "
      f"{'bb probes':>9} | {'bb cpu s':>8} | {'bb probes/cpu-s':>15} | ratio")
for w, t0, t1, vp, vt, bp, bt, vrss, brss in rows:
    vc, bc = vt / hz, bt / hz
    vr = vp / vc if vc else float("inf")
    br = bp / bc if bc else float("inf")
    print(f"{w:>6.0f} | {vp:>12.0f} | {vc:>11.2f} | {vr:>18.0f} | {bp:>9.0f} | {bc:>8.2f} | {br:>15.0f} | {vr / br:.2f}")
    print(f"result\tprobing: probes per CPU-second\tprobes/cpu-s\thigher\t{br:.1f}\t{vr:.1f}")
    print(f"result\tprobing: probes per second\tprobes/s\thigher\t{bp / (t1 - t0):.1f}\t{vp / (t1 - t0):.1f}")
    print(f"result\tprobing: CPU per probe\tms\tlower\t{1000 * bc / bp if bp else 0:.3f}\t{1000 * vc / vp if vp else 0:.3f}")
    print(f"result\tprobing: resident memory\tMiB\tlower\t{brss / 2**20:.1f}\t{vrss / 2**20:.1f}")
print(f"false failures over the whole run: vigil probe_failures_total +{vfail}, "
      f"probe_success==0 samples {vzero}; blackbox probe_success==0 samples {bzero}, "
      f"failed /probe scrapes {bdown} (of {bsamples}); requests from other agents: {other}")
print(f"result\tprobing: false failures (whole run)\tprobes\tlower\t{bzero + bdown}\t{max(vfail, vzero)}")
EOF
