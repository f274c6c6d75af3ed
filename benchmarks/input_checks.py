"""CPU cost per span of the input checks on the read path (issue 12), next to reading the same
batches whole, measured in the same run: the wire count of spans and resource spans (before
decoding), the id and timestamp checks, the secret-looking-value check, and cleaning the two more
stored strings (kind, response_id). The lenient decode of a request with an undecodable span runs
only when the whole request fails to decode, so it costs the usual request nothing. Reading is
the Python reader's (the compiled one, native/, does the wire checks its own way).

Run: .venv/bin/python benchmarks/input_checks.py [--batches 20] [--rounds 15]
Batches are exporter_throughput.py's (512 spans). Figures are the best of --rounds (a shared
machine's noise only ever adds time). Target: the checks together under 10 % of reading.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aispend.exporter import costing, normalise, otlp, reading
from benchmarks.exporter_throughput import BATCH, batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    payloads = batches(args.batches, customers=1000)
    spans = len(payloads) * BATCH
    calls = [c for body in payloads for c in reading.read_payload(body, False, 50_000_000, {}, native=False).calls]
    views = [v for body in payloads for v in otlp.spans(otlp.decode_protobuf(body)[0])]
    full, before = costing.CLEANED_FIELDS, costing.CLEANED_FIELDS[:-2]

    def clean(fields: tuple[str, ...]) -> float:
        costing.CLEANED_FIELDS = fields
        try:
            return timeit.timeit(lambda: [costing.clean_labels(c, 128, {}) for c in calls], number=1) / len(calls)
        finally:
            costing.CLEANED_FIELDS = full

    measures = {
        "read_payload (decode, normalise; all)": lambda: (
            timeit.timeit(
                lambda: [reading.read_payload(body, False, 50_000_000, {}, native=False) for body in payloads], number=1
            )
            / spans
        ),
        "wire count of spans": lambda: (
            timeit.timeit(lambda: [otlp.check_limits(body, otlp.DEFAULT_LIMITS) for body in payloads], number=1) / spans
        ),
        "ids and timestamps": lambda: (
            timeit.timeit(lambda: [normalise._identity(v) for v in views], number=1) / len(views)
        ),
        "secret-looking values": lambda: (
            timeit.timeit(lambda: [reading._fingerprint_secrets(c, {}, {}) for c in calls], number=1) / len(calls)
        ),
        "cleaning 12 stored strings": lambda: clean(full),
        "cleaning the 10 before": lambda: clean(before),
    }
    best = dict.fromkeys(measures, float("inf"))
    for _ in range(args.rounds):
        for name, measure in measures.items():
            best[name] = min(best[name], measure() * 1e6)
    print(f"{len(payloads)} batches of {BATCH} spans; best of {args.rounds} rounds")
    for name, micros in best.items():
        print(f"  {name:<40} {micros:7.2f} µs/span")
    added = (
        best["wire count of spans"]
        + best["ids and timestamps"]
        + best["secret-looking values"]
        + max(best["cleaning 12 stored strings"] - best["cleaning the 10 before"], 0.0)
    )
    share = added / best["read_payload (decode, normalise; all)"]
    verdict = "met" if share < 0.1 else "NOT met"
    print(f"the checks together: {added:.2f} µs/span, {share:.1%} of reading (target < 10 %: {verdict})")


if __name__ == "__main__":
    main()
