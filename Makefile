# Two entry points, both self-installing on a fresh Debian + Python 3.11 machine:
#   make run   - set up and start the exporter (+ Prometheus and Alertmanager when installed)
#   make test  - set up and run the whole test suite (installs Prometheus, Alertmanager and PostgreSQL too,
#                and builds the collector, bin/otelcol-aispend)
#   make collector - build the OpenTelemetry Collector distribution bin/otelcol-aispend (docs/collector.md)
#   make native    - build and install the compiled OTLP span reader (native/, needs cargo; optional for run)
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint bench venv system-deps test-deps clean collector native

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (apt-get install python3.11 python3.11-venv)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# Prometheus and Alertmanager from Debian; used by the integration tests and `make run`.
system-deps:
	@if ! command -v promtool >/dev/null || ! command -v prometheus-alertmanager >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus prometheus-alertmanager >/dev/null; \
	fi

# The PostgreSQL server, which the ledger tests start on their own (the package's cluster is unused),
# and Debian's chromium, which the console's browser tests drive (Playwright never downloads one).
test-deps:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends postgresql chromium >/dev/null; \
	fi

# The collector distribution (collector/builder-config.yaml), built with the OpenTelemetry Collector
# Builder; collector/go.sh finds or fetches a new enough Go. Rebuilt only when the manifest or the
# build scripts are newer than the binary.
COLLECTOR := bin/otelcol-aispend
$(COLLECTOR): collector/builder-config.yaml collector/build.sh collector/go.sh
	collector/build.sh

collector: $(COLLECTOR)
	@echo "collector: $(COLLECTOR) is up to date ($$($(COLLECTOR) --version))"

# The compiled OTLP span reader (package aispend-native, docs/architecture.md), built by maturin with
# cargo; rebuilt only when its sources change (cargo keeps native/target between builds). aispend runs
# without it (the Python reader); the tests hold it to that reader, so `make test` needs it.
NATIVE := $(VENV)/.native-installed
$(NATIVE): $(STAMP) native/Cargo.toml native/Cargo.lock native/pyproject.toml native/src/lib.rs
	@command -v cargo >/dev/null || { echo "need cargo for the compiled span reader: rustup (https://rustup.rs) or, on Debian 12, apt-get install cargo-web"; exit 1; }
	$(BIN)/pip install --quiet ./native
	@touch $@

native: $(NATIVE)

test: $(STAMP) system-deps test-deps collector native
	$(BIN)/ruff check .
	$(BIN)/pytest

run: $(STAMP)
	@-$(MAKE) --no-print-directory system-deps
	@if ! command -v cargo >/dev/null; then echo "no cargo: spans are read by the Python reader"; \
	elif ! $(MAKE) --no-print-directory native; then echo "the compiled span reader did not build: spans are read by the Python reader"; fi
	$(BIN)/python -m aispend.devstack

bench: $(STAMP)
	$(BIN)/python benchmarks/pricing.py
	$(BIN)/python benchmarks/instrumentation_overhead.py
	$(BIN)/python benchmarks/exporter_throughput.py
	$(BIN)/python benchmarks/console.py

clean:
	rm -rf $(VENV) bin build dist *.egg-info .pytest_cache .ruff_cache native/target
