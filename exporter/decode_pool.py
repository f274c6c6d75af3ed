"""Reading OTLP payloads in worker processes (``--decode-workers N``).

Decoding protobuf, normalising every span, cleaning labels and pricing (every price without a free
tier) are most of an export's CPU time and need no shared state, so on a machine with spare cores
they run in other processes while the main one dedupes, prices free-tier calls and records (which
must stay in one place for exactly-once accounting). Payload bytes go out and plain tuples come
back (``reading.packed``). A worker that dies makes that export retryable (UNAVAILABLE / 503) and
the pool is replaced; nothing was recorded for it. Workers load the same price overrides and price
data cache as the main process and are replaced when it reloads them (SIGHUP); if a worker cannot
load them it prices nothing and the main process prices everything.

Workers die with the main process, even when it is killed with SIGKILL: on Linux the kernel sends
them SIGKILL (``PR_SET_PDEATHSIG``), and everywhere a thread in each worker exits it once its
parent is gone. The kernel's signal follows the *thread* that started a worker, so every worker is
started from one long-lived thread (``aispend-decode-spawner``), never from a request's thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from aispend.exporter.config import ExporterConfig
from aispend.exporter.reading import Batch, packed, prepare, read_with, unpacked
from aispend.pricing import PriceBookError, PriceEngine, load_book, pricedata

logger = logging.getLogger("aispend.exporter")
_config = ExporterConfig()
_engine: PriceEngine | None = None


class DecodersUnavailable(RuntimeError):
    """A decode worker died with this payload; nothing was recorded, the sender should retry."""


_PR_SET_PDEATHSIG = 1
_WATCH_INTERVAL = 0.5  # seconds between the watchdog's looks at the parent
# Python's pool starts workers on demand in whichever thread submits; with this attribute off it
# starts them all at the first submit (CPython 3.11+; without it, only the watchdog applies).
_EAGER = "_safe_to_dynamically_spawn_children"


def _die_with(parent: int, kernel_signal: bool) -> None:
    """In a worker: end when ``parent`` does, however it ends."""
    if kernel_signal and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl in this libc: the watchdog still applies
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_WATCH_INTERVAL)
        os._exit(1)

    threading.Thread(target=watch, name="aispend-parent-watch", daemon=True).start()


def _init(config: ExporterConfig, parent: int | None = None, kernel_signal: bool = False) -> None:
    global _config, _engine
    if parent is not None:
        _die_with(parent, kernel_signal)
    _config = config
    try:
        engine = PriceEngine(price_data=pricedata.load())  # the same cache the main process read
        _engine = engine.with_overrides(load_book(config.prices)) if config.prices else engine
    except (PriceBookError, OSError):
        _engine = None  # the main process counts the broken file and prices with its previous one


def _read(body: bytes, as_json: bool) -> tuple[Any, ...]:
    batch = read_with(_config, body, as_json)
    if _engine is not None:
        prepare(batch, _engine, _config.label_max_length)
    return packed(batch)


class DecodePool:
    def __init__(self, config: ExporterConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="aispend-decode-spawner")
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        """A pool whose workers are all running, started from the spawner thread."""
        return self._spawner.submit(self._start_pool).result()

    def _start_pool(self) -> ProcessPoolExecutor:
        # spawn: forking a process that runs gRPC threads is unsafe
        context = multiprocessing.get_context("spawn")
        n, parent = self._config.decode_workers, os.getpid()
        executor = ProcessPoolExecutor(n, mp_context=context, initializer=_init, initargs=(self._config, parent, True))
        if not hasattr(executor, _EAGER):  # workers would start from request threads: no kernel signal
            executor = ProcessPoolExecutor(
                n, mp_context=context, initializer=_init, initargs=(self._config, parent, False)
            )
        setattr(executor, _EAGER, False)
        executor.submit(int)  # starts every worker, here
        return executor

    def reload(self) -> None:
        """New workers (with the price overrides as they are now); exports in flight finish on the old."""
        with self._lock:
            old, self._executor = self._executor, self._new()
        old.shutdown(wait=False)

    def warm_up(self) -> None:
        """Start the workers now rather than on the first export."""
        for future in [self._executor.submit(_read, b"", False) for _ in range(self._config.decode_workers)]:
            future.result()

    def read(self, body: bytes, as_json: bool) -> Batch:
        """Raises ``otlp.MalformedPayload`` as reading in-process would, or ``DecodersUnavailable``."""
        executor = self._executor
        try:
            return unpacked(executor.submit(_read, body, as_json).result())
        except BrokenProcessPool:
            with self._lock:
                if self._executor is executor:
                    logger.error("a decode worker died; starting new ones (the export will be retried)")
                    self._executor = self._new()
            raise DecodersUnavailable("a decode worker died; retry the export") from None

    def shutdown(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)
        self._spawner.shutdown(wait=False)
