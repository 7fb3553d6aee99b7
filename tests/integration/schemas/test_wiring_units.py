"""Pure units of the wiring: the catalog reducer adapter and the enforcement check (no services)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest

from esb.catalog import CatalogState, Outcome
from esb.errors import Conflict, ValidationFailed
from esb.schemas import SchemaRegistered, SchemaRegistryState, decode_avro, encode_avro
from esb.schemas.enforcement import SchemaEnforcer
from esb.schemas.service import KIND, SchemaRegistryService

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OBJ = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
AVRO = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}


class LoopbackCatalog:
    """Applies each write at once, like a one-replica log: read-your-writes without Kafka."""

    def __init__(self) -> None:
        self.current = CatalogState()
        self.offset = 0

    async def write(self, kind: str, tenant: str, name: str, op: str,
                    data: dict[str, Any] | None = None, *, timeout: float = 15.0) -> Outcome:
        self.offset += 1
        record = json.loads(json.dumps({"op": op, "data": data, "request_id": str(self.offset)}))
        self.current.apply(f"{kind}/{tenant}/{name}", record)
        return self.current.outcomes[str(self.offset)]


def service() -> SchemaRegistryService:
    catalog = LoopbackCatalog()
    svc = SchemaRegistryService(catalog)
    catalog.current.register(KIND, svc.reducer)
    return svc


def reg(tenant: str, subject: str, schema: Any, kind: str = "JSON", **kw: Any) -> SchemaRegistered:
    return SchemaRegistered(tenant_id=tenant, subject=subject, schema_type=kind,
                            schema_text=json.dumps(schema), created_at=NOW, **kw)


def test_writer_gets_the_version_and_rejections_are_raised_only_to_it() -> None:
    svc = service()
    first = asyncio.run(svc.register(reg("t", "a-value", OBJ)))
    assert (first.id, first.version) == (1, 1)
    stricter = {**OBJ, "required": ["n", "m"]}
    with pytest.raises(Conflict) as refused:
        asyncio.run(svc.register(reg("t", "a-value", stricter)))
    assert refused.value.details["messages"]
    # another replica folding the same record skips it without raising
    other = SchemaRegistryState()
    outcome = type(svc.reducer)(other).apply(CatalogState(), "schema/t/x", {
        "data": reg("t", "a-value", OBJ).model_dump(mode="json")})
    assert outcome.status == "applied"
    outcome = type(svc.reducer)(other).apply(CatalogState(), "schema/t/y", {
        "data": reg("t", "a-value", stricter).model_dump(mode="json")})
    assert outcome.status == "rejected" and isinstance(outcome.data["error"], Conflict)
    assert other.list_versions("t", "a-value") == [1]


def test_enforcer_by_type_by_declared_id_and_by_wire_format() -> None:
    svc = service()
    enforce = SchemaEnforcer(svc.state)
    svc.add_change_listener(enforce.invalidate)
    enforce("t", {"ce_type": "a"}, b'{"n": "x"}', "application/json")  # no schema yet: passes
    version = asyncio.run(svc.register(reg("t", "a-value", OBJ)))
    with pytest.raises(ValidationFailed) as bad:  # cache was invalidated by the registration
        enforce("t", {"ce_type": "a"}, b'{"n": "x"}', "application/json")
    assert bad.value.errors[0]["path"] == "$.n"
    enforce("t", {"ce_type": "a"}, b'{"n": 1}', "application/json")
    enforce("other", {"ce_type": "a"}, b'{"n": "x"}', "application/json")  # tenant-scoped
    with pytest.raises(ValidationFailed):
        enforce("t", {"ce_type": "b", "ce_schemaid": version.schema_id}, b"{}", "application/json")
    enforce("t", {"ce_type": "b", "ce_schemaid": "sch_unknown"}, b"{}", "application/json")

    avro = asyncio.run(svc.register(reg("t", "c-value", AVRO, "AVRO")))
    good = encode_avro(avro.id, fastavro.parse_schema(AVRO), {"n": 5})
    enforce("t", {"ce_type": "whatever"}, good, "application/octet-stream")
    with pytest.raises(ValidationFailed) as trailing:
        enforce("t", {"ce_type": "whatever"}, good + b"\x00", "application/octet-stream")
    assert "trailing" in trailing.value.errors[0]["message"]
    with pytest.raises(ValidationFailed) as unknown:
        enforce("u", {"ce_type": "whatever"}, good, "application/octet-stream")
    assert "unknown schema id" in unknown.value.errors[0]["message"]


def test_inactive_schema_is_not_enforced() -> None:
    svc = service()
    enforce = SchemaEnforcer(svc.state)
    asyncio.run(svc.register(reg("t", "a-value", OBJ, is_active=False)))
    enforce("t", {"ce_type": "a"}, b'{"n": "x"}', "application/json")


def test_json_event_data_becomes_confluent_wire_avro_for_avro_streams() -> None:
    svc = service()
    assert svc.to_avro_wire("t", "c", b'{"n": 5}') is None  # no schema: keep JSON
    version = asyncio.run(svc.register(reg("t", "c-value", AVRO, "AVRO")))
    wire = svc.to_avro_wire("t", "c", b'{"n": 5}')
    assert wire is not None and wire[0] == 0
    assert decode_avro(wire, fastavro.parse_schema(AVRO)) == (version.id, {"n": 5})
    with pytest.raises(ValidationFailed):
        svc.to_avro_wire("t", "c", b'{"n": "five"}')
    asyncio.run(svc.register(reg("t", "j-value", OBJ)))
    assert svc.to_avro_wire("t", "j", b'{"n": 5}') is None  # JSON Schema subject: keep JSON


def test_rules_see_only_the_fields_they_name() -> None:
    from esb.schemas.rules import referenced_names

    assert referenced_names("total >= 0.0 && currency == 'total EUR'") == {"total", "currency"}
    assert {"profile_data", "email"} <= referenced_names(
        "profile_data.email.endsWith(\"@x.com\")")


@pytest.mark.parametrize("ref", ["²", "٣", "/schemas/ids/²", "sch_²"])
def test_a_unicode_digit_schema_id_is_no_schema_not_a_crash(ref: str) -> None:
    """``'²'.isdigit()`` is True and ``int('²')`` raises: ``ce_schemaid: "²"`` crashed the
    ingress router (issue 10). Such a reference names no schema."""
    svc = service()
    enforce = SchemaEnforcer(svc.state)
    asyncio.run(svc.register(reg("t", "a-value", OBJ)))
    enforce("t", {"ce_type": "b", "ce_schemaid": ref}, b"{}", "application/json")
    with pytest.raises(ValidationFailed):  # by type, the schema still applies
        enforce("t", {"ce_type": "a", "ce_schemaid": ref}, b'{"n": "x"}', "application/json")
