#!/usr/bin/env bash
# Alertmanager side by side: 10,000 posted alerts and 100 inhibit rules,
# the same route, receiver and rules for both, through the release
# vigil-evaluator and Alertmanager 0.25 (Debian's prometheus-alertmanager),
# one after the other (never both at once, so neither slows the other).
#
# benches/alertmanager_flood.py posts the alerts (batches of 500), is the
# webhook receiver, and measures for each server: the time from the first
# POST to the last notification the webhook is owed (every alert that is
# not inhibited; at most 180 s, "inf" when not all arrived by then), and
# `GET /api/v2/alerts` once every alert is in (median and worst of 7; a
# listing that does not answer within 60 s counts as timed out, "inf" in
# the figures, and after two timeouts the rest are not tried). Goal
# (issue 16): Vigil's GET under 100 ms where Alertmanager takes seconds
# (Alertmanager issue 3932: each listed alert is checked against every
# inhibition source). Each half is cut off after $HALF_LIMIT s (default
# 480; the driver bounds itself to less), so the whole run stays under
# about 17 min; a half that fails or is cut off does not stop the other.
#
# Output: the driver's lines and `result` lines (see benches/run).
# Needs python3, curl, cargo, prometheus-alertmanager. Loopback only; every
# process started is killed on exit.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
. "$root/evaluator/benches/bench_lib.sh"
am_bin=${ALERTMANAGER:-$(command -v prometheus-alertmanager || command -v alertmanager || true)}
if [[ -z $am_bin ]]; then
  echo "alertmanager bench: prometheus-alertmanager is not installed (Debian: prometheus-alertmanager)" >&2
  exit 1
fi

cd "$root"
# benches/run builds everything once (BENCH_NO_BUILD=1).
[[ -n ${BENCH_NO_BUILD:-} ]] || cargo build --release -q -p vigil-evaluator --bin vigil-evaluator
half_limit=${HALF_LIMIT:-480}
vigil_bin=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/vigil-evaluator

# The notification config both servers run: one group per team, sent
# quickly, and one inhibit rule per team.
notify() {
  local hook_port=$1
  cat <<EOF
global:
  resolve_timeout: 1h
route:
  receiver: hook
  group_by: [team]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$hook_port/hook
        send_resolved: false
inhibit_rules:
EOF
  for ((t = 0; t < 100; t++)); do
    cat <<EOF
  - source_matchers: ['severity="critical"', 'team="t$t"']
    target_matchers: ['severity="warning"']
    equal: [instance]
EOF
  done
}

# Alertmanager 0.25, not clustered.
am_port=$(bench_free_port)
am_hook=$(bench_free_port)
mkdir -p "$bench_work/am"
notify "$am_hook" >"$bench_work/am/alertmanager.yml"
bench_spawn "$am_bin" --config.file="$bench_work/am/alertmanager.yml" \
  --storage.path="$bench_work/am/data" --web.listen-address=127.0.0.1:"$am_port" \
  --cluster.listen-address= --log.level=warn >"$bench_work/am/alertmanager.log" 2>&1
am_pid=$!
bench_wait_http "http://127.0.0.1:$am_port/-/ready" 60
echo "Alertmanager: $("$am_bin" --version 2>&1 | head -n 1)"
# A failed half leaves no JSON line; the summary says so.
timeout -k 5 "$half_limit" python3 "$root/benches/alertmanager_flood.py" alertmanager \
  "http://127.0.0.1:$am_port" "$am_hook" | tee "$bench_work/am.out" ||
  echo "alertmanager half failed or was cut off after $half_limit s (exit ${PIPESTATUS[0]})"
kill "$am_pid" 2>/dev/null || true
wait "$am_pid" 2>/dev/null || true

# Vigil: the evaluator with nothing to scrape and no rules, only the API.
vigil_port=$(bench_free_port)
vigil_hook=$(bench_free_port)
mkdir -p "$bench_work/vigil"
notify "$vigil_hook" >"$bench_work/vigil/notify.yaml"
cat >"$bench_work/vigil/vigil.yaml" <<EOF
scrape_configs: []
rule_files: []
notify_config_file: notify.yaml
storage:
  database_url: sqlite://$bench_work/vigil/vigil.db
web: {listen: 127.0.0.1:$vigil_port}
EOF
bench_spawn env -u DATABASE_URL RUST_LOG=warn "$vigil_bin" run --config "$bench_work/vigil/vigil.yaml" \
  >"$bench_work/vigil/vigil.log" 2>&1
vigil_pid=$!
bench_wait_http "http://127.0.0.1:$vigil_port/-/ready" 60
timeout -k 5 "$half_limit" python3 "$root/benches/alertmanager_flood.py" vigil \
  "http://127.0.0.1:$vigil_port" "$vigil_hook" | tee "$bench_work/vigil.out" ||
  echo "vigil half failed or was cut off after $half_limit s (exit ${PIPESTATUS[0]})"
kill "$vigil_pid" 2>/dev/null || true
wait "$vigil_pid" 2>/dev/null || true

# One `result` line per figure; "inf" for a wait or listing that did not
# end in time. Exits non-zero (no result lines) when a half gave no result.
python3 - "$bench_work/am.out" "$bench_work/vigil.out" <<'EOF'
import json, sys


def last_json(path):
    for line in reversed(open(path).read().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    return None


am, vigil = (last_json(p) for p in sys.argv[1:3])
missing = [n for n, who in (("alertmanager", am), ("vigil", vigil)) if who is None]
if missing:
    sys.exit(f"no result from: {', '.join(missing)} (see the lines above)")
for who in (am, vigil):
    if who["notified"] < who["owed"]:
        print(f"{who['name']}: {who['owed'] - who['notified']} owed alerts never notified")
    if who["gets_timed_out"]:
        print(
            f"{who['name']}: {who['gets_timed_out']} GET /api/v2/alerts timed out after "
            f"{who['get_timeout_s']} s, {who['gets_skipped']} not tried"
        )
print(f"result\talertmanager: GET /api/v2/alerts median, 10k alerts, 100 inhibit rules\tms\tlower\t{am['get_ms_median']:.1f}\t{vigil['get_ms_median']:.1f}")
print(f"result\talertmanager: GET /api/v2/alerts worst of 7\tms\tlower\t{am['get_ms_max']:.1f}\t{vigil['get_ms_max']:.1f}")
print(f"result\talertmanager: GET /api/v2/alerts timed out (60 s)\tcount\tlower\t{am['gets_timed_out']}\t{vigil['gets_timed_out']}")
print(f"result\talertmanager: post to last owed notification\tms\tlower\t{am['post_to_last_ms']:.0f}\t{vigil['post_to_last_ms']:.0f}")
print(f"result\talertmanager: owed alerts not notified\tcount\tlower\t{am['owed'] - am['notified']}\t{vigil['owed'] - vigil['notified']}")
EOF
