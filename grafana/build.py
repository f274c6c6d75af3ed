"""Build aispend's Grafana dashboards as code: `python grafana/build.py` rewrites grafana/dashboards/.

A small builder of plain dicts (Grafana's dashboard JSON, schema 39, loads in Grafana 10 and 11)
rather than grafana-foundation-sdk: the SDK's PyPI versions carry an epoch per Grafana release (pip's
"latest" is the 10.1 flavour; the 11.x ones need a pin like ==1769699379!11.6.0), and its output still
needed panel ids, target refIds and grid positions done by hand (it left ids and refIds unset and
placed panels past column 24). The panels here are few and alike; tests/grafana checks the JSON is
what this file generates, that every query filters on the variables and is valid PromQL, and
tests/e2e runs every query against a real Prometheus and requires data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "aispend-prometheus"}
LABELS = ("service", "provider", "model", "feature", "customer", "key")
COST = "aispend_cost_usd_total"
TOKENS = "aispend_tokens_total"
REQUESTS = "aispend_requests_total"


def sel(*labels: str, extra: str = "") -> str:
    """A label selector filtering on the dashboard variables, e.g. {provider=~"$provider",...}."""
    parts = [f'{label}=~"${label}"' for label in labels]
    if extra:
        parts.append(extra)
    return "{" + ", ".join(parts) + "}"


ALL = sel(*LABELS)
NOT_OK = sel(*LABELS, extra='status!="ok"')
RATE_LIMITED = sel(*LABELS, extra='status="rate_limited"')
IN_OUT = sel(*LABELS, extra='type=~"input|output"')
INPUT = sel(*LABELS, extra='type="input"')
OUTPUT = sel(*LABELS, extra='type="output"')
CACHE_READ = sel(*LABELS, extra='type="cache_read"')
CACHE_WRITE = sel(*LABELS, extra='type="cache_write"')
CACHE_AND_OUTPUT = sel(*LABELS, extra='type=~"cache_read|cache_write|output"')
UNPRICED = 'aispend_unpriced_requests_total{provider=~"$provider", model=~"$model"}'
DURATION = 'aispend_request_duration_seconds_bucket{provider=~"$provider", model=~"$model"}'


def none(expr: str, label: str) -> str:
    """Show an empty (unknown) label value as "(none)" in legends and tables."""
    return f'label_replace({expr}, "{label}", "(none)", "{label}", "")'


class Layout:
    """Places panels left to right in a 24-column grid, wrapping to the next row."""

    def __init__(self) -> None:
        self.x = self.y = self.row_height = 0
        self.next_id = 1

    def place(self, width: int, height: int) -> dict[str, int]:
        if self.x + width > 24:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        pos = {"x": self.x, "y": self.y, "w": width, "h": height}
        self.x += width
        self.row_height = max(self.row_height, height)
        return pos

    def row(self, title: str) -> dict[str, Any]:
        if self.x:
            self.x, self.y, self.row_height = 0, self.y + self.row_height, 0
        panel = {
            "type": "row",
            "title": title,
            "id": self.next_id,
            "collapsed": False,
            "panels": [],
            "gridPos": {"x": 0, "y": self.y, "w": 24, "h": 1},
        }
        self.next_id += 1
        self.y += 1
        return panel


def target(expr: str, legend: str = "", instant: bool = False, fmt: str = "time_series", ref: str = "A") -> dict:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend or "__auto",
        "instant": instant,
        "range": not instant,
        "format": fmt,
        "refId": ref,
    }


def panel(
    layout: Layout,
    kind: str,
    title: str,
    targets: list[dict],
    unit: str = "short",
    width: int = 6,
    height: int = 6,
    description: str = "",
    options: dict | None = None,
    time_from: str | None = None,
    transformations: list[dict] | None = None,
    custom: dict | None = None,
    defaults: dict | None = None,
    overrides: list[dict] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": kind,
        "title": title,
        "id": layout.next_id,
        "gridPos": layout.place(width, height),
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "custom": custom or {}, **(defaults or {})},
            "overrides": overrides or [],
        },
        "options": options or {},
    }
    layout.next_id += 1
    if description:
        out["description"] = description
    if time_from:
        out["timeFrom"] = time_from
        out["hideTimeOverride"] = False
    if transformations:
        out["transformations"] = transformations
    return out


def stat(layout: Layout, title: str, expr: str, unit: str = "short", **kw: Any) -> dict[str, Any]:
    return panel(
        layout,
        "stat",
        title,
        [target(expr, instant=True)],
        unit,
        width=kw.pop("width", 4),
        height=4,
        options={"reduceOptions": {"calcs": ["lastNotNull"]}, "graphMode": "none"},
        **kw,
    )


def by_label_instant(layout: Layout, kind: str, title: str, expr: str, legend: str, unit: str, **kw: Any) -> dict:
    options = (
        {
            "reduceOptions": {"calcs": ["lastNotNull"], "values": False},
            "legend": {"displayMode": "table", "placement": "right", "values": ["value", "percent"]},
        }
        if kind == "piechart"
        else {"reduceOptions": {"calcs": ["lastNotNull"]}, "displayMode": "gradient", "orientation": "horizontal"}
    )
    return panel(layout, kind, title, [target(expr, legend, instant=True)], unit, options=options, **kw)


def timeseries(layout: Layout, title: str, targets: list[dict], unit: str, stack: bool = False, **kw: Any) -> dict:
    custom = {
        "drawStyle": "line",
        "fillOpacity": 30 if stack else 10,
        "lineWidth": 1,
        "stacking": {"mode": "normal" if stack else "none", "group": "A"},
    }
    return panel(
        layout,
        "timeseries",
        title,
        targets,
        unit,
        custom=custom,
        options={"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}},
        **kw,
    )


def table(layout: Layout, title: str, columns: dict[str, tuple[str, str]], **kw: Any) -> dict:
    """One instant query per column, {column name: (expr, unit)}, merged on their labels and sorted by the first."""
    names = list(columns)
    return panel(
        layout,
        "table",
        title,
        [target(expr, instant=True, fmt="table", ref=name) for name, (expr, _) in columns.items()],
        options={"showHeader": True, "sortBy": [{"displayName": names[0], "desc": True}]},
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {f"Value #{name}": name for name in names},
                },
            },
        ],
        overrides=[
            {"matcher": {"id": "byName", "options": name}, "properties": [{"id": "unit", "value": unit}]}
            for name, (_, unit) in columns.items()
        ],
        **kw,
    )


def variable(name: str, query: str, multi: bool = True, label: str | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "label": label or name,
        "type": "query",
        "datasource": DATASOURCE,
        "query": {"qryType": 1, "query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "definition": query,
        "refresh": 2,  # on time range change
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {"text": ["All"], "value": ["$__all"]} if multi else {},
        "options": [],
        "regex": "",
        "hide": 0,
        "sort": 1,
    }


def variables(single: str | None = None) -> list[dict[str, Any]]:
    """service -> provider -> model chained; feature/customer/key filter on the service."""
    out = []
    for i, name in enumerate(LABELS):
        scope = sel(*LABELS[: min(i, 3)]) if i else ""
        out.append(variable(name, f"label_values({COST}{scope}, {name})", multi=name != single))
    return out


def dashboard(uid: str, title: str, description: str, panels: list[dict], single: str | None = None) -> dict:
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["aispend", "cost", "genai"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "templating": {"list": variables(single)},
        "annotations": {"list": []},
        "links": [{"title": "aispend dashboards", "type": "dashboards", "tags": ["aispend"], "asDropdown": True}],
        "panels": panels,
    }


def increase(metric: str, selector: str = ALL) -> str:
    return f"increase({metric}{selector}[$__range])"


def per_hour(by: str, metric: str, selector: str = ALL) -> str:
    return f"sum by ({by}) (rate({metric}{selector}[$__rate_interval])) * 3600"


def overview() -> dict:
    L = Layout()
    cost = increase(COST)
    p = [L.row("Spend")]
    p += [
        stat(
            L,
            "Spend today",
            f"sum({cost})",
            "currencyUSD",
            time_from="now/d",
            description="Calendar day so far (dashboard time zone). increase() cannot see the first sample of a "
            "label set that appeared today, so a brand-new model/feature/customer may be slightly under-counted.",
        ),
        stat(
            L,
            "Spend this month",
            f"sum({cost})",
            "currencyUSD",
            time_from="now/M",
            description="Calendar month so far.",
        ),
        stat(
            L,
            "Spend all time",
            f"sum({COST}{ALL})",
            "currencyUSD",
            description="The exporter restores its counters from the ledger, so the counter is the all-time total.",
        ),
        stat(L, "Calls in range", f"sum({increase(REQUESTS)})"),
        stat(L, "Average cost per call", f"sum({cost}) / sum({increase(REQUESTS)})", "currencyUSD"),
        stat(
            L,
            "Unpriced calls in range",
            f"sum({increase(UNPRICED, '')})",
            description="Calls no price matched or that reported no usage: their cost is missing from the totals "
            "(see the runbook).",
        ),
    ]
    p.append(L.row("Where it goes"))
    p += [
        by_label_instant(
            L, "piechart", "Cost by model", f"sum by (model) ({cost})", "{{model}}", "currencyUSD", width=8, height=8
        ),
        table(
            L,
            "Models",
            {
                "cost": (f"sum by (provider, model) ({cost})", "currencyUSD"),
                "tokens": (f"sum by (provider, model) ({increase(TOKENS, IN_OUT)})", "short"),
                "calls": (f"sum by (provider, model) ({increase(REQUESTS)})", "short"),
            },
            width=16,
            height=8,
            description="Tokens are input + output (input includes cached tokens; reasoning is part of output).",
        ),
        by_label_instant(
            L,
            "bargauge",
            "Cost by provider and service",
            f"sum by (provider, service) ({cost})",
            "{{provider}} / {{service}}",
            "currencyUSD",
            width=6,
            height=8,
        ),
        by_label_instant(
            L,
            "bargauge",
            "Cost by feature",
            none(f"sum by (feature) ({cost})", "feature"),
            "{{feature}}",
            "currencyUSD",
            width=6,
            height=8,
        ),
        by_label_instant(
            L,
            "bargauge",
            "Top customers",
            none(f"topk(10, sum by (customer) ({cost}))", "customer"),
            "{{customer}}",
            "currencyUSD",
            width=6,
            height=8,
        ),
        by_label_instant(
            L,
            "bargauge",
            "Cost by API key",
            none(f"sum by (key) ({cost})", "key"),
            "{{key}}",
            "currencyUSD",
            width=6,
            height=8,
        ),
    ]
    p.append(L.row("Over time"))
    rate = "[$__rate_interval]))"
    p += [
        timeseries(
            L,
            "Tokens per second by type",
            [
                target(
                    f"sum(rate({TOKENS}{INPUT}{rate} - (sum(rate({TOKENS}{CACHE_READ}{rate} or vector(0))"
                    f" - (sum(rate({TOKENS}{CACHE_WRITE}{rate} or vector(0))",
                    "input (uncached)",
                    ref="A",
                ),
                target(
                    f"sum by (type) (rate({TOKENS}{CACHE_AND_OUTPUT}{rate}",
                    "{{type}}",
                    ref="B",
                ),
            ],
            "short",
            stack=True,
            width=12,
            height=8,
            description="Stacked to the total: input tokens include cache reads and writes, so those are taken "
            "out of input; reasoning tokens are part of output and not drawn separately.",
        ),
        timeseries(
            L,
            "Cost per hour by model",
            [target(per_hour("model", COST), "{{model}}")],
            "currencyUSD",
            stack=True,
            width=12,
            height=8,
        ),
        timeseries(
            L,
            "Requests per hour",
            [target(per_hour("provider", REQUESTS), "{{provider}}")],
            "short",
            width=12,
            height=8,
        ),
        timeseries(
            L,
            "Error and rate-limit ratio",
            [
                target(
                    f"sum by (provider, status) (rate({REQUESTS}{NOT_OK}{rate}"
                    f" / ignoring (status) group_left sum by (provider) (rate({REQUESTS}{ALL}{rate}",
                    "{{provider}} {{status}}",
                )
            ],
            "percentunit",
            width=12,
            height=8,
        ),
        timeseries(
            L,
            "Request latency p95",
            [target(f"histogram_quantile(0.95, sum by (le, provider) (rate({DURATION}{rate})", "{{provider}}")],
            "s",
            width=12,
            height=8,
        ),
        by_label_instant(
            L,
            "bargauge",
            "Unpriced calls by model and reason",
            f"sum by (provider, model, reason) ({increase(UNPRICED, '')})",
            "{{provider}} / {{model}} ({{reason}})",
            "short",
            width=12,
            height=8,
            description="Counted at $0. no_price: add a price override for the model; no_usage: the spans carry no "
            "token counts, fix the instrumentation (see the runbook).",
        ),
    ]
    p.append(L.row("Budgets"))
    p += [
        by_label_instant(
            L,
            "bargauge",
            "Budget used (calendar period)",
            "aispend_budget_spend_usd / aispend_budget_limit_usd",
            "{{budget}} ({{period}})",
            "percentunit",
            width=12,
            height=8,
            defaults={
                "min": 0,
                "max": 1,
                # Alert thresholds are per budget (budgets.yaml); the bar only turns red when over budget.
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 1}],
                },
            },
        ),
        table(
            L,
            "Budgets",
            {
                "spend": ("sum by (budget, period) (aispend_budget_spend_usd)", "currencyUSD"),
                "limit": ("sum by (budget, period) (aispend_budget_limit_usd)", "currencyUSD"),
                "used": (
                    "sum by (budget, period) (aispend_budget_spend_usd)"
                    " / sum by (budget, period) (aispend_budget_limit_usd)",
                    "percentunit",
                ),
            },
            width=12,
            height=8,
        ),
    ]
    return dashboard(
        "aispend-overview",
        "aispend / Overview",
        "What AI, search and image calls cost: by model, provider, feature, customer and key.",
        p,
    )


def api_key() -> dict:
    L = Layout()
    p = [L.row("Key usage in range")]
    p += [
        stat(L, "Cost", f"sum({increase(COST)})", "currencyUSD"),
        stat(
            L,
            "Total tokens",
            f"sum({increase(TOKENS, IN_OUT)})",
            description="Input + output (input includes cached tokens; reasoning is part of output).",
        ),
        stat(L, "Input tokens", f"sum({increase(TOKENS, INPUT)})"),
        stat(L, "Output tokens", f"sum({increase(TOKENS, OUTPUT)})"),
        stat(L, "Requests", f"sum({increase(REQUESTS)})"),
        stat(L, "Rate-limited", f"sum({increase(REQUESTS, RATE_LIMITED)})"),
    ]
    p.append(L.row("Per model"))
    p += [
        table(
            L,
            "Models used by this key",
            {
                "cost": (f"sum by (model) ({increase(COST)})", "currencyUSD"),
                "tokens": (f"sum by (model) ({increase(TOKENS, IN_OUT)})", "short"),
                "requests": (f"sum by (model) ({increase(REQUESTS)})", "short"),
            },
            width=24,
            height=8,
        ),
        timeseries(
            L,
            "Tokens per second, input vs output",
            [target(f"sum by (type) (rate({TOKENS}{IN_OUT}[$__rate_interval]))", "{{type}}")],
            "short",
            stack=True,
            width=12,
            height=8,
        ),
        timeseries(
            L, "Requests per hour", [target(per_hour("model", REQUESTS), "{{model}}")], "short", width=12, height=8
        ),
    ]
    return dashboard(
        "aispend-api-key",
        "aispend / API key",
        "One API key (its alias or fingerprint): tokens, requests and cost by model.",
        p,
        single="key",
    )


def customer() -> dict:
    L = Layout()
    cost = increase(COST)
    p = [L.row("Customer in range")]
    p += [
        stat(L, "Total cost", f"sum({cost})", "currencyUSD", width=6),
        stat(L, "Calls", f"sum({increase(REQUESTS)})", width=6),
        stat(L, "Cost this month", f"sum({cost})", "currencyUSD", width=6, time_from="now/M"),
        stat(L, "Average cost per call", f"sum({cost}) / sum({increase(REQUESTS)})", "currencyUSD", width=6),
    ]
    p.append(L.row("What they use"))
    p += [
        by_label_instant(
            L,
            "bargauge",
            "Most-used models (calls)",
            f"topk(10, sum by (model) ({increase(REQUESTS)}))",
            "{{model}}",
            "short",
            width=8,
            height=8,
        ),
        by_label_instant(
            L,
            "piechart",
            "Cost by feature",
            none(f"sum by (feature) ({cost})", "feature"),
            "{{feature}}",
            "currencyUSD",
            width=8,
            height=8,
        ),
        by_label_instant(
            L,
            "bargauge",
            "Cost by model",
            f"sum by (model) ({cost})",
            "{{model}}",
            "currencyUSD",
            width=8,
            height=8,
        ),
        timeseries(
            L,
            "Cost per hour (trend)",
            [target(none(per_hour("feature", COST), "feature"), "{{feature}}")],
            "currencyUSD",
            stack=True,
            width=24,
            height=8,
        ),
    ]
    return dashboard(
        "aispend-customer",
        "aispend / Customer",
        "One customer (tenant): cost, calls, the models and features it uses.",
        p,
        single="customer",
    )


DASHBOARDS = {"aispend-overview.json": overview, "aispend-api-key.json": api_key, "aispend-customer.json": customer}


def render() -> dict[str, str]:
    return {name: json.dumps(build(), indent=2, ensure_ascii=False) + "\n" for name, build in DASHBOARDS.items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text, encoding="utf-8")
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
