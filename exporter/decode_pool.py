"""Reading OTLP payloads in worker processes (``--decode-workers N``).

Decoding protobuf, normalising every span, cleaning labels and pricing (every price without a free
tier) are most of an export's CPU time and need no shared state, so on a machine with spare cores
they run in other processes while the main one dedupes, prices free-tier calls and records (which
must stay in one place for exactly-once accounting). Payload bytes go out and plain tuples come
back (``reading.packed``). A worker that dies makes that export retryable (UNAVAILABLE / 503) and
the pool is replaced; nothing was recorded for it. Workers load the same price overrides and price
data cache as the main process and are replaced when it reloads them (SIGHUP); if a worker cannot
load them it prices nothing and the main process prices everything.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from aispend.exporter.config import ExporterConfig
from aispend.exporter.reading import Batch, packed, prepare, read_payload, unpacked
from aispend.pricing import PriceBookError, PriceEngine, load_book, pricedata

logger = logging.getLogger("aispend.exporter")
_config = ExporterConfig()
_engine: PriceEngine | None = None


class DecodersUnavailable(RuntimeError):
    """A decode worker died with this payload; nothing was recorded, the sender should retry."""


def _init(config: ExporterConfig) -> None:
    global _config, _engine
    _config = config
    try:
        engine = PriceEngine(price_data=pricedata.load())  # the same cache the main process read
        _engine = engine.with_overrides(load_book(config.prices)) if config.prices else engine
    except (PriceBookError, OSError):
        _engine = None  # the main process counts the broken file and prices with its previous one


def _read(body: bytes, as_json: bool) -> tuple[Any, ...]:
    batch = read_payload(body, as_json, _config.max_tokens_per_call, _config.key_aliases)
    if _engine is not None:
        prepare(batch, _engine, _config.label_max_length)
    return packed(batch)


class DecodePool:
    def __init__(self, config: ExporterConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        # spawn: forking a process that runs gRPC threads is unsafe
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(
            self._config.decode_workers, mp_context=context, initializer=_init, initargs=(self._config,)
        )

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
