"""Run the real exporter for a test: in-process (fast) or as an `aispend serve` subprocess."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from aispend.exporter.config import ExporterConfig
from aispend.exporter.service import Exporter


@contextlib.contextmanager
def running(**config) -> Iterator[Exporter]:
    settings = {
        "otlp_grpc": "127.0.0.1:0",
        "otlp_http": "127.0.0.1:0",
        "metrics": "127.0.0.1:0",
        "ledger": "sqlite:///:memory:",
    }
    settings.update(config)
    exporter = Exporter(ExporterConfig(**settings))
    exporter.start()
    try:
        yield exporter
    finally:
        exporter.stop(grace=0.5)


def scrape(port: int, openmetrics: bool = False, token: str | None = None) -> str:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    if openmetrics:
        request.add_header("Accept", "application/openmetrics-text; version=1.0.0")
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read().decode()


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


def samples(text: str, name: str) -> dict[frozenset, float]:
    """{frozenset(label pairs): value} for every sample of one metric name."""
    out = {}
    for line in text.splitlines():
        match = _SAMPLE.match(line)
        if not match or match.group(1) != name:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        out[labels] = float(match.group(3))
    return out


def value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for k, v in samples(text, name).items() if wanted <= set(k))


class ServeProcess:
    """`aispend serve` as a user runs it, with its ports read from its start-up line."""

    def __init__(self, tmp: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.args = ["--otlp-grpc", "127.0.0.1:0", "--otlp-http", "127.0.0.1:0", "--metrics", "127.0.0.1:0", *args]
        self.env = {**os.environ, **(env or {})}
        self.tmp = tmp
        self.proc: subprocess.Popen[str] | None = None
        self.ports: dict[str, int] = {}

    def start(self) -> ServeProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aispend.cli", "serve", *self.args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=self.env,
            cwd=self.tmp,
        )
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"aispend serve exited with {self.proc.wait()}")
            if line.startswith("aispend serve:"):
                grpc_port = re.search(r"OTLP/gRPC on [^,]*:(\d+)", line)
                http_port = re.search(r"OTLP/HTTP on http://[^:]+:(\d+)", line)
                metrics_port = re.search(r"metrics on http://[^:]+:(\d+)", line)
                self.ports = {
                    "otlp_grpc": int(grpc_port.group(1)) if grpc_port else 0,
                    "otlp_http": int(http_port.group(1)) if http_port else 0,
                    "metrics": int(metrics_port.group(1)),
                }
                # keep reading its output, so a chatty server never blocks on a full pipe
                self.output: list[str] = []
                threading.Thread(target=self._drain, daemon=True).start()
                return self
        raise RuntimeError("aispend serve did not report its ports in 30 s")

    def _drain(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.output.append(line)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)
