#!/usr/bin/env bash
# Bounded fuzzing of every parser of untrusted input: builds the cargo-fuzz
# targets in fuzz/ (libFuzzer, no sanitizer: the crates forbid unsafe code)
# and runs each for a fixed time, then prints per target the executions,
# the corpus size and whether anything crashed, hung or ran out of memory.
#
# Usage: benches/fuzz.sh [--seconds N] [--only t1,t2]
#
# Targets (fuzz/fuzz_targets/):
#   parse_exposition  scrape bodies, text format and OpenMetrics
#   promql_eval       PromQL parse, then instant and range evaluation
#   rule_file         rule files (Prometheus format + cooldown)
#   notify_config     notification configs (Alertmanager format)
#   go_template       rule annotation templates, parsed and expanded
#   alertmanager_api  POST /api/v2/alerts and /api/v2/silences bodies
#
# --seconds N (default 60) per target. Corpora live in fuzz/corpus/TARGET
# (not committed), seeded on first use from the shipped rules and examples;
# a crash leaves its input in fuzz/artifacts/TARGET. Needs cargo-fuzz
# (`cargo install cargo-fuzz`); the stable toolchain is enough
# (RUSTC_BOOTSTRAP for libFuzzer's flags). Nothing here runs in
# `cargo test` or CI.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"

seconds=60
only=""
while (($#)); do
  case $1 in
    --seconds)
      seconds=${2:?--seconds needs a number}
      shift
      ;;
    --only)
      only=${2:?--only needs a comma-separated list of targets}
      shift
      ;;
    -h | --help)
      sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "benches/fuzz.sh: unknown argument $1 (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done
if ! [[ $seconds =~ ^[1-9][0-9]*$ ]]; then
  echo "benches/fuzz.sh: --seconds must be a positive whole number, not $seconds" >&2
  exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "benches/fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
  exit 2
fi
targets=(parse_exposition promql_eval rule_file notify_config go_template alertmanager_api)
if [[ -n $only ]]; then
  IFS=, read -r -a targets <<<"$only"
fi

# First inputs, from what the repository ships.
seed() {
  local target=$1 dir=corpus/$1
  mkdir -p "$dir"
  [[ -n $(ls -A "$dir") ]] && return 0
  case $target in
    rule_file) cp "$root"/rules/*.yaml "$root"/examples/demo-rules.yaml "$dir"/ ;;
    notify_config) cp "$root"/examples/notify*.yaml "$dir"/ ;;
    promql_eval | go_template)
      local key=expr
      [[ $target == go_template ]] && key='(summary|description)'
      grep -hE "^\s+$key:" "$root"/rules/*.yaml | sed -E "s/^\s+$key: *//; s/^['\"]//; s/['\"]$//" |
        awk -v d="$dir" '{ f = d "/seed" NR; print > f; close(f) }'
      ;;
    alertmanager_api)
      printf '[{"labels":{"alertname":"A","job":"x"},"annotations":{"summary":"s"},"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-01T01:00:00Z","generatorURL":"http://g"}]' >"$dir/alerts"
      printf '{"matchers":[{"name":"job","value":"x.*","isRegex":true,"isEqual":true}],"startsAt":"2026-01-01T00:00:00Z","endsAt":"2026-01-02T00:00:00Z","createdBy":"me","comment":"c"}' >"$dir/silence"
      ;;
    parse_exposition) printf '# HELP up Up.\n# TYPE up gauge\nup{job="a"} 1 1700000000000\n' >"$dir/text" ;;
  esac
}

echo "building the fuzz targets (release, coverage-instrumented)"
RUSTC_BOOTSTRAP=1 cargo fuzz build -s none
# Per target: the inputs in its corpus before the run (the seeds, on a
# first run), the seconds it ran (measured), libFuzzer's executions and
# the inputs in the corpus after.
printf '%-18s %8s %8s %12s %8s  %s\n' target before seconds executions after result
failed=0
for t in "${targets[@]}"; do
  seed "$t"
  before=$(ls "corpus/$t" | wc -l)
  log=$(mktemp)
  start=$SECONDS
  if RUSTC_BOOTSTRAP=1 cargo fuzz run -s none "$t" "corpus/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result="FAILED: $(grep -m1 -E 'ERROR|panicked|deadly signal|Timeout|out-of-memory' "$log" || tail -1 "$log")"
    failed=1
  fi
  ran=$((SECONDS - start))
  execs=$(grep -m1 'stat::number_of_executed_units' "$log" | awk '{print $2}')
  printf '%-18s %8s %8s %12s %8s  %s\n' "$t" "$before" "$ran" "${execs:-?}" "$(ls "corpus/$t" | wc -l)" "$result"
  [[ $result == ok ]] || tail -30 "$log" | sed 's/^/    /'
  rm -f "$log"
done
exit $failed
