# Shared by the benches' shell scripts (compare_prometheus.sh,
# side_by_side.sh); source it, do not run it. Gives a scratch directory
# ($bench_work) and kills every process started with bench_spawn on exit,
# so an interrupted bench leaves nothing listening. Everything listens on
# 127.0.0.1 only.

bench_work=$(mktemp -d)
bench_pids=()

bench_cleanup() {
  local pid
  for pid in "${bench_pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${bench_pids[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$bench_work"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# bench_spawn CMD ARGS...: runs CMD in the background and remembers it for
# cleanup; its pid is in $! afterwards, as for a plain `&`.
bench_spawn() {
  "$@" &
  bench_pids+=("$!")
}

# bench_free_port: prints a TCP port free on 127.0.0.1 right now.
bench_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# bench_wait_http URL SECONDS: waits until URL answers 200, or fails.
bench_wait_http() {
  local url=$1 deadline=$((SECONDS + $2))
  until curl -fs -o /dev/null "$url"; do
    if ((SECONDS >= deadline)); then
      echo "no answer from $url after $2 s; see the logs in $bench_work" >&2
      return 1
    fi
    sleep 0.2
  done
}

# bench_start_prometheus CONFIG TSDB_DIR PORT [EXTRA FLAGS...]: starts
# Prometheus on 127.0.0.1:PORT (log in $bench_work/prometheus.log), sets
# $prom_pid and waits until it is ready.
bench_start_prometheus() {
  local config=$1 tsdb=$2 port=$3
  shift 3
  bench_spawn prometheus --config.file="$config" --storage.tsdb.path="$tsdb" \
    --web.listen-address=127.0.0.1:"$port" "$@" >"$bench_work/prometheus.log" 2>&1
  prom_pid=$!
  bench_wait_http "http://127.0.0.1:$port/-/ready" 60
}

# bench_rss_bytes PID: resident memory of PID (VmRSS) in bytes.
bench_rss_bytes() {
  awk '/^VmRSS:/ { printf "%d\n", $2 * 1024 }' "/proc/$1/status"
}

# bench_metric URL NAME: the value of the unlabelled sample NAME on the
# /metrics page at URL, as a plain decimal.
bench_metric() {
  # awk reads to the end: leaving early would fail curl (pipefail).
  curl -fs "$1" | awk -v n="$2" '$1 == n && !done { printf "%.0f\n", $2; done = 1 }'
}
