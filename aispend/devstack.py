"""``make run``: the exporter plus Prometheus and Alertmanager (when installed) with this repo's
configs, on 127.0.0.1, until Ctrl-C. The end-to-end test drives the same code with its own ports
and shorter intervals, so what it proves is what a user starts.

Grafana is not packaged for Debian; use ``docker compose up`` (compose.yaml) for dashboards.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aispend.exporter.budget_rules import render
from aispend.exporter.budgets import load_budgets
from aispend.exporter.ledger_location import default_ledger_path

REPO = Path(__file__).resolve().parents[1]
PROMETHEUS_DIR = REPO / "prometheus"


def find_binary(*names: str) -> str | None:
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None)
        if found:
            return found
    return None


@dataclass
class StackConfig:
    workdir: Path
    budgets: Path = PROMETHEUS_DIR / "budgets.example.yaml"
    otlp_grpc: int = 4317
    otlp_http: int = 4318
    metrics: int = 9464
    prometheus: int = 9090
    alertmanager: int = 9093
    scrape_interval: str | None = None  # None keeps the shipped prometheus.yml values
    evaluation_interval: str | None = None
    # rewrite the shipped alertmanager.yml (receiver URLs, timings) before starting it
    alertmanager_edit: Callable[[dict[str, Any]], None] | None = None
    exporter_args: list[str] = field(default_factory=list)
    ledger: Path | None = None  # None: workdir/aispend.sqlite (tests); make run passes the default ledger
    # protects /metrics and /v1/* (the exporter's read_token); Prometheus scrapes with it. From the
    # environment, the first of the tokens that read (exporter/tokens.py).
    read_token: str | None = field(default_factory=lambda: _token_from_environment())


def _token_from_environment() -> str | None:
    for name in ("AISPEND_READ_TOKEN", "AISPEND_ADMIN_TOKEN", "AISPEND_AUTH_TOKEN"):
        if os.environ.get(name):
            return os.environ[name]
    return None


class Stack:
    """Starts and stops the processes; every log goes to ``workdir/<name>.log``."""

    def __init__(self, config: StackConfig) -> None:
        self.config = config
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        config.workdir.mkdir(parents=True, exist_ok=True)

    # -- configs --------------------------------------------------------------------------------
    def prometheus_config(self) -> Path:
        cfg = self.config
        data = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
        if cfg.scrape_interval:
            data["global"]["scrape_interval"] = data["global"]["scrape_timeout"] = cfg.scrape_interval
        if cfg.evaluation_interval:
            data["global"]["evaluation_interval"] = cfg.evaluation_interval
        rules = cfg.workdir / "rules"
        rules.mkdir(exist_ok=True)
        for path in (PROMETHEUS_DIR / "rules").glob("*.yml"):
            if path.name != "budgets.yml":
                text = path.read_text()
                if cfg.evaluation_interval:  # the 1d group has its own 1m interval; follow the override
                    loaded = yaml.safe_load(text)
                    for group in loaded.get("groups", []):
                        group.pop("interval", None)
                    text = yaml.safe_dump(loaded, sort_keys=False)
                (rules / path.name).write_text(text)
        (rules / "budgets.yml").write_text(render(load_budgets(cfg.budgets), str(cfg.budgets)))
        data["rule_files"] = [str(rules / "*.yml")]
        data["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [f"127.0.0.1:{cfg.alertmanager}"]
        for job in data["scrape_configs"]:
            port = cfg.metrics if job["job_name"] == "aispend" else cfg.prometheus
            job["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
            if job["job_name"] == "aispend" and cfg.read_token:
                job["authorization"] = {"type": "Bearer", "credentials_file": str(self.read_token_file())}
            if cfg.scrape_interval and "scrape_interval" in job:
                job["scrape_interval"] = cfg.scrape_interval
                job["scrape_timeout"] = cfg.scrape_interval
        path = cfg.workdir / "prometheus.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def read_token_file(self) -> Path:
        path = self.config.workdir / "aispend-read-token"
        path.touch(mode=0o600)
        path.write_text(self.config.read_token or "")
        return path

    def alertmanager_config(self) -> Path:
        data = yaml.safe_load((PROMETHEUS_DIR / "alertmanager.yml").read_text())
        if self.config.alertmanager_edit is not None:
            data = copy.deepcopy(data)
            self.config.alertmanager_edit(data)
        path = self.config.workdir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    # -- processes ------------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.config.workdir / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.config.workdir, env=env
        )

    def ledger_path(self) -> Path:
        return (self.config.ledger or self.config.workdir / "aispend.sqlite").resolve()

    def start_exporter(self) -> None:
        cfg = self.config
        _require_free("the aispend exporter", cfg.otlp_grpc, cfg.otlp_http, cfg.metrics)
        self._spawn(
            "aispend",
            [
                sys.executable,
                "-m",
                "aispend.cli",
                "serve",
                "--otlp-grpc",
                f"127.0.0.1:{cfg.otlp_grpc}",
                "--otlp-http",
                f"127.0.0.1:{cfg.otlp_http}",
                "--metrics",
                f"127.0.0.1:{cfg.metrics}",
                "--ledger",
                f"sqlite:///{self.ledger_path()}",
                "--budgets",
                str(cfg.budgets),
                *cfg.exporter_args,
            ],
            # the token through the environment: a command line is readable by every local user
            env={**os.environ, "AISPEND_READ_TOKEN": cfg.read_token} if cfg.read_token else None,
        )
        body = self.wait_http("aispend", f"http://127.0.0.1:{cfg.metrics}/healthz")
        if json.loads(body).get("pid") != self.procs["aispend"].pid:  # another exporter won the port
            raise RuntimeError(
                f"127.0.0.1:{cfg.metrics} is answered by another process, not the exporter just started; "
                f"stop the other aispend (its log: {self.log('aispend')[-400:]})"
            )

    def start_prometheus(self) -> bool:
        binary = find_binary("prometheus")
        if binary is None:
            return False
        cfg = self.config
        _require_free("Prometheus", cfg.prometheus)
        self._spawn(
            "prometheus",
            [
                binary,
                f"--config.file={self.prometheus_config()}",
                f"--storage.tsdb.path={cfg.workdir / 'prometheus-data'}",
                f"--web.listen-address=127.0.0.1:{cfg.prometheus}",
                "--web.enable-lifecycle",
            ],
        )
        self.wait_http("prometheus", f"http://127.0.0.1:{cfg.prometheus}/-/ready")
        return True

    def start_alertmanager(self) -> bool:
        binary = find_binary("prometheus-alertmanager", "alertmanager")
        if binary is None:
            return False
        cfg = self.config
        _require_free("Alertmanager", cfg.alertmanager)
        self._spawn(
            "alertmanager",
            [
                binary,
                f"--config.file={self.alertmanager_config()}",
                f"--storage.path={cfg.workdir / 'alertmanager-data'}",
                f"--web.listen-address=127.0.0.1:{cfg.alertmanager}",
                "--cluster.listen-address=",
            ],
        )
        self.wait_http("alertmanager", f"http://127.0.0.1:{cfg.alertmanager}/-/ready")
        return True

    def wait_http(self, name: str, url: str, timeout: float = 60.0) -> bytes:
        """The first answer's body once ``url`` answers; an error if the process exits first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{self.log(name)}")
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    return response.read()
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{name} did not answer {url} within {timeout:.0f}s:\n{self.log(name)}")

    def log(self, name: str) -> str:
        path = self.config.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()


def _require_free(what: str, *ports: int) -> None:
    """Refuse to start ``what`` on a port something already listens on: its readiness check would
    be answered by that other process and the banner would lie."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.settimeout(1)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                raise RuntimeError(
                    f"127.0.0.1:{port} is already in use (another {what}, or another make run?); stop it first"
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", default=str(REPO / ".run"), help="logs and Prometheus data (default .run/)")
    parser.add_argument("--budgets", default=str(PROMETHEUS_DIR / "budgets.example.yaml"))
    ledger = default_ledger_path()
    parser.add_argument(
        "--ledger", default=str(ledger), help=f"SQLite ledger (default {ledger}: what aispend usage reads)"
    )
    args = parser.parse_args(argv)
    stack = Stack(StackConfig(workdir=Path(args.workdir), budgets=Path(args.budgets), ledger=Path(args.ledger)))

    def terminate(*_: object) -> None:
        raise KeyboardInterrupt  # stop the children on SIGTERM too, not only on Ctrl-C

    signal.signal(signal.SIGTERM, terminate)
    try:
        stack.start_exporter()
        lines = [
            f"aispend console   http://127.0.0.1:{stack.config.metrics}/  (spend, calls, customers, keys, budgets)",
            "aispend exporter  OTLP gRPC 127.0.0.1:4317, OTLP/HTTP http://127.0.0.1:4318/v1/traces",
            "                  metrics   http://127.0.0.1:9464/metrics, budgets http://127.0.0.1:9464/v1/budgets",
        ]
        if stack.start_prometheus():
            lines.append("Prometheus        http://127.0.0.1:9090  (rules and alerts from prometheus/rules)")
        else:
            lines.append("Prometheus        not installed: apt-get install prometheus")
        if stack.start_alertmanager():
            lines.append("Alertmanager      http://127.0.0.1:9093  (routing from prometheus/alertmanager.yml)")
        else:
            lines.append("Alertmanager      not installed: apt-get install prometheus-alertmanager")
        lines += [
            "Grafana           docker compose up (compose.yaml provisions the dashboards; the console needs none)",
            f"ledger            {stack.ledger_path()}  (aispend usage reads it)",
            f"logs              {args.workdir}",
            "instrument an app: OTEL_SERVICE_NAME=my-app opentelemetry-instrument python app.py",
            "Ctrl-C stops everything.",
        ]
        print("\n".join(lines), flush=True)
        while all(p.poll() is None for p in stack.procs.values()):
            time.sleep(1)
        print("a process exited; see its log in", args.workdir, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    except RuntimeError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
