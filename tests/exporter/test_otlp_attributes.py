"""Span attributes read from OTLP: the shortcuts for strings and integers give what the general
decoding gives, for every value type (zero, empty and unset values included)."""

from __future__ import annotations

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, ArrayValue, KeyValue, KeyValueList

from aispend.exporter.otlp import any_value, attributes

VALUES = {
    "text": AnyValue(string_value="gpt-4o"),
    "empty_text": AnyValue(string_value=""),
    "tokens": AnyValue(int_value=1234),
    "zero": AnyValue(int_value=0),
    "negative": AnyValue(int_value=-5),
    "largest": AnyValue(int_value=2**63 - 1),
    "float": AnyValue(double_value=0.25),
    "float_zero": AnyValue(double_value=0.0),
    "true": AnyValue(bool_value=True),
    "false": AnyValue(bool_value=False),
    "bytes": AnyValue(bytes_value=b"\x00\x01"),
    "list": AnyValue(array_value=ArrayValue(values=[AnyValue(string_value="stop"), AnyValue(int_value=3)])),
    "map": AnyValue(kvlist_value=KeyValueList(values=[KeyValue(key="a", value=AnyValue(int_value=1))])),
    "unset": AnyValue(),
}


def test_every_value_type_reads_as_the_general_decoding_does() -> None:
    kvs = [KeyValue(key=k, value=v) for k, v in VALUES.items()]
    read = attributes(kvs)
    expected = {k: any_value(v) for k, v in VALUES.items()}
    assert read == expected
    assert {k: type(v) for k, v in read.items()} == {k: type(v) for k, v in expected.items()}
    assert read["zero"] == 0 and read["false"] is False and read["empty_text"] == "" and read["unset"] is None
    assert read["list"] == ("stop", 3) and read["map"] == {"a": 1}


def test_only_the_wanted_names_are_read() -> None:
    kvs = [KeyValue(key=k, value=v) for k, v in VALUES.items()]
    assert attributes(kvs, frozenset({"tokens", "text", "absent"})) == {"tokens": 1234, "text": "gpt-4o"}
