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
  const USER_KEY = "vigil.user";
  // Severity order of the alerts panel: critical first; unknown ones last.
  const SEVERITY_RANK = { critical: 0, page: 0, error: 1, high: 1, warning: 2, medium: 2, info: 3, low: 3, none: 4 };

  const {
    el, svg, clear, storageGet, storageSet, parseTime, formatDuration, isoLocal, isoUtc, timeAt,
    labelList, badge, parseDuration, api, getToken, setToken, cleanPath,
  } = window.Vigil;
  const $ = (id) => document.getElementById(id);

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

  // A <time> showing "3m 5s ago" with the local ISO 8601 time under it
  // (UTC on hover).
  function timeAgo(ms) {
    if (ms === null) return el("span", { class: "muted" }, "never");
    return el("span", { class: "since" },
      el("time", { datetime: isoUtc(ms), title: isoUtc(ms) + " (UTC)", "data-ago": ms, class: "nowrap" },
        formatDuration(Date.now() - ms) + " ago"),
      el("span", { class: "muted small nowrap at", title: isoUtc(ms) + " (UTC)" }, isoLocal(ms)));
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

  function severityRank(labels) {
    const rank = SEVERITY_RANK[String((labels && labels.severity) || "").toLowerCase()];
    return rank === undefined ? 5 : rank;
  }

  function severityBadge(severity) {
    if (!severity) return el("span", { class: "muted" }, "—");
    const known = SEVERITY_RANK[String(severity).toLowerCase()];
    const kind = known === undefined ? "unknown" : ["critical", "error", "warning", "info", "info"][known];
    return el("span", { class: "badge severity severity-" + kind }, severity);
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

  // ---- the alerts filter (the "View" link of a notification) ----------------

  // "#/alerts?receiver=team-a&filter={alertname="X",route="/a"}", as
  // Alertmanager's UI takes it; null when the page shows every alert.
  function alertsFilter() {
    const hash = location.hash || "";
    if (!hash.startsWith("#/alerts")) return null;
    const query = new URLSearchParams(hash.slice(hash.indexOf("?") + 1 || hash.length));
    const receiver = query.get("receiver") || "";
    const filterText = query.get("filter") || "";
    let matchers = [];
    let error = "";
    try {
      matchers = parseFilter(filterText);
    } catch (e) {
      error = e.message;
    }
    return { receiver, filterText, matchers, error };
  }

  // "{a="b", c=~"d.*"}" (braces optional) as matchers.
  function parseFilter(text) {
    const body = text.trim().replace(/^\{/, "").replace(/\}$/, "").trim();
    const matchers = [];
    const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|[^,]*)\s*(,|$)/y;
    let at = 0;
    while (at < body.length) {
      re.lastIndex = at;
      const m = re.exec(body);
      if (!m) throw new Error("the filter " + JSON.stringify(text) + " is not a list of name=\"value\" matchers");
      const raw = m[3].trim();
      const value = raw.startsWith('"') ? JSON.parse(raw) : raw;
      matchers.push({ name: m[1], op: m[2], value, regex: m[2].endsWith("~") ? new RegExp("^(?:" + value + ")$") : null });
      at = re.lastIndex;
    }
    return matchers;
  }

  function matchesFilter(labels, matchers) {
    return matchers.every((m) => {
      const v = (labels && labels[m.name]) || "";
      const hit = m.regex ? m.regex.test(v) : v === m.value;
      return m.op.startsWith("!") ? !hit : hit;
    });
  }

  // Shows what the filter keeps, with a link back to every alert.
  function showFilter(filter, kept, total) {
    const box = $("alerts-filter");
    clear(box);
    if (!filter) {
      box.hidden = true;
      return;
    }
    const what = [];
    if (filter.receiver) what.push("receiver " + filter.receiver);
    if (filter.filterText) what.push("alerts matching " + filter.filterText);
    box.appendChild(el("span", null, "Showing " + kept + " of " + total + " alerts: " +
      (what.length ? what.join(", ") : "all") + ". "));
    if (filter.error) box.appendChild(el("span", { class: "error-text" }, filter.error + ". "));
    box.appendChild(el("a", { href: "#alerts", id: "alerts-filter-clear" }, "Show every alert"));
    box.hidden = false;
  }

  // ---- alerts ----------------------------------------------------------------

  function renderAlerts(view, v1, v2, silencesById, openEpisodes) {
    const amAlerts = v2.ok && Array.isArray(v2.data) ? v2.data : [];
    const result = view.ok ? view : v1.ok ? v1 : v2;
    const filter = alertsFilter();
    let total = 0;
    panel("alerts", result, filter ? "No alert matches this filter." : "No alerts are pending or firing.", () => {
      const alerts = [];
      const shown = new Set();
      const list = view.ok ? (view.data.alerts || []) : v1.ok ? (v1.data.alerts || []) : [];
      for (const a of list) {
        const am = findSame(a.labels, amAlerts);
        if (am) shown.add(am);
        alerts.push({
          labels: a.labels || {},
          annotations: a.annotations || {},
          state: a.state,
          value: a.value,
          valueText: a.valueText || formatValue(a.value),
          since: parseTime(a.activeAt),
          rule: a.rule || null,
          graphURL: a.graphURL || null,
          am,
          episode: findSame(a.labels, openEpisodes),
        });
      }
      // Alerts other Prometheus servers posted to /api/v2/alerts.
      for (const a of amAlerts) {
        if (shown.has(a) || !a.status || a.status.state === "unprocessed") continue;
        alerts.push({
          labels: a.labels || {},
          annotations: a.annotations || {},
          state: "firing",
          value: null,
          valueText: "—",
          since: parseTime(a.startsAt),
          rule: null,
          graphURL: /^https?:\/\//.test(a.generatorURL || "") ? a.generatorURL : null,
          am: a,
          episode: findSame(a.labels, openEpisodes),
        });
      }
      total = alerts.length;
      const kept = alerts.filter((a) => !filter || (
        (!filter.receiver || ((a.am && a.am.receivers) || []).some((r) => r.name === filter.receiver)) &&
        matchesFilter(a.labels, filter.matchers)));
      // Critical first, then firing before pending, then the oldest first.
      kept.sort((x, y) => severityRank(x.labels) - severityRank(y.labels) ||
        (x.state === "firing" ? 0 : 1) - (y.state === "firing" ? 0 : 1) ||
        (x.since || 0) - (y.since || 0) ||
        labelKey(x.labels).localeCompare(labelKey(y.labels)));
      return kept.map((a) => alertRow(a, silencesById));
    });
    if (result.ok) showFilter(filter, $("alerts-table").tBodies[0].rows.length, total);
  }

  // A runbook link only for http(s) URLs: an annotation is text, and a
  // "javascript:" URL must not become a link.
  function runbookLink(url) {
    if (!/^https?:\/\//i.test(String(url || ""))) return null;
    return el("a", { href: url, class: "runbook", rel: "noopener noreferrer" }, "Runbook");
  }

  function alertRow(a, silencesById) {
    const name = a.labels.alertname || "(no alertname)";
    const silencedBy = (a.am && a.am.status && a.am.status.silencedBy) || [];
    const stateCell = el("td", { class: "state" }, badge(a.state));
    for (const id of silencedBy) {
      const s = silencesById.get(id);
      stateCell.appendChild(document.createTextNode(" "));
      stateCell.appendChild(badge("silenced", "silenced"));
      if (s) {
        stateCell.appendChild(el("span", { class: "muted small" }, " until ",
          timeAt(parseTime(s.endsAt)), " by " + s.createdBy));
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
      "aria-label": (ack ? "Acknowledged: " : "Acknowledge ") + description,
      disabled: !!ack,
    }, ack ? "Acknowledged" : "Acknowledge");
    ackButton.addEventListener("click", () => openAckDialog(a.labels));
    const graph = a.graphURL
      ? el("a", { href: a.graphURL, class: "graph-link", "aria-label": "Graph of the rule of " + description }, "Graph")
      : null;
    const summary = a.annotations.summary;
    const details = a.annotations.description;
    const ruleText = a.rule ? cleanPath(a.rule.file) + " › " + a.rule.group + " › rule " + (a.rule.index + 1) : null;
    const nameCell = el("th", { scope: "row", class: "alert-cell" },
      el("span", { class: "alert-name" }, name),
      summary ? el("span", { class: "summary" }, summary) : null,
      details ? el("span", { class: "description muted small" }, details) : null,
      ruleText ? el("span", { class: "rule-ref muted small" }, ruleText) : null,
      runbookLink(a.annotations.runbook_url));
    const row = el("tr", { "data-alertname": name, "data-state": a.state, "data-severity": a.labels.severity || "" },
      el("td", null, severityBadge(a.labels.severity)),
      nameCell,
      stateCell,
      el("td", null, labelList(a.labels, ["alertname", "severity"])),
      el("td", { class: "num value", title: a.value === null || a.value === undefined ? null : "raw value " + a.value }, a.valueText),
      el("td", null, timeAgo(a.since)),
      el("td", { class: "actions" }, graph, graph ? " " : null, silenceButton, " ", ackButton));
    row.dataset.sig = JSON.stringify([a.labels, a.annotations, a.state, a.valueText, a.since, a.graphURL, silencedBy,
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

  // The graph view of rule `index` of group `g` (as /api/v1/rules lists it).
  function ruleGraphURL(g, index, expr, range) {
    const q = new URLSearchParams();
    q.set("g0.expr", expr || "");
    q.set("g0.tab", "0");
    if (range) {
      q.set("g0.range_input", range.range);
      q.set("g0.end_input", range.end);
    }
    q.set("g0.rule_file", g.file || "");
    q.set("g0.rule_group", g.name || "");
    q.set("g0.rule_index", String(index));
    return "/graph?" + q.toString();
  }

  // The Tune view of rule `index` of group `g`.
  function ruleTuneURL(g, index) {
    return "/tune?" + new URLSearchParams({ file: g.file || "", group: g.name || "", index: String(index) }).toString();
  }

  // Opens a collapsible panel when something in it needs a look, and says
  // in its summary how many rows it has and how many are unhealthy.
  function summarise(name, total, unhealthy, what) {
    const count = $(name + "-count");
    count.textContent = "(" + total + (unhealthy ? ", " + unhealthy + " " + what : "") + ")";
    count.className = unhealthy ? "error-text" : "muted";
    const box = $(name + "-details");
    // Opened once for trouble; a person's own toggle is kept after that.
    if (unhealthy && box.dataset.autoOpened !== "true") {
      box.open = true;
      box.dataset.autoOpened = "true";
    }
    if (!unhealthy) box.dataset.autoOpened = "false";
  }

  function renderRules(result) {
    let total = 0;
    let unhealthy = 0;
    panel("rules", result, "No rules are loaded.", () => {
      const rows = [];
      for (const g of (result.data && result.data.groups) || []) {
        (g.rules || []).forEach((r, index) => {
          const health = r.health || "unknown";
          total += 1;
          if (health === "err") unhealthy += 1;
          rows.push(el("tr", { "data-rule": r.name, "data-health": health },
            el("th", { scope: "row" }, el("span", { class: "rule-name" }, r.name),
              el("code", { class: "query" }, r.query || "")),
            el("td", null, g.name, el("div", { class: "muted small nowrap", title: g.file || "" }, cleanPath(g.file))),
            el("td", null, r.type || ""),
            el("td", null, r.type === "alerting" ? badge(r.state || "inactive") : "—"),
            el("td", null, badge(health, health === "ok" ? "up" : health === "err" ? "down" : "unknown")),
            el("td", null, timeAgo(parseTime(r.lastEvaluation))),
            el("td", { class: "num" }, r.evaluationTime === undefined ? "—" : formatSeconds(r.evaluationTime)),
            el("td", { class: "error-text" }, r.lastError || ""),
            el("td", null, el("a", { href: ruleGraphURL(g, index, r.query), "aria-label": "Graph of rule " + r.name + " of group " + g.name }, "Graph"),
              r.type === "alerting" ? [" ", el("a", { href: ruleTuneURL(g, index), class: "tune-link", "aria-label": "Tune rule " + r.name + " of group " + g.name }, "Tune")] : null)));
        });
      }
      return rows;
    });
    if (result.ok) summarise("rules", total, unhealthy, "failing");
  }

  function formatSeconds(s) {
    const n = Number(s);
    if (!Number.isFinite(n)) return "—";
    if (n < 1) return (n * 1000).toFixed(n < 0.01 ? 2 : 1) + " ms";
    return n.toFixed(2) + " s";
  }

  function renderTargets(result) {
    let total = 0;
    let down = 0;
    panel("targets", result, "No scrape targets are configured.", () => {
      const rows = [];
      const list = (result.data && result.data.activeTargets) || [];
      for (const t of list) {
        const health = t.health || "unknown";
        total += 1;
        // "unknown" is a target not scraped yet, not a broken one.
        if (health === "down") down += 1;
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
    if (result.ok) summarise("targets", total, down, "down");
  }

  // The last test result per receiver, kept across refreshes.
  const receiverTests = new Map();

  function renderReceivers(result) {
    panel("receivers", result, "No receivers are configured.", () => {
      const rows = [];
      for (const r of Array.isArray(result.data) ? result.data : []) {
        const test = el("button", { type: "button", class: "test-receiver",
          "aria-label": "Send test notification to receiver " + r.name }, "Send test");
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

  // How the history timelines are scaled: "episode" (each spans its own
  // episode, so a one-minute episode fills the bar) or "day" (all share
  // the last 24 hours).
  let historyScale = "episode";

  // The rule (its group and position in /api/v1/rules) of a history
  // episode: same group and name, and the rule's fixed labels on the alert.
  function ruleOfEpisode(e, rules) {
    for (const g of (rules.ok && rules.data && rules.data.groups) || []) {
      if (g.name !== e.group) continue;
      const rulesOf = g.rules || [];
      for (let i = 0; i < rulesOf.length; i++) {
        const r = rulesOf[i];
        if (r.type !== "alerting" || r.name !== e.rule) continue;
        const fixed = Object.entries(r.labels || {}).filter(([, v]) => !String(v).includes("{{"));
        if (fixed.every(([k, v]) => (e.labels || {})[k] === v)) return { group: g, index: i, rule: r };
      }
    }
    return null;
  }

  // A Prometheus range ("15m", "2h") covering `ms`.
  function rangeInput(ms) {
    const minutes = Math.max(5, Math.ceil(ms / 60000));
    return minutes % 60 === 0 ? minutes / 60 + "h" : minutes + "m";
  }

  // "2026-12-02 09:50:37" in UTC, as Prometheus' g0.end_input takes it.
  function endInput(ms) {
    return isoUtc(ms).replace("T", " ").replace("Z", "");
  }

  function renderHistory(result, rules) {
    panel("history", result, "No alerts in the last 24 hours.", () => {
      const rows = [];
      const now = Date.now();
      const episodes = (result.data && result.data.episodes) || [];
      // On the shared scale the timelines span from the earliest episode
      // shown (at least an hour, at most the 24 hours asked for) to now.
      const earliest = Math.min(now, ...episodes.map((e) => parseTime(e.startsAt) ?? now));
      const span = Math.min(HISTORY_WINDOW_MS, Math.max(3600e3, (now - earliest) * 1.05));
      $("history-caption").textContent = historyScale === "episode"
        ? "Recent alert episodes, newest first; each timeline spans its own episode (pending light, firing dark)."
        : "Recent alert episodes, newest first; each timeline spans the last " + formatDuration(span) +
          " up to now (pending light, firing dark).";
      for (const e of episodes) {
        const started = parseTime(e.startsAt);
        const fired = parseTime(e.firedAt);
        const ended = parseTime(e.endsAt);
        const last = ended === null ? now : ended;
        const id = String(e.id);
        const detailsId = "episode-details-" + id.replace(/[^A-Za-z0-9_-]/g, "_");
        const open = openDetails.has(id);
        const toggle = el("button", {
          type: "button", class: "details",
          "aria-expanded": open ? "true" : "false",
          "aria-controls": detailsId,
          "aria-label": (open ? "Hide" : "Show") + " events and notifications of " + (e.rule || "alert") + " " + labelText(e.labels || {}),
        }, open ? "Hide" : "Show");
        const ack = e.ack
          ? el("span", null, e.ack.by, el("div", { class: "muted small" },
            timeAt(parseTime(e.ack.at)), e.ack.comment ? " — " + e.ack.comment : ""))
          : el("span", { class: "muted" }, "no");
        // Each episode padded by a tenth of its length (at least a second)
        // on both sides.
        const length = started === null ? 0 : last - started;
        const pad = Math.max(1000, length / 10);
        const [from, to] = historyScale === "episode" && started !== null
          ? [started - pad, last + pad]
          : [now - span, now];
        const found = ruleOfEpisode(e, rules);
        const graph = found && started !== null
          ? el("a", {
            href: ruleGraphURL(found.group, found.index, found.rule.query,
              { range: rangeInput(last - started + 2 * pad), end: endInput(last + pad) }),
            class: "graph-link",
            "aria-label": "Graph of " + (e.rule || "the rule") + " during this episode",
          }, "Graph")
          : null;
        // The timeline moves with the clock: a row is redrawn each minute,
        // an ongoing episode on its own scale whenever that scale grew by
        // about a twentieth (every 5 s while it is young).
        const every = historyScale === "episode" && ended === null ? Math.max(5000, length / 20) : 60000;
        const sig = JSON.stringify([e, historyScale, !!graph, Math.floor(now / every)]);
        rows.push(el("tr", { "data-episode": id, "data-sig": sig, "data-rule": e.rule || "" },
          el("td", null, severityBadge(e.severity)),
          el("th", { scope: "row" }, e.rule || (e.labels && e.labels.alertname) || ""),
          el("td", null, labelList(e.labels, ["alertname", "severity"])),
          el("td", null, badge(e.state || "unknown")),
          el("td", null, timeAt(started)),
          el("td", started !== null && ended === null ? { "data-ongoing-since": started, class: "nowrap" } : { class: "nowrap" },
            started === null ? "—" : formatDuration(last - started)
            + (ended === null ? " (ongoing)" : "")),
          el("td", null, ack),
          el("td", { class: "timeline-cell" }, timeline(from, to, started, fired, ended, now),
            el("span", { class: "scale muted small nowrap" },
              isoLocal(from).slice(11, 19) + " – " + isoLocal(to).slice(11, 19)), graph ? " " : null, graph),
          el("td", null, toggle)));
        const detailsRow = el("tr", { id: detailsId, class: "details-row", hidden: !open, "data-sig": sig + "/details", "data-details-of": id },
          el("td", { colspan: "9" }));
        toggle.addEventListener("click", () => toggleDetails(id, toggle, detailsRow));
        rows.push(detailsRow);
      }
      return rows;
    });
  }

  function setupHistoryScale() {
    const button = $("history-scale");
    button.addEventListener("click", () => {
      historyScale = historyScale === "episode" ? "day" : "episode";
      button.setAttribute("aria-pressed", historyScale === "day" ? "true" : "false");
      button.textContent = historyScale === "day" ? "Scale timelines to each episode" : "Show timelines over 24 hours";
      refreshNow();
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
  function timeline(from, to, started, fired, ended, now) {
    const width = 200;
    const height = 14;
    const x = (t) => Math.max(0, Math.min(width, ((t - from) / (to - from)) * width));
    const end = ended === null ? now : ended;
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
      button.setAttribute("aria-label", button.getAttribute("aria-label").replace(/^Hide/, "Show"));
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
    button.setAttribute("aria-label", button.getAttribute("aria-label").replace(/^Show/, "Hide"));
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
      const [alertView, v2Alerts, silences, rules, targets, history, openHistory, stats, receivers] = await Promise.all([
        api("/api/vigil/v1/alerts"),
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
      // An evaluator without the alert view: Prometheus' list instead.
      const v1Alerts = alertView.missing ? await api("/api/v1/alerts") : { ok: false };
      const silencesById = new Map();
      if (silences.ok && Array.isArray(silences.data)) {
        for (const s of silences.data) silencesById.set(s.id, s);
      }
      const openEpisodes = openHistory.ok && openHistory.data
        ? (openHistory.data.episodes || []).filter((e) => !e.endsAt)
        : [];
      renderAlerts(alertView, v1Alerts, v2Alerts, silencesById, openEpisodes);
      renderSilences(silences);
      renderRules(rules);
      renderTargets(targets);
      renderHistory(history, rules);
      placeDetails();
      renderNoise(stats, noiseStart.getTime(), now);
      renderReceivers(receivers);
      updateClocks();
      const all = [alertView, v1Alerts, v2Alerts, silences, rules, targets, history, stats, receivers];
      const refused = all.find((r) => r.unauthorized);
      const updated = $("updated");
      updated.className = refused ? "error" : "muted";
      updated.textContent = refused
        ? "Some panels need an API token."
        : "Updated " + isoLocal(Date.now()).slice(11, 19);
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
    input.value = getToken();
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      setToken(input.value.trim());
      notice(getToken() ? "The API token is used for this browser tab." : "No API token is used.", "info");
      refreshNow();
    });
    $("token-clear").addEventListener("click", () => {
      setToken("");
      input.value = "";
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
    notice("Silence " + (id || "") + " created; it ends " + isoLocal(endsAt.getTime()) + ".", "ok");
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

  // A notification's "View" link opens the page at its alerts.
  function scrollToFilteredAlerts() {
    if (alertsFilter()) $("alerts").scrollIntoView();
  }

  function start() {
    setupToken();
    setupPause();
    setupDialogs();
    setupHistoryScale();
    window.addEventListener("hashchange", () => {
      refreshNow().then(scrollToFilteredAlerts);
    });
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && !paused) refreshNow();
    });
    loadVersion();
    refreshNow().then(scrollToFilteredAlerts);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
