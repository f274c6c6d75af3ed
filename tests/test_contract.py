"""docs/contract.md against the code: every metric (with its type and labels), setting, command,
flag, span attribute and environment variable the contract names exists in the code, and every
metric, setting and command the code has is in the contract. A rename on either side fails here."""

from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from aispend import semconv
from aispend.cli import build_parser
from aispend.exporter.config import LABELS, ExporterConfig
from tests.exporter.server import running, scrape
from tests.exporter.spans import llm, otlp_request

ROOT = Path(__file__).resolve().parents[1]
CONTRACT = (ROOT / "docs" / "contract.md").read_text()
SEVEN = "the seven labels"


def section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", CONTRACT, re.S | re.M)
    assert match, f"docs/contract.md has no section '## {title}'"
    return match.group(1)


def rows(title: str) -> list[list[str]]:
    """The cells of every table row in a section (header and rule rows left out)."""
    out = []
    for line in section(title).splitlines():
        if line.startswith("|") and not line.startswith("| ---"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
            out.append(cells)
    return out[1:] if out else out  # the first row is the header


def names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def test_metrics_their_types_and_labels_match_the_exporter(tmp_path):
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text("budgets:\n  - {name: all, period: month, amount_usd: 10}\n")
    with running(budgets=str(budgets)) as exporter:
        exporter.pipeline.export(otlp_request([llm("openai", "gpt-4o", 10, 1)]))
        text = scrape(exporter.ports["metrics"])
        families = {f.name: f for f in exporter.registry.collect()}
    exposed = dict(re.findall(r"^# TYPE (aispend_\w+) (\w+)$", text, re.M))
    documented = {}
    for metric, kind, labels in rows("Metrics (exporter output, Prometheus names)"):
        (name,) = names(metric)
        documented[name] = (kind, labels)
    assert set(documented) == set(exposed), "metrics in the contract but not exposed, or exposed but not documented"
    for name, (kind, labels) in documented.items():
        assert exposed[name] == kind, f"{name}: the contract says {kind}, the exporter exposes {exposed[name]}"
        family = families[name.removesuffix("_total") if kind == "counter" else name]
        code_labels = set(getattr(family, "_labelnames", ())) or {
            k for s in family.samples for k in s.labels if k not in ("le",)
        }
        wanted = set(LABELS) if SEVEN in labels else set()
        wanted |= {n for n in names(labels) if re.fullmatch(r"[a-z_]+", n) and n in _label_names(labels)}
        assert wanted == code_labels, (
            f"{name}: the contract's labels {sorted(wanted)} != the code's {sorted(code_labels)}"
        )


def _label_names(cell: str) -> set[str]:
    """Backticked label names in a labels cell: the ones not inside a parenthesised value list."""
    outside = re.sub(r"\([^)]*\)", "", cell)
    return set(names(outside))


def test_settings_match_the_config_dataclass_and_the_serve_flags():
    table = {names(key)[0]: default for key, default, _ in rows("Exporter settings")}
    keys = {f.name: f for f in fields(ExporterConfig)}
    assert set(table) == set(keys), "settings in the contract != ExporterConfig's fields"
    for name, f in keys.items():
        if f.default is MISSING:
            continue
        shown = "–" if f.default in (None, "") else str(f.default)
        assert table[name].strip("`") == shown, f"{name}: the contract's default {table[name]} != {shown}"
    serve = _subparsers()["serve"]
    flags = {opt for action in serve._actions for opt in action.option_strings}
    for name in keys:
        assert "--" + name.replace("_", "-") in flags, f"setting {name} has no aispend serve flag"


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    full = f"{prefix} {name}".strip()
                    nested = any(isinstance(a, argparse._SubParsersAction) for a in sub._actions)
                    if nested:
                        walk(sub, full)
                    else:
                        found[full] = sub

    walk(build_parser(), "")
    return found


def test_commands_and_their_flags_match_the_cli():
    commands = _subparsers()
    table = {names(command)[0].removeprefix("aispend "): what for command, what in rows("Commands")}
    assert set(table) == set(commands), "commands in the contract != the CLI's subcommands"
    for command, what in table.items():
        options = {opt for action in commands[command]._actions for opt in action.option_strings}
        for flag in re.findall(r"(--[a-z][a-z-]*)", what):
            assert flag in options, f"aispend {command}: the contract names {flag}, the CLI has no such flag"


def test_span_attributes_exist_in_semconv():
    values = {v for v in vars(semconv).values() if isinstance(v, str)}
    attributes = [n for row in rows("Spans (instrumentation output)") for n in names(row[0]) if n.islower()]
    assert len(attributes) > 20
    for name in attributes:  # the first column of the attribute table (the second table: variables)
        assert name in values, f"attribute {name} is in the contract but not in aispend/semconv.py"


@pytest.mark.parametrize("name", sorted(set(re.findall(r"\bAISPEND_[A-Z_]+\b", CONTRACT))))
def test_environment_variables_exist_in_the_code(name):
    if name.removeprefix("AISPEND_").lower() in {f.name for f in fields(ExporterConfig)}:
        return  # a setting's variable, derived from its name by ExporterConfig.load (AISPEND_<KEY>)
    sources = [p for folder in ("aispend", "instrumentation", "exporter") for p in (ROOT / folder).rglob("*.py")]
    assert any(name in p.read_text() for p in sources), f"{name} is in the contract but nowhere in the code"


def test_config_files_point_at_docs_not_a_missing_design_file():
    for path in (ROOT / "otel-collector.yaml", ROOT / "prometheus" / "budgets.example.yaml"):
        text = path.read_text()
        assert "DESIGN.md" not in text, f"{path.name} refers to DESIGN.md, which is not in the repository"
        for ref in re.findall(r"docs/[\w.-]+\.md", text):
            assert (ROOT / ref).exists(), f"{path.name} refers to {ref}, which does not exist"
