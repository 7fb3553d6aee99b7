"""Seed 001 bodies parse into the request models; responses have the seed's shape."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

import esb.schemas
from esb.schemas import (
    CompatibilityLevel,
    Direction,
    EnhancedSchemaRegistrationRequest,
    EvolutionStrategy,
    SchemaRegistrationRequest,
    SchemaRegistrationResponse,
    SchemaType,
    ValidationResult,
)

SEED_ENHANCED = {
    "schema_name": "user_profile_event",
    "schema_version": "2.0",
    "json_schema": {"type": "object", "properties": {"user_id": {"type": "string"}}},
    "event_type": "user.profile_updated",
    "compatibility_level": "BACKWARD",
    "evolution_strategy": "COMPATIBLE",
    "validation_rules": {"business_rules": [{
        "name": "valid_email_domain", "description": "Email must be from approved domains",
        "rule": "profile_data.email.endsWith('@company.com')"}]},
    "is_active": True,
}


def test_seed_enhanced_body() -> None:
    request = EnhancedSchemaRegistrationRequest.model_validate(SEED_ENHANCED)
    assert request.compatibility_level is CompatibilityLevel.BACKWARD
    assert request.evolution_strategy is EvolutionStrategy.COMPATIBLE
    assert request.schema_type is SchemaType.JSON
    assert request.validation_rules.business_rules[0].name == "valid_email_domain"


def test_exactly_one_schema_and_no_unknown_fields() -> None:
    base = {"schema_name": "n", "event_type": "order.created"}
    with pytest.raises(ValidationError):
        SchemaRegistrationRequest.model_validate(base)
    with pytest.raises(ValidationError):
        SchemaRegistrationRequest.model_validate(
            {**base, "json_schema": {}, "avro_schema": "string"})
    with pytest.raises(ValidationError):
        SchemaRegistrationRequest.model_validate({**base, "json_schema": {}, "bogus": 1})
    avro = SchemaRegistrationRequest.model_validate({**base, "avro_schema": "string"})
    assert avro.schema_type is SchemaType.AVRO and avro.schema_version == "1.0"


def test_response_shapes() -> None:
    assert SchemaRegistrationResponse(schema_id="sch_1").model_dump(exclude_none=True) == {
        "schema_id": "sch_1", "message": "Enhanced schema registered successfully"}
    assert set(ValidationResult(is_valid=True, schema_version="2.0").model_dump()) == {
        "is_valid", "validation_errors", "schema_version", "validation_time_ms"}


@pytest.mark.parametrize(("level", "directions", "transitive"), [
    ("NONE", (), False), ("BACKWARD", (Direction.BACKWARD,), False),
    ("FULL_TRANSITIVE", (Direction.BACKWARD, Direction.FORWARD), True),
    ("FORWARD_TRANSITIVE", (Direction.FORWARD,), True),
])
def test_level_semantics(level: str, directions: tuple[Direction, ...], transitive: bool) -> None:
    assert CompatibilityLevel(level).directions == directions
    assert CompatibilityLevel(level).is_transitive is transitive


def test_public_api_is_locked() -> None:
    assert sorted(esb.schemas.__all__) == sorted(set(esb.schemas.__all__))
    for name in esb.schemas.__all__:
        assert getattr(esb.schemas, name) is not None
    assert {"SchemaRegistryState", "validate_event", "check_compatibility", "encode", "decode",
            "parse_record", "record_from_request"} <= set(esb.schemas.__all__)
