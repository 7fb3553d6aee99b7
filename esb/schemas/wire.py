"""Confluent wire format: magic byte 0, a 4-byte big-endian schema id, then the body.

This is what Confluent serializers write in a Kafka record value, so Confluent clients and our
bus can read each other's records. Avro bodies are Avro binary (schemaless), JSON bodies UTF-8.

Avro bodies are tenant bytes, so decoding is bounded (ADR 0010). fastavro trusts the counts in
the data: an array of ``null`` claiming 2^60 items allocates until memory runs out (each item is
zero bytes), and a recursive record nested 100k levels deep overflows the C stack (a segfault,
measured). :func:`read_avro` therefore checks the body first against :data:`MAX_AVRO_DEPTH` and
:data:`MAX_AVRO_ITEMS` and refuses any length or count larger than the bytes left, with a
``ValidationFailed`` (422). The check walks the bytes in Python, so it runs only for schemas that
need it (recursive named types, or arrays/maps of zero-byte items); for every other schema the
nesting is bounded by the schema (itself depth-limited at registration) and each item costs at
least one byte, so fastavro alone cannot be made to allocate beyond the body's size.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import Any

import fastavro

from esb.errors import InvalidRequest, ValidationFailed

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
        value = read_avro(io.BytesIO(body), writer_schema, reader_schema)
    except (EOFError, ValueError, IndexError, StopIteration) as exc:
        raise InvalidRequest(
            f"Avro body does not match schema {schema_id}: {exc}", schema_id=schema_id
        ) from exc
    return schema_id, value


# --------------------------------------------------------------------------- bounded reading

#: Deepest nesting (records, arrays, maps, unions) of one decoded Avro value.
MAX_AVRO_DEPTH = 64
#: Most array and map entries, all collections together, in one decoded Avro value.
MAX_AVRO_ITEMS = 1_000_000

_PRIMITIVE_WIDTH = {"boolean": 1, "float": 4, "double": 8}
_NAMED = ("record", "error", "enum", "fixed")


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the body check needs to know about a parsed schema, worked out once."""

    checked: bool  # False: fastavro alone is bounded for this schema
    names: dict[str, Any]
    zero_width: frozenset[str]  # named types that always encode to zero bytes


def _resolve(node: Any, names: dict[str, Any]) -> Any:
    return names.get(node, node) if isinstance(node, str) else node


def _children(node: Any) -> list[Any]:
    if isinstance(node, list):
        return node
    if not isinstance(node, dict):
        return []
    kind = node.get("type")
    if kind in ("record", "error"):
        return [field.get("type") for field in node.get("fields", ())]
    if kind == "array":
        return [node.get("items")]
    if kind == "map":
        return [node.get("values")]
    if isinstance(kind, dict | list):
        return [kind]
    return []


def _zero_width(node: Any, names: dict[str, Any], zero_names: frozenset[str] | set[str]) -> bool:
    """Does every value of ``node`` encode to zero bytes (null, size-0 fixed, records of those)?

    Named references are looked up in ``zero_names`` rather than followed, so this is linear in
    the schema's size however often a named type is reused.
    """
    if isinstance(node, str):
        return node == "null" or node in zero_names
    if not isinstance(node, dict):
        return False  # unions cost an index byte
    kind = node.get("type")
    if kind in ("record", "error"):
        return all(_zero_width(t, names, zero_names) for t in _children(node))
    if kind == "fixed":
        return node.get("size") == 0
    if kind in ("enum", "array", "map") or kind is None:
        return False
    return _zero_width(kind, names, zero_names)  # {"type": <primitive or reference>, ...}


def _zero_width_names(names: dict[str, Any]) -> frozenset[str]:
    """Least fixed point: a record is zero-width once all its fields are known to be."""
    found: set[str] = set()
    changed = True
    while changed:
        changed = False
        for name, node in names.items():
            if name not in found and _zero_width(node, names, found):
                found.add(name)
                changed = True
    return frozenset(found)


def _depths(schema: Any, names: dict[str, Any]) -> int | None:
    """Deepest static nesting of ``schema``, or None when a named type contains itself."""
    memo: dict[str, int] = {}
    active: set[str] = set()

    def depth(node: Any) -> int:
        if isinstance(node, str):
            if node not in names:
                return 0
            if node in active:
                raise _Recursive
            if node not in memo:
                active.add(node)
                memo[node] = structural(names[node])
                active.discard(node)
            return memo[node]
        return structural(node)

    def structural(node: Any) -> int:
        if isinstance(node, dict) and isinstance(node.get("name"), str):
            active.add(node["name"])  # an inline definition is active while walked
            try:
                return 1 + max((depth(c) for c in _children(node)), default=0)
            finally:
                active.discard(node["name"])
        return 1 + max((depth(c) for c in _children(node)), default=0)

    try:
        return depth(schema)
    except (_Recursive, RecursionError):
        return None


class _Recursive(Exception):
    """A named type reachable from itself."""


def _plan_for(schema: Any) -> _Plan:
    """Collect named types; decide whether the schema needs the body check."""
    names: dict[str, Any] = dict(schema.get("__named_schemas", {})) if isinstance(
        schema, dict) else {}
    stack, seen, collections = [schema], set(), []
    while stack:  # iterative: every dict once
        node = stack.pop()
        if not isinstance(node, dict | list) or id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, dict):
            if node.get("type") in _NAMED and isinstance(node.get("name"), str):
                names.setdefault(node["name"], node)
            if node.get("type") in ("array", "map"):
                collections.append(node)
        stack.extend(_children(node))
    zero_width = _zero_width_names(names)
    static_depth = _depths(schema, names)
    checked = (
        static_depth is None  # recursive: data depth is bounded only by the body
        or static_depth > MAX_AVRO_DEPTH
        or any(_zero_width(c.get("items"), names, zero_width)
               for c in collections if c["type"] == "array")
    )
    return _Plan(checked=checked, names=names, zero_width=zero_width)


_PLANS: dict[int, tuple[Any, _Plan]] = {}


def _plan(schema: Any) -> _Plan:
    """Cached per parsed-schema object (the entry keeps the object alive, so ids stay unique)."""
    entry = _PLANS.get(id(schema))
    if entry is None or entry[0] is not schema:
        if len(_PLANS) >= 1024:
            _PLANS.clear()
        entry = _PLANS[id(schema)] = (schema, _plan_for(schema))
    return entry[1]


class _BoundedScan:
    """Walks Avro binary without building values, refusing hostile lengths, counts and depth."""

    def __init__(self, data: bytes, plan: _Plan) -> None:
        self.data, self.pos, self.items, self.plan = data, 0, 0, plan

    def fail(self, path: str, message: str) -> ValidationFailed:
        return ValidationFailed(f"Avro body refused: {message}",
                                errors=[{"path": path, "message": message}])

    def long(self, path: str) -> int:
        shift = result = 0
        while True:
            if self.pos >= len(self.data):
                raise self.fail(path, "body ends inside a number")
            byte = self.data[self.pos]
            self.pos += 1
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return (result >> 1) ^ -(result & 1)
            shift += 7
            if shift > 63:
                raise self.fail(path, "number longer than 10 bytes")

    def skip(self, size: int, path: str, what: str) -> None:
        left = len(self.data) - self.pos
        if size < 0 or size > left:
            raise self.fail(path, f"{what} claims {size} bytes, {left} are left")
        self.pos += size

    def value(self, node: Any, path: str, depth: int) -> None:
        if depth > MAX_AVRO_DEPTH:
            raise self.fail(path, f"value nested deeper than {MAX_AVRO_DEPTH} levels")
        node = _resolve(node, self.plan.names)
        if isinstance(node, list):
            index = self.long(path)
            if not 0 <= index < len(node):
                raise self.fail(path, f"union branch {index} does not exist")
            self.value(node[index], path, depth + 1)
            return
        kind = node.get("type") if isinstance(node, dict) else node
        if isinstance(kind, dict | list) or (isinstance(kind, str) and kind in self.plan.names):
            self.value(kind, path, depth)
        elif kind in ("record", "error"):
            for field in node.get("fields", ()):
                self.value(field.get("type"), f"{path}.{field.get('name')}", depth + 1)
        elif kind in ("array", "map"):
            self.collection(node, kind, path, depth + 1)
        elif kind in ("int", "long", "enum"):
            self.long(path)
        elif kind in ("string", "bytes"):
            self.skip(self.long(path), path, kind)
        elif kind == "fixed":
            self.skip(int(node.get("size", 0)), path, "fixed")
        elif kind in _PRIMITIVE_WIDTH:
            self.skip(_PRIMITIVE_WIDTH[kind], path, kind)
        # "null" and anything fastavro itself would reject: nothing to read here

    def collection(self, node: dict[str, Any], kind: str, path: str, depth: int) -> None:
        item = node.get("items") if kind == "array" else node.get("values")
        zero_width = kind == "array" and _zero_width(item, self.plan.names,
                                                     self.plan.zero_width)
        while True:
            count = self.long(path)
            if count == 0:
                return
            if count < 0:
                count = -count
                self.long(path)  # block size in bytes, informational
            self.items += count
            if self.items > MAX_AVRO_ITEMS:
                raise self.fail(path, f"more than {MAX_AVRO_ITEMS} array/map entries")
            if zero_width:
                continue
            left = len(self.data) - self.pos
            if count > left:  # every entry takes at least one byte
                raise self.fail(path, f"{kind} claims {count} entries, {left} bytes are left")
            for index in range(count):
                if kind == "map":
                    self.skip(self.long(path), path, "map key")
                    self.value(item, f"{path}[{index}]", depth)
                else:
                    self.value(item, f"{path}[{index}]", depth)


def check_avro_body(body: bytes | bytearray | memoryview, writer_schema: Any) -> None:
    """Raise ``ValidationFailed`` if decoding ``body`` could allocate or recurse without bound.

    ``writer_schema`` is a ``fastavro.parse_schema`` result. Cheap for schemas that cannot be
    abused that way (see the module docstring): the work is one cached dictionary lookup.
    """
    plan = _plan(writer_schema)
    if plan.checked:
        _BoundedScan(bytes(body), plan).value(writer_schema, "$", 0)


def read_avro(stream: io.BytesIO, writer_schema: Any, reader_schema: Any = None) -> Any:
    """``fastavro.schemaless_reader`` on the rest of ``stream``, after :func:`check_avro_body`."""
    if _plan(writer_schema).checked:
        with stream.getbuffer() as buffer:
            check_avro_body(buffer[stream.tell():], writer_schema)
    return fastavro.schemaless_reader(stream, writer_schema, reader_schema)
