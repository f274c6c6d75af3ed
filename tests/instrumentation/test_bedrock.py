"""The real boto3 (botocore's urllib3 session) against the fake Bedrock runtime: Converse,
ConverseStream, InvokeModel and InvokeModelWithResponseStream for every model family, with
Bedrock's binary event stream, usage from headers, invocation metrics and bodies, cache tokens,
inference profiles, errors, and streams the app cuts short."""

from __future__ import annotations

import base64
import json
import zlib

import boto3
import botocore.exceptions
import botocore.parsers
import pytest
from botocore.config import Config
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer

from aispend.instrumentation.adapters import Router
from aispend.instrumentation.adapters.bedrock import BedrockAdapter, family, model_name, split_path
from aispend.instrumentation.exchange import HttpRequest
from aispend.providers import from_host
from tests.fakes import eventstream as es
from tests.fakes.more_providers import invocation_metrics
from tests.instrumentation.conftest import provider_urls

PROFILE = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "Hello, Bedrock"}]}]
ACCESS_KEY = "AKIAFAKEEXAMPLE0K3Y9"
# The fake's usage: 11 new input tokens, 7 output, 3 read from and 5 written to the cache
USAGE = {
    "gen_ai.usage.input_tokens": 19,  # Bedrock's inputTokens exclude the cache: 11 + 3 + 5
    "gen_ai.usage.output_tokens": 7,
    "gen_ai.usage.cache_read.input_tokens": 3,
    "gen_ai.usage.cache_creation.input_tokens": 5,
    "gen_ai.usage.cache_write.input_tokens": 5,
}


def client(fake):
    return boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=fake.bedrock_base,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key="fake-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )


def check(attrs, expected):
    for key, value in expected.items():
        assert attrs.get(key) == value, (key, attrs.get(key))


# --- the event-stream encoder of the fake, against botocore's own parser ---------------------------


def test_eventstream_encoder_is_what_botocore_parses():
    data = es.event("contentBlockDelta", {"delta": {"text": "hé"}}) + es.exception("throttlingException", "slow")
    buffer = EventStreamBuffer()
    for i in range(0, len(data), 7):  # cut anywhere
        buffer.add_data(data[i : i + 7])
    first, second = list(buffer)
    assert first.headers == {
        ":event-type": "contentBlockDelta",
        ":content-type": "application/json",
        ":message-type": "event",
    }
    assert json.loads(first.payload) == {"delta": {"text": "hé"}}
    assert second.headers[":message-type"] == "exception" and second.headers[":exception-type"] == "throttlingException"


def test_eventstream_encoder_crcs_are_checked():
    data = bytearray(es.event("messageStop", {"stopReason": "end_turn"}))
    data[-6] ^= 0xFF  # a payload byte
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(data))
    with pytest.raises(ChecksumMismatch):
        list(buffer)


def test_chunk_events_wrap_base64_native_json():
    buffer = EventStreamBuffer()
    buffer.add_data(es.chunk({"generation": "hi"}))
    (msg,) = list(buffer)
    assert json.loads(base64.b64decode(json.loads(msg.payload)["bytes"])) == {"generation": "hi"}
    assert zlib.crc32(b"") == 0  # (zlib's CRC32 is the one the framing uses)


# --- routing and names ---------------------------------------------------------------------------


def test_real_bedrock_hosts_route_to_the_bedrock_adapter():
    router = Router()
    for host in (
        "bedrock-runtime.us-east-1.amazonaws.com",
        "bedrock-runtime-fips.us-gov-west-1.amazonaws.com",
        "vpce-0abc-1xyz.bedrock-runtime.eu-west-1.vpce.amazonaws.com",
        "bedrock-runtime.cn-north-1.amazonaws.com.cn",
    ):
        request = HttpRequest("POST", "https", host, 443, "/model/amazon.nova-lite-v1%3A0/converse")
        assert isinstance(router.route(request), BedrockAdapter), host
        assert from_host(host) == "aws.bedrock"
    s3 = HttpRequest("POST", "https", "s3.us-east-1.amazonaws.com", 443, "/model/x/converse")
    assert router.route(s3) is None and from_host("s3.us-east-1.amazonaws.com") == ""


def test_model_ids_paths_and_families():
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.meta.llama3-2-3b-instruct-v1:0"
    assert split_path("/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Feu.x/invoke") == (
        "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.x",
        "invoke",
    )
    assert model_name(arn) == "eu.meta.llama3-2-3b-instruct-v1:0" and family(model_name(arn)) == "meta"
    assert family("global.anthropic.claude-sonnet-4-5-20250929-v1:0") == "anthropic"
    assert split_path("/model/x/list") is None and split_path("/converse") is None


# --- Converse and ConverseStream -------------------------------------------------------------------


def test_converse(harness):
    response = client(harness.fake).converse(modelId=PROFILE, messages=MESSAGES)
    assert response["usage"]["totalTokens"] == 26
    span = harness.span()
    assert span.name == f"chat {PROFILE}"
    check(
        dict(span.attributes),
        {
            **USAGE,
            "gen_ai.provider.name": "aws.bedrock",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": PROFILE,
            "gen_ai.response.finish_reasons": ("end_turn",),
            "gen_ai.response.id": response["ResponseMetadata"]["RequestId"],
        },
    )
    # attributed to the access key id's fingerprint; the secret is never sent, so never seen
    assert span.attributes["aispend.key"].endswith("K3Y9") and "fake-secret" not in str(span.attributes)
    assert "aispend.usage.estimated" not in span.attributes


def test_converse_stream_usage_from_the_metadata_event(harness):
    response = client(harness.fake).converse_stream(modelId=PROFILE, messages=MESSAGES)
    events = list(response["stream"])
    assert [next(iter(e)) for e in events][-1] == "metadata"
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "Hello from the fake bedrock server."
    attrs = harness.attrs()
    check(attrs, {**USAGE, "gen_ai.request.stream": True, "gen_ai.response.finish_reasons": ("end_turn",)})
    assert "aispend.usage.estimated" not in attrs


def test_converse_stream_app_sees_the_same_events_with_and_without_aispend(harness):
    with_aispend = list(client(harness.fake).converse_stream(modelId=PROFILE, messages=MESSAGES)["stream"])
    harness.instrumentor.uninstrument()
    bare = list(client(harness.fake).converse_stream(modelId=PROFILE, messages=MESSAGES)["stream"])
    harness.instrumentor.instrument(tracer_provider=harness.provider, provider_urls=provider_urls(harness.fake))
    assert with_aispend == bare


def test_converse_stream_abandoned_is_estimated(harness):
    harness.fake.stream_chunks = 8
    stream = client(harness.fake).converse_stream(modelId=PROFILE, messages=MESSAGES)["stream"]
    for event in stream:
        if "contentBlockDelta" in event:
            break
    stream.close()
    attrs = harness.attrs()
    assert attrs["aispend.usage.estimated"] is True
    assert attrs["gen_ai.usage.output_tokens"] >= 1 and attrs["gen_ai.usage.input_tokens"] >= 1
    assert "error.type" not in attrs


def test_converse_stream_exception_event(harness):
    harness.fake.bedrock_stream_exception = "modelStreamErrorException"
    stream = client(harness.fake).converse_stream(modelId=PROFILE, messages=MESSAGES)["stream"]
    with pytest.raises(botocore.exceptions.EventStreamError):
        list(stream)
    span = harness.span()
    assert span.attributes["error.type"] == "modelStreamErrorException"
    assert span.status.status_code.name == "ERROR"


def test_throttled(harness):
    harness.fake.fault = "http_429"
    with pytest.raises(botocore.exceptions.ClientError) as err:
        client(harness.fake).converse(modelId=PROFILE, messages=MESSAGES)
    assert err.value.response["Error"]["Code"] == "ThrottlingException"
    attrs = harness.attrs()
    assert attrs["error.type"] == "ThrottlingException" and attrs["http.response.status_code"] == 429
    assert "gen_ai.usage.input_tokens" not in attrs


def test_truncated_converse_stream_raises_what_botocore_raises(harness):
    harness.instrumentor.uninstrument()
    harness.fake.fault = "truncate"
    harness.fake.stream_chunks = 6

    def consume():
        try:
            list(client(harness.fake).converse_stream(modelId=PROFILE, messages=MESSAGES)["stream"])
        except Exception as exc:
            return exc
        return None

    bare = consume()
    harness.instrumentor.instrument(tracer_provider=harness.provider, provider_urls=provider_urls(harness.fake))
    with_aispend = consume()
    assert type(with_aispend) is type(bare) and str(with_aispend) == str(bare)
    attrs = harness.attrs()
    assert attrs.get("aispend.usage.estimated") is True or "error.type" in attrs  # never exact


# --- InvokeModel: each family's native body, usage from the headers or the body --------------------

FAMILIES = {
    "anthropic": (
        PROFILE,
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]},
        "chat",
    ),
    "meta": ("meta.llama3-70b-instruct-v1:0", {"prompt": "hi", "max_gen_len": 50}, "text_completion"),
    "nova": (
        "us.amazon.nova-pro-v1:0",
        {"schemaVersion": "messages-v1", "messages": [{"role": "user", "content": [{"text": "hi"}]}]},
        "chat",
    ),
    "titan-text": ("amazon.titan-text-express-v1", {"inputText": "hi"}, "text_completion"),
    "mistral": ("mistral.mistral-7b-instruct-v0:2", {"prompt": "<s>[INST] hi [/INST]"}, "text_completion"),
    "mistral-chat": ("mistral.mistral-large-2402-v1:0", {"messages": [{"role": "user", "content": "hi"}]}, "chat"),
    "cohere": ("cohere.command-r-v1:0", {"message": "hi"}, "chat"),
}
# what each family's body alone reports (without Bedrock's headers)
BODY_USAGE = {
    "anthropic": True,
    "meta": True,
    "nova": True,
    "titan-text": True,
    "mistral": False,
    "mistral-chat": False,
    "cohere": False,
}
NO_CACHE = {"gen_ai.usage.input_tokens": 11, "gen_ai.usage.output_tokens": 7}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_invoke_model_usage_from_the_headers(harness, name):
    model, body, operation = FAMILIES[name]
    response = client(harness.fake).invoke_model(modelId=model, body=json.dumps(body))
    assert json.loads(response["body"].read())
    attrs = harness.attrs()
    check(attrs, {**USAGE, "gen_ai.request.model": model, "gen_ai.operation.name": operation})
    assert "aispend.usage.estimated" not in attrs and attrs["gen_ai.response.finish_reasons"]


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_invoke_model_usage_from_the_body(harness, name):
    harness.fake.bedrock_usage_headers = False
    harness.fake.set_usage("bedrock", cache_read_tokens=0, cache_write_tokens=0)
    model, body, _ = FAMILIES[name]
    client(harness.fake).invoke_model(modelId=model, body=json.dumps(body))["body"].read()
    attrs = harness.attrs()
    if BODY_USAGE[name]:
        check(attrs, NO_CACHE)
        assert "aispend.usage.estimated" not in attrs
    else:  # Mistral and Cohere bodies carry no counts: estimated, and marked so
        assert attrs["aispend.usage.estimated"] is True and attrs["gen_ai.usage.output_tokens"] > 0


@pytest.mark.parametrize(
    ("model", "body"),
    [
        ("amazon.titan-embed-text-v2:0", {"inputText": "embed me"}),
        ("cohere.embed-english-v3", {"texts": ["embed me"], "input_type": "search_document"}),
    ],
)
def test_invoke_model_embeddings(harness, model, body):
    harness.fake.set_usage("bedrock", cache_read_tokens=0, cache_write_tokens=0)
    client(harness.fake).invoke_model(modelId=model, body=json.dumps(body))["body"].read()
    attrs = harness.attrs()
    check(attrs, {"gen_ai.operation.name": "embeddings", "aispend.service.kind": "embedding"})
    assert attrs["gen_ai.usage.input_tokens"] == 11 and "aispend.usage.estimated" not in attrs


def test_invoke_model_read_in_pieces(harness):
    model, body, _ = FAMILIES["meta"]
    response = client(harness.fake).invoke_model(modelId=model, body=json.dumps(body))
    data = b"".join(response["body"].iter_chunks(chunk_size=5))
    assert json.loads(data)["generation_token_count"] == 7
    check(harness.attrs(), USAGE)


# --- InvokeModelWithResponseStream -----------------------------------------------------------------

STREAMED = sorted(set(FAMILIES) - {"mistral-chat"})


def _stream(fake, name):
    model, body, _ = FAMILIES[name]
    return client(fake).invoke_model_with_response_stream(modelId=model, body=json.dumps(body))["body"]


@pytest.mark.parametrize("name", STREAMED)
def test_response_stream_usage_from_invocation_metrics(harness, name):
    chunks = [json.loads(e["chunk"]["bytes"]) for e in _stream(harness.fake, name)]
    assert chunks[-1]["amazon-bedrock-invocationMetrics"] == invocation_metrics(harness.fake.usage("bedrock"))
    attrs = harness.attrs()
    check(attrs, {**USAGE, "gen_ai.request.stream": True})
    assert "aispend.usage.estimated" not in attrs


STREAM_BODY_USAGE = {
    "anthropic": True,
    "meta": True,
    "nova": True,
    "titan-text": True,
    "mistral": False,
    "cohere": False,
}


@pytest.mark.parametrize("name", STREAMED)
def test_response_stream_usage_from_the_chunks(harness, name):
    harness.fake.bedrock_stream_metrics = False
    harness.fake.set_usage("bedrock", cache_read_tokens=0, cache_write_tokens=0)
    list(_stream(harness.fake, name))
    attrs = harness.attrs()
    if STREAM_BODY_USAGE[name]:
        check(attrs, NO_CACHE)
        assert "aispend.usage.estimated" not in attrs
    else:
        assert attrs["aispend.usage.estimated"] is True


@pytest.mark.parametrize("name", ["anthropic", "meta", "nova"])
def test_response_stream_abandoned_is_estimated_not_exact(harness, name):
    harness.fake.stream_chunks = 8
    stream = _stream(harness.fake, name)
    for _ in zip(range(2), stream, strict=False):
        pass
    stream.close()
    attrs = harness.attrs()
    assert attrs["aispend.usage.estimated"] is True, attrs
    assert attrs["aispend.usage.estimator"] == "chars" and "error.type" not in attrs
    # the exact input count kept where the stream's first chunk had it (Anthropic: with the
    # cache); Nova counts only in its last event, so its prompt ("hi") is estimated: ceil(2 / 4)
    assert attrs["gen_ai.usage.input_tokens"] == {"anthropic": 19, "meta": 11, "nova": 1}[name]
    assert attrs["gen_ai.usage.output_tokens"] >= 1


def test_response_stream_exception(harness):
    harness.fake.bedrock_stream_exception = "throttlingException"
    with pytest.raises(botocore.exceptions.EventStreamError):
        list(_stream(harness.fake, "anthropic"))
    assert harness.attrs()["error.type"] == "throttlingException"


def test_other_aws_calls_are_untouched(harness):
    """botocore traffic that is not a Bedrock runtime call makes no span (and still works)."""
    sts = boto3.client(
        "sts",
        region_name="us-east-1",
        endpoint_url=harness.fake.url + "/sts",
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key="fake-secret",
        config=Config(retries={"total_max_attempts": 1}),
    )
    with pytest.raises(botocore.parsers.ResponseParserError):
        sts.get_caller_identity()  # the fake answers 404 JSON where STS speaks XML
    assert harness.spans() == []


def test_signed_request_headers_read_as_botocore_holds_them():
    """The hook reads botocore's raw header list (its items() is slow): the same pairs."""
    from botocore.compat import HTTPHeaders

    from aispend.instrumentation.hooks.botocore_session import _text_headers

    headers = HTTPHeaders()
    headers["Authorization"] = "AWS4-HMAC-SHA256 Credential=AKIAFAKE/20261201/us-east-1/bedrock/aws4_request"
    headers["User-Agent"] = b"Boto3/1.44 md/Botocore#1.44"
    headers["X-Amz-Date"] = "20261201T000000Z"
    assert _text_headers(headers) == [(k, v.decode() if isinstance(v, bytes) else v) for k, v in headers.items()]
