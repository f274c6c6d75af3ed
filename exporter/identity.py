"""Which spans describe the same provider call, and which of them is the best one. Pure.

One call can arrive as several spans: an OTLP retry of the same span; aispend's span beside an
SDK's native span (the Anthropic SDK's) and other instrumentations' (openai-v2, OpenLLMetry,
OpenLIT). Two spans are the same call when:
- they are the same span (trace id + span id): a retry;
- they share ``gen_ai.response.id`` in one trace (whatever provider name each gives: openai-v2
  names every OpenAI-SDK call "openai", aispend names the host's provider, e.g. "groq");
- they share provider and ``gen_ai.response.id`` overlapping in time (OpenLLMetry does not make its
  span current, so the Anthropic SDK's span of the call has a trace of its own);
- one is the direct parent of the other and both name the same provider (an SDK span around the
  HTTP-level span).

Each span has a rank: aispend's own (0) over an SDK's native span (1) over other peers' (2);
within a rank the innermost wins (closest to the wire, e.g. the Anthropic SDK's span with full
cache counts inside OpenLIT's). The ledger applies these rules inside its transaction to the rows
it already holds (``Known``), so they hold across batches, restarts and replicas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from aispend.exporter.normalise import Call

AISPEND, SDK, PEER = 0, 1, 2
# instrumentation scopes of SDKs that trace their own calls
SDK_SCOPES = ("com.anthropic.sdk", "com.openai.sdk", "openai.sdk", "anthropic.sdk")


def rank(call: Call) -> int:
    if call.from_aispend:
        return AISPEND
    return SDK if call.scope.startswith(SDK_SCOPES) else PEER


@dataclass(frozen=True, slots=True)
class Known:
    """A span the ledger already holds: counted (in ``calls``) or waiting to settle (``pending``)."""

    trace_id: str  # hex, as stored
    span_id: str
    parent_span_id: str
    provider: str
    response_id: str
    start_ns: int
    end_ns: int
    rank: int
    counted: bool


def known(call: Call, counted: bool) -> Known:
    return Known(
        call.trace_id.hex(),
        call.span_id.hex(),
        call.parent_span_id.hex(),
        call.provider,
        call.response_id,
        call.start_ns,
        end_ns(call),
        rank(call),
        counted,
    )


def counted(k: Known) -> Known:
    """The same span, counted."""
    return Known(k.trace_id, k.span_id, k.parent_span_id, k.provider, k.response_id, k.start_ns, k.end_ns, k.rank, True)


def end_ns(call: Call) -> int:
    return call.start_ns + int(call.duration_s * 1e9)


def same_span(a: Known, b: Known) -> bool:
    return a.span_id == b.span_id and a.trace_id == b.trace_id


def same_call(a: Known, b: Known) -> str | None:
    """Why ``a`` and ``b`` (two different spans) describe one call, or None."""
    same_response = bool(a.response_id) and a.response_id == b.response_id
    if same_response and a.trace_id == b.trace_id:
        # one trace, one response id: one call, even when the spans name the provider differently
        # (openai-v2 says "openai" for every OpenAI-SDK call, aispend says "groq" for Groq's)
        return "same_response_id"
    if a.provider != b.provider:
        return None
    overlapping = a.start_ns <= b.end_ns and b.start_ns <= a.end_ns
    if same_response and overlapping:
        return "same_response_id"
    if a.trace_id == b.trace_id and (
        (a.parent_span_id and a.parent_span_id == b.span_id) or (b.parent_span_id and b.parent_span_id == a.span_id)
    ):
        return "nested_span"
    return None


def related(span: Known, others: Iterable[Known]) -> list[tuple[Known, str]]:
    return [(o, why) for o in others if not same_span(o, span) and (why := same_call(span, o)) is not None]


class KnownSet:
    """Known spans indexed the ways ``same_call`` can match them, so a batch of n spans is
    decided in O(n) rather than by comparing every pair."""

    def __init__(self, spans: Iterable[Known] = ()) -> None:
        self._spans: dict[tuple[str, str], Known] = {}
        self._by_trace: dict[str, dict[str, Known]] = {}
        self._by_response: dict[tuple[str, str], dict[tuple[str, str], Known]] = {}
        for k in spans:
            self.add(k)

    def add(self, k: Known) -> None:
        key = (k.trace_id, k.span_id)
        self._spans[key] = k
        self._by_trace.setdefault(k.trace_id, {})[k.span_id] = k
        if k.response_id:
            self._by_response.setdefault((k.provider, k.response_id), {})[key] = k

    def remove(self, k: Known) -> None:
        key = (k.trace_id, k.span_id)
        self._spans.pop(key, None)
        self._by_trace.get(k.trace_id, {}).pop(k.span_id, None)
        if k.response_id:
            self._by_response.get((k.provider, k.response_id), {}).pop(key, None)

    def has_span(self, k: Known) -> bool:
        return (k.trace_id, k.span_id) in self._spans

    def get(self, key: tuple[str, str]) -> Known | None:
        return self._spans.get(key)

    def related(self, k: Known) -> list[tuple[Known, str]]:
        candidates = dict(self._by_response.get((k.provider, k.response_id), {})) if k.response_id else {}
        for span_id, other in self._by_trace.get(k.trace_id, {}).items():
            candidates[(other.trace_id, span_id)] = other
        return related(k, candidates.values())

    def __iter__(self) -> Iterator[Known]:
        return iter(list(self._spans.values()))


def independent(calls: list[Call]) -> bool:
    """No two of ``calls`` can be the same call (``same_call``, ``same_span``): their traces differ,
    and so do their provider + response ids."""
    if len({c.trace_id for c in calls}) != len(calls):
        return False
    responses = [(c.provider, c.response_id) for c in calls if c.response_id]
    return len(set(responses)) == len(responses)


def best(group: list[Known]) -> Known:
    """The span that counts for a call: lowest rank, then innermost, then the first received."""
    parents = {(k.trace_id, k.parent_span_id) for k in group if k.parent_span_id}
    return min(group, key=lambda k: (k.rank, (k.trace_id, k.span_id) in parents))


def batch_order(calls: list[Call]) -> list[Call]:
    """A batch in the order its spans are decided: best first, so the best span of a call that
    arrives whole in one batch is the one that counts."""
    parents = {(c.trace_id, c.parent_span_id) for c in calls if c.parent_span_id}
    return sorted(calls, key=lambda c: (rank(c), (c.trace_id, c.span_id) in parents))
