#!/usr/bin/env bash
# Fleet: Vigil with a datasource side by side with vmalert, both on one
# VictoriaMetrics single-node holding the same workload, both evaluating
# the same 1,000 alerting rules (10 groups of 100, every 15 s; a third of
# them `max by`, a third `rate` over 5m, a third `avg_over_time` over 5m;
# about one in ten fires). Both run at once, each its own process; what is
# measured is each process's own:
#   - CPU seconds per evaluation round (utime + stime over ROUNDS rounds,
#     after two rounds of warm-up),
#   - evaluation wall time of a group (Vigil: `evaluationTime` of
#     /api/v1/rules, averaged over groups; vmalert: its
#     vmalert_iteration_duration_seconds sum/count over the same window),
#   - resident memory at the end (VmRSS), its mean over the measured
#     rounds (VmRSS read every 5 s: a garbage-collected process's resident
#     set swings between collections, so one reading says little) and its
#     peak (VmHWM),
#   - firing alerts (both must agree).
# Goal (issue "Fleet mode"): Vigil's CPU per round at most half of
# vmalert's, its RSS no larger.
#
# Usage: benches/fleet.sh   (FLEET_ROUNDS, default 8: about 3 min in all;
# FLEET_SMAPS=FILE also writes Vigil's /proc/PID/smaps there at the end)
# Output: `result` lines (see benches/run). Needs victoria-metrics and
# vmalert (Debian victoria-metrics), python3, curl, cargo. Loopback only;
# every process started is killed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/evaluator/benches/bench_lib.sh"
for tool in victoria-metrics vmalert python3 curl; do
  command -v "$tool" >/dev/null || {
    echo "fleet bench: $tool is not installed (Debian: victoria-metrics, python3, curl)" >&2
    exit 1
  }
done
cd "$root"
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release -q -p vigil-evaluator --bin vigil-evaluator
vigil_bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/vigil-evaluator
rounds=${FLEET_ROUNDS:-8}
interval=15

# The workload (1,000 shards × 10 instances, a gauge and a counter each:
# 20,000 series) and the rules.
python3 - "$bench_work" <<'PY'
import random, sys
work = sys.argv[1]
rng = random.Random(7)
with open(f"{work}/metrics", "w") as out:
    for shard in range(1000):
        for instance in range(10):
            out.write(f'app_load{{shard="s{shard}",instance="i{instance}"}} {rng.random():.4f}\n')
            out.write(f'app_requests_total{{shard="s{shard}",instance="i{instance}"}} {rng.randint(0, 10**6)}\n')
with open(f"{work}/rules.yaml", "w") as out:
    out.write("groups:\n")
    for group in range(10):
        out.write(f"  - name: fleet-{group}\n    interval: 15s\n    rules:\n")
        for i in range(100):
            shard = group * 100 + i
            kind = shard % 3
            if kind == 0:
                expr = f'max by (shard) (app_load{{shard="s{shard}"}}) > 0.99'
            elif kind == 1:
                expr = f'sum by (shard) (rate(app_requests_total{{shard="s{shard}"}}[5m])) > 100'
            else:
                expr = f'avg_over_time(app_load{{shard="s{shard}"}}[5m]) > 0.9'
            out.write(f"      - alert: Fleet{shard}\n        expr: '{expr}'\n"
                      f"        labels: {{severity: warning}}\n"
                      f"        annotations: {{summary: 'shard {{{{ $labels.shard }}}} at {{{{ $value }}}}'}}\n")
PY

http_port=$(bench_free_port)
bench_spawn python3 -m http.server "$http_port" --bind 127.0.0.1 --directory "$bench_work" \
  >"$bench_work/http.log" 2>&1
vm_port=$(bench_free_port)
cat >"$bench_work/scrape.yml" <<EOF
global: {scrape_interval: 15s}
scrape_configs:
  - job_name: app
    static_configs: [{targets: ['127.0.0.1:$http_port']}]
EOF
bench_spawn victoria-metrics -storageDataPath="$bench_work/vm" -httpListenAddr=127.0.0.1:"$vm_port" \
  -promscrape.config="$bench_work/scrape.yml" -search.latencyOffset=0s -loggerLevel=ERROR \
  >"$bench_work/vm.log" 2>&1
vm=http://127.0.0.1:$vm_port
bench_wait_http "$vm/api/v1/query?query=1" 60
echo "VictoriaMetrics and vmalert: Debian victoria-metrics $(dpkg-query -W -f='${Version}' victoria-metrics 2>/dev/null || echo '(version unknown)')"
# Until the workload is in.
deadline=$((SECONDS + 120))
loaded() {
  curl -fs "$vm/api/v1/query" --data-urlencode 'query=count(app_load)' |
    python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["value"][1] if r else 0)' 2>/dev/null || echo 0
}
until [[ $(loaded) == 10000 ]]; do
  ((SECONDS < deadline)) || { echo "fleet bench: the workload never reached VictoriaMetrics" >&2; exit 1; }
  sleep 1
done

vmalert_port=$(bench_free_port)
bench_spawn vmalert -rule="$bench_work/rules.yaml" -datasource.url="$vm" \
  -notifier.url=http://127.0.0.1:"$(bench_free_port)" -evaluationInterval=${interval}s \
  -httpListenAddr=127.0.0.1:"$vmalert_port" -loggerLevel=ERROR >"$bench_work/vmalert.log" 2>&1
vmalert_pid=$!
vmalert=http://127.0.0.1:$vmalert_port

vigil_port=$(bench_free_port)
cat >"$bench_work/vigil.yaml" <<EOF
global: {evaluation_interval: ${interval}s}
datasource: {url: '$vm'}
rule_files: ['$bench_work/rules.yaml']
web: {listen: '127.0.0.1:$vigil_port'}
EOF
cd "$bench_work"
# FLEET_VIGIL_WRAP: a command to start Vigil under (e.g. valgrind, for
# scripts/symbol-order.sh); unset for the measurement.
# shellcheck disable=SC2086
bench_spawn ${FLEET_VIGIL_WRAP:-} "$vigil_bin" run --config "$bench_work/vigil.yaml" >"$bench_work/vigil.log" 2>&1
vigil_pid=$!
cd "$root"
vigil=http://127.0.0.1:$vigil_port
bench_wait_http "$vigil/api/v1/rules" 60
bench_wait_http "$vmalert/api/v1/alerts" 60

python3 - "$vigil" "$vmalert" "$vigil_pid" "$vmalert_pid" "$rounds" "$interval" <<'PY'
import json, os, re, sys, time, urllib.request
vigil, vmalert, vigil_pid, vmalert_pid, rounds, interval = sys.argv[1:]
rounds, interval = int(rounds), int(interval)
tick = os.sysconf("SC_CLK_TCK")

def cpu(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / tick

def status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")

def get(url):
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.read().decode()

def firing(base):
    alerts = json.loads(get(f"{base}/api/v1/alerts"))["data"]["alerts"]
    return sum(1 for a in alerts if a.get("state") == "firing")

def vmalert_iterations():
    total = count = 0.0
    for line in get(f"{vmalert}/metrics").splitlines():
        m = re.match(r'vmalert_iteration_duration_seconds_(sum|count)\{.*\} (\S+)', line)
        if m:
            if m.group(1) == "sum":
                total += float(m.group(2))
            else:
                count += float(m.group(2))
    return total, count

time.sleep(2 * interval)  # warm-up: two rounds
c0 = (cpu(vigil_pid), cpu(vmalert_pid))
it0 = vmalert_iterations()
vigil_eval = []
rss = []  # (Vigil, vmalert) VmRSS at each reading
deadline = time.time() + rounds * interval
while time.time() < deadline:
    time.sleep(interval / 3)
    rss.append((status(vigil_pid, "VmRSS"), status(vmalert_pid, "VmRSS")))
    groups = json.loads(get(f"{vigil}/api/v1/rules"))["data"]["groups"]
    get(f"{vmalert}/api/v1/rules")  # the same reader load on both
    vigil_eval.extend(g.get("evaluationTime", 0.0) for g in groups)
c1 = (cpu(vigil_pid), cpu(vmalert_pid))
it1 = vmalert_iterations()
vm_eval = (it1[0] - it0[0]) / max(it1[1] - it0[1], 1)
vigil_mean = sum(vigil_eval) / max(len(vigil_eval), 1)
per_round = [(c1[i] - c0[i]) / rounds for i in range(2)]
fire = (firing(vigil), firing(vmalert))
print(f"rounds measured: {rounds} of {interval} s; firing alerts: Vigil {fire[0]}, vmalert {fire[1]}")
rows = [
    ("fleet: CPU seconds per evaluation round (1,000 rules)", "s", "lower", per_round[1], per_round[0]),
    ("fleet: group evaluation wall time (100 rules)", "ms", "lower", vm_eval * 1000, vigil_mean * 1000),
    ("fleet: resident memory at the end", "MiB", "lower", status(vmalert_pid, "VmRSS"), status(vigil_pid, "VmRSS")),
    ("fleet: mean resident memory over the rounds", "MiB", "lower",
     sum(r[1] for r in rss) / len(rss), sum(r[0] for r in rss) / len(rss)),
    ("fleet: peak resident memory", "MiB", "lower", status(vmalert_pid, "VmHWM"), status(vigil_pid, "VmHWM")),
    ("fleet: firing alerts", "alerts", "equal", fire[1], fire[0]),
]
def rss_parts(pid):
    parts = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key = line.split(":")[0]
            if key in ("Rss", "Anonymous", "Shared_Clean", "Private_Clean", "Private_Dirty"):
                parts[key] = int(line.split()[1]) / 1024
    return ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
print(f"resident memory, MiB: Vigil {rss_parts(vigil_pid)}; vmalert {rss_parts(vmalert_pid)}")
if os.environ.get("FLEET_SMAPS"):  # Vigil's mappings, for a closer look
    with open(f"/proc/{vigil_pid}/smaps") as f, open(os.environ["FLEET_SMAPS"], "w") as out:
        out.write(f.read())
for name, unit, better, peer, ours in rows:
    print(f"result\t{name}\t{unit}\t{better}\t{peer:.3f}\t{ours:.3f}")
PY
