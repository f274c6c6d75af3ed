# aispend exporter image. Used by compose.yaml; ports: OTLP gRPC 14317 / HTTP 14318 (behind
# the collector, which owns 4317/4318), Prometheus metrics 9464; the ledger lives in /data.
# The compiled span reader (native/, docs/architecture.md), built in a stage of its own so the image
# carries no Rust toolchain. Optional: if it does not build, the image reads spans in Python.
FROM python:3.11-slim AS native
COPY native /native
RUN mkdir /wheels && { \
      apt-get update -qq \
      && { apt-get install -y -qq --no-install-recommends cargo-web || apt-get install -y -qq --no-install-recommends cargo; } \
      && pip wheel --no-deps -w /wheels /native \
      || echo "the compiled span reader did not build: the image reads spans in Python"; }

FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Only what the package is built from (the build context also holds .venv, tests, ...).
COPY pyproject.toml README.md* ./
COPY aispend ./aispend
COPY instrumentation ./instrumentation
COPY exporter ./exporter
COPY pricing ./pricing
COPY --from=native /wheels /wheels
RUN pip install . $(ls /wheels/*.whl 2>/dev/null) && rm -rf /src /wheels

RUN useradd --system --uid 10001 --home-dir /data aispend \
    && mkdir -p /data && chown aispend /data
USER aispend
WORKDIR /data
VOLUME ["/data"]
EXPOSE 14317 14318 9464

CMD ["aispend", "serve", "--otlp-grpc", "0.0.0.0:14317", "--otlp-http", "0.0.0.0:14318", "--metrics", "0.0.0.0:9464", "--ledger", "sqlite:////data/aispend.sqlite"]
