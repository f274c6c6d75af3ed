"""Where a finished call's span is made: on the calling thread (``inline``, the default) or on one
background thread per process (``background``, ``AISPEND_RECORD_INLINE=false``), in order.

Why both: on the background thread, parsing and span building happen mostly while the calling
thread waits on the network, so each call's own latency is lower; but handing work to another
thread costs more CPU in total (the GIL changes hands) and every other call's tail waits for it
(see docs/overhead.md), so inline is the default.

Order: jobs run in submission order, so a call's chunks are parsed before its span is recorded.
Memory: a producer that gets too far ahead waits (no job is ever dropped). Exit: pending jobs are
drained at interpreter exit, before the tracer provider's own shutdown (atexit runs last-in,
first-out and the provider registered first). Fork: the child starts with an empty queue.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aispend.instrumentation.safety import log_once

MAX_PENDING = 20_000  # jobs; a producer waits while more are queued
INTERVAL = 0.05  # seconds between runs when nobody asks for a flush
YIELD_AFTER = 0.0002  # seconds of work after which the GIL is handed back
# A real (if short) sleep: ``sleep(0)`` drops the GIL and takes it straight back before a waiting
# thread wakes, so the app's thread went on waiting until CPython's 5 ms switch interval forced a
# switch, which is what the tail latency of calls made while spans were being recorded showed.
YIELD_SLEEP = 0.00005
_FLUSH = object()


class Worker:
    """Jobs are appended to a deque without waking anyone (a wake-up per call would cost more
    than the job: two threads trading the GIL); the thread wakes every ``interval`` seconds, or
    when asked to flush, and runs what is there, handing the GIL back every ``YIELD_AFTER`` of work."""

    def __init__(self, max_pending: int = MAX_PENDING, interval: float = INTERVAL, inline: bool = False) -> None:
        self._inline = inline  # run each job at once, on the submitting thread
        self._max_pending = max_pending
        self._interval = interval
        self._jobs: deque[tuple[Any, tuple[Any, ...]]] = deque()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._start_lock = threading.Lock()
        self._exit_registered = False

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        if self._inline:
            _run_job(job, args)
            return
        if self._thread is None or self._pid != os.getpid():
            self._start()
        jobs = self._jobs
        jobs.append((job, args))
        if len(jobs) > self._max_pending:
            self._wait_for_room()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every job submitted so far has run; False on timeout."""
        if self._thread is None or self._pid != os.getpid():
            return True
        if threading.current_thread() is self._thread:
            return True
        done = threading.Event()
        self._jobs.append((_FLUSH, (done,)))
        self._wake.set()
        return done.wait(timeout)

    def _start(self) -> None:
        with self._start_lock:
            if self._pid != os.getpid():  # forked: the parent's jobs are the parent's
                self._jobs = deque()
                self._wake = threading.Event()
                self._thread = None
                self._pid = os.getpid()
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name="aispend-recorder", daemon=True)
            thread.start()
            self._thread = thread
            if not self._exit_registered:
                atexit.register(self.flush, 2.0)
                self._exit_registered = True

    def _wait_for_room(self) -> None:
        self._wake.set()
        deadline = time.monotonic() + 1.0
        while len(self._jobs) > self._max_pending // 2 and time.monotonic() < deadline:
            time.sleep(0.001)

    def _run(self) -> None:
        jobs, wake = self._jobs, self._wake
        while True:
            wake.wait(self._interval)
            wake.clear()
            yielded = time.perf_counter()
            while jobs:
                job, args = jobs.popleft()
                if job is _FLUSH:
                    args[0].set()
                    continue
                _run_job(job, args)
                if time.perf_counter() - yielded > YIELD_AFTER:
                    time.sleep(YIELD_SLEEP)  # let a thread that wants the GIL (the app's) have it
                    yielded = time.perf_counter()


def _run_job(job: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        job(*args)
    except Exception as exc:  # jobs catch their own; this is the last line
        log_once("recording a call", exc)


background = Worker()  # AISPEND_RECORD_INLINE=false: one recording thread per process
inline = Worker(inline=True)  # the default: lower total CPU and tail latency
