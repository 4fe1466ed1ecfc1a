// Vigil "Tune" view at /tune?file=&group=&index= (a rule as /api/v1/rules
// lists it; from= and to= optional): edit an alerting rule's threshold and
// `for`, then see its compared expression plotted over the range with the
// current and the edited rule's would-be firing intervals (two bands) and
// notification counts side by side, from POST /api/vigil/v1/backtest.
"use strict";

(function () {
  const { el, clear, formatDuration, isoLocal, parseDuration, api, getToken, setToken, cleanPath, formatNumber: number, plotColumns } = window.Vigil;
  const $ = (id) => document.getElementById(id);
  const HEIGHT = 300;

  // "7d" (ago), "now", Unix seconds or RFC 3339, as milliseconds; null if none.
  function timeOf(text) {
    const t = String(text || "").trim();
    if (t === "" || t === "now") return Date.now();
    if (/^\d+(\.\d+)?$/.test(t)) return Number(t) * 1000;
    const ago = parseDuration(t);
    if (ago !== null) return Date.now() - ago;
    const ms = Date.parse(t);
    return Number.isNaN(ms) ? null : ms;
  }

  // A one-rule rule file (JSON is YAML) for the backtest.
  function ruleFile(rule, expr, forSeconds) {
    return JSON.stringify({
      groups: [{
        name: rule.group,
        interval: (rule.groupIntervalSeconds || 60) + "s",
        rules: [{ alert: rule.name, expr, for: forSeconds + "s", labels: rule.labels || {} }],
      }],
    });
  }

  let rule = null;
  let plot = null;
  let episodes = { current: [], edited: [] };

  function status(text, kind) {
    const s = $("status");
    s.className = "panel-status " + (kind || "muted");
    s.setAttribute("role", kind === "error" ? "alert" : "status");
    s.textContent = text;
  }

  async function loadRule(params) {
    const q = new URLSearchParams({ file: params.get("file") || "", group: params.get("group") || "", index: params.get("index") || "" });
    const result = await api("/api/vigil/v1/rule?" + q.toString());
    const box = $("rule");
    clear(box);
    if (!result.ok) {
      box.appendChild(el("p", { class: "error-text" }, "The rule of this link cannot be shown: " +
        (result.missing ? "this evaluator does not serve /api/vigil/v1/rule." : result.error) +
        " Open the Tune view from a rule's row in the dashboard's Rules panel."));
      return null;
    }
    const r = result.data;
    box.appendChild(el("p", { class: "rule-title" }, el("strong", { class: "rule-name" }, r.name),
      el("span", { class: "muted" }, " — rule " + (r.index + 1) + " of group " + r.group + " in " + cleanPath(r.file) +
        ", for " + formatDuration(r.forSeconds * 1000))));
    box.appendChild(el("code", { class: "rule-expr" }, r.expr));
    if (r.type !== "alerting") {
      box.appendChild(el("p", { class: "error-text" }, "This is a recording rule; only alerting rules can be tuned."));
      return null;
    }
    if (!r.threshold) {
      box.appendChild(el("p", { class: "error-text" }, "This rule's expression is not a comparison against a number (like rate(x[5m]) > 0.1), so it has no threshold to edit; only its `for` can be tuned."));
    }
    return r;
  }

  function editedExpr() {
    const text = $("threshold").value.trim();
    if (!rule.threshold) return { expr: rule.expr };
    const value = Number(text);
    if (text === "" || !Number.isFinite(value)) {
      return { error: "The threshold " + JSON.stringify(text) + " is not a number; write one like 0.05 or 100." };
    }
    return { expr: rule.threshold.operand + " " + rule.threshold.op + " " + text };
  }

  async function run() {
    if (!rule) return;
    setToken($("token").value);
    const edited = editedExpr();
    if (edited.error) return status(edited.error, "error");
    const forText = $("for").value.replace(/\s/g, "");
    const forMs = /^0+(ms|[smhdwy])?$/.test(forText) ? 0 : parseDuration(forText);
    if (forMs === null) return status("The `for` " + JSON.stringify($("for").value) + " is not a duration; write one like 0s, 5m or 1h.", "error");
    const from = timeOf($("from").value);
    const to = timeOf($("to").value);
    if (from === null || to === null || from >= to) {
      return status("From and To must be times with From first: a duration ago (7d), now, Unix seconds or RFC 3339.", "error");
    }
    const params = new URLSearchParams(location.search);
    params.set("from", $("from").value.trim());
    params.set("to", $("to").value.trim());
    history.replaceState(null, "", "/tune?" + params.toString());
    status("Backtesting…");
    const forSeconds = Math.round(forMs / 1000);
    const answer = await api("/api/vigil/v1/backtest", {
      method: "POST",
      body: {
        from: String(Math.floor(from / 1000)), to: String(Math.floor(to / 1000)), alert: rule.name,
        baseline_rules: ruleFile(rule, rule.expr, rule.forSeconds),
        rules: ruleFile(rule, edited.expr, forSeconds),
      },
    });
    if (!answer.ok) return status("The backtest failed: " + answer.error, "error");
    const current = (answer.data.baseline || [])[0];
    const changed = (answer.data.changed || [])[0];
    episodes = {
      current: current ? current.episode_list : [],
      edited: changed ? changed.episode_list : [],
    };
    showComparison([
      ["current", "As it runs", rule.expr, rule.forSeconds, current],
      ["edited", "Edited", edited.expr, forSeconds, changed],
    ]);
    const graphError = await drawGraph(from, to);
    if (graphError) status("Backtested; but the graph's query failed: " + graphError, "error");
    else status("Backtested " + isoLocal(from) + " to " + isoLocal(to) + ".");
  }

  function showComparison(rows) {
    const body = $("compare-body");
    clear(body);
    for (const [key, title, expr, forSeconds, report] of rows) {
      body.appendChild(el("tr", { id: "row-" + key },
        el("th", { scope: "row" }, el("span", { class: "swatch swatch-" + key }), title),
        el("td", null, el("code", null, expr)),
        el("td", null, formatDuration(forSeconds * 1000)),
        el("td", { class: "num episodes" }, String(report ? report.episodes : 0)),
        el("td", { class: "num notifications" }, String(report ? report.notifications_total : 0)),
        el("td", { class: "num" }, formatDuration((report ? report.firing_seconds : 0) * 1000))));
    }
    $("compare").hidden = false;
  }

  // The two rules' episodes as bands: the current rule's in the top half
  // of the plot, the edited one's in the bottom half.
  function placeBands(u) {
    for (const old of Array.from(u.over.querySelectorAll(".band"))) old.remove();
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    for (const key of ["current", "edited"]) {
      for (const e of episodes[key]) {
        const s = e.start_ms / 1000;
        const end = (e.end_ms === null || e.end_ms === undefined ? max * 1000 : e.end_ms) / 1000;
        if (end < min || s > max) continue;
        const left = u.valToPos(Math.max(s, min), "x");
        const right = u.valToPos(Math.min(end, max), "x");
        const band = el("div", {
          class: "band band-" + key, "data-start": e.start, "data-end": e.end || "",
          title: (key === "current" ? "as it runs" : "edited") + ": firing " + isoLocal(s * 1000) + " – " + isoLocal(end * 1000),
        });
        band.style.left = left + "px";
        band.style.width = Math.max(2, right - left) + "px";
        u.over.appendChild(band);
      }
    }
  }

  // Plots the compared expression (the whole one without a threshold);
  // returns the query's error, if any.
  async function drawGraph(from, to) {
    const expr = rule.threshold ? rule.threshold.operand : rule.expr;
    const step = Math.max(1, Math.round((to - from) / 250 / 1000));
    const q = new URLSearchParams({ query: expr, start: String(from / 1000), end: String(to / 1000), step: String(step) });
    const result = await api("/api/v1/query_range?" + q.toString());
    const series = result.ok && result.data && result.data.resultType === "matrix" ? result.data.result || [] : [];
    const { xs, columns, opts } = plotColumns(series, [from / 1000, to / 1000], false);
    if (rule.threshold) {
      for (const [label, value, dash] of [["current threshold", rule.threshold.value, [6, 4]], ["edited threshold", Number($("threshold").value), [2, 3]]]) {
        columns.push(new Array(xs.length).fill(value));
        opts.push({ label: label + " " + rule.threshold.op + " " + number(value), stroke: "#6e7781", width: 2, dash, points: { show: false }, value: (u, v) => number(v) });
      }
    }
    if (plot) plot.destroy();
    clear($("plot"));
    plot = new window.uPlot({
      width: Math.max(280, $("plot").clientWidth || 800), height: HEIGHT, series: opts,
      scales: { x: { time: true, min: from / 1000, max: to / 1000 } },
      axes: [{ values: (u, splits) => splits.map((t) => isoLocal(t * 1000).slice(5, 16)) }, { size: 60, values: (u, vals) => vals.map(number) }],
      hooks: { draw: [placeBands] },
    }, columns, $("plot"));
    plot.root.setAttribute("role", "img");
    plot.root.setAttribute("aria-label", "Graph of " + expr + "; top band: the current rule firing, bottom band: the edited rule firing");
    return result.ok ? null : result.error;
  }

  async function start() {
    if (typeof window.uPlot !== "function") {
      const notice = $("notice");
      notice.className = "notice error";
      notice.textContent = "The charting library did not load; reload the page.";
      notice.hidden = false;
      return;
    }
    const params = new URLSearchParams(location.search);
    $("from").value = params.get("from") || "1d";
    $("to").value = params.get("to") || "now";
    $("token").value = getToken();
    rule = await loadRule(params);
    if (!rule) return;
    $("threshold").value = rule.threshold ? String(rule.threshold.value) : "";
    $("threshold").disabled = !rule.threshold;
    $("for").value = formatDuration(rule.forSeconds * 1000).replace(/ /g, "");
    $("tune-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      run();
    });
    document.body.dataset.ready = "true";
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
