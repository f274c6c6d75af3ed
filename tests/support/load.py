"""A steady load of paid AI calls from a real app, and how to check what the ledger made of it.

``Load`` runs `opentelemetry-instrument python tests/apps/steady_load.py` (the real openai SDK against
the fake providers, the real OTel SDK exporting OTLP/gRPC); ``wait_for_ledger`` waits until the ledger
holds the app's calls and stops changing; ``Figures`` compares the two (used by tests/collector/ and
benchmarks/outage_loss.py).
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.fakes.providers import FakeProviders
from tests.support.aispend_serve import ledger_calls
from tests.support.stack import ROOT, shop_app_env

BIN = Path(sys.executable).parent
#: every figure line reported so far (tests/collector/conftest.py prints them at the end of the run)
FIGURES: list[str] = []


@dataclass
class Figures:
    """What the app says it did against what the ledger shows."""

    scenario: str
    sent: int
    rows: int
    distinct: int

    @property
    def lost(self) -> int:
        return max(self.sent - self.distinct, 0)

    @property
    def duplicated(self) -> int:
        return self.rows - self.distinct + max(self.distinct - self.sent, 0)

    def report(self, extra: str = "") -> None:
        line = (
            f"{self.scenario}: calls sent {self.sent}, recorded {self.rows}, lost {self.lost}, "
            f"duplicated {self.duplicated}{'; ' + extra if extra else ''}"
        )
        FIGURES.append(line)
        print(line)


class Load:
    """`opentelemetry-instrument python tests/apps/steady_load.py`: a steady, bounded rate of real
    openai SDK calls to the fakes, its spans exported over OTLP/gRPC to ``endpoint``."""

    def __init__(
        self, fake: FakeProviders, endpoint: str, rate: float, seconds: float, noise: int = 0, stock_sdk: bool = False
    ) -> None:
        env = shop_app_env(fake.url, endpoint, protocol="grpc")
        env.update(
            OTEL_SERVICE_NAME="steady-load", LOAD_RATE=str(rate), LOAD_SECONDS=str(seconds), LOAD_NOISE=str(noise)
        )
        # aispend's instrumentation only: the openai-v2 instrumentation (entry point "openai") would add a
        # second span of each call (aispend de-duplicates it, but the figures are about calls)
        env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "openai"
        if stock_sdk:  # the OTel SDK's defaults: a 2,048-span queue, a 5 s schedule
            for name in ("OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_QUEUE_SIZE"):
                env.pop(name, None)
        else:  # room in the SDK's queue for the noise spans of a web app (the collector is always up)
            env.update(OTEL_BSP_MAX_QUEUE_SIZE="200000", OTEL_BSP_MAX_EXPORT_BATCH_SIZE="512")
        self.seconds = seconds
        self.proc = subprocess.Popen(
            [str(BIN / "opentelemetry-instrument"), sys.executable, str(ROOT / "tests/apps/steady_load.py")],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.started = time.monotonic()

    def wait(self) -> dict[str, float]:
        out, err = self.proc.communicate(timeout=self.seconds + 120)
        assert self.proc.returncode == 0, err[-3000:]
        match = re.search(r"steady_load: calls=(\d+) failed=(\d+) other_spans=(\d+) seconds=([\d.]+)", out)
        assert match, out + err[-3000:]
        calls, failed, other, seconds = match.groups()
        assert int(failed) == 0, f"{failed} calls to the fake provider failed: {err[-2000:]}"
        return {"calls": int(calls), "other_spans": int(other), "seconds": float(seconds)}

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def wait_for_ledger(url: str, expected: int, timeout: float = 90.0, settle: float = 2.0) -> tuple[int, int]:
    """(rows, distinct calls) once the ledger holds ``expected`` distinct calls and nothing more
    arrived for ``settle`` seconds (so a late duplicate would still be seen), or at ``timeout``."""
    deadline = time.monotonic() + timeout
    last, since = (-1, -1), time.monotonic()
    while time.monotonic() < deadline:
        now = ledger_calls(url)
        if now != last:
            last, since = now, time.monotonic()
        elif now[1] >= expected and time.monotonic() - since >= settle:
            return now
        time.sleep(0.2)
    return last


def rate_note(counts: dict[str, float]) -> str:
    return f"{counts['calls'] / counts['seconds']:.0f} calls/s for {counts['seconds']:.1f} s"


def wait_for_traffic(url: str, timeout: float = 90.0) -> None:
    """Until the first calls are in the ledger: the app is past its start-up (slow on a busy machine)."""
    deadline = time.monotonic() + timeout
    while ledger_calls(url)[0] == 0:
        assert time.monotonic() < deadline, f"no call reached the ledger in {timeout}s"
        time.sleep(0.1)
