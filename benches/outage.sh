#!/usr/bin/env bash
# Outages at full length (issue "Fleet mode"): the two outage tests of the
# suite, run with each database down for 60 s instead of a few seconds.
#   - rules::datasource: the datasource (Prometheus, then VictoriaMetrics)
#     is down for VIGIL_OUTAGE_SECS: the firing alert is not resolved, the
#     rules say why, and recovery sends no second notification;
#   - remote_write: the remote-write receiver (Prometheus) is down for
#     VIGIL_OUTAGE_SECS: afterwards every second of the run has its sample
#     and nothing was dropped.
# Usage: benches/outage.sh [seconds]   (default 60)
# Needs prometheus and victoria-metrics on PATH; 127.0.0.1 only.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-60}
start=$(date +%s)
VIGIL_OUTAGE_SECS=$seconds VIGIL_REQUIRE_EXTERNAL_TOOLS=1 cargo test -p vigil-evaluator --test evaluator -- \
  --exact --nocapture \
  rules::datasource::rules_on_a_datasource_fire_and_survive_its_outage \
  remote_write::every_sample_arrives_after_the_receiver_was_down
echo "outage of ${seconds}s: both scenarios passed in $(( $(date +%s) - start ))s"
