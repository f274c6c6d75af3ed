"""Spans per second through `aispend serve`'s gRPC receiver (batches of 512) with a SQLite ledger,
a PostgreSQL ledger, one replica and two replicas on one PostgreSQL, and the ledger off; next to
bare protobuf decoding of the same batches; and resident memory at 100,000 label sets.

Run: .venv/bin/python benchmarks/exporter_throughput.py [--batches 200] [--series 100000]
         [--ledger sqlite:///path] [--ledger postgresql://user@host/db] [--baseline-tree PATH]
         [--peer-spanmetrics] [--only sqlite|postgres|none] [--rounds N]
Without ``--ledger postgresql://...`` a throwaway PostgreSQL server is started
(tests/support/postgres.py; Debian's postgresql package). Each configuration gets a fresh ledger:
a file beside the given SQLite path, a new database on the given PostgreSQL server (its user must
be allowed to CREATE DATABASE; the benchmark's databases are dropped at the end).
``--baseline-tree PATH`` runs the ledger configurations again with the server from another checkout
(e.g. `git worktree add ../base c2b1261`), printing before / after and the ratio, in one run;
``--rounds N`` runs each configuration N times, before and after taking turns going first, and
shows the median figures and the median and range of the rounds' after / before ratios.
The after server reads spans with the compiled reader when aispend-native is installed (`make
native`); the "Python reader" configuration runs it with ``native_reader`` off, beside the baseline.
Two replicas are two `aispend serve` processes with their own --instance-id on one database, the
senders split between them. CPU per span counts the aispend processes (with decode workers) and,
for a PostgreSQL server this benchmark started, the database's processes.
Targets: >= 50,000 spans/s with the ledger, >= 100,000 without, < 300 MB at 100,000 series.
The servers run as their own processes (as deployed); this process only sends pre-built bytes.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections.abc import Callable
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from aispend.exporter.grpc_receiver import EXPORT_METHOD
from tests.exporter.spans import otlp_request

ROOT = Path(__file__).resolve().parents[1]

BATCH = 512
SENDERS = 4  # concurrent export streams in every configuration, split between the replicas
MODELS = [
    ("openai", "gpt-4o"),
    ("openai", "gpt-4o-mini"),
    ("anthropic", "claude-3-5-haiku-20241022"),
    ("anthropic", "claude-sonnet-4-0"),
    ("gcp.gemini", "gemini-2.0-flash"),
    ("serper", "search"),
]
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED, grpc.StatusCode.RESOURCE_EXHAUSTED)


def span_attrs(i: int, customers: int) -> dict:
    provider, model = MODELS[i % len(MODELS)]
    return {
        "gen_ai.operation.name": "search" if provider == "serper" else "chat",
        "gen_ai.provider.name": provider,
        "gen_ai.request.model": model,
        "gen_ai.response.model": model,
        "gen_ai.response.id": f"resp-{i}",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": 1000 + i % 500,
        "gen_ai.usage.output_tokens": 200 + i % 100,
        "gen_ai.usage.cache_read.input_tokens": i % 300,
        "server.address": "api.example.com",
        "server.port": 443,
        "http.response.status_code": 200,
        "aispend.service.kind": "search" if provider == "serper" else "llm",
        "aispend.feature": f"feature-{i % 20}",
        "aispend.customer": f"customer-{i % customers}",
        "aispend.key": f"sk-…{i % 10:04d}",
    }


def batches(n: int, customers: int, offset: int = 0) -> list[bytes]:
    out = []
    for b in range(n):
        base = offset + b * BATCH
        out.append(
            otlp_request([span_attrs(base + i, customers) for i in range(BATCH)], service="bench").SerializeToString()
        )
    return out


def process_tree_cpu(root: int) -> float:
    """CPU seconds (user + system) of a process, its live descendants and the children it reaped."""
    total = 0
    todo = [root]
    first = True
    while todo:
        pid = todo.pop()
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
        if first:  # exited children (e.g. PostgreSQL backends of closed connections), once at the root
            total += int(fields[13]) + int(fields[14])
            first = False
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            with suppress(OSError):
                todo += [int(p) for p in children.read_text().split()]
    return total / os.sysconf("SC_CLK_TCK")


def source_path(tree: Path, tmp: Path) -> Path:
    """A directory that imports ``aispend`` from ``tree`` without installing it: the package layout
    of the tree's pyproject.toml (``aispend.exporter`` is ``exporter/``, ...) as symlinks."""
    shim = tmp / f"src-{abs(hash(str(tree)))}"
    if shim.exists():
        return shim
    setuptools = tomllib.loads((tree / "pyproject.toml").read_text())["tool"]["setuptools"]
    package = shim / "aispend"
    package.mkdir(parents=True)
    for entry in (tree / setuptools["package-dir"]["aispend"]).iterdir():
        (package / entry.name).symlink_to(entry)
    for name, directory in setuptools["package-dir"].items():
        if name.count(".") == 1:  # aispend.X; deeper packages are inside their parent's directory
            (package / name.split(".")[1]).symlink_to(tree / directory)
    return shim


class Server:
    def __init__(
        self, tmp: Path, ledger: str, extra: list[str], tree: Path | None = None, env_extra: dict | None = None
    ) -> None:
        env = {**os.environ, **(env_extra or {})}
        if tree is not None:  # another checkout's code (--baseline-tree), first on the path
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(source_path(tree, tmp)), env.get("PYTHONPATH")]))
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "aispend.cli",
                "serve",
                "--otlp-grpc",
                "127.0.0.1:0",
                "--otlp-http",
                "",
                "--metrics",
                "127.0.0.1:0",
                "--ledger",
                ledger,
                "--log-level",
                "warning",
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd=tmp,
            env=env,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"OTLP/gRPC on [^,]*:(\d+)", line)
        if not match:
            self.proc.kill()
            raise RuntimeError(f"server did not start: {line}{self.proc.stdout.read()}")
        self.port = int(match.group(1))
        # drain what it logs later (a full pipe would block the server)
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024

    def cpu_seconds(self) -> float:
        """CPU time used so far by the server and its decode workers (user + system)."""
        return process_tree_cpu(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


@dataclass
class Sent:
    seconds: float
    retries: int  # exports answered retryable and sent again (e.g. a database deadlock)


def send_all(port: int | list[int], payloads: list[bytes], senders: int = SENDERS) -> float:
    """Seconds to export every payload over ``senders`` concurrent streams, as a collector's
    sending queue does (its default is 10 consumers); ``payloads[0]`` is the warm-up."""
    ports = [port] if isinstance(port, int) else port
    return send(ports, payloads[:1] * len(ports), payloads[1:], senders).seconds


def send(ports: list[int], warm: list[bytes], payloads: list[bytes], senders: int = SENDERS) -> Sent:
    """Export ``payloads`` over ``senders`` streams spread over ``ports`` (round robin), after one
    warm-up export per port (connection, first-use imports and caches). A retryable answer is sent
    again, as a collector's retry does."""
    channels = [grpc.insecure_channel(f"127.0.0.1:{ports[i % len(ports)]}") for i in range(senders)]
    calls = [c.unary_unary(EXPORT_METHOD) for c in channels]
    for call, body in zip(calls, warm, strict=False):
        call(body, timeout=60)
    work = list(payloads)
    lock = threading.Lock()
    retries = [0]
    failures: list[BaseException] = []

    def run(call: grpc.UnaryUnaryMultiCallable) -> None:
        try:
            while True:
                with lock:
                    if not work:
                        return
                    body = work.pop()
                for attempt in range(20):
                    try:
                        call(body, timeout=60)
                        break
                    except grpc.RpcError as exc:
                        if exc.code() not in RETRYABLE or attempt == 19:
                            raise
                        with lock:
                            retries[0] += 1
                        time.sleep(0.05)
        except BaseException as exc:  # reported by the caller
            failures.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for c in channels:
        c.close()
    if failures:
        raise RuntimeError(f"an export failed: {failures[0]}")
    return Sent(elapsed, retries[0])


def decode_rate(payloads: list[bytes]) -> float:
    start = time.perf_counter()
    spans = 0
    for body in payloads:
        request = ExportTraceServiceRequest.FromString(body)
        spans += sum(len(ss.spans) for rs in request.resource_spans for ss in rs.scope_spans)
    return spans / (time.perf_counter() - start)


class Ledgers:
    """Fresh ledgers for each configuration: SQLite files beside a path, databases on a PostgreSQL
    server (given, or a throwaway one started here)."""

    def __init__(self, urls: list[str], tmp: Path, stack: ExitStack) -> None:
        self.sqlite = next((u for u in urls if u.startswith("sqlite:")), f"sqlite:///{tmp}/bench.sqlite")
        self.postgres = next((u for u in urls if u.startswith(("postgresql:", "postgres:"))), None)
        self.db_pid: int | None = None  # the throwaway server's root process, for its CPU
        self._made: list[str] = []
        self._sqlite_files: list[Path] = []
        if self.postgres is None:
            from tests.support.postgres import PostgresServer

            server = PostgresServer().start()
            stack.callback(server.stop)
            self.postgres = server.url("postgres")
            self.db_pid = server.proc.pid if server.proc is not None else None
            self.postgres_note = f"throwaway PostgreSQL {server.bin.parent.name} (fsync off, as in the tests)"
        else:
            self.postgres_note = "PostgreSQL at the given URL (its CPU not measured here)"
        stack.callback(self._drop)

    def fresh(self, kind: str, tag: str) -> str:
        if kind == "sqlite":
            base = Path(self.sqlite[len("sqlite:///") :])
            path = base.with_name(f"{base.stem}-{tag}{base.suffix or '.sqlite'}")
            self._sqlite_files.append(path)
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return f"sqlite:///{path}"
        import psycopg

        name = f"aispend_bench_{tag}".replace("-", "_")
        with psycopg.connect(self.postgres, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        self._made.append(name)
        parts = urlsplit(self.postgres)
        return urlunsplit(parts._replace(path=f"/{name}"))

    def db_cpu(self) -> float:
        return process_tree_cpu(self.db_pid) if self.db_pid is not None else 0.0

    def _drop(self) -> None:
        for path in self._sqlite_files:
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
        if not self._made:
            return
        import psycopg

        with psycopg.connect(self.postgres, autocommit=True) as conn:
            for name in self._made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def rows_in(url: str) -> int:
    """Calls the ledger holds (a check that every span was recorded, once)."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]


@dataclass
class Result:
    rate: float
    server_us: float  # aispend processes' CPU per span
    db_us: float | None  # the database server's CPU per span (None: not measured)
    sender_us: float
    retries: int
    rows: int | None


def run_configuration(
    tmp: Path,
    ledger: str,
    replicas: int,
    extra: list[str],
    warm: list[bytes],
    payloads: list[bytes],
    tree: Path | None,
    db_cpu: Callable[[], float] | None,
    env: dict | None = None,
) -> Result:
    servers: list[Server] = []
    try:
        for i in range(replicas):
            ids = [] if tree is not None else ["--instance-id", f"bench-{i}"]  # the old tree has no such flag
            servers.append(Server(tmp, ledger, [*extra, *ids], tree, env))
        cpu = [s.cpu_seconds() for s in servers]
        db_before, sender = (db_cpu() if db_cpu else 0.0), time.process_time()
        sent = send([s.port for s in servers], warm[:replicas], payloads)
        # CPU is read before the servers stop (their shutdown is not the batches' work)
        server_cpu = sum(s.cpu_seconds() - c for s, c in zip(servers, cpu, strict=True))
        db = (db_cpu() - db_before) if db_cpu else None
        sender = time.process_time() - sender
    finally:
        for s in servers:
            s.stop()
    spans = len(payloads) * BATCH
    rows = None if ledger == "none" else rows_in(ledger)
    return Result(
        spans / sent.seconds,
        server_cpu / spans * 1e6,
        None if db is None else db / spans * 1e6,
        sender / spans * 1e6,
        sent.retries,
        rows,
    )


def describe(name: str, r: Result, bare: float, expected_rows: int) -> str:
    """One configuration's line; ``expected_rows``: the calls sent, each once."""
    db = f", database {r.db_us:.1f} µs" if r.db_us is not None else ""
    rows = ""
    if r.rows is not None:
        rows = f"; ledger rows {r.rows:,}" + ("" if r.rows == expected_rows else f" (EXPECTED {expected_rows:,})")
    retried = f"; {r.retries} exports answered retryable and resent" if r.retries else ""
    return (
        f"  {name:<40} {r.rate:>8,.0f} spans/s  (ratio to bare decode: {r.rate / bare:.2f});"
        f" CPU per span: server {r.server_us:.1f} µs{db}, sender {r.sender_us:.1f} µs{rows}{retried}"
    )


def native_reader_installed() -> bool:
    from aispend.exporter import otlp_native

    return otlp_native.available()


def _median_run(runs: list[Result]) -> Result:
    """The run with the median rate (of an even count, the lower one): its CPU figures go with it."""
    return sorted(runs, key=lambda r: r.rate)[(len(runs) - 1) // 2]


def _verdict(rate: float, target: float) -> str:
    return "not measured" if not rate else "met" if rate >= target else "NOT met"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--decode-workers", type=int, default=1, help="for the decode-worker configurations")
    parser.add_argument(
        "--ledger",
        action="append",
        default=[],
        metavar="URL",
        help="sqlite:///path and/or postgresql://user@host/db (repeatable; default: a temporary SQLite file "
        "and a throwaway PostgreSQL server)",
    )
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="another checkout (e.g. main before a change): its server runs the same "
        "ledger configurations and the figures are printed before / after",
    )
    parser.add_argument("--skip-memory", action="store_true", help="leave out the 100,000 label sets memory run")
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="runs of each configuration (with --baseline-tree: before and after alternately); the median is shown",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=("sqlite", "postgres", "none"),
        help="run only the configurations with this ledger (repeatable; default: all)",
    )
    parser.add_argument(
        "--peer-spanmetrics", action="store_true", help="also run the collector's spanmetrics connector (a peer)"
    )
    args = parser.parse_args()
    for url in args.ledger:
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            parser.error(f"--ledger {url!r}: use sqlite:///path or postgresql://user@host/db")
    baseline = args.baseline_tree.resolve() if args.baseline_tree else None
    if baseline is not None and not (baseline / "exporter" / "ledger.py").is_file():
        parser.error(f"--baseline-tree {baseline}: not an aispend checkout")
    print(f"machine: {os.cpu_count()} cores; {args.batches} batches of {BATCH} spans per run, {SENDERS} senders")
    payloads = batches(args.batches, customers=1000)
    warm = batches(2, customers=1000, offset=10**8)
    spans = len(payloads) * BATCH
    bare = decode_rate(payloads)
    print(f"bare protobuf decode (this process):      {bare:>10,.0f} spans/s")
    with tempfile.TemporaryDirectory() as tmp_name, ExitStack() as stack:
        tmp = Path(tmp_name)
        ledgers = Ledgers(args.ledger, tmp, stack)
        print(f"ledgers: SQLite beside {ledgers.sqlite}; {ledgers.postgres_note}")
        workers = str(args.decode_workers)
        # (name, ledger kind, replicas, extra flags, also with the baseline, environment). The compiled
        # span reader (native/) is used where installed; the "Python reader" lines turn it off.
        python_reader = {"AISPEND_NATIVE_READER": "false"}
        reader = "compiled" if native_reader_installed() else "Python (aispend-native not installed)"
        print(f"span reader of the after server: {reader}")
        configurations = (
            ("ledger on (SQLite), 1 replica", "sqlite", 1, [], True, None),
            ("ledger on (SQLite), Python reader", "sqlite", 1, [], True, python_reader),
            ("ledger on (PostgreSQL), 1 replica", "postgres", 1, [], True, None),
            ("ledger on (PostgreSQL), 2 replicas", "postgres", 2, [], True, None),
            ("ledger off", "none", 1, [], True, None),
            (f"ledger on (SQLite), {workers} decode worker(s)", "sqlite", 1, ["--decode-workers", workers], True, None),
            (f"ledger off, {workers} decode worker(s)", "none", 1, ["--decode-workers", workers], False, None),
        )
        trees = [("after", None)] + ([("before", baseline)] if baseline is not None else [])
        runs: dict[tuple[str, str], list[Result]] = {}
        for n, (name, kind, replicas, extra, with_baseline, env) in enumerate(configurations):
            for r in range(args.rounds):
                # before and after take turns going first: drift on a shared machine hits both alike
                for label, tree in trees if r % 2 == 0 else trees[::-1]:
                    if (args.only and kind not in args.only) or (tree is not None and not with_baseline):
                        continue
                    ledger = "none" if kind == "none" else ledgers.fresh(kind, f"{n}-{label}-{r}")
                    db_cpu = ledgers.db_cpu if kind == "postgres" and ledgers.db_pid is not None else None
                    result = run_configuration(tmp, ledger, replicas, extra, warm, payloads, tree, db_cpu, env)
                    runs.setdefault((name, label), []).append(result)
                    shown = f"{name} [{label}]" if baseline is not None else name
                    shown += f" #{r + 1}" if args.rounds > 1 else ""
                    print(describe(shown, result, bare, spans + replicas * BATCH), flush=True)  # with the warm-ups
        results = {key: _median_run(rs) for key, rs in runs.items()}
        if baseline is not None:
            rounds = ""
            if args.rounds > 1:
                rounds = (
                    f"; before, after: the median run of {args.rounds}; after/before: the median of the"
                    " rounds' ratios (each round's pair ran back to back), their range at the end"
                )
            print(f"before: {baseline}; after: {ROOT}{rounds}")
            print(f"  {'configuration':<40} {'before':>9} {'after':>9} {'after/before':>13}   CPU/span before -> after")
            for name, *_ in configurations:
                before, after = results.get((name, "before")), results.get((name, "after"))
                if before is None or after is None:
                    continue
                total = [r.server_us + (r.db_us or 0.0) for r in (before, after)]
                # the ratio of each round's pair (run back to back), their median and range
                pairs = zip(runs[(name, "after")], runs[(name, "before")], strict=True)
                ratios = sorted(a.rate / b.rate for a, b in pairs)
                spread = f" (rounds {ratios[0]:.2f}-{ratios[-1]:.2f})" if len(ratios) > 1 else ""
                print(
                    f"  {name:<40} {before.rate:>9,.0f} {after.rate:>9,.0f} {statistics.median(ratios):>13.2f}"
                    f"   {total[0]:.1f} -> {total[1]:.1f} µs (server + database){spread}"
                )
        for label, _ in trees:
            one = results.get(("ledger on (PostgreSQL), 1 replica", label))
            two = results.get(("ledger on (PostgreSQL), 2 replicas", label))
            if one is None or two is None:
                continue
            print(f"two replicas / one replica on one PostgreSQL [{label}]: {two.rate / one.rate:.2f}")
        after = {name: r.rate for (name, label), r in results.items() if label == "after"}
        if args.peer_spanmetrics:  # the peer, on the same batches: benchmarks/spanmetrics_peer.py
            from spanmetrics_peer import run as run_spanmetrics

            peer = run_spanmetrics([warm[0], *payloads], tmp, send_all)
            best = max(after.values())
            print(
                f"peer: collector spanmetrics connector, gRPC   {peer:>8,.0f} spans/s; aispend serve (best "
                f"configuration) {best:,.0f} spans/s; ratio aispend / spanmetrics: {best / peer:.2f}"
            )
        loaded = None
        if not args.skip_memory:  # memory: distinct label sets (one customer per span), ledger on
            series_batches = batches(args.series // BATCH + 1, customers=args.series, offset=10**9)
            server = Server(tmp, ledgers.fresh("sqlite", "mem"), ["--label-limits", f"customer={args.series * 2}"])
            try:
                idle = server.rss_mb()
                send_all(server.port, series_batches)
                loaded = server.rss_mb()
            finally:
                server.stop()
            distinct = min(args.series, len(series_batches) * BATCH)
            print(f"resident memory: {idle:.0f} MB at start, {loaded:.0f} MB with {distinct:,} distinct label sets")
    ledger_on = max((rate for name, rate in after.items() if name.startswith("ledger on")), default=0.0)
    ledger_off = max((rate for name, rate in after.items() if name.startswith("ledger off")), default=0.0)
    cores = os.cpu_count() or 1
    print(
        f"CPU budget: on {cores} cores, 50,000 spans/s leaves {cores / 50_000 * 1e6:.0f} µs of CPU per span"
        f" and 100,000 leaves {cores / 100_000 * 1e6:.0f} µs, for the server and the sender together"
    )
    memory = "not measured" if loaded is None else ("met" if loaded < 300 else "NOT met")
    print(
        f"targets (best configuration): ledger on >= 50,000: {_verdict(ledger_on, 50_000)}; "
        f"ledger off >= 100,000: {_verdict(ledger_off, 100_000)}; memory < 300 MB: {memory}"
    )


if __name__ == "__main__":
    main()
