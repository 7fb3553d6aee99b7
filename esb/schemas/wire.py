"""Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the body.

This is what Confluent serializers write in a Kafka record value, so Confluent clients and our
bus can read each other's records. Avro bodies are Avro binary (schemaless), JSON bodies UTF-8.
"""

from __future__ import annotations

import io
import struct
from typing import Any

import fastavro

from esb.errors import InvalidRequest

MAGIC_BYTE = 0
_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size  # 5


def encode(schema_id: int, body: bytes) -> bytes:
    """Frame ``body`` for ``schema_id`` (an unsigned 32-bit registry id)."""
    if not 0 <= schema_id <= 0xFFFFFFFF:
        raise InvalidRequest(f"schema id {schema_id} does not fit in 4 bytes", schema_id=schema_id)
    return _HEADER.pack(MAGIC_BYTE, schema_id) + bytes(body)


def decode(data: bytes | bytearray | memoryview) -> tuple[int, memoryview]:
    """Split a framed record into (schema id, body); the body is a zero-copy view."""
    view = memoryview(data)
    if len(view) < HEADER_SIZE:
        raise InvalidRequest(
            f"record too short for the Confluent wire format: {len(view)} bytes, "
            f"need at least {HEADER_SIZE}",
            length=len(view),
        )
    magic, schema_id = _HEADER.unpack_from(view)
    if magic != MAGIC_BYTE:
        raise InvalidRequest(
            f"unknown magic byte {magic:#04x}: not a Confluent wire-format record "
            f"(expected {MAGIC_BYTE:#04x})",
            magic_byte=magic,
        )
    return schema_id, view[HEADER_SIZE:]


def encode_avro(schema_id: int, parsed_schema: Any, record: Any) -> bytes:
    """Avro-binary ``record`` with ``parsed_schema`` (from ``fastavro.parse_schema``), framed."""
    buffer = io.BytesIO()
    buffer.write(_HEADER.pack(MAGIC_BYTE, schema_id))
    fastavro.schemaless_writer(buffer, parsed_schema, record)
    return buffer.getvalue()


def decode_avro(
    data: bytes | bytearray | memoryview, writer_schema: Any, reader_schema: Any = None
) -> tuple[int, Any]:
    """Read a framed Avro record; ``reader_schema`` applies Avro schema resolution."""
    schema_id, body = decode(data)
    try:
        value = fastavro.schemaless_reader(io.BytesIO(body), writer_schema, reader_schema)
    except (EOFError, ValueError, IndexError, StopIteration) as exc:
        raise InvalidRequest(
            f"Avro body does not match schema {schema_id}: {exc}", schema_id=schema_id
        ) from exc
    return schema_id, value
