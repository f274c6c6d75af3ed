"""An app making paid AI calls at a steady, bounded rate, written as users write it (the real openai
SDK, no aispend code). Run it under `opentelemetry-instrument`; the base URL points at the fakes.

Around each AI call it can also make what a web app's other instrumentations make: an HTTP server
span for the request and database spans inside it, none of which aispend prices.

Environment: FAKE_URL (the fake provider server); LOAD_RATE calls per second (default 200);
LOAD_SECONDS (default 10); LOAD_THREADS (default 2); LOAD_NOISE non-GenAI spans per call (default 0:
1 HTTP server span + LOAD_NOISE - 1 database spans).
Prints, once every span was handed to the SDK's exporter: ``steady_load: calls=N failed=F other_spans=M
seconds=S``. ``calls`` counts the calls the provider answered, the number the ledger must show.
"""

from __future__ import annotations

import os
import threading
import time

import openai
from opentelemetry import trace

FAKE = os.environ["FAKE_URL"]
RATE = float(os.environ.get("LOAD_RATE", "200"))
SECONDS = float(os.environ.get("LOAD_SECONDS", "10"))
THREADS = int(os.environ.get("LOAD_THREADS", "2"))
NOISE = int(os.environ.get("LOAD_NOISE", "0"))
KEY = "sk-proj-steadyload000000000000000000000000e5f6"

tracer = trace.get_tracer("steady_load")


def one_call(client: openai.OpenAI, i: int) -> int:
    """One AI call, wrapped in the spans of a web request when NOISE asks; returns the other spans made."""
    if not NOISE:
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}])
        return 0
    attrs = {"http.request.method": "POST", "url.path": "/answer", "http.route": "/answer", "server.port": 8000}
    with tracer.start_as_current_span("POST /answer", kind=trace.SpanKind.SERVER, attributes=attrs) as server:
        for d in range(NOISE - 1):
            db = {"db.system.name": "postgresql", "db.namespace": "shop", "db.operation.name": "SELECT"}
            with tracer.start_as_current_span(f"SELECT shop.orders {d}", kind=trace.SpanKind.CLIENT, attributes=db):
                pass
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"q{i}"}])
        server.set_attribute("http.response.status_code", 200)
    return NOISE


def worker(index: int, counts: list[int], lock: threading.Lock, start: float) -> None:
    client = openai.OpenAI(base_url=f"{FAKE}/openai/v1", api_key=KEY, max_retries=0)
    interval = THREADS / RATE
    n = 0
    while True:
        due = start + (n + index / THREADS) * interval  # each thread on its own slots of one schedule
        if due >= start + SECONDS:
            break
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        try:
            other = one_call(client, n * THREADS + index)
            with lock:
                counts[0] += 1
                counts[2] += other
        except openai.OpenAIError:
            with lock:
                counts[1] += 1
        n += 1


def main() -> None:
    counts = [0, 0, 0]  # calls answered, calls failed, non-GenAI spans
    lock = threading.Lock()
    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i, counts, lock, start)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):  # also drains aispend's recording thread first
        provider.force_flush()
    print(
        f"steady_load: calls={counts[0]} failed={counts[1]} other_spans={counts[2]} seconds={elapsed:.2f}", flush=True
    )


if __name__ == "__main__":
    main()
