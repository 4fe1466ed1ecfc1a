"""Driver of the Alertmanager side-by-side bench (benches/alertmanager.sh):
posts ALERTS alerts to one Alertmanager-compatible server (Vigil's
evaluator or Alertmanager 0.25, both configured by the script with the same
route, receiver and 100 inhibit rules), is the webhook receiver of its
notifications, and measures

- post to last notification: from the start of the first POST to the
  arrival of the last alert the webhook is owed (every alert that is not
  inhibited), with the arrival of each alert taken once;
- `GET /api/v2/alerts` latency once every alert is in: the median and the
  worst of GETS listings, each a fresh request reading the whole body.
  A listing that has not answered within GET_TIMEOUT seconds is a result
  (timed out, counted as slower than any answer), not an error: the run
  goes on. After GIVE_UP timeouts, or once GET_BUDGET seconds of listings
  have passed, the remaining listings are not tried (a server that is
  still working on an abandoned listing would only time out again), so
  the listings take at most GET_BUDGET + GET_TIMEOUT seconds.

The alerts: half `severity=critical`, spread over 100 teams (one inhibit
rule per team: its critical alerts mute `severity=warning` alerts with the
same `instance`), half warnings; every other warning shares its instance
with a critical alert, so half of the warnings are inhibited. Every warning
matches the target side of all 100 rules, the case where checking
inhibition per alert against every source is slow.

Usage: alertmanager_flood.py NAME API_URL HOOK_PORT. Prints progress and
one JSON line {"name", "post_to_last_ms", "get_ms" (each listing tried, null
when it timed out), "get_ms_median", "get_ms_max" (over the listings tried,
a timed-out one counting as Infinity), "gets_timed_out", "gets_skipped",
"get_timeout_s", "alerts_listed" (null when no listing answered),
"notified", "owed", "inhibited_notified"}. post_to_last_ms is Infinity when
not every owed alert arrived within WAIT seconds.

Bounded: posting at most POST_BUDGET s (else it stops with an error), the
wait WAIT s, the listings GET_BUDGET + GET_TIMEOUT s.
"""

import json
import socket
import statistics
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ALERTS = 10_000
TEAMS = 100
BATCH = 500
GETS = 7
# Longest wait for the owed notifications (both servers run with
# resolve_timeout 1h, so nothing resolves meanwhile).
WAIT = 180
# Longest one GET /api/v2/alerts is waited for; then it counts as timed out.
GET_TIMEOUT = 60
# No listing is started after GET_BUDGET s of listings or GIVE_UP timeouts.
GET_BUDGET = 120
GIVE_UP = 2
# Longest the posting may take, 429 refusals and their waits included.
POST_BUDGET = 60

name, api, hook_port = sys.argv[1], sys.argv[2].rstrip("/"), int(sys.argv[3])

lock = threading.Lock()
arrived = {}  # series -> first arrival time (firing)


class Hook(BaseHTTPRequestHandler):
    def do_POST(self):
        now = time.time()
        length = int(self.headers.get("Content-Length", "0"))
        payload = json.loads(self.rfile.read(length) or b"{}")
        with lock:
            for alert in payload.get("alerts", []):
                if alert.get("status") == "firing":
                    arrived.setdefault(alert["labels"]["series"], now)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def alerts():
    out = []
    for i in range(ALERTS):
        critical = i % 2 == 0
        # Critical i and warning i+1 share an instance when i % 4 == 0:
        # half of the warnings are inhibited.
        instance = f"host{i // 2}" if (i % 4 in (0, 1)) else f"host{i}"
        out.append(
            {
                "labels": {
                    "alertname": "Critical" if critical else "Warning",
                    "severity": "critical" if critical else "warning",
                    "team": f"t{(i // 2) % TEAMS}",
                    "instance": instance,
                    "series": f"s{i}",
                },
                "annotations": {"summary": f"bench alert {i}"},
            }
        )
    return out


def owed(batch):
    critical_instances = {a["labels"]["instance"] for a in batch if a["labels"]["severity"] == "critical"}
    return {
        a["labels"]["series"]
        for a in batch
        if a["labels"]["severity"] == "critical" or a["labels"]["instance"] not in critical_instances
    }


def request(method, url, body=None, timeout=GET_TIMEOUT):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def timed_out(error):
    """Whether `error` (from urlopen or reading the body) is a timeout."""
    if isinstance(error, urllib.error.URLError):
        error = error.reason
    return isinstance(error, (TimeoutError, socket.timeout))


def ms(t):
    """A listing time for people: a timeout counts as Infinity."""
    return f"over {GET_TIMEOUT} s (timed out)" if t == float("inf") else f"{t:.0f} ms"


server = ThreadingHTTPServer(("127.0.0.1", hook_port), Hook)
threading.Thread(target=server.serve_forever, daemon=True).start()

all_alerts = alerts()
want = owed(all_alerts)
started = time.time()
for k in range(0, ALERTS, BATCH):
    batch = all_alerts[k : k + BATCH]
    while True:
        if time.time() - started > POST_BUDGET:
            sys.exit(f"{name}: posting took over {POST_BUDGET} s, stopped at batch {k // BATCH}")
        try:
            status, _ = request("POST", f"{api}/api/v2/alerts", batch)
        except urllib.error.HTTPError as e:
            if e.code != 429:
                raise
            wait = int(e.headers.get("Retry-After", "1"))
            print(f"{name}: batch {k // BATCH} refused (429), again in {wait} s", flush=True)
            time.sleep(wait)
            continue
        break
posted = time.time()
print(f"{name}: {ALERTS} alerts posted in {(posted - started) * 1000:.0f} ms", flush=True)

deadline = time.time() + WAIT
while time.time() < deadline:
    with lock:
        got = want & arrived.keys()
    if len(got) == len(want):
        break
    time.sleep(0.1)
with lock:
    got_times = [arrived[s] for s in want if s in arrived]
    extra = len(arrived.keys() - want)
if len(got_times) < len(want):
    print(f"{name}: only {len(got_times)} of {len(want)} owed alerts notified within {WAIT} s", flush=True)
# Not all owed alerts notified: the last one is later than the wait.
post_to_last = (max(got_times) - started) * 1000 if len(got_times) == len(want) else float("inf")
print(
    f"{name}: {len(got_times)}/{len(want)} owed alerts notified, {extra} inhibited ones notified; "
    "post to last notification "
    + (f"{post_to_last:.0f} ms" if len(got_times) == len(want) else f"not reached within {WAIT} s"),
    flush=True,
)

times = []  # ms per listing tried, None when it timed out
listed = None
gets_started = time.time()
for i in range(GETS):
    if times.count(None) >= GIVE_UP or time.time() - gets_started > GET_BUDGET:
        break
    t0 = time.time()
    try:
        status, body = request("GET", f"{api}/api/v2/alerts", timeout=GET_TIMEOUT)
    except Exception as e:  # noqa: BLE001 - only timeouts are results
        if not timed_out(e):
            raise
        times.append(None)
        print(f"{name}: GET /api/v2/alerts {i + 1} timed out after {GET_TIMEOUT} s", flush=True)
        continue
    times.append((time.time() - t0) * 1000)
    listed = len(json.loads(body))
skipped = GETS - len(times)
timeouts = times.count(None)
# A timed-out listing is slower than any answer: it counts as Infinity.
ranked = [float("inf") if t is None else t for t in times]
median = statistics.median(ranked)
worst = max(ranked)
print(
    f"{name}: GET /api/v2/alerts ({'none answered' if listed is None else f'{listed} alerts'}): "
    f"median {ms(median)}, worst {ms(worst)} over {len(times)} tried "
    f"({timeouts} timed out after {GET_TIMEOUT} s, {skipped} not tried): "
    f"{[round(t) if t is not None else 'timeout' for t in times]}",
    flush=True,
)
server.shutdown()
print(
    json.dumps(
        {
            "name": name,
            "post_to_last_ms": post_to_last,
            "get_ms": times,
            "get_ms_median": median,
            "get_ms_max": worst,
            "gets_timed_out": timeouts,
            "gets_skipped": skipped,
            "get_timeout_s": GET_TIMEOUT,
            "alerts_listed": listed,
            "notified": len(got_times),
            "owed": len(want),
            "inhibited_notified": extra,
        }
    ),
    flush=True,
)
