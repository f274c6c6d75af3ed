"""Count each provider call once, however many spans describe it.

A call is already counted when: the same span arrives again (an OTLP retry); another span of the
same provider carries the same ``gen_ai.response.id`` in the same trace, or in another trace over
an overlapping time (OpenLLMetry does not make its span current, so the Anthropic SDK's own span
of the same call lands in a trace of its own); or a span of the same provider is its direct
parent or child (an SDK span wrapping the HTTP span). Memory is bounded: two generations of
``window / 2`` entries each.
"""

from __future__ import annotations

from aispend.exporter.normalise import Call


class _Generations:
    __slots__ = ("_limit", "current", "previous")

    def __init__(self, window: int) -> None:
        self._limit = max(window // 2, 1)
        self.current: dict[tuple[object, object], object] = {}
        self.previous: dict[tuple[object, object], object] = {}

    def get(self, key: tuple[object, object]) -> object:
        found = self.current.get(key)
        return found if found is not None else self.previous.get(key)

    def put(self, key: tuple[object, object], value: object) -> None:
        self.current[key] = value
        if len(self.current) >= self._limit:
            self.previous, self.current = self.current, {}

    def __len__(self) -> int:
        return len(self.current) + len(self.previous)


# (trace id, start ns, end ns) of the span that reported a response id
_Seen = tuple[bytes, int, int]


def _same_call(seen: _Seen, trace_id: bytes, start_ns: int, end_ns: int) -> bool:
    """Same response id and provider: the same call if in one trace or overlapping in time."""
    other_trace, other_start, other_end = seen
    return other_trace == trace_id or (start_ns <= other_end and other_start <= end_ns)


class Deduper:
    def __init__(self, window: int = 200_000) -> None:
        self._spans = _Generations(window)  # (trace, span id) -> provider
        self._parents = _Generations(window)  # (trace, parent span id) -> provider
        self._responses = _Generations(window)  # (provider, response id) -> _Seen
        self._staged_spans: dict[tuple[object, object], object] = {}
        self._staged_parents: dict[tuple[object, object], object] = {}
        self._staged_responses: dict[tuple[object, object], object] = {}

    def duplicate(self, call: Call) -> str | None:
        """Why this call was already counted (a reason label), or None if it is new."""
        trace = call.trace_id
        if self._get(self._spans, self._staged_spans, (trace, call.span_id)) is not None:
            return "retry"
        if call.response_id:
            seen = self._get(self._responses, self._staged_responses, (call.provider, call.response_id))
            if seen is not None and _same_call(seen, trace, call.start_ns, _end_ns(call)):  # type: ignore[arg-type]
                return "same_response_id"
        if (
            call.parent_span_id
            and self._get(self._spans, self._staged_spans, (trace, call.parent_span_id)) == call.provider
        ):
            return "nested_span"
        if self._get(self._parents, self._staged_parents, (trace, call.span_id)) == call.provider:
            return "nested_span"
        return None

    @staticmethod
    def _get(
        committed: _Generations, staged: dict[tuple[object, object], object], key: tuple[object, object]
    ) -> object:
        found = staged.get(key)
        return found if found is not None else committed.get(key)

    def stage(self, call: Call) -> None:
        trace = call.trace_id
        self._staged_spans[(trace, call.span_id)] = call.provider
        if call.parent_span_id:
            self._staged_parents[(trace, call.parent_span_id)] = call.provider
        if call.response_id:
            self._staged_responses[(call.provider, call.response_id)] = (trace, call.start_ns, _end_ns(call))

    def commit(self) -> None:
        for key, provider in self._staged_spans.items():
            self._spans.put(key, provider)
        for key, provider in self._staged_parents.items():
            self._parents.put(key, provider)
        for key, seen in self._staged_responses.items():
            self._responses.put(key, seen)
        self.rollback()

    def rollback(self) -> None:
        self._staged_spans.clear()
        self._staged_parents.clear()
        self._staged_responses.clear()

    def remember(
        self,
        trace_id: bytes,
        span_id: bytes,
        parent_span_id: bytes,
        response_id: str,
        provider: str,
        start_ns: int = 0,
        end_ns: int = 0,
    ) -> None:
        """Restore a call recorded before a restart."""
        self._spans.put((trace_id, span_id), provider)
        if parent_span_id:
            self._parents.put((trace_id, parent_span_id), provider)
        if response_id:
            self._responses.put((provider, response_id), (trace_id, start_ns, end_ns))

    def __len__(self) -> int:
        return len(self._spans)


def _end_ns(call: Call) -> int:
    return call.start_ns + int(call.duration_s * 1e9)
