"""Request bodies of the subscription and consumer-group API."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from esb.delivery.models import (
    ConsumerGroupCreate,
    ConsumerLagResponse,
    DeliveryMode,
    SubscriptionCreate,
    parse_model,
)
from esb.delivery.signing import WebhookSecret
from esb.errors import ValidationFailed

SEED_SUBSCRIPTION = {  # seed 000 "Subscribe to Events", as JSON
    "subscription_name": "user_notifications",
    "stream_id": "str_user_events",
    "consumer_group_id": "notification_service",
    "consumer_name": "notification_consumer",
    "event_type_patterns": ["user.*", "profile.updated"],
    "delivery_mode": "EXACTLY_ONCE",
    "batch_size": 50,
    "max_wait_time_ms": 1000,
    "webhook_url": "https://your-service.com/webhook",
    "webhook_timeout_ms": 5000,
    "dead_letter_enabled": True,
    "retry_policy": {"max_retries": 3, "retry_delay_ms": 1000, "exponential_backoff": True},
}


def test_seed_subscription_body_parses() -> None:
    sub = SubscriptionCreate.model_validate(SEED_SUBSCRIPTION)
    assert sub.delivery_mode is DeliveryMode.EXACTLY_ONCE
    assert sub.event_type_patterns == ["user.*", "profile.updated"]
    assert sub.retry_policy.max_retries == 3
    assert sub.retry_policy.max_retry_delay_ms == 600_000


@pytest.mark.parametrize("spelling", ["at_least_once", "AT_LEAST_ONCE", "at-least-once",
                                      " At_Least_Once "])
def test_delivery_mode_spellings(spelling: str) -> None:
    sub = SubscriptionCreate.model_validate({**SEED_SUBSCRIPTION, "delivery_mode": spelling})
    assert sub.delivery_mode is DeliveryMode.AT_LEAST_ONCE


def test_unknown_delivery_mode_rejected() -> None:
    with pytest.raises(ValidationError):
        SubscriptionCreate.model_validate({**SEED_SUBSCRIPTION, "delivery_mode": "twice"})


def test_seed_002_spellings_accepted() -> None:
    body = {
        "subscription_name": "sub_notification_service",
        "stream_id": "s1",
        "consumer_group": "notification-processors",
        "event_patterns": ["user.*", "order.created"],
        "filter_criteria": {"tenant_id": "tenant_001", "aggregate_type": ["User", "Order"]},
        "delivery_mode": "at_least_once",
        "batch_size": 100,
        "max_wait_time": 1000,
    }
    sub = SubscriptionCreate.model_validate(body)
    assert sub.consumer_group_id == "notification-processors"
    assert sub.event_type_patterns == ["user.*", "order.created"]
    assert sub.max_wait_time_ms == 1000
    assert sub.webhook_url is None


def test_bad_cel_expression_rejected_at_creation() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_model(SubscriptionCreate, {**SEED_SUBSCRIPTION, "filter_expression": "payload.>"})
    assert info.value.errors[0]["path"] == "filter_expression"


def test_good_cel_expression_kept() -> None:
    sub = SubscriptionCreate.model_validate(
        {**SEED_SUBSCRIPTION, "filter_expression": "payload.amount > 100"})
    assert sub.filter_expression == "payload.amount > 100"


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "https:///nohost",
                                 "not a url", "http://[::1"])
def test_webhook_url_shape(url: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_model(SubscriptionCreate, {**SEED_SUBSCRIPTION, "webhook_url": url})
    assert info.value.errors[0]["path"] == "webhook_url"


def test_criteria_naming_one_attribute_twice_rejected() -> None:
    with pytest.raises(ValidationError, match="same attribute"):
        SubscriptionCreate.model_validate(
            {**SEED_SUBSCRIPTION, "filter_criteria": {"tenant_id": "a", "tenantid": "b"}})


def test_empty_value_list_rejected() -> None:
    with pytest.raises(ValidationError):
        SubscriptionCreate.model_validate(
            {**SEED_SUBSCRIPTION, "filter_criteria": {"aggregate_type": []}})


@pytest.mark.parametrize("field,value", [("batch_size", 0), ("batch_size", 1001),
                                         ("webhook_timeout_ms", 10), ("max_wait_time_ms", -1)])
def test_numeric_bounds(field: str, value: int) -> None:
    with pytest.raises(ValidationError):
        SubscriptionCreate.model_validate({**SEED_SUBSCRIPTION, field: value})


def test_unknown_field_rejected() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_model(SubscriptionCreate, {**SEED_SUBSCRIPTION, "webhok_url": "https://x.com"})
    assert info.value.errors[0]["path"] == "webhok_url"


def test_retry_cap_below_base_rejected() -> None:
    with pytest.raises(ValidationError):
        SubscriptionCreate.model_validate({**SEED_SUBSCRIPTION, "retry_policy": {
            "retry_delay_ms": 5000, "max_retry_delay_ms": 1000}})


def test_webhook_secret_format_and_never_echoed() -> None:
    good = WebhookSecret.generate().encoded
    sub = SubscriptionCreate.model_validate({**SEED_SUBSCRIPTION, "webhook_secret": good})
    assert sub.webhook_secret is not None and sub.webhook_secret.get_secret_value() == good
    assert good not in repr(sub)
    bad = "whsec_" + "A" * 8  # too short once decoded
    with pytest.raises(ValidationFailed) as info:
        parse_model(SubscriptionCreate, {**SEED_SUBSCRIPTION, "webhook_secret": bad})
    assert info.value.errors[0]["path"] == "webhook_secret"
    assert "AAAAAAAA" not in str(info.value.to_problem())


def test_patterns_deduplicated_and_validated() -> None:
    sub = SubscriptionCreate.model_validate(
        {**SEED_SUBSCRIPTION, "event_type_patterns": ["a.*", "a.*", "b"]})
    assert sub.event_type_patterns == ["a.*", "b"]
    with pytest.raises(ValidationError):
        SubscriptionCreate.model_validate({**SEED_SUBSCRIPTION, "event_type_patterns": ["a b"]})
    with pytest.raises(ValidationError):
        SubscriptionCreate.model_validate({**SEED_SUBSCRIPTION, "event_type_patterns": []})


SEED_GROUP = {
    "group_name": "notification_processors",
    "group_description": "Processes user notification events",
    "session_timeout_ms": 30000,
    "heartbeat_interval_ms": 3000,
    "max_poll_interval_ms": 300000,
    "partition_assignment_strategy": "range",
    "rebalance_timeout_ms": 60000,
}


def test_seed_consumer_group_parses() -> None:
    group = ConsumerGroupCreate.model_validate(SEED_GROUP)
    assert group.partition_assignment_strategy == "range"


@pytest.mark.parametrize("given,expected", [("RoundRobin", "roundrobin"),
                                            ("round_robin", "roundrobin"), ("STICKY", "sticky")])
def test_assignment_strategy_spellings(given: str, expected: str) -> None:
    group = ConsumerGroupCreate.model_validate(
        {**SEED_GROUP, "partition_assignment_strategy": given})
    assert group.partition_assignment_strategy == expected


def test_heartbeat_must_fit_session_timeout() -> None:
    with pytest.raises(ValidationError, match="third"):
        ConsumerGroupCreate.model_validate({**SEED_GROUP, "heartbeat_interval_ms": 20000})
    with pytest.raises(ValidationError):
        ConsumerGroupCreate.model_validate({**SEED_GROUP, "partition_assignment_strategy": "x"})


def test_lag_response_matches_seed_shape() -> None:
    seed = {
        "group_id": "grp_notifications_789",
        "group_name": "notification_processors",
        "total_lag": 1247,
        "partition_lags": {"0": 423, "1": 389, "2": 435},
        "consumption_rate": 85.3,
        "active_consumers": 3,
        "last_rebalance": "2025-01-26T09:15:00Z",
    }
    lag = ConsumerLagResponse.model_validate(seed)
    dumped = lag.model_dump(mode="json")
    assert dumped["partition_lags"] == {"0": 423, "1": 389, "2": 435}
    assert dumped["last_rebalance"] == "2025-01-26T09:15:00Z"
    with pytest.raises(ValidationError, match="sum"):
        ConsumerLagResponse.model_validate({**seed, "total_lag": 1})


def test_lag_build_computes_total() -> None:
    lag = ConsumerLagResponse.build(
        group_id="g", group_name="n", partition_lags={2: 5, 0: 7}, consumption_rate=1.5,
        active_consumers=1, last_rebalance=datetime(2025, 1, 1, tzinfo=UTC))
    assert lag.total_lag == 12
    assert list(lag.partition_lags) == ["0", "2"]
