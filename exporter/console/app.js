// The aispend console: plain JS pages over the exporter's JSON API (/v1/usage, /v1/calls,
// /v1/series, /v1/labels, /v1/budgets). Charts are plotly.js, served by the exporter from the
// installed plotly package. Every value is put on the page as text (never as HTML).
"use strict";

const TOKEN_KEY = "aispend.token";
const PRESETS = [["today", "Today"], ["7d", "Last 7 days"], ["month", "This month"], ["30d", "Last 30 days"], ["all", "All time"]];
const LABELS = ["service", "provider", "model", "operation", "feature", "customer", "key", "status"];
const PAGES = { overview, calls, models, features, customers, keys, budgets };
let view = null; // what the current page shows, for its exports: {page, range, cards, tables}
let timezone = "";
let renders = 0; // counts finished renders (tests wait on it)

// -- small helpers --------------------------------------------------------------------------------
function h(tag, attrs, ...kids) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const kid of kids.flat(Infinity)) {
    if (kid === undefined || kid === null || kid === false) continue;
    el.append(kid instanceof Node ? kid : document.createTextNode(String(kid)));
  }
  return el;
}

// exact dollars (a decimal string) rounded half-even to 6 places, with thousands separators
function usd6(text) {
  text = String(text ?? "0");
  const neg = text.startsWith("-");
  if (neg) text = text.slice(1);
  let [whole, frac = ""] = text.split(".");
  frac = (frac + "000000000").slice(0, 9);
  let nano = BigInt(whole || "0") * 1000000000n + BigInt(frac);
  let micro = nano / 1000n;
  const rest = nano % 1000n;
  if (rest > 500n || (rest === 500n && micro % 2n === 1n)) micro += 1n;
  const dollars = (micro / 1000000n).toLocaleString("en-US");
  const cents = (micro % 1000000n).toString().padStart(6, "0");
  return (neg ? "-" : "") + dollars + "." + cents;
}
const money = (text) => "$" + usd6(text);
const int = (n) => Number(n || 0).toLocaleString("en-US");
const plainNumber = (text) => String(text).replaceAll(",", "").replace("$", "");
const none = (v) => (v === "" || v === null || v === undefined ? "(none)" : v);
const shortTime = (iso) => (iso ? iso.slice(0, 19).replace("T", " ") : "");
// a bucket's label: the day for daily series, "MM-DD HH:00" for hourly ones
const chartTime = (series) => series.points.map((p) => (series.bucket === "day" ? p.start.slice(0, 10) : p.start.slice(5, 16).replace("T", " ")));

function route() {
  const hash = location.hash.replace(/^#\/?/, "");
  const [path, query = ""] = hash.split("?");
  const [page, ...rest] = path.split("/");
  return { page: PAGES[page] ? page : "overview", arg: rest.length ? decodeURIComponent(rest.join("/")) : null, params: new URLSearchParams(query) };
}

function go(page, arg, params) {
  const query = params.toString();
  location.hash = "#/" + page + (arg !== null && arg !== undefined ? "/" + encodeURIComponent(arg) : "") + (query ? "?" + query : "");
}

function withParams(params, changes) {
  const next = new URLSearchParams(params);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === undefined || v === "") next.delete(k);
    else next.set(k, v);
  }
  return next;
}

// the hash's range as API parameters; no `since` means this calendar month, since=all all time
// "Last 7 days" is today and the 6 calendar days before it (in the server's timezone): whole days,
// which the ledger's daily totals answer without reading single calls
function daysBack(n) {
  const today = new Intl.DateTimeFormat("en-CA", { timeZone: timezone || "UTC" }).format(new Date());
  const d = new Date(today + "T00:00:00Z");
  d.setUTCDate(d.getUTCDate() - (n - 1));
  return d.toISOString().slice(0, 10);
}

function rangeParams(params) {
  const since = params.get("since") || "month";
  const out = {};
  const days = /^(\d+)d$/.exec(since);
  if (days) out.since = daysBack(Number(days[1]));
  else if (since !== "all") out.since = since;
  if (params.get("until")) out.until = params.get("until");
  return out;
}

function link(page, arg, params, text) {
  const query = params ? params.toString() : "";
  return h("a", { href: "#/" + page + (arg !== null && arg !== undefined ? "/" + encodeURIComponent(arg) : "") + (query ? "?" + query : "") }, text);
}

// -- the JSON API, with the bearer token the user entered -------------------------------------------
async function api(path, params) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params || {})) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  const token = sessionStorage.getItem(TOKEN_KEY);
  const response = await fetch(url, { headers: token ? { Authorization: "Bearer " + token } : {} });
  if (response.status === 401) {
    await askToken(token ? "That token was not accepted." : "");
    return api(path, params);
  }
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function askToken(message) {
  return new Promise((resolve) => {
    const dialog = document.getElementById("tokendialog");
    document.getElementById("tokenerror").textContent = message;
    document.getElementById("tokeninput").value = "";
    const form = document.getElementById("tokenform");
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, document.getElementById("tokeninput").value.trim());
      document.getElementById("signout").hidden = false;
      dialog.close();
      resolve();
    };
    if (!dialog.open) dialog.showModal();
  });
}

// -- building blocks -----------------------------------------------------------------------------------
function card(label, value, sub, id) {
  return h("div", { class: "card", id }, h("div", { class: "label" }, label), h("div", { class: "value" }, value), sub ? h("div", { class: "sub" }, sub) : null);
}

function totalCard(label, t, id) {
  view.cards[label] = { cost_usd: usd6(t.cost_usd), calls: t.calls };
  return card(label, money(t.cost_usd), int(t.calls) + " calls", id);
}

// columns: {key, label, num, fmt(row) -> text|Node, csv(row) -> text, sort}
function table(name, title, columns, rows, opts = {}) {
  const exportRows = () => rowsForExport(columns, opts.rows ? opts.rows() : rows);
  view.tables[name] = exportRows;
  const head = h("tr", {}, columns.map((c) => {
    const sorted = opts.sort && c.sort && opts.sort === c.sort;
    return h("th", { class: [c.num ? "num" : "", c.sort && opts.onSort ? "sortable" : "", sorted ? "sorted" : ""].join(" "), onclick: c.sort && opts.onSort ? () => opts.onSort(c.sort) : null, title: c.sort && opts.onSort ? "sort by " + c.label : null }, c.label);
  }));
  const body = h("tbody");
  const panel = h("section", { class: "panel", id: "table-" + name },
    h("h2", {}, title, opts.note ? h("span", { class: "muted" }, opts.note) : null,
      h("span", { class: "tools" },
        h("button", { type: "button", class: "export-csv", onclick: () => download(name + ".csv", toCsv(columns, exportRows()), "text/csv") }, "CSV"), " ",
        h("button", { type: "button", class: "export-json", onclick: () => download(name + ".json", JSON.stringify(exportRows(), null, 2), "application/json") }, "JSON"))),
    h("table", {}, h("thead", {}, head), body));
  panel.addRows = (more) => appendRows(body, columns, more, opts);
  if (!rows.length) body.append(h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, opts.empty || "Nothing in this range.")));
  else appendRows(body, columns, rows, opts);
  return panel;
}

function appendRows(body, columns, rows, opts) {
  const empty = body.querySelector("td.empty");
  if (empty && rows.length) empty.parentElement.remove();
  for (const row of rows) {
    const tr = h("tr", { class: opts.expand ? "expandable" : "" }, columns.map((c) => h("td", { class: c.num ? "num" : (c.cls ? c.cls(row) : "") }, c.fmt ? c.fmt(row) : none(row[c.key]))));
    body.append(tr);
    if (opts.expand) {
      tr.addEventListener("click", () => {
        const next = tr.nextElementSibling;
        if (next && next.classList.contains("details")) next.remove();
        else tr.after(h("tr", { class: "details" }, h("td", { colspan: columns.length }, opts.expand(row))));
      });
    }
  }
}

function cellText(c, row) {
  const v = c.fmt ? c.fmt(row) : row[c.key];
  return v instanceof Node ? v.textContent : String(v ?? "");
}

function rowsForExport(columns, rows) {
  return rows.map((row) => Object.fromEntries(columns.map((c) => {
    const shown = cellText(c, row);
    const text = c.csv ? c.csv(row) : c.num ? plainNumber(shown) : shown === "(none)" ? "" : shown;
    return [c.label, text];
  })));
}

function toCsv(columns, rows) {
  const quote = (v) => (/[",\n]/.test(String(v)) ? '"' + String(v).replaceAll('"', '""') + '"' : String(v));
  return [columns.map((c) => quote(c.label)).join(","), ...rows.map((r) => columns.map((c) => quote(r[c.label])).join(","))].join("\n") + "\n";
}

function download(name, text, type) {
  const a = h("a", { href: URL.createObjectURL(new Blob([text], { type })), download: name });
  document.body.append(a);
  a.click();
  a.remove();
}

function exportPage() {
  const tables = Object.fromEntries(Object.entries(view.tables).map(([k, f]) => [k, f()]));
  download(view.page + ".json", JSON.stringify({ page: view.page, range: view.range, timezone, cards: view.cards, tables }, null, 2), "application/json");
}

function chart(id, title, traces, layout = {}) {
  const el = h("div", { class: "chart", id });
  const panel = h("section", { class: "panel" }, h("h2", {}, title), el);
  setTimeout(() => {
    if (!window.Plotly) {
      el.replaceChildren(h("p", { class: "empty" }, "Charts need the plotly package: pip install plotly"));
      return;
    }
    const hasData = traces.some((t) => (t.values || t.y || []).some((v) => Number(v) > 0));
    if (!hasData) {
      el.replaceChildren(h("p", { class: "empty" }, "No data to chart in this range."));
      el.classList.add("nodata");
      return;
    }
    const time = traces[0].type === "bar" ? { xaxis: { type: "category", automargin: true, nticks: 12 } } : {};
    window.Plotly.newPlot(el, traces, Object.assign(time, { margin: { l: 60, r: 20, t: 10, b: 50 }, font: { family: "system-ui, sans-serif", size: 12 }, legend: { orientation: "h" }, paper_bgcolor: "#fff", plot_bgcolor: "#fff" }, layout), { displayModeBar: false, responsive: true });
  }, 0);
  return panel;
}

function costAxis() {
  return { yaxis: { title: { text: "US$" }, tickprefix: "$", rangemode: "tozero" } };
}

const cost = { key: "cost_usd", label: "Cost (US$)", num: true, fmt: (r) => money(r.cost_usd), csv: (r) => usd6(r.cost_usd), sort: "cost" };
const callsCol = { key: "calls", label: "Calls", num: true, fmt: (r) => int(r.calls), csv: (r) => String(r.calls), sort: "calls" };
const avg = { key: "avg_cost_usd", label: "Avg cost / call", num: true, fmt: (r) => money(r.avg_cost_usd), csv: (r) => usd6(r.avg_cost_usd) };
const tokens = (key, label) => ({ key, label, num: true, fmt: (r) => int(r[key]), csv: (r) => String(r[key] ?? 0) });
const trend = {
  key: "trend", label: "Trend vs previous period", num: true,
  fmt: (r) => {
    const now = Number(r.cost_usd), before = Number(r.previous_cost_usd);
    if (!before) return now ? h("span", { class: "muted" }, "new") : "–";
    const pct = ((now - before) / before) * 100;
    return h("span", { class: pct > 0 ? "trend-up" : pct < 0 ? "trend-down" : "" }, (pct > 0 ? "▲ +" : pct < 0 ? "▼ " : "") + pct.toFixed(1) + "%");
  },
};
const previous = { key: "previous_cost_usd", label: "Previous period (US$)", num: true, fmt: (r) => money(r.previous_cost_usd), csv: (r) => usd6(r.previous_cost_usd) };

function heading(title, sub) {
  return h("div", { class: "pagehead" }, h("h1", {}, title, " ", h("button", { type: "button", id: "export-page", onclick: exportPage, title: "everything on this page as JSON" }, "Export page (JSON)")), sub ? h("p", { class: "muted" }, sub) : null);
}

function rangeLabel(range) {
  if (!range.since && !range.until) return "all time";
  return (range.since ? shortTime(range.since) : "the start") + " to " + (range.until ? shortTime(range.until) : "now");
}

// -- pages ---------------------------------------------------------------------------------------------
async function overview(_arg, params) {
  const r = rangeParams(params);
  const [byModel, byFeature, perDay, recent] = await Promise.all([
    api("/v1/usage", { ...r, group_by: "service,provider,model", limit: 50 }),
    api("/v1/usage", { ...r, group_by: "feature", limit: 50, totals: 0 }),
    api("/v1/series", r),
    api("/v1/calls", { ...r, limit: 20 }),
  ]);
  view.range = byModel.range;
  const t = byModel.totals;
  const modelPie = byModel.rows.filter((row) => Number(row.cost_usd) > 0);
  return [
    heading("Overview", "What AI, search and image APIs cost, " + rangeLabel(byModel.range) + "."),
    h("div", { class: "cards" }, totalCard("Today", t.today, "card-today"), totalCard("This month", t.this_month, "card-month"), totalCard("All time", t.all_time, "card-all"), totalCard("Selected range", byModel.selected, "card-selected")),
    h("div", { class: "grid" },
      chart("chart-cost", "Cost per " + perDay.bucket + (perDay.bucket === "day" ? " (UTC days)" : ""), [{ type: "bar", x: chartTime(perDay), y: perDay.points.map((p) => Number(p.cost_usd)), name: "cost", hovertemplate: "%{x}: $%{y:.6f}<extra></extra>" }], costAxis()),
      chart("chart-models", "Cost by model", [{ type: "pie", labels: modelPie.map((row) => row.model || row.provider), values: modelPie.map((row) => Number(row.cost_usd)), hole: 0.4, textinfo: "percent", textposition: "inside", hovertemplate: "%{label}: $%{value:.6f}<extra></extra>" }])),
    table("by-model", "Cost by service and model", [
      { key: "service", label: "Service" }, { key: "provider", label: "Provider" },
      { key: "model", label: "Model", fmt: (row) => (row.model ? link("calls", null, withParams(params, { model: row.model }), row.model) : "(none)") },
      callsCol, tokens("input_tokens", "Input tokens"), tokens("output_tokens", "Output tokens"), tokens("requests", "Requests"), cost,
    ], byModel.rows, { empty: "No calls in this range yet. Instrument an app (see the README) or pick a longer range." }),
    table("by-feature", "Cost by feature", [
      { key: "feature", label: "Feature", fmt: (row) => (row.feature ? link("calls", null, withParams(params, { feature: row.feature }), row.feature) : "(none)") },
      callsCol, avg, cost,
    ], byFeature.rows),
    table("recent", "Recent calls", callColumns(params), recent, { expand: callDetails, note: link("calls", null, params, "all calls →") }),
  ];
}

function callColumns(params) {
  return [
    { key: "time", label: "Time", fmt: (r) => shortTime(r.time) },
    { key: "service", label: "Service" },
    { key: "model", label: "Model", fmt: (r) => (r.model ? link("models", null, params, r.model) : "(none)") },
    { key: "operation", label: "Type" },
    { key: "feature", label: "Feature" },
    { key: "customer", label: "Customer", fmt: (r) => (r.customer ? link("customers", r.customer, params, r.customer) : "(none)") },
    { key: "key", label: "Key", fmt: (r) => (r.key ? link("keys", r.key, params, r.key) : "(none)") },
    tokens("total_tokens", "Tokens"),
    { key: "duration_s", label: "Duration (s)", num: true, fmt: (r) => Number(r.duration_s).toFixed(3) },
    { key: "status", label: "Status", cls: (r) => "status-" + r.status },
    cost,
  ];
}

function callDetails(r) {
  const pairs = [
    ["Input tokens", int(r.input_tokens)], ["Output tokens", int(r.output_tokens)],
    ["Cache read tokens", int(r.cache_read_tokens)], ["Cache write tokens", int(r.cache_write_tokens)],
    ["Reasoning tokens", int(r.reasoning_tokens)], ["Requests", int(r.requests)], ["Images", int(r.images)],
    ["Cost", money(r.cost_usd) + (r.priced ? "" : " (no price known)") + (r.estimated ? " (tokens estimated)" : "")],
    ["Status", r.status], ["Error / HTTP status", r.error_type || "–"],
    ["Key", none(r.key)], ["Customer (group)", none(r.customer)], ["Feature", none(r.feature)], ["Provider", r.provider],
    ["Response model", none(r.response_model)], ["Duration", Number(r.duration_s).toFixed(3) + " s"],
    ["Trace id", r.trace_id], ["Span id", r.span_id],
  ];
  return h("dl", { class: "kv" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

async function calls(_arg, params) {
  const r = rangeParams(params);
  const filters = Object.fromEntries(LABELS.filter((l) => params.get(l)).map((l) => [l, params.get(l)]));
  const [values, selected, rows] = await Promise.all([
    api("/v1/labels", { limit: 200 }),
    api("/v1/usage", { ...r, ...filters, totals: 0 }),
    api("/v1/calls", { ...r, ...filters, limit: 50 }),
  ]);
  view.range = selected.range;
  view.filters = filters;
  const shown = [...rows];
  const form = h("div", { class: "filters", id: "filters" }, LABELS.map((label) => {
    const select = h("select", { name: label, id: "filter-" + label, onchange: (e) => go("calls", null, withParams(params, { [label]: e.target.value })) },
      h("option", { value: "" }, "all"), values[label].filter((v) => v !== "").map((v) => h("option", { value: v, selected: v === params.get(label) }, v)));
    if (params.get(label) && !values[label].includes(params.get(label))) select.append(h("option", { value: params.get(label), selected: true }, params.get(label)));
    return h("label", {}, label === "operation" ? "call type" : label === "customer" ? "customer (group)" : label, select);
  }), Object.keys(filters).length ? h("button", { type: "button", onclick: () => go("calls", null, withParams(params, Object.fromEntries(LABELS.map((l) => [l, null])))) }, "Clear filters") : null);
  const list = table("calls", "Calls", callColumns(params), rows, { expand: callDetails, rows: () => shown, empty: "No calls match these filters in this range.", note: "click a row for its details" });
  const more = h("button", { type: "button", id: "load-more", hidden: rows.length < 50 || null, onclick: async () => {
    const next = await api("/v1/calls", { ...r, ...filters, limit: 50, before: shown[shown.length - 1].cursor });
    shown.push(...next);
    list.addRows(next);
    if (next.length < 50) more.hidden = true;
  } }, "Load more");
  return [
    heading("Calls", "Every recorded call, newest first, " + rangeLabel(selected.range) + "."),
    form,
    h("div", { class: "cards" }, totalCard("Matching calls", selected.selected, "card-selected"), card("Tokens", int(selected.selected.input_tokens + selected.selected.output_tokens), int(selected.selected.input_tokens) + " in / " + int(selected.selected.output_tokens) + " out")),
    list, more,
  ];
}

function sortParam(params, page, arg) {
  return { sort: params.get("sort") || "cost", onSort: (s) => go(page, arg, withParams(params, { sort: s })) };
}

async function models(_arg, params) {
  const r = rangeParams(params);
  const sort = params.get("sort") || "cost";
  const data = await api("/v1/usage", { ...r, group_by: "model,provider", sort, limit: 500, totals: 0 });
  view.range = data.range;
  const total = Number(data.selected.cost_usd);
  const pie = data.rows.filter((row) => Number(row.cost_usd) > 0);
  return [
    heading("Models", "Cost and calls per model, " + rangeLabel(data.range) + ". Click a column to sort."),
    h("div", { class: "cards" }, totalCard("Selected range", data.selected, "card-selected"), card("Models used", int(data.rows_total))),
    chart("chart-models", "Share of cost by model", [{ type: "pie", labels: pie.map((row) => row.model || row.provider), values: pie.map((row) => Number(row.cost_usd)), hole: 0.4, textinfo: "percent", textposition: "inside", hovertemplate: "%{label}: $%{value:.6f}<extra></extra>" }]),
    table("models", "Models", [
      { key: "provider", label: "Provider" },
      { key: "model", label: "Model", sort: "name", fmt: (row) => (row.model ? link("calls", null, withParams(params, { model: row.model, sort: null }), row.model) : "(none)") },
      callsCol, tokens("input_tokens", "Input tokens"), tokens("output_tokens", "Output tokens"), avg, cost,
      { key: "share", label: "Share of cost", num: true, fmt: (row) => (total ? ((Number(row.cost_usd) / total) * 100).toFixed(1) + "%" : "–") },
    ], data.rows, sortParam(params, "models", null)),
  ];
}

async function groupPage(page, column, title, sub, params, linkTo) {
  const r = rangeParams(params);
  const sort = params.get("sort") || "cost";
  const data = await api("/v1/usage", { ...r, group_by: column, sort, limit: 1000, compare: 1, totals: 0 });
  view.range = data.range;
  const note = data.rows_total > data.rows.length ? "top " + int(data.rows.length) + " of " + int(data.rows_total) : null;
  return [
    heading(title, sub + " " + rangeLabel(data.range) + "." + (data.range.since ? " Trend compares with the period of the same length just before." : "")),
    h("div", { class: "cards" }, totalCard("Selected range", data.selected, "card-selected"), card(title, int(data.rows_total))),
    table(page, title, [
      { key: column, label: column[0].toUpperCase() + column.slice(1), sort: "name", fmt: (row) => (row[column] ? linkTo(row[column]) : "(none)") },
      callsCol, avg, cost, ...(data.range.since ? [previous, trend] : []),
    ], data.rows, { ...sortParam(params, page, null), note }),
  ];
}

function features(_arg, params) {
  return groupPage("features", "feature", "Features", "What each product feature costs,", params, (v) => link("calls", null, withParams(params, { feature: v, sort: null }), v));
}

function customers(arg, params) {
  if (arg !== null) return customer(arg, params);
  return groupPage("customers", "customer", "Customers", "What each customer costs,", params, (v) => link("customers", v, withParams(params, { sort: null }), v));
}

async function customer(name, params) {
  const r = { ...rangeParams(params), customer: name };
  const [data, perDay, rows] = await Promise.all([
    api("/v1/usage", { ...r, group_by: "provider,model", sort: "calls", limit: 100, totals: 0 }),
    api("/v1/series", { ...r, bucket: "day" }),
    api("/v1/calls", { ...r, limit: 50 }),
  ]);
  view.range = data.range;
  const s = data.selected;
  const shown = [...rows];
  const list = table("customer-calls", "Its calls", callColumns(params), rows, { expand: callDetails, rows: () => shown });
  return [
    heading("Customer " + name, rangeLabel(data.range) + ". " ),
    h("p", {}, link("customers", null, withParams(params, { sort: null }), "← all customers"), " · ", link("calls", null, withParams(params, { customer: name }), "filter the call log")),
    h("div", { class: "cards" }, totalCard("Total cost", s, "card-selected"), card("Calls", int(s.calls)), card("Avg cost / call", money(s.avg_cost_usd)), card("Tokens", int(s.total_tokens))),
    chart("chart-trend", "Cost trend (per UTC day)", [{ type: "bar", x: chartTime(perDay), y: perDay.points.map((p) => Number(p.cost_usd)), hovertemplate: "%{x}: $%{y:.6f}<extra></extra>" }], costAxis()),
    table("customer-models", "Most-used models", [{ key: "provider", label: "Provider" }, { key: "model", label: "Model" }, callsCol, tokens("total_tokens", "Tokens"), cost], data.rows),
    list,
  ];
}

async function keys(arg, params) {
  if (arg !== null) return keyPage(arg, params);
  const r = rangeParams(params);
  const sort = params.get("sort") || "cost";
  const data = await api("/v1/usage", { ...r, group_by: "key", sort, limit: 1000, totals: 0 });
  view.range = data.range;
  return [
    heading("API keys", "Usage per API key (fingerprints or aliases, never the key itself), " + rangeLabel(data.range) + "."),
    h("div", { class: "cards" }, totalCard("Selected range", data.selected, "card-selected"), card("Keys", int(data.rows_total))),
    table("keys", "Keys", [
      { key: "key", label: "Key", sort: "name", fmt: (row) => (row.key ? link("keys", row.key, withParams(params, { sort: null }), row.key) : "(none)") },
      callsCol, { ...tokens("total_tokens", "Total tokens"), sort: "tokens" }, tokens("input_tokens", "Input tokens"), tokens("output_tokens", "Output tokens"), tokens("requests", "Requests"), cost,
    ], data.rows, sortParam(params, "keys", null)),
  ];
}

async function keyPage(name, params) {
  const r = { ...rangeParams(params), key: name };
  const hourly = { ...r };
  const [data, overTime] = await Promise.all([
    api("/v1/usage", { ...r, group_by: "provider,model", limit: 100, totals: 0 }),
    api("/v1/series", r),
  ]);
  let perHour, hourNote = "";
  try {
    perHour = await api("/v1/series", { ...hourly, bucket: "hour" });
  } catch (error) {
    perHour = await api("/v1/series", { ...hourly, since: "7d", until: null, bucket: "hour" });
    hourNote = " (last 7 days: the range is too long for hours)";
  }
  view.range = data.range;
  const s = data.selected;
  const x = chartTime(overTime);
  return [
    heading("Key " + name, rangeLabel(data.range) + "."),
    h("p", {}, link("keys", null, params, "← all keys"), " · ", link("calls", null, withParams(params, { key: name }), "its calls")),
    h("div", { class: "cards" }, card("Total tokens", int(s.total_tokens), null, "card-tokens"), card("Input tokens", int(s.input_tokens), null, "card-input"), card("Output tokens", int(s.output_tokens), null, "card-output"), card("Requests", int(s.requests), int(s.calls) + " calls", "card-requests"), totalCard("Cost", s, "card-cost")),
    h("div", { class: "grid" },
      chart("chart-tokens", "Total tokens per " + overTime.bucket, [{ type: "bar", x, y: overTime.points.map((p) => p.total_tokens), name: "tokens" }]),
      chart("chart-inout", "Input vs output tokens per " + overTime.bucket, [{ type: "bar", x, y: overTime.points.map((p) => p.input_tokens), name: "input" }, { type: "bar", x, y: overTime.points.map((p) => p.output_tokens), name: "output" }], { barmode: "group" }),
      chart("chart-requests", "Requests per hour" + hourNote, [{ type: "bar", x: chartTime(perHour), y: perHour.points.map((p) => p.requests), name: "requests" }])),
    table("key-models", "Per model", [{ key: "provider", label: "Provider" }, { key: "model", label: "Model" }, callsCol, tokens("input_tokens", "Input tokens"), tokens("output_tokens", "Output tokens"), tokens("requests", "Requests"), cost], data.rows),
  ];
}

async function budgets() {
  const data = await api("/v1/budgets");
  view.range = "each budget's current period";
  const list = data.budgets;
  const panels = list.map((b) => {
    const pct = Math.min(b.spend_pct, 100);
    const cls = b.spend_pct >= 100 ? "over" : b.thresholds_crossed.length ? "near" : "";
    const state = b.exhausted ? h("span", { class: "pill bad" }, b.enforcement) : h("span", { class: "pill" }, b.enforcement);
    return h("section", { class: "panel budget " + cls, id: "budget-" + b.name },
      h("h2", {}, b.name, h("span", { class: "muted" }, " · " + (b.period === "day" ? "daily" : "monthly")), h("span", { class: "tools" }, state)),
      h("div", { class: "cards" }, card("Spent", money(String(b.spend_usd)), b.spend_pct.toFixed(1) + "% of " + money(String(b.limit_usd))), card("Forecast at period end", money(b.forecast_usd), b.forecast_pct.toFixed(1) + "% of the limit"), card("Remaining", money(String(b.remaining_usd))), card("Resets", shortTime(b.resets_at), b.period_elapsed_pct.toFixed(0) + "% of the period gone")),
      h("div", { class: "progress", title: b.spend_pct.toFixed(1) + "% spent" }, h("div", { class: "fill", style: "width:" + pct + "%" }), h("div", { class: "forecast", style: "left:" + Math.min(b.forecast_pct, 100) + "%", title: "forecast" }),
        b.thresholds.filter((t) => t <= 100).map((t) => h("div", { class: "tick", style: "left:" + t + "%" }, h("span", {}, t + "%")))),
      h("p", { class: "muted" }, "Scope: " + (Object.keys(b.scope).length ? Object.entries(b.scope).map(([k, v]) => k + " = " + v.join(" or ")).join(", ") : "all calls") + ". Thresholds crossed: " + (b.thresholds_crossed.length ? b.thresholds_crossed.map((t) => t + "%").join(", ") : "none") + "."));
  });
  return [
    heading("Budgets", "Spend against each budget in its current calendar period, the forecast to the period's end at the current pace, and what enforcement does."),
    list.length ? null : h("p", { class: "panel empty" }, "No budgets are configured. Start aispend serve with --budgets budgets.yaml (example: prometheus/budgets.example.yaml)."),
    ...panels,
    table("budgets", "All budgets", [
      { key: "name", label: "Budget" }, { key: "period", label: "Period" },
      { key: "limit_usd", label: "Limit (US$)", num: true, fmt: (b) => money(String(b.limit_usd)) },
      { key: "spend_usd", label: "Spent (US$)", num: true, fmt: (b) => money(String(b.spend_usd)) },
      { key: "spend_pct", label: "Spent %", num: true, fmt: (b) => b.spend_pct.toFixed(1) + "%" },
      { key: "forecast_usd", label: "Forecast (US$)", num: true, fmt: (b) => money(b.forecast_usd) },
      { key: "thresholds_crossed", label: "Thresholds crossed", fmt: (b) => b.thresholds_crossed.map((t) => t + "%").join(" ") || "none" },
      { key: "enforcement", label: "Enforcement" }, { key: "resets_at", label: "Resets at", fmt: (b) => shortTime(b.resets_at) },
    ], list, { empty: "No budgets configured." }),
  ];
}

// -- the range bar and rendering ----------------------------------------------------------------------
function renderRangeBar(page, arg, params) {
  const bar = document.getElementById("rangebar");
  bar.hidden = page === "budgets";
  const since = params.get("since") || "month";
  const presets = document.getElementById("presets");
  presets.replaceChildren(...PRESETS.map(([value, label]) => h("button", { type: "button", class: since === value && !params.get("until") ? "on" : "", "data-since": value, onclick: () => go(page, arg, withParams(params, { since: value === "month" ? null : value, until: null })) }, label)));
  const isDate = (v) => /^\d{4}-\d{2}-\d{2}$/.test(v || "");
  document.getElementById("from").value = isDate(since) ? since : "";
  const until = params.get("until");
  if (isDate(until)) {
    const d = new Date(until + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() - 1);
    document.getElementById("to").value = d.toISOString().slice(0, 10);
  } else document.getElementById("to").value = "";
  document.getElementById("apply").onclick = () => {
    const from = document.getElementById("from").value;
    const to = document.getElementById("to").value;
    let untilParam = null;
    if (to) {
      const d = new Date(to + "T00:00:00Z");
      d.setUTCDate(d.getUTCDate() + 1); // the "to" day is included
      untilParam = d.toISOString().slice(0, 10);
    }
    go(page, arg, withParams(params, { since: from || (to ? "all" : null), until: untilParam }));
  };
}

async function render() {
  const { page, arg, params } = route();
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.dataset.page === page);
  renderRangeBar(page, arg, params);
  view = { page, range: null, cards: {}, tables: {} };
  const main = document.getElementById("main");
  main.setAttribute("aria-busy", "true");
  try {
    const content = await PAGES[page](arg, params);
    main.replaceChildren(...content.filter(Boolean));
    document.getElementById("rangetext").textContent = view.range && typeof view.range === "object" ? "showing " + rangeLabel(view.range) : "";
  } catch (error) {
    main.replaceChildren(h("p", { class: "panel bad", id: "error" }, "Could not load this page: " + error.message));
  }
  main.removeAttribute("aria-busy");
  main.dataset.page = page;
  main.dataset.render = String(++renders);
}

window.addEventListener("hashchange", render);
window.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("signout").hidden = !sessionStorage.getItem(TOKEN_KEY);
  document.getElementById("signout").onclick = () => { sessionStorage.removeItem(TOKEN_KEY); location.reload(); };
  try {
    const usage = await api("/v1/usage", { since: "today", totals: 0 });
    timezone = usage.timezone;
    document.getElementById("tznote").textContent = "times in " + timezone + " (daily charts in UTC days)";
  } catch (error) { /* the page shows the error */ }
  render();
});
