"""`make run` (aispend.devstack) prints the console's URL first, and the exporter it starts serves it."""

from __future__ import annotations

import re
import urllib.request

from aispend.devstack import PROMETHEUS_DIR, Stack, StackConfig, banner
from tests.e2e.test_stack import free_port


def test_the_console_url_comes_first_and_answers(tmp_path):
    config = StackConfig(
        workdir=tmp_path,
        budgets=PROMETHEUS_DIR / "budgets.example.yaml",
        otlp_grpc=free_port(),
        otlp_http=free_port(),
        metrics=free_port(),
    )
    lines = banner(config, prometheus=False, alertmanager=False, ledger=tmp_path / "aispend.sqlite")
    match = re.match(r"aispend console\s+(http://127\.0\.0\.1:(\d+)/)\s", lines[0])
    assert match and int(match.group(2)) == config.metrics, lines[0]
    assert any("apt-get install prometheus" in line for line in lines)
    stack = Stack(config)
    try:
        stack.start_exporter()
        with urllib.request.urlopen(match.group(1), timeout=10) as response:  # / redirects to /console/
            page = response.read().decode()
        assert response.url.endswith("/console/") and "<title>aispend console</title>" in page
    finally:
        stack.stop()
