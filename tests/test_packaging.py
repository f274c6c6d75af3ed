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
    "aispend/exporter/console": "exporter/console",
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
            if installed == "aispend/exporter" and relative.startswith("console/"):
                continue  # its own entry above
            assert f"{installed}/{relative}" in names, f"{installed}/{relative} missing from the wheel"
    assert "aispend/pricing/pricebook.yaml" in names
    assert "aispend/py.typed" in names
    for page in ("index.html", "app.js", "app.css"):  # the console, served from the package
        assert f"aispend/exporter/console/{page}" in names
    assert not any("plotly" in n for n in names)  # plotly.js comes from the installed plotly package
    metadata = next(n for n in names if n.endswith("METADATA"))
    assert "Requires-Dist: plotly" in zipfile.ZipFile(wheel).read(metadata).decode()
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "aispend = aispend.instrumentation:AiSpendInstrumentor" in text
    assert "aispend = aispend.cli:main" in text
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    # pure Python: the compiled span reader is a package of its own (native/), never required
    assert not any(n.endswith((".so", ".pyd")) or n.startswith("native/") for n in names)
    assert "aispend-native" not in zipfile.ZipFile(wheel).read(metadata).decode()
