"""Spans are made on aispend's recording thread: they must still carry the parent, attribution and
times of the moment the request left, reach the exporter on force_flush / shutdown, survive fork,
and keep every job in order under pressure."""

from __future__ import annotations

import json
import os
import threading
import time

import httpx
import openai
import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor

import aispend
from aispend.instrumentation.config import InstrumentationConfig
from aispend.instrumentation.worker import Worker
from tests.instrumentation.conftest import OPENAI_KEY, instrument

MESSAGES = [{"role": "user", "content": "hi"}]


def test_stream_consumed_elsewhere_keeps_the_parent_attribution_and_start_time(harness):
    tracer = harness.provider.get_tracer("app")
    client = openai.OpenAI(base_url=harness.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
    ctx = baggage.set_baggage("aispend.feature", "from-baggage")
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("handler") as handler, aispend.attribute(customer="acme"):
            before = time.time_ns()
            stream = client.chat.completions.create(
                model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
            )
    finally:
        context.detach(token)
    time.sleep(0.01)
    list(stream)  # read outside the span, the attribute() block and the baggage
    after = time.time_ns()
    ours = [s for s in harness.spans() if s.name == "chat gpt-4o"]
    assert len(ours) == 1
    span = ours[0]
    assert span.parent is not None and span.parent.span_id == handler.get_span_context().span_id
    assert span.context.trace_id == handler.get_span_context().trace_id
    assert span.attributes["aispend.customer"] == "acme"
    assert span.attributes["aispend.feature"] == "from-baggage"
    assert before <= span.start_time <= handler.end_time  # started when the request left
    assert span.end_time - span.start_time >= 10_000_000 and span.end_time <= after  # ended when the stream did
    assert span.attributes["gen_ai.usage.output_tokens"] > 0


def test_tracer_provider_force_flush_waits_for_the_recording_thread(harness):
    client = openai.OpenAI(base_url=harness.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
    for _ in range(20):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    # no aispend API: what a serverless handler does before returning
    harness.provider.force_flush()
    assert len(harness.exporter.get_finished_spans()) == 20


def test_a_forked_child_records_its_own_calls(harness):
    memory, provider, url = harness.exporter, harness.provider, f"{harness.fake.openai_base}/chat/completions"
    httpx.post(url, json={"model": "gpt-4o", "messages": MESSAGES})
    provider.force_flush()  # the parent's thread is running now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: its worker thread did not survive the fork
        try:
            memory.clear()
            httpx.post(url, json={"model": "gpt-4o-mini", "messages": MESSAGES})
            provider.force_flush()
            os.write(write, json.dumps([s.name for s in memory.get_finished_spans()]).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        assert json.loads(f.read()) == ["chat gpt-4o-mini"]
    assert [s.name for s in memory.get_finished_spans()] == ["chat gpt-4o"]


def test_worker_runs_every_job_in_order_and_makes_producers_wait():
    worker = Worker(max_pending=10, interval=0.01)
    gate = threading.Event()
    done: list[int] = []
    worker.submit(gate.wait)  # hold the thread so the queue fills up
    producer_waited = []

    def produce() -> None:
        for i in range(100):
            start = time.monotonic()
            worker.submit(done.append, i)
            producer_waited.append(time.monotonic() - start)

    producer = threading.Thread(target=produce)
    producer.start()
    time.sleep(0.2)
    gate.set()
    producer.join(10)
    assert worker.flush(5)
    assert done == list(range(100))  # nothing dropped, nothing reordered
    assert max(producer_waited) > 0.05  # it waited for room instead of growing without bound


def test_worker_survives_a_failing_job(caplog):
    worker = Worker(interval=0.01)
    done: list[str] = []

    def broken() -> None:
        raise RuntimeError("bug in a parser")

    worker.submit(broken)
    worker.submit(done.append, "next")
    assert worker.flush(5)
    assert done == ["next"]
    assert "recording a call failed (RuntimeError)" in caplog.text


def test_flush_from_inside_the_worker_does_not_deadlock():
    worker = Worker(interval=0.01)
    results: list[bool] = []
    worker.submit(lambda: results.append(worker.flush(1)))
    assert worker.flush(5) and results == [True]


def test_span_not_current_while_call_in_flight(harness):
    """aispend never makes its span current, so recording it later changes nothing the app sees."""
    seen = []

    def hook(request: httpx.Request) -> None:
        seen.append(trace.get_current_span())

    with httpx.Client(event_hooks={"request": [hook]}) as client:
        client.post(f"{harness.fake.openai_base}/chat/completions", json={"model": "gpt-4o", "messages": MESSAGES})
    assert seen == [trace.INVALID_SPAN]
    assert harness.span().name == "chat gpt-4o"


class _ThreadOfEachSpan(SpanProcessor):
    """Notes the thread each span ends on."""

    def __init__(self) -> None:
        self.threads: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.threads.append(threading.current_thread().name)


@pytest.mark.parametrize(
    ("setting", "thread"),
    [(None, "MainThread"), ("true", "MainThread"), ("false", "aispend-recorder"), ("no", "aispend-recorder")],
)
def test_spans_are_made_on_the_calling_thread_unless_record_inline_is_off(fake, monkeypatch, setting, thread):
    """The default is inline (the least CPU in total and no other call's tail waits on the GIL for
    it); ``AISPEND_RECORD_INLINE=false`` moves the work to the recording thread."""
    if setting is None:
        monkeypatch.delenv("AISPEND_RECORD_INLINE", raising=False)
    else:
        monkeypatch.setenv("AISPEND_RECORD_INLINE", setting)
    fake.reset()
    harness = instrument(fake)
    seen = _ThreadOfEachSpan()
    harness.provider.add_span_processor(seen)
    try:
        client = openai.OpenAI(base_url=harness.fake.openai_base, api_key=OPENAI_KEY, max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        for _ in client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        ):
            pass
        assert harness.instrumentor.flush()
        assert seen.threads == [thread, thread]
        assert [s.attributes["gen_ai.usage.output_tokens"] for s in harness.exporter.get_finished_spans()] == [7, 7]
    finally:
        harness.instrumentor.uninstrument()


def test_record_inline_setting_defaults_to_true_and_the_argument_wins():
    assert InstrumentationConfig.load(environ={}).record_inline is True
    assert InstrumentationConfig.load(environ={"AISPEND_RECORD_INLINE": "false"}).record_inline is False
    assert InstrumentationConfig.load(environ={"AISPEND_RECORD_INLINE": " "}).record_inline is True
    assert InstrumentationConfig.load(environ={"AISPEND_RECORD_INLINE": "false"}, record_inline=True).record_inline
    assert not InstrumentationConfig.load(environ={}, record_inline=False).record_inline
