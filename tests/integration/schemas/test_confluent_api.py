"""The Confluent-compatible API, driven by the real confluent-kafka SchemaRegistryClient."""

from __future__ import annotations

import asyncio
import json

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.support import unique

pytestmark = pytest.mark.integration

ORDER_V1 = {"type": "record", "name": "Order", "namespace": "shop", "fields": [
    {"name": "order_id", "type": "string"},
    {"name": "total", "type": "double"},
]}
ORDER_V2 = {**ORDER_V1, "fields": [*ORDER_V1["fields"],
                                   {"name": "currency", "type": "string", "default": "EUR"}]}
ORDER_BREAKING = {**ORDER_V1, "fields": [*ORDER_V1["fields"],
                                         {"name": "customer_id", "type": "string"}]}


def client_for(bus, tenant: str) -> SchemaRegistryClient:
    group, port = bus
    return SchemaRegistryClient({
        "url": f"{group.url(port)}/schema-registry",
        "bearer.auth.credentials.source": "STATIC_TOKEN",
        "bearer.auth.token": group.token(tenant),
        "bearer.auth.logical.cluster": "lsrc-esb",
        "bearer.auth.identity.pool.id": "pool-esb",
        "max.retries": 0,
    })


def avro(schema: dict) -> Schema:
    return Schema(json.dumps(schema), "AVRO")


def _subjects_and_versions(bus) -> None:
    tenant = unique()
    client = client_for(bus, tenant)
    subject = "order.placed-value"
    first = client.register_schema(subject, avro(ORDER_V1))
    assert first >= 1
    assert client.register_schema(subject, avro(ORDER_V1)) == first  # idempotent

    assert client.test_compatibility(subject, avro(ORDER_V2)) is True
    assert client.test_compatibility(subject, avro(ORDER_BREAKING)) is False
    second = client.register_schema(subject, avro(ORDER_V2))
    assert second > first  # ids unique and increasing

    with pytest.raises(SchemaRegistryError) as incompatible:
        client.register_schema(subject, avro(ORDER_BREAKING))
    assert incompatible.value.http_status_code == 409
    assert incompatible.value.error_code == 409
    assert "customer_id" in incompatible.value.error_message

    assert client.get_subjects() == [subject]
    assert client.get_versions(subject) == [1, 2]
    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version, latest.subject) == (second, 2, subject)
    assert json.loads(latest.schema.schema_str) == json.loads(json.dumps(ORDER_V2))
    v1 = client.get_version(subject, 1)
    assert v1.schema_id == first and json.loads(v1.schema.schema_str)["fields"] == \
        ORDER_V1["fields"]
    fetched = client.get_schema(first)
    assert fetched.schema_type == "AVRO" and json.loads(fetched.schema_str)["name"] == "Order"
    found = client.lookup_schema(subject, avro(ORDER_V1))
    assert (found.schema_id, found.version) == (first, 1)
    assert [(v.subject, v.version) for v in client.get_schema_versions(second)] == [(subject, 2)]

    # config: global and per subject
    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(subject_name=subject, level="NONE") == {
        "compatibility": "NONE"}
    assert client.get_compatibility(subject) == "NONE"
    third = client.register_schema(subject, avro(ORDER_BREAKING))  # allowed under NONE
    assert third > second
    assert client.set_compatibility(level="FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility() == "FULL"

    # deletes: soft, then permanent
    assert client.delete_version(subject, 3) == 3
    assert client.get_versions(subject) == [1, 2]
    assert client.delete_subject(subject) == [1, 2]
    assert client.get_subjects() == []
    client.clear_caches()  # the client caches "latest"
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_latest_version(subject)
    assert missing.value.http_status_code == 404 and missing.value.error_code in (40401, 40402)
    assert client.delete_subject(subject, permanent=True) == [1, 2, 3]
    assert client.get_subjects(deleted=True) == []

    # JSON Schema subjects and schema-type errors
    json_id = client.register_schema("user.created-value", Schema(json.dumps(
        {"type": "object", "properties": {"name": {"type": "string"}}}), "JSON"))
    assert client.get_schema(json_id).schema_type == "JSON"
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema("bad-value", Schema('{"type": "record"}', "AVRO"))
    assert invalid.value.http_status_code == 422 and invalid.value.error_code == 42201

    # another tenant sees none of it
    other = client_for(bus, unique())
    assert other.get_subjects() == []
    with pytest.raises(SchemaRegistryError) as foreign:
        other.get_schema(json_id)
    assert foreign.value.error_code == 40403


async def test_schema_registry_client_against_the_bus(bus) -> None:
    await asyncio.to_thread(_subjects_and_versions, bus)


async def test_confluent_answers_use_the_confluent_content_type(bus, http) -> None:
    group, port = bus
    token = group.token(unique())
    async with http.get(f"{group.url(port)}/schema-registry/subjects/nope/versions",
                        headers={"Authorization": f"Bearer {token}"}) as resp:
        assert resp.status == 404
        assert resp.content_type == "application/vnd.schemaregistry.v1+json"
        assert (await resp.json(content_type=None))["error_code"] == 40401
    async with http.get(f"{group.url(port)}/schema-registry/subjects") as resp:
        assert resp.status == 401  # no token, no registry
