"""Every PromQL query of the dashboards, with Grafana's variables substituted."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"
BUILTINS = {"__range": "1h", "__rate_interval": "1m", "__interval": "1m"}


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """$name and ${name} -> values[name], else Grafana's built-ins as in BUILTINS, else ".*" (what All sends)."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, BUILTINS.get(name, ".*"))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def dashboards() -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(DASHBOARDS.glob("*.json"))}


def panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p.get("type") != "row"]


def grafana_queries(values: Mapping[str, str] | None = None) -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, substituted expr) for every target of every panel."""
    out = []
    for dashboard in dashboards().values():
        for panel in panels(dashboard):
            for target in panel.get("targets", []):
                out.append((dashboard["uid"], panel["title"], substitute(target["expr"], values or {})))
    return out
