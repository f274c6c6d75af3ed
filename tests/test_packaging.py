"""The wheel users install contains every module and data file, and registers its entry points."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {
    "aispend": "aispend",
    "aispend/pricing": "pricing",
    "aispend/instrumentation": "instrumentation",
    "aispend/exporter": "exporter",
}


def test_wheel_contents(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    (wheel,) = tmp_path.glob("aispend-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for installed, source in PACKAGES.items():
        for path in (ROOT / source).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            relative = path.relative_to(ROOT / source).as_posix()
            if installed == "aispend" and "/" in relative:
                continue  # aispend/ has no subpackages of its own
            assert f"{installed}/{relative}" in names, f"{installed}/{relative} missing from the wheel"
    assert "aispend/pricing/pricebook.yaml" in names
    assert "aispend/py.typed" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "aispend = aispend.instrumentation:AiSpendInstrumentor" in text
    assert "aispend = aispend.cli:main" in text
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
