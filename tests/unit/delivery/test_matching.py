"""Event-to-subscription matching: globs, attribute criteria, CEL, lazy payload."""

from __future__ import annotations

import fnmatch
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esb.delivery.matching import LazyPayload, SubscriptionMatcher, TypeMatcher
from esb.delivery.models import SubscriptionCreate


def attrs(event_type: str = "user.created", **extra: str) -> dict[str, str]:
    return {"id": "e1", "source": "user_management", "specversion": "1.0", "type": event_type,
            **extra}


class CountingPayload(LazyPayload):
    """A LazyPayload that counts decodes, to prove which paths never touch the payload."""

    decodes = 0

    def _decode(self):  # type: ignore[no-untyped-def]
        type(self).decodes += 1
        return super()._decode()


@pytest.fixture(autouse=True)
def _reset_counter() -> None:
    CountingPayload.decodes = 0


@pytest.mark.parametrize("event_type,expected", [
    ("user.created", True),
    ("user.profile.updated", True),  # '*' crosses dots (documented choice)
    ("user", False),
    ("user.", True),
    ("users.created", False),
    ("profile.updated", True),
    ("profile.updatedx", False),
    ("User.created", False),  # case-sensitive, like CloudEvents type
])
def test_seed_patterns(event_type: str, expected: bool) -> None:
    matcher = TypeMatcher(["user.*", "profile.updated"])
    assert matcher(event_type) is expected


def test_question_mark_and_sets() -> None:
    matcher = TypeMatcher(["order.v?", "pay[mn]ent.*"])
    assert matcher("order.v1") and not matcher("order.v10")
    assert matcher("payment.done") and matcher("paynent.x") and not matcher("payxent.x")


def test_star_alone_matches_everything() -> None:
    assert TypeMatcher(["*"])("anything.at.all")


def test_no_patterns_is_an_error() -> None:
    with pytest.raises(ValueError):
        TypeMatcher([])


_glob_alphabet = st.sampled_from(list("ab.*?"))
_type_alphabet = st.sampled_from(list("ab."))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(_glob_alphabet, min_size=1, max_size=6), min_size=1, max_size=4),
       st.text(_type_alphabet, max_size=8))
def test_type_matcher_agrees_with_fnmatchcase(patterns: list[str], event_type: str) -> None:
    expected = any(fnmatch.fnmatchcase(event_type, p) for p in patterns)
    assert TypeMatcher(patterns)(event_type) is expected


def test_criteria_by_seed_and_cloudevents_names() -> None:
    matcher = SubscriptionMatcher(["*"], {"tenant_id": "t1", "aggregatetype": ["User", "Order"]})
    assert matcher.matches(attrs(tenantid="t1", aggregatetype="Order"))
    assert not matcher.matches(attrs(tenantid="t2", aggregatetype="Order"))
    assert not matcher.matches(attrs(tenantid="t1", aggregatetype="Invoice"))
    assert not matcher.matches(attrs(tenantid="t1"))  # absent attribute never matches


def test_criteria_non_string_values_compare_as_header_text() -> None:
    matcher = SubscriptionMatcher(["*"], {"sequence_number": 42, "replayed": True})
    assert matcher.matches(attrs(sequencenumber="42", replayed="true"))
    assert not matcher.matches(attrs(sequencenumber="43", replayed="true"))


def test_type_only_match_never_decodes_payload() -> None:
    matcher = SubscriptionMatcher(["user.*"], {"tenant_id": "t1"})
    payload = CountingPayload(b'{"amount": 1}')
    assert matcher.matches(attrs(tenantid="t1"), payload)
    assert not matcher.matches(attrs("order.created", tenantid="t1"), payload)
    assert CountingPayload.decodes == 0 and not payload.is_decoded


def test_cel_on_attributes_only_never_decodes_payload() -> None:
    matcher = SubscriptionMatcher(["*"], None, 'tenant_id == "t1" && attributes.type != "x"')
    payload = CountingPayload(b"not json at all")
    assert not matcher.needs_payload
    assert matcher.matches(attrs(tenantid="t1"), payload)
    assert CountingPayload.decodes == 0


def test_cel_on_payload_decodes_once_and_only_after_cheap_checks() -> None:
    matcher = SubscriptionMatcher(["user.*"], {"tenant_id": "t1"}, "payload.amount > 100")
    assert matcher.needs_payload
    rejected_early = CountingPayload(json.dumps({"amount": 500}).encode())
    assert not matcher.matches(attrs("order.created", tenantid="t1"), rejected_early)
    assert CountingPayload.decodes == 0
    big = CountingPayload(json.dumps({"amount": 500}).encode())
    assert matcher.matches(attrs(tenantid="t1"), big)
    assert matcher.matches(attrs(tenantid="t1"), big)
    assert CountingPayload.decodes == 1
    assert not matcher.matches(attrs(tenantid="t1"), LazyPayload(b'{"amount": 5}'))


def test_cel_sees_seed_names_cloudevents_names_and_absent_as_null() -> None:
    matcher = SubscriptionMatcher(
        ["*"], None,
        'event_type == "user.created" && type == "user.created" && aggregate_type == null')
    assert matcher.matches(attrs())
    assert not matcher.matches(attrs(aggregatetype="User"))


def test_cel_errors_do_not_match_and_are_reported() -> None:
    errors: list[Exception] = []
    matcher = SubscriptionMatcher(["*"], None, "payload.amount > 100", on_error=errors.append)
    assert not matcher.matches(attrs(), LazyPayload(b'{"other": 1}'))  # missing key
    assert not matcher.matches(attrs(), LazyPayload(b"{broken"))  # not JSON
    assert not matcher.matches(attrs(), LazyPayload(b'{"amount": 1}'))  # plain false: no error
    assert len(errors) == 2


def test_missing_type_never_matches() -> None:
    assert not SubscriptionMatcher(["*"]).matches({"id": "x"})


def test_from_subscription() -> None:
    sub = SubscriptionCreate.model_validate({
        "subscription_name": "s", "stream_id": "st", "consumer_group_id": "g",
        "event_type_patterns": ["order.*"], "filter_criteria": {"tenant_id": "t1"},
        "filter_expression": "payload.total >= 10"})
    matcher = SubscriptionMatcher.from_subscription(sub)
    assert matcher.matches(attrs("order.paid", tenantid="t1"), LazyPayload(b'{"total": 10}'))
    assert not matcher.matches(attrs("order.paid", tenantid="t1"), LazyPayload(b'{"total": 9}'))


@pytest.mark.parametrize("content_type,raw,expected", [
    ("application/json", b'{"a": 1}', {"a": 1}),
    ("application/cloudevents+json; charset=utf-8", b"[1]", [1]),
    (None, b'"s"', "s"),
    ("text/plain", b"hello", "hello"),
    ("application/octet-stream", b"\x00\x01", b"\x00\x01"),
    ("application/json", b"", None),
])
def test_lazy_payload_decoding(content_type: str | None, raw: bytes, expected: object) -> None:
    payload = LazyPayload(raw, content_type)
    assert payload.value() == expected
    assert payload.raw == raw
