"""What the audit trail records: derived from the route table, ids only, never secrets."""

from __future__ import annotations

import json

from esb import api_spec
from esb.audit import policy
from esb.audit.entry import AuditRecord, decode, encode

OPS = api_spec.by_operation()


def test_state_changes_are_recorded_and_publishing_and_reads_are_not() -> None:
    changing = {r.operation_id for r in api_spec.ROUTES if r.changes_state}
    for op in ("create_stream", "register_schema", "cf_delete_subject", "create_subscription",
               "cancel_subscription", "rotate_subscription_secret", "create_processor",
               "create_pattern", "create_read_model", "delete_read_model",
               "create_consumer_group", "redrive_dead_letters", "replay_subscription",
               "put_quotas", "cf_put_config", "create_audit_checkpoint"):
        assert op in changing, op
    for op in ("publish_event", "publish_batch", "append_event", "query_events",
               "validate_against_schema", "cf_check_compatibility", "list_streams",
               "list_audit_entries"):
        assert op not in changing, op
    assert policy.kind_of(OPS["publish_event"], 201) is None
    assert policy.kind_of(OPS["create_stream"], 409) == "change"
    assert policy.kind_of(OPS["publish_event"], 403) == "refused"
    assert policy.kind_of(None, 401) == "refused"
    assert policy.kind_of(None, 404) is None


def test_only_ids_of_a_creation_are_kept() -> None:
    answer = json.dumps({"subscription_id": "sub_1", "tenant_id": "acme",
                         "webhook_secret": "whsec_abc", "message": "ok", "token": "t",
                         "nested": {"x_id": "no"}, "name": "orders"}).encode()
    assert policy.created_ids(answer, 201) == {"subscription_id": "sub_1", "name": "orders"}
    assert policy.created_ids(answer, 409) == {}
    assert policy.created_ids(b"not json", 201) == {}


def test_entries_are_canonical_and_carry_their_position() -> None:
    record = AuditRecord(tenant="acme", actor="alice", request_id="r1", method="POST",
                         operation="create_stream", outcome=201, target={"stream_id": "s"})
    first = encode(record, 7)
    assert first == encode(record, 7)  # the same bytes every time: what is hashed is stored
    assert decode(first)["seq"] == 7 and decode(first)["v"] == 1
    assert json.dumps(decode(first), sort_keys=True, separators=(",", ":")).encode() == first
    assert policy.REQUEST_ID.match("req-1") and not policy.REQUEST_ID.match("a b\n")
