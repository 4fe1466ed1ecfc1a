// Vigil's pages (the dashboard at /, the graph view at /graph and the
// Tune view at /tune) share these helpers: building elements from text
// (never from markup), times and durations as people read them, series
// names and values, and the JSON API client with the
// tab's API token. Loaded before each page's own script; exposed as
// window.Vigil.
"use strict";

window.Vigil = (function () {
  const SVG_NS = "http://www.w3.org/2000/svg";

  // ---- elements ------------------------------------------------------------

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

  // ---- times ---------------------------------------------------------------

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

  function pad(n, width) {
    return String(n).padStart(width || 2, "0");
  }

  // ISO 8601 in the browser's time zone, with its offset:
  // 2026-12-02T09:50:37+01:00.
  function isoLocal(ms) {
    const d = new Date(ms);
    const offset = -d.getTimezoneOffset();
    const sign = offset < 0 ? "-" : "+";
    const abs = Math.abs(offset);
    return d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) +
      "T" + pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) +
      sign + pad(Math.floor(abs / 60)) + ":" + pad(abs % 60);
  }

  // ISO 8601 in UTC, to the second: 2026-12-02T08:50:37Z.
  function isoUtc(ms) {
    return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
  }

  // A <time> showing the local ISO time, UTC on hover.
  function timeAt(ms) {
    if (ms === null || ms === undefined) return el("span", { class: "muted" }, "—");
    return el("time", { datetime: isoUtc(ms), title: isoUtc(ms) + " (UTC)", class: "nowrap" }, isoLocal(ms));
  }

  function labelList(labels, skip) {
    const list = el("ul", { class: "labels" });
    for (const name of Object.keys(labels || {}).sort()) {
      if (skip && skip.includes(name)) continue;
      // Long values are cut with an ellipsis; the whole pair on hover.
      list.appendChild(el("li", { class: "label", title: name + "=" + labels[name] }, name + "=" + labels[name]));
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

  // ---- series (the graph and the Tune view) -----------------------------

  // Distinct line colours, readable on light and dark backgrounds.
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22"];

  // A series' name as PromQL writes it: name{label="value", ...}.
  function seriesName(metric) {
    const labels = Object.assign({}, metric || {});
    const name = labels.__name__ || "";
    delete labels.__name__;
    const pairs = Object.keys(labels).sort().map((k) => k + "=" + JSON.stringify(String(labels[k])));
    return name + "{" + pairs.join(", ") + "}";
  }

  // A sample value with at most six significant digits; "—" for none.
  function formatNumber(v) {
    if (v === null || v === undefined) return "—";
    const n = Number(v);
    if (!Number.isFinite(n)) return String(v);
    return String(Number(n.toPrecision(6)));
  }

  // uPlot's columns and series options for a query's matrix `series`: one
  // x axis of every timestamp of any series (seconds; `bounds` added too,
  // always or, with `onlyIfEmpty`, when no series has a point), a column
  // per series with null in its gaps and for non-finite values, and a
  // legend entry per series.
  function plotColumns(series, bounds, onlyIfEmpty) {
    const times = new Set();
    for (const s of series) for (const [t] of s.values || []) times.add(Number(t));
    if (!onlyIfEmpty || times.size === 0) for (const t of bounds) times.add(t);
    const xs = Array.from(times).sort((a, b) => a - b);
    const at = new Map(xs.map((t, i) => [t, i]));
    const columns = [xs];
    const opts = [{ label: "Time", value: (u, v) => (v === null || v === undefined ? "—" : isoLocal(v * 1000)) }];
    series.forEach((s, i) => {
      const ys = new Array(xs.length).fill(null);
      for (const [t, v] of s.values || []) {
        const n = Number(v);
        ys[at.get(Number(t))] = Number.isFinite(n) ? n : null;
      }
      columns.push(ys);
      opts.push({ label: seriesName(s.metric), stroke: PALETTE[i % PALETTE.length], width: 1.5, value: (u, v) => formatNumber(v) });
    });
    return { xs, columns, opts };
  }

  // ---- the API -----------------------------------------------------------

  const TOKEN_KEY = "vigil.token";
  let token = storageGet(sessionStorage, TOKEN_KEY);

  // The API token of this browser tab ("" for none).
  function getToken() {
    return token;
  }

  function setToken(value) {
    token = value;
    storageSet(sessionStorage, TOKEN_KEY, token);
  }

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

  // A rule file's path without "dir/../" detours and "./" steps:
  // "examples/../rules/http.yaml" is "rules/http.yaml".
  function cleanPath(path) {
    const text = String(path || "");
    const absolute = text.startsWith("/");
    const out = [];
    for (const part of text.split("/")) {
      if (part === "" || part === ".") continue;
      if (part === ".." && out.length > 0 && out[out.length - 1] !== "..") out.pop();
      else if (part === ".." && absolute) continue;
      else out.push(part);
    }
    return (absolute ? "/" : "") + out.join("/");
  }

  return {
    el, svg, setAttrs, append, clear, storageGet, storageSet,
    parseTime, formatDuration, isoLocal, isoUtc, timeAt,
    labelList, badge, parseDuration, api, getToken, setToken, cleanPath,
    seriesName, formatNumber, PALETTE, plotColumns,
  };
})();
