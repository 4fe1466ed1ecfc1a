"""Target and webhook receiver of the notification-path bench
(benches/notify_latency.sh), in one process so both use the same clock.

Serves /metrics with one gauge per trial, `bench_flag{trial="K"}`, all 0 at
first. Trial K sets its gauge to 1 and records the moment the target next
*receives a scrape* (the scrape that carries the crossing sample: the
evaluator stamps the sample with that scrape's start); the webhook receiver
(POST /webhook, Alertmanager's webhook JSON) records when the firing
notification for trial K arrives. Latency = arrival - that scrape moment.
One alert group per trial (group_by: [trial]) keeps trials independent.

Usage: notify_latency.py PORT TRIALS READY_URL. Prints one line per trial
and a final JSON line {"latencies_ms": [...], "missing": N}.
"""

import json
import random
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, trials, ready_url = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
lock = threading.Condition()
flipped = [False] * trials
crossing_scrape = [None] * trials  # time of the first scrape that saw 1
arrival = [None] * trials


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        now = time.time()
        with lock:
            lines = ["# TYPE bench_flag gauge"]
            for k in range(trials):
                if flipped[k] and crossing_scrape[k] is None:
                    crossing_scrape[k] = now
                lines.append(f'bench_flag{{trial="{k}"}} {1 if flipped[k] else 0}')
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        now = time.time()
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"{}")
        with lock:
            for alert in payload.get("alerts", []):
                trial = alert.get("labels", {}).get("trial")
                if alert.get("status") == "firing" and trial is not None:
                    k = int(trial)
                    if 0 <= k < trials and arrival[k] is None:
                        arrival[k] = now
            lock.notify_all()
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()

deadline = time.time() + 60
while True:
    try:
        with urllib.request.urlopen(ready_url, timeout=2) as r:
            if r.status == 200:
                break
    except OSError:
        pass
    if time.time() > deadline:
        sys.exit(f"the evaluator did not become ready at {ready_url} within 60 s")
    time.sleep(0.2)
time.sleep(2)

# Random gaps put the flips at every phase of the scrape and evaluation
# ticks, so the spread covers the worst case as well as the best.
rng = random.Random(8)
latencies, missing = [], 0
for k in range(trials):
    with lock:
        flipped[k] = True
        ok = lock.wait_for(lambda: arrival[k] is not None, timeout=10)
        if ok and crossing_scrape[k] is not None:
            ms = (arrival[k] - crossing_scrape[k]) * 1000
            latencies.append(ms)
            print(f"trial {k}: scrape seen at {crossing_scrape[k]:.3f}, notification {ms:.0f} ms later", flush=True)
        else:
            missing += 1
            print(f"trial {k}: no notification within 10 s", flush=True)
    time.sleep(rng.uniform(0.3, 1.3))
server.shutdown()
print(json.dumps({"latencies_ms": latencies, "missing": missing}), flush=True)
