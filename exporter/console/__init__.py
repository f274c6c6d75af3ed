"""The console's files: our own small HTML / JS / CSS (package data next to this module) and the
charting library, plotly.js, served from the installed ``plotly`` package (it ships
``plotly/package_data/plotly.min.js``), so the pages work offline and nothing third-party is
copied into this repository."""

from __future__ import annotations

import gzip
import importlib.util
import threading
from importlib import resources
from pathlib import Path

PLOTLY = "vendor/plotly.min.js"
_OWN = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript", "app.css": "text/css"}
# The pages load only their own files; plotly.js sets inline styles on the charts.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
_cache: dict[str, bytes] = {}
_lock = threading.Lock()


def plotly_path() -> Path | None:
    """plotly.min.js of the installed plotly package (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    return path if path.is_file() else None


def asset(name: str) -> tuple[bytes, str] | None:
    """(bytes, content type) of a console file, or None if there is no such file."""
    if name == "" or name == "index.html":
        name = "index.html"
    if name == PLOTLY:
        path = plotly_path()
        if path is None:
            return b"window.AISPEND_NO_PLOTLY = true;\n", "text/javascript"
        with _lock:
            found = _cache.get(name)
        if found is None:
            found = _cached(name, path.read_bytes())
        return found, "text/javascript"
    content_type = _OWN.get(name)
    if content_type is None:
        return None
    return resources.files(__package__).joinpath(name).read_bytes(), content_type


def _cached(name: str, body: bytes) -> bytes:
    with _lock:
        return _cache.setdefault(name, body)


def gzipped(name: str, body: bytes) -> bytes:
    """The gzip of a file, compressed once per process for plotly.js (4.8 MB -> about 1.4 MB)."""
    if name != PLOTLY:
        return gzip.compress(body, 6)
    key = name + ".gz"
    with _lock:
        found = _cache.get(key)
    if found is None:
        found = gzip.compress(body, 6)
        with _lock:
            _cache[key] = found
    return found
