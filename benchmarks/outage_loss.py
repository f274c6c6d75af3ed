"""Share of paid calls lost over a 10-second aispend outage: the stock OTel SDK exporting straight to
`aispend serve`, against the same SDK exporting to the real collector (bin/otelcol-aispend with the
shipped otel-collector.yaml) in front of aispend. One run, the same load both ways.

Run: make collector && .venv/bin/python benchmarks/outage_loss.py [--rate 200] [--seconds 30] [--outage 10]
The app is tests/apps/steady_load.py under `opentelemetry-instrument` (the real openai SDK against the
local fake providers; the OTel SDK's default batch processor and OTLP/gRPC exporter). aispend is
killed (-9) `--outage-at` seconds after the first calls reached its ledger and started again
`--outage` seconds later; lost = calls the app made that the ledger does not have once all settled.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.fakes.providers import FakeProviders
from tests.support.aispend_serve import Aispend
from tests.support.collector import Collector
from tests.support.load import Figures, Load, wait_for_ledger, wait_for_traffic


def run(fake: FakeProviders, tmp: Path, via_collector: bool, args: argparse.Namespace) -> Figures:
    name = "collector" if via_collector else "direct"
    ledger = f"sqlite:///{tmp}/{name}.sqlite"
    aispend = Aispend(tmp, ledger, f"aispend-{name}").start()
    collector = Collector(tmp, [aispend.grpc_address], name=f"collector-{name}").start() if via_collector else None
    endpoint = collector.grpc_endpoint if collector else f"http://{aispend.grpc_address}"
    load = Load(fake, endpoint, args.rate, args.seconds, stock_sdk=True)
    try:
        wait_for_traffic(ledger)  # the app is past its start-up and its first spans are in
        time.sleep(args.outage_at)
        aispend.kill()
        time.sleep(args.outage)
        aispend.start()
        counts = load.wait()
        # the stock SDK gives up on what it could not send; the collector retries until it is taken
        rows, distinct = wait_for_ledger(ledger, counts["calls"], timeout=120, settle=5)
    finally:
        load.kill()
        if collector:
            collector.stop()
        aispend.stop()
    return Figures(f"{'via the collector' if via_collector else 'direct to aispend'}", counts["calls"], rows, distinct)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200, help="calls per second (default 200)")
    parser.add_argument("--seconds", type=float, default=30, help="length of the load (default 30)")
    parser.add_argument("--outage", type=float, default=10, help="seconds aispend is down (default 10)")
    parser.add_argument("--outage-at", type=float, default=5, help="seconds into the load the outage starts")
    args = parser.parse_args()
    print(
        f"load: {args.rate:.0f} calls/s for {args.seconds:.0f} s (openai SDK under opentelemetry-instrument, stock "
        f"OTel SDK batch processor + OTLP/gRPC exporter); aispend killed -9 {args.outage_at:.0f} s after the first "
        f"calls reached it, "
        f"back {args.outage:.0f} s later"
    )
    with FakeProviders() as fake, tempfile.TemporaryDirectory() as tmp:
        results = [run(fake, Path(tmp), via, args) for via in (False, True)]
    print(f"{'':<22}{'sent':>8}{'recorded':>10}{'lost':>8}{'lost %':>9}{'duplicated':>12}")
    for f in results:
        share = f.lost / f.sent * 100 if f.sent else 0.0
        print(f"{f.scenario:<22}{f.sent:>8}{f.rows:>10}{f.lost:>8}{share:>8.1f}%{f.duplicated:>12}")
    direct, collector = (f.lost / f.sent if f.sent else 0.0 for f in results)
    print(
        f"share of calls lost over a {args.outage:.0f} s outage: direct {direct:.1%}, via the collector {collector:.1%}"
    )


if __name__ == "__main__":
    main()
