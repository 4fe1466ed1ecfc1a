#!/usr/bin/env python3
"""Writes VictoriaMetrics /api/v1/import JSON lines for the backtest bench:
SERIES series (default 10,000) of the metrics the shipped rules read, one
sample per STEP seconds (default 60) over DAYS days (default 7) ending at
END (Unix seconds, default now rounded down to the step). Mostly healthy
values with deterministic incidents (seeded), so every rule has episodes.

Usage: backtest_data.py [SERIES] [DAYS] [STEP] [END] > import.jsonl
"""
import json
import random
import sys
import time

series_total = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
days = int(sys.argv[2]) if len(sys.argv) > 2 else 7
step = int(sys.argv[3]) if len(sys.argv) > 3 else 60
end = int(sys.argv[4]) if len(sys.argv) > 4 else int(time.time()) // step * step
points = days * 86400 // step
start = end - points * step
timestamps = json.dumps([(start + i * step) * 1000 for i in range(points)], separators=(",", ":"))
rng = random.Random(21)
out = sys.stdout


def incidents(base, bad, per_day, min_len, max_len):
    """`points` values of `base` with about `per_day` runs of `bad` a day;
    a float `bad` is the worst level, each run at 30-100 % of it (so a
    threshold sweep sees fewer incidents as the threshold rises)."""
    values = [base] * points
    count = max(0, int(rng.gauss(per_day * days, 1)))
    for _ in range(count):
        at = rng.randrange(points)
        length = rng.randint(min_len, max_len)
        level = round(bad * rng.uniform(0.3, 1.0), 4) if isinstance(bad, float) else bad
        for i in range(at, min(points, at + length)):
            values[i] = level
    return values


def counter(per_day, min_len, max_len):
    """A counter that grows during incidents only."""
    flags = incidents(0, 1, per_day, min_len, max_len)
    total, values = 0, []
    for f in flags:
        total += f * rng.randint(1, 5)
        values.append(total)
    return values


def emit(labels, values):
    out.write('{"metric":')
    out.write(json.dumps(labels, separators=(",", ":")))
    out.write(',"values":[')
    out.write(",".join(repr(v) if isinstance(v, float) else str(v) for v in values))
    out.write('],"timestamps":')
    out.write(timestamps)
    out.write("}\n")


# Share of the series per metric (the shipped rules' inputs; recorded
# series as a live evaluator would have remote-written them).
shares = [
    ("probe_success", 0.40),
    ("probe_ssl_earliest_cert_expiry", 0.20),
    ("up", 0.02),
    ("route:http_error_ratio:rate5m", 0.10),
    ("route:http_request_duration_seconds:p99_5m", 0.10),
    ("route:http_request_duration_seconds:avg_5m", 0.10),
    ("vigil_datasource_errors_total", 0.04),
    ("vigil_remote_write_samples_dropped_total", 0.04),
]
written = 0
for n, (name, share) in enumerate(shares):
    count = int(series_total * share) if n + 1 < len(shares) else series_total - written - 1
    for i in range(count):
        if name == "probe_success":
            emit({"__name__": name, "job": "probes", "target": f"t{i}", "url": f"https://t{i}.example/"},
                 incidents(1, 0, 0.3, 1, 8))
        elif name == "probe_ssl_earliest_cert_expiry":
            expiry = end + rng.randint(-2, 60) * 86400
            emit({"__name__": name, "job": "probes", "target": f"t{i}", "url": f"https://t{i}.example/"},
                 [expiry] * points)
        elif name == "up":
            emit({"__name__": name, "job": "vigil-exporter", "instance": f"exporter-{i}:9100"},
                 incidents(1, 0, 0.2, 1, 6))
        elif name == "route:http_error_ratio:rate5m":
            emit({"__name__": name, "route": f"/api/r{i}"},
                 [round(v, 4) for v in incidents(0.01, 0.3, 0.5, 2, 15)])
        elif name.startswith("route:http_request_duration_seconds"):
            emit({"__name__": name, "route": f"/api/r{i}"},
                 incidents(0.12, 2.5, 0.3, 5, 30))
        else:
            label = "datasource" if "datasource" in name else "remote_name"
            emit({"__name__": name, "job": "vigil-evaluator", "instance": f"vigil-{i}:9320", label: f"d{i % 3}"},
                 counter(0.3, 3, 20))
        written += 1
emit({"__name__": "business:orders_failure_ratio:rate10m"},
     [round(v, 4) for v in incidents(0.02, 0.2, 0.5, 5, 40)])
written += 1
print(f"{written} series x {points} samples, {start}..{end}", file=sys.stderr)
