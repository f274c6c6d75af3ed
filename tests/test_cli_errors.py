"""The ``aispend`` command and ``make run`` as a user meets them: clear one-line errors and a
non-zero exit instead of tracebacks, nothing silently ignored, and one ledger location for every
command (issue 12, items 21, 22, 24, 25). Every command runs as a real subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from aispend.devstack import Stack, StackConfig
from tests.exporter.server import ServeProcess, running

FREE = ("--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--metrics", "127.0.0.1:0")


def aispend(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aispend.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )


def one_line_error(proc: subprocess.CompletedProcess[str], prefix: str, *words: str) -> str:
    """The process failed with exactly one line on stderr, starting with ``prefix``, naming ``words``."""
    assert proc.returncode not in (0, None), proc
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(prefix), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def usage_error(proc: subprocess.CompletedProcess[str], command: str, *words: str) -> None:
    """argparse's answer: the subcommand's own usage, then its error line, exit code 2."""
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"usage: aispend {command} "), proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"aispend {command}: error: "), proc.stderr
    for word in words:
        assert word in last, last


@pytest.fixture
def data_home(tmp_path) -> Iterator[dict[str, str]]:
    """A user's own data directory, so the default ledger location is this test's."""
    yield {"XDG_DATA_HOME": str(tmp_path / "data")}


# -- item 21: a taken port names the address and exits non-zero ----------------------------------
@pytest.mark.parametrize("which", ["--otlp-grpc", "--otlp-http", "--metrics"])
def test_a_taken_port_is_a_one_line_error_naming_the_address(tmp_path, which):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        args = list(FREE)
        args[args.index(which) + 1] = address
        proc = aispend("serve", *args, "--ledger", "none", cwd=tmp_path)
    one_line_error(proc, "aispend serve: ", f"cannot listen on {address}")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_make_run_refuses_ports_another_exporter_owns(tmp_path):
    ports = {"otlp_grpc": _port(), "otlp_http": _port(), "metrics": _port()}
    with running(**{k: f"127.0.0.1:{v}" for k, v in ports.items()}):
        stack = Stack(StackConfig(workdir=tmp_path / "run", budgets=tmp_path / "none.yaml", **ports))
        try:
            with pytest.raises(RuntimeError, match=rf"127\.0\.0\.1:{ports['otlp_grpc']} is already in use"):
                stack.start_exporter()
        finally:
            stack.stop()


# -- item 22: tracebacks become messages; negative numbers and misspelt flags refused -------------
def test_prices_at_not_a_date_is_a_usage_error():
    usage_error(aispend("prices", "gpt-4o", "--at", "notadate"), "prices", "--at", "notadate")


@pytest.mark.parametrize(("command", "flag"), [("prices", "--input"), ("prices", "--requests"), ("usage", "--limit")])
def test_negative_numbers_are_refused(command, flag, data_home):
    args = ["gpt-4o"] if command == "prices" else []
    usage_error(aispend(command, *args, flag, "-5", env=data_home), command, flag, "negative")


def test_an_unknown_timezone_is_refused_by_usage_and_serve(tmp_path, data_home):
    ledger = f"sqlite:///{tmp_path / 'ledger.sqlite'}"
    with running(ledger=ledger):
        pass  # a ledger to read
    one_line_error(aispend("usage", "--ledger", ledger, "--timezone", "Mars/Base"), "aispend usage: ", "Mars/Base")
    serve = aispend("serve", *FREE, "--ledger", ledger, "--timezone", "Mars/Base", cwd=tmp_path)
    one_line_error(serve, "aispend serve: ", "Mars/Base")  # refuses to start, not breaks every /v1/usage


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("usage", "--group-bi", "model"), "usage"),
        (("prices", "gpt-4o", "--inptu", "5"), "prices"),
        (("serve", "--ledgr", "none"), "serve"),
        (("budgets", "render", "prometheus/budgets.example.yaml", "--ouput", "x"), "budgets render"),
    ],
)
def test_a_misspelt_flag_prints_the_subcommands_usage(args, command, data_home):
    usage_error(aispend(*args, env=data_home), command, "unrecognized arguments", args[-2])


# -- item 24: one default ledger location; reading a missing ledger is an error ------------------
def test_serve_and_usage_share_one_default_ledger_in_the_users_data_directory(tmp_path, data_home):
    expected = Path(data_home["XDG_DATA_HOME"]) / "aispend" / "ledger.sqlite"
    for command in ("serve", "usage"):
        help_text = aispend(command, "--help", env={**data_home, "COLUMNS": "1000"}).stdout
        assert str(expected) in help_text, help_text
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    missing = aispend("usage", cwd=elsewhere, env=data_home)
    one_line_error(missing, "aispend usage: ", "no ledger at", str(expected))
    assert not expected.exists() and not expected.parent.exists()  # nothing silently created

    serve = ServeProcess(tmp_path, env=data_home).start()  # started from another folder
    try:
        assert expected.exists()
    finally:
        serve.stop()
    report = aispend("usage", cwd=elsewhere, env=data_home)
    assert report.returncode == 0 and "all time" in report.stdout, report.stderr


def test_make_run_uses_the_default_ledger_and_says_where(tmp_path, data_home):
    """`python -m aispend.devstack` is what `make run` runs; its --help and defaults name the ledger."""
    proc = subprocess.run(
        [sys.executable, "-m", "aispend.devstack", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **data_home, "COLUMNS": "1000"},
    )
    expected = Path(data_home["XDG_DATA_HOME"]) / "aispend" / "ledger.sqlite"
    assert proc.returncode == 0 and str(expected) in proc.stdout, proc.stdout


# -- item 25: the resolved ledger path is printed at start ---------------------------------------
def test_serve_prints_the_resolved_absolute_ledger_path(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-m", "aispend.cli", "serve", *FREE, "--ledger", "sqlite:///var/lib/aispend/ledger.sqlite"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert proc.stdout is not None
        banner = next((line for line in proc.stdout if line.startswith("aispend serve:")), "")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    resolved = tmp_path / "var" / "lib" / "aispend" / "ledger.sqlite"  # three slashes: a relative path
    assert f"; ledger {resolved};" in banner or banner.strip().endswith(f"; ledger {resolved}"), banner
    assert resolved.exists()


# -- every numeric setting is read as a number and refused when negative -------------------------
def _numeric_settings() -> list[str]:
    from dataclasses import fields

    from aispend.exporter.config import ExporterConfig

    return [f.name for f in fields(ExporterConfig) if type(f.default) in (int, float)]


@pytest.mark.parametrize("name", _numeric_settings())
def test_numeric_settings_are_numbers_and_never_negative(name):
    from aispend.exporter.config import ConfigError, ExporterConfig

    for source in ({"args": {name: "7"}}, {"environ": {f"AISPEND_{name.upper()}": "7"}}):
        config = ExporterConfig.load(source.get("args"), environ=source.get("environ", {}))
        assert getattr(config, name) == 7 and type(getattr(config, name)) is type(getattr(ExporterConfig(), name))
    with pytest.raises(ConfigError, match=name):
        ExporterConfig.load({name: "-1"}, environ={})
    with pytest.raises(ConfigError, match=name):
        ExporterConfig.load({name: "lots"}, environ={})


def test_serve_refuses_a_negative_limit_with_one_line(tmp_path):
    proc = aispend("serve", *FREE, "--ledger", "none", "--max-spans-per-request", "-1", cwd=tmp_path)
    one_line_error(proc, "aispend serve: ", "max_spans_per_request")
