"""A budgets or prices file that cannot be read at start stops ``aispend serve`` with the file's
error (issue 12, item 23): running without it would turn budget enforcement off, or drop the
user's prices, while /healthz says ok. On SIGHUP the previous file stays and
``aispend_config_errors_total`` counts it (tests/exporter/test_restart.py), which the
AispendConfigFileErrors alert watches (prometheus/tests/alerts_test.yml)."""

from __future__ import annotations

import subprocess
import sys

import pytest

FREE = ("--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--metrics", "127.0.0.1:0")


def serve(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aispend.cli", "serve", *FREE, "--ledger", "none", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("flag", "content", "reason"),
    [
        ("--budgets", None, "cannot read"),
        ("--budgets", "budgets: [{name: all, period: fortnight, amount_usd: 1}]\n", "period"),
        ("--budgets", "budgets: [unclosed\n", "not valid YAML"),
        ("--prices", None, "cannot read"),
        ("--prices", "prices: [{provider: openai, models: [x], input_mtok: lots}]\n", "input_mtok"),
    ],
)
def test_a_missing_or_broken_file_at_start_is_the_files_error(tmp_path, flag, content, reason):
    path = tmp_path / "file.yaml"
    if content is not None:
        path.write_text(content)
    proc = serve(tmp_path, flag, str(path))
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aispend serve: "), proc.stderr
    assert str(path) in lines[0] and reason in lines[0], lines[0]
