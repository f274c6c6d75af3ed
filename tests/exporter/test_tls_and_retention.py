"""TLS on every listener; retention deletes old call rows but keeps the daily totals."""

from __future__ import annotations

import ssl
import urllib.request
from decimal import Decimal

import grpc
import pytest
import trustme

from aispend.exporter.config import ExporterConfig
from aispend.exporter.grpc_receiver import EXPORT_METHOD
from aispend.exporter.ledger import Filters, SQLiteLedger
from aispend.exporter.metrics import UsageMetrics
from aispend.exporter.pipeline import Pipeline
from aispend.pricing import PriceEngine
from tests.exporter.server import running, value
from tests.exporter.spans import NOW_NS, llm, otlp_request

DAY_NS = 86_400 * 10**9


def test_tls_grpc_http_and_metrics(tmp_path):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    with running(tls_cert=str(cert_path), tls_key=str(key_path)) as exporter:
        credentials = grpc.ssl_channel_credentials(root_certificates=ca.cert_pem.bytes())
        with grpc.secure_channel(
            f"127.0.0.1:{exporter.ports['otlp_grpc']}",
            credentials,
            options=[("grpc.ssl_target_name_override", "localhost")],
        ) as channel:
            channel.unary_unary(EXPORT_METHOD)(
                otlp_request([llm("openai", "gpt-4", 150, 75)]).SerializeToString(), timeout=10
            )
        context = ssl.create_default_context(cadata=ca.cert_pem.bytes().decode())
        body = otlp_request([llm("openai", "gpt-4", 150, 75)]).SerializeToString()
        request = urllib.request.Request(
            f"https://localhost:{exporter.ports['otlp_http']}/v1/traces",
            data=body,
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert urllib.request.urlopen(request, context=context, timeout=10).status == 200
        text = (
            urllib.request.urlopen(
                f"https://localhost:{exporter.ports['metrics']}/metrics", context=context, timeout=10
            )
            .read()
            .decode()
        )
        assert value(text, "aispend_cost_usd_total") == pytest.approx(0.018)
        with pytest.raises((urllib.error.URLError, ConnectionError)):  # plain HTTP is refused on a TLS port
            urllib.request.urlopen(f"http://127.0.0.1:{exporter.ports['metrics']}/metrics", timeout=5)


def test_retention_keeps_daily_totals(tmp_path):
    ledger = SQLiteLedger(str(tmp_path / "ledger.sqlite"))
    pipeline = Pipeline(ExporterConfig(), PriceEngine(), ledger, UsageMetrics())
    old = {"start": NOW_NS - 100 * DAY_NS, "attributes": llm("openai", "gpt-4", 150, 75, **{"aispend.customer": "a"})}
    new = {"attributes": llm("openai", "gpt-4", 150, 75, **{"aispend.customer": "b"})}
    pipeline.export(otlp_request([old, new]))
    assert ledger.prune(retention_days=90, now_ns=NOW_NS) == 1
    assert [c["customer"] for c in ledger.calls(Filters())] == ["b"]
    totals = {labels[5]: cost for labels, _, _, cost, _ in ledger.totals(pipeline.instance)}
    assert totals == {"a": Decimal("0.009"), "b": Decimal("0.009")}  # all-time totals survive
    assert ledger.summary(Filters(), [], from_daily=True)[0]["calls"] == 2
