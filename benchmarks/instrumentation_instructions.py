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
provider's two replies are recorded once and replayed by ``httpx2.MockTransport`` chunk by chunk,
spans are exported on the calling thread (``SimpleSpanProcessor``, for every configuration alike),
and the hash seed is fixed. Runs made together then agree within ~1 K; runs hours apart have
moved by up to ~15 K here, so compare configurations counted in the same run.

Instructions are not time: a thread hand-off or a cache miss costs time and few instructions
(``instrumentation_overhead`` measures the time), and the kernel's work is not counted. They
are what the Python code of each instrumentation costs, exactly, on any machine.

Run: .venv/bin/python benchmarks/instrumentation_instructions.py [--calls 60] [--only aispend,openai-v2] [--in-process]
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

KINDS = ("non-streaming", "streaming")
WARM_UP = 20


def record(fake_url: str, out: Path) -> None:
    """The fake provider's two replies (status, headers, body chunks as they arrived), for --in-process."""
    import httpx2

    replies = {}
    for stream in (False, True):
        body: dict[str, object] = {"model": "gpt-4o", "messages": overhead.MESSAGES}
        if stream:
            body.update(stream=True, stream_options={"include_usage": True})
        with httpx2.Client() as client, client.stream("POST", f"{fake_url}/openai/v1/chat/completions", json=body) as r:
            headers = [(k, v) for k, v in r.headers.raw if k.lower() not in (b"content-length", b"transfer-encoding")]
            replies[stream] = (r.status_code, headers, list(r.iter_raw()))
    out.write_bytes(pickle.dumps(replies))


def _replaying(recorded: Path) -> Any:
    """An httpx2 client answering every request with the recorded reply, chunk by chunk."""
    import httpx2

    replies = pickle.loads(recorded.read_bytes())

    class Chunks(httpx2.SyncByteStream):
        def __init__(self, chunks: list[bytes]) -> None:
            self.chunks = chunks

        def __iter__(self) -> Any:
            return iter(self.chunks)

    def reply(request: Any) -> Any:
        status, headers, chunks = replies[json.loads(request.content).get("stream") is True]
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

    def plain() -> None:
        client.chat.completions.create(model="gpt-4o", messages=overhead.MESSAGES)

    def streaming() -> None:
        chunks = 0
        for _ in client.chat.completions.create(
            model="gpt-4o", messages=overhead.MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            chunks += 1
        if chunks < 2:
            raise SystemExit(f"the stream gave {chunks} chunks: not the recorded stream")

    for _ in range(WARM_UP):
        plain()
        streaming()
    provider.force_flush()
    if not with_gc:
        gc.collect()
        gc.disable()
    os.getppid()  # marker: callgrind dumps the count so far (start-up, warm-up)
    for fn in (plain, streaming):
        for _ in range(calls):
            fn()
        provider.force_flush()
        os.getppid()  # marker: the count of this kind's calls
    provider.shutdown()


def count(
    name: str, fake_url: str, calls: int, out: Path, with_gc: bool, recorded: Path | None = None
) -> dict[str, float]:
    """Instructions per call of each kind for one configuration."""
    prefix = out / name.replace(" ", "_").replace("+", "plus").replace("(", "").replace(")", "")
    cmd = [
        "valgrind",
        "--tool=callgrind",
        "--dump-before=getppid",
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
    # dump 1: start-up and warm-up; 2: non-streaming calls; 3: streaming calls
    if Path(f"{prefix}.4").exists():
        raise SystemExit(f"{name}: something else in the worker calls getppid(); the markers are not ours alone")
    return {kind: _totals(Path(f"{prefix}.{i}")) / calls for i, kind in enumerate(KINDS, start=2)}


def _totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise SystemExit(f"{path}: no totals line (callgrind's output format changed?)")


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
                name: pool.submit(count, name, fake_url, args.calls, Path(tmp), args.with_gc, recorded)
                for name in names
            }
            counts = {name: future.result() for name, future in futures.items()}
    finally:
        server.terminate()
        server.wait()
    report(counts, args.calls, time.monotonic() - started, args.with_gc, args.in_process)


def report(
    counts: dict[str, dict[str, float]], calls: int, seconds: float, with_gc: bool, in_process: bool = False
) -> None:
    print(
        f"instructions per call (callgrind, all threads), {calls} calls per configuration and kind, {seconds:.0f} s,"
        f" garbage collector {'on' if with_gc else 'off while counting'}"
        + (", in-process replay of the recorded replies" if in_process else "")
    )
    for kind in KINDS:
        base = counts[overhead.BASELINE][kind]
        print(f"\n{kind}: baseline {base / 1e6:,.2f} M instructions per call")
        added = {name: c[kind] - base for name, c in counts.items() if name != overhead.BASELINE}
        for name, extra in added.items():
            print(f"  {name:<24} added {extra / 1e3:>7,.0f} K  ({extra / base:+.1%} of the baseline call)")
        peers = [n for n in overhead.PEERS if n in added]
        if "aispend" in added and peers:
            ours = added["aispend"]
            print("  peer / aispend (added instructions; > 1: aispend adds less):")
            for name in peers:
                print(f"    {name:<22} {added[name] / ours:.2f}x" if ours > 0 else f"    {name:<22} n/a")
            best = min(peers, key=lambda n: added[n])
            verdict = "met" if ours < added[best] else "NOT met"
            print(
                f"  aispend +{ours / 1e3:,.0f} K vs the best peer ({best}) +{added[best] / 1e3:,.0f} K"
                f" (aispend lowest: {verdict})"
            )


if __name__ == "__main__":
    main()
