"""docs/contract.md against the code: every metric (with its type and labels), setting, command,
flag, span attribute and environment variable the contract names exists in the code, and every
metric, setting and command the code has is in the contract. A rename on either side fails here."""

from __future__ import annotations

import argparse
import ast
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


def _span_table_attributes() -> set[str]:
    """The attribute names in the first column of the span table."""
    return {n for row in rows("Spans (instrumentation output)") for n in names(row[0]) if n.islower()}


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
        family = families[name.removesuffix("_total") if kind == "counter" else name.removesuffix("_info")]
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
    values |= set(_emitted_attributes())  # and an adapter's own (cohere.usage.tokens.*)
    attributes = _span_table_attributes()
    assert len(attributes) > 20
    for name in attributes:  # the first column of the attribute table (the second table: variables)
        assert name in values, f"attribute {name} is in the contract but not in aispend/semconv.py or an adapter"


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


# --- the other direction: what the code reads and emits is named in the contract -----------------

SOURCES = ("instrumentation", "exporter", "pricing")  # the packages whose environment reads are settings
# environment keys built at run time: ExporterConfig.load reads AISPEND_<KEY> for every setting,
# which test_settings_match_the_config_dataclass_and_the_serve_flags checks field by field
COMPUTED_ENV_KEYS = {("exporter/config.py", "f'AISPEND_{f.name.upper()}'")}
ATTRIBUTE = re.compile(r"[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+")  # a dotted span attribute name


def _is_environ(node: ast.expr) -> bool:
    """``os.environ``, or a mapping the config code calls ``env`` / ``environ`` (os.environ or a test's)."""
    if isinstance(node, ast.Attribute):
        return node.attr == "environ"
    return isinstance(node, ast.Name) and node.id in ("env", "environ")


def _environment_keys(tree: ast.AST) -> list[ast.expr]:
    """The key expressions of every environment read: ``E.get(k)``, ``E[k]``, ``k in E``, ``getenv(k)``."""
    keys: list[ast.expr] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and _reads_environ(node.func):
            keys.append(node.args[0])
        elif isinstance(node, ast.Subscript) and _is_environ(node.value):
            keys.append(node.slice)
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In) and _is_environ(node.comparators[0]):
            keys.append(node.left)  # "NAME" in os.environ
    return keys


def _reads_environ(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id == "getenv"
    if not isinstance(func, ast.Attribute):
        return False
    return func.attr == "getenv" or (func.attr in ("get", "pop", "setdefault") and _is_environ(func.value))


def _environment_variables() -> dict[str, str]:
    """Every environment variable the instrumentation and the exporter read -> the file reading it."""
    found: dict[str, str] = {}
    computed: set[tuple[str, str]] = set()
    for folder in SOURCES:
        for path in sorted((ROOT / folder).rglob("*.py")):
            where = str(path.relative_to(ROOT))
            for key in _environment_keys(ast.parse(path.read_text(), where)):
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    found.setdefault(key.value, where)
                else:
                    computed.add((where, ast.unparse(key)))
    assert computed <= COMPUTED_ENV_KEYS, (
        f"environment keys computed at run time that this test cannot check: {sorted(computed - COMPUTED_ENV_KEYS)}"
    )
    return found


def _named(name: str) -> bool:
    """``name`` appears inside a backticked span of the contract (alone or in an example)."""
    return re.search(rf"`[^`\n]*(?<![\w.-]){re.escape(name)}(?![\w-])[^`\n]*`", CONTRACT) is not None


def test_every_environment_variable_the_code_reads_is_in_the_contract():
    variables = _environment_variables()
    assert {"AISPEND_PROVIDER_URLS", "AISPEND_CONFIG", "AISPEND_FEATURE"} <= set(variables), sorted(variables)
    missing = sorted(f"{name} (read in {where})" for name, where in variables.items() if not _named(name))
    assert not missing, f"environment variables the code reads but docs/contract.md does not name: {missing}"


def test_every_instrumentation_setting_is_in_the_settings_table():
    path = ROOT / "instrumentation" / "config.py"
    keys = _environment_keys(ast.parse(path.read_text()))
    variables = {k.value for k in keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    assert len(variables) >= 8 and len(variables) == len(keys), "config.py reads keys this test cannot see"
    table = {n for row in rows("Spans (instrumentation output)") for n in names(row[0]) if n.isupper()}
    missing = sorted(variables - table)
    assert not missing, f"instrumentation/config.py reads {missing}, not rows of the instrumentation settings table"


def _semconv_aliases(tree: ast.Module) -> tuple[set[str], set[str]]:
    """The names a module binds to ``aispend.semconv``, and the names it imports from it."""
    modules: set[str] = set()
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "aispend":
            modules |= {a.asname or a.name for a in node.names if a.name == "semconv"}
        elif isinstance(node, ast.ImportFrom) and node.module == "aispend.semconv":
            imported |= {a.asname or a.name for a in node.names}
        elif isinstance(node, ast.Import):
            modules |= {a.asname for a in node.names if a.name == "aispend.semconv" and a.asname}
    return modules, imported


def _attribute_names(value: object) -> set[str]:
    """The span attribute names in a semconv constant: the string itself, or those in a mapping's values
    (``ATTRIBUTION_ATTRIBUTES``) or a collection's items."""
    if isinstance(value, str):
        return {value} if ATTRIBUTE.fullmatch(value) else set()
    if isinstance(value, dict):
        return {n for v in value.values() for n in _attribute_names(v)}
    if isinstance(value, tuple | list | set | frozenset):
        return {n for v in value for n in _attribute_names(v)}
    return set()


def _emitted_attributes() -> dict[str, str]:
    """Span attribute names the instrumentation uses -> where: the ``aispend.semconv`` constants it
    references (``sc.NAME``, ``from aispend.semconv import NAME``), and module-level constants of the
    adapters that hold an attribute name (``COHERE_TOKENS_INPUT = "cohere.usage.tokens.input"``)."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "instrumentation").rglob("*.py")):
        where = str(path.relative_to(ROOT))
        tree = ast.parse(path.read_text(), where)
        modules, imported = _semconv_aliases(tree)
        used = set(imported)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
                assert hasattr(semconv, node.attr), f"{where} uses semconv.{node.attr}, which does not exist"
                used.add(node.attr)
        for constant in used:
            for name in _attribute_names(getattr(semconv, constant)):
                found.setdefault(name, f"{where}: semconv.{constant}")
        if path.parent.name == "adapters":
            for node in tree.body:
                if (
                    isinstance(node, ast.Assign)
                    and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id.isupper()
                    and isinstance(node.value, ast.Constant)
                    and isinstance(node.value.value, str)
                    and ATTRIBUTE.fullmatch(node.value.value)
                ):
                    found.setdefault(node.value.value, f"{where}: {node.targets[0].id}")
    return found


def test_every_span_attribute_the_instrumentation_emits_is_in_the_span_table():
    emitted, table = _emitted_attributes(), _span_table_attributes()
    assert {semconv.GEN_AI_PROVIDER_NAME, semconv.AISPEND_FEATURE, semconv.GEN_AI_USAGE_INPUT_TOKENS} <= set(emitted)
    missing = sorted(f"{name} ({where})" for name, where in emitted.items() if name not in table)
    assert not missing, f"span attributes the instrumentation emits but the contract's span table lacks: {missing}"


def test_attribution_headers_are_in_the_contract():
    headers = [*semconv.ATTRIBUTION_HEADERS.values(), *semconv.OTHER_ATTRIBUTION_HEADERS]
    missing = [h for h in headers if not _named(h)]
    assert not missing, f"attribution headers the instrumentation reads but docs/contract.md does not name: {missing}"


def test_provider_names_with_their_own_adapter_are_in_the_provider_row():
    """Every provider name ``adapter_for`` (instrumentation/adapters/__init__.py) matches, and every
    adapter's default name, is an example in the ``gen_ai.provider.name`` row."""
    providers: set[str] = set()
    for path in sorted((ROOT / "instrumentation" / "adapters").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            matched = isinstance(node, ast.MatchValue)  # a case "anthropic": of adapter_for
            default = isinstance(node, ast.AnnAssign) and ast.unparse(node.target) == "provider"  # provider: str = ...
            value = getattr(node, "value", None)
            if (matched or default) and isinstance(value, ast.Constant) and isinstance(value.value, str):
                providers.add(value.value)
    assert {"openai", "anthropic", "aws.bedrock"} <= providers, sorted(providers)
    row = next(r for r in rows("Spans (instrumentation output)") if semconv.GEN_AI_PROVIDER_NAME in names(r[0]))
    missing = sorted(providers - set(names(row[1])))
    assert not missing, f"provider names with an adapter that the gen_ai.provider.name row does not give: {missing}"
