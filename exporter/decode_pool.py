"""Reading OTLP payloads in worker processes (``--decode-workers N``).

Decoding protobuf and normalising every span is about half of an export's CPU time and needs no
state, so on a machine with spare cores it runs in other processes while the main one dedupes,
prices and records (which must stay in one place for exactly-once accounting). Payload bytes go
out and plain tuples come back (``reading.packed``). A worker that dies makes that export
retryable (UNAVAILABLE / 503) and the pool is replaced; nothing was recorded for it.
"""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from aispend.exporter.reading import Batch, packed, read_payload, unpacked

logger = logging.getLogger("aispend.exporter")
_settings: tuple[int, dict[str, str]] = (50_000_000, {})


class DecodersUnavailable(RuntimeError):
    """A decode worker died with this payload; nothing was recorded, the sender should retry."""


def _init(max_tokens: int, key_aliases: dict[str, str]) -> None:
    global _settings
    _settings = (max_tokens, key_aliases)


def _read(body: bytes, as_json: bool) -> tuple[Any, ...]:
    return packed(read_payload(body, as_json, *_settings))


class DecodePool:
    def __init__(self, workers: int, max_tokens: int, key_aliases: Mapping[str, str]) -> None:
        self._workers = workers
        self._initargs = (max_tokens, dict(key_aliases))
        self._lock = threading.Lock()
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        # spawn: forking a process that runs gRPC threads is unsafe
        context = multiprocessing.get_context("spawn")
        return ProcessPoolExecutor(self._workers, mp_context=context, initializer=_init, initargs=self._initargs)

    def warm_up(self) -> None:
        """Start the workers now rather than on the first export."""
        for future in [self._executor.submit(_read, b"", False) for _ in range(self._workers)]:
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
