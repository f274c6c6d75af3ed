"""aispend: OpenTelemetry-native cost tracking for paid AI, search and image APIs."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("aispend")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
