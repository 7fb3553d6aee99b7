"""The registry state machine: ids, versions, idempotence, deletes, tenants, config, determinism."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.errors import Conflict, ExpressionError, NotFound, ValidationFailed
from esb.schemas import (
    CompatibilityLevel,
    ConfigSet,
    EnhancedSchemaRegistrationRequest,
    EvolutionStrategy,
    SchemaDeleted,
    SchemaRegistered,
    SchemaRegistryState,
    SchemaType,
    ValidationRules,
    parse_record,
    record_from_request,
    record_key,
    record_value,
    subject_for_event_type,
)

NOW = datetime(2025, 1, 26, 10, 30, tzinfo=UTC)
SUBJECT = "order.created-value"


def schema(*required: str, **props: Any) -> str:
    properties = {"order_id": {"type": "string"}, **props}
    return json.dumps({"type": "object", "properties": properties, "required": list(required)})


def reg(text: str, tenant: str = "t1", subject: str = SUBJECT, **kw: Any) -> SchemaRegistered:
    return SchemaRegistered(tenant_id=tenant, subject=subject, schema_text=text, created_at=NOW,
                            **kw)


V1 = schema("order_id")
V2 = schema("order_id", note={"type": "string"})  # open model + typed prop: FORWARD-only
V2_BACKWARD = json.dumps({"type": "object", "properties": {"order_id": {"type": "string"}}})


def test_ids_and_versions_increase() -> None:
    state = SchemaRegistryState()
    first = state.apply(reg(V1))
    second = state.apply(reg(V2_BACKWARD))
    other = state.apply(reg(V2, subject="other-value"))
    assert (first.id, first.version, first.schema_id) == (1, 1, "sch_1")
    assert (second.id, second.version, second.schema_id) == (2, 2, "sch_2")
    assert (other.id, other.version, other.schema_id) == (3, 1, "sch_3")
    assert state.list_versions("t1", SUBJECT) == [1, 2]
    assert state.latest("t1", SUBJECT) == second


def test_re_registering_same_schema_is_idempotent() -> None:
    state = SchemaRegistryState()
    first = state.apply(reg(V1))
    before = state.snapshot()
    # same schema, different whitespace and key order
    again = state.apply(reg(json.dumps(json.loads(V1), indent=2, sort_keys=False)))
    assert again == first
    assert state.snapshot() == before


def test_same_text_under_another_subject_reuses_id_but_not_across_tenants() -> None:
    state = SchemaRegistryState()
    a = state.apply(reg(V1))
    b = state.apply(reg(V1, subject="copy-value"))
    c = state.apply(reg(V1, tenant="t2"))
    assert a.id == b.id and a.schema_id != b.schema_id
    assert c.id != a.id
    assert [v.subject for v in [state.get_by_id("t1", a.id)]] == [SUBJECT]
    assert state.versions_for_id("t1", a.id) == [("copy-value", 1), (SUBJECT, 1)]


def test_lookup_schema_under_subject() -> None:
    state = SchemaRegistryState()
    v1 = state.apply(reg(V1))
    assert state.lookup("t1", SUBJECT, SchemaType.JSON, json.loads(V1)) == v1
    with pytest.raises(NotFound):
        state.lookup("t1", SUBJECT, SchemaType.JSON, V2)


def test_incompatible_schema_rejected_with_reasons_and_state_unchanged() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1))
    before = state.snapshot()
    with pytest.raises(Conflict) as info:
        state.apply(reg(V2))  # BACKWARD by default: typed property added to an open model
    assert state.snapshot() == before
    assert any("$.note" in m for m in info.value.details["messages"])


def test_invalid_schema_and_bad_rule_rejected() -> None:
    state = SchemaRegistryState()
    with pytest.raises(ValidationFailed):
        state.apply(reg('{"type": "striiing"}'))
    rules = ValidationRules.model_validate(
        {"business_rules": [{"name": "r", "rule": "a.endswith(('x', 'y'))"}]})
    with pytest.raises(ExpressionError):
        state.apply(reg(V1, validation_rules=rules))
    assert state.snapshot() == SchemaRegistryState().snapshot()


def test_config_precedence_subject_over_global_over_default() -> None:
    state = SchemaRegistryState()
    assert state.compatibility_level("t1", SUBJECT) is CompatibilityLevel.BACKWARD
    state.apply(ConfigSet(tenant_id="t1", compatibility_level=CompatibilityLevel.FORWARD))
    assert state.compatibility_level("t1", SUBJECT) is CompatibilityLevel.FORWARD
    assert state.compatibility_level("t2", SUBJECT) is CompatibilityLevel.BACKWARD
    state.apply(ConfigSet(tenant_id="t1", subject=SUBJECT,
                          compatibility_level=CompatibilityLevel.NONE))
    assert state.compatibility_level("t1", SUBJECT) is CompatibilityLevel.NONE
    assert state.compatibility_level("t1", "x-value") is CompatibilityLevel.FORWARD
    state.apply(ConfigSet(tenant_id="t1", subject=SUBJECT))
    assert state.compatibility_level("t1", SUBJECT) is CompatibilityLevel.FORWARD


def test_config_governs_registration() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1))
    state.apply(ConfigSet(tenant_id="t1", subject=SUBJECT,
                          compatibility_level=CompatibilityLevel.FORWARD))
    assert state.apply(reg(V2)).version == 2  # FORWARD-compatible change now accepted


def test_registration_level_becomes_subject_level() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1, compatibility_level=CompatibilityLevel.FORWARD))
    assert state.configured_level("t1", SUBJECT) is CompatibilityLevel.FORWARD


def test_soft_delete_hides_then_hard_delete_forgets() -> None:
    state = SchemaRegistryState()
    v1 = state.apply(reg(V1))
    state.apply(reg(V2_BACKWARD))
    assert state.apply(SchemaDeleted(tenant_id="t1", subject=SUBJECT, version=2)) == [2]
    assert state.list_versions("t1", SUBJECT) == [1]
    assert state.list_versions("t1", SUBJECT, include_deleted=True) == [1, 2]
    with pytest.raises(NotFound):
        state.get_version("t1", SUBJECT, 2)
    assert state.get_version("t1", SUBJECT, 2, include_deleted=True).deleted
    assert state.get_by_id("t1", 2).deleted  # old records can still be decoded
    with pytest.raises(NotFound):  # deleting twice
        state.apply(SchemaDeleted(tenant_id="t1", subject=SUBJECT, version=2))
    with pytest.raises(Conflict):  # hard delete needs soft delete first
        state.apply(SchemaDeleted(tenant_id="t1", subject=SUBJECT, version=1, permanent=True))
    assert state.apply(SchemaDeleted(tenant_id="t1", subject=SUBJECT, version=2,
                                     permanent=True)) == [2]
    with pytest.raises(NotFound):
        state.get_by_id("t1", 2)
    # versions continue after the highest stored one; ids are never reused
    v3 = state.apply(reg(schema("order_id", qty={"type": "integer"}),
                         evolution_strategy=EvolutionStrategy.BREAKING_CHANGE))
    assert (v3.version, v3.id) == (2, 3)
    assert state.latest("t1", SUBJECT).version == 2 and v1.version == 1


def test_delete_whole_subject() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1))
    state.apply(reg(V2_BACKWARD))
    assert state.apply(SchemaDeleted(tenant_id="t1", subject=SUBJECT)) == [1, 2]
    assert state.list_subjects("t1") == []
    assert state.list_subjects("t1", include_deleted=True) == [SUBJECT]
    assert state.apply(SchemaDeleted(tenant_id="t1", subject=SUBJECT, permanent=True)) == [1, 2]
    assert state.list_subjects("t1", include_deleted=True) == []
    assert state.apply(reg(V1)).version == 1


def test_soft_deleted_versions_are_not_checked() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1))
    state.apply(SchemaDeleted(tenant_id="t1", subject=SUBJECT, version=1))
    assert state.apply(reg(V2)).version == 2  # would be BACKWARD-incompatible with v1


def test_tenant_isolation() -> None:
    state = SchemaRegistryState()
    mine = state.apply(reg(V1, tenant="t1"))
    state.apply(reg(V2_BACKWARD, tenant="t2", subject="secret-value"))
    assert state.list_subjects("t1") == [SUBJECT]
    assert state.list_subjects("t2") == ["secret-value"]
    with pytest.raises(NotFound):
        state.get_by_id("t2", mine.id)
    with pytest.raises(NotFound):
        state.get_by_schema_id("t2", mine.schema_id)
    with pytest.raises(NotFound):
        state.list_versions("t2", SUBJECT)
    with pytest.raises(NotFound):
        state.apply(SchemaDeleted(tenant_id="t2", subject=SUBJECT))
    assert state.get_by_schema_id("t1", mine.schema_id) == mine


def test_breaking_change_is_accepted_and_recorded() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1))
    v2 = state.apply(reg(V2, evolution_strategy=EvolutionStrategy.BREAKING_CHANGE))
    assert v2.breaking_change and v2.compatibility is not None
    assert not v2.compatibility.is_compatible
    # a transitive check after a deliberate break starts from the break
    state.apply(ConfigSet(tenant_id="t1", subject=SUBJECT,
                          compatibility_level=CompatibilityLevel.BACKWARD_TRANSITIVE))
    v3 = state.apply(reg(schema("order_id", note={"type": "string"}, extra={"type": "boolean"}),
                         evolution_strategy=EvolutionStrategy.BREAKING_CHANGE))
    assert v3.compatibility is not None and v3.compatibility.checked_versions == [2]


def test_deprecate_marks_older_versions() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1))
    state.apply(reg(V2_BACKWARD, evolution_strategy=EvolutionStrategy.DEPRECATE))
    assert state.get_version("t1", SUBJECT, 1).deprecated
    assert not state.get_version("t1", SUBJECT, 2).deprecated
    with pytest.raises(Conflict):  # DEPRECATE still enforces the level
        state.apply(reg(V2, evolution_strategy=EvolutionStrategy.DEPRECATE))


def test_test_compatibility_is_a_dry_run() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1))
    before = state.snapshot()
    result = state.test_compatibility("t1", SUBJECT, SchemaType.JSON, V2)
    assert not result.is_compatible and result.checked_versions == [1]
    assert state.test_compatibility("t1", SUBJECT, SchemaType.JSON, V2,
                                    level=CompatibilityLevel.FORWARD).is_compatible
    assert state.snapshot() == before


def test_schema_type_change_is_incompatible() -> None:
    state = SchemaRegistryState()
    state.apply(reg(V1))
    avro = json.dumps({"type": "record", "name": "O", "fields": [
        {"name": "order_id", "type": "string"}]})
    with pytest.raises(Conflict, match="incompatible"):
        state.apply(reg(avro, schema_type=SchemaType.AVRO))


def test_enhanced_request_and_evolution_history() -> None:
    state = SchemaRegistryState()
    body = {
        "schema_name": "order_event", "schema_version": "1.0", "event_type": "order.created",
        "json_schema": json.loads(schema("order_id", total={"type": "number"})),
        "validation_rules": {"business_rules": [{"name": "min", "rule": "total >= 10.0"}]},
    }
    request = EnhancedSchemaRegistrationRequest.model_validate(body)
    v1 = state.apply(record_from_request(request, "t1", NOW, created_by="user_456"))
    assert v1.subject == subject_for_event_type("order.created") == SUBJECT
    assert (v1.schema_name, v1.schema_version, v1.created_by) == ("order_event", "1.0", "user_456")
    body["schema_version"] = "1.1"
    body["json_schema"]["properties"]["total"] = {"type": "integer"}
    body["compatibility_level"] = "FORWARD"
    state.apply(record_from_request(EnhancedSchemaRegistrationRequest.model_validate(body),
                                    "t1", NOW))
    history = state.evolution_history("t1", "order.created")
    assert [e.schema_version for e in history.versions] == ["1.0", "1.1"]
    assert history.versions[0].is_compatible is None
    assert history.versions[1].is_compatible is True
    [change] = history.versions[1].changes
    assert (change.path, change.kind) == ("$.total", "type")
    assert state.list_schemas("t1", event_type="order.created")[0] == v1


def _records() -> list[Any]:
    avro = json.dumps({"type": "record", "name": "P", "fields": [{"name": "id", "type": "string"}]})
    return [
        reg(V1),
        reg(V2),  # rejected (incompatible) on every replica
        ConfigSet(tenant_id="t1", subject=SUBJECT, compatibility_level=CompatibilityLevel.NONE),
        reg(V2),
        reg(V1, subject="b-value"),
        reg(avro, tenant="t2", subject="p-value", schema_type=SchemaType.AVRO),
        SchemaDeleted(tenant_id="t1", subject=SUBJECT, version=1),
        reg(V1),  # re-registered after soft delete: new version, same id
        SchemaDeleted(tenant_id="t1", subject="missing-value"),  # rejected
        SchemaDeleted(tenant_id="t1", subject=SUBJECT, version=1, permanent=True),
    ]


def _replay(records: list[Any]) -> SchemaRegistryState:
    state = SchemaRegistryState()
    for record in records:
        with contextlib.suppress(Conflict, NotFound):  # rejected alike on every replica
            state.apply(parse_record(record_value(record)))
    return state


def test_two_replicas_reach_equal_state() -> None:
    records = _records()
    a, b = _replay(records), _replay(records)
    assert a == b
    assert a.list_versions("t1", SUBJECT) == [2, 3]
    assert a.get_version("t1", SUBJECT, 3).id == a.get_by_id("t1", 1).id == 1
    assert a != _replay(records[:-1])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(range(len(_records()))), max_size=12))
def test_any_record_sequence_is_deterministic(order: list[int]) -> None:
    pool = _records()
    records = [pool[i] for i in order]
    assert _replay(records) == _replay(records)


def test_record_serialization_and_keys() -> None:
    first, second = reg(V1), reg(V1)
    assert record_key(first) != record_key(second)
    assert parse_record(record_value(first)) == first
    assert parse_record(json.loads(record_value(first))) == first
