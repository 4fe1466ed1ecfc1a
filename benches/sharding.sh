#!/usr/bin/env bash
# Rule-group sharding at the issue's size (issue "Fleet mode", item 3): the
# suite's sharding test with 300 rule groups instead of 24 — three replicas
# on one Postgres, kill -9 one, start a fourth; every group held by one live
# replica, no evaluation slot written twice, no gap over two intervals in any
# group's series in VictoriaMetrics, every alert notified once.
# Prints the measured failover time and the longest gap of a group.
# Usage: benches/sharding.sh [groups]   (default 300)
# Needs Postgres at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)
# and victoria-metrics (Debian victoria-metrics).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
groups=${1:-300}
export DATABASE_URL=${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
start=$(date +%s)
SHARDING_GROUPS=$groups VIGIL_REQUIRE_EXTERNAL_TOOLS=1 cargo test -p vigil-evaluator --test evaluator -- \
  --exact --nocapture \
  history::sharding::groups_move_on_kill_and_join_without_double_evaluation_or_renotification
echo "sharding with ${groups} groups: passed in $(( $(date +%s) - start ))s"
