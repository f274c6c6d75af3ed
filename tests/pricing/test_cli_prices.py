"""`aispend prices` as a user runs it: a real subprocess of the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from decimal import Decimal


def run(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("aispend") or ""
    cmd = [exe, *args] if exe else [sys.executable, "-m", "aispend.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_prices_prints_per_million_prices_and_cost():
    out = run("prices", "gpt-4", "--input", "150", "--output", "75")
    assert out.returncode == 0, out.stderr
    assert "input        $30" in out.stdout and "output       $60" in out.stdout
    assert "cost:      $0.009000" in out.stdout


def test_prices_json_and_provider_prefix():
    out = run("prices", "anthropic/claude-3-5-haiku-20241022", "--input", "1000000", "--json")
    data = json.loads(out.stdout)
    assert (
        data["matched"] is True
        and Decimal(data["cost_usd"]) == Decimal("0.80")
        and data["matched_provider"] == "anthropic"
    )


def test_prices_unknown_model_exit_code_1():
    out = run("prices", "no-such-model", "--input", "5")
    assert out.returncode == 1 and "no price found" in out.stdout


def test_prices_bad_overrides_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "prices.yaml"
    bad.write_text("prices: [{models: [x], input_mtok: -3}]")
    out = run("prices", "gpt-4", "--overrides", str(bad))
    assert out.returncode == 2 and "non-negative" in out.stderr and "Traceback" not in out.stderr
