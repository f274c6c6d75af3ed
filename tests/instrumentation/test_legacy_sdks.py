"""openai<2 and anthropic<1 send through httpx (not httpx2): the same spans come out.

The legacy SDKs live in their own venv (.venv-legacy, created on first use) that sees this
venv's packages through a .pth file placed after its own, so only the old SDKs differ.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LEGACY = ROOT / ".venv-legacy"
PINS = ["openai>=1.50,<2", "anthropic>=0.40,<1"]
LAYOUT = "addsitedir"  # bump to rebuild the venv when its set-up changes


@pytest.fixture(scope="session")
def legacy_python() -> Path:
    python = LEGACY / "bin" / "python"
    marker = LEGACY / ".pins"
    if not marker.exists() or marker.read_text() != " ".join([*PINS, LAYOUT]):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(LEGACY)], check=True, timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True, timeout=600)
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        # this venv's packages (aispend, OpenTelemetry, ...) after the legacy venv's own; addsitedir
        # also runs that directory's .pth files (aispend's editable install is one)
        main_site = sysconfig.get_paths()["purelib"]
        Path(site, "zz-main-venv.pth").write_text(f"import site; site.addsitedir({main_site!r})\n")
        marker.write_text(" ".join([*PINS, LAYOUT]))
    return python


def test_legacy_sdks_through_httpx(fake, legacy_python):
    fake.reset()
    result = subprocess.run(
        [str(legacy_python), str(ROOT / "tests/apps/legacy_sdks.py"), fake.url],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    versions, *spans = [json.loads(line) for line in result.stdout.splitlines()]
    assert versions["openai"].startswith("1.") and versions["anthropic"].startswith("0.")
    assert [s["name"] for s in spans] == [
        "chat gpt-4o",
        "chat gpt-4o",
        "chat claude-haiku-4-5",
        "chat claude-haiku-4-5",
    ]
    for span in spans[:2]:
        assert (span["gen_ai.usage.input_tokens"], span["gen_ai.usage.output_tokens"]) == (11, 7)
    for span in spans[2:]:
        assert (span["gen_ai.usage.input_tokens"], span["gen_ai.usage.cache_read.input_tokens"]) == (17, 3)
    assert spans[1]["gen_ai.request.stream"] is True and spans[3]["gen_ai.request.stream"] is True
