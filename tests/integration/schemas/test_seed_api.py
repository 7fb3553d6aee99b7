"""The seed's schema endpoints: bodies, answers, 409 with reasons, evolution, tenants."""

from __future__ import annotations

import copy

import pytest

from tests.support import unique

pytestmark = pytest.mark.integration

PROFILE_SCHEMA = {  # seed 001, "Register Enhanced Schema"
    "type": "object",
    "properties": {
        "user_id": {"type": "string"},
        "profile_data": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "email": {"type": "string", "format": "email"},
                "phone": {"type": "string"},
                "preferences": {"type": "object"},
            },
            "required": ["name", "email"],
        },
        "timestamp": {"type": "string", "format": "date-time"},
    },
    "required": ["user_id", "profile_data", "timestamp"],
}


def enhanced_body(event_type: str, **overrides):
    body = {
        "schema_name": "user_profile_event",
        "schema_version": "2.0",
        "json_schema": copy.deepcopy(PROFILE_SCHEMA),
        "event_type": event_type,
        "compatibility_level": "BACKWARD",
        "evolution_strategy": "COMPATIBLE",
        "validation_rules": {"business_rules": [{
            "name": "valid_email_domain",
            "description": "Email must be from approved domains",
            "rule": "profile_data.email.endsWith('@company.com') || "
                    "profile_data.email.endsWith('@partner.com')",
        }]},
        "is_active": True,
    }
    body.update(overrides)
    return body


VALID_EVENT = {  # seed 001, "Validate Event Against Schema"
    "user_id": "user_123",
    "profile_data": {"name": "John Doe", "email": "john.doe@company.com", "phone": "+1-555-0123",
                     "preferences": {"notifications": True, "theme": "dark"}},
    "timestamp": "2025-01-26T10:30:00Z",
}


async def test_enhanced_registration_and_validation_answer_as_the_seed(api_for) -> None:
    api = api_for(unique())
    status, body = await api.post("/api/v1/schemas/enhanced", enhanced_body("user.profile_updated"))
    assert status == 201, body
    assert body["message"] == "Enhanced schema registered successfully"
    assert body["schema_id"].startswith("sch_") and body["version"] == 1
    assert body["subject"] == "user.profile_updated-value" and body["id"] >= 1
    schema_id = body["schema_id"]

    status, result = await api.post(f"/api/v1/schemas/{schema_id}/validate", VALID_EVENT)
    assert status == 200, result
    assert result["is_valid"] is True and result["validation_errors"] == []
    assert result["schema_version"] == "2.0" and result["validation_time_ms"] >= 0

    bad = copy.deepcopy(VALID_EVENT)
    del bad["profile_data"]["email"]
    bad["timestamp"] = "yesterday"
    status, result = await api.post(f"/api/v1/schemas/{schema_id}/validate", bad)
    assert status == 200 and result["is_valid"] is False
    paths = {e["path"] for e in result["validation_errors"]}
    assert paths == {"$.profile_data.email", "$.timestamp"}, result

    wrong_domain = copy.deepcopy(VALID_EVENT)
    wrong_domain["profile_data"]["email"] = "john@elsewhere.org"
    status, result = await api.post(f"/api/v1/schemas/{schema_id}/validate", wrong_domain)
    assert result["is_valid"] is False
    assert result["validation_errors"][0]["rule"] == "valid_email_domain"

    status, got = await api.get(f"/api/v1/schemas/{schema_id}")
    assert status == 200 and got["json_schema"] == PROFILE_SCHEMA
    assert got["compatibility_level"] == "BACKWARD" and got["evolution_strategy"] == "COMPATIBLE"
    assert got["validation_rules"]["business_rules"][0]["name"] == "valid_email_domain"
    assert got["is_active"] is True and got["created_by"] == "tester"

    # registering the same body again is idempotent: same schema_id, 200
    status, again = await api.post("/api/v1/schemas/enhanced",
                                   enhanced_body("user.profile_updated"))
    assert status == 200 and again["schema_id"] == schema_id


async def test_legacy_registration_avro_and_listing(api_for) -> None:
    api = api_for(unique())
    avro = {"type": "record", "name": "Order", "fields": [
        {"name": "order_id", "type": "string"}, {"name": "total", "type": "double"}]}
    status, body = await api.post("/api/v1/schemas", {
        "schema_name": "order_event", "schema_version": "1.0", "event_type": "order.created",
        "avro_schema": avro})
    assert status == 201, body
    assert body["message"] == "Schema registered successfully"
    status, listing = await api.get("/api/v1/schemas?event_type=order.created")
    assert status == 200 and listing["total"] == 1
    assert listing["schemas"][0]["avro_schema"] == avro
    assert listing["schemas"][0]["schema_type"] == "AVRO"

    status, result = await api.post(f"/api/v1/schemas/{body['schema_id']}/validate",
                                    {"order_id": "o1", "total": "a lot"})
    assert status == 200 and result["is_valid"] is False
    assert result["validation_errors"][0]["path"] == "$.total"

    status, problem = await api.post("/api/v1/schemas", {
        "schema_name": "x", "event_type": "bad.schema", "json_schema": {"type": "objekt"}})
    assert status == 422, problem


async def test_incompatible_version_is_409_with_reasons_and_breaking_change_is_recorded(
        api_for) -> None:
    api = api_for(unique())
    event_type = "user.profile_updated"
    status, first = await api.post("/api/v1/schemas/enhanced", enhanced_body(event_type))
    assert status == 201, first

    # BACKWARD: a new required field cannot read old events that lack it
    stricter = copy.deepcopy(PROFILE_SCHEMA)
    stricter["properties"]["department"] = {"type": "string"}
    stricter["required"] = [*stricter["required"], "department"]
    status, problem = await api.post("/api/v1/schemas/enhanced", enhanced_body(
        event_type, json_schema=stricter, schema_version="3.0"))
    assert status == 409, problem
    assert problem["subject"] == f"{event_type}-value"
    assert any("department" in m for m in problem["messages"]), problem
    assert any(i["path"] == "$.department" for i in problem["issues"]), problem

    # a compatible evolution (a field no longer required) is accepted as version 2
    looser = copy.deepcopy(PROFILE_SCHEMA)
    looser["required"] = ["user_id", "profile_data"]
    status, second = await api.post("/api/v1/schemas/enhanced", enhanced_body(
        event_type, json_schema=looser, schema_version="2.1"))
    assert status == 201 and second["version"] == 2, second

    # a deliberate break is accepted and recorded
    status, third = await api.post("/api/v1/schemas/enhanced", enhanced_body(
        event_type, json_schema=stricter, schema_version="3.0",
        evolution_strategy="BREAKING_CHANGE"))
    assert status == 201 and third["version"] == 3, third

    status, history = await api.get(f"/api/v1/schemas/evolution/{event_type}")
    assert status == 200, history
    assert [v["version"] for v in history["versions"]] == [1, 2, 3]
    assert [v["breaking_change"] for v in history["versions"]] == [False, False, True]
    assert history["versions"][2]["evolution_strategy"] == "BREAKING_CHANGE"
    assert any(i["path"] == "$.department" for i in history["versions"][2]["issues"])


async def test_tenants_see_only_their_own_schemas(api_for) -> None:
    alice, bob = api_for(unique("a")), api_for(unique("b"))
    status, body = await alice.post("/api/v1/schemas/enhanced", enhanced_body("user.signed_up"))
    assert status == 201
    assert (await bob.get(f"/api/v1/schemas/{body['schema_id']}"))[0] == 404
    assert (await bob.get(f"/api/v1/schemas/{body['id']}"))[0] == 404
    assert (await bob.post(f"/api/v1/schemas/{body['schema_id']}/validate", VALID_EVENT))[0] == 404
    assert (await bob.get("/api/v1/schemas"))[1]["total"] == 0
    assert (await bob.get("/api/v1/schemas/evolution/user.signed_up"))[0] == 404
    # bob registers an incompatible schema for the same event type: no conflict across tenants
    status, _ = await bob.post("/api/v1/schemas/enhanced", enhanced_body(
        "user.signed_up", json_schema={"type": "object", "required": ["other"]}))
    assert status == 201
    assert (await alice.get("/api/v1/schemas"))[1]["total"] == 1
    # a body naming another tenant is refused
    status, _ = await alice.post("/api/v1/schemas/enhanced",
                                 {**enhanced_body("x.y"), "tenant_id": "someone_else"})
    assert status == 403
