"""Instructions aispend adds to an OpenAI SDK call, against every peer, counted by callgrind.

Wall time on a shared machine moves by more than the differences between instrumentations;
instruction counts hardly move (well under 1% of a call between runs), so this is the figure to
cut work by. Each configuration of ``instrumentation_overhead`` (baseline, aispend, aispend on its
recording thread, openai-v2, OpenLLMetry, OpenLIT, aispend with the budget guard) runs in its own
process under ``valgrind --tool=callgrind``, instrumented once, against the fake provider in an
uninstrumented process. A worker warms both kinds of call up, then makes ``--calls`` calls of
each kind between markers (``os.getppid()``, with ``--dump-before=getppid``: callgrind writes
the count of the instructions since the last marker); the tracer provider is force-flushed
before each marker, so every thread's work is counted (aispend's recording thread, the span
processor's). Added = configuration minus baseline, per call. The garbage collector is off while
counting (``--with-gc`` leaves it on): a collection lands in whichever configuration's calls
happen to cross its threshold, and a full one costs as much as a few hundred calls, which once
put 200 K instructions a call on one configuration; with it off, the same code counted twice
agrees within 10-35 K (streams, whose reads depend on how the bytes arrive, move the most).
Every span-making configuration (aispend and the peers alike) triggers about twenty young
collections per thousand calls here (the spans waiting in the batch processor's queue).

``--in-process`` takes the network and the span processor's thread out as well: the fake
provider's reply to each kind of call is recorded once and replayed by ``httpx2.MockTransport``
chunk by chunk, spans are exported on the calling thread (``SimpleSpanProcessor``, for every
configuration alike), and the hash seed is fixed. Runs made together then agree within ~1 K; runs
hours apart have moved by up to ~15 K here, so compare configurations counted in the same run.

Instructions are not time: a thread hand-off or a cache miss costs time and few instructions
(``instrumentation_overhead`` measures the time), and the kernel's work is not counted. They
are what the Python code of each instrumentation costs, exactly, on any machine.

Run: .venv/bin/python benchmarks/instrumentation_instructions.py [--calls 60] [--only aispend,openai-v2] [--in-process]
The kinds of call are ``instrumentation_overhead``'s, the 100-token stream included (``--calls`` of each).
Needs valgrind (``apt-get install valgrind``). The peers as in ``instrumentation_overhead``'s
docstring (run with the interpreter of a venv that has them); a missing one is skipped.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import instrumentation_overhead as overhead  # noqa: E402  (the same configurations and fake server)

KINDS = overhead.KINDS
WARM_UP = 20


def record(fake_url: str, out: Path) -> None:
    """The fake provider's reply to each kind of call (status, headers, body chunks as they
    arrived), for --in-process."""
    import httpx2

    replies = {}
    for kind, (stream, headers, _) in overhead.CALLS.items():
        body = overhead.request_body(kind)
        url = f"{fake_url}/openai/v1/chat/completions"
        with httpx2.Client() as client, client.stream("POST", url, json=body, headers=headers) as r:
            kept = [(k, v) for k, v in r.headers.raw if k.lower() not in (b"content-length", b"transfer-encoding")]
            replies[stream, headers.get("x-fake-stream-chunks")] = (r.status_code, kept, list(r.iter_raw()))
    out.write_bytes(pickle.dumps(replies))


def _replaying(recorded: Path) -> Any:
    """An httpx2 client answering every request with the recorded reply to its kind, chunk by chunk."""
    import httpx2

    replies = pickle.loads(recorded.read_bytes())

    class Chunks(httpx2.SyncByteStream):
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        def __iter__(self) -> Any:
            return iter(self.chunks)

    def reply(request: Any) -> Any:
        key = json.loads(request.content).get("stream") is True, request.headers.get("x-fake-stream-chunks")
        status, headers, chunks = replies[key]
        return httpx2.Response(status, headers=headers, stream=Chunks(chunks))

    return httpx2.Client(transport=httpx2.MockTransport(reply))


def worker(name: str, fake_url: str, calls: int, with_gc: bool, recorded: Path | None = None) -> None:
    import openai
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider()
    if recorded is None:
        provider.add_span_processor(BatchSpanProcessor(overhead.Drop(), max_queue_size=100_000))
    else:  # no processor thread, whose wake-ups land in the counts by timing
        provider.add_span_processor(SimpleSpanProcessor(overhead.Drop()))
    trace.set_tracer_provider(provider)
    overhead.instrument(name, provider, fake_url, "http://127.0.0.1:9/unused")
    client = openai.OpenAI(
        base_url=f"{fake_url}/openai/v1",
        api_key="sk-bench-000000000000000000000000",
        max_retries=0,
        **({} if recorded is None else {"http_client": _replaying(recorded)}),
    )
    makers = overhead.call_makers(client)
    for _ in range(WARM_UP):
        for fn in makers.values():
            fn()
    provider.force_flush()
    if not with_gc:
        gc.collect()
        gc.disable()
    os.getppid()  # marker: callgrind dumps the count so far (start-up, warm-up)
    for fn in makers.values():
        for _ in range(calls):
            fn()
        provider.force_flush()
        os.getppid()  # marker: the count of this kind's calls
    provider.shutdown()


def count(
    name: str,
    fake_url: str,
    calls: int,
    out: Path,
    with_gc: bool,
    recorded: Path | None = None,
    cache_sim: bool = False,
) -> dict[str, dict[str, float]]:
    """Callgrind's events per call of each kind for one configuration: ``Ir`` (instructions), and
    with ``cache_sim`` the cache and branch events and the estimated cycles derived from them."""
    prefix = out / name.replace(" ", "_").replace("+", "plus").replace("(", "").replace(")", "")
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--dump-before=getppid",
        *(["--cache-sim=yes", "--branch-sim=yes"] if cache_sim else []),
        f"--callgrind-out-file={prefix}",
        sys.executable,
        __file__,
        "--worker",
        name,
        "--fake",
        fake_url,
        "--calls",
        str(calls),
        *(["--with-gc"] if with_gc else []),
        *(["--recorded", str(recorded)] if recorded is not None else []),
    ]
    # a fixed hash seed: set and dict layouts (and so their probing) the same in every run
    env = {**os.environ, "PYTHONHASHSEED": "0"} if recorded is not None else None
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"{name}: the worker failed under valgrind:\n{done.stderr[-3000:]}")
    # dump 1: start-up and warm-up; then one a kind, in KINDS' order
    if Path(f"{prefix}.{len(KINDS) + 2}").exists():
        raise SystemExit(f"{name}: something else in the worker calls getppid(); the markers are not ours alone")
    per_call = {}
    for i, kind in enumerate(KINDS, start=2):
        totals = _totals(Path(f"{prefix}.{i}"))
        if cache_sim:
            totals["cycles"] = estimated_cycles(totals)
            totals["mispredicts"] = totals["Bcm"] + totals["Bim"]
        per_call[kind] = {event: value / calls for event, value in totals.items()}
    return per_call


def _totals(path: Path) -> dict[str, int]:
    """The dump's ``totals:`` line by the names of its ``events:`` line."""
    events: list[str] = []
    for line in path.read_text().splitlines():
        if line.startswith("events:"):
            events = line.split()[1:]
        elif line.startswith("totals:") and events:
            return dict(zip(events, map(int, line.split()[1:]), strict=True))
    raise SystemExit(f"{path}: no events and totals lines (callgrind's output format changed?)")


def estimated_cycles(e: dict[str, int]) -> int:
    """Cycles estimated from the cache simulation as iai and pythonspeed.com's "consistent
    benchmarking in CI" do: an L1 hit 1, an LL hit 5, a RAM access 35. Mispredicted branches
    (10-30 cycles each on current cores) are printed beside it, not in it."""
    accesses = e["Ir"] + e["Dr"] + e["Dw"]
    l1_misses = e["I1mr"] + e["D1mr"] + e["D1mw"]
    ll_misses = e["ILmr"] + e["DLmr"] + e["DLmw"]
    return (accesses - l1_misses) + 5 * (l1_misses - ll_misses) + 35 * ll_misses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=60, help="calls per configuration and kind")
    parser.add_argument("--only", help="comma-separated configurations (baseline always runs)")
    parser.add_argument("--jobs", type=int, default=2, help="configurations counted at once")
    parser.add_argument(
        "--with-gc", action="store_true", help="leave the garbage collector on while counting (adds its noise)"
    )
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="replay the fake provider's recorded replies in-process (httpx2.MockTransport, spans exported"
        " on the calling thread, fixed hash seed): no socket or thread timing in the counts, which then"
        " agree within ~1 K between runs made together",
    )
    parser.add_argument(
        "--cache-sim",
        action="store_true",
        help="also simulate the caches and branch predictor (--cache-sim=yes --branch-sim=yes, about twice"
        " as slow) and print estimated cycles and mispredicted branches per call beside the instructions",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--fake", help=argparse.SUPPRESS)
    parser.add_argument("--recorded", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.fake, args.calls, args.with_gc, args.recorded)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install valgrind (this benchmark counts with callgrind)")

    wanted = set(args.only.split(",")) | {overhead.BASELINE} if args.only else set(overhead.CONFIGS)
    names = []
    for name, module in overhead.CONFIGS.items():
        if name not in wanted:
            continue
        if module is not None and (
            importlib.util.find_spec(module.split(".")[0]) is None or importlib.util.find_spec(module) is None
        ):
            print(f"{name}: not installed ({module}), skipped; see instrumentation_overhead's docstring")
            continue
        names.append(name)

    server = subprocess.Popen(
        [sys.executable, "-c", overhead.SERVER.format(root=str(ROOT))], stdout=subprocess.PIPE, text=True
    )
    try:
        fake_url = server.stdout.readline().strip()  # type: ignore[union-attr]
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(max(args.jobs, 1)) as pool:
            recorded = Path(tmp) / "replies.pickle" if args.in_process else None
            if recorded is not None:
                record(fake_url, recorded)
            futures = {
                name: pool.submit(count, name, fake_url, args.calls, Path(tmp), args.with_gc, recorded, args.cache_sim)
                for name in names
            }
            counts = {name: future.result() for name, future in futures.items()}
    finally:
        server.terminate()
        server.wait()
    report(counts, args.calls, time.monotonic() - started, args.with_gc, args.in_process)


def report(
    counts: dict[str, dict[str, dict[str, float]]],
    calls: int,
    seconds: float,
    with_gc: bool,
    in_process: bool = False,
) -> None:
    print(
        f"instructions per call (callgrind, all threads), {calls} calls per configuration and kind, {seconds:.0f} s,"
        f" garbage collector {'on' if with_gc else 'off while counting'}"
        + (", in-process replay of the recorded replies" if in_process else "")
    )
    cache_sim = "cycles" in counts[overhead.BASELINE][KINDS[0]]
    for kind in KINDS:
        base = counts[overhead.BASELINE][kind]
        print(f"\n{kind}: baseline {base['Ir'] / 1e6:,.2f} M instructions per call")
        _compare(counts, kind, "Ir", "instructions")
        if cache_sim:
            print(f"  -- estimated cycles (baseline {base['cycles'] / 1e6:,.2f} M) and mispredicted branches")
            _compare(counts, kind, "cycles", "estimated cycles", also="mispredicts")


def _compare(
    counts: dict[str, dict[str, dict[str, float]]], kind: str, event: str, what: str, also: str | None = None
) -> None:
    """Each configuration's added ``event`` per call, the peers' ratios to aispend, the verdict."""
    base = counts[overhead.BASELINE][kind]
    added = {name: c[kind][event] - base[event] for name, c in counts.items() if name != overhead.BASELINE}
    for name, extra in added.items():
        more = f", {also} {counts[name][kind][also] - base[also]:+,.0f}" if also else ""
        print(f"  {name:<24} added {extra / 1e3:>7,.0f} K  ({extra / base[event]:+.1%} of the baseline call{more})")
    peers = [n for n in overhead.PEERS if n in added]
    if "aispend" in added and peers:
        ours = added["aispend"]
        print(f"  peer / aispend (added {what}; > 1: aispend adds less):")
        for name in peers:
            print(f"    {name:<22} {added[name] / ours:.2f}x" if ours > 0 else f"    {name:<22} n/a")
        best = min(peers, key=lambda n: added[n])
        verdict = "met" if ours < added[best] else "NOT met"
        print(
            f"  aispend +{ours / 1e3:,.0f} K vs the best peer ({best}) +{added[best] / 1e3:,.0f} K"
            f" {what} (aispend lowest: {verdict})"
        )


if __name__ == "__main__":
    main()
