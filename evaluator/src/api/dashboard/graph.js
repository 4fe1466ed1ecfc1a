// Vigil graph view at /graph: Prometheus' URL parameters (g0.expr,
// g0.tab, g0.range_input, g0.end_input, g0.step_input; g1.* ... for more
// panels) run against this evaluator's /api/v1/query_range and are
// plotted with uPlot, one line per series with its labels in the legend.
// A panel naming a rule (g0.rule_file, g0.rule_group, g0.rule_index, as a
// notification's generatorURL does) also shows the rule, draws its
// threshold and shades when its alerts were pending and firing
// (GET /api/vigil/v1/rule, from the history).
"use strict";

(function () {
  const { el, clear, parseTime, formatDuration, isoLocal, isoUtc, parseDuration, api, cleanPath, seriesName, formatNumber: number, plotColumns } = window.Vigil;
  const $ = (id) => document.getElementById(id);

  const DEFAULT_RANGE = "1h";
  const HEIGHT = 320;

  // ---- URL parameters ----------------------------------------------------

  // The panels the URL describes: every n with a g<n>.* parameter.
  function panelsFromUrl() {
    const params = new URLSearchParams(location.search);
    const indexes = new Set();
    for (const key of params.keys()) {
      const m = /^g(\d+)\./.exec(key);
      if (m) indexes.add(Number(m[1]));
    }
    const sorted = Array.from(indexes).sort((a, b) => a - b);
    if (sorted.length === 0) sorted.push(0);
    return sorted.map((n) => {
      const get = (name) => params.get("g" + n + "." + name) || "";
      const rule = get("rule_file") && get("rule_group") && get("rule_index") !== ""
        ? { file: get("rule_file"), group: get("rule_group"), index: get("rule_index") }
        : null;
      return {
        expr: get("expr"),
        tab: get("tab") === "1" ? 1 : 0,
        range: get("range_input") || DEFAULT_RANGE,
        end: get("end_input"),
        step: get("step_input"),
        rule,
      };
    });
  }

  // Writes every panel's settings back into the URL (no reload).
  function saveToUrl() {
    const params = new URLSearchParams();
    panels.forEach((p, n) => {
      const s = p.settings;
      params.set("g" + n + ".expr", s.expr);
      params.set("g" + n + ".tab", String(s.tab));
      params.set("g" + n + ".range_input", s.range);
      if (s.end) params.set("g" + n + ".end_input", s.end);
      if (s.step) params.set("g" + n + ".step_input", s.step);
      if (s.rule) {
        params.set("g" + n + ".rule_file", s.rule.file);
        params.set("g" + n + ".rule_group", s.rule.group);
        params.set("g" + n + ".rule_index", s.rule.index);
      }
    });
    history.replaceState(null, "", "/graph?" + params.toString());
  }

  // g0.end_input: "2026-12-02 09:50:37" (UTC, as Prometheus writes it),
  // RFC 3339, or empty for now.
  function parseEnd(text) {
    const t = String(text || "").trim();
    if (!t) return { ms: Date.now() };
    const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d(?::\d\d(?:\.\d+)?)?)$/.exec(t);
    const ms = m ? Date.parse(m[1] + "T" + m[2] + "Z") : Date.parse(t);
    if (Number.isNaN(ms)) {
      return { error: "The end time " + JSON.stringify(t) + " is not a date; write 2026-12-02 09:50:37 (UTC), an RFC 3339 time, or leave it empty for now." };
    }
    return { ms };
  }

  // ---- formatting ----------------------------------------------------------

  function cssVar(name, fallback) {
    const v = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return v || fallback;
  }

  // ---- a panel -------------------------------------------------------------

  const panels = [];

  function addPanel(settings) {
    const n = panels.length;
    const id = "panel-" + n;
    const exprInput = el("textarea", { id: id + "-expr", class: "expr", rows: "2", spellcheck: "false" });
    exprInput.value = settings.expr;
    const rangeInput = el("input", { id: id + "-range", class: "range", size: "6" });
    rangeInput.value = settings.range;
    const endInput = el("input", { id: id + "-end", class: "end", size: "20", placeholder: "now" });
    endInput.value = settings.end;
    const stepInput = el("input", { id: id + "-step", class: "step", size: "6", placeholder: "auto" });
    stepInput.value = settings.step;
    const graphTab = el("button", { type: "button", class: "tab tab-graph", "aria-pressed": settings.tab === 0 ? "true" : "false" }, "Graph");
    const tableTab = el("button", { type: "button", class: "tab tab-table", "aria-pressed": settings.tab === 1 ? "true" : "false" }, "Table");
    const status = el("p", { class: "panel-status", role: "status" });
    const ruleBox = el("div", { class: "rule-box", hidden: true });
    // Focusable: a legend wider than the page scrolls, by keyboard too.
    const plotBox = el("div", { class: "plot", hidden: settings.tab !== 0, tabindex: "0", role: "region", "aria-label": "Graph of panel " + (n + 1) });
    const intervalsList = el("ul", { class: "intervals small", hidden: true });
    const tableBox = el("div", { class: "table-wrap result-table", hidden: settings.tab !== 1, tabindex: "0", role: "region", "aria-label": "Result table of panel " + (n + 1) });
    const form = el("form", { class: "query-form", autocomplete: "off" },
      el("label", { for: exprInput.id }, "Expression"),
      exprInput,
      el("div", { class: "query-controls" },
        el("label", { for: rangeInput.id }, "Range"), rangeInput,
        el("label", { for: endInput.id }, "End (UTC)"), endInput,
        el("label", { for: stepInput.id }, "Step"), stepInput,
        el("button", { type: "submit", class: "execute" }, "Execute"),
        el("span", { class: "tabs", role: "group", "aria-label": "View of panel " + (n + 1) }, graphTab, tableTab)));
    const section = el("section", { id, class: "graph-panel", "aria-labelledby": id + "-h", "data-series-count": "0" },
      el("h2", { id: id + "-h" }, "Panel " + (n + 1)),
      ruleBox, form, status, plotBox, intervalsList, tableBox);
    $("panels").appendChild(section);

    const panel = { settings, section, status, ruleBox, plotBox, intervalsList, tableBox, plot: null, rule: null };
    panels.push(panel);

    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      settings.expr = exprInput.value.trim();
      settings.range = rangeInput.value.trim() || DEFAULT_RANGE;
      settings.end = endInput.value.trim();
      settings.step = stepInput.value.trim();
      saveToUrl();
      run(panel);
    });
    const showTab = (tab) => {
      settings.tab = tab;
      graphTab.setAttribute("aria-pressed", tab === 0 ? "true" : "false");
      tableTab.setAttribute("aria-pressed", tab === 1 ? "true" : "false");
      saveToUrl();
      run(panel);
    };
    graphTab.addEventListener("click", () => showTab(0));
    tableTab.addEventListener("click", () => showTab(1));
    return panel;
  }

  function setStatus(panel, text, kind) {
    panel.status.className = "panel-status " + (kind || "muted");
    panel.status.setAttribute("role", kind === "error" ? "alert" : "status");
    panel.status.textContent = text;
  }

  // Runs the panel's query and shows the graph or the table.
  async function run(panel) {
    const s = panel.settings;
    panel.plotBox.hidden = s.tab !== 0;
    panel.intervalsList.hidden = s.tab !== 0 || panel.intervalsList.childElementCount === 0;
    panel.tableBox.hidden = s.tab !== 1;
    const range = parseDuration(s.range);
    if (range === null) {
      setStatus(panel, "The range " + JSON.stringify(s.range) + " is not a duration; write one like 15m, 1h or 2d.", "error");
      return;
    }
    const end = parseEnd(s.end);
    if (end.error) {
      setStatus(panel, end.error, "error");
      return;
    }
    let step = null;
    if (s.step) {
      step = parseDuration(s.step);
      if (step === null) {
        setStatus(panel, "The step " + JSON.stringify(s.step) + " is not a duration; write one like 15s or 1m, or leave it empty.", "error");
        return;
      }
    }
    const start = end.ms - range;
    const rule = s.rule ? await loadRule(panel, start, end.ms) : null;
    if (!s.expr) {
      setStatus(panel, "Enter an expression and press Execute.");
      return;
    }
    // A rule's own expression is plotted as the value it compares, so the
    // line shows what the rule saw below its threshold too.
    const threshold = rule && rule.threshold && rule.expr === s.expr ? rule.threshold : null;
    const plotted = threshold ? threshold.operand : s.expr;
    if (s.tab === 1) {
      await runTable(panel, s.expr, end.ms);
      return;
    }
    await runGraph(panel, plotted, start, end.ms, step, threshold, rule);
  }

  async function loadRule(panel, start, end) {
    const r = panel.settings.rule;
    const q = new URLSearchParams({
      file: r.file, group: r.group, index: r.index,
      start: new Date(start).toISOString(), end: new Date(end).toISOString(),
    });
    const result = await api("/api/vigil/v1/rule?" + q.toString());
    clear(panel.ruleBox);
    panel.ruleBox.hidden = false;
    if (!result.ok) {
      panel.ruleBox.appendChild(el("p", { class: "error-text" },
        "The rule of this link (" + r.group + ", rule " + (Number(r.index) + 1) + " of " + cleanPath(r.file) + ") cannot be shown: " +
        (result.missing ? "this evaluator does not serve /api/vigil/v1/rule." : result.error)));
      panel.rule = null;
      return null;
    }
    const rule = result.data;
    panel.rule = rule;
    const labels = Object.keys(rule.labels || {}).sort().map((k) => k + "=" + rule.labels[k]).join(", ");
    panel.ruleBox.appendChild(el("p", { class: "rule-title" },
      el("strong", { class: "rule-name" }, rule.name),
      labels ? " (" + labels + ")" : "",
      el("span", { class: "muted" }, " — " + rule.type + " rule " + (rule.index + 1) + " of group " + rule.group +
        " in " + cleanPath(rule.file) + (rule.forSeconds ? ", for " + formatDuration(rule.forSeconds * 1000) : ""))));
    panel.ruleBox.appendChild(el("code", { class: "rule-expr" }, rule.expr));
    if (rule.type === "alerting") {
      const q = new URLSearchParams({ file: r.file, group: r.group, index: r.index });
      panel.ruleBox.appendChild(el("p", { class: "small" }, el("a", { href: "/tune?" + q.toString(), class: "tune-link" }, "Tune this rule"),
        " — edit its threshold and for, and compare the would-be alerts over past days"));
    }
    const summary = rule.annotations && rule.annotations.summary;
    if (summary) panel.ruleBox.appendChild(el("p", { class: "muted small" }, "Summary template: " + summary));
    if (rule.threshold) {
      panel.ruleBox.appendChild(el("p", { class: "small threshold-note" },
        "The graph plots ", el("code", null, rule.threshold.operand), " against the rule's threshold " +
        rule.threshold.op + " " + number(rule.threshold.value) + "; shaded: when its alerts were pending (light) and firing (dark)."));
    }
    panel.section.dataset.rule = rule.name;
    return rule;
  }

  async function runTable(panel, expr, endMs) {
    setStatus(panel, "Loading…");
    const q = new URLSearchParams({ query: expr, time: String(endMs / 1000) });
    const result = await api("/api/v1/query?" + q.toString());
    clear(panel.tableBox);
    if (!result.ok) {
      setStatus(panel, "The query failed: " + result.error, "error");
      return;
    }
    const data = result.data || {};
    const rows = [];
    if (data.resultType === "vector") {
      for (const s of data.result || []) rows.push([seriesName(s.metric), s.value ? s.value[1] : null]);
    } else if (data.resultType === "scalar" || data.resultType === "string") {
      rows.push(["scalar", data.result ? data.result[1] : null]);
    } else if (data.resultType === "matrix") {
      for (const s of data.result || []) {
        const last = (s.values || [])[s.values.length - 1];
        rows.push([seriesName(s.metric), last ? last[1] : null]);
      }
    }
    const table = el("table", { class: "result" },
      el("caption", null, "Values at " + isoLocal(endMs)),
      el("thead", null, el("tr", null, el("th", { scope: "col" }, "Series"), el("th", { scope: "col" }, "Value"))),
      el("tbody", null, rows.map(([name, value]) =>
        el("tr", null, el("td", { class: "series" }, name), el("td", { class: "num" }, number(value))))));
    panel.tableBox.appendChild(table);
    panel.section.dataset.seriesCount = String(rows.length);
    setStatus(panel, rows.length === 0 ? "No data at " + isoLocal(endMs) + "." : rows.length + " series.");
  }

  // A step giving about 250 points over the range (Prometheus' choice),
  // whole seconds, at least one.
  function autoStep(rangeMs) {
    return Math.max(1, Math.round(rangeMs / 250 / 1000)) * 1000;
  }

  async function runGraph(panel, expr, start, end, step, threshold, rule) {
    setStatus(panel, "Loading…");
    const stepMs = step || autoStep(end - start);
    const q = new URLSearchParams({
      query: expr, start: String(start / 1000), end: String(end / 1000), step: String(stepMs / 1000),
    });
    const result = await api("/api/v1/query_range?" + q.toString());
    if (!result.ok) {
      setStatus(panel, "The query failed: " + result.error, "error");
      return;
    }
    const data = result.data || {};
    let series = [];
    if (data.resultType === "matrix") series = data.result || [];
    else if (data.resultType === "vector") series = (data.result || []).map((s) => ({ metric: s.metric, values: [s.value] }));
    const { xs, columns, opts: seriesOpts } = plotColumns(series, [start / 1000, end / 1000], true);
    if (threshold) {
      columns.push(new Array(xs.length).fill(threshold.value));
      seriesOpts.push({
        label: "threshold " + threshold.op + " " + number(threshold.value),
        stroke: cssVar("--bad", "#cf222e"), width: 2, dash: [6, 4], value: (u, v) => number(v),
        points: { show: false },
      });
    }
    draw(panel, columns, seriesOpts, rule, [start / 1000, end / 1000]);
    panel.section.dataset.seriesCount = String(series.length);
    panel.section.dataset.threshold = threshold ? String(threshold.value) : "";
    setStatus(panel, series.length === 0
      ? "No data between " + isoLocal(start) + " and " + isoLocal(end) + "."
      : series.length + " series from " + isoLocal(start) + " to " + isoLocal(end) + ", one point every " + formatDuration(stepMs) + ".");
    showIntervals(panel, rule);
  }

  // The rule's pending and firing intervals, as shaded boxes over the plot
  // (kept in place on zoom and resize).
  function placeBands(u, panel) {
    const over = u.over;
    for (const old of Array.from(over.querySelectorAll(".band"))) old.remove();
    const rule = panel.rule;
    if (!rule || !rule.intervals) return;
    const [min, max] = [u.scales.x.min, u.scales.x.max];
    const now = Date.now() / 1000;
    for (const iv of rule.intervals) {
      const s = (parseTime(iv.start) || 0) / 1000;
      const e = iv.end ? parseTime(iv.end) / 1000 : now;
      if (e < min || s > max) continue;
      const left = u.valToPos(Math.max(s, min), "x");
      const right = u.valToPos(Math.min(e, max), "x");
      const band = el("div", {
        class: "band band-" + iv.state,
        "data-start": iv.start, "data-end": iv.end || "",
        title: iv.state + " " + isoLocal(s * 1000) + " – " + (iv.end ? isoLocal(e * 1000) : "now"),
      });
      band.style.left = left + "px";
      band.style.width = Math.max(2, right - left) + "px";
      over.appendChild(band);
    }
  }

  function showIntervals(panel, rule) {
    const list = panel.intervalsList;
    clear(list);
    if (!rule || !rule.intervals || rule.intervals.length === 0) {
      list.hidden = true;
      return;
    }
    for (const iv of rule.intervals) {
      const s = parseTime(iv.start);
      const e = iv.end ? parseTime(iv.end) : null;
      const labels = Object.keys(iv.labels || {}).filter((k) => k !== "alertname").sort()
        .map((k) => k + "=" + iv.labels[k]).join(", ");
      list.appendChild(el("li", { class: "interval interval-" + iv.state },
        el("span", { class: "badge badge-" + iv.state }, iv.state), " ",
        el("time", { datetime: isoUtc(s), title: isoUtc(s) + " (UTC)" }, isoLocal(s)), " – ",
        e === null ? "now" : el("time", { datetime: isoUtc(e), title: isoUtc(e) + " (UTC)" }, isoLocal(e)),
        " (" + formatDuration((e === null ? Date.now() : e) - s) + ")",
        labels ? " " + labels : ""));
    }
    list.hidden = panel.settings.tab !== 0;
  }

  function draw(panel, columns, seriesOpts, rule, xRange) {
    if (panel.plot) {
      panel.plot.destroy();
      panel.plot = null;
    }
    clear(panel.plotBox);
    const fg = cssVar("--fg", "#1f2328");
    const grid = cssVar("--line", "#d1d9e0");
    const axis = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid, width: 1 } };
    // Time ticks in 24-hour local time: seconds when ticks are under a
    // minute apart, the date when they are a day or more apart.
    // (uPlot passes the tick increment, in seconds, fifth.)
    const timeTicks = (u, splits, axisIdx, space, incr) => splits.map((t) => {
      const iso = isoLocal(t * 1000);
      if (incr >= 86400) return iso.slice(0, 10);
      return incr < 60 ? iso.slice(11, 19) : iso.slice(11, 16);
    });
    const opts = {
      width: Math.max(280, panel.plotBox.clientWidth || panel.section.clientWidth || 800),
      height: HEIGHT,
      series: seriesOpts,
      scales: { x: { time: true, min: xRange[0], max: xRange[1] } },
      axes: [Object.assign({ values: timeTicks }, axis), Object.assign({ size: 60, values: (u, vals) => vals.map(number) }, axis)],
      cursor: { drag: { x: true, y: false } },
      legend: { live: true },
      hooks: {
        draw: [(u) => placeBands(u, panel)],
      },
    };
    panel.plot = new window.uPlot(opts, columns, panel.plotBox);
    panel.plot.root.setAttribute("role", "img");
    panel.plot.root.setAttribute("aria-label", "Graph of " + (seriesOpts.length - 1) + " lines; the legend below lists them");
  }

  function resizeAll() {
    for (const p of panels) {
      if (p.plot) p.plot.setSize({ width: Math.max(280, p.plotBox.clientWidth), height: HEIGHT });
    }
  }

  function start() {
    const offset = -new Date().getTimezoneOffset();
    const sign = offset < 0 ? "-" : "+";
    const abs = Math.abs(offset);
    $("zone").textContent = "Times in your browser's zone, UTC" + sign +
      String(Math.floor(abs / 60)).padStart(2, "0") + ":" + String(abs % 60).padStart(2, "0") + " (UTC on hover)";
    if (typeof window.uPlot !== "function") {
      const notice = $("notice");
      notice.className = "notice error";
      notice.textContent = "The charting library did not load; reload the page.";
      notice.hidden = false;
      return;
    }
    for (const settings of panelsFromUrl()) addPanel(settings);
    $("add-panel").addEventListener("click", () => {
      const p = addPanel({ expr: "", tab: 0, range: DEFAULT_RANGE, end: "", step: "", rule: null });
      saveToUrl();
      p.section.querySelector("textarea").focus();
    });
    let resizeTimer = null;
    window.addEventListener("resize", () => {
      clearTimeout(resizeTimer);
      resizeTimer = setTimeout(resizeAll, 100);
    });
    for (const p of panels) run(p);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
