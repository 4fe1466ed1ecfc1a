// Vigil dashboard: polls the evaluator's HTTP API (Prometheus /api/v1,
// Alertmanager /api/v2, Vigil /api/vigil/v1) and renders it as tables.
//
// Every string from the API reaches the page as a text node or an
// attribute value, never as markup. A panel whose endpoint this evaluator
// does not serve (404) says "not available" instead of failing.
"use strict";

(function () {
  const REFRESH_DEFAULT_SECONDS = 5;
  const HISTORY_WINDOW_MS = 24 * 3600 * 1000;
  const NOISE_DAYS = 7;
  const TOKEN_KEY = "vigil.token";
  const USER_KEY = "vigil.user";
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ---- small helpers -----------------------------------------------------

  const $ = (id) => document.getElementById(id);

  // Builds an element: attrs are set with setAttribute (never handlers or
  // markup); children are nodes or strings (made text nodes).
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG_NS, tag);
    setAttrs(node, attrs);
    append(node, children);
    return node;
  }

  function setAttrs(node, attrs) {
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (/^on/i.test(name)) throw new Error("event handler attributes are not allowed");
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }

  function append(node, children) {
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
    }
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function storageGet(store, key) {
    try {
      return store.getItem(key) || "";
    } catch (_) {
      return "";
    }
  }

  function storageSet(store, key, value) {
    try {
      if (value) store.setItem(key, value);
      else store.removeItem(key);
    } catch (_) {
      // Storage may be disabled; the value then lasts for this page only.
    }
  }

  // Whether two label sets name the same alert: one holds the other (the
  // Alertmanager API shows rule alerts with the external labels added).
  function sameAlert(a, b) {
    const [small, big] = Object.keys(a || {}).length <= Object.keys(b || {}).length ? [a || {}, b || {}] : [b || {}, a || {}];
    if (small.alertname !== big.alertname) return false;
    return Object.keys(small).every((k) => big[k] === small[k]);
  }

  // Of `candidates` (objects with .labels), the one naming the same alert
  // as `labels` with the most labels in common; or undefined.
  function findSame(labels, candidates) {
    let best;
    let bestSize = -1;
    for (const c of candidates) {
      const size = Object.keys(c.labels || {}).length;
      if (sameAlert(labels, c.labels) && size > bestSize) {
        best = c;
        bestSize = size;
      }
    }
    return best;
  }

  // Alert label sets are compared by this key (sorted name=value pairs).
  function labelKey(labels) {
    return JSON.stringify(Object.keys(labels || {}).sort().map((k) => [k, labels[k]]));
  }

  function parseTime(s) {
    if (!s || s.startsWith("0001-01-01")) return null;
    const t = Date.parse(s);
    return Number.isNaN(t) ? null : t;
  }

  function formatDuration(ms) {
    if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
    let s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + "s";
    const parts = [];
    const d = Math.floor(s / 86400);
    s -= d * 86400;
    const h = Math.floor(s / 3600);
    s -= h * 3600;
    const m = Math.floor(s / 60);
    s -= m * 60;
    if (d) parts.push(d + "d");
    if (h) parts.push(h + "h");
    if (m && !d) parts.push(m + "m");
    if (s && !d && !h) parts.push(s + "s");
    return parts.join(" ");
  }

  // A <time> showing "3m 5s ago", with the exact time as its tooltip.
  function timeAgo(ms) {
    if (ms === null) return el("span", { class: "muted" }, "never");
    const iso = new Date(ms).toISOString();
    return el("time", { datetime: iso, title: new Date(ms).toLocaleString(), "data-ago": ms },
      formatDuration(Date.now() - ms) + " ago");
  }

  // Updates every "… ago" and "(ongoing)" text, so rows whose data did not
  // change are kept as they are (a focused button stays focused).
  function updateClocks() {
    const now = Date.now();
    for (const node of document.querySelectorAll("[data-ago]")) {
      node.textContent = formatDuration(now - Number(node.getAttribute("data-ago"))) + " ago";
    }
    for (const node of document.querySelectorAll("[data-ongoing-since]")) {
      node.textContent = formatDuration(now - Number(node.getAttribute("data-ongoing-since"))) + " (ongoing)";
    }
  }

  function timeAt(ms) {
    if (ms === null) return el("span", { class: "muted" }, "—");
    const d = new Date(ms);
    return el("time", { datetime: d.toISOString(), title: d.toISOString() }, d.toLocaleString());
  }

  function labelList(labels, skip) {
    const list = el("ul", { class: "labels" });
    for (const name of Object.keys(labels || {}).sort()) {
      if (skip && skip.includes(name)) continue;
      list.appendChild(el("li", { class: "label" }, name + "=" + labels[name]));
    }
    return list;
  }

  function badge(text, kind) {
    return el("span", { class: "badge badge-" + (kind || String(text).toLowerCase()) }, text);
  }

  // Prometheus durations: 30s, 5m, 2h, 1d12h, 1w.
  function parseDuration(text) {
    const s = String(text).trim();
    if (!/^(\d+(ms|[smhdwy]))+$/.test(s)) return null;
    const unit = { ms: 1, s: 1e3, m: 6e4, h: 36e5, d: 864e5, w: 6048e5, y: 31536e6 };
    let total = 0;
    for (const [, n, u] of s.matchAll(/(\d+)(ms|[smhdwy])/g)) total += Number(n) * unit[u];
    return total > 0 ? total : null;
  }

  // ---- the API -----------------------------------------------------------

  let token = storageGet(sessionStorage, TOKEN_KEY);

  // Fetches JSON; never throws. Returns {ok, status, data, error, missing,
  // unauthorized}. Unwraps the {"status": "success", "data": ...} envelope.
  // Endpoints that answered 404 are asked again only after a minute: an
  // older evaluator lacks them, and each miss is a line in the browser's
  // console.
  const MISSING_RETRY_MS = 60 * 1000;
  const missingUntil = new Map();

  async function api(path, options) {
    const opts = Object.assign({ method: "GET" }, options || {});
    const endpoint = path.split("?")[0];
    if (opts.method === "GET" && (missingUntil.get(endpoint) || 0) > Date.now()) {
      return { ok: false, status: 404, missing: true, error: "not available" };
    }
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = "Bearer " + token;
    if (opts.body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method: opts.method,
        headers,
        body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch (e) {
      return { ok: false, status: 0, error: "cannot reach the evaluator (" + e.message + ")" };
    }
    const status = response.status;
    let body = null;
    const text = await response.text().catch(() => "");
    if (text) {
      try {
        body = JSON.parse(text);
      } catch (_) {
        body = null;
      }
    }
    // A route this evaluator lacks answers an empty 404; an API's own 404
    // ("no such silence") carries a JSON error.
    if (status === 404 && body === null) {
      if (opts.method === "GET") missingUntil.set(endpoint, Date.now() + MISSING_RETRY_MS);
      return { ok: false, status, missing: true, error: "not available" };
    }
    if (status === 401 || status === 403) {
      return {
        ok: false, status, unauthorized: true,
        error: "the API refused the request (HTTP " + status + "): enter a valid API token at the top of the page",
      };
    }
    if (!response.ok) {
      let message = "HTTP " + status;
      if (typeof body === "string") {
        message += ": " + body;
      } else if (body && typeof body === "object" && (body.error || body.message)) {
        message += ": " + (body.error || body.message);
      } else if (text) {
        message += ": " + text.slice(0, 300);
      }
      return { ok: false, status, error: message };
    }
    if (body && typeof body === "object" && !Array.isArray(body) && "status" in body && "data" in body) {
      if (body.status !== "success") {
        return { ok: false, status, error: body.error || "the API answered " + body.status };
      }
      return { ok: true, status, data: body.data };
    }
    return { ok: true, status, data: body };
  }

  // ---- panels ------------------------------------------------------------

  // Shows a panel's table, or a message in its place.
  function panel(name, result, emptyText, rowsBuilder) {
    const status = $(name + "-status");
    const table = $(name + "-table");
    const body = table.tBodies[0];
    if (!result.ok) {
      table.hidden = true;
      status.className = "panel-status " + (result.missing ? "muted" : "error");
      status.textContent = result.missing
        ? "Not available on this evaluator."
        : "Cannot load: " + result.error;
      return;
    }
    // A new row identical to a shown one (same data-sig) keeps the shown
    // one, so refreshing does not take the focus from its buttons.
    const shown = new Map();
    for (const row of Array.from(body.rows)) {
      if (row.dataset.sig) shown.set(row.dataset.sig, row);
    }
    const rows = rowsBuilder().map((row) => (row.dataset.sig && shown.get(row.dataset.sig)) || row);
    rows.forEach((row, i) => {
      if (body.children[i] !== row) body.insertBefore(row, body.children[i] || null);
    });
    while (body.children.length > rows.length) body.removeChild(body.lastChild);
    table.hidden = rows.length === 0;
    status.className = "panel-status muted";
    status.textContent = rows.length === 0 ? emptyText : "";
  }

  function renderAlerts(v1, v2, silencesById, openEpisodes) {
    const amAlerts = v2.ok && Array.isArray(v2.data) ? v2.data : [];
    const result = v1.ok ? v1 : v2;
    panel("alerts", result, "No alerts are pending or firing.", () => {
      const rows = [];
      const shown = new Set();
      const list = v1.ok ? (v1.data.alerts || []) : [];
      for (const a of list) {
        const am = findSame(a.labels, amAlerts);
        if (am) shown.add(am);
        rows.push(alertRow({
          labels: a.labels || {},
          state: a.state,
          value: a.value,
          since: parseTime(a.activeAt),
          am,
          episode: findSame(a.labels, openEpisodes),
        }, silencesById));
      }
      // Alerts other Prometheus servers posted to /api/v2/alerts.
      for (const a of amAlerts) {
        if (shown.has(a) || !a.status || a.status.state === "unprocessed") continue;
        rows.push(alertRow({
          labels: a.labels || {},
          state: "firing",
          value: null,
          since: parseTime(a.startsAt),
          am: a,
          episode: findSame(a.labels, openEpisodes),
        }, silencesById));
      }
      rows.sort((x, y) => x.dataset.order.localeCompare(y.dataset.order));
      return rows;
    });
  }

  function alertRow(a, silencesById) {
    const name = a.labels.alertname || "(no alertname)";
    const silencedBy = (a.am && a.am.status && a.am.status.silencedBy) || [];
    const stateCell = el("td", null, badge(a.state));
    for (const id of silencedBy) {
      const s = silencesById.get(id);
      stateCell.appendChild(document.createTextNode(" "));
      stateCell.appendChild(badge("silenced", "silenced"));
      if (s) {
        stateCell.appendChild(el("span", { class: "muted small" },
          " until " + new Date(parseTime(s.endsAt)).toLocaleString() + " by " + s.createdBy));
      }
    }
    const mutedBy = (a.am && a.am.status && a.am.status.mutedBy) || [];
    if (mutedBy.length > 0) {
      stateCell.appendChild(document.createTextNode(" "));
      stateCell.appendChild(badge("muted", "muted"));
      stateCell.appendChild(el("span", { class: "muted small" },
        " by time interval " + mutedBy.join(", ")));
    }
    const ack = a.episode && a.episode.ack;
    if (ack) {
      stateCell.appendChild(document.createTextNode(" "));
      stateCell.appendChild(badge("acknowledged", "ack"));
      stateCell.appendChild(el("span", { class: "muted small" }, " by " + ack.by));
    }
    const description = a.labels ? labelText(a.labels) : name;
    const silenceButton = el("button", {
      type: "button", class: "silence",
      "aria-label": "Silence " + description,
    }, "Silence");
    silenceButton.addEventListener("click", () => openSilenceDialog(a.labels));
    const ackButton = el("button", {
      type: "button", class: "ack",
      "aria-label": "Acknowledge " + description,
      disabled: !!ack,
    }, ack ? "Acknowledged" : "Acknowledge");
    ackButton.addEventListener("click", () => openAckDialog(a.labels));
    const row = el("tr", { "data-alertname": name, "data-state": a.state },
      el("th", { scope: "row" }, name),
      stateCell,
      el("td", null, labelList(a.labels, ["alertname"])),
      el("td", { class: "num" }, a.value === null || a.value === undefined ? "—" : formatValue(a.value)),
      el("td", null, timeAgo(a.since)),
      el("td", { class: "actions" }, silenceButton, " ", ackButton));
    const stateOrder = a.state === "firing" ? "0" : "1";
    row.dataset.order = stateOrder + name + labelKey(a.labels);
    row.dataset.sig = JSON.stringify([a.labels, a.state, a.value, a.since, silencedBy,
      silencedBy.map((id) => silencesById.get(id) || null), mutedBy, ack || null]);
    return row;
  }

  function labelText(labels) {
    return Object.keys(labels).sort().map((k) => k + '="' + labels[k] + '"').join(", ");
  }

  // Prometheus writes alert values as "1e+00"; show them as plain numbers.
  function formatValue(v) {
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return String(Number(n.toPrecision(6)));
  }

  function matcherText(m) {
    const op = (m.isEqual === false ? "!" : "=") + (m.isRegex ? "~" : "");
    const opText = op === "=" ? "=" : op === "!" ? "!=" : op === "=~" ? "=~" : "!~";
    return m.name + opText + JSON.stringify(String(m.value));
  }

  function renderSilences(result) {
    panel("silences", result, "No active or pending silences.", () => {
      const rows = [];
      const list = Array.isArray(result.data) ? result.data : [];
      const live = list.filter((s) => s.status && s.status.state !== "expired");
      live.sort((x, y) => String(x.endsAt).localeCompare(String(y.endsAt)));
      for (const s of live) {
        const matchers = el("ul", { class: "labels" });
        for (const m of s.matchers || []) matchers.appendChild(el("li", { class: "label" }, matcherText(m)));
        const expire = el("button", {
          type: "button", class: "expire",
          "aria-label": "Expire silence " + s.id + " (" + (s.matchers || []).map(matcherText).join(", ") + ")",
        }, "Expire");
        expire.addEventListener("click", () => expireSilence(s.id, expire));
        rows.push(el("tr", { "data-silence-id": s.id, "data-sig": JSON.stringify(s) },
          el("td", null, matchers),
          el("td", null, badge(s.status.state)),
          el("td", null, timeAt(parseTime(s.startsAt))),
          el("td", null, timeAt(parseTime(s.endsAt))),
          el("td", null, s.createdBy || ""),
          el("td", null, s.comment || ""),
          el("td", { class: "actions" }, expire)));
      }
      return rows;
    });
  }

  function renderRules(result) {
    panel("rules", result, "No rules are loaded.", () => {
      const rows = [];
      for (const g of (result.data && result.data.groups) || []) {
        for (const r of g.rules || []) {
          const health = r.health || "unknown";
          rows.push(el("tr", { "data-rule": r.name },
            el("th", { scope: "row" }, el("span", { class: "rule-name" }, r.name),
              el("code", { class: "query" }, r.query || "")),
            el("td", null, g.name, el("div", { class: "muted small" }, g.file || "")),
            el("td", null, r.type || ""),
            el("td", null, r.type === "alerting" ? badge(r.state || "inactive") : "—"),
            el("td", null, badge(health, health === "ok" ? "up" : health === "err" ? "down" : "unknown")),
            el("td", null, timeAgo(parseTime(r.lastEvaluation))),
            el("td", { class: "num" }, r.evaluationTime === undefined ? "—" : formatSeconds(r.evaluationTime)),
            el("td", { class: "error-text" }, r.lastError || "")));
        }
      }
      return rows;
    });
  }

  function formatSeconds(s) {
    const n = Number(s);
    if (!Number.isFinite(n)) return "—";
    if (n < 1) return (n * 1000).toFixed(n < 0.01 ? 2 : 1) + " ms";
    return n.toFixed(2) + " s";
  }

  function renderTargets(result) {
    panel("targets", result, "No scrape targets are configured.", () => {
      const rows = [];
      const list = (result.data && result.data.activeTargets) || [];
      for (const t of list) {
        const health = t.health || "unknown";
        rows.push(el("tr", { "data-health": health },
          el("th", { scope: "row" }, t.scrapeUrl || ""),
          el("td", null, t.scrapePool || ""),
          el("td", null, badge(health)),
          el("td", null, labelList(t.labels, ["job"])),
          el("td", null, timeAgo(parseTime(t.lastScrape))),
          el("td", { class: "num" }, t.lastScrapeDuration === undefined ? "—" : formatSeconds(t.lastScrapeDuration)),
          el("td", { class: "error-text" }, t.lastError || "")));
      }
      return rows;
    });
  }

  // The last test result per receiver, kept across refreshes.
  const receiverTests = new Map();

  function renderReceivers(result) {
    panel("receivers", result, "No receivers are configured.", () => {
      const rows = [];
      for (const r of Array.isArray(result.data) ? result.data : []) {
        const test = el("button", { type: "button", class: "test-receiver",
          "aria-label": "Send a test notification to receiver " + r.name }, "Send test");
        const outcome = el("td", { class: "receiver-test", "aria-live": "polite" });
        test.addEventListener("click", () => testReceiver(r.name, test, outcome));
        showReceiverTest(outcome, receiverTests.get(r.name));
        const last = receiverTests.get(r.name);
        rows.push(el("tr", { "data-receiver": r.name, "data-sig": r.name + "|" + JSON.stringify(last || null) },
          el("th", { scope: "row" }, r.name),
          el("td", { class: "actions" }, test),
          outcome));
      }
      return rows;
    });
  }

  function showReceiverTest(cell, result) {
    clear(cell);
    if (!result) return;
    if (result.error) {
      cell.appendChild(el("span", { class: "error-text" }, result.error));
      return;
    }
    const list = el("ul", { class: "labels" });
    for (const i of result.integrations) {
      list.appendChild(el("li", { class: i.ok ? "label" : "label error-text" },
        i.integration + ": " + (i.ok ? "OK" : "FAILED: " + i.error)));
    }
    if (result.integrations.length === 0) list.appendChild(el("li", null, "no integrations to test"));
    cell.appendChild(list);
  }

  async function testReceiver(name, button, cell) {
    button.disabled = true;
    clear(cell);
    cell.appendChild(el("span", { class: "muted" }, "Sending…"));
    const result = await api("/api/vigil/v1/receivers/" + encodeURIComponent(name) + "/test", { method: "POST" });
    button.disabled = false;
    const shown = result.ok ? result.data : { error: result.error };
    receiverTests.set(name, shown);
    showReceiverTest(cell, shown);
    const row = cell.parentNode;
    if (row) row.dataset.sig = name + "|" + JSON.stringify(shown);
  }

  // Episodes whose details row is open, by id, so a refresh keeps them open.
  const openDetails = new Map();

  function renderHistory(result) {
    panel("history", result, "No alerts in the last 24 hours.", () => {
      const rows = [];
      const now = Date.now();
      const episodes = (result.data && result.data.episodes) || [];
      // The timelines span from the earliest episode shown (at least an
      // hour, at most the 24 hours asked for) to now.
      const earliest = Math.min(now, ...episodes.map((e) => parseTime(e.startsAt) ?? now));
      const span = Math.min(HISTORY_WINDOW_MS, Math.max(3600e3, (now - earliest) * 1.05));
      const from = now - span;
      $("history-caption").textContent = "Recent alert episodes, newest first; each timeline spans the last "
        + formatDuration(span) + " up to now (pending light, firing dark).";
      for (const e of episodes) {
        const started = parseTime(e.startsAt);
        const fired = parseTime(e.firedAt);
        const ended = parseTime(e.endsAt);
        const id = String(e.id);
        const detailsId = "episode-details-" + id.replace(/[^A-Za-z0-9_-]/g, "_");
        const open = openDetails.has(id);
        const toggle = el("button", {
          type: "button", class: "details",
          "aria-expanded": open ? "true" : "false",
          "aria-controls": detailsId,
          "aria-label": "Events and notifications of " + (e.rule || "alert") + " " + labelText(e.labels || {}),
        }, open ? "Hide" : "Show");
        const ack = e.ack
          ? el("span", null, e.ack.by, el("div", { class: "muted small" },
            timeAt(parseTime(e.ack.at)), e.ack.comment ? " — " + e.ack.comment : ""))
          : el("span", { class: "muted" }, "no");
        // The timeline slides with the clock: such rows are redrawn each minute.
        const sig = JSON.stringify([e, Math.floor(now / 60000)]);
        rows.push(el("tr", { "data-episode": id, "data-sig": sig },
          el("th", { scope: "row" }, e.rule || (e.labels && e.labels.alertname) || ""),
          el("td", null, labelList(e.labels, ["alertname"])),
          el("td", null, e.severity || "—"),
          el("td", null, badge(e.state || "unknown")),
          el("td", null, timeAt(started)),
          el("td", started !== null && ended === null ? { "data-ongoing-since": started } : null,
            started === null ? "—" : formatDuration((ended === null ? now : ended) - started)
            + (ended === null ? " (ongoing)" : "")),
          el("td", null, ack),
          el("td", null, timeline(from, now, started, fired, ended)),
          el("td", null, toggle)));
        const detailsRow = el("tr", { id: detailsId, class: "details-row", hidden: !open, "data-sig": sig + "/details", "data-details-of": id },
          el("td", { colspan: "9" }));
        toggle.addEventListener("click", () => toggleDetails(id, toggle, detailsRow));
        rows.push(detailsRow);
      }
      return rows;
    });
  }

  // Puts each open episode's details into its (kept or new) row.
  function placeDetails() {
    for (const [id, content] of openDetails) {
      const row = document.querySelector('tr[data-details-of="' + CSS.escape(id) + '"]');
      if (!row) continue;
      row.hidden = false;
      if (content.parentNode !== row.cells[0]) {
        clear(row.cells[0]);
        row.cells[0].appendChild(content);
      }
    }
  }

  // A bar across [from, to]: pending from start to fire, firing until the
  // end (or now).
  function timeline(from, to, started, fired, ended) {
    const width = 240;
    const height = 14;
    const x = (t) => Math.max(0, Math.min(width, ((t - from) / (to - from)) * width));
    const end = ended === null ? to : ended;
    const parts = [];
    const words = [];
    if (started !== null) {
      const pendingEnd = fired === null ? end : fired;
      if (pendingEnd > started) {
        parts.push(segment(x(started), x(pendingEnd), "pending", height, width));
        words.push("pending " + formatDuration(pendingEnd - started));
      }
    }
    if (fired !== null && end >= fired) {
      parts.push(segment(x(fired), x(end), "firing", height, width));
      words.push("firing " + formatDuration(end - fired) + (ended === null ? " until now" : ""));
    }
    const label = words.length ? words.join(", ") : "no activity in the last 24 hours";
    return svg("svg", {
      class: "timeline", width, height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": label,
    }, svg("title", null, label),
    svg("rect", { class: "track", x: 0, y: 0, width, height }),
    parts);
  }

  // At least 2px wide and inside the track, so a short episode shows.
  function segment(x0, x1, kind, height, total) {
    const width = Math.max(2, x1 - x0);
    return svg("rect", { class: kind, x: Math.min(x0, total - width), y: 2, width, height: height - 4 });
  }

  async function toggleDetails(id, button, row) {
    if (openDetails.has(id)) {
      openDetails.delete(id);
      button.setAttribute("aria-expanded", "false");
      button.textContent = "Show";
      row.hidden = true;
      return;
    }
    const cell = row.cells[0];
    const loading = el("p", { class: "muted" }, "Loading…");
    openDetails.set(id, loading);
    clear(cell);
    cell.appendChild(loading);
    row.hidden = false;
    button.setAttribute("aria-expanded", "true");
    button.textContent = "Hide";
    const result = await api("/api/vigil/v1/history/" + encodeURIComponent(id));
    const content = result.ok ? episodeDetails(result.data || {})
      : el("p", { class: "error" }, result.missing ? "Details are not available." : "Cannot load: " + result.error);
    if (openDetails.get(id) !== loading) return; // closed meanwhile
    openDetails.set(id, content);
    const parent = loading.parentNode;
    if (parent) parent.replaceChild(content, loading);
  }

  function episodeDetails(d) {
    const box = el("div", { class: "episode-details" });
    const events = d.events || [];
    box.appendChild(el("h3", null, "State changes"));
    if (events.length === 0) {
      box.appendChild(el("p", { class: "muted" }, "None recorded."));
    } else {
      const list = el("ol", { class: "events" });
      for (const ev of events) {
        list.appendChild(el("li", null, timeAt(parseTime(ev.at)), " ",
          (ev.from || "—") + " → " + (ev.to || "—"),
          ev.value === undefined || ev.value === null ? "" : " (value " + formatValue(ev.value) + ")"));
      }
      box.appendChild(list);
    }
    const notes = d.notifications || [];
    box.appendChild(el("h3", null, "Notifications"));
    if (notes.length === 0) {
      box.appendChild(el("p", { class: "muted" }, "None sent."));
    } else {
      const list = el("ul", { class: "events" });
      for (const n of notes) {
        const when = parseTime(n.sentAt || n.createdAt || null);
        const tries = n.attempts > 1 ? n.attempts + " attempts" : null;
        const what = [n.receiver, n.integration, n.status, tries, n.lastError].filter(Boolean).join(" · ");
        list.appendChild(el("li", null, timeAt(when), " ", what));
      }
      box.appendChild(list);
    }
    return box;
  }

  function renderNoise(result, fromMs, toMs) {
    panel("noise", result, "No alert fired in the last 7 days.", () => {
      const days = [];
      for (let t = fromMs; t < toMs + 1; t += 864e5) {
        const day = new Date(t).toISOString().slice(0, 10);
        if (!days.includes(day)) days.push(day);
      }
      const shown = days.slice(-NOISE_DAYS);
      const data = result.data || [];
      const rules = (Array.isArray(data) ? data : data.rules || []).slice();
      rules.sort((x, y) => (y.fires || 0) - (x.fires || 0) || String(x.rule).localeCompare(String(y.rule)));
      return rules.map((r) => el("tr", { "data-rule": r.rule, "data-sig": JSON.stringify(r) },
        el("th", { scope: "row" }, r.rule || ""),
        el("td", { class: "num" }, String(r.fires ?? "—")),
        el("td", { class: "num" }, String(r.episodes ?? "—")),
        el("td", { class: "num" }, secondsText(r.mttaSeconds)),
        el("td", { class: "num" }, secondsText(r.mttrSeconds)),
        el("td", { class: "num" }, String(r.notificationsSent ?? "—")),
        el("td", null, sparkBars(r.rule, shown, r.firesPerDay || []))));
    });
  }

  function secondsText(s) {
    return s === null || s === undefined ? "—" : formatDuration(Number(s) * 1000);
  }

  function sparkBars(rule, days, perDay) {
    const counts = new Map(perDay.map((d) => [d.day, Number(d.fires) || 0]));
    const values = days.map((d) => counts.get(d) || 0);
    const max = Math.max(1, ...values);
    const barWidth = 12;
    const gap = 3;
    const height = 28;
    const width = days.length * (barWidth + gap);
    const label = "Fires per day of " + rule + ": " +
      days.map((d, i) => d + " " + values[i]).join(", ");
    const bars = days.map((d, i) => {
      const h = values[i] === 0 ? 1 : Math.max(2, Math.round((values[i] / max) * (height - 2)));
      return svg("rect", {
        class: values[i] === 0 ? "bar zero" : "bar",
        x: i * (barWidth + gap), y: height - h, width: barWidth, height: h,
      }, svg("title", null, d + ": " + values[i]));
    });
    return svg("svg", {
      class: "spark", width, height, viewBox: "0 0 " + width + " " + height,
      role: "img", "aria-label": label,
    }, bars);
  }

  // ---- refresh loop --------------------------------------------------------

  let paused = false;
  let timer = null;
  let running = false;

  async function refresh() {
    if (running) return;
    running = true;
    try {
      const now = Date.now();
      const historyStart = new Date(now - HISTORY_WINDOW_MS).toISOString();
      const noiseFrom = now - (NOISE_DAYS - 1) * 864e5;
      const noiseStart = new Date(new Date(noiseFrom).toISOString().slice(0, 10) + "T00:00:00Z");
      const [v1Alerts, v2Alerts, silences, rules, targets, history, openHistory, stats, receivers] = await Promise.all([
        api("/api/v1/alerts"),
        api("/api/v2/alerts"),
        api("/api/v2/silences"),
        api("/api/v1/rules"),
        api("/api/v1/targets"),
        api("/api/vigil/v1/history?limit=50&start=" + encodeURIComponent(historyStart)),
        api("/api/vigil/v1/history?limit=500&state=firing"),
        api("/api/vigil/v1/stats?start=" + encodeURIComponent(noiseStart.toISOString()) +
          "&end=" + encodeURIComponent(new Date(now).toISOString())),
        api("/api/v2/receivers"),
      ]);
      const silencesById = new Map();
      if (silences.ok && Array.isArray(silences.data)) {
        for (const s of silences.data) silencesById.set(s.id, s);
      }
      const openEpisodes = openHistory.ok && openHistory.data
        ? (openHistory.data.episodes || []).filter((e) => !e.endsAt)
        : [];
      renderAlerts(v1Alerts, v2Alerts, silencesById, openEpisodes);
      renderSilences(silences);
      renderRules(rules);
      renderTargets(targets);
      renderHistory(history);
      placeDetails();
      renderNoise(stats, noiseStart.getTime(), now);
      renderReceivers(receivers);
      updateClocks();
      const all = [v1Alerts, v2Alerts, silences, rules, targets, history, stats, receivers];
      const refused = all.find((r) => r.unauthorized);
      const updated = $("updated");
      updated.className = refused ? "error" : "muted";
      updated.textContent = refused
        ? "Some panels need an API token."
        : "Updated " + new Date().toLocaleTimeString();
    } finally {
      running = false;
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (paused) return;
    const params = new URLSearchParams(location.search);
    const seconds = Math.max(1, Number(params.get("refresh")) || REFRESH_DEFAULT_SECONDS);
    timer = setTimeout(async () => {
      if (!document.hidden) await refresh();
      schedule();
    }, seconds * 1000);
  }

  async function refreshNow() {
    await refresh();
    schedule();
  }

  // ---- notices, token, dialogs ----------------------------------------------

  function notice(text, kind) {
    const box = $("notice");
    box.className = "notice " + (kind || "info");
    box.textContent = text;
    box.hidden = false;
  }

  function setupToken() {
    const input = $("token");
    input.value = token;
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      token = input.value.trim();
      storageSet(sessionStorage, TOKEN_KEY, token);
      notice(token ? "The API token is used for this browser tab." : "No API token is used.", "info");
      refreshNow();
    });
    $("token-clear").addEventListener("click", () => {
      token = "";
      input.value = "";
      storageSet(sessionStorage, TOKEN_KEY, "");
      notice("The API token was forgotten.", "info");
      refreshNow();
    });
  }

  function setupPause() {
    const button = $("pause");
    button.addEventListener("click", () => {
      paused = !paused;
      button.setAttribute("aria-pressed", paused ? "true" : "false");
      button.textContent = paused ? "Resume updates" : "Pause updates";
      if (paused) clearTimeout(timer);
      else refreshNow();
    });
  }

  function showDialog(dialog, focus) {
    if (typeof dialog.showModal === "function") {
      if (!dialog.open) dialog.showModal();
    } else {
      dialog.setAttribute("open", "");
    }
    focus.focus();
  }

  function closeDialog(dialog) {
    if (typeof dialog.close === "function") dialog.close();
    else dialog.removeAttribute("open");
  }

  function openSilenceDialog(labels) {
    $("silence-matchers").value = Object.keys(labels || {}).sort()
      .map((k) => k + "=" + JSON.stringify(String(labels[k]))).join("\n");
    $("silence-by").value = storageGet(localStorage, USER_KEY);
    $("silence-comment").value = "";
    $("silence-error").textContent = "";
    $("silence-dialog-h").textContent = labels ? "Silence " + (labels.alertname || "alert") : "New silence";
    showDialog($("silence-dialog"), $("silence-by").value ? $("silence-comment") : $("silence-by"));
  }

  // `name="value"` per line; operators =, !=, =~, !~.
  function parseMatchers(text) {
    const matchers = [];
    const lines = text.split("\n").map((l) => l.trim()).filter((l) => l !== "");
    for (const [i, line] of lines.entries()) {
      const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")$/.exec(line);
      if (!m) {
        throw new Error("Matcher " + (i + 1) + " (" + line + ") is not name=\"value\", name!=\"value\", name=~\"regex\" or name!~\"regex\".");
      }
      let value;
      try {
        value = JSON.parse(m[3]);
      } catch (_) {
        throw new Error("Matcher " + (i + 1) + " has a badly escaped value: " + m[3]);
      }
      matchers.push({ name: m[1], value, isRegex: m[2].endsWith("~"), isEqual: !m[2].startsWith("!") });
    }
    if (matchers.length === 0) throw new Error("Give at least one matcher.");
    return matchers;
  }

  async function submitSilence(ev) {
    ev.preventDefault();
    const error = $("silence-error");
    error.textContent = "";
    let matchers;
    try {
      matchers = parseMatchers($("silence-matchers").value);
    } catch (e) {
      error.textContent = e.message;
      return;
    }
    const duration = parseDuration($("silence-duration").value);
    if (duration === null) {
      error.textContent = "The duration must look like 30m, 2h or 1d12h.";
      return;
    }
    const createdBy = $("silence-by").value.trim();
    const comment = $("silence-comment").value.trim();
    if (!createdBy || !comment) {
      error.textContent = "Say who creates the silence and why.";
      return;
    }
    storageSet(localStorage, USER_KEY, createdBy);
    const startsAt = new Date();
    const endsAt = new Date(startsAt.getTime() + duration);
    const submit = $("silence-submit");
    submit.disabled = true;
    const result = await api("/api/v2/silences", {
      method: "POST",
      body: { matchers, startsAt: startsAt.toISOString(), endsAt: endsAt.toISOString(), createdBy, comment },
    });
    submit.disabled = false;
    if (!result.ok) {
      error.textContent = result.missing
        ? "This evaluator does not serve /api/v2/silences."
        : "The silence was not created: " + result.error;
      return;
    }
    closeDialog($("silence-dialog"));
    const id = result.data && result.data.silenceID;
    notice("Silence " + (id || "") + " created; it ends " + endsAt.toLocaleString() + ".", "ok");
    refreshNow();
  }

  async function expireSilence(id, button) {
    button.disabled = true;
    const result = await api("/api/v2/silence/" + encodeURIComponent(id), { method: "DELETE" });
    if (!result.ok) {
      button.disabled = false;
      notice("Silence " + id + " was not expired: " + result.error, "error");
      return;
    }
    notice("Silence " + id + " expired.", "ok");
    refreshNow();
  }

  let ackLabels = null;

  function openAckDialog(labels) {
    ackLabels = labels;
    $("ack-target").textContent = labelText(labels || {});
    $("ack-by").value = storageGet(localStorage, USER_KEY);
    $("ack-comment").value = "";
    $("ack-error").textContent = "";
    showDialog($("ack-dialog"), $("ack-by").value ? $("ack-comment") : $("ack-by"));
  }

  async function submitAck(ev) {
    ev.preventDefault();
    const error = $("ack-error");
    const by = $("ack-by").value.trim();
    if (!by) {
      error.textContent = "Say who acknowledges the alert.";
      return;
    }
    storageSet(localStorage, USER_KEY, by);
    const submit = $("ack-submit");
    submit.disabled = true;
    const result = await api("/api/vigil/v1/alerts/ack", {
      method: "POST",
      body: { labels: ackLabels, by, comment: $("ack-comment").value.trim() },
    });
    submit.disabled = false;
    if (!result.ok) {
      error.textContent = result.missing
        ? "This evaluator does not serve acknowledgements."
        : "The alert was not acknowledged: " + result.error;
      return;
    }
    closeDialog($("ack-dialog"));
    notice("Alert " + ((ackLabels && ackLabels.alertname) || "") + " acknowledged by " + by + ".", "ok");
    refreshNow();
  }

  function setupDialogs() {
    $("silence-form").addEventListener("submit", submitSilence);
    $("silence-cancel").addEventListener("click", () => closeDialog($("silence-dialog")));
    $("new-silence").addEventListener("click", () => openSilenceDialog(null));
    $("ack-form").addEventListener("submit", submitAck);
    $("ack-cancel").addEventListener("click", () => closeDialog($("ack-dialog")));
  }

  async function loadVersion() {
    const result = await api("/api/v1/status/buildinfo");
    if (result.ok && result.data && result.data.version) {
      $("version").textContent = "v" + result.data.version;
    }
  }

  function start() {
    setupToken();
    setupPause();
    setupDialogs();
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !paused) refreshNow();
    });
    loadVersion();
    refreshNow();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
