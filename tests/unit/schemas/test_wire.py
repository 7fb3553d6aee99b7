"""Confluent wire format: framing round trip, Avro bodies, clear errors."""

from __future__ import annotations

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.errors import InvalidRequest
from esb.schemas import decode, decode_avro, encode, encode_avro


@settings(max_examples=200, deadline=None)
@given(schema_id=st.integers(0, 0xFFFFFFFF), body=st.binary(max_size=256))
def test_round_trip(schema_id: int, body: bytes) -> None:
    framed = encode(schema_id, body)
    assert framed[0] == 0 and len(framed) == 5 + len(body)
    decoded_id, decoded_body = decode(framed)
    assert (decoded_id, bytes(decoded_body)) == (schema_id, body)


def test_layout_is_big_endian() -> None:
    assert encode(258, b"x") == b"\x00\x00\x00\x01\x02x"


def test_bad_magic_byte() -> None:
    with pytest.raises(InvalidRequest, match="magic byte 0x01") as info:
        decode(b"\x01\x00\x00\x00\x01body")
    assert info.value.details["magic_byte"] == 1


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00\x01"])
def test_short_record(data: bytes) -> None:
    with pytest.raises(InvalidRequest, match="too short"):
        decode(data)


def test_schema_id_out_of_range() -> None:
    with pytest.raises(InvalidRequest):
        encode(2**32, b"")


def test_avro_round_trip_with_schema_resolution() -> None:
    writer = fastavro.parse_schema({"type": "record", "name": "U", "fields": [
        {"name": "id", "type": "string"}]})
    reader = fastavro.parse_schema({"type": "record", "name": "U", "fields": [
        {"name": "id", "type": "string"}, {"name": "age", "type": "int", "default": 7}]})
    framed = encode_avro(42, writer, {"id": "u1"})
    assert framed[:5] == b"\x00\x00\x00\x00\x2a"
    assert decode_avro(framed, writer) == (42, {"id": "u1"})
    assert decode_avro(framed, writer, reader) == (42, {"id": "u1", "age": 7})


def test_truncated_avro_body() -> None:
    writer = fastavro.parse_schema({"type": "record", "name": "U", "fields": [
        {"name": "id", "type": "string"}]})
    framed = encode_avro(1, writer, {"id": "a long enough string"})
    with pytest.raises(InvalidRequest, match="schema 1"):
        decode_avro(framed[:8], writer)
