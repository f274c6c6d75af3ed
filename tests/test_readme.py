"""The README as a first-time user follows it (issue 12, item 26): every `aispend serve` example
parses, names an absolute ledger and a budgets file that exists and loads; every repository file it
names exists; installing says how to do it from a checkout (aispend is not on a package index)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from aispend.cli import build_parser
from aispend.exporter.budgets import load_budgets
from aispend.exporter.ledger_location import sqlite_file

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
SHELL = "\n".join(re.findall(r"```sh\n(.*?)```", README, re.S))


def test_serve_examples_name_an_absolute_ledger_and_a_budgets_file_that_loads(tmp_path, monkeypatch):
    examples = [line.split("#")[0] for line in SHELL.splitlines() if line.strip().startswith("aispend serve")]
    assert examples, "the README shows no aispend serve command"
    monkeypatch.chdir(tmp_path)  # a relative ledger URL would land here
    for line in examples:
        args = build_parser().parse_args(shlex.split(line)[1:])
        if args.ledger and args.ledger.startswith("sqlite:"):
            path = sqlite_file(args.ledger)
            assert path is not None and not path.is_relative_to(tmp_path), f"{args.ledger} is a relative path"
        if args.budgets:
            load_budgets(ROOT / args.budgets)  # the example file exists and is valid


def test_every_repository_file_the_readme_names_exists():
    for name in sorted(set(re.findall(r"`([\w./-]+/[\w.-]+\.(?:ya?ml|md|py|json))`", README))):
        candidates = [ROOT / name, ROOT / "prometheus" / name]  # rules/... in the prometheus/ paragraph
        assert any(p.exists() for p in candidates), f"the README names {name}, which is not in the repository"


def test_installing_from_a_checkout_is_shown():
    assert re.search(r"^pip install \.\s", SHELL, re.M), "no `pip install .` from a checkout"
    assert re.search(r"^git clone \S+", SHELL, re.M)
