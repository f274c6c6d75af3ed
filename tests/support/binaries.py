"""Locate the external binaries the ops tests drive (promtool, prometheus, amtool, alertmanager).

A missing binary FAILS the test (never skips): the ops configs are tested code, and a skipped
test would let an untested alert or route ship. ``make test`` installs them.
"""

from __future__ import annotations

import os
import shutil

import pytest

# Other names the same tool is installed under (Debian prefixes Alertmanager's binary).
_ALIASES: dict[str, tuple[str, ...]] = {
    "alertmanager": ("alertmanager", "prometheus-alertmanager"),
    "prometheus-alertmanager": ("prometheus-alertmanager", "alertmanager"),
}
_PACKAGES = {
    "promtool": "prometheus",
    "prometheus": "prometheus",
    "amtool": "prometheus-alertmanager",
    "alertmanager": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
}
# Also look here when PATH is minimal (e.g. a test runner started with a bare environment).
_EXTRA_DIRS = ("/usr/bin", "/usr/local/bin", "/usr/sbin")


def require(name: str) -> str:
    """Return the absolute path of binary ``name``; fail the calling test if it is missing."""
    for candidate in _ALIASES.get(name, (name,)):
        found = shutil.which(candidate)
        if found is None:
            for directory in _EXTRA_DIRS:
                path = os.path.join(directory, candidate)
                if os.path.isfile(path) and os.access(path, os.X_OK):
                    found = path
                    break
        if found is not None:
            return os.path.abspath(found)
    package = _PACKAGES.get(name, "prometheus prometheus-alertmanager")
    pytest.fail(
        f"required binary {name!r} not found on PATH. Install it with "
        f"`apt-get install {package}` (Debian/Ubuntu; both: apt-get install prometheus "
        f"prometheus-alertmanager), or run `make test`, which installs them.",
        pytrace=False,
    )
